//! "Check a server": the conformance checker of [`crate::check`] in the window.
//!
//! A form (a built-in "student's server" to spot the error in, mailwire's own servers, or
//! another server's POP3 and SMTP addresses with a user, a password, a recipient and
//! whether the checks may delete), a Run button, and the results as a table (id,
//! protocol, RFC section, level, verdict; what was expected, sent and got for the row
//! selected). The checker runs on a thread of its own ([`run_captured`]: each of its steps
//! has the run's limit, so a broken server cannot hold the window) while the checked ports
//! are captured live where capture is possible; the panel shows which check runs. When the
//! run ends its [`CheckTimeline`] replaces the window's timeline, shown like a recorded
//! lesson: a step per exchange of each check, the packets linked by stream offset, and a
//! row's click selects the step of the exchange its check judged.
//!
//! Like the other panes, the widgets edit only the form's text; a press is a
//! [`CheckAction`] that [`CheckPanel::apply`] (unit-tested without painting) turns into
//! state changes and an [`Effect`] the window carries out.
//!
//! The window usually runs in mailwire's private network namespace
//! (`capture::sandbox`), where 127.0.0.1 is not the computer's own loopback: a student's
//! server started in a terminal cannot be reached from there, and the panel says so and how
//! to check it instead (`mailwire check` in a terminal, or the window with
//! `--no-sandbox`).

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use eframe::egui::{self, Color32, Panel, RichText, ScrollArea, Ui};

use super::app::{MailwireApp, reserve_export_path};
use super::controls;
use super::state::{Pane, UiAction};
use super::theme::Palette;
use super::worker::WorkerStatus;
use crate::check::evidence::{CaptureSettings, CheckTimeline, run_captured};
use crate::check::replay::{self, Flaw};
use crate::check::{self, CheckInfo, CheckResult, Report, RunEvent, Settings, Verdict};
use crate::exchange::ExchangeKind;
use crate::timeline::Timeline;

/// What the panel says when the window runs in mailwire's private network.
pub const SANDBOX_NOTE: &str = "This window runs in mailwire's private network: \
    127.0.0.1 here is not your computer's loopback, so a server you started in a terminal \
    cannot be reached from here (the student's servers and mailwire's own can). Check yours \
    in a terminal with `mailwire check --pop3 HOST:PORT --smtp HOST:PORT --user U --pass P` \
    (`--pcap FILE` keeps the packets), or start the window with `mailwire --no-sandbox`.";

/// The file names' start when saving.
const SAVE_STEM: &str = "mailwire-check";

/// Which servers the checker talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A built-in "student's server": mailwire's servers with one seed's flaw planted.
    Replay(Flaw),
    /// mailwire's own servers (those of the scenario the window runs).
    Own,
    /// The servers typed in the form.
    Typed,
}

/// The form's fields, as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckForm {
    pub target: Target,
    /// POP3 server, HOST:PORT (empty: no POP3 checks).
    pub pop3: String,
    /// SMTP server, HOST:PORT (empty: no SMTP checks).
    pub smtp: String,
    pub user: String,
    pub password: String,
    /// Where the checker's mail goes (empty: USER@localhost).
    pub rcpt: String,
    /// With no mail of the checker's own, the checks that delete may use the last message.
    pub allow_delete: bool,
    /// The limit of each step (a connection, a reply), in seconds.
    pub timeout: f32,
    /// The folder Save writes to, as typed (empty: the current folder).
    pub folder: String,
}

impl Default for CheckForm {
    fn default() -> Self {
        Self {
            target: Target::Replay(Flaw::ClassProject),
            pop3: "127.0.0.1:8110".into(),
            smtp: "127.0.0.1:8025".into(),
            user: "student".into(),
            password: "student".into(),
            rcpt: String::new(),
            allow_delete: false,
            timeout: 3.0,
            folder: String::new(),
        }
    }
}

/// What can be saved of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveKind {
    Json,
    Junit,
    Pcapng,
}

impl SaveKind {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            SaveKind::Json => "json",
            SaveKind::Junit => "xml",
            SaveKind::Pcapng => "pcapng",
        }
    }
}

/// What the panel's widgets ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckAction {
    /// Pick the servers to check.
    SetTarget(Target),
    /// Run the checks.
    Run,
    /// Stop the run after the check that runs now.
    Stop,
    /// Select a result (index into the results): its details, and its step in the diagram.
    SelectRow(usize),
    /// Save the finished run.
    Save(SaveKind),
}

/// What the window must do after an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start a run on a thread.
    Start(RunRequest),
    /// Apply a window action (a step selected in the diagram).
    Window(UiAction),
    /// Write a file of the finished run.
    Save(SaveKind),
}

/// A run to start.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub target: Target,
    /// For [`Target::Replay`], the replay server's addresses and user replace these.
    pub settings: Settings,
    /// Whether the window runs in mailwire's private network (said in the capture status).
    pub sandboxed: bool,
}

/// What the window knows that the panel needs: where mailwire's own servers are, and
/// whether it runs in the private network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckEnv {
    pub sandboxed: bool,
    /// mailwire's own POP3 and SMTP servers, while a scenario runs.
    pub own: Option<(SocketAddr, SocketAddr)>,
    /// A user of theirs (name, password).
    pub own_user: Option<(String, String)>,
}

