//! A directory in the temp dir that one test owns: removed when the test
//! passes, left for inspection when it fails (the guard drops while the test
//! panics) or when `ZORIO_KEEP_SCRATCH` is set, so a passing run leaves
//! nothing behind. Every test crate that
//! uses `common`, `webhooks_common` or `e2e_common` declares `mod scratch;`.
#![allow(dead_code)]

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// `<temp dir>/<prefix>-<pid>-<uuid>`, created; removed on drop unless panicking.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh, empty directory.
    pub fn new(prefix: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch(dir)
    }

    /// Takes over `dir` (made or yet to be made by someone else).
    pub fn adopt(dir: PathBuf) -> Scratch {
        Scratch(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("ZORIO_KEEP_SCRATCH").is_some() {
            eprintln!("left for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
