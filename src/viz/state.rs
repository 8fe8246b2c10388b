//! The window's own state, apart from painting: what is selected, which step is being
//! viewed, the play timer, presenter settings and the live-use forms.
//!
//! Drawing code never changes this directly: it emits [`UiAction`]s, and
//! [`UiState::apply`] turns each into state changes and, where the worker must act,
//! [`WorkerCommand`]s. Everything here is plain data and unit-tested without a window.

use std::ops::Range;

use super::worker::{
    CONSOLE_SESSION, MENU_POP3_SESSION, MENU_SMTP_SESSION, WorkerCommand, WorkerStatus,
    is_extra_session,
};
use crate::proto::Protocol;
use crate::scenario::format::{Action, MailSpec, Step};
use crate::timeline::Timeline;

/// One header field (or protocol unit) picked in the packet details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedField {
    /// Which field.
    pub key: FieldKey,
    /// Its bytes in the frame.
    pub range: Range<usize>,
}

/// What identifies a field of the packet details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKey {
    /// A layer or header field of the decoded frame, by its name in the tree.
    Header(String),
    /// The part of a protocol unit (index into the analyzer's units) the frame carries.
    Unit(usize),
}

impl FieldKey {
    /// The key of a field of the tree.
    pub fn of(field: &crate::decode::tree::Field) -> Self {
        match field.unit {
            Some(u) => FieldKey::Unit(u),
            None => FieldKey::Header(field.name.clone()),
        }
    }
}

/// What is selected, everywhere at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The step (index in the timeline).
    pub step: Option<usize>,
    /// The exchange (command or reply) of that step.
    pub exchange: Option<usize>,
    /// The frame shown in the packet details (index in the timeline's packets).
    pub frame: Option<usize>,
    /// The field whose bytes are highlighted in the hex dump.
    pub field: Option<SelectedField>,
}

/// What the drawing code asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum UiAction {
    /// Show the next recorded step, or run the scenario's next step.
    Next,
    /// Show the previous recorded step.
    Back,
    /// Show the first step.
    Home,
    /// Start or stop playing.
    TogglePlay,
    /// Seconds between steps while playing.
    SetSpeed(f32),
    /// Run the current scenario again from the start.
    Reset,
    /// Load another scenario.
    Load(String),
    /// Select a step (its band in the diagram).
    SelectStep(usize),
    /// Select a command or reply.
    SelectExchange { step: usize, exchange: usize },
    /// Select a captured frame (a TCP segment).
    SelectFrame(usize),
    /// Select a field of the shown frame.
    SelectField(SelectedField),
    /// Show or hide the TCP segments in the diagram.
    SetTcpView(bool),
    /// Presenter zoom factor.
    SetZoom(f32),
    /// Dark (true) or light theme.
    SetDark(bool),
    /// Full screen on or off.
    SetFullscreen(bool),
    /// Show or hide the live-use panel.
    SetLivePanel(bool),
    /// Unfold (true) or fold a pane.
    SetPane(Pane, bool),
    /// Run ad-hoc steps (the console, the menu client's forms), in order.
    Run(Vec<Step>),
    /// Send the console's line (connecting first when needed).
    ConsoleSend,
    /// Manage Mail: log in (connecting first when needed).
    ManageLogIn,
    /// Manage Mail: read (RETR) or delete (DELE) the message whose number is typed.
    ManageMessage { read: bool },
    /// Send Mail: send the typed mail.
    SendMail,
    /// Open a capture file (pcap or pcapng), by its path as typed.
    Open(String),
    /// Show a connection (index into the analyzer's): its first step, scrolled into view.
    GoToConnection(usize),
    /// Quiz mode on or off (off shows the step being asked about).
    SetQuiz(bool),
    /// Answer the question on screen with its `n`-th choice (0 is a).
    QuizAnswer(usize),
    /// After an answer: the step's next question, or show the step.
    QuizContinue,
    /// Start watching the ports typed in the Watch form (restart, if a watch runs).
    StartWatch,
    /// Stop the watch (what it saw stays shown).
    StopWatch,
    /// Open the Follow stream view of a connection (index into the analyzer's).
    FollowStream(usize),
    /// Close the Follow stream view.
    CloseFollow,
    /// Show (true) or hide the line ends in the Follow stream view.
    SetFollowLineEnds(bool),
    /// Show a step (and one of its exchanges), scrolled into view, the diagram reaching at
    /// least that far (a row of the check panel's results).
    GoToStep {
        step: usize,
        exchange: Option<usize>,
    },
}

