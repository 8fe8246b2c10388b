//! Capture files: pcap and pcapng, read through libpcap (the `pcap` crate), which knows
//! both formats. A file that cannot be read, or a packet record cut short, is a
//! [`FileError`] naming the file, the packet, and what libpcap said.
//!
//! libpcap hands out packets only, so the TLS secrets a pcapng file may carry (Decryption
//! Secrets Blocks, draft-ietf-opsawg-pcapng section 4.7) are read by [`read_secrets`], which
//! walks the file's blocks itself. A block it cannot use is a [`SecretsNote`] (with its
//! byte offset), never a failure of the file.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{CapturedPacket, LinkType};
use crate::proto::keylog::KeyLog;

/// The pcapng block type of a Decryption Secrets Block (draft-ietf-opsawg-pcapng section
/// 4.7).
pub const DECRYPTION_SECRETS_BLOCK: u32 = 0x0000_000A;
/// Its Secrets Type for TLS: an NSS key log ("TLSK").
pub const TLS_KEY_LOG: u32 = 0x544c_534b;
/// The pcapng Section Header Block's type (also the file's first four bytes).
const SECTION_HEADER_BLOCK: u32 = 0x0A0D_0D0A;
/// The Section Header Block's byte-order magic, as written in the section's byte order.
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

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

/// The TLS secrets a pcapng file carries in its Decryption Secrets Blocks, and what could
/// not be used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSecrets {
    /// Every usable key log line of every `TLSK` block, in file order.
    pub keylog: KeyLog,
    /// How many `TLSK` blocks gave secrets.
    pub tls_blocks: usize,
    /// Blocks skipped or only partly used, each with its byte offset.
    pub notes: Vec<SecretsNote>,
}

/// A Decryption Secrets Block that was skipped or only partly used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsNote {
    pub path: PathBuf,
    /// Where the block starts in the file.
    pub offset: u64,
    pub problem: SecretsProblem,
}

/// What was wrong with a Decryption Secrets Block (or with the blocks around it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsProblem {
    /// Secrets for another protocol (WireGuard, ZigBee...): not mailwire's business.
    OtherType(u32),
    /// The Block Total Length is below 20 (type, lengths and the two secrets fields) or not
    /// a multiple of 4.
    BadBlockLength(u32),
    /// The block runs past the end of the file.
    Truncated { block_len: u64, file_left: u64 },
    /// The trailing Block Total Length differs from the leading one.
    LengthMismatch { leading: u32, trailing: u32 },
    /// The Secrets Length is more than the block holds.
    SecretsTooLong { secrets_len: u32, room: u32 },
    /// The secrets are not UTF-8 text (an NSS key log is ASCII).
    NotText { at: usize },
    /// Lines that are not NSS key log lines: the first one, and how many there were; the
    /// other lines were used.
    BadLines {
        first: crate::proto::keylog::KeyLogError,
        count: usize,
    },
    /// The file could not be read to the end, so later blocks were not seen.
    Unreadable(String),
}

/// A Secrets Type as its four ASCII letters when it has them ("WGKL"), else in hex.
fn secrets_type_name(t: u32) -> String {
    let bytes = t.to_be_bytes();
    if bytes.iter().all(|b| b.is_ascii_alphanumeric()) {
        format!("\"{}\" (0x{t:08x})", String::from_utf8_lossy(&bytes))
    } else {
        format!("0x{t:08x}")
    }
}

impl fmt::Display for SecretsNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the Decryption Secrets Block at byte {} of {}",
            self.offset,
            self.path.display()
        )?;
        match &self.problem {
            SecretsProblem::OtherType(t) => write!(
                f,
                " holds secrets of type {} (WireGuard, ZigBee or another protocol, not TLS): \
                 skipped",
                secrets_type_name(*t)
            ),
            SecretsProblem::BadBlockLength(len) => write!(
                f,
                " says it is {len} bytes long, which no such block can be (at least 20, a \
                 multiple of 4): skipped, and the blocks after it could not be found"
            ),
            SecretsProblem::Truncated {
                block_len,
                file_left,
            } => write!(
                f,
                " says it is {block_len} bytes long but the file ends {file_left} bytes \
                 after its start (the file was cut short): its secrets were not used"
            ),
            SecretsProblem::LengthMismatch { leading, trailing } => write!(
                f,
                " begins with the length {leading} and ends with {trailing}: the block is \
                 damaged, its secrets were not used"
            ),
            SecretsProblem::SecretsTooLong { secrets_len, room } => write!(
                f,
                " says its secrets are {secrets_len} bytes but it holds only {room}: its \
                 secrets were not used"
            ),
            SecretsProblem::NotText { at } => write!(
                f,
                " holds TLS secrets that are not text (byte {at} of the secrets is not \
                 UTF-8): its secrets were not used"
            ),
            SecretsProblem::BadLines { first, count } => write!(
                f,
                " holds {count} line{} that {} no TLS key log line ({first}); the other \
                 lines were used",
                if *count == 1 { "" } else { "s" },
                if *count == 1 { "is" } else { "are" },
            ),
            SecretsProblem::Unreadable(why) => write!(
                f,
                " (or a block before it) could not be read: {why}; secrets after it were not \
                 read"
            ),
        }
    }
}

