//! seppo: goldens, finite differences, the anchor criterion (Diffusion-DPO when the policy
//! beats the reference on the winning image, the sample learnt from as a winner otherwise),
//! bad input.

use losskit::ErrorKind;
use losskit::ParamValue::F64;
use losskit::{Compute, Loss, Reduction, Tensor, TensorMut};

use super::{choice, golden, gradcheck_all, set_err, with};

const ID: &str = "seppo";

#[test]
fn golden_values() {
    golden(ID);
}

#[test]
fn gradcheck() {
    gradcheck_all(ID, &[("B", 6)]);
}

/// Per-row losses and the gradients of the sum for `err_win`, `err_sample`.
fn run(l: &Loss, x: [&[f32]; 4]) -> losskit::Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let b = x[0].len();
    let mut out = vec![0.0f32; b];
    let (mut gw, mut gs) = (vec![0.0f32; b], vec![0.0f32; b]);
    {
        let mut c = Compute::new(Reduction::None, &mut out);
        for t in x {
            c = c.input(Tensor::f32(t, &[b]));
        }
        c = c
            .grad(0, TensorMut::new(&mut gw, &[b]))
            .grad(2, TensorMut::new(&mut gs, &[b]));
        l.compute(&mut c)?;
    }
    Ok((out, gw, gs))
}

#[test]
fn anchor_decides_whether_the_reference_sample_loses() {
    // Pair 0: the policy fits the winning image better than the reference (d_w < 0);
    // pair 1: worse (d_w > 0).
    let (ew, ewr) = ([0.10f32, 0.30], [0.20f32, 0.20]);
    let (es, esr) = ([0.25f32, 0.25], [0.20f32, 0.20]);
    let beta = 4.0;
    let anchor = with(ID, &[("beta", F64(beta))]);
    let lose = with(
        ID,
        &[
            ("beta", F64(beta)),
            ("criterion", choice(ID, "criterion", "always_lose")),
        ],
    );
    let (va, gwa, gsa) = run(&anchor, [&ew, &ewr, &es, &esr]).unwrap();
    let (vl, gwl, gsl) = run(&lose, [&ew, &ewr, &es, &esr]).unwrap();
    // d_w ≤ 0: the sample is a loser, exactly Diffusion-DPO.
    assert_eq!((va[0], gwa[0], gsa[0]), (vl[0], gwl[0], gsl[0]));
    // Diffusion-DPO pushes the sample's error up (a loser) ...
    assert!(gsl[1] < 0.0);
    // ... the anchor criterion learns from it as a winner: its error goes down.
    assert!(gsa[1] > 0.0 && gwa[1] > 0.0);
    // Diffusion-DPO value: −log σ(−½β(d_w − d_r)).
    let x = -0.5 * beta * ((0.30f64 - 0.20) - (0.25 - 0.20));
    let want = (1.0 + (-x).exp()).ln();
    assert!((vl[1] as f64 - want).abs() < 1e-6);
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(set_err(ID, &[], "beta", F64(0.0)), ErrorKind::InvalidParam);
    let l = with(ID, &[]);
    let ok = [0.1f32];
    for k in 0..4 {
        let mut x: [&[f32]; 4] = [&ok, &ok, &ok, &ok];
        x[k] = &[-0.01];
        assert_eq!(run(&l, x).unwrap_err().kind, ErrorKind::InvalidInput);
    }
}
