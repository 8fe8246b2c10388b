//! "Follow stream", as in Wireshark: one TCP connection's bytes, client's and server's, in
//! the order they were captured, as lines of text coloured by direction.
//!
//! The bytes come from the frames: each direction's [`Stream`] keeps which frame carried
//! which stream bytes ([`StreamPiece`]: the analyzer keeps no bytes), and the timeline keeps
//! the frames. Stream bytes no frame carried are a gap, shown as a gap (never filled). Lines
//! inside a dot-terminated block — a POP3 multi-line reply after its status line (RFC 1939
//! section 3), SMTP mail data (RFC 5321 section 4.1.1.4) — are marked: the lone "." that
//! ends it, a line that starts ".." (a dot added on the wire, which the receiver removes;
//! RFC 1939 section 3, RFC 5321 section 4.5.2), and a line starting with a single "." that
//! was not stuffed (the receiver removes that dot too).
//!
//! [`FollowCache`] builds the text once per connection and change: on the window's thread
//! for a small connection, on a thread of its own for a large one; the view lays out only
//! the rows on screen.
//!
//! [`Stream`]: crate::decode::stream::Stream
//! [`StreamPiece`]: crate::decode::stream::StreamPiece

use std::ops::Range;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use eframe::egui;
use eframe::egui::{RichText, ScrollArea, Ui};

use super::state::UiAction;
use super::theme::Palette;
use crate::decode::UnitKind;
use crate::proto::{Direction, Protocol};
use crate::timeline::Timeline;

/// The connection followed and how it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowState {
    /// The connection (index into the analyzer's).
    pub conn: usize,
    /// Show each line's end (`\r\n`, a bare `\n`).
    pub line_ends: bool,
}

/// What a line is, beyond its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineMark {
    /// An ordinary line.
    Plain,
    /// The lone "." that ends a POP3 multi-line reply or SMTP mail data.
    Terminator(Protocol),
    /// A line that starts ".." inside such a block: one dot was added on the wire.
    Stuffed(Protocol),
    /// A line that starts with a single "." (and more) inside such a block: it should have
    /// been stuffed; the receiver removes this dot.
    NotStuffed(Protocol),
    /// Stream bytes no captured frame carried.
    Gap { stream: Range<u64> },
}

impl LineMark {
    /// What the mark means in a few words, with the RFC section that says so (`None` for a
    /// plain line); [`LineMark::explain`] says it in full.
    pub fn meaning(&self) -> Option<String> {
        Some(match self {
            LineMark::Plain => return None,
            LineMark::Terminator(Protocol::Pop3) => {
                "end of the multi-line reply (RFC 1939 section 3)".into()
            }
            LineMark::Terminator(Protocol::Smtp) => {
                "end of the mail data (RFC 5321 section 4.1.1.4)".into()
            }
            LineMark::Stuffed(Protocol::Pop3) => {
                "byte-stuffed: the client removes one \".\" (RFC 1939 section 3)".into()
            }
            LineMark::Stuffed(Protocol::Smtp) => {
                "dot-stuffed: the server removes one \".\" (RFC 5321 section 4.5.2)".into()
            }
            LineMark::NotStuffed(Protocol::Pop3) => {
                "not byte-stuffed: the client removes this \".\" (RFC 1939 section 3)".into()
            }
            LineMark::NotStuffed(Protocol::Smtp) => {
                "not dot-stuffed: the server removes this \".\" (RFC 5321 section 4.5.2)".into()
            }
            LineMark::Gap { stream } => format!(
                "{} bytes not captured (stream bytes {}..{}): a gap, not filled in",
                stream.end - stream.start,
                stream.start,
                stream.end
            ),
        })
    }

