//! The protocol core: POP3 and SMTP as values you feed bytes and ask what to do next.
//!
//! Invariant: nothing in here touches a socket, a file, a clock, tokio, pcap or egui.
//! A machine never blocks and never waits: when it needs something from the outside world
//! (check a password, read a message, store a mail) it emits a request and stops reading
//! input until the driver answers it.
//!
//! This module also holds the vocabulary every other part of mailwire shares: which
//! [`Protocol`] a connection speaks and which [`Direction`] bytes travel. Every machine,
//! server or client, has the one shape of [`Machine`], so one driver loop serves them all.

use std::fmt;

pub mod keylog;
pub mod line;
pub mod pop3;
pub mod reply_text;
pub mod sasl;
pub mod smtp;

/// Which mail protocol a connection speaks (`pop3` or `smtp` in a scenario file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Pop3,
    Smtp,
}

impl Protocol {
    /// Whether a server line begins as this protocol's replies must: +OK or -ERR (RFC 1939
    /// section 3), a three-digit code (RFC 5321 section 4.2). A broken server's "GARBAGE"
    /// or "ERR" does not.
    pub fn has_reply_status(self, line: &str) -> bool {
        match self {
            Protocol::Pop3 => line.starts_with("+OK") || line.starts_with("-ERR"),
            Protocol::Smtp => line.len() >= 3 && line.bytes().take(3).all(|b| b.is_ascii_digit()),
        }
    }

    /// "POP3" or "SMTP".
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pop3 => "POP3",
            Protocol::Smtp => "SMTP",
        }
    }

    /// The protocol a server port implies (POP3: 110, 1110, 995; SMTP: 25, 587, 2525, 465).
    pub fn from_port(port: u16) -> Option<Protocol> {
        match port {
            110 | 1110 | 995 => Some(Protocol::Pop3),
            25 | 587 | 2525 | 465 => Some(Protocol::Smtp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way bytes travel in a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the side that opened the connection) to the server.
    ClientToServer,
    /// From the server to the client.
    ServerToClient,
}

impl Direction {
    /// 0 for client-to-server, 1 for server-to-client.
    pub fn index(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }

    /// `C` or `S`: who speaks.
    pub fn speaker(self) -> char {
        match self {
            Direction::ClientToServer => 'C',
            Direction::ServerToClient => 'S',
        }
    }

    /// `C:` or `S:`, the tag of a transcript line (as RFC 1939's examples write them).
    pub fn tag(self) -> &'static str {
        match self {
            Direction::ClientToServer => "C:",
            Direction::ServerToClient => "S:",
        }
    }
}

/// One thing a machine asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<E, R> {
    /// Write these bytes to the peer.
    Write(Vec<u8>),
    /// Something happened: a server's state change or command, a client's reply or error.
    Event(E),
    /// Ask the outside world (the store, a password check) and answer before polling again.
    Request(R),
    /// Close the connection, after writing everything before it.
    Close,
}

/// A sans-IO protocol machine: bytes in, [`Output`]s out. Servers and clients of both
/// protocols have this one shape, so every driver (the tokio server loop, the client
/// socket, the in-memory scenario transport) is written once, generic over it.
pub trait Machine {
    /// The protocol spoken.
    const PROTOCOL: Protocol;
    /// What the machine reports.
    type Event;
    /// What it asks of the outside world (`Infallible` when it never asks).
    type Request;
    /// Buffers bytes from the peer; nothing is processed until [`Machine::poll_output`].
    fn receive(&mut self, bytes: &[u8]);
    /// The peer closed its side of the connection.
    fn receive_eof(&mut self);
    /// The next output, or `None` when the machine needs more input (or a request answered).
    fn poll_output(&mut self) -> Option<Output<Self::Event, Self::Request>>;
}

/// The text of a client's error when the server sent a line nobody asked for (both
/// protocols' clients say it alike).
pub(crate) fn unsolicited_line(f: &mut fmt::Formatter<'_>, line: &str) -> fmt::Result {
    write!(
        f,
        "The server sent \"{line}\" although no reply was expected."
    )
}

