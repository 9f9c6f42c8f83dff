//! `cross_entropy`: softmax cross-entropy with `ignore_index`, class weights, label
//! smoothing, z-loss and logit soft-capping.
//!
//! **Inputs**
//! - `logits [N, C]` f32, differentiable (the gradient may be written over the logits).
//! - `target [N]` i64: a class in `[0, C)` or `ignore_index`.
//! - `class_weights [C]` f32, optional (all ones): finite and `>= 0`.
//! - `sample_weight [N]` f32, optional (all ones): multiplies each row's loss and gradient
//!   and enters the `mean` denominator.
//!
//! **Parameters**: `ignore_index` (i64, -100), `label_smoothing` ε (f64, 0, `[0, 1]`),
//! `z_loss_coef` κ (f64, 0, `>= 0`), `softcap` (f64, 0 = off, `>= 0`), `normalizer` (f64, 0 =
//! off, `>= 0`: when positive, `mean` divides by it instead of the weighted count of
//! contributing rows, e.g. the global token count when gradients are accumulated over
//! micro-batches).
//!
//! **Math** (row with target `y`, weights `w`, `W = sum_c w_c`):
//! `z' = cap·tanh(z/cap)` when `cap > 0`; `L = LSE(z')`;
//! `l = (1-ε)·w_y·(L - z'_y) + (ε/C)·(W·L - sum_c w_c z'_c) + κ·w_y·L²`;
//! `dl/dz'_c = (1-ε)·w_y·(p_c - [c=y]) + (ε/C)·(W·p_c - w_c) + 2κ·w_y·L·p_c`, times
//! `1 - (z'_c/cap)²` for the soft-cap. `mean` divides by `sum of w_{y_i}·s_i` over
//! contributing rows.
//!
//! **Auxiliary outputs**: `lse [N]` (the row's `L`; 0 for ignored rows) and `correct [N]`
//! (1 when the first arg-max of the logits is the target, else 0; 0 for ignored rows).
//!
//! **Sources**: PyTorch's `cross_entropy` semantics (weights, label smoothing, ignore_index);
//! *PaLM: Scaling Language Modeling with Pathways* (z-loss `κ·log²Z`); *Gemma 2: Improving
//! Open Language Models at a Practical Size* (soft-capping `cap·tanh(z/cap)`).
//!
//! **CPU path**: one streaming pass per row reads the logits once (blockwise online max and
//! sum of exponentials, vectorised exp, f64 accumulation across blocks) and writes the
//! exponentials into the gradient buffer (or over the logits, in place); a second pass,
//! over the row while it is still in cache, scales them into the gradient (no second exp). Rows run in parallel; the result does not depend on the thread count.

use crate::backend::cpu::{RowIo, SoftmaxRow, max_sumexp, softmax_affine};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, RowCall, RowKernel};
use crate::exec::rowwise::plan_rows;
use crate::exec::rowwise::{RowOut, RowwiseSetup, run_rowwise};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{AuxSpec, Domain, InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "cross_entropy",
        "classification",
        "Softmax cross-entropy with ignore_index, class/sample weights, label smoothing, z-loss and soft-capping",
        "PyTorch cross_entropy semantics; PaLM (z-loss); Gemma 2 (logit soft-capping)",
    )
    .input(InputSpec::f32("logits", "N,C").grad().doc("unnormalised scores"))
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"))
    .input(
        InputSpec::f32("class_weights", "C")
            .optional()
            .doc("per-class weight, finite and >= 0 (default 1)")
            .domain(Domain::NonNegative),
    )
    .input(
        InputSpec::f32("sample_weight", "N")
            .optional()
            .doc("per-row weight, finite and >= 0 (default 1)")
            .domain(Domain::NonNegative),
    )
    .param(ParamSpec::ignore_index())
    .param(ParamSpec::f64(
        "label_smoothing",
        0.0,
        0.0,
        1.0,
        "mass spread uniformly over the classes",
    ))
    .param(ParamSpec::f64(
        "z_loss_coef",
        0.0,
        0.0,
        f64::INFINITY,
        "coefficient of the z-loss kappa * LSE^2",
    ))
    .param(ParamSpec::f64(
        "softcap",
        0.0,
        0.0,
        f64::INFINITY,
        "soft-cap logits to cap*tanh(z/cap) first; 0 = off",
    ))
    .param(ParamSpec::f64(
        "normalizer",
        0.0,
        0.0,
        f64::INFINITY,
        "when > 0, mean divides by this instead of the weighted count of contributing rows",
    ))
    .aux(AuxSpec::new("lse", "N", "per-row log-sum-exp of the (soft-capped) logits"))
    .aux(AuxSpec::new(
        "correct",
        "N",
        "1 where the arg-max of the logits equals the target, else 0",
    ))
    .in_place();
    LossDef::new(spec, CrossEntropy)
        .gpu(GpuKernel::Row(RowKernel {
            id: "cross_entropy",
            snippet: include_str!("cross_entropy.wgsl"),
            call: gpu_call,
        }))
        .mean_rule(crate::exec::def::MeanRule::SampleWeightedRows)
        .test_params(&[("label_smoothing", F64(0.1))])
        .test_params(&[("z_loss_coef", F64(1e-3)), ("label_smoothing", F64(0.2))])
        .test_params(&[("softcap", F64(3.0))])
        .test_params(&[
            ("softcap", F64(5.0)),
            ("label_smoothing", F64(0.3)),
            ("z_loss_coef", F64(0.01)),
        ])
        .test_params(&[("normalizer", F64(7.0))])
}

