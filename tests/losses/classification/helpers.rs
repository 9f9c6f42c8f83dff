//! Shared checks of the per-loss classification tests: finite-difference gradients over
//! every parameter set and reduction, parameter rejection, ignored rows, cases from named
//! inputs. Golden fixtures are read by `common/golden.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use losskit::testing::{Case, OwnedData, OwnedTensor, gradcheck};
use losskit::{Compute, Context, DType, ErrorKind, Loss, ParamValue, Reduction, TensorMut};

use crate::common::{FD_TOL, LOSS_TOL, assert_close};

/// The three reductions.
pub const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// A loss with parameters given as text.
pub fn configured(id: &str, params: &[(String, String)]) -> Loss {
    let mut l = Context::cpu().loss(id).expect("registered");
    for (k, v) in params {
        l.set_text(k, v)
            .unwrap_or_else(|e| panic!("{id}: set {k} = {v}: {e:?}"));
    }
    l
}

/// A loss with typed parameters.
pub fn with_params(id: &str, params: &[(&str, ParamValue)]) -> Loss {
    let mut l = Context::cpu().loss(id).expect("registered");
    for (k, v) in params {
        l.set(k, *v)
            .unwrap_or_else(|e| panic!("{id}: set {k} = {v:?}: {e:?}"));
    }
    l
}

/// A test case from named inputs (f32 values given as f64; i64 inputs by the spec's dtype).
pub fn case_from(loss: &Loss, inputs: &BTreeMap<String, (Vec<usize>, Vec<f64>)>) -> Case {
    let spec = &loss.def().spec;
    let mut dims = BTreeMap::new();
    let mut v = Vec::new();
    for is in &spec.inputs {
        match inputs.get(is.name.as_str()) {
            None => {
                assert!(is.optional, "required input {} missing", is.name);
                v.push(None);
            }
            Some((shape, data)) => {
                for (l, &n) in is.dims().iter().zip(shape) {
                    dims.insert(l.to_string(), n);
                }
                let data = match is.dtype {
                    DType::F32 => OwnedData::F32(data.iter().map(|&x| x as f32).collect()),
                    DType::I64 => OwnedData::I64(data.iter().map(|&x| x as i64).collect()),
                };
                v.push(Some(OwnedTensor {
                    data,
                    shape: shape.clone(),
                }));
            }
        }
    }
    Case { dims, inputs: v }
}

/// What [`run_with_aux`] returns: the loss, the gradients by input index (None where not
/// differentiable) and the auxiliary outputs.
pub type Ran = (Vec<f32>, Vec<Option<Vec<f32>>>, Vec<Vec<f32>>);

/// Run `case` with `reduction`, asking for every gradient and the auxiliary outputs named;
/// returns (loss, gradients by input index, auxiliary outputs).
pub fn run_with_aux(loss: &Loss, case: &Case, reduction: Reduction, aux: &[&str]) -> Ran {
    let spec = &loss.def().spec;
    let n = case.rows(spec);
    let mut out = vec![0.0f32; if reduction == Reduction::None { n } else { 1 }];
    let mut grads: Vec<Option<Vec<f32>>> = spec
        .inputs
        .iter()
        .zip(&case.inputs)
        .map(|(is, t)| match t {
            Some(t) if is.differentiable => Some(vec![f32::NAN; t.f32().len()]),
            _ => None,
        })
        .collect();
    let mut auxv: Vec<Vec<f32>> = aux.iter().map(|_| vec![f32::NAN; n]).collect();
    {
        let mut c = Compute::new(reduction, &mut out);
        for t in &case.inputs {
            c.inputs.push(t.as_ref().map(|t| t.view()));
        }
        for (k, g) in grads.iter_mut().enumerate() {
            if let (Some(g), Some(t)) = (g.as_mut(), case.inputs[k].as_ref()) {
                c = c.grad(k, TensorMut::new(g, &t.shape));
            }
        }
        for (name, a) in aux.iter().zip(auxv.iter_mut()) {
            c = c.aux(name, TensorMut::new(a, &[n]));
        }
        loss.compute(&mut c).expect("compute");
    }
    (out, grads, auxv)
}

