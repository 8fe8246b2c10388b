//! The window: an [`eframe::App`] that keeps its own copy of the timeline.
//!
//! [`MailwireApp::logic`] drains the worker's channels into that copy (never blocking),
//! advances the play timer and the screenshot run, and applies presenter settings.
//! [`MailwireApp::ui`] draws the panes from the timeline and [`UiState`], collecting
//! [`UiAction`]s, which are applied after drawing: state changes here, commands to the
//! worker there. Nothing in drawing code mutates the model.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use eframe::egui;
use eframe::egui::{CentralPanel, Panel, RichText, ScrollArea, Theme, Ui, ViewportCommand};

use super::check_panel::CheckPanel;
use super::connections::{self, ConnectionList};
use super::controls::{self, ExportKind};
use super::details::{self, DetailsCache};
use super::diagram;
use super::follow::{self, FollowCache};
use super::live;
use super::loader::{Loaded, Loading};
use super::narration;
use super::quiz_panel;
use super::rows::{DiagramRows, Reveal};
use super::screenshot::{self, Phase, ScreenshotPlan};
use super::server_state::{self, ServerView};
use super::state::{DEFAULT_SCENARIO, Pane, UiAction, UiState};
use super::theme::{self, Palette};
use super::watch::{self, WatchForm, WatchRequest, Watching};
use super::worker::{Worker, WorkerCommand, WorkerMessage, WorkerStatus};
use crate::proto::keylog::KeyLog;
use crate::scenario::recorder::RecorderOptions;
use crate::timeline::{Timeline, TimelineUpdate};

/// How the window starts.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Where the servers listen and whether to capture.
    pub recorder: RecorderOptions,
    /// The scenario loaded at start.
    pub scenario: String,
    /// A remark for the banner (why the sandbox is not used, for instance).
    pub note: Option<String>,
    /// Start in presenter mode (dark, larger).
    pub presenter: bool,
    /// Show this capture file (pcap or pcapng) instead of running a scenario: no worker,
    /// no servers; Next and Back walk its recorded steps.
    pub file: Option<PathBuf>,
    /// Watch these ports live instead of running a scenario (`mailwire --watch`): no
    /// worker, no servers.
    pub watch: Option<WatchRequest>,
    /// TLS secrets (`mailwire --keylog KEYS FILE`) added to those of every capture file the
    /// window opens, to decrypt its TLS sessions.
    pub keylog: KeyLog,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            recorder: RecorderOptions::default(),
            scenario: DEFAULT_SCENARIO.to_string(),
            note: None,
            presenter: false,
            file: None,
            watch: None,
            keylog: KeyLog::default(),
        }
    }
}

/// What a cached server view was computed from: run, steps recorded, focused step.
type ServerViewKey = (u64, usize, Option<usize>);

/// The presenter settings the egui context has now.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Applied {
    zoom: Option<f32>,
    dark: Option<bool>,
    fullscreen: Option<bool>,
}

/// The window's application state.
pub struct MailwireApp {
    /// The window's copy of the run's timeline (shared with export threads: an update
    /// while one writes makes the window a copy of its own).
    pub timeline: Arc<Timeline>,
    /// Selection, cursor, settings, forms.
    pub state: UiState,
    /// The worker's last report.
    pub status: WorkerStatus,
    /// Errors to show (from the worker, from exports).
    pub errors: Vec<String>,
    /// What the last export wrote.
    pub export_message: Option<String>,
    /// Bumped on every reset of the timeline.
    pub generation: u64,
    worker: Option<Worker>,
    /// Commands sent to the worker and not yet answered.
    pending: usize,
    rows: DiagramRows,
    /// The step (and rows) the diagram last brought into view.
    revealed: Option<(Option<usize>, Reveal)>,
    /// The rows were rebuilt last frame: check whether the revealed step grew.
    reveal_after_rebuild: bool,
    /// Where the diagram's rows were drawn in the last frame (screen points).
    pub diagram_rect: Option<egui::Rect>,
    details: DetailsCache,
    server_view: Option<(ServerViewKey, ServerView)>,
    choices: Vec<(&'static str, String)>,
    note: Option<String>,
    /// The folder exports go to, as typed (empty: the current folder); the Export menu
    /// shows it in full. Files are named after the scenario, never overwriting one.
    pub export_dir: String,
    applied: Applied,
    screenshot: Option<ScreenshotPlan>,
    /// Results of exports written on their own threads.
    exports: (Sender<ExportResult>, Receiver<ExportResult>),
    /// Exports started and not yet finished.
    exporting: usize,
    /// The capture file shown (the window shows a file instead of a scenario's run).
    pub file: Option<PathBuf>,
    /// A capture file being read and decoded on its own thread.
    pub loading: Option<Loading>,
    /// How long the last file took to read and decode, and its packets.
    pub last_load: Option<(PathBuf, std::time::Duration, usize)>,
    /// The path typed in the Open menu.
    pub open_path: String,
    /// A scenario was asked for while a file was shown: the worker's updates count again from
    /// its next reset.
    leaving_file: bool,
    /// Wakes the window from other threads (the file loader).
    wake: Arc<dyn Fn() + Send + Sync>,
    /// The connection list's summaries.
    connections: ConnectionList,
    /// Ports watched live (the window shows the watch instead of a scenario's run).
    pub watching: Option<Watching>,
    /// The Watch ports form (in the Open menu).
    pub watch_form: WatchForm,
    /// The Follow stream view's text.
    follow: FollowCache,
    /// The "Check a server" panel (its form, run and results).
    pub check: CheckPanel,
    /// TLS secrets added to every capture file opened ([`AppOptions::keylog`]).
    file_keys: KeyLog,
}

impl MailwireApp {
    /// A window driving a worker: starts it and loads `options.scenario`; the worker wakes
    /// `ctx` when it has news.
    pub fn new(ctx: &egui::Context, options: AppOptions) -> Result<Self, String> {
        let wake_ctx = ctx.clone();
        let wake = move || wake_ctx.request_repaint();
        let mut app = match (options.file.clone(), options.watch.clone()) {
            (Some(path), _) => Self::from_file(&path, options, wake),
            (None, Some(request)) => Self::watch_only(request, options, wake),
            (None, None) => Self::start(options, wake)?,
        };
        // Zoom and theme before the first frame, so panels get their sizes at that zoom.
        app.apply_settings(ctx);
        Ok(app)
    }

