//! The three login scenarios side by side (in clear, after STLS, with SCRAM-SHA-256), on
//! real sockets with live capture: what the packets carry, linked to the steps; the TLS
//! secrets the client kept; and the runs through `mailwire run`. In memory, the scenario
//! steps (`auth`, `starttls`, `tls = true`) are checked without a capture.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a failure should stop the test"
)]

use std::time::Duration;

use mailwire::exchange::ExchangeKind;
use mailwire::proto::sasl;
use mailwire::scenario::{self, format};
use mailwire::timeline::Timeline;

use crate::common;
use crate::frames::{TCP_ACK, TCP_SYN, contains_bytes, tcp_segment};

/// Every TCP payload of the capture, with whether the server sent it.
fn payloads(t: &Timeline, server_ports: &[u16]) -> Vec<(bool, Vec<u8>)> {
    t.packets
        .iter()
        .filter_map(|p| {
            let s = tcp_segment(&p)?;
            (!s.payload.is_empty())
                .then(|| (server_ports.contains(&s.src_port), s.payload.to_vec()))
        })
        .collect()
}

/// The servers' ports: where the clients' SYNs went.
fn server_ports(t: &Timeline) -> Vec<u16> {
    t.packets
        .iter()
        .filter_map(|p| {
            let s = tcp_segment(&p)?;
            (s.flags & (TCP_SYN | TCP_ACK) == TCP_SYN).then_some(s.dst_port)
        })
        .collect()
}

#[test]
fn in_clear_the_password_is_in_the_packets_and_base64_hides_nothing() {
    let Some(t) = common::record_with_capture("login-in-clear", "the clear login") else {
        return;
    };
    common::assert_every_step_passed("login-in-clear", &t);
    let all = payloads(&t, &server_ports(&t));
    assert!(
        all.iter()
            .any(|(from_server, p)| !from_server && contains_bytes(p, b"PASS builder\r\n")),
        "PASS builder is readable in a captured segment"
    );
    // AUTH PLAIN's initial response is in a packet, and decoding it gives the password.
    let plain = all
        .iter()
        .find(|(_, p)| contains_bytes(p, b"AUTH PLAIN "))
        .expect("the AUTH PLAIN segment");
    let line = String::from_utf8_lossy(&plain.1).trim_end().to_string();
    let b64 = line.strip_prefix("AUTH PLAIN ").unwrap();
    assert_eq!(b64, "AGJvYgBidWlsZGVy", "the value the caption quotes");
    assert_eq!(sasl::decode(b64).unwrap(), b"\0bob\0builder");
    // Nothing was encrypted: no secrets were kept, and every exchange is linked to the unit
    // the capture cut, with the same text.
    assert!(t.keylog.is_empty());
    for (i, step) in t.steps.iter().enumerate() {
        for (k, e) in step.outcome.exchanges.iter().enumerate() {
            let unit = t
                .unit(i, k)
                .unwrap_or_else(|| panic!("step {} {}", i + 1, e.line));
            assert_eq!(unit.text, e.line, "step {}", i + 1);
        }
    }
}

