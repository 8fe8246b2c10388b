//! The plain-text transcript of a recorded run: each step's caption, its `C:`/`S:` lines,
//! and after each command or reply the (1-based, Wireshark-numbered) frames that carried
//! it, so a reader can find it in the exported pcapng.
//!
//! ```text
//! # RFC 1939: the example session
//! capture: capture stopped, 0 packets dropped (libpcap counted 82 received; ...)
//!
//! ## step 1: The client opens a TCP connection. ...
//!    RFC 1939 section 4
//!    TCP handshake: SYN, SYN-ACK, ACK  [frames 1-3]
//! S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>  [frame 4]
//! ```

use std::path::Path;

use super::{ExportError, connection_notes, exchange_frames, frame_list, frames_by_step, visible};
use crate::timeline::Timeline;

/// The transcript as text (see the module documentation).
pub fn transcript_text(timeline: &Timeline) -> String {
    let mut out = format!("# {}\n", visible(&timeline.title));
    let status = timeline.capture_status();
    out.push_str(&format!("capture: {}\n", status.describe()));
    if timeline.packets.is_empty() {
        out.push_str("(no frames were captured, so the lines below have no frame numbers)\n");
    }
    let by_step = frames_by_step(timeline);
    for (s, step) in timeline.steps.iter().enumerate() {
        out.push_str(&format!(
            "\n## step {} [{}]: {}\n",
            s + 1,
            visible(&step.outcome.session),
            visible(&step.caption)
        ));
        if let Some(rfc) = &step.rfc {
            out.push_str(&format!("   {}\n", visible(rfc)));
        }
        let (opening, closing) =
            connection_notes(timeline, by_step.get(s).map_or(&[][..], Vec::as_slice));
        for note in &opening {
            let (text, frames) = (note.text(), frame_list(&note.frames));
            out.push_str(&format!("   {text}  [{frames}]\n"));
        }
        for (e, exchange) in step.outcome.exchanges.iter().enumerate() {
            let tag = exchange.direction().tag();
            let frames = exchange_frames(timeline, s, e);
            let carried = if frames.is_empty() {
                if timeline.packets.is_empty() {
                    String::new()
                } else {
                    "  [not captured]".to_string()
                }
            } else {
                format!("  [{}]", frame_list(&frames))
            };
            out.push_str(&format!("{tag} {}{carried}\n", visible(&exchange.line)));
            for line in &exchange.more {
                out.push_str(&format!("{tag}   {}\n", visible(line)));
            }
        }
        for note in &closing {
            let (text, frames) = (note.text(), frame_list(&note.frames));
            out.push_str(&format!("   {text}  [{frames}]\n"));
        }
        if let Err(why) = &step.outcome.check {
            out.push_str(&format!("!! FAILED: {}\n", visible(&why.to_string())));
        }
    }
    out
}

/// Writes [`transcript_text`] to `path`.
pub fn write_transcript(timeline: &Timeline, path: &Path) -> Result<(), ExportError> {
    super::write_file(path, transcript_text(timeline).as_bytes())
}
