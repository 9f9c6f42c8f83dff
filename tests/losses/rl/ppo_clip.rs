//! ppo_clip: goldens (clip, dual clip, delta clamp, every aggregation), finite differences,
//! the on-policy gradient, aggregation semantics, bad input.

use losskit::ParamValue::{Enum, F64};
use losskit::{ErrorKind, Reduction};

use super::{golden, gradcheck_all, loss, run_named, set_err, with};

#[test]
fn golden_values() {
    golden("ppo_clip");
}

#[test]
fn gradcheck() {
    gradcheck_all("ppo_clip", &[("N", 4), ("T", 5)]);
}

const S: &[usize] = &[2, 3];

#[test]
fn on_policy_gradient_is_minus_advantage_over_token_count() {
    let lp = [-1.0f32, -2.0, -0.5, -1.5, -3.0, -0.2];
    let adv = [0.5f32, -1.0, 2.0, 1.0, -0.3, 0.7];
    let mask = [1.0f32, 1.0, 0.0, 1.0, 1.0, 1.0];
    let (v, g) = run_named(
        &loss("ppo_clip"),
        Reduction::Mean,
        &[
            ("logps", &lp, S),
            ("old_logps", &lp, S),
            ("advantages", &adv, S),
            ("mask", &mask, S),
        ],
    )
    .unwrap();
    // token_mean + mean = sum over masked tokens / number of masked tokens.
    let want: f32 = -(0.5 - 1.0 + 1.0 - 0.3 + 0.7) / 5.0;
    assert!((v[0] - want).abs() < 1e-6);
    for j in 0..6 {
        assert!((g[j] - (-adv[j] * mask[j] / 5.0)).abs() < 1e-7);
    }
}

#[test]
fn clipping_and_dual_clip_bound_the_surrogate() {
    // r = e^1 > 1.2 with A > 0: clipped at -A(1.2), gradient 0.
    let (lp, old) = ([-1.0f32], [-2.0f32]);
    let s: &[usize] = &[1, 1];
    let l = loss("ppo_clip");
    let (v, g) = run_named(
        &l,
        Reduction::Sum,
        &[
            ("logps", &lp, s),
            ("old_logps", &old, s),
            ("advantages", &[2.0], s),
            ("mask", &[1.0], s),
        ],
    )
    .unwrap();
    assert!((v[0] + 2.4).abs() < 1e-6 && g[0] == 0.0);
    // A < 0 and r = e^3 > c = 3: the dual clip caps the loss at -A c.
    let l = with("ppo_clip", &[("clip_ratio_c", F64(3.0))]);
    let (v, g) = run_named(
        &l,
        Reduction::Sum,
        &[
            ("logps", &[-1.0], s),
            ("old_logps", &[-4.0], s),
            ("advantages", &[-2.0], s),
            ("mask", &[1.0], s),
        ],
    )
    .unwrap();
    assert!((v[0] - 6.0).abs() < 1e-6 && g[0] == 0.0);
}

#[test]
fn sequence_mean_weighs_rows_equally() {
    // seq_mean_token_mean: a short row counts as much as a long one.
    let l = with("ppo_clip", &[("loss_agg", Enum(1))]);
    let lp = [-1.0f32; 6];
    let adv = [1.0f32, 1.0, 1.0, 3.0, 0.0, 0.0];
    let mask = [1.0f32, 1.0, 1.0, 1.0, 0.0, 0.0];
    let (v, _) = run_named(
        &l,
        Reduction::None,
        &[
            ("logps", &lp, S),
            ("old_logps", &lp, S),
            ("advantages", &adv, S),
            ("mask", &mask, S),
        ],
    )
    .unwrap();
    assert_eq!(v, vec![-1.0, -3.0]);
}

#[test]
fn bad_input_is_rejected() {
    let p = ErrorKind::InvalidParam;
    assert_eq!(set_err("ppo_clip", &[], "clip_ratio_c", F64(0.5)), p);
    assert_eq!(set_err("ppo_clip", &[], "clip_ratio_c", F64(1.0)), p);
    assert_eq!(set_err("ppo_clip", &[], "clip_low", F64(1.0)), p);
    assert_eq!(
        set_err("ppo_clip", &[], "max_len", losskit::ParamValue::I64(-1)),
        p
    );
    let lp = [-1.0f32; 6];
    let e = run_named(
        &loss("ppo_clip"),
        Reduction::Mean,
        &[
            ("logps", &lp, S),
            ("old_logps", &lp, S),
            ("advantages", &lp, S),
            ("mask", &[1.0, 0.5, 1.0, 1.0, 1.0, 1.0], S),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
}
