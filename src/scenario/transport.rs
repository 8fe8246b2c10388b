//! How the scenario runner reaches the servers: in memory (the server machines are fed the
//! client's bytes directly, no sockets) or over real TCP sockets on loopback.
//!
//! TLS: on sockets the client's [`Wire`] makes a real handshake (rustls), trusting the
//! certificate of the scenario's own servers, and keeps the session secrets
//! ([`SocketTransport::keylog`]). In memory there is no wire, so nothing is encrypted: the
//! server machine is only told that TLS started (its state changes as after a handshake,
//! RFC 2595 section 4, RFC 3207 section 4.2), and SCRAM's client nonce is fixed, so a run in
//! memory is the same every time.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::ClientError;
use crate::client::ClientOptions;
use crate::client::ClientTls;
use crate::client::wire::{SocketSetup, Wire};
use crate::exchange::{ConnId, TransportError};
use crate::proto::keylog::KeyLog;
use crate::proto::pop3::{Pop3Config, Pop3Server};
use crate::proto::sasl::{Security, TlsState};
use crate::proto::smtp::{SmtpConfig, SmtpServer};
use crate::proto::{Goodbye, Output, Protocol, ServerMachine};
use crate::servers::{Backend, EventKind, Pop3Backend, ServerConfig, ServerEvent, SmtpBackend};
use crate::store::Store;
use crate::timeline::Ends;

/// Moves the client's bytes to a server and back.
pub trait Transport {
    /// Opens a connection; `mss` asks for a small maximum segment size; `to` names another
    /// server than the transport's own one for `protocol`; `rcvbuf` sets the client's
    /// receive buffer; `nagle` sends with Nagle's
    /// algorithm instead of TCP_NODELAY.
    fn connect(
        &mut self,
        protocol: Protocol,
        mss: Option<u16>,
        to: Option<SocketAddr>,
        nagle: bool,
        rcvbuf: Option<u32>,
    ) -> Result<ConnId, TransportError>;
    /// Writes bytes to the server (one write: one segment when small enough).
    fn write(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), TransportError>;
    /// Bytes the server sent, waiting a while for at least one; empty means it closed.
    fn read(&mut self, conn: ConnId, patience: Duration) -> Result<Vec<u8>, TransportError>;
    /// Closes the connection from the client side (no QUIT) and waits until the server has
    /// seen it, so the next step meets a server that has released the session's lock.
    fn close(&mut self, conn: ConnId);
    /// Closes the connection at once with a reset (an RST instead of a FIN: SO_LINGER 0),
    /// and waits, like [`Transport::close`], until the server has seen it. In memory there
    /// are no segments: the server machine sees its input end, as with `close`.
    fn abort(&mut self, conn: ConnId);
    /// Sends nothing for up to `duration` and returns what the server sent meanwhile;
    /// returns sooner when the server closes the connection. In memory, where there is no
    /// clock, a wait at least as long as the autologout timer lets that timer run out for
    /// this connection (only this one).
    fn wait(&mut self, conn: ConnId, duration: Duration) -> Result<Waited, TransportError>;
    /// Shuts the servers down (all of them: the end of a scenario), then waits like
    /// [`Transport::wait`] on `conn` for the server's last words and its close.
    fn shut_down_servers(
        &mut self,
        conn: ConnId,
        duration: Duration,
    ) -> Result<Waited, TransportError>;
    /// The next data segment the server sends on `conn` is lost once, after the capture saw
    /// it, so TCP sends it again. In memory there are no segments to lose: nothing happens.
    fn lose_next_from_server(&mut self, _conn: ConnId) -> Result<(), TransportError> {
        Ok(())
    }
    /// Waits `duration` between two writes (so that without Nagle's algorithm they go out
    /// in separate segments).
    fn pause(&mut self, _duration: Duration) {}
    /// Server events seen so far (session opened, command received, state changed...).
    fn take_events(&mut self) -> Vec<ServerEvent>;
    /// The two ends of a connection (also after it closed), if it had a socket.
    fn ends(&self, _conn: ConnId) -> Option<Ends> {
        None
    }
    /// Opens a connection to the server's implicit-TLS port (POP3S, SMTPS; RFC 8314
    /// section 3) and makes the TLS handshake before anything is read; options as
    /// [`Transport::connect`].
    fn connect_tls(
        &mut self,
        protocol: Protocol,
        mss: Option<u16>,
        to: Option<SocketAddr>,
        nagle: bool,
        rcvbuf: Option<u32>,
    ) -> Result<ConnId, TransportError>;
    /// Makes the TLS handshake on `conn` now: the server has accepted STLS or STARTTLS.
    fn start_tls(&mut self, conn: ConnId) -> Result<(), TransportError>;
    /// A SCRAM client nonce: fresh and unpredictable on sockets, fixed in memory.
    fn client_nonce(&mut self) -> String {
        FIXED_CLIENT_NONCE.to_string()
    }
    /// For a connection protected by TLS (also after it closed): the octets the client wrote
    /// to and read from TCP so far, records and handshake included. The exchanges of such a
    /// connection have no place in the TCP stream, so a recorder waits for these counts.
    fn tls_octets(&self, _conn: ConnId) -> Option<(u64, u64)> {
        None
    }
}

