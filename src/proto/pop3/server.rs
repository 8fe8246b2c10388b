//! The POP3 server machine: bytes in, replies and requests out.
//!
//! [`Pop3Server`] keeps the session state of RFC 1939 (AUTHORIZATION, TRANSACTION, UPDATE)
//! and the per-session view of the maildrop (message numbers stay stable; deletions are only
//! marks until QUIT). It never touches the store itself: it asks the driver through a
//! [`Pop3Request`] and waits for the answer before reading the next command, so pipelined
//! commands are answered strictly in order and a scenario can let one output through at a time.

use std::collections::VecDeque;
use std::fmt;

use super::command::Command;
use crate::proto::line::{Line, LineBuffer, Terminator};
use crate::proto::reply_text::{self, ReplyTextError, render};
use crate::proto::sasl::{self, Mechanism, SaslExchange, SaslStep, Security, TlsState};
use crate::proto::{Goodbye, Machine, Output, Protocol, SecurityEvent, ServerMachine};

/// The longest command line accepted, terminator excluded (RFC 2449 allows 255 octets).
pub const MAX_COMMAND_LINE: usize = 255;
/// The longest SASL response line accepted during AUTH (as SMTP's, RFC 4954 section 4).
pub const MAX_SASL_LINE: usize = 12288;

/// Settings of one POP3 session.
#[derive(Debug, Clone)]
pub struct Pop3Config {
    /// Host name shown in the greeting and the sign-off.
    pub hostname: String,
    /// The APOP timestamp of this session's greeting, with its angle brackets, e.g.
    /// `<1896.697170952@dbc.mtview.ca.us>`. It must be unique per connection; the driver makes it.
    pub timestamp: String,
    /// Refuse USER/PASS: every user here has an APOP secret, and RFC 1939 section 13 says a
    /// server should then not also accept the password in the clear.
    pub apop_only: bool,
}

/// Free texts that replace the server's own in some replies (see
/// [`crate::proto::reply_text`]): `None` keeps mailwire's text. The status indicator and any
/// response code stay the machine's, so every reply stays valid (RFC 1939 section 3: a
/// status indicator, then text; RFC 2449 section 8: the response code in brackets).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pop3Replies {
    /// The greeting's text before the APOP timestamp: `+OK {text} <timestamp>`.
    pub greeting: Option<String>,
    /// `+OK {text}` to USER; may say `{user}`.
    pub user: Option<String>,
    /// `+OK {text}` to a PASS or APOP that logged in; may say `{user}`, `{count}` (messages)
    /// and `{octets}`.
    pub login: Option<String>,
    /// `-ERR [AUTH] {text}` to wrong credentials; may say `{user}`.
    pub login_failed: Option<String>,
    /// `+OK {text}` to DELE; may say `{msg}`.
    pub dele: Option<String>,
    /// `+OK {text}` to QUIT (the sign-off, in AUTHORIZATION or after the update).
    pub quit: Option<String>,
}

impl Pop3Replies {
    /// Checks every text set (printable ASCII, length, placeholders).
    pub fn check(&self) -> Result<(), ReplyTextError> {
        let texts: [(&'static str, &Option<String>, &'static [&'static str]); 6] = [
            ("pop3.greeting", &self.greeting, &[]),
            ("pop3.user", &self.user, &["user"]),
            ("pop3.login", &self.login, &["user", "count", "octets"]),
            ("pop3.login_failed", &self.login_failed, &["user"]),
            ("pop3.dele", &self.dele, &["msg"]),
            ("pop3.quit", &self.quit, &[]),
        ];
        for (key, text, allowed) in texts {
            if let Some(text) = text {
                reply_text::check(key, text, allowed)?;
            }
        }
        Ok(())
    }
}

/// The session states of RFC 1939 section 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop3State {
    Authorization,
    Transaction,
    Update,
    Closed,
}

impl Pop3State {
    /// The RFC's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            Pop3State::Authorization => "AUTHORIZATION",
            Pop3State::Transaction => "TRANSACTION",
            Pop3State::Update => "UPDATE",
            Pop3State::Closed => "CLOSED",
        }
    }
}

pub use crate::proto::sasl::{Credential, apop_digest};

