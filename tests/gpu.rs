//! GPU (wgpu) tests, one binary: a generic CPU/GPU parity suite over every registered loss,
//! cross_entropy specifics (in place, strided rows, device buffers, forced chunking, a large
//! vocabulary, auxiliary outputs), the per-sample kernel contract, the pipeline cache from
//! many threads, and a missing driver.
//!
//! Without a usable adapter every test prints "skipped: no wgpu adapter" and passes, unless
//! `LOSSKIT_REQUIRE_GPU=1`, where that is a failure. In CI the adapter is Mesa's lavapipe,
//! allowed with `LOSSKIT_ALLOW_SOFTWARE_ADAPTER=1`.
//!
//! Tolerance (GPU f32 against the CPU path, which accumulates in f64): an element passes
//! when `|gpu - cpu| <= ATOL + RTOL * |cpu|`, with ATOL = 2e-5 and RTOL = 2e-4, for losses,
//! gradients and auxiliary outputs alike (`correct` must match exactly).

#![cfg(feature = "wgpu")]

use losskit::tensor::DeviceOut;
use losskit::testing::{Case, Rng};
use losskit::{
    BackendKind, Compute, Context, DType, Loss, ParamValue, Reduction, Tensor, TensorMut,
};

mod common;
#[path = "common/gpu.rs"]
mod gpu_common;
use gpu_common::{close, dims, gpu_ctx, own_gpu_ctx};
fn configure(l: &mut Loss, set: &[(String, ParamValue)]) {
    for (n, v) in set {
        l.set(n, *v).expect("test parameter set");
    }
}

fn grad_output(reduction: Reduction, rows: usize, rng: &mut Rng) -> Vec<f32> {
    match reduction {
        Reduction::None => (0..rows)
            .map(|_| (rng.uniform() * 2.0 - 0.5) as f32)
            .collect(),
        _ => vec![0.7],
    }
}

/// `LOSSKIT_PARITY_ONLY=id,id,...` limits the parity suite to those losses (for kernel
/// work on the slow software adapter); unset, every loss with a kernel is checked.
fn parity_selected(id: &str) -> bool {
    match std::env::var("LOSSKIT_PARITY_ONLY") {
        Ok(v) if !v.trim().is_empty() => v.split(',').any(|x| x.trim() == id),
        _ => true,
    }
}

/// The least number of calls the unfiltered parity suite compares.
const MIN_PARITY_CALLS: usize = 3000;

/// Every registered loss x (defaults + each test parameter set) x reductions x with/without
/// optional inputs x with/without grad_output x a few shapes, GPU against CPU.
#[test]
fn every_loss_should_match_reference_backend() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let shapes = [
        dims(&[]),
        dims(&[("N", 37), ("C", 300)]),
        dims(&[("N", 3), ("C", 9000)]),
    ];
    let mut tally = common::Tally::new("CPU/GPU parity (calls)");
    let filtered = std::env::var("LOSSKIT_PARITY_ONLY").is_ok_and(|v| !v.trim().is_empty());
    for def in g.losses() {
        if !def.has_gpu() {
            // Runs its CPU path on a WGPU context (see loss_without_kernel_falls_back_to_cpu).
            tally.skip("losses without a GPU kernel", 1);
            continue;
        }
        let id = def.spec.id.to_string();
        if !parity_selected(&id) {
            tally.skip("losses not selected by LOSSKIT_PARITY_ONLY", 1);
            continue;
        }
        let mut sets = vec![Vec::new()];
        sets.extend(def.test_params.iter().cloned());
        for (si, set) in sets.iter().enumerate() {
            let mut lg = g.loss(&id).unwrap();
            let mut lc = cpu.loss(&id).unwrap();
            configure(&mut lg, set);
            configure(&mut lc, set);
            for (di, d) in shapes.iter().enumerate() {
                // Letters the loss fixes (test_dims) keep their size.
                let d: std::collections::BTreeMap<String, usize> = d
                    .iter()
                    .filter(|(k, _)| !def.test_dims.iter().any(|(l, _)| l == *k))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                let d = &d;
                for opt in [false, true] {
                    let case = Case::random(&lc, d, 1000 + si as u64 * 7 + di as u64, opt);
                    let rows = case.rows(&def.spec);
                    let mut rng = Rng::new(5 + si as u64);
                    for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                        if def.spec.batch_level && red == Reduction::None {
                            continue;
                        }
                        for with_go in [false, true] {
                            let go = with_go.then(|| grad_output(red, rows, &mut rng));
                            let what = format!(
                                "{id} set {si} {set:?} shape {d:?} optional {opt} {} go {with_go}",
                                red.name()
                            );
                            let oc = case.run(&lc, red, true, go.as_deref()).unwrap();
                            let og = case
                                .run(&lg, red, true, go.as_deref())
                                .unwrap_or_else(|e| panic!("{what}: GPU failed: {e}"));
                            close(&format!("{what}: loss"), &og.loss, &oc.loss);
                            for (k, (a, b)) in og.grads.iter().zip(&oc.grads).enumerate() {
                                if let (Some(a), Some(b)) = (a, b) {
                                    close(&format!("{what}: grad {k}"), a, b);
                                }
                            }
                            tally.checked(1);
                        }
                    }
                }
            }
        }
    }
    // Unfiltered, every loss with a kernel runs 36 calls per parameter setting (3 shapes x
    // with/without optional inputs x 3 reductions x with/without grad_output).
    tally.finish(if filtered { 1 } else { MIN_PARITY_CALLS });
}

#[test]
fn every_builtin_declares_a_gpu_kernel() {
    let mut cpu_only = Vec::new();
    for def in losskit::registry::builtins() {
        if !def.has_gpu() {
            cpu_only.push(def.spec.id.to_string());
        }
    }
    assert!(
        losskit::registry::builtin("cross_entropy").is_some_and(|d| d.has_gpu()),
        "cross_entropy must have its GPU kernel"
    );
    assert!(
        cpu_only.is_empty(),
        "builtins without a GPU kernel (every builtin has both paths): {}",
        cpu_only.join(", ")
    );
}

/// Random CE inputs: logits [n, c] (row stride `stride`), targets with some ignored.
fn ce_inputs(n: usize, c: usize, stride: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..n.saturating_sub(1) * stride + c)
        .map(|_| (2.0 * rng.normal()) as f32)
        .collect();
    let y: Vec<i64> = (0..n)
        .map(|i| {
            if i % 5 == 3 {
                -100
            } else {
                rng.below(c as u64) as i64
            }
        })
        .collect();
    (x, y)
}

struct CeOut {
    loss: Vec<f32>,
    grad: Vec<f32>,
    lse: Vec<f32>,
    correct: Vec<f32>,
}

