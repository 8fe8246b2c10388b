//! Incremental line splitting for line-based protocols.
//!
//! [`LineBuffer`] takes bytes as they arrive and hands out complete lines. "Not enough bytes
//! yet" is not an error: [`LineBuffer::next_line`] returns `None` until a terminator arrives.
//! A line longer than the limit is never buffered whole: its bytes are dropped as they come
//! and a single [`Line::TooLong`] is reported once its terminator is seen, so a hostile
//! 1 MB line costs at most `max_len` bytes of memory.
//!
//! Line-based client machines share their input handling here too: [`ClientInput`] and
//! [`LineReader`], through which they are [`Machine`]s.

use std::collections::VecDeque;
use std::convert::Infallible;

use super::{Machine, Output, Protocol};

/// Which byte sequences end a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminator {
    /// Only CR LF ends a line; a bare LF or CR is part of the line (SMTP DATA).
    CrLf,
    /// CR LF or a bare LF ends a line (command lines typed by people and lenient clients).
    CrLfOrLf,
}

/// One unit taken out of a [`LineBuffer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its terminator.
    Complete {
        /// The line's bytes, terminator removed.
        text: Vec<u8>,
        /// Whether it ended with CR LF (`false`: a bare LF).
        crlf: bool,
    },
    /// A line longer than the limit; `len` is its full length without the terminator.
    TooLong { len: usize },
}

/// Bytes received so far, cut into lines on demand.
#[derive(Debug, Clone)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Bytes before `start` are consumed.
    start: usize,
    /// Bytes in `buf[start..scanned]` are known to hold no terminator.
    scanned: usize,
    max_len: usize,
    terminator: Terminator,
    /// Length of an over-long line whose bytes are being discarded, if any.
    discarding: Option<usize>,
    /// Bytes pushed since the buffer was made.
    pushed: u64,
}