impl CheckEnv {
    /// The environment of a window whose worker said `status`.
    pub fn of(status: &WorkerStatus) -> Self {
        CheckEnv {
            sandboxed: status.sandboxed || crate::capture::sandbox::is_sandboxed_copy(),
            own: status.pop3_addr.zip(status.smtp_addr),
            own_user: status.users.first().cloned(),
        }
    }
}

/// What the run's thread reports.
#[derive(Debug)]
pub enum RunMessage {
    /// What is being checked (the replay server's addresses once it listens).
    Checking(String),
    /// A check begins.
    Started(CheckInfo),
    /// A check's result.
    Finished(Box<CheckResult>),
    /// The run could not start (a replay server that did not).
    Failed(String),
    /// The run ended: its report and timeline.
    Done(Box<(Report, CheckTimeline)>),
}

/// A run that has ended, as the panel keeps it.
#[derive(Debug, Clone)]
pub struct FinishedRun {
    pub report: Report,
    /// The run's timeline (the window shows the same one).
    pub timeline: Arc<Timeline>,
    /// For each result: its steps in the timeline.
    pub steps: Vec<Range<usize>>,
    /// For each result: the step of the exchange it judged.
    pub judged: Vec<Option<usize>>,
}

/// A run going on.
struct RunHandle {
    rx: Receiver<RunMessage>,
    stop: Arc<AtomicBool>,
}

/// The panel's state: the form, the run going on, the results.
pub struct CheckPanel {
    pub form: CheckForm,
    /// Results so far (this run's, or the last run's).
    pub results: Vec<CheckResult>,
    /// How many checks a run has.
    pub total: usize,
    /// A run is going on.
    pub busy: bool,
    /// The check running now.
    pub current: Option<CheckInfo>,
    /// What is being checked.
    pub checking: String,
    /// The last run, once ended.
    pub finished: Option<FinishedRun>,
    /// The result selected.
    pub selected: Option<usize>,
    /// Why the last press did nothing, or why the run failed.
    pub problem: Option<String>,
    /// What the last saves wrote (or why not).
    pub saved: Vec<SaveResult>,
    /// The window shows the last run's timeline (instead of the scenario's).
    pub shown: bool,
    /// A Stop was asked for.
    pub stopping: bool,
    run: Option<RunHandle>,
    saves: (Sender<SaveResult>, Receiver<SaveResult>),
}

/// What a save reports: the line to show (the path written), or why nothing was.
pub type SaveResult = Result<String, String>;

