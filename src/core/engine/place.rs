//! Accepting a click-to-call: validate, resolve the agent, the route and the
//! caller id, commit the call durably, then start its thread.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use uuid::Uuid;

use super::{lock, Accepted, CallCell, Engine};
use crate::core::call::{CallRecord, CallState, Leg};
use crate::core::callerid::{self, Chosen};
use crate::core::config::{CallerIdStrategy, Config};
use crate::core::errors::{codes, ApiError, FieldError};
use crate::core::journal;
use crate::core::recording::RecordCalls;
use crate::core::request::ClickToCallRequest;
use crate::core::routing::{self, RoutePlan};
use crate::core::store::Write;
use crate::switch::{Extension, LegRole};

impl Engine {
    /// Validates, resolves and starts a call; returns at once with its UUIDs.
    pub fn place(
        self: &Arc<Self>,
        req: &ClickToCallRequest,
        token: Option<&str>,
    ) -> Result<Accepted, ApiError> {
        self.place_with(req, token, &|_| Vec::new())
    }

    /// [`Engine::place`], committing `durable(&accepted)` (e.g. the
    /// idempotency key's answer) in the store before the call starts: when
    /// this returns `Ok`, what it promised is durable. A commit that does not
    /// come within [`crate::core::store::COMMIT_TIMEOUT`] refuses the call (503), nobody is dialled.
    pub fn place_with(
        self: &Arc<Self>,
        req: &ClickToCallRequest,
        token: Option<&str>,
        durable: &dyn Fn(&Accepted) -> Vec<Write>,
    ) -> Result<Accepted, ApiError> {
        self.place_as(Uuid::new_v4(), req, token, durable)
    }

