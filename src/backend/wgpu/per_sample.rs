//! Template (b): the PER-SAMPLE KERNEL CONTRACT v1, host side (the contract itself is
//! described in the module docs of [`crate::backend::wgpu`]).
//!
//! [`PerSampleWgsl`] wraps a WGSL source written against the contract and implements the GPU
//! hook for it: it binds each chunk's rows (uploading host data, copying device data,
//! narrowing i64 to i32), runs `lk_main` once per row, and applies the reduction (`mean`
//! divides by the rows), the upstream gradient and the chunking. The source is parsed and
//! validated with naga when the kernel is built, so a plugin's bad WGSL is refused at
//! registration with naga's message.
//!
//! A call ([`PerSampleWgsl::compute_with_consts`]) runs in steps, one function each: the
//! argument checks, the call's layout (uniform values, how each input is bound, the rows
//! per chunk), the bind group layouts and pipelines, then per chunk of rows the input
//! uploads, the output buffers, the bind groups of the kernel and of the gradient scaling
//! (with each gradient's destination), one compute pass, the read-back, and the auxiliary
//! outputs, losses and host gradients written out; the reduction comes last.

use std::collections::BTreeMap;

use super::buffers::{self, Pooled, WgpuBuffer, Window};
use super::launch;
use super::{BindKind, GpuDevice, PipelineKey};
use crate::compute::Compute;
use crate::error::Result;
use crate::params::{ParamValue, Params};
use crate::reduction::RowReducer;
use crate::spec::LossSpec;
use crate::tensor::{DType, Data, Grad, Tensor};
use crate::{bail, err};

/// The prelude the host puts in front of a contract kernel: the uniform `lk` and its
/// accessors, which take the constants of [`crate::kernel_names::spec_constants`] (the host
/// puts them in front of the kernel too): `lk_param(LK_P_BETA)`, `lk_present(LK_IN_MASK)`,
/// `lk_dim(LK_DIM_T)`.
pub const CONTRACT_PRELUDE: &str = "struct LkInfo {
    rows: u32,
    row_offset: u32,
    present: u32,
    n_dims: u32,
    dims: array<vec4<u32>, 2>,
    params: array<vec4<f32>, 4>,
}
@group(0) @binding(0) var<uniform> lk: LkInfo;
// Parameter slot k (LK_P_*, then the host constants LK_C_*) as f32: bool 0/1, enum index.
fn lk_param(k: u32) -> f32 {
    return lk.params[k / 4u][k % 4u];
}
// Whether input k (LK_IN_*) is present.
fn lk_present(k: u32) -> bool {
    return ((lk.present >> k) & 1u) == 1u;
}
// Size of shape letter k (LK_DIM_*).
fn lk_dim(k: u32) -> u32 {
    return lk.dims[k / 4u][k % 4u];
}
";

/// Workgroup size of the contract's `lk_main`.
pub const CONTRACT_WG: u32 = 64;

const SCALE_WGSL: &str = "
struct S { rows: u32, len: u32, base: u32, stride: u32, sbase: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> s: S;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    if (i >= s.rows * s.len) { return; }
    let r = i / s.len;
    let j = i % s.len;
    dst[s.base + r * s.stride + j] = src[s.sbase + i] * scale[r];
}
";

/// A WGSL kernel written against the per-sample contract v1; the GPU hook of plugins with a
/// kernel and of simple builtins.
#[derive(Clone, Debug)]
pub struct PerSampleWgsl {
    /// The kernel source, without the prelude.
    pub source: String,
    full: String,
    kinds: Vec<BindKind>,
    id: String,
    /// Auxiliary outputs the kernel writes (spec order, a prefix of the spec's list).
    n_aux: usize,
    /// Inputs `[F, rows, ...]` with one fixed leading axis are chunked per block (builtins
    /// built with [`PerSampleWgsl::with_leading_axis`]).
    leading: bool,
    /// Bitmask of inputs bound whole instead of chunk-local
    /// ([`PerSampleWgsl::with_whole_inputs`]).
    whole: u32,
}

/// Options of one call of a per-sample kernel beyond the tensors (builtins only; plugins
/// always get the defaults).
#[derive(Clone, Copy, Debug, Default)]
pub struct PerSampleOpts {
    /// Denominator of the `mean` reduction; `None` = the number of rows. A loss with
    /// `ignore_index` or class weights passes its own (e.g. the rows not ignored), computed
    /// on the host by the same function its CPU path uses.
    pub den: Option<f64>,
}

fn letters(spec: &LossSpec) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for i in &spec.inputs {
        for d in i.dims() {
            if d.parse::<usize>().is_err() && !v.iter().any(|x| x == d) {
                v.push(d.to_string());
            }
        }
    }
    v
}

/// Parse and validate WGSL with naga; returns the access of each group-0 binding.
fn declared_bindings(src: &str, id: &str) -> Result<BTreeMap<u32, BindKind>> {
    use wgpu::naga;
    let module = naga::front::wgsl::parse_str(src).map_err(|e| {
        err!(
            PluginInvalidSpec,
            "{id}: WGSL does not parse: {}",
            e.emit_to_string(src)
        )
    })?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| {
        err!(
            PluginInvalidSpec,
            "{id}: WGSL is invalid: {}",
            e.emit_to_string(src)
        )
    })?;
    let Some(ep) = module.entry_points.iter().find(|e| e.name == "lk_main") else {
        bail!(PluginInvalidSpec, "{id}: WGSL has no entry point 'lk_main'");
    };
    if ep.stage != naga::ShaderStage::Compute || ep.workgroup_size != [CONTRACT_WG, 1, 1] {
        bail!(
            PluginInvalidSpec,
            "{id}: 'lk_main' must be a compute entry point with @workgroup_size({CONTRACT_WG}), got {:?}",
            ep.workgroup_size
        );
    }
    let mut out = BTreeMap::new();
    for (_, g) in module.global_variables.iter() {
        let Some(b) = &g.binding else { continue };
        if b.group != 0 {
            bail!(
                PluginInvalidSpec,
                "{id}: binding {} is in group {}; the contract uses group 0 only",
                b.binding,
                b.group
            );
        }
        let k = match g.space {
            naga::AddressSpace::Uniform => BindKind::Uniform,
            naga::AddressSpace::Storage { access } => {
                if access.contains(naga::StorageAccess::STORE) {
                    BindKind::ReadWrite
                } else {
                    BindKind::Read
                }
            }
            _ => continue,
        };
        out.insert(b.binding, k);
    }
    Ok(out)
}

