//! Exports of a recorded [`Timeline`]: the captured packets as an annotated pcapng file that
//! Wireshark opens ([`pcapng`]), the session as a plain-text transcript with the frame
//! numbers that carried each line ([`transcript`]), a sequence diagram as standalone SVG
//! ([`svg`]), and worksheets, answer keys and lab reports as printable HTML ([`html`]).
//!
//! Nothing here invents facts: what a frame carried comes from the analyzer's units and
//! their carriers, linked to the steps' exchanges by the timeline. Text that came from the
//! network is made visible (control characters become their Unicode pictures) before it
//! goes into a comment, and is XML-escaped before it goes into SVG.

pub mod html;
pub mod lifelines;
pub mod pcapng;
pub mod svg;
pub mod transcript;

pub use pcapng::{ExportHints, write_pcapng};
pub use svg::{sequence_svg, write_svg};
pub use transcript::{transcript_text, write_transcript};

use std::fmt;
use std::path::PathBuf;

use crate::decode::analyzer::Frame;
use crate::decode::frame::TcpFlags;
use crate::proto::Direction;
use crate::timeline::Timeline;

/// Why an export could not be written.
#[derive(Debug)]
pub enum ExportError {
    /// The timeline holds no captured packets, so there is nothing to put in a capture file.
    NothingCaptured {
        path: PathBuf,
        /// The capture status, described ("not captured: ...").
        why: String,
    },
    /// A packet could not be encoded (a time before 1970, a link type pcapng cannot hold...).
    Packet {
        path: PathBuf,
        /// 1-based frame number.
        frame: usize,
        why: String,
    },
    /// The pcapng encoder refused a block.
    Encode { path: PathBuf, why: String },
    /// The file could not be written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::NothingCaptured { path, why } => write!(
                f,
                "cannot export {}: the run has no captured packets ({why})",
                path.display()
            ),
            ExportError::Packet { path, frame, why } => write!(
                f,
                "cannot export {}: frame {frame} cannot be written: {why}",
                path.display()
            ),
            ExportError::Encode { path, why } => {
                write!(
                    f,
                    "cannot export {}: the pcapng encoder says: {why}",
                    path.display()
                )
            }
            ExportError::Io { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Writes `contents` to `path`, naming the file in the error.
fn write_file(path: &std::path::Path, contents: &[u8]) -> Result<(), ExportError> {
    std::fs::write(path, contents).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `C:` or `S:`.
/// Text with control characters replaced by their Unicode control pictures (`␍`, `␊`...),
/// so bytes from the network can neither break a line nor hide.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
            '\u{7f}' => '\u{2421}',
            '\u{80}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// At most `max` characters, with `…` marking a cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// 1-based frame numbers, runs compressed: `frame 4`, `frames 5-7, 9`.
fn frame_list(frames: &[usize]) -> String {
    let (numbers, count) = frame_numbers(frames);
    let noun = if count == 1 { "frame" } else { "frames" };
    format!("{noun} {numbers}")
}

/// 1-based frame numbers (Wireshark's), each once, runs compressed: `4`, `8-9`, `4, 6-9`;
/// and how many frames that is.
pub fn frame_numbers(frames: &[usize]) -> (String, usize) {
    let mut sorted = frames.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while let Some(&start) = sorted.get(i) {
        let mut end = start;
        while sorted.get(i + 1) == Some(&(end + 1)) {
            end += 1;
            i += 1;
        }
        parts.push(if start == end {
            format!("{}", start + 1)
        } else {
            format!("{}-{}", start + 1, end + 1)
        });
        i += 1;
    }
    (parts.join(", "), sorted.len())
}

/// Frames (0-based, ascending) that carried exchange `exchange` of step `step`; empty when
/// it was not captured.
fn exchange_frames(timeline: &Timeline, step: usize, exchange: usize) -> Vec<usize> {
    timeline
        .unit(step, exchange)
        .map(|u| u.frames())
        .unwrap_or_default()
}

/// What a frame without protocol bytes did at the TCP level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Syn,
    SynAck,
    HandshakeAck,
    Fin,
    Rst,
    /// An acknowledgment (or window update) without data.
    Ack,
    /// Data that no unit claimed (a retransmission, bytes of an undecided protocol...).
    Data,
    /// Not a TCP segment mailwire follows.
    NotTcp,
}

/// The TCP role of frame `index` when it carries no command or reply.
fn control_of(timeline: &Timeline, index: usize, frame: &Frame) -> Control {
    let (Some(tcp), Some(seg)) = (frame.summary.tcp, frame.segment) else {
        return Control::NotTcp;
    };
    let flags = tcp.flags;
    if flags.has(TcpFlags::RST) {
        Control::Rst
    } else if flags.has(TcpFlags::SYN) {
        if flags.has(TcpFlags::ACK) {
            Control::SynAck
        } else {
            Control::Syn
        }
    } else if flags.has(TcpFlags::FIN) {
        Control::Fin
    } else if tcp.payload_len > 0 {
        Control::Data
    } else {
        let third = timeline
            .analyzer
            .connections()
            .get(seg.conn as usize)
            .and_then(|c| c.frames.get(2))
            .is_some_and(|&f| f as usize == index);
        if third && seg.direction == Direction::ClientToServer && seg.rel_ack == 1 {
            Control::HandshakeAck
        } else {
            Control::Ack
        }
    }
}

/// A sentence for a frame that carried no command or reply.
fn describe_control(timeline: &Timeline, index: usize) -> String {
    let Some(frame) = timeline.analyzer.frames().get(index) else {
        return "a frame the analyzer has not seen".to_string();
    };
    let control = control_of(timeline, index, frame);
    let Some(seg) = frame.segment else {
        return "not a TCP segment of a mail connection".to_string();
    };
    let protocol = timeline
        .analyzer
        .connections()
        .get(seg.conn as usize)
        .and_then(|c| c.mail_protocol())
        .map_or(String::new(), |p| format!("{p} "));
    let (from, to) = match seg.direction {
        Direction::ClientToServer => (format!("the {protocol}client"), "the server"),
        Direction::ServerToClient => (format!("the {protocol}server"), "the client"),
    };
    let payload = frame.summary.tcp.map_or(0, |t| t.payload_len);
    let mut text = match control {
        Control::Syn => format!("TCP handshake 1/3: SYN from {from} (opens the connection)"),
        Control::SynAck => format!("TCP handshake 2/3: SYN-ACK from {from}"),
        Control::HandshakeAck => format!("TCP handshake 3/3: ACK from {from}"),
        Control::Fin => format!("TCP close: FIN from {from} (it will send no more data)"),
        Control::Rst => format!("TCP reset: RST from {from} (the connection is aborted)"),
        Control::Ack => format!(
            "TCP: ACK from {from}, no data (acknowledges {to}'s bytes up to relative {}: {} is the next it expects, RFC 9293 section 3.4)",
            seg.rel_ack.saturating_sub(1),
            seg.rel_ack
        ),
        Control::Data => {
            format!("TCP: {payload} data bytes from {from}, not cut into a command or reply")
        }
        Control::NotTcp => "not a TCP segment of a mail connection".to_string(),
    };
    let notes = seg.notes.describe();
    if !notes.is_empty() {
        text.push_str(&format!(" ({})", notes.join("; ")));
    }
    text
}

/// The step (index in `timeline.steps`) whose frame range holds frame `index`.
fn step_of_frame(timeline: &Timeline, index: usize) -> Option<usize> {
    timeline
        .steps
        .iter()
        .position(|s| s.frames.contains(&index))
}

/// The step a frame belongs to: the step captured while it ran, if that step used the
/// frame's connection; else the latest step of that connection begun before the frame (a
/// late ACK or FIN); else the step by capture time.
fn owning_step(timeline: &Timeline, index: usize) -> Option<usize> {
    let by_range = step_of_frame(timeline, index);
    let ends = timeline
        .analyzer
        .frames()
        .get(index)
        .and_then(|f| f.segment)
        .and_then(|seg| timeline.analyzer.connections().get(seg.conn as usize))
        .map(|c| c.ends());
    if let Some(ends) = ends {
        let same_conn = |s: usize| timeline.steps.get(s).is_some_and(|r| r.ends == Some(ends));
        if by_range.is_some_and(same_conn) {
            return by_range;
        }
        if let Some(s) = timeline
            .steps
            .iter()
            .rposition(|r| r.ends == Some(ends) && r.frames.start <= index)
        {
            return Some(s);
        }
    }
    by_range.or_else(|| timeline.steps.iter().rposition(|r| r.frames.start <= index))
}

/// The frames that belong to each step (see [`owning_step`]), ascending.
fn frames_by_step(timeline: &Timeline) -> Vec<Vec<usize>> {
    let mut by_step = vec![Vec::new(); timeline.steps.len()];
    for index in 0..timeline.packets.len() {
        if let Some(list) = owning_step(timeline, index).and_then(|s| by_step.get_mut(s)) {
            list.push(index);
        }
    }
    by_step
}

/// What happened to a connection, as a note beside a step's exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectionEvent {
    /// SYN, SYN-ACK, ACK.
    Handshake,
    /// FINs; who sent one.
    Close { client: bool, server: bool },
    /// An RST.
    Reset,
}

