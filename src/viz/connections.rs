//! The connection list: every TCP connection of the timeline (a capture may hold
//! thousands), filtered by protocol, by address text and by whether it has problems (error
//! replies, units with remarks such as incomplete or unterminated, a reset). Picking one
//! shows its first step in the diagram ([`UiAction::GoToConnection`]).
//!
//! The summaries are computed once per timeline change ([`ConnectionList::refresh`]); only
//! the rows on screen are laid out.

use eframe::egui;
use eframe::egui::{RichText, ScrollArea, Ui};

use super::state::UiAction;
use super::theme::{Palette, is_negative_reply};
use crate::decode::UnitKind;
use crate::proto::Protocol;
use crate::timeline::Timeline;

/// Which protocol the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolFilter {
    #[default]
    All,
    Only(Protocol),
    /// Neither POP3 nor SMTP (or not known).
    Other,
}

/// The list's filters, as the user set them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionFilter {
    pub protocol: ProtocolFilter,
    /// Text the client or server address:port must contain.
    pub address: String,
    /// Only connections with error replies, units with remarks or a reset.
    pub problems_only: bool,
}

/// One connection, summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// Index into the analyzer's connections.
    pub index: usize,
    pub protocol: Option<Protocol>,
    /// `client -> server`, as address:port.
    pub client: String,
    pub server: String,
    pub units: usize,
    /// Replies that say no (`-ERR`, SMTP 4xx and 5xx).
    pub error_replies: usize,
    /// Units with a remark (incomplete, unterminated, bare LF, ...).
    pub remarks: usize,
    /// An RST was seen.
    pub reset: bool,
}

impl ConnectionSummary {
    /// Whether it has anything to look at.
    pub fn has_problems(&self) -> bool {
        self.error_replies > 0 || self.remarks > 0 || self.reset
    }

    /// Whether the filter lets it through.
    pub fn passes(&self, filter: &ConnectionFilter) -> bool {
        let protocol = match filter.protocol {
            ProtocolFilter::All => true,
            ProtocolFilter::Only(p) => self.protocol == Some(p),
            ProtocolFilter::Other => self.protocol.is_none(),
        };
        let text = filter.address.trim();
        let address = text.is_empty() || self.client.contains(text) || self.server.contains(text);
        protocol && address && (!filter.problems_only || self.has_problems())
    }
}

/// The summaries of a timeline's connections, kept until it changes.
#[derive(Debug, Default)]
pub struct ConnectionList {
    key: Option<(u64, usize, usize)>,
    pub summaries: Vec<ConnectionSummary>,
    /// Those the filter lets through (indices into `summaries`), and the filter they are for.
    shown: Vec<usize>,
    shown_for: Option<ConnectionFilter>,
}

impl ConnectionList {
    /// Recomputes the summaries when the timeline changed (a new run, more packets), and the
    /// shown list when the filter changed.
    pub fn refresh(&mut self, timeline: &Timeline, generation: u64, filter: &ConnectionFilter) {
        let key = (
            generation,
            timeline.packets.len(),
            timeline.analyzer.units().len(),
        );
        if self.key != Some(key) {
            self.summaries = summaries(timeline);
            self.key = Some(key);
            self.shown_for = None;
        }
        if self.shown_for.as_ref() != Some(filter) {
            self.shown = (0..self.summaries.len())
                .filter(|&i| self.summaries.get(i).is_some_and(|s| s.passes(filter)))
                .collect();
            self.shown_for = Some(filter.clone());
        }
    }

    /// The connections the filter lets through.
    pub fn shown(&self) -> impl Iterator<Item = &ConnectionSummary> {
        self.shown.iter().filter_map(|&i| self.summaries.get(i))
    }
}

/// Every connection of the timeline, summed up.
pub fn summaries(timeline: &Timeline) -> Vec<ConnectionSummary> {
    let units = timeline.analyzer.units();
    timeline
        .analyzer
        .connections()
        .iter()
        .map(|c| {
            let mut error_replies = 0;
            let mut remarks = 0;
            for unit in c.units.iter().filter_map(|&u| units.get(u)) {
                if unit.kind == UnitKind::Reply && is_negative_reply(&unit.text) {
                    error_replies += 1;
                }
                if !unit.notes.is_empty() {
                    remarks += 1;
                }
            }
            ConnectionSummary {
                index: c.index,
                protocol: c.mail_protocol(),
                client: c.client.to_string(),
                server: c.server.to_string(),
                units: c.units.len(),
                error_replies,
                remarks,
                reset: c.reset,
            }
        })
        .collect()
}

