//! The servers on real sockets, driven by programs we did not write: Python's poplib and
//! smtplib, and curl. Also raw-socket checks of locking, dropped connections and delivery.

use crate::common;

use std::time::Duration;

use common::{Raw, run_program, start_demo};

const T: Duration = Duration::from_secs(60);

fn python(script: &str, args: &[String]) -> String {
    let mut all = vec!["-c", script];
    all.extend(args.iter().map(String::as_str));
    run_program("python3", &all, T)
}

#[test]
fn poplib_apop_capa_stat_list_top_uidl_retr() {
    let s = start_demo();
    let out = python(
        r#"
import poplib, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
print("welcome", p.getwelcome().decode())
print("apop", p.apop("mrose", "tanstaaf").decode())
caps = p.capa()
print("capa", sorted(caps.keys()))
print("stat", p.stat())
resp, listing, _ = p.list()
print("list", [l.decode() for l in listing])
resp, lines, octets = p.retr(1)
print("retr1", octets, len(b"\r\n".join(lines) + b"\r\n"))
resp, top, _ = p.top(2, 0)
print("top-has-blank", top[-1] == b"")
resp, uids, _ = p.uidl()
print("uidl", len(uids))
print("quit", p.quit().decode())
"#,
        &[s.pop3.port().to_string()],
    );
    assert!(out.contains("welcome +OK POP3 server ready <"), "{out}");
    assert!(
        out.contains("apop +OK mrose's maildrop has 2 messages (320 octets)"),
        "{out}"
    );
    assert!(
        out.contains(
            "capa ['AUTH-RESP-CODE', 'IMPLEMENTATION', 'PIPELINING', 'RESP-CODES', 'SASL', 'TOP', 'UIDL', 'USER']"
        ),
        "{out}"
    );
    assert!(out.contains("stat (2, 320)"), "{out}");
    assert!(out.contains("list ['1 120', '2 200']"), "{out}");
    // poplib strips CRLFs: the joined lines plus one CRLF must give back the announced size.
    assert!(out.contains("retr1 120 120"), "{out}");
    assert!(out.contains("top-has-blank True"), "{out}");
    assert!(out.contains("uidl 2"), "{out}");
    assert!(
        out.contains("quit +OK localhost POP3 server signing off (2 messages left)"),
        "{out}"
    );
}

#[test]
fn smtplib_then_poplib_round_trip_with_dot_lines_and_deletion() {
    let s = start_demo();
    let before = s.maildir_files("bob").len();
    let out = python(
        r#"
import smtplib, poplib, sys
body = "Subject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n"
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    code, ehlo = s.ehlo("pluto")
    print("ehlo", code, sorted(s.esmtp_features.keys()))
    refused = s.sendmail("alice@localhost", ["bob@localhost"], body)
    print("refused", refused)
p = poplib.POP3("127.0.0.1", int(sys.argv[2]), timeout=20)
p.user("bob"); p.pass_("builder")
count, size = p.stat()
resp, lines, octets = p.retr(count)
text = b"\r\n".join(lines).decode()
print("has-trace", text.startswith("Return-Path: <alice@localhost>\r\nReceived: from pluto"))
print("body-ok", text.endswith("Subject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast line"))
print("dele", p.dele(count).decode())
print("quit", p.quit().decode())
"#,
        &[s.smtp.port().to_string(), s.pop3.port().to_string()],
    );
    assert!(
        out.contains("ehlo 250 ['8bitmime', 'auth', 'enhancedstatuscodes', 'pipelining', 'size']"),
        "{out}"
    );
    assert!(out.contains("refused {}"), "{out}");
    assert!(out.contains("has-trace True"), "{out}");
    assert!(out.contains("body-ok True"), "{out}");
    assert!(out.contains("dele +OK message"), "{out}");
    assert_eq!(
        s.maildir_files("bob").len(),
        before,
        "delivered then deleted"
    );
}

#[test]
fn smtplib_unknown_recipient_and_relaying_are_refused() {
    let s = start_demo();
    let out = python(
        r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.ehlo("pluto")
    s.mail("alice@localhost")
    print("nobody", s.rcpt("nobody@localhost"))
    print("remote", s.rcpt("bob@example.com"))
    print("bob", s.rcpt("bob@localhost"))
"#,
        &[s.smtp.port().to_string()],
    );
    assert!(out.contains("nobody (550, b'5.1.1"), "{out}");
    assert!(out.contains("remote (550, b'5.7.1"), "{out}");
    assert!(out.contains("bob (250, b'2.1.5"), "{out}");
}

