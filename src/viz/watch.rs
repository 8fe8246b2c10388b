//! Watching ports live in the window: traffic of programs mailwire did not start (a
//! student's client and server, Thunderbird, Dovecot) drawn as it arrives.
//!
//! A "port-watch" thread (never the window's) runs [`live::start`] on the ports named, feeds
//! every packet to an [`Analyzer`] of its own (it keeps no packet bytes: the window keeps
//! those) and mirrors the window's timeline with [`TimelineUpdate`]s: each packet, and each
//! step once it is complete — made by [`lesson::dialog_steps`], one step per command and its
//! reply as for a capture file, and turned into exchanges by [`lesson::step_outcome`]. A
//! command's step waits for its reply; it goes out without one when the connection closed,
//! when a later command was answered (replies pair in order, so this one never will be), or
//! when the watch stops.
//!
//! Capture rights: on the real loopback the capture needs root or CAP_NET_RAW; when it cannot
//! start, the window shows [`CaptureError`]'s explanation (what to do) and no packet.
//! Inside mailwire's private network (the sandboxed window) a watch sees only the programs
//! in there: [`WatchForm::place_note`] says so and how to watch outside programs. The form
//! ([`watch_form_ui`]) is in the toolbar's Open menu, the other source of traffic.
//!
//! [`Analyzer`]: crate::decode::analyzer::Analyzer

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use eframe::egui;
use eframe::egui::{Key, RichText, Ui};

use super::state::UiAction;
use crate::capture::live::{self, CaptureError, CaptureMessage, LiveConfig};
use crate::decode::UnitKind;
use crate::lesson;
use crate::proto::Direction;
use crate::timeline::{CaptureStatus, Timeline, TimelineUpdate};

/// What to watch: TCP ports on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRequest {
    /// The ports (each once, in the order given).
    pub ports: Vec<u16>,
    /// The interface (`lo`: this computer's loopback).
    pub interface: String,
}

impl WatchRequest {
    /// The ports as a list for captions: `2110, 2525`.
    pub fn port_list(&self) -> String {
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        ports.join(", ")
    }

    /// The title of the watch's timeline.
    pub fn title(&self) -> String {
        let s = if self.ports.len() == 1 { "" } else { "s" };
        format!(
            "Watching TCP port{s} {} on {}",
            self.port_list(),
            self.interface
        )
    }
}

/// Why the ports typed cannot be watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortsError {
    /// Nothing typed.
    Empty,
    /// A word that is not a port number (1 to 65535).
    NotAPort { word: String },
    /// No interface named.
    NoInterface,
}

impl fmt::Display for PortsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortsError::Empty => write!(
                f,
                "Name the TCP ports to watch: your server's ports, separated by commas \
                 (e.g. 2110, 2525)."
            ),
            PortsError::NotAPort { word } => write!(
                f,
                "\"{word}\" is not a TCP port: give numbers from 1 to 65535, separated by \
                 commas (e.g. 2110, 2525)."
            ),
            PortsError::NoInterface => write!(
                f,
                "Name the interface to capture on (\"lo\" is this computer's loopback)."
            ),
        }
    }
}

impl std::error::Error for PortsError {}

/// The ports typed in the form (or given to `--watch`): numbers separated by commas or
/// spaces, each kept once.
pub fn parse_ports(text: &str) -> Result<Vec<u16>, PortsError> {
    let mut ports = Vec::new();
    for word in text.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        match word.parse::<u16>() {
            Ok(port) if port > 0 => {
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
            _ => {
                return Err(PortsError::NotAPort {
                    word: word.to_string(),
                });
            }
        }
    }
    if ports.is_empty() {
        return Err(PortsError::Empty);
    }
    Ok(ports)
}

/// The "Watch ports" form's text, and what went wrong last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchForm {
    /// The ports, as typed.
    pub ports: String,
    /// The interface, as typed.
    pub interface: String,
    /// Why the last Start was refused before anything was captured.
    pub problem: Option<String>,
    /// This window runs inside mailwire's private network.
    pub sandboxed: bool,
}

