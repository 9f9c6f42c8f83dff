//! Benchmark of `cut_cross_entropy` on the CPU against the dense path, printed as one table.
//!
//! For each shape `N x D x V` (tokens, hidden size, vocabulary) it times, in one run:
//! - **cce**: `cut_cross_entropy` forward + backward (loss, `dE`, `dC`, mean reduction);
//! - **dense**: the logits `E Cᵀ` materialised with one GEMM, the registered `cross_entropy`
//!   (loss and logit gradient into a second `N x V` buffer), then `dE = G C` and
//!   `dC = Gᵀ E` with two more GEMMs;
//! - **gemms**: the three GEMMs of the dense path alone (the floor for any exact method).
//!
//! GEMMs use the `gemm` crate on every thread. Peak extra memory is measured with a counting
//! global allocator: the highest number of bytes allocated during a method beyond what was
//! allocated before it (inputs and gradient outputs are allocated outside). Timings are the
//! best of the repetitions. It never asserts: it prints figures and ratios.
//!
//! With a usable wgpu adapter (a software one only with `LOSSKIT_ALLOW_SOFTWARE_ADAPTER=1`)
//! it also times **cce-gpu**: `cut_cross_entropy` on the wgpu backend with `e`, `c`, the
//! targets and both gradients in device buffers (one synchronous call per run, so the time
//! includes every pass and the final readback of the per-row results), and prints its wall
//! time, its effective TFLOP/s at `6·N·V·D` flops, its speed against the CPU `cce` and its
//! agreement with it.
//!
//! Run: `cargo bench --bench cce` (both default shapes), or choose shapes on the command
//! line (`cargo bench --bench cce -- 2048x2048x32000 8192x2048x128256`) or with
//! `LOSSKIT_BENCH_SHAPES=2048x2048x32000,8192x2048x128256`, and set parameters of the loss
//! with `LOSSKIT_BENCH_PARAMS=block_rows=512,block_vocab=1024`. Flags: `--gpu-only` (skip
//! the CPU methods), `--cpu-only` (skip the GPU), `--reps K`. The built program
//! (`cargo bench --bench cce --no-run` prints its path) takes the same arguments. The dense
//! path is skipped, with a note, when `MemAvailable` cannot hold its two `N x V` buffers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use losskit::backend::DeviceBuffer;
use losskit::tensor::DeviceOut;
use losskit::testing::Rng;
use losskit::{BackendKind, Compute, Context, DType, Grad, Loss, Reduction, Tensor, TensorMut};

struct Counting;

static CUR: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CUR.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            let now = CUR.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) };
        CUR.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            CUR.fetch_sub(l.size(), Ordering::Relaxed);
            let now = CUR.fetch_add(new, Ordering::Relaxed) + new;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// CPU seconds (user + system, all threads) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |k: usize| f.get(k).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// One measurement: wall seconds, CPU seconds, peak extra bytes.
#[derive(Clone, Copy)]
struct Meas {
    wall: f64,
    cpu: f64,
    extra: usize,
}

/// Run `f`, returning its result and its measurement.
fn measure<R>(f: impl FnOnce() -> R) -> (R, Meas) {
    let base = CUR.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let c0 = cpu_seconds();
    let t = Instant::now();
    let r = f();
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let extra = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (r, Meas { wall, cpu, extra })
}

/// Best (lowest CPU time) of `reps` measurements after `warm` warm-up runs.
fn best_of<R>(reps: usize, warm: bool, mut f: impl FnMut() -> R) -> (R, Meas) {
    let mut best: Option<(R, Meas)> = None;
    for k in 0..reps + warm as usize {
        let (r, m) = measure(&mut f);
        if warm && k == 0 {
            continue;
        }
        if best.as_ref().is_none_or(|b| m.cpu < b.1.cpu) {
            best = Some((r, m));
        }
    }
    best.unwrap()
}

/// `dst (m x n) = lhs (m x k) · rhs (k x n)` on every thread (strides in elements).
#[allow(clippy::too_many_arguments)]
fn gemm_all(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || n == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above keep every addressed element inside the three slices, and
    // dst is borrowed mutably, so it overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        )
    }
}

struct Problem {
    n: usize,
    d: usize,
    v: usize,
    e: Vec<f32>,
    c: Vec<f32>,
    t: Vec<i64>,
}

/// The three GEMMs of the dense path. `g` is the `N x V` buffer: written by the first
/// product, read by the other two.
fn gemms(p: &Problem, g: &mut [f32], de: &mut [f32], dc: &mut [f32]) {
    let (n, d, v) = (p.n, p.d, p.v);
    gemm_all(n, v, d, g, &p.e, d, 1, &p.c, 1, d); // logits = E Cᵀ
    gemm_all(n, d, v, de, g, v, 1, &p.c, d, 1); // dE = G C
    gemm_all(v, d, n, dc, g, 1, v, &p.e, d, 1); // dC = Gᵀ E
}

