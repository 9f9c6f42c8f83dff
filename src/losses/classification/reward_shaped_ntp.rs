//! `reward_shaped_ntp`: next-token prediction with a shaped positive reward and rank-aware
//! negative rewards (a surrogate whose gradient is the paper's policy-gradient estimator).
//!
//! Cross-entropy's gradient is a one-step policy gradient with reward `1/π_y` on the target
//! and 0 elsewhere. The paper reshapes the rewards: the target gets
//! `r_pos = (1/π_y)^{(1-π_y)^β}`, non-targets among the `k` highest logits get `λ̃`
//! (`lambda_top`), the other non-targets `λ̂` (`lambda_tail`). The loss is
//! `l = -sum_a c_a·log π_a` with stop-gradient weights `c_y = w_pos = π_y^{1-(1-π_y)^β}`,
//! `c_a = π_a·λ̃` (non-target in the top k) or `π_a·λ̂` (other non-targets), so that
//! `dl/dz_c = π_c·sum_a c_a - c_c`. The defaults (`β = λ̃ = λ̂ = 0`) give cross-entropy
//! exactly. The value can be negative when `λ̂ < 0`: only its gradient is meaningful, and
//! because the weights are stop-gradient constants, that gradient is the paper's estimator,
//! not the derivative of the value (they agree only at `β = λ̃ = λ̂ = 0`).
//!
//! `w_pos` is computed in log space: `u = log π_y`, `t = exp(β·log1mexp(u) + log(-u))`
//! (`t = 0` when `u = 0`), `log w_pos = u + t`. The top k are the `k` largest logits, ties
//! broken by the lower class index; the target counts toward the `k`. When `λ̃ = λ̂` no
//! top-k is computed.
//!
//! **Inputs**: `logits [N, C]` f32, differentiable; `target [N]` i64 (class or
//! `ignore_index`).
//!
//! **Parameters**: `beta` (f64, 0, `> -1`; at `β <= -1` the weight diverges or jumps as
//! `π_y -> 1`), `lambda_top` λ̃ (f64, 0, any finite), `lambda_tail` λ̂ (f64, 0, any finite),
//! `top_k` (i64, 100, `>= 1`), `ignore_index` (i64, -100). The paper's runs use
//! `β ∈ {-0.25, 0.5}` and `(λ̂, λ̃, k) ∈ {(-0.1, 0, 100), (0, 0.1, 100)}`.
//!
//! **Source**: *Diversity or Precision? A Deep Dive into Next Token Prediction* (Tencent
//! Hunyuan); no official code was found, the formulas come from the paper's equations for
//! the shaped positive reward and the rank-aware negative reward.
//!
//! **Cost**: the cross-entropy row pass, one more pass for `sum_a π_a log π_a` when a
//! negative reward is non-zero, and a per-row selection (`O(C)` on average) of the top `k`
//! when `λ̃ ≠ λ̂`. Rows run in parallel.
//!
//! **GPU path**: `reward_shaped_ntp.wgsl` on the per-sample kernel contract, one thread per
//! row, the same surrogate gradient in f32 with compensated sums. The top `k` is found
//! without sorting: a bisection over the 32-bit total-order keys of the logits (32 counting
//! passes) gives the `k`-th largest key, and ties at it go to the lower indices, which is
//! the CPU path's set exactly.

use crate::backend::cpu::{RowIo, exp_f32, log1mexp, max_sumexp, softmax_affine};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::rowwise::{RowOut, RowwiseSetup, run_rowwise};
use crate::params::{ParamSpec, ParamValue::F64, ParamValue::I64, Params};
use crate::spec::{InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "reward_shaped_ntp",
        "classification",
        "Next-token prediction with a shaped positive reward and rank-aware negative rewards",
        "Diversity or Precision? A Deep Dive into Next Token Prediction (Tencent Hunyuan)",
    )
    .input(
        InputSpec::f32("logits", "N,C")
            .grad()
            .doc("unnormalised scores"),
    )
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"))
    .param(ParamSpec::f64_open_min(
        "beta",
        0.0,
        -1.0,
        f64::INFINITY,
        "exponent shaping the positive reward (1/p)^((1-p)^beta); 0 = cross-entropy",
    ))
    .param(ParamSpec::f64(
        "lambda_top",
        0.0,
        f64::NEG_INFINITY,
        f64::INFINITY,
        "reward of non-target classes among the top_k logits",
    ))
    .param(ParamSpec::f64(
        "lambda_tail",
        0.0,
        f64::NEG_INFINITY,
        f64::INFINITY,
        "reward of non-target classes outside the top_k logits",
    ))
    .param(ParamSpec::i64(
        "top_k",
        100,
        1,
        i64::MAX,
        "size of the top set (the target counts toward it)",
    ))
    .param(ParamSpec::ignore_index());
    LossDef::new(spec, RewardShapedNtp)
        .gpu(GpuKernel::Sample(
            SampleKernel::new(
                &[super::SAMPLE_PRELUDE],
                include_str!("reward_shaped_ntp.wgsl"),
            )
            .passes(7),
        ))
        .surrogate_gradient(
            "the per-class weights are stop-gradient constants, as in the paper's estimator",
        )
        .test_params(&[("beta", F64(-0.25))])
        .test_params(&[("beta", F64(0.5))])
        .test_params(&[("lambda_tail", F64(-0.1)), ("top_k", I64(3))])
        .test_params(&[("lambda_top", F64(0.1)), ("top_k", I64(3))])
        .test_params(&[
            ("beta", F64(0.5)),
            ("lambda_top", F64(0.2)),
            ("lambda_tail", F64(-0.05)),
            ("top_k", I64(2)),
        ])
        .test_params(&[("lambda_top", F64(0.3)), ("lambda_tail", F64(0.3))])
}

