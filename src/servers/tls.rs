//! TLS for the servers (rustls with the `ring` provider): the certificate and key, the
//! server configuration, the secrets of each session, and the random values of each
//! session's SASL exchange.
//!
//! The certificate is either the user's (`--cert`/`--key`, PEM files) or a self-signed one
//! that [`TlsSettings::load_or_create`] makes on first start and keeps in the data directory
//! (`mailwire-cert.pem`, and `mailwire-key.pem` readable only by its owner), so that a client
//! that pinned it once keeps trusting it. Clients must be told to accept it (curl `-k`,
//! `openssl s_client` prints the verify error and goes on).

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::proto::sasl::SaslParams;

/// The file name of the self-signed certificate in the data directory.
pub const CERT_FILE: &str = "mailwire-cert.pem";
/// The file name of its private key in the data directory.
pub const KEY_FILE: &str = "mailwire-key.pem";

/// The most key-log lines kept (each TLS 1.3 session logs five).
const MAX_KEY_LOG_LINES: usize = 50_000;

/// A certificate, its key and the TLS configuration made from them.
#[derive(Clone)]
pub struct TlsSettings {
    acceptor: TlsAcceptor,
    cert_path: PathBuf,
    created: bool,
    keys: Arc<SessionKeys>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("cert_path", &self.cert_path)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Reads a certificate chain and its private key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsSettings, TlsError> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        Self::from_pem(&cert_pem, &key_pem, cert, key, false)
    }

    /// The self-signed certificate kept in `data_dir`, made (for `localhost`, `hostname`,
    /// 127.0.0.1 and ::1) if it is not there yet.
    pub fn load_or_create(data_dir: &Path, hostname: &str) -> Result<TlsSettings, TlsError> {
        let cert = data_dir.join(CERT_FILE);
        let key = data_dir.join(KEY_FILE);
        if cert.exists() || key.exists() {
            return Self::from_pem_files(&cert, &key);
        }
        let (cert_pem, key_pem) = self_signed(hostname)?;
        write_new(&key, key_pem.as_bytes(), 0o600)?;
        write_new(&cert, cert_pem.as_bytes(), 0o644)?;
        Self::from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), &cert, &key, true)
    }

    fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert: &Path,
        key: &Path,
        created: bool,
    ) -> Result<TlsSettings, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::BadPem {
                path: cert.to_path_buf(),
                what: "certificate",
                error: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoPemItem {
                path: cert.to_path_buf(),
                what: "certificate (BEGIN CERTIFICATE)",
            });
        }
        let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPemItem {
                path: key.to_path_buf(),
                what: "private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            },
            e => TlsError::BadPem {
                path: key.to_path_buf(),
                what: "private key",
                error: e.to_string(),
            },
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let keys = Arc::new(SessionKeys::default());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
            .map_err(|e| TlsError::Config {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                error: e.to_string(),
            })?;
        config.key_log = keys.clone();
        Ok(TlsSettings {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert_path: cert.to_path_buf(),
            created,
            keys,
        })
    }

    /// What makes the handshakes.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The certificate file in use.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Whether the certificate was made by this start (a self-signed one, new).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The secrets of the sessions so far, in the NSS key log format.
    pub fn session_keys(&self) -> &SessionKeys {
        &self.keys
    }
}

/// The TLS secrets of the servers' sessions, as NSS key log lines (`LABEL client_random
/// secret`, hex): with them Wireshark decrypts a capture of mailwire's own sessions (for a
/// pcapng Decryption Secrets Block). They are also appended to the file the environment
/// variable `SSLKEYLOGFILE` names, if it is set (the convention browsers and curl follow),
/// so Wireshark can decrypt a live capture of `mailwire serve`.
#[derive(Debug)]
pub struct SessionKeys {
    lines: Mutex<Vec<String>>,
    file: rustls::KeyLogFile,
}

impl Default for SessionKeys {
    fn default() -> Self {
        Self {
            lines: Mutex::new(Vec::new()),
            file: rustls::KeyLogFile::new(),
        }
    }
}

impl SessionKeys {
    /// Every line logged so far (at most the last 50,000).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl rustls::KeyLog for SessionKeys {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        self.file.log(label, client_random, secret);
        let line = format!("{label} {} {}", hex(client_random), hex(secret));
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() >= MAX_KEY_LOG_LINES {
                lines.remove(0);
            }
            lines.push(line);
        }
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A self-signed certificate and its key, in PEM.
fn self_signed(hostname: &str) -> Result<(String, String), TlsError> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !names.iter().any(|n| n.eq_ignore_ascii_case(hostname)) && !hostname.is_empty() {
        names.push(hostname.to_string());
    }
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate {
        error: e.to_string(),
    })?;
    Ok((made.cert.pem(), made.signing_key.serialize_pem()))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_path_buf(),
        error: e.to_string(),
    })
}

/// Writes a new file (never replacing one) with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let error = |e: std::io::Error| TlsError::Write {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)
}

