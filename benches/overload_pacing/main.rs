//! Overload on the real switch: our click-to-call against FreeSWITCH's own
//! `originate user/1001 &bridge(sofia/gateway/…)` at the same offered rate,
//! in alternating phases (native, ours, native, ours, …) so both see the
//! same machine. Sipp peers: an agent that answers after 200 ms and hangs up
//! 5 s later, a carrier that rings 1 s with early media (see `scenarios`).
//!
//! Per phase: calls bridged per second of offered time (the phase's numbers
//! with a CHANNEL_BRIDGE and the customer's CHANNEL_ANSWER), and bridge
//! latency, from the request being sent (`bgapi originate` over one ESL
//! connection; `POST /api/pbx/calls/click-to-call` over a pool of 32
//! keep-alive connections, see `client`) to the later of the two events'
//! `Event-Date-Timestamp`. The switch drains between phases, and a phase
//! is counted once the switch's events have all reached the bench
//! (`settle`). At the end:
//! how long our POSTs took to answer, and how long native's `bgapi`s waited
//! for the switch's ESL thread to read them (its `+OK Job-UUID` reply):
//! where native's calls wait under overload.
//! Also per phase: `lag ms`, how late the last request left (the bench's own
//! pacing); `stuck`, channels a peer left behind (hung up after the phase);
//! `ev lag`, p99 of how late the switch's events reached the bench; `sip
//! drops`, datagrams the kernel dropped on the switch's SIP socket (its
//! receive buffer full while sofia's thread was behind); `ev queue`, the most
//! events the switch's event queue held (the module's
//! `c2c_switch_event_backlog`, read every 250 ms; see `backlog`).
//!
//! ```text
//! PKG_CONFIG_PATH=/opt/freeswitch/lib/pkgconfig CARGO_TARGET_DIR=… cargo build --release --lib
//! FREESWITCH_BIN=… FREESWITCH_MOD_DIR=… cargo bench --bench overload_pacing
//! ```
//! Env: `C2C_OVERLOAD_RATE` (calls/s, default 40), `C2C_OVERLOAD_SECS`
//! (phase length, default 12), `C2C_OVERLOAD_PHASES` (of each side, default 2),
//! `C2C_OVERLOAD_LOGLEVEL` (the switch's, default debug as in the e2e suites),
//! `C2C_OVERLOAD_ONLY` (`native` or `ours`: one side, e.g. to profile it),
//! `C2C_OVERLOAD_ORDER` (`abba`: native, ours, ours, native, …; `ours-first`;
//! default native first in every round),
//! `C2C_OVERLOAD_RINGBACK` (the module's `ringback`; empty: none, as
//! `&bridge` plays none),
//! `ZORIO_C2C_SO` (another build of the module, e.g. main's for a before/after).
//! At the end, where the cores went (`cpu`): CPU ms per bridged call of the
//! switch, of the module's own threads in it, of the sipp peers and of the
//! bench; the cores' idle share; how long a customer's leg was up; SIP
//! messages the peers had to resend.
//! Without a switch it prints `SKIPPED: <why>`.

mod backlog;
mod client;
mod cpu;
#[path = "../../tests/e2e_common/mod.rs"]
mod e2e_common;
mod log_lines;
mod scenarios;
#[path = "../../tests/scratch/mod.rs"]
mod scratch;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e_common::*;

const TOKEN: &str = "e2e-token-0123456789";
/// The answering carrier's gateway and its trunk (`backup`, id 5).
const GATEWAY: &str = "backup";
const TRUNK_ID: u32 = 5;
/// Keep-alive connections our side's requests share (a CRM's client pool).
const CLIENT_CONNECTIONS: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Native,
    Ours,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Native => "native",
            Side::Ours => "ours",
        }
    }
}

