//! osp_spce: goldens, finite differences, strength 1 is DPO and a constant strength is
//! conservative DPO, bad input.

use losskit::ErrorKind;
use losskit::ParamValue::F64;

use super::{close, golden, gradcheck_all, loss, rows_of, set_err, with};

#[test]
fn golden_values() {
    golden("osp_spce");
}

#[test]
fn gradcheck() {
    gradcheck_all("osp_spce", &[("B", 5)]);
}

#[test]
fn strength_one_is_dpo_and_constant_strength_is_conservative_dpo() {
    let (pc, pr, rc, rr) = (
        [-12.0f32, -3.0],
        [-9.0f32, -14.0],
        [-10.0f32, -4.0],
        [-8.0f32, -12.0],
    );
    let base: [(&str, &[f32]); 4] = [
        ("policy_chosen_logps", &pc),
        ("policy_rejected_logps", &pr),
        ("ref_chosen_logps", &rc),
        ("ref_rejected_logps", &rr),
    ];
    let with_p = |p: f32| {
        let s = [p, p];
        rows_of(
            &loss("osp_spce"),
            &[base[0], base[1], base[2], base[3], ("strength", &s)],
        )
        .unwrap()
    };
    close(&with_p(1.0), &rows_of(&loss("dpo"), &base).unwrap(), 1e-6);
    close(
        &with_p(0.8),
        &rows_of(&with("dpo", &[("label_smoothing", F64(0.2))]), &base).unwrap(),
        1e-6,
    );
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(
        set_err("osp_spce", &[], "beta", F64(0.0)),
        ErrorKind::InvalidParam
    );
    let one = [-1.0f32];
    let e = rows_of(
        &loss("osp_spce"),
        &[
            ("policy_chosen_logps", &one),
            ("policy_rejected_logps", &one),
            ("ref_chosen_logps", &one),
            ("ref_rejected_logps", &one),
            ("strength", &[1.5]),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
}
