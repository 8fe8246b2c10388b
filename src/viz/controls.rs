//! The control bar (scenario picker, Reset, Home/Back/Next, Play/Pause with its speed, the
//! TCP view, the View menu with the presenter settings and panes, the Export menu) and the
//! capture-status banner; and the keyboard: Space or → for Next, ← for Back, Home for the
//! first step.

use eframe::egui;
use eframe::egui::{Key, RichText, Ui};

use super::state::{Pane, UiAction, UiState};
use super::theme::Palette;
use super::worker::WorkerStatus;
use crate::scenario::format::{BUILTIN, Scenario};
use crate::timeline::Timeline;

/// What the Export menu writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// The capture, annotated, for Wireshark.
    Pcapng,
    /// The transcript with frame numbers.
    Transcript,
    /// The sequence diagram as SVG.
    Svg,
}

impl ExportKind {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportKind::Pcapng => "pcapng",
            ExportKind::Transcript => "txt",
            ExportKind::Svg => "svg",
        }
    }
}

/// The built-in scenarios' names and titles, for the picker.
pub fn scenario_choices() -> Vec<(&'static str, String)> {
    BUILTIN
        .iter()
        .map(|(name, text)| {
            let title = Scenario::parse(text, name)
                .map(|s| s.title)
                .unwrap_or_default();
            (*name, title)
        })
        .collect()
}

/// Glyphs the toolbar and the panes' fold buttons draw: all in egui's default monospace
/// font (Hack; the proportional font lacks them, and emoji fonts are not built in). A test
/// checks.
pub mod glyph {
    /// The View menu.
    pub const VIEW: &str = "\u{2261}";
    /// Fold a pane up, unfold it down, fold right, unfold left.
    pub const FOLD_UP: &str = "\u{25B2}";
    pub const FOLD_DOWN: &str = "\u{25BC}";
    pub const FOLD_RIGHT: &str = "\u{25B6}";
    pub const FOLD_LEFT: &str = "\u{25C0}";
    /// Play.
    pub const PLAY: &str = "\u{25B6}";
    /// Every glyph above.
    pub const ALL: [&str; 6] = [VIEW, FOLD_UP, FOLD_DOWN, FOLD_RIGHT, FOLD_LEFT, PLAY];

    /// A glyph as text, in the font that has it.
    pub fn text(glyph: &str) -> eframe::egui::RichText {
        eframe::egui::RichText::new(glyph).monospace()
    }
}

/// A button showing `atoms` whose accessible name is `name` (a glyph reads badly aloud, and
/// tests find buttons by name).
pub fn named_button<'a>(
    ui: &mut Ui,
    enabled: bool,
    atoms: impl egui::IntoAtoms<'a>,
    name: &str,
) -> egui::Response {
    let response = ui.add_enabled(enabled, egui::Button::new(atoms));
    let name = name.to_string();
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, enabled, &name));
    response
}

/// The export folder as typed (empty: the current folder), made absolute for showing.
pub fn export_folder(typed: &str) -> std::path::PathBuf {
    let typed = typed.trim();
    let path = if typed.is_empty() {
        std::path::PathBuf::from(".")
    } else {
        std::path::PathBuf::from(typed)
    };
    std::path::absolute(&path)
        .ok()
        .and_then(|p| std::fs::canonicalize(&p).ok().or(Some(p)))
        .unwrap_or(path)
}

/// What the window shows, for the control bar: a scenario's run, or a capture file.
#[derive(Debug)]
pub struct SourceView<'a> {
    /// The capture file shown, if the window shows one.
    pub file: Option<&'a std::path::Path>,
    /// A file being read, if any.
    pub loading: Option<&'a super::loader::Loading>,
    /// Whether a worker can run scenarios (a window opened on a file has none).
    pub has_worker: bool,
    /// The ports watched, if the window shows a watch.
    pub watching: Option<&'a super::watch::Watching>,
}

