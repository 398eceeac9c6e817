//! c2c-sandbox: the click-to-call API on a simulated PBX, for CRM developers.
//!
//! The same core as the FreeSWITCH module (engine, HTTP API) over the
//! simulated switch: demo extensions, trunks and caller ids, configurable
//! timing, and every event printed as the webhook envelope it would send.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mod_zorio_c2c::app::App;
use mod_zorio_c2c::core::config::{ApiToken, ClusterSettings, Config, StoreSync};
use mod_zorio_c2c::core::events::{CallEvent, EventSink};
use mod_zorio_c2c::sim::{self, SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;

/// The documented demo token, used when no `--token` is given.
const DEMO_TOKEN: &str = "sandbox-token";
const DEFAULT_LISTEN: &str = "127.0.0.1:8089";
/// The documented node-to-node credential of sandbox clusters.
const SANDBOX_NODE_SECRET: &str = "sandbox-node-secret";
/// The demo world: trunks 4 POC, 5 BACKUP (active), 7 OLD (inactive), the
/// caller-id pool 0900000020/21 and an LCR route for prefix 0.
const DEMO_CONFIG: &str = include_str!("../../conf/autoload_configs/zorio_c2c.conf.xml");

const HELP: &str = "\
c2c-sandbox: the Zorio click-to-call API on a simulated PBX

USAGE: c2c-sandbox [OPTIONS]

OPTIONS:
  --listen ADDR             address to serve on (default 127.0.0.1:8089)
  --token TOKEN             accepted API token, repeatable (default: sandbox-token)
  --webhook-url URL         where to POST webhook events
  --webhook-secret SECRET   Standard Webhooks signing secret (whsec_<base64>)
  --config FILE             a zorio_c2c.conf.xml (module format) instead of the demo data
  --data-dir DIR            where the durable store lives (zorio_c2c.db: undelivered
                            events, dead letters, idempotency keys, calls); a restart
                            on the same DIR delivers what was left (default: one dir
                            per listen port, reused by every start on it:
                            $XDG_STATE_HOME/c2c-sandbox/<port>, else
                            ~/.local/state/c2c-sandbox/<port>, else
                            <temp dir>/c2c-sandbox/<port>; two sandboxes at once on
                            port 0 need a --data-dir each); recordings go to DIR/recordings
  --store-sync full|normal  what a commit of the store survives: full (default) fsyncs
                            each commit (power loss); normal survives a crash or kill -9
  --rate-limit N            click-to-call requests per minute per token (0: off; default 10)
  --max-connections N       open HTTP connections in all (default 16384)
  --max-connections-per-ip N  open HTTP connections per client address (default 256)
  --header-read-timeout S   seconds a request head may take from its first byte (default 10)
  --read-timeout S          seconds a whole request may take from its first byte (default 10)
  --idle-timeout S          seconds an idle keep-alive connection is kept (default 30)
  --tls-cert FILE           PEM certificate chain: serve HTTPS (with --tls-key)
  --tls-key FILE            PEM private key of --tls-cert
  --redis URL               join a cluster sharing state in Redis (redis://127.0.0.1:6379):
                            global rate limit and Idempotency-Keys, calls found from any node
  --node-name NAME          this node's name in the cluster (default: sandbox-<port>)
  --node-secret SECRET      node-to-node credential, the same on every node (default:
                            the documented sandbox one; at least 16 characters)
  --agent-answer-ms MS      the agent picks up after MS (default 1500)
  --customer-answer-ms MS   the customer picks up after MS of ringing (default 1500)
  --talk-ms MS              the customer hangs up after talking MS (default 3000)
  --quiet                   do not print events
  -h, --help                this text

DEMO WORLD:
  extensions 1001 and 1002 (caller id 0900000021) answer; 1003 is inactive;
  1004 never answers. Trunks 4 POC and 5 BACKUP are active, 7 OLD inactive.
  Destinations: 0900486486 busy, 0900408408 no answer, 0900503503 first trunk
  fails (failover), 0900503999 every trunk fails; anything else answers.
";

#[derive(Default)]
struct Args {
    listen: Option<SocketAddr>,
    tokens: Vec<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    store_sync: Option<StoreSync>,
    rate_limit: Option<u32>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    header_read_timeout: Option<u64>,
    read_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    redis: Option<String>,
    node_name: Option<String>,
    node_secret: Option<String>,
    agent_answer_ms: Option<u64>,
    customer_answer_ms: Option<u64>,
    talk_ms: Option<u64>,
    quiet: bool,
    help: bool,
}

fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let count = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        let secs = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number of seconds: {v}"))
        };
        let ms = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number of milliseconds: {v}"))
        };
        match flag.as_str() {
            "-h" | "--help" => a.help = true,
            "--quiet" => a.quiet = true,
            "--listen" => {
                let v = value()?;
                a.listen = Some(
                    v.parse()
                        .map_err(|_| format!("--listen: bad address {v}"))?,
                );
            }
            "--token" => a.tokens.push(value()?),
            "--webhook-url" => a.webhook_url = Some(value()?),
            "--webhook-secret" => a.webhook_secret = Some(value()?),
            "--config" => a.config = Some(PathBuf::from(value()?)),
            "--data-dir" => a.data_dir = Some(PathBuf::from(value()?)),
            "--store-sync" => {
                let v = value()?;
                a.store_sync = Some(
                    StoreSync::parse(&v).ok_or(format!("--store-sync: {v} (full or normal)"))?,
                );
            }
            "--rate-limit" => {
                let v = value()?;
                a.rate_limit = Some(v.parse().map_err(|_| format!("--rate-limit: {v}"))?);
            }
            "--max-connections" => a.max_connections = Some(count(value()?)?),
            "--max-connections-per-ip" => a.max_connections_per_ip = Some(count(value()?)?),
            "--header-read-timeout" => a.header_read_timeout = Some(secs(value()?)?),
            "--read-timeout" => a.read_timeout = Some(secs(value()?)?),
            "--idle-timeout" => a.idle_timeout = Some(secs(value()?)?),
            "--tls-cert" => a.tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => a.tls_key = Some(PathBuf::from(value()?)),
            "--redis" => a.redis = Some(value()?),
            "--node-name" => a.node_name = Some(value()?),
            "--node-secret" => a.node_secret = Some(value()?),
            "--agent-answer-ms" => a.agent_answer_ms = Some(ms(value()?)?),
            "--customer-answer-ms" => a.customer_answer_ms = Some(ms(value()?)?),
            "--talk-ms" => a.talk_ms = Some(ms(value()?)?),
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    Ok(a)
}

