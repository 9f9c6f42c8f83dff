//! `noisefit_hybrid`: the NoiseFiT hybrid objective, cross-entropy on the clean pass plus a
//! soft cross-entropy from the clean pass to two noise-injected passes plus a consistency KL
//! between the noisy passes.
//!
//! **Inputs**
//! - `logits [N, C]` f32, differentiable: the clean forward pass.
//! - `noisy_logits_1 [N, C]` f32, differentiable: the first noise-injected pass.
//! - `noisy_logits_2 [N, C]` f32, differentiable: the second noise-injected pass.
//! - `target [N]` i64: a class in `[0, C)` or `ignore_index` (rows are already aligned: the
//!   causal-LM label shift is the caller's job).
//!
//! **Parameters**: `alpha` α (f64, default 0.5, `[0, 1]`), `lambda_consistency` λ (f64,
//! default 0.1, `>= 0`), `temperature` T (f64, default 1, `> 0`, applied to the soft targets
//! only, with no T² factor), `detach_targets` (bool, default false), `ignore_index` (i64,
//! -100).
//!
//! **Math** (`t = softmax(z/T)`, `lt = log t`, `q_k = softmax(noisy_k)`, `l_k = log q_k`):
//! `ce = LSE(z) - z_y`, `soft = ½[KL(t‖q1) + KL(t‖q2)]`, `cons = KL(q2‖q1)`,
//! `l = α·ce + (1-α)·soft + λ·cons`. With `v = lt - ½(l1 + l2)` and `ω = l2 - l1`:
//! `dl/dz = α(softmax(z) - e_y) + (1-α)(1/T)·t ⊙ (v - Σ t v)` (second term 0 when
//! `detach_targets`), `dl/dn1 = (1-α)·½(q1 - t) + λ(q1 - q2)`,
//! `dl/dn2 = (1-α)·½(q2 - t) + λ·q2 ⊙ (ω - Σ q2 ω)`.
//!
//! **Source**: *Noise Augmented Fine Tuning for Mitigating Hallucinations in Large Language
//! Models*; official code akhadangi/NoiseFiT (the v1 "manual SNR" trainer the paper
//! reports). In that trainer the soft targets are not detached (gradient flows into the
//! clean pass), which `detach_targets = false` reproduces; it divides every term by the
//! number of non-ignored tokens, which is `mean` here. The v2 trainer's R-Drop ablation is a
//! different objective and is not provided.
//!
//! **Row structure** (for a GPU snippet): per-row scalars `LSE(z)`, `LSE(z/T)`, `LSE(n1)`,
//! `LSE(n2)`, `soft = Σ t v`, `cons = Σ q2 ω`; per element the three gradients above.
//!
//! **GPU path**: `noisefit_hybrid.wgsl` on the per-sample kernel contract, one thread per
//! row (four online log-sum-exps in one pass, then `soft` and `cons`, then the three
//! gradients, the same surrogate when `detach_targets`), in f32 with compensated sums;
//! `mean` divides by the rows not ignored.

use crate::backend::cpu::{exp_f32, logsumexp, logsumexp_scaled};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::rowwise::{MultiSetup, RowResult, run_rowwise_k};
use crate::params::{
    ParamSpec,
    ParamValue::{Bool, F64},
    Params,
};
use crate::spec::{InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "noisefit_hybrid",
        "classification",
        "NoiseFiT hybrid: alpha*CE(clean) + (1-alpha)*soft CE clean->noisy passes + lambda*KL(noisy2||noisy1)",
        "Noise Augmented Fine Tuning for Mitigating Hallucinations in Large Language Models; code akhadangi/NoiseFiT (v1 trainer)",
    )
    .input(InputSpec::f32("logits", "N,C").grad().doc("clean forward pass scores"))
    .input(
        InputSpec::f32("noisy_logits_1", "N,C")
            .grad()
            .doc("first noise-injected pass scores"),
    )
    .input(
        InputSpec::f32("noisy_logits_2", "N,C")
            .grad()
            .doc("second noise-injected pass scores"),
    )
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"))
    .param(ParamSpec::f64(
        "alpha",
        0.5,
        0.0,
        1.0,
        "weight of the hard cross-entropy (1 - alpha on the soft term)",
    ))
    .param(ParamSpec::f64(
        "lambda_consistency",
        0.1,
        0.0,
        f64::INFINITY,
        "weight of the consistency KL(noisy2 || noisy1)",
    ))
    .param(ParamSpec::f64_open_min(
        "temperature",
        1.0,
        0.0,
        f64::INFINITY,
        "temperature of the clean soft targets",
    ))
    .param(ParamSpec::bool(
        "detach_targets",
        false,
        "treat the clean soft targets as constants (no gradient through them)",
    ))
    .param(ParamSpec::ignore_index());
    LossDef::new(spec, NoiseFit)
        .gpu(GpuKernel::Sample(
            SampleKernel::new(
                &[super::SAMPLE_PRELUDE],
                include_str!("noisefit_hybrid.wgsl"),
            )
            .passes(3),
        ))
        .surrogate_gradient_when(
            "the soft targets are detached when detach_targets is on, as the method specifies",
            |p| p.bool("detach_targets"),
        )
        .test_params(&[
            ("alpha", F64(0.3)),
            ("lambda_consistency", F64(0.5)),
            ("temperature", F64(2.0)),
        ])
        .test_params(&[("detach_targets", Bool(true)), ("temperature", F64(0.5))])
        .test_params(&[("alpha", F64(0.0)), ("lambda_consistency", F64(1.0))])
        .test_params(&[("alpha", F64(1.0)), ("lambda_consistency", F64(0.0))])
}