impl std::fmt::Debug for CheckPanel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckPanel")
            .field("form", &self.form)
            .field("results", &self.results.len())
            .field("busy", &self.busy)
            .field("selected", &self.selected)
            .field("shown", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Default for CheckPanel {
    fn default() -> Self {
        Self {
            form: CheckForm::default(),
            results: Vec::new(),
            total: check_count(),
            busy: false,
            current: None,
            checking: String::new(),
            finished: None,
            selected: None,
            problem: None,
            saved: Vec::new(),
            shown: false,
            stopping: false,
            run: None,
            saves: crossbeam_channel::unbounded(),
        }
    }
}

/// How many checks a run has.
pub fn check_count() -> usize {
    check::smtp::checks().len()
        + check::pop3::checks().len()
        + check::smtp::round_trip_checks().len()
}

/// A HOST:PORT as typed, or why it is not one (empty: `None`). Only its form is checked
/// here (no name lookup on the window's thread); the checker's thread connects.
fn address(what: &str, text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let well_formed = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    match well_formed {
        true => Ok(Some(text.to_string())),
        false => Err(format!(
            "{what} server \"{text}\" is not HOST:PORT (for example 127.0.0.1:8110)"
        )),
    }
}

impl CheckPanel {
    /// Applies one action; returns what the window must do.
    pub fn apply(&mut self, action: CheckAction, env: &CheckEnv) -> Option<Effect> {
        match action {
            CheckAction::SetTarget(target) => {
                self.form.target = target;
                self.problem = None;
                // mailwire's own servers: a user of the scenario's, ready to edit.
                if let (Target::Own, Some((user, pass))) = (target, &env.own_user) {
                    self.form.user = user.clone();
                    self.form.password = pass.clone();
                    self.form.rcpt = String::new();
                }
                None
            }
            CheckAction::Run if self.busy => None,
            CheckAction::Run => match self.request(env) {
                Ok(request) => {
                    self.problem = None;
                    self.results.clear();
                    self.selected = None;
                    self.current = None;
                    self.stopping = false;
                    self.busy = true;
                    self.checking = String::new();
                    Some(Effect::Start(request))
                }
                Err(why) => {
                    self.problem = Some(why);
                    None
                }
            },
            CheckAction::Stop => {
                if let Some(run) = &self.run {
                    run.stop.store(true, Ordering::SeqCst);
                    self.stopping = true;
                }
                None
            }
            CheckAction::SelectRow(row) => {
                if row >= self.results.len() {
                    return None;
                }
                self.selected = Some(row);
                if self.busy || !self.shown {
                    return None;
                }
                let run = self.finished.as_ref()?;
                let step = run.judged.get(row).copied().flatten()?;
                let exchange = judged_exchange(&run.timeline, step);
                Some(Effect::Window(UiAction::GoToStep { step, exchange }))
            }
            CheckAction::Save(kind) => {
                if self.finished.is_some() {
                    Some(Effect::Save(kind))
                } else {
                    self.problem = Some("nothing to save yet: run the checks first".into());
                    None
                }
            }
        }
    }

    /// The run the form asks for, or why the form is not complete.
    pub fn request(&self, env: &CheckEnv) -> Result<RunRequest, String> {
        let f = &self.form;
        let timeout = Duration::from_secs_f32(f.timeout.clamp(0.5, 60.0));
        let settings = |pop3: Option<String>, smtp: Option<String>, user: &str, pass: &str| {
            let rcpt = match f.rcpt.trim() {
                "" => format!("{user}@localhost"),
                r => r.to_string(),
            };
            Settings {
                pop3,
                smtp,
                user: user.to_string(),
                pass: pass.to_string(),
                rcpt,
                allow_delete: f.allow_delete,
                timeout,
            }
        };
        let settings = match f.target {
            Target::Replay(_) => settings(None, None, "student", "student"),
            Target::Own => {
                let Some((pop3, smtp)) = env.own else {
                    return Err("mailwire's own servers are not running here (no scenario \
                                runs in this window): pick a student's server or type one"
                        .into());
                };
                let (user, pass) = match (f.user.trim(), env.own_user.as_ref()) {
                    ("", Some((u, p))) => (u.clone(), p.clone()),
                    (u, _) => (u.to_string(), f.password.clone()),
                };
                settings(Some(pop3.to_string()), Some(smtp.to_string()), &user, &pass)
            }
            Target::Typed => {
                let pop3 = address("the POP3", &f.pop3)?;
                let smtp = address("the SMTP", &f.smtp)?;
                if pop3.is_none() && smtp.is_none() {
                    return Err("type a POP3 server, an SMTP server or both (HOST:PORT)".into());
                }
                if f.user.trim().is_empty() {
                    return Err("type a user the checker may log in as and send mail to".into());
                }
                settings(pop3, smtp, f.user.trim(), &f.password)
            }
        };
        Ok(RunRequest {
            target: f.target,
            settings,
            sandboxed: env.sandboxed,
        })
    }

    /// Takes one message of the run's thread; returns the finished run when it ended.
    pub fn on_message(&mut self, message: RunMessage) -> Option<FinishedRun> {
        match message {
            RunMessage::Checking(what) => self.checking = what,
            RunMessage::Started(info) => self.current = Some(info),
            RunMessage::Finished(result) => self.results.push(*result),
            RunMessage::Failed(why) => {
                self.busy = false;
                self.current = None;
                self.run = None;
                self.problem = Some(why);
            }
            RunMessage::Done(done) => {
                let (report, evidence) = *done;
                self.busy = false;
                self.current = None;
                self.run = None;
                self.results = report.checks.clone();
                let run = FinishedRun {
                    report,
                    timeline: Arc::new(evidence.timeline),
                    steps: evidence.steps,
                    judged: evidence.judged,
                };
                self.finished = Some(run.clone());
                self.saved.clear();
                return Some(run);
            }
        }
        None
    }

    /// Starts the run on its own thread ("check-run").
    pub fn start(&mut self, request: RunRequest) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("check-run".into())
            .spawn(move || run_thread(request, &tx, &stop_flag));
        match spawned {
            Ok(_) => self.run = Some(RunHandle { rx, stop }),
            Err(e) => {
                self.busy = false;
                self.problem = Some(format!("cannot start the checker's thread: {e}"));
            }
        }
    }

    /// The run's messages so far (never blocks).
    pub fn pending_messages(&self) -> Vec<RunMessage> {
        self.run
            .as_ref()
            .map(|r| r.rx.try_iter().collect())
            .unwrap_or_default()
    }

    /// Writes a file of the finished run on its own thread; the path (or why not) comes back
    /// through [`Self::drain_saves`]. Files are never overwritten (a number is added).
    pub fn save(&mut self, kind: SaveKind) {
        let Some(run) = &self.finished else { return };
        let folder = controls::export_folder(&self.form.folder);
        let report = run.report.clone();
        let timeline = Arc::clone(&run.timeline);
        let done = self.saves.0.clone();
        let spawned =
            std::thread::Builder::new()
                .name("check-save".into())
                .spawn(move || {
                    let result = reserve_export_path(&folder, SAVE_STEM, kind.extension())
                        .and_then(|path| match write_save(kind, &report, &timeline, &path) {
                            Ok(()) => Ok(format!("wrote {}", path.display())),
                            Err(e) => {
                                // Leave no empty file behind.
                                let _ = std::fs::remove_file(&path);
                                Err(e)
                            }
                        });
                    let _ = done.send(result);
                });
        if let Err(e) = spawned {
            self.saved.push(Err(format!("cannot start the save: {e}")));
        }
    }

    /// Takes the results of finished saves.
    pub fn drain_saves(&mut self) {
        while let Ok(result) = self.saves.1.try_recv() {
            self.saved.push(result);
        }
    }
}

