//! Capture files: pcap and pcapng, read through libpcap (the `pcap` crate), which knows
//! both formats. A file that cannot be read, or a packet record cut short, is a
//! [`FileError`] naming the file, the packet, and what libpcap said.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{CapturedPacket, LinkType};

/// A capture file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based number of the packet being read when it failed; `None` if the file could
    /// not be opened at all.
    pub packet: Option<usize>,
    /// libpcap's own words.
    pub libpcap: String,
    /// For a classic pcap file: where the failing record starts, and the file's size.
    pub at: Option<(u64, u64)>,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match self.packet {
            None => write!(
                f,
                "cannot read the capture file {path}: libpcap says \"{}\"",
                self.libpcap
            ),
            Some(n) => {
                write!(
                    f,
                    "cannot read packet {n} of the capture file {path} (the {} before it were \
                     read)",
                    n.saturating_sub(1),
                )?;
                if let Some((offset, size)) = self.at {
                    write!(
                        f,
                        ": its record starts at byte {offset} of the {size}-byte file, which \
                         ends {} bytes later",
                        size.saturating_sub(offset)
                    )?;
                }
                write!(f, "; libpcap says \"{}\"", self.libpcap)
            }
        }
    }
}

impl std::error::Error for FileError {}

fn libpcap_words(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(text) => text.clone(),
        other => other.to_string(),
    }
}

/// One packet borrowed from the file's read buffer (valid until the next read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_micros: i64,
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub orig_len: u32,
}

/// An open capture file, read packet by packet.
pub struct CaptureFile {
    cap: pcap::Capture<pcap::Offline>,
    link: LinkType,
    path: PathBuf,
    read: usize,
    failed: bool,
    /// Classic pcap only (fixed-size headers): where the next record starts, and the size.
    offset: Option<(u64, u64)>,
}

impl fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureFile")
            .field("path", &self.path)
            .field("link", &self.link)
            .field("read", &self.read)
            .finish()
    }
}

/// The global header of a classic pcap file, and the header of each of its records.
const CLASSIC_HEADER: u64 = 24;
const CLASSIC_RECORD_HEADER: u64 = 16;

/// The size of `path` if it is a classic pcap file (by its magic number; pcapng blocks vary
/// in size, so offsets are only followed for classic files).
fn classic_pcap_size(path: &Path) -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).ok()?;
    let classic = matches!(
        u32::from_le_bytes(magic),
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1
    );
    classic
        .then(|| file.metadata().ok().map(|m| m.len()))
        .flatten()
}

impl CaptureFile {
    /// Opens a pcap or pcapng file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref().to_path_buf();
        let cap = pcap::Capture::from_file(&path).map_err(|e| FileError {
            path: path.clone(),
            packet: None,
            libpcap: libpcap_words(&e),
            at: None,
        })?;
        let link = LinkType(cap.get_datalink().0);
        let offset = classic_pcap_size(&path).map(|size| (CLASSIC_HEADER, size));
        Ok(CaptureFile {
            cap,
            link,
            path,
            read: 0,
            failed: false,
            offset,
        })
    }

    /// The file's link type (libpcap maps the DLT values some systems write to the
    /// LINKTYPE_ values, e.g. raw IP 12/14 to 101).
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Packets read so far.
    pub fn packets_read(&self) -> usize {
        self.read
    }

    /// Where the bytes of the packet the next [`Self::next_frame`] returns begin in the
    /// file, for a classic pcap file (pcapng records are not located).
    pub fn next_data_offset(&self) -> Option<u64> {
        self.offset.map(|(at, _)| at + CLASSIC_RECORD_HEADER)
    }

    /// The next packet, borrowed; `Ok(None)` at the end of the file. After an error, every
    /// further call returns `Ok(None)`.
    pub fn next_frame(&mut self) -> Result<Option<FrameRef<'_>>, FileError> {
        if self.failed {
            return Ok(None);
        }
        match self.cap.next_packet() {
            Ok(p) => {
                self.read += 1;
                if let Some((offset, _)) = &mut self.offset {
                    *offset += CLASSIC_RECORD_HEADER + u64::from(p.header.caplen);
                }
                let ts = &p.header.ts;
                // time_t and suseconds_t are narrower than i64 on some platforms.
                #[allow(clippy::useless_conversion)]
                let ts_micros = i64::from(ts.tv_sec)
                    .saturating_mul(1_000_000)
                    .saturating_add(i64::from(ts.tv_usec));
                Ok(Some(FrameRef {
                    ts_micros,
                    data: p.data,
                    orig_len: p.header.len,
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => {
                self.failed = true;
                Err(FileError {
                    path: self.path.clone(),
                    packet: Some(self.read + 1),
                    libpcap: libpcap_words(&e),
                    at: self.offset,
                })
            }
        }
    }
}

impl Iterator for CaptureFile {
    type Item = Result<CapturedPacket, FileError>;

    /// The next packet, owned.
    fn next(&mut self) -> Option<Self::Item> {
        let link_type = self.link;
        match self.next_frame() {
            Ok(Some(f)) => Some(Ok(CapturedPacket {
                ts_micros: f.ts_micros,
                link_type,
                data: f.data.to_vec(),
                orig_len: f.orig_len,
            })),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Reads a whole capture file into memory.
pub fn read_all(path: impl AsRef<Path>) -> Result<Vec<CapturedPacket>, FileError> {
    CaptureFile::open(path)?.collect()
}