/// A pane that folds to its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// The step's narration and the server state, above the diagram.
    Narration,
    /// The packet details (headers over the hex dump), right of the diagram.
    Details,
    /// The live-use panel (console and menu client), below.
    Live,
    /// The connection list with its filters, at the left.
    Connections,
    /// "Check a server": the conformance checker's form and results, at the left.
    Check,
}

/// The raw command console's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleForm {
    /// Which client session the line goes to ("console" unless changed; a scenario's session
    /// name, such as "main", types into that session's connection).
    pub session: String,
    /// The protocol to connect with when the session is not connected.
    pub protocol: Protocol,
    /// The line being typed.
    pub line: String,
    /// The server to connect to, as typed: empty for mailwire's own, else `HOST:PORT`.
    pub server: String,
}

/// The menu client's Manage Mail form (POP3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageForm {
    pub user: String,
    pub password: String,
    /// The message number for Read and Delete, as typed.
    pub number: String,
    /// The POP3 server, as typed: empty for mailwire's own, else `HOST:PORT`.
    pub server: String,
    /// Why the last action was refused before anything was sent.
    pub problem: Option<String>,
    /// How many Manage Mail steps the timeline held when Log in was last pressed: the log-in's
    /// outcome is read from the steps after them.
    pub login_after: Option<usize>,
}

/// The menu client's Send Mail form (SMTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendForm {
    pub from: String,
    /// Recipients, separated by commas.
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The SMTP server, as typed: empty for mailwire's own, else `HOST:PORT`.
    pub server: String,
    /// "Incorrect format" when an address is not X@Y, as the seed-001 client says.
    pub problem: Option<String>,
    /// How many Send Mail steps the timeline held when Send mail was last pressed: whether
    /// the mail went through is read from the steps after them.
    pub sent_after: Option<usize>,
}

/// Everything the window remembers between frames, apart from the timeline itself.
#[derive(Debug, Clone)]
pub struct UiState {
    pub selection: Selection,
    /// The step being viewed (the diagram shows the steps up to it); `None` before the
    /// first step.
    pub cursor: Option<usize>,
    /// A step was asked of the worker and has not arrived yet.
    pub awaiting_step: bool,
    pub playing: bool,
    /// Seconds between steps while playing.
    pub seconds_per_step: f32,
    /// When (in `egui` input time) the next step is due while playing.
    pub next_tick: f64,
    /// Show every TCP segment in the diagram.
    pub tcp_view: bool,
    pub zoom: f32,
    pub dark: bool,
    pub fullscreen: bool,
    /// The live-use panel (console and menu client) is shown.
    pub live_panel: bool,
    /// The narration and server-state pane is unfolded.
    pub narration_panel: bool,
    /// The packet-details pane is unfolded.
    pub details_panel: bool,
    /// A row the diagram should scroll to on the next frame.
    pub scroll_to_row: Option<usize>,
    /// The diagram should scroll the selection into view on the next frame.
    pub scroll_to_selection: bool,
    /// The packet details should scroll the selected field into view on the next frame.
    pub reveal_field: bool,
    /// The scenario picked in the picker.
    pub scenario: String,
    /// What is typed in the live-use panel.
    pub forms: LiveForms,
    /// The steps are all recorded (a capture file): Next walks them and never asks the
    /// worker to run one; Reset and the live panel have nothing to act on.
    pub recorded_only: bool,
    /// The connection list is shown.
    pub connections_panel: bool,
    /// The connection list's filters.
    pub connection_filter: super::connections::ConnectionFilter,
    /// Quiz mode: the question asked before a step shows, the answers, the score.
    pub quiz: super::quiz_state::QuizState,
    /// The connection shown in the Follow stream view, if it is open.
    pub follow: Option<super::follow::FollowState>,
    /// The "Check a server" panel is shown.
    pub check_panel: bool,
}

/// The live-use panel's forms: the text its fields edit, and what went wrong last.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveForms {
    pub console: ConsoleForm,
    pub manage: ManageForm,
    pub send: SendForm,
}

/// The scenario the window starts with.
pub const DEFAULT_SCENARIO: &str = "rfc1939";

impl Default for LiveForms {
    fn default() -> Self {
        LiveForms {
            console: ConsoleForm {
                session: CONSOLE_SESSION.to_string(),
                protocol: Protocol::Pop3,
                line: String::new(),
                server: String::new(),
            },
            manage: ManageForm {
                user: "mrose".to_string(),
                password: "tanstaaf".to_string(),
                number: "1".to_string(),
                server: String::new(),
                problem: None,
                login_after: None,
            },
            send: SendForm {
                from: "alice@localhost".to_string(),
                to: "mrose@localhost".to_string(),
                subject: "Hello from the window".to_string(),
                body: "Hi, this went through mailwire's SMTP server.".to_string(),
                server: String::new(),
                problem: None,
                sent_after: None,
            },
        }
    }
}

