//! Field trees of hand-built frames: every link type mailwire reads, every IPv4 and TCP
//! field with its byte range, verified checksums (and the loopback offload note), options,
//! fragments, non-TCP traffic, and the error sentences for frames that lie or are cut.
// Test code: a failed lookup or index is a test failure, which is what a panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::decode_support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use decode_support::*;
use mailwire::capture::LinkType;
use mailwire::decode::{Field, FrameTree, decode_frame, decode_frame_partial, summarize};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 4));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(212, 227, 15, 166));
const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn field<'a>(tree: &'a FrameTree, name: &str) -> &'a Field {
    tree.find(name)
        .unwrap_or_else(|| panic!("no field {name:?} in {tree:#?}"))
}

fn all_fields(f: &Field, out: &mut Vec<Field>) {
    out.push(f.clone());
    for c in &f.children {
        all_fields(c, out);
    }
}

/// Every field lies inside the frame, and children inside their parent.
fn assert_ranges_sane(tree: &FrameTree, len: usize) {
    fn check(f: &Field, len: usize) {
        assert!(
            f.range.start <= f.range.end && f.range.end <= len,
            "{f:?} outside {len}"
        );
        for c in &f.children {
            assert!(
                c.range.start >= f.range.start && c.range.end <= f.range.end,
                "{} {:?} not inside {} {:?}",
                c.name,
                c.range,
                f.name,
                f.range
            );
            check(c, len);
        }
    }
    for l in &tree.layers {
        check(l, len);
    }
}

#[test]
fn ethernet_ipv4_tcp_syn_every_field_with_its_bytes() {
    let frame = syn_with_options(LinkType::ETHERNET, A, B);
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    assert_ranges_sane(&tree, frame.len());
    let names: Vec<&str> = tree.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Ethernet II",
            "Internet Protocol version 4",
            "Transmission Control Protocol"
        ]
    );

    let eth = tree.layer("Ethernet II").unwrap();
    assert_eq!(eth.child("Type").unwrap().value, "IPv4 (0x0800)");
    assert_eq!(eth.child("Type").unwrap().range, 12..14);
    assert!(eth.note.as_deref().unwrap().contains("Linux loopback"));

    let ip = tree.layer("Internet Protocol version 4").unwrap();
    assert_eq!(ip.range, 14..34);
    for (name, value, range) in [
        ("Version", "4", 14..15),
        ("Header length", "20 bytes (5)", 14..15),
        ("Total length", "60 bytes", 16..18),
        ("Time to live", "64", 22..23),
        ("Protocol", "TCP (6)", 23..24),
        ("Source address", "192.168.0.4", 26..30),
        ("Destination address", "212.227.15.166", 30..34),
        ("Fragment offset", "0 (byte 0)", 20..22),
    ] {
        let f = ip.child(name).unwrap();
        assert_eq!(
            (f.value.as_str(), f.range.clone()),
            (value, range),
            "{name}"
        );
    }
    assert!(
        ip.child("Header checksum")
            .unwrap()
            .value
            .ends_with("(correct)")
    );
    let flags = ip.child("Flags").unwrap();
    assert_eq!(flags.child("Don't fragment").unwrap().value, "set");
    assert_eq!(flags.child("More fragments").unwrap().value, "not set");

    let tcp = tree.layer("Transmission Control Protocol").unwrap();
    for (name, value, range) in [
        ("Source port", "40000", 34..36),
        ("Destination port", "110", 36..38),
        ("Sequence number", "16909060", 38..42),
        ("Acknowledgment number", "0", 42..46),
        ("Data offset", "40 bytes (10)", 46..47),
        ("Flags", "0x002 (SYN)", 46..48),
        ("Window", "65535", 48..50),
        ("Urgent pointer", "0", 52..54),
        ("Options", "20 bytes", 54..74),
    ] {
        let f = tcp.child(name).unwrap();
        assert_eq!(
            (f.value.as_str(), f.range.clone()),
            (value, range),
            "{name}"
        );
    }
    let flag_bits = tcp.child("Flags").unwrap();
    assert_eq!(flag_bits.children.len(), 10);
    assert_eq!(flag_bits.child("Syn (SYN)").unwrap().value, "set");
    assert_eq!(
        flag_bits.child("Acknowledgment (ACK)").unwrap().value,
        "not set"
    );
    assert_eq!(
        tcp.child("Checksum").unwrap().value.split(' ').nth(1),
        Some("(correct)")
    );

    let options = tcp.child("Options").unwrap();
    let opts: Vec<(&str, &str, std::ops::Range<usize>)> = options
        .children
        .iter()
        .map(|o| (o.name.as_str(), o.value.as_str(), o.range.clone()))
        .collect();
    assert_eq!(
        opts,
        [
            ("Maximum segment size", "65495 bytes", 54..58),
            ("SACK permitted", "", 58..60),
            ("Timestamps", "TSval 123456, TSecr 0", 60..70),
            ("No-Operation (NOP)", "", 70..71),
            ("Window scale", "7 (multiply by 128)", 71..74),
        ]
    );
}

