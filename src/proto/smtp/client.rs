//! The SMTP client machine: commands and message content in, bytes to write out; bytes in,
//! parsed replies out.
//!
//! [`SmtpClient`] expects the 220 greeting first, then one reply per command sent, in order.
//! A reply is one or more lines `250-text` ... `250 text` with the same three-digit code
//! (RFC 5321 section 4.2). Two conveniences of a real client are built in:
//! - an EHLO answered with 5xx is retried as HELO with the same domain (RFC 5321 section
//!   3.2), and both replies are reported;
//! - [`SmtpClient::send_content`] (allowed once DATA got its 354) writes the message with
//!   every line end made CRLF, lines starting with "." doubled, and the final CRLF.CRLF.
//!
//! A broken server never makes the machine hang or panic: an over-long line, an over-long
//! reply, a line without a valid code, a code that changes inside a multi-line reply, a line
//! nobody asked for, or the connection closing before a reply is complete each produce one
//! error event, after which the machine stops reading.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::ops::Range;

use super::reply::Reply;
use crate::proto::line::{ClientInput, Line, LineBuffer, LineReader, Terminator};
use crate::proto::pop3::client::excerpt;
use crate::proto::{ClientMachine, Output, Protocol, closed_before_reply, unsolicited_line};

/// The longest reply line accepted, line end excluded (RFC 5321 allows 512 octets).
pub const MAX_REPLY_LINE: usize = 64 * 1024;
/// The largest reply accepted, all lines together, in octets.
pub const MAX_REPLY_OCTETS: usize = 64 * 1024 * 1024;

/// A command the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// `EHLO domain`
    Ehlo(String),
    /// `HELO domain`
    Helo(String),
    /// `MAIL FROM:<address>` (`""` gives the null path `<>`)
    MailFrom(String),
    /// `RCPT TO:<address>`
    RcptTo(String),
    /// `DATA`
    Data,
    /// `RSET`
    Rset,
    /// `NOOP`
    Noop,
    /// `QUIT`
    Quit,
    /// `STARTTLS` (RFC 3207 section 4).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 section 4); the initial response is
    /// base64 as sent (`=` for an empty one).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

impl fmt::Display for ClientCommand {
    /// The command line as sent, without CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ehlo(domain) => write!(f, "EHLO {domain}"),
            Self::Helo(domain) => write!(f, "HELO {domain}"),
            Self::MailFrom(address) => write!(f, "MAIL FROM:<{address}>"),
            Self::RcptTo(address) => write!(f, "RCPT TO:<{address}>"),
            Self::Data => f.write_str("DATA"),
            Self::Rset => f.write_str("RSET"),
            Self::Noop => f.write_str("NOOP"),
            Self::Quit => f.write_str("QUIT"),
            Self::StartTls => f.write_str("STARTTLS"),
            Self::Auth {
                mechanism,
                initial: Some(initial),
            } => write!(f, "AUTH {mechanism} {initial}"),
            Self::Auth {
                mechanism,
                initial: None,
            } => write!(f, "AUTH {mechanism}"),
        }
    }
}

/// What a reply answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTo {
    /// The greeting sent when the connection opens.
    Greeting,
    /// A command.
    Command(ClientCommand),
    /// The message content and its final "." line, sent after DATA's 354.
    MessageContent,
    /// Nothing: a 421 the server sent on its own before closing (RFC 5321 section 3.8).
    Unsolicited,
    /// The client's answer to a 334 challenge of AUTH `mechanism` (RFC 4954 section 4).
    SaslResponse { mechanism: String },
}

impl fmt::Display for ReplyTo {
    /// What the client waits for, in words: "the greeting", "the reply to RCPT TO:<a@b>".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Greeting => f.write_str("the greeting"),
            // AUTH's initial response is base64, which is no protection: not repeated.
            Self::Command(ClientCommand::Auth { mechanism, .. }) => {
                write!(f, "the reply to AUTH {mechanism}")
            }
            Self::Command(c) => write!(f, "the reply to {c}"),
            Self::SaslResponse { mechanism } => {
                write!(f, "the reply to the AUTH {mechanism} response")
            }
            Self::MessageContent => f.write_str("the reply to the message content"),
            Self::Unsolicited => f.write_str("a 421 the server sent on its own"),
        }
    }
}

/// One complete reply and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    /// The code and text lines.
    pub reply: Reply,
    /// What it answers.
    pub reply_to: ReplyTo,
    /// Where the reply lies in the server's byte stream (0 is the first byte the server
    /// sent): its first line up to the line end of its last line.
    pub stream: Range<u64>,
}

impl SmtpReply {
    /// The three-digit code.
    pub fn code(&self) -> u16 {
        self.reply.code
    }

    /// Whether the code is 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        self.reply.is_positive()
    }

    /// The reply as sent, lines joined with `"\n"`: `"250-a Hello\n250 SIZE 5"`.
    pub fn wire_text(&self) -> String {
        let bytes = self.reply.to_bytes();
        String::from_utf8_lossy(&bytes)
            .trim_end()
            .replace("\r\n", "\n")
    }
}

/// What the driver must do next: write to the server, or take an event: a complete reply,
/// or the error after which the machine reads no more (the server broke the protocol or the
/// connection).
pub type SmtpClientOutput = Output<Result<SmtpReply, SmtpClientError>, Infallible>;

impl LineReader for SmtpClient {
    const PROTOCOL: Protocol = Protocol::Smtp;
    type Reply = SmtpReply;
    type Error = SmtpClientError;

    fn parts(&mut self) -> (&mut VecDeque<SmtpClientOutput>, &mut ClientInput) {
        (&mut self.outputs, &mut self.input)
    }

