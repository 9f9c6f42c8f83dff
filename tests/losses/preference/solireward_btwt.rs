//! solireward_btwt: goldens, finite differences (with and without quality labels), margin 0
//! is the Bradley-Terry / DPO loss on rewards, the tie band is symmetric with its minimum at
//! d = 0, bad input.

use std::collections::BTreeMap;

use losskit::ErrorKind;
use losskit::ParamValue::F64;
use losskit::Reduction;
use losskit::testing::{gradcheck, random_case};

use super::{close, golden, gradcheck_all, loss, rows_of, set_err, settings, with};
use crate::common::FD_TOL;

const ID: &str = "solireward_btwt";

#[test]
fn golden_values() {
    golden(ID);
}

#[test]
fn gradcheck_with_labels() {
    gradcheck_all(ID, &[("B", 7)]);
}

#[test]
fn gradcheck_without_labels() {
    let dims: BTreeMap<String, usize> = [("B".to_string(), 7)].into();
    for l in settings(ID) {
        if l.params().f64("bce_weight") > 0.0 {
            continue;
        }
        let case = random_case(&l.def().spec, None, &dims, 5, false);
        assert!(case.inputs[2].is_none());
        for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            for r in gradcheck(&l, &case, red, 40).unwrap() {
                assert!(r.max_abs < FD_TOL || r.max_rel < FD_TOL, "{red:?}: {r:?}");
            }
        }
    }
}

#[test]
fn margin_zero_is_dpo_on_rewards() {
    let (rw, rl) = ([1.5f32, -0.3, 2.0, -4.0], [0.5f32, 0.7, -1.0, -3.5]);
    let l = with(
        ID,
        &[("margin", F64(0.0)), ("bt_label_smoothing", F64(0.2))],
    );
    let got = rows_of(&l, &[("reward_chosen", &rw), ("reward_rejected", &rl)]).unwrap();
    let dpo = with("dpo", &[("beta", F64(1.0)), ("label_smoothing", F64(0.2))]);
    let want = rows_of(
        &dpo,
        &[("policy_chosen_logps", &rw), ("policy_rejected_logps", &rl)],
    )
    .unwrap();
    close(&got, &want, 1e-6);
}

#[test]
fn tie_band_is_symmetric_with_minimum_at_zero() {
    let l = with(ID, &[("margin", F64(2.0))]);
    let d = [-3.0f32, -1.0, 0.0, 1.0, 3.0];
    let zero = [0.0f32; 5];
    let one = [1.0f32; 5];
    let v = rows_of(
        &l,
        &[
            ("reward_chosen", &d),
            ("reward_rejected", &zero),
            ("quality_chosen", &one),
            ("quality_rejected", &one),
        ],
    )
    .unwrap();
    close(&[v[0], v[1]], &[v[4], v[3]], 1e-6);
    assert!(v[2] < v[1] && v[1] < v[0]);
    // Non-tie pairs (labels differ) are ordinary Bradley-Terry terms: decreasing in d.
    let v2 = rows_of(
        &l,
        &[
            ("reward_chosen", &d),
            ("reward_rejected", &zero),
            ("quality_chosen", &one),
            ("quality_rejected", &zero),
        ],
    )
    .unwrap();
    assert!(v2.windows(2).all(|w| w[1] < w[0]));
}

#[test]
fn bad_input_is_rejected() {
    for (name, v) in [
        ("margin", -1.0),
        ("bt_label_smoothing", 0.5),
        ("bce_label_smoothing", 1.0),
        ("tie_weight", -0.1),
    ] {
        assert_eq!(set_err(ID, &[], name, F64(v)), ErrorKind::InvalidParam);
    }
    let r = [0.5f32];
    let l = with(ID, &[("bce_weight", F64(0.5))]);
    let e = rows_of(&l, &[("reward_chosen", &r), ("reward_rejected", &r)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParam);
    let e = rows_of(
        &loss(ID),
        &[
            ("reward_chosen", &r),
            ("reward_rejected", &r),
            ("quality_chosen", &r),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArg);
}
