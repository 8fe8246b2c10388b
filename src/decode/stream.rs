//! One direction of a TCP connection: relative sequence numbers (as Wireshark shows them)
//! and reassembly of the byte stream from segments that may arrive out of order,
//! retransmitted or overlapping. The first bytes to arrive for a stream offset win; later
//! copies are noted on their segment and ignored.
//!
//! The stream's bytes are handed on as they become contiguous ([`StreamEvent`]) and not kept:
//! what is kept is the map from stream offsets back to the frames that carried them
//! ([`StreamPiece`]), so any part of the stream can be shown from the frames.

use std::collections::BTreeMap;
use std::ops::Range;

use super::frame::TcpFlags;

/// Bytes of a stream carried by one frame: stream offsets
/// `stream_start..stream_start + len` are the frame's bytes `frame_offset..frame_offset + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPiece {
    pub stream_start: u64,
    pub len: u32,
    /// Frame index (0-based; Wireshark's frame number minus one).
    pub frame: u32,
    pub frame_offset: u32,
}

impl StreamPiece {
    /// The stream offsets this piece covers.
    pub fn stream_range(&self) -> Range<u64> {
        self.stream_start..self.stream_start + u64::from(self.len)
    }
}

/// What happened to a segment's bytes, as bit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentNotes(pub u8);

impl SegmentNotes {
    /// Every byte had been received before: a retransmission.
    pub const RETRANSMISSION: u8 = 1;
    /// Some bytes had been received before (the new copies are ignored).
    pub const PARTIAL_RETRANSMISSION: u8 = 2;
    /// The segment arrived before earlier stream bytes: held until the gap fills.
    pub const OUT_OF_ORDER: u8 = 4;
    /// It overlaps bytes already held out of order (the first copy wins).
    pub const OVERLAP: u8 = 8;
    /// Some of its bytes lie before the start of the stream as mailwire saw it.
    pub const BEFORE_START: u8 = 16;
    /// A SYN seen again.
    pub const SYN_RETRANSMISSION: u8 = 32;
    /// The capture kept only part of the payload (snapshot length).
    pub const CUT_SHORT: u8 = 64;

    /// Whether the flag is set.
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// The notes in words, e.g. `["retransmission"]`.
    pub fn describe(self) -> Vec<&'static str> {
        [
            (Self::RETRANSMISSION, "retransmission"),
            (
                Self::PARTIAL_RETRANSMISSION,
                "partly retransmitted (bytes already seen are ignored)",
            ),
            (
                Self::OUT_OF_ORDER,
                "out of order (held until the gap before it fills)",
            ),
            (
                Self::OVERLAP,
                "overlaps bytes already held (the first copy wins)",
            ),
            (Self::BEFORE_START, "bytes before the stream start"),
            (Self::SYN_RETRANSMISSION, "SYN retransmission"),
            (
                Self::CUT_SHORT,
                "payload cut short by the capture's snapshot length",
            ),
        ]
        .into_iter()
        .filter(|(bit, _)| self.has(*bit))
        .map(|(_, text)| text)
        .collect()
    }
}

/// What a stream hands on, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// Contiguous bytes starting at `offset`.
    Data { offset: u64, bytes: &'a [u8] },
    /// Bytes that were never captured: the stream skips them.
    Gap { offset: u64, len: u64 },
    /// The sender closed (FIN reached) or the connection ended.
    End,
}

/// A segment held until the bytes before it arrive.
#[derive(Debug, Clone)]
struct Held {
    frame: u32,
    frame_offset: u32,
    bytes: Vec<u8>,
}

/// How many out-of-order bytes a stream holds before it gives up on the gap before them.
const MAX_HELD_BYTES: usize = 8 << 20;

/// One direction of a connection.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// The sequence number that relative numbers count from (the ISN; or, when the SYN was
    /// not captured, one less than the first sequence number seen, as Wireshark does).
    pub base_seq: Option<u32>,
    /// Whether this direction's SYN was seen.
    pub syn_seen: bool,
    /// The window scale shift count this direction's SYN announced (RFC 7323); `None`
    /// without the option or without the SYN.
    pub window_shift: Option<u8>,
    /// Stream offset of the FIN, once seen.
    pub fin_at: Option<u64>,
    /// Which frames carried which stream bytes, in stream order, without overlaps.
    pub pieces: Vec<StreamPiece>,
    /// Stream bytes never captured (skipped when later bytes were acknowledged or at the end).
    pub gaps: Vec<Range<u64>>,
    next: u64,
    /// Stream bytes known to have been sent but cut from their frames by the capture.
    not_captured: Vec<Range<u64>>,
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
    ended: bool,
}

impl Stream {
    /// Bytes handed on so far (the next stream offset expected).
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Whether the End event was handed on.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The relative sequence number of `seq` (0 for the SYN).
    pub fn relative(&self, seq: u32) -> u32 {
        seq.wrapping_sub(self.base_seq.unwrap_or(seq))
    }

