//! Library and ABI versions.

use std::ffi::c_char;

pub use crate::version::{
    LK_ABI_VERSION, LK_VERSION_MAJOR, LK_VERSION_MINOR, LK_VERSION_NUMBER, LK_VERSION_PATCH,
};

static VERSION: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// The library version as MAJOR * 1000000 + MINOR * 1000 + PATCH.
///
/// Compare with the LK_VERSION_NUMBER macro to detect a header/library mismatch.
///
/// @return The runtime version number.
#[unsafe(no_mangle)]
pub extern "C" fn lk_version_number() -> u32 {
    LK_VERSION_NUMBER
}

/// The library version as text, e.g. "0.1.0".
///
/// @return A static NUL-terminated string; never NULL; never freed.
#[unsafe(no_mangle)]
pub extern "C" fn lk_version_string() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The C ABI version of the library (compare with LK_ABI_VERSION).
///
/// @return The runtime ABI version.
#[unsafe(no_mangle)]
pub extern "C" fn lk_abi_version() -> u32 {
    LK_ABI_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn version_consts_match_cargo() {
        assert_eq!(
            LK_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            LK_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            LK_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
        assert_eq!(
            format!("{LK_VERSION_MAJOR}.{LK_VERSION_MINOR}.{LK_VERSION_PATCH}"),
            env!("CARGO_PKG_VERSION")
        );
    }
}
