//! The plugin ABI, version 1: the `#[repr(C)]` tables a plugin and the host exchange.
//!
//! These types are emitted into `include/losskit.h` (the section whose items start with
//! `lk_plugin_` / `lk_host_api_` / `LK_PLUGIN_`). A plugin includes that header but does
//! not link liblosskit: it reaches the host only through [`lk_host_api_v1`]. A plugin
//! written in Rust uses these same types (`losskit::plugin::abi`).
//!
//! Versioning: every table starts with `abi_version` and/or `struct_size` and only ever
//! grows at its end. The host accepts `abi_version == LK_PLUGIN_ABI_VERSION` and a
//! `struct_size` at least the size of the first version of the table, and reads a field
//! added later only when `struct_size` covers it. The element types of the arrays
//! (`lk_plugin_input_v1`, `lk_plugin_param_v1`, `lk_plugin_aux_v1`) are frozen; a later
//! version adds new arrays at the end of `lk_plugin_loss_v1` instead of growing them.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};

pub use crate::ffi::tensor::{lk_device, lk_dtype, lk_tensor};

/// PLUGIN ABI (for plugin authors). The plugin ABI version this header describes; a plugin
/// puts it in lk_plugin_v1.abi_version. The host refuses any other value with
/// LK_ERR_PLUGIN_ABI. It changes only on a breaking change of the plugin tables; additions
/// at the end of a table are not breaking and are detected through `struct_size`.
pub const LK_PLUGIN_ABI_VERSION: u32 = 1;

/// Plugin log level for lk_host_api_v1.log: an error.
pub const LK_LOG_ERROR: i32 = 0;
/// Plugin log level: a warning.
pub const LK_LOG_WARN: i32 = 1;
/// Plugin log level: information.
pub const LK_LOG_INFO: i32 = 2;
/// Plugin log level: debugging detail.
pub const LK_LOG_DEBUG: i32 = 3;

/// Input domain (lk_plugin_input_v1.domain): any finite real.
pub const LK_DOMAIN_REAL: i32 = 0;
/// Input domain: strictly positive reals.
pub const LK_DOMAIN_POSITIVE: i32 = 1;
/// Input domain: reals >= 0.
pub const LK_DOMAIN_NON_NEGATIVE: i32 = 2;
/// Input domain: reals in (0, 1) (probabilities).
pub const LK_DOMAIN_UNIT: i32 = 3;
/// Input domain: reals < 0 (log-probabilities).
pub const LK_DOMAIN_LOG_PROB: i32 = 4;
/// Input domain: 0 or 1 (f32 or i64). For an i64 input the host checks it.
pub const LK_DOMAIN_BINARY: i32 = 5;
/// Input domain: a class index in [0, size of `class_letter`) (i64 only; the host checks it,
/// also accepting the value of an i64 parameter named `ignore_index` when the loss has one).
pub const LK_DOMAIN_CLASS: i32 = 6;

/// PLUGIN ABI v1. Where a plugin callback reports an error message. Opaque; pass it to
/// lk_host_api_v1.set_error. Valid only during the callback that received it.
#[cfg_attr(not(feature = "plugins"), allow(dead_code))]
pub struct lk_error_sink {
    pub(crate) msg: std::sync::Mutex<Option<String>>,
}

#[cfg_attr(not(feature = "plugins"), allow(dead_code))]
impl lk_error_sink {
    /// An empty sink.
    pub(crate) fn new() -> Self {
        lk_error_sink {
            msg: std::sync::Mutex::new(None),
        }
    }
}

/// PLUGIN ABI v1. The host's functions, handed to the plugin's entry point. The table is static: a
/// plugin may keep the pointer for as long as it is loaded. Read a field only when
/// `struct_size` covers it (fields are only ever appended).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_host_api_v1 {
    /// LK_PLUGIN_ABI_VERSION of the host.
    pub abi_version: u32,
    /// sizeof(lk_host_api_v1) as the host was built.
    pub struct_size: u32,
    /// The host library's version number (LK_VERSION_NUMBER of the host).
    pub losskit_version: u32,
    /// Record `msg` (copied; UTF-8, NUL-terminated) as the error of the callback that
    /// received `sink`; the host prefixes the plugin and loss names. The last call wins.
    /// NULL arguments are ignored. Safe to call from any thread.
    pub set_error: Option<unsafe extern "C" fn(sink: *mut lk_error_sink, msg: *const c_char)>,
    /// Log `msg` (copied) at `level` (LK_LOG_ERROR..LK_LOG_DEBUG) through the host's
    /// logging (Rust `tracing`, target "losskit::plugin"). Safe to call from any thread.
    pub log: Option<unsafe extern "C" fn(level: i32, msg: *const c_char)>,
}

