//! harmonic: golden values for every metric, finite differences away from the metrics'
//! kinks, the invariances the paper and spec state, bad parameters and inputs.

use std::collections::BTreeMap;

use losskit::testing::{Case, OwnedData, OwnedTensor, Rng};
use losskit::{Context, ErrorKind, Loss, ParamValue, Reduction};

use super::golden_b::*;
use crate::common::{FD_TOL, GRAD_TOL, LOSS_TOL, assert_close};

const ID: &str = "harmonic";

fn f32t(data: Vec<f32>, shape: &[usize]) -> Option<OwnedTensor> {
    Some(OwnedTensor {
        data: OwnedData::F32(data),
        shape: shape.to_vec(),
    })
}

/// A case whose values keep every metric away from its kinks by more than the
/// finite-difference step: |x - w|, |x + w|, |x|, |w| >= 0.3 elementwise, and the largest
/// |x_k - w_k| of every pair ahead of the second by more than 0.1 (chebyshev). The
/// precision matrix is positive definite plus an antisymmetric part.
fn smooth_case(n: usize, c: usize, d: usize, seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    'retry: loop {
        let mut pick = |levels: &[f64]| {
            let v = levels[rng.below(levels.len() as u64) as usize];
            let s = if rng.below(2) == 0 { -1.0 } else { 1.0 };
            (s * (v + 0.08 * (rng.uniform() - 0.5))) as f32
        };
        let x: Vec<f32> = (0..n * d).map(|_| pick(&[0.5, 1.3, 2.1])).collect();
        let w: Vec<f32> = (0..c * d).map(|_| pick(&[0.9, 1.7])).collect();
        for i in 0..n {
            for j in 0..c {
                let mut t: Vec<f32> = (0..d)
                    .map(|k| (x[i * d + k] - w[j * d + k]).abs())
                    .collect();
                if t.iter().any(|&v| v < 0.25) {
                    continue 'retry;
                }
                t.sort_by(|a, b| b.total_cmp(a));
                if d > 1 && t[0] - t[1] < 0.1 {
                    continue 'retry;
                }
            }
        }
        let target: Vec<i64> = (0..n)
            .map(|i| {
                if i == 2 {
                    -100
                } else {
                    rng.below(c as u64) as i64
                }
            })
            .collect();
        let mut p = vec![0.0f32; d * d];
        for a in 0..d {
            for b in 0..d {
                let base = if a == b { 1.0 } else { 0.0 };
                let anti = if a < b {
                    0.15
                } else if a > b {
                    -0.15
                } else {
                    0.0
                };
                p[a * d + b] = base + 0.1 * ((a + b) % 3) as f32 + anti;
            }
        }
        let dims: BTreeMap<String, usize> = [("N".into(), n), ("C".into(), c), ("D".into(), d)]
            .into_iter()
            .collect();
        return Case {
            dims,
            inputs: vec![
                f32t(x, &[n, d]),
                f32t(w, &[c, d]),
                Some(OwnedTensor {
                    data: OwnedData::I64(target),
                    shape: vec![n],
                }),
                f32t(p, &[d, d]),
            ],
        };
    }
}

fn with_metric(metric: &str) -> Loss {
    let mut l = Context::cpu().loss(ID).unwrap();
    l.set_enum("metric", metric).unwrap();
    l
}

fn run(loss: &Loss, case: &Case) -> (Vec<f32>, Vec<Option<Vec<f32>>>) {
    let o = case.run(loss, Reduction::None, true, None).unwrap();
    (o.loss, o.grads)
}

fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn harmonic_matches_golden_values() {
    crate::golden::check_with(ID, LOSS_TOL, GRAD_TOL);
}

#[test]
fn harmonic_gradient_matches_finite_differences() {
    for (name, loss) in configurations(ID) {
        for seed in [1, 2] {
            let mut case = smooth_case(5, 4, 3, seed);
            fd_check(&format!("{ID} {name} seed {seed}"), &loss, &case, FD_TOL);
            case.inputs[3] = None;
            fd_check(
                &format!("{ID} {name} seed {seed} no precision"),
                &loss,
                &case,
                FD_TOL,
            );
        }
    }
}

