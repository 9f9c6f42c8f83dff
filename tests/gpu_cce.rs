//! cut_cross_entropy on the wgpu backend: agreement with the dense path (logits = E Cᵀ + b in
//! f64, then the CPU `cross_entropy` with the same options, then the chain rule) for every
//! option and reduction, odd shapes (V, N, D not multiples of the 64-wide tiles, N = 1,
//! D = 1, all rows ignored), gradient filtering against the CPU path (the same tiles are
//! dropped), the classifier bound in vocabulary chunks (a small binding limit on a fresh
//! context), device-resident inputs and gradients with row strides, bit-identical repeated
//! runs, and validation errors equal to the CPU path's.
//!
//! Without a usable adapter every test prints "skipped" and passes, unless
//! `LOSSKIT_REQUIRE_GPU=1`. Tolerance against the f64-accumulated dense path: an element
//! passes when `|gpu - ref| <= 1e-4 * max|ref| + 2e-4 * |ref| + 1e-6` (the products run in
//! f32 on the GPU, over D and over the whole vocabulary or batch).

#![cfg(feature = "wgpu")]

use losskit::backend::DeviceBuffer;
use losskit::tensor::DeviceOut;
use losskit::testing::Rng;
use losskit::{
    Compute, Context, DType, ErrorKind, Grad, ParamValue,
    ParamValue::{Bool, F64, I64},
    Reduction, Tensor, TensorMut,
};

#[path = "common/gpu.rs"]
mod gpu_common;
use gpu_common::own_gpu_ctx;

#[path = "common/cce.rs"]
mod cce_common;
use cce_common::{Gen, ID, Out, Prob, REDUCTIONS, loss_with, out_len, run, try_run};

/// A random problem; `ignored` rows get `ignore`; `scale` multiplies e and c.
#[allow(clippy::too_many_arguments)]
fn prob(
    n: usize,
    d: usize,
    v: usize,
    ignored: usize,
    ignore: i64,
    bias: bool,
    sw: bool,
    scale: f64,
    seed: u64,
) -> Prob {
    let g = Gen {
        n,
        d,
        v,
        ignored,
        ignore_index: ignore,
        bias,
        sw,
        scale,
    };
    Prob::random(g, seed)
}

struct Dense {
    loss: Vec<f64>,
    de: Vec<f64>,
    dc: Vec<f64>,
    db: Vec<f64>,
    lse: Vec<f64>,
}

fn dense(p: &Prob, params: &[(&str, ParamValue)], red: Reduction, go: Option<&[f32]>) -> Dense {
    let cpu = Context::cpu();
    let mut ce = cpu.loss("cross_entropy").unwrap();
    for (k, v) in params {
        if ["ignore_index", "softcap", "z_loss_coef", "normalizer"].contains(k) {
            ce.set(k, *v).unwrap();
        }
    }
    let mut logits = vec![0.0f32; p.n * p.v];
    for i in 0..p.n {
        for v in 0..p.v {
            let mut s = p.bias.as_ref().map_or(0.0, |b| b[v] as f64);
            for k in 0..p.d {
                s += p.e[i * p.d + k] as f64 * p.c[v * p.d + k] as f64;
            }
            logits[i * p.v + v] = s as f32;
        }
    }
    let mut loss = vec![0.0f32; out_len(red, p.n)];
    let mut g = vec![0.0f32; p.n * p.v];
    let mut lse = vec![0.0f32; p.n];
    {
        let mut cm = Compute::new(red, &mut loss)
            .input(Tensor::f32(&logits, &[p.n, p.v]))
            .input(Tensor::i64(&p.t, &[p.n]))
            .absent();
        cm = match &p.sw {
            Some(w) => cm.input(Tensor::f32(w, &[p.n])),
            None => cm.absent(),
        };
        cm = cm
            .grad(0, TensorMut::new(&mut g, &[p.n, p.v]))
            .aux("lse", TensorMut::new(&mut lse, &[p.n]));
        if let Some(go) = go {
            cm = cm.grad_output(go);
        }
        ce.compute(&mut cm).unwrap();
    }
    let mut de = vec![0.0; p.n * p.d];
    let mut dc = vec![0.0; p.v * p.d];
    let mut db = vec![0.0; p.v];
    for i in 0..p.n {
        for v in 0..p.v {
            let gv = g[i * p.v + v] as f64;
            db[v] += gv;
            for k in 0..p.d {
                de[i * p.d + k] += gv * p.c[v * p.d + k] as f64;
                dc[v * p.d + k] += gv * p.e[i * p.d + k] as f64;
            }
        }
    }
    let f = |x: &[f32]| x.iter().map(|&v| v as f64).collect();
    Dense {
        loss: f(&loss),
        de,
        dc,
        db,
        lse: f(&lse),
    }
}

