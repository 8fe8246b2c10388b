//! The sequence diagram: one lifeline per server and per client connection, labelled with
//! address:port ([`crate::export::lifelines`], as in the SVG export; only those the rows
//! use, and when more than fit at a readable width (at most [`MAX_LANES`]), only those the
//! rows on screen use), a band per step with its caption,
//! one arrow per command or reply with its text, and in the TCP view every captured
//! segment (flags, relative seq/ack, length), handshake and teardown included.
//! TLS records are thin arrows with their type, length and fate (in clear, decrypted, or
//! why not); a command or reply decrypted from them is a dashed arrow in its own colour,
//! its text in italics after the word "decrypted": never drawn like clear text on the wire.
//!
//! Rows have one height, so only the rows on screen are laid out and painted (the list may
//! hold hundreds of thousands of segments). A click on a row selects it everywhere.

use eframe::egui;
use eframe::egui::{
    Align2, Color32, FontId, Pos2, Rect, Role, ScrollArea, Sense, Shape, Stroke, Ui, Vec2,
    WidgetInfo, pos2, vec2,
};

use super::rows::{DiagramRows, Reveal, Row};
use super::state::{UiAction, UiState};
use super::theme::{Palette, is_negative_reply};
use crate::decode::frame::TcpFlags;
use crate::decode::tls_decrypt::{RecordOutcome, TlsDecryption};
use crate::export::lifelines::Side;
use crate::proto::Direction;
use crate::timeline::Timeline;

/// The height of every row, in points.
pub const ROW_HEIGHT: f32 = 30.0;
/// The width of the frame-number and time column at the left.
const LEFT_COLUMN: f32 = 118.0;
/// The diagram's scroll area (its offset is read to scroll as little as needed).
const DIAGRAM_SCROLL: &str = "sequence-diagram";
/// Room kept right of the server lifeline.
const RIGHT_MARGIN: f32 = 40.0;

/// At most this many lifelines stay in place; with more (a capture of many connections)
/// the diagram shows those of the rows on screen.
pub const MAX_LANES: usize = 8;

/// The least room between two lifelines for all of them to stay in place: below it their
/// labels and arrow texts would be cut to a few letters (a 1280-pixel projector with the
/// connection list open), so the diagram shows only the lifelines of the rows on screen.
const MIN_LANE_SPACING: f32 = 150.0;

/// How many lifelines can stay in place in a diagram `width` points wide.
fn lanes_that_fit(width: f32) -> usize {
    let room = (width - LEFT_COLUMN - 26.0 - RIGHT_MARGIN).max(0.0);
    ((room / MIN_LANE_SPACING).floor() as usize + 1).clamp(2, MAX_LANES)
}

/// Geometry shared by the header and the rows: where each shown lifeline is.
#[derive(Debug, Clone)]
struct Lanes {
    left: f32,
    right: f32,
    /// (lifeline index, x), left to right.
    xs: Vec<(usize, f32)>,
}

impl Lanes {
    fn new(rect: Rect, shown: &[usize]) -> Self {
        let first = rect.left() + LEFT_COLUMN + 26.0;
        let last = (rect.right() - RIGHT_MARGIN).max(first + 120.0);
        let gaps = shown.len().saturating_sub(1).max(1) as f32;
        let xs = shown
            .iter()
            .enumerate()
            .map(|(i, &l)| (l, first + (last - first) * i as f32 / gaps))
            .collect();
        Lanes {
            left: rect.left(),
            right: rect.right(),
            xs,
        }
    }

    /// The x of a lifeline, if shown.
    fn x(&self, lifeline: usize) -> Option<f32> {
        self.xs
            .iter()
            .find(|(l, _)| *l == lifeline)
            .map(|(_, x)| *x)
    }

    /// The room between two neighbouring lifelines.
    fn spacing(&self) -> f32 {
        match (self.xs.first(), self.xs.get(1)) {
            (Some(a), Some(b)) => b.1 - a.1,
            _ => self.right - self.left - LEFT_COLUMN,
        }
    }

    /// The client and server x of a row's lifelines (`from`, `to` of its arrows).
    fn pair(&self, lanes: Option<(usize, usize)>) -> Option<(f32, f32)> {
        let (c, s) = lanes?;
        Some((self.x(c)?, self.x(s)?))
    }
}