/// The implementation.
pub struct RewardShapedNtp;

/// `log w_pos` for `u = log π_y <= 0`.
pub fn log_w_pos(u: f64, beta: f64) -> f64 {
    if u == 0.0 {
        return 0.0;
    }
    u + (beta * log1mexp(u) + (-u).ln()).exp()
}

/// The indices of the `k` largest values of `z` (ties: lower index first), `k < z.len()`.
pub fn top_k_indices(z: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..z.len() as u32).collect();
    let before = |a: &u32, b: &u32| {
        z[*b as usize]
            .total_cmp(&z[*a as usize])
            .then_with(|| a.cmp(b))
    };
    idx.select_nth_unstable_by(k - 1, before);
    idx.truncate(k);
    idx
}

struct Row {
    beta: f64,
    lam_top: f64,
    lam_tail: f64,
    k: usize,
}

impl Row {
    fn row(&self, io: &mut RowIo<'_>, y: usize, scale: f32) -> RowOut {
        let x = io.x();
        let classes = x.len();
        let (m, s) = max_sumexp(x);
        let lse = m as f64 + s.ln();
        let lse32 = lse as f32;
        let u = x[y] as f64 - lse;
        let pi_y = u.exp();
        let w_pos = log_w_pos(u, self.beta).exp();
        // The top set matters only when the two negative rewards differ and it is not
        // every class. `top`: (class, π, log π) of the non-target classes in it.
        let split = self.lam_top != self.lam_tail && self.k < classes;
        let top: Vec<(usize, f64, f64)> = if split {
            top_k_indices(x, self.k)
                .into_iter()
                .map(|c| c as usize)
                .filter(|&c| c != y)
                .map(|c| {
                    let lp = x[c] as f64 - lse;
                    (c, lp.exp(), lp)
                })
                .collect()
        } else {
            Vec::new()
        };
        // λ of the non-target classes outside `top`.
        let lam_rest = if split { self.lam_tail } else { self.lam_top };
        let sp_top: f64 = top.iter().map(|t| t.1).sum();
        let spl_top: f64 = top.iter().map(|t| t.1 * t.2).sum();
        // Σπ and Σπ·logπ over the non-target classes outside `top`.
        let (mut sp_rest, mut spl_rest) = (0.0f64, 0.0f64);
        if lam_rest != 0.0 {
            let mut tot = 0.0f64;
            for &v in x {
                let lp = v - lse32;
                tot += (exp_f32(lp) * lp) as f64;
            }
            sp_rest = 1.0 - pi_y - sp_top;
            spl_rest = tot - pi_y * u - spl_top;
        }
        let loss = -w_pos * u - self.lam_top * spl_top - lam_rest * spl_rest;
        if io.wants_grad() {
            // g_c = π_c·S - c_c with S = Σ_a c_a.
            let sc = scale as f64;
            let total = w_pos + self.lam_top * sp_top + lam_rest * sp_rest;
            let a = (sc * (total - lam_rest)) as f32;
            match io {
                RowIo::Separate(x, g) => softmax_affine(Some(x), g, lse32, a, 0.0, None),
                RowIo::InPlace(g) => softmax_affine(None, g, lse32, a, 0.0, None),
                RowIo::Read(_) => {}
            }
            if let Some(g) = io.grad_mut() {
                for &(c, pc, _) in &top {
                    g[c] = (sc * pc * (total - self.lam_top)) as f32;
                }
                g[y] = (sc * (pi_y * total - w_pos)) as f32;
            }
        }
        RowOut { loss, lse: lse32 }
    }
}

impl LossImpl for RewardShapedNtp {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        let den: Option<f64> = Some(crate::exec::targets::target_den(
            "reward_shaped_ntp",
            c,
            1,
            p.i64("ignore_index"),
        )?);
        Ok(Plan::with_den(den))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let k = Row {
            beta: p.f64("beta"),
            lam_top: p.f64("lambda_top"),
            lam_tail: p.f64("lambda_tail"),
            k: p.i64("top_k").max(1) as usize,
        };
        let setup = RowwiseSetup {
            logits: 0,
            target: 1,
            class_weights: None,
            sample_weight: None,
            ignore_index: p.i64("ignore_index"),
            normalizer: 0.0,
        };
        run_rowwise("reward_shaped_ntp", c, setup, |io, y, scale| {
            k.row(io, y, scale)
        })
    }
}
