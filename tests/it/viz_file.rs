//! The window on a capture file, driven through egui_kittest (no display, no worker, no
//! servers): mailwire's own export steps with Next and Back and its captions come back; a
//! reference capture from elsewhere gets a lifeline per server and per client connection and
//! a connection list; a corrupt file shows a clear error; a file dropped on the window opens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use mailwire::export::lifelines::Side;
use mailwire::export::pcapng::{ExportHints, write_pcapng};
use mailwire::viz::state::{Pane, UiAction};
use mailwire::viz::{AppOptions, MailwireApp};

use crate::common;

const WAIT: Duration = Duration::from_secs(60);

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

fn harness(app: MailwireApp) -> Harness<'static, MailwireApp> {
    Harness::builder()
        .with_size(egui::vec2(1280.0, 720.0))
        .with_max_steps(10_000)
        .build_ui_state(|ui, app: &mut MailwireApp| app.frame_ui(ui), app)
}

/// A window on `path`, stepped until the file is read.
fn opened(path: &Path) -> Harness<'static, MailwireApp> {
    let mut h = harness(MailwireApp::from_file(path, AppOptions::default(), || {}));
    wait_loaded(&mut h);
    h
}

fn wait_loaded(h: &mut Harness<'static, MailwireApp>) {
    let start = Instant::now();
    loop {
        h.step();
        if h.state().loading.is_none() {
            h.step();
            return;
        }
        assert!(start.elapsed() < WAIT, "the file was not read in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_mailwire_export_steps_with_next_and_back_and_its_captions() {
    let Some(recorded) = common::record_with_capture("rfc1939", "the window on an export") else {
        return;
    };
    let dir = common::TempDir::new("viz-file");
    let file = dir.path().join("rfc1939.pcapng");
    write_pcapng(&recorded, &file, &ExportHints::from_timeline(&recorded)).unwrap();

    let mut h = opened(&file);
    let app = h.state();
    assert!(app.showing_file() && app.state.recorded_only);
    assert_eq!(app.timeline.steps.len(), recorded.steps.len());
    assert_eq!(app.timeline.packets.len(), recorded.packets.len());
    // It opens on step 1, with the recorded caption.
    assert_eq!(app.state.cursor, Some(0));
    let caption = |s: usize| recorded.steps[s].caption.clone();
    assert!(h.query_all_by_label_contains(&caption(0)).next().is_some());
    // Reset and the live panel have nothing to act on.
    assert!(h.get_by_label("Reset").accesskit_node().is_disabled());

    h.get_by_label("Next").click();
    h.run();
    assert_eq!(h.state().state.cursor, Some(1));
    assert!(h.query_all_by_label_contains(&caption(1)).next().is_some());
    h.get_by_label("Next").click();
    h.run();
    assert_eq!(h.state().state.cursor, Some(2));
    h.get_by_label("Back").click();
    h.run();
    assert_eq!(h.state().state.cursor, Some(1));
    assert!(h.query_all_by_label_contains(&caption(1)).next().is_some());
    // Next walks to the last recorded step and no further; nothing asks a worker.
    for _ in 0..recorded.steps.len() + 2 {
        h.state_mut().act(UiAction::Next);
        h.step();
    }
    let last = recorded.steps.len() - 1;
    assert_eq!(h.state().state.cursor, Some(last));
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
    assert!(!h.state().is_busy());
    h.run();
    assert!(h.get_by_label("Next").accesskit_node().is_disabled());
    h.get_by_label("Home").click();
    h.run();
    assert_eq!(h.state().state.cursor, Some(0));
    // Reset does nothing for a file.
    h.state_mut().act(UiAction::Reset);
    assert_eq!(h.state().state.cursor, Some(0));
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
}

#[test]
fn a_reference_capture_has_a_lifeline_per_server_and_client_and_a_connection_list() {
    let Some(file) = reference("zeek_smtp.pcap") else {
        return;
    };
    let mut h = opened(&file);
    let app = h.state();
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    assert!(app.timeline.steps.len() > 5, "{}", app.timeline.steps.len());
    // Show everything: the last step.
    let last = app.timeline.steps.len() - 1;
    h.state_mut().act(UiAction::SelectStep(last));
    h.state_mut().state.cursor = Some(last);
    h.run();
    let rows = h.state().diagram_rows();
    let shown: Vec<(Side, String, String)> = rows
        .used
        .iter()
        .map(|&l| &rows.lifelines.lines[l])
        .map(|l| (l.side, l.title(), l.address()))
        .collect();
    let servers: Vec<_> = shown.iter().filter(|l| l.0 == Side::Server).collect();
    let clients: Vec<_> = shown.iter().filter(|l| l.0 == Side::Client).collect();
    assert!(
        servers
            .iter()
            .any(|s| s.1 == "SMTP server" && s.2 == "74.53.140.153:25"),
        "{shown:?}"
    );
    assert!(clients.iter().any(|c| c.2 == "10.10.1.4:1470"), "{shown:?}");
    // No empty column: every lifeline shown carries a row.
    assert_eq!(
        shown.len(),
        {
            let mut l = rows.lifelines.used_by_steps();
            for c in &rows.lifelines.by_conn {
                l.extend([c.0, c.1]);
            }
            l.sort_unstable();
            l.dedup();
            l.len()
        },
        "{shown:?}"
    );

    // The connection list, filtered.
    h.state_mut()
        .act(UiAction::SetPane(Pane::Connections, true));
    h.run();
    h.get_by_label_contains("connections");
    let conn = h.get_by_label_contains("10.10.1.4:1470 -> 74.53.140.153:25");
    conn.click();
    h.run();
    let first = mailwire::viz::state::first_step_of_connection(&h.state().timeline, 0);
    assert_eq!(h.state().state.selection.step, first);
    h.state_mut().state.connection_filter.address = "192.0.2.99".into();
    h.run();
    h.get_by_label_contains("0 of ");
    h.state_mut().state.connection_filter.address.clear();
    h.state_mut().state.connection_filter.protocol =
        mailwire::viz::connections::ProtocolFilter::Only(mailwire::proto::Protocol::Pop3);
    h.run();
    h.get_by_label_contains("0 of ");
}

#[test]
fn a_corrupt_file_shows_a_clear_error_and_no_panic() {
    let dir = common::TempDir::new("viz-corrupt");
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture").unwrap();
    let mut h = opened(&junk);
    let errors = h.state().errors.join("\n");
    assert!(
        errors.contains("cannot open") && errors.contains("junk.pcap"),
        "{errors}"
    );
    h.get_by_label_contains("junk.pcap");
    assert!(h.state().timeline.steps.is_empty());

    // Cut short in the middle of a packet: what libpcap said, and where.
    if let Some(file) = reference("zeek_smtp.pcap") {
        let cut = dir.path().join("cut.pcap");
        std::fs::write(&cut, &std::fs::read(file).unwrap()[..3000]).unwrap();
        h.state_mut().act(UiAction::Open(cut.display().to_string()));
        wait_loaded(&mut h);
        let errors = h.state().errors.join("\n");
        assert!(
            errors.contains("cut.pcap") && errors.contains("packet"),
            "{errors}"
        );
    }
}

/// A file dropped on the window, as eframe hands it over.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn a_file_dropped_on_the_window_opens() {
    let Some(file) = reference("zeek_pop3_pop3.pcap") else {
        return;
    };
    let dir = common::TempDir::new("viz-drop");
    let junk = dir.path().join("first.pcap");
    std::fs::write(&junk, b"not a capture").unwrap();
    // Start on a broken file; then drop a good one.
    let mut h = opened(&junk);
    assert!(!h.state().errors.is_empty());
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(file.clone())));
    h.step();
    wait_loaded(&mut h);
    let app = h.state();
    assert_eq!(app.file.as_deref(), Some(file.as_path()));
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    assert!(app.timeline.steps.len() > 10);
    assert_eq!(app.state.cursor, Some(0));
}

