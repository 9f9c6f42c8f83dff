//! Row executors: run a per-row function over `[N, C]` rows in parallel (rayon), reading
//! the input and optionally writing its gradient, either into a separate buffer or over the
//! input itself (in place); [`map_rows_k`] does the same over several same-shaped sources
//! at once, and [`with_scratch`] lends a row function a per-thread temporary row. Results
//! come back in row order, so every reduction over them is deterministic whatever the
//! thread count.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
