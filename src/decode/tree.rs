//! The full field tree of one frame, computed on demand for the frame a user selects: every
//! header field with its value and its byte range in the frame (which drives the hex-dump
//! highlighting), grouped in layers (link, IP, TCP, payload).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use etherparse::{TcpOptionElement, TcpOptionReadError, TcpOptionsIterator};

use super::error::DecodeError;
use super::layers::{self, Ipv4, Ipv6, Link, LinkKind, Net, Next, Tcp};
use super::layout::{
    ARPHRD_LOOPBACK, at, be16, ethernet, four, ipv4, ipv6, loopback, one, option, sll, sll2, tcp,
    vlan,
};
use crate::capture::LinkType;

/// One named field: its value as text, the bytes it occupies in the frame, sub-fields, and a
/// remark (a checksum that was not verified, a fragment that was not reassembled, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
    /// Byte offsets in the frame. Bit fields share their bytes with their neighbours.
    pub range: Range<usize>,
    pub children: Vec<Field>,
    pub note: Option<String>,
    /// For a protocol unit's bytes shown under the payload: the unit's index in the
    /// analyzer (set by whoever adds such fields; the frame decoder knows no units).
    pub unit: Option<usize>,
}

impl Field {
    /// A field without children or note.
    pub fn new(name: impl Into<String>, value: impl Into<String>, range: Range<usize>) -> Self {
        Field {
            name: name.into(),
            value: value.into(),
            range,
            children: Vec::new(),
            note: None,
            unit: None,
        }
    }

    /// This field with a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// This field with children.
    pub fn with_children(mut self, children: Vec<Field>) -> Self {
        self.children = children;
        self
    }

    /// The first direct child called `name`.
    pub fn child(&self, name: &str) -> Option<&Field> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first field called `name` here or below (depth first).
    pub fn find(&self, name: &str) -> Option<&Field> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// Mutable access to the first field called `name` here or below.
    pub fn find_mut(&mut self, name: &str) -> Option<&mut Field> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter_mut().find_map(|c| c.find_mut(name))
    }
}

/// The decoded layers of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTree {
    /// Link, network, transport and payload layers, in frame order, as far as decoded.
    pub layers: Vec<Field>,
    /// Why decoding stopped early, or what is inconsistent (a length that lies).
    pub error: Option<DecodeError>,
}

impl FrameTree {
    /// The layer called `name` ("Ethernet II", "Internet Protocol version 4", ...).
    pub fn layer(&self, name: &str) -> Option<&Field> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// The first field called `name` in any layer.
    pub fn find(&self, name: &str) -> Option<&Field> {
        self.layers.iter().find_map(|l| l.find(name))
    }

    /// Mutable access to the first field called `name` in any layer.
    pub fn find_mut(&mut self, name: &str) -> Option<&mut Field> {
        self.layers.iter_mut().find_map(|l| l.find_mut(name))
    }
}

/// Layer names, as the tree uses them.
pub const LAYER_TCP: &str = "Transmission Control Protocol";
/// Layer name of IPv4.
pub const LAYER_IPV4: &str = "Internet Protocol version 4";
/// Layer name of IPv6.
pub const LAYER_IPV6: &str = "Internet Protocol version 6";
/// Layer name of the bytes after the last decoded header.
pub const LAYER_PAYLOAD: &str = "Payload";

/// Decodes one frame into its field tree. Any malformed or truncated layer is an error; use
/// [`decode_frame_partial`] to get the layers before it as well.
pub fn decode_frame(link: LinkType, data: &[u8]) -> Result<FrameTree, DecodeError> {
    let tree = decode_frame_partial(link, data);
    match tree.error {
        Some(e) => Err(e),
        None => Ok(tree),
    }
}

/// Decodes one frame as far as it goes: the layers that decoded, and the first error.
pub fn decode_frame_partial(link: LinkType, data: &[u8]) -> FrameTree {
    decode_captured_frame(link, data, u32::try_from(data.len()).unwrap_or(u32::MAX))
}

/// Like [`decode_frame_partial`], for a frame that was `orig_len` bytes on the wire: when the
/// capture kept fewer, the IP length beyond the captured bytes is noted, not an error.
pub fn decode_captured_frame(link: LinkType, data: &[u8], orig_len: u32) -> FrameTree {
    let cut = usize::try_from(orig_len).is_ok_and(|o| o > data.len());
    let mut tree = walk_tree(link, data, cut);
    if cut {
        let note = format!(
            "the capture kept {} of the frame's {orig_len} bytes (snapshot length); the rest \
             was not captured",
            data.len()
        );
        for name in ["Total length", "Payload length"] {
            if let Some(f) = tree.find_mut(name) {
                f.note = Some(note.clone());
            }
        }
    }
    tree
}

