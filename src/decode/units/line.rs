//! One side of a connection as the cutter reads it, and the line cutter: how the side's
//! bytes are being read ([`Mode`]), the unit being built ([`OpenUnit`]), and lines cut at
//! their line feed, of which only the first [`MAX_HEAD`] bytes are kept.

use super::dialog::Dialog;
use super::hold::HeldItem;
use super::tls::looks_like_tls;
use super::{MAX_HEAD, MAX_TEXT, UnitKind};

/// How a side's bytes are being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
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

impl Mode {
    /// TLS records, at the start of a record header.
    pub(super) const TLS_START: Mode = Mode::Tls {
        header: [0; 5],
        have: 0,
        remaining: 0,
    };
}

/// What a multi-line unit under construction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Building {
    Pop3Multi,
    SmtpReply,
    Content,
    Chunk,
    Tls,
    Opaque,
}

/// A unit whose end has not been seen yet.
#[derive(Debug, Clone)]
pub(super) struct OpenUnit {
    pub(super) kind: UnitKind,
    pub(super) building: Building,
    pub(super) start: u64,
    pub(super) text: String,
    pub(super) lines: u32,
    pub(super) notes: Vec<String>,
    pub(super) reply_to: Option<u32>,
}

/// One complete (or, at the end, incomplete) line.
pub(super) struct Line {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) head: Vec<u8>,
    /// Full length was more than the head kept.
    pub(super) cut: bool,
    pub(super) crlf: bool,
    /// Ended with a line feed (false only for the last bytes of a stream).
    pub(super) complete: bool,
    /// Bytes just before the line were never captured.
    pub(super) gap: bool,
    /// The line was cut short by bytes that were never captured.
    pub(super) cut_by_gap: bool,
    /// The line starts right after bytes that were never captured (inside a unit or not).
    pub(super) after_gap: bool,
    /// ... and those bytes cut the line before them: this is that line's rest.
    pub(super) tail: bool,
}

impl Line {
    /// The line without its terminator.
    pub(super) fn content(&self) -> &[u8] {
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
    pub(super) fn text(&self) -> String {
        unit_text(self.content(), self.cut)
    }

    pub(super) fn starts_with_ci(&self, prefix: &[u8]) -> bool {
        self.head
            .get(..prefix.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
    }

    /// Remarks on how the line ended and whether bytes before it are missing.
    pub(super) fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.cut_by_gap {
            notes.push("cut short: the bytes after it were not captured".to_string());
        } else if !self.complete {
            notes.push("unterminated: the stream ended before the line end".to_string());
        } else if !self.crlf {
            notes.push(
                "ends with a bare LF, not CRLF (RFC 1939 section 3, RFC 5321 section 2.3.8)"
                    .to_string(),
            );
        }
        if self.gap {
            notes.push("the bytes just before it were not captured".to_string());
        }
        notes
    }
}

/// Bytes as unit text: lossy UTF-8, control characters shown as `?`, at most [`MAX_TEXT`]
/// characters (`…` marks a cut, also when `cut` says the bytes were already shortened).
pub(super) fn unit_text(bytes: &[u8], cut: bool) -> String {
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
pub(super) struct Side {
    pub(super) mode: Mode,
    pub(super) line_start: u64,
    pub(super) line_len: u64,
    line_head: Vec<u8>,
    last_byte: u8,
    before_last: u8,
    pub(super) line_gap: bool,
    /// The current line starts right after a capture gap.
    pub(super) line_after_gap: bool,
    /// ... which cut the line before it.
    pub(super) line_tail: bool,
    /// Stream offset of the next byte to process (held bytes are not processed yet).
    pub(super) consumed: u64,
    pub(super) prev_line_crlf: bool,
    pub(super) unit: Option<OpenUnit>,
    pub(super) held: Vec<HeldItem>,
    pub(super) held_bytes: usize,
    pub(super) eof: bool,
    pub(super) finished: bool,
    started: bool,
}

impl Side {
    pub(super) fn new() -> Self {
        Side {
            mode: Mode::Lines,
            line_start: 0,
            line_len: 0,
            line_head: Vec::new(),
            last_byte: 0,
            before_last: 0,
            line_gap: false,
            line_after_gap: false,
            line_tail: false,
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
    pub(super) fn take_line(&mut self, complete: bool) -> Line {
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
            after_gap: self.line_after_gap,
            tail: self.line_tail,
        };
        self.line_start += self.line_len;
        self.line_len = 0;
        self.line_gap = false;
        self.line_after_gap = false;
        self.line_tail = false;
        line
    }

    /// Gives a line's buffer back for the next line.
    pub(super) fn reuse(&mut self, mut head: Vec<u8>) {
        head.clear();
        if self.line_head.is_empty() {
            self.line_head = head;
        }
    }
}

impl Dialog {
    /// Reads up to one line; returns the bytes used.
    pub(super) fn feed_lines(&mut self, d: usize, at: u64, rest: &[u8]) -> usize {
        let side = self.side(d);
        if !side.started && side.line_len == 0 && side.unit.is_none() && looks_like_tls(rest) {
            side.started = true;
            side.mode = Mode::TLS_START;
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
}
