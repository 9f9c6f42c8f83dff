//! dpa_semantic: goldens, finite differences, the named members of the family (DPO, the
//! ORPO odds term, cross-entropy on y_w, the trivial formula), bad parameters and input.

use losskit::ErrorKind;
use losskit::ParamValue::{F64, I64};

use super::{choice, close, golden, gradcheck_all, loss, rows_of, set_err, with};

const ID: &str = "dpa_semantic";

#[test]
fn golden_values() {
    golden(ID);
}

#[test]
fn gradcheck() {
    gradcheck_all(ID, &[("B", 6)]);
}

const PC: [f32; 4] = [-12.0, -3.0, -20.0, -7.5];
const PR: [f32; 4] = [-9.0, -14.0, -18.0, -7.0];
const RC: [f32; 4] = [-10.0, -4.0, -21.0, -6.0];
const RR: [f32; 4] = [-8.0, -12.0, -17.5, -9.0];

#[test]
fn named_members_match_their_losses() {
    let refs: [(&str, &[f32]); 4] = [
        ("policy_chosen_logps", &PC),
        ("policy_rejected_logps", &PR),
        ("ref_chosen_logps", &RC),
        ("ref_rejected_logps", &RR),
    ];
    // Default masks (M_w ∧ ¬M_l given exactly one) with the ratio link: DPO.
    let beta = 0.3;
    let got = rows_of(&with(ID, &[("beta", F64(beta))]), &refs).unwrap();
    let want = rows_of(&with("dpo", &[("beta", F64(beta))]), &refs).unwrap();
    close(&got, &want, 1e-6);
    // M_w alone: cross-entropy on y_w, −log σ(β lr_w).
    let ce = with(
        ID,
        &[("beta", F64(beta)), ("cond", I64(15)), ("core", I64(12))],
    );
    let got = rows_of(&ce, &refs).unwrap();
    let want: Vec<f32> = (0..4)
        .map(|i| {
            let z = beta * (PC[i] as f64 - RC[i] as f64);
            (1.0 + (-z).exp()).ln() as f32
        })
        .collect();
    close(&got, &want, 1e-6);
    // core ⊇ cond: the formula always holds, the loss is 0.
    let t = with(ID, &[("core", I64(15))]);
    assert!(rows_of(&t, &refs).unwrap().iter().all(|&v| v == 0.0));
    // Odds link, default masks: ORPO's odds-ratio term softplus(−o) = orpo(λ = 1) + a_w.
    let (lw, ll) = ([3.0f32, 5.0, 10.0, 4.0], [4.0f32, 7.0, 9.0, 5.0]);
    let lens: [(&str, &[f32]); 4] = [
        ("policy_chosen_logps", &PC),
        ("policy_rejected_logps", &PR),
        ("chosen_len", &lw),
        ("rejected_len", &ll),
    ];
    let odds = with(ID, &[("link", choice(ID, "link", "odds"))]);
    let got = rows_of(&odds, &lens).unwrap();
    let orpo = rows_of(&with("orpo", &[("lam", F64(1.0))]), &lens).unwrap();
    let want: Vec<f32> = (0..4).map(|i| orpo[i] + PC[i] / lw[i]).collect();
    close(&got, &want, 1e-5);
}

#[test]
fn bad_input_is_rejected() {
    // Masks that share no world, in either order of setting.
    assert_eq!(set_err(ID, &[], "core", I64(1)), ErrorKind::InvalidParam);
    assert_eq!(set_err(ID, &[], "cond", I64(8)), ErrorKind::InvalidParam);
    assert_eq!(set_err(ID, &[], "core", I64(0)), ErrorKind::InvalidParam);
    assert_eq!(set_err(ID, &[], "cond", I64(0)), ErrorKind::InvalidParam);
    assert_eq!(set_err(ID, &[], "core", I64(16)), ErrorKind::InvalidParam);
    assert_eq!(set_err(ID, &[], "beta", F64(0.0)), ErrorKind::InvalidParam);
    let odds = with(ID, &[("link", choice(ID, "link", "odds"))]);
    let e = rows_of(
        &odds,
        &[
            ("policy_chosen_logps", &[0.5]),
            ("policy_rejected_logps", &[-1.0]),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    // The ratio link accepts any log-prob.
    rows_of(
        &loss(ID),
        &[
            ("policy_chosen_logps", &[0.5]),
            ("policy_rejected_logps", &[-1.0]),
        ],
    )
    .unwrap();
}