/// The TLS secrets of the Decryption Secrets Blocks in the pcapng file `path` (nothing for
/// a classic pcap file or one that cannot be opened: the packet reader says why). Walks the
/// blocks by their lengths, reading only the Decryption Secrets Blocks whole; each section's
/// byte order comes from its Section Header Block. A block that cannot be used is a note;
/// a key log line that is not one is a note and the block's other lines are kept (as
/// Wireshark does).
pub fn read_secrets(path: &Path) -> FileSecrets {
    let mut secrets = FileSecrets::default();
    let Ok(file) = std::fs::File::open(path) else {
        return secrets;
    };
    let size = file.metadata().map_or(0, |m| m.len());
    let mut walker = BlockWalker {
        reader: std::io::BufReader::with_capacity(64 * 1024, file),
        at: 0,
        size,
        big_endian: false,
    };
    let note = |offset: u64, problem: SecretsProblem| SecretsNote {
        path: path.to_path_buf(),
        offset,
        problem,
    };
    loop {
        let start = walker.at;
        match walker.next_block() {
            Ok(Walked::End) => break,
            Ok(Walked::NotPcapng) => break,
            Ok(Walked::Skipped) => {}
            Ok(Walked::Secrets(body)) => {
                if let Some(problem) = use_secrets(&body, walker.big_endian, &mut secrets) {
                    secrets.notes.push(note(start, problem));
                }
            }
            Ok(Walked::BadSecrets(problem)) => {
                // A damaged trailer still leaves the next block where the leading length
                // says; any other problem leaves no way to find it.
                let go_on = matches!(problem, SecretsProblem::LengthMismatch { .. });
                secrets.notes.push(note(start, problem));
                if !go_on {
                    break;
                }
            }
            Ok(Walked::Damaged) => break,
            Err(e) => {
                secrets
                    .notes
                    .push(note(start, SecretsProblem::Unreadable(e.to_string())));
                break;
            }
        }
    }
    secrets
}

/// One step of the block walk.
enum Walked {
    /// The end of the file (or of the blocks that could be followed to a whole block).
    End,
    /// The file is not pcapng.
    NotPcapng,
    /// A block other than a Decryption Secrets Block.
    Skipped,
    /// A Decryption Secrets Block's body (without the type and the two lengths), whose
    /// lengths agree.
    Secrets(Vec<u8>),
    /// A Decryption Secrets Block that cannot be used; the walk stops, except after a
    /// mismatched trailer.
    BadSecrets(SecretsProblem),
    /// Another block whose length cannot be followed: the packet reader reports it.
    Damaged,
}

struct BlockWalker {
    reader: std::io::BufReader<std::fs::File>,
    /// Where the next block starts.
    at: u64,
    size: u64,
    /// The current section's byte order.
    big_endian: bool,
}

impl BlockWalker {
    fn u32(&self, bytes: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    }

    fn read4(&mut self) -> std::io::Result<Option<[u8; 4]>> {
        use std::io::Read;
        let mut b = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let Some(rest) = b.get_mut(got..) else { break };
            match self.reader.read(rest) {
                Ok(0) => return Ok(None),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(b))
    }

