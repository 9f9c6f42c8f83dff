//! dco: golden values, finite differences, the properties the paper states, bad input.

use losskit::testing::Case;
use losskit::{Compute, Context, ErrorKind, ParamValue, Reduction, Tensor, TensorMut};

use super::golden_b::*;
use crate::common::{GRAD_TOL, LOSS_TOL};

/// Per-sample losses and `d(sum)/dlogp` for `logp` with `n_pass`.
fn run(n_pass: f64, logp: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut loss = Context::cpu().loss("dco").unwrap();
    loss.set_f64("n_pass", n_pass).unwrap();
    let mut l = vec![0.0f32; logp.len()];
    let mut g = vec![0.0f32; logp.len()];
    let mut c = Compute::new(Reduction::None, &mut l)
        .input(Tensor::f32(logp, &[logp.len()]))
        .grad(0, TensorMut::new(&mut g, &[logp.len()]));
    loss.compute(&mut c).unwrap();
    drop(c);
    (l, g)
}

#[test]
fn dco_matches_golden_values() {
    crate::golden::check_with("dco", LOSS_TOL, GRAD_TOL);
}

#[test]
fn dco_gradient_matches_finite_differences() {
    fd_check_all("dco", &[("N", 7)], &[1, 2, 3]);
}

#[test]
fn dco_with_one_attempt_is_cross_entropy() {
    let logp = [-0.01f32, -0.5, -2.0, -9.0, -80.0];
    let (l, g) = run(1.0, &logp);
    for (k, &v) in logp.iter().enumerate() {
        assert!(
            (l[k] + v).abs() <= 1e-6 * (1.0 + v.abs()),
            "l[{k}] = {}",
            l[k]
        );
        assert!((g[k] + 1.0).abs() <= 1e-6, "g[{k}] = {}", g[k]);
    }
}

#[test]
fn dco_factor_limits_confidence() {
    // F = -dl/dlogp lies in (0, 1], vanishes once p >> 1/N and tends to 1 for p << 1/N.
    let n = 16.0f64;
    let logp: Vec<f32> = (0..60).map(|k| -0.02 - 0.25 * k as f32).collect();
    let (l, g) = run(n, &logp);
    let mut prev = 0.0f32;
    for (k, &v) in logp.iter().enumerate() {
        let f = -g[k];
        assert!(f > 0.0 && f <= 1.0, "F = {f} at logp {v}");
        assert!(
            f >= prev,
            "F must grow as p falls: {f} < {prev} at logp {v}"
        );
        prev = f;
        let p = (v as f64).exp();
        let want = -(1.0 - (1.0 - p).powf(n)).ln();
        assert!(
            (l[k] as f64 - want).abs() <= 1e-5 * (1.0 + want),
            "l({v}) = {}",
            l[k]
        );
        let fw = n * p * (1.0 - p).powf(n - 1.0) / (1.0 - (1.0 - p).powf(n));
        assert!((f as f64 - fw).abs() <= 1e-5, "F({v}) = {f}, want {fw}");
    }
    // p = 0.98: far above 1/N, the factor is tiny.
    let (_, g) = run(n, &[(0.98f32).ln()]);
    assert!(-g[0] < 1e-20, "F = {}", -g[0]);
    // Very confident wrong answers: l -> -log N - logp and F -> 1, with no overflow.
    let (l, g) = run(n, &[-200.0, -1000.0, f32::NEG_INFINITY]);
    assert!(
        (l[0] as f64 - (200.0 - n.ln())).abs() < 1e-3,
        "l = {}",
        l[0]
    );
    assert!(
        (l[1] as f64 - (1000.0 - n.ln())).abs() < 1e-2,
        "l = {}",
        l[1]
    );
    assert_eq!(l[2], f32::INFINITY);
    assert!((g[0] + 1.0).abs() < 1e-6 && (g[1] + 1.0).abs() < 1e-6 && g[2] == -1.0);
    // A certain answer costs nothing and gets no gradient (F = 1 only when N = 1).
    let (l, g) = run(n, &[0.0]);
    assert_eq!((l[0], g[0]), (0.0, 0.0));
    let (l, g) = run(1.0, &[0.0]);
    assert_eq!((l[0], g[0]), (0.0, -1.0));
}

#[test]
fn dco_rejects_bad_parameters_and_inputs() {
    for v in [0.999, 0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_rejects("dco", "n_pass", ParamValue::F64(v));
    }
    let loss = Context::cpu().loss("dco").unwrap();
    let mut case = Case::random(&loss, &Default::default(), 5, false);
    let mut v = case.inputs[0].as_ref().unwrap().f32().to_vec();
    v[2] = 0.25;
    set_f32(&mut case, 0, v);
    assert_input_error(&loss, &case, ErrorKind::InvalidInput, "logp[2]");
}
