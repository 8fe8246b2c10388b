//! `mailwire client` and `mailwire telnet`, run as a user runs them (a script on stdin),
//! against a deliberately broken server: one table of flaws (a multi-line reply without its
//! "." line, a line without its CRLF, bare LFs, a reply without +OK/-ERR or a reply code)
//! and, for each, what the console must show: the reply whole as it came, its lines marked,
//! the diagnosis, and the replies after it paired with their own commands. Also the
//! window's console output for the same kinds of replies.

// Test helpers: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::assert_in_order;

/// Every run of the binary ends within this time or the test fails.
const LIMIT: Duration = Duration::from_secs(60);
/// The broken server stops accepting after this long, whatever happens.
const SERVER_LIFETIME: Duration = Duration::from_secs(60);

/// The one thing the broken server gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// None: every reply as the RFCs say (RETR 1 holds a byte-stuffed line).
    None,
    /// POP3: LIST's multi-line reply has no "." line.
    NoDotLine,
    /// POP3: STAT's reply, SMTP: RCPT's reply, without its CRLF.
    NoLineEnd,
    /// Every line ends with a bare LF.
    BareLf,
    /// POP3: STAT's reply without +OK/-ERR; SMTP: MAIL's reply without a code.
    NoStatus,
    /// SMTP: HELO's reply is "250-..." and its last line never comes.
    NoLastLine,
}

