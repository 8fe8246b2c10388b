//! TLS session secrets in the NSS key log format (the `SSLKEYLOGFILE` lines browsers,
//! curl and rustls write, and Wireshark reads): one `LABEL <client_random hex> <secret
//! hex>` per line, `#` comments and blank lines ignored.
//!
//! mailwire holds the secrets of its own TLS sessions; a timeline keeps them so an export
//! can embed them (a pcapng Decryption Secrets Block) and the view can decrypt what its
//! own sessions sent. Parsing is strict and says which line was wrong: a key file is
//! outside data.

use std::fmt;

/// One secret: its label (`CLIENT_TRAFFIC_SECRET_0`, `CLIENT_RANDOM`, ...), the
/// ClientHello random it belongs to (32 bytes) and the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLogEntry {
    pub label: String,
    pub client_random: Vec<u8>,
    pub secret: Vec<u8>,
}

/// The secrets of some TLS sessions, in the order they were logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLog {
    entries: Vec<KeyLogEntry>,
}

/// A key log line that is not `LABEL <hex> <hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLogError {
    /// 1-based line number.
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for KeyLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key log line {}: {} (expected `LABEL <client_random hex> <secret hex>`, the NSS \
             key log format SSLKEYLOGFILE writes)",
            self.line, self.problem
        )
    }
}

impl std::error::Error for KeyLogError {}

impl KeyLog {
    /// An empty key log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses NSS key log text; the first malformed line is the error.
    pub fn parse(text: &str) -> Result<Self, KeyLogError> {
        let mut log = Self::new();
        for (i, line) in text.lines().enumerate() {
            log.push_line(line).map_err(|problem| KeyLogError {
                line: i + 1,
                problem,
            })?;
        }
        Ok(log)
    }

    /// Adds one line (a comment or a blank line adds nothing); an entry already held is
    /// not added twice.
    pub fn push_line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let (Some(label), Some(random), Some(secret), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(format!("{} words, not 3", line.split_whitespace().count()));
        };
        let client_random =
            unhex(random).ok_or_else(|| format!("client random {random:?} is not hex"))?;
        let secret = unhex(secret).ok_or_else(|| "the secret is not hex".to_string())?;
        self.push(KeyLogEntry {
            label: label.to_string(),
            client_random,
            secret,
        });
        Ok(())
    }

    /// Adds an entry unless it is already held.
    pub fn push(&mut self, entry: KeyLogEntry) {
        if !self.entries.contains(&entry) {
            self.entries.push(entry);
        }
    }

    /// Adds every entry of `other` not already held.
    pub fn extend(&mut self, other: &KeyLog) {
        for e in &other.entries {
            self.push(e.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[KeyLogEntry] {
        &self.entries
    }

    /// The secret logged under `label` for the session whose ClientHello random is
    /// `client_random`.
    pub fn secret(&self, label: &str, client_random: &[u8]) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| e.label == label && e.client_random == client_random)
            .map(|e| e.secret.as_slice())
    }

    /// The entries as NSS key log text, one line each, each ended by "\n".
    pub fn to_nss_text(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{} {} {}\n", e.label, hex(&e.client_random), hex(&e.secret)))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.is_empty() {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_comments_are_skipped() {
        let text = "# made by curl\n\nCLIENT_TRAFFIC_SECRET_0 0a0B ff00\nSERVER_TRAFFIC_SECRET_0 0a0b 01\n";
        let log = KeyLog::parse(text).unwrap();
        assert_eq!(log.entries().len(), 2);
        assert_eq!(log.secret("CLIENT_TRAFFIC_SECRET_0", &[0x0a, 0x0b]), Some(&[0xff, 0][..]));
        assert_eq!(log.secret("CLIENT_RANDOM", &[0x0a, 0x0b]), None);
        assert_eq!(
            log.to_nss_text(),
            "CLIENT_TRAFFIC_SECRET_0 0a0b ff00\nSERVER_TRAFFIC_SECRET_0 0a0b 01\n"
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = KeyLog::parse("CLIENT_RANDOM 00 11\nCLIENT_RANDOM zz 11\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("not hex"), "{err}");
        let err = KeyLog::parse("CLIENT_RANDOM 00").unwrap_err();
        assert_eq!((err.line, err.problem.as_str()), (1, "2 words, not 3"));
        assert!(KeyLog::parse("A 0 11").is_err(), "odd hex");
    }

    #[test]
    fn an_entry_is_held_once() {
        let mut log = KeyLog::new();
        log.push_line("A 00 11").unwrap();
        log.push_line("A 00 11").unwrap();
        assert_eq!(log.entries().len(), 1);
    }
}
