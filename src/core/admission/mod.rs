//! Admission: whether a click-to-call may be placed, decided once per request
//! whichever door it came through (HTTP, `pbx` through mod_xml_rpc, fs_cli's
//! `c2c`). One decision covers the token's rate limit, its
//! `Idempotency-Key` (claim, or replay of the first answer) and, in a
//! cluster, the record of which node owns the call about to be placed.
//!
//! One trait, two backends chosen once at load ([`for_backend`]): [`local`]
//! (this process's GCRA, keys in memory and in the durable store) and
//! [`redis`] (one Lua script per decision, shared by every node). Callers
//! never ask which one they have.

mod interface;
pub mod keys;
pub mod limiter;
pub mod local;
pub mod redis;
mod redis_keys;
mod redis_script;

use std::sync::Arc;

use crate::core::backend::Backend;
use crate::core::gcra::Clock;

pub use self::interface::{Admission, Admitted, Answer, Ask, Claim, Verdict};

/// The admission of `backend`, reading time from `clock` where it keeps time itself.
pub fn for_backend(backend: &Backend, clock: Arc<dyn Clock>) -> Arc<dyn Admission> {
    match backend {
        Backend::Local { store } => Arc::new(local::LocalAdmission::new(clock, store.clone())),
        Backend::Redis(cluster) => Arc::new(redis::RedisAdmission::new(cluster, clock)),
    }
}
