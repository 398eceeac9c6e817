//! Parses `zorio_c2c.conf.xml` into a [`Config`].
//!
//! The module hands us the text FreeSWITCH already preprocessed (so `$${vars}`
//! and includes are resolved); the sandbox reads the file as it is.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use roxmltree::{Document, Node};

use super::recording::RecordCalls;

use super::config::{
    err, host_name, ApiToken, CallerIdStrategy, ClusterSettings, Config, ConfigError, LcrRoute,
    PoolNumber, StoreSync, Trunk, TrunkTarget,
};

impl Config {
    /// Parses and validates a whole config document.
    pub fn from_xml(text: &str) -> Result<Config, ConfigError> {
        let doc = Document::parse(text).map_err(|e| err("document", format!("not XML: {e}")))?;
        let root = find_configuration(&doc)?;
        let mut cfg = Config::default();
        for section in root.children().filter(Node::is_element) {
            match section.tag_name().name() {
                "settings" => settings(&mut cfg, section)?,
                "http" => http(&mut cfg, section)?,
                "webhooks" => webhooks(&mut cfg, section)?,
                "tokens" => cfg.tokens = tokens(section)?,
                "trunks" => cfg.trunks = trunks(section)?,
                "lcr" => cfg.lcr = lcr(section)?,
                "caller-ids" => {
                    cfg.caller_ids = caller_ids(section)?;
                    caller_id_strategy(&mut cfg, section)?;
                }
                "cluster" => cfg.cluster = Some(cluster(section)?),
                other => return Err(err(other, "unknown section")),
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

fn find_configuration<'a>(doc: &'a Document) -> Result<Node<'a, 'a>, ConfigError> {
    let root = doc.root_element();
    if root.has_tag_name("configuration") {
        return Ok(root);
    }
    // A whole freeswitch.xml-like document: look for our configuration.
    root.descendants()
        .find(|n| {
            n.has_tag_name("configuration")
                && n.attribute("name")
                    .is_some_and(|v| v.starts_with("zorio_c2c"))
        })
        .ok_or_else(|| err("document", "no <configuration name=\"zorio_c2c.conf\">"))
}

/// `<param name=".." value=".."/>` children of a section, with their location.
fn params<'a>(section: Node<'a, 'a>) -> Result<Vec<(String, &'a str, String)>, ConfigError> {
    let sname = section.tag_name().name();
    let mut out = Vec::new();
    for p in section.children().filter(Node::is_element) {
        if !p.has_tag_name("param") {
            return Err(err(
                format!("{sname}/{}", p.tag_name().name()),
                "unknown element (expected <param>)",
            ));
        }
        let name = p
            .attribute("name")
            .ok_or_else(|| err(format!("{sname}/param"), "missing name"))?;
        let at = format!("{sname}/param[{name}]");
        let value = p
            .attribute("value")
            .ok_or_else(|| err(at.clone(), "missing value"))?;
        out.push((name.to_string(), value, at));
    }
    Ok(out)
}

fn settings(cfg: &mut Config, section: Node) -> Result<(), ConfigError> {
    for (name, value, at) in params(section)? {
        match name.as_str() {
            "domain" => cfg.domain = non_empty(value),
            "a-leg-timeout" => cfg.a_leg_timeout = secs(value, &at)?,
            "b-leg-timeout" => cfg.b_leg_timeout = secs(value, &at)?,
            "max-pacing-wait" => cfg.max_pacing_wait = secs(value, &at)?,
            "trunk-queue-timeout" => cfg.trunk_queue_timeout = secs(value, &at)?,
            "agent-caller-id-name" => cfg.agent_caller_id_name = value.to_string(),
            "agent-caller-id-number" => cfg.agent_caller_id_number = non_empty(value),
            "auto-answer" => cfg.auto_answer = boolean(value, &at)?,
            "agent-busy" => {
                cfg.reject_busy_agent = match value {
                    "ring" => false,
                    "reject" => true,
                    _ => return Err(err(at, format!("{value:?} is not ring or reject"))),
                }
            }
            "ringback" => cfg.ringback = non_empty(value),
            "paced-ringback" => {
                cfg.paced_ringback = match value {
                    "skip" => false,
                    "play" => true,
                    _ => return Err(err(at, format!("{value:?} is not skip or play"))),
                }
            }
            "dialplan-context" => cfg.dialplan_context = value.to_string(),
            "dialplan" => cfg.dialplan = value.to_string(),
            "max-call-duration" => {
                let n: u32 = number(value, &at)?;
                if n > crate::core::request::MAX_TIME_LIMIT {
                    return Err(err(at, "must be 0 (no limit) to 86400 seconds"));
                }
                cfg.max_call_duration = (n > 0).then_some(n);
            }
            "record-calls" => {
                cfg.record_calls = RecordCalls::parse(value)
                    .ok_or_else(|| err(&at, "must be never, on-request or always"))?;
            }
            "recordings-dir" => cfg.recordings_dir = PathBuf::from(value.trim()),
            "recording-format" => {
                let f = value.trim().to_ascii_lowercase();
                if f.is_empty() || f.len() > 10 || !f.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(err(
                        at,
                        "must be a file extension FreeSWITCH writes, e.g. wav",
                    ));
                }
                cfg.recording_format = f;
            }
            "recording-retention" => {
                let days: f64 = number(value, &at)?;
                if !(days.is_finite() && days >= 0.0) {
                    return Err(err(at, "must be days >= 0 (0: keep)"));
                }
                cfg.recording_retention =
                    (days > 0.0).then(|| Duration::from_secs_f64(days * 86_400.0));
            }
            "ended-call-retention" => cfg.ended_call_retention = secs(value, &at)?,
            "max-concurrent-calls" => {
                cfg.max_concurrent_calls = match value.trim() {
                    "auto" => None,
                    v => Some(number(v, &at)?),
                }
            }
            _ => return Err(err(at, "unknown param")),
        }
    }
    Ok(())
}

fn http(cfg: &mut Config, section: Node) -> Result<(), ConfigError> {
    let h = &mut cfg.http;
    for (name, value, at) in params(section)? {
        match name.as_str() {
            "enabled" => h.enabled = boolean(value, &at)?,
            "listen" => {
                h.listen = value
                    .parse::<SocketAddr>()
                    .map_err(|_| err(at, "must be IP:PORT, e.g. 127.0.0.1:8089"))?
            }
            "max-body-bytes" => h.max_body_bytes = number(value, &at)?,
            "max-header-bytes" => h.max_header_bytes = number(value, &at)?,
            "header-read-timeout" => h.header_read_timeout = secs(value, &at)?,
            "read-timeout" => h.read_timeout = secs(value, &at)?,
            "idle-timeout" => h.idle_timeout = secs(value, &at)?,
            "max-connections" => h.max_connections = number(value, &at)?,
            "max-connections-per-ip" => h.max_connections_per_ip = number(value, &at)?,
            "tls-cert" => h.tls_cert = non_empty(value).map(PathBuf::from),
            "tls-key" => h.tls_key = non_empty(value).map(PathBuf::from),
            "rate-limit-per-minute" => {
                let n: u32 = number(value, &at)?;
                h.rate_limit_per_minute = (n > 0).then_some(n);
            }
            "idempotency-ttl" => h.idempotency_ttl = secs(value, &at)?,
            _ => return Err(err(at, "unknown param")),
        }
    }
    Ok(())
}

fn webhooks(cfg: &mut Config, section: Node) -> Result<(), ConfigError> {
    let w = &mut cfg.webhooks;
    for (name, value, at) in params(section)? {
        match name.as_str() {
            "url" => w.url = non_empty(value),
            "secret" => w.secrets = list(value),
            "data-dir" | "spool-dir" => w.spool_dir = PathBuf::from(value),
            "retry-schedule" => {
                w.retry_schedule = list(value)
                    .iter()
                    .map(|v| secs(v, &at))
                    .collect::<Result<_, _>>()?
            }
            "give-up-after" => w.give_up_after = secs(value, &at)?,
            "connect-timeout" => w.connect_timeout = secs(value, &at)?,
            "response-timeout" => w.response_timeout = secs(value, &at)?,
            "max-spool-bytes" => w.max_spool_bytes = bytes(value, &at)?,
            "spool-high-water" => {
                let p: u8 = number(value, &at)?;
                if !(1..=100).contains(&p) {
                    return Err(err(at, "must be a percent, 1 to 100"));
                }
                w.spool_high_water_percent = p;
            }
            "max-dead-letters" => w.max_dead_letters = number::<usize>(value, &at)?.max(1),
            // Before the byte bound; kept so that old configs still load.
            "max-spool-events" => {
                number::<usize>(value, &at)?;
            }
            "workers" => w.workers = number::<usize>(value, &at)?.max(1),
            "worker-idle" => w.worker_idle = secs(value, &at)?,
            "store-sync" => {
                w.store_sync =
                    StoreSync::parse(value).ok_or_else(|| err(at, "must be full or normal"))?
            }
            _ => return Err(err(at, "unknown param")),
        }
    }
    Ok(())
}

fn cluster(section: Node) -> Result<ClusterSettings, ConfigError> {
    let mut c = ClusterSettings::new("", &host_name(), "");
    for (name, value, at) in params(section)? {
        match name.as_str() {
            "redis-url" => c.redis_url = value.trim().to_string(),
            "node-name" => c.node_name = non_empty(value).unwrap_or_else(host_name),
            "key-prefix" => c.key_prefix = value.to_string(),
            "connect-timeout" => c.connect_timeout = secs(value, &at)?,
            "command-timeout" => c.command_timeout = secs(value, &at)?,
            "heartbeat-interval" => c.heartbeat_interval = secs(value, &at)?,
            "node-ttl" => c.node_ttl = secs(value, &at)?,
            "call-owner-ttl" => c.call_owner_ttl = secs(value, &at)?,
            "node-url" => c.node_url = non_empty(value),
            "node-secret" => c.node_secret = value.to_string(),
            "forward-timeout" => c.forward_timeout = secs(value, &at)?,
            _ => return Err(err(at, "unknown param")),
        }
    }
    if c.redis_url.is_empty() {
        return Err(err("cluster/param[redis-url]", "is required"));
    }
    Ok(c)
}

fn tokens(section: Node) -> Result<Vec<ApiToken>, ConfigError> {
    children(section, "token")?
        .into_iter()
        .map(|(n, at)| {
            Ok(ApiToken {
                name: required(n, &at, "name")?.to_string(),
                secret: required(n, &at, "value")?.to_string(),
                webhook_url: n.attribute("webhook-url").and_then(non_empty),
                webhook_secrets: n.attribute("webhook-secret").map(list).unwrap_or_default(),
            })
        })
        .collect()
}

fn trunks(section: Node) -> Result<Vec<Trunk>, ConfigError> {
    children(section, "trunk")?
        .into_iter()
        .map(|(n, at)| {
            let target = match (n.attribute("gateway"), n.attribute("dial-string")) {
                (Some(g), None) => TrunkTarget::Gateway(g.to_string()),
                (None, Some(d)) => TrunkTarget::DialString(d.to_string()),
                _ => return Err(err(at, "needs exactly one of gateway= or dial-string=")),
            };
            let active = match n.attribute("status").unwrap_or("active") {
                "active" => true,
                "inactive" => false,
                _ => return Err(err(format!("{at}@status"), "must be active or inactive")),
            };
            Ok(Trunk {
                id: number(required(n, &at, "id")?, &format!("{at}@id"))?,
                name: required(n, &at, "name")?.to_string(),
                target,
                active,
                cost: match n.attribute("cost") {
                    Some(c) => number(c, &format!("{at}@cost"))?,
                    None => 0.0,
                },
                cps: trunk_limit(n, &at, "cps")?,
                max_channels: trunk_limit(n, &at, "max-channels")?,
            })
        })
        .collect()
}

/// A trunk's optional limit attribute; a value that is not a number is
/// refused naming the trunk (the range is checked by `Config::validate`).
fn trunk_limit<T: std::str::FromStr>(
    n: Node,
    at: &str,
    attr: &str,
) -> Result<Option<T>, ConfigError> {
    let Some(v) = n.attribute(attr) else {
        return Ok(None);
    };
    let trunk = n.attribute("name").unwrap_or("?");
    v.trim().parse().map(Some).map_err(|_| {
        err(
            format!("{at}@{attr}"),
            format!("trunk {trunk:?}: {v:?} is not a valid number"),
        )
    })
}

fn lcr(section: Node) -> Result<Vec<LcrRoute>, ConfigError> {
    children(section, "route")?
        .into_iter()
        .map(|(n, at)| {
            let trunk_ids = list(required(n, &at, "trunks")?)
                .iter()
                .map(|v| number(v, &format!("{at}@trunks")))
                .collect::<Result<_, _>>()?;
            Ok(LcrRoute {
                prefix: n.attribute("prefix").unwrap_or("").to_string(),
                trunk_ids,
            })
        })
        .collect()
}

fn caller_ids(section: Node) -> Result<Vec<PoolNumber>, ConfigError> {
    children(section, "number")?
        .into_iter()
        .map(|(n, at)| {
            Ok(PoolNumber {
                number: required(n, &at, "value")?.to_string(),
                trunk_id: match n.attribute("trunk") {
                    Some(t) => Some(number(t, &format!("{at}@trunk"))?),
                    None => None,
                },
                description: n.attribute("description").map(str::to_string),
            })
        })
        .collect()
}

/// `<caller-ids strategy="fixed|local-presence|sticky" sticky-ttl="seconds">`.
fn caller_id_strategy(cfg: &mut Config, section: Node) -> Result<(), ConfigError> {
    if let Some(v) = section.attribute("strategy") {
        cfg.caller_id_strategy = CallerIdStrategy::parse(v).ok_or_else(|| {
            err(
                "caller-ids@strategy",
                format!("unknown strategy {v:?} (fixed, local-presence or sticky)"),
            )
        })?;
    }
    if let Some(v) = section.attribute("sticky-ttl") {
        let secs: u64 = number(v, "caller-ids@sticky-ttl")?;
        if secs == 0 {
            return Err(err("caller-ids@sticky-ttl", "must be at least 1 second"));
        }
        cfg.sticky_ttl = Duration::from_secs(secs);
    }
    Ok(())
}

fn children<'a>(
    section: Node<'a, 'a>,
    tag: &str,
) -> Result<Vec<(Node<'a, 'a>, String)>, ConfigError> {
    let sname = section.tag_name().name();
    let mut out = Vec::new();
    for n in section.children().filter(Node::is_element) {
        if !n.has_tag_name(tag) {
            return Err(err(
                format!("{sname}/{}", n.tag_name().name()),
                format!("unknown element (expected <{tag}>)"),
            ));
        }
        out.push((n, format!("{sname}/{tag}[{}]", out.len() + 1)));
    }
    Ok(out)
}