    /// [`Engine::place_with`] under a `call_uuid` chosen by the caller (a
    /// cluster node records the call's owner in the same Redis round trip
    /// that admits the request, before the call exists).
    pub fn place_as(
        self: &Arc<Self>,
        call_uuid: Uuid,
        req: &ClickToCallRequest,
        token: Option<&str>,
        durable: &dyn Fn(&Accepted) -> Vec<Write>,
    ) -> Result<Accepted, ApiError> {
        let result = self.try_place(call_uuid, req, token, durable);
        let counter = if result.is_ok() {
            &self.stats.accepted
        } else {
            &self.stats.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    pub(super) fn try_place(
        self: &Arc<Self>,
        call_uuid: Uuid,
        req: &ClickToCallRequest,
        token: Option<&str>,
        durable: &dyn Fn(&Accepted) -> Vec<Write>,
    ) -> Result<Accepted, ApiError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                503,
                codes::SHUTTING_DOWN,
                "the module is shutting down",
            ));
        }
        // Refuse before the call exists if its events could not be kept.
        self.sink.admit()?;
        let config = self.config();
        let domain = config
            .domain
            .clone()
            .unwrap_or_else(|| self.switch.default_domain());
        let ext = self
            .switch
            .lookup_extension(&domain, &req.from_extension)
            .map_err(|e| ApiError::new(503, codes::SWITCH_UNAVAILABLE, e.0))?
            .ok_or_else(|| {
                ApiError::new(
                    422,
                    codes::EXTENSION_NOT_FOUND,
                    format!(
                        "extension {} does not exist in {domain}",
                        req.from_extension
                    ),
                )
            })?;
        if !ext.active {
            return Err(ApiError::new(
                422,
                codes::EXTENSION_INACTIVE,
                format!("extension {} is inactive", req.from_extension),
            ));
        }
        // An agent on any call of the switch (ours are checked again below,
        // under the registry's lock, against requests racing this one).
        if config.reject_busy_agent && self.switch.extension_in_use(&domain, &req.from_extension) {
            return Err(agent_busy(&req.from_extension));
        }
        if req.record == Some(true) && config.record_calls == RecordCalls::Never {
            return Err(ApiError {
                status: 422,
                code: codes::RECORDING_DISABLED,
                message: "this switch records no calls (record-calls is never)".into(),
                fields: vec![FieldError {
                    field: "record".into(),
                    code: codes::RECORDING_DISABLED,
                    message: "recording is disabled on this switch".into(),
                }],
            });
        }
        let plan = routing::plan(&config, req)?;
        let chosen = self.caller_id(&config, req, &ext, &plan);
        let now = SystemTime::now();
        let record = CallRecord {
            call_uuid,
            token: token.map(str::to_string),
            from_extension: req.from_extension.clone(),
            domain,
            to_phone: req.to_phone.clone(),
            caller_id: chosen.number,
            caller_id_rule: Some(chosen.rule),
            routing_mode: plan.mode,
            reported_trunk: plan.reported_trunk().cloned(),
            headers: req.headers.clone(),
            created_at: now,
            state: CallState::Queued,
            a: Leg::new(Uuid::new_v4()),
            b: Leg::new(Uuid::new_v4()),
            attempts: Vec::new(),
            hangup_by: None,
            cancel: None,
            outcome: None,
            runner_done: false,
            seq: 0,
            instance: journal::instance(),
            seen_at: now,
            recovered: false,
            transferred: false,
            transfer_to: None,
            parties: Vec::new(),
            first_end: None,
            time_limit: req.time_limit.or(config.max_call_duration),
            record: config.record_calls.records(req.record),
            recording: None,
        };
        let accepted = Accepted {
            call_uuid: record.call_uuid.to_string(),
            a_leg_uuid: record.a.uuid.to_string(),
            b_leg_uuid: record.b.uuid.to_string(),
            from_extension: record.from_extension.clone(),
            to_phone: record.to_phone.clone(),
            caller_id: record.caller_id.clone(),
            trunk_id: record.reported_trunk.as_ref().map(|t| t.0),
            trunk_name: record.reported_trunk.as_ref().map(|t| t.1.clone()),
            routing_mode: record.routing_mode,
            status: "queued",
        };
        let (call_uuid, a, b) = (record.call_uuid, record.a.uuid, record.b.uuid);
        let agent = format!("{}@{}", record.from_extension, record.domain);
        {
            let mut reg = lock(&self.registry);
            reg.runners.retain(|h| !h.is_finished());
            self.check_capacity(&config, &reg, reg.reserved + 1)?;
            if config.reject_busy_agent {
                let ours = reg.active.values().any(|c| {
                    let c = lock(c);
                    c.a.ended_at.is_none()
                        && c.from_extension == record.from_extension
                        && c.domain == record.domain
                });
                if ours || !reg.placing.insert(agent.clone()) {
                    return Err(agent_busy(&record.from_extension));
                }
            }
            reg.reserved += 1;
        }
        // The accepted call is in the journal before its 202 leaves, in one
        // commit with what the caller promises with it (its Idempotency-Key's
        // answer); outside the registry's lock, so leg events go on meanwhile.
        let mut writes = durable(&accepted);
        if config.caller_id_strategy == CallerIdStrategy::Sticky && req.caller_id.is_none() {
            // The number used is the one this customer's callback should reach.
            writes.push(Write::StickyPut {
                to_phone: record.to_phone.clone(),
                number: record.caller_id.clone(),
                expires: now + config.sticky_ttl,
            });
        }
        let committed = self.commit_call(&record, false, writes).map_err(|e| {
            ApiError::new(
                503,
                codes::STORE_UNAVAILABLE,
                format!("the call could not be recorded durably: {e}"),
            )
        });
        let cell: CallCell = Arc::new(Mutex::new(record));
        {
            let mut reg = lock(&self.registry);
            reg.reserved -= 1;
            reg.placing.remove(&agent);
            committed?;
            if let Err(e) = self.check_capacity(&config, &reg, 1) {
                drop(reg);
                self.journal.remove(call_uuid);
                return Err(e);
            }
            reg.active.insert(call_uuid, Arc::clone(&cell));
            // Released by the runner as it opens them ([`Unopened`]).
            reg.unopened += 2;
            self.index_leg(&mut reg, a, call_uuid, LegRole::Agent);
            self.index_leg(&mut reg, b, call_uuid, LegRole::Customer);
        }
        // The thread starts outside the registry's lock (leg events, on
        // FreeSWITCH's event thread, need it); the call is in it already.
        let engine = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("c2c-call-{}", &accepted.call_uuid[..8]))
            .spawn(move || engine.run_call(cell, config, plan));
        let mut reg = lock(&self.registry);
        match spawned {
            Ok(h) => reg.runners.push(h),
            Err(e) => {
                reg.unopened = reg.unopened.saturating_sub(2);
                reg.active.remove(&call_uuid);
                self.unindex_leg(&mut reg, a);
                self.unindex_leg(&mut reg, b);
                drop(reg);
                self.journal.remove(call_uuid);
                return Err(ApiError::new(503, codes::CAPACITY_EXCEEDED, e.to_string()));
            }
        }
        Ok(accepted)
    }

    /// The caller id of a call about to be placed, by `<caller-ids strategy>`
    /// ([`crate::core::callerid::choose`]); `sticky` asks the store which number
    /// the customer was last called from (a store that cannot answer: as if
    /// it remembered none).
    fn caller_id(
        &self,
        config: &Config,
        req: &ClickToCallRequest,
        ext: &Extension,
        plan: &RoutePlan,
    ) -> Chosen {
        let trunk = plan
            .candidates
            .first()
            .and_then(|c| c.trunk.as_ref())
            .map(|t| t.0);
        let sticky = match (&self.store, config.caller_id_strategy) {
            (Some(store), CallerIdStrategy::Sticky) if req.caller_id.is_none() => {
                store.sticky_get(&req.to_phone).ok().flatten()
            }
            _ => None,
        };
        callerid::choose(config, req, ext, trunk, sticky.as_deref())
    }
}

/// 409: the agent is already on a call (`agent-busy reject`).
fn agent_busy(extension: &str) -> ApiError {
    ApiError::new(
        409,
        codes::AGENT_BUSY,
        format!("extension {extension} is already on a call"),
    )
}
