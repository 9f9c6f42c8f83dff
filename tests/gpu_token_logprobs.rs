//! GPU (wgpu) tests of `token_logprobs` beyond the generic parity suite of `tests/gpu.rs`:
//! every auxiliary output and option against the CPU path, reference logits, strided and
//! in-place host tensors, device buffers in and out, forced row chunking (also inside a
//! sequence), validation errors identical to the CPU's, and the acceptance shape
//! `N = 8, T = 512, V = 32000`.
//!
//! Without a usable adapter every test prints "skipped" and passes, unless
//! `LOSSKIT_REQUIRE_GPU=1`. Tolerance as in `tests/gpu.rs`: `|gpu - cpu| <= 2e-5 + 2e-4·|cpu|`.

#![cfg(feature = "wgpu")]

use std::time::Instant;

use losskit::tensor::DeviceOut;
use losskit::testing::Rng;
use losskit::{Compute, Context, DType, ErrorKind, Loss, ParamValue, Reduction, Tensor, TensorMut};

#[path = "common/gpu.rs"]
mod gpu_common;
use gpu_common::{close, gpu_ctx, own_gpu_ctx};

const ID: &str = "token_logprobs";

/// Inputs of one call (host), logits with sequence stride `xs >= T·V`.
struct Inp {
    n: usize,
    t: usize,
    v: usize,
    xs: usize,
    x: Vec<f32>,
    y: Vec<i64>,
    w: Option<Vec<f32>>,
    r: Option<Vec<f32>>,
    g_lp: Option<Vec<f32>>,
    g_h: Option<Vec<f32>>,
    g_kl: Option<Vec<f32>>,
}

fn inputs(n: usize, t: usize, v: usize, xs: usize, full: bool, seed: u64) -> Inp {
    let mut rng = Rng::new(seed);
    let len = n.saturating_sub(1) * xs + t * v;
    let mut f = |len: usize, s: f64, o: f64| -> Vec<f32> {
        (0..len).map(|_| (o + s * rng.normal()) as f32).collect()
    };
    let x = f(len, 2.0, 0.0);
    let r = full.then(|| f(n * t * v, 1.5, 0.3));
    let g_lp = full.then(|| f(n * t, 0.5, 0.0));
    let g_h = full.then(|| f(n * t, 0.5, 0.0));
    let g_kl = full.then(|| f(n * t, 0.5, 0.0));
    let mut rng = Rng::new(seed ^ 0x5eed);
    let y: Vec<i64> = (0..n * t)
        .map(|j| {
            if j % 7 == 3 {
                -100
            } else {
                rng.below(v as u64) as i64
            }
        })
        .collect();
    let w = full.then(|| (0..n * t).map(|_| rng.uniform() as f32).collect());
    Inp {
        n,
        t,
        v,
        xs,
        x,
        y,
        w,
        r,
        g_lp,
        g_h,
        g_kl,
    }
}

#[derive(Debug)]
struct Out {
    loss: Vec<f32>,
    grad: Vec<f32>,
    lp: Vec<f32>,
    cnt: Vec<f32>,
    h: Vec<f32>,
    kl: Vec<f32>,
    coll: Vec<f32>,
}

impl Out {
    fn check(&self, what: &str, cpu: &Out) {
        close(&format!("{what}: loss"), &self.loss, &cpu.loss);
        close(&format!("{what}: grad"), &self.grad, &cpu.grad);
        close(&format!("{what}: token_logps"), &self.lp, &cpu.lp);
        assert_eq!(self.cnt, cpu.cnt, "{what}: token_count");
        close(&format!("{what}: entropy"), &self.h, &cpu.h);
        close(&format!("{what}: token_kl"), &self.kl, &cpu.kl);
        close(&format!("{what}: log_collision"), &self.coll, &cpu.coll);
    }
}

fn opt<'a>(c: Compute<'a>, v: &'a Option<Vec<f32>>, shape: &[usize]) -> Compute<'a> {
    match v {
        Some(v) => c.input(Tensor::f32(v, shape)),
        None => c.absent(),
    }
}

