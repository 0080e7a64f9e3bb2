//! Mutual TLS to a manager's `tcp://` endpoint from PEM held in memory (a Kubernetes Secret), the
//! way `docker --tlsverify` uses ~/.docker/{ca,cert,key}.pem. Key material never leaves this type:
//! its Debug output and every error name the file, not the content.

use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sha2::{Digest, Sha256};

/// The three PEM files of a Docker TLS client.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsFiles(ca.pem, cert.pem, key.pem; {})", self.fingerprint())
    }
}

impl TlsFiles {
    /// A short digest of all three, to see that a Secret changed without keeping its bytes around.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [&self.ca, &self.cert, &self.key] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// A connector that verifies the manager against `ca.pem` and presents `cert.pem`/`key.pem`.
    pub fn connector(&self) -> Result<HttpsConnector<HttpConnector>, String> {
        let config = self.client_config()?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
        Ok(HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector(http))
    }

    /// Why TLS to `addr` (host:port) fails, in the words of the handshake and a first request. In
    /// TLS 1.3 a manager refuses our certificate only after the handshake, and the HTTP client
    /// then reports a closed connection; reading from the TLS stream gets the manager's alert
    /// (`BadCertificate`, `UnknownCA`, ...). None when nothing fails here.
    pub async fn diagnose(&self, addr: &str) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let config = self.client_config().ok()?;
        let host = addr
            .rsplit_once(':')?
            .0
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = rustls_pki_types::ServerName::try_from(host.to_string()).ok()?;
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let mut tls = match connector.connect(name, tcp).await {
                Ok(tls) => tls,
                Err(e) => return Some(e.to_string()),
            };
            if let Err(e) = tls.write_all(b"GET /_ping HTTP/1.0\r\n\r\n").await {
                return Some(e.to_string());
            }
            let mut buf = [0u8; 64];
            tls.read(&mut buf).await.err().map(|e| e.to_string())
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), attempt)
            .await
            .ok()
            .flatten()
    }

    fn client_config(&self) -> Result<ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_slice_iter(&self.ca)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca.pem: {e}"))?;
        if cas.is_empty() {
            return Err("ca.pem: no certificate found".into());
        }
        for ca in cas {
            roots.add(ca).map_err(|e| format!("ca.pem: {e}"))?;
        }
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cert.pem: {e}"))?;
        if chain.is_empty() {
            return Err("cert.pem: no certificate found".into());
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|_| "key.pem: no private key found".to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("cert.pem/key.pem: {e}"))?;
        Ok(config)
    }
}
