//! A plugin loss as a [`LossImpl`]: the spec read from the plugin's table, and the CPU
//! compute that calls the plugin's callback on contiguous copies and then applies the
//! reduction, the upstream gradient and the caller's layout itself.

use std::borrow::Cow;
use std::ffi::{CStr, c_char, c_void};
use std::sync::{Arc, Mutex};

use libloading::Library;

use super::abi::{
    LK_DOMAIN_BINARY, LK_DOMAIN_CLASS, LK_DOMAIN_LOG_PROB, LK_DOMAIN_NON_NEGATIVE,
    LK_DOMAIN_POSITIVE, LK_DOMAIN_REAL, LK_DOMAIN_UNIT, lk_device, lk_error_sink, lk_param_value,
    lk_plugin_call_v1, lk_plugin_compute_fn, lk_plugin_create_fn, lk_plugin_destroy_fn,
    lk_plugin_input_v1, lk_plugin_loss_v1, lk_plugin_param_v1, lk_tensor, min_size,
};
use crate::cabi::{LK_DEVICE_CPU, LK_DTYPE_CODE_FLOAT, LK_DTYPE_CODE_INT, lk_dtype};
use crate::compute::Compute;
use crate::error::{ErrorKind, LkError, Result};
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::params::{ParamKind, ParamSpec, ParamValue, Params};
use crate::reduction::{Reduction, RowReducer};
use crate::spec::{AuxSpec, Domain, InputSpec, LossSpec};
use crate::tensor::{DType, Grad, TensorMut, numel};
use crate::text::Text;
use crate::{bail, err};

/// Sanity limits on what one loss table may declare.
const MAX_INPUTS: usize = 64;
const MAX_PARAMS: usize = 256;
const MAX_CHOICES: usize = 256;
/// Limits of the GPU per-sample kernel contract v1 (`LkInfo`).
const GPU_MAX_LETTERS: usize = 8;
const GPU_MAX_PARAMS: usize = 16;
const GPU_MAX_INPUTS: usize = 32;
/// Plugin states kept per loss (distinct parameter settings).
const STATE_CACHE: usize = 8;

/// A C string from a plugin as UTF-8 text; None when NULL or not UTF-8.
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn c_text(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per the caller.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .ok()
        .map(str::to_string)
}

/// A plugin slice `(ptr, n)`; empty when n is 0 (ptr may then be NULL).
///
/// # Safety
/// A non-NULL `p` must point to `n` valid elements that outlive the returned slice.
unsafe fn c_slice<'a, T>(p: *const T, n: usize, what: &str, limit: usize) -> Result<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if n > limit {
        bail!(InvalidArg, "{what}: {n} entries (at most {limit})");
    }
    if p.is_null() {
        bail!(InvalidArg, "{what} is NULL with a count of {n}");
    }
    // SAFETY: non-NULL and `n` long per the caller.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

fn spec_err(e: LkError) -> LkError {
    LkError::new(ErrorKind::PluginInvalidSpec, e.msg)
}

/// A state from the plugin's `create`, destroyed (while the library is still loaded) when
/// the last user drops it.
struct State {
    ptr: *mut c_void,
    destroy: Option<lk_plugin_destroy_fn>,
    _lib: Arc<Library>,
}

// SAFETY: the plugin contract says a state may be used from any thread and concurrently by
// `compute` (read-only); `destroy` runs once, when no compute uses it any more.
unsafe impl Send for State {}
// SAFETY: as above.
unsafe impl Sync for State {}

impl Drop for State {
    fn drop(&mut self) {
        if let (Some(d), false) = (self.destroy, self.ptr.is_null()) {
            // SAFETY: a state from this plugin's create, destroyed exactly once, with the
            // library loaded (`_lib` is dropped after this).
            unsafe { d(self.ptr) };
        }
    }
}

/// One plugin loss: its callbacks, the library they live in, and a small state cache.
pub(crate) struct PluginLoss {
    id: String,
    plugin: String,
    path: String,
    create: Option<lk_plugin_create_fn>,
    destroy: Option<lk_plugin_destroy_fn>,
    compute: lk_plugin_compute_fn,
    /// Shape letters in order of first appearance over the inputs.
    letters: Vec<String>,
    states: Mutex<Vec<(Vec<u64>, Arc<State>)>>,
    /// Dropped last (field order): the callbacks above point into it.
    lib: Arc<Library>,
}

