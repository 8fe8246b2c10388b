//! A check run as a timeline: run on a replay server with live capture on `lo`, each
//! check's exchanges link by stream offset to the units the capture cut, so the packets
//! are the evidence; the judged step of the failing check holds the flawed reply.
//! (Capturing needs CAP_NET_RAW: without it the test says it skipped.)

// Test helpers: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use mailwire::check::evidence::{CaptureSettings, run_captured};
use mailwire::check::replay::{self, Flaw};
use mailwire::check::{RunEvent, Settings, Verdict};

fn settings(r: &replay::Replay) -> Settings {
    Settings {
        pop3: Some(r.pop3.to_string()),
        smtp: Some(r.smtp.to_string()),
        user: r.user.into(),
        pass: r.pass.into(),
        rcpt: r.rcpt.into(),
        allow_delete: false,
        timeout: Duration::from_secs(2),
    }
}

#[test]
fn every_exchange_of_a_captured_check_run_links_to_its_unit() {
    let r = replay::start(Flaw::ClassProject).unwrap();
    let capture = CaptureSettings {
        interface: "lo".into(),
        sandboxed: false,
    };
    let mut started = Vec::new();
    let (report, evidence) = run_captured(&settings(&r), &capture, &mut |e| {
        if let RunEvent::Started(info) = e {
            started.push(info.id);
        }
        true
    });
    let t = &evidence.timeline;
    if !t.capture_status().is_capturing() {
        eprintln!("skipped: no capture ({})", t.capture_status().describe());
        return;
    }
    assert!(started.contains(&"pop3.multiline-end"), "{started:?}");
    assert_eq!(evidence.steps.len(), report.checks.len());
    // Every exchange of every step was captured: its unit holds its first byte.
    let mut exchanges = 0;
    for (s, record) in t.steps.iter().enumerate() {
        for (e, x) in record.outcome.exchanges.iter().enumerate() {
            exchanges += 1;
            let unit = t.unit(s, e);
            assert!(
                unit.is_some(),
                "step {s} ({}) exchange {e} {:?} {:?} at {:?} not linked; {}",
                record.caption,
                x.kind,
                x.line,
                x.stream,
                why_unlinked(t, record.client)
            );
        }
    }
    assert!(exchanges > 200, "{exchanges}");
    let i = report
        .checks
        .iter()
        .position(|c| c.info.id == "pop3.multiline-end")
        .unwrap();
    assert!(matches!(report.checks[i].verdict, Verdict::Fail(_)));
    let judged = evidence.judged[i].unwrap();
    assert!(evidence.steps[i].contains(&judged));
    let record = &t.steps[judged];
    assert!(
        record
            .caption
            .starts_with("check pop3.multiline-end [must fail]"),
        "{}",
        record.caption
    );
    assert!(record.outcome.check.is_err());
    // LIST, and the listing without its "." as the server sent it.
    let texts: Vec<&str> = record
        .outcome
        .exchanges
        .iter()
        .map(|x| x.line.as_str())
        .collect();
    assert!(texts.iter().any(|l| l.starts_with("LIST")), "{texts:?}");
    let reply = record
        .outcome
        .exchanges
        .iter()
        .position(|x| x.line.ends_with(".txt 8") || x.line.contains(".txt"))
        .unwrap_or_else(|| panic!("{texts:?}"));
    assert!(t.unit(judged, reply).is_some());
    // Nearly every frame (the handshakes, the goodbyes, the FINs) is under a step of the
    // check whose connection it belongs to (a FIN may cross the next check's SYN).
    let mut home = 0usize;
    let mut framed = 0usize;
    for (c, steps) in evidence.steps.iter().enumerate() {
        let clients = &report.checks[c].clients;
        for step in steps.clone() {
            for f in t.steps[step].frames.clone() {
                let Some(conn) = t.analyzer.frames()[f].segment.as_ref().map(|s| s.conn) else {
                    continue;
                };
                framed += 1;
                let client = t.analyzer.connections()[conn as usize].client;
                if clients.contains(&client) {
                    home += 1;
                }
            }
        }
    }
    assert!(framed > 500, "{framed}");
    assert!(
        home * 100 >= framed * 95,
        "{home} of {framed}; {}",
        shared_clients(t)
    );
    // The step's frames hold the packets that carried its exchanges.
    let unit = t.unit(judged, reply).unwrap();
    for c in &unit.carriers {
        assert!(
            record.frames.contains(&c.frame),
            "{:?} {:?}",
            record.frames,
            c.frame
        );
    }
}

