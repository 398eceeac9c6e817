//! C strings across the seam: NULL and non-UTF-8 tolerated coming in; C's
//! allocations handed back to C's free.

use std::ffi::{c_char, CStr, CString};

use uuid::Uuid;

use super::sys;

/// `s` as a C string; interior NULs (which C would cut at) are dropped.
pub(crate) fn c_string(s: &str) -> CString {
    if s.contains('\0') {
        CString::new(s.replace('\0', "")).unwrap_or_default()
    } else {
        CString::new(s).unwrap_or_default()
    }
}

/// Runs `f` with `s` as a C string (interior NULs dropped), from the stack
/// when it is short: no allocation, for names looked up on every channel
/// event of the switch.
pub(crate) fn with_c_str<R>(s: &str, f: impl FnOnce(*const c_char) -> R) -> R {
    let mut text = [0u8; 64];
    if s.len() < text.len() && !s.contains('\0') {
        text[..s.len()].copy_from_slice(s.as_bytes());
        f(text.as_ptr().cast())
    } else {
        f(c_string(s).as_ptr())
    }
}

/// A UUID as a C string, on the stack: no allocation (a call's thread asks
/// the switch about its legs on every look while it waits).
pub(crate) struct UuidC([u8; 37]);

impl UuidC {
    pub(crate) fn new(uuid: Uuid) -> UuidC {
        let mut text = [0u8; 37];
        uuid.hyphenated().encode_lower(&mut text[..36]);
        UuidC(text)
    }

    /// NUL-terminated, valid while `self` is.
    pub(crate) fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_reads_back_as_its_text() {
        let uuid = Uuid::new_v4();
        let c = UuidC::new(uuid);
        // SAFETY: `c` is NUL-terminated and alive for the read.
        let back = unsafe { CStr::from_ptr(c.as_ptr()) };
        assert_eq!(back.to_str().unwrap(), uuid.to_string());
    }

    #[test]
    fn short_and_long_names_read_back_whole() {
        for name in ["Event-Sequence", &"x".repeat(200), "a\0b"] {
            // SAFETY: `p` is NUL-terminated and alive for the read.
            let back = with_c_str(name, |p| unsafe { CStr::from_ptr(p) }.to_owned());
            assert_eq!(back.to_str().unwrap(), name.replace('\0', ""));
        }
    }

    #[test]
    fn interior_nuls_are_dropped_and_plain_text_kept() {
        assert_eq!(c_string("a\0b").to_str().unwrap(), "ab");
        assert_eq!(c_string("plain").to_str().unwrap(), "plain");
    }
}
