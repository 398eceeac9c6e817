//! The `/metrics` page (Prometheus text format 0.0.4), read from the state:
//! every family with `# HELP` and `# TYPE` (`promtool check metrics` clean).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::state::HttpState;
use crate::core::metrics::exposition::Kind;
use crate::core::metrics::Exposition;

/// The whole `/metrics` page.
pub fn render(state: &HttpState) -> String {
    let mut out = Exposition::new();
    let engine = &state.engine;
    let m = &state.metrics;

    let name = "c2c_http_requests_total";
    out.family(
        name,
        Kind::Counter,
        "HTTP requests answered, by route and status.",
    );
    for ((route, status), n) in m.requests() {
        let status = status.to_string();
        out.sample(name, &[("route", route), ("status", &status)], n as f64);
    }
    out.histogram(
        "c2c_http_request_duration_seconds",
        "Seconds from a request read to its answer (a 202 includes its durable commit), by route and status.",
        &["route", "status"],
        &m.latency.snapshot(),
    );
    out.gauge(
        "c2c_http_open_connections",
        "HTTP connections open now.",
        m.open_connections.load(Ordering::Relaxed) as f64,
    );
    out.counter(
        "c2c_http_refused_connections_total",
        "Connections refused with 503 at the connection cap.",
        m.refused_connections.load(Ordering::Relaxed) as f64,
    );
    out.counter(
        "c2c_calls_accepted_total",
        "Click-to-call requests accepted (202).",
        engine.stats.accepted.load(Ordering::Relaxed) as f64,
    );
    out.counter(
        "c2c_calls_rejected_total",
        "Click-to-call requests the engine refused.",
        engine.stats.rejected.load(Ordering::Relaxed) as f64,
    );
    out.gauge(
        "c2c_calls_active",
        "Calls in flight.",
        engine.active_count() as f64,
    );
    out.gauge(
        "c2c_setup_window",
        "Calls the switch is given to set up at once while it falls behind (0: no limit).",
        engine.pace.window().unwrap_or(0) as f64,
    );
    out.gauge(
        "c2c_setup_in_progress",
        "Calls in setup: their agent rung, not yet answered.",
        engine.pace.in_setup() as f64,
    );
    out.gauge(
        "c2c_setup_queue_depth",
        "Calls waiting for their turn to ring their agent.",
        engine.pace.waiting() as f64,
    );
    if let Some(lag) = engine.switch.event_lag() {
        out.gauge(
            "c2c_switch_event_lag_seconds",
            "How late the switch delivered its latest channel event (the wait in its event queue).",
            lag.as_secs_f64(),
        );
    }
    if let Some(q) = engine.switch.event_queue() {
        out.gauge(
            "c2c_switch_event_backlog",
            "Events the switch has created but not yet delivered (its event queue).",
            q.backlog as f64,
        );
        out.gauge(
            "c2c_switch_event_queue_capacity",
            "Events the switch's event queue holds when full (every thread firing one then waits).",
            q.capacity as f64,
        );
    }

    let outcomes: BTreeMap<&str, u64> = engine
        .stats
        .outcomes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    let name = "c2c_calls_ended_total";
    out.family(name, Kind::Counter, "Ended calls, by outcome.");
    for (outcome, n) in outcomes {
        out.sample(name, &[("outcome", outcome)], n as f64);
    }

    let trunks: BTreeMap<String, (u64, u64)> = engine
        .stats
        .trunk_attempts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let name = "c2c_trunk_attempts_total";
    out.family(name, Kind::Counter, "B-leg routing attempts, by trunk.");
    for (trunk, (attempts, _)) in &trunks {
        out.sample(name, &[("trunk", trunk)], *attempts as f64);
    }
    let name = "c2c_trunk_failures_total";
    out.family(
        name,
        Kind::Counter,
        "B-leg routing attempts that failed, by trunk.",
    );
    for (trunk, (_, failures)) in &trunks {
        out.sample(name, &[("trunk", trunk)], *failures as f64);
    }

    trunk_limits(&mut out, engine);

    let t = &engine.stats.timings;
    let one = |h: &crate::core::metrics::Histogram| vec![(Vec::new(), h.snapshot())];
    out.histogram(
        "c2c_agent_answer_seconds",
        "Seconds from ringing the agent's phone to the agent's answer.",
        &[],
        &one(&t.agent_answer),
    );
    out.histogram(
        "c2c_customer_post_dial_delay_seconds",
        "Seconds from dialling the customer to ringing (or answer), by trunk.",
        &["trunk"],
        &t.customer_post_dial.snapshot(),
    );
    out.histogram(
        "c2c_customer_answer_seconds",
        "Seconds from dialling the customer to the customer's answer, by trunk.",
        &["trunk"],
        &t.customer_answer.snapshot(),
    );
    out.histogram(
        "c2c_call_bridge_seconds",
        "Seconds from the 202 to both legs bridged.",
        &[],
        &one(&t.accepted_to_bridge),
    );
    out.histogram(
        "c2c_call_talk_seconds",
        "Seconds from the customer's answer to the call's end.",
        &[],
        &one(&t.talk),
    );

    if let Some(cluster) = state.cluster() {
        for (name, kind, help, value) in cluster.metrics() {
            let base = name.split('{').next().unwrap_or(&name).to_string();
            let kind = if kind == "counter" {
                Kind::Counter
            } else {
                Kind::Gauge
            };
            out.family(&base, kind, help);
            out.sample_series(&name, value);
        }
    }

    // The webhook service's and the store's.
    state.write_extra_metrics(&mut out);
    out.finish()
}

/// A per-trunk gauge: name, help and its value (when the trunk has one).
type Gauge<'a> = (
    &'a str,
    &'a str,
    &'a dyn Fn(&crate::core::trunks::TrunkStatus) -> Option<f64>,
);

/// Each trunk's channels in use, limits, CPS tokens and queue, and the
/// calls its limits turned away.
fn trunk_limits(out: &mut Exposition, engine: &crate::core::engine::Engine) {
    let status = engine.trunk_status();
    let gauges: [Gauge; 5] = [
        (
            "c2c_trunk_channels",
            "Channels on the trunk now, ours and others' (across the cluster, when there is one).",
            &|t| Some(f64::from(t.channels)),
        ),
        (
            "c2c_trunk_max_channels",
            "The trunk's max-channels (only trunks that have one).",
            &|t| t.max_channels.map(f64::from),
        ),
        (
            "c2c_trunk_cps_limit",
            "The trunk's cps (only trunks that have one).",
            &|t| t.cps,
        ),
        (
            "c2c_trunk_cps_tokens",
            "Calls the trunk's pacing would start now: 1 or 0 (no burst).",
            &|t| t.tokens().map(f64::from),
        ),
        (
            "c2c_trunk_queue_depth",
            "Calls waiting for the trunk (a channel or a CPS slot).",
            &|t| Some(t.queued as f64),
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, Kind::Gauge, help);
        for t in &status {
            if let Some(v) = value(t) {
                out.sample(name, &[("trunk", &t.name)], v);
            }
        }
    }
    let name = "c2c_trunk_limited_total";
    out.family(name, Kind::Counter, "Calls a trunk's limit turned away (LCR moved on, or a forced trunk's queue timed out), by trunk and limit.");
    for (trunk, limit, n) in engine.trunk_refusals() {
        out.sample(name, &[("trunk", &trunk), ("limit", limit)], n as f64);
    }
}