/// Host tensors, every aux output (token_kl when there is a reference), gradient into a
/// separate buffer with sequence stride `gs` or, with `in_place`, over a copy of the logits.
fn run_host(
    l: &Loss,
    p: &Inp,
    red: Reduction,
    go: Option<&[f32]>,
    gs: usize,
    in_place: bool,
) -> Out {
    let (n, t, v) = (p.n, p.t, p.v);
    let nt = [n, t];
    let mut loss = vec![0f32; if red == Reduction::None { n } else { 1 }];
    let mut xg = if in_place { p.x.clone() } else { Vec::new() };
    let mut grad = vec![f32::NAN; n.saturating_sub(1) * gs + t * v];
    let (mut lp, mut cnt, mut h, mut kl, mut coll) = (
        vec![9f32; n * t],
        vec![9f32; n],
        vec![9f32; n * t],
        vec![0f32; n * t],
        vec![9f32; n * t],
    );
    {
        let x = if in_place {
            Tensor::f32_in_place(&mut xg, &[n, t, v])
        } else {
            Tensor::f32(&p.x, &[n, t, v])
        }
        .with_row_stride(p.xs);
        let mut c = Compute::new(red, &mut loss)
            .input(x)
            .input(Tensor::i64(&p.y, &nt));
        c = opt(c, &p.w, &nt);
        c = opt(c, &p.r, &[n, t, v]);
        c = opt(c, &p.g_lp, &nt);
        c = opt(c, &p.g_h, &nt);
        c = opt(c, &p.g_kl, &nt);
        c = if in_place {
            c.grad_in_place(0)
        } else {
            c.grad(0, TensorMut::new(&mut grad, &[n, t, v]).with_row_stride(gs))
        };
        if let Some(go) = go {
            c = c.grad_output(go);
        }
        c = c
            .aux("token_logps", TensorMut::new(&mut lp, &nt))
            .aux("token_count", TensorMut::new(&mut cnt, &[n]))
            .aux("entropy", TensorMut::new(&mut h, &nt))
            .aux("log_collision", TensorMut::new(&mut coll, &nt));
        if p.r.is_some() {
            c = c.aux("token_kl", TensorMut::new(&mut kl, &nt));
        }
        l.compute(&mut c)
            .unwrap_or_else(|e| panic!("{}: {e}", l.def().spec.id));
    }
    Out {
        loss,
        grad: if in_place { xg } else { grad },
        lp,
        cnt,
        h,
        kl,
        coll,
    }
}

fn losses(g: &Context, set: &[(&str, ParamValue)]) -> (Loss, Loss) {
    let mut lg = g.loss(ID).unwrap();
    let mut lc = Context::cpu().loss(ID).unwrap();
    for (k, v) in set {
        lg.set(k, *v).unwrap();
        lc.set(k, *v).unwrap();
    }
    (lg, lc)
}

#[test]
fn has_a_gpu_kernel() {
    assert!(losskit::registry::builtin(ID).is_some_and(|d| d.has_gpu()));
}

#[test]
fn every_aux_output_and_option_matches_cpu() {
    let Some(g) = gpu_ctx() else { return };
    use ParamValue::{Bool, F64};
    let sets: [&[(&str, ParamValue)]; 3] = [
        &[],
        &[("temperature", F64(0.8)), ("average", Bool(true))],
        &[
            ("temperature", F64(1.7)),
            ("ignore_index", ParamValue::I64(-1)),
        ],
    ];
    // Several rows per workgroup (V = 7, 100), one row per workgroup (V = 3000, 40000).
    let shapes = [
        (2usize, 7usize, 7usize),
        (3, 5, 100),
        (2, 6, 3000),
        (1, 3, 40_000),
    ];
    for (si, set) in sets.iter().enumerate() {
        let (lg, lc) = losses(&g, set);
        for (di, &(n, t, v)) in shapes.iter().enumerate() {
            for full in [false, true] {
                let mut p = inputs(n, t, v, t * v, full, 40 + di as u64);
                if si == 2 {
                    for y in p.y.iter_mut().filter(|y| **y == -100) {
                        *y = -1;
                    }
                }
                for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                    let go: Vec<f32> = match red {
                        Reduction::None => (0..n).map(|i| 0.6 - 0.3 * i as f32).collect(),
                        _ => vec![1.3],
                    };
                    let what = format!("set {si} {n}x{t}x{v} full {full} {}", red.name());
                    let a = run_host(&lg, &p, red, Some(&go), t * v, false);
                    let b = run_host(&lc, &p, red, Some(&go), t * v, false);
                    a.check(&what, &b);
                }
            }
        }
    }
}

