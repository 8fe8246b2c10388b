//! The window's quiz mode, apart from painting: which step is being asked about, the
//! answers given so far, the score.
//!
//! With the quiz on, a step that has questions ([`crate::quiz::Quiz`]) is not shown when
//! Next brings it: the cursor stays on the step before, and the quiz panel asks the step's
//! questions one at a time. An answer reveals right or wrong; going on shows the next
//! question, then the step. Answers are kept per step, so Back and Next over a step already
//! asked never ask again. The [`Quiz`] sees every step once, in order (it follows each POP3
//! session's state): steps shown without asking (before the quiz was on) are fed to it
//! silently.
//!
//! Only [`super::state::UiState::apply`] changes this (through the `Quiz*` actions and the
//! cursor moves); the panel ([`super::quiz_panel`]) only reads it.

use crate::exchange::Exchange;
use crate::quiz::{Question, Quiz, Score, Verdict};
use crate::timeline::Timeline;

/// The quiz's state in the window.
#[derive(Debug, Clone, Default)]
pub struct QuizState {
    /// Quiz mode is on: new steps are asked about before they are shown.
    pub on: bool,
    quiz: Quiz,
    /// One entry per step fed to the quiz (index = step), in order.
    steps: Vec<AskedStep>,
    /// The question on screen, if any.
    pub asking: Option<Asking>,
}

/// A step's questions and the answers given (one slot per question).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AskedStep {
    /// Empty for a step with no question, or one shown before the quiz asked about it.
    pub questions: Vec<Question>,
    /// The choice given for each question (index into its choices), `None` until answered.
    pub answers: Vec<Option<usize>>,
}

/// The question being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asking {
    /// The step asked about (not shown yet: the cursor is on the step before).
    pub step: usize,
    /// Which of the step's questions.
    pub question: usize,
    /// The choice made, once answered (the panel then reveals the answer).
    pub chosen: Option<usize>,
    /// The step the cursor was going to (a live run may have brought several at once):
    /// after this step is shown, the way on to it goes on.
    pub target: usize,
}

impl QuizState {
    /// The question on screen, with how many the step has.
    pub fn current(&self) -> Option<(Asking, &Question, usize)> {
        let asking = self.asking?;
        let step = self.steps.get(asking.step)?;
        let question = step.questions.get(asking.question)?;
        Some((asking, question, step.questions.len()))
    }

    /// What was asked and answered about `step` (`None` before it was fed to the quiz).
    pub fn step(&self, step: usize) -> Option<&AskedStep> {
        self.steps.get(step)
    }

    /// Right answers out of questions answered, over every step.
    pub fn score(&self) -> Score {
        let mut score = Score::default();
        for step in &self.steps {
            for (question, answer) in step.questions.iter().zip(&step.answers) {
                if let Some(chosen) = *answer {
                    let right = question.choices.get(chosen).is_some_and(|c| c.correct);
                    score.add(&if right {
                        Verdict::Right(chosen)
                    } else {
                        Verdict::Wrong(chosen)
                    });
                }
            }
        }
        score
    }

    /// A fresh run (Reset, another scenario, another file): nothing asked yet. The switch
    /// stays as it was.
    pub fn forget(&mut self) {
        *self = QuizState {
            on: self.on,
            ..QuizState::default()
        };
    }

    /// Feeds the quiz the steps up to `upto` it has not seen, in order; `ask` keeps their
    /// questions (else they were shown already and are not asked).
    fn feed(&mut self, timeline: &Timeline, upto: usize, ask: bool) {
        let upto = upto.min(timeline.steps.len().saturating_sub(1));
        while self.steps.len() <= upto && self.steps.len() < timeline.steps.len() {
            let questions = self.quiz.questions(timeline, self.steps.len());
            let questions = if ask { questions } else { Vec::new() };
            self.steps.push(AskedStep {
                answers: vec![None; questions.len()],
                questions,
            });
        }
    }

    /// The first question of `step` not answered yet.
    fn unanswered(&self, step: usize) -> Option<usize> {
        self.steps
            .get(step)?
            .answers
            .iter()
            .position(Option::is_none)
    }

