//! [`Pop3Connection`]: the POP3 client machine driven over TCP.

use std::net::SocketAddr;

use super::ClientOptions;
use super::error::ClientError;
use super::wire::Wire;
use crate::proto::pop3::Command;
use crate::proto::pop3::client::{Pop3Client, Pop3Reply};

/// A POP3 session with a server: one command at a time, each answered by its reply.
///
/// A `-ERR` reply is a normal [`Pop3Reply`] with `positive == false`; `Err` means the
/// connection or the protocol failed, after which the connection is unusable.
#[derive(Debug)]
pub struct Pop3Connection {
    wire: Wire,
    machine: Pop3Client,
    greeting: Pop3Reply,
}

impl Pop3Connection {
    /// Connects to `addr` (HOST:PORT) and waits for the greeting (which may be `-ERR`).
    pub async fn connect(addr: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let mut wire = Wire::connect(addr, options).await?;
        let mut machine = Pop3Client::new();
        let greeting = wire.next_reply(&mut machine).await?;
        Ok(Self {
            wire,
            machine,
            greeting,
        })
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &Pop3Reply {
        &self.greeting
    }

    /// The APOP timestamp of the greeting, if the server offers APOP.
    pub fn apop_timestamp(&self) -> Option<&str> {
        self.machine.apop_timestamp()
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.wire.peer()
    }

    /// Sends `command` and waits for its reply.
    pub async fn command(&mut self, command: Command) -> Result<Pop3Reply, ClientError> {
        self.machine.send(command)?;
        self.wire.next_reply(&mut self.machine).await
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