/// The implementation.
pub struct CrossEntropy;

fn setup(p: &Params) -> RowwiseSetup {
    RowwiseSetup {
        logits: 0,
        target: 1,
        class_weights: Some(2),
        sample_weight: Some(3),
        ignore_index: p.i64("ignore_index"),
        normalizer: p.f64("normalizer"),
    }
}

fn gpu_call(p: &Params) -> RowCall {
    RowCall {
        setup: setup(p),
        softcap: p.f64("softcap") as f32,
        params: vec![p.f64("label_smoothing") as f32, p.f64("z_loss_coef") as f32],
        needs_swz: p.f64("label_smoothing") > 0.0,
    }
}

impl LossImpl for CrossEntropy {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        plan_rows("cross_entropy", c, &setup(p))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let eps = p.f64("label_smoothing");
        let kappa = p.f64("z_loss_coef");
        let cap = p.f64("softcap") as f32;
        let classes = c.dim("C");
        let cw: Option<Vec<f32>> = c.get(2).map(|t| t.to_f32_vec());
        let wsum: f64 = cw
            .as_ref()
            .map_or(classes as f64, |w| w.iter().map(|&v| v as f64).sum());
        let setup = setup(p);
        let k = Row {
            eps,
            kappa,
            cap,
            classes,
            cw: cw.as_deref(),
            wsum,
        };
        run_rowwise("cross_entropy", c, setup, |io, y, scale| {
            k.row(io, y, scale)
        })
    }
}

struct Row<'a> {
    eps: f64,
    kappa: f64,
    cap: f32,
    classes: usize,
    cw: Option<&'a [f32]>,
    wsum: f64,
}

