//! yojo_nway: goldens, finite differences (hard targets through the generic cases, soft
//! targets with padding here), K = 2 is Bradley-Terry, soft one-hot targets equal hard ones,
//! bad input.

use std::collections::BTreeMap;

use losskit::ParamValue::{F64, I64};
use losskit::testing::{Case, OwnedData, OwnedTensor, gradcheck, random_case};
use losskit::{Compute, ErrorKind, Loss, Reduction, Tensor};

use super::{golden, gradcheck_all, loss, set_err, settings, with};
use crate::common::FD_TOL;

#[test]
fn golden_values() {
    golden("yojo_nway");
}

#[test]
fn gradcheck_hard_targets() {
    gradcheck_all("yojo_nway", &[("N", 6), ("K", 4)]);
}

fn f32t(v: Vec<f32>, shape: &[usize]) -> Option<OwnedTensor> {
    Some(OwnedTensor {
        data: OwnedData::F32(v),
        shape: shape.to_vec(),
    })
}

#[test]
fn gradcheck_soft_targets_with_padding() {
    let (n, k) = (5usize, 4usize);
    for l in settings("yojo_nway") {
        let dims: BTreeMap<String, usize> = [("N".into(), n), ("K".into(), k)].into();
        let mut case: Case = random_case(&l.def().spec, None, &dims, 3, false);
        let mut valid = vec![1.0f32; n * k];
        valid[k - 1] = 0.0;
        valid[2 * k + 1] = 0.0;
        valid[2 * k + 2] = 0.0;
        let q: Vec<f32> = (0..n * k)
            .map(|j| valid[j] * (0.1 + 0.2 * (j % 3) as f32))
            .collect();
        case.inputs[2] = f32t(q, &[n, k]);
        case.inputs[3] = f32t(valid, &[n, k]);
        for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            for r in gradcheck(&l, &case, red, 40).unwrap() {
                assert!(
                    r.max_abs < FD_TOL || r.max_rel < FD_TOL,
                    "{:?} {red:?}: {r:?}",
                    l.params().values()
                );
            }
        }
    }
}

/// Per-row losses and the gradient of the sum, with hard or soft targets.
fn run(
    l: &Loss,
    scores: &[f32],
    k: usize,
    target: Option<&[i64]>,
    q: Option<&[f32]>,
    valid: Option<&[f32]>,
) -> losskit::Result<(Vec<f32>, Vec<f32>)> {
    let n = scores.len() / k;
    let mut out = vec![0.0f32; n];
    let mut g = vec![0.0f32; n * k];
    {
        let mut c = Compute::new(Reduction::None, &mut out).input(Tensor::f32(scores, &[n, k]));
        c = match target {
            Some(t) => c.input(Tensor::i64(t, &[n])),
            None => c.absent(),
        };
        c = match q {
            Some(q) => c.input(Tensor::f32(q, &[n, k])),
            None => c.absent(),
        };
        c = match valid {
            Some(v) => c.input(Tensor::f32(v, &[n, k])),
            None => c.absent(),
        };
        c = c.grad(0, losskit::TensorMut::new(&mut g, &[n, k]));
        l.compute(&mut c)?;
    }
    Ok((out, g))
}

#[test]
fn two_responses_is_bradley_terry_and_one_hot_soft_equals_hard() {
    let tau = 0.7f64;
    let l = with("yojo_nway", &[("temperature", F64(tau))]);
    let s = [1.3f32, -0.4, 0.2, 2.5, -3.0, -2.0];
    let t = [0i64, 1, 1];
    let (v, _) = run(&l, &s, 2, Some(&t), None, None).unwrap();
    for i in 0..3 {
        let (w, o) = (
            s[2 * i + t[i] as usize] as f64,
            s[2 * i + 1 - t[i] as usize] as f64,
        );
        let bt = (1.0 + (-(w - o) / tau).exp()).ln();
        assert!((v[i] as f64 - bt).abs() < 1e-6, "{} vs {bt}", v[i]);
    }
    let q = [1.0f32, 0.0, 0.0, 1.0, 0.0, 1.0];
    let (vs, gs) = run(&l, &s, 2, None, Some(&q), None).unwrap();
    let (vh, gh) = run(&l, &s, 2, Some(&t), None, None).unwrap();
    assert_eq!(vs, vh);
    assert_eq!(gs, gh);
    // Padding a row with an invalid third response changes nothing.
    let s3 = [1.3f32, -0.4, 9.0, 0.2, 2.5, 9.0, -3.0, -2.0, 9.0];
    let valid = [1.0f32, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0];
    let (vp, gp) = run(&l, &s3, 3, Some(&t), None, Some(&valid)).unwrap();
    assert_eq!(vp, vh);
    for i in 0..3 {
        assert_eq!(&gp[3 * i..3 * i + 2], &gh[2 * i..2 * i + 2]);
        assert_eq!(gp[3 * i + 2], 0.0);
    }
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(
        set_err("yojo_nway", &[], "temperature", F64(0.0)),
        ErrorKind::InvalidParam
    );
    let l = loss("yojo_nway");
    let s = [0.1f32, 0.2, 0.3, 0.4];
    let q = [0.5f32, 0.5, 0.5, 0.5];
    let kind = |r: losskit::Result<(Vec<f32>, Vec<f32>)>| r.unwrap_err().kind;
    assert_eq!(
        kind(run(&l, &s, 2, None, None, None)),
        ErrorKind::InvalidArg
    );
    assert_eq!(
        kind(run(&l, &s, 2, Some(&[0, 1]), Some(&q), None)),
        ErrorKind::InvalidArg
    );
    assert_eq!(
        kind(run(&l, &s, 2, Some(&[0, 2]), None, None)),
        ErrorKind::InvalidTarget
    );
    let valid = [1.0f32, 0.0, 1.0, 1.0];
    assert_eq!(
        kind(run(&l, &s, 2, Some(&[1, 0]), None, Some(&valid))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(run(&l, &s, 2, None, Some(&q), Some(&valid))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(run(&l, &s, 2, None, Some(&[-0.1, 1.0, 0.5, 0.5]), None)),
        ErrorKind::InvalidInput
    );
    let l = with("yojo_nway", &[("ignore_index", I64(1))]);
    assert_eq!(
        kind(run(&l, &s, 2, Some(&[0, 1]), None, None)),
        ErrorKind::InvalidParam
    );
}
