//! SMTP (RFC 5321, RFC 3030 CHUNKING, RFC 4954 AUTH): command lines, single- and multi-line
//! replies (`250-` continues, `250 ` ends), message content after `354` up to CRLF.CRLF,
//! and the chunk after `BDAT n`.

use super::dialog::{CLIENT, Dialog, Expect, SERVER};
use super::line::{Building, Line, Mode, unit_text};
use super::{MAX_HEAD, UnitKind};

impl Dialog {
    /// A line the SMTP client sent: a command, a SASL line during AUTH, or a line of
    /// message content.
    pub(super) fn smtp_client_line(&mut self, line: Line) -> Option<Vec<u8>> {
        let building_content = self
            .client
            .unit
            .as_ref()
            .is_some_and(|u| u.building == Building::Content);
        if building_content {
            return self.content_line(line);
        }
        let notes = line.notes();
        if self.auth {
            let local = self.emit(CLIENT, UnitKind::AuthData, &line, None, notes);
            self.wait_for_reply(local, Expect::Auth);
            return Some(line.head);
        }
        let content = line.content();
        let mut words = content
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let verb = words.next().unwrap_or_default().to_ascii_uppercase();
        let args: Vec<&[u8]> = words.collect();
        let expect = match verb.as_slice() {
            b"DATA" => Expect::Data,
            b"STARTTLS" => Expect::StartTls,
            b"AUTH" => Expect::Auth,
            _ => Expect::Single,
        };
        let local = self.emit(CLIENT, UnitKind::Command, &line, None, notes);
        self.wait_for_reply(local, expect);
        match expect {
            Expect::Data | Expect::StartTls => self.client.mode = Mode::Blocked,
            _ => {}
        }
        if verb == b"BDAT"
            && let Some(size) = bdat_size(&args)
            && size > 0
        {
            self.open_unit(
                CLIENT,
                line.end,
                UnitKind::MailContent,
                Building::Chunk,
                String::new(),
                0,
            );
            self.client.mode = Mode::Chunk { remaining: size };
        }
        Some(line.head)
    }

    /// A line of message content after 354: CRLF.CRLF ends it.
    fn content_line(&mut self, line: Line) -> Option<Vec<u8>> {
        let prev_crlf = self.client.prev_line_crlf;
        let content = line.content();
        let is_dot = content == b"." && !line.cut;
        if is_dot && line.crlf && prev_crlf {
            let id = self.close_unit(CLIENT, line.end, None);
            if let Some(local) = id {
                if let Some(d) = self.drafts.iter_mut().rev().find(|d| d.local == local)
                    && d.text.is_empty()
                {
                    d.text = "(empty message)".into();
                }
                self.wait_for_reply(local, Expect::Single);
            }
            return Some(line.head);
        }
        if let Some(u) = self.client.unit.as_mut() {
            if u.lines == 0 {
                u.text = line.text();
            }
            u.lines += 1;
            if is_dot && line.complete && !u.notes.iter().any(|n| n.contains("smuggling")) {
                u.notes.push(
                    "a \".\" line next to a bare LF does not end DATA (only CRLF.CRLF does): \
                     an SMTP smuggling pattern"
                        .into(),
                );
            }
            if line.gap {
                u.notes.push("some bytes were not captured".into());
            }
        }
        Some(line.head)
    }

