//! The step engine: performs a scenario's steps one at a time with the client machines over
//! a [`Transport`], records what crossed the wire, and checks each expectation.

use std::collections::HashMap;

use super::format::{Action, Expect, MailSpec, Protocol, Scenario, Step};
use super::transport::{ConnId, Transport};
use crate::proto::pop3::Command;
use crate::proto::pop3::client::{Pop3Client, Pop3ClientOutput, Pop3Reply};
use crate::proto::smtp::client::{ClientCommand, SmtpClient, SmtpClientOutput, SmtpReply};
use crate::servers::ServerEvent;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// One command or reply of a step, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub direction: Direction,
    /// The first line (a command, or a reply's status line).
    pub line: String,
    /// Further lines (a multi-line reply's body, a message's content), without CRLF.
    pub more: Vec<String>,
    /// Octets on the wire.
    pub octets: usize,
}

/// What happened in one step.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// 0-based index of the step.
    pub index: usize,
    pub session: String,
    /// The transport connection the step used, if it reached one.
    pub conn: Option<ConnId>,
    pub exchanges: Vec<Exchange>,
    /// `Err` says which expectation failed or what went wrong.
    pub check: Result<(), String>,
    /// Server events during the step.
    pub events: Vec<ServerEvent>,
}

enum Client {
    Pop3(Pop3Client),
    Smtp(SmtpClient),
}

struct Session {
    conn: ConnId,
    client: Client,
}

/// A reply of either protocol, reduced to what expectations look at.
struct Got {
    status: String,
    first_line: String,
}

/// Runs a scenario step by step.
pub struct Engine<T: Transport> {
    scenario: Scenario,
    transport: T,
    sessions: HashMap<String, Session>,
    /// The last connection each session name used (kept after it closed).
    last_conn: HashMap<String, ConnId>,
    next: usize,
}

