//! The sequence diagram as standalone SVG: one lifeline per server (POP3 and SMTP apart)
//! and per client connection, labelled with address:port ([`super::lifelines`], the same
//! as the window's; only those a step uses, so no column is empty), one labelled arrow per
//! command (client to server) and per reply (server to client), TCP set-up and tear-down as grey arrows, and
//! each step as a band with its caption. Under each arrow: the frames that carried it, its
//! size and its time from the first frame.
//!
//! Every piece of text (captions, commands, replies: much of it from the network) is
//! XML-escaped, and control characters are shown as their Unicode pictures. The file uses a
//! monospace font at print-friendly sizes and needs nothing else to render.

use std::fmt::Write as _;
use std::path::Path;

use super::lifelines::{Lifelines, Side};
use super::{
    ConnectionNote, ExportError, connection_notes, exchange_frames, frame_list, frames_by_step,
    shorten, visible,
};
use crate::proto::Direction;
use crate::timeline::Timeline;

const MARGIN: f64 = 24.0;
/// From a client lifeline to the server right of it (room for the arrows' labels).
const TO_SERVER: f64 = 420.0;
/// Between two clients, or from a server to the next server's first client.
const BESIDE: f64 = 210.0;
/// The first lifeline's distance from the margin.
const LIFELINE_INSET: f64 = 70.0;
/// The widest participant box.
const BOX_WIDTH: f64 = 200.0;
/// Approximate advance of one monospace character, per pixel of font size.
const CHAR_ADVANCE: f64 = 0.6;
const LABEL_SIZE: f64 = 13.0;
const CAPTION_SIZE: f64 = 14.0;
const TITLE_SIZE: f64 = 20.0;
/// Height of a participant box (two lines).
const ACTOR_HEIGHT: f64 = 50.0;

const CLIENT_COLOR: &str = "#1d4ed8";
const SERVER_COLOR: &str = "#15803d";
const ERROR_COLOR: &str = "#b91c1c";
const TCP_COLOR: &str = "#6b7280";

/// XML-escapes text (after making control characters visible), for element content and
/// attribute values alike.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in visible(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Splits text into lines of at most `width` characters, at spaces where possible.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        loop {
            let used = line.chars().count();
            let need = word.chars().count() + usize::from(used > 0);
            if used + need <= width {
                if used > 0 {
                    line.push(' ');
                }
                line.push_str(&word);
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a line: cut it.
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// The columns: each lifeline a step uses, with its x and its two-line label.
struct Columns {
    /// (lifeline index, x, label, side)
    columns: Vec<(usize, f64, String, Side)>,
}

impl Columns {
    fn of(lifelines: &Lifelines) -> Columns {
        let mut columns = Vec::new();
        let mut x = MARGIN + LIFELINE_INSET;
        let mut previous: Option<Side> = None;
        for l in lifelines.used_by_steps() {
            let Some(line) = lifelines.lines.get(l) else {
                continue;
            };
            if let Some(p) = previous {
                x += match (p, line.side) {
                    (Side::Client, Side::Server) => TO_SERVER,
                    _ => BESIDE,
                };
            }
            let address = line.address();
            let label = if address.is_empty() {
                line.title()
            } else {
                format!("{}\n{address}", line.title())
            };
            columns.push((l, x, label, line.side));
            previous = Some(line.side);
        }
        Columns { columns }
    }

    /// The x of a lifeline (the first column's when it has none).
    fn x(&self, lifeline: usize) -> f64 {
        self.columns
            .iter()
            .find(|(l, ..)| *l == lifeline)
            .or(self.columns.first())
            .map_or(MARGIN + LIFELINE_INSET, |c| c.1)
    }

    /// Right of the last lifeline.
    fn right(&self) -> f64 {
        self.columns.last().map_or(0.0, |c| c.1) + LIFELINE_INSET
    }
}

/// Whether a reply reports an error (`-ERR`, SMTP 4xx/5xx).
fn is_error_reply(line: &str) -> bool {
    line.starts_with("-ERR") || line.starts_with('4') || line.starts_with('5')
}

/// Writes an arrow from `x1` to `x2` at height `y` with its label above and a note below.
#[allow(clippy::too_many_arguments)]
fn arrow(
    out: &mut String,
    x1: f64,
    x2: f64,
    y: f64,
    color: &str,
    label: &str,
    full: &str,
    note: &str,
    dashed: bool,
) {
    let marker = marker_id(color);
    let dash = if dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let mid = (x1 + x2) / 2.0;
    let _ = writeln!(out, "<g>");
    let _ = writeln!(out, "  <title>{}</title>", xml_escape(full));
    let _ = writeln!(
        out,
        "  <text class=\"label\" x=\"{mid:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{color}\">{}</text>",
        y - 6.0,
        xml_escape(label)
    );
    let _ = writeln!(
        out,
        "  <line x1=\"{x1:.1}\" y1=\"{y:.1}\" x2=\"{x2:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"1.6\"{dash} marker-end=\"url(#{marker})\"/>"
    );
    if !note.is_empty() {
        let _ = writeln!(
            out,
            "  <text class=\"note\" x=\"{mid:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y + 14.0,
            xml_escape(note)
        );
    }
    let _ = writeln!(out, "</g>");
}

fn marker_id(color: &str) -> &'static str {
    match color {
        CLIENT_COLOR => "head-client",
        SERVER_COLOR => "head-server",
        ERROR_COLOR => "head-error",
        _ => "head-tcp",
    }
}

