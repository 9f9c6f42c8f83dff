//! Tiled pairwise kernels: the CPU executor for losses that compare every row of one matrix
//! with every row of another (distance layers, Gram matrices), written like a matrix
//! product so that the `[N, C, D]` tensor of elementwise terms is never materialised.
//!
//! - [`pair_reduce`]: `out[i, j] = Σ_k t(x_ik, x2_ik, w_jk, w2_jk)` (or the max over `k`,
//!   with the first arg-max), for a [`PairTerm`] `t`: dot products, squared or L1
//!   distances, quadratic forms...
//! - [`pair_grad_left`] / [`pair_grad_right`]: the backward contractions
//!   `gx[i, k] = Σ_j dx(a_ij, a2_ij, x_ik, w_jk)` and `gw[j, k] = Σ_i dw(a_ij, a2_ij, x_ik, w_jk)`
//!   for a [`PairDeriv`], given the coefficient matrices `a` (and `a2`), `[N, C]`.
//!
//! Layout and order: the forward pass transposes the right operand once (`[D, C]`, padded
//! to the tile width) and computes `8 x 16` output tiles, vectorised over the 16 columns;
//! the right tile is reused by the 8 rows of every micro-tile of a 64-row block. Terms are
//! summed in f32 over blocks of 64 features (forward) or 64 partners (backward), and the
//! block sums in f64. Every output element is summed in one fixed order, so the results do
//! not depend on the number of threads (rayon splits the work by fixed row blocks) and are
//! bit-identical on every instruction set (the loops are compiled for AVX-512 and AVX2 with
//! run-time dispatch, without fused multiply-adds).

use rayon::prelude::*;

use super::cpu::isa_name;

/// Output columns per forward micro-tile (one 16-lane vector).
const TC: usize = 16;
/// Output rows per forward micro-tile.
const TI: usize = 8;
/// Rows per parallel forward task.
const RB: usize = 64;
/// Terms summed in f32 before each f64 flush.
const KB: usize = 64;
/// Rows (or partners) per parallel backward task.
const GB: usize = 8;

/// The elementwise term of a pairwise reduction over the feature axis.
pub trait PairTerm: Sync {
    /// Reduce by maximum (recording the first arg-max) instead of by sum.
    const MAX: bool = false;
    /// The term of feature `k` for left values `x, x2` and right values `w, w2` (the second
    /// values are 0 when the operand has no second matrix).
    fn term(&self, x: f32, x2: f32, w: f32, w2: f32) -> f32;
}

/// One side of a pairwise reduction: a row-major `[rows, D]` matrix and an optional second
/// matrix of the same shape (read together with it, e.g. `x` and `P x`).
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    /// The matrix.
    pub a: &'a [f32],
    /// The optional second matrix.
    pub b: Option<&'a [f32]>,
    /// Number of rows.
    pub rows: usize,
}

impl<'a> Operand<'a> {
    /// A single matrix of `rows` rows.
    pub fn new(a: &'a [f32], rows: usize) -> Self {
        Operand { a, b: None, rows }
    }
    /// A matrix with a second matrix of the same shape.
    pub fn with(a: &'a [f32], b: &'a [f32], rows: usize) -> Self {
        Operand {
            a,
            b: Some(b),
            rows,
        }
    }
}

/// The product term `x·w` (dot products, matrix products).
#[derive(Clone, Copy, Debug)]
pub struct Product;

impl PairTerm for Product {
    #[inline(always)]
    fn term(&self, x: f32, _: f32, w: f32, _: f32) -> f32 {
        x * w
    }
}

/// `[rows, cols]` to `[cols, pad]` (pad >= rows, extra columns 0).
pub fn transpose(a: &[f32], rows: usize, cols: usize, pad: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; cols * pad];
    for r in 0..rows {
        for (k, &v) in a[r * cols..(r + 1) * cols].iter().enumerate() {
            t[k * pad + r] = v;
        }
    }
    t
}

struct Fwd<'a> {
    x: &'a [f32],
    x2: Option<&'a [f32]>,
    wt: &'a [f32],
    wt2: Option<&'a [f32]>,
    d: usize,
    c: usize,
    cp: usize,
}

