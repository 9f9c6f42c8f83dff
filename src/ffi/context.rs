//! Contexts and backends.

use std::ffi::c_char;

use super::{guard, guard_or, lk_status, ref_arg, str_arg};
use crate::backend::BackendKind;
use crate::context::{Context, backend_available};
use crate::err;

/// Backend choice for lk_context_create.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lk_backend {
    /// The GPU when a real adapter exists and the problem is large enough, else the CPU.
    LK_BACKEND_AUTO = 0,
    /// The CPU (always available).
    LK_BACKEND_CPU = 1,
    /// wgpu compute shaders (Vulkan, Metal, DX12).
    LK_BACKEND_WGPU = 2,
}

/// A context: a backend and the losses it knows (builtins plus loaded plugins).
/// Opaque; create with lk_context_create, free with lk_context_free.
pub struct lk_context {
    pub(crate) inner: Context,
    /// The adapter identity, kept so the strings handed out live as long as the context.
    pub(crate) info: Option<crate::backend::DeviceInfo>,
}

/// Create a context on a backend.
///
/// LK_BACKEND_WGPU creates a GPU device (one per context) or fails with
/// LK_ERR_BACKEND_UNAVAILABLE and wgpu's reason (lk_last_error_message) when no adapter can
/// be used. Adapters are chosen high-performance first; the environment variable
/// LOSSKIT_ADAPTER=<substring> picks one by name; a software adapter (Mesa lavapipe) is
/// used only when LOSSKIT_ALLOW_SOFTWARE_ADAPTER=1. LOSSKIT_GPU_MAX_BINDING_BYTES lowers the
/// largest range bound at once (larger inputs are processed in row chunks).
/// LK_BACKEND_AUTO never fails for lack of a GPU: with a hardware GPU it runs calls whose
/// tensors are lk_buffer device buffers on the GPU and calls with host tensors on the CPU
/// (copying host data to the GPU and back costs more than computing a memory-bound loss on
/// the CPU); LOSSKIT_AUTO_GPU_MIN_ELEMENTS=n sends host calls of at least n elements to the
/// GPU too. Without a hardware GPU, everything runs on the CPU.
///
/// @param backend One of lk_backend (an int32_t; other values give LK_ERR_INVALID_ARG).
/// @param out_ctx Receives the new context on LK_OK (untouched otherwise). Owned by the
///        caller; free with lk_context_free. Safe to share between threads.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG, LK_ERR_BACKEND_UNAVAILABLE.
///
/// # Safety
/// `out_ctx` must be NULL or point to writable storage for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_context_create(
    backend: i32,
    out_ctx: *mut *mut lk_context,
) -> lk_status {
    guard(|| {
        if out_ctx.is_null() {
            return Err(err!(NullArg, "lk_context_create: out_ctx is NULL"));
        }
        let kind = BackendKind::from_i32(backend).ok_or_else(|| {
            err!(
                InvalidArg,
                "lk_context_create: backend {backend} is not one of 0 (auto), 1 (cpu), 2 (wgpu)"
            )
        })?;
        let ctx = Context::new(kind)?;
        let info = ctx.device_info();
        let p = Box::into_raw(Box::new(lk_context { inner: ctx, info }));
        // SAFETY: checked non-NULL; the caller provides writable storage.
        unsafe { *out_ctx = p };
        Ok(())
    })
}

/// Free a context. NULL is a no-op.
///
/// Losses created from the context keep what they need alive, so they may be freed before
/// or after it; plugins loaded into it are unloaded only when nothing uses them.
///
/// @param ctx A context from lk_context_create, or NULL. Invalid after the call.
///
/// # Safety
/// `ctx` must be NULL or a live context not used by another thread during the call, and
/// must not be used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_context_free(ctx: *mut lk_context) {
    guard_or((), || {
        if !ctx.is_null() {
            // SAFETY: the caller passes ownership of a pointer from lk_context_create.
            drop(unsafe { Box::from_raw(ctx) });
        }
    })
}

/// Whether a backend can be used on this machine (and in this build).
///
/// For LK_BACKEND_WGPU an adapter must pass the selection rules of lk_context_create; the
/// probe runs once per process and its answer is cached.
///
/// @param backend One of lk_backend.
/// @return true when lk_context_create(backend, ...) can succeed; false for unknown values.
#[unsafe(no_mangle)]
pub extern "C" fn lk_backend_available(backend: i32) -> bool {
    guard_or(false, || {
        BackendKind::from_i32(backend).is_some_and(backend_available)
    })
}

