//! GPU (wgpu) tests of the batch / distance-layer kernels that do not fit the row templates:
//! `harmonic` (every metric, every gradient, shapes that are not multiples of the 16-wide
//! tiles, device buffers, the binding-limit refusal), `amp_entropy` and `ca_calibration`.
//!
//! Same rules as `tests/gpu.rs`: without a usable adapter every test prints a skip line and
//! passes, unless `LOSSKIT_REQUIRE_GPU=1`. Tolerance: `|gpu - cpu| <= 2e-5 + 2e-4 |cpu|`.

#![cfg(feature = "wgpu")]

use losskit::tensor::DeviceOut;
use losskit::testing::{Case, OwnedData, Rng};
use losskit::{BackendKind, Compute, Context, DType, ParamValue, Reduction, Tensor, TensorMut};

#[path = "common/gpu.rs"]
mod gpu_common;
use gpu_common::{close, dims, gpu_ctx};

const METRICS: [&str; 9] = [
    "euclidean",
    "manhattan",
    "minkowski",
    "chebyshev",
    "cosine",
    "bray_curtis",
    "canberra",
    "hamming",
    "mahalanobis",
];

/// Every metric, gradients of features, centres and precision, against the CPU path, on
/// shapes that are 1 or not multiples of the tile along each axis.
#[test]
fn harmonic_every_metric_and_gradient_matches_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let shapes = [
        (1, 1, 1),
        (1, 7, 3),
        (5, 1, 4),
        (3, 4, 1),
        (17, 33, 257),
        (4, 1000, 3),
    ];
    let mut checked = 0;
    for (mi, m) in METRICS.iter().enumerate() {
        let mut lg = g.loss("harmonic").unwrap();
        let mut lc = cpu.loss("harmonic").unwrap();
        for l in [&mut lg, &mut lc] {
            l.set("metric", ParamValue::Enum(mi)).unwrap();
        }
        for (si, &(n, c, d)) in shapes.iter().enumerate() {
            for opt in [false, true] {
                let case = Case::random(
                    &lc,
                    &dims(&[("N", n), ("C", c), ("D", d)]),
                    77 + si as u64,
                    opt,
                );
                for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                    let mut rng = Rng::new(9);
                    let go: Vec<f32> = match red {
                        Reduction::None => (0..n).map(|_| rng.uniform() as f32 - 0.3).collect(),
                        _ => vec![1.3],
                    };
                    let what = format!("harmonic {m} N={n} C={c} D={d} opt {opt} {}", red.name());
                    let a = case
                        .run(&lg, red, true, Some(&go))
                        .unwrap_or_else(|e| panic!("{what}: GPU failed: {e}"));
                    let b = case.run(&lc, red, true, Some(&go)).unwrap();
                    close(&format!("{what}: loss"), &a.loss, &b.loss);
                    for (k, (x, y)) in a.grads.iter().zip(&b.grads).enumerate() {
                        match (x, y) {
                            (Some(x), Some(y)) => close(&format!("{what}: grad {k}"), x, y),
                            (None, None) => {}
                            _ => panic!("{what}: grad {k} present on one side only"),
                        }
                    }
                    if opt {
                        assert!(a.grads[3].is_some(), "{what}: precision gradient missing");
                    }
                    checked += 1;
                }
            }
        }
    }
    eprintln!("harmonic: {checked} configurations matched");
}

