//! SASL (RFC 4422) on the server side, sans-IO: the mechanisms PLAIN (RFC 4616), LOGIN,
//! CRAM-MD5 (RFC 2195) and SCRAM-SHA-256 (RFC 7677, on RFC 5802), and the credentials a login
//! proves, for POP3 AUTH (RFC 5034) and SMTP AUTH (RFC 4954) alike.
//!
//! A [`SaslExchange`] takes the client's decoded responses one at a time and says what to do
//! next ([`SaslStep`]): send a challenge, check a [`Credential`] against the user's password
//! (the driver does that, with the store), or fail. Nothing here draws random numbers or reads
//! a clock: the CRAM-MD5 challenge and the SCRAM server nonce and salt are values the driver
//! passes in ([`SaslParams`]). The base64 framing of each protocol is the machines' (both
//! protocols encode challenges and responses alike: [`encode`], [`decode`]).
//!
//! [`client::SaslClient`] is the other side, for mailwire's own clients.
//!
//! Users' passwords are kept in clear (the assignment's `users.txt`), so SCRAM's salted
//! password is derived at each login from the password and this session's salt; the proof is
//! still checked exactly as RFC 5802 section 3 says, and the server proves it knows the
//! password too (the `v=` server signature).

use std::fmt;

pub mod client;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// SCRAM's iteration count (RFC 7677 section 4 asks for at least 4096).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// A SASL mechanism mailwire's servers offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// PLAIN (RFC 4616): `authzid NUL authcid NUL password`, in one response.
    Plain,
    /// LOGIN (no RFC; draft-murchison-sasl-login): the user name, then the password, each
    /// asked for by a challenge.
    Login,
    /// CRAM-MD5 (RFC 2195): the server sends a challenge, the client answers with its name and
    /// HMAC-MD5(password, challenge) in hex.
    CramMd5,
    /// SCRAM-SHA-256 (RFC 7677): both sides prove they know the password without sending it.
    ScramSha256,
}

impl Mechanism {
    /// Every mechanism, in the order they are advertised.
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::ScramSha256,
    ];

    /// The registered name, as CAPA's `SASL` and EHLO's `AUTH` list it.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// The mechanism of a name (any case).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Whether the password itself crosses the wire (only base64-encoded): PLAIN and LOGIN.
    /// RFC 4954 section 4 asks that a server can be set to permit them only under TLS.
    pub fn sends_password(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a session's server offers for security, set by the driver for each connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Whether TLS can be started (STLS, STARTTLS) or is already on.
    pub tls: TlsState,
    /// The SASL mechanisms offered (empty: no AUTH at all).
    pub mechanisms: Vec<Mechanism>,
    /// Whether a password may be sent without TLS (USER/PASS, PLAIN, LOGIN). The servers'
    /// default allows it on loopback only, so a class can read the base64 on its own machine.
    pub clear_passwords: bool,
    /// Fresh, unpredictable values for this session's CRAM-MD5 challenge and SCRAM exchange.
    pub params: SaslParams,
}

impl Default for Security {
    /// No TLS, every mechanism, passwords in clear allowed, and the fixed [`SaslParams`] of
    /// [`SaslParams::fixed`] (for runs in memory, which must be the same every time).
    fn default() -> Self {
        Self {
            tls: TlsState::Unavailable,
            mechanisms: Mechanism::ALL.to_vec(),
            clear_passwords: true,
            params: SaslParams::fixed(),
        }
    }
}

impl Security {
    /// Whether TLS protects the session now.
    pub fn tls_active(&self) -> bool {
        self.tls == TlsState::Active
    }

    /// Whether a password may be sent now (TLS is on, or clear passwords are allowed).
    pub fn passwords_allowed(&self) -> bool {
        self.tls_active() || self.clear_passwords
    }

