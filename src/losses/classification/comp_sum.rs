//! `comp_sum`: the comp-sum losses `Φ^τ(Σ_{c≠y} exp(z_c - z_y))` (logistic, sum-exponential,
//! generalised cross-entropy, mean absolute error, and the general τ-family).
//!
//! **Inputs**
//! - `logits [N, C]` f32, differentiable (the gradient may be written over the logits).
//! - `target [N]` i64: a class in `[0, C)` or `ignore_index`.
//!
//! **Parameters**: `kind` (`logistic | sum_exp | gce | mae | general`, default `logistic`),
//! `q` (f64, default 0.7, `(0, 1]`, used by `gce`), `tau` (f64, default 1.5, `>= 0`, used by
//! `general`), `ignore_index` (i64, -100).
//!
//! **Math.** With `Φ^τ(u) = ((1+u)^(1-τ) - 1)/(1-τ)` (`log(1+u)` at `τ = 1`) and the
//! cross-entropy `L = LSE(z) - z_y = log(1+u)`, every kind is `l = φ(L)` with
//! `φ(L) = expm1(k·L)/k` (`L` when `k = 0`) and `φ'(L) = e^{k·L}`, where `k = 1 - τ`:
//! `logistic` τ = 1 (k = 0), `sum_exp` τ = 0 (k = 1), `gce` τ = 1 + q (k = -q, `(1 - p_y^q)/q`),
//! `mae` τ = 2 (k = -1, `1 - p_y`, not `2(1 - p_y)`), `general` τ. The gradient
//! `dl/dz_c = φ'(L)·(p_c - [c=y])` is formed as `exp(k·L + log p_c)` for `c != y` and
//! `-exp(k·L + log1mexp(-L))` for `y`, so it never multiplies an overflowed `φ'` by a tiny
//! probability: past the float range the loss is `+inf` (never NaN) and each gradient entry
//! overflows on its own.
//!
//! **Source**: *Cross-Entropy Loss Functions: Theoretical Analysis and Applications* (Mao,
//! Mohri, Zhong). There is no official code; `general` is the paper's τ-family and the named
//! kinds are its special cases.
//!
//! **Row structure** (for a GPU snippet): per-row scalars `LSE`, `L = LSE - z_y`, `k`,
//! `S = LSE - k·L`; per element `g_c = exp(z_c - S)` for `c != y` and
//! `g_y = -exp(k·L + log1mexp(-L))`.
//!
//! **GPU path**: the row-wise skeleton with `comp_sum.wgsl` (`a = d = e^{k·L}`, `b = 0`), in
//! f32, every kind. WGSL has no infinities, so where the CPU overflows (only `k > 0`, i.e.
//! `sum_exp` or `general` with `τ < 1`, once `k·L` passes about 88) the GPU saturates: the
//! loss at `3e38` and `φ'` at `e^88`.

use crate::backend::cpu::{RowIo, log1mexp, logsumexp};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, RowCall, RowKernel};
use crate::exec::rowwise::plan_rows;
use crate::exec::rowwise::{RowOut, RowwiseSetup, run_rowwise, write_softmax_grad};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::{InputSpec, LossSpec};

/// The `kind` choices, in order.
pub const KINDS: [&str; 5] = ["logistic", "sum_exp", "gce", "mae", "general"];

/// The `kind`, `q` and `tau` parameters (shared with `smooth_adv_comp_sum`).
pub(crate) fn comp_sum_params(spec: LossSpec) -> LossSpec {
    spec.param(ParamSpec::choice(
        "kind",
        "logistic",
        &KINDS,
        "comp-sum member: logistic (CE), sum_exp, gce, mae, or general tau",
    ))
    .param(ParamSpec::f64_open_min(
        "q",
        0.7,
        0.0,
        1.0,
        "exponent of the generalised cross-entropy (kind = gce)",
    ))
    .param(ParamSpec::f64(
        "tau",
        1.5,
        0.0,
        f64::INFINITY,
        "tau of the general comp-sum family (kind = general)",
    ))
}

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "comp_sum",
        "classification",
        "Comp-sum losses Phi^tau(sum_{c!=y} exp(z_c - z_y)): logistic, sum-exp, GCE, MAE, general tau",
        "Cross-Entropy Loss Functions: Theoretical Analysis and Applications (Mao, Mohri, Zhong); no official code",
    )
    .input(InputSpec::f32("logits", "N,C").grad().doc("unnormalised scores"))
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"));
    let spec = comp_sum_params(spec)
        .param(ParamSpec::ignore_index())
        .in_place();
    LossDef::new(spec, CompSum)
        .gpu(GpuKernel::Row(RowKernel {
            id: "comp_sum",
            snippet: include_str!("comp_sum.wgsl"),
            call: |p| RowCall {
                setup: setup(p),
                softcap: 0.0,
                params: vec![Member::from_params(p).k() as f32],
                needs_swz: false,
            },
        }))
        .test_params(&[("kind", Enum(1))])
        .test_params(&[("kind", Enum(2))])
        .test_params(&[("kind", Enum(2)), ("q", F64(1.0))])
        .test_params(&[("kind", Enum(2)), ("q", F64(0.1))])
        .test_params(&[("kind", Enum(3))])
        .test_params(&[("kind", Enum(4))])
        .test_params(&[("kind", Enum(4)), ("tau", F64(0.0))])
        .test_params(&[("kind", Enum(4)), ("tau", F64(1.0))])
        .test_params(&[("kind", Enum(4)), ("tau", F64(3.0))])
}

/// One comp-sum member, as `k = 1 - τ`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Member {
    k: f64,
}

impl Member {
    /// The member the parameters select.
    pub(crate) fn from_params(p: &Params) -> Self {
        let tau = match p.choice("kind") {
            "sum_exp" => 0.0,
            "gce" => 1.0 + p.f64("q"),
            "mae" => 2.0,
            "general" => p.f64("tau"),
            _ => 1.0,
        };
        Member { k: 1.0 - tau }
    }

    /// `k = 1 - τ`.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub(crate) fn k(&self) -> f64 {
        self.k
    }

    /// `φ(L)`.
    pub(crate) fn phi(&self, l: f64) -> f64 {
        if self.k == 0.0 {
            l
        } else {
            (self.k * l).exp_m1() / self.k
        }
    }

    /// The row: loss `φ(L)` and, when wanted, `scale·φ'(L)·(p - e_y)` into the gradient.
    /// Returns the loss and the row's `LSE`.
    pub(crate) fn row(&self, io: &mut RowIo<'_>, y: usize, scale: f32) -> (f64, f64) {
        let x = io.x();
        let lse = logsumexp(x);
        // L >= 0 up to rounding; NaN propagates.
        let l = lse - x[y] as f64;
        let l = if l < 0.0 { 0.0 } else { l };
        let loss = self.phi(l);
        if io.wants_grad() {
            let s = scale as f64;
            let kl = self.k * l;
            let gy = -s * (kl + log1mexp(-l)).exp();
            write_softmax_grad(io, (lse - kl) as f32, scale, y, gy as f32);
        }
        (loss, lse)
    }
}

/// The implementation.
pub struct CompSum;

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

impl LossImpl for CompSum {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        plan_rows("comp_sum", c, &setup(p))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let m = Member::from_params(p);
        let setup = setup(p);
        run_rowwise("comp_sum", c, setup, |io, y, scale| {
            let (loss, lse) = m.row(io, y, scale);
            RowOut {
                loss,
                lse: lse as f32,
            }
        })
    }
}