    /// Like [`Self::new`], with any wake-up call (tests poll instead).
    pub fn start(
        options: AppOptions,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(wake);
        let worker_wake = Arc::clone(&wake);
        let worker = Worker::spawn(options.recorder.clone(), move || worker_wake())?;
        let mut app = Self::with_timeline(Timeline::new(""));
        app.wake = wake;
        app.note = options.note;
        if options.presenter {
            app.state.dark = true;
            app.state.zoom = 1.3;
            app.state.live_panel = false;
        }
        app.worker = Some(worker);
        app.state.scenario = options.scenario.clone();
        app.send(WorkerCommand::Load(options.scenario));
        Ok(app)
    }

    /// A window showing a capture file, without a worker (no servers): the file is read and
    /// decoded on a thread of its own ([`Loading`]) while the window shows its progress.
    pub fn from_file(
        path: &Path,
        options: AppOptions,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let mut app = Self::with_timeline(Timeline::new(""));
        app.wake = Arc::new(wake);
        app.note = options.note;
        app.file_keys = options.keylog;
        if options.presenter {
            app.state.dark = true;
            app.state.zoom = 1.3;
        }
        app.open(path);
        app
    }

    /// A window watching ports live, without a worker (`mailwire --watch`).
    pub fn watch_only(
        request: WatchRequest,
        options: AppOptions,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let mut app = Self::with_timeline(Timeline::new(""));
        app.wake = Arc::new(wake);
        app.note = options.note;
        if options.presenter {
            app.state.dark = true;
            app.state.zoom = 1.3;
        }
        app.watch_form.ports = request.port_list();
        app.watch_form.interface = request.interface.clone();
        app.start_watch(request);
        app
    }

    /// Starts watching (a watch running is stopped first); the window shows the watch's
    /// timeline from its first update on.
    pub fn start_watch(&mut self, request: WatchRequest) {
        let wake = Arc::clone(&self.wake);
        match Watching::start(request, move || wake()) {
            Ok(watching) => {
                self.watch_form.problem = None;
                self.loading = None;
                self.watching = Some(watching);
            }
            Err(e) => self.watch_form.problem = Some(e),
        }
    }

    /// Takes what the watch sent: its packets and complete steps, into the window's
    /// timeline; the view follows the newest step while the last one is shown.
    fn poll_watch(&mut self) {
        let Some(watching) = &mut self.watching else {
            return;
        };
        let steps_before = self.timeline.steps.len();
        let following =
            self.state.cursor.is_none() || self.state.cursor == steps_before.checked_sub(1);
        let drained = watching.drain(&mut self.timeline);
        if drained.more {
            (self.wake)();
        }
        if drained.reset {
            self.generation += 1;
            self.state.forget_run();
            self.state.recorded_only = true;
            self.file = None;
            self.leaving_file = false;
        }
        if drained.reset || drained.steps > 0 || drained.packets > 0 || drained.ended {
            self.status = watch::watch_status(&self.timeline, watching);
        }
        if drained.steps > 0 && (following || drained.reset) {
            self.state.on_steps_added(&self.timeline);
        }
    }

    /// Starts reading a capture file (pcap or pcapng) into the window, replacing what it
    /// shows once decoded. A load still running is stopped.
    pub fn open(&mut self, path: &Path) {
        let wake = Arc::clone(&self.wake);
        match Loading::start(path, self.file_keys.clone(), move || wake()) {
            Ok(loading) => {
                self.open_path = path.display().to_string();
                self.loading = Some(loading);
            }
            Err(e) => self.errors.push(e),
        }
    }

    /// Whether the window shows a capture file or a watch (no worker runs steps for it).
    pub fn showing_file(&self) -> bool {
        self.file.is_some() || self.watching.is_some()
    }

