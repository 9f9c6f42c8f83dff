//! comp_sum: golden values for every kind, gradients, and the paper's properties (GCE tends
//! to CE as q -> 0 and equals MAE at q = 1; every named kind is the general family at its τ;
//! sum-exp overflows to +inf, never NaN).

use std::collections::BTreeMap;

use losskit::ParamValue::{Enum, F64};
use losskit::Reduction;
use losskit::testing::Case;

use super::helpers::*;
use crate::common::{GRAD_TOL, LOSS_TOL, assert_close};

fn kind(k: usize) -> losskit::ParamValue {
    Enum(k)
}

fn same(a: &losskit::Loss, b: &losskit::Loss, case: &Case, tol: f64, what: &str) {
    for red in REDUCTIONS {
        let x = case.run(a, red, true, None).unwrap();
        let y = case.run(b, red, true, None).unwrap();
        let want: Vec<f64> = y.loss.iter().map(|&v| v as f64).collect();
        assert_close(&format!("{what} loss {}", red.name()), &x.loss, &want, tol);
        let wg: Vec<f64> = y.grads[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        assert_close(
            &format!("{what} grad"),
            x.grads[0].as_ref().unwrap(),
            &wg,
            tol,
        );
    }
}

fn random_case(seed: u64) -> Case {
    let l = with_params("comp_sum", &[]);
    let dims = BTreeMap::from([("N".to_string(), 10), ("C".to_string(), 6)]);
    Case::random(&l, &dims, seed, false)
}

#[test]
fn comp_sum_matches_golden() {
    crate::golden::check("comp_sum");
}

#[test]
fn comp_sum_gradients_match_finite_differences() {
    gradcheck_all("comp_sum");
}

#[test]
fn comp_sum_ignored_rows_contribute_nothing() {
    check_ignored_rows("comp_sum");
}

#[test]
fn comp_sum_rejects_bad_params() {
    for v in [0.0, -0.1, 1.0000001, f64::NAN] {
        expect_invalid_param("comp_sum", "q", F64(v));
    }
    for v in [-1e-12, f64::INFINITY, f64::NAN] {
        expect_invalid_param("comp_sum", "tau", F64(v));
    }
    expect_invalid_param("comp_sum", "kind", Enum(5));
    let mut l = with_params("comp_sum", &[]);
    assert_eq!(
        l.set_enum("kind", "focal").unwrap_err().kind,
        losskit::ErrorKind::InvalidParam
    );
    expect_valid_param("comp_sum", "q", F64(1.0));
    expect_valid_param("comp_sum", "tau", F64(0.0));
}

#[test]
fn comp_sum_named_kinds_are_the_general_family() {
    let case = random_case(21);
    let general = |tau: f64| with_params("comp_sum", &[("kind", kind(4)), ("tau", F64(tau))]);
    same(
        &with_params("comp_sum", &[("kind", kind(0))]),
        &general(1.0),
        &case,
        GRAD_TOL,
        "logistic",
    );
    same(
        &with_params("comp_sum", &[("kind", kind(1))]),
        &general(0.0),
        &case,
        GRAD_TOL,
        "sum_exp",
    );
    same(
        &with_params("comp_sum", &[("kind", kind(2)), ("q", F64(0.3))]),
        &general(1.3),
        &case,
        GRAD_TOL,
        "gce",
    );
    same(
        &with_params("comp_sum", &[("kind", kind(3))]),
        &general(2.0),
        &case,
        GRAD_TOL,
        "mae",
    );
}

#[test]
fn comp_sum_logistic_is_cross_entropy() {
    let case = random_case(22);
    let mut ce_case = case.clone();
    ce_case.inputs.extend([None, None]);
    let ce = losskit::Context::cpu().loss("cross_entropy").unwrap();
    let cs = with_params("comp_sum", &[]);
    for red in REDUCTIONS {
        let a = case.run(&cs, red, true, None).unwrap();
        let b = ce_case.run(&ce, red, true, None).unwrap();
        let want: Vec<f64> = b.loss.iter().map(|&v| v as f64).collect();
        assert_close("logistic vs ce", &a.loss, &want, LOSS_TOL);
        let wg: Vec<f64> = b.grads[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        assert_close(
            "logistic grad vs ce",
            a.grads[0].as_ref().unwrap(),
            &wg,
            GRAD_TOL,
        );
    }
}

#[test]
fn gce_tends_to_ce_as_q_to_zero_and_is_mae_at_q_one() {
    let case = random_case(23);
    let logistic = with_params("comp_sum", &[]);
    let gce_small = with_params("comp_sum", &[("kind", kind(2)), ("q", F64(1e-6))]);
    // (1 - p^q)/q = L - q L^2/2 + ...: with q = 1e-6 and L < 20 the gap is below 2e-4.
    same(&gce_small, &logistic, &case, 2e-4, "gce q->0 vs ce");
    let gce_one = with_params("comp_sum", &[("kind", kind(2)), ("q", F64(1.0))]);
    let mae = with_params("comp_sum", &[("kind", kind(3))]);
    same(&gce_one, &mae, &case, 1e-7, "gce q=1 vs mae");
    // MAE is 1 - p_y, bounded by 1 (not 2(1 - p_y)).
    let rows = rows_of(&mae, &case);
    let ce_rows = rows_of(&logistic, &case);
    for (r, c) in rows.iter().zip(&ce_rows) {
        let want = 1.0 - (-(*c as f64)).exp();
        assert!((*r as f64 - want).abs() < 1e-6, "{r} vs {want}");
    }
}

#[test]
fn sum_exp_overflows_to_inf_not_nan() {
    let l = with_params("comp_sum", &[("kind", kind(1))]);
    let c = case_of(
        &l,
        &[
            ("logits", &[2, 3], &[0.0, 100.0, 95.0, 0.0, 1.0, 2.0]),
            ("target", &[2], &[0.0, 2.0]),
        ],
    );
    let o = c.run(&l, Reduction::None, true, None).unwrap();
    assert_eq!(o.loss[0], f32::INFINITY);
    assert!(o.loss[1].is_finite());
    let g = o.grads[0].as_ref().unwrap();
    assert!(g.iter().all(|v| !v.is_nan()), "{g:?}");
    assert_eq!(g[0], f32::NEG_INFINITY);
    assert_eq!(g[1], f32::INFINITY);
}