/// The lifelines to show: all the rows use when they fit in `width`, else those of the
/// rows from `first_row` on, as many as fit in `visible` points.
fn shown_lanes(
    timeline: &Timeline,
    rows: &DiagramRows,
    first_row: usize,
    visible: f32,
    width: f32,
) -> Vec<usize> {
    if rows.used.len() <= lanes_that_fit(width) {
        return rows.used.clone();
    }
    let count = (visible / ROW_HEIGHT).ceil().max(0.0) as usize + 2;
    let mut shown: Vec<usize> = rows
        .rows
        .iter()
        .skip(first_row)
        .take(count)
        .filter_map(|r| rows.lanes(timeline, *r))
        .flat_map(|(c, s)| [c, s])
        .collect();
    shown.sort_unstable();
    shown.dedup();
    shown
}

/// Draws the diagram. `rows` must have been refreshed for this timeline. With `reveal`,
/// scrolls (at once, as little as needed) so the step's rows are in view, or, when they
/// are taller than the diagram, its band and as much as fits down to the selected row, or
/// else the selected row in the middle; `previous_height` is the rows' height on screen in
/// the last frame. Returns the part of the screen the rows are drawn in (none when there is
/// no row).
#[allow(clippy::too_many_arguments)]
pub fn diagram_ui(
    ui: &mut Ui,
    timeline: &Timeline,
    rows: &DiagramRows,
    state: &UiState,
    reveal: Option<&Reveal>,
    previous_height: Option<f32>,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) -> Option<Rect> {
    if rows.rows.is_empty() {
        header_ui(ui, rows, &[], palette);
        ui.add_space(12.0);
        let text = if state.recorded_only && timeline.steps.is_empty() {
            "This capture holds no POP3 or SMTP command or reply to step through."
        } else if timeline.steps.is_empty() {
            "Nothing has happened yet: press Next to run the first step, or type a command in \
             the console below."
        } else {
            "No rows to show."
        };
        ui.label(egui::RichText::new(text).size(16.0).color(palette.weak));
        return None;
    }
    let mut scroll = ScrollArea::vertical()
        .id_salt(DIAGRAM_SCROLL)
        .auto_shrink([false, false]);
    // The header takes its height from the diagram's.
    let visible = ui.available_height() - HEADER_HEIGHT;
    let id = ui.make_persistent_id(egui::IdSalt::new(DIAGRAM_SCROLL));
    let offset = egui::scroll_area::State::load(ui.ctx(), id).map_or(0.0, |s| s.clamped_offset().y);
    let mut target = None;
    if let Some(row) = state.scroll_to_row {
        // Put the row a third of the way down.
        let offset = (row as f32 * ROW_HEIGHT - visible / 3.0).max(0.0);
        target = Some(offset);
        scroll = scroll.vertical_scroll_offset(offset);
    } else if let Some(reveal) = reveal {
        // Never past the end, now or as the scroll area still knows it from the last frame
        // (when the diagram just got shorter): past it, it springs back and coasts on. The
        // window reveals again the frame after a resize.
        let total = rows.rows.len() as f32 * ROW_HEIGHT;
        let last_visible = previous_height.unwrap_or(visible);
        let max = (total - visible.max(last_visible)).max(0.0);
        let offset = reveal_offset(reveal, offset, visible).min(max);
        target = Some(offset);
        scroll = scroll.vertical_scroll_offset(offset);
    }
    let first_row = (target.unwrap_or(offset) / ROW_HEIGHT).floor().max(0.0) as usize;
    let shown = shown_lanes(timeline, rows, first_row, visible, ui.available_width());
    header_ui(ui, rows, &shown, palette);
    let output = scroll.show_viewport(ui, |ui, viewport| {
        let total = rows.rows.len() as f32 * ROW_HEIGHT;
        ui.set_height(total);
        let width = ui.available_width();
        let origin = ui.max_rect().min;
        let lanes = Lanes::new(Rect::from_min_size(origin, vec2(width, total)), &shown);
        let first = (viewport.min.y / ROW_HEIGHT).floor().max(0.0) as usize;
        let last =
            ((viewport.max.y / ROW_HEIGHT).ceil().max(0.0) as usize + 1).min(rows.rows.len());
        // Lifelines over the visible part.
        let y_top = origin.y + viewport.min.y;
        let y_bottom = origin.y + viewport.max.y;
        let painter = ui.painter();
        let lifeline = Stroke::new(2.0, palette.lifeline);
        for (_, x) in &lanes.xs {
            painter.vline(*x, y_top..=y_bottom, lifeline);
        }
        let related = related_frames(timeline, state);
        for (i, row) in rows.rows.iter().enumerate().take(last).skip(first) {
            let rect = Rect::from_min_size(
                pos2(origin.x, origin.y + i as f32 * ROW_HEIGHT),
                vec2(width, ROW_HEIGHT),
            );
            let pair = lanes.pair(rows.lanes(timeline, *row));
            row_ui(
                ui, i, *row, rect, &lanes, pair, timeline, rows, state, &related, palette, actions,
            );
        }
    });
    Some(output.inner_rect)
}