/// The SCRAM client nonce of runs in memory (a replayable run needs fixed values; a real
/// client must never use one twice: RFC 5802 section 5.1).
pub const FIXED_CLIENT_NONCE: &str = "fixed-client-nonce-for-replayable-runs";

/// What a [`Transport::wait`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waited {
    /// The bytes the server sent.
    pub bytes: Vec<u8>,
    /// The server closed the connection (the end of its byte stream was read).
    pub closed: bool,
}

/// A server machine and the backend that answers its requests, run without sockets.
struct Served<M, B> {
    machine: M,
    /// `None` once the connection is gone.
    backend: Option<B>,
    /// The machine asked for the TLS handshake (after STLS or STARTTLS).
    tls_requested: bool,
}

/// What the in-memory transport needs of a served session, whatever its protocol.
trait MemorySession {
    fn receive(&mut self, bytes: &[u8]);
    fn receive_eof(&mut self);
    /// Lets the machine run until it needs more input: its writes go to `to_client`, its
    /// events to `events`; `true` once it closed the connection.
    fn pump(&mut self, to_client: &mut Vec<u8>, events: &mut Vec<EventKind>) -> bool;
    /// The connection is gone: give up what the session holds (the maildrop lock).
    fn release(&mut self);
    fn protocol(&self) -> Protocol;
    /// What the server says before closing on its own, if anything.
    fn goodbye(&self, why: Goodbye) -> Option<Vec<u8>>;
    /// The client made the handshake (in memory: there is none): `false` when the machine
    /// had not asked for it, unless `implicit` (a connection to an implicit-TLS port).
    fn tls_started(&mut self, implicit: bool) -> bool;
}

impl<M, B> MemorySession for Served<M, B>
where
    M: ServerMachine,
    M::Event: Into<EventKind>,
    B: Backend<M>,
{
    fn receive(&mut self, bytes: &[u8]) {
        self.machine.receive(bytes);
    }

    fn receive_eof(&mut self) {
        self.machine.receive_eof();
    }

    fn pump(&mut self, to_client: &mut Vec<u8>, events: &mut Vec<EventKind>) -> bool {
        let mut closed = false;
        while let Some(output) = self.machine.poll_output() {
            match output {
                Output::Write(bytes) => to_client.extend_from_slice(&bytes),
                Output::Event(e) => events.push(e.into()),
                // The handshake comes when the client makes it (`tls_started`).
                Output::Request(r) if M::is_start_tls(&r) => self.tls_requested = true,
                Output::Request(r) => {
                    if let Some(backend) = &mut self.backend {
                        backend.answer(&mut self.machine, r);
                    }
                }
                Output::Close => closed = true,
            }
        }
        closed
    }

    fn release(&mut self) {
        // Dropping the backend releases the maildrop lock, as the socket driver does.
        self.backend = None;
    }

    fn protocol(&self) -> Protocol {
        M::PROTOCOL
    }

    fn goodbye(&self, why: Goodbye) -> Option<Vec<u8>> {
        self.machine.goodbye(why)
    }

    fn tls_started(&mut self, implicit: bool) -> bool {
        if !std::mem::take(&mut self.tls_requested) && !implicit {
            return false;
        }
        self.machine.tls_started();
        true
    }
}

