//! The packet details pane: for the selected segment, the tree of link, IP, TCP and
//! POP3/SMTP fields (each with its byte range in the frame) over a hex dump in which the
//! selected field's bytes are highlighted; a click on a byte selects the field it belongs
//! to. A command or reply carried by several segments lists them all.
//!
//! A TLS record in the frame shows its header (content type, version, length) and what
//! became of it: in clear (a hello), decrypted with which keys, or why not. Commands and
//! replies decrypted from it (the timeline's key log held the session's secrets) are listed
//! apart, under "Decrypted from TLS", each marked decrypted in its own colour: they are
//! not bytes of the frame, whose hex dump shows only ciphertext.
//!
//! Nothing is invented: without capture the pane says "not captured" and why.

use std::ops::Range;

use eframe::egui;
use eframe::egui::text::{LayoutJob, TextFormat};
use eframe::egui::{CollapsingHeader, FontId, RichText, ScrollArea, Sense, Ui, vec2};

use super::diagram::decrypted_color;
use super::state::{FieldKey, SelectedField, UiAction, UiState};
use super::theme::Palette;
use crate::decode::UnitKind;
use crate::decode::tls_decrypt::{RecordOutcome, TlsConnection, version_name};
use crate::decode::tree::{Field, FrameTree, LAYER_PAYLOAD};
use crate::proto::Direction;
use crate::timeline::Timeline;

/// Bytes per hex-dump line when the pane is wide enough (else half as many).
const BYTES_PER_LINE: usize = 16;

/// Characters a hex line of `per_line` bytes takes: offset, hex (a gap after 8), ASCII.
fn line_chars(per_line: usize) -> usize {
    ascii_column(per_line) + per_line
}

/// Column (in characters) where the ASCII part of a hex line starts.
fn ascii_column(per_line: usize) -> usize {
    6 + per_line * 3 + usize::from(per_line > 8) + 1
}

/// A command or reply decrypted from a TLS record that the shown frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedLine {
    pub direction: Direction,
    pub kind: UnitKind,
    /// Its first line.
    pub text: String,
    pub lines: u32,
    /// The frames of the records that carried it.
    pub frames: Vec<usize>,
}

/// The decoded tree of the shown frame, kept until another frame is shown.
#[derive(Debug, Default)]
pub struct DetailsCache {
    /// Run, frame, key log entries (keys may come after the packets).
    key: Option<(u64, usize, usize)>,
    tree: Option<FrameTree>,
    decrypted: Vec<DecryptedLine>,
}

impl DetailsCache {
    /// The tree of `frame` (decoded once per frame and run).
    pub fn tree(
        &mut self,
        timeline: &Timeline,
        generation: u64,
        frame: usize,
    ) -> Option<&FrameTree> {
        self.refresh(timeline, generation, frame);
        self.tree.as_ref()
    }

    fn refresh(&mut self, timeline: &Timeline, generation: u64, frame: usize) {
        let key = (generation, frame, timeline.keylog.entries().len());
        if self.key != Some(key) {
            let (tree, decrypted) = frame_details(timeline, frame);
            self.tree = tree;
            self.decrypted = decrypted;
            self.key = Some(key);
        }
    }
}

/// The frame's field tree, with the POP3/SMTP units it carries added under the payload.
pub fn frame_tree_with_units(timeline: &Timeline, frame: usize) -> Option<FrameTree> {
    frame_details(timeline, frame).0
}