fn walk_tree(link: LinkType, data: &[u8], cut: bool) -> FrameTree {
    let walk = layers::walk(link, data, true, cut);
    let mut out = Vec::new();
    let Some(l) = &walk.link else {
        return FrameTree {
            layers: raw_payload(0..data.len(), "not decoded"),
            error: walk.error,
        };
    };
    out.push(link_layer(data, l));
    let loopback_link = is_loopback_link(data, l);
    match &walk.net {
        Some(Net::V4(v4)) => out.push(ipv4_layer(data, v4)),
        Some(Net::V6(v6)) => out.push(ipv6_layer(data, v6)),
        None => {
            let what = match l.next {
                Next::OtherEtherType(t) => format!("{}, not decoded", ethertype_name(t)),
                Next::OtherFamily(f) => format!("{}, not decoded", family_name(f)),
                _ => "not decoded".to_string(),
            };
            out.extend(raw_payload(l.end()..data.len(), &what));
        }
    }
    if let Some(net) = &walk.net {
        out.extend(transport_layers(
            data,
            net,
            walk.tcp.as_ref(),
            loopback_link,
        ));
        let trailer = match net {
            Net::V4(v4) => v4.trailer.clone(),
            Net::V6(v6) => v6.trailer.clone(),
        };
        if !trailer.is_empty() {
            out.push(
                Field::new("Trailer", format!("{} bytes", trailer.len()), trailer).with_note(
                    "bytes after the IP packet: Ethernet padding to the minimum frame size",
                ),
            );
        }
    }
    FrameTree {
        layers: out,
        error: walk.error,
    }
}

fn raw_payload(range: Range<usize>, what: &str) -> Vec<Field> {
    if range.is_empty() {
        return Vec::new();
    }
    vec![Field::new(
        LAYER_PAYLOAD,
        format!("{} bytes, {what}", range.len()),
        range,
    )]
}

fn transport_layers(
    data: &[u8],
    net: &Net<'_>,
    tcp: Option<&Tcp<'_>>,
    loopback_link: bool,
) -> Vec<Field> {
    let payload = net.payload();
    if net.is_fragment() {
        return vec![
            Field::new(
                LAYER_PAYLOAD,
                format!("{} bytes of an IP fragment", payload.len()),
                payload,
            )
            .with_note("mailwire does not reassemble IP fragments, so this is not decoded as TCP"),
        ];
    }
    match tcp {
        Some(t) => {
            let mut v = vec![tcp_layer(data, net, t, loopback_link)];
            if !t.payload.is_empty() {
                v.push(Field::new(
                    LAYER_PAYLOAD,
                    format!("{} bytes of TCP data", t.payload.len()),
                    t.payload.clone(),
                ));
            }
            v
        }
        None => {
            let name = match net.protocol() {
                layers::IP_PROTO_TCP => "TCP, header not decodable",
                17 => "UDP, not decoded",
                1 => "ICMP, not decoded",
                58 => "ICMPv6, not decoded",
                _ => "not decoded",
            };
            let what = format!("protocol {} ({name})", net.protocol());
            raw_payload(payload, &what)
        }
    }
}

fn mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ethertype_name(t: u16) -> String {
    let name = match t {
        layers::ETHERTYPE_IPV4 => "IPv4",
        layers::ETHERTYPE_IPV6 => "IPv6",
        0x0806 => "ARP",
        layers::ETHERTYPE_VLAN => "802.1Q VLAN",
        _ => "EtherType",
    };
    format!("{name} (0x{t:04x})")
}

fn family_name(f: u32) -> String {
    let name = match f {
        2 => "IPv4",
        10 | 24 | 28 | 30 => "IPv6",
        _ => "address family",
    };
    format!("{name} ({f})")
}

/// Linux `lo`, BSD `lo0`: the TCP checksum is left to an offload that never happens.
fn is_loopback_link(data: &[u8], l: &Link) -> bool {
    match l.kind {
        LinkKind::Null { .. } | LinkKind::Loop => true,
        LinkKind::Ethernet => data
            .get(ethernet::ADDRESSES)
            .is_some_and(|m| m.iter().all(|b| *b == 0)),
        LinkKind::LinuxSll => be16(data, sll::HW_TYPE) == Some(ARPHRD_LOOPBACK),
        LinkKind::LinuxSll2 => be16(data, sll2::HW_TYPE) == Some(ARPHRD_LOOPBACK),
        LinkKind::Raw => false,
    }
}

