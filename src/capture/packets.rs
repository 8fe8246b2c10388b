//! The packets a timeline keeps, stored compactly: one 24-byte record per packet (time,
//! length, link type, where its bytes are) and the bytes either in one shared buffer (packets
//! captured live, or from a pcapng file) or left in the classic pcap file they were read
//! from, read again when a packet is asked for (as Wireshark does). A packet comes out as an
//! owned [`CapturedPacket`], so callers read it as before.
//!
//! Invariant: a packet's bytes are the bytes captured; a file-backed packet is handed out only
//! when the file still holds exactly the bytes it held at load (its length and modification
//! time are checked; a read that fails or falls short gives `None`).

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::{CapturedPacket, LinkType};

/// One packet's record (24 bytes: a large capture has hundreds of thousands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    ts_micros: i64,
    /// Where its bytes begin (the low 47 bits: in the buffer, or in the file), whether that
    /// is the file (bit 47), and the index into `Packets::links` (the top 16 bits).
    place: u64,
    /// Bytes captured.
    len: u32,
    /// Bytes on the wire.
    orig_len: u32,
}

/// Offsets up to 128 TiB fit in a record.
const AT_BITS: u32 = 47;
const AT_MASK: u64 = (1 << AT_BITS) - 1;
const IN_FILE: u64 = 1 << AT_BITS;

impl Record {
    fn new(ts_micros: i64, at: u64, in_file: bool, link: u16, len: usize, orig_len: u32) -> Self {
        Record {
            ts_micros,
            place: (at & AT_MASK) | if in_file { IN_FILE } else { 0 } | (u64::from(link) << 48),
            len: u32::try_from(len).unwrap_or(u32::MAX),
            orig_len,
        }
    }

    fn at(self) -> u64 {
        self.place & AT_MASK
    }

    fn in_file(self) -> bool {
        self.place & IN_FILE != 0
    }

    fn link(self) -> usize {
        usize::from((self.place >> 48) as u16)
    }
}

/// The capture file that holds the bytes of file-backed packets.
struct Backing {
    file: File,
    path: PathBuf,
    /// Its length and modification time when it was read: a file changed since is not
    /// read again.
    len: u64,
    modified: Option<SystemTime>,
}

impl Backing {
    fn unchanged(&self) -> bool {
        self.file
            .metadata()
            .is_ok_and(|m| m.len() == self.len && m.modified().ok() == self.modified)
    }

    fn read(&self, at: u64, len: u32) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        if !self.unchanged() {
            return None;
        }
        let mut data = vec![0u8; usize::try_from(len).ok()?];
        self.file.read_exact_at(&mut data, at).ok()?;
        Some(data)
    }
}

/// The packets of a timeline, in capture order (frame index = position).
#[derive(Clone, Default)]
pub struct Packets {
    records: Vec<Record>,
    /// The bytes of the packets held in memory, one after the other.
    bytes: Vec<u8>,
    /// The link types seen, in order of first appearance.
    links: Vec<LinkType>,
    file: Option<Arc<Backing>>,
}

impl fmt::Debug for Packets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packets")
            .field("len", &self.records.len())
            .field("bytes_in_memory", &self.bytes.len())
            .field("file", &self.file.as_ref().map(|b| &b.path))
            .finish()
    }
}

impl Packets {
    /// No packets.
    pub fn new() -> Self {
        Self::default()
    }

    /// No packets yet; those added with [`Packets::push_in_file`] keep their bytes in the
    /// file at `path` (opened here, and its length and modification time noted).
    pub fn backed_by(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        Ok(Self {
            file: Some(Arc::new(Backing {
                file,
                path: path.to_path_buf(),
                len: meta.len(),
                modified: meta.modified().ok(),
            })),
            ..Self::default()
        })
    }

    /// How many packets there are.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Reserves room for `packets` more records and `bytes` more bytes held in memory.
    pub fn reserve(&mut self, packets: usize, bytes: usize) {
        self.records.reserve(packets);
        self.bytes.reserve(bytes);
    }

    fn link_index(&mut self, link: LinkType) -> u16 {
        let found = self.links.iter().position(|&l| l == link);
        let index = found.unwrap_or_else(|| {
            self.links.push(link);
            self.links.len() - 1
        });
        // More than 65,536 link types in one capture cannot happen (pcapng's are 16 bits).
        u16::try_from(index).unwrap_or(u16::MAX)
    }

    /// Adds a packet, its bytes held in memory.
    pub fn push(&mut self, packet: CapturedPacket) {
        self.push_bytes(
            packet.ts_micros,
            packet.link_type,
            &packet.data,
            packet.orig_len,
        );
    }

    /// Adds a packet, copying its bytes into memory.
    pub fn push_bytes(&mut self, ts_micros: i64, link: LinkType, data: &[u8], orig_len: u32) {
        let link = self.link_index(link);
        let at = self.bytes.len() as u64;
        let record = Record::new(ts_micros, at, false, link, data.len(), orig_len);
        self.bytes.extend_from_slice(data);
        self.records.push(record);
    }

    /// Adds a packet whose `len` bytes stay in the backing file at byte `at`. `false` (and
    /// nothing added) when there is no backing file: then push its bytes instead.
    pub fn push_in_file(
        &mut self,
        ts_micros: i64,
        link: LinkType,
        at: u64,
        len: usize,
        orig_len: u32,
    ) -> bool {
        if self.file.is_none() || at > AT_MASK {
            return false;
        }
        let link = self.link_index(link);
        self.records
            .push(Record::new(ts_micros, at, true, link, len, orig_len));
        true
    }

