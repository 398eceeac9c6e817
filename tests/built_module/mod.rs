//! Shared by the tests of the built module itself (its exports, its Debian
//! package): where `cargo build` put it, and how a test says it skipped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `target/<profile>/libmod_zorio_c2c.so` next to this test's `deps/`
/// directory (or `ZORIO_C2C_SO`), if built and not older than its sources;
/// else why not.
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
    // Stale when a source it is built from changed after it was built. (The
    // rlib's age says nothing: `cargo test` rebuilds the library with its
    // dev-dependencies' features, never the cdylib.)
    let built = std::fs::metadata(&so)
        .and_then(|m| m.modified())
        .map_err(|e| e.to_string())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newer = ["src", "include", "build.rs", "Cargo.toml"]
        .iter()
        .filter_map(|p| newest(&root.join(p)))
        .max();
    if newer.is_some_and(|t| t > built + std::time::Duration::from_secs(1)) {
        return Err(format!(
            "{} is older than its sources: run `cargo build` (same profile) first",
            so.display()
        ));
    }
    Ok(so)
}

/// The newest modification time of a file, or of any file below a directory.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest(&e.path()))
        .max()
}

/// On the real stderr, which the test harness does not capture.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}
