//! The fs_cli command `c2c`: the same handler and error codes as the HTTP API,
//! answering `+OK …` / `-ERR <code> <message>` as FreeSWITCH modules do.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::admission::{Admission, Ask, Verdict};
use super::config::{Config, ConfigError};
use super::engine::Engine;
use super::errors::{codes, ApiError};
use super::request::ClickToCallRequest;

/// Every form of the command and what it does: `c2c help` lists them, the
/// usage line and fs_cli's tab completion ([`completions`]) are made from them.
pub const FORMS: &[(&str, &str)] = &[
    (
        "<from_extension> <to_phone>",
        "place a call: ring the agent, then dial the customer",
    ),
    (
        "<JSON request body>",
        "place a call with every option of the HTTP request, e.g. {\"from_extension\":\"1001\",\"to_phone\":\"0987654321\",\"trunk_id\":4}",
    ),
    ("status", "the calls in flight, then each trunk's channels, CPS tokens and queue"),
    (
        "status <call_uuid>",
        "one call: legs, attempts, trunk, hangup cause",
    ),
    ("hangup <call_uuid>", "hang a call up"),
    (
        "reload",
        "read the config again (a bad one is refused whole, the old one stays)",
    ),
    ("webhooks status", "webhook delivery state (also: c2c webhooks)"),
    ("webhooks dead", "the dead letters"),
    ("webhooks replay <id>", "deliver one dead letter again"),
    ("webhooks replay-all", "deliver every dead letter again"),
    ("help", "this list"),
];

/// The placeholder of [`FORMS`] that fs_cli completes with live call UUIDs.
const CALL_UUID: &str = "<call_uuid>";

/// The one-line usage answered for anything the command does not know (and
/// FreeSWITCH's `show api` syntax).
pub fn usage() -> String {
    let forms: Vec<String> = FORMS.iter().map(|(f, _)| format!("c2c {f}")).collect();
    format!("-USAGE: {}", forms.join(" | "))
}

/// `c2c help`: every form, one a line.
pub fn help() -> String {
    let width = FORMS.iter().map(|(f, _)| f.len()).max().unwrap_or(0) + 4;
    let mut out = String::from("+OK c2c commands\n");
    for (form, what) in FORMS {
        out += &format!("c2c {form:<width$}  {what}\n");
    }
    out
}

/// fs_cli's tab completion of `c2c`, as `switch_console_set_complete` lines
/// (`add c2c status <call_uuids>`…): the leading words of each form, with
/// `<call_uuid>` completed by the function named `call_uuids`.
pub fn completions(call_uuids: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for (form, _) in FORMS {
        let mut words = vec!["add", "c2c"];
        for w in form.split_whitespace() {
            if w == CALL_UUID {
                words.push(call_uuids);
            }
            if w.starts_with(['<', '[']) {
                break;
            }
            words.push(w);
        }
        let line = words.join(" ");
        if words.len() > 2 && !lines.contains(&line) {
            lines.push(line);
        }
    }
    // `add c2c status` says nothing `add c2c status <call_uuids>` does not.
    let longer = |l: &String| lines.iter().any(|m| m.starts_with(&format!("{l} ")));
    lines.iter().filter(|l| !longer(l)).cloned().collect()
}

/// What the command needs beyond the engine.
pub trait CommandHost {
    /// Reads the config file again (whole, or an error naming the element).
    fn load_config(&self) -> Result<Config, ConfigError>;
    /// Puts a freshly loaded config in force (the module's host also moves
    /// webhook destinations over: [`crate::app::App::apply_config`]).
    fn apply_config(&self, engine: &Engine, config: Config) -> Result<(), String> {
        engine.set_config(config);
        Ok(())
    }
    /// The admission in force (the module's: a cluster node records the
    /// call's owner, so any node finds it); `None`: calls are placed as they come.
    fn admission(&self) -> Option<Arc<dyn Admission>> {
        None
    }
    /// `c2c webhooks …`.
    fn webhooks(&self, args: &str) -> String {
        let _ = args;
        "-ERR not_available webhooks are not running".to_string()
    }
}