/// cross_entropy with every option on, host tensors, separate gradient.
fn ce_host(l: &Loss, x: &[f32], y: &[i64], n: usize, c: usize, red: Reduction) -> CeOut {
    let mut rng = Rng::new(77);
    let cw: Vec<f32> = (0..c).map(|_| (0.2 + rng.uniform()) as f32).collect();
    let sw: Vec<f32> = (0..n).map(|_| (0.1 + rng.uniform()) as f32).collect();
    let go: Vec<f32> = match red {
        Reduction::None => (0..n).map(|i| 0.5 + i as f32 * 0.01).collect(),
        _ => vec![1.3],
    };
    let mut loss = vec![0f32; if red == Reduction::None { n } else { 1 }];
    let mut grad = vec![0f32; n * c];
    let mut lse = vec![0f32; n];
    let mut correct = vec![0f32; n];
    let mut cc = Compute::new(red, &mut loss)
        .input(Tensor::f32(x, &[n, c]))
        .input(Tensor::i64(y, &[n]))
        .input(Tensor::f32(&cw, &[c]))
        .input(Tensor::f32(&sw, &[n]))
        .grad(0, TensorMut::new(&mut grad, &[n, c]))
        .grad_output(&go)
        .aux("lse", TensorMut::new(&mut lse, &[n]))
        .aux("correct", TensorMut::new(&mut correct, &[n]));
    l.compute(&mut cc).unwrap();
    drop(cc);
    CeOut {
        loss,
        grad,
        lse,
        correct,
    }
}

fn ce_loss(ctx: &Context) -> Loss {
    let mut l = ctx.loss("cross_entropy").unwrap();
    l.set_f64("label_smoothing", 0.1).unwrap();
    l.set_f64("z_loss_coef", 1e-3).unwrap();
    l.set_f64("softcap", 20.0).unwrap();
    l
}

#[test]
fn cross_entropy_aux_outputs_and_all_options_match() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    for &(n, c) in &[(9usize, 5usize), (33, 700), (2, 20_000)] {
        let (x, y) = ce_inputs(n, c, c, n as u64);
        for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            let a = ce_host(&ce_loss(&g), &x, &y, n, c, red);
            let b = ce_host(&ce_loss(&cpu), &x, &y, n, c, red);
            let what = format!("ce {n}x{c} {}", red.name());
            close(&format!("{what} loss"), &a.loss, &b.loss);
            close(&format!("{what} grad"), &a.grad, &b.grad);
            close(&format!("{what} lse"), &a.lse, &b.lse);
            assert_eq!(a.correct, b.correct, "{what} correct");
        }
    }
}

#[test]
fn cross_entropy_in_place_and_strided_rows() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let (n, c, stride) = (11usize, 300usize, 317usize);
    let (x, y) = ce_inputs(n, c, stride, 3);
    let run = |ctx: &Context, in_place: bool| -> (Vec<f32>, Vec<f32>) {
        let l = ce_loss(ctx);
        let mut loss = [0f32];
        let mut buf = x.clone();
        let mut grad = vec![-1f32; n * stride];
        {
            let mut cc = if in_place {
                Compute::new(Reduction::Mean, &mut loss)
                    .input(Tensor::f32_in_place(&mut buf, &[n, c]).with_row_stride(stride))
                    .input(Tensor::i64(&y, &[n]))
                    .grad_in_place(0)
            } else {
                Compute::new(Reduction::Mean, &mut loss)
                    .input(Tensor::f32(&x, &[n, c]).with_row_stride(stride))
                    .input(Tensor::i64(&y, &[n]))
                    .grad(
                        0,
                        TensorMut::new(&mut grad, &[n, c]).with_row_stride(stride),
                    )
            };
            l.compute(&mut cc).unwrap();
        }
        (loss.to_vec(), if in_place { buf } else { grad })
    };
    for in_place in [false, true] {
        let (la, ga) = run(&g, in_place);
        let (lb, gb) = run(&cpu, in_place);
        close(&format!("in place {in_place}: loss"), &la, &lb);
        // Whole buffers: the gaps between rows must be left untouched.
        close(&format!("in place {in_place}: grad"), &ga, &gb);
    }
}

fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

#[test]
fn device_buffers_round_trip_and_compute() {
    let Some(g) = gpu_ctx() else { return };
    // Round trip.
    let b = g.buffer(4096).unwrap();
    let v: Vec<f32> = (0..1024).map(|i| i as f32 * 0.5).collect();
    b.write_f32(0, &v).unwrap();
    assert_eq!(b.read_f32(0, 1024).unwrap(), v);
    assert_eq!(b.read_f32(1000, 4).unwrap(), v[1000..1004]);
    assert!(b.write(2, &[0u8; 4]).is_err(), "unaligned write must fail");
    assert!(
        b.read(4092, &mut [0u8; 8]).is_err(),
        "read past the end must fail"
    );
    assert_eq!(b.size(), 4096);

    // CE with logits, targets and gradient on the device, at an offset.
    let cpu = Context::cpu();
    let (n, c) = (20usize, 1000usize);
    let (x, y) = ce_inputs(n, c, c, 9);
    let off = 64; // elements
    let xb = g.buffer(((off + n * c) * 4) as u64).unwrap();
    xb.write_f32(off, &x).unwrap();
    let yb = g.buffer((n * 8) as u64).unwrap();
    yb.write_i64(0, &y).unwrap();
    let gb = g.buffer((n * c * 4) as u64).unwrap();
    let l = ce_loss(&g);
    let mut loss = [0f32];
    {
        let mut cc = Compute::new(Reduction::Sum, &mut loss)
            .input(Tensor::device(&xb, DType::F32, off, &[n, c]))
            .input(Tensor::device(&yb, DType::I64, 0, &[n]));
        cc.grads
            .push(losskit::Grad::Device(DeviceOut::new(&gb, 0, &[n, c])));
        l.compute(&mut cc).unwrap();
    }
    let mut loss_c = [0f32];
    let mut grad_c = vec![0f32; n * c];
    {
        let mut cc = Compute::new(Reduction::Sum, &mut loss_c)
            .input(Tensor::f32(&x, &[n, c]))
            .input(Tensor::i64(&y, &[n]))
            .grad(0, TensorMut::new(&mut grad_c, &[n, c]));
        ce_loss(&cpu).compute(&mut cc).unwrap();
    }
    close("device loss", &loss, &loss_c);
    close("device grad", &gb.read_f32(0, n * c).unwrap(), &grad_c);
    // In place on the device.
    {
        let mut cc = Compute::new(Reduction::Sum, &mut loss)
            .input(Tensor::device(&xb, DType::F32, off, &[n, c]))
            .input(Tensor::device(&yb, DType::I64, 0, &[n]))
            .grad_in_place(0);
        l.compute(&mut cc).unwrap();
    }
    close("device in-place loss", &loss, &loss_c);
    close(
        "device in-place grad",
        &xb.read_f32(off, n * c).unwrap(),
        &grad_c,
    );
    // A bad device target is reported like a host one, and nothing is written.
    yb.write_i64(2, &[c as i64]).unwrap();
    xb.write_f32(off, &x).unwrap();
    let mut cc = Compute::new(Reduction::Sum, &mut loss)
        .input(Tensor::device(&xb, DType::F32, off, &[n, c]))
        .input(Tensor::device(&yb, DType::I64, 0, &[n]))
        .grad_in_place(0);
    let e = l.compute(&mut cc).unwrap_err();
    drop(cc);
    assert_eq!(e.kind, losskit::ErrorKind::InvalidTarget, "{}", e.msg);
    assert!(e.msg.contains("target[2]"), "{}", e.msg);
    assert_eq!(xb.read_f32(off, n * c).unwrap(), x);
    // Device tensors on a CPU context are refused clearly.
    let mut cc = Compute::new(Reduction::Sum, &mut loss)
        .input(Tensor::device(&xb, DType::F32, off, &[n, c]))
        .input(Tensor::i64(&y, &[n]));
    let e = ce_loss(&cpu).compute(&mut cc).unwrap_err();
    assert_eq!(e.kind, losskit::ErrorKind::Unsupported);
    assert!(e.msg.contains("WGPU context"), "{}", e.msg);
}

