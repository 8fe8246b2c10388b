//! The layer walk shared by both decode levels: where each header starts and ends in the
//! frame, and which protocol comes next. [`crate::decode::frame`] keeps a few numbers from
//! it for every frame; [`crate::decode::tree`] turns it into named fields for one frame.
//!
//! Parsing uses etherparse's header slices (Ethernet II, 802.1Q, IPv4, IPv6, TCP). The Linux
//! cooked headers (SLL, SLL2) and the 4-byte loopback header are read by hand: etherparse
//! has no SLL2, and its SLL parser refuses the loopback hardware type (772) that `any`
//! captures on `lo` carry.

use std::ops::Range;

use etherparse::{Ethernet2HeaderSlice, Ipv4HeaderSlice, Ipv6HeaderSlice, TcpHeaderSlice};

use super::error::DecodeError;
use super::frame::TcpFlags;
use super::layout::{at, be16, ethernet, four, ipv4, ipv6, loopback, sll, sll2, tcp, vlan};
use crate::capture::LinkType;

/// EtherType of IPv4.
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86DD;
/// EtherType of an 802.1Q VLAN tag.
pub(crate) const ETHERTYPE_VLAN: u16 = 0x8100;
/// IP protocol number of TCP.
pub(crate) const IP_PROTO_TCP: u8 = 6;

/// How the link layer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkKind {
    Ethernet,
    /// BSD loopback, 4-byte address family; `big_endian` says which byte order it was in.
    Null {
        big_endian: bool,
    },
    /// OpenBSD loopback: address family in network order.
    Loop,
    LinuxSll,
    LinuxSll2,
    /// No link header: the frame starts with the IP header.
    Raw,
}

/// What the link layer says comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Ipv4,
    Ipv6,
    /// An EtherType mailwire does not decode further (ARP, ...).
    OtherEtherType(u16),
    /// A loopback address family mailwire does not decode further.
    OtherFamily(u32),
}

/// The link layer of one frame.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub kind: LinkKind,
    /// The whole link header, VLAN tags included.
    pub header: Range<usize>,
    /// Where an 802.1Q tag starts, if there is one.
    pub vlan_at: Option<usize>,
    pub next: Next,
}

impl Link {
    /// Offset of the network header.
    pub fn end(&self) -> usize {
        self.header.end
    }
}

fn next_from_ethertype(ethertype: u16) -> Next {
    match ethertype {
        ETHERTYPE_IPV4 => Next::Ipv4,
        ETHERTYPE_IPV6 => Next::Ipv6,
        other => Next::OtherEtherType(other),
    }
}

/// Address families of IPv4 and IPv6 in loopback headers (IPv6 differs between systems:
/// Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, macOS 30).
fn next_from_family(family: u32) -> Next {
    match family {
        2 => Next::Ipv4,
        10 | 24 | 28 | 30 => Next::Ipv6,
        other => Next::OtherFamily(other),
    }
}

/// Reads the link header of a frame of type `link`.
pub(crate) fn parse_link(link: LinkType, data: &[u8]) -> Result<Link, DecodeError> {
    match link {
        LinkType::ETHERNET => parse_ethernet(data),
        LinkType::NULL | LinkType::LOOP => parse_loopback(link, data),
        LinkType::LINUX_SLL => parse_sll(data),
        LinkType::LINUX_SLL2 => parse_sll2(data),
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => parse_raw(link, data),
        other => Err(DecodeError::unsupported_link(other.0)),
    }
}

fn parse_ethernet(data: &[u8]) -> Result<Link, DecodeError> {
    let eth = Ethernet2HeaderSlice::from_slice(data)
        .map_err(|e| DecodeError::truncated("Ethernet header", 0, e.required_len, e.len))?;
    let ethertype = eth.ether_type().0;
    if ethertype != ETHERTYPE_VLAN {
        return Ok(Link {
            kind: LinkKind::Ethernet,
            header: 0..ethernet::HEADER_LEN,
            vlan_at: None,
            next: next_from_ethertype(ethertype),
        });
    }
    let tag = ethernet::HEADER_LEN;
    let inner = be16(data, at(tag, vlan::ETHERTYPE)).ok_or_else(|| {
        DecodeError::truncated(
            "802.1Q VLAN tag",
            tag,
            vlan::LEN,
            data.len().saturating_sub(tag),
        )
    })?;
    Ok(Link {
        kind: LinkKind::Ethernet,
        header: 0..tag + vlan::LEN,
        vlan_at: Some(tag),
        next: next_from_ethertype(inner),
    })
}

