//! The delivery loop. One dispatcher thread owns a queue per call and hands
//! the head of each ready call to a pool of sender threads; a call's next
//! event is handed out only once its previous one is delivered or given up,
//! so each call is delivered in seq order while other calls go on.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{select, Receiver, Sender as ChanSender};
use uuid::Uuid;

use super::schedule::Next;
use super::sender::Attempt;
use super::shared::Shared;
use crate::core::log::LogLevel;
use crate::core::store::DeadLetter;
use crate::core::store::SpoolRecord;
use crate::core::store::{Write, COMMIT_TIMEOUT};

/// What the dispatcher is told.
pub(crate) enum Intake {
    /// An event now on disk, to deliver.
    Event(SpoolRecord),
    /// Stop: keep delivering what is ready until `drain_until`, then exit.
    Stop { drain_until: Instant },
}

/// The head event of one call, handed to a sender thread.
pub(crate) struct Job {
    record: SpoolRecord,
    failed: u32,
}

/// What became of a job.
pub(crate) enum Done {
    /// Delivered or dead-lettered: the call's next event may go.
    Finished(Uuid),
    /// Failed; try again at this instant.
    Retry(Uuid, Instant, u32),
    /// Cut short by the stop: stays in the spool for the next start.
    Interrupted(Uuid),
}

struct Pending {
    record: SpoolRecord,
    failed: u32,
}

struct CallQueue {
    events: VecDeque<Pending>,
    in_flight: bool,
    due: Instant,
}

/// The dispatcher's state: per-call queues and a heap of when each idle call is due.
struct Queues {
    calls: HashMap<Uuid, CallQueue>,
    due: BinaryHeap<Reverse<(Instant, u64, Uuid)>>,
    tick: u64,
    queued: usize,
}

impl Queues {
    fn schedule(&mut self, call: Uuid, at: Instant) {
        if let Some(q) = self.calls.get_mut(&call) {
            q.due = at;
            self.tick += 1;
            self.due.push(Reverse((at, self.tick, call)));
        }
    }

    fn add(&mut self, record: SpoolRecord) {
        let call = record.call_uuid;
        let now = Instant::now();
        let q = self.calls.entry(call).or_insert_with(|| CallQueue {
            events: VecDeque::new(),
            in_flight: false,
            due: now,
        });
        if q.events.iter().any(|p| p.record.id == record.id) {
            return;
        }
        let fresh = q.events.is_empty() && !q.in_flight;
        // Keep seq order behind the head (the head may be in flight or waiting).
        let pos = q
            .events
            .iter()
            .skip(1)
            .position(|p| p.record.seq > record.seq)
            .map(|i| i + 1)
            .unwrap_or(q.events.len());
        q.events.insert(pos, Pending { record, failed: 0 });
        self.queued += 1;
        if fresh {
            self.schedule(call, now);
        }
    }

    /// Drops heap entries that no longer describe an idle call's due time.
    fn purge_stale(&mut self) {
        while let Some(Reverse((at, _, call))) = self.due.peek().copied() {
            let valid = self
                .calls
                .get(&call)
                .is_some_and(|q| !q.in_flight && q.due == at && !q.events.is_empty());
            if valid {
                return;
            }
            self.due.pop();
        }
    }

    /// The next call whose head is due by `now`, marked in flight.
    fn take_due(&mut self, now: Instant) -> Option<Job> {
        self.purge_stale();
        let Reverse((at, _, call)) = *self.due.peek()?;
        if at > now {
            return None;
        }
        self.due.pop();
        let q = self.calls.get_mut(&call)?;
        q.in_flight = true;
        let head = q.events.front()?;
        Some(Job {
            record: head.record.clone(),
            failed: head.failed,
        })
    }

    /// When the earliest idle call is due.
    fn next_due(&mut self) -> Option<Instant> {
        self.purge_stale();
        self.due.peek().map(|Reverse((at, _, _))| *at)
    }

    fn done(&mut self, done: Done) {
        match done {
            Done::Finished(call) => {
                let Some(q) = self.calls.get_mut(&call) else {
                    return;
                };
                q.in_flight = false;
                if q.events.pop_front().is_some() {
                    self.queued -= 1;
                }
                if q.events.is_empty() {
                    self.calls.remove(&call);
                } else {
                    self.schedule(call, Instant::now());
                }
            }
            Done::Retry(call, at, failed) => {
                if let Some(q) = self.calls.get_mut(&call) {
                    q.in_flight = false;
                    if let Some(head) = q.events.front_mut() {
                        head.failed = failed;
                    }
                    self.schedule(call, at);
                }
            }
            Done::Interrupted(call) => {
                if let Some(q) = self.calls.get_mut(&call) {
                    q.in_flight = false;
                }
            }
        }
    }
}