/// Fresh random values for one session's SASL exchange (the CRAM-MD5 challenge, SCRAM's
/// server nonce and salt), from the system's random source through rustls's provider.
pub(crate) fn session_params() -> SaslParams {
    let mut random = [0u8; 36];
    let provider = rustls::crypto::ring::default_provider();
    if provider.secure_random.fill(&mut random).is_err() {
        // The system gave no random bytes (it never happens on Linux): fall back to the
        // clock and a counter, still unique per session.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!("{}.{n}.{nanos}", std::process::id());
        for (r, b) in random.iter_mut().zip(seed.bytes().cycle()) {
            *r = b;
        }
    }
    SaslParams::from_random(&random)
}

/// Why the servers' TLS could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    Read { path: PathBuf, error: String },
    /// A file is not valid PEM.
    BadPem {
        path: PathBuf,
        what: &'static str,
        error: String,
    },
    /// A file holds no item of the kind needed.
    NoPemItem { path: PathBuf, what: &'static str },
    /// rustls refused the certificate and key (a key that does not match, an unsupported
    /// key type).
    Config {
        cert: PathBuf,
        key: PathBuf,
        error: String,
    },
    /// Making the self-signed certificate failed.
    Generate { error: String },
    /// Keeping the self-signed certificate in the data directory failed.
    Write { path: PathBuf, error: String },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, error } => write!(
                f,
                "cannot read {}: {error}. Give a PEM file that exists with --cert/--key, or \
                 leave both out to use a self-signed certificate.",
                path.display()
            ),
            TlsError::BadPem { path, what, error } => write!(
                f,
                "{} is not a valid PEM {what} file ({error}). Give the file the \
                 certificate authority or `openssl req -x509 ... -out` wrote.",
                path.display()
            ),
            TlsError::NoPemItem { path, what } => write!(
                f,
                "{} holds no {what}. Check that --cert and --key are not swapped.",
                path.display()
            ),
            TlsError::Config { cert, key, error } => write!(
                f,
                "the certificate {} and the key {} cannot be used together: {error}. Give the \
                 key that belongs to the certificate.",
                cert.display(),
                key.display()
            ),
            TlsError::Generate { error } => {
                write!(f, "cannot make a self-signed certificate: {error}.")
            }
            TlsError::Write { path, error } => write!(
                f,
                "cannot keep the self-signed certificate in {}: {error}. Check that the data \
                 directory is writable, or give --cert and --key.",
                path.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(name: &str) -> TestDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let path = std::env::temp_dir()
                .join(format!("mailwire-{name}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            TestDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_self_signed_certificate_is_made_once_and_kept() {
        let dir = TestDir::new("tls-cert");
        let first = TlsSettings::load_or_create(dir.path(), "mail.example").unwrap();
        assert!(first.created());
        let pem = std::fs::read(dir.path().join(CERT_FILE)).unwrap();
        let second = TlsSettings::load_or_create(dir.path(), "mail.example").unwrap();
        assert!(!second.created());
        assert_eq!(std::fs::read(dir.path().join(CERT_FILE)).unwrap(), pem);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_files_say_which_and_why() {
        let dir = TestDir::new("tls-bad");
        let missing =
            TlsSettings::from_pem_files(&dir.path().join("no.pem"), &dir.path().join("k"));
        assert!(matches!(missing, Err(TlsError::Read { .. })));
        let text = dir.path().join("text.pem");
        std::fs::write(&text, "hello\n").unwrap();
        let err = TlsSettings::from_pem_files(&text, &text).unwrap_err();
        assert!(matches!(err, TlsError::NoPemItem { .. }), "{err}");
        assert!(err.to_string().contains("text.pem"), "{err}");
        // A key that does not belong to the certificate.
        let (cert, _) = self_signed("a").unwrap();
        let (_, other_key) = self_signed("b").unwrap();
        let c = dir.path().join("c.pem");
        let k = dir.path().join("k.pem");
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, other_key).unwrap();
        let err = TlsSettings::from_pem_files(&c, &k);
        assert!(matches!(err, Err(TlsError::Config { .. })), "{err:?}");
        // Swapped files.
        let err = TlsSettings::from_pem_files(&k, &c).unwrap_err();
        assert!(err.to_string().contains("swapped"), "{err}");
    }

    #[test]
    fn session_keys_keep_nss_key_log_lines() {
        use rustls::KeyLog as _;
        let keys = SessionKeys::default();
        keys.log("CLIENT_TRAFFIC_SECRET_0", &[0xab; 32], &[0x01, 0x02]);
        assert_eq!(
            keys.lines(),
            vec![format!("CLIENT_TRAFFIC_SECRET_0 {} 0102", "ab".repeat(32))]
        );
    }

    #[test]
    fn session_params_differ() {
        let a = session_params();
        let b = session_params();
        assert_ne!(a, b);
        assert!(!a.nonce.contains(','));
        assert_eq!(a.salt.len(), 18);
    }
}
