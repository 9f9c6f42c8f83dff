//! `symmetric_ce`: symmetric cross-entropy between student and teacher predictions.
//!
//! **Inputs**
//! - `student_logits [N, C]` f32, differentiable.
//! - `teacher_logits [N, C]` f32, differentiable. In the source method the teacher is an
//!   exponential moving average with detached parameters, so callers may discard its
//!   gradient (or not ask for it).
//!
//! **Parameters**: `alpha` α (f64, default 0.5, `[0, 1]`). No target, so no `ignore_index`:
//! every row contributes.
//!
//! **Math** (`p = softmax(s)`, `q = softmax(t)`, `lp`, `lq` their log-softmaxes):
//! `l = -(1-α)·Σ_c q_c lp_c - α·Σ_c p_c lq_c`;
//! `dl/ds = (1-α)(p - q) - α·p ⊙ (lq - Σ_c p_c lq_c)`;
//! `dl/dt = α(q - p) - (1-α)·q ⊙ (lp - Σ_c q_c lp_c)`.
//! Swapping student and teacher and α with `1 - α` leaves the loss unchanged.
//!
//! **Source**: *Robust Mean Teacher for Continual and Gradual Test-Time Adaptation* (Döbler,
//! Marsden, Yang); official code mariodoebler/test-time-adaptation (method RMT). RMT averages
//! this term over two student views with weight 0.25 on each cross term, which is two calls
//! with α = 0.5, averaged; its warm-up uses exactly this form with α = 0.5.
//!
//! **Row structure** (for a GPU snippet): per-row scalars `LSE(s)`, `LSE(t)`,
//! `A = Σ q lp`, `B = Σ p lq`; per element the two gradients above from `p_c`, `q_c`,
//! `lp_c`, `lq_c`.

use crate::backend::cpu::{exp_f32, logsumexp};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::rowwise::{MultiSetup, RowResult, run_rowwise_k};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "symmetric_ce",
        "classification",
        "Symmetric cross-entropy between student and teacher softmaxes: -(1-alpha) sum q log p - alpha sum p log q",
        "Robust Mean Teacher for Continual and Gradual Test-Time Adaptation (Doebler, Marsden, Yang); code mariodoebler/test-time-adaptation (RMT)",
    )
    .input(InputSpec::f32("student_logits", "N,C").grad().doc("student scores"))
    .input(
        InputSpec::f32("teacher_logits", "N,C")
            .grad()
            .doc("teacher scores (its gradient may be discarded)"),
    )
    .param(ParamSpec::f64(
        "alpha",
        0.5,
        0.0,
        1.0,
        "weight of the -sum p log q term (1 - alpha on -sum q log p)",
    ));
    LossDef::new(spec, SymmetricCe)
        .gpu(GpuKernel::Sample(
            SampleKernel::new(&[super::SAMPLE_PRELUDE], include_str!("symmetric_ce.wgsl"))
                .passes(3),
        ))
        .test_params(&[("alpha", F64(0.0))])
        .test_params(&[("alpha", F64(1.0))])
        .test_params(&[("alpha", F64(0.2))])
}

/// The implementation.
pub struct SymmetricCe;

impl LossImpl for SymmetricCe {
    fn plan(&self, _spec: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        let den: Option<f64> = {
            crate::exec::targets::check_softmax_classes("symmetric_ce", c)?;
            None
        };
        Ok(Plan::with_den(den))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let al = p.f64("alpha");
        let setup = MultiSetup {
            inputs: [0, 1],
            target: None,
            ignore_index: 0,
            aux: None,
        };
        run_rowwise_k("symmetric_ce", c, setup, |r| {
            let scale = r.scale as f64;
            let [sio, tio] = &mut r.io;
            let (ls, lt) = (logsumexp(sio.x()) as f32, logsumexp(tio.x()) as f32);
            let (mut qa, mut pb) = (0.0f64, 0.0f64);
            for (&s, &t) in sio.x().iter().zip(tio.x()) {
                let (lp, lq) = (s - ls, t - lt);
                qa += exp_f32(lq) as f64 * lp as f64;
                pb += exp_f32(lp) as f64 * lq as f64;
            }
            let loss = -(1.0 - al) * qa - al * pb;
            {
                let t = tio.x();
                sio.map_grad(|c, s| {
                    let (lp, lq) = (s - ls, t[c] - lt);
                    let (p, q) = (exp_f32(lp) as f64, exp_f32(lq) as f64);
                    (scale * ((1.0 - al) * (p - q) - al * p * (lq as f64 - pb))) as f32
                });
            }
            let s = sio.x();
            tio.map_grad(|c, t| {
                let (lp, lq) = (s[c] - ls, t - lt);
                let (p, q) = (exp_f32(lp) as f64, exp_f32(lq) as f64);
                (scale * (al * (q - p) - (1.0 - al) * q * (lp as f64 - qa))) as f32
            });
            RowResult { loss, aux: 0.0 }
        })
    }
}
