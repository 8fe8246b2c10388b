//! The narration pane: the viewed step's caption and RFC reference in large type, whether
//! its expectation held, and a plain-language explanation of every reply the step met.
//!
//! A reply is explained by the command it answers where that is known ([`Asked`],
//! [`explain_answer`]): POP3's `+OK` means something else after `LIST 1` (one line) than
//! after `LIST` (a multi-line listing), and after QUIT in TRANSACTION (the UPDATE state,
//! RFC 1939 section 6). Otherwise the code alone is explained ([`explain_reply`]). Every
//! text names the RFC section it follows.

use std::collections::VecDeque;

use eframe::egui::{RichText, Ui};

use super::theme::Palette;
use crate::exchange::{Exchange, ExchangeKind};
use crate::proto::{Protocol, pop3, smtp};
use crate::timeline::Timeline;

/// A reply code and what it means, in words a class understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyMeaning {
    /// The code as shown: `+OK`, `-ERR [IN-USE]`, `550 5.1.1`...
    pub code: &'static str,
    /// What the reply answered, when that changes the meaning: `LIST n`, `QUIT in
    /// TRANSACTION`, `the message's final dot`...
    pub answers: Option<&'static str>,
    pub meaning: &'static str,
}

const fn meaning(code: &'static str, meaning: &'static str) -> ReplyMeaning {
    ReplyMeaning {
        code,
        answers: None,
        meaning,
    }
}

const fn answer(code: &'static str, answers: &'static str, meaning: &'static str) -> ReplyMeaning {
    ReplyMeaning {
        code,
        answers: Some(answers),
        meaning,
    }
}

/// POP3 response codes in brackets after -ERR (RFC 2449 section 8, RFC 3206), most specific
/// first.
const POP3_ERR: &[(&str, ReplyMeaning)] = &[
    (
        "[IN-USE]",
        meaning(
            "-ERR [IN-USE]",
            "The name and password were right, but the maildrop is locked: another session of the same user has it open (RFC 2449 section 8.1.2). A POP3 server locks the maildrop for a whole session (RFC 1939 section 4); the login works once the other session has quit.",
        ),
    ),
    (
        "[AUTH]",
        meaning(
            "-ERR [AUTH]",
            "A problem with the user's credentials: a wrong password, an unknown user name, an expired account, a login the server's policy forbids (RFC 3206 section 5). Trying the same credentials again will not help. A failed login leaves the session in AUTHORIZATION, so the client may try again (RFC 1939 section 7).",
        ),
    ),
    (
        "[SYS/TEMP]",
        meaning(
            "-ERR [SYS/TEMP]",
            "A temporary problem on the server (a full disk, a shutdown): not the client's fault; trying later may work (RFC 3206 section 4).",
        ),
    ),
    (
        "[SYS/PERM]",
        meaning(
            "-ERR [SYS/PERM]",
            "A lasting problem on the server: trying again will not help until its administrator fixes it (RFC 3206 section 4).",
        ),
    ),
    (
        "[LOGIN-DELAY]",
        meaning(
            "-ERR [LOGIN-DELAY]",
            "The login is refused because the last one was too recent: the server wants a minimum time between logins (RFC 2449 section 8.1.1).",
        ),
    ),
];

/// SMTP replies with an enhanced status code (RFC 3463) that changes the meaning.
const SMTP_ENHANCED: &[(&str, ReplyMeaning)] = &[
    (
        "550 5.1.1",
        meaning(
            "550 5.1.1",
            "Bad destination mailbox: the server has no user of that name (RFC 3463 X.1.1). This recipient is refused; the others (if any) still count.",
        ),
    ),
    (
        "550 5.7.1",
        meaning(
            "550 5.7.1",
            "Refused by policy (RFC 3463 X.7.1): the address is not one this server delivers to, and it does not relay mail onward for strangers (an open relay would carry spam).",
        ),
    ),
    (
        "503 5.5.1",
        meaning(
            "503 5.5.1",
            "Bad sequence of commands: this command is not allowed yet (MAIL before HELO, RCPT before MAIL, DATA before any accepted recipient) (RFC 5321 sections 3.3 and 4.1.4).",
        ),
    ),
    (
        "552 5.3.4",
        meaning(
            "552 5.3.4",
            "The message is larger than the server accepts (RFC 3463 X.3.4); it is not delivered.",
        ),
    ),
];

