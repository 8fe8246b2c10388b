//! The POP3 checks (RFC 1939, RFC 2449) and the pure functions that judge their bytes.
//!
//! Each check opens fresh connections, logs in with USER/PASS when it needs to, and judges
//! one thing. Checks that delete (DELE, RSET, QUIT, a dropped connection) work on mail the
//! checker sent itself through SMTP, or, with `--allow-delete`, on the last message.

use std::time::{Duration, Instant};

use super::runner::Ctx;
use super::wire::{ConnId, Lines, Probe, StepError, Stop, failed, needs, no_greeting};
use super::{CheckInfo, Level, Verdict, visible};
use crate::proto::Protocol;

const POP3: &[Protocol] = &[Protocol::Pop3];

/// A POP3 status indicator, as the first bytes of a reply line show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `+OK`, followed by a space or the line end.
    Ok,
    /// `-ERR`, followed by a space or the line end.
    Err,
    /// Anything else ("ERR", "+ok", "OK", a bare message).
    Other,
}

/// The status indicator a reply line begins with (case-sensitive: RFC 1939 section 3 gives
/// them in upper case).
pub fn status(line: &[u8]) -> Status {
    let ends_word = |rest: &[u8]| matches!(rest.first(), None | Some(b' ' | b'\r' | b'\n'));
    match (line.strip_prefix(b"+OK"), line.strip_prefix(b"-ERR")) {
        (Some(rest), _) if ends_word(rest) => Status::Ok,
        (_, Some(rest)) if ends_word(rest) => Status::Err,
        _ => Status::Other,
    }
}

/// Whether a line ends with CR LF.
pub fn ends_crlf(line: &[u8]) -> bool {
    line.ends_with(b"\r\n")
}

/// A line without its line end (CRLF or a bare LF).
pub fn trim_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Two decimal numbers separated by one space, perhaps followed by a space and more:
/// a STAT answer's "nn mm" or a scan listing's "msg size".
pub fn two_numbers(text: &[u8]) -> Option<(u64, u64)> {
    let text = trim_end(text);
    let mut words = text.splitn(3, |&b| b == b' ');
    let number = |w: Option<&[u8]>| -> Option<u64> {
        let w = w?;
        if w.is_empty() || !w.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(w).ok()?.parse().ok()
    };
    Some((number(words.next())?, number(words.next())?))
}

/// STAT's answer: `+OK nn mm`.
pub fn parse_stat(line: &[u8]) -> Option<(u64, u64)> {
    two_numbers(line.strip_prefix(b"+OK ")?)
}

