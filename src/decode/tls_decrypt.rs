//! Decrypting the TLS records of a connection with the session secrets of a key log (the
//! NSS format SSLKEYLOGFILE writes; [`KeyLog`]), sans-IO: the records come from the
//! analyzer's TLS units and the bytes of the frames that carried them (a closure), nothing
//! is read or written here.
//!
//! - The clear ClientHello gives the session's random (the key log's index); the clear
//!   ServerHello the version (its supported_versions extension, RFC 8446 section 4.2.1) and
//!   the cipher suite.
//! - TLS 1.3 (RFC 8446): records are protected with the handshake traffic secrets
//!   (`CLIENT_HANDSHAKE_TRAFFIC_SECRET`, `SERVER_HANDSHAKE_TRAFFIC_SECRET`) until the
//!   sender's Finished, then with the application ones (`CLIENT_TRAFFIC_SECRET_0`,
//!   `SERVER_TRAFFIC_SECRET_0`); a KeyUpdate moves to the next secret (section 7.2). Keys
//!   and IVs come from HKDF-Expand-Label (sections 7.1 and 7.3), the nonce is the IV XOR the
//!   record's sequence number (section 5.3), the additional data the record header, and the
//!   inner plaintext ends with its real content type after zero padding (section 5.2).
//!   0-RTT early data is not decrypted.
//! - TLS 1.2 (RFC 5246) with the `CLIENT_RANDOM` master secret: the key block from the PRF
//!   (section 6.3), AES-GCM with the RFC 5288 nonce (4-byte salt + 8-byte explicit part)
//!   and ChaCha20-Poly1305 with the RFC 7905 one; records are encrypted after each side's
//!   ChangeCipherSpec.
//!
//! Supported suites: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
//! TLS_CHACHA20_POLY1305_SHA256, and the TLS 1.2 (EC)DHE/RSA AES-GCM and ChaCha20 suites.
//! A record that cannot be decrypted says why ([`NotDecrypted`]); nothing panics on
//! outside bytes.
//!
//! The application data, in order, is cut into POP3/SMTP units by the same cutter as the
//! clear streams ([`DecryptedUnit`]), each linked to the TLS records that carried it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use ring::{aead, hmac};

use super::analyzer::{Analyzer, Connection};
use super::stream::StreamEvent;
use super::units::{Dialog, Draft, UnitKind};
use crate::proto::Direction;
use crate::proto::keylog::KeyLog;

/// TLS record content types (RFC 8446 section 5.1).
const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// Handshake message types used here (RFC 8446 section 4).
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const FINISHED: u8 = 20;
const KEY_UPDATE: u8 = 24;

/// The ServerHello random of a HelloRetryRequest (RFC 8446 section 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Bytes of clear or decrypted handshake messages held while a message is incomplete.
const MAX_HANDSHAKE_BUFFER: usize = 256 << 10;

/// AEAD tag length of every supported suite.
const TAG_LEN: usize = 16;

/// TLS 1.3 version number, as supported_versions carries it.
pub const TLS13: u16 = 0x0304;
/// TLS 1.2's.
pub const TLS12: u16 = 0x0303;

/// A protocol version's name: `TLS 1.3`.
pub fn version_name(version: u16) -> String {
    match version {
        0x0300 => "SSL 3.0".to_string(),
        0x0301 => "TLS 1.0".to_string(),
        0x0302 => "TLS 1.1".to_string(),
        TLS12 => "TLS 1.2".to_string(),
        TLS13 => "TLS 1.3".to_string(),
        v => format!("version 0x{v:04x}"),
    }
}

/// A cipher suite mailwire can decrypt.
#[derive(Clone, Copy)]
struct Suite {
    name: &'static str,
    aead: &'static aead::Algorithm,
    hmac: hmac::Algorithm,
    /// TLS 1.2 AES-GCM: a 4-byte salt from the key block and an 8-byte explicit nonce in
    /// each record (RFC 5288 section 3); otherwise the IV XOR the sequence number.
    explicit_nonce: bool,
}

impl Suite {
    fn hash_len(&self) -> usize {
        self.hmac.digest_algorithm().output_len()
    }
}

/// The suite `id` for `version`, when mailwire can decrypt it.
fn suite(id: u16, version: u16) -> Option<Suite> {
    let s = |name, aead, hmac, explicit_nonce| {
        Some(Suite {
            name,
            aead,
            hmac,
            explicit_nonce,
        })
    };
    let (gcm128, gcm256, chacha) = (
        &aead::AES_128_GCM,
        &aead::AES_256_GCM,
        &aead::CHACHA20_POLY1305,
    );
    let (sha256, sha384) = (hmac::HMAC_SHA256, hmac::HMAC_SHA384);
    match (version, id) {
        (TLS13, 0x1301) => s("TLS_AES_128_GCM_SHA256", gcm128, sha256, false),
        (TLS13, 0x1302) => s("TLS_AES_256_GCM_SHA384", gcm256, sha384, false),
        (TLS13, 0x1303) => s("TLS_CHACHA20_POLY1305_SHA256", chacha, sha256, false),
        (TLS12, 0xC02B) => s(
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            gcm128,
            sha256,
            true,
        ),
        (TLS12, 0xC02C) => s(
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            gcm256,
            sha384,
            true,
        ),
        (TLS12, 0xC02F) => s(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            gcm128,
            sha256,
            true,
        ),
        (TLS12, 0xC030) => s(
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            gcm256,
            sha384,
            true,
        ),
        (TLS12, 0x009C) => s("TLS_RSA_WITH_AES_128_GCM_SHA256", gcm128, sha256, true),
        (TLS12, 0x009D) => s("TLS_RSA_WITH_AES_256_GCM_SHA384", gcm256, sha384, true),
        (TLS12, 0x009E) => s("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", gcm128, sha256, true),
        (TLS12, 0x009F) => s("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", gcm256, sha384, true),
        (TLS12, 0xCCA8) => s(
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            chacha,
            sha256,
            false,
        ),
        (TLS12, 0xCCA9) => s(
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            chacha,
            sha256,
            false,
        ),
        _ => None,
    }
}

/// HKDF-Expand (RFC 5869 section 2.3) with HMAC `alg`.
fn hkdf_expand(alg: hmac::Algorithm, prk: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let key = hmac::Key::new(alg, prk);
    let mut out = Vec::with_capacity(len);
    let mut previous: Vec<u8> = Vec::new();
    let mut counter = 1u8;
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&previous);
        ctx.update(info);
        ctx.update(&[counter]);
        previous = ctx.sign().as_ref().to_vec();
        out.extend_from_slice(&previous);
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// HKDF-Expand-Label (RFC 8446 section 7.1): `HkdfLabel` is the length, "tls13 " + label
/// and the context, each with its length prefix. Labels here are mailwire's own, short.
pub fn hkdf_expand_label(
    alg: hmac::Algorithm,
    secret: &[u8],
    label: &str,
    context: &[u8],
    len: u16,
) -> Vec<u8> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len() + context.len());
    info.extend_from_slice(&len.to_be_bytes());
    info.push(u8::try_from(full.len()).unwrap_or(u8::MAX));
    info.extend_from_slice(full.as_bytes());
    info.push(u8::try_from(context.len()).unwrap_or(u8::MAX));
    info.extend_from_slice(context);
    hkdf_expand(alg, secret, &info, usize::from(len))
}

