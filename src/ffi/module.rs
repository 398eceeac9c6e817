//! The module table FreeSWITCH looks up (`mod_zorio_c2c_module_interface`,
//! defined here in Rust because a cdylib exports no C-defined symbol,
//! rust-lang/rust#99411) and its load / shutdown / runtime entries.

use std::ffi::c_int;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::core::events::EventSink;
use crate::core::webhooks::{LogHook, LogLevel};
use crate::switch::leg_channel;

use super::api::{c2c_api, pbx_api, C2C_USAGE};
use super::complete;
use super::config_load::{read_config, CONFIG_NAME};
use super::custom_events::CustomEventSink;
use super::events::{set_target, Bindings, EndNotes, EventTarget, Subclasses};
use super::fs_switch::FsSwitch;
use super::globals::{self, Globals};
use super::guard::guard;
use super::log;
use super::pinned;
use super::sys;

/// How long shutdown waits for the engine's threads.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// How long the last CUSTOM events may take to reach the switch at unload.
const FIRE_DEADLINE: Duration = Duration::from_secs(2);

/// What FreeSWITCH reads on `load mod_zorio_c2c`.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mod_zorio_c2c_module_interface: sys::zc2c_module_table = sys::zc2c_module_table {
    switch_api_version: sys::SWITCH_API_VERSION,
    load: Some(load),
    shutdown: Some(shutdown),
    runtime: Some(runtime),
    flags: 0,
};

const SUCCESS: c_int = sys::ZC2C_STATUS_SUCCESS as c_int;
const GENERR: c_int = sys::ZC2C_STATUS_GENERR as c_int;

extern "C" fn load(mi: *mut *mut sys::zc2c_module_interface, pool: *mut sys::zc2c_pool) -> c_int {
    guard("load", GENERR, || match start(mi, pool) {
        Ok(()) => SUCCESS,
        Err(why) => {
            log::error(&format!("mod_zorio_c2c not loaded: {why}"));
            GENERR
        }
    })
}

fn start(
    mi: *mut *mut sys::zc2c_module_interface,
    pool: *mut sys::zc2c_pool,
) -> Result<(), String> {
    let mut slot = globals::lock();
    if slot.is_some() {
        return Err("already loaded".into());
    }
    // SAFETY: `mi` and `pool` are what FreeSWITCH passed to load; the name is static.
    let module = unsafe { sys::zc2c_module_create(mi, pool, c"mod_zorio_c2c".as_ptr()) };
    if module.is_null() {
        return Err("could not create the module interface".into());
    }
    let config = read_config().map_err(|e| format!("{CONFIG_NAME} refused at {e}"))?;
    let (legs_tx, legs_rx) = leg_channel();
    let ends = Arc::new(EndNotes::default());
    set_target(Some(Arc::new(EventTarget {
        legs: legs_tx,
        ends: Arc::clone(&ends),
    })));
    let bindings = match Bindings::bind() {
        Ok(b) => b,
        Err(e) => {
            set_target(None);
            return Err(e);
        }
    };
    let subclasses = Subclasses::reserve();
    let switch = Arc::new(FsSwitch::new(ends));
    let custom_events = Arc::new(CustomEventSink::new());
    let sinks: Vec<Arc<dyn EventSink>> = vec![Arc::clone(&custom_events) as Arc<dyn EventSink>];
    // The call journal lives in the durable store, next to the spool: it
    // carries bridged calls from one load to the next, and across a crash.
    let app = match App::start_with_log(config, switch, legs_rx, sinks, fs_log_hook()) {
        Ok(a) => a,
        Err(e) => {
            drop(bindings);
            set_target(None);
            custom_events.close(FIRE_DEADLINE);
            return Err(format!("could not start: {e}"));
        }
    };
    // SAFETY: `module` is the interface just created; names, descriptions and
    // syntax strings are static for the library's lifetime; the callbacks are
    // guarded `extern "C"` fns of this module.
    let apis = unsafe {
        [
            sys::zc2c_add_api(
                module,
                c"c2c".as_ptr(),
                c"Zorio click-to-call".as_ptr(),
                C2C_USAGE.as_ptr(),
                Some(c2c_api),
            ),
            sys::zc2c_add_api(
                module,
                c"pbx".as_ptr(),
                c"Zorio PBX HTTP API without HTTP (fs_cli, ESL)".as_ptr(),
                c"pbx <METHOD> <path> [<JSON body>]".as_ptr(),
                Some(pbx_api),
            ),
        ]
    };
    if apis.iter().any(|s| *s != SUCCESS) {
        log::warn("could not register every API command");
    }
    complete::register();
    *slot = Some(Globals {
        app,
        bindings,
        subclasses,
        custom_events,
    });
    let engine = &slot.as_ref().expect("just set").app.engine;
    let (adopted, recovered) = (
        engine.stats.adopted.load(Ordering::Relaxed),
        engine.stats.recovered.load(Ordering::Relaxed),
    );
    let limit = engine.max_concurrent_calls(&engine.config());
    log::info(&format!(
        "mod_zorio_c2c loaded: {adopted} live calls adopted, {recovered} ended while unloaded reported; max-concurrent-calls {limit}"
    ));
    pinned::warn_if_replaced();
    drop(slot);
    return_freed_memory();
    Ok(())
}

