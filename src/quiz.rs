//! Quiz mode: before a reply is shown, the class predicts it.
//!
//! Questions are made from a recorded step (so the right answer is what really crossed the
//! wire, never a guess of ours) and from protocol knowledge (so each wrong choice is a
//! plausible one, with what it would have meant). Four kinds:
//!
//! - the reply's status: `+OK` or `-ERR` (RFC 1939), or the SMTP reply code (RFC 5321);
//! - the POP3 state after a login or QUIT (AUTHORIZATION, TRANSACTION, UPDATE);
//! - how many messages STAT reports once the session marked some deleted;
//! - how many TCP segments carried a reply (only when the capture has it);
//! - the acknowledgment number the client sends after a reply (only when the capture shows
//!   that ACK).
//!
//! The packet questions are asked only about replies worth counting: multi-line, or carried
//! by more than one segment.
//!
//! [`Quiz`] walks a timeline's steps in order (it follows each POP3 session's state), and
//! [`Question::judge`] scores an answer typed as a letter or as the choice's text. Nothing
//! here prints or reads: `mailwire run --quiz` and the window ask and show.

use std::collections::HashMap;
use std::fmt;

use crate::decode::TcpFlags;
use crate::exchange::{Exchange, ExchangeKind};
use crate::proto::{Direction, Protocol};
use crate::timeline::Timeline;

/// One multiple-choice question about a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The step (0-based) it is about.
    pub step: usize,
    /// The reply it is about (index into the step's exchanges): what came before it in the
    /// step is what the class may know when asked.
    pub reply: usize,
    pub kind: QuestionKind,
    /// The question, as asked before the answer is shown.
    pub prompt: String,
    /// In the order they are offered (letter a, b, c...); exactly one is right.
    pub choices: Vec<Choice>,
    /// What the wire showed, said after the answer.
    pub explanation: String,
}

/// What a question asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuestionKind {
    /// `+OK` or `-ERR`.
    Pop3Status,
    /// A three-digit SMTP reply code.
    SmtpCode,
    /// The POP3 session's state after the reply.
    Pop3State,
    /// How many messages a reply reports.
    MessageCount,
    /// How many TCP segments carried the reply.
    Segments,
    /// The acknowledgment number of the client's ACK after the reply.
    NextAck,
}

/// One answer offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// As offered and as it may be typed ("+OK", "354", "TRANSACTION", "2").
    pub text: String,
    pub correct: bool,
    /// What this answer would mean, with the rule that says so: for a wrong choice, why it
    /// does not fit what happened.
    pub why: String,
}

/// How an answer was judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The right choice (its index).
    Right(usize),
    /// Another choice (its index).
    Wrong(usize),
    /// Not a letter or text of any choice.
    NotAChoice,
    /// No answer was given (end of input).
    Unanswered,
}

impl Question {
    /// The right choice's index.
    pub fn answer(&self) -> Option<usize> {
        self.choices.iter().position(|c| c.correct)
    }

    /// Judges an answer typed as a choice's letter (`a`, `b`...) or its text (any case).
    pub fn judge(&self, typed: &str) -> Verdict {
        let typed = typed.trim();
        if typed.is_empty() {
            return Verdict::NotAChoice;
        }
        let by_letter = (typed.len() == 1)
            .then(|| typed.chars().next())
            .flatten()
            .map(|c| c.to_ascii_lowercase())
            .filter(char::is_ascii_lowercase)
            .map(|c| usize::from(c as u8 - b'a'))
            .filter(|&i| i < self.choices.len());
        let chosen = by_letter.or_else(|| {
            self.choices
                .iter()
                .position(|c| c.text.eq_ignore_ascii_case(typed))
        });
        match chosen {
            Some(i) if self.choices.get(i).is_some_and(|c| c.correct) => Verdict::Right(i),
            Some(i) => Verdict::Wrong(i),
            None => Verdict::NotAChoice,
        }
    }
}

/// The letter of the `index`-th choice.
pub fn letter(index: usize) -> char {
    u8::try_from(index)
        .ok()
        .and_then(|i| b'a'.checked_add(i))
        .map_or('?', char::from)
}

/// Right answers out of questions asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Score {
    pub right: usize,
    pub asked: usize,
}

impl Score {
    /// Counts one judged answer.
    pub fn add(&mut self, verdict: &Verdict) {
        self.asked += 1;
        if matches!(verdict, Verdict::Right(_)) {
            self.right += 1;
        }
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "score {}/{}", self.right, self.asked)
    }
}

/// A POP3 session's state (RFC 1939 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pop3State {
    Authorization,
    Transaction,
    Update,
    Closed,
}

impl Pop3State {
    fn name(self) -> &'static str {
        match self {
            Pop3State::Authorization => "AUTHORIZATION",
            Pop3State::Transaction => "TRANSACTION",
            Pop3State::Update => "UPDATE",
            Pop3State::Closed => "closed",
        }
    }
}

/// Makes the questions of a timeline's steps, in order (it follows each POP3 session's
/// state from step to step, so ask for every step, the ones with no question too).
#[derive(Debug, Clone, Default)]
pub struct Quiz {
    pop3: HashMap<String, Pop3State>,
    /// Messages each POP3 session has marked deleted (DELE +OK) since its login or RSET.
    marked: HashMap<String, usize>,
}