/// What the machine needs from the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pop3Request {
    /// Check the credential and lock the maildrop; answer with [`Pop3Server::answer_login`].
    Login {
        user: String,
        credential: Credential,
    },
    /// Read message `index` (0-based, in the order of the listing given at login); answer
    /// with [`Pop3Server::answer_fetch`].
    Fetch { index: usize },
    /// QUIT from TRANSACTION: remove these messages (0-based indexes) and release the
    /// maildrop; answer with [`Pop3Server::answer_update`].
    Update { delete: Vec<usize> },
    /// STLS was accepted (`+OK` written): make the TLS handshake on the connection, then call
    /// [`ServerMachine::tls_started`].
    StartTls,
}

/// One message of the maildrop as the session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Size in octets with CRLF line ends, before byte-stuffing.
    pub size: u64,
    /// The unique-id listing (UIDL) of the message.
    pub uid: String,
}

/// The answer to [`Pop3Request::Login`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Credential correct and maildrop locked: its messages, oldest first.
    Accepted(Vec<MessageInfo>),
    /// Unknown user or wrong secret (not told apart, so user names cannot be probed).
    Rejected,
    /// Another session holds the maildrop.
    InUse,
    /// The store failed.
    Failed(MaildropError),
}

/// Why the outside world could not open, read or update a maildrop (the answer to a failed
/// [`Pop3Request`]). The machine puts its Display, on one line, into the `-ERR` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaildropError {
    /// The store failed; `brief` says how in one line fit for the client (no paths: those
    /// are for whoever runs the server).
    Store {
        /// One line for the reply, such as "could not read the message: ...".
        brief: String,
    },
    /// No maildrop is locked for this session (a request the machine should not have
    /// made).
    NotLocked,
}

impl fmt::Display for MaildropError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaildropError::Store { brief } => f.write_str(brief),
            MaildropError::NotLocked => f.write_str("no maildrop is open"),
        }
    }
}

impl std::error::Error for MaildropError {}

/// Things the machine reports as they happen, for the window and the scenario runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pop3Event {
    CommandReceived {
        line: String,
    },
    ReplySent {
        positive: bool,
        first_line: String,
        multiline: bool,
        octets: usize,
    },
    StateChanged {
        from: Pop3State,
        to: Pop3State,
    },
    LoggedIn {
        user: String,
        messages: usize,
        octets: u64,
    },
    LoginFailed {
        user: String,
        in_use: bool,
    },
    MessageMarkedDeleted {
        msg: u32,
    },
    DeletionsUndone {
        msgs: Vec<u32>,
    },
    Expunged {
        msgs: Vec<u32>,
    },
    /// TLS or SASL: see [`SecurityEvent`].
    Security(SecurityEvent),
}

/// What the driver must do next: write to the client, report an event, answer a request
/// before polling again, or close (after writing everything before it).
pub type Pop3Output = Output<Pop3Event, Pop3Request>;

impl Machine for Pop3Server {
    const PROTOCOL: Protocol = Protocol::Pop3;
    type Event = Pop3Event;
    type Request = Pop3Request;

    fn receive(&mut self, bytes: &[u8]) {
        if self.state != Pop3State::Closed {
            self.input.push(bytes);
        }
    }

    fn receive_eof(&mut self) {
        if self.state != Pop3State::Closed {
            let from = self.state;
            self.state = Pop3State::Closed;
            self.event(Pop3Event::StateChanged {
                from,
                to: Pop3State::Closed,
            });
        }
    }

    fn poll_output(&mut self) -> Option<Pop3Output> {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return Some(out);
            }
            if self.pending.is_some() || self.state == Pop3State::Closed {
                return None;
            }
            let line = self.input.next_line()?;
            self.handle_line(line);
        }
    }
}

impl ServerMachine for Pop3Server {
    fn is_start_tls(request: &Pop3Request) -> bool {
        matches!(request, Pop3Request::StartTls)
    }

    fn tls_started(&mut self) {
        if self.pending == Some(Pending::StartTls) {
            self.pending = None;
        }
        self.security.tls = TlsState::Active;
        // Before anything still queued: on an implicit-TLS port the greeting is queued
        // from the start, yet it goes out through TLS.
        self.outputs
            .push_front(Pop3Output::Event(Pop3Event::Security(
                SecurityEvent::TlsStarted,
            )));
    }

