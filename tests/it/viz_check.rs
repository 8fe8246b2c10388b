//! The window's "Check a server" panel, driven through egui_kittest (no display): the
//! checker runs on its own thread against a built-in student's server (the class project's
//! LIST without its "."), the window stays responsive while it runs, the run becomes the
//! diagram's timeline, and a click on a result row selects the step of the exchange that
//! check judged; Save writes the files without overwriting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::Queryable;
use mailwire::check::Verdict;
use mailwire::viz::AppOptions;
use mailwire::viz::check_panel::SaveKind;
use mailwire::viz::state::{Pane, UiAction};

use crate::common::TempDir;
use crate::viz_support;

#[test]
fn a_check_run_on_a_students_server_becomes_the_diagram_and_a_row_selects_its_step() {
    let mut h = viz_support::harness(AppOptions::default(), egui::vec2(1280.0, 720.0));
    viz_support::wait_until(&mut h, "the scenario to load", |h| {
        h.state().status.total_steps > 0 && !h.state().is_busy()
    });
    h.state_mut().act(UiAction::SetPane(Pane::Check, true));
    h.step();
    h.get_by_label("A student's server (built in: spot the error)");
    h.get_by_label("Run the checks").click();
    // The window keeps drawing while the checker runs; the panel says which check runs.
    let start = Instant::now();
    let mut saw_progress = false;
    loop {
        h.step();
        let panel = &h.state().check;
        if panel.busy && panel.current.is_some() {
            saw_progress = true;
        }
        if !panel.busy && panel.finished.is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the check run did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
    h.step();
    assert!(saw_progress, "no progress was shown");
    let app = h.state();
    assert!(app.check.shown);
    assert_eq!(app.check.problem, None);
    let failing: Vec<&str> = app
        .check
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail(_)))
        .map(|r| r.info.id)
        .collect();
    assert_eq!(failing, ["pop3.multiline-end"]);
    // The diagram shows the check run: a step per exchange, captioned with the check id.
    let run = app.check.finished.as_ref().unwrap();
    assert!(std::sync::Arc::ptr_eq(&app.timeline, &run.timeline));
    assert!(app.timeline.steps.len() > 100);
    // A pointer click on the first row (in view): the greeting's step is selected.
    h.get_by_label("smtp.greeting").click();
    h.step();
    h.step();
    let app = h.state();
    let first = app.check.finished.as_ref().unwrap().judged[0].unwrap();
    assert_eq!(app.check.selected, Some(0));
    assert_eq!(app.state.selection.step, Some(first));
    assert!(
        app.timeline.steps[first]
            .caption
            .starts_with("check smtp.greeting [must pass]")
    );
    // Click the failing row: its judged step (LIST and the listing without ".") is selected.
    h.get_by_label("pop3.multiline-end").scroll_to_me();
    h.step();
    h.step();
    h.get_by_label("pop3.multiline-end").click_accesskit();
    h.step();
    h.step();
    let app = h.state();
    let row = app
        .check
        .results
        .iter()
        .position(|r| r.info.id == "pop3.multiline-end")
        .unwrap();
    let run = app.check.finished.as_ref().unwrap();
    let step = run.judged[row].unwrap();
    assert_eq!(app.state.selection.step, Some(step));
    let record = &app.timeline.steps[step];
    assert!(
        record
            .caption
            .starts_with("check pop3.multiline-end [must fail]"),
        "{}",
        record.caption
    );
    let exchange = app.state.selection.exchange.unwrap();
    let x = &record.outcome.exchanges[exchange];
    assert!(x.line.contains(".txt "), "{:?}", x.line);
    let captured = app.timeline.capture_status().is_capturing();
    eprintln!("capture: {}", app.timeline.capture_status().describe());
    if captured {
        // The packet that carried the flawed listing is shown in the details.
        assert!(app.state.selection.frame.is_some());
    }
    // The row's details: expected and got.
    h.get_by_label_contains("2.txt");
    // Another row: a passing check's step.
    // Rows out of view of the results list are clicked through AccessKit (as a screen
    // reader would): a pointer click needs the row scrolled under the pointer first.
    h.get_by_label("pop3.greeting").scroll_to_me();
    h.step();
    h.step();
    h.get_by_label("pop3.greeting").click_accesskit();
    h.step();
    h.step();
    let app = h.state();
    let g = app
        .check
        .results
        .iter()
        .position(|r| r.info.id == "pop3.greeting")
        .unwrap();
    let greeting_step = app.check.finished.as_ref().unwrap().judged[g].unwrap();
    assert_eq!(app.state.selection.step, Some(greeting_step));
    assert!(
        app.timeline.steps[greeting_step]
            .caption
            .starts_with("check pop3.greeting [must pass]")
    );

    // Save: each file gets its own name, never overwriting.
    let dir = TempDir::new("check-save");
    h.state_mut().check.form.folder = dir.path().display().to_string();
    let kinds = [SaveKind::Json, SaveKind::Json, SaveKind::Junit];
    for kind in kinds {
        let save = match kind {
            SaveKind::Json => "Save JSON",
            SaveKind::Junit => "Save JUnit XML",
            SaveKind::Pcapng => "Save pcapng",
        };
        h.get_by_label(save).click_accesskit();
        h.step();
    }
    if captured {
        h.get_by_label("Save pcapng").click_accesskit();
        h.step();
    }
    let want = if captured { 4 } else { 3 };
    viz_support::wait_until(&mut h, "the saves", |h| h.state().check.saved.len() == want);
    let saved = &h.state().check.saved;
    assert!(saved.iter().all(Result::is_ok), "{saved:?}");
    for name in [
        "mailwire-check.json",
        "mailwire-check-2.json",
        "mailwire-check.xml",
    ] {
        assert!(dir.path().join(name).is_file(), "{name}");
    }
    if captured {
        let pcap = dir.path().join("mailwire-check.pcapng");
        let t = mailwire::lesson::load(&pcap).unwrap();
        assert_eq!(t.steps.len(), h.state().timeline.steps.len());
    }
    h.get_by_label_contains(&format!(
        "wrote {}",
        dir.path().join("mailwire-check-2.json").display()
    ));
}