fn link_layer(data: &[u8], l: &Link) -> Field {
    match l.kind {
        LinkKind::Ethernet => ethernet_layer(data, l),
        LinkKind::Null { big_endian } => {
            let (family, _) = layers::null_family(four(data, loopback::FAMILY).unwrap_or_default());
            let order = if big_endian {
                "big-endian"
            } else {
                "little-endian"
            };
            Field::new("Null/Loopback", family_name(family), l.header.clone()).with_children(vec![
                Field::new("Address family", family_name(family), loopback::FAMILY).with_note(format!(
                    "{order}: the capturing machine's byte order (BSD/macOS lo0, Windows loopback)"
                )),
            ])
        }
        LinkKind::Loop => {
            let family = u32::from_be_bytes(four(data, loopback::FAMILY).unwrap_or_default());
            Field::new("OpenBSD loopback", family_name(family), l.header.clone()).with_children(
                vec![
                    Field::new("Address family", family_name(family), loopback::FAMILY)
                        .with_note("network byte order"),
                ],
            )
        }
        LinkKind::LinuxSll => sll_layer(data),
        LinkKind::LinuxSll2 => sll2_layer(data),
        LinkKind::Raw => Field::new("Raw IP", "no link-layer header", l.header.clone()),
    }
}

fn ethernet_layer(data: &[u8], l: &Link) -> Field {
    let dst = data.get(ethernet::DESTINATION).unwrap_or_default();
    let src = data.get(ethernet::SOURCE).unwrap_or_default();
    let outer = be16(data, ethernet::ETHERTYPE).unwrap_or(0);
    let mut children = vec![
        Field::new("Destination", mac(dst), ethernet::DESTINATION),
        Field::new("Source", mac(src), ethernet::SOURCE),
        Field::new("Type", ethertype_name(outer), ethernet::ETHERTYPE),
    ];
    if let Some(v) = l.vlan_at {
        let tci = be16(data, at(v, vlan::TCI)).unwrap_or(0);
        let inner = be16(data, at(v, vlan::ETHERTYPE)).unwrap_or(0);
        children.push(
            Field::new(
                "802.1Q VLAN tag",
                format!("VLAN {}", tci & 0x0fff),
                v..v + vlan::LEN,
            )
            .with_children(vec![
                Field::new(
                    "Priority",
                    (tci >> 13).to_string(),
                    one(v, vlan::PRIORITY_DEI),
                ),
                Field::new(
                    "Drop eligible",
                    ((tci >> 12) & 1).to_string(),
                    one(v, vlan::PRIORITY_DEI),
                ),
                Field::new("VLAN ID", (tci & 0x0fff).to_string(), at(v, vlan::TCI)),
                Field::new("Type", ethertype_name(inner), at(v, vlan::ETHERTYPE)),
            ]),
        );
    }
    let mut f = Field::new(
        "Ethernet II",
        format!("{} → {}", mac(src), mac(dst)),
        l.header.clone(),
    )
    .with_children(children);
    if src.iter().chain(dst).all(|b| *b == 0) {
        f.note = Some("all-zero addresses: captured on Linux loopback (lo)".into());
    } else if data.len() > 1514 {
        f.note = Some(format!(
            "{} bytes, more than Ethernet's 1514: not one frame on the wire. Captured inside this host: a frame it sent is cut into wire-sized ones later, by the network card or the driver (TSO/GSO); a frame it received was merged from several before the capture saw it (GRO)",
            data.len()
        ));
    }
    f
}

fn sll_packet_type(t: u16) -> String {
    let name = match t {
        0 => "to us",
        1 => "broadcast",
        2 => "multicast",
        3 => "to another host",
        4 => "sent by us",
        _ => "unknown",
    };
    format!("{name} ({t})")
}

fn sll_layer(data: &[u8]) -> Field {
    let ptype = be16(data, sll::PACKET_TYPE).unwrap_or(0);
    let hw = be16(data, sll::HW_TYPE).unwrap_or(0);
    let alen = usize::from(be16(data, sll::ADDR_LEN).unwrap_or(0)).min(sll::ADDR.len());
    let proto = be16(data, sll::PROTOCOL).unwrap_or(0);
    let addr = sll::ADDR.start..sll::ADDR.start + alen;
    Field::new(
        "Linux cooked capture v1",
        ethertype_name(proto),
        0..sll::HEADER_LEN,
    )
    .with_children(vec![
        Field::new("Packet type", sll_packet_type(ptype), sll::PACKET_TYPE),
        Field::new("Link-layer address type", hw.to_string(), sll::HW_TYPE),
        Field::new("Link-layer address length", alen.to_string(), sll::ADDR_LEN),
        Field::new("Source", mac(data.get(addr).unwrap_or_default()), sll::ADDR),
        Field::new("Protocol", ethertype_name(proto), sll::PROTOCOL),
    ])
}

