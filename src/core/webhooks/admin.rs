//! The webhook service as the HTTP API's admin endpoints and metrics see it.

use serde_json::{json, Value};

use super::{ReplayError, WebhookService};
use crate::core::errors::{codes, ApiError};
use crate::core::metrics::exposition::Kind;
use crate::core::metrics::Exposition;

fn replay_error(e: ReplayError) -> ApiError {
    match e {
        ReplayError::NotFound(_) => ApiError::new(404, codes::DEAD_LETTER_NOT_FOUND, e.to_string()),
        ReplayError::Spool(_) => ApiError::new(503, codes::WEBHOOKS_UNAVAILABLE, e.to_string()),
    }
}

/// Admin operations of the webhook service, as the API serves them.
///
/// `GET /api/pbx/webhooks/status` → [`WebhookAdmin::status`],
/// `GET /api/pbx/webhooks/dead-letters` → [`WebhookAdmin::dead_letters`],
/// `POST /api/pbx/webhooks/dead-letters/{id}/replay` → [`WebhookAdmin::replay`],
/// `POST /api/pbx/webhooks/dead-letters/replay` → [`WebhookAdmin::replay_all`].
pub trait WebhookAdmin: Send + Sync {
    /// Queue depth, spool size, dead letters… as a JSON object.
    fn status(&self) -> Value;
    /// Dead-lettered events, each a JSON object with at least `id`.
    fn dead_letters(&self) -> Vec<Value>;
    /// Puts one dead letter back in the queue; returns it. Unknown id: an
    /// error with status 404 (e.g. code `dead_letter_not_found`).
    fn replay(&self, id: &str) -> Result<Value, ApiError>;
    /// Puts every dead letter back in the queue; returns how many.
    fn replay_all(&self) -> Result<usize, ApiError>;
}

impl WebhookAdmin for WebhookService {
    fn status(&self) -> Value {
        self.status_json()
    }

    fn dead_letters(&self) -> Vec<Value> {
        WebhookService::dead_letters(self)
            .iter()
            .map(|d| d.summary_json())
            .collect()
    }

    fn replay(&self, id: &str) -> Result<Value, ApiError> {
        WebhookService::replay(self, id).map_err(replay_error)?;
        Ok(json!({ "id": id, "status": "queued" }))
    }

    fn replay_all(&self) -> Result<usize, ApiError> {
        match WebhookService::replay_all(self) {
            (n, None) => Ok(n),
            (_, Some(e)) => Err(replay_error(e)),
        }
    }
}

/// The delivery state `/metrics` shows: (name, key in the status JSON,
/// type, help).
const FAMILIES: [(&str, &str, Kind, &str); 13] = [
    (
        "c2c_webhook_queue_depth",
        "queue_depth",
        Kind::Gauge,
        "Events queued for delivery (in flight included).",
    ),
    (
        "c2c_webhook_in_flight",
        "in_flight",
        Kind::Gauge,
        "Deliveries being attempted now.",
    ),
    (
        "c2c_webhook_threads",
        "threads",
        Kind::Gauge,
        "Delivery threads running now (started on demand, ended after worker-idle).",
    ),
    (
        "c2c_webhook_delivered_total",
        "delivered",
        Kind::Counter,
        "Events delivered (2xx).",
    ),
    (
        "c2c_webhook_failed_attempts_total",
        "failed_attempts",
        Kind::Counter,
        "Delivery attempts that failed.",
    ),
    (
        "c2c_webhook_dead_lettered_total",
        "dead_lettered",
        Kind::Counter,
        "Events moved to the dead letters.",
    ),
    (
        "c2c_webhook_dead_letters",
        "dead_letters",
        Kind::Gauge,
        "Dead letters kept now.",
    ),
    (
        "c2c_webhook_spool_size",
        "spool_size",
        Kind::Gauge,
        "Undelivered events in the durable spool.",
    ),
    (
        "c2c_webhook_spool_bytes",
        "spool_bytes",
        Kind::Gauge,
        "Bytes of the undelivered events in the spool.",
    ),
    (
        "c2c_webhook_spool_capacity_bytes",
        "spool_capacity_bytes",
        Kind::Gauge,
        "The spool's bound (max-spool-bytes).",
    ),
    (
        "c2c_webhook_spool_high_water_bytes",
        "spool_high_water_bytes",
        Kind::Gauge,
        "Spool bytes above which new calls are refused (spool-high-water).",
    ),
    (
        "c2c_webhook_spool_over_capacity_total",
        "spool_over_capacity",
        Kind::Counter,
        "Events of accepted calls spooled past the bound (kept anyway).",
    ),
    (
        "c2c_calls_refused_spool_full_total",
        "refused_calls_spool_full",
        Kind::Counter,
        "New calls refused with 503 spool_full.",
    ),
];

impl WebhookService {
    /// Prometheus gauges and counters of delivery (`c2c_webhook_*`), as
    /// (name, value).
    pub fn gauges(&self) -> Vec<(String, f64)> {
        let s = self.status_json();
        FAMILIES
            .iter()
            .map(|(name, key, _, _)| (name.to_string(), s[*key].as_f64().unwrap_or(0.0)))
            .chain(std::iter::once((
                "c2c_webhook_spool_full".to_string(),
                if s["accepting_calls"] == true {
                    0.0
                } else {
                    1.0
                },
            )))
            .collect()
    }

    /// Writes the delivery metrics, typed and described, with the delivery
    /// histograms.
    pub fn write_metrics(&self, out: &mut Exposition) {
        let s = self.status_json();
        for (name, key, kind, help) in FAMILIES {
            out.family(name, kind, help);
            out.sample(name, &[], s[key].as_f64().unwrap_or(0.0));
        }
        let full = f64::from(u8::from(s["accepting_calls"] != true));
        out.gauge(
            "c2c_webhook_spool_full",
            "1 while the spool is past its high-water mark (new calls get 503).",
            full,
        );
        let d = &self.shared.stats.delivery;
        out.histogram(
            "c2c_webhook_delivery_lag_seconds",
            "Delivered events: seconds from the event's created_at to its 2xx.",
            &[],
            &[(Vec::new(), d.lag.snapshot())],
        );
        out.histogram(
            "c2c_webhook_delivery_attempts",
            "Delivered events: attempts each took (the last one the 2xx).",
            &[],
            &[(Vec::new(), d.attempts.snapshot())],
        );
    }
}