#[test]
fn smtplib_mail_to_postmaster_is_accepted_and_stored_with_its_return_path() {
    let s = start_demo();
    // Postmaster's mail goes to the user whose name sorts first.
    let users = std::fs::read_to_string(s.data().join("users.txt")).unwrap();
    let first = users
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .min()
        .unwrap()
        .to_string();
    let before = s.maildir_files(&first).len();
    let out = python(
        r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    print("helo", s.helo("pluto"))
    print("sendmail", s.sendmail("root@pluto.example", ["Postmaster"], "Subject: hi\r\n\r\nabuse report\r\n"))
"#,
        &[s.smtp.port().to_string()],
    );
    // RFC 5321 4.5.1: <postmaster> without a domain must be accepted.
    assert!(out.contains("sendmail {}"), "{out}");
    let files = s.maildir_files(&first);
    assert_eq!(files.len(), before + 1, "{out}");
    let stored = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|m| m.contains("abuse report"))
        .unwrap();
    // RFC 5321 4.4: final delivery puts the envelope sender first; HELO means "with SMTP".
    assert!(
        stored.starts_with("Return-Path: <root@pluto.example>\r\nReceived: from pluto "),
        "{stored}"
    );
    assert!(stored.contains(" with SMTP id "), "{stored}");
}

#[test]
fn curl_pop3_and_smtp() {
    let s = start_demo();
    let dir = common::TempDir::new("curl");
    let mail = dir.path().join("mail.txt");
    std::fs::write(
        &mail,
        "From: alice@localhost\r\nTo: student@localhost\r\nSubject: via curl\r\n\r\nHello from curl.\r\n",
    )
    .unwrap_or_default();
    let smtp_url = format!("smtp://127.0.0.1:{}", s.smtp.port());
    let mail_path = mail.to_string_lossy().into_owned();
    run_program(
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            &smtp_url,
            "--mail-from",
            "alice@localhost",
            "--mail-rcpt",
            "student@localhost",
            "-T",
            &mail_path,
        ],
        T,
    );
    let list_url = format!("pop3://127.0.0.1:{}/", s.pop3.port());
    let listing = run_program(
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "-u",
            "student:student",
            &list_url,
        ],
        T,
    );
    let last = listing.lines().last().unwrap_or_default().to_string();
    let n = last.split(' ').next().unwrap_or("0");
    assert!(listing.lines().count() >= 2, "listing: {listing}");
    let retr_url = format!("pop3://127.0.0.1:{}/{n}", s.pop3.port());
    let message = run_program(
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "-u",
            "student:student",
            &retr_url,
        ],
        T,
    );
    assert!(message.contains("Subject: via curl"), "{message}");
    assert!(message.contains("Hello from curl."), "{message}");
    assert!(
        message.starts_with("Return-Path: <alice@localhost>\r\nReceived: from "),
        "{message}"
    );
}

#[test]
fn second_login_gets_in_use_and_the_lock_is_released_after_quit() {
    let s = start_demo();
    let mut a = Raw::connect(s.pop3);
    assert!(a.line().starts_with("+OK"));
    a.cmd("USER mrose");
    assert!(a.cmd("PASS tanstaaf").starts_with("+OK mrose's maildrop"));

    let mut b = Raw::connect(s.pop3);
    b.line();
    b.cmd("USER mrose");
    assert_eq!(
        b.cmd("PASS tanstaaf"),
        "-ERR [IN-USE] maildrop already locked by another session\r\n"
    );
    assert!(a.cmd("QUIT").starts_with("+OK"));
    // The lock is released when the first session ends.
    b.cmd("USER mrose");
    assert!(b.cmd("PASS tanstaaf").starts_with("+OK mrose's maildrop"));
}

#[test]
fn wrong_password_gets_auth_code_after_the_delay() {
    let s = start_demo();
    let mut c = Raw::connect(s.pop3);
    c.line();
    c.cmd("USER mrose");
    let started = std::time::Instant::now();
    assert_eq!(
        c.cmd("PASS wrong"),
        "-ERR [AUTH] invalid user name or password\r\n"
    );
    assert!(started.elapsed() >= Duration::from_millis(20));
    c.cmd("USER nobody");
    assert_eq!(
        c.cmd("PASS x"),
        "-ERR [AUTH] invalid user name or password\r\n"
    );
}

#[test]
fn dropped_connection_before_quit_deletes_nothing() {
    let s = start_demo();
    let before = s.maildir_files("mrose");
    {
        let mut c = Raw::connect(s.pop3);
        c.line();
        c.cmd("USER mrose");
        c.cmd("PASS tanstaaf");
        assert_eq!(c.cmd("DELE 1"), "+OK message 1 deleted\r\n");
        assert_eq!(c.cmd("DELE 2"), "+OK message 2 deleted\r\n");
    } // dropped here, no QUIT
    // The lock is released and both messages are still there.
    let mut c = Raw::connect(s.pop3);
    c.line();
    c.cmd("USER mrose");
    let mut reply = c.cmd("PASS tanstaaf");
    for _ in 0..50 {
        if reply.starts_with("+OK") {
            break;
        }
        // The server may not have seen the drop yet.
        std::thread::sleep(Duration::from_millis(50));
        c.cmd("USER mrose");
        reply = c.cmd("PASS tanstaaf");
    }
    assert_eq!(
        reply,
        "+OK mrose's maildrop has 2 messages (320 octets)\r\n"
    );
    assert_eq!(s.maildir_files("mrose"), before);
}

