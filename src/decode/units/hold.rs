//! Holding a side's stream events and replaying them later: while the protocol is not
//! known yet (the server has not spoken on a port that does not say it), and while the
//! client waits after DATA or STARTTLS/STLS for the server's verdict on what its next bytes
//! are. Both holds are bounded; past the bound the cutter reads on as the client meant.

use super::UnitKind;
use super::dialog::{CLIENT, Dialog, Expect};
use super::line::{Building, Mode};
use super::tls::looks_like_tls;
use crate::decode::stream::StreamEvent;

/// Bytes a client may send after DATA or STARTTLS, before the server's answer is seen,
/// before mailwire stops waiting for it.
const MAX_BLOCKED: usize = 1 << 20;

/// Stream events held while a side is blocked or the protocol undecided.
#[derive(Debug, Clone)]
pub(super) enum HeldItem {
    Data(u64, Vec<u8>),
    Gap(u64, u64),
    End,
}

impl HeldItem {
    /// The event as it can be held (its bytes copied).
    pub(super) fn of(event: StreamEvent<'_>) -> Self {
        match event {
            StreamEvent::Data { offset, bytes } => HeldItem::Data(offset, bytes.to_vec()),
            StreamEvent::Gap { offset, len } => HeldItem::Gap(offset, len),
            StreamEvent::End => HeldItem::End,
        }
    }
}

impl Dialog {
    /// The first `n` held bytes of side `d`, up to the first gap.
    pub(super) fn held_prefix(&self, d: usize, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for item in &self.side_ref(d).held {
            match item {
                HeldItem::Data(_, b) => {
                    out.extend_from_slice(b.get(..n.min(b.len())).unwrap_or_default())
                }
                HeldItem::Gap(..) | HeldItem::End => break,
            }
            if out.len() >= n {
                break;
            }
        }
        out.truncate(n);
        out
    }

    /// Holds one stream event of side `d`.
    pub(super) fn hold(&mut self, d: usize, event: StreamEvent<'_>) {
        let item = HeldItem::of(event);
        let side = self.side(d);
        if let HeldItem::Data(_, bytes) = &item {
            side.held_bytes += bytes.len();
        }
        side.held.push(item);
    }

    /// Holds bytes the blocked client sent; returns the bytes used (all of them).
    pub(super) fn hold_blocked(&mut self, d: usize, at: u64, rest: &[u8]) -> usize {
        self.hold(
            d,
            StreamEvent::Data {
                offset: at,
                bytes: rest,
            },
        );
        if self.side(d).held_bytes > MAX_BLOCKED {
            // The server's verdict is not coming: read on as the client meant.
            self.force_unblock();
        }
        rest.len()
    }

    /// Cuts held events of side `d` as if they arrived now.
    pub(super) fn replay(&mut self, d: usize, items: Vec<HeldItem>) {
        for item in items {
            match item {
                HeldItem::Data(offset, bytes) => self.feed(d, offset, &bytes),
                HeldItem::Gap(offset, len) => self.gap(d, offset, len),
                HeldItem::End => self.end(d),
            }
        }
    }

    /// The server never answered DATA or STARTTLS: read the held bytes as the client meant
    /// them (a message after DATA; TLS if it looks like TLS, else commands).
    pub(super) fn force_unblock(&mut self) {
        let expect = self
            .waiting
            .iter()
            .rev()
            .find(|w| matches!(w.expect, Expect::Data | Expect::StartTls))
            .map(|w| w.expect);
        let first = self.held_prefix(CLIENT, 3);
        let mode = match expect {
            Some(Expect::Data) => {
                self.open_content();
                if let Some(u) = self.client.unit.as_mut() {
                    u.notes
                        .push("read as message content without the server's reply to DATA (none captured yet)".into());
                }
                Mode::Lines
            }
            _ if looks_like_tls(&first) => Mode::TLS_START,
            _ => Mode::Lines,
        };
        self.unblock(mode);
    }

    /// The server accepted STARTTLS/STLS: the client's next bytes are its TLS handshake.
    /// What the client sent before that go-ahead was pipelined behind the command in clear,
    /// and the server must throw it away (RFC 3207 section 4.2, RFC 2595 section 4): the
    /// STARTTLS command injection, CVE-2011-0411. Those bytes (up to a capture gap) become
    /// one unit that says so, never commands, and TLS starts after them. A client that sent
    /// its ClientHello without waiting is read as TLS at once.
    pub(super) fn start_client_tls(&mut self) {
        let first = self.held_prefix(CLIENT, 3);
        if self.client.mode != Mode::Blocked || first.is_empty() || looks_like_tls(&first) {
            self.unblock(Mode::TLS_START);
            return;
        }
        let held = std::mem::take(&mut self.client.held);
        self.client.held_bytes = 0;
        let mut plain: Option<std::ops::Range<u64>> = None;
        let mut text = Vec::new();
        let mut rest = Vec::new();
        for item in held {
            match item {
                HeldItem::Data(offset, bytes) if rest.is_empty() => {
                    let end = offset + bytes.len() as u64;
                    plain = Some(plain.map_or(offset..end, |p| p.start..end));
                    text.extend(bytes.iter().take(200usize.saturating_sub(text.len())));
                }
                other => rest.push(other),
            }
        }
        if let Some(plain) = plain {
            let first_line = String::from_utf8_lossy(&text);
            let first_line = first_line.lines().next().unwrap_or_default();
            self.open_unit(
                CLIENT,
                plain.start,
                UnitKind::Undecoded,
                Building::Opaque,
                format!(
                    "{} bytes in clear after STARTTLS/STLS, before the server's go-ahead \
                     (\"{first_line}\"...): the server discards them",
                    plain.end - plain.start
                ),
                0,
            );
            self.close_unit(
                CLIENT,
                plain.end,
                Some(
                    "pipelined behind STARTTLS/STLS in clear: a server must not run them \
                     inside TLS (RFC 3207 section 4.2, RFC 2595 section 4; the injection \
                     CVE-2011-0411)"
                        .into(),
                ),
            );
            self.client.consumed = self.client.consumed.max(plain.end);
        }
        self.client.mode = Mode::TLS_START;
        self.replay(CLIENT, rest);
        if self.client.eof && self.client.mode != Mode::Blocked {
            self.finish_side(CLIENT);
        }
    }

    /// The client may read on, in `mode`: replays what it held.
    pub(super) fn unblock(&mut self, mode: Mode) {
        let side = &mut self.client;
        if side.mode != Mode::Blocked {
            return;
        }
        side.mode = mode;
        side.held_bytes = 0;
        let held = std::mem::take(&mut side.held);
        self.replay(CLIENT, held);
        if self.client.eof && self.client.mode != Mode::Blocked {
            self.finish_side(CLIENT);
        }
    }
}