#[test]
fn strided_and_in_place_host_tensors() {
    let Some(g) = gpu_ctx() else { return };
    let (lg, lc) = losses(&g, &[("temperature", ParamValue::F64(0.9))]);
    let (n, t, v) = (3usize, 4usize, 513usize);
    let p = inputs(n, t, v, t * v + 37, true, 7);
    // Strided logits and a gradient with its own stride; the gaps keep their NaN.
    let a = run_host(&lg, &p, Reduction::Sum, None, t * v + 11, false);
    let b = run_host(&lc, &p, Reduction::Sum, None, t * v + 11, false);
    let gaps = |o: &Out| o.grad.iter().filter(|x| x.is_nan()).count();
    assert_eq!(gaps(&a), 2 * 11);
    assert_eq!(gaps(&b), 2 * 11);
    let strip = |o: &Out| -> Vec<f32> { o.grad.iter().copied().filter(|x| !x.is_nan()).collect() };
    close("strided grad", &strip(&a), &strip(&b));
    close("strided loss", &a.loss, &b.loss);
    close("strided entropy", &a.h, &b.h);
    // In place over strided logits: only the rows are overwritten.
    let a = run_host(&lg, &p, Reduction::Mean, None, 0, true);
    let b = run_host(&lc, &p, Reduction::Mean, None, 0, true);
    a.check("in place", &b);
}

fn f32_buf(g: &Context, v: &[f32]) -> losskit::backend::DeviceBuffer {
    let b = g.buffer((v.len() * 4).max(4) as u64).unwrap();
    b.write_f32(0, v).unwrap();
    b
}