/// The TLS 1.2 PRF (RFC 5246 section 5): P_hash(secret, label + seed).
fn prf12(alg: hmac::Algorithm, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let key = hmac::Key::new(alg, secret);
    let label_seed = [label, seed].concat();
    let mut a = hmac::sign(&key, &label_seed).as_ref().to_vec();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&a);
        ctx.update(&label_seed);
        out.extend_from_slice(ctx.sign().as_ref());
        a = hmac::sign(&key, &a).as_ref().to_vec();
    }
    out.truncate(len);
    out
}

/// The write key and IV of a TLS 1.3 traffic secret (RFC 8446 section 7.3).
pub fn traffic_key_iv(alg: hmac::Algorithm, key_len: usize, secret: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let key_len = u16::try_from(key_len).unwrap_or(32);
    (
        hkdf_expand_label(alg, secret, "key", b"", key_len),
        hkdf_expand_label(alg, secret, "iv", b"", 12),
    )
}

/// One direction's record protection: key, IV (or TLS 1.2 GCM salt) and sequence number.
struct RecordKeys {
    key: aead::LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    tls13: bool,
    explicit_nonce: bool,
}

impl RecordKeys {
    fn new(suite: &Suite, key: &[u8], iv: &[u8], tls13: bool) -> Option<Self> {
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(suite.aead, key).ok()?);
        let mut fixed = [0u8; 12];
        for (slot, b) in fixed.iter_mut().zip(iv) {
            *slot = *b;
        }
        Some(RecordKeys {
            key,
            iv: fixed,
            seq: 0,
            tls13,
            explicit_nonce: suite.explicit_nonce && !tls13,
        })
    }

    fn tls13(suite: &Suite, secret: &[u8]) -> Option<Self> {
        let (key, iv) = traffic_key_iv(suite.hmac, suite.aead.key_len(), secret);
        Self::new(suite, &key, &iv, true)
    }

    /// The IV XOR the sequence number, left-padded (RFC 8446 section 5.3, RFC 7905).
    fn xor_nonce(&self, seq: u64) -> [u8; 12] {
        let mut nonce = self.iv;
        for (slot, b) in nonce.iter_mut().skip(4).zip(seq.to_be_bytes()) {
            *slot ^= b;
        }
        nonce
    }

    /// Opens one record: its content type (the inner one in TLS 1.3) and plaintext. The
    /// sequence number moves on either way (the record was sent with it).
    fn open(&mut self, header: [u8; 5], body: &[u8]) -> Result<(u8, Vec<u8>), NotDecrypted> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let (nonce, ciphertext, aad) = if self.tls13 {
            // additional_data = the record header (RFC 8446 section 5.2).
            (self.xor_nonce(seq), body, header.to_vec())
        } else {
            let (nonce, ciphertext) = if self.explicit_nonce {
                let explicit = body.get(..8).ok_or(NotDecrypted::TooShort)?;
                let mut nonce = self.iv;
                for (slot, b) in nonce.iter_mut().skip(4).zip(explicit) {
                    *slot = *b;
                }
                (nonce, body.get(8..).unwrap_or_default())
            } else {
                (self.xor_nonce(seq), body)
            };
            // additional_data = seq_num + type + version + length (RFC 5246 section 6.2.3.3).
            let plain_len = ciphertext
                .len()
                .checked_sub(TAG_LEN)
                .ok_or(NotDecrypted::TooShort)?;
            let mut aad = seq.to_be_bytes().to_vec();
            aad.extend_from_slice(header.get(..3).unwrap_or_default());
            aad.extend_from_slice(&u16::try_from(plain_len).unwrap_or(u16::MAX).to_be_bytes());
            (nonce, ciphertext, aad)
        };
        if ciphertext.len() < TAG_LEN {
            return Err(NotDecrypted::TooShort);
        }
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| NotDecrypted::TagMismatch)?;
        let plain_len = plain.len();
        buf.truncate(plain_len);
        if !self.tls13 {
            return Ok((header[0], buf));
        }
        // TLSInnerPlaintext: content, the real type, zeros (RFC 8446 section 5.2).
        let Some(type_at) = buf.iter().rposition(|&b| b != 0) else {
            return Err(NotDecrypted::NoInnerType);
        };
        let kind = buf.get(type_at).copied().unwrap_or(0);
        buf.truncate(type_at);
        Ok((kind, buf))
    }
}

/// Why a record was not decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotDecrypted {
    /// No key log was given for this capture.
    NoKeyLog,
    /// The key log has no secret with this label for the session.
    NoKey {
        label: &'static str,
        client_random: String,
    },
    /// The ClientHello (whose random names the session in the key log) was not seen.
    NoClientHello,
    /// The ServerHello (version and suite) was not seen.
    NoServerHello,
    UnsupportedVersion(u16),
    UnsupportedSuite(u16),
    /// The AEAD tag did not match: a wrong key, or changed bytes.
    TagMismatch,
    /// Decrypted, but the inner plaintext is all zeros (no content type).
    NoInnerType,
    /// Shorter than a tag.
    TooShort,
    /// Some of the record's bytes were not captured.
    NotCaptured,
    /// The capture ended inside the record.
    Incomplete,
    /// An encrypted record where the handshake should still be in clear.
    Unexpected,
}

impl fmt::Display for NotDecrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotDecrypted::NoKeyLog => f.write_str(
                "no TLS key log for this capture (give the session secrets in NSS key log \
                 format, as SSLKEYLOGFILE writes them)",
            ),
            NotDecrypted::NoKey {
                label,
                client_random,
            } => {
                let short: String = client_random.chars().take(16).collect();
                write!(
                    f,
                    "no key for this session: the key log has no {label} for client random \
                     {short}…"
                )
            }
            NotDecrypted::NoClientHello => f.write_str(
                "the ClientHello was not captured (its random names the session's secrets)",
            ),
            NotDecrypted::NoServerHello => f.write_str(
                "the ServerHello was not captured (it gives the version and cipher suite)",
            ),
            NotDecrypted::UnsupportedVersion(v) => write!(
                f,
                "{} is not supported (mailwire decrypts TLS 1.2 and TLS 1.3)",
                version_name(*v)
            ),
            NotDecrypted::UnsupportedSuite(id) => write!(
                f,
                "unsupported cipher suite 0x{id:04X} (mailwire decrypts AES-GCM and \
                 ChaCha20-Poly1305 suites)"
            ),
            NotDecrypted::TagMismatch => f.write_str(
                "authentication tag mismatch: the key does not fit this record (a wrong key \
                 log, or changed bytes)",
            ),
            NotDecrypted::NoInnerType => {
                f.write_str("no content type in the decrypted record (all padding)")
            }
            NotDecrypted::TooShort => f.write_str("too short to hold an authentication tag"),
            NotDecrypted::NotCaptured => f.write_str("some of its bytes were not captured"),
            NotDecrypted::Incomplete => f.write_str("the capture ended inside the record"),
            NotDecrypted::Unexpected => {
                f.write_str("an encrypted record before the handshake allowed one")
            }
        }
    }
}

