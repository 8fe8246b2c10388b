//! `mailwire client`: the console mail client of the assignment (seed 001).
//!
//! It asks for a username and a password, then offers 1. Manage Mail (POP3: USER/PASS,
//! the list of mails, then STAT, LIST, RETR n, DELE n, QUIT by option number), 2. Send
//! Mail (From, To, Subject, a body ended by a "." line; then HELO, MAIL, RCPT, DATA, QUIT)
//! and 3. Quit. Every command sent and every reply is shown as `C:` and `S:` lines.
//!
//! With TLS (`--stls`, `--starttls`, `--tls`) the console says where TLS began; with
//! `--auth MECH` it logs in with a SASL mechanism instead of USER/PASS (POP3, RFC 5034) and
//! authenticates before sending mail (SMTP, RFC 4954), showing every base64 line it sends
//! and receives and what it decodes to: base64 is an encoding, not encryption.
//!
//! The console reads any [`BufRead`] and writes any [`Write`], so a script (or a test) can
//! drive it through stdin; the end of the input ends the program cleanly. Network calls run
//! on a current-thread tokio runtime, one at a time, between reads of the keyboard.

use std::fmt;
use std::future::Future;
use std::io::{self, BufRead, Write};
use std::time::Duration;

use super::reply_lines::{LineEnd, ReplyShape, marks, wire_lines};
use super::summary::summarize;
use super::tls::{ClientTls, fresh_nonce};
use super::transcript::{Transcript, TranscriptEntry};
use super::{ClientError, ClientOptions, Connection, GiveUpReply, Pop3Connection, SmtpConnection};
use crate::proto::Protocol;
use crate::proto::pop3::Command;
use crate::proto::pop3::client::Pop3Reply;
use crate::proto::sasl::{self, Mechanism, client::SaslClient};
use crate::proto::smtp::client::{ClientCommand, SmtpReply};

/// Once part of a reply is in, how long the console waits for the rest before it shows what
/// came and gives that reply up (the scenario engine waits as long).
pub const REST_OF_REPLY_WAIT: Duration = Duration::from_secs(2);

/// A reply as the console shows it: where it ends in the server's byte stream and its shape.
trait ShownReply {
    /// The protocol it belongs to.
    const PROTOCOL: Protocol;
    /// Where it ends in the server's byte stream.
    fn stream_end(&self) -> u64;
    /// Its shape; `complete`: whether it came whole (a reply given up did not).
    fn shape(&self, complete: bool) -> ReplyShape;
}

impl ShownReply for Pop3Reply {
    const PROTOCOL: Protocol = Protocol::Pop3;

    fn stream_end(&self) -> u64 {
        self.stream.end
    }

    fn shape(&self, complete: bool) -> ReplyShape {
        if self.body.is_some() {
            ReplyShape::Pop3MultiLine { complete }
        } else {
            ReplyShape::Lines
        }
    }
}

impl ShownReply for SmtpReply {
    const PROTOCOL: Protocol = Protocol::Smtp;

    fn stream_end(&self) -> u64 {
        self.stream.end
    }

    fn shape(&self, _complete: bool) -> ReplyShape {
        ReplyShape::Lines
    }
}

/// How a server's answer went, once the console has shown it.
enum Answer<R> {
    /// A whole reply.
    Reply(R),
    /// A broken reply, shown with its diagnosis; the connection goes on, and the next reply
    /// answers the next command. What came of it as a reply, if anything did.
    Broken(Option<R>),
    /// The connection is gone (the error was shown).
    Lost,
}

/// Whether the console shows a reply's lines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    /// Always (a command the user chose).
    Always,
    /// Only when one of its lines is marked (the log-in and the mail list, which the
    /// console summarizes in its own words).
    IfMarked,
}

/// Settings of the console client.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The POP3 server, HOST:PORT.
    pub pop3: String,
    /// The SMTP server, HOST:PORT.
    pub smtp: String,
    /// Timeouts (the transcript is replaced: see `show_wire`).
    pub options: ClientOptions,
    /// Repeat each answer after its prompt (for input that is not a terminal, so the
    /// output reads like a session).
    pub echo_input: bool,
    /// Also print every line that crosses the wire, the mail list's TOP commands included.
    pub show_wire: bool,
    /// TLS on the POP3 connection.
    pub pop3_tls: TlsMode,
    /// TLS on the SMTP connection.
    pub smtp_tls: TlsMode,
    /// Which certificates to trust; needed when either connection uses TLS.
    pub tls: Option<ClientTls>,
    /// Log in with this SASL mechanism (POP3 AUTH, and SMTP AUTH before sending) instead of
    /// USER/PASS and no SMTP login.
    pub auth: Option<Mechanism>,
}

/// Whether and how a connection uses TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP: everything is readable on the wire.
    #[default]
    Off,
    /// Plain TCP, then STLS (POP3, RFC 2595 section 4) or STARTTLS (SMTP, RFC 3207
    /// section 4) before logging in.
    Upgrade,
    /// TLS from the first byte (a POP3S or submissions port, RFC 8314 section 3).
    Implicit,
}