    fn handle_line(&mut self, line: Line) {
        // RFC 3207 section 4: until the handshake is done nothing is read in clear.
        if self.input.drop_line_before_tls(&line) {
            return;
        }
        let text = match line {
            Line::TooLong { len } => {
                let (awaiting, max) = (self.awaiting_text(), self.max_line);
                return self.fail(SmtpClientError::LineTooLong { awaiting, len, max });
            }
            Line::Complete { text, .. } => text,
        };
        if self.awaiting.is_empty() {
            // RFC 5321 section 3.8: a server that must shut down may send 421 at any time,
            // then close; that is a reply, not a broken server.
            if parse_reply_line(&text).is_some_and(|(code, ..)| code == 421) {
                self.awaiting.push_back(ReplyTo::Unsolicited);
            } else {
                let line = excerpt(&text);
                return self.fail(SmtpClientError::UnsolicitedLine { line });
            }
        }
        let Some((code, last, rest)) = parse_reply_line(&text) else {
            let (awaiting, line) = (self.awaiting_text(), excerpt(&text));
            let error = SmtpClientError::NotAReplyLine { awaiting, line };
            if self.go_on_after_bad_lines {
                // What was awaited is answered (badly); the next line answers the next.
                self.partial = None;
                self.awaiting.pop_front();
                self.outputs.push_back(Output::Event(Err(error)));
                return;
            }
            return self.fail(error);
        };
        let mut partial = self.partial.take().unwrap_or(Partial {
            code,
            lines: Vec::new(),
            octets: 0,
            start: self.input.line_start,
        });
        if partial.code != code {
            let (awaiting, line) = (self.awaiting_text(), excerpt(&text));
            let first = partial.code;
            return self.fail(SmtpClientError::CodeChanged {
                awaiting,
                first,
                line,
            });
        }
        partial.octets += text.len() + 2;
        if partial.octets > self.max_reply_octets {
            let (awaiting, max) = (self.awaiting_text(), self.max_reply_octets);
            return self.fail(SmtpClientError::ReplyTooLong { awaiting, max });
        }
        partial
            .lines
            .push(String::from_utf8_lossy(rest).into_owned());
        if last {
            let stream = partial.start..self.input.buf.position();
            self.finish(Reply::multiline(partial.code, partial.lines), stream);
        } else {
            self.partial = Some(partial);
        }
    }

    fn handle_eof(&mut self) {
        let Some(awaiting) = self.waiting_for() else {
            self.input.ended = true;
            return;
        };
        if let Some(p) = self.partial.take() {
            let lines = p.lines.len();
            return self.fail(SmtpClientError::ClosedMidReply { awaiting, lines });
        }
        let pending = self.input.buf.pending();
        let partial = (!pending.is_empty()).then(|| excerpt(pending));
        self.fail(SmtpClientError::ClosedBeforeReply { awaiting, partial });
    }
}

impl ClientMachine for SmtpClient {
    type Reply = SmtpReply;
    type Error = SmtpClientError;

    fn waiting_for(&self) -> Option<String> {
        self.awaiting.front().map(ToString::to_string)
    }

    fn is_ended(&self) -> bool {
        self.input.ended
    }

    fn progress(&self) -> Option<String> {
        let pending = self.input.buf.pending();
        let unended = (!pending.is_empty()).then(|| {
            format!(
                "{} without a line end (RFC 5321 section 2.3.8: every line ends with CRLF)",
                crate::proto::quoted(pending)
            )
        });
        let Some(p) = &self.partial else {
            return unended;
        };
        let lines = p.lines.len();
        let mut text = format!(
            "{lines} line{} of a {} reply, all \"{}-\", but not its last line (RFC 5321 \
             section 4.2.1: the last line has a space after the code)",
            if lines == 1 { "" } else { "s" },
            p.code,
            p.code
        );
        if let Some(u) = unended {
            text.push_str(&format!("; then {u}"));
        }
        Some(text)
    }
}

/// Why a session failed or something could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpClientError {
    /// A line longer than the limit arrived.
    LineTooLong {
        awaiting: String,
        len: usize,
        max: usize,
    },
    /// A multi-line reply grew past the limit.
    ReplyTooLong { awaiting: String, max: usize },
    /// A line that does not begin with a reply code and a separator.
    NotAReplyLine { awaiting: String, line: String },
    /// A line of a multi-line reply carries another code than the first line.
    CodeChanged {
        awaiting: String,
        first: u16,
        line: String,
    },
    /// The server sent a line while no reply was expected.
    UnsolicitedLine { line: String },
    /// The connection closed before a reply began.
    ClosedBeforeReply {
        awaiting: String,
        partial: Option<String>,
    },
    /// The connection closed inside a multi-line reply.
    ClosedMidReply { awaiting: String, lines: usize },
    /// Something was sent after QUIT, after the connection closed or after an error.
    SessionEnded { what: String },
    /// A command argument holds CR or LF, which would split it into several commands.
    InvalidArgument { command: String },
    /// Message content was given although the server has not answered DATA with 354.
    NotReadyForContent,
    /// A command was given while the server waits for the message content after 354.
    ContentExpected { command: String },
    /// A command was given while the server waits for the answer to its 334 challenge
    /// (RFC 4954 section 4: the next line the client sends is that answer).
    AuthInProgress { command: String },
    /// An AUTH response was given although no 334 challenge waits for one.
    NoChallenge,
    /// A command was given after the server's 220 to STARTTLS and before the TLS
    /// handshake (RFC 3207 section 4: the negotiation starts at once).
    TlsPending { command: String },
}

