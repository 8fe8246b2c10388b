//! What a step said and how it went: the typed record that the scenario engine writes and
//! the timeline, the exports and the window read.
//!
//! Every command, reply and message content is an [`Exchange`] with its [`ExchangeKind`] and
//! its place in the connection's byte stream, so the timeline links it to the unit the
//! capture cut at the same offsets. A step that did not go as planned says why with a
//! [`StepError`]: readers decide by its variant, never by its words.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use crate::proto::{Direction, Protocol};
use crate::servers::ServerEvent;

/// A connection of a scenario, numbered by its transport.
pub type ConnId = usize;

/// What an exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// A command line the client sent.
    Command,
    /// A reply of the server (its greeting too), single- or multi-line.
    Reply,
    /// SMTP message content: after DATA's 354, every line up to and including the "." line.
    Content,
}

impl ExchangeKind {
    /// Which way an exchange of this kind travels.
    pub fn direction(self) -> Direction {
        match self {
            ExchangeKind::Command | ExchangeKind::Content => Direction::ClientToServer,
            ExchangeKind::Reply => Direction::ServerToClient,
        }
    }
}

/// One command, reply or message content of a step, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub kind: ExchangeKind,
    /// The first line (a command, or a reply's status line); for content, a summary such as
    /// `<message: 5 lines, then the "." line>`.
    pub line: String,
    /// Further lines (a multi-line reply's body, the content's lines), without CRLF, as on
    /// the wire (byte-stuffed, with the terminating ".").
    pub more: Vec<String>,
    /// Octets on the wire.
    pub octets: usize,
    /// Where the exchange lies in its direction's byte stream (0 is the first byte after the
    /// SYN), when the driver knows; the timeline links it to the captured unit there.
    pub stream: Option<Range<u64>>,
}

impl Exchange {
    /// Which way it travelled.
    pub fn direction(&self) -> Direction {
        self.kind.direction()
    }

    /// Whether more lines follow the first one that are worth showing as a body (a
    /// multi-line reply's lines; message content carries its own summary line).
    pub fn has_body(&self) -> bool {
        self.kind == ExchangeKind::Reply && !self.more.is_empty()
    }
}

/// What happened in one step.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// 0-based index of the step.
    pub index: usize,
    pub session: String,
    /// The protocol the session speaks, once it connected.
    pub protocol: Option<Protocol>,
    /// The transport connection the step used, if it reached one.
    pub conn: Option<ConnId>,
    pub exchanges: Vec<Exchange>,
    /// `Err` says which expectation failed or what went wrong.
    pub check: Result<(), StepError>,
    /// The client read the end of the server's byte stream during this step: the server
    /// closed the connection (its FIN) on its own or after QUIT, and the client then closed
    /// its side. (After a `quit` step the client closes without waiting, so it is not noted.)
    pub server_closed: bool,
    /// Server events during the step.
    pub events: Vec<ServerEvent>,
}

/// Why a step did not go as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The server answered, but not as the step expected (or did not answer at all).
    Expectation(String),
    /// A connect step for a session that is connected already.
    AlreadyConnected { session: String },
    /// A step for a session that has no connection (yet, or any more).
    NotConnected { session: String },
    /// An action of one protocol on a session of the other.
    WrongProtocol {
        action: String,
        session: String,
        speaks: Protocol,
    },
    /// The client could not send (a CR or LF in an argument, a command after QUIT), or the
    /// server broke the protocol; the text is the client machine's explanation.
    Protocol(String),
    /// The connection failed.
    Transport(TransportError),
    /// The server stopped sending before the reply was complete (or never began it).
    Stalled {
        /// What the client waited for ("the reply to LIST").
        waiting_for: String,
        /// What had arrived of it, and the rule it broke, when part of it had.
        so_far: Option<String>,
        after: Duration,
    },
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Expectation(why) => f.write_str(why),
            StepError::AlreadyConnected { session } => {
                write!(f, "session \"{session}\" is already connected")
            }
            StepError::NotConnected { session } => write!(
                f,
                "session \"{session}\" is not connected; a step with connect must come first"
            ),
            StepError::WrongProtocol {
                action,
                session,
                speaks,
            } => {
                let other = match speaks {
                    Protocol::Pop3 => "an SMTP",
                    Protocol::Smtp => "a POP3",
                };
                write!(
                    f,
                    "{action} is {other} action but session \"{session}\" speaks {speaks}"
                )
            }
            StepError::Protocol(why) => f.write_str(why),
            StepError::Transport(e) => e.fmt(f),
            StepError::Stalled {
                waiting_for,
                so_far: None,
                after,
            } => write!(
                f,
                "no reply within {} s: the server sent nothing while the client waited for \
                 {waiting_for}",
                after.as_secs_f32()
            ),
            StepError::Stalled {
                waiting_for,
                so_far: Some(so_far),
                after,
            } => write!(
                f,
                "the server stopped in the middle of {waiting_for}: it sent {so_far}, then \
                 nothing for {} s; the client gave that reply up, so the replies after it \
                 still pair with their commands",
                after.as_secs_f32()
            ),
        }
    }
}

impl std::error::Error for StepError {}

impl From<TransportError> for StepError {
    fn from(e: TransportError) -> Self {
        StepError::Transport(e)
    }
}

/// Why moving bytes to or from a server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The connection could not be made; `detail` is the system's error.
    Connect {
        addr: SocketAddr,
        detail: String,
        /// mailwire runs in its private network, where other servers cannot be reached.
        sandboxed: bool,
    },
    /// A socket option could not be set.
    Setup { what: String, detail: String },
    /// Nothing arrived in time.
    NoReply { after: Duration },
    /// Reading or writing failed; `detail` is the system's error.
    Io {
        action: &'static str,
        detail: String,
    },
    /// The connection is closed (by the server, or earlier by this side).
    Closed,
    /// In memory, the server waits for more input and has nothing to say.
    Silent,
    /// A run in memory has only mailwire's own servers.
    NoOtherServersInMemory,
    /// A `shutdown` step, but this transport cannot stop the servers (they are not its own).
    NoStopHandle,
    /// Losing a segment on purpose needs mailwire's private network (a netfilter rule
    /// there touches nothing else on this computer).
    NeedsPrivateNetwork,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Connect {
                addr,
                detail,
                sandboxed,
            } => {
                write!(f, "cannot connect to {addr}: {detail}")?;
                if *sandboxed {
                    f.write_str(
                        " (mailwire runs in its own private network, where other servers on \
                         this computer cannot be reached; run with --no-sandbox and capture \
                         rights to watch them)",
                    )?;
                }
                Ok(())
            }
            TransportError::Setup { what, detail } => write!(f, "cannot {what}: {detail}"),
            TransportError::NoReply { after } => {
                write!(f, "no reply within {} s", after.as_secs())
            }
            TransportError::Io { action, detail } => write!(f, "{action} failed: {detail}"),
            TransportError::Closed => f.write_str("the connection is closed"),
            TransportError::Silent => {
                f.write_str("the server sent nothing: it waits for more input")
            }
            TransportError::NoOtherServersInMemory => {
                f.write_str("a scenario run in memory cannot reach another server")
            }
            TransportError::NoStopHandle => f.write_str(
                "this run cannot shut the servers down: they are not the scenario's own",
            ),
            TransportError::NeedsPrivateNetwork => f.write_str(
                "losing a segment needs mailwire's private network, where a netfilter rule \
                 touches nothing else on this computer: use `mailwire run` or the window \
                 without --no-sandbox",
            ),
        }
    }
}

impl std::error::Error for TransportError {}
