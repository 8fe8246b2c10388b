//! Packets from the wire and from files: live capture on an interface (libpcap through the
//! `pcap` crate) in a thread that only captures, capture files (pcap and pcapng), and the
//! no-root sandbox (a user + network namespace) for the built-in demos.
//!
//! Invariant: nothing here decodes. Packets leave as [`CapturedPacket`] values (bytes, time,
//! link type); `crate::decode` turns them into headers.

pub mod file;
pub mod live;
pub mod packets;
pub mod sandbox;

/// The link-layer header type of a capture (the pcap `LINKTYPE_` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub i32);

impl LinkType {
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP (the DLT value 12 some systems write is mapped to this by libpcap).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One packet as captured: nothing decoded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedPacket {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_micros: i64,
    pub link_type: LinkType,
    /// The captured bytes (may be shorter than `orig_len` when the snapshot length cut it).
    pub data: Vec<u8>,
    /// The packet's length on the wire.
    pub orig_len: u32,
}