#[test]
fn c_api_device_buffers_and_introspection() {
    use losskit::ffi::buffer::*;
    use losskit::ffi::context::*;
    use losskit::ffi::loss::*;
    use losskit::ffi::status::lk_status;
    use losskit::ffi::tensor::*;
    if gpu_ctx().is_none() {
        return;
    }
    // SAFETY: every pointer below is valid for its call; shapes match their data.
    unsafe {
        let mut ctx = std::ptr::null_mut();
        assert_eq!(lk_context_create(2, &mut ctx), lk_status::LK_OK);
        let name = std::ffi::CStr::from_ptr(lk_context_device_name(ctx));
        assert!(!name.to_bytes().is_empty());
        let ty = std::ffi::CStr::from_ptr(lk_context_device_type(ctx));
        assert!(!ty.to_bytes().is_empty());
        let mut v = 0u64;
        assert_eq!(
            lk_context_device_limit(ctx, c"max_binding_bytes".as_ptr(), &mut v),
            lk_status::LK_OK
        );
        assert!(v >= 1024);
        assert_eq!(
            lk_context_device_limit(ctx, c"no_such_limit".as_ptr(), &mut v),
            lk_status::LK_ERR_INVALID_ARG
        );
        let (n, c) = (4usize, 6usize);
        let (x, y) = ce_inputs(n, c, c, 1);
        let mut xb = std::ptr::null_mut();
        assert_eq!(
            lk_buffer_create(ctx, (n * c * 4) as u64, &mut xb),
            lk_status::LK_OK
        );
        assert_eq!(lk_buffer_size(xb), (n * c * 4) as u64);
        let xbytes = bytes_f32(&x);
        assert_eq!(
            lk_buffer_write(xb, 0, xbytes.as_ptr().cast(), xbytes.len()),
            lk_status::LK_OK
        );
        let mut loss = std::ptr::null_mut();
        assert_eq!(
            lk_loss_create(ctx, c"cross_entropy".as_ptr(), &mut loss),
            lk_status::LK_OK
        );
        let shape = [n as i64, c as i64];
        let yshape = [n as i64];
        let f32t = lk_dtype {
            code: LK_DTYPE_CODE_FLOAT,
            bits: 32,
            lanes: 1,
        };
        let xt = lk_tensor {
            data: xb.cast(),
            device: lk_device {
                device_type: LK_DEVICE_LKBUFFER,
                device_id: 0,
            },
            ndim: 2,
            dtype: f32t,
            shape: shape.as_ptr(),
            strides: std::ptr::null(),
            byte_offset: 0,
        };
        let yt = lk_tensor {
            data: y.as_ptr() as *mut _,
            device: lk_device {
                device_type: LK_DEVICE_CPU,
                device_id: 0,
            },
            ndim: 1,
            dtype: lk_dtype {
                code: LK_DTYPE_CODE_INT,
                bits: 64,
                lanes: 1,
            },
            shape: yshape.as_ptr(),
            strides: std::ptr::null(),
            byte_offset: 0,
        };
        let mut out = [0f32];
        let ot = lk_tensor {
            data: out.as_mut_ptr().cast(),
            device: lk_device {
                device_type: LK_DEVICE_CPU,
                device_id: 0,
            },
            ndim: 0,
            dtype: f32t,
            shape: std::ptr::null(),
            strides: std::ptr::null(),
            byte_offset: 0,
        };
        // Gradient in place over the device logits: the same view as the input.
        let ins = [xt, yt];
        let gs = [xt];
        let s = lk_loss_compute(
            loss,
            ins.as_ptr(),
            2,
            1,
            std::ptr::null(),
            &ot,
            gs.as_ptr(),
            1,
            std::ptr::null(),
            0,
        );
        assert_eq!(
            s,
            lk_status::LK_OK,
            "{:?}",
            losskit::ffi::last_error::last_error_string()
        );
        let mut back = vec![0u8; n * c * 4];
        assert_eq!(
            lk_buffer_read(xb, 0, back.as_mut_ptr().cast(), back.len()),
            lk_status::LK_OK
        );
        let gpu_grad: Vec<f32> = back
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let cpu = Context::cpu();
        let mut lc = [0f32];
        let mut gc = vec![0f32; n * c];
        {
            let mut cc = Compute::new(Reduction::Mean, &mut lc)
                .input(Tensor::f32(&x, &[n, c]))
                .input(Tensor::i64(&y, &[n]))
                .grad(0, TensorMut::new(&mut gc, &[n, c]));
            cpu.loss("cross_entropy").unwrap().compute(&mut cc).unwrap();
        }
        close("C API loss", &out, &lc);
        close("C API grad", &gpu_grad, &gc);
        // A device tensor as loss_out is refused.
        let s = lk_loss_compute(
            loss,
            ins.as_ptr(),
            2,
            1,
            std::ptr::null(),
            &xt,
            std::ptr::null(),
            0,
            std::ptr::null(),
            0,
        );
        assert_eq!(s, lk_status::LK_ERR_UNSUPPORTED);
        lk_loss_free(loss);
        lk_buffer_free(xb);
        lk_context_free(ctx);
        // A CPU context has no device buffers.
        let mut cctx = std::ptr::null_mut();
        assert_eq!(lk_context_create(1, &mut cctx), lk_status::LK_OK);
        assert!(lk_context_device_name(cctx).is_null());
        let mut b2 = std::ptr::null_mut();
        assert_eq!(
            lk_buffer_create(cctx, 16, &mut b2),
            lk_status::LK_ERR_UNSUPPORTED
        );
        assert!(b2.is_null());
        lk_context_free(cctx);
    }
}