    fn goodbye(&self, why: Goodbye) -> Option<Vec<u8>> {
        match why {
            // RFC 1939 section 3: when the autologout timer expires the session is closed
            // "without sending any response to the client", and without entering UPDATE.
            Goodbye::Idle => None,
            // Not in RFC 1939; RFC 2449's [SYS/TEMP] says the problem is passing.
            Goodbye::ShuttingDown => {
                Some(b"-ERR [SYS/TEMP] server shutting down, nothing deleted\r\n".to_vec())
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    info: MessageInfo,
    deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Login,
    Fetch { msg: u32, top_lines: Option<u32> },
    Update,
    StartTls,
}

/// One POP3 server session.
#[derive(Debug, Clone)]
pub struct Pop3Server {
    config: Pop3Config,
    replies: Pop3Replies,
    state: Pop3State,
    input: LineBuffer,
    outputs: VecDeque<Pop3Output>,
    pending: Option<Pending>,
    /// The name given by USER, waiting for PASS.
    user_given: Option<String>,
    /// The user whose maildrop is locked.
    user: Option<String>,
    maildrop: Vec<Entry>,
    security: Security,
    /// The SASL exchange under way (AUTH): the next line is a response, not a command.
    sasl: Option<SaslExchange>,
    /// The mechanism of the login being checked, when it came from AUTH.
    auth_mechanism: Option<Mechanism>,
    /// SCRAM's login is checked and the maildrop locked; the server's proof was sent as a
    /// last challenge, and the client's empty response is awaited (RFC 4422's way for a
    /// protocol without "additional data with success", which POP3 AUTH is).
    scram_ack: Option<Vec<MessageInfo>>,
}

impl Pop3Server {
    /// A new session; its greeting is the first output.
    pub fn new(config: Pop3Config) -> Self {
        Self::with_replies(config, Pop3Replies::default())
    }

    /// A new session that answers with `replies` where they are set (texts checked with
    /// [`Pop3Replies::check`]; an unchecked one is still sent on one line).
    pub fn with_replies(config: Pop3Config, replies: Pop3Replies) -> Self {
        let text = replies.greeting.as_deref().unwrap_or("POP3 server ready");
        let greeting = if text.is_empty() {
            config.timestamp.clone()
        } else {
            format!("{} {}", render(text, &[]), config.timestamp)
        };
        let mut server = Self {
            config,
            replies,
            state: Pop3State::Authorization,
            input: LineBuffer::new(MAX_COMMAND_LINE, Terminator::CrLfOrLf),
            outputs: VecDeque::new(),
            pending: None,
            user_given: None,
            user: None,
            maildrop: Vec::new(),
            security: Security::default(),
            sasl: None,
            auth_mechanism: None,
            scram_ack: None,
        };
        server.ok(&greeting);
        server
    }

    /// Sets what this session offers for security: STLS, the SASL mechanisms, whether a
    /// password may be sent in clear, and this session's nonce and salt. Without it: no TLS,
    /// every mechanism, passwords in clear allowed, fixed nonce ([`Security::default`]).
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// What the session offers and whether TLS is on.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The session state.
    pub fn state(&self) -> Pop3State {
        self.state
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.state == Pop3State::Closed
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The maildrop as the session sees it: (message number, info, marked deleted).
    pub fn maildrop(&self) -> impl Iterator<Item = (u32, &MessageInfo, bool)> {
        self.maildrop
            .iter()
            .enumerate()
            .map(|(i, e)| (msg_number(i), &e.info, e.deleted))
    }

    /// Answers [`Pop3Request::Login`]. A rejected login should be answered only after the
    /// configured delay; the machine itself has no clock.
    pub fn answer_login(&mut self, outcome: LoginOutcome) {
        self.answer_login_with(outcome, None);
    }

    /// Answers [`Pop3Request::Login`] with, for SCRAM, the server-final message that
    /// [`Credential::verify`] made (`v=` and the server's signature): it is sent as a last
    /// challenge, and the login completes when the client answers it with an empty line.
    pub fn answer_login_with(&mut self, outcome: LoginOutcome, server_final: Option<Vec<u8>>) {
        if self.pending != Some(Pending::Login) {
            return;
        }
        self.pending = None;
        match (outcome, server_final) {
            (LoginOutcome::Accepted(messages), Some(server_final)) => {
                self.scram_ack = Some(messages);
                self.challenge(&server_final);
            }
            (LoginOutcome::Accepted(messages), None) => self.accept_login(messages),
            (outcome, _) => self.refuse_login(outcome),
        }
    }

    /// The credentials were right and the maildrop is locked: TRANSACTION begins.
    fn accept_login(&mut self, messages: Vec<MessageInfo>) {
        let user = self.user_given.take().unwrap_or_default();
        if let Some(mechanism) = self.auth_mechanism.take() {
            self.event(Pop3Event::Security(SecurityEvent::Authenticated {
                user: user.clone(),
                mechanism,
            }));
        }
        let octets: u64 = messages.iter().map(|m| m.size).sum();
        let count = messages.len();
        self.maildrop = messages
            .into_iter()
            .map(|info| Entry {
                info,
                deleted: false,
            })
            .collect();
        self.event(Pop3Event::LoggedIn {
            user: user.clone(),
            messages: count,
            octets,
        });
        let text = match &self.replies.login {
            Some(t) => render(
                t,
                &[
                    ("user", &user),
                    ("count", &count.to_string()),
                    ("octets", &octets.to_string()),
                ],
            ),
            None => format!(
                "{user}'s maildrop has {count} message{} ({octets} octets)",
                plural(count)
            ),
        };
        self.ok(&text);
        self.user = Some(user);
        self.set_state(Pop3State::Transaction);
    }

    fn refuse_login(&mut self, outcome: LoginOutcome) {
        let user = self.user_given.take().unwrap_or_default();
        if let Some(mechanism) = self.auth_mechanism.take() {
            self.event(Pop3Event::Security(SecurityEvent::AuthFailed {
                user: Some(user.clone()),
                mechanism,
            }));
        }
        match outcome {
            LoginOutcome::Accepted(_) => {}
            LoginOutcome::Rejected => {
                let text = match &self.replies.login_failed {
                    Some(t) => render(t, &[("user", &user)]),
                    None => "invalid user name or password".to_string(),
                };
                self.event(Pop3Event::LoginFailed {
                    user,
                    in_use: false,
                });
                // RFC 3206 section 4: [AUTH] covers any problem with the credentials.
                self.err(&format!("[AUTH] {text}"));
            }
            LoginOutcome::InUse => {
                self.event(Pop3Event::LoginFailed { user, in_use: true });
                self.err("[IN-USE] maildrop already locked by another session");
            }
            LoginOutcome::Failed(why) => {
                self.event(Pop3Event::LoginFailed {
                    user,
                    in_use: false,
                });
                self.err(&format!(
                    "[SYS/TEMP] cannot open maildrop: {}",
                    one_line(&why.to_string())
                ));
            }
        }
    }

    /// Answers [`Pop3Request::Fetch`] with the message's bytes (CRLF line ends expected;
    /// bare LFs are sent as CRLF) or why it could not be read.
    pub fn answer_fetch(&mut self, content: Result<Vec<u8>, MaildropError>) {
        let Some(Pending::Fetch { msg, top_lines }) = self.pending else {
            return;
        };
        self.pending = None;
        let content = match content {
            Ok(c) => c,
            Err(why) => {
                self.err(&format!(
                    "[SYS/TEMP] cannot read message {msg}: {}",
                    one_line(&why.to_string())
                ));
                return;
            }
        };
        let size = self
            .entry(msg)
            .map(|e| e.info.size)
            .unwrap_or(content.len() as u64);
        let (first_line, body) = match top_lines {
            None => (format!("+OK {size} octets"), content.as_slice()),
            // The size of what follows, as for RETR: Wireshark reads the number.
            Some(n) => {
                let top = top_of(&content, n);
                (format!("+OK {} octets", top.len()), top)
            }
        };
        let mut reply = Vec::with_capacity(body.len() + body.len() / 32 + first_line.len() + 8);
        reply.extend_from_slice(first_line.as_bytes());
        reply.extend_from_slice(b"\r\n");
        stuff_into(body, &mut reply);
        reply.extend_from_slice(b".\r\n");
        self.write_reply(true, first_line, true, reply);
    }

    /// Answers [`Pop3Request::Update`]: `Ok(())` once the marked messages are removed.
    pub fn answer_update(&mut self, result: Result<(), MaildropError>) {
        if self.pending != Some(Pending::Update) {
            return;
        }
        self.pending = None;
        let deleted: Vec<u32> = self
            .maildrop
            .iter()
            .enumerate()
            .filter(|(_, e)| e.deleted)
            .map(|(i, _)| msg_number(i))
            .collect();
        let host = self.config.hostname.clone();
        match result {
            Ok(()) => {
                let left = self.maildrop.len() - deleted.len();
                if !deleted.is_empty() {
                    self.event(Pop3Event::Expunged { msgs: deleted });
                }
                let text = match &self.replies.quit {
                    Some(t) => render(t, &[]),
                    None if left == 0 => format!("{host} POP3 server signing off (maildrop empty)"),
                    None => format!(
                        "{host} POP3 server signing off ({left} message{} left)",
                        plural(left)
                    ),
                };
                self.ok(&text);
            }
            Err(why) => self.err(&format!(
                "[SYS/PERM] some deleted messages not removed: {}",
                one_line(&why.to_string())
            )),
        }
        self.close();
    }

    fn handle_line(&mut self, line: Line) {
        if self.sasl.is_some() || self.scram_ack.is_some() {
            self.sasl_line(line);
            return;
        }
        let text = match line {
            Line::TooLong { len } => {
                self.event(Pop3Event::CommandReceived {
                    line: format!("<{len} octets>"),
                });
                self.err(&format!(
                    "command line too long ({len} octets, at most {MAX_COMMAND_LINE})"
                ));
                return;
            }
            Line::Complete { text, .. } => text,
        };
        self.event(Pop3Event::CommandReceived {
            line: String::from_utf8_lossy(&text).into_owned(),
        });
        match Command::parse(&text) {
            Ok(cmd) => self.handle_command(cmd),
            Err(e) => self.err(&e.to_string()),
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        match (self.state, cmd) {
            (_, Command::Capa) => self.capa(),
            (Pop3State::Authorization, Command::Quit) => {
                let text = match &self.replies.quit {
                    Some(t) => render(t, &[]),
                    None => format!("{} POP3 server signing off", self.config.hostname),
                };
                self.ok(&text);
                self.close();
            }
            (Pop3State::Authorization, Command::Stls) => self.stls(),
            (Pop3State::Authorization, Command::Auth { mechanism, initial }) => {
                self.auth(&mechanism, initial.as_deref());
            }
            (Pop3State::Authorization, Command::User(_) | Command::Pass(_))
                if !self.security.passwords_allowed() =>
            {
                // This server was told to refuse passwords in clear (`--clear-passwords`).
                self.err("a password in clear is refused here: send STLS first");
            }
            (Pop3State::Authorization, Command::User(_)) if self.config.apop_only => {
                // RFC 1939 section 13: a user with an APOP secret should not also be allowed
                // to send the password in the clear.
                self.err(
                    "[AUTH] this server accepts only APOP (no USER/PASS: RFC 1939 section 13)",
                );
            }
            (Pop3State::Authorization, Command::User(name)) => {
                let text = match &self.replies.user {
                    Some(t) => render(t, &[("user", &name)]),
                    None => format!("send PASS for {name}"),
                };
                self.ok(&text);
                self.user_given = Some(name);
            }
            (Pop3State::Authorization, Command::Pass(pass)) => match self.user_given.clone() {
                None => self.err("give USER first"),
                Some(user) => self.request_login(user, Credential::Password(pass)),
            },
            (Pop3State::Authorization, Command::Apop { name, digest }) => {
                let timestamp = self.config.timestamp.clone();
                self.user_given = Some(name.clone());
                self.request_login(name, Credential::Apop { digest, timestamp });
            }
            (Pop3State::Transaction, cmd) => self.transaction(cmd),
            (_, cmd) => self.err(&format!(
                "{} is not allowed in the {} state",
                cmd.keyword(),
                self.state.name()
            )),
        }
    }

    fn transaction(&mut self, cmd: Command) {
        match cmd {
            Command::Stat => {
                let (count, octets) = self.totals();
                self.ok(&format!("{count} {octets}"));
            }
            Command::List(None) => {
                let (count, octets) = self.totals();
                let lines = self.listing(|i, e| format!("{} {}", i, e.info.size));
                self.multiline(
                    &format!("{count} message{} ({octets} octets)", plural(count)),
                    &lines,
                );
            }
            Command::List(Some(n)) => {
                if let Some(size) = self.live(n).map(|e| e.info.size) {
                    self.ok(&format!("{n} {size}"));
                }
            }
            Command::Uidl(None) => {
                let lines = self.listing(|i, e| format!("{} {}", i, e.info.uid));
                self.multiline("unique-id listing follows", &lines);
            }
            Command::Uidl(Some(n)) => {
                if let Some(uid) = self.live(n).map(|e| e.info.uid.clone()) {
                    self.ok(&format!("{n} {uid}"));
                }
            }
            Command::Retr(n) => self.fetch(n, None),
            Command::Top { msg, lines } => self.fetch(msg, Some(lines)),
            Command::Dele(n) => {
                if self.live(n).is_some() {
                    if let Some(e) = msg_index(n).and_then(|i| self.maildrop.get_mut(i)) {
                        e.deleted = true;
                    }
                    self.event(Pop3Event::MessageMarkedDeleted { msg: n });
                    let text = match &self.replies.dele {
                        Some(t) => render(t, &[("msg", &n.to_string())]),
                        None => format!("message {n} deleted"),
                    };
                    self.ok(&text);
                }
            }
            Command::Rset => {
                let undone: Vec<u32> = self
                    .maildrop
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, e)| e.deleted)
                    .map(|(i, e)| {
                        e.deleted = false;
                        msg_number(i)
                    })
                    .collect();
                if !undone.is_empty() {
                    self.event(Pop3Event::DeletionsUndone { msgs: undone });
                }
                let (count, octets) = self.totals();
                self.ok(&format!(
                    "maildrop has {count} message{} ({octets} octets)",
                    plural(count)
                ));
            }
            Command::Quit => {
                self.set_state(Pop3State::Update);
                let delete = self
                    .maildrop
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.deleted)
                    .map(|(i, _)| i)
                    .collect();
                self.pending = Some(Pending::Update);
                self.outputs
                    .push_back(Pop3Output::Request(Pop3Request::Update { delete }));
            }
            Command::Noop => self.ok(""),
            Command::User(_) | Command::Pass(_) | Command::Apop { .. } | Command::Auth { .. } => {
                self.err("already logged in");
            }
            // RFC 2595 section 4: STLS is only permitted in the AUTHORIZATION state.
            Command::Stls => self.err("STLS is only allowed before logging in"),
            Command::Capa => self.capa(),
        }
    }

    /// The mechanisms to list: [`Security::advertised`], without those that send the password
    /// when only APOP is accepted.
    fn advertised(&self) -> Vec<Mechanism> {
        let mut mechanisms = self.security.advertised();
        if self.config.apop_only {
            mechanisms.retain(|m| !m.sends_password());
        }
        mechanisms
    }

    /// STLS (RFC 2595 section 4).
    fn stls(&mut self) {
        match self.security.tls {
            TlsState::Unavailable => self.err("STLS not available: this server has no certificate"),
            // RFC 2595 section 4's example text.
            TlsState::Active => self.err("Command not permitted when TLS active"),
            TlsState::Offered => {
                self.ok("Begin TLS negotiation");
                self.start_tls();
            }
        }
    }

    /// The go-ahead is written: drop what the client sent in clear after the command (it
    /// must come again through TLS), forget the user name given, and ask for the handshake.
    fn start_tls(&mut self) {
        let discarded = self.input.discard_pending();
        self.user_given = None;
        self.event(Pop3Event::Security(SecurityEvent::TlsRequested {
            discarded,
        }));
        self.pending = Some(Pending::StartTls);
        self.outputs
            .push_back(Pop3Output::Request(Pop3Request::StartTls));
    }

    /// AUTH (RFC 5034 section 4).
    fn auth(&mut self, name: &str, initial: Option<&str>) {
        let Some(mechanism) =
            Mechanism::from_name(name).filter(|m| self.security.mechanisms.contains(m))
        else {
            let offered: Vec<&str> = self.advertised().iter().map(|m| m.name()).collect();
            self.err(&format!(
                "unsupported SASL mechanism; this server offers: {}",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(" ")
                }
            ));
            return;
        };
        if mechanism.sends_password() && self.config.apop_only {
            // RFC 1939 section 13: with APOP secrets, no password in clear, base64 or not.
            self.err(&format!(
                "[AUTH] this server accepts no password in clear ({mechanism} sends it): \
                 use APOP, CRAM-MD5 or SCRAM-SHA-256"
            ));
            return;
        }
        if mechanism.sends_password() && !self.security.passwords_allowed() {
            self.err(&format!(
                "{mechanism} sends the password itself (base64 is no encryption): send STLS first"
            ));
            return;
        }
        let initial = match initial.map(sasl::decode).transpose() {
            Ok(initial) => initial,
            Err(e) => {
                self.sasl_failed(mechanism, None, &e);
                return;
            }
        };
        let host = self.config.hostname.clone();
        let (exchange, step) =
            SaslExchange::start(mechanism, initial, &self.security.params, &host);
        self.sasl = Some(exchange);
        // Responses may be longer than a command line: they get SMTP AUTH's limit
        // (RFC 4954 section 4: 12288 octets).
        self.input.set_mode(MAX_SASL_LINE, Terminator::CrLfOrLf);
        self.sasl_step(mechanism, step);
    }

    /// A line during AUTH: a base64 response, `*` to cancel, or the empty answer to SCRAM's
    /// server-final message.
    fn sasl_line(&mut self, line: Line) {
        let text = match line {
            Line::Complete { text, .. } => String::from_utf8_lossy(&text).into_owned(),
            Line::TooLong { len } => format!("<{len} octets>"),
        };
        self.event(Pop3Event::CommandReceived { line: text.clone() });
        if let Some(messages) = self.scram_ack.take() {
            self.end_sasl_input();
            if text.is_empty() {
                self.accept_login(messages);
            } else {
                // The client does not accept the server's proof (or cancelled): it must not
                // go on with a server it does not trust; the maildrop lock goes with the
                // session.
                let mechanism = self.auth_mechanism.take().unwrap_or(Mechanism::ScramSha256);
                let user = self.user_given.take();
                self.event(Pop3Event::Security(SecurityEvent::AuthFailed {
                    user,
                    mechanism,
                }));
                self.err("[AUTH] authentication cancelled after the server's proof; closing");
                self.close();
            }
            return;
        }
        let Some(mut exchange) = self.sasl.take() else {
            return;
        };
        let mechanism = exchange.mechanism();
        let step = if text.trim() == "*" {
            SaslStep::Failed(sasl::SaslError::Cancelled)
        } else {
            match sasl::decode(&text) {
                Ok(response) => exchange.respond(&response, &self.security.params),
                Err(e) => SaslStep::Failed(e),
            }
        };
        self.sasl = Some(exchange);
        self.sasl_step(mechanism, step);
    }

    fn sasl_step(&mut self, mechanism: Mechanism, step: SaslStep) {
        match step {
            SaslStep::Challenge(bytes) => self.challenge(&bytes),
            SaslStep::Check { user, credential } => {
                self.sasl = None;
                self.end_sasl_input();
                self.user_given = Some(user.clone());
                self.auth_mechanism = Some(mechanism);
                self.request_login(user, credential);
            }
            SaslStep::Failed(e) => {
                self.sasl = None;
                self.end_sasl_input();
                self.sasl_failed(mechanism, None, &e);
            }
        }
    }

    fn sasl_failed(&mut self, mechanism: Mechanism, user: Option<String>, why: &sasl::SaslError) {
        self.event(Pop3Event::Security(SecurityEvent::AuthFailed {
            user,
            mechanism,
        }));
        self.err(&format!("[AUTH] {why}"));
    }

    /// Back to command lines after an AUTH exchange.
    fn end_sasl_input(&mut self) {
        self.input.set_mode(MAX_COMMAND_LINE, Terminator::CrLfOrLf);
    }

    /// A SASL challenge: `+ ` and the base64 of the bytes (RFC 5034 section 4).
    fn challenge(&mut self, bytes: &[u8]) {
        let line = format!("+ {}", sasl::encode(bytes));
        let wire = format!("{line}\r\n").into_bytes();
        self.write_reply(true, line, false, wire);
    }

    fn request_login(&mut self, user: String, credential: Credential) {
        self.pending = Some(Pending::Login);
        self.outputs
            .push_back(Pop3Output::Request(Pop3Request::Login { user, credential }));
    }

    fn fetch(&mut self, msg: u32, top_lines: Option<u32>) {
        if self.live(msg).is_none() {
            return;
        }
        let Some(index) = msg_index(msg) else { return };
        self.pending = Some(Pending::Fetch { msg, top_lines });
        self.outputs
            .push_back(Pop3Output::Request(Pop3Request::Fetch { index }));
    }

    fn capa(&mut self) {
        // RFC 2449 section 6.2: USER is announced only where USER/PASS is accepted.
        let user = (!self.config.apop_only && self.security.passwords_allowed()).then_some("USER");
        // RFC 2595 section 4: STLS, only while TLS can still be started.
        let stls = (self.security.tls == TlsState::Offered).then_some("STLS");
        // RFC 2449 section 6.3, as RFC 5034 updates it: SASL and the mechanisms.
        let mechanisms: Vec<&str> = self.advertised().iter().map(|m| m.name()).collect();
        let sasl = (!mechanisms.is_empty()).then(|| format!("SASL {}", mechanisms.join(" ")));
        let lines: Vec<String> = ["TOP", "UIDL"]
            .into_iter()
            .chain(user)
            .map(str::to_string)
            .chain(sasl)
            .chain(stls.map(str::to_string))
            .chain(
                [
                    "RESP-CODES",
                    "AUTH-RESP-CODE",
                    "PIPELINING",
                    "IMPLEMENTATION mailwire",
                ]
                .map(str::to_string),
            )
            .collect();
        self.multiline("capability list follows", &lines);
    }

    /// The entry for message `n` if it exists and is not deleted; otherwise sends the -ERR.
    fn live(&mut self, n: u32) -> Option<&Entry> {
        match self.entry(n).map(|e| e.deleted) {
            None => {
                let count = self.maildrop.len();
                self.err(&format!("no such message, only {count} in maildrop"));
                None
            }
            Some(true) => {
                self.err(&format!("message {n} already deleted"));
                None
            }
            Some(false) => self.entry(n),
        }
    }

    fn entry(&self, n: u32) -> Option<&Entry> {
        msg_index(n).and_then(|i| self.maildrop.get(i))
    }

    fn totals(&self) -> (usize, u64) {
        self.maildrop
            .iter()
            .filter(|e| !e.deleted)
            .fold((0, 0), |(c, o), e| (c + 1, o + e.info.size))
    }

    fn listing(&self, line: impl Fn(u32, &Entry) -> String) -> Vec<String> {
        self.maildrop
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.deleted)
            .map(|(i, e)| line(msg_number(i), e))
            .collect()
    }

