//! Drivers for per-sample and per-row losses that do not fit [`super::rowwise::run_rowwise`]:
//!
//! - [`run_elementwise`]: a per-sample loss of one `[N]` input (`dco`): every sample
//!   contributes, `mean` divides by `N`.
//! - [`run_rows`]: a row-wise loss over an `[N, M]` input without integer class targets
//!   (`categorical_value`): every row contributes, `mean` divides by `N`.
//! - [`BatchOutput`]: the reduction rule of a batch-level loss (one scalar; `mean` and `sum`
//!   both return it, `none` is refused by the generic validation), with the upstream gradient.
//!
//! All of them run in parallel over samples and collect per-sample results in sample order,
//! so the reduced value does not depend on the thread count.

use rayon::prelude::*;

use super::rowwise::rows_io;
use crate::backend::cpu::{RowIo, map_rows};
use crate::compute::Compute;
use crate::err;
use crate::error::Result;
use crate::reduction::RowReducer;
use crate::tensor::Grad;

/// Run an elementwise loss over input `k` (shape `[N]`): `f(x_i)` returns `(l_i, dl_i/dx_i)`.
/// The driver applies the reduction (`mean` over all `N` samples) and the upstream gradient.
pub fn run_elementwise<F>(id: &str, c: &mut Compute<'_>, k: usize, f: F) -> Result<()>
where
    F: Fn(f32) -> (f64, f64) + Sync + Send,
{
    let x = c
        .get(k)
        .ok_or_else(|| err!(Internal, "{id}: input #{k} missing"))?
        .to_f32_vec();
    let n = x.len();
    let reducer = RowReducer::new(c.reduction, c.grad_output, n as f64);
    let want = match &c.grads[k] {
        Grad::None => false,
        Grad::Out(_) => true,
        Grad::InPlace => return Err(err!(Internal, "{id}: in-place gradient not supported")),
        Grad::Device(_) => return Err(err!(Internal, "{id}: device gradient on the CPU path")),
    };
    let out: Vec<(f64, f32)> = x
        .par_iter()
        .with_min_len(4096)
        .enumerate()
        .map(|(i, &v)| {
            let (l, d) = f(v);
            let g = if want {
                (d * reducer.grad_scale(i)) as f32
            } else {
                0.0
            };
            (l, g)
        })
        .collect();
    if let Grad::Out(g) = &mut c.grads[k] {
        let stride = g.row_stride.max(1);
        for (i, o) in out.iter().enumerate() {
            g.data[i * stride] = o.1;
        }
    }
    let per: Vec<f64> = out.iter().map(|o| o.0).collect();
    reducer.write_loss(&per, c.loss);
    Ok(())
}

/// Run a row-wise loss over input `k` (shape `[N, M]`, `M` = `len`), every row contributing:
/// `row(i, io, scale)` returns `l_i` and writes `scale * dl_i/dx_i` into the row's gradient
/// when one is wanted. `mean` divides by `N`.
pub fn run_rows<F>(id: &str, c: &mut Compute<'_>, k: usize, len: usize, row: F) -> Result<()>
where
    F: Fn(usize, &mut RowIo<'_>, f32) -> f64 + Sync + Send,
{
    let n = c
        .get(k)
        .ok_or_else(|| err!(Internal, "{id}: input #{k} missing"))?
        .rows();
    let reducer = RowReducer::new(c.reduction, c.grad_output, n as f64);
    let Compute { inputs, grads, .. } = c;
    let x = inputs[k]
        .as_mut()
        .ok_or_else(|| err!(Internal, "{id}: input #{k} missing"))?;
    let io = rows_io(x, &mut grads[k])?;
    let per: Vec<f64> = map_rows(io, n, len, |i, mut r| {
        row(i, &mut r, reducer.grad_scale(i) as f32)
    });
    reducer.write_loss(&per, c.loss);
    Ok(())
}

/// The output rule of a batch-level loss: the scalar is written as is for `mean` and `sum`,
/// and every gradient is multiplied by the scalar upstream gradient (1 when absent).
#[derive(Clone, Copy, Debug)]
pub struct BatchOutput {
    /// Factor of every gradient: the upstream gradient.
    pub scale: f64,
}

impl BatchOutput {
    /// The rule for this call.
    pub fn new(c: &Compute<'_>) -> Self {
        BatchOutput {
            scale: c
                .grad_output
                .and_then(|g| g.first())
                .map_or(1.0, |&v| v as f64),
        }
    }
    /// Write the batch loss.
    pub fn write(&self, c: &mut Compute<'_>, loss: f64) {
        if let Some(o) = c.loss.first_mut() {
            *o = loss as f32;
        }
    }
}
