//! amp_entropy: golden values, finite differences, the invariances of a Gram-matrix entropy,
//! edge cases and bad parameters.

use std::collections::BTreeMap;

use losskit::testing::{Case, Rng};
use losskit::{Context, ErrorKind, Loss, ParamValue, Reduction};

use super::golden_b::*;
use crate::common::{GRAD_TOL, LOSS_TOL, assert_close};

const ID: &str = "amp_entropy";

fn dims(n: usize, d: usize) -> BTreeMap<String, usize> {
    [("N".to_string(), n), ("D".to_string(), d)]
        .into_iter()
        .collect()
}

fn value(loss: &Loss, case: &Case) -> (f32, Vec<f32>) {
    let o = case.run(loss, Reduction::Mean, true, None).unwrap();
    (o.loss[0], o.grads[0].clone().unwrap())
}

#[test]
fn amp_entropy_matches_golden_values() {
    crate::golden::check_with(ID, LOSS_TOL, GRAD_TOL);
}

#[test]
fn amp_entropy_gradient_matches_finite_differences() {
    fd_check_all(ID, &[("N", 6), ("D", 8)], &[1, 2]);
    fd_check_all(ID, &[], &[3]);
}

#[test]
fn amp_entropy_is_invariant_to_rotations_permutations_and_row_scales() {
    let loss = Context::cpu().loss(ID).unwrap();
    let (n, d) = (8, 3);
    let case = Case::random(&loss, &dims(n, d), 3, false);
    let x = case.inputs[0].as_ref().unwrap().f32().to_vec();
    let (l0, g0) = value(&loss, &case);
    // A rotation of the feature space keeps every similarity.
    let (cs, sn) = (0.6f32, 0.8f32);
    let mut rot = case.clone();
    let xr: Vec<f32> = x
        .chunks(d)
        .flat_map(|r| [cs * r[0] - sn * r[1], sn * r[0] + cs * r[1], r[2]])
        .collect();
    set_f32(&mut rot, 0, xr);
    let (l1, _) = value(&loss, &rot);
    assert!((l1 - l0).abs() < 1e-5, "rotation: {l1} vs {l0}");
    // Permuting the batch permutes the rows of the softmax: same mean entropy, permuted
    // gradient.
    let perm = [3, 0, 7, 1, 6, 2, 5, 4];
    let mut pc = case.clone();
    set_f32(
        &mut pc,
        0,
        perm.iter()
            .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
            .collect(),
    );
    let (l2, g2) = value(&loss, &pc);
    assert!((l2 - l0).abs() < 1e-5, "permutation: {l2} vs {l0}");
    let want: Vec<f64> = perm
        .iter()
        .flat_map(|&i| {
            g0[i * d..(i + 1) * d]
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_close("permuted gradient", &g2, &want, 1e-5);
    // With normalisation the scale of each row does not matter, and the gradient is
    // orthogonal to the row.
    let mut sc = case.clone();
    set_f32(
        &mut sc,
        0,
        x.iter()
            .enumerate()
            .map(|(k, v)| v * (0.3 + (k / d) as f32))
            .collect(),
    );
    let (l3, _) = value(&loss, &sc);
    assert!((l3 - l0).abs() < 1e-5, "row scales: {l3} vs {l0}");
    for i in 0..n {
        let dot: f32 = (0..d).map(|k| x[i * d + k] * g0[i * d + k]).sum();
        assert!(dot.abs() < 1e-5, "row {i}: gradient not tangent ({dot})");
    }
}

#[test]
fn amp_entropy_edge_cases() {
    let loss = Context::cpu().loss(ID).unwrap();
    // One row: its softmax is a point mass, so H = 0 and the gradient is 0.
    let one = Case::random(&loss, &dims(1, 4), 1, false);
    let (l, g) = value(&loss, &one);
    assert_eq!(l, 0.0);
    assert!(g.iter().all(|&v| v == 0.0));
    // Identical rows: the softmax is uniform, H = log N.
    let mut same = Case::random(&loss, &dims(5, 3), 1, false);
    set_f32(&mut same, 0, [0.3f32, -1.2, 0.7].repeat(5));
    let (l, _) = value(&loss, &same);
    assert!((l as f64 - 5f64.ln()).abs() < 1e-6, "{l}");
    // Empty batch: 0; reduction none is refused.
    let empty = Case::random(&loss, &dims(0, 3), 1, false);
    assert_eq!(value(&loss, &empty).0, 0.0);
    let e = one.run(&loss, Reduction::None, false, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    // Upstream gradient scales the gradient only.
    let case = Case::random(&loss, &dims(6, 4), 2, false);
    let a = case.run(&loss, Reduction::Sum, true, None).unwrap();
    let b = case
        .run(&loss, Reduction::Sum, true, Some(&[-2.5]))
        .unwrap();
    assert_eq!(a.loss, b.loss);
    let want: Vec<f64> = a.grads[0]
        .as_ref()
        .unwrap()
        .iter()
        .map(|&v| -2.5 * v as f64)
        .collect();
    assert_close("grad_output", b.grads[0].as_ref().unwrap(), &want, 1e-6);
    // Large batches use several tiles and the result does not depend on them.
    let mut rng = Rng::new(3);
    let (n, d) = (150, 70);
    let mut big = Case::random(&loss, &dims(n, d), 1, false);
    set_f32(
        &mut big,
        0,
        (0..n * d).map(|_| rng.normal() as f32).collect(),
    );
    let (l1, g1) = value(&loss, &big);
    let (l2, g2) = value(&loss, &big);
    assert_eq!((l1, &g1), (l2, &g2));
    assert!(l1 > 0.0 && l1 < (n as f32).ln());
}

#[test]
fn amp_entropy_rejects_bad_parameters() {
    for v in [0.0, -20.0, f64::NAN, f64::INFINITY] {
        assert_rejects(ID, "temp_inv", ParamValue::F64(v));
    }
    assert_rejects(ID, "normalize", ParamValue::F64(1.0));
}