#[test]
fn what_the_capture_shows_wrong_is_said_beside_the_step() {
    let Some(file) = reference("zeek_pop3_bad-list-retr-crafted.pcap") else {
        return;
    };
    let mut h = opened(&file);
    // Step 2: LIST, answered first by the server's "GARBAGE" line (no reply at all), held in
    // the step where it crossed the wire, then by a reply that never gets its "." line.
    h.state_mut().act(UiAction::SelectStep(1));
    h.state_mut().state.cursor = Some(1);
    h.run();
    h.get_by_label_contains("In the capture (S: GARBAGE (and LIST response missing .), frame #8)");
    h.get_by_label_contains("does not start with +OK or -ERR (RFC 1939 section 3)");
    h.get_by_label_contains("In the capture (S: +OK 2 messages (320 octets), frame #10");
    h.get_by_label_contains("no \".\" line before the next reply began (RFC 1939 section 3");
    let step = &h.state().timeline.steps[1];
    let lines: Vec<&str> = step
        .outcome
        .exchanges
        .iter()
        .map(|e| e.line.as_str())
        .collect();
    assert_eq!(
        lines,
        [
            "LIST",
            "GARBAGE (and LIST response missing .)",
            "+OK 2 messages (320 octets)"
        ]
    );
    // No step of its own for the GARBAGE line.
    assert!(
        h.state()
            .timeline
            .steps
            .iter()
            .all(|s| !s.caption.contains("GARBAGE")),
        "{:?}",
        h.state()
            .timeline
            .steps
            .iter()
            .map(|s| &s.caption)
            .collect::<Vec<_>>()
    );
}

