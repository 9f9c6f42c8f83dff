//! ONE test binary for every loss: the generic suites over the whole registry (this file),
//! and one module per loss with its reference values and paper properties
//! (`tests/losses/<family>/<id>.rs`).
//!
//! Every registered loss gets these suites from its spec alone (random valid inputs come
//! from the input domains, see `losskit::testing`): finite-difference gradients for the
//! defaults and every `test_params` set, reductions and `grad_output` semantics,
//! `ignore_index`, weights, the empty batch, the bad-input table, the same loss used from
//! 8 threads at once, and bit-identical results for any thread count.

#[path = "losses/classification/mod.rs"]
mod classification;
mod common;
#[path = "losses/lm/mod.rs"]
mod lm;
#[path = "losses/preference/mod.rs"]
mod preference;

use std::collections::BTreeMap;

use common::FD_TOL;
use losskit::testing::{Case, OwnedData, OwnedTensor, gradcheck};
use losskit::{
    Compute, Context, DType, Domain, ErrorKind, Loss, ParamKind, ParamValue, Reduction, Tensor,
};

/// Every loss with its defaults and with each of its `test_params` sets.
fn configs(ctx: &Context) -> Vec<(String, Loss)> {
    let mut out = Vec::new();
    for def in ctx.losses() {
        let id = def.spec.id.to_string();
        let base = ctx.loss(&id).unwrap();
        out.push((format!("{id} (defaults)"), base.clone()));
        for set in &def.test_params {
            let mut l = base.clone();
            for (n, v) in set {
                l.set(n, *v)
                    .unwrap_or_else(|e| panic!("{id}: test_params {set:?}: {e}"));
            }
            out.push((format!("{id} {set:?}"), l));
        }
    }
    out
}

fn reductions(l: &Loss) -> Vec<Reduction> {
    if l.def().spec.batch_level {
        vec![Reduction::Mean, Reduction::Sum]
    } else {
        vec![Reduction::Mean, Reduction::Sum, Reduction::None]
    }
}

fn dims() -> BTreeMap<String, usize> {
    BTreeMap::new()
}