    fn next_block(&mut self) -> std::io::Result<Walked> {
        use std::io::Read;
        let Some(type_bytes) = self.read4()? else {
            return Ok(Walked::End);
        };
        let Some(len_bytes) = self.read4()? else {
            return Ok(Walked::End);
        };
        let type_le = u32::from_le_bytes(type_bytes);
        // 8 bytes of the block are read.
        let mut consumed: u64 = 8;
        if type_le == SECTION_HEADER_BLOCK {
            // The type reads the same both ways; the byte-order magic tells the order.
            let Some(magic) = self.read4()? else {
                return Ok(Walked::End);
            };
            consumed += 4;
            self.big_endian = match (u32::from_be_bytes(magic), u32::from_le_bytes(magic)) {
                (BYTE_ORDER_MAGIC, _) => true,
                (_, BYTE_ORDER_MAGIC) => false,
                _ => return Ok(Walked::NotPcapng),
            };
        } else if self.at == 0 {
            return Ok(Walked::NotPcapng);
        }
        let block_type = self.u32(type_bytes);
        let len = self.u32(len_bytes);
        let file_left = self.size.saturating_sub(self.at);
        let is_secrets = block_type == DECRYPTION_SECRETS_BLOCK;
        if len < 12 || !len.is_multiple_of(4) || (is_secrets && len < 20) {
            return Ok(if is_secrets {
                Walked::BadSecrets(SecretsProblem::BadBlockLength(len))
            } else {
                Walked::Damaged
            });
        }
        if u64::from(len) > file_left {
            return Ok(if is_secrets {
                Walked::BadSecrets(SecretsProblem::Truncated {
                    block_len: u64::from(len),
                    file_left,
                })
            } else {
                Walked::Damaged
            });
        }
        let next = self.at + u64::from(len);
        if !is_secrets {
            let skip = u64::from(len).saturating_sub(consumed);
            let skip = i64::try_from(skip).unwrap_or(i64::MAX);
            self.reader.seek_relative(skip)?;
            self.at = next;
            return Ok(Walked::Skipped);
        }
        // The body between the leading length and the trailing one (at most the file's
        // size, checked above).
        let body_len = usize::try_from(len - 12).unwrap_or(0);
        let mut body = vec![0u8; body_len];
        self.reader.read_exact(&mut body)?;
        let Some(trailer) = self.read4()? else {
            return Ok(Walked::End);
        };
        self.at = next;
        let trailing = self.u32(trailer);
        if trailing != len {
            return Ok(Walked::BadSecrets(SecretsProblem::LengthMismatch {
                leading: len,
                trailing,
            }));
        }
        Ok(Walked::Secrets(body))
    }
}

