//! Hostile input never panics the decoder or the analyzer. Every frame of the reference
//! captures and of hand-built frames is mutated deterministically — truncated, bytes
//! flipped, length-looking fields set to 0, 255 and 65535 — and random frames are made for
//! every link type: well over 100,000 cases, each summarized, decoded to a field tree and
//! pushed through an analyzer. Hostile streams (over-long lines, NUL bytes, `\n.\r\n`,
//! random bytes) go through the POP3 and SMTP cutters.
// Test code: a failed lookup or index is a test failure, which is what a panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::decode_support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use decode_support::*;
use mailwire::capture::LinkType;
use mailwire::capture::file::read_all;
use mailwire::decode::{Analyzer, Field, decode_frame_partial, summarize};
use mailwire::proto::Direction;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn check_tree_ranges(f: &Field, len: usize) {
    assert!(
        f.range.start <= f.range.end && f.range.end <= len,
        "{} {:?} outside {len}",
        f.name,
        f.range
    );
    for c in &f.children {
        check_tree_ranges(c, len);
    }
}

/// Decodes one (possibly hostile) frame both ways and pushes it into `analyzer`.
fn exercise(analyzer: &mut Analyzer, link: LinkType, data: &[u8]) {
    let s = summarize(0, link, data, data.len() as u32);
    if let Some(t) = s.tcp {
        assert!(t.payload_offset as usize + t.payload_len as usize <= data.len());
    }
    let tree = decode_frame_partial(link, data);
    for l in &tree.layers {
        check_tree_ranges(l, data.len());
    }
    if let Some(e) = &tree.error {
        let text = e.to_string();
        assert!(
            text.contains(e.layer) || text.starts_with("link type"),
            "{text}"
        );
    }
    analyzer.push_frame(0, link, data, data.len() as u32);
}

/// All mutants of one frame; returns how many were tried.
fn mutate_all(link: LinkType, frame: &[u8]) -> usize {
    let mut analyzer = Analyzer::new();
    let mut cases = 0;
    let mut run = |data: &[u8]| {
        exercise(&mut analyzer, link, data);
        cases += 1;
    };
    let head = frame.len().min(96);
    // Truncated at every length in the headers, then every 13th byte.
    for len in (0..frame.len()).filter(|&l| l <= 96 || l % 13 == 0) {
        run(&frame[..len]);
    }
    let mut m = frame.to_vec();
    for i in 0..head {
        // Flipped bytes.
        m[i] ^= 0xff;
        run(&m);
        m[i] = frame[i];
        // One-byte fields at their extremes (header lengths, IHL, data offset...).
        for v in [0u8, 0x0f, 0x4f, 0xf0, 255] {
            m[i] = v;
            run(&m);
        }
        m[i] = frame[i];
        // Two-byte length fields at 0, 255, 65535.
        if i + 1 < frame.len() {
            for v in [0u16, 255, 65535] {
                m[i..i + 2].copy_from_slice(&v.to_be_bytes());
                run(&m);
            }
            m[i..i + 2].copy_from_slice(&frame[i..i + 2]);
        }
    }
    analyzer.finish();
    cases
}

fn hand_built_frames() -> Vec<(LinkType, Vec<u8>)> {
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let v4b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut out = Vec::new();
    for link in [
        LinkType::ETHERNET,
        LinkType::NULL,
        LinkType::LOOP,
        LinkType::LINUX_SLL,
        LinkType::LINUX_SLL2,
        LinkType::RAW,
        LinkType::IPV4,
    ] {
        out.push((link, syn_with_options(link, v4, v4b)));
        out.push((
            link,
            wrap(
                link,
                &ip_tcp(v4, v4b, tcp_header(1, 110, 5, 6, PSH_ACK), b"RETR 1\r\n"),
            ),
        ));
    }
    for link in [LinkType::IPV6, LinkType::ETHERNET, LinkType::NULL] {
        out.push((
            link,
            wrap(
                link,
                &ip_tcp(v6, v6, tcp_header(2, 25, 5, 6, PSH_ACK), b"EHLO x\r\n"),
            ),
        ));
    }
    out
}

fn reference_frames() -> Vec<(LinkType, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference-captures");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!(
            "SKIPPED the reference captures: {} is not here",
            dir.display()
        );
        return Vec::new();
    };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        if let Ok(packets) = read_all(&f) {
            out.extend(packets.into_iter().map(|p| (p.link_type, p.data)));
        }
    }
    out
}

