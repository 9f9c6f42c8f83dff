//! token_logprobs: JAX float64 goldens, finite differences, the fast and full kernels agree,
//! in-place and strided layouts, masked rows, bad input.

use losskit::testing::Rng;
use losskit::{Compute, ErrorKind, ParamValue, Reduction, Tensor, TensorMut};

use super::{gradcheck_all, loss, set_err};

#[test]
fn golden() {
    crate::golden::check("token_logprobs");
}

#[test]
fn gradcheck() {
    gradcheck_all("token_logprobs", &[("N", 3), ("T", 3), ("V", 9)]);
}

struct Problem {
    n: usize,
    t: usize,
    v: usize,
    logits: Vec<f32>,
    labels: Vec<i64>,
}

fn problem(n: usize, t: usize, v: usize, seed: u64) -> Problem {
    let mut r = Rng::new(seed);
    let logits = (0..n * t * v).map(|_| 2.0 * r.normal() as f32).collect();
    let labels = (0..n * t)
        .map(|k| {
            if k % 5 == 3 {
                -100
            } else {
                r.below(v as u64) as i64
            }
        })
        .collect();
    Problem {
        n,
        t,
        v,
        logits,
        labels,
    }
}

/// seq_logps (none), gradient, and the entropy when `entropy` (forces the full kernel).
fn run(l: &losskit::Loss, p: &Problem, entropy: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (n, t, v) = (p.n, p.t, p.v);
    let mut out = vec![0.0; n];
    let mut g = vec![0.0; n * t * v];
    let mut h = vec![0.0; n * t];
    {
        let mut c = Compute::new(Reduction::None, &mut out)
            .input(Tensor::f32(&p.logits, &[n, t, v]))
            .input(Tensor::i64(&p.labels, &[n, t]))
            .grad(0, TensorMut::new(&mut g, &[n, t, v]));
        if entropy {
            c = c.aux("entropy", TensorMut::new(&mut h, &[n, t]));
        }
        l.compute(&mut c).unwrap();
    }
    (out, g, h)
}

#[test]
fn fast_and_full_kernels_agree() {
    let p = problem(3, 5, 300, 1);
    let l = loss("token_logprobs");
    let (a, ga, _) = run(&l, &p, false);
    let (b, gb, h) = run(&l, &p, true);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5 * (1.0 + x.abs()));
    }
    for (x, y) in ga.iter().zip(&gb) {
        assert!((x - y).abs() < 1e-6);
    }
    assert!(h.iter().all(|&x| (0.0..=(300f32).ln() + 1e-4).contains(&x)));
}

#[test]
fn in_place_and_strided_layouts_match() {
    let p = problem(2, 3, 40, 2);
    let (n, t, v) = (p.n, p.t, p.v);
    let l = loss("token_logprobs");
    let (want, gwant, _) = run(&l, &p, false);
    // In place.
    let mut buf = p.logits.clone();
    let mut out = vec![0.0; n];
    {
        let mut c = Compute::new(Reduction::None, &mut out)
            .input(Tensor::f32_in_place(&mut buf, &[n, t, v]))
            .input(Tensor::i64(&p.labels, &[n, t]))
            .grad_in_place(0);
        l.compute(&mut c).unwrap();
    }
    assert_eq!(out, want);
    assert_eq!(buf, gwant);
    // Rows of the logits and of the gradient inside wider buffers.
    let stride = t * v + 7;
    let mut wide = vec![9.0f32; n * stride];
    for i in 0..n {
        wide[i * stride..i * stride + t * v].copy_from_slice(&p.logits[i * t * v..(i + 1) * t * v]);
    }
    let mut gw = vec![5.0f32; n * stride];
    let mut out2 = vec![0.0; n];
    {
        let mut c = Compute::new(Reduction::None, &mut out2)
            .input(Tensor::f32(&wide, &[n, t, v]).with_row_stride(stride))
            .input(Tensor::i64(&p.labels, &[n, t]))
            .grad(
                0,
                TensorMut::new(&mut gw, &[n, t, v]).with_row_stride(stride),
            );
        l.compute(&mut c).unwrap();
    }
    assert_eq!(out2, want);
    for i in 0..n {
        assert_eq!(
            &gw[i * stride..i * stride + t * v],
            &gwant[i * t * v..(i + 1) * t * v]
        );
        assert!(
            gw[i * stride + t * v..(i + 1) * stride]
                .iter()
                .all(|&x| x == 5.0)
        );
    }
}

#[test]
fn masked_rows_and_single_token_vocabulary() {
    let l = loss("token_logprobs");
    // A fully masked row: value 0, gradient 0.
    let p = Problem {
        n: 1,
        t: 2,
        v: 4,
        logits: vec![0.3; 8],
        labels: vec![-100, -100],
    };
    let (o, g, h) = run(&l, &p, true);
    assert_eq!(o, vec![0.0]);
    assert!(g.iter().all(|&x| x == 0.0));
    assert!(h.iter().all(|&x| x == 0.0));
    // V = 1: log pi = 0, entropy 0, gradient 0.
    let p = Problem {
        n: 2,
        t: 2,
        v: 1,
        logits: vec![1.0, -2.0, 3.0, 0.5],
        labels: vec![0, 0, 0, -100],
    };
    let (o, g, h) = run(&l, &p, true);
    assert!(o.iter().all(|&x| x == 0.0));
    assert!(g.iter().all(|&x| x.abs() < 1e-7));
    assert!(h.iter().all(|&x| x.abs() < 1e-7));
}

