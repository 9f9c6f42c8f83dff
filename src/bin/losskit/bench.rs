//! `losskit bench`: time the memory-bound losses at realistic shapes against the machine's
//! own in-place memory bandwidth, measured in the same run on the same buffer.
//!
//! For every shape `NxV` and every benchmarked loss present in the registry
//! ([`CASES`]: `cross_entropy`, `token_logprobs`, `cut_cross_entropy`), the command builds
//! random valid inputs from the loss's spec (letters `N`/`T` = rows, `C`/`V` = classes, `D`
//! from `--size`), then alternates, `reps` times after a warm-up:
//! 1. one forward+backward call (the gradient written over the first input when the loss
//!    allows it, else into separate buffers);
//! 2. one STREAM-style in-place scale `a[i] = s * a[i]` over the same first-input buffer,
//!    split statically over all rayon threads (the "roof").
//!
//! Reported: best and median time, effective GB/s (bytes of every input read once plus every
//! gradient written once, divided by the best time), the roof's GB/s (2 x 4 bytes per element
//! over its best time) and their ratio. Losses whose cost is matrix products (`D` in their
//! inputs) also get GFLOP/s from [`model_flops`]. Interleaving the two measurements makes
//! them see the same machine state; the ratio is the figure to compare across machines.
//!
//! Backends: `cpu`, plus every other backend the build offers (`--backend auto`), each timed
//! through [`time_host`] with host buffers. On `wgpu` every loss is also timed with
//! device-resident buffers ([`Path::Device`], `time_device`: inputs and gradients in
//! `lk_buffer`s, so no transfer of the large tensors is timed); its roof is a same-run
//! compute-shader copy of a buffer the size of the first input (read + write). The fuller
//! GPU benchmark (host, device and CPU paths per case) is `cargo bench --bench gpu`.

use std::collections::BTreeMap;
use std::time::Instant;

use losskit::testing::Rng;
use losskit::{BackendKind, Compute, Context, DType, Domain, Loss, LossSpec, Reduction, Tensor};
use losskit::{TensorMut, backend_available};
use rayon::prelude::*;

use crate::progress::Progress;
use crate::{CliResult, Fail, Global, value};

/// Loss ids the benchmark times when they are registered, in table order.
pub const CASES: &[&str] = &["cross_entropy", "token_logprobs", "cut_cross_entropy"];

/// Default shapes (`N x V`).
const SHAPES: &[(usize, usize)] = &[(4096, 32000), (8192, 50257)];
/// `--quick` shapes.
const QUICK_SHAPES: &[(usize, usize)] = &[(1024, 32000)];

/// How data reach the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Host (CPU memory) buffers passed to `Loss::compute`.
    Host,
    /// Device buffers (`lk_buffer`) on a WGPU context; the roof is a device copy.
    Device,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Host => "host",
            Path::Device => "dev",
        }
    }
}

/// One line of results.
#[derive(Clone, Debug)]
pub struct Row {
    /// Loss id.
    pub loss: String,
    /// Backend name.
    pub backend: String,
    /// Data path.
    pub path: Path,
    /// Letter sizes.
    pub dims: BTreeMap<String, usize>,
    /// `NxV` label.
    pub shape: String,
    /// Best time per call, ms.
    pub best_ms: f64,
    /// Median time per call, ms.
    pub median_ms: f64,
    /// Bytes moved per call (inputs read once + gradients written once).
    pub bytes: f64,
    /// Model FLOPs per call, when the loss is compute-bound.
    pub flops: Option<f64>,
    /// Best time of the in-place scale over the same buffer, ms.
    pub roof_ms: f64,
    /// Bytes the in-place scale moves (read + write).
    pub roof_bytes: f64,
    /// Loss value of the first call (sanity).
    pub first_loss: f32,
    /// Share of the best call's wall time x threads that the process's threads ran (Linux;
    /// well below 1 means other processes took the CPUs and the figure is pessimistic).
    pub on_cpu: Option<f64>,
    /// The same for the best in-place scale.
    pub roof_on_cpu: Option<f64>,
    /// Least CPU time per thread of one call (ms): an estimate of the undisturbed time when
    /// other processes share the CPUs.
    pub cpu_ms: Option<f64>,
    /// The same for the in-place scale.
    pub roof_cpu_ms: Option<f64>,
}