/// What became of one TLS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Not encrypted (ClientHello, ServerHello, ChangeCipherSpec...): what it holds.
    Clear(String),
    /// Decrypted: what it held (`application data, 12 bytes`, `handshake: Finished`)
    /// and with which keys.
    Decrypted {
        content: String,
        keys: &'static str,
    },
    NotDecrypted(NotDecrypted),
}

/// One TLS record of a connection (a [`UnitKind::Tls`] unit) and its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// Its index in [`Analyzer::units`].
    pub unit: usize,
    pub direction: Direction,
    /// The record header: content type, version, length.
    pub content_type: u8,
    pub version: u16,
    pub length: u16,
    pub outcome: RecordOutcome,
}

/// A POP3/SMTP unit cut from decrypted application data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedUnit {
    pub direction: Direction,
    pub kind: UnitKind,
    /// The first line, as a clear unit's text.
    pub text: String,
    /// Offsets in the direction's decrypted byte stream (0 is the first byte of
    /// application data inside TLS).
    pub stream: Range<u64>,
    pub lines: u32,
    pub multi_line: bool,
    /// The command it answers (index in [`TlsConnection::units`]).
    pub reply_to: Option<usize>,
    /// The TLS records that carried it (indices in [`Analyzer::units`]), in order.
    pub records: Vec<usize>,
    /// The frames that carried those records, ascending.
    pub frames: Vec<usize>,
    pub notes: Vec<String>,
}

/// The TLS session of a connection, as its hellos show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The negotiated version (0 before the ServerHello is seen).
    pub version: u16,
    /// The cipher suite number (0 before the ServerHello is seen).
    pub suite: u16,
    /// Its name, when mailwire can decrypt it.
    pub suite_name: Option<&'static str>,
    pub client_random: Vec<u8>,
}

/// One connection's TLS records, decrypted where the key log allows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConnection {
    /// Its index in [`Analyzer::connections`].
    pub conn: usize,
    pub session: Option<SessionInfo>,
    /// Every TLS record, in the order they were cut (ascending unit index).
    pub records: Vec<RecordView>,
    /// The commands and replies found in the decrypted application data.
    pub units: Vec<DecryptedUnit>,
    /// Record unit -> the decrypted units it carries (in part) / that end in it.
    carrying: HashMap<usize, Vec<usize>>,
    ending: HashMap<usize, Vec<usize>>,
    /// The connection's unit count and ended streams when this was computed (see
    /// [`TlsDecryption::update`]): the end of a stream cuts its last line.
    seen: (usize, [bool; 2]),
}

impl TlsConnection {
    fn new(
        conn: usize,
        session: Option<SessionInfo>,
        records: Vec<RecordView>,
        units: Vec<DecryptedUnit>,
    ) -> Self {
        let mut carrying: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut ending: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, u) in units.iter().enumerate() {
            for r in &u.records {
                carrying.entry(*r).or_default().push(i);
            }
            if let Some(r) = u.records.last() {
                ending.entry(*r).or_default().push(i);
            }
        }
        TlsConnection {
            conn,
            session,
            records,
            units,
            carrying,
            ending,
            seen: (0, [false; 2]),
        }
    }

    /// The record that is unit `unit`.
    pub fn record(&self, unit: usize) -> Option<&RecordView> {
        let at = self.records.binary_search_by_key(&unit, |r| r.unit).ok()?;
        self.records.get(at)
    }

    /// The decrypted units carried (in part) by record `unit`.
    pub fn units_in(&self, unit: usize) -> impl Iterator<Item = (usize, &DecryptedUnit)> {
        self.indexed(self.carrying.get(&unit))
    }

    /// The decrypted units whose last record is `unit` (where a transcript prints them).
    pub fn units_ending_in(&self, unit: usize) -> impl Iterator<Item = (usize, &DecryptedUnit)> {
        self.indexed(self.ending.get(&unit))
    }

    fn indexed<'s>(
        &'s self,
        list: Option<&'s Vec<usize>>,
    ) -> impl Iterator<Item = (usize, &'s DecryptedUnit)> {
        list.into_iter()
            .flatten()
            .filter_map(|&i| Some((i, self.units.get(i)?)))
    }
}

/// Every connection with TLS records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsDecryption {
    /// Shared: an update keeps the connections that did not change.
    pub conns: Vec<Arc<TlsConnection>>,
    by_conn: HashMap<usize, usize>,
    /// Per analyzer connection, how many of its units were looked at for TLS records (so
    /// an update looks only at the new ones).
    checked: Vec<usize>,
}

impl TlsDecryption {
    /// The TLS view of analyzer connection `conn`, when it has TLS records.
    pub fn connection(&self, conn: usize) -> Option<&TlsConnection> {
        self.conns.get(*self.by_conn.get(&conn)?).map(|c| &**c)
    }

    fn shared(&self, conn: usize) -> Option<&Arc<TlsConnection>> {
        self.conns.get(*self.by_conn.get(&conn)?)
    }

    /// The record that is analyzer unit `unit` on connection `conn`.
    pub fn record(&self, conn: usize, unit: usize) -> Option<&RecordView> {
        self.connection(conn)?.record(unit)
    }

    /// How many units were found in decrypted data, over all connections.
    pub fn decrypted_units(&self) -> usize {
        self.conns.iter().map(|c| c.units.len()).sum()
    }

    /// [`decrypt_all`] after the analyzer took more frames, with the same key log: a
    /// connection with no new unit since `self` was computed is kept, the others are
    /// decrypted again (a live run adds units to a few connections at a time).
    pub fn update<'a>(
        &self,
        analyzer: &Analyzer,
        frame_data: impl Fn(usize) -> Option<Cow<'a, [u8]>>,
        keylog: &KeyLog,
    ) -> TlsDecryption {
        let mut out = TlsDecryption::default();
        for conn in analyzer.connections() {
            out.checked.push(conn.units.len());
            let previous = self.shared(conn.index);
            let next = match previous {
                Some(c) if c.seen == seen(conn) => Arc::clone(c),
                Some(_) => Arc::new(decrypt_connection(
                    analyzer,
                    conn.index,
                    &frame_data,
                    keylog,
                )),
                None => {
                    // The units looked at before held no TLS record: only the new ones.
                    let from = self.checked.get(conn.index).copied().unwrap_or(0);
                    if !has_tls(analyzer, conn, from) {
                        continue;
                    }
                    Arc::new(decrypt_connection(
                        analyzer,
                        conn.index,
                        &frame_data,
                        keylog,
                    ))
                }
            };
            out.by_conn.insert(conn.index, out.conns.len());
            out.conns.push(next);
        }
        out
    }
}

