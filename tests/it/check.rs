//! `mailwire check`, calibrated: mailwire's own servers and Dovecot pass every `must`;
//! servers with one planted defect fail exactly the checks that name it; a server that
//! never greets ends the run quickly; the replay servers show their seed's flaw; the JSON
//! and JUnit files parse.
//!
//! The planted defects are mailwire's servers behind a small proxy of this file that
//! rewrites one thing (drops a ".", turns CRLF into LF, answers DATA with 250, lets
//! "\n.\n" end the data, swallows an unknown command).

// Test helpers: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailwire::check::replay::{self, Flaw};
use mailwire::check::{self, ExitStatus, Report, Settings, Verdict};

use crate::common::{self, MAILWIRE, TempDir};

fn settings(pop3: Option<SocketAddr>, smtp: Option<SocketAddr>) -> Settings {
    Settings {
        pop3: pop3.map(|a| a.to_string()),
        smtp: smtp.map(|a| a.to_string()),
        user: "student".into(),
        pass: "student".into(),
        rcpt: "student@localhost".into(),
        allow_delete: false,
        timeout: Duration::from_secs(2),
    }
}

fn run(s: &Settings) -> Report {
    check::run(s, &mut |_| {})
}

fn set(ids: &[&'static str]) -> BTreeSet<&'static str> {
    ids.iter().copied().collect()
}

fn failed(report: &Report) -> BTreeSet<&'static str> {
    report.ids_with("fail").into_iter().collect()
}

fn show(report: &Report) -> String {
    let mut out = String::new();
    for c in &report.checks {
        out.push_str(&format!("{c}\n    {}\n", c.verdict.reason()));
    }
    out + &report.details()
}

#[test]
fn mailwire_servers_pass_every_check() {
    let servers = common::start_demo();
    let report = run(&settings(Some(servers.pop3), Some(servers.smtp)));
    assert!(report.checks.len() >= 30, "{}", report.checks.len());
    assert_eq!(
        report.exit_status(),
        ExitStatus::Passed,
        "{}",
        show(&report)
    );
    let not_passed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .map(|c| c.info.id)
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:?}\n{}", show(&report));
    // The checker's own mail was read back and deleted again.
    let own = servers
        .maildir_files("student")
        .into_iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("mailwire check ")
        })
        .count();
    assert_eq!(own, 0, "the checker left its mail behind");
}

#[test]
fn dovecot_passes_every_must() {
    if !Path::new("/usr/sbin/dovecot").exists() {
        eprintln!("SKIPPED: /usr/sbin/dovecot is missing (apt-get install dovecot-pop3d)");
        return;
    }
    let dovecot = crate::client_dovecot::Dovecot::start("check");
    let s = Settings {
        pop3: Some(dovecot.addr.clone()),
        smtp: None,
        user: "alice".into(),
        pass: "secret".into(),
        rcpt: "alice@localhost".into(),
        allow_delete: true,
        timeout: Duration::from_secs(5),
    };
    let report = run(&s);
    assert_eq!(
        report.exit_status(),
        ExitStatus::Passed,
        "{}",
        show(&report)
    );
    assert!(failed(&report).is_empty(), "{}", show(&report));
    // Dovecot does not lock the maildrop by default (pop3_lock_session = no): a warning.
    assert_eq!(
        report.get("pop3.lock").map(|c| c.verdict.label()),
        Some("warn")
    );
    assert_eq!(
        report.get("pop3.byte-stuffing").map(|c| c.verdict.label()),
        Some("pass")
    );
    assert_eq!(
        report.get("pop3.quit-deletes").map(|c| c.verdict.label()),
        Some("pass")
    );
}

/// How a planted defect rewrites a connection: the client's lines going up, the server's
/// lines coming down (with the command each reply answers, for POP3).
#[derive(Clone, Copy)]
enum Defect {
    /// LIST's listing without its final ".".
    ListWithoutDot,
    /// Every reply line ends with a bare LF.
    BareLf,
    /// DATA answered 250 at once, no 354, nothing after the message.
    DataWithout354,
    /// "\n.\n" ends the data (the proxy turns it into CRLF.CRLF on the way up).
    LfDotLfEndsData,
    /// An unknown command is dropped: the server never sees it, never answers.
    DropsUnknownCommand,
}

/// mailwire's server at `upstream` behind a proxy planting `defect`; lives as long as the
/// test (its threads end with their connections).
fn planted(upstream: SocketAddr, defect: Defect) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let server = TcpStream::connect(upstream).unwrap();
            relay(client, server, defect);
        }
    });
    addr
}