#[test]
fn quit_expunges_only_marked_messages() {
    let s = start_demo();
    let before = s.maildir_files("alice").len();
    let mut c = Raw::connect(s.pop3);
    c.line();
    c.cmd("USER alice");
    c.cmd("PASS wonderland");
    assert_eq!(c.cmd("DELE 2"), "+OK message 2 deleted\r\n");
    assert!(
        c.cmd("QUIT")
            .starts_with("+OK localhost POP3 server signing off")
    );
    assert_eq!(s.maildir_files("alice").len(), before - 1);
}

#[test]
fn pipelined_commands_in_one_write() {
    let s = start_demo();
    let mut c = Raw::connect(s.pop3);
    c.line();
    c.send("USER mrose\r\nPASS tanstaaf\r\nSTAT\r\nLIST 2\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(c.line(), "+OK send PASS for mrose\r\n");
    assert_eq!(
        c.line(),
        "+OK mrose's maildrop has 2 messages (320 octets)\r\n"
    );
    assert_eq!(c.line(), "+OK 2 320\r\n");
    assert_eq!(c.line(), "+OK 2 200\r\n");
    assert_eq!(c.line(), "+OK\r\n");
    assert!(
        c.line()
            .starts_with("+OK localhost POP3 server signing off")
    );
}

#[test]
fn smtp_250_only_once_the_message_is_on_disk() {
    let s = start_demo();
    let before = s.maildir_files("bob").len();
    let mut c = Raw::connect(s.smtp);
    assert!(c.line().starts_with("220 "));
    assert!(c.cmd("HELO pluto").starts_with("250 "));
    assert!(c.cmd("MAIL FROM:<>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<bob@localhost>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send("Subject: durable\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.line(), "250 2.0.0 Message accepted for delivery\r\n");
    // At the moment 250 arrives the file is already in new/.
    assert_eq!(s.maildir_files("bob").len(), before + 1);
    let tmp = s.data().join("bob/Maildir/tmp");
    assert_eq!(std::fs::read_dir(tmp).map(|d| d.count()).unwrap_or(99), 0);
    assert!(c.cmd("QUIT").starts_with("221 "));
}

#[test]
fn smtp_connection_dropped_mid_data_stores_nothing() {
    let s = start_demo();
    let before = s.maildir_files("bob").len();
    {
        let mut c = Raw::connect(s.smtp);
        c.line();
        c.cmd("EHLO pluto");
        for _ in 0..5 {
            let l = c.line();
            if l.starts_with("250 ") {
                break;
            }
        }
        c.cmd("MAIL FROM:<alice@localhost>");
        c.cmd("RCPT TO:<bob@localhost>");
        c.cmd("DATA");
        c.send("Subject: half\r\n\r\nhalf a message\r\n");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.maildir_files("bob").len(), before);
}

#[test]
fn events_are_published_for_each_session() {
    let s = start_demo();
    let mut c = Raw::connect(s.pop3);
    c.line();
    c.cmd("QUIT");
    let mut kinds = Vec::new();
    while let Ok(e) = s.events.recv_timeout(Duration::from_secs(5)) {
        let closed = matches!(e.kind, mailwire::servers::EventKind::SessionClosed { .. });
        kinds.push(mailwire::servers::transcript_line(&e).unwrap_or_default());
        if closed {
            break;
        }
    }
    assert!(
        kinds
            .first()
            .is_some_and(|k| k.contains("connected from 127.0.0.1")),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k.ends_with("C: QUIT")), "{kinds:?}");
    assert!(
        kinds
            .last()
            .is_some_and(|k| k.contains("closed: closed by the server after QUIT")),
        "{kinds:?}"
    );
}

#[test]
fn a_vanished_message_file_is_reported_without_server_paths() {
    let s = start_demo();
    let mut c = Raw::connect(s.pop3);
    c.line();
    c.cmd("USER mrose");
    assert!(c.cmd("PASS tanstaaf").starts_with("+OK"));
    // Someone removes the files behind the session's back.
    for f in s.maildir_files("mrose") {
        std::fs::remove_file(f).unwrap();
    }
    let reply = c.cmd("RETR 1");
    assert!(
        reply.starts_with("-ERR [SYS/TEMP] cannot read message 1: could not "),
        "{reply}"
    );
    let data = s.data().to_string_lossy().into_owned();
    assert!(
        !reply.contains(&data),
        "the reply shows a server path: {reply}"
    );
    // The session goes on.
    assert!(c.cmd("NOOP").starts_with("+OK"));
}
