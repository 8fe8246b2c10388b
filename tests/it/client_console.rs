//! `mailwire client` and `mailwire telnet` as a user runs them: the built binary, driven
//! through its stdin, against mailwire's own servers (demo data in a temp folder).

// Test helpers: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_in_order, start_demo};
use mailwire::client::{ClientOptions, Pop3Connection};
use mailwire::proto::pop3;

/// Every run of the binary ends within this time or the test fails.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `mailwire ARGS` with `stdin` as its input; returns (success, stdout, stderr).
fn mailwire(args: &[&str], stdin: &str) -> (bool, String, String) {
    let out = common::run_with_input(Command::new(common::MAILWIRE).args(args), stdin, LIMIT);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn manage_mail_then_send_mail_through_stdin() {
    let s = start_demo();
    let (pop3, smtp) = (s.pop3.to_string(), s.smtp.to_string());
    let script = "alice\nnot-her-password\n\
        1\nalice\nwonderland\n\
        1\n2\n3\n2\n4\n1\n5\n\
        2\nalice@localhost\nbob@localhost\nDots\n.leading dot\nsecond line\n.\n\
        2\nnot-an-address\nbob@localhost\nNope\nbody\n.\n\
        2\nalice@localhost\nbob@\nNope\n.\n\
        3\n";
    let args = [
        "client",
        "--pop3",
        &pop3,
        "--smtp",
        &smtp,
        "--timeout-secs",
        "10",
    ];
    let (ok, out, err) = mailwire(&args, script);
    assert!(ok, "exit failed; stderr: {err}\nstdout: {out}");
    assert_in_order(
        &out,
        &[
            "Username: alice",
            "Password: ****************",
            "1. Manage Mail\n2. Send Mail\n3. Quit",
            "Authentication failed: -ERR [AUTH]",
            "Please enter your username and password again.",
            "Logged in as alice. The server's greeting was:\n+OK POP3 server ready <",
            "Sl. No.",
            "1        bob@mw.test",
            "Tea party",
            "2        mrose@mw.test",
            "Lines that start with a dot",
            "3        student@mw.test",
            "Re: Tea party",
            "C: STAT\nS: +OK 3 ",
            "C: LIST\nS: +OK 3 messages",
            "C: RETR 2\nS: +OK ",
            "\n..profile and .bashrc are hidden files.   [byte-stuffed: the client removed \
             one dot (RFC 1939 section 3)]\n",
            "C: DELE 1\nS: +OK message 1 deleted",
            "C: QUIT\nS: +OK",
            "Connection closed.",
            "From: alice@localhost",
            "S: 220 ",
            "C: HELO localhost\nS: 250",
            "C: MAIL FROM:<alice@localhost>\nS: 250",
            "C: RCPT TO:<bob@localhost>\nS: 250",
            "C: DATA\nS: 354",
            "C: .\nS: 250",
            "C: QUIT\nS: 221",
            "Incorrect format\n",
            "Incorrect format\n",
            "Goodbye.",
        ],
    );
    assert_eq!(out.matches("Incorrect format").count(), 2, "{out}");

    // Alice's first mail is gone; Bob got the mail with its dot line intact.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = ClientOptions::default();
        let mut alice = Pop3Connection::connect(&pop3, &opts).await.unwrap();
        assert!(alice.login("alice", "wonderland").await.unwrap().positive);
        let stat = alice.command(pop3::Command::Stat).await.unwrap();
        assert!(stat.text.starts_with("2 "), "{}", stat.text);
        alice.quit().await.unwrap();
        let mut bob = Pop3Connection::connect(&pop3, &opts).await.unwrap();
        assert!(bob.login("bob", "builder").await.unwrap().positive);
        let mail = bob.command(pop3::Command::Retr(1)).await.unwrap();
        let body = mail.body_text();
        assert!(body.contains("\r\nSubject: Dots\r\n"), "{body}");
        assert!(
            body.ends_with("\r\n\r\n.leading dot\r\nsecond line\r\n"),
            "{body}"
        );
        bob.quit().await.unwrap();
    });
}

