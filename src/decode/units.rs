//! Cutting a connection's two reassembled byte streams into protocol units: POP3 and SMTP
//! commands, single- and multi-line replies, SMTP message content (DATA and BDAT), SASL
//! exchange lines and TLS records after STLS/STARTTLS. Replies are paired with the commands
//! they answer, in order (RFC 2920 pipelining: replies come in the order of the commands).
//!
//! The cutter sees the two directions in capture order and needs both: whether a POP3 `+OK`
//! starts a multi-line reply depends on the command it answers, and whether the bytes a
//! client sends after `DATA` are a message or more commands depends on the server's `354`.
//! So the client side waits (holds its bytes) after `DATA` and `STARTTLS`/`STLS` until the
//! server's verdict is cut. Nothing else is buffered: a line keeps at most its first
//! [`MAX_HEAD`] bytes, and long units (a message) are counted, not stored.

use std::collections::VecDeque;
use std::ops::Range;

use super::stream::{Direction, StreamEvent};
use crate::proto::pop3::command::Command as Pop3Command;

/// Bytes of each line kept for parsing and for a unit's text.
pub const MAX_HEAD: usize = 512;
/// Characters of a unit's text at most.
pub const MAX_TEXT: usize = 240;
/// Bytes a client may send before the server's first words, on a port that does not say
/// the protocol, before mailwire gives up guessing.
const MAX_UNDECIDED: usize = 64 << 10;
/// Bytes a client may send after DATA or STARTTLS, before the server's answer is seen,
/// before mailwire stops waiting for it.
const MAX_BLOCKED: usize = 1 << 20;

/// The application protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Pop3,
    Smtp,
    /// Not known yet: the server port is not a mail port and the server has not spoken.
    Undecided,
    /// Not POP3 or SMTP (or implicit TLS on an unknown port): no units.
    Other,
}

impl Protocol {
    /// The protocol's usual name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pop3 => "POP3",
            Protocol::Smtp => "SMTP",
            Protocol::Undecided => "undecided",
            Protocol::Other => "not POP3 or SMTP",
        }
    }

    /// The protocol a server port implies (POP3: 110, 1110, 995; SMTP: 25, 587, 2525, 465).
    pub fn from_port(port: u16) -> Option<Protocol> {
        match port {
            110 | 1110 | 995 => Some(Protocol::Pop3),
            25 | 587 | 2525 | 465 => Some(Protocol::Smtp),
            _ => None,
        }
    }
}

/// How the protocol was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolSource {
    /// From the server's port number.
    Port,
    /// From the server's first words (`+OK` or a three-digit code).
    Greeting,
    /// Not recognised.
    None,
}

/// What a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    /// The server's first reply, sent before any command.
    Greeting,
    /// A client command line.
    Command,
    /// A server reply (single- or multi-line).
    Reply,
    /// A client line answering a SASL challenge during AUTH (base64, or `*` to cancel).
    AuthData,
    /// SMTP message content: after a 354, the client's bytes up to and including
    /// CRLF.CRLF; or the chunk after `BDAT n`.
    MailContent,
    /// A TLS record (after STLS/STARTTLS, or on an implicit-TLS port).
    Tls,
    /// Bytes that could not be cut into units (what follows a broken TLS record header).
    Undecoded,
}

impl UnitKind {
    /// A short lower-case name, e.g. `"greeting"`.
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Greeting => "greeting",
            UnitKind::Command => "command",
            UnitKind::Reply => "reply",
            UnitKind::AuthData => "SASL data",
            UnitKind::MailContent => "message content",
            UnitKind::Tls => "TLS record",
            UnitKind::Undecoded => "undecoded",
        }
    }
}

/// A unit as the cutter finds it; the analyzer adds the carriers and global indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draft {
    /// Index among this connection's units.
    pub local: u32,
    pub direction: Direction,
    pub kind: UnitKind,
    pub text: String,
    pub stream: Range<u64>,
    pub lines: u32,
    pub multi_line: bool,
    /// Local index of the unit this one answers.
    pub reply_to: Option<u32>,
    pub notes: Vec<String>,
}

/// What a command waiting for its reply expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
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

