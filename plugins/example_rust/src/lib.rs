//! A losskit plugin written in Rust: the log-cosh regression loss, with a scale `delta`.
//!
//! For predictions `p [N, D]`, targets `t [N, D]` and an optional per-row weight `w [N]`
//! (default 1), with `r = (p - t) / delta`:
//!
//! `l_i = w_i * sum_d delta^2 * log(cosh(r_id))`,
//! `d l_i / d p_id = w_i * delta * tanh(r_id)`, `d l_i / d t_id = -w_i * delta * tanh(r_id)`.
//!
//! It behaves like `(p - t)^2 / 2` for small residuals and like `delta * |p - t|` for large
//! ones, and is twice differentiable everywhere. `delta = 1` is the plain log-cosh loss.
//! `log(cosh(r))` is evaluated as `|r| + log1p(exp(-2|r|)) - log(2)`, which never
//! overflows. Source: P. Saleh, A. K. Md. E. Saleh, "Statistical Properties of the log-cosh
//! Loss Function Used in Machine Learning", arXiv:2208.04564.
//!
//! The plugin uses only the ABI types of `losskit::plugin::abi` (a dependency with
//! `default-features = false`); it talks to the host through the `lk_host_api_v1` table.
//! Its file is `liblogcosh.so`, so the host finds the entry point
//! `lk_plugin_logcosh_init` from the file name.

use std::ffi::{CStr, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicPtr, Ordering};

use losskit::ffi::introspect::lk_param_type::LK_PARAM_F64;
use losskit::ffi::status::lk_status;
use losskit::ffi::tensor::LK_DTYPE_CODE_FLOAT;
use losskit::plugin::abi::{
    LK_DOMAIN_NON_NEGATIVE, LK_DOMAIN_REAL, LK_PLUGIN_ABI_VERSION, lk_dtype, lk_error_sink,
    lk_host_api_v1, lk_param_value, lk_plugin_call_v1, lk_plugin_input_v1, lk_plugin_loss_v1,
    lk_plugin_param_v1, lk_plugin_v1,
};

/// Plugin tables hold raw pointers to static data; this wrapper lets them be statics.
#[repr(transparent)]
struct Static<T>(T);
// SAFETY: the wrapped tables are immutable and only point to other immutable statics.
unsafe impl<T> Sync for Static<T> {}

static HOST: AtomicPtr<lk_host_api_v1> = AtomicPtr::new(null_mut());

const F32: lk_dtype = lk_dtype {
    code: LK_DTYPE_CODE_FLOAT,
    bits: 32,
    lanes: 1,
};

const fn input(
    name: &'static CStr,
    doc: &'static CStr,
    differentiable: bool,
    optional: bool,
    shape: &'static CStr,
    domain: i32,
) -> lk_plugin_input_v1 {
    lk_plugin_input_v1 {
        name: name.as_ptr(),
        shape: shape.as_ptr(),
        doc: doc.as_ptr(),
        dtype: F32,
        differentiable,
        optional,
        domain,
        class_letter: null(),
    }
}

static INPUTS: Static<[lk_plugin_input_v1; 3]> = Static([
    input(c"pred", c"predictions", true, false, c"N,D", LK_DOMAIN_REAL),
    input(
        c"target",
        c"regression targets",
        true,
        false,
        c"N,D",
        LK_DOMAIN_REAL,
    ),
    input(
        c"sample_weight",
        c"per-row weight, default 1",
        false,
        true,
        c"N",
        LK_DOMAIN_NON_NEGATIVE,
    ),
]);

static PARAMS: Static<[lk_plugin_param_v1; 1]> = Static([lk_plugin_param_v1 {
    name: c"delta".as_ptr(),
    doc: c"scale: quadratic below about delta, linear (slope delta) above".as_ptr(),
    type_: LK_PARAM_F64 as i32,
    default_f64: 1.0,
    min_f64: 0.0,
    max_f64: f64::INFINITY,
    min_open: true,
    max_open: true,
    default_i64: 0,
    min_i64: 0,
    max_i64: 0,
    default_bool: false,
    choices: null(),
    n_choices: 0,
    default_choice: 0,
}]);