/// The default parameters plus every `test_params` set of the loss.
pub fn param_sets(id: &str) -> Vec<Loss> {
    let base = Context::cpu().loss(id).expect("registered");
    let mut v = vec![base.clone()];
    for set in &base.def().test_params {
        let mut l = base.clone();
        for (k, val) in set {
            l.set(k, *val)
                .unwrap_or_else(|e| panic!("{id}: test param {k}: {e:?}"));
        }
        v.push(l);
    }
    v
}

/// Finite-difference gradient check for the defaults and every `test_params` set, with
/// every reduction, on random valid inputs (with and without the optional inputs).
pub fn gradcheck_all(id: &str) {
    gradcheck_all_but_detached(id, &[]);
}

/// [`gradcheck_all`], where under the loss's detached-gradient settings only the inputs in
/// `still_exact` (whose gradients stay true derivatives) are checked.
pub fn gradcheck_all_but_detached(id: &str, still_exact: &[&str]) {
    for (p, loss) in param_sets(id).iter().enumerate() {
        let detached = loss.def().surrogate_reason(loss.params()).is_some();
        for (s, opt) in [(11u64, false), (12u64, true)] {
            let case = Case::random(loss, &BTreeMap::new(), s + 100 * p as u64, opt);
            for red in REDUCTIONS {
                for r in gradcheck(loss, &case, red, 64).expect("gradcheck") {
                    if detached && !still_exact.contains(&r.input.as_str()) {
                        continue;
                    }
                    assert!(
                        r.max_rel <= FD_TOL || r.max_abs <= FD_TOL,
                        "{id} params #{p} ({:?}) optional={opt} {}: grad of {} off by {:.3e} (abs {:.3e})",
                        loss.params().values(),
                        red.name(),
                        r.input,
                        r.max_rel,
                        r.max_abs
                    );
                    assert!(r.checked > 0);
                }
            }
        }
    }
}

/// Setting `name = v` must fail with `InvalidParam` and leave the old value.
pub fn expect_invalid_param(id: &str, name: &str, v: ParamValue) {
    let mut l = Context::cpu().loss(id).expect("registered");
    let before = l.params().get(name);
    let e = l
        .set(name, v)
        .expect_err(&format!("{id}: {name} = {v:?} must be rejected"));
    assert_eq!(
        e.kind,
        ErrorKind::InvalidParam,
        "{id}: {name} = {v:?}: {e:?}"
    );
    assert_eq!(
        l.params().get(name),
        before,
        "{id}: {name} changed on error"
    );
}

/// Setting `name = v` must succeed (a bound of the valid range).
pub fn expect_valid_param(id: &str, name: &str, v: ParamValue) {
    let mut l = Context::cpu().loss(id).expect("registered");
    l.set(name, v)
        .unwrap_or_else(|e| panic!("{id}: {name} = {v:?} must be accepted: {e:?}"));
}