#[test]
fn harmonic_euclidean_is_mahalanobis_with_identity_precision() {
    // d_euclid = |δ|² + eps = d_mahalanobis², so p ∝ d^-n is the same with n doubled.
    let case = smooth_case(6, 5, 4, 9);
    let mut none = case.clone();
    none.inputs[3] = None;
    let mut eu = with_metric("euclidean");
    eu.set_f64("n", 1.5).unwrap();
    let mut ma = with_metric("mahalanobis");
    ma.set_f64("n", 3.0).unwrap();
    let (le, ge) = run(&eu, &none);
    let (lm, gm) = run(&ma, &none);
    assert_close("euclidean vs mahalanobis(I)", &lm, &as_f64(&le), 1e-5);
    for k in 0..2 {
        assert_close(
            "gradients",
            gm[k].as_ref().unwrap(),
            &as_f64(ge[k].as_ref().unwrap()),
            1e-5,
        );
    }
    // An absent precision is exactly the identity.
    let mut eye = none.clone();
    let d = 4;
    eye.inputs[3] = f32t(
        (0..d * d)
            .map(|k| if k % (d + 1) == 0 { 1.0 } else { 0.0 })
            .collect(),
        &[d, d],
    );
    let (la, ga) = run(&ma, &none);
    let (lb, gb) = run(&ma, &eye);
    assert_eq!(la, lb);
    assert_eq!(ga[0], gb[0]);
    assert_eq!(ga[1], gb[1]);
}

#[test]
fn harmonic_invariances() {
    let case = smooth_case(6, 5, 4, 4);
    // With a negligible eps the euclidean loss is invariant to scaling (x, w) together.
    let mut eu = with_metric("euclidean");
    eu.set_f64("eps", 1e-12).unwrap();
    let (l0, _) = run(&eu, &case);
    let mut scaled = case.clone();
    for k in 0..2 {
        let v: Vec<f32> = scaled.inputs[k]
            .as_ref()
            .unwrap()
            .f32()
            .iter()
            .map(|v| v * 3.0)
            .collect();
        set_f32(&mut scaled, k, v);
    }
    let (l1, _) = run(&eu, &scaled);
    assert_close("euclidean scale invariance", &l1, &as_f64(&l0), 1e-5);
    // Cosine distances depend on directions only.
    let cos = with_metric("cosine");
    let (l0, _) = run(&cos, &case);
    let mut stretched = case.clone();
    let d = 4;
    let v: Vec<f32> = stretched.inputs[0]
        .as_ref()
        .unwrap()
        .f32()
        .iter()
        .enumerate()
        .map(|(k, v)| v * (0.5 + (k / d) as f32))
        .collect();
    set_f32(&mut stretched, 0, v);
    let (l1, _) = run(&cos, &stretched);
    assert_close("cosine row-scale invariance", &l1, &as_f64(&l0), 1e-5);
    // Minkowski with p = 1 is Manhattan.
    let mut mk = with_metric("minkowski");
    mk.set_f64("p", 1.0).unwrap();
    let (la, ga) = run(&mk, &case);
    let (lb, gb) = run(&with_metric("manhattan"), &case);
    assert_close("minkowski p=1 vs manhattan", &la, &as_f64(&lb), 1e-6);
    assert_close(
        "its gradient",
        ga[0].as_ref().unwrap(),
        &as_f64(gb[0].as_ref().unwrap()),
        1e-6,
    );
    // Only mahalanobis reads the precision matrix: elsewhere its gradient is 0.
    for m in ["euclidean", "cosine", "hamming"] {
        let (_, g) = run(&with_metric(m), &case);
        assert!(g[3].as_ref().unwrap().iter().all(|&v| v == 0.0), "{m}");
    }
    // Scaling every distance of a row by one factor leaves the loss unchanged: a
    // mahalanobis precision scaled by 4 (eps tiny) doubles every distance.
    let mut ma = with_metric("mahalanobis");
    ma.set_f64("eps", 1e-12).unwrap();
    let (l0, _) = run(&ma, &case);
    let mut p4 = case.clone();
    let v: Vec<f32> = p4.inputs[3]
        .as_ref()
        .unwrap()
        .f32()
        .iter()
        .map(|v| v * 4.0)
        .collect();
    set_f32(&mut p4, 3, v);
    let (l1, _) = run(&ma, &p4);
    assert_close("row scale invariance", &l1, &as_f64(&l0), 1e-5);
}

