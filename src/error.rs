//! One error type for the whole crate.
//!
//! Every fallible function in losskit returns [`Result<T>`]. An [`LkError`] carries an
//! [`ErrorKind`] (which maps one-to-one onto a pinned C status code, see
//! [`ErrorKind::code`]) and a human-readable message that names the loss, the input or
//! parameter and the values involved.

use std::fmt;

/// What went wrong. The discriminants are the pinned numbers of the C `lk_status` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorKind {
    /// A required pointer or tensor was NULL / absent.
    NullArg = 1,
    /// An argument has an invalid value (e.g. an unknown reduction, overlapping buffers).
    InvalidArg = 2,
    /// A tensor's shape does not match the loss's spec or the other tensors.
    ShapeMismatch = 3,
    /// A tensor has the wrong dtype.
    DType = 4,
    /// A parameter value is outside its valid range or has the wrong type.
    InvalidParam = 5,
    /// The loss has no parameter of that name.
    UnknownParam = 6,
    /// No loss of that id is registered.
    UnknownLoss = 7,
    /// An integer target is neither `ignore_index` nor in `[0, C)`.
    InvalidTarget = 8,
    /// The request is well-formed but not supported (e.g. `none` on a batch-level loss,
    /// a strided layout losskit cannot read).
    Unsupported = 9,
    /// An output buffer is too small.
    BufferTooSmall = 10,
    /// An input holds an invalid value (e.g. a negative class weight).
    InvalidInput = 11,
    /// The requested backend is not available (no adapter, not compiled in).
    BackendUnavailable = 100,
    /// The GPU reported an error.
    Gpu = 101,
    /// An allocation failed.
    OutOfMemory = 102,
    /// A plugin's shared object could not be opened.
    PluginLoad = 200,
    /// A plugin's entry symbol was not found.
    PluginSymbol = 201,
    /// A plugin was built for another ABI version.
    PluginAbi = 202,
    /// A plugin loss id clashes with a builtin or another plugin.
    PluginDuplicateId = 203,
    /// A plugin's loss spec is invalid.
    PluginInvalidSpec = 204,
    /// A plugin callback returned an error.
    PluginFailed = 205,
    /// A panic was caught at the C boundary (a losskit bug).
    Panic = 900,
    /// An internal invariant failed (a losskit bug).
    Internal = 901,
}

impl ErrorKind {
    /// The pinned C status number of this kind.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A losskit error: a kind plus a message naming what was wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct LkError {
    /// What went wrong, as a status kind.
    pub kind: ErrorKind,
    /// A message naming the loss, input or parameter and the values involved.
    pub msg: String,
}

impl LkError {
    /// Build an error of `kind` with a message.
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        LkError {
            kind,
            msg: msg.into(),
        }
    }
    /// Prefix the message with `ctx: `.
    pub fn context(mut self, ctx: &str) -> Self {
        self.msg = format!("{ctx}: {}", self.msg);
        self
    }
}

impl fmt::Display for LkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for LkError {}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, LkError>;

/// Shorthand: `Err(LkError::new(kind, format!(...)))`.
#[macro_export]
#[doc(hidden)]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::LkError::new($crate::error::ErrorKind::$kind, format!($($arg)*)))
    };
}

/// Shorthand: `LkError::new(kind, format!(...))`.
#[macro_export]
#[doc(hidden)]
macro_rules! err {
    ($kind:ident, $($arg:tt)*) => {
        $crate::error::LkError::new($crate::error::ErrorKind::$kind, format!($($arg)*))
    };
}