#[test]
fn forced_small_binding_chunks_rows() {
    let Some(g) = own_gpu_ctx() else { return };
    let dev = g.gpu_device().unwrap();
    let cpu = Context::cpu();
    // 64 KiB bindings: 16 rows of 1000 f32 per chunk, so 50 rows take 4 chunks; also a
    // split-row shape and the per-row kernel shape.
    dev.set_max_binding_bytes(64 * 1024);
    assert_eq!(g.device_info().unwrap().max_binding_bytes, 64 * 1024);
    for &(n, c) in &[(50usize, 1000usize), (3, 9000), (700, 9)] {
        let (x, y) = ce_inputs(n, c, c, 5);
        for red in [Reduction::None, Reduction::Mean] {
            let a = ce_host(&ce_loss(&g), &x, &y, n, c, red);
            let b = ce_host(&ce_loss(&cpu), &x, &y, n, c, red);
            let what = format!("chunked ce {n}x{c} {}", red.name());
            close(&format!("{what} loss"), &a.loss, &b.loss);
            close(&format!("{what} grad"), &a.grad, &b.grad);
            close(&format!("{what} lse"), &a.lse, &b.lse);
        }
    }
    // A row longer than a binding cannot be split by rows: a clear error, not a crash.
    dev.set_max_binding_bytes(4096);
    let (x, y) = ce_inputs(2, 5000, 5000, 1);
    let mut loss = [0f32];
    let mut cc = Compute::new(Reduction::Mean, &mut loss)
        .input(Tensor::f32(&x, &[2, 5000]))
        .input(Tensor::i64(&y, &[2]));
    let e = g
        .loss("cross_entropy")
        .unwrap()
        .compute(&mut cc)
        .unwrap_err();
    assert_eq!(e.kind, losskit::ErrorKind::Unsupported);
    assert!(e.msg.contains("largest binding"), "{}", e.msg);
}

#[test]
fn pipeline_cache_builds_once_from_many_threads() {
    use losskit::backend::wgpu::PipelineKey;
    let Some(g) = own_gpu_ctx() else { return };
    let dev = g.gpu_device().unwrap().clone();
    let src = "@group(0) @binding(0) var<storage, read_write> v: array<f32>;
override LK_WG: u32 = 64u;
override SCALE: f32 = 1.0;
@compute @workgroup_size(LK_WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < arrayLength(&v)) { v[gid.x] = v[gid.x] * SCALE; }
}";
    let before = (dev.pipelines().len(), dev.pipelines().builds());
    let key = PipelineKey::new("test/scale", src, "main", 64, &[("SCALE", 2.0)]);
    let ptrs: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (dev, key) = (&dev, &key);
                s.spawn(move || {
                    let p = dev.pipelines().get(dev, key, src).unwrap();
                    std::sync::Arc::as_ptr(&p) as usize
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        ptrs.iter().all(|&p| p == ptrs[0]),
        "threads got different pipelines"
    );
    assert_eq!(dev.pipelines().len(), before.0 + 1);
    assert_eq!(dev.pipelines().builds(), before.1 + 1);
    // Another override or workgroup size is another entry.
    let k2 = PipelineKey::new("test/scale", src, "main", 64, &[("SCALE", 3.0)]);
    dev.pipelines().get(&dev, &k2, src).unwrap();
    let k3 = PipelineKey::new("test/scale", src, "main", 128, &[("SCALE", 2.0)]);
    dev.pipelines().get(&dev, &k3, src).unwrap();
    assert_eq!(dev.pipelines().len(), before.0 + 3);
    // Invalid WGSL is an error with naga's text, never a panic.
    let bad = PipelineKey::new("test/bad", "fn main( {", "main", 64, &[]);
    let e = dev.pipelines().get(&dev, &bad, "fn main( {").unwrap_err();
    assert_eq!(e.kind, losskit::ErrorKind::Gpu, "{}", e.msg);
}

#[test]
fn missing_driver_gives_backend_unavailable() {
    use losskit::ffi::context::lk_context_create;
    use losskit::ffi::status::lk_status;
    if std::env::var_os("LOSSKIT_TEST_CHILD_NO_DRIVER").is_some() {
        let mut ctx = std::ptr::null_mut();
        // SAFETY: a valid out-pointer.
        let s = unsafe { lk_context_create(2, &mut ctx) };
        assert_eq!(s, lk_status::LK_ERR_BACKEND_UNAVAILABLE);
        assert!(ctx.is_null());
        let msg = losskit::ffi::last_error::last_error_string().unwrap_or_default();
        assert!(msg.contains("adapter"), "unclear message: {msg}");
        assert!(!losskit::backend_available(BackendKind::Wgpu));
        // AUTO still works, on the CPU.
        let a = Context::new(BackendKind::Auto).unwrap();
        assert_eq!(a.backend(), BackendKind::Cpu);
        eprintln!("child message: {msg}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "missing_driver_gives_backend_unavailable",
            "--nocapture",
        ])
        .env("LOSSKIT_TEST_CHILD_NO_DRIVER", "1")
        .env("VK_ICD_FILENAMES", "/nonexistent/losskit_no_icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/losskit_no_icd.json")
        .env("LOSSKIT_ALLOW_SOFTWARE_ADAPTER", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("child message"),
        "child did not run the check:\n{text}"
    );
}

/// A per-sample test loss: `l_i = s · w_i · sum_j (pred_ij - tgt_ij)^2`, with an optional
/// per-row weight and an f64 parameter `s`; CPU in Rust, GPU through the contract.
mod mse {
    use losskit::exec::kernel::{GpuKernel, SampleKernel};
    use losskit::registry::{InputSpec, LossDef, LossImpl, LossSpec};
    use losskit::{Compute, Grad, ParamSpec, Params, Result};