impl Default for WatchForm {
    fn default() -> Self {
        WatchForm {
            ports: String::new(),
            interface: "lo".to_string(),
            problem: None,
            sandboxed: crate::capture::sandbox::is_sandboxed_copy(),
        }
    }
}

impl WatchForm {
    /// The request the form describes, or why it is not one.
    pub fn request(&self) -> Result<WatchRequest, PortsError> {
        let ports = parse_ports(&self.ports)?;
        let interface = self.interface.trim();
        if interface.is_empty() {
            return Err(PortsError::NoInterface);
        }
        Ok(WatchRequest {
            ports,
            interface: interface.to_string(),
        })
    }

    /// What a watch started here can see, and what it needs.
    pub fn place_note(&self) -> &'static str {
        if self.sandboxed {
            "This window runs inside mailwire's private network, so a watch here sees only \
             programs inside it (mailwire's own servers and client), never your own \
             programs. To watch those, start `mailwire --watch 2110,2525` (your ports) from \
             a terminal: that window stays outside and needs root, or once `sudo setcap \
             cap_net_raw,cap_net_admin+eip $(which mailwire)`."
        } else {
            "Captures on this computer's real network, where your own client and server, \
             Thunderbird or Dovecot run. That needs root, or once `sudo setcap \
             cap_net_raw,cap_net_admin+eip $(which mailwire)`; without it nothing is \
             captured and the banner says why."
        }
    }
}

/// What the port-watch thread sends the window.
// Nearly every message is an update (as `TimelineUpdate`, one at a time through a channel).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum WatchMessage {
    /// A change to the window's timeline.
    Update(TimelineUpdate),
    /// The capture stopped: cut the units still open (`Analyzer::finish`), as the thread
    /// did, before the last steps.
    Finish,
    /// The watch ended: `None` when stopped, or why the capture could not start or go on.
    Ended(Option<CaptureError>),
}

/// How a watch stands, for the form and the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchPhase {
    /// The capture is starting or running.
    Running,
    /// Stop was pressed; the last packets and steps are on their way.
    Stopping,
    /// Stopped by the user.
    Stopped,
    /// The capture could not start or failed while running.
    Failed(CaptureError),
}

/// A watch the window started (or started at `--watch`): its thread's channel and stop flag.
#[derive(Debug)]
pub struct Watching {
    /// What is watched.
    pub request: WatchRequest,
    /// How it stands.
    pub phase: WatchPhase,
    stop: Arc<AtomicBool>,
    messages: Receiver<WatchMessage>,
}

/// What draining a watch's messages changed in the window's timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// The timeline was reset (a new watch began).
    pub reset: bool,
    /// Steps were added.
    pub steps: usize,
    /// Packets were added.
    pub packets: usize,
    /// The watch ended (stopped or failed).
    pub ended: bool,
    /// More messages wait (a frame takes at most [`MAX_PER_DRAIN`]).
    pub more: bool,
}

/// The most messages one drain applies, so that a burst never stalls a frame: the rest
/// waits for the next frame.
pub const MAX_PER_DRAIN: usize = 20_000;

