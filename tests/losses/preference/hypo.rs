//! hypo: goldens (value and the defined gradient), finite differences where the gradient is
//! a true derivative (the DPO part), the leave-one-out estimator (sums to zero, blind to a
//! common shift of κ), λ = 0 is DPO, bad input.

use std::collections::BTreeMap;

use losskit::ParamValue::F64;
use losskit::testing::{Case, gradcheck};
use losskit::{Compute, ErrorKind, Loss, Reduction, Tensor, TensorMut};

use super::{close, golden, rows_of, set_err, settings, with};
use crate::common::FD_TOL;

const ID: &str = "hypo";

#[test]
fn golden_values() {
    golden(ID);
}

#[test]
fn dpo_part_matches_finite_differences() {
    let dims: BTreeMap<String, usize> = [("B".to_string(), 5), ("K".to_string(), 3)].into();
    assert!(loss_def_is_surrogate());
    for (s, l) in settings(ID).iter().enumerate() {
        let case = Case::random(l, &dims, 31 + s as u64, false);
        for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            let reps = gradcheck(l, &case, red, 40).unwrap();
            let mut seen = 0;
            for r in reps {
                if r.input == "online_logps" {
                    continue;
                }
                seen += 1;
                assert!(r.max_abs < FD_TOL || r.max_rel < FD_TOL, "{red:?}: {r:?}");
            }
            assert_eq!(seen, 2);
        }
    }
}

fn loss_def_is_surrogate() -> bool {
    super::loss(ID).def().surrogate_gradient.is_some()
}

/// Per-row losses and the gradient of the sum with respect to `online_logps`.
fn run(l: &Loss, k: usize, pair: [&[f32]; 4], on: &[f32], onr: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let b = pair[0].len();
    let mut out = vec![0.0f32; 1];
    let mut g = vec![f32::NAN; b * k];
    {
        let mut c = Compute::new(Reduction::Sum, &mut out);
        for t in pair {
            c = c.input(Tensor::f32(t, &[b]));
        }
        c = c
            .input(Tensor::f32(on, &[b, k]))
            .input(Tensor::f32(onr, &[b, k]))
            .grad(4, TensorMut::new(&mut g, &[b, k]));
        l.compute(&mut c).unwrap();
    }
    (out, g)
}

#[test]
fn online_gradient_is_the_leave_one_out_estimator() {
    let (pc, pr, rc, rr) = (
        [-10.0f32, -4.0],
        [-9.0f32, -7.0],
        [-9.5f32, -5.0],
        [-8.0f32, -6.0],
    );
    let k = 3;
    let on = [-5.0f32, -7.0, -6.0, -2.0, -3.0, -9.0];
    let onr = [-6.0f32, -6.5, -5.0, -2.5, -4.0, -8.0];
    let lam = 0.6;
    let l = with(ID, &[("lam", F64(lam))]);
    let (total, g) = run(&l, k, [&pc, &pr, &rc, &rr], &on, &onr);
    for i in 0..2 {
        let kap: Vec<f64> = (0..k)
            .map(|j| on[i * k + j] as f64 - onr[i * k + j] as f64)
            .collect();
        let sum: f64 = kap.iter().sum();
        for j in 0..k {
            let want = lam / k as f64 * (kap[j] - (sum - kap[j]) / (k - 1) as f64);
            assert!((g[i * k + j] as f64 - want).abs() < 1e-6);
        }
        let row: f64 = g[i * k..(i + 1) * k].iter().map(|&v| v as f64).sum();
        assert!(row.abs() < 1e-6, "row {i}: estimator sums to {row}");
    }
    // A common shift of κ in a row moves the value by λ·shift, not the gradient.
    let shifted: Vec<f32> = on.iter().map(|v| v - 1.5).collect();
    let (t2, g2) = run(&l, k, [&pc, &pr, &rc, &rr], &shifted, &onr);
    close(&g2, &g, 1e-6);
    assert!(((t2[0] - total[0]) as f64 + 2.0 * lam * 1.5).abs() < 1e-5);
}

#[test]
fn lam_zero_is_dpo() {
    let (pc, pr, rc, rr) = (
        [-10.0f32, -4.0],
        [-9.0f32, -7.0],
        [-9.5f32, -5.0],
        [-8.0f32, -6.0],
    );
    let mut out = vec![0.0f32; 2];
    let on = [-5.0f32, -7.0, -2.0, -3.0];
    {
        let l = with(ID, &[("lam", F64(0.0)), ("beta", F64(0.4))]);
        let mut c = Compute::new(Reduction::None, &mut out);
        for t in [&pc, &pr, &rc, &rr] {
            c = c.input(Tensor::f32(t, &[2]));
        }
        c = c
            .input(Tensor::f32(&on, &[2, 2]))
            .input(Tensor::f32(&on, &[2, 2]));
        l.compute(&mut c).unwrap();
    }
    let dpo = rows_of(
        &with("dpo", &[("beta", F64(0.4))]),
        &[
            ("policy_chosen_logps", &pc),
            ("policy_rejected_logps", &pr),
            ("ref_chosen_logps", &rc),
            ("ref_rejected_logps", &rr),
        ],
    )
    .unwrap();
    close(&out, &dpo, 1e-6);
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(set_err(ID, &[], "lam", F64(-0.1)), ErrorKind::InvalidParam);
    assert_eq!(set_err(ID, &[], "beta", F64(0.0)), ErrorKind::InvalidParam);
    let one = [-1.0f32];
    let mut out = vec![0.0f32; 1];
    let l = with(ID, &[]);
    let mut c = Compute::new(Reduction::Sum, &mut out);
    for _ in 0..4 {
        c = c.input(Tensor::f32(&one, &[1]));
    }
    c = c
        .input(Tensor::f32(&one, &[1, 1]))
        .input(Tensor::f32(&one, &[1, 1]));
    assert_eq!(l.compute(&mut c).unwrap_err().kind, ErrorKind::InvalidInput);
}