/// Why the console stops.
#[derive(Debug)]
enum Stop {
    /// The input ended: a clean exit.
    InputEnded,
    Input(io::Error),
    Output(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Output(e)
    }
}

/// Why the console client stopped with an error (a server's error is not one: the console
/// shows it and goes on).
#[derive(Debug)]
pub enum ConsoleError {
    /// The async runtime could not be built.
    Runtime(io::Error),
    /// Reading the input failed.
    Input(io::Error),
    /// Writing the output failed.
    Output(io::Error),
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleError::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
            ConsoleError::Input(e) => write!(f, "cannot read the keyboard input: {e}"),
            ConsoleError::Output(e) => write!(f, "cannot write to the terminal: {e}"),
        }
    }
}

impl std::error::Error for ConsoleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConsoleError::Runtime(e) | ConsoleError::Input(e) | ConsoleError::Output(e) => Some(e),
        }
    }
}

/// Runs the console client until the user chooses Quit or the input ends.
pub fn run_console(
    config: ConsoleConfig,
    input: impl BufRead,
    output: impl Write,
) -> Result<(), ConsoleError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ConsoleError::Runtime)?;
    let (wire_tx, wire_rx) = crossbeam_channel::unbounded();
    let mut config = config;
    config.options.transcript = if config.show_wire {
        Transcript::channel(wire_tx)
    } else {
        Transcript::none()
    };
    let mut console = Console {
        config,
        input,
        out: output,
        runtime,
        wire: wire_rx,
        user: String::new(),
        password: String::new(),
    };
    match console.run() {
        Ok(()) | Err(Stop::InputEnded) => Ok(()),
        Err(Stop::Input(e)) => Err(ConsoleError::Input(e)),
        Err(Stop::Output(e)) => Err(ConsoleError::Output(e)),
    }
}

struct Console<R, W> {
    config: ConsoleConfig,
    input: R,
    out: W,
    runtime: tokio::runtime::Runtime,
    wire: crossbeam_channel::Receiver<TranscriptEntry>,
    user: String,
    password: String,
}

impl<R: BufRead, W: Write> Console<R, W> {
    fn run(&mut self) -> Result<(), Stop> {
        let banner = format!(
            "mailwire mail client (POP3 server {}, SMTP server {})",
            self.config.pop3, self.config.smtp
        );
        self.say(banner)?;
        let result = self.ask_credentials().and_then(|()| self.main_menu());
        if matches!(result, Err(Stop::InputEnded)) {
            self.say("\nEnd of input. Goodbye.")?;
        }
        result
    }

    fn main_menu(&mut self) -> Result<(), Stop> {
        loop {
            self.say("\n1. Manage Mail\n2. Send Mail\n3. Quit")?;
            match self.ask("Enter your choice: ")?.trim() {
                "1" => self.manage_mail()?,
                "2" => self.send_mail()?,
                "3" => return self.say("Goodbye."),
                other => self.say(format!("\"{other}\" is not an option: enter 1, 2 or 3."))?,
            }
        }
    }

    fn ask_credentials(&mut self) -> Result<(), Stop> {
        self.user = self.ask("Username: ")?.trim().to_string();
        self.password = self.ask_secret("Password: ")?;
        Ok(())
    }

    // ---- Manage Mail (POP3) ----

    fn manage_mail(&mut self) -> Result<(), Stop> {
        let Some(mut conn) = self.log_in()? else {
            return Ok(());
        };
        if self.show_mail_list(&mut conn)? {
            self.pop3_menu(conn)?;
        }
        Ok(())
    }

