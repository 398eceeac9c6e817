//! C strings across the seam: NULL and non-UTF-8 tolerated coming in; C's
//! allocations handed back to C's free.

use std::ffi::{c_char, CStr, CString};

use super::sys;

/// `s` as a C string; interior NULs (which C would cut at) are dropped.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Copies a borrowed C string; `None` for NULL; invalid UTF-8 is replaced.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for this call.
pub(crate) unsafe fn borrowed(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Copies a string the shim allocated, then frees it with the shim's free.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string allocated by the shim (malloc),
/// owned by the caller and not used after this call.
pub(crate) unsafe fn take_owned(p: *mut c_char) -> Option<String> {
    // SAFETY: same contract as `borrowed` for the read.
    let s = unsafe { borrowed(p) };
    if !p.is_null() {
        // SAFETY: C allocated it, C frees it, exactly once.
        unsafe { sys::zc2c_free(p.cast()) };
    }
    s
}
