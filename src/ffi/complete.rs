//! fs_cli tab completion for `c2c`: the subcommands, and live call UUIDs
//! after `c2c status` / `c2c hangup`, registered the way FreeSWITCH's own
//! modules do it (`switch_console_set_complete`, a completion function), and
//! removed on unload.

use std::ffi::{c_char, CStr};

use crate::core::command;

use super::cstr::{borrowed, c_string};
use super::globals;
use super::guard::guard;
use super::log;
use super::sys;

/// Our completion function's name in FreeSWITCH's table (static: FreeSWITCH keeps the pointer).
const LIST_CALLS: &CStr = c"::zorio_c2c::list_calls";

/// On load: `add c2c …` lines and the function listing live calls.
pub(crate) fn register() {
    let func = LIST_CALLS.to_string_lossy();
    let mut ok = true;
    for line in command::completions(&func) {
        let line = c_string(&line);
        // SAFETY: a NUL-terminated string alive for the call; FreeSWITCH copies it into its db.
        ok &= unsafe { sys::zc2c_console_set_complete(line.as_ptr()) }
            == sys::ZC2C_STATUS_SUCCESS as i32;
    }
    // SAFETY: the name is a static C string; `list_calls` is a guarded
    // `extern "C"` fn of this library, unregistered in `unregister` (on shutdown).
    ok &= unsafe { sys::zc2c_console_add_complete_func(LIST_CALLS.as_ptr(), Some(list_calls)) }
        == sys::ZC2C_STATUS_SUCCESS as i32;
    if !ok {
        // e.g. a switch started without its core db: completion only, nothing else depends on it.
        log::info("fs_cli tab completion for c2c not (fully) registered");
    }
}

/// On shutdown: once this returns, FreeSWITCH calls `list_calls` no more.
pub(crate) fn unregister() {
    // SAFETY: static NUL-terminated strings; the shim takes FreeSWITCH's
    // console lock, so no completion of ours is running when it returns.
    unsafe {
        sys::zc2c_console_del_complete_func(LIST_CALLS.as_ptr());
        sys::zc2c_console_set_complete(c"del c2c".as_ptr());
    }
}

/// The UUIDs of the calls in flight that start with `cursor`. Runs on a
/// FreeSWITCH thread holding its console lock: never waits for our lock
/// (`try_services`), copies what it needs and lets go at once.
extern "C" fn list_calls(
    _line: *const c_char,
    cursor: *const c_char,
    matches: *mut sys::zc2c_matches,
) {
    guard("c2c tab completion", (), || {
        // SAFETY: FreeSWITCH passes NULL or a NUL-terminated word, alive for this call.
        let cursor = unsafe { borrowed(cursor) }.unwrap_or_default();
        let Some(services) = globals::try_services() else {
            return;
        };
        let mut uuids: Vec<String> = services
            .engine
            .active_calls()
            .iter()
            .map(|c| c.call_uuid.to_string())
            .filter(|u| u.starts_with(cursor.trim()))
            .collect();
        uuids.sort();
        for uuid in uuids {
            let uuid = c_string(&uuid);
            // SAFETY: `matches` is the list FreeSWITCH handed this call; the
            // shim copies `uuid` (C owns the copy, FreeSWITCH frees the list).
            unsafe { sys::zc2c_push_match(matches, uuid.as_ptr()) };
        }
    })
}
