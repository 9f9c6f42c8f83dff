//! CPU executors and fast math shared by the losses.
//!
//! - [`map_rows`]: run a per-row function over `[N, C]` rows in parallel (rayon), reading
//!   the input and optionally writing its gradient, either into a separate buffer or over
//!   the input itself (in place). Results come back in row order, so every reduction over
//!   them is deterministic whatever the thread count.
//! - [`exp_f32`], [`max_sumexp`], [`softmax_affine`]: the exp-bound inner loops of every
//!   softmax loss, written in 16 independent lanes so that they vectorise, and compiled for
//!   AVX-512 and AVX2+FMA with run-time dispatch. The lane layout is fixed, so the result
//!   is bit-identical on every instruction set.

use rayon::prelude::*;

/// One row of a row-wise computation: the input row and where its gradient goes.
pub enum RowIo<'r> {
    /// Read only (no gradient wanted).
    Read(&'r [f32]),
    /// Input row and a separate gradient row.
    Separate(&'r [f32], &'r mut [f32]),
    /// The row holds the input and receives the gradient.
    InPlace(&'r mut [f32]),
}

impl RowIo<'_> {
    /// The input row.
    #[inline]
    pub fn x(&self) -> &[f32] {
        match self {
            RowIo::Read(x) => x,
            RowIo::Separate(x, _) => x,
            RowIo::InPlace(x) => x,
        }
    }
    /// True when a gradient must be written.
    #[inline]
    pub fn wants_grad(&self) -> bool {
        !matches!(self, RowIo::Read(_))
    }
    /// Write `g[c] = f(c, x[c])` for every element (no-op without a gradient).
    #[inline]
    pub fn map_grad(&mut self, mut f: impl FnMut(usize, f32) -> f32) {
        match self {
            RowIo::Read(_) => {}
            RowIo::Separate(x, g) => {
                for (c, (o, &v)) in g.iter_mut().zip(x.iter()).enumerate() {
                    *o = f(c, v);
                }
            }
            RowIo::InPlace(x) => {
                for (c, v) in x.iter_mut().enumerate() {
                    *v = f(c, *v);
                }
            }
        }
    }
    /// The gradient row, for a final fix-up after a bulk write (e.g. the target entry).
    #[inline]
    pub fn grad_mut(&mut self) -> Option<&mut [f32]> {
        match self {
            RowIo::Read(_) => None,
            RowIo::Separate(_, g) => Some(g),
            RowIo::InPlace(x) => Some(x),
        }
    }
    /// Zero the gradient (ignored rows).
    #[inline]
    pub fn zero_grad(&mut self) {
        if let Some(g) = self.grad_mut() {
            g.fill(0.0);
        }
    }
}

/// Where the rows of a row-wise computation come from and go to.
pub enum RowsIo<'s> {
    /// Read only.
    Read {
        /// Input buffer.
        x: &'s [f32],
        /// Input row stride.
        stride: usize,
    },
    /// Separate input and gradient buffers.
    Separate {
        /// Input buffer.
        x: &'s [f32],
        /// Input row stride.
        stride: usize,
        /// Gradient buffer.
        g: &'s mut [f32],
        /// Gradient row stride.
        gstride: usize,
    },
    /// The input buffer receives the gradient.
    InPlace {
        /// Input and gradient buffer.
        x: &'s mut [f32],
        /// Row stride.
        stride: usize,
    },
}

/// Run `f(i, row)` for `n` rows of `len` elements, in parallel, results in row order.
pub fn map_rows<R, F>(io: RowsIo<'_>, n: usize, len: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize, RowIo<'_>) -> R + Sync + Send,
{
    if n == 0 {
        return Vec::new();
    }
    let min_len = (16384 / len.max(1)).max(1);
    match io {
        RowsIo::Read { x, stride } => (0..n)
            .into_par_iter()
            .with_min_len(min_len)
            .map(|i| f(i, RowIo::Read(&x[i * stride..i * stride + len])))
            .collect(),
        RowsIo::Separate {
            x,
            stride,
            g,
            gstride,
        } => g
            .par_chunks_mut(gstride.max(1))
            .take(n)
            .enumerate()
            .with_min_len(min_len)
            .map(|(i, gr)| {
                f(
                    i,
                    RowIo::Separate(&x[i * stride..i * stride + len], &mut gr[..len]),
                )
            })
            .collect(),
        RowsIo::InPlace { x, stride } => x
            .par_chunks_mut(stride.max(1))
            .take(n)
            .enumerate()
            .with_min_len(min_len)
            .map(|(i, r)| f(i, RowIo::InPlace(&mut r[..len])))
            .collect(),
    }
}

/// Split a row source into its `n` rows of `len` elements (rows of a zero-length row are
/// empty read-only rows).
fn split_rows<'s>(io: RowsIo<'s>, n: usize, len: usize) -> Vec<RowIo<'s>> {
    if len == 0 {
        return (0..n).map(|_| RowIo::Read(&[])).collect();
    }
    match io {
        RowsIo::Read { x, stride } => (0..n)
            .map(|i| RowIo::Read(&x[i * stride..i * stride + len]))
            .collect(),
        RowsIo::Separate {
            x,
            stride,
            g,
            gstride,
        } => g
            .chunks_mut(gstride.max(1))
            .take(n)
            .enumerate()
            .map(|(i, gr)| RowIo::Separate(&x[i * stride..i * stride + len], &mut gr[..len]))
            .collect(),
        RowsIo::InPlace { x, stride } => x
            .chunks_mut(stride.max(1))
            .take(n)
            .map(|r| RowIo::InPlace(&mut r[..len]))
            .collect(),
    }
}

