//! One connection's cutter ([`Dialog`]): takes both directions' stream events in capture
//! order, hands each side's bytes to the reader of its current mode (lines, held, BDAT
//! chunk, TLS records), keeps the queue of commands waiting for their replies and pairs
//! replies with them in order, handles capture gaps and the end of each stream, and hands
//! the units it cut to the analyzer as [`Draft`]s.

use std::collections::VecDeque;

use super::line::{Building, Line, Mode, OpenUnit, Side};
use super::smtp::smtp_code;
use super::{Detected, Draft, ProtocolSource, UnitKind};
use crate::decode::stream::StreamEvent;
use crate::proto::Direction;
use crate::proto::Protocol;

/// What a command waiting for its reply expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// A single-line reply.
    Single,
    /// POP3: a multi-line reply if it is `+OK`.
    MultiIfPositive,
    /// STLS / STARTTLS: TLS follows a positive reply.
    StartTls,
    /// AUTH or a SASL line: a continuation (`+ `, 334) keeps the exchange going.
    Auth,
    /// SMTP DATA: 354 means message content follows.
    Data,
}

/// A client unit waiting for its reply.
#[derive(Debug, Clone, Copy)]
pub(super) struct Waiting {
    /// Its local index.
    pub(super) local: u32,
    pub(super) expect: Expect,
    /// Server stream bytes the client had received (acknowledged) when it sent this.
    pub(super) seen: u64,
}

/// The cutter of one connection: both sides, the commands waiting for replies.
#[derive(Debug, Clone)]
pub(crate) struct Dialog {
    pub protocol: Detected,
    pub source: ProtocolSource,
    pub(super) client: Side,
    pub(super) server: Side,
    pub(super) waiting: VecDeque<Waiting>,
    pub(super) greeted: bool,
    pub(super) auth: bool,
    /// Server stream bytes the client has acknowledged so far.
    client_seen: u64,
    /// Where the first server-side capture gap since the last paired reply began: until a
    /// reply is paired again, replies may have been lost in it.
    pub(super) server_gap: Option<u64>,
    next_local: u32,
    /// Units cut and not yet taken by the analyzer.
    pub drafts: Vec<Draft>,
}

/// Index of the client side (as [`Direction::index`]).
pub(super) const CLIENT: usize = 0;
/// Index of the server side.
pub(super) const SERVER: usize = 1;

fn dir_of(side: usize) -> Direction {
    if side == CLIENT {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    }
}

impl Dialog {
    /// A dialog for a connection to `server_port`.
    pub fn new(server_port: u16) -> Self {
        let (protocol, source) = match Protocol::from_port(server_port) {
            Some(p) => (Detected::Mail(p), ProtocolSource::Port),
            None => (Detected::Undecided, ProtocolSource::None),
        };
        Dialog {
            protocol,
            source,
            client: Side::new(),
            server: Side::new(),
            waiting: VecDeque::new(),
            greeted: false,
            auth: false,
            client_seen: 0,
            server_gap: None,
            next_local: 0,
            drafts: Vec::new(),
        }
    }

    /// Side `d` ([`CLIENT`] or [`SERVER`]).
    pub(super) fn side(&mut self, d: usize) -> &mut Side {
        if d == CLIENT {
            &mut self.client
        } else {
            &mut self.server
        }
    }

    /// Side `d`, to read.
    pub(super) fn side_ref(&self, d: usize) -> &Side {
        if d == CLIENT {
            &self.client
        } else {
            &self.server
        }
    }

    /// Takes one event of direction `dir`'s stream.
    pub fn on_event(&mut self, dir: Direction, event: StreamEvent<'_>) {
        let d = dir.index();
        match self.protocol {
            Detected::Other => {}
            Detected::Undecided => {
                self.hold(d, event);
                self.try_decide(false);
            }
            Detected::Mail(_) => match event {
                StreamEvent::Data { offset, bytes } => self.feed(d, offset, bytes),
                StreamEvent::Gap { offset, len } => self.gap(d, offset, len),
                StreamEvent::End => self.end(d),
            },
        }
    }

