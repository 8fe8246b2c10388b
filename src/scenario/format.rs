//! The scenario file format (`scenarios/*.toml`): metadata, a fixture, and steps.
//!
//! ```toml
//! title = "RFC 1939: the example session"
//! description = "One paragraph for the class."
//! protocols = ["pop3"]
//!
//! [fixture]
//! hostname = "dewey"
//! apop_timestamp = "<1896.697170952@dbc.mtview.ca.us>"
//! [[fixture.user]]
//! name = "mrose"
//! password = "tanstaaf"
//! [[fixture.user.mail]]
//! from = "bob@example.com"
//! subject = "Lunch"
//! size = 120            # or body = "..."
//!
//! [[step]]
//! caption = "The client connects; the server greets it."
//! rfc = "RFC 1939 section 4"
//! connect = "pop3"
//! expect = "+OK"
//!
//! [[step]]
//! caption = "APOP proves the password without sending it."
//! send = "APOP mrose c4c9334bac560ecc979e58001b3e22fb"
//! expect = "+OK"
//! expect_text = "2 messages (320 octets)"
//! ```
//!
//! A fixture may replay a published session's wording: `[fixture.replies.pop3]` and
//! `[fixture.replies.smtp]` set the free text of some replies (`user = "Hello {user}- Send
//! PASS"`; the status and codes stay the server's), and a mail may be `raw = '''...'''`, the
//! whole message written as it is with CRLF line ends, no header added.
//!
//! A `connect` step may name another server with `to = "127.0.0.1:8110"` (a student's own
//! server, Dovecot...); without `to` it reaches mailwire's own server for that protocol.
//!
//! A `connect` step may set `tls = true`: the connection goes to the server's implicit-TLS
//! port (POP3S, SMTPS; RFC 8314 section 3) and the TLS handshake comes before the greeting.
//!
//! TLS and SASL have steps of their own: `starttls = true` sends STLS (POP3, RFC 2595
//! section 4) or STARTTLS (SMTP, RFC 3207 section 4) and, when the server agrees, makes the
//! TLS handshake; every step after it on that session travels inside TLS. `auth = { mechanism
//! = "SCRAM-SHA-256", user = "bob", password = "builder" }` runs a whole AUTH exchange
//! (RFC 5034 for POP3, RFC 4954 for SMTP): the command with the initial response, an answer
//! to each challenge, up to the final reply; `expect` checks that final reply.
//!
//! A `starttls` step may add `inject = ["RSET", "MAIL FROM:<evil@example.com>"]`: lines a
//! man in the middle slips in after the command, in the same write (so the same segment),
//! to show that the server discards them unread (RFC 3207 section 6, RFC 2595 section 4;
//! CVE-2011-0411). The client machine does not know them and waits for no reply to them.
//!
//! Each step has exactly one action: `connect`, `send`, `pipeline`, `split`, `login`, `auth`,
//! `starttls`, `list`, `read`, `delete`, `send_mail`, `quit`, `drop`, `abort`, `wait_ms` or
//! `lose`. A broken file gets a [`ScenarioError`] naming the file, the line and what was
//! expected.
//!
//! A `split` step may set `pause_ms`: 0 writes the pieces back to back (so Nagle's algorithm,
//! the fixture's `client_nagle`, may hold them back); 30 unless set.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proto::Protocol;
use crate::proto::sasl::Mechanism;
use crate::servers::ReplyTexts;
use serde::Deserialize;
use toml::Spanned;

/// A parsed, validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub title: String,
    pub description: String,
    pub protocols: Vec<Protocol>,
    pub fixture: Fixture,
    pub steps: Vec<Step>,
    /// Where it came from (a file path, or `builtin:NAME`).
    pub source: String,
}

/// Users and mail present before the first step. Every run starts from a fresh copy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// The server's host name (greetings, sign-offs, Received headers).
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// One APOP timestamp for every POP3 greeting, to replay a published session (RFC 1939's
    /// example) byte for byte. Without it each session gets a fresh one, as RFC 1939
    /// section 7 requires: a timestamp used twice lets a captured APOP digest be replayed.
    #[serde(default)]
    pub apop_timestamp: Option<String>,
    /// POP3 accepts only APOP, not USER/PASS (RFC 1939 section 13).
    #[serde(default)]
    pub apop_only: bool,
    /// The client sends with Nagle's algorithm (RFC 896: small writes wait for the ACK of
    /// what is in flight) instead of with TCP_NODELAY, mailwire's default so each command
    /// goes out at once. With delayed ACKs (RFC 9293 section 3.8.6.3) the two can hold a
    /// write back by up to 40 ms on Linux.
    #[serde(default)]
    pub client_nagle: bool,
    /// The client's receive buffer (SO_RCVBUF, set before connecting; Linux doubles it), in
    /// bytes: small, it makes the window the client advertises small.
    #[serde(default)]
    pub client_rcvbuf: Option<u32>,
    /// The client pauses this long after each read, in milliseconds: a slow reader, whose
    /// full buffer closes its window (a zero window, RFC 9293 section 3.8.6.1).
    #[serde(default)]
    pub client_read_pause_ms: Option<u64>,
    /// The autologout timer, in milliseconds (RFC 1939 section 3: at least 10 minutes on a
    /// real server; a scenario may shorten it to show what happens).
    #[serde(default)]
    pub autologout_ms: Option<u64>,
    /// The date written into Received headers, for a reproducible run.
    #[serde(default = "default_date")]
    pub date: String,
    /// Delay before a failed login is answered, in milliseconds.
    #[serde(default)]
    pub login_delay_ms: u64,
    /// Mail domains delivered locally besides `localhost`.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Reply texts replacing the servers' own, to replay a published session's wording:
    /// `[fixture.replies.pop3]` and `[fixture.replies.smtp]` (keys in
    /// [`crate::proto::pop3::Pop3Replies`] and [`crate::proto::smtp::SmtpReplies`]). Status
    /// indicators and codes stay the server's, so replies stay valid.
    #[serde(default)]
    pub replies: ReplyTexts,
    #[serde(default, rename = "user")]
    pub users: Vec<FixtureUser>,
}

