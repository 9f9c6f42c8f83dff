//! `cpo`: Contrastive Preference Optimization (reference-free preference term plus NLL on the
//! chosen response).
//!
//! **Inputs** (`[B]`): `policy_chosen_logps`, `policy_rejected_logps` (differentiable, summed);
//! `chosen_len`, `rejected_len` (optional, `max(len, 1)`, absent = 1; used by `ipo` and the NLL
//! term).
//!
//! **Parameters**: `beta` β (0.1, `(0, ∞)`), `label_smoothing` ε (0, `[0, 0.5)`), `loss_type`
//! (`sigmoid|hinge|ipo`), `cpo_alpha` (1.0, `[0, ∞)`; NLL weight), `alpha` α (0, `[−10, 10]`;
//! AlphaPO).
//!
//! **Math**: `s = logps` (sigmoid, hinge) or `logps/L` (ipo, as TRL averages for it);
//! `r = s` or `−expm1(−αs)/α`; `Δ = r_w − r_l`, `x = βΔ`; sigmoid `(1−ε)softplus(−x) +
//! ε softplus(x)`, hinge `relu(1 − x)`, ipo `(Δ − 1/(2β))²`; plus `cpo_alpha·(−pc/L_w)`.
//! `∂ℓ/∂pc = G·e^{−αs_w}·j_w − cpo_alpha/L_w`, `∂ℓ/∂pr = −G·e^{−αs_l}·j_l`, `G = ∂ℓ/∂Δ`,
//! `j = 1/L` for ipo else 1. AlphaPO on summed log-probs overflows `e^{−αs}` quickly in f32
//! (`|αs| > 88`); keep α small.
//!
//! **Source**: *Contrastive Preference Optimization: Pushing the Boundaries of LLM Performance
//! in Machine Translation* (TRL `CPOTrainer`). The paper's NLL is the summed `−log π(y_w)`
//! (lengths absent); TRL's is a batch token mean (lengths given and equal).
//!
//! **GPU path**: `cpo.wgsl`, one invocation per pair under the per-sample kernel contract
//! (margin loss and AlphaPO reward from the family prelude, as `simpo`).

use super::simpo::{alpha_param, alpha_reward, margin_loss, smoothing_param};
use super::{len_inputs, policy_inputs};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{PairIdx, PairOut, run_pairwise};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::LossSpec;

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "cpo",
        "preference",
        "CPO: reference-free preference term (sigmoid, hinge or IPO) plus NLL on the chosen response",
        "Contrastive Preference Optimization (Xu et al.); TRL CPOTrainer",
    )
    .rows("B");
    let spec = len_inputs(policy_inputs(spec), true)
        .param(super::dpo::beta_param(0.1))
        .param(smoothing_param())
        .param(ParamSpec::choice(
            "loss_type",
            "sigmoid",
            &["sigmoid", "hinge", "ipo"],
            "preference term",
        ))
        .param(ParamSpec::f64(
            "cpo_alpha",
            1.0,
            0.0,
            f64::INFINITY,
            "weight of the NLL term -logps_chosen/len",
        ))
        .param(alpha_param());
    LossDef::new(spec, Cpo)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("cpo.wgsl"),
        )))
        .test_params(&[("label_smoothing", F64(0.3)), ("beta", F64(0.5))])
        .test_params(&[("loss_type", Enum(1)), ("beta", F64(0.3))])
        .test_params(&[("loss_type", Enum(2)), ("beta", F64(0.5))])
        .test_params(&[("alpha", F64(0.2)), ("cpo_alpha", F64(0.0))])
        .test_params(&[("alpha", F64(-0.3)), ("loss_type", Enum(2))])
}

/// The implementation.
pub struct Cpo;

const IDX: PairIdx = PairIdx::new(0, 1).lens(Some(2), Some(3));

impl LossImpl for Cpo {
    fn plan(&self, s: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        (crate::exec::pairs::check_pairs(s, c, IDX).map(drop))?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (beta, eps, alpha, nll) = (
            p.f64("beta"),
            p.f64("label_smoothing"),
            p.f64("alpha"),
            p.f64("cpo_alpha"),
        );
        let kind = p.choice("loss_type");
        let (ipo, hinge) = (kind == "ipo", kind == "hinge");
        run_pairwise(spec, c, IDX, |q| {
            let (jw, jl) = if ipo {
                (1.0 / q.lw, 1.0 / q.ll)
            } else {
                (1.0, 1.0)
            };
            let (rw, dw) = alpha_reward(alpha, q.pc * jw);
            let (rl, dl) = alpha_reward(alpha, q.pr * jl);
            let delta = rw - rl;
            let (l, g) = if ipo {
                let d = delta - 1.0 / (2.0 * beta);
                (d * d, 2.0 * d)
            } else {
                let (l, g) = margin_loss(hinge, eps, beta * delta);
                (l, beta * g)
            };
            Ok(PairOut {
                loss: l - nll * q.pc / q.lw,
                d_pc: g * dw * jw - nll / q.lw,
                d_pr: -g * dl * jl,
            })
        })?;
        Ok(())
    }
}