impl PerSampleWgsl {
    /// Check `source` against the contract for `spec`: a per-sample (not batch-level) loss;
    /// differentiable inputs with the per-sample letter first; at most 8 shape letters and
    /// 16 parameters; WGSL that parses and validates with the prelude, with a compute entry
    /// point `lk_main` of workgroup size 64, and bindings of the right kinds.
    pub fn new(spec: &LossSpec, source: &str) -> Result<Self> {
        Self::build(spec, source, false)
    }

    /// Like [`PerSampleWgsl::new`], for builtins whose inputs put one fixed-size axis before
    /// the per-sample letter (`sparsepo`'s `[2, B, T]`: the chosen and rejected blocks). Such
    /// an input (differentiable or not) is chunked like the others: the kernel sees the
    /// chunk's rows of every block, `[F, rows, w]` (block `p`, row `i` at `(p·rows + i)·w`),
    /// and writes its gradient in the same layout. Inputs without a fixed leading axis are
    /// handled as by [`PerSampleWgsl::new`].
    pub fn with_leading_axis(spec: &LossSpec, source: &str) -> Result<Self> {
        Self::build(spec, source, true)
    }

    fn build(spec: &LossSpec, source: &str, leading: bool) -> Result<Self> {
        let id = spec.id.as_str();
        if spec.batch_level {
            bail!(
                PluginInvalidSpec,
                "{id}: batch-level losses cannot use the per-sample kernel contract"
            );
        }
        for i in &spec.inputs {
            if i.differentiable
                && i.dims().first() != Some(&spec.rows.as_str())
                && !(leading && lead_axis(i.dims(), spec.rows.as_str()))
            {
                bail!(
                    PluginInvalidSpec,
                    "{id}: differentiable input '{}' [{}] must have the per-sample letter '{}' first for the per-sample kernel contract",
                    i.name,
                    i.shape,
                    spec.rows
                );
            }
        }
        if letters(spec).len() > 8 {
            bail!(
                PluginInvalidSpec,
                "{id}: the per-sample kernel contract passes at most 8 shape letters"
            );
        }
        if spec.params.len() > 16 {
            bail!(
                PluginInvalidSpec,
                "{id}: the per-sample kernel contract passes at most 16 parameters"
            );
        }
        let names = crate::kernel_names::spec_constants(spec)
            .map_err(|e| err!(PluginInvalidSpec, "{}", e.msg))?;
        let full = format!("{CONTRACT_PRELUDE}{names}\n{source}");
        let decl = declared_bindings(&full, id)?;
        let n_in = spec.inputs.len();
        let n_grad = spec.inputs.iter().filter(|i| i.differentiable).count();
        let mut kinds = vec![BindKind::Uniform];
        for k in 0..n_in {
            kinds.push(*decl.get(&(1 + k as u32)).unwrap_or(&BindKind::Read));
        }
        for k in 0..=n_grad {
            let b = (1 + n_in + k) as u32;
            if let Some(kind) = decl.get(&b) {
                if *kind != BindKind::ReadWrite {
                    bail!(
                        PluginInvalidSpec,
                        "{id}: binding {b} (an output) must be var<storage, read_write>"
                    );
                }
            }
            kinds.push(BindKind::ReadWrite);
        }
        // Auxiliary outputs: the bindings after the gradients, in spec order, each an
        // `array<f32>` of the chunk's rows; the kernel declares a prefix of the list.
        let first_aux = kinds.len() as u32;
        let n_aux = decl
            .keys()
            .filter(|&&b| b >= first_aux)
            .map(|&b| (b - first_aux + 1) as usize)
            .max()
            .unwrap_or(0);
        if n_aux > spec.aux.len() {
            bail!(
                PluginInvalidSpec,
                "{id}: binding {} is beyond the contract's {} bindings",
                first_aux as usize + n_aux - 1,
                first_aux as usize + spec.aux.len()
            );
        }
        for (a, aux) in spec.aux.iter().take(n_aux).enumerate() {
            let b = first_aux + a as u32;
            if decl.get(&b).is_some_and(|k| *k != BindKind::ReadWrite) {
                bail!(
                    PluginInvalidSpec,
                    "{id}: binding {b} (auxiliary output '{}') must be var<storage, read_write>",
                    aux.name
                );
            }
            if aux.dims().first() != Some(&spec.rows.as_str()) {
                bail!(
                    PluginInvalidSpec,
                    "{id}: auxiliary output '{}' [{}] must have the per-sample letter '{}' first for the per-sample kernel contract",
                    aux.name,
                    aux.shape,
                    spec.rows
                );
            }
            kinds.push(BindKind::ReadWrite);
        }
        for (b, kind) in &decl {
            if *b as usize >= kinds.len() {
                bail!(
                    PluginInvalidSpec,
                    "{id}: binding {b} is beyond the contract's {} bindings",
                    kinds.len()
                );
            }
            if *b == 0 && *kind != BindKind::Uniform {
                bail!(
                    PluginInvalidSpec,
                    "{id}: binding 0 is the contract's uniform 'lk'"
                );
            }
        }
        Ok(PerSampleWgsl {
            source: source.to_string(),
            full,
            kinds,
            id: id.to_string(),
            n_aux,
            leading,
            whole: 0,
        })
    }
}

/// Loop iterations one llvmpipe (lavapipe) invocation runs before Mesa's loop limiter stops
/// its loops early, silently (observed: the count is shared by the loops of an invocation).
pub const LLVMPIPE_LOOP_LIMIT: u64 = 65535;

