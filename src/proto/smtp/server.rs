//! The SMTP server machine (RFC 5321): bytes in, replies and requests out.
//!
//! [`SmtpServer`] keeps the session state (greeting, HELO/EHLO, the MAIL/RCPT/DATA
//! transaction) and reads the message content. It never touches the store: whether a
//! recipient exists and the delivery of a message are [`SmtpRequest`]s, and the machine reads
//! no further input until the driver answers, so pipelined commands (RFC 2920) are answered
//! strictly in order.
//!
//! Outputs of one command come in this order: `Event(CommandReceived)`, then any `Request`,
//! then `Write(reply)`, `Event(ReplySent)`, any `Event(MessageDelivered)`, any
//! `Event(StateChanged)`, and `Close` after QUIT. At the end of DATA:
//! `Event(ContentReceived)` (always, also when the message is refused), then
//! `Request(Deliver)` or the refusal.
//!
//! Only `CRLF . CRLF` ends the content: the content is split with
//! [`Terminator::CrLf`], so `LF . LF`, `CR . LF` and `LF . CRLF` stay inside the message
//! (SMTP smuggling). Bare LFs inside content lines are kept as they are.

use std::collections::VecDeque;
use std::fmt;

use super::command::{Command, Verb, split_command};
use super::reply::Reply;
use crate::proto::line::{Line, LineBuffer, Terminator};
use crate::proto::reply_text::{self, ReplyTextError, render};
use crate::proto::sasl::{
    self, Credential, Mechanism, SaslError, SaslExchange, SaslStep, Security, TlsState, Verified,
};
use crate::proto::{Goodbye, Machine, Output, Protocol, SecurityEvent, ServerMachine};

/// The longest command line, CRLF excluded (RFC 5321 section 4.5.3.1.4: 512 with CRLF).
pub const MAX_COMMAND_LINE: usize = 510;
/// The longest content line, CRLF excluded (RFC 5321 section 4.5.3.1.6: 1000 with CRLF).
pub const MAX_TEXT_LINE: usize = 998;
/// The most recipients of one transaction (RFC 5321 section 4.5.3.1.8).
pub const MAX_RECIPIENTS: usize = 100;
/// The longest AUTH command or response line, CRLF excluded (RFC 4954 section 4: 12288
/// octets with CRLF).
pub const MAX_AUTH_LINE: usize = 12286;

/// Settings of one SMTP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Host name shown in the greeting, the HELO reply and the sign-off.
    pub hostname: String,
    /// Domains besides `localhost` and `[127.0.0.1]` whose mail is delivered here (compared
    /// without regard to case). Mail for any other domain is refused (no relaying).
    pub local_domains: Vec<String>,
    /// The largest message accepted, in octets with CRLF line ends after dot-unstuffing;
    /// announced as the EHLO SIZE keyword.
    pub max_message_size: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            local_domains: Vec::new(),
            max_message_size: 10 * 1024 * 1024,
        }
    }
}

/// Free texts that replace the server's own in some replies (see
/// [`crate::proto::reply_text`]): `None` keeps mailwire's text. The reply code, the enhanced
/// status code (RFC 3463) and, where RFC 5321's grammar puts it first, the server's domain
/// stay the machine's, so every reply stays valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpReplies {
    /// `220 {hostname} {text}`: the greeting after the domain (RFC 5321 section 4.2).
    pub greeting: Option<String>,
    /// `250 {hostname} {text}` to HELO, and the first line of the EHLO reply; may say
    /// `{domain}` (the client's).
    pub helo: Option<String>,
    /// `250 2.1.0 {text}` to MAIL; may say `{address}`.
    pub mail: Option<String>,
    /// `250 2.1.5 {text}` to an accepted RCPT; may say `{address}`.
    pub rcpt: Option<String>,
    /// `250 2.0.0 {text}` after the message: the server took responsibility for it.
    pub accepted: Option<String>,
    /// `221 2.0.0 {text}` to QUIT.
    pub quit: Option<String>,
}

