//! End to end against a real FreeSWITCH: the freshly built module loaded into
//! a FreeSWITCH started on a throwaway loopback config, SIP parties played by
//! sipp, everything driven and observed over the event socket (ESL).
//!
//! Runs when `FREESWITCH_BIN` names a FreeSWITCH binary (modules from
//! `FREESWITCH_MOD_DIR`, default `<bin>/../lib/freeswitch/mod`) and sipp is
//! found (`SIPP_BIN` or `sipp` on PATH); otherwise prints `SKIPPED: <why>`.
//! `ZORIO_C2C_SO` overrides the module to test. Build the module against that
//! switch's headers (`PKG_CONFIG_PATH=<prefix>/lib/pkgconfig cargo build --release`).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- setup ---

struct Env {
    fs_bin: PathBuf,
    mod_dir: PathBuf,
    sipp: PathBuf,
    module: PathBuf,
}

fn find_env() -> Result<Env, String> {
    let fs_bin = PathBuf::from(
        std::env::var_os("FREESWITCH_BIN")
            .ok_or("FREESWITCH_BIN is not set (path to a FreeSWITCH binary)")?,
    );
    if !fs_bin.exists() {
        return Err(format!(
            "FREESWITCH_BIN={} does not exist",
            fs_bin.display()
        ));
    }
    let mod_dir = std::env::var_os("FREESWITCH_MOD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fs_bin.parent().unwrap().join("../lib/freeswitch/mod"));
    if !mod_dir.join("mod_sofia.so").exists() {
        return Err(format!(
            "no mod_sofia.so in {} (set FREESWITCH_MOD_DIR)",
            mod_dir.display()
        ));
    }
    let sipp = std::env::var_os("SIPP_BIN")
        .map(PathBuf::from)
        .or_else(|| which("sipp"))
        .ok_or("sipp not found (set SIPP_BIN or put sipp on PATH)")?;
    let module = std::env::var_os("ZORIO_C2C_SO")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.join("libmod_zorio_c2c.so"))
        })
        .filter(|p| p.exists())
        .ok_or("libmod_zorio_c2c.so not built (cargo build --release)")?;
    Ok(Env {
        fs_bin,
        mod_dir,
        sipp,
        module,
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.exists())
    })
}

/// Ports of this run (spread by pid so parallel runs do not collide).
#[derive(Clone, Copy)]
struct Ports {
    sip: u16,
    esl: u16,
    agent: u16,
    agent_late: u16,
    carrier_ok: u16,
    carrier_503: u16,
    http: u16,
    xmlrpc: u16,
    rtp_start: u16,
}

impl Ports {
    fn new() -> Ports {
        let base = 31000 + (std::process::id() % 400) as u16 * 20;
        Ports {
            sip: base,
            esl: base + 1,
            agent: base + 2,
            agent_late: base + 3,
            carrier_ok: base + 4,
            carrier_503: base + 5,
            http: base + 6,
            xmlrpc: base + 7,
            rtp_start: 45000 + (std::process::id() % 200) as u16 * 60,
        }
    }
}

fn write(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(path, text).unwrap();
}