/// SMTP reply codes by number (RFC 5321 sections 4.2.2 and 4.2.3; 235, 334, 530 and 535
/// are RFC 4954's).
const SMTP_CODES: &[(&str, ReplyMeaning)] = &[
    (
        "211",
        meaning(
            "211",
            "System status or help reply (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "214",
        meaning(
            "214",
            "Help text for a human reader (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "220",
        meaning(
            "220",
            "Service ready: the server greets the client and names itself. The client may now say HELO or EHLO (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "221",
        meaning(
            "221",
            "Service closing: the server says goodbye after QUIT and closes the connection (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "235",
        meaning("235", "Authentication succeeded (RFC 4954)."),
    ),
    (
        "250",
        meaning(
            "250",
            "Requested mail action okay, completed: the command worked (RFC 5321 section 4.2.2). After the message's final dot it means the server has taken responsibility for delivering the message, not that it reached the recipient (RFC 5321 section 4.1.1.4).",
        ),
    ),
    (
        "251",
        meaning(
            "251",
            "User not local: the server accepts the mail and will forward it to the address (the forward-path) the reply names (RFC 5321 section 3.4).",
        ),
    ),
    (
        "252",
        meaning(
            "252",
            "The server cannot verify the user (VRFY) but will accept a message for it and try to deliver it (RFC 5321 section 3.5.3).",
        ),
    ),
    (
        "334",
        meaning(
            "334",
            "A challenge during AUTH: the client answers with base64 text (RFC 4954 section 4).",
        ),
    ),
    (
        "354",
        meaning(
            "354",
            "Start mail input: the server now takes the message itself, line by line, until a line holding only a dot (CRLF . CRLF) (RFC 5321 section 4.1.1.4).",
        ),
    ),
    (
        "421",
        meaning(
            "421",
            "Service not available: the server is closing the connection (shutting down, too busy, idle too long) (RFC 5321 section 3.8).",
        ),
    ),
    (
        "450",
        meaning(
            "450",
            "Mailbox unavailable for now (busy or locked): a temporary failure, try again later (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "451",
        meaning(
            "451",
            "Local error in processing: the server could not finish (for instance, storing the message failed). Temporary: try again later (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "452",
        meaning(
            "452",
            "Insufficient storage (or too many recipients): temporary, try again later (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "500",
        meaning(
            "500",
            "Syntax error, command unrecognised: the server does not know this command or the line is too long (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "501",
        meaning(
            "501",
            "Syntax error in parameters or arguments: the command is known but its argument is wrong (a malformed address, for instance) (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "502",
        meaning(
            "502",
            "Command not implemented: the server knows the command but does not offer it (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "503",
        meaning(
            "503",
            "Bad sequence of commands: this command is not allowed at this point of the session (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "504",
        meaning(
            "504",
            "Command parameter not implemented (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "530",
        meaning(
            "530",
            "Authentication required before this command (RFC 4954).",
        ),
    ),
    (
        "535",
        meaning(
            "535",
            "Authentication failed: the credentials were not accepted (RFC 4954).",
        ),
    ),
    (
        "550",
        meaning(
            "550",
            "Requested action not taken: mailbox unavailable (no such user, or refused by policy). A permanent failure (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "551",
        meaning(
            "551",
            "User not local: the server refuses this recipient and will not forward the mail itself. The reply names the address (the forward-path) where the user can now be reached, which the client may try instead (RFC 5321 section 3.4).",
        ),
    ),
    (
        "552",
        meaning(
            "552",
            "Exceeded storage allocation: the message is too big (or the mailbox is full). A permanent failure (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "553",
        meaning(
            "553",
            "Mailbox name not allowed: the address is malformed (RFC 5321 section 4.2.2).",
        ),
    ),
    (
        "554",
        meaning(
            "554",
            "Transaction failed (or, as a greeting, no SMTP service here): a permanent failure (RFC 5321 section 4.2.2).",
        ),
    ),
];

/// POP3's positive status indicator when the command it answers is not known.
const POP3_OK: ReplyMeaning = meaning(
    "+OK",
    "Positive: the command worked (RFC 1939 section 3). Whether more lines follow depends on the command: only some answers are multi-line, ended by a line holding only a dot.",
);
/// POP3's negative status indicator when the command it answers is not known.
const POP3_ERR_PLAIN: ReplyMeaning = meaning(
    "-ERR",
    "Negative: the command failed (an unknown command, one not allowed in this state, no such message...) (RFC 1939 section 3). The text after -ERR says why.",
);

/// What a reply's status line means by its code alone (the command it answers unknown).
pub fn explain_reply(line: &str) -> Option<ReplyMeaning> {
    let line = line.trim_start();
    if line.starts_with("+OK") {
        return Some(POP3_OK);
    }
    if let Some(rest) = line.strip_prefix("-ERR") {
        let rest = rest.trim_start();
        let specific = POP3_ERR
            .iter()
            .find(|(tag, _)| rest.starts_with(tag))
            .map(|(_, m)| *m);
        return Some(specific.unwrap_or(POP3_ERR_PLAIN));
    }
    let code = line
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))?;
    // "550-5.1.1 ..." (a continuation line) means the same as "550 5.1.1".
    let enhanced = line
        .get(4..)
        .map(|rest| rest.split_whitespace().next().unwrap_or_default());
    if let Some(enhanced) = enhanced {
        let key = format!("{code} {enhanced}");
        if let Some((_, m)) = SMTP_ENHANCED.iter().find(|(k, _)| *k == key) {
            return Some(*m);
        }
    }
    SMTP_CODES
        .iter()
        .find(|(k, _)| *k == code)
        .map(|(_, m)| *m)
        .or_else(|| {
            SMTP_CLASSES
                .iter()
                .find(|(first, _)| code.starts_with(*first))
                .map(|(_, m)| *m)
        })
}

/// For codes not in the tables: what the first digit says (RFC 5321 section 4.2.1).
const SMTP_CLASSES: [(&str, ReplyMeaning); 4] = [
    (
        "2",
        meaning(
            "2xx",
            "Positive completion: the command worked (the first digit 2 says so; this exact code is not in mailwire's table) (RFC 5321 section 4.2.1).",
        ),
    ),
    (
        "3",
        meaning(
            "3xx",
            "Positive intermediate: go on and send what the server asks for next (RFC 5321 section 4.2.1).",
        ),
    ),
    (
        "4",
        meaning(
            "4xx",
            "Transient negative: the command failed this time; the same command may work later (RFC 5321 section 4.2.1).",
        ),
    ),
    (
        "5",
        meaning(
            "5xx",
            "Permanent negative: the command failed and will fail again if repeated unchanged (RFC 5321 section 4.2.1).",
        ),
    ),
];

/// What a reply answered, as far as its meaning depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Nothing the narration knows of: a greeting, or a reply the server sent on its own.
    Nothing,
    /// A POP3 command.
    Pop3(Pop3Asked),
    /// An SMTP command.
    Smtp(SmtpAsked),
    /// SMTP message content up to its final dot (the reply that ends DATA).
    SmtpContent,
}

/// POP3 commands whose answers mean different things (RFC 1939 sections 4 to 7, RFC 2449).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop3Asked {
    User,
    /// PASS or APOP.
    Login,
    Stat,
    /// `LIST` without an argument.
    ListAll,
    /// `LIST n`.
    ListOne,
    /// `UIDL` without an argument.
    UidlAll,
    /// `UIDL n`.
    UidlOne,
    Retr,
    Top,
    Dele,
    Noop,
    Rset,
    Capa,
    /// QUIT before login: the session ends without UPDATE.
    QuitInAuthorization,
    /// QUIT after login: the session enters UPDATE.
    QuitInTransaction,
    /// A line the POP3 grammar does not know.
    Other,
}

/// SMTP commands whose answers mean different things (RFC 5321 section 4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpAsked {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Vrfy,
    Quit,
    /// Another verb, or a line the SMTP grammar does not know.
    Other,
}

/// A reply that means something particular after `asked`; `None` when its code alone says
/// it (then [`explain_reply`] does).
fn specific_meaning(asked: Asked, line: &str) -> Option<ReplyMeaning> {
    let line = line.trim_start();
    let positive = line.starts_with("+OK");
    let negative = line.starts_with("-ERR");
    match asked {
        Asked::Nothing if positive => Some(answer(
            "+OK",
            "the connection",
            "The greeting: the server is ready, and the client must now identify itself (USER and PASS, or APOP) before anything else. A timestamp in angle brackets, when there is one, is what APOP digests (RFC 1939 sections 4 and 7).",
        )),
        Asked::Pop3(p) if positive => pop3_positive(p),
        Asked::Pop3(p) if negative => pop3_negative(p, line),
        Asked::Smtp(s) if line.starts_with("250") => smtp_250(s),
        Asked::SmtpContent if line.starts_with("250") => Some(answer(
            "250",
            "the message's final dot",
            "The server has taken responsibility for delivering the message (RFC 5321 section 4.1.1.4): it is stored or queued, and any later failure must come back as a report to the sender. It does not mean the recipient has it yet.",
        )),
        _ => None,
    }
}

fn pop3_positive(asked: Pop3Asked) -> Option<ReplyMeaning> {
    let m = match asked {
        Pop3Asked::User => answer(
            "+OK",
            "USER",
            "The server noted the name; PASS must follow. This +OK does not prove that the user exists (RFC 1939 section 7).",
        ),
        Pop3Asked::Login => answer(
            "+OK",
            "PASS/APOP",
            "Logged in: the credentials were right and the server locked the maildrop for this session, which enters the TRANSACTION state (RFC 1939 sections 4 and 7).",
        ),
        Pop3Asked::Stat => answer(
            "+OK",
            "STAT",
            "A single line: the number of messages and the size of the maildrop in octets. Messages marked deleted are not counted (RFC 1939 section 5).",
        ),
        Pop3Asked::ListAll => answer(
            "+OK",
            "LIST",
            "A multi-line answer: one line per message, its number and its size in octets, then a line holding only a dot. Messages marked deleted are not listed (RFC 1939 section 5).",
        ),
        Pop3Asked::ListOne => answer(
            "+OK",
            "LIST n",
            "A single line: the message's number and its size in octets. No dot line follows: only LIST without an argument answers with several lines (RFC 1939 section 5).",
        ),
        Pop3Asked::UidlAll => answer(
            "+OK",
            "UIDL",
            "A multi-line answer: one line per message, its number and its unique id, then a line holding only a dot. A message keeps its id in every session. The server marks nothing as new: a client compares the ids with the ones it saved earlier (RFC 1939 section 7).",
        ),
        Pop3Asked::UidlOne => answer(
            "+OK",
            "UIDL n",
            "A single line: the message's number and its unique id; no dot line follows (RFC 1939 section 7).",
        ),
        Pop3Asked::Retr => answer(
            "+OK",
            "RETR",
            "The whole message follows, multi-line. A line of the message that starts with a dot gets one more dot on the wire (byte-stuffing), and a line holding only a dot ends it (RFC 1939 sections 3 and 5).",
        ),
        Pop3Asked::Top => answer(
            "+OK",
            "TOP",
            "The message's headers, the blank line and the first n lines of its body follow, multi-line, ended by a line holding only a dot (RFC 1939 section 7). The number in mailwire's \"+OK n octets\" counts what follows (the part sent, with CRLF line ends, before byte-stuffing), not the whole message: LIST gives that. RFC 1939 sets no text for this line.",
        ),
        Pop3Asked::Dele => answer(
            "+OK",
            "DELE",
            "The message is marked deleted, not removed: the server removes it in the UPDATE state, after QUIT. Until then its number stays taken, and RSET can unmark it (RFC 1939 section 5).",
        ),
        Pop3Asked::Noop => answer(
            "+OK",
            "NOOP",
            "Nothing happens: the server only answers (RFC 1939 section 5).",
        ),
        Pop3Asked::Rset => answer(
            "+OK",
            "RSET",
            "Every message marked deleted in this session is unmarked (RFC 1939 section 5).",
        ),
        Pop3Asked::Capa => answer(
            "+OK",
            "CAPA",
            "A multi-line answer: one capability per line (TOP, UIDL, USER, PIPELINING...), then a line holding only a dot (RFC 2449 section 5).",
        ),
        Pop3Asked::QuitInAuthorization => answer(
            "+OK",
            "QUIT in AUTHORIZATION",
            "A single line, then the server closes the connection. QUIT before login ends the session without entering UPDATE: nothing is deleted (RFC 1939 section 6).",
        ),
        Pop3Asked::QuitInTransaction => answer(
            "+OK",
            "QUIT in TRANSACTION",
            "QUIT moved the session to the UPDATE state: the server removed the messages marked deleted and answered with this single line; then it releases the maildrop's lock and closes the connection (RFC 1939 section 6).",
        ),
        Pop3Asked::Other => return None,
    };
    Some(m)
}

fn pop3_negative(asked: Pop3Asked, line: &str) -> Option<ReplyMeaning> {
    // In UPDATE the bracketed code ([SYS/PERM]) matters less than what -ERR means there.
    if asked == Pop3Asked::QuitInTransaction {
        return Some(answer(
            "-ERR",
            "QUIT in TRANSACTION",
            "In the UPDATE state -ERR means some messages marked deleted could not be removed. The session ends all the same: the server closes the connection (RFC 1939 section 6).",
        ));
    }
    let bracketed = line
        .strip_prefix("-ERR")
        .is_some_and(|rest| rest.trim_start().starts_with('['));
    if bracketed {
        return None;
    }
    let m = match asked {
        Pop3Asked::User => answer(
            "-ERR",
            "USER",
            "The server refuses this name. The session stays in AUTHORIZATION; the client may try another name (RFC 1939 section 7).",
        ),
        Pop3Asked::Login => answer(
            "-ERR",
            "PASS/APOP",
            "The login failed (wrong credentials, or the maildrop could not be locked). The session never left AUTHORIZATION, so the client may try again (RFC 1939 section 7).",
        ),
        Pop3Asked::ListOne
        | Pop3Asked::UidlOne
        | Pop3Asked::Retr
        | Pop3Asked::Top
        | Pop3Asked::Dele => answer(
            "-ERR",
            "a message number",
            "No such message, or it is marked deleted: a deleted message keeps its number but cannot be read or listed. The session stays in TRANSACTION (RFC 1939 section 5).",
        ),
        _ => return None,
    };
    Some(m)
}

fn smtp_250(asked: SmtpAsked) -> Option<ReplyMeaning> {
    let m = match asked {
        SmtpAsked::Helo => answer(
            "250",
            "HELO",
            "HELO accepted: the server knows the client's name. No extensions are listed: that takes EHLO (RFC 5321 section 4.1.1.1).",
        ),
        SmtpAsked::Ehlo => answer(
            "250",
            "EHLO",
            "EHLO accepted, in a multi-line reply: the first line names the server, every further line an extension it offers (SIZE, PIPELINING, 8BITMIME...) (RFC 5321 sections 4.1.1.1 and 4.2.1).",
        ),
        SmtpAsked::Mail => answer(
            "250",
            "MAIL",
            "The sender (the reverse-path) is accepted: a mail transaction begins (RFC 5321 section 4.1.1.2).",
        ),
        SmtpAsked::Rcpt => answer(
            "250",
            "RCPT",
            "This recipient (a forward-path) is accepted; a transaction may have several (RFC 5321 section 4.1.1.3).",
        ),
        SmtpAsked::Rset => answer(
            "250",
            "RSET",
            "The transaction is dropped: its sender, recipients and message text are forgotten; the connection stays open (RFC 5321 section 4.1.1.5).",
        ),
        SmtpAsked::Noop => answer(
            "250",
            "NOOP",
            "Nothing happens: the server only answers (RFC 5321 section 4.1.1.9).",
        ),
        SmtpAsked::Vrfy => answer(
            "250",
            "VRFY",
            "The address names a user of this server (RFC 5321 section 4.1.1.6).",
        ),
        SmtpAsked::Data | SmtpAsked::Quit | SmtpAsked::Other => return None,
    };
    Some(m)
}

/// What `line`, the answer to `asked`, means: by the command where that matters, else by
/// its code.
pub fn explain_answer(asked: Asked, line: &str) -> Option<ReplyMeaning> {
    specific_meaning(asked, line).or_else(|| explain_reply(line))
}

/// Follows one session's commands and replies in order (both protocols answer in order,
/// pipelined or not: RFC 2449 section 6.6, RFC 2920 section 3) to tell what each reply
/// answered.
#[derive(Debug, Default)]
struct Follower {
    /// Commands sent and not answered yet; POP3 QUIT is told apart by the state at its
    /// answer.
    waiting: VecDeque<Waiting>,
    /// A POP3 login was answered +OK: the session is in TRANSACTION.
    logged_in: bool,
}

#[derive(Debug, Clone, Copy)]
enum Waiting {
    Pop3(Pop3Asked),
    Pop3Quit,
    Smtp(SmtpAsked),
    SmtpContent,
}

impl Follower {
    /// Takes one exchange; for a reply, says what it answered.
    fn take(&mut self, protocol: Protocol, exchange: &Exchange) -> Option<Asked> {
        match exchange.kind {
            ExchangeKind::Command => {
                self.waiting.push_back(match protocol {
                    Protocol::Pop3 => pop3_waiting(&exchange.line),
                    Protocol::Smtp => Waiting::Smtp(smtp_asked(&exchange.line)),
                });
                None
            }
            ExchangeKind::Content => {
                self.waiting.push_back(Waiting::SmtpContent);
                None
            }
            ExchangeKind::Reply => {
                let positive = exchange.line.starts_with("+OK");
                let asked = match self.waiting.pop_front() {
                    None => {
                        // A greeting starts a new POP3 session.
                        self.logged_in = false;
                        Asked::Nothing
                    }
                    Some(Waiting::Pop3Quit) if self.logged_in => {
                        Asked::Pop3(Pop3Asked::QuitInTransaction)
                    }
                    Some(Waiting::Pop3Quit) => Asked::Pop3(Pop3Asked::QuitInAuthorization),
                    Some(Waiting::Pop3(p)) => {
                        if p == Pop3Asked::Login && positive {
                            self.logged_in = true;
                        }
                        Asked::Pop3(p)
                    }
                    Some(Waiting::Smtp(s)) => Asked::Smtp(s),
                    Some(Waiting::SmtpContent) => Asked::SmtpContent,
                };
                Some(asked)
            }
        }
    }
}

fn pop3_waiting(line: &str) -> Waiting {
    use pop3::Command as C;
    let asked = match C::parse(line.as_bytes()) {
        Ok(C::Quit) => return Waiting::Pop3Quit,
        Ok(C::User(_)) => Pop3Asked::User,
        Ok(C::Pass(_) | C::Apop { .. }) => Pop3Asked::Login,
        Ok(C::Stat) => Pop3Asked::Stat,
        Ok(C::List(None)) => Pop3Asked::ListAll,
        Ok(C::List(Some(_))) => Pop3Asked::ListOne,
        Ok(C::Uidl(None)) => Pop3Asked::UidlAll,
        Ok(C::Uidl(Some(_))) => Pop3Asked::UidlOne,
        Ok(C::Retr(_)) => Pop3Asked::Retr,
        Ok(C::Top { .. }) => Pop3Asked::Top,
        Ok(C::Dele(_)) => Pop3Asked::Dele,
        Ok(C::Noop) => Pop3Asked::Noop,
        Ok(C::Rset) => Pop3Asked::Rset,
        Ok(C::Capa) => Pop3Asked::Capa,
        Ok(C::Stls | C::Auth { .. }) | Err(_) => Pop3Asked::Other,
    };
    Waiting::Pop3(asked)
}

fn smtp_asked(line: &str) -> SmtpAsked {
    use smtp::Verb as V;
    match smtp::command::split_command(line.as_bytes()) {
        Ok((V::Helo, _)) => SmtpAsked::Helo,
        Ok((V::Ehlo, _)) => SmtpAsked::Ehlo,
        Ok((V::Mail, _)) => SmtpAsked::Mail,
        Ok((V::Rcpt, _)) => SmtpAsked::Rcpt,
        Ok((V::Data, _)) => SmtpAsked::Data,
        Ok((V::Rset, _)) => SmtpAsked::Rset,
        Ok((V::Noop, _)) => SmtpAsked::Noop,
        Ok((V::Vrfy, _)) => SmtpAsked::Vrfy,
        Ok((V::Quit, _)) => SmtpAsked::Quit,
        _ => SmtpAsked::Other,
    }
}

/// The protocol a session speaks, from the step or else from its first reply's form.
fn protocol_of(known: Option<Protocol>, exchanges: &[Exchange]) -> Option<Protocol> {
    known.or_else(|| {
        exchanges
            .iter()
            .find(|e| e.kind == ExchangeKind::Reply)
            .map(|e| {
                if e.line.starts_with("+OK") || e.line.starts_with("-ERR") {
                    Protocol::Pop3
                } else {
                    Protocol::Smtp
                }
            })
    })
}

/// The meanings of the replies of a step, each once, in order of appearance. The session's
/// earlier steps are followed too, so that a reply is explained by the command it answers
/// (and QUIT by the state it was sent in).
pub fn step_meanings(timeline: &Timeline, step: usize) -> Vec<ReplyMeaning> {
    let mut out: Vec<ReplyMeaning> = Vec::new();
    let Some(record) = timeline.steps.get(step) else {
        return out;
    };
    let session = &record.outcome.session;
    let mut follower = Follower::default();
    let mut conn = None;
    for (index, earlier) in timeline
        .steps
        .iter()
        .enumerate()
        .take(step.saturating_add(1))
    {
        if &earlier.outcome.session != session {
            continue;
        }
        if earlier.outcome.conn.is_some() && earlier.outcome.conn != conn {
            // A new connection of the session: nothing of the old one is still waiting.
            follower = Follower::default();
            conn = earlier.outcome.conn;
        }
        let exchanges = &earlier.outcome.exchanges;
        let Some(protocol) = protocol_of(earlier.outcome.protocol, exchanges) else {
            continue;
        };
        for exchange in exchanges {
            let Some(asked) = follower.take(protocol, exchange) else {
                continue;
            };
            if index != step {
                continue;
            }
            if let Some(m) = explain_answer(asked, &exchange.line)
                && !out.contains(&m)
            {
                out.push(m);
            }
        }
    }
    out
}

/// Draws the narration: the focused step, or the scenario's description before the first.
pub fn narration_ui(
    ui: &mut Ui,
    timeline: &Timeline,
    step: Option<usize>,
    title: &str,
    description: &str,
    palette: &Palette,
) {
    let Some(record) = step.and_then(|s| timeline.steps.get(s).map(|r| (s, r))) else {
        ui.label(RichText::new(title).size(24.0).strong());
        ui.add_space(4.0);
        ui.label(RichText::new(description).size(17.0));
        ui.add_space(4.0);
        ui.label(
            RichText::new("Press Next (or Space) to run the first step.")
                .size(17.0)
                .color(palette.accent),
        );
        return;
    };
    let (index, record) = record;
    ui.horizontal_wrapped(|ui| {
        ui.label(
            RichText::new(format!("Step {}", index + 1))
                .size(24.0)
                .strong()
                .color(palette.accent),
        );
        if let Some(rfc) = &record.rfc {
            ui.label(RichText::new(format!("({rfc})")).size(18.0).italics());
        }
        ui.label(
            RichText::new(format!("session \"{}\"", record.outcome.session))
                .size(14.0)
                .color(palette.weak),
        );
    });
    ui.label(RichText::new(&record.caption).size(22.0));
    if let Err(why) = &record.outcome.check {
        ui.label(
            RichText::new(format!("Not as expected: {why}"))
                .size(17.0)
                .color(palette.negative),
        );
    }
    // What the capture itself shows wrong in this step's units: a reply without a status,
    // a multi-line reply with no "." line, a bare LF, bytes not captured.
    for (k, exchange) in record.outcome.exchanges.iter().enumerate() {
        let Some(unit) = timeline.unit(index, k) else {
            continue;
        };
        if unit.notes.is_empty() {
            continue;
        }
        let frames: Vec<String> = unit
            .frames()
            .iter()
            .map(|f| format!("#{}", f + 1))
            .collect();
        ui.label(
            RichText::new(format!(
                "In the capture ({} {}, frame {}): {}",
                exchange.direction().tag(),
                short_line(&exchange.line),
                frames.join(", "),
                unit.notes.join("; ")
            ))
            .size(17.0)
            .color(palette.negative),
        );
    }
    let meanings = step_meanings(timeline, index);
    if !meanings.is_empty() {
        ui.add_space(4.0);
        for m in meanings {
            ui.horizontal_wrapped(|ui| {
                ui.label(
                    RichText::new(m.code)
                        .size(17.0)
                        .monospace()
                        .strong()
                        .color(palette.reply_color(m.code)),
                );
                if let Some(answers) = m.answers {
                    ui.label(
                        RichText::new(format!("to {answers}:"))
                            .size(17.0)
                            .color(palette.weak),
                    );
                }
                ui.label(RichText::new(m.meaning).size(17.0));
            });
        }
    }
}

/// A line cut to a length that fits a sentence.
fn short_line(line: &str) -> String {
    const MAX: usize = 40;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        format!("{}...", line.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop3_codes() {
        assert_eq!(explain_reply("+OK 2 320").map(|m| m.code), Some("+OK"));
        assert_eq!(
            explain_reply("-ERR [IN-USE] maildrop already locked").map(|m| m.code),
            Some("-ERR [IN-USE]")
        );
        assert_eq!(
            explain_reply("-ERR [AUTH] invalid user name or password").map(|m| m.code),
            Some("-ERR [AUTH]")
        );
        assert_eq!(
            explain_reply("-ERR no such message").map(|m| m.code),
            Some("-ERR")
        );
        assert_eq!(
            explain_reply("-ERR [SYS/TEMP] server shutting down").map(|m| m.code),
            Some("-ERR [SYS/TEMP]")
        );
    }

    fn exchange(kind: ExchangeKind, line: &str) -> Exchange {
        Exchange {
            kind,
            line: line.to_string(),
            more: Vec::new(),
            octets: line.len() + 2,
            stream: None,
        }
    }

    /// Follows a conversation (`C:` command, `S:` reply, `D:` content) and explains every
    /// reply as the narration would.
    fn follow(protocol: Protocol, lines: &[&str]) -> Vec<ReplyMeaning> {
        let mut follower = Follower::default();
        let mut out = Vec::new();
        for l in lines {
            let (kind, text) = match l.split_at_checked(3) {
                Some(("C: ", t)) => (ExchangeKind::Command, t),
                Some(("D: ", t)) => (ExchangeKind::Content, t),
                Some((_, t)) => (ExchangeKind::Reply, t),
                None => (ExchangeKind::Reply, *l),
            };
            let e = exchange(kind, text);
            if let Some(asked) = follower.take(protocol, &e) {
                out.extend(explain_answer(asked, &e.line));
            }
        }
        out
    }

    /// RFC 1939 section 5: `LIST n` is answered on one line, `LIST` with a dot-ended listing;
    /// likewise `UIDL n` and `UIDL` (section 7); CAPA is multi-line (RFC 2449 section 5).
    #[test]
    fn single_and_multi_line_answers_are_told_apart() {
        let m = follow(
            Protocol::Pop3,
            &[
                "S: +OK ready",
                "C: USER a",
                "S: +OK",
                "C: PASS b",
                "S: +OK",
                "C: LIST 1",
                "S: +OK 1 120",
                "C: LIST",
                "S: +OK 2 messages",
                "C: UIDL 2",
                "S: +OK 2 xyz",
                "C: UIDL",
                "S: +OK",
                "C: CAPA",
                "S: +OK",
            ],
        );
        let by = |answers: &str| {
            m.iter()
                .find(|r| r.answers == Some(answers))
                .map(|r| r.meaning)
                .unwrap_or_default()
        };
        assert!(
            by("LIST n").starts_with("A single line"),
            "{}",
            by("LIST n")
        );
        assert!(by("UIDL n").starts_with("A single line"));
        assert!(by("LIST").starts_with("A multi-line answer"));
        assert!(by("UIDL").starts_with("A multi-line answer"));
        assert!(by("CAPA").starts_with("A multi-line answer"));
        // UIDL marks nothing as new: the client compares ids (RFC 1939 section 7).
        assert!(by("UIDL").contains("compares the ids"));
        assert!(by("the connection").contains("identify itself"));
        assert!(by("PASS/APOP").contains("TRANSACTION"));
    }

    /// The generic "multi-line" wording never explains a +OK: QUIT's is a single line.
    #[test]
    fn no_reply_is_called_multi_line_by_default() {
        assert!(!POP3_OK.meaning.starts_with("A multi-line"));
        let m = follow(Protocol::Pop3, &["S: +OK", "C: QUIT", "S: +OK bye"]);
        let quit = m.last().copied().unwrap_or(POP3_OK);
        assert_eq!(quit.answers, Some("QUIT in AUTHORIZATION"));
        assert!(quit.meaning.contains("without entering UPDATE"));
        assert!(quit.meaning.contains("RFC 1939 section 6"));
    }

    /// RFC 1939 section 6: QUIT in TRANSACTION enters UPDATE; -ERR there means some marked
    /// messages were not removed, and the session ends anyway.
    #[test]
    fn quit_in_transaction_is_update() {
        let ok = follow(
            Protocol::Pop3,
            &[
                "S: +OK",
                "C: USER a",
                "S: +OK",
                "C: PASS b",
                "S: +OK",
                "C: QUIT",
                "S: +OK bye",
            ],
        );
        let quit = ok.last().copied().unwrap_or(POP3_OK);
        assert_eq!(quit.answers, Some("QUIT in TRANSACTION"));
        assert!(quit.meaning.contains("UPDATE state"));
        let err = follow(
            Protocol::Pop3,
            &[
                "S: +OK",
                "C: USER a",
                "S: +OK",
                "C: PASS b",
                "S: +OK",
                "C: QUIT",
                "S: -ERR [SYS/PERM] some deleted messages not removed",
            ],
        );
        let quit = err.last().copied().unwrap_or(POP3_ERR_PLAIN);
        assert_eq!(quit.code, "-ERR");
        assert!(quit.meaning.contains("session ends all the same"));
        assert!(!quit.meaning.contains("goes on"));
        assert!(!POP3_ERR_PLAIN.meaning.contains("goes on"));
    }

    /// A failed PASS never left AUTHORIZATION (RFC 1939 section 7); [AUTH] is any
    /// credential problem (RFC 3206 section 5); a later PASS that works logs in.
    #[test]
    fn failed_login_stays_in_authorization() {
        let m = follow(
            Protocol::Pop3,
            &[
                "S: +OK",
                "C: USER a",
                "S: +OK",
                "C: PASS x",
                "S: -ERR [AUTH] invalid user name or password",
                "C: PASS y",
                "S: -ERR wrong",
                "C: QUIT",
                "S: +OK",
            ],
        );
        let auth = m.get(2).copied().unwrap_or(POP3_OK);
        assert_eq!(auth.code, "-ERR [AUTH]");
        assert!(auth.meaning.contains("RFC 3206 section 5"));
        assert!(auth.meaning.contains("unknown user name"));
        assert!(auth.meaning.contains("AUTHORIZATION"));
        assert!(!auth.meaning.contains("returns to"));
        let plain = m.get(3).copied().unwrap_or(POP3_OK);
        assert!(plain.meaning.contains("never left AUTHORIZATION"));
        assert_eq!(
            m.last().and_then(|q| q.answers),
            Some("QUIT in AUTHORIZATION")
        );
    }

    /// RFC 5321 section 4.1.1.4: 250 after the final dot means the server took
    /// responsibility for delivery; other 250s are explained by their command.
    #[test]
    fn smtp_250_by_command() {
        let m = follow(
            Protocol::Smtp,
            &[
                "S: 220 ready",
                "C: EHLO c",
                "S: 250-x",
                "C: MAIL FROM:<a@b>",
                "C: RCPT TO:<c@d>",
                "C: DATA",
                "S: 250 2.1.0 Ok",
                "S: 250 2.1.5 Ok",
                "S: 354 go on",
                "D: <message>",
                "S: 250 2.0.0 queued",
                "C: QUIT",
                "S: 221 bye",
            ],
        );
        let answers: Vec<Option<&str>> = m.iter().map(|r| r.answers).collect();
        assert_eq!(
            answers,
            vec![
                None,
                Some("EHLO"),
                Some("MAIL"),
                Some("RCPT"),
                None,
                Some("the message's final dot"),
                None
            ]
        );
        let done = m.get(5).copied().unwrap_or(POP3_OK);
        assert!(done.meaning.contains("taken responsibility for delivering"));
        assert!(done.meaning.contains("RFC 5321 section 4.1.1.4"));
        for r in &m {
            assert!(!r.meaning.contains("message delivered"), "{}", r.meaning);
        }
    }

    /// 551 names the address the user can be reached at (the forward-path, RFC 5321
    /// section 3.4); the server does not forward it itself.
    #[test]
    fn user_not_local_names_the_forward_path() {
        let m = explain_reply("551 User not local; please try <u@elsewhere>");
        let text = m.map(|m| m.meaning).unwrap_or_default();
        assert!(text.contains("forward-path"), "{text}");
        assert!(text.contains("RFC 5321 section 3.4"), "{text}");
        let m = explain_reply("251 User not local; will forward to <u@elsewhere>");
        assert!(m.is_some_and(|m| m.meaning.contains("forward-path")));
    }

    /// Every explanation names the RFC it follows.
    #[test]
    fn every_explanation_cites_an_rfc() {
        let tables = POP3_ERR
            .iter()
            .chain(SMTP_ENHANCED)
            .chain(SMTP_CODES)
            .map(|(_, m)| *m);
        let mut all: Vec<ReplyMeaning> = tables.collect();
        all.extend([POP3_OK, POP3_ERR_PLAIN]);
        for p in [
            Pop3Asked::User,
            Pop3Asked::Login,
            Pop3Asked::Stat,
            Pop3Asked::ListAll,
            Pop3Asked::ListOne,
            Pop3Asked::UidlAll,
            Pop3Asked::UidlOne,
            Pop3Asked::Retr,
            Pop3Asked::Top,
            Pop3Asked::Dele,
            Pop3Asked::Noop,
            Pop3Asked::Rset,
            Pop3Asked::Capa,
            Pop3Asked::QuitInAuthorization,
            Pop3Asked::QuitInTransaction,
        ] {
            all.extend(pop3_positive(p));
            all.extend(pop3_negative(p, "-ERR no"));
        }
        for s in [
            SmtpAsked::Helo,
            SmtpAsked::Ehlo,
            SmtpAsked::Mail,
            SmtpAsked::Rcpt,
            SmtpAsked::Rset,
            SmtpAsked::Noop,
            SmtpAsked::Vrfy,
        ] {
            all.extend(smtp_250(s));
        }
        all.extend(SMTP_CLASSES.iter().map(|(_, m)| *m));
        for m in all {
            assert!(m.meaning.contains("RFC "), "{}: {}", m.code, m.meaning);
        }
    }

    #[test]
    fn smtp_codes() {
        for (line, code) in [
            ("220 dewey ESMTP", "220"),
            ("221 2.0.0 Bye", "221"),
            ("250 2.1.0 Ok", "250"),
            ("354 End data with <CR><LF>.<CR><LF>", "354"),
            ("451 4.3.0 cannot store", "451"),
            ("500 5.5.2 Syntax error", "500"),
            ("501 5.5.4 bad address", "501"),
            ("502 5.5.1 Command not implemented", "502"),
            ("503 5.5.1 Send HELO/EHLO first", "503 5.5.1"),
            ("550 5.1.1 <x@y>: no such user here", "550 5.1.1"),
            ("550 5.7.1 Relaying denied", "550 5.7.1"),
            ("550 mailbox unavailable", "550"),
            ("552 5.3.4 Message too big", "552 5.3.4"),
            ("552 too big", "552"),
            // Not in the table: the first digit still says what kind of answer it is.
            ("521 5.3.2 mail.example closing transmission channel", "5xx"),
            ("432 4.7.12 A password transition is needed", "4xx"),
            ("334 VXNlcm5hbWU6", "334"),
            ("353 unusual", "3xx"),
            ("235 2.7.0 Authentication successful", "235"),
            ("299 odd", "2xx"),
        ] {
            assert_eq!(explain_reply(line).map(|m| m.code), Some(code), "{line}");
        }
        assert_eq!(explain_reply("hello"), None);
        assert_eq!(explain_reply("99"), None);
        assert_eq!(explain_reply("999 nine"), None);
        assert_eq!(explain_reply("123 one"), None);
        assert_eq!(explain_reply("ü"), None);
    }
}