struct MemoryConn {
    served: Box<dyn MemorySession + Send>,
    session: u64,
    to_client: Vec<u8>,
    closed: bool,
}

/// The server machines driven directly: no sockets, no threads, no timing.
pub struct MemoryTransport {
    store: Arc<Store>,
    config: ServerConfig,
    conns: Vec<MemoryConn>,
    events: Vec<ServerEvent>,
    /// The servers offer STLS and STARTTLS (see [`MemoryTransport::offer_tls`]).
    tls: bool,
}

impl MemoryTransport {
    /// Servers with `config` on `store`.
    pub fn new(store: Arc<Store>, config: ServerConfig) -> Self {
        Self {
            store,
            config,
            conns: Vec::new(),
            events: Vec::new(),
            tls: false,
        }
    }

    /// The servers offer STLS and STARTTLS (and so announce them in CAPA and EHLO), as
    /// servers with a certificate do; for scenarios that start TLS.
    pub fn offer_tls(&mut self) {
        self.tls = true;
    }

    fn open(
        &mut self,
        protocol: Protocol,
        to: Option<SocketAddr>,
        tls: TlsState,
    ) -> Result<ConnId, TransportError> {
        if to.is_some() {
            return Err(TransportError::NoOtherServersInMemory);
        }
        let security = Security {
            tls,
            ..Security::default()
        };
        let session = self.conns.len() as u64 + 1;
        let mut served: Box<dyn MemorySession + Send> = match protocol {
            Protocol::Pop3 => Box::new(Served {
                machine: Pop3Server::with_replies(
                    Pop3Config {
                        hostname: self.config.hostname.clone(),
                        timestamp: self.config.fixed_timestamp.clone().unwrap_or_else(|| {
                            format!("<{session}.{}@{}>", 1000 + session, self.config.hostname)
                        }),
                        apop_only: self.config.apop_only,
                    },
                    self.config.replies.pop3.clone(),
                )
                .with_security(security),
                backend: Some(Pop3Backend::new(self.store.clone())),
                tls_requested: false,
            }),
            Protocol::Smtp => Box::new(Served {
                machine: SmtpServer::with_replies(
                    SmtpConfig {
                        hostname: self.config.hostname.clone(),
                        local_domains: self.config.local_domains.clone(),
                        max_message_size: self.config.max_message_size,
                    },
                    self.config.replies.smtp.clone(),
                )
                .with_security(security),
                backend: Some(SmtpBackend::new(
                    self.store.clone(),
                    &self.config,
                    "[127.0.0.1]".to_string(),
                    session,
                )),
                tls_requested: false,
            }),
        };
        if tls == TlsState::Active {
            // Implicit TLS: the "handshake" (none in memory) comes before the greeting.
            served.tls_started(true);
        }
        self.conns.push(MemoryConn {
            served,
            session,
            to_client: Vec::new(),
            closed: false,
        });
        let id = self.conns.len() - 1;
        self.pump(id);
        Ok(id)
    }

    fn pump(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let mut kinds = Vec::new();
        if c.served.pump(&mut c.to_client, &mut kinds) {
            c.closed = true;
        }
        let (session, protocol) = (c.session, c.served.protocol());
        let at = std::time::UNIX_EPOCH;
        self.events
            .extend(kinds.into_iter().map(|kind| ServerEvent {
                session,
                protocol,
                at,
                kind,
            }));
    }
}

impl Transport for MemoryTransport {
    fn connect(
        &mut self,
        protocol: Protocol,
        _mss: Option<u16>,
        to: Option<SocketAddr>,
        _nagle: bool,
        _rcvbuf: Option<u32>,
    ) -> Result<ConnId, TransportError> {
        let tls = if self.tls {
            TlsState::Offered
        } else {
            TlsState::Unavailable
        };
        self.open(protocol, to, tls)
    }

    fn connect_tls(
        &mut self,
        protocol: Protocol,
        _mss: Option<u16>,
        to: Option<SocketAddr>,
        _nagle: bool,
        _rcvbuf: Option<u32>,
    ) -> Result<ConnId, TransportError> {
        self.open(protocol, to, TlsState::Active)
    }