/// The message of a multi-line body as the server holds it: the lines before the final
/// "." with one leading "." removed from each (byte-stuffing undone).
pub fn unstuff(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

/// [`unstuff`] with every line end written as CR LF (line ends are judged by
/// `pop3.line-ends`, not by the checks of content).
pub fn unstuff_crlf(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body_lines(lines) {
        let line = line.strip_prefix(b".").unwrap_or(line);
        out.extend_from_slice(trim_end(line));
        if line.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// The octets of a body's lines (before the final ".", byte-stuffing undone) counting
/// every line end as CR LF (two octets), as RFC 1939 counts sizes.
pub fn crlf_size(lines: &[Vec<u8>]) -> u64 {
    body_lines(lines)
        .map(|l| trim_end(l.strip_prefix(b".").unwrap_or(l)).len() as u64 + 2)
        .sum()
}

/// The same counting every line end as one octet (LF), a common mistake.
pub fn lf_size(lines: &[Vec<u8>]) -> u64 {
    body_lines(lines)
        .map(|l| trim_end(l.strip_prefix(b".").unwrap_or(l)).len() as u64 + 1)
        .sum()
}

fn body_lines(lines: &[Vec<u8>]) -> impl Iterator<Item = &Vec<u8>> {
    lines
        .iter()
        .take_while(|l| l.as_slice() != b".\r\n" && l.as_slice() != b".\n")
}

/// A failure at the probe's level (a warning for a `should`).
pub(super) fn fail(p: &Probe, why: impl Into<String>) -> Stop {
    fail_at(p.level, why)
}

/// A failure at a level (a warning for a `should`).
pub(super) fn fail_at(level: Level, why: impl Into<String>) -> Stop {
    match level {
        Level::Must => Verdict::Fail(why.into()),
        Level::Should => Verdict::Warn(why.into()),
    }
}

/// Sends `cmd` and reads one reply line, as the step the check judges.
fn ask(p: &mut Probe, c: ConnId, cmd: &[u8], expected: &str) -> Result<Vec<u8>, Stop> {
    p.expect(expected);
    let level = p.level;
    p.send(c, cmd).map_err(failed(level))?;
    p.line(c).map_err(failed(level))
}

/// [`ask`], and the line must begin with `want`.
fn ask_for(
    p: &mut Probe,
    c: ConnId,
    cmd: &[u8],
    want: Status,
    expected: &str,
) -> Result<Vec<u8>, Stop> {
    let line = ask(p, c, cmd, expected)?;
    if status(&line) != want {
        return Err(fail(
            p,
            format!("got \"{}\"", visible(trim_end(&line), 200)),
        ));
    }
    Ok(line)
}

/// Sends `cmd` on the way to what the check judges: anything but `+OK` skips the check.
fn need_ok(p: &mut Probe, c: ConnId, cmd: &[u8], see: &str) -> Result<Vec<u8>, Stop> {
    let what = visible(trim_end(cmd), 60);
    p.send(c, cmd).map_err(needs(&what, see))?;
    let line = p.line(c).map_err(needs(&what, see))?;
    if status(&line) != Status::Ok {
        return Err(Verdict::Skip(format!(
            "{what} was answered \"{}\", not +OK; see {see}.",
            visible(trim_end(&line), 120)
        )));
    }
    Ok(line)
}

/// A body on the way: its lines up to the ".", or a skip.
fn need_body(p: &mut Probe, c: ConnId, what: &str, see: &str) -> Result<Vec<Vec<u8>>, Stop> {
    p.dot_body(c).map_err(needs(what, see))
}

/// A fresh connection and its +OK greeting.
fn open(ctx: &Ctx, p: &mut Probe) -> Result<ConnId, Stop> {
    let addr = ctx.pop3_addr();
    let c = p
        .connect(&addr)
        .map_err(needs("connecting", "pop3.greeting"))?;
    let line = p.line(c).map_err(needs("the greeting", "pop3.greeting"))?;
    if status(&line) != Status::Ok {
        return Err(Verdict::Skip(format!(
            "the greeting was \"{}\", not +OK; see pop3.greeting.",
            visible(trim_end(&line), 120)
        )));
    }
    Ok(c)
}

/// USER and PASS on the way.
fn login(ctx: &Ctx, p: &mut Probe, c: ConnId) -> Result<(), Stop> {
    let user = format!("USER {}\r\n", ctx.settings.user);
    let pass = format!("PASS {}\r\n", ctx.settings.pass);
    need_ok(p, c, user.as_bytes(), "pop3.user-pass")?;
    need_ok(p, c, pass.as_bytes(), "pop3.user-pass")?;
    Ok(())
}

/// A fresh connection, logged in.
fn session(ctx: &Ctx, p: &mut Probe) -> Result<ConnId, Stop> {
    let c = open(ctx, p)?;
    login(ctx, p, c)?;
    Ok(c)
}

/// A fresh session, trying again (for up to the step limit) while the login is refused:
/// a server may need a moment to release the lock of a session that just ended.
fn session_retrying(ctx: &Ctx, p: &mut Probe) -> Result<ConnId, Stop> {
    let deadline = Instant::now() + p.timeout();
    loop {
        match session(ctx, p) {
            Ok(c) => return Ok(c),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(e),
        }
    }
}

/// The scan listing, on the way.
fn listing(p: &mut Probe, c: ConnId) -> Result<Vec<(u64, u64)>, Stop> {
    need_ok(p, c, b"LIST\r\n", "pop3.multiline-end")?;
    let lines = need_body(p, c, "LIST's listing", "pop3.multiline-end")?;
    Ok(body_lines(&lines).filter_map(|l| two_numbers(l)).collect())
}

/// RETR n, on the way: the body's lines with the final ".".
fn retr(p: &mut Probe, c: ConnId, n: u64) -> Result<Vec<Vec<u8>>, Stop> {
    need_ok(p, c, format!("RETR {n}\r\n").as_bytes(), "pop3.retr")?;
    need_body(p, c, &format!("RETR {n}'s message"), "pop3.retr")
}

/// How many messages from the end of the maildrop are searched for the checker's mail.
pub(super) const SEARCH_DEPTH: usize = 30;

/// The checker's own mails in the maildrop (newest first): number and body lines.
fn own_mails(ctx: &Ctx, p: &mut Probe, c: ConnId) -> Result<Vec<(u64, Lines)>, Stop> {
    if ctx.sent.is_empty() {
        return Ok(Vec::new());
    }
    let list = listing(p, c)?;
    let marker = ctx.subject_marker();
    let mut found = Vec::new();
    for &(n, _) in list.iter().rev().take(SEARCH_DEPTH) {
        let lines = retr(p, c, n)?;
        if contains(&unstuff(&lines), marker.as_bytes()) {
            found.push((n, lines));
            if found.len() == ctx.sent.len() {
                break;
            }
        }
    }
    Ok(found)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The lines RETR sends of the checker's mail with this subject line, from a session of
/// its own (a skip when it is not in the maildrop).
pub(super) fn retr_own(
    ctx: &Ctx,
    p: &mut Probe,
    subject: &[u8],
) -> Result<Option<Vec<Vec<u8>>>, Stop> {
    let c = session(ctx, p)?;
    let list = listing(p, c)?;
    for &(n, _) in list.iter().rev().take(SEARCH_DEPTH) {
        let lines = retr(p, c, n)?;
        if body_lines(&lines).any(|l| trim_end(l) == subject) {
            p.quit_quietly(c);
            return Ok(Some(lines));
        }
    }
    p.quit_quietly(c);
    Ok(None)
}

/// A message this check may delete: the checker's own mail, or (with --allow-delete) the
/// last message. Its number and content.
fn deletable(ctx: &Ctx, p: &mut Probe, c: ConnId) -> Result<(u64, Vec<u8>), Stop> {
    if let Some((n, lines)) = own_mails(ctx, p, c)?.into_iter().next() {
        return Ok((n, unstuff(&lines)));
    }
    if ctx.settings.allow_delete {
        let list = listing(p, c)?;
        let Some(&(n, _)) = list.last() else {
            return Err(Verdict::Skip(
                "the maildrop is empty: nothing to delete".into(),
            ));
        };
        let lines = retr(p, c, n)?;
        return Ok((n, unstuff(&lines)));
    }
    Err(Verdict::Skip(ctx.no_deletable_reason()))
}

/// Whether a message with this content is in the maildrop (searched from the end).
fn holds(p: &mut Probe, c: ConnId, content: &[u8]) -> Result<bool, Stop> {
    let list = listing(p, c)?;
    for &(n, _) in list.iter().rev().take(SEARCH_DEPTH) {
        if unstuff(&retr(p, c, n)?) == content {
            return Ok(true);
        }
    }
    Ok(false)
}

/// STAT's numbers, on the way.
fn stat(p: &mut Probe, c: ConnId) -> Result<(u64, u64), Stop> {
    let line = need_ok(p, c, b"STAT\r\n", "pop3.stat")?;
    parse_stat(&line).ok_or_else(|| {
        Verdict::Skip(format!(
            "STAT's answer \"{}\" is not \"+OK nn mm\"; see pop3.stat.",
            visible(trim_end(&line), 120)
        ))
    })
}

type CheckFn = fn(&mut Ctx, &mut Probe) -> Result<Verdict, Stop>;

/// The POP3 checks, in the order they run (the greeting first: the runner skips the rest
/// when it fails).
pub fn checks() -> Vec<(CheckInfo, CheckFn)> {
    let c = |id, rfc, level, title| CheckInfo {
        id,
        protocols: POP3,
        rfc,
        level,
        title,
    };
    use Level::{Must, Should};
    vec![
        (
            c(
                "pop3.greeting",
                "RFC 1939 section 4",
                Must,
                "the server greets with +OK",
            ),
            greeting as CheckFn,
        ),
        (
            c(
                "pop3.line-ends",
                "RFC 1939 section 3",
                Must,
                "every reply line ends with CRLF",
            ),
            line_ends,
        ),
        (
            c(
                "pop3.status-indicators",
                "RFC 1939 section 3",
                Must,
                "replies begin with \"+OK\" or \"-ERR\" (upper case)",
            ),
            status_indicators,
        ),
        (
            c(
                "pop3.user-pass",
                "RFC 1939 section 7",
                Must,
                "USER and PASS log in",
            ),
            user_pass,
        ),
        (
            c(
                "pop3.login-failure",
                "RFC 1939 section 7",
                Must,
                "a wrong password gets -ERR",
            ),
            login_failure,
        ),
        (
            c(
                "pop3.pass-before-user",
                "RFC 1939 section 7",
                Must,
                "PASS without USER gets -ERR",
            ),
            pass_before_user,
        ),
        (
            c(
                "pop3.command-case",
                "RFC 1939 section 3",
                Must,
                "command names in any case",
            ),
            command_case,
        ),
        (
            c(
                "pop3.unknown-command",
                "RFC 1939 section 3",
                Must,
                "an unknown command is answered -ERR, not dropped",
            ),
            unknown_command,
        ),
        (
            c(
                "pop3.wrong-state-authorization",
                "RFC 1939 section 5",
                Must,
                "STAT before logging in gets -ERR",
            ),
            wrong_state_authorization,
        ),
        (
            c(
                "pop3.wrong-state-transaction",
                "RFC 1939 section 7",
                Must,
                "USER after logging in gets -ERR",
            ),
            wrong_state_transaction,
        ),
        (
            c(
                "pop3.stat",
                "RFC 1939 section 5",
                Must,
                "STAT answers \"+OK nn mm\"",
            ),
            stat_check,
        ),
        (
            c(
                "pop3.multiline-end",
                "RFC 1939 section 3",
                Must,
                "LIST's scan listing ends with a line holding only \".\"",
            ),
            multiline_end,
        ),
        (
            c(
                "pop3.stat-list-agree",
                "RFC 1939 section 5",
                Must,
                "STAT's count and size agree with LIST",
            ),
            stat_list_agree,
        ),
        (
            c(
                "pop3.list-one",
                "RFC 1939 section 5",
                Must,
                "LIST n answers \"+OK n size\" as in the listing",
            ),
            list_one,
        ),
        (
            c(
                "pop3.no-such-message",
                "RFC 1939 section 5",
                Must,
                "LIST and RETR of a message that does not exist get -ERR",
            ),
            no_such_message,
        ),
        (
            c(
                "pop3.retr",
                "RFC 1939 section 5",
                Must,
                "RETR sends +OK, the message and a line holding only \".\"",
            ),
            retr_check,
        ),
        (
            c(
                "pop3.sizes-crlf",
                "RFC 1939 section 11",
                Must,
                "sizes count CRLF line ends (two octets), before byte-stuffing",
            ),
            sizes_crlf,
        ),
        (
            c(
                "pop3.byte-stuffing",
                "RFC 1939 section 3",
                Must,
                "lines beginning with \".\" are sent with one more \".\"",
            ),
            byte_stuffing,
        ),
        (
            c("pop3.noop", "RFC 1939 section 5", Must, "NOOP gets +OK"),
            noop,
        ),
        (
            c(
                "pop3.capa",
                "RFC 2449 section 5",
                Should,
                "CAPA answers a capability list ended by \".\" (or -ERR)",
            ),
            capa,
        ),
        (
            c(
                "pop3.split-command",
                "RFC 1939 section 3",
                Must,
                "a command split over two TCP segments",
            ),
            split_command,
        ),
        (
            c(
                "pop3.pipelining",
                "RFC 2449 section 6.6",
                Should,
                "commands sent together are all answered, in order",
            ),
            pipelining,
        ),
        (
            c(
                "pop3.long-line",
                "RFC 2449 section 4",
                Should,
                "a 1000-octet command is answered -ERR, and the session goes on",
            ),
            long_line,
        ),
        (
            c(
                "pop3.lock",
                "RFC 1939 section 4",
                Should,
                "a second session on a locked maildrop is refused",
            ),
            lock,
        ),
        (
            c(
                "pop3.dele",
                "RFC 1939 section 5",
                Must,
                "DELE marks: the message is gone from RETR and STAT",
            ),
            dele,
        ),
        (
            c("pop3.rset", "RFC 1939 section 5", Must, "RSET undoes DELE"),
            rset,
        ),
        (
            c(
                "pop3.drop-deletes-nothing",
                "RFC 1939 section 6",
                Must,
                "a connection dropped without QUIT deletes nothing",
            ),
            drop_deletes_nothing,
        ),
        (
            c(
                "pop3.quit-authorization",
                "RFC 1939 section 6",
                Must,
                "QUIT before logging in: +OK and the connection closes",
            ),
            quit_authorization,
        ),
        (
            c(
                "pop3.quit",
                "RFC 1939 section 6",
                Must,
                "QUIT: +OK and the connection closes",
            ),
            quit,
        ),
        (
            c(
                "pop3.quit-deletes",
                "RFC 1939 section 6",
                Must,
                "messages marked by DELE are removed at QUIT",
            ),
            quit_deletes,
        ),
    ]
}

fn greeting(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    p.expect("a line beginning +OK, sent by the server as soon as the connection opens");
    let addr = ctx.pop3_addr();
    let level = p.level;
    let c = p.connect(&addr).map_err(failed(level))?;
    let line = p.line(c).map_err(no_greeting(level))?;
    if status(&line) != Status::Ok {
        return Err(fail(
            p,
            format!("got \"{}\"", visible(trim_end(&line), 200)),
        ));
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn line_ends(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let addr = ctx.pop3_addr();
    let c = p
        .connect(&addr)
        .map_err(needs("connecting", "pop3.greeting"))?;
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let greeting = p.line(c).map_err(needs("the greeting", "pop3.greeting"))?;
    seen.push(greeting);
    let user = format!("USER {}\r\n", ctx.settings.user);
    let pass = format!("PASS {}\r\n", ctx.settings.pass);
    for cmd in [user.as_bytes(), pass.as_bytes(), b"STAT\r\n", b"NOOP\r\n"] {
        let what = visible(trim_end(cmd), 40);
        p.send(c, cmd)
            .map_err(needs(&what, "the check of that command"))?;
        seen.push(
            p.line(c)
                .map_err(needs(&what, "the check of that command"))?,
        );
    }
    if seen.iter().any(|l| status(l) == Status::Ok)
        && status(seen.last().map_or(&[][..], |l| l)) == Status::Ok
    {
        p.send(c, b"LIST\r\n")
            .map_err(needs("LIST", "pop3.multiline-end"))?;
        let first = p.line(c).map_err(needs("LIST", "pop3.multiline-end"))?;
        let ok = status(&first) == Status::Ok;
        seen.push(first);
        if ok {
            seen.extend(need_body(p, c, "LIST's listing", "pop3.multiline-end")?);
        }
    }
    p.quit_quietly(c);
    let sent = session_sent(&user, &pass, &[b"STAT\r\n", b"NOOP\r\n", b"LIST\r\n"]);
    p.restart_evidence();
    p.sent = sent;
    p.expect("every line of every reply ended by CR LF (greeting, USER, PASS, STAT, NOOP, LIST)");
    for line in &seen {
        p.got.extend_from_slice(line);
    }
    if let Some(bad) = seen.iter().find(|l| !ends_crlf(l)) {
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

/// The bytes a short session sent: USER, PASS, then `more`.
fn session_sent(user: &str, pass: &str, more: &[&[u8]]) -> Vec<u8> {
    let mut sent = [user.as_bytes(), pass.as_bytes()].concat();
    for m in more {
        sent.extend_from_slice(m);
    }
    sent
}

fn status_indicators(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let addr = ctx.pop3_addr();
    let c = p
        .connect(&addr)
        .map_err(needs("connecting", "pop3.greeting"))?;
    let mut seen = vec![p.line(c).map_err(needs("the greeting", "pop3.greeting"))?];
    // The round of each reply, so a failure points at the one without a status.
    let mut rounds = vec![p.last_round()];
    let user = format!("USER {}\r\n", ctx.settings.user);
    let bad = format!("PASS {}\r\n", ctx.wrong_password());
    let pass = format!("PASS {}\r\n", ctx.settings.pass);
    for cmd in [
        user.as_bytes(),
        bad.as_bytes(),
        user.as_bytes(),
        pass.as_bytes(),
        b"NOOP\r\n",
    ] {
        let what = visible(trim_end(cmd), 40);
        p.send(c, cmd)
            .map_err(needs(&what, "the check of that command"))?;
        seen.push(
            p.line(c)
                .map_err(needs(&what, "the check of that command"))?,
        );
        rounds.push(p.last_round());
    }
    p.quit_quietly(c);
    let sent = [
        user.as_bytes(),
        bad.as_bytes(),
        user.as_bytes(),
        pass.as_bytes(),
        b"NOOP\r\n",
    ]
    .concat();
    p.restart_evidence();
    p.sent = sent;
    p.expect(
        "each reply's first line beginning \"+OK\" or \"-ERR\" in upper case, then a space or CRLF",
    );
    for line in &seen {
        p.got.extend_from_slice(line);
    }
    if let Some(at) = seen.iter().position(|l| status(l) == Status::Other) {
        let bad = seen.get(at).map(Vec::as_slice).unwrap_or_default();
        if let Some(&round) = rounds.get(at) {
            p.judge_round(round);
        }
        return Err(fail(
            p,
            format!(
                "the reply \"{}\" has no status indicator",
                visible(trim_end(bad), 200)
            ),
        ));
    }
    Ok(Verdict::Pass)
}

fn user_pass(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    let user = format!("USER {}\r\n", ctx.settings.user);
    let pass = format!("PASS {}\r\n", ctx.settings.pass);
    ask_for(p, c, user.as_bytes(), Status::Ok, "a line beginning +OK")?;
    ask_for(
        p,
        c,
        pass.as_bytes(),
        Status::Ok,
        "a line beginning +OK (the maildrop is open)",
    )?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn login_failure(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    let user = format!("USER {}\r\n", ctx.settings.user);
    let pass = format!("PASS {}\r\n", ctx.wrong_password());
    let line = p_send_line(p, c, user.as_bytes(), "pop3.user-pass")?;
    if status(&line) == Status::Err {
        // RFC 1939 allows refusing at USER already.
        p.quit_quietly(c);
        return Ok(Verdict::Pass);
    }
    ask_for(
        p,
        c,
        pass.as_bytes(),
        Status::Err,
        "a line beginning -ERR (a wrong password)",
    )?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

/// Sends a command on the way and returns its line, whatever it says.
fn p_send_line(p: &mut Probe, c: ConnId, cmd: &[u8], see: &str) -> Result<Vec<u8>, Stop> {
    let what = visible(trim_end(cmd), 60);
    p.send(c, cmd).map_err(needs(&what, see))?;
    p.line(c).map_err(needs(&what, see))
}

fn pass_before_user(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    let pass = format!("PASS {}\r\n", ctx.settings.pass);
    ask_for(
        p,
        c,
        pass.as_bytes(),
        Status::Err,
        "a line beginning -ERR (no USER came first)",
    )?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn command_case(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    let user = format!("user {}\r\n", ctx.settings.user);
    let pass = format!("Pass {}\r\n", ctx.settings.pass);
    for cmd in [user.as_bytes(), pass.as_bytes(), b"stat\r\n", b"nOoP\r\n"] {
        ask_for(
            p,
            c,
            cmd,
            Status::Ok,
            "a line beginning +OK (command names are case-insensitive)",
        )?;
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn unknown_command(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    ask_for(p, c, b"XYZZY\r\n", Status::Err, "a line beginning -ERR")?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn wrong_state_authorization(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    ask_for(
        p,
        c,
        b"STAT\r\n",
        Status::Err,
        "a line beginning -ERR (not logged in yet)",
    )?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn wrong_state_transaction(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let user = format!("USER {}\r\n", ctx.settings.user);
    ask_for(
        p,
        c,
        user.as_bytes(),
        Status::Err,
        "a line beginning -ERR (USER is only valid before logging in)",
    )?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn stat_check(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let line = ask_for(
        p,
        c,
        b"STAT\r\n",
        Status::Ok,
        "\"+OK nn mm\": the number of messages and their size in octets",
    )?;
    if parse_stat(&line).is_none() {
        return Err(fail(
            p,
            "the answer is not \"+OK\", a space, a number, a space, a number",
        ));
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn multiline_end(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let level = p.level;
    let c = session(ctx, p)?;
    let expected = "+OK, then one line \"msg size\" per message, then a line holding only \".\"";
    ask_for(p, c, b"LIST\r\n", Status::Ok, expected)?;
    let lines = p.dot_body(c).map_err(|e| match e {
        StepError::Silent { waited } => fail_at(
            level,
            format!(
                "no line holding only \".\" came within {:.1} s: the reply never ended, so a client waits for ever",
                waited.as_secs_f64()
            ),
        ),
        other => failed(level)(other),
    })?;
    if let Some(bad) = body_lines(&lines).find(|l| two_numbers(l).is_none()) {
        return Err(fail(
            p,
            format!(
                "the line \"{}\" is not \"msg size\"",
                visible(trim_end(bad), 200)
            ),
        ));
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn stat_list_agree(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let (count, size) = stat(p, c)?;
    let list = listing(p, c)?;
    p.expect(format!(
        "LIST's {} lines sum to STAT's {count} messages and {size} octets",
        list.len()
    ));
    let sum: u64 = list.iter().map(|&(_, s)| s).sum();
    p.quit_quietly(c);
    if list.len() as u64 != count || sum != size {
        return Err(fail(
            p,
            format!(
                "STAT says {count} messages, {size} octets; LIST lists {} messages, {sum} octets",
                list.len()
            ),
        ));
    }
    Ok(Verdict::Pass)
}

fn list_one(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let list = listing(p, c)?;
    let Some(&(n, size)) = list.first() else {
        p.quit_quietly(c);
        return Ok(Verdict::Skip("the maildrop is empty".into()));
    };
    let expected = format!("\"+OK {n} {size}\" (as in LIST's listing)");
    let line = ask_for(
        p,
        c,
        format!("LIST {n}\r\n").as_bytes(),
        Status::Ok,
        &expected,
    )?;
    if line.strip_prefix(b"+OK ").and_then(two_numbers) != Some((n, size)) {
        return Err(fail(
            p,
            format!("got \"{}\"", visible(trim_end(&line), 200)),
        ));
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn no_such_message(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    ask_for(
        p,
        c,
        b"LIST 999999\r\n",
        Status::Err,
        "a line beginning -ERR (no such message)",
    )?;
    ask_for(
        p,
        c,
        b"RETR 999999\r\n",
        Status::Err,
        "a line beginning -ERR (no such message)",
    )?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

/// The message the read-only checks read: the checker's own mail, else the smallest.
fn message_to_read(ctx: &Ctx, p: &mut Probe, c: ConnId) -> Result<(u64, u64), Stop> {
    let list = listing(p, c)?;
    if !ctx.sent.is_empty()
        && let Some((n, _)) = own_mails(ctx, p, c)?.into_iter().next()
        && let Some(&entry) = list.iter().find(|&&(m, _)| m == n)
    {
        return Ok(entry);
    }
    list.iter()
        .min_by_key(|&&(_, size)| size)
        .copied()
        .ok_or_else(|| Verdict::Skip("the maildrop is empty: nothing to read".into()))
}

fn retr_check(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let level = p.level;
    let c = session(ctx, p)?;
    let (n, _) = message_to_read(ctx, p, c)?;
    let expected = "+OK, the message's lines, then a line holding only \".\"";
    ask_for(
        p,
        c,
        format!("RETR {n}\r\n").as_bytes(),
        Status::Ok,
        expected,
    )?;
    p.dot_body(c).map_err(|e| match e {
        StepError::Silent { waited } => fail_at(
            level,
            format!(
                "no line holding only \".\" came within {:.1} s: the message never ended",
                waited.as_secs_f64()
            ),
        ),
        other => failed(level)(other),
    })?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn sizes_crlf(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let (n, size) = message_to_read(ctx, p, c)?;
    let lines = retr(p, c, n)?;
    let crlf = crlf_size(&lines);
    p.expect(format!(
        "LIST's size of message {n} ({size}) equal to its octets with CRLF line ends, before byte-stuffing ({crlf})"
    ));
    p.quit_quietly(c);
    if size != crlf {
        let why = if size == lf_size(&lines) {
            format!(
                "LIST says {size} octets: that counts each line end as one octet (LF); with CRLF it is {crlf}"
            )
        } else {
            format!("LIST says {size} octets; the message RETR sent has {crlf}")
        };
        return Err(fail(p, why));
    }
    Ok(Verdict::Pass)
}

/// A line of the checker's own mail that begins with a dot (as the message holds it).
pub const DOT_LINE: &str = ".a line that begins with one dot";

/// A line sent inside a multi-line reply that begins with one "." and is not the end:
/// only a missing byte-stuffing sends that (a stuffed line begins with "..").
pub fn unstuffed_line(lines: &[Vec<u8>]) -> Option<&Vec<u8>> {
    body_lines(lines).find(|l| l.starts_with(b".") && !l.starts_with(b".."))
}

fn byte_stuffing(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    // The checker's own mail holds dot lines; else the first messages are searched.
    let mut bodies: Vec<(u64, Lines)> = own_mails(ctx, p, c)?;
    if bodies.is_empty() {
        let list = listing(p, c)?;
        for &(n, _) in list.iter().take(10) {
            bodies.push((n, retr(p, c, n)?));
        }
    }
    p.quit_quietly(c);
    p.restart_evidence();
    p.expect("each line beginning with \".\" sent with one more \".\" (only \".\" alone ends the message)");
    for (n, lines) in &bodies {
        if let Some(bad) = unstuffed_line(lines) {
            p.got.extend_from_slice(bad);
            return Err(fail(
                p,
                format!(
                    "RETR {n} sent the line \"{}\" without the extra \".\"",
                    visible(trim_end(bad), 200)
                ),
            ));
        }
    }
    let stuffed = bodies
        .iter()
        .flat_map(|(_, lines)| body_lines(lines))
        .find(|l| l.starts_with(b".."));
    match stuffed {
        Some(line) => {
            p.got.extend_from_slice(line);
            Ok(Verdict::Pass)
        }
        None => Ok(Verdict::Skip(
            "no message read has a line beginning with \".\"; give --smtp too, and the checker sends one".into(),
        )),
    }
}

fn noop(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    ask_for(p, c, b"NOOP\r\n", Status::Ok, "a line beginning +OK")?;
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn capa(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    let line = ask(
        p,
        c,
        b"CAPA\r\n",
        "+OK, capability lines, then a line holding only \".\"; or -ERR from a server without CAPA",
    )?;
    match status(&line) {
        Status::Err => {}
        Status::Ok => {
            let lines = p.dot_body(c).map_err(failed(p.level))?;
            ctx.pop3_capa = body_lines(&lines)
                .map(|l| String::from_utf8_lossy(trim_end(l)).to_ascii_uppercase())
                .collect();
        }
        Status::Other => {
            return Err(fail(
                p,
                format!("got \"{}\"", visible(trim_end(&line), 200)),
            ));
        }
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn split_command(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    p.expect("\"+OK nn mm\": the server joins \"ST\" and \"AT\\r\\n\", which came in two segments");
    let level = p.level;
    p.send(c, b"ST").map_err(failed(level))?;
    std::thread::sleep(Duration::from_millis(300));
    p.send(c, b"AT\r\n").map_err(failed(level))?;
    let line = p.line(c).map_err(failed(level))?;
    if parse_stat(&line).is_none() {
        return Err(fail(
            p,
            format!("got \"{}\"", visible(trim_end(&line), 200)),
        ));
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn pipelining(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    if ctx.pop3_capa.iter().any(|c| c == "PIPELINING") {
        p.level = Level::Must;
    }
    let c = session(ctx, p)?;
    p.expect("three replies in order: +OK (NOOP), \"+OK nn mm\" (STAT), +OK (NOOP)");
    let level = p.level;
    p.send(c, b"NOOP\r\nSTAT\r\nNOOP\r\n")
        .map_err(failed(level))?;
    for i in 0..3 {
        let line = p
            .line(c)
            .map_err(|e| fail_at(level, format!("reply {} of 3: {e}", i + 1)))?;
        let good = if i == 1 {
            parse_stat(&line).is_some()
        } else {
            status(&line) == Status::Ok
        };
        if !good {
            return Err(fail(
                p,
                format!(
                    "reply {} of 3 was \"{}\"",
                    i + 1,
                    visible(trim_end(&line), 200)
                ),
            ));
        }
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn long_line(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let mut cmd = b"XLONG ".to_vec();
    cmd.extend(std::iter::repeat_n(b'a', 1000));
    cmd.extend_from_slice(b"\r\n");
    ask_for(
        p,
        c,
        &cmd,
        Status::Err,
        "a line beginning -ERR (a command longer than 255 octets)",
    )?;
    p.expect("+OK to NOOP: the session goes on (or the server closed it after its -ERR)");
    let level = p.level;
    p.send(c, b"NOOP\r\n").map_err(failed(level))?;
    match p.line(c) {
        Ok(line) if status(&line) == Status::Ok => {}
        Err(StepError::Closed | StepError::Reset) => {}
        Ok(line) => {
            return Err(fail(
                p,
                format!("got \"{}\"", visible(trim_end(&line), 200)),
            ));
        }
        Err(e) => return Err(failed(level)(e)),
    }
    p.quit_quietly(c);
    Ok(Verdict::Pass)
}

fn lock(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let first = session(ctx, p)?;
    let second = open(ctx, p)?;
    let user = format!("USER {}\r\n", ctx.settings.user);
    let pass = format!("PASS {}\r\n", ctx.settings.pass);
    let line = p_send_line(p, second, user.as_bytes(), "pop3.user-pass")?;
    if status(&line) != Status::Err {
        let line = ask(
            p,
            second,
            pass.as_bytes(),
            "-ERR: the maildrop is locked by another session",
        )?;
        match status(&line) {
            Status::Err => {}
            Status::Ok => {
                p.quit_quietly(second);
                p.quit_quietly(first);
                return Err(fail(
                    p,
                    "a second session logged in while the first held the maildrop: both may change it",
                ));
            }
            Status::Other => {
                return Err(fail(
                    p,
                    format!("got \"{}\"", visible(trim_end(&line), 200)),
                ));
            }
        }
    }
    p.quit_quietly(second);
    p.quit_quietly(first);
    Ok(Verdict::Pass)
}

fn dele(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let (count, _) = stat(p, c)?;
    let (n, _) = deletable(ctx, p, c)?;
    ask_for(
        p,
        c,
        format!("DELE {n}\r\n").as_bytes(),
        Status::Ok,
        "a line beginning +OK",
    )?;
    ask_for(
        p,
        c,
        format!("RETR {n}\r\n").as_bytes(),
        Status::Err,
        "-ERR: the message is marked as deleted",
    )?;
    let line = ask_for(
        p,
        c,
        b"STAT\r\n",
        Status::Ok,
        &format!(
            "\"+OK {} ...\": deleted messages are not counted",
            count.saturating_sub(1)
        ),
    )?;
    let after = parse_stat(&line).map(|(n, _)| n);
    // Undo before leaving (a server that gets RSET wrong fails pop3.rset).
    let _ = p.send(c, b"RSET\r\n");
    let _ = p.line(c);
    p.quit_quietly(c);
    if after != Some(count.saturating_sub(1)) {
        return Err(fail(
            p,
            format!(
                "STAT counted {} messages before DELE and \"{}\" after",
                count,
                visible(trim_end(&line), 100)
            ),
        ));
    }
    Ok(Verdict::Pass)
}

fn rset(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let (count, _) = stat(p, c)?;
    let (n, content) = deletable(ctx, p, c)?;
    need_ok(p, c, format!("DELE {n}\r\n").as_bytes(), "pop3.dele")?;
    ask_for(p, c, b"RSET\r\n", Status::Ok, "a line beginning +OK")?;
    let line = ask_for(
        p,
        c,
        b"STAT\r\n",
        Status::Ok,
        &format!("\"+OK {count} ...\": the message is back"),
    )?;
    if parse_stat(&line).map(|(n, _)| n) != Some(count) {
        p.drop_conn(c);
        return Err(fail(
            p,
            format!(
                "after RSET STAT says \"{}\", before DELE {count} messages",
                visible(trim_end(&line), 100)
            ),
        ));
    }
    ask_for(
        p,
        c,
        format!("RETR {n}\r\n").as_bytes(),
        Status::Ok,
        "+OK: the message is back",
    )?;
    let lines = p.dot_body(c).map_err(needs("RETR", "pop3.retr"))?;
    p.quit_quietly(c);
    if unstuff(&lines) != content {
        return Err(fail(p, "RETR after RSET sent another message"));
    }
    Ok(Verdict::Pass)
}

fn drop_deletes_nothing(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    let (n, content) = deletable(ctx, p, c)?;
    need_ok(p, c, format!("DELE {n}\r\n").as_bytes(), "pop3.dele")?;
    p.drop_conn(c);
    std::thread::sleep(Duration::from_millis(300));
    let c = session_retrying(ctx, p)?;
    p.restart_evidence();
    p.expect(format!(
        "message {n} still there: DELE then a dropped connection (no QUIT) deletes nothing"
    ));
    let there = holds(p, c, &content)?;
    p.quit_quietly(c);
    if !there {
        return Err(fail(
            p,
            format!(
                "message {n} is gone: the server deleted it although the client never sent QUIT"
            ),
        ));
    }
    Ok(Verdict::Pass)
}

fn quit_authorization(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = open(ctx, p)?;
    quit_closes(p, c)
}

fn quit(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    quit_closes(p, c)
}

/// QUIT on `c` (before or after a login) gets +OK, then the server closes the connection.
fn quit_closes(p: &mut Probe, c: ConnId) -> Result<Verdict, Stop> {
    let level = p.level;
    ask_for(
        p,
        c,
        b"QUIT\r\n",
        Status::Ok,
        "a line beginning +OK, then the server closes the connection",
    )?;
    p.closes(c)
        .map_err(|e| fail_at(level, format!("after +OK the connection stayed open: {e}")))?;
    Ok(Verdict::Pass)
}

fn quit_deletes(ctx: &mut Ctx, p: &mut Probe) -> Result<Verdict, Stop> {
    let c = session(ctx, p)?;
    // Every mail the checker sent is removed (so a run leaves the maildrop as it was).
    let mut targets: Vec<(u64, Vec<u8>)> = own_mails(ctx, p, c)?
        .into_iter()
        .map(|(n, lines)| (n, unstuff(&lines)))
        .collect();
    if targets.is_empty() {
        targets.push(deletable(ctx, p, c)?);
    }
    for (n, _) in &targets {
        need_ok(p, c, format!("DELE {n}\r\n").as_bytes(), "pop3.dele")?;
    }
    ask_for(
        p,
        c,
        b"QUIT\r\n",
        Status::Ok,
        "a line beginning +OK (the marked messages are removed)",
    )?;
    let _ = p.closes(c);
    let c = session_retrying(ctx, p)?;
    p.restart_evidence();
    p.expect("after DELE and QUIT the message is gone from the maildrop");
    for (n, content) in &targets {
        if holds(p, c, content)? {
            p.quit_quietly(c);
            return Err(fail(
                p,
                format!("message {n} is still there after DELE {n} and QUIT"),
            ));
        }
    }
    p.quit_quietly(c);
    ctx.sent.clear();
    Ok(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_indicators_are_exact() {
        assert_eq!(status(b"+OK\r\n"), Status::Ok);
        assert_eq!(status(b"+OK 2 320\r\n"), Status::Ok);
        assert_eq!(status(b"-ERR no\r\n"), Status::Err);
        assert_eq!(status(b"ERR login incorrect\r\n"), Status::Other);
        assert_eq!(status(b"+ok\r\n"), Status::Other);
        assert_eq!(status(b"+OKAY\r\n"), Status::Other);
        assert_eq!(status(b"2.txt 8\r\n"), Status::Other);
    }

    #[test]
    fn numbers_and_listings() {
        assert_eq!(parse_stat(b"+OK 2 320\r\n"), Some((2, 320)));
        assert_eq!(parse_stat(b"+OK 2\r\n"), None);
        assert_eq!(two_numbers(b"1 120\r\n"), Some((1, 120)));
        assert_eq!(two_numbers(b"2.txt 8\r\n"), None);
        assert_eq!(two_numbers(b"1  120\r\n"), None);
    }

    #[test]
    fn sizes_count_crlf_before_stuffing() {
        let lines = vec![b"a\r\n".to_vec(), b"..b\r\n".to_vec(), b".\r\n".to_vec()];
        assert_eq!(unstuff(&lines), b"a\r\n.b\r\n");
        assert_eq!(crlf_size(&lines), 7);
        assert_eq!(lf_size(&lines), 5);
        let bare = vec![b"a\n".to_vec(), b".\n".to_vec()];
        assert_eq!(crlf_size(&bare), 3);
    }
}