/// The frame's field tree with its units, and what was decrypted from its TLS records.
pub fn frame_details(timeline: &Timeline, frame: usize) -> (Option<FrameTree>, Vec<DecryptedLine>) {
    let Some(packet) = timeline.packets.get(frame) else {
        return (None, Vec::new());
    };
    let Some(mut tree) = timeline.analyzer.frame_tree(frame, &packet.data) else {
        return (None, Vec::new());
    };
    let conn = timeline
        .analyzer
        .frames()
        .get(frame)
        .and_then(|f| f.segment)
        .map(|s| s.conn as usize);
    let Some(connection) = conn.and_then(|c| timeline.analyzer.connections().get(c)) else {
        return (Some(tree), Vec::new());
    };
    let protocol = connection.mail_protocol().map_or("", |p| p.name());
    let carries_tls = connection.units.iter().any(|&u| {
        timeline.analyzer.units().get(u).is_some_and(|unit| {
            unit.kind == UnitKind::Tls && unit.carriers.iter().any(|c| c.frame == frame)
        })
    });
    let tls = carries_tls.then(|| timeline.tls_connection(connection.index));
    let mut decrypted: Vec<DecryptedLine> = Vec::new();
    let mut children = Vec::new();
    for &u in &connection.units {
        let Some(unit) = timeline.analyzer.units().get(u) else {
            continue;
        };
        let count = unit.carriers.len();
        for (k, carrier) in unit.carriers.iter().enumerate() {
            if carrier.frame != frame {
                continue;
            }
            let name = format!("{protocol} {}", unit.kind.name())
                .trim()
                .to_string();
            let mut field = Field::new(name, unit.text.clone(), carrier.range.clone());
            field.unit = Some(u);
            if count > 1 {
                field.note = Some(format!(
                    "part {} of {count}: this {} is carried by {count} segments",
                    k + 1,
                    unit.kind.name()
                ));
            }
            if let Some(tls) = &tls
                && unit.kind == UnitKind::Tls
            {
                tls_record_field(&mut field, tls, u, k == 0);
                for (_, d) in tls.units_in(u) {
                    let line = DecryptedLine {
                        direction: d.direction,
                        kind: d.kind,
                        text: d.text.clone(),
                        lines: d.lines,
                        frames: d.frames.clone(),
                    };
                    if !decrypted.contains(&line) {
                        decrypted.push(line);
                    }
                }
            }
            children.push(field);
        }
    }
    if !children.is_empty()
        && let Some(payload) = tree.layers.iter_mut().find(|l| l.name == LAYER_PAYLOAD)
    {
        payload.children.extend(children);
    }
    (Some(tree), decrypted)
}

/// Adds a TLS record's header fields (when this carrier holds its start) and its fate.
fn tls_record_field(field: &mut Field, tls: &TlsConnection, unit: usize, first: bool) {
    let Some(r) = tls.record(unit) else {
        return;
    };
    let at = field.range.start;
    if first && field.range.len() >= 5 {
        field.children.push(Field::new(
            "Content type",
            format!("{} ({})", r.content_type, content_type_name(r.content_type)),
            at..at + 1,
        ));
        field.children.push(Field::new(
            "Version",
            format!("0x{:04x} ({})", r.version, version_name(r.version)),
            at + 1..at + 3,
        ));
        field.children.push(Field::new(
            "Length",
            format!("{} bytes", r.length),
            at + 3..at + 5,
        ));
    }
    let fate = match &r.outcome {
        RecordOutcome::Clear(what) => format!("in clear: {what}"),
        RecordOutcome::Decrypted { content, keys } => {
            let suite = tls
                .session
                .as_ref()
                .and_then(|s| s.suite_name)
                .map(|n| format!(", {n}"))
                .unwrap_or_default();
            format!("decrypted with the {keys}{suite}: {content}")
        }
        RecordOutcome::NotDecrypted(why) => format!("not decrypted: {why}"),
    };
    field.note = Some(match field.note.take() {
        Some(n) => format!("{n}; {fate}"),
        None => fate,
    });
}

fn content_type_name(kind: u8) -> &'static str {
    match kind {
        20 => "change_cipher_spec",
        21 => "alert",
        22 => "handshake",
        23 => "application_data",
        24 => "heartbeat",
        _ => "unknown",
    }
}

/// The commands and replies decrypted from the frame's TLS records, apart from the
/// frame's own fields and marked decrypted.
fn decrypted_ui(ui: &mut Ui, lines: &[DecryptedLine], palette: &Palette) {
    if lines.is_empty() {
        return;
    }
    let color = decrypted_color(palette);
    egui::Frame::group(ui.style())
        .stroke(egui::Stroke::new(1.5, color))
        .show(ui, |ui| {
            ui.label(
                RichText::new(
                    "Decrypted from TLS (with the session's key log; not on the wire as text)",
                )
                .strong()
                .color(color),
            );
            for l in lines {
                let frames: Vec<String> = l.frames.iter().map(|f| format!("#{}", f + 1)).collect();
                let more = if l.lines > 1 {
                    format!(" (+{} lines)", l.lines - 1)
                } else {
                    String::new()
                };
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new("decrypted").small().strong().color(color));
                    ui.label(
                        RichText::new(shown(&format!("{} {}{more}", l.direction.tag(), l.text)))
                            .monospace()
                            .italics()
                            .color(color),
                    );
                    ui.label(
                        RichText::new(format!(
                            "{} from TLS record, frames {}",
                            l.kind.name(),
                            frames.join(", ")
                        ))
                        .small()
                        .color(palette.weak),
                    );
                });
            }
        });
}