    /// Sets the base from the peer's acknowledgment number, if no segment of this direction
    /// has set it yet.
    pub fn base_from_peer_ack(&mut self, ack: u32) {
        if self.base_seq.is_none() {
            self.base_seq = Some(ack.wrapping_sub(1));
        }
    }

    /// The frames that carried stream bytes `range`, with the bytes' range in each frame.
    pub fn carriers(&self, range: Range<u64>) -> Vec<(usize, Range<usize>)> {
        let first = self
            .pieces
            .partition_point(|p| p.stream_range().end <= range.start);
        let mut out = Vec::new();
        for p in self.pieces.iter().skip(first) {
            let pr = p.stream_range();
            if pr.start >= range.end {
                break;
            }
            let from = range.start.max(pr.start) - pr.start;
            let to = range.end.min(pr.end) - pr.start;
            let base = p.frame_offset as usize;
            // Offsets inside one frame fit in usize.
            out.push((p.frame as usize, base + from as usize..base + to as usize));
        }
        out
    }

    /// How many of this stream's bytes the peer had received when it sent acknowledgment
    /// number `ack` (a stream offset); `None` before the base is known or for an `ack`
    /// before the stream's start.
    pub fn acked_offset(&self, ack: u32) -> Option<u64> {
        self.base_seq?;
        u64::try_from(self.offset_of(ack)).ok()
    }

    /// The stream offset of sequence number `seq`, unwrapped near the next expected byte.
    /// Negative: before the stream's start.
    fn offset_of(&self, seq: u32) -> i64 {
        let base = self.base_seq.unwrap_or(seq.wrapping_sub(1));
        let rel = seq.wrapping_sub(base).wrapping_sub(1);
        let delta = rel.wrapping_sub(self.next as u32) as i32;
        self.next as i64 + i64::from(delta)
    }