/// A builtin's per-sample kernel: WGSL preludes plus the kernel source, joined, parsed and
/// validated against the loss's spec on first use, then kept for the process.
pub struct LazyKernel {
    preludes: &'static [&'static str],
    source: &'static str,
    build: Builder,
    /// Names of the host constants passed after the parameters (`LK_C_*` in the kernel).
    host_consts: &'static [&'static str],
    built: std::sync::OnceLock<PerSampleWgsl>,
}

/// How a [`LazyKernel`] turns its joined source into a kernel.
pub type Builder = fn(&LossSpec, &str) -> Result<PerSampleWgsl>;

impl LazyKernel {
    /// A kernel from its preludes (in order) and its source.
    pub const fn new(preludes: &'static [&'static str], source: &'static str) -> Self {
        Self::with_builder(preludes, source, PerSampleWgsl::new)
    }

    /// The same with its own builder (e.g. [`PerSampleWgsl::with_leading_axis`], or one
    /// that binds some inputs whole).
    pub const fn with_builder(
        preludes: &'static [&'static str],
        source: &'static str,
        build: Builder,
    ) -> Self {
        Self::with_host_consts(preludes, source, build, &[])
    }

    /// The same reading host constants `names` (after the parameters in `lk.params`, as
    /// `lk_param(LK_C_<NAME>)`); run it with [`LazyKernel::run_with_consts`].
    pub const fn with_host_consts(
        preludes: &'static [&'static str],
        source: &'static str,
        build: Builder,
        names: &'static [&'static str],
    ) -> Self {
        LazyKernel {
            preludes,
            source,
            build,
            host_consts: names,
            built: std::sync::OnceLock::new(),
        }
    }

    /// The built kernel (built now on first use).
    pub fn get(&self, spec: &LossSpec) -> Result<&PerSampleWgsl> {
        if let Some(k) = self.built.get() {
            return Ok(k);
        }
        let mut src = self.preludes.join("\n");
        src.push('\n');
        src.push_str(&crate::kernel_names::host_constants(
            spec,
            self.host_consts,
        )?);
        src.push_str(self.source);
        let k = (self.build)(spec, &src)?;
        Ok(self.built.get_or_init(|| k))
    }

    /// Build on first use, then run with `opts`.
    pub fn run(
        &self,
        dev: &GpuDevice,
        spec: &LossSpec,
        params: &Params,
        c: &mut Compute<'_>,
        opts: PerSampleOpts,
    ) -> Result<()> {
        self.get(spec)?.compute_with(dev, spec, params, c, opts)
    }

    /// Build on first use, then run with `opts` and the host constants `consts`, given by
    /// name (every name of [`LazyKernel::with_host_consts`], in any order).
    pub fn run_with_consts(
        &self,
        dev: &GpuDevice,
        spec: &LossSpec,
        params: &Params,
        c: &mut Compute<'_>,
        opts: PerSampleOpts,
        consts: &[(&str, f32)],
    ) -> Result<()> {
        let values = crate::kernel_names::host_values(spec.id.as_str(), self.host_consts, consts)?;
        self.get(spec)?
            .compute_with_consts(dev, spec, params, c, opts, &values)
    }
}

/// Refuse (`Unsupported`) a launch whose invocations would each run about `iters` loop
/// iterations on llvmpipe, where the loops would stop early and give wrong results; other
/// adapters have no such limit.
pub fn check_loop_iterations(dev: &GpuDevice, id: &str, iters: u64) -> Result<()> {
    if iters > LLVMPIPE_LOOP_LIMIT && dev.info().name.to_lowercase().contains("llvmpipe") {
        bail!(
            Unsupported,
            "{id}: one GPU invocation would run {iters} loop iterations; llvmpipe (lavapipe) stops loops after {LLVMPIPE_LOOP_LIMIT}, so these rows are too long for it (use the CPU backend or a hardware GPU)"
        );
    }
    Ok(())
}

/// True when `dims` is `[<fixed size>, rows, ...]`.
fn lead_axis(dims: Vec<&str>, rows: &str) -> bool {
    dims.len() >= 2 && dims[0].parse::<usize>().is_ok() && dims[1] == rows
}

fn param_f32(v: &ParamValue) -> f32 {
    match *v {
        ParamValue::F64(x) => x as f32,
        ParamValue::I64(x) => x as f32,
        ParamValue::Bool(b) => b as u8 as f32,
        ParamValue::Enum(k) => k as f32,
    }
}

