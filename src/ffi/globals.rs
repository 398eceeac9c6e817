//! The module's state while loaded: one `Mutex<Option<Globals>>` that load
//! fills and shutdown empties, so `reload mod_zorio_c2c` starts from scratch.
//! Live calls go from one load to the next through the call journal in the
//! durable store.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::app::App;
use crate::core::engine::Engine;
use crate::core::http::HttpState;
use crate::core::webhooks::WebhookService;

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

/// What an API command needs of the running service (cloned out, so the
/// lock is held only for an instant).
pub(crate) struct Services {
    pub(crate) engine: Arc<Engine>,
    pub(crate) webhooks: Arc<WebhookService>,
    pub(crate) http: Arc<HttpState>,
}

/// The running service, if loaded.
pub(crate) fn services() -> Option<Services> {
    lock().as_ref().map(|g| Services {
        engine: Arc::clone(&g.app.engine),
        webhooks: Arc::clone(&g.app.webhooks),
        http: Arc::clone(&g.app.http_state),
    })
}
