//! A scenario run on real sockets with live capture, recorded into a [`Timeline`].
//!
//! The recorder owns the servers, the client engine and the capture; after each step it
//! waits (a bounded time) until the capture has seen the step's bytes, so every command and
//! reply can be linked to the segments that carried it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::engine::Engine;
use super::format::{Action, Scenario, Step};
use super::live::LiveServers;
use super::transport::{SocketTransport, Transport};
use super::{StartError, WorkDir, fresh_fixture, socket_servers};
use crate::capture::live::{self, CaptureError, CaptureMessage, LiveCapture, LiveConfig};
use crate::exchange::StepOutcome;
use crate::timeline::{CaptureStatus, Ends, Timeline, TimelineUpdate};

/// Where the servers listen and whether to capture.
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    pub pop3: SocketAddr,
    pub smtp: SocketAddr,
    /// Capture packets (if the system allows).
    pub capture: bool,
    /// The loopback interface's name.
    pub interface: String,
    /// Whether this process runs in mailwire's private network namespace.
    pub sandboxed: bool,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            pop3: any,
            smtp: any,
            capture: true,
            interface: if cfg!(target_os = "linux") {
                "lo"
            } else {
                "lo0"
            }
            .to_string(),
            sandboxed: false,
        }
    }
}

/// A scenario being run and recorded.
pub struct Recorder {
    engine: Engine<SocketTransport>,
    capture: Option<LiveCapture>,
    packets: Option<crossbeam_channel::Receiver<CaptureMessage>>,
    timeline: Timeline,
    mirror: Option<crossbeam_channel::Sender<TimelineUpdate>>,
    /// The ports the capture's filter covers (the servers', then any watched).
    ports: Vec<u16>,
    interface: String,
    sandboxed: bool,
    pop3: SocketAddr,
    smtp: SocketAddr,
    // Dropped last: the servers stop before their data folder goes.
    _servers: LiveServers,
    dir: WorkDir,
}

/// How long to wait for the capture to catch up with a step.
const CATCH_UP: Duration = Duration::from_secs(10);

impl Recorder {
    /// Builds a fresh fixture, starts the servers and the capture (a capture that cannot
    /// start is no error: the timeline's capture status says why).
    pub fn start(scenario: &Scenario, options: &RecorderOptions) -> Result<Self, StartError> {
        let (dir, store) = fresh_fixture(scenario)?;
        let (servers, transport) =
            socket_servers(scenario, dir.path(), store, options.pop3, options.smtp)?;
        let mut timeline = Timeline::new(scenario.title.clone());
        let mut ports = vec![servers.pop3_addr().port(), servers.smtp_addr().port()];
        // The implicit-TLS ports too, when the scenario starts TLS.
        ports.extend(
            [servers.pop3s_addr(), servers.smtps_addr()]
                .into_iter()
                .flatten()
                .map(|a| a.port()),
        );
        let (capture, packets) = if options.capture {
            match start_capture(&options.interface, &ports) {
                Ok((capture, rx)) => {
                    timeline.capture = Some(CaptureStatus::Live {
                        interface: options.interface.clone(),
                        ports: ports.clone(),
                        sandboxed: options.sandboxed,
                    });
                    (Some(capture), Some(rx))
                }
                Err(e) => {
                    timeline.capture = Some(CaptureStatus::Unavailable { why: e.to_string() });
                    (None, None)
                }
            }
        } else {
            timeline.capture = Some(CaptureStatus::Unavailable {
                why: "capture was switched off (--no-capture)".to_string(),
            });
            (None, None)
        };
        let (pop3, smtp) = (servers.pop3_addr(), servers.smtp_addr());
        Ok(Self {
            engine: Engine::new(scenario.clone(), transport),
            capture,
            packets,
            timeline,
            mirror: None,
            ports,
            interface: options.interface.clone(),
            sandboxed: options.sandboxed,
            pop3,
            smtp,
            _servers: servers,
            dir,
        })
    }

