//! Asking another node: over the owner's own HTTP API, with the
//! node-to-node credential and the token the request was made with; the
//! owner answers from its engine and journal, as always.
//!
//! Why forward rather than mirror each call's state into Redis: the owner
//! alone can hang its call up (its channels), so `DELETE` must reach it
//! anyway; forwarding keeps one source of truth (the owner's engine and
//! journal), adds no Redis write per call event, and `GET` answers the very
//! JSON the owner would.

use std::time::Duration;

use ureq::Agent;

use crate::core::admission::Answer;

/// Header carrying the node-to-node credential.
pub const NODE_SECRET_HEADER: &str = "x-c2c-node-secret";
/// Header naming the API token the forwarded request was made with.
pub const NODE_TOKEN_HEADER: &str = "x-c2c-on-behalf-of";
/// Header naming the node that forwarded a request.
pub const FORWARDED_BY_HEADER: &str = "x-c2c-forwarded-by";
/// Header naming the node that answered (set on forwarded answers).
pub const ANSWERED_BY_HEADER: &str = "x-c2c-node";

/// Sends requests to other nodes.
pub struct Forwarder {
    agent: Agent,
}

/// How much of an owner's answer is read.
const MAX_ANSWER: u64 = 256 * 1024;

impl Forwarder {
    /// An agent with `timeout` for the whole exchange.
    pub fn new(timeout: Duration) -> Forwarder {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .max_idle_connections_per_host(2)
            .max_idle_connections(16)
            .user_agent(concat!(
                "mod_zorio_c2c/",
                env!("CARGO_PKG_VERSION"),
                " (node)"
            ))
            .build();
        Forwarder {
            agent: Agent::new_with_config(config),
        }
    }

    /// `method base_url+path` on the owner, on behalf of `token`.
    pub fn forward(
        &self,
        method: &str,
        base_url: &str,
        path: &str,
        token: &str,
        secret: &str,
        from_node: &str,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", base_url.trim_end_matches('/'));
        let with = |r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
            r.header(NODE_SECRET_HEADER, secret)
                .header(NODE_TOKEN_HEADER, token)
                .header(FORWARDED_BY_HEADER, from_node)
                .call()
        };
        let answer = match method {
            "DELETE" => with(self.agent.delete(&url)),
            _ => with(self.agent.get(&url)),
        };
        let mut resp = answer.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(Answer {
            status,
            headers: vec![("Content-Type".to_string(), content_type)],
            body,
        })
    }
}