fn sll2_layer(data: &[u8]) -> Field {
    let proto = be16(data, sll2::PROTOCOL).unwrap_or(0);
    let ifindex = four(data, sll2::IF_INDEX)
        .map(u32::from_be_bytes)
        .unwrap_or(0);
    let hw = be16(data, sll2::HW_TYPE).unwrap_or(0);
    let ptype = data.get(sll2::PACKET_TYPE).copied().unwrap_or(0);
    let alen = usize::from(data.get(sll2::ADDR_LEN).copied().unwrap_or(0)).min(sll2::ADDR.len());
    let addr = sll2::ADDR.start..sll2::ADDR.start + alen;
    Field::new(
        "Linux cooked capture v2",
        ethertype_name(proto),
        0..sll2::HEADER_LEN,
    )
    .with_children(vec![
        Field::new("Protocol", ethertype_name(proto), sll2::PROTOCOL),
        Field::new(
            "Reserved",
            format!("0x{:04x}", be16(data, sll2::RESERVED).unwrap_or(0)),
            sll2::RESERVED,
        ),
        Field::new("Interface index", ifindex.to_string(), sll2::IF_INDEX),
        Field::new("Link-layer address type", hw.to_string(), sll2::HW_TYPE),
        Field::new(
            "Packet type",
            sll_packet_type(ptype.into()),
            one(0, sll2::PACKET_TYPE),
        ),
        Field::new(
            "Link-layer address length",
            alen.to_string(),
            one(0, sll2::ADDR_LEN),
        ),
        Field::new(
            "Source",
            mac(data.get(addr).unwrap_or_default()),
            sll2::ADDR,
        ),
    ])
}

fn protocol_name(p: u8) -> String {
    let name = match p {
        1 => "ICMP",
        6 => "TCP",
        17 => "UDP",
        58 => "ICMPv6",
        0 => "IPv6 hop-by-hop options",
        43 => "IPv6 routing header",
        44 => "IPv6 fragment header",
        60 => "IPv6 destination options",
        59 => "no next header",
        _ => "other",
    };
    format!("{name} ({p})")
}

fn set(b: bool) -> &'static str {
    if b { "set" } else { "not set" }
}

fn ipv4_layer(data: &[u8], v4: &Ipv4<'_>) -> Field {
    let h = &v4.header;
    let s = v4.start;
    let hl = v4.header_len();
    let byte6 = data.get(s + ipv4::FLAGS).copied().unwrap_or(0);
    let frag = h.fragments_offset().value();
    let mut children = vec![
        Field::new("Version", h.version().to_string(), one(s, ipv4::VER_IHL)),
        Field::new(
            "Header length",
            format!("{hl} bytes ({})", h.ihl()),
            one(s, ipv4::VER_IHL),
        ),
        Field::new(
            "Differentiated services",
            format!("DSCP {}, ECN {}", h.dcp().value(), h.ecn().value()),
            one(s, ipv4::DSCP_ECN),
        ),
        total_length_field(v4),
        Field::new(
            "Identification",
            format!("0x{0:04x} ({0})", h.identification()),
            at(s, ipv4::IDENT),
        )
        .with_note(if h.dont_fragment() && !v4.is_fragment() {
            "identifies the fragments of one datagram so the receiver can join them (RFC 791 \
             section 3.2). Don't fragment is set, so this packet is never cut: the ID is not used \
             for reassembly and may hold any value (RFC 6864 section 4)"
        } else {
            "identifies the fragments of one datagram: the receiver joins the fragments with the \
             same ID, addresses and protocol (RFC 791 section 3.2; RFC 6864 section 4)"
        }),
        Field::new("Flags", format!("0x{:x}", byte6 >> 5), one(s, ipv4::FLAGS))
            .with_children(vec![
                Field::new("Reserved bit", set(byte6 & 0x80 != 0), one(s, ipv4::FLAGS))
                    .with_note("must be zero (RFC 791 section 3.2)"),
                Field::new(
                    "Don't fragment",
                    set(h.dont_fragment()),
                    one(s, ipv4::FLAGS),
                )
                .with_note(
                    "DF: a router must not cut this packet; if it is too big for the next link the \
                     router drops it and says so in ICMP, which is how a sender finds the path's \
                     largest size (RFC 791 section 3.2; RFC 1191)",
                ),
                Field::new(
                    "More fragments",
                    set(h.more_fragments()),
                    one(s, ipv4::FLAGS),
                )
                .with_note(
                    "MF: set on every fragment of a datagram but the last; clear on a whole packet \
                     (RFC 791 section 3.2)",
                ),
            ]),
        Field::new(
            "Fragment offset",
            format!("{frag} (byte {})", u32::from(frag) * 8),
            at(s, ipv4::FLG_OFF),
        )
        .with_note(
            "where this fragment's data belongs in the original datagram, in units of 8 octets; \
             offset 0 with MF clear means a whole packet, not a fragment (RFC 791 section 3.2)",
        ),
        Field::new("Time to live", h.ttl().to_string(), one(s, ipv4::TTL)).with_note(
            "TTL, a hop limit: every router that forwards the packet subtracts 1 and drops it at 0, \
             so a packet caught in a loop dies out (RFC 791 section 3.2). Linux starts at 64; on \
             loopback no router is passed",
        ),
        Field::new(
            "Protocol",
            protocol_name(h.protocol().0),
            one(s, ipv4::PROTOCOL),
        ),
        ipv4_checksum_field(v4),
        Field::new(
            "Source address",
            Ipv4Addr::from(h.source()).to_string(),
            at(s, ipv4::SRC_ADDR),
        ),
        Field::new(
            "Destination address",
            Ipv4Addr::from(h.destination()).to_string(),
            at(s, ipv4::DST_ADDR),
        ),
    ];
    if hl > ipv4::MIN_HEADER_LEN {
        children.push(ipv4_options(data, s + ipv4::OPTIONS.start..s + hl));
    }
    let mut f = Field::new(
        LAYER_IPV4,
        format!(
            "{} → {}",
            Ipv4Addr::from(h.source()),
            Ipv4Addr::from(h.destination())
        ),
        s..s + hl,
    )
    .with_children(children);
    if v4.is_fragment() {
        f.note = Some(format!(
            "IP fragment (offset {} bytes{}): mailwire does not reassemble IP fragments",
            u32::from(frag) * 8,
            if h.more_fragments() {
                ", more follow"
            } else {
                ", the last one"
            }
        ));
    }
    f
}