    /// Connects and authenticates with USER/PASS, asking for the credentials again after
    /// each rejection. `None` when the server cannot be used (the reason is shown).
    fn log_in(&mut self) -> Result<Option<Pop3Connection>, Stop> {
        loop {
            let (addr, options) = (self.config.pop3.clone(), self.config.options.clone());
            let mode = self.config.pop3_tls;
            let tls = self.config.tls.clone();
            let connect = async move {
                match (mode, tls) {
                    (TlsMode::Implicit, Some(tls)) => {
                        Pop3Connection::connect_tls_diagnosing(
                            &addr,
                            &options,
                            &tls,
                            REST_OF_REPLY_WAIT,
                        )
                        .await
                    }
                    _ => {
                        Pop3Connection::connect_diagnosing(&addr, &options, REST_OF_REPLY_WAIT)
                            .await
                    }
                }
            };
            let Some(mut conn) = self.net(connect)? else {
                return Ok(None);
            };
            if conn.is_tls() {
                self.say_tls_on(&self.config.pop3.clone())?;
            }
            let greeting = conn.greeting().clone();
            self.answer(&mut conn, Ok(greeting), Show::IfMarked)?;
            if !conn.greeting().positive {
                let status = conn.greeting().status_line();
                self.say(format!("The POP3 server refused the session: {status}"))?;
                return Ok(None);
            }
            if self.config.pop3_tls == TlsMode::Upgrade && !self.pop3_stls(&mut conn)? {
                return Ok(None);
            }
            let (user, password) = (self.user.clone(), self.password.clone());
            let result = match self.config.auth {
                Some(mechanism) => match self.pop3_auth(&mut conn, mechanism)? {
                    Some(reply) => Ok(reply),
                    None => {
                        let _ = self.net_quiet(conn.quit());
                        return Ok(None);
                    }
                },
                None => self.net_quiet(conn.login(&user, &password))?,
            };
            let show = if self.config.auth.is_some() {
                Show::Always
            } else {
                Show::IfMarked
            };
            let Answer::Reply(reply) = self.answer(&mut conn, result, show)? else {
                return Ok(None);
            };
            if reply.positive {
                let greeting = conn.greeting().status_line();
                self.say(format!(
                    "Logged in as {user}. The server's greeting was:\n{greeting}"
                ))?;
                return Ok(Some(conn));
            }
            self.say(format!("Authentication failed: {}", reply.status_line()))?;
            let _ = self.net_quiet(conn.quit());
            if matches!(
                reply.resp_code.as_deref(),
                Some("IN-USE" | "SYS/TEMP" | "SYS/PERM")
            ) {
                self.say("The mailbox cannot be opened now; back to the main menu.")?;
                return Ok(None);
            }
            self.say("Please enter your username and password again.")?;
            self.ask_credentials()?;
        }
    }

    /// Shows `Sl. No. <sender> <received> <subject>` for every mail. `false` if the
    /// connection failed (the reason is shown).
    /// STLS and the handshake; `false` (after saying why) when the session cannot go on in
    /// TLS. A client that asked for TLS never falls back to sending its password in clear.
    fn pop3_stls(&mut self, conn: &mut Pop3Connection) -> Result<bool, Stop> {
        let Some(tls) = self.config.tls.clone() else {
            self.say("Error: STLS needs a certificate to trust (--cafile or --insecure).")?;
            return Ok(false);
        };
        self.say("C: STLS")?;
        let result = self.net_quiet(conn.stls(&tls))?;
        let Answer::Reply(reply) = self.answer(conn, result, Show::Always)? else {
            return Ok(false);
        };
        if !reply.positive {
            self.say(
                "The server refused STLS; the console does not log in without the TLS it was \
                 asked for (the password would cross the wire in clear).",
            )?;
            let _ = self.net_quiet(conn.command(Command::Quit));
            return Ok(false);
        }
        self.say_tls_started(conn, &self.config.pop3.clone())?;
        Ok(true)
    }

    /// Says that TLS is on and, if the server sent anything in clear after its go-ahead,
    /// that it was thrown away.
    fn say_tls_started<M>(&mut self, conn: &Connection<M>, server: &str) -> Result<(), Stop>
    where
        M: GiveUpReply<Error: Into<ClientError>> + Default,
    {
        self.say_tls_on(server)?;
        let dropped = conn.discarded_before_tls();
        if dropped > 0 {
            self.say(format!(
                "-- The server sent {dropped} octets in clear after its go-ahead: thrown away \
                 unread, since only what comes through TLS can be trusted."
            ))?;
        }
        Ok(())
    }

    fn say_tls_on(&mut self, server: &str) -> Result<(), Stop> {
        let insecure = self.config.tls.as_ref().is_some_and(ClientTls::is_insecure);
        let checked = if insecure {
            "WARNING: the server's certificate was not checked (--insecure): the \
             connection is encrypted, but the server may be anyone."
        } else {
            "The server's certificate was checked."
        };
        self.say(format!(
            "-- TLS is on with {server}: from here on the bytes on the wire are encrypted TLS \
             records; the lines below are what they carry. {checked}"
        ))
    }

    /// A POP3 AUTH exchange shown line by line, each base64 line with what it decodes to.
    /// Returns the final reply, not yet shown; `None` when the exchange failed otherwise
    /// (the console has said why: a broken connection, or a challenge the client gave up
    /// with `*`).
    fn pop3_auth(
        &mut self,
        conn: &mut Pop3Connection,
        mechanism: Mechanism,
    ) -> Result<Option<crate::proto::pop3::client::Pop3Reply>, Stop> {
        let (mut client, shown_initial) = self.auth_opening(mechanism, conn.is_tls())?;
        let command = Command::Auth {
            mechanism: mechanism.name().to_string(),
            initial: shown_initial,
        };
        let mut result = self.net_quiet(conn.command(command))?;
        loop {
            let reply = match result {
                Ok(reply) if !reply.continuation => return Ok(Some(reply)),
                other => match self.answer(conn, other, Show::Always)? {
                    Answer::Reply(reply) => reply,
                    Answer::Broken(_) | Answer::Lost => return Ok(None),
                },
            };
            let response = match sasl::decode(&reply.text) {
                Ok(challenge) => {
                    self.say_decoded(&challenge, mechanism, conn.is_tls())?;
                    client.respond(&challenge).map_err(|e| e.to_string())
                }
                Err(_) => Err(format!("the challenge \"{}\" is not base64", reply.text)),
            };
            match response {
                Ok(bytes) => {
                    let line = sasl::encode(&bytes);
                    self.say(format!("C: {line}"))?;
                    self.say_decoded(&bytes, mechanism, conn.is_tls())?;
                    result = self.net_quiet(conn.sasl_respond(&bytes))?;
                }
                Err(why) => {
                    // The server's answer to "*" ends the exchange, whatever it is.
                    self.say(format!("The client gives the exchange up: {why}.\nC: *"))?;
                    let result = self.net_quiet(conn.sasl_cancel())?;
                    self.answer(conn, result, Show::Always)?;
                    return Ok(None);
                }
            }
        }
    }

