//! `osp_spce`: soft-preference cross-entropy on the DPO implicit reward (Online
//! Self-Preferring language models).
//!
//! **Inputs** (`[B]`): `policy_chosen_logps`, `policy_rejected_logps` (differentiable);
//! `ref_chosen_logps`, `ref_rejected_logps`; `strength` p ∈ `[0, 1]` (self-judged probability
//! that the first response is preferred).
//!
//! **Parameters**: `beta` β (0.1, `(0, ∞)`).
//!
//! **Math**: `x = β(lr_w − lr_l)`; `ℓ = p·softplus(−x) + (1 − p)·softplus(x)`, the cross-entropy
//! between the soft label `(p, 1 − p)` and the Bradley-Terry probability `σ(x)`;
//! `∂ℓ/∂pc = β(σ(x) − p) = −∂ℓ/∂pr`. p = 1 is DPO; a constant p = 1 − ε is conservative DPO.
//! A strength outside `[0, 1]` is an invalid input.
//!
//! **Source**: *Online Self-Preferring Language Models* (no public code found). The paper text
//! could not be retrieved when the spec was written: the formula is the spec's reading
//! (soft-label BCE on the DPO logit with a per-pair strength), kept as specified; verify the
//! strength definition against the paper before relying on it. The paper's ranked pairing
//! (sorting self-generated responses by self-judged score) is data construction, outside the
//! loss.
//!
//! **GPU path**: `osp_spce.wgsl`, one invocation per pair under the per-sample kernel
//! contract, after the CPU path's checks (the strengths are read back and checked).

use super::{policy_inputs, ref_inputs};
use crate::backend::cpu::{sigmoid, softplus};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{PairIdx, PairOut, Values, check_values, required, run_pairwise};
use crate::params::{ParamValue::F64, Params};
use crate::spec::{Domain, InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "osp_spce",
        "preference",
        "Soft-preference cross-entropy on the DPO implicit reward (Online Self-Preferring LMs)",
        "Online Self-Preferring Language Models (no public code found)",
    )
    .rows("B");
    let spec = ref_inputs(policy_inputs(spec), false)
        .input(
            InputSpec::f32("strength", "B")
                .domain(Domain::Unit)
                .doc("probability in [0, 1] that the first response is preferred"),
        )
        .param(super::dpo::beta_param(0.1));
    LossDef::new(spec, OspSpce)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("osp_spce.wgsl"),
        )))
        .test_params(&[("beta", F64(0.7))])
}

/// The implementation.
pub struct OspSpce;

const IDX: PairIdx = PairIdx::new(0, 1).refs(2, 3);

/// The strengths, checked to lie in `[0, 1]`.
fn strengths<'a>(c: &Compute<'a>) -> Result<Values<'a>> {
    let strength = required("osp_spce", c, 4)?;
    check_values(
        "osp_spce",
        "strength",
        strength.as_f32(),
        |s| (0.0..=1.0).contains(&s),
        "is outside [0, 1]",
    )?;
    Ok(strength)
}

impl LossImpl for OspSpce {
    fn plan(&self, s: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        ({
            strengths(c)?;
            crate::exec::pairs::check_pairs(s, c, IDX).map(drop)
        })?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let beta = p.f64("beta");
        let strength = strengths(c)?;
        run_pairwise(spec, c, IDX, |q| {
            let s = strength.at(q.i);
            let x = beta * (q.lr_w() - q.lr_l());
            let g = beta * (sigmoid(x) - s);
            Ok(PairOut {
                loss: s * softplus(-x) + (1.0 - s) * softplus(x),
                d_pc: g,
                d_pr: -g,
            })
        })?;
        Ok(())
    }
}