/// The text of a client's error when the server closed the connection before a reply
/// began (with what it had sent of an unfinished line).
pub(crate) fn closed_before_reply(
    f: &mut fmt::Formatter<'_>,
    awaiting: &str,
    partial: Option<&str>,
) -> fmt::Result {
    write!(
        f,
        "The server closed the connection while we waited for {awaiting}"
    )?;
    match partial {
        None => f.write_str("."),
        Some(p) => write!(f, "; it had sent \"{p}\" without a line end."),
    }
}

/// Why a server ends a session on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goodbye {
    /// The client was idle too long (RFC 1939's autologout timer; RFC 5321 4.5.3.2).
    Idle,
    /// The server is shutting down.
    ShuttingDown,
}

/// A server machine.
pub trait ServerMachine: Machine {
    /// What to tell the client before the server closes on its own, if the protocol has
    /// words for it.
    fn goodbye(&self, why: Goodbye) -> Option<Vec<u8>>;

    /// Whether `request` asks the driver to start TLS now (POP3 STLS, SMTP STARTTLS): the
    /// machine has written its "go ahead" reply and dropped any input it had buffered after
    /// the command (plaintext sent before the handshake must not be read as if it came
    /// through TLS: CVE-2011-0411). The driver makes the handshake, then calls
    /// [`ServerMachine::tls_started`]; if the handshake fails the session ends.
    fn is_start_tls(request: &Self::Request) -> bool;

    /// The TLS handshake is done (after STLS/STARTTLS, or at once on an implicit-TLS port):
    /// the machine forgets what it was told in clear (RFC 3207 section 4.2) and reads on.
    fn tls_started(&mut self);
}

/// What happened to a session's protection, reported by both servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityEvent {
    /// STLS or STARTTLS was accepted; `discarded` octets the client had sent after the
    /// command, still in clear, were thrown away unread (CVE-2011-0411).
    TlsRequested { discarded: usize },
    /// The TLS handshake finished: from here on the bytes on the wire are TLS records.
    TlsStarted,
    /// A SASL exchange (AUTH) proved the user's identity.
    Authenticated {
        user: String,
        mechanism: sasl::Mechanism,
    },
    /// A SASL exchange failed (wrong credentials, a broken exchange, or cancelled).
    AuthFailed {
        user: Option<String>,
        mechanism: sasl::Mechanism,
    },
}

/// A client machine: its events are replies (`Ok`) or the one error after which it reads
/// no more (`Err`).
pub trait ClientMachine:
    Machine<
        Event = Result<<Self as ClientMachine>::Reply, <Self as ClientMachine>::Error>,
        Request = std::convert::Infallible,
    >
{
    /// A complete reply (or the greeting).
    type Reply;
    /// Why the session failed (the server broke the protocol or the connection).
    type Error;
    /// What the machine waits for, in words ("the greeting", "the reply to DATA").
    fn waiting_for(&self) -> Option<String>;
    /// Whether the session is over: the connection closed or the server broke the protocol.
    fn is_ended(&self) -> bool;
    /// What has arrived of the reply being read, when part of it has and the rest is
    /// missing, with the rule that says how it should have ended: for a driver that waited in
    /// vain, so it can say why instead of only "no reply".
    fn progress(&self) -> Option<String>;
}

/// Bytes as a short quoted excerpt for a diagnosis (lossy UTF-8, control bytes escaped).
pub(crate) fn quoted(bytes: &[u8]) -> String {
    const MAX: usize = 60;
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    format!("\"{out}\"")
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn a_reply_status_is_plus_ok_minus_err_or_three_digits() {
        for ok in ["+OK", "-ERR [AUTH] no", "+OK 2 320"] {
            assert!(Protocol::Pop3.has_reply_status(ok), "{ok}");
        }
        for bad in ["ERR login incorrect", "GARBAGE", "+ok", "", "250 OK"] {
            assert!(!Protocol::Pop3.has_reply_status(bad), "{bad}");
        }
        for ok in ["250 OK", "354", "221-bye"] {
            assert!(Protocol::Smtp.has_reply_status(ok), "{ok}");
        }
        for bad in ["25", "OK 250", "+OK", "2x0 no"] {
            assert!(!Protocol::Smtp.has_reply_status(bad), "{bad}");
        }
    }
}
