//! The client's side of TLS: which certificates it trusts, its rustls configuration (the
//! `ring` provider, as the servers'), and the secrets of its sessions.
//!
//! Trust: mailwire's servers present a self-signed certificate kept in their data directory
//! (`mailwire-cert.pem`). A client trusts exactly the certificates it is given
//! ([`Trust::Certificates`]: that file, or a CA file); there is no system store, so a
//! server whose certificate was not given fails the handshake with a message that says
//! which file to pass. [`Trust::Insecure`] checks no certificate (the handshake's own
//! signature still is): the traffic is encrypted but the server may be anyone, and the
//! console says so.
//!
//! Secrets: every session's TLS secrets are kept as NSS key log lines
//! ([`crate::proto::keylog::KeyLog`]), so a recorded run can decrypt its own capture; they
//! are also appended to the file `SSLKEYLOGFILE` names, if set (rustls's `KeyLogFile`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::proto::keylog::{KeyLog, KeyLogEntry};

/// Which server certificates the client accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The certificates in these PEM files (mailwire's self-signed `mailwire-cert.pem`, or
    /// a CA's certificate), and no other.
    Certificates(Vec<PathBuf>),
    /// Any certificate: encrypted, but not authenticated (`--insecure`).
    Insecure,
}

/// Why the client's TLS configuration cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTlsError {
    /// A certificate file cannot be read.
    Read { path: PathBuf, error: String },
    /// A file holds no usable PEM certificate.
    NoCertificate { path: PathBuf },
    /// No certificate to trust was given (and `--insecure` was not asked for).
    NothingTrusted,
    /// rustls refused the configuration.
    Config { error: String },
}

impl fmt::Display for ClientTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => {
                write!(
                    f,
                    "cannot read the certificate file {}: {error}",
                    path.display()
                )
            }
            Self::NoCertificate { path } => write!(
                f,
                "{} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\") that can be \
                 trusted",
                path.display()
            ),
            Self::NothingTrusted => f.write_str(
                "no certificate to trust: pass the server's certificate with --cafile FILE \
                 (mailwire serve keeps its self-signed one as mailwire-cert.pem in its data \
                 directory), or --insecure to skip the check",
            ),
            Self::Config { error } => write!(f, "cannot configure TLS: {error}"),
        }
    }
}

impl std::error::Error for ClientTlsError {}

/// The client's TLS configuration and the secrets of the sessions made with it. Cheap to
/// clone (shared).
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    keys: Arc<ClientKeys>,
    insecure: bool,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A configuration that trusts what `trust` says.
    pub fn new(trust: &Trust) -> Result<ClientTls, ClientTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientTlsError::Config {
                error: e.to_string(),
            })?;
        let mut config = match trust {
            Trust::Certificates(files) => {
                let mut roots = rustls::RootCertStore::empty();
                for path in files {
                    for cert in certificates(path)? {
                        roots
                            .add(cert)
                            .map_err(|_| ClientTlsError::NoCertificate { path: path.clone() })?;
                    }
                }
                if roots.is_empty() {
                    return Err(ClientTlsError::NothingTrusted);
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
                .with_no_client_auth(),
        };
        let keys = Arc::new(ClientKeys::default());
        config.key_log = keys.clone();
        Ok(ClientTls {
            config: Arc::new(config),
            keys,
            insecure: *trust == Trust::Insecure,
        })
    }

    /// Whether certificates go unchecked (`--insecure`).
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The secrets of every session made with this configuration so far.
    pub fn keylog(&self) -> KeyLog {
        self.keys
            .log
            .lock()
            .map(|log| log.clone())
            .unwrap_or_default()
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config.clone())
    }
}

/// The server name a certificate must carry for `host` (a DNS name or an IP address, as
/// typed; brackets around an IPv6 address are taken off).
pub(crate) fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).ok()
}

/// The host part of `HOST:PORT`.
pub(crate) fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(host, _)| host)
}

/// A fresh, unpredictable SCRAM client nonce (RFC 5802 section 5.1: printable, no ','):
/// base64 of 18 random bytes from the system (through rustls's provider).
pub fn fresh_nonce() -> String {
    let mut random = [0u8; 18];
    let provider = rustls::crypto::ring::default_provider();
    if provider.secure_random.fill(&mut random).is_err() {
        // The system gave no random bytes (it does not happen on Linux): the time and the
        // process id still make a nonce that is not used twice.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seed = format!("{}{}", now.as_nanos(), std::process::id());
        for (r, b) in random.iter_mut().zip(seed.bytes().cycle()) {
            *r = b;
        }
    }
    crate::proto::sasl::encode(&random)
}

/// The PEM certificates of a file.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    let bytes = std::fs::read(path).map_err(|e| ClientTlsError::Read {
        path: path.to_path_buf(),
        error: e.to_string(),
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(ClientTlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The secrets rustls hands out, kept as key log entries (and written to `SSLKEYLOGFILE`).
#[derive(Debug)]
struct ClientKeys {
    log: Mutex<KeyLog>,
    file: rustls::KeyLogFile,
}

impl Default for ClientKeys {
    fn default() -> Self {
        Self {
            log: Mutex::new(KeyLog::new()),
            file: rustls::KeyLogFile::new(),
        }
    }
}

impl rustls::KeyLog for ClientKeys {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        self.file.log(label, client_random, secret);
        if let Ok(mut log) = self.log.lock() {
            log.push(KeyLogEntry {
                label: label.to_string(),
                client_random: client_random.to_vec(),
                secret: secret.to_vec(),
            });
        }
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// `--insecure`: accepts any certificate, but still checks that the server signed the
/// handshake with the key of the certificate it sent.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_server_names() {
        assert_eq!(host_of("127.0.0.1:1110"), "127.0.0.1");
        assert_eq!(host_of("[::1]:995"), "[::1]");
        assert_eq!(host_of("localhost:25"), "localhost");
        assert!(matches!(
            server_name("[::1]"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("localhost"),
            Some(ServerName::DnsName(_))
        ));
        assert!(server_name("bad name!").is_none());
    }

    #[test]
    fn bad_trust_files_say_which_and_why() {
        let missing = PathBuf::from("/nonexistent/mailwire-cert.pem");
        let e = ClientTls::new(&Trust::Certificates(vec![missing])).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/mailwire-cert.pem"),
            "{e}"
        );
        let e = ClientTls::new(&Trust::Certificates(Vec::new())).unwrap_err();
        assert_eq!(e, ClientTlsError::NothingTrusted);
        assert!(e.to_string().contains("--cafile"), "{e}");
        let tls = ClientTls::new(&Trust::Insecure).unwrap();
        assert!(tls.is_insecure());
        assert!(tls.keylog().is_empty());
    }
}