/// The backend a context computes on (AUTO resolves to CPU or WGPU at creation).
///
/// @param ctx A live context.
/// @return One of lk_backend, or -1 when ctx is NULL.
///
/// # Safety
/// `ctx` must be NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_context_backend(ctx: *const lk_context) -> i32 {
    guard_or(-1, || {
        // SAFETY: the caller passes NULL or a live context.
        match unsafe { ref_arg(ctx, "ctx") } {
            Ok(c) => match c.inner.backend() {
                BackendKind::Auto => lk_backend::LK_BACKEND_AUTO as i32,
                BackendKind::Cpu => lk_backend::LK_BACKEND_CPU as i32,
                BackendKind::Wgpu => lk_backend::LK_BACKEND_WGPU as i32,
            },
            Err(_) => -1,
        }
    })
}

fn device_text(
    ctx: *const lk_context,
    f: fn(&crate::backend::DeviceInfo) -> *const c_char,
) -> *const c_char {
    guard_or(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live context.
        match unsafe { ctx.as_ref() } {
            Some(c) => c.info.as_ref().map_or(std::ptr::null(), f),
            None => std::ptr::null(),
        }
    })
}

/// The name of the GPU adapter a context computes on, e.g. "NVIDIA H100 80GB HBM3" or
/// "llvmpipe (LLVM 15.0.6, 256 bits)" (Mesa's software Vulkan).
///
/// @param ctx A live context.
/// @return A NUL-terminated string valid while the context lives, or NULL for a CPU
///         context or a NULL ctx.
///
/// # Safety
/// `ctx` must be NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_context_device_name(ctx: *const lk_context) -> *const c_char {
    device_text(ctx, |i| i.name.as_c_str().as_ptr())
}

/// The graphics API of a context's GPU adapter: "vulkan", "metal" or "dx12".
///
/// @param ctx A live context.
/// @return A NUL-terminated string valid while the context lives, or NULL for a CPU
///         context or a NULL ctx.
///
/// # Safety
/// `ctx` must be NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_context_device_backend(ctx: *const lk_context) -> *const c_char {
    device_text(ctx, |i| i.backend.as_c_str().as_ptr())
}

/// The kind of a context's GPU adapter: "discrete_gpu", "integrated_gpu", "virtual_gpu",
/// "cpu" (a software rasteriser such as lavapipe) or "other".
///
/// @param ctx A live context.
/// @return A NUL-terminated string valid while the context lives, or NULL for a CPU
///         context or a NULL ctx.
///
/// # Safety
/// `ctx` must be NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_context_device_type(ctx: *const lk_context) -> *const c_char {
    device_text(ctx, |i| i.device_type.as_c_str().as_ptr())
}

/// A limit of a context's GPU device, by name.
///
/// Names: "max_storage_buffer_binding_size", "max_buffer_size", "max_binding_bytes" (the
/// largest range losskit binds at once; larger inputs are processed in row chunks),
/// "max_compute_invocations_per_workgroup", "max_compute_workgroups_per_dimension",
/// "max_compute_workgroup_storage_size".
///
/// @param ctx A live context.
/// @param name A limit name (borrowed for the call).
/// @param out_value Receives the value on LK_OK (untouched otherwise).
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNSUPPORTED (a CPU context), LK_ERR_INVALID_ARG
///         (an unknown name).
///
/// # Safety
/// `ctx` NULL or live; `name` NULL or a C string; `out_value` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_context_device_limit(
    ctx: *const lk_context,
    name: *const c_char,
    out_value: *mut u64,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let c = unsafe { ref_arg(ctx, "lk_context_device_limit: ctx") }?;
        // SAFETY: caller contract.
        let name = unsafe { str_arg(name, "lk_context_device_limit: name") }?;
        if out_value.is_null() {
            return Err(err!(NullArg, "lk_context_device_limit: out_value is NULL"));
        }
        let Some(info) = c.inner.device_info() else {
            return Err(err!(
                Unsupported,
                "lk_context_device_limit: the context computes on the CPU"
            ));
        };
        let v = info
            .limit(name)
            .ok_or_else(|| err!(InvalidArg, "lk_context_device_limit: no limit '{name}'"))?;
        // SAFETY: checked non-NULL; writable per the caller.
        unsafe { *out_value = v };
        Ok(())
    })
}
