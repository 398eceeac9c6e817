//! The delivery loop. One dispatcher thread owns a queue per call and hands
//! the head of each ready call to a delivery thread, started on demand and
//! ended when idle ([`Pool`]); a call's next
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

/// What a sender thread is handed.
pub(crate) enum Work {
    /// Attempt this job and report what became of it.
    Job(Job),
    /// End: the pool has had a thread too many for a while.
    Exit,
}

/// The delivery threads, started on demand. A thread is started when a job
/// is due and none is free (up to `max`); one left without work for `idle`
/// is told to end. So an idle service runs none, and a busy one as many as
/// its work keeps busy. Handles live in [`Shared::senders`], for
/// [`super::WebhookService::stop`] to join.
struct Pool {
    max: usize,
    idle: Duration,
    /// Threads started and not told to end.
    alive: usize,
    /// When each free thread became free, oldest first (its length is the
    /// number of free threads).
    free_since: VecDeque<Instant>,
    jobs: ChanSender<Work>,
    jobs_rx: Receiver<Work>,
    results: ChanSender<Done>,
    next_name: usize,
    /// Whether the last start failed (logged once until one succeeds).
    start_failed: bool,
}

impl Pool {
    fn busy(&self) -> usize {
        self.alive - self.free_since.len()
    }

    /// Whether a job handed now would find a thread (a free one, or one
    /// that may be started).
    fn has_room(&self) -> bool {
        !self.free_since.is_empty() || self.alive < self.max
    }

    /// Hands `job` to a free thread, else to a new one. Gives the job back
    /// when no thread could take it (the start failed).
    fn hand(&mut self, shared: &Arc<Shared>, job: Job) -> Option<Job> {
        // Keep the newest free threads busy: the oldest age out.
        if self.free_since.pop_back().is_none() && !self.start(shared) {
            return Some(job);
        }
        match self.jobs.send(Work::Job(job)) {
            Ok(()) => None,
            // We hold a receiver: the channel cannot be closed.
            Err(e) => match e.into_inner() {
                Work::Job(job) => Some(job),
                Work::Exit => None,
            },
        }
    }

    fn start(&mut self, shared: &Arc<Shared>) -> bool {
        if self.alive >= self.max {
            return false;
        }
        let name = format!("c2c-webhook-{}", self.next_name);
        let (sh, jobs, done) = (
            Arc::clone(shared),
            self.jobs_rx.clone(),
            self.results.clone(),
        );
        match std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || sender(sh, jobs, done))
        {
            Ok(h) => {
                self.next_name += 1;
                self.alive += 1;
                self.start_failed = false;
                lock(&shared.senders).push((name, h));
                true
            }
            Err(e) => {
                if !self.start_failed {
                    shared.log(
                        LogLevel::Error,
                        &format!(
                            "webhooks: cannot start a delivery thread ({e}); {} running, \
                             trying again",
                            self.alive
                        ),
                    );
                }
                self.start_failed = true;
                false
            }
        }
    }

    /// A thread finished its job and is free.
    fn freed(&mut self, now: Instant) {
        self.free_since.push_back(now);
    }

    /// Tells threads free for `idle` to end, and joins those that have.
    fn retire(&mut self, shared: &Shared, now: Instant) {
        while let Some(since) = self.free_since.front().copied() {
            if now.saturating_duration_since(since) < self.idle {
                break;
            }
            self.free_since.pop_front();
            self.alive -= 1;
            // Taken by one of the free threads, all waiting on the channel.
            let _ = self.jobs.send(Work::Exit);
        }
        let mut senders = lock(&shared.senders);
        let mut i = 0;
        while i < senders.len() {
            if senders[i].1.is_finished() {
                let (name, h) = senders.swap_remove(i);
                if h.join().is_err() {
                    shared.log(
                        LogLevel::Error,
                        &format!("webhooks: thread {name} panicked"),
                    );
                }
            } else {
                i += 1;
            }
        }
    }

    /// When the oldest free thread is due to end.
    fn next_retirement(&self) -> Option<Instant> {
        self.free_since.front().map(|since| *since + self.idle)
    }
}

