//! The admission interface: what is asked, what is answered.

use std::time::Duration;

use uuid::Uuid;

use crate::core::gcra::Decision;
use crate::core::store::Write;

/// The answer a key replays: status, headers and body, as first sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// Whether it is a success (only those are kept for replay).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One click-to-call to admit.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The token's name (its own bucket and keys).
    pub token: &'a str,
    /// Its `Idempotency-Key`, if any.
    pub key: Option<&'a str>,
    /// The request body (a key's fingerprint).
    pub body: &'a [u8],
    /// How long the key is remembered.
    pub ttl: Duration,
    /// Requests per minute; `None`: no limit.
    pub limit: Option<u32>,
    /// The UUID the call will be placed under.
    pub call_uuid: Uuid,
}

/// What to do with a click-to-call.
pub enum Verdict {
    /// Place the call; then [`Admitted::finish`] with its answer.
    Proceed(Admitted),
    /// 429.
    Limited(Decision),
    /// The key's stored answer.
    Replay(Answer),
    /// 409.
    Conflict(&'static str),
    /// 503: a key that could not be checked (rather than risk a second call).
    Unavailable(String),
}

/// A claimed `Idempotency-Key`; dropping it unfinished releases the key.
pub trait Claim: Send {
    /// Writes that keep `answer` as the key's answer, to commit with the call
    /// it accepts (before the answer leaves); empty when the backend stores
    /// it in [`Claim::finish`].
    fn durable(&self, answer: &Answer) -> Vec<Write>;
    /// The request's final answer: a success is kept for replay, anything
    /// else releases the key so that a retry is handled afresh.
    fn finish(self: Box<Self>, answer: &Answer);
}

/// A request let through.
pub struct Admitted {
    /// The rate limit's state, when a limit is on (for the `RateLimit-*` headers).
    pub decision: Option<Decision>,
    claim: Option<Box<dyn Claim>>,
}

impl Admitted {
    /// Let through with `decision` and, for a keyed request, its claim.
    pub fn new(decision: Option<Decision>, claim: Option<Box<dyn Claim>>) -> Admitted {
        Admitted { decision, claim }
    }

    /// Writes to commit with the accepted call ([`Claim::durable`]).
    pub fn durable(&self, answer: &Answer) -> Vec<Write> {
        self.claim
            .as_ref()
            .map(|c| c.durable(answer))
            .unwrap_or_default()
    }

    /// Records the request's final answer ([`Claim::finish`]).
    pub fn finish(self, answer: &Answer) {
        if let Some(c) = self.claim {
            c.finish(answer);
        }
    }

    /// The `RateLimit-*` headers, when a limit is on.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.decision.map(|d| d.headers()).unwrap_or_default()
    }
}

/// The admission decision, one backend per process.
pub trait Admission: Send + Sync {
    /// Decides on one request. May wait: for the first answer to a key
    /// still being handled, and (remote backends) on the network.
    fn admit(&self, ask: &Ask) -> Verdict;

    /// Whether a decision goes over the network (so it must not run on an
    /// async worker).
    fn remote(&self) -> bool {
        false
    }
}
