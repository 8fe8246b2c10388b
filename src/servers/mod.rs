//! The tokio side of the servers: accept loops, and one connection driver per session.
//!
//! [`start`] takes already-bound listeners (tests bind `127.0.0.1:0`), a [`Store`] and a
//! [`ServerConfig`], and returns a [`Servers`] handle whose [`Servers::shutdown`] stops them.
//! Protocol logic lives in [`crate::proto`]; this module only moves bytes, answers the
//! machines' requests with the store, and publishes [`ServerEvent`]s.

mod driver;
mod pop3;
mod smtp;

pub use pop3::Pop3Backend;
pub use smtp::SmtpBackend;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::proto::pop3::{Pop3Event, Pop3Replies, Pop3Request, Pop3Server};
use crate::proto::reply_text::ReplyTextError;
use crate::proto::smtp::{SmtpEvent, SmtpReplies, SmtpRequest, SmtpServer};
use crate::proto::{Machine, Protocol, ServerMachine};
use crate::store::Store;

/// Settings shared by every session.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Name in greetings, sign-offs and Received headers.
    pub hostname: String,
    /// Wait before answering a failed POP3 login (slows down password guessing).
    pub failed_login_delay: Duration,
    /// Close a session after this long without a command (RFC 1939's autologout timer).
    pub idle_limit: Duration,
    /// A fixed APOP timestamp for reproducible demos (only RFC 1939's own example session
    /// uses one); `None` makes a unique one per session, as RFC 1939 section 7 requires.
    pub fixed_timestamp: Option<String>,
    /// POP3 accepts only APOP, not USER/PASS (RFC 1939 section 13).
    pub apop_only: bool,
    /// A fixed date for Received headers, for reproducible demos; `None` uses the clock.
    pub fixed_date: Option<String>,
    /// Largest message the SMTP server accepts, in octets.
    pub max_message_size: usize,
    /// Mail domains delivered locally besides `localhost`.
    pub local_domains: Vec<String>,
    /// Reply texts replacing the servers' own (a scenario replaying a published session).
    pub replies: ReplyTexts,
}

/// The reply texts of both servers, as a scenario's `[fixture.replies.pop3]` and
/// `[fixture.replies.smtp]` set them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyTexts {
    /// The POP3 server's.
    #[serde(default)]
    pub pop3: Pop3Replies,
    /// The SMTP server's.
    #[serde(default)]
    pub smtp: SmtpReplies,
}

impl ReplyTexts {
    /// Checks every text set (see [`crate::proto::reply_text::check`]).
    pub fn check(&self) -> Result<(), ReplyTextError> {
        self.pop3.check()?;
        self.smtp.check()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            failed_login_delay: Duration::from_secs(1),
            idle_limit: Duration::from_secs(600),
            fixed_timestamp: None,
            apop_only: false,
            fixed_date: None,
            max_message_size: 10 * 1024 * 1024,
            local_domains: Vec::new(),
            replies: ReplyTexts::default(),
        }
    }
}

/// Something that happened in a server session.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEvent {
    /// Unique per process, shared by both protocols.
    pub session: u64,
    pub protocol: Protocol,
    pub at: SystemTime,
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    SessionOpened { peer: SocketAddr, local: SocketAddr },
    SessionClosed { reason: SessionEnd },
    Pop3(Pop3Event),
    Smtp(SmtpEvent),
}

/// Why a server session ended. Displayed after "closed: " in transcripts and the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The machine closed it after QUIT.
    Quit,
    /// The server is stopping.
    ShuttingDown,
    /// No command came for this long (RFC 1939's autologout timer).
    Idle { secs: u64 },
    /// The client closed its side.
    ClientClosed,
    /// The client read nothing for this long: replies could not be written.
    ClientNotReading { secs: u64 },
    /// Reading the socket failed; the operating system's message.
    ReadFailed { error: String },
    /// Writing the socket failed; the operating system's message.
    WriteFailed { error: String },
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::Quit => f.write_str("closed by the server after QUIT"),
            SessionEnd::ShuttingDown => f.write_str("server shutting down"),
            SessionEnd::Idle { secs } => write!(f, "idle for {secs} s (autologout)"),
            SessionEnd::ClientClosed => f.write_str("connection closed by the client"),
            SessionEnd::ClientNotReading { secs } => {
                write!(f, "the client read nothing for {secs} s")
            }
            SessionEnd::ReadFailed { error } => write!(f, "read failed: {error}"),
            SessionEnd::WriteFailed { error } => write!(f, "write failed: {error}"),
        }
    }
}