impl Watching {
    /// Starts watching on a thread of its own; `wake` is called when there is news (the
    /// window passes a repaint request).
    pub fn start(
        request: WatchRequest,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Watching, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, messages) = crossbeam_channel::unbounded();
        let thread_stop = Arc::clone(&stop);
        let thread_request = request.clone();
        std::thread::Builder::new()
            .name("port-watch".into())
            .spawn(move || watch_thread(&thread_request, &thread_stop, &tx, &wake))
            .map_err(|e| format!("cannot start the thread that watches the ports: {e}"))?;
        Ok(Watching {
            request,
            phase: WatchPhase::Running,
            stop,
            messages,
        })
    }

    /// Asks the watch to stop; its last packets and steps still arrive.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.phase == WatchPhase::Running {
            self.phase = WatchPhase::Stopping;
        }
    }

    /// Whether the capture runs (or is stopping).
    pub fn is_running(&self) -> bool {
        matches!(self.phase, WatchPhase::Running | WatchPhase::Stopping)
    }

    /// Applies what the thread sent to `timeline` (never blocks).
    pub fn drain(&mut self, timeline: &mut Arc<Timeline>) -> Drained {
        let mut drained = Drained::default();
        let messages: Vec<WatchMessage> = self.messages.try_iter().take(MAX_PER_DRAIN).collect();
        if messages.is_empty() {
            return drained;
        }
        drained.more = !self.messages.is_empty();
        let model = Arc::make_mut(timeline);
        for message in messages {
            match message {
                WatchMessage::Update(update) => {
                    match &update {
                        TimelineUpdate::Reset { .. } => {
                            drained = Drained {
                                reset: true,
                                more: drained.more,
                                ..Drained::default()
                            };
                        }
                        TimelineUpdate::Packet(_) => drained.packets += 1,
                        TimelineUpdate::Step { .. } => drained.steps += 1,
                        TimelineUpdate::Capture(_) | TimelineUpdate::Secrets(_) => {}
                    }
                    model.apply(update);
                }
                WatchMessage::Finish => {
                    model.analyzer.finish();
                }
                WatchMessage::Ended(None) => {
                    self.phase = WatchPhase::Stopped;
                    drained.ended = true;
                }
                WatchMessage::Ended(Some(e)) => {
                    self.phase = WatchPhase::Failed(e);
                    drained.ended = true;
                }
            }
        }
        drained
    }

    /// Drains until `done` holds for the timeline, or `limit` passes (for tests: the window
    /// drains once a frame). Returns whether `done` held.
    pub fn drain_until(
        &mut self,
        timeline: &mut Arc<Timeline>,
        limit: Duration,
        done: impl Fn(&Timeline, &Watching) -> bool,
    ) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            self.drain(timeline);
            if done(timeline, self) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One line on how the watch stands.
    pub fn describe(&self) -> String {
        let what = format!(
            "TCP port{} {} on {}",
            if self.request.ports.len() == 1 {
                ""
            } else {
                "s"
            },
            self.request.port_list(),
            self.request.interface
        );
        match &self.phase {
            WatchPhase::Running => format!("Watching {what}."),
            WatchPhase::Stopping => format!("Stopping the watch of {what} ..."),
            WatchPhase::Stopped => format!("The watch of {what} stopped; what it saw stays shown."),
            WatchPhase::Failed(_) => {
                format!("The watch of {what} captured nothing:")
            }
        }
    }
}

