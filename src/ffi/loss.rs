//! Losses: create, configure, compute, free.

use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

use super::context::lk_context;
use super::tensor::{build_compute, lk_aux_output, lk_tensor};
use super::{guard, guard_or, lk_status, ref_arg, str_arg};
use crate::context::Loss;
use crate::error::Result;
use crate::params::ParamValue;
use crate::reduction::Reduction;
use crate::{bail, err};

/// Reduction of per-sample losses, for lk_loss_compute.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lk_reduction {
    /// Per-sample losses (length N, or B for pairwise losses).
    LK_REDUCTION_NONE = 0,
    /// Weighted mean over contributing samples (ignored rows excluded). The default.
    LK_REDUCTION_MEAN = 1,
    /// Sum over samples.
    LK_REDUCTION_SUM = 2,
}

/// A configured loss. Opaque; create with lk_loss_create, free with lk_loss_free.
pub struct lk_loss {
    pub(crate) inner: Loss,
    poisoned: AtomicBool,
}

fn check_poison(l: &lk_loss) -> Result<()> {
    if l.poisoned.load(Ordering::Relaxed) {
        bail!(
            Panic,
            "{}: this loss handle is poisoned by an earlier internal panic; free it",
            l.inner.id()
        );
    }
    Ok(())
}

/// Create a loss by id with its default parameters.
///
/// @param ctx The context (borrowed for the call; the loss keeps what it needs alive).
/// @param id A loss id such as "cross_entropy" (borrowed for the call).
/// @param out_loss Receives the loss on LK_OK (untouched otherwise). Owned by the caller;
///        free with lk_loss_free.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS.
///
/// # Safety
/// `ctx` must be NULL or live, `id` NULL or a NUL-terminated string, `out_loss` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_create(
    ctx: *const lk_context,
    id: *const c_char,
    out_loss: *mut *mut lk_loss,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let ctx = unsafe { ref_arg(ctx, "lk_loss_create: ctx") }?;
        // SAFETY: caller contract.
        let id = unsafe { str_arg(id, "lk_loss_create: id") }?;
        if out_loss.is_null() {
            bail!(NullArg, "lk_loss_create: out_loss is NULL");
        }
        let loss = ctx.inner.loss(id)?;
        let p = Box::into_raw(Box::new(lk_loss {
            inner: loss,
            poisoned: AtomicBool::new(false),
        }));
        // SAFETY: checked non-NULL; caller provides writable storage.
        unsafe { *out_loss = p };
        Ok(())
    })
}

/// Free a loss. NULL is a no-op.
///
/// @param loss A loss from lk_loss_create, or NULL. Invalid after the call.
///
/// # Safety
/// `loss` must be NULL or a live loss not in use by another thread, and not used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_free(loss: *mut lk_loss) {
    guard_or((), || {
        if !loss.is_null() {
            // SAFETY: ownership passed from lk_loss_create.
            drop(unsafe { Box::from_raw(loss) });
        }
    })
}

/// The id of a loss.
///
/// @param loss A live loss.
/// @return A NUL-terminated string valid while the loss lives, or NULL when loss is NULL.
///
/// # Safety
/// `loss` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_id(loss: *const lk_loss) -> *const c_char {
    guard_or(std::ptr::null(), || {
        // SAFETY: caller contract.
        match unsafe { loss.as_ref() } {
            Some(l) => l.inner.def().spec.id.as_c_str().as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// # Safety
/// `loss` NULL or live and not shared during the call; `name` NULL or a C string.
unsafe fn set_param(
    loss: *mut lk_loss,
    name: *const c_char,
    f: impl FnOnce(&mut Loss, &str) -> Result<()>,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let l = unsafe { loss.as_mut() }.ok_or_else(|| err!(NullArg, "loss is NULL"))?;
        check_poison(l)?;
        // SAFETY: caller contract.
        let name = unsafe { str_arg(name, "parameter name") }?;
        f(&mut l.inner, name)
    })
}

/// Set a float parameter.
///
/// The value is checked against the parameter's own type and range; on error the previous
/// value is kept (never clamped). Conditions involving other parameters are checked by
/// lk_loss_check and lk_loss_compute, so parameters may be set in any order.
///
/// @param loss The loss (must not be computing on another thread).
/// @param name Parameter name (borrowed for the call).
/// @param value The value.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM.
///
/// # Safety
/// `loss` must be NULL or live and unused by other threads; `name` NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_set_f64(
    loss: *mut lk_loss,
    name: *const c_char,
    value: f64,
) -> lk_status {
    // SAFETY: forwarded caller contract.
    unsafe { set_param(loss, name, |l, n| l.set(n, ParamValue::F64(value))) }
}