impl Quiz {
    pub fn new() -> Self {
        Self::default()
    }

    /// The questions about step `index` of `timeline` (none for a step with no reply).
    pub fn questions(&mut self, timeline: &Timeline, index: usize) -> Vec<Question> {
        let Some(record) = timeline.steps.get(index) else {
            return Vec::new();
        };
        let outcome = &record.outcome;
        let session = outcome.session.clone();
        let mut out = Vec::new();
        let mut last_reply = None;
        // One question on the state per step: after its last login or QUIT.
        let mut state_question = None;
        // Which exchange of the step a reply is (the questions say which reply they are about).
        let position = |reply: &Exchange| {
            outcome
                .exchanges
                .iter()
                .position(|e| std::ptr::eq(e, reply))
                .unwrap_or_default()
        };
        let about = |reply: usize| move |q: Question| Question { reply, ..q };
        // Whether the last reply was an SMTP AUTH challenge (334): the client's next line is
        // its answer, not a command.
        let mut challenged = false;
        for (asked, reply) in pairs(&outcome.exchanges, outcome.protocol) {
            last_reply = Some(reply);
            let at = position(reply);
            match outcome.protocol {
                Some(Protocol::Pop3) => {
                    let before = match asked {
                        // A greeting opens a new session.
                        None => Pop3State::Authorization,
                        Some(_) => *self.pop3.get(&session).unwrap_or(&Pop3State::Authorization),
                    };
                    let command = asked.map(|c| verb(&c.line));
                    let ok = reply.line.starts_with("+OK");
                    let marked = self.marked.entry(session.clone()).or_default();
                    // After deletions, STAT's count is the question (its status line would
                    // give the count away, and in TRANSACTION STAT always succeeds).
                    let count = match (command.as_deref(), ok) {
                        (Some("STAT"), true) => stat_count_question(index, reply, *marked),
                        _ => None,
                    };
                    match count {
                        Some(q) => out.push(about(at)(q)),
                        None => out.extend(pop3_status(index, asked, reply).map(about(at))),
                    }
                    match (command.as_deref(), ok) {
                        (None, _) => *marked = 0,
                        (Some("DELE"), true) => *marked += 1,
                        (Some("RSET"), true) => *marked = 0,
                        _ => {}
                    }
                    let after = next_pop3_state(before, command.as_deref(), ok);
                    if let Some(cmd) = command.as_deref()
                        && matches!(cmd, "USER" | "PASS" | "APOP" | "AUTH" | "QUIT")
                    {
                        state_question = Some(about(at)(pop3_state_question(
                            index, cmd, ok, before, after,
                        )));
                    }
                    self.pop3.insert(session.clone(), after);
                }
                Some(Protocol::Smtp) => {
                    out.extend(smtp_code(index, asked, reply, challenged).map(about(at)));
                    challenged = reply.line.starts_with("334");
                }
                None => {}
            }
        }
        out.extend(state_question);
        if outcome.server_closed {
            self.pop3.insert(session, Pop3State::Closed);
        }
        if let Some(reply) = last_reply
            && let Some(unit_index) = reply_unit(timeline, index, reply)
        {
            let at = position(reply);
            out.extend(segments_question(timeline, index, unit_index).map(about(at)));
            out.extend(ack_question(timeline, index, unit_index).map(about(at)));
        }
        out
    }
}

/// Each reply with the command (or content) it answers, in order (pipelined commands are
/// answered first come, first served); a greeting answers nothing. A line without a status
/// (a broken server's "GARBAGE") answers nothing either: it is skipped, no question is made
/// of it, and the command still waits for its real reply.
fn pairs(
    exchanges: &[Exchange],
    protocol: Option<Protocol>,
) -> Vec<(Option<&Exchange>, &Exchange)> {
    let mut waiting = std::collections::VecDeque::new();
    let mut out = Vec::new();
    for e in exchanges {
        match e.kind {
            ExchangeKind::Command | ExchangeKind::Content => waiting.push_back(e),
            ExchangeKind::Reply if !has_status(protocol, &e.line) => {}
            ExchangeKind::Reply => out.push((waiting.pop_front(), e)),
        }
    }
    out
}

/// Whether a reply line begins with its protocol's status (any line does when the
/// protocol is not known).
fn has_status(protocol: Option<Protocol>, line: &str) -> bool {
    protocol.is_none_or(|p| p.has_reply_status(line))
}

/// A command line's verb, upper case.
fn verb(line: &str) -> String {
    line.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

fn short(line: &str) -> String {
    const MAX: usize = 60;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        format!("{}...", line.chars().take(MAX).collect::<String>())
    }
}