fn build_config(a: &Args) -> Result<Config, String> {
    let mut config = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Config::from_xml(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => {
            let mut c = Config::from_xml(DEMO_CONFIG).map_err(|e| e.to_string())?;
            c.tokens.clear();
            c.http.listen = DEFAULT_LISTEN.parse().map_err(|_| "default listen")?;
            c
        }
    };
    let mut secrets = a.tokens.clone();
    if secrets.is_empty() && a.config.is_none() {
        secrets.push(DEMO_TOKEN.to_string());
    }
    if !secrets.is_empty() {
        config.tokens = secrets
            .into_iter()
            .enumerate()
            .map(|(i, secret)| ApiToken {
                name: if i == 0 {
                    "sandbox".to_string()
                } else {
                    format!("sandbox-{}", i + 1)
                },
                secret,
                webhook_url: None,
                webhook_secrets: Vec::new(),
            })
            .collect();
    }
    if let Some(listen) = a.listen {
        config.http.listen = listen;
    }
    config.http.enabled = true;
    if let Some(dir) = &a.data_dir {
        config.webhooks.spool_dir = dir.clone();
    }
    if let Some(sync) = a.store_sync {
        config.webhooks.store_sync = sync;
    }
    if config.webhooks.spool_dir.as_os_str().is_empty() {
        // One store per port: a restarted sandbox delivers what it had left.
        config.webhooks.spool_dir = default_data_dir(
            std::env::var_os("XDG_STATE_HOME"),
            std::env::var_os("HOME"),
            config.http.listen.port(),
        );
    }
    if config.recordings_dir.as_os_str().is_empty() {
        // Beside the store: `record: true` leaves a 2-channel WAV there.
        config.recordings_dir = config.webhooks.spool_dir.join("recordings");
    }
    if let Some(n) = a.rate_limit {
        config.http.rate_limit_per_minute = (n > 0).then_some(n);
    }
    let h = &mut config.http;
    if let Some(n) = a.max_connections {
        h.max_connections = n;
    }
    if let Some(n) = a.max_connections_per_ip {
        h.max_connections_per_ip = n;
    }
    if let Some(s) = a.header_read_timeout {
        h.header_read_timeout = Duration::from_secs(s);
    }
    if let Some(s) = a.read_timeout {
        h.read_timeout = Duration::from_secs(s);
    }
    if let Some(s) = a.idle_timeout {
        h.idle_timeout = Duration::from_secs(s);
    }
    if a.tls_cert.is_some() || a.tls_key.is_some() {
        h.tls_cert = a.tls_cert.clone();
        h.tls_key = a.tls_key.clone();
    }
    if let Some(url) = &a.webhook_url {
        config.webhooks.url = Some(url.clone());
    }
    if let Some(secret) = &a.webhook_secret {
        config.webhooks.secrets = vec![secret.clone()];
    }
    if let Some(url) = &a.redis {
        let port = config.http.listen.port();
        let name = a
            .node_name
            .clone()
            .unwrap_or_else(|| format!("sandbox-{port}"));
        let secret = a.node_secret.as_deref().unwrap_or(SANDBOX_NODE_SECRET);
        let mut c = config
            .cluster
            .take()
            .unwrap_or_else(|| ClusterSettings::new(url, &name, secret));
        c.redis_url = url.clone();
        c.node_name = name;
        c.node_secret = secret.to_string();
        config.cluster = Some(c);
    } else if a.node_name.is_some() || a.node_secret.is_some() {
        return Err("--node-name and --node-secret go with --redis".into());
    }
    config.validate().map_err(|e| format!("config: {e}"))?;
    Ok(config)
}