#[test]
fn gradient_sums_to_zero_per_token() {
    // Each token row's gradient is c(e_y - pi): it sums to 0 over the vocabulary.
    let p = problem(2, 4, 50, 3);
    let (_, g, _) = run(&loss("token_logprobs"), &p, false);
    for row in g.chunks(50) {
        let s: f32 = row.iter().sum();
        assert!(s.abs() < 1e-5, "{s}");
    }
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(
        set_err("token_logprobs", &[], "temperature", ParamValue::F64(0.0)),
        ErrorKind::InvalidParam
    );
    let l = loss("token_logprobs");
    let p = problem(1, 2, 5, 4);
    let try_labels = |l: &losskit::Loss, labels: &[i64]| {
        let mut out = [0.0f32];
        let mut c = Compute::new(Reduction::Sum, &mut out)
            .input(Tensor::f32(&p.logits, &[1, 2, 5]))
            .input(Tensor::i64(labels, &[1, 2]));
        l.compute(&mut c).map(|_| ()).map_err(|e| e.kind)
    };
    assert_eq!(try_labels(&l, &[0, 5]), Err(ErrorKind::InvalidTarget));
    assert_eq!(try_labels(&l, &[0, -1]), Err(ErrorKind::InvalidTarget));
    let mut l2 = loss("token_logprobs");
    l2.set_i64("ignore_index", 3).unwrap();
    assert_eq!(try_labels(&l2, &[0, 3]), Err(ErrorKind::InvalidParam));
    // grad_token_kl without ref_logits.
    let cot = [1.0f32, 1.0];
    let mut out = [0.0f32];
    let mut c = Compute::new(Reduction::Sum, &mut out)
        .input(Tensor::f32(&p.logits, &[1, 2, 5]))
        .input(Tensor::i64(&[0, 1], &[1, 2]))
        .absent()
        .absent()
        .absent()
        .absent()
        .input(Tensor::f32(&cot, &[1, 2]));
    assert_eq!(l.compute(&mut c).unwrap_err().kind, ErrorKind::InvalidInput);
    // token_kl asked without ref_logits.
    let mut kl = [0.0f32; 2];
    let mut out = [0.0f32];
    let mut c = Compute::new(Reduction::Sum, &mut out)
        .input(Tensor::f32(&p.logits, &[1, 2, 5]))
        .input(Tensor::i64(&[0, 1], &[1, 2]))
        .aux("token_kl", TensorMut::new(&mut kl, &[1, 2]));
    assert_eq!(l.compute(&mut c).unwrap_err().kind, ErrorKind::InvalidArg);
}

#[test]
fn kl_to_itself_is_zero_and_nonpositive_otherwise() {
    let p = problem(2, 3, 30, 5);
    let (n, t, v) = (p.n, p.t, p.v);
    let l = loss("token_logprobs");
    let other: Vec<f32> = p.logits.iter().map(|x| 0.5 * x + 0.1).collect();
    for (r, zero) in [(&p.logits, true), (&other, false)] {
        let mut kl = vec![1.0f32; n * t];
        let mut out = vec![0.0; n];
        {
            let mut c = Compute::new(Reduction::None, &mut out)
                .input(Tensor::f32(&p.logits, &[n, t, v]))
                .input(Tensor::i64(&p.labels, &[n, t]))
                .absent()
                .input(Tensor::f32(r, &[n, t, v]))
                .aux("token_kl", TensorMut::new(&mut kl, &[n, t]));
            l.compute(&mut c).unwrap();
        }
        for &k in &kl {
            if zero {
                assert!(k.abs() < 1e-6, "{k}");
            } else {
                assert!(k <= 1e-7, "{k}");
            }
        }
    }
}

/// 8 x 512 x 32000 (the size) forward + backward on the CPU: runs in release only
/// (`cargo test --release -- --ignored token_logprobs_llm_size`), prints the time and the
/// bandwidth against a plain copy of the same bytes.
#[test]
#[ignore]
fn token_logprobs_llm_size() {
    let (n, t, v) = (8usize, 512usize, 32000usize);
    let mut r = Rng::new(9);
    let logits: Vec<f32> = (0..n * t * v).map(|_| r.normal() as f32).collect();
    let labels: Vec<i64> = (0..n * t).map(|_| r.below(v as u64) as i64).collect();
    let mut g = vec![0.0f32; n * t * v];
    let l = loss("token_logprobs");
    let bytes = (n * t * v * 4) as f64;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let mut out = vec![0.0f32; n];
        let t0 = std::time::Instant::now();
        let mut c = Compute::new(Reduction::None, &mut out)
            .input(Tensor::f32(&logits, &[n, t, v]))
            .input(Tensor::i64(&labels, &[n, t]))
            .grad(0, TensorMut::new(&mut g, &[n, t, v]));
        l.compute(&mut c).unwrap();
        best = best.min(t0.elapsed().as_secs_f64());
        assert!(out.iter().all(|x| x.is_finite()));
    }
    let mut copy_best = f64::INFINITY;
    let mut dst = vec![0.0f32; n * t * v];
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        dst.copy_from_slice(&logits);
        copy_best = copy_best.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(&dst);
    }
    // The loss reads the logits and writes the gradient: the same traffic as a copy.
    println!(
        "token_logprobs {n}x{t}x{v} fwd+bwd: {:.3} s, {:.2} GB/s; copy: {:.3} s, {:.2} GB/s; ratio {:.2}x the copy time; threads {}",
        best,
        2.0 * bytes / best / 1e9,
        copy_best,
        2.0 * bytes / copy_best / 1e9,
        best / copy_best,
        rayon_threads()
    );
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |x| x.get())
}
