//! Before an attempt on a trunk with `cps` or `max-channels`: the call
//! waits its turn ([`crate::core::trunks`]), the agent hearing ringback,
//! for as long as its route allows: `max-pacing-wait` under LCR (then the
//! next trunk), `trunk-queue-timeout` on a forced trunk (then the call ends).

use std::time::SystemTime;

use serde_json::json;

use super::{lock, CallCell, Engine};
use crate::core::call::{Attempt, CallState, OUTCOME_TRUNKS_AT_LIMIT, OUTCOME_TRUNK_QUEUE_TIMEOUT};
use crate::core::config::Config;
use crate::core::events;
use crate::core::routing::Candidate;
use crate::core::trunks::{Limit, Permit, Refusal};
use crate::switch::Failure;

/// What became of a refused attempt.
pub(super) enum Passed {
    /// Try the next route.
    Next,
    /// The call is over.
    Ended,
}

impl Engine {
    /// Waits for `cand`'s trunk (no wait when it has no limits); `forced`:
    /// the request named the trunk.
    pub(super) fn wait_for_trunk(
        &self,
        cell: &CallCell,
        config: &Config,
        cand: &Candidate,
        forced: bool,
    ) -> Result<Option<Permit>, Limit> {
        let Some(trunk) = cand
            .trunk
            .as_ref()
            .and_then(|(id, _)| config.trunk_by_id(*id))
        else {
            return Ok(None);
        };
        if trunk.cps.is_none() && trunk.max_channels.is_none() {
            return Ok(None);
        }
        let (agent, leg) = {
            let mut c = lock(cell);
            c.state = CallState::CustomerDialling;
            c.b.started_at.get_or_insert(SystemTime::now());
            (c.a.uuid, c.b.uuid)
        };
        let within = if forced {
            config.trunk_queue_timeout
        } else {
            config.max_pacing_wait
        };
        let gone = || {
            let c = lock(cell);
            c.cancel.is_some() || c.a.ended_at.is_some()
        };
        if gone() {
            return Ok(None);
        }
        // Started once the agent can hear it (just answered, it may not be
        // ready yet): tried at each look until it plays.
        let mut ringing = false;
        let mut waiting = || {
            if let (false, Some(rb)) = (ringing, config.ringback.as_deref()) {
                ringing = self.switch.play_ringback(agent, Some(rb)).is_ok();
            }
        };
        let r = self.trunks.acquire(trunk, leg, within, &gone, &mut waiting);
        if ringing {
            let _ = self.switch.play_ringback(agent, None);
        }
        match r {
            // The runner sees the call ended and ends it as after a dial.
            Err(Refusal::Gone) => Ok(None),
            Err(Refusal::Limit(limit)) => Err(limit),
            Ok(p) => Ok(p),
        }
    }

    /// Records an attempt a trunk's limit turned away and says whether the
    /// call goes on to the next route.
    pub(super) fn trunk_refused(
        &self,
        cell: &CallCell,
        cand: &Candidate,
        limit: Limit,
        more: bool,
    ) -> Passed {
        let mut c = lock(cell);
        let cause = limit.cause();
        let now = SystemTime::now();
        c.attempts.push(Attempt {
            trunk: cand.trunk.clone(),
            started_at: now,
            ended_at: Some(now),
            result: Some(cause.to_string()),
            sip_code: None,
        });
        let trunk_name = cand.trunk.as_ref().map_or("dialplan", |t| t.1.as_str());
        self.count_attempt(trunk_name, true);
        let fail_over = more && c.cancel.is_none() && c.a.ended_at.is_none();
        let extra = json!({
            "trunk_id": cand.trunk.as_ref().map(|t| t.0),
            "trunk_name": cand.trunk.as_ref().map(|t| t.1.clone()),
            "hangup_cause": cause,
            "sip_code": null,
            "attempt": c.attempts.len(),
            "will_retry": fail_over,
        });
        self.emit(&mut c, events::ATTEMPT_FAILED, Some("B"), extra);
        if fail_over {
            return Passed::Next;
        }
        let f = Failure {
            cause: cause.to_string(),
            ..Failure::default()
        };
        self.customer_failed(&mut c, &f);
        if c.cancel.is_none() && c.a.ended_at.is_none() {
            // A forced trunk is the only route of a `direct_gateway` call.
            c.outcome = Some(if c.routing_mode == "direct_gateway" {
                OUTCOME_TRUNK_QUEUE_TIMEOUT
            } else {
                OUTCOME_TRUNKS_AT_LIMIT
            });
        }
        let agent = c.a.is_live().then_some(c.a.uuid);
        drop(c);
        if let Some(a) = agent {
            self.switch.hangup(a, "NORMAL_CLEARING");
        }
        Passed::Ended
    }
}