    /// The mechanisms to advertise now: those that send the password only where that is
    /// allowed (RFC 4954 section 4: sites should not permit them without protection).
    pub fn advertised(&self) -> Vec<Mechanism> {
        self.mechanisms
            .iter()
            .copied()
            .filter(|m| !m.sends_password() || self.passwords_allowed())
            .collect()
    }
}

/// Whether a session can use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsState {
    /// The server has no certificate: STLS/STARTTLS are refused and not advertised.
    Unavailable,
    /// The client may start TLS (STLS, STARTTLS); it is advertised.
    Offered,
    /// TLS is on (implicit TLS from the first byte, or after STLS/STARTTLS).
    Active,
}

/// The values of one session that must be fresh and unpredictable, made by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslParams {
    /// Printable ASCII without `,` (RFC 5802's `printable`): SCRAM's server nonce part, and the
    /// unique part of the CRAM-MD5 challenge.
    pub nonce: String,
    /// SCRAM's salt for this session (the passwords are stored in clear, so any salt works;
    /// a fresh one per session makes each proof unique).
    pub salt: Vec<u8>,
}

impl SaslParams {
    /// Fixed values for in-memory runs and tests (never for a server on a socket: a fixed
    /// nonce lets a captured exchange be replayed).
    pub fn fixed() -> Self {
        Self {
            nonce: "fixed-nonce-for-replayable-runs".to_string(),
            salt: b"mailwire-salt".to_vec(),
        }
    }

    /// Values made from `random` bytes (at least 16): the nonce is their base64 (no `,`).
    pub fn from_random(random: &[u8]) -> Self {
        let (nonce, salt) = random.split_at(random.len() / 2);
        Self {
            nonce: STANDARD.encode(nonce),
            salt: salt.to_vec(),
        }
    }
}

/// How a client proves who it is; checked by the driver against the user's password with
/// [`Credential::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The password itself: POP3 USER/PASS, SASL PLAIN and LOGIN.
    Password(String),
    /// APOP: the digest the client sent and the timestamp of this session's greeting.
    Apop { digest: String, timestamp: String },
    /// CRAM-MD5: the challenge sent and the hex digest the client answered.
    CramMd5 { challenge: String, digest: String },
    /// SCRAM-SHA-256: everything needed to check the client's proof.
    Scram(ScramProof),
}

/// The client's SCRAM proof and the messages it signs (RFC 5802 section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramProof {
    /// The salt sent in the server-first message.
    pub salt: Vec<u8>,
    /// The iteration count sent in the server-first message.
    pub iterations: u32,
    /// client-first-message-bare "," server-first-message "," client-final-message-without-proof.
    pub auth_message: String,
    /// The decoded `p=` attribute.
    pub client_proof: Vec<u8>,
}

/// A credential that proved knowledge of the password, with what the server must send back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    /// SCRAM's server-final message (`v=` and the server signature), which proves to the
    /// client that the server knows the password too; `None` for other mechanisms.
    pub server_final: Option<Vec<u8>>,
}

impl Credential {
    /// Whether this credential proves knowledge of `secret`.
    pub fn matches(&self, secret: &str) -> bool {
        self.verify(secret).is_some()
    }

    /// Checks the credential against the user's password; `Some` when it proves it.
    pub fn verify(&self, secret: &str) -> Option<Verified> {
        let ok = match self {
            Credential::Password(given) => constant_time_eq(given.as_bytes(), secret.as_bytes()),
            Credential::Apop { digest, timestamp } => {
                apop_digest(timestamp, secret).eq_ignore_ascii_case(digest)
            }
            Credential::CramMd5 { challenge, digest } => {
                cram_md5_digest(challenge, secret).eq_ignore_ascii_case(digest)
            }
            Credential::Scram(proof) => {
                return proof.verify(secret).map(|server_final| Verified {
                    server_final: Some(server_final),
                });
            }
        };
        ok.then(Verified::default)
    }
}

