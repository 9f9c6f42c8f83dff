//! The generic suites, written once and run by every loss from its spec alone: the builtins
//! (`tests/losses.rs`) and the example plugins' losses (`tests/plugins.rs`). Each suite takes
//! a list of [`Config`]s (a configured loss and its letter sizes), counts what it checked and
//! what it skipped by reason ([`Tally`]), prints the counts and fails below the minimum its
//! caller states.
//!
//! The `mean` check divides an independent `sum` by a denominator counted here from the
//! inputs, by the loss's declared [`MeanRule`], never taken from the outputs.
#![allow(dead_code)]

use std::collections::BTreeMap;

use losskit::registry::MeanRule;
use losskit::testing::{Case, Outcome, OwnedData, OwnedTensor, gradcheck};
use losskit::{
    Compute, Context, DType, Domain, ErrorKind, Loss, ParamKind, ParamValue, Reduction, Tensor,
    TensorMut,
};

use crate::common::{FD_TOL, LOSS_TOL, Tally, assert_close};

/// Elements checked per input by the finite-difference suite.
pub const FD_ELEMENTS: usize = 64;

/// One configuration under test.
#[derive(Clone)]
pub struct Config {
    /// `id (defaults)` or `id [set]`; the first word is the loss id.
    pub label: String,
    /// The configured loss.
    pub loss: Loss,
    /// Letter sizes (on top of the defaults and the loss's `test_dims`).
    pub dims: BTreeMap<String, usize>,
}

impl Config {
    /// A configuration with the default letter sizes.
    pub fn new(label: &str, loss: Loss) -> Self {
        Config {
            label: label.to_string(),
            loss,
            dims: BTreeMap::new(),
        }
    }
    /// The same with letter sizes.
    pub fn dims(mut self, pairs: &[(&str, usize)]) -> Self {
        self.dims = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        self
    }
}

/// The ids of every loss registered in `ctx` (builtins and loaded plugins).
pub fn all_ids(ctx: &Context) -> Vec<String> {
    ctx.losses().iter().map(|d| d.spec.id.to_string()).collect()
}

