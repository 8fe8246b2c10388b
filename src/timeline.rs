//! The timeline: the one model that the window and `mailwire run` read.
//!
//! It joins the two streams of facts: what the client and servers said (step outcomes and
//! server events) and what the capture saw (packets, decoded and reassembled by the
//! [`Analyzer`]). Each command or reply of a step is linked to the protocol unit that
//! carried it on the wire, and so to its frames and byte ranges. The link is by stream
//! offsets: the engine knows where in its connection's byte stream each exchange lies, and
//! the analyzer knows the same of each unit, so a unit the capture missed (or an extra one)
//! never shifts the links of the others. Nothing here is invented: without capture,
//! exchanges simply have no unit and [`CaptureStatus`] says why.

use std::ops::Range;

use crate::capture::packets::Packets;
use crate::capture::{CapturedPacket, LinkType};
pub use crate::decode::analyzer::Ends;
use crate::decode::analyzer::{Analyzer, Unit};
use crate::exchange::{Exchange, StepOutcome};
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
    /// The packets were read from a capture file.
    FromFile { path: std::path::PathBuf },
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
            CaptureStatus::InMemory | CaptureStatus::Unavailable { .. } => format!(
                "not captured: {}",
                self.why_not_captured().unwrap_or_default()
            ),
            CaptureStatus::Stopped { received, dropped } => format!(
                "capture stopped, {dropped} packets dropped (libpcap counted {received} \
                 received; on loopback it counts each packet twice, as sent and as received)"
            ),
            CaptureStatus::Failed { why } => format!("capture failed: {why}"),
            CaptureStatus::FromFile { path } => format!("read from {}", path.display()),
        }
    }

    /// Why there are no packets, when there are none: the reason alone, without
    /// "not captured:" (the caller words the sentence).
    pub fn why_not_captured(&self) -> Option<String> {
        match self {
            CaptureStatus::InMemory => {
                Some("this run has no network (the machines talk in memory)".to_string())
            }
            CaptureStatus::Unavailable { why } => Some(why.clone()),
            CaptureStatus::Failed { why } => Some(format!("capture failed: {why}")),
            CaptureStatus::NotStarted => Some("capture not started".to_string()),
            CaptureStatus::Live { .. }
            | CaptureStatus::Stopped { .. }
            | CaptureStatus::FromFile { .. } => None,
        }
    }

    /// Whether packets are (or were) really captured.
    pub fn is_capturing(&self) -> bool {
        matches!(
            self,
            CaptureStatus::Live { .. }
                | CaptureStatus::Stopped { .. }
                | CaptureStatus::FromFile { .. }
        )
    }
}

/// One change to a timeline. A recorder sends these to mirrors (the window's own copy of the
/// timeline); applying the same updates in the same order gives the same timeline.
// Updates pass through a channel one at a time; a step's is the largest and the rarest.
#[allow(clippy::large_enum_variant)]
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
        ends: Option<Ends>,
        frames: Range<usize>,
    },
    /// TLS secrets of the run's own sessions (added to [`Timeline::keylog`]).
    Secrets(crate::proto::keylog::KeyLog),
}

/// One step as the timeline keeps it.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub outcome: StepOutcome,
    pub caption: String,
    pub rfc: Option<String>,
    /// The ends of the step's TCP connection, on real sockets.
    pub ends: Option<Ends>,
    /// Frames (indices into [`Timeline::packets`]) captured while the step ran.
    pub frames: Range<usize>,
}