impl fmt::Display for SmtpClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong { awaiting, len, max } => write!(
                f,
                "The server sent a line of {len} octets or more while we waited for {awaiting}; \
                 lines longer than {max} octets are refused."
            ),
            Self::ReplyTooLong { awaiting, max } => write!(
                f,
                "The server's reply grew past {max} octets while we waited for {awaiting}; \
                 the rest was refused."
            ),
            Self::NotAReplyLine { awaiting, line } => write!(
                f,
                "The server sent \"{line}\" while we waited for {awaiting}; an SMTP reply \
                 line must begin with a three-digit code (2xx to 5xx) followed by a space, a \
                 hyphen or the line end (RFC 5321 section 4.2)."
            ),
            Self::CodeChanged {
                awaiting,
                first,
                line,
            } => write!(
                f,
                "The server sent \"{line}\" inside a multi-line reply that began with code \
                 {first} while we waited for {awaiting}; every line of a reply must carry the \
                 same code (RFC 5321 section 4.2.1)."
            ),
            Self::UnsolicitedLine { line } => unsolicited_line(f, line),
            Self::ClosedBeforeReply { awaiting, partial } => {
                closed_before_reply(f, awaiting, partial.as_deref())
            }
            Self::ClosedMidReply { awaiting, lines } => write!(
                f,
                "The server closed the connection in the middle of {awaiting}, after {lines} \
                 line{} of a multi-line reply and before its last line.",
                if *lines == 1 { "" } else { "s" }
            ),
            Self::SessionEnded { what } => {
                write!(f, "Cannot send {what}: the session has already ended.")
            }
            Self::InvalidArgument { command } => write!(
                f,
                "Cannot send {command}: an argument holds a CR or LF, which would split the \
                 command line."
            ),
            Self::NotReadyForContent => write!(
                f,
                "Cannot send the message content: the server has not answered DATA with 354."
            ),
            Self::ContentExpected { command } => write!(
                f,
                "Cannot send {command}: the server waits for the message content after its \
                 354 reply to DATA."
            ),
            Self::AuthInProgress { command } => write!(
                f,
                "Cannot send {command}: the server waits for the answer to its 334 challenge \
                 (RFC 4954 section 4); answer it, or send \"*\" to cancel."
            ),
            Self::NoChallenge => write!(
                f,
                "Cannot send an AUTH response: the server has sent no 334 challenge."
            ),
            Self::TlsPending { command } => write!(
                f,
                "Cannot send {command}: the server answered STARTTLS with 220, so the TLS \
                 handshake comes first (RFC 3207 section 4)."
            ),
        }
    }
}

impl std::error::Error for SmtpClientError {}

/// A multi-line reply being read.
#[derive(Debug, Clone)]
struct Partial {
    code: u16,
    lines: Vec<String>,
    octets: usize,
    /// Where its first line began in the server's byte stream.
    start: u64,
}

/// One SMTP client session.
#[derive(Debug, Clone)]
pub struct SmtpClient {
    /// Bytes from the server, cut into lines.
    input: ClientInput,
    outputs: VecDeque<SmtpClientOutput>,
    /// Replies still to come, oldest first.
    awaiting: VecDeque<ReplyTo>,
    partial: Option<Partial>,
    greeting: Option<Reply>,
    extensions: Vec<String>,
    helo_fallback: bool,
    /// DATA got 354 and the content has not been sent yet.
    content_expected: bool,
    max_line: usize,
    max_reply_octets: usize,
    quit_sent: bool,
    /// See [`SmtpClient::go_on_after_bad_reply_lines`].
    go_on_after_bad_lines: bool,
    /// The mechanism of an AUTH exchange whose last 334 challenge still needs an answer.
    sasl_open: Option<String>,
}

impl Default for SmtpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl SmtpClient {
    /// A session that waits for the greeting, with the default limits and HELO fallback.
    pub fn new() -> Self {
        Self::with_limits(MAX_REPLY_LINE, MAX_REPLY_OCTETS)
    }

    /// A session with other limits (line length, reply size, in octets).
    pub fn with_limits(max_line: usize, max_reply_octets: usize) -> Self {
        Self {
            input: ClientInput::new(LineBuffer::new(max_line, Terminator::CrLfOrLf)),
            outputs: VecDeque::new(),
            awaiting: VecDeque::from([ReplyTo::Greeting]),
            partial: None,
            greeting: None,
            extensions: Vec::new(),
            helo_fallback: true,
            content_expected: false,
            max_line,
            max_reply_octets,
            quit_sent: false,
            go_on_after_bad_lines: false,
            sasl_open: None,
        }
    }

    /// Whether an EHLO answered with 5xx is retried as HELO (default: yes).
    pub fn set_helo_fallback(&mut self, on: bool) {
        self.helo_fallback = on;
    }

    /// Queues `command` to be written and expects its reply.
    pub fn send(&mut self, command: ClientCommand) -> Result<(), SmtpClientError> {
        let line = command.to_string();
        if self.quit_sent || self.input.eof || self.input.ended {
            return Err(SmtpClientError::SessionEnded { what: line });
        }
        if self.content_expected {
            return Err(SmtpClientError::ContentExpected { command: line });
        }
        let shown = || match &command {
            ClientCommand::Auth { mechanism, .. } => format!("AUTH {mechanism}"),
            other => other.to_string(),
        };
        if self.sasl_open.is_some() {
            return Err(SmtpClientError::AuthInProgress { command: shown() });
        }
        if self.input.tls_pending() {
            return Err(SmtpClientError::TlsPending { command: shown() });
        }
        if line.contains(['\r', '\n']) {
            return Err(SmtpClientError::InvalidArgument {
                command: excerpt(line.as_bytes()),
            });
        }
        self.quit_sent = command == ClientCommand::Quit;
        self.write_command(command);
        Ok(())
    }

    /// Queues the message content after DATA got its 354: line ends made CRLF, lines that
    /// begin with "." doubled, a last line end added if missing, then ".\r\n".
    pub fn send_content(&mut self, content: &[u8]) -> Result<(), SmtpClientError> {
        if self.quit_sent || self.input.eof || self.input.ended {
            return Err(SmtpClientError::SessionEnded {
                what: "the message content".into(),
            });
        }
        if !self.content_expected {
            return Err(SmtpClientError::NotReadyForContent);
        }
        self.content_expected = false;
        self.outputs
            .push_back(Output::Write(stuff_message(content)));
        self.awaiting.push_back(ReplyTo::MessageContent);
        Ok(())
    }

