//! kto: goldens, finite differences, the clamped KL reference point, bad input.

use losskit::ParamValue::F64;
use losskit::{Compute, ErrorKind, Reduction, Tensor};

use super::{golden, gradcheck_all, loss, set_err, with};

#[test]
fn golden_values() {
    golden("kto");
}

#[test]
fn gradcheck() {
    gradcheck_all("kto", &[("N", 6), ("M", 4)]);
}

fn run(
    l: &losskit::Loss,
    lp: &[f32],
    rf: &[f32],
    des: &[i64],
    kl: Option<(&[f32], &[f32])>,
) -> losskit::Result<Vec<f32>> {
    let n = lp.len();
    let mut out = vec![0.0f32; n];
    {
        let mut c = Compute::new(Reduction::None, &mut out)
            .input(Tensor::f32(lp, &[n]))
            .input(Tensor::f32(rf, &[n]))
            .input(Tensor::i64(des, &[n]));
        if let Some((a, b)) = kl {
            c = c
                .input(Tensor::f32(a, &[a.len()]))
                .input(Tensor::f32(b, &[b.len()]));
        }
        l.compute(&mut c)?;
    }
    Ok(out)
}

#[test]
fn desirable_and_undesirable_losses_sum_to_one_and_kl_point_is_clamped() {
    let l = with("kto", &[("beta", F64(0.5))]);
    let (lp, rf) = ([-3.0f32, -3.0, -7.0, -7.0], [-4.0f32, -4.0, -5.0, -5.0]);
    let v = run(&l, &lp, &rf, &[1, 0, 1, 0], None).unwrap();
    assert!((v[0] + v[1] - 1.0).abs() < 1e-6 && (v[2] + v[3] - 1.0).abs() < 1e-6);
    // A negative KL estimate is clamped to 0: same as no KL inputs; an empty set gives 0 too.
    let neg = run(
        &l,
        &lp,
        &rf,
        &[1, 0, 1, 0],
        Some((&[-9.0, -8.0], &[-2.0, -3.0])),
    )
    .unwrap();
    assert_eq!(neg, v);
    assert_eq!(
        run(&l, &lp, &rf, &[1, 0, 1, 0], Some((&[], &[]))).unwrap(),
        v
    );
    // A positive one moves the reference point: desirable responses look worse.
    let pos = run(&l, &lp, &rf, &[1, 0, 1, 0], Some((&[-1.0], &[-3.0]))).unwrap();
    assert!(pos[0] > v[0] && pos[1] < v[1]);
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(
        set_err("kto", &[], "desirable_weight", F64(-1.0)),
        ErrorKind::InvalidParam
    );
    assert_eq!(
        set_err("kto", &[], "beta", F64(0.0)),
        ErrorKind::InvalidParam
    );
    let l = loss("kto");
    let e = run(&l, &[-1.0], &[-1.0], &[2], None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    let mut out = [0.0f32];
    let mut c = Compute::new(Reduction::Sum, &mut out)
        .input(Tensor::f32(&[-1.0], &[1]))
        .input(Tensor::f32(&[-1.0], &[1]))
        .input(Tensor::i64(&[1], &[1]))
        .input(Tensor::f32(&[-1.0], &[1]));
    assert_eq!(l.compute(&mut c).unwrap_err().kind, ErrorKind::InvalidArg);
}
