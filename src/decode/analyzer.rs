//! The incremental analyzer: push frames one at a time (from a file, or live from the
//! capture thread) and it keeps a summary of every frame, the TCP connections with their
//! relative sequence numbers and reassembled streams, and the protocol units cut from them,
//! each knowing the frames and byte ranges that carried it.
//!
//! Frame bytes are not kept: the caller keeps them if it wants to show them (the window
//! does; `mailwire open` does not). Units point into them by frame index and byte range.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;

use super::frame::{FrameSummary, IpSummary, TcpFlags, TcpSummary, summarize};
use super::stream::{SegmentNotes, Stream};
use super::tree::{FrameTree, LAYER_TCP, decode_captured_frame};
use super::units::{Detected, Dialog, Draft, ProtocolSource, UnitKind};
use crate::capture::file::{CaptureFile, FileError};
use crate::capture::{CapturedPacket, LinkType};
use crate::proto::Direction;
use crate::proto::Protocol;

/// A frame's place in a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the connection in [`Analyzer::connections`].
    pub conn: u32,
    pub direction: Direction,
    /// Sequence number relative to the sender's initial one (Wireshark's "relative").
    pub rel_seq: u32,
    /// Acknowledgment number relative to the peer's initial sequence number (0 without ACK).
    pub rel_ack: u32,
    /// The receive window the sender advertised, in bytes: the window field scaled by the
    /// shift its SYN announced (RFC 7323; SYNs themselves are never scaled). `None` when the
    /// scale is unknown because a SYN of the connection was not captured; Wireshark then
    /// shows the field unscaled, with scaling factor -1.
    pub window: Option<u32>,
    /// Retransmission, out of order, overlap...
    pub notes: SegmentNotes,
}

/// One frame as the analyzer keeps it: the summary, and its place in a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub summary: FrameSummary,
    /// `None` for frames that are not (decodable) TCP, or IP fragments.
    pub segment: Option<Segment>,
}

/// Bytes of a unit carried by one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carrier {
    /// Frame index (0-based; Wireshark's frame number is this plus one).
    pub frame: usize,
    /// The unit's bytes in that frame.
    pub range: Range<usize>,
}

/// One protocol unit: a command, a reply, message content, a TLS record...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Index of the connection in [`Analyzer::connections`].
    pub conn: usize,
    pub direction: Direction,
    pub kind: UnitKind,
    /// The first line, lossy UTF-8, without its line end, at most
    /// [`super::units::MAX_TEXT`] characters (`…` marks a cut). For TLS, a description.
    pub text: String,
    /// Offsets in the direction's byte stream (0 is the first byte after the SYN).
    pub stream: Range<u64>,
    /// The frames that carried it, in stream order.
    pub carriers: Vec<Carrier>,
    /// Lines: a multi-line POP3 reply counts its lines without the final "."; message
    /// content counts its lines without the final ".".
    pub lines: u32,
    /// A multi-line reply (POP3 +OK with data lines, SMTP `250-` continuation lines).
    pub multi_line: bool,
    /// For replies: the index (in [`Analyzer::units`]) of the command answered.
    pub reply_to: Option<usize>,
    /// Remarks: "unterminated", "no command was waiting", bytes not captured, ...
    pub notes: Vec<String>,
}

impl Unit {
    /// Frame indices carrying the unit, each once, ascending.
    pub fn frames(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.carriers.iter().map(|c| c.frame).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Length in stream bytes.
    pub fn len(&self) -> u64 {
        self.stream.end - self.stream.start
    }

    /// Whether the unit has no bytes.
    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }
}

/// The two ends of a TCP connection: what tells one connection from another. A client
/// address alone does not: Linux gives the same local port to two connections at once
/// when they go to different servers (the 4-tuple differs), so a checker's POP3 and SMTP
/// connections can share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ends {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// One TCP connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Its index (the same as tshark's `tcp.stream`, for the same file).
    pub index: usize,
    /// The side that sent the SYN (or, without a SYN, the higher / non-mail port).
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Its frames, in capture order.
    pub frames: Vec<u32>,
    /// Its units (indices in [`Analyzer::units`]), in the order they were cut.
    pub units: Vec<usize>,
    /// Client-to-server and server-to-client streams (index with [`Direction::index`]).
    pub streams: [Stream; 2],
    /// An RST was seen.
    pub reset: bool,
    dialog: Dialog,
}

impl Connection {
    /// Its client and server ends.
    pub fn ends(&self) -> Ends {
        Ends {
            client: self.client,
            server: self.server,
        }
    }