    /// On the way from `cursor` to `target`, the first step to ask about (the quiz is on and
    /// the step has a question not answered yet). Feeds the quiz as it goes.
    pub fn first_to_ask(
        &mut self,
        timeline: &Timeline,
        cursor: Option<usize>,
        target: usize,
    ) -> Option<usize> {
        if !self.on {
            return None;
        }
        let from = cursor.map_or(0, |c| c + 1);
        if let Some(shown) = from.checked_sub(1) {
            self.feed(timeline, shown, false);
        }
        (from..=target).find(|&step| {
            self.feed(timeline, step, true);
            self.unanswered(step).is_some()
        })
    }

    /// Starts asking about `step` (its first question not answered), on the way to `target`.
    pub fn ask(&mut self, step: usize, target: usize) {
        if let Some(question) = self.unanswered(step) {
            self.asking = Some(Asking {
                step,
                question,
                chosen: None,
                target,
            });
        }
    }

    /// Records the choice for the question on screen (once: a second click changes nothing).
    pub fn answer(&mut self, choice: usize) {
        let Some(asking) = &mut self.asking else {
            return;
        };
        if asking.chosen.is_some() {
            return;
        }
        let Some(step) = self.steps.get_mut(asking.step) else {
            return;
        };
        let offered = step
            .questions
            .get(asking.question)
            .is_some_and(|q| choice < q.choices.len());
        if let (true, Some(slot)) = (offered, step.answers.get_mut(asking.question)) {
            *slot = Some(choice);
            asking.chosen = Some(choice);
        }
    }

    /// After an answer: the step's next question, or, after its last, the step and the target
    /// to show (`Some((step, target))`). Nothing before an answer.
    pub fn proceed(&mut self) -> Option<(usize, usize)> {
        let asking = self.asking?;
        asking.chosen?;
        match self.unanswered(asking.step) {
            Some(question) => {
                self.asking = Some(Asking {
                    question,
                    chosen: None,
                    ..asking
                });
                None
            }
            None => {
                self.asking = None;
                Some((asking.step, asking.target))
            }
        }
    }
}