fn dense(ctx: &Context, p: &Problem, de: &mut [f32], dc: &mut [f32]) -> f32 {
    let (n, d, v) = (p.n, p.d, p.v);
    let mut logits = vec![0.0f32; n * v];
    gemm_all(n, v, d, &mut logits, &p.e, d, 1, &p.c, 1, d);
    let mut g = vec![0.0f32; n * v];
    let mut loss = [0.0f32];
    {
        let ce = ctx.loss("cross_entropy").unwrap();
        let mut cm = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::f32(&logits, &[n, v]))
            .input(Tensor::i64(&p.t, &[n]))
            .grad(0, TensorMut::new(&mut g, &[n, v]));
        ce.compute(&mut cm).unwrap();
    }
    drop(logits);
    gemm_all(n, d, v, de, &g, v, 1, &p.c, d, 1);
    gemm_all(v, d, n, dc, &g, 1, v, &p.e, d, 1);
    loss[0]
}

/// `cut_cross_entropy` on `ctx` with the parameters of `LOSSKIT_BENCH_PARAMS`.
fn cce_loss(ctx: &Context) -> Loss {
    let mut l = ctx.loss("cut_cross_entropy").unwrap();
    // Optional parameter settings, e.g. LOSSKIT_BENCH_PARAMS=block_rows=512,block_vocab=1024.
    if let Ok(s) = std::env::var("LOSSKIT_BENCH_PARAMS") {
        for kv in s.split(',').filter(|kv| !kv.is_empty()) {
            let (k, val) = kv
                .split_once('=')
                .expect("LOSSKIT_BENCH_PARAMS: name=value");
            let spec = l
                .params()
                .specs()
                .iter()
                .find(|p| p.name.as_str() == k)
                .cloned();
            let spec = spec.unwrap_or_else(|| panic!("no parameter {k}"));
            let pv = spec.parse("cut_cross_entropy", val).unwrap();
            l.set(k, pv).unwrap();
        }
    }
    l
}

fn cce(ctx: &Context, p: &Problem, de: &mut [f32], dc: &mut [f32]) -> f32 {
    let (n, d, v) = (p.n, p.d, p.v);
    let l = cce_loss(ctx);
    let mut loss = [0.0f32];
    {
        let mut cm = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::f32(&p.e, &[n, d]))
            .input(Tensor::f32(&p.c, &[v, d]))
            .input(Tensor::i64(&p.t, &[n]))
            .grad(0, TensorMut::new(de, &[n, d]))
            .grad(1, TensorMut::new(dc, &[v, d]));
        l.compute(&mut cm).unwrap();
    }
    loss[0]
}

/// Device buffers of one problem on the GPU context.
struct GpuBufs {
    e: DeviceBuffer,
    c: DeviceBuffer,
    t: DeviceBuffer,
    de: DeviceBuffer,
    dc: DeviceBuffer,
}

fn gpu_bufs(g: &Context, p: &Problem) -> losskit::Result<GpuBufs> {
    let f = |x: &[f32]| -> losskit::Result<DeviceBuffer> {
        let b = g.buffer((x.len() * 4) as u64)?;
        b.write_f32(0, x)?;
        Ok(b)
    };
    let t = g.buffer((p.n * 8) as u64)?;
    t.write_i64(0, &p.t)?;
    Ok(GpuBufs {
        e: f(&p.e)?,
        c: f(&p.c)?,
        t,
        de: g.buffer((p.n * p.d * 4) as u64)?,
        dc: g.buffer((p.v * p.d * 4) as u64)?,
    })
}

/// One forward + backward on the GPU, everything device-resident; returns the loss.
fn cce_gpu(l: &Loss, p: &Problem, b: &GpuBufs) -> losskit::Result<f32> {
    let (n, d, v) = (p.n, p.d, p.v);
    let mut loss = [0.0f32];
    let mut cm = Compute::new(Reduction::Mean, &mut loss)
        .input(Tensor::device(&b.e, DType::F32, 0, &[n, d]))
        .input(Tensor::device(&b.c, DType::F32, 0, &[v, d]))
        .input(Tensor::device(&b.t, DType::I64, 0, &[n]));
    cm.grads = vec![
        Grad::Device(DeviceOut::new(&b.de, 0, &[n, d])),
        Grad::Device(DeviceOut::new(&b.dc, 0, &[v, d])),
    ];
    l.compute(&mut cm)?;
    drop(cm);
    Ok(loss[0])
}