/// Decoded text made drawable with the window's fonts (which lack "→"), control
/// characters shown as "·".
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{2192}' => out.push_str("->"),
            c if c.is_control() => out.push('\u{B7}'),
            c => out.push(c),
        }
    }
    out
}

/// The deepest field whose bytes hold `byte` (the first, where bit fields share a byte).
pub fn field_at(layers: &[Field], byte: usize) -> Option<&Field> {
    let field = layers.iter().find(|f| f.range.contains(&byte))?;
    Some(field_at(&field.children, byte).unwrap_or(field))
}

/// Draws the pane.
pub fn details_ui(
    ui: &mut Ui,
    timeline: &Timeline,
    generation: u64,
    state: &UiState,
    cache: &mut DetailsCache,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    let status = timeline.capture_status();
    let sel = &state.selection;
    if timeline.packets.is_empty() {
        if status.is_capturing() {
            ui.label("No packet captured yet: run a step.");
        } else {
            ui.label(
                RichText::new(format!(
                    "Not captured: {}",
                    status.why_not_captured().unwrap_or_default()
                ))
                .color(palette.negative)
                .strong(),
            );
            ui.label(
                "mailwire shows only packets it really captured; the commands and replies \
                 still run on real sockets and appear in the diagram.",
            );
        }
        return;
    }
    // A command or reply carried by several segments lists them all.
    if let (Some(s), Some(e)) = (sel.step, sel.exchange) {
        match timeline.unit(s, e) {
            Some(unit) => {
                let frames = unit.frames();
                ui.horizontal_wrapped(|ui| {
                    let what = if frames.len() == 1 {
                        "Carried by 1 segment:".to_string()
                    } else {
                        format!("Carried by {} segments:", frames.len())
                    };
                    ui.label(RichText::new(what).strong());
                    for f in frames {
                        let shown = sel.frame == Some(f);
                        if ui.selectable_label(shown, format!("#{}", f + 1)).clicked() {
                            actions.push(UiAction::SelectFrame(f));
                        }
                    }
                });
            }
            None => {
                ui.label(
                    RichText::new(
                        "This command or reply was not matched to captured segments (the capture \
                         may have missed it).",
                    )
                    .color(palette.negative),
                );
            }
        }
    }
    let Some(frame) = sel.frame else {
        ui.label(RichText::new("Click an arrow or a segment in the diagram.").color(palette.weak));
        return;
    };
    let Some(packet) = timeline.packets.get(frame) else {
        return;
    };
    ui.label(
        RichText::new(format!(
            "Frame #{}: {} bytes captured ({} on the wire)",
            frame + 1,
            packet.data.len(),
            packet.orig_len
        ))
        .strong()
        .size(15.0),
    );
    cache.refresh(timeline, generation, frame);
    decrypted_ui(ui, &cache.decrypted, palette);
    let Some(tree) = cache.tree.as_ref() else {
        return;
    };
    let highlight = sel.field.as_ref().map(|f| f.range.clone());
    // Never taller than the pane: a pane's content that overflows makes the pane itself
    // (and its divider line) reach over the panes below it.
    let tree_height = (ui.available_height() * 0.55).max(60.0);
    ScrollArea::vertical()
        .id_salt("field-tree")
        .max_height(tree_height)
        .min_scrolled_height(20.0)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            for (i, layer) in tree.layers.iter().enumerate() {
                let open = i != 0 || tree.layers.len() == 1;
                let title = shown(&format!("{}: {}", layer.name, layer.value));
                let header = CollapsingHeader::new(RichText::new(title).strong())
                    .id_salt(("layer", i))
                    .default_open(open);
                let response = header.show(ui, |ui| {
                    if let Some(note) = &layer.note {
                        ui.label(RichText::new(shown(note)).italics().color(palette.weak));
                    }
                    fields_ui(
                        ui,
                        &layer.children,
                        sel.field.as_ref(),
                        state.reveal_field,
                        palette,
                        actions,
                    );
                });
                if response.header_response.secondary_clicked() {
                    actions.push(UiAction::SelectField(SelectedField {
                        key: FieldKey::of(layer),
                        range: layer.range.clone(),
                    }));
                }
            }
            if let Some(e) = &tree.error {
                ui.label(RichText::new(e.to_string()).color(palette.negative));
            }
        });
    ui.separator();
    hex_ui(ui, &packet.data, highlight, tree, palette, actions);
}