    /// What the mark means, in full (for the line's hover text).
    pub fn explain(&self) -> Option<&'static str> {
        Some(match self {
            LineMark::Plain | LineMark::Gap { .. } => return None,
            LineMark::Terminator(Protocol::Pop3) => {
                "A multi-line reply ends with a line holding only \".\" (CRLF.CRLF); it is \
                 not part of the data (RFC 1939 section 3)."
            }
            LineMark::Terminator(Protocol::Smtp) => {
                "The mail data end with a line holding only \".\" (CRLF.CRLF); it is not part \
                 of the message (RFC 5321 section 4.1.1.4)."
            }
            LineMark::Stuffed(Protocol::Pop3) => {
                "This line of the data begins with \".\", so the server put one more \".\" \
                 in front (byte-stuffing); the client strips the first one (RFC 1939 section 3)."
            }
            LineMark::Stuffed(Protocol::Smtp) => {
                "This line of the message begins with \".\", so the client put one more \
                 \".\" in front (transparency); the server deletes the first one (RFC 5321 \
                 section 4.5.2)."
            }
            LineMark::NotStuffed(Protocol::Pop3) => {
                "This line begins with a single \".\" and more: the server did not \
                 byte-stuff it, and a client strips this \".\" (RFC 1939 section 3)."
            }
            LineMark::NotStuffed(Protocol::Smtp) => {
                "This line begins with a single \".\" and more: the client did not \
                 dot-stuff it, and the server deletes this \".\" (RFC 5321 section 4.5.2)."
            }
        })
    }
}

/// One line of a followed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowLine {
    pub direction: Direction,
    /// Its bytes (with the line end) in its direction's buffer; empty for a gap.
    pub bytes: Range<usize>,
    /// Where it starts in its direction's stream.
    pub stream_start: u64,
    /// The frame that carried its first byte (for a gap: the next frame of its direction).
    pub frame: Option<usize>,
    pub mark: LineMark,
    /// A gap or the end of the capture cut it before its line end.
    pub cut: bool,
}

/// A connection's bytes as lines, client's and server's in capture order.
#[derive(Debug, Clone, Default)]
pub struct FollowText {
    /// The connection.
    pub conn: usize,
    /// `#N POP3 client -> server`.
    pub title: String,
    /// The bytes of each direction (index with [`Direction::index`]).
    pub buffers: [Vec<u8>; 2],
    pub lines: Vec<FollowLine>,
    /// Bytes not captured, per direction.
    pub missing: [u64; 2],
}

impl FollowText {
    /// A line's bytes.
    pub fn line_bytes(&self, line: &FollowLine) -> &[u8] {
        self.buffers
            .get(line.direction.index())
            .and_then(|b| b.get(line.bytes.clone()))
            .unwrap_or_default()
    }

    /// A line as text (line end left off), with its line end apart: `"\r\n"`, `"\n"` or
    /// `""` (cut, or the last line so far).
    pub fn line_text(&self, line: &FollowLine) -> (String, &'static str) {
        let bytes = self.line_bytes(line);
        let (body, end) = split_line_end(bytes);
        (printable(body), end)
    }
}

/// A line's body and its end.
fn split_line_end(bytes: &[u8]) -> (&[u8], &'static str) {
    if let Some(body) = bytes.strip_suffix(b"\r\n") {
        (body, "\\r\\n")
    } else if let Some(body) = bytes.strip_suffix(b"\n") {
        (body, "\\n")
    } else {
        (bytes, "")
    }
}

/// Bytes as text: UTF-8 where valid, other control bytes as `\xNN`.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\x{:02X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The stream ranges of a direction's units that are dot-terminated blocks, with where the
/// block's lines begin (after a POP3 reply's status line).
fn dot_blocks(timeline: &Timeline, conn: usize, direction: Direction) -> Vec<(Range<u64>, bool)> {
    let analyzer = &timeline.analyzer;
    let Some(c) = analyzer.connections().get(conn) else {
        return Vec::new();
    };
    let protocol = c.mail_protocol();
    let units = analyzer.units();
    let mut last_command = None;
    let mut blocks: Vec<(Range<u64>, bool)> = c
        .units
        .iter()
        .filter_map(|&u| units.get(u))
        .filter(|u| u.direction == direction)
        .filter_map(|u| match (protocol, u.kind) {
            // The status line is not part of the block: its lines start after it.
            (Some(Protocol::Pop3), UnitKind::Reply) if u.multi_line => {
                Some((u.stream.clone(), true))
            }
            (_, UnitKind::Command) => {
                last_command = Some(u.stream.clone());
                None
            }
            // Content after DATA ends with "."; a BDAT chunk is counted in octets (RFC
            // 3030), not dot-terminated, so its dots mean nothing.
            (Some(Protocol::Smtp), UnitKind::MailContent)
                if last_command
                    .clone()
                    .is_some_and(|command| is_data_command(timeline, conn, direction, command)) =>
            {
                Some((u.stream.clone(), false))
            }
            _ => None,
        })
        .collect();
    blocks.sort_by_key(|(r, _)| r.start);
    blocks
}

