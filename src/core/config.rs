//! The module's configuration: typed, validated, and parsed from the same XML
//! that FreeSWITCH reads (`autoload_configs/zorio_c2c.conf.xml`).
//!
//! A config is built whole or not at all: [`Config::from_xml`] either returns a
//! complete, consistent [`Config`] or a [`ConfigError`] naming the element at
//! fault, so a bad `c2c reload` never half-applies.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the module reads from `zorio_c2c.conf.xml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Directory domain of the agents' extensions; `None` means the switch's own.
    pub domain: Option<String>,
    /// How long the agent's phone rings before the call is given up.
    pub a_leg_timeout: Duration,
    /// How long the customer's phone rings (per routing attempt).
    pub b_leg_timeout: Duration,
    /// Caller id name shown to the agent while their phone rings.
    pub agent_caller_id_name: String,
    /// Caller id number shown to the agent; `None` shows the customer's number.
    pub agent_caller_id_number: Option<String>,
    /// Ask the agent's softphone to answer by itself (`sip_auto_answer`).
    pub auto_answer: bool,
    /// What the agent hears while the customer's phone rings (across LCR
    /// failover, until the bridge): a tone (`%(2000,4000,440,480)`,
    /// `$${us-ring}`) or a sound file; `None`: silence.
    pub ringback: Option<String>,
    /// Dialplan context for B-legs that no LCR route covers.
    pub dialplan_context: String,
    /// Dialplan type for those B-legs (normally `XML`).
    pub dialplan: String,
    /// Calls in flight at once; further requests are refused with 503.
    /// `None`: half the switch's `max-sessions` (two channels a call).
    pub max_concurrent_calls: Option<usize>,
    /// How long an ended call stays readable (`GET /api/pbx/calls/{uuid}`),
    /// in the durable store (not in memory).
    pub ended_call_retention: Duration,
    /// Outbound trunks, in config order.
    pub trunks: Vec<Trunk>,
    /// Least-cost routes.
    pub lcr: Vec<LcrRoute>,
    /// The caller-id number pool (`GET /api/pbx/caller-ids`).
    pub caller_ids: Vec<PoolNumber>,
    /// The HTTP listener.
    pub http: HttpSettings,
    /// API tokens.
    pub tokens: Vec<ApiToken>,
    /// Webhook delivery.
    pub webhooks: WebhookSettings,
}

/// How a trunk reaches the carrier.
#[derive(Debug, Clone, PartialEq)]
pub enum TrunkTarget {
    /// A sofia gateway: `sofia/gateway/<name>/<number>`.
    Gateway(String),
    /// A dial string template in which `${number}` stands for the number.
    DialString(String),
}

/// An outbound trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Trunk {
    pub id: i64,
    pub name: String,
    pub target: TrunkTarget,
    pub active: bool,
    /// Relative cost per minute; LCR tries cheaper trunks first.
    pub cost: f64,
}

/// A least-cost route: numbers starting with `prefix` may use these trunks.
#[derive(Debug, Clone, PartialEq)]
pub struct LcrRoute {
    pub prefix: String,
    pub trunk_ids: Vec<i64>,
}

/// A number of the caller-id pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolNumber {
    pub number: String,
    /// The trunk this number belongs to, if any.
    pub trunk_id: Option<i64>,
    pub description: Option<String>,
}

/// The HTTP listener's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    /// The head of a request must arrive within this of its first byte.
    pub header_read_timeout: Duration,
    /// The whole request (head and body) must arrive within this of its
    /// first byte; a response must be taken by the client within it too.
    pub read_timeout: Duration,
    /// A keep-alive connection with no request is closed after this.
    pub idle_timeout: Duration,
    /// Open connections in all; beyond it: 503 and close.
    pub max_connections: usize,
    /// Open connections from one client address; beyond it: 503 and close.
    pub max_connections_per_ip: usize,
    /// PEM certificate chain and private key: both set turns on HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Requests per minute per token on the calls group; `None` turns it off.
    pub rate_limit_per_minute: Option<u32>,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
}

/// An API token and, optionally, its own webhook destination.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub name: String,
    pub secret: String,
    pub webhook_url: Option<String>,
    /// Signing secrets (`whsec_…`); several at once during rotation.
    pub webhook_secrets: Vec<String>,
}

