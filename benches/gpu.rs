//! GPU benchmark program (never a test: it prints figures and asserts nothing).
//!
//! For each case `id:L=n,L=n,...` it builds random valid inputs from the loss's spec (the
//! generic test-case builder), uploads them to device buffers, and times, in one run:
//! - **device**: `compute` on the wgpu context with every input and every gradient in device
//!   buffers (`Tensor::device`, `Grad::Device`; only the reduced loss comes back to the host),
//!   forward + backward, `mean` reduction;
//! - **host**: the same call with host tensors (uploads and gradient readbacks included);
//! - **cpu**: the CPU backend on the same inputs (skipped with `LOSSKIT_BENCH_NO_CPU=1`);
//!   the host path is skipped with `LOSSKIT_BENCH_NO_HOST=1`;
//! - **copy roof**: a compute-shader copy (vec4, grid-stride) moving as many bytes as the call
//!   reads and writes, on the same wgpu device (`copy_buffer_to_buffer` runs on NVIDIA's
//!   copy engines, far below the SMs' bandwidth, so it is not the roof).
//!
//! Reported per case: best and median milliseconds of each path, the device path's effective
//! bandwidth (inputs read once + gradients written once, over its best time) as a share of
//! the copy roof, and for losses whose inputs carry `D` (matrix-product losses) their model
//! TFLOP/s, and the library's peak scratch on the device during the device path (memory beyond
//! the caller's tensors). Speeds are ratios measured in the same run; the absolute times are only context.
//!
//! Run: `cargo bench --bench gpu` (defaults below), or
//! `LOSSKIT_BENCH_GPU='cross_entropy:N=8192,C=128256;token_logprobs:N=8,T=512,V=32000'
//! cargo bench --bench gpu`. The prebuilt binary (`cargo bench --bench gpu --no-run` prints
//! its path) takes the same variables, so it can run on a machine without a Rust toolchain.
//! `LOSSKIT_BENCH_REPS` sets the repetitions (default 5).

use std::collections::BTreeMap;
use std::time::Instant;

use losskit::testing::{Case, OwnedData};
use losskit::{BackendKind, Compute, Context, DType, Loss, Reduction, Tensor, TensorMut};

const DEFAULT: &str = "cross_entropy:N=4096,C=32000;cross_entropy:N=8192,C=128256;\
token_logprobs:N=8,T=512,V=32000;cut_cross_entropy:N=2048,D=2048,V=32000;\
cut_cross_entropy:N=8192,D=2048,V=128256";

fn parse_case(s: &str) -> Option<(String, BTreeMap<String, usize>)> {
    let (id, rest) = s.split_once(':')?;
    let mut dims = BTreeMap::new();
    for kv in rest.split(',') {
        let (k, v) = kv.split_once('=')?;
        dims.insert(k.trim().to_string(), v.trim().parse().ok()?);
    }
    Some((id.trim().to_string(), dims))
}

struct Stats {
    best: f64,
    median: f64,
}

fn time<F: FnMut() -> bool>(reps: usize, mut f: F) -> Option<Stats> {
    if !f() {
        return None;
    }
    let mut t: Vec<f64> = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        if !f() {
            return None;
        }
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Some(Stats {
        best: t[0],
        median: t[t.len() / 2],
    })
}

fn ms(s: &Option<Stats>) -> String {
    match s {
        Some(s) => format!("{:9.3} {:9.3}", s.best * 1e3, s.median * 1e3),
        None => format!("{:>9} {:>9}", "-", "-"),
    }
}

/// Best time of a compute-shader copy of `bytes` on the device (the library's copy probe,
/// repeated over a buffer of at most the largest binding): the roof a memory-bound loss
/// kernel can reach on this device through wgpu.
fn copy_roof(ctx: &Context, bytes: u64, reps: usize) -> Option<f64> {
    let dev = ctx.gpu_device()?;
    let probe = losskit::backend::wgpu::copy_probe::CopyProbe::new(dev, bytes);
    let times = bytes.div_ceil(probe.bytes).max(1) as u32;
    let mut best = f64::INFINITY;
    for _ in 0..=reps {
        best = best.min(probe.run(dev, times).ok()?);
    }
    Some(best * bytes as f64 / (times as u64 * probe.bytes) as f64)
}

