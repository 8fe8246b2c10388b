//! The SMTP checks (RFC 5321, RFC 2920) and the pure functions that judge their bytes, and
//! the round trip (SMTP in, POP3 out) when both servers are given.
//!
//! The mail the checker sends is addressed to `--rcpt` (default `USER@localhost`) and
//! carries a subject with the run's token, so the POP3 checks find it, compare it and
//! delete it at the end.

use std::time::Duration;

use super::pop3::{self, DOT_LINE, fail, fail_at, trim_end, unstuff_crlf};
use super::runner::{Ctx, SentMail};
use super::wire::{ConnId, Lines, Probe, StepError, Stop, failed, needs, no_greeting};
use super::{CheckInfo, Level, Verdict, visible};
use crate::proto::Protocol;

const SMTP: &[Protocol] = &[Protocol::Smtp];
const BOTH: &[Protocol] = &[Protocol::Smtp, Protocol::Pop3];

/// The sender the checker gives in `MAIL FROM`.
pub const SENDER: &str = "mailwire-check@localhost";

/// An SMTP reply's code when every line is well formed: three digits (2-5, 0-5, 0-9),
/// then a space, a "-" (more lines follow) or the line end; every line the same code; the
/// last line without "-". Otherwise what is wrong.
pub fn parse_reply(lines: &[Vec<u8>]) -> Result<u16, String> {
    let mut code = None;
    let count = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let text = trim_end(line);
        let digits = text.get(..3).filter(|d| {
            matches!(d, [a, b, c] if (b'2'..=b'5').contains(a) && (b'0'..=b'5').contains(b) && c.is_ascii_digit())
        });
        let Some(digits) = digits else {
            return Err(format!(
                "\"{}\" does not begin with a 3-digit reply code",
                visible(text, 120)
            ));
        };
        let value = digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        if code.is_some_and(|c| c != value) {
            return Err(format!(
                "the lines of one reply carry different codes (\"{}\")",
                visible(text, 120)
            ));
        }
        code = Some(value);
        let last = i + 1 == count;
        match text.get(3) {
            None if last => {}
            Some(b' ') if last => {}
            Some(b'-') if !last => {}
            Some(b'-') => {
                return Err(format!(
                    "the last line \"{}\" has \"-\" after its code, as if more followed",
                    visible(text, 120)
                ));
            }
            _ => {
                return Err(format!(
                    "\"{}\": after the code comes neither a space nor \"-\"",
                    visible(text, 120)
                ));
            }
        }
    }
    code.ok_or_else(|| "an empty reply".to_string())
}

/// The code a reply's last line begins with, however badly formed the rest is.
pub fn code_of(lines: &[Vec<u8>]) -> Option<u16> {
    let last = lines.last()?;
    let digits = last.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0')),
    )
}

