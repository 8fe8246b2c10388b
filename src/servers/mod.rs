//! The tokio side of the servers: accept loops, and one connection driver per session.
//!
//! [`start`] takes already-bound listeners (tests bind `127.0.0.1:0`), a [`Store`] and a
//! [`ServerConfig`], and returns a [`Servers`] handle whose [`Servers::shutdown`] stops them.
//! Protocol logic lives in [`crate::proto`]; this module only moves bytes, answers the
//! machines' requests with the store, and publishes [`ServerEvent`]s.

mod driver;
mod pop3;
mod smtp;
pub mod tls;

pub use pop3::Pop3Backend;
pub use smtp::SmtpBackend;
pub use tls::{TlsError, TlsSettings};

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
use crate::proto::sasl::{Mechanism, Security, TlsState};
use crate::proto::smtp::{SmtpEvent, SmtpReplies, SmtpRequest, SmtpServer};
use crate::proto::{Machine, Protocol, SecurityEvent, ServerMachine};
use crate::store::Store;
use driver::SessionTls;

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
    /// The certificate: with it the servers offer STLS/STARTTLS and can listen for
    /// implicit TLS; `None`: no TLS.
    pub tls: Option<TlsSettings>,
    /// The SASL mechanisms AUTH offers (POP3 RFC 5034, SMTP RFC 4954); empty: no AUTH.
    pub mechanisms: Vec<Mechanism>,
    /// Where a password may be sent outside TLS (USER/PASS, AUTH PLAIN and LOGIN).
    pub clear_passwords: ClearPasswords,
}

/// Where the servers accept a password sent without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClearPasswords {
    /// From every client (as the assignment's servers).
    Always,
    /// From clients on this computer only (the default): a class can watch base64 on its own
    /// loopback, while a password from another computer needs TLS, as RFC 4954 section 4
    /// asks of a server's usual configuration.
    #[default]
    Loopback,
    /// Never: only after STLS/STARTTLS or on an implicit-TLS port; PLAIN, LOGIN and USER
    /// are then not advertised before TLS.
    Never,
}

impl ClearPasswords {
    /// Whether a client at `peer` may send a password in clear.
    pub fn allows(self, peer: Option<SocketAddr>) -> bool {
        match self {
            ClearPasswords::Always => true,
            // An IPv4 client of a dual-stack socket shows as ::ffff:127.0.0.1.
            ClearPasswords::Loopback => peer.is_some_and(|p| p.ip().to_canonical().is_loopback()),
            ClearPasswords::Never => false,
        }
    }
}

impl ServerConfig {
    /// What a session with the client at `peer` offers; `implicit`: on an implicit-TLS port.
    /// Each session gets fresh random SASL values.
    fn security(&self, peer: Option<SocketAddr>, implicit: bool) -> Security {
        Security {
            tls: match (&self.tls, implicit) {
                (None, _) => TlsState::Unavailable,
                (Some(_), false) => TlsState::Offered,
                (Some(_), true) => TlsState::Active,
            },
            mechanisms: self.mechanisms.clone(),
            clear_passwords: self.clear_passwords.allows(peer),
            params: tls::session_params(),
        }
    }

    /// How a session uses TLS.
    fn session_tls(&self, implicit: bool) -> SessionTls {
        match (&self.tls, implicit) {
            (None, _) => SessionTls::None,
            (Some(t), false) => SessionTls::Upgrade(t.clone()),
            (Some(t), true) => SessionTls::Implicit(t.clone()),
        }
    }
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
            tls: None,
            mechanisms: Mechanism::ALL.to_vec(),
            clear_passwords: ClearPasswords::default(),
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
    /// The TLS handshake failed (the client refused the certificate, spoke plaintext, or
    /// never finished it); rustls's message.
    TlsFailed { error: String },
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
            SessionEnd::TlsFailed { error } => write!(f, "TLS handshake failed: {error}"),
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
        EventKind::Pop3(Pop3Event::Security(e)) | EventKind::Smtp(SmtpEvent::Security(e)) => {
            security_line(e)
        }
        _ => return None,
    };
    Some(format!("{tag} {body}"))
}