/// An indefinite precision (its symmetric part is diag(1, -1), plus an antisymmetric part)
/// on features and centres on a grid of halves: every form is computed exactly on both
/// backends, whatever their rounding, and many are negative or 0 (clamped, zero gradient).
/// (The generic suites draw a positive definite precision: near the zero crossing of an
/// indefinite form the loss is too ill-conditioned for f32; see the harmonic module doc.)
#[test]
fn harmonic_indefinite_precision_is_clamped_like_the_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let (n, c, d) = (9, 13, 2);
    let mut lg = g.loss("harmonic").unwrap();
    let mut lc = cpu.loss("harmonic").unwrap();
    for l in [&mut lg, &mut lc] {
        l.set("metric", ParamValue::Enum(8)).unwrap();
    }
    let mut case = Case::random(&lc, &dims(&[("N", n), ("C", c), ("D", d)]), 3, true);
    let mut rng = Rng::new(12);
    let mut grid = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| (rng.below(9) as f32 - 4.0) * 0.5)
            .collect()
    };
    case.inputs[0].as_mut().unwrap().data = OwnedData::F32(grid(n * d));
    case.inputs[1].as_mut().unwrap().data = OwnedData::F32(grid(c * d));
    case.inputs[3].as_mut().unwrap().data = OwnedData::F32(vec![1.0, 0.5, -0.5, -1.0]);
    let (x, w) = (
        case.inputs[0].as_ref().unwrap().f32().to_vec(),
        case.inputs[1].as_ref().unwrap().f32().to_vec(),
    );
    let forms: Vec<f32> = (0..n * c)
        .map(|e| {
            let (i, j) = (e / c, e % c);
            let (a, b) = (x[i * d] - w[j * d], x[i * d + 1] - w[j * d + 1]);
            a * a - b * b
        })
        .collect();
    assert!(forms.iter().any(|&q| q < 0.0) && forms.iter().any(|&q| q > 0.0));
    for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        let what = format!("harmonic indefinite precision {}", red.name());
        let a = case.run(&lg, red, true, None).unwrap();
        let b = case.run(&lc, red, true, None).unwrap();
        close(&format!("{what}: loss"), &a.loss, &b.loss);
        for (k, (x, y)) in a.grads.iter().zip(&b.grads).enumerate() {
            if let (Some(x), Some(y)) = (x, y) {
                close(&format!("{what}: grad {k}"), x, y);
            }
        }
    }
}

/// Mahalanobis on rows sharing a large offset (1e3 + N(0, 1), 1100 centres so that the
/// centring point uses only the first 1024): both backends centre the rows (their centring
/// points may differ in the last bits) and agree.
#[test]
fn harmonic_mahalanobis_offset_rows_match_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let (n, c, d) = (40, 1100, 6);
    let mut lg = g.loss("harmonic").unwrap();
    let mut lc = cpu.loss("harmonic").unwrap();
    for l in [&mut lg, &mut lc] {
        l.set("metric", ParamValue::Enum(8)).unwrap();
    }
    let mut case = Case::random(&lc, &dims(&[("N", n), ("C", c), ("D", d)]), 8, true);
    let mut rng = Rng::new(4);
    let mut rows =
        |len: usize| -> Vec<f32> { (0..len).map(|_| (1.0e3 + rng.normal()) as f32).collect() };
    case.inputs[0].as_mut().unwrap().data = OwnedData::F32(rows(n * d));
    case.inputs[1].as_mut().unwrap().data = OwnedData::F32(rows(c * d));
    for red in [Reduction::None, Reduction::Sum] {
        let what = format!("harmonic offset rows {}", red.name());
        let a = case.run(&lg, red, true, None).unwrap();
        let b = case.run(&lc, red, true, None).unwrap();
        close(&format!("{what}: loss"), &a.loss, &b.loss);
        for (k, (x, y)) in a.grads.iter().zip(&b.grads).enumerate() {
            if let (Some(x), Some(y)) = (x, y) {
                close(&format!("{what}: grad {k}"), x, y);
            }
        }
    }
}

/// A thousand classes with many rows (several tiles along every axis) and the non-default
/// parameters the spec lists.
#[test]
fn harmonic_large_shapes_and_parameters_match_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let sets: [&[(&str, ParamValue)]; 8] = [
        &[("metric", ParamValue::Enum(0))],
        &[("metric", ParamValue::Enum(3))],
        &[("metric", ParamValue::Enum(5))],
        &[("metric", ParamValue::Enum(6))],
        &[("metric", ParamValue::Enum(7))],
        &[("metric", ParamValue::Enum(2)), ("p", ParamValue::F64(3.0))],
        &[("metric", ParamValue::Enum(8)), ("n", ParamValue::F64(2.0))],
        &[
            ("metric", ParamValue::Enum(4)),
            ("n", ParamValue::F64(2.5)),
            ("eps", ParamValue::F64(0.05)),
        ],
    ];
    for set in sets {
        let mut lg = g.loss("harmonic").unwrap();
        let mut lc = cpu.loss("harmonic").unwrap();
        for l in [&mut lg, &mut lc] {
            for (k, v) in set {
                l.set(k, *v).unwrap();
            }
        }
        let case = Case::random(&lc, &dims(&[("N", 70), ("C", 1000), ("D", 37)]), 5, true);
        let a = case.run(&lg, Reduction::Mean, true, None).unwrap();
        let b = case.run(&lc, Reduction::Mean, true, None).unwrap();
        let what = format!("harmonic {set:?} 70x1000x37");
        close(&format!("{what}: loss"), &a.loss, &b.loss);
        for (k, (x, y)) in a.grads.iter().zip(&b.grads).enumerate() {
            if let (Some(x), Some(y)) = (x, y) {
                close(&format!("{what}: grad {k}"), x, y);
            }
        }
    }
}

