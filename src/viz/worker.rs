//! The demo worker: one named thread ("demo-worker") that owns the [`Recorder`] (servers,
//! client engine, capture) so the window never waits on the network.
//!
//! The window sends [`WorkerCommand`]s; the worker mirrors every change of its timeline to
//! the window as [`TimelineUpdate`]s (the window applies them to its own copy), reports a
//! [`WorkerStatus`] after each command, and wakes the window (a repaint request) after
//! sending. While idle it polls the capture every [`IDLE_POLL`] so late packets (FINs after
//! a QUIT) still arrive.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::scenario::format::{self, Step};
use crate::scenario::recorder::{Recorder, RecorderOptions};
use crate::timeline::TimelineUpdate;

/// How often the idle worker brings in late packets.
pub const IDLE_POLL: Duration = Duration::from_millis(100);

/// What the window asks of the worker.
#[derive(Debug, Clone)]
pub enum WorkerCommand {
    /// Start a built-in scenario (or a scenario file) afresh: new fixture, servers, capture.
    Load(String),
    /// Run the scenario's next step.
    Next,
    /// Start the current scenario again from its first step.
    Reset,
    /// Run a step that is not in the scenario (the console, the menu client's forms).
    Extra(Step),
    /// Stop the worker (its recorder stops the servers and the capture).
    Shutdown,
}

/// Where the worker stands, sent after every command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatus {
    /// The loaded scenario's name (as given to [`WorkerCommand::Load`]).
    pub scenario: String,
    /// Its title.
    pub title: String,
    /// Its description (a paragraph for the class).
    pub description: String,
    /// How many steps the scenario has.
    pub total_steps: usize,
    /// How many of them have run.
    pub steps_run: usize,
    /// Whether every step has run.
    pub done: bool,
    /// Sessions (of extra steps) that are connected, as far as the worker can tell.
    pub connected: BTreeSet<String>,
    /// Where mailwire's POP3 server listens (while a scenario runs), for outside clients.
    pub pop3_addr: Option<SocketAddr>,
    /// Where mailwire's SMTP server listens.
    pub smtp_addr: Option<SocketAddr>,
    /// Whether the worker runs in mailwire's private network (nothing outside reaches it).
    pub sandboxed: bool,
    /// The loaded scenario's users (name, password), from its fixture: who can log in.
    pub users: Vec<(String, String)>,
}

/// What the worker tells the window besides timeline updates.
#[derive(Debug, Clone)]
pub enum WorkerMessage {
    /// The worker's state after a command.
    Status(WorkerStatus),
    /// Something failed (a scenario that would not start); shown in the window.
    Error(String),
}

/// The worker's thread could not be started.
#[derive(Debug)]
pub struct SpawnError(std::io::Error);

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot start the demo worker thread: {}", self.0)
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The window's start-up error is its printed text (eframe takes any error), so `?` turns
/// this into it.
impl From<SpawnError> for String {
    fn from(e: SpawnError) -> String {
        e.to_string()
    }
}

