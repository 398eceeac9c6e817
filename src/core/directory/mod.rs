//! Where a call lives: this node's engine (and journal), or, in a cluster,
//! the node that placed it. One trait, two backends chosen once at load
//! ([`for_backend`]); the HTTP handlers never ask which one they have.

mod forward;
mod interface;
pub mod local;
pub mod redis;

use std::sync::Arc;

use crate::core::backend::Backend;
use crate::core::engine::Engine;

pub use self::forward::{
    ANSWERED_BY_HEADER, FORWARDED_BY_HEADER, NODE_SECRET_HEADER, NODE_TOKEN_HEADER,
};
pub use self::interface::{CallDirectory, Found};

/// The directory of `backend` over this node's `engine`.
pub fn for_backend(backend: &Backend, engine: Arc<Engine>) -> Arc<dyn CallDirectory> {
    match backend {
        Backend::Local { .. } => Arc::new(local::LocalDirectory::new(engine)),
        Backend::Redis(cluster) => Arc::new(redis::RedisDirectory::new(cluster, engine)),
    }
}