/// The exchange of `step` a row shows: its last reply (what came back), else its last
/// exchange.
pub fn judged_exchange(timeline: &Timeline, step: usize) -> Option<usize> {
    let exchanges = &timeline.steps.get(step)?.outcome.exchanges;
    exchanges
        .iter()
        .rposition(|x| x.kind == ExchangeKind::Reply)
        .or_else(|| exchanges.len().checked_sub(1))
}

/// Writes one file of a finished run.
fn write_save(
    kind: SaveKind,
    report: &Report,
    timeline: &Timeline,
    path: &std::path::Path,
) -> Result<(), String> {
    let write = |text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    match kind {
        SaveKind::Json => write(report.to_json()),
        SaveKind::Junit => write(report.to_junit()),
        SaveKind::Pcapng => {
            let hints = crate::export::pcapng::ExportHints::from_timeline(timeline);
            crate::export::pcapng::write_pcapng(timeline, path, &hints).map_err(|e| e.to_string())
        }
    }
}

/// The run's thread: starts a replay server when asked, runs the checks under capture and
/// reports as it goes.
fn run_thread(request: RunRequest, tx: &Sender<RunMessage>, stop: &AtomicBool) {
    let RunRequest {
        target,
        mut settings,
        sandboxed,
    } = request;
    // A replay server lives until the run ends.
    let mut _replay = None;
    let what = match target {
        Target::Replay(flaw) => match replay::start(flaw) {
            Ok(r) => {
                settings.pop3 = Some(r.pop3.to_string());
                settings.smtp = Some(r.smtp.to_string());
                settings.user = r.user.to_string();
                settings.pass = r.pass.to_string();
                settings.rcpt = r.rcpt.to_string();
                let what = format!(
                    "{} on POP3 {} and SMTP {} (user {}, password {}): one thing in it is wrong",
                    flaw.source(),
                    r.pop3,
                    r.smtp,
                    r.user,
                    r.pass
                );
                _replay = Some(r);
                what
            }
            Err(e) => {
                let _ = tx.send(RunMessage::Failed(e.to_string()));
                return;
            }
        },
        Target::Own | Target::Typed => format!(
            "POP3 {}, SMTP {} as {}",
            settings.pop3.as_deref().unwrap_or("(none)"),
            settings.smtp.as_deref().unwrap_or("(none)"),
            settings.user
        ),
    };
    let _ = tx.send(RunMessage::Checking(what));
    let capture = CaptureSettings {
        interface: "lo".into(),
        sandboxed,
    };
    let (report, evidence) = run_captured(&settings, &capture, &mut |event| match event {
        RunEvent::Started(info) => {
            let _ = tx.send(RunMessage::Started(info));
            !stop.load(Ordering::SeqCst)
        }
        RunEvent::Finished(result) => {
            let _ = tx.send(RunMessage::Finished(Box::new(result.clone())));
            true
        }
    });
    let _ = tx.send(RunMessage::Done(Box::new((report, evidence))));
}

/// The colour of a verdict: pass and fail as the replies', warn amber, skip weak (each
/// keeps 4.5:1 on the panel and on a selected row; see the test).
pub fn verdict_color(verdict: &Verdict, palette: &Palette) -> Color32 {
    match verdict {
        Verdict::Pass => palette.positive,
        Verdict::Fail(_) => palette.negative,
        Verdict::Warn(_) => {
            if palette.background == Color32::BLACK {
                Color32::from_rgb(255, 190, 60)
            } else {
                Color32::from_rgb(150, 80, 0)
            }
        }
        Verdict::Skip(_) => palette.weak,
    }
}

