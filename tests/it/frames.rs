//! The TCP part of a captured frame, parsed by hand for the capture tests.
#![allow(dead_code)]

/// TCP flag bits, as in the header's flags byte.
pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// The TCP part of a captured IPv4 frame.
pub struct Segment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub flags: u8,
    pub payload: &'a [u8],
}

/// The TCP segment in a captured IPv4 frame of any link type the capture gives, or `None`.
/// Parsed by hand, independently of mailwire's decoder, so the capture tests do not check
/// the capture with the code under test.
pub fn tcp_segment(packet: &mailwire::capture::CapturedPacket) -> Option<Segment<'_>> {
    use mailwire::capture::LinkType;
    let ip_start = match packet.link_type {
        LinkType::ETHERNET => 14,
        LinkType::NULL | LinkType::LOOP => 4,
        LinkType::RAW | LinkType::IPV4 => 0,
        LinkType::LINUX_SLL => 16,
        LinkType::LINUX_SLL2 => 20,
        _ => return None,
    };
    let ip = packet.data.get(ip_start..)?;
    if ip.first()? >> 4 != 4 || *ip.get(9)? != 6 {
        return None;
    }
    let header_len = usize::from(ip.first()? & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let tcp = ip.get(header_len..total_len)?;
    let data_offset = usize::from(tcp.get(12)? >> 4) * 4;
    Some(Segment {
        src_port: u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]),
        dst_port: u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]),
        flags: *tcp.get(13)?,
        payload: tcp.get(data_offset..)?,
    })
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
