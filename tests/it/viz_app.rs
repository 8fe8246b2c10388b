//! The window driven through egui_kittest (no display): it starts, Next produces the
//! greeting's arrow and its packet details, a field selection highlights its bytes, and the
//! console sends a command whose reply arrives.
//!
//! These tests run the real worker: real servers on free loopback ports and, when this
//! process may capture (root or CAP_NET_RAW), real packets. Without capture they check the
//! not-captured path instead, and print which path they took.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mailwire::proto::Direction;
use mailwire::viz::{AppOptions, MailwireApp};

use crate::viz_support::{self, wait_until};

fn harness() -> Harness<'static, MailwireApp> {
    viz_support::harness(AppOptions::default(), egui::vec2(1500.0, 1000.0))
}

fn loaded(h: &mut Harness<'static, MailwireApp>) {
    wait_until(h, "the scenario to load", |h| {
        h.state().status.total_steps > 0 && !h.state().is_busy()
    });
}

fn capturing(h: &Harness<'static, MailwireApp>) -> bool {
    let status = h.state().timeline.capture_status();
    eprintln!("capture: {}", status.describe());
    status.is_capturing()
}

#[test]
fn starts_with_the_demo_scenario_loaded() {
    let mut h = harness();
    loaded(&mut h);
    let app = h.state();
    assert_eq!(app.status.scenario, "rfc1939");
    assert_eq!(app.status.total_steps, 9);
    assert!(app.timeline.steps.is_empty());
    h.get_by_label("Next");
    h.get_by_label_contains("Press Next");
    // The banner says whether packets are captured.
    let banner = if capturing(&h) {
        "Packets: capturing"
    } else {
        "Packets NOT captured"
    };
    h.get_by_label_contains(banner);
}

#[test]
fn next_shows_the_greeting_arrow_and_its_packet_details() {
    let mut h = harness();
    loaded(&mut h);
    h.get_by_label("Next").click();
    wait_until(&mut h, "step 1", |h| {
        h.state().timeline.steps.len() == 1 && !h.state().is_busy()
    });
    // The arrow, by its text.
    h.get_by_label_contains("S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>");
    h.get_by_label_contains("Step 1: The client opens a TCP connection");
    let app = h.state();
    assert_eq!(app.state.selection.step, Some(0));
    assert_eq!(app.state.selection.exchange, Some(0));
    if capturing(&h) {
        eprintln!("path taken: captured packets");
        let frame = app
            .state
            .selection
            .frame
            .expect("the greeting's frame is selected");
        // The handshake comes first: the greeting is in frame 4 or later.
        assert!(frame >= 3, "frame {frame}");
        h.get_by_label_contains(&format!("Frame #{}", frame + 1));
        h.get_by_label_contains("Carried by 1 segment");
        h.get_by_label_contains("Transmission Control Protocol");
        h.get_by_label_contains("POP3 greeting: +OK POP3 server ready");
        // The TCP view shows the handshake segments.
        h.get_by_label_contains("#1 C->S [SYN] seq=0");
        // The greeting's bytes are highlighted: its carrier range in the frame.
        let unit = app.timeline.unit(0, 0).expect("a unit");
        assert_eq!(
            app.highlighted_bytes(),
            Some(unit.carriers[0].range.clone())
        );
        let packet = app.timeline.packets.get(frame).unwrap();
        let greeting = &packet.data[unit.carriers[0].range.clone()];
        assert!(greeting.starts_with(b"+OK POP3 server ready"));
        // Without the TCP view only the commands and replies are drawn.
        h.get_by_label("TCP").click();
        for _ in 0..4 {
            h.step();
        }
        assert!(!h.state().state.tcp_view);
        assert!(h.query_by_label_contains("#1 C->S [SYN]").is_none());
        h.get_by_label_contains("S: +OK POP3 server ready");
    } else {
        eprintln!("path taken: NOT captured");
        assert_eq!(app.state.selection.frame, None);
        h.get_by_label_contains("Not captured");
        // The banner says why, and the fix.
        h.get_by_label_contains("Packets NOT captured");
        h.get_by_label_contains("Fix: ");
    }
}

