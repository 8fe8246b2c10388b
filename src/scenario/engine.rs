//! The step engine: performs a scenario's steps one at a time with the client machines over
//! a [`Transport`], records what crossed the wire, and checks each expectation.

use std::collections::HashMap;
use std::fmt::Display;

use super::format::{Action, Expect, MailDate, MailSpec, Scenario, Step};
use super::transport::Transport;
use crate::exchange::{ConnId, Exchange, ExchangeKind, StepError, StepOutcome, TransportError};
use crate::proto::pop3::Command;
use crate::proto::pop3::client::{Pop3Client, Pop3Reply};
use crate::proto::sasl::{self, Mechanism, client::SaslClient};
use crate::proto::smtp::client::{ClientCommand, SmtpClient, SmtpReply};
use crate::proto::smtp::compose::{Draft, compose};
use crate::proto::{ClientMachine, Machine, Output, Protocol};

// A run has a handful of sessions: boxing the larger machine would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Client {
    Pop3(Pop3Client),
    Smtp(SmtpClient),
}

impl Client {
    fn protocol(&self) -> Protocol {
        match self {
            Client::Pop3(_) => Protocol::Pop3,
            Client::Smtp(_) => Protocol::Smtp,
        }
    }

    /// Whether the session is over: the server closed the connection or broke the
    /// protocol so that the machine cannot go on.
    fn is_ended(&self) -> bool {
        match self {
            Client::Pop3(c) => c.is_ended(),
            Client::Smtp(c) => c.is_ended(),
        }
    }

    /// What has arrived of a reply that is not complete yet.
    fn progress(&self) -> Option<String> {
        match self {
            Client::Pop3(c) => c.progress(),
            Client::Smtp(c) => c.progress(),
        }
    }

    /// Bytes from the server; empty: it closed the connection.
    fn receive(&mut self, bytes: &[u8]) {
        match (self, bytes.is_empty()) {
            (Client::Pop3(c), true) => c.receive_eof(),
            (Client::Pop3(c), false) => c.receive(bytes),
            (Client::Smtp(c), true) => c.receive_eof(),
            (Client::Smtp(c), false) => c.receive(bytes),
        }
    }

    /// The server stopped sending: what the client waited for and what had arrived of it;
    /// the reply begun is given up (and logged as far as it came), so that the replies that
    /// follow pair with their own commands.
    fn give_up(&mut self, log: &mut Vec<Exchange>) -> (String, Option<String>) {
        let waiting_for = match self {
            Client::Pop3(c) => c.waiting_for(),
            Client::Smtp(c) => c.waiting_for(),
        }
        .unwrap_or_else(|| "a reply".to_string());
        let so_far = self.progress();
        let partial = match self {
            Client::Pop3(c) => c.give_up_reply().map(|r| {
                // Only what arrived: no "." line came, so none is shown.
                let mut e = r.exchange();
                if e.more.last().is_some_and(|l| l == ".") {
                    e.more.pop();
                }
                e
            }),
            Client::Smtp(c) => c.give_up_reply().map(|r| r.exchange()),
        };
        let partial = partial.map(|mut e| {
            if let Some(stream) = &e.stream {
                e.octets = usize::try_from(stream.end - stream.start).unwrap_or(e.octets);
            }
            e
        });
        log.extend(partial);
        (waiting_for, so_far)
    }

    /// Every reply the machine has: logged, and kept for the expectation.
    fn drain(&mut self, log: &mut Vec<Exchange>, got: &mut Vec<Got>) -> Result<(), StepError> {
        match self {
            Client::Pop3(c) => drain(c, log, got),
            Client::Smtp(c) => drain(c, log, got),
        }
    }

    /// Whether the server agreed to STLS/STARTTLS and the handshake is due.
    fn tls_requested(&self) -> bool {
        match self {
            Client::Pop3(c) => c.tls_requested(),
            Client::Smtp(c) => c.tls_requested(),
        }
    }

    fn tls_started(&mut self) {
        match self {
            Client::Pop3(c) => c.tls_started(),
            Client::Smtp(c) => c.tls_started(),
        }
    }
}

struct Session {
    conn: ConnId,
    client: Client,
    /// Bytes written to the server so far: where the next command begins in the
    /// client-to-server stream.
    sent: u64,
    /// TLS protects the connection: what the exchanges say travels inside TLS records, so
    /// they have no place in the TCP byte stream (`stream: None`) to link them to.
    tls: bool,
}

