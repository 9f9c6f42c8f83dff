//! The wgpu backend: one device per context, cached pipelines, pooled buffers, row chunking,
//! and two templates that losses (and plugins) plug their WGSL into.
//!
//! # Device and adapter
//! [`GpuDevice::new`] enumerates the adapters of the primary backends (Vulkan, Metal, DX12;
//! never GL: the crate is built without wgpu's `gles` feature so a missing Vulkan driver is
//! reported instead of silently replaced) and picks one:
//! - `LOSSKIT_ADAPTER=<substring>` keeps only adapters whose name contains it
//!   (case-insensitive);
//! - a `DeviceType::Cpu` adapter (Mesa lavapipe/llvmpipe, WARP) is used only when
//!   `LOSSKIT_ALLOW_SOFTWARE_ADAPTER=1`: the library's own CPU path is faster than a software
//!   rasteriser, so it must never be taken silently for "the GPU";
//! - among the rest, high performance wins: discrete, integrated, virtual/other, software.
//!
//! No adapter, or a failed device request, is [`ErrorKind::BackendUnavailable`] carrying
//! wgpu's own text. wgpu's default uncaptured-error handler panics; each device installs its
//! own, which records the error, and every compute call runs inside error scopes, so a GPU
//! error becomes [`ErrorKind::Gpu`] (or [`ErrorKind::OutOfMemory`]) with wgpu's message.
//!
//! The device requests the adapter's own limits (not wgpu's defaults). The largest storage
//! binding ([`GpuDevice::max_binding_bytes`]) bounds every bound range; inputs larger than it
//! are processed in row chunks. `LOSSKIT_GPU_MAX_BINDING_BYTES` (read when the device is
//! created) lowers it, for tests and for memory-constrained users.
//!
//! # Pipelines, buffers, launches
//! - [`pipeline_cache`]: pipelines keyed by a hashable [`PipelineKey`] (kernel id, source
//!   hash, entry point, workgroup size, sorted override constants). Shapes never enter the
//!   source or the key: they go in a uniform block, so one pipeline serves every shape.
//! - [`buffers`]: a size-class pool of scratch buffers, uploads, readbacks, and
//!   [`buffers::Buffer`], the device-resident buffer of the public API (`lk_buffer`).
//! - [`launch`]: workgroup sizes validated against the device limits, and 2-D grids for
//!   more than 65535 workgroups.
//! - `prelude.wgsl`: the one home of the shared math, with finite sentinels
//!   (`LK_NEG_BIG = -3e38`): a tanh that cannot overflow, online-softmax merging, `expm1`
//!   and `log1p` without cancellation (and `expm1` without overflow), softplus, the
//!   sigmoid, log-sigmoid and `log(1 - e^a)` in the forms that keep f32 within the parity
//!   tolerance of the f64 CPU path, `pow` with `0^0 = 1`, and `LkAcc`/`lk_acc_add`, the blocked summation every long
//!   loop uses (Kahan compensation can be optimised away by a driver, a running f32 sum drifts
//!   by n ulp). WGSL kernels never rely on inf or NaN.
//!
//! # What runs on this engine
//! The loss-facing executors live in [`crate::exec::gpu`]: the row-wise skeleton
//! (`exec/gpu/rowwise.rs`, a loss's row function as a WGSL snippet), the per-sample
//! contract's executor (built on [`per_sample`] below), and the custom passes of losses that
//! need their own. This module knows no targets, weights or losses: it runs WGSL with
//! bindings, uniforms and chunked windows.
//!
//! # The per-sample kernel contract v1 ([`per_sample`])
//! For plugins and the builtins that declare a per-sample kernel. The host prepends
//!
//! ```wgsl
//! struct LkInfo { rows: u32, row_offset: u32, present: u32, n_dims: u32,
//!                 dims: array<vec4<u32>, 2>, params: array<vec4<f32>, 4> }
//! @group(0) @binding(0) var<uniform> lk: LkInfo;
//! ```
//!
//! with the accessors `lk_param(k)`, `lk_present(k)`, `lk_dim(k)`
//! ([`per_sample::CONTRACT_PRELUDE`]), and the constants that name the spec's parameters,
//! enum choices, inputs and shape letters ([`crate::kernel_names`]): a kernel reads
//! `lk_param(LK_P_BETA)`, never `lk_param(0u)`. Builtins put `prelude.wgsl` and their family
//! helpers after it.
//!
//! `dims` = sizes of the spec's shape letters in order of first appearance over the inputs;
//! `params` = the loss's parameters in spec order as f32 (bool 0/1, enum index, i64 cast);
//! `present` = bitmask of present inputs. Input `k` is `@group(0) @binding(1+k)`, an
//! `array<f32>` (f32) or `array<i32>` (i64 narrowed by the host, an error if a value does
//! not fit); absent optional inputs get a 4-byte dummy. Binding `1+n_inputs` is `lk_loss`,
//! `array<f32>`, one per row of the chunk; then one `array<f32>` per differentiable input,
//! in input order, for its gradient (same layout as that input's rows of the chunk). After
//! those, a kernel may declare one `array<f32>` per auxiliary output of the spec, in spec
//! order (a prefix of the list; each such output must have the per-sample letter first),
//! holding the chunk's rows of it; the host copies back the ones the caller asked for
//! (asking for one the kernel does not declare is `Unsupported`). The
//! entry point is `lk_main` with `@workgroup_size(64)`, one invocation per row
//! (`let i = gid.x; if (i >= lk.rows) { return; }`); inputs and outputs are chunk-local.
//! The kernel writes the unscaled per-row loss `l_i` and `d l_i / d(row i of each
//! differentiable input)`; the host applies the reduction (`mean` divides by the rows), the
//! upstream gradient and the chunking; builtins may pass their own `mean` denominator
//! ([`per_sample::PerSampleOpts`], e.g. the rows not ignored). Differentiable inputs must have the per-sample letter
//! first (checked when the kernel is registered). Builtins have three more options (plugins
//! never see them): host constants after the parameters, named
//! ([`per_sample::LazyKernel::with_host_consts`], `LK_C_*` in the kernel, e.g. the RL `loss_agg`
//! denominator),
//! inputs bound whole instead of chunk-local ([`per_sample::PerSampleWgsl::with_whole_inputs`],
//! `grpo`'s rewards), and inputs with one fixed axis before the per-sample letter, chunked per
//! block ([`per_sample::PerSampleWgsl::with_leading_axis`], `sparsepo`'s `[2, B, T]`). A loss
//! declares these as a `crate::exec::kernel::SampleKernel`.
//!
//! # Tiled pairwise kernels ([`pairwise`])
//! For losses that compare every row of one matrix with every row of another (distance
//! layers, Gram matrices): output tiles of `16 x 16` invocations with register micro-tiles,
//! the operands streamed through workgroup memory (never an `[N, C, D]` tensor), the backward contractions tiled the same
//! way, f32 sums in blocks of 64 in a fixed order (deterministic), whole operands bound (a
//! shape beyond the largest binding is refused as `Unsupported`). [`pairwise::Kernels`]
//! records a call's dispatches, including a loss's own row kernels, into one command
//! encoder. `harmonic`, `amp_entropy` and `ca_calibration` use it.

