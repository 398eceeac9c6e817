//! The HTTP API: hyper on a small tokio runtime of ours in front of a pure
//! router.
//!
//! [`router::route`] turns a [`Request`] into a [`Response`] and knows nothing
//! of sockets, so the same handlers can serve another transport (e.g. a
//! FreeSWITCH API command fed by mod_xml_rpc), synchronously and without
//! tokio. [`server::HttpServer`] owns the listener, the runtime and the limits.

pub mod auth;
pub mod counters;
mod file_body;
mod handlers;
mod io;
mod lookup;
pub mod message;
pub mod metrics;
pub mod range;
mod recordings;
pub mod router;
pub mod server;
pub mod state;
pub mod tls;
pub mod xmlrpc;

pub use crate::core::webhooks::admin::WebhookAdmin;
pub use message::{Request, Response};
pub use router::{route, route_as};
pub use server::HttpServer;
pub use state::HttpState;

/// Error codes of the HTTP layer itself (the API's own are in
/// [`crate::core::errors::codes`]).
pub mod codes {
    /// 408: the request did not arrive within its deadline.
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// 431: the request head is larger than `max-header-bytes`.
    pub const HEADERS_TOO_LARGE: &str = "headers_too_large";
    /// 414: the request target is longer than hyper takes (64 KiB).
    pub const URI_TOO_LONG: &str = "uri_too_long";
    /// 503: too many open connections.
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    pub use crate::core::errors::codes::{DEAD_LETTER_NOT_FOUND, WEBHOOKS_UNAVAILABLE};
    /// 503: the call belongs to another node of the cluster, which cannot be asked.
    pub const CALL_OWNER_UNAVAILABLE: &str = "call_owner_unavailable";
}