impl Drop for Watching {
    /// A watch nobody shows any more stops (its thread ends on its own).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Which of the dialog steps of a growing capture are complete, and which were sent.
#[derive(Debug, Default)]
pub struct LiveSteps {
    /// The opening units (indices into the analyzer's) of the steps sent.
    sent: HashSet<usize>,
    /// Steps sent.
    count: usize,
}

impl LiveSteps {
    /// The steps of `model` that are complete and not sent yet, as timeline updates (each
    /// numbered after those sent). With `finished` (the capture stopped), every step is.
    pub fn ready(&mut self, model: &Timeline, finished: bool) -> Vec<TimelineUpdate> {
        let mut out = Vec::new();
        for step in lesson::dialog_steps(model) {
            let Some(units) = &step.units else { continue };
            let Some(&opener) = units.first() else {
                continue;
            };
            if self.sent.contains(&opener) || !(finished || complete(model, opener, units)) {
                continue;
            }
            self.sent.insert(opener);
            let step = lesson::LessonStep {
                index: self.count,
                ..step
            };
            self.count += 1;
            let (outcome, ends) = lesson::step_outcome(model, &step);
            out.push(TimelineUpdate::Step {
                outcome,
                caption: step.caption,
                rfc: step.rfc,
                ends,
                frames: step.frames,
            });
        }
        out
    }
}

/// Whether a dialog step (its opening unit, lines that answer nothing held in it, and, when
/// answered, the reply) will not grow: a greeting or a lone reply; a command with its reply; a command whose connection closed, or
/// whose server answered a later command (replies pair in order, so this one never will be;
/// a reply that pairs with nothing proves nothing: the open reply may still end).
fn complete(model: &Timeline, opener: usize, units: &[usize]) -> bool {
    let all = model.analyzer.units();
    let Some(unit) = all.get(opener) else {
        return true;
    };
    // Its reply came (a line that answers nothing, held in the step, does not end it).
    let answered = units
        .iter()
        .any(|&v| all.get(v).is_some_and(|r| r.reply_to == Some(opener)));
    if answered || matches!(unit.kind, UnitKind::Greeting | UnitKind::Reply) {
        return true;
    }
    let Some(conn) = model.analyzer.connections().get(unit.conn) else {
        return true;
    };
    conn.is_closed()
        || conn.units.iter().any(|&v| {
            v > opener
                && all.get(v).is_some_and(|later| {
                    later.direction == Direction::ServerToClient
                        && later.kind == UnitKind::Reply
                        && later.reply_to.is_some_and(|c| c > opener)
                })
        })
}

/// The port-watch thread: capture, decode, mirror; until `stop`.
fn watch_thread(
    request: &WatchRequest,
    stop: &AtomicBool,
    tx: &Sender<WatchMessage>,
    wake: &dyn Fn(),
) {
    let send = |m: WatchMessage| {
        let _ = tx.send(m);
    };
    send(WatchMessage::Update(TimelineUpdate::Reset {
        title: request.title(),
    }));
    let (packets_tx, packets) = crossbeam_channel::unbounded();
    let config = LiveConfig {
        interface: request.interface.clone(),
        filter: live::port_filter(&request.ports),
        ..LiveConfig::default()
    };
    let capture = match live::start(config, packets_tx) {
        Ok(capture) => capture,
        Err(e) => {
            send(WatchMessage::Update(TimelineUpdate::Capture(
                CaptureStatus::Unavailable { why: e.to_string() },
            )));
            send(WatchMessage::Ended(Some(e)));
            wake();
            return;
        }
    };
    send(WatchMessage::Update(TimelineUpdate::Capture(
        CaptureStatus::Live {
            interface: request.interface.clone(),
            ports: request.ports.clone(),
            sandboxed: crate::capture::sandbox::is_sandboxed_copy(),
        },
    )));
    wake();
    // The thread's own model: the analyzer only (the window keeps the packets).
    let mut model = Timeline::new(request.title());
    let mut steps = LiveSteps::default();
    let mut failure = None;
    let mut stats = None;
    let mut take = |message: CaptureMessage,
                    model: &mut Timeline,
                    failure: &mut Option<CaptureError>| match message {
        CaptureMessage::Packet(p) => {
            model.analyzer.push(&p);
            send(WatchMessage::Update(TimelineUpdate::Packet(p)));
        }
        CaptureMessage::Failed(e) => *failure = failure.take().or(Some(e)),
        CaptureMessage::Stats { received, dropped } => stats = Some((received, dropped)),
    };
    while !stop.load(Ordering::SeqCst) && failure.is_none() {
        let Ok(first) = packets.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        take(first, &mut model, &mut failure);
        // A burst is taken whole, then its steps are made once.
        for message in packets.try_iter().take(4096) {
            take(message, &mut model, &mut failure);
        }
        for update in steps.ready(&model, false) {
            send(WatchMessage::Update(update));
        }
        wake();
    }
    capture.stop();
    for message in packets.try_iter() {
        take(message, &mut model, &mut failure);
    }
    // Units still open (a reply without its end) are cut now, here and in the window.
    model.analyzer.finish();
    send(WatchMessage::Finish);
    for update in steps.ready(&model, true) {
        send(WatchMessage::Update(update));
    }
    let status = match (&failure, stats) {
        (Some(e), _) => CaptureStatus::Failed { why: e.to_string() },
        (None, Some((received, dropped))) => CaptureStatus::Stopped { received, dropped },
        (None, None) => CaptureStatus::Stopped {
            received: 0,
            dropped: 0,
        },
    };
    send(WatchMessage::Update(TimelineUpdate::Capture(status)));
    send(WatchMessage::Ended(failure));
    wake();
}

/// The "Watch ports" form (in the Open menu: a watch is the other source of traffic
/// besides a file): ports, interface, Start or Restart, Stop; how the watch stands, what
/// went wrong, and what a watch here can see.
pub fn watch_form_ui(
    ui: &mut Ui,
    form: &mut WatchForm,
    watching: Option<&Watching>,
    actions: &mut Vec<UiAction>,
) {
    let running = watching.is_some_and(Watching::is_running);
    ui.label(RichText::new("Watch ports live: programs mailwire did not start").strong());
    let mut enter = false;
    egui::Grid::new("watch-form").num_columns(2).show(ui, |ui| {
        let label = ui.label("TCP ports");
        let field = ui
            .add(
                egui::TextEdit::singleline(&mut form.ports)
                    .hint_text("e.g. 2110, 2525")
                    .desired_width(220.0),
            )
            .labelled_by(label.id);
        enter |= field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
        ui.end_row();
        let label = ui.label("Interface");
        let field = ui
            .add(egui::TextEdit::singleline(&mut form.interface).desired_width(220.0))
            .labelled_by(label.id);
        enter |= field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
        ui.end_row();
    });
    ui.horizontal(|ui| {
        let start = if running { "Restart" } else { "Start watching" };
        if ui.button(start).clicked() || enter {
            actions.push(UiAction::StartWatch);
        }
        if ui
            .add_enabled(running, egui::Button::new("Stop"))
            .on_hover_text("Stop capturing; what was seen stays shown")
            .clicked()
        {
            actions.push(UiAction::StopWatch);
        }
    });
    if let Some(w) = watching {
        ui.label(w.describe());
        if let WatchPhase::Failed(e) = &w.phase {
            let error = RichText::new(e.to_string()).color(ui.visuals().error_fg_color);
            super::app::unjustified(ui, |ui| ui.label(error));
        }
    }
    if let Some(problem) = &form.problem {
        ui.label(RichText::new(problem).color(ui.visuals().error_fg_color));
    }
    super::app::unjustified(ui, |ui| ui.label(form.place_note()));
}

/// What the narration and the toolbar say of a watch.
pub fn watch_status(timeline: &Timeline, watching: &Watching) -> super::worker::WorkerStatus {
    let steps = timeline.steps.len();
    super::worker::WorkerStatus {
        scenario: format!("watch {}", watching.request.port_list()),
        title: watching.request.title(),
        description: match &watching.phase {
            WatchPhase::Failed(e) => format!("{} {e}", watching.describe()),
            _ => format!(
                "{} {} packets, {} TCP connections, {steps} steps so far: one step per \
                 command and its reply, as they complete. Next and Back walk them; the newest \
                 is followed while the last step is shown.",
                watching.describe(),
                timeline.packets.len(),
                timeline.analyzer.connections().len(),
            ),
        },
        total_steps: steps,
        steps_run: steps,
        done: true,
        ..super::worker::WorkerStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_numbers_separated_by_commas_or_spaces() {
        assert_eq!(parse_ports("2110, 2525"), Ok(vec![2110, 2525]));
        assert_eq!(parse_ports(" 110 25,110 "), Ok(vec![110, 25]));
        assert_eq!(parse_ports("  "), Err(PortsError::Empty));
        assert_eq!(
            parse_ports("110, pop3"),
            Err(PortsError::NotAPort {
                word: "pop3".into()
            })
        );
        assert_eq!(
            parse_ports("0"),
            Err(PortsError::NotAPort { word: "0".into() })
        );
        assert_eq!(
            parse_ports("70000"),
            Err(PortsError::NotAPort {
                word: "70000".into()
            })
        );
        let form = WatchForm {
            ports: "2110".into(),
            interface: " ".into(),
            problem: None,
            sandboxed: false,
        };
        assert_eq!(form.request(), Err(PortsError::NoInterface));
    }

    #[test]
    fn the_sandboxed_form_says_it_cannot_see_outside_programs() {
        let mut form = WatchForm {
            sandboxed: true,
            ..WatchForm::default()
        };
        assert!(form.place_note().contains("never your own"));
        assert!(form.place_note().contains("mailwire --watch"));
        form.sandboxed = false;
        assert!(form.place_note().contains("setcap"));
    }
}