    /// What a base64 line decodes to, with a word on what it shows: whether anyone on the
    /// wire could read it, and for SCRAM what the proof and the signature prove.
    fn say_decoded(&mut self, bytes: &[u8], mechanism: Mechanism, tls: bool) -> Result<(), Stop> {
        if bytes.is_empty() {
            return self.say("   (an empty line: nothing more to say)");
        }
        let text: String = String::from_utf8_lossy(bytes)
            .chars()
            .flat_map(|c| match c {
                '\0' => "\\0".chars().collect::<Vec<_>>(),
                c if c.is_control() => c.escape_default().collect(),
                c => vec![c],
            })
            .collect();
        let seen = if tls {
            "base64 is an encoding, not encryption; here TLS hides the line on the wire"
        } else {
            "base64 is an encoding, not encryption: anyone who captures this line can read it"
        };
        self.say(format!("   base64 of \"{text}\" ({seen})"))?;
        let scram = mechanism == Mechanism::ScramSha256;
        if scram && text.contains(",p=") {
            self.say(
                "   p= is the client's proof: it shows the password is known without sending \
                 it, and is worth nothing in another exchange (RFC 5802 section 3)",
            )?;
        } else if scram && text.starts_with("v=") {
            self.say(
                "   v= is the server's signature, checked by the client: the server knows the \
                 user's ServerKey, so it is not an impostor (RFC 5802 section 3)",
            )?;
        } else if mechanism == Mechanism::Plain && text.starts_with("\\0") {
            self.say("   PLAIN is authzid NUL user NUL password (RFC 4616 section 2)")?;
        }
        Ok(())
    }

