//! Bucket bounds (seconds, or a count) of each histogram, chosen for what it
//! measures.

/// An HTTP answer (the 202 waits for a durable commit; 5 s is its timeout).
pub static HTTP_SECONDS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// A phone ringing until answered (agent or customer): 1 s to 2 min.
pub static ANSWER_SECONDS: [f64; 12] = [
    1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0,
];
/// Post-dial delay: the customer's INVITE until it rings.
pub static POST_DIAL_SECONDS: [f64; 11] =
    [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0];
/// The 202 until both legs are bridged (the agent's and customer's rings).
pub static BRIDGE_SECONDS: [f64; 12] = [
    1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 180.0,
];
/// Talk time, 5 s to 2 h.
pub static TALK_SECONDS: [f64; 11] = [
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];
/// An event's creation until its 2xx: milliseconds normally, hours in an outage.
pub static WEBHOOK_LAG_SECONDS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
    21600.0,
];
/// Attempts a delivered event took.
pub static WEBHOOK_ATTEMPTS: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 25.0];
/// One group commit of the durable store (fsync included).
pub static STORE_COMMIT_SECONDS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