/// The decrypted commands of every TLS connection of the window's timeline.
fn decrypted_texts(app: &MailwireApp) -> Vec<String> {
    let tls = app.timeline.tls_decryption();
    (0..app.timeline.analyzer.connections().len())
        .filter_map(|c| tls.connection(c))
        .flat_map(|c| c.units.iter().map(|u| u.text.clone()))
        .collect()
}

#[test]
fn keylog_secrets_decrypt_a_file_that_carries_none() {
    // `mailwire --keylog KEYS FILE`: the window's loader adds the key file's secrets to the
    // file's own (none here: the export is made from a timeline whose keys were taken out).
    let Some(mut recorded) = common::record_with_capture("login-after-stls", "--keylog") else {
        return;
    };
    let keys = std::mem::take(&mut recorded.keylog);
    assert!(keys.entries().len() >= 2, "the run kept its TLS secrets");
    let dir = common::TempDir::new("viz-keylog");
    let file = dir.path().join("stls-no-secrets.pcapng");
    write_pcapng(&recorded, &file, &ExportHints::from_timeline(&recorded)).unwrap();
    let key_file = dir.path().join("keys.log");
    std::fs::write(&key_file, keys.to_nss_text()).unwrap();

    let h = opened(&file);
    assert!(
        h.state().timeline.keylog.is_empty(),
        "the file carries no secret"
    );
    assert!(
        !decrypted_texts(h.state())
            .iter()
            .any(|t| t == "PASS builder"),
        "nothing is decrypted without the keys"
    );

    let keylog = mailwire::cli::open::load_keylog(&key_file).unwrap();
    let options = AppOptions {
        keylog,
        ..AppOptions::default()
    };
    let mut h = harness(MailwireApp::from_file(&file, options, || {}));
    wait_loaded(&mut h);
    let app = h.state();
    assert_eq!(app.timeline.keylog, keys);
    let texts = decrypted_texts(app);
    assert!(
        texts.iter().any(|t| t == "PASS builder"),
        "decrypted with the key file's secrets: {texts:?}"
    );
}

#[test]
fn a_bad_keylog_file_stops_mailwire_before_the_window_opens() {
    let dir = common::TempDir::new("viz-keylog-bad");
    let capture = dir.path().join("c.pcapng");
    // Any readable file will do: the key file is checked before the capture is read.
    std::fs::write(&capture, b"not read").unwrap();
    let keys = dir.path().join("keys.log");
    std::fs::write(
        &keys,
        format!(
            "CLIENT_RANDOM {} {}\nnonsense\n",
            "01".repeat(32),
            "02".repeat(48)
        ),
    )
    .unwrap();
    let out = crate::children::run_with_input(
        std::process::Command::new(common::MAILWIRE)
            .arg("--keylog")
            .arg(&keys)
            .arg(&capture)
            // A display that cannot be reached: the error must come before any window.
            .env("DISPLAY", ":987654")
            .env_remove("WAYLAND_DISPLAY"),
        "",
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: key log line 2", keys.display())),
        "names the file and the line: {stderr}"
    );
    assert!(!stderr.contains("window"), "no window was tried: {stderr}");
    // A missing key file is named too; --keylog without a FILE is refused by the parser.
    let missing = dir.path().join("missing.log");
    let out = crate::children::run_with_input(
        std::process::Command::new(common::MAILWIRE)
            .arg("--keylog")
            .arg(&missing)
            .arg(&capture)
            .env("DISPLAY", ":987654"),
        "",
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "cannot read the TLS key log file {}",
            missing.display()
        )),
        "{stderr}"
    );
    let out = crate::children::run_with_input(
        std::process::Command::new(common::MAILWIRE).args(["--keylog", keys.to_str().unwrap()]),
        "",
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FILE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
