//! `poly1`: the Poly-1 loss, cross-entropy plus `ε·(1 - p_y)`.
//!
//! The first term of the polynomial expansion of cross-entropy gets its coefficient changed
//! from 1 to `1 + ε`; `ε = 0` is plain cross-entropy.
//!
//! **Inputs**
//! - `logits [N, C]` f32, differentiable (the gradient may be written over the logits).
//! - `target [N]` i64: a class in `[0, C)` or `ignore_index`.
//!
//! **Parameters**: `epsilon` ε (f64, default 1, `>= -1`: below -1 the loss is no longer
//! monotone in `p_y`), `ignore_index` (i64, -100).
//!
//! **Math** (`u = z_y - LSE(z) = log p_y`): `l = -u - ε·expm1(u)`,
//! `dl/dz = (1 + ε·p_y)·(p - e_y)`.
//!
//! **Source**: *PolyLoss: A Polynomial Expansion Perspective of Classification Loss
//! Functions* (Leng et al.).
//!
//! **Row structure** (for a GPU snippet): per-row scalars `LSE`, `u`, `A = 1 + ε·e^u`; per
//! element `g_c = A·p_c` for `c != y` and `g_y = A·expm1(u)`.
//!
//! **GPU path**: the row-wise skeleton with `poly1.wgsl` (`a = d = A`, `b = 0`), in f32.

use crate::backend::cpu::logsumexp;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, RowCall, RowKernel};
use crate::exec::rowwise::plan_rows;
use crate::exec::rowwise::{RowOut, RowwiseSetup, nonpos, run_rowwise, write_softmax_grad};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "poly1",
        "classification",
        "Poly-1 loss: cross-entropy plus epsilon * (1 - p_y)",
        "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions (Leng et al.)",
    )
    .input(InputSpec::f32("logits", "N,C").grad().doc("unnormalised scores"))
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"))
    .param(ParamSpec::f64(
        "epsilon",
        1.0,
        -1.0,
        f64::INFINITY,
        "coefficient of the added (1 - p_y) term; 0 gives cross-entropy",
    ))
    .param(ParamSpec::ignore_index())
    .in_place();
    LossDef::new(spec, Poly1)
        .gpu(GpuKernel::Row(RowKernel {
            id: "poly1",
            snippet: include_str!("poly1.wgsl"),
            call: |p| RowCall {
                setup: setup(p),
                softcap: 0.0,
                params: vec![p.f64("epsilon") as f32],
                needs_swz: false,
            },
        }))
        .test_params(&[("epsilon", F64(0.0))])
        .test_params(&[("epsilon", F64(-1.0))])
        .test_params(&[("epsilon", F64(4.0))])
}

/// The implementation.
pub struct Poly1;

fn setup(p: &Params) -> RowwiseSetup {
    RowwiseSetup {
        logits: 0,
        target: 1,
        class_weights: None,
        sample_weight: None,
        ignore_index: p.i64("ignore_index"),
        normalizer: 0.0,
    }
}

impl LossImpl for Poly1 {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        plan_rows("poly1", c, &setup(p))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let eps = p.f64("epsilon");
        let setup = setup(p);
        run_rowwise("poly1", c, setup, |io, y, scale| {
            let x = io.x();
            let lse = logsumexp(x);
            let u = nonpos(x[y] as f64 - lse);
            let em1 = u.exp_m1();
            let loss = -u - eps * em1;
            if io.wants_grad() {
                let a = scale as f64 * (1.0 + eps * u.exp());
                write_softmax_grad(io, lse as f32, a as f32, y, (a * em1) as f32);
            }
            RowOut {
                loss,
                lse: lse as f32,
            }
        })
    }
}