fn close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let scale = want.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * scale + 2e-4 * w.abs() + 1e-6;
        let d = (g as f64 - w).abs();
        assert!(
            d <= tol,
            "{what}: element {k}: gpu {g} vs reference {w} (|diff| {d:.3e} > {tol:.3e})"
        );
    }
}

fn close32(what: &str, got: &[f32], want: &[f32]) {
    let w: Vec<f64> = want.iter().map(|&x| x as f64).collect();
    close(what, got, &w);
}

fn check_dense(what: &str, got: &Out, want: &Dense) {
    close(&format!("{what}: loss"), &got.loss, &want.loss);
    close(&format!("{what}: lse"), &got.lse, &want.lse);
    close(&format!("{what}: de"), &got.de, &want.de);
    close(&format!("{what}: dc"), &got.dc, &want.dc);
    if let Some(db) = &got.db {
        close(&format!("{what}: dbias"), db, &want.db);
    }
}

fn check_same(what: &str, got: &Out, want: &Out) {
    close32(&format!("{what}: loss"), &got.loss, &want.loss);
    close32(&format!("{what}: lse"), &got.lse, &want.lse);
    close32(&format!("{what}: de"), &got.de, &want.de);
    close32(&format!("{what}: dc"), &got.dc, &want.dc);
    assert_eq!(got.db.is_some(), want.db.is_some());
    if let (Some(a), Some(b)) = (&got.db, &want.db) {
        close32(&format!("{what}: dbias"), a, b);
    }
}

fn go_for(red: Reduction, n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..out_len(red, n))
        .map(|_| (r.uniform() * 2.0 - 0.5) as f32)
        .collect()
}

#[test]
fn agrees_with_the_dense_path_for_every_option_and_reduction() {
    let Some(g) = own_gpu_ctx() else { return };
    let sets: Vec<Vec<(&str, ParamValue)>> = vec![
        vec![],
        vec![("ignore_index", I64(-1))],
        vec![("softcap", F64(3.0))],
        vec![("z_loss_coef", F64(1e-2))],
        vec![("normalizer", F64(7.0))],
        vec![
            ("softcap", F64(5.0)),
            ("z_loss_coef", F64(1e-3)),
            ("normalizer", F64(11.0)),
        ],
    ];
    let mut seed = 1;
    for params in &sets {
        let ignore =
            params
                .iter()
                .find(|(k, _)| *k == "ignore_index")
                .map_or(-100, |(_, v)| match v {
                    I64(x) => *x,
                    _ => -100,
                });
        let l = loss_with(&g, params);
        for &(bias, sw) in &[(false, false), (true, false), (false, true), (true, true)] {
            seed += 1;
            // V, N, D not multiples of the tile sizes.
            let p = prob(37, 19, 300, 5, ignore, bias, sw, 0.7, seed);
            for red in REDUCTIONS {
                for with_go in [false, true] {
                    let go = with_go.then(|| go_for(red, p.n, seed));
                    let what =
                        format!("{params:?} bias={bias} sw={sw} {} go={with_go}", red.name());
                    let got = run(&l, &p, red, go.as_deref());
                    check_dense(&what, &got, &dense(&p, params, red, go.as_deref()));
                }
            }
        }
    }
}

