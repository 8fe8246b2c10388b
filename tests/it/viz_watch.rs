//! The window's live watch and its Follow stream view.
//!
//! The watch: programs mailwire did not start (Python's smtplib and poplib against servers
//! on free ports of the real loopback) are captured by the port-watch thread, and the
//! window's timeline, mirrored from it, gets one step per command and its reply while the
//! capture runs, linked to the units that carried them; the connection list and the
//! lifelines work on it. Needs capture rights on the real loopback (root or CAP_NET_RAW);
//! without them the test checks that the watch says why and how to fix it, and invents no
//! packet (checked as `nobody` too). The steps of a growing capture are those
//! `lesson::dialog_steps` makes of the whole file (a reference capture fed packet by
//! packet). In the window: the view follows the newest step, Stop keeps what was seen,
//! Restart begins afresh, a bad port is refused with the reason, and a scenario window that
//! watched goes back to its scenario.
//!
//! Follow stream: a reference capture, a mailwire export and a hand-built conversation with
//! a lost segment: lines in capture order by direction, the "." that ends a multi-line reply
//! or the mail data marked, stuffed dots marked, gaps shown as gaps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mailwire::capture::LinkType;
use mailwire::capture::file::CaptureFile;
use mailwire::capture::live::CaptureError;
use mailwire::decode::UnitKind;
use mailwire::proto::{Direction, Protocol};
use mailwire::timeline::{CaptureStatus, Timeline};
use mailwire::viz::follow::{self, LineMark};
use mailwire::viz::state::UiAction;
use mailwire::viz::watch::{LiveSteps, WatchPhase, WatchRequest, Watching};
use mailwire::viz::{AppOptions, MailwireApp};

use crate::common;
use crate::decode_support::Conversation;

const WAIT: Duration = Duration::from_secs(30);

/// The client: a mail with a line starting "." and one starting "..", then POP3 reads the
/// last message (so the server byte-stuffs both) and quits.
const CLIENTS: &str = r#"
import poplib, smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[2]), timeout=20) as m:
    m.sendmail("alice@localhost", ["mrose@localhost"],
               "Subject: watched\r\n\r\nhi\r\n.one dot\r\n..two dots\r\nend\r\n")
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.user("mrose"); p.pass_("tanstaaf")
count, _ = p.stat()
p.retr(count)
p.quit()
"#;

fn reference(name: &str) -> Option<PathBuf> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference-captures")
        .join(name);
    if file.exists() {
        Some(file)
    } else {
        eprintln!("SKIPPED: {} is not there", file.display());
        None
    }
}

fn captions(t: &Timeline) -> Vec<String> {
    t.steps.iter().map(|s| s.caption.clone()).collect()
}

/// Starts a watch of the servers' ports; `None` (after checking the explanation) when this
/// process may not capture.
fn watch(s: &common::Running, timeline: &mut Arc<Timeline>) -> Option<Watching> {
    let request = WatchRequest {
        ports: vec![s.pop3.port(), s.smtp.port()],
        interface: "lo".into(),
    };
    let mut w = Watching::start(request, || {}).unwrap();
    let started = w.drain_until(timeline, WAIT, |t, w| {
        t.capture_status().is_capturing() || !w.is_running()
    });
    assert!(started, "the watch neither started nor failed");
    if let WatchPhase::Failed(e) = &w.phase {
        assert!(matches!(e, CaptureError::PermissionDenied { .. }), "{e}");
        let why = timeline.capture_status().why_not_captured().unwrap();
        assert!(
            why.contains("CAP_NET_RAW") && why.contains("setcap"),
            "{why}"
        );
        assert!(timeline.packets.is_empty(), "no packet without a capture");
        eprintln!("SKIPPED the live part: this process may not capture: {why}");
        return None;
    }
    Some(w)
}

