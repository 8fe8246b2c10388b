//! The line splitter (`proto::line::LineBuffer`) on any bytes, cut into chunks the input
//! chooses, against a plain model that splits the whole input at once. Invariants: the same
//! lines (and over-long lines with the same lengths) whatever the chunking; `position()`
//! equals the bytes handed out (every line with its terminator); an over-long line is never
//! buffered whole: while no line is complete, at most the limit and a CR are held.
//!
//! Input: `[flags][n][n chunk sizes][bytes]` (see `support.rs`). Flags: bit 0 the
//! terminator (CRLF only, or CRLF or a bare LF), bits 1-7 the line limit (0 to 127).
#![no_main]

#[path = "support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;
use mailwire::proto::line::{Line, LineBuffer, Terminator};
use support::Script;

/// The whole input split at once: each line (or over-long line) with the offset after its
/// terminator.
fn model(bytes: &[u8], max: usize, terminator: Terminator) -> Vec<(Line, u64)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let crlf = i > start && bytes.get(i - 1) == Some(&b'\r');
        if !crlf && terminator == Terminator::CrLf {
            continue;
        }
        let text = bytes.get(start..if crlf { i - 1 } else { i }).unwrap_or_default();
        let line = if text.len() > max {
            Line::TooLong { len: text.len() }
        } else {
            Line::Complete {
                text: text.to_vec(),
                crlf,
            }
        };
        out.push((line, i as u64 + 1));
        start = i + 1;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some(mut script) = Script::parse(data) else {
        return;
    };
    let terminator = if script.flags & 1 == 0 {
        Terminator::CrLf
    } else {
        Terminator::CrLfOrLf
    };
    let max = usize::from(script.flags >> 1);
    let expected = model(script.payload, max, terminator);
    let mut buf = LineBuffer::new(max, terminator);
    let mut got = Vec::new();
    let mut pushed = 0u64;
    while let Some((chunk, _)) = script.next_chunk() {
        buf.push(chunk);
        pushed += chunk.len() as u64;
        loop {
            let before = buf.position();
            match buf.next_line() {
                Some(line) => {
                    let after = buf.position();
                    assert!(after > before, "position did not advance past a line");
                    got.push((line, after));
                }
                None => {
                    assert_eq!(buf.position(), before, "position moved without a line");
                    assert!(
                        buf.pending().len() <= max + 1,
                        "{} bytes held of an unfinished line, limit {max}",
                        buf.pending().len()
                    );
                    break;
                }
            }
        }
        assert!(buf.position() <= pushed);
    }
    assert_eq!(got, expected);
    let handed = expected.last().map_or(0, |(_, end)| *end);
    assert_eq!(buf.position(), handed, "position is not the bytes handed out");
});