fn relay(client: TcpStream, server: TcpStream, defect: Defect) {
    let commands: Arc<Mutex<VecDeque<Vec<u8>>>> = Arc::default();
    let noted = Arc::clone(&commands);
    let mut server_w = server.try_clone().unwrap();
    let mut client_w = client.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(client);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let out = match defect {
                Defect::LfDotLfEndsData if line == b".\n" => b"\r\n.\r\n".to_vec(),
                Defect::DropsUnknownCommand if line.starts_with(b"XYZZY") => continue,
                _ => line.clone(),
            };
            noted.lock().unwrap().push_back(line.clone());
            if server_w.write_all(&out).is_err() {
                break;
            }
        }
        let _ = server_w.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let mut reader = BufReader::new(server);
        let mut line = Vec::new();
        let mut greeted = false;
        let mut in_list = false;
        let mut in_body = false;
        let mut swallow = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let out: Vec<u8> = match defect {
                Defect::BareLf => [line.strip_suffix(b"\r\n").unwrap_or(&line), b"\n"].concat(),
                Defect::DataWithout354 if line.starts_with(b"354") => {
                    swallow = true;
                    b"250 OK Message accepted for delivery\r\n".to_vec()
                }
                Defect::DataWithout354 if swallow => {
                    swallow = false;
                    Vec::new()
                }
                Defect::ListWithoutDot => {
                    if !greeted {
                        greeted = true;
                        line.clone()
                    } else if in_body {
                        if line == b".\r\n" {
                            in_body = false;
                            if std::mem::take(&mut in_list) {
                                Vec::new()
                            } else {
                                line.clone()
                            }
                        } else {
                            line.clone()
                        }
                    } else {
                        let cmd = commands.lock().unwrap().pop_front().unwrap_or_default();
                        let cmd = String::from_utf8_lossy(&cmd).trim().to_ascii_uppercase();
                        if line.starts_with(b"+OK") {
                            in_list = cmd == "LIST";
                            in_body = in_list
                                || cmd == "UIDL"
                                || cmd == "CAPA"
                                || cmd.starts_with("RETR ")
                                || cmd.starts_with("TOP ");
                        }
                        line.clone()
                    }
                }
                _ => line.clone(),
            };
            if !out.is_empty() && client_w.write_all(&out).is_err() {
                break;
            }
        }
        let _ = client_w.shutdown(Shutdown::Both);
    });
}

/// Runs the checks on a planted POP3 or SMTP server and returns the failed checks.
fn fails_with(defect: Defect, protocol_pop3: bool) -> (BTreeSet<&'static str>, Report) {
    let servers = common::start_demo();
    let mut s = if protocol_pop3 {
        settings(Some(planted(servers.pop3, defect)), None)
    } else {
        settings(None, Some(planted(servers.smtp, defect)))
    };
    s.allow_delete = true;
    let report = run(&s);
    (failed(&report), report)
}

#[test]
fn a_listing_without_its_dot_fails_the_multiline_check() {
    let (fails, report) = fails_with(Defect::ListWithoutDot, true);
    assert_eq!(fails, set(&["pop3.multiline-end"]), "{}", show(&report));
    let why = report
        .get("pop3.multiline-end")
        .unwrap()
        .verdict
        .reason()
        .to_string();
    assert!(why.contains("no line holding only \".\""), "{why}");
}

#[test]
fn bare_lf_line_ends_fail_the_line_end_check() {
    let (fails, report) = fails_with(Defect::BareLf, true);
    assert_eq!(fails, set(&["pop3.line-ends"]), "{}", show(&report));
    let (fails, report) = fails_with(Defect::BareLf, false);
    assert_eq!(fails, set(&["smtp.line-ends"]), "{}", show(&report));
}

#[test]
fn data_without_354_fails_the_354_check() {
    let (fails, report) = fails_with(Defect::DataWithout354, false);
    assert_eq!(fails, set(&["smtp.data-354"]), "{}", show(&report));
    assert!(
        matches!(report.get("smtp.data-end").unwrap().verdict, Verdict::Skip(ref why) if why.contains("smtp.data-354")),
        "{}",
        show(&report)
    );
}

#[test]
fn lf_dot_lf_ending_data_fails_the_smuggling_check() {
    let (fails, report) = fails_with(Defect::LfDotLfEndsData, false);
    assert_eq!(fails, set(&["smtp.no-smuggling"]), "{}", show(&report));
}

#[test]
fn a_dropped_unknown_command_fails_the_unknown_command_check() {
    let (fails, report) = fails_with(Defect::DropsUnknownCommand, true);
    assert_eq!(fails, set(&["pop3.unknown-command"]), "{}", show(&report));
    let why = report
        .get("pop3.unknown-command")
        .unwrap()
        .verdict
        .reason()
        .to_string();
    assert!(why.contains("sent nothing"), "{why}");
}