    /// A finished load: its timeline replaces the window's, or its error is shown.
    fn finish_load(&mut self, loaded: Loaded) {
        let Loaded {
            path,
            result,
            elapsed,
        } = loaded;
        match result {
            Ok(timeline) => {
                let packets = timeline.packets.len();
                let old = std::mem::replace(&mut self.timeline, Arc::new(timeline));
                // A large capture takes a moment to free: not on the window's thread.
                let _ = std::thread::Builder::new()
                    .name("drop-timeline".into())
                    .spawn(move || drop(old));
                self.generation += 1;
                self.state.forget_run();
                self.state.recorded_only = true;
                self.state.playing = false;
                self.check.shown = false;
                self.file = Some(path.clone());
                self.watching = None;
                self.leaving_file = false;
                self.status = file_status(&self.timeline, &path);
                self.errors.clear();
                if let Some(plan) = &mut self.screenshot {
                    // The benchmark reads this line; the time limit counts from here.
                    println!(
                        "decoded {}: {packets} packets, {} steps in {:.3} s",
                        path.display(),
                        self.timeline.steps.len(),
                        elapsed.as_secs_f64()
                    );
                    plan.started = Instant::now();
                }
                self.last_load = Some((path, elapsed, packets));
                if !self.timeline.steps.is_empty() {
                    self.act(UiAction::Home);
                }
            }
            Err(e) => self
                .errors
                .push(format!("cannot open {}: {e}", path.display())),
        }
    }

    /// Takes a finished load, if any; keeps the window drawing the progress while one runs.
    fn poll_loading(&mut self, ctx: &egui::Context) {
        let Some(loading) = &self.loading else { return };
        match loading.poll() {
            Some(loaded) => {
                self.loading = None;
                self.finish_load(loaded);
            }
            None => ctx.request_repaint_after(std::time::Duration::from_millis(100)),
        }
    }

    /// Opens the first file dropped on the window (a second one dropped at once is named
    /// in an error: one capture at a time).
    fn open_dropped(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        let mut files = dropped.into_iter();
        if let Some(first) = files.next() {
            self.open(&first);
        }
        let rest: Vec<String> = files.map(|p| p.display().to_string()).collect();
        if !rest.is_empty() {
            self.errors.push(format!(
                "one capture at a time: {} opened, not {}",
                self.open_path,
                rest.join(", ")
            ));
        }
    }

    /// A window showing a timeline, without a worker (benchmarks, tests of drawing).
    pub fn with_timeline(timeline: Timeline) -> Self {
        Self {
            timeline: Arc::new(timeline),
            state: UiState::default(),
            status: WorkerStatus::default(),
            errors: Vec::new(),
            export_message: None,
            generation: 0,
            worker: None,
            pending: 0,
            rows: DiagramRows::default(),
            revealed: None,
            reveal_after_rebuild: false,
            diagram_rect: None,
            details: DetailsCache::default(),
            server_view: None,
            choices: controls::scenario_choices(),
            note: None,
            export_dir: String::new(),
            applied: Applied::default(),
            screenshot: None,
            exports: crossbeam_channel::unbounded(),
            exporting: 0,
            file: None,
            loading: None,
            last_load: None,
            open_path: String::new(),
            leaving_file: false,
            wake: Arc::new(|| {}),
            connections: ConnectionList::default(),
            watching: None,
            watch_form: WatchForm::default(),
            follow: FollowCache::default(),
            check: CheckPanel::default(),
            file_keys: KeyLog::default(),
        }
    }

    /// Makes this run a screenshot run (see [`screenshot`]).
    pub fn take_screenshot(&mut self, plan: ScreenshotPlan) {
        self.screenshot = Some(plan);
    }

    /// Whether commands are waiting for the worker, an export or a file load.
    pub fn is_busy(&self) -> bool {
        self.pending > 0 || self.exporting > 0 || self.loading.is_some()
    }

    /// The bytes highlighted in the hex dump: the selected field's, when a frame is shown.
    pub fn highlighted_bytes(&self) -> Option<std::ops::Range<usize>> {
        self.state.selection.frame?;
        self.state.selection.field.as_ref().map(|f| f.range.clone())
    }

    /// The rows the diagram shows now.
    pub fn diagram_rows(&self) -> &DiagramRows {
        &self.rows
    }

    fn send(&mut self, command: WorkerCommand) {
        let Some(worker) = &self.worker else {
            self.errors
                .push("there is no worker to run steps (this window only shows a timeline)".into());
            return;
        };
        if worker.send(command) {
            self.pending += 1;
        } else {
            self.errors
                .push("the demo worker stopped; restart mailwire".into());
        }
    }

