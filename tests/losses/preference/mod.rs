//! Per-loss tests of the preference and RL families, and the helpers they share: golden
//! values from the JAX float64 reference (`tests/golden/gen/preference.py`), finite-difference
//! gradient checks over the defaults and every test parameter set, and parameter checks.

mod aot;
mod cpo;
mod dpa_semantic;
mod dpo;
mod grad_entanglement;
mod grpo;
mod hypo;
mod inpo;
mod kto;
mod mapl;
mod orpo;
mod osp_spce;
mod ppo_clip;
mod rpo;
mod rso_accept;
mod seppo;
mod simpo;
mod solireward_btwt;
mod sparsepo;
mod sparsepo_mask;
mod spo_degree;
mod steer;
mod token_logprobs;
mod yojo_nway;

use std::collections::BTreeMap;

use losskit::testing::{Case, gradcheck};
use losskit::{
    Compute, Context, ErrorKind, Loss, ParamKind, ParamValue, Reduction, Tensor, TensorMut,
};
use serde_json::Value;

use crate::common::{FD_TOL, GRAD_TOL, LOSS_TOL, assert_close, golden_path};

/// A loss with default parameters.
pub fn loss(id: &str) -> Loss {
    Context::cpu().loss(id).expect("registered")
}

/// Set one parameter from a JSON value, by the parameter's declared type.
fn set_json(l: &mut Loss, name: &str, v: &Value) {
    let i = l
        .params()
        .index(name)
        .unwrap_or_else(|| panic!("no param {name}"));
    let kind = l.params().specs()[i].kind.clone();
    match kind {
        ParamKind::F64 { .. } => l.set_f64(name, v.as_f64().unwrap()),
        ParamKind::I64 { .. } => l.set_i64(name, v.as_i64().unwrap()),
        ParamKind::Bool => l.set_bool(name, v.as_bool().unwrap()),
        ParamKind::Enum(_) => l.set_enum(name, v.as_str().unwrap()),
    }
    .unwrap_or_else(|e| panic!("set {name} = {v}: {e:?}"));
}

