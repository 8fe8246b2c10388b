//! Header layouts, each written once: the bytes of every field, counted from the start of
//! its header, as smoltcp's `wire` modules name them (`mod field { pub const SRC_PORT:
//! Field = 0..2; ... }`): a range for a multi-byte field, an offset for a one-byte one.
//! A line holds fields that share a row of the header as its RFC draws it (32 bits for IP
//! and TCP). [`super::layers`] reads headers with them; [`super::tree`] gives each field of
//! the tree its bytes in the frame with [`at`] and [`one`] (they drive the hex view).

use std::ops::{Range, RangeFrom};

/// A field's bytes, counted from the start of its header.
pub(crate) type Field = Range<usize>;
/// Where a header's variable part (its options) starts.
pub(crate) type Rest = RangeFrom<usize>;

/// Field `f` of the header that starts at frame offset `base`, as frame offsets.
pub(crate) fn at(base: usize, f: Field) -> Range<usize> {
    base + f.start..base + f.end
}

/// Big-endian u16 in bytes `f` of `data`, if they are there.
pub(crate) fn be16(data: &[u8], f: Range<usize>) -> Option<u16> {
    data.get(f)?.try_into().ok().map(u16::from_be_bytes)
}

/// The 4 bytes `f` of `data`, if they are there.
pub(crate) fn four(data: &[u8], f: Range<usize>) -> Option<[u8; 4]> {
    data.get(f)?.try_into().ok()
}

/// The one-byte field `i` of the header at frame offset `base`, as frame offsets.
pub(crate) fn one(base: usize, i: usize) -> Range<usize> {
    base + i..base + i + 1
}

/// The kind and length bytes that IPv4 and TCP options (but for the one-byte ones) start
/// with; the length counts the whole option.
#[rustfmt::skip]
pub(crate) mod option {
    pub const KIND: usize = 0;  pub const LENGTH: usize = 1;
}

/// Ethernet II (IEEE 802.3 framing with an EtherType).
#[rustfmt::skip]
pub(crate) mod ethernet {
    use super::Field;
    pub const DESTINATION: Field = 0..6;  pub const SOURCE: Field = 6..12;
    /// Both addresses.
    pub const ADDRESSES: Field = 0..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const HEADER_LEN: usize = 14;
}

/// An IEEE 802.1Q VLAN tag, after the outer EtherType (0x8100). The tag control
/// information holds the priority (3 bits), drop eligible (1) and VLAN ID (12 bits).
#[rustfmt::skip]
pub(crate) mod vlan {
    use super::Field;
    pub const TCI: Field = 0..2;  pub const ETHERTYPE: Field = 2..4;
    /// The byte holding the priority and drop-eligible bits.
    pub const PRIORITY_DEI: usize = 0;
    pub const LEN: usize = 4;
}

/// BSD loopback (DLT_NULL, host byte order) and OpenBSD loopback (DLT_LOOP, network order).
#[rustfmt::skip]
pub(crate) mod loopback {
    use super::Field;
    pub const FAMILY: Field = 0..4;
    pub const HEADER_LEN: usize = 4;
}

/// Linux cooked capture v1 (SLL).
#[rustfmt::skip]
pub(crate) mod sll {
    use super::Field;
    pub const PACKET_TYPE: Field = 0..2;  pub const HW_TYPE: Field = 2..4;
    pub const ADDR_LEN: Field = 4..6;  pub const ADDR: Field = 6..14;
    pub const PROTOCOL: Field = 14..16;
    pub const HEADER_LEN: usize = 16;
}

/// Linux cooked capture v2 (SLL2).
#[rustfmt::skip]
pub(crate) mod sll2 {
    use super::Field;
    pub const PROTOCOL: Field = 0..2;  pub const RESERVED: Field = 2..4;
    pub const IF_INDEX: Field = 4..8;
    pub const HW_TYPE: Field = 8..10;
    pub const PACKET_TYPE: usize = 10;  pub const ADDR_LEN: usize = 11;
    pub const ADDR: Field = 12..20;
    pub const HEADER_LEN: usize = 20;
}

/// The ARPHRD hardware type of loopback, in SLL and SLL2 headers.
pub(crate) const ARPHRD_LOOPBACK: u16 = 772;

/// IPv4 (RFC 791). `VER_IHL`: version and header length; `FLAGS`: the byte holding the
/// three flag bits; `FLG_OFF`: flags and fragment offset.
#[rustfmt::skip]
pub(crate) mod ipv4 {
    use super::{Field, Rest};
    pub const VER_IHL: usize = 0;  pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;  pub const FLAGS: usize = 6;  pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;  pub const PROTOCOL: usize = 9;  pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
    pub const OPTIONS: Rest = 20..;
    pub const MIN_HEADER_LEN: usize = OPTIONS.start;
}

/// IPv6 (RFC 8200) and its extension headers. `VERSION`: the byte holding the version (and
/// half the traffic class).
#[rustfmt::skip]
pub(crate) mod ipv6 {
    use super::Field;
    pub const VERSION: usize = 0;  pub const TRAFFIC_CLASS: Field = 0..2;
    pub const FLOW_LABEL: Field = 1..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;  pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    pub const HEADER_LEN: usize = 40;

    /// An extension header (hop-by-hop, routing, fragment, destination options). `LENGTH`
    /// counts 8-byte units after the first 8 (a fragment header has none: it is 8 bytes).
    pub mod ext {
        pub const NEXT_HEADER: usize = 0;  pub const LENGTH: usize = 1;
        /// The unit of the length field, and the whole length of a fragment header.
        pub const UNIT: usize = 8;
    }
}

/// TCP (RFC 9293). `DATA_OFFSET`: the byte that data offset, reserved bits and the NS/AE
/// flag share; `FLAGS`: data offset and every flag bit; `FLAGS_LOW`: the byte of CWR ... FIN.
#[rustfmt::skip]
pub(crate) mod tcp {
    use super::{Field, Rest};
    pub const SRC_PORT: Field = 0..2;  pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFFSET: usize = 12;  pub const FLAGS_LOW: usize = 13;
    pub const FLAGS: Field = 12..14;  pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;  pub const URGENT: Field = 18..20;
    pub const OPTIONS: Rest = 20..;
    pub const MIN_HEADER_LEN: usize = OPTIONS.start;

    /// Inside one TCP option, from its kind byte: timestamps (the sender's value and the
    /// echoed one), SACK blocks (left and right edge, 4 bytes each).
    pub mod option {
        use super::{Field, Rest};
        pub const TS_VALUE: Field = 2..6;  pub const TS_ECHO: Field = 6..10;
        pub const SACK_BLOCKS: Rest = 2..;  pub const SACK_BLOCK_LEN: usize = 8;
    }
}