fn freeswitch_xml(p: Ports, spool: &Path) -> String {
    format!(
        r#"<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="set" data="domain=c2c.test"/>
  <section name="configuration">
    <configuration name="switch.conf">
      <settings>
        <param name="max-sessions" value="200"/>
        <param name="sessions-per-second" value="100"/>
        <param name="loglevel" value="debug"/>
        <param name="rtp-start-port" value="{rtp0}"/>
        <param name="rtp-end-port" value="{rtp1}"/>
      </settings>
    </configuration>
    <configuration name="modules.conf">
      <modules>
        <load module="mod_console"/>
        <load module="mod_logfile"/>
        <load module="mod_event_socket"/>
        <load module="mod_sofia"/>
        <load module="mod_loopback"/>
        <load module="mod_commands"/>
        <load module="mod_dptools"/>
        <load module="mod_dialplan_xml"/>
        <load module="mod_xml_rpc"/>
        <load module="mod_zorio_c2c"/>
      </modules>
    </configuration>
    <configuration name="console.conf">
      <mappings><map name="all" value="console,debug,info,notice,warning,err,crit,alert"/></mappings>
      <settings><param name="colorize" value="false"/><param name="loglevel" value="info"/></settings>
    </configuration>
    <configuration name="logfile.conf">
      <profiles><profile name="default">
        <settings><param name="rollover" value="104857600"/></settings>
        <mappings><map name="all" value="debug,info,notice,warning,err,crit,alert"/></mappings>
      </profile></profiles>
    </configuration>
    <configuration name="event_socket.conf">
      <settings>
        <param name="nat-map" value="false"/>
        <param name="listen-ip" value="127.0.0.1"/>
        <param name="listen-port" value="{esl}"/>
        <param name="password" value="ClueCon"/>
        <param name="apply-inbound-acl" value="loopback.auto"/>
      </settings>
    </configuration>
    <configuration name="xml_rpc.conf">
      <settings>
        <param name="http-port" value="{xmlrpc}"/>
        <param name="auth-realm" value="c2c"/>
        <param name="auth-user" value="crm"/>
        <param name="auth-pass" value="secret"/>
      </settings>
    </configuration>
    <configuration name="sofia.conf">
      <global_settings><param name="log-level" value="0"/></global_settings>
      <profiles>
        <profile name="c2c">
          <gateways>
            <gateway name="poc">
              <param name="proxy" value="127.0.0.1:{c503}"/>
              <param name="register" value="false"/>
              <param name="username" value="c2c"/>
              <param name="password" value="unused"/>
              <param name="caller-id-in-from" value="true"/>
              <param name="ping" value="0"/>
            </gateway>
            <gateway name="backup">
              <param name="proxy" value="127.0.0.1:{cok}"/>
              <param name="register" value="false"/>
              <param name="username" value="c2c"/>
              <param name="password" value="unused"/>
              <param name="caller-id-in-from" value="true"/>
              <param name="ping" value="0"/>
            </gateway>
          </gateways>
          <settings>
            <param name="dialplan" value="XML"/>
            <param name="context" value="default"/>
            <param name="codec-prefs" value="PCMU,PCMA"/>
            <param name="sip-ip" value="127.0.0.1"/>
            <param name="rtp-ip" value="127.0.0.1"/>
            <param name="ext-sip-ip" value="127.0.0.1"/>
            <param name="ext-rtp-ip" value="127.0.0.1"/>
            <param name="sip-port" value="{sip}"/>
            <param name="auth-calls" value="false"/>
            <param name="apply-inbound-acl" value="loopback.auto"/>
            <param name="manage-presence" value="false"/>
            <param name="rtp-timer-name" value="soft"/>
          </settings>
        </profile>
      </profiles>
    </configuration>
    <configuration name="zorio_c2c.conf">
      <settings>
        <param name="a-leg-timeout" value="5"/>
        <param name="b-leg-timeout" value="10"/>
        <param name="agent-caller-id-name" value="Click-to-call"/>
        <param name="dialplan" value="XML"/>
        <param name="dialplan-context" value="default"/>
      </settings>
      <http>
        <param name="enabled" value="true"/>
        <param name="listen" value="127.0.0.1:{http}"/>
      </http>
      <tokens><token name="crm" value="e2e-token-0123456789"/></tokens>
      <webhooks><param name="spool-dir" value="{spool}"/></webhooks>
      <trunks>
        <trunk id="4" name="POC" gateway="poc" status="active" cost="0.010"/>
        <trunk id="5" name="BACKUP" gateway="backup" status="active" cost="0.020"/>
      </trunks>
      <lcr><route prefix="0" trunks="4,5"/></lcr>
      <caller-ids><number value="0900000020" trunk="5"/></caller-ids>
    </configuration>
  </section>
  <section name="directory">
    <domain name="c2c.test">
      <users>
        <user id="1001">
          <params>
            <param name="dial-string" value="sofia/c2c/sip:1001@127.0.0.1:{agent}"/>
          </params>
          <variables><variable name="outbound_caller_id_number" value="0900000021"/></variables>
        </user>
        <user id="1002">
          <params>
            <param name="dial-string" value="sofia/c2c/sip:1002@127.0.0.1:{late}"/>
          </params>
        </user>
        <user id="1003">
          <params>
            <param name="dial-string" value="sofia/c2c/sip:1003@127.0.0.1:{agent}"/>
            <param name="zorio_c2c_status" value="inactive"/>
          </params>
        </user>
      </users>
    </domain>
  </section>
  <section name="dialplan">
    <context name="default">
      <extension name="park"><condition field="destination_number" expression=".*">
        <action application="park"/>
      </condition></extension>
    </context>
  </section>
</document>
"#,
        rtp0 = p.rtp_start,
        rtp1 = p.rtp_start + 39,
        esl = p.esl,
        sip = p.sip,
        c503 = p.carrier_503,
        cok = p.carrier_ok,
        agent = p.agent,
        late = p.agent_late,
        spool = spool.display(),
        http = p.http,
        xmlrpc = p.xmlrpc,
    )
}

