//! HTTPS: the certificate and key of `<http>` (PEM files), served by rustls
//! (the `ring` provider). The certificate sits behind a lock that
//! `c2c reload` swaps: new handshakes get the renewed certificate, open
//! connections keep theirs.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The certificate being served, swappable.
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertStore")
    }
}

/// Reads a PEM certificate chain and its private key, and checks they match.
pub fn read_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("tls-cert {}: no certificate in it", cert.display()));
    }
    let der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls-key {}: {e}", key.display()))?;
    let signing = ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("tls-key {}: {e}", key.display()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match()
        .map_err(|e| format!("tls-key {} does not match tls-cert: {e}", key.display()))?;
    Ok(Arc::new(pair))
}

impl CertStore {
    /// Loads the pair (see [`read_pair`]).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertStore>, String> {
        Ok(Arc::new(CertStore {
            current: RwLock::new(read_pair(cert, key)?),
        }))
    }

    /// Serves `pair` to new handshakes from now on.
    pub fn replace(&self, pair: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = pair;
    }

    /// A rustls server config (TLS 1.2 and 1.3, HTTP/1.1) over this store.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        let provider = Arc::new(ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}
