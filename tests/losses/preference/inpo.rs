//! inpo: goldens, finite differences, IPO as the special case prev = ref, bad parameters.

use losskit::ErrorKind;
use losskit::ParamValue::F64;

use super::{choice, close, golden, gradcheck_all, rows_of, set_err, with};

#[test]
fn golden_values() {
    golden("inpo");
}

#[test]
fn gradcheck() {
    gradcheck_all("inpo", &[("B", 5)]);
}

#[test]
fn previous_iterate_equal_to_reference_is_ipo() {
    let (pc, pr, rc, rr) = (
        [-12.0f32, -3.0, -7.0],
        [-9.0f32, -14.0, -7.5],
        [-10.0f32, -4.0, -6.0],
        [-8.0f32, -12.0, -9.0],
    );
    let eta = 0.8f64;
    let v = rows_of(
        &with("inpo", &[("eta", F64(eta)), ("tau", F64(0.5))]),
        &[
            ("policy_chosen_logps", &pc),
            ("policy_rejected_logps", &pr),
            ("ref_chosen_logps", &rc),
            ("ref_rejected_logps", &rr),
            ("prev_chosen_logps", &rc),
            ("prev_rejected_logps", &rr),
        ],
    )
    .unwrap();
    // IPO with beta = 1/eta: (lr_w - lr_l - 1/(2 beta))^2.
    let ipo = rows_of(
        &with(
            "dpo",
            &[
                ("loss_type", choice("dpo", "loss_type", "ipo")),
                ("beta", F64(1.0 / eta)),
            ],
        ),
        &[
            ("policy_chosen_logps", &pc),
            ("policy_rejected_logps", &pr),
            ("ref_chosen_logps", &rc),
            ("ref_rejected_logps", &rr),
        ],
    )
    .unwrap();
    close(&v, &ipo, 1e-6);
}

#[test]
fn bad_parameters_are_rejected() {
    let p = ErrorKind::InvalidParam;
    assert_eq!(set_err("inpo", &[], "eta", F64(0.0)), p);
    assert_eq!(set_err("inpo", &[], "tau", F64(-0.1)), p);
    assert_eq!(set_err("inpo", &[], "tau", F64(1.5)), p);
    assert_eq!(set_err("inpo", &[("tau", F64(0.5))], "eta", F64(2.5)), p);
}