/// A box with one or two lines of text, centred on `x`.
fn participant(out: &mut String, x: f64, y: f64, label: &str, color: &str) {
    let lines: Vec<&str> = label.lines().collect();
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64
        * CHAR_ADVANCE
        * LABEL_SIZE
        + 20.0;
    let width = width.clamp(120.0, BOX_WIDTH);
    let height = 16.0 + 17.0 * lines.len() as f64;
    let _ = writeln!(
        out,
        "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" rx=\"6\" fill=\"#ffffff\" stroke=\"{color}\" stroke-width=\"1.6\"/>",
        x - width / 2.0
    );
    for (i, line) in lines.iter().enumerate() {
        let class = if i == 0 { "actor" } else { "note" };
        let _ = writeln!(
            out,
            "<text class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{color}\">{}</text>",
            y + 22.0 + 17.0 * i as f64,
            xml_escape(line)
        );
    }
}

/// The sequence diagram of the whole timeline as a standalone SVG document.
pub fn sequence_svg(timeline: &Timeline) -> String {
    let lifelines = Lifelines::of(timeline);
    let columns = Columns::of(&lifelines);
    let width = (columns.right() + MARGIN).max(640.0);
    let text_width = width - 2.0 * MARGIN - 16.0;
    let caption_chars = (text_width / (CHAR_ADVANCE * CAPTION_SIZE)) as usize;
    let t0 = timeline.packets.first().map(|p| p.ts_micros);

    // Header: the title (at most two lines), the capture status, the participants.
    let title_lines: Vec<String> = wrap(
        &timeline.title,
        (text_width / (CHAR_ADVANCE * TITLE_SIZE)) as usize,
    )
    .into_iter()
    .take(2)
    .collect();
    let status_y = 10.0 + 24.0 * title_lines.len() as f64 + 18.0;
    let actors_y = status_y + 16.0;
    let lifelines_top = actors_y + ACTOR_HEIGHT;
    let top = lifelines_top + 20.0;

    let mut bands = String::new();
    let mut body = String::new();
    // Where lifelines are drawn: from the participants to the first band, then in each
    // band below its caption.
    let mut segments: Vec<(f64, f64)> = vec![(lifelines_top, top)];
    let mut y = top;
    let by_step = frames_by_step(timeline);
    for (s, step) in timeline.steps.iter().enumerate() {
        let (client, server) = lifelines.by_step.get(s).copied().unwrap_or((0, 0));
        let (cx, sx) = (columns.x(client), columns.x(server));
        // An arrow's label may take the span between its lifelines.
        let label_chars =
            (((sx - cx).abs() - 16.0).max(120.0) / (CHAR_ADVANCE * LABEL_SIZE)) as usize;
        let band_top = y;
        y += 8.0;
        let caption = format!("Step {}: {}", s + 1, step.caption);
        for line in wrap(&caption, caption_chars) {
            y += 18.0;
            let _ = writeln!(
                body,
                "<text class=\"caption\" x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
                MARGIN + 8.0,
                xml_escape(&line)
            );
        }
        if let Some(rfc) = &step.rfc {
            y += 16.0;
            let _ = writeln!(
                body,
                "<text class=\"rfc\" x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
                MARGIN + 8.0,
                xml_escape(rfc)
            );
        }
        y += 8.0;
        // Lifelines are drawn between the caption and the band's end.
        let arrows_top = y;
        let (opening, closing) =
            connection_notes(timeline, by_step.get(s).map_or(&[][..], Vec::as_slice));
        let tcp_note = |body: &mut String, y: &mut f64, note: &ConnectionNote| {
            *y += 30.0;
            let (x1, x2) = if note.sent_by_server_only() {
                (sx, cx)
            } else {
                (cx, sx)
            };
            let (text, frames) = (note.text(), &note.frames);
            arrow(
                body,
                x1,
                x2,
                *y,
                TCP_COLOR,
                &text,
                &text,
                &frame_list(frames),
                true,
            );
            *y += 8.0;
        };
        for note in &opening {
            tcp_note(&mut body, &mut y, note);
        }
        for (e, exchange) in step.outcome.exchanges.iter().enumerate() {
            y += 30.0;
            let (x1, x2, color) = match exchange.direction() {
                Direction::ClientToServer => (cx, sx, CLIENT_COLOR),
                Direction::ServerToClient if is_error_reply(&exchange.line) => {
                    (sx, cx, ERROR_COLOR)
                }
                Direction::ServerToClient => (sx, cx, SERVER_COLOR),
            };
            let frames = exchange_frames(timeline, s, e);
            let mut note = Vec::new();
            if !frames.is_empty() {
                note.push(frame_list(&frames));
            }
            note.push(format!("{} octets", exchange.octets));
            if exchange.has_body() {
                note.push(format!("+{} lines", exchange.more.len()));
            }
            let when = frames
                .first()
                .and_then(|&f| timeline.packets.get(f))
                .zip(t0)
                .map(|(p, t0)| p.ts_micros.saturating_sub(t0) as f64 / 1e6);
            if let Some(t) = when {
                note.push(format!("t+{t:.4} s"));
            }
            let label = shorten(&exchange.line, label_chars);
            arrow(
                &mut body,
                x1,
                x2,
                y,
                color,
                &label,
                &exchange.line,
                &note.join(" · "),
                false,
            );
            y += 8.0;
        }
        for note in &closing {
            tcp_note(&mut body, &mut y, note);
        }
        if let Err(why) = &step.outcome.check {
            for line in wrap(&format!("✗ {why}"), caption_chars) {
                y += 18.0;
                let _ = writeln!(
                    body,
                    "<text class=\"failed\" x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
                    MARGIN + 8.0,
                    xml_escape(&line)
                );
            }
        }
        y += 16.0;
        segments.push((arrows_top, y));
        let fill = if s % 2 == 0 { "#f3f5f9" } else { "#ffffff" };
        let _ = writeln!(
            bands,
            "<rect x=\"{:.1}\" y=\"{band_top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" stroke=\"#d5dbe5\"/>",
            MARGIN,
            width - 2.0 * MARGIN,
            y - band_top
        );
    }
    let height = y + MARGIN;

    let mut out = String::new();
    let _ = writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\">"
    );
    let _ = writeln!(out, "<title>{}</title>", xml_escape(&timeline.title));
    let _ = writeln!(
        out,
        "<style>\n  text {{ font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; fill: #111827; }}\n  .title {{ font-size: 20px; font-weight: bold; }}\n  .status {{ font-size: 12px; fill: #4b5563; }}\n  .caption {{ font-size: {CAPTION_SIZE}px; font-weight: bold; }}\n  .rfc {{ font-size: 12px; font-style: italic; fill: #4b5563; }}\n  .label {{ font-size: {LABEL_SIZE}px; paint-order: stroke; stroke: #ffffff; stroke-width: 3px; }}\n  .actor {{ font-size: {LABEL_SIZE}px; font-weight: bold; }}\n  .note {{ font-size: 11px; fill: #4b5563; }}\n  .failed {{ font-size: 13px; font-weight: bold; fill: {ERROR_COLOR}; }}\n</style>"
    );
    let _ = writeln!(out, "<defs>");
    for color in [CLIENT_COLOR, SERVER_COLOR, ERROR_COLOR, TCP_COLOR] {
        let _ = writeln!(
            out,
            "  <marker id=\"{}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{color}\"/></marker>",
            marker_id(color)
        );
    }
    let _ = writeln!(out, "</defs>");
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>"
    );
    let mut title_y = 10.0;
    for line in &title_lines {
        title_y += 24.0;
        let _ = writeln!(
            out,
            "<text class=\"title\" x=\"{MARGIN:.1}\" y=\"{title_y:.1}\">{}</text>",
            xml_escape(line)
        );
    }
    let _ = writeln!(
        out,
        "<text class=\"status\" x=\"{MARGIN:.1}\" y=\"{status_y:.1}\">{}</text>",
        xml_escape(&shorten(
            &timeline.capture_status().describe(),
            caption_chars + 20
        ))
    );
    out.push_str(&bands);
    for (_, x, label, side) in &columns.columns {
        let color = match side {
            Side::Client => CLIENT_COLOR,
            Side::Server => SERVER_COLOR,
        };
        for (y1, y2) in &segments {
            let _ = writeln!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{y1:.1}\" x2=\"{x:.1}\" y2=\"{y2:.1}\" stroke=\"#9ca3af\" stroke-width=\"1.2\" stroke-dasharray=\"4 4\"/>"
            );
        }
        participant(&mut out, *x, actors_y, label, color);
    }
    out.push_str(&body);
    let _ = writeln!(out, "</svg>");
    out
}

/// Writes [`sequence_svg`] to `path`.
pub fn write_svg(timeline: &Timeline, path: &Path) -> Result<(), ExportError> {
    super::write_file(path, sequence_svg(timeline).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            xml_escape("MAIL FROM:<a&b@c> \"x\" 'y'\r"),
            "MAIL FROM:&lt;a&amp;b@c&gt; &quot;x&quot; &apos;y&apos;\u{240d}"
        );
    }

    #[test]
    fn wrapping_keeps_words_and_cuts_long_ones() {
        assert_eq!(wrap("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghijkl", 8), vec!["abcdefgh", "ijkl"]);
        assert_eq!(wrap("", 8), vec![""]);
    }
}