#[test]
fn device_buffers_in_and_out() {
    let Some(g) = gpu_ctx() else { return };
    let (lg, lc) = losses(&g, &[("average", ParamValue::Bool(true))]);
    let (n, t, v) = (3usize, 5usize, 900usize);
    let (xs, gs) = (t * v + 20, t * v + 8);
    let p = inputs(n, t, v, xs, true, 11);
    let cpu = run_host(&lc, &p, Reduction::Mean, None, gs, false);
    let nt = [n, t];
    let xb = f32_buf(&g, &p.x);
    let yb = g.buffer((n * t * 8) as u64).unwrap();
    yb.write_i64(0, &p.y).unwrap();
    let r = p.r.as_ref().unwrap();
    // The reference at an offset in the same buffer as the weights.
    let mut wr = p.w.clone().unwrap();
    wr.extend_from_slice(r);
    let wrb = f32_buf(&g, &wr);
    let glp = f32_buf(&g, p.g_lp.as_ref().unwrap());
    let gh = f32_buf(&g, p.g_h.as_ref().unwrap());
    let gkl = f32_buf(&g, p.g_kl.as_ref().unwrap());
    let glen = (n - 1) * gs + t * v;
    let gb = f32_buf(&g, &vec![-7.0; glen]);
    let call = |grad: losskit::Grad<'static>, out: &mut Out| {
        let mut loss = [0f32];
        let mut c = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::device(&xb, DType::F32, 0, &[n, t, v]).with_row_stride(xs))
            .input(Tensor::device(&yb, DType::I64, 0, &nt))
            .input(Tensor::device(&wrb, DType::F32, 0, &nt))
            .input(Tensor::device(&wrb, DType::F32, n * t, &[n, t, v]))
            .input(Tensor::device(&glp, DType::F32, 0, &nt))
            .input(Tensor::device(&gh, DType::F32, 0, &nt))
            .input(Tensor::device(&gkl, DType::F32, 0, &nt))
            .aux("token_logps", TensorMut::new(&mut out.lp, &nt))
            .aux("token_count", TensorMut::new(&mut out.cnt, &[n]))
            .aux("entropy", TensorMut::new(&mut out.h, &nt))
            .aux("token_kl", TensorMut::new(&mut out.kl, &nt))
            .aux("log_collision", TensorMut::new(&mut out.coll, &nt));
        c.grads.push(grad);
        lg.compute(&mut c).unwrap();
        drop(c);
        out.loss = loss.to_vec();
    };
    let fresh = || Out {
        loss: vec![],
        grad: vec![],
        lp: vec![0.0; n * t],
        cnt: vec![0.0; n],
        h: vec![0.0; n * t],
        kl: vec![0.0; n * t],
        coll: vec![0.0; n * t],
    };
    // Gradient into a strided device buffer: the gaps keep their -7.
    let mut o = fresh();
    call(
        losskit::Grad::Device(DeviceOut::new(&gb, 0, &[n, t, v]).with_row_stride(gs)),
        &mut o,
    );
    o.grad = gb.read_f32(0, glen).unwrap();
    let mut want = cpu.grad.clone();
    for (k, w) in want.iter_mut().enumerate() {
        if k % gs >= t * v {
            *w = -7.0;
        }
    }
    let cpu_d = Out {
        grad: want,
        loss: cpu.loss.clone(),
        lp: cpu.lp.clone(),
        cnt: cpu.cnt.clone(),
        h: cpu.h.clone(),
        kl: cpu.kl.clone(),
        coll: cpu.coll.clone(),
    };
    o.check("device grad out", &cpu_d);
    // Device logits, host gradient: the CPU gradient's gaps are NaN, as is the host buffer.
    let mut o = fresh();
    let mut hg = vec![f32::NAN; glen];
    {
        let mut loss = [0f32];
        let mut c = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::device(&xb, DType::F32, 0, &[n, t, v]).with_row_stride(xs))
            .input(Tensor::device(&yb, DType::I64, 0, &nt))
            .input(Tensor::device(&wrb, DType::F32, 0, &nt))
            .input(Tensor::device(&wrb, DType::F32, n * t, &[n, t, v]))
            .input(Tensor::device(&glp, DType::F32, 0, &nt))
            .input(Tensor::device(&gh, DType::F32, 0, &nt))
            .input(Tensor::device(&gkl, DType::F32, 0, &nt))
            .grad(0, TensorMut::new(&mut hg, &[n, t, v]).with_row_stride(gs));
        lg.compute(&mut c).unwrap();
        drop(c);
        o.loss = loss.to_vec();
    }
    close("device to host loss", &o.loss, &cpu.loss);
    for (k, (a, b)) in hg.iter().zip(&cpu.grad).enumerate() {
        if b.is_nan() {
            assert!(a.is_nan(), "gap element {k} was written");
        }
    }
    let strip = |v: &[f32]| -> Vec<f32> { v.iter().copied().filter(|x| !x.is_nan()).collect() };
    close("device to host grad", &strip(&hg), &strip(&cpu.grad));
    // In place over the device logits.
    let mut o = fresh();
    call(losskit::Grad::InPlace, &mut o);
    let xg = xb.read_f32(0, p.x.len()).unwrap();
    for (k, (a, b)) in xg.iter().zip(&p.x).enumerate() {
        if k % xs >= t * v {
            assert_eq!(a, b, "in-place gap element {k} was written");
        }
    }
    let rows = |a: &[f32], s: usize| -> Vec<f32> {
        (0..n)
            .flat_map(|i| a[i * s..i * s + t * v].to_vec())
            .collect()
    };
    close("device in place grad", &rows(&xg, xs), &rows(&cpu.grad, gs));
    close("device in place loss", &o.loss, &cpu.loss);
    close("device in place kl", &o.kl, &cpu.kl);

    // A bad device label is reported like a host one, and nothing is written.
    xb.write_f32(0, &p.x).unwrap();
    let mut bad = p.y.clone();
    bad[4] = v as i64;
    yb.write_i64(0, &bad).unwrap();
    let mut loss = [0f32];
    let mut c = Compute::new(Reduction::Mean, &mut loss)
        .input(Tensor::device(&xb, DType::F32, 0, &[n, t, v]).with_row_stride(xs))
        .input(Tensor::device(&yb, DType::I64, 0, &nt))
        .grad_in_place(0);
    let e = lg.compute(&mut c).unwrap_err();
    drop(c);
    assert_eq!(e.kind, ErrorKind::InvalidTarget, "{}", e.msg);
    assert_eq!(xb.read_f32(0, p.x.len()).unwrap(), p.x);
}

#[test]
fn validation_errors_match_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let (n, t, v) = (2usize, 3usize, 50usize);
    let p = inputs(n, t, v, t * v, true, 3);
    let nt = [n, t];
    let err = |l: &Loss, case: usize| {
        let mut loss = [0f32];
        let mut kl = vec![0f32; n * t];
        let mut c = Compute::new(Reduction::Sum, &mut loss)
            .input(Tensor::f32(&p.x, &[n, t, v]))
            .input(Tensor::i64(&p.y, &nt))
            .absent()
            .absent();
        match case {
            0 => {}
            1 => {
                c = c
                    .absent()
                    .absent()
                    .input(Tensor::f32(p.g_kl.as_ref().unwrap(), &nt))
            }
            _ => c = c.aux("token_kl", TensorMut::new(&mut kl, &nt)),
        }
        let e = l.compute(&mut c).unwrap_err();
        (e.kind, e.msg)
    };
    for case in 0..3 {
        let (mut lg, mut lc) = losses(&g, &[]);
        if case == 0 {
            lg.set("ignore_index", ParamValue::I64(3)).unwrap();
            lc.set("ignore_index", ParamValue::I64(3)).unwrap();
        }
        assert_eq!(err(&lg, case), err(&lc, case), "case {case}");
    }
}