fn fields_ui(
    ui: &mut Ui,
    fields: &[Field],
    selected: Option<&SelectedField>,
    reveal: bool,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    for field in fields {
        let is_selected =
            selected.is_some_and(|s| s.key == FieldKey::of(field) && s.range == field.range);
        let text = if field.value.is_empty() {
            shown(&field.name)
        } else {
            shown(&format!("{}: {}", field.name, field.value))
        };
        let response = ui.add(egui::Button::selectable(is_selected, text).wrap());
        if is_selected && reveal {
            response.scroll_to_me(Some(egui::Align::Center));
        }
        if response.clicked() {
            actions.push(UiAction::SelectField(SelectedField {
                key: FieldKey::of(field),
                range: field.range.clone(),
            }));
        }
        if let Some(note) = &field.note {
            ui.indent(("note", &field.name, field.range.start), |ui| {
                ui.label(
                    RichText::new(shown(note))
                        .italics()
                        .size(12.5)
                        .color(palette.weak),
                );
            });
        }
        if !field.children.is_empty() {
            ui.indent(("children", &field.name, field.range.start), |ui| {
                fields_ui(ui, &field.children, selected, reveal, palette, actions);
            });
        }
    }
}

/// The hex dump, 16 bytes a line (8 when the pane is narrow), only the visible lines laid
/// out.
fn hex_ui(
    ui: &mut Ui,
    data: &[u8],
    highlight: Option<Range<usize>>,
    tree: &FrameTree,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    // 16 bytes a line at 13.5 points, or at a smaller size down to 10; else 8 a line.
    let available = ui.available_width();
    let width_at = |size: f32| ui.fonts_mut(|f| f.glyph_width(&FontId::monospace(size), '0'));
    let full = line_chars(BYTES_PER_LINE) as f32;
    let size = (13.5 * available / (full * width_at(13.5).max(1.0))).clamp(10.0, 13.5);
    let font = FontId::monospace(size);
    let char_width = width_at(size).max(1.0);
    let per_line = if full * char_width <= available {
        BYTES_PER_LINE
    } else {
        BYTES_PER_LINE / 2
    };
    let row_height = ui.fonts_mut(|f| f.row_height(&font));
    let lines = data.len().div_ceil(per_line);
    ScrollArea::vertical()
        .id_salt("hex-dump")
        .auto_shrink([false, false])
        .min_scrolled_height(20.0)
        .show_rows(ui, row_height, lines, |ui, range| {
            for line in range {
                let start = line * per_line;
                let bytes = data
                    .get(start..(start + per_line).min(data.len()))
                    .unwrap_or_default();
                let job = hex_line(start, bytes, per_line, highlight.as_ref(), &font, palette);
                let galley = ui.painter().layout_job(job);
                let (rect, response) = ui.allocate_exact_size(
                    vec2(line_chars(per_line) as f32 * char_width, row_height),
                    Sense::click(),
                );
                ui.painter().galley(rect.min, galley, palette.text);
                response.widget_info(|| {
                    egui::WidgetInfo::labeled(
                        egui::Role::Button,
                        true,
                        format!(
                            "bytes {start:04x} to {:04x}",
                            start + bytes.len().saturating_sub(1)
                        ),
                    )
                });
                if response.clicked()
                    && let Some(pos) = response.interact_pointer_pos()
                {
                    let column = ((pos.x - rect.left()) / char_width).floor().max(0.0) as usize;
                    if let Some(i) = byte_at_column(column, per_line)
                        && let Some(byte) = start.checked_add(i).filter(|b| *b < data.len())
                        && let Some(field) = field_at(&tree.layers, byte)
                    {
                        actions.push(UiAction::SelectField(SelectedField {
                            key: FieldKey::of(field),
                            range: field.range.clone(),
                        }));
                    }
                }
            }
        });
}

