//! aldr_kl: golden values (loss, gradient and `lambda_out`), gradients, and the paper's
//! properties (λ stays in `[lam0(1 - 1/alpha), lam0]`; it is the maximiser of the
//! regularised objective; absent `lambda_prev` is the same as passing `lam0`; ignored rows
//! copy `lambda_prev`).

use std::collections::BTreeMap;

use losskit::ParamValue::{Enum, F64};
use losskit::testing::{Case, OwnedData, OwnedTensor};
use losskit::{ErrorKind, Reduction};

use super::helpers::*;

fn case_with_prev(l: &losskit::Loss, seed: u64) -> Case {
    let dims = BTreeMap::from([("N".to_string(), 9), ("C".to_string(), 6)]);
    Case::random(l, &dims, seed, true)
}

#[test]
fn aldr_kl_matches_golden() {
    crate::golden::check("aldr_kl");
}

/// The gradient treats `λ_i` as a constant (detached, as specified), so it is the derivative
/// of the loss value only where `λ_i` is stationary: at the fixed point `λ̄ = λ_i` the
/// derivative of the value in λ vanishes (envelope theorem), and finite differences of the
/// value must match the gradient. Iterate `lambda_prev <- lambda_out` to that point first.
#[test]
fn aldr_kl_gradients_match_finite_differences_at_the_fixed_point() {
    for (p, loss) in param_sets("aldr_kl").iter().enumerate() {
        for seed in [61u64, 62] {
            let mut case = Case::random(loss, &BTreeMap::new(), seed + 10 * p as u64, true);
            let n = case.rows(&loss.def().spec);
            let mut gap = f64::INFINITY;
            for _ in 0..500 {
                let (_, _, aux) = run_with_aux(loss, &case, Reduction::None, &["lambda_out"]);
                let prev = case.inputs[2].as_ref().unwrap().f32().to_vec();
                gap = aux[0]
                    .iter()
                    .zip(&prev)
                    .map(|(a, b)| (a - b).abs() as f64)
                    .fold(0.0, f64::max);
                case.inputs[2] = Some(OwnedTensor {
                    data: OwnedData::F32(aux[0].clone()),
                    shape: vec![n],
                });
                if gap < 1e-6 {
                    break;
                }
            }
            assert!(gap < 1e-4, "params #{p}: no fixed point (gap {gap})");
            for red in REDUCTIONS {
                fd_check(loss, &case, red, p);
            }
        }
    }
}

/// Central differences with a step of `1e-3·max(|x|, 0.5)`: `gradcheck`'s `1e-2` step is too
/// coarse here, because the value also moves through `λ_i` to second order.
fn fd_check(loss: &losskit::Loss, case: &Case, red: Reduction, p: usize) {
    let base = case.run(loss, red, true, None).unwrap();
    let g = base.grads[0].as_ref().unwrap();
    let x = case.inputs[0].as_ref().unwrap().f32().to_vec();
    let total = |c: &Case| -> f64 {
        c.run(loss, red, false, None)
            .unwrap()
            .loss
            .iter()
            .map(|&v| v as f64)
            .sum()
    };
    let mag = total(case).abs();
    for idx in 0..x.len() {
        let h = 1e-3 * x[idx].abs().max(0.5);
        let at = |v: f32| {
            let mut c2 = case.clone();
            if let Some(OwnedTensor {
                data: OwnedData::F32(d),
                ..
            }) = &mut c2.inputs[0]
            {
                d[idx] = v;
            }
            total(&c2)
        };
        let (hp, hm) = (x[idx] + h, x[idx] - h);
        let num = (at(hp) - at(hm)) / (hp as f64 - hm as f64);
        let err = (g[idx] as f64 - num).abs();
        // f32 rounding of the value over the step: about 3e-5·|loss|.
        let tol = 1e-2 * num.abs() + 1e-3 + 1e-4 * mag;
        assert!(
            err <= tol,
            "params #{p} {}: d/dlogits[{idx}] = {} but finite differences give {num}",
            red.name(),
            g[idx]
        );
    }
}

#[test]
fn aldr_kl_gradient_is_the_detached_one_away_from_the_fixed_point() {
    // Away from the fixed point the value also moves through λ_i, so finite differences of
    // the value must differ from the (detached) gradient: this is what the spec asks for.
    let l = with_params("aldr_kl", &[("lam0", F64(1.0))]);
    let case = Case::random(&l, &BTreeMap::new(), 63, false);
    let worst = losskit::testing::gradcheck(&l, &case, Reduction::Sum, 64)
        .unwrap()
        .iter()
        .map(|r| r.max_abs)
        .fold(0.0, f64::max);
    assert!(
        worst > 1e-2,
        "detached and total derivative agree ({worst})"
    );
}

#[test]
fn aldr_kl_ignored_rows_contribute_nothing() {
    check_ignored_rows("aldr_kl");
}

