//! The switch's reports of each leg (ringing, bridged, hung up) turned into
//! the call's state transitions; transfers of either leg are followed.

use std::time::SystemTime;

use serde_json::json;
use uuid::Uuid;

use super::timings::secs;
use super::{lock, CallCell, Engine};
use crate::core::call::{CallRecord, CallState, HangupBy, Leg, Party, CAUSE_TIME_LIMIT};
use crate::core::events;
use crate::switch::{Failure, LegEvent, LegRole};

/// Notes a leg's end (the first report of it wins).
fn end_leg(leg: &mut Leg, f: &Failure) {
    if leg.ended_at.is_none() {
        leg.ended_at = Some(SystemTime::now());
        leg.hangup_cause = Some(f.cause.clone());
        leg.sip_code = f.sip_code;
        leg.by_peer = f.by_peer;
        leg.hangup_at_us = f.at_us;
        leg.hangup_seq = f.seq;
    }
}

impl Engine {
    /// Progress of a leg, reported by the switch (any thread but a FreeSWITCH one).
    /// `attempt` numbers B-leg attempts from 1; reports of an older attempt are dropped.
    pub fn leg_event(&self, leg_uuid: Uuid, attempt: Option<u32>, event: LegEvent) {
        let cell = {
            let reg = lock(&self.registry);
            reg.by_leg
                .get(&leg_uuid)
                .and_then(|c| reg.active.get(c))
                .cloned()
        };
        let Some(cell) = cell else { return };
        let mut c = lock(&cell);
        let is_a = c.a.uuid == leg_uuid;
        let is_b = c.b.uuid == leg_uuid;
        if is_b {
            let current = c.attempts.len() as u32;
            if attempt.is_some_and(|n| n != current) || c.b.started_at.is_none() {
                return;
            }
        }
        if !is_a && !is_b {
            // A party the customer was transferred to.
            if let LegEvent::HungUp(f) = event {
                if let Some(i) = c.party_index(leg_uuid) {
                    end_leg(&mut c.parties[i].leg, &f);
                }
                drop(c);
                self.finish_if_done(&cell);
            }
            return;
        }
        match event {
            LegEvent::Ringing if is_a => self.agent_ringing(&mut c),
            LegEvent::Ringing => {
                if c.b.ringing_at.is_none() && c.b.answered_at.is_none() {
                    let now = SystemTime::now();
                    c.b.ringing_at = Some(now);
                    if let Some(a) = c.attempts.last().filter(|a| a.ended_at.is_none()) {
                        let trunk = a.trunk.as_ref().map_or("dialplan", |t| t.1.as_str());
                        let pdd = &self.stats.timings.customer_post_dial;
                        pdd.with(&[trunk]).observe(secs(a.started_at, now));
                    }
                    c.state = CallState::CustomerRinging;
                    self.emit(&mut c, events::CUSTOMER_RINGING, Some("B"), json!({}));
                }
            }
            LegEvent::Answered => {} // the runner reports answers in order
            LegEvent::Bridged {
                partner,
                destination,
            } => {
                if is_b {
                    drop(c);
                    self.customer_bridged(&cell, partner, destination);
                }
            }
            LegEvent::HungUp(f) => {
                // While the runner is still dialling a leg, its own result tells the story.
                let answered = if is_a { &c.a } else { &c.b }.answered_at.is_some();
                if !answered && !c.runner_done {
                    return;
                }
                if is_a && self.customer_moved(&mut c) {
                    // The customer talks on elsewhere: only the agent is gone.
                    self.leg_ended(&mut c, true, &f);
                    c.seen_at = SystemTime::now();
                    self.journal.put(&c);
                    // Bridged straight to another channel (what an attended
                    // transfer's Replaces does): that channel is the new party,
                    // even when its side of the bridge reports it.
                    let partner = c
                        .transfer_to
                        .as_deref()
                        .and_then(|t| Uuid::parse_str(t).ok());
                    if partner.is_some() {
                        c.transfer_to = None;
                    }
                    drop(c);
                    if let Some(p) = partner {
                        self.customer_bridged(&cell, p, None);
                    }
                    return;
                }
                // The agent's leg was moved elsewhere (uuid_transfer of the
                // A-leg) and the customer's leg ended after it: the agent's
                // side left first, and its leg is no longer ours to hang up.
                let agent_left = !is_a && self.agent_moved(&mut c);
                let other = if is_a { c.b.uuid } else { c.a.uuid };
                let other_live = if is_a { c.b.is_live() } else { c.a.is_live() };
                self.leg_ended(&mut c, is_a, &f);
                if c.first_end.is_none() {
                    c.first_end = Some(if is_a {
                        HangupBy::Agent
                    } else {
                        HangupBy::Customer
                    });
                }
                drop(c);
                if agent_left {
                    self.unindex_leg(&mut lock(&self.registry), other);
                }
                if other_live {
                    // The time limit ends both sides with its own cause.
                    let cause = if f.cause == CAUSE_TIME_LIMIT {
                        CAUSE_TIME_LIMIT
                    } else {
                        "NORMAL_CLEARING"
                    };
                    self.switch.hangup(other, cause);
                }
                self.finish_if_done(&cell);
            }
        }
    }

