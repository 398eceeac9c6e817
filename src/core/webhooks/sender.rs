//! One HTTP attempt: POST the signed body over a keep-alive ureq agent.
//! 2xx means delivered; any other status, a timeout or a network error
//! means try again later.

use std::time::{Duration, SystemTime};

use ureq::Agent;

use super::schedule::parse_retry_after;
use super::signer::{self, Secret};

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// Anything else; `retry_after` when the receiver asked for a delay.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// Sends webhooks; clones share the connection pool.
#[derive(Clone)]
pub struct Sender {
    agent: Agent,
}

/// How much of a response body is read (to keep the connection reusable).
const MAX_RESPONSE_BODY: u64 = 64 * 1024;

impl Sender {
    /// An agent with keep-alive, the given timeouts and no redirects.
    pub fn new(connect_timeout: Duration, response_timeout: Duration, pool: usize) -> Sender {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(connect_timeout))
            .timeout_send_request(Some(response_timeout))
            .timeout_send_body(Some(response_timeout))
            .timeout_recv_response(Some(response_timeout))
            .timeout_recv_body(Some(response_timeout))
            .max_idle_connections_per_host(pool.max(1))
            .max_idle_connections(pool.max(1) * 4)
            .user_agent(concat!("mod_zorio_c2c/", env!("CARGO_PKG_VERSION")))
            .build();
        Sender {
            agent: Agent::new_with_config(config),
        }
    }

    /// POSTs `body` to `url`, signed with `secrets`, as message `msg_id`.
    pub fn send(&self, url: &str, secrets: &[Secret], msg_id: &str, body: &str) -> Attempt {
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut req = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        for (name, value) in signer::headers(secrets, msg_id, ts, body.as_bytes()) {
            req = req.header(name, value);
        }
        match req.send(body.as_bytes()) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                // Read the (small) body so the connection goes back to the pool.
                let _ = resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BODY)
                    .read_to_vec();
                if (200..300).contains(&status) {
                    Attempt::Delivered(status)
                } else {
                    Attempt::Failed {
                        error: format!("HTTP {status}"),
                        retry_after,
                    }
                }
            }
            Err(ureq::Error::Timeout(t)) => Attempt::Failed {
                error: format!("timeout ({t})"),
                retry_after: None,
            },
            Err(e) => Attempt::Failed {
                error: e.to_string(),
                retry_after: None,
            },
        }
    }

    /// Interrupts every request in flight (they fail at once) and closes the pool.
    pub fn shutdown(&self) {
        self.agent.clone().shutdown();
    }
}