fn required<'a>(n: Node<'a, 'a>, at: &str, attr: &str) -> Result<&'a str, ConfigError> {
    n.attribute(attr)
        .ok_or_else(|| err(format!("{at}@{attr}"), "is required"))
}

fn non_empty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn list(v: &str) -> Vec<String> {
    v.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn number<T: std::str::FromStr>(v: &str, at: &str) -> Result<T, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| err(at, format!("not a valid number: {v:?}")))
}

/// Bytes: a number, optionally with a binary suffix `K`, `M`, `G` (e.g. `2G`).
fn bytes(v: &str, at: &str) -> Result<u64, ConfigError> {
    let t = v.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => {
            return Err(err(
                at,
                format!("not a size: {v:?} (bytes, or with K, M, G)"),
            ))
        }
    };
    let n: u64 = number(digits, at)?;
    n.checked_mul(1u64 << shift)
        .filter(|b| *b > 0)
        .ok_or_else(|| err(at, format!("not a size: {v:?}")))
}

fn secs(v: &str, at: &str) -> Result<Duration, ConfigError> {
    let n: f64 = number(v, at)?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(err(at, "must be seconds >= 0"));
    }
    Ok(Duration::from_secs_f64(n))
}

fn boolean(v: &str, at: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(err(at, "must be true or false")),
    }
}