fn total_length_field(v4: &Ipv4<'_>) -> Field {
    let s = v4.start;
    let total = v4.header.total_len();
    let f = Field::new(
        "Total length",
        format!("{total} bytes"),
        at(s, ipv4::TOTAL_LEN),
    );
    if v4.total_len_zero {
        f.with_note("0: not filled in, as segmentation offload does for a packet larger than the wire carries (TSO/GSO when sent, GRO when merged on receipt); using the captured length")
    } else if usize::from(total) > v4.payload.end - s {
        f.with_note(format!(
            "only {} bytes of the packet are in the frame",
            v4.payload.end - s
        ))
    } else {
        f
    }
}

fn ipv4_checksum_field(v4: &Ipv4<'_>) -> Field {
    let s = v4.start;
    let h = &v4.header;
    let found = h.header_checksum();
    let expected = h.to_header().calc_header_checksum();
    let value = if found == expected {
        format!("0x{found:04x} (correct)")
    } else {
        format!("0x{found:04x} (incorrect, should be 0x{expected:04x})")
    };
    Field::new("Header checksum", value, at(s, ipv4::CHECKSUM))
}

fn ipv4_option_name(kind: u8) -> &'static str {
    match kind {
        0 => "End of options list",
        1 => "No-Operation",
        7 => "Record route",
        68 => "Timestamp",
        130 => "Security",
        131 => "Loose source route",
        137 => "Strict source route",
        136 => "Stream ID",
        148 => "Router alert",
        _ => "Unknown option",
    }
}

fn ipv4_options(data: &[u8], range: Range<usize>) -> Field {
    let mut children = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let kind = data.get(at + option::KIND).copied().unwrap_or(0);
        if kind == 0 {
            children.push(Field::new(ipv4_option_name(0), "", at..range.end));
            break;
        }
        if kind == 1 {
            children.push(Field::new(ipv4_option_name(1), "", at..at + 1));
            at += 1;
            continue;
        }
        let len = usize::from(data.get(at + option::LENGTH).copied().unwrap_or(0));
        if len < 2 || at + len > range.end {
            children.push(
                Field::new(
                    ipv4_option_name(kind),
                    format!("kind {kind}"),
                    at..range.end,
                )
                .with_note(format!("its length {len} does not fit the options area")),
            );
            break;
        }
        children.push(Field::new(
            ipv4_option_name(kind),
            format!("kind {kind}, {len} bytes"),
            at..at + len,
        ));
        at += len;
    }
    Field::new("Options", format!("{} bytes", range.len()), range).with_children(children)
}