impl Row {
    /// Effective GB/s of the loss.
    pub fn gbps(&self) -> f64 {
        self.bytes / (self.best_ms * 1e-3) / 1e9
    }
    /// GB/s of the in-place scale.
    pub fn roof_gbps(&self) -> f64 {
        self.roof_bytes / (self.roof_ms * 1e-3) / 1e9
    }
    /// Loss GB/s over roof GB/s.
    pub fn ratio(&self) -> f64 {
        self.gbps() / self.roof_gbps()
    }
    /// The same ratio from CPU times instead of wall times.
    pub fn cpu_ratio(&self) -> Option<f64> {
        let (c, r) = (self.cpu_ms?, self.roof_cpu_ms?);
        Some((self.bytes / c) / (self.roof_bytes / r))
    }
}

/// FLOPs of the matrix products of a compute-bound loss (None for memory-bound losses).
/// `cut_cross_entropy`: logits `E W^T` forward plus `dE` and `dW` backward, `6 N D V`.
pub fn model_flops(id: &str, dims: &BTreeMap<String, usize>) -> Option<f64> {
    let d = |l: &str| dims.get(l).copied().unwrap_or(0) as f64;
    match id {
        "cut_cross_entropy" => Some(6.0 * d("N") * d("D") * d("V").max(d("C"))),
        _ => None,
    }
}

struct Opts {
    json: Option<String>,
    shapes: Vec<(usize, usize)>,
    reps: usize,
    extra: BTreeMap<String, usize>,
    only: Vec<String>,
}

fn parse_shape(s: &str) -> CliResult<(usize, usize)> {
    let bad = || {
        Fail::usage(format!(
            "shape '{s}' is not of the form NxV (e.g. 4096x32000)"
        ))
    };
    let (a, b) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let n = a.trim().parse::<usize>().map_err(|_| bad())?;
    let v = b.trim().parse::<usize>().map_err(|_| bad())?;
    if n == 0 || v == 0 {
        return Err(bad());
    }
    Ok((n, v))
}

fn parse_opts(args: &[String]) -> CliResult<Opts> {
    let mut o = Opts {
        json: None,
        shapes: Vec::new(),
        reps: 10,
        extra: BTreeMap::new(),
        only: Vec::new(),
    };
    let mut quick = false;
    let mut reps: Option<usize> = None;
    let mut it = args.iter().cloned();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "--json" => o.json = Some(value(&flag, inline, &mut it)?),
            "--shapes" => {
                for s in value(&flag, inline, &mut it)?.split(',') {
                    o.shapes.push(parse_shape(s)?);
                }
            }
            "--quick" => quick = true,
            "--reps" => {
                let v = value(&flag, inline, &mut it)?;
                reps = Some(v.parse::<usize>().ok().filter(|r| *r > 0).ok_or_else(|| {
                    Fail::usage(format!("--reps '{v}' is not a positive integer"))
                })?);
            }
            "--size" => {
                for part in value(&flag, inline, &mut it)?.split(',') {
                    let (k, v) = part
                        .split_once('=')
                        .ok_or_else(|| Fail::usage(format!("--size entry '{part}' is not L=n")))?;
                    let n = v
                        .parse::<usize>()
                        .map_err(|_| Fail::usage(format!("--size {k}={v}: not an integer")))?;
                    o.extra.insert(k.to_string(), n);
                }
            }
            "--loss" => o.only.push(value(&flag, inline, &mut it)?),
            f => return Err(Fail::usage(format!("bench: unknown argument '{f}'"))),
        }
    }
    if o.shapes.is_empty() {
        o.shapes = if quick { QUICK_SHAPES } else { SHAPES }.to_vec();
    }
    o.reps = reps.unwrap_or(if quick { 3 } else { 10 });
    o.extra
        .entry("D".into())
        .or_insert(if quick { 256 } else { 1024 });
    Ok(o)
}

/// One planned measurement: backend, data path, loss id, letter sizes, shape label.
type Planned<'a> = (BackendKind, Path, &'a str, BTreeMap<String, usize>, String);

