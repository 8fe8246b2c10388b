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

/// A POP3 server of our own for broken behaviour: it greets, answers each command line with
/// `answer(line)`, ends a connection after QUIT, and serves `connections` connections one
/// after the other, then ends.
fn line_server(connections: usize, answer: fn(&str) -> &'static [u8]) -> SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            let mut out = stream.try_clone().unwrap();
            out.write_all(b"+OK broken server ready\r\n").unwrap();
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if out.write_all(answer(&line)).is_err() || line == "QUIT" {
                    break;
                }
            }
        }
    });
    addr
}

/// Answers LIST without the final "." line, and every later command with "+OK 2 320".
fn server_without_final_dot() -> SocketAddr {
    line_server(1, |line| match line {
        "LIST" => b"+OK 2 messages\r\n1 120\r\n2 200\r\n",
        "QUIT" => b"+OK bye\r\n",
        _ => b"+OK 2 320\r\n",
    })
}

#[test]
fn a_reply_without_its_final_dot_is_diagnosed_and_the_next_replies_still_pair() {
    let to = server_without_final_dot();
    let text = format!(
        r#"
title = "A server that forgets the dot"
description = "LIST's reply never ends; the replies after it must still be read."
protocols = ["pop3"]
[fixture]

[[step]]
caption = "Connect."
connect = "pop3"
to = "{to}"
expect = "+OK"

[[step]]
caption = "LIST: the server sends two lines and no final dot."
send = "LIST"
expect = "+OK"

[[step]]
caption = "STAT still gets its own reply."
send = "STAT"
expect = "+OK"
expect_text = "+OK 2 320"

[[step]]
caption = "QUIT."
send = "QUIT"
expect = "+OK"
expect_text = "bye"
"#
    );
    let s = Scenario::parse(&text, "broken.toml").unwrap();
    let started = std::time::Instant::now();
    let outcomes = run_on_sockets(&s).unwrap();
    // LIST is diagnosed, not only timed out: what came, and the rule it broke.
    let list = &outcomes[1];
    match &list.check {
        Err(mailwire::exchange::StepError::Stalled {
            waiting_for,
            so_far: Some(so_far),
            ..
        }) => {
            assert_eq!(waiting_for, "the reply to LIST");
            assert!(
                so_far.contains("\"+OK 2 messages\" and 2 lines, but no \".\" line"),
                "{so_far}"
            );
            assert!(so_far.contains("RFC 1939 section 3"), "{so_far}");
        }
        other => panic!("LIST: {other:?}"),
    }
    // What arrived of it is shown as the reply, with its two lines and no invented ".".
    let reply = list.exchanges.last().unwrap();
    assert_eq!(reply.line, "+OK 2 messages");
    assert_eq!(reply.more, vec!["1 120", "2 200"]);
    assert_eq!(reply.octets, "+OK 2 messages\r\n1 120\r\n2 200\r\n".len());
    // The later replies pair with their own commands.
    assert!(outcomes[2].check.is_ok(), "STAT: {:?}", outcomes[2].check);
    assert!(outcomes[3].check.is_ok(), "QUIT: {:?}", outcomes[3].check);
    // The wait for the missing end is short: the server had clearly stopped.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// Answers NOOP without "+OK" or "-ERR"; two connections, one after the other.
fn server_with_statusless_noop() -> SocketAddr {
    line_server(2, |line| match line {
        "NOOP" => b"NOOP is fine\r\n",
        "QUIT" => b"+OK bye\r\n",
        _ => b"+OK 2 320\r\n",
    })
}

#[test]
fn a_server_that_breaks_the_protocol_ends_the_session_and_a_new_connect_starts_afresh() {
    use mailwire::exchange::StepError;
    let to = server_with_statusless_noop();
    let text = format!(
        r#"
title = "A server that answers without a status"
description = "NOOP's reply has neither +OK nor -ERR: the client gives the session up."
protocols = ["pop3"]
[fixture]

[[step]]
caption = "Connect."
connect = "pop3"
to = "{to}"
expect = "+OK"

[[step]]
caption = "NOOP: the server answers without a status."
send = "NOOP"
expect = "+OK"

[[step]]
caption = "The session is over on the client's side too."
send = "STAT"
expect = "+OK"

[[step]]
caption = "So a new connect is allowed, and works."
connect = "pop3"
to = "{to}"
expect = "+OK"

[[step]]
caption = "STAT on the new connection."
send = "STAT"
expect = "+OK"
expect_text = "+OK 2 320"
"#
    );
    let s = Scenario::parse(&text, "statusless.toml").unwrap();
    let outcomes = run_on_sockets(&s).unwrap();
    assert!(
        matches!(&outcomes[1].check, Err(StepError::Protocol(why)) if why.contains("NOOP is fine")),
        "NOOP: {:?}",
        outcomes[1].check
    );
    assert!(
        matches!(&outcomes[2].check, Err(StepError::NotConnected { .. })),
        "STAT after the broken reply: {:?}",
        outcomes[2].check
    );
    assert!(
        outcomes[3].check.is_ok(),
        "reconnect: {:?}",
        outcomes[3].check
    );
    assert!(outcomes[4].check.is_ok(), "STAT: {:?}", outcomes[4].check);
}
