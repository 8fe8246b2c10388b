//! The mail client: drives the sans-IO client machines of [`crate::proto`] over TCP; the
//! assignment's console client; the raw command console.
//!
//! - [`Connection`] ([`Pop3Connection`], [`SmtpConnection`]): a client machine over one
//!   socket ([`wire`], the only owner of a client socket); connect with a
//!   timeout, then `command(...)` returns the reply (or a [`ClientError`] that says what
//!   went wrong, a read timeout included). Every line sent and received is published to a
//!   [`Transcript`] (crossbeam channel or callback) for the window.
//! - [`console`]: `mailwire client`, the menu client of seed 001, on any reader and writer.
//! - [`telnet`]: `mailwire telnet`, the PuTTY-like raw console of seed 004.
//!
//! Their command-line arguments and entry points are in `src/cli/` (`client.rs`, `telnet.rs`).
//!
//! Invariant: protocol rules (reply framing, dot-stuffing, reply codes) live in the sans-IO
//! machines; this module only moves bytes, keeps time and talks to the user.

mod connection;
pub mod console;
mod error;
mod pop3;
pub mod reply_lines;
mod smtp;
pub mod summary;
pub mod telnet;
pub mod tls;
mod transcript;
mod tty;
pub(crate) mod wire;

use std::time::Duration;

pub use connection::{Connection, GiveUpReply};
pub use error::{ClientError, SaslProblem};
pub use pop3::Pop3Connection;
pub use smtp::SmtpConnection;
pub use tls::{ClientTls, ClientTlsError, Trust};
pub use transcript::{Origin, Transcript, TranscriptEntry};

/// How a connection behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The longest wait for the TCP connection (name lookup included).
    pub connect_timeout: Duration,
    /// The longest wait for the next bytes while a reply is expected.
    pub read_timeout: Duration,
    /// Where the `C:`/`S:` lines go.
    pub transcript: Transcript,
}

impl Default for ClientOptions {
    /// 10 s to connect, 30 s per read, no transcript.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            transcript: Transcript::none(),
        }
    }
}