#[test]
fn a_watch_mirrors_smtplib_and_poplib_into_the_window_timeline_as_they_talk() {
    let s = common::start_demo();
    let mut timeline = Arc::new(Timeline::new(""));
    let Some(mut w) = watch(&s, &mut timeline) else {
        return;
    };
    assert_eq!(
        timeline.capture_status(),
        CaptureStatus::Live {
            interface: "lo".into(),
            ports: vec![s.pop3.port(), s.smtp.port()],
            sandboxed: false,
        }
    );
    assert!(timeline.title.starts_with("Watching TCP ports "));
    common::run_program(
        "python3",
        &[
            "-c",
            CLIENTS,
            &s.pop3.port().to_string(),
            &s.smtp.port().to_string(),
        ],
        WAIT,
    );
    // While the capture runs, the steps arrive as each command's reply completes.
    let quits = |t: &Timeline| {
        t.steps
            .iter()
            .filter(|s| s.caption.ends_with(": QUIT"))
            .count()
    };
    let arrived = w.drain_until(&mut timeline, WAIT, |t, _| quits(t) == 2);
    assert!(arrived, "steps so far: {:#?}", captions(&timeline));
    assert!(w.is_running());
    let live_steps = timeline.steps.len();
    w.stop();
    assert!(w.drain_until(&mut timeline, WAIT, |_, w| w.phase == WatchPhase::Stopped));
    assert!(matches!(
        timeline.capture_status(),
        CaptureStatus::Stopped { .. }
    ));
    // Every step was complete while the capture ran (no step waited for the stop).
    assert_eq!(
        timeline.steps.len(),
        live_steps,
        "{:#?}",
        captions(&timeline)
    );
    let all = captions(&timeline).join("\n");
    common::assert_in_order(
        &all,
        &[
            "SMTP 127.0.0.1:",
            ": the server's greeting",
            ": ehlo ",
            ": data",
            ": the message content",
            ": QUIT",
            "POP3 127.0.0.1:",
            ": the server's greeting",
            ": USER mrose",
            ": PASS tanstaaf",
            ": STAT",
            ": RETR ",
            ": QUIT",
        ],
    );
    // Each command step holds the command and its reply, linked to the units that carried
    // them in the window's own copy of the capture.
    for (i, step) in timeline.steps.iter().enumerate() {
        assert_eq!(step.outcome.index, i);
        for e in 0..step.outcome.exchanges.len() {
            assert!(timeline.unit(i, e).is_some(), "step {i} exchange {e}");
        }
        if step.caption.ends_with(": QUIT") || step.caption.ends_with(": STAT") {
            assert_eq!(step.outcome.exchanges.len(), 2, "{}", step.caption);
        }
    }
    assert_eq!(
        timeline.packets.len(),
        timeline.analyzer.frames().len(),
        "the window keeps every packet the thread decoded"
    );
    // The connection list and the lifelines work on it as on a file.
    let summaries = mailwire::viz::connections::summaries(&timeline);
    let protocols: Vec<_> = summaries.iter().map(|c| c.protocol).collect();
    assert_eq!(protocols, vec![Some(Protocol::Smtp), Some(Protocol::Pop3)]);
    let lifelines = mailwire::export::lifelines::Lifelines::of(&timeline);
    assert_eq!(lifelines.lines.len(), 4, "two servers and two clients");
    assert_eq!(lifelines.by_step.len(), timeline.steps.len());

    // Follow stream on both connections: the dots as they crossed the wire.
    let smtp = follow::build(&timeline, 0).unwrap();
    let marked = |t: &follow::FollowText, mark: LineMark| {
        t.lines
            .iter()
            .filter(|l| l.mark == mark)
            .map(|l| t.line_text(l).0)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        marked(&smtp, LineMark::Stuffed(Protocol::Smtp)),
        vec!["..one dot", "...two dots"]
    );
    assert_eq!(
        marked(&smtp, LineMark::Terminator(Protocol::Smtp)),
        vec!["."]
    );
    let pop3 = follow::build(&timeline, 1).unwrap();
    assert_eq!(
        marked(&pop3, LineMark::Stuffed(Protocol::Pop3)),
        vec!["..one dot", "...two dots"]
    );
    assert_eq!(
        marked(&pop3, LineMark::Terminator(Protocol::Pop3)),
        vec!["."]
    );
    let first: Vec<_> = pop3
        .lines
        .iter()
        .take(3)
        .map(|l| (l.direction, pop3.line_text(l).0))
        .collect();
    assert_eq!(
        first[1],
        (Direction::ClientToServer, "USER mrose".to_string())
    );
    assert_eq!(first[0].0, Direction::ServerToClient);
}