#[test]
fn odd_shapes() {
    let Some(g) = own_gpu_ctx() else { return };
    let l = loss_with(&g, &[("softcap", F64(4.0))]);
    let shapes = [
        (1usize, 5usize, 7usize),
        (3, 1, 65),
        (70, 17, 129),
        (5, 33, 1),
        (65, 70, 64),
        (130, 3, 200),
    ];
    for (k, &(n, d, v)) in shapes.iter().enumerate() {
        let p = prob(n, d, v, n / 7, -100, true, true, 1.0, 100 + k as u64);
        for red in REDUCTIONS {
            let what = format!("N={n} D={d} V={v} {}", red.name());
            let got = run(&l, &p, red, None);
            check_dense(&what, &got, &dense(&p, &[("softcap", F64(4.0))], red, None));
        }
    }
    // Every row ignored: zero loss, zero lse, zero gradients.
    let l = g.loss(ID).unwrap();
    let p = prob(6, 9, 70, 6, -100, true, true, 1.0, 7);
    for red in REDUCTIONS {
        let got = run(&l, &p, red, None);
        assert!(got.loss.iter().all(|&x| x == 0.0), "{:?}", got.loss);
        assert!(got.lse.iter().all(|&x| x == 0.0));
        assert!(got.de.iter().all(|&x| x == 0.0));
        assert!(got.dc.iter().all(|&x| x == 0.0));
        assert!(got.db.as_ref().unwrap().iter().all(|&x| x == 0.0));
    }
}

/// Logits of a wide spread with targets mostly at the arg-max (as in a trained model), so
/// that many tiles of the softmax are tiny.
fn peaked(seed: u64) -> Prob {
    let mut p = prob(150, 12, 700, 9, -100, true, true, 1.6, seed);
    for i in 0..p.n {
        if p.t[i] == -100 || i % 4 == 0 {
            continue;
        }
        let z = |v: usize| -> f64 {
            let b = p.bias.as_ref().map_or(0.0, |b| b[v] as f64);
            b + (0..p.d)
                .map(|k| p.e[i * p.d + k] as f64 * p.c[v * p.d + k] as f64)
                .sum::<f64>()
        };
        p.t[i] = (0..p.v).max_by(|&x, &y| z(x).total_cmp(&z(y))).unwrap() as i64;
    }
    p
}

#[test]
fn filtering_drops_the_same_tiles_as_the_cpu_path() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    let p = peaked(21);
    let exact = run(&loss_with(&g, &[]), &p, Reduction::Mean, None);
    for (sort, fe, fc, lam) in [
        (true, true, true, 0.0),
        (false, true, true, 0.0),
        (true, false, true, 0.0),
        (true, true, false, 1e-3),
        (false, true, false, 0.0),
    ] {
        let params = [
            ("filter_eps", F64(1e-3)),
            ("block_rows", I64(8)),
            ("block_vocab", I64(32)),
            ("sort_vocab", Bool(sort)),
            ("filter_e_grad", Bool(fe)),
            ("filter_c_grad", Bool(fc)),
            ("z_loss_coef", F64(lam)),
        ];
        let what = format!("sort={sort} filter_e={fe} filter_c={fc} lambda={lam}");
        let a = run(&loss_with(&g, &params), &p, Reduction::Mean, None);
        let b = run(&loss_with(&cpu, &params), &p, Reduction::Mean, None);
        check_same(&what, &a, &b);
        if lam == 0.0 {
            // Filtering dropped something (else the test would not test it).
            assert!(
                (fe && a.de != exact.de) || (fc && a.dc != exact.dc),
                "{what}: nothing was filtered"
            );
            // The loss never depends on filtering.
            assert_eq!(a.loss, exact.loss, "{what}");
        }
    }
    // Explicit tiles, smaller than the GPU's 64-wide products.
    let params = [
        ("filter_eps", F64(1e-3)),
        ("block_rows", I64(5)),
        ("block_vocab", I64(7)),
    ];
    let a = run(&loss_with(&g, &params), &p, Reduction::Sum, None);
    let b = run(&loss_with(&cpu, &params), &p, Reduction::Sum, None);
    check_same("tiles 5 x 7", &a, &b);
}