/// Chunk-local data of one input: rows `rows` (all when `None`) of `t`, uploaded or copied
/// into a pooled storage buffer (i64 narrowed to i32).
pub(crate) fn input_chunk<'d>(
    dev: &'d GpuDevice,
    enc: &mut wgpu::CommandEncoder,
    id: &str,
    name: &str,
    t: &Tensor<'_>,
    rows: Option<(usize, usize)>,
) -> Result<Pooled<'d>> {
    let len = t.row_len();
    let (r0, r1) = rows.unwrap_or((0, t.rows()));
    let nrows = if t.shape.is_empty() { 1 } else { r1 - r0 };
    let n = if t.numel() == 0 { 0 } else { nrows * len };
    match (&t.data, t.dtype()) {
        (Data::Device(d), DType::F32) => {
            let p = dev
                .pool
                .take(dev, (n * 4).max(4) as u64, buffers::STORAGE)?;
            let b = &d.buffer.wgpu_ref().buf;
            if n > 0 {
                if t.row_stride == len || nrows == 1 {
                    let at = ((d.offset + r0 * t.row_stride) * 4) as u64;
                    enc.copy_buffer_to_buffer(b, at, p.buf(), 0, (n * 4) as u64);
                } else {
                    for r in 0..nrows {
                        let at = ((d.offset + (r0 + r) * t.row_stride) * 4) as u64;
                        enc.copy_buffer_to_buffer(
                            b,
                            at,
                            p.buf(),
                            (r * len * 4) as u64,
                            (len * 4) as u64,
                        );
                    }
                }
            }
            Ok(p)
        }
        (_, DType::F32) => {
            let src = t.f32_data().unwrap_or(&[]);
            if n > 0 && (t.row_stride == len || nrows == 1) {
                let at = r0 * t.row_stride;
                return buffers::upload(dev, bytemuck::cast_slice(&src[at..at + n]));
            }
            let mut v = Vec::with_capacity(n);
            for r in 0..if n == 0 { 0 } else { nrows } {
                let at = (r0 + r) * t.row_stride;
                v.extend_from_slice(&src[at..at + len]);
            }
            buffers::upload(dev, bytemuck::cast_slice(&v))
        }
        (_, DType::I64) => {
            // Only the chunk's rows: from host memory, or downloaded from the device.
            let rows_v: Vec<i64> = match &t.data {
                Data::Device(d) if n > 0 => {
                    let span = (nrows - 1) * t.row_stride + len;
                    let raw = d.buffer.read_i64(d.offset + r0 * t.row_stride, span)?;
                    (0..nrows)
                        .flat_map(|r| raw[r * t.row_stride..r * t.row_stride + len].to_vec())
                        .collect()
                }
                _ => {
                    let src = t.i64_data().unwrap_or(&[]);
                    let mut v = Vec::with_capacity(n);
                    for r in 0..if n == 0 { 0 } else { nrows } {
                        let at = (r0 + r) * t.row_stride;
                        v.extend_from_slice(&src[at..at + len]);
                    }
                    v
                }
            };
            let lo = if t.shape.is_empty() { 0 } else { r0 * len };
            let mut v = Vec::with_capacity(n);
            for (k, &x) in rows_v.iter().enumerate() {
                let y = i32::try_from(x).map_err(|_| {
                    err!(
                        InvalidInput,
                        "{id}: input '{name}'[{}] = {x} does not fit the GPU kernel's i32",
                        lo + k
                    )
                })?;
                v.push(y);
            }
            buffers::upload(dev, bytemuck::cast_slice(&v))
        }
    }
}

/// Chunk-local data `[lead, rows, w]` of an f32 input `[lead, n, ...]` (one fixed leading
/// axis before the per-sample letter): rows `r0..r1` of every block.
fn lead_chunk<'d>(
    dev: &'d GpuDevice,
    enc: &mut wgpu::CommandEncoder,
    id: &str,
    name: &str,
    t: &Tensor<'_>,
    (lead, w): (usize, usize),
    (r0, r1): (usize, usize),
) -> Result<Pooled<'d>> {
    let rows = r1 - r0;
    let n = lead * rows * w;
    match (&t.data, t.dtype()) {
        (Data::Device(d), DType::F32) => {
            let p = dev
                .pool
                .take(dev, (n * 4).max(4) as u64, buffers::STORAGE)?;
            if rows * w > 0 {
                for blk in 0..lead {
                    let at = ((d.offset + blk * t.row_stride + r0 * w) * 4) as u64;
                    let to = (blk * rows * w * 4) as u64;
                    enc.copy_buffer_to_buffer(
                        &d.buffer.wgpu_ref().buf,
                        at,
                        p.buf(),
                        to,
                        (rows * w * 4) as u64,
                    );
                }
            }
            Ok(p)
        }
        (_, DType::F32) => {
            let src = t.f32_data().unwrap_or(&[]);
            let mut v = Vec::with_capacity(n);
            if rows * w > 0 {
                for blk in 0..lead {
                    let at = blk * t.row_stride + r0 * w;
                    v.extend_from_slice(&src[at..at + rows * w]);
                }
            }
            buffers::upload(dev, bytemuck::cast_slice(&v))
        }
        (_, DType::I64) => bail!(
            Unsupported,
            "{id}: input '{name}': i64 inputs with a leading axis are not supported by the per-sample kernel"
        ),
    }
}

/// Elements per row of an auxiliary output (the letters after the per-sample one).
fn aux_row_len(spec: &LossSpec, c: &Compute<'_>, a: usize) -> usize {
    spec.aux[a].dims()[1..]
        .iter()
        .map(|d| d.parse::<usize>().unwrap_or_else(|_| c.dim(d)))
        .product()
}

impl PerSampleWgsl {
    /// Bind the non-differentiable inputs `ks` (spec positions) whole instead of chunk-local
    /// (builtins only), for kernels whose row reads other rows of a small input, e.g. `grpo`
    /// (the rewards of the row's group): the kernel indexes them with `lk.row_offset + i`.
    /// An input bound whole must fit one binding.
    pub fn with_whole_inputs(mut self, ks: &[usize]) -> Self {
        for &k in ks {
            self.whole |= 1 << k;
        }
        self
    }

    /// Number of auxiliary outputs the kernel writes.
    pub fn aux_outputs(&self) -> usize {
        self.n_aux
    }

    /// Run the kernel with `opts` (the GPU hook runs it with the defaults).
    pub fn compute_with(
        &self,
        dev: &GpuDevice,
        spec: &LossSpec,
        params: &Params,
        c: &mut Compute<'_>,
        opts: PerSampleOpts,
    ) -> Result<()> {
        self.compute_with_consts(dev, spec, params, c, opts, &[])
    }