/// Bridges and customers' answers seen (the B-leg's number →
/// `Event-Date-Timestamp`, µs) and refusals (`-ERR …` of a bgapi job, HTTP
/// answers other than 202).
#[derive(Default)]
struct Seen {
    bridged: HashMap<String, u64>,
    answered: HashMap<String, u64>,
    refused: HashMap<String, usize>,
    /// How long each of our POSTs took to answer (ms).
    answer_ms: Vec<f64>,
    /// When each `bgapi`'s reply came: the switch had read it (µs).
    job_read_us: Vec<u64>,
    /// How long each `bgapi` waited to be read by the switch (ms).
    job_wait_ms: Vec<f64>,
    /// The `Job-UUID`s of [`settle`]'s markers seen.
    markers: Vec<String>,
    /// How late each bridge and answer event reached us (ms after its timestamp).
    event_lag_ms: Vec<f64>,
}

impl Seen {
    /// When the customer was talking to the agent: bridged and answered.
    /// (Both sides bridge on the carrier's early media, before its answer.)
    fn connected(&self, to: &str) -> Option<u64> {
        Some((*self.bridged.get(to)?).max(*self.answered.get(to)?))
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The e2e config, sized for load: sessions, RTP ports (20000–24999, below
/// the ephemeral range sipp's streams use), our timeouts as native's
/// (`originate_timeout=30`, bridge's 60 s), no rate limit, quieter logs.
fn config(ports: Ports, dir: &Path) -> String {
    let loglevel: String = env_or("C2C_OVERLOAD_LOGLEVEL", "debug".to_string());
    let mut webhooks = default_webhooks(&dir.join("spool"));
    if let Ok(sync) = std::env::var("C2C_OVERLOAD_STORE_SYNC") {
        webhooks.push_str(&format!(r#"<param name="store-sync" value="{sync}"/>"#));
    }
    let mut xml = freeswitch_xml(ports, &webhooks);
    // `C2C_OVERLOAD_RINGBACK`: the module's `ringback` (empty: none, as `&bridge`).
    if let Ok(r) = std::env::var("C2C_OVERLOAD_RINGBACK") {
        let at = r#"<param name="dialplan" value="XML"/>"#;
        assert!(xml.contains(at), "config lacks {at}");
        xml = xml.replacen(
            at,
            &format!(r#"<param name="ringback" value="{r}"/>{at}"#),
            1,
        );
    }
    let rtp = |p: u16| format!("value=\"{p}\"");
    for (from, to) in [
        (
            r#""max-sessions" value="200""#,
            r#""max-sessions" value="2000""#.to_string(),
        ),
        (
            r#""sessions-per-second" value="100""#,
            r#""sessions-per-second" value="1000""#.to_string(),
        ),
        (
            r#""loglevel" value="debug""#,
            format!(r#""loglevel" value="{loglevel}""#),
        ),
        // One log file for the whole run: its lines are counted per phase.
        (
            r#""rollover" value="104857600""#,
            r#""rollover" value="0""#.to_string(),
        ),
        (&rtp(ports.rtp_start), "value=\"20000\"".to_string()),
        (&rtp(ports.rtp_start + 35), "value=\"24999\"".to_string()),
        (
            r#""a-leg-timeout" value="5""#,
            r#""a-leg-timeout" value="30""#.to_string(),
        ),
        (
            r#""b-leg-timeout" value="10""#,
            r#""b-leg-timeout" value="60""#.to_string(),
        ),
        (
            r#"<param name="enabled" value="true"/>"#,
            r#"<param name="enabled" value="true"/><param name="rate-limit-per-minute" value="0"/>"#
                .to_string(),
        ),
    ] {
        assert!(xml.contains(from), "config lacks {from}");
        xml = xml.replacen(from, &to, 1);
    }
    xml
}

/// A sipp peer for load: no message trace, many sockets, errors logged.
fn peer(env: &Env, dir: &Path, name: &str, scenario: &str, port: u16, media: u16) -> Sipp {
    let sf = dir.join(format!("{name}.xml"));
    write(&sf, scenario);
    let out = std::fs::File::create(dir.join(format!("{name}.out"))).unwrap();
    let child = Command::new(&env.sipp)
        .arg("-sf")
        .arg(&sf)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &media.to_string()])
        .args(["-l", "5000", "-max_socket", "5000", "-nostdin"])
        .args(["-trace_err", "-error_file"])
        .arg(dir.join(format!("{name}_err.log")))
        // Counters every second (retransmissions: a party slow to answer).
        .args(["-trace_stat", "-fd", "1", "-stf"])
        .arg(dir.join(format!("{name}_stat.csv")))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("start sipp");
    Sipp {
        child,
        log: dir.join(format!("{name}_err.log")),
    }
}

/// Subscribes `esl` to bridges and job results, noted in `seen` by a thread.
fn listen(mut esl: Esl, seen: Arc<Mutex<Seen>>) {
    esl.send("event plain CHANNEL_BRIDGE CHANNEL_ANSWER BACKGROUND_JOB");
    std::thread::spawn(move || {
        while let Some((h, body)) = esl.read() {
            let kind = h.get("Content-Type").map(String::as_str);
            if kind == Some("command/reply")
                && h.get("Reply-Text")
                    .is_some_and(|t| t.starts_with("+OK Job-UUID"))
            {
                // The switch's ESL thread has read a `bgapi` (they come in order).
                seen.lock().unwrap().job_read_us.push(now_us());
            }
            if kind != Some("text/event-plain") {
                continue;
            }
            let (head, rest) = body.split_once("\n\n").unwrap_or((&body, ""));
            let ev = parse_headers(head, true);
            let mut s = seen.lock().unwrap();
            let at = ev.get("Event-Date-Timestamp").and_then(|t| t.parse().ok());
            if let Some(at) = at {
                s.event_lag_ms
                    .push((now_us().saturating_sub(at)) as f64 / 1000.0);
            }
            match (ev.get("Event-Name").map(String::as_str), at) {
                (Some("CHANNEL_BRIDGE"), Some(at)) => {
                    if let Some(to) = ev.get("Other-Leg-Destination-Number") {
                        s.bridged.entry(to.clone()).or_insert(at);
                    }
                }
                (Some("CHANNEL_ANSWER"), Some(at)) => {
                    let to = ev.get("Caller-Destination-Number");
                    if let Some(to) = to.filter(|t| t.starts_with("09")) {
                        s.answered.entry(to.clone()).or_insert(at);
                    }
                }
                (Some("BACKGROUND_JOB"), _)
                    if ev.get("Job-Command").is_some_and(|c| c == "status") =>
                {
                    if let Some(job) = ev.get("Job-UUID") {
                        s.markers.push(job.clone());
                    }
                }
                (Some("BACKGROUND_JOB"), _) if rest.starts_with("-ERR") => {
                    let why = rest.trim().to_string();
                    *s.refused.entry(why).or_default() += 1;
                }
                _ => {}
            }
        }
    });
}

/// One phase's result.
pub(crate) struct Row {
    side: Side,
    offered_secs: f64,
    sent: usize,
    bridged: usize,
    latencies_ms: Vec<f64>,
    send_lag_ms: f64,
    /// Channels left behind by a peer, hung up after the phase.
    stuck: usize,
    /// p99 of how late the switch's events reached the bench.
    event_lag_p99_ms: f64,
    /// Datagrams the kernel dropped on the switch's SIP socket (its receive
    /// buffer full: sofia's thread behind), `None` where Linux's
    /// `/proc/net/udp` can't say.
    sip_drops: Option<u64>,
    /// The most events the switch's event queue held during the phase.
    backlog_max: u64,
    /// CPU used from the phase's start until the switch had drained.
    cpu: cpu::Cpu,
    /// The cores' idle share until the phase's last call connected.
    busy_idle: f64,
    /// Seconds the customers' legs were up, in all.
    leg_seconds: f64,
    /// Messages the two sipp peers sent again (no answer in time).
    retransmissions: u64,
    /// Lines the switch wrote to its log file (`None`: it could not be read).
    log_lines: Option<u64>,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// Offers `rate` calls/s for `secs` on one side, then waits for the switch to drain.
fn phase(side: Side, n_phase: usize, rate: f64, secs: f64, ctx: &Ctx) -> Row {
    let n = (rate * secs).round() as usize;
    let digit = if side == Side::Native { 1 } else { 2 };
    let number = |i: usize| format!("09{digit}{}{i:06}", n_phase % 10);
    let mut sent_at = Vec::with_capacity(n);
    // Our requests go over a pool of keep-alive connections, opened first.
    let pool = (side == Side::Ours)
        .then(|| client::Pool::new(ctx.http, &format!("Bearer {TOKEN}"), CLIENT_CONNECTIONS));
    ctx.seen.lock().unwrap().job_read_us.clear();
    let drops_before = udp_drops(ctx.sip);
    let watch = backlog::Watch::start(ctx.http, TOKEN);
    let cpu_before = cpu::Cpu::now(&ctx.pids).unwrap_or_default();
    let retransmitted = retransmissions(&ctx.dir);
    let log_from = log_lines::Mark::now(&ctx.dir);
    let mut cmd = ctx.cmd.lock().unwrap();
    let t0 = Instant::now();
    for i in 0..n {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let to = number(i);
        sent_at.push((to.clone(), now_us()));
        match side {
            Side::Native => {
                let c = format!(
                    "bgapi originate {{originate_timeout=30}}user/1001 &bridge(sofia/gateway/{GATEWAY}/{to})\n\n"
                );
                cmd.write_all(c.as_bytes()).expect("ESL write");
            }
            Side::Ours => {
                let seen = Arc::clone(&ctx.seen);
                pool.as_ref().unwrap().send(client::Job {
                    body: format!(
                        r#"{{"from_extension":"1001","to_phone":"{to}","trunk_id":{TRUNK_ID}}}"#
                    ),
                    due,
                    done: Box::new(move |r: &str, took: f64| {
                        let mut status = r.split_whitespace().nth(1).unwrap_or("none").to_string();
                        // The error's code, e.g. `503 capacity_exceeded`.
                        if let Some(code) = r
                            .split("\"code\":\"")
                            .nth(1)
                            .and_then(|c| c.split('"').next())
                        {
                            status = format!("{status} {code}");
                        }
                        let mut seen = seen.lock().unwrap();
                        seen.answer_ms.push(took);
                        if !status.starts_with("202") {
                            *seen.refused.entry(status).or_default() += 1;
                        }
                    }),
                });
            }
        }
    }
    let send_lag_ms = (t0.elapsed().as_secs_f64() - (n - 1) as f64 / rate) * 1000.0;
    drop(cmd);
    if let Some(pool) = pool {
        pool.finish();
    }
    let stuck = drain(ctx);
    let log_lines = log_from.and_then(|m| m.lines_since());
    let cpu = cpu::Cpu::now(&ctx.pids)
        .unwrap_or_default()
        .since(&cpu_before);
    let backlog = watch.stop();
    // sipp writes its counters once a second.
    std::thread::sleep(Duration::from_millis(1100));
    let retransmissions = retransmissions(&ctx.dir).saturating_sub(retransmitted);
    settle(ctx, &format!("{}-{n_phase}", side.name()));
    if side == Side::Native {
        let mut seen = ctx.seen.lock().unwrap();
        // The replies in order; the last is `settle`'s own, left by `zip`.
        let read = std::mem::take(&mut seen.job_read_us);
        let waits: Vec<f64> = sent_at
            .iter()
            .zip(read)
            .map(|((_, sent), read)| read.saturating_sub(*sent) as f64 / 1000.0)
            .collect();
        seen.job_wait_ms.extend(waits);
    }
    let sip_drops = udp_drops(ctx.sip)
        .zip(drops_before)
        .map(|(a, b)| a.saturating_sub(b));
    let mut lag = std::mem::take(&mut ctx.seen.lock().unwrap().event_lag_ms);
    lag.sort_by(f64::total_cmp);
    let event_lag_p99_ms = pct(&lag, 99.0);
    let seen = ctx.seen.lock().unwrap();
    if std::env::var_os("C2C_OVERLOAD_DEBUG").is_some() {
        eprintln!(
            "sent {sent_at:?}\nbridged {:?}\nanswered {:?}\nbacklog {backlog:?}",
            seen.bridged, seen.answered
        );
    }
    let mut latencies_ms: Vec<f64> = sent_at
        .iter()
        .filter_map(|(to, at)| seen.connected(to).map(|b| (b as f64 - *at as f64) / 1000.0))
        .collect();
    latencies_ms.sort_by(f64::total_cmp);
    let last_connected = sent_at
        .iter()
        .filter_map(|(to, _)| seen.connected(to))
        .max()
        .unwrap_or(0);
    let started = sent_at.first().map_or(0, |s| s.1);
    let since_start = last_connected.saturating_sub(started) as f64 / 1e6;
    Row {
        side,
        offered_secs: n as f64 / rate,
        sent: n,
        bridged: latencies_ms.len(),
        latencies_ms,
        send_lag_ms,
        stuck,
        event_lag_p99_ms,
        sip_drops,
        backlog_max: backlog.iter().map(|b| b.1).max().unwrap_or(0),
        cpu,
        busy_idle: backlog::idle_share(&backlog, since_start),
        leg_seconds: backlog::leg_seconds(&backlog),
        retransmissions,
        log_lines,
    }
}

/// Until every event the switch fired so far has reached the bench: under
/// overload its ESL thread for this connection runs many seconds behind
/// (`ev lag`), and a phase counted before its last events arrive would lose
/// calls that were bridged. A `bgapi status` sent now has its BACKGROUND_JOB
/// queued behind them.
fn settle(ctx: &Ctx, tag: &str) {
    let job = uuid::Uuid::new_v4().to_string();
    let cmd = format!("bgapi status\nJob-UUID: {job}\n\n");
    ctx.cmd
        .lock()
        .unwrap()
        .write_all(cmd.as_bytes())
        .expect("ESL write");
    let t = Instant::now();
    while !ctx.seen.lock().unwrap().markers.contains(&job) {
        if t.elapsed() > Duration::from_secs(120) {
            println!("{tag}: the switch's events did not catch up in 120 s");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until the switch holds no channel, then 3 s more. Channels a peer gave
/// up on (sipp drops a call whose message it lost under load) would stay
/// forever: once their count holds still for 10 s they are hung up (`hupall`)
/// and counted.
fn drain(ctx: &Ctx) -> usize {
    let mut esl = ctx.api.lock().unwrap();
    let count = |esl: &mut Esl| -> usize {
        let out = esl.api("show channels count");
        out.split_whitespace()
            .zip(out.split_whitespace().skip(1))
            .find(|(_, w)| w.starts_with("total"))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(usize::MAX)
    };
    std::thread::sleep(Duration::from_secs(2));
    let (mut last, mut since) = (usize::MAX, Instant::now());
    let mut stuck = 0;
    loop {
        let n = count(&mut esl);
        if n == 0 {
            break;
        }
        if n != last {
            (last, since) = (n, Instant::now());
        } else if since.elapsed() > Duration::from_secs(10) {
            stuck = n;
            esl.api("hupall NORMAL_CLEARING");
            std::thread::sleep(Duration::from_secs(2));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    stuck
}

/// The sides of round `i` in their order: native first (the default),
/// `ours-first`, or `abba` (native, ours, then ours, native, …: each side
/// follows the other as often as it leads).
fn sides_of_phase(order: &str, i: usize) -> [Side; 2] {
    let ours_first = match order {
        "ours-first" => true,
        "abba" => i % 2 == 1,
        _ => false,
    };
    if ours_first {
        [Side::Ours, Side::Native]
    } else {
        [Side::Native, Side::Ours]
    }
}

/// The kernel's count of datagrams dropped on the UDP socket bound to
/// `port` (the last column of `/proc/net/udp`), `None` where it can't say.
fn udp_drops(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!(":{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1)?.ends_with(&local)).then(|| f.last()?.parse().ok())?
    })
}

/// Messages the sipp peers (`agent`, `carrier`) retransmitted so far: the
/// `Retransmissions(C)` of the last line of each one's statistics file.
fn retransmissions(dir: &Path) -> u64 {
    ["agent", "carrier"]
        .iter()
        .filter_map(|name| {
            let csv = std::fs::read_to_string(dir.join(format!("{name}_stat.csv"))).ok()?;
            let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
            let head: Vec<&str> = lines.next()?.split(';').collect();
            let col = head.iter().position(|h| *h == "Retransmissions(C)")?;
            lines
                .next_back()?
                .split(';')
                .nth(col)?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum()
}

struct Ctx {
    cmd: Mutex<TcpStream>,
    api: Mutex<Esl>,
    http: u16,
    /// The switch's SIP port (sofia's socket, where both peers send).
    sip: u16,
    seen: Arc<Mutex<Seen>>,
    /// The processes whose CPU a phase accounts for.
    pids: cpu::Pids,
    /// The scratch directory (the sipp peers' statistics).
    dir: std::path::PathBuf,
}

fn print_row(label: &str, r: &Row) {
    println!(
        "{label:<10} {:>6} {:>8} {:>10.1} {:>9.0} {:>9.0} {:>9.0} {:>8.0} {:>6} {:>8.0} {:>9} {:>8}",
        r.sent,
        r.bridged,
        r.bridged as f64 / r.offered_secs,
        pct(&r.latencies_ms, 50.0),
        pct(&r.latencies_ms, 99.0),
        r.latencies_ms.last().copied().unwrap_or(f64::NAN),
        r.send_lag_ms,
        r.stuck,
        r.event_lag_p99_ms,
        r.sip_drops.map_or("?".to_string(), |d| d.to_string()),
        r.backlog_max
    );
}

/// `what` p50, p99 and max of `ms`.
fn print_spread(what: &str, ms: &[f64]) {
    let mut ms = ms.to_vec();
    ms.sort_by(f64::total_cmp);
    println!(
        "{what} p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(&ms, 50.0),
        pct(&ms, 99.0),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

/// The rows of one side pooled: bridged/s over all its offered time, latencies together.
fn pooled(rows: &[Row], side: Side) -> Row {
    let mine: Vec<&Row> = rows.iter().filter(|r| r.side == side).collect();
    let mut latencies_ms: Vec<f64> = mine.iter().flat_map(|r| r.latencies_ms.clone()).collect();
    latencies_ms.sort_by(f64::total_cmp);
    Row {
        side,
        offered_secs: mine.iter().map(|r| r.offered_secs).sum(),
        sent: mine.iter().map(|r| r.sent).sum(),
        bridged: mine.iter().map(|r| r.bridged).sum(),
        latencies_ms,
        send_lag_ms: mine.iter().map(|r| r.send_lag_ms).fold(0.0, f64::max),
        stuck: mine.iter().map(|r| r.stuck).sum(),
        event_lag_p99_ms: mine.iter().map(|r| r.event_lag_p99_ms).fold(0.0, f64::max),
        sip_drops: mine.iter().map(|r| r.sip_drops).sum(),
        backlog_max: mine.iter().map(|r| r.backlog_max).max().unwrap_or(0),
        cpu: mine
            .iter()
            .fold(cpu::Cpu::default(), |sum, r| sum.add(&r.cpu)),
        busy_idle: mine.iter().map(|r| r.busy_idle).sum::<f64>() / mine.len().max(1) as f64,
        leg_seconds: mine.iter().map(|r| r.leg_seconds).sum(),
        retransmissions: mine.iter().map(|r| r.retransmissions).sum(),
        log_lines: mine.iter().map(|r| r.log_lines).sum(),
    }
}

fn main() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    let rate: f64 = env_or("C2C_OVERLOAD_RATE", 40.0);
    let secs: f64 = env_or("C2C_OVERLOAD_SECS", 12.0);
    let phases: usize = env_or("C2C_OVERLOAD_PHASES", 2);
    // One side only (`native` or `ours`), e.g. to profile it.
    let only = std::env::var("C2C_OVERLOAD_ONLY").ok();
    let ports = Ports::new();
    let dir = e2e_dir("overload");
    describe(&env);
    let tone = "tone.ulaw";
    write_ulaw_tone(&dir.join(tone));
    let agent = peer(
        &env,
        &dir,
        "agent",
        &scenarios::agent(tone),
        ports.agent,
        6000,
    );
    let carrier = peer(
        &env,
        &dir,
        "carrier",
        &scenarios::carrier(tone),
        ports.carrier_ok,
        6100,
    );
    let fs = start_freeswitch_args(&env, &dir, &config(ports, &dir), &["-np"]);
    let api = connect_ready(ports, &dir);
    println!(
        "FreeSWITCH pid {} (nice 0, -np), our HTTP on {}",
        fs.pid(),
        ports.http
    );
    let events = Esl::connect(ports.esl, Duration::from_secs(5)).expect("ESL");
    let cmd = events.writer.try_clone().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    listen(events, Arc::clone(&seen));
    let ctx = Ctx {
        cmd: Mutex::new(cmd),
        api: Mutex::new(api),
        http: ports.http,
        sip: ports.sip,
        seen,
        pids: cpu::Pids {
            switch: fs.pid(),
            peers: vec![agent.child.id(), carrier.child.id()],
        },
        dir: dir.join(""),
    };
    println!("offered {rate}/s, {secs} s a phase, {phases} phases a side, 5 s calls");
    println!(
        "{:<10} {:>6} {:>8} {:>10} {:>9} {:>9} {:>9} {:>8} {:>6} {:>8} {:>9} {:>8}",
        "phase",
        "sent",
        "bridged",
        "bridged/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lag ms",
        "stuck",
        "ev lag",
        "sip drops",
        "ev queue"
    );
    let order = std::env::var("C2C_OVERLOAD_ORDER").unwrap_or_default();
    let mut rows = Vec::new();
    for i in 0..phases {
        for side in sides_of_phase(&order, i) {
            if only.as_deref().is_some_and(|o| o != side.name()) {
                continue;
            }
            let row = phase(side, i, rate, secs, &ctx);
            print_row(&format!("{} {}", side.name(), i + 1), &row);
            rows.push(row);
        }
    }
    let (native, ours) = (pooled(&rows, Side::Native), pooled(&rows, Side::Ours));
    print_row("native", &native);
    print_row("ours", &ours);
    let per_s = |r: &Row| r.bridged as f64 / r.offered_secs;
    println!(
        "ours/native: bridged/s {:.3}, p99 {:.3} (at {rate}/s)",
        per_s(&ours) / per_s(&native),
        pct(&ours.latencies_ms, 99.0) / pct(&native.latencies_ms, 99.0)
    );
    cpu::header();
    for r in &rows {
        cpu::print(r.side.name(), r);
    }
    cpu::print("native all", &native);
    cpu::print("ours all", &ours);
    let seen = ctx.seen.lock().unwrap();
    print_spread("our POSTs answered in", &seen.answer_ms);
    print_spread("native's bgapi read by the switch in", &seen.job_wait_ms);
    if !seen.refused.is_empty() {
        println!(
            "not accepted (HTTP status and code; none: no answer in 5 s): {:?}",
            seen.refused
        );
    }
    drop(fs);
}
