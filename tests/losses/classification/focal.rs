//! focal: golden values, gradients, and the paper's properties (γ = 0 is weighted
//! cross-entropy; the modulating factor only lowers the loss).

use std::collections::BTreeMap;

use losskit::ParamValue::F64;
use losskit::testing::Case;
use losskit::{Context, Reduction};

use super::helpers::*;
use crate::common::{GRAD_TOL, LOSS_TOL, assert_close};

#[test]
fn focal_matches_golden() {
    crate::golden::check("focal");
}

#[test]
fn focal_gradients_match_finite_differences() {
    gradcheck_all("focal");
}

#[test]
fn focal_ignored_rows_contribute_nothing() {
    check_ignored_rows("focal");
}

#[test]
fn focal_rejects_bad_gamma() {
    for v in [-1e-9, -1.0, f64::NAN, f64::INFINITY] {
        expect_invalid_param("focal", "gamma", F64(v));
    }
    expect_valid_param("focal", "gamma", F64(0.0));
}

#[test]
fn focal_gamma_zero_is_weighted_cross_entropy() {
    let focal = with_params("focal", &[("gamma", F64(0.0))]);
    let ce = Context::cpu().loss("cross_entropy").unwrap();
    let dims = BTreeMap::from([("N".to_string(), 9), ("C".to_string(), 6)]);
    let fc = Case::random(&focal, &dims, 3, true);
    let mut cc = fc.clone();
    cc.inputs.push(None); // cross_entropy's sample_weight
    for red in REDUCTIONS {
        let a = fc.run(&focal, red, true, None).unwrap();
        let b = cc.run(&ce, red, true, None).unwrap();
        let want: Vec<f64> = b.loss.iter().map(|&v| v as f64).collect();
        assert_close(
            &format!("focal(0) vs ce {}", red.name()),
            &a.loss,
            &want,
            LOSS_TOL,
        );
        let wg: Vec<f64> = b.grads[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        assert_close(
            "focal(0) grad vs ce",
            a.grads[0].as_ref().unwrap(),
            &wg,
            GRAD_TOL,
        );
    }
}

#[test]
fn focal_is_below_cross_entropy_and_decreases_with_gamma() {
    let ce = Context::cpu().loss("cross_entropy").unwrap();
    let dims = BTreeMap::from([("N".to_string(), 12), ("C".to_string(), 5)]);
    let base = with_params("focal", &[("gamma", F64(0.0))]);
    let fc = Case::random(&base, &dims, 8, false);
    let mut cc = fc.clone();
    cc.inputs.push(None);
    let ce_rows = cc.run(&ce, Reduction::None, false, None).unwrap().loss;
    let mut prev = ce_rows.clone();
    for g in [0.5, 1.0, 2.0, 5.0] {
        let rows = rows_of(&with_params("focal", &[("gamma", F64(g))]), &fc);
        for (i, (&r, &p)) in rows.iter().zip(&prev).enumerate() {
            assert!(r <= p + 1e-7, "gamma {g} row {i}: {r} > {p}");
            assert!(r >= 0.0);
        }
        prev = rows;
    }
}

#[test]
fn focal_is_finite_at_certainty() {
    // p_y = 1 in f32: the gradient must be finite (0) for every gamma, including gamma < 1.
    for g in [0.0, 0.3, 2.0] {
        let l = with_params("focal", &[("gamma", F64(g))]);
        let c = case_of(
            &l,
            &[
                ("logits", &[1, 3], &[200.0, 0.0, -5.0]),
                ("target", &[1], &[0.0]),
            ],
        );
        let o = c.run(&l, Reduction::Sum, true, None).unwrap();
        assert!(o.loss[0].abs() < 1e-30, "gamma {g}: {:?}", o.loss);
        assert!(
            o.grads[0]
                .as_ref()
                .unwrap()
                .iter()
                .all(|v| v.is_finite() && v.abs() < 1e-30)
        );
    }
}
