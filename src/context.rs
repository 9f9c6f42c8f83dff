//! The safe Rust API: [`Context`] (backend + registry view) and [`Loss`] (a configured loss).

use std::sync::{Arc, RwLock};

use crate::backend::BackendKind;
use crate::bail;
use crate::compute::Compute;
use crate::error::Result;
use crate::params::{ParamValue, Params};
use crate::plugin::PluginInfo;
use crate::registry::{LossDef, builtins};

/// Shared state of a context; losses keep it alive.
pub(crate) struct ContextInner {
    backend: BackendKind,
    plugins: RwLock<Vec<Arc<LossDef>>>,
    plugin_list: RwLock<Vec<Arc<PluginInfo>>>,
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(p) => p,
        Err(p) => p.into_inner(),
    }
}

/// A context: a backend choice and the set of losses it knows (builtins, then the plugins
/// loaded into it). Cheap to clone; safe to share across threads.
#[derive(Clone)]
pub struct Context {
    inner: Arc<ContextInner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("backend", &self.inner.backend)
            .finish()
    }
}

/// True when `kind` can be used on this machine.
pub fn backend_available(kind: BackendKind) -> bool {
    match kind {
        BackendKind::Auto | BackendKind::Cpu => true,
        BackendKind::Wgpu => false,
    }
}

impl Context {
    /// A context on `backend`. `Wgpu` fails with `BackendUnavailable` when no adapter exists;
    /// `Auto` falls back to the CPU.
    pub fn new(backend: BackendKind) -> Result<Self> {
        let backend = match backend {
            BackendKind::Wgpu if !backend_available(BackendKind::Wgpu) => bail!(
                BackendUnavailable,
                "the wgpu backend is not available in this build of losskit"
            ),
            BackendKind::Auto => {
                tracing::debug!("losskit: backend auto -> cpu (no GPU backend available)");
                BackendKind::Cpu
            }
            b => b,
        };
        Ok(Context {
            inner: Arc::new(ContextInner {
                backend,
                plugins: RwLock::new(Vec::new()),
                plugin_list: RwLock::new(Vec::new()),
            }),
        })
    }
    /// A CPU context.
    pub fn cpu() -> Self {
        Context {
            inner: Arc::new(ContextInner {
                backend: BackendKind::Cpu,
                plugins: RwLock::new(Vec::new()),
                plugin_list: RwLock::new(Vec::new()),
            }),
        }
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
#[derive(Clone)]
pub struct Loss {
    def: Arc<LossDef>,
    params: Params,
    _ctx: Arc<ContextInner>,
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
    /// Set a parameter (checked against its type and range; the old value is kept on error).
    pub fn set(&mut self, name: &str, v: ParamValue) -> Result<()> {
        let id = self.def.spec.id.as_str();
        let mut p = self.params.clone();
        p.set(id, name, v)?;
        self.def.imp.check_params(&self.def.spec, &p)?;
        self.params = p;
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
        let mut p = self.params.clone();
        p.set_enum(id, name, choice)?;
        self.def.imp.check_params(&self.def.spec, &p)?;
        self.params = p;
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
    /// Compute the loss (and the gradients asked for) described by `c`.
    pub fn compute(&self, c: &mut Compute<'_>) -> Result<()> {
        c.validate(&self.def.spec)?;
        self.def.imp.compute_cpu(&self.def.spec, &self.params, c)
    }
}