/// Why Reset and the live panel do nothing for a capture file.
pub const FILE_HAS_NO_SERVERS: &str = "A capture file or a watch is shown: its steps are \
    recorded, so there is nothing to run again and no server to talk to. Pick a scenario (or \
    start mailwire without a file or --watch) to use the console and the menu client.";

/// Draws the control bar: one row at 1280x720 in presenter mode (zoom 1.3): the scenario,
/// Reset, Home/Back/Next, Play with its speed, where the view stands, the TCP, live-use and
/// quiz switches, then the View menu (zoom, theme, full screen,
/// panes) and the Export menu.
#[allow(clippy::too_many_arguments)]
pub fn controls_ui(
    ui: &mut Ui,
    state: &UiState,
    timeline: &Timeline,
    status: &WorkerStatus,
    choices: &[(&'static str, String)],
    source: &SourceView<'_>,
    open_path: &mut String,
    watch_form: &mut super::watch::WatchForm,
    export_dir: &mut String,
    actions: &mut Vec<UiAction>,
    exports: &mut Vec<ExportKind>,
) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 6.0;
        let file_name = source.file.map(|p| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        });
        // A watch: its ports are in the Open menu and the banner; the picker says "watch".
        let file_name = file_name.or_else(|| source.watching.map(|_| "watch".to_string()));
        let current = match &file_name {
            Some(name) => name.clone(),
            None => choices
                .iter()
                .find(|(n, _)| *n == state.scenario)
                .map_or_else(|| state.scenario.clone(), |(n, _)| (*n).to_string()),
        };
        let title = choices
            .iter()
            .find(|(n, _)| *n == state.scenario)
            .map_or("", |(_, t)| t.as_str());
        open_menu(ui, source, open_path, watch_form, actions);
        let picker = ui.add_enabled_ui(source.has_worker, |ui| {
            egui::ComboBox::from_id_salt("scenario-picker")
                .selected_text(current)
                .width(120.0)
                .truncate()
                .show_ui(ui, |ui| {
                    for (name, title) in choices {
                        let text = format!("{name}: {title}");
                        let picked = source.file.is_none()
                            && source.watching.is_none()
                            && state.scenario == *name;
                        if ui.selectable_label(picked, text).clicked() && !picked {
                            actions.push(UiAction::Load((*name).to_string()));
                        }
                    }
                })
                .response
        });
        let has_worker = source.has_worker;
        picker.inner.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::ComboBox, has_worker, "Scenario")
        });
        let shown = match (source.watching, &file_name) {
            (Some(w), _) => Some(w.request.title()),
            (None, Some(name)) => Some(format!("Capture file {name}")),
            (None, None) => None,
        };
        match &shown {
            Some(shown) if source.has_worker => picker
                .inner
                .on_hover_text(format!("{shown}; pick a scenario to run it instead")),
            Some(shown) => picker.inner.on_disabled_hover_text(format!(
                "{shown}. This window runs no servers: start mailwire without a file or \
                 --watch to run the scenarios."
            )),
            None => picker.inner.on_hover_text(format!("Scenario: {title}")),
        };
        let showing_file = source.file.is_some() || source.watching.is_some();
        if ui
            .add_enabled(!showing_file, egui::Button::new("Reset"))
            .on_hover_text("Run the scenario again from a fresh start")
            .on_disabled_hover_text(FILE_HAS_NO_SERVERS)
            .clicked()
        {
            actions.push(UiAction::Reset);
        }
        ui.separator();
        let recorded = timeline.steps.len();
        let can_back = state.cursor.is_some_and(|c| c > 0);
        if ui
            .add_enabled(recorded > 0, egui::Button::new("Home"))
            .on_hover_text("First step (Home key)")
            .clicked()
        {
            actions.push(UiAction::Home);
        }
        if ui
            .add_enabled(can_back, egui::Button::new("Back"))
            .on_hover_text("Previous step (the left arrow key)")
            .clicked()
        {
            actions.push(UiAction::Back);
        }
        let can_next = !state.at_end(timeline, status) && !state.awaiting_step;
        if ui
            .add_enabled(can_next, egui::Button::new(RichText::new("Next").strong()))
            .on_hover_text("Next step (Space or the right arrow key)")
            .clicked()
        {
            actions.push(UiAction::Next);
        }
        let play = if state.playing {
            named_button(ui, true, "Pause", "Pause")
        } else {
            named_button(ui, true, (glyph::text(glyph::PLAY), "Play"), "Play")
        };
        if play
            .on_hover_text("Run the steps one after another")
            .clicked()
        {
            actions.push(UiAction::TogglePlay);
        }
        let mut speed = state.seconds_per_step;
        let drag = egui::DragValue::new(&mut speed)
            .range(0.5..=10.0)
            .speed(0.05)
            .max_decimals(1)
            .suffix(" s");
        let response = ui
            .add(drag)
            .on_hover_text("Seconds between steps while playing (drag, or click and type)");
        response.widget_info(|| {
            egui::WidgetInfo::slider(true, f64::from(speed), "Seconds between steps")
        });
        if response.changed() {
            actions.push(UiAction::SetSpeed(speed));
        }
        // Out of every step there will be: those recorded (console steps included) and the
        // scenario's steps still to run.
        let to_go = if state.recorded_only {
            0
        } else {
            status.total_steps.saturating_sub(status.steps_run)
        };
        let position = match state.cursor {
            Some(c) => format!("Step {}/{}", c + 1, recorded + to_go),
            None => "No step yet".to_string(),
        };
        let label = ui.label(RichText::new(position).strong());
        if status.total_steps > 0 {
            label.on_hover_text(format!(
                "{} of the scenario's {} steps have run; {to_go} to go",
                status.steps_run, status.total_steps
            ));
        }
        if state.awaiting_step {
            ui.spinner();
        }
        ui.separator();
        let mut tcp = state.tcp_view;
        if ui
            .checkbox(&mut tcp, "TCP")
            .on_hover_text("Show every TCP segment in the diagram")
            .changed()
        {
            actions.push(UiAction::SetTcpView(tcp));
        }
        let mut live = state.live_panel && !showing_file;
        if ui
            .add_enabled(!showing_file, egui::Checkbox::new(&mut live, "Live"))
            .on_hover_text("Live use: the console and the menu client (Manage Mail, Send Mail)")
            .on_disabled_hover_text(FILE_HAS_NO_SERVERS)
            .changed()
        {
            actions.push(UiAction::SetLivePanel(live));
        }
        let mut quiz = state.quiz.on;
        let score = state.quiz.score();
        if ui
            .checkbox(&mut quiz, "Quiz")
            .on_hover_text(format!(
                "Quiz mode: before a step shows, the class predicts the reply (answers are kept \
                 per question; score {}/{})",
                score.right, score.asked
            ))
            .changed()
        {
            actions.push(UiAction::SetQuiz(quiz));
        }
        ui.separator();
        view_menu(ui, state, showing_file, actions);
        export_menu(ui, export_dir, exports);
    });
}