fn pop3_status(step: usize, asked: Option<&Exchange>, reply: &Exchange) -> Option<Question> {
    let ok = reply.line.starts_with("+OK");
    let err = reply.line.starts_with("-ERR");
    if !ok && !err {
        return None;
    }
    let (prompt, if_ok, if_err) = match asked {
        None => (
            "The client has just connected. How does the POP3 server's first line begin?"
                .to_string(),
            "the server is ready and greets the client; AUTHORIZATION begins (RFC 1939 \
             section 4)",
            "the server refuses the session from the start; but the greeting is a positive \
             response (RFC 1939 section 4), so a -ERR greeting breaks the protocol",
        ),
        Some(c) => {
            let has_argument = c.line.split_whitespace().nth(1).is_some();
            let verb = verb(&c.line);
            let (if_ok, if_err) = pop3_meanings(&verb, has_argument);
            let prompt = if verb == "AUTH" {
                format!(
                    "The client sends \"{}\"; the server's challenges (\"+ \" lines) and the \
                     client's answers follow. Does the exchange end with +OK or -ERR?",
                    short(&c.line)
                )
            } else {
                format!(
                    "The client sends \"{}\". Does the server answer +OK or -ERR?",
                    short(&c.line)
                )
            };
            (prompt, if_ok, if_err)
        }
    };
    let choices = vec![
        Choice {
            text: "+OK".to_string(),
            correct: ok,
            why: format!("+OK would mean {if_ok}"),
        },
        Choice {
            text: "-ERR".to_string(),
            correct: err,
            why: format!("-ERR would mean {if_err}"),
        },
    ];
    Some(Question {
        step,
        reply: 0,
        kind: QuestionKind::Pop3Status,
        prompt,
        choices,
        explanation: format!("The server answered \"{}\".", short(&reply.line)),
    })
}

/// What +OK and -ERR would mean for a POP3 command (RFC 1939).
fn pop3_meanings(verb: &str, has_argument: bool) -> (&'static str, &'static str) {
    match verb {
        "LIST" if !has_argument => (
            "the listing follows: one line per message not marked deleted, then a line \
             holding only \".\" (RFC 1939 section 5)",
            "the session is not in TRANSACTION, the only state where LIST is allowed \
             (RFC 1939 section 5)",
        ),
        "UIDL" if !has_argument => (
            "the unique-id listing follows: one line per message not marked deleted, then a \
             line holding only \".\" (RFC 1939 section 7)",
            "the session is not in TRANSACTION, or the server does not offer the optional \
             UIDL (RFC 1939 section 7)",
        ),
        "USER" => (
            "the server takes the name and waits for PASS (a server may say +OK even to an \
             unknown name, so as not to tell which names exist; RFC 1939 section 7)",
            "the server refuses that mailbox name, or USER came outside AUTHORIZATION \
             (RFC 1939 section 7)",
        ),
        "PASS" | "APOP" => (
            "the credentials are right and the maildrop is locked for this session: \
             TRANSACTION begins (RFC 1939 section 7)",
            "the credentials are wrong or the maildrop could not be locked; the session stays \
             in AUTHORIZATION (RFC 1939 section 7)",
        ),
        "STAT" | "NOOP" | "RSET" => (
            "the command is done: in TRANSACTION it always succeeds (RFC 1939 section 5)",
            "the session is not in TRANSACTION yet (no login), where the command is not \
             allowed (RFC 1939 section 5)",
        ),
        "LIST" | "UIDL" => (
            "the message exists and is not marked deleted: its one-line listing comes back \
             (RFC 1939 sections 5 and 7)",
            "there is no such message, or it is marked deleted, or the session is not in \
             TRANSACTION (RFC 1939 sections 5 and 7)",
        ),
        "RETR" | "TOP" => (
            "the message exists and is not marked deleted: it follows, multi-line (RFC 1939 \
             sections 5 and 7)",
            "there is no such message, or it is marked deleted, or the session is not in \
             TRANSACTION (RFC 1939 sections 5 and 7)",
        ),
        "DELE" => (
            "the message exists and was not marked deleted yet: it is marked now, removed \
             only at QUIT (RFC 1939 section 5)",
            "there is no such message, or it is marked deleted already (RFC 1939 section 5)",
        ),
        "QUIT" => (
            "the server signs off; after a login it first removes the marked messages \
             (UPDATE, RFC 1939 section 6)",
            "in UPDATE, some marked message could not be removed (RFC 1939 section 6)",
        ),
        "CAPA" => (
            "the server lists its capabilities, multi-line (RFC 2449 section 5)",
            "the server does not know CAPA (it predates RFC 2449)",
        ),
        "AUTH" => (
            "the SASL exchange succeeded: the credentials the client proved are right and \
             TRANSACTION begins (RFC 5034 section 4)",
            "the mechanism is not offered, the client cancelled with \"*\", or the \
             credentials are wrong; the session stays in AUTHORIZATION (RFC 5034 section 4)",
        ),
        "STLS" => (
            "the server is ready: the next bytes on the connection are the TLS handshake \
             (RFC 2595 section 4)",
            "the server cannot start TLS here: not offered, already on, or not allowed in \
             this state (RFC 2595 section 4)",
        ),
        _ => (
            "the server knows the command and did it",
            "the server does not know the command, or does not allow it in this state \
             (RFC 1939 section 3)",
        ),
    }
}