impl Default for UiState {
    fn default() -> Self {
        Self {
            selection: Selection::default(),
            cursor: None,
            awaiting_step: false,
            playing: false,
            seconds_per_step: 2.0,
            next_tick: 0.0,
            tcp_view: true,
            zoom: 1.0,
            dark: false,
            fullscreen: false,
            live_panel: true,
            narration_panel: true,
            details_panel: true,
            scroll_to_row: None,
            scroll_to_selection: false,
            reveal_field: false,
            scenario: DEFAULT_SCENARIO.to_string(),
            forms: LiveForms::default(),
            recorded_only: false,
            connections_panel: false,
            connection_filter: super::connections::ConnectionFilter::default(),
            quiz: super::quiz_state::QuizState::default(),
            follow: None,
            check_panel: false,
        }
    }
}

impl UiState {
    /// The step whose caption, state and details are shown: the selected one, else the
    /// cursor.
    pub fn focus_step(&self) -> Option<usize> {
        self.selection.step.or(self.cursor)
    }

    /// Whether the view is at the last recorded step and the scenario has no more.
    pub fn at_end(&self, timeline: &Timeline, status: &WorkerStatus) -> bool {
        let last = timeline.steps.len().checked_sub(1);
        (status.done || self.recorded_only) && self.cursor == last
    }

    /// Applies one action; returns what the worker must do.
    pub fn apply(
        &mut self,
        action: UiAction,
        timeline: &Timeline,
        status: &WorkerStatus,
    ) -> Vec<WorkerCommand> {
        let recorded = timeline.steps.len();
        match action {
            UiAction::Next => return self.next(timeline, status),
            // Back from a question leaves it (unanswered) and stays on the step shown.
            UiAction::Back if self.quiz.asking.take().is_some() => {}
            UiAction::Back => {
                if let Some(c) = self.cursor
                    && c > 0
                {
                    self.view_step(c - 1, timeline);
                }
            }
            UiAction::Home => {
                self.quiz.asking = None;
                if recorded > 0 {
                    self.view_step(0, timeline);
                }
            }
            UiAction::TogglePlay => {
                self.playing = !self.playing;
                // The first step comes at once.
                self.next_tick = 0.0;
            }
            UiAction::SetSpeed(s) => self.seconds_per_step = s.clamp(0.2, 30.0),
            UiAction::Reset if self.recorded_only => {}
            UiAction::Reset => {
                self.forget_run();
                return vec![WorkerCommand::Reset];
            }
            UiAction::Load(name) => {
                self.forget_run();
                self.scenario = name.clone();
                return vec![WorkerCommand::Load(name)];
            }
            UiAction::SelectStep(step) => {
                self.selection = Selection {
                    step: Some(step),
                    ..Selection::default()
                };
                if let Some(record) = timeline.steps.get(step)
                    && !record.outcome.exchanges.is_empty()
                {
                    self.select_exchange(step, 0, timeline);
                }
            }
            UiAction::SelectExchange { step, exchange } => {
                self.select_exchange(step, exchange, timeline);
            }
            UiAction::SelectFrame(frame) => self.select_frame(frame, timeline),
            UiAction::SelectField(field) => self.selection.field = Some(field),
            UiAction::SetTcpView(on) => {
                self.tcp_view = on;
                self.scroll_to_selection();
            }
            UiAction::SetZoom(z) => self.zoom = z.clamp(0.5, 3.0),
            UiAction::SetDark(on) => self.dark = on,
            UiAction::SetFullscreen(on) => self.fullscreen = on,
            UiAction::SetLivePanel(on) => {
                self.live_panel = on;
                // The diagram's height changed: keep the selection in view.
                self.scroll_to_selection();
            }
            UiAction::SetPane(pane, on) => {
                *match pane {
                    Pane::Narration => &mut self.narration_panel,
                    Pane::Details => &mut self.details_panel,
                    Pane::Live => &mut self.live_panel,
                    Pane::Connections => &mut self.connections_panel,
                    Pane::Check => &mut self.check_panel,
                } = on;
                // The diagram's height or width changed: keep the selection in view.
                self.scroll_to_selection();
            }
            // The window starts and stops watches (MailwireApp::act).
            UiAction::Open(_) | UiAction::StartWatch | UiAction::StopWatch => {}
            UiAction::FollowStream(conn) => {
                let line_ends = self.follow.is_some_and(|f| f.line_ends);
                self.follow = Some(super::follow::FollowState { conn, line_ends });
            }
            UiAction::CloseFollow => self.follow = None,
            UiAction::SetFollowLineEnds(on) => {
                if let Some(f) = &mut self.follow {
                    f.line_ends = on;
                }
            }
            UiAction::GoToConnection(conn) => {
                self.quiz.asking = None;
                if let Some(step) = first_step_of_connection(timeline, conn) {
                    if self.cursor.is_none_or(|c| c < step) {
                        self.cursor = Some(step);
                    }
                    self.selection = Selection {
                        step: Some(step),
                        ..Selection::default()
                    };
                    if timeline
                        .steps
                        .get(step)
                        .is_some_and(|r| !r.outcome.exchanges.is_empty())
                    {
                        self.select_exchange(step, 0, timeline);
                    }
                    self.scroll_to_selection();
                }
            }
            UiAction::GoToStep { step, exchange } => {
                self.quiz.asking = None;
                if step < recorded {
                    if self.cursor.is_none_or(|c| c < step) {
                        self.cursor = Some(step);
                    }
                    match exchange {
                        Some(e) => self.select_exchange(step, e, timeline),
                        None => {
                            self.selection = Selection {
                                step: Some(step),
                                ..Selection::default()
                            }
                        }
                    }
                    self.scroll_to_selection();
                }
            }
            // A capture file runs nothing: the live panel is hidden and says why.
            UiAction::Run(_)
            | UiAction::ConsoleSend
            | UiAction::ManageLogIn
            | UiAction::ManageMessage { .. }
            | UiAction::SendMail
                if self.recorded_only => {}
            UiAction::Run(steps) => return self.run(steps),
            UiAction::SetQuiz(on) => {
                self.quiz.on = on;
                if !on && let Some(asking) = self.quiz.asking.take() {
                    self.view_step(asking.target, timeline);
                }
            }
            UiAction::QuizAnswer(choice) => self.quiz.answer(choice),
            UiAction::QuizContinue => self.quiz_continue(timeline),
            UiAction::ConsoleSend => {
                let steps = self.console_steps(status);
                self.forms.console.line.clear();
                return self.run(steps);
            }
            UiAction::ManageLogIn => {
                self.forms.manage.login_after = Some(session_steps(timeline, MENU_POP3_SESSION));
                let steps = self.manage_login_steps(status);
                return self.run_or_explain(steps, |f| &mut f.manage.problem);
            }
            UiAction::ManageMessage { read } => {
                let steps = self.manage_number().map(|n| {
                    let (caption, action) = if read {
                        (format!("RETR {n}"), Action::Read(n))
                    } else {
                        (format!("DELE {n}"), Action::Delete(n))
                    };
                    let caption = format!("Manage Mail: {caption}");
                    vec![extra_step(MENU_POP3_SESSION, caption, action)]
                });
                return self.run_or_explain(steps, |f| &mut f.manage.problem);
            }
            UiAction::SendMail => {
                self.forms.send.sent_after = Some(session_steps(timeline, MENU_SMTP_SESSION));
                let steps = self.send_mail_steps();
                return self.run_or_explain(steps, |f| &mut f.send.problem);
            }
        }
        Vec::new()
    }