/// The scroll offset (top of the view, in points from row 0) that brings `reveal` into
/// view from `offset`, for a view `visible` points tall: unchanged when the step's rows are
/// already in view; else moved as little as needed; a step taller than the view shows its
/// band and as much as fits down to the selected row, or else the selected row in the
/// middle.
pub fn reveal_offset(reveal: &Reveal, offset: f32, visible: f32) -> f32 {
    let top = reveal.rows.start as f32 * ROW_HEIGHT;
    let bottom = reveal.rows.end as f32 * ROW_HEIGHT;
    let focus_bottom = (reveal.focus + 1) as f32 * ROW_HEIGHT;
    let target = if bottom - top <= visible {
        if top < offset {
            top
        } else if bottom > offset + visible {
            bottom - visible
        } else {
            offset
        }
    } else if focus_bottom - top <= visible {
        top
    } else {
        focus_bottom - ROW_HEIGHT / 2.0 - visible / 2.0
    };
    target.max(0.0)
}

/// The frames that carried the selected exchange.
fn related_frames(timeline: &Timeline, state: &UiState) -> Vec<usize> {
    match (state.selection.step, state.selection.exchange) {
        (Some(s), Some(e)) => timeline.unit(s, e).map(|u| u.frames()).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The height of the lifelines' header.
const HEADER_HEIGHT: f32 = 38.0;

/// The lifelines' names (`client "main"`, `POP3 server`) over their address:port.
fn header_ui(ui: &mut Ui, rows: &DiagramRows, shown: &[usize], palette: &Palette) {
    let (rect, _) =
        ui.allocate_exact_size(vec2(ui.available_width(), HEADER_HEIGHT), Sense::hover());
    let lanes = Lanes::new(rect, shown);
    let painter = ui.painter_at(rect);
    let big = FontId::proportional(15.0);
    let small = FontId::proportional(12.0);
    let room = (lanes.spacing() - 8.0).clamp(60.0, 300.0);
    for &(l, x) in &lanes.xs {
        let Some(line) = rows.lifelines.lines.get(l) else {
            continue;
        };
        let color = match line.side {
            Side::Client => palette.client,
            Side::Server => palette.text,
        };
        for (text, font, y, c) in [
            (line.title(), big.clone(), rect.top() + 2.0, color),
            (
                line.address(),
                small.clone(),
                rect.top() + 21.0,
                palette.weak,
            ),
        ] {
            let galley = single_line(ui, text, font, c, room);
            let w = galley.size().x;
            // Centred on the lifeline, kept inside the diagram.
            let left = (x - w / 2.0).clamp(rect.left() + 2.0, (rect.right() - w - 2.0).max(0.0));
            painter.galley(pos2(left, y), galley, c);
        }
    }
    if rows.used.len() > shown.len() {
        painter.text(
            pos2(lanes.left + 4.0, rect.top() + 2.0),
            Align2::LEFT_TOP,
            format!("{} of {} lifelines", shown.len(), rows.used.len()),
            small.clone(),
            palette.weak,
        );
    }
    painter.text(
        pos2(lanes.left + 4.0, rect.top() + 22.0),
        Align2::LEFT_TOP,
        "frame   time",
        small,
        palette.weak,
    );
}

#[allow(clippy::too_many_arguments)]
fn row_ui(
    ui: &mut Ui,
    index: usize,
    row: Row,
    rect: Rect,
    lanes: &Lanes,
    pair: Option<(f32, f32)>,
    timeline: &Timeline,
    rows: &DiagramRows,
    state: &UiState,
    related: &[usize],
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    let id = ui.scope_id().with(("diagram-row", index));
    let response = ui.interact(rect, id, Sense::click());
    let sel = &state.selection;
    let (selected, label, action) = match row {
        Row::Band { step } => (
            sel.step == Some(step) && sel.exchange.is_none() && sel.frame.is_none(),
            band_text(timeline, step),
            Some(UiAction::SelectStep(step)),
        ),
        Row::Exchange { step, exchange } => (
            sel.step == Some(step) && sel.exchange == Some(exchange),
            exchange_label(timeline, step, exchange),
            Some(UiAction::SelectExchange { step, exchange }),
        ),
        Row::Segment { frame } => (
            sel.frame == Some(frame) && sel.exchange.is_none(),
            segment_label(timeline, frame),
            Some(UiAction::SelectFrame(frame)),
        ),
        Row::Record { .. } | Row::Decrypted { .. } => {
            let frame = rows.frame_of(timeline, row);
            let label = match row {
                Row::Record { unit } => record_label(timeline, &rows.tls, unit),
                Row::Decrypted { conn, index } => decrypted_label(&rows.tls, conn, index),
                _ => String::new(),
            };
            (
                frame.is_some() && sel.frame == frame && sel.exchange.is_none(),
                label,
                frame.map(UiAction::SelectFrame),
            )
        }
    };
    response.widget_info(|| WidgetInfo::selected(Role::Button, true, selected, &label));
    if response.clicked()
        && let Some(action) = action
    {
        actions.push(action);
    }
    let painter = ui.painter();
    let is_related = matches!(row, Row::Segment { frame } if related.contains(&frame));
    if let Row::Band { .. } = row {
        painter.rect_filled(rect.shrink2(vec2(0.0, 1.0)), 3.0, palette.band);
    }
    if selected {
        painter.rect_filled(rect.shrink2(vec2(0.0, 1.0)), 3.0, palette.selected);
        // An outline too, so the selection stands out without relying on the fill alone.
        painter.rect_stroke(
            rect.shrink2(vec2(0.0, 1.0)),
            3.0,
            Stroke::new(1.5, palette.accent),
            egui::StrokeKind::Inside,
        );
    } else if is_related || (matches!(row, Row::Segment { frame } if sel.frame == Some(frame))) {
        painter.rect_filled(rect.shrink2(vec2(0.0, 1.0)), 3.0, palette.related);
    }
    if response.hovered() {
        painter.rect_stroke(
            rect.shrink(1.0),
            3.0,
            Stroke::new(1.0, palette.weak),
            egui::StrokeKind::Inside,
        );
    }
    match row {
        Row::Band { step } => band_row(ui, rect, lanes, timeline, step, &label, palette),
        Row::Exchange { step, exchange } => {
            exchange_row(ui, rect, lanes, pair, timeline, step, exchange, palette);
        }
        Row::Segment { frame } => segment_row(ui, rect, lanes, pair, timeline, frame, palette),
        Row::Record { unit } => {
            record_row(ui, rect, lanes, pair, timeline, &rows.tls, unit, palette)
        }
        Row::Decrypted { conn, index } => {
            decrypted_row(ui, rect, lanes, pair, &rows.tls, conn, index, palette);
        }
    }
}

/// The colour of decrypted text: unlike any colour of what crossed the wire in clear.
pub fn decrypted_color(palette: &Palette) -> Color32 {
    if palette.background == Color32::BLACK {
        Color32::from_rgb(225, 165, 255)
    } else {
        Color32::from_rgb(115, 0, 160)
    }
}

/// What a record row says: `TLS application-data, 34 bytes: decrypted (application data,
/// 12 bytes)`, `...: not decrypted: no TLS key log...`.
pub fn record_text(timeline: &Timeline, tls: &TlsDecryption, unit: usize) -> String {
    let Some(u) = timeline.analyzer.units().get(unit) else {
        return String::new();
    };
    let Some(r) = tls.record(u.conn, unit) else {
        return format!("TLS: {}", u.text);
    };
    let head = format!(
        "TLS {}, {} bytes",
        crate::decode::units::content_type_name(r.content_type),
        u32::from(r.length) + 5
    );
    match &r.outcome {
        RecordOutcome::Clear(what) => format!("{head}: {what}"),
        RecordOutcome::Decrypted { content, .. } => format!("{head}: decrypted ({content})"),
        RecordOutcome::NotDecrypted(why) => format!("{head}: not decrypted: {why}"),
    }
}

/// What fits on a record row's arrow: `TLS data 34 B: decrypted`, `TLS hs 517 B:
/// ClientHello`, `TLS data 34 B: not decrypted (no TLS key log...)` (the label and the
/// packet details say it all).
fn record_short(timeline: &Timeline, tls: &TlsDecryption, unit: usize) -> String {
    let Some(u) = timeline.analyzer.units().get(unit) else {
        return String::new();
    };
    let Some(r) = tls.record(u.conn, unit) else {
        return format!("TLS: {}", u.text);
    };
    let kind = match r.content_type {
        20 => "ccs",
        21 => "alert",
        22 => "hs",
        23 => "data",
        _ => "?",
    };
    let head = format!("TLS {kind} {} B", u32::from(r.length) + 5);
    match &r.outcome {
        RecordOutcome::Clear(what) => {
            let what = what.trim_start_matches("handshake: ");
            format!("{head}: {what}")
        }
        RecordOutcome::Decrypted { content, .. } => {
            let content = content.trim_start_matches("handshake: ");
            if content.starts_with("application data") {
                format!("{head}: decrypted")
            } else {
                format!("{head}: decrypted {content}")
            }
        }
        RecordOutcome::NotDecrypted(why) => format!("{head}: not decrypted ({why})"),
    }
}

/// The accessible label of a record row: `#12 C->S TLS application-data, ...`.
pub fn record_label(timeline: &Timeline, tls: &TlsDecryption, unit: usize) -> String {
    let Some(u) = timeline.analyzer.units().get(unit) else {
        return String::new();
    };
    let frame = u.carriers.first().map_or(0, |c| c.frame + 1);
    let dir = match u.direction {
        Direction::ClientToServer => "C->S",
        Direction::ServerToClient => "S->C",
    };
    format!("#{frame} {dir} {}", record_text(timeline, tls, unit))
}

/// The accessible label of a decrypted row: `C: USER alice (decrypted from TLS, frame #12)`.
pub fn decrypted_label(tls: &TlsDecryption, conn: usize, index: usize) -> String {
    let Some(d) = tls.connection(conn).and_then(|c| c.units.get(index)) else {
        return String::new();
    };
    let frames: Vec<String> = d.frames.iter().map(|f| format!("#{}", f + 1)).collect();
    let what = if d.frames.len() == 1 {
        "frame"
    } else {
        "frames"
    };
    format!(
        "{} {} (decrypted from TLS, {what} {})",
        d.direction.tag(),
        visible_text(&d.text),
        frames.join(", ")
    )
}

#[allow(clippy::too_many_arguments)]
fn record_row(
    ui: &Ui,
    rect: Rect,
    lanes: &Lanes,
    pair: Option<(f32, f32)>,
    timeline: &Timeline,
    tls: &TlsDecryption,
    unit: usize,
    palette: &Palette,
) {
    let Some(u) = timeline.analyzer.units().get(unit) else {
        return;
    };
    let painter = ui.painter();
    let failed = tls
        .record(u.conn, unit)
        .is_some_and(|r| matches!(r.outcome, RecordOutcome::NotDecrypted(_)));
    let color = palette.segment;
    let y = rect.bottom() - 6.0;
    if let Some((client_x, server_x)) = pair {
        let (from, to) = match u.direction {
            Direction::ClientToServer => (client_x, server_x),
            Direction::ServerToClient => (server_x, client_x),
        };
        arrow(
            painter,
            pos2(from, y - 2.0),
            pos2(to, y + 2.0),
            Stroke::new(1.6, color),
        );
        let max_w = ((server_x - client_x).abs() - 20.0).max(40.0);
        let text_color = if failed { palette.negative } else { color };
        let galley = single_line(
            ui,
            record_short(timeline, tls, unit),
            FontId::proportional(13.0),
            text_color,
            max_w,
        );
        let x = (client_x + server_x) / 2.0 - galley.size().x / 2.0;
        painter.galley(pos2(x, y - 4.0 - galley.size().y), galley, text_color);
    }
    let left = match u.carriers.first() {
        Some(c) => format!("#{:<5}{}", c.frame + 1, time_text(timeline, c.frame)),
        None => String::new(),
    };
    painter.text(
        pos2(lanes.left + 4.0, rect.center().y),
        Align2::LEFT_CENTER,
        left,
        FontId::monospace(12.0),
        palette.weak,
    );
}

#[allow(clippy::too_many_arguments)]
fn decrypted_row(
    ui: &Ui,
    rect: Rect,
    lanes: &Lanes,
    pair: Option<(f32, f32)>,
    tls: &TlsDecryption,
    conn: usize,
    index: usize,
    palette: &Palette,
) {
    let Some(d) = tls.connection(conn).and_then(|c| c.units.get(index)) else {
        return;
    };
    let painter = ui.painter();
    let color = decrypted_color(palette);
    let y = rect.bottom() - 7.0;
    if let Some((client_x, server_x)) = pair {
        let (from, to) = match d.direction {
            Direction::ClientToServer => (client_x, server_x),
            Direction::ServerToClient => (server_x, client_x),
        };
        // Dashed: these bytes never crossed the wire as text.
        let dir = (pos2(to, y + 3.0) - pos2(from, y - 3.0)).normalized();
        let end = pos2(to, y + 3.0) - dir * 12.0;
        painter.extend(Shape::dashed_line(
            &[pos2(from, y - 3.0), end],
            Stroke::new(2.5, color),
            8.0,
            5.0,
        ));
        arrow(
            painter,
            end - dir * 2.0,
            pos2(to, y + 3.0),
            Stroke::new(2.5, color),
        );
        let max_w = ((server_x - client_x).abs() - 20.0).max(40.0);
        let mut job = egui::text::LayoutJob::default();
        job.append(
            "decrypted ",
            0.0,
            egui::text::TextFormat {
                font_id: FontId::proportional(13.0),
                color,
                ..Default::default()
            },
        );
        let more = if d.lines > 1 {
            format!("  (+{} lines)", d.lines - 1)
        } else {
            String::new()
        };
        job.append(
            &format!("{}{more}", visible_text(&d.text)),
            0.0,
            egui::text::TextFormat {
                font_id: FontId::monospace(15.0),
                color,
                italics: true,
                ..Default::default()
            },
        );
        job.wrap = egui::text::TextWrapping::truncate_at_width(max_w);
        let galley = ui.painter().layout_job(job);
        let x = (client_x + server_x) / 2.0 - galley.size().x / 2.0;
        painter.galley(pos2(x, y - 4.0 - galley.size().y), galley, color);
    }
    painter.text(
        pos2(lanes.left + 4.0, rect.center().y),
        Align2::LEFT_CENTER,
        "decrypted",
        FontId::proportional(12.0),
        color,
    );
}

fn band_text(timeline: &Timeline, step: usize) -> String {
    let Some(record) = timeline.steps.get(step) else {
        return format!("Step {}", step + 1);
    };
    format!("Step {}: {}", step + 1, record.caption)
}

fn band_row(
    ui: &Ui,
    rect: Rect,
    lanes: &Lanes,
    timeline: &Timeline,
    step: usize,
    label: &str,
    palette: &Palette,
) {
    let painter = ui.painter();
    let session = timeline
        .steps
        .get(step)
        .map(|r| format!("[{}]", r.outcome.session))
        .unwrap_or_default();
    let font = FontId::proportional(15.0);
    let session_galley = painter.layout_no_wrap(session, FontId::proportional(12.0), palette.weak);
    let session_w = session_galley.size().x;
    let max_w = (lanes.right - lanes.left - 16.0 - session_w).max(40.0);
    let galley = single_line(ui, label.to_string(), font, palette.accent, max_w);
    let y = rect.center().y - galley.size().y / 2.0;
    painter.galley(pos2(lanes.left + 6.0, y), galley, palette.accent);
    let sy = rect.center().y - session_galley.size().y / 2.0;
    painter.galley(
        pos2(lanes.right - 6.0 - session_w, sy),
        session_galley,
        palette.weak,
    );
    let failed = timeline
        .steps
        .get(step)
        .is_some_and(|r| r.outcome.check.is_err());
    if failed {
        painter.rect_filled(
            Rect::from_min_size(rect.min, vec2(4.0, rect.height())),
            0.0,
            palette.negative,
        );
    }
}

/// The accessible label (and tooltip) of an exchange row: `C: USER mrose`.
pub fn exchange_label(timeline: &Timeline, step: usize, exchange: usize) -> String {
    let Some(e) = timeline
        .steps
        .get(step)
        .and_then(|r| r.outcome.exchanges.get(exchange))
    else {
        return String::new();
    };
    let tag = e.direction().tag();
    format!("{tag} {}", exchange_text(e))
}

fn exchange_text(e: &crate::exchange::Exchange) -> String {
    let line = visible_text(&e.line);
    if e.more.is_empty() {
        line
    } else {
        format!("{line}  (+{} lines)", e.more.len())
    }
}

/// Control characters from the network shown as "·" (so a stray byte cannot break the
/// layout or ask for a glyph the fonts lack).
fn visible_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{B7}' } else { c })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn exchange_row(
    ui: &Ui,
    rect: Rect,
    lanes: &Lanes,
    pair: Option<(f32, f32)>,
    timeline: &Timeline,
    step: usize,
    exchange: usize,
    palette: &Palette,
) {
    let Some(e) = timeline
        .steps
        .get(step)
        .and_then(|r| r.outcome.exchanges.get(exchange))
    else {
        return;
    };
    let painter = ui.painter();
    let to_server = e.direction() == Direction::ClientToServer;
    let color = if to_server {
        palette.client
    } else if is_negative_reply(&e.line) {
        palette.negative
    } else {
        palette.positive
    };
    let y = rect.bottom() - 7.0;
    if let Some((client_x, server_x)) = pair {
        let (from, to) = if to_server {
            (client_x, server_x)
        } else {
            (server_x, client_x)
        };
        arrow(
            painter,
            pos2(from, y - 3.0),
            pos2(to, y + 3.0),
            Stroke::new(2.5, color),
        );
        let max_w = ((server_x - client_x).abs() - 20.0).max(40.0);
        let galley = single_line(ui, exchange_text(e), FontId::monospace(15.0), color, max_w);
        let x = (client_x + server_x) / 2.0 - galley.size().x / 2.0;
        painter.galley(pos2(x, y - 4.0 - galley.size().y), galley, color);
    }
    // Left column: when the exchange was first seen on the wire, or that it was not.
    let unit = timeline.unit(step, exchange);
    let left = match unit.and_then(|u| u.carriers.first()) {
        Some(c) => format!("#{:<5}{}", c.frame + 1, time_text(timeline, c.frame)),
        None => "not captured".to_string(),
    };
    painter.text(
        pos2(lanes.left + 4.0, rect.center().y),
        Align2::LEFT_CENTER,
        left,
        FontId::monospace(12.0),
        palette.weak,
    );
}

/// Seconds since the first captured frame.
fn time_text(timeline: &Timeline, frame: usize) -> String {
    let packets = &timeline.packets;
    let (Some(first), Some(this)) = (packets.ts_micros(0), packets.ts_micros(frame)) else {
        return String::new();
    };
    let micros = this.saturating_sub(first);
    format!("{:.3}s", micros as f64 / 1e6)
}

/// The accessible label of a segment row: `#4 S->C [PSH, ACK] seq=1 ack=1 len=57`.
pub fn segment_label(timeline: &Timeline, frame: usize) -> String {
    let Some(f) = timeline.analyzer.frames().get(frame) else {
        return format!("#{}", frame + 1);
    };
    let dir = match f.segment.map(|s| s.direction) {
        Some(Direction::ClientToServer) => "C->S ",
        Some(Direction::ServerToClient) => "S->C ",
        None => "",
    };
    format!("#{} {dir}{}", frame + 1, segment_text(timeline, frame))
}

fn segment_text(timeline: &Timeline, frame: usize) -> String {
    let Some(f) = timeline.analyzer.frames().get(frame) else {
        return String::new();
    };
    let (Some(tcp), Some(seg)) = (f.summary.tcp, f.segment) else {
        return match &f.summary.error {
            Some(e) => format!("not decoded: {e}"),
            None => format!("{} bytes, not TCP", f.summary.captured_len),
        };
    };
    let ack = if tcp.flags.has(TcpFlags::ACK) {
        format!(" ack={}", seg.rel_ack)
    } else {
        String::new()
    };
    let notes = seg.notes.describe();
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", notes.join("; "))
    };
    format!(
        "[{}] seq={}{ack} len={}{notes}",
        tcp.flags,
        seg.rel_seq,
        tcp.payload_len + tcp.payload_missing
    )
}

