//! The server-state pane: what the servers' own events say, up to the viewed step — each
//! POP3 session's state (AUTHORIZATION, TRANSACTION, UPDATE), its maildrop with the
//! messages marked deleted and what QUIT expunged; each SMTP session's envelope (sender,
//! recipients) and where its messages were delivered.
//!
//! [`ServerView::from_events`] is a pure fold over [`ServerEvent`]s.

use std::collections::BTreeSet;

use eframe::egui::{RichText, Ui};

use super::theme::Palette;
use crate::proto::Protocol;
use crate::proto::pop3::server::{Pop3Event, Pop3State};
use crate::proto::smtp::server::{SmtpEvent, SmtpState};
use crate::servers::{EventKind, ServerEvent};
use crate::timeline::Timeline;

/// One POP3 session as its events tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3View {
    pub session: u64,
    /// The last of RFC 1939's three states the session was in (AUTHORIZATION, TRANSACTION,
    /// UPDATE). The machine's final [`Pop3State::Closed`] is not an RFC state: it sets
    /// [`Pop3View::ended`] instead, so a session that quit shows UPDATE, where its deletions
    /// happened (RFC 1939 section 6), and not a jump to "CLOSED".
    pub state: Pop3State,
    /// The server ended the session (after QUIT's answer, or when the connection broke).
    pub ended: bool,
    pub user: Option<String>,
    /// Messages and octets in the maildrop at login.
    pub maildrop: Option<(usize, u64)>,
    /// Messages marked deleted (and not undone).
    pub marked: BTreeSet<u32>,
    /// Messages QUIT removed.
    pub expunged: Vec<u32>,
    /// Failed logins: the user name tried, and whether the maildrop was locked.
    pub failed_logins: Vec<(String, bool)>,
    /// Why the session ended, once it did.
    pub closed: Option<String>,
}

/// One SMTP session as its events tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpView {
    pub session: u64,
    pub state: SmtpState,
    /// The accepted sender of the current (or last) transaction.
    pub sender: Option<String>,
    /// Accepted recipients.
    pub recipients: Vec<String>,
    /// Refused recipients, with the reply.
    pub refused: Vec<(String, String)>,
    /// Messages delivered: recipients and size in octets.
    pub delivered: Vec<(Vec<String>, usize)>,
    pub closed: Option<String>,
}

/// Every server session seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerView {
    pub pop3: Vec<Pop3View>,
    pub smtp: Vec<SmtpView>,
    /// The timeline has steps but no server events at all: its servers are not mailwire's
    /// (a capture file, a watch, another server), so their state is not known.
    pub not_ours: bool,
}