/// `losskit bench [--json FILE] [--shapes NxV,...] [--quick] [--reps K] [--size D=n] [--loss ID]`
pub fn main(g: &Global, args: &[String]) -> CliResult {
    let o = parse_opts(args)?;
    let backends: Vec<BackendKind> = match g.backend {
        BackendKind::Auto => [BackendKind::Cpu, BackendKind::Wgpu]
            .into_iter()
            .filter(|b| backend_available(*b))
            .collect(),
        b => vec![b],
    };
    let ids: Vec<&str> = CASES
        .iter()
        .copied()
        .filter(|id| o.only.is_empty() || o.only.iter().any(|x| x == id))
        .filter(|id| g.ctx.find(id).is_ok())
        .collect();
    for id in &o.only {
        if g.ctx.find(id).is_err() {
            return Err(Fail::from(format!("bench: no loss '{id}' in the registry")));
        }
    }
    let threads = rayon::current_num_threads();
    let avail = mem_available();
    let mut skipped: Vec<String> = Vec::new();
    let mut plan: Vec<Planned<'_>> = Vec::new();
    for &b in &backends {
        for &(n, v) in &o.shapes {
            for &id in &ids {
                let def = g.ctx.find(id)?;
                if b == BackendKind::Wgpu && !def.has_gpu() {
                    skipped.push(format!(
                        "{id} on wgpu: no GPU kernel yet (it would run its CPU path)"
                    ));
                    continue;
                }
                let spec = &def.spec;
                let dims = letter_sizes(spec, n, v, &o.extra);
                let need = footprint(spec, &dims);
                let label = format!("{n}x{v}");
                if avail.is_some_and(|a| need as f64 > 0.8 * a as f64) {
                    skipped.push(format!(
                        "{id} {label}: needs {:.1} GB of memory, {:.1} GB available",
                        need as f64 / 1e9,
                        avail.unwrap_or(0) as f64 / 1e9
                    ));
                    continue;
                }
                if b == BackendKind::Wgpu {
                    plan.push((b, Path::Device, id, dims.clone(), label.clone()));
                }
                plan.push((b, Path::Host, id, dims, label));
            }
        }
    }
    println!(
        "losskit bench: {}, {threads} threads, kernels {}, best of {} after 1 warm-up",
        cpu_name(),
        losskit::backend::cpu::isa_name(),
        o.reps
    );
    let steps: usize = plan
        .iter()
        .map(|(_, _, id, dims, _)| {
            1 + if model_flops(id, dims).is_some() {
                o.reps.min(3)
            } else {
                o.reps
            }
        })
        .sum();
    let mut bar = Progress::new(steps, "bench");
    let mut rows: Vec<Row> = Vec::new();
    for (b, path, id, dims, label) in &plan {
        let ctx =
            if *b == g.ctx.backend() || *b == BackendKind::Cpu && g.backend == BackendKind::Auto {
                g.ctx.clone()
            } else {
                Context::new(*b)?
            };
        let loss = ctx.loss(id)?;
        // Matmul-bound losses take seconds per call on a CPU: fewer repetitions.
        let reps = if model_flops(id, dims).is_some() {
            o.reps.min(3)
        } else {
            o.reps
        };
        let row = match path {
            Path::Host => time_host(&loss, b.name(), dims, label, reps, &mut bar)?,
            Path::Device => time_device(&loss, &ctx, b.name(), dims, label, reps, &mut bar)?,
        };
        rows.push(row);
    }
    bar.finish();
    print_table(&rows);
    for s in &skipped {
        println!("skipped: {s}");
    }
    if let Some(p) = &o.json {
        std::fs::write(p, to_json(&rows, threads))
            .map_err(|e| Fail::from(format!("cannot write '{p}': {e}")))?;
    }
    Ok(())
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

fn numel(is: &losskit::InputSpec, dims: &BTreeMap<String, usize>) -> usize {
    is.dims()
        .iter()
        .map(|l| {
            dims.get(*l)
                .copied()
                .unwrap_or_else(|| l.parse().unwrap_or(1))
        })
        .product()
}

/// Bytes the inputs and gradient buffers take.
fn footprint(spec: &LossSpec, dims: &BTreeMap<String, usize>) -> usize {
    let mut total = 0;
    for (k, is) in spec.inputs.iter().enumerate() {
        if is.optional {
            continue;
        }
        let bytes = numel(is, dims) * if is.dtype == DType::F32 { 4 } else { 8 };
        total += bytes;
        if is.differentiable && !(spec.in_place && k == 0) {
            total += bytes;
        }
    }
    total
}

/// Owned inputs for one benchmark case.
enum Buf {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// Fill `n` values of a domain in parallel, deterministically (per-chunk seeds).
fn fill_f32(n: usize, dom: &Domain, seed: u64) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    let f = |u: f64| -> f32 {
        (match dom {
            Domain::Real => 8.0 * u - 4.0,
            Domain::Positive => 0.2 + 1.8 * u,
            Domain::NonNegative => 0.1 + 1.9 * u,
            Domain::Unit => 0.05 + 0.9 * u,
            Domain::LogProb => -(0.05 + 3.0 * u),
            Domain::Binary => (u < 0.5) as u8 as f64,
            Domain::Class(_) => 0.0,
        }) as f32
    };
    v.par_chunks_mut(1 << 16).enumerate().for_each(|(c, ch)| {
        let mut r = Rng::new(seed ^ (c as u64).wrapping_mul(0x9E37_79B9));
        for x in ch {
            *x = f(r.uniform());
        }
    });
    v
}

fn make_inputs(
    spec: &LossSpec,
    dims: &BTreeMap<String, usize>,
    seed: u64,
) -> Vec<Option<(Buf, Vec<usize>)>> {
    let mut rng = Rng::new(seed);
    spec.inputs
        .iter()
        .enumerate()
        .map(|(k, is)| {
            if is.optional {
                return None;
            }
            let shape: Vec<usize> = is
                .dims()
                .iter()
                .map(|l| {
                    dims.get(*l)
                        .copied()
                        .unwrap_or_else(|| l.parse().unwrap_or(1))
                })
                .collect();
            let n: usize = shape.iter().product();
            let buf = match (is.dtype, &is.domain) {
                (DType::I64, Domain::Class(l)) => {
                    let c = dims.get(l.as_str()).copied().unwrap_or(1) as u64;
                    Buf::I64((0..n).map(|_| rng.below(c) as i64).collect())
                }
                (DType::I64, _) => Buf::I64((0..n).map(|_| rng.below(2) as i64).collect()),
                (DType::F32, d) => Buf::F32(fill_f32(n, d, seed.wrapping_add(k as u64 + 1))),
            };
            Some((buf, shape))
        })
        .collect()
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
    let spec = loss.def().spec.clone();
    let mut inputs = make_inputs(&spec, dims, 7);
    let in_place = spec.in_place;
    // Separate gradient buffers for every differentiable input but an in-place first one.
    let mut grads: Vec<Option<(Vec<f32>, Vec<usize>)>> = spec
        .inputs
        .iter()
        .enumerate()
        .map(|(k, is)| match &inputs[k] {
            Some((Buf::F32(v), s)) if is.differentiable && !(in_place && k == 0) => {
                Some((vec![0.0f32; v.len()], s.clone()))
            }
            _ => None,
        })
        .collect();
    let bytes = moved_bytes(&spec, &inputs);
    let call = |inputs: &mut Vec<Option<(Buf, Vec<usize>)>>,
                grads: &mut Vec<Option<(Vec<f32>, Vec<usize>)>>|
     -> CliResult<(f64, f32)> {
        let mut lossv = [0.0f32];
        let t0 = Instant::now();
        {
            let mut c = Compute::new(Reduction::Mean, &mut lossv);
            for (k, d) in inputs.iter_mut().enumerate() {
                c = match d {
                    Some((Buf::F32(v), s)) => {
                        if in_place && k == 0 {
                            c.input(Tensor::f32_in_place(v, s))
                        } else {
                            c.input(Tensor::f32(v, s))
                        }
                    }
                    Some((Buf::I64(v), s)) => c.input(Tensor::i64(v, s)),
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
    let on_cpu = |c0: Option<u64>, _ms: f64| -> Option<f64> {
        Some((cpu_ns()?.saturating_sub(c0?)) as f64 / 1e6 / threads)
    };
    for r in 0..reps {
        let c0 = cpu_ns();
        let ms = call(&mut inputs, &mut grads)?.0;
        times.push((ms, on_cpu(c0, ms)));
        let buf = first_buffer(&mut inputs).unwrap_or(&mut []);
        let s = if r % 2 == 0 { 2.0 } else { 0.5 };
        let c0 = cpu_ns();
        let t0 = Instant::now();
        scale_in_place(buf, s);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        roof.push((ms, on_cpu(c0, ms)));
        bar.inc(&format!("{} {label}", spec.id));
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    roof.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Row {
        loss: spec.id.to_string(),
        backend: backend.to_string(),
        path: Path::Host,
        dims: dims.clone(),
        shape: label.to_string(),
        best_ms: times[0].0,
        median_ms: times[times.len() / 2].0,
        on_cpu: times[0].1.map(|c| c / times[0].0),
        cpu_ms: times.iter().filter_map(|t| t.1).min_by(f64::total_cmp),
        bytes,
        flops: model_flops(&spec.id, dims),
        roof_ms: roof[0].0,
        roof_on_cpu: roof[0].1.map(|c| c / roof[0].0),
        roof_cpu_ms: roof.iter().filter_map(|t| t.1).min_by(f64::total_cmp),
        roof_bytes: 8.0 * roof_len as f64,
        first_loss,
    })
}

/// Bytes of every input read once plus every gradient written once.
fn moved_bytes(spec: &LossSpec, inputs: &[Option<(Buf, Vec<usize>)>]) -> f64 {
    let mut bytes = 0.0;
    for (k, d) in inputs.iter().enumerate() {
        match d {
            Some((Buf::F32(v), _)) => {
                bytes += 4.0 * v.len() as f64;
                if spec.inputs[k].differentiable {
                    bytes += 4.0 * v.len() as f64;
                }
            }
            Some((Buf::I64(v), _)) => bytes += 8.0 * v.len() as f64,
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
    let spec = loss.def().spec.clone();
    let dev = ctx
        .gpu_device()
        .ok_or_else(|| Fail::from("bench: device path needs a WGPU context".to_string()))?
        .clone();
    let host = make_inputs(&spec, dims, 7);
    let bytes = moved_bytes(&spec, &host);
    let in_place = spec.in_place;
    let mut bufs: Vec<Option<(DeviceBuffer, DType, Vec<usize>)>> = Vec::new();
    let mut grads: Vec<Option<(DeviceBuffer, Vec<usize>)>> = Vec::new();
    let mut roof_len = 0usize;
    for (k, d) in host.iter().enumerate() {
        let Some((b, s)) = d else {
            bufs.push(None);
            grads.push(None);
            continue;
        };
        let (buf, dt) = match b {
            Buf::F32(v) => {
                let buf = ctx.buffer((v.len() * 4).max(4) as u64)?;
                buf.write_f32(0, v)?;
                if roof_len == 0 {
                    roof_len = v.len();
                }
                (buf, DType::F32)
            }
            Buf::I64(v) => {
                let buf = ctx.buffer((v.len() * 8).max(8) as u64)?;
                buf.write_i64(0, v)?;
                (buf, DType::I64)
            }
        };
        let g = match b {
            Buf::F32(v) if spec.inputs[k].differentiable && !(in_place && k == 0) => {
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
        dims: dims.clone(),
        shape: label.to_string(),
        best_ms: times[0],
        median_ms: times[times.len() / 2],
        on_cpu: None,
        cpu_ms: None,
        bytes,
        flops: model_flops(&spec.id, dims),
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

fn first_buffer(inputs: &mut [Option<(Buf, Vec<usize>)>]) -> Option<&mut [f32]> {
    inputs.iter_mut().find_map(|d| match d {
        Some((Buf::F32(v), _)) => Some(v.as_mut_slice()),
        _ => None,
    })
}

/// `a[i] *= s` over all rayon threads, one contiguous part per thread (STREAM's static split).
pub fn scale_in_place(a: &mut [f32], s: f32) {
    let threads = rayon::current_num_threads().max(1);
    let part = a.len().div_ceil(threads).div_ceil(16) * 16;
    a.par_chunks_mut(part.max(16))
        .for_each(|c| scale_part(c, s));
}

fn scale_generic(a: &mut [f32], s: f32) {
    for v in a {
        *v *= s;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn scale_avx512(a: &mut [f32], s: f32) {
    scale_generic(a, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scale_avx2(a: &mut [f32], s: f32) {
    scale_generic(a, s)
}

/// The widest vector loop the CPU has, so the roof is not limited by instruction width.
fn scale_part(a: &mut [f32], s: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected at run time.
            return unsafe { scale_avx512(a, s) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was detected at run time.
            return unsafe { scale_avx2(a, s) };
        }
    }
    scale_generic(a, s)
}

fn print_table(rows: &[Row]) {
    println!(
        "{:18} {:7} {:5} {:>12} {:>9} {:>9} {:>8} {:>9} {:>8} {:>9}",
        "loss",
        "backend",
        "path",
        "shape",
        "best ms",
        "median ms",
        "GB/s",
        "roof GB/s",
        "of roof",
        "GFLOP/s"
    );
    for r in rows {
        // The bandwidth ratio means something only for memory-bound losses.
        let of_roof = match r.flops {
            None => format!("{:.0}%", 100.0 * r.ratio()),
            Some(_) => "-".into(),
        };
        let pct = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{:.0}%", 100.0 * v));
        println!(
            "{:18} {:7} {:5} {:>12} {:>9.2} {:>9.2} {:>8.1} {:>9.1} {:>8} {:>9} {:>11} {:>18}",
            r.loss,
            r.backend,
            r.path.name(),
            r.shape,
            r.best_ms,
            r.median_ms,
            r.gbps(),
            r.roof_gbps(),
            of_roof,
            r.flops
                .map(|f| format!("{:.1}", f / (r.best_ms * 1e-3) / 1e9))
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", pct(r.on_cpu), pct(r.roof_on_cpu)),
            match r.flops {
                None => pct(r.cpu_ratio()),
                Some(_) => "-".into(),
            }
        );
    }
    println!(
        "GB/s = (inputs read once + gradients written once) / best time; roof = in-place \
         a[i] = s*a[i] over the same buffer in the same run, all threads; on-CPU = share of \
         the best loss/roof call the threads actually ran (well below 100% = other processes \
         took the CPUs, and both ratios are only indicative; the last column is the ratio of \
         the threads' CPU times, which descheduling does not inflate)."
    );
    if rows.iter().any(|r| r.path == Path::Device) {
        println!(
            "path dev: inputs and gradients in device buffers; its roof is a compute-shader \
             copy of a buffer the size of the first input on the same device, same run."
        );
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// The results as JSON (read by `benches/compare_jax.py`).
pub fn to_json(rows: &[Row], threads: usize) -> String {
    let mut o = String::new();
    o.push_str("{\n");
    o.push_str(&format!(
        "  \"machine\": {{\"cpu\": {}, \"threads\": {threads}, \"kernels\": {}}},\n",
        json_str(&cpu_name()),
        json_str(losskit::backend::cpu::isa_name())
    ));
    o.push_str("  \"rows\": [\n");
    for (k, r) in rows.iter().enumerate() {
        let dims: Vec<String> = r
            .dims
            .iter()
            .map(|(l, n)| format!("{}: {n}", json_str(l)))
            .collect();
        o.push_str(&format!(
            "    {{\"loss\": {}, \"backend\": {}, \"path\": {}, \"shape\": {}, \"dims\": {{{}}}, \
             \"best_ms\": {}, \"median_ms\": {}, \"bytes\": {}, \"gbps\": {}, \"roof_gbps\": {}, \
             \"ratio_to_roof\": {}, \"flops\": {}, \"loss_value\": {}, \"on_cpu\": {}, \
             \"roof_on_cpu\": {}, \"cpu_ms\": {}, \"roof_cpu_ms\": {}, \"ratio_to_roof_cpu_time\": {}}}{}\n",
            json_str(&r.loss),
            json_str(&r.backend),
            json_str(r.path.name()),
            json_str(&r.shape),
            dims.join(", "),
            json_num(r.best_ms),
            json_num(r.median_ms),
            json_num(r.bytes),
            json_num(r.gbps()),
            json_num(r.roof_gbps()),
            json_num(r.ratio()),
            r.flops.map_or("null".into(), json_num),
            json_num(r.first_loss as f64),
            r.on_cpu.map_or("null".into(), json_num),
            r.roof_on_cpu.map_or("null".into(), json_num),
            r.cpu_ms.map_or("null".into(), json_num),
            r.roof_cpu_ms.map_or("null".into(), json_num),
            r.cpu_ratio().map_or("null".into(), json_num),
            if k + 1 < rows.len() { "," } else { "" }
        ));
    }
    o.push_str("  ]\n}\n");
    o
}

/// The CPU's model name (Linux), or the architecture.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// CPU time (ns) the calling thread has run, from `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`
/// (64-bit Linux; None elsewhere).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable `struct timespec` (two 64-bit fields on 64-bit Linux)
    // for the duration of the call; the C library's clock_gettime only writes it.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    (rc == 0).then(|| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// CPU time (ns) the calling thread and every rayon worker thread have run so far (each
/// thread reads its own clock). The calling thread counts because rayon runs a parallel
/// loop that never splits (one chunk) on the caller.
fn cpu_ns() -> Option<u64> {
    let workers: Option<u64> = rayon::broadcast(|_| thread_cpu_ns()).into_iter().sum();
    Some(workers? + thread_cpu_ns()?)
}

/// Available memory in bytes (Linux `MemAvailable`), if known.
fn mem_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let l = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