#[derive(Debug, Clone, Copy)]
struct Waiting {
    local: u32,
    expect: Expect,
}

/// How a side's bytes are being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lines,
    /// Waiting for the server's answer to DATA or STARTTLS before reading on.
    Blocked,
    /// A BDAT chunk: this many bytes of content still to come.
    Chunk {
        remaining: u64,
    },
    /// TLS records: `have` header bytes read, then `remaining` body bytes.
    Tls {
        header: [u8; 5],
        have: u8,
        remaining: u64,
    },
    /// Everything to the end is one undecoded unit.
    Opaque,
}

/// What a multi-line unit under construction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Building {
    Pop3Multi,
    SmtpReply,
    Content,
    Chunk,
    Tls,
    Opaque,
}

#[derive(Debug, Clone)]
struct OpenUnit {
    kind: UnitKind,
    building: Building,
    start: u64,
    text: String,
    lines: u32,
    notes: Vec<String>,
    reply_to: Option<u32>,
}

/// Stream events held while a side is blocked or the protocol undecided.
#[derive(Debug, Clone)]
enum HeldItem {
    Data(u64, Vec<u8>),
    Gap(u64, u64),
    End,
}

/// One complete (or, at the end, incomplete) line.
struct Line {
    start: u64,
    end: u64,
    head: Vec<u8>,
    /// Full length was more than the head kept.
    cut: bool,
    crlf: bool,
    /// Ended with a line feed (false only for the last bytes of a stream).
    complete: bool,
    /// Bytes just before the line were never captured.
    gap: bool,
    /// The line was cut short by bytes that were never captured.
    cut_by_gap: bool,
}

impl Line {
    /// The line without its terminator.
    fn content(&self) -> &[u8] {
        let mut c = self.head.as_slice();
        if self.cut {
            return c;
        }
        if let Some(rest) = c.strip_suffix(b"\n") {
            c = rest;
        }
        if let Some(rest) = c.strip_suffix(b"\r") {
            c = rest;
        }
        c
    }

    /// The line as unit text: lossy UTF-8, control characters shown as `?`, shortened.
    fn text(&self) -> String {
        unit_text(self.content(), self.cut)
    }

    fn starts_with_ci(&self, prefix: &[u8]) -> bool {
        self.head
            .get(..prefix.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
    }
}

fn unit_text(bytes: &[u8], cut: bool) -> String {
    let lossy = String::from_utf8_lossy(bytes);
    let mut text: String = lossy
        .chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect();
    if cut || lossy.chars().count() > MAX_TEXT {
        text.push('…');
    }
    text
}

/// One direction's cutting state.
#[derive(Debug, Clone)]
struct Side {
    mode: Mode,
    line_start: u64,
    line_len: u64,
    line_head: Vec<u8>,
    last_byte: u8,
    before_last: u8,
    line_gap: bool,
    /// Stream offset of the next byte to process (held bytes are not processed yet).
    consumed: u64,
    prev_line_crlf: bool,
    unit: Option<OpenUnit>,
    held: Vec<HeldItem>,
    held_bytes: usize,
    eof: bool,
    finished: bool,
    started: bool,
}

impl Side {
    fn new() -> Self {
        Side {
            mode: Mode::Lines,
            line_start: 0,
            line_len: 0,
            line_head: Vec::new(),
            last_byte: 0,
            before_last: 0,
            line_gap: false,
            consumed: 0,
            prev_line_crlf: true,
            unit: None,
            held: Vec::new(),
            held_bytes: 0,
            eof: false,
            finished: false,
            started: false,
        }
    }

    /// Adds bytes (no line feed among them except possibly the last) to the current line.
    fn extend_line(&mut self, offset: u64, bytes: &[u8]) {
        if self.line_len == 0 {
            self.line_start = offset;
        }
        let room = MAX_HEAD.saturating_sub(self.line_head.len());
        self.line_head
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        match bytes {
            [.., a, b] => {
                self.before_last = *a;
                self.last_byte = *b;
            }
            [b] => {
                self.before_last = self.last_byte;
                self.last_byte = *b;
            }
            [] => {}
        }
        self.line_len += bytes.len() as u64;
    }

