//! A check run as a [`Timeline`]: one step per round of each check (a connection's
//! greeting, a command and its reply; see [`Transfer::round`]), captioned with the check's
//! id, so the window's sequence diagram and the pcapng export show a check run as they show
//! a recorded lesson.
//!
//! Each exchange keeps the stream range the probe counted, so the timeline links it to the
//! unit the capture cut at the same offsets, on the connection whose client end the check
//! used: the packets that carried it are the evidence. Without capture the steps still hold
//! the exchanges (arrows without packets), and the capture status says why.

use std::net::SocketAddr;
use std::ops::Range;

use super::report::Report;
use super::runner::{RunEvent, Settings, run_observed};
use super::wire::Transfer;
use super::{CheckResult, Verdict};
use crate::capture::CapturedPacket;
use crate::capture::live::{self, CaptureMessage, LiveConfig};
use crate::exchange::{Exchange, ExchangeKind, StepError, StepOutcome};
use crate::proto::{Direction, Protocol};
use crate::timeline::{CaptureStatus, Ends, Timeline};

/// The most lines of one reply an exchange keeps as its body (the octets count them all).
const MAX_BODY_LINES: usize = 2000;

/// A check run's timeline and where each check's steps are in it.
#[derive(Debug, Clone, Default)]
pub struct CheckTimeline {
    pub timeline: Timeline,
    /// For each check of the report (same index): the steps made of its exchanges.
    pub steps: Vec<Range<usize>>,
    /// For each check: the step holding the exchange it judged (`sent`, `got`), when it
    /// exchanged anything.
    pub judged: Vec<Option<usize>>,
}

/// The timeline of a check run: `packets` (captured on the checked ports, in capture
/// order; none without capture, when `capture` says why) decoded, and a step per round of
/// each check.
pub fn check_timeline(
    title: &str,
    report: &Report,
    packets: Vec<CapturedPacket>,
    capture: CaptureStatus,
) -> CheckTimeline {
    let mut timeline = Timeline::new(title);
    for packet in packets {
        timeline.push_packet(packet);
    }
    timeline.analyzer.finish();
    timeline.capture = Some(capture);
    let mut steps = Vec::with_capacity(report.checks.len());
    let mut judged = Vec::with_capacity(report.checks.len());
    let mut next_conn = 0usize;
    for result in &report.checks {
        let first = timeline.steps.len();
        let mut judged_step = None;
        let grouped = rounds(&result.transcript);
        let judged_rounds = judged_rounds(result, &grouped);
        for (round, transfers) in grouped {
            let Some(conn) = transfers.first().map(|t| t.conn) else {
                continue;
            };
            let ends = result
                .clients
                .get(conn)
                .zip(result.servers.get(conn))
                .map(|(&client, &server)| Ends { client, server });
            let step = timeline.steps.len();
            let is_judged = judged_rounds.contains(&round);
            if is_judged && judged_step.is_none() {
                judged_step = Some(step);
            }
            let outcome = StepOutcome {
                index: step,
                session: result.info.id.to_string(),
                protocol: protocol_of(result, conn),
                conn: Some(next_conn + conn),
                exchanges: exchanges(&transfers),
                check: match (&result.verdict, is_judged) {
                    (Verdict::Fail(why) | Verdict::Warn(why), true) => {
                        Err(StepError::Expectation(why.clone()))
                    }
                    _ => Ok(()),
                },
                events: Vec::new(),
                server_closed: false,
            };
            let caption = caption(result, is_judged);
            timeline.push_step(
                outcome,
                caption,
                Some(result.info.rfc.to_string()),
                ends,
                0..0,
            );
        }
        // A check whose last rounds came before its evidence began (a skip on the way).
        if judged_step.is_none() && timeline.steps.len() > first {
            judged_step = Some(timeline.steps.len() - 1);
        }
        next_conn += result.clients.len();
        steps.push(first..timeline.steps.len());
        judged.push(judged_step);
    }
    assign_frames(&mut timeline);
    CheckTimeline {
        timeline,
        steps,
        judged,
    }
}

/// Where and how a check run is captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSettings {
    /// The interface (`lo`).
    pub interface: String,
    /// Whether this process runs in mailwire's private network (said in the status).
    pub sandboxed: bool,
}