fn mem_available() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mib(b: usize) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
        / scale.max(1e-30)
}

struct Row {
    method: &'static str,
    m: Option<Meas>,
    note: String,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut gpu_only, mut cpu_only, mut reps_arg) = (false, false, None::<usize>);
    let mut arg_shapes: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            // `cargo bench` passes --bench to the program.
            "--bench" => {}
            "--gpu-only" => gpu_only = true,
            "--cpu-only" => cpu_only = true,
            "--reps" => reps_arg = args.next().and_then(|k| k.parse().ok()),
            s if s.contains('x') => arg_shapes.push(s.to_string()),
            s => panic!(
                "cce bench: unknown argument '{s}' (NxDxV shapes, --gpu-only, --cpu-only, --reps K)"
            ),
        }
    }
    let shape_list = if arg_shapes.is_empty() {
        std::env::var("LOSSKIT_BENCH_SHAPES")
            .unwrap_or_else(|_| "2048x2048x32000,8192x2048x128256".into())
    } else {
        arg_shapes.join(",")
    };
    let shapes: Vec<(usize, usize, usize)> = shape_list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let v: Vec<usize> = s.trim().split('x').map(|x| x.parse().unwrap()).collect();
            assert_eq!(v.len(), 3, "shape '{s}' is not NxDxV");
            (v[0], v[1], v[2])
        })
        .collect();
    let ctx = Context::cpu();
    let gpu = if cpu_only {
        None
    } else {
        match Context::new(BackendKind::Wgpu) {
            Ok(g) => {
                if let Some(i) = g.device_info() {
                    println!(
                        "GPU: {} ({}, {}, driver {}), max binding {} bytes",
                        i.name, i.backend, i.device_type, i.driver, i.max_binding_bytes
                    );
                }
                Some(g)
            }
            Err(e) => {
                println!("GPU: none ({})", e.msg);
                None
            }
        }
    };
    println!(
        "cut_cross_entropy CPU benchmark: {} threads, CPU kernels {}, mean reduction, gradients of e and c",
        rayon::current_num_threads(),
        losskit::backend::cpu::isa_name()
    );
    for (n, d, v) in shapes {
        let mut r = Rng::new(7);
        let s = 1.0 / (d as f64).sqrt();
        let p = Problem {
            n,
            d,
            v,
            e: (0..n * d).map(|_| r.normal() as f32).collect(),
            c: (0..v * d).map(|_| (r.normal() * s) as f32).collect(),
            t: (0..n).map(|_| r.below(v as u64) as i64).collect(),
        };
        let flops = 6.0 * n as f64 * d as f64 * v as f64;
        let big = n * v > 1 << 28;
        let reps = reps_arg.unwrap_or(if big { 1 } else { 2 }).max(1);
        let warm = !big;
        let mut de = vec![0.0f32; n * d];
        let mut dc = vec![0.0f32; v * d];
        let mut de2 = vec![0.0f32; n * d];
        let mut dc2 = vec![0.0f32; v * d];
        let mut rows = Vec::new();
        let mut cce_loss_v = None;

        // GPU: device-resident inputs and gradients.
        let mut gpu_line = String::new();
        if let Some(g) = &gpu {
            let l = cce_loss(g);
            match gpu_bufs(g, &p) {
                Err(e) => gpu_line = format!("cce-gpu: skipped ({})", e.msg),
                Ok(b) => {
                    // Warm-up (pipelines, pooled scratch), then the best of `reps`.
                    let r = cce_gpu(&l, &p, &b);
                    match r {
                        Err(e) => gpu_line = format!("cce-gpu: failed ({})", e.msg),
                        Ok(_) => {
                            let dev = g.gpu_device();
                            if let Some(d) = dev {
                                d.reset_scratch_peak();
                            }
                            let mut best = f64::INFINITY;
                            let mut gl = 0.0;
                            for _ in 0..reps.max(2) {
                                let t = Instant::now();
                                gl = cce_gpu(&l, &p, &b).unwrap();
                                best = best.min(t.elapsed().as_secs_f64());
                            }
                            let scratch = dev.map_or(0, |d| d.scratch_peak_bytes());
                            gpu_line = format!(
                                "cce-gpu: wall {best:.4} s, {:.4} TFLOP/s effective (6NVD), loss {gl:.6}, \
                                 peak scratch {:.0} MiB (device memory beyond inputs and gradients)",
                                flops / best / 1e12,
                                scratch as f64 / 1048576.0
                            );
                            cce_loss_v = Some((gl, best, b));
                        }
                    }
                }
            }
        }
        if gpu_only {
            println!();
            println!(
                "N={n} D={d} V={v}  ({:.0} GFLOP per fwd+bwd at 6NVD)",
                flops / 1e9
            );
            println!("{gpu_line}");
            continue;
        }

        // GEMMs alone.
        let ((), m) = best_of(reps, warm, || {
            let mut g = vec![0.0f32; n * v];
            gemms(&p, &mut g, &mut de2, &mut dc2);
        });
        rows.push(Row {
            method: "gemms",
            m: Some(m),
            note: "the 3 GEMMs of the dense path".into(),
        });

        // CCE.
        let (cce_loss, m) = best_of(reps, warm, || cce(&ctx, &p, &mut de, &mut dc));
        rows.push(Row {
            method: "cce",
            m: Some(m),
            note: String::new(),
        });

        // Dense path, when it fits.
        let need = 2 * n * v * 4;
        let avail = mem_available().unwrap_or(usize::MAX);
        if need + need / 5 > avail {
            rows.push(Row {
                method: "dense",
                m: None,
                note: format!(
                    "skipped: needs {:.0} MiB for logits + gradient, {:.0} MiB available",
                    mib(need),
                    mib(avail)
                ),
            });
        } else {
            let (dl, m) = best_of(reps, warm, || dense(&ctx, &p, &mut de2, &mut dc2));
            rows.push(Row {
                method: "dense",
                m: Some(m),
                note: format!(
                    "vs cce: loss rel {:.1e}, dE max rel {:.1e}, dC max rel {:.1e}",
                    ((cce_loss - dl) as f64 / dl as f64).abs(),
                    max_rel_diff(&de, &de2),
                    max_rel_diff(&dc, &dc2)
                ),
            });
        }

        println!();
        println!(
            "N={n} D={d} V={v}  ({:.0} GFLOP per fwd+bwd at 6NVD; {} timed run(s){})",
            flops / 1e9,
            reps,
            if warm { " after a warm-up" } else { "" }
        );
        println!(
            "{:<7} {:>8} {:>8} {:>9} {:>8} {:>8} {:>11} {:>8}  note",
            "method",
            "cpu s",
            "wall s",
            "GF/cpu-s",
            "cpu/gemm",
            "cpu/dense",
            "extra MiB",
            "x dense"
        );
        let get = |k: &str| rows.iter().find(|r| r.method == k).and_then(|r| r.m);
        let (gm, dn, cc) = (get("gemms"), get("dense"), get("cce"));
        let fmt = |x: Option<f64>, p: usize| match x {
            Some(x) => format!("{x:.p$}"),
            None => "-".into(),
        };
        for r in &rows {
            let m = r.m;
            println!(
                "{:<7} {:>8} {:>8} {:>9} {:>8} {:>8} {:>11} {:>8}  {}",
                r.method,
                fmt(m.map(|m| m.cpu), 2),
                fmt(m.map(|m| m.wall), 2),
                fmt(m.map(|m| flops / m.cpu / 1e9), 1),
                fmt(m.zip(gm).map(|(a, b)| a.cpu / b.cpu), 3),
                fmt(m.zip(dn).map(|(a, b)| a.cpu / b.cpu), 3),
                fmt(m.map(|m| mib(m.extra)), 1),
                fmt(m.zip(dn).map(|(a, b)| a.extra as f64 / b.extra as f64), 4),
                r.note
            );
        }
        if let Some((gl, gt, b)) = &cce_loss_v {
            let gde = b.de.read_f32(0, n * d).unwrap();
            let gdc = b.dc.read_f32(0, v * d).unwrap();
            println!(
                "{gpu_line}; CPU cce wall / GPU wall = {}; vs CPU cce: loss rel {:.1e}, dE max rel {:.1e}, dC max rel {:.1e}",
                fmt(cc.map(|m| m.wall / gt), 2),
                ((cce_loss - gl) as f64 / cce_loss as f64).abs(),
                max_rel_diff(&gde, &de),
                max_rel_diff(&gdc, &dc)
            );
        } else if !gpu_line.is_empty() {
            println!("{gpu_line}");
        }
        println!(
            "bars: cce/gemms CPU time = {} (<= 1.3), cce/dense CPU time = {} (<= 1.0), cce/dense extra memory = {} (< 0.05); wall-time ratios {} and {}",
            fmt(cc.zip(gm).map(|(a, b)| a.cpu / b.cpu), 3),
            fmt(cc.zip(dn).map(|(a, b)| a.cpu / b.cpu), 3),
            fmt(cc.zip(dn).map(|(a, b)| a.extra as f64 / b.extra as f64), 4),
            fmt(cc.zip(gm).map(|(a, b)| a.wall / b.wall), 3),
            fmt(cc.zip(dn).map(|(a, b)| a.wall / b.wall), 3),
        );
    }
}
