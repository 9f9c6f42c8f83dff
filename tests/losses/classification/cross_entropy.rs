//! cross_entropy: golden values from JAX (tests/golden/gen/cross_entropy.py), the in-place
//! and strided paths, auxiliary outputs and the properties its sources state.

use crate::common::assert_close;
use losskit::{Compute, Context, Reduction, Tensor, TensorMut};

#[test]
fn matches_jax_golden_values() {
    crate::golden::check("cross_entropy");
}

fn logits(n: usize, c: usize, seed: u64) -> Vec<f32> {
    let mut r = losskit::testing::Rng::new(seed);
    (0..n * c).map(|_| (3.0 * r.normal()) as f32).collect()
}

fn run(
    ce: &losskit::Loss,
    x: &[f32],
    t: &[i64],
    n: usize,
    c: usize,
    red: Reduction,
) -> (Vec<f32>, Vec<f32>) {
    let mut loss = vec![0.0f32; if red == Reduction::None { n } else { 1 }];
    let mut g = vec![0.0f32; n * c];
    let mut cm = Compute::new(red, &mut loss)
        .input(Tensor::f32(x, &[n, c]))
        .input(Tensor::i64(t, &[n]))
        .grad(0, TensorMut::new(&mut g, &[n, c]));
    ce.compute(&mut cm).unwrap();
    drop(cm);
    (loss, g)
}

#[test]
fn in_place_gradient_equals_separate_buffer_bit_for_bit() {
    let ctx = Context::cpu();
    let mut ce = ctx.loss("cross_entropy").unwrap();
    ce.set_f64("label_smoothing", 0.1).unwrap();
    let (n, c) = (37, 1031);
    let x = logits(n, c, 1);
    let t: Vec<i64> = (0..n as i64).map(|i| (i * 17) % c as i64).collect();
    let (l1, g1) = run(&ce, &x, &t, n, c, Reduction::Mean);
    let mut xi = x.clone();
    let mut l2 = [0.0f32];
    let mut cm = Compute::new(Reduction::Mean, &mut l2)
        .input(Tensor::f32_in_place(&mut xi, &[n, c]))
        .input(Tensor::i64(&t, &[n]))
        .grad_in_place(0);
    ce.compute(&mut cm).unwrap();
    drop(cm);
    assert_eq!(l1[0].to_bits(), l2[0].to_bits());
    assert_eq!(g1, xi);
}

#[test]
fn strided_rows_are_read_and_written_in_place() {
    let ctx = Context::cpu();
    let ce = ctx.loss("cross_entropy").unwrap();
    let (n, c, stride) = (5, 9, 13);
    let x = logits(n, c, 2);
    let t = [0i64, 8, 3, 4, 1];
    let (lc, gc) = run(&ce, &x, &t, n, c, Reduction::Sum);
    let mut wide = vec![-7.0f32; n * stride];
    for i in 0..n {
        wide[i * stride..i * stride + c].copy_from_slice(&x[i * c..(i + 1) * c]);
    }
    let mut gw = vec![99.0f32; n * stride];
    let mut l = [0.0f32];
    let mut cm = Compute::new(Reduction::Sum, &mut l)
        .input(Tensor::f32(&wide, &[n, c]).with_row_stride(stride))
        .input(Tensor::i64(&t, &[n]))
        .grad(0, TensorMut::new(&mut gw, &[n, c]).with_row_stride(stride));
    ce.compute(&mut cm).unwrap();
    drop(cm);
    assert_eq!(l[0], lc[0]);
    for i in 0..n {
        assert_eq!(&gw[i * stride..i * stride + c], &gc[i * c..(i + 1) * c]);
        assert!(
            gw[i * stride + c..(i + 1) * stride]
                .iter()
                .all(|&v| v == 99.0),
            "padding written"
        );
    }
}

#[test]
fn loss_is_invariant_to_shifting_a_row_without_z_loss() {
    let ctx = Context::cpu();
    let mut ce = ctx.loss("cross_entropy").unwrap();
    ce.set_f64("label_smoothing", 0.3).unwrap();
    let (n, c) = (4, 20);
    let x = logits(n, c, 3);
    let t = [1i64, 2, 3, 19];
    let shifted: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(k, v)| v + 10.0 * (k / c) as f32)
        .collect();
    let (a, ga) = run(&ce, &x, &t, n, c, Reduction::None);
    let (b, gb) = run(&ce, &shifted, &t, n, c, Reduction::None);
    assert_close(
        "shifted loss",
        &b,
        &a.iter().map(|v| *v as f64).collect::<Vec<_>>(),
        1e-5,
    );
    assert_close(
        "shifted grad",
        &gb,
        &ga.iter().map(|v| *v as f64).collect::<Vec<_>>(),
        1e-5,
    );
}

