//! The timeline: the one model that the window and `mailwire run` read.
//!
//! It joins the two streams of facts: what the client and servers said (step outcomes and
//! server events) and what the capture saw (packets, decoded and reassembled by the
//! [`Analyzer`]). Each command or reply of a step is linked to the protocol unit that
//! carried it on the wire, and so to its frames and byte ranges. Nothing here is invented:
//! without capture, exchanges simply have no unit and [`CaptureStatus`] says why.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;

use crate::capture::CapturedPacket;
use crate::decode::analyzer::{Analyzer, Unit};
use crate::decode::stream::Direction as WireDirection;
use crate::scenario::{Direction, StepOutcome};
use crate::servers::ServerEvent;

/// Whether packets are being captured, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureStatus {
    /// The run has not started capturing (yet).
    NotStarted,
    /// Packets are being captured on `interface` for these ports.
    Live {
        interface: String,
        ports: Vec<u16>,
        /// Inside mailwire's private network namespace (the no-root sandbox).
        sandboxed: bool,
    },
    /// The run happens in memory: there is no network, so there are no packets.
    InMemory,
    /// Capture could not start; `why` says why and how to fix it.
    Unavailable { why: String },
    /// Capture stopped; libpcap's counts.
    Stopped { received: u32, dropped: u32 },
    /// Capture failed while running.
    Failed { why: String },
}

impl CaptureStatus {
    /// A one-line description for banners and terminal output.
    pub fn describe(&self) -> String {
        match self {
            CaptureStatus::NotStarted => "capture not started".to_string(),
            CaptureStatus::Live {
                interface,
                ports,
                sandboxed,
            } => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                let place = if *sandboxed {
                    " in mailwire's private network (no root needed)"
                } else {
                    ""
                };
                format!(
                    "capturing on {interface}, TCP ports {}{place}",
                    ports.join(", ")
                )
            }
            CaptureStatus::InMemory => {
                "not captured: this run has no network (the machines talk in memory)".to_string()
            }
            CaptureStatus::Unavailable { why } => format!("not captured: {why}"),
            CaptureStatus::Stopped { received, dropped } => format!(
                "capture stopped, {dropped} packets dropped (libpcap counted {received} \
                 received; on loopback it counts each packet twice, as sent and as received)"
            ),
            CaptureStatus::Failed { why } => format!("capture failed: {why}"),
        }
    }

    /// Whether packets are (or were) really captured.
    pub fn is_capturing(&self) -> bool {
        matches!(
            self,
            CaptureStatus::Live { .. } | CaptureStatus::Stopped { .. }
        )
    }
}

/// One change to a timeline. A recorder sends these to mirrors (the window's own copy of the
/// timeline); applying the same updates in the same order gives the same timeline.
#[derive(Debug, Clone)]
pub enum TimelineUpdate {
    /// A new run begins: forget everything.
    Reset {
        title: String,
    },
    Capture(CaptureStatus),
    Packet(CapturedPacket),
    Step {
        outcome: StepOutcome,
        caption: String,
        rfc: Option<String>,
        client: Option<SocketAddr>,
        frames: Range<usize>,
    },
}

/// One step as the timeline keeps it.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub outcome: StepOutcome,
    pub caption: String,
    pub rfc: Option<String>,
    /// The client end of the step's TCP connection, on real sockets.
    pub client: Option<SocketAddr>,
    /// Frames (indices into [`Timeline::packets`]) captured while the step ran.
    pub frames: Range<usize>,
    /// For each exchange of the outcome, the unit (index into the analyzer's units) that
    /// carried it, when it was captured.
    pub units: Vec<Option<usize>>,
}

/// Everything a run has produced so far.
#[derive(Debug, Default)]
pub struct Timeline {
    pub title: String,
    pub steps: Vec<StepRecord>,
    /// Every captured frame, in capture order (frame index = position).
    pub packets: Vec<CapturedPacket>,
    pub analyzer: Analyzer,
    pub capture: Option<CaptureStatus>,
    pub events: Vec<ServerEvent>,
    /// Units already linked, per (connection, direction).
    linked: HashMap<(usize, WireDirection), usize>,
}

impl Timeline {
    /// An empty timeline.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    /// Applies one update.
    pub fn apply(&mut self, update: TimelineUpdate) {
        match update {
            TimelineUpdate::Reset { title } => *self = Timeline::new(title),
            TimelineUpdate::Capture(status) => self.capture = Some(status),
            TimelineUpdate::Packet(p) => self.push_packet(p),
            TimelineUpdate::Step {
                outcome,
                caption,
                rfc,
                client,
                frames,
            } => self.push_step(outcome, caption, rfc, client, frames),
        }
    }

    /// The capture status (not started when never set).
    pub fn capture_status(&self) -> CaptureStatus {
        self.capture.clone().unwrap_or(CaptureStatus::NotStarted)
    }

    /// Adds one captured packet.
    pub fn push_packet(&mut self, packet: CapturedPacket) {
        self.analyzer.push(&packet);
        self.packets.push(packet);
    }

    /// The analyzer connection whose client end is `client`.
    pub fn connection_of(&self, client: SocketAddr) -> Option<usize> {
        self.analyzer
            .connections()
            .iter()
            .rev()
            .find(|c| c.client == client)
            .map(|c| c.index)
    }

    /// How many units of a connection exist in one direction.
    pub fn unit_count(&self, conn: usize, direction: WireDirection) -> usize {
        self.units_of(conn, direction).count()
    }

    /// How many units of a connection in one direction are already linked to exchanges.
    pub fn linked_count(&self, conn: usize, direction: WireDirection) -> usize {
        self.linked.get(&(conn, direction)).copied().unwrap_or(0)
    }

    fn units_of(&self, conn: usize, direction: WireDirection) -> impl Iterator<Item = usize> + '_ {
        self.analyzer
            .connections()
            .get(conn)
            .map(|c| c.units.as_slice())
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(move |&u| {
                self.analyzer
                    .units()
                    .get(u)
                    .is_some_and(|unit| unit.direction == direction)
            })
    }

    /// Adds a step; links its exchanges, in order, to the connection's next units.
    pub fn push_step(
        &mut self,
        outcome: StepOutcome,
        caption: String,
        rfc: Option<String>,
        client: Option<SocketAddr>,
        frames: Range<usize>,
    ) {
        let conn = client.and_then(|c| self.connection_of(c));
        let mut units = Vec::with_capacity(outcome.exchanges.len());
        for exchange in &outcome.exchanges {
            let direction = match exchange.direction {
                Direction::ClientToServer => WireDirection::ClientToServer,
                Direction::ServerToClient => WireDirection::ServerToClient,
            };
            let unit = conn.and_then(|c| {
                let n = self.linked_count(c, direction);
                let unit = self.units_of(c, direction).nth(n)?;
                self.linked.insert((c, direction), n + 1);
                Some(unit)
            });
            units.push(unit);
        }
        self.events.extend(outcome.events.iter().cloned());
        self.steps.push(StepRecord {
            outcome,
            caption,
            rfc,
            client,
            frames,
            units,
        });
    }

    /// The unit of an exchange, if it was captured.
    pub fn unit(&self, step: usize, exchange: usize) -> Option<&Unit> {
        let index = (*self.steps.get(step)?.units.get(exchange)?)?;
        self.analyzer.units().get(index)
    }
}