/// A reply of either protocol, reduced to what expectations look at.
struct Got {
    status: String,
    first_line: String,
    /// The base64 challenge of an AUTH continuation (`+ ...`, `334 ...`).
    challenge: Option<String>,
}

/// Runs a scenario step by step.
pub struct Engine<T: Transport> {
    scenario: Scenario,
    transport: T,
    sessions: HashMap<String, Session>,
    /// The last connection each session name used (kept after it closed).
    last_conn: HashMap<String, ConnId>,
    /// The protocol each session name spoke (kept after it closed).
    protocols: HashMap<String, Protocol>,
    next: usize,
    /// The step being run read the end of the server's stream.
    server_closed: bool,
}

impl<T: Transport> Engine<T> {
    /// An engine at the first step.
    pub fn new(scenario: Scenario, transport: T) -> Self {
        Self {
            scenario,
            transport,
            sessions: HashMap::new(),
            last_conn: HashMap::new(),
            protocols: HashMap::new(),
            next: 0,
            server_closed: false,
        }
    }

    /// The scenario being run.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Index of the next step to run.
    pub fn position(&self) -> usize {
        self.next
    }

    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        self.next >= self.scenario.steps.len()
    }

    /// The transport (to reach its capture, for instance).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Runs the next step; `None` when all have run.
    pub fn step(&mut self) -> Option<StepOutcome> {
        let step = self.scenario.steps.get(self.next)?.clone();
        let index = self.next;
        self.next += 1;
        Some(self.run_step(&step, index))
    }

    /// Runs a step that is not in the scenario (a command typed in the window's console, a
    /// menu action); `index` is what the outcome reports.
    pub fn run_step(&mut self, step: &Step, index: usize) -> StepOutcome {
        let mut exchanges = Vec::new();
        self.server_closed = false;
        let result = self.perform(step, &mut exchanges);
        self.close_if_ended(&step.session);
        let check = result.and_then(|got| check_expectation(step.expect.as_ref(), got.as_ref()));
        StepOutcome {
            index,
            session: step.session.clone(),
            protocol: self.protocols.get(&step.session).copied(),
            conn: self.last_conn.get(&step.session).copied(),
            exchanges,
            check,
            events: self.transport.take_events(),
            server_closed: self.server_closed,
        }
    }

    /// Whether a session of that name is connected.
    pub fn is_connected(&self, session: &str) -> bool {
        self.sessions.contains_key(session)
    }

    /// A session whose client machine ended (the server closed, or broke the protocol so
    /// that no later reply could be paired with its command) is closed on this side too,
    /// so the next step on it reports `NotConnected` and a connect may start it afresh.
    fn close_if_ended(&mut self, name: &str) {
        if self.sessions.get(name).is_some_and(|s| s.client.is_ended())
            && let Some(s) = self.sessions.remove(name)
        {
            self.transport.close(s.conn);
        }
    }

    /// Runs every remaining step.
    pub fn run_all(&mut self) -> Vec<StepOutcome> {
        std::iter::from_fn(|| self.step()).collect()
    }

    fn perform(&mut self, step: &Step, log: &mut Vec<Exchange>) -> Result<Option<Got>, StepError> {
        let connect = match &step.action {
            Action::Connect { protocol, mss, to } => Some((protocol, mss, to, false)),
            Action::ConnectTls { protocol, mss, to } => Some((protocol, mss, to, true)),
            _ => None,
        };
        if let Some((protocol, mss, to, tls)) = connect {
            if self.sessions.contains_key(&step.session) {
                return Err(StepError::AlreadyConnected {
                    session: step.session.clone(),
                });
            }
            let fixture = &self.scenario.fixture;
            let (nagle, rcvbuf) = (fixture.client_nagle, fixture.client_rcvbuf);
            let conn = if tls {
                self.transport
                    .connect_tls(*protocol, *mss, *to, nagle, rcvbuf)?
            } else {
                self.transport
                    .connect(*protocol, *mss, *to, nagle, rcvbuf)?
            };
            let client = match protocol {
                Protocol::Pop3 => Client::Pop3(Pop3Client::new()),
                Protocol::Smtp => {
                    let mut c = SmtpClient::new();
                    c.set_helo_fallback(false);
                    Client::Smtp(c)
                }
            };
            let session = Session {
                conn,
                client,
                sent: 0,
                tls,
            };
            self.sessions.insert(step.session.clone(), session);
            self.last_conn.insert(step.session.clone(), conn);
            self.protocols.insert(step.session.clone(), *protocol);
            let replies = self.collect(&step.session, 1, log)?;
            return Ok(replies.into_iter().last());
        }
        if !self.sessions.contains_key(&step.session) {
            return Err(StepError::NotConnected {
                session: step.session.clone(),
            });
        }
        match &step.action {
            Action::Connect { .. } | Action::ConnectTls { .. } => Ok(None),
            Action::StartTls { inject } => self.start_tls(&step.session, inject, log),
            Action::Auth {
                mechanism,
                user,
                password,
            } => self.auth(&step.session, *mechanism, user, password, log),
            Action::Drop => {
                if let Some(s) = self.sessions.remove(&step.session) {
                    self.transport.close(s.conn);
                }
                Ok(None)
            }
            Action::Abort => {
                if let Some(s) = self.sessions.remove(&step.session) {
                    self.transport.abort(s.conn);
                }
                Ok(None)
            }
            Action::Wait(duration) => self.wait(&step.session, *duration, log),
            Action::ShutDown => self.shut_down(&step.session, log),
            Action::LoseNextFromServer => {
                let conn = self.session(&step.session)?.conn;
                self.transport.lose_next_from_server(conn)?;
                Ok(None)
            }
            Action::Send(line) => {
                self.send_lines(&step.session, std::slice::from_ref(line), None, log)
            }
            Action::Pipeline(lines) => self.send_lines(&step.session, lines, None, log),
            Action::Split { pieces, pause } => {
                self.send_lines(&step.session, pieces, Some(*pause), log)
            }
            Action::Login {
                user,
                password,
                apop,
            } => self.login(&step.session, user, password, *apop, log),
            Action::List => self.pop3_command(&step.session, Command::List(None), log),
            Action::Read(n) => self.pop3_command(&step.session, Command::Retr(*n), log),
            Action::Delete(n) => self.pop3_command(&step.session, Command::Dele(*n), log),
            Action::Quit => {
                let got = match self.session(&step.session)?.client {
                    Client::Pop3(_) => self.pop3_command(&step.session, Command::Quit, log)?,
                    Client::Smtp(_) => {
                        self.smtp_command(&step.session, ClientCommand::Quit, log)?
                    }
                };
                if let Some(s) = self.sessions.remove(&step.session) {
                    self.transport.close(s.conn);
                }
                Ok(got)
            }
            Action::SendMail(mail) => self.send_mail(&step.session, mail, log),
        }
    }

    fn session(&mut self, name: &str) -> Result<&mut Session, StepError> {
        self.sessions
            .get_mut(name)
            .ok_or_else(|| StepError::NotConnected {
                session: name.to_string(),
            })
    }

    fn wrong_protocol(&mut self, name: &str, action: String) -> StepError {
        let speaks = self
            .sessions
            .get(name)
            .map_or(Protocol::Pop3, |s| s.client.protocol());
        StepError::WrongProtocol {
            action,
            session: name.to_string(),
            speaks,
        }
    }

    /// Sends nothing for up to `duration`: logs what the server sends meanwhile and, when
    /// it closes the connection, notes it and closes this side too.
    fn wait(
        &mut self,
        name: &str,
        duration: std::time::Duration,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let conn = self.session(name)?.conn;
        let waited = self.transport.wait(conn, duration)?;
        self.take_waited(name, waited, log)
    }

    /// The servers shut down; the session records their last words and the close.
    fn shut_down(&mut self, name: &str, log: &mut Vec<Exchange>) -> Result<Option<Got>, StepError> {
        let conn = self.session(name)?.conn;
        let waited = self
            .transport
            .shut_down_servers(conn, std::time::Duration::from_secs(5))?;
        self.take_waited(name, waited, log)
    }

    /// Hands what arrived during a wait to the session's client machine, and closes the
    /// client's side when the server closed.
    fn take_waited(
        &mut self,
        name: &str,
        waited: super::transport::Waited,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let session = self.session(name)?;
        let mut got = Vec::new();
        if !waited.bytes.is_empty() {
            session.client.receive(&waited.bytes);
        }
        if waited.closed {
            session.client.receive(&[]);
        }
        let drained = session.client.drain(log, &mut got);
        if waited.closed {
            self.server_closed = true;
            if let Some(s) = self.sessions.remove(name) {
                self.transport.close(s.conn);
            }
        }
        drained?;
        Ok(got.pop())
    }

    /// Sends raw lines (each plus CRLF) in one write, or, with a `split` pause, the pieces
    /// of one line in separate writes; waits for every reply.
    fn send_lines(
        &mut self,
        name: &str,
        lines: &[String],
        split: Option<std::time::Duration>,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let whole = lines.concat();
        let commands: Vec<String> = if split.is_some() {
            vec![whole]
        } else {
            lines.to_vec()
        };
        let session = self.session(name)?;
        let mut wire = Vec::new();
        let mut expected = 0;
        for text in &commands {
            match &mut session.client {
                // A line typed in answer to an AUTH challenge (base64, or "*").
                Client::Pop3(c) if c.sasl_challenged() => {
                    c.send_sasl_line(text).map_err(protocol_error)?;
                    take_writes(c);
                }
                Client::Smtp(c) if c.sasl_challenged() => {
                    c.send_sasl_line(text).map_err(protocol_error)?;
                    take_writes(c);
                }
                Client::Pop3(c) => {
                    // The client machine learns the reply's shape; the bytes are sent as
                    // typed (lower case, odd spacing and all).
                    let stand_in = Command::parse(text.as_bytes()).unwrap_or(Command::Noop);
                    c.send(stand_in).map_err(protocol_error)?;
                    take_writes(c);
                }
                Client::Smtp(c) if c.content_expected() => {
                    c.send_content(text.as_bytes()).map_err(protocol_error)?;
                    let bytes = take_writes(c);
                    return self.write_and_wait(name, ExchangeKind::Content, &bytes, log);
                }
                Client::Smtp(c) => {
                    c.send(smtp_stand_in(text)).map_err(protocol_error)?;
                    take_writes(c);
                }
            }
            let start = session.sent + wire.len() as u64;
            wire.extend_from_slice(text.as_bytes());
            wire.extend_from_slice(b"\r\n");
            expected += 1;
            log.push(Exchange {
                kind: ExchangeKind::Command,
                line: text.clone(),
                more: Vec::new(),
                octets: text.len() + 2,
                stream: (!session.tls).then(|| start..session.sent + wire.len() as u64),
            });
        }
        if let Some(pause) = split {
            let count = lines.len();
            for (i, piece) in lines.iter().enumerate() {
                let mut bytes = piece.as_bytes().to_vec();
                if i + 1 == count {
                    bytes.extend_from_slice(b"\r\n");
                }
                self.transport_write(name, &bytes)?;
                if i + 1 < count && !pause.is_zero() {
                    self.transport.pause(pause);
                }
            }
        } else {
            self.transport_write(name, &wire)?;
        }
        let got = self.collect(name, expected, log)?.into_iter().last();
        // STLS or STARTTLS typed as a raw line, and accepted: the handshake follows at once.
        self.handshake_if_due(name)?;
        Ok(got)
    }

    /// After a reply that accepted STLS or STARTTLS: the TLS handshake, and from here on the
    /// session's exchanges travel inside TLS. Nothing when no handshake is due.
    fn handshake_if_due(&mut self, name: &str) -> Result<(), StepError> {
        let session = self.session(name)?;
        if !session.client.tls_requested() {
            return Ok(());
        }
        let conn = session.conn;
        self.transport.start_tls(conn)?;
        let session = self.session(name)?;
        session.client.tls_started();
        session.tls = true;
        Ok(())
    }

    /// Where `len` bytes written from `start` lie in the client's TCP byte stream; `None`
    /// inside TLS (they are carried, encrypted, by TLS records).
    fn place(
        &mut self,
        name: &str,
        start: u64,
        len: usize,
    ) -> Result<Option<std::ops::Range<u64>>, StepError> {
        let tls = self.session(name)?.tls;
        Ok((!tls).then(|| start..start + len as u64))
    }

    /// STLS or STARTTLS; when the server agrees, the TLS handshake at once (RFC 2595
    /// section 4, RFC 3207 section 4). What the server sent in clear after its go-ahead was
    /// dropped by the client machine.
    ///
    /// `inject`: lines an attacker slips in after the command, in the same write (the
    /// STARTTLS command-injection attack, CVE-2011-0411). The client machine knows only the
    /// command and waits for its one reply; the server must discard the rest unread (RFC
    /// 3207 section 6, RFC 2595 section 4).
    fn start_tls(
        &mut self,
        name: &str,
        inject: &[String],
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let got = if inject.is_empty() {
            match self.session(name)?.client {
                Client::Pop3(_) => self.pop3_command(name, Command::Stls, log)?,
                Client::Smtp(_) => self.smtp_command(name, ClientCommand::StartTls, log)?,
            }
        } else {
            let session = self.session(name)?;
            let mut wire = match &mut session.client {
                Client::Pop3(c) => {
                    c.send(Command::Stls).map_err(protocol_error)?;
                    take_writes(c)
                }
                Client::Smtp(c) => {
                    c.send(ClientCommand::StartTls).map_err(protocol_error)?;
                    take_writes(c)
                }
            };
            let start = session.sent;
            let mut command = command_exchange(&wire);
            command.stream = (!session.tls).then(|| start..start + wire.len() as u64);
            log.push(command);
            for line in inject {
                wire.extend_from_slice(line.as_bytes());
                wire.extend_from_slice(b"\r\n");
                // Not linked to a captured unit (`stream: None`): a decoder, like the
                // server, reads no command after STARTTLS until TLS begins, so there is
                // none; the octets are in the command's segment.
                log.push(Exchange {
                    kind: ExchangeKind::Command,
                    line: line.clone(),
                    more: Vec::new(),
                    octets: line.len() + 2,
                    stream: None,
                });
            }
            self.transport_write(name, &wire)?;
            self.collect(name, 1, log)?.into_iter().last()
        };
        self.handshake_if_due(name)?;
        Ok(got)
    }

    /// A whole SASL exchange (RFC 5034 section 4, RFC 4954 section 4): AUTH with the
    /// initial response, then an answer to each challenge, up to the final reply. A
    /// challenge the client cannot answer (SCRAM: a server that did not prove it knows the
    /// password) is cancelled with `*`, and the step fails saying why.
    fn auth(
        &mut self,
        name: &str,
        mechanism: Mechanism,
        user: &str,
        password: &str,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let nonce = self.transport.client_nonce();
        let mut sasl = SaslClient::new(mechanism, user, password, &nonce);
        let initial = sasl.initial_response().map(|r| {
            if r.is_empty() {
                "=".to_string()
            } else {
                sasl::encode(&r)
            }
        });
        let name_of = mechanism.name().to_string();
        let mut got = match self.session(name)?.client {
            Client::Pop3(_) => {
                let command = Command::Auth {
                    mechanism: name_of,
                    initial,
                };
                self.pop3_command(name, command, log)?
            }
            Client::Smtp(_) => {
                let command = ClientCommand::Auth {
                    mechanism: name_of,
                    initial,
                };
                self.smtp_command(name, command, log)?
            }
        };
        while let Some(challenge) = got.as_ref().and_then(|g| g.challenge.clone()) {
            let answer = sasl::decode(&challenge)
                .map_err(|_| format!("the server's challenge \"{challenge}\" is not base64"))
                .and_then(|c| sasl.respond(&c).map_err(|e| e.to_string()));
            let session = self.session(name)?;
            let written = match (&mut session.client, &answer) {
                (Client::Pop3(c), Ok(response)) => c
                    .send_sasl_response(response)
                    .map(|()| take_writes(c))
                    .map_err(protocol_error),
                (Client::Pop3(c), Err(_)) => c
                    .cancel_sasl()
                    .map(|()| take_writes(c))
                    .map_err(protocol_error),
                (Client::Smtp(c), Ok(response)) => c
                    .send_sasl_response(response)
                    .map(|()| take_writes(c))
                    .map_err(protocol_error),
                (Client::Smtp(c), Err(_)) => c
                    .cancel_sasl()
                    .map(|()| take_writes(c))
                    .map_err(protocol_error),
            }?;
            got = self.write_and_wait(name, ExchangeKind::Command, &written, log)?;
            if let Err(why) = answer {
                return Err(StepError::Protocol(format!(
                    "the client gave the AUTH {mechanism} exchange up (it sent \"*\"): {why}"
                )));
            }
        }
        Ok(got)
    }

    /// Writes to the session's connection and counts what was written.
    fn transport_write(&mut self, name: &str, bytes: &[u8]) -> Result<(), StepError> {
        let session = self.session(name)?;
        let conn = session.conn;
        session.sent += bytes.len() as u64;
        self.transport.write(conn, bytes)?;
        Ok(())
    }

    fn pop3_command(
        &mut self,
        name: &str,
        command: Command,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let Client::Pop3(c) = &mut self.session(name)?.client else {
            return Err(self.wrong_protocol(name, command.keyword().to_string()));
        };
        c.send(command).map_err(protocol_error)?;
        let bytes = take_writes(c);
        self.write_and_wait(name, ExchangeKind::Command, &bytes, log)
    }

    fn smtp_command(
        &mut self,
        name: &str,
        command: ClientCommand,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let Client::Smtp(c) = &mut self.session(name)?.client else {
            return Err(self.wrong_protocol(name, command.to_string()));
        };
        c.send(command).map_err(protocol_error)?;
        let bytes = take_writes(c);
        self.write_and_wait(name, ExchangeKind::Command, &bytes, log)
    }

    fn login(
        &mut self,
        name: &str,
        user: &str,
        password: &str,
        apop: bool,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let Client::Pop3(c) = &mut self.session(name)?.client else {
            return Err(self.wrong_protocol(name, "login".to_string()));
        };
        if apop {
            let cmd = c.apop_command(user, password).map_err(protocol_error)?;
            return self.pop3_command(name, cmd, log);
        }
        let got = self.pop3_command(name, Command::User(user.to_string()), log)?;
        if got.as_ref().is_some_and(|g| g.status != "+OK") {
            return Ok(got);
        }
        self.pop3_command(name, Command::Pass(password.to_string()), log)
    }

    fn send_mail(
        &mut self,
        name: &str,
        mail: &MailSpec,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let date = match mail.date {
            MailDate::Fixture => self.scenario.fixture.date.clone(),
            MailDate::Now => chrono::Local::now().to_rfc2822(),
        };
        let Client::Smtp(c) = &self.session(name)?.client else {
            return Err(self.wrong_protocol(name, "send_mail".to_string()));
        };
        let draft = Draft {
            from: &mail.from,
            to: &mail.to,
            subject: &mail.subject,
            body: &mail.body,
            date: &date,
        };
        let composed = compose(&draft, c.supports("8BITMIME"));
        let mail_from = ClientCommand::MailFrom(mail.from.clone());
        let mut got = match composed.encoding.mail_parameter() {
            // The client machine learns which reply comes; the line says BODY=8BITMIME
            // (RFC 6152 section 2).
            Some(parameter) => {
                let line = format!("{mail_from} {parameter}");
                self.smtp_command_as(name, mail_from, &line, log)?
            }
            None => self.smtp_command(name, mail_from, log)?,
        };
        if !positive(got.as_ref()) {
            return Ok(got);
        }
        for to in &mail.to {
            // A refused recipient is shown; DATA then tells whether any was accepted.
            self.smtp_command(name, ClientCommand::RcptTo(to.clone()), log)?;
        }
        got = self.smtp_command(name, ClientCommand::Data, log)?;
        if got.as_ref().map(|g| g.status.as_str()) != Some("354") {
            return Ok(got);
        }
        let Client::Smtp(c) = &mut self.session(name)?.client else {
            return Err(self.wrong_protocol(name, "send_mail".to_string()));
        };
        c.send_content(composed.content.as_bytes())
            .map_err(protocol_error)?;
        let bytes = take_writes(c);
        self.write_and_wait(name, ExchangeKind::Content, &bytes, log)
    }

    /// Sends `line` in place of `stand_in`'s own (a command with parameters the client
    /// machine does not write), after telling the machine that `stand_in` went out, so it
    /// expects its reply.
    fn smtp_command_as(
        &mut self,
        name: &str,
        stand_in: ClientCommand,
        line: &str,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let Client::Smtp(c) = &mut self.session(name)?.client else {
            return Err(self.wrong_protocol(name, stand_in.to_string()));
        };
        c.send(stand_in).map_err(protocol_error)?;
        take_writes(c);
        let bytes = format!("{line}\r\n").into_bytes();
        self.write_and_wait(name, ExchangeKind::Command, &bytes, log)
    }

    /// Logs what the client sends, writes it, and waits for the one reply it asks for.
    fn write_and_wait(
        &mut self,
        name: &str,
        kind: ExchangeKind,
        bytes: &[u8],
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, StepError> {
        let start = self.session(name)?.sent;
        let mut sent = match kind {
            ExchangeKind::Content => content_exchange(bytes),
            _ => command_exchange(bytes),
        };
        sent.stream = self.place(name, start, bytes.len())?;
        log.push(sent);
        self.transport_write(name, bytes)?;
        Ok(self.collect(name, 1, log)?.into_iter().last())
    }

    /// Reads until `count` replies have arrived; logs them.
    fn collect(
        &mut self,
        name: &str,
        count: usize,
        log: &mut Vec<Exchange>,
    ) -> Result<Vec<Got>, StepError> {
        let mut got = Vec::new();
        loop {
            let session = self.session(name)?;
            let logged = log.len();
            let drained = session.client.drain(log, &mut got);
            if session.tls {
                for e in log.iter_mut().skip(logged) {
                    e.stream = None;
                }
            }
            drained?;
            if got.len() >= count {
                return Ok(got);
            }
            let conn = session.conn;
            // Once part of a reply is in, a pause this long means the rest is not coming.
            let patience = if session.client.progress().is_some() {
                REST_OF_REPLY_WAIT
            } else {
                REPLY_WAIT
            };
            match self.transport.read(conn, patience) {
                Ok(bytes) => {
                    self.session(name)?.client.receive(&bytes);
                    // A slow reader: its buffer fills and its window closes meanwhile.
                    if let Some(ms) = self.scenario.fixture.client_read_pause_ms
                        && !bytes.is_empty()
                    {
                        self.transport.pause(std::time::Duration::from_millis(ms));
                    }
                }
                Err(TransportError::NoReply { after }) => {
                    let (waiting_for, so_far) = self.session(name)?.client.give_up(log);
                    return Err(StepError::Stalled {
                        waiting_for,
                        so_far,
                        after,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// How long the engine waits for a reply to begin.
const REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long it waits for the rest of a reply that has begun (a multi-line reply without its
/// end, a line without its line end): the server has sent what it meant to send.
const REST_OF_REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the engine needs of a reply, whatever its protocol.
trait Heard {
    /// The reply as shown: status line, body as on the wire, its place in the stream.
    fn exchange(&self) -> Exchange;
    /// What an expectation looks at.
    fn got(&self) -> Got;
}

impl Heard for Pop3Reply {
    fn exchange(&self) -> Exchange {
        // Shown as on the wire: stuffed, with the terminating dot.
        let mut more: Vec<String> = self
            .body_lines()
            .map(|l| {
                let l = String::from_utf8_lossy(l);
                if l.starts_with('.') {
                    format!(".{l}")
                } else {
                    l.into_owned()
                }
            })
            .collect();
        if self.body.is_some() {
            more.push(".".to_string());
        }
        let line = self.status_line();
        let octets = line.len() + 2 + more.iter().map(|l| l.len() + 2).sum::<usize>();
        Exchange {
            kind: ExchangeKind::Reply,
            line,
            more,
            octets,
            stream: Some(self.stream.clone()),
        }
    }

    fn got(&self) -> Got {
        let status = match (self.continuation, self.positive) {
            (true, _) => "+",
            (false, true) => "+OK",
            (false, false) => "-ERR",
        };
        Got {
            status: status.to_string(),
            first_line: self.status_line(),
            challenge: self.continuation.then(|| self.text.clone()),
        }
    }
}

impl Heard for SmtpReply {
    fn exchange(&self) -> Exchange {
        let text = self.wire_text();
        let mut lines = text.lines().map(str::to_string);
        let line = lines.next().unwrap_or_default();
        let more: Vec<String> = lines.collect();
        Exchange {
            kind: ExchangeKind::Reply,
            octets: text.len() + 2 + more.len(),
            line,
            more,
            stream: Some(self.stream.clone()),
        }
    }

    fn got(&self) -> Got {
        Got {
            status: self.code().to_string(),
            first_line: self
                .wire_text()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            challenge: (self.code() == 334)
                .then(|| self.reply.lines.first().cloned().unwrap_or_default()),
        }
    }
}

/// Takes every reply a client machine has: logged, and kept for the expectation.
fn drain<M>(machine: &mut M, log: &mut Vec<Exchange>, got: &mut Vec<Got>) -> Result<(), StepError>
where
    M: ClientMachine<Reply: Heard, Error: Display>,
{
    while let Some(output) = machine.poll_output() {
        match output {
            Output::Event(Ok(reply)) => {
                log.push(reply.exchange());
                got.push(reply.got());
            }
            Output::Event(Err(e)) => return Err(protocol_error(e)),
            Output::Request(never) => match never {},
            Output::Write(_) | Output::Close => {}
        }
    }
    Ok(())
}

/// The bytes a client machine wants written right after a send. `collect` has already
/// taken every reply that had arrived, so only writes are pending here.
fn take_writes<M: Machine>(machine: &mut M) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(output) = machine.poll_output() {
        if let Output::Write(b) = output {
            bytes.extend_from_slice(&b);
        }
    }
    bytes
}

fn protocol_error(e: impl Display) -> StepError {
    StepError::Protocol(e.to_string())
}

fn positive(got: Option<&Got>) -> bool {
    got.is_some_and(|g| g.status.starts_with('2') || g.status.starts_with('3') || g.status == "+OK")
}

fn check_expectation(expect: Option<&Expect>, got: Option<&Got>) -> Result<(), StepError> {
    let Some(expect) = expect else {
        return Ok(());
    };
    let Some(got) = got else {
        return Err(StepError::Expectation(format!(
            "expected a {} reply but none came",
            expect.status
        )));
    };
    if got.status != expect.status {
        return Err(StepError::Expectation(format!(
            "expected {} but the server answered \"{}\"",
            expect.status, got.first_line
        )));
    }
    if let Some(text) = &expect.text
        && !got.first_line.contains(text.as_str())
    {
        return Err(StepError::Expectation(format!(
            "expected the reply to contain \"{text}\" but it was \"{}\"",
            got.first_line
        )));
    }
    Ok(())
}

fn smtp_stand_in(line: &str) -> ClientCommand {
    let mut words = line.splitn(2, ' ');
    let verb = words.next().unwrap_or_default().to_ascii_uppercase();
    let arg = words.next().unwrap_or_default().trim().to_string();
    match verb.as_str() {
        "DATA" => ClientCommand::Data,
        "QUIT" => ClientCommand::Quit,
        "EHLO" => ClientCommand::Ehlo(arg),
        "HELO" => ClientCommand::Helo(arg),
        "STARTTLS" => ClientCommand::StartTls,
        "AUTH" => {
            let mut words = arg.split_whitespace();
            ClientCommand::Auth {
                mechanism: words.next().unwrap_or_default().to_string(),
                initial: words.next().map(str::to_string),
            }
        }
        _ => ClientCommand::Noop,
    }
}

/// A command the client machine wrote, as one exchange (its line without CRLF).
fn command_exchange(bytes: &[u8]) -> Exchange {
    let text = String::from_utf8_lossy(bytes);
    Exchange {
        kind: ExchangeKind::Command,
        line: text.trim_end_matches(['\r', '\n']).to_string(),
        more: Vec::new(),
        octets: bytes.len(),
        stream: None,
    }
}

fn content_exchange(bytes: &[u8]) -> Exchange {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_string).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let count = lines.len().saturating_sub(1);
    Exchange {
        kind: ExchangeKind::Content,
        line: format!("<message: {count} lines, then the \".\" line>"),
        more: lines,
        octets: bytes.len(),
        stream: None,
    }
}

/// The outcomes as a plain-text transcript (for snapshots and the terminal).
pub fn transcript(scenario: &Scenario, outcomes: &[StepOutcome]) -> String {
    let mut out = format!("# {}\n", scenario.title);
    for o in outcomes {
        let step = scenario.steps.get(o.index);
        let caption = step.map(|s| s.caption.as_str()).unwrap_or_default();
        out.push_str(&format!(
            "\n## step {} [{}] {caption}\n",
            o.index + 1,
            o.session
        ));
        for e in &o.exchanges {
            let tag = e.direction().tag();
            out.push_str(&format!("{tag} {}\n", e.line));
            for l in &e.more {
                out.push_str(&format!("{tag}   {l}\n"));
            }
        }
        if o.server_closed {
            out.push_str("-- the server closed the connection; the client closed its side\n");
        }
        if let Err(why) = &o.check {
            out.push_str(&format!("!! FAILED: {why}\n"));
        }
    }
    out
}
