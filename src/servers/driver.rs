//! The one connection driver: owns a TCP stream and runs a protocol machine over it.
//!
//! The loop is the whole of the I/O: read bytes, hand them to the machine, then take its
//! outputs in order — write replies, publish events, answer requests through the protocol's
//! [`Responder`] — until it needs more input. Replies produced together (pipelined commands)
//! go out in one write.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{EventKind, EventSink, ServerEvent, SessionEnd};
use crate::proto::{Goodbye, Machine, Output, ServerMachine};

/// Replies are gathered and written together, up to this many bytes.
const FLUSH_AT: usize = 64 * 1024;

/// Answers a machine's requests with the outside world (the store, the clock).
pub(crate) trait Responder<M: Machine>: Send {
    fn answer(&mut self, machine: &mut M, request: M::Request) -> impl Future<Output = ()> + Send;
}

/// Runs one session to its end and publishes why it ended.
pub(crate) async fn drive<M, R>(
    mut stream: TcpStream,
    mut machine: M,
    mut responder: R,
    session: u64,
    idle_limit: Duration,
    events: EventSink,
    mut shutdown: watch::Receiver<bool>,
) where
    M: ServerMachine + Send,
    M::Request: Send,
    M::Event: Into<EventKind>,
    R: Responder<M>,
{
    let peer = stream.peer_addr().ok();
    let local = stream.local_addr().ok();
    let publish = |kind: EventKind| {
        events.send(ServerEvent {
            session,
            protocol: M::PROTOCOL,
            at: SystemTime::now(),
            kind,
        })
    };
    if let (Some(peer), Some(local)) = (peer, local) {
        publish(EventKind::SessionOpened { peer, local });
    }
    let reason = run(
        &mut stream,
        &mut machine,
        &mut responder,
        idle_limit,
        &publish,
        &mut shutdown,
    )
    .await;
    // The maildrop lock goes with the responder: release it before saying the session is
    // over, so whoever waits for SessionClosed can log in at once.
    drop(responder);
    drop(machine);
    let _ = stream.shutdown().await;
    publish(EventKind::SessionClosed { reason });
}

async fn run<M, R>(
    stream: &mut TcpStream,
    machine: &mut M,
    responder: &mut R,
    idle_limit: Duration,
    publish: &impl Fn(EventKind),
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd
where
    M: ServerMachine + Send,
    M::Request: Send,
    M::Event: Into<EventKind>,
    R: Responder<M>,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        // Everything the machine can do with what it has.
        let mut close = false;
        while let Some(step) = machine.poll_output() {
            match step {
                Output::Write(bytes) => {
                    out.extend_from_slice(&bytes);
                    // Many pipelined RETRs: do not hold all their replies in memory.
                    if out.len() >= FLUSH_AT
                        && let Err(e) = write_out(stream, &mut out, idle_limit).await
                    {
                        return e;
                    }
                }
                Output::Event(e) => publish(e.into()),
                Output::Request(r) => {
                    // Replies before a slow request (a delivery, a login delay) go out first.
                    if let Err(e) = write_out(stream, &mut out, idle_limit).await {
                        return e;
                    }
                    responder.answer(machine, r).await;
                }
                Output::Close => {
                    close = true;
                    break;
                }
            }
        }
        if let Err(e) = write_out(stream, &mut out, idle_limit).await {
            return e;
        }
        if close {
            return SessionEnd::Quit;
        }
        let read = tokio::select! {
            r = tokio::time::timeout(idle_limit, stream.read(&mut buf)) => r,
            () = super::wait_for_stop(shutdown) => {
                if let Some(bye) = machine.goodbye(Goodbye::ShuttingDown) {
                    let _ = tokio::time::timeout(GOODBYE_LIMIT, stream.write_all(&bye)).await;
                }
                return SessionEnd::ShuttingDown;
            }
        };
        match read {
            Err(_) => {
                if let Some(bye) = machine.goodbye(Goodbye::Idle) {
                    let _ = tokio::time::timeout(GOODBYE_LIMIT, stream.write_all(&bye)).await;
                }
                return SessionEnd::Idle {
                    secs: idle_limit.as_secs(),
                };
            }
            Ok(Err(e)) => {
                machine.receive_eof();
                drain_events(machine, publish);
                return SessionEnd::ReadFailed {
                    error: e.to_string(),
                };
            }
            Ok(Ok(0)) => {
                machine.receive_eof();
                drain_events(machine, publish);
                return SessionEnd::ClientClosed;
            }
            Ok(Ok(n)) => machine.receive(buf.get(..n).unwrap_or_default()),
        }
    }
}

/// The longest wait for a goodbye line to go out (the session ends either way).
const GOODBYE_LIMIT: Duration = Duration::from_secs(5);

/// Sends what the machine wrote. A client that reads nothing for `limit` ends the session
/// like an idle one: otherwise it could hold the maildrop lock forever. The error is the
/// reason the session ended.
async fn write_out(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), SessionEnd> {
    if !out.is_empty() {
        match tokio::time::timeout(limit, stream.write_all(out)).await {
            Ok(Ok(())) => out.clear(),
            Ok(Err(e)) => {
                return Err(SessionEnd::WriteFailed {
                    error: e.to_string(),
                });
            }
            Err(_) => {
                return Err(SessionEnd::ClientNotReading {
                    secs: limit.as_secs(),
                });
            }
        }
    }
    Ok(())
}

fn drain_events<M: Machine>(machine: &mut M, publish: &impl Fn(EventKind))
where
    M::Event: Into<EventKind>,
{
    while let Some(step) = machine.poll_output() {
        if let Output::Event(e) = step {
            publish(e.into());
        }
    }
}

/// The peer's IP address as a Received header shows it: `[127.0.0.1]`.
pub(crate) fn peer_text(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "unknown".to_string(), |a| format!("[{}]", a.ip()))
}