    pub const WGSL: &str = "
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> g_pred: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) { return; }
    let d = lk.dims[0].y;
    let s = lk.params[0].x;
    var w = 1.0;
    if ((lk.present & 4u) != 0u) { w = weight[i]; }
    var acc = 0.0;
    for (var j = 0u; j < d; j++) {
        let e = pred[i * d + j] - tgt[i * d + j];
        acc += e * e;
        g_pred[i * d + j] = 2.0 * s * w * e;
    }
    lk_loss[i] = s * w * acc;
}
";

    pub fn spec(id: &str) -> LossSpec {
        LossSpec::new(id, "test", "mean squared error per row", "test")
            .input(InputSpec::f32("pred", "N,D").grad())
            .input(InputSpec::f32("tgt", "N,D"))
            .input(InputSpec::f32("weight", "N").optional())
            .param(ParamSpec::f64("s", 1.0, 0.0, 10.0, "scale"))
    }

    pub struct Mse;

    impl LossImpl for Mse {
        fn compute_cpu(&self, _s: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
            let (n, d) = (c.dim("N"), c.dim("D"));
            let s = p.f64("s");
            let x = c.get(0).unwrap().to_f32_vec();
            let t = c.get(1).unwrap().to_f32_vec();
            let w = c.get(2).map(|w| w.to_f32_vec());
            let r = losskit::reduction::RowReducer::new(c.reduction, c.grad_output, n as f64);
            let mut per = vec![0f64; n];
            let mut g = vec![0f32; n * d];
            for i in 0..n {
                let wi = w.as_ref().map_or(1.0, |w| w[i] as f64);
                for j in 0..d {
                    let e = (x[i * d + j] - t[i * d + j]) as f64;
                    per[i] += s * wi * e * e;
                    g[i * d + j] = (2.0 * s * wi * e * r.grad_scale(i)) as f32;
                }
            }
            r.write_loss(&per, c.loss);
            if let Grad::Out(o) = &mut c.grads[0] {
                for i in 0..n {
                    o.data[i * o.row_stride..i * o.row_stride + d]
                        .copy_from_slice(&g[i * d..(i + 1) * d]);
                }
            }
            Ok(())
        }
    }

    pub fn def(id: &str) -> LossDef {
        let spec = spec(id);
        assert!(losskit::backend::wgpu::PerSampleWgsl::new(&spec, WGSL).is_ok());
        LossDef::new(spec, Mse).gpu(GpuKernel::Sample(SampleKernel::owned(WGSL.to_string())))
    }
}

#[test]
fn per_sample_contract_kernel_matches_cpu() {
    let Some(g) = own_gpu_ctx() else { return };
    g.register(mse::def("test_mse")).unwrap();
    let cpu = Context::cpu();
    cpu.register(mse::def("test_mse")).unwrap();
    let mut lg = g.loss("test_mse").unwrap();
    let mut lc = cpu.loss("test_mse").unwrap();
    lg.set_f64("s", 0.5).unwrap();
    lc.set_f64("s", 0.5).unwrap();
    let dev = g.gpu_device().unwrap();
    for small in [false, true] {
        if small {
            // 1 KiB bindings: 256 floats, so rows of 5 come 51 per chunk.
            dev.set_max_binding_bytes(1024);
        }
        for opt in [false, true] {
            let case = Case::random(&lc, &dims(&[("N", 300), ("D", 5)]), 4, opt);
            for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                let mut rng = Rng::new(3);
                let go = grad_output(red, 300, &mut rng);
                for go in [None, Some(&go[..])] {
                    let a = case.run(&lg, red, true, go).unwrap();
                    let b = case.run(&lc, red, true, go).unwrap();
                    let what = format!(
                        "mse small {small} opt {opt} {} go {}",
                        red.name(),
                        go.is_some()
                    );
                    close(&format!("{what} loss"), &a.loss, &b.loss);
                    close(
                        &format!("{what} grad"),
                        a.grads[0].as_ref().unwrap(),
                        b.grads[0].as_ref().unwrap(),
                    );
                }
            }
        }
    }
    // Device inputs and a device gradient through the contract.
    dev.set_max_binding_bytes(u64::MAX);
    let (n, d) = (40usize, 3usize);
    let mut rng = Rng::new(8);
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    let t: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    let xb = g.buffer((n * d * 4) as u64).unwrap();
    xb.write_f32(0, &x).unwrap();
    let gb = g.buffer((n * d * 4) as u64).unwrap();
    let mut loss = [0f32];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::device(&xb, DType::F32, 0, &[n, d]))
            .input(Tensor::f32(&t, &[n, d]));
        cc.grads
            .push(losskit::Grad::Device(DeviceOut::new(&gb, 0, &[n, d])));
        lg.compute(&mut cc).unwrap();
    }
    let mut lc_v = [0f32];
    let mut gc = vec![0f32; n * d];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut lc_v)
            .input(Tensor::f32(&x, &[n, d]))
            .input(Tensor::f32(&t, &[n, d]))
            .grad(0, TensorMut::new(&mut gc, &[n, d]));
        lc.compute(&mut cc).unwrap();
    }
    close("mse device loss", &loss, &lc_v);
    close("mse device grad", &gb.read_f32(0, n * d).unwrap(), &gc);
}

/// A contract kernel writing an auxiliary output, run with a custom `mean` denominator.
mod aux_kernel {
    use losskit::backend::wgpu::PerSampleWgsl;
    use losskit::compute::Plan;
    use losskit::exec::kernel::{GpuKernel, SampleKernel};
    use losskit::registry::{AuxSpec, InputSpec, LossDef, LossImpl, LossSpec};
    use losskit::{Compute, Params, Result};

    pub const WGSL: &str = "
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> g_x: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_max: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_pair: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) { return; }
    let d = lk.dims[0].y;
    var acc = 0.0;
    var m = LK_NEG_BIG;
    for (var j = 0u; j < d; j++) {
        let v = x[i * d + j];
        acc += v;
        m = max(m, v);
        g_x[i * d + j] = 1.0;
    }
    lk_loss[i] = acc;
    row_max[i] = m;
    row_pair[2u * i] = acc;
    row_pair[2u * i + 1u] = f32(lk.row_offset + i);
}
";

    pub fn spec() -> LossSpec {
        LossSpec::new("test_aux", "test", "row sums with aux outputs", "test")
            .input(InputSpec::f32("x", "N,D").grad())
            .aux(AuxSpec::new("row_max", "N", "largest element of the row"))
            .aux(AuxSpec::new(
                "row_pair",
                "N,2",
                "row sum and global row index",
            ))
    }

    pub struct RowSum;

    impl LossImpl for RowSum {
        /// A `mean` denominator of its own.
        fn plan(&self, _s: &LossSpec, _p: &Params, _c: &Compute<'_>) -> Result<Plan> {
            Ok(Plan::with_den(Some(7.0)))
        }
        fn compute_cpu(&self, _s: &LossSpec, _p: &Params, _c: &mut Compute<'_>) -> Result<()> {
            losskit::bail!(Unsupported, "test_aux runs on the GPU only")
        }
    }

    pub fn def() -> LossDef {
        let spec = spec();
        let gpu = PerSampleWgsl::new(
            &spec,
            &format!("{}\n{WGSL}", losskit::backend::wgpu::PRELUDE),
        )
        .expect("valid contract kernel");
        assert_eq!(gpu.aux_outputs(), 2);
        LossDef::new(spec, RowSum).gpu(GpuKernel::Sample(SampleKernel::new(&[], WGSL)))
    }
}

