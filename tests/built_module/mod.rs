//! Shared by the tests of the built module itself (its exports, its Debian
//! package): where `cargo build` put it, and how a test says it skipped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `target/<profile>/libmod_zorio_c2c.so` next to this test's `deps/`
/// directory (or `ZORIO_C2C_SO`), if built and not older than the library
/// (`cargo test` rebuilds the rlib, not the cdylib); else why not.
pub fn built_module() -> Result<PathBuf, String> {
    let so = match std::env::var_os("ZORIO_C2C_SO") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .ok_or("no target directory")?;
            profile_dir.join("libmod_zorio_c2c.so")
        }
    };
    if !so.exists() {
        return Err(format!(
            "{} not built (cargo build --release first)",
            so.display()
        ));
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let rlib = so.with_file_name("deps").join("libmod_zorio_c2c.rlib");
    if let (Some(built), Some(lib)) = (modified(&so), modified(&rlib)) {
        if built + std::time::Duration::from_secs(5) < lib {
            return Err(format!(
                "{} is older than the library: run `cargo build` (same profile) first",
                so.display()
            ));
        }
    }
    Ok(so)
}

/// On the real stderr, which the test harness does not capture.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}