/// Adds the secrets of one Decryption Secrets Block's body to `secrets`; what went wrong,
/// if anything.
fn use_secrets(body: &[u8], big_endian: bool, secrets: &mut FileSecrets) -> Option<SecretsProblem> {
    let field = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = body.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    };
    let (Some(secrets_type), Some(secrets_len)) = (field(0), field(4)) else {
        return Some(SecretsProblem::BadBlockLength(
            u32::try_from(body.len() + 12).unwrap_or(u32::MAX),
        ));
    };
    if secrets_type != TLS_KEY_LOG {
        return Some(SecretsProblem::OtherType(secrets_type));
    }
    let room = body.len().saturating_sub(8);
    let Some(data) = usize::try_from(secrets_len)
        .ok()
        .and_then(|n| body.get(8..8usize.checked_add(n)?))
    else {
        return Some(SecretsProblem::SecretsTooLong {
            secrets_len,
            room: u32::try_from(room).unwrap_or(u32::MAX),
        });
    };
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(e) => {
            return Some(SecretsProblem::NotText {
                at: e.valid_up_to(),
            });
        }
    };
    secrets.tls_blocks += 1;
    let mut first = None;
    let mut count = 0;
    // Some writers end the text with NUL bytes inside the Secrets Length.
    for (i, line) in text.trim_end_matches('\0').lines().enumerate() {
        if let Err(problem) = secrets.keylog.push_line(line) {
            count += 1;
            first.get_or_insert(crate::proto::keylog::KeyLogError {
                line: i + 1,
                problem,
            });
        }
    }
    first.map(|first| SecretsProblem::BadLines { first, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcapng block in either byte order: type, total length, body (padded), length.
    fn block(big: bool, kind: u32, body: &[u8]) -> Vec<u8> {
        let w = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut body = body.to_vec();
        body.resize(body.len().next_multiple_of(4), 0);
        let len = u32::try_from(body.len() + 12).unwrap();
        let mut b = w(kind).to_vec();
        b.extend(w(len));
        b.extend(body);
        b.extend(w(len));
        b
    }

    fn section(big: bool) -> Vec<u8> {
        let mut shb = if big {
            BYTE_ORDER_MAGIC.to_be_bytes().to_vec()
        } else {
            BYTE_ORDER_MAGIC.to_le_bytes().to_vec()
        };
        shb.extend([0, 1, 0, 0]);
        shb.extend([0xff; 8]);
        block(big, SECTION_HEADER_BLOCK, &shb)
    }

    fn dsb(big: bool, kind: u32, secrets: &[u8]) -> Vec<u8> {
        let w = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut body = w(kind).to_vec();
        body.extend(w(u32::try_from(secrets.len()).unwrap()));
        body.extend(secrets);
        block(big, DECRYPTION_SECRETS_BLOCK, &body)
    }

    fn line(n: u8) -> String {
        format!(
            "CLIENT_RANDOM {} {}\n",
            format!("{n:02x}").repeat(32),
            "ee".repeat(48)
        )
    }

    fn secrets_of(bytes: &[u8]) -> FileSecrets {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mailwire-dsb-unit-{}-{}.pcapng",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&path, bytes).unwrap();
        let secrets = read_secrets(&path);
        std::fs::remove_file(&path).unwrap();
        secrets
    }

    #[test]
    fn both_byte_orders_and_every_section_are_read() {
        let mut file = section(true);
        file.extend(block(true, 1, &[0, 1, 0, 0, 0, 0, 0xff, 0xff]));
        file.extend(dsb(true, TLS_KEY_LOG, line(1).as_bytes()));
        // A second section, little-endian, with its own block.
        file.extend(section(false));
        file.extend(dsb(false, TLS_KEY_LOG, line(2).as_bytes()));
        let s = secrets_of(&file);
        assert_eq!(s.notes, []);
        assert_eq!(s.tls_blocks, 2);
        assert_eq!(s.keylog.entries().len(), 2);
        assert_eq!(
            s.keylog.secret("CLIENT_RANDOM", &[2; 32]),
            Some(&[0xee; 48][..])
        );
    }

    #[test]
    fn classic_pcap_and_other_files_have_no_secrets() {
        let mut classic = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
        classic.extend([0; 20]);
        assert_eq!(secrets_of(&classic), FileSecrets::default());
        assert_eq!(secrets_of(b""), FileSecrets::default());
        assert_eq!(
            secrets_of(b"\x0a\x0d\x0d\x0a\x1c\0\0\0NOTMAGIC"),
            FileSecrets::default()
        );
        assert_eq!(
            read_secrets(Path::new("/nonexistent/x.pcapng")),
            FileSecrets::default()
        );
    }

    #[test]
    fn damaged_blocks_are_notes_with_their_offsets() {
        let start = section(false);
        let at = u64::try_from(start.len()).unwrap();

        // Trailer differs: noted, and the walk goes on to the next block.
        let mut file = start.clone();
        let mut bad = dsb(false, TLS_KEY_LOG, line(1).as_bytes());
        let n = bad.len();
        bad[n - 4] ^= 4;
        file.extend(&bad);
        file.extend(dsb(false, TLS_KEY_LOG, line(3).as_bytes()));
        let s = secrets_of(&file);
        assert_eq!(s.keylog.entries().len(), 1);
        assert_eq!(s.notes.len(), 1);
        assert_eq!(s.notes[0].offset, at);
        assert!(matches!(
            s.notes[0].problem,
            SecretsProblem::LengthMismatch { .. }
        ));

        // Impossible block length: noted, the walk stops.
        let mut file = start.clone();
        file.extend(DECRYPTION_SECRETS_BLOCK.to_le_bytes());
        file.extend(14u32.to_le_bytes());
        file.extend([0; 16]);
        let s = secrets_of(&file);
        assert_eq!(s.notes[0].problem, SecretsProblem::BadBlockLength(14));
        assert!(s.notes[0].to_string().contains(&format!("at byte {at} of")));

        // Not text.
        let mut file = start.clone();
        file.extend(dsb(false, TLS_KEY_LOG, b"CLIENT_RANDOM \xff"));
        let s = secrets_of(&file);
        assert_eq!(s.notes[0].problem, SecretsProblem::NotText { at: 14 });
        assert!(s.keylog.is_empty());

        // Too short to hold the two secrets fields, and a secrets length past the block.
        let mut file = start.clone();
        file.extend(block(false, DECRYPTION_SECRETS_BLOCK, &[0; 4]));
        assert_eq!(
            secrets_of(&file).notes[0].problem,
            SecretsProblem::BadBlockLength(16)
        );
        let mut file = start;
        let mut body = TLS_KEY_LOG.to_le_bytes().to_vec();
        body.extend(u32::MAX.to_le_bytes());
        file.extend(block(false, DECRYPTION_SECRETS_BLOCK, &body));
        assert_eq!(
            secrets_of(&file).notes[0].problem,
            SecretsProblem::SecretsTooLong {
                secrets_len: u32::MAX,
                room: 0
            }
        );
    }

    #[test]
    fn trailing_nul_bytes_are_not_a_bad_line() {
        let mut file = section(false);
        file.extend(dsb(
            false,
            TLS_KEY_LOG,
            format!("{}\0\0", line(5)).as_bytes(),
        ));
        let s = secrets_of(&file);
        assert_eq!(s.notes, []);
        assert_eq!(s.keylog.entries().len(), 1);
    }
}