/// What crossed the wire in the question's step before the reply it is about: what the
/// class may know when asked (the client's commands, and the replies before it, which earlier
/// questions revealed; a greeting's question has nothing).
pub fn known_before<'t>(timeline: &'t Timeline, question: &Question) -> Vec<&'t Exchange> {
    timeline
        .steps
        .get(question.step)
        .map_or_else(Vec::new, |record| {
            record
                .outcome
                .exchanges
                .iter()
                .take(question.reply)
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{ExchangeKind, StepOutcome};
    use crate::proto::Protocol;
    use crate::viz::state::{UiAction, UiState};
    use crate::viz::worker::WorkerStatus;

    fn exchange(kind: ExchangeKind, line: &str) -> Exchange {
        Exchange {
            kind,
            line: line.into(),
            more: Vec::new(),
            octets: line.len() + 2,
            stream: None,
        }
    }

    /// A POP3 session without capture: greeting, USER, PASS, STAT, QUIT (only status and
    /// state questions, no packet ones).
    fn pop3_timeline() -> Timeline {
        let mut t = Timeline::new("test");
        let steps: [&[(ExchangeKind, &str)]; 5] = [
            &[(ExchangeKind::Reply, "+OK POP3 server ready")],
            &[
                (ExchangeKind::Command, "USER mrose"),
                (ExchangeKind::Reply, "+OK mrose is a real hoopy frood"),
            ],
            &[
                (ExchangeKind::Command, "PASS tanstaaf"),
                (ExchangeKind::Reply, "+OK maildrop has 2 messages"),
            ],
            &[
                (ExchangeKind::Command, "STAT"),
                (ExchangeKind::Reply, "+OK 2 320"),
            ],
            &[
                (ExchangeKind::Command, "QUIT"),
                (ExchangeKind::Reply, "+OK dewey POP3 server signing off"),
            ],
        ];
        for (i, exchanges) in steps.iter().enumerate() {
            let outcome = StepOutcome {
                index: i,
                session: "main".into(),
                protocol: Some(Protocol::Pop3),
                conn: None,
                exchanges: exchanges.iter().map(|(k, l)| exchange(*k, l)).collect(),
                check: Ok(()),
                events: Vec::new(),
                server_closed: i == 4,
            };
            t.push_step(outcome, format!("step {i}"), None, None, 0..0);
        }
        t
    }

    fn recorded() -> WorkerStatus {
        WorkerStatus {
            total_steps: 5,
            done: true,
            ..WorkerStatus::default()
        }
    }

    fn file_state() -> UiState {
        UiState {
            recorded_only: true,
            ..UiState::default()
        }
    }

    fn right_choice(s: &UiState) -> usize {
        s.quiz.current().and_then(|(_, q, _)| q.answer()).unwrap()
    }

    #[test]
    fn off_the_steps_show_at_once_and_the_quiz_sees_nothing() {
        let t = pop3_timeline();
        let mut s = file_state();
        s.apply(UiAction::Next, &t, &recorded());
        s.apply(UiAction::Next, &t, &recorded());
        assert_eq!(s.cursor, Some(1));
        assert!(s.quiz.asking.is_none());
        assert!(s.quiz.step(0).is_none(), "nothing fed while off");
    }

    /// Answers the questions on screen until the step shows (right or wrong each time);
    /// returns how many were asked.
    fn answer_step(s: &mut UiState, t: &Timeline, st: &WorkerStatus, right: bool) -> usize {
        let mut asked = 0;
        while let Some((_, question, _)) = s.quiz.current() {
            let choice = question
                .choices
                .iter()
                .position(|c| c.correct == right)
                .unwrap();
            s.apply(UiAction::QuizAnswer(choice), t, st);
            s.apply(UiAction::QuizContinue, t, st);
            asked += 1;
        }
        asked
    }

    #[test]
    fn on_next_asks_before_the_step_shows_and_the_answers_then_show_it() {
        let t = pop3_timeline();
        let mut s = file_state();
        s.apply(UiAction::Next, &t, &recorded());
        assert_eq!(s.cursor, Some(0));
        s.apply(UiAction::SetQuiz(true), &t, &recorded());
        s.apply(UiAction::Next, &t, &recorded());
        // The cursor (and so the diagram, narration and details) stays on step 1.
        assert_eq!(s.cursor, Some(0));
        assert_eq!(s.selection.step, Some(0));
        let (asking, question, count) = s.quiz.current().unwrap();
        // USER: +OK or -ERR, then the state after it.
        assert_eq!((asking.step, asking.question, count), (1, 0, 2));
        assert!(
            question.prompt.contains("USER mrose"),
            "{}",
            question.prompt
        );
        // The greeting, shown before the quiz was on, was fed silently: never asked.
        assert!(s.quiz.step(0).unwrap().questions.is_empty());
        // Going on before an answer does nothing.
        s.apply(UiAction::QuizContinue, &t, &recorded());
        s.apply(UiAction::Next, &t, &recorded());
        assert_eq!(s.cursor, Some(0));
        assert_eq!(s.quiz.current().unwrap().0.chosen, None);
        let right = right_choice(&s);
        s.apply(UiAction::QuizAnswer(right), &t, &recorded());
        assert_eq!(s.quiz.current().unwrap().0.chosen, Some(right));
        // A second click changes nothing; a choice not offered neither.
        s.apply(UiAction::QuizAnswer(1 - right), &t, &recorded());
        s.apply(UiAction::QuizAnswer(7), &t, &recorded());
        assert_eq!(s.quiz.current().unwrap().0.chosen, Some(right));
        assert_eq!(
            s.cursor,
            Some(0),
            "revealing the answer does not show the step yet"
        );
        // Next (Space, the clicker) goes on once answered: the second question.
        s.apply(UiAction::Next, &t, &recorded());
        let (asking, question, _) = s.quiz.current().unwrap();
        assert_eq!((asking.step, asking.question, asking.chosen), (1, 1, None));
        assert!(
            question
                .choices
                .iter()
                .any(|c| c.text == "AUTHORIZATION" && c.correct)
        );
        assert_eq!(
            s.cursor,
            Some(0),
            "still not shown between the two questions"
        );
        let wrong = question.choices.iter().position(|c| !c.correct).unwrap();
        s.apply(UiAction::QuizAnswer(wrong), &t, &recorded());
        s.apply(UiAction::QuizContinue, &t, &recorded());
        assert_eq!(s.cursor, Some(1));
        assert_eq!(s.selection.step, Some(1));
        assert!(s.quiz.asking.is_none());
        assert_eq!(s.quiz.score(), Score { right: 1, asked: 2 });
        assert_eq!(s.quiz.step(1).unwrap().answers, [Some(right), Some(wrong)]);
    }

    #[test]
    fn from_the_start_the_greeting_is_asked_and_wrong_answers_count() {
        let t = pop3_timeline();
        let mut s = file_state();
        s.apply(UiAction::SetQuiz(true), &t, &recorded());
        s.apply(UiAction::Next, &t, &recorded());
        assert_eq!(s.cursor, None, "nothing shown before the first answer");
        assert_eq!(answer_step(&mut s, &t, &recorded(), false), 1);
        assert_eq!(s.cursor, Some(0));
        assert_eq!(s.quiz.score(), Score { right: 0, asked: 1 });
        for expected in [2, 2, 1, 2] {
            s.apply(UiAction::Next, &t, &recorded());
            assert_eq!(answer_step(&mut s, &t, &recorded(), true), expected);
        }
        assert_eq!(s.cursor, Some(4));
        assert_eq!(s.quiz.score(), Score { right: 7, asked: 8 });
    }

    #[test]
    fn back_and_next_over_answered_steps_do_not_ask_again() {
        let t = pop3_timeline();
        let mut s = file_state();
        s.apply(UiAction::SetQuiz(true), &t, &recorded());
        for _ in 0..2 {
            s.apply(UiAction::Next, &t, &recorded());
            answer_step(&mut s, &t, &recorded(), true);
        }
        assert_eq!(s.cursor, Some(1));
        s.apply(UiAction::Back, &t, &recorded());
        s.apply(UiAction::Home, &t, &recorded());
        assert_eq!(s.cursor, Some(0));
        s.apply(UiAction::Next, &t, &recorded());
        assert_eq!(s.cursor, Some(1), "step 2 was answered: shown at once");
        assert!(s.quiz.asking.is_none());
        // Step 3 is new: asked. Answer its first question only.
        s.apply(UiAction::Next, &t, &recorded());
        assert_eq!(s.quiz.current().unwrap().0.step, 2);
        s.apply(UiAction::QuizAnswer(right_choice(&s)), &t, &recorded());
        // Back leaves the question and stays on the step shown; Next asks the one left.
        s.apply(UiAction::Back, &t, &recorded());
        assert!(s.quiz.asking.is_none());
        assert_eq!(s.cursor, Some(1));
        s.apply(UiAction::Next, &t, &recorded());
        let (asking, _, _) = s.quiz.current().unwrap();
        assert_eq!((asking.step, asking.question), (2, 1));
        assert_eq!(s.quiz.score(), Score { right: 4, asked: 4 });
    }

    #[test]
    fn turning_the_quiz_off_shows_the_step_and_a_reset_forgets_the_answers() {
        let t = pop3_timeline();
        let mut s = file_state();
        s.apply(UiAction::SetQuiz(true), &t, &recorded());
        s.apply(UiAction::Next, &t, &recorded());
        s.apply(UiAction::QuizAnswer(0), &t, &recorded());
        s.apply(UiAction::SetQuiz(false), &t, &recorded());
        assert_eq!(s.cursor, Some(0));
        assert!(s.quiz.asking.is_none() && !s.quiz.on);
        assert_eq!(s.quiz.score().asked, 1);
        s.apply(UiAction::SetQuiz(true), &t, &recorded());
        s.forget_run();
        assert!(s.quiz.on, "the switch stays");
        assert_eq!(s.quiz.score(), Score::default());
        assert!(s.quiz.step(0).is_none());
    }

    #[test]
    fn a_live_step_arriving_is_asked_about_and_play_waits_for_the_answer() {
        let t = pop3_timeline();
        let live = WorkerStatus {
            total_steps: 9,
            ..WorkerStatus::default()
        };
        let mut s = UiState::default();
        s.apply(UiAction::SetQuiz(true), &t, &live);
        s.apply(UiAction::TogglePlay, &t, &live);
        // The worker brought the first two steps at once: the first is asked, then the second.
        let two = {
            let mut two = Timeline::new("test");
            for record in t.steps.iter().take(2) {
                two.push_step(
                    record.outcome.clone(),
                    record.caption.clone(),
                    None,
                    None,
                    0..0,
                );
            }
            two
        };
        s.on_steps_added(&two);
        assert_eq!(s.cursor, None);
        assert_eq!(s.quiz.current().unwrap().0.target, 1);
        // Play does not go on while a question waits.
        assert!(s.tick(100.0, &two, &live).is_empty());
        assert!(s.quiz.asking.is_some());
        s.apply(UiAction::QuizAnswer(right_choice(&s)), &two, &live);
        s.apply(UiAction::QuizContinue, &two, &live);
        assert_eq!(s.cursor, Some(0));
        // On the way to the target: step 2 is asked next.
        assert_eq!(s.quiz.current().unwrap().0.step, 1);
        assert_eq!(answer_step(&mut s, &two, &live, true), 2);
        assert_eq!(s.cursor, Some(1));
        assert_eq!(s.quiz.score(), Score { right: 3, asked: 3 });
    }

    #[test]
    fn what_the_class_knows_is_what_crossed_the_wire_before_the_reply_asked_about() {
        let t = pop3_timeline();
        let mut quiz = Quiz::new();
        let greeting = quiz.questions(&t, 0);
        assert!(known_before(&t, &greeting[0]).is_empty());
        let user = quiz.questions(&t, 1);
        let lines: Vec<&str> = known_before(&t, &user[0])
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(lines, ["USER mrose"]);
        // One SMTP step with three replies: each question knows the dialogue before its reply.
        let mut smtp = Timeline::new("smtp");
        let outcome = StepOutcome {
            index: 0,
            session: "send".into(),
            protocol: Some(Protocol::Smtp),
            conn: None,
            exchanges: [
                (ExchangeKind::Command, "MAIL FROM:<alice@localhost>"),
                (ExchangeKind::Reply, "250 OK"),
                (ExchangeKind::Command, "RCPT TO:<nobody@localhost>"),
                (ExchangeKind::Reply, "550 no such user"),
                (ExchangeKind::Command, "DATA"),
                (ExchangeKind::Reply, "503 no valid recipients"),
            ]
            .iter()
            .map(|(k, l)| exchange(*k, l))
            .collect(),
            check: Ok(()),
            events: Vec::new(),
            server_closed: false,
        };
        smtp.push_step(outcome, "mail".into(), None, None, 0..0);
        let questions = Quiz::new().questions(&smtp, 0);
        let known: Vec<Vec<&str>> = questions
            .iter()
            .map(|q| {
                known_before(&smtp, q)
                    .iter()
                    .map(|e| e.line.as_str())
                    .collect()
            })
            .collect();
        assert_eq!(
            known,
            [
                vec!["MAIL FROM:<alice@localhost>"],
                vec![
                    "MAIL FROM:<alice@localhost>",
                    "250 OK",
                    "RCPT TO:<nobody@localhost>"
                ],
                vec![
                    "MAIL FROM:<alice@localhost>",
                    "250 OK",
                    "RCPT TO:<nobody@localhost>",
                    "550 no such user",
                    "DATA"
                ],
            ]
        );
    }
}
