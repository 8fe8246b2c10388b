//! POP3 (RFC 1939, RFC 2449, RFC 5034 SASL): command lines, and replies that are single-line
//! or, after `+OK` to a command that has one (LIST, RETR, TOP, UIDL, CAPA, ...), multi-line
//! up to the "." line.

use super::UnitKind;
use super::dialog::{CLIENT, Dialog, Expect, SERVER};
use super::line::{Building, Line, Mode};
use crate::proto::pop3::command::Command as Pop3Command;

impl Dialog {
    /// A line the POP3 client sent: a command, or a SASL line during AUTH.
    pub(super) fn pop3_client_line(&mut self, line: Line) -> Option<Vec<u8>> {
        let (kind, expect) = if self.auth {
            (UnitKind::AuthData, Expect::Auth)
        } else {
            (UnitKind::Command, pop3_expect(line.content()))
        };
        let notes = line.notes();
        let local = self.emit(CLIENT, kind, &line, None, notes);
        self.wait_for_reply(local, expect);
        if expect == Expect::StartTls {
            self.client.mode = Mode::Blocked;
        }
        Some(line.head)
    }

    /// A line the POP3 server sent: the greeting, a reply, or a line of a multi-line reply.
    pub(super) fn pop3_server_line(&mut self, line: Line) -> Option<Vec<u8>> {
        self.settle_after_gap(line.start);
        if let Some(u) = self.server.unit.as_mut() {
            // Only a whole "." line ends it: not one that a capture gap cut short.
            if line.content() == b"." && !line.cut_by_gap {
                let id = self.close_unit(SERVER, line.end, None);
                self.pair_front(id);
                return Some(line.head);
            }
            let new_reply = line.starts_with_ci(b"+OK") || line.starts_with_ci(b"-ERR");
            if !(new_reply && self.waiting.len() > 1) {
                u.lines += 1;
                if line.gap {
                    u.notes.push("some bytes were not captured".into());
                }
                return Some(line.head);
            }
            let id = self.close_unit(
                SERVER,
                line.start,
                Some("unterminated: no \".\" line before the next reply began (RFC 1939 section 3: a multi-line reply ends with a line holding only \".\")".into()),
            );
            self.pair_front(id);
        }
        let notes = line.notes();
        if !self.greeted && self.waiting.is_empty() {
            self.greeted = true;
            self.emit(SERVER, UnitKind::Greeting, &line, None, notes);
            return Some(line.head);
        }
        self.greeted = true;
        if !(line.head.first() == Some(&b'+') || line.head.first() == Some(&b'-')) {
            return self.pop3_stray_line(line, notes);
        }
        let positive = line.starts_with_ci(b"+OK");
        let continuation = !positive && line.head.first() == Some(&b'+');
        let front = self.waiting.front().copied();
        if positive && front.is_some_and(|w| w.expect == Expect::MultiIfPositive) {
            self.open_reply(&line, Building::Pop3Multi, notes, front.map(|w| w.local));
            return Some(line.head);
        }
        let reply_to = self.take_front();
        let mut notes = notes;
        if reply_to.is_none() {
            notes.push("no command was waiting for this reply".into());
        }
        self.emit(
            SERVER,
            UnitKind::Reply,
            &line,
            reply_to.map(|w| w.local),
            notes,
        );
        if let Some(w) = reply_to {
            self.after_reply(w.expect, positive, continuation);
        }
        Some(line.head)
    }

    /// A server line outside any reply that does not start like one. Right after a capture
    /// gap that began at a line start, it is the rest of the reply to the front command,
    /// whose first line was lost (of a multi-line reply: then the cutter reads on to the
    /// "." line). Otherwise it is not a POP3 reply, and answers nothing.
    fn pop3_stray_line(&mut self, line: Line, mut notes: Vec<String>) -> Option<Vec<u8>> {
        let front = self.waiting.front().copied();
        match front {
            Some(w) if line.after_gap && !line.tail => {
                notes.push("incomplete: its start was not captured".into());
                if w.expect == Expect::MultiIfPositive {
                    self.open_reply(&line, Building::Pop3Multi, notes, Some(w.local));
                    if line.content() == b"." {
                        let id = self.close_unit(SERVER, line.end, None);
                        self.pair_front(id);
                    }
                } else {
                    self.take_front();
                    self.emit(SERVER, UnitKind::Reply, &line, Some(w.local), notes);
                    self.after_reply(w.expect, false, false);
                }
            }
            _ => {
                notes.push(
                    "not a POP3 reply: it does not start with +OK or -ERR (RFC 1939 section 3)"
                        .into(),
                );
                self.emit(SERVER, UnitKind::Reply, &line, None, notes);
            }
        }
        Some(line.head)
    }
}

/// What a POP3 command line expects back.
fn pop3_expect(line: &[u8]) -> Expect {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
    let has_args = words.next().is_some();
    match keyword.as_slice() {
        b"STLS" => Expect::StartTls,
        b"AUTH" if has_args => Expect::Auth,
        // "AUTH" alone lists the SASL mechanisms, multi-line (RFC 1734 servers do this).
        b"AUTH" => Expect::MultiIfPositive,
        _ => match Pop3Command::parse(line) {
            Ok(c) if c.has_multiline_reply() => Expect::MultiIfPositive,
            _ => Expect::Single,
        },
    }
}