/// Runs the checks of `settings` ([`run_observed`], same observer) while capturing the
/// checked servers' ports, and makes the run's [`CheckTimeline`]. When the capture cannot
/// start (no CAP_NET_RAW, no such interface) the checks run anyway and the capture status
/// says why there are no packets.
pub fn run_captured(
    settings: &Settings,
    capture: &CaptureSettings,
    observer: &mut dyn FnMut(RunEvent) -> bool,
) -> (Report, CheckTimeline) {
    let ports: Vec<u16> = [&settings.pop3, &settings.smtp]
        .into_iter()
        .filter_map(|a| a.as_deref())
        .filter_map(|a| std::net::ToSocketAddrs::to_socket_addrs(a).ok()?.next())
        .map(|a| a.port())
        .collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let config = LiveConfig {
        interface: capture.interface.clone(),
        filter: live::port_filter(&ports),
        // A run sends a few thousand packets in seconds, on a machine that may be busy
        // drawing a window.
        buffer_size_bytes: live::RUN_BUFFER_BYTES,
        ..LiveConfig::default()
    };
    let started = if ports.is_empty() {
        Err("no server address to capture".to_string())
    } else {
        live::start(config, tx).map_err(|e| e.to_string())
    };
    let report = run_observed(settings, observer);
    let mut packets = Vec::new();
    let status = match started {
        Ok(running) => {
            // The last FINs and ACKs.
            std::thread::sleep(std::time::Duration::from_millis(300));
            running.stop();
            let mut status = CaptureStatus::Live {
                interface: capture.interface.clone(),
                ports,
                sandboxed: capture.sandboxed,
            };
            for message in rx.try_iter() {
                match message {
                    CaptureMessage::Packet(p) => packets.push(p),
                    CaptureMessage::Stats { received, dropped } => {
                        status = CaptureStatus::Stopped { received, dropped };
                    }
                    CaptureMessage::Failed(e) => {
                        status = CaptureStatus::Failed { why: e.to_string() };
                    }
                }
            }
            status
        }
        Err(why) => CaptureStatus::Unavailable { why },
    };
    let title = "mailwire check";
    let evidence = check_timeline(title, &report, packets, status);
    (report, evidence)
}

/// The rounds holding the exchange a check judged: the first round of its evidence; or,
/// when the check put its evidence together after the exchanges (`pop3.status-indicators`
/// judges every reply of a session), every round whose replies all are in that evidence.
fn judged_rounds(result: &CheckResult, grouped: &[(usize, Vec<&Transfer>)]) -> Vec<usize> {
    if let Some((round, _)) = grouped.iter().find(|(r, _)| *r >= result.judged_round) {
        return vec![*round];
    }
    // Bounded: evidence put together by hand is a few replies.
    if result.got.len() > 1024 * 1024 {
        return Vec::new();
    }
    let within =
        |bytes: &[u8]| !bytes.is_empty() && result.got.windows(bytes.len()).any(|w| w == bytes);
    grouped
        .iter()
        .filter(|(_, transfers)| {
            let mut replies = transfers
                .iter()
                .filter(|t| t.direction == Direction::ServerToClient)
                .peekable();
            replies.peek().is_some() && replies.all(|t| within(&t.bytes))
        })
        .map(|(r, _)| *r)
        .collect()
}

/// The transcript's transfers grouped by round, in order.
fn rounds(transcript: &[Transfer]) -> Vec<(usize, Vec<&Transfer>)> {
    let mut out: Vec<(usize, Vec<&Transfer>)> = Vec::new();
    for t in transcript {
        match out.last_mut() {
            Some((round, list)) if *round == t.round => list.push(t),
            _ => out.push((t.round, vec![t])),
        }
    }
    out
}

/// The protocol of connection `conn` of a check: its only one, or, for the round trip
/// (SMTP, then POP3), the second for every connection to another server than the first's.
fn protocol_of(result: &CheckResult, conn: usize) -> Option<Protocol> {
    let first = result.info.protocols.first().copied();
    match result.info.protocols {
        [_, second, ..] => {
            let server = |c: usize| result.servers.get(c).copied();
            if conn > 0 && server(conn) != server(0) {
                Some(*second)
            } else {
                first
            }
        }
        _ => first,
    }
}

/// `check pop3.list [must, fail]: LIST lists ... (why)` on the exchange judged; the other
/// rounds say they are on the way to it.
fn caption(result: &CheckResult, judged: bool) -> String {
    if judged {
        let why = match result.verdict.reason() {
            "" => String::new(),
            why => format!(" ({why})"),
        };
        format!(
            "check {} [{} {}]: {}{why}",
            result.info.id,
            result.level.label(),
            result.verdict.label(),
            result.info.title
        )
    } else {
        format!(
            "check {} (on the way to the exchange it judges): {}",
            result.info.id, result.info.title
        )
    }
}

