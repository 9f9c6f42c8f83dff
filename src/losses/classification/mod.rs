//! Classification family: logits `[N, C]` with integer targets `[N]`.
//!
//! The family driver [`run_rowwise`] does, once for every row-wise loss of the family:
//! target validation (`ignore_index` or `[0, C)`), class- and sample-weight validation, the
//! `mean` denominator (`sum` of `w_{y_i} * s_i` over contributing rows, or a caller-given
//! `normalizer`), the upstream gradient, zero loss and zero gradient for ignored rows, the
//! parallel row loop (in place or into a separate gradient buffer), the reduction and the
//! per-row auxiliary outputs `lse` and `correct`. Each loss supplies only its row function.

pub mod amp_entropy;
pub mod ca_calibration;
pub mod categorical_value;
pub mod cross_entropy;
pub mod dco;
pub mod drivers;
pub mod harmonic;
pub mod reward_shaped_ntp;

use crate::backend::cpu::{RowIo, RowsIo, map_rows};
use crate::compute::Compute;
use crate::error::Result;
use crate::reduction::{Reduction, RowReducer};
use crate::tensor::{Data, Grad, Tensor};
use crate::{bail, err};

/// What a row function reports besides its gradient.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowOut {
    /// The row's loss `l_i` (before the sample weight).
    pub loss: f64,
    /// The row's log-partition (for the `lse` auxiliary output).
    pub lse: f32,
}

/// Input positions and options of a row-wise loss, for [`run_rowwise`].
#[derive(Clone, Copy, Debug)]
pub struct RowwiseSetup {
    /// Index of the logits input (`[N, C]`, differentiable).
    pub logits: usize,
    /// Index of the target input (`[N]`, i64).
    pub target: usize,
    /// Index of the optional `class_weights [C]` input, if the loss has one. Class weights
    /// enter the `mean` denominator as `w_{y_i}`; the row function applies them to the loss.
    pub class_weights: Option<usize>,
    /// Index of the optional `sample_weight [N]` input, if the loss has one. The driver
    /// multiplies row `i`'s loss and gradient by `s_i`.
    pub sample_weight: Option<usize>,
    /// `ignore_index`.
    pub ignore_index: i64,
    /// When > 0, `mean` divides by this instead of the weighted count.
    pub normalizer: f64,
}

/// Check that every element of a weight vector is finite and non-negative.
pub fn check_weights(id: &str, name: &str, w: &[f32]) -> Result<()> {
    for (k, &v) in w.iter().enumerate() {
        if !(v.is_finite() && v >= 0.0) {
            bail!(
                InvalidInput,
                "{id}: {name}[{k}] = {v} must be finite and >= 0"
            );
        }
    }
    Ok(())
}

/// Validated integer targets of `[N]` against `C` classes and `ignore_index`.
pub fn checked_targets(id: &str, t: &Tensor<'_>, c: usize, ignore_index: i64) -> Result<Vec<i64>> {
    let v = t.to_i64_vec();
    for (i, &y) in v.iter().enumerate() {
        if y != ignore_index && (y < 0 || y as u64 >= c as u64) {
            bail!(
                InvalidTarget,
                "{id}: target[{i}] = {y} is outside [0, {c}) and is not ignore_index ({ignore_index})"
            );
        }
    }
    Ok(v)
}

/// Split input `k` and its gradient slot into a row executor source.
pub fn rows_io<'s>(t: &'s mut Tensor<'_>, g: &'s mut Grad<'_>) -> Result<RowsIo<'s>> {
    let stride = t.row_stride;
    Ok(match (&mut t.data, g) {
        (Data::F32(x), Grad::None) => RowsIo::Read { x, stride },
        (Data::F32(x), Grad::Out(o)) => RowsIo::Separate {
            x,
            stride,
            gstride: o.row_stride,
            g: o.data,
        },
        (Data::F32InPlace(x), Grad::InPlace) => RowsIo::InPlace { x, stride },
        _ => return Err(err!(Internal, "inconsistent gradient slot")),
    })
}

/// Run a row-wise classification loss: validation, weights, reduction, aux outputs, and
/// `row(io, y, scale)` in parallel over non-ignored rows, where `scale` is the factor the
/// row's gradient must be multiplied by (reduction, upstream gradient, sample weight).
pub fn run_rowwise<F>(id: &str, c: &mut Compute<'_>, s: RowwiseSetup, row: F) -> Result<()>
where
    F: Fn(&mut RowIo<'_>, usize, f32) -> RowOut + Sync + Send,
{
    let n = c.dim("N");
    let classes = c.dim("C");
    let t = c
        .get(s.target)
        .ok_or_else(|| err!(Internal, "{id}: target missing"))?;
    let targets = checked_targets(id, t, classes, s.ignore_index)?;
    let cw = match s.class_weights.and_then(|k| c.get(k)) {
        Some(w) => {
            let w = w.to_f32_vec();
            check_weights(id, "class_weights", &w)?;
            Some(w)
        }
        None => None,
    };
    let sw = match s.sample_weight.and_then(|k| c.get(k)) {
        Some(w) => {
            let w = w.to_f32_vec();
            check_weights(id, "sample_weight", &w)?;
            Some(w)
        }
        None => None,
    };
    let mut den = 0.0f64;
    for (i, &y) in targets.iter().enumerate() {
        if y == s.ignore_index {
            continue;
        }
        let wy = cw.as_ref().map_or(1.0, |w| w[y as usize] as f64);
        let si = sw.as_ref().map_or(1.0, |w| w[i] as f64);
        den += wy * si;
    }
    if s.normalizer > 0.0 && c.reduction == Reduction::Mean {
        den = s.normalizer;
    }
    let reducer = RowReducer::new(c.reduction, c.grad_output, den);
    let mut aux_lse = c.take_aux("lse");
    let mut aux_correct = c.take_aux("correct");
    let want_correct = aux_correct.is_some();

    let Compute { inputs, grads, .. } = c;
    let x = inputs[s.logits]
        .as_mut()
        .ok_or_else(|| err!(Internal, "{id}: logits missing"))?;
    let io = rows_io(x, &mut grads[s.logits])?;
    let outs: Vec<(f64, f32, bool)> = map_rows(io, n, classes, |i, mut r| {
        let y = targets[i];
        if y == s.ignore_index {
            r.zero_grad();
            return (0.0, 0.0, false);
        }
        let y = y as usize;
        let si = sw.as_ref().map_or(1.0, |w| w[i]);
        let correct = want_correct && argmax(r.x()) == Some(y);
        let scale = (reducer.grad_scale(i) * si as f64) as f32;
        let o = row(&mut r, y, scale);
        (o.loss * si as f64, o.lse, correct)
    });
    let per_row: Vec<f64> = outs.iter().map(|o| o.0).collect();
    reducer.write_loss(&per_row, c.loss);
    if let Some(a) = aux_lse.as_mut() {
        for (i, o) in outs.iter().enumerate() {
            a.data[i] = o.1;
        }
    }
    if let Some(a) = aux_correct.as_mut() {
        for (i, o) in outs.iter().enumerate() {
            a.data[i] = if o.2 { 1.0 } else { 0.0 };
        }
    }
    Ok(())
}

/// Index of the first maximum (NaN never wins); None for an empty row.
pub fn argmax(x: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (k, &v) in x.iter().enumerate() {
        match best {
            None if !v.is_nan() => best = Some((k, v)),
            Some((_, b)) if v > b => best = Some((k, v)),
            _ => {}
        }
    }
    best.map(|b| b.0)
}
