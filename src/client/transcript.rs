//! The session transcript: every line the client writes or reads, as `C:` and `S:` lines,
//! published as it happens so the window (or a terminal log) can show it.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::proto::Direction;
use crate::proto::line::{Line, LineBuffer, Terminator};

/// Who a transcript line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A line that crossed the wire: `C:` from the client, `S:` from the server.
    Wire(Direction),
    /// Said by mailwire about the connection (`--`): connected, closed, timed out.
    Note,
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptEntry {
    /// When the line was sent, received or noted.
    pub at: SystemTime,
    /// Who it comes from.
    pub origin: Origin,
    /// The line without its line end (invalid UTF-8 replaced).
    pub text: String,
}

impl fmt::Display for TranscriptEntry {
    /// `C: STAT`, `S: +OK 2 320`, `-- connected to 127.0.0.1:1110`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.origin {
            Origin::Wire(direction) => direction.tag(),
            Origin::Note => "--",
        };
        write!(f, "{tag} {}", self.text)
    }
}

type Callback = Arc<dyn Fn(TranscriptEntry) + Send + Sync>;

/// Where transcript lines go: nowhere, a crossbeam channel, or a callback. Cheap to clone.
#[derive(Clone, Default)]
pub struct Transcript(Option<Callback>);

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.0.is_some() {
            "publishing"
        } else {
            "none"
        };
        write!(f, "Transcript({kind})")
    }
}

impl Transcript {
    /// Lines are dropped.
    pub fn none() -> Self {
        Self(None)
    }

    /// Lines are sent on `tx`; sending never blocks, and a closed channel drops them.
    pub fn channel(tx: crossbeam_channel::Sender<TranscriptEntry>) -> Self {
        Self::callback(move |entry| {
            let _ = tx.send(entry);
        })
    }

    /// Lines are handed to `f` as they happen (on the thread that runs the connection).
    pub fn callback(f: impl Fn(TranscriptEntry) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    /// Publishes one line.
    pub fn publish(&self, origin: Origin, text: impl Into<String>) {
        if let Some(f) = &self.0 {
            f(TranscriptEntry {
                at: SystemTime::now(),
                origin,
                text: text.into(),
            });
        }
    }
}

/// Cuts the bytes of one direction into transcript lines, whatever the chunks.
#[derive(Debug, Clone)]
pub(crate) struct LineSplitter {
    lines: LineBuffer,
    direction: Direction,
}

/// Lines longer than this are shown as their length only.
const MAX_SHOWN_LINE: usize = 64 * 1024;

impl LineSplitter {
    pub(crate) fn new(direction: Direction) -> Self {
        Self {
            lines: LineBuffer::new(MAX_SHOWN_LINE, Terminator::CrLfOrLf),
            direction,
        }
    }

    /// Publishes every line the bytes complete.
    pub(crate) fn push(&mut self, bytes: &[u8], transcript: &Transcript) {
        if transcript.0.is_none() {
            return;
        }
        self.lines.push(bytes);
        while let Some(line) = self.lines.next_line() {
            let text = match line {
                Line::Complete { text, .. } => String::from_utf8_lossy(&text).into_owned(),
                Line::TooLong { len } => format!("<a line of {len} octets>"),
            };
            transcript.publish(Origin::Wire(self.direction), text);
        }
    }

    /// Publishes a last line without a line end, if any.
    pub(crate) fn flush(&mut self, transcript: &Transcript) {
        let rest = self.lines.pending().to_vec();
        if !rest.is_empty() {
            self.lines = LineBuffer::new(MAX_SHOWN_LINE, Terminator::CrLfOrLf);
            let text = format!("{} (no line end)", String::from_utf8_lossy(&rest));
            transcript.publish(Origin::Wire(self.direction), text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_published_whatever_the_chunks() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let transcript = Transcript::channel(tx);
        let mut split = LineSplitter::new(Direction::ServerToClient);
        for piece in b"+OK hi\r\n+OK 2 messages\r\n1 1".chunks(3) {
            split.push(piece, &transcript);
        }
        split.flush(&transcript);
        let lines: Vec<String> = rx.try_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            vec!["S: +OK hi", "S: +OK 2 messages", "S: 1 1 (no line end)"]
        );
    }
}
