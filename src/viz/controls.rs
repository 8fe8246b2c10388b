//! The control bar (scenario picker, Reset, Home/Back/Next, Play/Pause with its speed, the
//! TCP view, presenter settings, export) and the capture-status banner; and the keyboard:
//! Space or → for Next, ← for Back, Home for the first step.

use eframe::egui;
use eframe::egui::{Key, RichText, Ui};

use super::state::{UiAction, UiState};
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

/// Draws the control bar.
#[allow(clippy::too_many_arguments)]
pub fn controls_ui(
    ui: &mut Ui,
    state: &UiState,
    timeline: &Timeline,
    status: &WorkerStatus,
    choices: &[(&'static str, String)],
    export_path: &mut String,
    actions: &mut Vec<UiAction>,
    exports: &mut Vec<ExportKind>,
) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 8.0;
        let label = ui.label("Scenario");
        let current = choices
            .iter()
            .find(|(n, _)| *n == state.scenario)
            .map_or_else(|| state.scenario.clone(), |(n, _)| (*n).to_string());
        egui::ComboBox::from_id_salt("scenario-picker")
            .selected_text(current)
            .width(170.0)
            .show_ui(ui, |ui| {
                for (name, title) in choices {
                    let text = format!("{name}: {title}");
                    if ui.selectable_label(state.scenario == *name, text).clicked()
                        && state.scenario != *name
                    {
                        actions.push(UiAction::Load((*name).to_string()));
                    }
                }
            })
            .response
            .labelled_by(label.id);
        if ui
            .button("Reset")
            .on_hover_text("Run the scenario again from a fresh start")
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
        let play = if state.playing { "Pause" } else { "Play" };
        if ui.button(play).clicked() {
            actions.push(UiAction::TogglePlay);
        }
        let mut speed = state.seconds_per_step;
        ui.spacing_mut().slider_width = 70.0;
        let slider = egui::Slider::new(&mut speed, 0.5..=10.0)
            .suffix(" s")
            .max_decimals(1);
        let label = ui.label("Speed");
        if ui
            .add(slider)
            .labelled_by(label.id)
            .on_hover_text("Seconds between steps while playing")
            .changed()
        {
            actions.push(UiAction::SetSpeed(speed));
        }
        let position = match state.cursor {
            Some(c) => format!("Step {} of {}", c + 1, recorded),
            None => "No step yet".to_string(),
        };
        let scenario = if status.total_steps > 0 && status.steps_run < status.total_steps {
            format!(" ({} to go)", status.total_steps - status.steps_run)
        } else {
            String::new()
        };
        ui.label(RichText::new(format!("{position}{scenario}")).strong());
        if state.awaiting_step {
            ui.spinner();
        }
        ui.separator();
        let mut tcp = state.tcp_view;
        if ui.checkbox(&mut tcp, "TCP segments").changed() {
            actions.push(UiAction::SetTcpView(tcp));
        }
        let mut live = state.live_panel;
        if ui.checkbox(&mut live, "Live use").changed() {
            actions.push(UiAction::SetLivePanel(live));
        }
        ui.separator();
        if ui
            .button("A-")
            .on_hover_text("Smaller (presenter zoom)")
            .clicked()
        {
            actions.push(UiAction::SetZoom(state.zoom - 0.1));
        }
        ui.label(format!("{:.0}%", state.zoom * 100.0));
        if ui
            .button("A+")
            .on_hover_text("Larger (presenter zoom)")
            .clicked()
        {
            actions.push(UiAction::SetZoom(state.zoom + 0.1));
        }
        let theme = if state.dark { "Light" } else { "Dark" };
        if ui.button(theme).clicked() {
            actions.push(UiAction::SetDark(!state.dark));
        }
        let full = if state.fullscreen {
            "Leave full screen"
        } else {
            "Full screen"
        };
        if ui.button(full).clicked() {
            actions.push(UiAction::SetFullscreen(!state.fullscreen));
        }
        ui.menu_button("Export", |ui| {
            ui.horizontal(|ui| {
                let label = ui.label("File name (no extension)");
                ui.text_edit_singleline(export_path).labelled_by(label.id);
            });
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
