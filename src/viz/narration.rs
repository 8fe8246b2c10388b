//! The narration pane: the viewed step's caption and RFC reference in large type, whether
//! its expectation held, and a plain-language explanation of every reply code the step
//! met ([`explain_reply`]).

use eframe::egui::{RichText, Ui};

use super::theme::Palette;
use crate::proto::Direction;
use crate::timeline::Timeline;

/// A reply code and what it means, in words a class understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyMeaning {
    /// The code as shown: `+OK`, `-ERR [IN-USE]`, `550 5.1.1`...
    pub code: &'static str,
    pub meaning: &'static str,
}

const fn meaning(code: &'static str, meaning: &'static str) -> ReplyMeaning {
    ReplyMeaning { code, meaning }
}

/// POP3 response codes in brackets after -ERR (RFC 2449, RFC 3206), most specific first.
const POP3_ERR: &[(&str, ReplyMeaning)] = &[
    (
        "[IN-USE]",
        meaning(
            "-ERR [IN-USE]",
            "The maildrop is locked: another session of the same user is open. RFC 1939 lets only one session at a time change a maildrop; try again when the other one has quit.",
        ),
    ),
    (
        "[AUTH]",
        meaning(
            "-ERR [AUTH]",
            "The user name or password is wrong (RFC 3206). The server does not say which, so that nobody can probe for valid user names.",
        ),
    ),
    (
        "[SYS/TEMP]",
        meaning(
            "-ERR [SYS/TEMP]",
            "A temporary problem on the server (a disk, a shutdown): not the client's fault; trying later may work.",
        ),
    ),
    (
        "[SYS/PERM]",
        meaning(
            "-ERR [SYS/PERM]",
            "A lasting problem on the server: trying again will not help; ask its administrator.",
        ),
    ),
    (
        "[LOGIN-DELAY]",
        meaning(
            "-ERR [LOGIN-DELAY]",
            "The server wants the client to wait longer between logins.",
        ),
    ),
];

/// SMTP replies with an enhanced status code (RFC 3463) that changes the meaning.
const SMTP_ENHANCED: &[(&str, ReplyMeaning)] = &[
    (
        "550 5.1.1",
        meaning(
            "550 5.1.1",
            "No such mailbox: the server has no user of that name. The recipient is refused; the others (if any) still count.",
        ),
    ),
    (
        "550 5.7.1",
        meaning(
            "550 5.7.1",
            "Refused by policy: the address is not one this server delivers to, and it does not relay mail onward for strangers (an open relay would carry spam).",
        ),
    ),
    (
        "503 5.5.1",
        meaning(
            "503 5.5.1",
            "Bad sequence of commands: this command is not allowed yet (MAIL before HELO, RCPT before MAIL, DATA before any accepted recipient).",
        ),
    ),
    (
        "552 5.3.4",
        meaning(
            "552 5.3.4",
            "The message is larger than the server accepts; it is not delivered.",
        ),
    ),
];

