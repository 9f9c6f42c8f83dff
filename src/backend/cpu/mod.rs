//! CPU executors and fast math shared by the losses.
//!
//! - `rows`: [`map_rows`] runs a per-row function over `[N, C]` rows in parallel
//!   (rayon), reading the input and optionally writing its gradient, either into a separate
//!   buffer or over the input itself (in place); [`map_rows_k`] does so over several
//!   same-shaped sources at once. Results come back in row order, so every reduction over
//!   them is deterministic whatever the thread count.
//! - `softmax`: [`max_sumexp`], [`logsumexp`], [`softmax_affine`], [`SoftmaxRow`],
//!   [`softmax_stats`], [`log_softmax_vjp`]: the exp-bound inner loops of every softmax loss,
//!   written in 16 independent lanes so that they vectorise.
//! - `simd`: those kernels compiled for AVX-512 and AVX2+FMA with run-time dispatch
//!   ([`isa_name`]). The lane layout is fixed, so the result is bit-identical on every
//!   instruction set.
//! - `math`: the scalar [`exp_f32`] the kernels are built on, and f64 helpers ([`softplus`],
//!   [`sigmoid`], [`log1mexp`]).
//!
//! Every item is re-exported here, so `crate::backend::cpu::X` is the one path to use.

mod math;
mod rows;
mod simd;
mod softmax;

pub use math::{exp_f32, log_sigmoid, log1mexp, lse, sigmoid, softplus};
pub use rows::{RowIo, RowsIo, map_rows, map_rows_k, with_scratch};
pub use simd::{
    isa_name, log_softmax_vjp, max_sumexp, max_sumexp_scaled, softmax_affine, softmax_stats,
};
pub use softmax::{RefStats, SoftmaxRow, SoftmaxStats, VjpCoef, logsumexp, logsumexp_scaled};