/// PLUGIN ABI v1. One parameter value handed to the callbacks, in the loss's parameter order. Only the
/// field of the parameter's type is meaningful: `f64` for LK_PARAM_F64, `i64` for
/// LK_PARAM_I64 and for LK_PARAM_ENUM (the index of the choice), `b` for LK_PARAM_BOOL.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct lk_param_value {
    /// Value of an f64 parameter.
    pub f64: f64,
    /// Value of an i64 parameter, or the choice index of an enum parameter.
    pub i64: i64,
    /// Value of a bool parameter.
    pub b: bool,
}

/// PLUGIN ABI v1. One input of a plugin loss (frozen element type of lk_plugin_loss_v1.inputs).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_plugin_input_v1 {
    /// snake_case name, e.g. "logits".
    pub name: *const c_char,
    /// Shape letters joined by commas, e.g. "N,C" ("" for a scalar). Letters are single
    /// upper-case letters; a number is a fixed size.
    pub shape: *const c_char,
    /// One-line description (may be NULL).
    pub doc: *const c_char,
    /// Element type: f32 {LK_DTYPE_CODE_FLOAT, 32, 1} or i64 {LK_DTYPE_CODE_INT, 64, 1}.
    pub dtype: lk_dtype,
    /// true when the loss returns a gradient for this input (f32 only). For a per-sample
    /// loss its shape must start with the per-sample letter (`rows`).
    pub differentiable: bool,
    /// true when the input may be absent (its tensor then has data NULL).
    pub optional: bool,
    /// Valid values: one of LK_DOMAIN_* (used to make random test inputs; i64 inputs must
    /// be LK_DOMAIN_CLASS or LK_DOMAIN_BINARY and are checked by the host).
    pub domain: i32,
    /// For LK_DOMAIN_CLASS: the shape letter giving the number of classes, e.g. "C".
    pub class_letter: *const c_char,
}

/// PLUGIN ABI v1. One parameter of a plugin loss (frozen element type of lk_plugin_loss_v1.params).
/// Only the fields of its type are read.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_plugin_param_v1 {
    /// snake_case name, e.g. "gamma".
    pub name: *const c_char,
    /// One-line description (may be NULL).
    pub doc: *const c_char,
    /// One of lk_param_type (LK_PARAM_F64, LK_PARAM_I64, LK_PARAM_BOOL, LK_PARAM_ENUM).
    pub type_: i32,
    /// Default of an f64 parameter (inside the range, finite).
    pub default_f64: f64,
    /// Lower bound of an f64 parameter (may be -INFINITY).
    pub min_f64: f64,
    /// Upper bound of an f64 parameter (may be INFINITY).
    pub max_f64: f64,
    /// true when min_f64 itself is excluded.
    pub min_open: bool,
    /// true when max_f64 itself is excluded.
    pub max_open: bool,
    /// Default of an i64 parameter.
    pub default_i64: i64,
    /// Inclusive lower bound of an i64 parameter.
    pub min_i64: i64,
    /// Inclusive upper bound of an i64 parameter.
    pub max_i64: i64,
    /// Default of a bool parameter.
    pub default_bool: bool,
    /// Choices of an enum parameter (lower-case names); n_choices entries.
    pub choices: *const *const c_char,
    /// Number of choices of an enum parameter.
    pub n_choices: usize,
    /// Index of the default choice of an enum parameter.
    pub default_choice: usize,
}

/// PLUGIN ABI v1. One auxiliary output of a plugin loss (frozen element type of lk_plugin_loss_v1.aux).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_plugin_aux_v1 {
    /// snake_case name.
    pub name: *const c_char,
    /// Shape letters, e.g. "N" (letters of the inputs only).
    pub shape: *const c_char,
    /// One-line description (may be NULL).
    pub doc: *const c_char,
}

