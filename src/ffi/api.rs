//! The fs_cli commands: `c2c` (the core's command) and `pbx` (for mod_xml_rpc;
//! a placeholder until the HTTP router is connected).

use std::ffi::{c_char, c_int, CString};
use std::sync::LazyLock;

use crate::core::command::{self, CommandHost, USAGE};
use crate::core::config::{Config, ConfigError};

use super::config_load::read_config;
use super::cstr::{borrowed, c_string};
use super::globals;
use super::guard::guard;
use super::log;
use super::sys;

/// Syntax strings FreeSWITCH keeps pointers to: alive as long as the library.
pub(crate) static C2C_USAGE: LazyLock<CString> = LazyLock::new(|| c_string(USAGE));

/// What `c2c` needs beyond the engine.
struct Host;

impl CommandHost for Host {
    fn load_config(&self) -> Result<Config, ConfigError> {
        let r = read_config();
        match &r {
            Ok(_) => log::info("config reloaded"),
            Err(e) => log::error(&format!("config refused, previous one kept: {e}")),
        }
        r
    }
}

fn write(stream: *mut sys::zc2c_stream, text: &str) {
    let t = c_string(text);
    // SAFETY: `stream` is the stream FreeSWITCH handed this API call (alive
    // for the call); the shim writes `t` with "%s".
    unsafe { sys::zc2c_stream_write(stream, t.as_ptr()) };
}

/// `c2c …`: runs [`command::execute`]. `cmd` may be NULL.
pub(crate) extern "C" fn c2c_api(cmd: *const c_char, stream: *mut sys::zc2c_stream) -> c_int {
    guard("c2c API", sys::ZC2C_STATUS_GENERR as c_int, || {
        // SAFETY: FreeSWITCH passes NULL or a NUL-terminated command for this call.
        let cmd = unsafe { borrowed(cmd) }.unwrap_or_default();
        let out = match globals::engine() {
            Some(engine) => command::execute(&engine, &Host, &cmd),
            None => "-ERR not_available mod_zorio_c2c is not running\n".to_string(),
        };
        write(stream, &out);
        sys::ZC2C_STATUS_SUCCESS as c_int
    })
}

/// `pbx …`: the HTTP API over mod_xml_rpc, not connected yet.
pub(crate) extern "C" fn pbx_api(_cmd: *const c_char, stream: *mut sys::zc2c_stream) -> c_int {
    guard("pbx API", sys::ZC2C_STATUS_GENERR as c_int, || {
        write(stream, "-ERR not_available\n");
        sys::ZC2C_STATUS_SUCCESS as c_int
    })
}