#[test]
fn after_stls_only_tls_records_cross_the_wire_and_the_secrets_are_kept() {
    let Some(t) = common::record_with_capture("login-after-stls", "the STLS login") else {
        return;
    };
    common::assert_every_step_passed("login-after-stls", &t);
    let ports = server_ports(&t);
    let all = payloads(&t, &ports);
    // In clear: the greeting, CAPA, STLS and its +OK. Then only TLS records: each segment
    // begins with a record header (content type 20 to 23, version 3.x).
    let ok_at = all
        .iter()
        .position(|(s, p)| *s && p.starts_with(b"+OK Begin TLS"))
        .expect("the +OK to STLS, in clear");
    assert!(all[..ok_at].iter().any(|(s, p)| !s && p == b"STLS\r\n"));
    let after = &all[ok_at + 1..];
    assert!(
        after.len() >= 8,
        "the handshake and the session: {}",
        after.len()
    );
    for (from_server, p) in after {
        assert!(
            matches!(p.first(), Some(20..=23)) && p.get(1) == Some(&3),
            "a TLS record (server: {from_server}): {:?}",
            String::from_utf8_lossy(&p[..p.len().min(20)])
        );
        for secret in [&b"builder"[..], b"PASS", b"USER bob", b"STAT"] {
            assert!(!contains_bytes(p, secret), "{secret:?} in clear after STLS");
        }
    }
    // The client's TLS 1.3 secrets are in the timeline, for the decryption of the view and
    // of an export.
    let labels: Vec<&str> = t
        .keylog
        .entries()
        .iter()
        .map(|e| e.label.as_str())
        .collect();
    for label in ["CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"] {
        assert!(labels.contains(&label), "{labels:?}");
    }
    // Steps before TLS link to their captured units; inside TLS the exchanges have no
    // place in the TCP stream, so they are not linked to a (TLS record) unit.
    let stls_step = t
        .steps
        .iter()
        .position(|s| {
            s.outcome
                .exchanges
                .first()
                .is_some_and(|e| e.line == "STLS")
        })
        .unwrap();
    for (i, step) in t.steps.iter().enumerate() {
        for (k, e) in step.outcome.exchanges.iter().enumerate() {
            if i <= stls_step {
                assert_eq!(t.unit(i, k).unwrap().text, e.line, "step {}", i + 1);
            } else {
                assert_eq!(e.stream, None, "step {} {}", i + 1, e.line);
            }
        }
    }
    // Each step inside TLS still has its own frames: the recorder waited until the capture
    // held every octet the client wrote and read, records included.
    for (i, step) in t.steps.iter().enumerate().skip(stls_step) {
        assert!(!step.frames.is_empty(), "step {} has no frames", i + 1);
    }
    let pass = t.steps[stls_step + 2].outcome.exchanges[2].line.clone();
    assert_eq!(pass, "PASS builder", "the client's own view still shows it");
}

#[test]
fn scram_sends_a_proof_not_the_password_and_the_decoder_pairs_the_challenges() {
    let Some(t) = common::record_with_capture("login-with-scram", "the SCRAM login") else {
        return;
    };
    common::assert_every_step_passed("login-with-scram", &t);
    let all = payloads(&t, &server_ports(&t));
    for (_, p) in &all {
        assert!(
            !contains_bytes(p, b"builder"),
            "the password never crosses the wire"
        );
    }
    let auth = t
        .steps
        .iter()
        .position(|s| {
            s.outcome
                .exchanges
                .first()
                .is_some_and(|e| e.line.starts_with("AUTH SCRAM-SHA-256 "))
        })
        .unwrap();
    let exchanges = &t.steps[auth].outcome.exchanges;
    let lines: Vec<&str> = exchanges.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(
        lines[1].starts_with("+ ") && lines[3].starts_with("+ "),
        "{lines:?}"
    );
    assert_eq!(
        lines[4], "",
        "the empty response after the server's signature"
    );
    assert!(lines[5].starts_with("+OK"));
    // What each base64 line says: the client's nonce, the server's salt and count, the
    // client's proof, the server's signature.
    let decoded = |l: &str| {
        let b64 = l.rsplit(' ').next().unwrap();
        String::from_utf8(sasl::decode(b64).unwrap()).unwrap()
    };
    assert!(decoded(lines[0]).starts_with("n,,n=bob,r="));
    assert!(decoded(lines[1]).contains(",i=4096"));
    assert!(decoded(lines[2]).starts_with("c=biws,r=") && decoded(lines[2]).contains(",p="));
    assert!(decoded(lines[3]).starts_with("v="));
    // Every line, challenges and responses included, is a captured unit with the same
    // text, paired in order (the decoder reads "+ " lines as AUTH continuations).
    for (k, e) in exchanges.iter().enumerate() {
        let unit = t.unit(auth, k).unwrap_or_else(|| panic!("{k}: {}", e.line));
        assert_eq!(unit.text, e.line, "exchange {k}");
        let client = e.kind == ExchangeKind::Command;
        assert_eq!(
            unit.kind == mailwire::decode::units::UnitKind::Reply,
            !client,
            "exchange {k}: {:?}",
            unit.kind
        );
    }
}

