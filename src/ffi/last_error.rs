//! The thread-local message of the last failed call.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

thread_local! {
    static LAST: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Record `msg` as this thread's last error.
pub(crate) fn set(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = Some(c));
}

/// This thread's last error message as a Rust string (for tests and bindings in Rust).
pub fn last_error_string() -> Option<String> {
    LAST.with(|l| {
        l.borrow()
            .as_ref()
            .map(|c| c.to_string_lossy().into_owned())
    })
}

/// The message of the last failed losskit call on this thread.
///
/// Every failing call sets it; successful calls leave it alone, so it is meaningful only
/// right after a call returned a status other than `LK_OK`. Read it on the same thread,
/// before any other `lk_` call (bindings for languages whose tasks migrate between threads,
/// such as Go, must read it inside the same native call sequence).
///
/// @return A NUL-terminated string owned by losskit, valid until the next `lk_` call on this
///         thread, or NULL when this thread has no error recorded.
#[unsafe(no_mangle)]
pub extern "C" fn lk_last_error_message() -> *const c_char {
    LAST.with(|l| match l.borrow().as_ref() {
        Some(c) => c.as_ptr(),
        None => std::ptr::null(),
    })
}

/// Forget this thread's last error message (lk_last_error_message then returns NULL).
#[unsafe(no_mangle)]
pub extern "C" fn lk_last_error_clear() {
    LAST.with(|l| *l.borrow_mut() = None);
}