    /// Run the kernel with `opts` and host constants `consts` (builtins only): they follow
    /// the loss's parameters in `lk.params` (constant `j` is parameter slot
    /// `spec.params.len() + j`); parameters and constants together are at most 16.
    ///
    /// The steps: the argument checks, the call's layout (uniform values, which inputs are
    /// chunked, the rows per chunk), the bind group layouts and pipelines, then per chunk of
    /// rows the uploads, the dispatch and the read-back, and finally the reduction.
    pub fn compute_with_consts(
        &self,
        dev: &GpuDevice,
        spec: &LossSpec,
        params: &Params,
        c: &mut Compute<'_>,
        opts: PerSampleOpts,
        consts: &[f32],
    ) -> Result<()> {
        let id = spec.id.as_str();
        check_slots(spec, consts)?;
        let n = c.dim(spec.rows.as_str());
        let reducer = RowReducer::new(c.reduction, c.grad_output, opts.den.unwrap_or(n as f64));
        let aux_len: Vec<usize> = (0..self.n_aux).map(|a| aux_row_len(spec, c, a)).collect();
        self.check_aux(spec, c)?;
        let (uni, inputs) = self.layout(spec, params, c, consts);
        let chunk = chunk_rows(dev, spec, c, &inputs, &aux_len)?;
        let pipes = self.pipelines(dev, id)?;
        let call = Call {
            dev,
            spec,
            id,
            n_aux: self.n_aux,
            uni,
            inputs,
            aux_len,
            pipes,
            scales: (0..n).map(|i| reducer.grad_scale(i) as f32).collect(),
        };
        let mut per_row = vec![0f64; n];
        dev.scoped(id, || {
            let mut r0 = 0usize;
            while r0 < n {
                let r1 = r0 + chunk.min(n - r0);
                call.run_chunk(c, r0, r1, &mut per_row)?;
                r0 = r1;
            }
            Ok(())
        })?;
        reducer.write_loss(&per_row, c.loss);
        Ok(())
    }

    /// Refuse auxiliary outputs the kernel does not write.
    fn check_aux(&self, spec: &LossSpec, c: &Compute<'_>) -> Result<()> {
        let id = spec.id.as_str();
        for (name, _) in &c.aux {
            let k = spec.aux.iter().position(|a| a.name.as_str() == name);
            if k.is_none_or(|k| k >= self.n_aux) {
                bail!(
                    Unsupported,
                    "{id}: the GPU kernel does not write the auxiliary output '{name}'"
                );
            }
        }
        Ok(())
    }

    /// The uniform values of the call (shape letters, parameters and constants, present
    /// inputs) and the layout of its inputs.
    fn layout(
        &self,
        spec: &LossSpec,
        params: &Params,
        c: &Compute<'_>,
        consts: &[f32],
    ) -> (Uniforms, Inputs) {
        let rows_l = spec.rows.as_str();
        let n = c.dim(rows_l);
        let lts = letters(spec);
        let mut dims = [0u32; 8];
        for (k, l) in lts.iter().enumerate() {
            dims[k] = c.dim(l) as u32;
        }
        let mut pv = [0f32; 16];
        for (k, v) in params.values().iter().enumerate().take(16) {
            pv[k] = param_f32(v);
        }
        for (j, &x) in consts.iter().enumerate() {
            pv[spec.params.len() + j] = x;
        }
        let mut present = 0u32;
        for k in 0..spec.inputs.len() {
            if c.get(k).is_some() {
                present |= 1 << k;
            }
        }
        let chunked: Vec<bool> = spec
            .inputs
            .iter()
            .enumerate()
            .map(|(k, i)| {
                self.whole & (1 << k) == 0
                    && (i.dims().first() == Some(&rows_l)
                        || (self.leading && lead_axis(i.dims(), rows_l)))
            })
            .collect();
        let is_lead: Vec<bool> = spec
            .inputs
            .iter()
            .zip(&chunked)
            .map(|(i, &ch)| ch && self.leading && lead_axis(i.dims(), rows_l))
            .collect();
        // Per input: (leading blocks, elements per row within a block); (1, row length) for
        // inputs with the per-sample letter first.
        let lay: Vec<(usize, usize)> = (0..spec.inputs.len())
            .map(|k| match c.get(k) {
                Some(t) if is_lead[k] => (t.shape[0], t.row_len().checked_div(n).unwrap_or(0)),
                Some(t) => (1, t.row_len()),
                None => (1, 0),
            })
            .collect();
        let grad_inputs: Vec<usize> = (0..spec.inputs.len())
            .filter(|&k| spec.inputs[k].differentiable)
            .collect();
        (
            Uniforms {
                present,
                n_letters: lts.len() as u32,
                dims,
                pv,
            },
            Inputs {
                chunked,
                is_lead,
                lay,
                grad_inputs,
            },
        )
    }

    /// The bind group layouts and pipelines of the kernel and of the gradient scaling.
    fn pipelines(&self, dev: &GpuDevice, id: &str) -> Result<Pipes> {
        let (bgl, playout) = dev.layout(
            &format!("per_sample/{id}/{}", self.kinds.len()),
            &self.kinds,
        );
        let kid = format!("per_sample/{}", self.id);
        let pipe = dev.pipelines.get_with_layout(
            dev,
            &PipelineKey::new(&kid, &self.full, "lk_main", CONTRACT_WG, &[]),
            &self.full,
            Some(&playout),
        )?;
        let (sbgl, splayout) = dev.layout(
            "per_sample/scale",
            &[
                BindKind::Uniform,
                BindKind::Read,
                BindKind::Read,
                BindKind::ReadWrite,
            ],
        );
        let scale_pipe = dev.pipelines.get_with_layout(
            dev,
            &PipelineKey::new("per_sample/scale", SCALE_WGSL, "main", 256, &[]),
            SCALE_WGSL,
            Some(&splayout),
        )?;
        Ok(Pipes {
            bgl,
            pipe,
            sbgl,
            scale_pipe,
        })
    }
}

/// Refuse more parameters and constants than the contract's 16 slots.
fn check_slots(spec: &LossSpec, consts: &[f32]) -> Result<()> {
    let id = spec.id.as_str();
    if spec.params.len() + consts.len() > 16 {
        bail!(
            Internal,
            "{id}: {} parameters and {} constants exceed the contract's 16 slots",
            spec.params.len(),
            consts.len()
        );
    }
    Ok(())
}

