//! The safe Rust API: [`Context`] (backend + registry view) and [`Loss`] (a configured loss).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::backend::{BackendKind, DeviceInfo};
use crate::compute::Compute;
use crate::device::DeviceBuffer;
use crate::error::Result;
use crate::params::{ParamKind, ParamValue, Params};
use crate::plugin::PluginInfo;
use crate::registry::{LossDef, builtins};
use crate::{bail, err};

/// Shared state of a context; losses keep it alive.
pub(crate) struct ContextInner {
    backend: BackendKind,
    /// Chosen by AUTO: small problems still run on the CPU.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    auto: bool,
    plugins: RwLock<Vec<Arc<LossDef>>>,
    #[cfg(feature = "wgpu")]
    gpu: Option<Arc<crate::backend::wgpu::GpuDevice>>,
    plugin_list: RwLock<Vec<Arc<PluginInfo>>>,
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(p) => p,
        Err(p) => p.into_inner(),
    }
}

/// A context: a backend choice and the set of losses it knows (builtins, then the plugins
/// loaded into it). Cheap to clone; safe to share across threads. A WGPU context owns one
/// GPU device.
#[derive(Clone)]
pub struct Context {
    inner: Arc<ContextInner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("backend", &self.inner.backend)
            .field("device", &self.device_info().map(|d| d.name.to_string()))
            .finish()
    }
}

/// True when `kind` can be used on this machine. For `Wgpu`: an adapter passes the
/// selection rules (software adapters only with `LOSSKIT_ALLOW_SOFTWARE_ADAPTER=1`); the
/// probe runs once per process.
pub fn backend_available(kind: BackendKind) -> bool {
    match kind {
        BackendKind::Auto | BackendKind::Cpu => true,
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => crate::backend::wgpu::probe().is_ok(),
        #[cfg(not(feature = "wgpu"))]
        BackendKind::Wgpu => false,
    }
}