/// Draws the list with its filters; a click on a connection emits
/// [`UiAction::GoToConnection`].
pub fn connections_ui(
    ui: &mut Ui,
    list: &ConnectionList,
    filter: &mut ConnectionFilter,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    ui.horizontal(|ui| {
        for (choice, text) in [
            (ProtocolFilter::All, "All"),
            (ProtocolFilter::Only(Protocol::Pop3), "POP3"),
            (ProtocolFilter::Only(Protocol::Smtp), "SMTP"),
            (ProtocolFilter::Other, "Other"),
        ] {
            if ui
                .selectable_label(filter.protocol == choice, text)
                .clicked()
            {
                filter.protocol = choice;
            }
        }
    });
    let label = ui.label("Address contains");
    ui.add(
        egui::TextEdit::singleline(&mut filter.address)
            .hint_text("e.g. 10.0.0.5 or :110")
            .desired_width(f32::INFINITY),
    )
    .labelled_by(label.id);
    ui.checkbox(
        &mut filter.problems_only,
        "Only with problems (error replies, incomplete or odd units, resets)",
    );
    let shown = list.shown.len();
    ui.label(
        RichText::new(format!("{shown} of {} connections", list.summaries.len()))
            .color(palette.weak),
    );
    ui.separator();
    let row_height = ui.text_style_height(&egui::TextStyle::Body) * 2.0 + 8.0;
    ScrollArea::vertical()
        .id_salt("connection-list")
        .auto_shrink([false, false])
        .show_rows(ui, row_height, shown, |ui, range| {
            for summary in list.shown().skip(range.start).take(range.len()) {
                let protocol = summary.protocol.map_or("TCP", Protocol::name);
                let mut problems = Vec::new();
                if summary.error_replies > 0 {
                    problems.push(format!("{} error replies", summary.error_replies));
                }
                if summary.remarks > 0 {
                    problems.push(format!("{} with remarks", summary.remarks));
                }
                if summary.reset {
                    problems.push("reset".to_string());
                }
                let head = format!(
                    "#{} {protocol}  {} -> {}",
                    summary.index + 1,
                    summary.client,
                    summary.server
                );
                let detail = if problems.is_empty() {
                    format!("{} units", summary.units)
                } else {
                    format!("{} units; {}", summary.units, problems.join(", "))
                };
                let color = if summary.has_problems() {
                    palette.negative
                } else {
                    palette.weak
                };
                let mut job = egui::text::LayoutJob::default();
                let body = egui::TextStyle::Body.resolve(ui.style());
                let small = egui::TextStyle::Small.resolve(ui.style());
                job.append(&head, 0.0, egui::TextFormat::simple(body, palette.text));
                job.append(
                    &format!("\n{detail}"),
                    0.0,
                    egui::TextFormat::simple(small, color),
                );
                let response = ui
                    .add_sized(
                        [ui.available_width(), row_height - 4.0],
                        egui::Button::new(job),
                    )
                    .on_hover_text(format!(
                        "{head}: {detail}. Click to show its first step; right-click to \
                         follow its stream."
                    ));
                if response.clicked() {
                    actions.push(UiAction::GoToConnection(summary.index));
                }
                response.context_menu(|ui| {
                    if ui.button("Follow stream").clicked() {
                        actions.push(UiAction::FollowStream(summary.index));
                        ui.close();
                    }
                });
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(protocol: Option<Protocol>, errors: usize, reset: bool) -> ConnectionSummary {
        ConnectionSummary {
            index: 0,
            protocol,
            client: "10.0.0.5:40000".into(),
            server: "10.0.0.1:110".into(),
            units: 4,
            error_replies: errors,
            remarks: 0,
            reset,
        }
    }

    #[test]
    fn filters_by_protocol_address_and_problems() {
        let pop = summary(Some(Protocol::Pop3), 0, false);
        let all = ConnectionFilter::default();
        assert!(pop.passes(&all));
        let smtp_only = ConnectionFilter {
            protocol: ProtocolFilter::Only(Protocol::Smtp),
            ..ConnectionFilter::default()
        };
        assert!(!pop.passes(&smtp_only));
        let other = ConnectionFilter {
            protocol: ProtocolFilter::Other,
            ..ConnectionFilter::default()
        };
        assert!(!pop.passes(&other) && summary(None, 0, false).passes(&other));
        let by_port = ConnectionFilter {
            address: " :110 ".into(),
            ..ConnectionFilter::default()
        };
        assert!(pop.passes(&by_port));
        let elsewhere = ConnectionFilter {
            address: "192.168.".into(),
            ..ConnectionFilter::default()
        };
        assert!(!pop.passes(&elsewhere));
        let problems = ConnectionFilter {
            problems_only: true,
            ..ConnectionFilter::default()
        };
        assert!(!pop.passes(&problems));
        assert!(summary(Some(Protocol::Pop3), 1, false).passes(&problems));
        assert!(summary(Some(Protocol::Pop3), 0, true).passes(&problems));
    }
}
