//! Live use: a raw command console (type `USER mrose`, see the reply arrive, as in seed
//! 004) and the seed-001 menu client as two forms, Manage Mail (POP3: log in, list, read,
//! delete, quit) and Send Mail (SMTP: From/To/Subject/body, with the X@Y check). Their
//! traffic runs through the worker as ad-hoc steps and appears like a scenario's.
//!
//! Each has a server field (empty: mailwire's own server; `HOST:PORT`: another one, such as
//! a student's server or Dovecot), and a settings line above them says where mailwire's
//! servers listen, so outside clients can be pointed at them.

use eframe::egui;
use eframe::egui::{RichText, TextEdit, Ui};

use super::state::{
    ConsoleForm, LiveForms, ManageForm, SendForm, UiAction, extra_step, server_target,
};
use super::theme::Palette;
use super::worker::{MENU_POP3_SESSION, WorkerStatus};
use crate::proto::Direction;
use crate::proto::Protocol;
use crate::scenario::format::Action;
use crate::timeline::Timeline;

/// How many of the console session's last lines the console shows.
const CONSOLE_LINES: usize = 8;

/// Draws the live-use panel: console | Manage Mail | Send Mail, side by side.
pub fn live_ui(
    ui: &mut Ui,
    forms: &mut LiveForms,
    timeline: &Timeline,
    status: &WorkerStatus,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    settings_ui(ui, status, palette);
    ui.separator();
    ui.columns(3, |columns| {
        if let [console, manage, send] = columns {
            console_ui(
                console,
                &mut forms.console,
                timeline,
                status,
                palette,
                actions,
            );
            manage_ui(manage, &mut forms.manage, status, palette, actions);
            send_ui(send, &mut forms.send, status, palette, actions);
        }
    });
}

/// The command that lets mailwire capture on the real loopback, naming this program.
fn setcap_fix() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "<path of the mailwire program>".to_string());
    format!("sudo setcap cap_net_raw,cap_net_admin+eip {exe}")
}

/// Why other servers cannot be reached from the sandbox, and the fix.
fn sandbox_note() -> String {
    format!(
        "mailwire runs in its own private network (no root needed), so other servers on this \
         computer cannot be reached. To watch them, start the window with `mailwire \
         --no-sandbox`; it then runs on the real loopback, where capture needs root or \
         capture rights: {}",
        setcap_fix()
    )
}

/// Where mailwire's servers listen, for outside clients (Thunderbird, curl, a student's
/// client), or, in the sandbox, why outside programs cannot reach them.
fn settings_ui(ui: &mut Ui, status: &WorkerStatus, palette: &Palette) {
    if status.sandboxed {
        ui.label(
            RichText::new(format!(
                "Outside programs (Thunderbird, curl, your own client) cannot reach mailwire's \
                 servers: mailwire runs in its own private network (no root needed). To let \
                 them connect, start the window with `mailwire --no-sandbox`; capture on the \
                 real loopback then needs root or capture rights: {}",
                setcap_fix()
            ))
            .color(palette.weak),
        );
        return;
    }
    match (status.pop3_addr, status.smtp_addr) {
        (Some(pop3), Some(smtp)) => {
            ui.label(format!(
                "Outside clients (Thunderbird, curl, your own client) can connect to mailwire's \
                 servers: POP3 at {pop3}, SMTP at {smtp}. Their traffic is captured like the \
                 scenario's, but only when it goes to those ports."
            ));
        }
        _ => {
            ui.label(
                RichText::new("mailwire's servers are not running (no scenario is loaded).")
                    .color(palette.weak),
            );
        }
    }
}

/// A server field in a two-column grid: the text edit, then (on rows of their own) why the
/// text is not an address and, in the sandbox, why another server cannot be reached.
fn server_field(
    ui: &mut Ui,
    name: &str,
    text: &mut String,
    status: &WorkerStatus,
    palette: &Palette,
) {
    let label = ui.label(name);
    ui.add(
        TextEdit::singleline(text)
            .hint_text("empty: mailwire's own")
            .desired_width(140.0),
    )
    .labelled_by(label.id)
    .on_hover_text("Empty: mailwire's own server. HOST:PORT (127.0.0.1:8110): another server.");
    ui.end_row();
    match server_target(text) {
        Err(why) => {
            ui.label("");
            ui.label(RichText::new(why).color(palette.negative));
            ui.end_row();
        }
        Ok(Some(_)) if status.sandboxed => {
            ui.label("");
            ui.label(RichText::new(sandbox_note()).color(palette.weak));
            ui.end_row();
        }
        Ok(_) => {}
    }
}

