//! A script of TCP segments (either direction, any sequence offset, any flags, any payload)
//! on a POP3 or SMTP port, pushed through the analyzer: reassembly and the protocol cutters
//! must not panic, and units of one direction must never overlap.
//!
//! Script: byte 0 picks the server port; then records of
//! `[flags+direction][seq offset hi][seq offset lo][len]` followed by `len` payload bytes.
#![no_main]

use etherparse::{PacketBuilder, TcpHeader};
use libfuzzer_sys::fuzz_target;
use mailwire::capture::LinkType;
use mailwire::decode::Analyzer;
use mailwire::proto::Direction;

const PORTS: [u16; 4] = [110, 25, 2525, 9999];

fn frame(from_client: bool, port: u16, seq: u32, ack: u32, control: u8, payload: &[u8]) -> Vec<u8> {
    let (sport, dport) = if from_client {
        (40000, port)
    } else {
        (port, 40000)
    };
    let mut h = TcpHeader::new(sport, dport, seq, 65535);
    h.syn = control & 0x02 != 0;
    h.fin = control & 0x04 != 0;
    h.rst = control & 0x08 == 0x08 && control & 0x70 == 0x70;
    h.psh = true;
    h.ack = control & 0x10 != 0 || !h.syn;
    h.acknowledgment_number = ack;
    let mut out = Vec::new();
    let _ = PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        .tcp_header(h)
        .write(&mut out, payload);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&p, mut rest)) = data.split_first() else {
        return;
    };
    let port = PORTS[usize::from(p) % PORTS.len()];
    let (client_isn, server_isn) = (0xffff_ff00u32, 1000u32);
    let mut analyzer = Analyzer::new();
    let mut frames = 0;
    while let [control, hi, lo, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let from_client = control & 0x01 == 0;
        let offset = u32::from(u16::from_be_bytes([*hi, *lo]));
        let (isn, peer) = if from_client {
            (client_isn, server_isn)
        } else {
            (server_isn, client_isn)
        };
        let f = frame(
            from_client,
            port,
            isn.wrapping_add(offset),
            peer.wrapping_add(1),
            *control,
            payload,
        );
        analyzer.push_frame(frames, LinkType::ETHERNET, &f, f.len() as u32);
        frames += 1;
    }
    analyzer.finish();
    for conn in analyzer.connections() {
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let mut ranges: Vec<_> = conn
                .units
                .iter()
                .filter_map(|&u| analyzer.units().get(u))
                .filter(|u| u.direction == dir)
                .map(|u| u.stream.clone())
                .collect();
            ranges.sort_by_key(|r| r.start);
            for w in ranges.windows(2) {
                assert!(w[0].end <= w[1].start, "overlapping units {ranges:?}");
            }
        }
    }
});
