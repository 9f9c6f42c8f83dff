//! Classification family: logits `[N, C]` with integer targets `[N]`.
//!
//! The family driver [`run_rowwise`] does, once for every row-wise loss of the family:
//! target validation (`ignore_index` or `[0, C)`), class- and sample-weight validation, the
//! `mean` denominator (`sum` of `w_{y_i} * s_i` over contributing rows, or a caller-given
//! `normalizer`), the upstream gradient, zero loss and zero gradient for ignored rows, the
//! parallel row loop (in place or into a separate gradient buffer), the reduction and the
//! per-row auxiliary outputs `lse` and `correct`. Each loss supplies only its row function.
//!
//! [`run_rowwise_k`] is the same driver for losses that read `K` logits-shaped `[N, C]`
//! inputs in the same row (student and teacher, clean and adversarial, clean and noisy
//! passes), each with its own gradient, with or without a target, optionally writing one
//! per-row auxiliary output.

/// The GPU hook of a row-wise loss that plugs a WGSL snippet (`$file`, next to the loss)
/// into the row-wise skeleton with no soft-cap and no weighted logit sum: its
/// `GPU_KERNEL` constant and its `GpuLoss` implementation, calling the skeleton with
/// `setup(p)` and the snippet parameters `$params` (read with `lk_param(k)`).
macro_rules! row_gpu_loss {
    ($ty:ty, $id:literal, $file:literal, |$p:ident| $params:expr) => {
        /// The GPU kernel: the row-wise skeleton with this loss's row function.
        #[cfg(feature = "wgpu")]
        pub const GPU_KERNEL: crate::backend::wgpu::rowwise::RowKernel =
            crate::backend::wgpu::rowwise::RowKernel {
                id: $id,
                snippet: include_str!($file),
            };

        #[cfg(feature = "wgpu")]
        impl crate::backend::wgpu::GpuLoss for $ty {
            fn compute_gpu(
                &self,
                dev: &crate::backend::wgpu::GpuDevice,
                _spec: &LossSpec,
                $p: &Params,
                c: &mut Compute<'_>,
            ) -> Result<()> {
                let call = crate::backend::wgpu::rowwise::RowCall {
                    setup: setup($p),
                    softcap: 0.0,
                    params: $params,
                    needs_swz: false,
                };
                crate::backend::wgpu::rowwise::run(dev, &GPU_KERNEL, &call, c)
            }
        }
    };
}
pub(crate) use row_gpu_loss;

/// The GPU hook of a loss with its own per-sample-contract kernel (`$src`, the WGSL source
/// next to the loss, making at most `$passes` passes over a row; see [`gpu`]): `$den` runs
/// the CPU path's validation (with `?`) and evaluates to the `mean` denominator (`None` =
/// the number of rows).
macro_rules! sample_gpu_loss {
    ($ty:ty, $src:expr, $passes:expr, |$p:ident, $c:ident| $den:expr) => {
        #[cfg(feature = "wgpu")]
        impl crate::backend::wgpu::GpuLoss for $ty {
            fn compute_gpu(
                &self,
                dev: &crate::backend::wgpu::GpuDevice,
                spec: &LossSpec,
                $p: &Params,
                $c: &mut Compute<'_>,
            ) -> Result<()> {
                static KERNEL: super::gpu::Kernel = super::gpu::Kernel::new($src, $passes);
                let den: Option<f64> = $den;
                KERNEL.run(dev, spec, $p, $c, den)
            }
        }
    };
}
pub(crate) use sample_gpu_loss;

pub mod aldr_kl;
pub mod amp_entropy;
pub mod ca_calibration;
pub mod categorical_value;
pub mod comp_sum;
pub mod cross_entropy;
pub mod dco;
pub mod drivers;
pub mod focal;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod harmonic;
pub mod kd_kl;
pub mod ldr_kl;
pub mod noisefit_hybrid;
pub mod poly1;
pub mod reward_shaped_ntp;
pub mod smooth_adv_comp_sum;
pub mod spherical_z_loss;
pub mod symmetric_ce;

use crate::backend::cpu::{RowIo, RowsIo, map_rows, map_rows_k, softmax_affine};
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
    let mut den = mean_denominator(&targets, s.ignore_index, cw.as_deref(), sw.as_deref());
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

/// What a row function of [`run_rowwise_k`] reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowResult {
    /// The row's loss `l_i`.
    pub loss: f64,
    /// The row's value of the auxiliary output, if the loss has one.
    pub aux: f32,
}

/// One row of a `K`-input row-wise loss, as the driver hands it to the row function.
pub struct MultiRow<'r, const K: usize> {
    /// Row index.
    pub i: usize,
    /// The row's target class (0 when the loss has no target).
    pub y: usize,
    /// Factor every gradient of this row must be multiplied by (reduction, upstream
    /// gradient).
    pub scale: f32,
    /// The rows of the `K` logits-shaped inputs and their gradient destinations.
    pub io: [RowIo<'r>; K],
}