/// Answers a machine's requests synchronously with the store. The scenario runner's
/// in-memory transport calls it directly; the tokio responders run it on blocking threads.
pub trait Backend<M: Machine> {
    /// Answers `request` by calling the machine's answer method.
    fn answer(&mut self, machine: &mut M, request: M::Request);
}

impl Backend<Pop3Server> for Pop3Backend {
    fn answer(&mut self, machine: &mut Pop3Server, request: Pop3Request) {
        Pop3Backend::answer(self, machine, request);
    }
}

impl Backend<SmtpServer> for SmtpBackend {
    fn answer(&mut self, machine: &mut SmtpServer, request: SmtpRequest) {
        SmtpBackend::answer(self, machine, request);
    }
}

impl From<Pop3Event> for EventKind {
    fn from(event: Pop3Event) -> Self {
        EventKind::Pop3(event)
    }
}

impl From<SmtpEvent> for EventKind {
    fn from(event: SmtpEvent) -> Self {
        EventKind::Smtp(event)
    }
}

/// Where events go: a crossbeam channel read by the window, the scenario runner or the
/// terminal log. Sending never blocks; with no receiver the events are dropped.
#[derive(Debug, Clone, Default)]
pub struct EventSink(Option<crossbeam_channel::Sender<ServerEvent>>);

impl EventSink {
    /// Events are sent on `tx`.
    pub fn new(tx: crossbeam_channel::Sender<ServerEvent>) -> Self {
        Self(Some(tx))
    }

    /// Events are dropped.
    pub fn none() -> Self {
        Self(None)
    }

    fn send(&self, event: ServerEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event);
        }
    }
}

