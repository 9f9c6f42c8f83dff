//! poly1: golden values, gradients, and the paper's properties (ε = 0 is cross-entropy; the
//! loss is CE + ε(1 - p_y)).

use std::collections::BTreeMap;

use losskit::ParamValue::F64;
use losskit::testing::Case;
use losskit::{Context, Reduction};

use super::helpers::*;
use crate::common::{GRAD_TOL, LOSS_TOL, assert_close};

#[test]
fn poly1_matches_golden() {
    crate::golden::check("poly1");
}

#[test]
fn poly1_gradients_match_finite_differences() {
    gradcheck_all("poly1");
}

#[test]
fn poly1_ignored_rows_contribute_nothing() {
    check_ignored_rows("poly1");
}

#[test]
fn poly1_rejects_bad_epsilon() {
    for v in [-1.0000001, -2.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        expect_invalid_param("poly1", "epsilon", F64(v));
    }
    expect_valid_param("poly1", "epsilon", F64(-1.0));
}

#[test]
fn poly1_is_cross_entropy_plus_epsilon_times_one_minus_p() {
    let ce = Context::cpu().loss("cross_entropy").unwrap();
    let dims = BTreeMap::from([("N".to_string(), 10), ("C".to_string(), 6)]);
    let p0 = with_params("poly1", &[("epsilon", F64(0.0))]);
    let pc = Case::random(&p0, &dims, 4, false);
    let mut cc = pc.clone();
    cc.inputs.extend([None, None]);
    for red in REDUCTIONS {
        let a = pc.run(&p0, red, true, None).unwrap();
        let b = cc.run(&ce, red, true, None).unwrap();
        let want: Vec<f64> = b.loss.iter().map(|&v| v as f64).collect();
        assert_close("poly1(0) vs ce", &a.loss, &want, LOSS_TOL);
        let wg: Vec<f64> = b.grads[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        assert_close(
            "poly1(0) grad vs ce",
            a.grads[0].as_ref().unwrap(),
            &wg,
            GRAD_TOL,
        );
    }
    let ce_rows = cc.run(&ce, Reduction::None, false, None).unwrap().loss;
    let eps = 2.5;
    let rows = rows_of(&with_params("poly1", &[("epsilon", F64(eps))]), &pc);
    for (i, (&r, &c)) in rows.iter().zip(&ce_rows).enumerate() {
        if c == 0.0 && r == 0.0 {
            continue; // ignored row
        }
        let py = (-(c as f64)).exp();
        let want = c as f64 + eps * (1.0 - py);
        assert!(
            (r as f64 - want).abs() < 1e-5 * (1.0 + want),
            "row {i}: {r} vs {want}"
        );
    }
}
