//! Recording over the simulated switch: `record` and `record-calls` decide
//! which calls are recorded; a recorded call's CDR and status carry the
//! file's facts (a real 2-channel WAV the simulated switch writes); a
//! refused `record: true` is 422 `recording_disabled`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mod_zorio_c2c::app::App;
use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::engine::Engine;
use mod_zorio_c2c::core::events::{self, EventLog};
use mod_zorio_c2c::core::recording::RecordCalls;
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::core::wav;
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::{json, Value};
use uuid::Uuid;

struct World {
    engine: Arc<Engine>,
    log: Arc<EventLog>,
    dir: PathBuf,
    _sim: Arc<SimSwitch>,
}

impl Drop for World {
    /// The recordings dir goes with a passing test (a failing one keeps it).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn world(record_calls: RecordCalls) -> World {
    let mut c =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    let dir = std::env::temp_dir().join(format!("c2c-rec-engine-{}", Uuid::new_v4().simple()));
    c.recordings_dir = dir.clone();
    c.record_calls = record_calls;
    let o = SimOptions::demo_fast(Duration::from_millis(50), Duration::from_millis(1200));
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let log = Arc::new(EventLog::default());
    let engine = Engine::new(c, sim.clone(), rx, log.clone());
    World {
        engine,
        log,
        dir,
        _sim: sim,
    }
}

fn place(w: &World, body: Value) -> Result<Uuid, mod_zorio_c2c::core::errors::ApiError> {
    let req = ClickToCallRequest::from_value(&body).unwrap();
    w.engine
        .place(&req, Some("crm"))
        .map(|a| Uuid::parse_str(&a.call_uuid).unwrap())
}