impl ScramProof {
    /// RFC 5802 section 3: recovers ClientKey from the proof and the ClientSignature and
    /// compares its hash with StoredKey; on success, the server-final message.
    fn verify(&self, password: &str) -> Option<Vec<u8>> {
        let keys = ScramKeys::derive(password, &self.salt, self.iterations);
        let signature = hmac_sha256(&keys.stored_key, self.auth_message.as_bytes());
        if self.client_proof.len() != signature.len() {
            return None;
        }
        let client_key: Vec<u8> = self
            .client_proof
            .iter()
            .zip(signature.iter())
            .map(|(p, s)| p ^ s)
            .collect();
        let stored = Sha256::digest(&client_key);
        if !constant_time_eq(stored.as_slice(), &keys.stored_key) {
            return None;
        }
        let server_signature = hmac_sha256(&keys.server_key, self.auth_message.as_bytes());
        Some(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

/// The keys RFC 5802 section 3 derives from a password.
pub struct ScramKeys {
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Client Key").
    pub client_key: Vec<u8>,
}

impl ScramKeys {
    /// SaltedPassword = Hi(password, salt, i) (PBKDF2 with HMAC-SHA-256), and the keys from
    /// it. The password is used as its UTF-8 bytes: SASLprep (RFC 4013) is not applied, which
    /// changes nothing for ASCII passwords.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> ScramKeys {
        let salted: [u8; 32] =
            pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        ScramKeys {
            stored_key: Sha256::digest(&client_key).to_vec(),
            server_key: hmac_sha256(&salted, b"Server Key"),
            client_key,
        }
    }
}

/// HMAC-SHA-256 of `data` with `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => Vec::new(),
    }
}

/// The APOP digest of RFC 1939 section 7: MD5 of the timestamp followed by the secret, in
/// lower-case hex.
pub fn apop_digest(timestamp: &str, secret: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(timestamp.as_bytes());
    hasher.update(secret.as_bytes());
    hex(&hasher.finalize())
}