fn segment_row(
    ui: &Ui,
    rect: Rect,
    lanes: &Lanes,
    pair: Option<(f32, f32)>,
    timeline: &Timeline,
    frame: usize,
    palette: &Palette,
) {
    let painter = ui.painter();
    let Some(f) = timeline.analyzer.frames().get(frame) else {
        return;
    };
    let flags = f.summary.tcp.map(|t| t.flags);
    let special = flags
        .is_some_and(|fl| fl.has(TcpFlags::SYN) || fl.has(TcpFlags::FIN) || fl.has(TcpFlags::RST));
    let color = if flags.is_some_and(|fl| fl.has(TcpFlags::RST)) {
        palette.negative
    } else if special {
        palette.accent
    } else {
        palette.segment
    };
    let y = rect.bottom() - 6.0;
    // A frame that is not TCP has no lifelines: its text goes in the middle.
    let (client_x, server_x) =
        pair.unwrap_or((lanes.left + LEFT_COLUMN + 26.0, lanes.right - RIGHT_MARGIN));
    match (pair, f.segment.map(|s| s.direction)) {
        (Some(_), Some(Direction::ClientToServer)) => {
            arrow(
                painter,
                pos2(client_x, y - 2.0),
                pos2(server_x, y + 2.0),
                Stroke::new(1.2, color),
            );
        }
        (Some(_), Some(Direction::ServerToClient)) => {
            arrow(
                painter,
                pos2(server_x, y - 2.0),
                pos2(client_x, y + 2.0),
                Stroke::new(1.2, color),
            );
        }
        _ => {}
    }
    let max_w = ((server_x - client_x).abs() - 20.0).max(40.0);
    let galley = single_line(
        ui,
        segment_text(timeline, frame),
        FontId::monospace(12.5),
        color,
        max_w,
    );
    let x = (client_x + server_x) / 2.0 - galley.size().x / 2.0;
    painter.galley(pos2(x, y - 4.0 - galley.size().y), galley, color);
    painter.text(
        pos2(lanes.left + 4.0, rect.center().y),
        Align2::LEFT_CENTER,
        format!("#{:<5}{}", frame + 1, time_text(timeline, frame)),
        FontId::monospace(12.0),
        palette.weak,
    );
}