    /// Gives up the reply being read (the server stopped before its last line): hands out
    /// the lines that arrived as a reply to what was awaited, and forgets it, so the next
    /// reply is read as the answer to the next command. `None` when no line had arrived; then
    /// what was awaited first is given up instead (its reply never came).
    ///
    /// Bytes after the last complete line (a line whose end never came) are given up with it:
    /// the reply's `stream` range covers them, and when no line had arrived and they hold a
    /// reply line, that line is handed out as the reply (`250 OK` without its CRLF).
    pub fn give_up_reply(&mut self) -> Option<SmtpReply> {
        let unended = self.input.buf.take_pending();
        let end = self.input.buf.position();
        let reply_to = self.awaiting.pop_front()?;
        if let Some(p) = self.partial.take() {
            return Some(SmtpReply {
                reply: Reply::multiline(p.code, p.lines),
                reply_to,
                stream: p.start..end,
            });
        }
        let (code, _, text) = parse_reply_line(&unended)?;
        let reply = Reply::multiline(code, vec![String::from_utf8_lossy(text).into_owned()]);
        if reply_to == ReplyTo::Greeting {
            self.greeting = Some(reply.clone());
        }
        Some(SmtpReply {
            reply,
            reply_to,
            stream: end.saturating_sub(unended.len() as u64)..end,
        })
    }

    /// From now on a line without a reply code where a reply belongs is reported as an
    /// error event in place of the reply awaited, and the next line is read as the reply to
    /// the next command, instead of ending the session: for a console that shows a broken
    /// server's replies and goes on.
    pub fn go_on_after_bad_reply_lines(&mut self) {
        self.go_on_after_bad_lines = true;
    }

    /// The greeting, once it has arrived.
    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// The extension lines of the last positive EHLO reply (`PIPELINING`, `SIZE 10240000`).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Whether the server announced the extension `keyword` (any case) in its EHLO reply.
    pub fn supports(&self, keyword: &str) -> bool {
        self.extensions.iter().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
        })
    }

    /// Whether the server waits for the message content (DATA was answered with 354).
    pub fn content_expected(&self) -> bool {
        self.content_expected
    }

    /// Whether replies are still expected.
    pub fn is_waiting(&self) -> bool {
        !self.awaiting.is_empty()
    }

    /// Answers the server's last 334 challenge with `response` (one base64 line, RFC 4954
    /// section 4; an empty response is an empty line) and expects the next challenge or the
    /// final reply (235, 535...).
    pub fn send_sasl_response(&mut self, response: &[u8]) -> Result<(), SmtpClientError> {
        self.answer_challenge(crate::proto::sasl::encode(response))
    }

    /// Cancels the AUTH exchange: `*` instead of an answer (RFC 4954 section 4); the server
    /// answers 501.
    pub fn cancel_sasl(&mut self) -> Result<(), SmtpClientError> {
        self.answer_challenge("*".to_string())
    }

    /// Answers the server's last challenge with `line` as typed (base64, or `*` to cancel):
    /// for a console where a person types the AUTH exchange by hand.
    pub fn send_sasl_line(&mut self, line: &str) -> Result<(), SmtpClientError> {
        if line.contains(['\r', '\n']) {
            return Err(SmtpClientError::InvalidArgument {
                command: "an AUTH response".into(),
            });
        }
        self.answer_challenge(line.to_string())
    }

    fn answer_challenge(&mut self, line: String) -> Result<(), SmtpClientError> {
        if self.quit_sent || self.input.eof || self.input.ended {
            return Err(SmtpClientError::SessionEnded {
                what: "an AUTH response".into(),
            });
        }
        let mechanism = self.sasl_open.take().ok_or(SmtpClientError::NoChallenge)?;
        self.outputs
            .push_back(Output::Write(format!("{line}\r\n").into_bytes()));
        self.awaiting.push_back(ReplyTo::SaslResponse { mechanism });
        Ok(())
    }

    /// Whether the server's last 334 challenge waits for [`SmtpClient::send_sasl_response`].
    pub fn sasl_challenged(&self) -> bool {
        self.sasl_open.is_some()
    }

    /// Whether the server answered STARTTLS with 220 and the driver must make the TLS
    /// handshake now (RFC 3207 section 4), then call [`SmtpClient::tls_started`]. Until then
    /// nothing more is read; whatever the server had sent in clear after its 220 was thrown
    /// away ([`SmtpClient::discarded_before_tls`]).
    pub fn tls_requested(&self) -> bool {
        self.input.tls_pending()
    }

    /// How many octets the server sent in clear after its 220 to STARTTLS, thrown away.
    pub fn discarded_before_tls(&self) -> usize {
        self.input.discarded_before_tls()
    }

    /// The TLS handshake is done: replies are read again, and what the server said in
    /// clear is forgotten (RFC 3207 section 4.2: the client discards the EHLO extensions
    /// and should send EHLO again).
    pub fn tls_started(&mut self) {
        self.input.tls_started();
        self.extensions.clear();
    }

    fn write_command(&mut self, command: ClientCommand) {
        let bytes = format!("{command}\r\n").into_bytes();
        self.outputs.push_back(Output::Write(bytes));
        self.awaiting.push_back(ReplyTo::Command(command));
    }

    fn awaiting_text(&self) -> String {
        self.waiting_for().unwrap_or_else(|| "nothing".into())
    }

    fn finish(&mut self, reply: Reply, stream: Range<u64>) {
        let Some(reply_to) = self.awaiting.pop_front() else {
            return;
        };
        let code = reply.code;
        let fallback = match &reply_to {
            ReplyTo::Greeting => {
                self.greeting = Some(reply.clone());
                None
            }
            ReplyTo::Command(ClientCommand::Ehlo(domain)) => {
                if (200..300).contains(&code) {
                    self.extensions = reply.lines.iter().skip(1).cloned().collect();
                }
                let retry = self.helo_fallback && (500..600).contains(&code) && !self.quit_sent;
                retry.then(|| ClientCommand::Helo(domain.clone()))
            }
            ReplyTo::Command(ClientCommand::Data) => {
                self.content_expected = code == 354;
                None
            }
            ReplyTo::Command(ClientCommand::StartTls) if code == 220 => {
                // RFC 3207 section 4: the handshake starts right after the 220; anything the
                // server sent after it, in clear, is dropped unread.
                self.input.await_tls();
                None
            }
            ReplyTo::Command(ClientCommand::Auth { mechanism, .. })
            | ReplyTo::SaslResponse { mechanism }
                if code == 334 =>
            {
                self.sasl_open = Some(mechanism.clone());
                None
            }
            _ => None,
        };
        self.outputs.push_back(Output::Event(Ok(SmtpReply {
            reply,
            reply_to,
            stream,
        })));
        if let Some(helo) = fallback {
            self.write_command(helo);
        }
    }

    fn fail(&mut self, error: SmtpClientError) {
        self.input.ended = true;
        self.awaiting.clear();
        self.partial = None;
        self.content_expected = false;
        self.outputs.push_back(Output::Event(Err(error)));
    }
}