/// The CRAM-MD5 digest of RFC 2195 section 2: HMAC-MD5 (RFC 2104) keyed with the secret over
/// the challenge, in lower-case hex.
pub fn cram_md5_digest(challenge: &str, secret: &str) -> String {
    match <Hmac<Md5> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(challenge.as_bytes());
            hex(&mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference (the time taken does not tell how much
/// of a guess was right).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Base64 of a challenge (RFC 4648, with padding, as RFC 4954 and RFC 5034 ask).
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes a client's response line; `=` alone is the empty response of an initial response
/// (RFC 4954 section 4, RFC 5034 section 4).
pub fn decode(text: &str) -> Result<Vec<u8>, SaslError> {
    let text = text.trim_end_matches([' ', '\t']);
    if text == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(text).map_err(|_| SaslError::BadBase64)
}

/// Why an authentication exchange failed before any password was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 section 4, RFC 5034 section 4).
    Cancelled,
    /// A response was not valid base64.
    BadBase64,
    /// A response did not have the mechanism's form; says what was wrong.
    Malformed(&'static str),
    /// SCRAM's nonce or channel-binding attribute did not match what was sent before.
    ScramMismatch(&'static str),
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::Cancelled => f.write_str("authentication cancelled by the client"),
            SaslError::BadBase64 => f.write_str("the response is not valid base64"),
            SaslError::Malformed(what) => write!(f, "malformed response: {what}"),
            SaslError::ScramMismatch(what) => write!(f, "SCRAM exchange broken: {what}"),
        }
    }
}

impl std::error::Error for SaslError {}

/// What to do after a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this challenge (raw bytes; the machine base64-encodes them) and wait for the
    /// next response.
    Challenge(Vec<u8>),
    /// Check this user's credential (a request to the driver).
    Check {
        user: String,
        credential: Credential,
    },
    /// The exchange failed.
    Failed(SaslError),
}

/// One server-side authentication exchange in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslExchange {
    mechanism: Mechanism,
    stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Waiting for the first response (PLAIN without initial response, LOGIN's user name,
    /// SCRAM's client-first message).
    First,
    /// LOGIN: the user name is known, waiting for the password.
    LoginPassword { user: String },
    /// CRAM-MD5: the challenge sent.
    Cram { challenge: String },
    /// SCRAM: the server-first message sent.
    ScramFinal {
        user: String,
        gs2_header: String,
        nonce: String,
        client_first_bare: String,
        server_first: String,
        salt: Vec<u8>,
    },
    /// Over (checked or failed): any further response is an error.
    Done,
}

impl SaslExchange {
    /// Starts `mechanism` with the client's initial response (`None`: none given, the
    /// command had no second argument). `host` names the server in the CRAM-MD5 challenge.
    pub fn start(
        mechanism: Mechanism,
        initial: Option<Vec<u8>>,
        params: &SaslParams,
        host: &str,
    ) -> (SaslExchange, SaslStep) {
        let mut exchange = SaslExchange {
            mechanism,
            stage: Stage::First,
        };
        let step = match (mechanism, initial) {
            // PLAIN's one message comes from the client: without an initial response the
            // server asks for it with an empty challenge.
            (Mechanism::Plain, None) => SaslStep::Challenge(Vec::new()),
            (Mechanism::Login, None) => SaslStep::Challenge(b"Username:".to_vec()),
            (Mechanism::CramMd5, _) => {
                // RFC 2195 section 2: a msg-id: unique digits, a timestamp and the host name.
                let challenge = format!("<{}@{host}>", params.nonce);
                exchange.stage = Stage::Cram {
                    challenge: challenge.clone(),
                };
                SaslStep::Challenge(challenge.into_bytes())
            }
            // SCRAM's client speaks first (RFC 5802 section 5): without an initial response
            // the server asks for its message with an empty challenge.
            (Mechanism::ScramSha256, None) => SaslStep::Challenge(Vec::new()),
            (_, Some(response)) => exchange.first(&response, params),
        };
        exchange.note(&step);
        (exchange, step)
    }

    /// The mechanism in use.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Takes the client's next response (already base64-decoded).
    pub fn respond(&mut self, response: &[u8], params: &SaslParams) -> SaslStep {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        let step = match stage {
            Stage::First => self.first(response, params),
            Stage::LoginPassword { user } => SaslStep::Check {
                user,
                credential: Credential::Password(lossy(response)),
            },
            Stage::Cram { challenge } => cram_response(response, challenge),
            Stage::ScramFinal {
                user,
                gs2_header,
                nonce,
                client_first_bare,
                server_first,
                salt,
            } => scram_final(
                response,
                user,
                &gs2_header,
                &nonce,
                &client_first_bare,
                &server_first,
                salt,
            ),
            Stage::Done => SaslStep::Failed(SaslError::Malformed("the exchange is over")),
        };
        self.note(&step);
        step
    }

    fn note(&mut self, step: &SaslStep) {
        if !matches!(step, SaslStep::Challenge(_)) {
            self.stage = Stage::Done;
        }
    }

    /// The first response of PLAIN, LOGIN or SCRAM.
    fn first(&mut self, response: &[u8], params: &SaslParams) -> SaslStep {
        match self.mechanism {
            Mechanism::Plain => plain(response),
            Mechanism::Login => {
                let user = lossy(response);
                if user.is_empty() {
                    return SaslStep::Failed(SaslError::Malformed("empty user name"));
                }
                self.stage = Stage::LoginPassword { user };
                SaslStep::Challenge(b"Password:".to_vec())
            }
            Mechanism::CramMd5 => SaslStep::Failed(SaslError::Malformed("unexpected response")),
            Mechanism::ScramSha256 => match scram_first(response, params) {
                Ok((stage, server_first)) => {
                    self.stage = stage;
                    SaslStep::Challenge(server_first.into_bytes())
                }
                Err(e) => SaslStep::Failed(e),
            },
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// RFC 4616 section 2: `[authzid] NUL authcid NUL passwd`. An authzid other than the
/// authcid is refused (mailwire has no proxy logins).
fn plain(response: &[u8]) -> SaslStep {
    let mut parts = response.split(|b| *b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return SaslStep::Failed(SaslError::Malformed(
            "PLAIN needs authzid, NUL, user name, NUL, password (RFC 4616 section 2)",
        ));
    };
    if authcid.is_empty() {
        return SaslStep::Failed(SaslError::Malformed("empty user name"));
    }
    if !authzid.is_empty() && authzid != authcid {
        return SaslStep::Failed(SaslError::Malformed(
            "acting as another user (authzid) is not supported",
        ));
    }
    SaslStep::Check {
        user: lossy(authcid),
        credential: Credential::Password(lossy(passwd)),
    }
}

/// RFC 2195 section 2: `user SP digest`, the digest 32 lower-case hex digits.
fn cram_response(response: &[u8], challenge: String) -> SaslStep {
    let text = lossy(response);
    match text.rsplit_once(' ') {
        Some((user, digest))
            if !user.is_empty()
                && digest.len() == 32
                && digest.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            SaslStep::Check {
                user: user.to_string(),
                credential: Credential::CramMd5 {
                    challenge,
                    digest: digest.to_string(),
                },
            }
        }
        _ => SaslStep::Failed(SaslError::Malformed(
            "CRAM-MD5 needs the user name, a space and 32 hex digits (RFC 2195 section 2)",
        )),
    }
}

/// Reads SCRAM's client-first message (RFC 5802 section 7) and makes the server-first.
fn scram_first(response: &[u8], params: &SaslParams) -> Result<(Stage, String), SaslError> {
    let text = std::str::from_utf8(response)
        .map_err(|_| SaslError::Malformed("SCRAM messages are UTF-8"))?;
    // gs2-header = gs2-cbind-flag "," [authzid] ","
    let mut fields = text.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::Malformed("no GS2 header"));
    };
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(SaslError::Malformed(
                "channel binding is not offered (no SCRAM-SHA-256-PLUS)",
            ));
        }
        _ => return Err(SaslError::Malformed("bad channel-binding flag")),
    }
    if !authzid.is_empty() {
        return Err(SaslError::Malformed(
            "acting as another user (authzid) is not supported",
        ));
    }
    let gs2_header = format!("{flag},{authzid},");
    let mut attrs = bare.split(',');
    let user = match attrs.next() {
        Some(m) if m.starts_with("m=") => {
            return Err(SaslError::Malformed("mandatory extension not supported"));
        }
        Some(n) => n
            .strip_prefix("n=")
            .ok_or(SaslError::Malformed("no user name (n=)"))?,
        None => return Err(SaslError::Malformed("no user name (n=)")),
    };
    let user = unescape_saslname(user)?;
    let client_nonce = attrs
        .next()
        .and_then(|r| r.strip_prefix("r="))
        .filter(|r| !r.is_empty())
        .ok_or(SaslError::Malformed("no nonce (r=)"))?;
    let nonce = format!("{client_nonce}{}", params.nonce);
    let server_first = format!(
        "r={nonce},s={},i={SCRAM_ITERATIONS}",
        STANDARD.encode(&params.salt)
    );
    Ok((
        Stage::ScramFinal {
            user,
            gs2_header,
            nonce,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            salt: params.salt.clone(),
        },
        server_first,
    ))
}