impl MailwireApp {
    /// Takes the check run's news (never blocks); shows its timeline when it ends.
    pub fn poll_check(&mut self, ctx: &egui::Context) {
        for message in self.check.pending_messages() {
            if let Some(run) = self.check.on_message(message) {
                self.show_check_run(&run);
            }
        }
        self.check.drain_saves();
        if self.check.busy {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    /// Shows a finished check run in the diagram, like a recorded lesson: every step up to
    /// the last, the first failing check's judged exchange selected.
    pub fn show_check_run(&mut self, run: &FinishedRun) {
        self.timeline = Arc::clone(&run.timeline);
        // It replaces a capture file shown too.
        self.file = None;
        self.generation += 1;
        self.state.forget_run();
        self.state.recorded_only = true;
        self.check.shown = true;
        let Some(last) = self.timeline.steps.len().checked_sub(1) else {
            return;
        };
        self.state.cursor = Some(last);
        let first_failure = run
            .report
            .checks
            .iter()
            .position(|r| matches!(r.verdict, Verdict::Fail(_)));
        let row = first_failure.unwrap_or(0);
        if let Some(Effect::Window(action)) = self
            .check
            .apply(CheckAction::SelectRow(row), &CheckEnv::default())
        {
            self.act(action);
        }
    }

    /// Carries out a panel action's effect.
    fn act_check(&mut self, action: CheckAction, actions: &mut Vec<UiAction>) {
        let env = CheckEnv::of(&self.status);
        match self.check.apply(action, &env) {
            Some(Effect::Start(request)) => self.check.start(request),
            Some(Effect::Window(action)) => actions.push(action),
            Some(Effect::Save(kind)) => self.check.save(kind),
            None => {}
        }
    }

    /// Draws the "Check a server" panel at the left and carries out what it asks.
    pub fn check_panel_ui(&mut self, ui: &mut Ui, palette: &Palette, actions: &mut Vec<UiAction>) {
        let env = CheckEnv::of(&self.status);
        let scenario = self.state.scenario.clone();
        let mut asked = Vec::new();
        // A third of the window (in points, so the presenter's zoom narrows it), at most
        // what the results table needs.
        let width = (ui.available_width() * 0.34).clamp(300.0, 520.0);
        Panel::left("check-panel")
            .resizable(true)
            .default_size(width)
            .min_size(280.0)
            .max_size(520.0)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.label(RichText::new("Check a server").strong().size(17.0));
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        if controls::named_button(
                            ui,
                            true,
                            controls::glyph::text(controls::glyph::FOLD_LEFT),
                            "Fold the check panel",
                        )
                        .on_hover_text("Fold the check panel")
                        .clicked()
                        {
                            actions.push(UiAction::SetPane(Pane::Check, false));
                        }
                    });
                });
                ScrollArea::vertical()
                    .id_salt("check-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| {
                        panel_body(ui, &mut self.check, &env, palette, &mut asked);
                        if self.check.shown {
                            ui.add_space(6.0);
                            if ui
                                .button(format!("Back to the scenario \"{scenario}\""))
                                .on_hover_text(
                                    "The diagram shows the check run; this runs the scenario \
                                     again from its start",
                                )
                                .clicked()
                            {
                                actions.push(UiAction::Load(scenario.clone()));
                            }
                        }
                    });
            });
        for action in asked {
            self.act_check(action, actions);
        }
    }
}

/// The panel's content: the sandbox note, the form, Run and the progress, the results
/// and the selected one's details, Save.
fn panel_body(
    ui: &mut Ui,
    panel: &mut CheckPanel,
    env: &CheckEnv,
    palette: &Palette,
    asked: &mut Vec<CheckAction>,
) {
    if env.sandboxed {
        ui.label(RichText::new(SANDBOX_NOTE).small().color(palette.accent));
        ui.add_space(4.0);
    }
    form_ui(ui, panel, env, asked);
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        if ui
            .add_enabled(
                !panel.busy,
                egui::Button::new(RichText::new("Run the checks").strong()),
            )
            .on_hover_text("Run every check on its own thread; the window stays usable")
            .clicked()
        {
            asked.push(CheckAction::Run);
        }
        if panel.busy {
            if ui
                .add_enabled(!panel.stopping, egui::Button::new("Stop"))
                .on_hover_text("Stop after the check that runs now (each step has its limit)")
                .clicked()
            {
                asked.push(CheckAction::Stop);
            }
            ui.spinner();
        }
    });
    if panel.busy {
        let running = panel.current.map_or_else(
            || "starting".to_string(),
            |c| format!("running {} ({})", c.id, c.rfc),
        );
        ui.label(format!(
            "{} of {} checks done; {running}",
            panel.results.len(),
            panel.total
        ));
        if !panel.checking.is_empty() {
            ui.label(RichText::new(&panel.checking).small());
        }
    }
    if let Some(problem) = &panel.problem {
        ui.label(RichText::new(problem).color(palette.negative));
    }
    if let Some(run) = &panel.finished
        && !panel.busy
    {
        let c = run.report.counts();
        ui.label(
            RichText::new(format!(
                "{} pass, {} fail, {} warn, {} skip",
                c.pass, c.fail, c.warn, c.skip
            ))
            .strong(),
        );
        ui.label(RichText::new(run.report.summary()).small());
        for (protocol, why) in &run.report.unreachable {
            ui.label(RichText::new(format!("{protocol}: {why}")).color(palette.negative));
        }
        if env.sandboxed && !run.report.unreachable.is_empty() && panel.form.target == Target::Typed
        {
            ui.label(
                RichText::new(format!(
                    "From mailwire's private network only its own servers are reachable. In a \
                     terminal: {}",
                    terminal_command(&panel.form)
                ))
                .color(palette.accent),
            );
        }
        let status = run.timeline.capture_status();
        ui.label(
            RichText::new(format!(
                "Packets: {} ({})",
                run.timeline.packets.len(),
                status.describe()
            ))
            .small(),
        );
    }
    ui.separator();
    results_ui(ui, panel, palette, asked);
    if let Some(result) = panel.selected.and_then(|i| panel.results.get(i)) {
        ui.separator();
        details_ui(ui, result, panel, palette);
    }
    ui.separator();
    save_ui(ui, panel, palette, asked);
}

