//! `orpo`: odds-ratio preference optimisation (reference-free, with its SFT term).
//!
//! **Inputs** (`[B]`): `policy_chosen_logps`, `policy_rejected_logps` (differentiable, summed
//! token log-probs); `chosen_len`, `rejected_len` (required token counts, `L = max(len, 1)`).
//!
//! **Parameters**: `lam` λ (0.1, `[0, ∞)`; TRL's `beta`, the official code's `alpha`).
//!
//! **Math**: average log-probs `a = logps/L` (must be `< 0`: `log(1 − e^a)` is needed);
//! log odds ratio `o = (a_w − a_l) − (log(1 − e^{a_w}) − log(1 − e^{a_l}))`;
//! `ℓ = −a_w + λ·softplus(−o)`; `∂ℓ/∂pc = [−1 + λσ(−o)/expm1(a_w)]/L_w`,
//! `∂ℓ/∂pr = −λσ(−o)/(expm1(a_l)·L_l)`. An average log-prob `≥ 0` is an invalid input; as
//! `a → 0⁻` the gradient grows like `1/|a|` but stays finite.
//!
//! **Source**: *ORPO: Monolithic Preference Optimization without Reference Model* (official
//! xfactlab/orpo; TRL `ORPOTrainer`). The SFT term here is the per-example mean `−a_w`; TRL
//! takes the token mean over all chosen tokens of the batch (identical when the chosen
//! lengths are equal).
//!
//! **GPU path**: `orpo.wgsl`, one invocation per pair under the per-sample kernel contract,
//! after the same checks as the CPU path (the average log-probs are read back and checked
//! first); `log(1 − e^a)` and `expm1` in their f32 forms without cancellation near `a = 0`.

use super::{len_inputs, policy_inputs};
use crate::backend::cpu::{log1mexp, sigmoid, softplus};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{Pair, PairIdx, PairOut, run_pairwise};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::LossSpec;

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "orpo",
        "preference",
        "ORPO: SFT on the chosen response plus a log-odds-ratio preference term, reference-free",
        "ORPO: Monolithic Preference Optimization without Reference Model (official xfactlab/orpo; TRL ORPOTrainer)",
    )
    .rows("B");
    let spec = len_inputs(policy_inputs(spec), false).param(ParamSpec::f64(
        "lam",
        0.1,
        0.0,
        f64::INFINITY,
        "weight of the odds-ratio term (TRL beta, official alpha)",
    ));
    LossDef::new(spec, Orpo)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("orpo.wgsl"),
        )))
        .test_params(&[("lam", F64(1.0))])
        .test_params(&[("lam", F64(0.0))])
}

/// The implementation.
pub struct Orpo;

const IDX: PairIdx = PairIdx::new(0, 1).lens(Some(2), Some(3));

/// Both average log-probs of a pair must be negative (`log(1 − e^a)` is needed).
fn check_pair(q: &Pair) -> Result<()> {
    let (aw, al) = (q.pc / q.lw, q.pr / q.ll);
    for (name, a) in [("chosen", aw), ("rejected", al)] {
        if a >= 0.0 {
            bail!(
                InvalidInput,
                "orpo: pair {}: the {name} average log-prob {a} is not negative (log(1 - p) undefined)",
                q.i
            );
        }
    }
    Ok(())
}

impl LossImpl for Orpo {
    fn plan(&self, s: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        ({
            let v = crate::exec::pairs::read_pairs(s, c, IDX)?;
            (0..v.data.rows).try_for_each(|i| check_pair(&v.pair(i)))
        })?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let lam = p.f64("lam");
        run_pairwise(spec, c, IDX, |q| {
            check_pair(q)?;
            let (aw, al) = (q.pc / q.lw, q.pr / q.ll);
            let o = (aw - al) - (log1mexp(aw) - log1mexp(al));
            let s = sigmoid(-o);
            Ok(PairOut {
                loss: -aw + lam * softplus(-o),
                d_pc: (-1.0 + lam * s / aw.exp_m1()) / q.lw,
                d_pr: -lam * s / al.exp_m1() / q.ll,
            })
        })?;
        Ok(())
    }
}
