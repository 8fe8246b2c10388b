//! `mailwire check`: a conformance checker for other people's POP3 and SMTP servers (the
//! students' own, Dovecot, anything listening on a TCP port).
//!
//! Every check talks to the server over a fresh TCP connection with raw bytes and judges
//! the raw bytes that come back itself, so it sees what a lenient client would hide: bare
//! LFs, a missing final ".", "ERR" without its "-", a reply that never comes. Each check
//! has an id, the RFC section it tests, a [`Level`] (`must` or `should`), the bytes it
//! sent, what the RFC expects (in protocol terms, never mailwire's own wording), what came
//! back, and a [`Verdict`].
//!
//! - [`wire`]: the probe a check drives: connections with a timeout on every step, the
//!   evidence (bytes sent and received) of the step being judged;
//! - [`pop3`] and [`smtp`]: the checks of each protocol, and the pure functions that judge
//!   their bytes (unit-tested on byte literals);
//! - [`runner`]: the order of the checks, the gates (no connection, no greeting: the rest
//!   of that protocol is skipped at once) and the mail the checker sends itself;
//! - [`report`]: the results as a table, JSON and JUnit XML, and the exit status;
//! - [`replay`]: built-in "student" servers that answer as the seeds' servers did (one
//!   planted flaw each), for a class to run the checker on.
//!
//! Invariants: a check fails only on what it names; when something it needs first failed
//! (no login, no 354), it is skipped and says which check to read. Nothing waits without a
//! limit: every step has the run's timeout, and a server that never greets ends the run
//! after one timeout.

pub mod evidence;
pub mod pop3;
pub mod replay;
pub mod report;
pub mod runner;
pub mod smtp;
pub mod wire;

use std::fmt;
use std::net::SocketAddr;

use crate::proto::Protocol;

pub use report::{ExitStatus, Report};
pub use runner::{RunEvent, Settings, run, run_observed};

/// How strongly the RFC asks for the behaviour a check tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// MUST (or the protocol does not work without it): a failure fails the run.
    Must,
    /// SHOULD (or widely expected): a failure is a warning.
    Should,
}

impl Level {
    /// "must" or "should".
    pub fn label(self) -> &'static str {
        match self {
            Level::Must => "must",
            Level::Should => "should",
        }
    }
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server did what the RFC asks.
    Pass,
    /// A `must` check saw something else; the text says what.
    Fail(String),
    /// A `should` check saw something else, or a `must` check saw an allowed but unusual
    /// answer; the text says what.
    Warn(String),
    /// The check could not run; the text says why (and which check to read first).
    Skip(String),
}

impl Verdict {
    /// "pass", "fail", "warn" or "skip".
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::Warn(_) => "warn",
            Verdict::Skip(_) => "skip",
        }
    }

    /// The explanation (empty for a pass).
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Pass => "",
            Verdict::Fail(r) | Verdict::Warn(r) | Verdict::Skip(r) => r,
        }
    }
}

/// What a check is: fixed text, independent of any run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckInfo {
    /// Stable id, `pop3.greeting`, `smtp.data-354`...
    pub id: &'static str,
    /// The servers the check talks to (one, or SMTP then POP3 for the round trip).
    pub protocols: &'static [Protocol],
    /// The RFC and section, "RFC 1939 section 4".
    pub rfc: &'static str,
    /// How strongly the RFC asks for it (a check may raise a `should` to a `must` when the
    /// server advertised the capability it tests).
    pub level: Level,
    /// One line: what is tested.
    pub title: &'static str,
}

impl CheckInfo {
    /// "POP3", "SMTP" or "SMTP+POP3".
    pub fn protocol_label(&self) -> String {
        let names: Vec<&str> = self.protocols.iter().map(|p| p.name()).collect();
        names.join("+")
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub info: CheckInfo,
    /// The level applied (see [`CheckInfo::level`]).
    pub level: Level,
    pub verdict: Verdict,
    /// The bytes sent in the step judged.
    pub sent: Vec<u8>,
    /// What the RFC expects there, in protocol terms.
    pub expected: String,
    /// The bytes that came back in that step.
    pub got: Vec<u8>,
    /// The local (client) end of every connection the check opened, in order, so a capture
    /// can tell its packets.
    pub clients: Vec<SocketAddr>,
    /// The server end of each of those connections (same order).
    pub servers: Vec<SocketAddr>,
    /// Everything the check sent and read, with stream offsets (see [`wire::Transfer`]).
    pub transcript: Vec<wire::Transfer>,
    /// The round of `transcript` where the exchange judged (`sent`, `got`) begins.
    pub judged_round: usize,
}

impl CheckResult {
    /// Whether this result fails the run: a `must` that failed.
    pub fn fails_run(&self) -> bool {
        self.level == Level::Must && matches!(self.verdict, Verdict::Fail(_))
    }
}

impl fmt::Display for CheckResult {
    /// `pass  must  pop3.greeting  RFC 1939 section 4: the greeting`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<5} {:<6} {:<28} {}: {}",
            self.verdict.label(),
            self.level.label(),
            self.info.id,
            self.info.rfc,
            self.info.title
        )
    }
}

/// Bytes as a reader should see them: printable ASCII as is, CR and LF as `\r` and `\n`,
/// anything else as `\xNN`; cut after `limit` bytes with a count of the rest.
pub fn visible(bytes: &[u8], limit: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(limit) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > limit {
        out.push_str(&format!(" … ({} more bytes)", bytes.len() - limit));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_shows_line_ends_and_cuts() {
        assert_eq!(visible(b"+OK\r\n", 100), "+OK\\r\\n");
        assert_eq!(visible(b"a\nb\x00", 100), "a\\nb\\x00");
        assert_eq!(visible(b"abcdef", 3), "abc … (3 more bytes)");
    }
}
