//! The one owner of a client socket: connects with a timeout, writes what a machine asks,
//! reads with a timeout, and publishes both directions to the transcript. The socket carries
//! plain TCP or TLS: a connection starts TLS at once (implicit TLS, RFC 8314 section 3) or
//! after the server's go-ahead to STLS or STARTTLS ([`Wire::start_tls`]); the transcript
//! always shows the plaintext, and notes where TLS began.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use super::ClientOptions;
use super::error::ClientError;
use super::tls::{ClientTls, host_of, server_name};
use super::transcript::{LineSplitter, Origin, Transcript};
use crate::proto::{ClientMachine, Direction, Output};

/// Socket options set before a connection is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketSetup {
    /// Ask for this maximum segment size.
    pub mss: Option<u16>,
    /// Send each write at once (TCP_NODELAY) instead of waiting to fill a segment (Nagle).
    pub nodelay: bool,
    /// The receive buffer (SO_RCVBUF), which bounds the window this side advertises.
    pub rcvbuf: Option<u32>,
}

/// Resolves `addr` (HOST:PORT) and connects to the first address that answers, all within
/// `timeout`.
pub(crate) async fn connect_tcp(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let attempt = async {
        let addrs = tokio::net::lookup_host(addr)
            .await
            .map_err(|source| ClientError::Resolve {
                addr: addr.to_string(),
                source,
            })?;
        let mut last = ClientError::NoAddress {
            addr: addr.to_string(),
        };
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(stream) => return Ok(stream),
                Err(source) => {
                    last = ClientError::Connect {
                        addr: a.to_string(),
                        source,
                    };
                }
            }
        }
        Err(last)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::ConnectTimeout {
                addr: addr.to_string(),
                after: timeout,
            })
        })
}

/// A TCP stream that counts the bytes it carries each way (under TLS: the records, the
/// handshake included), so a recorder can tell when the capture has seen all of them.
#[derive(Debug)]
struct Counted {
    tcp: TcpStream,
    sent: u64,
    received: u64,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.tcp).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.received += read as u64;
        poll
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &poll {
            self.sent += *n as u64;
        }
        poll
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// What the socket carries.
#[derive(Debug)]
enum Stream {
    Plain(Counted),
    Tls(Box<TlsStream<Counted>>),
    /// A TLS handshake failed: the TCP stream was given to it and is gone.
    Gone,
}

impl Stream {
    fn counted(&self) -> Option<&Counted> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(s.get_ref().0),
            Stream::Gone => None,
        }
    }

    fn tcp(&self) -> Option<&TcpStream> {
        self.counted().map(|c| &c.tcp)
    }

    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            // A server that closes TCP without TLS's close_notify alert has still closed.
            Stream::Tls(s) => match s.read(buf).await {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                // rustls holds the record until flushed.
                s.flush().await
            }
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

/// A connected socket with its transcript.
#[derive(Debug)]
pub(crate) struct Wire {
    stream: Stream,
    peer: SocketAddr,
    /// The host the connection was made to, as given (the name a certificate must carry).
    host: String,
    read_timeout: Duration,
    transcript: Transcript,
    sent: LineSplitter,
    received: LineSplitter,
    /// An earlier timeout or I/O error left the byte stream in an unknown place.
    broken: bool,
    /// Once part of a reply is in, how long to wait for the rest before
    /// [`ClientError::Stalled`] (the reply is then given up and the connection goes on);
    /// `None`: the read timeout, after which the connection is unusable.
    rest_of_reply: Option<Duration>,
    /// The server's bytes not yet taken by [`Wire::take_heard`], when they are kept.
    heard: Option<Vec<u8>>,
    /// Where `heard` begins in the server's byte stream.
    heard_from: u64,
    /// Server bytes [`Wire::take_heard`] leaves out: what the server sent in clear after its
    /// go-ahead to STLS/STARTTLS, which the machine threw away unread.
    heard_dropped: Option<std::ops::Range<u64>>,
    /// Whether TLS protects the connection.
    tls: bool,
}

