//! Our config as FreeSWITCH reads it: `switch_xml_open_cfg("zorio_c2c.conf")`
//! (so `$${vars}` and includes are resolved), serialized back to text and
//! parsed whole by the core.

use crate::core::config::{Config, ConfigError};
use crate::core::recording::{self, RecordCalls};

use super::cstr::take_owned;
use super::sys;

/// The name FreeSWITCH knows our config by.
pub(crate) const CONFIG_NAME: &str = "zorio_c2c.conf";

/// Reads and parses the config; an error names the element at fault.
pub(crate) fn read_config() -> Result<Config, ConfigError> {
    // SAFETY: a static NUL-terminated name; the shim returns NULL or a
    // malloc'd string that `take_owned` copies and frees once.
    let text = unsafe { take_owned(sys::zc2c_config_xml(c"zorio_c2c.conf".as_ptr())) };
    match text {
        Some(t) => Config::from_xml(&t).map(|mut c| {
            if c.webhooks.spool_dir.as_os_str().is_empty() {
                c.webhooks.spool_dir = default_spool_dir();
            }
            if c.recordings_dir.as_os_str().is_empty() {
                c.recordings_dir = default_recordings_dir();
            }
            c
        })
        .and_then(|c| {
            if c.record_calls != RecordCalls::Never {
                recording::check_dir(&c.recordings_dir).map_err(|message| ConfigError {
                    at: "settings/param[recordings-dir]".into(),
                    message,
                })?;
            }
            Ok(c)
        }),
        None => Err(ConfigError {
            at: CONFIG_NAME.to_string(),
            message: "not found in the switch's configuration (autoload_configs/zorio_c2c.conf.xml), or not XML".into(),
        }),
    }
}

/// `<db_dir>/zorio_c2c`, the spool when the config names none.
fn default_spool_dir() -> std::path::PathBuf {
    // SAFETY: static name; result is NULL or malloc'd by the shim, freed once by `take_owned`.
    let db = unsafe { take_owned(sys::zc2c_global_var(c"db_dir".as_ptr())) }
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/var/lib/freeswitch/db".to_string());
    std::path::Path::new(&db).join("zorio_c2c")
}

/// `<recordings_dir>/zorio_c2c`, FreeSWITCH's own recordings directory.
fn default_recordings_dir() -> std::path::PathBuf {
    // SAFETY: static name; result is NULL or malloc'd by the shim, freed once by `take_owned`.
    let dir = unsafe { take_owned(sys::zc2c_global_var(c"recordings_dir".as_ptr())) }
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/var/lib/freeswitch/recordings".to_string());
    std::path::Path::new(&dir).join("zorio_c2c")
}

/// The switch's `domain` global variable.
pub(crate) fn global_domain() -> Option<String> {
    // SAFETY: static name; result is NULL or malloc'd by the shim, freed once by `take_owned`.
    unsafe { take_owned(sys::zc2c_global_var(c"domain".as_ptr())) }.filter(|d| !d.is_empty())
}
