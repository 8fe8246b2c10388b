//! The small per-frame summary kept for every frame: addresses, ports, sequence numbers,
//! flags and where the TCP payload is. A few dozen bytes, so a million frames fit; the
//! full field tree ([`crate::decode::tree`]) is built only for the frame a user selects.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::DecodeError;
use super::layers::{self, Net};
use crate::capture::LinkType;

/// The TCP flag bits, in their wire positions (FIN = bit 0 ... CWR = bit 7, NS = bit 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    pub const NS: u16 = 0x100;

    /// Names from the lowest bit up, Wireshark's order in `[SYN, ACK]`.
    const NAMES: [(u16, &'static str); 9] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
        (Self::NS, "NS"),
    ];

    /// Whether all bits of `mask` are set.
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }

    /// The flags from the 13th and 14th bytes of a TCP header.
    pub fn from_header_bytes(byte12: u8, byte13: u8) -> Self {
        TcpFlags(u16::from(byte13) | (u16::from(byte12 & 1) << 8))
    }
}

impl fmt::Display for TcpFlags {
    /// `SYN, ACK` (Wireshark's order: from the lowest bit up), or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in Self::NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(", ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// The IP layer of a frame, in brief.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpSummary {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The payload's protocol number (6 TCP, 17 UDP, 1 ICMP, ...), after IPv6 extensions.
    pub protocol: u8,
    /// The packet is an IP fragment; mailwire does not reassemble IP, so no TCP is decoded.
    pub fragment: bool,
}

/// The TCP layer of a frame, in brief. Sequence numbers are absolute (as on the wire);
/// [`crate::decode::analyzer::Segment`] has the relative ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSummary {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The window field as sent (not scaled).
    pub window: u16,
    /// A SYN's window scale option: the shift count it announces (read only from SYNs).
    pub window_scale: Option<u8>,
    /// Where the TCP payload starts in the frame.
    pub payload_offset: u32,
    /// Payload bytes present in the frame (fewer than sent if the capture cut the frame).
    pub payload_len: u32,
    /// Payload bytes sent but not captured: the capture's snapshot length cut the frame.
    pub payload_missing: u32,
}

/// The summary of one frame, kept for every frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSummary {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_micros: i64,
    pub link: LinkType,
    /// Bytes captured (the length of the data).
    pub captured_len: u32,
    /// Bytes on the wire.
    pub orig_len: u32,
    pub ip: Option<IpSummary>,
    pub tcp: Option<TcpSummary>,
    /// Why decoding stopped early or what in the frame is inconsistent.
    pub error: Option<Box<DecodeError>>,
}

impl FrameSummary {
    /// Whether the capture kept fewer bytes than were on the wire (snapshot length).
    pub fn is_cut_short(&self) -> bool {
        self.orig_len > self.captured_len
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The shift count of a window scale option, if the header has one.
fn window_scale(h: &etherparse::TcpHeaderSlice<'_>) -> Option<u8> {
    h.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::WindowScale(shift)) => Some(shift),
        _ => None,
    })
}

/// Summarizes one frame. Never fails: what could not be decoded is in `error`.
pub fn summarize(ts_micros: i64, link: LinkType, data: &[u8], orig_len: u32) -> FrameSummary {
    let cut = usize::try_from(orig_len).is_ok_and(|o| o > data.len());
    let walk = layers::walk(link, data, false, cut);
    let missing = if cut {
        walk.net
            .as_ref()
            .and_then(layers::Net::wire_end)
            .map_or(0, |end| to_u32(end.saturating_sub(data.len())))
    } else {
        0
    };
    let ip = walk.net.as_ref().map(|net| match net {
        Net::V4(v4) => IpSummary {
            src: IpAddr::V4(Ipv4Addr::from(v4.header.source())),
            dst: IpAddr::V4(Ipv4Addr::from(v4.header.destination())),
            protocol: v4.header.protocol().0,
            fragment: v4.is_fragment(),
        },
        Net::V6(v6) => IpSummary {
            src: IpAddr::V6(Ipv6Addr::from(v6.header.source())),
            dst: IpAddr::V6(Ipv6Addr::from(v6.header.destination())),
            protocol: v6.protocol,
            fragment: v6.fragment,
        },
    });
    let tcp = walk.tcp.as_ref().map(|t| {
        let h = &t.header;
        TcpSummary {
            src_port: h.source_port(),
            dst_port: h.destination_port(),
            seq: h.sequence_number(),
            ack: h.acknowledgment_number(),
            flags: t.flags(),
            window: h.window_size(),
            window_scale: if h.syn() { window_scale(h) } else { None },
            payload_offset: to_u32(t.payload.start),
            payload_len: to_u32(t.payload.len()),
            payload_missing: missing,
        }
    });
    FrameSummary {
        ts_micros,
        link,
        captured_len: to_u32(data.len()),
        orig_len,
        ip,
        tcp,
        error: walk.error.map(Box::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_like_wireshark() {
        let f = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(f.to_string(), "SYN, ACK");
        assert_eq!(
            TcpFlags(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK).to_string(),
            "FIN, PSH, ACK"
        );
        assert_eq!(TcpFlags(0).to_string(), "none");
        assert_eq!(TcpFlags::from_header_bytes(0x81, 0x12), TcpFlags(0x112));
    }

    #[test]
    fn summary_of_garbage_is_an_error_not_a_panic() {
        let s = summarize(0, LinkType::ETHERNET, &[1, 2, 3], 3);
        assert!(s.ip.is_none());
        assert!(s.error.is_some());
    }
}