    fn new(index: usize, client: SocketAddr, server: SocketAddr) -> Self {
        Connection {
            index,
            client,
            server,
            frames: Vec::new(),
            units: Vec::new(),
            streams: [Stream::default(), Stream::default()],
            reset: false,
            dialog: Dialog::new(server.port()),
        }
    }

    /// POP3, SMTP, or neither (or not known yet).
    pub fn protocol(&self) -> Detected {
        self.dialog.protocol
    }

    /// The mail protocol, once known.
    pub fn mail_protocol(&self) -> Option<Protocol> {
        self.dialog.protocol.mail()
    }

    /// How the protocol was recognised.
    pub fn protocol_source(&self) -> ProtocolSource {
        self.dialog.source
    }

    /// One direction's stream.
    pub fn stream(&self, direction: Direction) -> &Stream {
        match direction {
            Direction::ClientToServer => &self.streams[0],
            Direction::ServerToClient => &self.streams[1],
        }
    }

    /// Whether both sides sent FIN, or an RST was seen.
    pub fn is_closed(&self) -> bool {
        self.reset || self.streams.iter().all(|s| s.fin_at.is_some())
    }
}

/// What one push added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The new frame's index.
    pub frame: usize,
    /// Units completed by this frame (indices in [`Analyzer::units`]).
    pub new_units: Range<usize>,
}

/// Frames in, summaries, connections and units out.
#[derive(Debug, Default, Clone)]
pub struct Analyzer {
    frames: Vec<Frame>,
    conns: Vec<Connection>,
    by_endpoints: HashMap<(SocketAddr, SocketAddr), usize>,
    units: Vec<Unit>,
}

/// Endpoints in a fixed order, so both directions find the same connection.
fn endpoint_key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Whether the sender of a segment is the client: a SYN without ACK says so, a SYN-ACK says
/// the opposite; otherwise the mail port is the server's, else the higher port is the
/// client's.
fn sender_is_client(tcp: &TcpSummary) -> bool {
    if tcp.flags.has(TcpFlags::SYN) {
        return !tcp.flags.has(TcpFlags::ACK);
    }
    let src_mail = Protocol::from_port(tcp.src_port).is_some();
    let dst_mail = Protocol::from_port(tcp.dst_port).is_some();
    match (src_mail, dst_mail) {
        (false, true) => true,
        (true, false) => false,
        _ => tcp.src_port >= tcp.dst_port,
    }
}

impl Analyzer {
    /// An empty analyzer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one captured packet.
    pub fn push(&mut self, packet: &CapturedPacket) -> Pushed {
        self.push_frame(
            packet.ts_micros,
            packet.link_type,
            &packet.data,
            packet.orig_len,
        )
    }

    /// Takes one frame given by parts (no copy of the bytes is kept).
    pub fn push_frame(
        &mut self,
        ts_micros: i64,
        link: LinkType,
        data: &[u8],
        orig_len: u32,
    ) -> Pushed {
        let index = self.frames.len();
        let first_unit = self.units.len();
        let summary = summarize(ts_micros, link, data, orig_len);
        let segment = match (&summary.ip, &summary.tcp) {
            (Some(ip), Some(tcp)) if !ip.fragment => Some(self.track(index, ip, tcp, data)),
            _ => None,
        };
        self.frames.push(Frame { summary, segment });
        Pushed {
            frame: index,
            new_units: first_unit..self.units.len(),
        }
    }

    /// The capture is over: hands on held bytes (skipping gaps), ends every stream and cuts
    /// the last units (unterminated ones get a note). Returns the units this added.
    pub fn finish(&mut self) -> Range<usize> {
        let first = self.units.len();
        for ci in 0..self.conns.len() {
            if let Some(conn) = self.conns.get_mut(ci) {
                let Connection {
                    streams, dialog, ..
                } = conn;
                let [c, s] = streams;
                c.close(&mut |ev| dialog.on_event(Direction::ClientToServer, ev));
                s.close(&mut |ev| dialog.on_event(Direction::ServerToClient, ev));
                dialog.finish();
            }
            self.collect_units(ci);
        }
        first..self.units.len()
    }

    /// Every frame pushed so far.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Every connection seen so far, in order of their first frame.
    pub fn connections(&self) -> &[Connection] {
        &self.conns
    }

