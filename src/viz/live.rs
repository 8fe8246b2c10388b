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
use super::theme::{Palette, is_negative_reply};
use super::worker::{MENU_POP3_SESSION, MENU_SMTP_SESSION, WorkerStatus};
use crate::client::reply_lines::{ReplyShape, marks, wire_lines};
use crate::proto::Direction;
use crate::proto::Protocol;
use crate::scenario::format::Action;
use crate::timeline::Timeline;

/// How many lines of the console session the console shows at once (it scrolls).
const CONSOLE_LINES: usize = 10;

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
            // Each column stays inside its own width (nothing spills over the next one) and
            // lays out top-down (a column's justified layout would stretch wrapped text).
            in_column(console, |ui| {
                console_ui(ui, &mut forms.console, timeline, status, palette, actions);
            });
            in_column(manage, |ui| {
                manage_ui(ui, &mut forms.manage, timeline, status, palette, actions);
            });
            in_column(send, |ui| {
                send_ui(ui, &mut forms.send, timeline, status, palette, actions);
            });
        }
    });
}

/// The width of the labels' column in the forms' grids.
const LABEL_WIDTH: f32 = 92.0;

/// Runs `add` top-down inside the column's width, clipped to it.
fn in_column(ui: &mut Ui, add: impl FnOnce(&mut Ui)) {
    let width = ui.available_width();
    let mut clip = ui.clip_rect();
    clip.max.x = clip.max.x.min(ui.max_rect().right() + 2.0);
    ui.set_clip_rect(clip);
    ui.with_layout(egui::Layout::top_down(egui::Align::Min), |ui| {
        ui.set_max_width(width);
        add(ui);
    });
}

/// The width left for a field right of the labels' column.
fn field_width(ui: &Ui) -> f32 {
    (ui.available_width() - LABEL_WIDTH - ui.spacing().item_spacing.x).max(60.0)
}