/// The same loss for the GPU backend (per-sample kernel contract v1).
static WGSL: &CStr = c"
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> sample_weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_pred: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_target: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= lk.rows) { return; }
  let d_n = lk_dim(LK_DIM_D);
  let delta = lk_param(LK_P_DELTA);
  var w = 1.0;
  if (lk_present(LK_IN_SAMPLE_WEIGHT)) { w = sample_weight[i]; }
  var acc = 0.0;
  for (var d = 0u; d < d_n; d = d + 1u) {
    let k = i * d_n + d;
    let r = (pred[k] - targets[k]) / delta;
    let a = abs(r);
    acc = acc + delta * delta * (a + log(1.0 + exp(-2.0 * a)) - 0.6931472);
    let g = w * delta * tanh(r);
    grad_pred[k] = g;
    grad_target[k] = -g;
  }
  lk_loss[i] = w * acc;
}
";

static LOSS: Static<lk_plugin_loss_v1> = Static(lk_plugin_loss_v1 {
    struct_size: std::mem::size_of::<lk_plugin_loss_v1>() as u32,
    id: c"log_cosh".as_ptr(),
    family: c"regression".as_ptr(),
    summary: c"Log-cosh regression loss with scale delta: quadratic near 0, linear in the tails"
        .as_ptr(),
    source: c"Saleh and Saleh, Statistical Properties of the log-cosh Loss Function Used in Machine Learning, arXiv:2208.04564"
        .as_ptr(),
    rows: c"N".as_ptr(),
    batch_level: false,
    n_inputs: 3,
    inputs: &INPUTS.0 as *const lk_plugin_input_v1,
    n_params: 1,
    params: &PARAMS.0 as *const lk_plugin_param_v1,
    n_aux: 0,
    aux: null(),
    create: None,
    destroy: None,
    compute: Some(compute),
    wgsl_source: WGSL.as_ptr(),
});

static LOSSES: Static<[*const lk_plugin_loss_v1; 1]> = Static([&LOSS.0]);

static PLUGIN: Static<lk_plugin_v1> = Static(lk_plugin_v1 {
    abi_version: LK_PLUGIN_ABI_VERSION,
    struct_size: std::mem::size_of::<lk_plugin_v1>() as u32,
    name: c"logcosh".as_ptr(),
    version: c"1.0.0".as_ptr(),
    n_losses: 1,
    losses: &LOSSES.0 as *const *const lk_plugin_loss_v1,
});

fn set_error(err: *mut lk_error_sink, msg: &str) {
    let host = HOST.load(Ordering::Acquire);
    let Ok(msg) = std::ffi::CString::new(msg) else {
        return;
    };
    // SAFETY: HOST was set by the entry point to the host's static table.
    if let Some(f) = unsafe { host.as_ref() }.and_then(|h| h.set_error) {
        // SAFETY: the sink is the one this callback received; msg is NUL-terminated.
        unsafe { f(err, msg.as_ptr()) };
    }
}