/// The target picker and the fields of the form.
fn form_ui(ui: &mut Ui, panel: &mut CheckPanel, env: &CheckEnv, asked: &mut Vec<CheckAction>) {
    let target = panel.form.target;
    let is_replay = matches!(target, Target::Replay(_));
    if ui
        .radio(is_replay, "A student's server (built in: spot the error)")
        .clicked()
        && !is_replay
    {
        asked.push(CheckAction::SetTarget(Target::Replay(Flaw::ClassProject)));
    }
    if let Target::Replay(flaw) = target {
        ui.indent("replay-pick", |ui| {
            egui::ComboBox::from_id_salt("replay-server")
                .selected_text(flaw.name())
                .show_ui(ui, |ui| {
                    for f in Flaw::ALL {
                        if ui.selectable_label(f == flaw, f.name()).clicked() && f != flaw {
                            asked.push(CheckAction::SetTarget(Target::Replay(f)));
                        }
                    }
                });
            ui.label(RichText::new(flaw.source()).small());
            ui.label(
                RichText::new(
                    "User student, password student. One thing in it is wrong: the results \
                     say which check finds it.",
                )
                .small(),
            );
        });
    }
    let own_text = match env.own {
        Some((p, s)) => format!("mailwire's own servers (POP3 {p}, SMTP {s})"),
        None => "mailwire's own servers (not running: no scenario here)".to_string(),
    };
    if ui.radio(target == Target::Own, own_text).clicked() && target != Target::Own {
        asked.push(CheckAction::SetTarget(Target::Own));
    }
    if ui
        .radio(target == Target::Typed, "Another server (HOST:PORT)")
        .clicked()
        && target != Target::Typed
    {
        asked.push(CheckAction::SetTarget(Target::Typed));
    }
    let f = &mut panel.form;
    egui::Grid::new("check-form")
        .num_columns(2)
        .spacing([8.0, 3.0])
        .show(ui, |ui| {
            if target == Target::Typed {
                let l = ui.label("POP3");
                ui.text_edit_singleline(&mut f.pop3).labelled_by(l.id);
                ui.end_row();
                let l = ui.label("SMTP");
                ui.text_edit_singleline(&mut f.smtp).labelled_by(l.id);
                ui.end_row();
            }
            if !is_replay {
                let l = ui.label("User");
                ui.text_edit_singleline(&mut f.user).labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Password");
                ui.add(egui::TextEdit::singleline(&mut f.password).password(true))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Recipient");
                ui.add(egui::TextEdit::singleline(&mut f.rcpt).hint_text("USER@localhost"))
                    .labelled_by(l.id);
                ui.end_row();
            }
            let l = ui.label("Step limit");
            ui.add(
                egui::DragValue::new(&mut f.timeout)
                    .range(0.5..=60.0)
                    .speed(0.1)
                    .max_decimals(1)
                    .suffix(" s"),
            )
            .labelled_by(l.id)
            .on_hover_text("How long each step (a connection, a reply) may take");
            ui.end_row();
        });
    if !is_replay {
        ui.checkbox(&mut f.allow_delete, "Allow delete")
            .on_hover_text(
                "With no mail of the checker's own in the maildrop, the checks of DELE, RSET \
                 and QUIT may use (and delete) the last message",
            );
    }
}

/// The results table: id, protocol, RFC section, level, verdict.
fn results_ui(ui: &mut Ui, panel: &CheckPanel, palette: &Palette, asked: &mut Vec<CheckAction>) {
    if panel.results.is_empty() {
        ui.label(
            RichText::new(
                "No results yet. The checked ports are captured while the checks run (in \
                 mailwire's private network always; outside it with root or CAP_NET_RAW), \
                 so each check's packets are its evidence in the diagram.",
            )
            .small(),
        );
        return;
    }
    ui.label(
        RichText::new("Click a row: its exchange in the diagram, and what was expected and got.")
            .small(),
    );
    ScrollArea::both()
        .id_salt("check-results")
        .max_height(260.0)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            egui::Grid::new("check-results-grid")
                .num_columns(5)
                .striped(true)
                .spacing([10.0, 2.0])
                .show(ui, |ui| {
                    for header in ["check", "verdict", "level", "protocol", "RFC"] {
                        ui.label(RichText::new(header).strong());
                    }
                    ui.end_row();
                    for (i, r) in panel.results.iter().enumerate() {
                        let selected = panel.selected == Some(i);
                        let id = ui.selectable_label(selected, r.info.id);
                        let verdict = ui.selectable_label(
                            selected,
                            RichText::new(r.verdict.label())
                                .strong()
                                .color(verdict_color(&r.verdict, palette)),
                        );
                        ui.label(r.level.label());
                        ui.label(r.info.protocol_label());
                        ui.label(RichText::new(short_rfc(r.info.rfc)).small())
                            .on_hover_text(r.info.rfc);
                        if id.clicked() || verdict.clicked() {
                            asked.push(CheckAction::SelectRow(i));
                        }
                        ui.end_row();
                    }
                });
        });
}

/// The `mailwire check` command a terminal runs for the typed servers (the password left
/// for the reader to type).
pub fn terminal_command(form: &CheckForm) -> String {
    let mut command = "mailwire check".to_string();
    for (flag, value) in [("--pop3", &form.pop3), ("--smtp", &form.smtp)] {
        if !value.trim().is_empty() {
            command.push_str(&format!(" {flag} {}", value.trim()));
        }
    }
    command.push_str(&format!(" --user {} --pass PASSWORD", form.user.trim()));
    if !form.rcpt.trim().is_empty() {
        command.push_str(&format!(" --rcpt {}", form.rcpt.trim()));
    }
    if form.allow_delete {
        command.push_str(" --allow-delete");
    }
    command + " --pcap check.pcapng"
}