/// After DELE in this session, how many messages STAT reports: the marked ones are left
/// out, and nothing is removed before UPDATE (RFC 1939 sections 5 and 6).
fn stat_count_question(step: usize, reply: &Exchange, marked: usize) -> Option<Question> {
    if marked == 0 {
        return None;
    }
    let count: usize = reply.line.split_whitespace().nth(1)?.parse().ok()?;
    let with_marked = count + marked;
    let mut choices = vec![
        Choice {
            text: count.to_string(),
            correct: true,
            why: format!(
                "{count}: the {marked} message(s) marked deleted are left out of STAT's count, \
                 though they are still in the maildrop (RFC 1939 section 5)"
            ),
        },
        Choice {
            text: with_marked.to_string(),
            correct: false,
            why: format!(
                "{with_marked} counts the {marked} message(s) marked deleted too; STAT leaves \
                 them out (RFC 1939 section 5)"
            ),
        },
    ];
    if count > 0 {
        choices.push(Choice {
            text: "0".to_string(),
            correct: false,
            why: "0 would mean every message is gone; but DELE only marks, and messages are \
                  removed only in UPDATE, after QUIT (RFC 1939 section 6)"
                .to_string(),
        });
    }
    choices.sort_by_key(|c| c.text.parse::<usize>().unwrap_or(usize::MAX));
    Some(Question {
        step,
        kind: QuestionKind::MessageCount,
        prompt: format!(
            "This session has marked {marked} message(s) deleted. How many messages does STAT \
             report?"
        ),
        choices,
        explanation: format!("The server answered \"{}\".", short(&reply.line)),
        reply: 0,
    })
}

fn next_pop3_state(before: Pop3State, command: Option<&str>, ok: bool) -> Pop3State {
    match (before, command, ok) {
        (Pop3State::Authorization, Some("PASS" | "APOP" | "AUTH"), true) => Pop3State::Transaction,
        (Pop3State::Transaction, Some("QUIT"), true) => Pop3State::Update,
        (Pop3State::Authorization, Some("QUIT"), _) => Pop3State::Closed,
        (state, _, _) => state,
    }
}

fn pop3_state_question(
    step: usize,
    command: &str,
    ok: bool,
    before: Pop3State,
    after: Pop3State,
) -> Question {
    let status = if ok { "+OK" } else { "-ERR" };
    let why = |state: Pop3State| -> String {
        match (state, command) {
            (Pop3State::Authorization, "USER") => {
                "USER only names the mailbox: the session stays in AUTHORIZATION until PASS \
                 succeeds (RFC 1939 section 7)"
            }
            (Pop3State::Authorization, "PASS" | "APOP") => {
                "a failed login leaves the session in AUTHORIZATION, where the client may try \
                 again (RFC 1939 section 7)"
            }
            (Pop3State::Authorization, "AUTH") => {
                "a failed AUTH leaves the session in AUTHORIZATION, where the client may try \
                 again (RFC 5034 section 4)"
            }
            (Pop3State::Transaction, "AUTH") => {
                "a successful AUTH moves the session to TRANSACTION, as PASS does (RFC 5034 \
                 section 4)"
            }
            (Pop3State::Authorization, _) => {
                "the session stays in AUTHORIZATION only while no login succeeded"
            }
            (Pop3State::Transaction, "USER") => {
                "TRANSACTION begins only after PASS (or APOP) succeeds, not after USER \
                 (RFC 1939 section 7)"
            }
            (Pop3State::Transaction, "QUIT") => {
                "QUIT ends TRANSACTION: the server moves on to UPDATE (RFC 1939 section 6)"
            }
            (Pop3State::Transaction, _) => {
                "a successful PASS or APOP moves the session to TRANSACTION (RFC 1939 \
                 section 7)"
            }
            (Pop3State::Update, "QUIT") if before == Pop3State::Authorization => {
                "QUIT before a login ends the session without UPDATE: there is nothing to \
                 remove (RFC 1939 section 4)"
            }
            (Pop3State::Update, _) => {
                "UPDATE comes only with QUIT after a login: the server removes the marked \
                 messages, then closes (RFC 1939 section 6)"
            }
            (Pop3State::Closed, _) => {
                "QUIT in AUTHORIZATION closes the session at once, with no UPDATE (RFC 1939 \
                 section 4)"
            }
        }
        .to_string()
    };
    let mut states = vec![
        Pop3State::Authorization,
        Pop3State::Transaction,
        Pop3State::Update,
    ];
    if after == Pop3State::Closed {
        states.push(Pop3State::Closed);
    }
    let choices = states
        .into_iter()
        .map(|s| Choice {
            text: s.name().to_string(),
            correct: s == after,
            why: why(s),
        })
        .collect();
    Question {
        step,
        reply: 0,
        kind: QuestionKind::Pop3State,
        prompt: format!(
            "The server answers {command} with {status}. Which state is the POP3 session in \
             now?"
        ),
        choices,
        explanation: format!(
            "Before {command} the session was in {}; now it is {}.",
            before.name(),
            after.name()
        ),
    }
}

