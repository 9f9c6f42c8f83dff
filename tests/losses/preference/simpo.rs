//! simpo: goldens, finite differences, relation to reference-free DPO, AlphaPO continuity,
//! bad parameters.

use losskit::ErrorKind;
use losskit::ParamValue::F64;

use super::{close, golden, gradcheck_all, loss, rows_of, set_err, with};

#[test]
fn golden_values() {
    golden("simpo");
}

#[test]
fn gradcheck() {
    gradcheck_all("simpo", &[("B", 5)]);
}

const PC: [f32; 3] = [-12.0, -3.0, -20.0];
const PR: [f32; 3] = [-9.0, -14.0, -18.0];
const LW: [f32; 3] = [6.0, 2.0, 11.0];
const LL: [f32; 3] = [3.0, 7.0, 9.0];

fn run(l: &losskit::Loss) -> Vec<f32> {
    rows_of(
        l,
        &[
            ("policy_chosen_logps", &PC),
            ("policy_rejected_logps", &PR),
            ("chosen_len", &LW),
            ("rejected_len", &LL),
        ],
    )
    .unwrap()
}

#[test]
fn zero_margin_is_reference_free_dpo_on_average_log_probs() {
    let s = run(&with(
        "simpo",
        &[("gamma_beta_ratio", F64(0.0)), ("beta", F64(2.0))],
    ));
    let aw: Vec<f32> = PC.iter().zip(&LW).map(|(a, l)| a / l).collect();
    let al: Vec<f32> = PR.iter().zip(&LL).map(|(a, l)| a / l).collect();
    let d = rows_of(
        &with("dpo", &[("beta", F64(2.0))]),
        &[("policy_chosen_logps", &aw), ("policy_rejected_logps", &al)],
    )
    .unwrap();
    close(&s, &d, 1e-6);
}

#[test]
fn alphapo_tends_to_simpo_as_alpha_goes_to_zero() {
    close(
        &run(&with("simpo", &[("alpha", F64(1e-7))])),
        &run(&loss("simpo")),
        1e-5,
    );
}

#[test]
fn bad_parameters_are_rejected() {
    let p = ErrorKind::InvalidParam;
    assert_eq!(set_err("simpo", &[], "beta", F64(0.0)), p);
    assert_eq!(set_err("simpo", &[], "label_smoothing", F64(0.5)), p);
    assert_eq!(set_err("simpo", &[], "alpha", F64(10.5)), p);
    assert_eq!(set_err("simpo", &[], "gamma_beta_ratio", F64(-1.0)), p);
    assert_eq!(set_err("simpo", &[], "sft_weight", F64(-1.0)), p);
}