/// Input layout of a `K`-input row-wise loss, for [`run_rowwise_k`].
#[derive(Clone, Copy, Debug)]
pub struct MultiSetup<'s, const K: usize> {
    /// Indices of the `[N, C]` inputs, in the order the row function receives them.
    pub inputs: [usize; K],
    /// Index of the `[N]` i64 target input, if the loss has one.
    pub target: Option<usize>,
    /// `ignore_index` (used only with a target).
    pub ignore_index: i64,
    /// A per-row auxiliary output: its name and the value written for ignored rows.
    pub aux: Option<(&'s str, &'s [f32])>,
}

/// Run a row-wise loss over `K` logits-shaped inputs: target validation when there is a
/// target (ignored rows give zero loss, zero gradient in every input and the auxiliary
/// output's ignored-row value), the `mean` denominator (contributing rows), the upstream
/// gradient, the parallel row loop, the reduction and the auxiliary output. Without a target
/// every row contributes, and `C = 0` with `N > 0` is refused (a softmax over no classes).
pub fn run_rowwise_k<const K: usize, F>(
    id: &str,
    c: &mut Compute<'_>,
    s: MultiSetup<'_, K>,
    row: F,
) -> Result<()>
where
    F: Fn(&mut MultiRow<'_, K>) -> RowResult + Sync + Send,
{
    let n = c.dim("N");
    let classes = c.dim("C");
    let targets = match s.target {
        Some(k) => {
            let t = c
                .get(k)
                .ok_or_else(|| err!(Internal, "{id}: target missing"))?;
            Some(checked_targets(id, t, classes, s.ignore_index)?)
        }
        None => {
            check_softmax_classes(id, c)?;
            None
        }
    };
    let den = match &targets {
        Some(t) => mean_denominator(t, s.ignore_index, None, None),
        None => n as f64,
    };
    let reducer = RowReducer::new(c.reduction, c.grad_output, den);
    let mut aux_out = match s.aux {
        Some((name, default)) => {
            if default.len() != n {
                bail!(
                    Internal,
                    "{id}: ignored-row values of '{name}' have the wrong length"
                );
            }
            c.take_aux(name).map(|t| (t, default))
        }
        None => None,
    };

    let Compute { inputs, grads, .. } = c;
    let mut slots: Vec<Option<(&mut Option<Tensor<'_>>, &mut Grad<'_>)>> =
        inputs.iter_mut().zip(grads.iter_mut()).map(Some).collect();
    let mut ios: Vec<RowsIo<'_>> = Vec::with_capacity(K);
    for &k in &s.inputs {
        let (t, g) = slots
            .get_mut(k)
            .and_then(Option::take)
            .ok_or_else(|| err!(Internal, "{id}: input #{k} named twice or out of range"))?;
        let t = t
            .as_mut()
            .ok_or_else(|| err!(Internal, "{id}: input #{k} missing"))?;
        ios.push(rows_io(t, g)?);
    }
    let ios: [RowsIo<'_>; K] = ios
        .try_into()
        .map_err(|_| err!(Internal, "{id}: wrong number of row inputs"))?;
    let outs: Vec<RowResult> = map_rows_k(ios, n, classes, |i, io| {
        let mut r = MultiRow {
            i,
            y: 0,
            scale: 0.0,
            io,
        };
        if let Some(t) = &targets {
            if t[i] == s.ignore_index {
                for g in r.io.iter_mut() {
                    g.zero_grad();
                }
                return RowResult {
                    loss: 0.0,
                    aux: s.aux.map_or(0.0, |a| a.1[i]),
                };
            }
            r.y = t[i] as usize;
        }
        r.scale = reducer.grad_scale(i) as f32;
        row(&mut r)
    })
    .ok_or_else(|| err!(Internal, "{id}: an input holds fewer than N rows"))?;
    let per_row: Vec<f64> = outs.iter().map(|o| o.loss).collect();
    reducer.write_loss(&per_row, c.loss);
    if let Some((a, _)) = aux_out.as_mut() {
        for (i, o) in outs.iter().enumerate() {
            a.data[i] = o.aux;
        }
    }
    Ok(())
}

/// The common gradient shape of softmax losses: `g_c = a·exp(x_c - lse)` for every class,
/// then the target entry set to `gy` (computed by the caller in f64, exactly, rather than as
/// a difference of nearly equal terms). No-op when the row wants no gradient; works in place.
pub fn write_softmax_grad(io: &mut RowIo<'_>, lse: f32, a: f32, y: usize, gy: f32) {
    match io {
        RowIo::Separate(x, g) => softmax_affine(Some(x), g, lse, a, 0.0, None),
        RowIo::InPlace(g) => softmax_affine(None, g, lse, a, 0.0, None),
        RowIo::Read(_) => return,
    }
    if let Some(g) = io.grad_mut() {
        g[y] = gy;
    }
}

/// `v` if `v <= 0`, else 0 (for `log p_y`, which is `<= 0` up to rounding); NaN stays NaN
/// (unlike `f64::min`).
#[inline]
pub fn nonpos(v: f64) -> f64 {
    if v > 0.0 { 0.0 } else { v }
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