/// Everything a run has produced so far.
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    pub title: String,
    pub steps: Vec<StepRecord>,
    /// Every captured frame, in capture order (frame index = position), stored compactly
    /// (see [`Packets`]: each comes out as a [`CapturedPacket`]).
    pub packets: Packets,
    pub analyzer: Analyzer,
    pub capture: Option<CaptureStatus>,
    pub events: Vec<ServerEvent>,
    /// The secrets of mailwire's own TLS sessions in this run (or read with a capture):
    /// what an export embeds and the view decrypts with.
    pub keylog: crate::proto::keylog::KeyLog,
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
                ends,
                frames,
            } => self.push_step(outcome, caption, rfc, ends, frames),
            TimelineUpdate::Secrets(keys) => self.keylog.extend(&keys),
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

    /// Adds one packet read from a capture file: decoded from `data`, its bytes left in the
    /// file at `in_file` when the packets are backed by that file (see
    /// [`Packets::backed_by`]), else kept in memory.
    pub fn push_frame(
        &mut self,
        ts_micros: i64,
        link: LinkType,
        data: &[u8],
        orig_len: u32,
        in_file: Option<u64>,
    ) {
        self.analyzer.push_frame(ts_micros, link, data, orig_len);
        let left_in_file = in_file.is_some_and(|at| {
            self.packets
                .push_in_file(ts_micros, link, at, data.len(), orig_len)
        });
        if !left_in_file {
            self.packets.push_bytes(ts_micros, link, data, orig_len);
        }
    }

    /// The analyzer connection with these ends (the latest, should the same four numbers
    /// have been used twice).
    pub fn connection_of(&self, ends: Ends) -> Option<usize> {
        self.analyzer
            .connections()
            .iter()
            .rev()
            .find(|c| c.ends() == ends)
            .map(|c| c.index)
    }

    /// The unit (index into the analyzer's units) that carried `exchange` on the connection
    /// with `ends`: the unit of the exchange's direction whose stream range
    /// holds the exchange's first byte. `None` when it was not captured (yet).
    pub fn unit_of(&self, ends: Ends, exchange: &Exchange) -> Option<usize> {
        let at = exchange.stream.as_ref()?.start;
        let direction = exchange.direction();
        let conn = self.analyzer.connections().get(self.connection_of(ends)?)?;
        let units = self.analyzer.units();
        conn.units.iter().copied().find(|&u| {
            units
                .get(u)
                .is_some_and(|unit| unit.direction == direction && unit.stream.contains(&at))
        })
    }

    /// Whether every exchange of `outcome` that has a stream range was captured.
    pub fn all_captured(&self, ends: Ends, outcome: &StepOutcome) -> bool {
        outcome
            .exchanges
            .iter()
            .filter(|e| e.stream.is_some())
            .all(|e| self.unit_of(ends, e).is_some())
    }

    /// Adds a step.
    pub fn push_step(
        &mut self,
        outcome: StepOutcome,
        caption: String,
        rfc: Option<String>,
        ends: Option<Ends>,
        frames: Range<usize>,
    ) {
        self.events.extend(outcome.events.iter().cloned());
        self.steps.push(StepRecord {
            outcome,
            caption,
            rfc,
            ends,
            frames,
        });
    }

    /// The index (into the analyzer's units) of the unit that carried an exchange, if it
    /// was captured.
    pub fn unit_index(&self, step: usize, exchange: usize) -> Option<usize> {
        let record = self.steps.get(step)?;
        self.unit_of(record.ends?, record.outcome.exchanges.get(exchange)?)
    }

    /// The unit of an exchange, if it was captured.
    pub fn unit(&self, step: usize, exchange: usize) -> Option<&Unit> {
        self.analyzer.units().get(self.unit_index(step, exchange)?)
    }

    /// Every connection's TLS records, decrypted with [`Timeline::keylog`] where it holds
    /// the session's secrets, and the commands and replies found inside. Computed on each
    /// call (the window caches it): keys may arrive after the packets.
    pub fn tls_decryption(&self) -> crate::decode::tls_decrypt::TlsDecryption {
        crate::decode::tls_decrypt::decrypt_all(
            &self.analyzer,
            |f| self.packets.data(f),
            &self.keylog,
        )
    }

    /// [`Timeline::tls_decryption`] after more packets, same key log: connections with no
    /// new unit since `previous` are kept.
    pub fn tls_decryption_update(
        &self,
        previous: &crate::decode::tls_decrypt::TlsDecryption,
    ) -> crate::decode::tls_decrypt::TlsDecryption {
        previous.update(&self.analyzer, |f| self.packets.data(f), &self.keylog)
    }

    /// [`Timeline::tls_decryption`] of one analyzer connection.
    pub fn tls_connection(&self, conn: usize) -> crate::decode::tls_decrypt::TlsConnection {
        crate::decode::tls_decrypt::decrypt_connection(
            &self.analyzer,
            conn,
            &|f| self.packets.data(f),
            &self.keylog,
        )
    }
}