#[test]
fn per_sample_contract_writes_aux_outputs_and_takes_a_denominator() {
    let Some(g) = own_gpu_ctx() else { return };
    g.register(aux_kernel::def()).unwrap();
    let l = g.loss("test_aux").unwrap();
    let dev = g.gpu_device().unwrap();
    // 256-byte bindings: rows of 16 floats come 4 per chunk, so the aux rows are chunked.
    dev.set_max_binding_bytes(256);
    let (n, d) = (23usize, 16usize);
    let mut rng = Rng::new(21);
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    let mut loss = [0f32];
    let mut gx = vec![0f32; n * d];
    let mut mx = vec![0f32; n];
    // A strided aux destination: rows 3 apart, 2 used.
    let mut pair = vec![-1f32; n * 3];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::f32(&x, &[n, d]))
            .grad(0, TensorMut::new(&mut gx, &[n, d]))
            .aux("row_max", TensorMut::new(&mut mx, &[n]))
            .aux(
                "row_pair",
                TensorMut::new(&mut pair, &[n, 2]).with_row_stride(3),
            );
        l.compute(&mut cc).unwrap();
    }
    let sums: Vec<f64> = (0..n)
        .map(|i| x[i * d..(i + 1) * d].iter().map(|&v| v as f64).sum())
        .collect();
    let want = sums.iter().sum::<f64>() / 7.0;
    close("aux loss", &loss, &[want as f32]);
    close("aux grad", &gx, &vec![(1.0 / 7.0) as f32; n * d]);
    for i in 0..n {
        let m = x[i * d..(i + 1) * d]
            .iter()
            .copied()
            .fold(f32::MIN, f32::max);
        assert_eq!(mx[i], m, "row_max[{i}]");
        close(
            &format!("row_pair[{i}]"),
            &pair[i * 3..i * 3 + 1],
            &[sums[i] as f32],
        );
        assert_eq!(pair[i * 3 + 1], i as f32, "row_pair[{i}] index");
        assert_eq!(pair[i * 3 + 2], -1.0, "row_pair[{i}] padding untouched");
    }
    // Not requesting the aux outputs still works.
    let mut loss2 = [0f32];
    {
        let mut cc = Compute::new(Reduction::Sum, &mut loss2).input(Tensor::f32(&x, &[n, d]));
        l.compute(&mut cc).unwrap();
    }
    close("aux sum", &loss2, &[sums.iter().sum::<f64>() as f32]);
}

#[test]
fn per_sample_contract_refuses_bad_aux_bindings() {
    use losskit::backend::wgpu::PerSampleWgsl;
    let spec = aux_kernel::spec();
    let full = format!("{}\n{}", losskit::backend::wgpu::PRELUDE, aux_kernel::WGSL);
    // An aux binding beyond the spec's two outputs.
    let extra = full
        .replace(
            "@compute",
            "@group(0) @binding(6) var<storage, read_write> extra: array<f32>;\n@compute",
        )
        .replace("lk_loss[i] = acc;", "lk_loss[i] = acc; extra[i] = 0.0;");
    let e = PerSampleWgsl::new(&spec, &extra).unwrap_err();
    assert!(e.msg.contains("beyond"), "{}", e.msg);
    // An aux output without the per-sample letter first.
    let bad = losskit::registry::LossSpec::new("test_aux2", "test", "x", "test")
        .input(losskit::registry::InputSpec::f32("x", "N,D").grad())
        .aux(losskit::registry::AuxSpec::new(
            "row_max",
            "D",
            "per column",
        ))
        .aux(losskit::registry::AuxSpec::new("row_pair", "N,2", "pair"));
    let e = PerSampleWgsl::new(&bad, &full).unwrap_err();
    assert!(e.msg.contains("per-sample letter"), "{}", e.msg);
}

#[test]
fn per_sample_contract_is_checked_at_registration() {
    use losskit::backend::wgpu::PerSampleWgsl;
    use losskit::registry::InputSpec;
    let spec = mse::spec("test_bad");
    // Not WGSL.
    let e = PerSampleWgsl::new(&spec, "fn lk_main( {").unwrap_err();
    assert!(e.msg.contains("parse"), "{}", e.msg);
    // Wrong workgroup size.
    let src = mse::WGSL.replace("@workgroup_size(64)", "@workgroup_size(32)");
    let e = PerSampleWgsl::new(&spec, &src).unwrap_err();
    assert!(e.msg.contains("workgroup_size(64)"), "{}", e.msg);
    // An output declared read-only.
    let src = mse::WGSL
        .replace("read_write> g_pred", "read> g_pred")
        .replace(
            "g_pred[i * d + j] = 2.0 * s * w * e;",
            "acc += 0.0 * g_pred[0];",
        );
    let e = PerSampleWgsl::new(&spec, &src).unwrap_err();
    assert!(e.msg.contains("read_write"), "{}", e.msg);
    // A differentiable input without the per-sample letter first.
    let spec2 = mse::spec("test_bad2").input(InputSpec::f32("extra", "D,N").grad());
    let e = PerSampleWgsl::new(&spec2, mse::WGSL).unwrap_err();
    assert!(e.msg.contains("per-sample letter"), "{}", e.msg);
}

/// A loss without a GPU kernel runs on the CPU from a WGPU context (host tensors), and
/// refuses device tensors with a clear message.
#[test]
fn loss_without_kernel_falls_back_to_cpu() {
    struct NoGpu(mse::Mse);
    impl losskit::LossImpl for NoGpu {
        fn compute_cpu(
            &self,
            s: &losskit::LossSpec,
            p: &losskit::Params,
            c: &mut Compute<'_>,
        ) -> losskit::Result<()> {
            self.0.compute_cpu(s, p, c)
        }
    }
    let Some(g) = own_gpu_ctx() else { return };
    let spec = mse::spec("test_cpu_only");
    g.register(losskit::LossDef::new(spec, NoGpu(mse::Mse)))
        .unwrap();
    let l = g.loss("test_cpu_only").unwrap();
    assert!(!l.def().has_gpu());
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let t = [0.0f32; 4];
    let mut loss = [0f32];
    let mut cc = Compute::new(Reduction::Sum, &mut loss)
        .input(Tensor::f32(&x, &[2, 2]))
        .input(Tensor::f32(&t, &[2, 2]));
    l.compute(&mut cc).unwrap();
    drop(cc);
    assert_eq!(loss[0], 30.0);
    let xb = g.buffer(16).unwrap();
    let mut cc = Compute::new(Reduction::Sum, &mut loss)
        .input(Tensor::device(&xb, DType::F32, 0, &[2, 2]))
        .input(Tensor::f32(&t, &[2, 2]));
    let e = l.compute(&mut cc).unwrap_err();
    assert_eq!(e.kind, losskit::ErrorKind::Unsupported);
    assert!(e.msg.contains("no GPU kernel"), "{}", e.msg);
}

