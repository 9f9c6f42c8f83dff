//! `rpo`: DPO plus an SFT regulariser on the chosen response (Regularized Preference
//! Optimization).
//!
//! **Inputs** (`[B]`): `policy_chosen_logps`, `policy_rejected_logps` (differentiable, summed);
//! `ref_chosen_logps`, `ref_rejected_logps` (required); `chosen_len` (optional, `max(len, 1)`;
//! used by `sft_norm = token_mean`).
//!
//! **Parameters**: `beta` β (0.01, `(0, ∞)`), `eta` η (0.005, `[0, ∞)`), `sft_norm`
//! (`sum_beta|token_mean`).
//!
//! **Math**: `x = β(lr_w − lr_l)`; `ℓ = softplus(−x) + sft`, `sft = ηβ(−pc)` (`sum_beta`) or
//! `η(−pc/L_w)` (`token_mean`); `∂ℓ/∂pc = −βσ(−x) − (ηβ or η/L_w)`, `∂ℓ/∂pr = βσ(−x)`. η = 0
//! is DPO.
//!
//! **Source**: *Provably Mitigating Overoptimization in RLHF: Your SFT Loss is Implicitly an
//! Adversarial Regularizer* (official YSLIU627/Regularized-Preference-Optimization). The main
//! results use the summed SFT loss weighted by ηβ (β = 0.01, η = 0.005 from its recipe); the
//! appendix and the OpenRLHF variant use the token mean weighted by η. TRL's
//! `["sigmoid","sft"]` with weights `[1, η]` is `token_mean` with equal chosen lengths.
//!
//! **GPU path**: `rpo.wgsl`, one invocation per pair under the per-sample kernel contract.

use super::{policy_inputs, ref_inputs};
use crate::backend::cpu::{sigmoid, softplus};
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
use crate::spec::{Domain, InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "rpo",
        "preference",
        "RPO: DPO plus an SFT regulariser on the chosen response",
        "Provably Mitigating Overoptimization in RLHF: Your SFT Loss is Implicitly an Adversarial Regularizer (official YSLIU627/Regularized-Preference-Optimization)",
    )
    .rows("B");
    let spec = ref_inputs(policy_inputs(spec), false)
        .input(
            InputSpec::f32("chosen_len", "B")
                .optional()
                .domain(Domain::Positive)
                .doc("token count of the chosen response (token_mean; max(len, 1) is used)"),
        )
        .param(super::dpo::beta_param(0.01))
        .param(ParamSpec::f64(
            "eta",
            0.005,
            0.0,
            f64::INFINITY,
            "weight of the SFT term",
        ))
        .param(ParamSpec::choice(
            "sft_norm",
            "sum_beta",
            &["sum_beta", "token_mean"],
            "SFT term: eta*beta*(-logps) or eta*(-logps/len)",
        ));
    LossDef::new(spec, Rpo)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("rpo.wgsl"),
        )))
        .test_params(&[("beta", F64(0.5)), ("eta", F64(0.3))])
        .test_params(&[("sft_norm", Enum(1)), ("eta", F64(0.5)), ("beta", F64(0.2))])
}

/// The implementation.
pub struct Rpo;

const IDX: PairIdx = PairIdx::new(0, 1).refs(2, 3).lens(Some(4), None);

impl LossImpl for Rpo {
    fn plan(&self, s: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        (crate::exec::pairs::check_pairs(s, c, IDX).map(drop))?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (beta, eta) = (p.f64("beta"), p.f64("eta"));
        let token_mean = p.choice("sft_norm") == "token_mean";
        run_pairwise(spec, c, IDX, |q| {
            let x = beta * (q.lr_w() - q.lr_l());
            let k = if token_mean { eta / q.lw } else { eta * beta };
            let s = sigmoid(-x);
            Ok(PairOut {
                loss: softplus(-x) - k * q.pc,
                d_pc: -beta * s - k,
                d_pr: beta * s,
            })
        })?;
        Ok(())
    }
}
