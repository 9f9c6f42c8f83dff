//! Shared helpers of the test binaries: tolerances and comparison with a report.
#![allow(dead_code)]

use std::path::PathBuf;

/// Loss-value tolerance of f32 results against an f64 reference (absolute and relative).
pub const LOSS_TOL: f64 = 2e-5;
/// Gradient tolerance of f32 results against an f64 reference.
pub const GRAD_TOL: f64 = 2e-5;
/// Tolerance of the finite-difference check (f32 loss values, central differences).
pub const FD_TOL: f64 = 2e-3;

/// `|a - b| <= tol * (1 + |b|)` for every element, with a message naming the worst one.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} != {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0.0f64);
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() / (1.0 + w.abs());
        if err.is_nan() || err > worst.1 {
            worst = (k, if err.is_nan() { f64::INFINITY } else { err });
        }
    }
    assert!(
        worst.1 <= tol,
        "{what}: element {} is {} but the reference is {} (scaled error {:.3e} > {tol:.1e})",
        worst.0,
        got[worst.0],
        want[worst.0],
        worst.1
    );
}

/// Path of a golden file under tests/golden/.
pub fn golden_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(rel)
}
