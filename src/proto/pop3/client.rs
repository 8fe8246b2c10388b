//! The POP3 client machine: commands in, bytes to write out; bytes in, parsed replies out.
//!
//! [`Pop3Client`] knows the shape of every reply: the greeting first, then one reply per
//! command sent, in order (pipelining is allowed). A reply is one status line, `+OK` or
//! `-ERR`, followed for some commands (LIST, UIDL, RETR, TOP, CAPA, see
//! [`Command::has_multiline_reply`]) by dot-stuffed lines up to a line holding only ".".
//!
//! A broken server never makes the machine hang or panic: an over-long line, a reply that
//! grows past the limit, a line that is not a status line, a line nobody asked for, or the
//! connection closing before a reply is complete each produce one
//! error event, after which the machine stops reading.
//! The machine has no clock: timeouts belong to the driver ([`crate::client`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::ops::Range;

use super::command::Command;
use super::server::apop_digest;
use crate::proto::line::{ClientInput, Line, LineBuffer, LineReader, Terminator};
use crate::proto::{ClientMachine, Output, Protocol, closed_before_reply, unsolicited_line};

/// The longest reply line accepted, line end excluded (RFC 1939 allows 512 octets; real
/// servers and students' servers send longer message lines).
pub const MAX_REPLY_LINE: usize = 64 * 1024;
/// The largest multi-line reply body accepted, in octets after dot-unstuffing.
pub const MAX_REPLY_OCTETS: usize = 64 * 1024 * 1024;

/// One reply of the server, or its greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Reply {
    /// `+OK` (true) or `-ERR` (false).
    pub positive: bool,
    /// The text after the status indicator and its space, as sent (response code included).
    pub text: String,
    /// The RFC 2449 response code without brackets (`IN-USE`, `AUTH`, `SYS/TEMP`), if the
    /// text begins with one.
    pub resp_code: Option<String>,
    /// The lines of a multi-line reply, dot-unstuffed, each ending in CRLF; `None` for a
    /// single-line reply.
    pub body: Option<Vec<u8>>,
    /// The command this reply answers; `None` for the greeting.
    pub command: Option<Command>,
    /// Where the reply lies in the server's byte stream (0 is the first byte the server
    /// sent): its status line up to the line end of its last line.
    pub stream: Range<u64>,
    /// A continuation of an AUTH exchange (`+ ` and a base64 challenge, RFC 5034 section 4)
    /// rather than a reply: `text` is the challenge as sent, and the client must answer it
    /// ([`Pop3Client::send_sasl_response`]) before anything else.
    pub continuation: bool,
}

impl Pop3Reply {
    /// The status line as sent, without its line end: `+OK 2 320` (`+ PDE4OT...>` for an
    /// AUTH continuation).
    pub fn status_line(&self) -> String {
        if self.continuation {
            return format!("+ {}", self.text);
        }
        let status = if self.positive { "+OK" } else { "-ERR" };
        if self.text.is_empty() {
            status.to_string()
        } else {
            format!("{status} {}", self.text)
        }
    }

    /// Whether this is the server's greeting.
    pub fn is_greeting(&self) -> bool {
        self.command.is_none()
    }

    /// The lines of the body, without their CRLF (none for a single-line reply).
    pub fn body_lines(&self) -> impl Iterator<Item = &[u8]> {
        let body = self.body.as_deref().unwrap_or_default();
        body.split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .take(body.iter().filter(|&&b| b == b'\n').count())
    }

    /// The body as text (invalid UTF-8 replaced), or `""` for a single-line reply.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }
}

/// What the driver must do next: write to the server, or take an event: a complete reply
/// (or the greeting), or the error after which the machine reads no more (the server broke
/// the protocol or the connection).
pub type Pop3ClientOutput = Output<Result<Pop3Reply, Pop3ClientError>, Infallible>;

impl LineReader for Pop3Client {
    const PROTOCOL: Protocol = Protocol::Pop3;
    type Reply = Pop3Reply;
    type Error = Pop3ClientError;

    fn parts(&mut self) -> (&mut VecDeque<Pop3ClientOutput>, &mut ClientInput) {
        (&mut self.outputs, &mut self.input)
    }

    fn handle_line(&mut self, line: Line) {
        // RFC 2595 section 4: until the handshake is done nothing is read in clear.
        if self.input.drop_line_before_tls(&line) {
            return;
        }
        let text = match line {
            Line::TooLong { len } => {
                let awaiting = self.waiting_for().unwrap_or_else(|| "nothing".into());
                let max = self.max_line;
                return self.fail(Pop3ClientError::LineTooLong { awaiting, len, max });
            }
            Line::Complete { text, .. } => text,
        };
        if self.partial.is_some() {
            self.body_line(&text);
            return;
        }
        match self.awaiting.pop_front() {
            None => self.fail(Pop3ClientError::UnsolicitedLine {
                line: excerpt(&text),
            }),
            Some(command) => self.status_line(&text, command),
        }
    }

    fn handle_eof(&mut self) {
        if let Some(p) = self.partial.take() {
            let awaiting = describe_awaited(p.reply.command.as_ref());
            let lines = p.lines;
            return self.fail(Pop3ClientError::ClosedMidReply { awaiting, lines });
        }
        match self.awaiting.front() {
            None => self.input.ended = true,
            Some(command) => {
                let awaiting = describe_awaited(command.as_ref());
                let pending = self.input.buf.pending();
                let partial = (!pending.is_empty()).then(|| excerpt(pending));
                self.fail(Pop3ClientError::ClosedBeforeReply { awaiting, partial });
            }
        }
    }
}

impl ClientMachine for Pop3Client {
    type Reply = Pop3Reply;
    type Error = Pop3ClientError;

