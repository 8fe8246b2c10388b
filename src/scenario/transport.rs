//! How the scenario runner reaches the servers: in memory (the server machines are fed the
//! client's bytes directly, no sockets) or over real TCP sockets on loopback.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::Protocol;
use crate::proto::pop3::{Pop3Config, Pop3Output, Pop3Server};
use crate::proto::smtp::{SmtpConfig, SmtpOutput, SmtpServer};
use crate::servers::{EventKind, Pop3Backend, ServerConfig, ServerEvent, SmtpBackend};
use crate::store::Store;

/// A connection of the scenario, numbered by the transport.
pub type ConnId = usize;

/// Moves the client's bytes to a server and back.
pub trait Transport {
    /// Opens a connection; `mss` asks for a small maximum segment size; `to` names another
    /// server than the transport's own one for `protocol`.
    fn connect(
        &mut self,
        protocol: Protocol,
        mss: Option<u16>,
        to: Option<SocketAddr>,
    ) -> Result<ConnId, String>;
    /// Writes bytes to the server (one write: one segment when small enough).
    fn write(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), String>;
    /// Bytes the server sent, waiting a while for at least one; empty means it closed.
    fn read(&mut self, conn: ConnId) -> Result<Vec<u8>, String>;
    /// Closes the connection from the client side (no QUIT) and waits until the server has
    /// seen it, so the next step meets a server that has released the session's lock.
    fn close(&mut self, conn: ConnId);
    /// Waits so that the writes before and after go out in separate segments.
    fn pause(&mut self) {}
    /// Server events seen so far (session opened, command received, state changed...).
    fn take_events(&mut self) -> Vec<ServerEvent>;
    /// The client's address of a connection (also after it closed), if it had one.
    fn client_addr(&self, _conn: ConnId) -> Option<SocketAddr> {
        None
    }
}

enum Machine {
    Pop3(Pop3Server, Pop3Backend),
    Smtp(SmtpServer, SmtpBackend),
}

struct MemoryConn {
    machine: Machine,
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
}

impl MemoryTransport {
    /// Servers with `config` on `store`.
    pub fn new(store: Arc<Store>, config: ServerConfig) -> Self {
        Self {
            store,
            config,
            conns: Vec::new(),
            events: Vec::new(),
        }
    }

    fn pump(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let session = c.session;
        let (protocol, mut kinds) = (c.protocol(), Vec::new());
        loop {
            let step = match &mut c.machine {
                Machine::Pop3(m, backend) => match m.poll_output() {
                    None => break,
                    Some(Pop3Output::Write(b)) => Some(b),
                    Some(Pop3Output::Event(e)) => {
                        kinds.push(EventKind::Pop3(e));
                        None
                    }
                    Some(Pop3Output::Request(r)) => {
                        backend.answer(m, r);
                        None
                    }
                    Some(Pop3Output::Close) => {
                        c.closed = true;
                        None
                    }
                },
                Machine::Smtp(m, backend) => match m.poll_output() {
                    None => break,
                    Some(SmtpOutput::Write(b)) => Some(b),
                    Some(SmtpOutput::Event(e)) => {
                        kinds.push(EventKind::Smtp(e));
                        None
                    }
                    Some(SmtpOutput::Request(r)) => {
                        backend.answer(m, r);
                        None
                    }
                    Some(SmtpOutput::Close) => {
                        c.closed = true;
                        None
                    }
                },
            };
            if let Some(bytes) = step {
                c.to_client.extend_from_slice(&bytes);
            }
        }
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

impl MemoryConn {
    fn protocol(&self) -> crate::servers::Protocol {
        match self.machine {
            Machine::Pop3(..) => crate::servers::Protocol::Pop3,
            Machine::Smtp(..) => crate::servers::Protocol::Smtp,
        }
    }
}

impl Transport for MemoryTransport {
    fn connect(
        &mut self,
        protocol: Protocol,
        _mss: Option<u16>,
        to: Option<SocketAddr>,
    ) -> Result<ConnId, String> {
        if to.is_some() {
            return Err("a scenario run in memory cannot reach another server".to_string());
        }
        let session = self.conns.len() as u64 + 1;
        let machine = match protocol {
            Protocol::Pop3 => Machine::Pop3(
                Pop3Server::new(Pop3Config {
                    hostname: self.config.hostname.clone(),
                    timestamp: self
                        .config
                        .fixed_timestamp
                        .clone()
                        .unwrap_or_else(|| "<0.0@mailwire>".to_string()),
                }),
                Pop3Backend::new(self.store.clone()),
            ),
            Protocol::Smtp => Machine::Smtp(
                SmtpServer::new(SmtpConfig {
                    hostname: self.config.hostname.clone(),
                    local_domains: self.config.local_domains.clone(),
                    max_message_size: self.config.max_message_size,
                }),
                SmtpBackend::new(
                    self.store.clone(),
                    &self.config,
                    "[127.0.0.1]".to_string(),
                    session,
                ),
            ),
        };
        self.conns.push(MemoryConn {
            machine,
            session,
            to_client: Vec::new(),
            closed: false,
        });
        let id = self.conns.len() - 1;
        self.pump(id);
        Ok(id)
    }

    fn write(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), String> {
        let c = self.conns.get_mut(conn).ok_or("no such connection")?;
        if c.closed {
            return Err("the server closed the connection".into());
        }
        match &mut c.machine {
            Machine::Pop3(m, _) => m.receive(bytes),
            Machine::Smtp(m, _) => m.receive(bytes),
        }
        self.pump(conn);
        Ok(())
    }

    fn read(&mut self, conn: ConnId) -> Result<Vec<u8>, String> {
        let c = self.conns.get_mut(conn).ok_or("no such connection")?;
        if c.to_client.is_empty() && !c.closed {
            return Err("the server sent nothing: it waits for more input".into());
        }
        Ok(std::mem::take(&mut c.to_client))
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn) {
            match &mut c.machine {
                Machine::Pop3(m, _) => m.receive_eof(),
                Machine::Smtp(m, _) => m.receive_eof(),
            }
        }
        self.pump(conn);
        if let Some(c) = self.conns.get_mut(conn) {
            c.closed = true;
            // Dropping the backend releases the maildrop lock, as the socket driver does.
            if let Machine::Pop3(_, backend) = &mut c.machine {
                *backend = Pop3Backend::new(self.store.clone());
            }
        }
    }

    fn take_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.events)
    }
}