/// A line with a filled head at `to`.
fn arrow(painter: &egui::Painter, from: Pos2, to: Pos2, stroke: Stroke) {
    let dir = (to - from).normalized();
    let head = 9.0 + stroke.width * 1.5;
    let back = to - dir * head;
    let side = Vec2::new(-dir.y, dir.x) * (head * 0.45);
    painter.line_segment([from, back], stroke);
    painter.add(Shape::convex_polygon(
        vec![to, back + side, back - side],
        stroke.color,
        Stroke::NONE,
    ));
}

/// Text laid out on one line, cut with "…" at `max_width`.
fn single_line(
    ui: &Ui,
    text: String,
    font: FontId,
    color: Color32,
    max_width: f32,
) -> std::sync::Arc<egui::Galley> {
    let mut job = egui::text::LayoutJob::simple_singleline(text, font, color);
    job.wrap = egui::text::TextWrapping::truncate_at_width(max_width);
    ui.painter().layout_job(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reveal_scrolls_as_little_as_needed() {
        let h = ROW_HEIGHT;
        let step = |a: usize, b: usize, focus: usize| Reveal { rows: a..b, focus };
        // Already in view: no move.
        assert_eq!(reveal_offset(&step(2, 5, 3), 0.0, 10.0 * h), 0.0);
        // Below the view: its last row at the bottom.
        assert_eq!(reveal_offset(&step(20, 25, 21), 0.0, 10.0 * h), 15.0 * h);
        // Above the view: its band at the top.
        assert_eq!(reveal_offset(&step(3, 6, 4), 40.0 * h, 10.0 * h), 3.0 * h);
        // Taller than the view: the band at the top while the selected row fits.
        assert_eq!(reveal_offset(&step(10, 40, 15), 0.0, 10.0 * h), 10.0 * h);
        // Else the selected row in the middle.
        let off = reveal_offset(&step(10, 40, 30), 0.0, 10.0 * h);
        assert!(off < 30.0 * h && off + 10.0 * h > 31.0 * h, "{off}");
    }

    #[test]
    fn decrypted_text_keeps_4_5_to_1_on_every_row_background() {
        use super::super::theme::contrast_ratio;
        for dark in [false, true] {
            let p = Palette::new(dark);
            let c = decrypted_color(&p);
            for bg in [p.background, p.selected, p.related, p.band] {
                let ratio = contrast_ratio(c, bg);
                assert!(ratio >= 4.5, "dark={dark}: {c:?} on {bg:?} is {ratio:.2}:1");
            }
            // And it is none of the colours of what crossed the wire in clear.
            assert!(![p.client, p.positive, p.negative, p.segment, p.text].contains(&c));
        }
    }

    #[test]
    fn lifelines_stay_in_place_only_while_they_have_room() {
        // The window's diagram at 1280 wide with every pane open: four in place.
        assert_eq!(lanes_that_fit(730.0), 4);
        // With the connection list open as well: one client and its server; the rows on
        // screen then choose the lifelines.
        assert_eq!(lanes_that_fit(460.0), 2);
        // Never fewer than a client and its server, never more than MAX_LANES.
        assert_eq!(lanes_that_fit(10.0), 2);
        assert_eq!(lanes_that_fit(5000.0), MAX_LANES);
    }
}
