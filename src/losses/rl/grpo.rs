//! `grpo`: Group Relative Policy Optimization at token level: group-normalised advantages
//! from per-completion rewards, the clipped surrogate and the k3 KL penalty.
//!
//! **Inputs**: `logps [N,T]` (differentiable), `mask [N,T]` (0/1), `rewards [N]` (contiguous
//! groups of `group_size` completions of one prompt), `old_logps [N,T]` (optional: absent =
//! `logps` detached, ratio 1, the on-policy case), `ref_logps [N,T]` (optional; required when
//! β ≠ 0).
//!
//! **Parameters**: `group_size` G (4, `≥ 1`; must divide N), `scale_rewards`
//! (`group|batch|none`), `beta` β (0.04, `[0, ∞)`), `epsilon_low` (0.2, `[0, 1)`),
//! `epsilon_high` (0.2, `[0, ∞)`), `loss_agg` (`seq_mean_token_mean`), `max_len` (0).
//!
//! **Math**: `A_i = (r_i − mean_group)/(std + 1e-4)` with the Bessel-corrected std over the
//! group (`group`) or the whole batch (`batch`; std = 0 for a single element), `none`: no
//! division; A is broadcast over the tokens. `ℓ_t = −min(rA, clip(r, 1−ε_lo, 1+ε_hi)A) +
//! β(e^ρ − ρ − 1)`, `r = e^{logp − old}` (no δ clamp, as TRL), `ρ = ref − logp` (k3
//! estimator); gradient: the clip rule plus `β(1 − e^ρ)`, times `mask/den_i`.
//!
//! **Gradient with `old_logps` absent** is the on-policy policy gradient (`old` = `logps`
//! detached, as TRL's `per_token_logps.detach()`), i.e. `−A` per token plus the KL term: not the
//! derivative of the returned value (in which the ratio is constantly 1). A finite-difference
//! check therefore applies only with `old_logps` given.
//!
//! **Source**: *DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
//! Models* (GRPO); TRL `GRPOTrainer` (advantages, k3 KL, `grpo`/`bnpo`/`dapo`/`dr_grpo`
//! aggregation). The paper normalises per sequence (`seq_mean_token_mean`, the default here);
//! TRL main defaults to `dapo` (= `token_mean`) and β = 0; β = 0.04 is the paper's value.
//!
//! **GPU path**: `grpo.wgsl` (with the family's `family.wgsl`) under the per-sample kernel
//! contract, one invocation per row in f32: `rewards` is bound whole and each invocation
//! computes its group's mean and std (two passes over the G rewards; `batch` mode: over all N,
//! O(N) per row), then the row's tokens with a blocked sum (`lk_acc`). The group size, `beta` /
//! `ref_logps` and mask checks and the `loss_agg` denominator run on the host with the CPU's
//! functions before the launch.

use super::ppo_clip::mask_input;
use super::{agg_param, clipped_surrogate, max_len_param};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{required, run_tokens, values};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64, I64},
    Params,
};
use crate::spec::{Domain, InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "grpo",
        "rl",
        "GRPO: group-normalised advantages, clipped surrogate and k3 KL penalty at token level",
        "DeepSeekMath (GRPO, Shao et al.); TRL GRPOTrainer",
    )
    .input(
        InputSpec::f32("logps", "N,T")
            .grad()
            .domain(Domain::LogProb)
            .doc("per-token policy log-probs"),
    )
    .input(mask_input())
    .input(InputSpec::f32("rewards", "N").doc("reward of each completion; groups are contiguous"))
    .input(
        InputSpec::f32("old_logps", "N,T")
            .optional()
            .domain(Domain::LogProb)
            .doc("per-token log-probs of the sampling policy (absent = logps detached)"),
    )
    .input(
        InputSpec::f32("ref_logps", "N,T")
            .optional()
            .domain(Domain::LogProb)
            .doc("per-token reference log-probs (required when beta != 0)"),
    )
    .param(ParamSpec::i64(
        "group_size",
        4,
        1,
        i64::MAX,
        "completions per prompt; must divide N",
    ))
    .param(ParamSpec::choice(
        "scale_rewards",
        "group",
        &["group", "batch", "none"],
        "divide the centred rewards by the group std, the batch std, or nothing",
    ))
    .param(ParamSpec::f64(
        "beta",
        0.04,
        0.0,
        f64::INFINITY,
        "weight of the k3 KL penalty",
    ))
    .param(ParamSpec::f64("epsilon_low", 0.2, 0.0, 1.0, "lower clip epsilon").open_max())
    .param(ParamSpec::f64(
        "epsilon_high",
        0.2,
        0.0,
        f64::INFINITY,
        "upper clip epsilon",
    ))
    .param(agg_param("seq_mean_token_mean"))
    .param(max_len_param());
    LossDef::new(spec, Grpo)
        .gpu(GpuKernel::Sample(
            // Rewards (input 2) are bound whole: a row reads its whole group.
            SampleKernel::new(&[super::gpu::FAMILY], include_str!("grpo.wgsl"))
                .whole_inputs(&[2])
                .host_consts(GPU_HOST_CONSTS)
                .iterations(gpu_iterations),
        ))
        .test_dims(&[("N", 12)])
        .test_needs_optional()
        .test_params(&[("group_size", I64(3)), ("loss_agg", Enum(0))])
        .test_params(&[
            ("group_size", I64(2)),
            ("scale_rewards", Enum(1)),
            ("beta", F64(0.3)),
        ])
        .test_params(&[
            ("group_size", I64(3)),
            ("scale_rewards", Enum(2)),
            ("loss_agg", Enum(3)),
            ("epsilon_high", F64(0.28)),
        ])
        .test_params(&[("group_size", I64(1)), ("loss_agg", Enum(2))])
}