#[test]
fn the_three_scenarios_run_in_memory_as_on_sockets() {
    for name in ["login-in-clear", "login-after-stls", "login-with-scram"] {
        let s = format::find(name).unwrap();
        let memory = scenario::run_in_memory(&s).unwrap();
        for o in &memory {
            assert!(
                o.check.is_ok(),
                "{name} step {}: {:?}",
                o.index + 1,
                o.check
            );
        }
        let sockets = scenario::run_on_sockets(&s).unwrap();
        for o in &sockets {
            assert!(
                o.check.is_ok(),
                "{name} step {}: {:?}",
                o.index + 1,
                o.check
            );
        }
        let count = |outcomes: &[mailwire::exchange::StepOutcome]| -> Vec<usize> {
            outcomes.iter().map(|o| o.exchanges.len()).collect()
        };
        assert_eq!(count(&memory), count(&sockets), "{name}");
    }
}

#[test]
fn implicit_tls_and_smtp_starttls_with_auth_steps() {
    let toml = r#"
title = "TLS ports and STARTTLS"
description = "Implicit TLS for POP3, STARTTLS and AUTH for SMTP."
protocols = ["pop3", "smtp"]
[fixture]
[[fixture.user]]
name = "bob"
password = "builder"

[[step]]
caption = "POP3S: TLS first"
connect = "pop3"
tls = true
expect = "+OK"

[[step]]
caption = "AUTH LOGIN inside TLS"
auth = { mechanism = "LOGIN", user = "bob", password = "builder" }
expect = "+OK"

[[step]]
caption = "QUIT"
quit = true
expect = "+OK"

[[step]]
session = "smtp"
caption = "SMTP"
connect = "smtp"
expect = "220"

[[step]]
session = "smtp"
caption = "EHLO"
send = "EHLO client.example"
expect = "250"

[[step]]
session = "smtp"
caption = "STARTTLS"
starttls = true
expect = "220"

[[step]]
session = "smtp"
caption = "EHLO again (RFC 3207 section 4.2)"
send = "EHLO client.example"
expect = "250"

[[step]]
session = "smtp"
caption = "AUTH CRAM-MD5"
auth = { mechanism = "CRAM-MD5", user = "bob", password = "builder" }
expect = "235"

[[step]]
session = "smtp"
caption = "AUTH again is refused: already authenticated"
auth = { mechanism = "SCRAM-SHA-256", user = "bob", password = "builder" }
expect = "503"

[[step]]
session = "smtp"
caption = "QUIT"
quit = true
expect = "221"
"#;
    let s = format::Scenario::parse(toml, "inline").unwrap();
    assert!(s.uses_tls());
    for (how, outcomes) in [
        ("memory", scenario::run_in_memory(&s).unwrap()),
        ("sockets", scenario::run_on_sockets(&s).unwrap()),
    ] {
        for o in &outcomes {
            assert!(o.check.is_ok(), "{how} step {}: {:?}", o.index + 1, o.check);
        }
        // The STARTTLS step's exchanges are in clear; the EHLO after it lists no STARTTLS.
        let ehlo_again = &outcomes[6].exchanges;
        assert!(
            ehlo_again
                .iter()
                .all(|e| !e.line.contains("STARTTLS")
                    && e.more.iter().all(|l| !l.contains("STARTTLS"))),
            "{how}: {ehlo_again:?}"
        );
        let before = &outcomes[4].exchanges;
        assert!(
            before
                .iter()
                .any(|e| e.more.iter().any(|l| l.contains("STARTTLS"))),
            "{how}: {before:?}"
        );
    }
}

#[test]
fn a_scenario_without_tls_gets_servers_that_offer_none() {
    // Its servers have no certificate, in memory as on sockets: CAPA lists no STLS, so the
    // snapshots of the other scenarios stay as they were.
    let toml = r#"
title = "No TLS here"
description = "CAPA only."
protocols = ["pop3"]
[fixture]
[[fixture.user]]
name = "bob"
password = "builder"

[[step]]
caption = "connect"
connect = "pop3"
expect = "+OK"

[[step]]
caption = "CAPA"
send = "CAPA"
expect = "+OK"
"#;
    let s = format::Scenario::parse(toml, "inline").unwrap();
    assert!(!s.uses_tls());
    for outcomes in [
        scenario::run_on_sockets(&s).unwrap(),
        scenario::run_in_memory(&s).unwrap(),
    ] {
        let capa = &outcomes[1].exchanges[1];
        assert!(capa.more.iter().any(|l| l == "USER"), "{capa:?}");
        assert!(capa.more.iter().all(|l| l != "STLS"), "{capa:?}");
    }
}

