//! What hyper does not do for us, done at the connection's byte stream:
//!
//! - **Deadlines.** A keep-alive connection with no request in it is closed
//!   after `idle-timeout`; a request head must arrive within
//!   `header-read-timeout` of its first byte, or the client gets our 408 and
//!   the connection closes (slowloris); a response the client does not take
//!   within `read-timeout` ends the connection. (The body's deadline is kept
//!   by the service, which knows where a body ends.) While the server
//!   stops, a connection with no request being handled ends at once.
//! - **One error shape.** hyper answers a request it cannot parse by itself
//!   (400, 414, 431) with an empty body. Those answers are recognised here
//!   (an error status with `Content-Length: 0`, which no answer of the router
//!   has) and replaced by the same status in our JSON error shape.
//!
//! [`Phase`] is what the stream and the service tell each other about where a
//! request stands: the stream sees bytes arrive, the service sees a head
//! parsed and an answer made.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::core::errors::{codes, ApiError};

use super::codes as http_codes;
use super::message::{reason, Response};
use super::state::HttpState;

/// Where the connection's current request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// No request: waiting for one (the idle deadline runs).
    Idle,
    /// Bytes of a request arrived; its head is not complete yet.
    Head,
    /// The service has the request (reading its body, handling it).
    Serving,
    /// The service answered; hyper is writing the answer.
    Answered,
}

/// Shared by the stream and the service of one connection (one task).
pub(crate) struct Phase {
    inner: Mutex<(Stage, Instant)>,
}

impl Phase {
    pub(crate) fn new() -> Arc<Phase> {
        Arc::new(Phase {
            inner: Mutex::new((Stage::Idle, Instant::now())),
        })
    }

    fn get(&self) -> (Stage, Instant) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, stage: Stage, since: Instant) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = (stage, since);
    }

    /// The service took a request; returns when its first byte arrived (now,
    /// for a pipelined request whose bytes came with the one before).
    pub(crate) fn serving(&self) -> Instant {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let started = if g.0 == Stage::Head {
            g.1
        } else {
            Instant::now()
        };
        *g = (Stage::Serving, started);
        started
    }

    /// The service made its answer.
    pub(crate) fn answered(&self) {
        self.set(Stage::Answered, Instant::now());
    }

    /// The answer went out (a flush completed): idle again, the idle time
    /// counted from the answer.
    fn flushed(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == Stage::Answered {
            g.0 = Stage::Idle;
        }
    }
}

/// The limits the stream enforces.
#[derive(Clone, Copy)]
pub(crate) struct Deadlines {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
    pub(crate) write: Duration,
}

/// A connection's byte stream with deadlines and the error shape (see the
/// module doc).
pub(crate) struct GuardedIo<S> {
    inner: S,
    phase: Arc<Phase>,
    limits: Deadlines,
    state: Arc<HttpState>,
    /// The server is stopping: a connection with no request being handled
    /// ends at once.
    draining: Arc<AtomicBool>,
    /// The read-side deadline being waited for, and its timer.
    read_timer: Option<(Instant, Pin<Box<Sleep>>)>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// Bytes of ours still to write before anything else (a rewritten error,
    /// or the 408).
    pending: Vec<u8>,
    pending_at: usize,
    /// A 408 is being written: then the read side ends.
    timing_out: bool,
}

impl<S> GuardedIo<S> {
    pub(crate) fn new(
        inner: S,
        phase: Arc<Phase>,
        limits: Deadlines,
        state: Arc<HttpState>,
        draining: Arc<AtomicBool>,
    ) -> Self {
        GuardedIo {
            inner,
            phase,
            limits,
            state,
            draining,
            read_timer: None,
            write_timer: None,
            pending: Vec::new(),
            pending_at: 0,
            timing_out: false,
        }
    }
}

/// An error answer of ours, ready to write: closes the connection.
pub(crate) fn error_bytes(status: u16, code: &'static str, message: &str) -> Vec<u8> {
    let r = Response::error(&ApiError::new(status, code, message));
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        status,
        reason(status),
        r.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&r.body);
    out
}

/// If `buf` starts with one of hyper's own error answers (an error status,
/// empty body), the status.
fn hyper_error_status(buf: &[u8]) -> Option<u16> {
    // hyper's own answers are a head alone; ours always have a body.
    if buf.len() < 12
        || !buf.ends_with(b"\r\n\r\n")
        || !buf.starts_with(b"HTTP/1.")
        || buf[8] != b' '
    {
        return None;
    }
    let status: u16 = std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()?;
    if status < 400 {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..end + 2];
    let empty = head
        .split(|b| *b == b'\n')
        .any(|line| line.eq_ignore_ascii_case(b"content-length: 0\r"));
    empty.then_some(status)
}