    fn waiting_for(&self) -> Option<String> {
        if let Some(p) = &self.partial {
            return Some(describe_awaited(p.reply.command.as_ref()));
        }
        self.awaiting.front().map(|c| describe_awaited(c.as_ref()))
    }

    fn is_ended(&self) -> bool {
        self.input.ended
    }

    fn progress(&self) -> Option<String> {
        let pending = self.input.buf.pending();
        let unended = (!pending.is_empty()).then(|| {
            format!(
                "{} without a line end (RFC 1939 section 3: every line ends with CRLF)",
                crate::proto::quoted(pending)
            )
        });
        let Some(p) = &self.partial else {
            return unended;
        };
        let lines = p.lines;
        let mut text = format!(
            "\"{}\" and {lines} line{}, but no \".\" line (RFC 1939 section 3: a multi-line \
             reply ends with a line holding only \".\")",
            p.reply.status_line(),
            if lines == 1 { "" } else { "s" }
        );
        if let Some(u) = unended {
            text.push_str(&format!("; then {u}"));
        }
        Some(text)
    }
}

/// Why a session failed or a command could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pop3ClientError {
    /// A line longer than the limit arrived.
    LineTooLong {
        awaiting: String,
        len: usize,
        max: usize,
    },
    /// A multi-line reply grew past the limit.
    ReplyTooLong { awaiting: String, max: usize },
    /// A line that does not begin with `+OK` or `-ERR` arrived where a status line belongs.
    NotAStatusLine { awaiting: String, line: String },
    /// The server sent a line while no reply was expected.
    UnsolicitedLine { line: String },
    /// The connection closed before the status line of a reply.
    ClosedBeforeReply {
        awaiting: String,
        partial: Option<String>,
    },
    /// The connection closed inside a multi-line reply, before its "." line.
    ClosedMidReply { awaiting: String, lines: usize },
    /// A command was sent after QUIT, after the connection closed or after an error.
    SessionEnded { command: String },
    /// A command argument holds CR or LF, which would split it into several commands.
    InvalidCommand { command: String },
    /// APOP was asked for but the greeting carries no `<timestamp>`.
    NoApopTimestamp,
    /// A command was given while the server waits for the answer to its AUTH challenge
    /// (RFC 5034 section 4: the next line the client sends is that answer).
    AuthInProgress { command: String },
    /// An AUTH response was given although no challenge is waiting for one.
    NoChallenge,
    /// A command was given after the server accepted STLS and before the TLS handshake
    /// (RFC 2595 section 4: the client starts the negotiation at once).
    TlsPending { command: String },
}

impl fmt::Display for Pop3ClientError {
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
            Self::NotAStatusLine { awaiting, line } => {
                write!(
                    f,
                    "The server sent \"{line}\" while we waited for {awaiting}; "
                )?;
                if is_lower_case_status(line) {
                    write!(f, "RFC 1939 requires \"+OK\" and \"-ERR\" in upper case.")
                } else {
                    write!(
                        f,
                        "a POP3 reply must begin with \"+OK\" or \"-ERR\" (RFC 1939)."
                    )
                }
            }
            Self::UnsolicitedLine { line } => unsolicited_line(f, line),
            Self::ClosedBeforeReply { awaiting, partial } => {
                closed_before_reply(f, awaiting, partial.as_deref())
            }
            Self::ClosedMidReply { awaiting, lines } => write!(
                f,
                "The server closed the connection in the middle of {awaiting}, after {lines} \
                 line{} of the multi-line reply and before its final \".\" line.",
                if *lines == 1 { "" } else { "s" }
            ),
            Self::SessionEnded { command } => {
                write!(f, "Cannot send {command}: the session has already ended.")
            }
            Self::InvalidCommand { command } => write!(
                f,
                "Cannot send {command}: an argument holds a CR or LF, which would split the \
                 command line."
            ),
            Self::NoApopTimestamp => write!(
                f,
                "The server's greeting has no <timestamp>, so it does not offer APOP."
            ),
            Self::AuthInProgress { command } => write!(
                f,
                "Cannot send {command}: the server waits for the answer to its AUTH challenge \
                 (RFC 5034 section 4); answer it, or send \"*\" to cancel."
            ),
            Self::NoChallenge => write!(
                f,
                "Cannot send an AUTH response: the server has sent no \"+ \" challenge."
            ),
            Self::TlsPending { command } => write!(
                f,
                "Cannot send {command}: the server accepted STLS, so the TLS handshake comes \
                 first (RFC 2595 section 4)."
            ),
        }
    }
}

impl std::error::Error for Pop3ClientError {}

/// A multi-line reply being read.
#[derive(Debug, Clone)]
struct Partial {
    reply: Pop3Reply,
    body: Vec<u8>,
    lines: usize,
}

/// One POP3 client session.
#[derive(Debug, Clone)]
pub struct Pop3Client {
    /// Bytes from the server, cut into lines.
    input: ClientInput,
    outputs: VecDeque<Pop3ClientOutput>,
    /// Replies still to come, oldest first; `None` stands for the greeting.
    awaiting: VecDeque<Option<Command>>,
    partial: Option<Partial>,
    greeting: Option<Pop3Reply>,
    max_line: usize,
    max_reply_octets: usize,
    quit_sent: bool,
    /// See [`Pop3Client::go_on_after_bad_status_lines`].
    go_on_after_bad_status: bool,
    /// The mechanism of an AUTH exchange whose last challenge still needs an answer.
    sasl_open: Option<String>,
}

impl Default for Pop3Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Pop3Client {
    /// A session that waits for the greeting, with the default limits.
    pub fn new() -> Self {
        Self::with_limits(MAX_REPLY_LINE, MAX_REPLY_OCTETS)
    }