    /// Asks the worker to run ad-hoc steps, in order.
    fn run(&mut self, steps: Vec<Step>) -> Vec<WorkerCommand> {
        if steps.is_empty() {
            return Vec::new();
        }
        self.awaiting_step = true;
        steps.into_iter().map(WorkerCommand::Extra).collect()
    }

    /// Runs the steps a form asked for, or shows the form's problem.
    fn run_or_explain(
        &mut self,
        steps: Result<Vec<Step>, String>,
        problem: impl Fn(&mut LiveForms) -> &mut Option<String>,
    ) -> Vec<WorkerCommand> {
        match steps {
            Ok(steps) => {
                *problem(&mut self.forms) = None;
                self.run(steps)
            }
            Err(why) => {
                *problem(&mut self.forms) = Some(why);
                Vec::new()
            }
        }
    }

    fn next(&mut self, timeline: &Timeline, status: &WorkerStatus) -> Vec<WorkerCommand> {
        let recorded = timeline.steps.len();
        if self.quiz.asking.is_some() {
            // Next goes on once the question is answered (Space, a presenter's clicker).
            self.quiz_continue(timeline);
            return Vec::new();
        }
        match self.cursor {
            Some(c) if c + 1 < recorded => {
                self.advance_to(c + 1, timeline);
                Vec::new()
            }
            None if recorded > 0 => {
                self.advance_to(0, timeline);
                Vec::new()
            }
            _ if self.awaiting_step || status.done || self.recorded_only => Vec::new(),
            _ => {
                self.awaiting_step = true;
                let mut commands: Vec<WorkerCommand> = live_pop3_quits(timeline, status)
                    .into_iter()
                    .map(WorkerCommand::Extra)
                    .collect();
                commands.push(WorkerCommand::Next);
                commands
            }
        }
    }

