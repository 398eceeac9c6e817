//! Where shared state lives, chosen once at load: in this process (and its
//! durable store) on one switch, or in Redis when several switches serve one
//! API. Each concern that must agree across switches (admission, call
//! lookup, and next the per-trunk limits) builds its own backend from this;
//! none of its callers ever asks which one it has.

use std::sync::Arc;

use crate::core::cluster::Cluster;
use crate::core::store::Store;

/// The shared-state backend of one process.
#[derive(Clone)]
pub enum Backend {
    /// One switch: in memory, with what must survive in `store`.
    Local {
        /// The durable store, when there is one (the module's; tests may run without).
        store: Option<Arc<dyn Store>>,
    },
    /// A cluster node: shared through its Redis.
    Redis(Arc<Cluster>),
}