#[test]
fn end_of_input_anywhere_ends_cleanly() {
    let s = start_demo();
    let pop3 = s.pop3.to_string();
    for script in [
        "",
        "alice\n",
        "alice\nwonderland\n1\n",
        "alice\nwonderland\n1\n3\n",
    ] {
        let args = ["client", "--pop3", &pop3, "--timeout-secs", "10"];
        let (ok, out, err) = mailwire(&args, script);
        assert!(ok, "{script:?}: {err}");
        assert!(
            out.ends_with("End of input. Goodbye.\n"),
            "{script:?}: {out}"
        );
    }
}

#[test]
fn unreachable_server_is_reported_and_the_menu_returns() {
    let (_refusing, addr) = common::refusing_address();
    let addr = addr.to_string();
    let args = [
        "client",
        "--pop3",
        &addr,
        "--smtp",
        &addr,
        "--timeout-secs",
        "5",
    ];
    let (ok, out, _) = mailwire(&args, "a\nb\n1\n2\na@b\nc@d\ns\n.\n3\n");
    assert!(ok);
    assert_in_order(
        &out,
        &[
            &format!("Error: Cannot connect to {addr}: "),
            "1. Manage Mail",
            &format!("Error: Cannot connect to {addr}: "),
            "Goodbye.",
        ],
    );
}

/// Drives `mailwire client` on a pseudo-terminal (Python's `pty`), as a person types.
const ON_A_TERMINAL: &str = r#"
import os, pty, select, sys, time
exe, pop3, smtp = sys.argv[1:4]
pid, fd = pty.fork()
if pid == 0:
    os.execv(exe, [exe, "client", "--pop3", pop3, "--smtp", smtp])
seen = b""
def until(token):
    global seen
    end = time.time() + 30
    while token not in seen:
        ready, _, _ = select.select([fd], [], [], max(0, end - time.time()))
        if not ready:
            sys.exit("no %r within 30 s; the terminal showed %r" % (token, seen))
        seen += os.read(fd, 4096)
until(b"Username: "); os.write(fd, b"alice\n")
until(b"Password: "); os.write(fd, b"wonderland\n")
until(b"Enter your choice: "); os.write(fd, b"3\n")
until(b"Goodbye.")
os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
"#;

#[test]
fn a_password_typed_on_a_terminal_is_not_shown() {
    let s = start_demo();
    let (pop3, smtp) = (s.pop3.to_string(), s.smtp.to_string());
    let exe = common::MAILWIRE;
    let shown = common::run_program("python3", &["-c", ON_A_TERMINAL, exe, &pop3, &smtp], LIMIT);
    // The terminal echoes the username as it is typed, not the password.
    assert_in_order(&shown, &["Username: alice", "Password: ", "1. Manage Mail"]);
    assert!(!shown.contains("wonderland"), "{shown}");
}

#[test]
fn telnet_shows_multi_line_replies_and_saves_the_transcript() {
    let s = start_demo();
    let dir = common::TempDir::new("telnet");
    let log = dir.path().join("session.log");
    let log_arg = log.to_string_lossy().into_owned();
    let addr = s.pop3.to_string();
    // Every line gets an answer: wait as long as it takes on a busy machine.
    let args = [
        "telnet",
        &addr,
        "--save",
        &log_arg,
        "--linger-secs",
        "5",
        "--reply-wait-ms",
        "20000",
    ];
    let (ok, out, err) = mailwire(&args, "user mrose\npass tanstaaf\nstat\nlist\nquit\n");
    assert!(ok, "{err}\n{out}");
    // Scripted input waits for each answer, so commands and replies alternate.
    let expected = [
        "+OK POP3 server ready <",
        "user mrose\r\n",
        "+OK send PASS for mrose\r\n",
        "pass tanstaaf\r\n",
        "+OK mrose's maildrop has 2 messages (320 octets)\r\n",
        "stat\r\n",
        "+OK 2 320\r\n",
        "list\r\n",
        "+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n",
        "quit\r\n",
        "+OK localhost POP3 server signing off",
    ];
    assert_in_order(&out, &expected);
    assert_in_order(
        &out,
        &["Connection closed by the server.\n", "Transcript saved to "],
    );
    let saved = std::fs::read_to_string(&log).unwrap();
    assert!(
        saved.starts_with("=~=~=~=~=~=~=~=~=~=~=~= mailwire telnet log "),
        "{saved}"
    );
    assert_in_order(&saved, &expected);
}

