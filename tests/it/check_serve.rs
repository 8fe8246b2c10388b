//! `mailwire serve --broken NAME`: a replay server for outside clients. The checker run
//! against it fails exactly the check that names the seed's flaw, and Python's poplib (a
//! real client) trips over the same flaw; `--help` lists the names with their flaws.

// Test helpers: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{self, MAILWIRE, Spawned, TempDir};

/// `mailwire serve --broken NAME` on free ports: the child and its POP3 and SMTP addresses
/// (read from its "Check it: mailwire check --pop3 A --smtp B ..." line).
fn serve_broken(name: &str) -> (Spawned, String, String) {
    let mut child = Spawned::new(
        Command::new(MAILWIRE)
            .args([
                "serve",
                "--broken",
                name,
                "--pop3",
                "127.0.0.1:0",
                "--smtp",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    for _ in 0..4 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        seen.push_str(&line);
        if let Some(rest) = line.strip_prefix("Check it: mailwire check ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let after = |flag: &str| {
                let i = words.iter().position(|w| *w == flag).unwrap();
                words[i + 1].to_string()
            };
            // Keep the pipe drained so the server never blocks on its output.
            std::thread::spawn(move || for _ in out.lines() {});
            return (child, after("--pop3"), after("--smtp"));
        }
    }
    panic!("no address line from serve --broken {name}:\n{seen}");
}

#[test]
fn the_checker_finds_exactly_the_class_projects_flaw_and_poplib_trips_on_it() {
    let (mut child, pop3, smtp) = serve_broken("class-project");
    let dir = TempDir::new("serve-broken");
    let json = dir.path().join("r.json");
    let out = common::run_with_input(
        Command::new(MAILWIRE).args([
            "check",
            "--pop3",
            &pop3,
            "--smtp",
            &smtp,
            "--user",
            "student",
            "--pass",
            "student",
            "--timeout",
            "2",
            "--json",
            json.to_str().unwrap(),
        ]),
        "",
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let failed = common::run_program(
        "python3",
        &[
            "-c",
            "import json,sys\n\
             c=json.load(open(sys.argv[1]))['checks']\n\
             print(' '.join(x['id'] for x in c if x['verdict']=='fail'))",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(failed.trim(), "pop3.multiline-end", "{stdout}");
    // A real client: poplib reads "2.txt 8" where it wants +OK.
    let symptom = common::run_program(
        "python3",
        &[
            "-c",
            "import poplib,sys\n\
             h,p=sys.argv[1].rsplit(':',1)\n\
             c=poplib.POP3(h,int(p),timeout=5)\n\
             c.user('student'); c.pass_('student')\n\
             try:\n  c.list(); print('no error')\n\
             except poplib.error_proto as e: print('error_proto', e)\n",
            &pop3,
        ],
        Duration::from_secs(30),
    );
    assert!(symptom.starts_with("error_proto b'"), "{symptom}");
    assert!(symptom.contains(".txt "), "{symptom}");
    assert!(
        child.stop(libc::SIGTERM, Duration::from_secs(10)).is_some(),
        "serve --broken did not stop on SIGTERM"
    );
}

#[test]
fn help_lists_the_broken_servers_and_a_wrong_name_is_refused() {
    let help = common::run_program(MAILWIRE, &["serve", "--help"], Duration::from_secs(20));
    for name in ["class-project", "assignment", "kilroy"] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("- {name}:"))),
            "{name} not listed:\n{help}"
        );
    }
    let out = common::run_with_input(
        Command::new(MAILWIRE).args(["serve", "--broken", "nobody"]),
        "",
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("class-project"));
}
