//! [`Connection`]: a client machine driven over TCP, whatever its protocol. `pop3.rs` and
//! `smtp.rs` add each protocol's commands.

use std::net::SocketAddr;

use super::ClientOptions;
use super::error::ClientError;
use super::wire::Wire;
use crate::proto::ClientMachine;

/// A session with a server: one command at a time, each answered by its reply.
///
/// A negative reply (`-ERR`, 4xx, 5xx) is a normal reply; `Err` means the connection or
/// the protocol failed, after which the connection is unusable.
#[derive(Debug)]
pub struct Connection<M: ClientMachine> {
    pub(super) wire: Wire,
    pub(super) machine: M,
    greeting: M::Reply,
}

impl<M> Connection<M>
where
    M: ClientMachine<Error: Into<ClientError>> + Default,
{
    /// Connects to `addr` (HOST:PORT) and waits for the greeting (which may be negative:
    /// `-ERR`, or SMTP's 554 when the server refuses the session).
    pub async fn connect(addr: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let mut wire = Wire::connect(addr, options).await?;
        let mut machine = M::default();
        let greeting = wire.next_reply(&mut machine).await?;
        Ok(Self {
            wire,
            machine,
            greeting,
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

    /// The next reply the machine hands out.
    pub(super) async fn next_reply(&mut self) -> Result<M::Reply, ClientError> {
        self.wire.next_reply(&mut self.machine).await
    }
}
