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
    /// `agent-busy`: `false` (`ring`, the default) rings an agent who is
    /// already on a call; `true` (`reject`) refuses the click-to-call (409
    /// `agent_busy`) and dials nobody.
    pub reject_busy_agent: bool,
    /// What the agent hears while the customer's phone rings (across LCR
    /// failover, until the bridge): a tone (`%(2000,4000,440,480)`,
    /// `$${us-ring}`) or a sound file; `None`: silence.
    pub ringback: Option<String>,
    /// `paced-ringback`: `false` (`skip`, the default) gives the customer's
    /// leg no `ringback` while the setup pace holds calls back or watches the
    /// switch's event queue (the switch overloaded: the agent hears the carrier's early media or silence, and
    /// the switch makes and sends no tone); `true` (`play`) plays it always.
    pub paced_ringback: bool,
    /// Dialplan context for B-legs that no LCR route covers.
    pub dialplan_context: String,
    /// Dialplan type for those B-legs (normally `XML`).
    pub dialplan: String,
    /// Calls in flight at once; further requests are refused with 503.
    /// `None`: half the switch's `max-sessions` (two channels a call).
    pub max_concurrent_calls: Option<usize>,
    /// Default time limit of a call from its bridge (`max-call-duration`,
    /// seconds); a request's `time_limit` wins. `None` (0): no limit.
    pub max_call_duration: Option<u32>,
    /// Which calls are recorded (`record-calls`).
    pub record_calls: RecordCalls,
    /// Where recordings go (`recordings-dir`); empty: the host's default
    /// (the module: `<FreeSWITCH recordings_dir>/zorio_c2c`).
    pub recordings_dir: PathBuf,
    /// The recordings' format, the file extension FreeSWITCH writes
    /// (`recording-format`, `wav`).
    pub recording_format: String,
    /// Recordings older than this are erased (`recording-retention`, days);
    /// `None` (0): kept until erased through the API.
    pub recording_retention: Option<Duration>,
    /// How long an ended call stays readable (`GET /api/pbx/calls/{uuid}`),
    /// in the durable store (not in memory).
    pub ended_call_retention: Duration,
    /// Outbound trunks, in config order.
    pub trunks: Vec<Trunk>,
    /// How long an LCR attempt waits for a trunk's CPS slot before it moves
    /// on to the next trunk (`max-pacing-wait`).
    pub max_pacing_wait: Duration,
    /// How long a call forced onto a trunk waits in its queue for a channel
    /// and a CPS slot (`trunk-queue-timeout`).
    pub trunk_queue_timeout: Duration,
    /// Least-cost routes.
    pub lcr: Vec<LcrRoute>,
    /// The caller-id number pool (`GET /api/pbx/caller-ids`).
    pub caller_ids: Vec<PoolNumber>,
    /// How a caller id is chosen when the request names none.
    pub caller_id_strategy: CallerIdStrategy,
    /// How long `sticky` remembers the number a customer was called from.
    pub sticky_ttl: Duration,
    /// The HTTP listener.
    pub http: HttpSettings,
    /// API tokens.
    pub tokens: Vec<ApiToken>,
    /// Webhook delivery.
    pub webhooks: WebhookSettings,
    /// Several switches behind one API, sharing state in Redis; `None`
    /// (the default): this switch alone, no Redis.
    pub cluster: Option<ClusterSettings>,
}

/// The `<cluster>` section: where the shared state lives and who this node is.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// `redis://[:password@]host:port[/db]` (or `rediss://`).
    pub redis_url: String,
    /// This switch's name among the nodes (default: the host name).
    pub node_name: String,
    /// Prefix of every key we write (several PBXs may share one Redis).
    pub key_prefix: String,
    /// Connecting to Redis may take this long.
    pub connect_timeout: Duration,
    /// One Redis command (or script) may take this long.
    pub command_timeout: Duration,
    /// How often this node says it is alive (and reads the others).
    pub heartbeat_interval: Duration,
    /// A node not heard from for this long is down.
    pub node_ttl: Duration,
    /// How long an accepted call's owner is remembered.
    pub call_owner_ttl: Duration,
    /// The URL other nodes reach this node's API on; default from `http/listen`.
    pub node_url: Option<String>,
    /// The node-to-node credential (the same on every node).
    pub node_secret: String,
    /// A call lookup forwarded to its owner may take this long.
    pub forward_timeout: Duration,
}