    fn start_tls(&mut self, conn: ConnId) -> Result<(), TransportError> {
        let c = self.conns.get_mut(conn).ok_or(TransportError::Closed)?;
        if !c.served.tls_started(false) {
            return Err(TransportError::Setup {
                what: "start TLS".into(),
                detail: "the server did not agree to start TLS".into(),
            });
        }
        self.pump(conn);
        Ok(())
    }

    fn write(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), TransportError> {
        let c = self.conns.get_mut(conn).ok_or(TransportError::Closed)?;
        if c.closed {
            return Err(TransportError::Closed);
        }
        c.served.receive(bytes);
        self.pump(conn);
        Ok(())
    }

    fn read(&mut self, conn: ConnId, _patience: Duration) -> Result<Vec<u8>, TransportError> {
        let c = self.conns.get_mut(conn).ok_or(TransportError::Closed)?;
        if c.to_client.is_empty() && !c.closed {
            return Err(TransportError::Silent);
        }
        Ok(std::mem::take(&mut c.to_client))
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.served.receive_eof();
        }
        self.pump(conn);
        if let Some(c) = self.conns.get_mut(conn) {
            c.closed = true;
            c.served.release();
        }
    }

    fn abort(&mut self, conn: ConnId) {
        // No segments in memory: the server machine sees its input end, as with a FIN.
        self.close(conn);
    }

    fn shut_down_servers(
        &mut self,
        conn: ConnId,
        _duration: Duration,
    ) -> Result<Waited, TransportError> {
        // As the socket driver does on shutdown: each open session's goodbye, then the close.
        for c in self.conns.iter_mut().filter(|c| !c.closed) {
            if let Some(bye) = c.served.goodbye(Goodbye::ShuttingDown) {
                c.to_client.extend_from_slice(&bye);
            }
            c.closed = true;
            c.served.release();
        }
        let c = self.conns.get_mut(conn).ok_or(TransportError::Closed)?;
        Ok(Waited {
            bytes: std::mem::take(&mut c.to_client),
            closed: c.closed,
        })
    }

    fn wait(&mut self, conn: ConnId, duration: Duration) -> Result<Waited, TransportError> {
        let idle_limit = self.config.idle_limit;
        let c = self.conns.get_mut(conn).ok_or(TransportError::Closed)?;
        if !c.closed && duration >= idle_limit {
            // The autologout timer runs out, as the socket driver's does: its goodbye, if
            // the protocol has one (POP3 has none, RFC 1939 section 3), then the close.
            if let Some(bye) = c.served.goodbye(Goodbye::Idle) {
                c.to_client.extend_from_slice(&bye);
            }
            c.closed = true;
            c.served.release();
        }
        Ok(Waited {
            bytes: std::mem::take(&mut c.to_client),
            closed: c.closed,
        })
    }

    fn take_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.events)
    }
}

/// Real TCP connections to real servers (started elsewhere) on loopback, or to another
/// server a connect step names (whose events, if any, are not seen). The sockets are the
/// client's own ([`Wire`], the one owner of a client socket), driven on a small runtime
/// of this transport's.
pub struct SocketTransport {
    pop3: SocketAddr,
    smtp: SocketAddr,
    runtime: tokio::runtime::Runtime,
    conns: HashMap<ConnId, Wire>,
    next: ConnId,
    events: crossbeam_channel::Receiver<ServerEvent>,
    seen: Vec<ServerEvent>,
    session_of: HashMap<SocketAddr, u64>,
    ends: HashMap<ConnId, Ends>,
    /// Connections to another server (no events come from it, so close does not wait).
    remote: HashSet<ConnId>,
    options: ClientOptions,
    /// Stops the servers when used (or dropped).
    stopper: Option<tokio::sync::oneshot::Sender<()>>,
    /// The client's TLS configuration (trusting the servers' certificate) and the
    /// servers' implicit-TLS addresses, when the servers have TLS.
    tls: Option<SocketTls>,
    /// [`Transport::tls_octets`] of the TLS connections already closed.
    closed_tls_octets: HashMap<ConnId, (u64, u64)>,
}

/// What a socket transport needs for TLS.
struct SocketTls {
    client: ClientTls,
    pop3s: Option<SocketAddr>,
    smtps: Option<SocketAddr>,
}

