//! grpo: goldens (group / batch / no scaling, k3 KL, on-policy), finite differences with the
//! old log-probs given, group advantages, bad input.

use losskit::ParamValue::{F64, I64};
use losskit::{ErrorKind, Reduction};

use super::{golden, gradcheck_with, run_named, set_err, with};

#[test]
fn golden_values() {
    golden("grpo");
}

#[test]
fn gradcheck_with_old_logps() {
    // N = 12 is divisible by every test group size; the gradient without old_logps is the
    // on-policy one (old detached), which finite differences cannot see.
    gradcheck_with("grpo", &[("N", 12), ("T", 3)], &[true]);
}

const S: &[usize] = &[4, 2];

#[test]
fn on_policy_gradient_equals_old_equal_to_current() {
    let lp = [-1.0f32, -2.0, -0.5, -1.5, -3.0, -0.2, -0.7, -1.1];
    let rf = [-1.2f32, -1.8, -0.4, -1.5, -2.0, -0.3, -0.9, -1.0];
    let mask = [1.0f32, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0];
    let rw = [1.0f32, 0.0, 2.0, 0.5];
    let l = with("grpo", &[("group_size", I64(2))]);
    let a = run_named(
        &l,
        Reduction::Mean,
        &[
            ("logps", &lp, S),
            ("mask", &mask, S),
            ("rewards", &rw, &[4]),
            ("ref_logps", &rf, S),
        ],
    )
    .unwrap();
    let b = run_named(
        &l,
        Reduction::Mean,
        &[
            ("logps", &lp, S),
            ("mask", &mask, S),
            ("rewards", &rw, &[4]),
            ("old_logps", &lp, S),
            ("ref_logps", &rf, S),
        ],
    )
    .unwrap();
    assert_eq!(a, b);
}

#[test]
fn equal_rewards_give_zero_advantage() {
    let lp = [-1.0f32, -2.0, -0.5, -1.5, -3.0, -0.2, -0.7, -1.1];
    let old = [-1.1f32, -1.9, -0.5, -1.4, -3.2, -0.1, -0.7, -1.0];
    let mask = [1.0f32; 8];
    let l = with("grpo", &[("group_size", I64(2)), ("beta", F64(0.0))]);
    let (v, g) = run_named(
        &l,
        Reduction::None,
        &[
            ("logps", &lp, S),
            ("mask", &mask, S),
            ("rewards", &[3.0, 3.0, 1.0, 1.0], &[4]),
            ("old_logps", &old, S),
        ],
    )
    .unwrap();
    assert!(v.iter().all(|&x| x == 0.0) && g.iter().all(|&x| x == 0.0));
    // Advantages are centred per group: with r = 1 (old = logps) the two rows of a group cancel.
    let (v, _) = run_named(
        &l,
        Reduction::None,
        &[
            ("logps", &lp, S),
            ("mask", &mask, S),
            ("rewards", &[1.0, 3.0, 0.0, 5.0], &[4]),
            ("old_logps", &lp, S),
        ],
    )
    .unwrap();
    assert!((v[0] + v[1]).abs() < 1e-6 && (v[2] + v[3]).abs() < 1e-6);
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(
        set_err("grpo", &[], "group_size", I64(0)),
        ErrorKind::InvalidParam
    );
    assert_eq!(
        set_err("grpo", &[], "beta", F64(-0.1)),
        ErrorKind::InvalidParam
    );
    let lp = [-1.0f32; 8];
    // group_size 3 does not divide N = 4.
    let l = with("grpo", &[("group_size", I64(3)), ("beta", F64(0.0))]);
    let e = run_named(
        &l,
        Reduction::Mean,
        &[
            ("logps", &lp, S),
            ("mask", &[1.0; 8], S),
            ("rewards", &[1.0; 4], &[4]),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    // beta != 0 needs ref_logps.
    let l = with("grpo", &[("group_size", I64(2))]);
    let e = run_named(
        &l,
        Reduction::Mean,
        &[
            ("logps", &lp, S),
            ("mask", &[1.0; 8], S),
            ("rewards", &[1.0; 4], &[4]),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParam);
}
