//! [`SmtpConnection`]: the SMTP client machine driven over TCP.

use super::connection::Connection;
use super::error::ClientError;
use crate::proto::smtp::client::{ClientCommand, SmtpClient, SmtpReply};

/// An SMTP session with a server: one command at a time, each answered by its reply.
pub type SmtpConnection = Connection<SmtpClient>;

impl Connection<SmtpClient> {
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
            let reply = self.next_reply().await?;
            if !self.machine.is_waiting() {
                return Ok(reply);
            }
        }
    }
}
