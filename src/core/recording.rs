//! Call recordings: when a call is recorded (`record-calls`), where its
//! file goes, and what the CDR says of it once the switch closed the file.
//! The switch records (`record_session`); this only names and reads files.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::config::{Config, ConfigError};
use super::wav;
use crate::switch::Switch;

pub use super::config::RecordCalls;

/// Where a recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingState {
    /// The switch is writing it (the call is up).
    Recording,
    /// Closed and readable.
    Available,
    /// The switch could not start it, or the file is missing or unreadable
    /// (e.g. the disk filled): the call went on without it.
    Failed,
    /// Erased (`DELETE …/recording`, or past `recording-retention`).
    Deleted,
}

impl RecordingState {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Available => "available",
            RecordingState::Failed => "failed",
            RecordingState::Deleted => "deleted",
        }
    }

    /// The state with this name.
    pub fn parse(v: &str) -> Option<RecordingState> {
        [
            RecordingState::Recording,
            RecordingState::Available,
            RecordingState::Failed,
            RecordingState::Deleted,
        ]
        .into_iter()
        .find(|s| s.as_str() == v)
    }
}

/// One call's recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The file (the switch writes it).
    pub path: String,
    /// Its format, the file's extension (`wav`).
    pub format: String,
    pub state: RecordingState,
    /// Why it failed or what erased it.
    pub note: Option<String>,
    pub channels: Option<u16>,
    pub duration_ms: Option<u64>,
    pub bytes: Option<u64>,
    /// Hex SHA-256 of the whole file.
    pub sha256: Option<String>,
}

/// Where recordings go: `recordings-dir`, else (a sandbox or a test, the
/// module sets its own default at load) `$TMPDIR/zorio-c2c-recordings`.
pub fn dir_of(config: &Config) -> PathBuf {
    if config.recordings_dir.as_os_str().is_empty() {
        std::env::temp_dir().join("zorio-c2c-recordings")
    } else {
        config.recordings_dir.clone()
    }
}

/// The file of `call`'s recording in `dir`.
pub fn file_path(dir: &Path, call: Uuid, format: &str) -> PathBuf {
    dir.join(format!("{call}.{format}"))
}

/// Which party each channel carries: FreeSWITCH's stereo recording of the
/// customer's leg puts what it reads (the customer) left and what it writes
/// (the agent, or whoever the customer was transferred to) right.
pub const CHANNEL_PARTIES: [&str; 2] = ["customer", "agent"];

impl Recording {
    /// A recording the switch started.
    pub fn started(path: &Path, format: &str) -> Recording {
        Recording {
            path: path.display().to_string(),
            format: format.to_string(),
            state: RecordingState::Recording,
            note: None,
            channels: None,
            duration_ms: None,
            bytes: None,
            sha256: None,
        }
    }

    /// A recording the switch could not start (`why`).
    pub fn failed(path: &Path, format: &str, why: String) -> Recording {
        Recording {
            state: RecordingState::Failed,
            note: Some(why),
            ..Recording::started(path, format)
        }
    }

    /// Once the call ended (the switch closed the file): reads its size,
    /// hash and, for a WAV, channels and length. A missing, empty or
    /// unreadable file makes the recording failed; the call is unaffected.
    pub fn finish(&mut self) {
        if self.state != RecordingState::Recording {
            return;
        }
        match inspect(Path::new(&self.path), &self.format) {
            Ok(f) if f.bytes > 0 => {
                self.state = RecordingState::Available;
                self.bytes = Some(f.bytes);
                self.sha256 = Some(f.sha256);
                self.channels = f.channels;
                self.duration_ms = f.duration_ms;
            }
            Ok(_) => self.fail("the recording file is empty (nothing could be written)"),
            Err(e) => self.fail(&format!("the recording file cannot be read: {e}")),
        }
    }