impl SmtpReplies {
    /// Checks every text set (printable ASCII, length, placeholders).
    pub fn check(&self) -> Result<(), ReplyTextError> {
        let texts: [(&'static str, &Option<String>, &'static [&'static str]); 6] = [
            ("smtp.greeting", &self.greeting, &[]),
            ("smtp.helo", &self.helo, &["domain"]),
            ("smtp.mail", &self.mail, &["address"]),
            ("smtp.rcpt", &self.rcpt, &["address"]),
            ("smtp.accepted", &self.accepted, &[]),
            ("smtp.quit", &self.quit, &[]),
        ];
        for (key, text, allowed) in texts {
            if let Some(text) = text {
                reply_text::check(key, text, allowed)?;
            }
        }
        Ok(())
    }
}

/// Joins a code or domain and a text with a space; an empty text adds nothing.
fn joined(first: &str, text: &str) -> String {
    if text.is_empty() {
        first.to_string()
    } else {
        format!("{first} {text}")
    }
}

/// The session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpState {
    /// Greeted, no HELO/EHLO yet.
    Connected,
    /// After HELO/EHLO, no transaction.
    Ready,
    /// After MAIL: a reverse path, no recipient yet.
    Mail,
    /// At least one recipient accepted.
    Rcpt,
    /// Reading the message content (from the 354 reply until the answer to its delivery).
    Data,
    /// QUIT done or the client went away.
    Closed,
}

impl SmtpState {
    /// A short upper-case name for display.
    pub fn name(self) -> &'static str {
        match self {
            SmtpState::Connected => "CONNECTED",
            SmtpState::Ready => "READY",
            SmtpState::Mail => "MAIL",
            SmtpState::Rcpt => "RCPT",
            SmtpState::Data => "DATA",
            SmtpState::Closed => "CLOSED",
        }
    }
}

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address as the client wrote it, without angle brackets.
    pub address: String,
    /// Its local part, unquoted (the mailbox name to deliver to).
    pub user: String,
}

/// The transaction under way: who greeted, who sends, who receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The domain given with HELO/EHLO.
    pub helo: Option<String>,
    /// The client greeted with EHLO (the Received header then says `with ESMTP`).
    pub esmtp: bool,
    /// The session was under TLS (`with ESMTPS`, RFC 3848).
    pub tls: bool,
    /// The client had logged in with AUTH (`with ESMTPA`, RFC 3848).
    pub authenticated: bool,
    /// The sender from MAIL FROM, without angle brackets; `""` for the null path `<>`.
    pub reverse_path: String,
    /// Recipients accepted so far, in order, without duplicates.
    pub recipients: Vec<Recipient>,
}

/// What the machine needs from the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpRequest {
    /// Does this local user exist? The domain is already known to be local. Answer with
    /// [`SmtpServer::answer_recipient`].
    CheckRecipient { user: String, address: String },
    /// Store the message for every recipient of the envelope. `content` is dot-unstuffed, has
    /// CRLF line ends and no final `.` line, and has no Received header yet (the driver adds
    /// it, see [`super::received_header`]). Answer with [`SmtpServer::answer_delivery`].
    Deliver {
        envelope: Envelope,
        content: Vec<u8>,
    },
    /// Check a SASL credential (AUTH) against the user's password. Answer with
    /// [`SmtpServer::answer_auth`], after the failed-login delay if it was wrong.
    Authenticate {
        user: String,
        credential: Credential,
    },
    /// STARTTLS was accepted (`220` written): make the TLS handshake on the connection, then
    /// call [`ServerMachine::tls_started`].
    StartTls,
}

/// Why a delivery failed (the answer to a failed [`SmtpRequest::Deliver`]): the `451` reply
/// says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// The store failed; `brief` says how in one line fit for the client (no paths: those
    /// are for whoever runs the server).
    Store {
        /// One line for the reply, such as "could not write the message: ...".
        brief: String,
    },
    /// The delivery ended without an answer (the work doing it stopped): nothing more to
    /// tell the client.
    Internal,
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::Store { brief } => f.write_str(brief),
            DeliveryError::Internal => f.write_str("local error in processing"),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// Things the machine reports as they happen, for the window and the scenario runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpEvent {
    /// A command line arrived (lossy UTF-8; `<N octets>` for a line over the limit).
    CommandReceived { line: String },
    /// A reply was written: its code and its text lines joined with `"\n"`, codes removed.
    ReplySent { code: u16, text: String },
    /// The session state changed.
    StateChanged { from: SmtpState, to: SmtpState },
    /// MAIL was accepted: a transaction begins with this reverse-path (empty for `<>`).
    SenderAccepted { address: String },
    /// RCPT was accepted for this forward-path.
    RecipientAccepted { address: String },
    /// RCPT was refused with this reply (code and first text line).
    RecipientRefused {
        address: String,
        code: u16,
        text: String,
    },
    /// The content of DATA ended: its size (octets after unstuffing, CRLF line ends) and line
    /// count, whether or not it is then accepted.
    ContentReceived { bytes: usize, lines: usize },
    /// A message was delivered to these recipient addresses.
    MessageDelivered {
        recipients: Vec<String>,
        bytes: usize,
    },
    /// TLS or SASL: see [`SecurityEvent`].
    Security(SecurityEvent),
}