/// Our JSON answer for one of hyper's parse errors.
fn shaped(status: u16) -> Vec<u8> {
    match status {
        431 => error_bytes(
            431,
            http_codes::HEADERS_TOO_LARGE,
            "the request head is too large",
        ),
        414 => error_bytes(
            414,
            http_codes::URI_TOO_LONG,
            "the request target is too long",
        ),
        s => error_bytes(
            s,
            codes::BAD_REQUEST,
            "malformed HTTP request (see RFC 9112)",
        ),
    }
}

impl<S> GuardedIo<S> {
    /// Waits for the read-side deadline of the current stage: Ready(stage)
    /// once it has passed. Called where hyper reads, and also after each
    /// flush: hyper does not read again after an answer until woken, so the
    /// idle deadline must be armed from the write side too.
    fn poll_read_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Stage> {
        let (stage, since) = self.phase.get();
        if self.draining.load(Ordering::SeqCst) && matches!(stage, Stage::Idle | Stage::Head) {
            self.read_timer = None;
            return Poll::Ready(Stage::Idle);
        }
        let deadline = match stage {
            Stage::Idle | Stage::Answered => since + self.limits.idle,
            Stage::Head => since + self.limits.header,
            Stage::Serving => {
                self.read_timer = None;
                return Poll::Pending;
            }
        };
        let sleep = match &mut self.read_timer {
            Some((at, sleep)) => {
                if *at != deadline {
                    sleep.as_mut().reset(deadline);
                    *at = deadline;
                }
                sleep
            }
            None => {
                let (_, sleep) = self
                    .read_timer
                    .insert((deadline, Box::pin(tokio::time::sleep_until(deadline))));
                sleep
            }
        };
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.read_timer = None;
                Poll::Ready(stage)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> GuardedIo<S> {
    /// Writes what is pending; Ready(Ok) once nothing is.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_at < self.pending.len() {
            let n = match Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.pending_at..])
            {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.write_deadline(cx),
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_at += n;
            self.write_timer = None;
        }
        self.pending.clear();
        self.pending_at = 0;
        Poll::Ready(Ok(()))
    }

    /// A write that cannot proceed: Pending until the write deadline, then
    /// an error (a client that does not take its answers).
    fn write_deadline<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let write = self.limits.write;
        let t = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(write)));
        match t.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.timing_out {
            // Our 408 goes out first, then the read side ends.
            return match this.drain(cx) {
                Poll::Pending => Poll::Pending,
                _ => Poll::Ready(Ok(())),
            };
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let (stage, _) = this.phase.get();
                    if matches!(stage, Stage::Idle | Stage::Answered) {
                        this.phase.set(Stage::Head, Instant::now());
                    }
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        // Nothing to read: has the deadline of this stage passed?
        let Poll::Ready(stage) = this.poll_read_deadline(cx) else {
            return Poll::Pending;
        };
        if stage == Stage::Head {
            this.state.metrics.record("server", 408);
            this.pending = error_bytes(
                408,
                http_codes::REQUEST_TIMEOUT,
                "the request did not arrive in time",
            );
            this.pending_at = 0;
            this.timing_out = true;
            return match this.drain(cx) {
                Poll::Pending => Poll::Pending,
                _ => Poll::Ready(Ok(())),
            };
        }
        // Idle past the idle timeout: end of stream, hyper closes.
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        if let Some(status) = hyper_error_status(buf) {
            this.state.metrics.record("server", status);
            this.pending = shaped(status);
            this.pending_at = 0;
            // The answer replaces hyper's; hyper's bytes count as written.
            let _ = this.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.write_deadline(cx),
            ready => {
                this.write_timer = None;
                ready
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.write_deadline(cx),
            Poll::Ready(Ok(())) => {
                this.phase.flushed();
                if this.poll_read_deadline(cx).is_ready() {
                    // Past already: hyper's next read will see it.
                    cx.waker().wake_by_ref();
                }
                Poll::Ready(Ok(()))
            }
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.write_deadline(cx),
            ready => ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_answers_are_recognised_and_ours_are_not() {
        assert_eq!(
            hyper_error_status(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nDate: x\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            hyper_error_status(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n"
            ),
            Some(431)
        );
        assert_eq!(
            hyper_error_status(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 10\r\n\r\n0123456789"),
            None
        );
        assert_eq!(hyper_error_status(b"HTTP/1.1 100 Continue\r\n\r\n"), None);
        assert_eq!(
            hyper_error_status(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        let s = String::from_utf8(shaped(400)).unwrap();
        assert!(s.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{s}");
        assert!(s.contains("\"code\":\"bad_request\""), "{s}");
    }
}