#[test]
fn ipv4_checksum_is_verified() {
    let mut frame = syn_with_options(LinkType::ETHERNET, A, B);
    frame[24] ^= 0xff;
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    let v = &field(&tree, "Header checksum").value;
    assert!(v.contains("(incorrect, should be 0x"), "{v}");
}

#[test]
fn tcp_checksum_wrong_on_loopback_is_not_flagged() {
    let h = tcp_header(40000, 110, 1, 1, PSH_ACK);
    let mut frame = wrap(LinkType::ETHERNET, &ip_tcp(LO, LO, h.clone(), b"STAT\r\n"));
    frame[50] = 0xfe; // the checksum, as the kernel leaves it on lo
    frame[51] = 0x30;
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    let c = field(&tree, "Checksum");
    assert_eq!(c.value, "0xfe30");
    assert!(
        c.note
            .as_deref()
            .unwrap()
            .starts_with("not verified: loopback checksum offload")
    );

    // Not loopback: flagged, with the right value.
    let mut frame = wrap(
        LinkType::ETHERNET,
        &ip_tcp(A, B, tcp_header(40000, 110, 1, 1, PSH_ACK), b"STAT\r\n"),
    );
    frame[6] = 1; // a real MAC
    let good = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    let good_value = field(&good, "Checksum").value.clone();
    frame[50] ^= 0x55;
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    let c = field(&tree, "Checksum");
    assert!(c.value.contains("incorrect, should be"), "{}", c.value);
    assert!(
        c.value
            .ends_with(&format!("{})", good_value.split(' ').next().unwrap()))
    );
}

#[test]
fn every_link_type_decodes_to_the_same_tcp() {
    let ip = ip_tcp(
        A,
        B,
        tcp_header(40000, 110, 7, 9, PSH_ACK),
        b"USER mrose\r\n",
    );
    for (link, first_layer, header_len) in [
        (LinkType::ETHERNET, "Ethernet II", 14),
        (LinkType::NULL, "Null/Loopback", 4),
        (LinkType::LOOP, "OpenBSD loopback", 4),
        (LinkType::LINUX_SLL, "Linux cooked capture v1", 16),
        (LinkType::LINUX_SLL2, "Linux cooked capture v2", 20),
        (LinkType::RAW, "Raw IP", 0),
        (LinkType::IPV4, "Raw IP", 0),
    ] {
        let frame = wrap(link, &ip);
        let tree = decode_frame(link, &frame).unwrap_or_else(|e| panic!("{link:?}: {e}"));
        assert_ranges_sane(&tree, frame.len());
        assert_eq!(tree.layers[0].name, first_layer);
        let tcp = tree.layer("Transmission Control Protocol").unwrap();
        assert_eq!(tcp.range.start, header_len + 20, "{link:?}");
        let payload = tree.layer("Payload").unwrap();
        assert_eq!(&frame[payload.range.clone()], b"USER mrose\r\n");
        let s = summarize(0, link, &frame, frame.len() as u32);
        let t = s.tcp.unwrap();
        assert_eq!((t.src_port, t.dst_port, t.seq, t.ack), (40000, 110, 7, 9));
        assert_eq!(t.payload_offset as usize, header_len + 40);
        assert_eq!(t.payload_len, 12);
        assert!(s.error.is_none());
    }
}

#[test]
fn null_header_in_either_byte_order() {
    let ip = ip_tcp(LO, LO, tcp_header(1, 2, 3, 4, ACK), b"");
    let mut big = 2u32.to_be_bytes().to_vec();
    big.extend_from_slice(&ip);
    let mut little = 2u32.to_le_bytes().to_vec();
    little.extend_from_slice(&ip);
    for (frame, order) in [(big, "big-endian"), (little, "little-endian")] {
        let tree = decode_frame(LinkType::NULL, &frame).unwrap();
        let af = field(&tree, "Address family");
        assert_eq!(af.value, "IPv4 (2)");
        assert!(af.note.as_deref().unwrap().starts_with(order));
        assert!(tree.layer("Transmission Control Protocol").is_some());
    }
}