/// Group-relative advantages.
pub fn advantages(rewards: &[f64], g: usize, scale: &str) -> Vec<f64> {
    let std = |v: &[f64]| -> f64 {
        if v.len() < 2 {
            return 0.0;
        }
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    let batch_std = std(rewards);
    rewards
        .chunks(g)
        .flat_map(|grp| {
            let m = grp.iter().sum::<f64>() / grp.len() as f64;
            let s = match scale {
                "group" => Some(std(grp)),
                "batch" => Some(batch_std),
                _ => None,
            };
            grp.iter()
                .map(move |r| match s {
                    Some(s) => (r - m) / (s + 1e-4),
                    None => r - m,
                })
                .collect::<Vec<f64>>()
        })
        .collect()
}

/// The implementation.
pub struct Grpo;

/// The checks of the call that do not read tensor values (both paths).
fn check_call(p: &Params, c: &Compute<'_>) -> Result<()> {
    let id = "grpo";
    let n = c.dim("N");
    let g = p.i64("group_size") as usize;
    if !n.is_multiple_of(g) {
        bail!(
            InvalidInput,
            "{id}: group_size {g} does not divide the number of completions N = {n}"
        );
    }
    let beta = p.f64("beta");
    if beta != 0.0 && c.get(4).is_none() {
        bail!(
            InvalidParam,
            "{id}: beta = {beta} needs the ref_logps input (or set beta = 0)"
        );
    }
    Ok(())
}

/// The host constants of the GPU kernel (`LK_C_*`, after the parameters): `den`, the
/// `loss_agg` row denominator of the modes that use one value for every row.
pub const GPU_HOST_CONSTS: &[&str] = &["den"];

/// Loop iterations of one invocation: the group's two passes (all N rewards too for
/// `batch`) and two over T.
fn gpu_iterations(p: &Params, c: &Compute<'_>) -> u64 {
    let (n, t) = (c.dim("N") as u64, c.dim("T") as u64);
    let batch = if p.choice("scale_rewards") == "batch" {
        2 * n
    } else {
        0
    };
    2 * p.i64("group_size") as u64 + batch + 2 * t
}

impl LossImpl for Grpo {
    /// The group and mask checks of the CPU path and the host's `loss_agg` denominator.
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        check_call(p, c)?;
        let den = super::gpu::host_den("grpo", p, c, 1)?;
        Ok(Plan {
            consts: vec![("den", den)],
            ..Plan::default()
        })
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let id = "grpo";
        let t = c.dim("T");
        let g = p.i64("group_size") as usize;
        let beta = p.f64("beta");
        let lp = required(id, c, 0)?;
        let mask = required(id, c, 1)?;
        let rewards = required(id, c, 2)?.to_f64();
        let old = values(c, 3)?;
        let rf = values(c, 4)?;
        let adv = advantages(&rewards, g, p.choice("scale_rewards"));
        let (lo, hi) = (p.f64("epsilon_low"), p.f64("epsilon_high"));
        run_tokens(spec, p, c, mask.as_f32(), |i, tt| {
            let j = i * t + tt;
            let delta = old.as_ref().map_or(0.0, |o| lp.at(j) - o.at(j));
            let (mut l, mut d) = clipped_surrogate(delta, adv[i], lo, hi, None, false);
            if beta != 0.0 {
                let rho = rf.as_ref().map_or(0.0, |r| r.at(j)) - lp.at(j);
                l += beta * (rho.exp() - rho - 1.0);
                d += beta * (1.0 - rho.exp());
            }
            (l, d)
        })
    }
}