/// PLUGIN ABI v1. What one compute callback reads and writes. The host has already checked everything
/// the spec states (presence, dtypes, ranks, shape letters, i64 domains), and every
/// tensor below is contiguous row-major host memory (strides NULL, byte_offset 0).
///
/// Per-sample loss (`batch_level` false): write the UNSCALED per-row loss l_i into
/// `loss[i]` for i < rows, and for each differentiable input k with `grads[k]` non-NULL,
/// the UNSCALED per-row gradient d l_i / d x_k into `grads[k]` (same shape as input k;
/// row i of the gradient holds the derivative of l_i only). The host then applies the
/// reduction (none/mean/sum; mean divides by rows), the upstream gradient and the
/// caller's layout; the plugin never sees them.
///
/// Batch-level loss: write the scalar loss into `loss[0]` and its gradients into `grads`;
/// the host scales them by the upstream gradient (mean and sum both return the scalar).
///
/// Output buffers are zero-filled by the host before the call and belong to the host;
/// the plugin must not keep any pointer after returning.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_plugin_call_v1 {
    /// sizeof(lk_plugin_call_v1) as the host was built (fields are only appended).
    pub struct_size: u32,
    /// Number of entries in `inputs`, `grads` (= the loss's n_inputs).
    pub n_inputs: usize,
    /// The inputs in spec order; an absent optional input has data NULL.
    pub inputs: *const lk_tensor,
    /// Number of entries in `dims`.
    pub n_dims: usize,
    /// Sizes of the spec's shape letters in order of first appearance over the inputs
    /// (0 for a letter used only by absent inputs), the same order as the GPU `lk.dims`.
    pub dims: *const i64,
    /// Rows of the per-sample output (the size of the `rows` letter); 1 for batch-level.
    pub rows: usize,
    /// `rows` floats: the unscaled per-row losses (batch-level: the scalar in `loss[0]`).
    pub loss: *mut f32,
    /// `n_inputs` pointers: `grads[k]` is NULL when the gradient of input k is not wanted,
    /// else a zero-filled contiguous buffer shaped like input k.
    pub grads: *const *mut f32,
    /// Number of entries in `aux` (= the loss's n_aux).
    pub n_aux: usize,
    /// `n_aux` pointers: `aux[j]` is NULL when auxiliary output j is not wanted, else a
    /// zero-filled contiguous buffer of its spec shape. Auxiliary outputs are not scaled.
    pub aux: *const *mut f32,
}

/// PLUGIN ABI v1. Create a per-configuration state from the parameter values (spec order). Optional
/// (NULL: the state is NULL). Called when a configuration is first checked (lk_loss_check)
/// or computed, never by lk_loss_set_*, so it sees the whole configuration whatever the
/// order of the sets (and once at load with the defaults, as a check); the host caches a
/// few states and calls `destroy` when it evicts one or unloads. Return 0 and set
/// `*out_state`, or a non-zero status (LK_ERR_INVALID_PARAM for a rejected combination,
/// naming the parameters involved) with host->set_error.
pub type lk_plugin_create_fn = unsafe extern "C" fn(
    params: *const lk_param_value,
    n_params: usize,
    out_state: *mut *mut c_void,
    err: *mut lk_error_sink,
) -> i32;

/// PLUGIN ABI v1. Destroy a state from `create`. Optional; not called for a NULL state.
pub type lk_plugin_destroy_fn = unsafe extern "C" fn(state: *mut c_void);

/// PLUGIN ABI v1. Compute on the CPU (see lk_plugin_call_v1 for exactly what to write). May run on
/// several threads at once with the same state: treat `state` as read-only. Return 0, or
/// a non-zero status with host->set_error. LK_ERR_INVALID_INPUT, LK_ERR_INVALID_TARGET,
/// LK_ERR_INVALID_PARAM, LK_ERR_UNSUPPORTED and LK_ERR_OUT_OF_MEMORY reach the caller as
/// they are; any other value becomes LK_ERR_PLUGIN_FAILED. The plugin's message is
/// passed on either way. NaN in the results is not an error: it propagates.
pub type lk_plugin_compute_fn = unsafe extern "C" fn(
    state: *const c_void,
    params: *const lk_param_value,
    n_params: usize,
    call: *const lk_plugin_call_v1,
    err: *mut lk_error_sink,
) -> i32;