#[test]
fn ipv6_on_raw_and_null_links() {
    let a = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let ip = ip_tcp(a, a, tcp_header(50000, 25, 1, 1, PSH_ACK), b"EHLO x\r\n");
    for link in [
        LinkType::IPV6,
        LinkType::RAW,
        LinkType::NULL,
        LinkType::ETHERNET,
    ] {
        let frame = wrap(link, &ip);
        let tree = decode_frame(link, &frame).unwrap_or_else(|e| panic!("{link:?}: {e}"));
        assert_ranges_sane(&tree, frame.len());
        let v6 = tree.layer("Internet Protocol version 6").unwrap();
        assert_eq!(v6.child("Source address").unwrap().value, "::1");
        assert_eq!(v6.child("Next header").unwrap().value, "TCP (6)");
        let s = summarize(0, link, &frame, frame.len() as u32);
        assert_eq!(s.ip.unwrap().src, a);
        assert_eq!(s.tcp.unwrap().payload_len, 8);
    }
}

#[test]
fn vlan_tag_and_big_loopback_frames() {
    let ip = ip_tcp(LO, LO, tcp_header(1, 110, 1, 1, PSH_ACK), &vec![b'x'; 3000]);
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x81, 0x00, 0x20, 0x05, 0x08, 0x00]);
    frame.extend_from_slice(&ip);
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    assert_ranges_sane(&tree, frame.len());
    let vlan = field(&tree, "802.1Q VLAN tag");
    assert_eq!(vlan.value, "VLAN 5");
    assert_eq!(vlan.range, 14..18);
    assert_eq!(
        tree.layer("Internet Protocol version 4")
            .unwrap()
            .range
            .start,
        18
    );
    assert_eq!(tree.layer("Payload").unwrap().range.len(), 3000);
}

#[test]
fn ip_fragments_are_said_and_not_reassembled() {
    let mut ip = ip_tcp(A, B, tcp_header(1, 110, 1, 1, PSH_ACK), b"RETR 1\r\n");
    ip[6] = 0x20; // more fragments
    ip[10] = 0;
    ip[11] = 0;
    let frame = wrap(LinkType::ETHERNET, &ip);
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    let v4 = tree.layer("Internet Protocol version 4").unwrap();
    assert!(
        v4.note
            .as_deref()
            .unwrap()
            .contains("does not reassemble IP fragments")
    );
    assert!(tree.layer("Transmission Control Protocol").is_none());
    assert!(tree.layer("Payload").unwrap().value.contains("IP fragment"));
    let s = summarize(0, LinkType::ETHERNET, &frame, frame.len() as u32);
    assert!(s.ip.unwrap().fragment);
    assert!(s.tcp.is_none());
}

#[test]
fn non_tcp_is_summarized_without_tcp() {
    let mut udp = Vec::new();
    etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5353, 53)
        .write(&mut udp, b"query")
        .unwrap();
    let s = summarize(0, LinkType::ETHERNET, &udp, udp.len() as u32);
    assert_eq!(s.ip.unwrap().protocol, 17);
    assert!(s.tcp.is_none() && s.error.is_none());
    let tree = decode_frame(LinkType::ETHERNET, &udp).unwrap();
    assert!(
        tree.layer("Payload")
            .unwrap()
            .value
            .contains("UDP, not decoded")
    );

    let mut arp = vec![0u8; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    let tree = decode_frame(LinkType::ETHERNET, &arp).unwrap();
    assert!(tree.layer("Payload").unwrap().value.contains("ARP"));
}

#[test]
fn sack_blocks_and_unknown_options_have_ranges() {
    let mut h = tcp_header(1, 110, 1, 1, ACK);
    h.set_options(&[
        etherparse::TcpOptionElement::Noop,
        etherparse::TcpOptionElement::Noop,
        etherparse::TcpOptionElement::SelectiveAcknowledgement(
            (100, 200),
            [Some((300, 400)), None, None],
        ),
    ])
    .unwrap();
    let frame = wrap(LinkType::ETHERNET, &ip_tcp(A, B, h, b""));
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    let sack = field(&tree, "SACK");
    assert_eq!(sack.value, "2 block(s)");
    assert_eq!(sack.range, 56..74);
    assert_eq!(sack.children[1].value, "300-400");
    assert_eq!(sack.children[1].range, 66..74);

    let mut h = tcp_header(1, 110, 1, 1, ACK);
    h.set_options_raw(&[30, 4, 0xab, 0xcd]).unwrap();
    let frame = wrap(LinkType::ETHERNET, &ip_tcp(A, B, h, b""));
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    let unknown = field(&tree, "Option kind 30");
    assert_eq!(unknown.range, 54..58);
}