#[test]
fn aldr_kl_rejects_bad_params_and_inputs() {
    for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        expect_invalid_param("aldr_kl", "lam0", F64(v));
    }
    for v in [1.0, 0.5, f64::NAN] {
        expect_invalid_param("aldr_kl", "alpha", F64(v));
    }
    expect_invalid_param("aldr_kl", "margin", F64(-0.1));
    expect_invalid_param("aldr_kl", "normalize", Enum(7));
    expect_valid_param("aldr_kl", "alpha", F64(1.0000001));
    let l = with_params("aldr_kl", &[]);
    // One class: the update divides by log C.
    let c1 = case_of(
        &l,
        &[
            ("logits", &[2, 1], &[0.5, 1.0]),
            ("target", &[2], &[0.0, 0.0]),
        ],
    );
    let e = c1.run(&l, Reduction::Mean, true, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ShapeMismatch);
    // A non-positive previous temperature.
    let bad = case_of(
        &l,
        &[
            ("logits", &[2, 3], &[0.5, 1.0, 0.0, 1.0, 2.0, 3.0]),
            ("target", &[2], &[0.0, 1.0]),
            ("lambda_prev", &[2], &[1.0, 0.0]),
        ],
    );
    let e = bad.run(&l, Reduction::Mean, true, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.msg.contains("lambda_prev[1]"), "{}", e.msg);
}

#[test]
fn lambda_out_is_bounded_and_absent_prev_means_lam0() {
    for (lam0, alpha) in [(10.0, 2.0), (1.0, 1.5), (0.5, 4.0)] {
        let l = with_params("aldr_kl", &[("lam0", F64(lam0)), ("alpha", F64(alpha))]);
        let mut with = case_with_prev(&l, 51);
        let n = with.rows(&l.def().spec);
        let without = {
            let mut c = with.clone();
            c.inputs[2] = None;
            c
        };
        with.inputs[2] = Some(OwnedTensor {
            data: OwnedData::F32(vec![lam0 as f32; n]),
            shape: vec![n],
        });
        let (la, ga, aa) = run_with_aux(&l, &with, Reduction::None, &["lambda_out"]);
        let (lb, gb, ab) = run_with_aux(&l, &without, Reduction::None, &["lambda_out"]);
        assert_eq!(la, lb);
        assert_eq!(ga[0], gb[0]);
        assert_eq!(aa, ab);
        let lo = lam0 * (1.0 - 1.0 / alpha);
        for &v in &aa[0] {
            assert!(
                v as f64 >= lo * (1.0 - 1e-6) && v as f64 <= lam0 * (1.0 + 1e-6),
                "{v}"
            );
        }
    }
}

#[test]
fn lambda_out_maximises_the_regularised_objective() {
    // λ* = argmax_λ Σ q̂ a - λ KL(q̂‖u) - (alpha log C / (2 lam0)) (λ - lam0)²  for q̂ fixed:
    // the objective is concave in λ, so nudging λ* either way must not increase it.
    let (lam0, alpha, margin) = (2.0f64, 2.0f64, 0.1f64);
    let l = with_params(
        "aldr_kl",
        &[
            ("lam0", F64(lam0)),
            ("alpha", F64(alpha)),
            ("normalize", Enum(0)),
            ("margin", F64(margin)),
        ],
    );
    let case = case_with_prev(&l, 52);
    let (_, _, aux) = run_with_aux(&l, &case, Reduction::None, &["lambda_out"]);
    let z = case.inputs[0].as_ref().unwrap().f32();
    let OwnedData::I64(t) = &case.inputs[1].as_ref().unwrap().data else {
        panic!()
    };
    let prev = case.inputs[2].as_ref().unwrap().f32();
    let c = 6usize;
    let log_c = (c as f64).ln();
    for (i, &y) in t.iter().enumerate() {
        if y < 0 {
            assert_eq!(aux[0][i], prev[i], "ignored row copies lambda_prev");
            continue;
        }
        let y = y as usize;
        let a: Vec<f64> = (0..c)
            .map(|k| z[i * c + k] as f64 - z[i * c + y] as f64 + if k == y { 0.0 } else { margin })
            .collect();
        let lb = prev[i] as f64;
        let m = a.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m / lb + a.iter().map(|v| (v / lb - m / lb).exp()).sum::<f64>().ln();
        let q: Vec<f64> = a.iter().map(|v| (v / lb - lse).exp()).collect();
        let kl = log_c + q.iter().map(|p| p * p.ln()).sum::<f64>();
        let obj = |lam: f64| -lam * kl - alpha * log_c / (2.0 * lam0) * (lam - lam0).powi(2);
        let star = aux[0][i] as f64;
        for d in [1e-3, -1e-3, 0.1, -0.1] {
            assert!(
                obj(star + d) <= obj(star) + 1e-9,
                "row {i}: λ* = {star}, d = {d}"
            );
        }
    }
}