/// Runs the dispatcher until stopped; dropping the job channel on return
/// ends the delivery threads.
pub(crate) fn dispatcher(
    shared: Arc<Shared>,
    mut intake: Receiver<Intake>,
    mut results: Receiver<Done>,
    results_tx: ChanSender<Done>,
    workers: usize,
    idle: Duration,
) {
    let mut q = Queues {
        calls: HashMap::new(),
        due: BinaryHeap::new(),
        tick: 0,
        queued: 0,
    };
    // A job (or an Exit) is only sent for a thread counted free or just
    // started, so whatever the channel holds has a thread to take it; it is
    // unbounded so that the dispatcher never waits (an Exit and a job for
    // a thread just started may both wait there for a moment).
    let (jobs, jobs_rx) = crossbeam_channel::unbounded();
    let mut pool = Pool {
        max: workers,
        idle,
        alive: 0,
        free_since: VecDeque::new(),
        jobs,
        jobs_rx,
        results: results_tx,
        next_name: 0,
        start_failed: false,
    };
    let mut stop: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let draining = stop.is_some_and(|until| now < until);
        if stop.is_none() || draining {
            while pool.has_room() {
                let Some(job) = q.take_due(now) else { break };
                if let Some(job) = pool.hand(&shared, job) {
                    // No thread could be started: the job waits its turn again.
                    let call = job.record.call_uuid;
                    q.done(Done::Retry(call, now + Duration::from_secs(1), job.failed));
                    break;
                }
            }
        }
        pool.retire(&shared, now);
        shared.stats.queued.store(q.queued, Ordering::Relaxed);
        shared.stats.in_flight.store(pool.busy(), Ordering::Relaxed);
        shared.stats.threads.store(pool.alive, Ordering::Relaxed);
        if let Some(until) = stop {
            let ready_now = q.next_due().is_some_and(|at| at <= now) && now < until;
            if pool.busy() == 0 && !ready_now {
                return;
            }
        }
        // With every sender busy, only a result (or new intake) can change anything.
        let idle_wake = now + Duration::from_secs(1);
        let mut wake = if pool.has_room() {
            q.next_due().unwrap_or(idle_wake)
        } else {
            idle_wake
        };
        if let Some(at) = pool.next_retirement() {
            wake = wake.min(at);
        }
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
                    let now = Instant::now();
                    pool.freed(now);
                    q.done(done);
                    // Take every other result at hand before handing out
                    // jobs: one pass of bookkeeping for all of them.
                    while let Ok(done) = results.try_recv() {
                        pool.freed(now);
                        q.done(done);
                    }
                }
                Err(_) => {
                    // Cannot happen (the pool holds a sender): stop listening.
                    results = crossbeam_channel::never();
                }
            },
            default(timeout) => {}
        }
    }
}

/// A delivery thread: attempts each job and reports what became of it,
/// until told to end or the dispatcher is gone. A panic in an attempt is
/// reported as a failed attempt (the event is tried again later), so the
/// call's later events are not held up forever.
pub(crate) fn sender(shared: Arc<Shared>, jobs: Receiver<Work>, results: ChanSender<Done>) {
    while let Ok(Work::Job(job)) = jobs.recv() {
        let (call, failed) = (job.record.call_uuid, job.failed);
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attempt(&shared, job)))
            .unwrap_or_else(|_| {
                shared.log(
                    LogLevel::Error,
                    &format!(
                        "webhooks: a delivery attempt for call {call} panicked; trying again later"
                    ),
                );
                let later = shared.schedule.base_delay(failed.max(1));
                Done::Retry(call, Instant::now() + later, failed)
            });
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

/// The senders' list, whoever panicked holding it.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