/// The exchanges of one round: each line sent is a command (after a 354 the whole send is
/// the message content), each reply read is one reply with its body.
fn exchanges(transfers: &[&Transfer]) -> Vec<Exchange> {
    let mut out = Vec::new();
    let mut after_354 = false;
    for t in transfers {
        match t.direction {
            Direction::ClientToServer if after_354 && t.complete() => {
                after_354 = false;
                let lines = split_lines(&t.bytes);
                out.push(Exchange {
                    kind: ExchangeKind::Content,
                    line: format!(
                        "<message: {} lines, up to the \".\" line>",
                        lines.len().saturating_sub(1)
                    ),
                    more: lines.iter().map(|l| text(l)).collect(),
                    octets: t.bytes.len(),
                    stream: Some(t.stream.clone()),
                });
            }
            Direction::ClientToServer => {
                let mut at = t.stream.start;
                for line in split_lines(&t.bytes) {
                    let len = line.len() as u64;
                    out.push(Exchange {
                        kind: ExchangeKind::Command,
                        line: text(line),
                        more: Vec::new(),
                        octets: line.len(),
                        stream: Some(at..at + len),
                    });
                    at += len;
                }
            }
            Direction::ServerToClient => {
                after_354 = t.bytes.starts_with(b"354");
                let lines = split_lines(&t.bytes);
                let (first, rest) = lines
                    .split_first()
                    .map_or((&b""[..], &[][..]), |(f, r)| (*f, r));
                let octets = usize::try_from(t.stream.end - t.stream.start).unwrap_or(usize::MAX);
                out.push(Exchange {
                    kind: ExchangeKind::Reply,
                    line: text(first),
                    more: rest.iter().take(MAX_BODY_LINES).map(|l| text(l)).collect(),
                    octets,
                    stream: Some(t.stream.clone()),
                });
            }
        }
    }
    out
}

/// The lines of `bytes`, each with its line end (the last may have none).
fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

/// A line as text, without its line end.
fn text(line: &[u8]) -> String {
    let trimmed = line
        .strip_suffix(b"\n")
        .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
    String::from_utf8_lossy(trimmed).into_owned()
}

/// Gives each step the frames from the previous step's end to the last frame that carried
/// one of its exchanges, and then the frames after it on the same connection (the
/// goodbye, the FINs) up to the first of another: so the diagram shows a check's segments
/// (its handshake first) under its step. Frames after the last step stay with it.
fn assign_frames(timeline: &mut Timeline) {
    let mut start = 0usize;
    let count = timeline.steps.len();
    let packets = timeline.packets.len();
    let frame_conn = |t: &Timeline, f: usize| -> Option<usize> {
        let conn = t.analyzer.frames().get(f)?.segment.as_ref()?.conn;
        usize::try_from(conn).ok()
    };
    let mut ranges = Vec::with_capacity(count);
    for step in 0..count {
        let exchanges = timeline
            .steps
            .get(step)
            .map_or(0, |r| r.outcome.exchanges.len());
        let last = (0..exchanges)
            .filter_map(|e| timeline.unit(step, e))
            .filter_map(|u| u.carriers.iter().map(|c| c.frame).max())
            .max();
        let mut end = last.map_or(start, |f| (f + 1).max(start));
        // The rest of this connection's frames, while no other connection's come.
        let conn = timeline
            .steps
            .get(step)
            .and_then(|r| r.ends)
            .and_then(|c| timeline.connection_of(c));
        let next_ends = timeline.steps.get(step + 1).and_then(|r| r.ends);
        let same_next =
            next_ends.is_some() && next_ends == timeline.steps.get(step).and_then(|r| r.ends);
        if last.is_some() && conn.is_some() && !same_next {
            while end < packets && frame_conn(timeline, end) == conn {
                end += 1;
            }
        }
        ranges.push(start..end);
        start = end;
    }
    if let Some(last) = ranges.last_mut() {
        last.end = packets.max(last.end);
    }
    for (record, range) in timeline.steps.iter_mut().zip(ranges) {
        record.frames = range;
    }
}