    /// Applies one action (as the drawing code would emit it).
    pub fn act(&mut self, action: UiAction) {
        if let UiAction::Open(path) = &action {
            let path = PathBuf::from(path.trim());
            self.open(&path);
            return;
        }
        match &action {
            UiAction::StartWatch => {
                match self.watch_form.request() {
                    Ok(request) => self.start_watch(request),
                    Err(e) => self.watch_form.problem = Some(e.to_string()),
                }
                return;
            }
            UiAction::StopWatch => {
                if let Some(w) = &mut self.watching {
                    w.stop();
                }
                return;
            }
            _ => {}
        }
        if let UiAction::Load(_) = &action
            && (self.showing_file() || self.check.shown)
        {
            if self.worker.is_none() {
                self.errors.push(
                    "this window shows a capture file or a watch and runs no servers: start \
                     mailwire without a file or --watch to run the scenarios"
                        .into(),
                );
                return;
            }
            // The scenario's run replaces the file once the worker starts it afresh.
            self.leaving_file = true;
        }
        let commands = self.state.apply(action, &self.timeline, &self.status);
        for c in commands {
            self.send(c);
        }
        self.state.awaiting_step = self.pending > 0;
    }

    /// Drains the worker's channels, runs the play timer and the screenshot, applies the
    /// presenter settings. Never blocks.
    pub fn logic(&mut self, ctx: &egui::Context) {
        self.open_dropped(ctx);
        self.poll_loading(ctx);
        self.poll_watch();
        self.drain_worker();
        self.poll_check(ctx);
        self.drain_exports();
        if self.exporting > 0 {
            ctx.request_repaint_after(std::time::Duration::from_millis(50));
        }
        let now = ctx.input(|i| i.time);
        let commands = self.state.tick(now, &self.timeline, &self.status);
        for c in commands {
            self.send(c);
        }
        self.state.awaiting_step = self.pending > 0;
        if self.state.playing {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        self.apply_settings(ctx);
        self.drive_screenshot(ctx);
    }

    fn drain_worker(&mut self) {
        let Some(worker) = &self.worker else { return };
        let updates: Vec<TimelineUpdate> = worker.updates.try_iter().collect();
        let messages: Vec<WorkerMessage> = worker.messages.try_iter().collect();
        let steps_before = self.timeline.steps.len();
        let mut reset = false;
        for update in updates {
            let is_reset = matches!(update, TimelineUpdate::Reset { .. });
            if self.showing_file() || self.check.shown {
                // A file, a watch or a check run is shown: the worker's run (late packets) is
                // not this timeline, until a scenario is asked for again and its run starts
                // afresh.
                if !(self.leaving_file && is_reset) {
                    continue;
                }
                self.check.shown = false;
                self.file = None;
                self.watching = None;
                self.leaving_file = false;
                self.state.recorded_only = false;
            }
            if is_reset {
                reset = true;
                self.generation += 1;
            }
            Arc::make_mut(&mut self.timeline).apply(update);
        }
        if reset {
            self.state.forget_run();
        }
        let old_steps = if reset { 0 } else { steps_before };
        for message in messages {
            match message {
                WorkerMessage::Status(status) => {
                    self.pending = self.pending.saturating_sub(1);
                    if !self.showing_file() {
                        self.status = status;
                    }
                }
                WorkerMessage::Error(e) => self.errors.push(e),
            }
        }
        if self.timeline.steps.len() > old_steps {
            self.state.on_steps_added(&self.timeline);
        }
        self.state.awaiting_step = self.pending > 0;
    }

    fn apply_settings(&mut self, ctx: &egui::Context) {
        if self.applied.dark.is_none() {
            ctx.set_visuals_of(Theme::Dark, theme::visuals(true));
            ctx.set_visuals_of(Theme::Light, theme::visuals(false));
            ctx.all_styles_mut(|style| {
                use eframe::egui::{FontFamily, FontId, TextStyle};
                style.text_styles = [
                    (
                        TextStyle::Small,
                        FontId::new(12.0, FontFamily::Proportional),
                    ),
                    (TextStyle::Body, FontId::new(15.0, FontFamily::Proportional)),
                    (
                        TextStyle::Button,
                        FontId::new(15.0, FontFamily::Proportional),
                    ),
                    (
                        TextStyle::Heading,
                        FontId::new(22.0, FontFamily::Proportional),
                    ),
                    (
                        TextStyle::Monospace,
                        FontId::new(14.0, FontFamily::Monospace),
                    ),
                ]
                .into();
            });
        }
        if self.applied.dark != Some(self.state.dark) {
            ctx.set_theme(if self.state.dark {
                Theme::Dark
            } else {
                Theme::Light
            });
            self.applied.dark = Some(self.state.dark);
        }
        if self.applied.zoom != Some(self.state.zoom) {
            ctx.set_zoom_factor(self.state.zoom);
            self.applied.zoom = Some(self.state.zoom);
        }
        if self.applied.fullscreen.unwrap_or(false) != self.state.fullscreen {
            ctx.send_viewport_cmd(ViewportCommand::Fullscreen(self.state.fullscreen));
            self.applied.fullscreen = Some(self.state.fullscreen);
        }
    }

    fn drive_screenshot(&mut self, ctx: &egui::Context) {
        let Some(mut plan) = self.screenshot.take() else {
            return;
        };
        ctx.request_repaint();
        // A capture file may take a while to read: the limit counts from its end.
        let reading = self.loading.is_some();
        if !reading
            && plan.started.elapsed() > screenshot::LIMIT
            && !matches!(plan.phase, Phase::Done)
        {
            let why = format!(
                "no screenshot after {} s (stuck at {:?}); nothing was written to {}",
                screenshot::LIMIT.as_secs(),
                phase_name(&plan.phase),
                plan.path.display()
            );
            plan.finish(Err(why));
            ctx.send_viewport_cmd(ViewportCommand::Close);
        }
        let busy = self.pending > 0;
        match &mut plan.phase {
            Phase::Loading if plan.file => {
                if reading {
                } else if self.file.is_some() {
                    // Decoded: the second step (or the only one) selected, as after Next.
                    let steps = self.timeline.steps.len();
                    let step = plan.select.0.min(steps.saturating_sub(1));
                    if steps > 0 {
                        self.act(UiAction::Home);
                        for _ in 0..step {
                            self.act(UiAction::Next);
                        }
                    }
                    plan.phase = Phase::Settling {
                        since: Instant::now(),
                        frames: 0,
                    };
                } else {
                    let why = format!("no screenshot written: {}", self.errors.join("; "));
                    plan.finish(Err(why));
                    ctx.send_viewport_cmd(ViewportCommand::Close);
                }
            }
            Phase::Loading => {
                if !busy && self.status.total_steps > 0 {
                    plan.phase = Phase::Stepping;
                } else if !busy && !self.errors.is_empty() {
                    let why = format!("the scenario did not start: {}", self.errors.join("; "));
                    plan.finish(Err(why));
                    ctx.send_viewport_cmd(ViewportCommand::Close);
                }
            }
            Phase::Stepping if busy => {}
            Phase::Stepping => {
                if !self.status.done {
                    self.act(UiAction::Next);
                } else {
                    let (step, exchange) = plan.select;
                    self.act(UiAction::SelectExchange { step, exchange });
                    // The selected step in view, as after Next.
                    self.state.scroll_to_selection = true;
                    plan.phase = Phase::Settling {
                        since: Instant::now(),
                        frames: 0,
                    };
                }
            }
            Phase::Settling { since, frames } => {
                *frames += 1;
                if *frames > 10 && since.elapsed() > screenshot::SETTLE {
                    let (tx, rx) = crossbeam_channel::bounded(1);
                    let wake = ctx.clone();
                    ctx.request_screenshot(move |image| {
                        let _ = tx.send(image);
                        wake.request_repaint();
                    });
                    plan.phase = Phase::Requested(rx);
                }
            }
            Phase::Requested(rx) => {
                if let Ok(image) = rx.try_recv() {
                    let outcome =
                        screenshot::write_png(&plan.path, &image).map(|()| plan.path.clone());
                    plan.finish(outcome);
                    ctx.send_viewport_cmd(ViewportCommand::Close);
                }
            }
            Phase::Done => {}
        }
        self.screenshot = Some(plan);
    }

    /// Draws the window and applies what the user asked for.
    pub fn ui(&mut self, ui: &mut Ui) {
        let palette = Palette::new(self.state.dark);
        let mut actions = Vec::new();
        let mut exports = Vec::new();
        controls::keyboard_actions(ui.ctx(), &mut actions);
        quiz_panel::keyboard_actions(ui.ctx(), &self.state.quiz, &mut actions);
        let mut dismiss = false;
        Panel::top("controls").show(ui, |ui| {
            ui.add_space(2.0);
            let source = controls::SourceView {
                file: self.file.as_deref(),
                loading: self.loading.as_ref(),
                has_worker: self.worker.is_some(),
                watching: self.watching.as_ref(),
            };
            controls::controls_ui(
                ui,
                &self.state,
                &self.timeline,
                &self.status,
                &self.choices,
                &source,
                &mut self.open_path,
                &mut self.watch_form,
                &mut self.export_dir,
                &mut actions,
                &mut exports,
            );
            if let Some(loading) = &self.loading {
                controls::loading_ui(ui, loading);
            }
            controls::banner_ui(
                ui,
                &self.timeline,
                self.note.as_deref(),
                &self.errors,
                &palette,
                &mut dismiss,
            );
            if let Some(m) = &self.export_message {
                ui.label(RichText::new(m).color(palette.positive));
            }
            ui.add_space(2.0);
        });
        // The whole height below the controls.
        if self.state.check_panel {
            self.check_panel_ui(ui, &palette, &mut actions);
        }
        let focus = self.state.focus_step();
        let view = self.server_view(focus);
        if self.state.quiz.asking.is_some() {
            // The question takes the narration's place until the step is shown.
            Panel::top("quiz").resizable(false).show(ui, |ui| {
                ui.add_space(4.0);
                quiz_panel::quiz_ui(ui, &self.state.quiz, &self.timeline, &palette, &mut actions);
                ui.add_space(4.0);
            });
        } else if self.state.narration_panel {
            Panel::top("narration")
                .resizable(true)
                .default_size(190.0)
                .show(ui, |ui| {
                    ui.columns(2, |columns| {
                        if let [left, right] = columns {
                            // Columns lay out "justified", which stretches the spaces of
                            // wrapped labels to the full width: draw top-down instead.
                            unjustified(left, |ui| {
                                ScrollArea::vertical()
                                    .id_salt("narration-scroll")
                                    .auto_shrink([false, false])
                                    .show(ui, |ui| {
                                        narration::narration_ui(
                                            ui,
                                            &self.timeline,
                                            focus,
                                            &self.status.title,
                                            &self.status.description,
                                            &palette,
                                        );
                                    });
                            });
                            unjustified(right, |ui| {
                                ui.horizontal(|ui| {
                                    ui.label(RichText::new("Server state").strong().size(17.0));
                                    ui.with_layout(
                                        egui::Layout::right_to_left(egui::Align::Center),
                                        |ui| {
                                            fold_button(
                                                ui,
                                                controls::glyph::FOLD_UP,
                                                "Fold the narration",
                                                Pane::Narration,
                                                false,
                                                &mut actions,
                                            );
                                        },
                                    );
                                });
                                ScrollArea::vertical()
                                    .id_salt("server-scroll")
                                    .auto_shrink([false, false])
                                    .show(ui, |ui| {
                                        server_state::server_state_ui(ui, &view, &palette);
                                    });
                            });
                        }
                    });
                });
        } else {
            Panel::top("narration-folded").show(ui, |ui| {
                ui.horizontal(|ui| {
                    fold_button(
                        ui,
                        controls::glyph::FOLD_DOWN,
                        "Unfold the narration",
                        Pane::Narration,
                        true,
                        &mut actions,
                    );
                    let caption = focus
                        .and_then(|s| self.timeline.steps.get(s).map(|r| (s, r)))
                        .map_or_else(
                            || "Narration and server state (folded)".to_string(),
                            |(s, r)| format!("Step {}: {}", s + 1, r.caption),
                        );
                    ui.add(
                        egui::Label::new(RichText::new(caption).color(palette.accent)).truncate(),
                    );
                });
            });
        }
        // Below, across the whole width (before the details pane takes the right side).
        if self.state.live_panel && !self.showing_file() && !self.check.shown {
            // At most 45% of the height, so the diagram keeps room on a 720-line projector.
            let live_height = (ui.available_height() * 0.45).min(275.0);
            Panel::bottom("live")
                .resizable(true)
                .default_size(live_height)
                .show(ui, |ui| {
                    ScrollArea::vertical()
                        .id_salt("live-scroll")
                        .auto_shrink([false, false])
                        .show(ui, |ui| {
                            ui.add_space(4.0);
                            live::live_ui(
                                ui,
                                &mut self.state.forms,
                                &self.timeline,
                                &self.status,
                                &palette,
                                &mut actions,
                            );
                        });
                });
        }
        if self.state.connections_panel {
            self.connections.refresh(
                &self.timeline,
                self.generation,
                &self.state.connection_filter,
            );
            Panel::left("connections")
                .resizable(true)
                .default_size(330.0)
                .min_size(220.0)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new("Connections").strong().size(17.0));
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            fold_button(
                                ui,
                                controls::glyph::FOLD_LEFT,
                                "Fold the connection list",
                                Pane::Connections,
                                false,
                                &mut actions,
                            );
                        });
                    });
                    connections::connections_ui(
                        ui,
                        &self.connections,
                        &mut self.state.connection_filter,
                        &palette,
                        &mut actions,
                    );
                });
        }
        // Its width follows the window's width in points (which the zoom changes): when that
        // changes, a fresh panel (and so its default width) is used. The divider drags.
        let details_width = (ui.available_width() * 0.42).clamp(320.0, 620.0);
        let width_key = (ui.available_width() / 20.0).round() as i32;
        if self.state.details_panel {
            Panel::right(("details", width_key))
                .resizable(true)
                .default_size(details_width)
                .min_size(220.0)
                .max_size((ui.available_width() - 260.0).max(240.0))
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        fold_button(
                            ui,
                            controls::glyph::FOLD_RIGHT,
                            "Fold the packet details",
                            Pane::Details,
                            false,
                            &mut actions,
                        );
                        ui.label(RichText::new("Packet details").strong().size(17.0));
                        follow_button(ui, &self.timeline, &self.state, &mut actions);
                    });
                    details::details_ui(
                        ui,
                        &self.timeline,
                        self.generation,
                        &self.state,
                        &mut self.details,
                        &palette,
                        &mut actions,
                    );
                });
        } else {
            Panel::right("details-folded")
                .resizable(false)
                .exact_size(34.0)
                .show(ui, |ui| {
                    fold_button(
                        ui,
                        controls::glyph::FOLD_LEFT,
                        "Unfold the packet details",
                        Pane::Details,
                        true,
                        &mut actions,
                    );
                });
        }
        drop_hint(ui.ctx());
        if let Some(followed) = self.state.follow {
            self.follow
                .refresh(&self.timeline, self.generation, followed.conn, &self.wake);
            follow::follow_window(ui.ctx(), followed, &self.follow, &palette, &mut actions);
        }
        let upto = self.diagram_upto();
        let rebuilt = self
            .rows
            .refresh(&self.timeline, self.generation, upto, self.state.tcp_view);
        if rebuilt {
            // The scroll to new rows waits for the next frame (see `reveal`).
            ui.ctx().request_repaint();
        }
        let reveal = self.reveal(rebuilt);
        let mut diagram_rect = None;
        let previous_height = self.diagram_rect.map(|r| r.height());
        CentralPanel::default().show(ui, |ui| {
            diagram_rect = diagram::diagram_ui(
                ui,
                &self.timeline,
                &self.rows,
                &self.state,
                reveal.as_ref(),
                previous_height,
                &palette,
                &mut actions,
            );
        });
        // The diagram grew or shrank (a pane folded, unfolded or opened, a divider dragged):
        // bring the step it last revealed back into view on the next frame.
        let resized = match (self.diagram_rect, diagram_rect) {
            (Some(old), Some(new)) => (old.height() - new.height()).abs() > 1.0,
            _ => false,
        };
        if resized
            && self
                .revealed
                .as_ref()
                .is_some_and(|(step, _)| *step == self.state.selection.step)
        {
            self.state.scroll_to_selection = true;
            ui.ctx().request_repaint();
        }
        self.diagram_rect = diagram_rect;
        // A scroll request is honoured once.
        self.state.scroll_to_row = None;
        self.state.reveal_field = false;
        if dismiss {
            self.errors.clear();
        }
        for action in actions {
            self.act(action);
        }
        for kind in exports {
            self.export(kind);
        }
    }

    /// One whole frame: [`Self::logic`] then [`Self::ui`] (what eframe does; tests and
    /// benchmarks call this with a plain `Ui`).
    pub fn frame_ui(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        self.logic(&ctx);
        self.ui(ui);
    }

    /// What the diagram must bring into view this frame: the selection's step after a
    /// step change (Next, Back, a new step), and again when the rows of the step it last
    /// revealed changed (segments captured late), so the whole exchange stays in view.
    fn reveal(&mut self, rebuilt: bool) -> Option<Reveal> {
        let sel = &self.state.selection;
        // Rows that appeared this frame are not yet known to the scroll area (its bounds are
        // last frame's): a scroll to them now would overshoot, spring back and coast. Wait
        // one frame.
        if self.state.scroll_to_selection && !rebuilt {
            self.state.scroll_to_selection = false;
            let reveal = self.rows.reveal(sel.step, sel.exchange, sel.frame);
            self.revealed = reveal.clone().map(|r| (sel.step, r));
            return reveal;
        }
        if rebuilt {
            self.reveal_after_rebuild = true;
            return None;
        }
        if !std::mem::take(&mut self.reveal_after_rebuild) || self.state.scroll_to_selection {
            return None;
        }
        let (step, old) = self.revealed.as_ref()?;
        if *step != sel.step {
            return None;
        }
        let fresh = self.rows.reveal(sel.step, sel.exchange, sel.frame)?;
        if &fresh == old {
            return None;
        }
        self.revealed = Some((sel.step, fresh.clone()));
        Some(fresh)
    }

    /// The last step the diagram shows: the cursor (all recorded steps when it is at the
    /// newest).
    fn diagram_upto(&self) -> Option<usize> {
        self.state.cursor
    }

    /// The server state as of the focused step (recomputed only when that changes).
    fn server_view(&mut self, focus: Option<usize>) -> ServerView {
        let key = (self.generation, self.timeline.steps.len(), focus);
        let fresh = !matches!(&self.server_view, Some((k, _)) if *k == key);
        if fresh {
            let view = match focus {
                Some(step) => ServerView::up_to_step(&self.timeline, step),
                None => ServerView::default(),
            };
            self.server_view = Some((key, view));
        }
        self.server_view
            .as_ref()
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Starts writing an export on its own thread (a large capture takes a while; the
    /// window goes on drawing). The result arrives through `exports`.
    fn export(&mut self, kind: ExportKind) {
        let folder = controls::export_folder(&self.export_dir);
        let stem = format!("mailwire-{}", self.state.scenario);
        let timeline = Arc::clone(&self.timeline);
        let done = self.exports.0.clone();
        let spawned = std::thread::Builder::new()
            .name("export".into())
            .spawn(move || {
                let result =
                    reserve_export_path(&folder, &stem, kind.extension()).and_then(|path| {
                        match write_export(&timeline, kind, &path) {
                            Ok(()) => Ok(format!("wrote {}", path.display())),
                            Err(e) => {
                                // Leave no empty file behind.
                                let _ = std::fs::remove_file(&path);
                                Err(e)
                            }
                        }
                    });
                let _ = done.send(result);
            });
        match spawned {
            Ok(_) => {
                self.exporting += 1;
                self.export_message = Some(format!("writing the {} ...", kind.extension()));
            }
            Err(e) => self.errors.push(format!("cannot start the export: {e}")),
        }
    }

    /// Takes the results of finished exports.
    fn drain_exports(&mut self) {
        while let Ok(result) = self.exports.1.try_recv() {
            self.exporting = self.exporting.saturating_sub(1);
            match result {
                Ok(message) => self.export_message = Some(message),
                Err(e) => {
                    self.export_message = None;
                    self.errors.push(e);
                }
            }
        }
    }
}

/// What an export thread reports: what it wrote, or why it could not.
type ExportResult = Result<String, String>;

/// Claims a new file `STEM.EXT` in `folder`, or `STEM-2.EXT`, `STEM-3.EXT`, ... when
/// taken (created empty, atomically, so two exports never pick the same name and nothing is
/// overwritten). Returns its path.
pub fn reserve_export_path(
    folder: &Path,
    stem: &str,
    extension: &str,
) -> Result<std::path::PathBuf, String> {
    for n in 1..10_000u32 {
        let name = if n == 1 {
            format!("{stem}.{extension}")
        } else {
            format!("{stem}-{n}.{extension}")
        };
        let path = folder.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(format!(
                    "cannot write the export in {}: {e}. Pick another folder in the Export menu.",
                    folder.display()
                ));
            }
        }
    }
    Err(format!(
        "{} already holds 9999 files named {stem}-N.{extension}: pick another folder in the \
         Export menu.",
        folder.display()
    ))
}