/// Feeds a capture file's packets one at a time, making the steps that are complete after
/// each; returns the steps as (caption, exchanges).
fn live_steps_of(path: &Path) -> Vec<(String, usize)> {
    let mut model = Timeline::new("live");
    let mut steps = LiveSteps::default();
    let mut out = Vec::new();
    let mut take = |updates: Vec<mailwire::timeline::TimelineUpdate>| {
        for u in updates {
            if let mailwire::timeline::TimelineUpdate::Step {
                outcome, caption, ..
            } = u
            {
                assert_eq!(outcome.index, out.len());
                out.push((caption, outcome.exchanges.len()));
            }
        }
    };
    for packet in CaptureFile::open(path).unwrap() {
        model.analyzer.push(&packet.unwrap());
        take(steps.ready(&model, false));
    }
    model.analyzer.finish();
    take(steps.ready(&model, true));
    out
}

#[test]
fn the_steps_of_a_growing_capture_are_those_of_the_whole_file() {
    for name in [
        "zeek_smtp.pcap",
        "zeek_pop3_pop3.pcap",
        "sv_smtp-pipelining.pcap",
        "sv_pop3-auth-01.pcap",
        "zeek_pop3_bad-list-retr-crafted.pcap",
        "zeek_smtp-mail-transactions-invalid.pcap",
    ] {
        let Some(path) = reference(name) else {
            continue;
        };
        let file = mailwire::lesson::load(&path).unwrap();
        let mut whole: Vec<(String, usize)> = file
            .steps
            .iter()
            .map(|s| (s.caption.clone(), s.outcome.exchanges.len()))
            .collect();
        let mut live = live_steps_of(&path);
        assert!(!whole.is_empty(), "{name}");
        whole.sort();
        live.sort();
        assert_eq!(live, whole, "{name}");
    }
}

#[test]
fn follow_stream_of_a_reference_capture_marks_the_end_of_the_mail_data() {
    let Some(path) = reference("zeek_smtp.pcap") else {
        return;
    };
    let t = mailwire::lesson::load(&path).unwrap();
    let conn = t
        .analyzer
        .connections()
        .iter()
        .position(|c| c.mail_protocol() == Some(Protocol::Smtp))
        .unwrap();
    let text = follow::build(&t, conn).unwrap();
    let lines: Vec<(Direction, String, LineMark)> = text
        .lines
        .iter()
        .map(|l| (l.direction, text.line_text(l).0, l.mark.clone()))
        .collect();
    // Server first (the greeting, here a multi-line 220), then the client's EHLO, in
    // capture order.
    assert_eq!(lines[0].0, Direction::ServerToClient);
    assert!(lines[0].1.starts_with("220"), "{:?}", lines[0]);
    let first_client = lines
        .iter()
        .position(|l| l.0 == Direction::ClientToServer)
        .unwrap();
    assert!(
        lines[first_client]
            .1
            .to_ascii_uppercase()
            .starts_with("EHLO "),
        "{:?}",
        lines[first_client]
    );
    assert!(
        lines[..first_client].iter().all(|l| l.1.starts_with("220")),
        "the greeting comes whole before the EHLO: {lines:#?}"
    );
    let end = lines
        .iter()
        .position(|l| l.2 == LineMark::Terminator(Protocol::Smtp))
        .expect("the end of the mail data is marked");
    assert_eq!(lines[end].1, ".");
    assert_eq!(lines[end].0, Direction::ClientToServer);
    // The server's 250 comes after it, and the DATA command before it.
    assert!(
        lines[end + 1..]
            .iter()
            .any(|l| l.0 == Direction::ServerToClient && l.1.starts_with("250"))
    );
    assert!(
        lines[..end]
            .iter()
            .any(|l| l.1.eq_ignore_ascii_case("DATA"))
    );
    // The message's CSS lines that start with "." were dot-stuffed by the client (here
    // ".MsoChpDefault" went as "..MsoChpDefault"); nothing else is marked.
    let stuffed: Vec<&str> = lines
        .iter()
        .filter(|l| l.2 == LineMark::Stuffed(Protocol::Smtp))
        .map(|l| l.1.as_str())
        .collect();
    assert!(stuffed.contains(&"..MsoChpDefault"), "{stuffed:?}");
    assert!(stuffed.iter().all(|l| l.starts_with("..")));
    let others = lines
        .iter()
        .filter(|l| {
            !matches!(
                l.2,
                LineMark::Plain | LineMark::Terminator(_) | LineMark::Stuffed(_)
            )
        })
        .count();
    assert_eq!(others, 0, "{lines:#?}");
    assert_eq!(text.missing, [0, 0]);
    // Every captured byte of both directions is in the text, none twice.
    let frames: Vec<Vec<u8>> = t.packets.iter().map(|p| p.data).collect();
    for d in [Direction::ClientToServer, Direction::ServerToClient] {
        let bytes = t
            .analyzer
            .stream_bytes(conn, d, |f| frames.get(f).map(Vec::as_slice));
        assert_eq!(text.buffers[d.index()], bytes);
    }
}

