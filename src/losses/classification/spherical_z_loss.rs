//! `spherical_z_loss`: the Z-loss of the spherical family, a softplus of the standardised
//! target logit, invariant to shifting and scaling the logits.
//!
//! Not PaLM's z-loss regulariser (that one is `cross_entropy`'s `z_loss_coef`).
//!
//! **Inputs**
//! - `logits [N, C]` f32, differentiable (the gradient may be written over the logits).
//! - `target [N]` i64: a class in `[0, C)` or `ignore_index`.
//!
//! **Parameters**: `a` (f64, default 1, `> 0`: sharpness), `b` (f64, default 0, any finite
//! value: offset), `ignore_index` (i64, -100).
//!
//! **Math** (row `o`): `μ = mean(o)`, `σ = sqrt(mean((o - μ)²))` (population standard
//! deviation, two passes in f64), `σ̃ = σ + 1e-12`, `z_y = (o_y - μ)/σ̃`,
//! `l = softplus(a·(b - z_y))/a`. With `s = sigmoid(a·(b - z_y))`:
//! `dl/do_k = -(s/σ̃)·([k=y] - 1/C - z_y·(o_k - μ)/(C·σ))`. When every logit of the row is
//! equal (and for `C = 1`), `σ = 0`, `z_y = 0`, `l = softplus(a·b)/a` and the gradient is zero,
//! as the specification's edge-case rule states (the formula's `1/σ̃ = 1e12` factor is not
//! used there). The loss is invariant to `o -> α·o + β` for `α > 0`.
//!
//! **Source**: *The Z-loss: a shift and scale invariant classification loss belonging to the
//! Spherical Family* (de Brébisson, Vincent); the authors' example is in
//! pascal20100/factored_output_layer. The paper tunes `a` and `b` per task; the defaults
//! `a = 1`, `b = 0` and the 1e-12 are those of the authors' example
//! `softplus((μ - o_y)/(σ + 1e-12))`.
//!
//! **Row structure** (for a GPU snippet): per-row scalars `μ`, `σ` (second pass), `z_y`,
//! `s`; per element `g_k = -(s/σ̃)·([k=y] - 1/C - z_y·(o_k - μ)/(C·σ))`, 0 when `σ = 0`.
//!
//! **GPU path**: `spherical_z_loss.wgsl` on the per-sample kernel contract, one thread per
//! row (mean and spread with compensated f32 sums; an all-equal row is detected exactly as
//! `max = min`), after the same target validation; `mean` divides by the rows not ignored.

use crate::backend::cpu::{sigmoid, softplus};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::rowwise::{RowOut, RowwiseSetup, run_rowwise};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{InputSpec, LossSpec};

/// The standard-deviation epsilon of the authors' example.
const SIGMA_EPS: f64 = 1e-12;

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "spherical_z_loss",
        "classification",
        "Spherical Z-loss: softplus(a * (b - z_y)) / a of the standardised target logit; shift and scale invariant",
        "The Z-loss: a shift and scale invariant classification loss belonging to the Spherical Family (de Brebisson, Vincent); example pascal20100/factored_output_layer",
    )
    .input(InputSpec::f32("logits", "N,C").grad().doc("unnormalised scores"))
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"))
    .param(ParamSpec::f64_open_min(
        "a",
        1.0,
        0.0,
        f64::INFINITY,
        "sharpness of the softplus",
    ))
    .param(ParamSpec::f64(
        "b",
        0.0,
        f64::NEG_INFINITY,
        f64::INFINITY,
        "offset of the standardised target logit",
    ))
    .param(ParamSpec::ignore_index())
    .in_place();
    LossDef::new(spec, SphericalZ)
        .gpu(GpuKernel::Sample(
            SampleKernel::new(
                &[super::SAMPLE_PRELUDE],
                include_str!("spherical_z_loss.wgsl"),
            )
            .passes(3),
        ))
        .test_params(&[("a", F64(2.5)), ("b", F64(0.7))])
        .test_params(&[("a", F64(0.3)), ("b", F64(-1.2))])
        .test_params(&[("a", F64(8.0)), ("b", F64(2.0))])
}

/// The implementation.
pub struct SphericalZ;

impl LossImpl for SphericalZ {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        let den: Option<f64> = {
            Some(crate::exec::targets::target_den(
                "spherical_z_loss",
                c,
                1,
                p.i64("ignore_index"),
            )?)
        };
        Ok(Plan::with_den(den))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let a = p.f64("a");
        let b = p.f64("b");
        let setup = RowwiseSetup {
            logits: 0,
            target: 1,
            class_weights: None,
            sample_weight: None,
            ignore_index: p.i64("ignore_index"),
            normalizer: 0.0,
        };
        run_rowwise("spherical_z_loss", c, setup, |io, y, scale| {
            let o = io.x();
            let cn = o.len() as f64;
            let mu = o.iter().map(|&v| v as f64).sum::<f64>() / cn;
            let var = o
                .iter()
                .map(|&v| {
                    let d = v as f64 - mu;
                    d * d
                })
                .sum::<f64>()
                / cn;
            let sigma = var.sqrt();
            let st = sigma + SIGMA_EPS;
            let zy = (o[y] as f64 - mu) / st;
            let t = a * (b - zy);
            let loss = softplus(t) / a;
            if sigma == 0.0 {
                io.zero_grad();
            } else {
                let k0 = -(scale as f64) * sigmoid(t) / st;
                let k1 = zy / (cn * sigma);
                let inv_c = 1.0 / cn;
                io.map_grad(|k, ok| {
                    let e = if k == y { 1.0 } else { 0.0 };
                    (k0 * (e - inv_c - k1 * (ok as f64 - mu))) as f32
                });
            }
            RowOut { loss, lse: 0.0 }
        })
    }
}