// ---------------------------------------------------------------- sipp ---

const RESPONSE_HEAD: &str = "[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContact: <sip:[local_ip]:[local_port];transport=[transport]>\n";

fn ok_with_sdp() -> String {
    format!(
        "<send retrans=\"500\"><![CDATA[\nSIP/2.0 200 OK\n{RESPONSE_HEAD}Content-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n\n]]></send>\n"
    )
}

fn ringing() -> String {
    format!(
        "<send><![CDATA[\nSIP/2.0 180 Ringing\n{RESPONSE_HEAD}Content-Length: 0\n\n]]></send>\n"
    )
}

const BYE_OK: &str = "<recv request=\"BYE\"/>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n";

/// Rings, answers after `answer_after_ms`, waits for BYE.
fn scenario_answers(name: &str, answer_after_ms: u64) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"{name}\">\n<recv request=\"INVITE\"/>\n{ring}<pause milliseconds=\"{answer_after_ms}\"/>\n{ok}<recv request=\"ACK\"/>\n{BYE_OK}</scenario>\n",
        ring = ringing(),
        ok = ok_with_sdp(),
    )
}

/// Rings and never answers: waits for CANCEL, answers it, ends the INVITE with 487.
fn scenario_never_answers() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"never answers\">\n<recv request=\"INVITE\"/>\n{ring}<recv request=\"CANCEL\"/>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n<send><![CDATA[\nSIP/2.0 487 Request Terminated\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag[call_number]\n[last_Call-ID:]\nCSeq: [last_cseq_number] INVITE\nContent-Length: 0\n\n]]></send>\n<recv request=\"ACK\"/>\n</scenario>\n",
        ring = ringing(),
    )
}

/// Answers every INVITE with 503.
fn scenario_503() -> String {
    "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"carrier 503\">\n<recv request=\"INVITE\"/>\n<send><![CDATA[\nSIP/2.0 503 Service Unavailable\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n<recv request=\"ACK\"/>\n</scenario>\n".to_string()
}

struct Sipp {
    child: Child,
    log: PathBuf,
}

