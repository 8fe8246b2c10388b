//! [`Pop3Connection`]: the POP3 client machine driven over TCP.

use super::connection::Connection;
use super::error::{ClientError, SaslProblem};
use super::tls::ClientTls;
use crate::proto::pop3::Command;
use crate::proto::pop3::client::{Pop3Client, Pop3Reply};
use crate::proto::sasl;
use crate::proto::sasl::client::SaslClient;

/// A POP3 session with a server: one command at a time, each answered by its reply.
pub type Pop3Connection = Connection<Pop3Client>;

impl Connection<Pop3Client> {
    /// The APOP timestamp of the greeting, if the server offers APOP.
    pub fn apop_timestamp(&self) -> Option<&str> {
        self.machine.apop_timestamp()
    }

    /// Sends `command` and waits for its reply.
    pub async fn command(&mut self, command: Command) -> Result<Pop3Reply, ClientError> {
        let quit = command == Command::Quit;
        self.machine.send(command)?;
        let reply = self.next_reply().await;
        if quit {
            self.wire
                .close_tls(super::connection::TLS_CLOSE_PATIENCE)
                .await;
        }
        reply
    }

    /// USER then PASS. Returns the reply that decided: USER's if it was `-ERR`, else PASS's.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<Pop3Reply, ClientError> {
        let reply = self.command(Command::User(user.to_string())).await?;
        if !reply.positive {
            return Ok(reply);
        }
        self.command(Command::Pass(password.to_string())).await
    }

    /// APOP with the digest of the greeting's timestamp and `secret`.
    pub async fn apop(&mut self, user: &str, secret: &str) -> Result<Pop3Reply, ClientError> {
        let command = self.machine.apop_command(user, secret)?;
        self.command(command).await
    }

    /// STLS (RFC 2595 section 4); when the server answers `+OK`, the TLS handshake follows
    /// at once and this returns after it. A `-ERR` is returned as it is (no TLS).
    pub async fn stls(&mut self, tls: &ClientTls) -> Result<Pop3Reply, ClientError> {
        let reply = self.command(Command::Stls).await?;
        self.handshake_if_due(tls, reply.stream.end).await?;
        Ok(reply)
    }

    /// `AUTH mechanism` with the client's initial response, if its mechanism has one
    /// (RFC 5034 section 4; base64, `=` when empty). The reply is a `+ ` challenge
    /// ([`Pop3Reply::continuation`]) to answer with [`Connection::sasl_respond`], or the
    /// final `+OK`/`-ERR`.
    pub async fn auth_start(&mut self, sasl: &mut SaslClient) -> Result<Pop3Reply, ClientError> {
        let initial = sasl.initial_response().map(|r| initial_text(&r));
        let mechanism = sasl.mechanism().name().to_string();
        self.command(Command::Auth { mechanism, initial }).await
    }

    /// Answers the last `+ ` challenge with `response` (sent as base64).
    pub async fn sasl_respond(&mut self, response: &[u8]) -> Result<Pop3Reply, ClientError> {
        self.machine.send_sasl_response(response)?;
        self.next_reply().await
    }

    /// Cancels the AUTH exchange with `*` (the server answers `-ERR`).
    pub async fn sasl_cancel(&mut self) -> Result<Pop3Reply, ClientError> {
        self.machine.cancel_sasl()?;
        self.next_reply().await
    }

    /// A whole AUTH exchange: the initial response, an answer to each challenge, until the
    /// final `+OK` or `-ERR`. A challenge the mechanism cannot answer (SCRAM: a server that
    /// does not prove it knows the password) cancels the exchange and is the error.
    pub async fn authenticate(&mut self, sasl: &mut SaslClient) -> Result<Pop3Reply, ClientError> {
        let mut reply = self.auth_start(sasl).await?;
        while reply.continuation {
            let answer = sasl::decode(&reply.text)
                .map_err(|_| SaslProblem::NotBase64(reply.text.clone()))
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
    pub async fn quit(mut self) -> Result<Pop3Reply, ClientError> {
        self.command(Command::Quit).await
    }
}

/// An initial response as AUTH sends it: base64, or `=` for an empty one (RFC 5034
/// section 4, RFC 4954 section 4).
pub(super) fn initial_text(response: &[u8]) -> String {
    if response.is_empty() {
        "=".to_string()
    } else {
        sasl::encode(response)
    }
}
