//! The shipped Grafana dashboard and Prometheus rules work on real data: a
//! real `prometheus` (Debian's package) scrapes a sandbox every second,
//! with `conf/prometheus/zorio_c2c_rules.yml` loaded, while a short burst
//! of calls runs (answered, failed over, busy, refused at capacity, webhooks
//! delivered, Redis unreachable). Then every panel's expression of
//! `conf/grafana/zorio_c2c_dashboard.json` and every rule's (an alert's
//! without its comparisons to a number) must return at least one series.
//! Also `promtool check metrics` on the sandbox's `/metrics`, and
//! `promtool check rules` / `test rules` on the shipped files.

mod common;
mod processes;
mod scratch;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;
use processes::{free_port, KillOnDrop};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A program on `PATH` (or in /usr/bin), if installed.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Answers 200 to every request (the CRM's webhook endpoint); counts them.
fn crm() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&got);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let seen = std::sync::Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = conn.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        seen.fetch_add(1, Ordering::SeqCst);
                        buf.drain(..end + 4 + len);
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if conn.write_all(ok).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, got)
}

/// `%`-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET on Prometheus' API, as JSON.
fn api(prom: SocketAddr, path_and_query: &str) -> Option<Value> {
    let mut s = TcpStream::connect(prom).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: {prom}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).ok()
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// How many series `expr` returns now (`None`: an error, with its text).
fn series(prom: SocketAddr, expr: &str) -> Result<usize, String> {
    let v = api(prom, &format!("/api/v1/query?query={}", encode(expr)))
        .ok_or_else(|| "no answer".to_string())?;
    if v["status"] != "success" {
        return Err(v.to_string());
    }
    Ok(v["data"]["result"].as_array().map_or(0, Vec::len))
}

