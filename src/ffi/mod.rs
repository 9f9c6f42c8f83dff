//! The C ABI. The only place with `#[unsafe(no_mangle)] extern "C"` items.
//!
//! Every export runs its body inside [`guard`] / [`guard_or`]: a Rust panic becomes
//! `LK_ERR_PANIC` (never an abort of the host), an [`LkError`] becomes its status code plus
//! the thread-local message, NULL pointers become `LK_ERR_NULL_ARG`.
//!
//! Conventions (also in the header preamble and the README):
//! 1. Objects come from `lk_X_create` and are destroyed once by `lk_X_free`; `lk_X_free(NULL)`
//!    is a no-op.
//! 2. Inputs are `const`; outputs come last. Out-params are written only on `LK_OK`.
//! 3. Tensors and strings passed in are borrowed for the call only; losskit keeps no pointer.
//! 4. `lk_context` may be shared by threads. An `lk_loss` is configured by one thread, then
//!    `lk_loss_compute` (which takes `const lk_loss *`) may run on many threads at once.
//! 5. After `LK_ERR_PANIC` the handle involved is poisoned; only `_free` is valid on it.

#![allow(non_camel_case_types)]

pub mod buffer;
pub mod context;
pub mod introspect;
pub mod last_error;
pub mod loss;
pub mod plugin;
pub mod status;
pub mod tensor;
pub mod version;

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::err;
use crate::error::{LkError, Result};
pub use status::lk_status;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Run `f` at the C boundary: panics become `LK_ERR_PANIC`, errors their status + message.
pub(crate) fn guard(f: impl FnOnce() -> Result<()>) -> lk_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => lk_status::LK_OK,
        Ok(Err(e)) => fail(&e),
        Err(p) => {
            last_error::set(&format!("internal panic: {}", panic_message(&*p)));
            lk_status::LK_ERR_PANIC
        }
    }
}

/// Like [`guard`] for functions that return a value: a panic gives `default`.
pub(crate) fn guard_or<T>(default: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            last_error::set(&format!("internal panic: {}", panic_message(&*p)));
            default
        }
    }
}

pub(crate) fn fail(e: &LkError) -> lk_status {
    last_error::set(&e.msg);
    e.kind.into()
}

/// A shared reference from a possibly-NULL pointer, or `LK_ERR_NULL_ARG` naming `what`.
///
/// # Safety
/// A non-NULL `p` must point to a live `T` for the duration of the call.
pub(crate) unsafe fn ref_arg<'a, T>(p: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: the caller guarantees a non-NULL p is valid for the call.
    unsafe { p.as_ref() }.ok_or_else(|| err!(NullArg, "{what} is NULL"))
}

/// A C string argument as `&str`.
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string live for the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(err!(NullArg, "{what} is NULL"));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| err!(InvalidArg, "{what} is not valid UTF-8"))
}

/// The C header as build.rs generates it from this source (for the header test).
#[doc(hidden)]
pub const GENERATED_HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/losskit.h"));

/// The plugin ABI header as build.rs generates it from `plugin::abi` (for the header test).
#[doc(hidden)]
pub const GENERATED_PLUGIN_HEADER: &str =
    include_str!(concat!(env!("OUT_DIR"), "/losskit_plugin.h"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_becomes_status_and_message() {
        let s = guard(|| panic!("boom {}", 7));
        assert_eq!(s, lk_status::LK_ERR_PANIC);
        assert_eq!(
            last_error::last_error_string().as_deref(),
            Some("internal panic: boom 7")
        );
        let v = guard_or(42usize, || panic!("x"));
        assert_eq!(v, 42);
    }

    #[test]
    fn error_becomes_status_and_message() {
        let s = guard(|| Err(err!(InvalidParam, "dpo: beta = -1 outside (0, inf)")));
        assert_eq!(s, lk_status::LK_ERR_INVALID_PARAM);
        assert_eq!(
            last_error::last_error_string().as_deref(),
            Some("dpo: beta = -1 outside (0, inf)")
        );
    }
}