#[test]
fn forced_small_binding_chunks_rows() {
    let Some(g) = own_gpu_ctx() else { return };
    let dev = g.gpu_device().unwrap();
    let (lg, lc) = losses(&g, &[("temperature", ParamValue::F64(1.1))]);
    // 16 KiB bindings: 8 rows of 500 f32 per chunk, so chunks start inside sequences of 3
    // tokens; strided host logits; small V packs rows per workgroup.
    dev.set_max_binding_bytes(16 * 1024);
    for &(n, t, v, xs) in &[
        (5usize, 3usize, 500usize, 1600usize),
        (4, 9, 40, 360),
        (2, 2, 3000, 6000),
    ] {
        let p = inputs(n, t, v, xs, true, 19);
        for red in [Reduction::None, Reduction::Mean] {
            let go: Vec<f32> = (0..n).map(|i| 1.0 + 0.1 * i as f32).collect();
            let go = (red == Reduction::None).then_some(&go[..]);
            let what = format!("chunked {n}x{t}x{v} {}", red.name());
            let a = run_host(&lg, &p, red, go, t * v, false);
            let b = run_host(&lc, &p, red, go, t * v, false);
            a.check(&what, &b);
        }
        // Device logits with strided sequences: windows bounded by their spans.
        let xb = f32_buf(&g, &p.x);
        let yb = g.buffer((n * t * 8) as u64).unwrap();
        yb.write_i64(0, &p.y).unwrap();
        let rb = f32_buf(&g, p.r.as_ref().unwrap());
        let gb = f32_buf(&g, &vec![0.0; n * t * v]);
        let mut loss = [0f32];
        let mut kl = vec![0f32; n * t];
        {
            let mut c = Compute::new(Reduction::Sum, &mut loss)
                .input(Tensor::device(&xb, DType::F32, 0, &[n, t, v]).with_row_stride(xs))
                .input(Tensor::device(&yb, DType::I64, 0, &[n, t]))
                .absent()
                .input(Tensor::device(&rb, DType::F32, 0, &[n, t, v]))
                .aux("token_kl", TensorMut::new(&mut kl, &[n, t]));
            c.grads
                .push(losskit::Grad::Device(DeviceOut::new(&gb, 0, &[n, t, v])));
            lg.compute(&mut c).unwrap();
        }
        let mut lc_loss = [0f32];
        let mut kl_c = vec![0f32; n * t];
        let mut gc = vec![0f32; n * t * v];
        {
            let mut c = Compute::new(Reduction::Sum, &mut lc_loss)
                .input(Tensor::f32(&p.x, &[n, t, v]).with_row_stride(xs))
                .input(Tensor::i64(&p.y, &[n, t]))
                .absent()
                .input(Tensor::f32(p.r.as_ref().unwrap(), &[n, t, v]))
                .grad(0, TensorMut::new(&mut gc, &[n, t, v]))
                .aux("token_kl", TensorMut::new(&mut kl_c, &[n, t]));
            lc.compute(&mut c).unwrap();
        }
        close("chunked device loss", &loss, &lc_loss);
        close("chunked device kl", &kl, &kl_c);
        close(
            "chunked device grad",
            &gb.read_f32(0, n * t * v).unwrap(),
            &gc,
        );
    }
    // A token row longer than a binding: a clear error.
    dev.set_max_binding_bytes(4096);
    let p = inputs(1, 2, 5000, 10_000, false, 1);
    let mut loss = [0f32];
    let mut c = Compute::new(Reduction::Sum, &mut loss)
        .input(Tensor::f32(&p.x, &[1, 2, 5000]))
        .input(Tensor::i64(&p.y, &[1, 2]));
    let e = lg.compute(&mut c).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.msg.contains("largest binding"), "{}", e.msg);
}

