//! Run-time dispatch of the vector kernels. Each portable kernel body of [`super::softmax`]
//! is compiled three times: for AVX-512, for AVX2+FMA (`#[target_feature]` instantiations)
//! and for the baseline target; [`isa_name`] says which one the CPU runs (detected once;
//! `LOSSKIT_CPU_GENERIC` forces the baseline). The lane layout of the bodies is fixed, so
//! every instantiation gives the same bits.

use super::softmax::{
    RefStats, SoftmaxStats, VjpCoef, log_softmax_vjp_impl, max_sumexp_impl, max_sumexp_scaled_impl,
    softmax_affine_impl, softmax_finish_impl, softmax_stats_impl, softmax_store_impl,
};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{RefStats, SoftmaxStats, VjpCoef};

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn max_sumexp_avx512(x: &[f32]) -> (f32, f64) {
        super::max_sumexp_impl(x)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn max_sumexp_avx2(x: &[f32]) -> (f32, f64) {
        super::max_sumexp_impl(x)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn max_sumexp_scaled_avx512(x: &[f32], k: f32) -> (f32, f64) {
        super::max_sumexp_scaled_impl(x, k)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn max_sumexp_scaled_avx2(x: &[f32], k: f32) -> (f32, f64) {
        super::max_sumexp_scaled_impl(x, k)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn softmax_affine_avx512(
        src: Option<&[f32]>,
        dst: &mut [f32],
        lse: f32,
        a: f32,
        b: f32,
        w: Option<&[f32]>,
    ) {
        super::softmax_affine_impl(src, dst, lse, a, b, w)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn softmax_affine_avx2(
        src: Option<&[f32]>,
        dst: &mut [f32],
        lse: f32,
        a: f32,
        b: f32,
        w: Option<&[f32]>,
    ) {
        super::softmax_affine_impl(src, dst, lse, a, b, w)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn softmax_store_avx512(
        src: Option<&[f32]>,
        dst: &mut [f32],
        shifts: &mut Vec<f32>,
    ) -> (f32, f64) {
        super::softmax_store_impl(src, dst, shifts)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn softmax_store_avx2(
        src: Option<&[f32]>,
        dst: &mut [f32],
        shifts: &mut Vec<f32>,
    ) -> (f32, f64) {
        super::softmax_store_impl(src, dst, shifts)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn softmax_finish_avx512(
        dst: &mut [f32],
        shifts: &[f32],
        m: f32,
        s: f64,
        a: f32,
        b: f32,
        w: Option<&[f32]>,
    ) {
        super::softmax_finish_impl(dst, shifts, m, s, a, b, w)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn softmax_finish_avx2(
        dst: &mut [f32],
        shifts: &[f32],
        m: f32,
        s: f64,
        a: f32,
        b: f32,
        w: Option<&[f32]>,
    ) {
        super::softmax_finish_impl(dst, shifts, m, s, a, b, w)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn stats_avx512(x: &[f32], r: Option<&[f32]>, k: f32) -> (SoftmaxStats, RefStats) {
        super::softmax_stats_impl(x, r, k)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn stats_avx2(x: &[f32], r: Option<&[f32]>, k: f32) -> (SoftmaxStats, RefStats) {
        super::softmax_stats_impl(x, r, k)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn vjp_avx512(src: Option<&[f32]>, dst: &mut [f32], r: Option<&[f32]>, c: VjpCoef) {
        super::log_softmax_vjp_impl(src, dst, r, c)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn vjp_avx2(src: Option<&[f32]>, dst: &mut [f32], r: Option<&[f32]>, c: VjpCoef) {
        super::log_softmax_vjp_impl(src, dst, r, c)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Generic,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn isa() -> Isa {
    use std::sync::OnceLock;
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::env::var_os("LOSSKIT_CPU_GENERIC").is_none() {
                if is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("fma")
                {
                    return Isa::Avx512;
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    return Isa::Avx2;
                }
            }
        }
        Isa::Generic
    })
}

/// The name of the instruction set the CPU kernels use (`avx512`, `avx2`, `generic`).
pub fn isa_name() -> &'static str {
    match isa() {
        Isa::Generic => "generic",
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => "avx2",
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => "avx512",
    }
}

/// Row maximum `m` and `sum_c exp(x_c - m)` (f64), in one streaming pass (blockwise online
/// rescaling). For an empty row: `(-inf, 0)`. A NaN anywhere makes the sum NaN.
pub fn max_sumexp(x: &[f32]) -> (f32, f64) {
    match isa() {
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::max_sumexp_avx512(x) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::max_sumexp_avx2(x) },
        Isa::Generic => max_sumexp_impl(x),
    }
}

/// For a temperature-scaled row `k·x` with `k > 0`: `(k·m, sum_c exp(k·(x_c - m)))` where
/// `m = max_c x_c`, so `LSE(k·x) = k·m + ln(sum)`. Two passes (max, then sum). For an empty
/// row: `(-inf, 0)`; a NaN makes the sum NaN.
pub fn max_sumexp_scaled(x: &[f32], k: f32) -> (f32, f64) {
    match isa() {
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::max_sumexp_scaled_avx512(x, k) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::max_sumexp_scaled_avx2(x, k) },
        Isa::Generic => max_sumexp_scaled_impl(x, k),
    }
}

/// `dst[c] = a * exp(x[c] - lse) + b * w[c]` (`w[c] = 1` when `w` is None); `x = src`, or
/// `dst` itself when `src` is None (in place).
pub fn softmax_affine(
    src: Option<&[f32]>,
    dst: &mut [f32],
    lse: f32,
    a: f32,
    b: f32,
    w: Option<&[f32]>,
) {
    match isa() {
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::softmax_affine_avx512(src, dst, lse, a, b, w) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::softmax_affine_avx2(src, dst, lse, a, b, w) },
        Isa::Generic => softmax_affine_impl(src, dst, lse, a, b, w),
    }
}

/// [`SoftmaxRow::store`](super::SoftmaxRow::store)'s pass: the unnormalised exponentials
/// into `dst`, the running max of each block into `shifts`; returns the row's max and sum.
pub(super) fn softmax_store(
    src: Option<&[f32]>,
    dst: &mut [f32],
    shifts: &mut Vec<f32>,
) -> (f32, f64) {
    match isa() {
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::softmax_store_avx512(src, dst, shifts) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::softmax_store_avx2(src, dst, shifts) },
        Isa::Generic => softmax_store_impl(src, dst, shifts),
    }
}

/// [`SoftmaxRow::finish`](super::SoftmaxRow::finish)'s pass over the stored exponentials.
pub(super) fn softmax_finish(
    dst: &mut [f32],
    shifts: &[f32],
    m: f32,
    s: f64,
    a: f32,
    b: f32,
    w: Option<&[f32]>,
) {
    match isa() {
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::softmax_finish_avx512(dst, shifts, m, s, a, b, w) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::softmax_finish_avx2(dst, shifts, m, s, a, b, w) },
        Isa::Generic => softmax_finish_impl(dst, shifts, m, s, a, b, w),
    }
}

/// [`SoftmaxStats`] of `k·x` and, when `r` is given (same length as `x`), [`RefStats`] of
/// `k·r` against it, in one streaming pass over both rows (blockwise online rescaling, 16
/// vector lanes, f64 across blocks). `k` must be `> 0`. Entries at `-inf` contribute 0.
pub fn softmax_stats(x: &[f32], r: Option<&[f32]>, k: f32) -> (SoftmaxStats, RefStats) {
    match isa() {
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::stats_avx512(x, r, k) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::stats_avx2(x, r, k) },
        Isa::Generic => softmax_stats_impl(x, r, k),
    }
}

/// The backward row of every log-softmax statistic:
/// `dst[v] = a·π_v + b·π_v·log π_v + kq·q_v`, with `π = softmax(k·x)` (from `c.lse`),
/// `q = softmax(k·r)` (from `c.lse_r`; pass `r = None` when `kq = 0`), and
/// `x = src`, or `dst` itself when `src` is None (in place).
pub fn log_softmax_vjp(src: Option<&[f32]>, dst: &mut [f32], r: Option<&[f32]>, c: VjpCoef) {
    match isa() {
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::vjp_avx512(src, dst, r, c) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::vjp_avx2(src, dst, r, c) },
        Isa::Generic => log_softmax_vjp_impl(src, dst, r, c),
    }
}