impl ServerView {
    /// Folds events, in order, into the sessions' state.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a ServerEvent>) -> Self {
        let mut view = ServerView::default();
        for event in events {
            view.push(event);
        }
        view
    }

    /// The state after the events of steps `0..=step` of the timeline.
    pub fn up_to_step(timeline: &Timeline, step: usize) -> Self {
        let mut view = Self::from_events(
            timeline
                .steps
                .iter()
                .take(step.saturating_add(1))
                .flat_map(|s| s.outcome.events.iter()),
        );
        view.not_ours = !timeline.steps.is_empty() && timeline.events.is_empty();
        view
    }

    /// The POP3 session's view, created on first sight.
    fn pop3_mut(&mut self, session: u64) -> Option<&mut Pop3View> {
        if !self.pop3.iter().any(|p| p.session == session) {
            self.pop3.push(Pop3View {
                session,
                state: Pop3State::Authorization,
                ended: false,
                user: None,
                maildrop: None,
                marked: BTreeSet::new(),
                expunged: Vec::new(),
                failed_logins: Vec::new(),
                closed: None,
            });
        }
        self.pop3.iter_mut().find(|p| p.session == session)
    }

    /// The SMTP session's view, created on first sight.
    fn smtp_mut(&mut self, session: u64) -> Option<&mut SmtpView> {
        if !self.smtp.iter().any(|p| p.session == session) {
            self.smtp.push(SmtpView {
                session,
                state: SmtpState::Connected,
                sender: None,
                recipients: Vec::new(),
                refused: Vec::new(),
                delivered: Vec::new(),
                closed: None,
            });
        }
        self.smtp.iter_mut().find(|p| p.session == session)
    }

    /// Takes one event.
    pub fn push(&mut self, event: &ServerEvent) {
        match (&event.kind, event.protocol) {
            (EventKind::SessionOpened { .. }, Protocol::Pop3) => {
                self.pop3_mut(event.session);
            }
            (EventKind::SessionOpened { .. }, Protocol::Smtp) => {
                self.smtp_mut(event.session);
            }
            (EventKind::SessionClosed { reason }, Protocol::Pop3) => {
                if let Some(s) = self.pop3_mut(event.session) {
                    s.closed = Some(reason.to_string());
                }
            }
            (EventKind::SessionClosed { reason }, Protocol::Smtp) => {
                if let Some(s) = self.smtp_mut(event.session) {
                    s.closed = Some(reason.to_string());
                }
            }
            (EventKind::Pop3(e), _) => self.pop3_event(event.session, e),
            (EventKind::Smtp(e), _) => self.smtp_event(event.session, e),
        }
    }

    fn pop3_event(&mut self, session: u64, event: &Pop3Event) {
        let Some(s) = self.pop3_mut(session) else {
            return;
        };
        match event {
            Pop3Event::StateChanged {
                to: Pop3State::Closed,
                ..
            } => s.ended = true,
            Pop3Event::StateChanged { to, .. } => s.state = *to,
            Pop3Event::LoggedIn {
                user,
                messages,
                octets,
            } => {
                s.user = Some(user.clone());
                s.maildrop = Some((*messages, *octets));
            }
            Pop3Event::LoginFailed { user, in_use } => {
                s.failed_logins.push((user.clone(), *in_use));
            }
            Pop3Event::MessageMarkedDeleted { msg } => {
                s.marked.insert(*msg);
            }
            Pop3Event::DeletionsUndone { msgs } => {
                for m in msgs {
                    s.marked.remove(m);
                }
            }
            Pop3Event::Expunged { msgs } => {
                s.expunged.extend(msgs.iter().copied());
                for m in msgs {
                    s.marked.remove(m);
                }
            }
            Pop3Event::CommandReceived { .. } | Pop3Event::ReplySent { .. } => {}
        }
    }

    fn smtp_event(&mut self, session: u64, event: &SmtpEvent) {
        let Some(s) = self.smtp_mut(session) else {
            return;
        };
        match event {
            SmtpEvent::StateChanged { to, .. } => {
                s.state = *to;
                if *to == SmtpState::Ready {
                    // A finished (or reset) transaction: a new envelope begins.
                    s.recipients.clear();
                    s.refused.clear();
                    s.sender = None;
                }
            }
            SmtpEvent::SenderAccepted { address } => s.sender = Some(address.clone()),
            SmtpEvent::RecipientAccepted { address } => s.recipients.push(address.clone()),
            SmtpEvent::RecipientRefused {
                address,
                code,
                text,
            } => s.refused.push((address.clone(), format!("{code} {text}"))),
            SmtpEvent::MessageDelivered { recipients, bytes } => {
                s.delivered.push((recipients.clone(), *bytes));
            }
            SmtpEvent::CommandReceived { .. }
            | SmtpEvent::ReplySent { .. }
            | SmtpEvent::ContentReceived { .. } => {}
        }
    }
}

/// Draws the server state.
pub fn server_state_ui(ui: &mut Ui, view: &ServerView, palette: &Palette) {
    if view.not_ours {
        ui.label(
            RichText::new(
                "Not known: this pane shows the state of mailwire's own servers, and these \
                 steps' servers are others (a capture file, a watch, a server named by \
                 address). Only what crossed the wire is shown.",
            )
            .color(palette.weak),
        );
        return;
    }
    if view.pop3.is_empty() && view.smtp.is_empty() {
        ui.label(RichText::new("No server session yet.").color(palette.weak));
        return;
    }
    for s in &view.pop3 {
        pop3_ui(ui, s, palette);
        ui.add_space(6.0);
    }
    for s in &view.smtp {
        smtp_ui(ui, s, palette);
        ui.add_space(6.0);
    }
}