/// Set an integer parameter (e.g. ignore_index). See lk_loss_set_f64.
///
/// @param loss The loss.
/// @param name Parameter name.
/// @param value The value.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM.
///
/// # Safety
/// As lk_loss_set_f64.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_set_i64(
    loss: *mut lk_loss,
    name: *const c_char,
    value: i64,
) -> lk_status {
    // SAFETY: forwarded caller contract.
    unsafe { set_param(loss, name, |l, n| l.set(n, ParamValue::I64(value))) }
}

/// Set a boolean parameter. See lk_loss_set_f64.
///
/// @param loss The loss.
/// @param name Parameter name.
/// @param value The value.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM.
///
/// # Safety
/// As lk_loss_set_f64.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_set_bool(
    loss: *mut lk_loss,
    name: *const c_char,
    value: bool,
) -> lk_status {
    // SAFETY: forwarded caller contract.
    unsafe { set_param(loss, name, |l, n| l.set(n, ParamValue::Bool(value))) }
}

/// Set an enum parameter by the name of its choice (e.g. "gce"). See lk_loss_set_f64.
///
/// @param loss The loss.
/// @param name Parameter name.
/// @param value Choice name (borrowed for the call).
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM.
///
/// # Safety
/// As lk_loss_set_f64; `value` NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_set_enum(
    loss: *mut lk_loss,
    name: *const c_char,
    value: *const c_char,
) -> lk_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        set_param(loss, name, |l, n| {
            let v = str_arg(value, "enum value")?;
            l.set_enum(n, v)
        })
    }
}

/// # Safety
/// `loss` NULL or live; `name` NULL or a C string; `out_value` NULL or writable.
unsafe fn get_param<T>(
    loss: *const lk_loss,
    name: *const c_char,
    out_value: *mut T,
    read: impl FnOnce(&Loss, &str) -> Result<T>,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let l = unsafe { ref_arg(loss, "loss") }?;
        // SAFETY: caller contract.
        let name = unsafe { str_arg(name, "parameter name") }?;
        if out_value.is_null() {
            bail!(NullArg, "out_value is NULL");
        }
        let v = read(&l.inner, name)?;
        // SAFETY: checked non-NULL; the caller provides writable storage.
        unsafe { out_value.write(v) };
        Ok(())
    })
}

/// Read a float parameter's current value.
///
/// @param loss The loss.
/// @param name Parameter name.
/// @param out_value Receives the value on LK_OK.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM (not a float).
///
/// # Safety
/// `loss` NULL or live; `name` NULL or a C string; `out_value` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_get_f64(
    loss: *const lk_loss,
    name: *const c_char,
    out_value: *mut f64,
) -> lk_status {
    // SAFETY: forwarded caller contract.
    unsafe { get_param(loss, name, out_value, |l, n| l.get_f64(n)) }
}

/// Read an integer parameter's current value.
///
/// @param loss The loss.
/// @param name Parameter name.
/// @param out_value Receives the value on LK_OK.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM (not an integer).
///
/// # Safety
/// As lk_loss_get_f64.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_get_i64(
    loss: *const lk_loss,
    name: *const c_char,
    out_value: *mut i64,
) -> lk_status {
    // SAFETY: forwarded caller contract.
    unsafe { get_param(loss, name, out_value, |l, n| l.get_i64(n)) }
}