impl ClusterSettings {
    /// Defaults for everything but the URL, the name and the secret.
    pub fn new(redis_url: &str, node_name: &str, node_secret: &str) -> ClusterSettings {
        ClusterSettings {
            redis_url: redis_url.to_string(),
            node_name: node_name.to_string(),
            key_prefix: "zorio_c2c:".to_string(),
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(250),
            heartbeat_interval: Duration::from_secs(1),
            node_ttl: Duration::from_secs(5),
            call_owner_ttl: Duration::from_secs(7 * 24 * 3600),
            node_url: None,
            node_secret: node_secret.to_string(),
            forward_timeout: Duration::from_secs(2),
        }
    }
}

/// The host's name, the default node name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".to_string())
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
    /// Calls a second the carrier takes (`cps`, may be fractional); `None`: no limit.
    pub cps: Option<f64>,
    /// Channels the trunk carries at once, ours and others' (`max-channels`); `None`: no limit.
    pub max_channels: Option<u32>,
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

/// `record-calls`: which calls are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordCalls {
    /// None; a request with `record: true` is refused (`recording_disabled`).
    Never,
    /// Those whose request says `record: true` (the default).
    #[default]
    OnRequest,
    /// Every call.
    Always,
}

impl RecordCalls {
    /// `never`, `on-request` or `always`.
    pub fn parse(v: &str) -> Option<RecordCalls> {
        match v.trim().to_ascii_lowercase().as_str() {
            "never" => Some(RecordCalls::Never),
            "on-request" => Some(RecordCalls::OnRequest),
            "always" => Some(RecordCalls::Always),
            _ => None,
        }
    }

    /// Whether a call whose request said `record` is recorded.
    pub fn records(self, requested: Option<bool>) -> bool {
        match self {
            RecordCalls::Never => false,
            RecordCalls::OnRequest => requested == Some(true),
            RecordCalls::Always => true,
        }
    }
}

/// How the caller id is chosen when the request has no `caller_id`
/// (`<caller-ids strategy="…">`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerIdStrategy {
    /// The contract's chain: the extension's outbound caller id, else the extension.
    Fixed,
    /// The pool number (of the chosen trunk, when one is known) sharing the
    /// longest leading digits with the customer's number; none: `Fixed`.
    LocalPresence,
    /// The number this customer was last called from (within `sticky-ttl`),
    /// so a callback reaches the same line; else `LocalPresence`.
    Sticky,
}

impl CallerIdStrategy {
    /// From its config name.
    pub fn parse(v: &str) -> Option<CallerIdStrategy> {
        match v {
            "fixed" => Some(CallerIdStrategy::Fixed),
            "local-presence" => Some(CallerIdStrategy::LocalPresence),
            "sticky" => Some(CallerIdStrategy::Sticky),
            _ => None,
        }
    }
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
    /// Most delivery threads (each one request in flight to the CRM). They
    /// are started when events are due and no thread is free, and end after
    /// `worker_idle` without work: none run while nothing is to deliver.
    pub workers: usize,
    /// How long a delivery thread waits for work before it ends (`worker-idle`).
    pub worker_idle: Duration,
    /// What a commit of the durable store survives (`store-sync`).
    pub store_sync: StoreSync,
}

/// What a commit of the durable store survives: SQLite's `synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreSync {
    /// `full` (the default): every commit is fsync'd before anyone is told
    /// it is done: a 202, a key and an event survive a power loss.
    #[default]
    Full,
    /// `normal`: commits reach the OS at once and the disk at checkpoints:
    /// they survive a crash, `kill -9` or reload of FreeSWITCH, not a power
    /// loss or a kernel crash. Each commit then costs no fsync.
    Normal,
}

impl StoreSync {
    /// `full` or `normal` (any case), as the XML param and the sandbox flag say it.
    pub fn parse(value: &str) -> Option<StoreSync> {
        match value.to_ascii_lowercase().as_str() {
            "full" => Some(StoreSync::Full),
            "normal" => Some(StoreSync::Normal),
            _ => None,
        }
    }

