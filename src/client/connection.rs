//! [`Connection`]: a client machine driven over TCP, whatever its protocol. `pop3.rs` and
//! `smtp.rs` add each protocol's commands.

use std::net::SocketAddr;
use std::time::Duration;

use super::ClientOptions;
use super::error::ClientError;
use super::tls::ClientTls;
use super::wire::Wire;
use crate::proto::ClientMachine;
use crate::proto::pop3::client::{Pop3Client, Pop3Reply};
use crate::proto::smtp::client::{SmtpClient, SmtpReply};

/// How long a TLS connection's end waits, after QUIT's reply, for the server's close_notify
/// after sending its own (see `Wire::close_tls`): the textbook close. A socket closed with
/// the server's close_notify unread or still to come makes the kernel send a reset.
pub(super) const TLS_CLOSE_PATIENCE: Duration = Duration::from_secs(1);

/// A client machine that can give up a reply the server stopped in the middle of (the
/// machines' own `give_up_reply`), so the replies after it pair with their own commands,
/// and that can go on after a reply line that is not one.
pub trait GiveUpReply: ClientMachine {
    /// Hands out what arrived of the reply being read and forgets it (see
    /// `Pop3Client::give_up_reply`, `SmtpClient::give_up_reply`).
    fn give_up_reply(&mut self) -> Option<Self::Reply>;
    /// A line that is not a reply line answers the command awaited (as an error) instead of
    /// ending the session.
    fn go_on_after_bad_lines(&mut self);
    /// Whether the server accepted STLS/STARTTLS and the machine waits for the handshake.
    fn tls_requested(&self) -> bool;
    /// The handshake is done.
    fn tls_started(&mut self);
    /// Octets the server sent in clear after its go-ahead, thrown away unread.
    fn discarded_before_tls(&self) -> usize;
}

impl GiveUpReply for Pop3Client {
    fn give_up_reply(&mut self) -> Option<Pop3Reply> {
        Pop3Client::give_up_reply(self)
    }

    fn go_on_after_bad_lines(&mut self) {
        self.go_on_after_bad_status_lines();
    }

    fn tls_requested(&self) -> bool {
        Pop3Client::tls_requested(self)
    }

    fn tls_started(&mut self) {
        Pop3Client::tls_started(self);
    }

    fn discarded_before_tls(&self) -> usize {
        Pop3Client::discarded_before_tls(self)
    }
}

impl GiveUpReply for SmtpClient {
    fn give_up_reply(&mut self) -> Option<SmtpReply> {
        SmtpClient::give_up_reply(self)
    }

    fn go_on_after_bad_lines(&mut self) {
        self.go_on_after_bad_reply_lines();
    }

    fn tls_requested(&self) -> bool {
        SmtpClient::tls_requested(self)
    }

    fn tls_started(&mut self) {
        SmtpClient::tls_started(self);
    }

    fn discarded_before_tls(&self) -> usize {
        SmtpClient::discarded_before_tls(self)
    }
}

/// A session with a server: one command at a time, each answered by its reply.
///
/// A negative reply (`-ERR`, 4xx, 5xx) is a normal reply; `Err` means the connection or
/// the protocol failed, after which the connection is unusable — unless it was made with
/// [`Connection::connect_diagnosing`], where a broken reply (see [`Connection::is_usable`])
/// leaves it usable.
#[derive(Debug)]
pub struct Connection<M: ClientMachine> {
    pub(super) wire: Wire,
    pub(super) machine: M,
    greeting: M::Reply,
    /// What came of the last reply that was given up.
    given_up: Option<M::Reply>,
}