/// The Open menu: a path field (no native file dialog: see README) and the progress of a
/// file being read (files can also be dropped on the window); then the Watch ports form.
fn open_menu(
    ui: &mut Ui,
    source: &SourceView<'_>,
    open_path: &mut String,
    watch_form: &mut super::watch::WatchForm,
    actions: &mut Vec<UiAction>,
) {
    ui.menu_button("Open...", |ui| {
        ui.set_min_width(420.0);
        ui.set_max_width(520.0);
        let label = ui.label("Capture file (pcap or pcapng), its path:");
        let field = ui
            .add(egui::TextEdit::singleline(open_path).desired_width(400.0))
            .labelled_by(label.id);
        let typed = !open_path.trim().is_empty();
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
        if (ui.add_enabled(typed, egui::Button::new("Open")).clicked() || enter) && typed {
            actions.push(UiAction::Open(open_path.clone()));
            ui.close();
        }
        ui.label(
            RichText::new(
                "Or drop a capture file on the window. Next and Back then walk its steps; \
                 mailwire's own exports keep their captions.",
            )
            .small(),
        );
        if let Some(loading) = source.loading {
            ui.label(format!("Reading {} ...", loading.path.display()));
        }
        ui.separator();
        super::watch::watch_form_ui(ui, watch_form, source.watching, actions);
    })
    .response
    .on_hover_text(
        "Open a pcap or pcapng capture file (or drop one on the window), or watch TCP ports \
         live",
    );
}

