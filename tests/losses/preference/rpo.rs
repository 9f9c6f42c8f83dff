//! rpo: goldens, finite differences, eta = 0 is DPO, bad parameters.

use losskit::ErrorKind;
use losskit::ParamValue::F64;

use super::{choice, close, golden, gradcheck_all, rows_of, set_err, with};

#[test]
fn golden_values() {
    golden("rpo");
}

#[test]
fn gradcheck() {
    gradcheck_all("rpo", &[("B", 5)]);
}

#[test]
fn eta_zero_is_dpo_and_sft_terms_add() {
    let (pc, pr, rc, rr) = (
        [-12.0f32, -3.0],
        [-9.0f32, -14.0],
        [-10.0f32, -4.0],
        [-8.0f32, -12.0],
    );
    let ins: [(&str, &[f32]); 4] = [
        ("policy_chosen_logps", &pc),
        ("policy_rejected_logps", &pr),
        ("ref_chosen_logps", &rc),
        ("ref_rejected_logps", &rr),
    ];
    let r = rows_of(&with("rpo", &[("eta", F64(0.0)), ("beta", F64(0.3))]), &ins).unwrap();
    let d = rows_of(&with("dpo", &[("beta", F64(0.3))]), &ins).unwrap();
    close(&r, &d, 1e-6);
    let r = rows_of(&with("rpo", &[("eta", F64(0.5)), ("beta", F64(0.3))]), &ins).unwrap();
    let want: Vec<f32> = d.iter().zip(&pc).map(|(x, p)| x - 0.5 * 0.3 * p).collect();
    close(&r, &want, 1e-6);
    let lw = [4.0f32, 0.0];
    let ins5: [(&str, &[f32]); 5] = [ins[0], ins[1], ins[2], ins[3], ("chosen_len", &lw)];
    let r = rows_of(
        &with(
            "rpo",
            &[
                ("eta", F64(0.5)),
                ("beta", F64(0.3)),
                ("sft_norm", choice("rpo", "sft_norm", "token_mean")),
            ],
        ),
        &ins5,
    )
    .unwrap();
    let want = [d[0] - 0.5 * pc[0] / 4.0, d[1] - 0.5 * pc[1]];
    close(&r, &want, 1e-6);
}

#[test]
fn bad_parameters_are_rejected() {
    assert_eq!(
        set_err("rpo", &[], "eta", F64(-0.1)),
        ErrorKind::InvalidParam
    );
    assert_eq!(
        set_err("rpo", &[], "beta", F64(0.0)),
        ErrorKind::InvalidParam
    );
}
