//! noisefit_hybrid: golden values (with and without detached targets), gradients of the three
//! logit inputs, and its structure (α = 1, λ = 0 is cross-entropy; identical passes at T = 1
//! leave only α·CE; detaching the soft targets changes only the clean-pass gradient).

use std::collections::BTreeMap;

use losskit::ParamValue::{Bool, F64};
use losskit::testing::Case;
use losskit::{Context, Reduction};

use super::helpers::*;
use crate::common::{GRAD_TOL, LOSS_TOL, assert_close};

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn dims() -> BTreeMap<String, usize> {
    BTreeMap::from([("N".to_string(), 8), ("C".to_string(), 6)])
}

#[test]
fn noisefit_hybrid_matches_golden() {
    crate::golden::check("noisefit_hybrid");
}

#[test]
fn noisefit_hybrid_gradients_match_finite_differences() {
    // With detach_targets the clean-pass gradient leaves out the soft targets' dependence by
    // design (checked against autodiff with stop_gradient in the golden file); the noisy
    // passes' gradients stay exact derivatives.
    gradcheck_all_but_detached("noisefit_hybrid", &["noisy_logits_1", "noisy_logits_2"]);
}

#[test]
fn noisefit_hybrid_ignored_rows_contribute_nothing() {
    check_ignored_rows("noisefit_hybrid");
}

#[test]
fn noisefit_hybrid_rejects_bad_params() {
    for v in [-0.1, 1.1, f64::NAN] {
        expect_invalid_param("noisefit_hybrid", "alpha", F64(v));
    }
    for v in [-1e-9, f64::INFINITY] {
        expect_invalid_param("noisefit_hybrid", "lambda_consistency", F64(v));
    }
    for v in [0.0, -2.0, f64::NAN] {
        expect_invalid_param("noisefit_hybrid", "temperature", F64(v));
    }
    expect_invalid_param("noisefit_hybrid", "detach_targets", F64(1.0));
    expect_valid_param("noisefit_hybrid", "alpha", F64(1.0));
}

#[test]
fn alpha_one_lambda_zero_is_cross_entropy() {
    let l = with_params(
        "noisefit_hybrid",
        &[("alpha", F64(1.0)), ("lambda_consistency", F64(0.0))],
    );
    let ce = Context::cpu().loss("cross_entropy").unwrap();
    let case = Case::random(&l, &dims(), 101, false);
    let mut cc = case.clone();
    let t = cc.inputs.remove(3);
    cc.inputs.truncate(1);
    cc.inputs.extend([t, None, None]);
    for red in REDUCTIONS {
        let a = case.run(&l, red, true, None).unwrap();
        let b = cc.run(&ce, red, true, None).unwrap();
        assert_close("value", &a.loss, &f64s(&b.loss), LOSS_TOL);
        assert_close(
            "grad",
            a.grads[0].as_ref().unwrap(),
            &f64s(b.grads[0].as_ref().unwrap()),
            GRAD_TOL,
        );
        for k in [1, 2] {
            assert!(a.grads[k].as_ref().unwrap().iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn identical_passes_leave_only_the_hard_term() {
    let al = 0.4;
    let l = with_params(
        "noisefit_hybrid",
        &[("alpha", F64(al)), ("lambda_consistency", F64(0.7))],
    );
    let hard = with_params(
        "noisefit_hybrid",
        &[("alpha", F64(1.0)), ("lambda_consistency", F64(0.0))],
    );
    let mut case = Case::random(&l, &dims(), 102, false);
    let z = case.inputs[0].clone();
    case.inputs[1] = z.clone();
    case.inputs[2] = z;
    let a = rows_of(&l, &case);
    let b = rows_of(&hard, &case);
    let want: Vec<f64> = b.iter().map(|&v| al * v as f64).collect();
    assert_close("alpha * CE", &a, &want, 1e-6);
}

#[test]
fn detaching_targets_changes_only_the_clean_gradient() {
    let a = with_params("noisefit_hybrid", &[("temperature", F64(2.0))]);
    let d = with_params(
        "noisefit_hybrid",
        &[("temperature", F64(2.0)), ("detach_targets", Bool(true))],
    );
    let case = Case::random(&a, &dims(), 103, false);
    let x = case.run(&a, Reduction::Sum, true, None).unwrap();
    let y = case.run(&d, Reduction::Sum, true, None).unwrap();
    assert_eq!(x.loss, y.loss);
    assert_eq!(x.grads[1], y.grads[1]);
    assert_eq!(x.grads[2], y.grads[2]);
    assert_ne!(x.grads[0], y.grads[0]);
}

#[test]
fn only_detached_targets_are_declared_detached() {
    let a = with_params("noisefit_hybrid", &[]);
    let d = with_params("noisefit_hybrid", &[("detach_targets", Bool(true))]);
    assert!(a.def().surrogate_reason(a.params()).is_none());
    assert!(d.def().surrogate_reason(d.params()).is_some());
    let aldr = with_params("aldr_kl", &[]);
    assert!(aldr.def().surrogate_reason(aldr.params()).is_some());
    let ce = Context::cpu().loss("cross_entropy").unwrap();
    assert!(ce.def().surrogate_reason(ce.params()).is_none());
}
