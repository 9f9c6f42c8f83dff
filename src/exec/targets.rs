//! Validation of integer class targets and weight vectors, and the `mean` denominator of
//! losses with targets. Every CPU driver and GPU path that has targets or weights calls these,
//! so both backends refuse the same inputs with the same message.

use crate::bail;
use crate::compute::Compute;
use crate::error::Result;
use crate::tensor::Tensor;

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
    let v = t.read_i64()?;
    check_target_values(id, &v, c, ignore_index)?;
    Ok(v)
}

/// Check targets are `ignore_index` or in `[0, C)`.
pub fn check_target_values(id: &str, v: &[i64], c: usize, ignore_index: i64) -> Result<()> {
    for (i, &y) in v.iter().enumerate() {
        if y != ignore_index && (y < 0 || y as u64 >= c as u64) {
            bail!(
                InvalidTarget,
                "{id}: target[{i}] = {y} is outside [0, {c}) and is not ignore_index ({ignore_index})"
            );
        }
    }
    Ok(())
}

/// The `mean` denominator of a classification loss with integer targets: the sum of
/// `w_{y_i}·s_i` (each 1 when its weights are absent) over the rows whose target is not
/// `ignore_index`. The CPU drivers and the GPU paths both use it.
pub fn mean_denominator(
    targets: &[i64],
    ignore_index: i64,
    cw: Option<&[f32]>,
    sw: Option<&[f32]>,
) -> f64 {
    let mut den = 0.0f64;
    for (i, &y) in targets.iter().enumerate() {
        if y == ignore_index {
            continue;
        }
        let wy = cw.map_or(1.0, |w| w[y as usize] as f64);
        let si = sw.map_or(1.0, |w| w[i] as f64);
        den += wy * si;
    }
    den
}

/// The refusal of a softmax over no classes: `C = 0` with `N > 0`.
pub fn check_softmax_classes(id: &str, c: &Compute<'_>) -> Result<()> {
    if c.dim("C") == 0 && c.dim("N") > 0 {
        bail!(
            ShapeMismatch,
            "{id}: C = 0; a softmax needs at least one class"
        );
    }
    Ok(())
}

/// Validate the `[N]` integer targets of input `k` against `C` and `ignore_index` (reading
/// device data back) and return the `mean` denominator: the rows not ignored.
pub fn target_den(id: &str, c: &Compute<'_>, k: usize, ignore_index: i64) -> Result<f64> {
    let t = c
        .get(k)
        .ok_or_else(|| crate::err!(Internal, "{id}: target missing"))?;
    let targets = checked_targets(id, t, c.dim("C"), ignore_index)?;
    Ok(mean_denominator(&targets, ignore_index, None, None))
}