    /// Called when play is on: the commands of the step that is due at `now`, if any.
    pub fn tick(
        &mut self,
        now: f64,
        timeline: &Timeline,
        status: &WorkerStatus,
    ) -> Vec<WorkerCommand> {
        if !self.playing || self.awaiting_step || now < self.next_tick {
            return Vec::new();
        }
        if self.quiz.asking.is_some() {
            // Play waits for the class; after the step shows, the next comes a full turn later.
            self.next_tick = now + f64::from(self.seconds_per_step);
            return Vec::new();
        }
        if self.at_end(timeline, status) {
            self.playing = false;
            return Vec::new();
        }
        self.next_tick = now + f64::from(self.seconds_per_step);
        self.next(timeline, status)
    }

    /// The timeline gained steps (from Next, a console line, a form): show the newest.
    pub fn on_steps_added(&mut self, timeline: &Timeline) {
        self.awaiting_step = false;
        if let Some(last) = timeline.steps.len().checked_sub(1) {
            self.advance_to(last, timeline);
        }
    }

    /// Moves the cursor on to `target`, unless the quiz first asks about a step on the way:
    /// then the cursor stops on the step before that one.
    fn advance_to(&mut self, target: usize, timeline: &Timeline) {
        if let Some(asking) = &mut self.quiz.asking {
            // More steps arrived while a question waits: they come after it.
            asking.target = asking.target.max(target);
            return;
        }
        match self.quiz.first_to_ask(timeline, self.cursor, target) {
            Some(step) => {
                if let Some(before) = step.checked_sub(1)
                    && self.cursor != Some(before)
                {
                    self.view_step(before, timeline);
                }
                self.quiz.ask(step, target);
            }
            None => self.view_step(target, timeline),
        }
    }

    /// After an answer: the next question, or the step shown (and on towards the target).
    fn quiz_continue(&mut self, timeline: &Timeline) {
        if let Some((step, target)) = self.quiz.proceed() {
            self.view_step(step, timeline);
            if target > step {
                self.advance_to(target, timeline);
            }
        }
    }

    /// The worker started a fresh run: nothing recorded is left to select.
    pub fn forget_run(&mut self) {
        self.selection = Selection::default();
        self.cursor = None;
        self.awaiting_step = false;
        self.playing = false;
        self.scroll_to_row = Some(0);
        self.quiz.forget();
        self.follow = None;
    }

    fn view_step(&mut self, step: usize, timeline: &Timeline) {
        self.cursor = Some(step);
        let has_exchange = timeline
            .steps
            .get(step)
            .is_some_and(|s| !s.outcome.exchanges.is_empty());
        if has_exchange {
            self.select_exchange(step, 0, timeline);
        } else {
            self.selection = Selection {
                step: Some(step),
                ..Selection::default()
            };
        }
        self.scroll_to_selection();
    }

    fn scroll_to_selection(&mut self) {
        // The diagram resolves the selection to a row when it draws.
        self.scroll_to_selection = true;
    }

    /// Selects an exchange, the first frame that carried it, and its bytes in that frame.
    pub fn select_exchange(&mut self, step: usize, exchange: usize, timeline: &Timeline) {
        let unit = timeline.unit(step, exchange);
        let carrier = unit.and_then(|u| u.carriers.first());
        self.reveal_field = true;
        self.selection = Selection {
            step: Some(step),
            exchange: Some(exchange),
            frame: carrier.map(|c| c.frame),
            field: carrier.and_then(|c| {
                Some(SelectedField {
                    key: FieldKey::Unit(timeline.unit_index(step, exchange)?),
                    range: c.range.clone(),
                })
            }),
        };
    }

    /// Selects a frame, and the step and exchange it belongs to (when known).
    pub fn select_frame(&mut self, frame: usize, timeline: &Timeline) {
        self.reveal_field = true;
        let step = step_of_frame(timeline, frame);
        let exchange = step.and_then(|s| {
            let record = timeline.steps.get(s)?;
            (0..record.outcome.exchanges.len()).find(|&e| {
                timeline
                    .unit(s, e)
                    .is_some_and(|u| u.carriers.iter().any(|c| c.frame == frame))
            })
        });
        let field = match (step, exchange) {
            (Some(s), Some(e)) => timeline.unit(s, e).and_then(|u| {
                let c = u.carriers.iter().find(|c| c.frame == frame)?;
                Some(SelectedField {
                    key: FieldKey::Unit(timeline.unit_index(s, e)?),
                    range: c.range.clone(),
                })
            }),
            _ => None,
        };
        self.selection = Selection {
            step: step.or(self.selection.step),
            exchange,
            frame: Some(frame),
            field,
        };
    }