#[test]
fn harmonic_tiles_agree_with_small_problems() {
    // A shape that spans several tiles and blocks (rows > 64, centres > 16, features > 64)
    // gives the same rows as computing each row alone.
    let mut rng = Rng::new(5);
    let (n, c, d) = (70, 19, 70);
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    let w: Vec<f32> = (0..c * d).map(|_| rng.normal() as f32).collect();
    let t: Vec<i64> = (0..n).map(|_| rng.below(c as u64) as i64).collect();
    let make = |rows: std::ops::Range<usize>| Case {
        dims: [("N".into(), rows.len()), ("C".into(), c), ("D".into(), d)]
            .into_iter()
            .collect(),
        inputs: vec![
            f32t(x[rows.start * d..rows.end * d].to_vec(), &[rows.len(), d]),
            f32t(w.clone(), &[c, d]),
            Some(OwnedTensor {
                data: OwnedData::I64(t[rows.clone()].to_vec()),
                shape: vec![rows.len()],
            }),
            None,
        ],
    };
    for m in ["euclidean", "chebyshev", "bray_curtis", "mahalanobis"] {
        let loss = with_metric(m);
        let (all, gall) = run(&loss, &make(0..n));
        for i in [0, 37, 69] {
            let (one, gone) = run(&loss, &make(i..i + 1));
            assert_eq!(one[0], all[i], "{m}: row {i}");
            assert_eq!(
                gone[0].as_ref().unwrap()[..],
                gall[0].as_ref().unwrap()[i * d..(i + 1) * d]
            );
        }
    }
}

#[test]
fn harmonic_rejects_bad_parameters_and_inputs() {
    for (name, v) in [
        ("n", 0.0),
        ("n", -1.0),
        ("eps", 0.0),
        ("eps", -1e-4),
        ("p", 0.99),
        ("hamming_temperature", 0.0),
        ("n", f64::NAN),
    ] {
        assert_rejects(ID, name, ParamValue::F64(v));
    }
    assert_rejects(ID, "metric", ParamValue::Enum(9));
    let loss = Context::cpu().loss(ID).unwrap();
    let mut case = smooth_case(4, 3, 2, 1);
    set_i64(&mut case, 2, vec![0, 3, 1, 2]);
    assert_input_error(&loss, &case, ErrorKind::InvalidTarget, "target[1]");
    let mut case = smooth_case(4, 3, 2, 1);
    case.inputs[1] = f32t(vec![0.5; 9], &[3, 3]);
    assert_input_error(&loss, &case, ErrorKind::ShapeMismatch, "centers");
}

/// Mahalanobis on rows sharing a large offset (1e4, where an f32 ulp is 1e-3): the expanded
/// form `(Px - Pw)·(x - w)` would lose about `1e4·ulp` per term, the centred one keeps the
/// loss within a few ulp of an f64 evaluation.
#[test]
fn harmonic_mahalanobis_is_accurate_on_offset_rows() {
    let (n, c, d) = (6, 9, 4);
    let mut rng = Rng::new(21);
    let mut rows =
        |len: usize| -> Vec<f32> { (0..len).map(|_| (1.0e4 + rng.normal()) as f32).collect() };
    let x = rows(n * d);
    let w = rows(c * d);
    let p: Vec<f32> = (0..d * d)
        .map(|e| {
            if e / d == e % d {
                1.0
            } else {
                0.05 * (e % 3) as f32
            }
        })
        .collect();
    let target: Vec<i64> = (0..n as i64).map(|i| i % c as i64).collect();
    let case = Case {
        dims: [("N", n), ("C", c), ("D", d)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
        inputs: vec![
            f32t(x.clone(), &[n, d]),
            f32t(w.clone(), &[c, d]),
            Some(OwnedTensor {
                data: OwnedData::I64(target.clone()),
                shape: vec![n],
            }),
            f32t(p.clone(), &[d, d]),
        ],
    };
    let (loss, _) = run(&with_metric("mahalanobis"), &case);
    let eps = 1e-4;
    for i in 0..n {
        let dist: Vec<f64> = (0..c)
            .map(|j| {
                let dl: Vec<f64> = (0..d)
                    .map(|k| x[i * d + k] as f64 - w[j * d + k] as f64)
                    .collect();
                let mut q = 0.0;
                for a in 0..d {
                    for b in 0..d {
                        q += dl[a] * 0.5 * (p[a * d + b] as f64 + p[b * d + a] as f64) * dl[b];
                    }
                }
                (q.max(0.0) + eps).sqrt()
            })
            .collect();
        let logits: Vec<f64> = dist.iter().map(|v| -v.ln()).collect();
        let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + logits.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        let want = lse - logits[target[i] as usize];
        let got = loss[i] as f64;
        assert!(
            (got - want).abs() <= 1e-6 + 1e-6 * want.abs(),
            "row {i}: {got} vs f64 {want}"
        );
    }
}