    /// A line the SMTP server sent: a reply line (maybe one of several) or the greeting.
    pub(super) fn smtp_server_line(&mut self, line: Line) -> Option<Vec<u8>> {
        self.settle_after_gap(line.start);
        let content = line.content();
        let code = smtp_code(content);
        let continues = code.is_some() && content.get(3) == Some(&b'-');
        if let Some(u) = self.server.unit.as_mut() {
            u.lines += 1;
            if line.gap {
                u.notes.push("some bytes were not captured".into());
            }
            // A line a capture gap cut, or the rest of one, does not say whether the reply
            // goes on: the next whole line will.
            let unsure = line.cut_by_gap || (line.tail && code.is_none());
            if !continues && !unsure {
                let code = smtp_code(u.text.as_bytes()).unwrap_or(0);
                self.finish_smtp_reply(line.end, code, None);
            }
            return Some(line.head);
        }
        let notes = line.notes();
        let Some(code) = code else {
            let mut notes = notes;
            notes.push("not an SMTP reply: it does not start with a three-digit code (RFC 5321 section 4.2)".into());
            self.greeted = true;
            self.emit(SERVER, UnitKind::Reply, &line, None, notes);
            return Some(line.head);
        };
        self.open_reply(&line, Building::SmtpReply, notes, None);
        if !continues {
            self.finish_smtp_reply(line.end, code, None);
        }
        Some(line.head)
    }

    /// Closes the open SMTP reply at `end` and pairs it with the command it answers.
    pub(super) fn finish_smtp_reply(&mut self, end: u64, code: u16, note: Option<String>) {
        let first = !self.greeted;
        self.greeted = true;
        if first && (self.waiting.is_empty() || code == 220) {
            if let Some(u) = self.server.unit.as_mut() {
                u.kind = UnitKind::Greeting;
            }
            self.close_unit(SERVER, end, note);
            return;
        }
        let front = self.take_front();
        if let Some(u) = self.server.unit.as_mut() {
            u.reply_to = front.map(|w| w.local);
            if front.is_none() {
                u.notes.push("no command was waiting for this reply".into());
            }
        }
        self.close_unit(SERVER, end, note);
        if let Some(w) = front {
            let positive = match w.expect {
                Expect::Data => code == 354,
                Expect::StartTls => code == 220,
                _ => (200..400).contains(&code),
            };
            self.after_reply(w.expect, positive, code == 334);
        }
    }

    /// Message content starts where the client's bytes are now (after 354, or when the
    /// server's answer to DATA never came).
    pub(super) fn open_content(&mut self) {
        let at = self.client.consumed;
        self.open_unit(
            CLIENT,
            at,
            UnitKind::MailContent,
            Building::Content,
            String::new(),
            0,
        );
    }

    /// Reads BDAT chunk bytes; returns the bytes used.
    pub(super) fn feed_chunk(&mut self, d: usize, at: u64, rest: &[u8], remaining: u64) -> usize {
        let take = remaining.min(rest.len() as u64);
        let side = self.side(d);
        if let Some(u) = side.unit.as_mut()
            && u.text.is_empty()
        {
            let first_line = rest
                .get(..take as usize)
                .unwrap_or_default()
                .split(|&b| b == b'\n')
                .next()
                .unwrap_or_default();
            let first_line = first_line.strip_suffix(b"\r").unwrap_or(first_line);
            u.text = unit_text(
                first_line
                    .get(..MAX_HEAD.min(first_line.len()))
                    .unwrap_or_default(),
                false,
            );
        }
        let left = remaining - take;
        side.mode = Mode::Chunk { remaining: left };
        if left == 0 {
            side.mode = Mode::Lines;
            self.close_unit(d, at + take, None);
        }
        take as usize
    }
}

/// The size of `BDAT size [LAST]`, if the arguments are valid.
fn bdat_size(args: &[&[u8]]) -> Option<u64> {
    let (size, rest) = args.split_first()?;
    let valid_rest = match rest {
        [] => true,
        [last] => last.eq_ignore_ascii_case(b"LAST"),
        _ => false,
    };
    if !valid_rest || size.is_empty() || size.len() > 18 || !size.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(size).ok()?.parse().ok()
}

/// The three-digit code at the start of an SMTP reply line.
pub(super) fn smtp_code(line: &[u8]) -> Option<u16> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match line.get(3) {
        None | Some(b' ') | Some(b'-') | Some(b'\r') | Some(b'\n') => {}
        Some(_) => return None,
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