/// Real TCP connections to real servers (started elsewhere) on loopback, or to another
/// server a connect step names (whose events, if any, are not seen).
pub struct SocketTransport {
    pop3: SocketAddr,
    smtp: SocketAddr,
    conns: HashMap<ConnId, TcpStream>,
    next: ConnId,
    events: crossbeam_channel::Receiver<ServerEvent>,
    seen: Vec<ServerEvent>,
    session_of: HashMap<SocketAddr, u64>,
    client_addrs: HashMap<ConnId, SocketAddr>,
    /// Connections to another server (no events come from it, so close does not wait).
    remote: HashSet<ConnId>,
    timeout: Duration,
}

impl SocketTransport {
    /// Connections to the servers at these addresses; `events` comes from their EventSink.
    pub fn new(
        pop3: SocketAddr,
        smtp: SocketAddr,
        events: crossbeam_channel::Receiver<ServerEvent>,
    ) -> Self {
        Self {
            pop3,
            smtp,
            conns: HashMap::new(),
            next: 0,
            events,
            seen: Vec::new(),
            session_of: HashMap::new(),
            client_addrs: HashMap::new(),
            remote: HashSet::new(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Keeps an event, and which server session serves which client address.
    fn note(&mut self, event: ServerEvent) {
        if let EventKind::SessionOpened { peer, .. } = event.kind {
            self.session_of.insert(peer, event.session);
        }
        self.seen.push(event);
    }

    fn stream(&mut self, conn: ConnId) -> Result<&mut TcpStream, String> {
        self.conns
            .get_mut(&conn)
            .ok_or_else(|| "the connection is closed".to_string())
    }

    fn connect_socket(&self, addr: SocketAddr, mss: Option<u16>) -> Result<TcpStream, String> {
        let domain = socket2::Domain::for_address(addr);
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)
            .map_err(|e| format!("cannot create a socket: {e}"))?;
        if let Some(mss) = mss {
            socket
                .set_tcp_mss(u32::from(mss))
                .map_err(|e| format!("cannot set the MSS to {mss}: {e}"))?;
        }
        socket
            .set_tcp_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        socket
            .connect_timeout(&addr.into(), self.timeout)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| format!("cannot set a read timeout: {e}"))?;
        Ok(stream)
    }
}

impl Transport for SocketTransport {
    fn connect(
        &mut self,
        protocol: Protocol,
        mss: Option<u16>,
        to: Option<SocketAddr>,
    ) -> Result<ConnId, String> {
        let addr = to.unwrap_or(match protocol {
            Protocol::Pop3 => self.pop3,
            Protocol::Smtp => self.smtp,
        });
        let stream = self.connect_socket(addr, mss).map_err(|e| {
            let sandboxed = crate::capture::sandbox::is_sandboxed_copy();
            if to.is_some() && sandboxed {
                format!(
                    "{e} (mailwire runs in its own private network, where other servers on \
                     this computer cannot be reached; run with --no-sandbox and capture \
                     rights to watch them)"
                )
            } else {
                e
            }
        })?;
        let id = self.next;
        self.next += 1;
        if let Ok(local) = stream.local_addr() {
            self.client_addrs.insert(id, local);
        }
        self.conns.insert(id, stream);
        if to.is_some_and(|a| a != self.pop3 && a != self.smtp) {
            self.remote.insert(id);
        }
        Ok(id)
    }

    fn write(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), String> {
        self.stream(conn)?
            .write_all(bytes)
            .map_err(|e| format!("write failed: {e}"))
    }

    fn read(&mut self, conn: ConnId) -> Result<Vec<u8>, String> {
        let timeout = self.timeout;
        let stream = self.stream(conn)?;
        let mut buf = vec![0u8; 64 * 1024];
        match stream.read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(format!("no reply within {} s", timeout.as_secs()))
            }
            Err(e) => Err(format!("read failed: {e}")),
        }
    }

    fn close(&mut self, conn: ConnId) {
        let Some(stream) = self.conns.remove(&conn) else {
            return;
        };
        let local = stream.local_addr().ok();
        drop(stream);
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

    fn pause(&mut self) {
        std::thread::sleep(Duration::from_millis(30));
    }

    fn client_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.client_addrs.get(&conn).copied()
    }

    fn take_events(&mut self) -> Vec<ServerEvent> {
        while let Ok(e) = self.events.try_recv() {
            self.note(e);
        }
        std::mem::take(&mut self.seen)
    }
}