    /// What the switch said when it closed the file (its
    /// `record_completion_cause`): `uri-failure`, a write failed (e.g. the
    /// disk filled), makes the recording failed; the file stops there.
    pub fn closed_with(&mut self, cause: &str) {
        if self.state == RecordingState::Recording && cause == "uri-failure" {
            self.fail("the switch could not write the whole recording (uri-failure: a write failed, e.g. the disk is full)");
        }
    }

    fn fail(&mut self, why: &str) {
        self.state = RecordingState::Failed;
        self.note = Some(why.to_string());
    }

    /// Erases the file (a customer's erasure request, or retention): the
    /// record stays, saying so.
    pub fn erase(&mut self, why: &str) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.state = RecordingState::Deleted;
        self.note = Some(why.to_string());
        Ok(())
    }

    /// What the CDR and `GET /api/pbx/calls/{uuid}` say of it.
    pub fn to_json(&self, call: Uuid) -> Value {
        let served = matches!(
            self.state,
            RecordingState::Available | RecordingState::Recording
        );
        json!({
            "url": served.then(|| format!("/api/pbx/calls/{call}/recording")),
            "format": self.format,
            "channels": self.channels,
            "channel_parties": CHANNEL_PARTIES,
            "duration_ms": self.duration_ms,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "status": self.state.as_str(),
            "note": self.note,
        })
    }
}

/// What a closed recording file holds.
struct FileFacts {
    bytes: u64,
    sha256: String,
    channels: Option<u16>,
    duration_ms: Option<u64>,
}

fn inspect(path: &Path, format: &str) -> io::Result<FileFacts> {
    let mut f = fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        bytes += n as u64;
    }
    let info = if format.eq_ignore_ascii_case("wav") {
        wav::read_info(path)?
    } else {
        None
    };
    Ok(FileFacts {
        bytes,
        sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        channels: info.map(|i| i.channels),
        duration_ms: info.map(|i| i.duration_ms()),
    })
}

/// Erases the recordings in `dir` (files named `<uuid>.<format>`, nothing
/// else) last written more than `max_age` ago; returns how many.
pub fn purge(dir: &Path, format: &str, max_age: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let mut erased = 0;
    for e in entries.flatten() {
        let path = e.path();
        let ours = path.extension().is_some_and(|x| x == format)
            && path
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| Uuid::parse_str(s).is_ok());
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > max_age);
        if ours && old && fs::remove_file(&path).is_ok() {
            erased += 1;
        }
    }
    erased
}