/// A [`ConnectionEvent`] and the frames that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConnectionNote {
    event: ConnectionEvent,
    frames: Vec<usize>,
}

impl ConnectionNote {
    /// Whether only the server sent it (an arrow from the server).
    fn sent_by_server_only(&self) -> bool {
        matches!(
            self.event,
            ConnectionEvent::Close {
                client: false,
                server: true
            }
        )
    }

    /// The sentence shown: "TCP close: FIN from the client".
    fn text(&self) -> String {
        match self.event {
            ConnectionEvent::Handshake => "TCP handshake: SYN, SYN-ACK, ACK".to_string(),
            ConnectionEvent::Close { client, server } => {
                let who = match (client, server) {
                    (true, true) => "the client and the server",
                    (true, false) => "the client",
                    _ => "the server",
                };
                format!("TCP close: FIN from {who}")
            }
            ConnectionEvent::Reset => "TCP reset: RST".to_string(),
        }
    }
}

/// TCP set-up and tear-down among a step's frames (from [`frames_by_step`]), for the
/// transcript and the diagram: the notes before the exchanges, and those after.
fn connection_notes(
    timeline: &Timeline,
    frames: &[usize],
) -> (Vec<ConnectionNote>, Vec<ConnectionNote>) {
    let mut opened: Vec<usize> = Vec::new();
    let mut closed: Vec<usize> = Vec::new();
    let mut reset: Vec<usize> = Vec::new();
    let (mut client, mut server) = (false, false);
    for &index in frames {
        let Some(frame) = timeline.analyzer.frames().get(index) else {
            continue;
        };
        match control_of(timeline, index, frame) {
            Control::Syn | Control::SynAck | Control::HandshakeAck => opened.push(index),
            Control::Fin => {
                closed.push(index);
                match frame.segment.map(|seg| seg.direction) {
                    Some(Direction::ClientToServer) => client = true,
                    Some(Direction::ServerToClient) => server = true,
                    None => {}
                }
            }
            Control::Rst => reset.push(index),
            _ => {}
        }
    }
    let note = |event, frames: Vec<usize>| {
        (!frames.is_empty()).then_some(ConnectionNote { event, frames })
    };
    let opening = note(ConnectionEvent::Handshake, opened)
        .into_iter()
        .collect();
    let closing = [
        note(ConnectionEvent::Close { client, server }, closed),
        note(ConnectionEvent::Reset, reset),
    ]
    .into_iter()
    .flatten()
    .collect();
    (opening, closing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lists_compress_runs_and_count_from_one() {
        assert_eq!(frame_list(&[3]), "frame 4");
        assert_eq!(frame_list(&[4, 5, 6, 8, 4]), "frames 5-7, 9");
        assert_eq!(frame_list(&[0, 2]), "frames 1, 3");
    }

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(visible("a\r\nb\u{7f}"), "a\u{240d}\u{240a}b\u{2421}");
        assert_eq!(visible("MAIL FROM:<a@b>"), "MAIL FROM:<a@b>");
    }

    #[test]
    fn shortening_marks_the_cut() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
