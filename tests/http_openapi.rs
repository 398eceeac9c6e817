//! `openapi/openapi.json` against the real router, so the two cannot drift:
//! every documented operation is routed and every route documented; every
//! documented status of every operation is produced by a scenario here, with
//! its documented headers; the 202 and error bodies have the documented keys;
//! the webhooks section names every event type with the signing headers;
//! every answer's body is valid by its documented schema, and every schema
//! of an answer or an event is closed (an undeclared field fails).

mod common;
mod openapi_doc;
mod scratch;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mod_zorio_c2c::app::App;
use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::events;
use mod_zorio_c2c::core::http::router::ROUTES;
use mod_zorio_c2c::core::http::{route, Request, Response};
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::{json, Value};

const DOC: &str = include_str!("../openapi/openapi.json");
const SAMPLE: &str = include_str!("../conf/autoload_configs/zorio_c2c.conf.xml");
const TOKEN: &str = "change-me-to-a-long-random-token";
const MODE1: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

struct World {
    app: App,
    sim: Arc<SimSwitch>,
    /// The spool directory, removed after the app stops.
    _spool: common::Scratch,
}

impl Drop for World {
    fn drop(&mut self) {
        self.app.stop(Duration::from_secs(5));
        self.sim.stop();
    }
}

fn world() -> World {
    world_with(|_| {})
}

fn world_with(tweak: impl FnOnce(&mut Config)) -> World {
    let mut config = Config::from_xml(SAMPLE).unwrap();
    config.http.enabled = false; // the pure router alone
    let spool = common::Scratch::new("c2c-openapi");
    config.webhooks.spool_dir = spool.to_path_buf();
    tweak(&mut config);
    let mut o = SimOptions::demo();
    o.talk_time = Duration::from_secs(30);
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let app = App::start(config, sim.clone(), rx, vec![]).unwrap();
    World {
        app,
        sim,
        _spool: spool,
    }
}