#[test]
fn selecting_a_field_highlights_its_bytes() {
    let mut h = harness();
    loaded(&mut h);
    h.get_by_label("Next").click();
    wait_until(&mut h, "step 1", |h| {
        h.state().timeline.steps.len() == 1 && !h.state().is_busy()
    });
    if !capturing(&h) {
        eprintln!("path taken: NOT captured (no fields to select); the details say why");
        h.get_by_label_contains("Not captured");
        return;
    }
    eprintln!("path taken: captured packets");
    h.get_by_label_contains("Source port").click_accesskit();
    h.step();
    h.step();
    let app = h.state();
    let field = app
        .state
        .selection
        .field
        .clone()
        .expect("a field is selected");
    assert_eq!(
        field.key,
        mailwire::viz::state::FieldKey::Header("Source port".into())
    );
    // Linux lo: 14 bytes of Ethernet, 20 of IPv4, then the TCP source port.
    assert_eq!(field.range, 34..36);
    assert_eq!(app.highlighted_bytes(), Some(34..36));
    // A click on a byte of the hex dump selects the field it belongs to: the first line
    // holds bytes 0-15, whose first six are the Ethernet destination.
    let node = h.get_by_label("bytes 0000 to 000f");
    eprintln!("hex line at {:?}", node.rect());
    node.click();
    // Hover, press and release are one frame each.
    for _ in 0..4 {
        h.step();
    }
    let field = h
        .state()
        .state
        .selection
        .field
        .clone()
        .expect("a field is selected");
    assert!(field.range.start < 16, "{field:?}");
}

#[test]
fn the_console_sends_a_command_and_its_reply_arrives() {
    let mut h = harness();
    loaded(&mut h);
    let path = if capturing(&h) {
        "captured packets"
    } else {
        "NOT captured"
    };
    eprintln!("path taken: {path}");
    h.get_by_label("Command").focus();
    h.step();
    h.get_by_label("Command").type_text("USER mrose");
    h.step();
    h.get_by_label("Send").click();
    wait_until(&mut h, "the console's reply", |h| {
        let app = h.state();
        !app.is_busy()
            && app.timeline.steps.iter().any(|s| {
                s.outcome.session == "console"
                    && s.outcome.exchanges.iter().any(|e| e.line == "USER mrose")
            })
    });
    let app = h.state();
    let step = app
        .timeline
        .steps
        .iter()
        .find(|s| s.outcome.exchanges.iter().any(|e| e.line == "USER mrose"))
        .unwrap();
    let reply = step
        .outcome
        .exchanges
        .iter()
        .find(|e| e.direction() == Direction::ServerToClient)
        .expect("a reply");
    assert!(reply.line.starts_with("+OK"), "{}", reply.line);
    assert!(app.status.connected.contains("console"));
    // The command and its reply show in the diagram (and in the console's log).
    assert!(h.get_all_by_label_contains("C: USER mrose").count() >= 2);
    assert!(
        !h.get_all_by_label_contains(&format!("S: {}", reply.line))
            .collect::<Vec<_>>()
            .is_empty()
    );
    // Connected first: the greeting of the console's own connection came before.
    assert!(
        app.timeline
            .steps
            .iter()
            .any(|s| s.caption.starts_with("Console: connect"))
    );
}

#[test]
fn send_mail_checks_the_address_format_first() {
    let mut h = harness();
    loaded(&mut h);
    h.state_mut().state.forms.send.to = "not-an-address".into();
    h.step();
    h.get_by_label("Send mail").click();
    h.step();
    h.step();
    h.get_by_label("Incorrect format");
    assert!(!h.state().is_busy(), "nothing was sent");
}

