//! TLS records (in a session's TCP segments, both directions, on a mail port) through the
//! analyzer, then `decode::tls_decrypt` with a key log taken from the input. Invariants: no
//! panic; every record view is a TLS unit of its connection; every decrypted unit names
//! records that exist (TLS units of the same connection, among the connection's record
//! views, in order, in its direction) and frames that carried them; its stream range is
//! not reversed and units of one direction do not overlap; `update` after more frames gives
//! what `decrypt_all` gives on all of them.
//!
//! Input: `[port][key log length hi][lo][key log text][segments]`, each segment
//! `[control][seq offset hi][lo][len hi][lo][payload]`. Control bit 0: from the server;
//! bits 1-4: SYN, FIN, ACK, RST (as in `reassembly`); bit 7: the segment follows the
//! previous one of its direction (the offset bytes are ignored), else it starts at the
//! given offset from the direction's initial sequence number. The key log text is read a
//! line at a time, lines that are not NSS key log lines skipped (so a seed's real secrets
//! survive mutation of a neighbouring line).
#![no_main]

use std::borrow::Cow;
use std::sync::OnceLock;

use etherparse::{PacketBuilder, TcpHeader};
use libfuzzer_sys::fuzz_target;
use mailwire::capture::LinkType;
use mailwire::decode::tls_decrypt::{RecordOutcome, TlsDecryption, decrypt_all};
use mailwire::decode::{Analyzer, UnitKind};
use mailwire::proto::Direction;
use mailwire::proto::keylog::KeyLog;

const PORTS: [u16; 6] = [110, 995, 25, 465, 587, 2525];

fn frame(from_client: bool, port: u16, seq: u32, ack: u32, control: u8, payload: &[u8]) -> Vec<u8> {
    let (sport, dport) = if from_client {
        (40000, port)
    } else {
        (port, 40000)
    };
    let mut h = TcpHeader::new(sport, dport, seq, 65535);
    h.syn = control & 0x02 != 0;
    h.fin = control & 0x04 != 0;
    h.rst = control & 0x10 != 0;
    h.psh = true;
    h.ack = control & 0x08 != 0 || !h.syn;
    h.acknowledgment_number = ack;
    let mut out = Vec::new();
    let _ = PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        .tcp_header(h)
        .write(&mut out, payload);
    out
}

/// `MAILWIRE_FUZZ_SHOW=1`: print what was decrypted (to see that a seed reaches it).
fn show() -> bool {
    static SHOW: OnceLock<bool> = OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("MAILWIRE_FUZZ_SHOW").is_some())
}

