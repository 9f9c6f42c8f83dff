//! Per-loss tests of the preference family, and the helpers it shares with the RL family's
//! tests (`tests/losses/rl/`): finite-difference gradient checks over the defaults and every
//! test parameter set, parameter checks, and calls with named inputs. Golden values (JAX
//! float64, `tests/golden/gen/preference.py`) are read by `common/golden.rs`.

mod aot;
mod cpo;
mod dpa_semantic;
mod dpo;
mod grad_entanglement;
mod hypo;
mod inpo;
mod kto;
mod mapl;
mod orpo;
mod osp_spce;
mod rpo;
mod rso_accept;
mod seppo;
mod simpo;
mod solireward_btwt;
mod sparsepo;
mod sparsepo_mask;
mod spo_degree;
mod token_logprobs;
mod yojo_nway;

use std::collections::BTreeMap;

use losskit::testing::{Case, gradcheck};
use losskit::{
    Compute, Context, ErrorKind, Loss, ParamKind, ParamValue, Reduction, Tensor, TensorMut,
};

use crate::common::FD_TOL;

/// A loss with default parameters.
pub fn loss(id: &str) -> Loss {
    Context::cpu().loss(id).expect("registered")
}

/// Golden values (`tests/golden/preference/<id>.json`): every call its cases list.
pub fn golden(id: &str) {
    crate::golden::check(id);
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

/// The error kind of setting a parameter.
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
