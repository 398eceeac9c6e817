//! The hook through which the webhook service (a separate part of the core)
//! exposes its admin endpoints. The HTTP layer only routes to it.

use serde_json::Value;

use crate::core::errors::ApiError;

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