/// SMTP reply codes by number (RFC 5321 section 4.2).
const SMTP_CODES: &[(&str, ReplyMeaning)] = &[
    ("211", meaning("211", "System status or help reply.")),
    ("214", meaning("214", "Help text for a human reader.")),
    (
        "220",
        meaning(
            "220",
            "Service ready: the server greets the client and names itself. The client may now say HELO or EHLO.",
        ),
    ),
    (
        "221",
        meaning(
            "221",
            "Service closing: the server says goodbye after QUIT and closes the connection.",
        ),
    ),
    ("235", meaning("235", "Authentication succeeded.")),
    (
        "250",
        meaning(
            "250",
            "Requested action okay, completed: the command worked (HELO accepted, sender or recipient accepted, message delivered).",
        ),
    ),
    (
        "251",
        meaning("251", "User not local; the server will forward the mail."),
    ),
    (
        "252",
        meaning(
            "252",
            "The server cannot verify the user but will accept the message and try.",
        ),
    ),
    (
        "334",
        meaning(
            "334",
            "A challenge during AUTH: the client answers with base64 text.",
        ),
    ),
    (
        "354",
        meaning(
            "354",
            "Start mail input: the server now takes the message itself, line by line, until a line holding only a dot (CRLF . CRLF).",
        ),
    ),
    (
        "421",
        meaning(
            "421",
            "Service not available: the server is closing the connection (shutting down, too busy, idle too long).",
        ),
    ),
    (
        "450",
        meaning(
            "450",
            "Mailbox unavailable for now (busy or locked): a temporary failure, try again later.",
        ),
    ),
    (
        "451",
        meaning(
            "451",
            "Local error in processing: the server could not finish (for instance, storing the message failed). Temporary: try again later.",
        ),
    ),
    (
        "452",
        meaning(
            "452",
            "Insufficient storage (or too many recipients): temporary, try again later.",
        ),
    ),
    (
        "500",
        meaning(
            "500",
            "Syntax error, command unrecognised: the server does not know this command or the line is too long.",
        ),
    ),
    (
        "501",
        meaning(
            "501",
            "Syntax error in parameters or arguments: the command is known but its argument is wrong (a malformed address, for instance).",
        ),
    ),
    (
        "502",
        meaning(
            "502",
            "Command not implemented: the server knows the command but does not offer it.",
        ),
    ),
    (
        "503",
        meaning(
            "503",
            "Bad sequence of commands: this command is not allowed at this point of the session.",
        ),
    ),
    ("504", meaning("504", "Command parameter not implemented.")),
    (
        "530",
        meaning("530", "Authentication required before this command."),
    ),
    (
        "535",
        meaning(
            "535",
            "Authentication failed: the credentials were not accepted.",
        ),
    ),
    (
        "550",
        meaning(
            "550",
            "Requested action not taken: mailbox unavailable (no such user, or refused by policy). A permanent failure.",
        ),
    ),
    (
        "551",
        meaning(
            "551",
            "User not local: the server will not forward to that address.",
        ),
    ),
    (
        "552",
        meaning(
            "552",
            "Exceeded storage allocation: the message is too big (or the mailbox is full). Permanent.",
        ),
    ),
    (
        "553",
        meaning("553", "Mailbox name not allowed: the address is malformed."),
    ),
    (
        "554",
        meaning(
            "554",
            "Transaction failed (or no SMTP service here): permanent.",
        ),
    ),
];

const POP3_OK: ReplyMeaning = meaning(
    "+OK",
    "Positive: the command worked. A multi-line answer (LIST, RETR, TOP, UIDL) follows the status line and ends with a line holding only a dot.",
);
const POP3_ERR_PLAIN: ReplyMeaning = meaning(
    "-ERR",
    "Negative: the command failed (unknown command, wrong state, no such message...). The text after -ERR says why; the session goes on.",
);

/// What a reply's status line means, when its code is known.
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
            "Positive completion: the command worked (the first digit 2 says so; this exact code is not in mailwire's table).",
        ),
    ),
    (
        "3",
        meaning(
            "3xx",
            "Positive intermediate: go on and send what the server asks for next.",
        ),
    ),
    (
        "4",
        meaning(
            "4xx",
            "Transient negative: the command failed this time; the same command may work later.",
        ),
    ),
    (
        "5",
        meaning(
            "5xx",
            "Permanent negative: the command failed and will fail again if repeated unchanged.",
        ),
    ),
];

/// The meanings of the replies of a step, each code once, in order of appearance.
pub fn step_meanings(timeline: &Timeline, step: usize) -> Vec<ReplyMeaning> {
    let mut out: Vec<ReplyMeaning> = Vec::new();
    let Some(record) = timeline.steps.get(step) else {
        return out;
    };
    for exchange in &record.outcome.exchanges {
        if exchange.direction() != Direction::ServerToClient {
            continue;
        }
        if let Some(m) = explain_reply(&exchange.line)
            && !out.iter().any(|o| o.code == m.code)
        {
            out.push(m);
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
                ui.label(RichText::new(m.meaning).size(17.0));
            });
        }
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