/// RFC 5802 section 5.1: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn unescape_saslname(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        if let Some(r) = after.strip_prefix("=2C") {
            out.push(',');
            rest = r;
        } else if let Some(r) = after.strip_prefix("=3D") {
            out.push('=');
            rest = r;
        } else {
            return Err(SaslError::Malformed("bad escape in the user name"));
        }
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(SaslError::Malformed("empty user name"));
    }
    Ok(out)
}

/// Reads SCRAM's client-final message and asks for the proof to be checked.
fn scram_final(
    response: &[u8],
    user: String,
    gs2_header: &str,
    nonce: &str,
    client_first_bare: &str,
    server_first: &str,
    salt: Vec<u8>,
) -> SaslStep {
    let Ok(text) = std::str::from_utf8(response) else {
        return SaslStep::Failed(SaslError::Malformed("SCRAM messages are UTF-8"));
    };
    // The proof is the last attribute; what comes before it is signed.
    let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
        return SaslStep::Failed(SaslError::Malformed("no proof (p=)"));
    };
    let mut attrs = without_proof.split(',');
    let binding = attrs.next().and_then(|c| c.strip_prefix("c="));
    if binding != Some(STANDARD.encode(gs2_header.as_bytes()).as_str()) {
        return SaslStep::Failed(SaslError::ScramMismatch(
            "the channel binding (c=) is not the GS2 header sent first",
        ));
    }
    if attrs.next().and_then(|r| r.strip_prefix("r=")) != Some(nonce) {
        return SaslStep::Failed(SaslError::ScramMismatch(
            "the nonce (r=) is not the one the server sent",
        ));
    }
    let Ok(client_proof) = STANDARD.decode(proof) else {
        return SaslStep::Failed(SaslError::BadBase64);
    };
    SaslStep::Check {
        user,
        credential: Credential::Scram(ScramProof {
            salt,
            iterations: SCRAM_ITERATIONS,
            auth_message: format!("{client_first_bare},{server_first},{without_proof}"),
            client_proof,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        STANDARD.decode(s).unwrap()
    }

    #[test]
    fn plain_splits_authzid_user_and_password() {
        let (_, step) = SaslExchange::start(
            Mechanism::Plain,
            Some(b"\0alice\0wonderland".to_vec()),
            &SaslParams::fixed(),
            "localhost",
        );
        assert_eq!(
            step,
            SaslStep::Check {
                user: "alice".into(),
                credential: Credential::Password("wonderland".into())
            }
        );
        // RFC 4616 section 4's example: authzid, authcid and password given.
        let (_, step) = SaslExchange::start(
            Mechanism::Plain,
            Some(b"Ursel\0Kurt\0xipj3plmq".to_vec()),
            &SaslParams::fixed(),
            "h",
        );
        assert!(matches!(step, SaslStep::Failed(SaslError::Malformed(_))));
        let (mut ex, step) = SaslExchange::start(Mechanism::Plain, None, &SaslParams::fixed(), "h");
        assert_eq!(step, SaslStep::Challenge(Vec::new()));
        assert!(matches!(
            ex.respond(b"no nul here", &SaslParams::fixed()),
            SaslStep::Failed(_)
        ));
    }

    #[test]
    fn login_asks_for_user_then_password() {
        let p = SaslParams::fixed();
        let (mut ex, step) = SaslExchange::start(Mechanism::Login, None, &p, "h");
        assert_eq!(step, SaslStep::Challenge(b"Username:".to_vec()));
        assert_eq!(
            ex.respond(b"bob", &p),
            SaslStep::Challenge(b"Password:".to_vec())
        );
        assert_eq!(
            ex.respond(b"builder", &p),
            SaslStep::Check {
                user: "bob".into(),
                credential: Credential::Password("builder".into())
            }
        );
        assert!(matches!(ex.respond(b"more", &p), SaslStep::Failed(_)));
    }

    #[test]
    fn cram_md5_matches_rfc_2195_example() {
        // RFC 2195 section 2's example, bytes as the RFC prints them in base64.
        let challenge = b64("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
        assert_eq!(challenge, b"<1896.697170952@postoffice.reston.mci.net>");
        let response = b64("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
        assert_eq!(response, b"tim b913a602c7eda7a495b4e6e7334d3890");
        let challenge = String::from_utf8(challenge).unwrap();
        assert_eq!(
            cram_md5_digest(&challenge, "tanstaaftanstaaf"),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
        let step = cram_response(&response, challenge);
        let SaslStep::Check { user, credential } = step else {
            panic!("{step:?}")
        };
        assert_eq!(user, "tim");
        assert!(credential.matches("tanstaaftanstaaf"));
        assert!(!credential.matches("tanstaaf"));
    }

    #[test]
    fn cram_md5_challenge_is_a_msg_id_with_the_nonce() {
        let p = SaslParams {
            nonce: "123.456".into(),
            salt: vec![],
        };
        let (_, step) = SaslExchange::start(Mechanism::CramMd5, None, &p, "mail.example");
        assert_eq!(
            step,
            SaslStep::Challenge(b"<123.456@mail.example>".to_vec())
        );
    }

    /// RFC 7677 section 3's example: user "user", password "pencil".
    fn rfc7677_params() -> SaslParams {
        SaslParams {
            nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            salt: b64("W22ZaJ0SNY7soEsUEjb6gQ=="),
        }
    }

    #[test]
    fn scram_sha_256_matches_rfc_7677_example() {
        let p = rfc7677_params();
        let (mut ex, step) = SaslExchange::start(
            Mechanism::ScramSha256,
            Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec()),
            &p,
            "h",
        );
        assert_eq!(
            step,
            SaslStep::Challenge(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        let step = ex.respond(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            &p,
        );
        let SaslStep::Check { user, credential } = step else {
            panic!("{step:?}")
        };
        assert_eq!(user, "user");
        assert_eq!(credential.verify("pencil0"), None);
        assert_eq!(
            credential.verify("pencil"),
            Some(Verified {
                server_final: Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec())
            })
        );
    }

    #[test]
    fn scram_refuses_a_changed_nonce_or_binding() {
        let p = rfc7677_params();
        let first = b"n,,n=user,r=abc".to_vec();
        let (mut ex, _) = SaslExchange::start(Mechanism::ScramSha256, Some(first.clone()), &p, "h");
        assert!(matches!(
            ex.respond(b"c=biws,r=abcX,p=AAAA", &p),
            SaslStep::Failed(SaslError::ScramMismatch(_))
        ));
        let (mut ex, _) = SaslExchange::start(Mechanism::ScramSha256, Some(first), &p, "h");
        let nonce = format!("abc{}", p.nonce);
        assert!(matches!(
            ex.respond(format!("c=eSws,r={nonce},p=AAAA").as_bytes(), &p),
            SaslStep::Failed(SaslError::ScramMismatch(_))
        ));
        let (_, step) = SaslExchange::start(
            Mechanism::ScramSha256,
            Some(b"p=tls-unique,,n=user,r=abc".to_vec()),
            &p,
            "h",
        );
        assert!(matches!(step, SaslStep::Failed(_)));
    }

    #[test]
    fn saslname_escapes() {
        assert_eq!(unescape_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert!(unescape_saslname("a=20").is_err());
        assert!(unescape_saslname("").is_err());
    }

    #[test]
    fn decode_takes_the_lone_equals_as_empty() {
        assert_eq!(decode("=").unwrap(), Vec::<u8>::new());
        assert_eq!(decode("YWI=").unwrap(), b"ab");
        assert_eq!(decode("not base64!"), Err(SaslError::BadBase64));
    }

    #[test]
    fn advertising_hides_password_mechanisms_without_tls_when_told() {
        let mut s = Security {
            clear_passwords: false,
            ..Security::default()
        };
        assert_eq!(
            s.advertised(),
            vec![Mechanism::CramMd5, Mechanism::ScramSha256]
        );
        s.tls = TlsState::Active;
        assert_eq!(s.advertised(), Mechanism::ALL.to_vec());
    }
}