fn ipv6_layer(data: &[u8], v6: &Ipv6<'_>) -> Field {
    let h = &v6.header;
    let s = v6.start;
    let mut children = vec![
        Field::new("Version", h.version().to_string(), one(s, ipv6::VERSION)),
        Field::new(
            "Traffic class",
            format!("0x{:02x}", h.traffic_class()),
            at(s, ipv6::TRAFFIC_CLASS),
        ),
        Field::new(
            "Flow label",
            format!("0x{:05x}", h.flow_label().value()),
            at(s, ipv6::FLOW_LABEL),
        ),
        Field::new(
            "Payload length",
            format!("{} bytes", h.payload_length()),
            at(s, ipv6::PAYLOAD_LEN),
        ),
        Field::new(
            "Next header",
            protocol_name(h.next_header().0),
            one(s, ipv6::NEXT_HEADER),
        ),
        Field::new(
            "Hop limit",
            h.hop_limit().to_string(),
            one(s, ipv6::HOP_LIMIT),
        )
        .with_note(
            "IPv4's TTL under a truthful name: every router that forwards the packet subtracts 1 \
             and drops it at 0 (RFC 8200 section 3)",
        ),
        Field::new(
            "Source address",
            Ipv6Addr::from(h.source()).to_string(),
            at(s, ipv6::SRC_ADDR),
        ),
        Field::new(
            "Destination address",
            Ipv6Addr::from(h.destination()).to_string(),
            at(s, ipv6::DST_ADDR),
        ),
    ];
    for ext in &v6.exts {
        let next = data
            .get(ext.range.start + ipv6::ext::NEXT_HEADER)
            .copied()
            .unwrap_or(0);
        children.push(
            Field::new(
                protocol_name(ext.kind),
                format!("{} bytes", ext.range.len()),
                ext.range.clone(),
            )
            .with_children(vec![Field::new(
                "Next header",
                protocol_name(next),
                one(ext.range.start, ipv6::ext::NEXT_HEADER),
            )]),
        );
    }
    let mut f = Field::new(
        LAYER_IPV6,
        format!(
            "{} → {}",
            Ipv6Addr::from(h.source()),
            Ipv6Addr::from(h.destination())
        ),
        s..v6.payload.start,
    )
    .with_children(children);
    if v6.fragment {
        f.note = Some("IP fragment: mailwire does not reassemble IP fragments".into());
    }
    f
}

fn flag_bits(s: usize, flags: super::frame::TcpFlags) -> Vec<Field> {
    use super::frame::TcpFlags as F;
    let bits: [(&str, u16, Range<usize>); 10] = [
        ("Reserved", 0, one(s, tcp::DATA_OFFSET)),
        ("Accurate ECN / Nonce (NS)", F::NS, one(s, tcp::DATA_OFFSET)),
        (
            "Congestion Window Reduced (CWR)",
            F::CWR,
            one(s, tcp::FLAGS_LOW),
        ),
        ("ECN-Echo (ECE)", F::ECE, one(s, tcp::FLAGS_LOW)),
        ("Urgent (URG)", F::URG, one(s, tcp::FLAGS_LOW)),
        ("Acknowledgment (ACK)", F::ACK, one(s, tcp::FLAGS_LOW)),
        ("Push (PSH)", F::PSH, one(s, tcp::FLAGS_LOW)),
        ("Reset (RST)", F::RST, one(s, tcp::FLAGS_LOW)),
        ("Syn (SYN)", F::SYN, one(s, tcp::FLAGS_LOW)),
        ("Fin (FIN)", F::FIN, one(s, tcp::FLAGS_LOW)),
    ];
    bits.into_iter()
        .map(|(name, bit, range)| {
            let value = if bit == 0 {
                "000".to_string()
            } else {
                set(flags.has(bit)).to_string()
            };
            Field::new(name, value, range)
        })
        .collect()
}

fn tcp_layer(data: &[u8], net: &Net<'_>, t: &Tcp<'_>, loopback_link: bool) -> Field {
    let h = &t.header;
    let s = t.start;
    let hl = h.slice().len();
    let flags = t.flags();
    let mut children = vec![
        Field::new(
            "Source port",
            h.source_port().to_string(),
            at(s, tcp::SRC_PORT),
        ),
        Field::new(
            "Destination port",
            h.destination_port().to_string(),
            at(s, tcp::DST_PORT),
        ),
        Field::new(
            "Sequence number",
            h.sequence_number().to_string(),
            at(s, tcp::SEQ_NUM),
        ),
        ack_number_field(s, h.acknowledgment_number(), flags),
        Field::new(
            "Data offset",
            format!("{hl} bytes ({})", h.data_offset()),
            one(s, tcp::DATA_OFFSET),
        ),
        Field::new(
            "Flags",
            format!("0x{:03x} ({flags})", flags.0),
            at(s, tcp::FLAGS),
        )
        .with_children(flag_bits(s, flags)),
        Field::new("Window", h.window_size().to_string(), at(s, tcp::WIN_SIZE)),
        tcp_checksum_field(data, net, t, loopback_link),
        Field::new(
            "Urgent pointer",
            h.urgent_pointer().to_string(),
            at(s, tcp::URGENT),
        ),
    ];
    if hl > tcp::MIN_HEADER_LEN {
        children.push(tcp_options(h.options(), s + tcp::OPTIONS.start));
    }
    Field::new(
        LAYER_TCP,
        format!(
            "{} → {} [{flags}] {} bytes",
            h.source_port(),
            h.destination_port(),
            t.payload.len()
        ),
        s..s + hl,
    )
    .with_children(children)
}

