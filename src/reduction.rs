//! Reductions (`none | mean | sum`), the `mean` denominator rule and the upstream gradient
//! (`grad_output`), applied once here for every loss.
//!
//! Rules (the same for every per-sample loss):
//! - `none` returns the per-sample losses `l_i` (ignored rows give 0). The gradient of input
//!   row `i` is scaled by `grad_output[i]` (1 when absent).
//! - `sum` returns `sum_i l_i`; gradients are scaled by the scalar `grad_output` (1 when absent).
//! - `mean` returns `sum_i l_i / den`, where `den` is the number of contributing rows or, for
//!   losses with weights, the sum of the weights of the contributing rows. Gradients are scaled
//!   by `grad_output / den`. When `den = 0` (empty batch, every row ignored) the loss is 0 and
//!   every gradient is 0, never NaN.
//! - Per-sample losses are summed in f64 in row order, so the result does not depend on the
//!   number of threads.

use crate::bail;
use crate::error::Result;

/// How per-sample losses are reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Reduction {
    /// Per-sample losses.
    None,
    /// Weighted mean over contributing samples.
    #[default]
    Mean,
    /// Sum over samples.
    Sum,
}

impl Reduction {
    /// From the C value (0 none, 1 mean, 2 sum).
    pub fn from_i32(v: i32) -> Result<Self> {
        Ok(match v {
            0 => Reduction::None,
            1 => Reduction::Mean,
            2 => Reduction::Sum,
            _ => bail!(
                InvalidArg,
                "reduction {v} is not one of 0 (none), 1 (mean), 2 (sum)"
            ),
        })
    }
    /// Parse `none|mean|sum`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Reduction::None,
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            _ => bail!(InvalidArg, "reduction '{s}' is not one of none, mean, sum"),
        })
    }
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
        }
    }
}

/// Applies a reduction and the upstream gradient to per-sample losses and gradients.
#[derive(Clone, Copy, Debug)]
pub struct RowReducer<'a> {
    reduction: Reduction,
    den: f64,
    go_scalar: f64,
    go_rows: Option<&'a [f32]>,
}

impl<'a> RowReducer<'a> {
    /// `grad_output` is validated (length 1 for mean/sum, rows for none) by the generic
    /// validation. `den` is the `mean` denominator (contributing rows or their weight sum).
    pub fn new(reduction: Reduction, grad_output: Option<&'a [f32]>, den: f64) -> Self {
        let (go_scalar, go_rows) = match (reduction, grad_output) {
            (Reduction::None, g) => (1.0, g),
            (_, Some(g)) => (g.first().copied().unwrap_or(1.0) as f64, None),
            (_, None) => (1.0, None),
        };
        RowReducer {
            reduction,
            den,
            go_scalar,
            go_rows,
        }
    }
    /// The reduction.
    pub fn reduction(&self) -> Reduction {
        self.reduction
    }
    /// The `mean` denominator.
    pub fn den(&self) -> f64 {
        self.den
    }
    /// The factor that multiplies `d l_i / d input` for row `i`.
    #[inline]
    pub fn grad_scale(&self, i: usize) -> f64 {
        match self.reduction {
            Reduction::None => self.go_rows.map_or(1.0, |g| g[i] as f64),
            Reduction::Sum => self.go_scalar,
            Reduction::Mean => {
                if self.den > 0.0 {
                    self.go_scalar / self.den
                } else {
                    0.0
                }
            }
        }
    }
    /// Write the reduced loss into `out` (length 1 for mean/sum, rows for none) from the
    /// per-sample losses (already multiplied by their weights).
    pub fn write_loss(&self, per_row: &[f64], out: &mut [f32]) {
        match self.reduction {
            Reduction::None => {
                for (o, l) in out.iter_mut().zip(per_row) {
                    *o = *l as f32;
                }
            }
            Reduction::Sum => out[0] = per_row.iter().sum::<f64>() as f32,
            Reduction::Mean => {
                out[0] = if self.den > 0.0 {
                    (per_row.iter().sum::<f64>() / self.den) as f32
                } else {
                    0.0
                }
            }
        }
    }
}
