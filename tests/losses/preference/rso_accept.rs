//! rso_accept: goldens (value, `accepted`, `rso_accept_prob`), the limits of the target
//! temperature (β → 0 picks by reward, β → ∞ takes candidates in order), padding is never
//! picked, bad input.

use losskit::ErrorKind;
use losskit::ParamValue::{F64, I64};
use losskit::{Compute, Loss, Reduction, Tensor, TensorMut};

use super::{golden, with};

const ID: &str = "rso_accept";

#[test]
fn golden_values() {
    golden(ID);
}

/// `accepted` of one prompt.
fn pick(l: &Loss, r: &[f32], u: &[f32], valid: Option<&[f32]>) -> losskit::Result<Vec<f32>> {
    let k = r.len();
    let mut out = vec![0.0f32; 1];
    let mut acc = vec![f32::NAN; k];
    {
        let mut c = Compute::new(Reduction::None, &mut out)
            .input(Tensor::f32(r, &[1, k]))
            .input(Tensor::f32(u, &[1, k, k]));
        c = match valid {
            Some(v) => c.input(Tensor::f32(v, &[1, k])),
            None => c.absent(),
        };
        c = c.aux("accepted", TensorMut::new(&mut acc, &[1, k]));
        l.compute(&mut c)?;
    }
    Ok(acc)
}

const R: [f32; 5] = [0.3, 1.2, -0.5, 0.9, 0.0];

#[test]
fn temperature_limits() {
    let u = [0.5f32; 25];
    // β → 0: only the current maximum passes each round: descending reward order.
    let sharp = with(ID, &[("beta", F64(1e-3)), ("num_samples", I64(4))]);
    assert_eq!(
        pick(&sharp, &R, &u, None).unwrap(),
        [1.0, 3.0, 0.0, 4.0, -1.0]
    );
    // β → ∞: every candidate passes in round 0, in index order.
    let flat = with(ID, &[("beta", F64(1e6)), ("num_samples", I64(3))]);
    assert_eq!(
        pick(&flat, &R, &u, None).unwrap(),
        [0.0, 1.0, 2.0, -1.0, -1.0]
    );
    // Padding is never picked, and the best valid candidate always is.
    let valid = [1.0f32, 0.0, 1.0, 1.0, 1.0];
    let l = with(ID, &[("num_samples", I64(2))]);
    let got = pick(&l, &R, &u, Some(&valid)).unwrap();
    assert!(!got.contains(&1.0) && got.contains(&3.0), "{got:?}");
}

#[test]
fn bad_input_is_rejected() {
    let u = [0.5f32; 25];
    let l = with(ID, &[]); // num_samples 8 > K = 5
    assert_eq!(
        pick(&l, &R, &u, None).unwrap_err().kind,
        ErrorKind::InvalidParam
    );
    let l = with(ID, &[("num_samples", I64(5))]);
    let valid = [1.0f32, 0.0, 1.0, 1.0, 1.0];
    assert_eq!(
        pick(&l, &R, &u, Some(&valid)).unwrap_err().kind,
        ErrorKind::InvalidInput
    );
    let mut bad = u;
    bad[7] = 1.0;
    assert_eq!(
        pick(&l, &R, &bad, None).unwrap_err().kind,
        ErrorKind::InvalidInput
    );
    let mut l2 = with(ID, &[]);
    assert_eq!(
        l2.set_i64("num_samples", 0).unwrap_err().kind,
        ErrorKind::InvalidParam
    );
}
