//! Exchanges are linked to captured units by stream offsets: a unit the capture missed, or
//! one no step logged, must not shift the links of the exchanges after it.

#![allow(clippy::indexing_slicing)] // test data built just above

use std::net::SocketAddr;

use crate::decode_support::{self, Conversation};
use mailwire::capture::LinkType;
use mailwire::exchange::{Exchange, ExchangeKind, StepOutcome};
use mailwire::proto::Protocol;
use mailwire::timeline::{Ends, Timeline};

/// One line of the dialog: who sends it, its bytes, and whether the step logs it.
struct Line {
    from_client: bool,
    bytes: &'static [u8],
    logged: bool,
    captured: bool,
}

const fn line(from_client: bool, bytes: &'static [u8]) -> Line {
    Line {
        from_client,
        bytes,
        logged: true,
        captured: true,
    }
}

/// Plays `lines` on one connection (each line its own segment), pushes the captured frames
/// and one step holding the logged lines as exchanges, with their stream offsets as the
/// engine counts them.
fn timeline_of(lines: &[Line]) -> Timeline {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    let client = ends_of(&c);
    c.handshake();
    let mut dropped = Vec::new();
    let mut offsets = [0u64, 0];
    let mut exchanges = Vec::new();
    for l in lines {
        let frame = if l.from_client {
            c.client(l.bytes)
        } else {
            c.server(l.bytes)
        };
        if !l.captured {
            dropped.push(frame);
        }
        let side = usize::from(!l.from_client);
        let start = offsets[side];
        offsets[side] += l.bytes.len() as u64;
        if !l.logged {
            continue;
        }
        let text = String::from_utf8_lossy(l.bytes);
        let mut text_lines = text.split("\r\n").map(str::to_string);
        exchanges.push(Exchange {
            kind: if l.from_client {
                ExchangeKind::Command
            } else {
                ExchangeKind::Reply
            },
            line: text_lines.next().unwrap_or_default(),
            more: text_lines.filter(|l| !l.is_empty()).collect(),
            octets: l.bytes.len(),
            stream: Some(start..offsets[side]),
        });
    }
    // Both sides acknowledge everything, so the analyzer knows the missed bytes were sent.
    let (cs, ss) = (c.client_seq, c.server_seq);
    c.raw(true, cs, ss, decode_support::ACK, b"");
    c.raw(false, ss, cs, decode_support::ACK, b"");
    c.close();
    let mut timeline = Timeline::new("links");
    for (i, p) in c.frames.into_iter().enumerate() {
        if !dropped.contains(&i) {
            timeline.push_packet(p);
        }
    }
    let outcome = StepOutcome {
        index: 0,
        session: "main".into(),
        protocol: Some(Protocol::Pop3),
        conn: Some(0),
        exchanges,
        check: Ok(()),
        events: Vec::new(),
        server_closed: false,
    };
    let frames = 0..timeline.packets.len();
    timeline.push_step(outcome, "all".into(), None, Some(client), frames);
    timeline
}

fn ends_of(c: &Conversation) -> Ends {
    Ends {
        client: SocketAddr::new(c.client.0, c.client.1),
        server: SocketAddr::new(c.server.0, c.server.1),
    }
}

/// For each exchange of the step: the text of the unit it is linked to.
fn linked_texts(t: &Timeline) -> Vec<(String, Option<String>)> {
    let record = &t.steps[0];
    (0..record.outcome.exchanges.len())
        .map(|e| {
            let line = record.outcome.exchanges[e].line.clone();
            (line, t.unit(0, e).map(|u| u.text.clone()))
        })
        .collect()
}

#[test]
fn every_exchange_is_linked_to_its_own_unit() {
    let t = timeline_of(&[
        line(false, b"+OK ready\r\n"),
        line(true, b"STAT\r\n"),
        line(false, b"+OK 2 320\r\n"),
        line(true, b"LIST\r\n"),
        line(false, b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"),
        line(true, b"QUIT\r\n"),
        line(false, b"+OK bye\r\n"),
    ]);
    for (line, unit) in linked_texts(&t) {
        assert_eq!(unit.as_deref(), Some(line.as_str()));
    }
}

#[test]
fn a_missed_unit_does_not_shift_the_later_links() {
    let mut lines = [
        line(false, b"+OK ready\r\n"),
        line(true, b"NOOP\r\n"),
        line(false, b"+OK\r\n"),
        line(true, b"STAT\r\n"),
        line(false, b"+OK 2 320\r\n"),
        line(true, b"QUIT\r\n"),
        line(false, b"+OK bye\r\n"),
    ];
    // The capture lost the segment carrying NOOP.
    lines[1].captured = false;
    let t = timeline_of(&lines);
    let links = linked_texts(&t);
    assert_eq!(
        links[1],
        ("NOOP".into(), None),
        "not captured, so not linked"
    );
    for (line, unit) in links.iter().skip(2) {
        assert_eq!(unit.as_deref(), Some(line.as_str()), "{links:?}");
    }
}

#[test]
fn a_unit_no_step_logged_does_not_shift_the_later_links() {
    let mut lines = [
        line(false, b"+OK ready\r\n"),
        line(true, b"NOOP\r\n"),
        line(false, b"+OK\r\n"),
        line(true, b"STAT\r\n"),
        line(false, b"+OK 2 320\r\n"),
    ];
    // Someone else's bytes on the connection: captured, but in no step.
    lines[1].logged = false;
    lines[2].logged = false;
    let t = timeline_of(&lines);
    let links = linked_texts(&t);
    assert_eq!(links.len(), 3);
    for (line, unit) in &links {
        assert_eq!(unit.as_deref(), Some(line.as_str()), "{links:?}");
    }
}

/// Linux gives one local port to two connections at once when they go to different
/// servers: a checker's POP3 and SMTP connections can share a client address. A step on
/// the first must still link to its own connection's units, not to the later one's.
#[test]
fn a_client_port_shared_with_another_server_links_to_its_own_connection() {
    let mut pop3 = Conversation::new(LinkType::ETHERNET, 40000, 110);
    let mut smtp = Conversation::new(LinkType::ETHERNET, 40000, 25);
    let pop3_ends = ends_of(&pop3);
    assert_eq!(
        pop3_ends.client,
        ends_of(&smtp).client,
        "the same client end"
    );
    pop3.handshake();
    pop3.server(b"+OK ready\r\n");
    smtp.handshake();
    smtp.server(b"220 mail ready\r\n");
    let mut timeline = Timeline::new("shared client port");
    for p in pop3.frames.into_iter().chain(smtp.frames) {
        timeline.push_packet(p);
    }
    assert_eq!(timeline.analyzer.connections().len(), 2);
    let greeting = Exchange {
        kind: ExchangeKind::Reply,
        line: "+OK ready".into(),
        more: Vec::new(),
        octets: 11,
        stream: Some(0..11),
    };
    let outcome = StepOutcome {
        index: 0,
        session: "pop3".into(),
        protocol: Some(Protocol::Pop3),
        conn: Some(0),
        exchanges: vec![greeting],
        check: Ok(()),
        events: Vec::new(),
        server_closed: false,
    };
    timeline.push_step(outcome, "greeting".into(), None, Some(pop3_ends), 0..0);
    assert_eq!(timeline.connection_of(pop3_ends), Some(0));
    assert_eq!(
        timeline.unit(0, 0).map(|u| u.text.as_str()),
        Some("+OK ready"),
        "linked to the SMTP connection's greeting instead"
    );
}
