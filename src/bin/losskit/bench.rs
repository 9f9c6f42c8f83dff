//! `losskit bench`: time losses at realistic shapes against the machine's own in-place
//! memory bandwidth, measured in the same run on the same buffer.
//!
//! Two kinds of case:
//! - bandwidth cases: for every shape `NxV` and every loss of [`CASES`] present in the
//!   registry (`cross_entropy`, `token_logprobs`, `cut_cross_entropy`), letters `N`/`T` =
//!   rows, `C`/`V` = classes, `D` from `--size`;
//! - fixed-size cases ([`args::FIXED`], or `--case ID:L=n,...`): the preference and RL losses
//!   at training-batch sizes (`grpo` at `N=64, T=4096`, `dpo` at `B=65536`, ...).
//!
//! Inputs come from the library's generator ([`losskit::testing::random_case`], the one the
//! test suites use, without ignored targets, with the optional inputs a loss's defaults
//! need). Each case then alternates, `reps` times after a warm-up:
//! 1. one forward+backward call (the gradient written over the first input when the loss
//!    allows it, else into separate buffers);
//! 2. one STREAM-style in-place scale `a[i] = s * a[i]` over the same first-input buffer,
//!    split statically over all rayon threads (the "roof", [`roof::scale_in_place`]).
//!
//! Reported ([`report`]): best and median time, effective GB/s (bytes of every input read
//! once plus every gradient written once, divided by the best time), the roof's GB/s (2 x 4
//! bytes per element over its best time) and their ratio. Losses whose cost is matrix
//! products (`D` in their inputs) also get GFLOP/s from [`model_flops`]. Interleaving the two
//! measurements makes them see the same machine state; the ratio is the figure to compare
//! across machines. `RAYON_NUM_THREADS` sets the thread count (1 = the serial cost).
//!
//! Backends: `cpu`, plus every other backend the build offers (`--backend auto`), each timed
//! through [`time_host`] with host buffers. On `wgpu` every loss is also timed with
//! device-resident buffers ([`Path::Device`], `time_device`: inputs and gradients in
//! `lk_buffer`s, so no transfer of the large tensors is timed); its roof is a same-run
//! compute-shader copy of a buffer the size of the first input (read + write). The fuller
//! GPU benchmark (host, device and CPU paths per case) is `cargo bench --bench gpu`.

#[path = "bench_args.rs"]
mod args;
#[path = "bench_report.rs"]
mod report;
#[path = "bench_roof.rs"]
mod roof;

use std::collections::BTreeMap;
use std::time::Instant;

use losskit::testing::{OwnedData, OwnedTensor, random_case};
use losskit::{BackendKind, Compute, Context, DType, Loss, LossDef, LossSpec, Reduction, Tensor};
use losskit::{TensorMut, backend_available};

use crate::progress::Progress;
use crate::{CliResult, Fail, Global};
use report::{Path, Row};
use roof::{cpu_name, cpu_ns, mem_available, scale_in_place};

/// Loss ids of the bandwidth cases, timed when they are registered, in table order.
pub const CASES: &[&str] = &["cross_entropy", "token_logprobs", "cut_cross_entropy"];

/// FLOPs of the matrix products of a compute-bound loss (None for memory-bound losses).
/// `cut_cross_entropy`: logits `E W^T` forward plus `dE` and `dW` backward, `6 N D V`.
pub fn model_flops(id: &str, dims: &BTreeMap<String, usize>) -> Option<f64> {
    let d = |l: &str| dims.get(l).copied().unwrap_or(0) as f64;
    match id {
        "cut_cross_entropy" => Some(6.0 * d("N") * d("D") * d("V").max(d("C"))),
        _ => None,
    }
}

/// One planned measurement.
struct Planned {
    backend: BackendKind,
    path: Path,
    id: String,
    dims: BTreeMap<String, usize>,
    label: String,
}