/// The address family of a NULL header and whether it was big-endian: the family is a small
/// number, so a value with high bits set means the other byte order.
pub(crate) fn null_family(bytes: [u8; 4]) -> (u32, bool) {
    let little = u32::from_le_bytes(bytes);
    if little & 0xFFFF_0000 != 0 {
        (u32::from_be_bytes(bytes), true)
    } else {
        (little, false)
    }
}

fn parse_loopback(link: LinkType, data: &[u8]) -> Result<Link, DecodeError> {
    let name = if link == LinkType::LOOP {
        "LOOP header"
    } else {
        "NULL/loopback header"
    };
    let bytes = four(data, loopback::FAMILY)
        .ok_or_else(|| DecodeError::truncated(name, 0, loopback::HEADER_LEN, data.len()))?;
    let (family, kind) = if link == LinkType::LOOP {
        (u32::from_be_bytes(bytes), LinkKind::Loop)
    } else {
        let (family, big_endian) = null_family(bytes);
        (family, LinkKind::Null { big_endian })
    };
    Ok(Link {
        kind,
        header: 0..loopback::HEADER_LEN,
        vlan_at: None,
        next: next_from_family(family),
    })
}

fn parse_sll(data: &[u8]) -> Result<Link, DecodeError> {
    let protocol = be16(data, sll::PROTOCOL).ok_or_else(|| {
        DecodeError::truncated("Linux cooked (SLL) header", 0, sll::HEADER_LEN, data.len())
    })?;
    Ok(Link {
        kind: LinkKind::LinuxSll,
        header: 0..sll::HEADER_LEN,
        vlan_at: None,
        next: next_from_ethertype(protocol),
    })
}

fn parse_sll2(data: &[u8]) -> Result<Link, DecodeError> {
    if data.len() < sll2::HEADER_LEN {
        return Err(DecodeError::truncated(
            "Linux cooked (SLL2) header",
            0,
            sll2::HEADER_LEN,
            data.len(),
        ));
    }
    let protocol = be16(data, sll2::PROTOCOL).unwrap_or(0);
    Ok(Link {
        kind: LinkKind::LinuxSll2,
        header: 0..sll2::HEADER_LEN,
        vlan_at: None,
        next: next_from_ethertype(protocol),
    })
}

fn parse_raw(link: LinkType, data: &[u8]) -> Result<Link, DecodeError> {
    let first = data
        .first()
        .ok_or_else(|| DecodeError::truncated("raw IP packet", 0, 1, 0))?;
    let version = first >> 4;
    let next = match (link, version) {
        (LinkType::IPV4, 4) | (LinkType::RAW, 4) => Next::Ipv4,
        (LinkType::IPV6, 6) | (LinkType::RAW, 6) => Next::Ipv6,
        (LinkType::IPV6, v) => {
            return Err(DecodeError::bad_value(
                "IPv6 header",
                "version",
                0,
                v.into(),
                6,
            ));
        }
        (_, v) => {
            return Err(DecodeError::bad_value(
                "IPv4 header",
                "version",
                0,
                v.into(),
                4,
            ));
        }
    };
    Ok(Link {
        kind: LinkKind::Raw,
        header: 0..0,
        vlan_at: None,
        next,
    })
}

/// An IPv4 header and where its payload is.
#[derive(Debug, Clone)]
pub(crate) struct Ipv4<'a> {
    pub header: Ipv4HeaderSlice<'a>,
    pub start: usize,
    /// The payload as the total length field delimits it (clamped to the captured bytes).
    pub payload: Range<usize>,
    /// The total length field was 0 (segmentation offload): the payload runs to the end.
    pub total_len_zero: bool,
    /// Bytes after the packet (Ethernet padding).
    pub trailer: Range<usize>,
}

