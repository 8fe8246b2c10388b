//! Light and dark high-contrast themes (for a projector as much as a laptop) and the
//! colours the panes draw with.

use eframe::egui::{Color32, Stroke, Visuals};

/// The colours of one theme.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Palette {
    pub text: Color32,
    pub weak: Color32,
    pub background: Color32,
    /// Client-to-server arrows.
    pub client: Color32,
    /// Positive replies (+OK, 2xx, 3xx).
    pub positive: Color32,
    /// Negative replies (-ERR, 4xx, 5xx) and failures.
    pub negative: Color32,
    /// TCP segments.
    pub segment: Color32,
    /// Step bands.
    pub band: Color32,
    /// The selected row, the highlighted bytes.
    pub selected: Color32,
    /// Rows related to the selection (the segments that carried the selected exchange).
    pub related: Color32,
    pub lifeline: Color32,
    pub accent: Color32,
    /// The capture banner when capturing.
    pub ok_banner: Color32,
    /// The capture banner when not capturing.
    pub bad_banner: Color32,
}

impl Palette {
    /// The palette of the light or dark theme.
    pub fn new(dark: bool) -> Self {
        if dark {
            Palette {
                text: Color32::WHITE,
                weak: Color32::from_gray(190),
                background: Color32::BLACK,
                client: Color32::from_rgb(120, 180, 255),
                positive: Color32::from_rgb(110, 230, 110),
                negative: Color32::from_rgb(255, 110, 100),
                segment: Color32::from_gray(175),
                band: Color32::from_rgb(28, 36, 60),
                selected: Color32::from_rgb(120, 95, 0),
                related: Color32::from_rgb(60, 50, 10),
                lifeline: Color32::from_gray(140),
                accent: Color32::from_rgb(255, 210, 80),
                ok_banner: Color32::from_rgb(0, 80, 30),
                bad_banner: Color32::from_rgb(150, 0, 0),
            }
        } else {
            Palette {
                text: Color32::BLACK,
                weak: Color32::from_gray(70),
                background: Color32::WHITE,
                client: Color32::from_rgb(0, 60, 190),
                positive: Color32::from_rgb(0, 115, 0),
                negative: Color32::from_rgb(190, 0, 0),
                segment: Color32::from_gray(85),
                band: Color32::from_rgb(226, 234, 250),
                selected: Color32::from_rgb(255, 224, 110),
                related: Color32::from_rgb(255, 244, 200),
                lifeline: Color32::from_gray(120),
                accent: Color32::from_rgb(0, 70, 160),
                ok_banner: Color32::from_rgb(205, 240, 210),
                bad_banner: Color32::from_rgb(200, 0, 0),
            }
        }
    }

    /// The colour for a reply line (or code): positive, negative.
    pub fn reply_color(&self, line: &str) -> Color32 {
        if is_negative_reply(line) {
            self.negative
        } else {
            self.positive
        }
    }
}

/// Whether a reply line is negative: -ERR, or an SMTP 4xx/5xx code.
pub fn is_negative_reply(line: &str) -> bool {
    line.starts_with("-ERR") || line.starts_with('4') || line.starts_with('5')
}

/// egui visuals with strong contrast: black on white, or white on black.
pub fn visuals(dark: bool) -> Visuals {
    let p = Palette::new(dark);
    let mut v = if dark {
        Visuals::dark()
    } else {
        Visuals::light()
    };
    v.override_text_color = Some(p.text);
    v.panel_fill = p.background;
    v.window_fill = p.background;
    v.extreme_bg_color = if dark {
        Color32::from_gray(20)
    } else {
        Color32::from_gray(248)
    };
    v.selection.bg_fill = p.selected;
    v.selection.stroke = Stroke::new(1.0, p.text);
    v.hyperlink_color = p.accent;
    v
}