#[test]
fn a_bad_server_address_is_refused_inline() {
    let mut h = harness();
    loaded(&mut h);
    // Where mailwire's own servers listen, for outside clients.
    let pop3 = h.state().status.pop3_addr.expect("the servers run");
    h.get_by_label_contains(&format!("POP3 at {pop3}"));
    h.get_by_label("Server").focus();
    h.step();
    h.get_by_label("Server").type_text("localhost:pop");
    h.step();
    h.step();
    h.get_by_label_contains("\"localhost:pop\" is not a server address");
    // A line typed now is not sent anywhere.
    h.get_by_label("Command").focus();
    h.step();
    h.get_by_label("Command").type_text("STAT");
    h.step();
    h.get_by_label("Send").click();
    h.step();
    h.step();
    assert!(!h.state().is_busy(), "nothing was sent");
    assert!(h.state().timeline.steps.is_empty());
}

#[test]
fn without_capture_the_packet_panes_say_why_and_nothing_is_made_up() {
    let mut options = AppOptions::default();
    options.recorder.capture = false;
    let app = MailwireApp::start(options, || {}).expect("the worker starts");
    let mut h = Harness::builder()
        .with_size(egui::vec2(1500.0, 1000.0))
        .with_max_steps(10_000)
        .build_ui_state(|ui, app: &mut MailwireApp| app.frame_ui(ui), app);
    loaded(&mut h);
    assert!(!capturing(&h));
    h.get_by_label_contains("Packets NOT captured");
    h.get_by_label("Next").click();
    wait_until(&mut h, "step 1", |h| {
        h.state().timeline.steps.len() == 1 && !h.state().is_busy()
    });
    // The step ran on real sockets: its reply shows, without packets.
    h.get_by_label_contains("S: +OK POP3 server ready");
    h.get_by_label_contains("Not captured: capture was switched off");
    let app = h.state();
    assert!(app.timeline.packets.is_empty());
    assert_eq!(app.state.selection.frame, None);
    assert_eq!(app.highlighted_bytes(), None);
}

#[test]
fn keys_space_left_and_home_step_through_the_run() {
    let mut h = harness();
    loaded(&mut h);
    for n in 1..=3 {
        h.key_press(egui::Key::Space);
        wait_until(&mut h, "a step", |h| {
            h.state().timeline.steps.len() == n && !h.state().is_busy()
        });
    }
    assert_eq!(h.state().state.cursor, Some(2));
    h.key_press(egui::Key::ArrowLeft);
    h.step();
    h.step();
    assert_eq!(h.state().state.cursor, Some(1));
    h.key_press(egui::Key::Home);
    h.step();
    h.step();
    assert_eq!(h.state().state.cursor, Some(0));
    // Back on step 1, the server state is as it was then: no login yet.
    h.get_by_label_contains("AUTHORIZATION");
    // → replays what was recorded: no new step is run.
    h.key_press(egui::Key::ArrowRight);
    h.step();
    h.step();
    assert_eq!(h.state().state.cursor, Some(1));
    assert_eq!(h.state().timeline.steps.len(), 3);
}