/// Whether the command line at `range` of a direction's stream is SMTP's DATA (read from
/// the frames that carried it, parsed by the protocol core).
fn is_data_command(
    timeline: &Timeline,
    conn: usize,
    direction: Direction,
    range: Range<u64>,
) -> bool {
    let Some(c) = timeline.analyzer.connections().get(conn) else {
        return false;
    };
    let mut line = Vec::new();
    for (frame, bytes) in c.stream(direction).carriers(range) {
        let data = timeline.packets.data(frame);
        if let Some(part) = data.as_deref().and_then(|d| d.get(bytes)) {
            line.extend_from_slice(part);
        }
    }
    let verb = line
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    crate::proto::smtp::Verb::from_word(verb) == Some(crate::proto::smtp::Verb::Data)
}

/// One direction's lines, in stream order.
fn direction_lines(
    timeline: &Timeline,
    conn: usize,
    direction: Direction,
    buffer: &mut Vec<u8>,
    missing: &mut u64,
) -> Vec<FollowLine> {
    let Some(c) = timeline.analyzer.connections().get(conn) else {
        return Vec::new();
    };
    let protocol = c.mail_protocol();
    let stream = c.stream(direction);
    let mut lines = Vec::new();
    // The line being gathered: its start in the buffer and the stream, its first frame.
    let mut open: Option<(usize, u64, usize)> = None;
    let mut pos: Option<u64> = None;
    let mut gaps = stream.gaps.iter().peekable();
    let close = |lines: &mut Vec<FollowLine>,
                 open: &mut Option<(usize, u64, usize)>,
                 end: usize,
                 cut: bool| {
        if let Some((start, stream_start, frame)) = open.take() {
            lines.push(FollowLine {
                direction,
                bytes: start..end,
                stream_start,
                frame: Some(frame),
                mark: LineMark::Plain,
                cut,
            });
        }
    };
    let gap = |lines: &mut Vec<FollowLine>, range: Range<u64>, frame: Option<usize>| {
        lines.push(FollowLine {
            direction,
            bytes: 0..0,
            stream_start: range.start,
            frame,
            mark: LineMark::Gap { stream: range },
            cut: false,
        });
    };
    for piece in &stream.pieces {
        let range = piece.stream_range();
        let frame = piece.frame as usize;
        // Gaps before this piece: listed ones, and any hole between pieces.
        let mut at = pos.unwrap_or(range.start);
        while let Some(g) = gaps.next_if(|g| g.start < range.start) {
            if g.end <= at {
                continue; // within bytes already shown (not expected)
            }
            if g.start > at {
                close(&mut lines, &mut open, buffer.len(), true);
                gap(&mut lines, at..g.start, Some(frame));
                *missing += g.start - at;
            }
            close(&mut lines, &mut open, buffer.len(), true);
            gap(&mut lines, g.clone(), Some(frame));
            *missing += g.end - g.start;
            at = at.max(g.end);
        }
        if range.start > at {
            close(&mut lines, &mut open, buffer.len(), true);
            gap(&mut lines, at..range.start, Some(frame));
            *missing += range.start - at;
        }
        let start = piece.frame_offset as usize;
        let data = timeline.packets.data(frame);
        let bytes = data
            .as_deref()
            .and_then(|d| d.get(start..start + piece.len as usize))
            .unwrap_or_default();
        for (i, &b) in bytes.iter().enumerate() {
            if open.is_none() {
                open = Some((buffer.len(), range.start + i as u64, frame));
            }
            buffer.push(b);
            if b == b'\n' {
                close(&mut lines, &mut open, buffer.len(), false);
            }
        }
        pos = Some(range.end.max(at));
    }
    // Gaps after the last piece (bytes acknowledged, or sent at the end, never captured).
    let at = pos.unwrap_or(0);
    let rest: Vec<_> = gaps.filter(|g| g.end > at).cloned().collect();
    close(&mut lines, &mut open, buffer.len(), !rest.is_empty());
    for g in rest {
        *missing += g.end - g.start;
        gap(&mut lines, g, None);
    }
    // Marks inside dot-terminated blocks.
    if let Some(protocol) = protocol {
        let blocks = dot_blocks(timeline, conn, direction);
        let mut b = 0;
        for line in lines.iter_mut() {
            if matches!(line.mark, LineMark::Gap { .. }) {
                continue;
            }
            while blocks
                .get(b)
                .is_some_and(|(r, _)| r.end <= line.stream_start)
            {
                b += 1;
            }
            let Some((block, after_status)) = blocks.get(b) else {
                break;
            };
            let inside = block.contains(&line.stream_start)
                && !(*after_status && line.stream_start == block.start);
            if !inside {
                continue;
            }
            let (body, _) = split_line_end(buffer.get(line.bytes.clone()).unwrap_or_default());
            line.mark = if body == b"." && !line.cut {
                LineMark::Terminator(protocol)
            } else if body.starts_with(b"..") {
                LineMark::Stuffed(protocol)
            } else if body.starts_with(b".") {
                LineMark::NotStuffed(protocol)
            } else {
                LineMark::Plain
            };
        }
    }
    lines
}

