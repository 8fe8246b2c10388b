//! The `mailwire` binary as a user runs it: first run creates the demo data, SIGTERM stops
//! it cleanly, bad addresses are refused with a reason, import-assignment imports.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure should stop the test"
)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Raw, Spawned, TempDir};

const BIN: &str = common::MAILWIRE;

/// `mailwire serve` with `home` as HOME (first run: demo data), POP3 at `pop3`, SMTP on a
/// free port; its stdout as lines.
fn serve_in(home: &std::path::Path, pop3: &str) -> (Spawned, BufReader<std::process::ChildStdout>) {
    let mut child = Spawned::new(
        Command::new(BIN)
            .args(["serve", "--pop3", pop3, "--smtp", "127.0.0.1:0"])
            .env("HOME", home)
            .env_remove("XDG_DATA_HOME")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

/// The POP3 address of the ready line "POP3 on 127.0.0.1:N, SMTP on 127.0.0.1:M. ...".
fn pop3_of_banner(line: &str) -> Option<&str> {
    line.strip_prefix("POP3 on ")?.split(',').next()
}

#[test]
fn first_run_creates_demo_data_serves_it_and_stops_on_sigterm() {
    let home = TempDir::new("home");
    let (mut child, mut out) = serve_in(home.path(), "localhost:0");
    let mut banner = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        banner.push(line);
    }
    let data = home.path().join(".local/share/mailwire/data");
    assert_eq!(
        banner.first().map(String::as_str),
        Some(format!("created a demo data directory in {}\n", data.display()).as_str())
    );
    // The ports it was given.
    let pop3 = banner
        .iter()
        .find_map(|l| pop3_of_banner(l))
        .unwrap_or_else(|| panic!("no POP3 address in {banner:?}"));
    assert!(data.join("users.txt").is_file());

    let mut c = Raw::connect(pop3.parse().unwrap());
    assert!(c.line().starts_with("+OK POP3 server ready <"));
    c.cmd("USER mrose");
    assert_eq!(
        c.cmd("PASS tanstaaf"),
        "+OK mrose's maildrop has 2 messages (320 octets)\r\n"
    );
    assert_eq!(
        c.cmd("QUIT"),
        "+OK localhost POP3 server signing off (2 messages left)\r\n"
    );

    // The transcript shows the session.
    let mut transcript = String::new();
    while !transcript.contains("closed: closed by the server after QUIT") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        transcript.push_str(&line);
    }
    assert!(transcript.contains("C: USER mrose"), "{transcript}");
    assert!(transcript.contains("S: +OK mrose's maildrop has 2 messages (320 octets)"));

    child.signal(libc::SIGTERM);
    let status = child.wait_within(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(rest.contains("shutting down"), "{rest}");

    // Second run: the same data is used, not recreated. (A taken port makes it stop at once.)
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let second = Command::new(BIN)
        .args(["serve", "--pop3", &taken, "--smtp", &taken])
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(stdout.contains("using the data directory"), "{stdout}");
}

#[test]
fn non_loopback_address_needs_allow_remote() {
    let data = TempDir::new("remote");
    mailwire::store::create_demo(data.path()).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data"])
        .arg(data.path())
        .args(["--pop3", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen for POP3 on 0.0.0.0:0: it is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("--allow-remote"), "{err}");
}

#[test]
fn port_in_use_is_explained() {
    let data = TempDir::new("inuse");
    mailwire::store::create_demo(data.path()).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["serve", "--data"])
        .arg(data.path())
        .args(["--pop3", &addr, "--smtp", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for POP3 on {addr}")),
        "{err}"
    );
    assert!(err.contains("Another program"), "{err}");
}

#[test]
fn bad_users_file_is_reported_with_file_and_line() {
    let data = TempDir::new("badusers");
    std::fs::write(
        data.path().join("users.txt"),
        "mrose tanstaaf\n../evil pw\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data"])
        .arg(data.path())
        .args(["--pop3", "127.0.0.1:0", "--smtp", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("users.txt"), "{err}");
    assert!(err.contains("Line 2 of"), "{err}");
    assert!(!data.path().join("../evil").exists());
}

#[test]
fn import_assignment_then_serve_the_mail() {
    let src = TempDir::new("assign");
    std::fs::write(src.path().join("User.txt"), "ag agpass\ngb gbpass\n").unwrap();
    std::fs::create_dir_all(src.path().join("gb")).unwrap();
    std::fs::write(
        src.path().join("gb/MyMailBox.txt"),
        "From: ag@iit.edu\nTo: gb@iit.edu\nSubject: Test\nReceived: 12/10/2020 : 13 : 33\nHello gb\n.\n",
    )
    .unwrap();
    let data = TempDir::new("assign-data");
    let out = Command::new(BIN)
        .arg("import-assignment")
        .arg(src.path())
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported 2 user(s) and 1 message(s)"),
        "{stdout}"
    );

    let s = common::start_with(common::test_config(), |dir| {
        // Serve a copy of the imported data.
        copy_dir(data.path(), dir);
        mailwire::store::Store::open(dir).unwrap()
    });
    let mut c = Raw::connect(s.pop3);
    c.line();
    c.cmd("USER gb");
    assert!(
        c.cmd("PASS gbpass")
            .starts_with("+OK gb's maildrop has 1 message")
    );
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    let body = c.body().concat();
    assert_eq!(
        body,
        "From: ag@iit.edu\r\nTo: gb@iit.edu\r\nSubject: Test\r\nReceived: 12/10/2020 : 13 : 33\r\n\r\nHello gb\r\n"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn every_pop3_greeting_has_a_fresh_apop_timestamp() {
    // RFC 1939 section 7: the timestamp MUST be different each time the server greets.
    let s = common::start_demo();
    let greetings: Vec<String> = (0..3)
        .map(|_| {
            let mut c = Raw::connect(s.pop3);
            let line = c.line();
            c.send("QUIT\r\n");
            c.line();
            line
        })
        .collect();
    for g in &greetings {
        assert!(
            g.starts_with("+OK ") && g.contains('<') && g.contains('@'),
            "{g}"
        );
    }
    assert_ne!(greetings[0], greetings[1]);
    assert_ne!(greetings[1], greetings[2]);
    assert_ne!(greetings[0], greetings[2]);
}

#[test]
fn idle_session_is_logged_out_without_deleting() {
    let config = mailwire::servers::ServerConfig {
        idle_limit: Duration::from_millis(300),
        ..common::test_config()
    };
    let s = common::start_with(config, |dir| mailwire::store::create_demo(dir).unwrap());
    let before = s.maildir_files("mrose");
    let mut c = Raw::connect(s.pop3);
    c.line();
    // One write, so the idle timer only starts after the last reply.
    c.send("USER mrose\r\nPASS tanstaaf\r\nDELE 1\r\n");
    c.line();
    c.line();
    assert_eq!(c.line(), "+OK message 1 deleted\r\n");
    // Say nothing more: the autologout timer fires, and the server closes the connection
    // without sending any response (RFC 1939 section 3).
    assert_eq!(c.line(), "", "connection closed without a response");
    assert_eq!(s.maildir_files("mrose"), before);
}

#[test]
fn a_stopped_run_removes_its_temporary_folder() {
    let tmp = TempDir::new("run-stop");
    let folders = || -> Vec<String> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("mailwire-scenario-"))
            .collect()
    };
    // --step waits for Enter, which never comes: the run is stopped while it waits.
    let mut child = Spawned::new(
        Command::new(BIN)
            .args(["run", "rfc1939", "--step"])
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Enter for step 1") {
        let mut chunk = Vec::new();
        // The prompt has no line end: read up to its last word.
        if out.read_until(b')', &mut chunk).unwrap() == 0 {
            panic!("mailwire run ended before its first prompt: {seen}");
        }
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(folders().len(), 1, "{seen}");
    child.signal(libc::SIGINT);
    let status = child.wait_within(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(folders(), Vec::<String>::new());
}

#[test]
fn a_client_that_stops_reading_does_not_keep_the_maildrop_locked() {
    let config = mailwire::servers::ServerConfig {
        idle_limit: Duration::from_millis(500),
        ..common::test_config()
    };
    let s = common::start_with(config, |dir| {
        let store = mailwire::store::create_demo(dir).unwrap();
        // 1 MiB: forty RETRs of it are far more than the socket buffers hold.
        let line = "x".repeat(1022) + "\r\n";
        let big = format!("Subject: big\r\n\r\n{}", line.repeat(1024));
        store
            .deliver(&["mrose".to_string()], big.as_bytes())
            .unwrap();
        store
    });
    let mut greedy = Raw::connect(s.pop3);
    greedy.line();
    greedy.cmd("USER mrose");
    assert!(greedy.cmd("PASS tanstaaf").starts_with("+OK"));
    // Ask for 40 MiB and never read a byte of it.
    greedy.send(&"RETR 3\r\n".repeat(40));

    // The server gives up on the writes after the idle limit and unlocks the maildrop.
    let start = std::time::Instant::now();
    loop {
        let mut c = Raw::connect(s.pop3);
        c.line();
        c.cmd("USER mrose");
        let reply = c.cmd("PASS tanstaaf");
        if reply.starts_with("+OK") {
            break;
        }
        assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the maildrop is still locked after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(greedy);
}

#[test]
fn serve_keeps_serving_when_its_output_pipe_closes() {
    let home = TempDir::new("home-pipe");
    let (mut child, mut out) = serve_in(home.path(), "127.0.0.1:0");
    let mut pop3 = None;
    while pop3.is_none() {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "no banner");
        pop3 = pop3_of_banner(&line).map(|a| a.parse::<std::net::SocketAddr>().unwrap());
    }
    // Like `mailwire serve | head -3`: the reader goes away.
    drop(out);
    for _ in 0..3 {
        let mut c = Raw::connect(pop3.unwrap());
        assert!(c.line().starts_with("+OK"));
        c.cmd("USER mrose");
        assert!(c.cmd("PASS tanstaaf").starts_with("+OK"));
        assert!(c.cmd("QUIT").starts_with("+OK"));
    }
    child.signal(libc::SIGTERM);
    let status = child.wait_within(Duration::from_secs(10));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
