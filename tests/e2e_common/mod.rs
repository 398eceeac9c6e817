//! Shared by the end-to-end suites against a real FreeSWITCH: finding the
//! switch and sipp, a throwaway loopback config, sipp scenarios, an ESL
//! client and event log, and a FreeSWITCH process guard.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::scratch::Scratch;

pub mod audio;

// ---------------------------------------------------------------- setup ---

pub struct Env {
    pub fs_bin: PathBuf,
    pub mod_dir: PathBuf,
    pub sipp: PathBuf,
    pub module: PathBuf,
}

pub fn find_env() -> Result<Env, String> {
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

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.exists())
    })
}

/// Ports of this run (spread by pid so parallel runs do not collide).
#[derive(Clone, Copy)]
pub struct Ports {
    pub sip: u16,
    pub esl: u16,
    pub agent: u16,
    pub agent_late: u16,
    pub carrier_ok: u16,
    pub carrier_503: u16,
    pub http: u16,
    pub xmlrpc: u16,
    /// A carrier reached only through the XML dialplan (numbers no LCR route covers).
    pub carrier_dialplan: u16,
    /// Agent 1004's phone (auto-answer: takes sofia's NOTIFY Event: talk).
    pub agent_auto: u16,
    /// FreeSWITCH's RTP ports are `rtp_start..=rtp_start + 35`; sipp's media
    /// ports sit above, 4 apart (`+36`, `+40`, … `+56`).
    pub rtp_start: u16,
}

impl Ports {
    pub fn new() -> Ports {
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
            carrier_dialplan: base + 8,
            agent_auto: base + 9,
            rtp_start: 45000 + (std::process::id() % 200) as u16 * 60,
        }
    }
}

pub fn write(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(path, text).unwrap();
}

/// The `<webhooks>` params of the default config: a spool, no destination.
pub fn default_webhooks(spool: &Path) -> String {
    format!(r#"<param name="spool-dir" value="{}"/>"#, spool.display())
}

/// The whole FreeSWITCH config; `webhooks` is the inside of `<webhooks>`.
/// A sofia gateway to a carrier UAS on a loopback port (no registration).
fn gateway(name: &str, port: u16) -> String {
    format!(
        r#"
            <gateway name="{name}">
              <param name="proxy" value="127.0.0.1:{port}"/>
              <param name="register" value="false"/>
              <param name="username" value="c2c"/>
              <param name="password" value="unused"/>
              <param name="caller-id-in-from" value="true"/>
              <param name="ping" value="0"/>
            </gateway>"#
    )
}

pub fn freeswitch_xml(p: Ports, webhooks: &str) -> String {
    freeswitch_xml_with(p, webhooks, "")
}

/// [`freeswitch_xml`] with `extra` sections in the module's configuration
/// (e.g. `<cluster>…</cluster>`).
pub fn freeswitch_xml_with(p: Ports, webhooks: &str, extra: &str) -> String {
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
        <load module="mod_sndfile"/>
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
          <gateways>{poc}{backup}</gateways>
          <settings>
            <param name="dialplan" value="XML"/>
            <param name="context" value="default"/>
            <param name="inbound-codec-prefs" value="PCMU,PCMA"/>
            <param name="outbound-codec-prefs" value="PCMU,PCMA"/>
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
      <webhooks>{webhooks}</webhooks>
      <trunks>
        <trunk id="4" name="POC" gateway="poc" status="active" cost="0.010"/>
        <trunk id="5" name="BACKUP" gateway="backup" status="active" cost="0.020"/>
      </trunks>
      <lcr><route prefix="0" trunks="4,5"/></lcr>
      <caller-ids><number value="0900000020" trunk="5"/></caller-ids>
      {extra}
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
        <user id="1004">
          <params>
            <param name="dial-string" value="sofia/c2c/sip:1004@127.0.0.1:{agent_auto}"/>
          </params>
        </user>
      </users>
    </domain>
  </section>
  <section name="dialplan">
    <context name="default">
      <!-- Numbers no LCR route covers reach this context over loopback. A loopback
           channel is L16: sofia, bridging from it, would offer L16 only. -->
      <extension name="uncovered"><condition field="destination_number" expression="^(44[0-9]+)$">
        <action application="bridge" data="{{absolute_codec_string=PCMU,PCMA}}sofia/c2c/sip:$1@127.0.0.1:{dialplan_carrier}"/>
      </condition></extension>
      <extension name="park"><condition field="destination_number" expression=".*">
        <action application="park"/>
      </condition></extension>
    </context>
  </section>
</document>
"#,
        rtp0 = p.rtp_start,
        rtp1 = p.rtp_start + 35,
        esl = p.esl,
        sip = p.sip,
        poc = gateway("poc", p.carrier_503),
        backup = gateway("backup", p.carrier_ok),
        agent = p.agent,
        late = p.agent_late,
        http = p.http,
        xmlrpc = p.xmlrpc,
        dialplan_carrier = p.carrier_dialplan,
        agent_auto = p.agent_auto,
    )
}

