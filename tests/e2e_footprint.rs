//! What the module costs the switch it lives in, read from the switch's own
//! `/proc/<pid>/status` (VmRSS, Threads), commands sent the way admins do
//! (a fresh `fs_cli -x` each):
//!
//! 1. the switch without the module (started without it, webhooks
//!    configured to a live receiver for the load that follows);
//! 2. `load mod_zorio_c2c`, idle: at most 8 threads and 8 MiB more;
//! 3. 150 `reload mod_zorio_c2c`: RSS in use after the 150th within 2 MiB of
//!    RSS in use after the 10th (warm-up allowed, growth not), threads as
//!    after load;
//! 4. `unload mod_zorio_c2c`: RSS in use within 4 MiB of the switch that
//!    never loaded us (as is without gdb), threads back to its count.
//!
//! Runs like `tests/e2e_reload.rs` (`FREESWITCH_BIN`, `FREESWITCH_MOD_DIR`,
//! `SIPP_BIN`, `ZORIO_C2C_SO`, `FS_CLI_BIN`); otherwise prints
//! `SKIPPED: <why>`. `C2C_FOOTPRINT_RELOADS` changes the number of reloads
//! (the thresholds are asserted at 150, the default); `C2C_FOOTPRINT_HOLD=<s>`
//! keeps the switch up that long after the unload, for a look with gdb.
//!
//! "In use" is the RSS after `malloc_trim(0)` in the switch (through gdb,
//! when it is installed): FreeSWITCH's own `reloadxml`, which every
//! `reload` runs first, leaves tens of MiB of free chunks in glibc's arenas
//! on a switch that never loaded us (measured here as a control), which
//! glibc keeps or gives back by chance. Raw figures are printed too.

mod e2e_common;
mod scratch;
mod webhooks_common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_common::*;
use webhooks_common::{Receiver, Reply, SECRET};

const MIB: i64 = 1024 * 1024;

/// VmRSS (bytes), RssAnon (bytes), Threads of a process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss: i64,
    anon: i64,
    threads: i64,
}

fn sample(pid: u32) -> Sample {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("switch's status");
    let field = |name: &str| -> i64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Sample {
        rss: field("VmRSS:") * 1024,
        anon: field("RssAnon:") * 1024,
        threads: field("Threads:"),
    }
}

/// A sample once the switch is quiet: after `settle`, the threads' count
/// must hold still for a second (threads that end on their own, FreeSWITCH's
/// event-socket thread of the last `fs_cli`, have ended).
fn settled(pid: u32, settle: Duration) -> Sample {
    std::thread::sleep(settle);
    let until = Instant::now() + Duration::from_secs(20);
    let mut last = sample(pid);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = sample(pid);
        if now.threads == last.threads || Instant::now() > until {
            return now;
        }
        last = now;
    }
}