impl Ipv4<'_> {
    /// Whether this packet is one fragment of a bigger one.
    pub fn is_fragment(&self) -> bool {
        self.header.more_fragments() || self.header.fragments_offset().value() != 0
    }

    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        self.header.slice().len()
    }
}

/// Reads an IPv4 header at `start`. A total length larger than the bytes there gives the
/// packet as far as it goes plus the error (`Ok` with `Some(error)`).
pub(crate) fn parse_ipv4(
    data: &[u8],
    start: usize,
) -> Result<(Ipv4<'_>, Option<DecodeError>), DecodeError> {
    let rest = data.get(start..).unwrap_or_default();
    let header = Ipv4HeaderSlice::from_slice(rest).map_err(|e| ipv4_error(e, start, rest))?;
    let header_len = header.slice().len();
    let total = usize::from(header.total_len());
    let mut problem = None;
    let mut total_len_zero = false;
    let end = if total == 0 {
        total_len_zero = true;
        data.len()
    } else if total < header_len {
        return Err(DecodeError::length_too_small(
            "IPv4 packet",
            "total length",
            start,
            total,
            header_len,
        ));
    } else if total > rest.len() {
        problem = Some(DecodeError::length_exceeds(
            "IPv4 packet",
            "total length",
            start,
            total,
            rest.len(),
        ));
        data.len()
    } else {
        start + total
    };
    Ok((
        Ipv4 {
            header,
            start,
            payload: start + header_len..end,
            total_len_zero,
            trailer: end..data.len(),
        },
        problem,
    ))
}

fn ipv4_error(
    e: etherparse::err::ipv4::HeaderSliceError,
    start: usize,
    rest: &[u8],
) -> DecodeError {
    use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
    const LAYER: &str = "IPv4 header";
    match e {
        HeaderSliceError::Len(len) if len.required_len <= ipv4::MIN_HEADER_LEN => {
            DecodeError::truncated(LAYER, start, len.required_len, rest.len())
        }
        HeaderSliceError::Len(len) => {
            DecodeError::length_exceeds(LAYER, "header length", start, len.required_len, rest.len())
        }
        HeaderSliceError::Content(HeaderError::UnexpectedVersion { version_number }) => {
            DecodeError::bad_value(LAYER, "version", start, version_number.into(), 4)
        }
        HeaderSliceError::Content(HeaderError::HeaderLengthSmallerThanHeader { ihl }) => {
            DecodeError::length_too_small(
                LAYER,
                "header length",
                start,
                usize::from(ihl) * 4,
                ipv4::MIN_HEADER_LEN,
            )
        }
    }
}

/// One IPv6 extension header on the way to the payload.
#[derive(Debug, Clone)]
pub(crate) struct Ipv6Ext {
    /// Its protocol number (0 hop-by-hop, 43 routing, 44 fragment, 60 destination options).
    pub kind: u8,
    pub range: Range<usize>,
}

/// An IPv6 header, its extension headers, and where the payload is.
#[derive(Debug, Clone)]
pub(crate) struct Ipv6<'a> {
    pub header: Ipv6HeaderSlice<'a>,
    pub start: usize,
    pub exts: Vec<Ipv6Ext>,
    /// The protocol of the payload (after the extension headers).
    pub protocol: u8,
    pub payload: Range<usize>,
    pub fragment: bool,
    pub trailer: Range<usize>,
}

/// Whether an IPv6 next-header value is an extension header mailwire walks over.
fn is_ipv6_ext(kind: u8) -> bool {
    matches!(kind, 0 | 43 | 44 | 60)
}