    fn show_mail_list(&mut self, conn: &mut Pop3Connection) -> Result<bool, Stop> {
        let result = self.net_quiet(conn.command(Command::List(None)))?;
        let list = match self.answer(conn, result, Show::IfMarked)? {
            Answer::Reply(list) | Answer::Broken(Some(list)) => list,
            Answer::Broken(None) => return Ok(true),
            Answer::Lost => return Ok(false),
        };
        if !list.positive {
            self.say(format!("LIST failed: {}", list.status_line()))?;
            return Ok(true);
        }
        let numbers: Vec<u32> = list
            .body_lines()
            .filter_map(|l| {
                String::from_utf8_lossy(l)
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        if numbers.is_empty() {
            self.say("Your mailbox is empty.")?;
            return Ok(true);
        }
        self.say(format!(
            "\n{:<8} {:<30} {:<22} Subject",
            "Sl. No.", "Sender", "Received"
        ))?;
        for n in numbers {
            let Some(header) = self.header_of(conn, n)? else {
                return Ok(false);
            };
            let s = summarize(&header);
            self.say(format!(
                "{n:<8} {:<30} {:<22} {}",
                s.from, s.received, s.subject
            ))?;
        }
        Ok(true)
    }

    /// The header of mail `n` (TOP n 0, or RETR n if the server has no TOP).
    fn header_of(&mut self, conn: &mut Pop3Connection, n: u32) -> Result<Option<Vec<u8>>, Stop> {
        let top = Command::Top { msg: n, lines: 0 };
        let result = self.net_quiet(conn.command(top))?;
        let reply = match self.answer(conn, result, Show::IfMarked)? {
            Answer::Reply(r) | Answer::Broken(Some(r)) => r,
            Answer::Broken(None) => return Ok(Some(Vec::new())),
            Answer::Lost => return Ok(None),
        };
        if reply.positive {
            return Ok(Some(reply.body.unwrap_or_default()));
        }
        let result = self.net_quiet(conn.command(Command::Retr(n)))?;
        Ok(match self.answer(conn, result, Show::IfMarked)? {
            Answer::Reply(r) | Answer::Broken(Some(r)) => Some(r.body.unwrap_or_default()),
            Answer::Broken(None) => Some(Vec::new()),
            Answer::Lost => None,
        })
    }

    fn pop3_menu(&mut self, mut conn: Pop3Connection) -> Result<(), Stop> {
        loop {
            self.say(
                "\nPOP3 commands:\n1. STAT - count the mails\n2. LIST - list the mails\n\
                 3. RETR - read a mail\n4. DELE - delete a mail\n5. QUIT - close the connection",
            )?;
            let choice = self.ask("Enter your choice: ")?;
            let Some(command) = self.pop3_command(&choice)? else {
                continue;
            };
            let quit = command == Command::Quit;
            self.say(format!("C: {command}"))?;
            let result = self.net_quiet(conn.command(command))?;
            if let Answer::Lost = self.answer(&mut conn, result, Show::Always)? {
                return Ok(());
            }
            if quit {
                return self.say("Connection closed.");
            }
        }
    }

    /// The command for a menu choice (`3`, `3 2`, `retr 2`), asking for the mail number
    /// when needed. `None` (after saying why) for an invalid choice.
    fn pop3_command(&mut self, choice: &str) -> Result<Option<Command>, Stop> {
        let mut words = choice.split_whitespace();
        let option = words.next().unwrap_or_default().to_ascii_uppercase();
        let argument = words.next().map(str::to_string);
        let needs_number = |me: &mut Self| -> Result<Option<u32>, Stop> {
            let text = match &argument {
                Some(a) => a.clone(),
                None => me.ask("Mail number (Sl. No.): ")?,
            };
            match text.trim().parse::<u32>() {
                Ok(n) => Ok(Some(n)),
                Err(_) => {
                    me.say(format!("\"{}\" is not a mail number.", text.trim()))?;
                    Ok(None)
                }
            }
        };
        Ok(match option.as_str() {
            "1" | "STAT" => Some(Command::Stat),
            "2" | "LIST" => Some(Command::List(None)),
            "3" | "RETR" => needs_number(self)?.map(Command::Retr),
            "4" | "DELE" => needs_number(self)?.map(Command::Dele),
            "5" | "QUIT" => Some(Command::Quit),
            _ => {
                self.say(format!(
                    "\"{}\" is not an option: enter 1 to 5.",
                    choice.trim()
                ))?;
                None
            }
        })
    }

    // ---- Send Mail (SMTP) ----

    fn send_mail(&mut self) -> Result<(), Stop> {
        let from = self.ask("From: ")?.trim().to_string();
        let to = self.ask("To: ")?.trim().to_string();
        let subject = self.ask("Subject: ")?;
        self.say("Message body (end with a line holding only \".\"):")?;
        let mut body = Vec::new();
        loop {
            let line = self.ask("")?;
            if line == "." {
                break;
            }
            body.push(line);
        }
        let recipients: Vec<String> = to.split(',').map(|a| a.trim().to_string()).collect();
        if !is_address(&from) || !recipients.iter().all(|a| is_address(a)) {
            return self.say("Incorrect format");
        }
        let content = compose(&from, &to, &subject, &body);
        self.deliver(&from, &recipients, &content)
    }

    /// HELO, MAIL, RCPT (each recipient), DATA, the content, QUIT; each reply shown. Stops
    /// at the first refusal (then QUIT).
    fn deliver(&mut self, from: &str, recipients: &[String], content: &[u8]) -> Result<(), Stop> {
        let (addr, options) = (self.config.smtp.clone(), self.config.options.clone());
        let mode = self.config.smtp_tls;
        let tls = self.config.tls.clone();
        let connect = async move {
            match (mode, tls) {
                (TlsMode::Implicit, Some(tls)) => {
                    SmtpConnection::connect_tls_diagnosing(
                        &addr,
                        &options,
                        &tls,
                        REST_OF_REPLY_WAIT,
                    )
                    .await
                }
                _ => SmtpConnection::connect_diagnosing(&addr, &options, REST_OF_REPLY_WAIT).await,
            }
        };
        let Some(mut conn) = self.net(connect)? else {
            return Ok(());
        };
        if conn.is_tls() {
            self.say_tls_on(&self.config.smtp.clone())?;
        }
        let greeting = conn.greeting().clone();
        self.answer(&mut conn, Ok(greeting), Show::Always)?;
        if !conn.greeting().is_positive() {
            return Ok(());
        }
        let domain = from
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
            .to_string();
        if !self.smtp_prelude(&mut conn, &domain)? {
            return self.smtp_quit(conn);
        }
        let mut commands = vec![ClientCommand::MailFrom(from.to_string())];
        commands.extend(recipients.iter().cloned().map(ClientCommand::RcptTo));
        commands.push(ClientCommand::Data);
        for command in commands {
            if !self.smtp_step(&mut conn, command)? {
                return self.smtp_quit(conn);
            }
        }
        let lines = content.iter().filter(|&&b| b == b'\n').count();
        let dotted = content
            .split(|&b| b == b'\n')
            .take(lines)
            .filter(|l| l.starts_with(b"."))
            .count();
        let stuffed = match dotted {
            0 => String::new(),
            1 => "; 1 line began with \".\" and was sent with one more dot (byte-stuffing, \
                  RFC 5321 section 4.5.2)"
                .to_string(),
            n => format!(
                "; {n} lines began with \".\" and were each sent with one more dot \
                 (byte-stuffing, RFC 5321 section 4.5.2)"
            ),
        };
        self.say(format!(
            "C: <the message: {lines} lines, {} octets{stuffed}>\nC: .",
            content.len()
        ))?;
        let result = self.net_quiet(conn.send_content(content))?;
        if let Answer::Lost = self.answer(&mut conn, result, Show::Always)? {
            return Ok(());
        }
        self.smtp_quit(conn)
    }

    /// Sends one command and shows its reply; `false` if it was refused or failed.
    /// The greeting's answer: HELO, or with TLS or AUTH asked for, EHLO (the extensions
    /// say whether STARTTLS and AUTH are offered), STARTTLS and EHLO again (RFC 3207
    /// section 4.2), then AUTH. `false` when the session cannot go on.
    fn smtp_prelude(&mut self, conn: &mut SmtpConnection, domain: &str) -> Result<bool, Stop> {
        let starttls = self.config.smtp_tls == TlsMode::Upgrade;
        if !starttls && self.config.auth.is_none() {
            return self.smtp_step(conn, ClientCommand::Helo(domain.to_string()));
        }
        if !self.smtp_step(conn, ClientCommand::Ehlo(domain.to_string()))? {
            return Ok(false);
        }
        if starttls {
            let Some(tls) = self.config.tls.clone() else {
                self.say("Error: STARTTLS needs a certificate to trust (--cafile or --insecure).")?;
                return Ok(false);
            };
            self.say("C: STARTTLS")?;
            let result = self.net_quiet(conn.starttls(&tls))?;
            let Answer::Reply(reply) = self.answer(conn, result, Show::Always)? else {
                return Ok(false);
            };
            if reply.code() != 220 {
                self.say(
                    "The server refused STARTTLS; the console does not go on without the TLS \
                     it was asked for.",
                )?;
                return Ok(false);
            }
            self.say_tls_started(conn, &self.config.smtp.clone())?;
            self.say(
                "-- The client forgets what the server said in clear and greets it again \
                 (RFC 3207 section 4.2).",
            )?;
            if !self.smtp_step(conn, ClientCommand::Ehlo(domain.to_string()))? {
                return Ok(false);
            }
        }
        match self.config.auth {
            Some(mechanism) => self.smtp_auth(conn, mechanism),
            None => Ok(true),
        }
    }

    /// Opens an AUTH exchange: the SASL client, and its initial response (base64) as the
    /// command carries it, shown with what it decodes to.
    fn auth_opening(
        &mut self,
        mechanism: Mechanism,
        tls: bool,
    ) -> Result<(SaslClient, Option<String>), Stop> {
        let mut client = SaslClient::new(mechanism, &self.user, &self.password, &fresh_nonce());
        let initial = client.initial_response();
        let shown_initial = initial.as_deref().map(sasl::encode);
        match &shown_initial {
            Some(b64) => self.say(format!("C: AUTH {mechanism} {b64}"))?,
            None => self.say(format!("C: AUTH {mechanism}"))?,
        }
        if let Some(bytes) = &initial {
            self.say_decoded(bytes, mechanism, tls)?;
        }
        Ok((client, shown_initial))
    }

    /// An SMTP AUTH exchange shown line by line (see [`Console::pop3_auth`]); `true` on 235.
    fn smtp_auth(&mut self, conn: &mut SmtpConnection, mechanism: Mechanism) -> Result<bool, Stop> {
        let (mut client, shown_initial) = self.auth_opening(mechanism, conn.is_tls())?;
        let command = ClientCommand::Auth {
            mechanism: mechanism.name().to_string(),
            initial: shown_initial,
        };
        let mut result = self.net_quiet(conn.command(command))?;
        loop {
            let reply = match self.answer(conn, result, Show::Always)? {
                Answer::Reply(reply) => reply,
                Answer::Broken(_) | Answer::Lost => return Ok(false),
            };
            if reply.code() != 334 {
                return Ok(reply.code() == 235);
            }
            let text = reply.reply.lines.first().cloned().unwrap_or_default();
            let response = match sasl::decode(&text) {
                Ok(challenge) => {
                    self.say_decoded(&challenge, mechanism, conn.is_tls())?;
                    client.respond(&challenge).map_err(|e| e.to_string())
                }
                Err(_) => Err(format!("the challenge \"{text}\" is not base64")),
            };
            match response {
                Ok(bytes) => {
                    self.say(format!("C: {}", sasl::encode(&bytes)))?;
                    self.say_decoded(&bytes, mechanism, conn.is_tls())?;
                    result = self.net_quiet(conn.sasl_respond(&bytes))?;
                }
                Err(why) => {
                    // The server's answer to "*" ends the exchange, whatever it is.
                    self.say(format!("The client gives the exchange up: {why}.\nC: *"))?;
                    let result = self.net_quiet(conn.sasl_cancel())?;
                    self.answer(conn, result, Show::Always)?;
                    return Ok(false);
                }
            }
        }
    }

    fn smtp_step(
        &mut self,
        conn: &mut SmtpConnection,
        command: ClientCommand,
    ) -> Result<bool, Stop> {
        self.say(format!("C: {command}"))?;
        let result = self.net_quiet(conn.command(command))?;
        Ok(match self.answer(conn, result, Show::Always)? {
            // A reply given up whose code says yes: the session goes on.
            Answer::Reply(reply) | Answer::Broken(Some(reply)) => reply.is_positive(),
            Answer::Broken(None) | Answer::Lost => false,
        })
    }

    fn smtp_quit(&mut self, mut conn: SmtpConnection) -> Result<(), Stop> {
        if !conn.is_usable() {
            return Ok(());
        }
        self.say("C: QUIT")?;
        let result = self.net_quiet(conn.command(ClientCommand::Quit))?;
        self.answer(&mut conn, result, Show::Always)?;
        Ok(())
    }

    // ---- Replies as they came ----

    /// Shows a server's answer as it came, line by line with its marks (the end of a
    /// multi-line reply, byte-stuffed lines, bare LFs, a missing line end), and a broken
    /// one with its diagnosis; then says whether the connection goes on.
    fn answer<M>(
        &mut self,
        conn: &mut Connection<M>,
        result: Result<M::Reply, ClientError>,
        show: Show,
    ) -> Result<Answer<M::Reply>, Stop>
    where
        M: GiveUpReply<Error: Into<ClientError>> + Default,
        M::Reply: ShownReply,
    {
        match result {
            Ok(reply) => {
                let bytes = conn.take_heard(Some(reply.stream_end()));
                self.show_lines(&bytes, reply.shape(true), M::Reply::PROTOCOL, show)?;
                Ok(Answer::Reply(reply))
            }
            Err(e) if conn.is_usable() => {
                // Stalled (the reply was given up) or a line that is no reply line.
                let given_up = conn.take_given_up();
                let shape = given_up
                    .as_ref()
                    .map_or(ReplyShape::Lines, |r| r.shape(false));
                let bytes = conn.take_heard(None);
                self.show_lines(&bytes, shape, M::Reply::PROTOCOL, Show::Always)?;
                self.say(format!("Framing error: {e}"))?;
                Ok(Answer::Broken(given_up))
            }
            Err(e) => {
                let bytes = conn.take_heard(None);
                self.show_lines(&bytes, ReplyShape::Lines, M::Reply::PROTOCOL, Show::Always)?;
                self.say(format!("Error: {e}"))?;
                Ok(Answer::Lost)
            }
        }
    }

    /// Shows the server's `bytes` line by line: the first line (every line but a POP3
    /// multi-line reply's body) after `S: `, each with its marks.
    fn show_lines(
        &mut self,
        bytes: &[u8],
        shape: ReplyShape,
        protocol: Protocol,
        show: Show,
    ) -> Result<(), Stop> {
        let mut lines = wire_lines(bytes, shape);
        let flawed = lines.iter().any(|l| l.end != LineEnd::CrLf);
        if show == Show::IfMarked && !flawed {
            return Ok(());
        }
        // The rule for bare LFs is cited once per reply.
        let mut bare_lf_said = false;
        for (i, line) in lines.iter_mut().enumerate() {
            let tag = match shape {
                ReplyShape::Pop3MultiLine { .. } if i > 0 => "",
                _ => "S: ",
            };
            if line.end == LineEnd::BareLf {
                if bare_lf_said {
                    line.end = LineEnd::CrLf;
                    let said = marks(line, protocol);
                    line.end = LineEnd::BareLf;
                    let short = if said.is_empty() {
                        "[bare LF]"
                    } else {
                        " [bare LF]"
                    };
                    self.say(format!("{tag}{}   {said}{short}", line.text))?;
                    continue;
                }
                bare_lf_said = true;
            }
            let said = marks(line, protocol);
            if said.is_empty() {
                self.say(format!("{tag}{}", line.text))?;
            } else {
                self.say(format!("{tag}{}   {said}", line.text))?;
            }
        }
        Ok(())
    }

    // ---- Keyboard, screen and network ----

    /// Runs a network call, shows the wire lines it produced (with `show_wire`), and shows
    /// its error if it failed (then `None`).
    fn net<T>(
        &mut self,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<Option<T>, Stop> {
        match self.net_quiet(call)? {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                self.say(format!("Error: {e}"))?;
                Ok(None)
            }
        }
    }

    /// Runs a network call and shows the wire lines it produced; the error is returned.
    fn net_quiet<T>(
        &mut self,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<Result<T, ClientError>, Stop> {
        let result = self.runtime.block_on(call);
        let lines: Vec<TranscriptEntry> = self.wire.try_iter().collect();
        for line in lines {
            self.say(format!("    [wire] {line}"))?;
        }
        Ok(result)
    }

    /// Prints a line. Control characters other than line feeds and tabs (a server's escape
    /// sequences, stray CRs) are shown as `?` so server text cannot take over the terminal.
    fn say(&mut self, text: impl AsRef<str>) -> Result<(), Stop> {
        let shown: String = text
            .as_ref()
            .chars()
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    '?'
                } else {
                    c
                }
            })
            .collect();
        writeln!(self.out, "{shown}")?;
        self.out.flush()?;
        Ok(())
    }