/// Webhook delivery settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// Default destination; `None` means events are only spooled and mirrored.
    pub url: Option<String>,
    /// Default signing secrets (`whsec_…`).
    pub secrets: Vec<String>,
    /// The data directory: the durable store (`zorio_c2c.db`: spool, dead
    /// letters, idempotency keys, call journal) lives here; a file spool an
    /// older version left here is imported. Empty: the host chooses (the
    /// module `<db_dir>/zorio_c2c`, the sandbox a temp directory).
    pub spool_dir: PathBuf,
    /// Delays between attempts, as data.
    pub retry_schedule: Vec<Duration>,
    /// After this long an event goes to the dead-letter store.
    pub give_up_after: Duration,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// The spool's bound in bytes. Events of accepted calls are never
    /// dropped: new calls are refused from the high-water mark on.
    pub max_spool_bytes: u64,
    /// Percent of `max_spool_bytes` from which new calls are refused (503
    /// `spool_full`); the rest is the reserve of the calls already accepted.
    pub spool_high_water_percent: u8,
    /// Dead letters kept; past it the oldest are discarded (loudly).
    pub max_dead_letters: usize,
    /// Delivery worker threads.
    pub workers: usize,
}

/// 1 GiB: a day-long CRM outage at a busy switch (see README, "Spool sizing").
pub const DEFAULT_MAX_SPOOL_BYTES: u64 = 1024 * 1024 * 1024;

/// A config that cannot be used, and the element at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where: e.g. `trunks/trunk[2]@id`.
    pub at: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8089)),
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 16_384,
            max_connections_per_ip: 256,
            tls_cert: None,
            tls_key: None,
            rate_limit_per_minute: Some(10),
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            url: None,
            secrets: Vec::new(),
            spool_dir: PathBuf::new(),
            retry_schedule: [5, 30, 120, 600, 1800, 3600]
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            give_up_after: Duration::from_secs(24 * 3600),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(15),
            max_spool_bytes: DEFAULT_MAX_SPOOL_BYTES,
            spool_high_water_percent: 90,
            max_dead_letters: 100_000,
            workers: 2,
        }
    }
}

/// The default `ringback`: the US ring tone.
pub const DEFAULT_RINGBACK: &str = "%(2000,4000,440,480)";

impl Default for Config {
    fn default() -> Self {
        Config {
            domain: None,
            a_leg_timeout: Duration::from_secs(30),
            b_leg_timeout: Duration::from_secs(60),
            agent_caller_id_name: "Click-to-call".to_string(),
            agent_caller_id_number: None,
            auto_answer: false,
            ringback: Some(DEFAULT_RINGBACK.to_string()),
            dialplan_context: "default".to_string(),
            dialplan: "XML".to_string(),
            max_concurrent_calls: None,
            ended_call_retention: Duration::from_secs(7 * 24 * 3600),
            trunks: Vec::new(),
            lcr: Vec::new(),
            caller_ids: Vec::new(),
            http: HttpSettings::default(),
            tokens: Vec::new(),
            webhooks: WebhookSettings::default(),
        }
    }
}

