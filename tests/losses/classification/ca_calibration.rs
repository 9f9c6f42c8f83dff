//! ca_calibration: golden values, finite differences, the balance the code intends, the
//! ref_pred default, bad inputs.

use losskit::testing::{Case, OwnedData};
use losskit::{Context, ErrorKind, Reduction};

use super::golden_b::*;
use crate::common::{GRAD_TOL, LOSS_TOL};

const ID: &str = "ca_calibration";

fn dims(n: usize, c: usize) -> std::collections::BTreeMap<String, usize> {
    [("N".to_string(), n), ("C".to_string(), c)]
        .into_iter()
        .collect()
}

fn i64s(case: &Case, k: usize) -> Vec<i64> {
    match &case.inputs[k].as_ref().unwrap().data {
        OwnedData::I64(v) => v.clone(),
        _ => panic!("not i64"),
    }
}

/// Max-softmax confidence and first arg-max of each row, in f64.
fn conf_argmax(z: &[f32], c: usize) -> Vec<(f64, usize)> {
    z.chunks(c)
        .map(|r| {
            let mut k = 0;
            for j in 1..c {
                if r[j] > r[k] {
                    k = j;
                }
            }
            let s: f64 = r.iter().map(|&v| (v as f64 - r[k] as f64).exp()).sum();
            (1.0 / s, k)
        })
        .collect()
}

#[test]
fn ca_calibration_matches_golden_values() {
    crate::golden::check_with(ID, LOSS_TOL, GRAD_TOL);
}

#[test]
fn ca_calibration_gradient_matches_finite_differences() {
    fd_check_all(ID, &[("N", 8), ("C", 5)], &[1, 2]);
}

#[test]
fn balanced_objective_weighs_correct_and_wrong_rows_equally() {
    // With balance, L = (mean over correct rows of (conf - 1)² + mean over wrong rows of
    // conf²) / 2: the two groups weigh the same whatever the accuracy.
    let loss = Context::cpu().loss(ID).unwrap();
    let (n, c) = (12, 4);
    let mut case = Case::random(&loss, &dims(n, c), 7, true);
    let z = case.inputs[0].as_ref().unwrap().f32().to_vec();
    let ca = conf_argmax(&z, c);
    let mut target: Vec<i64> = ca.iter().map(|p| p.1 as i64).collect();
    for t in target.iter_mut().skip(9) {
        *t = (*t + 1) % c as i64; // 9 correct rows, 3 wrong ones
    }
    set_i64(&mut case, 1, target.clone());
    set_i64(&mut case, 2, ca.iter().map(|p| p.1 as i64).collect());
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (i, &(conf, k)) in ca.iter().enumerate() {
        if k as i64 == target[i] {
            good.push((conf - 1.0).powi(2));
        } else {
            bad.push(conf * conf);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let want = 0.5 * (mean(&good) + mean(&bad));
    let o = case.run(&loss, Reduction::Mean, false, None).unwrap();
    assert!(
        (o.loss[0] as f64 - want).abs() < 1e-6,
        "{} vs {want}",
        o.loss[0]
    );
    let s = case.run(&loss, Reduction::Sum, false, None).unwrap();
    assert_eq!(
        o.loss, s.loss,
        "batch-level: mean and sum are the same scalar"
    );
}

#[test]
fn absent_ref_pred_is_the_argmax_and_survives_temperature_scaling() {
    let loss = Context::cpu().loss(ID).unwrap();
    let (n, c) = (10, 6);
    let with = Case::random(&loss, &dims(n, c), 3, true);
    let z = with.inputs[0].as_ref().unwrap().f32().to_vec();
    let am: Vec<i64> = conf_argmax(&z, c).iter().map(|p| p.1 as i64).collect();
    let mut with = with;
    set_i64(&mut with, 2, am.clone());
    let mut without = with.clone();
    without.inputs[2] = None;
    let a = with.run(&loss, Reduction::Mean, true, None).unwrap();
    let b = without.run(&loss, Reduction::Mean, true, None).unwrap();
    assert_eq!(a.loss, b.loss);
    assert_eq!(a.grads[0], b.grads[0]);
    // A temperature keeps the arg-max, so the default correctness is that of the original
    // classifier: scaled logits with ref_pred = original arg-max give the same as absent.
    let mut scaled = without.clone();
    set_f32(&mut scaled, 0, z.iter().map(|v| v * 0.37).collect());
    let mut scaled_ref = scaled.clone();
    scaled_ref.inputs[2] = with.inputs[2].clone();
    let a = scaled.run(&loss, Reduction::Mean, true, None).unwrap();
    let b = scaled_ref.run(&loss, Reduction::Mean, true, None).unwrap();
    assert_eq!(a.loss, b.loss);
    assert_eq!(a.grads[0], b.grads[0]);
}

#[test]
fn ca_calibration_edge_cases_and_bad_inputs() {
    let ctx = Context::cpu();
    let loss = ctx.loss(ID).unwrap();
    let mut case = Case::random(&loss, &dims(6, 4), 2, true);
    // reduction none is not defined for a batch-level loss.
    let e = case.run(&loss, Reduction::None, true, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    // Every row ignored: 0 with zero gradient.
    let mut all_ignored = case.clone();
    set_i64(&mut all_ignored, 1, vec![-100; 6]);
    for red in [Reduction::Mean, Reduction::Sum] {
        let o = all_ignored.run(&loss, red, true, None).unwrap();
        assert_eq!(o.loss, vec![0.0]);
        assert!(o.grads[0].as_ref().unwrap().iter().all(|&g| g == 0.0));
    }
    // ref_pred out of range on a contributing row; any value on an ignored row.
    let mut t = i64s(&case, 1);
    t[0] = 1;
    t[1] = -100;
    set_i64(&mut case, 1, t);
    let mut r = i64s(&case, 2);
    r[1] = 99;
    set_i64(&mut case, 2, r.clone());
    case.run(&loss, Reduction::Mean, true, None).unwrap();
    r[0] = 4;
    set_i64(&mut case, 2, r);
    assert_input_error(&loss, &case, ErrorKind::InvalidTarget, "ref_pred[0]");
    let mut bad = Case::random(&loss, &dims(6, 4), 2, false);
    let mut t = i64s(&bad, 1);
    t[5] = -1;
    set_i64(&mut bad, 1, t);
    assert_input_error(&loss, &bad, ErrorKind::InvalidTarget, "target[5]");
}
