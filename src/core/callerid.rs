//! Which number the customer sees.

use super::request::ClickToCallRequest;
use crate::switch::Extension;

/// The request's `caller_id`, else the extension's `outbound_caller_id_number`,
/// else the extension itself (contract order).
pub fn resolve(req: &ClickToCallRequest, ext: &Extension) -> String {
    req.caller_id
        .clone()
        .or_else(|| {
            ext.outbound_caller_id_number
                .clone()
                .filter(|n| super::config::is_phone(n, 1, 32))
        })
        .unwrap_or_else(|| req.from_extension.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ext(out: Option<&str>) -> Extension {
        Extension {
            id: "1001".into(),
            domain: "d".into(),
            active: true,
            outbound_caller_id_number: out.map(str::to_string),
            outbound_caller_id_name: None,
        }
    }

    #[test]
    fn request_then_extension_then_itself() {
        let with = ClickToCallRequest::from_value(
            &json!({"from_extension":"1001","to_phone":"0987","caller_id":"0900000020"}),
        )
        .unwrap();
        let without =
            ClickToCallRequest::from_value(&json!({"from_extension":"1001","to_phone":"0987"}))
                .unwrap();
        assert_eq!(resolve(&with, &ext(Some("0900000021"))), "0900000020");
        assert_eq!(resolve(&without, &ext(Some("0900000021"))), "0900000021");
        assert_eq!(resolve(&without, &ext(None)), "1001");
        // A directory value that is not a number is not presented.
        assert_eq!(resolve(&without, &ext(Some("Sales <x>"))), "1001");
    }
}