/// Splits a reply line into its code, whether it is the last line of the reply, and its
/// text. The code is three digits, the first 2 to 5; then a space (last line), a hyphen
/// (more lines follow) or the end of the line (last line, no text).
fn parse_reply_line(line: &[u8]) -> Option<(u16, bool, &[u8])> {
    let ([a, b, c], rest) = line.split_first_chunk::<3>()?;
    let digits = [*a, *b, *c];
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(a) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match rest.split_first() {
        None => Some((code, true, rest)),
        Some((b' ', text)) => Some((code, true, text)),
        Some((b'-', text)) => Some((code, false, text)),
        Some(_) => None,
    }
}

/// The message content as sent after DATA's 354: CRLF line ends (a bare LF or CR becomes
/// CRLF), a "." doubled at the start of a line, a last line end if missing, then ".\r\n".
/// Only the CRLF "." CRLF this adds can end the message (no SMTP smuggling).
pub fn stuff_message(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 32 + 5);
    let mut at_line_start = true;
    let mut bytes = content.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' | b'\n' => {
                if b == b'\r' && bytes.peek() == Some(&b'\n') {
                    bytes.next();
                }
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Machine;

    /// What one run produced.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Run {
        written: String,
        /// The replies, their stream ranges set aside in `streams`.
        replies: Vec<SmtpReply>,
        streams: Vec<Range<u64>>,
        errors: Vec<SmtpClientError>,
    }

    /// What the client does before the server's next bytes.
    #[derive(Clone)]
    enum Step {
        Nothing,
        Send(ClientCommand),
        Content(&'static [u8]),
    }

    /// Plays `turns`: each step's action, then the server's bytes that answer it, fed in
    /// chunks of `chunk` bytes; then EOF.
    fn run(turns: &[(Step, &[u8])], chunk: usize) -> Run {
        let mut client = SmtpClient::new();
        let mut run = Run {
            written: String::new(),
            replies: Vec::new(),
            streams: Vec::new(),
            errors: Vec::new(),
        };
        let mut drain = |client: &mut SmtpClient| {
            while let Some(out) = client.poll_output() {
                match out {
                    Output::Write(b) => run.written += &String::from_utf8_lossy(&b),
                    Output::Event(Ok(mut r)) => {
                        run.streams.push(std::mem::take(&mut r.stream));
                        run.replies.push(r);
                    }
                    Output::Event(Err(e)) => run.errors.push(e),
                    Output::Request(never) => match never {},
                    Output::Close => {}
                }
            }
        };
        for (step, input) in turns {
            match step {
                Step::Nothing => {}
                Step::Send(c) => client.send(c.clone()).unwrap(),
                Step::Content(c) => client.send_content(c).unwrap(),
            }
            drain(&mut client);
            for piece in input.chunks(chunk) {
                client.receive(piece);
                drain(&mut client);
            }
        }
        client.receive_eof();
        drain(&mut client);
        run
    }

    fn run_all_chunks(turns: &[(Step, &[u8])]) -> Run {
        let reference = run(turns, usize::MAX);
        let mut chunk = 1;
        while chunk <= 512 {
            assert_eq!(run(turns, chunk), reference, "chunk size {chunk}");
            chunk *= 2;
        }
        reference
    }

    fn send(c: ClientCommand) -> Step {
        Step::Send(c)
    }

    #[test]
    fn seed_session_with_ehlo_and_dot_stuffing() {
        let turns: [(Step, &[u8]); 8] = [
            (Step::Nothing, b"220 iitkgp.edu Service ready\r\n"),
            (
                send(ClientCommand::Ehlo("iit.edu".into())),
                b"250-iitkgp.edu Hello iit.edu\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n",
            ),
            (
                send(ClientCommand::MailFrom("ag@iit.edu".into())),
                b"250 <ag@iit.edu>... Sender ok\r\n",
            ),
            (
                send(ClientCommand::RcptTo("gb@iit.edu".into())),
                b"250 root... Recipient ok\r\n",
            ),
            (
                send(ClientCommand::RcptTo("c@iit.edu".into())),
                b"250 second ok\r\n",
            ),
            (
                send(ClientCommand::Data),
                b"354 End data with <CR><LF>.<CR><LF>\r\n",
            ),
            (
                Step::Content(b"Subject: hi\n\n.hidden line\n.\nlast"),
                b"250 OK Message accepted for delivery\r\n",
            ),
            (
                send(ClientCommand::Quit),
                b"221 iitkgp.edu closing connection\r\n",
            ),
        ];
        let r = run_all_chunks(&turns);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            r.written,
            "EHLO iit.edu\r\nMAIL FROM:<ag@iit.edu>\r\nRCPT TO:<gb@iit.edu>\r\n\
             RCPT TO:<c@iit.edu>\r\nDATA\r\n\
             Subject: hi\r\n\r\n..hidden line\r\n..\r\nlast\r\n.\r\nQUIT\r\n"
        );
        assert_eq!(r.replies.len(), 8);
        assert_eq!(r.replies[0].reply_to, ReplyTo::Greeting);
        assert_eq!(
            r.replies[1].reply.lines,
            vec!["iitkgp.edu Hello iit.edu", "PIPELINING", "SIZE 10240000"]
        );
        assert_eq!(
            r.replies[1].wire_text(),
            "250-iitkgp.edu Hello iit.edu\n250-PIPELINING\n250 SIZE 10240000"
        );
        assert_eq!(r.replies[5].code(), 354);
        assert_eq!(r.replies[6].reply_to, ReplyTo::MessageContent);
        assert_eq!(r.replies[7].code(), 221);
    }

    #[test]
    fn extensions_are_remembered() {
        let mut c = SmtpClient::new();
        c.send(ClientCommand::Ehlo("me".into())).unwrap();
        c.receive(b"220 hi\r\n250-x Hello\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
        while c.poll_output().is_some() {}
        assert!(c.supports("pipelining"));
        assert!(c.supports("SIZE"));
        assert!(!c.supports("STARTTLS"));
        assert_eq!(c.extensions(), ["PIPELINING", "SIZE 100"]);
    }

    #[test]
    fn ehlo_refused_falls_back_to_helo() {
        let r = run_all_chunks(&[
            (Step::Nothing, b"220 old server\r\n"),
            (
                send(ClientCommand::Ehlo("me.example".into())),
                b"500 Command unrecognized\r\n250 old Hello\r\n",
            ),
        ]);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.written, "EHLO me.example\r\nHELO me.example\r\n");
        assert_eq!(r.replies[1].code(), 500);
        assert_eq!(
            r.replies[2].reply_to,
            ReplyTo::Command(ClientCommand::Helo("me.example".into()))
        );
    }

    #[test]
    fn no_fallback_when_disabled_or_on_4xx() {
        let mut c = SmtpClient::new();
        c.set_helo_fallback(false);
        c.send(ClientCommand::Ehlo("me".into())).unwrap();
        c.receive(b"220 hi\r\n502 no\r\n");
        let writes = std::iter::from_fn(|| c.poll_output())
            .filter(|o| matches!(o, Output::Write(_)))
            .count();
        assert_eq!(writes, 1);
        let r = run_all_chunks(&[
            (Step::Nothing, b"220 hi\r\n"),
            (send(ClientCommand::Ehlo("me".into())), b"421 busy\r\n"),
        ]);
        assert_eq!(r.written, "EHLO me\r\n");
    }

    #[test]
    fn stuffing_and_line_ends() {
        assert_eq!(stuff_message(b""), b".\r\n");
        assert_eq!(stuff_message(b"a"), b"a\r\n.\r\n");
        assert_eq!(stuff_message(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(stuff_message(b".\r\n"), b"..\r\n.\r\n");
        // LF . LF and CR . CR must not end the message early (SMTP smuggling).
        assert_eq!(stuff_message(b"a\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff_message(b"a\r.\rb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff_message(b"x.y\r\n..z"), b"x.y\r\n...z\r\n.\r\n");
    }

    #[test]
    fn reply_codes_are_parsed_strictly() {
        assert_eq!(parse_reply_line(b"250 ok"), Some((250, true, &b"ok"[..])));
        assert_eq!(parse_reply_line(b"250-ok"), Some((250, false, &b"ok"[..])));
        assert_eq!(parse_reply_line(b"250"), Some((250, true, &b""[..])));
        for bad in [
            &b"25 ok"[..],
            b"2500 ok",
            b"250ok",
            b"abc ok",
            b"150 ok",
            b"650 ok",
            b"",
        ] {
            assert_eq!(
                parse_reply_line(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn garbage_instead_of_a_reply() {
        let r = run_all_chunks(&[(Step::Nothing, b"+OK POP3 server ready\r\n")]);
        assert_eq!(
            r.errors,
            vec![SmtpClientError::NotAReplyLine {
                awaiting: "the greeting".into(),
                line: "+OK POP3 server ready".into()
            }]
        );
        assert!(r.errors[0].to_string().starts_with(
            "The server sent \"+OK POP3 server ready\" while we waited for the greeting; an \
             SMTP reply line must begin with a three-digit code"
        ));
    }

    #[test]
    fn code_change_inside_a_multi_line_reply() {
        let r = run_all_chunks(&[
            (Step::Nothing, b"220 hi\r\n"),
            (
                send(ClientCommand::Ehlo("me".into())),
                b"250-a\r\n251 b\r\n",
            ),
        ]);
        assert_eq!(
            r.errors,
            vec![SmtpClientError::CodeChanged {
                awaiting: "the reply to EHLO me".into(),
                first: 250,
                line: "251 b".into()
            }]
        );
    }

    #[test]
    fn eof_mid_reply_and_before_reply() {
        let r = run_all_chunks(&[
            (Step::Nothing, b"220 hi\r\n"),
            (
                send(ClientCommand::Ehlo("me".into())),
                b"250-a\r\n250-b\r\n",
            ),
        ]);
        assert_eq!(
            r.errors[0].to_string(),
            "The server closed the connection in the middle of the reply to EHLO me, after 2 \
             lines of a multi-line reply and before its last line."
        );
        let r = run_all_chunks(&[
            (Step::Nothing, b"220 hi\r\n"),
            (send(ClientCommand::Data), b"35"),
        ]);
        assert_eq!(
            r.errors,
            vec![SmtpClientError::ClosedBeforeReply {
                awaiting: "the reply to DATA".into(),
                partial: Some("35".into())
            }]
        );
    }

    #[test]
    fn unsolicited_and_over_long_lines() {
        let r = run_all_chunks(&[(Step::Nothing, b"220 hi\r\n250 surprise\r\n")]);
        assert_eq!(
            r.errors,
            vec![SmtpClientError::UnsolicitedLine {
                line: "250 surprise".into()
            }]
        );
        let mut input = b"220-".to_vec();
        input.extend(vec![b'x'; MAX_REPLY_LINE]);
        input.extend_from_slice(b"\r\n220 hi\r\n");
        let r = run(&[(Step::Nothing, &input)], 1000);
        assert_eq!(
            r.errors,
            vec![SmtpClientError::LineTooLong {
                awaiting: "the greeting".into(),
                len: MAX_REPLY_LINE + 4,
                max: MAX_REPLY_LINE
            }]
        );
    }

    #[test]
    fn an_unsolicited_421_is_a_reply_any_other_line_is_not() {
        // RFC 5321 section 3.8: a server that must shut down may say 421 on its own.
        let mut c = SmtpClient::new();
        c.receive(b"220 hi\r\n421 4.3.2 shutting down\r\n");
        let outputs: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
        assert!(
            matches!(outputs.last(), Some(Output::Event(Ok(r))) if r.code() == 421
                && r.reply_to == ReplyTo::Unsolicited),
            "{outputs:?}"
        );
        let mut c = SmtpClient::new();
        c.receive(b"220 hi\r\n250 what\r\n");
        let outputs: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
        assert!(
            matches!(
                outputs.last(),
                Some(Output::Event(Err(SmtpClientError::UnsolicitedLine { .. })))
            ),
            "{outputs:?}"
        );
    }

    #[test]
    fn reply_size_is_limited() {
        let mut c = SmtpClient::with_limits(100, 50);
        for _ in 0..10 {
            c.receive(b"220-0123456789\r\n");
        }
        let last = std::iter::from_fn(|| c.poll_output()).last();
        assert_eq!(
            last,
            Some(Output::Event(Err(SmtpClientError::ReplyTooLong {
                awaiting: "the greeting".into(),
                max: 50
            })))
        );
    }

    #[test]
    fn content_only_after_354_and_commands_not_during_it() {
        let mut c = SmtpClient::new();
        assert_eq!(
            c.send_content(b"x"),
            Err(SmtpClientError::NotReadyForContent)
        );
        c.send(ClientCommand::Data).unwrap();
        c.receive(b"220 hi\r\n354 go ahead\r\n");
        while c.poll_output().is_some() {}
        assert!(c.content_expected());
        assert_eq!(
            c.send(ClientCommand::Quit).map_err(|e| e.to_string()),
            Err(
                "Cannot send QUIT: the server waits for the message content after its 354 \
                 reply to DATA."
                    .to_string()
            )
        );
        c.send_content(b"hello").unwrap();
        assert!(!c.content_expected());
    }

    #[test]
    fn data_refused_expects_no_content() {
        let mut c = SmtpClient::new();
        c.send(ClientCommand::Data).unwrap();
        c.receive(b"220 hi\r\n503 need RCPT first\r\n");
        while c.poll_output().is_some() {}
        assert!(!c.content_expected());
        assert!(!c.is_waiting());
    }

    #[test]
    fn refuses_injection_and_commands_after_quit() {
        let mut c = SmtpClient::new();
        assert!(matches!(
            c.send(ClientCommand::RcptTo("a@b>\r\nRCPT TO:<c@d".into())),
            Err(SmtpClientError::InvalidArgument { .. })
        ));
        c.send(ClientCommand::Quit).unwrap();
        assert_eq!(
            c.send(ClientCommand::Noop).map_err(|e| e.to_string()),
            Err("Cannot send NOOP: the session has already ended.".to_string())
        );
    }

    #[test]
    fn eof_after_quit_is_normal() {
        let r = run_all_chunks(&[
            (Step::Nothing, b"220 hi\r\n"),
            (send(ClientCommand::Quit), b"221 bye\r\n"),
        ]);
        assert!(r.errors.is_empty());
        assert_eq!(r.replies.len(), 2);
    }

    #[test]
    fn a_reply_line_given_up_without_its_end_is_the_reply_and_the_next_starts_fresh() {
        let mut c = SmtpClient::new();
        c.go_on_after_bad_reply_lines();
        c.receive(b"220 hi\r\n");
        c.send(ClientCommand::Noop).unwrap();
        c.send(ClientCommand::Noop).unwrap();
        c.send(ClientCommand::Noop).unwrap();
        let events = |c: &mut SmtpClient| -> Vec<Result<SmtpReply, SmtpClientError>> {
            std::iter::from_fn(|| c.poll_output())
                .filter_map(|o| match o {
                    Output::Event(e) => Some(e),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(events(&mut c).len(), 1);
        c.receive(b"250 ok");
        assert!(events(&mut c).is_empty());
        let first = c.give_up_reply().unwrap();
        assert_eq!((first.code(), first.stream.clone()), (250, 8..14));
        c.receive(b"OK\r\n251 fine\r\n");
        let got = events(&mut c);
        assert!(matches!(
            got.first(),
            Some(Err(SmtpClientError::NotAReplyLine { .. }))
        ));
        assert!(matches!(got.get(1), Some(Ok(r)) if r.code() == 251 && r.stream == (18..28)));
        assert!(!c.is_ended());
    }

    /// Everything the client writes now, and the replies and errors it hands out.
    fn outputs(c: &mut SmtpClient) -> (String, Vec<Result<SmtpReply, SmtpClientError>>) {
        let mut written = String::new();
        let mut events = Vec::new();
        while let Some(o) = c.poll_output() {
            match o {
                Output::Write(b) => written.push_str(&String::from_utf8_lossy(&b)),
                Output::Event(e) => events.push(e),
                _ => {}
            }
        }
        (written, events)
    }

    #[test]
    fn starttls_drops_plaintext_and_forgets_the_extensions() {
        let mut c = SmtpClient::new();
        c.send(ClientCommand::Ehlo("client.example".into()))
            .unwrap();
        c.receive(b"220 hi\r\n250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
        outputs(&mut c);
        assert!(c.supports("STARTTLS") && c.supports("AUTH"));
        c.send(ClientCommand::StartTls).unwrap();
        assert_eq!(outputs(&mut c).0, "STARTTLS\r\n");
        c.receive(b"220 go ahead\r\n250 injected\r\n");
        let (_, events) = outputs(&mut c);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(c.tls_requested());
        assert_eq!(c.discarded_before_tls(), 14);
        assert!(matches!(
            c.send(ClientCommand::Noop),
            Err(SmtpClientError::TlsPending { .. })
        ));
        c.tls_started();
        // RFC 3207 section 4.2: what the server said in clear is forgotten.
        assert!(c.extensions().is_empty() && !c.supports("AUTH"));
        c.send(ClientCommand::Ehlo("client.example".into()))
            .unwrap();
        c.receive(b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
        let (written, events) = outputs(&mut c);
        assert_eq!(written, "EHLO client.example\r\n");
        assert!(events[0].as_ref().is_ok_and(|r| r.code() == 250));
        assert!(c.supports("AUTH"));
        // A refused STARTTLS starts nothing.
        let mut c = SmtpClient::new();
        c.send(ClientCommand::StartTls).unwrap();
        c.receive(b"220 hi\r\n454 4.7.0 TLS not available\r\n");
        outputs(&mut c);
        assert!(!c.tls_requested());
    }

    #[test]
    fn bytes_handed_over_while_the_handshake_is_due_are_dropped() {
        // As the pop3_client fuzz target found for POP3: a NOOP pipelined behind STARTTLS,
        // and clear bytes fed after the 220 in a later receive, must not come out as its
        // reply while the handshake is due, nor half a clear line be finished after it.
        let mut c = SmtpClient::with_limits(200, 1000);
        c.receive(b"220 hi\r\n");
        outputs(&mut c);
        c.send(ClientCommand::StartTls).unwrap();
        c.send(ClientCommand::Noop).unwrap();
        outputs(&mut c);
        c.receive(b"220 go ahead\r\n");
        assert_eq!(outputs(&mut c).1.len(), 1);
        assert!(c.tls_requested());
        c.receive(b"250 injected\r\n");
        assert_eq!(
            outputs(&mut c).1,
            vec![],
            "a reply read in clear while the handshake was due"
        );
        assert_eq!(c.discarded_before_tls(), 14);
        c.receive(&[b'x'; 3000]);
        assert_eq!(outputs(&mut c).1, vec![]);
        assert_eq!(c.discarded_before_tls(), 3014);
        c.receive(b"250 fa");
        assert_eq!(outputs(&mut c).1, vec![]);
        c.tls_started();
        assert_eq!(c.discarded_before_tls(), 3020);
        c.receive(b"ke\r\n");
        let (_, got) = outputs(&mut c);
        assert!(
            matches!(&got[..], [Err(SmtpClientError::NotAReplyLine { line, .. })] if !line.contains("fa")),
            "{got:?}"
        );
    }

    #[test]
    fn auth_334_challenges_are_answered_until_235() {
        // RFC 4954 section 4's LOGIN-like shape: 334, a base64 line, 334, a line, 235.
        let mut c = SmtpClient::new();
        c.receive(b"220 hi\r\n");
        outputs(&mut c);
        let auth = ClientCommand::Auth {
            mechanism: "LOGIN".into(),
            initial: None,
        };
        c.send(auth).unwrap();
        assert_eq!(outputs(&mut c).0, "AUTH LOGIN\r\n");
        c.receive(b"334 VXNlcm5hbWU6\r\n");
        let (_, events) = outputs(&mut c);
        assert!(events[0].as_ref().is_ok_and(|r| r.code() == 334));
        assert!(c.sasl_challenged() && !c.is_waiting());
        assert!(matches!(
            c.send(ClientCommand::Noop),
            Err(SmtpClientError::AuthInProgress { .. })
        ));
        c.send_sasl_response(b"bob").unwrap();
        assert_eq!(outputs(&mut c).0, "Ym9i\r\n");
        assert_eq!(
            c.waiting_for().as_deref(),
            Some("the reply to the AUTH LOGIN response")
        );
        c.receive(b"334 UGFzc3dvcmQ6\r\n");
        outputs(&mut c);
        c.send_sasl_response(b"builder").unwrap();
        assert_eq!(outputs(&mut c).0, "YnVpbGRlcg==\r\n");
        c.receive(b"235 2.7.0 Authentication successful\r\n");
        let (_, events) = outputs(&mut c);
        assert!(events[0].as_ref().is_ok_and(|r| r.code() == 235));
        assert!(!c.sasl_challenged());
        assert_eq!(c.send_sasl_response(b""), Err(SmtpClientError::NoChallenge));
        // The initial response is never repeated in what the client waits for.
        c.send(ClientCommand::Auth {
            mechanism: "PLAIN".into(),
            initial: Some("AGJvYgBidWlsZGVy".into()),
        })
        .unwrap();
        assert_eq!(c.waiting_for().as_deref(), Some("the reply to AUTH PLAIN"));
        assert_eq!(outputs(&mut c).0, "AUTH PLAIN AGJvYgBidWlsZGVy\r\n");
    }
}