/// The progress of a capture file being read, as a bar across the toolbar.
pub fn loading_ui(ui: &mut Ui, loading: &super::loader::Loading) {
    let fraction = loading.fraction();
    let what = if loading.decoded() {
        format!(
            "{}: {} packets decoded; making the steps ...",
            loading.path.display(),
            loading.packets()
        )
    } else {
        format!(
            "Reading {}: {} packets decoded ({:.0}%)",
            loading.path.display(),
            loading.packets(),
            fraction * 100.0
        )
    };
    ui.add(
        egui::ProgressBar::new(fraction)
            .text(what)
            .animate(true)
            .desired_width(ui.available_width()),
    );
}

/// The View menu: zoom, theme, full screen, and which panes are unfolded.
fn view_menu(ui: &mut Ui, state: &UiState, showing_file: bool, actions: &mut Vec<UiAction>) {
    let response = ui.menu_button((glyph::text(glyph::VIEW), "View"), |ui| {
        ui.horizontal(|ui| {
            ui.label("Zoom");
            if named_button(ui, true, "\u{2212}", "Smaller").clicked() {
                actions.push(UiAction::SetZoom(state.zoom - 0.1));
            }
            ui.label(format!("{:.0}%", state.zoom * 100.0));
            if named_button(ui, true, "+", "Larger").clicked() {
                actions.push(UiAction::SetZoom(state.zoom + 0.1));
            }
        });
        let mut dark = state.dark;
        if ui.checkbox(&mut dark, "Dark theme").changed() {
            actions.push(UiAction::SetDark(dark));
        }
        let mut full = state.fullscreen;
        if ui.checkbox(&mut full, "Full screen").changed() {
            actions.push(UiAction::SetFullscreen(full));
        }
        ui.separator();
        ui.label(RichText::new("Panes").strong());
        for (pane, shown, name) in [
            (
                Pane::Narration,
                state.narration_panel,
                "Narration and server state",
            ),
            (Pane::Details, state.details_panel, "Packet details"),
            // Hidden with a file or a watch shown (no servers to use): not ticked then.
            (Pane::Live, state.live_panel && !showing_file, "Live use"),
            (
                Pane::Connections,
                state.connections_panel,
                "Connections (list and filters)",
            ),
            (
                Pane::Check,
                state.check_panel,
                "Check a server (conformance)",
            ),
        ] {
            let mut on = shown;
            let enabled = !(pane == Pane::Live && showing_file);
            if ui
                .add_enabled(enabled, egui::Checkbox::new(&mut on, name))
                .on_disabled_hover_text(FILE_HAS_NO_SERVERS)
                .changed()
            {
                actions.push(UiAction::SetPane(pane, on));
            }
        }
    });
    response
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, "View"));
}