    /// The console's line as steps: connect first when the session is not connected; a
    /// typed QUIT is the QUIT action (so the session is closed afterwards). Nothing when the
    /// Server field is not an address (the panel shows why).
    pub fn console_steps(&self, status: &WorkerStatus) -> Vec<Step> {
        let Ok(to) = server_target(&self.forms.console.server) else {
            return Vec::new();
        };
        let line = self.forms.console.line.trim_end_matches(['\r', '\n']);
        let line = line.to_string();
        let session = if self.forms.console.session.trim().is_empty() {
            CONSOLE_SESSION.to_string()
        } else {
            self.forms.console.session.trim().to_string()
        };
        let mut steps = Vec::new();
        if !status.connected.contains(&session) {
            steps.push(extra_step(
                &session,
                format!(
                    "Console: connect ({})",
                    protocol_name(self.forms.console.protocol)
                ),
                Action::Connect {
                    protocol: self.forms.console.protocol,
                    mss: None,
                    to,
                },
            ));
        }
        if line.trim().is_empty() {
            return steps;
        }
        let action = if line.trim().eq_ignore_ascii_case("QUIT") {
            Action::Quit
        } else {
            Action::Send(line.clone())
        };
        steps.push(extra_step(&session, format!("Console: {line}"), action));
        steps
    }

    /// Manage Mail: log in (connecting first when needed), or why the Server field is not
    /// an address.
    pub fn manage_login_steps(&self, status: &WorkerStatus) -> Result<Vec<Step>, String> {
        let to = server_target(&self.forms.manage.server)?;
        let mut steps = Vec::new();
        if !status.connected.contains(MENU_POP3_SESSION) {
            steps.push(extra_step(
                MENU_POP3_SESSION,
                "Manage Mail: connect to the POP3 server".to_string(),
                Action::Connect {
                    protocol: Protocol::Pop3,
                    mss: None,
                    to,
                },
            ));
        }
        steps.push(extra_step(
            MENU_POP3_SESSION,
            format!("Manage Mail: log in as {}", self.forms.manage.user),
            Action::Login {
                user: self.forms.manage.user.clone(),
                password: self.forms.manage.password.clone(),
                apop: false,
            },
        ));
        Ok(steps)
    }

    /// Manage Mail: the message number typed, or why it is not one.
    pub fn manage_number(&self) -> Result<u32, String> {
        let text = self.forms.manage.number.trim();
        match text.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "\"{text}\" is not a message number: type 1, 2, ... (LIST shows them)"
            )),
        }
    }

    /// Send Mail: the steps (connect, HELO, the mail, QUIT), or "Incorrect format" when an
    /// address is not of the form X@Y (as the seed-001 client says).
    pub fn send_mail_steps(&self) -> Result<Vec<Step>, String> {
        let from = self.forms.send.from.trim().to_string();
        let to: Vec<String> = self
            .forms
            .send
            .to
            .split(',')
            .map(|a| a.trim().to_string())
            .collect();
        let valid = crate::client::console::is_address(&from)
            && to.iter().all(|a| crate::client::console::is_address(a));
        if !valid {
            return Err("Incorrect format".to_string());
        }
        let target = server_target(&self.forms.send.server)?;
        let domain = from
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
            .to_string();
        let session = MENU_SMTP_SESSION;
        Ok(vec![
            extra_step(
                session,
                "Send Mail: connect to the SMTP server".to_string(),
                Action::Connect {
                    protocol: Protocol::Smtp,
                    mss: None,
                    to: target,
                },
            ),
            extra_step(
                session,
                "Send Mail: EHLO names the sending host and asks what the server supports \
                 (8BITMIME lets a non-ASCII body go as it is)"
                    .to_string(),
                Action::Send(format!("EHLO {domain}")),
            ),
            extra_step(
                session,
                format!(
                    "Send Mail: MAIL, RCPT, DATA and the message to {}",
                    to.join(", ")
                ),
                Action::SendMail(MailSpec {
                    from,
                    to: to.into(),
                    subject: self.forms.send.subject.clone(),
                    body: self.forms.send.body.clone(),
                    date: crate::scenario::format::MailDate::Now,
                }),
            ),
            extra_step(session, "Send Mail: QUIT".to_string(), Action::Quit),
        ])
    }
}

/// How many steps of `session` the timeline holds.
pub fn session_steps(timeline: &Timeline, session: &str) -> usize {
    timeline
        .steps
        .iter()
        .filter(|s| s.outcome.session == session)
        .count()
}