#[test]
fn ipv4_options_have_ranges() {
    // IHL 6: one NOP, one "router alert"-sized option would not fit; use NOP + EOL padding.
    let ip = ip_tcp(A, B, tcp_header(1, 110, 1, 1, ACK), b"");
    let mut v = ip[..20].to_vec();
    v[0] = 0x46;
    v.extend_from_slice(&[1, 0, 0, 0]);
    v.extend_from_slice(&ip[20..]);
    let total = (v.len() as u16).to_be_bytes();
    v[2] = total[0];
    v[3] = total[1];
    let frame = wrap(LinkType::ETHERNET, &v);
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    let opts = field(&tree, "Options");
    assert_eq!(opts.range, 34..38);
    assert_eq!(opts.children[0].name, "No-Operation");
    assert_eq!(opts.children[1].name, "End of options list");
    assert!(field(&tree, "Header checksum").value.contains("incorrect"));
    assert_eq!(
        tree.layer("Transmission Control Protocol")
            .unwrap()
            .range
            .start,
        38
    );
}

#[test]
fn errors_name_layer_offset_and_lengths() {
    let good = wrap(
        LinkType::ETHERNET,
        &ip_tcp(A, B, tcp_header(1, 110, 1, 1, ACK), b""),
    );

    let e = decode_frame(LinkType::ETHERNET, &good[..10]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Ethernet header at byte 0 needs 14 bytes but only 10 bytes remain"
    );

    let e = decode_frame(LinkType::ETHERNET, &good[..30]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "IPv4 header at byte 14 needs 20 bytes but only 16 bytes remain"
    );

    let mut lying = good.clone();
    lying[14] = 0x4f; // IHL 15: 60 bytes
    let e = decode_frame(LinkType::ETHERNET, &lying).unwrap_err();
    assert_eq!(
        e.to_string(),
        "IPv4 header at byte 14 says (in its header length field) it is 60 bytes long but only 40 bytes remain"
    );
    assert_eq!(
        (e.layer, e.offset, e.needed, e.available),
        ("IPv4 header", 14, 60, 40)
    );

    let mut lying = good.clone();
    lying[14] = 0x43; // IHL 3
    let e = decode_frame(LinkType::ETHERNET, &lying).unwrap_err();
    assert!(
        e.to_string().contains("less than the 20-byte minimum"),
        "{e}"
    );

    let mut lying = good.clone();
    lying[16] = 0x05; // total length 1280+
    let partial = decode_frame_partial(LinkType::ETHERNET, &lying);
    let e = partial.error.clone().unwrap();
    assert!(
        e.to_string().starts_with(
            "IPv4 packet at byte 14 says (in its total length field) it is 1320 bytes long"
        ),
        "{e}"
    );
    assert!(
        partial.layer("Transmission Control Protocol").is_some(),
        "decoded as far as the bytes go"
    );

    let mut lying = good.clone();
    lying[46] = 0xf0; // TCP data offset 15: 60 bytes
    let e = decode_frame(LinkType::ETHERNET, &lying).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TCP header at byte 34 says (in its data offset field) it is 60 bytes long but only 20 bytes remain"
    );

    let mut lying = good.clone();
    lying[46] = 0x20; // data offset 2
    let e = decode_frame(LinkType::ETHERNET, &lying).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TCP header at byte 34 says (in its data offset field) it is 8 bytes long, less than the 20-byte minimum"
    );

    let mut v6 = good.clone();
    v6[14] = 0x65;
    let e = decode_frame(LinkType::ETHERNET, &v6).unwrap_err();
    assert_eq!(
        e.to_string(),
        "IPv4 header at byte 14 has version 6 where 4 was expected"
    );

    let e = decode_frame(LinkType(147), &good).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("link type 147 is not one mailwire decodes")
    );

    let e = decode_frame(LinkType::NULL, &[2, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "NULL/loopback header at byte 0 needs 4 bytes but only 2 bytes remain"
    );

    let e = decode_frame(LinkType::RAW, &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "raw IP packet at byte 0 needs 1 byte but only 0 bytes remain"
    );

    // The summary keeps the error too.
    let s = summarize(0, LinkType::ETHERNET, &good[..30], 30);
    assert_eq!(s.error.unwrap().layer, "IPv4 header");
}

#[test]
fn ethernet_padding_is_a_trailer() {
    let mut frame = wrap(
        LinkType::ETHERNET,
        &ip_tcp(A, B, tcp_header(1, 110, 1, 1, ACK), b""),
    );
    frame.extend_from_slice(&[0; 6]);
    let tree = decode_frame(LinkType::ETHERNET, &frame).unwrap();
    assert_eq!(tree.layer("Trailer").unwrap().range, 54..60);
    let s = summarize(0, LinkType::ETHERNET, &frame, 60);
    assert_eq!(s.tcp.unwrap().payload_len, 0);
    let mut all = Vec::new();
    for l in &tree.layers {
        all_fields(l, &mut all);
    }
    assert!(all.iter().all(|f| f.range.end <= frame.len()));
}