/// Sizes for a bigger problem, except the letters the loss fixes with `test_dims`.
fn bigger(l: &Loss, sizes: &[(&str, usize)]) -> BTreeMap<String, usize> {
    sizes
        .iter()
        .filter(|(k, _)| !l.def().test_dims.iter().any(|(d, _)| d == k))
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
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

#[test]
fn gradients_match_finite_differences() {
    let ctx = Context::cpu();
    let mut failures = Vec::new();
    for (label, l) in configs(&ctx) {
        if let Some(why) = l.def().surrogate_reason(l.params()) {
            println!(
                "{label}: gradient is a surrogate by design ({why}); checked by its own tests"
            );
            continue;
        }
        for red in reductions(&l) {
            for with_optional in [false, true] {
                let case = Case::random(&l, &dims(), 11, with_optional);
                let reps = gradcheck(&l, &case, red, 40).unwrap_or_else(|e| panic!("{label}: {e}"));
                for r in reps {
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
            }
        }
    }
    assert!(
        failures.is_empty(),
        "gradient check failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn reductions_and_grad_output_are_consistent() {
    let ctx = Context::cpu();
    for (label, l) in configs(&ctx) {
        let case = Case::random(&l, &dims(), 5, true);
        let sum = case.run(&l, Reduction::Sum, true, None).unwrap();
        let mean = case.run(&l, Reduction::Mean, true, None).unwrap();
        let tol = 1e-4;
        // grad_output scales every gradient linearly.
        let go = [2.5f32];
        let mean_go = case.run(&l, Reduction::Mean, true, Some(&go)).unwrap();
        assert_eq!(
            mean_go.loss, mean.loss,
            "{label}: grad_output changed the loss"
        );
        for (k, (a, b)) in mean.grads.iter().zip(&mean_go.grads).enumerate() {
            if let (Some(a), Some(b)) = (a, b) {
                let a25: Vec<f32> = a.iter().map(|v| v * 2.5).collect();
                assert!(
                    max_abs_diff(&a25, b) <= tol * scale(&a25),
                    "{label}: grad_output 2.5 does not scale the gradient of input {k}"
                );
            }
        }
        if !l.def().spec.batch_level {
            let none = case.run(&l, Reduction::None, true, None).unwrap();
            let total: f64 = none.loss.iter().map(|&v| v as f64).sum();
            assert!(
                (total - sum.loss[0] as f64).abs() <= tol * (1.0 + total.abs()),
                "{label}: sum {} != sum of per-sample losses {total}",
                sum.loss[0]
            );
        }
        // mean = sum / den with 0 < den (a batch-level loss may define both as the same
        // scalar, den = 1, or as a mean and a sum of its terms); the gradients follow the
        // same factor.
        if mean.loss[0] != 0.0 {
            let den = sum.loss[0] as f64 / mean.loss[0] as f64;
            assert!(den > 0.0, "{label}: mean and sum disagree in sign");
            for (k, (gs, gm)) in sum.grads.iter().zip(&mean.grads).enumerate() {
                if let (Some(gs), Some(gm)) = (gs, gm) {
                    let scaled: Vec<f32> = gm.iter().map(|v| (*v as f64 * den) as f32).collect();
                    assert!(
                        max_abs_diff(&scaled, gs) <= 1e-3 * scale(gs),
                        "{label}: mean gradient of input {k} is not sum gradient / {den}"
                    );
                }
            }
        }
        if l.def().spec.batch_level {
            assert!(
                case.run(&l, Reduction::None, false, None).unwrap_err().kind
                    == ErrorKind::Unsupported,
                "{label}: none must be refused for a batch-level loss"
            );
            continue;
        }
        // none with grad_output = ones equals sum; grad_output is linear per sample.
        let rows = case.rows(&l.def().spec);
        let ones = vec![1.0f32; rows];
        let none_ones = case.run(&l, Reduction::None, true, Some(&ones)).unwrap();
        let v: Vec<f32> = (0..rows).map(|i| 0.5 + i as f32).collect();
        let none_v = case.run(&l, Reduction::None, true, Some(&v)).unwrap();
        let v2: Vec<f32> = v.iter().map(|x| 2.0 * x).collect();
        let none_v2 = case.run(&l, Reduction::None, true, Some(&v2)).unwrap();
        for k in 0..sum.grads.len() {
            if let (Some(gs), Some(g1), Some(gv), Some(gv2)) = (
                &sum.grads[k],
                &none_ones.grads[k],
                &none_v.grads[k],
                &none_v2.grads[k],
            ) {
                assert!(
                    max_abs_diff(gs, g1) <= tol * scale(gs),
                    "{label}: none with grad_output = 1 differs from sum for input {k}"
                );
                let gvx2: Vec<f32> = gv.iter().map(|x| 2.0 * x).collect();
                assert!(
                    max_abs_diff(&gvx2, gv2) <= tol * scale(gv2),
                    "{label}: per-sample grad_output is not linear for input {k}"
                );
            }
        }
    }
}

/// Index of the first i64 class-target input, if any.
fn target_input(l: &Loss) -> Option<usize> {
    l.def()
        .spec
        .inputs
        .iter()
        .position(|i| i.dtype == DType::I64 && matches!(i.domain, Domain::Class(_)))
}

#[test]
fn ignored_rows_contribute_nothing() {
    let ctx = Context::cpu();
    for (label, l) in configs(&ctx) {
        let Some(ParamValue::I64(ig)) = l.params().get("ignore_index") else {
            continue;
        };
        let Some(t) = target_input(&l) else { continue };
        let spec = &l.def().spec;
        if spec.inputs[t].dims() != [spec.rows.as_str()] {
            // Targets per token (e.g. [N, T]): ignored entries are not whole samples.
            continue;
        }
        let mut case = Case::random(&l, &dims(), 3, true);
        // Every row ignored: mean is 0 with zero gradients, not NaN.
        if let Some(OwnedTensor {
            data: OwnedData::I64(v),
            ..
        }) = &mut case.inputs[t]
        {
            v.iter_mut().for_each(|y| *y = ig);
        }
        for red in reductions(&l) {
            let o = case.run(&l, red, true, None).unwrap();
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
        // Some rows ignored: exactly those rows have zero loss and zero gradient rows.
        let case = Case::random(&l, &dims(), 4, true);
        let targets = match &case.inputs[t] {
            Some(OwnedTensor {
                data: OwnedData::I64(v),
                ..
            }) => v.clone(),
            _ => unreachable!(),
        };
        if spec.batch_level {
            continue;
        }
        let o = case.run(&l, Reduction::None, true, None).unwrap();
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
}

#[test]
fn unit_weights_equal_absent_weights_exactly() {
    let ctx = Context::cpu();
    for (label, l) in configs(&ctx) {
        let spec = &l.def().spec;
        let case = Case::random(&l, &dims(), 8, false);
        for (k, is) in spec.inputs.iter().enumerate() {
            if !(is.optional && is.domain == Domain::NonNegative && is.name.contains("weight")) {
                continue;
            }
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
            for red in reductions(&l) {
                let a = case.run(&l, red, true, None).unwrap();
                let b = with.run(&l, red, true, None).unwrap();
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
        }
    }
}

#[test]
fn empty_batch_gives_zero() {
    let ctx = Context::cpu();
    for (label, l) in configs(&ctx) {
        let spec = &l.def().spec;
        let mut d = BTreeMap::new();
        d.insert(spec.rows.to_string(), 0usize);
        let case = Case::random(&l, &d, 1, true);
        for red in reductions(&l) {
            let o = case
                .run(&l, red, true, None)
                .unwrap_or_else(|e| panic!("{label} {red:?}: empty batch fails: {e}"));
            match red {
                Reduction::None => assert!(o.loss.is_empty(), "{label}"),
                _ => assert_eq!(o.loss, vec![0.0], "{label} {red:?}: empty batch"),
            }
            for g in o.grads.iter().flatten() {
                assert!(g.iter().all(|&v| v == 0.0), "{label}: empty batch gradient");
            }
        }
    }
}

fn expect_err(
    label: &str,
    what: &str,
    r: losskit::Result<losskit::testing::Outcome>,
    kind: ErrorKind,
) {
    match r {
        Ok(_) => panic!("{label}: {what}: accepted, expected {kind:?}"),
        Err(e) => {
            assert_eq!(
                e.kind, kind,
                "{label}: {what}: got {:?} ({})",
                e.kind, e.msg
            );
            assert!(
                e.msg.contains(label.split(' ').next().unwrap()),
                "{label}: {what}: message does not name the loss: {}",
                e.msg
            );
        }
    }
}

#[test]
fn bad_inputs_get_their_own_status() {
    let ctx = Context::cpu();
    assert_eq!(
        ctx.loss("no_such_loss").unwrap_err().kind,
        ErrorKind::UnknownLoss
    );
    for def in ctx.losses() {
        let id = def.spec.id.to_string();
        let l = ctx.loss(&id).unwrap();
        let spec = &def.spec;
        let case = Case::random(&l, &dims(), 2, false);
        for (k, is) in spec.inputs.iter().enumerate() {
            let name = is.name.as_str();
            if !is.optional {
                let mut c = case.clone();
                c.inputs[k] = None;
                expect_err(
                    &id,
                    &format!("missing {name}"),
                    c.run(&l, Reduction::Mean, false, None),
                    ErrorKind::NullArg,
                );
            }
            let Some(t) = &case.inputs[k] else { continue };
            // Wrong rank.
            let mut c = case.clone();
            if let Some(t2) = &mut c.inputs[k] {
                t2.shape.push(1);
            }
            expect_err(
                &id,
                &format!("{name} with an extra axis"),
                c.run(&l, Reduction::Mean, false, None),
                ErrorKind::ShapeMismatch,
            );
            // Wrong dtype.
            let mut c = case.clone();
            let n = t.shape.iter().product();
            c.inputs[k] = Some(OwnedTensor {
                data: match t.data {
                    OwnedData::F32(_) => OwnedData::I64(vec![0; n]),
                    OwnedData::I64(_) => OwnedData::F32(vec![0.0; n]),
                },
                shape: t.shape.clone(),
            });
            expect_err(
                &id,
                &format!("{name} with the wrong dtype"),
                c.run(&l, Reduction::Mean, false, None),
                ErrorKind::DType,
            );
            // A size that disagrees with another input (only when a letter is shared).
            let dims_k = is.dims();
            let shared = dims_k.iter().position(|d| {
                spec.inputs
                    .iter()
                    .enumerate()
                    .any(|(j, o)| j != k && case.inputs[j].is_some() && o.dims().contains(d))
            });
            if let Some(ax) = shared {
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
                    &id,
                    &format!("{name} with a mismatched axis"),
                    c.run(&l, Reduction::Mean, false, None),
                    ErrorKind::ShapeMismatch,
                );
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
                        &id,
                        &format!("{name} = {bad}"),
                        c.run(&l, Reduction::Mean, false, None),
                        ErrorKind::InvalidTarget,
                    );
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
                    }
                    if *max < i64::MAX {
                        assert_eq!(
                            l2.set_i64(name, max + 1).unwrap_err().kind,
                            ErrorKind::InvalidParam,
                            "{id}: {name}"
                        );
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
            assert_eq!(
                l2.params().get(name),
                before,
                "{id}: a refused value changed {name}"
            );
        }
        // Output of the wrong length; gradient asked for a non-differentiable input.
        let mut out = vec![0.0f32; 2];
        let mut c = Compute::new(Reduction::Mean, &mut out);
        for t in &case.inputs {
            c.inputs.push(t.as_ref().map(|t| t.view()));
        }
        let e = l.compute(&mut c).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::ShapeMismatch,
            "{id}: 2 outputs for mean: {}",
            e.msg
        );
        if let Some(k) = spec.inputs.iter().position(|i| !i.differentiable) {
            if let Some(t) = &case.inputs[k] {
                let mut out = vec![0.0f32; 1];
                let n: usize = t.shape.iter().product();
                let mut g = vec![0.0f32; n];
                let mut c = Compute::new(Reduction::Mean, &mut out);
                for t in &case.inputs {
                    c.inputs.push(t.as_ref().map(|t| t.view()));
                }
                c = c.grad(k, losskit::TensorMut::new(&mut g, &t.shape));
                let e = l.compute(&mut c).unwrap_err();
                assert_eq!(
                    e.kind,
                    ErrorKind::InvalidArg,
                    "{id}: gradient of a non-differentiable input"
                );
            }
        }
        // Too many inputs.
        let mut out = vec![0.0f32; 1];
        let extra = [0.0f32];
        let mut c = Compute::new(Reduction::Mean, &mut out);
        for t in &case.inputs {
            c.inputs.push(t.as_ref().map(|t| t.view()));
        }
        c = c.input(Tensor::f32(&extra, &[1]));
        assert_eq!(
            l.compute(&mut c).unwrap_err().kind,
            ErrorKind::InvalidArg,
            "{id}: extra input"
        );
    }
}

#[test]
fn one_loss_computes_from_eight_threads_at_once() {
    let ctx = Context::cpu();
    for (label, l) in configs(&ctx) {
        let case = Case::random(&l, &bigger(&l, &[("N", 64), ("C", 33)]), 21, true);
        let red = *reductions(&l).last().unwrap();
        let want = case.run(&l, red, true, None).unwrap();
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..5)
                            .map(|_| case.run(&l, red, true, None).unwrap())
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
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let ctx = Context::cpu();
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    for (label, l) in configs(&ctx) {
        let case = Case::random(&l, &bigger(&l, &[("N", 300), ("C", 257)]), 9, true);
        for red in reductions(&l) {
            let one = pool(1).install(|| case.run(&l, red, true, None).unwrap());
            for n in [2, 3, 7] {
                let many = pool(n).install(|| case.run(&l, red, true, None).unwrap());
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
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
        }
    }
}

#[test]
fn every_spec_is_valid_and_ids_are_unique() {
    let ctx = Context::cpu();
    let mut seen = std::collections::BTreeSet::new();
    for def in ctx.losses() {
        def.spec.validate().unwrap();
        assert!(
            seen.insert(def.spec.id.to_string()),
            "duplicate id {}",
            def.spec.id
        );
        assert!(
            !def.spec.summary.is_empty() && !def.spec.source.is_empty(),
            "{}: summary/source",
            def.spec.id
        );
        for p in &def.spec.params {
            assert!(
                !p.doc.is_empty(),
                "{}: parameter {} has no doc",
                def.spec.id,
                p.name
            );
        }
    }
}
