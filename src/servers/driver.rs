//! The one connection driver: owns a TCP stream and runs a protocol machine over it.
//!
//! The loop is the whole of the I/O: read bytes, hand them to the machine, then take its
//! outputs in order — write replies, publish events, answer requests through the protocol's
//! [`Responder`] — until it needs more input. Replies produced together (pipelined commands)
//! go out in one write.
//!
//! TLS is the driver's too: on an implicit-TLS port the handshake comes before the greeting
//! (RFC 8314); after STLS/STARTTLS the machine asks for it with a request
//! ([`ServerMachine::is_start_tls`]), having dropped any plaintext it held, and the driver
//! swaps the socket for a TLS stream over it before reading on.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use super::tls::TlsSettings;
use super::{EventKind, EventSink, ServerEvent, SessionEnd};
use crate::proto::{Goodbye, Machine, Output, ServerMachine};

/// The longest wait for a client's TLS handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(30);

/// How a session uses TLS.
#[derive(Clone, Debug)]
pub(crate) enum SessionTls {
    /// No certificate: STLS/STARTTLS are not offered.
    None,
    /// STLS/STARTTLS may start it.
    Upgrade(TlsSettings),
    /// The port speaks TLS from the first byte (RFC 8314).
    Implicit(TlsSettings),
}

/// The connection: TCP, or TLS over it.
enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the handshake has the TCP stream.
    Gone,
}

impl Conn {
    async fn start_tls(&mut self, settings: &TlsSettings) -> Result<(), SessionEnd> {
        let Conn::Plain(tcp) = std::mem::replace(self, Conn::Gone) else {
            return Err(SessionEnd::TlsFailed {
                error: "TLS is already on".to_string(),
            });
        };
        match tokio::time::timeout(HANDSHAKE_LIMIT, settings.acceptor().accept(tcp)).await {
            Ok(Ok(tls)) => {
                *self = Conn::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => Err(SessionEnd::TlsFailed {
                error: e.to_string(),
            }),
            Err(_) => Err(SessionEnd::TlsFailed {
                error: format!("no handshake within {} s", HANDSHAKE_LIMIT.as_secs()),
            }),
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection is gone")
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// Replies are gathered and written together, up to this many bytes.
const FLUSH_AT: usize = 64 * 1024;

/// Answers a machine's requests with the outside world (the store, the clock).
pub(crate) trait Responder<M: Machine>: Send {
    fn answer(&mut self, machine: &mut M, request: M::Request) -> impl Future<Output = ()> + Send;
}

/// Runs one session to its end and publishes why it ended.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument its own thing"
)]
pub(crate) async fn drive<M, R>(
    stream: TcpStream,
    tls: SessionTls,
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
    let mut stream = Conn::Plain(stream);
    let reason = run(
        &mut stream,
        &tls,
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
    let _ = tokio::time::timeout(GOODBYE_LIMIT, stream.shutdown()).await;
    if matches!(stream, Conn::Tls(_)) {
        // close_notify and FIN are sent; the client answers with its own close_notify (RFC
        // 8446 section 6.1). Read it (bounded) before the socket goes: data arriving at a
        // closed socket is answered with an RST.
        let linger = async {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(TLS_CLOSE_LIMIT, linger).await;
    }
    publish(EventKind::SessionClosed { reason });
}

async fn run<M, R>(
    stream: &mut Conn,
    tls: &SessionTls,
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
    if let SessionTls::Implicit(settings) = tls {
        let started = tokio::select! {
            r = stream.start_tls(settings) => r,
            () = super::wait_for_stop(shutdown) => Err(SessionEnd::ShuttingDown),
        };
        if let Err(e) = started {
            return e;
        }
        machine.tls_started();
    }
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
                    if M::is_start_tls(&r) {
                        let SessionTls::Upgrade(settings) = tls else {
                            return SessionEnd::TlsFailed {
                                error: "the server has no certificate".to_string(),
                            };
                        };
                        // The machine dropped what it had buffered; nothing was read since
                        // its go-ahead, so the next bytes are the client's ClientHello.
                        if let Err(e) = stream.start_tls(settings).await {
                            return e;
                        }
                        machine.tls_started();
                        continue;
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
                    say_goodbye(stream, &bye).await;
                }
                return SessionEnd::ShuttingDown;
            }
        };
        match read {
            Err(_) => {
                if let Some(bye) = machine.goodbye(Goodbye::Idle) {
                    say_goodbye(stream, &bye).await;
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

/// How long a TLS session, once closed on this side, waits for the client's close_notify.
const TLS_CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// Writes the server's last words, giving up after [`GOODBYE_LIMIT`].
async fn say_goodbye(stream: &mut Conn, bye: &[u8]) {
    let said = async {
        stream.write_all(bye).await?;
        stream.flush().await
    };
    let _ = tokio::time::timeout(GOODBYE_LIMIT, said).await;
}

/// Sends what the machine wrote. A client that reads nothing for `limit` ends the session
/// like an idle one: otherwise it could hold the maildrop lock forever. The error is the
/// reason the session ended.
async fn write_out(
    stream: &mut Conn,
    out: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), SessionEnd> {
    if !out.is_empty() {
        let written = async {
            stream.write_all(out).await?;
            // A TLS stream holds records until flushed.
            stream.flush().await
        };
        match tokio::time::timeout(limit, written).await {
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
