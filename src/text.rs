//! [`Text`]: the immutable strings of specs and messages, valid as C strings.

use std::ffi::{CStr, CString};
use std::fmt;

/// An immutable string that is also a valid C string (no interior NUL), so the C API can
/// hand out pointers to it for as long as the spec lives.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(CString);

impl Text {
    /// Make a text; interior NUL bytes are dropped.
    pub fn new(s: &str) -> Self {
        match CString::new(s) {
            Ok(c) => Text(c),
            Err(_) => Text(CString::new(s.replace('\0', "")).unwrap_or_default()),
        }
    }
    /// As a Rust string.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }
    /// As a C string.
    pub fn as_c_str(&self) -> &CStr {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}