/// A POP3 or SMTP server on 127.0.0.1 with one flaw; stops (bounded) when dropped.
struct BrokenServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for BrokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn broken(pop3: bool, flaw: Flaw) -> BrokenServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::spawn(move || {
        let started = Instant::now();
        while !stopping.load(Ordering::SeqCst) && started.elapsed() < SERVER_LIFETIME {
            match listener.accept() {
                Ok((sock, _)) => {
                    std::thread::spawn(move || serve(sock, pop3, flaw));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    BrokenServer {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// Lines with the flaw's line end (CRLF, or a bare LF).
fn lines(flaw: Flaw, lines: &[&str]) -> Vec<u8> {
    let eol = if flaw == Flaw::BareLf { "\n" } else { "\r\n" };
    lines
        .iter()
        .map(|l| format!("{l}{eol}"))
        .collect::<String>()
        .into_bytes()
}

fn pop3_reply(flaw: Flaw, command: &str) -> Vec<u8> {
    let keyword = command
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    match keyword.as_str() {
        "USER" | "PASS" => lines(flaw, &["+OK"]),
        "STAT" => match flaw {
            Flaw::NoLineEnd => b"+OK 2 215".to_vec(),
            Flaw::NoStatus => lines(flaw, &["2 215"]),
            _ => lines(flaw, &["+OK 2 215"]),
        },
        "LIST" => {
            let head = ["+OK 2 messages (215 octets)", "1 120", "2 95"];
            if flaw == Flaw::NoDotLine {
                lines(flaw, &head)
            } else {
                lines(flaw, &[&head[..], &["."]].concat())
            }
        }
        "TOP" => lines(
            flaw,
            &["+OK", "From: alice@localhost", "Subject: Hello", "", "."],
        ),
        "RETR" => lines(
            flaw,
            &[
                "+OK 120 octets",
                "Subject: Hello",
                "",
                "..a line that begins with a dot",
                "last line",
                ".",
            ],
        ),
        "QUIT" => lines(flaw, &["+OK bye"]),
        _ => lines(flaw, &["-ERR unknown command"]),
    }
}

fn smtp_reply(flaw: Flaw, command: &str, in_data: &mut bool) -> Vec<u8> {
    if *in_data {
        if command == "." {
            *in_data = false;
            return lines(flaw, &["250 OK queued"]);
        }
        return Vec::new();
    }
    let keyword = command.get(..4).unwrap_or(command).to_ascii_uppercase();
    match keyword.as_str() {
        "HELO" | "EHLO" if flaw == Flaw::NoLastLine => lines(flaw, &["250-localhost hello"]),
        "HELO" | "EHLO" => lines(flaw, &["250 localhost hello"]),
        "MAIL" if flaw == Flaw::NoStatus => lines(flaw, &["OK sender"]),
        "MAIL" => lines(flaw, &["250 OK sender"]),
        "RCPT" if flaw == Flaw::NoLineEnd => b"250 OK recipient".to_vec(),
        "RCPT" => lines(flaw, &["250 OK recipient"]),
        "DATA" => {
            *in_data = true;
            lines(flaw, &["354 end with <CRLF>.<CRLF>"])
        }
        "QUIT" => lines(flaw, &["221 bye"]),
        _ => lines(flaw, &["500 unknown command"]),
    }
}

fn serve(sock: TcpStream, pop3: bool, flaw: Flaw) {
    sock.set_read_timeout(Some(SERVER_LIFETIME)).unwrap();
    let mut writer = sock.try_clone().unwrap();
    let greeting = if pop3 {
        lines(flaw, &["+OK broken POP3 ready"])
    } else {
        lines(flaw, &["220 localhost broken SMTP ready"])
    };
    if writer.write_all(&greeting).is_err() {
        return;
    }
    let mut reader = BufReader::new(sock);
    let mut in_data = false;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let reply = if pop3 {
            pop3_reply(flaw, command)
        } else {
            smtp_reply(flaw, command, &mut in_data)
        };
        if writer.write_all(&reply).is_err() {
            return;
        }
        if command.eq_ignore_ascii_case("QUIT") {
            return;
        }
    }
}

/// Log in, STAT, LIST, RETR 1, QUIT, then Quit.
const POP3_SCRIPT: &str = "alice\npw\n1\n1\n2\n3 1\n5\n3\n";
/// Send Mail with a body line that begins with a dot, then Quit.
const SMTP_SCRIPT: &str = "alice\npw\n2\na@b\nc@d\nHi\nbody\n.dot\n.\n3\n";

const STUFFED: &str = "..a line that begins with a dot   [byte-stuffed: the client removed one \
                       dot (RFC 1939 section 3)]";
const END: &str = ".   [the \".\" line: the end of the multi-line reply]";

/// Runs `mailwire client` against a server with `flaw`; returns its output.
fn console(pop3: bool, flaw: Flaw) -> String {
    let server = broken(pop3, flaw);
    let addr = server.addr.to_string();
    let (which, script) = if pop3 {
        ("--pop3", POP3_SCRIPT)
    } else {
        ("--smtp", SMTP_SCRIPT)
    };
    let args = ["client", which, &addr, "--timeout-secs", "10"];
    let out = common::run_with_input(Command::new(common::MAILWIRE).args(args), script, LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{flaw:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What the console must show for each flaw, in this order. The replies after a broken one
/// are paired with their own commands, and a stalled reply is given up after 2 s, not after
/// the 10 s read timeout.
#[test]
fn the_console_shows_each_framing_flaw_and_goes_on() {
    let table: &[(bool, Flaw, &[&str])] = &[
        (
            true,
            Flaw::None,
            &[
                "C: STAT\nS: +OK 2 215\n",
                "C: LIST\nS: +OK 2 messages (215 octets)\n1 120\n2 95\n",
                END,
                "C: RETR 1\nS: +OK 120 octets\nSubject: Hello\n\n",
                STUFFED,
                "\nlast line\n",
                END,
                "C: QUIT\nS: +OK bye\nConnection closed.",
                "Goodbye.",
            ],
        ),
        (
            true,
            Flaw::NoDotLine,
            &[
                // The mail list: LIST given up, its lines still make the list.
                "S: +OK 2 messages (215 octets)\n1 120\n2 95\nFraming error: The server at ",
                "stopped in the middle of the reply to LIST: it sent \"+OK 2 messages (215 \
                 octets)\" and 2 lines, but no \".\" line (RFC 1939 section 3: a multi-line \
                 reply ends with a line holding only \".\"), then nothing for 2 s.",
                "2        alice@localhost",
                "C: STAT\nS: +OK 2 215\n",
                "C: LIST\nS: +OK 2 messages (215 octets)\n1 120\n2 95\nFraming error: ",
                "C: RETR 1\nS: +OK 120 octets\n",
                STUFFED,
                END,
                "C: QUIT\nS: +OK bye\nConnection closed.",
                "Goodbye.",
            ],
        ),
        (
            true,
            Flaw::NoLineEnd,
            &[
                "C: STAT\nS: +OK 2 215   [no line end: CRLF never came (RFC 1939 section 3)]\n\
                 Framing error: The server at ",
                "stopped in the middle of the reply to STAT: it sent \"+OK 2 215\" without a \
                 line end (RFC 1939 section 3: every line ends with CRLF), then nothing for 2 s.",
                "C: LIST\nS: +OK 2 messages (215 octets)\n1 120\n",
                "C: RETR 1\nS: +OK 120 octets\n",
                "C: QUIT\nS: +OK bye\nConnection closed.",
                "Goodbye.",
            ],
        ),
        (
            true,
            Flaw::BareLf,
            &[
                "S: +OK broken POP3 ready   [ended by a bare LF, not CRLF (RFC 1939 section 3); \
                 the client accepted it]",
                "C: STAT\nS: +OK 2 215   [ended by a bare LF, not CRLF (RFC 1939 section 3); \
                 the client accepted it]\n",
                "C: RETR 1\nS: +OK 120 octets   [ended by a bare LF",
                "\n..a line that begins with a dot   [byte-stuffed: the client removed one dot \
                 (RFC 1939 section 3)] [bare LF]\n",
                "\n.   [the \".\" line: the end of the multi-line reply] [bare LF]\n",
                "C: QUIT\nS: +OK bye   [ended by a bare LF",
                "Goodbye.",
            ],
        ),
        (
            true,
            Flaw::NoStatus,
            &[
                "C: STAT\nS: 2 215\nFraming error: The server sent \"2 215\" while we waited \
                 for the reply to STAT; a POP3 reply must begin with \"+OK\" or \"-ERR\"",
                "C: LIST\nS: +OK 2 messages (215 octets)\n",
                "C: RETR 1\nS: +OK 120 octets\n",
                "C: QUIT\nS: +OK bye\nConnection closed.",
                "Goodbye.",
            ],
        ),
        (
            false,
            Flaw::NoLastLine,
            &[
                "C: HELO b\nS: 250-localhost hello\nFraming error: The server at ",
                "stopped in the middle of the reply to HELO b: it sent 1 line of a 250 reply, \
                 all \"250-\", but not its last line (RFC 5321 section 4.2.1",
                "then nothing for 2 s.",
                "C: MAIL FROM:<a@b>\nS: 250 OK sender\n",
                "C: DATA\nS: 354 ",
                "C: <the message: 7 lines, ",
                " octets; 1 line began with \".\" and was sent with one more dot \
                 (byte-stuffing, RFC 5321 section 4.5.2)>\nC: .\nS: 250 OK queued\n",
                "C: QUIT\nS: 221 bye\n",
                "Goodbye.",
            ],
        ),
        (
            false,
            Flaw::NoStatus,
            &[
                "C: MAIL FROM:<a@b>\nS: OK sender\nFraming error: The server sent \"OK \
                 sender\" while we waited for the reply to MAIL FROM:<a@b>; an SMTP reply line \
                 must begin with a three-digit code",
                // The refusal ends the mail; QUIT still gets its own reply.
                "C: QUIT\nS: 221 bye\n",
                "Goodbye.",
            ],
        ),
        (
            false,
            Flaw::NoLineEnd,
            &[
                "C: RCPT TO:<c@d>\nS: 250 OK recipient   [no line end: CRLF never came (RFC \
                 5321 section 2.3.8)]\nFraming error: ",
                "C: DATA\nS: 354 ",
                "C: .\nS: 250 OK queued\n",
                "C: QUIT\nS: 221 bye\n",
                "Goodbye.",
            ],
        ),
        (
            false,
            Flaw::BareLf,
            &[
                "S: 220 localhost broken SMTP ready   [ended by a bare LF, not CRLF (RFC 5321 \
                 section 2.3.8); the client accepted it]",
                "C: .\nS: 250 OK queued   [ended by a bare LF",
                "C: QUIT\nS: 221 bye   [ended by a bare LF",
                "Goodbye.",
            ],
        ),
    ];
    // The rows run side by side (each waits up to a few seconds on its server).
    let runs: Vec<_> = table
        .iter()
        .map(|&(pop3, flaw, expected)| {
            std::thread::spawn(move || (pop3, flaw, expected, console(pop3, flaw)))
        })
        .collect();
    for run in runs {
        let (pop3, flaw, expected, out) = run.join().unwrap();
        let protocol = if pop3 { "POP3" } else { "SMTP" };
        eprintln!("--- {protocol} {flaw:?}");
        assert_in_order(&out, expected);
        // Never the read timeout, never a lost session.
        assert!(
            !out.contains("nothing for 10 s"),
            "{protocol} {flaw:?}:\n{out}"
        );
        assert!(
            !out.contains("already closed"),
            "{protocol} {flaw:?}:\n{out}"
        );
        assert!(
            !out.contains("has already ended"),
            "{protocol} {flaw:?}:\n{out}"
        );
    }
}

/// `mailwire telnet` shows the server's bytes as they come; a line whose CRLF never came is
/// not glued to the next command, and a bare LF is marked.
#[test]
fn telnet_marks_a_missing_line_end_and_bare_lfs() {
    let script = "USER alice\nPASS pw\nSTAT\nLIST\nQUIT\n";
    for (flaw, expected) in [
        (
            Flaw::NoLineEnd,
            &[
                "STAT\r\n+OK 2 215   [no line end: the server's line above never got its CRLF]\n\
                 LIST\r\n+OK 2 messages",
            ][..],
        ),
        (
            Flaw::BareLf,
            &[
                "STAT\r\n+OK 2 215   [bare LF, not CRLF]\n",
                "2 95   [bare LF, not CRLF]\n.   [bare LF, not CRLF]\n",
            ][..],
        ),
    ] {
        let server = broken(true, flaw);
        let addr = server.addr.to_string();
        let out = common::run_with_input(
            Command::new(common::MAILWIRE).args(["telnet", &addr, "--linger-secs", "2"]),
            script,
            LIMIT,
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{flaw:?}: {stdout}");
        assert_in_order(&stdout, expected);
        assert_in_order(
            &stdout,
            &["QUIT\r\n+OK bye", "Connection closed by the server."],
        );
    }
}

/// The window's console shows every line of a reply with the same marks, and a step's
/// failure (a reply given up) under it.
#[test]
fn the_window_console_shows_whole_replies_and_the_diagnosis() {
    use mailwire::exchange::{Exchange, ExchangeKind, StepError, StepOutcome};
    use mailwire::proto::{Direction, Protocol};
    use mailwire::timeline::Timeline;
    use mailwire::viz::live::console_lines;

    let exchange = |kind, line: &str, more: &[&str]| Exchange {
        kind,
        line: line.to_string(),
        more: more.iter().map(|s| s.to_string()).collect(),
        octets: 0,
        stream: None,
    };
    let outcome = |exchanges, check| StepOutcome {
        index: 0,
        session: "console".into(),
        protocol: Some(Protocol::Pop3),
        conn: None,
        exchanges,
        check,
        server_closed: false,
        events: Vec::new(),
    };
    let mut t = Timeline::new("console");
    t.push_step(
        outcome(
            vec![
                exchange(ExchangeKind::Command, "RETR 1", &[]),
                exchange(ExchangeKind::Reply, "+OK", &["..x", "y", "."]),
            ],
            Ok(()),
        ),
        String::new(),
        None,
        None,
        0..0,
    );
    t.push_step(
        outcome(
            vec![
                exchange(ExchangeKind::Command, "LIST", &[]),
                exchange(ExchangeKind::Reply, "+OK 2", &["1 1"]),
            ],
            Err(StepError::Stalled {
                waiting_for: "the reply to LIST".into(),
                so_far: Some("\"+OK 2\" and 1 line, but no \".\" line".into()),
                after: Duration::from_secs(2),
            }),
        ),
        String::new(),
        None,
        None,
        0..0,
    );
    let shown: Vec<(Option<Direction>, bool, String)> = console_lines(&t, "console")
        .into_iter()
        .map(|l| (l.from, l.first, l.text))
        .collect();
    let (c, s) = (
        Some(Direction::ClientToServer),
        Some(Direction::ServerToClient),
    );
    assert_eq!(
        shown,
        vec![
            (c, true, "RETR 1".to_string()),
            (s, true, "+OK".to_string()),
            (
                s,
                false,
                "..x   [byte-stuffed: the client removed one dot (RFC 1939 section 3)]".into()
            ),
            (s, false, "y".into()),
            (s, false, END.into()),
            (c, true, "LIST".into()),
            (s, true, "+OK 2".into()),
            (s, false, "1 1".into()),
            (
                None,
                true,
                "the server stopped in the middle of the reply to LIST: it sent \"+OK 2\" and \
                 1 line, but no \".\" line, then nothing for 2 s; the client gave that reply \
                 up, so the replies after it still pair with their commands"
                    .into()
            ),
        ]
    );
}