    /// A session with other limits (line length, multi-line reply size, in octets).
    pub fn with_limits(max_line: usize, max_reply_octets: usize) -> Self {
        Self {
            input: ClientInput::new(LineBuffer::new(max_line, Terminator::CrLfOrLf)),
            outputs: VecDeque::new(),
            awaiting: VecDeque::from([None]),
            partial: None,
            greeting: None,
            max_line,
            max_reply_octets,
            quit_sent: false,
            go_on_after_bad_status: false,
            sasl_open: None,
        }
    }

    /// Queues `command` to be written and expects its reply. Fails after QUIT, after the
    /// connection ended, and for arguments holding CR or LF.
    pub fn send(&mut self, command: Command) -> Result<(), Pop3ClientError> {
        if self.quit_sent || self.input.eof || self.input.ended {
            return Err(Pop3ClientError::SessionEnded {
                command: describe_command(&command),
            });
        }
        if self.sasl_open.is_some() {
            return Err(Pop3ClientError::AuthInProgress {
                command: describe_command(&command),
            });
        }
        if self.input.tls_pending() {
            return Err(Pop3ClientError::TlsPending {
                command: describe_command(&command),
            });
        }
        let line = command.to_string();
        if line.contains(['\r', '\n']) {
            return Err(Pop3ClientError::InvalidCommand {
                command: command.keyword().to_string(),
            });
        }
        self.outputs
            .push_back(Pop3ClientOutput::Write(format!("{line}\r\n").into_bytes()));
        self.quit_sent = command == Command::Quit;
        self.awaiting.push_back(Some(command));
        Ok(())
    }

    /// Answers the server's last AUTH challenge with `response` (sent as one base64 line,
    /// RFC 5034 section 4; an empty response is an empty line) and expects the next
    /// challenge or the final `+OK`/`-ERR`.
    pub fn send_sasl_response(&mut self, response: &[u8]) -> Result<(), Pop3ClientError> {
        let line = crate::proto::sasl::encode(response);
        self.answer_challenge(line)
    }

    /// Cancels the AUTH exchange: `*` instead of an answer (RFC 5034 section 4); the server
    /// answers `-ERR`.
    pub fn cancel_sasl(&mut self) -> Result<(), Pop3ClientError> {
        self.answer_challenge("*".to_string())
    }

    /// Answers the server's last challenge with `line` as typed (base64, or `*` to cancel):
    /// for a console where a person types the AUTH exchange by hand.
    pub fn send_sasl_line(&mut self, line: &str) -> Result<(), Pop3ClientError> {
        if line.contains(['\r', '\n']) {
            return Err(Pop3ClientError::InvalidCommand {
                command: "an AUTH response".into(),
            });
        }
        self.answer_challenge(line.to_string())
    }

    fn answer_challenge(&mut self, line: String) -> Result<(), Pop3ClientError> {
        if self.input.eof || self.input.ended {
            return Err(Pop3ClientError::SessionEnded {
                command: "an AUTH response".into(),
            });
        }
        let mechanism = self.sasl_open.take().ok_or(Pop3ClientError::NoChallenge)?;
        self.outputs
            .push_back(Pop3ClientOutput::Write(format!("{line}\r\n").into_bytes()));
        self.awaiting.push_back(Some(Command::Auth {
            mechanism,
            initial: None,
        }));
        Ok(())
    }

    /// Whether the server's last challenge waits for [`Pop3Client::send_sasl_response`].
    pub fn sasl_challenged(&self) -> bool {
        self.sasl_open.is_some()
    }

    /// Whether the server accepted STLS and the driver must make the TLS handshake now
    /// (RFC 2595 section 4), then call [`Pop3Client::tls_started`]. Until then nothing more
    /// is read, and whatever the server had sent in clear after its `+OK` was thrown away
    /// ([`Pop3Client::discarded_before_tls`]): bytes from before the handshake must never
    /// pass for protected ones.
    pub fn tls_requested(&self) -> bool {
        self.input.tls_pending()
    }

    /// How many octets the server sent in clear after its `+OK` to STLS, thrown away.
    pub fn discarded_before_tls(&self) -> usize {
        self.input.discarded_before_tls()
    }

    /// The TLS handshake is done: replies are read again (now from inside TLS).
    pub fn tls_started(&mut self) {
        self.input.tls_started();
    }

    /// The APOP command for `name` and `secret` with this session's greeting timestamp.
    pub fn apop_command(&self, name: &str, secret: &str) -> Result<Command, Pop3ClientError> {
        let timestamp = self
            .apop_timestamp()
            .ok_or(Pop3ClientError::NoApopTimestamp)?;
        Ok(Command::Apop {
            name: name.to_string(),
            digest: apop_digest(timestamp, secret),
        })
    }

    /// Gives up the reply being read (the server stopped before its end): hands out what
    /// arrived of it, its body so far, and forgets it, so the next reply is read as the answer
    /// to the next command. `None` when no reply had begun; then the command waiting first is
    /// given up instead (its reply never came).
    ///
    /// Bytes after the last complete line (a line whose end never came) are given up with it:
    /// the reply's `stream` range covers them, and when no reply had begun and they hold a
    /// status line, that line is handed out as the reply (`+OK 2 320` without its CRLF).
    pub fn give_up_reply(&mut self) -> Option<Pop3Reply> {
        let unended = self.input.buf.take_pending();
        let end = self.input.buf.position();
        if let Some(mut p) = self.partial.take() {
            p.reply.body = Some(p.body);
            p.reply.stream.end = end;
            return Some(p.reply);
        }
        let command = self.awaiting.pop_front()?;
        let (positive, text) = parse_status(&unended)?;
        let text = String::from_utf8_lossy(text).into_owned();
        let reply = Pop3Reply {
            positive,
            resp_code: response_code(&text).map(str::to_string),
            text,
            body: None,
            command,
            stream: end.saturating_sub(unended.len() as u64)..end,
            continuation: false,
        };
        if reply.is_greeting() {
            self.greeting = Some(reply.clone());
        }
        Some(reply)
    }