/// A Llama-3-sized vocabulary: 4096 x 128256 f32 logits (2.1 GB) is larger than any
/// binding on lavapipe (128 MiB), so it runs in row chunks, gradient in place. Rows are
/// checked against the CPU path one by one (a sample of them).
#[test]
fn cross_entropy_large_vocabulary_runs_chunked() {
    let Some(g) = gpu_ctx() else { return };
    if std::env::var("LOSSKIT_SKIP_BIG_GPU_TEST").is_ok_and(|v| v == "1") {
        eprintln!("skipped: LOSSKIT_SKIP_BIG_GPU_TEST=1");
        return;
    }
    let (n, c) = (4096usize, 128_256usize);
    let val =
        |i: usize| -> f32 { ((i.wrapping_mul(2_654_435_761) >> 7) % 2000) as f32 * 0.004 - 4.0 };
    let y: Vec<i64> = (0..n)
        .map(|i| {
            if i % 97 == 5 {
                -100
            } else {
                ((i * 7919) % c) as i64
            }
        })
        .collect();
    let mut x: Vec<f32> = (0..n * c).map(val).collect();
    let mut loss = vec![0f32; n];
    let mut lse = vec![0f32; n];
    let t0 = std::time::Instant::now();
    {
        let mut cc = Compute::new(Reduction::None, &mut loss)
            .input(Tensor::f32_in_place(&mut x, &[n, c]))
            .input(Tensor::i64(&y, &[n]))
            .grad_in_place(0)
            .aux("lse", TensorMut::new(&mut lse, &[n]));
        g.loss("cross_entropy").unwrap().compute(&mut cc).unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "4096 x 128256 f32 CE fwd+bwd on the GPU (host tensors, in place, chunked): {secs:.2} s, {:.2} GB/s of logits",
        (n * c * 4) as f64 / secs / 1e9
    );
    let cpu = Context::cpu().loss("cross_entropy").unwrap();
    for &i in &[0usize, 1, 5, 261, 262, 1000, 2047, 4095] {
        let row: Vec<f32> = (i * c..(i + 1) * c).map(val).collect();
        let mut l1 = [0f32];
        let mut g1 = vec![0f32; c];
        let mut a1 = [0f32];
        {
            let mut cc = Compute::new(Reduction::None, &mut l1)
                .input(Tensor::f32(&row, &[1, c]))
                .input(Tensor::i64(&y[i..i + 1], &[1]))
                .grad(0, TensorMut::new(&mut g1, &[1, c]))
                .aux("lse", TensorMut::new(&mut a1, &[1]));
            cpu.compute(&mut cc).unwrap();
        }
        close(&format!("big row {i} loss"), &loss[i..i + 1], &l1);
        close(&format!("big row {i} lse"), &lse[i..i + 1], &a1);
        close(&format!("big row {i} grad"), &x[i * c..(i + 1) * c], &g1);
    }
}

#[test]
fn auto_never_picks_a_software_adapter() {
    let Some(g) = gpu_ctx() else { return };
    let auto = Context::new(BackendKind::Auto).unwrap();
    if g.device_info().unwrap().software && !losskit::backend::wgpu::real_gpu_exists() {
        assert_eq!(auto.backend(), BackendKind::Cpu);
        assert!(auto.device_info().is_none());
    } else {
        assert_eq!(auto.backend(), BackendKind::Wgpu);
        assert!(!auto.device_info().unwrap().software);
    }
}

#[test]
fn one_loss_computes_from_many_threads() {
    let Some(g) = gpu_ctx() else { return };
    let lg = ce_loss(&g);
    let lc = ce_loss(&Context::cpu());
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (lg, lc) = (&lg, &lc);
            s.spawn(move || {
                let (n, c) = (13 + t as usize, 500 + 100 * t as usize);
                let (x, y) = ce_inputs(n, c, c, 40 + t);
                for _ in 0..5 {
                    let a = ce_host(lg, &x, &y, n, c, Reduction::Mean);
                    let b = ce_host(lc, &x, &y, n, c, Reduction::Mean);
                    close(&format!("thread {t} loss"), &a.loss, &b.loss);
                    close(&format!("thread {t} grad"), &a.grad, &b.grad);
                }
            });
        }
    });
}

#[test]
fn device_rows_with_a_stride() {
    let Some(g) = gpu_ctx() else { return };
    let (n, c, xs, gs) = (7usize, 300usize, 333usize, 310usize);
    let (x, y) = ce_inputs(n, c, xs, 21);
    let xb = g.buffer((x.len() * 4) as u64).unwrap();
    xb.write_f32(0, &x).unwrap();
    let gb = g.buffer((((n - 1) * gs + c) * 4) as u64).unwrap();
    gb.write_f32(0, &vec![-7.0; (n - 1) * gs + c]).unwrap();
    let mut loss = [0f32];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::device(&xb, DType::F32, 0, &[n, c]).with_row_stride(xs))
            .input(Tensor::i64(&y, &[n]));
        cc.grads.push(losskit::Grad::Device(
            DeviceOut::new(&gb, 0, &[n, c]).with_row_stride(gs),
        ));
        ce_loss(&g).compute(&mut cc).unwrap();
    }
    let mut lc = [0f32];
    let mut gc = vec![-7.0f32; (n - 1) * gs + c];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut lc)
            .input(Tensor::f32(&x, &[n, c]).with_row_stride(xs))
            .input(Tensor::i64(&y, &[n]))
            .grad(0, TensorMut::new(&mut gc, &[n, c]).with_row_stride(gs));
        ce_loss(&Context::cpu()).compute(&mut cc).unwrap();
    }
    close("strided device loss", &loss, &lc);
    // The whole buffer: the gaps between gradient rows keep their -7.
    close(
        "strided device grad",
        &gb.read_f32(0, gc.len()).unwrap(),
        &gc,
    );
}

