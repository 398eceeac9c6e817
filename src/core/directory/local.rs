//! Calls on one switch: this node's engine, and its journal for ended calls.

use std::sync::Arc;

use uuid::Uuid;

use super::interface::{CallDirectory, Found};
use crate::core::call::CallRecord;
use crate::core::engine::Engine;

/// The local backend.
pub struct LocalDirectory {
    engine: Arc<Engine>,
}

impl LocalDirectory {
    /// Calls of `engine`.
    pub fn new(engine: Arc<Engine>) -> LocalDirectory {
        LocalDirectory { engine }
    }
}

/// A call of `engine` this token may see: its own, or one placed from
/// fs_cli. Another CRM's calls on the same switch do not exist for it.
pub fn visible(engine: &Engine, call_uuid: Uuid, token: &str) -> Option<CallRecord> {
    let call = engine.call(call_uuid)?;
    match call.token.as_deref() {
        Some(owner) if owner != token => None,
        _ => Some(call),
    }
}

impl CallDirectory for LocalDirectory {
    fn find(&self, call_uuid: Uuid, token: &str, _method: &str, _may_forward: bool) -> Found {
        visible(&self.engine, call_uuid, token).map_or(Found::Nowhere, |c| Found::Here(Box::new(c)))
    }
}