/// Rows per chunk: every chunked input and gradient must fit one binding, and one
/// invocation per row must fit a 1-D dispatch. Refuses an input bound whole that does not
/// fit one binding.
fn chunk_rows(
    dev: &GpuDevice,
    spec: &LossSpec,
    c: &Compute<'_>,
    inputs: &Inputs,
    aux_len: &[usize],
) -> Result<usize> {
    let id = spec.id.as_str();
    let maxb = dev.max_binding_bytes();
    let mut chunk =
        (dev.limits.max_compute_workgroups_per_dimension as usize) * CONTRACT_WG as usize;
    for (k, &is_chunked) in inputs.chunked.iter().enumerate() {
        let Some(t) = c.get(k) else { continue };
        if is_chunked {
            let (lead, w) = inputs.lay[k];
            chunk = chunk.min(launch::rows_per_chunk(maxb, lead * w, lead * w, 4, 0, id)?);
        } else if (t.numel() * 4) as u64 > maxb {
            bail!(
                Unsupported,
                "{id}: input '{}' ({} elements, not per-sample) exceeds the device's largest binding",
                spec.inputs[k].name,
                t.numel()
            );
        }
    }
    for &l in aux_len {
        chunk = chunk.min(launch::rows_per_chunk(maxb, l, l, 4, 0, id)?);
    }
    Ok(chunk.min((maxb / 4) as usize).max(1))
}

/// The uniform values every chunk shares (after its row count and first row).
struct Uniforms {
    /// Bitmask of the inputs present.
    present: u32,
    /// Number of shape letters.
    n_letters: u32,
    dims: [u32; 8],
    /// Parameters, then the host constants.
    pv: [f32; 16],
}

/// How each input is bound.
struct Inputs {
    /// Bound chunk-local (else whole).
    chunked: Vec<bool>,
    /// Chunked per block of a fixed leading axis.
    is_lead: Vec<bool>,
    /// (leading blocks, elements per row within a block).
    lay: Vec<(usize, usize)>,
    /// The differentiable inputs, in spec order.
    grad_inputs: Vec<usize>,
}

/// The kernel's and the scaling's bind group layouts and pipelines.
struct Pipes {
    bgl: std::sync::Arc<wgpu::BindGroupLayout>,
    pipe: std::sync::Arc<wgpu::ComputePipeline>,
    sbgl: std::sync::Arc<wgpu::BindGroupLayout>,
    scale_pipe: std::sync::Arc<wgpu::ComputePipeline>,
}

/// One call of a per-sample kernel, as every chunk of rows runs it.
struct Call<'a> {
    dev: &'a GpuDevice,
    spec: &'a LossSpec,
    id: &'a str,
    n_aux: usize,
    uni: Uniforms,
    inputs: Inputs,
    /// Elements per row of each auxiliary output the kernel writes.
    aux_len: Vec<usize>,
    pipes: Pipes,
    /// Per-row gradient scales (reduction and upstream gradient).
    scales: Vec<f32>,
}

/// One scaling dispatch: gradient `grad` (index into the differentiable inputs), one
/// leading block of it, scaled into its destination.
struct ScaleGroup {
    grad: usize,
    /// Index into the host scratch destinations, or None for a device destination.
    host: Option<usize>,
    /// Byte offset of the block's first row in the destination.
    base: usize,
    /// Elements between rows in the destination.
    stride: usize,
    /// Elements per row.
    len: usize,
    /// One past the index of the device destination's buffer among the holders.
    holder: usize,
    /// Element offset of the block in the kernel's gradient output.
    sbase: usize,
}

/// Where a chunk's scaled gradients go: host scratch buffers (read back afterwards), the
/// device destinations (held while the chunk runs), and one scaling per leading block.
struct GradDests<'d> {
    host_out: Vec<(usize, Pooled<'d>)>,
    dev_holders: Vec<std::sync::Arc<buffers::BufInner>>,
    groups: Vec<ScaleGroup>,
}

/// A chunk's kernel outputs: the per-row losses, the gradients, the auxiliary outputs.
struct Outputs<'d> {
    loss_b: Pooled<'d>,
    gbufs: Vec<Pooled<'d>>,
    abufs: Vec<Pooled<'d>>,
}

/// What a chunk reads back: the losses, the host gradients (in `host_out` order), and the
/// requested auxiliary outputs (aux index, bytes).
struct ReadBack {
    lossv: Vec<u8>,
    hv: Vec<Vec<u8>>,
    av: Vec<(usize, Vec<u8>)>,
}

