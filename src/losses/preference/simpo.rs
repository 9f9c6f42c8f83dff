//! `simpo`: SimPO, the length-normalised reference-free margin loss (with the AlphaPO
//! reward shape and an optional SFT term).
//!
//! **Inputs** (`[B]`): `policy_chosen_logps`, `policy_rejected_logps` (differentiable, summed);
//! `chosen_len`, `rejected_len` (required, `L = max(len, 1)`).
//!
//! **Parameters**: `beta` β (2.0, `(0, ∞)`), `gamma_beta_ratio` (0.25, `[0, ∞)`; γ = β·ratio),
//! `label_smoothing` ε (0, `[0, 0.5)`), `loss_type` (`sigmoid|hinge`), `alpha` α (0,
//! `[−10, 10]`; AlphaPO), `sft_weight` (0, `[0, ∞)`).
//!
//! **Math**: `a = logps/L`; reward `r(a) = a` (α = 0) or `−expm1(−αa)/α`, `r'(a) = e^{−αa}`;
//! `x = β(r_w − r_l − gamma_beta_ratio)`; sigmoid `(1−ε)softplus(−x) + ε softplus(x)`, hinge
//! `relu(1 − x)`; plus `sft_weight·(−a_w)`. With `g = ∂ℓ/∂x`: `∂ℓ/∂pc = (gβr'(a_w) −
//! sft_weight)/L_w`, `∂ℓ/∂pr = −gβr'(a_l)/L_l`. With α ≠ 0 and `|αa| > 88` the f32 result
//! overflows to ±inf (propagated).
//!
//! **Source**: *SimPO: Simple Preference Optimization with a Reference-Free Reward* (official
//! princeton-nlp/SimPO; TRL `CPOTrainer` `loss_type="simpo"`, whose `alpha` is AlphaPO's
//! reward shape). The code's `β(Δ − γ/β)` is the paper's `βΔ − γ`; the SFT term is the
//! per-example mean (the official code takes a batch token mean).
//!
//! **GPU path**: `simpo.wgsl`, one invocation per pair under the per-sample kernel contract
//! (the margin loss and the AlphaPO reward are family prelude functions shared with `cpo`).

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

/// AlphaPO reward `r(a)` and `r'(a)`.
pub fn alpha_reward(alpha: f64, a: f64) -> (f64, f64) {
    if alpha == 0.0 {
        (a, 1.0)
    } else {
        (-(-alpha * a).exp_m1() / alpha, (-alpha * a).exp())
    }
}

/// `ℓ(x)` and `dℓ/dx` of the sigmoid (with smoothing ε) or hinge margin loss.
pub fn margin_loss(hinge: bool, eps: f64, x: f64) -> (f64, f64) {
    use crate::backend::cpu::{sigmoid, softplus};
    if hinge {
        ((1.0 - x).max(0.0), if x < 1.0 { -1.0 } else { 0.0 })
    } else {
        (
            (1.0 - eps) * softplus(-x) + eps * softplus(x),
            -(1.0 - eps) * sigmoid(-x) + eps * sigmoid(x),
        )
    }
}

/// The `label_smoothing` parameter of the reference-free losses (`[0, 0.5)`).
pub fn smoothing_param() -> ParamSpec {
    ParamSpec::f64("label_smoothing", 0.0, 0.0, 0.5, "label smoothing epsilon").open_max()
}

/// The AlphaPO `alpha` parameter (`[−10, 10]`).
pub fn alpha_param() -> ParamSpec {
    ParamSpec::f64(
        "alpha",
        0.0,
        -10.0,
        10.0,
        "AlphaPO reward shape: r = -expm1(-alpha a)/alpha; 0 = linear",
    )
}

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "simpo",
        "preference",
        "SimPO: length-normalised reference-free margin loss (AlphaPO reward shape, optional SFT term)",
        "SimPO: Simple Preference Optimization with a Reference-Free Reward (official princeton-nlp/SimPO); AlphaPO as in TRL CPOTrainer",
    )
    .rows("B");
    let spec = len_inputs(policy_inputs(spec), false)
        .param(super::dpo::beta_param(2.0))
        .param(ParamSpec::f64(
            "gamma_beta_ratio",
            0.25,
            0.0,
            f64::INFINITY,
            "target margin gamma over beta",
        ))
        .param(smoothing_param())
        .param(ParamSpec::choice(
            "loss_type",
            "sigmoid",
            &["sigmoid", "hinge"],
            "margin loss",
        ))
        .param(alpha_param())
        .param(ParamSpec::f64(
            "sft_weight",
            0.0,
            0.0,
            f64::INFINITY,
            "weight of the SFT term -logps_chosen/len",
        ));
    LossDef::new(spec, Simpo)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("simpo.wgsl"),
        )))
        .test_params(&[("label_smoothing", F64(0.2)), ("sft_weight", F64(0.5))])
        .test_params(&[("loss_type", Enum(1)), ("beta", F64(0.5))])
        .test_params(&[("alpha", F64(0.5))])
        .test_params(&[("alpha", F64(-0.7)), ("gamma_beta_ratio", F64(0.0))])
}

/// The implementation.
pub struct Simpo;

const IDX: PairIdx = PairIdx::new(0, 1).lens(Some(2), Some(3));

impl LossImpl for Simpo {
    fn plan(&self, s: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        ({ crate::exec::pairs::check_pairs(s, c, IDX).map(drop) })?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (beta, ratio, eps) = (
            p.f64("beta"),
            p.f64("gamma_beta_ratio"),
            p.f64("label_smoothing"),
        );
        let (alpha, sft) = (p.f64("alpha"), p.f64("sft_weight"));
        let hinge = p.choice("loss_type") == "hinge";
        run_pairwise(spec, c, IDX, |q| {
            let (aw, al) = (q.pc / q.lw, q.pr / q.ll);
            let (rw, dw) = alpha_reward(alpha, aw);
            let (rl, dl) = alpha_reward(alpha, al);
            let (l, g) = margin_loss(hinge, eps, beta * (rw - rl - ratio));
            Ok(PairOut {
                loss: l - sft * aw,
                d_pc: (g * beta * dw - sft) / q.lw,
                d_pr: -g * beta * dl / q.ll,
            })
        })?;
        Ok(())
    }
}