/// `losskit bench [--json FILE] [--shapes NxV,...] [--case ID:L=n,...] [--quick] [--reps K]
/// [--size D=n] [--loss ID]`
pub fn main(g: &Global, argv: &[String]) -> CliResult {
    let o = args::parse_opts(argv)?;
    for id in &o.only {
        if g.ctx.find(id).is_err() {
            return Err(Fail::from(format!("bench: no loss '{id}' in the registry")));
        }
    }
    for (id, _) in &o.fixed {
        if g.ctx.find(id).is_err() {
            return Err(Fail::from(format!("bench: no loss '{id}' in the registry")));
        }
    }
    let threads = rayon::current_num_threads();
    let (plan, skipped) = plan_cases(g, &o)?;
    println!(
        "losskit bench: {}, {threads} threads, kernels {}, best of {} after 1 warm-up",
        cpu_name(),
        losskit::backend::cpu::isa_name(),
        o.reps
    );
    let steps: usize = plan
        .iter()
        .map(|p| 1 + reps_for(&p.id, &p.dims, o.reps))
        .sum();
    let mut bar = Progress::new(steps, "bench");
    let mut rows: Vec<Row> = Vec::new();
    for p in &plan {
        let b = p.backend;
        let ctx = if b == g.ctx.backend() || b == BackendKind::Cpu && g.backend == BackendKind::Auto
        {
            g.ctx.clone()
        } else {
            Context::new(b)?
        };
        let loss = ctx.loss(&p.id)?;
        let reps = reps_for(&p.id, &p.dims, o.reps);
        let row = match p.path {
            Path::Host => time_host(&loss, b.name(), &p.dims, &p.label, reps, &mut bar)?,
            Path::Device => time_device(&loss, &ctx, b.name(), &p.dims, &p.label, reps, &mut bar)?,
        };
        rows.push(row);
    }
    bar.finish();
    report::print_table(&rows);
    for s in &skipped {
        println!("skipped: {s}");
    }
    if let Some(p) = &o.json {
        std::fs::write(p, report::to_json(&rows, threads))
            .map_err(|e| Fail::from(format!("cannot write '{p}': {e}")))?;
    }
    Ok(())
}

/// Matmul-bound losses take seconds per call on a CPU: fewer repetitions.
fn reps_for(id: &str, dims: &BTreeMap<String, usize>, reps: usize) -> usize {
    if model_flops(id, dims).is_some() {
        reps.min(3)
    } else {
        reps
    }
}

/// The measurements to make (backend x case, the device path too on wgpu), and the cases
/// left out with the reason.
fn plan_cases(g: &Global, o: &args::Opts) -> CliResult<(Vec<Planned>, Vec<String>)> {
    let backends: Vec<BackendKind> = match g.backend {
        BackendKind::Auto => [BackendKind::Cpu, BackendKind::Wgpu]
            .into_iter()
            .filter(|b| backend_available(*b))
            .collect(),
        b => vec![b],
    };
    let wanted = |id: &str| o.only.is_empty() || o.only.iter().any(|x| x == id);
    // (loss, letter sizes, label) of every case, bandwidth cases first.
    let mut cases: Vec<(String, BTreeMap<String, usize>, String)> = Vec::new();
    for &(n, v) in &o.shapes {
        for &id in CASES {
            if let (true, Ok(def)) = (wanted(id), g.ctx.find(id)) {
                let dims = letter_sizes(&def.spec, n, v, &o.extra);
                cases.push((id.to_string(), dims, format!("{n}x{v}")));
            }
        }
    }
    for (id, dims) in o.fixed.iter().filter(|(id, _)| wanted(id)) {
        let label: Vec<String> = dims.iter().map(|(l, n)| format!("{l}={n}")).collect();
        cases.push((id.clone(), dims.clone(), label.join(",")));
    }
    let avail = mem_available();
    let mut skipped = Vec::new();
    let mut plan = Vec::new();
    for &backend in &backends {
        for (id, dims, label) in &cases {
            let def = g.ctx.find(id)?;
            if backend == BackendKind::Wgpu && !def.has_gpu() {
                skipped.push(format!(
                    "{id} on wgpu: no GPU kernel yet (it would run its CPU path)"
                ));
                continue;
            }
            let need = footprint(&def, dims);
            if avail.is_some_and(|a| need as f64 > 0.8 * a as f64) {
                skipped.push(format!(
                    "{id} {label}: needs {:.1} GB of memory, {:.1} GB available",
                    need as f64 / 1e9,
                    avail.unwrap_or(0) as f64 / 1e9
                ));
                continue;
            }
            let paths: &[Path] = if backend == BackendKind::Wgpu {
                &[Path::Device, Path::Host]
            } else {
                &[Path::Host]
            };
            for &path in paths {
                plan.push(Planned {
                    backend,
                    path,
                    id: id.clone(),
                    dims: dims.clone(),
                    label: label.clone(),
                });
            }
        }
    }
    Ok((plan, skipped))
}