/// "RFC 5321 section 4.1.1.1" as "5321 §4.1.1.1" (the table's column is narrow; the
/// details say it in full).
fn short_rfc(rfc: &str) -> String {
    rfc.trim_start_matches("RFC ")
        .replacen(" section ", " §", 1)
}

/// The selected result: title, verdict and why, expected, sent, got.
fn details_ui(ui: &mut Ui, r: &CheckResult, panel: &CheckPanel, palette: &Palette) {
    ui.label(RichText::new(format!("{} ({})", r.info.id, r.info.rfc)).strong());
    ui.label(r.info.title);
    let why = match r.verdict.reason() {
        "" => String::new(),
        why => format!(": {why}"),
    };
    ui.label(
        RichText::new(format!("{} {}{why}", r.level.label(), r.verdict.label()))
            .color(verdict_color(&r.verdict, palette)),
    );
    for (label, text) in [
        ("Expected", r.expected.clone()),
        ("Sent", check::visible(&r.sent, 600)),
        ("Got", check::visible(&r.got, 600)),
    ] {
        if text.is_empty() {
            continue;
        }
        ui.label(RichText::new(label).strong());
        ui.label(RichText::new(text).monospace());
    }
    let row = panel.selected.unwrap_or(0);
    let shown = panel.shown
        && panel
            .finished
            .as_ref()
            .and_then(|f| f.judged.get(row).copied().flatten())
            .is_some();
    if !shown && !panel.busy {
        let note = if r.transcript.is_empty() {
            "This check exchanged nothing, so it has no step in the diagram."
        } else {
            "Run the checks again to see this run in the diagram."
        };
        ui.label(RichText::new(note).small());
    }
}