impl<M> Connection<M>
where
    M: GiveUpReply<Error: Into<ClientError>> + Default,
{
    /// Connects to `addr` (HOST:PORT) and waits for the greeting (which may be negative:
    /// `-ERR`, or SMTP's 554 when the server refuses the session).
    pub async fn connect(addr: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let wire = Wire::connect(addr, options).await?;
        Self::greeted(wire, M::default()).await
    }

    /// Like [`Connection::connect`], for a console that shows every reply as it came and
    /// goes on after a broken one: the server's bytes are kept for
    /// [`Connection::take_heard`]; a reply that has begun and then stops for
    /// `rest_of_reply` fails with [`ClientError::Stalled`], is given up (what came of it is
    /// [`Connection::take_given_up`]) and the connection stays usable; a line that is not a
    /// reply line fails the command it answers, and the next reply answers the next.
    pub async fn connect_diagnosing(
        addr: &str,
        options: &ClientOptions,
        rest_of_reply: Duration,
    ) -> Result<Self, ClientError> {
        let mut wire = Wire::connect(addr, options).await?;
        wire.diagnose_framing(rest_of_reply);
        let mut machine = M::default();
        machine.go_on_after_bad_lines();
        Self::greeted(wire, machine).await
    }

    /// Like [`Connection::connect`] on an implicit-TLS port (POP3S 995, SMTP submission 465,
    /// RFC 8314 section 3): the TLS handshake comes first, then the greeting, inside TLS.
    pub async fn connect_tls(
        addr: &str,
        options: &ClientOptions,
        tls: &ClientTls,
    ) -> Result<Self, ClientError> {
        let mut wire = Wire::connect(addr, options).await?;
        wire.start_tls(tls).await?;
        Self::greeted(wire, M::default()).await
    }

    /// [`Connection::connect_diagnosing`] on an implicit-TLS port (see
    /// [`Connection::connect_tls`]).
    pub async fn connect_tls_diagnosing(
        addr: &str,
        options: &ClientOptions,
        tls: &ClientTls,
        rest_of_reply: Duration,
    ) -> Result<Self, ClientError> {
        let mut wire = Wire::connect(addr, options).await?;
        wire.start_tls(tls).await?;
        wire.diagnose_framing(rest_of_reply);
        let mut machine = M::default();
        machine.go_on_after_bad_lines();
        Self::greeted(wire, machine).await
    }

    /// Whether TLS protects the connection.
    pub fn is_tls(&self) -> bool {
        self.wire.is_tls()
    }

    /// How many octets the server sent in clear after its go-ahead to STLS/STARTTLS: they
    /// were thrown away unread (only what comes through TLS counts).
    pub fn discarded_before_tls(&self) -> usize {
        self.machine.discarded_before_tls()
    }

    /// After a reply that accepted STLS or STARTTLS: makes the TLS handshake (the machine
    /// reads nothing until it is done). Nothing happens when no handshake is due (the
    /// server refused). A failed handshake leaves the connection unusable.
    /// `go_ahead_end`: where the server's go-ahead ended in its byte stream.
    pub(super) async fn handshake_if_due(
        &mut self,
        tls: &ClientTls,
        go_ahead_end: u64,
    ) -> Result<(), ClientError> {
        if !self.machine.tls_requested() {
            return Ok(());
        }
        let discarded = self.machine.discarded_before_tls();
        if discarded > 0 {
            self.wire
                .drop_heard(go_ahead_end..go_ahead_end + discarded as u64);
            self.wire.note(format!(
                "the server sent {discarded} octets in clear after its go-ahead; they were \
                 thrown away unread (only what comes through TLS counts)"
            ));
        }
        self.wire.start_tls(tls).await?;
        self.machine.tls_started();
        Ok(())
    }

    async fn greeted(mut wire: Wire, mut machine: M) -> Result<Self, ClientError> {
        let greeting = wire.next_reply(&mut machine).await?;
        Ok(Self {
            wire,
            machine,
            greeting,
            given_up: None,
        })
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &M::Reply {
        &self.greeting
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.wire.peer()
    }

    /// Whether commands can still be sent: the server has not closed the connection or
    /// broken it for good, and no timeout or I/O error left the byte stream in an unknown
    /// place.
    pub fn is_usable(&self) -> bool {
        !self.machine.is_ended() && !self.wire.is_broken()
    }

    /// The server's bytes since the last call, up to `until` (a position in its byte
    /// stream, such as a reply's `stream.end`; `None`: all that came). Only a connection
    /// made with [`Connection::connect_diagnosing`] keeps them.
    pub fn take_heard(&mut self, until: Option<u64>) -> Vec<u8> {
        self.wire.take_heard(until)
    }

    /// What came of the last reply given up after [`ClientError::Stalled`], if any of it
    /// was a reply (its status line or its first reply line).
    pub fn take_given_up(&mut self) -> Option<M::Reply> {
        self.given_up.take()
    }

    /// The next reply the machine hands out. A stalled reply is given up here.
    pub(super) async fn next_reply(&mut self) -> Result<M::Reply, ClientError> {
        let result = self.wire.next_reply(&mut self.machine).await;
        if let Err(ClientError::Stalled { .. }) = &result {
            self.given_up = self.machine.give_up_reply();
        }
        result
    }
}