impl SocketTransport {
    /// Connections to the servers at these addresses; `events` comes from their EventSink.
    pub fn new(
        pop3: SocketAddr,
        smtp: SocketAddr,
        events: crossbeam_channel::Receiver<ServerEvent>,
    ) -> Result<Self, TransportError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TransportError::Setup {
                what: "start the client's runtime".into(),
                detail: e.to_string(),
            })?;
        let timeout = Duration::from_secs(10);
        Ok(Self {
            pop3,
            smtp,
            runtime,
            conns: HashMap::new(),
            next: 0,
            events,
            seen: Vec::new(),
            session_of: HashMap::new(),
            ends: HashMap::new(),
            remote: HashSet::new(),
            stopper: None,
            tls: None,
            closed_tls_octets: HashMap::new(),
            options: ClientOptions {
                connect_timeout: timeout,
                // The engine's patience for each read is shorter and is what counts.
                read_timeout: Duration::from_secs(600),
                ..ClientOptions::default()
            },
        })
    }

    /// The handle that stops the servers, for a `shutdown` step.
    pub fn set_stopper(&mut self, stopper: tokio::sync::oneshot::Sender<()>) {
        self.stopper = Some(stopper);
    }

    /// TLS with `client` (its trust: the servers' certificate); the servers' implicit-TLS
    /// ports, if they have them.
    pub fn set_tls(
        &mut self,
        client: ClientTls,
        pop3s: Option<SocketAddr>,
        smtps: Option<SocketAddr>,
    ) {
        self.tls = Some(SocketTls {
            client,
            pop3s,
            smtps,
        });
    }

    /// The secrets of every TLS session the client made so far (NSS key log entries).
    pub fn keylog(&self) -> KeyLog {
        self.tls
            .as_ref()
            .map_or_else(KeyLog::new, |t| t.client.keylog())
    }

    fn client_tls(&self) -> Result<ClientTls, TransportError> {
        self.tls
            .as_ref()
            .map(|t| t.client.clone())
            .ok_or_else(|| TransportError::Setup {
                what: "start TLS".into(),
                detail: "the client has no TLS configuration (the scenario's servers were \
                         started without a certificate)"
                    .into(),
            })
    }

    /// Keeps an event, and which server session serves which client address.
    fn note(&mut self, event: ServerEvent) {
        if let EventKind::SessionOpened { peer, .. } = event.kind {
            self.session_of.insert(peer, event.session);
        }
        self.seen.push(event);
    }
}