/// Rows whose target is `ignore_index` give zero loss and zero gradient in every input,
/// whatever their other inputs hold, and leave the `mean` of the other rows unchanged.
pub fn check_ignored_rows(id: &str) {
    for loss in param_sets(id) {
        for ig in [-100i64, 3] {
            let mut loss = loss.clone();
            loss.set_i64("ignore_index", ig).expect("ignore_index");
            let spec = loss.def().spec.clone();
            let tk = spec.input_index("target").expect("target input");
            let mut case = Case::random(&loss, &BTreeMap::new(), 5, true);
            let n = case.rows(&spec);
            let ignored: Vec<bool> = (0..n).map(|i| i % 2 == 1).collect();
            if let Some(OwnedTensor {
                data: OwnedData::I64(t),
                ..
            }) = &mut case.inputs[tk]
            {
                for (i, y) in t.iter_mut().enumerate() {
                    if ignored[i] {
                        *y = ig;
                    } else if *y == ig {
                        *y = 0;
                    }
                }
            }
            let base = case.run(&loss, Reduction::None, true, None).expect("run");
            // Change the ignored rows' float inputs: nothing may change.
            let mut moved = case.clone();
            for (is, t) in spec.inputs.iter().zip(moved.inputs.iter_mut()) {
                if let (
                    Some(OwnedTensor {
                        data: OwnedData::F32(d),
                        shape,
                    }),
                    true,
                ) = (t.as_mut(), is.dims().first() == Some(&"N"))
                {
                    let row = d.len() / shape[0].max(1);
                    for (i, _) in ignored.iter().enumerate().filter(|(_, b)| **b) {
                        for v in &mut d[i * row..(i + 1) * row] {
                            *v = *v * 1.7 + 0.3;
                        }
                    }
                }
            }
            let after = moved.run(&loss, Reduction::None, true, None).expect("run");
            for (i, &ign) in ignored.iter().enumerate() {
                if ign {
                    assert_eq!(base.loss[i], 0.0, "{id}: ignored row {i} has a loss");
                }
                assert_eq!(base.loss[i], after.loss[i], "{id}: row {i} changed");
            }
            for (k, (g, is)) in base.grads.iter().zip(&spec.inputs).enumerate() {
                let Some(g) = g else { continue };
                let shape = &case.inputs[k].as_ref().expect("input").shape;
                if is.dims().first() != Some(&"N") {
                    continue;
                }
                let row = g.len() / shape[0].max(1);
                for i in (0..n).filter(|&i| ignored[i]) {
                    assert!(
                        g[i * row..(i + 1) * row].iter().all(|&v| v == 0.0),
                        "{id}: ignored row {i} has a gradient in {}",
                        is.name
                    );
                }
            }
            // sum = sum of the kept rows; mean = the mean of the batch without the ignored
            // rows (whatever the loss's weighted denominator is).
            let sm = case.run(&loss, Reduction::Sum, false, None).expect("run");
            let kept: f64 = (0..n)
                .filter(|&i| !ignored[i])
                .map(|i| base.loss[i] as f64)
                .sum();
            assert_close(
                &format!("{id} sum over kept rows"),
                &sm.loss,
                &[kept],
                LOSS_TOL,
            );
            let m = case.run(&loss, Reduction::Mean, false, None).expect("run");
            let small = drop_rows(&spec, &case, &ignored);
            let ms = small.run(&loss, Reduction::Mean, false, None).expect("run");
            assert_close(
                &format!("{id} mean without the ignored rows"),
                &m.loss,
                &[ms.loss[0] as f64],
                LOSS_TOL,
            );
        }
    }
}

/// The case without the rows marked in `drop` (inputs whose first letter is `N`).
pub fn drop_rows(spec: &losskit::LossSpec, case: &Case, drop: &[bool]) -> Case {
    let mut out = case.clone();
    let kept = drop.iter().filter(|d| !**d).count();
    for (is, t) in spec.inputs.iter().zip(out.inputs.iter_mut()) {
        let Some(t) = t.as_mut() else { continue };
        if is.dims().first() != Some(&"N") {
            continue;
        }
        let row = t.shape[1..].iter().product::<usize>();
        t.data = match &t.data {
            OwnedData::F32(d) => OwnedData::F32(
                (0..drop.len())
                    .filter(|&i| !drop[i])
                    .flat_map(|i| d[i * row..(i + 1) * row].iter().copied())
                    .collect(),
            ),
            OwnedData::I64(d) => OwnedData::I64(
                (0..drop.len())
                    .filter(|&i| !drop[i])
                    .flat_map(|i| d[i * row..(i + 1) * row].iter().copied())
                    .collect(),
            ),
        };
        t.shape[0] = kept;
    }
    out.dims.insert("N".to_string(), kept);
    out
}

/// Row-wise loss values (`none`) of a loss on a case.
pub fn rows_of(loss: &Loss, case: &Case) -> Vec<f32> {
    case.run(loss, Reduction::None, false, None)
        .expect("run")
        .loss
}

/// A case from `(name, shape, values)` triples (absent optional inputs left out).
pub fn case_of(loss: &Loss, inputs: &[(&str, &[usize], &[f64])]) -> Case {
    let m: BTreeMap<String, (Vec<usize>, Vec<f64>)> = inputs
        .iter()
        .map(|(n, s, d)| (n.to_string(), (s.to_vec(), d.to_vec())))
        .collect();
    case_from(loss, &m)
}