/// Run `f(i, rows)` over `n` rows of `K` same-shaped `[n, len]` sources at once (e.g. the
/// student and teacher logits of a distillation loss, each with its own gradient), in
/// parallel, results in row order. Returns None when a source holds fewer than `n` rows
/// (the callers validate lengths first, so this is an internal error).
pub fn map_rows_k<const K: usize, R, F>(
    ios: [RowsIo<'_>; K],
    n: usize,
    len: usize,
    f: F,
) -> Option<Vec<R>>
where
    R: Send,
    F: Fn(usize, [RowIo<'_>; K]) -> R + Sync + Send,
{
    if n == 0 {
        return Some(Vec::new());
    }
    let mut cols = ios.map(|io| split_rows(io, n, len).into_iter());
    let mut rows: Vec<[RowIo<'_>; K]> = Vec::with_capacity(n);
    for _ in 0..n {
        let r: [Option<RowIo<'_>>; K] = std::array::from_fn(|k| cols[k].next());
        if r.iter().any(Option::is_none) {
            return None;
        }
        rows.push(r.map(|v| v.unwrap_or(RowIo::Read(&[]))));
    }
    let min_len = (16384 / (K * len).max(1)).max(1);
    Some(
        rows.into_par_iter()
            .enumerate()
            .with_min_len(min_len)
            .map(|(i, r)| f(i, r))
            .collect(),
    )
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` with a per-thread scratch buffer of `len` f32 (contents unspecified), so that a
/// row function needing a temporary row does not allocate per row.
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        // Re-entered on this thread (work stealing inside `f`): use a fresh buffer.
        Err(_) => f(&mut vec![0.0; len]),
    })
}

const LANES: usize = 16;
const EXP_HI: f32 = 88.722_83;
const EXP_LO: f32 = -87.336_55;

/// `e^x` in f32, within 2 ulp, branch-free so that loops over it vectorise. Returns 0 below
/// about -87.3 (the normal range), +inf above 88.7, and propagates NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // clamp keeps NaN, so NaN flows through to the result.
    let xc = x.clamp(EXP_LO, EXP_HI);
    // k = round(x / ln 2) via the 1.5 * 2^23 trick (round half to even).
    const SHIFT: f32 = 12_582_912.0;
    // Fused multiply-adds: one rounding each, so the result is the same on every target
    // (hardware FMA where the CPU has it, the correctly rounded libm `fmaf` elsewhere).
    let t = xc.mul_add(std::f32::consts::LOG2_E, SHIFT);
    let k = t - SHIFT;
    let r = k.mul_add(-0.693_145_75, xc);
    let r = k.mul_add(-1.428_606_8e-6, r);
    let mut p = r.mul_add(1.388_888_9e-3, 8.333_334e-3);
    p = p.mul_add(r, 4.166_666_8e-2);
    p = p.mul_add(r, 1.666_666_7e-1);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let bits = ((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32;
    let v = p * f32::from_bits(bits);
    if x < EXP_LO {
        0.0
    } else if x > EXP_HI {
        f32::INFINITY
    } else {
        v
    }
}

/// [`exp_f32`] for arguments `<= 0` (or NaN), as in a softmax after subtracting the max:
/// the same bits for those arguments, two operations fewer (no upper clamp).
#[inline(always)]
fn exp_nonpos(x: f32) -> f32 {
    // NaN < EXP_LO is false, so NaN flows through to the result.
    let xc = if x < EXP_LO { EXP_LO } else { x };
    const SHIFT: f32 = 12_582_912.0;
    let t = xc.mul_add(std::f32::consts::LOG2_E, SHIFT);
    let k = t - SHIFT;
    let r = k.mul_add(-0.693_145_75, xc);
    let r = k.mul_add(-1.428_606_8e-6, r);
    let mut p = r.mul_add(1.388_888_9e-3, 8.333_334e-3);
    p = p.mul_add(r, 4.166_666_8e-2);
    p = p.mul_add(r, 1.666_666_7e-1);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let bits = ((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32;
    let v = p * f32::from_bits(bits);
    if x < EXP_LO { 0.0 } else { v }
}

#[inline(always)]
fn max_sumexp_impl(x: &[f32]) -> (f32, f64) {
    const BLOCK: usize = 2048;
    let mut m = f32::NEG_INFINITY;
    let mut s = 0.0f64;
    for block in x.chunks(BLOCK) {
        let mut lm = [f32::NEG_INFINITY; LANES];
        let mut it = block.chunks_exact(LANES);
        for c in &mut it {
            for j in 0..LANES {
                lm[j] = if c[j] > lm[j] { c[j] } else { lm[j] };
            }
        }
        let mut bm = f32::NEG_INFINITY;
        for &v in lm.iter().chain(it.remainder()) {
            bm = if v > bm { v } else { bm };
        }
        if bm > m {
            if s != 0.0 {
                s *= ((m - bm) as f64).exp();
            }
            m = bm;
        }
        if m == f32::NEG_INFINITY {
            // Whole prefix is -inf (or NaN): exp terms are 0 (or NaN below).
            if block.iter().any(|v| v.is_nan()) {
                s = f64::NAN;
            }
            continue;
        }
        let mut acc = [0.0f32; LANES];
        let mut it = block.chunks_exact(LANES);
        for c in &mut it {
            for j in 0..LANES {
                acc[j] += exp_nonpos(c[j] - m);
            }
        }
        let mut bs = 0.0f32;
        for a in acc {
            bs += a;
        }
        for &v in it.remainder() {
            bs += exp_nonpos(v - m);
        }
        s += bs as f64;
    }
    (m, s)
}

#[inline(always)]
fn softmax_affine_impl(
    src: Option<&[f32]>,
    dst: &mut [f32],
    lse: f32,
    a: f32,
    b: f32,
    w: Option<&[f32]>,
) {
    match (src, w) {
        (None, None) => {
            for v in dst.iter_mut() {
                *v = a * exp_f32(*v - lse) + b;
            }
        }
        (Some(x), None) => {
            for (o, &v) in dst.iter_mut().zip(x) {
                *o = a * exp_f32(v - lse) + b;
            }
        }
        (None, Some(w)) => {
            for (v, &wc) in dst.iter_mut().zip(w) {
                *v = a * exp_f32(*v - lse) + b * wc;
            }
        }
        (Some(x), Some(w)) => {
            for ((o, &v), &wc) in dst.iter_mut().zip(x).zip(w) {
                *o = a * exp_f32(v - lse) + b * wc;
            }
        }
    }
}

/// Block length of the streaming softmax passes (8 KiB of f32: one block stays in L1).
const BLOCK: usize = 2048;

/// Ask the CPU to start loading the cache line at `p` into L1. Never faults and does not
/// access memory as far as the language is concerned; a no-op off x86-64.
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address, and reads nothing
    // the program can observe. Callers pass addresses inside a live slice anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The pass over one block of [`softmax_store_impl`]: `d[c] = exp(x[c] - m)` and the lane sum
/// in the same order as [`max_sumexp_impl`]. `ahead` is where the next block starts (for the
/// prefetch), `x == None` reads `d` itself.
#[inline(always)]
fn exp_store_block(
    x: Option<&[f32]>,
    d: &mut [f32],
    m: f32,
    ahead: *const f32,
    ahead_len: usize,
) -> f32 {
    let mut acc = [0.0f32; LANES];
    let full = d.len() / LANES * LANES;
    match x {
        Some(x) => {
            for (t, (xc, dc)) in x[..full]
                .chunks_exact(LANES)
                .zip(d[..full].chunks_exact_mut(LANES))
                .enumerate()
            {
                if t * LANES < ahead_len {
                    prefetch(ahead.wrapping_add(t * LANES));
                }
                for j in 0..LANES {
                    let e = exp_nonpos(xc[j] - m);
                    dc[j] = e;
                    acc[j] += e;
                }
            }
        }
        None => {
            for (t, dc) in d[..full].chunks_exact_mut(LANES).enumerate() {
                if t * LANES < ahead_len {
                    prefetch(ahead.wrapping_add(t * LANES));
                }
                for j in 0..LANES {
                    let e = exp_nonpos(dc[j] - m);
                    dc[j] = e;
                    acc[j] += e;
                }
            }
        }
    }
    let mut bs = 0.0f32;
    for a in acc {
        bs += a;
    }
    for c in full..d.len() {
        let v = x.map_or(d[c], |x| x[c]);
        let e = exp_nonpos(v - m);
        d[c] = e;
        bs += e;
    }
    bs
}

#[inline(always)]
fn block_max(x: &[f32]) -> f32 {
    let mut lm = [f32::NEG_INFINITY; LANES];
    let mut it = x.chunks_exact(LANES);
    for c in &mut it {
        for j in 0..LANES {
            lm[j] = if c[j] > lm[j] { c[j] } else { lm[j] };
        }
    }
    let mut bm = f32::NEG_INFINITY;
    for &v in lm.iter().chain(it.remainder()) {
        bm = if v > bm { v } else { bm };
    }
    bm
}

#[inline(always)]
fn softmax_store_impl(src: Option<&[f32]>, dst: &mut [f32], shifts: &mut Vec<f32>) -> (f32, f64) {
    shifts.clear();
    let mut m = f32::NEG_INFINITY;
    let mut s = 0.0f64;
    let len = dst.len();
    let base: *const f32 = match src {
        Some(x) => x.as_ptr(),
        None => dst.as_ptr(),
    };
    for (b, d) in dst.chunks_mut(BLOCK).enumerate() {
        let start = b * BLOCK;
        let x = src.map(|x| &x[start..start + d.len()]);
        let bm = block_max(x.unwrap_or(d));
        if bm > m {
            if s != 0.0 {
                s *= ((m - bm) as f64).exp();
            }
            m = bm;
        }
        shifts.push(m);
        if m == f32::NEG_INFINITY {
            // Whole prefix is -inf (or NaN): exp terms are 0 (or NaN below).
            let nan = x.unwrap_or(d).iter().any(|v| v.is_nan());
            if nan {
                s = f64::NAN;
            }
            d.fill(if nan { f32::NAN } else { 0.0 });
            continue;
        }
        let next = (start + BLOCK).min(len);
        let ahead_len = len - next;
        s += exp_store_block(x, d, m, base.wrapping_add(next), ahead_len) as f64;
    }
    (m, s)
}

#[inline(always)]
fn softmax_finish_impl(
    dst: &mut [f32],
    shifts: &[f32],
    m: f32,
    s: f64,
    a: f32,
    b: f32,
    w: Option<&[f32]>,
) {
    for (k, d) in dst.chunks_mut(BLOCK).enumerate() {
        let mk = shifts.get(k).copied().unwrap_or(m);
        // p_c = e_c * exp(m_k - m) / s; the differences are exact in f64.
        let f = (a as f64 * (mk as f64 - m as f64).exp() / s) as f32;
        match w {
            None => {
                for v in d.iter_mut() {
                    *v = f * *v + b;
                }
            }
            Some(w) => {
                let w = &w[k * BLOCK..k * BLOCK + d.len()];
                for (v, &wc) in d.iter_mut().zip(w) {
                    *v = f * *v + b * wc;
                }
            }
        }
    }
}

#[inline(always)]
fn max_sumexp_scaled_impl(x: &[f32], k: f32) -> (f32, f64) {
    let mut lm = [f32::NEG_INFINITY; LANES];
    let mut it = x.chunks_exact(LANES);
    for c in &mut it {
        for j in 0..LANES {
            lm[j] = if c[j] > lm[j] { c[j] } else { lm[j] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in lm.iter().chain(it.remainder()) {
        m = if v > m { v } else { m };
    }
    if m == f32::NEG_INFINITY {
        let s = if x.iter().any(|v| v.is_nan()) {
            f64::NAN
        } else {
            0.0
        };
        return (m, s);
    }
    let mut s = 0.0f64;
    for block in x.chunks(2048) {
        let mut acc = [0.0f32; LANES];
        let mut it = block.chunks_exact(LANES);
        for c in &mut it {
            for j in 0..LANES {
                acc[j] += exp_f32(k * (c[j] - m));
            }
        }
        let mut bs = 0.0f32;
        for a in acc {
            bs += a;
        }
        for &v in it.remainder() {
            bs += exp_f32(k * (v - m));
        }
        s += bs as f64;
    }
    (k * m, s)
}

#[cfg(target_arch = "x86_64")]
mod simd {
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
        Isa::Avx512 => unsafe { simd::max_sumexp_avx512(x) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { simd::max_sumexp_avx2(x) },
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
        Isa::Avx512 => unsafe { simd::max_sumexp_scaled_avx512(x, k) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { simd::max_sumexp_scaled_avx2(x, k) },
        Isa::Generic => max_sumexp_scaled_impl(x, k),
    }
}

/// `LSE(k·x)` of a row for `k > 0` (f64); see [`max_sumexp_scaled`].
pub fn logsumexp_scaled(x: &[f32], k: f32) -> f64 {
    let (m, s) = max_sumexp_scaled(x, k);
    if m == f32::NEG_INFINITY {
        return if s.is_nan() {
            f64::NAN
        } else {
            f64::NEG_INFINITY
        };
    }
    m as f64 + s.ln()
}

/// Log-sum-exp of a row, `m + ln sum exp(x - m)` (f64).
pub fn logsumexp(x: &[f32]) -> f64 {
    let (m, s) = max_sumexp(x);
    if m == f32::NEG_INFINITY {
        return if s.is_nan() {
            f64::NAN
        } else {
            f64::NEG_INFINITY
        };
    }
    m as f64 + s.ln()
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
        Isa::Avx512 => unsafe { simd::softmax_affine_avx512(src, dst, lse, a, b, w) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { simd::softmax_affine_avx2(src, dst, lse, a, b, w) },
        Isa::Generic => softmax_affine_impl(src, dst, lse, a, b, w),
    }
}

/// A softmax row in two passes, for gradients: [`SoftmaxRow::store`] writes the unnormalised
/// exponentials into the destination while it finds the row's max and sum (one `exp` per
/// element, one read of the source), and [`SoftmaxRow::finish`] turns them into
/// `a * p_c + b * w_c` in the destination (no `exp`; the row is in cache by then).
#[derive(Debug, Default)]
pub struct SoftmaxRow {
    /// Row maximum.
    pub m: f32,
    /// `sum_c exp(x_c - m)` in f64; bit-identical to what [`max_sumexp`] returns.
    pub s: f64,
    shifts: Vec<f32>,
}

impl SoftmaxRow {
    /// `dst[c] = exp(x[c] - m_k)` with `m_k` the running max at block `k`, where `x = src`,
    /// or `dst` itself when `src` is None (in place). Sets `m` and `s` to exactly what
    /// [`max_sumexp`] gives for the same row.
    pub fn store(&mut self, src: Option<&[f32]>, dst: &mut [f32]) {
        let sh = &mut self.shifts;
        let (m, s) = match isa() {
            // SAFETY: the features were detected at run time.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { simd::softmax_store_avx512(src, dst, sh) },
            // SAFETY: the features were detected at run time.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { simd::softmax_store_avx2(src, dst, sh) },
            Isa::Generic => softmax_store_impl(src, dst, sh),
        };
        self.m = m;
        self.s = s;
    }
    /// Log-sum-exp of the stored row, `m + ln s` (f64).
    pub fn lse(&self) -> f64 {
        if self.m == f32::NEG_INFINITY {
            return if self.s.is_nan() {
                f64::NAN
            } else {
                f64::NEG_INFINITY
            };
        }
        self.m as f64 + self.s.ln()
    }
    /// Turn the stored exponentials in `dst` into `dst[c] = a * p_c + b * w[c]` (`w[c] = 1`
    /// when `w` is None), `p = softmax(x)`.
    pub fn finish(&self, dst: &mut [f32], a: f32, b: f32, w: Option<&[f32]>) {
        let (sh, m, s) = (&self.shifts[..], self.m, self.s);
        match isa() {
            // SAFETY: the features were detected at run time.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { simd::softmax_finish_avx512(dst, sh, m, s, a, b, w) },
            // SAFETY: the features were detected at run time.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { simd::softmax_finish_avx2(dst, sh, m, s, a, b, w) },
            Isa::Generic => softmax_finish_impl(dst, sh, m, s, a, b, w),
        }
    }
}

/// Numerically stable `softplus(x) = ln(1 + e^x)` in f64.
#[inline]
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Logistic sigmoid in f64.
#[inline]
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 - e^x)` for `x <= 0`, accurate at both ends.
#[inline]
pub fn log1mexp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

/// Softmax statistics of one row `ζ = k·x` (`k = 1/τ > 0`), from one streaming pass:
/// `m = max ζ`, `s = Σ e^{ζ−m}`, `t = Σ e^{ζ−m}(ζ−m)`, `u = Σ e^{2(ζ−m)}` (f64 across
/// blocks). From them: `lse = m + ln s`, entropy `H = ln s − t/s`, `ln Σ π² = ln u − 2 ln s`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxStats {
    /// Row maximum of `ζ`.
    pub m: f32,
    /// `Σ e^{ζ−m}`.
    pub s: f64,
    /// `Σ e^{ζ−m}(ζ−m)`.
    pub t: f64,
    /// `Σ e^{2(ζ−m)}`.
    pub u: f64,
}

impl Default for SoftmaxStats {
    fn default() -> Self {
        SoftmaxStats {
            m: f32::NEG_INFINITY,
            s: 0.0,
            t: 0.0,
            u: 0.0,
        }
    }
}

impl SoftmaxStats {
    /// `log Σ e^ζ`.
    pub fn lse(&self) -> f64 {
        self.m as f64 + self.s.ln()
    }
    /// `−Σ π ln π`.
    pub fn entropy(&self) -> f64 {
        self.s.ln() - self.t / self.s
    }
    /// `ln Σ π²`.
    pub fn log_collision(&self) -> f64 {
        self.u.ln() - 2.0 * self.s.ln()
    }
    #[inline(always)]
    fn rescale(&mut self, bm: f32) {
        if bm > self.m {
            if self.s != 0.0 {
                let d = self.m as f64 - bm as f64;
                let f = d.exp();
                self.t = f * (self.t + d * self.s);
                self.s *= f;
                self.u *= f * f;
            }
            self.m = bm;
        }
    }
}

/// Statistics of a reference row `ζr = k·r` against a policy row `ζ = k·x`:
/// `m = max ζr`, `s = Σ e^{ζr−m}`, `w = Σ e^{ζr−m}(ζ − ζr)`. With `q = softmax(ζr)`:
/// `Σ q (log π − log q) = w/s − lse(ζ) + lse(ζr)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefStats {
    /// Row maximum of `ζr`.
    pub m: f32,
    /// `Σ e^{ζr−m}`.
    pub s: f64,
    /// `Σ e^{ζr−m}(ζ − ζr)`.
    pub w: f64,
}

impl Default for RefStats {
    fn default() -> Self {
        RefStats {
            m: f32::NEG_INFINITY,
            s: 0.0,
            w: 0.0,
        }
    }
}

impl RefStats {
    /// `log Σ e^{ζr}`.
    pub fn lse(&self) -> f64 {
        self.m as f64 + self.s.ln()
    }
    #[inline(always)]
    fn rescale(&mut self, bm: f32) {
        if bm > self.m {
            if self.s != 0.0 {
                let f = (self.m as f64 - bm as f64).exp();
                self.s *= f;
                self.w *= f;
            }
            self.m = bm;
        }
    }
}

#[inline(always)]
fn softmax_stats_impl(x: &[f32], r: Option<&[f32]>, k: f32) -> (SoftmaxStats, RefStats) {
    const BLOCK: usize = 2048;
    let mut p = SoftmaxStats::default();
    let mut q = RefStats::default();
    for (b, xb) in x.chunks(BLOCK).enumerate() {
        // k > 0 and rounding is monotone, so max(k·x) = k·max(x) exactly.
        p.rescale(block_max(xb) * k);
        let rb = r.map(|r| &r[b * BLOCK..b * BLOCK + xb.len()]);
        if let Some(rb) = rb {
            q.rescale(block_max(rb) * k);
        }
        if p.m == f32::NEG_INFINITY && xb.iter().any(|v| v.is_nan()) {
            p.s = f64::NAN;
        }
        if p.m != f32::NEG_INFINITY {
            let m = p.m;
            let (mut as_, mut at, mut au) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
            let mut it = xb.chunks_exact(LANES);
            for c in &mut it {
                for j in 0..LANES {
                    let z = c[j] * k - m;
                    let e = exp_f32(z);
                    as_[j] += e;
                    at[j] += if e > 0.0 { e * z } else { 0.0 };
                    au[j] += e * e;
                }
            }
            let (mut bs, mut bt, mut bu) = (0.0f32, 0.0f32, 0.0f32);
            for j in 0..LANES {
                bs += as_[j];
                bt += at[j];
                bu += au[j];
            }
            for &v in it.remainder() {
                let z = v * k - m;
                let e = exp_f32(z);
                bs += e;
                bt += if e > 0.0 { e * z } else { 0.0 };
                bu += e * e;
            }
            p.s += bs as f64;
            p.t += bt as f64;
            p.u += bu as f64;
        }
        if let Some(rb) = rb {
            if q.m == f32::NEG_INFINITY && rb.iter().any(|v| v.is_nan()) {
                q.s = f64::NAN;
            }
            if q.m != f32::NEG_INFINITY {
                let m = q.m;
                let (mut as_, mut aw) = ([0.0f32; LANES], [0.0f32; LANES]);
                let mut it = rb.chunks_exact(LANES).zip(xb.chunks_exact(LANES));
                for (cr, cx) in &mut it {
                    for j in 0..LANES {
                        let zr = cr[j] * k;
                        let e = exp_f32(zr - m);
                        as_[j] += e;
                        aw[j] += if e > 0.0 { e * (cx[j] * k - zr) } else { 0.0 };
                    }
                }
                let (mut bs, mut bw) = (0.0f32, 0.0f32);
                for j in 0..LANES {
                    bs += as_[j];
                    bw += aw[j];
                }
                let done = rb.len() / LANES * LANES;
                for (&vr, &vx) in rb[done..].iter().zip(&xb[done..]) {
                    let zr = vr * k;
                    let e = exp_f32(zr - m);
                    bs += e;
                    bw += if e > 0.0 { e * (vx * k - zr) } else { 0.0 };
                }
                q.s += bs as f64;
                q.w += bw as f64;
            }
        }
    }
    (p, q)
}

/// Coefficients of [`log_softmax_vjp`].
#[derive(Clone, Copy, Debug, Default)]
pub struct VjpCoef {
    /// `k = 1/τ`.
    pub k: f32,
    /// `lse` of `ζ = k·x`.
    pub lse: f32,
    /// `lse` of `ζr = k·r`.
    pub lse_r: f32,
    /// Coefficient of `π`.
    pub a: f32,
    /// Coefficient of `π·log π`.
    pub b: f32,
    /// Coefficient of `q`.
    pub kq: f32,
}

#[inline(always)]
fn vjp_loop<const HB: bool, const HR: bool>(
    src: Option<&[f32]>,
    dst: &mut [f32],
    r: &[f32],
    c: VjpCoef,
) {
    let f = |x: f32, rv: f32| -> f32 {
        let z = x * c.k - c.lse;
        let p = exp_f32(z);
        let mut g = c.a * p;
        if HB {
            g += if p > 0.0 { c.b * p * z } else { 0.0 };
        }
        if HR {
            g += c.kq * exp_f32(rv * c.k - c.lse_r);
        }
        g
    };
    match src {
        Some(x) => {
            if HR {
                for ((o, &xv), &rv) in dst.iter_mut().zip(x).zip(r) {
                    *o = f(xv, rv);
                }
            } else {
                for (o, &xv) in dst.iter_mut().zip(x) {
                    *o = f(xv, 0.0);
                }
            }
        }
        None => {
            if HR {
                for (o, &rv) in dst.iter_mut().zip(r) {
                    *o = f(*o, rv);
                }
            } else {
                for o in dst.iter_mut() {
                    *o = f(*o, 0.0);
                }
            }
        }
    }
}

#[inline(always)]
fn log_softmax_vjp_impl(src: Option<&[f32]>, dst: &mut [f32], r: Option<&[f32]>, c: VjpCoef) {
    match (c.b != 0.0, r) {
        (false, None) => vjp_loop::<false, false>(src, dst, &[], c),
        (true, None) => vjp_loop::<true, false>(src, dst, &[], c),
        (false, Some(r)) => vjp_loop::<false, true>(src, dst, r, c),
        (true, Some(r)) => vjp_loop::<true, true>(src, dst, r, c),
    }
}

#[cfg(target_arch = "x86_64")]
mod simd_stats {
    use super::{RefStats, SoftmaxStats, VjpCoef};
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

/// [`SoftmaxStats`] of `k·x` and, when `r` is given (same length as `x`), [`RefStats`] of
/// `k·r` against it, in one streaming pass over both rows (blockwise online rescaling, 16
/// vector lanes, f64 across blocks). `k` must be `> 0`. Entries at `-inf` contribute 0.
pub fn softmax_stats(x: &[f32], r: Option<&[f32]>, k: f32) -> (SoftmaxStats, RefStats) {
    match isa() {
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { simd_stats::stats_avx512(x, r, k) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { simd_stats::stats_avx2(x, r, k) },
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
        Isa::Avx512 => unsafe { simd_stats::vjp_avx512(src, dst, r, c) },
        // SAFETY: the features were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { simd_stats::vjp_avx2(src, dst, r, c) },
        Isa::Generic => log_softmax_vjp_impl(src, dst, r, c),
    }
}

/// `log σ(x) = −softplus(−x)` in f64.
#[inline]
pub fn log_sigmoid(x: f64) -> f64 {
    -softplus(-x)
}

/// Max-shifted `log Σ_k e^{z_k}` in f64; entries may be −∞ (left out); −∞ for an empty set.
pub fn lse(z: &[f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + z.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let a = exp_f32(x) as f64;
            let b = (x as f64).exp();
            worst = worst.max(((a - b) / b).abs());
            x += 0.013;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn lse_matches_reference_and_is_isa_independent() {
        let x: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.03 - 12.0)
            .collect();
        let m = x
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, |a, b| a.max(b as f64));
        let r = m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        assert!((logsumexp(&x) - r).abs() < 1e-5);
        let (gm, gs) = max_sumexp_impl(&x);
        let (dm, ds) = max_sumexp(&x);
        assert_eq!(gm, dm);
        assert_eq!(gs.to_bits(), ds.to_bits());
    }

    #[test]
    fn exp_nonpos_is_exp_f32_for_nonpositive_arguments() {
        let mut x = 0.0f32;
        while x > -120.0 {
            assert_eq!(exp_nonpos(x).to_bits(), exp_f32(x).to_bits(), "x = {x}");
            x -= 0.0037;
        }
        for v in [
            -0.0f32,
            f32::NEG_INFINITY,
            -f32::MIN_POSITIVE,
            EXP_LO,
            -87.0,
        ] {
            assert_eq!(exp_nonpos(v).to_bits(), exp_f32(v).to_bits(), "x = {v}");
        }
        assert!(exp_nonpos(f32::NAN).is_nan());
    }

    #[test]
    fn scaled_lse_matches_reference() {
        let x: Vec<f32> = (0..3001)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.03 - 12.0)
            .collect();
        for k in [0.25f32, 1.0, 3.0] {
            let m = x
                .iter()
                .cloned()
                .fold(f64::NEG_INFINITY, |a, b| a.max(b as f64));
            let km = k as f64 * m;
            let r = km
                + x.iter()
                    .map(|&v| (k as f64 * v as f64 - km).exp())
                    .sum::<f64>()
                    .ln();
            assert!((logsumexp_scaled(&x, k) - r).abs() < 1e-5 * (1.0 + r.abs()));
            let (gm, gs) = max_sumexp_scaled_impl(&x, k);
            let (dm, ds) = max_sumexp_scaled(&x, k);
            assert_eq!(gm, dm);
            assert_eq!(gs.to_bits(), ds.to_bits());
        }
        assert_eq!(logsumexp_scaled(&[], 2.0), f64::NEG_INFINITY);
        assert!(logsumexp_scaled(&[1.0, f32::NAN], 2.0).is_nan());
    }

    #[test]
    fn map_rows_k_pairs_rows() {
        let a: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let b: Vec<f32> = (0..12).map(|v| 100.0 + v as f32).collect();
        let mut g = vec![0.0f32; 12];
        let out = map_rows_k(
            [
                RowsIo::Read { x: &a, stride: 4 },
                RowsIo::Separate {
                    x: &b,
                    stride: 4,
                    g: &mut g,
                    gstride: 4,
                },
            ],
            3,
            4,
            |i, [ra, mut rb]| {
                let s: f32 = ra.x().iter().sum::<f32>() + rb.x()[0];
                rb.map_grad(|c, v| v + c as f32 + i as f32);
                s
            },
        )
        .unwrap();
        assert_eq!(out, vec![106.0, 126.0, 146.0]);
        assert_eq!(g[5], 105.0 + 1.0 + 1.0);
        with_scratch(5, |s| {
            s.fill(1.0);
            with_scratch(3, |t| t.fill(2.0));
            assert!(s.iter().all(|&v| v == 1.0));
        });
    }

    #[test]
    fn lse_edge_rows() {
        assert_eq!(logsumexp(&[]), f64::NEG_INFINITY);
        assert_eq!(logsumexp(&[f32::NEG_INFINITY, 0.0]), 0.0);
        assert!(logsumexp(&[1.0, f32::NAN]).is_nan());
        assert!(logsumexp(&[f32::NAN]).is_nan());
    }

    fn ramp(n: usize, seed: u32) -> Vec<f32> {
        // Rising trend so that the running max changes from block to block.
        (0..n)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (h % 1000) as f32 * 0.01 - 5.0 + i as f32 * 1e-3
            })
            .collect()
    }

    #[test]
    fn softmax_row_matches_max_sumexp_bits_and_the_f64_softmax() {
        for n in [1usize, 5, 16, 17, 2048, 2049, 5000, 32000] {
            let x = ramp(n, n as u32);
            let (m0, s0) = max_sumexp(&x);
            let mut sep = vec![0.0f32; n];
            let mut sm = SoftmaxRow::default();
            sm.store(Some(&x), &mut sep);
            assert_eq!((sm.m, sm.s.to_bits()), (m0, s0.to_bits()), "n = {n}");
            let (a, b) = (0.75f32, -0.125f32);
            sm.finish(&mut sep, a, b, None);
            let mut inpl = x.clone();
            let mut sm2 = SoftmaxRow::default();
            sm2.store(None, &mut inpl);
            assert_eq!((sm2.m, sm2.s.to_bits()), (m0, s0.to_bits()));
            sm2.finish(&mut inpl, a, b, None);
            assert_eq!(sep, inpl, "in place and separate give the same bits");
            let mx = x.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let z: f64 = x.iter().map(|&v| (v as f64 - mx).exp()).sum();
            for (c, &g) in sep.iter().enumerate() {
                let p = (x[c] as f64 - mx).exp() / z;
                let want = a as f64 * p + b as f64;
                assert!(
                    (g as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "n {n} c {c}"
                );
            }
            assert!((sm.lse() - logsumexp(&x)).abs() == 0.0);
        }
    }

    #[test]
    fn softmax_row_weights_and_edge_rows() {
        let x = ramp(3000, 9);
        let w: Vec<f32> = (0..3000).map(|i| (i % 5) as f32 * 0.5).collect();
        let mut g = vec![0.0f32; 3000];
        let mut sm = SoftmaxRow::default();
        sm.store(Some(&x), &mut g);
        sm.finish(&mut g, 1.0, -0.5, Some(&w));
        let mut p = vec![0.0f32; 3000];
        softmax_affine(Some(&x), &mut p, sm.lse() as f32, 1.0, -0.5, Some(&w));
        for (a, b) in g.iter().zip(&p) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()));
        }
        // A first block of -inf gives zero probabilities there.
        let mut x = ramp(4096, 1);
        x[..2048].fill(f32::NEG_INFINITY);
        let mut g = vec![1.0f32; 4096];
        let mut sm = SoftmaxRow::default();
        sm.store(Some(&x), &mut g);
        sm.finish(&mut g, 1.0, 0.0, None);
        assert!(g[..2048].iter().all(|&v| v == 0.0));
        let total: f64 = g.iter().map(|&v| v as f64).sum();
        assert!((total - 1.0).abs() < 1e-5);
        // NaN anywhere: NaN sum, as max_sumexp.
        let mut x = ramp(100, 2);
        x[50] = f32::NAN;
        let mut g = vec![0.0f32; 100];
        let mut sm = SoftmaxRow::default();
        sm.store(Some(&x), &mut g);
        assert!(sm.s.is_nan() && sm.lse().is_nan());
        // Empty row.
        let mut sm = SoftmaxRow::default();
        sm.store(None, &mut []);
        assert_eq!(sm.lse(), f64::NEG_INFINITY);
    }

    #[test]
    fn softmax_stats_match_reference_and_are_isa_independent() {
        let x: Vec<f32> = (0..5003)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.02 - 9.0)
            .collect();
        let r: Vec<f32> = (0..5003)
            .map(|i| ((i * 104_729) % 997) as f32 * 0.015 - 6.0)
            .collect();
        let k = 1.0f32 / 0.7;
        let (p, q) = softmax_stats(&x, Some(&r), k);
        let z: Vec<f64> = x.iter().map(|&v| (v * k) as f64).collect();
        let zr: Vec<f64> = r.iter().map(|&v| (v * k) as f64).collect();
        let lse = |z: &[f64]| {
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
        };
        let (l, lr) = (lse(&z), lse(&zr));
        let h: f64 = -z.iter().map(|v| (v - l).exp() * (v - l)).sum::<f64>();
        let coll = z.iter().map(|v| (2.0 * (v - l)).exp()).sum::<f64>().ln();
        let kl: f64 = z
            .iter()
            .zip(&zr)
            .map(|(a, b)| (b - lr).exp() * ((a - l) - (b - lr)))
            .sum();
        assert!((p.lse() - l).abs() < 1e-5);
        assert!((q.lse() - lr).abs() < 1e-5);
        assert!((p.entropy() - h).abs() < 1e-5, "{} {h}", p.entropy());
        assert!((p.log_collision() - coll).abs() < 1e-5);
        assert!((q.w / q.s - p.lse() + q.lse() - kl).abs() < 1e-5);
        let (gp, gq) = softmax_stats_impl(&x, Some(&r), k);
        assert_eq!((gp, gq), (p, q));
        let mut a = vec![0.0f32; x.len()];
        let mut b = a.clone();
        let c = VjpCoef {
            k,
            lse: l as f32,
            lse_r: lr as f32,
            a: 0.3,
            b: -0.2,
            kq: 0.5,
        };
        log_softmax_vjp(Some(&x), &mut a, Some(&r), c);
        log_softmax_vjp_impl(Some(&x), &mut b, Some(&r), c);
        assert_eq!(a, b);
        for v in [0usize, 17, 4999] {
            let pi = (z[v] - l).exp();
            let want = 0.3 * pi - 0.2 * pi * (z[v] - l) + 0.5 * (zr[v] - lr).exp();
            assert!((a[v] as f64 - want).abs() < 1e-6);
        }
    }

    #[test]
    fn softmax_stats_with_masked_vocabulary() {
        let x = [f32::NEG_INFINITY, 1.0, 2.0, f32::NEG_INFINITY];
        let (p, _) = softmax_stats(&x, None, 1.0);
        let e = (-1.0f64).exp();
        let want_h = (1.0 + e).ln() + e / (1.0 + e);
        assert!((p.entropy() - want_h).abs() < 1e-6);
        assert!(softmax_stats(&[1.0, f32::NAN], None, 1.0).0.s.is_nan());
    }
}