fn check(analyzer: &Analyzer, frames: usize, tls: &TlsDecryption) {
    let units = analyzer.units();
    for c in &tls.conns {
        let conn = analyzer
            .connections()
            .get(c.conn)
            .expect("a TLS view of no connection");
        assert!(tls.connection(c.conn).is_some());
        for w in c.records.windows(2) {
            assert!(w[0].unit < w[1].unit, "record views out of order");
        }
        for r in &c.records {
            let u = units.get(r.unit).expect("a record view of no unit");
            assert_eq!(
                u.kind,
                UnitKind::Tls,
                "a record view of a {:?} unit",
                u.kind
            );
            assert_eq!(u.conn, c.conn);
            assert_eq!(u.direction, r.direction);
            assert!(conn.units.contains(&r.unit));
        }
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let mut last_end = 0;
            for d in c.units.iter().filter(|d| d.direction == dir) {
                assert!(
                    d.stream.start <= d.stream.end,
                    "reversed range {:?}",
                    d.stream
                );
                assert!(
                    d.stream.start >= last_end,
                    "decrypted units overlap at {:?}",
                    d.stream
                );
                last_end = d.stream.end;
            }
        }
        for (i, d) in c.units.iter().enumerate() {
            assert!(
                !d.records.is_empty(),
                "decrypted unit {i} carried by no record: {d:?}; records {:?}",
                c.records
                    .iter()
                    .map(|r| (r.unit, r.direction, &r.outcome))
                    .collect::<Vec<_>>()
            );
            for w in d.records.windows(2) {
                assert!(
                    w[0] < w[1],
                    "records of unit {i} out of order: {:?}",
                    d.records
                );
            }
            for &r in &d.records {
                let view = c.record(r).unwrap_or_else(|| {
                    panic!("unit {i} names record {r}, not a record of conn {}", c.conn)
                });
                assert_eq!(view.direction, d.direction);
                let u = units.get(r).expect("a record that is no unit");
                assert_eq!(u.kind, UnitKind::Tls);
                assert!(c.units_in(r).any(|(j, _)| j == i));
                for f in u.frames() {
                    assert!(
                        d.frames.contains(&f),
                        "frame {f} of record {r} missing from unit {i}"
                    );
                }
            }
            for &f in &d.frames {
                assert!(f < frames, "unit {i} names frame {f} of {frames}");
            }
            if let Some(to) = d.reply_to {
                assert!(
                    to < c.units.len(),
                    "reply to unit {to} of {}",
                    c.units.len()
                );
            }
            if let Some(&last) = d.records.last() {
                assert!(c.units_ending_in(last).any(|(j, _)| j == i));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [p, hi, lo, rest @ ..] = data else {
        return;
    };
    let port = PORTS[usize::from(*p) % PORTS.len()];
    let log_len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
    let (log_text, mut rest) = rest.split_at(log_len);
    let mut keylog = KeyLog::new();
    for line in String::from_utf8_lossy(log_text).lines() {
        let _ = keylog.push_line(line);
    }

    let (client_isn, server_isn) = (0xffff_ff00u32, 1000u32);
    let mut next = [1u32, 1u32]; // the next offset of each direction (after the SYN)
    let mut analyzer = Analyzer::new();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut middle: Option<(usize, TlsDecryption)> = None;
    let mut count = 0;
    while let [control, ohi, olo, lhi, llo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*lhi, *llo])).min(tail.len());
        let (payload, after) = tail.split_at(len);
        rest = after;
        let from_client = control & 0x01 == 0;
        let side = usize::from(!from_client);
        let offset = if control & 0x80 != 0 {
            next[side]
        } else {
            u32::from(u16::from_be_bytes([*ohi, *olo]))
        };
        let syn = u32::from(control & 0x02 != 0);
        let fin = u32::from(control & 0x04 != 0);
        next[side] = offset
            .wrapping_add(len as u32)
            .wrapping_add(syn)
            .wrapping_add(fin);
        let (isn, peer) = if from_client {
            (client_isn, server_isn)
        } else {
            (server_isn, client_isn)
        };
        let f = frame(
            from_client,
            port,
            isn.wrapping_add(offset),
            peer.wrapping_add(next[1 - side]),
            *control,
            payload,
        );
        analyzer.push_frame(frames.len() as i64, LinkType::ETHERNET, &f, f.len() as u32);
        frames.push(f);
        count += 1;
        // Halfway through a longer script: decrypt what there is, for `update` later.
        if count == 6 && middle.is_none() {
            let data = |i: usize| frames.get(i).map(|f| Cow::Borrowed(f.as_slice()));
            let tls = decrypt_all(&analyzer, data, &keylog);
            check(&analyzer, frames.len(), &tls);
            middle = Some((frames.len(), tls));
        }
    }
    analyzer.finish();
    let data = |i: usize| frames.get(i).map(|f| Cow::Borrowed(f.as_slice()));
    let tls = decrypt_all(&analyzer, data, &keylog);
    check(&analyzer, frames.len(), &tls);
    if show() {
        for c in &tls.conns {
            let opened = c
                .records
                .iter()
                .filter(|r| matches!(r.outcome, RecordOutcome::Decrypted { .. }))
                .count();
            eprintln!(
                "conn {}: {} records, {opened} decrypted, {} units in them: {:?}",
                c.conn,
                c.records.len(),
                c.units.len(),
                c.units.iter().map(|u| u.text.as_str()).collect::<Vec<_>>()
            );
        }
    }
    if let Some((_, before)) = middle {
        let updated = before.update(&analyzer, data, &keylog);
        let a: Vec<_> = updated.conns.iter().map(|c| &**c).collect();
        let b: Vec<_> = tls.conns.iter().map(|c| &**c).collect();
        assert_eq!(a, b, "update differs from decrypt_all");
    }
});