fn cdr_of(w: &World, call: Uuid) -> Value {
    let until = Instant::now() + Duration::from_secs(6);
    loop {
        let found = w
            .log
            .all()
            .into_iter()
            .find(|e| e.call_uuid == call && e.event_type == events::CDR);
        if let Some(e) = found {
            return e.data;
        }
        assert!(Instant::now() < until, "no CDR for {call}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_requested_recording_is_in_the_cdr_with_the_files_facts() {
    let w = world(RecordCalls::OnRequest);
    let call = place(
        &w,
        json!({"from_extension": "1001", "to_phone": "0987654321", "record": true}),
    )
    .unwrap();
    let unrecorded = place(
        &w,
        json!({"from_extension": "1002", "to_phone": "0987654322"}),
    )
    .unwrap();
    let cdr = cdr_of(&w, call);
    let rec = &cdr["recording"];
    assert_eq!(rec["status"], "available", "{cdr}");
    assert_eq!(rec["channels"], 2);
    assert_eq!(rec["format"], "wav");
    let path = w.dir.join(format!("{call}.wav"));
    let info = wav::read_info(&path).unwrap().expect("a WAV");
    assert_eq!(info.channels, 2);
    assert_eq!(rec["bytes"], std::fs::metadata(&path).unwrap().len());
    assert_eq!(rec["duration_ms"], info.duration_ms());
    let billsec = cdr["billsec"].as_u64().unwrap();
    assert!((info.duration_ms() / 1000).abs_diff(billsec) <= 1);
    assert!(info.duration_ms() >= 1000, "{}", info.duration_ms());
    assert_eq!(cdr_of(&w, unrecorded)["recording"], Value::Null);
    // The ended call's status says the same.
    let st = w.engine.call(call).unwrap().status_json();
    assert_eq!(st["recording"], *rec);
}

#[test]
fn a_disk_that_fills_mid_call_fails_the_recording_not_the_call() {
    let w = world(RecordCalls::OnRequest);
    w._sim
        .set_options(|o| o.recordings_disk_full_after = Some(Duration::from_millis(300)));
    let call = place(
        &w,
        json!({"from_extension": "1001", "to_phone": "0987654321", "record": true}),
    )
    .unwrap();
    let cdr = cdr_of(&w, call);
    let rec = &cdr["recording"];
    assert_eq!(rec["status"], "failed", "{cdr}");
    assert!(
        rec["note"].as_str().unwrap().contains("uri-failure"),
        "{rec}"
    );
    assert_eq!(rec["url"], Value::Null);
    assert_eq!(cdr["outcome"], "completed", "{cdr}");
    assert!(cdr["billsec"].as_u64().unwrap() >= 1, "{cdr}");
    let types = w.log.types_of(call);
    let hangups = types.iter().filter(|t| **t == events::HANGUP).count();
    assert_eq!(hangups, 1, "{types:?}");
    assert_eq!(
        w.engine.call(call).unwrap().status_json()["recording"],
        *rec
    );
}

#[test]
fn always_records_every_call_and_never_refuses_a_request() {
    let w = world(RecordCalls::Always);
    let call = place(
        &w,
        json!({"from_extension": "1001", "to_phone": "0987654321"}),
    )
    .unwrap();
    assert_eq!(cdr_of(&w, call)["recording"]["status"], "available");

    let w = world(RecordCalls::Never);
    let e = place(
        &w,
        json!({"from_extension": "1001", "to_phone": "0987654321", "record": true}),
    )
    .unwrap_err();
    assert_eq!((e.status, e.code), (422, "recording_disabled"));
    assert_eq!(e.fields[0].field, "record");
    let call = place(
        &w,
        json!({"from_extension": "1001", "to_phone": "0987654321", "record": false}),
    )
    .unwrap();
    assert_eq!(cdr_of(&w, call)["recording"], Value::Null);
}

#[test]
fn a_format_the_switch_cannot_write_is_refused_at_start_and_at_reload_but_not_at_its_boot() {
    let mut c =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    let dir = std::env::temp_dir().join(format!("c2c-rec-format-{}", Uuid::new_v4().simple()));
    c.webhooks.spool_dir = dir.join("spool");
    c.recordings_dir = dir.join("rec");
    c.http.enabled = false;
    let start = |c: &Config| {
        let (tx, rx) = leg_channel();
        let sim = SimSwitch::new(SimOptions::demo(), tx);
        (App::start(c.clone(), sim.clone(), rx, vec![]), sim)
    };
    let mut mp3 = c.clone();
    mp3.recording_format = "mp3".into();
    let (app, sim) = start(&mp3);
    let e = app.err().expect("mp3 refused at start");
    sim.stop();
    assert_eq!(
        e,
        "config refused at settings/param[recording-format]: no format module loaded in the switch writes mp3 files (wav: mod_sndfile, mp3: mod_shout; load it before mod_zorio_c2c)"
    );
    // At the switch's boot its format modules may load after us: a warning,
    // the module loads (a recording would fail alone, saying so).
    let (tx, rx) = leg_channel();
    let booting = SimSwitch::new(
        SimOptions {
            booting: true,
            ..SimOptions::demo()
        },
        tx,
    );
    let app = App::start(mp3.clone(), booting.clone(), rx, vec![]).expect("loads at boot");
    assert!(app.stop(Duration::from_secs(2)).is_empty());
    booting.stop();
    // Never recording, the format does not matter.
    mp3.record_calls = RecordCalls::Never;
    let (app, sim) = start(&mp3);
    assert!(app.unwrap().stop(Duration::from_secs(2)).is_empty());
    sim.stop();

    let (app, sim) = start(&c);
    let app = app.expect("wav is written");
    mp3.record_calls = RecordCalls::OnRequest;
    mp3.max_call_duration = Some(60);
    let e = app.apply_config(mp3).unwrap_err();
    assert!(e.starts_with("settings/param[recording-format]: "), "{e}");
    assert!(e.contains("mp3"), "{e}");
    let kept = app.engine.config();
    assert_eq!(kept.recording_format, "wav", "the old config stays");
    assert_eq!(kept.max_call_duration, None, "refused whole");
    assert!(app.stop(Duration::from_secs(2)).is_empty());
    sim.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