fn dtype_from(d: lk_dtype, what: &str) -> Result<DType> {
    match (d.code, d.bits, d.lanes) {
        (LK_DTYPE_CODE_FLOAT, 32, 1) => Ok(DType::F32),
        (LK_DTYPE_CODE_INT, 64, 1) => Ok(DType::I64),
        (c, b, l) => bail!(
            InvalidArg,
            "{what}: dtype {{code {c}, bits {b}, lanes {l}}} is neither f32 nor i64"
        ),
    }
}

fn is_letter(l: &str) -> bool {
    l.len() == 1 && l.chars().all(|c| c.is_ascii_uppercase())
}

/// # Safety
/// The table's pointers follow the plugin contract.
unsafe fn input_spec(t: &lk_plugin_input_v1, k: usize) -> Result<InputSpec> {
    // SAFETY: plugin contract.
    let name =
        unsafe { c_text(t.name) }.ok_or_else(|| err!(InvalidArg, "inputs[{k}] has no name"))?;
    let what = format!("input '{name}'");
    // SAFETY: plugin contract.
    let shape = unsafe { c_text(t.shape) }
        .ok_or_else(|| err!(InvalidArg, "{what} has no shape (use \"\" for a scalar)"))?;
    let dtype = dtype_from(t.dtype, &what)?;
    let domain = match t.domain {
        LK_DOMAIN_REAL => Domain::Real,
        LK_DOMAIN_POSITIVE => Domain::Positive,
        LK_DOMAIN_NON_NEGATIVE => Domain::NonNegative,
        LK_DOMAIN_UNIT => Domain::Unit,
        LK_DOMAIN_LOG_PROB => Domain::LogProb,
        LK_DOMAIN_BINARY => Domain::Binary,
        LK_DOMAIN_CLASS => {
            // SAFETY: plugin contract.
            let l = unsafe { c_text(t.class_letter) }
                .ok_or_else(|| err!(InvalidArg, "{what} has domain CLASS but no class_letter"))?;
            if !(is_letter(&l) || (!l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))) {
                bail!(
                    InvalidArg,
                    "{what}: class_letter '{l}' is not one upper-case letter or a number"
                );
            }
            Domain::Class(Text::new(&l))
        }
        d => bail!(InvalidArg, "{what}: unknown domain {d}"),
    };
    if dtype == DType::I64 && !matches!(domain, Domain::Class(_) | Domain::Binary) {
        bail!(
            InvalidArg,
            "{what} is i64, so its domain must be LK_DOMAIN_CLASS or LK_DOMAIN_BINARY"
        );
    }
    let mut s = if dtype == DType::F32 {
        InputSpec::f32(&name, &shape)
    } else {
        InputSpec::i64(&name, &shape)
    }
    .domain(domain);
    if t.differentiable {
        s = s.grad();
    }
    if t.optional {
        s = s.optional();
    }
    // SAFETY: plugin contract.
    if let Some(doc) = unsafe { c_text(t.doc) } {
        s = s.doc(&doc);
    }
    Ok(s)
}

