//! Cutting a connection's two reassembled byte streams into protocol units: POP3 and SMTP
//! commands, single- and multi-line replies, SMTP message content (DATA and BDAT), SASL
//! exchange lines and TLS records after STLS/STARTTLS. Replies are paired with the commands
//! they answer, in order (RFC 2920 pipelining: replies come in the order of the commands).
//!
//! The cutter sees the two directions in capture order and needs both: whether a POP3 `+OK`
//! starts a multi-line reply depends on the command it answers, and whether the bytes a
//! client sends after `DATA` are a message or more commands depends on the server's `354`.
//! So the client side waits (holds its bytes) after `DATA` and `STARTTLS`/`STLS` until the
//! server's verdict is cut. Nothing else is buffered: a line keeps at most its first
//! [`MAX_HEAD`] bytes, and long units (a message) are counted, not stored.
//!
//! This file holds the vocabulary the rest of the crate uses ([`Detected`],
//! [`ProtocolSource`], [`UnitKind`]); the work is split by job:
//! - `dialog.rs`: one connection's cutter ([`Dialog`]): stream events in, the queue of
//!   commands waiting for replies, capture gaps, the end of a stream, drafts out;
//! - `line.rs`: one side's state and the line cutter (a line keeps its first bytes only);
//! - `hold.rs`: holding a side's bytes (protocol undecided, client waiting after DATA or
//!   STARTTLS) and replaying them;
//! - `detect.rs`: recognising POP3 or SMTP from the server's first words;
//! - `pop3.rs`, `smtp.rs`: each protocol's command and reply lines (SMTP also DATA content
//!   and BDAT chunks);
//! - `tls.rs`: TLS records after STLS/STARTTLS or on an implicit-TLS port.

use std::ops::Range;

use crate::proto::{Direction, Protocol};

mod detect;
mod dialog;
mod hold;
mod line;
mod pop3;
mod smtp;
mod tls;
pub use tls::content_type_name;

#[cfg(test)]
mod tests;

pub(crate) use dialog::Dialog;

/// Bytes of each line kept for parsing and for a unit's text.
pub const MAX_HEAD: usize = 512;
/// Characters of a unit's text at most.
pub const MAX_TEXT: usize = 240;

/// What the analyzer knows of a connection's application protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detected {
    /// POP3 or SMTP.
    Mail(Protocol),
    /// Not known yet: the server port is not a mail port and the server has not spoken.
    Undecided,
    /// Not POP3 or SMTP (or implicit TLS on an unknown port): no units.
    Other,
}

impl Detected {
    /// The protocol's usual name ("POP3"), or what is known instead.
    pub fn name(self) -> &'static str {
        match self {
            Detected::Mail(p) => p.name(),
            Detected::Undecided => "undecided",
            Detected::Other => "not POP3 or SMTP",
        }
    }

    /// The mail protocol, when it is one.
    pub fn mail(self) -> Option<Protocol> {
        match self {
            Detected::Mail(p) => Some(p),
            Detected::Undecided | Detected::Other => None,
        }
    }
}

/// How the protocol was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolSource {
    /// From the server's port number.
    Port,
    /// From the server's first words (`+OK` or a three-digit code).
    Greeting,
    /// Not recognised.
    None,
}

/// What a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    /// The server's first reply, sent before any command.
    Greeting,
    /// A client command line.
    Command,
    /// A server reply (single- or multi-line).
    Reply,
    /// A client line answering a SASL challenge during AUTH (base64, or `*` to cancel).
    AuthData,
    /// SMTP message content: after a 354, the client's bytes up to and including
    /// CRLF.CRLF; or the chunk after `BDAT n`.
    MailContent,
    /// A TLS record (after STLS/STARTTLS, or on an implicit-TLS port).
    Tls,
    /// Bytes that could not be cut into units (what follows a broken TLS record header).
    Undecoded,
}

impl UnitKind {
    /// A short lower-case name, e.g. `"greeting"`.
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Greeting => "greeting",
            UnitKind::Command => "command",
            UnitKind::Reply => "reply",
            UnitKind::AuthData => "SASL data",
            UnitKind::MailContent => "message content",
            UnitKind::Tls => "TLS record",
            UnitKind::Undecoded => "undecoded",
        }
    }
}

/// A unit as the cutter finds it; the analyzer adds the carriers and global indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draft {
    /// Index among this connection's units.
    pub local: u32,
    pub direction: Direction,
    pub kind: UnitKind,
    pub text: String,
    pub stream: Range<u64>,
    pub lines: u32,
    pub multi_line: bool,
    /// Local index of the unit this one answers.
    pub reply_to: Option<u32>,
    pub notes: Vec<String>,
}