/// Runs one `c2c` command line; `cmd` may be empty (FreeSWITCH passes NULL).
pub fn execute(engine: &Arc<Engine>, host: &dyn CommandHost, cmd: &str) -> String {
    let cmd = cmd.trim();
    if cmd.starts_with('{') {
        return place(
            engine,
            host,
            cmd.as_bytes(),
            ClickToCallRequest::from_json_bytes(cmd.as_bytes()),
        );
    }
    let mut words = cmd.split_whitespace();
    let first = words.next().unwrap_or("");
    let rest: Vec<&str> = words.collect();
    match (first, rest.as_slice()) {
        ("status", []) => {
            let calls: Vec<_> = engine
                .active_calls()
                .iter()
                .map(|c| c.status_json())
                .collect();
            let trunks: Vec<_> = engine.trunk_status().iter().map(|t| t.to_json()).collect();
            let mut out = format!(
                "+OK {} calls in flight\n{}\n",
                calls.len(),
                pretty(&json!(calls))
            );
            let (window, waiting) = (engine.pace.window(), engine.pace.waiting());
            if window.is_some() || waiting > 0 {
                let pace = json!({
                    "window": window,
                    "in_setup": engine.pace.in_setup(),
                    "waiting": waiting,
                });
                out += &format!("setup pace:\n{}\n", pretty(&pace));
            }
            if !trunks.is_empty() {
                out += &format!("trunks:\n{}\n", pretty(&json!(trunks)));
            }
            out
        }
        ("status", [id]) => match parse_uuid(id).and_then(|u| {
            engine.call(u).ok_or_else(|| {
                ApiError::new(
                    404,
                    super::errors::codes::CALL_NOT_FOUND,
                    format!("no call {u}"),
                )
            })
        }) {
            Ok(c) => {
                // The admin sees where the recording is on the switch's disk
                // (the HTTP API never says).
                let mut v = c.status_json();
                if let Some(r) = &c.recording {
                    v["recording"]["path"] = json!(r.path);
                }
                format!("+OK {}\n{}\n", c.call_uuid, pretty(&v))
            }
            Err(e) => e.to_cli() + "\n",
        },
        ("hangup", [id]) => match parse_uuid(id).and_then(|u| engine.hangup(u).map(|_| u)) {
            Ok(u) => format!("+OK hangup requested for {u}\n"),
            Err(e) => e.to_cli() + "\n",
        },
        ("reload", []) => match host.load_config() {
            Ok(c) => {
                let summary = format!(
                    "{} trunks, {} LCR routes, {} caller ids, {} tokens",
                    c.trunks.len(),
                    c.lcr.len(),
                    c.caller_ids.len(),
                    c.tokens.len()
                );
                match host.apply_config(engine, c) {
                    Ok(()) => format!("+OK config reloaded: {summary}\n"),
                    Err(e) => format!("-ERR config_invalid {e} (previous config kept)\n"),
                }
            }
            Err(e) => format!("-ERR config_invalid {e} (previous config kept)\n"),
        },
        ("webhooks", args) => host.webhooks(&args.join(" ")),
        ("help", []) => help(),
        (ext, [phone]) if !ext.is_empty() => {
            let body = json!({"from_extension": ext, "to_phone": phone});
            let req = ClickToCallRequest::from_value(&body);
            place(engine, host, body.to_string().as_bytes(), req)
        }
        _ => usage() + "\n",
    }
}

/// The token name fs_cli's calls are admitted under (never rate-limited).
pub const FS_CLI_TOKEN: &str = "fs_cli";

/// Admits (as the HTTP API does, with no key and no rate limit) and places a call.
fn place(
    engine: &Arc<Engine>,
    host: &dyn CommandHost,
    body: &[u8],
    req: Result<ClickToCallRequest, ApiError>,
) -> String {
    let call_uuid = Uuid::new_v4();
    if let Some(admission) = host.admission() {
        let ask = Ask {
            token: FS_CLI_TOKEN,
            key: None,
            body,
            ttl: std::time::Duration::ZERO,
            limit: None,
            call_uuid,
        };
        match admission.admit(&ask) {
            Verdict::Proceed(_) => {}
            // Neither key nor limit: nothing else can come back.
            _ => {
                let e = ApiError::new(500, codes::INTERNAL, "admission refused an fs_cli call");
                return e.to_cli() + "\n";
            }
        }
    }
    match req.and_then(|r| engine.place_as(call_uuid, &r, None, &|_| Vec::new())) {
        Ok(a) => format!("+OK {}\n{}\n", a.call_uuid, pretty(&json!({ "data": a }))),
        Err(e) => e.to_cli() + "\n",
    }
}

fn parse_uuid(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::new(
            400,
            super::errors::codes::BAD_REQUEST,
            format!("{s:?} is not a call UUID"),
        )
    })
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_lines_follow_the_forms() {
        assert_eq!(
            completions("::x::calls"),
            [
                "add c2c status ::x::calls",
                "add c2c hangup ::x::calls",
                "add c2c reload",
                "add c2c webhooks status",
                "add c2c webhooks dead",
                "add c2c webhooks replay",
                "add c2c webhooks replay-all",
                "add c2c help",
            ]
        );
    }

    #[test]
    fn help_and_usage_name_every_form() {
        let (help, usage) = (help(), usage());
        assert!(help.starts_with("+OK "), "{help}");
        assert!(usage.starts_with("-USAGE: c2c "), "{usage}");
        for (form, what) in FORMS {
            assert!(help.contains(&format!("c2c {form} ")), "{form} in {help}");
            assert!(help.contains(what), "{what} in {help}");
            assert!(usage.contains(&format!("c2c {form}")), "{form} in {usage}");
        }
        assert_eq!(help.lines().count(), FORMS.len() + 1);
    }
}