// ---------------------------------------------------------------- sipp ---

pub const RESPONSE_HEAD: &str = "[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContact: <sip:[local_ip]:[local_port];transport=[transport]>\n";

pub fn ok_with_sdp() -> String {
    format!(
        "<send retrans=\"500\"><![CDATA[\nSIP/2.0 200 OK\n{RESPONSE_HEAD}Content-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n\n]]></send>\n"
    )
}

pub fn ringing() -> String {
    format!(
        "<send><![CDATA[\nSIP/2.0 180 Ringing\n{RESPONSE_HEAD}Content-Length: 0\n\n]]></send>\n"
    )
}

pub const BYE_OK: &str = "<recv request=\"BYE\"/>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n";

/// Rings, answers after `answer_after_ms`, waits for BYE.
pub fn scenario_answers(name: &str, answer_after_ms: u64) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"{name}\">\n<recv request=\"INVITE\"/>\n{ring}<pause milliseconds=\"{answer_after_ms}\"/>\n{ok}<recv request=\"ACK\"/>\n{BYE_OK}</scenario>\n",
        ring = ringing(),
        ok = ok_with_sdp(),
    )
}

/// [`scenario_answers`], then talks: once answered it streams `audio` (raw
/// 8 kHz PCMU, see [`write_ulaw_tone`]) as RTP, looped, until the BYE.
pub fn scenario_answers_talking(name: &str, answer_after_ms: u64, audio: &Path) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"{name}\">\n<recv request=\"INVITE\"/>\n{ring}<pause milliseconds=\"{answer_after_ms}\"/>\n{ok}<recv request=\"ACK\"/>\n<nop><action><exec rtp_stream=\"{audio},-1,0\"/></action></nop>\n{BYE_OK}</scenario>\n",
        ring = ringing(),
        ok = ok_with_sdp(),
        audio = audio.display(),
    )
}

/// One second of a 400 Hz tone, raw 8 kHz PCMU (for sipp's `rtp_stream`).
pub fn write_ulaw_tone(path: &Path) {
    write_ulaw_tone_hz(path, 400.0);
}

/// One second of a `hz` tone, raw 8 kHz PCMU (for sipp's `rtp_stream`).
pub fn write_ulaw_tone_hz(path: &Path, hz: f64) {
    let ulaw = |x: f64| -> u8 {
        let sample = (x * 8000.0) as i32;
        let sign = if sample < 0 { 0x80 } else { 0 };
        let mag = sample.unsigned_abs().min(32635) + 0x84;
        let exp = (31 - mag.leading_zeros()).saturating_sub(7).min(7);
        let mant = (mag >> (exp + 3)) & 0x0f;
        !(sign | (exp << 4) as u8 | mant as u8)
    };
    let bytes: Vec<u8> = (0..8000)
        .map(|i| ulaw((i as f64 * hz * std::f64::consts::TAU / 8000.0).sin()))
        .collect();
    fs::write(path, bytes).unwrap();
}

/// A phone told to answer by itself (`Call-Info: …;answer-after=0`):
/// answers at once, without a 180 (after a 180, sofia would also send it a
/// `NOTIFY` with `Event: talk`, which the other scenarios do not expect).
pub fn scenario_auto_answers() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"auto answer\">\n<recv request=\"INVITE\"/>\n{ok}<recv request=\"ACK\"/>\n{BYE_OK}</scenario>\n",
        ok = ok_with_sdp(),
    )
}