#[test]
fn follow_stream_of_a_mailwire_export_keeps_the_pop3_terminators() {
    let Some(recorded) = common::record_with_capture("rfc1939", "Follow stream on an export")
    else {
        return;
    };
    let dir = common::TempDir::new("follow-export");
    let path = dir.path().join("rfc1939.pcapng");
    let hints = mailwire::export::pcapng::ExportHints::from_timeline(&recorded);
    mailwire::export::pcapng::write_pcapng(&recorded, &path, &hints).unwrap();
    let t = mailwire::lesson::load(&path).unwrap();
    let conn = t
        .analyzer
        .connections()
        .iter()
        .position(|c| c.mail_protocol() == Some(Protocol::Pop3))
        .unwrap();
    let text = follow::build(&t, conn).unwrap();
    // One "." per multi-line reply of the connection.
    let multi = t.analyzer.connections()[conn]
        .units
        .iter()
        .filter(|&&u| {
            let unit = &t.analyzer.units()[u];
            unit.kind == UnitKind::Reply && unit.multi_line
        })
        .count();
    let ends = text
        .lines
        .iter()
        .filter(|l| l.mark == LineMark::Terminator(Protocol::Pop3))
        .count();
    assert!(multi > 0);
    assert_eq!(ends, multi);
    // A status line is never taken for data, even one starting "+OK .".
    for l in &text.lines {
        if matches!(l.mark, LineMark::Terminator(_)) {
            assert_eq!(l.direction, Direction::ServerToClient);
            assert_eq!(text.line_text(l), (".".to_string(), "\\r\\n"));
        }
    }
}

#[test]
fn follow_stream_shows_a_lost_segment_as_a_gap_never_filled() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    c.client(b"RETR 1\r\n");
    c.server(b"+OK 30 octets\r\nline one\r\n");
    let lost = c.server(b"..dotted line\r\nline three\r\n");
    c.server(b"last\r\n.\r\n");
    c.client(b"QUIT\r\n");
    c.server(b"+OK bye\r\n");
    c.close();
    c.frames.remove(lost);
    let mut t = Timeline::new("lost");
    for p in c.frames {
        t.push_packet(p);
    }
    t.analyzer.finish();
    let text = follow::build(&t, 0).unwrap();
    let lines: Vec<(Direction, String, LineMark)> = text
        .lines
        .iter()
        .map(|l| (l.direction, text.line_text(l).0, l.mark.clone()))
        .collect();
    let gap = lines
        .iter()
        .position(|l| matches!(l.2, LineMark::Gap { .. }))
        .expect("a gap line");
    let LineMark::Gap { stream } = &lines[gap].2 else {
        unreachable!()
    };
    assert_eq!(stream.end - stream.start, 27, "{lines:#?}");
    assert_eq!(text.missing, [0, 27]);
    assert_eq!(lines[gap - 1].1, "line one");
    assert_eq!(lines[gap + 1].1, "last");
    // The lost bytes appear nowhere.
    assert!(
        !lines
            .iter()
            .any(|l| l.1.contains("dotted") || l.1.contains("three"))
    );
    assert!(
        text.lines[gap]
            .mark
            .meaning()
            .unwrap()
            .starts_with("27 bytes not captured")
    );
}