/// The same inputs twice give bit-identical results (fixed reduction orders, no atomics).
#[test]
fn harmonic_is_deterministic() {
    let Some(g) = gpu_ctx() else { return };
    let mut l = g.loss("harmonic").unwrap();
    l.set("metric", ParamValue::Enum(8)).unwrap();
    let case = Case::random(&l, &dims(&[("N", 40), ("C", 50), ("D", 20)]), 3, true);
    let a = case.run(&l, Reduction::Sum, true, None).unwrap();
    let b = case.run(&l, Reduction::Sum, true, None).unwrap();
    assert_eq!(a.loss, b.loss);
    for (x, y) in a.grads.iter().zip(&b.grads) {
        assert_eq!(x, y);
    }
}

/// Device inputs (a strided feature matrix) and device gradient destinations.
#[test]
fn harmonic_device_buffers_match_host() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let (n, c, d) = (9usize, 21usize, 6usize);
    let xs = d + 3;
    let mut rng = Rng::new(12);
    let x: Vec<f32> = (0..(n - 1) * xs + d).map(|_| rng.normal() as f32).collect();
    let w: Vec<f32> = (0..c * d).map(|_| rng.normal() as f32).collect();
    let p: Vec<f32> = (0..d * d).map(|_| rng.normal() as f32 * 0.3).collect();
    let y: Vec<i64> = (0..n)
        .map(|i| if i == 4 { -100 } else { (i * 7 % c) as i64 })
        .collect();
    for metric in [0usize, 3, 4, 8] {
        let mut lg = g.loss("harmonic").unwrap();
        let mut lc = cpu.loss("harmonic").unwrap();
        lg.set("metric", ParamValue::Enum(metric)).unwrap();
        lc.set("metric", ParamValue::Enum(metric)).unwrap();
        let xb = g.buffer((x.len() * 4) as u64).unwrap();
        xb.write_f32(0, &x).unwrap();
        let wb = g.buffer((w.len() * 4 + 8) as u64).unwrap();
        wb.write_f32(2, &w).unwrap();
        let pb = g.buffer((p.len() * 4) as u64).unwrap();
        pb.write_f32(0, &p).unwrap();
        let yb = g.buffer((y.len() * 8) as u64).unwrap();
        yb.write_i64(0, &y).unwrap();
        // Gradient destinations: features strided in a device buffer, centres and precision
        // at offsets.
        let gs = d + 1;
        let gxb = g.buffer((((n - 1) * gs + d) * 4) as u64).unwrap();
        let gwb = g.buffer(((c * d + 5) * 4) as u64).unwrap();
        let gpb = g.buffer((d * d * 4) as u64).unwrap();
        let mut loss = [0f32];
        {
            let mut cc = Compute::new(Reduction::Mean, &mut loss)
                .input(Tensor::device(&xb, DType::F32, 0, &[n, d]).with_row_stride(xs))
                .input(Tensor::device(&wb, DType::F32, 2, &[c, d]))
                .input(Tensor::device(&yb, DType::I64, 0, &[n]))
                .input(Tensor::device(&pb, DType::F32, 0, &[d, d]));
            cc.grads.push(losskit::Grad::Device(
                DeviceOut::new(&gxb, 0, &[n, d]).with_row_stride(gs),
            ));
            cc.grads
                .push(losskit::Grad::Device(DeviceOut::new(&gwb, 5, &[c, d])));
            cc.grads.push(losskit::Grad::None);
            cc.grads
                .push(losskit::Grad::Device(DeviceOut::new(&gpb, 0, &[d, d])));
            lg.compute(&mut cc).unwrap();
        }
        let mut lcv = [0f32];
        let mut gx = vec![0f32; (n - 1) * xs + d];
        let mut gw = vec![0f32; c * d];
        let mut gp = vec![0f32; d * d];
        {
            let mut cc = Compute::new(Reduction::Mean, &mut lcv)
                .input(Tensor::f32(&x, &[n, d]).with_row_stride(xs))
                .input(Tensor::f32(&w, &[c, d]))
                .input(Tensor::i64(&y, &[n]))
                .input(Tensor::f32(&p, &[d, d]))
                .grad(0, TensorMut::new(&mut gx, &[n, d]).with_row_stride(xs))
                .grad(1, TensorMut::new(&mut gw, &[c, d]))
                .grad(3, TensorMut::new(&mut gp, &[d, d]));
            lc.compute(&mut cc).unwrap();
        }
        let what = format!("harmonic device metric {metric}");
        close(&format!("{what}: loss"), &loss, &lcv);
        let gxd = gxb.read_f32(0, (n - 1) * gs + d).unwrap();
        for i in 0..n {
            close(
                &format!("{what}: grad x row {i}"),
                &gxd[i * gs..i * gs + d],
                &gx[i * xs..i * xs + d],
            );
        }
        close(
            &format!("{what}: grad centres"),
            &gwb.read_f32(5, c * d).unwrap(),
            &gw,
        );
        close(
            &format!("{what}: grad precision"),
            &gpb.read_f32(0, d * d).unwrap(),
            &gp,
        );
    }
}