/// Every `expr` of the dashboard's panels (rows' nested panels included).
fn panel_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            out.push((title, t["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// An alert's expression with every comparison to a number taken out
/// (`a > 0 and b > 100` → `a and b`): what it measures, whether or not it
/// fires.
fn without_thresholds(expr: &str) -> String {
    let re = regex::Regex::new(r"\s*(?:>=|<=|==|!=|>|<)\s*(?:bool\s+)?-?[0-9][0-9.eE+-]*").unwrap();
    re.replace_all(expr, "").trim().to_string()
}

fn check(program: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        program.display()
    );
    text
}

#[test]
fn shipped_rules_pass_promtool() {
    let Some(promtool) = find("promtool") else {
        println!("SKIPPED: promtool not installed (Debian package `prometheus`)");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/prometheus");
    let rules = dir.join("zorio_c2c_rules.yml");
    let out = check(
        &promtool,
        &["check", "rules", rules.to_str().unwrap()],
        None,
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let tests = dir.join("zorio_c2c_rules.test.yml");
    let out = check(&promtool, &["test", "rules", tests.to_str().unwrap()], None);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_panel_and_rule_returns_data_from_a_real_prometheus() {
    let (Some(prometheus), Some(promtool)) = (find("prometheus"), find("promtool")) else {
        println!("SKIPPED: prometheus/promtool not installed (Debian package `prometheus`)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = std::env::temp_dir().join(format!("c2c-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();

    // The sandbox: at most 4 calls at once, webhooks to a CRM that takes
    // them, in a cluster whose Redis does not answer.
    let sample =
        std::fs::read_to_string(root.join("conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    let limited = sample.replace(
        r#"name="max-concurrent-calls" value="auto""#,
        r#"name="max-concurrent-calls" value="4""#,
    );
    assert_ne!(
        limited, sample,
        "the sample config sets max-concurrent-calls"
    );
    let config = tmp.join("zorio_c2c.conf.xml");
    std::fs::write(&config, limited).unwrap();
    let (crm_addr, delivered) = crm();
    let hook = format!("http://{crm_addr}/hook");
    let redis = format!("redis://127.0.0.1:{}", free_port());
    let data = tmp.join("data");
    let sandbox = Sandbox::start(&[
        "--quiet",
        "--config",
        config.to_str().unwrap(),
        "--token",
        TOKEN,
        "--rate-limit",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
        "--webhook-url",
        &hook,
        "--webhook-secret",
        SECRET,
        "--redis",
        &redis,
        "--agent-answer-ms",
        "200",
        "--customer-answer-ms",
        "300",
        "--talk-ms",
        "1500",
    ]);

    let page = get(sandbox.addr, "/metrics").text();
    let lint = check(&promtool, &["check", "metrics"], Some(&page));
    assert!(lint.trim().is_empty(), "promtool check metrics:\n{lint}");

    // Prometheus, scraping every second, evaluating the shipped rules.
    let prom_port = free_port();
    let prom: SocketAddr = format!("127.0.0.1:{prom_port}").parse().unwrap();
    let rules = root.join("conf/prometheus/zorio_c2c_rules.yml");
    let prom_config = tmp.join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: c2c\n    authorization:\n      credentials: {TOKEN}\n\
             \x20   static_configs:\n      - targets: ['{}']\n",
            rules.display(),
            sandbox.addr
        ),
    )
    .unwrap();
    let log = std::fs::File::create(tmp.join("prometheus.log")).unwrap();
    let _prometheus = KillOnDrop(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts"),
    );

    // A short burst: answered, failed over (first trunk 503), busy; more
    // than 4 at once, so some are refused at capacity.
    let mut statuses = std::collections::BTreeMap::new();
    for round in 0..3 {
        for to in [
            "0987654321",
            "0900503503",
            "0900486486",
            "0987654322",
            "0900503503",
            "0987654323",
        ] {
            let body = format!(r#"{{"from_extension":"1001","to_phone":"{to}"}}"#);
            *statuses
                .entry(post_call(sandbox.addr, &body, &[]).status)
                .or_insert(0) += 1;
        }
        if round < 2 {
            std::thread::sleep(Duration::from_secs(4));
        }
    }
    println!("click-to-call answers: {statuses:?}");
    assert!(statuses.get(&202).is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(statuses.get(&503).is_some_and(|n| *n > 0), "{statuses:?}");

    // Wait until a scrape saw every call accepted and ended, and events
    // delivered to the CRM.
    let accepted = statuses[&202];
    let seen_all = format!("c2c_calls_accepted_total == {accepted}");
    let until = Instant::now() + Duration::from_secs(30);
    while series(prom, &seen_all) != Ok(1)
        || series(prom, "c2c_webhook_delivery_lag_seconds_count > 0") != Ok(1)
        || series(prom, "c2c_calls_active == 0") != Ok(1)
    {
        assert!(
            Instant::now() < until,
            "Prometheus never saw the deliveries (CRM got {}); its log:\n{}",
            delivered.load(std::sync::atomic::Ordering::SeqCst),
            std::fs::read_to_string(tmp.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The histograms counted what happened: one 202 latency per 202, one
    // agent answer per call accepted (the agent always answers here), one
    // bridge and one talk time per completed call, one lag per delivery.
    let value = |expr: &str| -> Option<f64> {
        let v = api(prom, &format!("/api/v1/query?query={}", encode(expr)))?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let checks = [
        (
            r#"sum(c2c_http_request_duration_seconds_count{route="click_to_call",status="202"})"#
                .to_string(),
            Some(accepted as f64),
        ),
        (
            "sum(c2c_agent_answer_seconds_count)".to_string(),
            Some(accepted as f64),
        ),
        (
            "sum(c2c_call_bridge_seconds_count)".to_string(),
            value(r#"sum(c2c_calls_ended_total{outcome="completed"})"#),
        ),
        (
            "sum(c2c_call_talk_seconds_count)".to_string(),
            value(r#"sum(c2c_calls_ended_total{outcome="completed"})"#),
        ),
        (
            "sum(c2c_customer_answer_seconds_count)".to_string(),
            value(r#"sum(c2c_calls_ended_total{outcome="completed"})"#),
        ),
    ];
    for (expr, want) in &checks {
        assert!(want.is_some_and(|w| w > 0.0), "{expr}: {want:?}");
        assert_eq!(value(expr), *want, "{expr}");
    }
    let until = Instant::now() + Duration::from_secs(20);
    while value("sum(c2c_webhook_delivery_lag_seconds_count)")
        != value("sum(c2c_webhook_delivered_total)")
    {
        assert!(Instant::now() < until, "a delivery lag per delivered event");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every expression, as Prometheus itself loaded the rules.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("conf/grafana/zorio_c2c_dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<(String, String)> = panel_exprs(&dashboard)
        .into_iter()
        .map(|(t, e)| (format!("panel {t}"), e.replace("$__rate_interval", "1m")))
        .collect();
    let loaded = api(prom, "/api/v1/rules").expect("rules");
    let mut n_rules = 0;
    for g in loaded["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            n_rules += 1;
            assert_eq!(r["health"], "ok", "{r}");
            let name = r["name"].as_str().unwrap();
            let query = r["query"].as_str().unwrap();
            let expr = if r["type"] == "alerting" {
                without_thresholds(query)
            } else {
                query.to_string()
            };
            exprs.push((format!("{} {name}", r["type"].as_str().unwrap()), expr));
        }
    }
    let file = std::fs::read_to_string(&rules).unwrap();
    let in_file = file.matches("- alert:").count() + file.matches("- record:").count();
    assert_eq!(n_rules, in_file, "Prometheus loaded every rule of the file");
    assert!(exprs.len() > 30, "{} expressions", exprs.len());

    let until = Instant::now() + Duration::from_secs(20);
    let mut missing: Vec<(String, String, Result<usize, String>)>;
    loop {
        missing = exprs
            .iter()
            .map(|(what, e)| (what.clone(), e.clone(), series(prom, e)))
            .filter(|(_, _, r)| !matches!(r, Ok(n) if *n > 0))
            .collect();
        if missing.is_empty() || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for (what, e) in &exprs {
        println!("{:?} series  {what}: {e}", series(prom, e));
    }
    assert!(missing.is_empty(), "no data for: {missing:#?}");
    drop(_prometheus);
    drop(sandbox);
    std::fs::remove_dir_all(&tmp).unwrap();
}
