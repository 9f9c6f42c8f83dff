//! `kd_kl`: knowledge-distillation KL divergence with temperature, `T²·KL(q ‖ p)` between
//! the softened teacher and student distributions.
//!
//! **Inputs**
//! - `student_logits [N, C]` f32, differentiable.
//! - `teacher_logits [N, C]` f32, not differentiable.
//!
//! **Parameters**: `temperature` T (f64, default 1, `> 0`; many distillation codebases use
//! 4). No target: every row contributes.
//!
//! **Math**: `q = softmax(t/T)`, `lp = log_softmax(s/T)`, `l = T²·Σ_c q_c (lq_c - lp_c)`,
//! with `lq` from log-softmax (a class with `q_c = 0` contributes 0, never `0·log 0`);
//! `dl/ds = T·(softmax(s/T) - q)`. The loss is 0 when student equals teacher; `mean` over
//! rows is PyTorch's `KLDivLoss(reduction='batchmean')·T²`.
//!
//! **Source**: *Distilling the Knowledge in a Neural Network* (Hinton, Vinyals, Dean).
//!
//! **Row structure** (for a GPU snippet): per-row scalars `LSE(s/T)`, `LSE(t/T)`; per
//! element `g_c = T·(exp(s_c/T - LSE(s/T)) - exp(t_c/T - LSE(t/T)))`.
//!
//! **GPU path**: `kd_kl.wgsl` under the per-sample kernel contract (one invocation per row:
//! one pass for both online log-sum-exps, one for the loss and the gradient), in f32.

use crate::backend::cpu::{exp_f32, logsumexp_scaled};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::rowwise::{MultiSetup, RowResult, run_rowwise_k};
use crate::exec::targets::check_softmax_classes;
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "kd_kl",
        "classification",
        "Knowledge-distillation KL: T^2 * KL(softmax(teacher/T) || softmax(student/T))",
        "Distilling the Knowledge in a Neural Network (Hinton, Vinyals, Dean)",
    )
    .input(
        InputSpec::f32("student_logits", "N,C")
            .grad()
            .doc("student scores"),
    )
    .input(InputSpec::f32("teacher_logits", "N,C").doc("teacher scores (no gradient)"))
    .param(ParamSpec::f64_open_min(
        "temperature",
        1.0,
        0.0,
        f64::INFINITY,
        "softening temperature T (the loss is scaled by T^2)",
    ));
    LossDef::new(spec, KdKl)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[],
            include_str!("kd_kl.wgsl"),
        )))
        .test_params(&[("temperature", F64(4.0))])
        .test_params(&[("temperature", F64(0.5))])
}

/// The implementation.
pub struct KdKl;

impl LossImpl for KdKl {
    fn plan(&self, _spec: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        check_softmax_classes("kd_kl", c)?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let temp = p.f64("temperature");
        let k = (1.0 / temp) as f32;
        let setup = MultiSetup {
            inputs: [0, 1],
            target: None,
            ignore_index: 0,
            aux: None,
        };
        run_rowwise_k("kd_kl", c, setup, |r| {
            let gs = (r.scale as f64 * temp) as f32;
            let [sio, tio] = &mut r.io;
            let t = tio.x();
            let ls = logsumexp_scaled(sio.x(), k) as f32;
            let lt = logsumexp_scaled(t, k) as f32;
            let mut kl = 0.0f64;
            for (&s, &tc) in sio.x().iter().zip(t) {
                let lq = tc * k - lt;
                let lp = s * k - ls;
                kl += exp_f32(lq) as f64 * (lq - lp) as f64;
            }
            sio.map_grad(|c, s| gs * (exp_f32(s * k - ls) - exp_f32(t[c] * k - lt)));
            RowResult {
                loss: temp * temp * kl,
                aux: 0.0,
            }
        })
    }
}