/// What the driver must do next: write to the client, report an event, answer a request
/// before polling again, or close (after writing everything before it).
pub type SmtpOutput = Output<SmtpEvent, SmtpRequest>;

impl Machine for SmtpServer {
    const PROTOCOL: Protocol = Protocol::Smtp;
    type Event = SmtpEvent;
    type Request = SmtpRequest;

    fn receive(&mut self, bytes: &[u8]) {
        if self.state != SmtpState::Closed {
            self.input.push(bytes);
        }
    }

    fn receive_eof(&mut self) {
        if self.state == SmtpState::Closed {
            return;
        }
        self.outputs.retain(|o| matches!(o, SmtpOutput::Event(_)));
        self.pending = None;
        self.envelope = None;
        self.content = Content::default();
        self.input = LineBuffer::new(MAX_COMMAND_LINE, Terminator::CrLfOrLf);
        self.set_state(SmtpState::Closed);
    }

    fn poll_output(&mut self) -> Option<SmtpOutput> {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return Some(out);
            }
            if self.pending.is_some() || self.state == SmtpState::Closed {
                return None;
            }
            let line = self.input.next_line()?;
            if self.state == SmtpState::Data {
                self.content_line(line);
            } else if self.sasl.is_some() || self.scram_ack.is_some() {
                self.sasl_line(line);
            } else {
                self.command_line(line);
            }
        }
    }
}

impl ServerMachine for SmtpServer {
    fn is_start_tls(request: &SmtpRequest) -> bool {
        matches!(request, SmtpRequest::StartTls)
    }

    fn tls_started(&mut self) {
        if matches!(self.pending, Some(Pending::StartTls)) {
            self.pending = None;
        }
        self.security.tls = TlsState::Active;
        // Before anything still queued: on an implicit-TLS port the greeting is queued
        // from the start, yet it goes out through TLS.
        self.outputs
            .push_front(SmtpOutput::Event(SmtpEvent::Security(
                SecurityEvent::TlsStarted,
            )));
    }

    fn goodbye(&self, why: Goodbye) -> Option<Vec<u8>> {
        let text = match why {
            Goodbye::Idle => "421 4.4.2 idle too long, closing connection\r\n",
            Goodbye::ShuttingDown => "421 4.3.2 server shutting down, closing connection\r\n",
        };
        Some(text.as_bytes().to_vec())
    }
}

/// The request waiting for an answer.
#[derive(Debug, Clone)]
enum Pending {
    Recipient(Recipient),
    Delivery { bytes: usize },
    Auth { user: String, mechanism: Mechanism },
    StartTls,
}

/// The message content being read.
#[derive(Debug, Clone, Default)]
struct Content {
    /// The bytes kept (empty once the message is known to be refused).
    kept: Vec<u8>,
    /// Octets received, after unstuffing, with CRLF line ends.
    bytes: usize,
    lines: usize,
    line_too_long: bool,
    too_big: bool,
}

/// One SMTP server session.
#[derive(Debug, Clone)]
pub struct SmtpServer {
    config: SmtpConfig,
    replies: SmtpReplies,
    state: SmtpState,
    input: LineBuffer,
    outputs: VecDeque<SmtpOutput>,
    pending: Option<Pending>,
    helo: Option<String>,
    esmtp: bool,
    envelope: Option<Envelope>,
    content: Content,
    security: Security,
    /// The SASL exchange under way: the next line is a response, not a command.
    sasl: Option<SaslExchange>,
    /// SCRAM checked the proof and sent the server's as a last challenge: the client's
    /// empty response is awaited (user and mechanism).
    scram_ack: Option<(String, Mechanism)>,
    /// The user AUTH proved, if any.
    authenticated: Option<String>,
}

impl SmtpServer {
    /// A new session; its greeting `220 {hostname} ESMTP mailwire ready` is the first output.
    pub fn new(config: SmtpConfig) -> Self {
        Self::with_replies(config, SmtpReplies::default())
    }

