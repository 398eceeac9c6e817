//! The webhook service as the engine's event sink: every event is spooled
//! (committed with the call's record) before it is queued for delivery.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::WebhookService;
use crate::core::errors::{codes, ApiError};
use crate::core::events::{CallEvent, EventSink};
use crate::core::log::LogLevel;
use crate::core::store::{SpoolRecord, StoreError, Write, COMMIT_TIMEOUT};

impl EventSink for WebhookService {
    fn emit(&self, event: &CallEvent) {
        let sh = &self.shared;
        let Some(record) = self.record_of(event) else {
            sh.stats.no_destination.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let until = std::time::Instant::now() + COMMIT_TIMEOUT;
        let result = loop {
            match sh
                .store
                .write(vec![Write::SpoolPut(record.clone())], COMMIT_TIMEOUT)
            {
                // The writer's queue is full: wait for it rather than drop.
                Err(StoreError::Overloaded) if std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                r => break r,
            }
        };
        match result {
            Ok(()) => {}
            Err(StoreError::Timeout) => {
                // Queued but not yet committed: it will be, in order with
                // its removal after delivery. Say so; deliver it anyway.
                sh.log_record(
                    LogLevel::Error,
                    &record,
                    &format!(
                        "webhooks: event {} ({} of call {}, seq {}) not committed within {:?}: \
                         the store is slow; queued for delivery anyway",
                        event.id, event.event_type, event.call_uuid, event.seq, COMMIT_TIMEOUT
                    ),
                );
            }
            Err(e) => {
                sh.stats.spool_errors.fetch_add(1, Ordering::Relaxed);
                *sh.stats
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                sh.log_record(
                    LogLevel::Error,
                    &record,
                    &format!(
                        "webhooks: {e}: event {} ({} of call {}, seq {}) NOT queued for delivery",
                        event.id, event.event_type, event.call_uuid, event.seq
                    ),
                );
                return;
            }
        }
        self.enqueue(record);
    }

    fn durable_writes(&self, event: &CallEvent) -> Vec<Write> {
        match self.record_of(event) {
            Some(r) => vec![Write::SpoolPut(r)],
            None => Vec::new(),
        }
    }

    fn committed(&self, event: &CallEvent) {
        let sh = &self.shared;
        if sh
            .destinations()
            .for_token(event.token.as_deref())
            .is_none()
        {
            sh.stats.no_destination.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.enqueue(SpoolRecord::from_event(event));
    }

    fn uncommitted(&self, event: &CallEvent, error: &StoreError) {
        let sh = &self.shared;
        sh.stats.spool_errors.fetch_add(1, Ordering::Relaxed);
        *sh.stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
        let record = SpoolRecord::from_event(event);
        sh.log_record(
            LogLevel::Error,
            &record,
            &format!(
                "webhooks: {error}: event {} ({} of call {}, seq {}) is not in the store; \
                 delivering it from memory (a restart before it is delivered loses it)",
                event.id, event.event_type, event.call_uuid, event.seq
            ),
        );
        self.committed(event);
    }

    fn admit(&self) -> Result<(), ApiError> {
        let sh = &self.shared;
        if !sh.spool.above_high_water() {
            return Ok(());
        }
        sh.stats.refused_calls.fetch_add(1, Ordering::Relaxed);
        Err(ApiError::new(
            503,
            codes::SPOOL_FULL,
            format!(
                "the webhook spool holds {} bytes, over its high-water mark of {} \
                 ({} events wait for the CRM): new calls are refused until they are delivered",
                sh.spool.bytes(),
                sh.spool.high_water,
                sh.spool.events.load(Ordering::Relaxed)
            ),
        ))
    }
}
