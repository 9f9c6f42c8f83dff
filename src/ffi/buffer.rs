//! Device-resident buffers (`lk_buffer`) of a WGPU context.
//!
//! A training loop keeps logits, targets and gradients in lk_buffers so that a compute call
//! moves no large data between host and GPU: a tensor refers to a buffer with
//! `device.device_type = LK_DEVICE_LKBUFFER`, `data` = the `lk_buffer *` and `byte_offset`
//! = the offset inside it.

use std::ffi::c_void;

use super::context::lk_context;
use super::{guard, guard_or, lk_status, ref_arg};
use crate::device::DeviceBuffer;
use crate::err;

/// A device-resident buffer. Opaque; create with lk_buffer_create, free with
/// lk_buffer_free. It keeps its context's GPU device alive.
pub struct lk_buffer {
    pub(crate) inner: DeviceBuffer,
}

/// Create a device buffer on a WGPU context's GPU.
///
/// The contents are unspecified until written. Pass the buffer to lk_loss_compute inside an
/// lk_tensor whose device type is LK_DEVICE_LKBUFFER (inputs and gradients only; the loss
/// output, grad_output and auxiliary outputs stay in host memory).
///
/// @param ctx A WGPU context (a CPU context gives LK_ERR_UNSUPPORTED).
/// @param n_bytes Size in bytes.
/// @param out_buf Receives the buffer on LK_OK (untouched otherwise). Owned by the caller;
///        free with lk_buffer_free. May be used from several threads, but a buffer must not
///        be written while a compute that reads or writes it runs on another thread.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNSUPPORTED, LK_ERR_OUT_OF_MEMORY, LK_ERR_GPU.
///
/// # Safety
/// `ctx` must be NULL or a live context; `out_buf` NULL or writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_buffer_create(
    ctx: *const lk_context,
    n_bytes: u64,
    out_buf: *mut *mut lk_buffer,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let c = unsafe { ref_arg(ctx, "lk_buffer_create: ctx") }?;
        if out_buf.is_null() {
            return Err(err!(NullArg, "lk_buffer_create: out_buf is NULL"));
        }
        let b = c.inner.buffer(n_bytes)?;
        let p = Box::into_raw(Box::new(lk_buffer { inner: b }));
        // SAFETY: checked non-NULL; the caller provides writable storage.
        unsafe { *out_buf = p };
        Ok(())
    })
}

/// Copy host bytes into a device buffer.
///
/// The copy is ordered before every compute submitted after this call returns.
///
/// @param buf The buffer.
/// @param offset Byte offset inside the buffer (a multiple of 4).
/// @param src `n_bytes` bytes to copy (borrowed for the call).
/// @param n_bytes Number of bytes (a multiple of 4; offset + n_bytes within the buffer).
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG, LK_ERR_GPU.
///
/// # Safety
/// `buf` must be NULL or live; `src` NULL or readable for `n_bytes` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_buffer_write(
    buf: *const lk_buffer,
    offset: u64,
    src: *const c_void,
    n_bytes: usize,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let b = unsafe { ref_arg(buf, "lk_buffer_write: buf") }?;
        if n_bytes == 0 {
            return b.inner.write(offset, &[]);
        }
        if src.is_null() {
            return Err(err!(NullArg, "lk_buffer_write: src is NULL"));
        }
        // SAFETY: non-NULL and readable for n_bytes per the caller.
        let s = unsafe { std::slice::from_raw_parts(src.cast::<u8>(), n_bytes) };
        b.inner.write(offset, s)
    })
}

/// Copy bytes of a device buffer into host memory.
///
/// Waits for every compute submitted before that writes the buffer.
///
/// @param buf The buffer.
/// @param offset Byte offset inside the buffer (a multiple of 4).
/// @param dst Receives `n_bytes` bytes on LK_OK.
/// @param n_bytes Number of bytes (a multiple of 4; offset + n_bytes within the buffer).
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG, LK_ERR_GPU.
///
/// # Safety
/// `buf` must be NULL or live; `dst` NULL or writable for `n_bytes` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_buffer_read(
    buf: *const lk_buffer,
    offset: u64,
    dst: *mut c_void,
    n_bytes: usize,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let b = unsafe { ref_arg(buf, "lk_buffer_read: buf") }?;
        if n_bytes == 0 {
            return b.inner.read(offset, &mut []);
        }
        if dst.is_null() {
            return Err(err!(NullArg, "lk_buffer_read: dst is NULL"));
        }
        let mut tmp = vec![0u8; n_bytes];
        b.inner.read(offset, &mut tmp)?;
        // SAFETY: non-NULL and writable for n_bytes per the caller; written only on success.
        unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst.cast::<u8>(), n_bytes) };
        Ok(())
    })
}

/// The size of a device buffer in bytes.
///
/// @param buf A live buffer.
/// @return The size given to lk_buffer_create, or 0 when buf is NULL.
///
/// # Safety
/// `buf` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_buffer_size(buf: *const lk_buffer) -> u64 {
    guard_or(0, || {
        // SAFETY: caller contract.
        unsafe { buf.as_ref() }.map_or(0, |b| b.inner.size())
    })
}

/// Free a device buffer. NULL is a no-op.
///
/// @param buf A buffer from lk_buffer_create, or NULL. Invalid after the call; it must not
///        be in use by a compute on another thread.
///
/// # Safety
/// `buf` must be NULL or a live buffer not used after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_buffer_free(buf: *mut lk_buffer) {
    guard_or((), || {
        if !buf.is_null() {
            // SAFETY: the caller passes ownership of a pointer from lk_buffer_create.
            drop(unsafe { Box::from_raw(buf) });
        }
    })
}