/// The end of an INVITE that is never answered: waits for the CANCEL,
/// answers it, ends the INVITE with 487.
pub const CANCELLED: &str = "<recv request=\"CANCEL\"/>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n<send><![CDATA[\nSIP/2.0 487 Request Terminated\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag[call_number]\n[last_Call-ID:]\nCSeq: [last_cseq_number] INVITE\nContent-Length: 0\n\n]]></send>\n<recv request=\"ACK\"/>\n";

/// Rings and never answers: waits for CANCEL, answers it, ends the INVITE with 487.
pub fn scenario_never_answers() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"never answers\">\n<recv request=\"INVITE\"/>\n{ring}{CANCELLED}</scenario>\n",
        ring = ringing(),
    )
}

/// Answers every INVITE with 503.
pub fn scenario_503() -> String {
    "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"carrier 503\">\n<recv request=\"INVITE\"/>\n<send><![CDATA[\nSIP/2.0 503 Service Unavailable\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n<recv request=\"ACK\"/>\n</scenario>\n".to_string()
}

pub struct Sipp {
    pub child: Child,
    pub log: PathBuf,
}

impl Sipp {
    pub fn start(env: &Env, dir: &Path, name: &str, scenario: &str, port: u16, media: u16) -> Sipp {
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
    pub fn messages(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The received INVITEs (full text), in order.
    pub fn invites(&self) -> Vec<String> {
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

pub struct Esl {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

pub type Headers = HashMap<String, String>;

pub fn url_decode(s: &str) -> String {
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

pub fn parse_headers(text: &str, decode: bool) -> Headers {
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
    pub fn connect(port: u16, within: Duration) -> Option<Esl> {
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

    pub fn send(&mut self, cmd: &str) {
        self.writer
            .write_all(format!("{cmd}\n\n").as_bytes())
            .expect("write to ESL");
    }

    pub fn read(&mut self) -> Option<(Headers, String)> {
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

    pub fn api(&mut self, cmd: &str) -> String {
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
pub struct EventLog(pub Arc<Mutex<Vec<Headers>>>);

impl EventLog {
    pub fn listen(port: u16) -> EventLog {
        EventLog::listen_with(port, |_| {})
    }

    /// [`EventLog::listen`], with `inspect` run on each event on the reader
    /// thread the moment it arrives (before it is logged).
    pub fn listen_with(port: u16, inspect: impl Fn(&mut Headers) + Send + 'static) -> EventLog {
        let log = EventLog::default();
        let mut esl = Esl::connect(port, Duration::from_secs(5)).expect("ESL events connection");
        esl.send("event plain CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE CUSTOM zorio_c2c::call.ringing zorio_c2c::call.answered zorio_c2c::call.customer_ringing zorio_c2c::call.bridged zorio_c2c::call.attempt_failed zorio_c2c::call.agent_missed zorio_c2c::call.hangup zorio_c2c::cdr.created");
        let sink = log.clone();
        std::thread::spawn(move || {
            while let Some((h, body)) = esl.read() {
                if h.get("Content-Type").map(String::as_str) == Some("text/event-plain") {
                    let (head, ebody) = body.split_once("\n\n").unwrap_or((&body, ""));
                    let mut ev = parse_headers(head, true);
                    ev.insert("_body".into(), ebody.to_string());
                    inspect(&mut ev);
                    sink.0.lock().unwrap().push(ev);
                }
            }
        });
        log
    }

    pub fn all(&self) -> Vec<Headers> {
        self.0.lock().unwrap().clone()
    }

    /// Index of the first event named `name` (or CUSTOM subclass) about `uuid`.
    pub fn position(&self, name: &str, uuid: &str) -> Option<usize> {
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

pub struct FreeSwitch {
    pub child: Child,
    pub dir: PathBuf,
}

impl FreeSwitch {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no shutdown, no flush, no module unload; waits for the
    /// process to be gone and returns how it ended.
    pub fn sigkill(&mut self) -> std::process::ExitStatus {
        // Child::kill sends SIGKILL on Unix.
        let _ = self.child.kill();
        self.child.wait().expect("wait for the killed FreeSWITCH")
    }
}

impl Drop for FreeSwitch {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return; // already gone (killed): never shut down another instance
        }
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

/// Starts FreeSWITCH on the default config (webhooks spooled in `dir/spool`, no URL).
pub fn start_freeswitch(env: &Env, dir: &Path, ports: Ports) -> FreeSwitch {
    start_freeswitch_with(env, dir, ports, &default_webhooks(&dir.join("spool")))
}

/// Starts FreeSWITCH in `dir` (config, logs, db…), with `webhooks` as the
/// inside of the module's `<webhooks>`. Starting again in the same `dir`
/// keeps its logs, db and spool.
pub fn start_freeswitch_with(env: &Env, dir: &Path, ports: Ports, webhooks: &str) -> FreeSwitch {
    start_freeswitch_extra(env, dir, ports, webhooks, "")
}

/// [`start_freeswitch_with`], with `extra` sections in the module's configuration.
pub fn start_freeswitch_extra(
    env: &Env,
    dir: &Path,
    ports: Ports,
    webhooks: &str,
    extra: &str,
) -> FreeSwitch {
    start_freeswitch_xml(env, dir, &freeswitch_xml_with(ports, webhooks, extra))
}

/// Starts FreeSWITCH in `dir` on the whole config `xml` (`freeswitch.xml`),
/// with our module copied into its module directory.
pub fn start_freeswitch_xml(env: &Env, dir: &Path, xml: &str) -> FreeSwitch {
    start_freeswitch_args(env, dir, xml, &[])
}

/// [`start_freeswitch_xml`] with `extra` command-line flags (e.g. `-np`:
/// nice 0, not SCHED_RR, so sipp peers are not starved under load).
pub fn start_freeswitch_args(env: &Env, dir: &Path, xml: &str, extra: &[&str]) -> FreeSwitch {
    let conf = dir.join("conf");
    write(&conf.join("freeswitch.xml"), xml);
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
    cmd.args(extra);
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
    // A core file (`ulimit -c unlimited`, core_pattern `core`) lands in `dir`.
    let child = cmd
        .current_dir(dir)
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

pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn json_of(reply: &str) -> serde_json::Value {
    let start = reply
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {reply:?}"));
    serde_json::from_str(&reply[start..]).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

pub fn place(esl: &mut Esl, body: serde_json::Value) -> serde_json::Value {
    let reply = esl.api(&format!("c2c {body}"));
    assert!(reply.starts_with("+OK"), "c2c refused: {reply}");
    json_of(&reply)["data"].clone()
}

pub fn status(esl: &mut Esl, call: &str) -> serde_json::Value {
    let reply = esl.api(&format!("c2c status {call}"));
    assert!(reply.starts_with("+OK"), "c2c status: {reply}");
    json_of(&reply)
}

pub fn wait_state(esl: &mut Esl, call: &str, state: &str, within: Duration) -> serde_json::Value {
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
pub fn http(port: u16, method: &str, path: &str, auth: &str, body: &str) -> String {
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
/// The value of the series `series` (a metric's name, with its labels if it
/// has any) in a `/metrics` answer.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

pub fn http_get(port: u16, path: &str, token: &str) -> String {
    http(port, "GET", path, &format!("Bearer {token}"), "")
}

/// mod_xml_rpc's Basic auth for crm:secret.
pub const XMLRPC_AUTH: &str = "Basic Y3JtOnNlY3JldA==";

/// A fresh directory `$TMPDIR/zorio-c2c-<tag>-<pid>-<uuid>` for one run,
/// removed when dropped unless the test is failing.
pub fn e2e_dir(tag: &str) -> Scratch {
    let dir = Scratch::new(&format!("zorio-c2c-{tag}"));
    println!("e2e dir: {}", dir.display());
    dir
}

/// Prints FreeSWITCH's version and the module under test (warning when the
/// module looks stale); returns the version line.
pub fn describe(env: &Env) -> String {
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
    version
}

pub fn step(name: &str) {
    println!("ok: {name}");
}

/// An ESL connection to a FreeSWITCH that is up with the module loaded and
/// the carriers' gateway ready.
pub fn connect_ready(ports: Ports, dir: &Path) -> Esl {
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
    esl
}

/// Says a suite was skipped and why, on the process's real stderr: the test
/// harness captures `println!`, and a CI log must show the skip.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// The two agents' phones: 1001 answers after `answer_after_ms` and talks
/// (RTP from `tone`), 1002 rings and never answers.
pub fn start_agents(env: &Env, dir: &Path, ports: Ports, answer_after_ms: u64) -> (Sipp, Sipp) {
    let tone = dir.join("tone.ulaw");
    write_ulaw_tone(&tone);
    let agent = Sipp::start(
        env,
        dir,
        "agent",
        &scenario_answers_talking("agent", answer_after_ms, &tone),
        ports.agent,
        ports.rtp_start + 40,
    );
    let late = Sipp::start(
        env,
        dir,
        "agent_no_answer",
        &scenario_never_answers(),
        ports.agent_late,
        ports.rtp_start + 44,
    );
    (agent, late)
}

/// The two trunks' carriers: BACKUP's answers, POC's answers 503.
pub fn start_carriers(env: &Env, dir: &Path, ports: Ports) -> (Sipp, Sipp) {
    carriers(env, dir, ports, &scenario_answers("carrier", 300))
}

/// [`start_carriers`] whose answering carrier talks: once answered it
/// streams a `hz` tone (so a recording can tell the customer apart).
pub fn start_talking_carriers(env: &Env, dir: &Path, ports: Ports, hz: f64) -> (Sipp, Sipp) {
    let tone = dir.join(format!("tone{hz}.ulaw"));
    write_ulaw_tone_hz(&tone, hz);
    carriers(
        env,
        dir,
        ports,
        &scenario_answers_talking("carrier", 300, &tone),
    )
}

/// BACKUP's carrier playing `answering`, POC's answering 503.
fn carriers(env: &Env, dir: &Path, ports: Ports, answering: &str) -> (Sipp, Sipp) {
    let carrier = Sipp::start(
        env,
        dir,
        "carrier_ok",
        answering,
        ports.carrier_ok,
        ports.rtp_start + 48,
    );
    let carrier503 = Sipp::start(
        env,
        dir,
        "carrier_503",
        &scenario_503(),
        ports.carrier_503,
        ports.rtp_start + 52,
    );
    (carrier, carrier503)
}

/// The call's CDR, from the CUSTOM `zorio_c2c::cdr.created` event (its
/// body is the webhook's JSON): its `data`.
pub fn cdr(log: &EventLog, call: &str) -> serde_json::Value {
    let mut found = None;
    wait_for("the CDR event", Duration::from_secs(10), || {
        found = log
            .position("zorio_c2c::cdr.created", call)
            .map(|i| log.all()[i].clone());
        found.is_some()
    });
    let body: serde_json::Value = serde_json::from_str(&found.unwrap()["_body"]).expect("CDR JSON");
    if body.get("data").is_some() {
        body["data"].clone()
    } else {
        body
    }
}

/// The `<webhooks>` params of a test: deliveries to `url`, signed with
/// `secret`, spooled in `spool`, retried quickly; `extra` params follow.
pub fn webhook_params(url: &str, secret: &str, spool: &Path, extra: &str) -> String {
    format!(
        r#"<param name="url" value="{url}"/>
        <param name="secret" value="{secret}"/>
        <param name="spool-dir" value="{spool}"/>
        <param name="retry-schedule" value="0.2,0.5,1"/>{extra}"#,
        spool = spool.display(),
    )
}

/// `fs_cli -x` against one FreeSWITCH, as an admin drives it: a fresh
/// event-socket connection (and FreeSWITCH thread) per command.
pub struct FsCli {
    bin: PathBuf,
    port: u16,
}

impl FsCli {
    /// `FS_CLI_BIN`, else `fs_cli` beside the FreeSWITCH binary or on
    /// `PATH`, for the switch whose event socket is on `port`.
    pub fn find(env: &Env, port: u16) -> Result<FsCli, String> {
        let bin = std::env::var_os("FS_CLI_BIN")
            .map(PathBuf::from)
            .or_else(|| Some(env.fs_bin.parent()?.join("fs_cli")))
            .filter(|p| p.exists())
            .or_else(|| which("fs_cli"))
            .ok_or("fs_cli not found (set FS_CLI_BIN)")?;
        Ok(FsCli { bin, port })
    }

    /// Runs one command in its own `fs_cli` process; its whole answer.
    pub fn x(&self, cmd: &str) -> String {
        let mut child = Command::new(&self.bin)
            .args([
                "-H",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "-p",
                "ClueCon",
            ])
            .args(["-T", "5000", "-t", "30000", "-x", cmd])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fs_cli");
        let until = Instant::now() + Duration::from_secs(40);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                panic!("fs_cli -x {cmd:?} hung");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output().expect("fs_cli output");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    }
}
