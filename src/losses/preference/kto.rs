//! `kto`: Kahneman-Tversky Optimization on unpaired desirable / undesirable responses.
//!
//! **Inputs**: `logps [N]` (differentiable, summed policy log-probs), `ref_logps [N]`,
//! `desirable [N]` i64 (1 desirable, 0 undesirable), `kl_logps`, `kl_ref_logps [M]` (optional,
//! both or neither: policy and reference log-probs of mismatched (prompt, completion) pairs,
//! for the KL reference point).
//!
//! **Parameters**: `beta` β (0.1, `(0, ∞)`), `desirable_weight` λ_D (1, `[0, ∞)`),
//! `undesirable_weight` λ_U (1, `[0, ∞)`), `loss_type` (`kto|apo_zero_unpaired`).
//!
//! **Math**: `lr = logps − ref_logps`; `z₀ = max(0, mean(kl_logps − kl_ref_logps))` for `kto`
//! when the KL inputs are given (0 when absent or `M = 0`; a constant, no gradient), else 0.
//! `x = β(lr − z₀)`: desirable `λ_D(1 − σ(x))`, undesirable `λ_U(1 − σ(−x))` = `λ_U σ(x)`
//! (`apo_zero_unpaired` is the same with `z₀ = 0`); `∂ℓ/∂logps = ∓λ β σ(x)σ(−x)`. `mean`
//! divides by `N` (TRL concatenates both kinds and averages).
//!
//! **Source**: *KTO: Model Alignment as Prospect Theoretic Optimization* (TRL `KTOTrainer`,
//! loss types `kto`, `apo_zero_unpaired`). TRL estimates `z₀` from the batch's mismatched pairs,
//! averaged across processes, clamped at 0 and detached; here the pairs are inputs and the
//! cross-process average is the caller's.
//!
//! **GPU path**: `kto.wgsl`, one invocation per response under the per-sample kernel
//! contract, after the CPU path's checks (the labels are read back). The KL inputs `[M]` are
//! bound whole; every invocation takes the same blocked f32 sum (`lk_acc`) for `z₀` (O(M) per
//! response, meant for a batch's worth of mismatched pairs).

use crate::backend::cpu::sigmoid;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{both_or_neither, check_values, required, run_rows, values};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::{Domain, InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "kto",
        "preference",
        "KTO: prospect-theoretic loss on unpaired desirable / undesirable responses",
        "KTO: Model Alignment as Prospect Theoretic Optimization (TRL KTOTrainer)",
    )
    .rows("N")
    .input(
        InputSpec::f32("logps", "N")
            .grad()
            .domain(Domain::LogProb)
            .doc("policy log-prob of each response (summed)"),
    )
    .input(
        InputSpec::f32("ref_logps", "N")
            .domain(Domain::LogProb)
            .doc("reference log-prob of each response"),
    )
    .input(
        InputSpec::i64("desirable", "N")
            .domain(Domain::Binary)
            .doc("1 desirable, 0 undesirable"),
    )
    .input(
        InputSpec::f32("kl_logps", "M")
            .optional()
            .domain(Domain::LogProb)
            .doc("policy log-probs of mismatched pairs (KL reference point)"),
    )
    .input(
        InputSpec::f32("kl_ref_logps", "M")
            .optional()
            .domain(Domain::LogProb)
            .doc("reference log-probs of the mismatched pairs"),
    )
    .param(super::dpo::beta_param(0.1))
    .param(ParamSpec::f64(
        "desirable_weight",
        1.0,
        0.0,
        f64::INFINITY,
        "lambda_D",
    ))
    .param(ParamSpec::f64(
        "undesirable_weight",
        1.0,
        0.0,
        f64::INFINITY,
        "lambda_U",
    ))
    .param(ParamSpec::choice(
        "loss_type",
        "kto",
        &["kto", "apo_zero_unpaired"],
        "TRL KTOTrainer loss type",
    ));
    LossDef::new(spec, Kto)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("kto.wgsl"),
        )))
        .test_params(&[
            ("beta", F64(0.5)),
            ("desirable_weight", F64(1.5)),
            ("undesirable_weight", F64(0.7)),
        ])
        .test_params(&[("loss_type", Enum(1)), ("beta", F64(0.4))])
}

/// The implementation.
pub struct Kto;

/// The checks of both backends: labels 0 or 1, KL inputs both or neither. Returns the labels
/// and whether the KL inputs were given.
fn checked_labels(c: &Compute<'_>) -> Result<(Vec<i64>, bool)> {
    let id = "kto";
    let des: Vec<i64> = match c.get(2) {
        Some(t) => t.read_i64()?,
        None => Vec::new(),
    };
    let desf: Vec<f64> = des.iter().map(|&d| d as f64).collect();
    check_values(
        id,
        "desirable",
        &desf,
        |d| d == 0.0 || d == 1.0,
        "is not 0 or 1",
    )?;
    let kl = both_or_neither(id, c, 3, 4, "kl_logps and kl_ref_logps")?;
    Ok((des, kl))
}

impl LossImpl for Kto {
    fn plan(&self, _spec: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        (checked_labels(c).map(drop))?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let id = "kto";
        let n = c.dim("N");
        let beta = p.f64("beta");
        let (wd, wu) = (p.f64("desirable_weight"), p.f64("undesirable_weight"));
        let kto = p.choice("loss_type") == "kto";
        let lp = required(id, c, 0)?;
        let rf = required(id, c, 1)?;
        let (des, kl) = checked_labels(c)?;
        let mut z0 = 0.0;
        if kl && kto {
            let (a, b) = (values(c, 3)?, values(c, 4)?);
            if let Some((a, b)) = a.zip(b).filter(|(a, _)| !a.is_empty()) {
                let m: f64 = (0..a.len()).map(|j| a.at(j) - b.at(j)).sum::<f64>() / a.len() as f64;
                z0 = m.max(0.0);
            }
        }
        run_rows(spec, c, n, n as f64, |i, g| {
            let x = beta * (lp.at(i) - rf.at(i) - z0);
            let d = beta * sigmoid(x) * sigmoid(-x);
            let (loss, dl) = if des[i] == 1 {
                (wd * (1.0 - sigmoid(x)), -wd * d)
            } else {
                (wu * sigmoid(x), wu * d)
            };
            g.set(0, 0, dl);
            Ok(loss)
        })
    }
}