impl Row<'_> {
    fn row(&self, io: &mut RowIo<'_>, y: usize, scale: f32) -> RowOut {
        if self.cap > 0.0 {
            return self.row_capped(io, y, scale);
        }
        let x = io.x();
        let zy = x[y] as f64;
        let swz = if self.eps > 0.0 {
            self.weighted_sum(x)
        } else {
            0.0
        };
        if !io.wants_grad() {
            let (m, s) = max_sumexp(x);
            let l = m as f64 + s.ln();
            return RowOut {
                loss: self.loss(l, zy, swz, y),
                lse: l as f32,
            };
        }
        // One read of the row: exponentials go straight into the gradient buffer (or over
        // the logits), then one in-cache pass scales them into the gradient.
        let mut sm = SoftmaxRow::default();
        match io {
            RowIo::Separate(x, g) => sm.store(Some(x), g),
            RowIo::InPlace(g) => sm.store(None, g),
            RowIo::Read(_) => {}
        }
        let l = sm.lse();
        let loss = self.loss(l, zy, swz, y);
        let (a, b, d) = self.coefs(l, y, scale);
        let w = if self.eps > 0.0 { self.cw } else { None };
        if let Some(g) = io.grad_mut() {
            sm.finish(g, a, b, w);
            g[y] -= d;
        }
        RowOut {
            loss,
            lse: l as f32,
        }
    }

    /// `sum_c w_c z_c` in f64.
    fn weighted_sum(&self, z: &[f32]) -> f64 {
        match self.cw {
            Some(w) => z.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum(),
            None => z.iter().map(|&a| a as f64).sum(),
        }
    }

    fn wy(&self, y: usize) -> f64 {
        self.cw.map_or(1.0, |w| w[y] as f64)
    }

    fn loss(&self, l: f64, zy: f64, swz: f64, y: usize) -> f64 {
        let wy = self.wy(y);
        let mut loss = (1.0 - self.eps) * wy * (l - zy);
        if self.eps > 0.0 {
            loss += self.eps / self.classes as f64 * (self.wsum * l - swz);
        }
        if self.kappa > 0.0 {
            loss += self.kappa * wy * l * l;
        }
        loss
    }

    /// `g_c = a·p_c + b·w_c`, then `g_y -= d`.
    fn coefs(&self, l: f64, y: usize, scale: f32) -> (f32, f32, f32) {
        let wy = self.wy(y);
        let s = scale as f64;
        let ec = self.eps / self.classes as f64;
        let a = s * ((1.0 - self.eps) * wy + ec * self.wsum + 2.0 * self.kappa * wy * l);
        let b = -s * ec;
        let d = s * (1.0 - self.eps) * wy;
        (a as f32, b as f32, d as f32)
    }

    fn row_capped(&self, io: &mut RowIo<'_>, y: usize, scale: f32) -> RowOut {
        let cap = self.cap;
        let z: Vec<f32> = io.x().iter().map(|&v| cap * (v / cap).tanh()).collect();
        let (m, s) = max_sumexp(&z);
        let l = m as f64 + s.ln();
        let swz = if self.eps > 0.0 {
            self.weighted_sum(&z)
        } else {
            0.0
        };
        let loss = self.loss(l, z[y] as f64, swz, y);
        if let Some(g) = io.grad_mut() {
            let (a, b, d) = self.coefs(l, y, scale);
            let w = if self.eps > 0.0 { self.cw } else { None };
            softmax_affine(Some(&z), g, l as f32, a, b, w);
            g[y] -= d;
            for (gc, &zc) in g.iter_mut().zip(&z) {
                let t = zc / cap;
                *gc *= 1.0 - t * t;
            }
        }
        RowOut {
            loss,
            lse: l as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Compute, Context, Reduction, Tensor, TensorMut};

    /// Loss and in-place gradient of a 64 x 5000 problem on a pool of `threads` threads.
    fn run(threads: usize, label_smoothing: f64) -> (f32, Vec<f32>, Vec<f32>) {
        let (n, c) = (64usize, 5000usize);
        let mut x: Vec<f32> = (0..n * c)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 9) as f32 * 1e-6 - 4.0)
            .collect();
        let t: Vec<i64> = (0..n).map(|i| ((i * 37) % c) as i64).collect();
        let mut ce = Context::cpu().loss("cross_entropy").unwrap();
        ce.set_f64("label_smoothing", label_smoothing).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut sep = vec![0.0f32; n * c];
        let mut l1 = [0.0f32];
        pool.install(|| {
            let mut cc = Compute::new(Reduction::Mean, &mut l1)
                .input(Tensor::f32(&x, &[n, c]))
                .input(Tensor::i64(&t, &[n]))
                .grad(0, TensorMut::new(&mut sep, &[n, c]));
            ce.compute(&mut cc).unwrap();
        });
        let mut l2 = [0.0f32];
        pool.install(|| {
            let mut cc = Compute::new(Reduction::Mean, &mut l2)
                .input(Tensor::f32_in_place(&mut x, &[n, c]))
                .input(Tensor::i64(&t, &[n]))
                .grad_in_place(0);
            ce.compute(&mut cc).unwrap();
        });
        assert_eq!(l1[0].to_bits(), l2[0].to_bits());
        (l1[0], sep, x)
    }

    #[test]
    fn same_bits_for_any_thread_count_in_place_or_not() {
        for eps in [0.0, 0.1] {
            let (l1, g1, p1) = run(1, eps);
            assert_eq!(g1, p1, "in-place and separate gradients differ");
            for threads in [2, 3] {
                let (l, g, p) = run(threads, eps);
                assert_eq!(l.to_bits(), l1.to_bits());
                assert!(g.iter().zip(&g1).all(|(a, b)| a.to_bits() == b.to_bits()));
                assert!(p.iter().zip(&p1).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }
}
