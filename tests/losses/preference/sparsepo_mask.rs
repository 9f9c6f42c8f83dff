//! sparsepo_mask: goldens (value and the `token_mask` output), the mask is in [0, 1] with the
//! extremes at the row's min and max token, invariant to a positive affine map of a layer's
//! activations (why the official z-normalisation cancels), bad input.

use losskit::{Compute, ErrorKind, Reduction, Tensor, TensorMut};

use super::{golden, loss};

const ID: &str = "sparsepo_mask";

#[test]
fn golden_values() {
    golden(ID);
}

fn run(act: &[f32], mask: &[f32], l: usize, n: usize, t: usize) -> losskit::Result<Vec<f32>> {
    let mut out = vec![0.0f32; n];
    let mut m = vec![f32::NAN; n * t];
    {
        let mut c = Compute::new(Reduction::None, &mut out)
            .input(Tensor::f32(act, &[l, n, t]))
            .input(Tensor::f32(mask, &[n, t]))
            .aux("token_mask", TensorMut::new(&mut m, &[n, t]));
        loss(ID).compute(&mut c)?;
    }
    Ok(m)
}

#[test]
fn mask_is_a_rescaling_invariant_to_affine_maps() {
    let act = [0.3f32, -1.0, 2.0, 0.5, 4.0, 1.0, 1.0, -2.0];
    let mask = [1.0f32, 1.0, 1.0, 0.0];
    let m = run(&act, &mask, 2, 1, 4).unwrap();
    // Over the three masked tokens: layer 0 maps -1 → 0, 2 → 1; layer 1 maps 1 → 0, 4 → 1
    // (the unmasked -2 takes no part).
    let want = [0.5 * ((0.3 + 1.0) / 3.0 + 1.0), 0.0, 0.5 * (1.0 + 0.0), 0.0];
    for (a, b) in m.iter().zip(want) {
        assert!((*a as f64 - b).abs() < 1e-6, "{m:?} vs {want:?}");
    }
    assert!(m.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let mapped: Vec<f32> = act
        .iter()
        .enumerate()
        .map(|(j, &v)| if j < 4 { 3.0 * v - 7.0 } else { 0.5 * v + 2.0 })
        .collect();
    let m2 = run(&mapped, &mask, 2, 1, 4).unwrap();
    for (a, b) in m.iter().zip(&m2) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn bad_input_is_rejected() {
    let e = run(&[0.0, 1.0], &[1.0, 0.5], 1, 1, 2).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    let e = run(&[], &[1.0, 1.0], 0, 1, 2).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
}
