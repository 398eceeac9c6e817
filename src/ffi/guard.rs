//! The panic guard every `extern "C"` entry runs its body in: a Rust panic
//! becomes a log line and an error status, never an unwind into C.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::log::{self, Level};

/// Runs `body`; on panic logs `entry` and the panic message and returns `fallback`.
pub(crate) fn guard<T>(entry: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            // Logging itself must not unwind out of here either.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                log::log(
                    Level::Crit,
                    None,
                    &format!("panic in {entry}: {}", panic_message(&*payload)),
                )
            }));
            fallback
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_fallback_value() {
        assert_eq!(guard("test entry", -1, || 7), 7);
        assert_eq!(guard("test entry", -1, || -> i32 { panic!("boom") }), -1);
        let s: Option<String> = guard("test entry", None, || panic!("{}", String::from("x")));
        assert_eq!(s, None);
    }

    #[test]
    fn panic_messages_are_read_from_both_payload_kinds() {
        let p = catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&*p), "plain");
        let p = catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
        assert_eq!(panic_message(&*p), "formatted 42");
    }
}