    /// Whether the backing file still holds, at `at`, exactly `data` (a check that the
    /// bytes read from it are the file's own, before packets are left there).
    pub fn file_holds(&self, at: u64, data: &[u8]) -> bool {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.file
            .as_ref()
            .and_then(|b| b.read(at, len))
            .is_some_and(|read| read == data)
    }

    /// The bytes of packet `index`: borrowed from memory, or read from the file.
    pub fn data(&self, index: usize) -> Option<Cow<'_, [u8]>> {
        let r = *self.records.get(index)?;
        if r.in_file() {
            return self.file.as_ref()?.read(r.at(), r.len).map(Cow::Owned);
        }
        let start = usize::try_from(r.at()).ok()?;
        let end = start.checked_add(usize::try_from(r.len).ok()?)?;
        self.bytes.get(start..end).map(Cow::Borrowed)
    }

    /// The capture time of packet `index` (microseconds since the Unix epoch), without
    /// reading its bytes.
    pub fn ts_micros(&self, index: usize) -> Option<i64> {
        self.records.get(index).map(|r| r.ts_micros)
    }

    /// The link type of packet `index`, without reading its bytes.
    pub fn link_type(&self, index: usize) -> Option<LinkType> {
        let r = self.records.get(index)?;
        self.links.get(r.link()).copied()
    }

    /// Packet `index`, or `None` past the end (or when its bytes cannot be read again).
    pub fn get(&self, index: usize) -> Option<CapturedPacket> {
        let r = self.records.get(index)?;
        Some(CapturedPacket {
            ts_micros: r.ts_micros,
            link_type: self.links.get(r.link()).copied()?,
            data: self.data(index)?.into_owned(),
            orig_len: r.orig_len,
        })
    }

    /// The first packet.
    pub fn first(&self) -> Option<CapturedPacket> {
        self.get(0)
    }

    /// The last packet.
    pub fn last(&self) -> Option<CapturedPacket> {
        self.get(self.len().checked_sub(1)?)
    }

    /// Every packet, in order (a packet whose bytes cannot be read again is skipped).
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            packets: self,
            next: 0,
        }
    }

    /// How many packet bytes are held in memory (those of file-backed packets are not).
    pub fn bytes_in_memory(&self) -> usize {
        self.bytes.len()
    }

    /// The memory this store takes (its records and the bytes it holds), for measurements.
    pub fn heap_bytes(&self) -> usize {
        self.records.capacity() * std::mem::size_of::<Record>()
            + self.bytes.capacity()
            + self.links.capacity() * std::mem::size_of::<LinkType>()
    }
}

impl From<Vec<CapturedPacket>> for Packets {
    fn from(packets: Vec<CapturedPacket>) -> Self {
        let mut store = Packets::new();
        store.reserve(packets.len(), packets.iter().map(|p| p.data.len()).sum());
        for p in packets {
            store.push(p);
        }
        store
    }
}

/// The packets of a [`Packets`], in order, each owned.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    packets: &'a Packets,
    next: usize,
}

impl Iterator for Iter<'_> {
    type Item = CapturedPacket;

    fn next(&mut self) -> Option<CapturedPacket> {
        while self.next < self.packets.len() {
            let index = self.next;
            self.next += 1;
            if let Some(p) = self.packets.get(index) {
                return Some(p);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.packets.len().saturating_sub(self.next)))
    }
}

impl<'a> IntoIterator for &'a Packets {
    type Item = CapturedPacket;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(n: u8) -> CapturedPacket {
        CapturedPacket {
            ts_micros: i64::from(n),
            link_type: if n.is_multiple_of(2) {
                LinkType::ETHERNET
            } else {
                LinkType::NULL
            },
            data: vec![n; usize::from(n)],
            orig_len: u32::from(n) + 1,
        }
    }

    #[test]
    fn packets_come_back_as_pushed() {
        let all: Vec<CapturedPacket> = (0..5).map(packet).collect();
        let store = Packets::from(all.clone());
        assert_eq!(store.len(), 5);
        assert_eq!(store.iter().collect::<Vec<_>>(), all);
        assert_eq!(store.get(3), Some(packet(3)));
        assert_eq!(store.get(5), None);
        assert_eq!(store.ts_micros(4), Some(4));
        assert_eq!(store.link_type(1), Some(LinkType::NULL));
        assert_eq!(store.last(), Some(packet(4)));
    }

    #[test]
    fn file_backed_bytes_are_read_again_and_a_changed_file_gives_none() {
        let dir = std::env::temp_dir().join(format!("mailwire-packets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bytes");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut store = Packets::backed_by(&path).unwrap();
        assert!(store.file_holds(2, b"234"));
        assert!(!store.file_holds(2, b"235"));
        assert!(store.push_in_file(7, LinkType::RAW, 2, 3, 3));
        store.push(packet(2));
        assert_eq!(store.data(0).as_deref(), Some(&b"234"[..]));
        assert_eq!(store.get(1), Some(packet(2)));
        std::fs::write(&path, b"01234567890").unwrap();
        assert_eq!(store.get(0), None);
        assert_eq!(store.ts_micros(0), Some(7));
        assert!(!Packets::new().push_in_file(0, LinkType::RAW, 0, 1, 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