#[test]
fn the_watch_window_fills_and_follows_a_stream() {
    let s = common::start_demo();
    let request = WatchRequest {
        ports: vec![s.pop3.port(), s.smtp.port()],
        interface: "lo".into(),
    };
    let app = MailwireApp::watch_only(request, AppOptions::default(), || {});
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 720.0))
        .with_max_steps(10_000)
        .build_ui_state(|ui, app: &mut MailwireApp| app.frame_ui(ui), app);
    let start = Instant::now();
    while !h.state().timeline.capture_status().is_capturing()
        && h.state()
            .watching
            .as_ref()
            .is_some_and(Watching::is_running)
    {
        h.step();
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(10));
    }
    if !h.state().timeline.capture_status().is_capturing() {
        h.step();
        // The banner says why, and how to grant the rights.
        h.get_by_label_contains("setcap");
        eprintln!("SKIPPED the live part: this process may not capture");
        return;
    }
    h.step();
    h.get_by_label_contains("capturing on lo");
    common::run_program(
        "python3",
        &[
            "-c",
            CLIENTS,
            &s.pop3.port().to_string(),
            &s.smtp.port().to_string(),
        ],
        WAIT,
    );
    let start = Instant::now();
    loop {
        h.step();
        let t = &h.state().timeline;
        if t.steps
            .iter()
            .filter(|s| s.caption.ends_with(": QUIT"))
            .count()
            == 2
        {
            break;
        }
        assert!(start.elapsed() < WAIT, "{:#?}", captions(t));
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
    // The view followed the newest step: the POP3 QUIT is shown.
    let last = h.state().timeline.steps.len() - 1;
    assert_eq!(h.state().state.cursor, Some(last));
    assert!(h.state().timeline.steps[last].caption.starts_with("POP3 "));
    assert!(h.query_all_by_label_contains(": QUIT").next().is_some());
    // The server-state pane does not pretend to know the watched servers' state.
    h.get_by_label_contains("Not known: this pane shows the state of mailwire's own servers");
    // The toolbar stays one row, with the picker saying "watch".
    let reset = h.get_by_label("Reset").rect();
    let export = h.get_by_label("Export").rect();
    assert!(
        (reset.center().y - export.center().y).abs() < 2.0,
        "{export:?}"
    );
    // Follow the selected connection (the POP3 one).
    h.get_by_label("Follow stream").click();
    for _ in 0..5 {
        h.step();
    }
    assert_eq!(h.state().state.follow.map(|f| f.conn), Some(1));
    h.get_by_label_contains("USER mrose");
    assert_eq!(
        h.query_all_by_label_contains("byte-stuffed: the client removes one")
            .count(),
        2,
        "the two stuffed lines are marked"
    );
    h.get_by_label_contains("end of the multi-line reply (RFC 1939 section 3)");
    h.state_mut().act(UiAction::StopWatch);
    let start = Instant::now();
    while h
        .state()
        .watching
        .as_ref()
        .is_some_and(Watching::is_running)
    {
        h.step();
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
    h.get_by_label_contains("capture stopped");
    let seen = h.state().timeline.steps.len();
    assert!(seen > 0, "what was seen stays shown");
    // Restart: the form still holds the ports; a fresh timeline, capturing again.
    let generation = h.state().generation;
    h.state_mut().act(UiAction::StartWatch);
    let start = Instant::now();
    while !(h.state().generation > generation && h.state().timeline.capture_status().is_capturing())
    {
        h.step();
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(h.state().timeline.steps.is_empty());
    assert_eq!(
        h.state().state.follow,
        None,
        "the followed connection was the old run's"
    );
    // A form that names no port is refused with the reason, and the watch goes on.
    h.state_mut().watch_form.ports = "pop3".into();
    h.state_mut().act(UiAction::StartWatch);
    assert!(
        h.state()
            .watch_form
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("\"pop3\" is not a TCP port")),
        "{:?}",
        h.state().watch_form.problem
    );
    assert!(
        h.state()
            .watching
            .as_ref()
            .is_some_and(Watching::is_running)
    );
}

/// Set in the environment of the child that runs as `nobody`.
const CHILD_ENV: &str = "MAILWIRE_VIZ_WATCH_CHILD";
/// What the child prints before the banner's words, for the parent to find.
const CHILD_MARKER: &str = "WATCH-WITHOUT-RIGHTS: ";

/// Run only as the child of the test below (as `nobody`): a watch window without capture
/// rights says why and how to grant them, and shows no packet.
#[test]
fn child_watch_window_without_capture_rights() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let request = WatchRequest {
        ports: vec![2110, 2525],
        interface: "lo".into(),
    };
    let app = MailwireApp::watch_only(request, AppOptions::default(), || {});
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 720.0))
        .with_max_steps(10_000)
        .build_ui_state(|ui, app: &mut MailwireApp| app.frame_ui(ui), app);
    let start = Instant::now();
    while h
        .state()
        .watching
        .as_ref()
        .is_some_and(Watching::is_running)
    {
        h.step();
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
    let phase = h.state().watching.as_ref().map(|w| w.phase.clone());
    assert!(
        matches!(
            phase,
            Some(WatchPhase::Failed(CaptureError::PermissionDenied { .. }))
        ),
        "{phase:?}"
    );
    assert!(h.state().timeline.packets.is_empty());
    assert!(h.state().timeline.steps.is_empty());
    // The banner's head: what failed and the fix.
    let banner = h.get_by_label_contains("Packets NOT captured");
    let debug = format!("{banner:?}");
    let text = debug
        .split_once("value: \"")
        .and_then(|(_, rest)| rest.split_once("\", focused"))
        .map_or(debug.as_str(), |(value, _)| value);
    assert!(text.contains("setcap cap_net_raw"), "{text}");
    println!("{CHILD_MARKER}{text}");
}

