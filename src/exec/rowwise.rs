//! The row-wise CPU drivers of losses over logits-shaped rows `[N, C]`.
//!
//! [`run_rowwise`] does, once for every row-wise loss with one integer target per row:
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

use super::targets::{
    check_softmax_classes, check_target_values, check_weights, checked_targets, mean_denominator,
};
use crate::backend::cpu::{RowIo, RowsIo, map_rows, map_rows_k, softmax_affine};
use crate::compute::{Compute, Plan};
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

/// The validated data of a row-wise call with one integer target per row.
#[derive(Clone, Debug)]
pub struct RowPlan {
    /// Targets, one per row (`ignore_index` rows included).
    pub targets: Vec<i64>,
    /// Class weights, when given.
    pub cw: Option<Vec<f32>>,
    /// Sample weights, when given.
    pub sw: Option<Vec<f32>>,
    /// The `mean` denominator.
    pub den: f64,
}

/// The plan step of a row-wise loss (its `LossImpl::plan`): targets in `[0, C)` or
/// `ignore_index`, finite non-negative class and sample weights, and the `mean` denominator
/// (the sum of `w_{y_i}·s_i` over rows not ignored, or the `normalizer` when it is set).
/// Device data is read back for the checks, so both backends refuse the same inputs.
pub fn plan_rows(id: &str, c: &Compute<'_>, s: &RowwiseSetup) -> Result<Plan> {
    let classes = c.dim("C");
    let t = c
        .get(s.target)
        .ok_or_else(|| err!(Internal, "{id}: target missing"))?;
    let targets = t.read_i64()?;
    check_target_values(id, &targets, classes, s.ignore_index)?;
    let read_w = |k: Option<usize>, name: &str| -> Result<Option<Vec<f32>>> {
        match k.and_then(|k| c.get(k)) {
            Some(w) => {
                let w = w.read_f32()?;
                check_weights(id, name, &w)?;
                Ok(Some(w))
            }
            None => Ok(None),
        }
    };
    let cw = read_w(s.class_weights, "class_weights")?;
    let sw = read_w(s.sample_weight, "sample_weight")?;
    let mut den = mean_denominator(&targets, s.ignore_index, cw.as_deref(), sw.as_deref());
    if s.normalizer > 0.0 && c.reduction == Reduction::Mean {
        den = s.normalizer;
    }
    Ok(Plan {
        built: true,
        den: Some(den),
        targets: Some(targets),
        class_weights: cw,
        sample_weight: sw,
        consts: Vec::new(),
    })
}

/// The row plan of this call: taken out of `c.plan` when the plan step ran ([`plan_rows`]),
/// else built now (a driver called directly).
pub fn row_plan(id: &str, c: &mut Compute<'_>, s: &RowwiseSetup) -> Result<RowPlan> {
    let mut plan = std::mem::take(&mut c.plan);
    if !(plan.built && plan.targets.is_some()) {
        plan = plan_rows(id, c, s)?;
    }
    let targets = plan.targets.take().unwrap_or_default();
    Ok(RowPlan {
        den: plan.den.unwrap_or(targets.len() as f64),
        targets,
        cw: plan.class_weights.take(),
        sw: plan.sample_weight.take(),
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
    let RowPlan {
        targets,
        cw: _,
        sw,
        den,
    } = row_plan(id, c, &s)?;
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