/// Runs the dispatcher until stopped; closing `jobs` on return ends the senders.
pub(crate) fn dispatcher(
    shared: Arc<Shared>,
    mut intake: Receiver<Intake>,
    jobs: ChanSender<Job>,
    mut results: Receiver<Done>,
    workers: usize,
) {
    let mut q = Queues {
        calls: HashMap::new(),
        due: BinaryHeap::new(),
        tick: 0,
        queued: 0,
    };
    let mut free = workers;
    let mut stop: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let draining = stop.is_some_and(|until| now < until);
        if stop.is_none() || draining {
            while free > 0 {
                let Some(job) = q.take_due(now) else { break };
                if jobs.send(job).is_err() {
                    return;
                }
                free -= 1;
            }
        }
        shared.stats.queued.store(q.queued, Ordering::Relaxed);
        shared
            .stats
            .in_flight
            .store(workers - free, Ordering::Relaxed);
        if let Some(until) = stop {
            let ready_now = q.next_due().is_some_and(|at| at <= now) && now < until;
            if free == workers && !ready_now {
                return;
            }
        }
        // With every sender busy, only a result (or new intake) can change anything.
        let idle_wake = now + Duration::from_secs(1);
        let mut wake = if free > 0 {
            q.next_due().unwrap_or(idle_wake)
        } else {
            idle_wake
        };
        if let Some(until) = stop {
            wake = wake.min(until.max(now + Duration::from_millis(5)));
        }
        let timeout = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        select! {
            recv(intake) -> msg => match msg {
                Ok(Intake::Event(record)) => {
                    q.add(record);
                    // New events come in bursts (a commit of many at once).
                    loop {
                        match intake.try_recv() {
                            Ok(Intake::Event(record)) => q.add(record),
                            Ok(Intake::Stop { drain_until }) => {
                                stop = Some(drain_until);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Ok(Intake::Stop { drain_until }) => stop = Some(drain_until),
                Err(_) => {
                    // The service is gone: stop now, and stop listening.
                    stop = Some(now);
                    intake = crossbeam_channel::never();
                }
            },
            recv(results) -> msg => match msg {
                Ok(done) => {
                    free += 1;
                    q.done(done);
                    // Take every other result at hand before handing out
                    // jobs: one pass of bookkeeping for all of them.
                    while let Ok(done) = results.try_recv() {
                        free += 1;
                        q.done(done);
                    }
                }
                Err(_) => {
                    // Every sender thread is gone (they only end on a panic).
                    results = crossbeam_channel::never();
                    free = workers;
                    stop = Some(now);
                }
            },
            default(timeout) => {}
        }
    }
}

/// A sender thread: attempts each job and reports what became of it.
pub(crate) fn sender(shared: Arc<Shared>, jobs: Receiver<Job>, results: ChanSender<Done>) {
    for job in jobs.iter() {
        let done = attempt(&shared, job);
        if results.send(done).is_err() {
            return;
        }
    }
}

fn attempt(shared: &Shared, job: Job) -> Done {
    let r = &job.record;
    let call = r.call_uuid;
    let result = match shared.destinations().for_token(r.token.as_deref()) {
        Some(dest) => shared.sender.send(&dest.url, &dest.secrets, &r.id, &r.body),
        None => {
            // The config changed since the event was spooled: nowhere to send it.
            shared.stats.no_destination.fetch_add(1, Ordering::Relaxed);
            return dead_letter(shared, &job, job.failed, "no destination configured");
        }
    };
    match result {
        Attempt::Delivered(_) => {
            shared.stats.delivered.fetch_add(1, Ordering::Relaxed);
            let d = &shared.stats.delivery;
            let lag = SystemTime::now().duration_since(r.created_at);
            d.lag.observe(lag.map_or(0.0, |l| l.as_secs_f64()));
            d.attempts.observe(f64::from(job.failed + 1));
            // Not waited for: the removal goes out with the next commit. If
            // it is lost in a crash, the event is delivered again (same id).
            if let Err(e) = shared.store.forget(vec![Write::SpoolRemove(r.id.clone())]) {
                shared.log_record(
                    LogLevel::Error,
                    r,
                    &format!("webhooks: delivered {} but could not unspool it: {e}", r.id),
                );
            }
            shared.unspooled(r);
            Done::Finished(call)
        }
        Attempt::Failed { .. } if shared.interrupted.load(Ordering::SeqCst) => {
            Done::Interrupted(call)
        }
        Attempt::Failed { error, retry_after } => {
            shared.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
            let failed = job.failed + 1;
            match shared
                .schedule
                .next(failed, retry_after, r.since, SystemTime::now())
            {
                Next::RetryIn(delay) => {
                    *shared
                        .stats
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(error);
                    Done::Retry(call, Instant::now() + delay, failed)
                }
                Next::GiveUp => dead_letter(shared, &job, failed, &error),
            }
        }
    }
}

fn dead_letter(shared: &Shared, job: &Job, attempts: u32, error: &str) -> Done {
    let r = &job.record;
    let dead = DeadLetter {
        record: r.clone(),
        attempts,
        last_error: error.to_string(),
        dead_at: SystemTime::now(),
    };
    make_room(shared);
    // One commit: into the dead letters, out of the spool.
    if let Err(e) = shared
        .store
        .write(vec![Write::DeadPut(dead)], COMMIT_TIMEOUT)
    {
        // Never drop: keep it in the spool and try again later.
        shared.log_record(
            LogLevel::Error,
            r,
            &format!(
                "webhooks: cannot dead-letter {}: {e}; keeping it spooled",
                r.id
            ),
        );
        let later = shared.schedule.base_delay(attempts.max(1));
        return Done::Retry(r.call_uuid, Instant::now() + later, attempts);
    }
    shared.unspooled(r);
    shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
    shared.log_record(
        LogLevel::Warning,
        r,
        &format!(
            "webhooks: gave up on {} ({} of call {}, seq {}) after {attempts} attempts: {error}",
            r.id, r.event_type, r.call_uuid, r.seq
        ),
    );
    Done::Finished(r.call_uuid)
}

/// When the dead letters are at their bound, forgets the oldest until one
/// more fits, each reported loudly.
fn make_room(shared: &Shared) {
    let len = shared.store.dead_len().unwrap_or(0) as usize;
    if len < shared.max_dead_letters {
        return;
    }
    let oldest: Vec<DeadLetter> = shared
        .store
        .dead_list()
        .unwrap_or_default()
        .into_iter()
        .take(len + 1 - shared.max_dead_letters)
        .collect();
    for old in oldest {
        let _ = shared
            .store
            .forget(vec![Write::DeadRemove(old.record.id.clone())]);
        shared.log_record(
            LogLevel::Error,
            &old.record,
            &format!(
                "webhooks: dead letters full: discarded the oldest, {} ({} of call {}, seq {})",
                old.record.id, old.record.event_type, old.record.call_uuid, old.record.seq
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::{self, CallEvent};
    use serde_json::json;

    fn rec(call: Uuid, seq: u32) -> SpoolRecord {
        SpoolRecord::from_event(&CallEvent::new(events::RINGING, call, seq, None, json!({})))
    }

    fn queues() -> Queues {
        Queues {
            calls: HashMap::new(),
            due: BinaryHeap::new(),
            tick: 0,
            queued: 0,
        }
    }

    #[test]
    fn one_event_per_call_in_flight_in_seq_order_and_retries_wait_apart() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut q = queues();
        q.add(rec(a, 1));
        q.add(rec(a, 3));
        q.add(rec(a, 2)); // arrives late: still goes before 3
        q.add(rec(b, 1));
        let now = Instant::now();
        let j1 = q.take_due(now).unwrap();
        assert_eq!((j1.record.call_uuid, j1.record.seq), (a, 1));
        let j2 = q.take_due(now).unwrap();
        assert_eq!((j2.record.call_uuid, j2.record.seq), (b, 1));
        assert!(q.take_due(now).is_none(), "a's next waits for its head");
        let later = now + Duration::from_millis(50);
        q.done(Done::Retry(a, later, 1));
        q.done(Done::Finished(b));
        assert!(!q.calls.contains_key(&b));
        assert!(q.take_due(now).is_none(), "a's retry is not due yet");
        assert_eq!(q.next_due(), Some(later));
        let again = q.take_due(later).unwrap();
        assert_eq!((again.record.seq, again.failed), (1, 1));
        q.done(Done::Finished(a));
        let seqs: Vec<u32> = (0..2)
            .map(|_| {
                let j = q.take_due(Instant::now()).unwrap();
                q.done(Done::Finished(a));
                j.record.seq
            })
            .collect();
        assert_eq!(seqs, [2, 3]);
        assert_eq!(q.queued, 0);
        assert!(q.calls.is_empty());
    }
}