#[test]
fn classifier_bound_in_vocabulary_chunks() {
    let Some(g) = own_gpu_ctx() else { return };
    let dev = g.gpu_device().unwrap();
    let whole = own_gpu_ctx().unwrap();
    let cpu = Context::cpu();
    // 4 KiB bindings: C [300, 8] (9.6 KB) takes several vocabulary chunks and the 50 rows
    // several row chunks.
    dev.set_max_binding_bytes(4096);
    let sets: Vec<Vec<(&str, ParamValue)>> = vec![
        vec![],
        vec![("softcap", F64(3.0)), ("z_loss_coef", F64(1e-2))],
        vec![("filter_eps", F64(1e-3))],
        vec![("filter_eps", F64(1e-3)), ("sort_vocab", Bool(false))],
    ];
    for (k, params) in sets.iter().enumerate() {
        let p = prob(50, 8, 300, 4, -100, true, true, 1.2, 40 + k as u64);
        for red in [Reduction::Mean, Reduction::None] {
            let what = format!("chunked {params:?} {}", red.name());
            let a = run(&loss_with(&g, params), &p, red, None);
            let b = run(&loss_with(&cpu, params), &p, red, None);
            let c = run(&loss_with(&whole, params), &p, red, None);
            check_same(&format!("{what} vs cpu"), &a, &b);
            check_same(&format!("{what} vs one chunk"), &a, &c);
            if params.is_empty() {
                check_dense(&what, &a, &dense(&p, params, red, None));
            }
        }
    }
    // 64 rows of c do not fit: a clear error.
    let p = prob(4, 64, 100, 0, -100, false, false, 1.0, 3);
    let e = try_run(&g.loss(ID).unwrap(), &p, Reduction::Mean, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{}", e.msg);
    assert!(e.msg.contains("largest binding"), "{}", e.msg);
}

/// A device buffer holding `rows` rows of `len` at row stride `rs`, the gaps filled with
/// `fill`.
fn dev_rows(g: &Context, x: &[f32], rows: usize, len: usize, rs: usize, fill: f32) -> DeviceBuffer {
    let mut v = vec![fill; rows.max(1) * rs];
    for i in 0..rows {
        v[i * rs..i * rs + len].copy_from_slice(&x[i * len..(i + 1) * len]);
    }
    let b = g.buffer((v.len() * 4) as u64).unwrap();
    b.write_f32(0, &v).unwrap();
    b
}

fn strip(v: &[f32], rows: usize, len: usize, rs: usize) -> Vec<f32> {
    (0..rows)
        .flat_map(|i| v[i * rs..i * rs + len].to_vec())
        .collect()
}

#[test]
fn device_buffers_with_row_strides_give_the_host_results() {
    let Some(g) = own_gpu_ctx() else { return };
    const GAP: f32 = 7.5;
    for (k, ignored, params) in [
        (0u64, 6usize, vec![("softcap", F64(3.0))]),
        (1, 0, vec![("filter_eps", F64(1e-3))]),
        (2, 40, vec![]),
    ] {
        let p = prob(40, 21, 150, ignored, -100, true, true, 1.0, 60 + k);
        let l = loss_with(&g, &params);
        let host = run(&l, &p, Reduction::Mean, None);
        let (ers, crs, ders, dcrs) = (p.d + 3, p.d + 5, p.d + 2, p.d + 4);
        let eb = dev_rows(&g, &p.e, p.n, p.d, ers, GAP);
        let cb = dev_rows(&g, &p.c, p.v, p.d, crs, GAP);
        let tb = g.buffer((p.n * 8) as u64).unwrap();
        tb.write_i64(0, &p.t).unwrap();
        let bb = dev_rows(&g, p.bias.as_ref().unwrap(), 1, p.v, p.v, GAP);
        let wb = dev_rows(&g, p.sw.as_ref().unwrap(), 1, p.n, p.n, GAP);
        // Gradient buffers start full of garbage: ignored rows must be cleared, gaps kept.
        let deb = dev_rows(&g, &vec![GAP; p.n * p.d], p.n, p.d, ders, GAP);
        let dcb = dev_rows(&g, &vec![GAP; p.v * p.d], p.v, p.d, dcrs, GAP);
        let dbb = dev_rows(&g, &vec![GAP; p.v], 1, p.v, p.v, GAP);
        let mut loss = vec![0f32];
        let mut lse = vec![0f32; p.n];
        {
            let mut cm = Compute::new(Reduction::Mean, &mut loss)
                .input(Tensor::device(&eb, DType::F32, 0, &[p.n, p.d]).with_row_stride(ers))
                .input(Tensor::device(&cb, DType::F32, 0, &[p.v, p.d]).with_row_stride(crs))
                .input(Tensor::device(&tb, DType::I64, 0, &[p.n]))
                .input(Tensor::device(&bb, DType::F32, 0, &[p.v]))
                .input(Tensor::device(&wb, DType::F32, 0, &[p.n]))
                .aux("lse", TensorMut::new(&mut lse, &[p.n]));
            cm.grads = vec![
                Grad::Device(DeviceOut::new(&deb, 0, &[p.n, p.d]).with_row_stride(ders)),
                Grad::Device(DeviceOut::new(&dcb, 0, &[p.v, p.d]).with_row_stride(dcrs)),
                Grad::None,
                Grad::Device(DeviceOut::new(&dbb, 0, &[p.v])),
                Grad::None,
            ];
            l.compute(&mut cm).unwrap();
        }
        let what = format!("device case {k}");
        assert_eq!(loss, host.loss, "{what}: loss");
        assert_eq!(lse, host.lse, "{what}: lse");
        let de = deb.read_f32(0, p.n * ders).unwrap();
        let dc = dcb.read_f32(0, p.v * dcrs).unwrap();
        assert_eq!(strip(&de, p.n, p.d, ders), host.de, "{what}: de");
        assert_eq!(strip(&dc, p.v, p.d, dcrs), host.dc, "{what}: dc");
        assert_eq!(
            dbb.read_f32(0, p.v).unwrap(),
            *host.db.as_ref().unwrap(),
            "{what}: dbias"
        );
        for (buf, rows, len, rs) in [(&de, p.n, p.d, ders), (&dc, p.v, p.d, dcrs)] {
            for i in 0..rows {
                assert!(
                    buf[i * rs + len..(i + 1) * rs].iter().all(|&x| x == GAP),
                    "{what}: a gap between gradient rows was written"
                );
            }
        }
    }
}

#[test]
fn repeated_runs_are_bit_identical() {
    let Some(g) = own_gpu_ctx() else { return };
    let p = peaked(5);
    for params in [
        vec![("softcap", F64(2.0)), ("z_loss_coef", F64(1e-3))],
        vec![("filter_eps", F64(1e-4))],
    ] {
        let l = loss_with(&g, &params);
        let a = run(&l, &p, Reduction::Mean, None);
        let b = run(&l, &p, Reduction::Mean, None);
        assert_eq!(a, b, "{params:?}");
    }
}

#[test]
fn invalid_inputs_fail_like_on_the_cpu() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    let mut p = prob(8, 4, 20, 0, -100, false, true, 1.0, 9);
    p.t[3] = 20;
    let a = try_run(&g.loss(ID).unwrap(), &p, Reduction::Mean, None).unwrap_err();
    let b = try_run(&cpu.loss(ID).unwrap(), &p, Reduction::Mean, None).unwrap_err();
    assert_eq!(a.kind, ErrorKind::InvalidTarget, "{}", a.msg);
    assert_eq!((a.kind, &a.msg), (b.kind, &b.msg));
    let mut p = prob(8, 4, 20, 0, -100, false, true, 1.0, 9);
    p.sw.as_mut().unwrap()[2] = -1.0;
    let a = try_run(&g.loss(ID).unwrap(), &p, Reduction::Mean, None).unwrap_err();
    let b = try_run(&cpu.loss(ID).unwrap(), &p, Reduction::Mean, None).unwrap_err();
    assert_eq!(a.kind, ErrorKind::InvalidInput, "{}", a.msg);
    assert_eq!((a.kind, &a.msg), (b.kind, &b.msg));
}