#[test]
fn telnet_sends_a_mail_by_hand_and_body_lines_do_not_wait_for_an_answer() {
    let s = start_demo();
    let addr = s.smtp.to_string();
    let before = s.maildir_files("bob").len();
    let script = "EHLO student\nMAIL FROM:<alice@localhost>\nRCPT TO:<bob@localhost>\nDATA\n\
        Subject: typed by hand\n\nhello bob\n.\nQUIT\n";
    // The body lines get no answer; each waits at most a second, then the next one goes.
    let (ok, out, err) = mailwire(&["telnet", &addr], script);
    assert!(ok, "{err}\n{out}");
    assert_in_order(
        &out,
        &[
            "220 ",
            "EHLO student\r\n",
            "250-",
            "MAIL FROM:<alice@localhost>\r\n",
            "250 ",
            "RCPT TO:<bob@localhost>\r\n",
            "250 ",
            "DATA\r\n",
            "354 ",
            "hello bob\r\n",
            ".\r\n",
            "250 2.0.0 Message accepted for delivery",
            "221 ",
            "Connection closed by the server.",
        ],
    );
    // QUIT follows "." at once if storing the mail takes longer than the wait for a reply.
    assert_in_order(&out, &[".\r\n", "QUIT\r\n", "221 "]);
    let files = s.maildir_files("bob");
    assert_eq!(files.len(), before + 1, "{out}");
    let delivered = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|m| m.contains("Subject: typed by hand"))
        .unwrap();
    assert!(delivered.contains("\r\n\r\nhello bob\r\n"), "{delivered}");
}

#[test]
fn telnet_to_a_closed_port_fails_with_a_reason() {
    let (_refusing, addr) = common::refusing_address();
    let addr = addr.to_string();
    let (ok, _, err) = mailwire(&["telnet", &addr], "");
    assert!(!ok);
    assert!(
        err.contains(&format!("Cannot connect to {addr}: ")),
        "{err}"
    );
}

#[test]
fn telnet_save_to_a_bad_path_fails_before_connecting() {
    let s = start_demo();
    let addr = s.pop3.to_string();
    let (ok, out, err) = mailwire(
        &["telnet", &addr, "--save", "/nonexistent-folder/x.log"],
        "user mrose\n",
    );
    assert!(!ok);
    assert!(
        err.contains("cannot save the transcript to /nonexistent-folder/x.log"),
        "{err}"
    );
    assert!(!out.contains("Connected to"), "{out}");
}

#[test]
fn telnet_stopped_by_sigterm_keeps_its_transcript() {
    let s = start_demo();
    let dir = common::TempDir::new("telnet-term");
    let log = dir.path().join("session.log");
    let mut child = common::Spawned::new(
        Command::new(common::MAILWIRE)
            .args(["telnet", &s.pop3.to_string(), "--save"])
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    // The input stays open: the session waits for more commands.
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"user mrose\n").unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("+OK send PASS for mrose")
    {
        assert!(
            start.elapsed() < LIMIT,
            "the transcript never got the reply"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.signal(libc::SIGTERM);
    let out = child.output_within(LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Interrupted (a stop signal)"), "{stdout}");
    let saved = std::fs::read_to_string(&log).unwrap();
    assert_in_order(
        &saved,
        &[
            "mailwire telnet log",
            "+OK POP3 server ready",
            "user mrose\r\n",
            "+OK send PASS",
        ],
    );
    drop(input);
}
