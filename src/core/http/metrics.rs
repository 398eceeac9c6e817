//! The `/metrics` page (Prometheus text format), read from the state.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::state::HttpState;

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole `/metrics` page.
pub fn render(state: &HttpState) -> String {
    let mut out = String::new();
    let engine = &state.engine;
    let m = &state.metrics;

    out.push_str("# HELP c2c_http_requests_total HTTP requests answered, by route and status.\n");
    out.push_str("# TYPE c2c_http_requests_total counter\n");
    let requests = m.requests();
    for ((route, status), n) in requests {
        let _ = writeln!(
            out,
            "c2c_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            label(route)
        );
    }
    gauge(
        &mut out,
        "c2c_http_open_connections",
        "HTTP connections open now.",
        m.open_connections.load(Ordering::Relaxed) as f64,
    );
    counter(
        &mut out,
        "c2c_http_refused_connections_total",
        "Connections refused with 503 at the connection cap.",
        m.refused_connections.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "c2c_calls_accepted_total",
        "Click-to-call requests accepted (202).",
        engine.stats.accepted.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "c2c_calls_rejected_total",
        "Click-to-call requests the engine refused.",
        engine.stats.rejected.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "c2c_calls_active",
        "Calls in flight.",
        engine.active_calls().len() as f64,
    );

    out.push_str("# HELP c2c_calls_ended_total Ended calls, by outcome.\n");
    out.push_str("# TYPE c2c_calls_ended_total counter\n");
    let outcomes: BTreeMap<&str, u64> = engine
        .stats
        .outcomes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    for (outcome, n) in outcomes {
        let _ = writeln!(
            out,
            "c2c_calls_ended_total{{outcome=\"{}\"}} {n}",
            label(outcome)
        );
    }

    let trunks: BTreeMap<String, (u64, u64)> = engine
        .stats
        .trunk_attempts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    out.push_str("# HELP c2c_trunk_attempts_total B-leg routing attempts, by trunk.\n");
    out.push_str("# TYPE c2c_trunk_attempts_total counter\n");
    for (trunk, (attempts, _)) in &trunks {
        let _ = writeln!(
            out,
            "c2c_trunk_attempts_total{{trunk=\"{}\"}} {attempts}",
            label(trunk)
        );
    }
    out.push_str("# HELP c2c_trunk_failures_total B-leg routing attempts that failed, by trunk.\n");
    out.push_str("# TYPE c2c_trunk_failures_total counter\n");
    for (trunk, (_, failures)) in &trunks {
        let _ = writeln!(
            out,
            "c2c_trunk_failures_total{{trunk=\"{}\"}} {failures}",
            label(trunk)
        );
    }

    if let Some(cluster) = state.cluster() {
        let mut typed = std::collections::BTreeSet::new();
        for (name, kind, help, value) in cluster.metrics() {
            let base = name.split('{').next().unwrap_or(&name).to_string();
            if typed.insert(base.clone()) {
                let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} {kind}");
            }
            let _ = writeln!(out, "{name} {}", number(value));
        }
    }

    // Gauges from attached sources (the webhook service's queue depth, …).
    let mut typed = std::collections::BTreeSet::new();
    for (name, value) in state.extra_gauges() {
        let base = name.split('{').next().unwrap_or(&name).to_string();
        if typed.insert(base.clone()) {
            let _ = writeln!(out, "# TYPE {base} gauge");
        }
        let _ = writeln!(out, "{name} {}", number(value));
    }
    out
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
        number(v)
    );
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}
