//! The quiz panel: while a step is asked about (see [`super::quiz_state`]), it takes the
//! narration's place at the top of the window. It shows what crossed the wire in the step
//! before the reply asked about (what the class may know; never the step's caption, which
//! may tell the answer), the question, one
//! big button per choice (keys 1-9 or a-d too), then the verdict with why the choice made
//! is right or wrong, the right one's reason and what the wire showed, and a button to go
//! on. The score is in its corner. It only reads the state and emits [`UiAction`]s.

use eframe::egui::{self, Key, RichText, Ui};

use super::quiz_state::{QuizState, known_before};
use super::state::UiAction;
use super::theme::Palette;
use crate::proto::Direction;
use crate::quiz::letter;
use crate::timeline::Timeline;

/// The button that shows the step after its last question.
pub const SHOW_THE_STEP: &str = "Show the step";
/// The button that goes on to the step's next question.
pub const NEXT_QUESTION: &str = "Next question";

/// How many of the lines before the reply asked about the panel shows (the last ones).
const KNOWN_LINES: usize = 4;

/// The label of a choice's button: its letter and its text ("a) +OK").
pub fn choice_label(index: usize, text: &str) -> String {
    format!("{}) {text}", letter(index))
}

/// Keys while a question is on screen (unless a text field has the keyboard): 1-9 or a-i
/// answer; Enter goes on after the answer (Space and the right arrow, as Next, do too).
pub fn keyboard_actions(ctx: &egui::Context, quiz: &QuizState, actions: &mut Vec<UiAction>) {
    let Some((asking, question, _)) = quiz.current() else {
        return;
    };
    if ctx.egui_wants_keyboard_input() {
        return;
    }
    const NUMBERS: [Key; 9] = [
        Key::Num1,
        Key::Num2,
        Key::Num3,
        Key::Num4,
        Key::Num5,
        Key::Num6,
        Key::Num7,
        Key::Num8,
        Key::Num9,
    ];
    const LETTERS: [Key; 9] = [
        Key::A,
        Key::B,
        Key::C,
        Key::D,
        Key::E,
        Key::F,
        Key::G,
        Key::H,
        Key::I,
    ];
    ctx.input(|i| {
        if asking.chosen.is_none() {
            let pressed = NUMBERS
                .iter()
                .zip(LETTERS.iter())
                .take(question.choices.len())
                .position(|(n, l)| i.key_pressed(*n) || i.key_pressed(*l));
            if let Some(choice) = pressed {
                actions.push(UiAction::QuizAnswer(choice));
            }
        } else if i.key_pressed(Key::Enter) {
            actions.push(UiAction::QuizContinue);
        }
    });
}

/// Draws the question on screen (nothing when none is).
pub fn quiz_ui(
    ui: &mut Ui,
    quiz: &QuizState,
    timeline: &Timeline,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    let Some((asking, question, count)) = quiz.current() else {
        return;
    };
    let session = timeline
        .steps
        .get(asking.step)
        .map_or("", |r| r.outcome.session.as_str());
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(format!("Quiz: step {}", asking.step + 1))
                .size(24.0)
                .strong()
                .color(palette.accent),
        );
        if count > 1 {
            ui.label(
                RichText::new(format!("question {} of {count}", asking.question + 1)).size(18.0),
            );
        }
        if !session.is_empty() {
            ui.label(RichText::new(format!("[{session}]")).size(16.0).weak());
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let score = quiz.score();
            ui.label(
                RichText::new(format!("Score {}/{}", score.right, score.asked))
                    .size(20.0)
                    .strong(),
            )
            .on_hover_text("Right answers out of questions answered");
        });
    });
    let known = known_before(timeline, question);
    if !known.is_empty() {
        ui.add_space(2.0);
        // The last few lines: a long dialogue would push the choices off a projector.
        let skipped = known.len().saturating_sub(KNOWN_LINES);
        if skipped > 0 {
            ui.label(
                RichText::new(format!("... {skipped} earlier line(s) of this step"))
                    .size(15.0)
                    .weak(),
            );
        }
        for e in known.into_iter().skip(skipped) {
            let color = match e.direction() {
                Direction::ClientToServer => palette.client,
                Direction::ServerToClient => palette.weak,
            };
            ui.label(
                RichText::new(format!("{} {}", e.direction().tag(), e.line))
                    .monospace()
                    .size(18.0)
                    .color(color),
            );
        }
    }
    ui.add_space(4.0);
    ui.label(RichText::new(&question.prompt).size(21.0).strong());
    ui.add_space(6.0);
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = egui::vec2(12.0, 8.0);
        for (i, choice) in question.choices.iter().enumerate() {
            let text = RichText::new(choice_label(i, &choice.text))
                .size(22.0)
                .strong()
                .monospace();
            let mut button = egui::Button::new(text).min_size(egui::vec2(150.0, 44.0));
            if let Some(chosen) = asking.chosen {
                // Revealed: the right choice in green, a wrong pick in red.
                if choice.correct {
                    button = button.fill(palette.positive.gamma_multiply(0.45));
                } else if chosen == i {
                    button = button.fill(palette.negative.gamma_multiply(0.45));
                }
            }
            // Clicks after the answer change nothing (the state keeps the first).
            let response = ui
                .add(button)
                .on_hover_text(format!("Key {} or {}", i + 1, letter(i)));
            if response.clicked() {
                actions.push(UiAction::QuizAnswer(i));
            }
        }
    });
    let Some(chosen) = asking.chosen else {
        ui.add_space(4.0);
        let n = question.choices.len();
        ui.label(
            RichText::new(format!(
                "Predict what comes back, then click a choice (or press 1-{n}, a-{}).",
                letter(n.saturating_sub(1))
            ))
            .size(15.0)
            .weak(),
        );
        return;
    };
    ui.add_space(6.0);
    let right = question.answer();
    let picked = question.choices.get(chosen);
    let (verdict, color) = if picked.is_some_and(|c| c.correct) {
        ("Right!", palette.positive)
    } else {
        ("Wrong.", palette.negative)
    };
    if let Some(picked) = picked {
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(verdict).size(22.0).strong().color(color));
            ui.label(RichText::new(&picked.why).size(17.0));
        });
    }
    if let Some(r) = right.filter(|&r| r != chosen)
        && let Some(c) = question.choices.get(r)
    {
        ui.horizontal_wrapped(|ui| {
            ui.label(
                RichText::new(format!("The answer is {}", choice_label(r, &c.text)))
                    .size(18.0)
                    .strong()
                    .color(palette.positive),
            );
            ui.label(RichText::new(&c.why).size(17.0));
        });
    }
    ui.label(RichText::new(&question.explanation).size(17.0).italics());
    ui.add_space(4.0);
    let last = asking.question + 1 >= count;
    let go_on = if last { SHOW_THE_STEP } else { NEXT_QUESTION };
    if ui
        .add(
            egui::Button::new(RichText::new(go_on).size(20.0).strong())
                .min_size(egui::vec2(180.0, 40.0)),
        )
        .on_hover_text("Enter, Space or the right arrow key")
        .clicked()
    {
        actions.push(UiAction::QuizContinue);
    }
}
