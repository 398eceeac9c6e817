//! Erasing a call's recording (a customer's erasure request): the file
//! goes, the call's record stays and says so.

use uuid::Uuid;

use super::{lock, Engine};
use crate::core::call::CallRecord;
use crate::core::errors::{codes, ApiError};
use crate::core::recording::RecordingState;

impl Engine {
    /// Erases the recording of `call_uuid` (in flight or ended); returns
    /// the call as it now reads. 404 when it has none, 409 while the
    /// switch is still writing it.
    pub fn erase_recording(&self, call_uuid: Uuid) -> Result<CallRecord, ApiError> {
        let active = lock(&self.registry).active.get(&call_uuid).cloned();
        if let Some(cell) = active {
            let mut c = lock(&cell);
            erase(&mut c)?;
            self.journal.put(&c);
            return Ok(c.clone());
        }
        let mut c = self.call(call_uuid).ok_or_else(|| {
            ApiError::new(404, codes::CALL_NOT_FOUND, format!("no call {call_uuid}"))
        })?;
        erase(&mut c)?;
        self.journal.update_ended(&c);
        if let Some(e) = lock(&self.ending).get_mut(&call_uuid) {
            e.recording = c.recording.clone();
        }
        Ok(c)
    }
}

fn erase(c: &mut CallRecord) -> Result<(), ApiError> {
    let Some(r) = c.recording.as_mut() else {
        return Err(no_recording(c.call_uuid));
    };
    match r.state {
        RecordingState::Recording => Err(ApiError::new(
            409,
            codes::RECORDING_IN_PROGRESS,
            "the call is still being recorded: erase it once the call ended",
        )),
        RecordingState::Deleted => Ok(()),
        _ => r.erase("erased on request").map_err(|e| {
            ApiError::new(
                500,
                codes::INTERNAL,
                format!("the recording could not be erased: {e}"),
            )
        }),
    }
}

/// 404 `recording_not_found`.
pub(crate) fn no_recording(call_uuid: Uuid) -> ApiError {
    ApiError::new(
        404,
        codes::RECORDING_NOT_FOUND,
        format!("call {call_uuid} has no recording"),
    )
}