fn smtp_code(
    step: usize,
    asked: Option<&Exchange>,
    reply: &Exchange,
    challenged: bool,
) -> Option<Question> {
    let code: String = reply.line.chars().take(3).collect();
    if code.len() != 3 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (prompt, offered) = match asked {
        None => (
            "The client has just connected. Which reply code does the SMTP server greet \
             with?"
                .to_string(),
            SMTP_GREETING,
        ),
        Some(e) if e.kind == ExchangeKind::Content => (
            "The client has sent the message and its final \".\" line. Which reply code comes \
             back?"
                .to_string(),
            SMTP_END_OF_DATA,
        ),
        Some(c) if challenged => (
            format!(
                "The client answers the server's 334 challenge with \"{}\" (base64). Which \
                 reply code comes back?",
                short(&c.line)
            ),
            SMTP_AUTH_ANSWERED,
        ),
        Some(c) => (
            format!(
                "The client sends \"{}\". Which reply code comes back?",
                short(&c.line)
            ),
            smtp_meanings(&verb(&c.line)),
        ),
    };
    let mut choices: Vec<Choice> = offered
        .iter()
        .map(|(c, why)| Choice {
            text: (*c).to_string(),
            correct: *c == code,
            why: format!("{c} would mean {why}"),
        })
        .collect();
    if !choices.iter().any(|c| c.correct) {
        // The server said something the table does not offer: it is the answer.
        choices.truncate(3);
        choices.push(Choice {
            why: format!(
                "{code} is what this server answered; its first digit says {} (RFC 5321 \
                 section 4.2.1)",
                match code.chars().next() {
                    Some('2') => "success",
                    Some('3') => "go on: more input is expected",
                    Some('4') => "a temporary failure: try again later",
                    Some('5') => "a permanent failure: do not repeat it as it is",
                    _ => "nothing RFC 5321 defines",
                }
            ),
            text: code.clone(),
            correct: true,
        });
        choices.sort_by(|a, b| a.text.cmp(&b.text));
    }
    Some(Question {
        step,
        reply: 0,
        kind: QuestionKind::SmtpCode,
        prompt,
        choices,
        explanation: format!("The server answered \"{}\".", short(&reply.line)),
    })
}

type Offered = &'static [(&'static str, &'static str)];

const SMTP_GREETING: Offered = &[
    (
        "220",
        "the service is ready (RFC 5321 sections 3.1 and 4.2)",
    ),
    (
        "421",
        "the service is not available and the server closes the channel (RFC 5321 section \
         3.8)",
    ),
    (
        "554",
        "the server refuses this client: no SMTP service here (RFC 5321 section 3.1)",
    ),
];

const SMTP_END_OF_DATA: Offered = &[
    (
        "250",
        "the mail is accepted: the server now takes responsibility for delivering it \
         (RFC 5321 section 4.1.1.4)",
    ),
    (
        "354",
        "go ahead with the data; but 354 came before the message, and it is not repeated \
         after the \".\" (RFC 5321 section 4.1.1.4)",
    ),
    (
        "451",
        "a local error: the server did not take the mail, the client should try again later \
         (RFC 5321 section 4.2.3)",
    ),
    (
        "552",
        "the mail exceeds the storage the server allows (RFC 5321 section 4.2.3)",
    ),
];

/// After the client answered an AUTH challenge (RFC 4954 sections 4 and 6).
const SMTP_AUTH_ANSWERED: Offered = &[
    (
        "235",
        "authentication succeeded: the session now acts for that user (RFC 4954 section 6)",
    ),
    (
        "334",
        "another challenge: the mechanism needs one more round, answered in base64 again \
         (RFC 4954 section 4)",
    ),
    (
        "501",
        "the client cancelled with \"*\", or its answer was not valid base64 (RFC 4954 \
         section 4)",
    ),
    ("535", "the credentials are invalid (RFC 4954 section 6)"),
];

