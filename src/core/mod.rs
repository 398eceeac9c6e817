//! The pure-Rust core: everything the contract describes, with no C in sight.
#![forbid(unsafe_code)]

pub mod admission;
pub mod backend;
pub mod call;
pub mod callerid;
pub mod cluster;
pub mod command;
pub mod config;
pub mod config_xml;
pub mod courier;
pub mod directory;
pub mod engine;
pub mod errors;
pub mod event_flow;
pub mod events;
pub mod gcra;
pub mod http;
pub mod journal;
pub mod log;
pub mod metrics;
pub mod notes;
pub mod recording;
pub mod request;
pub mod routing;
pub mod setup_pace;
pub mod snapshot;
pub mod store;
pub mod time;
pub mod trunks;
pub mod turns;
pub mod wav;
pub mod webhooks;