impl Sipp {
    fn start(env: &Env, dir: &Path, name: &str, scenario: &str, port: u16, media: u16) -> Sipp {
        let sf = dir.join(format!("{name}.xml"));
        write(&sf, scenario);
        let log = dir.join(format!("{name}_messages.log"));
        let out = fs::File::create(dir.join(format!("{name}.out"))).unwrap();
        let child = Command::new(&env.sipp)
            .args(["-sf"])
            .arg(&sf)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media.to_string()])
            .args(["-trace_msg", "-message_file"])
            .arg(&log)
            .args(["-nostdin", "-nr", "-max_recv_loops", "1000"])
            .current_dir(dir)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start sipp");
        Sipp { child, log }
    }

    /// Every SIP message sipp logged so far.
    fn messages(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The received INVITEs (full text), in order.
    fn invites(&self) -> Vec<String> {
        self.messages()
            .split("----------------------------------------------- ")
            .filter(|m| m.contains("message received") && m.contains("\nINVITE sip:"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----------------------------------------------------------------- ESL ---

struct Esl {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

type Headers = HashMap<String, String>;

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_headers(text: &str, decode: bool) -> Headers {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| {
            (
                k.to_string(),
                if decode { url_decode(v) } else { v.to_string() },
            )
        })
        .collect()
}

impl Esl {
    fn connect(port: u16, within: Duration) -> Option<Esl> {
        let until = Instant::now() + within;
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                let mut esl = Esl {
                    reader: BufReader::new(s.try_clone().unwrap()),
                    writer: s,
                };
                let (h, _) = esl.read()?;
                if h.get("Content-Type").map(String::as_str) == Some("auth/request") {
                    esl.send("auth ClueCon");
                    let (h, _) = esl.read()?;
                    if h.get("Reply-Text").is_some_and(|r| r.starts_with("+OK")) {
                        return Some(esl);
                    }
                }
                return None;
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn send(&mut self, cmd: &str) {
        self.writer
            .write_all(format!("{cmd}\n\n").as_bytes())
            .expect("write to ESL");
    }

    fn read(&mut self) -> Option<(Headers, String)> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line == "\n" {
                if head.is_empty() {
                    continue;
                }
                break;
            }
            head.push_str(&line);
        }
        let h = parse_headers(&head, false);
        let mut body = String::new();
        if let Some(n) = h
            .get("Content-Length")
            .and_then(|n| n.trim().parse::<usize>().ok())
        {
            let mut buf = vec![0; n];
            self.reader.read_exact(&mut buf).ok()?;
            body = String::from_utf8_lossy(&buf).into_owned();
        }
        Some((h, body))
    }

    fn api(&mut self, cmd: &str) -> String {
        self.send(&format!("api {cmd}"));
        loop {
            let (h, body) = self.read().expect("ESL reply");
            if h.get("Content-Type").map(String::as_str) == Some("api/response") {
                return body;
            }
        }
    }
}

/// Events seen on a subscribed ESL connection, in FreeSWITCH's order.
#[derive(Clone, Default)]
struct EventLog(Arc<Mutex<Vec<Headers>>>);

impl EventLog {
    fn listen(port: u16) -> EventLog {
        let log = EventLog::default();
        let mut esl = Esl::connect(port, Duration::from_secs(5)).expect("ESL events connection");
        esl.send("event plain CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE CUSTOM zorio_c2c::call.ringing zorio_c2c::call.answered zorio_c2c::call.bridged zorio_c2c::call.attempt_failed zorio_c2c::call.agent_missed zorio_c2c::call.hangup");
        let sink = log.clone();
        std::thread::spawn(move || {
            while let Some((h, body)) = esl.read() {
                if h.get("Content-Type").map(String::as_str) == Some("text/event-plain") {
                    let (head, ebody) = body.split_once("\n\n").unwrap_or((&body, ""));
                    let mut ev = parse_headers(head, true);
                    ev.insert("_body".into(), ebody.to_string());
                    sink.0.lock().unwrap().push(ev);
                }
            }
        });
        log
    }

    fn all(&self) -> Vec<Headers> {
        self.0.lock().unwrap().clone()
    }

    /// Index of the first event named `name` (or CUSTOM subclass) about `uuid`.
    fn position(&self, name: &str, uuid: &str) -> Option<usize> {
        self.all().iter().position(|e| {
            let n = e
                .get("Event-Subclass")
                .filter(|_| e.get("Event-Name").map(String::as_str) == Some("CUSTOM"))
                .or_else(|| e.get("Event-Name"));
            n.map(String::as_str) == Some(name)
                && (e.get("Unique-ID").map(String::as_str) == Some(uuid)
                    || e.get("Zorio-C2C-Call-UUID").map(String::as_str) == Some(uuid)
                    || e.get("Other-Leg-Unique-ID").map(String::as_str) == Some(uuid))
        })
    }
}

// ----------------------------------------------------------- FreeSWITCH ---

struct FreeSwitch {
    child: Child,
    dir: PathBuf,
}

impl Drop for FreeSwitch {
    fn drop(&mut self) {
        if let Some(mut esl) = Esl::connect(Ports::new().esl, Duration::from_millis(500)) {
            esl.send("api fsctl shutdown");
        }
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        println!(
            "(FreeSWITCH killed after 15 s; logs in {})",
            self.dir.display()
        );
    }
}

fn start_freeswitch(env: &Env, dir: &Path, ports: Ports) -> FreeSwitch {
    let conf = dir.join("conf");
    write(
        &conf.join("freeswitch.xml"),
        &freeswitch_xml(ports, &dir.join("spool")),
    );
    let moddir = dir.join("mod");
    fs::create_dir_all(&moddir).unwrap();
    for e in fs::read_dir(&env.mod_dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "so") {
            let _ = std::os::unix::fs::symlink(&p, moddir.join(p.file_name().unwrap()));
        }
    }
    fs::copy(&env.module, moddir.join("mod_zorio_c2c.so")).unwrap();
    let mut cmd = Command::new(&env.fs_bin);
    cmd.args(["-nonat", "-nonatmap", "-nf", "-nc"]);
    for (flag, sub) in [
        ("-conf", "conf"),
        ("-log", "log"),
        ("-db", "db"),
        ("-run", "run"),
        ("-temp", "temp"),
        ("-mod", "mod"),
        ("-storage", "storage"),
        ("-cache", "cache"),
        ("-recordings", "recordings"),
    ] {
        let d = dir.join(sub);
        fs::create_dir_all(&d).unwrap();
        cmd.arg(flag).arg(d);
    }
    let out = fs::File::create(dir.join("freeswitch.out")).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("start FreeSWITCH");
    FreeSwitch {
        child,
        dir: dir.to_path_buf(),
    }
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json_of(reply: &str) -> serde_json::Value {
    let start = reply
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {reply:?}"));
    serde_json::from_str(&reply[start..]).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

fn place(esl: &mut Esl, body: serde_json::Value) -> serde_json::Value {
    let reply = esl.api(&format!("c2c {body}"));
    assert!(reply.starts_with("+OK"), "c2c refused: {reply}");
    json_of(&reply)["data"].clone()
}

fn status(esl: &mut Esl, call: &str) -> serde_json::Value {
    let reply = esl.api(&format!("c2c status {call}"));
    assert!(reply.starts_with("+OK"), "c2c status: {reply}");
    json_of(&reply)
}

fn wait_state(esl: &mut Esl, call: &str, state: &str, within: Duration) -> serde_json::Value {
    let until = Instant::now() + within;
    loop {
        let s = status(esl, call);
        if s["status"] == state {
            return s;
        }
        assert!(
            Instant::now() < until,
            "call {call} never reached {state}: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP/1.1 request (`Connection: close`); the whole answer as text.
fn http(port: u16, method: &str, path: &str, auth: &str, body: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return "connection refused".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// `GET path` with our Bearer token to the module's own listener.
fn http_get(port: u16, path: &str, token: &str) -> String {
    http(port, "GET", path, &format!("Bearer {token}"), "")
}

/// mod_xml_rpc's Basic auth for crm:secret.
const XMLRPC_AUTH: &str = "Basic Y3JtOnNlY3JldA==";

fn step(name: &str) {
    println!("ok: {name}");
}

// ----------------------------------------------------------------- test ---

#[test]
fn click_to_call_against_a_real_freeswitch() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let ports = Ports::new();
    let dir = std::env::temp_dir().join(format!("zorio-c2c-e2e-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    println!("e2e dir: {}", dir.display());
    let version = Command::new(&env.fs_bin)
        .arg("-version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("{version}");
    println!("module under test: {}", env.module.display());
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    // `cargo test` rebuilds the rlib but not the cdylib: a newer rlib means a stale .so.
    let rlib = env
        .module
        .with_file_name("deps")
        .join("libmod_zorio_c2c.rlib");
    if let (Some(so), Some(rlib)) = (modified(&env.module), modified(&rlib)) {
        if so + Duration::from_secs(5) < rlib {
            println!(
                "WARNING: the module is older than the library; run `cargo build --release` first"
            );
        }
    }

    let agent = Sipp::start(
        &env,
        &dir,
        "agent",
        &scenario_answers("agent", 1500),
        ports.agent,
        ports.rtp_start + 40,
    );
    let late = Sipp::start(
        &env,
        &dir,
        "agent_no_answer",
        &scenario_never_answers(),
        ports.agent_late,
        ports.rtp_start + 44,
    );
    let carrier = Sipp::start(
        &env,
        &dir,
        "carrier_ok",
        &scenario_answers("carrier", 300),
        ports.carrier_ok,
        ports.rtp_start + 48,
    );
    let carrier503 = Sipp::start(
        &env,
        &dir,
        "carrier_503",
        &scenario_503(),
        ports.carrier_503,
        ports.rtp_start + 52,
    );

    let freeswitch = start_freeswitch(&env, &dir, ports);
    let mut esl = Esl::connect(ports.esl, Duration::from_secs(60)).unwrap_or_else(|| {
        panic!(
            "no ESL on {}; see {}/freeswitch.out",
            ports.esl,
            dir.display()
        )
    });
    wait_for("FreeSWITCH ready", Duration::from_secs(30), || {
        esl.api("status").contains("UP")
    });
    assert_eq!(
        esl.api("module_exists mod_zorio_c2c").trim(),
        "true",
        "module not loaded; see {}/log",
        dir.display()
    );
    wait_for("sofia profile", Duration::from_secs(20), || {
        esl.api("sofia status gateway backup").contains("backup")
    });
    step("FreeSWITCH up with mod_zorio_c2c loaded");
    let r = http_get(ports.http, "/api/pbx/caller-ids", "e2e-token-0123456789");
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("0900000020"),
        "{r}"
    );
    let r = esl.api("pbx GET /api/pbx/caller-ids");
    assert!(r.starts_with("200 ") && r.contains("0900000020"), "{r}");
    let mut r = String::new();
    wait_for("mod_xml_rpc", Duration::from_secs(10), || {
        r = http(ports.xmlrpc, "GET", "/api/pbx/caller-ids", XMLRPC_AUTH, "");
        r.starts_with("HTTP/1.1 200")
    });
    assert!(
        r.contains("X-PBX-Status: 200") && r.contains("0900000020"),
        "{r}"
    );
    step("the module's HTTP API answers on its own listener, through `pbx GET /api/pbx/caller-ids`, and through mod_xml_rpc (/api/pbx/caller-ids, X-PBX-Status: 200)");
    let events = EventLog::listen(ports.esl);
    std::thread::sleep(Duration::from_millis(300));

    // Refusals come straight from the core through fs_cli.
    let r = esl.api("c2c 1003 0987654321");
    assert!(r.starts_with("-ERR extension_inactive"), "{r}");
    let r = esl.api("c2c 1999 0987654321");
    assert!(r.starts_with("-ERR extension_not_found"), "{r}");
    let r = esl.api("c2c");
    assert!(r.starts_with("-USAGE"), "{r}");
    step("c2c answers usage, unknown and inactive extensions from the directory");

    // 1. The main flow: agent rings, answers, customer dialled (503 on POC,
    //    failover to BACKUP), bridged; header and caller id on the INVITE.
    // FreeSWITCH itself refuses channel variable values holding `${` (it would
    // silently drop the header): the request is refused with a field error instead.
    let hostile = "a,b}c'd^^:e|f {origination_uuid=x}[g]";
    let r = esl.api(
        r#"c2c {"from_extension":"1001","to_phone":"0987654321","headers":{"Dollar":"${uuid}"}}"#,
    );
    assert!(
        r.starts_with("-ERR validation_failed") && r.contains("headers.Dollar (invalid_value)"),
        "{r}"
    );
    let call = place(
        &mut esl,
        serde_json::json!({
            "from_extension": "1001", "to_phone": "0987654321", "caller_id": "0900000020",
            "headers": {"CRM-Lead-Id": "LEAD-42", "Hostile": hostile}
        }),
    );
    let (call_uuid, a, b) = (
        call["call_uuid"].as_str().unwrap().to_string(),
        call["a_leg_uuid"].as_str().unwrap().to_string(),
        call["b_leg_uuid"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        call["routing_mode"], "dialplan_default",
        "LCR picks the trunks"
    );
    let s = wait_state(&mut esl, &call_uuid, "bridged", Duration::from_secs(20));
    let ev = &events;
    wait_for("CHANNEL_BRIDGE", Duration::from_secs(5), || {
        ev.position("CHANNEL_BRIDGE", &a).is_some() || ev.position("CHANNEL_BRIDGE", &b).is_some()
    });
    let a_ring = ev
        .position("CHANNEL_PROGRESS", &a)
        .or_else(|| ev.position("CHANNEL_PROGRESS_MEDIA", &a))
        .expect("A-leg progress");
    let a_answer = ev.position("CHANNEL_ANSWER", &a).expect("A-leg answer");
    let b_create = ev.position("CHANNEL_CREATE", &b).expect("B-leg created");
    assert!(a_ring < a_answer, "agent rang before answering");
    assert_eq!(agent.invites().len(), 1, "the agent's phone got one INVITE");
    assert!(a_answer < b_create, "customer dialled only after the agent answered (A answer #{a_answer}, B create #{b_create})");
    step("agent rings first (CHANNEL_PROGRESS of A before its CHANNEL_ANSWER)");
    step(
        "customer dialled only after the agent answered (A CHANNEL_ANSWER before B CHANNEL_CREATE)",
    );
    // `show channels` reads the core database, written a moment later.
    let mut channels = String::new();
    wait_for("both legs in show channels", Duration::from_secs(5), || {
        channels = esl.api("show channels as json");
        let ch = json_of(&channels);
        let uuids: Vec<String> = ch["rows"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|c| c["uuid"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        uuids.contains(&a) && uuids.contains(&b)
    });
    let bridged = esl.api(&format!("uuid_getvar {a} bridge_uuid"));
    assert!(
        bridged.trim() == b || esl.api(&format!("uuid_getvar {b} bridge_uuid")).trim() == a,
        "legs bridged to each other: {bridged}"
    );
    step("bridged: both legs up in show channels, CHANNEL_BRIDGE seen, bridge_uuid links them");
    let attempts = s["attempts"].to_string();
    assert_eq!(s["trunk_name"], "BACKUP", "{s}");
    assert_eq!(carrier503.invites().len(), 1, "POC (503) tried once");
    let invites = carrier.invites();
    assert_eq!(invites.len(), 1, "BACKUP reached once");
    let inv = &invites[0];
    assert!(
        inv.contains("X-CRM-Lead-Id: LEAD-42"),
        "X- header on the customer INVITE:\n{inv}"
    );
    assert!(
        inv.contains(&format!("X-Hostile: {hostile}")),
        "hostile header value verbatim:\n{inv}"
    );
    assert_eq!(
        esl.api("uuid_exists x").trim(),
        "false",
        "no channel named by an injected origination_uuid"
    );
    let from = inv.lines().find(|l| l.starts_with("From:")).unwrap_or("");
    assert!(from.contains("0900000020"), "caller id in From: {from}");
    assert_eq!(esl.api(&format!("uuid_exists {b}")).trim(), "true");
    step(&format!(
        "failover: POC answered 503, BACKUP connected (attempts {attempts})"
    ));
    step(&format!(
        "customer INVITE carries X-CRM-Lead-Id: LEAD-42 and X-Hostile: {hostile} verbatim; a ${{uuid}} value refused with 422 headers.Dollar; {from}"
    ));
    assert!(
        ev.position("zorio_c2c::call.bridged", &call_uuid).is_some(),
        "CUSTOM zorio_c2c::call.bridged fired"
    );
    step("CUSTOM events zorio_c2c::call.* fired");
    let r = esl.api(&format!("c2c hangup {call_uuid}"));
    assert!(r.starts_with("+OK"), "{r}");
    let s = wait_state(&mut esl, &call_uuid, "ended", Duration::from_secs(10));
    assert_eq!(s["outcome"], "completed", "{s}");
    step("c2c hangup ends the bridged call (outcome completed)");

    // 2. Agent never answers: no customer INVITE.
    let before = carrier.invites().len() + carrier503.invites().len();
    let call = place(
        &mut esl,
        serde_json::json!({"from_extension": "1002", "to_phone": "0987654321"}),
    );
    let call_uuid = call["call_uuid"].as_str().unwrap().to_string();
    let s = wait_state(&mut esl, &call_uuid, "ended", Duration::from_secs(15));
    assert_eq!(s["outcome"], "agent_no_answer", "{s}");
    let agent_end = format!(
        "{} / SIP {}",
        s["legs"]["A"]["hangup_cause"], s["legs"]["A"]["sip_code"]
    );
    assert_eq!(late.invites().len(), 1, "the agent was rung");
    assert_eq!(
        carrier.invites().len() + carrier503.invites().len(),
        before,
        "no customer dialled"
    );
    assert!(
        late.messages().contains("CANCEL sip:"),
        "the agent's ringing was cancelled"
    );
    step(&format!("agent no-answer: CANCEL after a-leg-timeout, customer never dialled (outcome agent_no_answer, A-leg {agent_end})"));

    // 2b. c2c hangup while the agent's phone rings: cancelled at once.
    let call = place(
        &mut esl,
        serde_json::json!({"from_extension": "1002", "to_phone": "0987654321"}),
    );
    let call_uuid = call["call_uuid"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let r = esl.api(&format!("c2c hangup {call_uuid}"));
    assert!(r.starts_with("+OK"), "{r}");
    let s = wait_state(&mut esl, &call_uuid, "ended", Duration::from_secs(3));
    assert_eq!(s["outcome"], "cancelled", "{s}");
    step(&format!(
        "c2c hangup while the agent rings: cancelled in {:?}",
        t.elapsed()
    ));

    // 3. Reload 20 times with calls in flight (a bridged one and ringing ones).
    let keep = place(
        &mut esl,
        serde_json::json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_id": 5}),
    );
    assert_eq!(
        keep["caller_id"], "0900000021",
        "the extension's outbound_caller_id_number from the directory"
    );
    let keep_a = keep["a_leg_uuid"].as_str().unwrap().to_string();
    let keep_b = keep["b_leg_uuid"].as_str().unwrap().to_string();
    wait_state(
        &mut esl,
        keep["call_uuid"].as_str().unwrap(),
        "bridged",
        Duration::from_secs(15),
    );
    let started = Instant::now();
    for i in 0..20 {
        let body = r#"{"from_extension": "1002", "to_phone": "0987654321"}"#;
        match i % 3 {
            0 => {
                let r = esl.api("c2c 1002 0987654321");
                assert!(r.starts_with("+OK"), "reload round {i}: {r}");
            }
            1 => {
                let r = esl.api(&format!("pbx POST /api/pbx/calls/click-to-call {body}"));
                assert!(r.starts_with("202 "), "reload round {i}: {r}");
            }
            _ => {
                let r = http(
                    ports.xmlrpc,
                    "POST",
                    "/api/pbx/calls/click-to-call",
                    XMLRPC_AUTH,
                    body,
                );
                assert!(
                    r.contains("X-PBX-Status: 202"),
                    "reload round {i} via mod_xml_rpc: {r}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(150));
        let r = esl.api("reload mod_zorio_c2c");
        assert!(r.contains("+OK"), "reload round {i}: {r}");
        assert_eq!(
            esl.api("module_exists mod_zorio_c2c").trim(),
            "true",
            "round {i}"
        );
    }
    let took = started.elapsed();
    assert!(esl.api("status").contains("UP"));
    let r = http_get(ports.http, "/api/pbx/caller-ids", "e2e-token-0123456789");
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "HTTP listener back after 20 reloads: {r}"
    );
    assert!(
        esl.api("c2c status").starts_with("+OK 0 calls"),
        "a fresh engine after reload"
    );
    assert_eq!(
        esl.api(&format!("uuid_exists {keep_a}")).trim(),
        "true",
        "bridged call survives reloads"
    );
    assert_eq!(esl.api(&format!("uuid_exists {keep_b}")).trim(), "true");
    let call = place(
        &mut esl,
        serde_json::json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_name": "BACKUP"}),
    );
    let call_uuid = call["call_uuid"].as_str().unwrap().to_string();
    wait_state(&mut esl, &call_uuid, "bridged", Duration::from_secs(15));
    esl.api(&format!("c2c hangup {call_uuid}"));
    wait_state(&mut esl, &call_uuid, "ended", Duration::from_secs(10));
    esl.api(&format!("uuid_kill {keep_a}"));
    wait_for("ringing legs cancelled", Duration::from_secs(10), || {
        !esl.api("show channels").contains("1002@")
    });
    step(&format!("reload mod_zorio_c2c x20 with calls in flight in {took:?}: no crash, no wedge, bridged call kept, next call bridged (calls placed via c2c, pbx and mod_xml_rpc)"));
    // 4. A bad config is refused whole; the old one stays.
    let conf = dir.join("conf/freeswitch.xml");
    let good = fs::read_to_string(&conf).unwrap();
    fs::write(&conf, good.replace("<trunk id=\"5\"", "<trunk id=\"4\"")).unwrap();
    esl.api("reloadxml");
    let r = esl.api("c2c reload");
    assert!(
        r.starts_with("-ERR config_invalid trunks/trunk[2]@id"),
        "{r}"
    );
    let r = esl.api("reload mod_zorio_c2c");
    assert!(
        r.contains("-ERR loading module"),
        "bad config refused at load: {r}"
    );
    assert_eq!(esl.api("module_exists mod_zorio_c2c").trim(), "false");
    let log = fs::read_to_string(dir.join("log/freeswitch.log")).unwrap_or_default();
    let why = log
        .lines()
        .rev()
        .find(|l| l.contains("mod_zorio_c2c not loaded"))
        .unwrap_or("")
        .to_string();
    assert!(
        why.contains("trunks/trunk[2]@id"),
        "the log names the element: {why}"
    );
    fs::write(&conf, good).unwrap();
    esl.api("reloadxml");
    let r = esl.api("load mod_zorio_c2c");
    assert!(r.contains("+OK"), "{r}");
    step("bad config: c2c reload keeps the old one, load refuses (naming trunks/trunk[2]@id), good config loads again");
    println!("e2e: all steps passed against {version}");
    drop(esl);
    drop(freeswitch);
    drop((agent, late, carrier, carrier503));
    // Kept when a step fails (the panic skips this), for its logs.
    let _ = fs::remove_dir_all(&dir);
}