    /// Takes one segment of this direction. `payload` is the TCP payload as captured, found
    /// at `payload_offset` in frame `frame`; `not_captured` more payload bytes followed it on
    /// the wire but were cut by the capture (they become a gap). Contiguous bytes go to
    /// `sink`.
    #[allow(
        clippy::too_many_arguments,
        reason = "one segment's parts, as the analyzer has them"
    )]
    pub fn accept(
        &mut self,
        frame: u32,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        payload_offset: u32,
        not_captured: u32,
        sink: &mut dyn FnMut(StreamEvent<'_>),
    ) -> SegmentNotes {
        let mut notes = SegmentNotes::default();
        let syn = flags.has(TcpFlags::SYN);
        if syn {
            if self.syn_seen && self.base_seq == Some(seq) {
                notes.0 |= SegmentNotes::SYN_RETRANSMISSION;
            }
            if !self.syn_seen && self.next == 0 && self.held.is_empty() {
                self.base_seq = Some(seq);
            }
            self.syn_seen = true;
        } else if self.base_seq.is_none() {
            self.base_seq = Some(seq.wrapping_sub(1));
        }
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        let mut start = self.offset_of(data_seq);
        let mut bytes = payload;
        let mut offset_in_frame = payload_offset;
        if start < 0 {
            let skip = usize::try_from(start.unsigned_abs()).unwrap_or(usize::MAX);
            notes.0 |= SegmentNotes::BEFORE_START;
            bytes = bytes.get(skip..).unwrap_or_default();
            offset_in_frame =
                offset_in_frame.saturating_add(u32::try_from(skip).unwrap_or(u32::MAX));
            start = 0;
        }
        let start = start as u64;
        let captured_end = start + bytes.len() as u64;
        let sent_end = captured_end + u64::from(not_captured);
        if flags.has(TcpFlags::FIN) && self.fin_at.is_none() {
            self.fin_at = Some(sent_end);
        }
        if not_captured > 0 {
            notes.0 |= SegmentNotes::CUT_SHORT;
            if sent_end > self.next {
                self.not_captured
                    .push(captured_end.max(self.next)..sent_end);
            }
        }
        if !bytes.is_empty() {
            self.take_bytes(frame, start, bytes, offset_in_frame, &mut notes, sink);
        }
        self.drain(sink);
        self.check_end(sink);
        notes
    }

    fn take_bytes(
        &mut self,
        frame: u32,
        start: u64,
        bytes: &[u8],
        offset_in_frame: u32,
        notes: &mut SegmentNotes,
        sink: &mut dyn FnMut(StreamEvent<'_>),
    ) {
        let end = start + bytes.len() as u64;
        if end <= self.next {
            notes.0 |= SegmentNotes::RETRANSMISSION;
            return;
        }
        let (start, bytes, offset_in_frame) = if start < self.next {
            notes.0 |= SegmentNotes::PARTIAL_RETRANSMISSION;
            let skip = (self.next - start) as usize;
            (
                self.next,
                bytes.get(skip..).unwrap_or_default(),
                offset_in_frame + skip as u32,
            )
        } else {
            (start, bytes, offset_in_frame)
        };
        if start == self.next {
            self.deliver(frame, offset_in_frame, bytes, sink);
            self.drain(sink);
        } else {
            notes.0 |= SegmentNotes::OUT_OF_ORDER;
            if self.hold(frame, start, bytes, offset_in_frame) {
                notes.0 |= SegmentNotes::OVERLAP;
            }
            if self.held_bytes > MAX_HELD_BYTES {
                self.skip_gap(sink);
            }
        }
    }

    /// Hands on bytes at `self.next`.
    fn deliver(
        &mut self,
        frame: u32,
        frame_offset: u32,
        bytes: &[u8],
        sink: &mut dyn FnMut(StreamEvent<'_>),
    ) {
        if bytes.is_empty() {
            return;
        }
        self.pieces.push(StreamPiece {
            stream_start: self.next,
            len: bytes.len() as u32,
            frame,
            frame_offset,
        });
        sink(StreamEvent::Data {
            offset: self.next,
            bytes,
        });
        self.next += bytes.len() as u64;
    }

    /// Keeps the parts of an out-of-order segment not already held. Returns whether it
    /// overlapped held bytes.
    fn hold(&mut self, frame: u32, start: u64, bytes: &[u8], frame_offset: u32) -> bool {
        let end = start + bytes.len() as u64;
        let mut cursor = start;
        if let Some((s, h)) = self.held.range(..start).next_back() {
            cursor = cursor.max(s + h.bytes.len() as u64);
        }
        let mut overlapped = cursor > start;
        let inside: Vec<(u64, u64)> = self
            .held
            .range(start..end)
            .map(|(s, h)| (*s, s + h.bytes.len() as u64))
            .collect();
        let mut new_parts = Vec::new();
        for (s, e) in inside {
            overlapped = true;
            if s > cursor {
                new_parts.push(cursor..s);
            }
            cursor = cursor.max(e);
        }
        if cursor < end {
            new_parts.push(cursor..end);
        }
        for part in new_parts {
            let from = (part.start - start) as usize;
            let to = (part.end - start) as usize;
            let piece = bytes.get(from..to).unwrap_or_default().to_vec();
            self.held_bytes += piece.len();
            self.held.insert(
                part.start,
                Held {
                    frame,
                    frame_offset: frame_offset + from as u32,
                    bytes: piece,
                },
            );
        }
        overlapped
    }

    /// Hands on held segments that became contiguous, and skips bytes known not to have
    /// been captured once the stream reaches them.
    fn drain(&mut self, sink: &mut dyn FnMut(StreamEvent<'_>)) {
        loop {
            while let Some(entry) = self.held.first_entry() {
                if *entry.key() > self.next {
                    break;
                }
                let start = *entry.key();
                let h = entry.remove();
                self.held_bytes -= h.bytes.len();
                let end = start + h.bytes.len() as u64;
                if end <= self.next {
                    continue;
                }
                let skip = (self.next - start) as usize;
                let bytes = h.bytes.get(skip..).unwrap_or_default();
                self.deliver(h.frame, h.frame_offset + skip as u32, bytes, sink);
            }
            let next = self.next;
            let Some(at) = self
                .not_captured
                .iter()
                .position(|r| r.start <= next && r.end > next)
            else {
                break;
            };
            let missing = self.not_captured.swap_remove(at);
            self.gaps.push(next..missing.end);
            sink(StreamEvent::Gap {
                offset: next,
                len: missing.end - next,
            });
            self.next = missing.end;
        }
        let next = self.next;
        self.not_captured.retain(|r| r.end > next);
    }

    /// Gives up on the bytes missing before the first held segment.
    fn skip_gap(&mut self, sink: &mut dyn FnMut(StreamEvent<'_>)) {
        let Some(&first) = self.held.keys().next() else {
            return;
        };
        if first > self.next {
            let len = first - self.next;
            self.gaps.push(self.next..first);
            sink(StreamEvent::Gap {
                offset: self.next,
                len,
            });
            self.next = first;
        }
        self.drain(sink);
    }

    /// The peer acknowledged `ack`: if that covers held bytes, the gap before them was
    /// received by the peer but never captured, so skip it.
    pub fn peer_acked(&mut self, ack: u32, sink: &mut dyn FnMut(StreamEvent<'_>)) {
        if self.held.is_empty() || self.base_seq.is_none() {
            return;
        }
        let acked = self.offset_of(ack);
        while let Some(&first) = self.held.keys().next() {
            if acked <= 0 || first as i64 >= acked {
                break;
            }
            self.skip_gap(sink);
        }
        self.check_end(sink);
    }

    fn check_end(&mut self, sink: &mut dyn FnMut(StreamEvent<'_>)) {
        if !self.ended && self.fin_at.is_some_and(|f| self.next >= f) {
            self.ended = true;
            sink(StreamEvent::End);
        }
    }

    /// The connection is over (RST, or the end of the capture): hand on everything held,
    /// skipping gaps, then End.
    pub fn close(&mut self, sink: &mut dyn FnMut(StreamEvent<'_>)) {
        while !self.held.is_empty() {
            self.skip_gap(sink);
        }
        if !self.ended {
            self.ended = true;
            sink(StreamEvent::End);
        }
    }
}
