//! [`Pop3Connection`]: the POP3 client machine driven over TCP.

use super::connection::Connection;
use super::error::ClientError;
use crate::proto::pop3::Command;
use crate::proto::pop3::client::{Pop3Client, Pop3Reply};

/// A POP3 session with a server: one command at a time, each answered by its reply.
pub type Pop3Connection = Connection<Pop3Client>;

impl Connection<Pop3Client> {
    /// The APOP timestamp of the greeting, if the server offers APOP.
    pub fn apop_timestamp(&self) -> Option<&str> {
        self.machine.apop_timestamp()
    }

    /// Sends `command` and waits for its reply.
    pub async fn command(&mut self, command: Command) -> Result<Pop3Reply, ClientError> {
        self.machine.send(command)?;
        self.next_reply().await
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

    /// Sends QUIT and returns its reply; the connection closes when this value is dropped.
    pub async fn quit(mut self) -> Result<Pop3Reply, ClientError> {
        self.command(Command::Quit).await
    }
}