/// The window's handle on the worker thread. Dropping it shuts the worker down.
pub struct Worker {
    commands: Sender<WorkerCommand>,
    /// Timeline changes, in order.
    pub updates: Receiver<TimelineUpdate>,
    /// Status reports and errors.
    pub messages: Receiver<WorkerMessage>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread. `wake` is called after the worker sent something (the
    /// window passes `egui::Context::request_repaint`).
    pub fn spawn(
        options: RecorderOptions,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Self, SpawnError> {
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (update_tx, updates) = crossbeam_channel::unbounded();
        let (message_tx, messages) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("demo-worker".into())
            .spawn(move || {
                let mut state = WorkerState {
                    options,
                    recorder: None,
                    scenario: String::new(),
                    steps_run: 0,
                    connected: BTreeSet::new(),
                    updates: update_tx,
                    messages: message_tx,
                };
                state.run(&command_rx, &wake);
            })
            .map_err(SpawnError)?;
        Ok(Self {
            commands,
            updates,
            messages,
            thread: Some(thread),
        })
    }

    /// Sends a command (never blocks). Returns false if the worker is gone.
    pub fn send(&self, command: WorkerCommand) -> bool {
        self.commands.send(command).is_ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.commands.send(WorkerCommand::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct WorkerState {
    options: RecorderOptions,
    recorder: Option<Recorder>,
    scenario: String,
    steps_run: usize,
    connected: BTreeSet<String>,
    updates: Sender<TimelineUpdate>,
    messages: Sender<WorkerMessage>,
}

impl WorkerState {
    fn run(&mut self, commands: &Receiver<WorkerCommand>, wake: &dyn Fn()) {
        loop {
            match commands.recv_timeout(IDLE_POLL) {
                Ok(WorkerCommand::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(command) => {
                    self.handle(command);
                    wake();
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(recorder) = &mut self.recorder {
                        let before = recorder.timeline().packets.len();
                        recorder.poll();
                        if recorder.timeline().packets.len() != before {
                            wake();
                        }
                    }
                }
            }
        }
        // The recorder (servers, capture) stops here, on this thread.
        self.recorder = None;
    }

    fn handle(&mut self, command: WorkerCommand) {
        match command {
            WorkerCommand::Load(name) => self.load(&name),
            WorkerCommand::Reset => {
                let name = self.scenario.clone();
                self.load(&name);
            }
            WorkerCommand::Next => {
                if let Some(recorder) = &mut self.recorder
                    && recorder.step().is_some()
                {
                    self.steps_run += 1;
                }
            }
            WorkerCommand::Extra(step) => self.extra(&step),
            WorkerCommand::Shutdown => {}
        }
        self.report();
    }

    fn load(&mut self, name: &str) {
        // The old servers must be gone before new ones take the same ports.
        self.recorder = None;
        self.connected.clear();
        self.steps_run = 0;
        self.scenario = name.to_string();
        let scenario = match format::find(name) {
            Ok(s) => s,
            Err(e) => {
                self.error(format!("cannot load the scenario: {e}"));
                return;
            }
        };
        match Recorder::start(&scenario, &self.options) {
            Ok(mut recorder) => {
                recorder.mirror_to(self.updates.clone());
                self.recorder = Some(recorder);
            }
            Err(e) => {
                let _ = self.updates.send(TimelineUpdate::Reset {
                    title: scenario.title.clone(),
                });
                self.error(format!(
                    "cannot start the scenario \"{name}\": {e}. Its servers are not running; \
                     pick another scenario or press Reset to try again."
                ));
            }
        }
    }

    fn extra(&mut self, step: &Step) {
        let Some(recorder) = &mut self.recorder else {
            self.error("no scenario is running: pick one (or press Reset) first".to_string());
            return;
        };
        recorder.run_extra(step);
        // The engine knows whether the session still has a connection (a QUIT, a drop,
        // the server's close or a broken protocol end it); the window shows just that.
        if recorder.is_connected(&step.session) {
            self.connected.insert(step.session.clone());
        } else {
            self.connected.remove(&step.session);
        }
    }

    fn report(&self) {
        let mut status = WorkerStatus {
            scenario: self.scenario.clone(),
            connected: self.connected.clone(),
            sandboxed: self.options.sandboxed,
            ..WorkerStatus::default()
        };
        if let Some(recorder) = &self.recorder {
            let scenario = recorder.scenario();
            status.title = scenario.title.clone();
            status.description = scenario.description.clone();
            status.total_steps = scenario.steps.len();
            status.done = recorder.is_done();
            status.steps_run = self.steps_run;
            status.pop3_addr = Some(recorder.pop3_addr());
            status.smtp_addr = Some(recorder.smtp_addr());
            status.users = (scenario.fixture.users.iter())
                .map(|u| (u.name.clone(), u.password.clone()))
                .collect();
        }
        let _ = self.messages.send(WorkerMessage::Status(status));
    }

    fn error(&self, message: String) {
        let _ = self.messages.send(WorkerMessage::Error(message));
    }
}

/// Session names the window uses for its own (extra) steps.
pub const CONSOLE_SESSION: &str = "console";
/// The menu client's POP3 session.
pub const MENU_POP3_SESSION: &str = "menu-pop3";
/// The menu client's SMTP session.
pub const MENU_SMTP_SESSION: &str = "menu-smtp";

/// Whether a session name is one of the window's live-use sessions.
pub fn is_extra_session(session: &str) -> bool {
    session.starts_with(CONSOLE_SESSION)
        || session == MENU_POP3_SESSION
        || session == MENU_SMTP_SESSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_error_says_which_thread() {
        let e = SpawnError(std::io::Error::other("too many threads"));
        assert_eq!(
            e.to_string(),
            "cannot start the demo worker thread: too many threads"
        );
        assert_eq!(
            String::from(e),
            "cannot start the demo worker thread: too many threads"
        );
    }
}
