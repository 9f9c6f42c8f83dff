//! `aldr_kl`: adaptive LDR-KL, the LDR-KL loss with a per-instance temperature `λ_i` that is
//! updated in closed form from the previous one.
//!
//! **Inputs**
//! - `logits [N, C]` f32, differentiable (the gradient may be written over the logits).
//! - `target [N]` i64: a class in `[0, C)` or `ignore_index`.
//! - `lambda_prev [N]` f32, optional (every entry `lam0`): the previous per-instance
//!   temperatures `λ̄_i`; must be `> 0` (NaN propagates).
//!
//! **Auxiliary output** `lambda_out [N]`: the new temperatures `λ_i` (ignored rows copy
//! `lambda_prev`). The official code keeps `λ` per training example across epochs; a caller
//! that wants the same behaviour stores `lambda_out` and passes it back as `lambda_prev`.
//!
//! **Parameters**: `lam0` (f64, default 10, `> 0`), `alpha` (f64, default 2, `> 1`),
//! `margin` (f64, default 0.1, `>= 0`), `normalize` (`none | softplus_mean | l1_mean`,
//! default `l1_mean`), `ignore_index` (i64, -100). `C >= 2` is required (the update divides
//! by `log C`).
//!
//! **Math** (`g`, `a` as in `ldr_kl`): `log q̂ = log_softmax(a/λ̄)`,
//! `KL = log C + Σ_c q̂_c log q̂_c`, `λ_i = lam0 - lam0·KL/(alpha·log C)` (in
//! `[lam0(1 - 1/alpha), lam0]`), and
//! `l = λ_i·(LSE(a/λ_i) - log C) - (alpha·log C/(2·lam0))·(λ_i - lam0)²`. `λ_i` is a constant
//! for the gradient (detached, as in the official code), so `dl/dg = softmax(a/λ_i) - e_y`,
//! chained through the normalisation as in `ldr_kl`.
//!
//! **Source**: *Label Distributionally Robust Losses for Multi-class Classification:
//! Consistency, Robustness and Adaptivity* (Zhu, Ying, Yang); official code
//! Optimization-AI/ICML2023_LDR, class `ALDRLoss_V1`. Differences from that code, as
//! specified: `q̂` is the exact maximiser `softmax(a/λ̄)` (with the margin, by log-softmax)
//! rather than the code's `g/λ̄` without margin plus a 1e-5 renormalisation (a difference of
//! order margin/λ and 1e-5·C); the code is stateful (a buffer indexed by dataset id) while
//! this loss is stateless (`lambda_prev` in, `lambda_out` out; the code's first epoch is
//! `lambda_prev` absent); the defaults are the official runner's (`alpha` 2, margin 0.1,
//! `λ₀` 10, L1-mean normalisation without softplus).
//!
//! **Row structure** (for a GPU snippet): the normaliser; `LSE(a/λ̄)` and
//! `Σ q̂ log q̂` (per-row `KL`, then `λ_i`); `LSE(a/λ_i)`; then the `ldr_kl` per-element
//! gradient with `λ = λ_i`.
//!
//! **GPU path**: `aldr_kl.wgsl` (with the LDR helpers of `ldr.wgsl`, shared with `ldr_kl`)
//! on the per-sample kernel contract, one thread per row, writing `lambda_out` as the
//! contract's auxiliary output; the same surrogate gradient (`λ_i` constant), in f32 with
//! compensated sums, after the same checks (`C >= 2`, `lambda_prev > 0`, targets).