/// Plausible codes for an SMTP command, each with what it would mean (RFC 5321).
fn smtp_meanings(verb: &str) -> Offered {
    match verb {
        "EHLO" | "HELO" => &[
            (
                "250",
                "the server greets the client by name (after EHLO, one line per extension; \
                 RFC 5321 section 4.1.1.1)",
            ),
            (
                "501",
                "the domain or address literal after the command is missing or malformed \
                 (RFC 5321 section 4.1.1.1)",
            ),
            (
                "502",
                "the command is not implemented: an old server without EHLO, so the client \
                 falls back to HELO (RFC 5321 section 4.1.4)",
            ),
        ],
        "MAIL" => &[
            (
                "250",
                "the sender is accepted and a mail transaction begins (RFC 5321 section \
                 4.1.1.2)",
            ),
            (
                "501",
                "the reverse-path is malformed (RFC 5321 section 4.1.1.2)",
            ),
            (
                "503",
                "a bad sequence: MAIL inside a transaction already begun, or before \
                 EHLO/HELO (RFC 5321 section 4.1.4)",
            ),
            (
                "550",
                "the sender is refused by the server's policy (RFC 5321 section 4.2.3)",
            ),
        ],
        "RCPT" => &[
            (
                "250",
                "the recipient is accepted (RFC 5321 section 4.1.1.3)",
            ),
            (
                "251",
                "the user is not local; the server will forward to the forward-path it \
                 names (RFC 5321 section 3.4)",
            ),
            (
                "503",
                "a bad sequence: RCPT before MAIL (RFC 5321 section 4.1.4)",
            ),
            (
                "550",
                "no such mailbox here, or it is not available (RFC 5321 section 4.2.3)",
            ),
        ],
        "DATA" => &[
            (
                "250",
                "the mail is accepted; but that comes only after the message's final \".\", \
                 not after DATA itself (RFC 5321 section 4.1.1.4)",
            ),
            (
                "354",
                "go ahead: send the message, ended by a line with only \".\" (RFC 5321 \
                 section 4.1.1.4)",
            ),
            (
                "503",
                "a bad sequence: no accepted MAIL or RCPT yet (RFC 5321 section 4.1.4)",
            ),
            (
                "554",
                "no valid recipients, so there is nothing to send the data to (RFC 5321 \
                 section 4.1.1.4)",
            ),
        ],
        "RSET" => &[
            (
                "250",
                "the transaction is cleared: sender, recipients and data are forgotten \
                 (RFC 5321 section 4.1.1.5)",
            ),
            (
                "503",
                "a bad sequence; but RSET is allowed at any time (RFC 5321 section 4.1.1.5)",
            ),
            (
                "221",
                "the server closes the channel; that is QUIT's reply, RSET keeps the session \
                 (RFC 5321 section 4.1.1.10)",
            ),
        ],
        "NOOP" => &[
            (
                "250",
                "nothing is done except the OK (RFC 5321 section 4.1.1.9)",
            ),
            (
                "500",
                "the command was not recognised; but every server must know NOOP (RFC 5321 \
                 section 4.5.1)",
            ),
            (
                "221",
                "the server closes the channel; that is QUIT's reply (RFC 5321 section \
                 4.1.1.10)",
            ),
        ],
        "VRFY" => &[
            (
                "250",
                "the address is a user here, and the reply names it (RFC 5321 section 3.5)",
            ),
            (
                "252",
                "the server will not verify the user but will accept mail for it (RFC 5321 \
                 section 3.5.3)",
            ),
            (
                "502",
                "VRFY is not implemented, which RFC 5321 section 3.5.3 discourages but \
                 allows for privacy",
            ),
            ("550", "no such user here (RFC 5321 section 3.5)"),
        ],
        "STARTTLS" => &[
            (
                "220",
                "ready to start TLS: the next bytes on the connection are the TLS handshake \
                 (RFC 3207 section 4)",
            ),
            (
                "454",
                "TLS is not available for a temporary reason (RFC 3207 section 4)",
            ),
            (
                "501",
                "a syntax error: STARTTLS takes no parameters (RFC 3207 section 4)",
            ),
        ],
        "AUTH" => &[
            (
                "334",
                "a challenge: the server waits for the client's answer in base64 (RFC 4954 \
                 section 4)",
            ),
            (
                "235",
                "authentication succeeded at once: the initial response was enough (RFC 4954 \
                 sections 4 and 6)",
            ),
            ("504", "the mechanism is not supported (RFC 4954 section 4)"),
            ("535", "the credentials are invalid (RFC 4954 section 6)"),
        ],
        "QUIT" => &[
            (
                "221",
                "the server says goodbye and closes the channel (RFC 5321 section 4.1.1.10)",
            ),
            (
                "250",
                "OK; but QUIT is answered with 221, the closing reply (RFC 5321 section \
                 4.1.1.10)",
            ),
            (
                "421",
                "the service is shutting down on its own; not the answer to a QUIT (RFC 5321 \
                 section 3.8)",
            ),
        ],
        _ => &[
            ("250", "the server knows the command and did it"),
            (
                "500",
                "the command was not recognised (RFC 5321 section 4.2.4)",
            ),
            (
                "502",
                "the command is recognised but not implemented (RFC 5321 section 4.2.4)",
            ),
        ],
    }
}

/// The captured unit that carried `reply` in step `index`.
fn reply_unit(timeline: &Timeline, index: usize, reply: &Exchange) -> Option<usize> {
    let record = timeline.steps.get(index)?;
    let k = record
        .outcome
        .exchanges
        .iter()
        .position(|e| std::ptr::eq(e, reply))?;
    timeline.unit_index(index, k)
}

