//! `focal`: the softmax (multi-class) focal loss.
//!
//! Down-weights well-classified rows by `(1 - p_y)^γ`, so training concentrates on hard
//! examples; `γ = 0` is (class-weighted) cross-entropy.
//!
//! **Inputs**
//! - `logits [N, C]` f32, differentiable (the gradient may be written over the logits).
//! - `target [N]` i64: a class in `[0, C)` or `ignore_index`.
//! - `class_weights [C]` f32, optional (all ones): the per-class `α`, finite and `>= 0`.
//!
//! **Parameters**: `gamma` γ (f64, default 2, `>= 0`), `ignore_index` (i64, -100).
//!
//! **Math** (row with target `y`, `u = z_y - LSE(z) = log p_y`):
//! `l = -α_y·(-expm1(u))^γ·u` with `0^0 = 1`;
//! `dl/du = α_y·(1 - p_y)^γ·(γ·p_y·r - 1)` with `r = u / (-expm1(u))` (`r = -1` at `u = 0`),
//! and `dl/dz = dl/du·(e_y - p)`. This form has no `(1 - p_y)^(γ-1)` factor, so it is finite
//! for every `γ >= 0`, also when `p_y = 1`. `mean` divides by `sum α_{y_i}` over contributing
//! rows.
//!
//! **Source**: *Focal Loss for Dense Object Detection* (Lin, Goyal, Girshick, He, Dollár), in
//! its multi-class softmax form. The paper's scalar `α = 0.25` belongs to its binary sigmoid
//! form; here `α` is the optional per-class weight vector.
//!
//! **Row structure** (for a GPU snippet): per-row scalars `LSE`, `u = z_y - LSE`, `p_y = e^u`,
//! `D = dl/du`; per element `g_c = -D·p_c` for `c != y` and `g_y = D·(1 - p_y)`.
//!
//! **GPU path**: the row-wise skeleton with `focal.wgsl` (`a = d = -D`, `b = 0`, `α_y` is the
//! skeleton's `w_y`); f32 throughout, `1 - p_y` from a cancellation-free `expm1`.

use crate::backend::cpu::{RowIo, logsumexp};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, RowCall, RowKernel};
use crate::exec::rowwise::plan_rows;
use crate::exec::rowwise::{RowOut, RowwiseSetup, nonpos, run_rowwise, write_softmax_grad};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{Domain, InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "focal",
        "classification",
        "Softmax focal loss: cross-entropy scaled by (1 - p_y)^gamma, with per-class alpha",
        "Focal Loss for Dense Object Detection (Lin et al.), multi-class softmax form",
    )
    .input(
        InputSpec::f32("logits", "N,C")
            .grad()
            .doc("unnormalised scores"),
    )
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"))
    .input(
        InputSpec::f32("class_weights", "C")
            .optional()
            .doc("per-class alpha, finite and >= 0 (default 1)")
            .domain(Domain::NonNegative),
    )
    .param(ParamSpec::f64(
        "gamma",
        2.0,
        0.0,
        f64::INFINITY,
        "focusing exponent; 0 gives weighted cross-entropy",
    ))
    .param(ParamSpec::ignore_index())
    .in_place();
    LossDef::new(spec, Focal)
        .gpu(GpuKernel::Row(RowKernel {
            id: "focal",
            snippet: include_str!("focal.wgsl"),
            call: |p| RowCall {
                setup: setup(p),
                softcap: 0.0,
                params: vec![p.f64("gamma") as f32],
                needs_swz: false,
            },
        }))
        .test_params(&[("gamma", F64(0.0))])
        .test_params(&[("gamma", F64(0.5))])
        .test_params(&[("gamma", F64(5.0))])
}

/// The implementation.
pub struct Focal;

fn setup(p: &Params) -> RowwiseSetup {
    RowwiseSetup {
        logits: 0,
        target: 1,
        class_weights: Some(2),
        sample_weight: None,
        ignore_index: p.i64("ignore_index"),
        normalizer: 0.0,
    }
}

impl LossImpl for Focal {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        plan_rows("focal", c, &setup(p))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let gamma = p.f64("gamma");
        let cw: Option<Vec<f32>> = c.get(2).map(|t| t.to_f32_vec());
        let setup = setup(p);
        let cw = cw.as_deref();
        run_rowwise("focal", c, setup, |io, y, scale| {
            let alpha = cw.map_or(1.0, |w| w[y] as f64);
            row(io, y, scale, gamma, alpha)
        })
    }
}

/// `dl/du` of the focal loss at `u = log p_y` (without `α`), finite for every `γ >= 0`.
pub(crate) fn focal_dl_du(u: f64, gamma: f64) -> f64 {
    let omp = -u.exp_m1();
    let r = if omp > 0.0 { u / omp } else { -1.0 };
    omp.powf(gamma) * (gamma * u.exp() * r - 1.0)
}

fn row(io: &mut RowIo<'_>, y: usize, scale: f32, gamma: f64, alpha: f64) -> RowOut {
    let x = io.x();
    let lse = logsumexp(x);
    // u <= 0 up to rounding; NaN propagates.
    let u = nonpos(x[y] as f64 - lse);
    let omp = -u.exp_m1();
    let loss = -alpha * omp.powf(gamma) * u;
    if io.wants_grad() {
        let d = scale as f64 * alpha * focal_dl_du(u, gamma);
        write_softmax_grad(io, lse as f32, (-d) as f32, y, (d * omp) as f32);
    }
    RowOut {
        loss,
        lse: lse as f32,
    }
}