fn log_cosh(r: f64) -> f64 {
    let a = r.abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

/// # Safety
/// `call` follows the lk_plugin_call_v1 contract for this loss's spec.
unsafe fn run(params: &[lk_param_value], call: &lk_plugin_call_v1) -> Result<(), String> {
    if params.len() != 1 || call.n_inputs != 3 {
        return Err("log_cosh: unexpected call layout".into());
    }
    let delta = params[0].f64;
    let n = call.rows;
    // SAFETY: n_dims entries; the letters are N then D.
    let dims = unsafe { std::slice::from_raw_parts(call.dims, call.n_dims) };
    let d_n = dims[1] as usize;
    // SAFETY: n_inputs tensors and n_inputs gradient slots (contract).
    let (ins, grads) = unsafe {
        (
            std::slice::from_raw_parts(call.inputs, call.n_inputs),
            std::slice::from_raw_parts(call.grads, call.n_inputs),
        )
    };
    let len = n * d_n;
    // SAFETY: pred and target are present, contiguous, [N, D] f32.
    let (p, t) = unsafe {
        (
            std::slice::from_raw_parts(ins[0].data as *const f32, len),
            std::slice::from_raw_parts(ins[1].data as *const f32, len),
        )
    };
    let w: Option<&[f32]> = (!ins[2].data.is_null())
        // SAFETY: a present sample_weight is contiguous [N] f32.
        .then(|| unsafe { std::slice::from_raw_parts(ins[2].data as *const f32, n) });
    // SAFETY: `rows` floats.
    let loss = unsafe { std::slice::from_raw_parts_mut(call.loss, n) };
    let grad = |k: usize| -> Option<&mut [f32]> {
        // SAFETY: a non-NULL gradient slot is a zero-filled buffer shaped like its input.
        (!grads[k].is_null()).then(|| unsafe { std::slice::from_raw_parts_mut(grads[k], len) })
    };
    let (mut gp, mut gt) = (grad(0), grad(1));
    for i in 0..n {
        let wi = w.map_or(1.0, |w| w[i] as f64);
        let mut acc = 0.0f64;
        for k in i * d_n..(i + 1) * d_n {
            let r = (p[k] as f64 - t[k] as f64) / delta;
            acc += delta * delta * log_cosh(r);
            let g = wi * delta * r.tanh();
            if let Some(gp) = gp.as_deref_mut() {
                gp[k] = g as f32;
            }
            if let Some(gt) = gt.as_deref_mut() {
                gt[k] = -g as f32;
            }
        }
        loss[i] = (wi * acc) as f32;
    }
    Ok(())
}

unsafe extern "C" fn compute(
    _state: *const c_void,
    params: *const lk_param_value,
    n_params: usize,
    call: *const lk_plugin_call_v1,
    err: *mut lk_error_sink,
) -> i32 {
    // A panic must not unwind into the host: catch it and report an error instead.
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host passes n_params values and a valid call (plugin contract).
        unsafe { run(std::slice::from_raw_parts(params, n_params), &*call) }
    }));
    match r {
        Ok(Ok(())) => lk_status::LK_OK as i32,
        Ok(Err(m)) => {
            set_error(err, &m);
            lk_status::LK_ERR_PLUGIN_FAILED as i32
        }
        Err(_) => {
            set_error(err, "log_cosh: internal panic");
            lk_status::LK_ERR_PLUGIN_FAILED as i32
        }
    }
}

/// The entry point (found from the file name liblogcosh.so).
///
/// # Safety
/// Called by the losskit host with its API table, an error sink and an out-pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_plugin_logcosh_init(
    host: *const lk_host_api_v1,
    _err: *mut lk_error_sink,
    out: *mut *const lk_plugin_v1,
) -> i32 {
    // SAFETY: the host passes its static table.
    match unsafe { host.as_ref() } {
        Some(h) if h.abi_version == LK_PLUGIN_ABI_VERSION => {}
        _ => return lk_status::LK_ERR_PLUGIN_ABI as i32,
    }
    HOST.store(host as *mut lk_host_api_v1, Ordering::Release);
    // SAFETY: the host passes a writable out-pointer.
    unsafe { *out = &PLUGIN.0 };
    lk_status::LK_OK as i32
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_cosh_is_stable() {
        assert!((super::log_cosh(0.0)).abs() < 1e-15);
        assert!((super::log_cosh(1000.0) - (1000.0 - std::f64::consts::LN_2)).abs() < 1e-9);
        assert!((super::log_cosh(0.5) - 0.5f64.cosh().ln()).abs() < 1e-15);
    }
}