    /// Every unit cut so far, in the order they were completed.
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    fn find_or_create(&mut self, ip: &IpSummary, tcp: &TcpSummary) -> usize {
        let src = SocketAddr::new(ip.src, tcp.src_port);
        let dst = SocketAddr::new(ip.dst, tcp.dst_port);
        let key = endpoint_key(src, dst);
        if let Some(&ci) = self.by_endpoints.get(&key)
            && !self.is_new_connection(ci, src, tcp)
        {
            return ci;
        }
        let ci = self.conns.len();
        let (client, server) = if sender_is_client(tcp) {
            (src, dst)
        } else {
            (dst, src)
        };
        self.conns.push(Connection::new(ci, client, server));
        self.by_endpoints.insert(key, ci);
        ci
    }

    /// A SYN (without ACK) on the endpoints of a closed connection, with a new initial
    /// sequence number, starts a new connection (port reuse).
    fn is_new_connection(&self, ci: usize, src: SocketAddr, tcp: &TcpSummary) -> bool {
        let opening_syn = tcp.flags.has(TcpFlags::SYN) && !tcp.flags.has(TcpFlags::ACK);
        if !opening_syn {
            return false;
        }
        let Some(conn) = self.conns.get(ci) else {
            return true;
        };
        let dir = if src == conn.client {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let same_isn = conn.stream(dir).syn_seen && conn.stream(dir).base_seq == Some(tcp.seq);
        conn.is_closed() && !same_isn
    }

    fn track(&mut self, index: usize, ip: &IpSummary, tcp: &TcpSummary, data: &[u8]) -> Segment {
        let ci = self.find_or_create(ip, tcp);
        let frame = u32::try_from(index).unwrap_or(u32::MAX);
        let start = tcp.payload_offset as usize;
        let payload = data
            .get(start..start.saturating_add(tcp.payload_len as usize))
            .unwrap_or_default();
        let mut segment = Segment {
            conn: u32::try_from(ci).unwrap_or(u32::MAX),
            direction: Direction::ClientToServer,
            rel_seq: 0,
            rel_ack: 0,
            window: None,
            notes: SegmentNotes::default(),
        };
        if let Some(conn) = self.conns.get_mut(ci) {
            let src = SocketAddr::new(ip.src, tcp.src_port);
            let dir = if src == conn.client {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            conn.frames.push(frame);
            let Connection {
                streams,
                dialog,
                reset,
                ..
            } = conn;
            let [c, s] = streams;
            let (this, other) = match dir {
                Direction::ClientToServer => (c, s),
                Direction::ServerToClient => (s, c),
            };
            let has_ack = tcp.flags.has(TcpFlags::ACK);
            if has_ack {
                // What the sender had received before it sent this: first.
                other.base_from_peer_ack(tcp.ack);
                segment.rel_ack = other.relative(tcp.ack);
                other.peer_acked(tcp.ack, &mut |ev| dialog.on_event(dir.reverse(), ev));
                if let Some(received) = other.acked_offset(tcp.ack) {
                    dialog.on_ack(dir, received);
                }
            }
            segment.notes = this.accept(
                frame,
                tcp.seq,
                tcp.flags,
                payload,
                tcp.payload_offset,
                tcp.payload_missing,
                &mut |ev| dialog.on_event(dir, ev),
            );
            segment.direction = dir;
            segment.rel_seq = this.relative(tcp.seq);
            if tcp.flags.has(TcpFlags::SYN) {
                this.window_shift = tcp.window_scale;
            }
            segment.window = scaled_window(tcp, this, other);
            if tcp.flags.has(TcpFlags::RST) {
                *reset = true;
                this.close(&mut |ev| dialog.on_event(dir, ev));
                other.close(&mut |ev| dialog.on_event(dir.reverse(), ev));
            }
        }
        self.collect_units(ci);
        segment
    }

    /// Moves the units the connection's cutter produced into the global list.
    fn collect_units(&mut self, ci: usize) {
        let Some(conn) = self.conns.get_mut(ci) else {
            return;
        };
        let drafts: Vec<Draft> = std::mem::take(&mut conn.dialog.drafts);
        for d in drafts {
            let global = self.units.len();
            let mut carriers: Vec<Carrier> = conn
                .stream(d.direction)
                .carriers(d.stream.clone())
                .into_iter()
                .map(|(frame, range)| Carrier { frame, range })
                .collect();
            // Kept for the whole capture: without the spare room the collected list had
            // (most units have one carrier, and a list starts with room for four).
            carriers.shrink_to_fit();
            let reply_to = d.reply_to.and_then(|l| conn.units.get(l as usize).copied());
            conn.units.push(global);
            self.units.push(Unit {
                conn: ci,
                direction: d.direction,
                kind: d.kind,
                text: d.text,
                stream: d.stream,
                carriers,
                lines: d.lines,
                multi_line: d.multi_line,
                reply_to,
                notes: d.notes,
            });
        }
    }

    /// The field tree of frame `index` (whose bytes are `data`), with the connection's
    /// view added: relative sequence and acknowledgment numbers, retransmissions.
    pub fn frame_tree(&self, index: usize, data: &[u8]) -> Option<FrameTree> {
        let frame = self.frames.get(index)?;
        let mut tree = decode_captured_frame(frame.summary.link, data, frame.summary.orig_len);
        if let Some(seg) = frame.segment {
            if let Some(f) = tree.find_mut("Sequence number") {
                f.note = Some(format!("relative sequence number {}", seg.rel_seq));
            }
            if let Some(f) = tree.find_mut("Acknowledgment number")
                && frame
                    .summary
                    .tcp
                    .is_some_and(|t| t.flags.has(TcpFlags::ACK))
            {
                f.note = Some(format!("relative acknowledgment number {}", seg.rel_ack));
            }
            if let Some(f) = tree.find_mut("Window") {
                f.note = Some(window_note(frame.summary.tcp, seg.window));
            }
            let notes = seg.notes.describe();
            if !notes.is_empty()
                && let Some(tcp) = tree.layers.iter_mut().find(|l| l.name == LAYER_TCP)
            {
                tcp.note = Some(notes.join("; "));
            }
        }
        Some(tree)
    }

    /// Rebuilds the bytes of one direction of connection `conn` from the frames that carried
    /// them; `frame_data` gives a frame's bytes by index. Gaps are left out.
    pub fn stream_bytes<'a>(
        &self,
        conn: usize,
        direction: Direction,
        frame_data: impl Fn(usize) -> Option<&'a [u8]>,
    ) -> Vec<u8> {
        let Some(c) = self.conns.get(conn) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for p in &c.stream(direction).pieces {
            let start = p.frame_offset as usize;
            let bytes = frame_data(p.frame as usize)
                .and_then(|d| d.get(start..start + p.len as usize))
                .unwrap_or_default();
            out.extend_from_slice(bytes);
        }
        out
    }
}

/// What the window field means once the connection's scaling is known.
fn window_note(tcp: Option<TcpSummary>, window: Option<u32>) -> String {
    let raw = tcp.map_or(0, |t| u32::from(t.window));
    match window {
        None => "window scaling unknown: a SYN of this connection was not captured".to_string(),
        Some(w) if tcp.is_some_and(|t| t.flags.has(TcpFlags::SYN)) && w == raw => {
            "never scaled in a SYN".to_string()
        }
        Some(w) if w == raw => format!("calculated window {w} bytes"),
        Some(w) => format!("calculated window {w} bytes ({raw} x {})", w / raw.max(1)),
    }
}

/// The window a segment advertises, scaled as RFC 7323 says: only when both SYNs carried
/// the window scale option, never in a SYN, with shift counts above 14 taken as 14.
fn scaled_window(tcp: &TcpSummary, sender: &Stream, peer: &Stream) -> Option<u32> {
    let raw = u32::from(tcp.window);
    if tcp.flags.has(TcpFlags::SYN) {
        return Some(raw);
    }
    if !(sender.syn_seen && peer.syn_seen) {
        return None;
    }
    match (sender.window_shift, peer.window_shift) {
        (Some(shift), Some(_)) => Some(raw << shift.min(14)),
        _ => Some(raw),
    }
}

/// Reads a capture file and analyzes every frame in it.
pub fn analyze(path: impl AsRef<Path>) -> Result<Analyzer, FileError> {
    let mut file = CaptureFile::open(path)?;
    let link = file.link_type();
    let mut analyzer = Analyzer::new();
    while let Some(f) = file.next_frame()? {
        analyzer.push_frame(f.ts_micros, link, f.data, f.orig_len);
    }
    analyzer.finish();
    Ok(analyzer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_frame_records_stay_small() {
        // A million frames must fit in well under the size of their capture file.
        let frame = std::mem::size_of::<Frame>();
        assert!(frame <= 128, "Frame is {frame} bytes");
        println!(
            "FrameSummary {} bytes, Frame {frame} bytes",
            std::mem::size_of::<FrameSummary>()
        );
    }
}