/// The acceptance shape of the issue: `N = 8, T = 512, V = 32000` (524 MB of logits, so
/// several row chunks on a device whose largest binding is 128 MiB, as lavapipe's), with the
/// gradient, `grad_output` and the entropy, collision, token-log-prob and count outputs, on
/// the GPU backend against the CPU path, every element compared. About 30 s in the test
/// profile on lavapipe with 2 cores (both paths together); needs about 2 GB of memory.
#[test]
fn acceptance_shape_8x512x32000() {
    let Some(g) = gpu_ctx() else { return };
    let (lg, lc) = losses(&g, &[]);
    let (n, t, v) = (8usize, 512usize, 32_000usize);
    let p = inputs(n, t, v, t * v, false, 2024);
    let go: Vec<f32> = (0..n).map(|i| 1.0 - 0.2 * i as f32).collect();
    let t0 = Instant::now();
    let b = run_host(&lc, &p, Reduction::None, Some(&go), t * v, false);
    let cpu_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let a = run_host(&lg, &p, Reduction::None, Some(&go), t * v, false);
    let gpu_s = t0.elapsed().as_secs_f64();
    a.check("8x512x32000", &b);
    eprintln!(
        "token_logprobs 8x512x32000 (host tensors, gradient, every aux but token_kl): cpu {cpu_s:.2} s, gpu {gpu_s:.2} s, gpu/cpu = {:.2}",
        gpu_s / cpu_s
    );
}

#[test]
fn extreme_rows_match_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let (lg, lc) = losses(&g, &[("temperature", ParamValue::F64(0.5))]);
    // Near-uniform rows, very peaked rows (entropy and collision near 0, large KL), a
    // Llama-3-sized vocabulary, and rows of one repeated value.
    for &(scale, v) in &[
        (0.01f32, 50usize),
        (30.0, 50),
        (0.01, 128_256),
        (25.0, 128_256),
    ] {
        let (n, t) = (2usize, 2usize);
        let mut p = inputs(n, t, v, t * v, true, 77);
        for x in p.x.iter_mut() {
            *x *= scale;
        }
        for r in p.r.iter_mut().flatten() {
            *r *= scale;
        }
        // Token row 2 (unmasked; row 3 is): every logit equal (a uniform distribution).
        assert_ne!(p.y[2], -100);
        p.x[2 * v..3 * v].fill(3.0);
        let what = format!("extreme scale {scale} V {v}");
        let a = run_host(&lg, &p, Reduction::Sum, None, t * v, false);
        let b = run_host(&lc, &p, Reduction::Sum, None, t * v, false);
        a.check(&what, &b);
    }
}

#[test]
fn reference_in_the_logits_buffer() {
    let Some(g) = gpu_ctx() else { return };
    let (lg, lc) = losses(&g, &[]);
    let (n, t, v) = (2usize, 3usize, 257usize);
    let p = inputs(n, t, v, t * v, true, 5);
    let r = p.r.as_ref().unwrap();
    // [logits | reference] in one buffer; the gradient over the logits part.
    let mut both = p.x.clone();
    both.extend_from_slice(r);
    let b = f32_buf(&g, &both);
    let nt = [n, t];
    let mut loss = [0f32];
    let mut kl = vec![0f32; n * t];
    {
        let mut c = Compute::new(Reduction::Sum, &mut loss)
            .input(Tensor::device(&b, DType::F32, 0, &[n, t, v]))
            .input(Tensor::i64(&p.y, &nt))
            .absent()
            .input(Tensor::device(&b, DType::F32, n * t * v, &[n, t, v]))
            .absent()
            .absent()
            .input(Tensor::f32(p.g_kl.as_ref().unwrap(), &nt))
            .grad_in_place(0)
            .aux("token_kl", TensorMut::new(&mut kl, &nt));
        lg.compute(&mut c).unwrap();
    }
    let mut loss_c = [0f32];
    let mut kl_c = vec![0f32; n * t];
    let mut gc = vec![0f32; n * t * v];
    {
        let mut c = Compute::new(Reduction::Sum, &mut loss_c)
            .input(Tensor::f32(&p.x, &[n, t, v]))
            .input(Tensor::i64(&p.y, &nt))
            .absent()
            .input(Tensor::f32(r, &[n, t, v]))
            .absent()
            .absent()
            .input(Tensor::f32(p.g_kl.as_ref().unwrap(), &nt))
            .grad(0, TensorMut::new(&mut gc, &[n, t, v]))
            .aux("token_kl", TensorMut::new(&mut kl_c, &nt));
        lc.compute(&mut c).unwrap();
    }
    close("shared buffer loss", &loss, &loss_c);
    close("shared buffer kl", &kl, &kl_c);
    let after = b.read_f32(0, both.len()).unwrap();
    close("shared buffer grad", &after[..n * t * v], &gc);
    assert_eq!(&after[n * t * v..], &r[..], "the reference must not change");
}