#[test]
fn without_capture_rights_the_watch_window_says_why_and_how_to_grant_them() {
    if !common::running_as_root() {
        println!("SKIPPED: only root can become nobody here to lose the capture rights");
        return;
    }
    let copy = common::copy_self_for_nobody("watch-nobody");
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&copy.exe)
        .args([
            "--exact",
            "viz_watch::child_watch_window_without_capture_rights",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .current_dir(copy.dir.path())
        .output();
    let Ok(output) = output else {
        println!("SKIPPED: cannot run setpriv to become nobody");
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.contains("running 1 test") {
        println!(
            "SKIPPED: could not become nobody: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return;
    }
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = stdout
        .lines()
        .find_map(|l| l.split_once(CHILD_MARKER).map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| panic!("{stdout}"));
    println!("as nobody, the banner says: {said}");
    assert!(said.contains("CAP_NET_RAW"), "{said}");
}

#[test]
fn the_watch_flags_are_checked_before_any_window_opens() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::MAILWIRE)
            .args(args)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--watch", "2110,pop3"]);
    assert!(
        err.contains("--watch 2110,pop3: \"pop3\" is not a TCP port"),
        "{err}"
    );
    let err = run(&["--watch", "2110"]);
    assert!(err.contains("there is no display"), "{err}");
    let err = run(&["--interface", "lo"]);
    assert!(err.contains("--watch"), "{err}");
    let err = run(&["--watch", "2110", "run", "rfc1939"]);
    assert!(err.contains("--watch"), "{err}");
    let err = run(&["--watch", "2110", "capture.pcap"]);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn a_large_stream_is_followed_off_the_window_thread_and_whole() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40001, 25);
    c.handshake();
    c.server(b"220 ready\r\n");
    c.client(b"DATA\r\n");
    c.server(b"354 go ahead\r\n");
    let mut body = Vec::new();
    for i in 0..20_000 {
        body.extend_from_slice(format!("line {i} of a long message\r\n").as_bytes());
    }
    body.extend_from_slice(b".\r\n");
    c.send_chunked(true, &body, 1400);
    c.server(b"250 ok\r\n");
    c.close();
    let mut t = Timeline::new("large");
    for p in c.frames {
        t.push_packet(p);
    }
    t.analyzer.finish();
    let t = Arc::new(t);
    assert!(body.len() as u64 > follow::BUILD_ON_THREAD);
    let mut cache = follow::FollowCache::default();
    let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(|| {});
    cache.refresh(&t, 1, 0, &wake);
    assert!(cache.is_building(), "built on a thread of its own");
    let start = Instant::now();
    while cache.text().is_none() {
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(10));
        cache.refresh(&t, 1, 0, &wake);
    }
    let text = cache.text().unwrap();
    assert_eq!(
        text.buffers[Direction::ClientToServer.index()].len(),
        6 + body.len()
    );
    // DATA, 20000 lines, the "." — and the server's three replies.
    assert_eq!(text.lines.len(), 1 + 20_000 + 1 + 3);
    let end = text.lines.iter().rev().nth(1).unwrap();
    assert_eq!(end.mark, LineMark::Terminator(Protocol::Smtp));
    // Asked again for the same timeline, nothing is rebuilt.
    cache.refresh(&t, 1, 0, &wake);
    assert!(!cache.is_building());
}