impl<T: Transport> Engine<T> {
    /// An engine at the first step.
    pub fn new(scenario: Scenario, transport: T) -> Self {
        Self {
            scenario,
            transport,
            sessions: HashMap::new(),
            last_conn: HashMap::new(),
            next: 0,
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
        let result = self.perform(step, &mut exchanges);
        let check = result.and_then(|got| check_expectation(step.expect.as_ref(), got.as_ref()));
        StepOutcome {
            index,
            session: step.session.clone(),
            conn: self.last_conn.get(&step.session).copied(),
            exchanges,
            check,
            events: self.transport.take_events(),
        }
    }

    /// Whether a session of that name is connected.
    pub fn is_connected(&self, session: &str) -> bool {
        self.sessions.contains_key(session)
    }

    /// Runs every remaining step.
    pub fn run_all(&mut self) -> Vec<StepOutcome> {
        std::iter::from_fn(|| self.step()).collect()
    }

    fn perform(&mut self, step: &Step, log: &mut Vec<Exchange>) -> Result<Option<Got>, String> {
        if let Action::Connect { protocol, mss, to } = &step.action {
            if self.sessions.contains_key(&step.session) {
                return Err(format!("session \"{}\" is already connected", step.session));
            }
            let conn = self.transport.connect(*protocol, *mss, *to)?;
            let client = match protocol {
                Protocol::Pop3 => Client::Pop3(Pop3Client::new()),
                Protocol::Smtp => {
                    let mut c = SmtpClient::new();
                    c.set_helo_fallback(false);
                    Client::Smtp(c)
                }
            };
            self.sessions
                .insert(step.session.clone(), Session { conn, client });
            self.last_conn.insert(step.session.clone(), conn);
            let replies = self.collect(&step.session, 1, log)?;
            return Ok(replies.into_iter().last());
        }
        if !self.sessions.contains_key(&step.session) {
            return Err(format!(
                "session \"{}\" is not connected; a step with connect must come first",
                step.session
            ));
        }
        match &step.action {
            Action::Connect { .. } => Ok(None),
            Action::Drop => {
                if let Some(s) = self.sessions.remove(&step.session) {
                    self.transport.close(s.conn);
                }
                Ok(None)
            }
            Action::Send(line) => {
                self.send_lines(&step.session, std::slice::from_ref(line), false, log)
            }
            Action::Pipeline(lines) => self.send_lines(&step.session, lines, false, log),
            Action::Split(pieces) => self.send_lines(&step.session, pieces, true, log),
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

    fn session(&mut self, name: &str) -> Result<&mut Session, String> {
        self.sessions
            .get_mut(name)
            .ok_or_else(|| format!("session \"{name}\" is not connected"))
    }

    /// Sends raw lines (each plus CRLF) in one write, or, when `split`, the pieces of one
    /// line in separate writes; waits for every reply.
    fn send_lines(
        &mut self,
        name: &str,
        lines: &[String],
        split: bool,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, String> {
        let whole = lines.concat();
        let commands: Vec<String> = if split { vec![whole] } else { lines.to_vec() };
        let session = self.session(name)?;
        let mut wire = Vec::new();
        let mut expected = 0;
        for text in &commands {
            match &mut session.client {
                Client::Pop3(c) => {
                    // The client machine learns the reply's shape; the bytes are sent as
                    // typed (lower case, odd spacing and all).
                    let stand_in = Command::parse(text.as_bytes()).unwrap_or(Command::Noop);
                    c.send(stand_in).map_err(|e| e.to_string())?;
                    drain_writes_pop3(c);
                    wire.extend_from_slice(text.as_bytes());
                    wire.extend_from_slice(b"\r\n");
                }
                Client::Smtp(c) if c.content_expected() => {
                    c.send_content(text.as_bytes()).map_err(|e| e.to_string())?;
                    let bytes = drain_writes_smtp(c);
                    return self.write_and_wait(name, content_exchange(&bytes), &bytes, log);
                }
                Client::Smtp(c) => {
                    c.send(smtp_stand_in(text)).map_err(|e| e.to_string())?;
                    drain_writes_smtp(c);
                    wire.extend_from_slice(text.as_bytes());
                    wire.extend_from_slice(b"\r\n");
                }
            }
            expected += 1;
            log.push(Exchange {
                direction: Direction::ClientToServer,
                line: text.clone(),
                more: Vec::new(),
                octets: text.len() + 2,
            });
        }
        if split {
            let conn = self.session(name)?.conn;
            let count = lines.len();
            for (i, piece) in lines.iter().enumerate() {
                let mut bytes = piece.as_bytes().to_vec();
                if i + 1 == count {
                    bytes.extend_from_slice(b"\r\n");
                }
                self.transport.write(conn, &bytes)?;
                if i + 1 < count {
                    self.transport.pause();
                }
            }
        } else {
            self.transport_write(name, &wire)?;
        }
        Ok(self.collect(name, expected, log)?.into_iter().last())
    }

    fn transport_write(&mut self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let conn = self.session(name)?.conn;
        self.transport.write(conn, bytes)
    }

    fn pop3_command(
        &mut self,
        name: &str,
        command: Command,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, String> {
        let Client::Pop3(c) = &mut self.session(name)?.client else {
            return Err(format!(
                "{} is a POP3 command but session \"{name}\" speaks SMTP",
                command.keyword()
            ));
        };
        let line = command.to_string();
        c.send(command).map_err(|e| e.to_string())?;
        let bytes = drain_writes_pop3(c);
        let sent = Exchange {
            direction: Direction::ClientToServer,
            line,
            more: Vec::new(),
            octets: bytes.len(),
        };
        self.write_and_wait(name, sent, &bytes, log)
    }

    fn smtp_command(
        &mut self,
        name: &str,
        command: ClientCommand,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, String> {
        let Client::Smtp(c) = &mut self.session(name)?.client else {
            return Err(format!(
                "{command} is an SMTP command but session \"{name}\" speaks POP3"
            ));
        };
        let line = command.to_string();
        c.send(command).map_err(|e| e.to_string())?;
        let bytes = drain_writes_smtp(c);
        let sent = Exchange {
            direction: Direction::ClientToServer,
            line,
            more: Vec::new(),
            octets: bytes.len(),
        };
        self.write_and_wait(name, sent, &bytes, log)
    }

    fn login(
        &mut self,
        name: &str,
        user: &str,
        password: &str,
        apop: bool,
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, String> {
        let Client::Pop3(c) = &mut self.session(name)?.client else {
            return Err(format!(
                "login is a POP3 action but session \"{name}\" speaks SMTP"
            ));
        };
        if apop {
            let cmd = c.apop_command(user, password).map_err(|e| e.to_string())?;
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
    ) -> Result<Option<Got>, String> {
        let mut got = self.smtp_command(name, ClientCommand::MailFrom(mail.from.clone()), log)?;
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
        let date = self.scenario.fixture.date.clone();
        let mut content = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\n\r\n",
            mail.from,
            mail.to.join(", "),
            mail.subject
        );
        for line in mail.body.lines() {
            content.push_str(line);
            content.push_str("\r\n");
        }
        let Client::Smtp(c) = &mut self.session(name)?.client else {
            return Err("not an SMTP session".into());
        };
        c.send_content(content.as_bytes())
            .map_err(|e| e.to_string())?;
        let bytes = drain_writes_smtp(c);
        self.write_and_wait(name, content_exchange(&bytes), &bytes, log)
    }

    /// Logs what the client sends, writes it, and waits for the one reply it asks for.
    fn write_and_wait(
        &mut self,
        name: &str,
        sent: Exchange,
        bytes: &[u8],
        log: &mut Vec<Exchange>,
    ) -> Result<Option<Got>, String> {
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
    ) -> Result<Vec<Got>, String> {
        let mut got = Vec::new();
        loop {
            let session = self.session(name)?;
            match &mut session.client {
                Client::Pop3(c) => {
                    while let Some(out) = c.poll_output() {
                        match out {
                            Pop3ClientOutput::Reply(r) => {
                                log.push(pop3_exchange(&r));
                                got.push(Got {
                                    status: if r.positive { "+OK" } else { "-ERR" }.to_string(),
                                    first_line: r.status_line(),
                                });
                            }
                            Pop3ClientOutput::Error(e) => return Err(e.to_string()),
                            Pop3ClientOutput::Write(_) => {}
                        }
                    }
                }
                Client::Smtp(c) => {
                    while let Some(out) = c.poll_output() {
                        match out {
                            SmtpClientOutput::Reply(r) => {
                                log.push(smtp_exchange(&r));
                                got.push(Got {
                                    status: r.code().to_string(),
                                    first_line: r
                                        .wire_text()
                                        .lines()
                                        .next()
                                        .unwrap_or_default()
                                        .to_string(),
                                });
                            }
                            SmtpClientOutput::Error(e) => return Err(e.to_string()),
                            SmtpClientOutput::Write(_) => {}
                        }
                    }
                }
            }
            if got.len() >= count {
                return Ok(got);
            }
            let conn = session.conn;
            let bytes = self.transport.read(conn)?;
            let session = self.session(name)?;
            match &mut session.client {
                Client::Pop3(c) if bytes.is_empty() => c.receive_eof(),
                Client::Pop3(c) => c.receive(&bytes),
                Client::Smtp(c) if bytes.is_empty() => c.receive_eof(),
                Client::Smtp(c) => c.receive(&bytes),
            }
        }
    }
}

fn positive(got: Option<&Got>) -> bool {
    got.is_some_and(|g| g.status.starts_with('2') || g.status.starts_with('3') || g.status == "+OK")
}

fn check_expectation(expect: Option<&Expect>, got: Option<&Got>) -> Result<(), String> {
    let Some(expect) = expect else {
        return Ok(());
    };
    let Some(got) = got else {
        return Err(format!("expected a {} reply but none came", expect.status));
    };
    if got.status != expect.status {
        return Err(format!(
            "expected {} but the server answered \"{}\"",
            expect.status, got.first_line
        ));
    }
    if let Some(text) = &expect.text
        && !got.first_line.contains(text.as_str())
    {
        return Err(format!(
            "expected the reply to contain \"{text}\" but it was \"{}\"",
            got.first_line
        ));
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
        _ => ClientCommand::Noop,
    }
}

/// The bytes a client machine wants written right after a send. `collect` has already
/// taken every reply that had arrived, so only writes are pending here.
fn drain_writes_pop3(c: &mut Pop3Client) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(out) = c.poll_output() {
        if let Pop3ClientOutput::Write(b) = out {
            bytes.extend_from_slice(&b);
        }
    }
    bytes
}

/// As [`drain_writes_pop3`], for SMTP.
fn drain_writes_smtp(c: &mut SmtpClient) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(out) = c.poll_output() {
        if let SmtpClientOutput::Write(b) = out {
            bytes.extend_from_slice(&b);
        }
    }
    bytes
}

fn pop3_exchange(r: &Pop3Reply) -> Exchange {
    // Shown as on the wire: stuffed, with the terminating dot.
    let mut more: Vec<String> = r
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
    if r.body.is_some() {
        more.push(".".to_string());
    }
    let octets = r.status_line().len() + 2 + more.iter().map(|l| l.len() + 2).sum::<usize>();
    Exchange {
        direction: Direction::ServerToClient,
        line: r.status_line(),
        more,
        octets,
    }
}

fn smtp_exchange(r: &SmtpReply) -> Exchange {
    let text = r.wire_text();
    let mut lines = text.lines().map(str::to_string);
    let line = lines.next().unwrap_or_default();
    let more: Vec<String> = lines.collect();
    Exchange {
        direction: Direction::ServerToClient,
        octets: text.len() + 2 + more.len(),
        line,
        more,
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
        direction: Direction::ClientToServer,
        line: format!("<message: {count} lines, then the \".\" line>"),
        more: lines,
        octets: bytes.len(),
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
            let tag = match e.direction {
                Direction::ClientToServer => "C:",
                Direction::ServerToClient => "S:",
            };
            out.push_str(&format!("{tag} {}\n", e.line));
            for l in &e.more {
                out.push_str(&format!("{tag}   {l}\n"));
            }
        }
        if let Err(why) = &o.check {
            out.push_str(&format!("!! FAILED: {why}\n"));
        }
    }
    out
}