fn console_ui(
    ui: &mut Ui,
    form: &mut ConsoleForm,
    timeline: &Timeline,
    status: &WorkerStatus,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    ui.label(RichText::new("Console (type commands by hand)").strong());
    let mut send = false;
    let session = form.session.trim().to_string();
    let connected = status.connected.contains(&session);
    egui::Grid::new("console-grid")
        .num_columns(2)
        .show(ui, |ui| {
            let label = ui.label("Session");
            ui.horizontal(|ui| {
                ui.add(TextEdit::singleline(&mut form.session).desired_width(70.0))
                    .labelled_by(label.id);
                ui.radio_value(&mut form.protocol, Protocol::Pop3, "POP3");
                ui.radio_value(&mut form.protocol, Protocol::Smtp, "SMTP");
            });
            ui.end_row();
            server_field(ui, "Server", &mut form.server, status, palette);
            ui.label("");
            ui.horizontal(|ui| {
                if connected {
                    ui.label(RichText::new("connected").color(palette.positive));
                    if ui.button("Disconnect").clicked() {
                        actions.push(UiAction::Run(vec![extra_step(
                            &session,
                            "Console: close the connection without QUIT".to_string(),
                            Action::Drop,
                        )]));
                    }
                } else {
                    ui.label(RichText::new("not connected").color(palette.weak))
                        .on_hover_text("The first line sent connects the session.");
                }
            });
            ui.end_row();
            let label = ui.label("Command");
            ui.horizontal(|ui| {
                let response = ui
                    .add(
                        TextEdit::singleline(&mut form.line)
                            .hint_text("USER mrose")
                            .font(egui::TextStyle::Monospace)
                            .desired_width((ui.available_width() - 60.0).max(80.0)),
                    )
                    .labelled_by(label.id);
                if response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                    send = true;
                    response.request_focus();
                }
                if ui.button("Send").clicked() {
                    send = true;
                }
            });
            ui.end_row();
        });
    if send {
        actions.push(UiAction::ConsoleSend);
    }
    // The session's recent lines, as a terminal would show them.
    let session = session.as_str();
    let lines: Vec<(Direction, String)> = timeline
        .steps
        .iter()
        .filter(|s| s.outcome.session == session)
        .flat_map(|s| {
            s.outcome.exchanges.iter().map(|e| {
                let more = if e.more.is_empty() {
                    String::new()
                } else {
                    format!("  (+{} lines)", e.more.len())
                };
                (e.direction(), format!("{}{more}", e.line))
            })
        })
        .collect();
    let skip = lines.len().saturating_sub(CONSOLE_LINES);
    egui::Frame::NONE
        .fill(ui.visuals().extreme_bg_color)
        .inner_margin(4.0)
        .show(ui, |ui| {
            ui.set_min_width(ui.available_width());
            if lines.is_empty() {
                ui.label(
                    RichText::new("Replies appear here and in the diagram.").color(palette.weak),
                );
            }
            for (direction, line) in lines.iter().skip(skip) {
                let (tag, color) = match direction {
                    Direction::ClientToServer => ("C:", palette.client),
                    Direction::ServerToClient => ("S:", palette.reply_color(line)),
                };
                ui.label(
                    RichText::new(format!("{tag} {line}"))
                        .monospace()
                        .color(color),
                );
            }
        });
}

fn manage_ui(
    ui: &mut Ui,
    form: &mut ManageForm,
    status: &WorkerStatus,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    ui.label(RichText::new("Manage Mail (POP3)").strong());
    egui::Grid::new("manage-mail")
        .num_columns(2)
        .show(ui, |ui| {
            let label = ui.label("User");
            ui.add(TextEdit::singleline(&mut form.user).desired_width(140.0))
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Password");
            ui.add(
                TextEdit::singleline(&mut form.password)
                    .password(true)
                    .desired_width(140.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Message number");
            ui.add(TextEdit::singleline(&mut form.number).desired_width(50.0))
                .labelled_by(label.id);
            ui.end_row();
            server_field(ui, "POP3 server", &mut form.server, status, palette);
        });
    let connected = status.connected.contains(MENU_POP3_SESSION);
    ui.horizontal_wrapped(|ui| {
        if ui.button("Log in").clicked() {
            actions.push(UiAction::ManageLogIn);
        }
        let step = |caption: &str, action: Action| {
            extra_step(MENU_POP3_SESSION, format!("Manage Mail: {caption}"), action)
        };
        if ui
            .add_enabled(connected, egui::Button::new("List"))
            .clicked()
        {
            actions.push(UiAction::Run(vec![step("LIST", Action::List)]));
        }
        for (label, read) in [("Read", true), ("Delete", false)] {
            if ui
                .add_enabled(connected, egui::Button::new(label))
                .clicked()
            {
                actions.push(UiAction::ManageMessage { read });
            }
        }
        if ui
            .add_enabled(connected, egui::Button::new("Quit"))
            .clicked()
        {
            actions.push(UiAction::Run(vec![step("QUIT", Action::Quit)]));
        }
    });
    if !connected {
        ui.label(RichText::new("Log in first (connects to the POP3 server).").color(palette.weak));
    }
    if let Some(problem) = &form.problem {
        ui.label(RichText::new(problem).color(palette.negative));
    }
}

fn send_ui(
    ui: &mut Ui,
    form: &mut SendForm,
    status: &WorkerStatus,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    ui.label(RichText::new("Send Mail (SMTP)").strong());
    egui::Grid::new("send-mail").num_columns(2).show(ui, |ui| {
        for (name, value) in [
            ("From", &mut form.from),
            ("To", &mut form.to),
            ("Subject", &mut form.subject),
        ] {
            let label = ui.label(name);
            ui.add(TextEdit::singleline(value).desired_width(f32::INFINITY))
                .labelled_by(label.id);
            ui.end_row();
        }
        let label = ui.label("Body");
        ui.add(
            TextEdit::multiline(&mut form.body)
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        ui.end_row();
        server_field(ui, "SMTP server", &mut form.server, status, palette);
    });
    if ui.button("Send mail").clicked() {
        actions.push(UiAction::SendMail);
    }
    if let Some(problem) = &form.problem {
        ui.label(RichText::new(problem).strong().color(palette.negative));
    }
}