impl LineBuffer {
    /// A buffer that accepts lines of at most `max_len` bytes (terminator not counted).
    pub fn new(max_len: usize, terminator: Terminator) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_len,
            terminator,
            discarding: None,
            pushed: 0,
        }
    }

    /// Where the next line begins in the byte stream pushed so far (0 is the first byte
    /// ever pushed): every byte before it was handed out as part of a line. A driver uses it
    /// to say where each command or reply lies on the wire.
    pub fn position(&self) -> u64 {
        let held = self.pending().len() + self.discarding.unwrap_or(0);
        self.pushed.saturating_sub(held as u64)
    }

    /// Changes the line limit and terminator for the lines still to come (for example when
    /// SMTP switches from commands to message content).
    pub fn set_mode(&mut self, max_len: usize, terminator: Terminator) {
        self.max_len = max_len;
        if self.terminator != terminator {
            self.terminator = terminator;
            self.scanned = self.start;
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.pushed += bytes.len() as u64;
    }

    /// Bytes received but not yet handed out as lines.
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Drops the bytes received after the last complete line (a line whose end has not come,
    /// and may never come) and returns them; they count as handed out, so
    /// [`Self::position`] moves past them. A client that gives a stalled reply up uses it, so
    /// the next reply starts on a line of its own.
    pub fn take_pending(&mut self) -> Vec<u8> {
        let rest = self.pending().to_vec();
        self.start = self.buf.len();
        self.scanned = self.start;
        self.discarding = None;
        rest
    }

    /// After [`Self::next_line`] returned `None`: the length so far of the unterminated line
    /// if it is already over the limit (its terminator may still come). A client uses it to
    /// stop waiting for a line it will refuse anyway; a server waits for the terminator and
    /// answers then.
    pub fn overlong(&self) -> Option<usize> {
        self.discarding
            .map(|dropped| dropped + self.pending().len())
    }

    /// Throws away every byte received but not handed out (a server about to start TLS:
    /// what the client sent in clear after STLS/STARTTLS must never be read as a command,
    /// CVE-2011-0411). Returns how many octets were dropped. [`Self::position`] still counts
    /// them, as they were on the wire.
    pub fn discard_pending(&mut self) -> usize {
        let dropped = self.pending().len() + self.discarding.take().unwrap_or(0);
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        dropped
    }

    /// Whether no unconsumed bytes are buffered.
    pub fn is_empty(&self) -> bool {
        self.pending().is_empty() && self.discarding.is_none()
    }

    /// The next complete line, or `None` if more bytes are needed.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            let unscanned = self.buf.get(self.scanned..).unwrap_or_default();
            let Some(lf_at) = unscanned.iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                self.drop_overflow();
                return None;
            };
            let lf = self.scanned + lf_at;
            let cr_before = lf > self.start && self.buf.get(lf - 1) == Some(&b'\r');
            if !cr_before && self.terminator == Terminator::CrLf {
                // A bare LF inside a CRLF-only line: keep looking.
                self.scanned = lf + 1;
                self.drop_overflow();
                continue;
            }
            let text_end = if cr_before { lf - 1 } else { lf };
            let text = self.buf.get(self.start..text_end).unwrap_or_default();
            let line = match self.discarding.take() {
                Some(dropped) => Line::TooLong {
                    len: dropped + text.len(),
                },
                None if text.len() > self.max_len => Line::TooLong { len: text.len() },
                None => Line::Complete {
                    text: text.to_vec(),
                    crlf: cr_before,
                },
            };
            self.start = lf + 1;
            self.scanned = self.start;
            return Some(line);
        }
    }

    /// If the unterminated line already exceeds the limit, drops its bytes (all but a trailing
    /// CR, which may begin the terminator) and remembers how many were dropped.
    fn drop_overflow(&mut self) {
        let held = self.scanned - self.start;
        let ends_in_cr = held > 0 && self.buf.get(self.scanned - 1) == Some(&b'\r');
        let drop = held - usize::from(ends_in_cr);
        if drop == 0 || (drop <= self.max_len && self.discarding.is_none()) {
            return;
        }
        *self.discarding.get_or_insert(0) += drop;
        self.buf.drain(self.start..self.start + drop);
        self.scanned -= drop;
    }
}

/// A client machine's input: the server's bytes cut into lines, and whether the stream
/// ended (the server closed) or the machine stopped reading (it broke the protocol).
#[derive(Debug, Clone)]
pub struct ClientInput {
    pub buf: LineBuffer,
    /// The server closed the connection.
    pub eof: bool,
    /// No more input is processed: the connection closed or the server broke the protocol.
    pub ended: bool,
    /// Where the line being handled began in the server's byte stream.
    pub line_start: u64,
    /// The server accepted STLS/STARTTLS: nothing more is read in clear until the driver
    /// says the handshake is done ([`ClientInput::tls_started`]).
    tls_pending: bool,
    /// Octets the server sent in clear after its go-ahead, thrown away unread.
    discarded_before_tls: usize,
}

impl ClientInput {
    /// The server accepted STLS (RFC 2595 section 4) or STARTTLS (RFC 3207 section 4): the
    /// handshake starts right after the go-ahead, and whatever the server sent after it in
    /// clear is dropped unread; so is anything handed over before [`ClientInput::tls_started`].
    pub fn await_tls(&mut self) {
        self.tls_pending = true;
        self.discarded_before_tls = self.buf.discard_pending();
    }

    /// Whether the TLS handshake is due (see [`ClientInput::await_tls`]).
    pub fn tls_pending(&self) -> bool {
        self.tls_pending
    }

    /// How many octets the server sent in clear after its go-ahead, thrown away.
    pub fn discarded_before_tls(&self) -> usize {
        self.discarded_before_tls
    }

    /// The handshake is done: lines are read again (now from inside TLS). The start of a
    /// line that came in clear must not be finished by protected bytes: it is dropped.
    pub fn tls_started(&mut self) {
        if self.tls_pending {
            self.discarded_before_tls = self
                .discarded_before_tls
                .saturating_add(self.buf.discard_pending());
        }
        self.tls_pending = false;
    }

