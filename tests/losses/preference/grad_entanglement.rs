//! grad_entanglement: goldens (cos per pair and the `stats` output), δ_w and δ_l are the
//! first-order changes of log π_w and log π_l under a step on the margin (a linear model),
//! orthogonal gradients disentangle, identical ones freeze both log-probs, bad parameters.

use losskit::ParamValue::F64;
use losskit::{Compute, ErrorKind, Loss, Reduction, Tensor, TensorMut};

use super::{golden, set_err, with};

const ID: &str = "grad_entanglement";

#[test]
fn golden_values() {
    golden(ID);
}

fn stats(l: &Loss, gw: &[f32], gl: &[f32]) -> Vec<f32> {
    let d = gw.len();
    let mut out = vec![0.0f32; 1];
    let mut s = vec![f32::NAN; 8];
    {
        let mut c = Compute::new(Reduction::None, &mut out)
            .input(Tensor::f32(gw, &[1, d]))
            .input(Tensor::f32(gl, &[1, d]))
            .aux("stats", TensorMut::new(&mut s, &[1, 8]));
        l.compute(&mut c).unwrap();
    }
    assert_eq!(out[0], s[3], "the value is cos");
    s
}

#[test]
fn deltas_are_first_order_changes_of_the_log_probs() {
    // Linear model: log π_w = ⟨g_w, θ⟩, log π_l = ⟨g_l, θ⟩; ascend m = λ_w log π_w − λ_l log π_l.
    let gw = [0.5f32, -1.0, 2.0, 0.25];
    let gl = [0.75f32, -0.5, 1.0, 1.5];
    let (lw, ll) = (0.5f64, 0.2f64);
    let l = with(ID, &[("lambda_w", F64(lw)), ("lambda_l", F64(ll))]);
    let s = stats(&l, &gw, &gl);
    let eta = 1e-3;
    let step: Vec<f64> = (0..4)
        .map(|j| eta * (lw * gw[j] as f64 - ll * gl[j] as f64))
        .collect();
    let dw: f64 = (0..4).map(|j| gw[j] as f64 * step[j]).sum();
    let dl: f64 = (0..4).map(|j| gl[j] as f64 * step[j]).sum();
    assert!((dw / eta - s[6] as f64).abs() < 1e-5, "{dw} vs {}", s[6]);
    assert!((dl / eta - s[7] as f64).abs() < 1e-5, "{dl} vs {}", s[7]);
    // Conditions: the chosen log-prob rises iff ip < (λ_w/λ_l) n_w.
    let (ip, nw, nl) = (s[0] as f64, s[1] as f64, s[2] as f64);
    assert_eq!(s[6] > 0.0, ip < lw / ll * nw);
    assert_eq!(s[7] < 0.0, ip < ll / lw * nl);
}

#[test]
fn orthogonal_gradients_disentangle_and_identical_ones_freeze() {
    let l = with(ID, &[]);
    let s = stats(&l, &[1.0, 0.0, 2.0], &[0.0, 3.0, 0.0]);
    assert_eq!(s[0], 0.0);
    assert!(s[6] > 0.0 && s[7] < 0.0);
    let s = stats(&l, &[1.0, -2.0, 2.0], &[1.0, -2.0, 2.0]);
    assert!((s[3] - 1.0).abs() < 1e-6);
    assert_eq!((s[6], s[7]), (0.0, 0.0));
    let s = stats(&l, &[0.0, 0.0], &[1.0, 1.0]);
    assert_eq!((s[3], s[4], s[5]), (0.0, 0.0, 0.0));
}

#[test]
fn bad_parameters_are_rejected() {
    for name in ["lambda_w", "lambda_l"] {
        assert_eq!(set_err(ID, &[], name, F64(0.0)), ErrorKind::InvalidParam);
    }
}