/// Sizes of the spec's letters for shape `n x v` (`n` rows, or `n` tokens when the loss has a
/// token axis).
fn letter_sizes(
    spec: &LossSpec,
    n: usize,
    v: usize,
    extra: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    let mut d = BTreeMap::new();
    // With a token axis (`[N, T, V]`), `n` counts tokens: sequences of up to 512 tokens.
    let has_t = spec.inputs.iter().any(|i| i.dims().contains(&"T"));
    let t = n.clamp(1, 512);
    for is in &spec.inputs {
        if is.optional {
            continue;
        }
        for l in is.dims() {
            let size = match l {
                "T" => t,
                "N" if has_t => n.div_ceil(t),
                "N" => n,
                "C" | "V" => v,
                other => extra
                    .get(other)
                    .copied()
                    .unwrap_or_else(|| other.parse().unwrap_or(1)),
            };
            d.insert(l.to_string(), size);
        }
    }
    d
}

/// Bytes the inputs and gradient buffers of a case take (the optional inputs the loss's
/// defaults need included; letters not given count 1).
fn footprint(def: &LossDef, dims: &BTreeMap<String, usize>) -> usize {
    let spec = &def.spec;
    let mut total = 0;
    for (k, is) in spec.inputs.iter().enumerate() {
        if is.optional && !def.test_needs_optional {
            continue;
        }
        let numel: usize = is
            .dims()
            .iter()
            .map(|l| {
                dims.get(*l)
                    .copied()
                    .unwrap_or_else(|| l.parse().unwrap_or(1))
            })
            .product();
        let bytes = numel * if is.dtype == DType::F32 { 4 } else { 8 };
        total += bytes;
        if is.differentiable && !(spec.in_place && k == 0) {
            total += bytes;
        }
    }
    total
}

/// Inputs of one case from the library's generator: the loss's test sizes under `dims`, no
/// ignored targets, the optional inputs its defaults need (less those it leaves out of the
/// generic suites), its own value generators where it has them.
fn make_inputs(
    def: &LossDef,
    dims: &BTreeMap<String, usize>,
    seed: u64,
) -> (Vec<Option<OwnedTensor>>, BTreeMap<String, usize>) {
    let mut all: BTreeMap<String, usize> = def.test_dims.iter().cloned().collect();
    all.extend(dims.iter().map(|(l, n)| (l.clone(), *n)));
    let mut case = random_case(&def.spec, None, &all, seed, def.test_needs_optional);
    for (k, is) in def.spec.inputs.iter().enumerate() {
        if is.optional && def.test_omit.iter().any(|n| n == is.name.as_str()) {
            case.inputs[k] = None;
        }
        let values = def.test_values.iter().find(|(n, _)| n == is.name.as_str());
        if let (Some((_, f)), Some(t)) = (values, case.inputs[k].as_mut()) {
            t.data = OwnedData::F32(f(&t.shape, seed.wrapping_add(k as u64)));
        }
    }
    (case.inputs, case.dims)
}