/// One block of up to `RB` rows starting at row `i0`: `out` holds `rows x c` values.
#[inline(always)]
fn fwd_block<T: PairTerm>(
    t: &T,
    f: &Fwd<'_>,
    i0: usize,
    out: &mut [f32],
    mut idx: Option<&mut [u32]>,
) {
    let c = f.c;
    let rows = out.len() / c.max(1);
    let mut c0 = 0;
    while c0 < c {
        let mut r0 = 0;
        while r0 < rows {
            // Full micro-tiles have a constant row count, so their accumulators stay in
            // registers; the last rows of a block go one at a time.
            let r = if rows - r0 >= TI { TI } else { 1 };
            let o = &mut out[r0 * c..(r0 + r) * c];
            let ix = idx.as_deref_mut().map(|ix| &mut ix[r0 * c..(r0 + r) * c]);
            if r == TI {
                micro::<T, TI>(t, f, i0 + r0, c0, o, ix);
            } else {
                micro::<T, 1>(t, f, i0 + r0, c0, o, ix);
            }
            r0 += r;
        }
        c0 += TC;
    }
}

/// The `R x TC` output tile at rows `row0..row0+R`, columns `c0..c0+TC` (clipped to `c`);
/// `out` (and `idx`) hold the `R` full output rows.
#[inline(always)]
fn micro<T: PairTerm, const R: usize>(
    t: &T,
    f: &Fwd<'_>,
    row0: usize,
    c0: usize,
    out: &mut [f32],
    idx: Option<&mut [u32]>,
) {
    let (d, c) = (f.d, f.c);
    let cw = TC.min(c - c0);
    let mut acc64 = [[0.0f64; TC]; R];
    let mut best = [[f32::NEG_INFINITY; TC]; R];
    let mut arg = [[0u32; TC]; R];
    let mut k0 = 0;
    while k0 < d {
        let k1 = (k0 + KB).min(d);
        let mut acc = [[0.0f32; TC]; R];
        for k in k0..k1 {
            let wrow: &[f32; TC] = f.wt[k * f.cp + c0..k * f.cp + c0 + TC]
                .try_into()
                .expect("tile width");
            let w2row: [f32; TC] = match f.wt2 {
                Some(w2) => w2[k * f.cp + c0..k * f.cp + c0 + TC]
                    .try_into()
                    .expect("tile width"),
                None => [0.0; TC],
            };
            for ii in 0..R {
                let at = (row0 + ii) * d + k;
                let xv = f.x[at];
                let x2v = f.x2.map_or(0.0, |x2| x2[at]);
                if T::MAX {
                    for cc in 0..TC {
                        let v = t.term(xv, x2v, wrow[cc], w2row[cc]);
                        let m = best[ii][cc];
                        let take = (v > m || v.is_nan()) && !m.is_nan();
                        best[ii][cc] = if take { v } else { m };
                        arg[ii][cc] = if take { k as u32 } else { arg[ii][cc] };
                    }
                } else {
                    for cc in 0..TC {
                        acc[ii][cc] += t.term(xv, x2v, wrow[cc], w2row[cc]);
                    }
                }
            }
        }
        if !T::MAX {
            for ii in 0..R {
                for cc in 0..TC {
                    acc64[ii][cc] += acc[ii][cc] as f64;
                }
            }
        }
        k0 = k1;
    }
    let mut idx = idx;
    for ii in 0..R {
        let o = &mut out[ii * c + c0..ii * c + c0 + cw];
        for cc in 0..cw {
            o[cc] = if T::MAX {
                if d == 0 { 0.0 } else { best[ii][cc] }
            } else {
                acc64[ii][cc] as f32
            };
        }
        if let Some(ix) = idx.as_deref_mut() {
            ix[ii * c + c0..ii * c + c0 + cw].copy_from_slice(&arg[ii][..cw]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::*;
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn fwd_avx512<T: PairTerm>(
        t: &T,
        f: &Fwd<'_>,
        i0: usize,
        out: &mut [f32],
        idx: Option<&mut [u32]>,
    ) {
        fwd_block(t, f, i0, out, idx)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn fwd_avx2<T: PairTerm>(
        t: &T,
        f: &Fwd<'_>,
        i0: usize,
        out: &mut [f32],
        idx: Option<&mut [u32]>,
    ) {
        fwd_block(t, f, i0, out, idx)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn grad_avx512<T: PairDeriv, const LEFT: bool>(
        g: &Bwd<'_, T>,
        b0: usize,
        out: &mut [f32],
    ) {
        grad_block::<T, LEFT>(g, b0, out)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn grad_avx2<T: PairDeriv, const LEFT: bool>(
        g: &Bwd<'_, T>,
        b0: usize,
        out: &mut [f32],
    ) {
        grad_block::<T, LEFT>(g, b0, out)
    }
}

fn run_fwd<T: PairTerm>(t: &T, f: &Fwd<'_>, i0: usize, out: &mut [f32], idx: Option<&mut [u32]>) {
    match isa_name() {
        // SAFETY: isa_name reports a feature set only when it was detected at run time.
        #[cfg(target_arch = "x86_64")]
        "avx512" => unsafe { simd::fwd_avx512(t, f, i0, out, idx) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        "avx2" => unsafe { simd::fwd_avx2(t, f, i0, out, idx) },
        _ => fwd_block(t, f, i0, out, idx),
    }
}

/// `out[i * C + j] = Σ_k t(x_ik, x2_ik, w_jk, w2_jk)` for `i < left.rows`, `j < right.rows`
/// (`C = right.rows`), both operands `[rows, d]`; with [`PairTerm::MAX`], the maximum over
/// `k` instead, and its first arg-max in `argmax` when given. Parallel over row blocks.
pub fn pair_reduce<T: PairTerm>(
    t: &T,
    left: Operand<'_>,
    right: Operand<'_>,
    d: usize,
    out: &mut [f32],
    argmax: Option<&mut [u32]>,
) {
    let (n, c) = (left.rows, right.rows);
    if n == 0 || c == 0 {
        return;
    }
    let cp = c.div_ceil(TC) * TC;
    let wt = transpose(right.a, c, d, cp);
    let wt2 = right.b.map(|b| transpose(b, c, d, cp));
    let f = Fwd {
        x: left.a,
        x2: left.b,
        wt: &wt,
        wt2: wt2.as_deref(),
        d,
        c,
        cp,
    };
    let out = &mut out[..n * c];
    match argmax {
        Some(ix) => out
            .par_chunks_mut(RB * c)
            .zip(ix[..n * c].par_chunks_mut(RB * c))
            .enumerate()
            .for_each(|(b, (o, ix))| run_fwd(t, &f, b * RB, o, Some(ix))),
        None => out
            .par_chunks_mut(RB * c)
            .enumerate()
            .for_each(|(b, o)| run_fwd(t, &f, b * RB, o, None)),
    }
}

/// The per-feature derivative terms of a pairwise reduction, weighted by per-pair
/// coefficients `a1` (and `a2` when [`PairDeriv::TWO`]).
pub trait PairDeriv: Sync {
    /// A second coefficient matrix is used.
    const TWO: bool = false;
    /// Contribution of the pair to the left gradient of feature `k`.
    fn dx(&self, a1: f32, a2: f32, x: f32, w: f32) -> f32;
    /// Contribution of the pair to the right gradient of feature `k`.
    fn dw(&self, a1: f32, a2: f32, x: f32, w: f32) -> f32;
}

/// The arguments of a backward contraction.
pub struct Bwd<'a, T> {
    /// The derivative terms.
    pub t: &'a T,
    /// Coefficients `[N, C]`.
    pub a1: &'a [f32],
    /// Second coefficients `[N, C]` (when `T::TWO`).
    pub a2: Option<&'a [f32]>,
    /// Left matrix `[N, D]`.
    pub x: &'a [f32],
    /// Right matrix `[C, D]`.
    pub w: &'a [f32],
    /// Rows of the left matrix.
    pub n: usize,
    /// Rows of the right matrix.
    pub c: usize,
    /// Features.
    pub d: usize,
}

/// One block of `GB` rows (LEFT: rows of x; else rows of w) of the gradient, `out` holding
/// their `D` values each.
#[inline(always)]
fn grad_block<T: PairDeriv, const LEFT: bool>(g: &Bwd<'_, T>, b0: usize, out: &mut [f32]) {
    let d = g.d;
    if d == 0 {
        return;
    }
    let rows = out.len() / d;
    let partners = if LEFT { g.c } else { g.n };
    let mut acc = vec![0.0f32; rows * d];
    let mut acc64 = vec![0.0f64; rows * d];
    let mut p0 = 0;
    while p0 < partners {
        let p1 = (p0 + KB).min(partners);
        for p in p0..p1 {
            for r in 0..rows {
                let (i, j) = if LEFT { (b0 + r, p) } else { (p, b0 + r) };
                let a1 = g.a1[i * g.c + j];
                let a2 = if T::TWO {
                    g.a2.map_or(0.0, |a| a[i * g.c + j])
                } else {
                    0.0
                };
                if a1 == 0.0 && a2 == 0.0 {
                    continue;
                }
                let xr = &g.x[i * d..(i + 1) * d];
                let wr = &g.w[j * d..(j + 1) * d];
                let o = &mut acc[r * d..(r + 1) * d];
                if LEFT {
                    for k in 0..d {
                        o[k] += g.t.dx(a1, a2, xr[k], wr[k]);
                    }
                } else {
                    for k in 0..d {
                        o[k] += g.t.dw(a1, a2, xr[k], wr[k]);
                    }
                }
            }
        }
        for (s, a) in acc64.iter_mut().zip(acc.iter_mut()) {
            *s += *a as f64;
            *a = 0.0;
        }
        p0 = p1;
    }
    for (o, s) in out.iter_mut().zip(&acc64) {
        *o = *s as f32;
    }
}

fn run_grad<T: PairDeriv, const LEFT: bool>(g: &Bwd<'_, T>, b0: usize, out: &mut [f32]) {
    match isa_name() {
        // SAFETY: isa_name reports a feature set only when it was detected at run time.
        #[cfg(target_arch = "x86_64")]
        "avx512" => unsafe { simd::grad_avx512::<T, LEFT>(g, b0, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        "avx2" => unsafe { simd::grad_avx2::<T, LEFT>(g, b0, out) },
        _ => grad_block::<T, LEFT>(g, b0, out),
    }
}

/// `out[i, k] = Σ_j dx(a1_ij, a2_ij, x_ik, w_jk)`, `out` shaped like `x` (`[N, D]`).
/// Parallel over blocks of rows of `x`.
pub fn pair_grad_left<T: PairDeriv>(g: &Bwd<'_, T>, out: &mut [f32]) {
    if g.n == 0 || g.d == 0 {
        return;
    }
    out[..g.n * g.d]
        .par_chunks_mut(GB * g.d)
        .enumerate()
        .for_each(|(b, o)| run_grad::<T, true>(g, b * GB, o));
}

/// `out[j, k] = Σ_i dw(a1_ij, a2_ij, x_ik, w_jk)`, `out` shaped like `w` (`[C, D]`).
/// Parallel over blocks of rows of `w`.
pub fn pair_grad_right<T: PairDeriv>(g: &Bwd<'_, T>, out: &mut [f32]) {
    if g.c == 0 || g.d == 0 {
        return;
    }
    out[..g.c * g.d]
        .par_chunks_mut(GB * g.d)
        .enumerate()
        .for_each(|(b, o)| run_grad::<T, false>(g, b * GB, o));
}

/// `a·w` (left) / `a·x` (right): the gradients of dot products.
#[derive(Clone, Copy, Debug)]
pub struct ProductDeriv;

impl PairDeriv for ProductDeriv {
    #[inline(always)]
    fn dx(&self, a: f32, _: f32, _: f32, w: f32) -> f32 {
        a * w
    }
    #[inline(always)]
    fn dw(&self, a: f32, _: f32, x: f32, _: f32) -> f32 {
        a * x
    }
}

/// `x / max(‖x‖, 1e-12)` per row, and the norms.
pub fn normalise(a: &[f32], rows: usize, d: usize) -> (Vec<f32>, Vec<f64>) {
    let mut out = vec![0.0f32; rows * d];
    let mut norms = vec![0.0f64; rows];
    for r in 0..rows {
        let row = &a[r * d..(r + 1) * d];
        let nr = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        norms[r] = nr;
        let den = nr.max(1e-12);
        for (o, &v) in out[r * d..(r + 1) * d].iter_mut().zip(row) {
            *o = (v as f64 / den) as f32;
        }
    }
    (out, norms)
}

/// Chain rule through `x̂ = x / max(‖x‖, 1e-12)` for each row of `s = dl/dx̂`: the
/// projection `(I - h hᵀ/q) s / ‖x‖` of the stored unit row `h` (`q = h·h`, which keeps it a
/// projection although `h` is rounded), in the leave-one-out form
/// `(s_k Σ_{j≠k} h_j² - h_k Σ_{j≠k} h_j s_j) / (q ‖x‖)` whose `j = k` terms, which cancel, are
/// never formed. Here in f64, where the products of f32 values are exact, so that the sums
/// over `j ≠ k` are the totals minus the `k` terms without rounding when only one feature is
/// non-zero: such a row (every row when `d = 1`) gets exact zeros along its own direction.
/// The GPU kernel (`thru_norm`) evaluates the same form with prefix and suffix sums.
pub fn through_normalise(s: &mut [f32], hat: &[f32], norms: &[f64], d: usize) {
    for (r, &nr) in norms.iter().enumerate() {
        let g = &mut s[r * d..(r + 1) * d];
        let h = &hat[r * d..(r + 1) * d];
        if nr >= 1e-12 {
            let dot: f64 = g.iter().zip(h).map(|(&a, &b)| a as f64 * b as f64).sum();
            let q: f64 = h.iter().map(|&b| b as f64 * b as f64).sum();
            let den = q * nr;
            for (gk, &hk) in g.iter_mut().zip(h) {
                let (gv, hv) = (*gk as f64, hk as f64);
                let num = gv * (q - hv * hv) - hv * (dot - hv * gv);
                *gk = if den > 0.0 { (num / den) as f32 } else { 0.0 };
            }
        } else {
            for gk in g.iter_mut() {
                *gk = (*gk as f64 / 1e-12) as f32;
            }
        }
    }
}

/// Rows used for the centring point of [`centre`].
pub const CENTRE_ROWS: usize = 1024;

/// `x - μ` and `w - μ` (rounded to f32) for row-major `x [n, d]` and `w [c, d]`, with `μ` the
/// column mean of the first (at most) [`CENTRE_ROWS`] rows of `w`: pairwise differences are
/// translation invariant, centred operands make the terms of an expanded form such as
/// `(Px - Pw)·(x - w)` smaller when the rows share an offset, and a point taken from `w` only
/// keeps each row of `x` independent of the others.
pub fn centre(x: &[f32], n: usize, w: &[f32], c: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    debug_assert_eq!(x.len(), n * d);
    let nb = c.min(CENTRE_ROWS);
    let mu: Vec<f64> = (0..d)
        .map(|k| (0..nb).map(|r| w[r * d + k] as f64).sum::<f64>() / nb.max(1) as f64)
        .collect();
    let mu32: Vec<f32> = mu.iter().map(|&m| m as f32).collect();
    let sub = |a: &[f32]| -> Vec<f32> {
        a.iter()
            .enumerate()
            .map(|(e, &v)| v - mu32[e % d.max(1)])
            .collect()
    };
    (sub(x), sub(w))
}

/// `A B` for row-major `a [r, p]` and `b [p, q]`, as `[r, q]`, through [`pair_reduce`].
pub fn matmul(a: &[f32], b: &[f32], r: usize, p: usize, q: usize) -> Vec<f32> {
    let bt = transpose(b, p, q, p);
    let mut out = vec![0.0f32; r * q];
    pair_reduce(
        &Product,
        Operand::new(a, r),
        Operand::new(&bt, q),
        p,
        &mut out,
        None,
    );
    out
}

/// `Aᵀ B` for row-major `a [r, p]` and `b [r, q]`, as `[p, q]`.
pub fn matmul_tn(a: &[f32], b: &[f32], r: usize, p: usize, q: usize) -> Vec<f32> {
    let at = transpose(a, r, p, r);
    let bt = transpose(b, r, q, r);
    let mut out = vec![0.0f32; p * q];
    pair_reduce(
        &Product,
        Operand::new(&at, p),
        Operand::new(&bt, q),
        r,
        &mut out,
        None,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
            .collect()
    }

    struct L1;
    impl PairTerm for L1 {
        fn term(&self, x: f32, _: f32, w: f32, _: f32) -> f32 {
            (x - w).abs()
        }
    }
    struct Cheb;
    impl PairTerm for Cheb {
        const MAX: bool = true;
        fn term(&self, x: f32, _: f32, w: f32, _: f32) -> f32 {
            (x - w).abs()
        }
    }
    struct Diff;
    impl PairDeriv for Diff {
        fn dx(&self, a: f32, _: f32, x: f32, w: f32) -> f32 {
            a * (x - w)
        }
        fn dw(&self, a: f32, _: f32, x: f32, w: f32) -> f32 {
            a * (w - x)
        }
    }

    #[test]
    fn pair_reduce_matches_naive_loops() {
        for (n, c, d) in [(1, 1, 1), (3, 17, 5), (70, 33, 130), (9, 16, 0)] {
            let x = data(n * d, 1);
            let w = data(c * d, 2);
            let mut out = vec![0.0f32; n * c];
            let mut mx = vec![0.0f32; n * c];
            let mut ix = vec![0u32; n * c];
            pair_reduce(
                &L1,
                Operand::new(&x, n),
                Operand::new(&w, c),
                d,
                &mut out,
                None,
            );
            pair_reduce(
                &Cheb,
                Operand::new(&x, n),
                Operand::new(&w, c),
                d,
                &mut mx,
                Some(&mut ix),
            );
            for i in 0..n {
                for j in 0..c {
                    let terms: Vec<f64> = (0..d)
                        .map(|k| (x[i * d + k] as f64 - w[j * d + k] as f64).abs())
                        .collect();
                    let s: f64 = terms.iter().sum();
                    assert!((out[i * c + j] as f64 - s).abs() < 1e-4 * (1.0 + s));
                    if d > 0 {
                        // The arg-max of the f32 terms the kernel sees.
                        let t32: Vec<f32> = (0..d)
                            .map(|k| (x[i * d + k] - w[j * d + k]).abs())
                            .collect();
                        let mut best = 0;
                        for k in 1..d {
                            if t32[k] > t32[best] {
                                best = k;
                            }
                        }
                        assert_eq!(ix[i * c + j] as usize, best);
                        assert!((mx[i * c + j] as f64 - terms[best]).abs() < 1e-6);
                    }
                }
            }
        }
    }

    #[test]
    fn pair_grads_match_naive_loops_and_matmuls_agree() {
        let (n, c, d) = (19, 11, 37);
        let x = data(n * d, 3);
        let w = data(c * d, 4);
        let a = data(n * c, 5);
        let g = Bwd {
            t: &Diff,
            a1: &a,
            a2: None,
            x: &x,
            w: &w,
            n,
            c,
            d,
        };
        let mut gx = vec![0.0f32; n * d];
        let mut gw = vec![0.0f32; c * d];
        pair_grad_left(&g, &mut gx);
        pair_grad_right(&g, &mut gw);
        for i in 0..n {
            for k in 0..d {
                let s: f64 = (0..c)
                    .map(|j| a[i * c + j] as f64 * (x[i * d + k] as f64 - w[j * d + k] as f64))
                    .sum();
                assert!((gx[i * d + k] as f64 - s).abs() < 1e-4 * (1.0 + s.abs()));
            }
        }
        for j in 0..c {
            for k in 0..d {
                let s: f64 = (0..n)
                    .map(|i| a[i * c + j] as f64 * (w[j * d + k] as f64 - x[i * d + k] as f64))
                    .sum();
                assert!((gw[j * d + k] as f64 - s).abs() < 1e-4 * (1.0 + s.abs()));
            }
        }
        let ab = matmul(&x, &transpose(&w, c, d, c), n, d, c);
        let atb = matmul_tn(&transpose(&x, n, d, n), &transpose(&w, c, d, c), d, n, c);
        for (p, q) in ab.iter().zip(&atb) {
            assert!((p - q).abs() < 1e-4 * (1.0 + p.abs()));
        }
    }

    /// Rows along one axis (every row when `d = 1`) have a zero gradient along that axis,
    /// exactly, even when the stored unit row is a few ulp off 1.
    #[test]
    fn through_normalise_is_exact_along_the_row() {
        let up = f32::from_bits(1.0f32.to_bits() + 3);
        let down = f32::from_bits(1.0f32.to_bits() - 2);
        for h in [1.0f32, -1.0, up, -down] {
            let mut g = vec![0.37f32];
            through_normalise(&mut g, &[h], &[0.01], 1);
            assert_eq!(g[0], 0.0, "d = 1, unit row {h}");
            let mut g = vec![-5.0f32, 2.0, 0.5];
            through_normalise(&mut g, &[0.0, h, 0.0], &[0.02], 3);
            assert_eq!(g, vec![-250.0, 0.0, 25.0], "axis row {h}");
        }
    }
}
