//! HTTPS with a self-signed certificate made here (rcgen): the API over
//! TLS, and `c2c reload` (App::apply_config) serving a renewed certificate
//! to new connections while an open connection keeps working; a broken
//! certificate on reload is refused whole and the old one stays.

mod common;
mod scratch;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use common::*;

struct Pair {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn make_pair() -> Pair {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Pair {
        cert_pem: cert.pem(),
        key_pem: key_pair.serialize_pem(),
        der: cert.der().clone(),
    }
}

fn write_pair(dir: &Path, p: &Pair) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, &p.cert_pem).unwrap();
    std::fs::write(&k, &p.key_pem).unwrap();
    (c, k)
}

/// A client that trusts only `trusted`.
fn client(trusted: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    StreamOwned::new(ClientConnection::new(config, name).unwrap(), tcp)
}

/// One request on `s`; the status, or the I/O error (e.g. a refused handshake).
fn exchange(s: &mut Tls, method: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(head[9..12].parse().unwrap());
        }
    }
}

const MODE1: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

#[test]
fn https_serves_the_api_and_reload_swaps_the_certificate_without_dropping_connections() {
    let dir = Scratch::new("c2c-tls");
    let first = make_pair();
    let (cert, key) = write_pair(&dir, &first);
    let mut c = config();
    c.http.tls_cert = Some(cert.clone());
    c.http.tls_key = Some(key.clone());
    let t = start_with(c.clone(), sim_options());

    // Plain HTTP on the TLS port is not answered as HTTP.
    let mut plain = Conn::open(t.addr);
    plain.send("GET", "/health", &[], b"");
    assert!(plain.try_read().is_none());

    let old_client = client(&first.der);
    let mut open = connect(t.addr, old_client.clone());
    assert_eq!(exchange(&mut open, "GET", "/health", "").unwrap(), 200);
    assert_eq!(
        exchange(&mut open, "POST", "/api/pbx/calls/click-to-call", MODE1).unwrap(),
        202
    );

    // Renewed certificate (a new key too), same paths: c2c reload.
    let second = make_pair();
    write_pair(&dir, &second);
    t.app.apply_config(c.clone()).expect("reload");
    let new_client = client(&second.der);
    let mut fresh = connect(t.addr, new_client.clone());
    assert_eq!(exchange(&mut fresh, "GET", "/health", "").unwrap(), 200);
    // New handshakes no longer get the old certificate (a fresh client:
    // one that resumes a session skips the certificate)…
    let mut stale = connect(t.addr, client(&first.der));
    assert!(exchange(&mut stale, "GET", "/health", "").is_err());
    // …while the connection opened before the reload goes on.
    assert_eq!(exchange(&mut open, "GET", "/health", "").unwrap(), 200);

    // A broken certificate is refused whole; the served one stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = t.app.apply_config(c.clone()).unwrap_err();
    assert!(err.contains("tls-cert"), "{err}");
    let mut again = connect(t.addr, new_client);
    assert_eq!(exchange(&mut again, "GET", "/health", "").unwrap(), 200);
    // A key that does not match the certificate is refused too.
    std::fs::write(&cert, &second.cert_pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    let err = t.app.apply_config(c).unwrap_err();
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn a_missing_certificate_fails_the_start_with_a_clear_message() {
    let mut c = config();
    c.http.tls_cert = Some("/nonexistent/cert.pem".into());
    c.http.tls_key = Some("/nonexistent/key.pem".into());
    // The store may be opened before the certificate is found missing.
    let _spool = Scratch::adopt(c.webhooks.spool_dir.clone());
    let (tx, rx) = mod_zorio_c2c::switch::leg_channel();
    let sim = mod_zorio_c2c::sim::SimSwitch::new(sim_options(), tx);
    let err = match mod_zorio_c2c::app::App::start(c, sim.clone(), rx, vec![]) {
        Ok(app) => {
            app.stop(Duration::from_secs(2));
            panic!("started without a certificate");
        }
        Err(e) => e,
    };
    sim.stop();
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}