/// PLUGIN ABI v1. One loss of a plugin: the same spec data as a builtin, the CPU callbacks and an
/// optional WGSL kernel. Fields are only ever appended; set `struct_size` to
/// sizeof(lk_plugin_loss_v1).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_plugin_loss_v1 {
    /// sizeof(lk_plugin_loss_v1) as the plugin was built.
    pub struct_size: u32,
    /// Stable snake_case id (must not clash with a builtin or another plugin's loss).
    pub id: *const c_char,
    /// Family, e.g. "classification" (may be NULL: "plugin").
    pub family: *const c_char,
    /// One-line summary.
    pub summary: *const c_char,
    /// Source paper (and official code) (may be NULL).
    pub source: *const c_char,
    /// Shape letter of the per-sample dimension, e.g. "N" (NULL: "N").
    pub rows: *const c_char,
    /// true: one scalar over the batch (reduction none is refused).
    pub batch_level: bool,
    /// Number of inputs (at least 1).
    pub n_inputs: usize,
    /// The inputs, in the order lk_loss_compute takes them.
    pub inputs: *const lk_plugin_input_v1,
    /// Number of parameters.
    pub n_params: usize,
    /// The parameters (may be NULL when n_params is 0).
    pub params: *const lk_plugin_param_v1,
    /// Number of auxiliary outputs.
    pub n_aux: usize,
    /// The auxiliary outputs (may be NULL when n_aux is 0).
    pub aux: *const lk_plugin_aux_v1,
    /// Optional (NULL: no state), see lk_plugin_create_fn.
    pub create: Option<
        unsafe extern "C" fn(
            params: *const lk_param_value,
            n_params: usize,
            out_state: *mut *mut c_void,
            err: *mut lk_error_sink,
        ) -> i32,
    >,
    /// Optional, see lk_plugin_destroy_fn. Not called for a NULL state.
    pub destroy: Option<unsafe extern "C" fn(state: *mut c_void)>,
    /// Required, see lk_plugin_compute_fn.
    pub compute: Option<
        unsafe extern "C" fn(
            state: *const c_void,
            params: *const lk_param_value,
            n_params: usize,
            call: *const lk_plugin_call_v1,
            err: *mut lk_error_sink,
        ) -> i32,
    >,
    /// Optional WGSL source of a per-sample kernel following the per-sample kernel
    /// contract v1 (plugins/README.md), or NULL. Only for per-sample losses. Without it the
    /// GPU backend runs `compute` on the CPU.
    pub wgsl_source: *const c_char,
}

/// PLUGIN ABI v1. What a plugin's entry point returns: a static descriptor owned by the plugin, valid
/// while the plugin is loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_plugin_v1 {
    /// LK_PLUGIN_ABI_VERSION the plugin was built against.
    pub abi_version: u32,
    /// sizeof(lk_plugin_v1) as the plugin was built.
    pub struct_size: u32,
    /// Plugin name, e.g. "asl".
    pub name: *const c_char,
    /// Plugin version text, e.g. "1.0.0".
    pub version: *const c_char,
    /// Number of losses.
    pub n_losses: usize,
    /// `n_losses` pointers to loss tables.
    pub losses: *const *const lk_plugin_loss_v1,
}

/// PLUGIN ABI v1. The plugin entry point, exported as `lk_plugin_init` (or `lk_plugin_<stem>_init`).
/// Check `host->abi_version`, set `*out_plugin` to a static descriptor and return 0; or
/// return non-zero with host->set_error(err, ...) (the load then fails with
/// LK_ERR_PLUGIN_FAILED and the plugin's message). Loading a plugin runs this code.
pub type lk_plugin_init_fn = unsafe extern "C" fn(
    host: *const lk_host_api_v1,
    err: *mut lk_error_sink,
    out_plugin: *mut *const lk_plugin_v1,
) -> i32;

/// Smallest `struct_size` accepted for each table (its first version).
#[cfg(feature = "plugins")]
pub(crate) mod min_size {
    use std::mem::{offset_of, size_of};

    /// lk_plugin_v1 up to and including `losses`.
    pub const PLUGIN: usize = offset_of!(super::lk_plugin_v1, losses) + size_of::<*const u8>();
    /// lk_plugin_loss_v1 up to and including `compute`.
    pub const LOSS: usize =
        offset_of!(super::lk_plugin_loss_v1, compute) + size_of::<Option<fn()>>();
    /// End of `wgsl_source`.
    pub const LOSS_WGSL: usize =
        offset_of!(super::lk_plugin_loss_v1, wgsl_source) + size_of::<*const u8>();
}
