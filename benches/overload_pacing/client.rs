//! Our side's HTTP client: a pool of keep-alive connections, as a CRM's
//! HTTP client keeps (native's requests share one ESL connection). A thread
//! and a TCP connection per request cost the bench's process about 1.9 % of
//! the two cores in a phase at 90/s, against 0.2 % for native's `bgapi`:
//! CPU the switch under test did not get.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to do with an answer: given the status line and body, and the ms
/// from the request being due to its answer.
pub type OnAnswer = Box<dyn FnOnce(&str, f64) + Send>;

/// A request to send: its body, when it was due, and what to do with the
/// answer.
pub struct Job {
    pub body: String,
    pub due: Instant,
    pub done: OnAnswer,
}

/// `size` threads, each with its own keep-alive connection, opened before
/// the first request.
pub struct Pool {
    tx: Option<crossbeam_channel::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn new(port: u16, auth: &str, size: usize) -> Pool {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        // Every connection open before the first request.
        let ready = Arc::new(Barrier::new(size + 1));
        let workers = (0..size)
            .map(|_| {
                let (rx, auth, ready) = (rx.clone(), auth.to_string(), Arc::clone(&ready));
                std::thread::spawn(move || {
                    let mut conn = Conn::open(port);
                    ready.wait();
                    for job in rx {
                        let answer = conn.post(port, &auth, &job.body);
                        (job.done)(&answer, job.due.elapsed().as_secs_f64() * 1000.0);
                    }
                })
            })
            .collect();
        ready.wait();
        Pool {
            tx: Some(tx),
            workers,
        }
    }

    pub fn send(&self, job: Job) {
        self.tx.as_ref().unwrap().send(job).unwrap();
    }

    /// Waits for every request sent to be answered.
    pub fn finish(mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

struct Conn(Option<BufReader<TcpStream>>);

impl Conn {
    fn open(port: u16) -> Conn {
        Conn(TcpStream::connect(("127.0.0.1", port)).ok().map(|s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.set_nodelay(true);
            BufReader::new(s)
        }))
    }

    /// `POST /api/pbx/calls/click-to-call`; the status line and body, or
    /// `none` when no answer came. A kept connection the server closed
    /// before answering anything (its idle deadline) is opened again and
    /// the request sent once more: it never reached the server.
    fn post(&mut self, port: u16, auth: &str, body: &str) -> String {
        for _ in 0..2 {
            if self.0.is_none() {
                *self = Conn::open(port);
            }
            let Some(r) = self.0.as_mut() else {
                return "none".into();
            };
            let req = format!(
                "POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if r.get_mut().write_all(req.as_bytes()).is_err() {
                self.0 = None;
                continue;
            }
            match read_answer(r) {
                Answer::Whole(text, keep) => {
                    if !keep {
                        self.0 = None;
                    }
                    return text;
                }
                Answer::Closed => self.0 = None,
                Answer::Broken => {
                    self.0 = None;
                    return "none".into();
                }
            }
        }
        "none".into()
    }
}

enum Answer {
    /// The answer and whether the connection stays open.
    Whole(String, bool),
    /// Closed before a byte of answer.
    Closed,
    /// Cut or timed out mid-answer.
    Broken,
}

fn read_answer(r: &mut BufReader<TcpStream>) -> Answer {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) if head.is_empty() => return Answer::Closed,
            Ok(0) | Err(_) => return Answer::Broken,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let keep = !header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return Answer::Broken;
    }
    Answer::Whole(
        format!("{head}\r\n{}", String::from_utf8_lossy(&body)),
        keep,
    )
}
