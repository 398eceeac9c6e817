//! Logging through FreeSWITCH's logger, always with `"%s"` (our text is never
//! a format), tagged with the call's UUID when there is one.

#[cfg(not(test))]
use std::ffi::CString;
#[cfg(not(test))]
use std::panic::Location;

#[cfg(not(test))]
use super::cstr::c_string;
use super::sys;

/// Severity, as FreeSWITCH names them (all of them, used or not).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Crit,
}

impl Level {
    fn code(self) -> i32 {
        (match self {
            Level::Debug => sys::ZC2C_LOG_DEBUG,
            Level::Info => sys::ZC2C_LOG_INFO,
            Level::Notice => sys::ZC2C_LOG_NOTICE,
            Level::Warning => sys::ZC2C_LOG_WARNING,
            Level::Error => sys::ZC2C_LOG_ERROR,
            Level::Crit => sys::ZC2C_LOG_CRIT,
        }) as i32
    }
}

/// Logs `text` at `level`; `uuid` (a channel UUID) lets `fs_cli` filter by call.
#[cfg(not(test))]
#[track_caller]
pub(crate) fn log(level: Level, uuid: Option<&str>, text: &str) {
    let at = Location::caller();
    let file = c_string(at.file());
    let text = c_string(text);
    let uuid: Option<CString> = uuid.map(c_string);
    let uuid_ptr = uuid.as_ref().map_or(std::ptr::null(), |u| u.as_ptr());
    // SAFETY: every pointer is NULL (uuid) or a NUL-terminated string alive for
    // the call; the shim prints `text` with "%s" and keeps none of them.
    unsafe {
        sys::zc2c_log(
            level.code(),
            uuid_ptr,
            file.as_ptr(),
            c"mod_zorio_c2c".as_ptr(),
            at.line() as i32,
            text.as_ptr(),
        )
    };
}

/// Unit tests run without FreeSWITCH: the log goes to stderr.
#[cfg(test)]
#[track_caller]
pub(crate) fn log(level: Level, uuid: Option<&str>, text: &str) {
    let _ = level.code();
    eprintln!("[{level:?}] {} {text}", uuid.unwrap_or("-"));
}

#[track_caller]
pub(crate) fn info(text: &str) {
    log(Level::Info, None, text)
}

#[track_caller]
pub(crate) fn warn(text: &str) {
    log(Level::Warning, None, text)
}

#[track_caller]
pub(crate) fn error(text: &str) {
    log(Level::Error, None, text)
}