impl Wire {
    /// Connects to `addr` and notes it in the transcript.
    pub(crate) async fn connect(addr: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let stream = connect_tcp(addr, options.connect_timeout).await?;
        let peer = stream.peer_addr().map_err(|source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        })?;
        let _ = stream.set_nodelay(true);
        options
            .transcript
            .publish(Origin::Note, format!("connected to {peer}"));
        Ok(Self::over(stream, peer, host_of(addr), options))
    }

    /// Connects to `addr` with socket options set before the handshake (a small MSS, so
    /// long replies visibly span many segments), and notes it in the transcript.
    pub(crate) async fn connect_with(
        addr: SocketAddr,
        setup: SocketSetup,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let connect_error = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(connect_error)?;
        if let Some(mss) = setup.mss {
            socket2::SockRef::from(&socket)
                .set_tcp_mss(u32::from(mss))
                .map_err(connect_error)?;
        }
        socket.set_nodelay(setup.nodelay).map_err(connect_error)?;
        if let Some(size) = setup.rcvbuf {
            socket.set_recv_buffer_size(size).map_err(connect_error)?;
        }
        let stream = tokio::time::timeout(options.connect_timeout, socket.connect(addr))
            .await
            .map_err(|_| ClientError::ConnectTimeout {
                addr: addr.to_string(),
                after: options.connect_timeout,
            })?
            .map_err(connect_error)?;
        options
            .transcript
            .publish(Origin::Note, format!("connected to {addr}"));
        Ok(Self::over(stream, addr, &addr.ip().to_string(), options))
    }

    fn over(stream: TcpStream, peer: SocketAddr, host: &str, options: &ClientOptions) -> Self {
        Self {
            stream: Stream::Plain(Counted {
                tcp: stream,
                sent: 0,
                received: 0,
            }),
            peer,
            host: host.to_string(),
            read_timeout: options.read_timeout,
            transcript: options.transcript.clone(),
            sent: LineSplitter::new(Direction::ClientToServer),
            received: LineSplitter::new(Direction::ServerToClient),
            broken: false,
            rest_of_reply: None,
            heard: None,
            heard_from: 0,
            heard_dropped: None,
            tls: false,
        }
    }

    /// Makes the TLS handshake over the connection (at once for implicit TLS, or after the
    /// server's go-ahead to STLS or STARTTLS) within the read timeout; from here on every
    /// byte on the wire is a TLS record. Notes the protocol version and cipher suite, or
    /// why the handshake failed (the connection is then unusable).
    pub(crate) async fn start_tls(&mut self, tls: &ClientTls) -> Result<(), ClientError> {
        let peer = self.peer;
        let Some(name) = server_name(&self.host) else {
            return Err(ClientError::Tls {
                peer,
                error: format!(
                    "\"{}\" is not a host name a certificate can carry",
                    self.host
                ),
            });
        };
        if !matches!(self.stream, Stream::Plain(_)) {
            return Err(ClientError::Tls {
                peer,
                error: "the connection is already protected by TLS, or gone".into(),
            });
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(ClientError::Closed { peer });
        };
        self.received.flush(&self.transcript);
        let handshake = tls.connector().connect(name, tcp);
        let result = match tokio::time::timeout(self.read_timeout, handshake).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the handshake did not finish within {:?}",
                self.read_timeout
            )),
        };
        match result {
            Ok(stream) => {
                let (_, session) = stream.get_ref();
                let version = session
                    .protocol_version()
                    .and_then(|v| v.as_str())
                    .unwrap_or("TLS");
                let suite = session
                    .negotiated_cipher_suite()
                    .and_then(|s| s.suite().as_str())
                    .unwrap_or("an unknown cipher suite");
                let trust = if tls.is_insecure() {
                    "; the certificate was NOT checked (--insecure): encrypted, but the \
                     server may be anyone"
                } else {
                    "; the server's certificate was checked"
                };
                self.note(format!(
                    "TLS started ({version}, {suite}){trust}. From here on the bytes on the \
                     wire are encrypted TLS records; the lines shown are what they carry."
                ));
                self.stream = Stream::Tls(Box::new(stream));
                self.tls = true;
                Ok(())
            }
            Err(error) => {
                self.broken = true;
                self.note(format!("TLS handshake failed: {error}"));
                Err(ClientError::Tls { peer, error })
            }
        }
    }

    /// Whether TLS protects the connection.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls
    }

    /// The octets written to and read from the TCP connection so far (under TLS: records,
    /// the handshake included), client to server first.
    pub(crate) fn tcp_octets(&self) -> (u64, u64) {
        self.stream
            .counted()
            .map_or((0, 0), |c| (c.sent, c.received))
    }

    /// Keeps the server's bytes for [`Wire::take_heard`], and gives a reply that has begun
    /// `rest_of_reply` to come whole before [`ClientError::Stalled`] (the connection then
    /// stays usable): for a console that shows every reply as it came.
    pub(crate) fn diagnose_framing(&mut self, rest_of_reply: Duration) {
        self.rest_of_reply = Some(rest_of_reply);
        self.heard.get_or_insert_with(Vec::new);
    }

    /// The server's bytes kept since the last call, up to `until` (a position in the
    /// server's byte stream; `None`: all of them). Empty unless [`Wire::diagnose_framing`]
    /// was called.
    pub(crate) fn take_heard(&mut self, until: Option<u64>) -> Vec<u8> {
        let Some(heard) = &mut self.heard else {
            return Vec::new();
        };
        let count = until.map_or(heard.len(), |u| {
            usize::try_from(u.saturating_sub(self.heard_from))
                .unwrap_or(usize::MAX)
                .min(heard.len())
        });
        let from = self.heard_from;
        self.heard_from += count as u64;
        let mut taken: Vec<u8> = heard.drain(..count).collect();
        if let Some(dropped) = self.heard_dropped.clone() {
            // The part of `dropped` inside what is taken, as offsets into `taken`.
            let start = dropped.start.max(from);
            let end = dropped.end.min(self.heard_from);
            if start < end {
                let at = |p: u64| {
                    usize::try_from(p - from)
                        .unwrap_or(usize::MAX)
                        .min(taken.len())
                };
                taken.drain(at(start)..at(end));
            }
            if dropped.end <= self.heard_from {
                self.heard_dropped = None;
            }
        }
        taken
    }

    /// The server bytes at `range` of its byte stream (sent in clear after a go-ahead to
    /// STLS/STARTTLS, and thrown away by the machine) are left out of what
    /// [`Wire::take_heard`] hands out.
    pub(crate) fn drop_heard(&mut self, range: std::ops::Range<u64>) {
        if !range.is_empty() {
            self.heard_dropped = Some(range);
        }
    }

    /// Whether a timeout or an I/O error left the byte stream in an unknown place.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// The server's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// This end's address.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.tcp()?.local_addr().ok()
    }

    /// Ends TLS the textbook way before the socket is closed (RFC 8446 section 6.1): sends
    /// close_notify and then TCP's FIN (the write side is closed), and reads, for at most
    /// `patience`, until the server's close_notify or FIN; what arrives meanwhile is
    /// dropped. Without this the socket would be closed with the server's close_notify
    /// unread or still to come, and the kernel would answer it with an RST. Nothing on a
    /// plain connection; errors only end the wait.
    pub(crate) async fn close_tls(&mut self, patience: Duration) {
        let Stream::Tls(s) = &mut self.stream else {
            return;
        };
        let finish = async {
            if s.shutdown().await.is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(patience, finish).await;
    }

    /// Closes the connection at once with a reset: SO_LINGER 0 makes the close send an RST
    /// (and drop anything unsent) instead of a FIN.
    pub(crate) fn abort(self) {
        if let Some(tcp) = self.stream.tcp() {
            let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
        }
        self.note("connection aborted (RST)".into());
    }

    /// Writes bytes as they are (one write: one segment when small enough).
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.write(bytes).await
    }

    /// The next bytes from the server, or `None` once it closed the connection.
    pub(crate) async fn receive_bytes(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        self.read("a reply".to_string(), None).await
    }

    /// Drives `machine` until it hands out a reply: writes what it asks, reads what the
    /// server sends, and turns its protocol errors into [`ClientError`]s.
    pub(crate) async fn next_reply<M>(&mut self, machine: &mut M) -> Result<M::Reply, ClientError>
    where
        M: ClientMachine<Error: Into<ClientError>>,
    {
        loop {
            while let Some(output) = machine.poll_output() {
                match output {
                    Output::Write(bytes) => self.write(&bytes).await?,
                    Output::Event(Ok(reply)) => return Ok(reply),
                    Output::Event(Err(e)) => {
                        let e = e.into();
                        self.note(format!("error: {e}"));
                        return Err(e);
                    }
                    Output::Request(never) => match never {},
                    // A client machine never closes on its own; the caller closes after QUIT.
                    Output::Close => {}
                }
            }
            if machine.is_ended() {
                return Err(ClientError::Closed { peer: self.peer });
            }
            let waiting_for = machine.waiting_for().unwrap_or_else(|| "nothing".into());
            let progress = machine.progress();
            if let (Some(so_far), Some(after)) = (&progress, self.rest_of_reply) {
                match self.read_within(after).await {
                    Some(read) => {
                        match read? {
                            Some(bytes) => machine.receive(&bytes),
                            None => machine.receive_eof(),
                        }
                        continue;
                    }
                    None => {
                        self.received.flush(&self.transcript);
                        self.note(format!(
                            "the rest of the reply did not come within {after:?}"
                        ));
                        return Err(ClientError::Stalled {
                            peer: self.peer,
                            waiting_for,
                            so_far: so_far.clone(),
                            after,
                        });
                    }
                }
            }
            match self.read(waiting_for, progress).await? {
                Some(bytes) => machine.receive(&bytes),
                None => machine.receive_eof(),
            }
        }
    }

    /// Notes something about the connection in the transcript.
    pub(crate) fn note(&self, text: String) {
        self.transcript.publish(Origin::Note, text);
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if self.broken {
            return Err(ClientError::Closed { peer: self.peer });
        }
        self.sent.push(bytes, &self.transcript);
        let result = self.stream.write_all(bytes).await;
        result.map_err(|source| self.fail("writing", source))
    }

    /// The next bytes from the server, or `None` once it closed the connection.
    async fn read(
        &mut self,
        waiting_for: String,
        so_far: Option<String>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        if self.broken {
            return Err(ClientError::Closed { peer: self.peer });
        }
        let mut buf = vec![0u8; 16 * 1024];
        let read = tokio::time::timeout(self.read_timeout, self.stream.read(&mut buf)).await;
        match read {
            Err(_elapsed) => {
                self.broken = true;
                self.received.flush(&self.transcript);
                let after = self.read_timeout;
                self.note(format!("nothing received for {after:?}; giving up"));
                let peer = self.peer;
                Err(ClientError::ReadTimeout {
                    peer,
                    waiting_for,
                    after,
                    so_far,
                })
            }
            Ok(Err(source)) => Err(self.fail("reading", source)),
            Ok(Ok(0)) => {
                self.received.flush(&self.transcript);
                self.note("connection closed by the server".into());
                Ok(None)
            }
            Ok(Ok(n)) => {
                buf.truncate(n);
                self.heard_bytes(&buf);
                Ok(Some(buf))
            }
        }
    }

    /// The next bytes from the server (`None` inside: it closed the connection), or `None`
    /// when nothing came within `after`; the connection stays usable then.
    async fn read_within(
        &mut self,
        after: Duration,
    ) -> Option<Result<Option<Vec<u8>>, ClientError>> {
        if self.broken {
            return Some(Err(ClientError::Closed { peer: self.peer }));
        }
        let mut buf = vec![0u8; 16 * 1024];
        let read = tokio::time::timeout(after, self.stream.read(&mut buf))
            .await
            .ok()?;
        Some(match read {
            Err(source) => Err(self.fail("reading", source)),
            Ok(0) => {
                self.received.flush(&self.transcript);
                self.note("connection closed by the server".into());
                Ok(None)
            }
            Ok(n) => {
                buf.truncate(n);
                self.heard_bytes(&buf);
                Ok(Some(buf))
            }
        })
    }

    /// Publishes received bytes to the transcript and keeps them when asked to.
    fn heard_bytes(&mut self, bytes: &[u8]) {
        self.received.push(bytes, &self.transcript);
        if let Some(heard) = &mut self.heard {
            heard.extend_from_slice(bytes);
        }
    }

    fn fail(&mut self, action: &'static str, source: std::io::Error) -> ClientError {
        self.broken = true;
        self.note(format!("{action} failed: {source}"));
        ClientError::Io {
            peer: self.peer,
            action,
            source,
        }
    }
}