    /// From now on a line that is not a status line where one belongs (no `+OK` or `-ERR`)
    /// is reported as an error event in place of the reply awaited, and the next line is
    /// read as the reply to the next command, instead of ending the session: for a console
    /// that shows a broken server's replies and goes on.
    pub fn go_on_after_bad_status_lines(&mut self) {
        self.go_on_after_bad_status = true;
    }

    /// The greeting, once it has arrived.
    pub fn greeting(&self) -> Option<&Pop3Reply> {
        self.greeting.as_ref()
    }

    /// The APOP timestamp of the greeting (`<1896.697170952@dbc.mtview.ca.us>`), if any.
    pub fn apop_timestamp(&self) -> Option<&str> {
        self.greeting
            .as_ref()
            .filter(|g| g.positive)
            .and_then(|g| find_apop_timestamp(&g.text))
    }

    /// Whether replies are still expected.
    pub fn is_waiting(&self) -> bool {
        !self.awaiting.is_empty() || self.partial.is_some()
    }

    fn status_line(&mut self, line: &[u8], command: Option<Command>) {
        if let Some(Command::Auth { mechanism, .. }) = &command
            && let Some(challenge) = parse_continuation(line)
        {
            // RFC 5034 section 4: "+" SP base64 asks the client for its next response.
            self.sasl_open = Some(mechanism.clone());
            let reply = Pop3Reply {
                positive: true,
                text: String::from_utf8_lossy(challenge).into_owned(),
                resp_code: None,
                body: None,
                command,
                stream: self.input.line_start..self.input.line_start,
                continuation: true,
            };
            return self.emit(reply);
        }
        let Some((positive, text)) = parse_status(line) else {
            let awaiting = describe_awaited(command.as_ref());
            let line = excerpt(line);
            let error = Pop3ClientError::NotAStatusLine { awaiting, line };
            if self.go_on_after_bad_status {
                // The command awaited is answered (badly); the next line answers the next.
                self.outputs.push_back(Output::Event(Err(error)));
                return;
            }
            return self.fail(error);
        };
        let text = String::from_utf8_lossy(text).into_owned();
        let multiline = positive && command.as_ref().is_some_and(Command::has_multiline_reply);
        let starts_tls = positive && command == Some(Command::Stls);
        let reply = Pop3Reply {
            positive,
            resp_code: response_code(&text).map(str::to_string),
            text,
            body: None,
            command,
            stream: self.input.line_start..self.input.line_start,
            continuation: false,
        };

        if multiline {
            self.partial = Some(Partial {
                reply,
                body: Vec::new(),
                lines: 0,
            });
        } else {
            self.emit(reply);
        }
        if starts_tls {
            // RFC 2595 section 4: the handshake starts right after the +OK (whose stream
            // range ends there); anything the server sent after it, in clear, is dropped.
            self.input.await_tls();
        }
    }

    fn body_line(&mut self, line: &[u8]) {
        let Some(mut partial) = self.partial.take() else {
            return;
        };
        if line == b"." {
            partial.reply.body = Some(partial.body);
            return self.emit(partial.reply);
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(line);
        if partial.body.len() + unstuffed.len() + 2 > self.max_reply_octets {
            let awaiting = describe_awaited(partial.reply.command.as_ref());
            let max = self.max_reply_octets;
            return self.fail(Pop3ClientError::ReplyTooLong { awaiting, max });
        }
        partial.body.extend_from_slice(unstuffed);
        partial.body.extend_from_slice(b"\r\n");
        partial.lines += 1;
        self.partial = Some(partial);
    }

    fn emit(&mut self, mut reply: Pop3Reply) {
        reply.stream.end = self.input.buf.position();
        if reply.is_greeting() {
            self.greeting = Some(reply.clone());
        }
        self.outputs.push_back(Output::Event(Ok(reply)));
    }

    fn fail(&mut self, error: Pop3ClientError) {
        self.input.ended = true;
        self.awaiting.clear();
        self.partial = None;
        self.outputs.push_back(Output::Event(Err(error)));
    }
}

/// Splits a status line into its indicator (`true` for `+OK`) and its text. The indicator
/// must be upper case and followed by a space or the end of the line.
fn parse_status(line: &[u8]) -> Option<(bool, &[u8])> {
    let (positive, rest) = if let Some(rest) = line.strip_prefix(b"+OK") {
        (true, rest)
    } else {
        (false, line.strip_prefix(b"-ERR")?)
    };
    if rest.is_empty() {
        return Some((positive, rest));
    }
    rest.strip_prefix(b" ").map(|text| (positive, text))
}

/// The challenge of an AUTH continuation line: `+` alone, or `+`, a space and base64
/// (RFC 5034 section 4: `continue-req = "+" SP [base64] CRLF`; a bare `+` is accepted too).
fn parse_continuation(line: &[u8]) -> Option<&[u8]> {
    match line {
        [b'+'] => Some(&[]),
        [b'+', b' ', rest @ ..] => Some(rest),
        _ => None,
    }
}

fn is_lower_case_status(line: &str) -> bool {
    let upper = line.to_ascii_uppercase();
    parse_status(upper.as_bytes()).is_some()
}

/// The RFC 2449 response code at the start of `text` (`[IN-USE] ...` gives `IN-USE`).
pub fn response_code(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('[')?;
    let code = inner.get(..inner.find(']')?)?;
    let valid = !code.is_empty()
        && code
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'[' && b != b']');
    valid.then_some(code)
}

