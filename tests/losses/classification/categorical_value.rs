//! categorical_value: golden values, finite differences, the properties of the encodings,
//! bad parameters and inputs.

use losskit::testing::Case;
use losskit::{Compute, Context, ErrorKind, Loss, ParamValue, Reduction, Tensor, TensorMut};

use super::golden_b::*;
use crate::common::{GRAD_TOL, LOSS_TOL};

/// The target distribution `q` the loss used, read back from the gradient
/// (`d(sum)/dz = softmax(z) - q`) at zero logits, where `softmax = 1/M`.
fn encoding(loss: &Loss, m: usize, y: &[f32]) -> Vec<Vec<f64>> {
    let n = y.len();
    let z = vec![0.0f32; n * m];
    let mut l = [0.0f32];
    let mut g = vec![0.0f32; n * m];
    let mut c = Compute::new(Reduction::Sum, &mut l)
        .input(Tensor::f32(&z, &[n, m]))
        .input(Tensor::f32(y, &[n]))
        .grad(0, TensorMut::new(&mut g, &[n, m]));
    loss.compute(&mut c).unwrap();
    drop(c);
    g.chunks(m)
        .map(|r| r.iter().map(|&v| 1.0 / m as f64 - v as f64).collect())
        .collect()
}

fn centres(v_min: f64, v_max: f64, m: usize) -> Vec<f64> {
    let w = (v_max - v_min) / m as f64;
    (0..m).map(|j| v_min + (j as f64 + 0.5) * w).collect()
}

#[test]
fn categorical_value_matches_golden_values() {
    crate::golden::check_with("categorical_value", LOSS_TOL, GRAD_TOL);
}

#[test]
fn categorical_value_gradient_matches_finite_differences() {
    fd_check_all("categorical_value", &[("N", 6), ("M", 9)], &[1, 2]);
}

#[test]
fn two_hot_reconstructs_the_scalar() {
    let mut loss = Context::cpu().loss("categorical_value").unwrap();
    loss.set_enum("kind", "two_hot").unwrap();
    loss.set_f64("v_min", -3.0).unwrap();
    loss.set_f64("v_max", 5.0).unwrap();
    let m = 8;
    let c = centres(-3.0, 5.0, m);
    let y: Vec<f32> = vec![-2.5, -2.0, 0.0, 0.123, 1.5, 4.5, 3.99, -10.0, 10.0];
    for (k, q) in encoding(&loss, m, &y).iter().enumerate() {
        let total: f64 = q.iter().sum();
        assert!((total - 1.0).abs() < 1e-6, "sum q = {total}");
        let nonzero = q.iter().filter(|v| v.abs() > 1e-6).count();
        assert!(nonzero <= 2, "two-hot has {nonzero} atoms");
        let mean: f64 = q.iter().zip(&c).map(|(a, b)| a * b).sum();
        let want = (y[k] as f64).clamp(c[0], c[m - 1]);
        assert!((mean - want).abs() < 1e-5, "y = {}: decoded {mean}", y[k]);
    }
}

#[test]
fn hl_gauss_is_a_gaussian_histogram_of_the_target() {
    let loss = Context::cpu().loss("categorical_value").unwrap();
    let m = 40;
    let c = centres(-10.0, 10.0, m);
    let zeta = 0.5f64;
    let y = [0.0f32, 1.3, -2.7];
    for (k, q) in encoding(&loss, m, &y).iter().enumerate() {
        let total: f64 = q.iter().sum();
        assert!((total - 1.0).abs() < 1e-6, "sum q = {total}");
        assert!(q.iter().all(|&v| v >= -1e-7), "negative mass");
        // Far from the support's ends the histogram's mean is the target, and its variance
        // that of the Gaussian plus the bin quantisation (sigma = 0.75 zeta).
        let mean: f64 = q.iter().zip(&c).map(|(a, b)| a * b).sum();
        assert!(
            (mean - y[k] as f64).abs() < 1e-5,
            "mean {mean} for {}",
            y[k]
        );
        let var: f64 = q.iter().zip(&c).map(|(a, b)| a * (b - mean).powi(2)).sum();
        let want = (0.75 * zeta).powi(2) + zeta * zeta / 12.0;
        assert!(
            (var - want).abs() < 2e-3,
            "variance {var}, want about {want}"
        );
    }
    // Targets outside the support are clamped to its ends, not refused.
    let q = encoding(&loss, m, &[25.0, 10.0]);
    for (a, b) in q[0].iter().zip(&q[1]) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn categorical_value_is_minimal_at_the_target_distribution() {
    // The loss equals the entropy of q when log softmax(z) = log q, its minimum.
    let loss = Context::cpu().loss("categorical_value").unwrap();
    let m = 12;
    let y = [0.7f32];
    let q = &encoding(&loss, m, &y)[0];
    let z: Vec<f32> = q.iter().map(|&v| v.max(1e-30).ln() as f32).collect();
    let mut l = [0.0f32];
    let mut c = Compute::new(Reduction::Sum, &mut l)
        .input(Tensor::f32(&z, &[1, m]))
        .input(Tensor::f32(&y, &[1]));
    loss.compute(&mut c).unwrap();
    drop(c);
    let h: f64 = q.iter().filter(|&&v| v > 0.0).map(|&v| -v * v.ln()).sum();
    assert!(
        (l[0] as f64 - h).abs() < 1e-4,
        "loss {} vs entropy {h}",
        l[0]
    );
}

#[test]
fn categorical_value_rejects_bad_parameters_and_inputs() {
    let id = "categorical_value";
    assert_rejects(id, "v_max", ParamValue::F64(-10.0));
    assert_rejects(id, "v_max", ParamValue::F64(-20.0));
    assert_rejects(id, "v_min", ParamValue::F64(10.0));
    assert_rejects(id, "v_min", ParamValue::F64(f64::NEG_INFINITY));
    assert_rejects(id, "v_max", ParamValue::F64(f64::NAN));
    assert_rejects(id, "sigma_ratio", ParamValue::F64(0.0));
    assert_rejects(id, "sigma_ratio", ParamValue::F64(-1.0));
    assert_rejects(id, "kind", ParamValue::Enum(2));
    let ctx = Context::cpu();
    let loss = ctx.loss(id).unwrap();
    let mut case = Case::random(&loss, &Default::default(), 3, false);
    let mut t = case.inputs[1].as_ref().unwrap().f32().to_vec();
    t[4] = f32::NAN;
    set_f32(&mut case, 1, t);
    assert_input_error(&loss, &case, ErrorKind::InvalidInput, "target[4]");
    let mut two = ctx.loss(id).unwrap();
    two.set_enum("kind", "two_hot").unwrap();
    let dims = [("M".to_string(), 1usize)].into_iter().collect();
    let case = Case::random(&two, &dims, 3, false);
    assert_input_error(&two, &case, ErrorKind::ShapeMismatch, "M = 1");
    // One bin is fine for HL-Gauss: q = 1, the loss is 0.
    let o = Case::random(&loss, &dims, 3, false)
        .run(&loss, Reduction::Sum, true, None)
        .unwrap();
    assert_eq!(o.loss[0], 0.0);
}