/// Operator messages of the webhook service, into the FreeSWITCH log.
fn fs_log_hook() -> LogHook {
    Arc::new(|level, uuid, text| {
        let level = match level {
            LogLevel::Info => log::Level::Info,
            LogLevel::Warning => log::Level::Warning,
            LogLevel::Error => log::Level::Error,
        };
        log::log(level, uuid, text)
    })
}

extern "C" fn shutdown() -> c_int {
    guard("shutdown", GENERR, || {
        complete::unregister();
        let Some(g) = globals::lock().take() else {
            return SUCCESS;
        };
        let mut late = g.app.stop(STOP_DEADLINE);
        let Globals {
            app,
            bindings,
            subclasses,
            custom_events,
        } = g;
        // After the engine and the store: their last events are fired first.
        if !custom_events.close(FIRE_DEADLINE) {
            late.push("the CUSTOM event courier (in switch_event_deliver)".to_string());
        }
        drop(bindings);
        set_target(None);
        drop(subclasses);
        drop(app);
        return_freed_memory();
        pinned::page_out_code();
        if late.is_empty() {
            log::info("mod_zorio_c2c stopped");
            SUCCESS
        } else {
            // Code of ours may still run: keep the library mapped.
            log::log(
                log::Level::Crit,
                None,
                &format!(
                    "not stopped in time: {}; keeping the module in memory",
                    late.join(", ")
                ),
            );
            sys::ZC2C_STATUS_NOUNLOAD as c_int
        }
    })
}

/// Hands memory that is free but kept by glibc back to the kernel, once a
/// load is done and once a shutdown is. Measured on the switch (gdb:
/// `malloc_stats`, the arenas' chunks; heaptrack): nothing of ours is
/// leaked, but the switch's RSS held 16 to 30 MiB more after some reloads,
/// all of it free chunks in glibc's arenas (16 on 2 cores, shared by
/// FreeSWITCH's threads and ours) kept below one small chunk still in use
/// at the top of a heap, which no free can trim. FreeSWITCH itself does it
/// without us: 150 `reloadxml` (which `load` and `reload` run first) took
/// an idle switch from 34.5 to 59.3 MiB, and `malloc_trim(0)` gave all of
/// it back (34.3 MiB). So the module trims every arena at the two moments
/// it makes or leaves garbage of its own: a few milliseconds, on the thread
/// running the command, with nothing of ours holding a lock.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: glibc's malloc_trim takes no pointer and only releases free
    // pages; it locks each arena in turn, as any malloc does.
    unsafe {
        libc::malloc_trim(0);
    }
}

extern "C" fn runtime() -> c_int {
    // Nothing to do on FreeSWITCH's runtime thread: every thread of ours is our own.
    guard("runtime", sys::ZC2C_STATUS_TERM as c_int, || {
        sys::ZC2C_STATUS_TERM as c_int
    })
}