/// Time `loss` on host buffers, interleaved with the in-place scale over its first input.
fn time_host(
    loss: &Loss,
    backend: &str,
    dims: &BTreeMap<String, usize>,
    label: &str,
    reps: usize,
    bar: &mut Progress,
) -> CliResult<Row> {
    let def = loss.def();
    let spec = def.spec.clone();
    let (mut inputs, dims) = make_inputs(def, dims, 7);
    let in_place = spec.in_place;
    // Separate gradient buffers for every differentiable input but an in-place first one.
    let mut grads: Vec<Option<(Vec<f32>, Vec<usize>)>> = spec
        .inputs
        .iter()
        .enumerate()
        .map(|(k, is)| match &inputs[k] {
            Some(t) if is.differentiable && !(in_place && k == 0) => {
                Some((vec![0.0f32; t.f32().len()], t.shape.clone()))
            }
            _ => None,
        })
        .collect();
    let bytes = moved_bytes(&spec, &inputs);
    let call = |inputs: &mut Vec<Option<OwnedTensor>>,
                grads: &mut Vec<Option<(Vec<f32>, Vec<usize>)>>|
     -> CliResult<(f64, f32)> {
        let mut lossv = [0.0f32];
        let t0 = Instant::now();
        {
            let mut c = Compute::new(Reduction::Mean, &mut lossv);
            for (k, d) in inputs.iter_mut().enumerate() {
                c = match d {
                    Some(OwnedTensor {
                        data: OwnedData::F32(v),
                        shape,
                    }) => {
                        if in_place && k == 0 {
                            c.input(Tensor::f32_in_place(v, shape))
                        } else {
                            c.input(Tensor::f32(v, shape))
                        }
                    }
                    Some(OwnedTensor {
                        data: OwnedData::I64(v),
                        shape,
                    }) => c.input(Tensor::i64(v, shape)),
                    None => c.absent(),
                };
            }
            if in_place {
                c = c.grad_in_place(0);
            }
            for (k, gb) in grads.iter_mut().enumerate() {
                if let Some((gb, s)) = gb.as_mut() {
                    c = c.grad(k, TensorMut::new(gb, s));
                }
            }
            loss.compute(&mut c)?;
        }
        Ok((t0.elapsed().as_secs_f64() * 1e3, lossv[0]))
    };
    // Warm-up (also faults in every gradient page).
    let (_, first_loss) = call(&mut inputs, &mut grads)?;
    let roof_len = first_buffer(&mut inputs).map_or(0, |b| b.len());
    scale_in_place(first_buffer(&mut inputs).unwrap_or(&mut []), 0.5);
    bar.inc(&format!("{} {label}", spec.id));
    let threads = rayon::current_num_threads() as f64;
    // (wall ms, share of the threads' time they actually ran) per repetition.
    let mut times: Vec<(f64, Option<f64>)> = Vec::with_capacity(reps);
    let mut roof: Vec<(f64, Option<f64>)> = Vec::with_capacity(reps);
    // CPU ms per thread spent in the call: close to the wall time of an undisturbed run
    // (memory stalls count, time the threads were descheduled does not).
    let on_cpu = |c0: Option<u64>| -> Option<f64> {
        Some((cpu_ns()?.saturating_sub(c0?)) as f64 / 1e6 / threads)
    };
    for r in 0..reps {
        let c0 = cpu_ns();
        let ms = call(&mut inputs, &mut grads)?.0;
        times.push((ms, on_cpu(c0)));
        let buf = first_buffer(&mut inputs).unwrap_or(&mut []);
        let s = if r % 2 == 0 { 2.0 } else { 0.5 };
        let c0 = cpu_ns();
        let t0 = Instant::now();
        scale_in_place(buf, s);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        roof.push((ms, on_cpu(c0)));
        bar.inc(&format!("{} {label}", spec.id));
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    roof.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Row {
        loss: spec.id.to_string(),
        backend: backend.to_string(),
        path: Path::Host,
        flops: model_flops(&spec.id, &dims),
        dims,
        shape: label.to_string(),
        best_ms: times[0].0,
        median_ms: times[times.len() / 2].0,
        on_cpu: times[0].1.map(|c| c / times[0].0),
        cpu_ms: times.iter().filter_map(|t| t.1).min_by(f64::total_cmp),
        bytes,
        roof_ms: roof[0].0,
        roof_on_cpu: roof[0].1.map(|c| c / roof[0].0),
        roof_cpu_ms: roof.iter().filter_map(|t| t.1).min_by(f64::total_cmp),
        roof_bytes: 8.0 * roof_len as f64,
        first_loss,
    })
}

/// Bytes of every input read once plus every gradient written once.
fn moved_bytes(spec: &LossSpec, inputs: &[Option<OwnedTensor>]) -> f64 {
    let mut bytes = 0.0;
    for (k, d) in inputs.iter().enumerate() {
        match d.as_ref().map(|t| &t.data) {
            Some(OwnedData::F32(v)) => {
                bytes += 4.0 * v.len() as f64;
                if spec.inputs[k].differentiable {
                    bytes += 4.0 * v.len() as f64;
                }
            }
            Some(OwnedData::I64(v)) => bytes += 8.0 * v.len() as f64,
            None => {}
        }
    }
    bytes
}

