//! `c2c webhooks [status|dead|replay <id>|replay-all]`: answers in the
//! FreeSWITCH style, `+OK …` or `-ERR <code> <message>`, each ending in a newline.

use serde_json::Value;

use super::{ReplayError, WebhookService};

/// The usage line for anything `c2c webhooks` does not know.
pub const USAGE: &str =
    "-ERR bad_request usage: c2c webhooks [status|dead|replay <id>|replay-all]\n";

/// Runs one `c2c webhooks …` command (`args` without the word `webhooks`).
pub fn cli(service: &WebhookService, args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.as_slice() {
        [] | ["status"] => format!("+OK webhooks\n{}\n", pretty(&service.status_json())),
        ["dead"] => {
            let dead: Vec<Value> = service
                .dead_letters()
                .iter()
                .map(|d| d.summary_json())
                .collect();
            format!(
                "+OK {} dead letters\n{}\n",
                dead.len(),
                pretty(&Value::Array(dead))
            )
        }
        ["replay", id] => match service.replay(id) {
            Ok(()) => format!("+OK replaying {id}\n"),
            Err(e @ ReplayError::NotFound(_)) => format!("-ERR not_found {e}\n"),
            Err(e) => format!("-ERR spool_unavailable {e}\n"),
        },
        ["replay-all"] => match service.replay_all() {
            (n, None) => format!("+OK replaying {n} dead letters\n"),
            (n, Some(e)) => format!("-ERR spool_unavailable {e} (after replaying {n})\n"),
        },
        _ => USAGE.to_string(),
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
