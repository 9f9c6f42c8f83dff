//! sparsepo: goldens, finite differences (also with a separate KL mask), unit masks and a
//! zero KL term give DPO on the summed log-ratios, common mode equals independent mode with
//! the same mask twice (without penalties), bad input.

use std::collections::BTreeMap;

use losskit::ErrorKind;
use losskit::ParamValue::F64;
use losskit::testing::{gradcheck, random_case};
use losskit::{Compute, Loss, Reduction, Tensor};

use super::{choice, close, golden, gradcheck_all, rows_of, set_err, settings, with};
use crate::common::FD_TOL;

const ID: &str = "sparsepo";

#[test]
fn golden_values() {
    golden(ID);
}

#[test]
fn gradcheck_defaults_and_sets() {
    gradcheck_all(ID, &[("B", 3), ("T", 4)]);
}

#[test]
fn gradcheck_with_a_kl_mask() {
    let dims: BTreeMap<String, usize> = [("B".to_string(), 3), ("T".to_string(), 4)].into();
    for l in settings(ID) {
        if l.params().choice("mask_mode") == "common" {
            continue;
        }
        let case = random_case(&l.def().spec, None, &dims, 12, true);
        assert!(case.inputs[5].is_some());
        for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            for r in gradcheck(&l, &case, red, 40).unwrap() {
                assert!(r.max_abs < FD_TOL || r.max_rel < FD_TOL, "{red:?}: {r:?}");
            }
        }
    }
}

/// Per-pair losses; inputs `[2, B, T]` in spec order, `None` = absent.
fn run(l: &Loss, b: usize, t: usize, x: &[Option<&[f32]>]) -> losskit::Result<Vec<f32>> {
    let mut out = vec![0.0f32; b];
    {
        let mut c = Compute::new(Reduction::None, &mut out);
        for v in x {
            c = match v {
                Some(d) => c.input(Tensor::f32(d, &[2, b, t])),
                None => c.absent(),
            };
        }
        l.compute(&mut c)?;
    }
    Ok(out)
}

// Two pairs of three tokens: [chosen pair 0, chosen pair 1, rejected pair 0, rejected pair 1].
const LP: [f32; 12] = [
    -1.0, -2.0, -0.5, -3.0, -0.2, -1.1, -2.5, -0.7, -1.9, -0.4, -0.9, -2.2,
];
const RF: [f32; 12] = [
    -1.2, -1.5, -0.9, -2.0, -0.6, -1.0, -2.0, -1.0, -1.5, -0.3, -1.4, -2.0,
];
const MASK: [f32; 12] = [1., 1., 0., 1., 1., 1., 1., 1., 1., 1., 0., 1.];

#[test]
fn unit_masks_and_no_kl_is_dpo() {
    let zero = [0.0f32; 12];
    let beta = 0.4;
    let l = with(ID, &[("beta", F64(beta))]);
    let got = run(&l, 2, 3, &[Some(&LP), Some(&RF), Some(&zero), Some(&MASK)]).unwrap();
    let seq = |v: &[f32], r: usize| -> f32 { (0..3).map(|j| MASK[r * 3 + j] * v[r * 3 + j]).sum() };
    let (pc, pr) = ([seq(&LP, 0), seq(&LP, 1)], [seq(&LP, 2), seq(&LP, 3)]);
    let (rc, rr) = ([seq(&RF, 0), seq(&RF, 1)], [seq(&RF, 2), seq(&RF, 3)]);
    let want = rows_of(
        &with("dpo", &[("beta", F64(beta))]),
        &[
            ("policy_chosen_logps", &pc),
            ("policy_rejected_logps", &pr),
            ("ref_chosen_logps", &rc),
            ("ref_rejected_logps", &rr),
        ],
    )
    .unwrap();
    close(&got, &want, 1e-6);
}

#[test]
fn common_mode_is_one_mask_for_both_terms() {
    let kl: Vec<f32> = (0..12).map(|j| -0.05 * j as f32).collect();
    let m: Vec<f32> = (0..12).map(|j| 0.2 + 0.1 * j as f32).collect();
    let common = with(ID, &[("mask_mode", choice(ID, "mask_mode", "common"))]);
    let indep = with(ID, &[]);
    let a = run(
        &common,
        2,
        3,
        &[Some(&LP), Some(&RF), Some(&kl), Some(&MASK), Some(&m)],
    )
    .unwrap();
    let b = run(
        &indep,
        2,
        3,
        &[
            Some(&LP),
            Some(&RF),
            Some(&kl),
            Some(&MASK),
            Some(&m),
            Some(&m),
        ],
    )
    .unwrap();
    close(&a, &b, 1e-6);
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(
        set_err(ID, &[], "l1_kl", F64(-1.0)),
        ErrorKind::InvalidParam
    );
    assert_eq!(set_err(ID, &[], "beta", F64(0.0)), ErrorKind::InvalidParam);
    let zero = [0.0f32; 12];
    let common = with(ID, &[("mask_mode", choice(ID, "mask_mode", "common"))]);
    let all = [
        Some(&LP[..]),
        Some(&RF),
        Some(&zero),
        Some(&MASK),
        Some(&LP),
        Some(&LP),
    ];
    assert_eq!(
        run(&common, 2, 3, &all).unwrap_err().kind,
        ErrorKind::InvalidParam
    );
    let half = [0.5f32; 12];
    assert_eq!(
        run(
            &with(ID, &[]),
            2,
            3,
            &[Some(&LP), Some(&RF), Some(&zero), Some(&half)]
        )
        .unwrap_err()
        .kind,
        ErrorKind::InvalidInput
    );
}