/// Writes one export of `timeline` to `path`.
fn write_export(timeline: &Timeline, kind: ExportKind, path: &Path) -> Result<(), String> {
    let write = |bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    match kind {
        ExportKind::Pcapng => {
            let hints = crate::export::pcapng::ExportHints::from_timeline(timeline);
            crate::export::pcapng::write_pcapng(timeline, path, &hints).map_err(|e| e.to_string())
        }
        ExportKind::Transcript => {
            write(crate::export::transcript::transcript_text(timeline).as_bytes())
        }
        ExportKind::Svg => write(crate::export::svg::sequence_svg(timeline).as_bytes()),
    }
}

fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::Loading => "loading the scenario",
        Phase::Stepping => "running the steps",
        Phase::Settling { .. } => "settling",
        Phase::Requested(_) => "waiting for the screenshot",
        Phase::Done => "done",
    }
}

impl eframe::App for MailwireApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        MailwireApp::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        MailwireApp::ui(self, ui);
    }

    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        visuals.panel_fill.to_normalized_gamma_f32()
    }
}

/// Runs `add` in a top-down, left-aligned, unjustified layout (inside `ui.columns`, whose
/// justified layout would stretch the spaces of every wrapped line).
pub fn unjustified<R>(ui: &mut Ui, add: impl FnOnce(&mut Ui) -> R) -> R {
    ui.with_layout(egui::Layout::top_down(egui::Align::Min), add)
        .inner
}