/// Time `loss` with every input and gradient in device buffers (the gradient over the first
/// input when the loss allows it), interleaved with a device copy of a buffer the size of
/// the first f32 input (the roof: what the device moves per byte at best).
#[cfg(feature = "wgpu")]
fn time_device(
    loss: &Loss,
    ctx: &Context,
    backend: &str,
    dims: &BTreeMap<String, usize>,
    label: &str,
    reps: usize,
    bar: &mut Progress,
) -> CliResult<Row> {
    use losskit::backend::DeviceBuffer;
    use losskit::tensor::DeviceOut;
    let def = loss.def();
    let spec = def.spec.clone();
    let dev = ctx
        .gpu_device()
        .ok_or_else(|| Fail::from("bench: device path needs a WGPU context".to_string()))?
        .clone();
    let (host, dims) = make_inputs(def, dims, 7);
    let bytes = moved_bytes(&spec, &host);
    let in_place = spec.in_place;
    let mut bufs: Vec<Option<(DeviceBuffer, DType, Vec<usize>)>> = Vec::new();
    let mut grads: Vec<Option<(DeviceBuffer, Vec<usize>)>> = Vec::new();
    let mut roof_len = 0usize;
    for (k, d) in host.iter().enumerate() {
        let Some(OwnedTensor { data, shape: s }) = d else {
            bufs.push(None);
            grads.push(None);
            continue;
        };
        let (buf, dt) = match data {
            OwnedData::F32(v) => {
                let buf = ctx.buffer((v.len() * 4).max(4) as u64)?;
                buf.write_f32(0, v)?;
                if roof_len == 0 {
                    roof_len = v.len();
                }
                (buf, DType::F32)
            }
            OwnedData::I64(v) => {
                let buf = ctx.buffer((v.len() * 8).max(8) as u64)?;
                buf.write_i64(0, v)?;
                (buf, DType::I64)
            }
        };
        let g = match data {
            OwnedData::F32(v) if spec.inputs[k].differentiable && !(in_place && k == 0) => {
                Some((ctx.buffer((v.len() * 4).max(4) as u64)?, s.clone()))
            }
            _ => None,
        };
        bufs.push(Some((buf, dt, s.clone())));
        grads.push(g);
    }
    drop(host);
    let call = || -> CliResult<(f64, f32)> {
        let mut lossv = [0.0f32];
        let t0 = Instant::now();
        {
            let mut c = Compute::new(Reduction::Mean, &mut lossv);
            for d in &bufs {
                c = match d {
                    Some((b, dt, s)) => c.input(Tensor::device(b, *dt, 0, s)),
                    None => c.absent(),
                };
            }
            if in_place {
                c = c.grad_in_place(0);
            }
            for (k, g) in grads.iter().enumerate() {
                if let Some((b, s)) = g {
                    while c.grads.len() <= k {
                        c.grads.push(losskit::Grad::None);
                    }
                    c.grads[k] = losskit::Grad::Device(DeviceOut::new(b, 0, s));
                }
            }
            loss.compute(&mut c)?;
        }
        Ok((t0.elapsed().as_secs_f64() * 1e3, lossv[0]))
    };
    // The roof: a compute-shader copy of a buffer the size of the first input (bounded by
    // the largest binding) into another, on the same device.
    let probe = losskit::backend::wgpu::copy_probe::CopyProbe::new(&dev, (roof_len * 4) as u64);
    let rb = probe.bytes;
    let copy = || -> CliResult<f64> { Ok(probe.run(&dev, 1)? * 1e3) };
    let (_, first_loss) = call()?;
    copy()?;
    bar.inc(&format!("{} {label} dev", spec.id));
    let mut times = Vec::with_capacity(reps);
    let mut roof = Vec::with_capacity(reps);
    for _ in 0..reps {
        times.push(call()?.0);
        roof.push(copy()?);
        bar.inc(&format!("{} {label} dev", spec.id));
    }
    times.sort_by(f64::total_cmp);
    roof.sort_by(f64::total_cmp);
    Ok(Row {
        loss: spec.id.to_string(),
        backend: backend.to_string(),
        path: Path::Device,
        flops: model_flops(&spec.id, &dims),
        dims,
        shape: label.to_string(),
        best_ms: times[0],
        median_ms: times[times.len() / 2],
        on_cpu: None,
        cpu_ms: None,
        bytes,
        roof_ms: roof[0],
        roof_on_cpu: None,
        roof_cpu_ms: None,
        roof_bytes: 2.0 * rb as f64,
        first_loss,
    })
}

/// Without the wgpu backend there is no device path.
#[cfg(not(feature = "wgpu"))]
fn time_device(
    _loss: &Loss,
    _ctx: &Context,
    _backend: &str,
    _dims: &BTreeMap<String, usize>,
    _label: &str,
    _reps: usize,
    _bar: &mut Progress,
) -> CliResult<Row> {
    Err(Fail::from(
        "bench: the device path needs the wgpu feature".to_string(),
    ))
}

/// The first f32 input's buffer (the roof's buffer).
fn first_buffer(inputs: &mut [Option<OwnedTensor>]) -> Option<&mut [f32]> {
    inputs.iter_mut().find_map(|d| match d {
        Some(OwnedTensor {
            data: OwnedData::F32(v),
            ..
        }) => Some(v.as_mut_slice()),
        _ => None,
    })
}
