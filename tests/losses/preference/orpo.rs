//! orpo: goldens, finite differences, the SFT limit, bad input.

use losskit::ErrorKind;
use losskit::ParamValue::F64;

use super::{golden, gradcheck_all, rows_of, set_err, with};

#[test]
fn golden_values() {
    golden("orpo");
}

#[test]
fn gradcheck() {
    gradcheck_all("orpo", &[("B", 5)]);
}

#[test]
fn lam_zero_is_the_sft_term() {
    let l = with("orpo", &[("lam", F64(0.0))]);
    let (pc, pr, lw, ll) = (
        [-6.0f32, -1.0],
        [-2.0f32, -9.0],
        [3.0f32, 0.0],
        [2.0f32, 4.0],
    );
    let v = rows_of(
        &l,
        &[
            ("policy_chosen_logps", &pc),
            ("policy_rejected_logps", &pr),
            ("chosen_len", &lw),
            ("rejected_len", &ll),
        ],
    )
    .unwrap();
    assert_eq!(v, vec![2.0, 1.0]);
}

#[test]
fn odds_term_prefers_the_chosen_response() {
    // The odds-ratio term is softplus(-o): smaller when the chosen response is likelier.
    let l = with("orpo", &[("lam", F64(1.0))]);
    let one = [1.0f32];
    let v = |pc: f32, pr: f32| {
        rows_of(
            &l,
            &[
                ("policy_chosen_logps", &[pc]),
                ("policy_rejected_logps", &[pr]),
                ("chosen_len", &one),
                ("rejected_len", &one),
            ],
        )
        .unwrap()[0]
            + pc
    };
    assert!(v(-0.5, -2.0) < v(-2.0, -0.5));
    assert!((v(-1.0, -1.0) - std::f32::consts::LN_2).abs() < 1e-6);
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(
        set_err("orpo", &[], "lam", F64(-0.1)),
        ErrorKind::InvalidParam
    );
    let l = super::loss("orpo");
    let one = [1.0f32];
    let e = rows_of(
        &l,
        &[
            ("policy_chosen_logps", &[0.0]),
            ("policy_rejected_logps", &[-1.0]),
            ("chosen_len", &one),
            ("rejected_len", &one),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
}
