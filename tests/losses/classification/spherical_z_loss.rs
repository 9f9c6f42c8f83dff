//! spherical_z_loss: golden values, gradients, and the paper's properties (invariance to
//! `o -> α·o + β` with the gradient scaling by `1/α`; constant rows give `softplus(a·b)/a`
//! with zero gradient; the loss falls as the target logit rises).

use std::collections::BTreeMap;

use losskit::ParamValue::F64;
use losskit::Reduction;
use losskit::testing::{Case, OwnedData};

use super::helpers::*;
use crate::common::assert_close;

#[test]
fn spherical_z_loss_matches_golden() {
    crate::golden::check("spherical_z_loss");
}

#[test]
fn spherical_z_loss_gradients_match_finite_differences() {
    gradcheck_all("spherical_z_loss");
}

#[test]
fn spherical_z_loss_ignored_rows_contribute_nothing() {
    check_ignored_rows("spherical_z_loss");
}

#[test]
fn spherical_z_loss_rejects_bad_params() {
    for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        expect_invalid_param("spherical_z_loss", "a", F64(v));
    }
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        expect_invalid_param("spherical_z_loss", "b", F64(v));
    }
    expect_valid_param("spherical_z_loss", "b", F64(-1e6));
}

#[test]
fn shift_and_scale_invariance() {
    let dims = BTreeMap::from([("N".to_string(), 8), ("C".to_string(), 6)]);
    for (a, b) in [(1.0, 0.0), (2.5, 0.7)] {
        let l = with_params("spherical_z_loss", &[("a", F64(a)), ("b", F64(b))]);
        let case = Case::random(&l, &dims, 71, false);
        let base = case.run(&l, Reduction::None, true, None).unwrap();
        for (alpha, beta) in [(2.0f32, 0.0f32), (0.5, 3.0), (1.0, -7.25), (4.0, 1.5)] {
            let mut moved = case.clone();
            if let Some(OwnedData::F32(z)) = moved.inputs[0].as_mut().map(|t| &mut t.data) {
                for v in z.iter_mut() {
                    *v = alpha * *v + beta;
                }
            }
            let m = moved.run(&l, Reduction::None, true, None).unwrap();
            let want: Vec<f64> = base.loss.iter().map(|&v| v as f64).collect();
            assert_close(&format!("loss at {alpha}o+{beta}"), &m.loss, &want, 2e-5);
            let wg: Vec<f64> = base.grads[0]
                .as_ref()
                .unwrap()
                .iter()
                .map(|&v| v as f64 / alpha as f64)
                .collect();
            assert_close(
                "grad scales by 1/alpha",
                m.grads[0].as_ref().unwrap(),
                &wg,
                2e-5,
            );
        }
    }
}

#[test]
fn constant_rows_and_one_class() {
    for (a, b) in [(1.0f64, 0.0f64), (2.0, 0.5), (0.5, -3.0)] {
        let l = with_params("spherical_z_loss", &[("a", F64(a)), ("b", F64(b))]);
        let want = ((a * b).max(0.0) + (-(a * b).abs()).exp().ln_1p()) / a;
        for (shape, data) in [
            (vec![2usize, 4usize], vec![1.5f64; 8]),
            (vec![2, 1], vec![-0.3, 9.0]),
        ] {
            let case = case_of(
                &l,
                &[("logits", &shape, &data), ("target", &[2], &[0.0, 0.0])],
            );
            let o = case.run(&l, Reduction::None, true, None).unwrap();
            assert_close("constant row", &o.loss, &[want, want], 1e-6);
            assert!(o.grads[0].as_ref().unwrap().iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn loss_falls_as_the_target_logit_rises() {
    let l = with_params("spherical_z_loss", &[]);
    let mut prev = f32::INFINITY;
    for k in 0..10 {
        let zy = -2.0 + 0.5 * k as f64;
        let case = case_of(
            &l,
            &[
                ("logits", &[1, 4], &[zy, 0.3, -0.4, 1.0]),
                ("target", &[1], &[0.0]),
            ],
        );
        let v = rows_of(&l, &case)[0];
        assert!(v < prev, "{v} >= {prev}");
        prev = v;
    }
}
