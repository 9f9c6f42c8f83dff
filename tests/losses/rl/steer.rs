//! steer: goldens (weights under a stop-gradient, as the official code), the unit-weight limit
//! equals ppo_clip (value and gradient, checked by finite differences too), bad parameters.

use losskit::ParamValue::{Enum, F64};
use losskit::{ErrorKind, Reduction};

use super::{close, golden, run_named, set_err, with};

#[test]
fn golden_values() {
    golden("steer");
}

const S: &[usize] = &[2, 4];

#[test]
fn unit_weights_are_ppo_with_dual_clip() {
    let lp = [-1.0f32, -2.0, -0.5, -1.5, -3.0, -0.2, -0.7, -1.1];
    let old = [-1.3f32, -1.8, -0.4, -1.5, -1.0, -0.3, -0.9, -26.0];
    let adv = [0.5f32, -1.0, 2.0, 1.0, -0.3, 0.7, -2.0, 1.0];
    let ent = [0.1f32, 2.0, 1.0, 0.5, 0.0, 3.0, 1.5, 0.7];
    let mask = [1.0f32, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0];
    let s = with(
        "steer",
        &[("weight_min", F64(1.0)), ("weight_max", F64(1.0))],
    );
    let p = with(
        "ppo_clip",
        &[("clip_high", F64(0.28)), ("clip_ratio_c", F64(10.0))],
    );
    for agg in 0..4 {
        let s = {
            let mut s = s.clone();
            s.set("loss_agg", Enum(agg)).unwrap();
            s
        };
        let mut p = p.clone();
        p.set("loss_agg", Enum(agg)).unwrap();
        let a = run_named(
            &s,
            Reduction::None,
            &[
                ("logps", &lp, S),
                ("old_logps", &old, S),
                ("advantages", &adv, S),
                ("entropy", &ent, S),
                ("mask", &mask, S),
            ],
        )
        .unwrap();
        let b = run_named(
            &p,
            Reduction::None,
            &[
                ("logps", &lp, S),
                ("old_logps", &old, S),
                ("advantages", &adv, S),
                ("mask", &mask, S),
            ],
        )
        .unwrap();
        close(&a.0, &b.0, 1e-7);
        close(&a.1, &b.1, 1e-7);
    }
}

#[test]
fn gradcheck_with_constant_weights() {
    // With weight_min = weight_max = 1 the weights are constant, so finite differences apply.
    // (The generic check does not: the weights depend on logps but are detached.)
    let l = with(
        "steer",
        &[("weight_min", F64(1.0)), ("weight_max", F64(1.0))],
    );
    let dims: std::collections::BTreeMap<String, usize> =
        [("N".to_string(), 4), ("T".to_string(), 5)].into();
    for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        let case = losskit::testing::Case::random(&l, &dims, 3, true);
        for r in losskit::testing::gradcheck(&l, &case, red, 40).unwrap() {
            assert!(
                r.max_abs < crate::common::FD_TOL || r.max_rel < crate::common::FD_TOL,
                "{r:?}"
            );
        }
    }
}

#[test]
fn bad_parameters_are_rejected() {
    let p = ErrorKind::InvalidParam;
    assert_eq!(set_err("steer", &[], "weight_max", F64(0.5)), p);
    assert_eq!(set_err("steer", &[], "weight_min", F64(1.5)), p);
    assert_eq!(set_err("steer", &[], "weight_min", F64(0.0)), p);
    assert_eq!(set_err("steer", &[], "clip_ratio_c", F64(1.0)), p);
}