/// The client ends that more than one connection used (a client port may be reused
/// towards another server), and the widest steps.
fn shared_clients(t: &mailwire::timeline::Timeline) -> String {
    let mut seen = std::collections::HashMap::new();
    for c in t.analyzer.connections() {
        seen.entry(c.client).or_insert_with(Vec::new).push((c.index, c.server));
    }
    let shared: Vec<_> = seen.iter().filter(|(_, v)| v.len() > 1).collect();
    let mut wide: Vec<(usize, std::ops::Range<usize>)> = t
        .steps
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.frames.clone()))
        .collect();
    wide.sort_by_key(|(_, r)| std::cmp::Reverse(r.len()));
    wide.truncate(3);
    format!("shared client ends {shared:?}; widest steps {wide:?}")
}

/// What a failure needs to tell a lost packet from a unit cut elsewhere or a wrong offset:
/// the capture's counts, the connection the client end links to, and its units.
fn why_unlinked(t: &mailwire::timeline::Timeline, client: Option<std::net::SocketAddr>) -> String {
    let conn = client.and_then(|c| t.connection_of(c));
    let units: Vec<String> = conn
        .map(|c| {
            t.analyzer.connections()[c]
                .units
                .iter()
                .map(|&u| {
                    let unit = &t.analyzer.units()[u];
                    format!("{:?} {:?}", unit.direction, unit.stream)
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "capture {:?}; client {client:?} is connection {conn:?} of {}; its units {units:?}",
        t.capture_status(),
        t.analyzer.connections().len()
    )
}

#[test]
fn the_pcapng_of_mailwire_check_reads_back_as_a_lesson_of_the_check_steps() {
    let dir = crate::common::TempDir::new("check-pcap");
    let pcap = dir.path().join("run.pcapng");
    let out = crate::common::run_with_input(
        std::process::Command::new(crate::common::MAILWIRE).args([
            "check",
            "--against",
            "assignment",
            "--timeout",
            "2",
            "--pcap",
            pcap.to_str().unwrap(),
        ]),
        "",
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    if !pcap.exists() {
        eprintln!("skipped: no capture ({stdout})");
        return;
    }
    let t = mailwire::lesson::load(&pcap).unwrap();
    let judged = t
        .steps
        .iter()
        .position(|s| s.caption.starts_with("check smtp.data-354 [must fail]"))
        .unwrap_or_else(|| panic!("no judged step of smtp.data-354"));
    let lines: Vec<&str> = t.steps[judged]
        .outcome
        .exchanges
        .iter()
        .map(|x| x.line.as_str())
        .collect();
    assert!(lines.contains(&"DATA"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("250 OK Message accepted for delivery")),
        "{lines:?}"
    );
}

#[test]
fn kilroys_status_failure_points_at_the_reply_without_its_minus() {
    let r = replay::start(Flaw::Kilroy).unwrap();
    let capture = CaptureSettings {
        interface: "lo".into(),
        sandboxed: false,
    };
    let (report, evidence) = run_captured(&settings(&r), &capture, &mut |_| true);
    let i = report
        .checks
        .iter()
        .position(|c| c.info.id == "pop3.status-indicators")
        .unwrap();
    assert!(matches!(report.checks[i].verdict, Verdict::Fail(_)));
    let step = &evidence.timeline.steps[evidence.judged[i].unwrap()];
    let lines: Vec<&str> = step
        .outcome
        .exchanges
        .iter()
        .map(|x| x.line.as_str())
        .collect();
    assert!(lines.iter().any(|l| l.starts_with("ERR ")), "{lines:?}");
    assert!(
        step.caption
            .starts_with("check pop3.status-indicators [must fail]")
    );
}
