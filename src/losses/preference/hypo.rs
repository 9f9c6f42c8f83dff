//! `hypo`: hybrid preference optimisation, offline DPO plus an online reverse-KL term with
//! the leave-one-out REINFORCE gradient (The Importance of Online Data).
//!
//! **Inputs**: `policy_chosen_logps`, `policy_rejected_logps` `[B]` (differentiable);
//! `ref_chosen_logps`, `ref_rejected_logps` `[B]`; `online_logps [B,K]` (differentiable:
//! summed log-probs of K ≥ 2 responses sampled from the current policy for the pair's
//! prompt); `online_ref_logps [B,K]` (their reference log-probs).
//!
//! **Parameters**: `beta` β (0.1, `(0, ∞)`), `lam` λ (0.1, `[0, ∞)`).
//!
//! **Value**: `κ_k = online_logps_k − online_ref_logps_k`; `ℓ = softplus(−β(lr_w − lr_l)) +
//! λ·mean_k κ_k` (the DPO loss plus the Monte-Carlo estimate of KL(π‖π_ref)).
//!
//! **Gradient (defined, not the derivative of the value)**: the DPO part is the exact
//! derivative (`∂ℓ/∂pc = −βσ(−x) = −∂ℓ/∂pr`, `x = β(lr_w − lr_l)`); for the online responses
//! `∂ℓ/∂online_logps_k = (λ/K)(κ_k − b_k)`, `b_k = Σ_{j≠k} κ_j/(K − 1)`: the leave-one-out
//! REINFORCE estimator of ∇KL(π‖π_ref) (the pathwise term, zero in expectation, is dropped),
//! so `Σ_k ∂ℓ/∂online_logps_k = 0`. K < 2 is an invalid input.
//!
//! **Source**: *The Importance of Online Data: Understanding Preference Fine-tuning via
//! Coverage* (HyPO). The paper adds λ·KL estimated on online samples to the DPO loss and
//! optimises that term with RLOO (its hyper-parameters are β, λ and the RLOO k); the default
//! λ is not verified. The registry marks the gradient a surrogate, so the generic
//! finite-difference suite skips it; the loss's own tests check the DPO part by finite
//! differences and the online part against the estimator.
//!
//! **GPU path**: `hypo.wgsl`, one invocation per pair under the per-sample kernel contract
//! (the online row's κ sum blocked in f32, `lk_acc`), after the same `K ≥ 2` check.

use super::{policy_inputs, ref_inputs};
use crate::backend::cpu::{sigmoid, softplus};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{required, run_rows};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{Domain, InputSpec, LossSpec};

const ID: &str = "hypo";

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "preference",
        "HyPO: offline DPO plus an online KL(pi || ref) term with the leave-one-out REINFORCE gradient",
        "The Importance of Online Data: Understanding Preference Fine-tuning via Coverage",
    )
    .rows("B");
    let spec = ref_inputs(policy_inputs(spec), false)
        .input(
            InputSpec::f32("online_logps", "B,K")
                .grad()
                .domain(Domain::LogProb)
                .doc("policy log-probs of K >= 2 responses sampled online from the policy"),
        )
        .input(
            InputSpec::f32("online_ref_logps", "B,K")
                .domain(Domain::LogProb)
                .doc("reference log-probs of the online responses"),
        )
        .param(super::dpo::beta_param(0.1))
        .param(ParamSpec::f64(
            "lam",
            0.1,
            0.0,
            f64::INFINITY,
            "lambda: weight of the online KL term",
        ));
    LossDef::new(spec, Hypo)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("hypo.wgsl"),
        )))
        .surrogate_gradient(
            "the online KL term's gradient is the leave-one-out REINFORCE estimator, not the derivative of its Monte-Carlo value",
        )
        .test_params(&[("beta", F64(0.5)), ("lam", F64(1.0))])
        .test_params(&[("lam", F64(0.0))])
}

/// The implementation.
pub struct Hypo;

/// The check of both backends: at least two online responses.
fn check_k(c: &Compute<'_>) -> Result<()> {
    let k = c.dim("K");
    if k < 2 {
        bail!(
            InvalidInput,
            "{ID}: K = {k} online responses; the leave-one-out estimator needs at least 2"
        );
    }
    Ok(())
}

impl LossImpl for Hypo {
    fn plan(&self, _spec: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        (check_k(c))?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (b, k) = (c.dim("B"), c.dim("K"));
        let (beta, lam) = (p.f64("beta"), p.f64("lam"));
        let [pc, pr, rc, rr, on, onr] = [0, 1, 2, 3, 4, 5].map(|j| required(ID, c, j));
        let (pc, pr, rc, rr, on, onr) = (pc?, pr?, rc?, rr?, on?, onr?);
        let kf = k as f64;
        run_rows(spec, c, b, b as f64, |i, g| {
            let x = beta * ((pc.at(i) - rc.at(i)) - (pr.at(i) - rr.at(i)));
            let gd = -beta * sigmoid(-x);
            if !g.at(0).is_empty() {
                g.set(0, 0, gd);
            }
            if !g.at(1).is_empty() {
                g.set(1, 0, -gd);
            }
            let kappa = |j: usize| on.at(i * k + j) - onr.at(i * k + j);
            let total: f64 = (0..k).map(kappa).sum();
            let go = g.at(4);
            if !go.is_empty() {
                for (j, gj) in go.iter_mut().enumerate() {
                    let base = (total - kappa(j)) / (kf - 1.0);
                    *gj = lam / kf * (kappa(j) - base);
                }
            }
            Ok(softplus(-x) + lam * total / kf)
        })
    }
}