/// The EHLO keywords of a 250 reply (upper case, first word of each line after the first).
pub fn ehlo_keywords(lines: &[Vec<u8>]) -> Vec<String> {
    lines
        .iter()
        .skip(1)
        .filter_map(|l| {
            let text = String::from_utf8_lossy(trim_end(l).get(4..).unwrap_or_default())
                .to_ascii_uppercase();
            text.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

fn shown(lines: &[Vec<u8>]) -> String {
    visible(&lines.concat(), 300)
}

/// Sends `cmd` and reads one reply, as the step the check judges.
fn ask(p: &mut Probe, c: ConnId, cmd: &[u8], expected: &str) -> Result<Vec<Vec<u8>>, Stop> {
    p.expect(expected);
    let level = p.level;
    p.send(c, cmd).map_err(failed(level))?;
    p.smtp_reply(c).map_err(failed(level))
}

/// [`ask`], and the reply's code must be one of `want`.
fn ask_code(
    p: &mut Probe,
    c: ConnId,
    cmd: &[u8],
    want: &[u16],
    expected: &str,
) -> Result<u16, Stop> {
    let lines = ask(p, c, cmd, expected)?;
    match code_of(&lines) {
        Some(code) if want.contains(&code) => Ok(code),
        _ => Err(fail(p, format!("got \"{}\"", shown(&lines)))),
    }
}

/// Sends `cmd` on the way: a reply of another class than `class` (2 for 2xx) skips.
fn need(p: &mut Probe, c: ConnId, cmd: &[u8], class: u16, see: &str) -> Result<Vec<Vec<u8>>, Stop> {
    let what = visible(trim_end(cmd), 60);
    p.send(c, cmd).map_err(needs(&what, see))?;
    let lines = p.smtp_reply(c).map_err(needs(&what, see))?;
    if code_of(&lines).map(|c| c / 100) != Some(class) {
        return Err(Verdict::Skip(format!(
            "{what} was answered \"{}\", not {class}xx; see {see}.",
            visible(&lines.concat(), 120)
        )));
    }
    Ok(lines)
}

/// A fresh connection and its 220 greeting.
fn open(ctx: &Ctx, p: &mut Probe) -> Result<ConnId, Stop> {
    let addr = ctx.smtp_addr();
    let c = p
        .connect(&addr)
        .map_err(needs("connecting", "smtp.greeting"))?;
    let lines = p
        .smtp_reply(c)
        .map_err(needs("the greeting", "smtp.greeting"))?;
    if code_of(&lines) != Some(220) {
        return Err(Verdict::Skip(format!(
            "the greeting was \"{}\", not 220; see smtp.greeting.",
            visible(&lines.concat(), 120)
        )));
    }
    Ok(c)
}

/// A fresh connection, greeted with EHLO (HELO when EHLO is refused).
fn session(ctx: &Ctx, p: &mut Probe) -> Result<ConnId, Stop> {
    let c = open(ctx, p)?;
    p.send(c, b"EHLO mailwire.check\r\n")
        .map_err(needs("EHLO", "smtp.ehlo"))?;
    let lines = p.smtp_reply(c).map_err(needs("EHLO", "smtp.ehlo"))?;
    if code_of(&lines) != Some(250) {
        need(p, c, b"HELO mailwire.check\r\n", 2, "smtp.helo")?;
    }
    Ok(c)
}

fn mail_from() -> Vec<u8> {
    format!("MAIL FROM:<{SENDER}>\r\n").into_bytes()
}

fn rcpt_to(ctx: &Ctx) -> Vec<u8> {
    format!("RCPT TO:<{}>\r\n", ctx.settings.rcpt).into_bytes()
}

/// MAIL and RCPT on the way.
fn envelope(ctx: &Ctx, p: &mut Probe, c: ConnId) -> Result<(), Stop> {
    need(p, c, &mail_from(), 2, "smtp.data-354")?;
    need(
        p,
        c,
        &rcpt_to(ctx),
        2,
        "smtp.data-354 (is --rcpt a local mailbox of this server?)",
    )?;
    Ok(())
}

/// A message of the checker's (as the mailbox should hold it, CRLF line ends), with dot
/// lines, and its SMTP form (byte-stuffed, with the final CRLF.CRLF).
pub fn own_message(ctx: &Ctx, number: usize) -> (Vec<u8>, Vec<u8>) {
    let text = format!(
        "From: mailwire check <{SENDER}>\r\n\
         To: <{rcpt}>\r\n\
         Subject: {marker} {number}\r\n\
         Message-ID: <{token}.{number}@mailwire.check>\r\n\
         \r\n\
         This mail was sent by mailwire check to test the servers; it deletes it at the end.\r\n\
         {DOT_LINE}\r\n\
         ..two dots\r\n\
         \r\n\
         The end.\r\n",
        rcpt = ctx.settings.rcpt,
        marker = ctx.subject_marker(),
        token = ctx.token,
    );
    let mut wire = Vec::new();
    for line in text.split_inclusive("\r\n") {
        if line.starts_with('.') {
            wire.push(b'.');
        }
        wire.extend_from_slice(line.as_bytes());
    }
    wire.extend_from_slice(b".\r\n");
    (text.into_bytes(), wire)
}

type CheckFn = fn(&mut Ctx, &mut Probe) -> Result<Verdict, Stop>;

/// The SMTP checks, in the order they run (the greeting first).
pub fn checks() -> Vec<(CheckInfo, CheckFn)> {
    let c = |id, rfc, level, title| CheckInfo {
        id,
        protocols: SMTP,
        rfc,
        level,
        title,
    };
    use Level::{Must, Should};
    vec![
        (
            c(
                "smtp.greeting",
                "RFC 5321 section 4.2",
                Must,
                "the server greets with 220",
            ),
            greeting as CheckFn,
        ),
        (
            c(
                "smtp.reply-syntax",
                "RFC 5321 section 4.2",
                Must,
                "replies are 3-digit codes, multi-line with \"-\", one code per reply",
            ),
            reply_syntax,
        ),
        (
            c(
                "smtp.line-ends",
                "RFC 5321 section 2.3.8",
                Must,
                "every reply line ends with CRLF",
            ),
            line_ends,
        ),
        (
            c(
                "smtp.ehlo",
                "RFC 5321 section 4.1.1.1",
                Must,
                "EHLO gets 250",
            ),
            ehlo,
        ),
        (
            c(
                "smtp.helo",
                "RFC 5321 section 4.1.1.1",
                Must,
                "HELO gets 250",
            ),
            helo,
        ),
        (
            c(
                "smtp.command-case",
                "RFC 5321 section 2.4",
                Must,
                "command names in any case",
            ),
            command_case,
        ),
        (
            c(
                "smtp.unknown-command",
                "RFC 5321 section 4.2.4",
                Must,
                "an unknown command gets 500, not silence",
            ),
            unknown_command,
        ),
        (
            c(
                "smtp.rcpt-before-mail",
                "RFC 5321 section 4.1.4",
                Must,
                "RCPT before MAIL gets 503",
            ),
            rcpt_before_mail,
        ),
        (
            c(
                "smtp.data-before-rcpt",
                "RFC 5321 section 4.1.4",
                Must,
                "DATA before RCPT gets 503 (or 554)",
            ),
            data_before_rcpt,
        ),
        (
            c(
                "smtp.mail-syntax",
                "RFC 5321 section 4.1.1.2",
                Must,
                "MAIL with a broken path gets 501",
            ),
            mail_syntax,
        ),
        (
            c(
                "smtp.rcpt-syntax",
                "RFC 5321 section 4.1.1.3",
                Must,
                "RCPT without a path gets 501",
            ),
            rcpt_syntax,
        ),
        (
            c(
                "smtp.data-354",
                "RFC 5321 section 4.1.1.4",
                Must,
                "DATA gets 354 before the message is sent",
            ),
            data_354,
        ),
        (
            c(
                "smtp.data-end",
                "RFC 5321 section 4.1.1.4",
                Must,
                "CRLF.CRLF ends the message; 250 accepts it",
            ),
            data_end,
        ),
        (
            c(
                "smtp.no-smuggling",
                "RFC 5321 section 4.1.1.4",
                Must,
                "only CRLF.CRLF ends DATA, not \"\\n.\\n\" (SMTP smuggling)",
            ),
            no_smuggling,
        ),
        (
            c(
                "smtp.rset",
                "RFC 5321 section 4.1.1.5",
                Must,
                "RSET gets 250 and ends the transaction",
            ),
            rset,
        ),
        (
            c(
                "smtp.noop",
                "RFC 5321 section 4.1.1.9",
                Must,
                "NOOP gets 250",
            ),
            noop,
        ),
        (
            c(
                "smtp.split-command",
                "RFC 5321 section 2.3.8",
                Must,
                "a command split over two TCP segments",
            ),
            split_command,
        ),
        (
            c(
                "smtp.pipelining",
                "RFC 2920 section 3",
                Should,
                "commands sent together are all answered, in order",
            ),
            pipelining,
        ),
        (
            c(
                "smtp.line-512",
                "RFC 5321 section 4.5.3.1.4",
                Must,
                "a 512-octet command line is accepted",
            ),
            line_512,
        ),
        (
            c(
                "smtp.line-too-long",
                "RFC 5321 section 4.5.3.1.4",
                Should,
                "a 2000-octet command gets 500, and the session goes on",
            ),
            line_too_long,
        ),
        (
            c(
                "smtp.quit",
                "RFC 5321 section 4.1.1.10",
                Must,
                "QUIT: 221 and the connection closes",
            ),
            quit,
        ),
    ]
}

/// The round-trip checks (SMTP in, POP3 out); they run after the POP3 read-only checks.
pub fn round_trip_checks() -> Vec<(CheckInfo, CheckFn)> {
    vec![
        (
            CheckInfo {
                id: "roundtrip.smtp-pop3",
                protocols: BOTH,
                rfc: "RFC 5321 section 4.4, RFC 1939 section 3",
                level: Level::Must,
                title: "mail sent through SMTP reads back through POP3 byte for byte",
            },
            round_trip as CheckFn,
        ),
        (
            CheckInfo {
                id: "smtp.dot-unstuffing",
                protocols: BOTH,
                rfc: "RFC 5321 section 4.5.2",
                level: Level::Must,
                title: "the receiver removes the extra \".\" of lines sent beginning with \"..\"",
            },
            dot_unstuffing,
        ),
    ]
}

fn greeting(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    p.expect("a reply with code 220, sent by the server as soon as the connection opens");
    let addr = ctx.smtp_addr();
    let level = p.level;
    let c = p.connect(&addr).map_err(failed(level))?;
    let lines = p.smtp_reply(c).map_err(no_greeting(level))?;
    if code_of(&lines) != Some(220) {
        return Err(fail(p, format!("got \"{}\"", shown(&lines))));
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

/// The replies of a short session: greeting, EHLO (or HELO), NOOP, MAIL, RSET.
fn short_session(ctx: &Ctx, p: &mut Probe) -> Result<Vec<Vec<Vec<u8>>>, Stop> {
    let addr = ctx.smtp_addr();
    let c = p
        .connect(&addr)
        .map_err(needs("connecting", "smtp.greeting"))?;
    let mut replies = vec![
        p.smtp_reply(c)
            .map_err(needs("the greeting", "smtp.greeting"))?,
    ];
    let mail = mail_from();
    for cmd in [
        &b"EHLO mailwire.check\r\n"[..],
        b"NOOP\r\n",
        &mail,
        b"RSET\r\n",
    ] {
        let what = visible(trim_end(cmd), 40);
        p.send(c, cmd)
            .map_err(needs(&what, "the check of that command"))?;
        replies.push(
            p.smtp_reply(c)
                .map_err(needs(&what, "the check of that command"))?,
        );
    }
    p.quit_quietly(c);
    p.restart_evidence();
    p.sent = [&b"EHLO mailwire.check\r\nNOOP\r\n"[..], &mail, b"RSET\r\n"].concat();
    for r in &replies {
        p.got.extend(r.iter().flatten());
    }
    Ok(replies)
}

fn reply_syntax(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let replies = short_session(ctx, p)?;
    p.expect("each reply: lines of a 3-digit code then \"-\" and text, the last line the code then a space and text (greeting, EHLO, NOOP, MAIL, RSET)");
    for r in &replies {
        if let Err(why) = parse_reply(r) {
            return Err(fail(p, why));
        }
    }
    Ok(Verdict::Pass)
}

fn line_ends(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let replies = short_session(ctx, p)?;
    p.expect("every reply line ended by CR LF (greeting, EHLO, NOOP, MAIL, RSET)");
    if let Some(bad) = replies.iter().flatten().find(|l| !pop3::ends_crlf(l)) {
        return Err(fail(
            p,
            format!(
                "the line \"{}\" ends with a bare LF, without CR",
                visible(bad, 200)
            ),
        ));
    }
    Ok(Verdict::Pass)
}

fn ehlo(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    let lines = ask(
        p,
        c,
        b"EHLO mailwire.check\r\n",
        "a reply with code 250 (one line, or several: the extensions)",
    )?;
    if code_of(&lines) != Some(250) {
        return Err(fail(p, format!("got \"{}\"", shown(&lines))));
    }
    ctx.smtp_extensions = ehlo_keywords(&lines);
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn helo(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    ask_code(
        p,
        c,
        b"HELO mailwire.check\r\n",
        &[250],
        "a reply with code 250",
    )?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn command_case(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    let mail = format!("mail from:<{SENDER}>\r\n");
    for cmd in [
        &b"ehlo mailwire.check\r\n"[..],
        b"nOoP\r\n",
        mail.as_bytes(),
        b"rset\r\n",
    ] {
        ask_code(
            p,
            c,
            cmd,
            &[250],
            "a reply with code 250 (command names are case-insensitive)",
        )?;
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn unknown_command(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let lines = ask(
        p,
        c,
        b"XYZZY\r\n",
        "a reply with code 500 (command not recognized)",
    )?;
    p.quit_quietly(c);
    match code_of(&lines) {
        Some(500) => Ok(Verdict::Pass),
        Some(code) if code / 100 == 5 => Ok(Verdict::Warn(format!(
            "{code} is a refusal, but 500 says \"not recognized\""
        ))),
        _ => Err(fail(p, format!("got \"{}\"", shown(&lines)))),
    }
}

/// A wrong-order or bad-syntax command: `best` passes, other 5xx codes in `also` pass,
/// other 5xx warn, anything else fails.
fn refused(p: &mut Probe, lines: &[Vec<u8>], best: &[u16]) -> Result<Verdict, Stop> {
    match code_of(lines) {
        Some(code) if best.contains(&code) => Ok(Verdict::Pass),
        Some(code) if code / 100 == 5 => Ok(Verdict::Warn(format!(
            "{code} refuses it, but RFC 5321 gives {} for this",
            best.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        ))),
        _ => Err(fail(p, format!("got \"{}\"", shown(lines)))),
    }
}

fn rcpt_before_mail(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let lines = ask(
        p,
        c,
        &rcpt_to(ctx),
        "a reply with code 503 (bad sequence: no MAIL yet)",
    )?;
    p.quit_quietly(c);
    refused(p, &lines, &[503])
}

fn data_before_rcpt(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    need(p, c, &mail_from(), 2, "smtp.command-case")?;
    let lines = ask(
        p,
        c,
        b"DATA\r\n",
        "a reply with code 503 or 554 (no recipient yet), never 354",
    )?;
    p.drop_conn(c);
    refused(p, &lines, &[503, 554])
}

fn mail_syntax(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let lines = ask(
        p,
        c,
        b"MAIL FROM:<broken@path\r\n",
        "a reply with code 501 (syntax error in the path)",
    )?;
    p.quit_quietly(c);
    refused(p, &lines, &[501, 553, 555])
}

fn rcpt_syntax(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    need(p, c, &mail_from(), 2, "smtp.command-case")?;
    let lines = ask(
        p,
        c,
        b"RCPT TO:\r\n",
        "a reply with code 501 (syntax error: no path)",
    )?;
    p.quit_quietly(c);
    refused(p, &lines, &[501, 553, 555])
}

/// Sends a message's content after a 354 and reads the reply quietly; records the mail
/// when it was accepted.
fn finish_quietly(ctx: &mut Ctx, p: &mut Probe, c: ConnId, text: Vec<u8>, wire: &[u8]) {
    if p.send(c, wire).is_ok()
        && let Ok(lines) = p.smtp_reply(c)
        && code_of(&lines) == Some(250)
    {
        ctx.sent.push(SentMail { content: text });
    }
}

fn data_354(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    envelope(ctx, p, c)?;
    let lines = ask(
        p,
        c,
        b"DATA\r\n",
        "a reply with code 354 (send the message), before any of it is sent",
    )?;
    if code_of(&lines) != Some(354) {
        p.drop_conn(c);
        return Err(fail(p, format!("got \"{}\"", shown(&lines))));
    }
    let (got, sent) = (p.got.clone(), p.sent.clone());
    let (text, wire) = own_message(ctx, ctx.sent.len() + 1);
    finish_quietly(ctx, p, c, text, &wire);
    p.quit_quietly(c);
    (p.sent, p.got) = (sent, got);
    Ok(Verdict::Pass)
}

fn data_end(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    envelope(ctx, p, c)?;
    need(p, c, b"DATA\r\n", 3, "smtp.data-354")?;
    let (text, wire) = own_message(ctx, ctx.sent.len() + 1);
    let code = ask_code(
        p,
        c,
        &wire,
        &[250],
        "a reply with code 250 after the line holding only \".\" (CRLF.CRLF)",
    )?;
    if code == 250 {
        ctx.sent.push(SentMail { content: text });
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

/// How long the checker listens for a reply that must not come.
fn quiet_wait(p: &Probe) -> Duration {
    p.timeout().min(Duration::from_millis(1500))
}

fn no_smuggling(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    envelope(ctx, p, c)?;
    need(p, c, b"DATA\r\n", 3, "smtp.data-354")?;
    let head = format!(
        "From: <{SENDER}>\r\nTo: <{}>\r\nSubject: {} smuggling\r\n\r\nbefore\r\n",
        ctx.settings.rcpt,
        ctx.subject_marker()
    );
    let mut body = head.into_bytes();
    // Each of these would end the data in a server that accepts a bare LF around the dot;
    // what follows would then be read as commands.
    body.extend_from_slice(b"one\n.\nMAIL FROM:<smuggled@mailwire.check>\r\n");
    body.extend_from_slice(b"two\r\n.\nRCPT TO:<smuggled@mailwire.check>\r\n");
    body.extend_from_slice(b"three\n.\r\nNOOP smuggled\r\nafter");
    p.expect("no reply at all: \"\\n.\\n\", \"\\r\\n.\\n\" and \"\\n.\\r\\n\" do not end the data; only CRLF.CRLF does");
    let level = p.level;
    p.send(c, &body).map_err(failed(level))?;
    let early = p.listen(c, quiet_wait(p));
    match early {
        Ok(bytes) if bytes.is_empty() => {}
        Ok(_) => {
            p.drop_conn(c);
            return Err(fail(
                p,
                "the server answered before CRLF.CRLF: a dot line with a bare LF ended the data, and what followed was read as commands",
            ));
        }
        Err(e) => {
            return Err(fail(p, format!("the data was not ended, yet: {e}")));
        }
    }
    p.expect("one reply (250, or 5xx refusing bare LFs) once CRLF.CRLF ends the data");
    p.send(c, b"\r\n.\r\n").map_err(failed(level))?;
    let lines = p.smtp_reply(c).map_err(failed(level))?;
    let extra = p.listen(c, Duration::from_millis(300)).unwrap_or_default();
    p.quit_quietly(c);
    if !extra.is_empty() {
        return Err(fail(
            p,
            "more than one reply came after CRLF.CRLF: the smuggled lines were read as commands",
        ));
    }
    match code_of(&lines).map(|c| c / 100) {
        Some(2) => {
            ctx.sent.push(SentMail {
                content: Vec::new(),
            });
            Ok(Verdict::Pass)
        }
        Some(5 | 4) => Ok(Verdict::Pass),
        _ => Err(fail(p, format!("got \"{}\"", shown(&lines)))),
    }
}

fn rset(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    need(p, c, &mail_from(), 2, "smtp.command-case")?;
    ask_code(p, c, b"RSET\r\n", &[250], "a reply with code 250")?;
    let lines = ask(
        p,
        c,
        &rcpt_to(ctx),
        "503 to RCPT: RSET ended the transaction, so there is no MAIL",
    )?;
    p.quit_quietly(c);
    match code_of(&lines).map(|c| c / 100) {
        Some(5) => Ok(Verdict::Pass),
        _ => Err(fail(
            p,
            format!("got \"{}\": the transaction survived RSET", shown(&lines)),
        )),
    }
}

fn noop(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    ask_code(p, c, b"NOOP\r\n", &[250], "a reply with code 250")?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn split_command(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    p.expect("a reply with code 250: the server joins \"EH\" and \"LO mailwire.check\\r\\n\", which came in two segments");
    let level = p.level;
    p.send(c, b"EH").map_err(failed(level))?;
    std::thread::sleep(Duration::from_millis(300));
    p.send(c, b"LO mailwire.check\r\n").map_err(failed(level))?;
    let lines = p.smtp_reply(c).map_err(failed(level))?;
    if code_of(&lines) != Some(250) {
        return Err(fail(p, format!("got \"{}\"", shown(&lines))));
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn pipelining(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    if ctx.smtp_extensions.iter().any(|k| k == "PIPELINING") {
        p.level = Level::Must;
    }
    let c = session(ctx, p)?;
    let mut batch = mail_from();
    batch.extend_from_slice(&rcpt_to(ctx));
    batch.extend_from_slice(b"RSET\r\nNOOP\r\n");
    p.expect("four replies in order: 250 (MAIL), a reply to RCPT, 250 (RSET), 250 (NOOP)");
    let level = p.level;
    p.send(c, &batch).map_err(failed(level))?;
    for (i, want) in [Some(250), None, Some(250), Some(250)]
        .into_iter()
        .enumerate()
    {
        let lines = p
            .smtp_reply(c)
            .map_err(|e| fail_at(level, format!("reply {} of 4: {e}", i + 1)))?;
        let code = code_of(&lines);
        if code.is_none() || want.is_some_and(|w| Some(w) != code) {
            return Err(fail(
                p,
                format!("reply {} of 4 was \"{}\"", i + 1, shown(&lines)),
            ));
        }
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn line_512(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    let mut cmd = b"NOOP ".to_vec();
    cmd.extend(std::iter::repeat_n(b'x', 512 - 5 - 2));
    cmd.extend_from_slice(b"\r\n");
    ask_code(
        p,
        c,
        &cmd,
        &[250],
        "a reply with code 250 to NOOP with a parameter: the line is 512 octets with CRLF, the least a server must accept",
    )?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn line_too_long(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    let mut cmd = b"NOOP ".to_vec();
    cmd.extend(std::iter::repeat_n(b'x', 2000));
    cmd.extend_from_slice(b"\r\n");
    let lines = ask(p, c, &cmd, "a reply with code 500 (line too long), or 250")?;
    if !matches!(code_of(&lines).map(|c| c / 100), Some(5 | 2)) {
        return Err(fail(p, format!("got \"{}\"", shown(&lines))));
    }
    p.expect("250 to NOOP: the session goes on (or the server closed it after its reply)");
    let level = p.level;
    p.send(c, b"NOOP\r\n").map_err(failed(level))?;
    match p.smtp_reply(c) {
        Ok(lines) if code_of(&lines) == Some(250) => {}
        Err(StepError::Closed | StepError::Reset) => {}
        Ok(lines) => return Err(fail(p, format!("got \"{}\"", shown(&lines)))),
        Err(e) => return Err(failed(level)(e)),
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn quit(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    ask_code(
        p,
        c,
        b"QUIT\r\n",
        &[221],
        "a reply with code 221, then the server closes the connection",
    )?;
    let level = p.level;
    p.closes(c)
        .map_err(|e| fail_at(level, format!("after 221 the connection stayed open: {e}")))?;
    Ok(Verdict::Pass)
}

/// The checker's dotted mail as RETR sent it, found in the maildrop (a skip when it is
/// not there).
fn find_dotted(ctx: &mut Ctx, p: &mut Probe) -> Result<(Vec<u8>, Option<Lines>), Stop> {
    let Some(sent) = ctx
        .sent
        .iter()
        .find(|m| !m.content.is_empty())
        .map(|m| m.content.clone())
    else {
        return Err(Verdict::Skip(
            "no mail was accepted through SMTP; see smtp.data-354 and smtp.data-end".into(),
        ));
    };
    let subject = sent
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"Subject: "))
        .map(|l| trim_end(l).to_vec())
        .unwrap_or_default();
    let lines = super::pop3::retr_own(ctx, p, &subject)?;
    Ok((sent, lines))
}

/// Why the checker's mail is missing.
fn not_found(ctx: &Ctx) -> String {
    format!(
        "the mail sent through SMTP to {} is not among the last {} messages of {}'s maildrop",
        ctx.settings.rcpt,
        super::pop3::SEARCH_DEPTH,
        ctx.settings.user
    )
}

fn round_trip(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let (sent, lines) = find_dotted(ctx, p)?;
    p.expect("the mail sent through SMTP in the maildrop");
    let Some(lines) = lines else {
        return Err(fail(p, not_found(ctx)));
    };
    let read = unstuff_crlf(&lines);
    p.restart_evidence();
    p.sent = sent.clone();
    p.got = read.clone();
    p.expect("the message as sent, byte for byte (line ends aside: see pop3.line-ends), after any trace lines (Return-Path:, Received:) the server added at the top");
    if !read.ends_with(&sent) {
        let why = if read.len() < sent.len() {
            format!(
                "POP3 gave {} octets, fewer than the {} sent",
                read.len(),
                sent.len()
            )
        } else {
            let tail = read.get(read.len() - sent.len()..).unwrap_or_default();
            let at = tail
                .iter()
                .zip(&sent)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            format!(
                "the message differs from what was sent at its octet {at}: sent \"{}\", read \"{}\"",
                visible(sent.get(at..).unwrap_or_default(), 40),
                visible(tail.get(at..).unwrap_or_default(), 40)
            )
        };
        return Err(fail(p, why));
    }
    let added = read.get(..read.len() - sent.len()).unwrap_or_default();
    if !is_header_block(added) {
        return Err(fail(
            p,
            "the server added something before the message that is not header lines",
        ));
    }
    Ok(Verdict::Pass)
}

/// Whether bytes are whole header lines ("Name: value" or continuation lines, CRLF ends).
pub fn is_header_block(bytes: &[u8]) -> bool {
    bytes.split_inclusive(|&b| b == b'\n').all(|l| {
        let text = trim_end(l);
        l.ends_with(b"\r\n")
            && !text.is_empty()
            && (text.starts_with(b" ")
                || text.starts_with(b"\t")
                || text.iter().position(|&b| b == b':').is_some_and(|colon| {
                    colon > 0
                        && text
                            .get(..colon)
                            .is_some_and(|name| name.iter().all(|b| b.is_ascii_graphic()))
                }))
    })
}

fn dot_unstuffing(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let (_, lines) = find_dotted(ctx, p)?;
    let Some(lines) = lines else {
        return Err(Verdict::Skip(format!(
            "{}; see roundtrip.smtp-pop3",
            not_found(ctx)
        )));
    };
    let target = DOT_LINE.trim_start_matches('.');
    let Some(line) = lines
        .iter()
        .find(|l| trim_end(l).ends_with(target.as_bytes()))
    else {
        return Err(fail(
            p,
            "the line beginning with a dot is missing from the message read back",
        ));
    };
    p.restart_evidence();
    let (_, wire) = own_message(ctx, 1);
    p.sent = wire
        .split_inclusive(|&b| b == b'\n')
        .find(|l| trim_end(l).ends_with(target.as_bytes()))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    p.got = line.clone();
    p.expect(format!(
        "sent through SMTP as \"..{target}\", stored as \"{DOT_LINE}\" (so POP3 sends \"..{target}\")"
    ));
    let dots = line.iter().take_while(|&&b| b == b'.').count();
    if dots > 2 {
        return Err(fail(
            p,
            format!(
                "POP3 sends \"{}\": the server stored the line with SMTP's extra \".\" still on",
                visible(trim_end(line), 100)
            ),
        ));
    }
    Ok(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<Vec<u8>> {
        text.split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn reply_syntax() {
        assert_eq!(parse_reply(&lines(b"250-a\r\n250 b\r\n")), Ok(250));
        assert_eq!(parse_reply(&lines(b"221\r\n")), Ok(221));
        assert!(parse_reply(&lines(b"250-a\r\n251 b\r\n")).is_err());
        assert!(parse_reply(&lines(b"OK\r\n")).is_err());
        assert!(parse_reply(&lines(b"250-a\r\n")).is_err());
        assert!(parse_reply(&lines(b"250OK\r\n")).is_err());
        assert_eq!(code_of(&lines(b"354 go\r\n")), Some(354));
    }

    #[test]
    fn trace_lines_are_header_lines() {
        assert!(is_header_block(b""));
        assert!(is_header_block(
            b"Return-Path: <a@b>\r\nReceived: from x\r\n\tby y\r\n"
        ));
        assert!(!is_header_block(b"hello\r\n"));
        assert!(!is_header_block(b"X: y\n"));
    }

    #[test]
    fn ehlo_keywords_skip_the_first_line() {
        let l = lines(b"250-host\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
        assert_eq!(ehlo_keywords(&l), vec!["PIPELINING", "SIZE"]);
    }
}
