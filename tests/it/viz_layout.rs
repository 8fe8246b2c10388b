//! The window at projector size, through egui_kittest: at 1280x720 in presenter mode (zoom
//! 1.3, dark) and at 100% the toolbar is one row; after Next the selected step's band and
//! arrows are inside the diagram's visible rows; panes fold and unfold; the divider between
//! the diagram and the packet details drags.
//!
//! The harness starts at 1280x720 points; when the app sets its zoom, egui rescales the
//! screen as a real window's would (1280x720 pixels at zoom 1.3 is 985x554 points).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mailwire::viz::{AppOptions, MailwireApp};

use crate::viz_support::{self, wait_until};

fn harness(presenter: bool) -> Harness<'static, MailwireApp> {
    let options = AppOptions {
        presenter,
        ..AppOptions::default()
    };
    viz_support::harness(options, egui::vec2(1280.0, 720.0))
}

fn loaded(h: &mut Harness<'static, MailwireApp>) {
    wait_until(h, "the scenario to load", |h| {
        h.state().status.total_steps > 0 && !h.state().is_busy()
    });
}

/// The toolbar's first and last controls are on one row.
fn assert_toolbar_is_one_row(h: &Harness<'static, MailwireApp>, what: &str) {
    let first = h.get_by_label("Reset").rect();
    eprintln!("{what}: screen {:?}", h.ctx.content_rect());
    let next = h.get_by_label("Next").rect();
    let last = h.get_by_label("Export").rect();
    let view = h.get_by_label("View").rect();
    for (name, r) in [("Next", next), ("View", view), ("Export", last)] {
        assert!(
            (r.center().y - first.center().y).abs() < 2.0,
            "{what}: {name} at {r:?} is not on Reset's row ({first:?})"
        );
    }
    // And the row fits the window.
    let screen = h.ctx.content_rect();
    assert!(
        screen.width() < 1280.0 / 1.29 || !h.state().state.dark,
        "{what}: {screen:?}"
    );
    assert!(
        last.right() <= screen.right() + 0.5,
        "{what}: {last:?} in {screen:?}"
    );
}

#[test]
fn the_toolbar_is_one_row_at_1280x720_presenter_and_at_100_percent() {
    let mut h = harness(true);
    loaded(&mut h);
    assert_eq!(h.state().state.zoom, 1.3);
    assert!(h.state().state.dark);
    assert_toolbar_is_one_row(&h, "presenter, zoom 1.3");
    // After a step (the position label grows, a spinner may show) too.
    h.get_by_label("Next").click();
    wait_until(&mut h, "step 1", |h| {
        h.state().timeline.steps.len() == 1 && !h.state().is_busy()
    });
    assert_toolbar_is_one_row(&h, "presenter, zoom 1.3, after a step");

    let mut h = harness(false);
    loaded(&mut h);
    assert_toolbar_is_one_row(&h, "zoom 1.0");
}

#[test]
fn after_next_the_selected_step_is_in_the_diagrams_view() {
    let mut h = harness(true);
    loaded(&mut h);
    for n in 1..=6 {
        h.get_by_label("Next").click();
        wait_until(&mut h, "a step", |h| {
            h.state().timeline.steps.len() == n && !h.state().is_busy()
        });
        let app = h.state();
        let view = app.diagram_rect.expect("the diagram is drawn");
        let step = app.state.selection.step.expect("a step is selected");
        let exchange = app
            .state
            .selection
            .exchange
            .expect("an exchange is selected");
        let label = mailwire::viz::diagram::exchange_label(&app.timeline, step, exchange);
        let caption = format!("Step {}: {}", step + 1, app.timeline.steps[step].caption);
        for what in [label.as_str(), caption.as_str()] {
            let inside = h
                .get_all_by_label(what)
                .map(|n| n.rect())
                .any(|r| r.top() >= view.top() - 0.5 && r.bottom() <= view.bottom() + 0.5);
            assert!(
                inside,
                "after Next {n}: {what:?} is not inside the diagram's view {view:?}"
            );
        }
    }
    // Back to step 2: its rows come back into view.
    h.key_press(egui::Key::Home);
    h.step();
    h.key_press(egui::Key::ArrowRight);
    for _ in 0..4 {
        h.step();
    }
    let app = h.state();
    assert_eq!(app.state.cursor, Some(1));
    let view = app.diagram_rect.unwrap();
    let label = mailwire::viz::diagram::exchange_label(&app.timeline, 1, 0);
    assert!(
        h.get_all_by_label(&label)
            .any(|n| n.rect().top() >= view.top() - 0.5 && n.rect().bottom() <= view.bottom() + 0.5),
        "{label:?} not in view"
    );
}

#[test]
fn panes_fold_and_the_details_divider_drags() {
    let mut h = harness(true);
    loaded(&mut h);
    h.get_by_label("Next").click();
    wait_until(&mut h, "step 1", |h| {
        h.state().timeline.steps.len() == 1 && !h.state().is_busy()
    });
    // The divider: drag the details pane's left edge 120 points to the left.
    let before = h.get_by_label("Packet details").rect();
    let edge = h.get_by_label("Fold the packet details").rect().left() - 8.0;
    let y = before.center().y + 40.0;
    h.hover_at(egui::pos2(edge, y));
    h.step();
    h.drag_at(egui::pos2(edge, y));
    h.step();
    for dx in [20.0, 60.0, 120.0] {
        h.hover_at(egui::pos2(edge - dx, y));
        h.step();
    }
    h.drop_at(egui::pos2(edge - 120.0, y));
    h.step();
    h.step();
    let after = h.get_by_label("Packet details").rect();
    assert!(
        (before.left() - after.left() - 120.0).abs() < 10.0,
        "the divider did not follow the drag: {before:?} -> {after:?}"
    );
    // Fold the details and the narration; unfold them again.
    h.get_by_label("Fold the packet details").click();
    h.step();
    h.step();
    assert!(!h.state().state.details_panel);
    assert!(h.query_by_label("Packet details").is_none());
    h.get_by_label("Fold the narration").click();
    h.step();
    h.step();
    assert!(!h.state().state.narration_panel);
    // Folded, the narration is one line: the step's caption (as on the diagram's band).
    assert_eq!(
        h.get_all_by_label_contains("Step 1: The client opens a TCP connection")
            .count(),
        2
    );
    h.get_by_label("Unfold the packet details").click();
    h.get_by_label("Unfold the narration").click();
    h.step();
    h.step();
    assert!(h.state().state.details_panel && h.state().state.narration_panel);
    h.get_by_label("Packet details");
}