/// What a connection's decryption depends on besides its frames and keys.
fn seen(conn: &Connection) -> (usize, [bool; 2]) {
    (
        conn.units.len(),
        [
            conn.stream(Direction::ClientToServer).is_ended(),
            conn.stream(Direction::ServerToClient).is_ended(),
        ],
    )
}

/// Whether a connection has TLS records among its units from the `from`-th on.
fn has_tls(analyzer: &Analyzer, conn: &Connection, from: usize) -> bool {
    conn.units.iter().skip(from).any(|&u| {
        analyzer
            .units()
            .get(u)
            .is_some_and(|unit| unit.kind == UnitKind::Tls)
    })
}

/// Decrypts the TLS records of every connection that has some. `frame_data` gives a
/// frame's bytes by index (`None` when they are not kept).
pub fn decrypt_all<'a>(
    analyzer: &Analyzer,
    frame_data: impl Fn(usize) -> Option<Cow<'a, [u8]>>,
    keylog: &KeyLog,
) -> TlsDecryption {
    let mut out = TlsDecryption::default();
    for conn in analyzer.connections() {
        out.checked.push(conn.units.len());
        if has_tls(analyzer, conn, 0) {
            out.by_conn.insert(conn.index, out.conns.len());
            out.conns.push(Arc::new(decrypt_connection(
                analyzer,
                conn.index,
                &frame_data,
                keylog,
            )));
        }
    }
    out
}

/// One record as read from its frames.
struct Record {
    unit: usize,
    direction: Direction,
    header: [u8; 5],
    body: Result<Vec<u8>, NotDecrypted>,
}

impl Record {
    fn content_type(&self) -> u8 {
        self.header[0]
    }
}

/// Reads the TLS records of a connection from their frames.
fn read_records<'a>(
    analyzer: &Analyzer,
    conn: &Connection,
    frame_data: &impl Fn(usize) -> Option<Cow<'a, [u8]>>,
    with_keys: bool,
) -> Vec<Record> {
    let mut records = Vec::new();
    for &u in &conn.units {
        let Some(unit) = analyzer.units().get(u) else {
            continue;
        };
        if unit.kind != UnitKind::Tls {
            continue;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(unit.len()).unwrap_or(0));
        let mut missing = unit.carriers.is_empty();
        // Without keys, an application-data record's body is never read: only its header.
        let header_only = !with_keys
            && unit
                .carriers
                .first()
                .and_then(|c| frame_data(c.frame)?.get(c.range.start).copied())
                == Some(APPLICATION_DATA);
        for c in &unit.carriers {
            if header_only && bytes.len() >= 5 {
                break;
            }
            match frame_data(c.frame)
                .as_deref()
                .and_then(|d| d.get(c.range.clone()))
            {
                Some(b) => bytes.extend_from_slice(b),
                None => missing = true,
            }
        }
        let mut header = [0u8; 5];
        for (slot, b) in header.iter_mut().zip(&bytes) {
            *slot = *b;
        }
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let body = if header_only && bytes.len() >= 5 {
            Err(NotDecrypted::NoKeyLog)
        } else if missing || (bytes.len() as u64) < unit.len() {
            Err(NotDecrypted::NotCaptured)
        } else if bytes.len() < 5 + length {
            Err(NotDecrypted::Incomplete)
        } else {
            Ok(bytes.get(5..5 + length).unwrap_or_default().to_vec())
        };
        records.push(Record {
            unit: u,
            direction: unit.direction,
            header,
            body,
        });
    }
    records
}

/// Complete handshake messages (type, body) from a buffer of handshake bytes; what is left
/// is an incomplete message's start.
fn take_messages(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(&[kind, a, b, c]) = buf.get(at..at + 4) {
        let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        let Some(body) = buf.get(at + 4..at + 4 + len) else {
            break;
        };
        out.push((kind, body.to_vec()));
        at += 4 + len;
    }
    buf.drain(..at.min(buf.len()));
    if buf.len() > MAX_HANDSHAKE_BUFFER {
        buf.clear();
    }
    out
}

fn handshake_name(kind: u8) -> String {
    match kind {
        0 => "HelloRequest".into(),
        1 => "ClientHello".into(),
        2 => "ServerHello".into(),
        4 => "NewSessionTicket".into(),
        5 => "EndOfEarlyData".into(),
        8 => "EncryptedExtensions".into(),
        11 => "Certificate".into(),
        12 => "ServerKeyExchange".into(),
        13 => "CertificateRequest".into(),
        14 => "ServerHelloDone".into(),
        15 => "CertificateVerify".into(),
        16 => "ClientKeyExchange".into(),
        20 => "Finished".into(),
        24 => "KeyUpdate".into(),
        k => format!("handshake message {k}"),
    }
}

fn alert_text(body: &[u8]) -> String {
    let Some(&[level, desc]) = body.get(..2) else {
        return "alert (malformed)".into();
    };
    let name = match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        46 => "certificate_unknown",
        48 => "unknown_ca",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        80 => "internal_error",
        90 => "user_canceled",
        109 => "missing_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "",
    };
    let level = if level == 2 { "fatal " } else { "" };
    if name.is_empty() {
        format!("{level}alert {desc}")
    } else {
        format!("{level}alert: {name}")
    }
}

/// What the hellos say.
#[derive(Default)]
struct Hellos {
    client_random: Option<Vec<u8>>,
    /// (version, suite, server random) of the ServerHello (not a HelloRetryRequest).
    server: Option<(u16, u16, Vec<u8>)>,
}

/// Reads a ServerHello body: negotiated version, suite, random; `None` for a
/// HelloRetryRequest or a malformed one.
fn parse_server_hello(body: &[u8]) -> Option<(u16, u16, Vec<u8>)> {
    let legacy = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let random = body.get(2..34)?;
    if random == HRR_RANDOM {
        return None;
    }
    let sid_len = usize::from(*body.get(34)?);
    let at = 35 + sid_len;
    let suite = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
    let mut version = legacy;
    // Extensions (after the compression method): supported_versions (43) says 1.3.
    let ext_start = at + 3;
    if let Some(&[hi, lo]) = body.get(ext_start..ext_start + 2) {
        let end = ext_start + 2 + usize::from(u16::from_be_bytes([hi, lo]));
        let mut p = ext_start + 2;
        while let Some(&[t1, t2, l1, l2]) = body.get(p..p + 4) {
            let len = usize::from(u16::from_be_bytes([l1, l2]));
            if p + 4 + len > end {
                break;
            }
            if u16::from_be_bytes([t1, t2]) == 43
                && let Some(&[v1, v2]) = body.get(p + 4..p + 6)
            {
                version = u16::from_be_bytes([v1, v2]);
            }
            p += 4 + len;
        }
    }
    Some((version, suite, random.to_vec()))
}

