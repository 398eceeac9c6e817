//! Where the two cores went during a phase, from Linux's `/proc`: the
//! switch's process (every thread, those that ended included), the module's
//! own long-lived threads inside it (`c2c-*` but the per-call `c2c-call-*`,
//! whose name the switch's session threads started from them inherit;
//! counted thread by thread, so one that ended takes only its own CPU of the
//! phase with it, never what it had used before), the
//! sipp peers, the bench itself, and the machine's idle time. Divided by the
//! calls a phase bridged, it is what a call costs each side: at overload the
//! switch completes calls at the rate its cores allow, so a side whose calls
//! cost more finishes its backlog later.

use std::path::Path;

/// CPU seconds used so far by each party, and the machine's idle seconds.
#[derive(Clone, Default, Debug)]
pub struct Cpu {
    /// The switch's process, the module's threads included.
    pub switch: f64,
    /// The module's own long-lived threads.
    pub module: f64,
    /// The sipp peers.
    pub peers: f64,
    /// This bench.
    pub bench: f64,
    /// The machine's idle time, all cores.
    pub idle: f64,
    /// Wall-clock seconds (since the epoch when read; elapsed after `since`).
    pub wall: f64,
    /// The module's threads when read: (thread id, CPU seconds so far).
    threads: Vec<(u32, f64)>,
}

/// The processes to account for.
pub struct Pids {
    pub switch: u32,
    pub peers: Vec<u32>,
}

/// Clock ticks a second (`sysconf(_SC_CLK_TCK)`: 100 on Linux).
const TICK: f64 = 100.0;

impl Cpu {
    /// Reads every party's CPU time now (`None` without Linux's `/proc`).
    pub fn now(pids: &Pids) -> Option<Cpu> {
        let threads: Vec<(u32, f64)> = std::fs::read_dir(format!("/proc/{}/task", pids.switch))
            .ok()?
            .flatten()
            .filter_map(|t| {
                let tid = t.file_name().to_str()?.parse().ok()?;
                let (name, secs) = stat(&t.path())?;
                (name.starts_with("c2c-") && !name.starts_with("c2c-call")).then_some((tid, secs))
            })
            .collect();
        let module = threads.iter().map(|t| t.1).sum();
        let proc = |pid: u32| stat(Path::new(&format!("/proc/{pid}"))).map_or(0.0, |s| s.1);
        Some(Cpu {
            switch: proc(pids.switch),
            module,
            peers: pids.peers.iter().map(|p| proc(*p)).sum(),
            bench: stat(Path::new("/proc/self")).map_or(0.0, |s| s.1),
            idle: idle()?,
            wall: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs_f64(),
            threads,
        })
    }

    /// What was used between `before` and `self`. The module's threads one
    /// by one: a thread gone since `before` (the CUSTOM events' courier
    /// leaves when idle) takes its ticks out of the sum, which a difference
    /// of the two sums would have counted against the phase (it printed
    /// -0.1 ms a call for native's phase after ours).
    pub fn since(&self, before: &Cpu) -> Cpu {
        let module = self
            .threads
            .iter()
            .map(|&(tid, secs)| {
                let was = before
                    .threads
                    .iter()
                    .find(|t| t.0 == tid)
                    .map_or(0.0, |t| t.1);
                // A thread id used again by a newer thread: all of it is new.
                if secs >= was {
                    secs - was
                } else {
                    secs
                }
            })
            .sum();
        Cpu {
            switch: self.switch - before.switch,
            module,
            peers: self.peers - before.peers,
            bench: self.bench - before.bench,
            idle: self.idle - before.idle,
            wall: self.wall - before.wall,
            threads: Vec::new(),
        }
    }

    /// Itemwise sum (to pool a side's phases).
    pub fn add(&self, other: &Cpu) -> Cpu {
        Cpu {
            switch: self.switch + other.switch,
            module: self.module + other.module,
            peers: self.peers + other.peers,
            bench: self.bench + other.bench,
            idle: self.idle + other.idle,
            wall: self.wall + other.wall,
            threads: Vec::new(),
        }
    }
}

/// Prints a table row: CPU ms per bridged call of each party, and the
/// share of the cores that stayed idle: over the whole phase, and while its
/// calls were connecting; how long a customer's leg was up on average; and
/// the SIP messages the peers resent; the lines the switch logged a call.
pub fn print(label: &str, row: &crate::Row) {
    let (c, bridged) = (&row.cpu, row.bridged);
    let per = |s: f64| s * 1000.0 / bridged.max(1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "{label:<10} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7.1} {:>7.1} {:>8.2} {:>7} {:>8}",
        per(c.switch + c.peers + c.bench),
        per(c.switch),
        per(c.module),
        per(c.peers),
        per(c.bench),
        100.0 * c.idle / (c.wall * cores).max(f64::EPSILON),
        100.0 * row.busy_idle,
        row.leg_seconds / bridged.max(1) as f64,
        row.retransmissions,
        row.log_lines.map_or("?".to_string(), |n| {
            format!("{:.1}", n as f64 / bridged.max(1) as f64)
        })
    );
}

/// The header of [`print`]'s table.
pub fn header() {
    println!("CPU ms per bridged call, from a phase's start until the switch had drained:");
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8}",
        "phase",
        "all",
        "switch",
        "module",
        "peers",
        "bench",
        "idle %",
        "busy %",
        "B-leg s",
        "resent",
        "log/call"
    );
    println!(
        "(busy %: the cores' idle share until the phase's last call connected; \
         B-leg s: how long a customer's leg was up, on average; resent: SIP messages \
         the sipp peers sent again, no answer in time; log/call: lines the switch \
         logged, at the bench's log level)"
    );
}

/// A process's or thread's name and CPU seconds (user + system), from the
/// `stat` file under `dir`.
fn stat(dir: &Path) -> Option<(String, f64)> {
    let s = std::fs::read_to_string(dir.join("stat")).ok()?;
    // `pid (name) state …`: the name may hold spaces and parentheses.
    let (head, rest) = s.rsplit_once(") ")?;
    let name = head.split_once(" (")?.1.to_string();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 0, utime 11, stime 12.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((name, ticks as f64 / TICK))
}

/// The machine's idle seconds, all cores summed (`idle` + `iowait` of `/proc/stat`).
pub fn idle() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    Some((f.get(3)? + f.get(4)?) as f64 / TICK)
}
