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
                // Dark enough that every colour drawn on it keeps 4.5:1 (see the test).
                selected: Color32::from_rgb(60, 48, 0),
                related: Color32::from_rgb(34, 28, 4),
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

/// The colours drawn on a selected row (text, times, arrows' labels, captions).
pub fn colours_on_selected(p: &Palette) -> [(&'static str, Color32); 7] {
    [
        ("text", p.text),
        ("weak", p.weak),
        ("client", p.client),
        ("positive", p.positive),
        ("negative", p.negative),
        ("segment", p.segment),
        ("accent", p.accent),
    ]
}

/// WCAG 2 relative luminance of an sRGB colour (alpha ignored).
pub fn relative_luminance(c: Color32) -> f64 {
    let channel = |v: u8| {
        let v = f64::from(v) / 255.0;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(c.r()) + 0.7152 * channel(c.g()) + 0.0722 * channel(c.b())
}

/// WCAG 2 contrast ratio of two colours, from 1 (none) to 21 (black on white).
pub fn contrast_ratio(a: Color32, b: Color32) -> f64 {
    let (la, lb) = (relative_luminance(a), relative_luminance(b));
    let (hi, lo) = if la >= lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// Whether a reply line is not a success: -ERR, an SMTP 4xx/5xx code, or a line that is
/// no reply at all (neither +OK nor a 2xx/3xx code: a student's server that sent "ERR" or
/// "GARBAGE" did not succeed either).
pub fn is_negative_reply(line: &str) -> bool {
    !(line.starts_with("+OK") || line.starts_with('2') || line.starts_with('3'))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plus_ok_and_2xx_3xx_are_successes() {
        for ok in ["+OK 2 320", "250 OK", "354 go ahead", "220 ready"] {
            assert!(!is_negative_reply(ok), "{ok}");
        }
        for bad in [
            "-ERR no",
            "550 no",
            "421 bye",
            "ERR login incorrect",
            "GARBAGE",
            "",
        ] {
            assert!(is_negative_reply(bad), "{bad}");
        }
    }

    #[test]
    fn contrast_follows_wcag() {
        assert!((contrast_ratio(Color32::BLACK, Color32::WHITE) - 21.0).abs() < 1e-9);
        assert!((contrast_ratio(Color32::WHITE, Color32::WHITE) - 1.0).abs() < 1e-9);
        // #767676 on white is the classic 4.54:1.
        let grey = Color32::from_gray(0x76);
        assert!((contrast_ratio(grey, Color32::WHITE) - 4.54).abs() < 0.01);
    }

    #[test]
    fn the_selected_row_keeps_4_5_to_1_in_both_themes() {
        for dark in [false, true] {
            let p = Palette::new(dark);
            for (name, colour) in colours_on_selected(&p) {
                let ratio = contrast_ratio(colour, p.selected);
                assert!(
                    ratio >= 4.5,
                    "{name} on the selected row, dark={dark}: {ratio:.2}:1"
                );
            }
            // The selected row stands out from the rows around it.
            assert_ne!(p.selected, p.background);
            assert_ne!(p.selected, p.related);
            assert_ne!(p.selected, p.band);
        }
    }
}