/// Each loss of `ids` with its defaults and with each of its `test_params` sets.
pub fn configs(ctx: &Context, ids: &[String]) -> Vec<Config> {
    let mut out = Vec::new();
    for id in ids {
        let base = ctx.loss(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        out.push(Config::new(&format!("{id} (defaults)"), base.clone()));
        for set in &base.def().test_params {
            let mut l = base.clone();
            for (n, v) in set {
                l.set(n, *v)
                    .unwrap_or_else(|e| panic!("{id}: test_params {set:?}: {e}"));
            }
            out.push(Config::new(&format!("{id} {set:?}"), l));
        }
    }
    out
}

/// The reductions a loss accepts.
pub fn reductions(l: &Loss) -> Vec<Reduction> {
    if l.def().spec.batch_level {
        vec![Reduction::Mean, Reduction::Sum]
    } else {
        vec![Reduction::Mean, Reduction::Sum, Reduction::None]
    }
}

/// `cfg`'s sizes with `sizes` on top, except the letters the loss fixes with `test_dims`.
fn bigger(cfg: &Config, sizes: &[(&str, usize)]) -> BTreeMap<String, usize> {
    let mut d = cfg.dims.clone();
    for (k, v) in sizes {
        if !cfg.loss.def().test_dims.iter().any(|(l, _)| l == k) {
            d.insert(k.to_string(), *v);
        }
    }
    d
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

fn scale(a: &[f32]) -> f64 {
    a.iter().map(|x| (*x as f64).abs()).fold(1.0, f64::max)
}

fn f32s_of(case: &Case, k: Option<usize>) -> Option<&[f32]> {
    match &case.inputs[k?].as_ref()?.data {
        OwnedData::F32(v) => Some(v),
        OwnedData::I64(_) => None,
    }
}

/// Index of the required i64 class target with one entry per sample (`[rows]`), if any.
fn row_target(l: &Loss) -> Option<usize> {
    let spec = &l.def().spec;
    spec.inputs.iter().position(|i| {
        i.dtype == DType::I64
            && matches!(i.domain, Domain::Class(_))
            && !i.optional
            && i.dims() == [spec.rows.as_str()]
    })
}

fn ignore_index(l: &Loss) -> Option<i64> {
    match l.params().get("ignore_index") {
        Some(ParamValue::I64(v)) => Some(v),
        _ => None,
    }
}

/// The `mean` denominator of `case`, counted from the inputs by the loss's [`MeanRule`]:
/// the rows whose `[rows]` class target is not `ignore_index`, each with its class weight
/// `w_{y_i}` (input `class_weights`) and, for [`MeanRule::SampleWeightedRows`], its
/// `sample_weight` `s_i` (a positive `normalizer` parameter replaces the count);
/// [`MeanRule::Scalar`] is 1.
pub fn mean_denominator(l: &Loss, case: &Case) -> f64 {
    let def = l.def();
    let spec = &def.spec;
    let sample_weighted = match def.mean_rule {
        MeanRule::Scalar => return 1.0,
        MeanRule::Rows => false,
        MeanRule::SampleWeightedRows => {
            if let Some(ParamValue::F64(v)) = l.params().get("normalizer") {
                if v > 0.0 {
                    return v;
                }
            }
            true
        }
    };
    let ig = ignore_index(l);
    let target: Option<&[i64]> = row_target(l).and_then(|k| match &case.inputs[k] {
        Some(OwnedTensor {
            data: OwnedData::I64(v),
            ..
        }) => Some(v.as_slice()),
        _ => None,
    });
    let cw = f32s_of(case, spec.input_index("class_weights"));
    let sw = if sample_weighted {
        f32s_of(case, spec.input_index("sample_weight"))
    } else {
        None
    };
    (0..case.rows(spec))
        .map(|i| {
            let y = target.map(|t| t[i]);
            if y.is_some() && y == ig {
                return 0.0;
            }
            let w = match (cw, y) {
                (Some(w), Some(y)) => w[y as usize] as f64,
                _ => 1.0,
            };
            w * sw.map_or(1.0, |s| s[i] as f64)
        })
        .sum()
}

/// Count the optional inputs a case with `with_optional` leaves out because the loss lists
/// them in `test_omit`.
fn count_omitted(t: &mut Tally, l: &Loss, with_optional: bool) {
    if with_optional {
        t.skip(
            "optional inputs left out by test_omit",
            l.def().test_omit.len(),
        );
    }
}

/// Finite-difference gradients of every differentiable input, for every reduction, with and
/// without the optional inputs: within [`FD_TOL`] (absolute or relative), at least one report
/// per case with a differentiable input, and at most a quarter of the elements at kinks.
/// Settings whose gradient is a declared surrogate are skipped (and counted).
pub fn gradients(cfgs: &[Config], min_cases: usize, min_elements: usize) {
    let mut cases = Tally::new("finite-difference gradients (cases)");
    let mut elems = Tally::new("finite-difference gradients (elements)");
    let mut failures = Vec::new();
    for cfg in cfgs {
        let (label, l) = (&cfg.label, &cfg.loss);
        let reds = reductions(l);
        if let Some(why) = l.def().surrogate_reason(l.params()) {
            println!(
                "{label}: gradient is a surrogate by design ({why}); checked by its own tests"
            );
            cases.skip("surrogate gradient by design", reds.len() * 2);
            continue;
        }
        for red in reds {
            for with_optional in [false, true] {
                let case = Case::random(l, &cfg.dims, 11, with_optional);
                count_omitted(&mut cases, l, with_optional);
                let spec = &l.def().spec;
                let differentiable = spec.inputs.iter().zip(&case.inputs).any(|(is, t)| {
                    is.differentiable && t.as_ref().is_some_and(|t| !t.f32().is_empty())
                });
                if !differentiable {
                    cases.skip("no differentiable input", 1);
                    continue;
                }
                let reps = gradcheck(l, &case, red, FD_ELEMENTS)
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                if reps.is_empty() {
                    failures.push(format!(
                        "{label} {red:?} optional={with_optional}: no gradient checked"
                    ));
                }
                for r in reps {
                    elems.checked(r.checked);
                    elems.skip("at kinks", r.kinks);
                    if r.kinks * 4 > r.checked + r.kinks {
                        failures.push(format!(
                            "{label} {red:?} optional={with_optional}: d/d{}: {} of {} elements at kinks",
                            r.input, r.kinks, r.checked + r.kinks
                        ));
                    }
                    if !(r.max_abs <= FD_TOL || r.max_rel <= FD_TOL) {
                        failures.push(format!(
                            "{label} {red:?} optional={with_optional}: d/d{} max abs {:.2e} rel {:.2e}",
                            r.input, r.max_abs, r.max_rel
                        ));
                    }
                }
                cases.checked(1);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "gradient check failed:\n{}",
        failures.join("\n")
    );
    cases.finish(min_cases);
    elems.finish(min_elements);
}

/// Where each element of an input lies along the per-sample axis (None without that axis).
fn row_of_elements(l: &Loss, k: usize, shape: &[usize]) -> Option<Vec<usize>> {
    let spec = &l.def().spec;
    let p = spec.inputs[k]
        .dims()
        .iter()
        .position(|d| *d == spec.rows.as_str())?;
    let inner: usize = shape[p + 1..].iter().product();
    let n: usize = shape.iter().product();
    Some((0..n).map(|j| (j / inner.max(1)) % shape[p]).collect())
}

/// `sum` equals the sum of the `none` outputs; `mean` equals `sum` over the independent
/// denominator ([`mean_denominator`]), gradients included; `grad_output` leaves the loss alone
/// and scales the gradients: a scalar for `mean`, per sample for `none` (element by element for
/// inputs with the per-sample axis: the `none` gradient of row `i` times `grad_output[i]`;
/// linearly for the others); `none` with `grad_output = 1` equals `sum`; a batch-level loss
/// refuses `none`.
pub fn reductions_and_grad_output(cfgs: &[Config], min: usize, min_per_row: usize) {
    let mut t = Tally::new("reductions and grad_output (configurations)");
    let mut rows_t = Tally::new("per-sample grad_output (gradient inputs)");
    let tol = 1e-4;
    for cfg in cfgs {
        let (label, l) = (&cfg.label, &cfg.loss);
        let case = Case::random(l, &cfg.dims, 5, true);
        count_omitted(&mut t, l, true);
        let sum = case.run(l, Reduction::Sum, true, None).unwrap();
        let mean = case.run(l, Reduction::Mean, true, None).unwrap();
        // mean = sum / den, den counted from the inputs.
        let den = mean_denominator(l, &case);
        let want = if den == 0.0 {
            0.0
        } else {
            sum.loss[0] as f64 / den
        };
        assert_close(
            &format!("{label}: mean against sum / {den} (the independent denominator)"),
            &mean.loss,
            &[want],
            LOSS_TOL,
        );
        // grad_output scales every gradient of mean linearly, and mean's gradients are sum's
        // over den.
        let go = 2.5f32;
        let mean_go = case.run(l, Reduction::Mean, true, Some(&[go])).unwrap();
        assert_eq!(
            mean_go.loss, mean.loss,
            "{label}: grad_output changed the loss"
        );
        for (k, (a, b)) in mean.grads.iter().zip(&mean_go.grads).enumerate() {
            if let (Some(a), Some(b)) = (a, b) {
                let a25: Vec<f32> = a.iter().map(|v| v * go).collect();
                assert!(
                    max_abs_diff(&a25, b) <= tol * scale(&a25),
                    "{label}: grad_output {go} does not scale the gradient of input {k}"
                );
                let gs = sum.grads[k].as_ref().unwrap();
                let want: Vec<f64> = gs
                    .iter()
                    .map(|&v| {
                        if den == 0.0 {
                            0.0
                        } else {
                            v as f64 * go as f64 / den
                        }
                    })
                    .collect();
                assert_close(
                    &format!(
                        "{label}: gradient of input {k} of mean with grad_output {go} against sum's / {den}"
                    ),
                    b,
                    &want,
                    LOSS_TOL,
                );
            }
        }
        if l.def().spec.batch_level {
            assert!(
                case.run(l, Reduction::None, false, None).unwrap_err().kind
                    == ErrorKind::Unsupported,
                "{label}: none must be refused for a batch-level loss"
            );
            t.checked(1);
            continue;
        }
        let none = case.run(l, Reduction::None, true, None).unwrap();
        let total: f64 = none.loss.iter().map(|&v| v as f64).sum();
        assert_close(
            &format!("{label}: sum against the sum of the none outputs"),
            &sum.loss,
            &[total],
            LOSS_TOL,
        );
        // none with grad_output = ones equals sum; grad_output is linear and per sample.
        let rows = case.rows(&l.def().spec);
        let ones = vec![1.0f32; rows];
        let none_ones = case.run(l, Reduction::None, true, Some(&ones)).unwrap();
        let v: Vec<f32> = (0..rows).map(|i| 0.5 + i as f32).collect();
        let none_v = case.run(l, Reduction::None, true, Some(&v)).unwrap();
        let v2: Vec<f32> = v.iter().map(|x| 2.0 * x).collect();
        let none_v2 = case.run(l, Reduction::None, true, Some(&v2)).unwrap();
        for k in 0..sum.grads.len() {
            let (Some(gs), Some(g1), Some(gv), Some(gv2), Some(gn)) = (
                &sum.grads[k],
                &none_ones.grads[k],
                &none_v.grads[k],
                &none_v2.grads[k],
                &none.grads[k],
            ) else {
                continue;
            };
            assert!(
                max_abs_diff(gs, g1) <= tol * scale(gs),
                "{label}: none with grad_output = 1 differs from sum for input {k}"
            );
            let gvx2: Vec<f32> = gv.iter().map(|x| 2.0 * x).collect();
            assert!(
                max_abs_diff(&gvx2, gv2) <= tol * scale(gv2),
                "{label}: per-sample grad_output is not linear for input {k}"
            );
            let shape = &case.inputs[k].as_ref().unwrap().shape;
            match row_of_elements(l, k, shape) {
                Some(row) => {
                    let want: Vec<f64> = gn
                        .iter()
                        .zip(&row)
                        .map(|(&g, &i)| g as f64 * v[i] as f64)
                        .collect();
                    assert_close(
                        &format!("{label}: gradient of input {k} with per-sample grad_output"),
                        gv,
                        &want,
                        LOSS_TOL,
                    );
                    rows_t.checked(1);
                }
                None => rows_t.skip("inputs without the per-sample axis", 1),
            }
        }
        t.checked(1);
    }
    t.finish(min);
    rows_t.finish(min_per_row);
}

/// Rows whose target is `ignore_index` contribute nothing: all rows ignored gives 0 and zero
/// gradients for every reduction; some rows ignored gives exactly those rows zero loss and
/// zero gradient rows.
pub fn ignored_rows(cfgs: &[Config], min: usize) {
    let mut t = Tally::new("ignore_index (configurations)");
    for cfg in cfgs {
        let (label, l) = (&cfg.label, &cfg.loss);
        let Some(ig) = ignore_index(l) else {
            t.skip("no ignore_index parameter", 1);
            continue;
        };
        let spec = &l.def().spec;
        let Some(tk) = spec
            .inputs
            .iter()
            .position(|i| i.dtype == DType::I64 && matches!(i.domain, Domain::Class(_)))
        else {
            t.skip("no class target", 1);
            continue;
        };
        if spec.inputs[tk].dims() != [spec.rows.as_str()] {
            // Targets per token (e.g. [N, T]): ignored entries are not whole samples.
            t.skip("targets per token", 1);
            continue;
        }
        let mut case = Case::random(l, &cfg.dims, 3, true);
        // Every row ignored: mean is 0 with zero gradients, not NaN.
        if let Some(OwnedTensor {
            data: OwnedData::I64(v),
            ..
        }) = &mut case.inputs[tk]
        {
            v.iter_mut().for_each(|y| *y = ig);
        }
        for red in reductions(l) {
            let o = case.run(l, red, true, None).unwrap();
            assert!(
                o.loss.iter().all(|&v| v == 0.0),
                "{label} {red:?}: all rows ignored gives {:?}",
                o.loss
            );
            for g in o.grads.iter().flatten() {
                assert!(
                    g.iter().all(|&v| v == 0.0),
                    "{label} {red:?}: non-zero gradient"
                );
            }
        }
        t.checked(1);
        if spec.batch_level {
            t.skip(
                "batch-level (no per-row output for the partly ignored case)",
                1,
            );
            continue;
        }
        // Some rows ignored: exactly those rows have zero loss and zero gradient rows.
        let case = Case::random(l, &cfg.dims, 4, true);
        let targets = match &case.inputs[tk] {
            Some(OwnedTensor {
                data: OwnedData::I64(v),
                ..
            }) => v.clone(),
            _ => unreachable!(),
        };
        let o = case.run(l, Reduction::None, true, None).unwrap();
        for (i, &y) in targets.iter().enumerate() {
            if y != ig {
                continue;
            }
            assert_eq!(o.loss[i], 0.0, "{label}: ignored row {i} has a loss");
            for (k, is) in spec.inputs.iter().enumerate() {
                let (Some(g), Some(x)) = (&o.grads[k], &case.inputs[k]) else {
                    continue;
                };
                if is.dims().first() != Some(&spec.rows.as_str()) {
                    continue;
                }
                let w = x.shape[1..].iter().product::<usize>();
                assert!(
                    g[i * w..(i + 1) * w].iter().all(|&v| v == 0.0),
                    "{label}: ignored row {i} has a gradient in {}",
                    is.name
                );
            }
        }
    }
    t.finish(min);
}

/// Weights of 1 give bit-identical results to absent weights (every optional non-negative
/// input whose name contains `weight`), for every reduction.
pub fn unit_weights(cfgs: &[Config], min: usize) {
    let mut t = Tally::new("unit weights equal absent weights (weight inputs)");
    for cfg in cfgs {
        let (label, l) = (&cfg.label, &cfg.loss);
        let spec = &l.def().spec;
        let case = Case::random(l, &cfg.dims, 8, false);
        let mut any = false;
        for (k, is) in spec.inputs.iter().enumerate() {
            if !(is.optional && is.domain == Domain::NonNegative && is.name.contains("weight")) {
                continue;
            }
            any = true;
            let mut with = case.clone();
            let shape: Vec<usize> = is
                .dims()
                .iter()
                .map(|d| case.dims.get(*d).copied().unwrap_or(1))
                .collect();
            let n = shape.iter().product();
            with.inputs[k] = Some(OwnedTensor {
                data: OwnedData::F32(vec![1.0; n]),
                shape,
            });
            for red in reductions(l) {
                let a = case.run(l, red, true, None).unwrap();
                let b = with.run(l, red, true, None).unwrap();
                assert_eq!(
                    a.loss, b.loss,
                    "{label} {red:?}: unit {} changes the loss",
                    is.name
                );
                assert_eq!(
                    a.grads, b.grads,
                    "{label} {red:?}: unit {} changes a gradient",
                    is.name
                );
            }
            t.checked(1);
        }
        if !any {
            t.skip("configurations without an optional weight input", 1);
        }
    }
    t.finish(min);
}

/// No samples: `sum` and `mean` give 0, `none` gives nothing, every gradient is zero.
pub fn empty_batch(cfgs: &[Config], min: usize) {
    let mut t = Tally::new("empty batch (configurations)");
    for cfg in cfgs {
        let (label, l) = (&cfg.label, &cfg.loss);
        let spec = &l.def().spec;
        let mut d = cfg.dims.clone();
        d.insert(spec.rows.to_string(), 0usize);
        let case = Case::random(l, &d, 1, true);
        for red in reductions(l) {
            let o = case
                .run(l, red, true, None)
                .unwrap_or_else(|e| panic!("{label} {red:?}: empty batch fails: {e}"));
            match red {
                Reduction::None => assert!(o.loss.is_empty(), "{label}"),
                _ => assert_eq!(o.loss, vec![0.0], "{label} {red:?}: empty batch"),
            }
            for g in o.grads.iter().flatten() {
                assert!(g.iter().all(|&v| v == 0.0), "{label}: empty batch gradient");
            }
        }
        t.checked(1);
    }
    t.finish(min);
}

fn expect_err(id: &str, what: &str, r: losskit::Result<Outcome>, kind: ErrorKind) {
    match r {
        Ok(_) => panic!("{id}: {what}: accepted, expected {kind:?}"),
        Err(e) => {
            assert_eq!(e.kind, kind, "{id}: {what}: got {:?} ({})", e.kind, e.msg);
            assert!(
                e.msg.contains(id),
                "{id}: {what}: message does not name the loss: {}",
                e.msg
            );
        }
    }
}

/// The bad-input table of each loss of `ids` (defaults): a missing required input, an extra
/// axis, the wrong dtype, an axis that disagrees with another input, targets out of range,
/// parameters (unknown name, wrong type, out of range, NaN; the old value kept), an output of
/// the wrong length, a gradient of a non-differentiable input, an extra input. Each gets its
/// own status and a message naming the loss. Counts the refusals checked.
pub fn bad_inputs(ctx: &Context, ids: &[String], min: usize) {
    let mut t = Tally::new("bad-input table (refusals)");
    assert_eq!(
        ctx.loss("no_such_loss").unwrap_err().kind,
        ErrorKind::UnknownLoss
    );
    for id in ids {
        let l = ctx.loss(id).unwrap();
        let def = l.def();
        let spec = &def.spec;
        let case = Case::random(&l, &BTreeMap::new(), 2, false);
        for (k, is) in spec.inputs.iter().enumerate() {
            let name = is.name.as_str();
            if !is.optional {
                let mut c = case.clone();
                c.inputs[k] = None;
                expect_err(
                    id,
                    &format!("missing {name}"),
                    c.run(&l, Reduction::Mean, false, None),
                    ErrorKind::NullArg,
                );
                t.checked(1);
            }
            let Some(x) = &case.inputs[k] else {
                t.skip("inputs absent in the default case (optional)", 1);
                continue;
            };
            // Wrong rank.
            let mut c = case.clone();
            if let Some(t2) = &mut c.inputs[k] {
                t2.shape.push(1);
            }
            expect_err(
                id,
                &format!("{name} with an extra axis"),
                c.run(&l, Reduction::Mean, false, None),
                ErrorKind::ShapeMismatch,
            );
            // Wrong dtype.
            let mut c = case.clone();
            let n = x.shape.iter().product();
            c.inputs[k] = Some(OwnedTensor {
                data: match x.data {
                    OwnedData::F32(_) => OwnedData::I64(vec![0; n]),
                    OwnedData::I64(_) => OwnedData::F32(vec![0.0; n]),
                },
                shape: x.shape.clone(),
            });
            expect_err(
                id,
                &format!("{name} with the wrong dtype"),
                c.run(&l, Reduction::Mean, false, None),
                ErrorKind::DType,
            );
            t.checked(2);
            // A size that disagrees with another input (only when a letter is shared).
            let dims_k = is.dims();
            let shared = dims_k.iter().position(|d| {
                spec.inputs
                    .iter()
                    .enumerate()
                    .any(|(j, o)| j != k && case.inputs[j].is_some() && o.dims().contains(d))
            });
            match shared {
                Some(ax) => {
                    let mut c = case.clone();
                    if let Some(t2) = &mut c.inputs[k] {
                        t2.shape[ax] += 1;
                        let n2: usize = t2.shape.iter().product();
                        t2.data = match &t2.data {
                            OwnedData::F32(_) => OwnedData::F32(vec![0.5; n2]),
                            OwnedData::I64(_) => OwnedData::I64(vec![0; n2]),
                        };
                    }
                    expect_err(
                        id,
                        &format!("{name} with a mismatched axis"),
                        c.run(&l, Reduction::Mean, false, None),
                        ErrorKind::ShapeMismatch,
                    );
                    t.checked(1);
                }
                None => t.skip("inputs sharing no letter with another", 1),
            }
            // Target out of range.
            if is.dtype == DType::I64 && matches!(is.domain, Domain::Class(_)) && n > 0 {
                for bad in [-1i64 - 1000, 1 << 40] {
                    let mut c = case.clone();
                    if let Some(OwnedTensor {
                        data: OwnedData::I64(v),
                        ..
                    }) = &mut c.inputs[k]
                    {
                        v[n - 1] = bad;
                    }
                    expect_err(
                        id,
                        &format!("{name} = {bad}"),
                        c.run(&l, Reduction::Mean, false, None),
                        ErrorKind::InvalidTarget,
                    );
                    t.checked(1);
                }
            }
        }
        // Parameters: unknown name, wrong type, out of range, NaN; the old value is kept.
        let mut l2 = l.clone();
        assert_eq!(
            l2.set_f64("no_such_param", 1.0).unwrap_err().kind,
            ErrorKind::UnknownParam,
            "{id}"
        );
        t.checked(1);
        for p in &spec.params {
            let name = p.name.as_str();
            let before = l2.params().get(name);
            match &p.kind {
                ParamKind::F64 { min, max, .. } => {
                    for bad in [f64::NAN, f64::INFINITY, *min - 1.0, *max + 1.0] {
                        if bad.is_finite() && !(bad < *min || bad > *max) {
                            continue;
                        }
                        let e = l2.set_f64(name, bad).unwrap_err();
                        assert_eq!(e.kind, ErrorKind::InvalidParam, "{id}: {name} = {bad}");
                        assert!(
                            e.msg.contains(name),
                            "{id}: message lacks the name: {}",
                            e.msg
                        );
                        t.checked(1);
                    }
                    assert_eq!(
                        l2.set_i64(name, 1).unwrap_err().kind,
                        ErrorKind::InvalidParam,
                        "{id}: {name} as i64"
                    );
                }
                ParamKind::I64 { min, max } => {
                    if *min > i64::MIN {
                        assert_eq!(
                            l2.set_i64(name, min - 1).unwrap_err().kind,
                            ErrorKind::InvalidParam,
                            "{id}: {name}"
                        );
                        t.checked(1);
                    }
                    if *max < i64::MAX {
                        assert_eq!(
                            l2.set_i64(name, max + 1).unwrap_err().kind,
                            ErrorKind::InvalidParam,
                            "{id}: {name}"
                        );
                        t.checked(1);
                    }
                    assert_eq!(
                        l2.set_f64(name, 1.0).unwrap_err().kind,
                        ErrorKind::InvalidParam,
                        "{id}: {name} as f64"
                    );
                }
                ParamKind::Bool => {
                    assert_eq!(
                        l2.set_f64(name, 1.0).unwrap_err().kind,
                        ErrorKind::InvalidParam,
                        "{id}: {name}"
                    );
                }
                ParamKind::Enum(_) => {
                    assert_eq!(
                        l2.set_enum(name, "no_such_choice").unwrap_err().kind,
                        ErrorKind::InvalidParam,
                        "{id}: {name}"
                    );
                }
            }
            t.checked(1);
            assert_eq!(
                l2.params().get(name),
                before,
                "{id}: a refused value changed {name}"
            );
        }
        // Output of the wrong length; gradient asked for a non-differentiable input.
        let mut out = vec![0.0f32; 2];
        let mut c = Compute::new(Reduction::Mean, &mut out);
        for x in &case.inputs {
            c.inputs.push(x.as_ref().map(|x| x.view()));
        }
        let e = l.compute(&mut c).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::ShapeMismatch,
            "{id}: 2 outputs for mean: {}",
            e.msg
        );
        t.checked(1);
        match spec.inputs.iter().position(|i| !i.differentiable) {
            Some(k) => {
                if let Some(x) = &case.inputs[k] {
                    let mut out = vec![0.0f32; 1];
                    let n: usize = x.shape.iter().product();
                    let mut g = vec![0.0f32; n];
                    let mut c = Compute::new(Reduction::Mean, &mut out);
                    for x in &case.inputs {
                        c.inputs.push(x.as_ref().map(|x| x.view()));
                    }
                    c = c.grad(k, TensorMut::new(&mut g, &x.shape));
                    let e = l.compute(&mut c).unwrap_err();
                    assert_eq!(
                        e.kind,
                        ErrorKind::InvalidArg,
                        "{id}: gradient of a non-differentiable input"
                    );
                    t.checked(1);
                }
            }
            None => t.skip("losses without a non-differentiable input", 1),
        }
        // Too many inputs.
        let mut out = vec![0.0f32; 1];
        let extra = [0.0f32];
        let mut c = Compute::new(Reduction::Mean, &mut out);
        for x in &case.inputs {
            c.inputs.push(x.as_ref().map(|x| x.view()));
        }
        c = c.input(Tensor::f32(&extra, &[1]));
        assert_eq!(
            l.compute(&mut c).unwrap_err().kind,
            ErrorKind::InvalidArg,
            "{id}: extra input"
        );
        t.checked(1);
    }
    t.finish(min);
}

/// The same configured loss computes from 8 threads at once (5 calls each) with the results
/// of one call, bit for bit.
pub fn eight_threads(cfgs: &[Config], min: usize) {
    let mut t = Tally::new("8 threads at once (configurations)");
    for cfg in cfgs {
        let (label, l) = (&cfg.label, &cfg.loss);
        let case = Case::random(l, &bigger(cfg, &[("N", 64), ("C", 33)]), 21, true);
        let red = *reductions(l).last().unwrap();
        let want = case.run(l, red, true, None).unwrap();
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..5)
                            .map(|_| case.run(l, red, true, None).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in hs {
                for o in h.join().unwrap() {
                    assert_eq!(o.loss, want.loss, "{label}: concurrent loss differs");
                    assert_eq!(o.grads, want.grads, "{label}: concurrent gradient differs");
                }
            }
        });
        t.checked(1);
    }
    t.finish(min);
}

/// Identical bits for 1, 2, 3 and 7 threads, for every reduction.
pub fn thread_count_independent(cfgs: &[Config], min: usize) {
    let mut t = Tally::new("bits independent of the thread count (configurations x reductions)");
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for cfg in cfgs {
        let (label, l) = (&cfg.label, &cfg.loss);
        let case = Case::random(l, &bigger(cfg, &[("N", 300), ("C", 257)]), 9, true);
        for red in reductions(l) {
            let one = pool(1).install(|| case.run(l, red, true, None).unwrap());
            for n in [2, 3, 7] {
                let many = pool(n).install(|| case.run(l, red, true, None).unwrap());
                assert_eq!(
                    bits(&one.loss),
                    bits(&many.loss),
                    "{label} {red:?}: {n} threads change the loss"
                );
                for (a, b) in one.grads.iter().zip(&many.grads) {
                    if let (Some(a), Some(b)) = (a, b) {
                        assert_eq!(
                            bits(a),
                            bits(b),
                            "{label} {red:?}: {n} threads change a gradient"
                        );
                    }
                }
            }
            t.checked(1);
        }
    }
    t.finish(min);
}

/// Every spec validates, ids are unique, summaries, sources and parameter docs are not empty.
pub fn specs_are_valid(ctx: &Context, ids: &[String]) {
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        let def = ctx.find(id).unwrap();
        def.spec.validate().unwrap();
        assert!(seen.insert(id.clone()), "duplicate id {id}");
        assert!(
            !def.spec.summary.is_empty() && !def.spec.source.is_empty(),
            "{id}: summary/source"
        );
        for p in &def.spec.params {
            assert!(!p.doc.is_empty(), "{id}: parameter {} has no doc", p.name);
        }
    }
}
