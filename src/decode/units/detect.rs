//! Recognising the protocol of a connection on a port that does not say it: from the
//! server's first words (`+OK`/`-ERR` is POP3, a three-digit code is SMTP). Until then both
//! sides' events are held; once decided they are replayed into the cutter.

use super::dialog::{CLIENT, Dialog, SERVER};
use super::hold::HeldItem;
use super::line::Side;
use super::smtp::smtp_code;
use super::{Detected, ProtocolSource};
use crate::proto::Protocol;

/// Bytes a client may send before the server's first words, on a port that does not say
/// the protocol, before mailwire gives up guessing.
const MAX_UNDECIDED: usize = 64 << 10;

impl Dialog {
    /// Decides the protocol if the held bytes (or `force`: the capture is over) allow it,
    /// and replays what was held.
    pub(super) fn try_decide(&mut self, force: bool) {
        let first = self.held_prefix(SERVER, 5);
        let server_ended = self.server.held.iter().any(|h| matches!(h, HeldItem::End));
        let decided = guess_protocol(&first, force || server_ended);
        let decided = match decided {
            None if self.client.held_bytes > MAX_UNDECIDED => Some(Detected::Other),
            None if force => Some(Detected::Other),
            other => other,
        };
        let Some(protocol) = decided else {
            return;
        };
        self.protocol = protocol;
        if protocol == Detected::Other {
            self.client = Side::new();
            self.server = Side::new();
            return;
        }
        self.source = ProtocolSource::Greeting;
        for d in [CLIENT, SERVER] {
            let held = std::mem::take(&mut self.side(d).held);
            self.side(d).held_bytes = 0;
            self.replay(d, held);
        }
    }
}

/// The protocol the server's first bytes show, or `None` if more bytes are needed.
fn guess_protocol(first: &[u8], final_answer: bool) -> Option<Detected> {
    let pop3 = [&b"+OK"[..], b"-ERR"];
    if pop3.iter().any(|p| first.starts_with(p)) {
        return Some(Detected::Mail(Protocol::Pop3));
    }
    let partial_pop3 = pop3.iter().any(|p| p.starts_with(first));
    let partial_smtp = first.len() < 3 && first.iter().all(u8::is_ascii_digit);
    if (first.is_empty() || partial_pop3 || partial_smtp) && !final_answer {
        return None;
    }
    if smtp_code(first).is_some() {
        return Some(Detected::Mail(Protocol::Smtp));
    }
    Some(Detected::Other)
}