/// A loss configured by a JSON parameter object (in the object's key order: configuration
/// is order-free).
pub fn configured(id: &str, params: &Value) -> Loss {
    let mut l = loss(id);
    let obj = params.as_object().expect("params object");
    for (k, v) in obj {
        set_json(&mut l, k, v);
    }
    l
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Loss, gradients by input name, auxiliary outputs by name.
pub type RunOut = (
    Vec<f32>,
    BTreeMap<String, Vec<f32>>,
    BTreeMap<String, Vec<f32>>,
);

/// Owned inputs of a golden case, in spec order.
pub struct Inputs {
    f: Vec<Option<(Vec<f32>, Vec<usize>)>>,
    i: Vec<Option<(Vec<i64>, Vec<usize>)>>,
}

impl Inputs {
    fn from_json(l: &Loss, inputs: &Value) -> Self {
        let spec = &l.def().spec;
        let mut f = Vec::new();
        let mut i = Vec::new();
        for is in &spec.inputs {
            match inputs.get(is.name.as_str()) {
                None => {
                    f.push(None);
                    i.push(None);
                }
                Some(t) => {
                    let shape: Vec<usize> = t["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap() as usize)
                        .collect();
                    if t["dtype"] == "i64" {
                        let d = t["data"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_i64().unwrap())
                            .collect();
                        i.push(Some((d, shape)));
                        f.push(None);
                    } else {
                        let d = f64s(&t["data"]).into_iter().map(|x| x as f32).collect();
                        f.push(Some((d, shape)));
                        i.push(None);
                    }
                }
            }
        }
        Inputs { f, i }
    }

    fn rows(&self, l: &Loss) -> usize {
        let spec = &l.def().spec;
        for (k, is) in spec.inputs.iter().enumerate() {
            if let Some(ax) = is.dims().iter().position(|d| *d == spec.rows.as_str()) {
                if let Some((_, s)) = &self.f[k] {
                    return s[ax];
                }
                if let Some((_, s)) = &self.i[k] {
                    return s[ax];
                }
            }
        }
        panic!("no input with the row letter")
    }

    /// Compute; returns the loss, the gradients of the differentiable inputs (when asked) and
    /// the auxiliary outputs named in `aux` (with their shapes).
    pub fn run(
        &self,
        l: &Loss,
        red: Reduction,
        grads: bool,
        aux: &[(&str, Vec<usize>)],
    ) -> losskit::Result<RunOut> {
        let spec = &l.def().spec;
        let n = if red == Reduction::None {
            self.rows(l)
        } else {
            1
        };
        let mut out = vec![0.0f32; n];
        let mut gb: Vec<Option<Vec<f32>>> = spec
            .inputs
            .iter()
            .zip(&self.f)
            .map(|(is, t)| match t {
                Some((d, _)) if grads && is.differentiable => Some(vec![f32::NAN; d.len()]),
                _ => None,
            })
            .collect();
        let mut ab: Vec<Vec<f32>> = aux
            .iter()
            .map(|(_, s)| vec![f32::NAN; s.iter().product()])
            .collect();
        {
            let mut c = Compute::new(red, &mut out);
            for k in 0..spec.inputs.len() {
                c = match (&self.f[k], &self.i[k]) {
                    (Some((d, s)), _) => c.input(Tensor::f32(d, s)),
                    (_, Some((d, s))) => c.input(Tensor::i64(d, s)),
                    _ => c.absent(),
                };
            }
            for (k, g) in gb.iter_mut().enumerate() {
                if let Some(g) = g {
                    let s = self.f[k].as_ref().unwrap().1.clone();
                    c = c.grad(k, TensorMut::new(g, &s));
                }
            }
            for ((name, s), b) in aux.iter().zip(ab.iter_mut()) {
                c = c.aux(name, TensorMut::new(b, s));
            }
            l.compute(&mut c)?;
        }
        let mut grads_out = BTreeMap::new();
        for (k, g) in gb.into_iter().enumerate() {
            if let Some(g) = g {
                grads_out.insert(spec.inputs[k].name.to_string(), g);
            }
        }
        let aux_out = aux
            .iter()
            .zip(ab)
            .map(|((n, _), b)| (n.to_string(), b))
            .collect();
        Ok((out, grads_out, aux_out))
    }
}

/// Check every case of `tests/golden/preference/<id>.json`: per-row losses (the terms of a
/// batch-level loss), the mean and sum,
/// the gradient of the sum, and the auxiliary outputs. `aux_shape` gives an auxiliary
/// output's shape from the case's JSON inputs.
pub fn golden_with(id: &str, aux_shape: &dyn Fn(&str, &Value) -> Vec<usize>) {
    let path = golden_path(&format!("preference/{id}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let g: Value = serde_json::from_str(&text).unwrap();
    let cases = g["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for cs in cases {
        let name = cs["name"].as_str().unwrap();
        let l = configured(id, &cs["params"]);
        let inp = Inputs::from_json(&l, &cs["inputs"]);
        let want = f64s(&cs["loss_none"]);
        let aux_names: Vec<(String, Vec<f64>)> = cs
            .get("aux")
            .and_then(|a| a.as_object())
            .map(|o| o.iter().map(|(k, v)| (k.clone(), f64s(v))).collect())
            .unwrap_or_default();
        let aux: Vec<(&str, Vec<usize>)> = aux_names
            .iter()
            .map(|(k, _)| (k.as_str(), aux_shape(k, &cs["inputs"])))
            .collect();
        // A batch-level loss has no per-row output: `loss_none` then holds its terms.
        let red = if l.def().spec.batch_level {
            Reduction::Sum
        } else {
            Reduction::None
        };
        let (got, _, auxv) = inp.run(&l, red, false, &aux).unwrap();
        if red == Reduction::None {
            assert_close(&format!("{id}/{name}: loss (none)"), &got, &want, LOSS_TOL);
        }
        for (k, w) in &aux_names {
            assert_close(&format!("{id}/{name}: aux {k}"), &auxv[k], w, LOSS_TOL);
        }
        let total: f64 = want.iter().sum();
        let (got, grads, _) = inp.run(&l, Reduction::Sum, true, &[]).unwrap();
        assert_close(
            &format!("{id}/{name}: loss (sum)"),
            &got,
            &[total],
            LOSS_TOL,
        );
        let (got, _, _) = inp.run(&l, Reduction::Mean, false, &[]).unwrap();
        let den = cs
            .get("mean_den")
            .and_then(|d| d.as_f64())
            .unwrap_or(want.len() as f64);
        let mean = if den == 0.0 { 0.0 } else { total / den };
        assert_close(
            &format!("{id}/{name}: loss (mean)"),
            &got,
            &[mean],
            LOSS_TOL,
        );
        let gs = cs["grads_sum"].as_object().unwrap();
        let differentiable = l.def().spec.inputs.iter().any(|i| i.differentiable);
        assert!(
            !gs.is_empty() || !differentiable,
            "{id}/{name}: no gradients in the golden file"
        );
        for (k, w) in gs {
            let g = grads
                .get(k)
                .unwrap_or_else(|| panic!("{id}/{name}: no gradient for {k}"));
            assert_close(&format!("{id}/{name}: grad {k}"), g, &f64s(w), GRAD_TOL);
        }
    }
}

/// [`golden_with`] for losses without auxiliary outputs.
pub fn golden(id: &str) {
    golden_with(id, &|_, _| panic!("{id}: unexpected auxiliary output"));
}

/// All the parameter settings of a loss: the defaults and each `test_params` set.
pub fn settings(id: &str) -> Vec<Loss> {
    let base = loss(id);
    let mut v = vec![base.clone()];
    for set in &base.def().test_params {
        let mut l = base.clone();
        for (n, val) in set {
            l.set(n, *val)
                .unwrap_or_else(|e| panic!("{id}: test param {n}: {e:?}"));
        }
        v.push(l);
    }
    v
}

/// Finite-difference gradient check of every setting, with and without the optional inputs,
/// for every reduction.
pub fn gradcheck_all(id: &str, dims: &[(&str, usize)]) {
    gradcheck_with(id, dims, &[false, true]);
}

/// [`gradcheck_all`] with the optional inputs present or absent as listed.
pub fn gradcheck_with(id: &str, dims: &[(&str, usize)], optional: &[bool]) {
    let dims: BTreeMap<String, usize> = dims.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    for (s, l) in settings(id).iter().enumerate() {
        for &with_opt in optional {
            for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                if red == Reduction::None && l.def().spec.batch_level {
                    continue;
                }
                let case = Case::random(l, &dims, 17 + s as u64, with_opt);
                let reps = gradcheck(l, &case, red, 40).unwrap_or_else(|e| panic!("{id}: {e:?}"));
                for r in reps {
                    assert!(
                        r.max_abs < FD_TOL || r.max_rel < FD_TOL,
                        "{id} setting #{s} ({:?}) optional={with_opt} {red:?}: grad of {} off by {:.3e} (rel {:.3e})",
                        l.params().values(),
                        r.input,
                        r.max_abs,
                        r.max_rel
                    );
                }
            }
        }
    }
}

/// The error kind of refusing `name = v` after the settings `pre`: the setter refuses a
/// value outside its own range; a combination with other parameters is accepted by the
/// setter (configuration is order-free) and refused by the check of the whole
/// configuration (`Loss::check`, which every compute runs first).
pub fn set_err(id: &str, pre: &[(&str, ParamValue)], name: &str, v: ParamValue) -> ErrorKind {
    let mut l = loss(id);
    for (n, x) in pre {
        l.set(n, *x).unwrap();
    }
    match l.set(name, v) {
        Err(e) => e.kind,
        Ok(()) => l.check().expect_err("must be rejected").kind,
    }
}

/// Loss values of `[B]` inputs given by name (others absent), reduction none.
pub fn rows_of(l: &Loss, inputs: &[(&str, &[f32])]) -> losskit::Result<Vec<f32>> {
    let spec = &l.def().spec;
    let b = inputs[0].1.len();
    let mut out = vec![0.0f32; b];
    {
        let mut c = Compute::new(Reduction::None, &mut out);
        for is in &spec.inputs {
            c = match inputs.iter().find(|(n, _)| *n == is.name.as_str()) {
                Some((_, d)) => c.input(Tensor::f32(d, &[b])),
                None => c.absent(),
            };
        }
        l.compute(&mut c)?;
    }
    Ok(out)
}

/// A loss with parameters set in order.
pub fn with(id: &str, pairs: &[(&str, ParamValue)]) -> Loss {
    let mut l = loss(id);
    for (n, v) in pairs {
        l.set(n, *v).unwrap_or_else(|e| panic!("{id}: {n}: {e:?}"));
    }
    l
}

/// The index of an enum choice.
pub fn choice(id: &str, param: &str, name: &str) -> ParamValue {
    let l = loss(id);
    let i = l.params().index(param).unwrap();
    match &l.params().specs()[i].kind {
        ParamKind::Enum(c) => ParamValue::Enum(c.iter().position(|t| t.as_str() == name).unwrap()),
        _ => panic!("{param} is not an enum"),
    }
}

/// `|a - b| <= tol (1 + |b|)` elementwise.
pub fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

/// Compute with `[N, T]` (or `[N]`) f32 inputs given by name, others absent; returns the loss
/// and the gradient of input 0.
pub fn run_named(
    l: &Loss,
    red: Reduction,
    inputs: &[(&str, &[f32], &[usize])],
) -> losskit::Result<(Vec<f32>, Vec<f32>)> {
    let spec = &l.def().spec;
    let n = if red == Reduction::None {
        inputs[0].2[0]
    } else {
        1
    };
    let mut out = vec![0.0f32; n];
    let mut g = vec![f32::NAN; inputs[0].1.len()];
    {
        let mut c = Compute::new(red, &mut out);
        for is in &spec.inputs {
            c = match inputs.iter().find(|(name, _, _)| *name == is.name.as_str()) {
                Some((_, d, s)) => c.input(Tensor::f32(d, s)),
                None => c.absent(),
            };
        }
        c = c.grad(0, TensorMut::new(&mut g, inputs[0].2));
        l.compute(&mut c)?;
    }
    Ok((out, g))
}

/// Random inputs from the Domains are valid for every loss of the families, with and without
/// the optional inputs, for every parameter setting. Documented exceptions: `grpo` needs N
/// divisible by `group_size` and `ref_logps` when `beta != 0`.
#[test]
fn random_cases_are_valid() {
    let ctx = Context::cpu();
    let dims: BTreeMap<String, usize> = [("N".to_string(), 12)].into();
    for d in ctx.losses() {
        let fam = d.spec.family.as_str();
        if fam != "preference" && fam != "rl" {
            continue;
        }
        let id = d.spec.id.to_string();
        for l in settings(&id) {
            for with_opt in [false, true] {
                if id == "grpo" && !with_opt && l.params().f64("beta") != 0.0 {
                    continue;
                }
                let case = Case::random(&l, &dims, 5, with_opt);
                for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                    if red == Reduction::None && l.def().spec.batch_level {
                        continue;
                    }
                    let o = case.run(&l, red, true, None).unwrap_or_else(|e| {
                        panic!("{id} {:?} optional={with_opt}: {e:?}", l.params().values())
                    });
                    assert!(o.loss.iter().all(|v| v.is_finite()), "{id}: {:?}", o.loss);
                }
            }
        }
    }
}