/// [`settled`], after asking the switch's glibc to give back what is free
/// (`malloc_trim(0)` through gdb, when gdb is there): what is left is what
/// is in use. `None` without gdb.
fn trimmed(pid: u32, gdb: Option<&PathBuf>) -> Option<Sample> {
    let gdb = gdb?;
    let out = Command::new(gdb)
        .args([
            "-batch",
            "-p",
            &pid.to_string(),
            "-ex",
            "call (int) malloc_trim(0)",
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !String::from_utf8_lossy(&out.stdout).contains("= ") {
        println!(
            "gdb could not call malloc_trim: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(settled(pid, Duration::from_millis(200)))
}

/// Our threads in the switch, by name (`c2c-…`).
fn our_threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| fs::read_to_string(e.path().join("comm")).ok())
                .map(|s| s.trim().to_string())
                .filter(|n| n.starts_with("c2c-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

fn show(what: &str, s: Sample, base: Sample) {
    println!(
        "{what:<22} VmRSS {:>10} ({:>+9} vs without us; anon {:>+9})  Threads {:>3} ({:+})",
        mib(s.rss),
        mib(s.rss - base.rss),
        mib(s.anon - base.anon),
        s.threads,
        s.threads - base.threads
    );
}

#[test]
fn idle_load_is_light_and_reloads_leave_nothing_behind() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    let ports = Ports::new();
    let cli = match FsCli::find(&env, ports.esl) {
        Ok(c) => c,
        Err(why) => return skipped(&why),
    };
    let reloads: usize = std::env::var("C2C_FOOTPRINT_RELOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let dir = e2e_dir("footprint");
    describe(&env);
    // A webhook destination that is there: the load is configured as in production.
    let receiver = Receiver::start(0, |_, _| Reply::Status(200));
    let webhooks = webhook_params(&receiver.url(), SECRET, &dir.join("spool"), "");
    let xml = freeswitch_xml(ports, &webhooks).replace(r#"<load module="mod_zorio_c2c"/>"#, "");
    let fs = start_freeswitch_xml(&env, &dir, &xml);
    let pid = fs.pid();
    let mut esl = Esl::connect(ports.esl, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no ESL; see {}/freeswitch.out", dir.display()));
    wait_for("FreeSWITCH ready", Duration::from_secs(30), || {
        esl.api("status").contains("UP")
    });
    drop(esl);
    assert_eq!(cli.x("module_exists mod_zorio_c2c").trim(), "false");
    let gdb = which("gdb");
    if gdb.is_none() {
        println!("gdb not found: what is in use after 10 and {reloads} reloads is not compared");
    }
    // The switch as it is without us, after the same kind of fs_cli traffic.
    for _ in 0..5 {
        cli.x("status");
    }
    let base = settled(pid, Duration::from_secs(3));
    show("without the module", base, base);

    // FreeSWITCH's own part: `reload` (and `load`) run `reloadxml` first.
    for _ in 0..reloads {
        assert!(cli.x("reloadxml").contains("+OK"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let control = settled(pid, Duration::from_secs(3));
    show(&format!("{reloads} reloadxml, no us"), control, base);
    let base_in_use = trimmed(pid, gdb.as_ref());
    if let Some(t) = base_in_use {
        show("  same, trimmed", t, base);
    }

    let r = cli.x("load mod_zorio_c2c");
    assert!(r.contains("+OK"), "load: {r}");
    let loaded = settled(pid, Duration::from_secs(3));
    show("loaded, idle", loaded, base);
    let idle_threads = our_threads(pid);
    println!("  our threads: {idle_threads:?}");

    let mut in_use = Vec::new();
    let mut reloading = Duration::ZERO;
    for i in 1..=reloads {
        let t = Instant::now();
        let r = cli.x("reload mod_zorio_c2c");
        reloading += t.elapsed();
        assert!(
            r.contains("+OK"),
            "reload {i}: {r}; see {}/log",
            dir.display()
        );
        if i == 10 || i % 50 == 0 || i == reloads {
            let s = settled(pid, Duration::from_secs(2));
            show(&format!("after {i} reloads"), s, base);
            assert_eq!(s.threads, loaded.threads, "threads after {i} reloads");
            if let Some(t) = trimmed(pid, gdb.as_ref()) {
                show("  same, trimmed", t, base);
                in_use.push((i, t));
            }
        }
    }
    println!(
        "{reloads} reloads in {:.1} s (each through its own fs_cli)",
        reloading.as_secs_f64()
    );
    println!("  our threads: {:?}", our_threads(pid));
    let r = cli.x("unload mod_zorio_c2c");
    assert!(r.contains("+OK"), "unload: {r}");
    let unloaded = settled(pid, Duration::from_secs(3));
    show("unloaded", unloaded, base);
    let unloaded_in_use = trimmed(pid, gdb.as_ref());
    if let Some(t) = unloaded_in_use {
        show("  same, trimmed", t, base);
    }
    assert!(
        fs::read_to_string(dir.join("log/freeswitch.log"))
            .unwrap_or_default()
            .contains("mod_zorio_c2c stopped"),
        "no clean stop in the log"
    );
    assert_eq!(our_threads(pid), Vec::<String>::new(), "threads left");
    if let Some(hold) = std::env::var("C2C_FOOTPRINT_HOLD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // For a look with gdb / heaptrack before the switch stops.
        println!(
            "holding FreeSWITCH (pid {pid}, ESL {}) for {hold} s",
            ports.esl
        );
        std::thread::sleep(Duration::from_secs(hold));
    }

    // Idle footprint.
    assert!(
        loaded.threads - base.threads <= 8,
        "idle: {} threads more than without us: {idle_threads:?}",
        loaded.threads - base.threads,
    );
    assert!(
        loaded.rss - base.rss <= 8 * MIB,
        "idle: {} more than without us",
        mib(loaded.rss - base.rss)
    );
    // Reloads leave nothing behind: what is in use after the last reload
    // against after the 10th (FreeSWITCH's own free chunks given back).
    let at = |n: usize| in_use.iter().find(|(i, _)| *i == n).map(|(_, s)| *s);
    if let (Some(tenth), Some(last)) = (at(10), at(reloads)) {
        assert!(
            last.rss - tenth.rss <= 2 * MIB,
            "RSS in use grew by {} from the 10th to the {reloads}th reload",
            mib(last.rss - tenth.rss)
        );
    }
    // After unload: within 4 MiB of the switch that never loaded us. What
    // is in use when gdb can tell (against the switch after the same
    // reloadxml traffic, trimmed the same way): as it is, the RSS also holds
    // what FreeSWITCH freed after our shutdown (its module pool, the
    // command's event-socket queues), kept or not by glibc by chance.
    match (base_in_use, unloaded_in_use) {
        (Some(b), Some(u)) => assert!(
            u.rss - b.rss <= 4 * MIB,
            "unloaded: {} in use more than the switch that never loaded us",
            mib(u.rss - b.rss)
        ),
        _ => assert!(
            unloaded.rss - base.rss <= 4 * MIB,
            "unloaded: {} more than the switch that never loaded us",
            mib(unloaded.rss - base.rss)
        ),
    }
    assert!(
        unloaded.threads <= base.threads,
        "unloaded: {} threads, {} without us",
        unloaded.threads,
        base.threads
    );
    drop(fs);
    drop(receiver);
}