/// Host-tensor calls of at least this many elements (of the first input) that AUTO sends to
/// the GPU, when `LOSSKIT_AUTO_GPU_MIN_ELEMENTS` is set; unset, AUTO keeps host-tensor calls
/// on the CPU and sends only device-buffer calls to the GPU. Measured on an NVIDIA H200 with
/// 16 CPU cores (cross_entropy 4096 x 32000, forward + backward): CPU path 12 ms, GPU with
/// device buffers 1.8 ms, GPU with host tensors 240 ms: for a memory-bound loss the PCIe
/// upload and download cost far more than computing on the CPU.
#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
fn auto_min_elements() -> Option<usize> {
    std::env::var("LOSSKIT_AUTO_GPU_MIN_ELEMENTS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

impl Context {
    /// A context on `backend`. `Wgpu` creates a GPU device, or fails with
    /// `BackendUnavailable` and wgpu's text; `Auto` creates a GPU device when a real (not
    /// software) adapter exists and then runs calls whose tensors are device buffers on it
    /// and calls with host tensors on the CPU (unless `LOSSKIT_AUTO_GPU_MIN_ELEMENTS=n`
    /// sends host-tensor calls of at least n elements to the GPU); without a hardware GPU,
    /// the CPU. AUTO says what it chose through `tracing`.
    pub fn new(backend: BackendKind) -> Result<Self> {
        match backend {
            BackendKind::Cpu => Ok(Self::cpu()),
            BackendKind::Wgpu => Self::gpu_context(false),
            BackendKind::Auto => {
                #[cfg(feature = "wgpu")]
                {
                    if crate::backend::wgpu::real_gpu_exists() {
                        match Self::gpu_context(true) {
                            Ok(c) => {
                                tracing::info!(
                                    "losskit: backend auto -> wgpu on '{}' for device-buffer calls{}",
                                    c.device_info()
                                        .map(|d| d.name.to_string())
                                        .unwrap_or_default(),
                                    match auto_min_elements() {
                                        Some(n) => format!(" and host calls of >= {n} elements"),
                                        None => ", cpu for host tensors".to_string(),
                                    }
                                );
                                return Ok(c);
                            }
                            Err(e) => tracing::info!(
                                "losskit: backend auto -> cpu (GPU device failed: {})",
                                e.msg
                            ),
                        }
                    } else {
                        tracing::info!("losskit: backend auto -> cpu (no hardware GPU adapter)");
                    }
                }
                #[cfg(not(feature = "wgpu"))]
                tracing::info!("losskit: backend auto -> cpu (built without the wgpu feature)");
                Ok(Self::cpu())
            }
        }
    }

    #[cfg(feature = "wgpu")]
    fn gpu_context(auto: bool) -> Result<Self> {
        let allow = !auto && crate::backend::wgpu::software_allowed();
        // wgpu may panic inside drivers' setup paths; that is "no backend", never a crash.
        let dev = std::panic::catch_unwind(|| crate::backend::wgpu::GpuDevice::new(allow))
            .unwrap_or_else(|p| {
                let why = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(crate::err!(
                    BackendUnavailable,
                    "wgpu: device creation panicked: {why}"
                ))
            })?;
        Ok(Context {
            inner: Arc::new(ContextInner {
                backend: BackendKind::Wgpu,
                auto,
                plugins: RwLock::new(Vec::new()),
                gpu: Some(dev),
                plugin_list: RwLock::new(Vec::new()),
            }),
        })
    }

    #[cfg(not(feature = "wgpu"))]
    fn gpu_context(_auto: bool) -> Result<Self> {
        bail!(
            BackendUnavailable,
            "the wgpu backend is not compiled into this build of losskit (feature 'wgpu')"
        )
    }

    /// A CPU context.
    pub fn cpu() -> Self {
        Context {
            inner: Arc::new(ContextInner {
                backend: BackendKind::Cpu,
                auto: false,
                plugins: RwLock::new(Vec::new()),
                #[cfg(feature = "wgpu")]
                gpu: None,
                plugin_list: RwLock::new(Vec::new()),
            }),
        }
    }
    /// The GPU adapter and its limits (None on a CPU context).
    pub fn device_info(&self) -> Option<DeviceInfo> {
        #[cfg(feature = "wgpu")]
        {
            self.inner.gpu.as_ref().map(|g| {
                let mut i = g.info().clone();
                i.max_binding_bytes = g.max_binding_bytes();
                i
            })
        }
        #[cfg(not(feature = "wgpu"))]
        {
            None
        }
    }
    /// The GPU device of a WGPU context.
    #[cfg(feature = "wgpu")]
    pub fn gpu_device(&self) -> Option<&Arc<crate::backend::wgpu::GpuDevice>> {
        self.inner.gpu.as_ref()
    }
    /// A device-resident buffer of `n_bytes` on this context's GPU (`Unsupported` on a CPU
    /// context). Tensors refer to it with [`crate::Tensor::device`] and
    /// [`crate::tensor::DeviceOut`].
    pub fn buffer(&self, n_bytes: u64) -> Result<DeviceBuffer> {
        #[cfg(feature = "wgpu")]
        {
            if let Some(g) = &self.inner.gpu {
                return Ok(DeviceBuffer::from_memory(
                    crate::backend::wgpu::buffers::create(g, n_bytes)?,
                ));
            }
        }
        let _ = n_bytes;
        bail!(
            Unsupported,
            "device buffers need a WGPU context (this context computes on the CPU)"
        )
    }
    /// The backend this context computes on.
    pub fn backend(&self) -> BackendKind {
        self.inner.backend
    }
    /// Every loss this context knows: builtins first, then plugins in load order.
    pub fn losses(&self) -> Vec<Arc<LossDef>> {
        let mut v: Vec<Arc<LossDef>> = builtins().to_vec();
        v.extend(self.plugin_losses());
        v
    }
    fn plugin_losses(&self) -> Vec<Arc<LossDef>> {
        match self.inner.plugins.read() {
            Ok(p) => p.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
    /// Look a loss up by id.
    pub fn find(&self, id: &str) -> Result<Arc<LossDef>> {
        if let Some(d) = builtins().iter().find(|d| d.spec.id.as_str() == id) {
            return Ok(d.clone());
        }
        if let Some(d) = self
            .plugin_losses()
            .into_iter()
            .find(|d| d.spec.id.as_str() == id)
        {
            return Ok(d);
        }
        bail!(
            UnknownLoss,
            "no loss '{id}' (see lk_loss_count/lk_loss_id_at or `losskit list`)"
        )
    }
    /// Register a loss. Fails on an invalid spec (`PluginInvalidSpec`) or an id clash with
    /// a builtin or an already registered loss (`PluginDuplicateId`).
    pub fn register(&self, def: LossDef) -> Result<()> {
        let mut p = write(&self.inner.plugins);
        check_new(&p, &[], &def)?;
        p.push(Arc::new(def));
        Ok(())
    }
    /// Register a plugin and its losses, all or nothing: when one spec is invalid or one id
    /// clashes (with a builtin, a registered loss or another loss of the same plugin),
    /// nothing is registered.
    pub fn register_plugin(&self, info: PluginInfo, defs: Vec<LossDef>) -> Result<Arc<PluginInfo>> {
        let mut p = write(&self.inner.plugins);
        for (k, d) in defs.iter().enumerate() {
            check_new(&p, &defs[..k], d)?;
        }
        let info = Arc::new(info);
        // Lock order: losses, then the plugin list (the only place taking both).
        let mut list = write(&self.inner.plugin_list);
        p.extend(defs.into_iter().map(Arc::new));
        list.push(info.clone());
        Ok(info)
    }
    /// The plugins loaded into this context, in load order.
    pub fn plugins(&self) -> Vec<Arc<PluginInfo>> {
        match self.inner.plugin_list.read() {
            Ok(p) => p.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
    /// A loss with default parameters.
    pub fn loss(&self, id: &str) -> Result<Loss> {
        let def = self.find(id)?;
        Ok(Loss {
            params: def.spec.default_params(),
            def,
            checked: AtomicBool::new(false),
            _ctx: self.inner.clone(),
        })
    }
}

/// Check that `def` has a valid spec and an id not used by a builtin, by `registered`
/// or by `pending` (losses of the same plugin before it).
fn check_new(registered: &[Arc<LossDef>], pending: &[LossDef], def: &LossDef) -> Result<()> {
    def.spec.validate().map_err(|e| {
        crate::error::LkError::new(crate::error::ErrorKind::PluginInvalidSpec, e.msg)
    })?;
    let id = def.spec.id.as_str();
    if builtins().iter().any(|d| d.spec.id.as_str() == id) {
        bail!(
            PluginDuplicateId,
            "loss id '{id}' clashes with a builtin loss"
        );
    }
    if registered.iter().any(|d| d.spec.id.as_str() == id) {
        bail!(
            PluginDuplicateId,
            "loss id '{id}' is already registered by a plugin"
        );
    }
    if pending.iter().any(|d| d.spec.id.as_str() == id) {
        bail!(
            PluginDuplicateId,
            "loss id '{id}' is declared twice by the plugin"
        );
    }
    Ok(())
}

/// A configured loss. Configure it with the setters, then call [`Loss::compute`] (which takes
/// `&self`, so one configured loss may compute from many threads at once).
///
/// Configuration is order-free: a setter checks the value against its own type and range
/// only; the checks that involve several parameters (the loss's
/// [`LossImpl::check_params`](crate::registry::LossImpl::check_params), for a plugin loss its
/// `create` callback) run in [`Loss::check`], which [`Loss::compute`] calls before anything
/// is launched or written.
pub struct Loss {
    def: Arc<LossDef>,
    params: Params,
    /// `params` passed the combination checks. Cleared by every set; a clone starts
    /// unchecked. Set by [`Loss::check`] through `&self` (any thread; a race only repeats
    /// the check).
    checked: AtomicBool,
    _ctx: Arc<ContextInner>,
}

impl Clone for Loss {
    fn clone(&self) -> Self {
        Loss {
            def: self.def.clone(),
            params: self.params.clone(),
            checked: AtomicBool::new(false),
            _ctx: self._ctx.clone(),
        }
    }
}

impl std::fmt::Debug for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loss")
            .field("id", &self.def.spec.id)
            .field("params", &self.params.values())
            .finish()
    }
}

impl Loss {
    /// The registry entry.
    pub fn def(&self) -> &Arc<LossDef> {
        &self.def
    }
    /// The id.
    pub fn id(&self) -> &str {
        self.def.spec.id.as_str()
    }
    /// The configured parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// Set a parameter, checked against its own type and range (the old value is kept on
    /// error). Combinations with other parameters are checked by [`Loss::check`], so the
    /// parameters may be set in any order.
    pub fn set(&mut self, name: &str, v: ParamValue) -> Result<()> {
        let id = self.def.spec.id.as_str();
        self.params.set(id, name, v)?;
        *self.checked.get_mut() = false;
        Ok(())
    }
    /// Set a float parameter.
    pub fn set_f64(&mut self, name: &str, v: f64) -> Result<()> {
        self.set(name, ParamValue::F64(v))
    }
    /// Set an integer parameter.
    pub fn set_i64(&mut self, name: &str, v: i64) -> Result<()> {
        self.set(name, ParamValue::I64(v))
    }
    /// Set a boolean parameter.
    pub fn set_bool(&mut self, name: &str, v: bool) -> Result<()> {
        self.set(name, ParamValue::Bool(v))
    }
    /// Set an enum parameter by choice name.
    pub fn set_enum(&mut self, name: &str, choice: &str) -> Result<()> {
        let id = self.def.spec.id.as_str();
        self.params.set_enum(id, name, choice)?;
        *self.checked.get_mut() = false;
        Ok(())
    }
    /// Set a parameter from text (`0.1`, `-100`, `true`, `gce`), as the CLI does.
    pub fn set_text(&mut self, name: &str, value: &str) -> Result<()> {
        let id = self.def.spec.id.as_str();
        let Some(i) = self.params.index(name) else {
            return self.set(name, ParamValue::Bool(false));
        };
        let v = self.params.specs()[i].parse(id, value)?;
        self.set(name, v)
    }
    /// The raw value of a parameter (`UnknownParam` when the loss has none of that name).
    pub fn get(&self, name: &str) -> Result<ParamValue> {
        self.params.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .params
                .specs()
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            err!(
                UnknownParam,
                "{}: no parameter '{name}' (parameters: {})",
                self.id(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }
    fn get_typed<T>(
        &self,
        name: &str,
        want: &str,
        pick: impl FnOnce(ParamValue) -> Option<T>,
    ) -> Result<T> {
        let v = self.get(name)?;
        pick(v).ok_or_else(|| {
            let actual = self
                .params
                .index(name)
                .map_or("?", |i| self.params.specs()[i].type_name());
            err!(
                InvalidParam,
                "{}: {name} is of type {actual}, not {want}",
                self.id()
            )
        })
    }
    /// A float parameter (`UnknownParam` for an unknown name, `InvalidParam` for another type).
    pub fn get_f64(&self, name: &str) -> Result<f64> {
        self.get_typed(name, "f64", |v| match v {
            ParamValue::F64(x) => Some(x),
            _ => None,
        })
    }
    /// An integer parameter (errors as [`Loss::get_f64`]).
    pub fn get_i64(&self, name: &str) -> Result<i64> {
        self.get_typed(name, "i64", |v| match v {
            ParamValue::I64(x) => Some(x),
            _ => None,
        })
    }
    /// A boolean parameter (errors as [`Loss::get_f64`]).
    pub fn get_bool(&self, name: &str) -> Result<bool> {
        self.get_typed(name, "bool", |v| match v {
            ParamValue::Bool(x) => Some(x),
            _ => None,
        })
    }
    /// The chosen name of an enum parameter (errors as [`Loss::get_f64`]). The text lives in
    /// the loss's registry entry (`def().spec.params`), so the C API can hand out a pointer
    /// that lives as long as that entry.
    pub fn get_enum(&self, name: &str) -> Result<&crate::registry::Text> {
        let k = self.get_typed(name, "enum", |v| match v {
            ParamValue::Enum(k) => Some(k),
            _ => None,
        })?;
        let spec = self
            .def
            .spec
            .params
            .iter()
            .find(|p| p.name.as_str() == name);
        match spec.map(|p| &p.kind) {
            Some(ParamKind::Enum(c)) if k < c.len() => Ok(&c[k]),
            _ => bail!(
                Internal,
                "{}: enum parameter {name} holds choice #{k}, which its spec lacks",
                self.id()
            ),
        }
    }
    /// Check the configured parameters together: the combinations that no single setter
    /// can check (e.g. `dpo`'s `loss_type = exo_pair` needs `label_smoothing > 0`; a plugin
    /// loss's `create` callback). [`Loss::compute`] runs it first, so a bad combination is
    /// refused before anything is launched or written, with the same error on every
    /// backend; the result is remembered until the next set. `InvalidParam` names the
    /// parameters involved.
    pub fn check(&self) -> Result<()> {
        if self.checked.load(Ordering::Acquire) {
            return Ok(());
        }
        self.def.imp.check_params(&self.def.spec, &self.params)?;
        self.checked.store(true, Ordering::Release);
        Ok(())
    }
    /// Compute the loss (and the gradients asked for) described by `c`.
    ///
    /// On a WGPU context the loss's GPU path runs (on AUTO only for device-buffer calls,
    /// see [`Context::new`]); a loss without one runs on the CPU, which `tracing` reports.
    /// Device tensors need the GPU path.
    pub fn compute(&self, c: &mut Compute<'_>) -> Result<()> {
        let spec = &self.def.spec;
        self.check()?;
        c.validate(spec)?;
        let id = spec.id.as_str();
        let device_args = c.inputs.iter().flatten().any(|t| t.is_device())
            || c.grads
                .iter()
                .any(|g| matches!(g, crate::tensor::Grad::Device(_)));
        #[cfg(feature = "wgpu")]
        let gpu = match &self._ctx.gpu {
            Some(dev) if self.def.has_gpu() => {
                let big = c.inputs.iter().flatten().next().map_or(0, |t| t.numel());
                let small =
                    self._ctx.auto && !device_args && auto_min_elements().is_none_or(|m| big < m);
                if small {
                    tracing::debug!(
                        "losskit: {id}: auto -> cpu (host tensors, {big} elements; LOSSKIT_AUTO_GPU_MIN_ELEMENTS = {:?})",
                        auto_min_elements()
                    );
                    None
                } else {
                    crate::backend::wgpu::check_device_args(dev, id, c)?;
                    Some(dev)
                }
            }
            Some(_) => {
                if device_args {
                    bail!(
                        Unsupported,
                        "{id}: has no GPU kernel, so it cannot read device buffers; pass host tensors (it then runs on the CPU)"
                    );
                }
                tracing::info!("losskit: {id}: no GPU kernel, computing on the CPU");
                None
            }
            None => None,
        };
        #[cfg(not(feature = "wgpu"))]
        let gpu: Option<()> = None;
        if device_args && gpu.is_none() {
            bail!(
                Unsupported,
                "{id}: device tensors (lk_buffer) need a WGPU context; this context computes on the CPU"
            );
        }
        // The plan step: what both backends refuse alike, and the values they both use.
        let mut plan = self.def.imp.plan(spec, &self.params, c)?;
        plan.built = true;
        c.plan = plan;
        #[cfg(feature = "wgpu")]
        if let Some(dev) = gpu {
            return crate::exec::gpu::run(&self.def, dev, &self.params, c);
        }
        self.def.imp.compute_cpu(spec, &self.params, c)
    }
}