    /// Whether the agent's (answered, live) leg was moved elsewhere by the
    /// switch (`uuid_transfer` of the A-leg): it then leaves the call, which
    /// follows the customer's leg, and the CRM is told once
    /// (`pbx.call.transferred`, `moved_leg` A, no far end for the customer).
    pub(super) fn agent_moved(&self, c: &mut CallRecord) -> bool {
        if c.b.answered_at.is_none() || !c.a.is_live() || c.cancel.is_some() {
            return false;
        }
        let Some(to) = self.switch.transferred(c.a.uuid, c.b.uuid) else {
            return false;
        };
        let from = c.far_end().uuid;
        c.a.ended_at = Some(SystemTime::now());
        c.a.by_peer = Some(false);
        c.first_end.get_or_insert(HangupBy::Agent);
        c.transferred = true;
        let extra = json!({
            "moved_leg": "A",
            "destination": to,
            "far_end_uuid": null,
            "previous_far_end_uuid": from.to_string(),
            "transfer": c.parties.len() + 1,
        });
        self.emit(c, events::TRANSFERRED, Some("A"), extra);
        true
    }

    /// Whether the customer's (answered, live) leg has left the agent: a
    /// transfer the switch made, seen before or now.
    pub(super) fn customer_moved(&self, c: &mut CallRecord) -> bool {
        if c.b.answered_at.is_none() || !c.b.is_live() || c.cancel.is_some() {
            return false;
        }
        if !c.transferred {
            match self.switch.transferred(c.b.uuid, c.a.uuid) {
                Some(to) => {
                    c.transferred = true;
                    c.transfer_to = Some(to);
                }
                None => return false,
            }
        }
        true
    }

    /// The customer's leg is bridged to `partner`: after a transfer, a new
    /// party; the call follows it and says so (`pbx.call.transferred`).
    pub(super) fn customer_bridged(
        &self,
        cell: &CallCell,
        partner: Uuid,
        destination: Option<String>,
    ) {
        let mut c = lock(cell);
        if partner == c.a.uuid
            || c.party_index(partner).is_some()
            || c.state == CallState::Ended
            || !c.b.is_live()
        {
            return;
        }
        let from = c.far_end().uuid;
        c.transferred = true;
        let destination = c.transfer_to.take().or(destination);
        let mut leg = Leg::new(partner);
        let now = SystemTime::now();
        leg.started_at = Some(now);
        leg.answered_at = Some(now);
        let followed = self.switch.follow(partner, c.call_uuid);
        if !followed {
            // Already gone: no report of its end will come.
            leg.ended_at = Some(now);
        }
        c.parties.push(Party {
            leg,
            destination: destination.clone(),
            moved_leg: "B",
        });
        c.state = CallState::Bridged;
        let extra = json!({
            "moved_leg": "B",
            "destination": destination,
            "far_end_uuid": partner.to_string(),
            "previous_far_end_uuid": from.to_string(),
            "transfer": c.parties.len(),
        });
        self.emit(&mut c, events::TRANSFERRED, Some("B"), extra);
        let call_uuid = c.call_uuid;
        drop(c);
        self.index_leg(
            &mut lock(&self.registry),
            partner,
            call_uuid,
            LegRole::Party,
        );
    }

    pub(crate) fn agent_ringing(&self, c: &mut CallRecord) {
        if c.a.ringing_at.is_none() && c.a.ended_at.is_none() {
            c.a.ringing_at = Some(SystemTime::now());
            self.emit(c, events::RINGING, Some("A"), json!({}));
        }
    }

    pub(crate) fn leg_ended(&self, c: &mut CallRecord, is_a: bool, f: &Failure) {
        end_leg(if is_a { &mut c.a } else { &mut c.b }, f);
        // The recording is of the customer's leg: the switch says how it ended.
        if let (false, Some(r), Some(cause)) = (is_a, c.recording.as_mut(), &f.record_cause) {
            r.closed_with(cause);
        }
    }
}