/// Reads an IPv6 header and its extension headers at `start`.
pub(crate) fn parse_ipv6(
    data: &[u8],
    start: usize,
    keep_exts: bool,
) -> Result<(Ipv6<'_>, Option<DecodeError>), DecodeError> {
    const LAYER: &str = "IPv6 header";
    let rest = data.get(start..).unwrap_or_default();
    let header = Ipv6HeaderSlice::from_slice(rest).map_err(|e| {
        use etherparse::err::ipv6::{HeaderError, HeaderSliceError};
        match e {
            HeaderSliceError::Len(_) => {
                DecodeError::truncated(LAYER, start, ipv6::HEADER_LEN, rest.len())
            }
            HeaderSliceError::Content(HeaderError::UnexpectedVersion { version_number }) => {
                DecodeError::bad_value(LAYER, "version", start, version_number.into(), 6)
            }
        }
    })?;
    let declared = usize::from(header.payload_length());
    let available = rest.len().saturating_sub(ipv6::HEADER_LEN);
    let mut problem = None;
    let end = if declared == 0 {
        data.len()
    } else if declared > available {
        problem = Some(DecodeError::length_exceeds(
            "IPv6 packet",
            "payload length",
            start,
            declared + ipv6::HEADER_LEN,
            rest.len(),
        ));
        data.len()
    } else {
        start + ipv6::HEADER_LEN + declared
    };
    let mut protocol = header.next_header().0;
    let mut at = start + ipv6::HEADER_LEN;
    let mut exts = Vec::new();
    let mut fragment = false;
    while is_ipv6_ext(protocol) {
        let (Some(&next), Some(&len_byte)) = (
            data.get(at + ipv6::ext::NEXT_HEADER),
            data.get(at + ipv6::ext::LENGTH),
        ) else {
            return Err(DecodeError::truncated(
                "IPv6 extension header",
                at,
                ipv6::ext::UNIT,
                end.saturating_sub(at),
            ));
        };
        let len = if protocol == 44 {
            ipv6::ext::UNIT
        } else {
            (usize::from(len_byte) + 1) * ipv6::ext::UNIT
        };
        if at + len > end {
            return Err(DecodeError::length_exceeds(
                "IPv6 extension header",
                "length",
                at,
                len,
                end.saturating_sub(at),
            ));
        }
        if protocol == 44 {
            fragment = true;
        }
        if keep_exts {
            exts.push(Ipv6Ext {
                kind: protocol,
                range: at..at + len,
            });
        }
        protocol = next;
        at += len;
    }
    Ok((
        Ipv6 {
            header,
            start,
            exts,
            protocol,
            payload: at..end,
            fragment,
            trailer: end..data.len(),
        },
        problem,
    ))
}

/// A TCP header and its payload.
#[derive(Debug, Clone)]
pub(crate) struct Tcp<'a> {
    pub header: TcpHeaderSlice<'a>,
    pub start: usize,
    pub payload: Range<usize>,
}

impl Tcp<'_> {
    /// The flag bits (from the data-offset byte and the one after it).
    pub fn flags(&self) -> TcpFlags {
        let raw = self.header.slice();
        TcpFlags::from_header_bytes(
            raw.get(tcp::DATA_OFFSET).copied().unwrap_or(0),
            raw.get(tcp::FLAGS_LOW).copied().unwrap_or(0),
        )
    }
}

/// Reads a TCP header at the start of `segment` (the IP payload, at `start` in the frame).
pub(crate) fn parse_tcp(data: &[u8], segment: Range<usize>) -> Result<Tcp<'_>, DecodeError> {
    const LAYER: &str = "TCP header";
    let start = segment.start;
    let bytes = data.get(segment.clone()).unwrap_or_default();
    let header = TcpHeaderSlice::from_slice(bytes).map_err(|e| {
        use etherparse::err::tcp::{HeaderError, HeaderSliceError};
        match e {
            HeaderSliceError::Len(len) if len.required_len <= tcp::MIN_HEADER_LEN => {
                DecodeError::truncated(LAYER, start, tcp::MIN_HEADER_LEN, bytes.len())
            }
            HeaderSliceError::Len(len) => DecodeError::length_exceeds(
                LAYER,
                "data offset",
                start,
                len.required_len,
                bytes.len(),
            ),
            HeaderSliceError::Content(HeaderError::DataOffsetTooSmall { data_offset }) => {
                DecodeError::length_too_small(
                    LAYER,
                    "data offset",
                    start,
                    usize::from(data_offset) * 4,
                    tcp::MIN_HEADER_LEN,
                )
            }
        }
    })?;
    let header_len = header.slice().len();
    Ok(Tcp {
        header,
        start,
        payload: start + header_len..segment.end,
    })
}