#[test]
fn z_loss_adds_coef_times_lse_squared() {
    let ctx = Context::cpu();
    let ce = ctx.loss("cross_entropy").unwrap();
    let mut cez = ctx.loss("cross_entropy").unwrap();
    cez.set_f64("z_loss_coef", 0.05).unwrap();
    let (n, c) = (6, 11);
    let x = logits(n, c, 4);
    let t = [0i64, 1, 2, 3, 4, 5];
    let (a, _) = run(&ce, &x, &t, n, c, Reduction::None);
    let (b, _) = run(&cez, &x, &t, n, c, Reduction::None);
    for i in 0..n {
        let lse = losskit::backend::cpu::logsumexp(&x[i * c..(i + 1) * c]);
        let want = a[i] as f64 + 0.05 * lse * lse;
        assert!(
            (b[i] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
            "row {i}"
        );
    }
}

#[test]
fn a_huge_softcap_is_plain_cross_entropy() {
    let ctx = Context::cpu();
    let ce = ctx.loss("cross_entropy").unwrap();
    let mut cap = ctx.loss("cross_entropy").unwrap();
    cap.set_f64("softcap", 1e4).unwrap();
    let (n, c) = (5, 30);
    let x = logits(n, c, 5);
    let t = [0i64, 10, 20, 29, 3];
    let (a, ga) = run(&ce, &x, &t, n, c, Reduction::Mean);
    let (b, gb) = run(&cap, &x, &t, n, c, Reduction::Mean);
    assert!((a[0] - b[0]).abs() < 1e-4);
    assert_close(
        "softcap grad",
        &gb,
        &ga.iter().map(|v| *v as f64).collect::<Vec<_>>(),
        1e-4,
    );
}

#[test]
fn full_label_smoothing_is_cross_entropy_to_the_uniform_distribution() {
    let ctx = Context::cpu();
    let mut ce = ctx.loss("cross_entropy").unwrap();
    ce.set_f64("label_smoothing", 1.0).unwrap();
    let (n, c) = (3, 8);
    let x = logits(n, c, 6);
    let (a, _) = run(&ce, &x, &[0, 1, 2], n, c, Reduction::None);
    let (b, _) = run(&ce, &x, &[7, 6, 5], n, c, Reduction::None);
    assert_eq!(a, b, "with eps = 1 the target does not matter");
    for i in 0..n {
        let row = &x[i * c..(i + 1) * c];
        let lse = losskit::backend::cpu::logsumexp(row);
        let want = lse - row.iter().map(|v| *v as f64).sum::<f64>() / c as f64;
        assert!((a[i] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()));
    }
}

#[test]
fn correct_marks_rows_whose_argmax_is_the_target() {
    let ctx = Context::cpu();
    let ce = ctx.loss("cross_entropy").unwrap();
    let x = [0.0f32, 5.0, 1.0, 9.0, 2.0, 3.0, 1.0, 1.0, 1.0];
    let t = [1i64, 2, -100];
    let mut l = [0.0f32];
    let mut correct = [7.0f32; 3];
    let mut cm = Compute::new(Reduction::Mean, &mut l)
        .input(Tensor::f32(&x, &[3, 3]))
        .input(Tensor::i64(&t, &[3]))
        .aux("correct", TensorMut::new(&mut correct, &[3]));
    ce.compute(&mut cm).unwrap();
    drop(cm);
    assert_eq!(correct, [1.0, 0.0, 0.0]);
}

#[test]
fn nan_logits_propagate_to_their_row_only() {
    let ctx = Context::cpu();
    let ce = ctx.loss("cross_entropy").unwrap();
    let mut x = logits(3, 4, 7);
    x[5] = f32::NAN;
    let (l, g) = run(&ce, &x, &[0, 1, 2], 3, 4, Reduction::None);
    assert!(l[0].is_finite() && l[1].is_nan() && l[2].is_finite());
    assert!(g[..4].iter().all(|v| v.is_finite()) && g[4..8].iter().all(|v| v.is_nan()));
}

#[test]
fn negative_class_weight_is_an_input_error() {
    let ctx = Context::cpu();
    let ce = ctx.loss("cross_entropy").unwrap();
    let x = logits(2, 3, 8);
    let w = [1.0f32, -0.5, 1.0];
    let mut l = [0.0f32];
    let mut cm = Compute::new(Reduction::Mean, &mut l)
        .input(Tensor::f32(&x, &[2, 3]))
        .input(Tensor::i64(&[0, 1], &[2]))
        .input(Tensor::f32(&w, &[3]));
    let e = ce.compute(&mut cm).unwrap_err();
    assert_eq!(e.kind, losskit::ErrorKind::InvalidInput);
    assert!(e.msg.contains("class_weights[1]"), "{}", e.msg);
}