/// A session's first line: protocol, number, state (large), and why it closed.
fn session_header_ui(
    ui: &mut Ui,
    protocol: &str,
    session: u64,
    state: &str,
    closed: Option<&str>,
    palette: &Palette,
) {
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(format!("{protocol} session #{session}")).strong());
        ui.label(
            RichText::new(state)
                .strong()
                .size(18.0)
                .color(palette.accent),
        );
        if let Some(reason) = closed {
            ui.label(RichText::new(format!("closed: {reason}")).color(palette.weak));
        }
    });
}

fn pop3_ui(ui: &mut Ui, s: &Pop3View, palette: &Palette) {
    let closed = match (&s.closed, s.ended) {
        (Some(reason), _) => Some(reason.as_str()),
        (None, true) => Some("the server ended the session"),
        (None, false) => None,
    };
    session_header_ui(ui, "POP3", s.session, s.state.name(), closed, palette);
    for (user, in_use) in &s.failed_logins {
        let why = if *in_use {
            "maildrop locked by another session"
        } else {
            "wrong name or password"
        };
        ui.label(RichText::new(format!("login as {user} refused: {why}")).color(palette.negative));
    }
    let Some((messages, octets)) = s.maildrop else {
        return;
    };
    let user = s.user.as_deref().unwrap_or("?");
    ui.label(format!(
        "maildrop of {user}: {messages} message(s), {octets} octets at login"
    ));
    ui.horizontal_wrapped(|ui| {
        for n in 1..=u32::try_from(messages).unwrap_or(u32::MAX).min(200) {
            let (text, color) = if s.expunged.contains(&n) {
                (format!("{n}: expunged"), palette.negative)
            } else if s.marked.contains(&n) {
                (format!("{n}: marked deleted"), palette.negative)
            } else {
                (format!("{n}: kept"), palette.text)
            };
            ui.label(RichText::new(text).monospace().color(color));
        }
    });
    if let Some(note) = pop3_ending(s) {
        ui.label(note);
    }
}

/// What the end of a POP3 session did to the maildrop (RFC 1939 section 6), once it ended
/// or reached UPDATE; `None` while it goes on.
pub fn pop3_ending(s: &Pop3View) -> Option<String> {
    let over = s.ended || s.closed.is_some();
    match s.state {
        Pop3State::Update => {
            let removed = if s.expunged.is_empty() && s.marked.is_empty() {
                "no message was marked, so none was removed".to_string()
            } else if s.marked.is_empty() {
                let list: Vec<String> = s.expunged.iter().map(u32::to_string).collect();
                format!("the server removed message(s) {}", list.join(", "))
            } else {
                // Still marked in UPDATE: the removal failed and QUIT was answered -ERR.
                let list: Vec<String> = s.marked.iter().map(u32::to_string).collect();
                format!(
                    "message(s) {} could not be removed (QUIT got -ERR)",
                    list.join(", ")
                )
            };
            let then = if over {
                "it answered QUIT, released the maildrop's lock and closed the connection"
            } else {
                "then it answers QUIT, releases the maildrop's lock and closes the connection"
            };
            Some(format!(
                "UPDATE (RFC 1939 section 6), entered by QUIT from TRANSACTION: {removed}; {then}."
            ))
        }
        Pop3State::Authorization if over => Some(
            "The session ended in AUTHORIZATION: it never entered UPDATE, and no maildrop was \
             opened (RFC 1939 section 6)."
                .to_string(),
        ),
        Pop3State::Transaction if over => Some(if s.marked.is_empty() {
            "The session ended in TRANSACTION without QUIT: it never entered UPDATE (RFC 1939 \
             section 6)."
                .to_string()
        } else {
            "The session ended in TRANSACTION without QUIT: it never entered UPDATE, so the \
             messages marked deleted were not removed (RFC 1939 section 6)."
                .to_string()
        }),
        Pop3State::Authorization | Pop3State::Transaction | Pop3State::Closed => None,
    }
}