    fn set_state(&mut self, to: Pop3State) {
        let from = self.state;
        if from != to {
            self.state = to;
            self.event(Pop3Event::StateChanged { from, to });
        }
    }

    fn close(&mut self) {
        self.outputs.push_back(Pop3Output::Close);
        self.set_state(Pop3State::Closed);
    }

    fn event(&mut self, event: Pop3Event) {
        self.outputs.push_back(Pop3Output::Event(event));
    }

    fn ok(&mut self, text: &str) {
        let line = if text.is_empty() {
            "+OK".to_string()
        } else {
            format!("+OK {text}")
        };
        let bytes = format!("{line}\r\n").into_bytes();
        self.write_reply(true, line, false, bytes);
    }

    fn err(&mut self, text: &str) {
        let line = format!("-ERR {text}");
        let bytes = format!("{line}\r\n").into_bytes();
        self.write_reply(false, line, false, bytes);
    }

    fn multiline(&mut self, first: &str, lines: &[String]) {
        let first_line = format!("+OK {first}");
        let mut body = Vec::new();
        for l in lines {
            body.extend_from_slice(l.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        let mut reply = format!("{first_line}\r\n").into_bytes();
        stuff_into(&body, &mut reply);
        reply.extend_from_slice(b".\r\n");
        self.write_reply(true, first_line, true, reply);
    }

    fn write_reply(&mut self, positive: bool, first_line: String, multiline: bool, bytes: Vec<u8>) {
        self.event(Pop3Event::ReplySent {
            positive,
            first_line,
            multiline,
            octets: bytes.len(),
        });
        self.outputs.push_back(Pop3Output::Write(bytes));
    }
}

/// Appends `content` to `out` as the body of a multi-line reply: every line end becomes CRLF,
/// lines that begin with "." get one more, and a last line without a line end gets one.
pub fn stuff_into(content: &[u8], out: &mut Vec<u8>) {
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in content {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !content.is_empty() && !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
}

/// The headers, the empty line after them, and the first `n` lines of the body (TOP).
fn top_of(content: &[u8], n: u32) -> &[u8] {
    let mut lines_after_blank: Option<u32> = None;
    let mut line_start = 0;
    for (i, &b) in content.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = content.get(line_start..i).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match lines_after_blank {
            None if line.is_empty() => lines_after_blank = Some(0),
            None => {}
            Some(k) => lines_after_blank = Some(k + 1),
        }
        line_start = i + 1;
        if lines_after_blank == Some(n) {
            return content.get(..line_start).unwrap_or(content);
        }
    }
    content
}

fn msg_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

fn msg_index(n: u32) -> Option<usize> {
    usize::try_from(n).ok()?.checked_sub(1)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod error_tests {
    use super::MaildropError;

    #[test]
    fn maildrop_errors_read_as_the_clause_of_a_reply() {
        let store = MaildropError::Store {
            brief: "could not read the message: disk gone".into(),
        };
        assert_eq!(store.to_string(), "could not read the message: disk gone");
        assert_eq!(MaildropError::NotLocked.to_string(), "no maildrop is open");
    }
}