impl<'a> Call<'a> {
    /// Rows `r0..r1`: uploads, the kernel and the gradient scaling in one pass, the
    /// read-back, and the results written into `c` and `per_row`.
    fn run_chunk(
        &self,
        c: &mut Compute<'_>,
        r0: usize,
        r1: usize,
        per_row: &mut [f64],
    ) -> Result<()> {
        let (dev, id) = (self.dev, self.id);
        let rows = r1 - r0;
        let mut enc = dev
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(id) });
        let ins = self.upload_inputs(&mut enc, c, r0, r1)?;
        let out = self.outputs(rows)?;
        let (bg, _ubuf) = self.bind_kernel(rows, r0, &ins, &out);
        let scale_b = buffers::upload(dev, bytemuck::cast_slice(&self.scales[r0..r1]))?;
        let dests = self.grad_dests(c, r0, rows)?;
        let (sbgs, _ubufs) = self.bind_scaling(rows, &dests, &out, &scale_b)?;
        self.dispatch(&mut enc, &bg, rows, &sbgs)?;
        let rb = self.read_back(enc, c, rows, &out, &dests)?;
        self.write_aux(c, r0, rows, &rb);
        let lf: &[f32] = bytemuck::cast_slice(&rb.lossv);
        for i in 0..rows {
            per_row[r0 + i] = lf[i] as f64;
        }
        self.write_host_grads(c, r0, rows, &dests, &rb)
    }

    /// Every input's data for rows `r0..r1` (whole for inputs not chunked; a 4-byte
    /// placeholder for absent ones), uploaded or copied into `enc`.
    fn upload_inputs(
        &self,
        enc: &mut wgpu::CommandEncoder,
        c: &Compute<'_>,
        r0: usize,
        r1: usize,
    ) -> Result<Vec<Pooled<'a>>> {
        let (dev, id, spec, inp) = (self.dev, self.id, self.spec, &self.inputs);
        let mut ins: Vec<Pooled<'_>> = Vec::new();
        for (k, &is_chunked) in inp.chunked.iter().enumerate() {
            let p = match c.get(k) {
                Some(t) if inp.is_lead[k] => {
                    lead_chunk(dev, enc, id, &spec.inputs[k].name, t, inp.lay[k], (r0, r1))?
                }
                Some(t) => input_chunk(
                    dev,
                    enc,
                    id,
                    &spec.inputs[k].name,
                    t,
                    is_chunked.then_some((r0, r1)),
                )?,
                None => dev.pool.take(dev, 4, buffers::STORAGE)?,
            };
            ins.push(p);
        }
        Ok(ins)
    }

    /// The kernel's output buffers for `rows` rows.
    fn outputs(&self, rows: usize) -> Result<Outputs<'a>> {
        let dev = self.dev;
        let lay = &self.inputs.lay;
        let loss_b = dev.pool.take(dev, (rows * 4) as u64, buffers::STORAGE)?;
        let mut gbufs: Vec<Pooled<'_>> = Vec::new();
        for &k in &self.inputs.grad_inputs {
            let len = lay[k].0 * lay[k].1;
            gbufs.push(
                dev.pool
                    .take(dev, ((rows * len).max(1) * 4) as u64, buffers::STORAGE)?,
            );
        }
        let mut abufs: Vec<Pooled<'_>> = Vec::new();
        for &l in &self.aux_len {
            abufs.push(
                dev.pool
                    .take(dev, ((rows * l).max(1) * 4) as u64, buffers::STORAGE)?,
            );
        }
        Ok(Outputs {
            loss_b,
            gbufs,
            abufs,
        })
    }

    /// The kernel's bind group: the uniform `lk`, the inputs, the losses, the gradients and
    /// the auxiliary outputs (binding order of the contract). Returns the uniform buffer too.
    fn bind_kernel(
        &self,
        rows: usize,
        r0: usize,
        ins: &[Pooled<'_>],
        out: &Outputs<'_>,
    ) -> (wgpu::BindGroup, wgpu::Buffer) {
        let (dev, uni) = (self.dev, &self.uni);
        let mut u: Vec<u32> = vec![rows as u32, r0 as u32, uni.present, uni.n_letters];
        u.extend_from_slice(&uni.dims);
        u.extend(uni.pv.iter().map(|p| p.to_bits()));
        let ubuf = buffers::uniform(dev, bytemuck::cast_slice(&u));
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: Window::whole(&ubuf).resource(),
        }];
        for (k, p) in ins.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: 1 + k as u32,
                resource: Window::whole(p.buf()).resource(),
            });
        }
        let nb = 1 + ins.len() as u32;
        entries.push(wgpu::BindGroupEntry {
            binding: nb,
            resource: Window::whole(out.loss_b.buf()).resource(),
        });
        for (j, p) in out.gbufs.iter().chain(&out.abufs).enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: nb + 1 + j as u32,
                resource: Window::whole(p.buf()).resource(),
            });
        }
        let bg = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.id),
            layout: &self.pipes.bgl,
            entries: &entries,
        });
        (bg, ubuf)
    }

    /// Where each wanted gradient of the chunk's `rows` rows (from `r0`) goes: its device
    /// destination (a device gradient, or in place over a device input), or a host scratch
    /// buffer read back afterwards; one scaling per leading block.
    fn grad_dests(&self, c: &Compute<'_>, r0: usize, rows: usize) -> Result<GradDests<'a>> {
        let (dev, inp) = (self.dev, &self.inputs);
        // Scaled gradients land here (host) or in the device destination.
        let mut host_out: Vec<(usize, Pooled<'_>)> = Vec::new();
        let mut dev_holders = Vec::new();
        let mut groups = Vec::new();
        for (j, &k) in inp.grad_inputs.iter().enumerate() {
            let (lead, len) = inp.lay[k];
            if lead * len == 0 {
                continue;
            }
            // Element offset of the chunk's first row and the strides between rows
            // and between leading blocks, in a device destination.
            let dev_dst = |offset: usize, row_stride: usize| {
                if inp.is_lead[k] {
                    (offset + r0 * len, len, row_stride)
                } else {
                    (offset + r0 * row_stride, row_stride, 0)
                }
            };
            let (dst_buf, base, stride, bstride) = match &c.grads[k] {
                Grad::None => continue,
                Grad::Device(o) => {
                    dev_holders.push(o.data.buffer.wgpu());
                    let (at, st, bs) = dev_dst(o.data.offset, o.row_stride);
                    (None, at * 4, st, bs)
                }
                Grad::InPlace => match c.get(k) {
                    Some(Tensor {
                        data: Data::Device(d),
                        row_stride,
                        ..
                    }) => {
                        dev_holders.push(d.buffer.wgpu());
                        let (at, st, bs) = dev_dst(d.offset, *row_stride);
                        (None, at * 4, st, bs)
                    }
                    _ => {
                        // Host in place: through a scratch buffer.
                        let p =
                            dev.pool
                                .take(dev, (rows * lead * len * 4) as u64, buffers::STORAGE)?;
                        host_out.push((k, p));
                        (Some(host_out.len() - 1), 0, len, rows * len)
                    }
                },
                Grad::Out(_) => {
                    let p = dev
                        .pool
                        .take(dev, (rows * lead * len * 4) as u64, buffers::STORAGE)?;
                    host_out.push((k, p));
                    (Some(host_out.len() - 1), 0, len, rows * len)
                }
            };
            for blk in 0..lead {
                groups.push(ScaleGroup {
                    grad: j,
                    host: dst_buf,
                    base: base + blk * bstride * 4,
                    stride,
                    len,
                    holder: dev_holders.len(),
                    sbase: blk * rows * len,
                });
            }
        }
        Ok(GradDests {
            host_out,
            dev_holders,
            groups,
        })
    }

    /// The scaling's bind groups (with their element counts) and their uniform buffers.
    #[allow(clippy::type_complexity)]
    fn bind_scaling(
        &self,
        rows: usize,
        dests: &GradDests<'_>,
        out: &Outputs<'_>,
        scale_b: &Pooled<'_>,
    ) -> Result<(Vec<(wgpu::BindGroup, u64)>, Vec<wgpu::Buffer>)> {
        let dev = self.dev;
        let mut sbgs = Vec::new();
        let mut ubufs = Vec::new();
        for g in &dests.groups {
            let (base, stride, len) = (g.base, g.stride, g.len);
            let span = (((rows - 1) * stride + len) * 4) as u64;
            let w = match g.host {
                Some(h) => Window::new(dev, dests.host_out[h].1.buf(), base as u64, span),
                None => Window::new(dev, &dests.dev_holders[g.holder - 1].buf, base as u64, span),
            };
            let su = buffers::uniform(
                dev,
                bytemuck::cast_slice(&[
                    rows as u32,
                    len as u32,
                    w.base,
                    stride as u32,
                    g.sbase as u32,
                    0,
                    0,
                    0,
                ]),
            );
            ubufs.push(su);
            let su = ubufs.last().ok_or_else(|| err!(Internal, "uniform"))?;
            sbgs.push((
                dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("scale"),
                    layout: &self.pipes.sbgl,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: Window::whole(su).resource(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: Window::whole(out.gbufs[g.grad].buf()).resource(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: Window::whole(scale_b.buf()).resource(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: w.resource(),
                        },
                    ],
                }),
                (rows * len) as u64,
            ));
        }
        Ok((sbgs, ubufs))
    }

    /// One compute pass: the kernel over the chunk's rows, then every scaling.
    fn dispatch(
        &self,
        enc: &mut wgpu::CommandEncoder,
        bg: &wgpu::BindGroup,
        rows: usize,
        sbgs: &[(wgpu::BindGroup, u64)],
    ) -> Result<()> {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(self.id),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipes.pipe);
        pass.set_bind_group(0, bg, &[]);
        pass.dispatch_workgroups((rows as u32).div_ceil(CONTRACT_WG), 1, 1);
        pass.set_pipeline(&self.pipes.scale_pipe);
        for (sbg, count) in sbgs {
            let (gx, gy) = launch::grid(
                count.div_ceil(256),
                self.dev.limits.max_compute_workgroups_per_dimension,
            )?;
            pass.set_bind_group(0, sbg, &[]);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        Ok(())
    }

    /// Submit `enc` and read back the losses, the host gradients and the requested
    /// auxiliary outputs.
    fn read_back(
        &self,
        enc: wgpu::CommandEncoder,
        c: &Compute<'_>,
        rows: usize,
        out: &Outputs<'_>,
        dests: &GradDests<'_>,
    ) -> Result<ReadBack> {
        let (spec, lay) = (self.spec, &self.inputs.lay);
        let mut lossv = vec![0u8; rows * 4];
        let mut hv: Vec<Vec<u8>> = dests
            .host_out
            .iter()
            .map(|(k, _)| vec![0u8; rows * lay[*k].0 * lay[*k].1 * 4])
            .collect();
        // Requested auxiliary outputs: (aux index, bytes).
        let mut av: Vec<(usize, Vec<u8>)> = (0..self.n_aux)
            .filter(|&a| c.aux.iter().any(|(nm, _)| nm == spec.aux[a].name.as_str()))
            .map(|a| (a, vec![0u8; rows * self.aux_len[a] * 4]))
            .collect();
        {
            let mut reads: Vec<(&wgpu::Buffer, u64, &mut [u8])> =
                vec![(out.loss_b.buf(), 0, &mut lossv)];
            for ((_, p), v) in dests.host_out.iter().zip(hv.iter_mut()) {
                reads.push((p.buf(), 0, v));
            }
            for (a, v) in av.iter_mut() {
                if !v.is_empty() {
                    reads.push((out.abufs[*a].buf(), 0, v));
                }
            }
            buffers::submit_and_read(self.dev, enc, &mut reads)?;
        }
        Ok(ReadBack { lossv, hv, av })
    }

    /// The chunk's rows of the requested auxiliary outputs into their destinations.
    fn write_aux(&self, c: &mut Compute<'_>, r0: usize, rows: usize, rb: &ReadBack) {
        for (a, v) in &rb.av {
            let l = self.aux_len[*a];
            let af: &[f32] = bytemuck::cast_slice(v);
            let name = self.spec.aux[*a].name.as_str();
            let Some((_, t)) = c.aux.iter_mut().find(|(nm, _)| nm == name) else {
                continue;
            };
            for i in 0..rows {
                let at = (r0 + i) * t.row_stride;
                t.data[at..at + l].copy_from_slice(&af[i * l..(i + 1) * l]);
            }
        }
    }

    /// The chunk's rows of the host gradients (separate, or in place over a host input)
    /// into their destinations.
    fn write_host_grads(
        &self,
        c: &mut Compute<'_>,
        r0: usize,
        rows: usize,
        dests: &GradDests<'_>,
        rb: &ReadBack,
    ) -> Result<()> {
        let (id, inp) = (self.id, &self.inputs);
        for ((k, _), v) in dests.host_out.iter().zip(&rb.hv) {
            let k = *k;
            let gf: &[f32] = bytemuck::cast_slice(v);
            let Compute { inputs, grads, .. } = &mut *c;
            let t = inputs[k]
                .as_mut()
                .ok_or_else(|| err!(Internal, "{id}: input"))?;
            let (lead, len) = inp.lay[k];
            let (dst, ds): (&mut [f32], usize) = match (&mut t.data, &mut grads[k]) {
                (_, Grad::Out(o)) => (&mut *o.data, o.row_stride),
                (Data::F32InPlace(d), Grad::InPlace) => (&mut **d, t.row_stride),
                _ => bail!(Internal, "{id}: inconsistent gradient slot"),
            };
            for blk in 0..lead {
                for i in 0..rows {
                    let at = if inp.is_lead[k] {
                        blk * ds + (r0 + i) * len
                    } else {
                        (r0 + i) * ds
                    };
                    let from = (blk * rows + i) * len;
                    dst[at..at + len].copy_from_slice(&gf[from..from + len]);
                }
            }
        }
        Ok(())
    }
}
