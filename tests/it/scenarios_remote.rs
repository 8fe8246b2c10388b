//! A connect step with `to` reaches another server: here a second, independent mailwire
//! server pair with the demo mailboxes stands in for a student's server or Dovecot. The
//! scenario's expectations hold, and, when this process may capture (root or CAP_NET_RAW),
//! the recorder widened its capture to the other server's port, so every exchange of the
//! remote connection is linked to the captured unit that carried it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::Arc;

use mailwire::scenario::live::LiveServers;
use mailwire::scenario::recorder::{Recorder, RecorderOptions};
use mailwire::scenario::{Scenario, WorkDir, run_in_memory, run_on_sockets};
use mailwire::servers::ServerConfig;

/// Another server pair on free loopback ports, with the demo users (mrose/tanstaaf).
fn other_servers() -> (WorkDir, LiveServers) {
    let dir = WorkDir::new().unwrap();
    let store = mailwire::store::create_demo(dir.path()).unwrap();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let servers = LiveServers::start(Arc::new(store), ServerConfig::default(), any, any).unwrap();
    (dir, servers)
}

fn scenario(to: SocketAddr) -> Scenario {
    let text = format!(
        r#"
title = "Another server"
description = "The client logs in to a server that is not the scenario's own."
protocols = ["pop3"]
[fixture]

[[step]]
caption = "Connect to the other server."
connect = "pop3"
to = "{to}"
expect = "+OK"

[[step]]
caption = "Log in there."
login = {{ user = "mrose", password = "tanstaaf" }}
expect = "+OK"
expect_text = "+OK mrose's maildrop has 2 messages"

[[step]]
caption = "Sign off."
quit = true
expect = "+OK"
"#
    );
    Scenario::parse(&text, "remote.toml").unwrap()
}

#[test]
fn a_connect_step_with_to_reaches_the_other_server() {
    let (_dir, other) = other_servers();
    let s = scenario(other.pop3_addr());
    for o in run_on_sockets(&s).unwrap() {
        assert!(o.check.is_ok(), "step {}: {:?}", o.index + 1, o.check);
    }
    // In memory there is no other server to reach: the step says so.
    let in_memory = run_in_memory(&s).unwrap();
    let why = in_memory[0].check.as_ref().unwrap_err();
    assert_eq!(
        why,
        &mailwire::exchange::StepError::Transport(
            mailwire::exchange::TransportError::NoOtherServersInMemory
        )
    );
    assert!(
        why.to_string().contains("cannot reach another server"),
        "{why}"
    );
}

#[test]
fn the_recorder_captures_the_other_servers_port_too() {
    let (_dir, other) = other_servers();
    let s = scenario(other.pop3_addr());
    let mut r = Recorder::start(&s, &RecorderOptions::default()).unwrap();
    let capturing = r.timeline().capture_status().is_capturing();
    while r.step().is_some() {}
    let status = r.timeline().capture_status().describe();
    let t = r.finish();
    for (i, step) in t.steps.iter().enumerate() {
        assert!(
            step.outcome.check.is_ok(),
            "step {}: {:?}",
            i + 1,
            step.outcome.check
        );
    }
    if !capturing {
        eprintln!("SKIPPED capture check: {}", t.capture_status().describe());
        return;
    }
    assert!(
        status.contains(&other.pop3_addr().port().to_string()),
        "the status names the watched port: {status}"
    );
    for (i, step) in t.steps.iter().enumerate() {
        for (k, exchange) in step.outcome.exchanges.iter().enumerate() {
            let unit = t.unit(i, k).unwrap_or_else(|| {
                panic!(
                    "step {} exchange {k} ({}) has no captured unit",
                    i + 1,
                    exchange.line
                )
            });
            assert_eq!(unit.text, exchange.line, "step {}", i + 1);
        }
    }
}