/// The Export menu: the folder (shown in full), then one item per format. Files are named
/// after the scenario and never overwrite one already there (a number is added).
fn export_menu(ui: &mut Ui, export_dir: &mut String, exports: &mut Vec<ExportKind>) {
    ui.menu_button("Export", |ui| {
        let label = ui.label("Folder (empty: the current folder)");
        ui.text_edit_singleline(export_dir).labelled_by(label.id);
        let folder = export_folder(export_dir);
        ui.label(RichText::new(format!("Files go to {}", folder.display())).monospace());
        ui.label("An existing file is never overwritten: a number is added to the name.");
        ui.separator();
        for (kind, text) in [
            (ExportKind::Pcapng, "Capture for Wireshark (.pcapng)"),
            (ExportKind::Transcript, "Transcript (.txt)"),
            (ExportKind::Svg, "Sequence diagram (.svg)"),
        ] {
            if ui.button(text).clicked() {
                exports.push(kind);
            }
        }
    });
}

/// Keyboard shortcuts, unless a text field has the keyboard.
pub fn keyboard_actions(ctx: &egui::Context, actions: &mut Vec<UiAction>) {
    if ctx.egui_wants_keyboard_input() {
        return;
    }
    ctx.input(|i| {
        if i.key_pressed(Key::Space) || i.key_pressed(Key::ArrowRight) {
            actions.push(UiAction::Next);
        }
        if i.key_pressed(Key::ArrowLeft) {
            actions.push(UiAction::Back);
        }
        if i.key_pressed(Key::Home) {
            actions.push(UiAction::Home);
        }
    });
}

/// The capture-status banner: green when packets are captured; red, with the reason and
/// the fix, when not (the window stays useful: commands and replies still show).
pub fn banner_ui(
    ui: &mut Ui,
    timeline: &Timeline,
    note: Option<&str>,
    errors: &[String],
    palette: &Palette,
    dismiss: &mut bool,
) {
    let status = timeline.capture_status();
    let capturing = status.is_capturing();
    let (fill, text_color) = if capturing {
        (palette.ok_banner, palette.text)
    } else {
        (palette.bad_banner, egui::Color32::WHITE)
    };
    egui::Frame::NONE
        .fill(fill)
        .inner_margin(egui::Margin::symmetric(8, 4))
        .corner_radius(4.0)
        .show(ui, |ui| {
            ui.set_min_width(ui.available_width());
            let head = if capturing {
                format!("Packets: {}", status.describe())
            } else {
                format!(
                    "Packets NOT captured: {}",
                    status.why_not_captured().unwrap_or_default()
                )
            };
            ui.label(RichText::new(head).strong().color(text_color));
            if !capturing {
                ui.label(
                    // The reason above ends with its own fix, for this program and this
                    // way of running it.
                    RichText::new(
                        "Every command and reply still shows; only the packet panes stay \
                         empty.",
                    )
                    .color(text_color),
                );
            }
            if let Some(note) = note {
                ui.label(RichText::new(note).color(text_color));
            }
        });
    if !errors.is_empty() {
        egui::Frame::NONE
            .fill(palette.bad_banner)
            .inner_margin(egui::Margin::symmetric(8, 4))
            .corner_radius(4.0)
            .show(ui, |ui| {
                ui.set_min_width(ui.available_width());
                ui.horizontal_wrapped(|ui| {
                    for e in errors {
                        ui.label(RichText::new(e).strong().color(egui::Color32::WHITE));
                    }
                    if ui.button("Dismiss").clicked() {
                        *dismiss = true;
                    }
                });
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toolbar_glyphs_are_in_the_default_fonts() {
        let ctx = egui::Context::default();
        let mut out = ctx.run_ui(egui::RawInput::default(), |_| {});
        out.textures_delta.clear();
        for g in glyph::ALL {
            let found = ctx.fonts_mut(|f| f.has_glyphs(&egui::FontId::monospace(15.0), g));
            assert!(found, "{g:?} is not in the default monospace font");
        }
        // The proportional font lacks them: a glyph drawn in it would be a box.
        let boxed = ctx.fonts_mut(|f| f.has_glyphs(&egui::FontId::proportional(15.0), glyph::PLAY));
        assert!(
            !boxed,
            "if this fails, the glyphs may use the proportional font again"
        );
    }
}