    /// A new session that answers with `replies` where they are set (texts checked with
    /// [`SmtpReplies::check`]).
    pub fn with_replies(config: SmtpConfig, replies: SmtpReplies) -> Self {
        let text = replies
            .greeting
            .as_deref()
            .map_or_else(|| "ESMTP mailwire ready".to_string(), |t| render(t, &[]));
        let greeting = joined(&config.hostname, &text);
        let mut server = Self {
            config,
            replies,
            state: SmtpState::Connected,
            input: LineBuffer::new(MAX_COMMAND_LINE, Terminator::CrLfOrLf),
            outputs: VecDeque::new(),
            pending: None,
            helo: None,
            esmtp: false,
            envelope: None,
            content: Content::default(),
            security: Security::default(),
            sasl: None,
            scram_ack: None,
            authenticated: None,
        };
        server.reply(Reply::new(220, greeting));
        server
    }

    /// Sets what this session offers for security: STARTTLS, the SASL mechanisms, whether a
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

    /// The user AUTH proved in this session, if any.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Answers [`SmtpRequest::Authenticate`]: `Some` when the credential proved the password
    /// (with SCRAM's server-final message), `None` when it did not.
    pub fn answer_auth(&mut self, verified: Option<Verified>) {
        let Some(Pending::Auth { user, mechanism }) = self.pending.take() else {
            return;
        };
        match verified {
            Some(Verified {
                server_final: Some(server_final),
            }) => {
                self.scram_ack = Some((user, mechanism));
                self.input.set_mode(MAX_AUTH_LINE, Terminator::CrLfOrLf);
                self.challenge(&server_final);
            }
            Some(Verified { server_final: None }) => self.auth_succeeded(user, mechanism),
            None => {
                self.event(SmtpEvent::Security(SecurityEvent::AuthFailed {
                    user: Some(user),
                    mechanism,
                }));
                self.reply(Reply::new(535, "5.7.8 Authentication credentials invalid"));
            }
        }
    }

    fn auth_succeeded(&mut self, user: String, mechanism: Mechanism) {
        self.authenticated = Some(user.clone());
        self.event(SmtpEvent::Security(SecurityEvent::Authenticated {
            user,
            mechanism,
        }));
        self.reply(Reply::new(235, "2.7.0 Authentication successful"));
    }

    /// Answers [`SmtpRequest::CheckRecipient`]: whether the user exists.
    pub fn answer_recipient(&mut self, known: bool) {
        let user = match &self.pending {
            Some(Pending::Recipient(r)) => r.user.clone(),
            _ => return,
        };
        self.answer_recipient_mailbox(known.then_some(user));
    }

    /// Like [`Self::answer_recipient`], naming the mailbox the mail goes to (`None`: no such
    /// recipient), which may differ from the address's user: `postmaster` is an alias.
    pub fn answer_recipient_mailbox(&mut self, mailbox: Option<String>) {
        let Some(Pending::Recipient(mut recipient)) = self.pending.take() else {
            return;
        };
        let Some(mailbox) = mailbox else {
            let text = format!("5.1.1 <{}>: no such user here", recipient.address);
            self.refuse_recipient(recipient.address, Reply::new(550, text));
            return;
        };
        recipient.user = mailbox;
        let address = recipient.address.clone();
        if let Some(envelope) = self.envelope.as_mut() {
            let duplicate = envelope
                .recipients
                .iter()
                .any(|r| r.address.eq_ignore_ascii_case(&recipient.address));
            if !duplicate {
                envelope.recipients.push(recipient);
            }
        }
        let text = match &self.replies.rcpt {
            Some(t) => joined("2.1.5", &render(t, &[("address", &address)])),
            None => format!("2.1.5 Recipient <{address}> OK"),
        };
        self.reply(Reply::new(250, text));
        self.event(SmtpEvent::RecipientAccepted { address });
        self.set_state(SmtpState::Rcpt);
    }

    /// Refuses a recipient with `reply`, and says so.
    fn refuse_recipient(&mut self, address: String, reply: Reply) {
        let code = reply.code;
        let text = reply.lines.first().cloned().unwrap_or_default();
        self.reply(reply);
        self.event(SmtpEvent::RecipientRefused {
            address,
            code,
            text,
        });
    }

