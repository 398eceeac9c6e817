//! Alone in its binary, so no other server's threads are around: after
//! `stop`, not one thread of the HTTP runtime is left (the owner thread and
//! every tokio worker and blocking thread are joined), and again after a
//! second start and stop on the same port.

mod common;
mod scratch;

use std::time::Duration;

use common::*;

fn http_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .filter(|n| n.starts_with("c2c-http"))
        .collect()
}

#[test]
fn stop_leaves_no_thread_of_the_http_runtime() {
    let mut addr = None;
    for _ in 0..2 {
        let mut c = config();
        if let Some(a) = addr {
            c.http.listen = a;
        }
        let t = start_with(c, sim_options());
        addr = Some(t.addr);
        // A 202 (a blocking thread), a GET (a worker), an idle keep-alive.
        assert_eq!(
            post_call(
                t.addr,
                r#"{"from_extension":"1001","to_phone":"0987654321"}"#,
                &[]
            )
            .status,
            202
        );
        let mut idle = Conn::open(t.addr);
        idle.send("GET", "/health", &[], b"");
        assert_eq!(idle.read().status, 200);
        let running = http_threads();
        assert!(running.len() >= 3, "{running:?}");
        assert!(running.len() <= 1 + 2 + 16, "{running:?}");
        assert!(t.app.stop(Duration::from_secs(5)).is_empty());
        assert_eq!(http_threads(), Vec::<String>::new());
        drop(t);
    }
}