impl Config {
    /// The trunk with this id.
    pub fn trunk_by_id(&self, id: i64) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.id == id)
    }

    /// The trunk with this name (exact match first, then case-insensitive).
    pub fn trunk_by_name(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name).or_else(|| {
            self.trunks
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(name))
        })
    }

    /// The token whose secret this is (constant-time per comparison).
    pub fn token_by_secret(&self, presented: &str) -> Option<&ApiToken> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.secret.as_bytes().ct_eq(presented.as_bytes())) && found.is_none() {
                found = Some(token);
            }
        }
        found
    }

    /// Checks the cross-references a parsed config must satisfy.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return Err(err(
                "http/tls-cert",
                "tls-cert and tls-key go together (both or neither)",
            ));
        }
        if self.http.max_connections == 0 || self.http.max_connections_per_ip == 0 {
            return Err(err("http/max-connections", "must be at least 1"));
        }
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for (i, t) in self.trunks.iter().enumerate() {
            let at = format!("trunks/trunk[{}]", i + 1);
            if !ids.insert(t.id) {
                return Err(err(
                    format!("{at}@id"),
                    format!("duplicate trunk id {}", t.id),
                ));
            }
            if t.name.is_empty() || t.name.chars().count() > 100 {
                return Err(err(format!("{at}@name"), "must be 1 to 100 characters"));
            }
            if !names.insert(t.name.to_ascii_lowercase()) {
                return Err(err(
                    format!("{at}@name"),
                    format!("duplicate trunk name {}", t.name),
                ));
            }
            if !(t.cost.is_finite() && t.cost >= 0.0) {
                return Err(err(format!("{at}@cost"), "must be a number >= 0"));
            }
            match &t.target {
                TrunkTarget::Gateway(g) if !is_word(g) => {
                    return Err(err(format!("{at}@gateway"), "must be [A-Za-z0-9_.-]+"));
                }
                TrunkTarget::DialString(d) if !d.contains("${number}") => {
                    return Err(err(format!("{at}@dial-string"), "must contain ${number}"));
                }
                _ => {}
            }
        }
        for (i, r) in self.lcr.iter().enumerate() {
            let at = format!("lcr/route[{}]", i + 1);
            if !r.prefix.chars().all(|c| c.is_ascii_digit() || c == '+') {
                return Err(err(format!("{at}@prefix"), "must be digits or +"));
            }
            if r.trunk_ids.is_empty() {
                return Err(err(
                    format!("{at}@trunks"),
                    "must list at least one trunk id",
                ));
            }
            for id in &r.trunk_ids {
                if self.trunk_by_id(*id).is_none() {
                    return Err(err(
                        format!("{at}@trunks"),
                        format!("no trunk with id {id}"),
                    ));
                }
            }
        }
        for (i, n) in self.caller_ids.iter().enumerate() {
            let at = format!("caller-ids/number[{}]", i + 1);
            if !is_phone(&n.number, 1, 32) {
                return Err(err(format!("{at}@value"), "must be 1 to 32 digits or +"));
            }
            if let Some(id) = n.trunk_id {
                if self.trunk_by_id(id).is_none() {
                    return Err(err(format!("{at}@trunk"), format!("no trunk with id {id}")));
                }
            }
        }
        let mut secrets = HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let at = format!("tokens/token[{}]", i + 1);
            if t.name.is_empty() {
                return Err(err(format!("{at}@name"), "is required"));
            }
            if t.secret.len() < 8 {
                return Err(err(format!("{at}@value"), "must be at least 8 characters"));
            }
            if !secrets.insert(t.secret.clone()) {
                return Err(err(
                    format!("{at}@value"),
                    "the same token is configured twice",
                ));
            }
            for s in &t.webhook_secrets {
                check_webhook_secret(s).map_err(|m| err(format!("{at}@webhook-secret"), m))?;
            }
        }
        for s in &self.webhooks.secrets {
            check_webhook_secret(s).map_err(|m| err("webhooks/param[secret]", m))?;
        }
        if self.webhooks.retry_schedule.is_empty() {
            return Err(err(
                "webhooks/param[retry-schedule]",
                "must list at least one delay",
            ));
        }
        if let Some(domain) = &self.domain {
            if domain.is_empty() || !is_word(domain) {
                return Err(err("settings/param[domain]", "must be [A-Za-z0-9_.-]+"));
            }
        }
        if !is_word(&self.dialplan_context) || !is_word(&self.dialplan) {
            return Err(err(
                "settings/param[dialplan-context]",
                "must be [A-Za-z0-9_.-]+",
            ));
        }
        Ok(())
    }
}

fn check_webhook_secret(s: &str) -> Result<(), String> {
    use base64::Engine;
    let body = s.strip_prefix("whsec_").ok_or("must start with whsec_")?;
    match base64::engine::general_purpose::STANDARD.decode(body) {
        Ok(bytes) if !bytes.is_empty() => Ok(()),
        _ => Err("must be whsec_ followed by base64".to_string()),
    }
}

/// `[A-Za-z0-9_.-]+`: safe inside a dial string or a directory lookup.
pub fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// Digits and `+`, between `min` and `max` characters.
pub fn is_phone(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit() || c == '+')
}

pub(crate) fn err(at: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        at: at.into(),
        message: message.into(),
    }
}