/// Before the scenario goes on, its live-use POP3 sessions (the console's, Manage Mail's)
/// that are still connected say QUIT: a session logged in holds its maildrop's lock (RFC
/// 1939 section 8), and the scenario's own log-in would then fail with -ERR [IN-USE].
pub fn live_pop3_quits(timeline: &Timeline, status: &WorkerStatus) -> Vec<Step> {
    status
        .connected
        .iter()
        .filter(|session| is_extra_session(session))
        .filter(|session| {
            timeline
                .steps
                .iter()
                .rev()
                .find(|s| s.outcome.session == **session)
                .and_then(|s| s.outcome.protocol)
                == Some(Protocol::Pop3)
        })
        .map(|session| {
            extra_step(
                session,
                format!(
                    "Live use: QUIT closes session \"{session}\" before the scenario goes on \
                     (a POP3 session holds its maildrop's lock until QUIT, and the scenario \
                     may need that maildrop)"
                ),
                Action::Quit,
            )
        })
        .collect()
}

/// A Server field as typed: `None` (empty: mailwire's own server), another server's
/// address, or why the text is not one.
pub fn server_target(text: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    // The form shows the problem: here the error becomes its text.
    crate::scenario::format::server_address(text)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// An ad-hoc step for the worker.
pub fn extra_step(session: &str, caption: String, action: Action) -> Step {
    Step {
        caption,
        rfc: None,
        session: session.to_string(),
        action,
        expect: None,
        line: 0,
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Pop3 => "POP3",
        Protocol::Smtp => "SMTP",
    }
}

/// The step whose frame range holds `frame`; frames captured between steps (late ACKs,
/// FINs) belong to the step before them.
pub fn step_of_frame(timeline: &Timeline, frame: usize) -> Option<usize> {
    let after = timeline.steps.partition_point(|s| s.frames.start <= frame);
    after.checked_sub(1)
}

/// The first step on connection `conn` (index into the analyzer's connections): the first
/// whose ends are that connection's.
pub fn first_step_of_connection(timeline: &Timeline, conn: usize) -> Option<usize> {
    let connection = timeline.analyzer.connections().get(conn)?;
    timeline
        .steps
        .iter()
        .position(|r| r.ends == Some(connection.ends()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Exchange, ExchangeKind, StepOutcome};

    fn timeline_with_steps(n: usize) -> Timeline {
        let mut t = Timeline::new("test");
        for i in 0..n {
            let outcome = StepOutcome {
                index: i,
                session: "main".into(),
                protocol: Some(Protocol::Pop3),
                conn: None,
                exchanges: vec![Exchange {
                    kind: ExchangeKind::Reply,
                    line: "+OK".into(),
                    more: Vec::new(),
                    octets: 5,
                    stream: Some(0..5),
                }],
                check: Ok(()),
                events: Vec::new(),
                server_closed: false,
            };
            t.push_step(outcome, format!("step {i}"), None, None, 0..0);
        }
        t
    }

    fn status(done: bool) -> WorkerStatus {
        WorkerStatus {
            total_steps: 3,
            done,
            ..WorkerStatus::default()
        }
    }

    #[test]
    fn next_asks_the_worker_once_then_follows_the_new_step() {
        let mut s = UiState::default();
        let empty = Timeline::new("t");
        let commands = s.apply(UiAction::Next, &empty, &status(false));
        assert!(matches!(commands.as_slice(), [WorkerCommand::Next]));
        assert!(s.awaiting_step);
        // A second press while the step runs asks nothing more.
        assert!(s.apply(UiAction::Next, &empty, &status(false)).is_empty());
        let one = timeline_with_steps(1);
        s.on_steps_added(&one);
        assert_eq!(s.cursor, Some(0));
        assert_eq!(s.selection.step, Some(0));
        assert_eq!(s.selection.exchange, Some(0));
        // Without capture there is no frame to show, and nothing is made up.
        assert_eq!(s.selection.frame, None);
        assert_eq!(s.selection.field, None);
    }

    #[test]
    fn back_and_home_move_through_what_was_recorded() {
        let t = timeline_with_steps(3);
        let mut s = UiState::default();
        s.on_steps_added(&t);
        assert_eq!(s.cursor, Some(2));
        assert!(s.apply(UiAction::Back, &t, &status(false)).is_empty());
        assert_eq!(s.cursor, Some(1));
        assert!(s.apply(UiAction::Home, &t, &status(false)).is_empty());
        assert_eq!(s.cursor, Some(0));
        s.apply(UiAction::Back, &t, &status(false));
        assert_eq!(s.cursor, Some(0));
        // Next replays the recorded steps before asking for new ones.
        assert!(s.apply(UiAction::Next, &t, &status(false)).is_empty());
        assert_eq!(s.cursor, Some(1));
        assert!(s.apply(UiAction::Next, &t, &status(false)).is_empty());
        assert_eq!(s.cursor, Some(2));
        assert_eq!(s.apply(UiAction::Next, &t, &status(false)).len(), 1);
    }

    #[test]
    fn play_steps_on_its_timer_and_stops_at_the_end() {
        let t = timeline_with_steps(3);
        let mut s = UiState {
            cursor: Some(0),
            ..UiState::default()
        };
        s.apply(UiAction::TogglePlay, &t, &status(true));
        assert!(s.playing);
        assert!(s.tick(10.0, &t, &status(true)).is_empty());
        assert_eq!(s.cursor, Some(1));
        // Not due yet.
        s.tick(10.5, &t, &status(true));
        assert_eq!(s.cursor, Some(1));
        s.tick(12.5, &t, &status(true));
        assert_eq!(s.cursor, Some(2));
        s.tick(15.0, &t, &status(true));
        assert!(!s.playing, "at the end of a finished scenario play stops");
    }

    #[test]
    fn reset_forgets_the_selection_and_asks_for_a_fresh_run() {
        let t = timeline_with_steps(2);
        let mut s = UiState::default();
        s.on_steps_added(&t);
        let commands = s.apply(UiAction::Reset, &t, &status(false));
        assert!(matches!(commands.as_slice(), [WorkerCommand::Reset]));
        assert_eq!(s.cursor, None);
        assert_eq!(s.selection, Selection::default());
        let commands = s.apply(UiAction::Load("in-use".into()), &t, &status(false));
        assert!(matches!(commands.as_slice(), [WorkerCommand::Load(n)] if n == "in-use"));
        assert_eq!(s.scenario, "in-use");
    }

    #[test]
    fn the_console_connects_first_and_quit_closes() {
        let mut s = UiState::default();
        s.forms.console.line = "USER mrose".into();
        let mut st = status(false);
        let steps = s.console_steps(&st);
        assert_eq!(steps.len(), 2);
        assert!(matches!(
            steps[0].action,
            Action::Connect {
                protocol: Protocol::Pop3,
                ..
            }
        ));
        assert_eq!(steps[1].action, Action::Send("USER mrose".into()));
        assert_eq!(steps[1].session, "console");
        st.connected.insert("console".into());
        assert_eq!(s.console_steps(&st).len(), 1);
        s.forms.console.line = "quit".into();
        assert_eq!(s.console_steps(&st)[0].action, Action::Quit);
    }

    #[test]
    fn a_server_field_names_another_server_or_says_why_not() {
        let mut s = UiState::default();
        let st = status(false);
        s.forms.console.line = "STAT".into();
        s.forms.console.server = "127.0.0.1:8110".into();
        let steps = s.console_steps(&st);
        assert!(matches!(
            steps[0].action,
            Action::Connect { to: Some(a), .. } if a.port() == 8110
        ));
        s.forms.console.server = "nonsense".into();
        assert!(s.console_steps(&st).is_empty(), "nothing is sent");
        assert!(
            server_target("nonsense")
                .unwrap_err()
                .contains("not a server address")
        );
        s.forms.manage.server = "localhost:8110".into();
        let steps = s.manage_login_steps(&st).unwrap();
        assert!(matches!(
            steps[0].action,
            Action::Connect { to: Some(_), .. }
        ));
        s.forms.send.server = "x".into();
        assert!(s.send_mail_steps().is_err());
        s.forms.send.server = String::new();
        let steps = s.send_mail_steps().unwrap();
        assert!(matches!(steps[0].action, Action::Connect { to: None, .. }));
    }

    #[test]
    fn send_mail_says_incorrect_format_unless_x_at_y() {
        let mut s = UiState::default();
        s.forms.send.to = "bob".into();
        assert_eq!(s.send_mail_steps().unwrap_err(), "Incorrect format");
        s.forms.send.to = "bob@localhost, carol@localhost".into();
        let steps = s.send_mail_steps().unwrap();
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[1].action, Action::Send("EHLO localhost".into()));
        match &steps[2].action {
            Action::SendMail(m) => assert_eq!(*m.to, ["bob@localhost", "carol@localhost"]),
            other => panic!("{other:?}"),
        }
        s.forms.manage.number = "x".into();
        assert!(s.manage_number().is_err());
        s.forms.manage.number = "2".into();
        assert_eq!(s.manage_number(), Ok(2));
    }
}