/// The acknowledgment number, with what it acknowledges (RFC 9293 section 3.4).
fn ack_number_field(s: usize, ack: u32, flags: super::frame::TcpFlags) -> Field {
    let f = Field::new(
        "Acknowledgment number",
        ack.to_string(),
        at(s, tcp::ACK_NUM),
    );
    if flags.has(super::frame::TcpFlags::ACK) {
        f.with_note(format!(
            "the next sequence number this side expects: every byte up to {} has arrived \
             (RFC 9293 section 3.4)",
            ack.wrapping_sub(1)
        ))
    } else {
        f.with_note("not used: the ACK flag is not set (RFC 9293 section 3.1)")
    }
}

fn is_loopback_ip(net: &Net<'_>) -> bool {
    match net {
        Net::V4(v4) => {
            Ipv4Addr::from(v4.header.source()).is_loopback()
                || Ipv4Addr::from(v4.header.destination()).is_loopback()
        }
        Net::V6(v6) => {
            Ipv6Addr::from(v6.header.source()).is_loopback()
                || Ipv6Addr::from(v6.header.destination()).is_loopback()
        }
    }
}

fn tcp_checksum_field(data: &[u8], net: &Net<'_>, t: &Tcp<'_>, loopback_link: bool) -> Field {
    let s = t.start;
    let found = t.header.checksum();
    let range = at(s, tcp::CHECKSUM);
    let payload = data.get(t.payload.clone()).unwrap_or_default();
    let complete = match net {
        Net::V4(v4) => {
            !v4.total_len_zero && usize::from(v4.header.total_len()) == v4.payload.end - v4.start
        }
        Net::V6(v6) => {
            v6.header.payload_length() != 0
                && usize::from(v6.header.payload_length()) + ipv6::HEADER_LEN
                    == v6.payload.end - v6.start
        }
    };
    if !complete {
        return Field::new("Checksum", format!("0x{found:04x}"), range)
            .with_note("not verified: the segment is not wholly in the frame");
    }
    let expected = match net {
        Net::V4(v4) => t.header.calc_checksum_ipv4(&v4.header, payload).ok(),
        Net::V6(v6) => t.header.calc_checksum_ipv6(&v6.header, payload).ok(),
    };
    match expected {
        Some(e) if e == found => Field::new("Checksum", format!("0x{found:04x} (correct)"), range),
        Some(_) if loopback_link || is_loopback_ip(net) => {
            Field::new("Checksum", format!("0x{found:04x}"), range).with_note(
                "not verified: loopback checksum offload. On loopback Linux puts only the \
                     pseudo-header part of the sum in this field (CHECKSUM_PARTIAL) and leaves \
                     the rest to a network card that does not exist; the receiving kernel knows \
                     and skips the check, so this value is expected, not an error \
                     (RFC 9293 section 3.1 defines the full sum)",
            )
        }
        Some(e) => Field::new(
            "Checksum",
            format!("0x{found:04x} (incorrect, should be 0x{e:04x})"),
            range,
        )
        .with_note(
            "if this host sent the segment, its network card fills the checksum in after the \
             capture (checksum offload); a received segment with a wrong checksum is dropped \
             (RFC 9293 section 3.1)",
        ),
        None => Field::new("Checksum", format!("0x{found:04x}"), range)
            .with_note("not verified: segment too long"),
    }
}

/// The TCP options at `start` in the frame, each with its bytes.
fn tcp_options(options: &[u8], start: usize) -> Field {
    let total = options.len();
    let mut children = Vec::new();
    let mut offset = 0usize;
    while offset < total {
        let rest = options.get(offset..).unwrap_or_default();
        let at = start + offset;
        if rest.first() == Some(&0) {
            children.push(Field::new("End of option list", "", at..start + total));
            break;
        }
        let mut it = TcpOptionsIterator::from_slice(rest);
        match it.next() {
            None => break,
            Some(Ok(element)) => {
                let used = rest.len() - it.rest().len();
                children.push(tcp_option_field(&element, at..at + used));
                offset += used.max(1);
            }
            Some(Err(TcpOptionReadError::UnknownId(kind))) => {
                let len = usize::from(rest.get(option::LENGTH).copied().unwrap_or(0));
                if len < 2 || len > rest.len() {
                    children.push(
                        Field::new(format!("Option kind {kind}"), "", at..start + total)
                            .with_note(format!("its length {len} does not fit the options area")),
                    );
                    break;
                }
                children.push(Field::new(
                    format!("Option kind {kind}"),
                    format!("{len} bytes, not decoded"),
                    at..at + len,
                ));
                offset += len;
            }
            Some(Err(e)) => {
                children.push(
                    Field::new("Malformed option", "", at..start + total).with_note(
                        e.to_string()
                            .trim_start_matches("TcpOptionReadError: ")
                            .to_string(),
                    ),
                );
                break;
            }
        }
    }
    Field::new("Options", format!("{total} bytes"), start..start + total).with_children(children)
}