/// Builds the followed text of connection `conn`; `None` when there is no such connection.
pub fn build(timeline: &Timeline, conn: usize) -> Option<FollowText> {
    let c = timeline.analyzer.connections().get(conn)?;
    let protocol = c.mail_protocol().map_or("TCP", Protocol::name);
    let mut text = FollowText {
        conn,
        title: format!("#{} {protocol}  {} -> {}", conn + 1, c.client, c.server),
        ..FollowText::default()
    };
    let mut per_direction = Vec::new();
    for direction in [Direction::ClientToServer, Direction::ServerToClient] {
        let i = direction.index();
        let (Some(buffer), Some(missing)) = (
            text.buffers.get_mut(i).map(std::mem::take),
            text.missing.get_mut(i),
        ) else {
            continue;
        };
        let mut buffer = buffer;
        let lines = direction_lines(timeline, conn, direction, &mut buffer, missing);
        if let Some(slot) = text.buffers.get_mut(i) {
            *slot = buffer;
        }
        per_direction.push(lines);
    }
    // Capture order: merge the two directions by the frame of each line's first byte
    // (each direction keeps its own order).
    let mut client = per_direction
        .first()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .peekable();
    let mut server = per_direction
        .get(1)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .peekable();
    loop {
        let take_client = match (client.peek(), server.peek()) {
            (Some(c), Some(s)) => match (c.frame, s.frame) {
                (Some(cf), Some(sf)) => cf <= sf,
                (None, _) => false,
                (Some(_), None) => true,
            },
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_client {
            client.next()
        } else {
            server.next()
        };
        text.lines.extend(next);
    }
    Some(text)
}

/// How many captured stream bytes a connection has (to decide where to build its text).
fn stream_bytes(timeline: &Timeline, conn: usize) -> u64 {
    timeline.analyzer.connections().get(conn).map_or(0, |c| {
        c.streams
            .iter()
            .flat_map(|s| s.pieces.iter())
            .map(|p| u64::from(p.len))
            .sum()
    })
}

/// Connections with more captured bytes than this are built on a thread of their own.
pub const BUILD_ON_THREAD: u64 = 256 * 1024;

/// What a built text is for: run, connection, and how much of it was captured.
type FollowKey = (u64, usize, usize, usize);

/// The followed text of one connection, rebuilt when the connection grows.
#[derive(Debug, Default)]
pub struct FollowCache {
    key: Option<FollowKey>,
    text: Option<Arc<FollowText>>,
    building: Option<(FollowKey, Receiver<Option<FollowText>>)>,
}

impl FollowCache {
    /// Makes sure the text of `conn` is (being) built for the timeline as it is now.
    pub fn refresh(
        &mut self,
        timeline: &Arc<Timeline>,
        generation: u64,
        conn: usize,
        wake: &Arc<dyn Fn() + Send + Sync>,
    ) {
        if let Some((key, rx)) = &self.building
            && let Ok(built) = rx.try_recv()
        {
            self.key = Some(*key);
            self.text = built.map(Arc::new);
            self.building = None;
        }
        let Some(c) = timeline.analyzer.connections().get(conn) else {
            self.key = None;
            self.text = None;
            return;
        };
        let key = (generation, conn, c.frames.len(), c.units.len());
        if self.key == Some(key) || self.building.as_ref().is_some_and(|(k, _)| *k == key) {
            return;
        }
        if self.building.is_some() {
            return; // one at a time: the next refresh starts the newer one
        }
        if stream_bytes(timeline, conn) <= BUILD_ON_THREAD {
            self.text = build(timeline, conn).map(Arc::new);
            self.key = Some(key);
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let shared = Arc::clone(timeline);
        let wake = Arc::clone(wake);
        let spawned = std::thread::Builder::new()
            .name("follow-stream".into())
            .spawn(move || {
                let _ = tx.send(build(&shared, conn));
                wake();
            });
        if spawned.is_ok() {
            self.building = Some((key, rx));
        } else {
            self.text = build(timeline, conn).map(Arc::new);
            self.key = Some(key);
        }
    }

    /// The text built last (it may be of the connection before, while a new one builds).
    pub fn text(&self) -> Option<&Arc<FollowText>> {
        self.text.as_ref()
    }

    /// Whether a text is being built on its thread.
    pub fn is_building(&self) -> bool {
        self.building.is_some()
    }
}

/// The Follow stream window (while `state` says one is followed): a header with the
/// connection, the colours and the line-end switch, then the lines, only those on screen
/// laid out. A click on a line selects its frame.
pub fn follow_window(
    ctx: &egui::Context,
    state: FollowState,
    cache: &FollowCache,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    let mut open = true;
    let screen = ctx.content_rect();
    let size = egui::vec2(
        (screen.width() * 0.8).min(1000.0),
        (screen.height() * 0.75).min(640.0),
    );
    egui::Window::new("Follow stream")
        .open(&mut open)
        .default_size(size)
        .default_pos(screen.center() - size / 2.0)
        .constrain(true)
        .collapsible(false)
        .resizable(true)
        .show(ctx, |ui| {
            follow_ui(ui, state, cache, palette, actions);
        });
    if !open {
        actions.push(UiAction::CloseFollow);
    }
}

fn follow_ui(
    ui: &mut Ui,
    state: FollowState,
    cache: &FollowCache,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    let text = cache.text().filter(|t| t.conn == state.conn);
    let Some(text) = text else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!(
                "Gathering the bytes of connection #{} ...",
                state.conn + 1
            ));
        });
        return;
    };
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(&text.title).strong());
        if cache.is_building() {
            ui.spinner();
        }
    });
    ui.horizontal_wrapped(|ui| {
        let [sent, received] = [Direction::ClientToServer, Direction::ServerToClient]
            .map(|d| text.buffers.get(d.index()).map_or(0, Vec::len));
        ui.label(
            RichText::new(format!("C: client, {sent} bytes"))
                .color(palette.client)
                .strong(),
        );
        ui.label(
            RichText::new(format!("S: server, {received} bytes"))
                .color(palette.positive)
                .strong(),
        );
        let missing: u64 = text.missing.iter().sum();
        if missing > 0 {
            ui.label(
                RichText::new(format!("{missing} bytes not captured (shown as gaps)"))
                    .color(palette.negative),
            );
        }
        let mut ends = state.line_ends;
        if ui
            .checkbox(&mut ends, "Show line ends")
            .on_hover_text("Show each line's end: \\r\\n (CRLF), or a bare \\n")
            .changed()
        {
            actions.push(UiAction::SetFollowLineEnds(ends));
        }
    });
    ui.separator();
    let row_height = ui.text_style_height(&egui::TextStyle::Monospace) + 2.0;
    let mono = egui::TextStyle::Monospace.resolve(ui.style());
    ScrollArea::both()
        .id_salt(("follow-lines", text.conn))
        .auto_shrink([false, false])
        .show_rows(ui, row_height, text.lines.len(), |ui, rows| {
            for line in text.lines.iter().skip(rows.start).take(rows.len()) {
                let job = line_job(text, line, state.line_ends, palette, &mono);
                let response = ui.add(
                    egui::Label::new(job)
                        .wrap_mode(egui::TextWrapMode::Extend)
                        .sense(egui::Sense::click()),
                );
                if let Some(frame) = line.frame {
                    let explain = line
                        .mark
                        .explain()
                        .map_or_else(String::new, |e| format!("{e}\n"));
                    let response = response.on_hover_text(format!(
                        "{explain}Frame {}, stream byte {}: click to show the frame.",
                        frame + 1,
                        line.stream_start
                    ));
                    if response.clicked() {
                        actions.push(UiAction::SelectFrame(frame));
                    }
                }
            }
        });
}