/// Installs (in this network namespace) a netfilter rule that drops, on the input hook,
/// the next segment with data (PSH) from `server_port` to `client_port`, once: `numgen inc`
/// counts the rule's matches from 0, so only the first is dropped. On loopback the capture
/// sees a packet as it is sent, before the input hook, so it shows the lost segment and then
/// TCP's retransmission. Needs the `nft` program and CAP_NET_ADMIN in the namespace: root, or
/// mailwire's private network (its sandbox), where it is.
fn lose_once(server_port: u16, client_port: u16) -> Result<(), TransportError> {
    let nft = |args: &str| -> Result<(), TransportError> {
        let output = std::process::Command::new("nft")
            .args(args.split(' '))
            .output()
            .map_err(|e| TransportError::Setup {
                what: "run nft to lose a segment (install the nftables package)".into(),
                detail: e.to_string(),
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(TransportError::Setup {
            what: format!("add a netfilter rule with `nft {args}`"),
            detail: format!(
                "{} (it needs CAP_NET_ADMIN: run in mailwire's private network, the default \
                 of `mailwire run`, or as root)",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    };
    nft("add table inet mailwire")?;
    nft("add chain inet mailwire lose { type filter hook input priority 0 ; }")?;
    nft(&format!(
        "add rule inet mailwire lose tcp sport {server_port} tcp dport {client_port} \
         tcp flags & psh == psh numgen inc mod 1000000000 == 0 drop"
    ))
}

/// A client socket's error, as the scenario reports it.
fn transport_error(e: ClientError, sandboxed: bool) -> TransportError {
    let detail = |source: &std::io::Error| source.to_string();
    match e {
        ClientError::Connect { addr, source } => match addr.parse() {
            Ok(addr) => TransportError::Connect {
                addr,
                detail: detail(&source),
                sandboxed,
            },
            Err(_) => TransportError::Io {
                action: "connect",
                detail: format!("{addr}: {source}"),
            },
        },
        ClientError::ConnectTimeout { after, .. } => TransportError::NoReply { after },
        ClientError::ReadTimeout { after, .. } => TransportError::NoReply { after },
        ClientError::Io { action, source, .. } => TransportError::Io {
            action,
            detail: detail(&source),
        },
        ClientError::Closed { .. } => TransportError::Closed,
        other => TransportError::Io {
            action: "connect",
            detail: other.to_string(),
        },
    }
}

impl Transport for SocketTransport {
    fn connect(
        &mut self,
        protocol: Protocol,
        mss: Option<u16>,
        to: Option<SocketAddr>,
        nagle: bool,
        rcvbuf: Option<u32>,
    ) -> Result<ConnId, TransportError> {
        let addr = to.unwrap_or(match protocol {
            Protocol::Pop3 => self.pop3,
            Protocol::Smtp => self.smtp,
        });
        let sandboxed = to.is_some() && crate::capture::sandbox::is_sandboxed_copy();
        let setup = SocketSetup {
            mss,
            nodelay: !nagle,
            rcvbuf,
        };
        let wire = self
            .runtime
            .block_on(Wire::connect_with(addr, setup, &self.options))
            .map_err(|e| transport_error(e, sandboxed))?;
        let id = self.next;
        self.next += 1;
        if let Some(client) = wire.local_addr() {
            let server = wire.peer();
            self.ends.insert(id, Ends { client, server });
        }
        self.conns.insert(id, wire);
        if to.is_some_and(|a| a != self.pop3 && a != self.smtp) {
            self.remote.insert(id);
        }
        Ok(id)
    }

    fn write(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), TransportError> {
        let runtime = &self.runtime;
        let wire = self.conns.get_mut(&conn).ok_or(TransportError::Closed)?;
        runtime
            .block_on(wire.send_bytes(bytes))
            .map_err(|e| transport_error(e, false))
    }

    fn read(&mut self, conn: ConnId, patience: Duration) -> Result<Vec<u8>, TransportError> {
        let runtime = &self.runtime;
        let wire = self.conns.get_mut(&conn).ok_or(TransportError::Closed)?;
        // Cut short here, not by the wire's own (longer) limit: a read cancelled by the
        // deadline loses nothing and leaves the connection usable, so the replies that come
        // after a broken one still show.
        let read =
            runtime.block_on(async { tokio::time::timeout(patience, wire.receive_bytes()).await });
        match read {
            Err(_elapsed) => Err(TransportError::NoReply { after: patience }),
            Ok(Ok(Some(bytes))) => Ok(bytes),
            Ok(Ok(None)) => Ok(Vec::new()),
            Ok(Err(e)) => Err(transport_error(e, false)),
        }
    }

    fn close(&mut self, conn: ConnId) {
        self.end(conn, false);
    }

    fn abort(&mut self, conn: ConnId) {
        self.end(conn, true);
    }

    fn shut_down_servers(
        &mut self,
        conn: ConnId,
        duration: Duration,
    ) -> Result<Waited, TransportError> {
        let stop = self.stopper.take().ok_or(TransportError::NoStopHandle)?;
        let _ = stop.send(());
        self.wait(conn, duration)
    }

    fn wait(&mut self, conn: ConnId, duration: Duration) -> Result<Waited, TransportError> {
        let runtime = &self.runtime;
        let wire = self.conns.get_mut(&conn).ok_or(TransportError::Closed)?;
        let deadline = tokio::time::Instant::now() + duration;
        let mut waited = Waited::default();
        // A read cancelled by the deadline loses nothing (tokio's reads are cancel-safe).
        while let Ok(read) = runtime
            .block_on(async { tokio::time::timeout_at(deadline, wire.receive_bytes()).await })
        {
            match read.map_err(|e| transport_error(e, false))? {
                Some(bytes) => waited.bytes.extend_from_slice(&bytes),
                None => {
                    waited.closed = true;
                    break;
                }
            }
        }
        Ok(waited)
    }

    fn lose_next_from_server(&mut self, conn: ConnId) -> Result<(), TransportError> {
        if !crate::capture::sandbox::is_sandboxed_copy() {
            return Err(TransportError::NeedsPrivateNetwork);
        }
        let ends = self.ends.get(&conn).ok_or(TransportError::Closed)?;
        lose_once(ends.server.port(), ends.client.port())
    }

    fn pause(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn ends(&self, conn: ConnId) -> Option<Ends> {
        self.ends.get(&conn).copied()
    }

    fn connect_tls(
        &mut self,
        protocol: Protocol,
        mss: Option<u16>,
        to: Option<SocketAddr>,
        nagle: bool,
        rcvbuf: Option<u32>,
    ) -> Result<ConnId, TransportError> {
        let implicit = self.tls.as_ref().and_then(|t| match protocol {
            Protocol::Pop3 => t.pop3s,
            Protocol::Smtp => t.smtps,
        });
        let addr = to.or(implicit).ok_or_else(|| TransportError::Setup {
            what: format!("connect to the {protocol} server with implicit TLS"),
            detail: "the servers have no implicit-TLS port".into(),
        })?;
        let conn = self.connect(protocol, mss, Some(addr), nagle, rcvbuf)?;
        if to.is_none() {
            // The servers' own port: their events come, so a close waits for them.
            self.remote.remove(&conn);
        }
        self.start_tls(conn)?;
        Ok(conn)
    }

    fn start_tls(&mut self, conn: ConnId) -> Result<(), TransportError> {
        let tls = self.client_tls()?;
        let runtime = &self.runtime;
        let wire = self.conns.get_mut(&conn).ok_or(TransportError::Closed)?;
        runtime.block_on(wire.start_tls(&tls)).map_err(|e| match e {
            ClientError::Tls { peer, error } => TransportError::Setup {
                what: format!("make the TLS handshake with {peer}"),
                detail: error,
            },
            other => transport_error(other, false),
        })
    }

    fn client_nonce(&mut self) -> String {
        crate::client::tls::fresh_nonce()
    }

    fn tls_octets(&self, conn: ConnId) -> Option<(u64, u64)> {
        match self.conns.get(&conn) {
            Some(wire) => wire.is_tls().then(|| wire.tcp_octets()),
            None => self.closed_tls_octets.get(&conn).copied(),
        }
    }

    fn take_events(&mut self) -> Vec<ServerEvent> {
        while let Ok(e) = self.events.try_recv() {
            self.note(e);
        }
        std::mem::take(&mut self.seen)
    }
}

/// How long a TLS close waits for the server's close_notify or FIN.
const TLS_CLOSE_WAIT: Duration = Duration::from_secs(1);

impl SocketTransport {
    /// Closes a connection (with an RST when `reset`) and waits (bounded) until the server
    /// has seen it and ended that session.
    fn end(&mut self, conn: ConnId, reset: bool) {
        let Some(mut wire) = self.conns.remove(&conn) else {
            return;
        };
        let local = wire.local_addr();
        // Closed inside the runtime: the socket is closed at once. A TLS connection closed
        // without a reset first sends close_notify and FIN and reads the server's (bounded).
        let tls_octets = self.runtime.block_on(async move {
            if reset {
                let octets = wire.is_tls().then(|| wire.tcp_octets());
                wire.abort();
                octets
            } else {
                wire.close_tls(TLS_CLOSE_WAIT).await;
                let octets = wire.is_tls().then(|| wire.tcp_octets());
                drop(wire);
                octets
            }
        });
        if let Some(octets) = tls_octets {
            self.closed_tls_octets.insert(conn, octets);
        }
        if self.remote.contains(&conn) {
            return;
        }
        // Wait (bounded) for the server to see the close and end that session.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let session = local.and_then(|a| self.session_of.get(&a).copied());
            let closed = self.seen.iter().any(|e| {
                Some(e.session) == session && matches!(e.kind, EventKind::SessionClosed { .. })
            });
            if closed {
                break;
            }
            if let Ok(e) = self.events.recv_timeout(Duration::from_millis(50)) {
                self.note(e);
            }
        }
    }
}
