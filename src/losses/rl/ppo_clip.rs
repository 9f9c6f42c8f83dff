//! `ppo_clip`: the PPO clipped surrogate at token level, with asymmetric clipping, dual clip
//! and the verl aggregation modes.
//!
//! **Inputs** (`[N, T]` f32): `logps` (differentiable, per-token policy log-probs),
//! `old_logps` (behaviour policy), `advantages`, `mask` (0/1).
//!
//! **Parameters**: `clip_low` ε_lo (0.2, `[0, 1)`), `clip_high` ε_hi (0.2, `[0, ∞)`),
//! `clip_ratio_c` c (0 = off, else `> 1`: dual clip for negative advantages), `loss_agg`
//! (`token_mean`), `max_len` (0).
//!
//! **Math**: `δ = clamp(logp − old, −20, 20)` (verl), `r = e^δ`;
//! `ℓ_t = max(−A r, −A clip(r, 1−ε_lo, 1+ε_hi))`, and `min(−A c, ℓ_t)` for `A < 0` with the
//! dual clip; gradient `−A r` on the active set (see [`super::clipped_surrogate`]), 0 beyond
//! the δ clamp; aggregated by `loss_agg`. Value-function and entropy terms are not part of
//! this id.
//!
//! **Source**: *Proximal Policy Optimization Algorithms*; dual clip and aggregation modes as in
//! verl (`compute_policy_loss`, `agg_loss`).
//!
//! **GPU path**: `ppo_clip.wgsl` (with the family's `family.wgsl`) under the per-sample
//! kernel contract, one invocation per row in f32 with a blocked row sum (`lk_acc`); the mask is
//! validated and the `loss_agg` denominator computed on the host by the CPU's functions
//! ([`super::mask_denominators`]; `seq_mean_token_mean` counts the row's mask in the
//! kernel), the denominator reaching the kernel as a constant after the parameters.

use super::{agg_param, clipped_surrogate, max_len_param};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{required, run_tokens};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64, I64},
    Params,
};
use crate::spec::{Domain, InputSpec, LossSpec};

/// `logps`, `old_logps`, `advantages` `[N, T]` inputs.
pub fn token_inputs(spec: LossSpec) -> LossSpec {
    spec.input(
        InputSpec::f32("logps", "N,T")
            .grad()
            .domain(Domain::LogProb)
            .doc("per-token policy log-probs"),
    )
    .input(
        InputSpec::f32("old_logps", "N,T")
            .domain(Domain::LogProb)
            .doc("per-token log-probs of the behaviour (old) policy"),
    )
    .input(InputSpec::f32("advantages", "N,T").doc("per-token advantages"))
}

/// The `mask [N, T]` input.
pub fn mask_input() -> InputSpec {
    InputSpec::f32("mask", "N,T")
        .domain(Domain::Binary)
        .doc("1 for response tokens, 0 for padding")
}

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "ppo_clip",
        "rl",
        "PPO clipped surrogate at token level (asymmetric and dual clip, verl aggregation modes)",
        "Proximal Policy Optimization Algorithms (Schulman et al.); dual clip and loss_agg modes as in verl",
    );
    let spec = token_inputs(spec)
        .input(mask_input())
        .param(ParamSpec::f64("clip_low", 0.2, 0.0, 1.0, "lower clip epsilon").open_max())
        .param(ParamSpec::f64(
            "clip_high",
            0.2,
            0.0,
            f64::INFINITY,
            "upper clip epsilon",
        ))
        .param(ParamSpec::f64(
            "clip_ratio_c",
            0.0,
            0.0,
            f64::INFINITY,
            "dual-clip bound for negative advantages (0 = off, else > 1)",
        ))
        .param(agg_param("token_mean"))
        .param(max_len_param());
    LossDef::new(spec, PpoClip)
        .gpu(GpuKernel::Sample(
            SampleKernel::new(&[super::gpu::FAMILY], include_str!("ppo_clip.wgsl"))
                .host_consts(GPU_HOST_CONSTS)
                .passes(2),
        ))
        .test_params(&[("clip_ratio_c", F64(3.0)), ("clip_high", F64(0.28))])
        .test_params(&[("loss_agg", Enum(1))])
        .test_params(&[("loss_agg", Enum(2)), ("clip_low", F64(0.1))])
        .test_params(&[("loss_agg", Enum(3)), ("max_len", I64(7))])
        .test_params(&[("loss_agg", Enum(3))])
}

/// The implementation.
pub struct PpoClip;

/// The host constants of the GPU kernel (`LK_C_*`, after the parameters): `den`, the
/// `loss_agg` row denominator of the modes that use one value for every row.
pub const GPU_HOST_CONSTS: &[&str] = &["den"];

impl LossImpl for PpoClip {
    /// The mask checks of the CPU path and the host's `loss_agg` denominator for the kernel.
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        let den = super::gpu::host_den("ppo_clip", p, c, 3)?;
        Ok(Plan {
            consts: vec![("den", den)],
            ..Plan::default()
        })
    }

    fn check_params(&self, _spec: &LossSpec, p: &Params) -> Result<()> {
        let c = p.f64("clip_ratio_c");
        if c > 0.0 && c <= 1.0 {
            bail!(
                InvalidParam,
                "ppo_clip: clip_ratio_c = {c} must be 0 (off) or > 1"
            );
        }
        Ok(())
    }

    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let id = "ppo_clip";
        let lp = required(id, c, 0)?;
        let old = required(id, c, 1)?;
        let adv = required(id, c, 2)?;
        let mask = required(id, c, 3)?;
        let (lo, hi) = (p.f64("clip_low"), p.f64("clip_high"));
        let cc = p.f64("clip_ratio_c");
        let dual = (cc > 0.0).then_some(cc);
        let t = c.dim("T");
        run_tokens(spec, p, c, mask.as_f32(), |i, tt| {
            let j = i * t + tt;
            clipped_surrogate(lp.at(j) - old.at(j), adv.at(j), lo, hi, dual, true)
        })
    }
}