/// While a file is dragged over the window: a note saying that dropping it opens it.
fn drop_hint(ctx: &egui::Context) {
    let hovered: Vec<String> = ctx.input(|i| {
        i.raw
            .hovered_files
            .iter()
            .map(|f| {
                f.path
                    .as_ref()
                    .map_or_else(String::new, |p| p.display().to_string())
            })
            .collect()
    });
    if hovered.is_empty() {
        return;
    }
    let screen = ctx.content_rect();
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop-hint"),
    ));
    painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(170));
    painter.text(
        screen.center(),
        egui::Align2::CENTER_CENTER,
        format!("Drop to open {}", hovered.join(", ")),
        egui::FontId::proportional(24.0),
        egui::Color32::WHITE,
    );
}

/// A pane's fold (or unfold) button: a glyph, named for screen readers and tests.
fn fold_button(
    ui: &mut Ui,
    glyph: &str,
    name: &str,
    pane: Pane,
    unfold: bool,
    actions: &mut Vec<UiAction>,
) {
    if controls::named_button(ui, true, controls::glyph::text(glyph), name)
        .on_hover_text(name)
        .clicked()
    {
        actions.push(UiAction::SetPane(pane, unfold));
    }
}

/// The Follow stream button: follows the selected connection (the selected frame's, else
/// the selected step's).
fn follow_button(ui: &mut Ui, timeline: &Timeline, state: &UiState, actions: &mut Vec<UiAction>) {
    let conn = follow::selected_connection(timeline, &state.selection, state.cursor);
    let response = ui
        .add_enabled(conn.is_some(), egui::Button::new("Follow stream"))
        .on_hover_text("The selected connection's bytes as text, client's and server's in order")
        .on_disabled_hover_text("Select a step or a packet of a connection first");
    if response.clicked()
        && let Some(conn) = conn
    {
        actions.push(UiAction::FollowStream(conn));
    }
}

/// What the narration and the toolbar say of a capture file: its name and what it holds.
fn file_status(timeline: &Timeline, path: &Path) -> WorkerStatus {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let steps = timeline.steps.len();
    WorkerStatus {
        scenario: name.clone(),
        title: format!("Capture file {name}"),
        description: format!(
            "Read from {}: {} packets, {} TCP connections, {steps} steps. Next and Back walk \
             through the recorded steps; nothing is sent and no server runs.",
            path.display(),
            timeline.packets.len(),
            timeline.analyzer.connections().len(),
        ),
        total_steps: steps,
        steps_run: steps,
        done: true,
        ..WorkerStatus::default()
    }
}