fn bytes_of(d: &OwnedData) -> Vec<u8> {
    match d {
        OwnedData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        OwnedData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn run_case(gpu: &Context, cpu: &Context, id: &str, dims: &BTreeMap<String, usize>, reps: usize) {
    let (Ok(lg), Ok(lc)) = (gpu.loss(id), cpu.loss(id)) else {
        println!("{id}: not registered");
        return;
    };
    let spec = lc.def().spec.clone();
    if !lg.def().has_gpu() {
        println!("{id}: no GPU kernel (it would run its CPU path); skipped");
        return;
    }
    let case = Case::random(&lc, dims, 7, false);
    let shape: Vec<String> = case.dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let shape = shape.join(",");
    // Device copies of the inputs and device gradient buffers.
    let mut dins = Vec::new();
    let mut dgrads = Vec::new();
    let mut moved = 0u64;
    for (k, t) in case.inputs.iter().enumerate() {
        let Some(t) = t else {
            dins.push(None);
            dgrads.push(None);
            continue;
        };
        let raw = bytes_of(&t.data);
        moved += raw.len() as u64;
        let b = match gpu.buffer(raw.len().max(4) as u64) {
            Ok(b) => b,
            Err(e) => {
                println!("{id} {shape}: device buffer: {e}");
                return;
            }
        };
        if let Err(e) = b.write(0, &raw) {
            println!("{id} {shape}: upload: {e}");
            return;
        }
        let dt = match t.data {
            OwnedData::F32(_) => DType::F32,
            OwnedData::I64(_) => DType::I64,
        };
        dins.push(Some((b, dt, t.shape.clone())));
        if spec.inputs[k].differentiable {
            moved += raw.len() as u64;
            match gpu.buffer(raw.len().max(4) as u64) {
                Ok(g) => dgrads.push(Some(g)),
                Err(e) => {
                    println!("{id} {shape}: gradient buffer: {e}");
                    return;
                }
            }
        } else {
            dgrads.push(None);
        }
    }
    let device_call = |l: &Loss| -> bool {
        let mut out = [0f32];
        let mut c = Compute::new(Reduction::Mean, &mut out);
        for d in &dins {
            c.inputs
                .push(d.as_ref().map(|(b, dt, s)| Tensor::device(b, *dt, 0, s)));
        }
        for (k, g) in dgrads.iter().enumerate() {
            if let (Some(g), Some((_, _, s))) = (g, &dins[k]) {
                while c.grads.len() < k {
                    c.grads.push(losskit::Grad::None);
                }
                c.grads
                    .push(losskit::Grad::Device(losskit::tensor::DeviceOut::new(
                        g, 0, s,
                    )));
            }
        }
        match l.compute(&mut c) {
            Ok(()) => true,
            Err(e) => {
                println!("{id} {shape}: device path failed: {e}");
                false
            }
        }
    };
    // Gradient destinations allocated once and reused by every call, as a training loop
    // would (fresh memory per call would time the OS's page faults, not the library).
    let fresh = || -> Vec<Option<Vec<f32>>> {
        case.inputs
            .iter()
            .zip(&spec.inputs)
            .map(|(t, s)| match t {
                Some(t) if s.differentiable => Some(vec![0f32; t.f32().len()]),
                _ => None,
            })
            .collect()
    };
    let host_call = |l: &Loss, gbufs: &mut Vec<Option<Vec<f32>>>| -> bool {
        let mut out = [0f32];
        let mut c = Compute::new(Reduction::Mean, &mut out);
        for t in &case.inputs {
            c.inputs.push(t.as_ref().map(|t| t.view()));
        }
        for (k, g) in gbufs.iter_mut().enumerate() {
            if let (Some(g), Some(t)) = (g.as_mut(), case.inputs[k].as_ref()) {
                c = c.grad(k, TensorMut::new(g, &t.shape));
            }
        }
        match l.compute(&mut c) {
            Ok(()) => true,
            Err(e) => {
                println!("{id} {shape}: host path failed: {e}");
                false
            }
        }
    };
    if let Some(d) = gpu.gpu_device() {
        d.reset_scratch_peak();
    }
    let dev_t = time(reps, || device_call(&lg));
    let scratch = gpu.gpu_device().map_or(0, |d| d.scratch_peak_bytes());
    let host_t = if std::env::var("LOSSKIT_BENCH_NO_HOST").is_ok_and(|v| v == "1") {
        None
    } else {
        let mut gh = fresh();
        time(reps.min(3), || host_call(&lg, &mut gh))
    };
    let cpu_t = if std::env::var("LOSSKIT_BENCH_NO_CPU").is_ok_and(|v| v == "1") {
        None
    } else {
        let mut gc = fresh();
        time(reps.min(3), || host_call(&lc, &mut gc))
    };
    // A copy of moved/2 bytes reads and writes `moved` bytes in all, like the call.
    let roof = copy_roof(gpu, (moved / 2).max(4), reps);
    let (eff, share) = match (&dev_t, roof) {
        (Some(d), Some(r)) => (
            format!("{:8.1}", moved as f64 / d.best / 1e9),
            format!(
                "{:5.0}% of the copy's {:7.1} GB/s",
                100.0 * r / d.best,
                moved as f64 / r / 1e9
            ),
        ),
        _ => ("-".into(), "-".into()),
    };
    let flops = match (&dev_t, case.dims.get("D")) {
        (Some(d), Some(&dd)) => {
            let n = case.dims.get("N").copied().unwrap_or(1) as f64;
            let v = case.dims.get("V").copied().unwrap_or(1) as f64;
            format!("{:7.2} TFLOP/s", 6.0 * n * v * dd as f64 / d.best / 1e12)
        }
        _ => String::new(),
    };
    let ratio = |a: &Option<Stats>| match (a, &dev_t) {
        (Some(a), Some(d)) => format!("{:7.1}x", a.best / d.best),
        _ => "-".into(),
    };
    println!(
        "{id:<18} {shape:<28} device {} | host {} ({}) | cpu {} ({}) | {eff} GB/s, {share} {flops} | scratch {:.1} MiB",
        ms(&dev_t),
        ms(&host_t),
        ratio(&host_t),
        ms(&cpu_t),
        ratio(&cpu_t),
        scratch as f64 / 1048576.0,
    );
}

/// Host <-> device transfer times through the public buffer API, for sizes in MiB: a write
/// followed by a read (the write's copy happens at the read's submit), then a read alone.
fn transfers(gpu: &Context, sizes: &str, reps: usize) {
    for mib in sizes
        .split(',')
        .filter_map(|v| v.trim().parse::<usize>().ok())
    {
        let n = mib << 20;
        let Ok(b) = gpu.buffer(n as u64) else {
            println!("transfer {mib} MiB: no buffer");
            continue;
        };
        let data = vec![1u8; n];
        let mut out = vec![0u8; n];
        let wr = time(reps, || {
            b.write(0, &data).is_ok() && b.read(0, &mut out[..4]).is_ok()
        });
        let rd = time(reps, || b.read(0, &mut out).is_ok());
        let gbs = |s: &Option<Stats>| s.as_ref().map_or(0.0, |s| n as f64 / s.best / 1e9);
        println!(
            "transfer {mib:>5} MiB: upload(+4-byte read) {} = {:6.2} GB/s | readback {} = {:6.2} GB/s",
            ms(&wr),
            gbs(&wr),
            ms(&rd),
            gbs(&rd)
        );
    }
}

fn main() {
    let gpu = match Context::new(BackendKind::Wgpu) {
        Ok(c) => c,
        Err(e) => {
            println!("no wgpu device: {e}");
            return;
        }
    };
    if let Some(i) = gpu.device_info() {
        println!(
            "wgpu adapter: {} ({}, {}, {}), max binding {} bytes",
            i.name, i.backend, i.device_type, i.driver, i.max_binding_bytes
        );
    }
    let cpu = Context::cpu();
    let reps = std::env::var("LOSSKIT_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize)
        .max(1);
    if let Ok(sizes) = std::env::var("LOSSKIT_BENCH_TRANSFER") {
        transfers(&gpu, &sizes, reps);
    }
    let list = std::env::var("LOSSKIT_BENCH_GPU").unwrap_or_else(|_| DEFAULT.to_string());
    println!(
        "best ms / median ms of {reps} after a warm-up; ratios: host and cpu time over the device path's; \
         GB/s = inputs read once + gradients written once over the device path's best time, \
         as a share of a same-size device copy in this run"
    );
    for item in list.split(';').filter(|s| !s.trim().is_empty()) {
        match parse_case(item) {
            Some((id, dims)) => run_case(&gpu, &cpu, &id, &dims, reps),
            None => println!("bad case '{item}' (want id:L=n,L=n)"),
        }
    }
}