#[test]
fn mutated_frames_never_panic() {
    let mut frames = hand_built_frames();
    let reference = reference_frames();
    // Without the reference captures, more random frames keep the case count above 100k.
    let random_per_link = if reference.is_empty() { 12_000 } else { 2000 };
    frames.extend(reference);
    let mut cases = 0;
    for (link, frame) in &frames {
        cases += mutate_all(*link, frame);
    }
    // Random frames for every link type, and as an unknown link type.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut analyzer = Analyzer::new();
    for link in [
        LinkType::ETHERNET,
        LinkType::NULL,
        LinkType::LOOP,
        LinkType::LINUX_SLL,
        LinkType::LINUX_SLL2,
        LinkType::RAW,
        LinkType::IPV4,
        LinkType::IPV6,
        LinkType(147),
    ] {
        for _ in 0..random_per_link {
            let len = rng.below(120);
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Often make it look like IPv4/IPv6 so the deeper layers are reached.
            if rng.below(2) == 0 {
                let at = match link {
                    LinkType::ETHERNET => 14,
                    LinkType::NULL | LinkType::LOOP => 4,
                    LinkType::LINUX_SLL => 16,
                    LinkType::LINUX_SLL2 => 20,
                    _ => 0,
                };
                if let Some(b) = data.get_mut(at) {
                    *b = if rng.below(2) == 0 { 0x45 } else { 0x60 };
                }
            }
            exercise(&mut analyzer, link, &data);
            cases += 1;
        }
    }
    analyzer.finish();
    println!("{cases} hostile frames decoded without a panic");
    assert!(cases >= 100_000, "only {cases} cases");
}

/// Pushes client/server turns (in chunks) through a connection on `port`; checks the unit
/// invariants.
fn run_streams(port: u16, turns: &[(bool, Vec<u8>)], chunk: usize) -> Analyzer {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, port);
    c.handshake();
    for (from_client, bytes) in turns {
        c.send_chunked(*from_client, bytes, chunk);
    }
    c.close();
    let mut a = Analyzer::new();
    for f in &c.frames {
        a.push(f);
    }
    a.finish();
    for u in a.units() {
        assert!(
            u.text.chars().count() <= 241,
            "unit text is bounded: {}",
            u.text.len()
        );
        assert!(u.stream.start <= u.stream.end);
    }
    for conn in a.connections() {
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let mut ranges: Vec<_> = conn
                .units
                .iter()
                .map(|&u| &a.units()[u])
                .filter(|u| u.direction == dir)
                .map(|u| u.stream.clone())
                .collect();
            ranges.sort_by_key(|r| r.start);
            for w in ranges.windows(2) {
                assert!(w[0].end <= w[1].start, "units overlap: {ranges:?}");
            }
        }
    }
    a
}

#[test]
fn hostile_streams_never_panic() {
    let mut rng = Rng(42);
    let long_line = vec![b'A'; 3 << 20];
    let mut random = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next() as u8).collect() };
    let r1 = random(5000);
    let r2 = random(5000);
    let cases: Vec<Vec<(bool, Vec<u8>)>> = vec![
        vec![
            (false, b"+OK hi\r\n".to_vec()),
            (true, long_line.clone()),
            (false, b"-ERR too long\r\n".to_vec()),
        ],
        vec![
            (false, b"+OK hi\r\n".to_vec()),
            (true, b"RETR 1\r\n".to_vec()),
            (false, long_line.clone()),
        ],
        vec![
            (false, b"220 hi\r\n".to_vec()),
            (true, b"DATA\r\n".to_vec()),
            (false, b"354 go\r\n".to_vec()),
            (true, long_line.clone()),
        ],
        vec![
            (false, b"220 hi\r\n".to_vec()),
            (true, b"DATA\r\n".to_vec()),
            (false, b"354 go\r\n".to_vec()),
            (true, b"a\n.\r\nb\r\n.\nc\r\n\x00.\r\n\r\n.\r\n".to_vec()),
            (false, b"250 ok\r\n".to_vec()),
        ],
        vec![
            (false, b"+OK\x00\xff\r\n".to_vec()),
            (true, b"\x00\x00\r\n\r\n\n\n".to_vec()),
            (false, b"\r\r\r\n.\r\n+\r\n-\r\n".to_vec()),
        ],
        vec![
            (false, r1.clone()),
            (true, r2.clone()),
            (false, r2.clone()),
            (true, r1.clone()),
        ],
        vec![
            (false, b"220 x\r\n".to_vec()),
            (true, b"BDAT 99999999999999999999\r\nBDAT 5\r\nab".to_vec()),
            (true, b"STARTTLS\r\n".to_vec()),
            (false, b"220 go\r\n".to_vec()),
            (true, r1.clone()),
            (false, r2.clone()),
        ],
        vec![
            (false, b"+OK x\r\n".to_vec()),
            (true, b"STLS\r\n".to_vec()),
            (false, b"+OK go\r\n".to_vec()),
            (true, vec![0x16, 3, 1, 0xff, 0xff]),
            (false, vec![0x16, 3, 3, 0, 0, 0x99, 0x99]),
        ],
        vec![(true, b"DATA\r\n".to_vec()), (true, r1.clone())],
    ];
    for port in [110, 25, 9999] {
        for turns in &cases {
            for chunk in [1, 7, 1460, 65000] {
                let big = turns.iter().any(|(_, b)| b.len() > 100_000);
                if big && chunk < 1460 {
                    continue;
                }
                run_streams(port, turns, chunk);
            }
        }
    }
    // The 3 MB line is one unit with a bounded text.
    let a = run_streams(110, &cases[0], 65000);
    let u = a
        .units()
        .iter()
        .find(|u| u.direction == Direction::ClientToServer)
        .unwrap();
    assert_eq!(u.len(), 3 << 20);
    assert!(u.text.ends_with('…'));
}
