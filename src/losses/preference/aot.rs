//! `aot`: Alignment via Optimal Transport, distributional preference alignment by sorting
//! (batch-level).
//!
//! **Inputs** (`[B]`): `policy_chosen_logps`, `policy_rejected_logps` (differentiable);
//! `ref_chosen_logps`, `ref_rejected_logps` (required).
//!
//! **Parameters**: `variant` (`paired|unpaired`), `beta` β (0.1, `(0, ∞)`), `label_smoothing`
//! ε (0, `[0, 0.5)`).
//!
//! **Math**: paired `u = pc − pr`, `v = rc − rr` (policy margins against reference margins);
//! unpaired `u = pc − rc`, `v = pr − rr` (chosen log-ratios against rejected log-ratios, no
//! pairing needed). Both are sorted ascending (stable by index: the k-th smallest `u_(k)`,
//! `v_(k)`), which is the optimal 1-D transport plan between the two empirical distributions;
//! `D_k = u_(k) − v_(k)`, `ℓ_k = (1−ε)softplus(−βD_k) + ε softplus(βD_k)`. The loss is one
//! scalar over the batch: `mean` = `(1/B)Σ_k ℓ_k`, `sum` = `Σ_k ℓ_k`; `none` is refused
//! (`Unsupported`, the registry's status for every batch-level loss; the spec names it an
//! invalid parameter).
//! Gradient: `g_k = β[−(1−ε)σ(−βD_k) + εσ(βD_k)]` (times the reduction factor) goes to the
//! input rows that were sorted into place k: `∂/∂u_{π_u(k)} = g_k`, `∂/∂v_{π_v(k)} = −g_k`;
//! paired `∂/∂pc = ∂/∂u`, `∂/∂pr = −∂/∂u`; unpaired `∂/∂pc = ∂/∂u`, `∂/∂pr = ∂/∂v`. Ties use
//! the stable-sort permutation (one valid subgradient). B = 1 is conservative DPO on one pair.
//!
//! **Source**: *Distributional Preference Alignment of LLMs via Optimal Transport* (TRL
//! `DPOTrainer` loss types `aot` = paired, `aot_unpaired` = unpaired). Follows TRL; label
//! smoothing is TRL's addition (ε = 0 is the paper).
//!
//! **GPU kernel needs**: none (one sort of B values per side; trivial on the host).

use super::{finish_batch, policy_inputs, ref_inputs, required_f64, sigmoid, softplus};
use crate::compute::Compute;
use crate::error::Result;
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::registry::{LossDef, LossImpl, LossSpec};

const ID: &str = "aot";

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "preference",
        "AOT: distributional preference alignment by optimal transport (sorted margins or log-ratios), batch-level",
        "Distributional Preference Alignment of LLMs via Optimal Transport (TRL DPOTrainer aot, aot_unpaired)",
    )
    .rows("B")
    .batch_level();
    let spec = ref_inputs(policy_inputs(spec), false)
        .param(ParamSpec::choice(
            "variant",
            "paired",
            &["paired", "unpaired"],
            "paired: sort policy and reference margins; unpaired: sort chosen and rejected log-ratios",
        ))
        .param(super::dpo::beta_param(0.1))
        .param(
            ParamSpec::f64(
                "label_smoothing",
                0.0,
                0.0,
                0.5,
                "epsilon: conservative smoothing of each sorted term",
            )
            .open_max(),
        );
    LossDef::new(spec, Aot)
        .test_params(&[("beta", F64(0.5)), ("label_smoothing", F64(0.2))])
        .test_params(&[("variant", Enum(1))])
        .test_params(&[
            ("variant", Enum(1)),
            ("beta", F64(0.7)),
            ("label_smoothing", F64(0.1)),
        ])
}

/// The implementation.
pub struct Aot;

/// Indices sorting `x` ascending, stable (ties keep index order).
fn argsort(x: &[f64]) -> Vec<usize> {
    let mut p: Vec<usize> = (0..x.len()).collect();
    p.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    p
}

impl LossImpl for Aot {
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let b = c.dim("B");
        let beta = p.f64("beta");
        let eps = p.f64("label_smoothing");
        let paired = p.choice("variant") == "paired";
        let [pc, pr, rc, rr] = [0, 1, 2, 3].map(|k| required_f64(ID, c, k));
        let (pc, pr, rc, rr) = (pc?, pr?, rc?, rr?);
        let (u, v): (Vec<f64>, Vec<f64>) = if paired {
            (0..b).map(|i| (pc[i] - pr[i], rc[i] - rr[i])).unzip()
        } else {
            (0..b).map(|i| (pc[i] - rc[i], pr[i] - rr[i])).unzip()
        };
        let (su, sv) = (argsort(&u), argsort(&v));
        let mut per_term = Vec::with_capacity(b);
        let mut dpc = vec![0.0; b];
        let mut dpr = vec![0.0; b];
        for k in 0..b {
            let x = beta * (u[su[k]] - v[sv[k]]);
            per_term.push((1.0 - eps) * softplus(-x) + eps * softplus(x));
            let g = beta * (-(1.0 - eps) * sigmoid(-x) + eps * sigmoid(x));
            dpc[su[k]] += g;
            if paired {
                dpr[su[k]] -= g;
            } else {
                dpr[sv[k]] -= g;
            }
        }
        let full = vec![
            c.wants_grad(0).then_some(dpc),
            c.wants_grad(1).then_some(dpr),
            None,
            None,
        ];
        finish_batch(c, b as f64, &per_term, full)
    }
}
