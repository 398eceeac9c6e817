//! The module's state while loaded: one `Mutex<Option<Globals>>` that load
//! fills and shutdown empties, so `reload mod_zorio_c2c` starts from scratch.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::app::App;
use crate::core::engine::Engine;

use super::events::{Bindings, Subclasses};

/// Everything a loaded module holds. Field order is drop order.
pub(crate) struct Globals {
    pub(crate) app: App,
    pub(crate) bindings: Bindings,
    pub(crate) subclasses: Subclasses,
}

static GLOBALS: Mutex<Option<Globals>> = Mutex::new(None);

pub(crate) fn lock() -> MutexGuard<'static, Option<Globals>> {
    GLOBALS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running engine, if loaded (the lock is held only to clone it).
pub(crate) fn engine() -> Option<Arc<Engine>> {
    lock().as_ref().map(|g| Arc::clone(&g.app.engine))
}