#[test]
fn a_scenario_window_watches_then_goes_back_to_its_scenario() {
    let mut h = crate::viz_support::harness(AppOptions::default(), egui::vec2(1280.0, 720.0));
    crate::viz_support::wait_until(&mut h, "the scenario to load", |h| {
        h.state().status.total_steps > 0 && !h.state().is_busy()
    });
    let s = common::start_demo();
    h.state_mut().watch_form.ports = format!("{}, {}", s.pop3.port(), s.smtp.port());
    h.state_mut().act(UiAction::StartWatch);
    crate::viz_support::wait_until(&mut h, "the watch to start", |h| {
        h.state().timeline.title.starts_with("Watching TCP ports")
    });
    assert!(h.state().showing_file(), "a watch is shown like a file");
    assert!(
        h.state().state.recorded_only,
        "Next walks the watch's steps"
    );
    // Next asks the worker for nothing while a watch is shown.
    h.state_mut().act(UiAction::Next);
    assert!(!h.state().is_busy());
    // Picking the scenario again stops the watch and shows the scenario's fresh run.
    h.state_mut().act(UiAction::Load("rfc1939".into()));
    crate::viz_support::wait_until(&mut h, "the scenario's run", |h| {
        h.state().watching.is_none() && !h.state().is_busy()
    });
    assert!(!h.state().state.recorded_only);
    assert!(!h.state().timeline.title.starts_with("Watching"));
}

#[test]
fn follow_stream_marks_no_dots_in_a_bdat_chunk() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40002, 25);
    c.handshake();
    c.server(b"220 ready\r\n");
    c.client(b"EHLO me\r\n");
    c.server(b"250-hi\r\n250 CHUNKING\r\n");
    c.client(b"MAIL FROM:<a@b>\r\n");
    c.server(b"250 ok\r\n");
    c.client(b"RCPT TO:<c@d>\r\n");
    c.server(b"250 ok\r\n");
    let chunk = b"Subject: x\r\n\r\n..not stuffed\r\n.\r\n";
    let mut bdat = format!("BDAT {} LAST\r\n", chunk.len()).into_bytes();
    bdat.extend_from_slice(chunk);
    c.client(&bdat);
    c.server(b"250 ok\r\n");
    c.client(b"DATA\r\n");
    c.server(b"354 go\r\n");
    c.client(b"..stuffed\r\n.\r\n");
    c.server(b"250 ok\r\n");
    c.close();
    let mut t = Timeline::new("bdat");
    for p in c.frames {
        t.push_packet(p);
    }
    t.analyzer.finish();
    let text = follow::build(&t, 0).unwrap();
    let marked: Vec<(String, LineMark)> = text
        .lines
        .iter()
        .filter(|l| l.mark != LineMark::Plain)
        .map(|l| (text.line_text(l).0, l.mark.clone()))
        .collect();
    assert_eq!(
        marked,
        vec![
            ("..stuffed".to_string(), LineMark::Stuffed(Protocol::Smtp)),
            (".".to_string(), LineMark::Terminator(Protocol::Smtp)),
        ],
        "only the DATA content's dots mean something"
    );
}