    /// The sender of a segment going `dir` had received `received` bytes of the other
    /// direction's stream (its acknowledgment number as a stream offset).
    pub fn on_ack(&mut self, dir: Direction, received: u64) {
        if dir == Direction::ClientToServer {
            self.client_seen = self.client_seen.max(received);
        }
    }

    /// The capture is over: decide what is undecided, cut what is left.
    pub fn finish(&mut self) {
        if self.protocol == Detected::Undecided {
            self.try_decide(true);
        }
        if matches!(self.protocol, Detected::Mail(_)) {
            if self.client.mode == Mode::Blocked {
                self.force_unblock();
            }
            self.finish_side(SERVER);
            self.finish_side(CLIENT);
        }
    }

    // ----- bytes in -----

    /// Cuts side `d`'s bytes at stream offset `offset`.
    pub(super) fn feed(&mut self, d: usize, offset: u64, bytes: &[u8]) {
        let mut pos = 0usize;
        let mut idle_rounds = 0;
        while pos < bytes.len() {
            let rest = bytes.get(pos..).unwrap_or_default();
            let at = offset + pos as u64;
            let was_blocked = self.side(d).mode == Mode::Blocked;
            let used = match self.side(d).mode {
                Mode::Blocked => self.hold_blocked(d, at, rest),
                Mode::Lines => self.feed_lines(d, at, rest),
                Mode::Chunk { remaining } => self.feed_chunk(d, at, rest, remaining),
                Mode::Tls { .. } => self.feed_tls(d, at, rest),
                Mode::Opaque => rest.len(),
            };
            if !was_blocked {
                self.side(d).consumed = self.side(d).consumed.max(at + used as u64);
            }
            // A mode switch uses no bytes; two in a row would be a bug, not a reason to spin.
            idle_rounds = if used == 0 { idle_rounds + 1 } else { 0 };
            if idle_rounds > 2 {
                break;
            }
            pos += used;
        }
    }

    /// Bytes `offset..offset + len` of side `d` were never captured.
    pub(super) fn gap(&mut self, d: usize, offset: u64, len: u64) {
        let side = self.side(d);
        let note = format!("incomplete: {len} bytes at stream offset {offset} were not captured");
        match side.mode {
            Mode::Blocked => self.hold(d, StreamEvent::Gap { offset, len }),
            Mode::Lines => {
                if let Some(u) = side.unit.as_mut() {
                    u.notes.push(note);
                }
                let cut_line = side.line_len > 0;
                if cut_line {
                    let mut line = side.take_line(false);
                    line.cut_by_gap = true;
                    self.on_line(d, line);
                }
                let side = self.side(d);
                side.line_start = offset + len;
                side.consumed = offset + len;
                side.line_gap = side.unit.is_none();
                side.line_after_gap = true;
                side.line_tail = cut_line;
                if d == SERVER {
                    self.server_gap = Some(self.server_gap.map_or(offset, |g| g.min(offset)));
                }
            }
            Mode::Chunk { remaining } => {
                if let Some(u) = side.unit.as_mut() {
                    u.notes.push(note);
                }
                if len >= remaining {
                    side.mode = Mode::Lines;
                    side.consumed = offset + len;
                    self.close_unit(d, offset + remaining, None);
                } else {
                    side.mode = Mode::Chunk {
                        remaining: remaining - len,
                    };
                }
            }
            Mode::Tls { .. } | Mode::Opaque => {
                // Record boundaries are lost: the rest is one undecoded unit.
                if let Some(u) = side.unit.as_mut() {
                    u.notes.push(note);
                    u.kind = UnitKind::Undecoded;
                    u.building = Building::Opaque;
                } else {
                    self.open_unit(
                        d,
                        offset,
                        UnitKind::Undecoded,
                        Building::Opaque,
                        "bytes after a capture gap (not decoded)".into(),
                        0,
                    );
                }
                self.side(d).mode = Mode::Opaque;
            }
        }
    }

    pub(super) fn end(&mut self, d: usize) {
        self.side(d).eof = true;
        if self.side(d).mode == Mode::Blocked {
            return;
        }
        self.finish_side(d);
        if d == SERVER && self.client.mode == Mode::Blocked {
            self.force_unblock();
        }
    }