/// The implementation.
pub struct NoiseFit;

impl LossImpl for NoiseFit {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        let den: Option<f64> = {
            Some(crate::exec::targets::target_den(
                "noisefit_hybrid",
                c,
                3,
                p.i64("ignore_index"),
            )?)
        };
        Ok(Plan::with_den(den))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let al = p.f64("alpha");
        let lc = p.f64("lambda_consistency");
        let temp = p.f64("temperature");
        let detach = p.bool("detach_targets");
        let k = (1.0 / temp) as f32;
        let setup = MultiSetup {
            inputs: [0, 1, 2],
            target: Some(3),
            ignore_index: p.i64("ignore_index"),
            aux: None,
        };
        run_rowwise_k("noisefit_hybrid", c, setup, |r| {
            let (y, sc) = (r.y, r.scale as f64);
            let [zio, n1io, n2io] = &mut r.io;
            let (l0, ltl, l1l, l2l) = (
                logsumexp(zio.x()),
                logsumexp_scaled(zio.x(), k) as f32,
                logsumexp(n1io.x()) as f32,
                logsumexp(n2io.x()) as f32,
            );
            // Per element: the log-probabilities lt, l1, l2 from z_c, n1_c, n2_c.
            let logs = |zc: f32, a: f32, b: f32| (zc * k - ltl, a - l1l, b - l2l);
            let (mut soft, mut cons) = (0.0f64, 0.0f64);
            {
                let (z, n1, n2) = (zio.x(), n1io.x(), n2io.x());
                for c in 0..z.len() {
                    let (lt, l1, l2) = logs(z[c], n1[c], n2[c]);
                    let v = lt as f64 - 0.5 * (l1 as f64 + l2 as f64);
                    soft += exp_f32(lt) as f64 * v;
                    cons += exp_f32(l2) as f64 * (l2 as f64 - l1 as f64);
                }
            }
            let ce = l0 - zio.x()[y] as f64;
            let loss = al * ce + (1.0 - al) * soft + lc * cons;
            let half = 0.5 * (1.0 - al);
            {
                let (z, n2) = (zio.x(), n2io.x());
                n1io.map_grad(|c, n1c| {
                    let (lt, l1, l2) = logs(z[c], n1c, n2[c]);
                    let (t, q1, q2) = (exp_f32(lt) as f64, exp_f32(l1) as f64, exp_f32(l2) as f64);
                    (sc * (half * (q1 - t) + lc * (q1 - q2))) as f32
                });
            }
            {
                let (z, n1) = (zio.x(), n1io.x());
                n2io.map_grad(|c, n2c| {
                    let (lt, l1, l2) = logs(z[c], n1[c], n2c);
                    let (t, q2) = (exp_f32(lt) as f64, exp_f32(l2) as f64);
                    let w = l2 as f64 - l1 as f64;
                    (sc * (half * (q2 - t) + lc * q2 * (w - cons))) as f32
                });
            }
            let soft_k = if detach { 0.0 } else { (1.0 - al) / temp };
            let l0f = l0 as f32;
            let (n1, n2) = (n1io.x(), n2io.x());
            zio.map_grad(|c, zc| {
                let (lt, l1, l2) = logs(zc, n1[c], n2[c]);
                let hard = if c == y {
                    ((zc - l0f) as f64).exp_m1()
                } else {
                    exp_f32(zc - l0f) as f64
                };
                let v = lt as f64 - 0.5 * (l1 as f64 + l2 as f64);
                (sc * (al * hard + soft_k * exp_f32(lt) as f64 * (v - soft))) as f32
            });
            RowResult { loss, aux: 0.0 }
        })
    }
}