/// One line of the terminal transcript for an event (`C:`/`S:` lines and session
/// boundaries), or `None` for events the transcript leaves out.
pub fn transcript_line(event: &ServerEvent) -> Option<String> {
    let tag = format!("[{} #{}]", event.protocol.name(), event.session);
    let body = match &event.kind {
        EventKind::SessionOpened { peer, local } => format!("connected from {peer} to {local}"),
        EventKind::SessionClosed { reason } => format!("closed: {reason}"),
        EventKind::Pop3(Pop3Event::CommandReceived { line }) => format!("C: {line}"),
        EventKind::Pop3(Pop3Event::ReplySent {
            first_line,
            multiline,
            octets,
            ..
        }) => {
            if *multiline {
                format!("S: {first_line}  [multi-line, {octets} octets]")
            } else {
                format!("S: {first_line}")
            }
        }
        EventKind::Pop3(Pop3Event::StateChanged { to, .. }) => format!("   state {}", to.name()),
        EventKind::Smtp(SmtpEvent::CommandReceived { line }) => format!("C: {line}"),
        EventKind::Smtp(SmtpEvent::ReplySent { code, text }) => {
            let mut lines = text.lines();
            let first = lines.next().unwrap_or_default();
            let more = lines.count();
            if more > 0 {
                format!("S: {code} {first}  [+{more} lines]")
            } else {
                format!("S: {code} {first}")
            }
        }
        EventKind::Smtp(SmtpEvent::ContentReceived { bytes, lines }) => {
            format!("C: <message content: {lines} lines, {bytes} octets>")
        }
        EventKind::Smtp(SmtpEvent::MessageDelivered { recipients, bytes }) => {
            format!("   delivered {bytes} octets to {}", recipients.join(", "))
        }
        _ => return None,
    };
    Some(format!("{tag} {body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ends_read_after_closed() {
        let cases = [
            (SessionEnd::Quit, "closed by the server after QUIT"),
            (SessionEnd::ShuttingDown, "server shutting down"),
            (
                SessionEnd::Idle { secs: 600 },
                "idle for 600 s (autologout)",
            ),
            (SessionEnd::ClientClosed, "connection closed by the client"),
            (
                SessionEnd::ClientNotReading { secs: 30 },
                "the client read nothing for 30 s",
            ),
            (
                SessionEnd::ReadFailed {
                    error: "reset".into(),
                },
                "read failed: reset",
            ),
            (
                SessionEnd::WriteFailed {
                    error: "broken pipe".into(),
                },
                "write failed: broken pipe",
            ),
        ];
        for (end, text) in cases {
            assert_eq!(end.to_string(), text);
        }
        let event = ServerEvent {
            session: 7,
            protocol: Protocol::Pop3,
            at: SystemTime::UNIX_EPOCH,
            kind: EventKind::SessionClosed {
                reason: SessionEnd::Quit,
            },
        };
        assert_eq!(
            transcript_line(&event).as_deref(),
            Some("[POP3 #7] closed: closed by the server after QUIT")
        );
    }
}

/// Returns once shutdown was requested (or the handle is gone).
pub(crate) async fn wait_for_stop(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

fn next_session() -> u64 {
    NEXT_SESSION.fetch_add(1, Ordering::Relaxed)
}

/// Running POP3 and SMTP servers.
pub struct Servers {
    pop3_addr: SocketAddr,
    smtp_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Servers {
    /// Where the POP3 server listens.
    pub fn pop3_addr(&self) -> SocketAddr {
        self.pop3_addr
    }

    /// Where the SMTP server listens.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp_addr
    }

    /// Stops accepting, tells open sessions the server is going away, and waits (at most
    /// a few seconds) for them to end. Nothing is deleted: a POP3 session cut short never
    /// reaches UPDATE.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let wait_all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), wait_all)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}

/// Starts both servers on the given listeners.
pub fn start(
    store: Arc<Store>,
    config: ServerConfig,
    pop3: TcpListener,
    smtp: TcpListener,
    events: EventSink,
) -> std::io::Result<Servers> {
    let pop3_addr = pop3.local_addr()?;
    let smtp_addr = smtp.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let config = Arc::new(config);
    let shared = Shared {
        store,
        config,
        events,
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(accept_loop(
        pop3,
        stopped.clone(),
        shared.clone(),
        pop3::start_session,
    ));
    tasks.spawn(accept_loop(smtp, stopped, shared, smtp::start_session));
    Ok(Servers {
        pop3_addr,
        smtp_addr,
        stop,
        tasks,
    })
}

/// What every session of both servers shares.
#[derive(Clone)]
struct Shared {
    store: Arc<Store>,
    config: Arc<ServerConfig>,
    events: EventSink,
}

/// Accepts connections until shutdown and drives a session for each (its machine and
/// responder made by `start`); waits for the sessions to end before returning.
async fn accept_loop<M, R>(
    listener: TcpListener,
    stopped: watch::Receiver<bool>,
    shared: Shared,
    start: fn(&Shared, u64, Option<SocketAddr>) -> (M, R),
) where
    M: ServerMachine<Request: Send, Event: Into<EventKind> + Send> + Send + 'static,
    R: driver::Responder<M> + 'static,
{
    let mut sessions = JoinSet::new();
    let mut stop = stopped.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let session = next_session();
                    let (machine, responder) = start(&shared, session, stream.peer_addr().ok());
                    sessions.spawn(driver::drive(
                        stream,
                        machine,
                        responder,
                        session,
                        shared.config.idle_limit,
                        shared.events.clone(),
                        stopped.clone(),
                    ));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            () = wait_for_stop(&mut stop) => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    while sessions.join_next().await.is_some() {}
}