    /// Cuts the last partial line and closes any open unit as unterminated.
    pub(super) fn finish_side(&mut self, d: usize) {
        if self.side(d).finished || self.side(d).mode == Mode::Blocked {
            return;
        }
        self.side(d).finished = true;
        if self.side(d).mode == Mode::Lines && self.side(d).line_len > 0 {
            let line = self.side(d).take_line(false);
            self.on_line(d, line);
        }
        let consumed = self.side_ref(d).consumed;
        let Some(u) = &self.side_ref(d).unit else {
            return;
        };
        let end = consumed.max(u.start);
        let note = match u.building {
            Building::Pop3Multi => "unterminated: the stream ended before the \".\" line",
            Building::SmtpReply => "unterminated: the stream ended inside a multi-line reply",
            Building::Content => "unterminated: the stream ended before CRLF.CRLF",
            Building::Chunk => "unterminated: the stream ended inside the BDAT chunk",
            Building::Tls => "unterminated: the stream ended inside the TLS record",
            Building::Opaque => "",
        };
        let note = (!note.is_empty()).then(|| note.to_string());
        match (d, u.building) {
            (SERVER, Building::Pop3Multi) => {
                let id = self.close_unit(d, end, note);
                self.pair_front(id);
            }
            (SERVER, Building::SmtpReply) => {
                let code = smtp_code(u.text.as_bytes()).unwrap_or(0);
                self.finish_smtp_reply(end, code, note);
            }
            (CLIENT, Building::Content) => {
                if let Some(local) = self.close_unit(d, end, note) {
                    self.wait_for_reply(local, Expect::Single);
                }
            }
            _ => {
                self.close_unit(d, end, note);
            }
        }
    }

    // ----- units out -----

    /// Adds a unit to the drafts; returns its local index.
    fn push_draft(&mut self, mut draft: Draft) -> u32 {
        let local = self.next_local;
        self.next_local += 1;
        draft.local = local;
        self.drafts.push(draft);
        local
    }

    /// Emits a one-line unit.
    pub(super) fn emit(
        &mut self,
        d: usize,
        kind: UnitKind,
        line: &Line,
        reply_to: Option<u32>,
        notes: Vec<String>,
    ) -> u32 {
        self.push_draft(Draft {
            local: 0,
            direction: dir_of(d),
            kind,
            text: line.text(),
            stream: line.start..line.end,
            lines: 1,
            multi_line: false,
            reply_to,
            notes,
        })
    }

    /// Starts a unit of side `d` at stream offset `start`, whose end is not seen yet.
    pub(super) fn open_unit(
        &mut self,
        d: usize,
        start: u64,
        kind: UnitKind,
        building: Building,
        text: String,
        lines: u32,
    ) {
        self.side(d).unit = Some(OpenUnit {
            kind,
            building,
            start,
            text,
            lines,
            notes: Vec::new(),
            reply_to: None,
        });
    }

    /// Starts a server reply whose first line is `line` and whose end is not seen yet.
    pub(super) fn open_reply(
        &mut self,
        line: &Line,
        building: Building,
        notes: Vec<String>,
        reply_to: Option<u32>,
    ) {
        self.open_unit(
            SERVER,
            line.start,
            UnitKind::Reply,
            building,
            line.text(),
            1,
        );
        if let Some(u) = self.server.unit.as_mut() {
            u.notes = notes;
            u.reply_to = reply_to;
        }
    }

    /// Closes the open unit of side `d` at stream offset `end`; returns its local index.
    pub(super) fn close_unit(&mut self, d: usize, end: u64, note: Option<String>) -> Option<u32> {
        let mut u = self.side(d).unit.take()?;
        if let Some(n) = note {
            u.notes.push(n);
        }
        let multi = matches!(u.building, Building::Pop3Multi | Building::SmtpReply);
        let multi = multi && (u.building == Building::Pop3Multi || u.lines > 1);
        Some(self.push_draft(Draft {
            local: 0,
            direction: dir_of(d),
            kind: u.kind,
            text: u.text,
            stream: u.start..end.max(u.start),
            lines: u.lines,
            multi_line: multi,
            reply_to: u.reply_to,
            notes: u.notes,
        }))
    }

