//! Status codes of the C API.

use std::ffi::c_char;

use crate::error::ErrorKind;

/// Result of every fallible losskit function. `LK_OK` (0) is success. The numbers are
/// pinned forever and grouped: 1-99 caller errors, 100-199 backend, 200-299 plugins,
/// 900-999 losskit bugs. New codes may be added: treat unknown non-zero values as errors.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lk_status {
    /// Success.
    LK_OK = 0,
    /// A required pointer argument was NULL.
    LK_ERR_NULL_ARG = 1,
    /// An argument has an invalid value (unknown reduction, overlapping buffers...).
    LK_ERR_INVALID_ARG = 2,
    /// A tensor's shape does not match the loss's spec or the other tensors.
    LK_ERR_SHAPE_MISMATCH = 3,
    /// A tensor has the wrong dtype.
    LK_ERR_DTYPE = 4,
    /// A parameter value is out of range or of the wrong type (never clamped).
    LK_ERR_INVALID_PARAM = 5,
    /// The loss has no parameter of that name.
    LK_ERR_UNKNOWN_PARAM = 6,
    /// No loss of that id is registered.
    LK_ERR_UNKNOWN_LOSS = 7,
    /// A target is neither ignore_index nor a valid class.
    LK_ERR_INVALID_TARGET = 8,
    /// Well-formed but unsupported (reduction none on a batch-level loss, a strided layout).
    LK_ERR_UNSUPPORTED = 9,
    /// A buffer is too small for its shape.
    LK_ERR_BUFFER_TOO_SMALL = 10,
    /// An input holds an invalid value (e.g. a negative weight).
    LK_ERR_INVALID_INPUT = 11,
    /// The requested backend is not available.
    LK_ERR_BACKEND_UNAVAILABLE = 100,
    /// The GPU reported an error.
    LK_ERR_GPU = 101,
    /// An allocation failed.
    LK_ERR_OUT_OF_MEMORY = 102,
    /// A plugin's shared object could not be opened.
    LK_ERR_PLUGIN_LOAD = 200,
    /// A plugin's entry symbol was not found.
    LK_ERR_PLUGIN_SYMBOL = 201,
    /// A plugin was built for another plugin ABI version.
    LK_ERR_PLUGIN_ABI = 202,
    /// A plugin loss id clashes with a builtin or another plugin.
    LK_ERR_PLUGIN_DUPLICATE_ID = 203,
    /// A plugin's loss spec is invalid.
    LK_ERR_PLUGIN_INVALID_SPEC = 204,
    /// A plugin callback returned an error.
    LK_ERR_PLUGIN_FAILED = 205,
    /// A panic inside losskit was caught (a bug; the handle involved is poisoned).
    LK_ERR_PANIC = 900,
    /// An internal invariant failed (a bug).
    LK_ERR_INTERNAL = 901,
}

impl From<ErrorKind> for lk_status {
    fn from(k: ErrorKind) -> Self {
        use lk_status::*;
        match k {
            ErrorKind::NullArg => LK_ERR_NULL_ARG,
            ErrorKind::InvalidArg => LK_ERR_INVALID_ARG,
            ErrorKind::ShapeMismatch => LK_ERR_SHAPE_MISMATCH,
            ErrorKind::DType => LK_ERR_DTYPE,
            ErrorKind::InvalidParam => LK_ERR_INVALID_PARAM,
            ErrorKind::UnknownParam => LK_ERR_UNKNOWN_PARAM,
            ErrorKind::UnknownLoss => LK_ERR_UNKNOWN_LOSS,
            ErrorKind::InvalidTarget => LK_ERR_INVALID_TARGET,
            ErrorKind::Unsupported => LK_ERR_UNSUPPORTED,
            ErrorKind::BufferTooSmall => LK_ERR_BUFFER_TOO_SMALL,
            ErrorKind::InvalidInput => LK_ERR_INVALID_INPUT,
            ErrorKind::BackendUnavailable => LK_ERR_BACKEND_UNAVAILABLE,
            ErrorKind::Gpu => LK_ERR_GPU,
            ErrorKind::OutOfMemory => LK_ERR_OUT_OF_MEMORY,
            ErrorKind::PluginLoad => LK_ERR_PLUGIN_LOAD,
            ErrorKind::PluginSymbol => LK_ERR_PLUGIN_SYMBOL,
            ErrorKind::PluginAbi => LK_ERR_PLUGIN_ABI,
            ErrorKind::PluginDuplicateId => LK_ERR_PLUGIN_DUPLICATE_ID,
            ErrorKind::PluginInvalidSpec => LK_ERR_PLUGIN_INVALID_SPEC,
            ErrorKind::PluginFailed => LK_ERR_PLUGIN_FAILED,
            ErrorKind::Panic => LK_ERR_PANIC,
            ErrorKind::Internal => LK_ERR_INTERNAL,
        }
    }
}

fn status_text(code: i32) -> &'static [u8] {
    match code {
        0 => b"ok\0",
        1 => b"a required pointer argument was NULL\0",
        2 => b"invalid argument\0",
        3 => b"shape mismatch\0",
        4 => b"wrong dtype\0",
        5 => b"invalid parameter value\0",
        6 => b"unknown parameter\0",
        7 => b"unknown loss\0",
        8 => b"invalid target\0",
        9 => b"unsupported\0",
        10 => b"buffer too small\0",
        11 => b"invalid input value\0",
        100 => b"backend unavailable\0",
        101 => b"GPU error\0",
        102 => b"out of memory\0",
        200 => b"plugin could not be loaded\0",
        201 => b"plugin entry symbol not found\0",
        202 => b"plugin ABI version mismatch\0",
        203 => b"plugin loss id already registered\0",
        204 => b"plugin loss spec is invalid\0",
        205 => b"plugin callback failed\0",
        900 => b"internal panic (losskit bug)\0",
        901 => b"internal error (losskit bug)\0",
        _ => b"unknown status\0",
    }
}

/// Static text describing a status code.
///
/// Takes any integer: codes this version does not know give "unknown status".
///
/// @param status A status code (any value).
/// @return A static, NUL-terminated string; never NULL; never freed.
#[unsafe(no_mangle)]
pub extern "C" fn lk_status_str(status: i32) -> *const c_char {
    status_text(status).as_ptr().cast()
}