/// A transcript line for a TLS or SASL event.
fn security_line(event: &SecurityEvent) -> String {
    match event {
        SecurityEvent::TlsRequested { discarded: 0 } => "   TLS handshake next".to_string(),
        SecurityEvent::TlsRequested { discarded } => format!(
            "   TLS handshake next; {discarded} octets sent in clear after the command \
             discarded unread (CVE-2011-0411)"
        ),
        SecurityEvent::TlsStarted => "   TLS on: what follows is encrypted on the wire".to_string(),
        SecurityEvent::Authenticated { user, mechanism } => {
            format!("   authenticated {user} with {mechanism}")
        }
        SecurityEvent::AuthFailed {
            user: Some(user),
            mechanism,
        } => format!("   {mechanism} authentication of {user} failed"),
        SecurityEvent::AuthFailed {
            user: None,
            mechanism,
        } => format!("   {mechanism} authentication failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_passwords_on_loopback_means_every_loopback_form() {
        let allows = |addr: &str| ClearPasswords::Loopback.allows(Some(addr.parse().unwrap()));
        assert!(allows("127.0.0.1:5"));
        assert!(allows("[::1]:5"));
        assert!(allows("[::ffff:127.0.0.1]:5"));
        assert!(!allows("192.0.2.1:5"));
        assert!(!allows("[::ffff:192.0.2.1]:5"));
        assert!(!ClearPasswords::Loopback.allows(None));
        assert!(ClearPasswords::Always.allows(None));
        assert!(!ClearPasswords::Never.allows(Some("127.0.0.1:5".parse().unwrap())));
    }

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
    pop3s_addr: Option<SocketAddr>,
    smtps_addr: Option<SocketAddr>,
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

    /// Where POP3 over implicit TLS listens, if it does.
    pub fn pop3s_addr(&self) -> Option<SocketAddr> {
        self.pop3s_addr
    }

    /// Where SMTP over implicit TLS (submissions, RFC 8314) listens, if it does.
    pub fn smtps_addr(&self) -> Option<SocketAddr> {
        self.smtps_addr
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
    let listeners = Listeners {
        pop3,
        smtp,
        pop3s: None,
        smtps: None,
    };
    start_listeners(store, config, listeners, events)
}

/// The sockets the servers listen on.
pub struct Listeners {
    /// POP3 (STLS when the config has a certificate).
    pub pop3: TcpListener,
    /// SMTP (STARTTLS when the config has a certificate).
    pub smtp: TcpListener,
    /// POP3 over implicit TLS (RFC 8314; port 995); needs a certificate.
    pub pop3s: Option<TcpListener>,
    /// SMTP submission over implicit TLS (RFC 8314; port 465); needs a certificate.
    pub smtps: Option<TcpListener>,
}

/// Starts the servers on every listener given. An implicit-TLS listener without a
/// certificate in `config` is an error (`InvalidInput`).
pub fn start_listeners(
    store: Arc<Store>,
    config: ServerConfig,
    listeners: Listeners,
    events: EventSink,
) -> std::io::Result<Servers> {
    let Listeners {
        pop3,
        smtp,
        pop3s,
        smtps,
    } = listeners;
    if config.tls.is_none() && (pop3s.is_some() || smtps.is_some()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "implicit TLS needs a certificate (ServerConfig::tls)",
        ));
    }
    let pop3_addr = pop3.local_addr()?;
    let smtp_addr = smtp.local_addr()?;
    let pop3s_addr = pop3s.as_ref().map(TcpListener::local_addr).transpose()?;
    let smtps_addr = smtps.as_ref().map(TcpListener::local_addr).transpose()?;
    let (stop, stopped) = watch::channel(false);
    let config = Arc::new(config);
    let shared = Shared {
        store,
        config,
        events,
    };
    let mut tasks = JoinSet::new();
    let loops = [
        (Some(pop3), Protocol::Pop3, false),
        (Some(smtp), Protocol::Smtp, false),
        (pop3s, Protocol::Pop3, true),
        (smtps, Protocol::Smtp, true),
    ];
    for (listener, protocol, implicit) in loops {
        let Some(listener) = listener else { continue };
        let (stopped, shared) = (stopped.clone(), shared.clone());
        match protocol {
            Protocol::Pop3 => tasks.spawn(accept_loop(
                listener,
                stopped,
                shared,
                implicit,
                pop3::start_session,
            )),
            Protocol::Smtp => tasks.spawn(accept_loop(
                listener,
                stopped,
                shared,
                implicit,
                smtp::start_session,
            )),
        };
    }
    Ok(Servers {
        pop3_addr,
        smtp_addr,
        pop3s_addr,
        smtps_addr,
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
    implicit: bool,
    start: fn(&Shared, u64, Option<SocketAddr>, Security) -> (M, R),
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
                    let peer = stream.peer_addr().ok();
                    let security = shared.config.security(peer, implicit);
                    let (machine, responder) = start(&shared, session, peer, security);
                    sessions.spawn(driver::drive(
                        stream,
                        shared.config.session_tls(implicit),
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