/// One user of the fixture.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureUser {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub mail: Vec<FixtureMail>,
}

/// One message in a user's mailbox, oldest first: either generated (`from`, `subject`
/// and optionally `to`, `date`, `body`, `size`) or `raw`, written as it is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureMail {
    /// The From header of a generated mail (required unless `raw`).
    pub from: Option<String>,
    /// Defaults to `<user>@<hostname>`.
    pub to: Option<String>,
    /// The Subject header of a generated mail (required unless `raw`).
    pub subject: Option<String>,
    /// The Date header of a generated mail; defaults to the fixture's default date.
    pub date: Option<String>,
    /// The body (line ends become CRLF).
    pub body: Option<String>,
    /// The whole message, headers and all, written as it is with CRLF line ends (a last
    /// line without a line end gets one): no header is added. For mail a published
    /// session showed; then `from`, `to`, `subject`, `date` and `body` are not allowed.
    pub raw: Option<String>,
    /// Total size in octets with CRLF line ends, as STAT and LIST count it: the body is
    /// filled up to it. With `raw` it is a check: the raw message must have this size.
    pub size: Option<u64>,
    /// Arrived since the last check (kept in Maildir `new/` rather than `cur/`).
    #[serde(default)]
    pub new: bool,
}

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub caption: String,
    pub rfc: Option<String>,
    /// Which client connection this step uses ("main" unless named).
    pub session: String,
    pub action: Action,
    pub expect: Option<Expect>,
    /// Line of the step in its file (1-based), for error messages.
    pub line: usize,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a TCP connection; `mss` asks for a small maximum segment size so long replies
    /// visibly span many segments; `to` names another server (mailwire's own when `None`).
    Connect {
        protocol: Protocol,
        mss: Option<u16>,
        to: Option<SocketAddr>,
    },
    /// One raw command line.
    Send(String),
    /// Several command lines in one write.
    Pipeline(Vec<String>),
    /// One command line written in several pieces (the pieces joined, plus CRLF), with a
    /// pause between two writes (0: back to back, so Nagle's algorithm may hold them).
    Split {
        pieces: Vec<String>,
        pause: Duration,
    },
    /// Like `Connect`, to the server's implicit-TLS port (POP3S, SMTPS; RFC 8314 section
    /// 3): the TLS handshake comes first, then the greeting inside TLS.
    ConnectTls {
        protocol: Protocol,
        mss: Option<u16>,
        to: Option<SocketAddr>,
    },
    /// STLS (POP3) or STARTTLS (SMTP), then, when the server agrees, the TLS handshake.
    /// `inject`: lines written right after the command in the same write, as an attacker
    /// would (CVE-2011-0411); no reply is awaited for them (usually empty).
    StartTls { inject: Vec<String> },
    /// A whole SASL exchange: AUTH with the initial response, an answer to each challenge.
    Auth {
        mechanism: Mechanism,
        user: String,
        password: String,
    },
    /// USER and PASS (or APOP) as a client does it.
    Login {
        user: String,
        password: String,
        apop: bool,
    },
    /// LIST.
    List,
    /// RETR n.
    Read(u32),
    /// DELE n.
    Delete(u32),
    /// MAIL, RCPT for each recipient, DATA and the message.
    SendMail(MailSpec),
    /// QUIT.
    Quit,
    /// Close the connection without QUIT (a FIN).
    Drop,
    /// Close the connection at once with a reset (SO_LINGER 0: an RST, no FIN).
    Abort,
    /// Send nothing for a while (at most this long): what the server sends meanwhile is
    /// recorded, and when it closes the connection (an autologout, or after QUIT) the step
    /// notes it and the client closes its side too.
    Wait(Duration),
    /// The next data segment the server sends on this connection is lost once on its way
    /// in (after the capture saw it), so TCP must send it again (`lose = "server"`).
    LoseNextFromServer,
    /// The servers shut down (the end of a scenario): what the server says before it closes
    /// (SMTP's 421, RFC 5321 section 3.8) is recorded, as in a wait.
    ShutDown,
}

/// A mail sent by a `send_mail` step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSpec {
    pub from: String,
    /// The recipients (a boxed slice: with [`MailDate`] a `Vec` would make every [`Step`]
    /// 8 octets larger, and the window's step messages over clippy's enum-size limit).
    pub to: Box<[String]>,
    pub subject: String,
    #[serde(default)]
    pub body: String,
    /// The Date field's date: the fixture's in a scenario file (not settable there, so
    /// every run is the same), the clock for mail typed in the window.
    #[serde(skip)]
    pub date: MailDate,
}

/// Which date a sent mail's Date field holds (RFC 5322 section 3.3 and 3.6.1: when the
/// author finished the message).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MailDate {
    /// The fixture's fixed date: a scenario's run and its snapshot stay the same.
    #[default]
    Fixture,
    /// The time of sending, from the clock: mail typed by a person.
    Now,
}

/// What the last reply of a step must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// `+OK`, `-ERR`, or a three-digit SMTP code.
    pub status: String,
    /// Text the reply's first line must contain.
    pub text: Option<String>,
}

/// Why a scenario could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub source: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub problem: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}, line {line}: {}", self.source, self.problem),
            None => write!(f, "{}: {}", self.source, self.problem),
        }
    }
}