#[test]
fn per_sample_i64_inputs_must_fit_i32() {
    use losskit::backend::wgpu::PerSampleWgsl;
    use losskit::registry::{InputSpec, LossDef, LossImpl, LossSpec};
    struct Count;
    impl LossImpl for Count {
        fn compute_cpu(
            &self,
            _s: &LossSpec,
            _p: &losskit::Params,
            c: &mut Compute<'_>,
        ) -> losskit::Result<()> {
            let v = c.get(1).unwrap().to_i64_vec();
            let per: Vec<f64> = v.iter().map(|&k| k as f64).collect();
            losskit::reduction::RowReducer::new(c.reduction, c.grad_output, per.len() as f64)
                .write_loss(&per, c.loss);
            Ok(())
        }
    }
    let Some(g) = own_gpu_ctx() else { return };
    let spec = LossSpec::new("test_count", "test", "the i64 input as the loss", "test")
        .input(InputSpec::f32("x", "N").grad())
        .input(InputSpec::i64("k", "N"));
    let src = "
@group(0) @binding(2) var<storage, read> k: array<i32>;
@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_x: array<f32>;
@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) { return; }
    lk_loss[i] = f32(k[i]);
    g_x[i] = 0.0;
}";
    assert!(PerSampleWgsl::new(&spec, src).is_ok());
    g.register(
        LossDef::new(spec, Count).gpu(losskit::exec::kernel::GpuKernel::Sample(
            losskit::exec::kernel::SampleKernel::owned(src.to_string()),
        )),
    )
    .unwrap();
    let l = g.loss("test_count").unwrap();
    let x = [0f32; 3];
    let mut out = [0f32; 3];
    let k = [5i64, -3, 1 << 20];
    {
        let mut cc = Compute::new(Reduction::None, &mut out)
            .input(Tensor::f32(&x, &[3]))
            .input(Tensor::i64(&k, &[3]));
        l.compute(&mut cc).unwrap();
    }
    assert_eq!(out, [5.0, -3.0, (1 << 20) as f32]);
    let k = [5i64, 1 << 40, 0];
    let mut cc = Compute::new(Reduction::None, &mut out)
        .input(Tensor::f32(&x, &[3]))
        .input(Tensor::i64(&k, &[3]));
    let e = l.compute(&mut cc).unwrap_err();
    assert_eq!(e.kind, losskit::ErrorKind::InvalidInput);
    assert!(e.msg.contains("'k'[1]"), "{}", e.msg);
}

/// The row-wise losses built on the skeleton at the edges of their formulas: a target that
/// takes all the mass (`p_y = 1` in f32 and in f64), a confident row, a target far below the
/// rest (`L` about 34: `e^{k L}` near 1e15 for `sum_exp`), a constant row, an ignored row
/// and a random one; GPU against CPU with the suite's tolerance.
#[test]
fn row_losses_match_at_extreme_rows() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let (n, c) = (7usize, 50usize);
    let mut rng = Rng::new(99);
    let mut x: Vec<f32> = (0..n * c).map(|_| rng.normal() as f32).collect();
    let y: Vec<i64> = vec![3, 7, 11, 0, -100, 42, 49];
    for (row, lift) in [(0usize, 60.0f32), (1, 8.0), (2, -30.0), (6, 15.0)] {
        x[row * c + y[row] as usize] += lift;
    }
    for v in &mut x[3 * c..4 * c] {
        *v = 0.25;
    }
    let configs: Vec<(&str, Vec<(&str, ParamValue)>)> = vec![
        ("focal", vec![("gamma", ParamValue::F64(0.0))]),
        ("focal", vec![("gamma", ParamValue::F64(0.5))]),
        ("focal", vec![("gamma", ParamValue::F64(2.0))]),
        ("focal", vec![("gamma", ParamValue::F64(5.0))]),
        ("poly1", vec![("epsilon", ParamValue::F64(-1.0))]),
        ("poly1", vec![("epsilon", ParamValue::F64(3.0))]),
        ("comp_sum", vec![("kind", ParamValue::Enum(0))]),
        ("comp_sum", vec![("kind", ParamValue::Enum(1))]),
        ("comp_sum", vec![("kind", ParamValue::Enum(2))]),
        ("comp_sum", vec![("kind", ParamValue::Enum(3))]),
        (
            "comp_sum",
            vec![("kind", ParamValue::Enum(4)), ("tau", ParamValue::F64(0.5))],
        ),
    ];
    let run = |l: &Loss, red: Reduction| {
        let mut loss = vec![0f32; if red == Reduction::None { n } else { 1 }];
        let mut grad = vec![0f32; n * c];
        let mut cc = Compute::new(red, &mut loss)
            .input(Tensor::f32(&x, &[n, c]))
            .input(Tensor::i64(&y, &[n]))
            .grad(0, TensorMut::new(&mut grad, &[n, c]));
        l.compute(&mut cc).unwrap();
        drop(cc);
        (loss, grad)
    };
    for (id, set) in &configs {
        let mut lg = g.loss(id).unwrap();
        let mut lc = cpu.loss(id).unwrap();
        for (name, v) in set {
            lg.set(name, *v).unwrap();
            lc.set(name, *v).unwrap();
        }
        for red in [Reduction::None, Reduction::Mean] {
            let (l1, g1) = run(&lg, red);
            let (l0, g0) = run(&lc, red);
            let what = format!("{id} {set:?} {}", red.name());
            assert!(l1.iter().chain(&g1).all(|v| v.is_finite()), "{what}");
            close(&format!("{what}: loss"), &l1, &l0);
            close(&format!("{what}: grad"), &g1, &g0);
        }
    }
}

#[test]
fn scratch_peak_counts_the_device_memory_a_call_needs() {
    let Some(g) = own_gpu_ctx() else { return };
    let dev = g.gpu_device().unwrap();
    let l = g.loss("cross_entropy").unwrap();
    let cpu = Context::cpu();
    let lc = cpu.loss("cross_entropy").unwrap();
    let big = Case::random(&lc, &dims(&[("N", 64), ("C", 1000)]), 3, false);
    let small = Case::random(&lc, &dims(&[("N", 2), ("C", 10)]), 3, false);
    dev.reset_scratch_peak();
    big.run(&l, Reduction::Mean, true, None).unwrap();
    // Host logits go up through a scratch copy: at least 64 x 1000 f32.
    let p_big = dev.scratch_peak_bytes();
    assert!(p_big >= 64 * 1000 * 4, "peak {p_big}");
    // Nothing is in use between calls: a new measurement sees only the small call.
    dev.reset_scratch_peak();
    assert_eq!(dev.scratch_peak_bytes(), 0);
    small.run(&l, Reduction::Mean, true, None).unwrap();
    let p_small = dev.scratch_peak_bytes();
    assert!(
        p_small > 0 && p_small < p_big,
        "small {p_small} vs big {p_big}"
    );
}