    /// Hands a line of side `d` to its protocol's reader.
    pub(super) fn on_line(&mut self, d: usize, line: Line) {
        let crlf = line.crlf;
        let head = match (d, self.protocol) {
            (CLIENT, Detected::Mail(Protocol::Pop3)) => self.pop3_client_line(line),
            (CLIENT, _) => self.smtp_client_line(line),
            (_, Detected::Mail(Protocol::Pop3)) => self.pop3_server_line(line),
            (_, _) => self.smtp_server_line(line),
        };
        let side = self.side(d);
        side.prev_line_crlf = crlf;
        if let Some(h) = head {
            side.reuse(h);
        }
    }

    /// Records that the open unit just closed (`id`) answers the front command.
    pub(super) fn pair_front(&mut self, id: Option<u32>) {
        let front = self.waiting.pop_front();
        if let (Some(id), Some(front)) = (id, front)
            && let Some(d) = self.drafts.iter_mut().rev().find(|d| d.local == id)
        {
            d.reply_to = Some(front.local);
            self.server_gap = None;
        }
    }

    /// Client unit `local` waits for its reply.
    pub(super) fn wait_for_reply(&mut self, local: u32, expect: Expect) {
        self.waiting.push_back(Waiting {
            local,
            expect,
            seen: self.client_seen,
        });
    }

    /// The front command, which the server reply being cut answers (the caller pairs
    /// them); `None` when no command waits.
    pub(super) fn take_front(&mut self) -> Option<Waiting> {
        let front = self.waiting.pop_front();
        if front.is_some() {
            self.server_gap = None;
        }
        front
    }

    /// A server reply line starts at stream offset `start` after a capture gap: settles
    /// which command it can answer, so that no command is paired with a reply across the
    /// gap. The front command's reply was lost in the gap when the next command was sent
    /// after the client had received bytes of the gap (a client sends its next command once
    /// the reply it waits for is complete; pipelined commands are sent together, having
    /// received the same bytes): an open reply to it is then closed as incomplete (its end
    /// was not captured), and a command with no reply cut yet is left unanswered.
    pub(super) fn settle_after_gap(&mut self, start: u64) {
        let Some(gap) = self.server_gap else {
            return;
        };
        while let (Some(front), Some(next)) = (self.waiting.front(), self.waiting.get(1)) {
            let lost = gap < next.seen && next.seen <= start && next.seen > front.seen;
            if !lost {
                break;
            }
            match self.server.unit.as_ref().map(|u| u.building) {
                Some(Building::Pop3Multi) => {
                    let id = self.close_unit(
                        SERVER,
                        start,
                        Some("incomplete: its end was not captured".into()),
                    );
                    self.pair_front(id);
                }
                Some(Building::SmtpReply) => {
                    let code = self
                        .server
                        .unit
                        .as_ref()
                        .and_then(|u| smtp_code(u.text.as_bytes()))
                        .unwrap_or(0);
                    self.finish_smtp_reply(
                        start,
                        code,
                        Some("incomplete: its end was not captured".into()),
                    );
                }
                _ => {
                    self.waiting.pop_front();
                }
            }
            self.server_gap = Some(gap);
        }
    }

    /// Side effects of a reply on what the client's next bytes are.
    pub(super) fn after_reply(&mut self, expect: Expect, positive: bool, continuation: bool) {
        match expect {
            Expect::StartTls if positive => {
                self.server.mode = Mode::TLS_START;
                self.start_client_tls();
            }
            Expect::StartTls => self.unblock(Mode::Lines),
            Expect::Auth => self.auth = continuation,
            // Only if the client still waits (it may have been read on without the answer).
            Expect::Data if positive && self.client.mode == Mode::Blocked => {
                self.open_content();
                self.unblock(Mode::Lines);
            }
            Expect::Data => self.unblock(Mode::Lines),
            Expect::Single | Expect::MultiIfPositive => {}
        }
    }
}
