//! cpo: goldens, finite differences, relation to reference-free DPO plus NLL, bad parameters.

use losskit::ErrorKind;
use losskit::ParamValue::F64;

use super::{choice, close, golden, gradcheck_all, rows_of, set_err, with};

#[test]
fn golden_values() {
    golden("cpo");
}

#[test]
fn gradcheck() {
    gradcheck_all("cpo", &[("B", 5)]);
}

#[test]
fn cpo_is_reference_free_dpo_plus_nll() {
    let (pc, pr) = ([-12.0f32, -3.0, -20.0], [-9.0f32, -14.0, -18.0]);
    let ins: [(&str, &[f32]); 2] = [("policy_chosen_logps", &pc), ("policy_rejected_logps", &pr)];
    let c = rows_of(&with("cpo", &[("beta", F64(0.2))]), &ins).unwrap();
    let d = rows_of(&with("dpo", &[("beta", F64(0.2))]), &ins).unwrap();
    let want: Vec<f32> = d.iter().zip(&pc).map(|(x, p)| x - p).collect();
    close(&c, &want, 1e-6);
    // ipo divides by the lengths, as dpo's ipo does when they are given.
    let (lw, ll) = ([4.0f32, 1.0, 8.0], [2.0f32, 5.0, 3.0]);
    let ins: [(&str, &[f32]); 4] = [
        ("policy_chosen_logps", &pc),
        ("policy_rejected_logps", &pr),
        ("chosen_len", &lw),
        ("rejected_len", &ll),
    ];
    let c = rows_of(
        &with(
            "cpo",
            &[
                ("loss_type", choice("cpo", "loss_type", "ipo")),
                ("cpo_alpha", F64(0.0)),
            ],
        ),
        &ins,
    )
    .unwrap();
    let d = rows_of(
        &with("dpo", &[("loss_type", choice("dpo", "loss_type", "ipo"))]),
        &ins,
    )
    .unwrap();
    close(&c, &d, 1e-6);
}

#[test]
fn bad_parameters_are_rejected() {
    let p = ErrorKind::InvalidParam;
    assert_eq!(set_err("cpo", &[], "beta", F64(-1.0)), p);
    assert_eq!(set_err("cpo", &[], "label_smoothing", F64(0.5)), p);
    assert_eq!(set_err("cpo", &[], "cpo_alpha", F64(-0.5)), p);
    assert_eq!(set_err("cpo", &[], "alpha", F64(-11.0)), p);
}