    /// Sends every change of the timeline, from the start, to `tx` as well (the window
    /// keeps its own copy this way, never waiting on the recorder).
    pub fn mirror_to(&mut self, tx: crossbeam_channel::Sender<TimelineUpdate>) {
        let _ = tx.send(TimelineUpdate::Reset {
            title: self.timeline.title.clone(),
        });
        let _ = tx.send(TimelineUpdate::Capture(self.timeline.capture_status()));
        for p in &self.timeline.packets {
            let _ = tx.send(TimelineUpdate::Packet(p.clone()));
        }
        if !self.timeline.keylog.is_empty() {
            let _ = tx.send(TimelineUpdate::Secrets(self.timeline.keylog.clone()));
        }
        self.mirror = Some(tx);
    }

    /// Applies an update to the timeline and its mirror.
    fn update(&mut self, update: TimelineUpdate) {
        if let Some(tx) = &self.mirror {
            let _ = tx.send(update.clone());
        }
        self.timeline.apply(update);
    }

    /// The timeline so far.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        self.engine.scenario()
    }

    /// Whether every step of the scenario has run.
    pub fn is_done(&self) -> bool {
        self.engine.is_done()
    }

    /// Where mailwire's POP3 server listens (outside clients can be pointed here).
    pub fn pop3_addr(&self) -> SocketAddr {
        self.pop3
    }

    /// Where mailwire's SMTP server listens.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp
    }

    /// Makes the live capture cover `port` too (a connect step to another server): when its
    /// filter does not, the capture is restarted on the same interface with the port added,
    /// into the same timeline. Without a capture this does nothing (the status says why).
    pub fn watch_port(&mut self, port: u16) {
        if self.ports.contains(&port) {
            return;
        }
        let Some(old) = self.capture.take() else {
            return;
        };
        // Take what the old capture saw; its closing statistics are not a stop of ours.
        self.drain_packets(Duration::from_millis(20));
        old.stop();
        if let Some(rx) = self.packets.take() {
            for message in rx.try_iter() {
                if let CaptureMessage::Packet(p) = message {
                    self.update(TimelineUpdate::Packet(p));
                }
            }
        }
        let mut ports = self.ports.clone();
        ports.push(port);
        match start_capture(&self.interface, &ports) {
            Ok((capture, rx)) => {
                self.capture = Some(capture);
                self.packets = Some(rx);
                self.ports = ports.clone();
                self.update(TimelineUpdate::Capture(CaptureStatus::Live {
                    interface: self.interface.clone(),
                    ports,
                    sandboxed: self.sandboxed,
                }));
            }
            Err(why) => self.update(TimelineUpdate::Capture(CaptureStatus::Failed {
                why: format!("could not restart the capture to watch port {port}: {why}"),
            })),
        }
    }

    /// Before a connect step to another server, makes the capture watch its port.
    fn watch_target(&mut self, step: &Step) {
        if let Action::Connect { to: Some(to), .. } = &step.action {
            self.watch_port(to.port());
        }
    }

    /// Runs the next scenario step; returns its index in the timeline.
    pub fn step(&mut self) -> Option<usize> {
        let index = self.engine.position();
        let step = self.engine.scenario().steps.get(index)?.clone();
        self.watch_target(&step);
        let first_frame = self.timeline.packets.len();
        let outcome = self.engine.step()?;
        self.record(outcome, &step, first_frame);
        Some(self.timeline.steps.len() - 1)
    }

    /// Whether the session of that name has a connection (after the last step).
    pub fn is_connected(&self, session: &str) -> bool {
        self.engine.is_connected(session)
    }

    /// Runs a step that is not in the scenario (typed in a console, a menu action).
    pub fn run_extra(&mut self, step: &Step) -> usize {
        self.watch_target(step);
        let first_frame = self.timeline.packets.len();
        let index = self.timeline.steps.len();
        let outcome = self.engine.run_step(step, index);
        self.record(outcome, step, first_frame);
        self.timeline.steps.len() - 1
    }

    fn record(&mut self, outcome: StepOutcome, step: &Step, first_frame: usize) {
        let ends = outcome
            .conn
            .and_then(|c| self.engine.transport_mut().ends(c));
        if let Some(ends) = ends {
            let closing = outcome.server_closed
                || matches!(step.action, Action::Quit | Action::Drop | Action::Abort);
            let tls_octets = outcome
                .conn
                .and_then(|c| self.engine.transport_mut().tls_octets(c));
            self.catch_up(ends, &outcome, closing, tls_octets);
        } else {
            self.drain_packets(Duration::ZERO);
        }
        let frames = first_frame..self.timeline.packets.len();
        // The client's TLS secrets, so the run's own encrypted packets can be read.
        let keys = self.engine.transport_mut().keylog();
        let known = &self.timeline.keylog;
        if keys.entries().iter().any(|e| !known.entries().contains(e)) {
            self.update(TimelineUpdate::Secrets(keys));
        }
        self.update(TimelineUpdate::Step {
            outcome,
            caption: step.caption.clone(),
            rfc: step.rfc.clone(),
            ends,
            frames,
        });
    }

    /// The scenario's temporary folder (the fixture's data directory is inside).
    pub fn work_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Waits until the capture holds the unit of every exchange of the step (and, after
    /// QUIT or a drop, the connection's FINs), or until [`CATCH_UP`] has passed. On a TLS
    /// connection, whose exchanges travel inside records, it waits until the capture holds
    /// as many octets each way as the client wrote and read (`tls_octets`).
    fn catch_up(
        &mut self,
        ends: Ends,
        outcome: &StepOutcome,
        closing: bool,
        tls_octets: Option<(u64, u64)>,
    ) {
        if self.packets.is_none() {
            return;
        }
        let deadline = Instant::now() + CATCH_UP;
        loop {
            self.drain_packets(Duration::ZERO);
            let t = &self.timeline;
            let closed = !closing
                || t.connection_of(ends)
                    .and_then(|conn| t.analyzer.connections().get(conn))
                    .is_some_and(|c| c.is_closed());
            let octets = tls_octets.is_none_or(|(sent, received)| {
                t.connection_of(ends)
                    .and_then(|conn| t.analyzer.connections().get(conn))
                    .is_some_and(|c| {
                        c.streams[0].delivered() >= sent && c.streams[1].delivered() >= received
                    })
            });
            if (closed && octets && t.all_captured(ends, outcome)) || Instant::now() >= deadline {
                return;
            }
            self.drain_packets(Duration::from_millis(10));
        }
    }

    /// Moves captured packets into the timeline, waiting up to `wait` for the first.
    fn drain_packets(&mut self, wait: Duration) {
        let Some(rx) = &self.packets else { return };
        let mut messages = Vec::new();
        if let Ok(m) = rx.recv_timeout(wait) {
            messages.push(m);
        }
        messages.extend(rx.try_iter());
        for message in messages {
            let update = match message {
                CaptureMessage::Packet(p) => TimelineUpdate::Packet(p),
                CaptureMessage::Failed(e) => {
                    TimelineUpdate::Capture(CaptureStatus::Failed { why: e.to_string() })
                }
                CaptureMessage::Stats { received, dropped } => {
                    TimelineUpdate::Capture(CaptureStatus::Stopped { received, dropped })
                }
            };
            self.update(update);
        }
    }

    /// Takes the packets that arrived since the last step (the FINs after a QUIT, for
    /// instance) into the timeline.
    pub fn poll(&mut self) {
        self.drain_packets(Duration::ZERO);
    }

    /// Stops the capture (after a moment for the last packets) and returns the timeline.
    pub fn finish(mut self) -> Timeline {
        self.drain_packets(Duration::from_millis(100));
        if let Some(capture) = self.capture.take() {
            capture.stop();
        }
        self.drain_packets(Duration::from_millis(100));
        std::mem::take(&mut self.timeline)
    }
}

/// Starts a live capture of TCP `ports` on `interface`.
fn start_capture(
    interface: &str,
    ports: &[u16],
) -> Result<(LiveCapture, crossbeam_channel::Receiver<CaptureMessage>), CaptureError> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let config = LiveConfig {
        interface: interface.to_string(),
        filter: live::port_filter(ports),
        // A burst such as 100 pipelined RCPTs answered one segment each overran libpcap's
        // default buffer.
        buffer_size_bytes: live::RUN_BUFFER_BYTES,
        ..LiveConfig::default()
    };
    let capture = live::start(config, tx)?;
    Ok((capture, rx))
}