    /// While the handshake is due: throws away the line being handled (an over-long one:
    /// what is held of it; dropping it is what moves the reading on) and counts it, so it
    /// is never taken for a reply. Returns whether it did.
    pub fn drop_line_before_tls(&mut self, line: &Line) -> bool {
        if !self.tls_pending {
            return false;
        }
        let len = match line {
            Line::TooLong { .. } => self.buf.discard_pending(),
            Line::Complete { .. } => {
                let len = self.buf.position().saturating_sub(self.line_start);
                usize::try_from(len).unwrap_or(usize::MAX)
            }
        };
        self.discarded_before_tls = self.discarded_before_tls.saturating_add(len);
        true
    }

    /// Input cut by `buf`.
    pub fn new(buf: LineBuffer) -> Self {
        Self {
            buf,
            eof: false,
            ended: false,
            line_start: 0,
            tls_pending: false,
            discarded_before_tls: 0,
        }
    }

    /// Buffers bytes from the server (none once the stream ended).
    pub fn receive(&mut self, bytes: &[u8]) {
        if !self.ended && !self.eof {
            self.buf.push(bytes);
        }
    }
}

/// A line-based client machine (POP3's, SMTP's): what it does with each line and with the
/// end of the stream. Every such machine is a [`Machine`] through the one loop below.
pub trait LineReader {
    /// The protocol spoken.
    const PROTOCOL: Protocol;
    /// A complete reply.
    type Reply;
    /// Why the session failed.
    type Error;
    /// The queue of outputs and the input.
    #[allow(clippy::type_complexity)] // an output queue and the input, nothing more
    fn parts(&mut self) -> (&mut VecDeque<ReaderOutput<Self>>, &mut ClientInput);
    /// Handles one line from the server (or a line over the limit).
    fn handle_line(&mut self, line: Line);
    /// The server closed the connection and every line before was handled.
    fn handle_eof(&mut self);
}

/// What a line-based client machine hands out: bytes to write, replies, its one error.
pub type ReaderOutput<M> =
    Output<Result<<M as LineReader>::Reply, <M as LineReader>::Error>, Infallible>;

impl<M: LineReader> Machine for M {
    const PROTOCOL: Protocol = M::PROTOCOL;
    type Event = Result<M::Reply, M::Error>;
    type Request = Infallible;

    fn receive(&mut self, bytes: &[u8]) {
        self.parts().1.receive(bytes);
    }

    fn receive_eof(&mut self) {
        self.parts().1.eof = true;
    }

