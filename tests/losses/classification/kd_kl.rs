//! kd_kl: golden values, gradients, and the paper's properties (zero when student equals
//! teacher; non-negative; invariant to per-row shifts of either input; the student
//! gradient is `T·(softmax(s/T) - softmax(t/T))`).

use std::collections::BTreeMap;

use losskit::ParamValue::F64;
use losskit::Reduction;
use losskit::testing::{Case, OwnedData};

use super::helpers::*;
use crate::common::assert_close;

#[test]
fn kd_kl_matches_golden() {
    crate::golden::check("kd_kl");
}

#[test]
fn kd_kl_gradients_match_finite_differences() {
    gradcheck_all("kd_kl");
}

#[test]
fn kd_kl_rejects_bad_temperature() {
    for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        expect_invalid_param("kd_kl", "temperature", F64(v));
    }
    expect_valid_param("kd_kl", "temperature", F64(1e-3));
}

#[test]
fn kd_kl_is_zero_when_student_equals_teacher() {
    let dims = BTreeMap::from([("N".to_string(), 5), ("C".to_string(), 8)]);
    for temp in [1.0, 4.0, 0.3] {
        let l = with_params("kd_kl", &[("temperature", F64(temp))]);
        let mut case = Case::random(&l, &dims, 91, false);
        let s = case.inputs[0].clone();
        case.inputs[1] = s;
        for red in REDUCTIONS {
            let o = case.run(&l, red, true, None).unwrap();
            assert!(o.loss.iter().all(|&v| v == 0.0), "T={temp}: {:?}", o.loss);
            assert!(o.grads[0].as_ref().unwrap().iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn kd_kl_is_nonnegative_and_shift_invariant() {
    let dims = BTreeMap::from([("N".to_string(), 6), ("C".to_string(), 7)]);
    for temp in [1.0, 4.0] {
        let l = with_params("kd_kl", &[("temperature", F64(temp))]);
        let case = Case::random(&l, &dims, 92, false);
        let base = case.run(&l, Reduction::None, true, None).unwrap();
        assert!(base.loss.iter().all(|&v| v >= 0.0));
        let mut moved = case.clone();
        for k in 0..2 {
            if let Some(OwnedData::F32(z)) = moved.inputs[k].as_mut().map(|t| &mut t.data) {
                for (j, v) in z.iter_mut().enumerate() {
                    *v += (j / 7) as f32 * 0.5 - 1.0 + k as f32;
                }
            }
        }
        let m = moved.run(&l, Reduction::None, true, None).unwrap();
        let want: Vec<f64> = base.loss.iter().map(|&v| v as f64).collect();
        assert_close("row shift", &m.loss, &want, 2e-5);
        let wg: Vec<f64> = base.grads[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        assert_close("row shift grad", m.grads[0].as_ref().unwrap(), &wg, 2e-5);
    }
}
