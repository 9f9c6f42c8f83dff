//! The safe Rust API: [`Context`] (backend + registry view) and [`Loss`] (a configured loss).

use std::sync::{Arc, RwLock};

use crate::backend::BackendKind;
use crate::bail;
use crate::compute::Compute;
use crate::error::Result;
use crate::params::{ParamValue, Params};
use crate::registry::{LossDef, builtins};

/// Shared state of a context; losses keep it alive.
pub(crate) struct ContextInner {
    backend: BackendKind,
    plugins: RwLock<Vec<Arc<LossDef>>>,
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
            }),
        })
    }
    /// A CPU context.
    pub fn cpu() -> Self {
        Context {
            inner: Arc::new(ContextInner {
                backend: BackendKind::Cpu,
                plugins: RwLock::new(Vec::new()),
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
    /// Register a loss (used by the plugin host). Fails on an invalid spec or an id clash.
    pub fn register(&self, def: LossDef) -> Result<()> {
        def.spec.validate().map_err(|e| {
            crate::error::LkError::new(crate::error::ErrorKind::PluginInvalidSpec, e.msg)
        })?;
        let mut p = match self.inner.plugins.write() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        let id = def.spec.id.as_str();
        if builtins().iter().any(|d| d.spec.id.as_str() == id) {
            bail!(
                PluginDuplicateId,
                "loss id '{id}' clashes with a builtin loss"
            );
        }
        if p.iter().any(|d| d.spec.id.as_str() == id) {
            bail!(
                PluginDuplicateId,
                "loss id '{id}' is already registered by a plugin"
            );
        }
        p.push(Arc::new(def));
        Ok(())
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