#[test]
fn mailwire_run_prints_the_tls_steps_and_writes_the_capture() {
    let dir = common::TempDir::new("run-tls");
    let pcap = dir.path().join("stls.pcapng");
    let out = crate::children::run_with_input(
        std::process::Command::new(crate::children::MAILWIRE).args([
            "run",
            "login-after-stls",
            "--pcap",
            pcap.to_str().unwrap(),
        ]),
        "",
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::assert_in_order(
        &stdout,
        &[
            "C: STLS",
            "S: +OK Begin TLS negotiation",
            "C: PASS builder   [inside TLS: encrypted on the wire]",
            "S: +OK 1 ",
        ],
    );
    assert!(
        stdout.contains("C: STLS   [frame "),
        "before TLS, linked: {stdout}"
    );
    // The capture was written (mailwire run captures in its private network).
    assert!(pcap.exists(), "{stdout}");
    let bytes = std::fs::read(&pcap).unwrap();
    assert!(bytes.len() > 1000, "{} octets", bytes.len());
}

#[test]
fn submission_inside_starttls_and_reading_over_pop3s_leave_nothing_readable() {
    let Some(t) = common::record_with_capture("submission-tls", "the TLS submission") else {
        return;
    };
    common::assert_every_step_passed("submission-tls", &t);
    let all = payloads(&t, &server_ports(&t));
    // In clear: only the SMTP greeting, the first EHLO and its reply, STARTTLS and its 220.
    for secret in [
        &b"AUTH PLAIN AG"[..],
        b"AGFsaWNlAHdvbmRlcmxhbmQ=",
        b"Nobody on the wire",
        b"PASS builder",
        b"POP3 server ready",
    ] {
        assert!(
            all.iter().all(|(_, p)| !contains_bytes(p, secret)),
            "{:?} crossed in clear",
            String::from_utf8_lossy(secret)
        );
    }
    assert!(all.iter().any(|(_, p)| p == b"STARTTLS\r\n"));
    // Two TLS sessions (SMTP after STARTTLS, POP3S), both with their secrets in the timeline.
    let randoms: std::collections::HashSet<&[u8]> = t
        .keylog
        .entries()
        .iter()
        .map(|e| e.client_random.as_slice())
        .collect();
    assert_eq!(randoms.len(), 2, "{:?}", t.keylog);
    // The implicit-TLS connection's greeting has no place in the TCP stream to link.
    let pop3s = t
        .steps
        .iter()
        .position(|s| s.outcome.session == "pop3s")
        .unwrap();
    assert_eq!(t.steps[pop3s].outcome.exchanges[0].stream, None);
    assert!(
        !t.steps[pop3s].frames.is_empty(),
        "its handshake was captured with it"
    );
}

#[test]
fn smtp_auth_in_clear_is_cut_into_334_challenges_and_answers() {
    // The decoder reads SMTP AUTH LOGIN's 334 challenges and the client's base64 lines
    // as units paired in order (RFC 4954 section 4), as the client logged them.
    let toml = r#"
title = "SMTP AUTH LOGIN in clear"
description = "334 continuations."
protocols = ["smtp"]
[fixture]
[[fixture.user]]
name = "bob"
password = "builder"

[[step]]
caption = "connect"
connect = "smtp"
expect = "220"

[[step]]
caption = "EHLO"
send = "EHLO client.example"
expect = "250"

[[step]]
caption = "AUTH LOGIN"
auth = { mechanism = "LOGIN", user = "bob", password = "builder" }
expect = "235"

[[step]]
caption = "QUIT"
quit = true
expect = "221"
"#;
    use mailwire::scenario::recorder::{Recorder, RecorderOptions};
    let s = format::Scenario::parse(toml, "inline").unwrap();
    let mut r = Recorder::start(&s, &RecorderOptions::default()).unwrap();
    if !r.timeline().capture_status().is_capturing() {
        eprintln!("SKIPPED the SMTP AUTH capture check: no capture rights");
        return;
    }
    while r.step().is_some() {}
    let t = r.finish();
    common::assert_every_step_passed("inline", &t);
    let lines: Vec<&str> = t.steps[2]
        .outcome
        .exchanges
        .iter()
        .map(|e| e.line.as_str())
        .collect();
    assert_eq!(
        lines,
        [
            "AUTH LOGIN",
            "334 VXNlcm5hbWU6",
            "Ym9i",
            "334 UGFzc3dvcmQ6",
            "YnVpbGRlcg==",
            "235 2.7.0 Authentication successful"
        ]
    );
    for (k, e) in t.steps[2].outcome.exchanges.iter().enumerate() {
        let unit = t.unit(2, k).unwrap_or_else(|| panic!("{k}: {}", e.line));
        assert_eq!(unit.text, e.line);
        let client = e.kind == ExchangeKind::Command;
        assert_eq!(
            matches!(
                unit.kind,
                mailwire::decode::units::UnitKind::Command
                    | mailwire::decode::units::UnitKind::AuthData
            ),
            client,
            "{k}: {:?}",
            unit.kind
        );
    }
}

#[test]
fn stls_starttls_and_auth_typed_as_raw_lines_work_as_in_a_console() {
    // What a student types in the window's console: STLS and STARTTLS as raw lines start
    // the handshake once accepted, and lines typed after a "+ " or 334 challenge answer it.
    let toml = r#"
title = "Typed by hand"
description = "Raw lines."
protocols = ["pop3", "smtp"]
[fixture]
[[fixture.user]]
name = "bob"
password = "builder"

[[step]]
caption = "connect"
connect = "pop3"
expect = "+OK"

[[step]]
caption = "STLS typed"
send = "stls"
expect = "+OK"

[[step]]
caption = "AUTH PLAIN without an initial response"
send = "AUTH PLAIN"
expect = "+"

[[step]]
caption = "the response, typed in base64"
send = "AGJvYgBidWlsZGVy"
expect = "+OK"

[[step]]
caption = "QUIT"
quit = true
expect = "+OK"

[[step]]
session = "smtp"
caption = "connect"
connect = "smtp"
expect = "220"

[[step]]
session = "smtp"
caption = "EHLO"
send = "EHLO x"
expect = "250"

[[step]]
session = "smtp"
caption = "STARTTLS typed"
send = "STARTTLS"
expect = "220"

[[step]]
session = "smtp"
caption = "EHLO again"
send = "EHLO x"
expect = "250"

[[step]]
session = "smtp"
caption = "AUTH LOGIN typed"
send = "AUTH LOGIN"
expect = "334"

[[step]]
session = "smtp"
caption = "user"
send = "Ym9i"
expect = "334"

[[step]]
session = "smtp"
caption = "cancel"
send = "*"
expect = "501"

[[step]]
session = "smtp"
caption = "QUIT"
quit = true
expect = "221"
"#;
    let result = format::Scenario::parse(toml, "inline");
    // "+" is not a status a scenario can expect: the step expecting it is refused when
    // loading, so the check is on the reply's first line instead.
    let toml = toml.replace("expect = \"+\"\n", "");
    let s = format::Scenario::parse(&toml, "inline").unwrap();
    assert!(result.is_err(), "expect = \"+\" is not a status");
    for (how, outcomes) in [
        ("memory", scenario::run_in_memory(&s).unwrap()),
        ("sockets", scenario::run_on_sockets(&s).unwrap()),
    ] {
        for o in &outcomes {
            assert!(o.check.is_ok(), "{how} step {}: {:?}", o.index + 1, o.check);
        }
        assert_eq!(
            outcomes[2].exchanges[1].line, "+ ",
            "{how}: the empty challenge"
        );
        // Inside TLS after the typed STLS (memory has no wire: its exchanges keep places).
        if how == "sockets" {
            assert_eq!(outcomes[3].exchanges[0].stream, None);
            assert_eq!(outcomes[10].exchanges[0].stream, None);
        }
    }
}

#[test]
fn injected_plaintext_travels_with_starttls_and_the_servers_discard_it() {
    use mailwire::proto::SecurityEvent;
    use mailwire::proto::pop3::Pop3Event;
    use mailwire::proto::smtp::SmtpEvent;
    use mailwire::servers::EventKind;
    let name = "starttls-injection";
    let Some(t) = common::record_with_capture(name, "the STARTTLS injection") else {
        return;
    };
    common::assert_every_step_passed(name, &t);
    let all = payloads(&t, &server_ports(&t));
    let smtp_injected = b"RSET\r\nMAIL FROM:<mallory@evil.example>\r\n";
    let pop3_injected = b"USER mallory\r\n";
    // The command and the attacker's lines crossed the wire in one segment, in clear.
    for (command, injected) in [
        (&b"STARTTLS\r\n"[..], &smtp_injected[..]),
        (b"STLS\r\n", pop3_injected),
    ] {
        let whole = [command, injected].concat();
        let at = all
            .iter()
            .position(|(s, p)| !s && *p == whole)
            .unwrap_or_else(|| panic!("one segment {:?}", String::from_utf8_lossy(&whole)));
        // The server's next segment is its one go-ahead; then only TLS records: no reply
        // to RSET, MAIL or USER ever crossed the wire in clear.
        let replies: Vec<&Vec<u8>> = all[at + 1..]
            .iter()
            .filter(|(s, _)| *s)
            .map(|(_, p)| p)
            .collect();
        assert!(
            replies[0].starts_with(b"220 ") || replies[0].starts_with(b"+OK "),
            "{:?}",
            String::from_utf8_lossy(replies[0])
        );
        assert_eq!(replies[0].iter().filter(|b| **b == b'\n').count(), 1);
    }
    // The servers said they discarded exactly those octets.
    let discarded: Vec<(bool, usize)> = t
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Smtp(SmtpEvent::Security(SecurityEvent::TlsRequested { discarded })) => {
                Some((true, *discarded))
            }
            EventKind::Pop3(Pop3Event::Security(SecurityEvent::TlsRequested { discarded })) => {
                Some((false, *discarded))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        discarded,
        vec![(true, smtp_injected.len()), (false, pop3_injected.len())]
    );
    // Neither server ever took an injected line as a command.
    for e in &t.events {
        match &e.kind {
            EventKind::Smtp(SmtpEvent::CommandReceived { line }) => {
                assert!(!line.contains("mallory") && line != "RSET", "{line}");
            }
            EventKind::Pop3(Pop3Event::CommandReceived { line, .. }) => {
                assert!(!line.contains("mallory"), "{line}");
            }
            _ => {}
        }
    }
    // Inside TLS the client sees no effect: RCPT without MAIL is 503, PASS without USER -ERR.
    let last = |step: usize| t.steps[step].outcome.exchanges.last().unwrap().line.clone();
    assert!(last(4).starts_with("503 "), "{}", last(4));
    assert!(last(8).starts_with("-ERR"), "{}", last(8));
}

#[test]
fn a_tls_session_ends_with_close_notify_and_fin_from_both_sides_and_no_reset() {
    const TCP_FIN: u8 = 0x01;
    const TCP_RST: u8 = 0x04;
    let Some(t) = common::record_with_capture("login-after-stls", "the TLS close") else {
        return;
    };
    common::assert_every_step_passed("login-after-stls", &t);
    let ports = server_ports(&t);
    let segments: Vec<(bool, u8, Vec<u8>)> = t
        .packets
        .iter()
        .filter_map(|p| {
            let s = tcp_segment(&p)?;
            Some((ports.contains(&s.src_port), s.flags, s.payload.to_vec()))
        })
        .collect();
    assert!(
        segments.iter().all(|(_, flags, _)| flags & TCP_RST == 0),
        "no segment is a reset"
    );
    for server in [true, false] {
        let fin = segments
            .iter()
            .position(|(s, flags, _)| *s == server && flags & TCP_FIN != 0)
            .unwrap_or_else(|| {
                panic!(
                    "a FIN from the {}",
                    if server { "server" } else { "client" }
                )
            });
        // Before its FIN each side sent a close_notify: an alert record (type 21) of 24
        // octets (TLS 1.3: 5 of header, 2 of alert, 1 of content type, 16 of AEAD tag).
        let alert = segments[..fin]
            .iter()
            .rposition(|(s, _, p)| *s == server && !p.is_empty())
            .unwrap();
        let payload = &segments[alert].2;
        assert_eq!(
            (payload.first(), payload.len()),
            (Some(&23), 24),
            "{}'s last record before its FIN: an encrypted alert (outer type 23 in TLS 1.3)",
            if server { "server" } else { "client" }
        );
    }
}
