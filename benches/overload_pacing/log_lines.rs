//! Lines the switch wrote to its log file over a phase: what each side's
//! calls make it log (every line is formatted, queued and written by the
//! switch's log thread, at the bench's log level, debug by default). The
//! bench's config never rolls the file over.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where the log file ended at a moment.
pub struct Mark {
    file: PathBuf,
    at: u64,
}

impl Mark {
    /// The end of the switch's log file under the scratch `dir` now.
    pub fn now(dir: &Path) -> Option<Mark> {
        let file = dir.join("log").join("freeswitch.log");
        let at = std::fs::metadata(&file).ok()?.len();
        Some(Mark { file, at })
    }

    /// Lines written since the mark (`None` if the file was replaced).
    pub fn lines_since(&self) -> Option<u64> {
        let mut f = File::open(&self.file).ok()?;
        if f.metadata().ok()?.len() < self.at {
            return None;
        }
        f.seek(SeekFrom::Start(self.at)).ok()?;
        let mut r = BufReader::with_capacity(1 << 16, f);
        let (mut buf, mut n) = (vec![0u8; 1 << 16], 0u64);
        loop {
            match r.read(&mut buf).ok()? {
                0 => return Some(n),
                k => n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64,
            }
        }
    }
}