/// Checks that recordings can be written in `dir` (creating it): a probe
/// file is written and removed. The error is one sentence saying why.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() {
        return Err("no recordings directory is set (recordings-dir)".into());
    }
    if dir.to_string_lossy().chars().any(char::is_whitespace) {
        return Err(format!(
            "the recordings directory {} holds whitespace, which FreeSWITCH's uuid_record cannot take",
            dir.display()
        ));
    }
    fs::create_dir_all(dir).map_err(|e| {
        format!(
            "the recordings directory {} cannot be created: {e}",
            dir.display()
        )
    })?;
    // The sandbox's switch writes its files itself: the directory must exist.
    let probe = dir.join(format!(".zorio-c2c-probe-{}", Uuid::new_v4().simple()));
    fs::write(&probe, b"probe").map_err(|e| {
        format!(
            "the recordings directory {} cannot be written: {e}",
            dir.display()
        )
    })?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Checks that `switch` writes `recording-format` files (when calls may be
/// recorded); the error names the param and its value in one sentence.
pub fn check_format(config: &Config, switch: &dyn Switch) -> Result<(), ConfigError> {
    let f = &config.recording_format;
    if config.record_calls == RecordCalls::Never || switch.writes_format(f) {
        return Ok(());
    }
    Err(ConfigError {
        at: "settings/param[recording-format]".into(),
        message: format!(
            "no format module loaded in the switch writes {f} files (wav: mod_sndfile, mp3: mod_shout; load it before mod_zorio_c2c)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("c2c-rec-{}", Uuid::new_v4().simple()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn record_calls_decides_per_request() {
        assert_eq!(
            RecordCalls::parse("On-Request"),
            Some(RecordCalls::OnRequest)
        );
        assert_eq!(RecordCalls::parse("sometimes"), None);
        assert!(!RecordCalls::OnRequest.records(None));
        assert!(!RecordCalls::OnRequest.records(Some(false)));
        assert!(RecordCalls::OnRequest.records(Some(true)));
        assert!(RecordCalls::Always.records(None));
        assert!(!RecordCalls::Never.records(Some(true)));
    }

    #[test]
    fn a_finished_recording_has_its_facts_and_an_erased_one_says_so() {
        let dir = tmp();
        let call = Uuid::new_v4();
        let path = file_path(&dir, call, "wav");
        wav::write_tones(&path, 8000, &[1000.0, 400.0], 2000).unwrap();
        let mut r = Recording::started(&path, "wav");
        assert_eq!(r.to_json(call)["status"], "recording");
        r.finish();
        let j = r.to_json(call);
        assert_eq!(j["status"], "available");
        assert_eq!(j["channels"], 2);
        assert_eq!(j["duration_ms"], 2000);
        assert_eq!(j["bytes"], fs::metadata(&path).unwrap().len());
        let want: String = Sha256::digest(fs::read(&path).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(j["sha256"], want);
        assert_eq!(j["url"], format!("/api/pbx/calls/{call}/recording"));
        r.erase("erased on request").unwrap();
        assert!(!path.exists());
        let j = r.to_json(call);
        assert_eq!(j["status"], "deleted");
        assert_eq!(j["url"], Value::Null);
    }

    #[test]
    fn a_missing_or_empty_file_is_a_failed_recording() {
        let dir = tmp();
        let mut r = Recording::started(&dir.join("gone.wav"), "wav");
        r.finish();
        assert_eq!(r.state, RecordingState::Failed);
        let empty = dir.join("empty.wav");
        fs::write(&empty, b"").unwrap();
        let mut r = Recording::started(&empty, "wav");
        r.finish();
        assert_eq!(r.state, RecordingState::Failed);
        assert!(r.note.unwrap().contains("empty"));
    }

    #[test]
    fn a_write_failure_the_switch_reports_fails_the_recording() {
        let dir = tmp();
        let path = file_path(&dir, Uuid::new_v4(), "wav");
        wav::write_tones(&path, 8000, &[1000.0, 400.0], 1000).unwrap();
        let mut r = Recording::started(&path, "wav");
        r.closed_with("no-input-timeout");
        assert_eq!(r.state, RecordingState::Recording);
        r.closed_with("uri-failure");
        r.finish();
        assert_eq!(r.state, RecordingState::Failed);
        assert!(r.note.as_deref().unwrap().contains("uri-failure"));
        assert_eq!(r.bytes, None);
    }

    #[test]
    fn purge_erases_only_our_old_files() {
        let dir = tmp();
        let old = file_path(&dir, Uuid::new_v4(), "wav");
        let fresh = file_path(&dir, Uuid::new_v4(), "wav");
        let other = dir.join("keep-me.wav");
        for p in [&old, &fresh, &other] {
            fs::write(p, b"RIFF").unwrap();
        }
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400);
        for p in [&old, &other] {
            fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        assert_eq!(
            purge(&dir, "wav", std::time::Duration::from_secs(2 * 86_400)),
            1
        );
        assert!(!old.exists() && fresh.exists() && other.exists());
    }

    #[test]
    fn a_dir_that_cannot_be_written_is_refused_in_one_sentence() {
        let dir = tmp();
        assert_eq!(check_dir(&dir.join("new/sub")), Ok(()));
        let file = dir.join("a-file");
        fs::write(&file, b"x").unwrap();
        let e = check_dir(&file.join("under")).unwrap_err();
        assert!(e.contains("cannot be created"), "{e}");
        assert!(check_dir(&dir.join("with space"))
            .unwrap_err()
            .contains("whitespace"));
    }
}