#[test]
fn replay_servers_show_their_seeds_flaw() {
    for (flaw, must_fail) in [
        (Flaw::ClassProject, &["pop3.multiline-end"][..]),
        (Flaw::Assignment, &["smtp.data-354"][..]),
        (
            Flaw::Kilroy,
            &[
                "pop3.login-failure",
                "pop3.status-indicators",
                "pop3.unknown-command",
            ][..],
        ),
    ] {
        let r = replay::start(flaw).unwrap();
        let mut s = settings(Some(r.pop3), Some(r.smtp));
        (s.user, s.pass, s.rcpt) = (r.user.into(), r.pass.into(), r.rcpt.into());
        let report = run(&s);
        let fails = failed(&report);
        assert_eq!(
            report.exit_status(),
            ExitStatus::MustFailed,
            "{}",
            flaw.name()
        );
        for id in must_fail {
            assert!(
                fails.contains(id),
                "{}: {id} did not fail\n{}",
                flaw.name(),
                show(&report)
            );
        }
        if flaw != Flaw::Kilroy {
            assert_eq!(fails.len(), 1, "{}: {fails:?}", flaw.name());
        }
        // Every failure is of the flawed protocol.
        let prefix = match flaw.protocol() {
            mailwire::proto::Protocol::Pop3 => "pop3.",
            mailwire::proto::Protocol::Smtp => "smtp.",
        };
        assert!(
            fails.iter().all(|id| id.starts_with(prefix)),
            "{}: {fails:?}",
            flaw.name()
        );
    }
}

#[test]
fn a_server_that_never_greets_ends_the_run_quickly() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let start = Instant::now();
    let out = common::run_with_input(
        std::process::Command::new(MAILWIRE).args([
            "check",
            "--pop3",
            &addr,
            "--smtp",
            &addr,
            "--user",
            "u",
            "--pass",
            "p",
            "--timeout",
            "2",
        ]),
        "",
        Duration::from_secs(60),
    );
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("fail  must   pop3.greeting"), "{stdout}");
    assert!(stdout.contains("no greeting within 2.0 s"), "{stdout}");
}

#[test]
fn no_server_to_reach_exits_2() {
    let (_socket, refusing) = common::refusing_address();
    let out = common::run_with_input(
        std::process::Command::new(MAILWIRE).args([
            "check",
            "--pop3",
            &refusing.to_string(),
            "--user",
            "u",
            "--pass",
            "p",
        ]),
        "",
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let usage = common::run_with_input(
        std::process::Command::new(MAILWIRE).args(["check", "--user", "u"]),
        "",
        Duration::from_secs(20),
    );
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn json_and_junit_files_parse() {
    let servers = common::start_demo();
    let dir = TempDir::new("check-files");
    let json = dir.path().join("r.json");
    let junit = dir.path().join("r.xml");
    let out = common::run_with_input(
        std::process::Command::new(MAILWIRE).args([
            "check",
            "--pop3",
            &servers.pop3.to_string(),
            "--smtp",
            &servers.smtp.to_string(),
            "--user",
            "student",
            "--pass",
            "student",
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ]),
        "",
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let script = "import json, sys, xml.etree.ElementTree as E\n\
        d = json.load(open(sys.argv[1]))\n\
        c = d['checks']\n\
        assert len(c) >= 30, len(c)\n\
        assert all(set(x) >= {'id','protocol','rfc','level','verdict','sent','expected','got'} for x in c)\n\
        r = E.parse(sys.argv[2]).getroot()\n\
        assert r.tag == 'testsuites' and int(r.get('tests')) == len(c)\n\
        print(len(c), len(r.findall('.//testcase')))\n";
    let printed = common::run_program(
        "python3",
        &[
            "-c",
            script,
            json.to_str().unwrap(),
            junit.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    let counts: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(counts.first(), counts.get(1), "{printed}");
}

#[test]
fn junit_escapes_what_a_broken_server_sends() {
    // kilroy's replies carry quotes; the XML must still be well formed.
    let r = replay::start(Flaw::Kilroy).unwrap();
    let mut s = settings(Some(r.pop3), None);
    (s.user, s.pass) = (r.user.into(), r.pass.into());
    let report = run(&s);
    let dir = TempDir::new("check-junit");
    let path = dir.path().join("k.xml");
    std::fs::write(&path, report.to_junit()).unwrap();
    let out = common::run_program(
        "python3",
        &[
            "-c",
            "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(len(r.findall('.//failure')))",
            path.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert!(out.trim().parse::<usize>().unwrap() >= 3, "{out}");
}