/// Which byte of a hex line of `per_line` bytes a character column shows (hex or ASCII
/// part); the space after a byte counts as that byte's, so a click between two bytes still
/// selects one.
pub fn byte_at_column(column: usize, per_line: usize) -> Option<usize> {
    let ascii = ascii_column(per_line);
    if column >= ascii {
        let i = column - ascii;
        return (i < per_line).then_some(i);
    }
    let c = column.checked_sub(6)?;
    // With 16 a line, bytes 8..16 have one extra space before them.
    let c = if per_line > 8 && c > 8 * 3 {
        c - 1
    } else {
        c.min(8 * 3 - 1)
    };
    let i = c / 3;
    (i < per_line).then_some(i)
}

fn hex_line(
    start: usize,
    bytes: &[u8],
    per_line: usize,
    highlight: Option<&Range<usize>>,
    font: &FontId,
    palette: &Palette,
) -> LayoutJob {
    let plain = TextFormat::simple(font.clone(), palette.text);
    let weak = TextFormat::simple(font.clone(), palette.weak);
    let marked = TextFormat {
        background: palette.selected,
        ..TextFormat::simple(font.clone(), palette.text)
    };
    let is_marked = |i: usize| highlight.is_some_and(|r| r.contains(&(start + i)));
    let mut job = LayoutJob::default();
    job.append(&format!("{start:04x}  "), 0.0, weak.clone());
    for i in 0..per_line {
        if i == 8 {
            job.append(" ", 0.0, plain.clone());
        }
        match bytes.get(i) {
            Some(b) => {
                let format = if is_marked(i) {
                    marked.clone()
                } else {
                    plain.clone()
                };
                job.append(&format!("{b:02x}"), 0.0, format);
                // The gap between two marked bytes is marked too.
                let gap = if is_marked(i) && is_marked(i + 1) && i + 1 < bytes.len() {
                    marked.clone()
                } else {
                    plain.clone()
                };
                job.append(" ", 0.0, gap);
            }
            None => job.append("   ", 0.0, plain.clone()),
        }
    }
    job.append(" ", 0.0, plain.clone());
    for (i, b) in bytes.iter().enumerate() {
        let c = if b.is_ascii_graphic() || *b == b' ' {
            char::from(*b)
        } else {
            '.'
        };
        let format = if is_marked(i) {
            marked.clone()
        } else {
            weak.clone()
        };
        job.append(&c.to_string(), 0.0, format);
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_map_to_bytes() {
        let b = |c| byte_at_column(c, 16);
        assert_eq!(b(0), None);
        assert_eq!(b(6), Some(0));
        assert_eq!(b(7), Some(0));
        assert_eq!(b(8), Some(0));
        assert_eq!(b(9), Some(1));
        assert_eq!(b(6 + 7 * 3), Some(7));
        assert_eq!(b(6 + 8 * 3), Some(7));
        // The extra space before byte 8.
        assert_eq!(b(6 + 8 * 3 + 1), Some(8));
        assert_eq!(b(6 + 15 * 3 + 1), Some(15));
        assert_eq!(b(ascii_column(16)), Some(0));
        assert_eq!(b(ascii_column(16) + 15), Some(15));
        assert_eq!(b(ascii_column(16) + 16), None);
        // Eight a line, for a narrow pane.
        let b = |c| byte_at_column(c, 8);
        assert_eq!(b(6), Some(0));
        assert_eq!(b(6 + 7 * 3 + 1), Some(7));
        assert_eq!(b(6 + 8 * 3), Some(7));
        assert_eq!(b(ascii_column(8)), Some(0));
        assert_eq!(b(ascii_column(8) + 7), Some(7));
        assert_eq!(b(ascii_column(8) + 8), None);
        assert_eq!(line_chars(16), 72);
        assert_eq!(line_chars(8), 39);
    }

    #[test]
    fn deepest_field_wins() {
        let layers = vec![Field::new("IP", "", 14..34).with_children(vec![
            Field::new("Flags", "", 20..21).with_children(vec![Field::new("DF", "", 20..21)]),
            Field::new("TTL", "", 22..23),
        ])];
        assert_eq!(field_at(&layers, 20).map(|f| f.name.as_str()), Some("DF"));
        assert_eq!(field_at(&layers, 22).map(|f| f.name.as_str()), Some("TTL"));
        assert_eq!(field_at(&layers, 15).map(|f| f.name.as_str()), Some("IP"));
        assert_eq!(field_at(&layers, 99), None);
    }
}