    /// Answers [`SmtpRequest::Deliver`]: `Ok(())` once stored for every recipient, or why it
    /// failed (then "451 4.3.0" and the message is not accepted). Either way the transaction
    /// ends.
    pub fn answer_delivery(&mut self, result: Result<(), DeliveryError>) {
        let Some(Pending::Delivery { bytes }) = self.pending else {
            return;
        };
        self.pending = None;
        match result {
            Ok(()) => {
                let recipients = self
                    .envelope
                    .as_ref()
                    .map(|e| e.recipients.iter().map(|r| r.address.clone()).collect())
                    .unwrap_or_default();
                let text = match &self.replies.accepted {
                    Some(t) => joined("2.0.0", &render(t, &[])),
                    None => "2.0.0 Message accepted for delivery".to_string(),
                };
                self.reply(Reply::new(250, text));
                self.event(SmtpEvent::MessageDelivered { recipients, bytes });
            }
            Err(DeliveryError::Store { brief }) if !brief.trim().is_empty() => {
                let text = format!("4.3.0 Message not accepted: {}", brief.trim());
                self.reply(Reply::new(451, text));
            }
            Err(_) => {
                let text = "4.3.0 Local error in processing, message not accepted";
                self.reply(Reply::new(451, text));
            }
        }
        self.end_transaction();
    }

    /// The session state.
    pub fn state(&self) -> SmtpState {
        self.state
    }