/// The data directory when neither `--data-dir` nor the config names one:
/// `$XDG_STATE_HOME/c2c-sandbox/<port>` (the XDG base directory for state),
/// else `$HOME/.local/state/c2c-sandbox/<port>`, else
/// `<temp dir>/c2c-sandbox/<port>`. Relative values are ignored, as the XDG
/// spec says.
fn default_data_dir(
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
    port: u16,
) -> PathBuf {
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(xdg_state_home)
        .or_else(|| absolute(home).map(|h| h.join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("c2c-sandbox")
        .join(port.to_string())
}

/// Prints every event as the webhook body it becomes.
struct PrintEvents;

impl EventSink for PrintEvents {
    fn emit(&self, event: &CallEvent) {
        println!("event {}", event.envelope());
    }
}

fn run() -> Result<(), String> {
    let args = parse_args(std::env::args().skip(1))?;
    if args.help {
        print!("{HELP}");
        return Ok(());
    }
    let config = build_config(&args)?;
    let data_dir = config.webhooks.spool_dir.clone();
    let config_tls = config.http.tls_cert.is_some();
    let mut options = SimOptions::demo();
    if let Some(ms) = args.agent_answer_ms {
        options.agent_answer_after = Duration::from_millis(ms);
    }
    if let Some(ms) = args.customer_answer_ms {
        options.customer_ring_for = Duration::from_millis(ms);
    }
    if let Some(ms) = args.talk_ms {
        options.talk_time = Duration::from_millis(ms);
    }
    let token = config
        .tokens
        .first()
        .map(|t| t.secret.clone())
        .unwrap_or_else(|| "<no token configured>".into());
    let (tx, rx) = leg_channel();
    let switch = SimSwitch::new(options, tx);
    let sinks: Vec<Arc<dyn EventSink>> = if args.quiet {
        Vec::new()
    } else {
        vec![Arc::new(PrintEvents)]
    };
    let app = App::start(config, switch, rx, sinks)?;
    let addr = app.http_addr().ok_or("the HTTP listener did not start")?;
    let scheme = if config_tls { "https" } else { "http" };
    println!("c2c-sandbox listening on {scheme}://{addr}  (Ctrl-C to stop)");
    println!("token: {token}");
    println!("data dir: {}", data_dir.display());
    if let Some(c) = &app.cluster {
        let redis = if c.redis_up() { "up" } else { "DOWN" };
        println!("cluster node {} (Redis {redis})", c.node_name());
    }
    println!(
        "extensions 1001, 1002 answer; 1003 inactive; 1004 never answers. Busy: {}, \
         no answer: {}, failover: {}",
        sim::NUMBER_BUSY,
        sim::NUMBER_NO_ANSWER,
        sim::NUMBER_FIRST_TRUNK_FAILS
    );
    println!("place a call:");
    println!(
        "curl -sS -X POST {scheme}://{addr}/api/pbx/calls/click-to-call \
         -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \
         -d '{{\"from_extension\":\"1001\",\"to_phone\":\"0987654321\"}}'"
    );
    // The process ends on Ctrl-C / SIGTERM; the simulated calls end with it.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("c2c-sandbox: {e}");
            ExitCode::from(2)
        }
    }
}
