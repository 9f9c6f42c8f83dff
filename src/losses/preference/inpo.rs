//! `inpo`: Iterative Nash Policy Optimization's squared loss.
//!
//! **Inputs** (`[B]`): `policy_chosen_logps`, `policy_rejected_logps` (differentiable);
//! `ref_chosen_logps`, `ref_rejected_logps` (π_ref); `prev_chosen_logps`,
//! `prev_rejected_logps` (π_t, the previous iterate that generated the pair).
//!
//! **Parameters**: `eta` η (1.0, `(0, ∞)`), `tau` τ (0.1, `[0, ∞)`), with `ητ ≤ 1`.
//!
//! **Math**: `h = (pc − pr) − ητ(rc − rr) − (1 − ητ)(prev_c − prev_r)`, `ℓ = (h − η/2)²`,
//! `∂ℓ/∂pc = 2(h − η/2) = −∂ℓ/∂pr`. τ = 0 is the unregularised game; with π_t = π_ref it is IPO
//! (`ℓ = (lr_w − lr_l − η/2)²`, IPO's optimum margin `1/(2β)` at `η = 1/β`).
//!
//! **Source**: *Iterative Nash Policy Optimization: Aligning LLMs with General Preferences via
//! No-Regret Learning* (no official code found). Written from the paper's loss, whose
//! minimiser is the online-mirror-descent step `π_{t+1} ∝ π_t^{1−ητ} π_ref^{ητ}
//! exp(η P(y ≻ π_t))`; the defaults are not from the paper (kept as specified).
//!
//! **GPU path**: `inpo.wgsl`, one invocation per pair under the per-sample kernel contract.

use super::{policy_inputs, ref_inputs};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{PairIdx, PairOut, required, run_pairwise};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{Domain, InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "inpo",
        "preference",
        "INPO: squared loss of the iterative Nash policy optimisation step",
        "Iterative Nash Policy Optimization: Aligning LLMs with General Preferences via No-Regret Learning",
    )
    .rows("B");
    let spec = ref_inputs(policy_inputs(spec), false)
        .input(
            InputSpec::f32("prev_chosen_logps", "B")
                .domain(Domain::LogProb)
                .doc("log-prob of the chosen response under the previous iterate"),
        )
        .input(
            InputSpec::f32("prev_rejected_logps", "B")
                .domain(Domain::LogProb)
                .doc("log-prob of the rejected response under the previous iterate"),
        )
        .param(
            ParamSpec::f64_open_min("eta", 1.0, 0.0, f64::INFINITY, "learning rate eta").open_max(),
        )
        .param(ParamSpec::f64(
            "tau",
            0.1,
            0.0,
            f64::INFINITY,
            "KL regularisation tau (eta * tau <= 1)",
        ));
    LossDef::new(spec, Inpo)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("inpo.wgsl"),
        )))
        .test_params(&[("eta", F64(2.0)), ("tau", F64(0.5))])
        .test_params(&[("tau", F64(0.0)), ("eta", F64(0.3))])
}

/// The implementation.
pub struct Inpo;

const IDX: PairIdx = PairIdx::new(0, 1).refs(2, 3);

impl LossImpl for Inpo {
    fn plan(&self, s: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        ({ crate::exec::pairs::check_pairs(s, c, IDX).map(drop) })?;
        Ok(Plan::default())
    }
    fn check_params(&self, _spec: &LossSpec, p: &Params) -> Result<()> {
        let (eta, tau) = (p.f64("eta"), p.f64("tau"));
        if eta * tau > 1.0 {
            bail!(InvalidParam, "inpo: eta * tau = {} must be <= 1", eta * tau);
        }
        Ok(())
    }

    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (eta, tau) = (p.f64("eta"), p.f64("tau"));
        let prev_c = required("inpo", c, 4)?;
        let prev_r = required("inpo", c, 5)?;
        let et = eta * tau;
        run_pairwise(spec, c, IDX, |q| {
            let h =
                (q.pc - q.pr) - et * (q.rc - q.rr) - (1.0 - et) * (prev_c.at(q.i) - prev_r.at(q.i));
            let d = h - eta / 2.0;
            Ok(PairOut {
                loss: d * d,
                d_pc: 2.0 * d,
                d_pr: -2.0 * d,
            })
        })?;
        Ok(())
    }
}