    /// The value of SQLite's `PRAGMA synchronous`.
    pub fn pragma(self) -> &'static str {
        match self {
            StoreSync::Full => "FULL",
            StoreSync::Normal => "NORMAL",
        }
    }
}

/// Delivery threads: each waits on one request at a time, so a receiver
/// that takes 50 ms to answer gets at most 20 events a second from each.
/// Sixteen cover a busy switch's rate (30 calls/s, about 240 events/s) over
/// a slow CRM and pass 10,000/s on loopback; an idle one costs its stack.
pub const DEFAULT_WEBHOOK_WORKERS: usize = 16;

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
            workers: DEFAULT_WEBHOOK_WORKERS,
            worker_idle: Duration::from_secs(10),
            store_sync: StoreSync::Full,
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
            reject_busy_agent: false,
            ringback: Some(DEFAULT_RINGBACK.to_string()),
            paced_ringback: false,
            dialplan_context: "default".to_string(),
            dialplan: "XML".to_string(),
            max_concurrent_calls: None,
            max_call_duration: None,
            record_calls: RecordCalls::OnRequest,
            recordings_dir: PathBuf::new(),
            recording_format: "wav".to_string(),
            recording_retention: None,
            ended_call_retention: Duration::from_secs(7 * 24 * 3600),
            trunks: Vec::new(),
            max_pacing_wait: Duration::from_secs(1),
            trunk_queue_timeout: Duration::from_secs(30),
            lcr: Vec::new(),
            caller_ids: Vec::new(),
            caller_id_strategy: CallerIdStrategy::Fixed,
            sticky_ttl: Duration::from_secs(30 * 24 * 3600),
            http: HttpSettings::default(),
            tokens: Vec::new(),
            webhooks: WebhookSettings::default(),
            cluster: None,
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
            if t.cps
                .is_some_and(|c| !(c.is_finite() && c > 0.0 && c <= 10_000.0))
            {
                return Err(err(
                    format!("{at}@cps"),
                    format!(
                        "trunk {:?}: must be calls per second above 0 (at most 10000)",
                        t.name
                    ),
                ));
            }
            if t.max_channels == Some(0) {
                return Err(err(
                    format!("{at}@max-channels"),
                    format!(
                        "trunk {:?}: must be at least 1 (leave it out for no limit)",
                        t.name
                    ),
                ));
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
        if let Some(c) = &self.cluster {
            c.validate()?;
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

impl ClusterSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let scheme = self.redis_url.split("://").next().unwrap_or("");
        if !matches!(scheme, "redis" | "rediss") || !self.redis_url.contains("://") {
            return Err(err(
                "cluster/param[redis-url]",
                "must be redis://host:port (or rediss://)",
            ));
        }
        if !is_word(&self.node_name) || self.node_name.len() > 64 {
            return Err(err(
                "cluster/param[node-name]",
                "must be 1 to 64 of [A-Za-z0-9_.-]",
            ));
        }
        if self.node_secret.len() < 16 {
            return Err(err(
                "cluster/param[node-secret]",
                "must be at least 16 characters (the same on every node)",
            ));
        }
        if self.key_prefix.is_empty() || self.key_prefix.len() > 64 {
            return Err(err(
                "cluster/param[key-prefix]",
                "must be 1 to 64 characters",
            ));
        }
        if let Some(url) = &self.node_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err(
                    "cluster/param[node-url]",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        let positive = [
            ("connect-timeout", self.connect_timeout),
            ("command-timeout", self.command_timeout),
            ("heartbeat-interval", self.heartbeat_interval),
            ("forward-timeout", self.forward_timeout),
            ("call-owner-ttl", self.call_owner_ttl),
        ];
        for (name, d) in positive {
            if d.is_zero() {
                return Err(err(format!("cluster/param[{name}]"), "must be more than 0"));
            }
        }
        if self.node_ttl <= self.heartbeat_interval {
            return Err(err(
                "cluster/param[node-ttl]",
                "must be longer than heartbeat-interval",
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