impl std::error::Error for ScenarioError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    title: String,
    description: String,
    protocols: Vec<Protocol>,
    fixture: Fixture,
    #[serde(rename = "step")]
    steps: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    caption: String,
    rfc: Option<String>,
    session: Option<String>,
    connect: Option<Protocol>,
    mss: Option<u16>,
    to: Option<String>,
    tls: Option<bool>,
    starttls: Option<bool>,
    inject: Option<Vec<String>>,
    auth: Option<RawAuth>,
    send: Option<String>,
    pipeline: Option<Vec<String>>,
    split: Option<Vec<String>>,
    pause_ms: Option<u64>,
    login: Option<RawLogin>,
    list: Option<bool>,
    read: Option<u32>,
    delete: Option<u32>,
    send_mail: Option<MailSpec>,
    quit: Option<bool>,
    drop: Option<bool>,
    abort: Option<bool>,
    wait_ms: Option<u64>,
    lose: Option<String>,
    shutdown: Option<bool>,
    expect: Option<Spanned<String>>,
    expect_text: Option<String>,
}

/// Where the fixture's users and mails are in the file, for error messages (a second,
/// lenient reading of the same text).
#[derive(Deserialize)]
struct FixturePlaces {
    fixture: FixtureUserPlaces,
}

#[derive(Deserialize)]
struct FixtureUserPlaces {
    #[serde(default, rename = "user")]
    users: Vec<Spanned<UserPlaces>>,
}

#[derive(Deserialize)]
struct UserPlaces {
    #[serde(default)]
    mail: Vec<Spanned<serde::de::IgnoredAny>>,
}

/// The largest fixture mail: enough for any demonstration, small enough to build at once.
pub const MAX_FIXTURE_MAIL: u64 = 16 * 1024 * 1024;

/// The smallest MSS Linux accepts (`TCP_MIN_MSS`).
pub const MIN_MSS: u16 = 88;

/// The longest `wait_ms` (a minute): enough for any short autologout timer.
pub const MAX_WAIT_MS: u64 = 60_000;

/// The pause between the pieces of a `split` step unless `pause_ms` says otherwise: long
/// enough that each piece leaves in a segment of its own (without Nagle's algorithm).
pub const DEFAULT_SPLIT_PAUSE_MS: u64 = 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    mechanism: String,
    user: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    user: String,
    password: String,
    #[serde(default)]
    apop: bool,
}

fn default_hostname() -> String {
    "localhost".to_string()
}

fn default_date() -> String {
    "Thu, 1 Jan 2026 09:00:00 +0000".to_string()
}

/// The date of a generated fixture mail without `date`.
pub fn default_mail_date() -> String {
    default_date()
}