/// Read a boolean parameter's current value.
///
/// @param loss The loss.
/// @param name Parameter name.
/// @param out_value Receives the value on LK_OK.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM (not a boolean).
///
/// # Safety
/// As lk_loss_get_f64.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_get_bool(
    loss: *const lk_loss,
    name: *const c_char,
    out_value: *mut bool,
) -> lk_status {
    // SAFETY: forwarded caller contract.
    unsafe { get_param(loss, name, out_value, |l, n| l.get_bool(n)) }
}

/// Read an enum parameter's current choice, by name (e.g. "sigmoid").
///
/// @param loss The loss.
/// @param name Parameter name.
/// @param out_value Receives the choice name on LK_OK: a NUL-terminated string that lives
///        as long as the loss's registry entry, like the introspection strings (forever for
///        a builtin; for a plugin loss, as long as its context or a loss created from it).
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM (not an enum).
///
/// # Safety
/// As lk_loss_get_f64.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_get_enum(
    loss: *const lk_loss,
    name: *const c_char,
    out_value: *mut *const c_char,
) -> lk_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        get_param(loss, name, out_value, |l, n| {
            l.get_enum(n).map(|t| t.as_c_str().as_ptr())
        })
    }
}

/// Check the loss's parameters together.
///
/// Each lk_loss_set_* checks a value against its own type and range only, so parameters
/// may be set in any order; the conditions that involve several parameters (e.g. dpo's
/// loss_type "exo_pair" needs label_smoothing > 0) are checked here, and by lk_loss_compute
/// before it reads or writes anything. The result is the status and message such a compute
/// would give for the configuration.
///
/// @param loss The configured loss (const: may be used by several threads at once).
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_PARAM (a combination the loss refuses;
///         the message names the parameters), LK_ERR_PLUGIN_FAILED, LK_ERR_PANIC.
///
/// # Safety
/// `loss` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_check(loss: *const lk_loss) -> lk_status {
    // SAFETY: caller contract.
    let l = match unsafe { ref_arg(loss, "lk_loss_check: loss") } {
        Ok(l) => l,
        Err(e) => return super::fail(&e),
    };
    let status = guard(|| {
        check_poison(l)?;
        l.inner.check()
    });
    if status == lk_status::LK_ERR_PANIC {
        l.poisoned.store(true, Ordering::Relaxed);
    }
    status
}

