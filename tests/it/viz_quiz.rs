//! The window's quiz mode driven through egui_kittest at 1280x720 (no display): the Quiz
//! switch on, Next asks before the step shows (the question, the client's line, one button
//! per choice), a click reveals "Right!" and the score, and going on shows the step; Back
//! and Next over answered steps never ask again. One test on a live scenario (the worker's
//! step arrives; works with or without capture), one on a mailwire export (needs capture).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mailwire::export::pcapng::{ExportHints, write_pcapng};
use mailwire::quiz::Question;
use mailwire::viz::quiz_panel::{NEXT_QUESTION, SHOW_THE_STEP, choice_label};
use mailwire::viz::{AppOptions, MailwireApp};

use crate::common;
use crate::viz_support::{self, wait_until};

const SIZE: egui::Vec2 = egui::vec2(1280.0, 720.0);

fn frames(h: &mut Harness<'static, MailwireApp>, n: usize) {
    for _ in 0..n {
        h.step();
    }
}

/// The question on screen.
fn question(h: &Harness<'static, MailwireApp>) -> Question {
    let (_, q, _) = h.state().state.quiz.current().expect("a question is asked");
    q.clone()
}

/// Clicks the right choice of the question on screen by its label, checks the verdict, and
/// goes on (next question or the step).
fn answer_right(h: &mut Harness<'static, MailwireApp>) {
    let q = question(h);
    h.get_by_label_contains(&q.prompt);
    let right = q.answer().unwrap();
    h.get_by_label(&choice_label(right, &q.choices[right].text))
        .click();
    frames(h, 2);
    h.get_by_label_contains("Right!");
    h.get_by_label_contains(&q.explanation);
    let last = {
        let (asking, _, count) = h.state().state.quiz.current().unwrap();
        asking.question + 1 == count
    };
    h.get_by_label(if last { SHOW_THE_STEP } else { NEXT_QUESTION })
        .click();
    frames(h, 2);
}

#[test]
fn a_live_step_is_asked_about_before_it_shows_and_the_right_answer_scores() {
    let mut h = viz_support::harness(AppOptions::default(), SIZE);
    wait_until(&mut h, "the scenario to load", |h| {
        h.state().status.total_steps > 0 && !h.state().is_busy()
    });
    h.get_by_label("Quiz").click();
    frames(&mut h, 2);
    assert!(h.state().state.quiz.on);
    h.get_by_label("Next").click();
    wait_until(&mut h, "the greeting's question", |h| {
        h.state().state.quiz.asking.is_some()
    });
    // The step arrived but is not shown: no cursor, no arrow, the narration's place taken.
    let app = h.state();
    assert_eq!(app.timeline.steps.len(), 1);
    assert_eq!(app.state.cursor, None);
    assert!(
        h.query_by_label_contains("S: +OK POP3 server ready")
            .is_none()
    );
    h.get_by_label_contains("Quiz: step 1");
    h.get_by_label_contains("How does the POP3 server's first line begin?");
    h.get_by_label("a) +OK");
    h.get_by_label("b) -ERR");
    h.get_by_label_contains("Score 0/0");
    // A click on the right one: revealed, scored, the step still hidden.
    h.get_by_label("a) +OK").click();
    frames(&mut h, 2);
    h.get_by_label_contains("Right!");
    h.get_by_label_contains("Score 1/1");
    assert_eq!(h.state().state.cursor, None);
    h.get_by_label(SHOW_THE_STEP).click();
    frames(&mut h, 3);
    assert_eq!(h.state().state.cursor, Some(0));
    assert!(h.state().state.quiz.asking.is_none());
    h.get_by_label_contains("S: +OK POP3 server ready");
    // A wrong answer, by key: 'b' on the APOP step's +OK/-ERR question.
    h.get_by_label("Next").click();
    wait_until(&mut h, "the APOP step's question", |h| {
        h.state().state.quiz.asking.is_some_and(|a| a.step == 1)
    });
    h.get_by_label_contains("C: APOP mrose");
    let wrong = question(&h)
        .choices
        .iter()
        .position(|c| !c.correct)
        .unwrap();
    let key = [egui::Key::A, egui::Key::B, egui::Key::C, egui::Key::D][wrong];
    h.key_press(key);
    frames(&mut h, 2);
    h.get_by_label_contains("Wrong.");
    h.get_by_label_contains("The answer is");
    h.get_by_label_contains("Score 1/2");
}

#[test]
fn an_export_is_quizzed_step_by_step_and_back_does_not_ask_again() {
    let Some(recorded) = common::record_with_capture("rfc1939", "the quiz on an export") else {
        return;
    };
    let dir = common::TempDir::new("viz-quiz");
    let file = dir.path().join("rfc1939.pcapng");
    write_pcapng(&recorded, &file, &ExportHints::from_timeline(&recorded)).unwrap();
    let mut h = opened(&file);
    assert_eq!(h.state().state.cursor, Some(0));
    h.get_by_label("Quiz").click();
    frames(&mut h, 2);
    h.get_by_label("Next").click();
    frames(&mut h, 2);
    // Step 2 (APOP) is asked, step 1 stays on screen.
    let (asking, _, count) = h.state().state.quiz.current().expect("asked");
    assert_eq!((asking.step, count), (1, 2));
    assert_eq!(h.state().state.cursor, Some(0));
    h.get_by_label_contains("C: APOP mrose");
    answer_right(&mut h);
    h.get_by_label_contains("Score 1/1");
    answer_right(&mut h);
    assert_eq!(h.state().state.cursor, Some(1));
    assert_eq!(h.state().state.quiz.score().right, 2);
    // Back, then Next: shown at once, not asked again.
    h.get_by_label("Back").click();
    frames(&mut h, 2);
    assert_eq!(h.state().state.cursor, Some(0));
    h.get_by_label("Next").click();
    frames(&mut h, 2);
    assert_eq!(h.state().state.cursor, Some(1));
    assert!(h.state().state.quiz.asking.is_none());
    // Step 3 (STAT) is new: asked, with the packet questions the capture allows.
    h.get_by_label("Next").click();
    frames(&mut h, 2);
    let (asking, _, count) = h.state().state.quiz.current().expect("asked");
    assert_eq!(asking.step, 2);
    for _ in 0..count {
        answer_right(&mut h);
    }
    assert_eq!(h.state().state.cursor, Some(2));
    assert_eq!(h.state().state.quiz.score().right, 2 + count);
}

/// A window on `path`, stepped until the file is read.
fn opened(path: &Path) -> Harness<'static, MailwireApp> {
    let app = MailwireApp::from_file(path, AppOptions::default(), || {});
    let mut h = Harness::builder()
        .with_size(SIZE)
        .with_max_steps(10_000)
        .build_ui_state(|ui, app: &mut MailwireApp| app.frame_ui(ui), app);
    let start = Instant::now();
    while h.state().loading.is_some() {
        h.step();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the file was not read in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    frames(&mut h, 2);
    h
}