/// Describes a clear handshake record and learns from its hellos.
fn clear_handshake(buf: &mut Vec<u8>, body: &[u8], hellos: &mut Hellos) -> String {
    buf.extend_from_slice(body);
    let mut names = Vec::new();
    for (kind, msg) in take_messages(buf) {
        match kind {
            CLIENT_HELLO => {
                if hellos.client_random.is_none()
                    && let Some(r) = msg.get(2..34)
                {
                    hellos.client_random = Some(r.to_vec());
                }
                names.push("ClientHello".to_string());
            }
            SERVER_HELLO => match parse_server_hello(&msg) {
                Some((version, suite_id, random)) => {
                    let suite_text = suite(suite_id, version)
                        .map_or_else(|| format!("suite 0x{suite_id:04X}"), |s| s.name.into());
                    names.push(format!(
                        "ServerHello ({}, {suite_text})",
                        version_name(version)
                    ));
                    // The first ServerHello counts (not bytes read after it).
                    if hellos.server.is_none() {
                        hellos.server = Some((version, suite_id, random));
                    }
                }
                None => names.push("HelloRetryRequest".into()),
            },
            k => names.push(handshake_name(k)),
        }
    }
    if names.is_empty() {
        "handshake (part of a message)".into()
    } else {
        format!("handshake: {}", names.join(", "))
    }
}

/// Which keys protect a direction's records now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Epoch {
    Clear,
    Handshake,
    Application,
}