fn smtp_ui(ui: &mut Ui, s: &SmtpView, palette: &Palette) {
    session_header_ui(
        ui,
        "SMTP",
        s.session,
        s.state.name(),
        s.closed.as_deref(),
        palette,
    );
    if let Some(sender) = &s.sender {
        ui.label(format!("envelope sender: <{sender}>"));
    }
    if !s.recipients.is_empty() {
        ui.label(format!(
            "envelope recipients: <{}>",
            s.recipients.join(">, <")
        ));
    }
    for (r, why) in &s.refused {
        ui.label(RichText::new(format!("refused <{r}>: {why}")).color(palette.negative));
    }
    for (recipients, bytes) in &s.delivered {
        ui.label(
            RichText::new(format!(
                "delivered {bytes} octets to the maildrop of {}",
                recipients.join(", ")
            ))
            .color(palette.positive),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::smtp::{SmtpConfig, SmtpServer};
    use crate::proto::{Machine, Output};
    use std::time::SystemTime;

    fn ev(session: u64, protocol: Protocol, kind: EventKind) -> ServerEvent {
        ServerEvent {
            session,
            protocol,
            at: SystemTime::UNIX_EPOCH,
            kind,
        }
    }

    #[test]
    fn pop3_deletions_and_expunge() {
        let p = Protocol::Pop3;
        let events = vec![
            ev(
                1,
                p,
                EventKind::Pop3(Pop3Event::LoggedIn {
                    user: "mrose".into(),
                    messages: 2,
                    octets: 320,
                }),
            ),
            ev(
                1,
                p,
                EventKind::Pop3(Pop3Event::StateChanged {
                    from: Pop3State::Authorization,
                    to: Pop3State::Transaction,
                }),
            ),
            ev(
                1,
                p,
                EventKind::Pop3(Pop3Event::MessageMarkedDeleted { msg: 1 }),
            ),
        ];
        let v = ServerView::from_events(&events);
        assert_eq!(v.pop3.len(), 1);
        assert_eq!(v.pop3[0].state, Pop3State::Transaction);
        assert!(v.pop3[0].marked.contains(&1));
        let mut more = events.clone();
        more.push(ev(
            1,
            p,
            EventKind::Pop3(Pop3Event::StateChanged {
                from: Pop3State::Transaction,
                to: Pop3State::Update,
            }),
        ));
        more.push(ev(
            1,
            p,
            EventKind::Pop3(Pop3Event::Expunged { msgs: vec![1] }),
        ));
        let v = ServerView::from_events(&more);
        assert_eq!(v.pop3[0].state, Pop3State::Update);
        assert_eq!(v.pop3[0].expunged, vec![1]);
        assert!(v.pop3[0].marked.is_empty());
    }

    /// Every event a real POP3 machine reports for `input`, logins accepted with two
    /// messages and the update answered `update`.
    fn pop3_machine_events(
        input: &[u8],
        update: Result<(), crate::proto::pop3::MaildropError>,
    ) -> Vec<ServerEvent> {
        use crate::proto::pop3::{LoginOutcome, MessageInfo, Pop3Config, Pop3Request, Pop3Server};
        let mut server = Pop3Server::new(Pop3Config {
            hostname: "localhost".into(),
            timestamp: "<1.2@localhost>".into(),
            apop_only: false,
        });
        server.receive(input);
        let mut events = Vec::new();
        while let Some(output) = server.poll_output() {
            match output {
                Output::Event(e) => events.push(ev(3, Protocol::Pop3, EventKind::Pop3(e))),
                Output::Request(Pop3Request::Login { .. }) => {
                    server.answer_login(LoginOutcome::Accepted(vec![
                        MessageInfo {
                            size: 10,
                            uid: "a".into(),
                        },
                        MessageInfo {
                            size: 20,
                            uid: "b".into(),
                        },
                    ]));
                }
                Output::Request(Pop3Request::Update { .. }) => {
                    server.answer_update(update.clone());
                }
                Output::Request(Pop3Request::Fetch { .. }) | Output::Write(_) | Output::Close => {}
            }
        }
        events
    }

    /// RFC 1939 section 6: QUIT in TRANSACTION enters UPDATE, where the marked messages are
    /// removed; then the session ends. The panel shows UPDATE, not a jump to "CLOSED".
    #[test]
    fn quit_from_transaction_shows_update() {
        let events = pop3_machine_events(b"USER u\r\nPASS p\r\nDELE 2\r\nQUIT\r\n", Ok(()));
        let v = ServerView::from_events(&events);
        let s = &v.pop3[0];
        assert_eq!(s.state, Pop3State::Update);
        assert!(s.ended);
        assert_eq!(s.expunged, vec![2]);
        let note = pop3_ending(s).unwrap_or_default();
        assert!(note.starts_with("UPDATE (RFC 1939 section 6)"), "{note}");
        assert!(note.contains("removed message(s) 2"), "{note}");
        assert!(note.contains("released the maildrop's lock"), "{note}");
    }

    /// RFC 1939 section 6: a failed removal in UPDATE is answered -ERR; the marks stay.
    #[test]
    fn failed_update_is_told() {
        let events = pop3_machine_events(
            b"USER u\r\nPASS p\r\nDELE 1\r\nQUIT\r\n",
            Err(crate::proto::pop3::MaildropError::Store {
                brief: "disk full".into(),
            }),
        );
        let v = ServerView::from_events(&events);
        let s = &v.pop3[0];
        assert_eq!(s.state, Pop3State::Update);
        let note = pop3_ending(s).unwrap_or_default();
        assert!(note.contains("message(s) 1 could not be removed"), "{note}");
    }

    /// QUIT in AUTHORIZATION ends the session without UPDATE (RFC 1939 section 6); a
    /// session that breaks off in TRANSACTION never reaches UPDATE either.
    #[test]
    fn sessions_that_never_reach_update() {
        let v = ServerView::from_events(&pop3_machine_events(b"QUIT\r\n", Ok(())));
        let s = &v.pop3[0];
        assert_eq!(s.state, Pop3State::Authorization);
        assert!(s.ended);
        assert!(
            pop3_ending(s)
                .unwrap_or_default()
                .contains("never entered UPDATE")
        );

        let mut events = pop3_machine_events(b"USER u\r\nPASS p\r\nDELE 1\r\n", Ok(()));
        let v = ServerView::from_events(&events);
        assert_eq!(v.pop3[0].state, Pop3State::Transaction);
        assert_eq!(pop3_ending(&v.pop3[0]), None);
        events.push(ev(
            3,
            Protocol::Pop3,
            EventKind::Pop3(Pop3Event::StateChanged {
                from: Pop3State::Transaction,
                to: Pop3State::Closed,
            }),
        ));
        let v = ServerView::from_events(&events);
        assert_eq!(v.pop3[0].state, Pop3State::Transaction);
        let note = pop3_ending(&v.pop3[0]).unwrap_or_default();
        assert!(note.contains("marked deleted were not removed"), "{note}");
    }

    #[test]
    fn smtp_envelope() {
        // The events of a real SMTP machine: MAIL, one recipient accepted, one refused.
        let mut server = SmtpServer::new(SmtpConfig {
            hostname: "localhost".into(),
            local_domains: Vec::new(),
            max_message_size: 1000,
        });
        server.receive(
            b"HELO c\r\nMAIL FROM:<alice@localhost> SIZE=10\r\nRCPT TO:<bob@localhost>\r\n\
              RCPT TO:<nobody@localhost>\r\nRCPT TO:<x@elsewhere.org>\r\n",
        );
        let mut events = Vec::new();
        let mut known = [true, false].into_iter();
        while let Some(output) = server.poll_output() {
            match output {
                Output::Event(e) => events.push(ev(7, Protocol::Smtp, EventKind::Smtp(e))),
                Output::Request(_) => server.answer_recipient(known.next().unwrap_or(false)),
                Output::Write(_) | Output::Close => {}
            }
        }
        events.push(ev(
            7,
            Protocol::Smtp,
            EventKind::Smtp(SmtpEvent::MessageDelivered {
                recipients: vec!["bob@localhost".into()],
                bytes: 99,
            }),
        ));
        let v = ServerView::from_events(&events);
        let m = &v.smtp[0];
        assert_eq!(m.sender.as_deref(), Some("alice@localhost"));
        assert_eq!(m.recipients, vec!["bob@localhost".to_string()]);
        assert_eq!(
            m.refused,
            vec![
                (
                    "nobody@localhost".to_string(),
                    "550 5.1.1 <nobody@localhost>: no such user here".to_string()
                ),
                (
                    "x@elsewhere.org".to_string(),
                    "550 5.7.1 Relaying denied: <x@elsewhere.org> is not a local address"
                        .to_string()
                ),
            ]
        );
        assert_eq!(m.delivered, vec![(vec!["bob@localhost".to_string()], 99)]);
    }
}