impl Scenario {
    /// Whether a step starts TLS (implicit, or STLS/STARTTLS as a step or a raw line): its
    /// servers then need a certificate, and implicit-TLS ports.
    pub fn uses_tls(&self) -> bool {
        let starts_tls = |line: &String| {
            let verb = line.split_whitespace().next().unwrap_or_default();
            verb.eq_ignore_ascii_case("STLS") || verb.eq_ignore_ascii_case("STARTTLS")
        };
        self.steps.iter().any(|s| match &s.action {
            Action::ConnectTls { .. } | Action::StartTls { .. } => true,
            // STLS or STARTTLS typed as a raw line.
            Action::Send(line) => starts_tls(line),
            Action::Pipeline(lines) => lines.iter().any(starts_tls),
            _ => false,
        })
    }

    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            source: source.clone(),
            line: None,
            problem: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, &source)
    }

    /// Parses and validates scenario text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Scenario, ScenarioError> {
        let error = |span: Option<Range<usize>>, problem: String| ScenarioError {
            source: source.to_string(),
            line: span.map(|s| line_of(text, s.start)),
            problem,
        };
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let message = e.message().trim();
            match e.span() {
                Some(span) => error(Some(span), message.to_string()),
                // The TOML reader names no place for some errors (its recursion limit on
                // dotted keys): the line is found by reading ever longer starts of the text.
                None => ScenarioError {
                    source: source.to_string(),
                    line: line_of_spanless_error(text, message),
                    problem: explain_toml_message(message),
                },
            }
        })?;
        if raw.steps.is_empty() {
            return Err(error(None, "a scenario needs at least one [[step]]".into()));
        }
        let mut steps = Vec::with_capacity(raw.steps.len());
        let mut connected: Vec<String> = Vec::new();
        let mut waiting_for_message: Vec<String> = Vec::new();
        for spanned in raw.steps {
            let span = spanned.span();
            let line = line_of(text, span.start);
            let step =
                validate_step(spanned.into_inner(), line, text).map_err(|e| ScenarioError {
                    source: source.to_string(),
                    line: Some(e.line.unwrap_or(line)),
                    problem: e.problem,
                })?;
            if let Action::Send(line) = &step.action {
                let in_data = waiting_for_message.contains(&step.session);
                if !in_data {
                    one_line("send", line).map_err(|p| {
                        error(
                            Some(span.clone()),
                            format!(
                                "{p} (only the message after a step that expects 354 may \
                                 have several lines)"
                            ),
                        )
                    })?;
                }
            }
            waiting_for_message.retain(|s| *s != step.session);
            if step.expect.as_ref().is_some_and(|e| e.status == "354") {
                waiting_for_message.push(step.session.clone());
            }
            if matches!(
                step.action,
                Action::Connect { .. } | Action::ConnectTls { .. }
            ) {
                connected.push(step.session.clone());
            } else if !connected.contains(&step.session) {
                return Err(error(
                    Some(span),
                    format!(
                        "session \"{0}\" has no connection yet: an earlier step needs \
                         connect = \"pop3\" (or \"smtp\") with session = \"{0}\"",
                        step.session
                    ),
                ));
            }
            steps.push(step);
        }
        let scenario = Scenario {
            title: raw.title,
            description: raw.description,
            protocols: raw.protocols,
            fixture: raw.fixture,
            steps,
            source: source.to_string(),
        };
        let places = toml::from_str::<FixturePlaces>(text)
            .map(|p| p.fixture.users)
            .unwrap_or_default();
        scenario
            .check_fixture(&places)
            .map_err(|(span, p)| error(span, p))?;
        Ok(scenario)
    }

    /// Checks what the fixture will build before anything runs; an error comes with the
    /// place of the user or mail in the file.
    fn check_fixture(
        &self,
        places: &[Spanned<UserPlaces>],
    ) -> Result<(), (Option<Range<usize>>, String)> {
        let fixture = &self.fixture;
        fixture
            .replies
            .check()
            .map_err(|e| (None, format!("[fixture.replies]: {e}")))?;
        for (i, user) in fixture.users.iter().enumerate() {
            let user_place = places.get(i);
            let at_user = user_place.map(Spanned::span);
            if !crate::store::is_plain_username(&user.name) {
                return Err((
                    at_user,
                    format!(
                        "fixture user \"{}\" is not a plain user name (letters, digits, \
                         '.', '-', '_')",
                        user.name
                    ),
                ));
            }
            if fixture.users.iter().take(i).any(|u| u.name == user.name) {
                return Err((
                    at_user,
                    format!("fixture user \"{}\" is defined twice", user.name),
                ));
            }
            for (j, mail) in user.mail.iter().enumerate() {
                let at_mail = user_place
                    .and_then(|u| u.as_ref().mail.get(j))
                    .map(Spanned::span)
                    .or_else(|| at_user.clone());
                if let Some(size) = mail.size
                    && size > MAX_FIXTURE_MAIL
                {
                    return Err((
                        at_mail,
                        format!(
                            "size = {size}: a fixture mail may have at most \
                             {MAX_FIXTURE_MAIL} octets (16 MiB)"
                        ),
                    ));
                }
                super::fixture::message_bytes(fixture, user, j, mail)
                    .map_err(|e| (at_mail, e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// A step that is not valid, and the line to blame when it is not the step's own.
struct StepError {
    line: Option<usize>,
    problem: String,
}

impl From<String> for StepError {
    fn from(problem: String) -> Self {
        StepError {
            line: None,
            problem,
        }
    }
}

impl From<&str> for StepError {
    fn from(problem: &str) -> Self {
        StepError::from(problem.to_string())
    }
}

/// Why a command line written by a step is not one line.
fn one_line(key: &str, text: &str) -> Result<(), String> {
    if text.contains(['\r', '\n']) {
        return Err(format!(
            "{key} = {text:?}: a command line cannot hold a line end (mailwire adds CRLF); \
             for several commands in one write use pipeline = [\"...\", \"...\"]"
        ));
    }
    Ok(())
}

fn validate_step(raw: RawStep, line: usize, text: &str) -> Result<Step, StepError> {
    let mut actions = Vec::new();
    if let Some(mss) = raw.mss
        && mss < MIN_MSS
    {
        return Err(format!(
            "mss = {mss}: the smallest segment size Linux accepts is {MIN_MSS} octets"
        )
        .into());
    }
    // (`send` may be a whole message after a 354 reply: checked with the steps before it.)
    for (key, lines) in [("pipeline", &raw.pipeline), ("split", &raw.split)] {
        for l in lines.iter().flatten() {
            one_line(key, l)?;
        }
    }
    if let Some(protocol) = raw.connect {
        let to = match raw.to.as_deref() {
            Some(text) => Some(server_address(text).map_err(|e| format!("to = {e}"))?),
            None => None,
        };
        if raw.tls == Some(true) {
            actions.push(Action::ConnectTls {
                protocol,
                mss: raw.mss,
                to,
            });
        } else {
            actions.push(Action::Connect {
                protocol,
                mss: raw.mss,
                to,
            });
        }
    } else if raw.mss.is_some() {
        return Err("mss is only meaningful with connect".into());
    } else if raw.to.is_some() {
        return Err("to is only meaningful with connect".into());
    } else if raw.tls.is_some() {
        return Err(
            "tls is only meaningful with connect (implicit TLS); to start TLS on a connection \
             use starttls = true"
                .into(),
        );
    }
    if let Some(lines) = &raw.inject {
        if raw.starttls != Some(true) {
            return Err("inject is only meaningful with starttls = true".into());
        }
        if lines.is_empty() {
            return Err("inject needs at least one line".into());
        }
        for l in lines {
            one_line("inject", l)?;
        }
    }
    if raw.starttls == Some(true) {
        actions.push(Action::StartTls {
            inject: raw.inject.unwrap_or_default(),
        });
    }
    if let Some(a) = raw.auth {
        let mechanism = Mechanism::from_name(&a.mechanism).ok_or_else(|| {
            let known: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
            format!(
                "auth mechanism \"{}\": expected one of {}",
                a.mechanism,
                known.join(", ")
            )
        })?;
        actions.push(Action::Auth {
            mechanism,
            user: a.user,
            password: a.password,
        });
    }
    if raw.pause_ms.is_some() && raw.split.is_none() {
        return Err("pause_ms is only meaningful with split".into());
    }
    if let Some(line) = raw.send {
        actions.push(Action::Send(line));
    }
    if let Some(lines) = raw.pipeline {
        if lines.len() < 2 {
            return Err("pipeline needs at least two command lines".into());
        }
        actions.push(Action::Pipeline(lines));
    }
    if let Some(pieces) = raw.split {
        if pieces.len() < 2 {
            return Err("split needs at least two pieces".into());
        }
        let pause_ms = raw.pause_ms.unwrap_or(DEFAULT_SPLIT_PAUSE_MS);
        if pause_ms > MAX_WAIT_MS {
            return Err(format!("pause_ms = {pause_ms}: at most {MAX_WAIT_MS} (a minute)").into());
        }
        actions.push(Action::Split {
            pieces,
            pause: Duration::from_millis(pause_ms),
        });
    }
    if let Some(l) = raw.login {
        actions.push(Action::Login {
            user: l.user,
            password: l.password,
            apop: l.apop,
        });
    }
    if raw.list == Some(true) {
        actions.push(Action::List);
    }
    if let Some(n) = raw.read {
        actions.push(Action::Read(n));
    }
    if let Some(n) = raw.delete {
        actions.push(Action::Delete(n));
    }
    if let Some(mail) = raw.send_mail {
        actions.push(Action::SendMail(mail));
    }
    if raw.quit == Some(true) {
        actions.push(Action::Quit);
    }
    if raw.drop == Some(true) {
        actions.push(Action::Drop);
    }
    if raw.abort == Some(true) {
        actions.push(Action::Abort);
    }
    if let Some(ms) = raw.wait_ms {
        if ms == 0 || ms > MAX_WAIT_MS {
            return Err(format!(
                "wait_ms = {ms}: give a wait from 1 to {MAX_WAIT_MS} milliseconds (a minute)"
            )
            .into());
        }
        actions.push(Action::Wait(Duration::from_millis(ms)));
    }
    if raw.shutdown == Some(true) {
        actions.push(Action::ShutDown);
    }
    if let Some(side) = raw.lose {
        if side != "server" {
            return Err(format!(
                "lose = \"{side}\": only \"server\" is possible (the server's next data \
                 segment is lost once)"
            )
            .into());
        }
        actions.push(Action::LoseNextFromServer);
    }
    let action = match actions.len() {
        1 => actions.pop().ok_or("no action")?,
        0 => {
            return Err(
                "the step has no action; expected one of connect, send, pipeline, \
                        split, login, auth, starttls, list, read, delete, send_mail, quit, drop, \
                        abort, wait_ms, lose, shutdown"
                    .into(),
            );
        }
        n => {
            return Err(format!("the step has {n} actions; give exactly one per step").into());
        }
    };
    let expect = match (raw.expect, raw.expect_text) {
        (Some(status), expect_text) => {
            let at = line_of(text, status.span().start);
            Some(
                parse_expect(status.into_inner(), expect_text).map_err(|problem| StepError {
                    line: Some(at),
                    problem,
                })?,
            )
        }
        (None, Some(_)) => {
            return Err("expect_text needs expect (\"+OK\", \"-ERR\" or a code)".into());
        }
        (None, None) => None,
    };
    if matches!(action, Action::Drop | Action::Abort) && expect.is_some() {
        return Err("drop and abort get no reply, so they cannot expect one".into());
    }
    if matches!(action, Action::LoseNextFromServer) && expect.is_some() {
        return Err("lose sends nothing, so it cannot expect a reply".into());
    }
    Ok(Step {
        caption: raw.caption,
        rfc: raw.rfc,
        session: raw.session.unwrap_or_else(|| "main".to_string()),
        action,
        expect,
        line,
    })
}

fn parse_expect(status: String, text: Option<String>) -> Result<Expect, String> {
    let ok = status == "+OK"
        || status == "-ERR"
        || (status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(format!(
            "expect = \"{status}\": expected \"+OK\", \"-ERR\" or a three-digit SMTP code"
        ));
    }
    Ok(Expect { status, text })
}

/// Why a typed server address is not one (the text as typed, trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// Not `HOST:PORT` with an IP address or `localhost`.
    NotAnAddress { text: String },
    /// Port 0.
    PortZero { text: String },
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::NotAnAddress { text } => write!(
                f,
                "\"{text}\" is not a server address: write HOST:PORT with an IP address or \
                 localhost, such as \"127.0.0.1:8110\""
            ),
            AddressError::PortZero { text } => {
                write!(f, "\"{text}\": port 0 cannot be connected to")
            }
        }
    }
}

impl std::error::Error for AddressError {}

/// A server address as typed, `HOST:PORT` with an IP address or `localhost` as the host
/// (`127.0.0.1:8110`, `[::1]:110`, `localhost:8110`; no name lookup), or why it is not one.
pub fn server_address(text: &str) -> Result<SocketAddr, AddressError> {
    let text = text.trim();
    let localhost = text
        .strip_prefix("localhost:")
        .and_then(|port| port.parse::<u16>().ok())
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    let addr = match localhost {
        Some(addr) => addr,
        None => text.parse().map_err(|_| AddressError::NotAnAddress {
            text: text.to_string(),
        })?,
    };
    if addr.port() == 0 {
        return Err(AddressError::PortZero {
            text: text.to_string(),
        });
    }
    Ok(addr)
}

/// The 1-based line of byte `offset` in `text`.
/// The line where a TOML error that came without a place (`message`) begins: the first
/// line `k` such that the text up to and including line `k` already gives the same error,
/// found by bisection (about log2(lines) more readings of the text). `None` if the whole
/// text does not give it, or the bisection lands on a line whose start does not.
fn line_of_spanless_error(text: &str, message: &str) -> Option<usize> {
    let same_error = |end: usize| {
        let prefix = text.get(..end).unwrap_or(text);
        toml::from_str::<toml::Table>(prefix)
            .err()
            .is_some_and(|e| e.span().is_none() && e.message().trim() == message)
    };
    // Where each line ends (after its newline), and the text's end for the last one.
    let mut ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    if ends.last() != Some(&text.len()) {
        ends.push(text.len());
    }
    if !ends.last().is_some_and(|&end| same_error(end)) {
        return None;
    }
    // Invariant: the first `hi` lines give the error; the first `lo` lines do not (lo = 0:
    // the empty text parses).
    let (mut lo, mut hi) = (0usize, ends.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ends.get(mid - 1).is_some_and(|&end| same_error(end)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// The TOML reader's message in words a scenario author can act on.
fn explain_toml_message(message: &str) -> String {
    if message == "recursion limit" {
        "recursion limit: the keys, tables or arrays here nest more deeply than the TOML \
         reader follows (a dotted key of dozens of parts?); a scenario needs only a few levels"
            .to_string()
    } else {
        message.to_string()
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The built-in scenarios, compiled into the binary: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("rfc1939", include_str!("../../scenarios/rfc1939.toml")),
    (
        "class-project",
        include_str!("../../scenarios/class-project.toml"),
    ),
    (
        "kilroy-pluto",
        include_str!("../../scenarios/kilroy-pluto.toml"),
    ),
    (
        "assignment",
        include_str!("../../scenarios/assignment.toml"),
    ),
    ("putty", include_str!("../../scenarios/putty.toml")),
    (
        "rset-undoes-dele",
        include_str!("../../scenarios/rset-undoes-dele.toml"),
    ),
    (
        "dropped-connection",
        include_str!("../../scenarios/dropped-connection.toml"),
    ),
    ("in-use", include_str!("../../scenarios/in-use.toml")),
    (
        "dot-stuffing",
        include_str!("../../scenarios/dot-stuffing.toml"),
    ),
    (
        "top-and-uidl",
        include_str!("../../scenarios/top-and-uidl.toml"),
    ),
    ("apop-only", include_str!("../../scenarios/apop-only.toml")),
    (
        "login-in-clear",
        include_str!("../../scenarios/login-in-clear.toml"),
    ),
    (
        "login-after-stls",
        include_str!("../../scenarios/login-after-stls.toml"),
    ),
    (
        "login-with-scram",
        include_str!("../../scenarios/login-with-scram.toml"),
    ),
    (
        "submission-tls",
        include_str!("../../scenarios/submission-tls.toml"),
    ),
    (
        "starttls-injection",
        include_str!("../../scenarios/starttls-injection.toml"),
    ),
    (
        "retransmission",
        include_str!("../../scenarios/retransmission.toml"),
    ),
    (
        "zero-window",
        include_str!("../../scenarios/zero-window.toml"),
    ),
    ("shutdown", include_str!("../../scenarios/shutdown.toml")),
    (
        "smtp-errors",
        include_str!("../../scenarios/smtp-errors.toml"),
    ),
    (
        "pipelining",
        include_str!("../../scenarios/pipelining.toml"),
    ),
    (
        "pop3-commands",
        include_str!("../../scenarios/pop3-commands.toml"),
    ),
    (
        "smtp-commands",
        include_str!("../../scenarios/smtp-commands.toml"),
    ),
    (
        "autologout",
        include_str!("../../scenarios/autologout.toml"),
    ),
    ("tcp-close", include_str!("../../scenarios/tcp-close.toml")),
    ("nagle", include_str!("../../scenarios/nagle.toml")),
];

/// Loads a built-in scenario by name, or a scenario file by path.
pub fn find(name_or_path: &str) -> Result<Scenario, ScenarioError> {
    if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
        return Scenario::parse(text, &format!("builtin:{name}"));
    }
    let path = PathBuf::from(name_or_path);
    if path.exists() {
        return Scenario::load(&path);
    }
    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    Err(ScenarioError {
        source: name_or_path.to_string(),
        line: None,
        problem: format!(
            "no such file and no built-in scenario of that name; built-in: {}",
            names.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
title = "t"
description = "d"
protocols = ["pop3"]
[fixture]
[[fixture.user]]
name = "mrose"
password = "tanstaaf"

[[step]]
caption = "connect"
connect = "pop3"
expect = "+OK"
"#;

    #[test]
    fn every_builtin_scenario_parses() {
        for (name, text) in BUILTIN {
            let s = Scenario::parse(text, name);
            assert!(
                s.is_ok(),
                "{name}: {}",
                s.err().map(|e| e.to_string()).unwrap_or_default()
            );
        }
    }

    /// The TOML reader reports its recursion limit on a dotted key without a place; the
    /// error still names the line (found by the fuzzer: `fuzz/README.md`).
    #[test]
    fn a_too_deep_dotted_key_is_named_by_its_line() {
        let key = vec!["a"; 100].join(".");
        for (text, line) in [
            (format!("title = \"t\"\n\n{key} = 1\n[[step]]\n"), 3),
            (format!("{key} = 1"), 1),
            (format!("x = 1\n{key}=1\ny = 2\n\n\n"), 2),
        ] {
            let e = Scenario::parse(&text, "deep.toml").unwrap_err();
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.problem.contains("nest more deeply"), "{e}");
            assert!(
                e.to_string().contains(&format!("deep.toml, line {line}: ")),
                "{e}"
            );
        }
        // Deeply nested arrays and inline tables: the reader gives those a place itself.
        for text in [
            format!("a = {}1{}", "[".repeat(200), "]".repeat(200)),
            format!("a = {}1{}", "{b = ".repeat(200), "}".repeat(200)),
        ] {
            let e = Scenario::parse(&text, "deep.toml").unwrap_err();
            assert_eq!(e.line, Some(1), "{e}");
        }
    }

    #[test]
    fn minimal_scenario() {
        let s = Scenario::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(s.steps.len(), 1);
        assert_eq!(s.steps[0].line, 10, "the line of its [[step]] header");
        assert_eq!(
            s.steps[0].action,
            Action::Connect {
                protocol: Protocol::Pop3,
                mss: None,
                to: None
            }
        );
        assert_eq!(s.fixture.hostname, "localhost");
    }

    #[test]
    fn tls_and_auth_steps() {
        let text = format!(
            "{MINIMAL}[[step]]\ncaption = \"t\"\nstarttls = true\n\
             [[step]]\ncaption = \"a\"\nauth = {{ mechanism = \"scram-sha-256\", user = \"u\", \
             password = \"p\" }}\nexpect = \"+OK\"\n\
             [[step]]\nsession = \"s\"\ncaption = \"c\"\nconnect = \"smtp\"\ntls = true\n"
        );
        let s = Scenario::parse(&text, "t.toml").unwrap();
        assert!(s.uses_tls());
        assert_eq!(s.steps[1].action, Action::StartTls { inject: vec![] });
        assert_eq!(
            s.steps[2].action,
            Action::Auth {
                mechanism: Mechanism::ScramSha256,
                user: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(
            s.steps[3].action,
            Action::ConnectTls {
                protocol: Protocol::Smtp,
                mss: None,
                to: None
            }
        );
        assert!(!Scenario::parse(MINIMAL, "t.toml").unwrap().uses_tls());
        let e = error_with(
            "[[step]]\ncaption = \"x\"\nauth = { mechanism = \"DIGEST-MD5\", user = \"u\", password = \"p\" }\n",
        );
        assert!(
            e.problem.contains("\"DIGEST-MD5\"") && e.problem.contains("SCRAM-SHA-256"),
            "{e}"
        );
        let e = error_with("[[step]]\ncaption = \"x\"\nsend = \"NOOP\"\ntls = true\n");
        assert!(e.problem.contains("starttls = true"), "{e}");
        let e = error_with("[[step]]\ncaption = \"x\"\nstarttls = true\nquit = true\n");
        assert!(e.problem.contains("2 actions"), "{e}");
    }

    #[test]
    fn starttls_may_carry_injected_lines() {
        let text = format!(
            "{MINIMAL}[[step]]\ncaption = \"t\"\nstarttls = true\n\
             inject = [\"RSET\", \"MAIL FROM:<evil@example.com>\"]\nexpect = \"+OK\"\n"
        );
        let s = Scenario::parse(&text, "t.toml").unwrap();
        assert_eq!(
            s.steps[1].action,
            Action::StartTls {
                inject: vec!["RSET".into(), "MAIL FROM:<evil@example.com>".into()]
            }
        );
        let e = error_with("[[step]]\ncaption = \"x\"\nsend = \"NOOP\"\ninject = [\"RSET\"]\n");
        assert!(e.problem.contains("only meaningful with starttls"), "{e}");
        let e = error_with("[[step]]\ncaption = \"x\"\nstarttls = true\ninject = []\n");
        assert!(e.problem.contains("at least one line"), "{e}");
        let e = error_with("[[step]]\ncaption = \"x\"\nstarttls = true\ninject = [\"A\\r\\nB\"]\n");
        assert!(e.problem.contains("line end"), "{e}");
    }

    #[test]
    fn connect_may_name_another_server() {
        let remote = MINIMAL.replace(
            "connect = \"pop3\"",
            "connect = \"pop3\"\nto = \"127.0.0.1:8110\"",
        );
        let s = Scenario::parse(&remote, "t.toml").unwrap();
        assert_eq!(
            s.steps[0].action,
            Action::Connect {
                protocol: Protocol::Pop3,
                mss: None,
                to: Some(SocketAddr::from(([127, 0, 0, 1], 8110)))
            }
        );

        let bad = MINIMAL.replace(
            "connect = \"pop3\"",
            "connect = \"pop3\"\nto = \"localhost:port\"",
        );
        let e = Scenario::parse(&bad, "x.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.toml, line 10: to = \"localhost:port\" is not a server address"),
            "{e}"
        );

        let without_connect = MINIMAL.replace(
            "connect = \"pop3\"",
            "send = \"STAT\"\nto = \"127.0.0.1:8110\"",
        );
        let e = Scenario::parse(&without_connect, "x.toml").unwrap_err();
        assert_eq!(e.line, Some(10));
        assert!(e.problem.contains("only meaningful with connect"), "{e}");
    }

    /// The error for MINIMAL with `extra` appended (after the connect step).
    fn error_with(extra: &str) -> ScenarioError {
        Scenario::parse(&format!("{MINIMAL}{extra}"), "x.toml").unwrap_err()
    }

    #[test]
    fn mistakes_that_would_only_show_while_running_are_caught_when_loading() {
        // Line 14 is the first line after MINIMAL.
        let e = error_with("[[step]]\ncaption = \"c\"\nsession = \"ghost\"\nsend = \"STAT\"\n");
        assert_eq!(e.line, Some(14), "{e}");
        assert!(
            e.problem
                .starts_with("session \"ghost\" has no connection yet"),
            "{e}"
        );

        let e =
            error_with("[[step]]\ncaption = \"c\"\nsession = \"s\"\nconnect = \"pop3\"\nmss = 1\n");
        assert_eq!(e.line, Some(14), "{e}");
        assert!(
            e.problem.contains("mss = 1: the smallest segment size"),
            "{e}"
        );

        let e = error_with("[[step]]\ncaption = \"c\"\nsend = \"STAT\\r\\nLIST\"\n");
        assert!(e.problem.contains("cannot hold a line end"), "{e}");
        let e = error_with("[[step]]\ncaption = \"c\"\npipeline = [\"STAT\", \"LIST\\nX\"]\n");
        assert!(e.problem.starts_with("pipeline = \"LIST\\nX\""), "{e}");
        // After a step that expects 354, a send is the message and may have lines.
        let message = "[[step]]\ncaption = \"d\"\nsend = \"DATA\"\nexpect = \"354\"\n\
                       [[step]]\ncaption = \"m\"\nsend = \"Subject: s\\n\\nbody\"\n";
        assert!(Scenario::parse(&format!("{MINIMAL}{message}"), "x.toml").is_ok());
    }

    #[test]
    fn a_bad_reply_text_is_refused_before_the_run() {
        let text = "title = \"t\"\ndescription = \"d\"\nprotocols = [\"pop3\"]\n\
                    [fixture.replies.pop3]\ndele = \"{user} gone\"\n\
                    [[step]]\ncaption = \"c\"\nconnect = \"pop3\"\n";
        let e = Scenario::parse(text, "t.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml: [fixture.replies]: the reply text pop3.dele has the placeholder \
             {user}, which it does not know: use {msg}"
        );
        let unknown = text.replace("dele =", "delete =");
        let e = Scenario::parse(&unknown, "t.toml").unwrap_err();
        assert!(e.to_string().contains("unknown field `delete`"), "{e}");
    }

    #[test]
    fn fixture_mistakes_name_the_line_of_the_user_or_mail() {
        let with_mail = |mail: &str| {
            MINIMAL.replace(
                "password = \"tanstaaf\"\n",
                &format!("password = \"tanstaaf\"\n[[fixture.user.mail]]\nfrom = \"a@b\"\nsubject = \"Lunch\"\n{mail}\n"),
            )
        };
        let e = Scenario::parse(&with_mail("size = 3"), "x.toml").unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.problem.contains("more than its size 3"), "{e}");
        let e = Scenario::parse(&with_mail("size = 99999999999"), "x.toml").unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.problem.contains("at most 16777216 octets"), "{e}");
        assert!(Scenario::parse(&with_mail("size = 5000"), "x.toml").is_ok());

        let e =
            Scenario::parse(&MINIMAL.replace("\"mrose\"", "\"../../etc\""), "x.toml").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.problem.contains("not a plain user name"), "{e}");

        let twice = MINIMAL.replace(
            "[[step]]",
            "[[fixture.user]]\nname = \"mrose\"\npassword = \"x\"\n\n[[step]]",
        );
        let e = Scenario::parse(&twice, "x.toml").unwrap_err();
        assert_eq!(e.line, Some(10), "{e}");
        assert!(e.problem.contains("defined twice"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_what_was_expected() {
        let two_actions =
            MINIMAL.replace("connect = \"pop3\"", "connect = \"pop3\"\nsend = \"STAT\"");
        let e = Scenario::parse(&two_actions, "x.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.toml, line 10: the step has 2 actions; give exactly one per step"
        );

        let typo = MINIMAL.replace("expect = \"+OK\"", "expekt = \"+OK\"");
        let e = Scenario::parse(&typo, "x.toml").unwrap_err();
        assert_eq!(e.line, Some(13));
        assert!(e.problem.contains("unknown field `expekt`"), "{e}");

        let bad_expect = MINIMAL.replace("expect = \"+OK\"", "expect = \"OK\"");
        let e = Scenario::parse(&bad_expect, "x.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.toml, line 13: expect = \"OK\": expected"),
            "{e}"
        );

        let bad_proto = MINIMAL.replace("connect = \"pop3\"", "connect = \"imap\"");
        let e = Scenario::parse(&bad_proto, "x.toml").unwrap_err();
        assert_eq!(e.line, Some(12));

        let e = Scenario::parse("title = ", "x.toml").unwrap_err();
        assert_eq!(e.line, Some(1));

        let bad_user = MINIMAL.replace("name = \"mrose\"", "name = \"../x\"");
        let e = Scenario::parse(&bad_user, "x.toml").unwrap_err();
        assert!(e.problem.contains("not a plain user name"), "{e}");
    }

    #[test]
    fn lose_takes_only_the_server_and_no_expectation() {
        let e = error_with("[[step]]\ncaption = \"l\"\nlose = \"client\"\n");
        assert!(
            e.problem.starts_with("lose = \"client\": only \"server\""),
            "{e}"
        );
        let e = error_with("[[step]]\ncaption = \"l\"\nlose = \"server\"\nexpect = \"+OK\"\n");
        assert!(e.problem.contains("lose sends nothing"), "{e}");
    }

    #[test]
    fn wait_abort_and_split_pauses() {
        let s = Scenario::parse(
            &format!(
                "{MINIMAL}[[step]]\ncaption = \"w\"\nwait_ms = 1500\n\
                 [[step]]\ncaption = \"s\"\nsplit = [\"NO\", \"OP\"]\npause_ms = 0\n\
                 [[step]]\ncaption = \"t\"\nsplit = [\"NO\", \"OP\"]\n\
                 [[step]]\ncaption = \"a\"\nabort = true\n"
            ),
            "t.toml",
        )
        .unwrap();
        let actions: Vec<&Action> = s.steps.iter().skip(1).map(|s| &s.action).collect();
        let pieces = vec!["NO".to_string(), "OP".to_string()];
        assert_eq!(
            actions,
            [
                &Action::Wait(Duration::from_millis(1500)),
                &Action::Split {
                    pieces: pieces.clone(),
                    pause: Duration::ZERO
                },
                &Action::Split {
                    pieces,
                    pause: Duration::from_millis(DEFAULT_SPLIT_PAUSE_MS)
                },
                &Action::Abort,
            ]
        );

        let e = error_with("[[step]]\ncaption = \"w\"\nwait_ms = 0\n");
        assert!(
            e.problem.starts_with("wait_ms = 0: give a wait from 1 to"),
            "{e}"
        );
        let e = error_with("[[step]]\ncaption = \"w\"\nwait_ms = 600000\n");
        assert!(e.problem.contains("60000 milliseconds (a minute)"), "{e}");
        let e = error_with("[[step]]\ncaption = \"a\"\nabort = true\nexpect = \"+OK\"\n");
        assert!(e.problem.contains("cannot expect one"), "{e}");
        let e = error_with("[[step]]\ncaption = \"p\"\nsend = \"NOOP\"\npause_ms = 5\n");
        assert_eq!(e.problem, "pause_ms is only meaningful with split");
    }

    #[test]
    fn server_addresses_as_typed() {
        assert_eq!(
            server_address(" localhost:8110 "),
            Ok(SocketAddr::from(([127, 0, 0, 1], 8110)))
        );
        assert_eq!(server_address("[::1]:110").map(|a| a.port()), Ok(110));
        let e = server_address("mail.example.com:110").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"mail.example.com:110\" is not a server address: write HOST:PORT with an IP \
             address or localhost, such as \"127.0.0.1:8110\""
        );
        let e = server_address("127.0.0.1:0").unwrap_err();
        assert_eq!(
            e,
            AddressError::PortZero {
                text: "127.0.0.1:0".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "\"127.0.0.1:0\": port 0 cannot be connected to"
        );
    }

    #[test]
    fn unknown_builtin_lists_the_known_ones() {
        let e = find("no-such-scenario").unwrap_err();
        assert!(e.problem.contains("rfc1939"), "{e}");
    }
}
