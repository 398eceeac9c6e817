//! What a call tells: its events, numbered in order and committed with its
//! journal record; its end (`pbx.call.hangup`) and CDR (`pbx.cdr.created`).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{json, Value};
use uuid::Uuid;

use super::{lock, CallCell, Engine};
use crate::core::call::{CallRecord, CallState, HangupBy, OUTCOME_TIME_LIMIT};
use crate::core::events::{self, CallEvent};
use crate::core::journal::journal_write;
use crate::core::store::{Committed, StoreError, Write, COMMIT_TIMEOUT};

impl Engine {
    /// Emits an event of this call, numbered in order, under the call's lock.
    pub(crate) fn emit(
        &self,
        c: &mut CallRecord,
        kind: &'static str,
        leg: Option<&str>,
        extra: Value,
    ) {
        let mut data = c.event_base(leg);
        if let Value::Object(e) = extra {
            data.extend(e);
        }
        c.seq += 1;
        let event = CallEvent::new(
            kind,
            c.call_uuid,
            c.seq,
            c.token.clone(),
            Value::Object(data),
        );
        c.seen_at = SystemTime::now();
        self.emit_event(c, event, false);
    }

    /// Hands `event` to the sinks with the call's journal record: in a
    /// durable journal, the event's spool row and the record (its `seq`,
    /// its state) are one commit, so a crash never leaves one without the
    /// other (no event lost, none emitted twice under two ids).
    ///
    /// Nobody waits for that commit: the sinks get the event from the
    /// store's thread once it is committed (in commit order, so a call's
    /// events stay in seq order), and the thread that emits (FreeSWITCH's
    /// event thread, a call's) never waits on the disk. The call's last
    /// commit (`ended`, its CDR) keeps the ended record readable in
    /// `ending` until the store has it.
    pub(super) fn emit_event(&self, c: &CallRecord, event: CallEvent, ended: bool) {
        let mut writes = self.sink.durable_writes(&event);
        self.journal_record(c, ended, &mut writes);
        let Some(store) = self.store().filter(|_| !writes.is_empty()) else {
            return self.sink.committed(&event);
        };
        let call_uuid = c.call_uuid;
        if ended {
            lock(&self.ending).insert(call_uuid, c.clone());
        }
        // The event goes with the write and comes back on refusal.
        let slot = Arc::new(Mutex::new(Some(event)));
        let (sink, e) = (Arc::clone(&self.sink), Arc::clone(&slot));
        let ending = Arc::clone(&self.ending);
        let then: Committed = Box::new(move |r| {
            match (r, lock(&e).take()) {
                (_, None) => {}
                (Ok(()) | Err(StoreError::Timeout), Some(e)) => sink.committed(&e),
                (Err(err), Some(e)) => sink.uncommitted(&e, &err),
            }
            if ended {
                lock(&ending).remove(&call_uuid);
            }
        });
        if store.write_then(writes, then).is_err() {
            // The store refused: the sinks try on their own (and say so).
            if ended {
                lock(&self.ending).remove(&call_uuid);
            }
            if let Some(event) = lock(&slot).take() {
                self.sink.emit(&event);
            }
        }
    }

    /// The call's journal record: added to `writes` when the journal is
    /// durable (it commits with them), else handed to the journal at once.
    pub(super) fn journal_record(&self, c: &CallRecord, ended: bool, writes: &mut Vec<Write>) {
        if self.journal.durable() {
            writes.push(journal_write(c, ended));
        } else if ended {
            self.journal.remove(c.call_uuid);
        } else {
            self.journal.put(c);
        }
    }

    /// Commits `writes` with the call's journal record, waiting for it.
    pub(super) fn commit_call(
        &self,
        c: &CallRecord,
        ended: bool,
        mut writes: Vec<Write>,
    ) -> Result<(), StoreError> {
        self.journal_record(c, ended, &mut writes);
        match self.store() {
            Some(store) if !writes.is_empty() => store.write(writes, COMMIT_TIMEOUT),
            _ => Ok(()),
        }
    }

    /// Ends the call when nothing of it is left: the runner is done and no leg is live.
    pub(crate) fn finish_if_done(&self, cell: &CallCell) {
        let mut c = lock(cell);
        let party_live = c.parties.iter().any(|p| p.leg.is_live());
        if c.state == CallState::Ended
            || !c.runner_done
            || c.a.is_live()
            || c.b.is_live()
            || party_live
        {
            return;
        }
        c.state = CallState::Ended;
        // Every leg is gone: the switch closed the file.
        if let Some(r) = c.recording.as_mut() {
            r.finish();
        }
        if c.outcome.is_none() && c.cancel.is_none() && c.hit_time_limit() {
            c.outcome = Some(OUTCOME_TIME_LIMIT);
            c.hangup_by = Some(HangupBy::System);
        }
        if c.outcome.is_none() {
            c.outcome = Some(match (c.b.answered_at, c.cancel) {
                (Some(_), _) => "completed",
                (None, Some(HangupBy::Api)) => "cancelled",
                (None, Some(_)) => "aborted",
                (None, None) => "failed",
            });
        }
        if c.hangup_by.is_none() {
            c.hangup_by = Some(match c.cancel {
                Some(by) => by,
                None if c.b.answered_at.is_some() => c.who_hung_up(),
                None => c.first_end.unwrap_or(HangupBy::System),
            });
        }
        let leg_name = c.ending_leg().0;
        let (cause, sip) = c.cause();
        let extra = json!({
            "hangup_cause": cause,
            "sip_code": sip,
            "hangup_by": c.hangup_by.map(HangupBy::as_str),
            "outcome": c.outcome,
            "duration": c.duration(),
            "billsec": c.billsec(),
            "recovered": c.recovered,
        });
        if let (Some(answered), false) = (c.b.answered_at, c.recovered) {
            let talk = super::timings::secs(answered, c.end_time());
            self.stats.timings.talk.observe(talk);
        }
        self.emit(&mut c, events::HANGUP, Some(leg_name), extra);
        self.emit_cdr(&mut c);
        let outcome = c.outcome.unwrap_or("failed");
        let (call_uuid, a, b) = (c.call_uuid, c.a.uuid, c.b.uuid);
        let parties: Vec<Uuid> = c.parties.iter().map(|p| p.leg.uuid).collect();
        drop(c);
        *lock(&self.stats.outcomes).entry(outcome).or_default() += 1;
        let mut reg = lock(&self.registry);
        if reg.active.remove(&call_uuid).is_some() {
            for leg in [a, b].into_iter().chain(parties) {
                self.unindex_leg(&mut reg, leg);
            }
        }
    }

    /// The `pbx.cdr.created` of an ended call (its `pbx.call.hangup` was
    /// emitted); the call leaves the journal.
    pub(crate) fn emit_cdr(&self, c: &mut CallRecord) {
        let cdr = c.cdr_json();
        c.seq += 1;
        let event = CallEvent::new(events::CDR, c.call_uuid, c.seq, c.token.clone(), cdr);
        c.seen_at = SystemTime::now();
        self.emit_event(c, event, true);
    }
}