/// The client ends of a report's connections, in order (a capture filter's or a
/// test's view of which packets are the checker's).
pub fn clients(report: &Report) -> Vec<SocketAddr> {
    report
        .checks
        .iter()
        .flat_map(|r| r.clients.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CheckInfo, Level};

    fn transfer(round: usize, direction: Direction, at: u64, bytes: &[u8]) -> Transfer {
        Transfer {
            conn: 0,
            direction,
            stream: at..at + bytes.len() as u64,
            bytes: bytes.to_vec(),
            round,
        }
    }

    #[test]
    fn rounds_become_steps_and_the_judged_one_carries_the_verdict() {
        use Direction::{ClientToServer as C, ServerToClient as S};
        let result = CheckResult {
            info: CheckInfo {
                id: "pop3.list",
                protocols: &[Protocol::Pop3],
                rfc: "RFC 1939 section 5",
                level: Level::Must,
                title: "LIST",
            },
            level: Level::Must,
            verdict: Verdict::Fail("no \".\" line".into()),
            sent: b"LIST\r\n".to_vec(),
            expected: String::new(),
            got: Vec::new(),
            clients: vec!["127.0.0.1:40000".parse().unwrap()],
            servers: vec!["127.0.0.1:110".parse().unwrap()],
            transcript: vec![
                transfer(0, S, 0, b"+OK hi\r\n"),
                transfer(1, C, 0, b"USER a\r\nPASS b\r\n"),
                transfer(1, S, 8, b"+OK\r\n"),
                transfer(1, S, 13, b"+OK\r\n"),
                transfer(2, C, 16, b"LIST\r\n"),
                transfer(2, S, 18, b"2.txt 8\r\n1.txt 33\r\n"),
            ],
            judged_round: 2,
        };
        let report = Report {
            checks: vec![result],
            unreachable: Vec::new(),
        };
        let t = check_timeline("t", &report, Vec::new(), CaptureStatus::InMemory);
        assert_eq!(t.steps, vec![0..3]);
        assert_eq!(t.judged, vec![Some(2)]);
        let login = &t.timeline.steps[1].outcome.exchanges;
        assert_eq!(login.len(), 4, "two commands, two replies");
        assert_eq!(login[1].line, "PASS b");
        assert_eq!(login[1].stream, Some(8..16));
        let list = &t.timeline.steps[2];
        assert!(list.caption.starts_with("check pop3.list [must fail]"));
        assert!(list.outcome.check.is_err());
        assert_eq!(list.outcome.exchanges[1].line, "2.txt 8");
        assert_eq!(list.outcome.exchanges[1].more, vec!["1.txt 33".to_string()]);
        assert!(t.timeline.steps[0].outcome.check.is_ok());
    }

    #[test]
    fn evidence_put_together_afterwards_marks_the_rounds_it_holds() {
        use Direction::{ClientToServer as C, ServerToClient as S};
        let mut result = CheckResult {
            info: CheckInfo {
                id: "pop3.status-indicators",
                protocols: &[Protocol::Pop3],
                rfc: "RFC 1939 section 3",
                level: Level::Must,
                title: "status",
            },
            level: Level::Must,
            verdict: Verdict::Fail("ERR".into()),
            sent: Vec::new(),
            expected: String::new(),
            got: b"+OK hi\r\nERR no\r\n".to_vec(),
            clients: vec!["127.0.0.1:40000".parse().unwrap()],
            servers: vec!["127.0.0.1:110".parse().unwrap()],
            transcript: vec![
                transfer(0, S, 0, b"+OK hi\r\n"),
                transfer(1, C, 0, b"PASS x\r\n"),
                transfer(1, S, 8, b"ERR no\r\n"),
                transfer(2, C, 8, b"QUIT\r\n"),
                transfer(2, S, 16, b"+OK bye\r\n"),
            ],
            // restart_evidence after the session: a round with nothing in it.
            judged_round: 3,
        };
        let report = Report {
            checks: vec![result.clone()],
            unreachable: Vec::new(),
        };
        let t = check_timeline("t", &report, Vec::new(), CaptureStatus::InMemory);
        assert_eq!(t.judged, vec![Some(0)]);
        let failed: Vec<bool> = t
            .timeline
            .steps
            .iter()
            .map(|s| s.outcome.check.is_err())
            .collect();
        assert_eq!(failed, [true, true, false]);
        // A check whose evidence matches nothing: its last step.
        result.got = b"elsewhere".to_vec();
        let report = Report {
            checks: vec![result],
            unreachable: Vec::new(),
        };
        let t = check_timeline("t", &report, Vec::new(), CaptureStatus::InMemory);
        assert_eq!(t.judged, vec![Some(2)]);
    }
}