pub mod buffers;
pub mod copy_probe;
pub mod launch;
pub mod pairwise;
pub mod per_sample;
pub mod pipeline_cache;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::backend::DeviceInfo;
use crate::compute::Compute;
use crate::error::{ErrorKind, LkError, Result};
use crate::text::Text;
use crate::{bail, err};
use buffers::WgpuBuffer;

pub use buffers::BufferPool;
pub use per_sample::{PerSampleOpts, PerSampleWgsl};
pub use pipeline_cache::{PipelineCache, PipelineKey};

/// The shared WGSL helpers prepended to losskit's own kernels.
pub const PRELUDE: &str = include_str!("prelude.wgsl");

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Whether software (`DeviceType::Cpu`) adapters may be used.
pub fn software_allowed() -> bool {
    env_flag("LOSSKIT_ALLOW_SOFTWARE_ADAPTER")
}

fn instance() -> &'static wgpu::Instance {
    static I: OnceLock<wgpu::Instance> = OnceLock::new();
    I.get_or_init(|| {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        // Explicit flags: debug builds would otherwise turn on validation layers.
        desc.flags = wgpu::InstanceFlags::empty().with_env();
        wgpu::Instance::new(desc)
    })
}

fn type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::Other => "other",
        wgpu::DeviceType::IntegratedGpu => "integrated_gpu",
        wgpu::DeviceType::DiscreteGpu => "discrete_gpu",
        wgpu::DeviceType::VirtualGpu => "virtual_gpu",
        wgpu::DeviceType::Cpu => "cpu",
    }
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_name(b: wgpu::Backend) -> String {
    format!("{b:?}").to_ascii_lowercase()
}

