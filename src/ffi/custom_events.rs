//! Every call event mirrored as a FreeSWITCH CUSTOM event
//! `zorio_c2c::<type without "pbx.">` (body: the event JSON), handed to the
//! switch's event subscribers by a [`Courier`]'s thread itself, as one of
//! its dispatch threads would (`switch_event_deliver`): never queued behind
//! the switch's own events, whose one queue stalls the whole switch when
//! full, and never waited on by the durable store's writer that emits them
//! (every 202 waits on it).

use std::ffi::{c_char, CString};
use std::sync::Arc;
use std::time::Duration;

use crate::core::courier::{Courier, Deliver};
use crate::core::events::{CallEvent, EventSink};

use super::cstr::c_string;
use super::events::subclass_of;
use super::log::{self, Level};
use super::sys;

/// Events waiting for the switch at most; past it the oldest are dropped.
const QUEUE: usize = 65_536;
/// The courier's thread leaves after this long with nothing to fire.
const IDLE: Duration = Duration::from_secs(5);

/// Mirrors every call event as a FreeSWITCH CUSTOM event, in order.
pub(crate) struct CustomEventSink {
    courier: Courier<CallEvent>,
}

impl CustomEventSink {
    pub(crate) fn new() -> CustomEventSink {
        let deliver: Deliver<CallEvent> = Arc::new(|event| fire(&event));
        CustomEventSink {
            courier: Courier::new("c2c-fs-events", QUEUE, IDLE, deliver),
        }
    }

    /// Fires what is queued until `deadline`, then stops; `false` when a
    /// fire is still in the switch (our code must then stay loaded).
    pub(crate) fn close(&self, deadline: Duration) -> bool {
        let done = self.courier.close(deadline);
        let dropped = self.courier.dropped();
        if dropped > 0 {
            log::warn(&format!(
                "{dropped} CUSTOM events were not fired (the switch's event queue stayed full)"
            ));
        }
        done
    }
}

impl EventSink for CustomEventSink {
    fn emit(&self, event: &CallEvent) {
        self.courier.push(event.clone());
    }
}

fn fire(event: &CallEvent) {
    let data = &event.data;
    let text = |k: &str| data.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let headers = [
        ("Zorio-C2C-Event-Type", event.event_type.to_string()),
        ("Zorio-C2C-Event-ID", event.id.clone()),
        ("Zorio-C2C-Call-UUID", event.call_uuid.to_string()),
        ("Zorio-C2C-Seq", event.seq.to_string()),
        ("Zorio-C2C-Leg", text("leg").to_string()),
        ("Zorio-C2C-Leg-UUID", text("leg_uuid").to_string()),
    ];
    let names: Vec<CString> = headers.iter().map(|h| c_string(h.0)).collect();
    let values: Vec<CString> = headers.iter().map(|h| c_string(&h.1)).collect();
    let name_ptrs: Vec<*const c_char> = names.iter().map(|c| c.as_ptr()).collect();
    let value_ptrs: Vec<*const c_char> = values.iter().map(|c| c.as_ptr()).collect();
    let subclass = c_string(&subclass_of(event.event_type));
    let body = c_string(&event.envelope().to_string());
    // SAFETY: all strings and both pointer arrays (of equal length) live
    // until the call returns; FreeSWITCH copies what it keeps.
    let st = unsafe {
        sys::zc2c_fire_custom(
            subclass.as_ptr(),
            name_ptrs.as_ptr(),
            value_ptrs.as_ptr(),
            name_ptrs.len(),
            body.as_ptr(),
        )
    };
    let uuid = event.log_uuid();
    // The call's story in the switch's log, beside the switch's own lines for that channel.
    let leg = match data.get("leg").and_then(|l| l.as_str()) {
        Some(l) => format!(", leg {l}"),
        None => String::new(),
    };
    log::log(
        Level::Info,
        Some(&uuid),
        &format!(
            "{} of call {} (seq {}{leg})",
            event.event_type, event.call_uuid, event.seq
        ),
    );
    if st != sys::ZC2C_STATUS_SUCCESS as i32 {
        log::log(
            Level::Warning,
            Some(&uuid),
            &format!("could not fire CUSTOM {}", subclass.to_string_lossy()),
        );
    }
}
