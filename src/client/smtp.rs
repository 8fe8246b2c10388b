//! [`SmtpConnection`]: the SMTP client machine driven over TCP.

use super::connection::Connection;
use super::error::{ClientError, SaslProblem};
use super::pop3::initial_text;
use super::tls::ClientTls;
use crate::proto::sasl;
use crate::proto::sasl::client::SaslClient;
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
        let quit = command == ClientCommand::Quit;
        self.machine.send(command)?;
        let reply = self.last_reply().await;
        if quit {
            self.wire
                .close_tls(super::connection::TLS_CLOSE_PATIENCE)
                .await;
        }
        reply
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

    /// STARTTLS (RFC 3207 section 4); when the server answers 220, the TLS handshake
    /// follows at once and this returns after it. The client then knows no extension of the
    /// server any more and must send EHLO again (RFC 3207 section 4.2). Another code is
    /// returned as it is (no TLS).
    pub async fn starttls(&mut self, tls: &ClientTls) -> Result<SmtpReply, ClientError> {
        let reply = self.command(ClientCommand::StartTls).await?;
        self.handshake_if_due(tls, reply.stream.end).await?;
        Ok(reply)
    }

    /// `AUTH mechanism` with the client's initial response, if its mechanism has one
    /// (RFC 4954 section 4). The reply is a 334 challenge to answer with
    /// [`Connection::sasl_respond`], or the final reply (235, 535...).
    pub async fn auth_start(&mut self, sasl: &mut SaslClient) -> Result<SmtpReply, ClientError> {
        let initial = sasl.initial_response().map(|r| initial_text(&r));
        let mechanism = sasl.mechanism().name().to_string();
        self.command(ClientCommand::Auth { mechanism, initial })
            .await
    }

    /// Answers the last 334 challenge with `response` (sent as base64).
    pub async fn sasl_respond(&mut self, response: &[u8]) -> Result<SmtpReply, ClientError> {
        self.machine.send_sasl_response(response)?;
        self.last_reply().await
    }

    /// Cancels the AUTH exchange with `*` (the server answers 501).
    pub async fn sasl_cancel(&mut self) -> Result<SmtpReply, ClientError> {
        self.machine.cancel_sasl()?;
        self.last_reply().await
    }

    /// A whole AUTH exchange (see [`crate::client::Pop3Connection::authenticate`]).
    pub async fn authenticate(&mut self, sasl: &mut SaslClient) -> Result<SmtpReply, ClientError> {
        let mut reply = self.auth_start(sasl).await?;
        while reply.code() == 334 {
            let text = reply.reply.lines.first().cloned().unwrap_or_default();
            let answer = sasl::decode(&text)
                .map_err(|_| SaslProblem::NotBase64(text.clone()))
                .and_then(|challenge| sasl.respond(&challenge).map_err(SaslProblem::Mechanism));
            match answer {
                Ok(response) => reply = self.sasl_respond(&response).await?,
                Err(problem) => {
                    self.sasl_cancel().await?;
                    let peer = self.peer_addr();
                    return Err(ClientError::Sasl { peer, problem });
                }
            }
        }
        Ok(reply)
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
