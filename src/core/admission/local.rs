//! Admission on one switch: the token's GCRA in this process, keys in memory
//! and (with a durable store) committed with the call they accepted.

use std::sync::Arc;

use super::interface::{Admission, Admitted, Ask, Verdict};
use super::keys::{Claim as KeyClaim, IdempotencyStore};
use super::limiter::RateLimiter;
use crate::core::gcra::Clock;
use crate::core::store::Store;

/// The local backend.
pub struct LocalAdmission {
    limiter: RateLimiter,
    keys: Arc<IdempotencyStore>,
}

impl LocalAdmission {
    /// Admission reading time from `clock`; keys missing from memory are
    /// looked up in `store`, when there is one.
    pub fn new(clock: Arc<dyn Clock>, store: Option<Arc<dyn Store>>) -> LocalAdmission {
        let keys = IdempotencyStore::new(Arc::clone(&clock));
        keys.set_durable(store);
        LocalAdmission {
            limiter: RateLimiter::new(clock),
            keys,
        }
    }
}

impl Admission for LocalAdmission {
    fn admit(&self, ask: &Ask) -> Verdict {
        let claim = match ask.key {
            None => None,
            Some(key) => match self.keys.claim(ask.token, key, ask.body, ask.ttl) {
                KeyClaim::Proceed(p) => Some(p),
                KeyClaim::Replay(a) => return Verdict::Replay(a),
                KeyClaim::Conflict(m) => return Verdict::Conflict(m),
                KeyClaim::Unavailable(e) => return Verdict::Unavailable(e),
            },
        };
        let decision = ask.limit.map(|limit| self.limiter.check(ask.token, limit));
        match decision {
            // The claim is dropped unfinished: the key is released.
            Some(d) if !d.allowed => Verdict::Limited(d),
            _ => Verdict::Proceed(Admitted::new(
                decision,
                claim.map(|p| Box::new(p) as Box<dyn super::interface::Claim>),
            )),
        }
    }
}
