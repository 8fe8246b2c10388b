//! Every built-in scenario on real sockets (servers on 127.0.0.1, the client over TCP):
//! every expectation holds, and the transcript is the in-memory one (but for the Received
//! header's id, which counts sessions per process, and the fresh APOP timestamps).
//!
//! That count is process-wide and the id's length shows in the message sizes (`+OK 1 261`),
//! so each scenario's comparison runs in a process of its own, where the count starts at 1
//! as it would for a user: this test binary, filtered to `sockets_child`. (In the shared
//! test process other tests' sessions would have counted it up, and so would the scenarios
//! before it: from the tenth session on, the id has two digits.)

use std::process::Command;
use std::time::Duration;

use mailwire::scenario::{self, format};

use crate::common;

/// `sockets_child` does its work only when this is set (to the scenario's name).
const CHILD_ENV: &str = "MAILWIRE_SOCKETS_CHILD";

fn normalized(text: &str) -> String {
    text.lines()
        .map(|l| {
            for with in [" with ESMTP id ", " with SMTP id "] {
                if let Some(at) = l.find(with) {
                    return format!("{}{with}<n>;", &l[..at]);
                }
            }
            // Fresh APOP timestamps (RFC 1939 section 7) differ between a run in memory and
            // one on sockets, and so do the digests made from them.
            if l.to_ascii_lowercase()
                .starts_with("s: +ok pop3 server ready <")
                && let Some(at) = l.find('<')
            {
                return format!("{}<timestamp>", &l[..at]);
            }
            // SCRAM's nonces and salt are fresh on sockets (RFC 5802 section 5.1), fixed in
            // memory: its base64 lines differ ("Yz1i" is base64 of the client-final's "c=bi").
            if l.starts_with("C: AUTH SCRAM-SHA-256 ") {
                return "C: AUTH SCRAM-SHA-256 <client-first>".to_string();
            }
            if l.starts_with("S: + ") || l.starts_with("S: 334 ") || l.starts_with("C: Yz1i") {
                return format!("{} <scram>", &l[..2]);
            }
            if let Some(rest) = l.strip_prefix("C: APOP ")
                && let Some((name, _digest)) = rest.split_once(' ')
            {
                return format!("C: APOP {name} <digest>");
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_builtin_scenario_passes_on_sockets_like_in_memory() {
    let exe = std::env::current_exe().unwrap();
    for (name, _) in format::BUILTIN {
        // A scenario that loses a segment on purpose does it with a netfilter rule, which
        // only mailwire's private network allows: its child runs in one, as `mailwire run`
        // would.
        let needs_private_network = format::find(name)
            .unwrap()
            .steps
            .iter()
            .any(|s| matches!(s.action, format::Action::LoseNextFromServer));
        let mut command = if needs_private_network {
            let mut c = mailwire::capture::sandbox::sandboxed_command(&exe);
            c.env(mailwire::capture::sandbox::SANDBOX_ENV, "1");
            c
        } else {
            Command::new(&exe)
        };
        let out = common::run_with_input(
            command
                .args([
                    "--exact",
                    "scenarios_sockets::sockets_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, name),
            "",
            Duration::from_secs(120),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "{name}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The comparison, in the child process started by the test above.
#[test]
fn sockets_child() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut failures = Vec::new();
    {
        let s = format::find(&name).unwrap();
        let on_sockets = scenario::run_on_sockets(&s).unwrap();
        for o in &on_sockets {
            if let Err(why) = &o.check {
                failures.push(format!("{name} step {}: {why}", o.index + 1));
            }
        }
        let in_memory = scenario::run_in_memory(&s).unwrap();
        assert_eq!(
            normalized(&scenario::transcript(&s, &on_sockets)),
            normalized(&scenario::transcript(&s, &in_memory)),
            "{name}: sockets and memory differ"
        );
    }
    assert!(
        failures.is_empty(),
        "expectations failed:\n{}",
        failures.join("\n")
    );
}