    /// The transaction under way (from MAIL until the end of DATA or RSET), if any.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.state == SmtpState::Closed
    }

    /// The session's settings.
    pub fn config(&self) -> &SmtpConfig {
        &self.config
    }

    /// Bytes received but not yet processed. A driver may stop reading from the socket while
    /// a request is pending and this grows (nothing is processed until the answer).
    pub fn buffered_input(&self) -> usize {
        self.input.pending().len()
    }

    /// Bytes held for the input and the message content (for memory-bound tests).
    #[cfg(test)]
    pub(super) fn held_bytes(&self) -> usize {
        self.input.pending().len() + self.content.kept.len()
    }

    fn command_line(&mut self, line: Line) {
        let text = match line {
            Line::TooLong { len } => {
                self.event(SmtpEvent::CommandReceived {
                    line: format!("<{len} octets>"),
                });
                self.reply(Reply::new(500, "5.5.2 Line too long"));
                return;
            }
            Line::Complete { text, .. } => text,
        };
        self.event(SmtpEvent::CommandReceived {
            line: String::from_utf8_lossy(&text).into_owned(),
        });
        match split_command(&text) {
            Ok((verb, args)) => self.command(verb, args),
            Err(reply) => self.reply(reply),
        }
    }

    fn command(&mut self, verb: Verb, args: &str) {
        // The sequence is checked before the arguments (RFC 5321 section 4.3.2 lists 503
        // before 501 for each command).
        let sequence_error = match (verb, self.state) {
            (Verb::Mail, SmtpState::Connected) => Some("5.5.1 Send HELO/EHLO first"),
            (Verb::Mail, SmtpState::Mail | SmtpState::Rcpt) => {
                Some("5.5.1 Sender already specified")
            }
            (Verb::Rcpt, SmtpState::Connected | SmtpState::Ready) => {
                Some("5.5.1 Need MAIL before RCPT")
            }
            (Verb::Data, SmtpState::Connected | SmtpState::Ready) => {
                Some("5.5.1 Need MAIL before DATA")
            }
            (Verb::Data, SmtpState::Mail) => Some("5.5.1 No valid recipients"),
            // RFC 4954 section 4: AUTH is not permitted during a mail transaction, nor after
            // a successful AUTH.
            (Verb::Auth, SmtpState::Mail | SmtpState::Rcpt) => {
                Some("5.5.1 AUTH not permitted during a mail transaction")
            }
            (Verb::Auth, _) if self.authenticated.is_some() => Some("5.5.1 Already authenticated"),
            (Verb::Auth, SmtpState::Connected) => Some("5.5.1 Send EHLO first"),
            _ => None,
        };
        if let Some(text) = sequence_error {
            self.reply(Reply::new(503, text));
            return;
        }
        match Command::from_parts(verb, args) {
            Ok(command) => self.execute(command),
            Err(reply) => self.reply(reply),
        }
    }

    fn execute(&mut self, command: Command) {
        match command {
            Command::Helo(domain) => {
                let reply = Reply::new(250, self.helo_line(&domain));
                self.greeted(domain, false, reply);
            }
            Command::Ehlo(domain) => {
                let mut lines = vec![
                    self.helo_line(&domain),
                    "PIPELINING".to_string(),
                    format!("SIZE {}", self.config.max_message_size),
                    "8BITMIME".to_string(),
                    "ENHANCEDSTATUSCODES".to_string(),
                ];
                // RFC 3207 section 4.2: not offered again once TLS is on.
                if self.security.tls == TlsState::Offered {
                    lines.push("STARTTLS".to_string());
                }
                // RFC 4954 section 3: the AUTH keyword and the mechanisms.
                let mechanisms: Vec<&str> = self
                    .security
                    .advertised()
                    .iter()
                    .map(|m| m.name())
                    .collect();
                if !mechanisms.is_empty() {
                    lines.push(format!("AUTH {}", mechanisms.join(" ")));
                }
                self.greeted(domain, true, Reply::multiline(250, lines));
            }
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial.as_deref()),
            Command::Mail(mail) => {
                let too_big = mail
                    .size
                    .is_some_and(|n| n > self.config.max_message_size as u64);
                if too_big {
                    self.reply(Reply::new(
                        552,
                        format!(
                            "5.3.4 Message size exceeds fixed maximum message size ({} octets)",
                            self.config.max_message_size
                        ),
                    ));
                    return;
                }
                let sender = mail.path.address;
                let text = match &self.replies.mail {
                    Some(t) => joined("2.1.0", &render(t, &[("address", &sender)])),
                    None => format!("2.1.0 Sender <{sender}> OK"),
                };
                self.reply(Reply::new(250, text));
                self.event(SmtpEvent::SenderAccepted {
                    address: sender.clone(),
                });
                self.envelope = Some(Envelope {
                    helo: self.helo.clone(),
                    esmtp: self.esmtp,
                    tls: self.security.tls_active(),
                    authenticated: self.authenticated.is_some(),
                    reverse_path: sender,
                    recipients: Vec::new(),
                });
                self.set_state(SmtpState::Mail);
            }
            Command::Rcpt(path) => {
                let count = self.envelope.as_ref().map_or(0, |e| e.recipients.len());
                if count >= MAX_RECIPIENTS {
                    let reply = Reply::new(452, "4.5.3 Too many recipients");
                    self.refuse_recipient(path.address, reply);
                } else if !self.is_local(&path.domain) {
                    let text = format!(
                        "5.7.1 Relaying denied: <{}> is not a local address",
                        path.address
                    );
                    self.refuse_recipient(path.address, Reply::new(550, text));
                } else {
                    self.outputs
                        .push_back(SmtpOutput::Request(SmtpRequest::CheckRecipient {
                            user: path.user.clone(),
                            address: path.address.clone(),
                        }));
                    self.pending = Some(Pending::Recipient(Recipient {
                        address: path.address,
                        user: path.user,
                    }));
                }
            }
            Command::Data => {
                self.reply(Reply::new(354, "End data with <CR><LF>.<CR><LF>"));
                self.content = Content::default();
                self.input.set_mode(MAX_TEXT_LINE, Terminator::CrLf);
                self.set_state(SmtpState::Data);
            }
            Command::Rset => {
                self.reply(Reply::new(250, "2.0.0 OK"));
                self.envelope = None;
                if matches!(self.state, SmtpState::Mail | SmtpState::Rcpt) {
                    self.set_state(SmtpState::Ready);
                }
            }
            Command::Noop => self.reply(Reply::new(250, "2.0.0 OK")),
            Command::Vrfy(_) => self.reply(Reply::new(
                252,
                "2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Quit => {
                let text = match &self.replies.quit {
                    Some(t) => joined("2.0.0", &render(t, &[])),
                    None => format!("2.0.0 {} closing connection", self.config.hostname),
                };
                self.reply(Reply::new(221, text));
                self.envelope = None;
                self.input = LineBuffer::new(MAX_COMMAND_LINE, Terminator::CrLfOrLf);
                self.set_state(SmtpState::Closed);
                self.outputs.push_back(SmtpOutput::Close);
            }
            Command::NotImplemented(_) => {
                self.reply(Reply::new(502, "5.5.1 Command not implemented"));
            }
        }
    }

    /// The reply to HELO, or the first line of EHLO's: the server's domain first (RFC 5321
    /// section 4.1.1.1), then the text.
    fn helo_line(&self, domain: &str) -> String {
        let host = &self.config.hostname;
        match &self.replies.helo {
            Some(t) => joined(host, &render(t, &[("domain", domain)])),
            None => format!("{host} Hello {domain}"),
        }
    }

    /// HELO/EHLO accepted: a new session start, any transaction is dropped.
    fn greeted(&mut self, domain: String, esmtp: bool, reply: Reply) {
        self.reply(reply);
        self.helo = Some(domain);
        self.esmtp = esmtp;
        self.envelope = None;
        self.set_state(SmtpState::Ready);
    }

    fn is_local(&self, domain: &str) -> bool {
        domain.is_empty()
            || domain.eq_ignore_ascii_case("localhost")
            || domain == "[127.0.0.1]"
            || self
                .config
                .local_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }

    fn content_line(&mut self, line: Line) {
        let max = self.config.max_message_size;
        let c = &mut self.content;
        match line {
            Line::Complete { text, .. } => {
                if text.as_slice() == b"." {
                    self.end_of_content();
                    return;
                }
                let unstuffed = match text.strip_prefix(b".") {
                    Some(rest) => rest,
                    None => text.as_slice(),
                };
                c.lines += 1;
                c.bytes = c.bytes.saturating_add(unstuffed.len()).saturating_add(2);
                if c.bytes > max {
                    c.too_big = true;
                }
                if c.too_big || c.line_too_long {
                    c.kept = Vec::new();
                } else {
                    c.kept.extend_from_slice(unstuffed);
                    c.kept.extend_from_slice(b"\r\n");
                }
            }
            Line::TooLong { len } => {
                c.lines += 1;
                c.bytes = c.bytes.saturating_add(len).saturating_add(2);
                c.too_big |= c.bytes > max;
                c.line_too_long = true;
                c.kept = Vec::new();
            }
        }
    }

    fn end_of_content(&mut self) {
        let content = std::mem::take(&mut self.content);
        self.input.set_mode(MAX_COMMAND_LINE, Terminator::CrLfOrLf);
        self.event(SmtpEvent::ContentReceived {
            bytes: content.bytes,
            lines: content.lines,
        });
        if content.line_too_long {
            self.reply(Reply::new(500, "5.5.6 Message line too long"));
            self.end_transaction();
        } else if content.too_big {
            self.reply(Reply::new(552, "5.3.4 Message too big"));
            self.end_transaction();
        } else {
            let envelope = self.envelope.clone().unwrap_or(Envelope {
                helo: self.helo.clone(),
                esmtp: self.esmtp,
                tls: self.security.tls_active(),
                authenticated: self.authenticated.is_some(),
                reverse_path: String::new(),
                recipients: Vec::new(),
            });
            self.pending = Some(Pending::Delivery {
                bytes: content.kept.len(),
            });
            self.outputs
                .push_back(SmtpOutput::Request(SmtpRequest::Deliver {
                    envelope,
                    content: content.kept,
                }));
        }
    }

    /// STARTTLS (RFC 3207 section 4).
    fn starttls(&mut self) {
        match self.security.tls {
            TlsState::Unavailable => {
                self.reply(Reply::new(454, "4.7.0 TLS not available: no certificate"));
            }
            TlsState::Active => self.reply(Reply::new(503, "5.5.1 TLS already active")),
            TlsState::Offered => {
                self.reply(Reply::new(220, "2.0.0 Ready to start TLS"));
                // What the client sent after STARTTLS, in clear, is dropped unread
                // (CVE-2011-0411), and everything learnt before TLS is forgotten: the EHLO
                // argument, any transaction (RFC 3207 section 4.2).
                let discarded = self.input.discard_pending();
                self.event(SmtpEvent::Security(SecurityEvent::TlsRequested {
                    discarded,
                }));
                self.helo = None;
                self.esmtp = false;
                self.envelope = None;
                self.authenticated = None;
                self.set_state(SmtpState::Connected);
                self.pending = Some(Pending::StartTls);
                self.outputs
                    .push_back(SmtpOutput::Request(SmtpRequest::StartTls));
            }
        }
    }

    /// AUTH (RFC 4954 section 4); the sequence is checked already.
    fn auth(&mut self, name: &str, initial: Option<&str>) {
        let Some(mechanism) =
            Mechanism::from_name(name).filter(|m| self.security.mechanisms.contains(m))
        else {
            self.reply(Reply::new(504, "5.5.4 Unrecognized authentication type"));
            return;
        };
        if mechanism.sends_password() && !self.security.passwords_allowed() {
            // RFC 4954 section 6.
            self.reply(Reply::new(
                538,
                "5.7.11 Encryption required for requested authentication mechanism",
            ));
            return;
        }
        let initial = match initial.map(sasl::decode).transpose() {
            Ok(initial) => initial,
            Err(e) => {
                self.sasl_failed(mechanism, &e);
                return;
            }
        };
        let host = self.config.hostname.clone();
        let (exchange, step) =
            SaslExchange::start(mechanism, initial, &self.security.params, &host);
        self.sasl = Some(exchange);
        self.input.set_mode(MAX_AUTH_LINE, Terminator::CrLfOrLf);
        self.sasl_step(mechanism, step);
    }

    /// A line during AUTH: a base64 response, `*` to cancel, or the empty answer to SCRAM's
    /// server-final message.
    fn sasl_line(&mut self, line: Line) {
        let text = match line {
            Line::Complete { text, .. } => String::from_utf8_lossy(&text).into_owned(),
            Line::TooLong { len } => {
                self.event(SmtpEvent::CommandReceived {
                    line: format!("<{len} octets>"),
                });
                self.sasl = None;
                self.scram_ack = None;
                self.input.set_mode(MAX_COMMAND_LINE, Terminator::CrLfOrLf);
                self.reply(Reply::new(
                    500,
                    "5.5.6 Authentication Exchange line is too long",
                ));
                return;
            }
        };
        self.event(SmtpEvent::CommandReceived { line: text.clone() });
        if let Some((user, mechanism)) = self.scram_ack.take() {
            self.input.set_mode(MAX_COMMAND_LINE, Terminator::CrLfOrLf);
            if text.is_empty() {
                self.auth_succeeded(user, mechanism);
            } else {
                self.sasl_failed(mechanism, &SaslError::Cancelled);
            }
            return;
        }
        let Some(mut exchange) = self.sasl.take() else {
            return;
        };
        let mechanism = exchange.mechanism();
        let step = if text.trim() == "*" {
            SaslStep::Failed(SaslError::Cancelled)
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
                self.input.set_mode(MAX_COMMAND_LINE, Terminator::CrLfOrLf);
                self.pending = Some(Pending::Auth {
                    user: user.clone(),
                    mechanism,
                });
                self.outputs
                    .push_back(SmtpOutput::Request(SmtpRequest::Authenticate {
                        user,
                        credential,
                    }));
            }
            SaslStep::Failed(e) => {
                self.sasl = None;
                self.input.set_mode(MAX_COMMAND_LINE, Terminator::CrLfOrLf);
                self.sasl_failed(mechanism, &e);
            }
        }
    }

    /// The exchange broke before a password was checked (RFC 4954 section 4: `*` gets 501,
    /// so does a response that is not base64).
    fn sasl_failed(&mut self, mechanism: Mechanism, why: &SaslError) {
        self.event(SmtpEvent::Security(SecurityEvent::AuthFailed {
            user: None,
            mechanism,
        }));
        let reply = match why {
            SaslError::Cancelled => Reply::new(501, "5.0.0 Authentication cancelled"),
            SaslError::BadBase64 => Reply::new(501, "5.5.2 Cannot decode response: not base64"),
            other => Reply::new(535, format!("5.7.8 Authentication failed: {other}")),
        };
        self.reply(reply);
    }

    /// A SASL challenge: `334 ` and the base64 of the bytes (RFC 4954 section 4; the space
    /// stays when the challenge is empty).
    fn challenge(&mut self, bytes: &[u8]) {
        let text = sasl::encode(bytes);
        self.outputs
            .push_back(SmtpOutput::Write(format!("334 {text}\r\n").into_bytes()));
        self.event(SmtpEvent::ReplySent { code: 334, text });
    }

    /// The transaction is over (delivered or not): back to Ready.
    fn end_transaction(&mut self) {
        self.envelope = None;
        self.set_state(SmtpState::Ready);
    }

    fn reply(&mut self, reply: Reply) {
        self.outputs.push_back(SmtpOutput::Write(reply.to_bytes()));
        self.event(SmtpEvent::ReplySent {
            code: reply.code,
            text: reply.text(),
        });
    }

    fn event(&mut self, event: SmtpEvent) {
        self.outputs.push_back(SmtpOutput::Event(event));
    }

    fn set_state(&mut self, to: SmtpState) {
        let from = self.state;
        if from != to {
            self.state = to;
            self.event(SmtpEvent::StateChanged { from, to });
        }
    }
}

#[cfg(test)]
mod error_tests {
    use super::DeliveryError;

    #[test]
    fn delivery_errors_read_as_the_clause_of_a_reply() {
        let store = DeliveryError::Store {
            brief: "disk full".into(),
        };
        assert_eq!(store.to_string(), "disk full");
        assert_eq!(
            DeliveryError::Internal.to_string(),
            "local error in processing"
        );
    }
}
