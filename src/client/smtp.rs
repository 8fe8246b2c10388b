//! [`SmtpConnection`]: the SMTP client machine driven over TCP.

use std::net::SocketAddr;

use super::ClientOptions;
use super::error::ClientError;
use super::wire::Wire;
use crate::proto::smtp::client::{ClientCommand, SmtpClient, SmtpReply};

/// An SMTP session with a server: one command at a time, each answered by its reply.
///
/// A 4xx or 5xx reply is a normal [`SmtpReply`]; `Err` means the connection or the protocol
/// failed, after which the connection is unusable.
#[derive(Debug)]
pub struct SmtpConnection {
    wire: Wire,
    machine: SmtpClient,
    greeting: SmtpReply,
}

impl SmtpConnection {
    /// Connects to `addr` (HOST:PORT) and waits for the greeting (220, or 554 if the server
    /// refuses the session).
    pub async fn connect(addr: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let mut wire = Wire::connect(addr, options).await?;
        let mut machine = SmtpClient::new();
        let greeting = wire.next_reply(&mut machine).await?;
        Ok(Self {
            wire,
            machine,
            greeting,
        })
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &SmtpReply {
        &self.greeting
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.wire.peer()
    }

    /// The extensions announced in the reply to EHLO (empty before EHLO or after HELO).
    pub fn extensions(&self) -> &[String] {
        self.machine.extensions()
    }

    /// Sends `command` and waits for its reply. For an EHLO refused with 5xx, the machine
    /// retries with HELO and this returns HELO's reply (both are in the transcript).
    pub async fn command(&mut self, command: ClientCommand) -> Result<SmtpReply, ClientError> {
        self.machine.send(command)?;
        self.last_reply().await
    }

    /// EHLO `domain`, falling back to HELO if the server refuses EHLO.
    pub async fn hello(&mut self, domain: &str) -> Result<SmtpReply, ClientError> {
        self.command(ClientCommand::Ehlo(domain.to_string())).await
    }

    /// Sends the message content after DATA got 354 (dot-stuffed, CRLF, ended by ".") and
    /// waits for the server's verdict on the message.
    pub async fn send_content(&mut self, content: &[u8]) -> Result<SmtpReply, ClientError> {
        self.machine.send_content(content)?;
        self.last_reply().await
    }

    /// Sends QUIT and returns its reply; the connection closes when this value is dropped.
    pub async fn quit(mut self) -> Result<SmtpReply, ClientError> {
        self.command(ClientCommand::Quit).await
    }

    /// Waits until no more replies are expected and returns the last one.
    async fn last_reply(&mut self) -> Result<SmtpReply, ClientError> {
        loop {
            let reply = self.wire.next_reply(&mut self.machine).await?;
            if !self.machine.is_waiting() {
                return Ok(reply);
            }
        }
    }
}