    /// Takes the current line out: complete (it ended with a line feed) or not (the stream
    /// ended, or a capture gap cut it).
    fn take_line(&mut self, complete: bool) -> Line {
        let crlf = complete && self.before_last == b'\r';
        let head = std::mem::take(&mut self.line_head);
        let line = Line {
            start: self.line_start,
            end: self.line_start + self.line_len,
            cut: self.line_len > head.len() as u64,
            head,
            crlf,
            complete,
            gap: self.line_gap,
            cut_by_gap: false,
        };
        self.line_start += self.line_len;
        self.line_len = 0;
        self.line_gap = false;
        line
    }
}

/// The cutter of one connection: both sides, the commands waiting for replies.
#[derive(Debug, Clone)]
pub(crate) struct Dialog {
    pub protocol: Protocol,
    pub source: ProtocolSource,
    client: Side,
    server: Side,
    waiting: VecDeque<Waiting>,
    greeted: bool,
    auth: bool,
    next_local: u32,
    /// Units cut and not yet taken by the analyzer.
    pub drafts: Vec<Draft>,
}

const CLIENT: usize = 0;
const SERVER: usize = 1;

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
            Some(p) => (p, ProtocolSource::Port),
            None => (Protocol::Undecided, ProtocolSource::None),
        };
        Dialog {
            protocol,
            source,
            client: Side::new(),
            server: Side::new(),
            waiting: VecDeque::new(),
            greeted: false,
            auth: false,
            next_local: 0,
            drafts: Vec::new(),
        }
    }

    fn side(&mut self, d: usize) -> &mut Side {
        if d == CLIENT {
            &mut self.client
        } else {
            &mut self.server
        }
    }

    fn side_ref(&self, d: usize) -> &Side {
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
            Protocol::Other => {}
            Protocol::Undecided => {
                let item = match event {
                    StreamEvent::Data { offset, bytes } => {
                        self.side(d).held_bytes += bytes.len();
                        HeldItem::Data(offset, bytes.to_vec())
                    }
                    StreamEvent::Gap { offset, len } => HeldItem::Gap(offset, len),
                    StreamEvent::End => HeldItem::End,
                };
                self.side(d).held.push(item);
                self.try_decide(false);
            }
            Protocol::Pop3 | Protocol::Smtp => match event {
                StreamEvent::Data { offset, bytes } => self.feed(d, offset, bytes),
                StreamEvent::Gap { offset, len } => self.gap(d, offset, len),
                StreamEvent::End => self.end(d),
            },
        }
    }

    /// The capture is over: decide what is undecided, cut what is left.
    pub fn finish(&mut self) {
        if self.protocol == Protocol::Undecided {
            self.try_decide(true);
        }
        if matches!(self.protocol, Protocol::Pop3 | Protocol::Smtp) {
            if self.client.mode == Mode::Blocked {
                self.force_unblock();
            }
            self.finish_side(SERVER);
            self.finish_side(CLIENT);
        }
    }

    // ----- protocol guessing -----

    fn held_prefix(&self, d: usize, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for item in &self.side_ref(d).held {
            match item {
                HeldItem::Data(_, b) => {
                    out.extend_from_slice(b.get(..n.min(b.len())).unwrap_or_default())
                }
                HeldItem::Gap(..) | HeldItem::End => break,
            }
            if out.len() >= n {
                break;
            }
        }
        out.truncate(n);
        out
    }

    fn try_decide(&mut self, force: bool) {
        let first = self.held_prefix(SERVER, 5);
        let server_ended = self.server.held.iter().any(|h| matches!(h, HeldItem::End));
        let decided = guess_protocol(&first, force || server_ended);
        let decided = match decided {
            None if self.client.held_bytes > MAX_UNDECIDED => Some(Protocol::Other),
            None if force => Some(Protocol::Other),
            other => other,
        };
        let Some(protocol) = decided else {
            return;
        };
        self.protocol = protocol;
        if protocol == Protocol::Other {
            self.client = Side::new();
            self.server = Side::new();
            return;
        }
        self.source = ProtocolSource::Greeting;
        for d in [CLIENT, SERVER] {
            let held = std::mem::take(&mut self.side(d).held);
            self.side(d).held_bytes = 0;
            self.replay(d, held);
        }
    }

    fn replay(&mut self, d: usize, items: Vec<HeldItem>) {
        for item in items {
            match item {
                HeldItem::Data(offset, bytes) => self.feed(d, offset, &bytes),
                HeldItem::Gap(offset, len) => self.gap(d, offset, len),
                HeldItem::End => self.end(d),
            }
        }
    }

    // ----- bytes in -----

    fn feed(&mut self, d: usize, offset: u64, bytes: &[u8]) {
        let mut pos = 0usize;
        let mut idle_rounds = 0;
        while pos < bytes.len() {
            let rest = bytes.get(pos..).unwrap_or_default();
            let at = offset + pos as u64;
            let was_blocked = self.side(d).mode == Mode::Blocked;
            let used = match self.side(d).mode {
                Mode::Blocked => {
                    let side = self.side(d);
                    side.held_bytes += rest.len();
                    side.held.push(HeldItem::Data(at, rest.to_vec()));
                    if side.held_bytes > MAX_BLOCKED {
                        // The server's verdict is not coming: read on as the client meant.
                        self.force_unblock();
                    }
                    rest.len()
                }
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

    /// Reads up to one line; returns the bytes used.
    fn feed_lines(&mut self, d: usize, at: u64, rest: &[u8]) -> usize {
        let side = self.side(d);
        if !side.started && side.line_len == 0 && side.unit.is_none() && looks_like_tls(rest) {
            side.started = true;
            side.mode = Mode::Tls {
                header: [0; 5],
                have: 0,
                remaining: 0,
            };
            return 0;
        }
        side.started = true;
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                side.extend_line(at, rest.get(..=i).unwrap_or_default());
                let line = side.take_line(true);
                self.on_line(d, line);
                i + 1
            }
            None => {
                side.extend_line(at, rest);
                rest.len()
            }
        }
    }

    fn feed_chunk(&mut self, d: usize, at: u64, rest: &[u8], remaining: u64) -> usize {
        let take = remaining.min(rest.len() as u64);
        let side = self.side(d);
        if let Some(u) = side.unit.as_mut()
            && u.text.is_empty()
        {
            let first_line = rest
                .get(..take as usize)
                .unwrap_or_default()
                .split(|&b| b == b'\n')
                .next()
                .unwrap_or_default();
            let first_line = first_line.strip_suffix(b"\r").unwrap_or(first_line);
            u.text = unit_text(
                first_line
                    .get(..MAX_HEAD.min(first_line.len()))
                    .unwrap_or_default(),
                false,
            );
        }
        let left = remaining - take;
        side.mode = Mode::Chunk { remaining: left };
        if left == 0 {
            side.mode = Mode::Lines;
            self.close_unit(d, at + take, None);
        }
        take as usize
    }

    fn feed_tls(&mut self, d: usize, at: u64, rest: &[u8]) -> usize {
        let Mode::Tls {
            mut header,
            mut have,
            remaining,
        } = self.side(d).mode
        else {
            return rest.len();
        };
        if have < 5 {
            if have == 0 {
                self.open_unit(d, at, UnitKind::Tls, Building::Tls, String::new(), 0);
            }
            let need = 5 - usize::from(have);
            let take = need.min(rest.len());
            for (i, b) in rest.iter().take(take).enumerate() {
                if let Some(slot) = header.get_mut(usize::from(have) + i) {
                    *slot = *b;
                }
            }
            have += take as u8;
            let mut remaining = remaining;
            if have == 5 {
                let [kind, major, minor, hi, lo] = header;
                if !(20..=24).contains(&kind) || major != 3 {
                    self.side(d).mode = Mode::Opaque;
                    if let Some(u) = self.side(d).unit.as_mut() {
                        u.kind = UnitKind::Undecoded;
                        u.building = Building::Opaque;
                        u.text = "bytes that are not a TLS record (not decoded)".into();
                    }
                    return take;
                }
                remaining = u64::from(u16::from_be_bytes([hi, lo]));
                if let Some(u) = self.side(d).unit.as_mut() {
                    u.text = format!(
                        "TLS {} record, {} bytes (version 3.{minor})",
                        tls_type(kind),
                        remaining + 5
                    );
                }
            }
            self.side(d).mode = Mode::Tls {
                header,
                have,
                remaining,
            };
            if have == 5 && remaining == 0 {
                self.end_tls_record(d, at + take as u64);
            }
            return take;
        }
        let take = remaining.min(rest.len() as u64);
        let left = remaining - take;
        self.side(d).mode = Mode::Tls {
            header,
            have,
            remaining: left,
        };
        if left == 0 {
            self.end_tls_record(d, at + take);
        }
        take as usize
    }

    fn end_tls_record(&mut self, d: usize, end: u64) {
        self.side(d).mode = Mode::Tls {
            header: [0; 5],
            have: 0,
            remaining: 0,
        };
        self.close_unit(d, end, None);
    }

    fn gap(&mut self, d: usize, offset: u64, len: u64) {
        let side = self.side(d);
        let note = format!("{len} bytes at stream offset {offset} were not captured");
        match side.mode {
            Mode::Blocked => side.held.push(HeldItem::Gap(offset, len)),
            Mode::Lines => {
                if let Some(u) = side.unit.as_mut() {
                    u.notes.push(note);
                }
                if side.line_len > 0 {
                    let mut line = side.take_line(false);
                    line.cut_by_gap = true;
                    self.on_line(d, line);
                }
                let side = self.side(d);
                side.line_start = offset + len;
                side.consumed = offset + len;
                side.line_gap = side.unit.is_none();
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

    fn end(&mut self, d: usize) {
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
    fn finish_side(&mut self, d: usize) {
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
                    self.waiting.push_back(Waiting {
                        local,
                        expect: Expect::Single,
                    });
                }
            }
            _ => {
                self.close_unit(d, end, note);
            }
        }
    }

    /// The server never answered DATA or STARTTLS: read the held bytes as the client meant
    /// them (a message after DATA; TLS if it looks like TLS, else commands).
    fn force_unblock(&mut self) {
        let expect = self
            .waiting
            .iter()
            .rev()
            .find(|w| matches!(w.expect, Expect::Data | Expect::StartTls))
            .map(|w| w.expect);
        let first = self.held_prefix(CLIENT, 3);
        let mode = match expect {
            Some(Expect::Data) => {
                let at = self.client.consumed;
                self.open_unit(
                    CLIENT,
                    at,
                    UnitKind::MailContent,
                    Building::Content,
                    String::new(),
                    0,
                );
                if let Some(u) = self.client.unit.as_mut() {
                    u.notes
                        .push("read as message content without the server's reply to DATA (none captured yet)".into());
                }
                Mode::Lines
            }
            _ if looks_like_tls(&first) => Mode::Tls {
                header: [0; 5],
                have: 0,
                remaining: 0,
            },
            _ => Mode::Lines,
        };
        self.unblock(mode);
    }

    fn unblock(&mut self, mode: Mode) {
        let side = &mut self.client;
        if side.mode != Mode::Blocked {
            return;
        }
        side.mode = mode;
        side.held_bytes = 0;
        let held = std::mem::take(&mut side.held);
        self.replay(CLIENT, held);
        if self.client.eof && self.client.mode != Mode::Blocked {
            self.finish_side(CLIENT);
        }
    }

    // ----- units out -----

    fn push_draft(&mut self, mut draft: Draft) -> u32 {
        let local = self.next_local;
        self.next_local += 1;
        draft.local = local;
        self.drafts.push(draft);
        local
    }

    /// Emits a one-line unit.
    fn emit(
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

    fn open_unit(
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

    /// Closes the open unit of side `d` at stream offset `end`; returns its local index.
    fn close_unit(&mut self, d: usize, end: u64, note: Option<String>) -> Option<u32> {
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

    fn line_notes(line: &Line) -> Vec<String> {
        let mut notes = Vec::new();
        if line.cut_by_gap {
            notes.push("cut short: the bytes after it were not captured".to_string());
        } else if !line.complete {
            notes.push("unterminated: the stream ended before the line end".to_string());
        } else if !line.crlf {
            notes.push("ends with a bare LF, not CRLF".to_string());
        }
        if line.gap {
            notes.push("the bytes just before it were not captured".to_string());
        }
        notes
    }

    fn on_line(&mut self, d: usize, line: Line) {
        let crlf = line.crlf;
        let mut head = match (d, self.protocol) {
            (CLIENT, Protocol::Pop3) => self.pop3_client_line(line),
            (CLIENT, _) => self.smtp_client_line(line),
            (_, Protocol::Pop3) => self.pop3_server_line(line),
            (_, _) => self.smtp_server_line(line),
        };
        let side = self.side(d);
        side.prev_line_crlf = crlf;
        // Give the buffer back for the next line.
        if let Some(h) = head.as_mut() {
            h.clear();
            if side.line_head.is_empty() {
                side.line_head = std::mem::take(h);
            }
        }
    }

    // ----- POP3 -----

    fn pop3_client_line(&mut self, line: Line) -> Option<Vec<u8>> {
        let (kind, expect) = if self.auth {
            (UnitKind::AuthData, Expect::Auth)
        } else {
            (UnitKind::Command, pop3_expect(line.content()))
        };
        let notes = Self::line_notes(&line);
        let local = self.emit(CLIENT, kind, &line, None, notes);
        self.waiting.push_back(Waiting { local, expect });
        if expect == Expect::StartTls {
            self.client.mode = Mode::Blocked;
        }
        Some(line.head)
    }

    fn pop3_server_line(&mut self, line: Line) -> Option<Vec<u8>> {
        if let Some(u) = self.server.unit.as_mut() {
            if line.content() == b"." {
                let id = self.close_unit(SERVER, line.end, None);
                self.pair_front(id);
                return Some(line.head);
            }
            let new_reply = line.starts_with_ci(b"+OK") || line.starts_with_ci(b"-ERR");
            if !(new_reply && self.waiting.len() > 1) {
                u.lines += 1;
                if line.gap {
                    u.notes.push("some bytes were not captured".into());
                }
                return Some(line.head);
            }
            let id = self.close_unit(
                SERVER,
                line.start,
                Some("unterminated: no \".\" line before the next reply began".into()),
            );
            self.pair_front(id);
        }
        let notes = Self::line_notes(&line);
        if !self.greeted && self.waiting.is_empty() {
            self.greeted = true;
            self.emit(SERVER, UnitKind::Greeting, &line, None, notes);
            return Some(line.head);
        }
        self.greeted = true;
        if !(line.head.first() == Some(&b'+') || line.head.first() == Some(&b'-')) {
            let mut notes = notes;
            notes.push("not a POP3 reply: it does not start with +OK or -ERR".into());
            self.emit(SERVER, UnitKind::Reply, &line, None, notes);
            return Some(line.head);
        }
        let positive = line.starts_with_ci(b"+OK");
        let continuation = !positive && line.head.first() == Some(&b'+');
        let front = self.waiting.front().copied();
        if positive && front.is_some_and(|w| w.expect == Expect::MultiIfPositive) {
            self.open_unit(
                SERVER,
                line.start,
                UnitKind::Reply,
                Building::Pop3Multi,
                line.text(),
                1,
            );
            if let Some(u) = self.server.unit.as_mut() {
                u.notes = notes;
                u.reply_to = front.map(|w| w.local);
            }
            return Some(line.head);
        }
        let reply_to = self.waiting.pop_front();
        let mut notes = notes;
        if reply_to.is_none() {
            notes.push("no command was waiting for this reply".into());
        }
        self.emit(
            SERVER,
            UnitKind::Reply,
            &line,
            reply_to.map(|w| w.local),
            notes,
        );
        if let Some(w) = reply_to {
            self.after_reply(w.expect, positive, continuation);
        }
        Some(line.head)
    }

    /// Records that the open unit just closed (`id`) answers the front command.
    fn pair_front(&mut self, id: Option<u32>) {
        let front = self.waiting.pop_front();
        if let (Some(id), Some(front)) = (id, front)
            && let Some(d) = self.drafts.iter_mut().rev().find(|d| d.local == id)
        {
            d.reply_to = Some(front.local);
        }
    }

    /// Side effects of a reply on what the client's next bytes are.
    fn after_reply(&mut self, expect: Expect, positive: bool, continuation: bool) {
        match expect {
            Expect::StartTls if positive => {
                self.server.mode = Mode::Tls {
                    header: [0; 5],
                    have: 0,
                    remaining: 0,
                };
                self.unblock(Mode::Tls {
                    header: [0; 5],
                    have: 0,
                    remaining: 0,
                });
            }
            Expect::StartTls => self.unblock(Mode::Lines),
            Expect::Auth => self.auth = continuation,
            // Only if the client still waits (it may have been read on without the answer).
            Expect::Data if positive && self.client.mode == Mode::Blocked => {
                let at = self.client.consumed;
                self.open_unit(
                    CLIENT,
                    at,
                    UnitKind::MailContent,
                    Building::Content,
                    String::new(),
                    0,
                );
                self.unblock(Mode::Lines);
            }
            Expect::Data => self.unblock(Mode::Lines),
            Expect::Single | Expect::MultiIfPositive => {}
        }
    }

    // ----- SMTP -----

    fn smtp_client_line(&mut self, line: Line) -> Option<Vec<u8>> {
        let building_content = self
            .client
            .unit
            .as_ref()
            .is_some_and(|u| u.building == Building::Content);
        if building_content {
            return self.content_line(line);
        }
        let notes = Self::line_notes(&line);
        if self.auth {
            let local = self.emit(CLIENT, UnitKind::AuthData, &line, None, notes);
            self.waiting.push_back(Waiting {
                local,
                expect: Expect::Auth,
            });
            return Some(line.head);
        }
        let content = line.content();
        let mut words = content
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let verb = words.next().unwrap_or_default().to_ascii_uppercase();
        let args: Vec<&[u8]> = words.collect();
        let expect = match verb.as_slice() {
            b"DATA" => Expect::Data,
            b"STARTTLS" => Expect::StartTls,
            b"AUTH" => Expect::Auth,
            _ => Expect::Single,
        };
        let local = self.emit(CLIENT, UnitKind::Command, &line, None, notes);
        self.waiting.push_back(Waiting { local, expect });
        match expect {
            Expect::Data | Expect::StartTls => self.client.mode = Mode::Blocked,
            _ => {}
        }
        if verb == b"BDAT"
            && let Some(size) = bdat_size(&args)
            && size > 0
        {
            self.open_unit(
                CLIENT,
                line.end,
                UnitKind::MailContent,
                Building::Chunk,
                String::new(),
                0,
            );
            self.client.mode = Mode::Chunk { remaining: size };
        }
        Some(line.head)
    }

    fn content_line(&mut self, line: Line) -> Option<Vec<u8>> {
        let prev_crlf = self.client.prev_line_crlf;
        let content = line.content();
        let is_dot = content == b"." && !line.cut;
        if is_dot && line.crlf && prev_crlf {
            let id = self.close_unit(CLIENT, line.end, None);
            if let Some(local) = id {
                if let Some(d) = self.drafts.iter_mut().rev().find(|d| d.local == local)
                    && d.text.is_empty()
                {
                    d.text = "(empty message)".into();
                }
                self.waiting.push_back(Waiting {
                    local,
                    expect: Expect::Single,
                });
            }
            return Some(line.head);
        }
        if let Some(u) = self.client.unit.as_mut() {
            if u.lines == 0 {
                u.text = line.text();
            }
            u.lines += 1;
            if is_dot && line.complete && !u.notes.iter().any(|n| n.contains("smuggling")) {
                u.notes.push(
                    "a \".\" line next to a bare LF does not end DATA (only CRLF.CRLF does): \
                     an SMTP smuggling pattern"
                        .into(),
                );
            }
            if line.gap {
                u.notes.push("some bytes were not captured".into());
            }
        }
        Some(line.head)
    }

    fn smtp_server_line(&mut self, line: Line) -> Option<Vec<u8>> {
        let content = line.content();
        let code = smtp_code(content);
        let continues = code.is_some() && content.get(3) == Some(&b'-');
        if let Some(u) = self.server.unit.as_mut() {
            u.lines += 1;
            if line.gap {
                u.notes.push("some bytes were not captured".into());
            }
            if !continues {
                let code = smtp_code(u.text.as_bytes()).unwrap_or(0);
                self.finish_smtp_reply(line.end, code, None);
            }
            return Some(line.head);
        }
        let notes = Self::line_notes(&line);
        let Some(code) = code else {
            let mut notes = notes;
            notes.push("not an SMTP reply: it does not start with a three-digit code".into());
            self.greeted = true;
            self.emit(SERVER, UnitKind::Reply, &line, None, notes);
            return Some(line.head);
        };
        self.open_unit(
            SERVER,
            line.start,
            UnitKind::Reply,
            Building::SmtpReply,
            line.text(),
            1,
        );
        if let Some(u) = self.server.unit.as_mut() {
            u.notes = notes;
        }
        if !continues {
            self.finish_smtp_reply(line.end, code, None);
        }
        Some(line.head)
    }

    /// Closes the open SMTP reply at `end` and pairs it with the command it answers.
    fn finish_smtp_reply(&mut self, end: u64, code: u16, note: Option<String>) {
        let first = !self.greeted;
        self.greeted = true;
        if first && (self.waiting.is_empty() || code == 220) {
            if let Some(u) = self.server.unit.as_mut() {
                u.kind = UnitKind::Greeting;
            }
            self.close_unit(SERVER, end, note);
            return;
        }
        let front = self.waiting.pop_front();
        if let Some(u) = self.server.unit.as_mut() {
            u.reply_to = front.map(|w| w.local);
            if front.is_none() {
                u.notes.push("no command was waiting for this reply".into());
            }
        }
        self.close_unit(SERVER, end, note);
        if let Some(w) = front {
            let positive = match w.expect {
                Expect::Data => code == 354,
                Expect::StartTls => code == 220,
                _ => (200..400).contains(&code),
            };
            self.after_reply(w.expect, positive, code == 334);
        }
    }
}

/// What a POP3 command line expects back.
fn pop3_expect(line: &[u8]) -> Expect {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
    let has_args = words.next().is_some();
    match keyword.as_slice() {
        b"STLS" => Expect::StartTls,
        b"AUTH" if has_args => Expect::Auth,
        // "AUTH" alone lists the SASL mechanisms, multi-line (RFC 1734 servers do this).
        b"AUTH" => Expect::MultiIfPositive,
        _ => match Pop3Command::parse(line) {
            Ok(c) if c.has_multiline_reply() => Expect::MultiIfPositive,
            _ => Expect::Single,
        },
    }
}

/// The size of `BDAT size [LAST]`, if the arguments are valid.
fn bdat_size(args: &[&[u8]]) -> Option<u64> {
    let (size, rest) = args.split_first()?;
    let valid_rest = match rest {
        [] => true,
        [last] => last.eq_ignore_ascii_case(b"LAST"),
        _ => false,
    };
    if !valid_rest || size.is_empty() || size.len() > 18 || !size.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(size).ok()?.parse().ok()
}

/// The three-digit code at the start of an SMTP reply line.
fn smtp_code(line: &[u8]) -> Option<u16> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match line.get(3) {
        None | Some(b' ') | Some(b'-') | Some(b'\r') | Some(b'\n') => {}
        Some(_) => return None,
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether bytes start like a TLS handshake record (what a ClientHello/ServerHello begins
/// with).
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x16, 0x03, ..])
}

fn tls_type(kind: u8) -> &'static str {
    match kind {
        20 => "change-cipher-spec",
        21 => "alert",
        22 => "handshake",
        23 => "application-data",
        24 => "heartbeat",
        _ => "unknown",
    }
}

/// The protocol the server's first bytes show, or `None` if more bytes are needed.
fn guess_protocol(first: &[u8], final_answer: bool) -> Option<Protocol> {
    let pop3 = [&b"+OK"[..], b"-ERR"];
    if pop3.iter().any(|p| first.starts_with(p)) {
        return Some(Protocol::Pop3);
    }
    let partial_pop3 = pop3.iter().any(|p| p.starts_with(first));
    let partial_smtp = first.len() < 3 && first.iter().all(u8::is_ascii_digit);
    if (first.is_empty() || partial_pop3 || partial_smtp) && !final_answer {
        return None;
    }
    if smtp_code(first).is_some() {
        return Some(Protocol::Smtp);
    }
    Some(Protocol::Other)
}