/// The network layer of a frame.
#[derive(Debug, Clone)]
pub(crate) enum Net<'a> {
    V4(Ipv4<'a>),
    V6(Ipv6<'a>),
}

impl Net<'_> {
    /// The IP payload's protocol number.
    pub fn protocol(&self) -> u8 {
        match self {
            Net::V4(v4) => v4.header.protocol().0,
            Net::V6(v6) => v6.protocol,
        }
    }

    /// Whether the payload is a fragment (not reassembled by mailwire).
    pub fn is_fragment(&self) -> bool {
        match self {
            Net::V4(v4) => v4.is_fragment(),
            Net::V6(v6) => v6.fragment,
        }
    }

    /// Where the IP payload is in the frame.
    pub fn payload(&self) -> Range<usize> {
        match self {
            Net::V4(v4) => v4.payload.clone(),
            Net::V6(v6) => v6.payload.clone(),
        }
    }

    /// Where the packet ends in the frame by its own length field (beyond the captured
    /// bytes when the capture cut the frame short); `None` for a length of 0 (offload).
    pub fn wire_end(&self) -> Option<usize> {
        match self {
            Net::V4(v4) => {
                let total = usize::from(v4.header.total_len());
                (total != 0).then_some(v4.start + total)
            }
            Net::V6(v6) => {
                let declared = usize::from(v6.header.payload_length());
                (declared != 0).then_some(v6.start + ipv6::HEADER_LEN + declared)
            }
        }
    }
}

/// Everything the walk found, as far as it got.
#[derive(Debug, Clone)]
pub(crate) struct Walk<'a> {
    pub link: Option<Link>,
    pub net: Option<Net<'a>>,
    pub tcp: Option<Tcp<'a>>,
    /// The first problem met; layers after it are absent (or, for a lying IP length, decoded
    /// as far as the bytes go).
    pub error: Option<DecodeError>,
}

/// Walks a frame's layers: link, IP, TCP.
/// Walks the layers of a frame. `cut` says the capture kept fewer bytes than were on the
/// wire (snapshot length): an IP length beyond the captured bytes is then expected, not a
/// lie.
pub(crate) fn walk(link: LinkType, data: &[u8], keep_exts: bool, cut: bool) -> Walk<'_> {
    let mut w = Walk {
        link: None,
        net: None,
        tcp: None,
        error: None,
    };
    let l = match parse_link(link, data) {
        Ok(l) => l,
        Err(e) => {
            w.error = Some(e);
            return w;
        }
    };
    let start = l.end();
    let next = l.next;
    w.link = Some(l);
    let parsed = match next {
        Next::Ipv4 => parse_ipv4(data, start).map(|(v4, p)| (Net::V4(v4), p)),
        Next::Ipv6 => parse_ipv6(data, start, keep_exts).map(|(v6, p)| (Net::V6(v6), p)),
        Next::OtherEtherType(_) | Next::OtherFamily(_) => return w,
    };
    let net = match parsed {
        Ok((net, problem)) => {
            // The only problem an IP layer reports is a length beyond the captured bytes.
            w.error = if cut { None } else { problem };
            net
        }
        Err(e) => {
            w.error = Some(e);
            return w;
        }
    };
    if net.protocol() == IP_PROTO_TCP && !net.is_fragment() {
        match parse_tcp(data, net.payload()) {
            Ok(tcp) => w.tcp = Some(tcp),
            Err(e) => {
                if w.error.is_none() {
                    w.error = Some(e);
                }
            }
        }
    }
    w.net = Some(net);
    w
}
