//! smooth_adv_comp_sum: golden values, gradients of both logit inputs, and its structure
//! (no adversarial change gives the comp-sum loss and a zero subgradient; the regulariser is
//! 1-homogeneous in the change and linear in ν).

use std::collections::BTreeMap;

use losskit::ParamValue::{Enum, F64};
use losskit::Reduction;
use losskit::testing::{Case, OwnedData, OwnedTensor};

use super::helpers::*;
use crate::common::{GRAD_TOL, LOSS_TOL, assert_close};

fn set_adv(case: &mut Case, f: impl Fn(usize, f32, f32) -> f32) {
    let z = case.inputs[0].as_ref().unwrap().f32().to_vec();
    let c = case.inputs[0].as_ref().unwrap().shape[1];
    if let Some(OwnedTensor {
        data: OwnedData::F32(a),
        ..
    }) = &mut case.inputs[1]
    {
        for (k, v) in a.iter_mut().enumerate() {
            *v = f(k / c, z[k], *v);
        }
    }
}

#[test]
fn smooth_adv_comp_sum_matches_golden() {
    crate::golden::check("smooth_adv_comp_sum");
}

#[test]
fn smooth_adv_comp_sum_gradients_match_finite_differences() {
    gradcheck_all("smooth_adv_comp_sum");
}

#[test]
fn smooth_adv_comp_sum_ignored_rows_contribute_nothing() {
    check_ignored_rows("smooth_adv_comp_sum");
}

#[test]
fn smooth_adv_comp_sum_rejects_bad_params() {
    for v in [-1e-9, f64::NAN, f64::INFINITY] {
        expect_invalid_param("smooth_adv_comp_sum", "nu", F64(v));
    }
    expect_invalid_param("smooth_adv_comp_sum", "q", F64(0.0));
    expect_invalid_param("smooth_adv_comp_sum", "tau", F64(-1.0));
    expect_invalid_param("smooth_adv_comp_sum", "kind", Enum(9));
    expect_valid_param("smooth_adv_comp_sum", "nu", F64(0.0));
}

#[test]
fn no_adversarial_change_is_the_comp_sum_loss_with_zero_adv_gradient() {
    let dims = BTreeMap::from([("N".to_string(), 8), ("C".to_string(), 5)]);
    for kind in 0..5 {
        let l = with_params(
            "smooth_adv_comp_sum",
            &[("kind", Enum(kind)), ("nu", F64(3.0))],
        );
        let cs = with_params("comp_sum", &[("kind", Enum(kind))]);
        let mut case = Case::random(&l, &dims, 31, false);
        // adv = logits: the margin vector does not move (R = 0, zero subgradient). A
        // per-row constant shift would also leave it in place, but not after f32 rounding.
        set_adv(&mut case, |_, z, _| z);
        let mut cs_case = case.clone();
        cs_case.inputs.remove(1);
        for red in REDUCTIONS {
            let a = case.run(&l, red, true, None).unwrap();
            let b = cs_case.run(&cs, red, true, None).unwrap();
            let want: Vec<f64> = b.loss.iter().map(|&v| v as f64).collect();
            assert_close("nu*0 + comp_sum", &a.loss, &want, LOSS_TOL);
            let wg: Vec<f64> = b.grads[0]
                .as_ref()
                .unwrap()
                .iter()
                .map(|&v| v as f64)
                .collect();
            assert_close("logits grad", a.grads[0].as_ref().unwrap(), &wg, GRAD_TOL);
            assert!(a.grads[1].as_ref().unwrap().iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn regulariser_is_linear_in_nu_and_homogeneous_in_the_change() {
    let dims = BTreeMap::from([("N".to_string(), 6), ("C".to_string(), 7)]);
    let l0 = with_params("smooth_adv_comp_sum", &[("nu", F64(0.0))]);
    let l1 = with_params("smooth_adv_comp_sum", &[("nu", F64(1.0))]);
    let l2 = with_params("smooth_adv_comp_sum", &[("nu", F64(2.5))]);
    let case = Case::random(&l0, &dims, 32, false);
    let r0 = rows_of(&l0, &case);
    let r1 = rows_of(&l1, &case);
    let r2 = rows_of(&l2, &case);
    let mut doubled = case.clone();
    set_adv(&mut doubled, |_, z, a| z + 2.0 * (a - z));
    let r1d = rows_of(&l1, &doubled);
    for i in 0..r0.len() {
        let reg = (r1[i] - r0[i]) as f64;
        assert!(reg >= 0.0);
        assert!(
            ((r2[i] - r0[i]) as f64 - 2.5 * reg).abs() < 1e-5 * (1.0 + reg),
            "row {i}"
        );
        assert!(
            ((r1d[i] - r0[i]) as f64 - 2.0 * reg).abs() < 1e-5 * (1.0 + reg),
            "row {i}"
        );
    }
    // Reductions agree with the rows.
    let s = case.run(&l1, Reduction::Sum, false, None).unwrap().loss[0] as f64;
    assert!((s - r1.iter().map(|&v| v as f64).sum::<f64>()).abs() < 1e-5 * (1.0 + s.abs()));
}