#[test]
fn export_writes_the_transcript_svg_and_pcapng() {
    let mut h = harness();
    loaded(&mut h);
    h.get_by_label("Next").click();
    wait_until(&mut h, "step 1", |h| {
        h.state().timeline.steps.len() == 1 && !h.state().is_busy()
    });
    let dir = crate::common::TempDir::new("viz-export");
    h.state_mut().export_dir = dir.path().display().to_string();
    // A file already there is never overwritten: the export takes a numbered name.
    let taken = dir.path().join("mailwire-rfc1939.txt");
    std::fs::write(&taken, "keep me").unwrap();
    let base = dir.path().join("mailwire-rfc1939");
    let captured = capturing(&h);
    for item in [
        "Transcript (.txt)",
        "Sequence diagram (.svg)",
        "Capture for Wireshark (.pcapng)",
    ] {
        h.get_by_label("Export").click();
        for _ in 0..4 {
            h.step();
        }
        h.get_by_label(item).click();
        // Exports are written on their own thread; the window keeps drawing meanwhile.
        wait_until(&mut h, item, |h| !h.state().is_busy());
    }
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "keep me");
    let transcript = std::fs::read_to_string(dir.path().join("mailwire-rfc1939-2.txt")).unwrap();
    if captured {
        // The window says where it wrote, in full.
        let message = h.state().export_message.clone().unwrap_or_default();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
    }
    assert!(transcript.contains("+OK POP3 server ready"), "{transcript}");
    let svg = std::fs::read_to_string(base.with_extension("svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..80.min(svg.len())]
    );
    if captured {
        let pcapng = std::fs::read(base.with_extension("pcapng")).unwrap();
        // A pcapng file starts with a section header block.
        assert_eq!(&pcapng[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
    } else {
        assert!(
            h.state()
                .errors
                .iter()
                .any(|e| e.contains("no captured packets"))
        );
    }
}

#[test]
fn play_runs_the_steps_by_itself_and_pause_stops_it() {
    let mut h = harness();
    loaded(&mut h);
    h.state_mut().state.seconds_per_step = 0.2;
    h.get_by_label("Play").click();
    wait_until(&mut h, "three steps while playing", |h| {
        h.state().timeline.steps.len() >= 3
    });
    h.get_by_label("Pause").click();
    wait_until(&mut h, "the pause", |h| {
        !h.state().state.playing && !h.state().is_busy()
    });
    let steps = h.state().timeline.steps.len();
    for _ in 0..30 {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        h.state().timeline.steps.len(),
        steps,
        "paused: no more steps"
    );
}

#[test]
fn live_use_beside_the_scenario_lists_users_explains_the_lock_and_quits_before_next() {
    let mut h = harness();
    loaded(&mut h);
    // The scenario's users are listed beside the log-in fields.
    assert_eq!(
        h.state().status.users,
        vec![("mrose".to_string(), "tanstaaf".to_string())]
    );
    h.get_by_label("Users:");
    h.get_by_label("mrose");
    // Two steps: the scenario's session is logged in as mrose and holds the maildrop.
    for n in 1..=2 {
        h.get_by_label("Next").click();
        wait_until(&mut h, "a step", |h| {
            h.state().timeline.steps.len() == n && !h.state().is_busy()
        });
    }
    h.get_by_label("Log in").click();
    wait_until(&mut h, "the menu's log-in", |h| {
        !h.state().is_busy()
            && h.state()
                .timeline
                .steps
                .iter()
                .any(|s| s.outcome.session == "menu-pop3")
    });
    h.get_by_label_contains("mrose's maildrop is in use");
    h.get_by_label_contains("RFC 1939 section 8");
    assert!(h.state().status.connected.contains("menu-pop3"));
    // Send Mail says whether it worked: the reply to the message.
    h.get_by_label("Send mail").click();
    wait_until(&mut h, "the mail", |h| {
        !h.state().is_busy()
            && h.state()
                .timeline
                .steps
                .iter()
                .any(|s| s.outcome.session == "menu-smtp" && s.caption.ends_with("QUIT"))
    });
    h.get_by_label_contains("Sent: the server said 250");
    // Next: the menu's POP3 session is closed with QUIT first, then the scenario goes on
    // (its step 3 would otherwise find the maildrop locked by a session of the window's).
    let before = h.state().timeline.steps.len();
    h.get_by_label("Next").click();
    wait_until(&mut h, "the QUIT and step 3", |h| {
        !h.state().is_busy() && h.state().timeline.steps.len() == before + 2
    });
    let app = h.state();
    let quit = &app.timeline.steps[before];
    assert_eq!(quit.outcome.session, "menu-pop3");
    assert!(
        quit.caption.starts_with("Live use: QUIT"),
        "{}",
        quit.caption
    );
    assert!(!app.status.connected.contains("menu-pop3"));
    let step3 = &app.timeline.steps[before + 1];
    assert_eq!(step3.outcome.session, "main");
    assert!(step3.outcome.check.is_ok(), "{:?}", step3.outcome.check);
}
