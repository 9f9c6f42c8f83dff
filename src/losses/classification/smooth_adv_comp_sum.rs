//! `smooth_adv_comp_sum`: a comp-sum loss on the clean logits plus `ν` times the ℓ₂ change of
//! the score-margin vector between the clean and the adversarial input.
//!
//! **Inputs**
//! - `logits [N, C]` f32, differentiable: scores `h(x)` at the clean input.
//! - `adv_logits [N, C]` f32, differentiable: scores `h(x')` at the caller's adversarial
//!   point (the supremum over the perturbation ball, e.g. found by PGD, is the caller's job).
//! - `target [N]` i64: a class in `[0, C)` or `ignore_index`.
//!
//! **Parameters**: `kind`, `q`, `tau` exactly as in `comp_sum` (default `logistic`); `nu` ν
//! (f64, default 1, `>= 0`); `ignore_index` (i64, -100).
//!
//! **Math.** With `d = adv_logits - logits`, `r_c = d_y - d_c` (`r_y = 0`) and
//! `R = ‖r‖₂` (computed scaled by `max|r_c|`, so huge margins do not overflow):
//! `l = φ(L(z)) + ν·R`, where `φ`, `L` are those of `comp_sum` on the clean logits.
//! `dR/dd = (e_y·Σ_c r_c - r)/R` (the zero subgradient when `R = 0`);
//! `dl/d(adv_logits) = ν·dR/dd`, `dl/d(logits) = φ'(L)·(p - e_y) - ν·dR/dd`.
//!
//! **Source**: *Cross-Entropy Loss Functions: Theoretical Analysis and Applications* (Mao,
//! Mohri, Zhong), the smooth adversarial comp-sum losses behind ADV-COMP-SUM. No official
//! code exists. **Reconstructed formula, kept as specified:** only the abstract and first
//! page of the paper could be checked when the specification was written, so the regulariser
//! is the specification's reading (the unsquared ℓ₂ norm of the margin-vector difference,
//! added to the comp-sum loss on the clean logits) and `ν = 1` is a placeholder default (the
//! paper tunes it). Confirm the norm against the paper before relying on it.
//!
//! **Row structure** (for a GPU snippet): per-row scalars of `comp_sum` (`LSE`, `L`, `k`),
//! then `d_y`, `M = max|r_c|`, `R = M·sqrt(Σ (r_c/M)²)`, `Σr`; per element
//! `ga_c = ν·([c=y]·Σr - r_c)/R`, `gz_c = comp_sum's g_c - ga_c`.
//!
//! **GPU path**: `smooth_adv_comp_sum.wgsl` on the per-sample kernel contract, one thread
//! per row, calling `comp_sum.wgsl`'s row function (the same snippet the row-wise skeleton
//! runs for `comp_sum`) for `φ(L)`, `φ'(L)`; in f32 with compensated sums, `R` scaled by
//! `max|r_c|` as here; `mean` divides by the rows not ignored.

use super::comp_sum::{Member, comp_sum_params};
use crate::backend::cpu::RowIo;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::rowwise::{MultiRow, MultiSetup, RowResult, run_rowwise_k};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::{InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "smooth_adv_comp_sum",
        "classification",
        "Smooth adversarial comp-sum: comp-sum on clean logits + nu * l2 change of the margin vector at the adversarial point",
        "Cross-Entropy Loss Functions: Theoretical Analysis and Applications (Mao, Mohri, Zhong), smooth adversarial comp-sum; no official code",
    )
    .input(InputSpec::f32("logits", "N,C").grad().doc("scores at the clean input"))
    .input(
        InputSpec::f32("adv_logits", "N,C")
            .grad()
            .doc("scores at the caller's adversarial input"),
    )
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"));
    let spec = comp_sum_params(spec)
        .param(ParamSpec::f64(
            "nu",
            1.0,
            0.0,
            f64::INFINITY,
            "weight of the adversarial margin regulariser (placeholder default; tune it)",
        ))
        .param(ParamSpec::ignore_index());
    LossDef::new(spec, SmoothAdvCompSum)
        .gpu(GpuKernel::Sample(
            SampleKernel::new(
                &[super::SAMPLE_PRELUDE],
                concat!(
                    include_str!("comp_sum.wgsl"),
                    include_str!("smooth_adv_comp_sum.wgsl")
                ),
            )
            .passes(4),
        ))
        .test_params(&[("nu", F64(0.0))])
        .test_params(&[("kind", Enum(2)), ("q", F64(0.5)), ("nu", F64(0.3))])
        .test_params(&[("kind", Enum(1)), ("nu", F64(2.0))])
        .test_params(&[("kind", Enum(3))])
        .test_params(&[("kind", Enum(4)), ("tau", F64(0.5))])
}

/// The implementation.
pub struct SmoothAdvCompSum;

impl LossImpl for SmoothAdvCompSum {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        let den: Option<f64> = Some(crate::exec::targets::target_den(
            "smooth_adv_comp_sum",
            c,
            2,
            p.i64("ignore_index"),
        )?);
        Ok(Plan::with_den(den))
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let m = Member::from_params(p);
        let nu = p.f64("nu");
        let setup = MultiSetup {
            inputs: [0, 1],
            target: Some(2),
            ignore_index: p.i64("ignore_index"),
            aux: None,
        };
        run_rowwise_k("smooth_adv_comp_sum", c, setup, |r| row(r, &m, nu))
    }
}

fn row(r: &mut MultiRow<'_, 2>, m: &Member, nu: f64) -> RowResult {
    let (y, scale) = (r.y, r.scale);
    let [zio, aio] = &mut r.io;
    let (cs, _) = m.row(zio, y, scale);
    let (z, a) = (zio.x(), aio.x());
    let dy = a[y] as f64 - z[y] as f64;
    let margin = |c: usize| dy - (a[c] as f64 - z[c] as f64);
    let big = (0..z.len()).fold(0.0f64, |acc, c| {
        let v = margin(c).abs();
        if v > acc || v.is_nan() { v } else { acc }
    });
    let (norm, sum_r) = if big > 0.0 || big.is_nan() {
        let (mut ss, mut sr) = (0.0f64, 0.0f64);
        for c in 0..z.len() {
            let rc = margin(c);
            ss += (rc / big) * (rc / big);
            sr += rc;
        }
        (big * ss.sqrt(), sr)
    } else {
        (0.0, 0.0)
    };
    let loss = cs + nu * norm;
    // dR/dd_c = ([c=y]·Σr - r_c)/R, times ν and the row's scale.
    let coef = if norm > 0.0 || norm.is_nan() {
        scale as f64 * nu / norm
    } else {
        0.0
    };
    let d_r = |c: usize, zc: f32, ac: f32| -> f64 {
        let rc = dy - (ac as f64 - zc as f64);
        coef * (if c == y { sum_r } else { 0.0 } - rc)
    };
    if let RowIo::Separate(a, ga) = aio {
        if let RowIo::Read(z) | RowIo::Separate(z, _) = zio {
            for (c, g) in ga.iter_mut().enumerate() {
                *g = d_r(c, z[c], a[c]) as f32;
            }
        }
    }
    if coef != 0.0 {
        if let RowIo::Separate(z, gz) = zio {
            if let RowIo::Read(a) | RowIo::Separate(a, _) = aio {
                for (c, g) in gz.iter_mut().enumerate() {
                    *g = (*g as f64 - d_r(c, z[c], a[c])) as f32;
                }
            }
        }
    }
    RowResult { loss, aux: 0.0 }
}
