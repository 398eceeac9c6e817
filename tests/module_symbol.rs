//! The built module exports the table FreeSWITCH looks up by name, and is
//! marked to stay mapped when FreeSWITCH unloads it.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/libmod_zorio_c2c.so`, next to this test's `deps/` directory.
fn built_module() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ZORIO_C2C_SO") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    Some(profile_dir.join("libmod_zorio_c2c.so"))
}

/// On the real stderr, which the test harness does not capture.
fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// The built module, unless it is missing or stale (then says why).
fn fresh_module() -> Option<PathBuf> {
    let Some(so) = built_module().filter(|p| p.exists()) else {
        skipped("libmod_zorio_c2c.so not built next to this test (cargo build --release)");
        return None;
    };
    // `cargo test` rebuilds the rlib but not the cdylib: a newer rlib means a stale .so.
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let rlib = so.with_file_name("deps").join("libmod_zorio_c2c.rlib");
    if let (Some(built), Some(lib)) = (modified(&so), modified(&rlib)) {
        if built + std::time::Duration::from_secs(5) < lib {
            skipped(&format!(
                "{} is older than the library: run `cargo build` (same profile) first",
                so.display()
            ));
            return None;
        }
    }
    Some(so)
}

#[test]
fn the_module_exports_its_interface_table() {
    let Some(so) = fresh_module() else { return };
    let out = match Command::new("nm")
        .arg("-D")
        .arg("--defined-only")
        .arg(&so)
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!("nm -D failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            skipped(&format!("nm not available ({e})"));
            return;
        }
    };
    let symbols = String::from_utf8_lossy(&out.stdout);
    let line = symbols
        .lines()
        .find(|l| l.ends_with(" mod_zorio_c2c_module_interface"))
        .unwrap_or_else(|| {
            panic!(
                "{} does not export mod_zorio_c2c_module_interface",
                so.display()
            )
        });
    // A data symbol (D/R), not a function.
    let kind = line.split_whitespace().nth(1).unwrap_or("");
    assert!(
        matches!(kind, "D" | "R" | "B"),
        "unexpected symbol kind: {line}"
    );
    // Nothing of the shim leaks out as an export.
    assert!(
        !symbols.lines().any(|l| l.ends_with(" zc2c_originate")),
        "shim symbols should stay internal"
    );
}

/// `-z nodelete` (build.rs): FreeSWITCH's `dlclose` on unload or reload must
/// leave the library mapped, so that no thread-specific-data destructor std
/// registered on a FreeSWITCH thread can jump into unmapped memory.
#[test]
fn the_module_stays_mapped_after_dlclose() {
    let Some(so) = fresh_module() else { return };
    let out = match Command::new("readelf").arg("-d").arg(&so).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!("readelf -d failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            skipped(&format!("readelf not available ({e})"));
            return;
        }
    };
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let flags = dynamic
        .lines()
        .find(|l| l.contains("(FLAGS_1)"))
        .unwrap_or_else(|| panic!("{} has no FLAGS_1 entry:\n{dynamic}", so.display()));
    assert!(flags.contains("NODELETE"), "not pinned: {flags}");
}