fn segments_question(timeline: &Timeline, step: usize, unit_index: usize) -> Option<Question> {
    let unit = timeline.analyzer.units().get(unit_index)?;
    if unit.direction != Direction::ServerToClient || unit.carriers.is_empty() {
        return None;
    }
    let frames = unit.frames();
    let count = frames.len();
    // Only replies that are worth counting: long, or carried by more than one segment.
    if count < 2 && !unit.multi_line {
        return None;
    }
    let bytes = unit.len();
    let largest = unit
        .carriers
        .iter()
        .map(|c| c.range.len())
        .max()
        .unwrap_or(0);
    let mut options: Vec<usize> = vec![1, count.saturating_sub(1), count, count + 1];
    options.retain(|&n| n >= 1);
    options.sort_unstable();
    options.dedup();
    let choices = options
        .into_iter()
        .map(|n| Choice {
            text: n.to_string(),
            correct: n == count,
            why: if n == count {
                format!(
                    "{n}: the reply's {bytes} bytes went out in {n} segment(s), the largest \
                     carrying {largest} bytes"
                )
            } else if n < count {
                format!(
                    "{n} segment(s) could hold {bytes} bytes only with {} bytes or more in one; \
                     here no segment carried more than {largest} bytes of it",
                    bytes.div_ceil(u64::try_from(n).unwrap_or(1).max(1))
                )
            } else {
                format!(
                    "{n} segments: more than it took; TCP packs the bytes the server wrote into \
                     as few segments as the MSS allows, here up to {largest} bytes each"
                )
            },
        })
        .collect();
    Some(Question {
        step,
        reply: 0,
        kind: QuestionKind::Segments,
        prompt: format!(
            "The reply \"{}\" is {bytes} bytes long. In how many TCP segments does it cross \
             the wire?",
            short(&unit.text)
        ),
        choices,
        explanation: format!(
            "Frames {}: a TCP segment carries at most the MSS the receiver announced in its \
             SYN, and a server's separate writes may go out separately (RFC 9293 section \
             3.7.1).",
            frames
                .iter()
                .map(|f| format!("#{}", f + 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

fn ack_question(timeline: &Timeline, step: usize, unit_index: usize) -> Option<Question> {
    let frames = timeline.analyzer.frames();
    let unit = timeline.analyzer.units().get(unit_index)?;
    // Asked about the replies worth counting (as the segments question), not every one.
    if unit.direction != Direction::ServerToClient || (unit.frames().len() < 2 && !unit.multi_line)
    {
        return None;
    }
    let last = *unit.frames().last()?;
    let segment = frames.get(last)?.segment?;
    let len = frames.get(last)?.summary.tcp?.payload_len;
    let expected = segment.rel_seq.checked_add(len)?;
    // The client's next segment on this connection must acknowledge exactly that byte
    // (and carry the ACK flag), or the question would not be true to the capture.
    let next = frames
        .iter()
        .enumerate()
        .skip(last + 1)
        .find_map(|(i, f)| {
            let s = f.segment?;
            (s.conn == segment.conn && s.direction == Direction::ClientToServer).then_some((i, s))
        })?;
    let (ack_frame, ack) = next;
    let flags = frames.get(ack_frame)?.summary.tcp?.flags;
    if !flags.has(TcpFlags::ACK) || ack.rel_ack != expected || len == 0 {
        return None;
    }
    let seq = segment.rel_seq;
    let mut options = vec![
        (
            seq,
            format!(
                "{seq} is the first byte of the segment received; an ACK names the next byte \
                 the receiver expects (RFC 9293 section 3.4)"
            ),
        ),
        (
            expected - 1,
            format!(
                "{} is the last byte received; the acknowledgment number is one past it, the \
                 next byte expected (RFC 9293 section 3.4)",
                expected - 1
            ),
        ),
        (
            expected,
            format!(
                "{expected} = {seq} + {len}: all bytes up to {} arrived, {expected} is the \
                 next one expected (RFC 9293 section 3.4)",
                expected - 1
            ),
        ),
        (
            expected.saturating_add(1),
            format!(
                "{} would count one more: only SYN and FIN take a sequence number of their \
                 own, data bytes count one each (RFC 9293 section 3.4)",
                expected.saturating_add(1)
            ),
        ),
    ];
    options.sort_by_key(|(n, _)| *n);
    options.dedup_by_key(|(n, _)| *n);
    let choices = options
        .into_iter()
        .map(|(n, why)| Choice {
            text: n.to_string(),
            correct: n == expected,
            why,
        })
        .collect();
    Some(Question {
        step,
        reply: 0,
        kind: QuestionKind::NextAck,
        prompt: format!(
            "Frame #{} carries the end of the reply: {len} bytes of data from relative sequence \
             number {seq}. Which acknowledgment number does the client send back (relative)?",
            last + 1
        ),
        choices,
        explanation: format!("Frame #{}: ACK {}.", ack_frame + 1, ack.rel_ack),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(choices: &[(&str, bool)]) -> Question {
        Question {
            step: 0,
            reply: 0,
            kind: QuestionKind::Pop3Status,
            prompt: String::new(),
            choices: choices
                .iter()
                .map(|(t, c)| Choice {
                    text: (*t).to_string(),
                    correct: *c,
                    why: String::new(),
                })
                .collect(),
            explanation: String::new(),
        }
    }

    #[test]
    fn answers_by_letter_or_text() {
        let q = question(&[("+OK", false), ("-ERR", true)]);
        assert_eq!(q.judge("b"), Verdict::Right(1));
        assert_eq!(q.judge(" B \n"), Verdict::Right(1));
        assert_eq!(q.judge("-err"), Verdict::Right(1));
        assert_eq!(q.judge("a"), Verdict::Wrong(0));
        assert_eq!(q.judge("+OK"), Verdict::Wrong(0));
        assert_eq!(q.judge("c"), Verdict::NotAChoice);
        assert_eq!(q.judge(""), Verdict::NotAChoice);
        assert_eq!(q.judge("yes"), Verdict::NotAChoice);
        assert_eq!(q.answer(), Some(1));
    }

    #[test]
    fn pop3_states_follow_rfc_1939() {
        use Pop3State::*;
        assert_eq!(
            next_pop3_state(Authorization, Some("USER"), true),
            Authorization
        );
        assert_eq!(
            next_pop3_state(Authorization, Some("PASS"), false),
            Authorization
        );
        assert_eq!(
            next_pop3_state(Authorization, Some("PASS"), true),
            Transaction
        );
        assert_eq!(
            next_pop3_state(Authorization, Some("APOP"), true),
            Transaction
        );
        assert_eq!(
            next_pop3_state(Transaction, Some("DELE"), true),
            Transaction
        );
        assert_eq!(next_pop3_state(Transaction, Some("QUIT"), true), Update);
        assert_eq!(next_pop3_state(Authorization, Some("QUIT"), true), Closed);
    }

    #[test]
    fn an_smtp_code_the_table_does_not_offer_is_still_the_answer() {
        let reply = Exchange {
            kind: ExchangeKind::Reply,
            line: "452 4.3.1 Insufficient system storage".to_string(),
            more: Vec::new(),
            octets: 0,
            stream: None,
        };
        let data = Exchange {
            kind: ExchangeKind::Command,
            line: "DATA".to_string(),
            more: Vec::new(),
            octets: 0,
            stream: None,
        };
        let q = smtp_code(3, Some(&data), &reply, false).unwrap();
        assert_eq!(q.choices.iter().filter(|c| c.correct).count(), 1);
        let right = &q.choices[q.answer().unwrap()];
        assert_eq!(right.text, "452");
        assert!(right.why.contains("temporary"), "{}", right.why);
        assert!(q.choices.len() <= 4);
    }

    fn exchange(kind: ExchangeKind, line: &str) -> Exchange {
        Exchange {
            kind,
            line: line.to_string(),
            more: Vec::new(),
            octets: 0,
            stream: None,
        }
    }

    fn timeline_of(protocol: Protocol, steps: &[&[(bool, &str)]]) -> Timeline {
        let mut t = Timeline::new("auth");
        for (i, lines) in steps.iter().enumerate() {
            let exchanges = lines
                .iter()
                .map(|&(client, line)| {
                    let kind = if client {
                        ExchangeKind::Command
                    } else {
                        ExchangeKind::Reply
                    };
                    exchange(kind, line)
                })
                .collect();
            let outcome = crate::exchange::StepOutcome {
                index: i,
                session: "main".into(),
                protocol: Some(protocol),
                conn: None,
                exchanges,
                check: Ok(()),
                events: Vec::new(),
                server_closed: false,
            };
            t.push_step(outcome, String::new(), None, None, 0..0);
        }
        t
    }

    fn right(q: &Question) -> &str {
        q.answer()
            .and_then(|a| q.choices.get(a))
            .map_or("", |c| c.text.as_str())
    }

    /// After a successful AUTH the session is in TRANSACTION (RFC 5034 section 4), so its
    /// QUIT leads to UPDATE, not to a close without one.
    #[test]
    fn a_pop3_auth_login_moves_to_transaction() {
        let t = timeline_of(
            Protocol::Pop3,
            &[
                &[(false, "+OK ready")],
                &[
                    (true, "AUTH SCRAM-SHA-256 biws"),
                    (false, "+ cj1h"),
                    (true, "Yz1i"),
                    (false, "+ dj1U"),
                    (true, ""),
                    (false, "+OK logged in"),
                ],
                &[(true, "QUIT"), (false, "+OK bye")],
            ],
        );
        let mut quiz = Quiz::new();
        quiz.questions(&t, 0);
        let auth = quiz.questions(&t, 1);
        let status = auth
            .iter()
            .find(|q| q.kind == QuestionKind::Pop3Status)
            .unwrap();
        assert!(status.prompt.contains("challenges"), "{}", status.prompt);
        assert_eq!(right(status), "+OK");
        assert!(
            status.choices[0].why.contains("RFC 5034"),
            "{:?}",
            status.choices
        );
        let state = auth
            .iter()
            .find(|q| q.kind == QuestionKind::Pop3State)
            .unwrap();
        assert_eq!(right(state), "TRANSACTION");
        let quit = quiz.questions(&t, 2);
        let state = quit
            .iter()
            .find(|q| q.kind == QuestionKind::Pop3State)
            .unwrap();
        assert_eq!(right(state), "UPDATE");
    }

    /// SMTP AUTH LOGIN: the client's base64 answers are asked about as answers to a 334
    /// (RFC 4954), not as unknown commands.
    #[test]
    fn an_smtp_auth_answer_is_judged_as_an_answer() {
        let t = timeline_of(
            Protocol::Smtp,
            &[&[
                (true, "AUTH LOGIN"),
                (false, "334 VXNlcm5hbWU6"),
                (true, "Ym9i"),
                (false, "334 UGFzc3dvcmQ6"),
                (true, "YnVpbGRlcg=="),
                (false, "235 2.7.0 Authentication successful"),
            ]],
        );
        let questions = Quiz::new().questions(&t, 0);
        let codes: Vec<&Question> = questions
            .iter()
            .filter(|q| q.kind == QuestionKind::SmtpCode)
            .collect();
        assert_eq!(codes.len(), 3);
        assert_eq!(right(codes[0]), "334");
        assert!(codes[0].choices.iter().any(|c| c.text == "504"));
        for (q, code) in codes[1..].iter().zip(["334", "235"]) {
            assert!(q.prompt.contains("334 challenge"), "{}", q.prompt);
            assert_eq!(right(q), code);
            assert!(q.choices.iter().any(|c| c.text == "535"), "{:?}", q.choices);
            assert!(
                q.choices.iter().all(|c| c.why.contains("RFC 4954")),
                "{:?}",
                q.choices
            );
        }
    }

    #[test]
    fn letters() {
        assert_eq!(letter(0), 'a');
        assert_eq!(letter(3), 'd');
    }
}