/// Key log labels of a direction (RFC 8446 section 7.1 names, as NSS logs them).
fn labels(direction: Direction) -> (&'static str, &'static str) {
    match direction {
        Direction::ClientToServer => ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"),
        Direction::ServerToClient => ("SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session as the hellos give it, or why its records cannot be decrypted.
struct Session {
    version: u16,
    suite: Result<Suite, NotDecrypted>,
    client_random: Vec<u8>,
    server_random: Vec<u8>,
}

/// One direction's decryption state.
struct Side {
    direction: Direction,
    epoch: Epoch,
    keys: Option<RecordKeys>,
    /// Why the current epoch has no keys.
    no_keys: Option<NotDecrypted>,
    /// The current TLS 1.3 traffic secret (for a KeyUpdate).
    secret: Vec<u8>,
    handshake: Vec<u8>,
    /// The record just decrypted ended this epoch: its Finished (to the application
    /// keys) or a KeyUpdate (to the next secret, RFC 8446 section 7.2).
    switch: Option<Switch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Switch {
    Finished,
    KeyUpdate,
}

/// A record's result in the plaintext stream: application data, or bytes lost.
enum Plain {
    Data(Vec<u8>),
    Lost(u64),
}

impl Side {
    fn new(direction: Direction) -> Self {
        Side {
            direction,
            epoch: Epoch::Clear,
            keys: None,
            no_keys: None,
            secret: Vec::new(),
            handshake: Vec::new(),
            switch: None,
        }
    }

    /// Enters TLS 1.3 epoch `epoch` with its secret from the key log.
    fn enter13(&mut self, epoch: Epoch, session: &Session, keylog: &KeyLog) {
        self.epoch = epoch;
        self.keys = None;
        self.handshake.clear();
        let suite = match &session.suite {
            Ok(s) => *s,
            Err(why) => {
                self.no_keys = Some(why.clone());
                return;
            }
        };
        let (hs, app) = labels(self.direction);
        let label = if epoch == Epoch::Handshake { hs } else { app };
        match keylog.secret(label, &session.client_random) {
            Some(secret) => {
                self.secret = secret.to_vec();
                self.keys = RecordKeys::tls13(&suite, secret);
                self.no_keys = None;
            }
            None if keylog.is_empty() => self.no_keys = Some(NotDecrypted::NoKeyLog),
            None => {
                self.no_keys = Some(NotDecrypted::NoKey {
                    label,
                    client_random: hex(&session.client_random),
                })
            }
        }
    }

    /// Enters the TLS 1.2 encrypted epoch (after this side's ChangeCipherSpec).
    fn enter12(&mut self, session: &Session, keylog: &KeyLog) {
        self.epoch = Epoch::Application;
        self.keys = None;
        self.handshake.clear();
        let suite = match &session.suite {
            Ok(s) => *s,
            Err(why) => {
                self.no_keys = Some(why.clone());
                return;
            }
        };
        let Some(master) = keylog.secret("CLIENT_RANDOM", &session.client_random) else {
            self.no_keys = Some(if keylog.is_empty() {
                NotDecrypted::NoKeyLog
            } else {
                NotDecrypted::NoKey {
                    label: "CLIENT_RANDOM",
                    client_random: hex(&session.client_random),
                }
            });
            return;
        };
        // key_block: client key, server key, client IV, server IV (no MAC keys for AEAD).
        let key_len = suite.aead.key_len();
        let iv_len = if suite.explicit_nonce { 4 } else { 12 };
        let seed = [session.server_random.as_slice(), &session.client_random].concat();
        let block = prf12(
            suite.hmac,
            master,
            b"key expansion",
            &seed,
            2 * (key_len + iv_len),
        );
        let (key_at, iv_at) = match self.direction {
            Direction::ClientToServer => (0, 2 * key_len),
            Direction::ServerToClient => (key_len, 2 * key_len + iv_len),
        };
        let key = block.get(key_at..key_at + key_len).unwrap_or_default();
        let iv = block.get(iv_at..iv_at + iv_len).unwrap_or_default();
        self.keys = RecordKeys::new(&suite, key, iv, false);
        self.no_keys = None;
    }

    /// Decrypts the next protected record of this side.
    fn protected(
        &mut self,
        record: &Record,
        body: &[u8],
        session: &Session,
        keylog: &KeyLog,
    ) -> (RecordOutcome, Option<Plain>) {
        let tls13 = session.version == TLS13;
        let keys_name = match (tls13, self.epoch) {
            (true, Epoch::Handshake) => "handshake traffic keys",
            (true, _) => "application traffic keys",
            (false, _) => "TLS 1.2 session keys",
        };
        let lost = || {
            Plain::Lost(
                (body.len() as u64)
                    .saturating_sub(TAG_LEN as u64 + u64::from(tls13))
                    .max(1),
            )
        };
        let result = match self.keys.as_mut() {
            Some(keys) => keys.open(record.header, body),
            None => Err(self.no_keys.clone().unwrap_or(NotDecrypted::Unexpected)),
        };
        let (kind, plain) = match result {
            Ok(ok) => ok,
            Err(why) => {
                // TLS 1.3: a Finished this side sent may not have been seen; try the
                // application keys from sequence number 0.
                if tls13 && self.epoch == Epoch::Handshake {
                    let mut next = Side::new(self.direction);
                    next.enter13(Epoch::Application, session, keylog);
                    if let Some(Ok(ok)) = next.keys.as_mut().map(|k| k.open(record.header, body)) {
                        *self = next;
                        return self.opened(ok, "application traffic keys", session);
                    }
                }
                let plain = self.may_carry_data(record, tls13).then(lost);
                return (RecordOutcome::NotDecrypted(why), plain);
            }
        };
        self.opened((kind, plain), keys_name, session)
    }

    /// Whether a record that could not be read may have carried application data (its
    /// loss is then a gap in the decrypted stream): in TLS 1.3 any record under the
    /// application keys (the real type is inside), in TLS 1.2 an application-data record.
    fn may_carry_data(&self, record: &Record, tls13: bool) -> bool {
        self.epoch == Epoch::Application && (tls13 || record.content_type() == APPLICATION_DATA)
    }

    /// What a decrypted record held; moves to the next keys after a Finished or KeyUpdate.
    fn opened(
        &mut self,
        (kind, plain): (u8, Vec<u8>),
        keys: &'static str,
        session: &Session,
    ) -> (RecordOutcome, Option<Plain>) {
        let decrypted = |content: String| RecordOutcome::Decrypted { content, keys };
        match kind {
            APPLICATION_DATA => {
                let content = format!("application data, {} bytes", plain.len());
                (decrypted(content), Some(Plain::Data(plain)))
            }
            ALERT => (decrypted(alert_text(&plain)), None),
            HANDSHAKE => {
                self.handshake.extend_from_slice(&plain);
                let messages = take_messages(&mut self.handshake);
                let names: Vec<String> = messages.iter().map(|(k, _)| handshake_name(*k)).collect();
                let finished = messages.iter().any(|(k, _)| *k == FINISHED);
                let key_update = messages.iter().any(|(k, _)| *k == KEY_UPDATE);
                if session.version == TLS13 {
                    if finished && self.epoch == Epoch::Handshake {
                        self.switch = Some(Switch::Finished);
                    } else if key_update && self.epoch == Epoch::Application {
                        self.switch = Some(Switch::KeyUpdate);
                    }
                }
                let text = if names.is_empty() {
                    "handshake (part of a message)".to_string()
                } else {
                    format!("handshake: {}", names.join(", "))
                };
                (decrypted(text), None)
            }
            k => (decrypted(format!("content type {k}")), None),
        }
    }

    /// Applies a switch the last record asked for.
    fn after_record(&mut self, session: &Session, keylog: &KeyLog) {
        match self.switch.take() {
            Some(Switch::Finished) => self.enter13(Epoch::Application, session, keylog),
            Some(Switch::KeyUpdate) => {
                if let Ok(suite) = &session.suite {
                    let len = u16::try_from(suite.hash_len()).unwrap_or(32);
                    self.secret =
                        hkdf_expand_label(suite.hmac, &self.secret, "traffic upd", b"", len);
                    self.keys = RecordKeys::tls13(suite, &self.secret);
                    self.handshake.clear();
                }
            }
            None => {}
        }
    }

    /// Handles one record of this side.
    fn record(
        &mut self,
        record: &Record,
        session: Option<&Session>,
        hellos: &Hellos,
        keylog: &KeyLog,
    ) -> (RecordOutcome, Option<Plain>) {
        let body = match &record.body {
            Ok(b) => b.as_slice(),
            Err(why) => {
                let tls13 = session.is_some_and(|s| s.version == TLS13);
                let plain = self
                    .may_carry_data(record, tls13)
                    .then(|| Plain::Lost(u64::from(record.length()).max(1)));
                return (RecordOutcome::NotDecrypted(why.clone()), plain);
            }
        };
        let tls13 = session.is_some_and(|s| s.version == TLS13);
        let kind = record.content_type();
        if self.epoch == Epoch::Clear {
            match kind {
                HANDSHAKE => {
                    // The hellos were read in a first pass; here only described.
                    let text = clear_handshake(&mut self.handshake, body, &mut Hellos::default());
                    return (RecordOutcome::Clear(text), None);
                }
                ALERT => return (RecordOutcome::Clear(alert_text(body)), None),
                CHANGE_CIPHER_SPEC if tls13 => {
                    return (
                        RecordOutcome::Clear(
                            "change-cipher-spec (sent only for middlebox compatibility in TLS \
                             1.3, RFC 8446 appendix D.4)"
                                .into(),
                        ),
                        None,
                    );
                }
                CHANGE_CIPHER_SPEC => {
                    match session {
                        Some(s) => self.enter12(s, keylog),
                        None => {
                            self.epoch = Epoch::Application;
                            self.no_keys = Some(self.missing_hello(hellos));
                        }
                    }
                    return (
                        RecordOutcome::Clear(
                            "change-cipher-spec: this side's next records are encrypted (RFC \
                             5246 section 7.1)"
                                .into(),
                        ),
                        None,
                    );
                }
                APPLICATION_DATA if tls13 => {
                    if let Some(s) = session {
                        self.enter13(Epoch::Handshake, s, keylog);
                    }
                }
                _ => {
                    let why = if session.is_none() {
                        self.missing_hello(hellos)
                    } else {
                        NotDecrypted::Unexpected
                    };
                    return (RecordOutcome::NotDecrypted(why), None);
                }
            }
        } else if tls13 && kind == CHANGE_CIPHER_SPEC {
            return (
                RecordOutcome::Clear("change-cipher-spec (middlebox compatibility)".into()),
                None,
            );
        }
        let Some(session) = session else {
            return (
                RecordOutcome::NotDecrypted(self.missing_hello(hellos)),
                None,
            );
        };
        let out = self.protected(record, body, session, keylog);
        self.after_record(session, keylog);
        out
    }

    fn missing_hello(&self, hellos: &Hellos) -> NotDecrypted {
        if hellos.client_random.is_none() {
            NotDecrypted::NoClientHello
        } else {
            NotDecrypted::NoServerHello
        }
    }
}

impl Record {
    fn length(&self) -> u16 {
        u16::from_be_bytes([self.header[3], self.header[4]])
    }
}

/// The session once both hellos are known.
fn session_of(hellos: &Hellos) -> Option<Session> {
    let client_random = hellos.client_random.clone()?;
    let (version, suite_id, server_random) = hellos.server.clone()?;
    let suite = match version {
        TLS13 | TLS12 => suite(suite_id, version).ok_or(NotDecrypted::UnsupportedSuite(suite_id)),
        v => Err(NotDecrypted::UnsupportedVersion(v)),
    };
    Some(Session {
        version,
        suite,
        client_random,
        server_random,
    })
}

/// Decrypts the TLS records of analyzer connection `conn` and cuts the application data
/// into units.
pub fn decrypt_connection<'a>(
    analyzer: &Analyzer,
    conn: usize,
    frame_data: &impl Fn(usize) -> Option<Cow<'a, [u8]>>,
    keylog: &KeyLog,
) -> TlsConnection {
    let Some(connection) = analyzer.connections().get(conn) else {
        return TlsConnection::new(conn, None, Vec::new(), Vec::new());
    };
    let records = read_records(analyzer, connection, frame_data, !keylog.is_empty());
    // The hellos are in clear, before either side's encrypted records: read them first,
    // so that each side knows the session whatever order the records came in.
    let mut hellos = Hellos::default();
    for dir in [Direction::ClientToServer, Direction::ServerToClient] {
        let mut buf = Vec::new();
        for r in records.iter().filter(|r| r.direction == dir) {
            match r.content_type() {
                // TLS 1.3 sends a ChangeCipherSpec for middleboxes, also between a
                // HelloRetryRequest and the ServerHello: read on. (In TLS 1.2 the records
                // after it are encrypted: the first hellos, kept, came before.)
                CHANGE_CIPHER_SPEC => continue,
                HANDSHAKE => {}
                _ => break,
            }
            if let Ok(body) = &r.body {
                clear_handshake(&mut buf, body, &mut hellos);
            }
        }
    }
    let session = session_of(&hellos);
    let mut sides = [
        Side::new(Direction::ClientToServer),
        Side::new(Direction::ServerToClient),
    ];
    let mut views = Vec::with_capacity(records.len());
    // Plaintext events per record, in record order, with the record's unit.
    let mut plain: Vec<(usize, Direction, Plain)> = Vec::new();
    for r in &records {
        let Some(side) = sides.get_mut(r.direction.index()) else {
            continue;
        };
        let (outcome, p) = side.record(r, session.as_ref(), &hellos, keylog);
        if let Some(p) = p {
            plain.push((r.unit, r.direction, p));
        }
        views.push(RecordView {
            unit: r.unit,
            direction: r.direction,
            content_type: r.content_type(),
            version: u16::from_be_bytes([r.header[1], r.header[2]]),
            length: r.length(),
            outcome,
        });
    }
    let units = cut_plaintext(analyzer, connection, &plain);
    let info = session.as_ref().map(|s| SessionInfo {
        version: s.version,
        suite: hellos.server.as_ref().map_or(0, |h| h.1),
        suite_name: s.suite.as_ref().ok().map(|s| s.name),
        client_random: s.client_random.clone(),
    });
    let mut out = TlsConnection::new(conn, info, views, units);
    out.seen = seen(connection);
    out
}

/// Runs the POP3/SMTP cutter on the decrypted application data of both directions, in
/// the order the records were cut, and links each unit to its records.
fn cut_plaintext(
    analyzer: &Analyzer,
    connection: &Connection,
    plain: &[(usize, Direction, Plain)],
) -> Vec<DecryptedUnit> {
    let Some(protocol) = connection.mail_protocol() else {
        return Vec::new();
    };
    if !plain.iter().any(|(_, _, p)| matches!(p, Plain::Data(_))) {
        return Vec::new();
    }
    // TLS after STLS/STARTTLS: the greeting came in clear; on an implicit-TLS port it
    // comes inside.
    let units = analyzer.units();
    let greeted = connection.units.iter().any(|&u| {
        units
            .get(u)
            .is_some_and(|unit| !matches!(unit.kind, UnitKind::Tls | UnitKind::Undecoded))
    });
    let mut dialog = Dialog::for_decrypted(protocol, greeted);
    let mut offsets = [0u64; 2];
    let mut spans: [Vec<(Range<u64>, usize)>; 2] = [Vec::new(), Vec::new()];
    for (unit, dir, p) in plain {
        let d = dir.index();
        let Some(at) = offsets.get_mut(d) else {
            continue;
        };
        let start = *at;
        match p {
            Plain::Data(bytes) => {
                dialog.on_event(
                    *dir,
                    StreamEvent::Data {
                        offset: start,
                        bytes,
                    },
                );
                *at += bytes.len() as u64;
            }
            Plain::Lost(len) => {
                dialog.on_event(
                    *dir,
                    StreamEvent::Gap {
                        offset: start,
                        len: *len,
                    },
                );
                *at += len;
            }
        }
        if let Some(s) = spans.get_mut(d) {
            s.push((start..*at, *unit));
        }
    }
    for dir in [Direction::ClientToServer, Direction::ServerToClient] {
        if connection.stream(dir).is_ended() {
            dialog.on_event(dir, StreamEvent::End);
        }
    }
    if connection.streams.iter().all(|s| s.is_ended()) {
        dialog.finish();
    }
    let drafts: Vec<Draft> = std::mem::take(&mut dialog.drafts);
    let by_local: HashMap<u32, usize> = drafts
        .iter()
        .enumerate()
        .map(|(i, d)| (d.local, i))
        .collect();
    drafts
        .into_iter()
        .map(|d| {
            let span = spans
                .get(d.direction.index())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let records = records_under(span, &d.stream);
            let mut frames: Vec<usize> = records
                .iter()
                .filter_map(|&u| units.get(u))
                .flat_map(|u| u.carriers.iter().map(|c| c.frame))
                .collect();
            frames.sort_unstable();
            frames.dedup();
            DecryptedUnit {
                direction: d.direction,
                kind: d.kind,
                text: d.text,
                stream: d.stream,
                lines: d.lines,
                multi_line: d.multi_line,
                reply_to: d.reply_to.and_then(|l| by_local.get(&l).copied()),
                records,
                frames,
                notes: d.notes,
            }
        })
        .collect()
}

/// The records (units) whose plaintext spans (in stream order) hold the stream range
/// `stream` of a decrypted unit. An empty unit lies in the record holding its offset, or,
/// at the very end of the plaintext (content cut short by the end of the stream), in the
/// record that ended there: every unit has the record where a transcript shows it.
fn records_under(span: &[(Range<u64>, usize)], stream: &Range<u64>) -> Vec<usize> {
    // Spans are in stream order: skip those that end before the unit starts.
    let first = span.partition_point(|(r, _)| r.end <= stream.start);
    let records: Vec<usize> = span
        .iter()
        .skip(first)
        .take_while(|(r, _)| r.start < stream.end.max(stream.start + 1))
        .filter(|(r, _)| {
            if stream.is_empty() {
                r.contains(&stream.start)
            } else {
                r.start < stream.end && stream.start < r.end
            }
        })
        .map(|(_, u)| *u)
        .collect();
    if records.is_empty() && stream.is_empty() {
        return span
            .iter()
            .rev()
            .find(|(r, _)| r.end <= stream.start)
            .map(|(_, u)| vec![*u])
            .unwrap_or_default();
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_unit_at_the_end_of_the_plaintext_lies_in_the_last_record() {
        // Found by the tls_decrypt fuzz target: a client's decrypted DATA content cut short
        // by the end of the stream became an empty MailContent unit at 118..118, just past
        // the last record's plaintext (records 12, 14, 16, 18, 20 held 0..118); no record
        // held it, so no transcript line showed it.
        let span = [
            (0..21, 12),
            (21..58, 14),
            (58..87, 16),
            (87..112, 18),
            (112..118, 20),
        ];
        assert_eq!(records_under(&span, &(118..118)), vec![20]);
        assert_eq!(
            records_under(&span, &(58..58)),
            vec![16],
            "inside: the record holding it"
        );
        assert_eq!(records_under(&span, &(20..60)), vec![12, 14, 16]);
        assert_eq!(records_under(&span, &(118..120)), Vec::<usize>::new());
        assert_eq!(records_under(&[], &(0..0)), Vec::<usize>::new());
    }

    fn unhex(text: &str) -> Vec<u8> {
        let t: String = text.split_whitespace().collect();
        (0..t.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8448 section 3 (Simple 1-RTT Handshake, TLS_AES_128_GCM_SHA256): each traffic
    /// secret gives the write key and IV the trace shows ("derive write traffic keys").
    #[test]
    fn rfc8448_traffic_keys() {
        let cases = [
            (
                "server handshake",
                "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38",
                "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc",
                "5d 31 3e b2 67 12 76 ee 13 00 0b 30",
            ),
            (
                "client handshake",
                "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21",
                "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01",
                "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f",
            ),
            (
                "server application",
                "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43",
                "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56",
                "cf 78 2b 88 dd 83 54 9a ad f1 e9 84",
            ),
        ];
        for (what, secret, key, iv) in cases {
            let (k, i) = traffic_key_iv(hmac::HMAC_SHA256, 16, &unhex(secret));
            assert_eq!(hex(&k), hex(&unhex(key)), "{what} key");
            assert_eq!(hex(&i), hex(&unhex(iv)), "{what} iv");
        }
    }

    /// rustls's key schedule vectors (made with OpenSSL, rustls src/tls13/key_schedule.rs):
    /// a client handshake traffic secret and its key and IV.
    #[test]
    fn openssl_traffic_keys() {
        let secret = "617b35076b9d0e08cf731d94a8661478 4109ef255551921dd46e040135cf46ab";
        let (k, i) = traffic_key_iv(hmac::HMAC_SHA256, 16, &unhex(secret));
        assert_eq!(hex(&k), "62d0dd00f69619d3b8193ab4a09585a7");
        assert_eq!(hex(&i), "fff75df5ad35d5cb3c53f3a9");
    }

    /// The TLS 1.2 PRF with SHA-256 (the vector published on the IETF TLS list for RFC 5246).
    #[test]
    fn tls12_prf_sha256() {
        let out = prf12(
            hmac::HMAC_SHA256,
            &unhex("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"),
            b"test label",
            &unhex("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"),
            100,
        );
        assert_eq!(
            hex(&out),
            hex(&unhex(
                "e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a
                 6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b
                 ab 4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff
                 f7 01 87 34 7b 66"
            ))
        );
    }

    /// Seals a TLS 1.3 record as a sender would (RFC 8446 section 5.2 and 5.3).
    fn seal13(secret: &[u8], seq: u64, inner: &[u8], kind: u8, padding: usize) -> Vec<u8> {
        let (key, iv) = traffic_key_iv(hmac::HMAC_SHA256, 16, secret);
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &key).unwrap());
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&iv);
        for (n, b) in nonce.iter_mut().skip(4).zip(seq.to_be_bytes()) {
            *n ^= b;
        }
        let mut data = inner.to_vec();
        data.push(kind);
        data.extend(std::iter::repeat_n(0, padding));
        let len = u16::try_from(data.len() + TAG_LEN).unwrap();
        let mut record = vec![23, 3, 3];
        record.extend_from_slice(&len.to_be_bytes());
        let header: [u8; 5] = record.clone().try_into().unwrap();
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(header),
            &mut data,
        )
        .unwrap();
        record.extend_from_slice(&data);
        record
    }

    #[test]
    fn a_sealed_record_opens_with_padding_and_sequence() {
        let secret = [7u8; 32];
        let suite = suite(0x1301, TLS13).unwrap();
        let mut keys = RecordKeys::tls13(&suite, &secret).unwrap();
        for (seq, text) in [(0u64, &b"USER alice\r\n"[..]), (1, b"PASS secret\r\n")] {
            let record = seal13(&secret, seq, text, APPLICATION_DATA, 5);
            let header: [u8; 5] = record[..5].try_into().unwrap();
            let (kind, plain) = keys.open(header, &record[5..]).unwrap();
            assert_eq!((kind, plain.as_slice()), (APPLICATION_DATA, text));
        }
        // Out of sequence (the third record sealed as the first): the tag does not match.
        let record = seal13(&secret, 0, b"QUIT\r\n", APPLICATION_DATA, 0);
        let header: [u8; 5] = record[..5].try_into().unwrap();
        assert_eq!(
            keys.open(header, &record[5..]),
            Err(NotDecrypted::TagMismatch)
        );
        // A wrong key: a tag mismatch, never a panic; nor on records too short.
        let mut wrong = RecordKeys::tls13(&suite, &[8u8; 32]).unwrap();
        assert_eq!(
            wrong.open(header, &record[5..]),
            Err(NotDecrypted::TagMismatch)
        );
        assert_eq!(wrong.open(header, &[1, 2, 3]), Err(NotDecrypted::TooShort));
        assert_eq!(wrong.open(header, &[]), Err(NotDecrypted::TooShort));
    }

    /// Garbage where handshake messages, hellos, alerts and records should be: no panic,
    /// and nothing decrypts.
    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let suite13 = suite(0x1303, TLS13).unwrap();
        let suite12 = suite(0xC030, TLS12).unwrap();
        for round in 0..2000 {
            let len = (next() % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Sometimes a plausible start, so the parsers go deeper.
            if round % 3 == 0 && len > 4 {
                bytes[0] = [CLIENT_HELLO, SERVER_HELLO, FINISHED, KEY_UPDATE][round % 4];
                bytes[1] = 0;
                bytes[2] = 0;
            }
            let mut buf = bytes.clone();
            let _ = take_messages(&mut buf);
            let _ = parse_server_hello(&bytes);
            let _ = alert_text(&bytes);
            let mut hellos = Hellos::default();
            let _ = clear_handshake(&mut Vec::new(), &bytes, &mut hellos);
            let header = [23, 3, 3, (len >> 8) as u8, len as u8];
            let mut k13 = RecordKeys::tls13(&suite13, &bytes).unwrap();
            assert!(k13.open(header, &bytes).is_err());
            let mut k12 = RecordKeys::new(&suite12, &[7; 32], &[1, 2, 3, 4], false).unwrap();
            assert!(k12.open(header, &bytes).is_err());
        }
    }

    #[test]
    fn hellos_are_read_and_hrr_skipped() {
        // A ServerHello: version 3.3, random, empty session id, suite 0x1302, no
        // compression, supported_versions = 0x0304.
        let mut sh = vec![3, 3];
        sh.extend_from_slice(&[0x11; 32]);
        sh.extend_from_slice(&[0, 0x13, 0x02, 0, 0, 6, 0, 43, 0, 2, 3, 4]);
        assert_eq!(
            parse_server_hello(&sh),
            Some((TLS13, 0x1302, vec![0x11; 32]))
        );
        let mut hrr = sh.clone();
        hrr[2..34].copy_from_slice(&HRR_RANDOM);
        assert_eq!(parse_server_hello(&hrr), None);
        // Cut anywhere: no panic, at most no answer.
        for n in 0..sh.len() {
            let _ = parse_server_hello(&sh[..n]);
        }
        let mut msg = vec![SERVER_HELLO, 0, 0, u8::try_from(sh.len()).unwrap()];
        msg.extend_from_slice(&sh);
        let mut hellos = Hellos::default();
        let mut buf = Vec::new();
        let text = clear_handshake(&mut buf, &msg[..10], &mut hellos);
        assert_eq!(text, "handshake (part of a message)");
        let text = clear_handshake(&mut buf, &msg[10..], &mut hellos);
        assert_eq!(
            text,
            "handshake: ServerHello (TLS 1.3, TLS_AES_256_GCM_SHA384)"
        );
        assert!(hellos.server.is_some());
    }
}