fn tcp_option_field(element: &TcpOptionElement, range: Range<usize>) -> Field {
    let s = range.start;
    match element {
        TcpOptionElement::Noop => Field::new("No-Operation (NOP)", "", range),
        TcpOptionElement::MaximumSegmentSize(mss) => {
            Field::new("Maximum segment size", format!("{mss} bytes"), range)
        }
        TcpOptionElement::WindowScale(shift) => Field::new(
            "Window scale",
            format!("{shift} (multiply by {})", 1u64 << (*shift).min(30)),
            range,
        ),
        TcpOptionElement::SelectiveAcknowledgementPermitted => {
            Field::new("SACK permitted", "", range)
        }
        TcpOptionElement::SelectiveAcknowledgement(first, rest) => {
            let blocks: Vec<(u32, u32)> = std::iter::once(*first)
                .chain(rest.iter().flatten().copied())
                .collect();
            let children = blocks
                .iter()
                .enumerate()
                .map(|(i, (l, r))| {
                    let b = s + tcp::option::SACK_BLOCKS.start + i * tcp::option::SACK_BLOCK_LEN;
                    let range = b..b + tcp::option::SACK_BLOCK_LEN;
                    Field::new(format!("Block {}", i + 1), format!("{l}-{r}"), range)
                })
                .collect();
            Field::new("SACK", format!("{} block(s)", blocks.len()), range).with_children(children)
        }
        TcpOptionElement::Timestamp(val, ecr) => {
            Field::new("Timestamps", format!("TSval {val}, TSecr {ecr}"), range).with_children(
                vec![
                    Field::new(
                        "Timestamp value",
                        val.to_string(),
                        at(s, tcp::option::TS_VALUE),
                    ),
                    Field::new(
                        "Timestamp echo reply",
                        ecr.to_string(),
                        at(s, tcp::option::TS_ECHO),
                    ),
                ],
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// A raw IPv4 packet (DF set, TTL 64) with a TCP segment from 127.0.0.1:110 acknowledging
    /// `ack`, its checksums as Linux leaves them on loopback or correct.
    fn loopback_segment(ack: u32, partial_checksum: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let built = PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(110, 40000, 1000, 65535)
            .ack(ack)
            .write(&mut out, b"+OK\r\n");
        assert!(built.is_ok());
        if partial_checksum && let Some(c) = out.get_mut(36..38) {
            c.copy_from_slice(&[0xfe, 0x30]);
        }
        out
    }

    fn note<'a>(tree: &'a FrameTree, name: &str) -> &'a str {
        tree.find(name)
            .and_then(|f| f.note.as_deref())
            .unwrap_or_default()
    }

    /// RFC 9293 section 3.4: an ACK of N acknowledges the bytes up to N-1; N is the next
    /// byte expected.
    #[test]
    fn ack_number_says_the_next_byte_expected() {
        let tree = decode_frame(LinkType::RAW, &loopback_segment(58, false));
        let tree = tree.unwrap_or_else(|e| panic!("{e}"));
        let n = note(&tree, "Acknowledgment number");
        assert!(n.contains("every byte up to 57 has arrived"), "{n}");
        assert!(n.contains("next sequence number this side expects"), "{n}");
        assert!(n.contains("RFC 9293 section 3.4"), "{n}");
    }

    /// On loopback the checksum holds only the pseudo-header part (CHECKSUM_PARTIAL): not
    /// an error.
    #[test]
    fn loopback_checksum_is_explained_not_blamed() {
        let tree = decode_frame(LinkType::RAW, &loopback_segment(58, true));
        let tree = tree.unwrap_or_else(|e| panic!("{e}"));
        let c = tree.find("Checksum");
        assert_eq!(c.map(|c| c.value.as_str()), Some("0xfe30"));
        let n = note(&tree, "Checksum");
        assert!(n.contains("pseudo-header part"), "{n}");
        assert!(n.contains("CHECKSUM_PARTIAL"), "{n}");
        assert!(n.contains("skips the check"), "{n}");
        assert!(!n.contains("incorrect"), "{n}");
    }

    /// TTL, IP ID, DF/MF and the fragment offset each say what they are for (RFC 791,
    /// RFC 6864).
    #[test]
    fn ip_fields_are_explained() {
        let tree = decode_frame(LinkType::RAW, &loopback_segment(1, false));
        let tree = tree.unwrap_or_else(|e| panic!("{e}"));
        assert!(note(&tree, "Time to live").contains("router"));
        assert!(note(&tree, "Time to live").contains("RFC 791 section 3.2"));
        let id = note(&tree, "Identification");
        assert!(id.contains("fragments of one datagram"), "{id}");
        assert!(id.contains("not used for reassembly"), "{id}");
        assert!(id.contains("RFC 6864"), "{id}");
        assert!(note(&tree, "Don't fragment").contains("RFC 791"));
        assert!(note(&tree, "More fragments").contains("RFC 791"));
        assert!(note(&tree, "Fragment offset").contains("units of 8 octets"));
    }
}