use super::ldr_kl::{LdrRow, Margins, NORMALIZE};
use crate::backend::cpu::with_scratch;
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::rowwise::{MultiSetup, RowResult, run_rowwise_k};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::{AuxSpec, Domain, InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "aldr_kl",
        "classification",
        "Adaptive LDR-KL: LDR-KL with a per-instance temperature updated in closed form (stateless: lambda_prev in, lambda_out out)",
        "Label Distributionally Robust Losses for Multi-class Classification: Consistency, Robustness and Adaptivity (Zhu, Ying, Yang); code Optimization-AI/ICML2023_LDR (ALDRLoss_V1)",
    )
    .input(InputSpec::f32("logits", "N,C").grad().doc("unnormalised scores"))
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"))
    .input(
        InputSpec::f32("lambda_prev", "N")
            .optional()
            .doc("previous per-instance temperatures, > 0 (default lam0)")
            .domain(Domain::Positive),
    )
    .param(ParamSpec::f64_open_min(
        "lam0",
        10.0,
        0.0,
        f64::INFINITY,
        "reference temperature lambda_0 (and the prior of the update)",
    ))
    .param(ParamSpec::f64_open_min(
        "alpha",
        2.0,
        1.0,
        f64::INFINITY,
        "strength of the quadratic pull towards lam0 (> 1)",
    ))
    .param(ParamSpec::f64(
        "margin",
        0.1,
        0.0,
        f64::INFINITY,
        "margin added to every non-target class",
    ))
    .param(ParamSpec::choice(
        "normalize",
        "l1_mean",
        &NORMALIZE,
        "row normalisation before the loss: none, softplus_mean, l1_mean (official runner)",
    ))
    .param(ParamSpec::ignore_index())
    .aux(AuxSpec::new(
        "lambda_out",
        "N",
        "updated per-instance temperatures (ignored rows copy lambda_prev)",
    ))
    .in_place();
    LossDef::new(spec, AldrKl)
        .gpu(GpuKernel::Sample(
            SampleKernel::new(&[super::SAMPLE_PRELUDE], concat!(include_str!("ldr.wgsl"), include_str!("aldr_kl.wgsl"))).passes(6),
        ))
        .surrogate_gradient_when(
            "the per-instance temperature is treated as a constant (stateless form of the adaptive method)",
            |_| true,
        )
        .test_params(&[
            ("normalize", Enum(0)),
            ("lam0", F64(1.0)),
            ("margin", F64(0.0)),
        ])
        .test_params(&[
            ("normalize", Enum(1)),
            ("lam0", F64(0.5)),
            ("alpha", F64(3.0)),
        ])
        .test_params(&[
            ("alpha", F64(1.5)),
            ("lam0", F64(2.0)),
            ("margin", F64(0.3)),
        ])
}

/// The implementation.
pub struct AldrKl;

/// The checks before any row (`C >= 2`, `lambda_prev > 0`, device data read back) and the
/// previous temperatures of the rows (`lam0` when `lambda_prev` is absent).
fn previous_lambdas(c: &Compute<'_>, lam0: f64) -> Result<Vec<f32>> {
    let id = "aldr_kl";
    let classes = c.dim("C");
    if classes < 2 {
        bail!(
            ShapeMismatch,
            "{id}: logits have C = {classes} classes; the temperature update needs C >= 2"
        );
    }
    Ok(match c.get(2) {
        Some(t) => {
            let v = t.read_f32()?;
            if let Some(i) = v.iter().position(|&x| x <= 0.0) {
                bail!(
                    InvalidInput,
                    "{id}: lambda_prev[{i}] = {} must be > 0",
                    v[i]
                );
            }
            v
        }
        None => vec![lam0 as f32; c.dim("N")],
    })
}

impl LossImpl for AldrKl {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        let den: Option<f64> = {
            previous_lambdas(c, p.f64("lam0"))?;
            Some(crate::exec::targets::target_den(
                "aldr_kl",
                c,
                1,
                p.i64("ignore_index"),
            )?)
        };
        Ok(Plan::with_den(den))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let id = "aldr_kl";
        let mg = Margins::from_params(p);
        let lam0 = p.f64("lam0");
        let alpha = p.f64("alpha");
        let classes = c.dim("C");
        let prev = previous_lambdas(c, lam0)?;
        let log_c = (classes as f64).ln();
        let pull = alpha * log_c / (2.0 * lam0);
        let setup = MultiSetup {
            inputs: [0],
            target: Some(1),
            ignore_index: p.i64("ignore_index"),
            aux: Some(("lambda_out", &prev)),
        };
        run_rowwise_k(id, c, setup, |r| {
            let (y, scale) = (r.y, r.scale);
            let lam_bar = prev[r.i] as f64;
            let [io] = &mut r.io;
            with_scratch(2 * classes, |buf| {
                let (g, w) = buf.split_at_mut(classes);
                let den = mg.normalise(io.x(), g);
                // q̂ = softmax(a/λ̄) and its KL to the uniform distribution.
                let lse1 = mg.scaled(g, y, lam_bar, w);
                let neg_ent: f64 = w
                    .iter()
                    .map(|&v| {
                        let lq = v as f64 - lse1;
                        lq.exp() * lq
                    })
                    .sum();
                let kl = log_c + neg_ent;
                let lam = lam0 - lam0 * kl / (alpha * log_c);
                let lse2 = mg.scaled(g, y, lam, w);
                let st = LdrRow {
                    g,
                    w,
                    lse: lse2,
                    den,
                };
                mg.backward(io, &st, y, scale);
                RowResult {
                    loss: lam * (lse2 - log_c) - pull * (lam - lam0) * (lam - lam0),
                    aux: lam as f32,
                }
            })
        })
    }
}
