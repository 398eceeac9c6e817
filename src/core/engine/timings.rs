//! The call flow's histograms (seconds), recorded where each step happens.

use std::time::SystemTime;

use crate::core::metrics::{buckets, Histogram, HistogramVec};

/// How long each step of the calls took.
pub struct CallTimings {
    /// The agent's phone: originated until answered.
    pub agent_answer: Histogram,
    /// The customer's attempt: dialled until ringing (or answered), by trunk.
    pub customer_post_dial: HistogramVec,
    /// The customer's attempt: dialled until answered, by trunk.
    pub customer_answer: HistogramVec,
    /// The call accepted (202) until both legs are bridged.
    pub accepted_to_bridge: Histogram,
    /// The customer answered until the call ended (calls that ended here).
    pub talk: Histogram,
}

impl Default for CallTimings {
    fn default() -> CallTimings {
        CallTimings {
            agent_answer: Histogram::new(&buckets::ANSWER_SECONDS),
            customer_post_dial: HistogramVec::new(&buckets::POST_DIAL_SECONDS),
            customer_answer: HistogramVec::new(&buckets::ANSWER_SECONDS),
            accepted_to_bridge: Histogram::new(&buckets::BRIDGE_SECONDS),
            talk: Histogram::new(&buckets::TALK_SECONDS),
        }
    }
}

/// Seconds from `from` to `to` (0 if the clock went back).
pub(crate) fn secs(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