/// The first `<...>` in a greeting text that can be an APOP timestamp (no spaces inside).
pub fn find_apop_timestamp(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let candidate = rest.get(open..)?;
        let close = candidate.find('>')?;
        let stamp = candidate.get(..=close)?;
        let inner = stamp.get(1..stamp.len() - 1).unwrap_or_default();
        if !inner.is_empty() && !inner.contains(char::is_whitespace) && !inner.contains('<') {
            return Some(stamp);
        }
        rest = candidate.get(1..)?;
    }
    None
}

/// A command as it may appear in messages: the password of PASS, and AUTH's initial
/// response (base64 is no protection), are not repeated.
fn describe_command(command: &Command) -> String {
    match command {
        Command::Pass(_) => "PASS".to_string(),
        Command::Auth { mechanism, .. } => format!("AUTH {mechanism}"),
        other => other.to_string(),
    }
}

fn describe_awaited(command: Option<&Command>) -> String {
    match command {
        None => "the greeting".to_string(),
        Some(c) => format!("the reply to {}", describe_command(c)),
    }
}

/// Received bytes as they may appear in a message: invalid UTF-8 and control characters
/// escaped, at most 80 characters.
pub fn excerpt(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 80;
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for c in text.chars().take(MAX_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if text.chars().count() > MAX_CHARS {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Machine;

    /// Everything one run produced, replies and errors in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Run {
        written: Vec<u8>,
        /// The replies, their stream ranges set aside in `streams` (so that a test can
        /// compare a reply with one written by hand).
        replies: Vec<Pop3Reply>,
        streams: Vec<Range<u64>>,
        errors: Vec<Pop3ClientError>,
    }

    /// Feeds `input` in chunks of `chunk` bytes after sending `commands`, then EOF.
    fn run(commands: &[Command], input: &[u8], chunk: usize) -> Run {
        let mut client = Pop3Client::new();
        for c in commands {
            client.send(c.clone()).unwrap();
        }
        let mut run = Run {
            written: Vec::new(),
            replies: Vec::new(),
            streams: Vec::new(),
            errors: Vec::new(),
        };
        let mut drain = |client: &mut Pop3Client| {
            while let Some(out) = client.poll_output() {
                match out {
                    Output::Write(b) => run.written.extend_from_slice(&b),
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
        drain(&mut client);
        for piece in input.chunks(chunk) {
            client.receive(piece);
            drain(&mut client);
        }
        client.receive_eof();
        drain(&mut client);
        run
    }

    /// Runs at chunk sizes 1, 2, 4 ... 512, asserts all runs agree, returns one.
    fn run_all_chunks(commands: &[Command], input: &[u8]) -> Run {
        let reference = run(commands, input, input.len().max(1));
        let mut chunk = 1;
        while chunk <= 512 {
            assert_eq!(run(commands, input, chunk), reference, "chunk size {chunk}");
            chunk *= 2;
        }
        reference
    }

    fn ok(text: &str, command: Option<Command>) -> Pop3Reply {
        Pop3Reply {
            positive: true,
            text: text.into(),
            resp_code: None,
            body: None,
            command,
            stream: 0..0,
            continuation: false,
        }
    }

    #[test]
    fn rfc_1939_session_with_apop() {
        let input = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n\
            +OK mrose's maildrop has 2 messages (320 octets)\r\n\
            +OK 2 320\r\n\
            +OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n\
            +OK 120 octets\r\nSubject: x\r\n\r\n..dot\r\n.\r\n\
            +OK dewey POP3 server signing off (maildrop empty)\r\n";
        let commands = [
            Command::Apop {
                name: "mrose".into(),
                digest: "c4c9334bac560ecc979e58001b3e22fb".into(),
            },
            Command::Stat,
            Command::List(None),
            Command::Retr(1),
            Command::Quit,
        ];
        let r = run_all_chunks(&commands, input);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            String::from_utf8_lossy(&r.written),
            "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nSTAT\r\nLIST\r\nRETR 1\r\nQUIT\r\n"
        );
        assert_eq!(r.replies.len(), 6);
        assert!(r.replies[0].is_greeting());
        assert_eq!(r.replies[2], ok("2 320", Some(Command::Stat)));
        assert_eq!(
            r.replies[3].body.as_deref(),
            Some(&b"1 120\r\n2 200\r\n"[..])
        );
        assert_eq!(
            r.replies[3].body_lines().collect::<Vec<_>>(),
            vec![&b"1 120"[..], b"2 200"]
        );
        assert_eq!(
            r.replies[4].body.as_deref(),
            Some(&b"Subject: x\r\n\r\n.dot\r\n"[..])
        );
        assert_eq!(r.replies[5].command, Some(Command::Quit));
        // Each reply's place in the server's byte stream: the whole input, cut at the end
        // of each reply's last line (the same at every chunk size).
        let mut at = 0;
        for (range, text) in r.streams.iter().zip([
            &b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"[..],
            b"+OK mrose's maildrop has 2 messages (320 octets)\r\n",
            b"+OK 2 320\r\n",
            b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n",
            b"+OK 120 octets\r\nSubject: x\r\n\r\n..dot\r\n.\r\n",
            b"+OK dewey POP3 server signing off (maildrop empty)\r\n",
        ]) {
            assert_eq!(*range, at..at + text.len() as u64);
            at = range.end;
        }
        assert_eq!(at, input.len() as u64);
    }

    #[test]
    fn apop_command_uses_the_greeting_timestamp() {
        let mut c = Pop3Client::new();
        c.receive(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n");
        while c.poll_output().is_some() {}
        assert_eq!(
            c.apop_timestamp(),
            Some("<1896.697170952@dbc.mtview.ca.us>")
        );
        assert_eq!(
            c.apop_command("mrose", "tanstaaf"),
            Ok(Command::Apop {
                name: "mrose".into(),
                digest: "c4c9334bac560ecc979e58001b3e22fb".into()
            })
        );
    }

    #[test]
    fn greeting_without_timestamp_has_no_apop() {
        let r = run_all_chunks(&[], b"+OK POP3 Server Ready\r\n");
        assert_eq!(r.replies, vec![ok("POP3 Server Ready", None)]);
        let mut c = Pop3Client::new();
        c.receive(b"+OK POP3 Server Ready\r\n");
        while c.poll_output().is_some() {}
        assert_eq!(c.apop_timestamp(), None);
        assert_eq!(
            c.apop_command("a", "b"),
            Err(Pop3ClientError::NoApopTimestamp)
        );
    }

    #[test]
    fn finds_timestamps_only_where_they_can_be() {
        assert_eq!(
            find_apop_timestamp("Dovecot ready. <1.2.3@h>"),
            Some("<1.2.3@h>")
        );
        assert_eq!(find_apop_timestamp("a <b c> <d@e>"), Some("<d@e>"));
        assert_eq!(find_apop_timestamp("<> <x"), None);
        assert_eq!(find_apop_timestamp("<<a@b>"), Some("<a@b>"));
        assert_eq!(find_apop_timestamp("no stamp"), None);
    }

    #[test]
    fn negative_replies_and_response_codes() {
        let input = b"+OK hi\r\n-ERR [IN-USE] maildrop locked\r\n-ERR\r\n-ERR no such message\r\n";
        let commands = [
            Command::User("a".into()),
            Command::Pass("b".into()),
            Command::Retr(9),
        ];
        let r = run_all_chunks(&commands, input);
        assert!(r.errors.is_empty());
        assert_eq!(r.replies[1].resp_code.as_deref(), Some("IN-USE"));
        assert_eq!(r.replies[1].text, "[IN-USE] maildrop locked");
        assert_eq!(r.replies[1].status_line(), "-ERR [IN-USE] maildrop locked");
        assert_eq!(r.replies[2].status_line(), "-ERR");
        // A negative reply to RETR is single-line: no body is read.
        assert_eq!(r.replies[3].body, None);
        assert!(!r.replies[3].positive);
    }

    #[test]
    fn response_code_syntax() {
        assert_eq!(response_code("[SYS/TEMP] x"), Some("SYS/TEMP"));
        assert_eq!(response_code("[] x"), None);
        assert_eq!(response_code("[A B] x"), None);
        assert_eq!(response_code("no [AUTH]"), None);
        assert_eq!(response_code("[AUTH"), None);
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        let r = run_all_chunks(&[Command::Capa], b"+OK ready\n+OK capa\nTOP\nUSER\n.\n");
        assert!(r.errors.is_empty());
        assert_eq!(r.replies[1].body.as_deref(), Some(&b"TOP\r\nUSER\r\n"[..]));
    }

    #[test]
    fn zeek_crafted_list_without_dot_then_eof() {
        // The server side of zeek's bad-list-retr-crafted.pcap: garbage instead of a status
        // line. The client stops there with a clear error.
        let input = b"+OK example.com POP3-Server\r\n\
            GARBAGE (and LIST response missing .)\r\n\
            +OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n";
        let r = run_all_chunks(&[Command::List(None)], input);
        assert_eq!(r.replies.len(), 1);
        assert_eq!(
            r.errors,
            vec![Pop3ClientError::NotAStatusLine {
                awaiting: "the reply to LIST".into(),
                line: "GARBAGE (and LIST response missing .)".into()
            }]
        );
        assert_eq!(
            r.errors[0].to_string(),
            "The server sent \"GARBAGE (and LIST response missing .)\" while we waited for \
             the reply to LIST; a POP3 reply must begin with \"+OK\" or \"-ERR\" (RFC 1939)."
        );
    }

    #[test]
    fn multi_line_reply_without_dot_then_eof() {
        let input = b"+OK hi\r\n+OK 2 messages\r\n1 120\r\n2 200\r\n";
        let r = run_all_chunks(&[Command::List(None)], input);
        assert_eq!(
            r.errors,
            vec![Pop3ClientError::ClosedMidReply {
                awaiting: "the reply to LIST".into(),
                lines: 2
            }]
        );
        assert_eq!(
            r.errors[0].to_string(),
            "The server closed the connection in the middle of the reply to LIST, after 2 \
             lines of the multi-line reply and before its final \".\" line."
        );
    }

    #[test]
    fn eof_before_the_reply_or_mid_line() {
        let r = run_all_chunks(&[Command::Stat], b"+OK hi\r\n+OK 2 3");
        assert_eq!(
            r.errors,
            vec![Pop3ClientError::ClosedBeforeReply {
                awaiting: "the reply to STAT".into(),
                partial: Some("+OK 2 3".into())
            }]
        );
        let r = run_all_chunks(&[], b"");
        assert_eq!(
            r.errors[0].to_string(),
            "The server closed the connection while we waited for the greeting."
        );
    }

    #[test]
    fn eof_after_quit_is_normal() {
        let r = run_all_chunks(&[Command::Quit], b"+OK hi\r\n+OK bye\r\n");
        assert!(r.errors.is_empty());
        assert_eq!(r.replies.len(), 2);
    }

    #[test]
    fn garbage_lower_case_and_unsolicited_lines() {
        let r = run_all_chunks(&[Command::Stat], b"+ok hi\r\n");
        assert!(
            r.errors[0].to_string().contains("upper case"),
            "{}",
            r.errors[0]
        );
        let r = run_all_chunks(&[Command::Stat], b"+OKAY\r\n");
        assert!(matches!(
            r.errors[0],
            Pop3ClientError::NotAStatusLine { .. }
        ));
        let r = run_all_chunks(&[], b"+OK hi\r\n+OK extra\r\n");
        assert_eq!(
            r.errors[0].to_string(),
            "The server sent \"+OK extra\" although no reply was expected."
        );
        let r = run_all_chunks(&[], b"\x00\xff\x1b[2J\r\n");
        assert_eq!(
            r.errors[0],
            Pop3ClientError::NotAStatusLine {
                awaiting: "the greeting".into(),
                line: "\\u{0}\u{fffd}\\u{1b}[2J".into()
            }
        );
    }

    #[test]
    fn over_long_line_is_an_error_not_a_hang() {
        let mut input = b"+OK hi\r\n+OK follows\r\n".to_vec();
        input.extend(vec![b'x'; MAX_REPLY_LINE + 10]);
        input.extend_from_slice(b"\r\n.\r\n");
        let r = run(&[Command::Retr(1)], &input, 4096);
        assert_eq!(
            r.errors,
            vec![Pop3ClientError::LineTooLong {
                awaiting: "the reply to RETR 1".into(),
                len: MAX_REPLY_LINE + 10,
                max: MAX_REPLY_LINE
            }]
        );
    }

    #[test]
    fn reply_size_is_limited() {
        let mut client = Pop3Client::with_limits(100, 1000);
        client.send(Command::Retr(1)).unwrap();
        client.receive(b"+OK hi\r\n+OK follows\r\n");
        for _ in 0..100 {
            client.receive(b"0123456789012345678\r\n");
        }
        let outputs: Vec<_> = std::iter::from_fn(|| client.poll_output()).collect();
        assert_eq!(
            outputs.last(),
            Some(&Output::Event(Err(Pop3ClientError::ReplyTooLong {
                awaiting: "the reply to RETR 1".into(),
                max: 1000
            })))
        );
        assert!(client.is_ended());
    }

    #[test]
    fn refuses_commands_that_would_inject_lines_or_follow_quit() {
        let mut c = Pop3Client::new();
        assert_eq!(
            c.send(Command::User("a\r\nDELE 1".into())),
            Err(Pop3ClientError::InvalidCommand {
                command: "USER".into()
            })
        );
        c.send(Command::Quit).unwrap();
        let err = c.send(Command::Pass("secret".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot send PASS: the session has already ended."
        );
    }

    #[test]
    fn single_line_list_and_uidl_with_argument() {
        let r = run_all_chunks(
            &[
                Command::List(Some(1)),
                Command::Uidl(Some(1)),
                Command::Top { msg: 1, lines: 0 },
            ],
            b"+OK hi\r\n+OK 1 120\r\n+OK 1 abc\r\n+OK\r\nFrom: a@b\r\n\r\n.\r\n",
        );
        assert!(r.errors.is_empty());
        assert_eq!(r.replies[1].body, None);
        assert_eq!(r.replies[2].text, "1 abc");
        assert_eq!(
            r.replies[3].body.as_deref(),
            Some(&b"From: a@b\r\n\r\n"[..])
        );
    }

    #[test]
    fn waiting_for_describes_the_next_reply() {
        let mut c = Pop3Client::new();
        assert_eq!(c.waiting_for().as_deref(), Some("the greeting"));
        c.send(Command::Pass("s3cret".into())).unwrap();
        c.receive(b"+OK hi\r\n");
        while c.poll_output().is_some() {}
        assert_eq!(c.waiting_for().as_deref(), Some("the reply to PASS"));
        assert!(c.is_waiting());
    }

    /// Every reply and error the client hands out now.
    fn events(c: &mut Pop3Client) -> Vec<Result<Pop3Reply, Pop3ClientError>> {
        std::iter::from_fn(|| c.poll_output())
            .filter_map(|o| match o {
                Output::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_line_given_up_without_its_end_is_the_reply_and_the_next_starts_fresh() {
        let mut c = Pop3Client::new();
        c.send(Command::Stat).unwrap();
        c.send(Command::Noop).unwrap();
        c.receive(b"+OK hi\r\n+OK 2 320");
        assert_eq!(events(&mut c).len(), 1);
        let stat = c.give_up_reply().unwrap();
        assert_eq!(
            (stat.status_line(), stat.stream.clone()),
            ("+OK 2 320".into(), 8..17)
        );
        assert_eq!(stat.command, Some(Command::Stat));
        c.receive(b"+OK\r\n");
        let noop = events(&mut c).pop().unwrap().unwrap();
        assert_eq!((noop.command, noop.stream), (Some(Command::Noop), 17..22));
    }

    #[test]
    fn a_bad_status_line_can_answer_its_command_and_the_session_go_on() {
        let mut c = Pop3Client::new();
        c.go_on_after_bad_status_lines();
        c.send(Command::Stat).unwrap();
        c.send(Command::Noop).unwrap();
        c.receive(b"+OK hi\r\n2 320\r\n+OK\r\n");
        let got = events(&mut c);
        assert!(matches!(
            got.get(1),
            Some(Err(Pop3ClientError::NotAStatusLine { .. }))
        ));
        assert!(matches!(got.get(2), Some(Ok(r)) if r.command == Some(Command::Noop)));
        assert!(!c.is_ended());
    }

    /// Everything the client writes now, as text.
    fn written(c: &mut Pop3Client) -> String {
        let mut out = String::new();
        while let Some(o) = c.poll_output() {
            if let Output::Write(b) = o {
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
        out
    }

    #[test]
    fn auth_continuations_are_answered_in_base64_until_the_final_reply() {
        // RFC 5034 section 4, with the CRAM-MD5 example of RFC 2195 section 2.
        let mut c = Pop3Client::new();
        c.receive(b"+OK ready\r\n");
        assert_eq!(events(&mut c).len(), 1);
        let auth = Command::Auth {
            mechanism: "CRAM-MD5".into(),
            initial: None,
        };
        c.send(auth.clone()).unwrap();
        assert_eq!(written(&mut c), "AUTH CRAM-MD5\r\n");
        c.receive(b"+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n");
        let challenge = events(&mut c).pop().unwrap().unwrap();
        assert!(challenge.continuation && challenge.positive);
        assert_eq!(
            challenge.status_line(),
            "+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
        );
        assert_eq!(challenge.command, Some(auth));
        assert!(c.sasl_challenged());
        // Nothing but the answer may go out now.
        assert_eq!(
            c.send(Command::Stat),
            Err(Pop3ClientError::AuthInProgress {
                command: "STAT".into()
            })
        );
        c.send_sasl_response(b"tim b913a602c7eda7a495b4e6e7334d3890")
            .unwrap();
        assert_eq!(
            written(&mut c),
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"
        );
        assert!(!c.sasl_challenged());
        assert_eq!(
            c.send_sasl_response(b"x"),
            Err(Pop3ClientError::NoChallenge)
        );
        // A bare "+" is a continuation too; "*" cancels.
        c.receive(b"+\r\n");
        assert!(events(&mut c).pop().unwrap().unwrap().continuation);
        c.cancel_sasl().unwrap();
        assert_eq!(written(&mut c), "*\r\n");
        c.receive(b"-ERR [AUTH] cancelled\r\n");
        let end = events(&mut c).pop().unwrap().unwrap();
        assert!(!end.continuation && !end.positive);
        assert_eq!(end.status_line(), "-ERR [AUTH] cancelled");
        // An error text never repeats AUTH's initial response (base64 of the password).
        let plain = Command::Auth {
            mechanism: "PLAIN".into(),
            initial: Some("AGJvYgBidWlsZGVy".into()),
        };
        assert_eq!(describe_awaited(Some(&plain)), "the reply to AUTH PLAIN");
    }

    #[test]
    fn a_plus_line_answers_only_auth() {
        // "+ " where no AUTH waits is not a status line (RFC 1939 section 3).
        let r = run_all_chunks(&[Command::Stat], b"+OK hi\r\n+ abc\r\n");
        assert!(matches!(
            r.errors.first(),
            Some(Pop3ClientError::NotAStatusLine { .. })
        ));
    }

    #[test]
    fn bytes_handed_over_while_the_handshake_is_due_are_dropped() {
        // Found by the pop3_client fuzz target: a CAPA pipelined behind STLS, and clear bytes
        // fed after the +OK (in a later receive, so not in the buffer the +OK emptied), came
        // out as the CAPA's reply while the handshake was still due.
        let mut c = Pop3Client::with_limits(200, 1000);
        c.receive(b"+OK ready\r\n");
        events(&mut c);
        c.send(Command::Stls).unwrap();
        c.send(Command::Capa).unwrap();
        written(&mut c);
        c.receive(b"+OK begin TLS\r\n");
        assert_eq!(events(&mut c).len(), 1);
        assert!(c.tls_requested());
        c.receive(b"+OK\r\nSASL PLAIN\r\n.\r\n");
        assert_eq!(
            events(&mut c),
            vec![],
            "a reply read in clear while the handshake was due"
        );
        assert_eq!(c.discarded_before_tls(), 20);
        // An over-long line in clear is dropped too, and reading goes on (no endless loop).
        c.receive(&[b'x'; 3000]);
        assert_eq!(events(&mut c), vec![]);
        assert_eq!(c.discarded_before_tls(), 3020);
        // Half a line in clear is not finished by the protected bytes after the handshake.
        c.receive(b"+OK fa");
        assert_eq!(events(&mut c), vec![]);
        c.tls_started();
        assert_eq!(c.discarded_before_tls(), 3026);
        // "ke" alone is read (and is no status line for the CAPA still awaited).
        c.receive(b"ke\r\n");
        let got = events(&mut c);
        assert!(
            matches!(&got[..], [Err(Pop3ClientError::NotAStatusLine { line, .. })] if !line.contains("fa")),
            "{got:?}"
        );
    }

    #[test]
    fn after_stls_nothing_is_read_until_tls_and_plaintext_after_the_ok_is_dropped() {
        let mut c = Pop3Client::new();
        c.receive(b"+OK ready\r\n");
        events(&mut c);
        c.send(Command::Stls).unwrap();
        written(&mut c);
        // A server (or someone in the middle) puts a reply after the +OK, in clear: it must
        // never pass for one that came through TLS.
        c.receive(b"+OK Begin TLS\r\n+OK injected\r\n");
        let got = events(&mut c);
        assert_eq!(got.len(), 1, "{got:?}");
        // The +OK's range ends at its own line end, not after the bytes dropped.
        assert_eq!(got[0].as_ref().unwrap().stream, 11..26);
        assert!(c.tls_requested());
        assert_eq!(c.discarded_before_tls(), 14);
        assert!(matches!(
            c.send(Command::User("bob".into())),
            Err(Pop3ClientError::TlsPending { .. })
        ));
        c.tls_started();
        assert!(!c.tls_requested());
        c.send(Command::Capa).unwrap();
        assert_eq!(written(&mut c), "CAPA\r\n");
        c.receive(b"+OK\r\nUSER\r\n.\r\n");
        let capa = events(&mut c).pop().unwrap().unwrap();
        assert_eq!(capa.command, Some(Command::Capa));
        // A refused STLS starts nothing.
        let mut c = Pop3Client::new();
        c.send(Command::Stls).unwrap();
        c.receive(b"+OK hi\r\n-ERR no TLS here\r\n");
        assert_eq!(events(&mut c).len(), 2);
        assert!(!c.tls_requested());
    }
}
