//! Hand-built frames and captures for the decode tests (and the decode benchmark's
//! generator): TCP segments with real checksums (etherparse's PacketBuilder), wrapped in any
//! link type; a scripted TCP conversation that tracks sequence numbers; a tiny pcap writer.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

use etherparse::{PacketBuilder, TcpHeader, TcpOptionElement};
use mailwire::capture::{CapturedPacket, LinkType};

/// TCP flags for [`tcp_header`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

pub const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
    psh: false,
};
pub const SYN_ACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
    psh: false,
};
pub const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: false,
};
pub const PSH_ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: true,
};
pub const FIN_ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
    psh: false,
};
pub const RST: Flags = Flags {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
    psh: false,
};

pub fn tcp_header(sport: u16, dport: u16, seq: u32, ack: u32, flags: Flags) -> TcpHeader {
    let mut h = TcpHeader::new(sport, dport, seq, 65535);
    h.syn = flags.syn;
    h.ack = flags.ack;
    h.fin = flags.fin;
    h.rst = flags.rst;
    h.psh = flags.psh;
    if flags.ack {
        h.acknowledgment_number = ack;
    }
    h
}

/// A raw IP packet (v4 or v6, by the addresses) carrying `h` and `payload`, checksums set.
pub fn ip_tcp(src: IpAddr, dst: IpAddr, h: TcpHeader, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64)
            .tcp_header(h)
            .write(&mut out, payload)
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64)
            .tcp_header(h)
            .write(&mut out, payload)
            .unwrap(),
        _ => panic!("mixed address families"),
    }
    out
}

/// Wraps a raw IP packet in the link header of `link`.
pub fn wrap(link: LinkType, ip: &[u8]) -> Vec<u8> {
    let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
    let ethertype: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
    let family: u32 = if v6 { 30 } else { 2 };
    let mut out = Vec::new();
    match link {
        LinkType::ETHERNET => {
            out.extend_from_slice(&[0; 12]);
            out.extend_from_slice(&ethertype);
        }
        LinkType::NULL => out.extend_from_slice(&family.to_le_bytes()),
        LinkType::LOOP => out.extend_from_slice(&family.to_be_bytes()),
        LinkType::LINUX_SLL => {
            out.extend_from_slice(&[0, 0, 3, 4, 0, 6]);
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&ethertype);
        }
        LinkType::LINUX_SLL2 => {
            out.extend_from_slice(&ethertype);
            out.extend_from_slice(&[0, 0, 0, 0, 0, 1, 3, 4, 0, 6]);
            out.extend_from_slice(&[0; 8]);
        }
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => {}
        other => panic!("no wrapper for {other:?}"),
    }
    out.extend_from_slice(ip);
    out
}

pub fn packet(link: LinkType, data: Vec<u8>, ts_micros: i64) -> CapturedPacket {
    let orig_len = data.len() as u32;
    CapturedPacket {
        ts_micros,
        link_type: link,
        data,
        orig_len,
    }
}

/// A scripted TCP connection between a client and a server: tracks both sides' sequence
/// numbers and makes frames.
pub struct Conversation {
    pub link: LinkType,
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    pub client_seq: u32,
    pub server_seq: u32,
    pub frames: Vec<CapturedPacket>,
    pub ts: i64,
}

impl Conversation {
    pub fn new(link: LinkType, client_port: u16, server_port: u16) -> Self {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Self::between(link, (lo, client_port), (lo, server_port))
    }

    pub fn between(link: LinkType, client: (IpAddr, u16), server: (IpAddr, u16)) -> Self {
        Conversation {
            link,
            client,
            server,
            client_seq: 1000,
            server_seq: 5000,
            frames: Vec::new(),
            ts: 1_700_000_000_000_000,
        }
    }

    /// A frame from the client (`from_client`) or the server with explicit numbers; does
    /// not move the tracked sequence numbers. Returns the frame index.
    pub fn raw(
        &mut self,
        from_client: bool,
        seq: u32,
        ack: u32,
        flags: Flags,
        payload: &[u8],
    ) -> usize {
        let (src, dst) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let h = tcp_header(src.1, dst.1, seq, ack, flags);
        let ip = ip_tcp(src.0, dst.0, h, payload);
        self.ts += 1000;
        self.frames
            .push(packet(self.link, wrap(self.link, &ip), self.ts));
        self.frames.len() - 1
    }

    pub fn handshake(&mut self) {
        self.raw(true, self.client_seq, 0, SYN, b"");
        self.raw(false, self.server_seq, self.client_seq + 1, SYN_ACK, b"");
        self.client_seq += 1;
        self.server_seq += 1;
        self.raw(true, self.client_seq, self.server_seq, ACK, b"");
    }

    /// One data segment from the client; returns its frame index.
    pub fn client(&mut self, payload: &[u8]) -> usize {
        let i = self.raw(true, self.client_seq, self.server_seq, PSH_ACK, payload);
        self.client_seq = self.client_seq.wrapping_add(payload.len() as u32);
        i
    }

    /// One data segment from the server; returns its frame index.
    pub fn server(&mut self, payload: &[u8]) -> usize {
        let i = self.raw(false, self.server_seq, self.client_seq, PSH_ACK, payload);
        self.server_seq = self.server_seq.wrapping_add(payload.len() as u32);
        i
    }

    /// Sends `bytes` from one side in segments of at most `size` bytes.
    pub fn send_chunked(&mut self, from_client: bool, bytes: &[u8], size: usize) {
        for chunk in bytes.chunks(size.max(1)) {
            if from_client {
                self.client(chunk);
            } else {
                self.server(chunk);
            }
        }
    }

    /// FIN from both sides.
    pub fn close(&mut self) {
        self.raw(true, self.client_seq, self.server_seq, FIN_ACK, b"");
        self.client_seq += 1;
        self.raw(false, self.server_seq, self.client_seq, FIN_ACK, b"");
        self.server_seq += 1;
        self.raw(true, self.client_seq, self.server_seq, ACK, b"");
    }
}

/// SYN with the usual options (MSS, SACK permitted, timestamps, NOP, window scale).
pub fn syn_with_options(link: LinkType, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let mut h = tcp_header(40000, 110, 0x0102_0304, 0, SYN);
    h.set_options(&[
        TcpOptionElement::MaximumSegmentSize(65495),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(123456, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ])
    .unwrap();
    wrap(link, &ip_tcp(src, dst, h, b""))
}

/// Writes a classic pcap file (microsecond timestamps).
pub fn write_pcap(
    out: &mut impl Write,
    link: LinkType,
    packets: &[CapturedPacket],
) -> std::io::Result<()> {
    write_pcap_header(out, link)?;
    for p in packets {
        write_pcap_record(out, p.ts_micros, &p.data, p.orig_len)?;
    }
    Ok(())
}

pub fn write_pcap_header(out: &mut impl Write, link: LinkType) -> std::io::Result<()> {
    out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&0i32.to_le_bytes())?;
    out.write_all(&0u32.to_le_bytes())?;
    out.write_all(&262_144u32.to_le_bytes())?;
    out.write_all(&(link.0 as u32).to_le_bytes())
}

pub fn write_pcap_record(
    out: &mut impl Write,
    ts_micros: i64,
    data: &[u8],
    orig_len: u32,
) -> std::io::Result<()> {
    out.write_all(&((ts_micros / 1_000_000) as u32).to_le_bytes())?;
    out.write_all(&((ts_micros % 1_000_000) as u32).to_le_bytes())?;
    out.write_all(&(data.len() as u32).to_le_bytes())?;
    out.write_all(&orig_len.to_le_bytes())?;
    out.write_all(data)
}