/// A two-column grid whose labels' column has a fixed width.
fn form_grid(id: &str) -> egui::Grid {
    egui::Grid::new(id)
        .num_columns(2)
        .min_col_width(LABEL_WIDTH)
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
        egui::CollapsingHeader::new(
            RichText::new("Outside programs cannot reach mailwire's servers (private network)")
                .color(palette.weak),
        )
        .id_salt("outside-programs")
        .show(ui, |ui| {
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
        });
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
    width: f32,
    name: &str,
    text: &mut String,
    status: &WorkerStatus,
    palette: &Palette,
) {
    let label = ui.label(name);
    ui.add(
        TextEdit::singleline(text)
            .hint_text("empty: mailwire's own")
            .desired_width(width),
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
    let width = field_width(ui);
    // The command line first, then what came back, then the settings: on a 720-line
    // projector the panel is short, and typing is what it is for.
    form_grid("console-command").show(ui, |ui| {
        let label = ui.label("Command");
        ui.horizontal(|ui| {
            ui.set_max_width(width);
            let send_width = 52.0;
            let response = ui
                .add(
                    TextEdit::singleline(&mut form.line)
                        .hint_text("USER mrose")
                        .font(egui::TextStyle::Monospace)
                        .desired_width((width - send_width).max(40.0)),
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
    // The session's lines, as a terminal would show them: every line of every reply.
    session_output(
        ui,
        timeline,
        session.as_str(),
        palette,
        "Replies appear here and in the diagram.",
    );
    form_grid("console-grid").show(ui, |ui| {
        let label = ui.label("Session");
        ui.add(TextEdit::singleline(&mut form.session).desired_width(width))
            .labelled_by(label.id)
            .on_hover_text(
                "Its own session name, so a typed command never disturbs the scenario's \
                     session (type a scenario's session name, such as main, to type into it)",
            );
        ui.end_row();
        ui.label("Protocol");
        ui.horizontal_wrapped(|ui| {
            ui.radio_value(&mut form.protocol, Protocol::Pop3, "POP3");
            ui.radio_value(&mut form.protocol, Protocol::Smtp, "SMTP");
        });
        ui.end_row();
        server_field(ui, width, "Server", &mut form.server, status, palette);
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
    });
}

/// The lines of one session (every line of every command and reply, with their marks, and
/// each failed step's reason) in a scrolling box; `empty` while there are none.
fn session_output(ui: &mut Ui, timeline: &Timeline, session: &str, palette: &Palette, empty: &str) {
    let lines = console_lines(timeline, session);
    egui::Frame::NONE
        .fill(ui.visuals().extreme_bg_color)
        .inner_margin(4.0)
        .show(ui, |ui| {
            ui.set_min_width(ui.available_width());
            if lines.is_empty() {
                ui.label(RichText::new(empty).color(palette.weak));
            }
            let row = ui.text_style_height(&egui::TextStyle::Monospace);
            egui::ScrollArea::vertical()
                .id_salt(("session-output", session))
                .max_height(row * CONSOLE_LINES as f32)
                .stick_to_bottom(true)
                .auto_shrink([false, true])
                .show(ui, |ui| {
                    // A reply's further lines take its first line's colour: "4.txt 386" in
                    // a listing is no 4xx reply.
                    let mut reply = palette.positive;
                    for line in &lines {
                        let (tag, color) = match line.from {
                            Some(Direction::ClientToServer) => ("C:", palette.client),
                            Some(Direction::ServerToClient) => {
                                if line.first {
                                    reply = palette.reply_color(&line.text);
                                }
                                ("S:", reply)
                            }
                            None => ("--", palette.negative),
                        };
                        let tag = if line.first { tag } else { "  " };
                        ui.label(
                            RichText::new(format!("{tag} {}", line.text))
                                .monospace()
                                .color(color),
                        );
                    }
                });
        });
}

/// One line of the console's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLine {
    /// Who sent it; `None`: what went wrong with a step (a framing error's diagnosis).
    pub from: Option<Direction>,
    /// The first line of a command or reply (shown after `C:` or `S:`).
    pub first: bool,
    /// The line as on the wire, with its marks.
    pub text: String,
}

/// The console's output for `session`: every line of every command and reply (a POP3
/// multi-line reply's "." line and byte-stuffed lines marked, as the console client
/// marks them), and each failed step's reason.
pub fn console_lines(timeline: &Timeline, session: &str) -> Vec<ConsoleLine> {
    let mut out = Vec::new();
    for step in timeline
        .steps
        .iter()
        .filter(|s| s.outcome.session == session)
    {
        for e in &step.outcome.exchanges {
            let from = Some(e.direction());
            let pop3_multi_line = e.kind == crate::exchange::ExchangeKind::Reply
                && step.outcome.protocol == Some(Protocol::Pop3)
                && !e.more.is_empty();
            if pop3_multi_line {
                let mut wire = format!("{}\r\n", e.line);
                for l in &e.more {
                    wire.push_str(l);
                    wire.push_str("\r\n");
                }
                let complete = e.more.last().is_some_and(|l| l == ".");
                let shape = ReplyShape::Pop3MultiLine { complete };
                for (i, l) in wire_lines(wire.as_bytes(), shape).iter().enumerate() {
                    let said = marks(l, Protocol::Pop3);
                    let text = if said.is_empty() {
                        l.text.clone()
                    } else {
                        format!("{}   {said}", l.text)
                    };
                    out.push(ConsoleLine {
                        from,
                        first: i == 0,
                        text,
                    });
                }
            } else {
                let lines = std::iter::once(&e.line).chain(&e.more);
                for (i, l) in lines.enumerate() {
                    out.push(ConsoleLine {
                        from,
                        first: i == 0,
                        text: l.clone(),
                    });
                }
            }
        }
        if let Err(e) = &step.outcome.check {
            out.push(ConsoleLine {
                from: None,
                first: true,
                text: e.to_string(),
            });
        }
    }
    out
}

fn manage_ui(
    ui: &mut Ui,
    form: &mut ManageForm,
    timeline: &Timeline,
    status: &WorkerStatus,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    ui.label(RichText::new("Manage Mail (POP3)").strong());
    let width = field_width(ui);
    form_grid("manage-mail").show(ui, |ui| {
        let label = ui.label("User");
        ui.add(TextEdit::singleline(&mut form.user).desired_width(width))
            .labelled_by(label.id);
        ui.end_row();
        let label = ui.label("Password");
        ui.add(
            TextEdit::singleline(&mut form.password)
                .password(true)
                .desired_width(width),
        )
        .labelled_by(label.id);
        ui.end_row();
        // Who can log in: the scenario's users (on mailwire's own server).
        ui.label("");
        users_ui(ui, form, status, palette);
        ui.end_row();
        let label = ui.label("Message");
        ui.add(TextEdit::singleline(&mut form.number).desired_width(50.0))
            .labelled_by(label.id)
            .on_hover_text("The message number for Read and Delete (LIST shows them)");
        ui.end_row();
        server_field(ui, width, "POP3 server", &mut form.server, status, palette);
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
    if let Some(problem) = &form.problem {
        ui.label(RichText::new(problem).color(palette.negative));
    } else if let Some(outcome) = form
        .login_after
        .and_then(|after| login_outcome(timeline, after, &form.user))
    {
        let color = if outcome.is_ok() {
            palette.positive
        } else {
            palette.negative
        };
        ui.label(RichText::new(outcome.unwrap_or_else(|e| e)).color(color));
    } else if !connected {
        ui.label(RichText::new("Log in first (connects to the POP3 server).").color(palette.weak));
    }
    session_output(
        ui,
        timeline,
        MENU_POP3_SESSION,
        palette,
        "The replies appear here.",
    );
}

/// The scenario's users, each a button that fills in the name and password.
fn users_ui(ui: &mut Ui, form: &mut ManageForm, status: &WorkerStatus, palette: &Palette) {
    ui.horizontal_wrapped(|ui| {
        if status.users.is_empty() {
            ui.label(RichText::new("(the scenario has no users)").color(palette.weak));
            return;
        }
        ui.label(RichText::new("Users:").color(palette.weak));
        for (name, password) in &status.users {
            let chosen = form.user == *name;
            if ui
                .selectable_label(chosen, name)
                .on_hover_text(format!("Log in as {name} (password {password})"))
                .clicked()
            {
                form.user = name.clone();
                form.password = password.clone();
            }
        }
    });
}

/// How the last log-in went, from the Manage Mail steps after the first `after`: logged in,
/// refused (with the server's reply; a maildrop locked by the scenario's own session is
/// explained), failed, or `None` while it runs.
pub fn login_outcome(
    timeline: &Timeline,
    after: usize,
    user: &str,
) -> Option<Result<String, String>> {
    let steps: Vec<_> = timeline
        .steps
        .iter()
        .filter(|s| s.outcome.session == MENU_POP3_SESSION)
        .skip(after)
        .collect();
    if let Some(e) = steps.iter().find_map(|s| s.outcome.check.as_ref().err()) {
        return Some(Err(format!("Not logged in: {e}")));
    }
    let last = steps.last()?;
    let reply = last
        .outcome
        .exchanges
        .iter()
        .rev()
        .find(|e| e.direction() == Direction::ServerToClient)?;
    if !is_negative_reply(&reply.line) {
        return Some(Ok(format!("Logged in as {user}: {}", reply.line)));
    }
    // RFC 2449's IN-USE response code: another session holds the maildrop's lock.
    if reply.line.starts_with("-ERR [IN-USE]") {
        return Some(Err(format!(
            "{}: {user}'s maildrop is in use. A POP3 session holds its maildrop's lock from \
             log-in to QUIT (RFC 1939 section 8), and another session (the scenario's own, or \
             the console's) is logged in as {user} now. Log in as another user, or press Next until the scenario has said \
             QUIT. (Before each scenario step, the window closes its own POP3 sessions with \
             QUIT, so the scenario is never blocked by them.)",
            reply.line
        )));
    }
    Some(Err(format!(
        "Not logged in: the server said {}",
        reply.line
    )))
}

/// Whether the last Send mail went through, from the Send Mail steps after the first
/// `after`: the reply to the message (250), the first refusal, the error, or `None` while
/// it runs.
pub fn send_outcome(timeline: &Timeline, after: usize) -> Option<Result<String, String>> {
    let steps: Vec<_> = timeline
        .steps
        .iter()
        .filter(|s| s.outcome.session == MENU_SMTP_SESSION)
        .skip(after)
        .collect();
    for step in &steps {
        for (i, e) in step.outcome.exchanges.iter().enumerate() {
            if e.direction() == Direction::ServerToClient && is_negative_reply(&e.line) {
                return Some(Err(format!("Not sent: the server said {}", e.line)));
            }
            if e.kind == crate::exchange::ExchangeKind::Content {
                let reply = step
                    .outcome
                    .exchanges
                    .iter()
                    .skip(i + 1)
                    .find(|r| r.direction() == Direction::ServerToClient);
                if let Some(reply) = reply {
                    return Some(if is_negative_reply(&reply.line) {
                        Err(format!("Not sent: the server said {}", reply.line))
                    } else {
                        Ok(format!("Sent: the server said {}", reply.line))
                    });
                }
            }
        }
        if let Err(e) = &step.outcome.check {
            return Some(Err(format!("Not sent: {e}")));
        }
    }
    None
}

fn send_ui(
    ui: &mut Ui,
    form: &mut SendForm,
    timeline: &Timeline,
    status: &WorkerStatus,
    palette: &Palette,
    actions: &mut Vec<UiAction>,
) {
    ui.label(RichText::new("Send Mail (SMTP)").strong());
    let width = field_width(ui);
    form_grid("send-mail").show(ui, |ui| {
        for (name, value) in [
            ("From", &mut form.from),
            ("To", &mut form.to),
            ("Subject", &mut form.subject),
        ] {
            let label = ui.label(name);
            ui.add(TextEdit::singleline(value).desired_width(width))
                .labelled_by(label.id);
            ui.end_row();
        }
        let label = ui.label("Body");
        ui.add(
            TextEdit::multiline(&mut form.body)
                .desired_rows(2)
                .desired_width(width),
        )
        .labelled_by(label.id);
        ui.end_row();
        server_field(ui, width, "SMTP server", &mut form.server, status, palette);
    });
    if ui.button("Send mail").clicked() {
        actions.push(UiAction::SendMail);
    }
    if let Some(problem) = &form.problem {
        ui.label(RichText::new(problem).strong().color(palette.negative));
    } else if let Some(after) = form.sent_after {
        match send_outcome(timeline, after) {
            Some(Ok(ok)) => {
                ui.label(RichText::new(ok).strong().color(palette.positive));
            }
            Some(Err(e)) => {
                ui.label(RichText::new(e).strong().color(palette.negative));
            }
            None => {
                ui.label(RichText::new("Sending ...").color(palette.weak));
            }
        }
    }
    session_output(
        ui,
        timeline,
        MENU_SMTP_SESSION,
        palette,
        "The replies appear here.",
    );
}
