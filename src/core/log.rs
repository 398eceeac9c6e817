//! Messages for the operator: the module sends them to the FreeSWITCH log,
//! the sandbox and tests to stderr.

use std::sync::Arc;

/// Severity of a message given to the [`LogHook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warning,
    Error,
}

/// Where the service reports what an operator must know (spool full,
/// events given up…), with the uuid of the call's channel when the message
/// concerns one call ([`super::events::log_uuid`]). The module routes it to
/// the FreeSWITCH log, tagged with that uuid.
pub type LogHook = Arc<dyn Fn(LogLevel, Option<&str>, &str) + Send + Sync>;

/// A [`LogHook`] writing to stderr.
pub fn stderr_log() -> LogHook {
    Arc::new(|level, uuid, msg| eprintln!("[{level:?}] {} {msg}", uuid.unwrap_or("-")))
}