/// Compute a loss and, when asked, the gradients of its differentiable inputs.
///
/// One call computes the reduced loss and the gradient of that reduced loss with respect to
/// each input whose gradient slot has non-NULL data, multiplied by `grad_output` (the
/// upstream gradient of autodiff systems; 1 when NULL).
///
/// Every argument is validated before anything is written: the parameter combination (as
/// lk_loss_check), NULLs, dtypes, ranks, shapes against the loss's spec, target ranges,
/// weights, overlapping buffers. Nothing is written on error.
///
/// A gradient may be written over its own input (in place) by passing the same view as the
/// input and as its gradient; this is the fast path of cross_entropy (the logits are
/// overwritten by their gradient). Any other overlap between an output and another buffer
/// is LK_ERR_INVALID_ARG.
///
/// NaN and infinity in float inputs are not checked and propagate as in the common
/// frameworks (a NaN logit gives a NaN loss for its row).
///
/// @param loss The configured loss (const: may be used by several threads at once).
/// @param inputs `n_inputs` tensors in the loss's input order (lk_loss_describe_input). An
///        absent optional input is a tensor whose data is NULL; trailing optional inputs
///        may be omitted by passing a smaller n_inputs. Borrowed for the call.
/// @param n_inputs Number of tensors in `inputs`.
/// @param reduction One of lk_reduction.
/// @param grad_output NULL, or the upstream gradient: f32 with 1 element for mean/sum, or
///        one per sample for none.
/// @param loss_out Receives the loss: f32 with 1 element (rank 0 or 1) for mean/sum, or one
///        per sample for none. Required.
/// @param grads NULL, or `n_grads` tensors: slot k receives the gradient of input k, shaped
///        like it (f32). A slot with NULL data is not computed.
/// @param n_grads Number of slots in `grads` (at most n_inputs).
/// @param aux NULL, or `n_aux` named auxiliary outputs to fill (lk_loss_describe_aux).
/// @param n_aux Number of entries in `aux`.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG, LK_ERR_INVALID_PARAM (a parameter
///         combination, see lk_loss_check), LK_ERR_SHAPE_MISMATCH, LK_ERR_DTYPE,
///         LK_ERR_INVALID_TARGET, LK_ERR_INVALID_INPUT, LK_ERR_UNSUPPORTED,
///         LK_ERR_BUFFER_TOO_SMALL, LK_ERR_BACKEND_UNAVAILABLE, LK_ERR_GPU,
///         LK_ERR_PLUGIN_FAILED, LK_ERR_PANIC.
///
/// # Safety
/// Pointers must be NULL or valid for the call: arrays of the given lengths, tensors whose
/// shape/strides hold `ndim` values and whose data covers the described elements.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lk_loss_compute(
    loss: *const lk_loss,
    inputs: *const lk_tensor,
    n_inputs: usize,
    reduction: i32,
    grad_output: *const lk_tensor,
    loss_out: *const lk_tensor,
    grads: *const lk_tensor,
    n_grads: usize,
    aux: *const lk_aux_output,
    n_aux: usize,
) -> lk_status {
    // SAFETY: caller contract.
    let l = match unsafe { ref_arg(loss, "lk_loss_compute: loss") } {
        Ok(l) => l,
        Err(e) => return super::fail(&e),
    };
    let status = guard(|| {
        check_poison(l)?;
        let id = l.inner.id();
        // The parameter combination first, as lk_loss_check gives it.
        l.inner.check()?;
        if inputs.is_null() && n_inputs > 0 {
            bail!(NullArg, "{id}: inputs is NULL");
        }
        if grads.is_null() && n_grads > 0 {
            bail!(NullArg, "{id}: grads is NULL with n_grads = {n_grads}");
        }
        if aux.is_null() && n_aux > 0 {
            bail!(NullArg, "{id}: aux is NULL with n_aux = {n_aux}");
        }
        // SAFETY: caller contract.
        let loss_out = unsafe { ref_arg(loss_out, &format!("{id}: loss_out")) }?;
        let reduction = Reduction::from_i32(reduction).map_err(|e| e.context(id))?;
        let ins: &[lk_tensor] = if n_inputs == 0 {
            &[]
        } else {
            // SAFETY: non-NULL array of n_inputs per the caller.
            unsafe { std::slice::from_raw_parts(inputs, n_inputs) }
        };
        let gs: &[lk_tensor] = if n_grads == 0 {
            &[]
        } else {
            // SAFETY: non-NULL array of n_grads per the caller.
            unsafe { std::slice::from_raw_parts(grads, n_grads) }
        };
        let ax: &[lk_aux_output] = if n_aux == 0 {
            &[]
        } else {
            // SAFETY: non-NULL array of n_aux per the caller.
            unsafe { std::slice::from_raw_parts(aux, n_aux) }
        };
        // SAFETY: caller contract.
        let go = unsafe { grad_output.as_ref() };
        // SAFETY: caller contract on every view.
        let mut c = unsafe { build_compute(id, ins, reduction, go, loss_out, gs, ax) }?;
        l.inner.compute(&mut c)
    });
    if status == lk_status::LK_ERR_PANIC {
        l.poisoned.store(true, Ordering::Relaxed);
    }
    status
}