fn doc() -> Value {
    serde_json::from_str(DOC).expect("openapi.json is JSON")
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// (METHOD, path template) of every documented operation.
fn operations(d: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn concrete(template: &str) -> String {
    template
        .replace("{call_uuid}", &uuid::Uuid::new_v4().to_string())
        .replace("{id}", "evt_missing")
}

fn req(method: &str, path: &str) -> Request {
    Request::new(method, path).with_header("Authorization", &format!("Bearer {TOKEN}"))
}

fn place(w: &World) -> String {
    let r = route(
        &w.app.http_state,
        &req("POST", "/api/pbx/calls/click-to-call")
            .with_header("Content-Type", "application/json")
            .with_body(MODE1),
    );
    assert_eq!(r.status, 202);
    r.json_body()["data"]["call_uuid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A webhook service whose every event dies at once: a closed loopback
/// port and no retries, so dead letters exist for the admin endpoints.
fn world_with_dead_letters() -> World {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", closed.local_addr().unwrap());
    drop(closed);
    let w = world_with(|c| {
        c.webhooks.url = Some(url);
        c.webhooks.retry_schedule = vec![Duration::from_millis(10)];
        c.webhooks.give_up_after = Duration::ZERO;
        c.webhooks.connect_timeout = Duration::from_millis(200);
    });
    place(&w);
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while w.app.webhooks.dead_letters().is_empty() {
        assert!(std::time::Instant::now() < until, "no dead letter");
        std::thread::sleep(Duration::from_millis(10));
    }
    w
}

/// A cluster node asked about a call whose owner (per Redis) is not up:
/// 503 `call_owner_unavailable`. Needs redis-server (started here).
fn owner_unavailable(method: &str, path: &str) -> Response {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server");
    let uuid = path.rsplit('/').next().unwrap().to_string();
    let mut said = String::new();
    for _ in 0..500 {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            c.write_all(format!("SET zorio_c2c:call:{uuid} gone\r\n").as_bytes())
                .unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).unwrap();
            said = String::from_utf8_lossy(&b).into_owned();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(said, "+OK\r\n");
    let w = world_with(|c| {
        c.cluster = Some(mod_zorio_c2c::core::config::ClusterSettings::new(
            &format!("redis://127.0.0.1:{port}"),
            "here",
            "openapi-node-secret",
        ));
        c.cluster.as_mut().unwrap().node_url = Some("http://127.0.0.1:9".into());
    });
    let r = route(&w.app.http_state, &req(method, path));
    // A cluster node's /health, as documented.
    let health = route(&w.app.http_state, &Request::new("GET", "/health"));
    let _ = redis.kill();
    let _ = redis.wait();
    assert_eq!(health.status, 200);
    assert!(health.json_body()["cluster"]["nodes"].is_array());
    let d = doc();
    let pointer = openapi_doc::response_pointer("/health", "GET", 200);
    openapi_doc::check(&d, &pointer, &health.json_body()).unwrap_or_else(|e| panic!("{e}"));
    r
}

fn redis_installed() -> bool {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes the router answer `status` for this operation, the way a client would.
fn produce(method: &str, template: &str, status: u16) -> Response {
    let w = world();
    let s = &w.app.http_state;
    let path = concrete(template);
    let json_post = |body: &str| {
        req("POST", "/api/pbx/calls/click-to-call")
            .with_header("Content-Type", "application/json")
            .with_body(body.to_string())
    };
    if status == 401 {
        return route(s, &Request::new(method, &path));
    }
    let webhooks = template.starts_with("/api/pbx/webhooks");
    if webhooks && status == 503 {
        s.set_webhook_admin(None);
        return route(s, &req(method, &path));
    }
    if webhooks {
        if status == 404 {
            return route(s, &req(method, &path));
        }
        let w = world_with_dead_letters();
        let id = w.app.webhooks.dead_letters()[0].record.id.clone();
        return route(
            &w.app.http_state,
            &req(method, &path.replace("evt_missing", &id)),
        );
    }
    match (method, template, status) {
        ("POST", "/api/pbx/calls/click-to-call", 202) => route(s, &json_post(MODE1)),
        ("POST", "/api/pbx/calls/click-to-call", 400) => route(s, &json_post("{")),
        ("POST", "/api/pbx/calls/click-to-call", 409) => {
            route(s, &json_post(MODE1).with_header("Idempotency-Key", "k"));
            route(s, &json_post("{}").with_header("Idempotency-Key", "k"))
        }
        ("POST", "/api/pbx/calls/click-to-call", 413) => {
            route(s, &json_post(&format!("\"{}\"", "x".repeat(70_000))))
        }
        ("POST", "/api/pbx/calls/click-to-call", 415) => {
            route(s, &req("POST", &path).with_body(MODE1))
        }
        ("POST", "/api/pbx/calls/click-to-call", 422) => route(s, &json_post("{}")),
        ("POST", "/api/pbx/calls/click-to-call", 429) => {
            for _ in 0..10 {
                route(s, &json_post("{}"));
            }
            route(s, &json_post(MODE1))
        }
        ("POST", "/api/pbx/calls/click-to-call", 503) => {
            let mut c = (*w.app.engine.config()).clone();
            c.max_concurrent_calls = Some(0);
            w.app.engine.set_config(c);
            route(s, &json_post(MODE1))
        }
        ("GET", "/api/pbx/calls/{call_uuid}", 200)
        | ("DELETE", "/api/pbx/calls/{call_uuid}", 202) => {
            let call = place(&w);
            route(s, &req(method, &format!("/api/pbx/calls/{call}")))
        }
        (_, "/api/pbx/calls/{call_uuid}", 404) => route(s, &req(method, &path)),
        (_, "/api/pbx/calls/{call_uuid}", 503) => owner_unavailable(method, &path),
        ("GET", "/health", 400) => {
            // The server's own answer to a request it cannot read: a real socket.
            let t = common::start(|_| {});
            let mut c = common::Conn::open(t.addr);
            c.send_raw(b"GET /health HTTP/1.1\r\nHost t\r\n\r\n");
            let r = c.read();
            Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
                close: true,
                file: None,
            }
        }
        (_, "/api/pbx/calls/{call_uuid}/recording", 404) => route(s, &req(method, &path)),
        (_, "/api/pbx/calls/{call_uuid}/recording", _) => {
            let (call, ended) = recorded_call(&w, status != 409);
            let url = format!("/api/pbx/calls/{call}/recording");
            let r = req(method, &url);
            let r = match status {
                206 => r.with_header("Range", "bytes=0-9"),
                416 => r.with_header("Range", "bytes=99999999-"),
                304 => {
                    let etag = route(s, &req("GET", &url))
                        .header("ETag")
                        .unwrap()
                        .to_string();
                    r.with_header("If-None-Match", &etag)
                }
                _ => r,
            };
            let _ = ended;
            route(s, &r)
        }
        ("GET", "/health", 503) => {
            w.app.engine.shutdown(Duration::from_secs(2));
            route(s, &Request::new("GET", "/health"))
        }
        (_, _, 200) => route(s, &req(method, &path)),
        _ => panic!("documented {status} for {method} {template}: no scenario produces it"),
    }
}

/// A call placed with `record: true` on quick simulated people: ended
/// (hung up once bridged) when `ended`, else still up and recording.
fn recorded_call(w: &World, ended: bool) -> (String, bool) {
    w.sim.set_options(|o| {
        *o = SimOptions::demo_fast(Duration::from_millis(20), Duration::from_secs(30))
    });
    let r = route(
        &w.app.http_state,
        &req("POST", "/api/pbx/calls/click-to-call")
            .with_header("Content-Type", "application/json")
            .with_body(r#"{"from_extension":"1001","to_phone":"0987654321","record":true}"#),
    );
    let call = r.json_body()["data"]["call_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let uuid: uuid::Uuid = call.parse().unwrap();
    let wait = |state: &str| {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while w.app.engine.call(uuid).unwrap().state.as_str() != state {
            assert!(std::time::Instant::now() < until, "never {state}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait("bridged");
    if ended {
        std::thread::sleep(Duration::from_millis(300));
        w.app.engine.hangup(uuid).unwrap();
        wait("ended");
    }
    (call, ended)
}

#[test]
fn every_route_is_documented_and_every_operation_routed() {
    let d = doc();
    assert_eq!(d["openapi"], "3.1.0");
    let documented = operations(&d);
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.pattern.to_string()))
        .collect();
    assert_eq!(documented, routed);
    let w = world();
    for (method, template) in &documented {
        let r = route(&w.app.http_state, &req(method, &concrete(template)));
        let code = r.json_body()["error"]["code"].clone();
        assert!(
            code != "not_found" && code != "method_not_allowed",
            "{method} {template}: {r:?}"
        );
        // Security as documented: /health is open, the rest need the token.
        let op = &d["paths"][template][method.to_lowercase()];
        let open = op["security"].as_array().is_some_and(|s| s.is_empty());
        let anonymous = route(
            &w.app.http_state,
            &Request::new(method, &concrete(template)),
        );
        assert_eq!(anonymous.status == 401, !open, "{method} {template}");
    }
}

#[test]
fn every_documented_status_is_produced_with_its_headers() {
    let d = doc();
    let (mut checked, mut validated) = (0, 0);
    // Answers with no JSON body to validate: the metrics page and the file.
    let mut not_json: Vec<String> = Vec::new();
    for (method, template) in operations(&d) {
        let op = &d["paths"][&template][method.to_lowercase()];
        for (status, spec) in op["responses"].as_object().unwrap() {
            let status: u16 = status.parse().unwrap();
            if (template.as_str(), status) == ("/api/pbx/calls/{call_uuid}", 503)
                && !redis_installed()
            {
                eprintln!("SKIPPED: {method} {template} 503 needs redis-server");
                continue;
            }
            let r = produce(&method, &template, status);
            assert_eq!(r.status, status, "{method} {template}: {r:?}");
            let body = r.json_body();
            // The body as documented, and nothing undeclared in it.
            if spec["content"].get("application/json").is_some() {
                let pointer = openapi_doc::response_pointer(&template, &method, status);
                openapi_doc::check(&d, &pointer, &body).unwrap_or_else(|e| panic!("{e}"));
                let open = openapi_doc::open_objects(&d, &pointer);
                assert!(open.is_empty(), "objects not closed: {open:?}");
                validated += 1;
            } else {
                not_json.push(format!("{method} {template} {status}"));
            }
            if status >= 400 {
                let e = &body["error"];
                assert!(
                    e["code"].is_string() && e["message"].is_string() && e["fields"].is_array()
                );
            }
            let must_have_headers = matches!(status, 401 | 429);
            for h in spec["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(h, _)| h)
            {
                if must_have_headers {
                    assert!(
                        r.header(h).is_some(),
                        "{method} {template} {status}: no {h}"
                    );
                }
            }
            if (method.as_str(), template.as_str(), status)
                == ("POST", "/api/pbx/calls/click-to-call", 202)
            {
                for h in [
                    "Location",
                    "RateLimit-Limit",
                    "RateLimit-Remaining",
                    "RateLimit-Reset",
                ] {
                    assert!(r.header(h).is_some(), "202 without {h}");
                }
                let required: BTreeSet<&str> = d["components"]["schemas"]["ClickToCallAccepted"]
                    ["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                let got: BTreeSet<&str> = body["data"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                assert_eq!(got, required);
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked}");
    assert_eq!(
        not_json,
        [
            "GET /api/pbx/calls/{call_uuid}/recording 200",
            "GET /api/pbx/calls/{call_uuid}/recording 206",
            "GET /api/pbx/calls/{call_uuid}/recording 304",
            "GET /metrics 200",
        ],
        "{validated} of {checked} validated"
    );
    assert_eq!(validated + not_json.len(), checked);
}

#[test]
fn webhooks_section_names_every_event_with_signing_headers() {
    let d = doc();
    let hooks = d["webhooks"].as_object().unwrap();
    let names: BTreeSet<&str> = hooks.keys().map(String::as_str).collect();
    let types: BTreeSet<&str> = events::ALL_TYPES.into_iter().collect();
    assert_eq!(names, types);
    for (name, hook) in hooks {
        let op = &hook["post"];
        let headers: BTreeSet<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for h in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            assert!(headers.contains(h), "{name}: {h}");
        }
        // Any event, told apart by `type`: this one's schema by the mapping.
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["$ref"], "#/components/schemas/Event");
        let target = d["components"]["schemas"]["Event"]["discriminator"]["mapping"][name]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: not in the discriminator's mapping"));
        let event = d.pointer(target.strip_prefix('#').unwrap()).unwrap();
        assert_eq!(event["properties"]["type"]["const"], name.as_str());
        assert_eq!(
            event["required"],
            json!(["id", "type", "created_at", "data"])
        );
        assert_eq!(event["additionalProperties"], false);
        let open = openapi_doc::open_objects(&d, &openapi_doc::webhook_pointer(name));
        assert!(open.is_empty(), "{name}: objects not closed: {open:?}");
    }
    // One schema per event type, each in the union and the mapping.
    let event = &d["components"]["schemas"]["Event"];
    assert_eq!(event["discriminator"]["propertyName"], "type");
    let mapped: BTreeSet<&str> = event["discriminator"]["mapping"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    let union: BTreeSet<&str> = event["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["$ref"].as_str().unwrap())
        .collect();
    assert_eq!(mapped, union);
    assert_eq!(union.len(), events::ALL_TYPES.len());
}

/// The validator is not lenient: an undeclared field, a wrong type, a
/// value outside an enum and a missing field all fail.
#[test]
fn the_validator_refuses_what_the_document_does_not_declare() {
    let d = doc();
    let w = world();
    let call = place(&w);
    let r = route(
        &w.app.http_state,
        &req("GET", &format!("/api/pbx/calls/{call}")),
    );
    let pointer = openapi_doc::response_pointer("/api/pbx/calls/{call_uuid}", "GET", 200);
    let good = r.json_body();
    openapi_doc::check(&d, &pointer, &good).unwrap();
    let spoil = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        openapi_doc::check(&d, &pointer, &b)
    };
    assert!(spoil(&|b| b["data"]["surprise"] = json!(1)).is_err());
    assert!(spoil(&|b| b["data"]["legs"]["A"]["surprise"] = json!(1)).is_err());
    assert!(spoil(&|b| b["data"]["trunk_id"] = json!("4")).is_err());
    assert!(spoil(&|b| b["data"]["status"] = json!("dancing")).is_err());
    assert!(spoil(&|b| b["data"]["created_at"] = json!("yesterday")).is_err());
    assert!(spoil(&|b| {
        b["data"].as_object_mut().unwrap().remove("hangup_by");
    })
    .is_err());
}