/// Pick an adapter by the rules of the module docs. `allow_software` overrides the
/// environment (AUTO never uses a software adapter).
fn pick_adapter(allow_software: bool) -> Result<wgpu::Adapter> {
    let inst = instance();
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let all = pollster::block_on(inst.enumerate_adapters(backends));
    let wanted = std::env::var("LOSSKIT_ADAPTER")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase());
    let mut seen = Vec::new();
    let mut cands = Vec::new();
    for a in all {
        let info = a.get_info();
        seen.push(format!(
            "'{}' ({}, {})",
            info.name,
            backend_name(info.backend),
            type_name(info.device_type)
        ));
        if let Some(w) = &wanted {
            if !info.name.to_lowercase().contains(w.as_str()) {
                continue;
            }
        }
        if info.device_type == wgpu::DeviceType::Cpu && !allow_software {
            continue;
        }
        cands.push((type_rank(info.device_type), a));
    }
    cands.sort_by_key(|c| c.0);
    if let Some((_, a)) = cands.into_iter().next() {
        return Ok(a);
    }
    if seen.is_empty() {
        // Let wgpu say why (drivers that could not be loaded, backends not compiled in).
        let why = match pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        })) {
            Ok(_) => "no adapter enumerated".to_string(),
            Err(e) => e.to_string(),
        };
        bail!(BackendUnavailable, "wgpu: no GPU adapter: {why}");
    }
    let mut why = String::new();
    if let Some(w) = &wanted {
        why.push_str(&format!("LOSSKIT_ADAPTER='{w}' matches none; "));
    }
    if !allow_software {
        why.push_str(
            "software (cpu) adapters are used only with LOSSKIT_ALLOW_SOFTWARE_ADAPTER=1; ",
        );
    }
    bail!(
        BackendUnavailable,
        "wgpu: no usable GPU adapter ({why}found: {})",
        seen.join(", ")
    )
}

/// Whether the wgpu backend can be used here: an adapter passes the selection rules.
/// Probed once per process (the result is cached).
pub fn probe() -> std::result::Result<(), String> {
    static P: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    P.get_or_init(
        || match std::panic::catch_unwind(|| pick_adapter(software_allowed())) {
            Ok(r) => r.map(|_| ()).map_err(|e| e.msg),
            Err(_) => Err("wgpu panicked while enumerating adapters".to_string()),
        },
    )
    .clone()
}

/// Whether a real (not software) GPU adapter exists; cached. Used by AUTO.
pub fn real_gpu_exists() -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    *P.get_or_init(|| std::panic::catch_unwind(|| pick_adapter(false).is_ok()).unwrap_or(false))
}

/// How a binding of an explicit layout is declared in WGSL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindKind {
    /// `var<uniform>`.
    Uniform,
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

type Layout = (Arc<wgpu::BindGroupLayout>, Arc<wgpu::PipelineLayout>);

/// Check every device buffer of a call belongs to `dev`.
pub fn check_device_args(dev: &GpuDevice, id: &str, c: &Compute<'_>) -> Result<()> {
    let foreign = |b: &crate::device::DeviceBuffer| b.wgpu_ref().dev.id != dev.id;
    for (k, t) in c.inputs.iter().enumerate() {
        if let Some(crate::tensor::Tensor {
            data: crate::tensor::Data::Device(d),
            ..
        }) = t
        {
            if foreign(&d.buffer) {
                bail!(
                    InvalidArg,
                    "{id}: input #{k} is a device buffer of another context"
                );
            }
        }
    }
    for (k, g) in c.grads.iter().enumerate() {
        if let crate::tensor::Grad::Device(o) = g {
            if foreign(&o.data.buffer) {
                bail!(
                    InvalidArg,
                    "{id}: gradient #{k} is a device buffer of another context"
                );
            }
        }
    }
    Ok(())
}

static NEXT_DEVICE_ID: AtomicU64 = AtomicU64::new(1);