/// The Save row: the folder, the three files, what was written.
fn save_ui(ui: &mut Ui, panel: &mut CheckPanel, palette: &Palette, asked: &mut Vec<CheckAction>) {
    let ready = panel.finished.is_some() && !panel.busy;
    ui.horizontal(|ui| {
        let l = ui.label("Save to folder");
        ui.add(egui::TextEdit::singleline(&mut panel.form.folder).hint_text("current folder"))
            .labelled_by(l.id);
    });
    let folder = controls::export_folder(&panel.form.folder);
    ui.label(RichText::new(format!("Files go to {}", folder.display())).small());
    ui.horizontal(|ui| {
        for (kind, text) in [
            (SaveKind::Json, "Save JSON"),
            (SaveKind::Junit, "Save JUnit XML"),
            (SaveKind::Pcapng, "Save pcapng"),
        ] {
            if ui.add_enabled(ready, egui::Button::new(text)).clicked() {
                asked.push(CheckAction::Save(kind));
            }
        }
    });
    ui.label(
        RichText::new("An existing file is never overwritten: a number is added to the name.")
            .small(),
    );
    for saved in &panel.saved {
        match saved {
            Ok(m) => ui.label(RichText::new(m).color(palette.positive)),
            Err(e) => ui.label(RichText::new(e).color(palette.negative)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CheckInfo, Level};
    use crate::proto::Protocol;
    use crate::viz::theme::contrast_ratio;

    fn result(id: &'static str, verdict: Verdict) -> CheckResult {
        CheckResult {
            info: CheckInfo {
                id,
                protocols: &[Protocol::Pop3],
                rfc: "RFC 1939 section 5",
                level: Level::Must,
                title: "t",
            },
            level: Level::Must,
            verdict,
            sent: Vec::new(),
            expected: String::new(),
            got: Vec::new(),
            clients: Vec::new(),
            servers: Vec::new(),
            transcript: Vec::new(),
            judged_round: 0,
        }
    }

    #[test]
    fn run_checks_the_form_first() {
        let mut p = CheckPanel::default();
        let env = CheckEnv::default();
        p.apply(CheckAction::SetTarget(Target::Typed), &env);
        p.form.pop3 = "nonsense".into();
        assert_eq!(p.apply(CheckAction::Run, &env), None);
        assert!(p.problem.as_deref().unwrap().contains("HOST:PORT"));
        assert!(!p.busy);
        p.form.pop3 = "127.0.0.1:8110".into();
        p.form.smtp = String::new();
        let Some(Effect::Start(r)) = p.apply(CheckAction::Run, &env) else {
            panic!("no start")
        };
        assert_eq!(r.settings.pop3.as_deref(), Some("127.0.0.1:8110"));
        assert_eq!(r.settings.smtp, None);
        assert_eq!(r.settings.rcpt, "student@localhost");
        assert!(p.busy && p.problem.is_none());
        // A second press while it runs does nothing.
        assert_eq!(p.apply(CheckAction::Run, &env), None);
    }

    #[test]
    fn own_servers_need_a_running_scenario() {
        let mut p = CheckPanel::default();
        p.apply(CheckAction::SetTarget(Target::Own), &CheckEnv::default());
        assert_eq!(p.apply(CheckAction::Run, &CheckEnv::default()), None);
        assert!(p.problem.as_deref().unwrap().contains("not running"));
        let env = CheckEnv {
            sandboxed: true,
            own: Some((
                "127.0.0.1:110".parse().unwrap(),
                "127.0.0.1:25".parse().unwrap(),
            )),
            own_user: Some(("mrose".into(), "tanstaaf".into())),
        };
        p.apply(CheckAction::SetTarget(Target::Own), &env);
        assert_eq!(p.form.user, "mrose");
        p.form.user = String::new();
        let Some(Effect::Start(r)) = p.apply(CheckAction::Run, &env) else {
            panic!("no start")
        };
        assert_eq!(
            (r.settings.user.as_str(), r.settings.pass.as_str()),
            ("mrose", "tanstaaf")
        );
        assert!(r.sandboxed);
    }

    #[test]
    fn results_arrive_and_a_row_selects_its_judged_step() {
        use crate::exchange::{Exchange, StepOutcome};
        let mut p = CheckPanel::default();
        let env = CheckEnv::default();
        assert!(matches!(
            p.apply(CheckAction::Run, &env),
            Some(Effect::Start(_))
        ));
        let info = result("pop3.greeting", Verdict::Pass).info;
        assert!(p.on_message(RunMessage::Started(info)).is_none());
        assert_eq!(p.current.map(|c| c.id), Some("pop3.greeting"));
        p.on_message(RunMessage::Finished(Box::new(result(
            "pop3.greeting",
            Verdict::Pass,
        ))));
        // While it runs a row shows its details only.
        assert_eq!(p.apply(CheckAction::SelectRow(0), &env), None);
        assert_eq!(p.selected, Some(0));
        let report = Report {
            checks: vec![
                result("pop3.greeting", Verdict::Pass),
                result("pop3.multiline-end", Verdict::Fail("no dot".into())),
                result("pop3.skipped", Verdict::Skip("x".into())),
            ],
            unreachable: Vec::new(),
        };
        let mut timeline = Timeline::new("t");
        for (i, kinds) in [
            vec![ExchangeKind::Reply],
            vec![
                ExchangeKind::Command,
                ExchangeKind::Reply,
                ExchangeKind::Command,
            ],
        ]
        .into_iter()
        .enumerate()
        {
            let exchanges = kinds
                .into_iter()
                .map(|kind| Exchange {
                    kind,
                    line: "x".into(),
                    more: Vec::new(),
                    octets: 3,
                    stream: None,
                })
                .collect();
            let outcome = StepOutcome {
                index: i,
                session: "s".into(),
                protocol: None,
                conn: None,
                exchanges,
                check: Ok(()),
                events: Vec::new(),
                server_closed: false,
            };
            timeline.push_step(outcome, String::new(), None, None, 0..0);
        }
        let evidence = CheckTimeline {
            timeline,
            steps: vec![0..1, 1..2, 2..2],
            judged: vec![Some(0), Some(1), None],
        };
        let run = p
            .on_message(RunMessage::Done(Box::new((report, evidence))))
            .expect("finished");
        assert!(!p.busy);
        assert_eq!(p.results.len(), 3);
        // Not shown in the window yet: a row selects only.
        assert_eq!(p.apply(CheckAction::SelectRow(1), &env), None);
        p.shown = true;
        assert_eq!(
            p.apply(CheckAction::SelectRow(1), &env),
            Some(Effect::Window(UiAction::GoToStep {
                step: 1,
                exchange: Some(1)
            })),
            "the judged step's reply"
        );
        // A skip exchanged nothing: no step to show.
        assert_eq!(p.apply(CheckAction::SelectRow(2), &env), None);
        assert_eq!(p.selected, Some(2));
        assert_eq!(p.apply(CheckAction::SelectRow(9), &env), None);
        assert_eq!(run.judged.len(), 3);
        assert_eq!(
            p.apply(CheckAction::Save(SaveKind::Json), &env),
            Some(Effect::Save(SaveKind::Json))
        );
    }

    #[test]
    fn the_terminal_command_carries_the_form_but_not_the_password() {
        let f = CheckForm {
            smtp: String::new(),
            password: "secret".into(),
            ..CheckForm::default()
        };
        assert_eq!(
            terminal_command(&f),
            "mailwire check --pop3 127.0.0.1:8110 --user student --pass PASSWORD --pcap check.pcapng"
        );
    }

    #[test]
    fn the_rfc_column_is_short() {
        assert_eq!(short_rfc("RFC 5321 section 4.1.1.1"), "5321 §4.1.1.1");
        assert_eq!(short_rfc("RFC 2449"), "2449");
    }

    #[test]
    fn save_needs_a_finished_run() {
        let mut p = CheckPanel::default();
        assert_eq!(
            p.apply(CheckAction::Save(SaveKind::Pcapng), &CheckEnv::default()),
            None
        );
        assert!(p.problem.is_some());
    }

    #[test]
    fn verdict_colours_keep_their_contrast() {
        for dark in [false, true] {
            let palette = Palette::new(dark);
            for v in [
                Verdict::Pass,
                Verdict::Fail(String::new()),
                Verdict::Warn(String::new()),
                Verdict::Skip(String::new()),
            ] {
                let c = verdict_color(&v, &palette);
                for bg in [palette.background, palette.selected] {
                    let ratio = contrast_ratio(c, bg);
                    assert!(ratio >= 4.5, "{v:?} dark={dark}: {ratio:.2}");
                }
            }
        }
    }
}