/// # Safety
/// The table's pointers follow the plugin contract.
unsafe fn param_spec(t: &lk_plugin_param_v1, k: usize) -> Result<ParamSpec> {
    // SAFETY: plugin contract.
    let name =
        unsafe { c_text(t.name) }.ok_or_else(|| err!(InvalidArg, "params[{k}] has no name"))?;
    // SAFETY: plugin contract.
    let doc = unsafe { c_text(t.doc) }.unwrap_or_default();
    let (kind, default) = match t.type_ {
        0 => (
            ParamKind::F64 {
                min: t.min_f64,
                max: t.max_f64,
                min_open: t.min_open,
                max_open: t.max_open,
            },
            ParamValue::F64(t.default_f64),
        ),
        1 => {
            if t.min_i64 > t.max_i64 {
                bail!(
                    InvalidArg,
                    "parameter '{name}' has an empty range [{}, {}]",
                    t.min_i64,
                    t.max_i64
                );
            }
            (
                ParamKind::I64 {
                    min: t.min_i64,
                    max: t.max_i64,
                },
                ParamValue::I64(t.default_i64),
            )
        }
        2 => (ParamKind::Bool, ParamValue::Bool(t.default_bool)),
        3 => {
            let what = format!("parameter '{name}': choices");
            // SAFETY: plugin contract.
            let cs = unsafe { c_slice(t.choices, t.n_choices, &what, MAX_CHOICES) }?;
            let mut choices: Vec<Text> = Vec::with_capacity(cs.len());
            for (j, &c) in cs.iter().enumerate() {
                // SAFETY: plugin contract.
                let c = unsafe { c_text(c) }
                    .ok_or_else(|| err!(InvalidArg, "parameter '{name}': choice {j} is NULL"))?;
                let ok = !c.is_empty()
                    && c.chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
                if !ok {
                    bail!(
                        InvalidArg,
                        "parameter '{name}': choice '{c}' is not a lower-case name"
                    );
                }
                if choices.iter().any(|x| x.as_str() == c) {
                    bail!(InvalidArg, "parameter '{name}': choice '{c}' given twice");
                }
                choices.push(Text::new(&c));
            }
            (ParamKind::Enum(choices), ParamValue::Enum(t.default_choice))
        }
        ty => bail!(InvalidArg, "parameter '{name}' has unknown type {ty}"),
    };
    Ok(ParamSpec {
        name: Text::new(&name),
        kind,
        default,
        doc: Text::new(&doc),
    })
}

/// Shape letters in order of first appearance over the inputs (spec order).
fn letters_of(spec: &LossSpec) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for i in &spec.inputs {
        for d in i.dims() {
            if is_letter(d) && !v.iter().any(|x| x == d) {
                v.push(d.to_string());
            }
        }
    }
    v
}

/// Checks a plugin spec needs beyond [`LossSpec::validate`].
fn check_plugin_spec(spec: &LossSpec, wgsl: bool, letters: &[String]) -> Result<()> {
    let id = spec.id.as_str();
    if !spec.batch_level {
        for i in &spec.inputs {
            if i.differentiable && i.dims().first() != Some(&spec.rows.as_str()) {
                bail!(
                    InvalidArg,
                    "{id}: differentiable input '{}' [{}] of a per-sample loss must have the per-sample letter '{}' first (declare the loss batch_level otherwise)",
                    i.name,
                    i.shape,
                    spec.rows
                );
            }
        }
    }
    for i in &spec.inputs {
        if let Domain::Class(l) = &i.domain {
            if is_letter(l) && !letters.iter().any(|x| x == l.as_str()) {
                bail!(
                    InvalidArg,
                    "{id}: input '{}': class_letter '{l}' is not a shape letter of any input",
                    i.name
                );
            }
        }
    }
    for a in &spec.aux {
        for d in a.dims() {
            if is_letter(d) && !letters.iter().any(|x| x == d) {
                bail!(
                    InvalidArg,
                    "{id}: auxiliary output '{}' uses letter '{d}', which no input has",
                    a.name
                );
            }
        }
    }
    if wgsl {
        if spec.batch_level {
            bail!(
                InvalidArg,
                "{id}: wgsl_source is only for per-sample losses (the per-sample kernel contract)"
            );
        }
        if letters.len() > GPU_MAX_LETTERS
            || spec.params.len() > GPU_MAX_PARAMS
            || spec.inputs.len() > GPU_MAX_INPUTS
        {
            bail!(
                InvalidArg,
                "{id}: a WGSL kernel supports at most {GPU_MAX_LETTERS} shape letters, {GPU_MAX_PARAMS} parameters and {GPU_MAX_INPUTS} inputs ({} / {} / {} declared)",
                letters.len(),
                spec.params.len(),
                spec.inputs.len()
            );
        }
    }
    Ok(())
}

fn key(params: &Params) -> Vec<u64> {
    params
        .values()
        .iter()
        .map(|v| match *v {
            ParamValue::F64(x) => x.to_bits(),
            ParamValue::I64(x) => x as u64,
            ParamValue::Bool(b) => b as u64,
            ParamValue::Enum(k) => k as u64,
        })
        .collect()
}