/// One wgpu device with its queue, limits, pipeline cache and buffer pool. A context owns
/// one; losses and device buffers keep it alive through an `Arc`.
pub struct GpuDevice {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    info: DeviceInfo,
    max_binding: AtomicU64,
    hw_binding: u64,
    pub(crate) pipelines: PipelineCache,
    pub(crate) pool: BufferPool,
    layouts: Mutex<HashMap<String, Layout>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    id: u64,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

impl GpuDevice {
    /// Create a device on the adapter the selection rules pick (software adapters only with
    /// the opt-in, or when `allow_software` is false never).
    pub fn new(allow_software: bool) -> Result<Arc<Self>> {
        let adapter = pick_adapter(allow_software)?;
        let ainfo = adapter.get_info();
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("losskit"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            err!(
                BackendUnavailable,
                "wgpu: device request on '{}' failed: {e}",
                ainfo.name
            )
        })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                if v.len() < 16 {
                    v.push(e.to_string());
                }
            }
        }));
        let hw_binding = (limits.max_storage_buffer_binding_size as u64)
            .min(limits.max_buffer_size)
            // Keep bound ranges 4-byte multiples.
            & !3;
        let max_binding = match std::env::var("LOSSKIT_GPU_MAX_BINDING_BYTES")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(v) if v >= 1024 => v.min(hw_binding) & !3,
            _ => hw_binding,
        };
        let info = DeviceInfo {
            name: Text::new(&ainfo.name),
            backend: Text::new(&backend_name(ainfo.backend)),
            device_type: Text::new(type_name(ainfo.device_type)),
            driver: Text::new(&format!("{} {}", ainfo.driver, ainfo.driver_info)),
            software: ainfo.device_type == wgpu::DeviceType::Cpu,
            max_storage_binding_bytes: limits.max_storage_buffer_binding_size as u64,
            max_buffer_bytes: limits.max_buffer_size,
            max_binding_bytes: max_binding,
            max_workgroup_invocations: limits.max_compute_invocations_per_workgroup,
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_workgroup_storage_bytes: limits.max_compute_workgroup_storage_size,
        };
        tracing::info!(
            "losskit: wgpu device '{}' ({}, {}), max binding {} bytes",
            info.name,
            info.backend,
            info.device_type,
            max_binding
        );
        Ok(Arc::new(GpuDevice {
            device,
            queue,
            limits,
            info,
            max_binding: AtomicU64::new(max_binding),
            hw_binding,
            pipelines: PipelineCache::default(),
            pool: BufferPool::default(),
            layouts: Mutex::new(HashMap::new()),
            uncaptured,
            id: NEXT_DEVICE_ID.fetch_add(1, Ordering::Relaxed),
        }))
    }

    /// Adapter identity and key limits.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }
    /// Most bytes of the library's scratch buffers in use at once on this device since the
    /// last [`GpuDevice::reset_scratch_peak`]: the device memory a computation needed beyond
    /// the caller's tensors (wgpu's staging copies of host uploads are not counted).
    pub fn scratch_peak_bytes(&self) -> u64 {
        self.pool.peak_bytes()
    }
    /// Start a new [`GpuDevice::scratch_peak_bytes`] measurement.
    pub fn reset_scratch_peak(&self) {
        self.pool.reset_peak()
    }
    /// The largest byte range one binding may cover (after `LOSSKIT_GPU_MAX_BINDING_BYTES`).
    pub fn max_binding_bytes(&self) -> u64 {
        self.max_binding.load(Ordering::Relaxed)
    }
    /// Lower (or restore) the largest bound range, e.g. to exercise chunking in tests;
    /// clamped to `[1024, device limit]` and rounded down to a multiple of 4.
    pub fn set_max_binding_bytes(&self, bytes: u64) {
        self.max_binding
            .store(bytes.clamp(1024, self.hw_binding) & !3, Ordering::Relaxed);
    }
    /// The wgpu limits of the device.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
    /// The pipeline cache.
    pub fn pipelines(&self) -> &PipelineCache {
        &self.pipelines
    }
    /// A process-unique id (device buffers check they belong to the computing device).
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The wgpu device.
    pub fn raw(&self) -> &wgpu::Device {
        &self.device
    }
    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Run `f` inside error scopes (out-of-memory, validation, internal) on this thread and
    /// turn any error wgpu reports, or any the uncaptured handler saw meanwhile, into an
    /// [`LkError`].
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let int = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let r = f();
        let e_int = pollster::block_on(int.pop());
        let e_val = pollster::block_on(val.pop());
        let e_oom = pollster::block_on(oom.pop());
        if let Some(e) = e_oom {
            bail!(OutOfMemory, "{what}: GPU out of memory: {e}");
        }
        if let Some(e) = e_val.or(e_int) {
            bail!(Gpu, "{what}: wgpu error: {e}");
        }
        if let Ok(mut v) = self.uncaptured.lock() {
            if !v.is_empty() {
                let msg = v.join("; ");
                v.clear();
                return Err(LkError::new(
                    ErrorKind::Gpu,
                    format!("{what}: wgpu error: {msg}"),
                ));
            }
        }
        r
    }

    /// The bind-group and pipeline layouts named `name` (built once per device) for
    /// bindings `0..kinds.len()` of group 0, visible to compute.
    pub fn layout(&self, name: &str, kinds: &[BindKind]) -> Layout {
        let mut m = match self.layouts.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(l) = m.get(name) {
            return l.clone();
        }
        let entries: Vec<wgpu::BindGroupLayoutEntry> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match k {
                        BindKind::Uniform => wgpu::BufferBindingType::Uniform,
                        BindKind::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        BindKind::ReadWrite => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let bgl = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(name),
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
        let l = (Arc::new(bgl), Arc::new(pl));
        m.insert(name.to_string(), l.clone());
        l
    }

    /// Submit command buffers and wait for them to finish.
    pub fn submit_wait(&self, cmds: Vec<wgpu::CommandBuffer>) -> Result<()> {
        let idx = self.queue.submit(cmds);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(idx),
                timeout: None,
            })
            .map_err(|e| err!(Gpu, "wgpu: waiting for the GPU failed: {e}"))?;
        Ok(())
    }
}