/// The longest part of a line drawn (a long line is cut, with its length said).
const MAX_SHOWN: usize = 4000;

/// One line as coloured text: its direction's tag, its text, the line end on request, and
/// what its mark means.
fn line_job(
    text: &FollowText,
    line: &FollowLine,
    line_ends: bool,
    palette: &Palette,
    font: &egui::FontId,
) -> egui::text::LayoutJob {
    let color = match line.direction {
        Direction::ClientToServer => palette.client,
        Direction::ServerToClient => palette.positive,
    };
    let format = |c| egui::TextFormat::simple(font.clone(), c);
    let mut job = egui::text::LayoutJob::default();
    job.append(line.direction.tag(), 0.0, format(color));
    job.append(" ", 0.0, format(color));
    if let LineMark::Gap { .. } = line.mark {
        let meaning = line.mark.meaning().unwrap_or_default();
        job.append(&format!("[ {meaning} ]"), 0.0, format(palette.negative));
        return job;
    }
    let (body, end) = text.line_text(line);
    if body.chars().count() > MAX_SHOWN {
        let shown: String = body.chars().take(MAX_SHOWN).collect();
        job.append(&shown, 0.0, format(color));
        job.append(
            &format!(" ... ({} characters in all)", body.chars().count()),
            0.0,
            format(palette.weak),
        );
    } else {
        job.append(&body, 0.0, format(color));
    }
    if line_ends {
        let (shown, c) = match end {
            "\\n" => ("\\n (bare LF)", palette.negative),
            "" if line.cut => ("(cut: bytes missing)", palette.negative),
            "" => ("(no line end yet)", palette.weak),
            other => (other, palette.weak),
        };
        job.append(shown, 6.0, format(c));
    }
    if let Some(meaning) = line.mark.meaning() {
        // On a highlight, so that it never reads as the client's or the server's bytes.
        let c = match line.mark {
            LineMark::NotStuffed(_) => palette.negative,
            _ => palette.text,
        };
        let note = egui::TextFormat {
            background: palette.related,
            ..format(c)
        };
        job.append(&format!(" <- {meaning} "), 16.0, note);
    }
    job
}

/// The connection the selection is on: the selected frame's, else the selected (or
/// viewed) step's.
pub fn selected_connection(
    timeline: &Timeline,
    selection: &super::state::Selection,
    cursor: Option<usize>,
) -> Option<usize> {
    let analyzer = &timeline.analyzer;
    if let Some(frame) = selection.frame
        && let Some(seg) = analyzer.frames().get(frame).and_then(|f| f.segment)
    {
        return Some(seg.conn as usize);
    }
    let step = selection.step.or(cursor)?;
    let record = timeline.steps.get(step)?;
    timeline.connection_of(record.ends?)
}