    /// Prints `prompt`, reads one line (without its line end). The end of the input stops
    /// the console.
    fn ask(&mut self, prompt: &str) -> Result<String, Stop> {
        let line = self.read_line(prompt)?;
        if self.config.echo_input {
            self.say(&line)?;
        }
        Ok(line)
    }

    /// Like [`Self::ask`], but a terminal does not show what is typed, and an echoed
    /// answer is shown as stars.
    fn ask_secret(&mut self, prompt: &str) -> Result<String, Stop> {
        let line = {
            let _hidden = super::tty::EchoOff::new();
            self.read_line(prompt)
        }?;
        if self.config.echo_input {
            self.say("*".repeat(line.chars().count()))?;
        }
        Ok(line)
    }

    fn read_line(&mut self, prompt: &str) -> Result<String, Stop> {
        write!(self.out, "{prompt}")?;
        self.out.flush()?;
        let mut bytes = Vec::new();
        let n = self
            .input
            .read_until(b'\n', &mut bytes)
            .map_err(Stop::Input)?;
        if n == 0 {
            return Err(Stop::InputEnded);
        }
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Whether `text` has the form X@Y: one '@' with something on both sides, and no spaces,
/// angle brackets or commas.
pub fn is_address(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let bad =
        |s: &str| s.is_empty() || s.contains(|c: char| c.is_whitespace() || "<>,@".contains(c));
    !bad(local) && !bad(domain)
}

/// The message as sent after DATA: From, To, Subject and Date fields, an empty line, the
/// body lines, all with CRLF.
pub fn compose(from: &str, to: &str, subject: &str, body: &[String]) -> Vec<u8> {
    let date = chrono::Local::now().to_rfc2822();
    let mut text =
        format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n");
    for line in body {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_failed() {
        let os = || io::Error::other("closed");
        assert_eq!(
            ConsoleError::Runtime(os()).to_string(),
            "cannot start the async runtime: closed"
        );
        assert_eq!(
            ConsoleError::Input(os()).to_string(),
            "cannot read the keyboard input: closed"
        );
        assert_eq!(
            ConsoleError::Output(os()).to_string(),
            "cannot write to the terminal: closed"
        );
    }

    #[test]
    fn addresses_must_be_x_at_y() {
        for good in ["ag@iit.edu", "a@b", "first.last@localhost"] {
            assert!(is_address(good), "{good}");
        }
        for bad in [
            "", "ag", "@iit.edu", "ag@", "a@b@c", "a b@c", "<a@b>", "a@b,c@d",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
    }

    #[test]
    fn composed_message_has_the_fields_then_the_body() {
        let m = compose("a@b", "c@d", "Hi", &[".hidden".into(), "x".into()]);
        let text = String::from_utf8(m).unwrap();
        assert!(text.starts_with("From: a@b\r\nTo: c@d\r\nSubject: Hi\r\nDate: "));
        assert!(text.ends_with("\r\n\r\n.hidden\r\nx\r\n"));
    }

    fn console_output(input: &str) -> String {
        let config = ConsoleConfig {
            pop3: "127.0.0.1:9".into(),
            smtp: "127.0.0.1:9".into(),
            options: ClientOptions::default(),
            echo_input: true,
            show_wire: false,
            pop3_tls: TlsMode::Off,
            smtp_tls: TlsMode::Off,
            tls: None,
            auth: None,
        };
        let mut out = Vec::new();
        run_console(config, input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn invalid_addresses_say_incorrect_format_and_return_to_the_menu() {
        let out = console_output("bob\nbuilder\n2\nbob\nalice@localhost\nHi\nbody\n.\n3\n");
        assert!(out.contains("Incorrect format\n\n1. Manage Mail"), "{out}");
        assert!(out.ends_with("Goodbye.\n"), "{out}");
    }

    #[test]
    fn end_of_input_ends_cleanly_anywhere() {
        for input in [
            "",
            "bob\n",
            "bob\npw\n",
            "bob\npw\n2\na@b\n",
            "bob\npw\n9\n",
        ] {
            let out = console_output(input);
            assert!(
                out.ends_with("End of input. Goodbye.\n"),
                "{input:?}: {out}"
            );
        }
    }
}