    /// Queued outputs first, then one line at a time, until the machine needs more input
    /// or has ended. An over-long line is refused as soon as it is over the limit, without
    /// waiting for an end that may never come.
    fn poll_output(&mut self) -> Option<ReaderOutput<M>> {
        loop {
            let (outputs, input) = self.parts();
            if let Some(out) = outputs.pop_front() {
                return Some(out);
            }
            if input.ended {
                return None;
            }
            input.line_start = input.buf.position();
            match input.buf.next_line() {
                Some(line) => self.handle_line(line),
                None if input.eof => self.handle_eof(),
                None => match input.buf.overlong() {
                    Some(len) => self.handle_line(Line::TooLong { len }),
                    None => return None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_every_byte_handed_out() {
        let mut b = LineBuffer::new(4, Terminator::CrLfOrLf);
        assert_eq!(b.position(), 0);
        b.push(b"ab\r\ncd");
        assert_eq!(b.position(), 0, "nothing handed out yet");
        assert!(b.next_line().is_some());
        assert_eq!(b.position(), 4, "\"ab\" and its CRLF");
        assert_eq!(b.next_line(), None);
        assert_eq!(b.position(), 4, "an unfinished line is not counted");
        b.push(b"efghij\nk\n");
        assert_eq!(b.next_line(), Some(Line::TooLong { len: 8 }));
        assert_eq!(b.position(), 13, "a dropped over-long line counts in full");
        assert!(b.next_line().is_some());
        assert_eq!(b.position(), 15);
    }

    #[test]
    fn an_overlong_line_is_known_before_its_end() {
        let mut b = LineBuffer::new(10, Terminator::CrLfOrLf);
        b.push(b"0123456789");
        assert_eq!(b.next_line(), None);
        assert_eq!(b.overlong(), None, "at the limit, not over it");
        b.push(b"abcdef");
        assert_eq!(b.next_line(), None);
        assert_eq!(b.overlong(), Some(16));
        b.push(b"gh\r\nok\r\n");
        assert_eq!(b.next_line(), Some(Line::TooLong { len: 18 }));
        assert_eq!(b.overlong(), None);
    }

    fn lines(input: &[u8], chunk: usize, max: usize, t: Terminator) -> Vec<Line> {
        let mut b = LineBuffer::new(max, t);
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            b.push(piece);
            while let Some(l) = b.next_line() {
                out.push(l);
            }
        }
        out
    }

    fn complete(s: &str, crlf: bool) -> Line {
        Line::Complete {
            text: s.as_bytes().to_vec(),
            crlf,
        }
    }

    #[test]
    fn splits_crlf_and_lf_lines_at_every_chunk_size() {
        let input = b"USER mrose\r\nPASS x\nSTAT\r\npartial";
        for chunk in [1, 2, 3, 4, 8, 16, 512] {
            assert_eq!(
                lines(input, chunk, 100, Terminator::CrLfOrLf),
                vec![
                    complete("USER mrose", true),
                    complete("PASS x", false),
                    complete("STAT", true)
                ],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn crlf_only_keeps_bare_lf_inside_the_line() {
        let input = b"a\nb\r\n.\n.\r\n";
        for chunk in [1, 2, 5, 512] {
            assert_eq!(
                lines(input, chunk, 100, Terminator::CrLf),
                vec![complete("a\nb", true), complete(".\n.", true)],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn over_long_line_is_reported_once_and_not_buffered() {
        let mut input = vec![b'x'; 1_000_000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        for chunk in [1, 7, 4096, 2_000_000] {
            let mut b = LineBuffer::new(512, Terminator::CrLfOrLf);
            let mut out = Vec::new();
            for piece in input.chunks(chunk) {
                b.push(piece);
                while let Some(l) = b.next_line() {
                    out.push(l);
                }
                assert!(b.pending().len() <= 512 + 1, "buffer grew");
            }
            assert_eq!(
                out,
                vec![Line::TooLong { len: 1_000_000 }, complete("NOOP", true)],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn line_of_exactly_the_limit_is_accepted() {
        let mut input = vec![b'a'; 10];
        input.extend_from_slice(b"\r\n");
        input.extend(vec![b'b'; 11]);
        input.extend_from_slice(b"\r\n");
        for chunk in [1, 3, 512] {
            assert_eq!(
                lines(&input, chunk, 10, Terminator::CrLf),
                vec![complete("aaaaaaaaaa", true), Line::TooLong { len: 11 }],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn nul_and_non_utf8_bytes_pass_through() {
        let input = b"\x00\xff\xfe\r\n";
        assert_eq!(
            lines(input, 1, 100, Terminator::CrLf),
            vec![Line::Complete {
                text: vec![0, 0xff, 0xfe],
                crlf: true
            }]
        );
    }

    #[test]
    fn pending_returns_unconsumed_bytes() {
        let mut b = LineBuffer::new(100, Terminator::CrLf);
        b.push(b"one\r\ntwo");
        assert_eq!(b.next_line(), Some(complete("one", true)));
        assert_eq!(b.next_line(), None);
        assert_eq!(b.pending(), b"two");
    }
}