/// A shape whose `[N, C]` scratch cannot be bound is refused clearly, not crashed.
#[test]
fn harmonic_refuses_what_one_binding_cannot_hold() {
    let Some(_) = gpu_ctx() else { return };
    let g = Context::new(BackendKind::Wgpu).unwrap();
    g.gpu_device().unwrap().set_max_binding_bytes(4096);
    let l = g.loss("harmonic").unwrap();
    let case = Case::random(&l, &dims(&[("N", 40), ("C", 40), ("D", 3)]), 1, false);
    let e = case.run(&l, Reduction::Mean, true, None).unwrap_err();
    assert_eq!(e.kind, losskit::ErrorKind::Unsupported, "{}", e.msg);
    assert!(e.msg.contains("largest binding"), "{}", e.msg);
    // A shape that fits still runs on the same device.
    let case = Case::random(&l, &dims(&[("N", 4), ("C", 5), ("D", 3)]), 1, false);
    case.run(&l, Reduction::Mean, true, None).unwrap();
}

/// Runs a configured loss on both backends over `shapes` and compares loss and gradients
/// (batch-level losses: `mean` and `sum`, with and without an upstream gradient).
fn batch_parity(id: &str, sets: &[&[(&str, ParamValue)]], shapes: &[&[(&str, usize)]]) {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    for set in sets {
        let mut lg = g.loss(id).unwrap();
        let mut lc = cpu.loss(id).unwrap();
        for l in [&mut lg, &mut lc] {
            for (k, v) in set.iter() {
                l.set(k, *v).unwrap();
            }
        }
        for (si, shape) in shapes.iter().enumerate() {
            for opt in [false, true] {
                let case = Case::random(&lc, &dims(shape), 40 + si as u64, opt);
                for red in [Reduction::Mean, Reduction::Sum] {
                    for go in [None, Some(&[0.6f32][..])] {
                        let what =
                            format!("{id} {set:?} {shape:?} opt {opt} {} go {go:?}", red.name());
                        let a = case
                            .run(&lg, red, true, go)
                            .unwrap_or_else(|e| panic!("{what}: GPU failed: {e}"));
                        let b = case.run(&lc, red, true, go).unwrap();
                        close(&format!("{what}: loss"), &a.loss, &b.loss);
                        for (k, (x, y)) in a.grads.iter().zip(&b.grads).enumerate() {
                            if let (Some(x), Some(y)) = (x, y) {
                                close(&format!("{what}: grad {k}"), x, y);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn amp_entropy_matches_cpu_on_odd_shapes() {
    batch_parity(
        "amp_entropy",
        &[
            &[],
            &[("temp_inv", ParamValue::F64(15.0))],
            &[
                ("normalize", ParamValue::Bool(false)),
                ("temp_inv", ParamValue::F64(0.5)),
            ],
        ],
        &[
            &[("N", 1), ("D", 4)],
            &[("N", 2), ("D", 1)],
            &[("N", 37), ("D", 257)],
            &[("N", 300), ("D", 5)],
        ],
    );
}

#[test]
fn ca_calibration_matches_cpu_on_odd_shapes() {
    batch_parity(
        "ca_calibration",
        &[&[], &[("balance", ParamValue::Bool(false))]],
        &[
            &[("N", 1), ("C", 1)],
            &[("N", 5), ("C", 3)],
            &[("N", 300), ("C", 7)],
            &[("N", 3), ("C", 9000)],
        ],
    );
}

/// Device inputs with device gradients (amp_entropy, ca_calibration).
#[test]
fn batch_losses_device_buffers_match_host() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let (n, d) = (33usize, 7usize);
    let mut rng = Rng::new(4);
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    let xb = g.buffer((x.len() * 4) as u64).unwrap();
    xb.write_f32(0, &x).unwrap();
    let gb = g.buffer((x.len() * 4) as u64).unwrap();
    let mut loss = [0f32];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut loss).input(Tensor::device(
            &xb,
            DType::F32,
            0,
            &[n, d],
        ));
        cc.grads
            .push(losskit::Grad::Device(DeviceOut::new(&gb, 0, &[n, d])));
        g.loss("amp_entropy").unwrap().compute(&mut cc).unwrap();
    }
    let mut lc = [0f32];
    let mut gc = vec![0f32; n * d];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut lc)
            .input(Tensor::f32(&x, &[n, d]))
            .grad(0, TensorMut::new(&mut gc, &[n, d]));
        cpu.loss("amp_entropy").unwrap().compute(&mut cc).unwrap();
    }
    close("amp_entropy device loss", &loss, &lc);
    close(
        "amp_entropy device grad",
        &gb.read_f32(0, n * d).unwrap(),
        &gc,
    );

    let (n, c) = (20usize, 11usize);
    let z: Vec<f32> = (0..n * c).map(|_| 2.0 * rng.normal() as f32).collect();
    let y: Vec<i64> = (0..n)
        .map(|i| if i == 3 { -100 } else { (i * 5 % c) as i64 })
        .collect();
    let zb = g.buffer((z.len() * 4) as u64).unwrap();
    zb.write_f32(0, &z).unwrap();
    let gzb = g.buffer((z.len() * 4) as u64).unwrap();
    let mut loss = [0f32];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::device(&zb, DType::F32, 0, &[n, c]))
            .input(Tensor::i64(&y, &[n]));
        cc.grads
            .push(losskit::Grad::Device(DeviceOut::new(&gzb, 0, &[n, c])));
        g.loss("ca_calibration").unwrap().compute(&mut cc).unwrap();
    }
    let mut lc = [0f32];
    let mut gc = vec![0f32; n * c];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut lc)
            .input(Tensor::f32(&z, &[n, c]))
            .input(Tensor::i64(&y, &[n]))
            .grad(0, TensorMut::new(&mut gc, &[n, c]));
        cpu.loss("ca_calibration")
            .unwrap()
            .compute(&mut cc)
            .unwrap();
    }
    close("ca_calibration device loss", &loss, &lc);
    close(
        "ca_calibration device grad",
        &gzb.read_f32(0, n * c).unwrap(),
        &gc,
    );
}

/// The GPU path refuses what the CPU path refuses, before launching anything.
#[test]
fn ca_calibration_gpu_validates_like_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let z = vec![0.5f32; 6];
    let y = vec![0i64, 1];
    let bad_ref = vec![0i64, 3];
    for ctx in [&g, &cpu] {
        let mut loss = [0f32];
        let mut cc = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::f32(&z, &[2, 3]))
            .input(Tensor::i64(&y, &[2]))
            .input(Tensor::i64(&bad_ref, &[2]));
        let e = ctx
            .loss("ca_calibration")
            .unwrap()
            .compute(&mut cc)
            .unwrap_err();
        assert_eq!(e.kind, losskit::ErrorKind::InvalidTarget, "{}", e.msg);
        assert!(e.msg.contains("ref_pred[1]"), "{}", e.msg);
    }
}
