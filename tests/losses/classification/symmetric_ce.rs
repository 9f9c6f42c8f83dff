//! symmetric_ce: golden values, gradients of both inputs, and its symmetry (swapping student
//! and teacher with α -> 1 - α swaps nothing in the value and swaps the gradients; α = 0 is
//! the soft-target cross-entropy, i.e. distillation KL at T = 1 plus the teacher entropy).

use std::collections::BTreeMap;

use losskit::ParamValue::F64;
use losskit::Reduction;
use losskit::testing::Case;

use super::helpers::*;
use crate::common::{GRAD_TOL, LOSS_TOL, assert_close};

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn symmetric_ce_matches_golden() {
    crate::golden::check("symmetric_ce");
}

#[test]
fn symmetric_ce_gradients_match_finite_differences() {
    gradcheck_all("symmetric_ce");
}

#[test]
fn symmetric_ce_rejects_bad_alpha() {
    for v in [-1e-9, 1.0000001, f64::NAN, f64::INFINITY] {
        expect_invalid_param("symmetric_ce", "alpha", F64(v));
    }
    expect_valid_param("symmetric_ce", "alpha", F64(0.0));
    expect_valid_param("symmetric_ce", "alpha", F64(1.0));
}

#[test]
fn swapping_student_and_teacher_mirrors_alpha() {
    let dims = BTreeMap::from([("N".to_string(), 7), ("C".to_string(), 9)]);
    for al in [0.5, 0.2, 0.0, 1.0] {
        let a = with_params("symmetric_ce", &[("alpha", F64(al))]);
        let b = with_params("symmetric_ce", &[("alpha", F64(1.0 - al))]);
        let case = Case::random(&a, &dims, 81, false);
        let mut swapped = case.clone();
        swapped.inputs.swap(0, 1);
        for red in REDUCTIONS {
            let x = case.run(&a, red, true, None).unwrap();
            let y = swapped.run(&b, red, true, None).unwrap();
            assert_close("swapped value", &x.loss, &f64s(&y.loss), LOSS_TOL);
            let (xs, xt) = (x.grads[0].as_ref().unwrap(), x.grads[1].as_ref().unwrap());
            let (ys, yt) = (y.grads[0].as_ref().unwrap(), y.grads[1].as_ref().unwrap());
            assert_close(
                "student grad = swapped teacher grad",
                xs,
                &f64s(yt),
                GRAD_TOL,
            );
            assert_close(
                "teacher grad = swapped student grad",
                xt,
                &f64s(ys),
                GRAD_TOL,
            );
        }
    }
    // At alpha = 0.5 the loss is symmetric in its two inputs.
    let h = with_params("symmetric_ce", &[]);
    let case = Case::random(&h, &dims, 82, false);
    let mut swapped = case.clone();
    swapped.inputs.swap(0, 1);
    assert_close(
        "symmetric",
        &rows_of(&h, &case),
        &f64s(&rows_of(&h, &swapped)),
        1e-6,
    );
}

#[test]
fn alpha_zero_is_kd_kl_at_t1_plus_teacher_entropy() {
    let dims = BTreeMap::from([("N".to_string(), 6), ("C".to_string(), 5)]);
    let sce = with_params("symmetric_ce", &[("alpha", F64(0.0))]);
    let kd = with_params("kd_kl", &[]);
    let case = Case::random(&sce, &dims, 83, false);
    let a = case.run(&sce, Reduction::None, true, None).unwrap();
    let b = case.run(&kd, Reduction::None, true, None).unwrap();
    let t = case.inputs[1].as_ref().unwrap().f32();
    let want: Vec<f64> = (0..6)
        .map(|i| {
            let row: Vec<f64> = t[i * 5..(i + 1) * 5].iter().map(|&v| v as f64).collect();
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            let ent: f64 = -row.iter().map(|v| (v - lse).exp() * (v - lse)).sum::<f64>();
            b.loss[i] as f64 + ent
        })
        .collect();
    assert_close("sce(0) = kd + H(q)", &a.loss, &want, LOSS_TOL);
    let wg = f64s(b.grads[0].as_ref().unwrap());
    assert_close(
        "student gradients",
        a.grads[0].as_ref().unwrap(),
        &wg,
        GRAD_TOL,
    );
}