fn c_values(params: &Params) -> Vec<lk_param_value> {
    params
        .values()
        .iter()
        .map(|v| match *v {
            ParamValue::F64(x) => lk_param_value {
                f64: x,
                ..Default::default()
            },
            ParamValue::I64(x) => lk_param_value {
                i64: x,
                ..Default::default()
            },
            ParamValue::Bool(b) => lk_param_value {
                b,
                ..Default::default()
            },
            ParamValue::Enum(k) => lk_param_value {
                i64: k as i64,
                ..Default::default()
            },
        })
        .collect()
}

/// Contiguous data of one input, borrowed when already contiguous.
enum Flat<'a> {
    F32(Cow<'a, [f32]>),
    I64(Cow<'a, [i64]>),
}

/// Write `src` (contiguous, `shape`) into `dst` (with its row stride), row `i` times
/// `scale(i)`.
fn scatter(dst: &mut TensorMut<'_>, src: &[f32], scale: impl Fn(usize) -> f32) {
    let n = numel(&dst.shape);
    if n == 0 {
        return;
    }
    let rows = crate::tensor::rows(&dst.shape);
    let len = crate::tensor::row_len(&dst.shape);
    for i in 0..rows {
        let s = scale(i);
        let d = &mut dst.data[i * dst.row_stride..i * dst.row_stride + len];
        for (o, &g) in d.iter_mut().zip(&src[i * len..(i + 1) * len]) {
            *o = g * s;
        }
    }
}

impl PluginLoss {
    /// Read one loss table into a registry entry.
    ///
    /// # Safety
    /// `t` is at least `min_size::LOSS` bytes and its pointers follow the plugin contract.
    pub(crate) unsafe fn from_table(
        t: &lk_plugin_loss_v1,
        plugin: &str,
        path: &str,
        lib: Arc<Library>,
    ) -> Result<LossDef> {
        // SAFETY: plugin contract.
        let id =
            unsafe { c_text(t.id) }.ok_or_else(|| err!(PluginInvalidSpec, "the loss has no id"))?;
        let inv = |e: LkError| spec_err(e.context(&format!("'{id}'")));
        // SAFETY: plugin contract.
        let summary =
            unsafe { c_text(t.summary) }.ok_or_else(|| inv(err!(InvalidArg, "no summary")))?;
        // SAFETY: plugin contract.
        let family = unsafe { c_text(t.family) }.unwrap_or_else(|| "plugin".into());
        // SAFETY: plugin contract.
        let source = unsafe { c_text(t.source) }.unwrap_or_default();
        // SAFETY: plugin contract.
        let rows = unsafe { c_text(t.rows) }.unwrap_or_else(|| "N".into());
        let Some(compute) = t.compute else {
            return Err(inv(err!(InvalidArg, "compute callback is NULL")));
        };
        // The field exists only when struct_size covers it.
        let wgsl = if t.struct_size as usize >= min_size::LOSS_WGSL && !t.wgsl_source.is_null() {
            // SAFETY: covered by struct_size; a NUL-terminated string (plugin contract).
            let s = unsafe { c_text(t.wgsl_source) };
            Some(s.ok_or_else(|| inv(err!(InvalidArg, "wgsl_source is not UTF-8")))?)
        } else {
            None
        };
        let mut spec = LossSpec::new(&id, &family, &summary, &source).rows(&rows);
        if t.batch_level {
            spec = spec.batch_level();
        }
        // SAFETY: plugin contract.
        let ins = unsafe { c_slice(t.inputs, t.n_inputs, "inputs", MAX_INPUTS) }.map_err(inv)?;
        for (k, i) in ins.iter().enumerate() {
            // SAFETY: plugin contract.
            spec = spec.input(unsafe { input_spec(i, k) }.map_err(inv)?);
        }
        // SAFETY: plugin contract.
        let ps = unsafe { c_slice(t.params, t.n_params, "params", MAX_PARAMS) }.map_err(inv)?;
        for (k, p) in ps.iter().enumerate() {
            // SAFETY: plugin contract.
            spec = spec.param(unsafe { param_spec(p, k) }.map_err(inv)?);
        }
        // SAFETY: plugin contract.
        let ax = unsafe { c_slice(t.aux, t.n_aux, "aux", MAX_INPUTS) }.map_err(inv)?;
        for (k, a) in ax.iter().enumerate() {
            // SAFETY: plugin contract.
            let name = unsafe { c_text(a.name) }
                .ok_or_else(|| inv(err!(InvalidArg, "aux[{k}] has no name")))?;
            // SAFETY: plugin contract.
            let shape = unsafe { c_text(a.shape) }
                .ok_or_else(|| inv(err!(InvalidArg, "aux '{name}' has no shape")))?;
            // SAFETY: plugin contract.
            let doc = unsafe { c_text(a.doc) }.unwrap_or_default();
            spec = spec.aux(AuxSpec::new(&name, &shape, &doc));
        }
        spec.validate().map_err(spec_err)?;
        let letters = letters_of(&spec);
        check_plugin_spec(&spec, wgsl.is_some(), &letters).map_err(spec_err)?;
        // The kernel, checked against the per-sample contract now, when the plugin brings one.
        let gpu = match wgsl {
            Some(src) => {
                let k = SampleKernel::owned(src);
                #[cfg(feature = "wgpu")]
                crate::exec::gpu::sample::built(&spec, &k).map_err(|e| {
                    spec_err(err!(
                        InvalidArg,
                        "wgsl_source does not follow the per-sample kernel contract: {}",
                        e.msg
                    ))
                })?;
                GpuKernel::Sample(k)
            }
            None => GpuKernel::None,
        };
        let imp = PluginLoss {
            id: id.clone(),
            plugin: plugin.to_string(),
            path: path.to_string(),
            create: t.create,
            destroy: t.destroy,
            compute,
            letters,
            states: Mutex::new(Vec::new()),
            lib,
        };
        // A plugin whose create rejects its own defaults is broken: refuse it at load.
        imp.state(&spec.default_params()).map_err(|e| {
            LkError::new(
                ErrorKind::PluginFailed,
                format!("checking the default parameters: {}", e.msg),
            )
        })?;
        Ok(LossDef::new(spec, imp).gpu(gpu))
    }

    /// An error from a callback that returned `rc`, with the plugin's own message.
    fn callback_error(&self, what: &str, rc: i32, sink: &lk_error_sink) -> LkError {
        let kind = match rc {
            5 => ErrorKind::InvalidParam,
            8 => ErrorKind::InvalidTarget,
            9 => ErrorKind::Unsupported,
            11 => ErrorKind::InvalidInput,
            102 => ErrorKind::OutOfMemory,
            _ => ErrorKind::PluginFailed,
        };
        LkError::new(
            kind,
            format!(
                "{} (plugin '{}', {}): {what} failed (status {rc}): {}",
                self.id,
                self.plugin,
                self.path,
                sink.take()
            ),
        )
    }

    /// The plugin state for `params` (created and cached on first use). None when the
    /// plugin has no `create`.
    fn state(&self, params: &Params) -> Result<Option<Arc<State>>> {
        let Some(create) = self.create else {
            return Ok(None);
        };
        let k = key(params);
        let mut cache = match self.states.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some((_, s)) = cache.iter().find(|(kk, _)| *kk == k) {
            return Ok(Some(s.clone()));
        }
        let vals = c_values(params);
        let sink = lk_error_sink::new();
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: the plugin's create with the documented arguments, all live for the call.
        let rc = unsafe {
            create(
                vals.as_ptr(),
                vals.len(),
                &mut ptr,
                &sink as *const _ as *mut _,
            )
        };
        if rc != 0 {
            return Err(self.callback_error("create", rc, &sink));
        }
        let s = Arc::new(State {
            ptr,
            destroy: self.destroy,
            _lib: self.lib.clone(),
        });
        if cache.len() >= STATE_CACHE {
            cache.remove(0);
        }
        cache.push((k, s.clone()));
        Ok(Some(s))
    }

    /// Check i64 inputs against their domains, so the plugin never sees a bad index.
    fn check_int_inputs(&self, spec: &LossSpec, params: &Params, c: &Compute<'_>) -> Result<()> {
        let id = spec.id.as_str();
        let ignore = match params.get("ignore_index") {
            Some(ParamValue::I64(v)) => Some(v),
            _ => None,
        };
        for (k, is) in spec.inputs.iter().enumerate() {
            let Some(t) = c.get(k) else { continue };
            if t.dtype() != DType::I64 {
                continue;
            }
            let v = t.to_i64_vec();
            match &is.domain {
                Domain::Class(l) => {
                    let n = l.parse::<usize>().unwrap_or_else(|_| c.dim(l)) as u64;
                    for (i, &y) in v.iter().enumerate() {
                        if Some(y) != ignore && (y < 0 || y as u64 >= n) {
                            bail!(
                                InvalidTarget,
                                "{id}: {}[{i}] = {y} is outside [0, {n}){}",
                                is.name,
                                match ignore {
                                    Some(g) => format!(" and is not ignore_index ({g})"),
                                    None => String::new(),
                                }
                            );
                        }
                    }
                }
                _ => {
                    if let Some((i, y)) = v.iter().enumerate().find(|(_, y)| !(0..=1).contains(*y))
                    {
                        bail!(InvalidInput, "{id}: {}[{i}] = {y} is not 0 or 1", is.name);
                    }
                }
            }
        }
        Ok(())
    }
}

impl LossImpl for PluginLoss {
    /// The plugin's own combination check is its `create` on the whole configuration (the
    /// state is cached for the compute that follows); the setters only check each value
    /// against the range the plugin declared.
    fn check_params(&self, _spec: &LossSpec, params: &Params) -> Result<()> {
        self.state(params).map(|_| ())
    }

    fn compute_cpu(&self, spec: &LossSpec, params: &Params, c: &mut Compute<'_>) -> Result<()> {
        self.check_int_inputs(spec, params, c)?;
        let state = self.state(params)?;
        let n_in = spec.inputs.len();
        let rows = if spec.batch_level {
            1
        } else {
            c.dim(spec.rows.as_str())
        };
        // Requested auxiliary outputs, in spec order.
        let mut aux_out: Vec<Option<TensorMut<'_>>> = spec
            .aux
            .iter()
            .map(|a| c.take_aux(a.name.as_str()))
            .collect();
        if !spec.batch_level && rows == 0 {
            // Nothing to compute: sum 0, mean 0 (documented), no gradient rows.
            RowReducer::new(c.reduction, c.grad_output, 0.0).write_loss(&[], c.loss);
            for a in aux_out.iter_mut().flatten() {
                a.fill(0.0);
            }
            return Ok(());
        }

        let flats: Vec<Option<Flat<'_>>> = c
            .inputs
            .iter()
            .map(|t| {
                t.as_ref().map(|t| {
                    let n = t.numel();
                    let contiguous = t.row_stride == t.row_len() || t.rows() <= 1;
                    match (t.dtype(), contiguous) {
                        (DType::F32, true) => {
                            Flat::F32(Cow::Borrowed(&t.f32_data().unwrap_or(&[])[..n]))
                        }
                        (DType::F32, false) => Flat::F32(Cow::Owned(t.to_f32_vec())),
                        (DType::I64, true) => {
                            Flat::I64(Cow::Borrowed(&t.i64_data().unwrap_or(&[])[..n]))
                        }
                        (DType::I64, false) => Flat::I64(Cow::Owned(t.to_i64_vec())),
                    }
                })
            })
            .collect();
        let shapes: Vec<Vec<i64>> = c
            .inputs
            .iter()
            .enumerate()
            .map(|(k, t)| match t {
                Some(t) => t.shape.iter().map(|&d| d as i64).collect(),
                None => spec.inputs[k]
                    .dims()
                    .iter()
                    .map(|l| l.parse::<i64>().unwrap_or(c.dim(l) as i64))
                    .collect(),
            })
            .collect();
        let tensors: Vec<lk_tensor> = (0..n_in)
            .map(|k| {
                let (data, dtype) = match &flats[k] {
                    Some(Flat::F32(d)) => (d.as_ptr() as *mut c_void, (LK_DTYPE_CODE_FLOAT, 32)),
                    Some(Flat::I64(d)) => (d.as_ptr() as *mut c_void, (LK_DTYPE_CODE_INT, 64)),
                    None => (
                        std::ptr::null_mut(),
                        match spec.inputs[k].dtype {
                            DType::F32 => (LK_DTYPE_CODE_FLOAT, 32),
                            DType::I64 => (LK_DTYPE_CODE_INT, 64),
                        },
                    ),
                };
                lk_tensor {
                    data,
                    device: lk_device {
                        device_type: LK_DEVICE_CPU,
                        device_id: 0,
                    },
                    ndim: shapes[k].len() as i32,
                    dtype: lk_dtype {
                        code: dtype.0,
                        bits: dtype.1,
                        lanes: 1,
                    },
                    shape: shapes[k].as_ptr(),
                    strides: std::ptr::null(),
                    byte_offset: 0,
                }
            })
            .collect();
        let dims: Vec<i64> = self.letters.iter().map(|l| c.dim(l) as i64).collect();

        let mut loss = vec![0.0f32; rows];
        let mut grads: Vec<Option<Vec<f32>>> = (0..n_in)
            .map(|k| {
                c.wants_grad(k)
                    .then(|| vec![0.0f32; c.get(k).map_or(0, |t| t.numel())])
            })
            .collect();
        let grad_ptrs: Vec<*mut f32> = grads
            .iter_mut()
            .map(|g| g.as_mut().map_or(std::ptr::null_mut(), |g| g.as_mut_ptr()))
            .collect();
        let mut aux: Vec<Option<Vec<f32>>> = aux_out
            .iter()
            .map(|a| a.as_ref().map(|a| vec![0.0f32; numel(&a.shape)]))
            .collect();
        let aux_ptrs: Vec<*mut f32> = aux
            .iter_mut()
            .map(|a| a.as_mut().map_or(std::ptr::null_mut(), |a| a.as_mut_ptr()))
            .collect();
        let call = lk_plugin_call_v1 {
            struct_size: std::mem::size_of::<lk_plugin_call_v1>() as u32,
            n_inputs: n_in,
            inputs: tensors.as_ptr(),
            n_dims: dims.len(),
            dims: dims.as_ptr(),
            rows,
            loss: loss.as_mut_ptr(),
            grads: grad_ptrs.as_ptr(),
            n_aux: aux_ptrs.len(),
            aux: aux_ptrs.as_ptr(),
        };
        let vals = c_values(params);
        let sink = lk_error_sink::new();
        let st = state
            .as_ref()
            .map_or(std::ptr::null(), |s| s.ptr as *const c_void);
        // SAFETY: the plugin's compute with the documented arguments: every pointer in
        // `call` refers to buffers above, which outlive the call and have the sizes the
        // contract states; the library is loaded (self.lib).
        let rc = unsafe {
            (self.compute)(
                st,
                vals.as_ptr(),
                vals.len(),
                &call,
                &sink as *const _ as *mut _,
            )
        };
        drop(tensors);
        drop(flats);
        if rc != 0 {
            return Err(self.callback_error("compute", rc, &sink));
        }

        // Reduction and upstream gradient, once, here.
        let (reducer, batch_scale) = if spec.batch_level {
            let go = c
                .grad_output
                .and_then(|g| g.first())
                .copied()
                .unwrap_or(1.0);
            c.loss[0] = loss[0];
            (None, go)
        } else {
            let r = RowReducer::new(c.reduction, c.grad_output, rows as f64);
            if c.reduction == Reduction::None {
                c.loss.copy_from_slice(&loss);
            } else {
                // The sum in f64, in row order; write_loss divides it for mean.
                let total: f64 = loss.iter().map(|&v| v as f64).sum();
                r.write_loss(&[total], c.loss);
            }
            (Some(r), 1.0)
        };
        for (k, g) in grads.iter().enumerate() {
            let (Some(g), Grad::Out(o)) = (g, &mut c.grads[k]) else {
                continue;
            };
            match &reducer {
                Some(r) => scatter(o, g, |i| r.grad_scale(i) as f32),
                None => scatter(o, g, |_| batch_scale),
            }
        }
        for (a, src) in aux_out.iter_mut().zip(&aux) {
            if let (Some(a), Some(src)) = (a, src) {
                scatter(a, src, |_| 1.0);
            }
        }
        Ok(())
    }
}
