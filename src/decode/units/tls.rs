//! TLS records after STLS/STARTTLS, or on an implicit-TLS port: each record (5-byte header
//! and body) is one unit; bytes that are not a record header, or that follow a capture gap
//! (record boundaries are lost), are one undecoded unit to the end.

use super::dialog::Dialog;
use super::line::{Building, Mode};
use super::{Detected, ProtocolSource, UnitKind};
use crate::proto::Protocol;

/// Whether bytes start like a TLS handshake record (what a ClientHello/ServerHello begins
/// with).
pub(super) fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x16, 0x03, ..])
}

/// A TLS record's content type by name (RFC 8446 section 5.1, RFC 6520 for heartbeat).
pub fn content_type_name(kind: u8) -> &'static str {
    match kind {
        20 => "change-cipher-spec",
        21 => "alert",
        22 => "handshake",
        23 => "application-data",
        24 => "heartbeat",
        _ => "unknown",
    }
}

impl Dialog {
    /// A cutter for the application data decrypted from a connection's TLS records
    /// (`decode::tls_decrypt`): `protocol` is the connection's; `greeted` when the greeting
    /// came in clear before TLS started (STLS/STARTTLS), not on an implicit-TLS port.
    pub(crate) fn for_decrypted(protocol: Protocol, greeted: bool) -> Self {
        let mut dialog = Dialog::new(0);
        dialog.protocol = Detected::Mail(protocol);
        dialog.source = ProtocolSource::Port;
        dialog.greeted = greeted;
        dialog
    }

    /// Reads TLS record bytes; returns the bytes used.
    pub(super) fn feed_tls(&mut self, d: usize, at: u64, rest: &[u8]) -> usize {
        let Mode::Tls {
            mut header,
            mut have,
            remaining,
        } = self.side(d).mode
        else {
            return rest.len();
        };
        if have < 5 {
            if have == 0 {
                self.open_unit(d, at, UnitKind::Tls, Building::Tls, String::new(), 0);
            }
            let need = 5 - usize::from(have);
            let take = need.min(rest.len());
            for (i, b) in rest.iter().take(take).enumerate() {
                if let Some(slot) = header.get_mut(usize::from(have) + i) {
                    *slot = *b;
                }
            }
            have += take as u8;
            let mut remaining = remaining;
            if have == 5 {
                let [kind, major, minor, hi, lo] = header;
                if !(20..=24).contains(&kind) || major != 3 {
                    self.side(d).mode = Mode::Opaque;
                    if let Some(u) = self.side(d).unit.as_mut() {
                        u.kind = UnitKind::Undecoded;
                        u.building = Building::Opaque;
                        u.text = "bytes that are not a TLS record (not decoded)".into();
                    }
                    return take;
                }
                remaining = u64::from(u16::from_be_bytes([hi, lo]));
                if let Some(u) = self.side(d).unit.as_mut() {
                    u.text = format!(
                        "TLS {} record, {} bytes (version 3.{minor})",
                        content_type_name(kind),
                        remaining + 5
                    );
                }
            }
            self.side(d).mode = Mode::Tls {
                header,
                have,
                remaining,
            };
            if have == 5 && remaining == 0 {
                self.end_tls_record(d, at + take as u64);
            }
            return take;
        }
        let take = remaining.min(rest.len() as u64);
        let left = remaining - take;
        self.side(d).mode = Mode::Tls {
            header,
            have,
            remaining: left,
        };
        if left == 0 {
            self.end_tls_record(d, at + take);
        }
        take as usize
    }

    /// The record ends at `end`: the next byte starts a record header.
    fn end_tls_record(&mut self, d: usize, end: u64) {
        self.side(d).mode = Mode::TLS_START;
        self.close_unit(d, end, None);
    }
}
