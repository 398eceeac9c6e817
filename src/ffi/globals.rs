//! The module's state while loaded: one `Mutex<Option<Globals>>` that load
//! fills and shutdown empties, so `reload mod_zorio_c2c` starts from scratch.
//! Live calls go from one load to the next through the call journal in the
//! durable store.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crate::app::App;
use crate::core::engine::Engine;
use crate::core::http::HttpState;
use crate::core::webhooks::WebhookService;

use super::custom_events::CustomEventSink;
use super::events::{Bindings, Subclasses};

/// Everything a loaded module holds. Field order is drop order.
pub(crate) struct Globals {
    pub(crate) app: App,
    pub(crate) bindings: Bindings,
    pub(crate) subclasses: Subclasses,
    pub(crate) custom_events: Arc<CustomEventSink>,
}

static GLOBALS: Mutex<Option<Globals>> = Mutex::new(None);

pub(crate) fn lock() -> MutexGuard<'static, Option<Globals>> {
    GLOBALS.lock().unwrap_or_else(|e| e.into_inner())
}

/// What an API command needs of the running service (cloned out, so the
/// lock is held only for an instant).
pub(crate) struct Services {
    pub(crate) engine: Arc<Engine>,
    pub(crate) webhooks: Arc<WebhookService>,
    pub(crate) http: Arc<HttpState>,
}

/// The running service, if loaded.
pub(crate) fn services() -> Option<Services> {
    services_of(&lock())
}

/// [`services`] for callers that must never wait (FreeSWITCH threads holding
/// a lock of their own, e.g. tab completion): `None` while load or shutdown
/// holds the globals.
pub(crate) fn try_services() -> Option<Services> {
    match GLOBALS.try_lock() {
        Ok(g) => services_of(&g),
        Err(TryLockError::Poisoned(e)) => services_of(&e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

fn services_of(g: &Option<Globals>) -> Option<Services> {
    g.as_ref().map(|g| Services {
        engine: Arc::clone(&g.app.engine),
        webhooks: Arc::clone(&g.app.webhooks),
        http: Arc::clone(&g.app.http_state),
    })
}
