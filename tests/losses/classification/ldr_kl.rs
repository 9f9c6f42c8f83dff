//! ldr_kl: golden values for every normalisation, gradients, and the paper's properties
//! (margin 0 and no normalisation is temperature-scaled cross-entropy minus λ·log C; one
//! class gives 0; without normalisation the loss is shift invariant; the loss lies between
//! the mean and the max of the margins).

use std::collections::BTreeMap;

use losskit::ParamValue::{Enum, F64};
use losskit::testing::{Case, OwnedData};
use losskit::{Context, Reduction};

use super::helpers::*;
use crate::common::{GRAD_TOL, LOSS_TOL, assert_close};

#[test]
fn ldr_kl_matches_golden() {
    crate::golden::check("ldr_kl");
}

#[test]
fn ldr_kl_gradients_match_finite_differences() {
    gradcheck_all("ldr_kl");
}

#[test]
fn ldr_kl_ignored_rows_contribute_nothing() {
    check_ignored_rows("ldr_kl");
}

#[test]
fn ldr_kl_rejects_bad_params() {
    for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        expect_invalid_param("ldr_kl", "lam", F64(v));
    }
    for v in [-1e-9, f64::NAN] {
        expect_invalid_param("ldr_kl", "margin", F64(v));
    }
    expect_invalid_param("ldr_kl", "normalize", Enum(3));
    expect_valid_param("ldr_kl", "margin", F64(0.0));
    expect_valid_param("ldr_kl", "lam", F64(1e-3));
}

#[test]
fn margin_zero_without_normalisation_is_temperature_scaled_ce() {
    let ce = Context::cpu().loss("cross_entropy").unwrap();
    let dims = BTreeMap::from([("N".to_string(), 9), ("C".to_string(), 6)]);
    for t in [1.0f64, 0.5, 3.0] {
        let l = with_params(
            "ldr_kl",
            &[
                ("normalize", Enum(0)),
                ("margin", F64(0.0)),
                ("lam", F64(t)),
            ],
        );
        let case = Case::random(&l, &dims, 41, false);
        let mut scaled = case.clone();
        if let Some(OwnedData::F32(z)) = scaled.inputs[0].as_mut().map(|t| &mut t.data) {
            for v in z.iter_mut() {
                *v = (*v as f64 / t) as f32;
            }
        }
        scaled.inputs.extend([None, None]);
        let log_c = 6f64.ln();
        let a = case.run(&l, Reduction::None, true, None).unwrap();
        let b = scaled.run(&ce, Reduction::None, true, None).unwrap();
        let want: Vec<f64> = b
            .loss
            .iter()
            .map(|&v| {
                if v == 0.0 {
                    0.0
                } else {
                    t * (v as f64 - log_c)
                }
            })
            .collect();
        // Ignored rows are 0 in both.
        let got: Vec<f32> = a.loss.clone();
        assert_close(
            &format!("ldr(T={t}) vs T(CE(z/T) - log C)"),
            &got,
            &want,
            LOSS_TOL,
        );
        // d/dz [T·CE(z/T)] = CE'(z/T).
        let wg: Vec<f64> = b.grads[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        assert_close(
            "ldr grad vs ce grad",
            a.grads[0].as_ref().unwrap(),
            &wg,
            GRAD_TOL,
        );
    }
}

#[test]
fn one_class_gives_zero() {
    for norm in 0..3 {
        let l = with_params("ldr_kl", &[("normalize", Enum(norm))]);
        let c = case_of(
            &l,
            &[
                ("logits", &[3, 1], &[1.5, -2.0, 0.0]),
                ("target", &[3], &[0.0; 3]),
            ],
        );
        let o = c.run(&l, Reduction::None, true, None).unwrap();
        assert_eq!(o.loss, vec![0.0; 3], "normalize #{norm}");
        assert!(o.grads[0].as_ref().unwrap().iter().all(|&v| v == 0.0));
    }
}

#[test]
fn unnormalised_loss_is_shift_invariant_and_bounded_by_the_margins() {
    let dims = BTreeMap::from([("N".to_string(), 8), ("C".to_string(), 5)]);
    let l = with_params("ldr_kl", &[("normalize", Enum(0)), ("lam", F64(2.0))]);
    let case = Case::random(&l, &dims, 42, false);
    let mut shifted = case.clone();
    if let Some(OwnedData::F32(z)) = shifted.inputs[0].as_mut().map(|t| &mut t.data) {
        for (k, v) in z.iter_mut().enumerate() {
            *v += (k / 5) as f32 * 0.75 - 2.0;
        }
    }
    let a = rows_of(&l, &case);
    let b = rows_of(&l, &shifted);
    let want: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    assert_close("shift invariance", &b, &want, 1e-5);
    // mean_c a_c <= l <= max_c a_c (λ·log-mean-exp lies between the mean and the max).
    let z = case.inputs[0].as_ref().unwrap().f32();
    let OwnedData::I64(t) = &case.inputs[1].as_ref().unwrap().data else {
        panic!("targets")
    };
    for (i, &y) in t.iter().enumerate() {
        if y < 0 {
            continue;
        }
        let row = &z[i * 5..(i + 1) * 5];
        let a: Vec<f64> = (0..5)
            .map(|c| {
                row[c] as f64 - row[y as usize] as f64 + if c == y as usize { 0.0 } else { 0.1 }
            })
            .collect();
        let mean = a.iter().sum::<f64>() / 5.0;
        let max = a.iter().cloned().fold(f64::MIN, f64::max);
        let v = rows_of(&l, &case)[i] as f64;
        assert!(
            mean - 1e-5 <= v && v <= max + 1e-5,
            "row {i}: {mean} <= {v} <= {max}"
        );
    }
}
