//! The annotated pcapng export: the captured frames, byte for byte, in a file Wireshark and
//! tshark open, with
//! - a Section Header Block whose comment names the scenario and the TCP ports that carry
//!   POP3 and SMTP (and, for ports Wireshark does not dissect by default, how to tell it:
//!   "Decode As..." or `tshark -d tcp.port==N,pop`);
//! - one Interface Description Block per link type (name, description, snapshot length,
//!   microsecond timestamps);
//! - one Enhanced Packet Block per frame, whose comment says which step it belongs to and
//!   which commands or replies it carried ("step 3: ... | C: STAT"), or its TCP role
//!   (handshake, FIN, ACK) when it carried none;
//! - when the timeline holds TLS secrets of sessions in the capture, a Decryption Secrets
//!   Block (draft-ietf-opsawg-pcapng section 4.7, secrets type `TLSK`: the NSS key log
//!   text) before the first packet, so Wireshark and tshark decrypt those sessions without
//!   being given a key file. Only the secrets of sessions whose ClientHello is in the
//!   capture go in (a key log file may hold a browser's secrets too); an export without such
//!   secrets has no Decryption Secrets Block at all.
//!
//! libpcap cannot write comments, so the blocks are written with the `pcap-file` crate
//! (the Decryption Secrets Block, which it has no type for, as a raw block).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption, InterfaceTsResolution,
};
use pcap_file::pcapng::blocks::opt_common::CommonOption;
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::{PcapNgWriter, RawBlock};
use pcap_file::{DataLink, Endianness};

use super::{ExportError, describe_control, owning_step, visible};
use crate::capture::LinkType;
use crate::capture::file::{DECRYPTION_SECRETS_BLOCK, TLS_KEY_LOG};
use crate::proto::Protocol;
use crate::proto::keylog::KeyLog;
use crate::timeline::{CaptureStatus, Timeline};

/// Which TCP ports carry which protocol, for the section comment (and the reader's
/// "Decode As..."). Ports named here are added to those the timeline's connections show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportHints {
    /// Server ports that carry POP3.
    pub pop3_ports: Vec<u16>,
    /// Server ports that carry SMTP.
    pub smtp_ports: Vec<u16>,
    /// The capture interface's name for `if_name`; when `None`, the name the capture status
    /// gives, else the system's loopback name (`lo` on Linux, `lo0` elsewhere).
    pub interface: Option<String>,
}

/// POP3's port that Wireshark dissects without being told.
const WIRESHARK_POP3_PORTS: [u16; 1] = [110];
/// SMTP's ports that Wireshark dissects without being told.
const WIRESHARK_SMTP_PORTS: [u16; 2] = [25, 587];
/// Longest comment written: a pcapng option holds at most 65,535 bytes, and a frame that
/// carried thousands of pipelined commands should not make the export fail.
const MAX_COMMENT_BYTES: usize = 16 * 1024;

/// The comment, cut (at a character boundary, with a note) if longer than
/// [`MAX_COMMENT_BYTES`].
fn fit(mut comment: String) -> String {
    const CUT: &str = " … (comment cut: too long)";
    if comment.len() <= MAX_COMMENT_BYTES {
        return comment;
    }
    let mut end = MAX_COMMENT_BYTES - CUT.len();
    while !comment.is_char_boundary(end) {
        end -= 1;
    }
    comment.truncate(end);
    comment.push_str(CUT);
    comment
}

impl ExportHints {
    /// The ports the timeline's connections show: each connection's server port, by the
    /// protocol the analyzer recognised on it.
    pub fn from_timeline(timeline: &Timeline) -> Self {
        let mut hints = ExportHints::default();
        for c in timeline.analyzer.connections() {
            match c.mail_protocol() {
                Some(Protocol::Pop3) => hints.pop3_ports.push(c.server.port()),
                Some(Protocol::Smtp) => hints.smtp_ports.push(c.server.port()),
                None => {}
            }
        }
        hints.normalize();
        hints
    }

    /// These hints joined with the ports the timeline shows.
    fn merged_with(&self, timeline: &Timeline) -> Self {
        let mut all = Self::from_timeline(timeline);
        all.pop3_ports.extend(&self.pop3_ports);
        all.smtp_ports.extend(&self.smtp_ports);
        all.interface = self.interface.clone();
        all.normalize();
        all
    }

    fn normalize(&mut self) {
        self.pop3_ports.sort_unstable();
        self.pop3_ports.dedup();
        self.smtp_ports.sort_unstable();
        self.smtp_ports.dedup();
    }

    /// The tshark options that make it dissect these ports (`-d tcp.port==N,pop` for each
    /// port Wireshark does not dissect by default).
    pub fn tshark_decode_as(&self) -> Vec<String> {
        let pop = self
            .pop3_ports
            .iter()
            .filter(|p| !WIRESHARK_POP3_PORTS.contains(p))
            .map(|p| format!("tcp.port=={p},pop"));
        let smtp = self
            .smtp_ports
            .iter()
            .filter(|p| !WIRESHARK_SMTP_PORTS.contains(p))
            .map(|p| format!("tcp.port=={p},smtp"));
        pop.chain(smtp).collect()
    }
}

/// Writes the timeline's captured packets to `path` as pcapng, with a section comment, an
/// interface description and a comment on every packet (see the module documentation).
pub fn write_pcapng(
    timeline: &Timeline,
    path: &Path,
    hints: &ExportHints,
) -> Result<(), ExportError> {
    let bytes = encode(timeline, path, hints)?;
    super::write_file(path, &bytes)
}

/// The whole file, in memory.
fn encode(timeline: &Timeline, path: &Path, hints: &ExportHints) -> Result<Vec<u8>, ExportError> {
    if timeline.packets.is_empty() {
        return Err(ExportError::NothingCaptured {
            path: path.to_path_buf(),
            why: timeline.capture_status().describe(),
        });
    }
    let encode_error = |e: pcap_file::pcapng::PcapNgWriteError| ExportError::Encode {
        path: path.to_path_buf(),
        why: error_chain(&e),
    };
    let hints = hints.merged_with(timeline);
    let file_name = path
        .file_name()
        .map_or_else(|| "FILE".to_string(), |n| n.to_string_lossy().into_owned());

    let section = SectionHeaderBlock {
        endianness: Endianness::native(),
        major_version: 1,
        minor_version: 0,
        section_length: -1,
        options: [
            SectionHeaderOption::Common(CommonOption::Comment(Cow::Owned(fit(section_comment(
                timeline, &hints, &file_name,
            ))))),
            SectionHeaderOption::UserApplication(Cow::Borrowed(concat!(
                "mailwire ",
                env!("CARGO_PKG_VERSION")
            ))),
        ]
        .into_iter()
        // The steps, one comment each, so that `lesson::load` can step the file again.
        .chain(timeline.steps.iter().enumerate().map(|(i, record)| {
            SectionHeaderOption::Common(CommonOption::Comment(Cow::Owned(fit(
                crate::lesson::step_line(i, record),
            ))))
        }))
        .collect(),
    };
    let mut writer =
        PcapNgWriter::with_section_header(Vec::new(), section).map_err(encode_error)?;

    // One interface per link type, in order of first appearance.
    let mut interfaces: Vec<LinkType> = Vec::new();
    for p in &timeline.packets {
        if !interfaces.contains(&p.link_type) {
            interfaces.push(p.link_type);
        }
    }
    let snaplen = timeline
        .packets
        .iter()
        .map(|p| u32::try_from(p.data.len()).unwrap_or(u32::MAX))
        .max()
        .unwrap_or(0)
        // The timeline does not keep the snapshot length; mailwire's capture uses this one.
        .max(crate::capture::live::LiveConfig::default().snaplen);
    let if_name = interface_name(timeline, &hints);
    for (i, link) in interfaces.iter().enumerate() {
        let code = u16::try_from(link.0).map_err(|_| ExportError::Packet {
            path: path.to_path_buf(),
            frame: timeline
                .packets
                .iter()
                .position(|p| p.link_type == *link)
                .unwrap_or(0)
                + 1,
            why: format!("its link type {} does not fit pcapng's 16 bits", link.0),
        })?;
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::from(u32::from(code)),
            snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(if_name.clone())),
                InterfaceDescriptionOption::IfDescription(Cow::Borrowed(
                    "loopback, captured by mailwire",
                )),
                InterfaceDescriptionOption::IfTsResol(InterfaceTsResolution::MICRO),
            ],
        };
        writer
            .write_pcapng_block(idb)
            .map_err(|e| ExportError::Encode {
                path: path.to_path_buf(),
                why: format!("interface {i}: {}", error_chain(&e)),
            })?;
    }

    // The TLS secrets, before every packet that needs them (Wireshark reads a Decryption
    // Secrets Block only for the packets after it).
    let secrets = embedded_secrets(timeline);
    if !secrets.keylog.is_empty() {
        let block = secrets_block(
            secrets.keylog.to_nss_text().as_bytes(),
            Endianness::native(),
        )
        .ok_or_else(|| ExportError::Encode {
            path: path.to_path_buf(),
            why: "the TLS key log is larger than a pcapng block can hold (4 GiB)".to_string(),
        })?;
        writer
            .write_raw_block(&block)
            .map_err(|e| ExportError::Encode {
                path: path.to_path_buf(),
                why: format!("Decryption Secrets Block: {}", error_chain(&e)),
            })?;
    }

    let comments = frame_comments(timeline);
    for (index, packet) in timeline.packets.iter().enumerate() {
        let frame = index + 1;
        let packet_error = |why: String| ExportError::Packet {
            path: path.to_path_buf(),
            frame,
            why,
        };
        let micros = u64::try_from(packet.ts_micros).map_err(|_| {
            packet_error(format!("its time ({} µs) is before 1970", packet.ts_micros))
        })?;
        let interface_id = interfaces
            .iter()
            .position(|l| *l == packet.link_type)
            .unwrap_or(0);
        let captured = u32::try_from(packet.data.len()).map_err(|_| {
            packet_error(format!(
                "it holds {} bytes, more than 4 GiB",
                packet.data.len()
            ))
        })?;
        let mut options = Vec::new();
        if let Some(comment) = comments.get(index).filter(|c| !c.is_empty()) {
            options.push(EnhancedPacketOption::Common(CommonOption::Comment(
                Cow::Borrowed(comment.as_str()),
            )));
        }
        let epb = EnhancedPacketBlock {
            interface_id: u32::try_from(interface_id).unwrap_or(0),
            timestamp: Duration::from_micros(micros),
            // A capture never holds more than the packet's length; keep the file valid if a
            // source said otherwise.
            original_len: packet.orig_len.max(captured),
            data: Cow::Borrowed(packet.data.as_slice()),
            options,
        };
        writer
            .write_pcapng_block(epb)
            .map_err(|e| packet_error(error_chain(&e)))?;
    }
    Ok(writer.into_inner())
}

/// The TLS secrets an export of a timeline embeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddedSecrets {
    /// The timeline's secrets of sessions whose ClientHello is in the capture.
    pub keylog: KeyLog,
    /// How many of the timeline's secrets were left out: their session's ClientHello is not
    /// in the capture (another session in the same key log file, or a handshake the capture
    /// missed), so they could not decrypt anything here.
    pub left_out: usize,
}

/// The secrets an export of `timeline` embeds in its Decryption Secrets Block: the entries
/// of `timeline.keylog` whose client random (the NSS key log's second field) is the random
/// of a ClientHello in a captured packet (RFC 8446 section 4.1.2, RFC 5246 section 7.4.1.2).
/// A key log file often holds other sessions' secrets too (`SSLKEYLOGFILE` is shared by
/// every program that honours it, browsers included): those are not handed out with the
/// capture. A ClientHello whose random is cut between two TCP segments is not found (the
/// random begins 6 bytes into the handshake message, so only a segment of fewer than 40
/// bytes of it could cut it).
pub fn embedded_secrets(timeline: &Timeline) -> EmbeddedSecrets {
    if timeline.keylog.is_empty() {
        return EmbeddedSecrets::default();
    }
    let wanted: HashSet<&[u8]> = timeline
        .keylog
        .entries()
        .iter()
        .map(|e| e.client_random.as_slice())
        .filter(|r| r.len() == CLIENT_RANDOM_LEN)
        .collect();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for packet in &timeline.packets {
        for random in client_hello_randoms(&packet.data) {
            if wanted.contains(random) {
                seen.insert(random.to_vec());
            }
        }
    }
    let mut keylog = KeyLog::new();
    let mut left_out = 0;
    for entry in timeline.keylog.entries() {
        if seen.contains(&entry.client_random) {
            keylog.push(entry.clone());
        } else {
            left_out += 1;
        }
    }
    EmbeddedSecrets { keylog, left_out }
}

/// A TLS ClientHello's random: 32 bytes.
const CLIENT_RANDOM_LEN: usize = 32;

/// The 32 bytes after every place in `data` that looks like the start of a ClientHello
/// handshake message: type 1, a 3-byte length, then `legacy_version` 3.x (RFC 8446 section
/// 4.1.2; RFC 5246 section 7.4.1.2), then the random. Only candidates: the caller matches
/// them against the key log's client randoms.
fn client_hello_randoms(data: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    data.windows(6 + CLIENT_RANDOM_LEN)
        .filter(|w| {
            w.first() == Some(&1) && w.get(4) == Some(&3) && w.get(5).is_some_and(|v| *v <= 4)
        })
        .filter_map(|w| w.get(6..))
}

/// A Decryption Secrets Block (draft-ietf-opsawg-pcapng section 4.7) holding `nss_text`, an
/// NSS key log, with its fields in the section's byte order: Secrets Type `TLSK`, Secrets
/// Length, the secrets, padded to 32 bits; no options. `None` if it would not fit the block
/// length's 32 bits.
fn secrets_block(nss_text: &[u8], endianness: Endianness) -> Option<RawBlock<'static>> {
    let u32_bytes = |v: u32| match endianness {
        Endianness::Big => v.to_be_bytes(),
        Endianness::Little => v.to_le_bytes(),
    };
    let secrets_len = u32::try_from(nss_text.len()).ok()?;
    let padded = nss_text.len().checked_next_multiple_of(4)?;
    let mut body = Vec::with_capacity(padded.checked_add(8)?);
    body.extend_from_slice(&u32_bytes(TLS_KEY_LOG));
    body.extend_from_slice(&u32_bytes(secrets_len));
    body.extend_from_slice(nss_text);
    body.resize(padded.checked_add(8)?, 0);
    // Block type, block total length and the total length again: 12 bytes around the body.
    let total = u32::try_from(body.len().checked_add(12)?).ok()?;
    Some(RawBlock {
        type_: DECRYPTION_SECRETS_BLOCK,
        initial_len: total,
        body: Cow::Owned(body),
        trailer_len: total,
    })
}

/// An error and its sources, joined: "a: b: c".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The interface name for `if_name`.
fn interface_name(timeline: &Timeline, hints: &ExportHints) -> String {
    if let Some(name) = &hints.interface {
        return name.clone();
    }
    if let Some(CaptureStatus::Live { interface, .. }) = &timeline.capture {
        return interface.clone();
    }
    if cfg!(target_os = "linux") {
        "lo"
    } else {
        "lo0"
    }
    .to_string()
}

fn port_list(ports: &[u16]) -> String {
    let words: Vec<String> = ports.iter().map(u16::to_string).collect();
    match words.as_slice() {
        [] => String::new(),
        [one] => format!("TCP port {one}"),
        many => format!("TCP ports {}", many.join(", ")),
    }
}

/// The Section Header Block's comment.
fn section_comment(timeline: &Timeline, hints: &ExportHints, file_name: &str) -> String {
    let mut lines = vec![format!(
        "mailwire capture of the scenario \"{}\"",
        visible(&timeline.title)
    )];
    let mut carried = Vec::new();
    if !hints.pop3_ports.is_empty() {
        carried.push(format!("POP3 on {}", port_list(&hints.pop3_ports)));
    }
    if !hints.smtp_ports.is_empty() {
        carried.push(format!("SMTP on {}", port_list(&hints.smtp_ports)));
    }
    if carried.is_empty() {
        lines.push("No POP3 or SMTP connection was recognised.".to_string());
    } else {
        lines.push(format!("{}.", carried.join("; ")));
    }
    let decode_as = hints.tshark_decode_as();
    if decode_as.is_empty() {
        lines.push(
            "These are the standard ports: Wireshark dissects them without being told.".to_string(),
        );
    } else {
        let what: Vec<String> = decode_as
            .iter()
            .map(|d| {
                let (port, proto) = d
                    .trim_start_matches("tcp.port==")
                    .split_once(',')
                    .unwrap_or((d, ""));
                format!("TCP port {port} as {}", proto.to_uppercase())
            })
            .collect();
        let args: Vec<String> = decode_as.iter().map(|d| format!("-d {d}")).collect();
        lines.push(format!(
            "Wireshark dissects POP3 only on port 110 and SMTP only on 25 and 587 unless told. \
             In Wireshark: Analyze > Decode As... ({}). With tshark: tshark -r {file_name} {}",
            what.join(", "),
            args.join(" ")
        ));
    }
    lines.push(
        "Every packet has a comment: its step, the step's caption, and the commands or replies \
         it carried (Wireshark: Packet Comments; tshark: -e frame.comment)."
            .to_string(),
    );
    lines.push(format!(
        "{} steps, {} packets; {}.",
        timeline.steps.len(),
        timeline.packets.len(),
        timeline.capture_status().describe()
    ));
    lines.join("\n")
}

/// One comment per frame (empty for none).
pub(super) fn frame_comments(timeline: &Timeline) -> Vec<String> {
    // Which exchange each linked unit is.
    let mut linked: HashMap<usize, (usize, usize)> = HashMap::new();
    for (s, step) in timeline.steps.iter().enumerate() {
        for e in 0..step.outcome.exchanges.len() {
            if let Some(u) = timeline.unit_index(s, e) {
                linked.insert(u, (s, e));
            }
        }
    }
    // The units each frame carried, in the order they were cut.
    let mut carried: Vec<Vec<usize>> = vec![Vec::new(); timeline.packets.len()];
    for (u, unit) in timeline.analyzer.units().iter().enumerate() {
        for f in unit.frames() {
            if let Some(list) = carried.get_mut(f) {
                list.push(u);
            }
        }
    }
    let mut comments = Vec::with_capacity(timeline.packets.len());
    for (index, units) in carried.iter().enumerate() {
        let frame_step = owning_step(timeline, index);
        // Items grouped by step, in step order (`None`: outside every step).
        let mut groups: BTreeMap<Option<usize>, Vec<String>> = BTreeMap::new();
        if units.is_empty() {
            groups
                .entry(frame_step)
                .or_default()
                .push(describe_control(timeline, index));
        }
        for &u in units {
            let Some(unit) = timeline.analyzer.units().get(u) else {
                continue;
            };
            let (step, text) = match linked.get(&u) {
                Some(&(s, e)) => {
                    let exchange = timeline
                        .steps
                        .get(s)
                        .and_then(|r| r.outcome.exchanges.get(e));
                    let text = match exchange {
                        Some(x) => {
                            let mut t = format!("{} {}", x.direction().tag(), visible(&x.line));
                            if x.has_body() {
                                t.push_str(&format!(" (+{} lines)", x.more.len()));
                            }
                            t
                        }
                        None => wire_text(unit),
                    };
                    (Some(s), text)
                }
                None => (
                    frame_step,
                    format!("{} (not linked to a step)", wire_text(unit)),
                ),
            };
            let frames = unit.frames();
            let mut text = text;
            if frames.len() > 1 {
                let part = frames.iter().position(|&f| f == index).map_or(0, |p| p + 1);
                text.push_str(&format!(" [part {part} of {} segments]", frames.len()));
            }
            groups.entry(step).or_default().push(text);
        }
        let parts: Vec<String> = groups
            .into_iter()
            .map(|(step, items)| {
                let head = match step.and_then(|s| timeline.steps.get(s).map(|r| (s, r))) {
                    Some((s, record)) => format!("step {}: {}", s + 1, visible(&record.caption)),
                    None => "outside the scenario's steps".to_string(),
                };
                format!("{head} | {}", items.join(" | "))
            })
            .collect();
        comments.push(fit(parts.join(" || ")));
    }
    comments
}

/// A unit as the wire showed it: `C: text`.
fn wire_text(unit: &crate::decode::analyzer::Unit) -> String {
    format!("{} {}", unit.direction.tag(), visible(&unit.text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_comments_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_COMMENT_BYTES);
        let cut = fit(long);
        assert!(cut.len() <= MAX_COMMENT_BYTES);
        assert!(cut.ends_with("(comment cut: too long)"));
        assert_eq!(fit("short".to_string()), "short");
    }

    #[test]
    fn decode_as_only_for_ports_wireshark_does_not_know() {
        let hints = ExportHints {
            pop3_ports: vec![110, 40110],
            smtp_ports: vec![25, 2525],
            interface: None,
        };
        assert_eq!(
            hints.tshark_decode_as(),
            vec!["tcp.port==40110,pop", "tcp.port==2525,smtp"]
        );
    }

    #[test]
    fn a_secrets_block_is_padded_and_in_the_sections_byte_order() {
        let block = secrets_block(b"ABCDE", Endianness::Big).unwrap();
        assert_eq!(
            (block.type_, block.initial_len, block.trailer_len),
            (0x0A, 28, 28)
        );
        assert_eq!(
            block.body.as_ref(),
            b"TLSK\0\0\0\x05ABCDE\0\0\0".as_slice(),
            "type, length, text, 3 bytes of padding"
        );
        let block = secrets_block(b"ABCD", Endianness::Little).unwrap();
        assert_eq!(block.initial_len, 24);
        assert_eq!(block.body.as_ref(), b"KSLT\x04\0\0\0ABCD".as_slice());
    }

    #[test]
    fn client_hello_randoms_are_found_anywhere_in_a_frame() {
        let random = [7u8; 32];
        // A TLS record header, then the ClientHello: type 1, length, version 3.3, random.
        let mut frame = vec![0xaa; 20];
        frame.extend([0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3]);
        frame.extend(random);
        frame.extend([0; 10]);
        let found: Vec<&[u8]> = client_hello_randoms(&frame).collect();
        assert!(found.contains(&random.as_slice()), "{found:?}");
        // Cut before the random ends: not found.
        assert!(!client_hello_randoms(&frame[..50]).any(|r| r == random));
    }

    #[test]
    fn an_empty_timeline_is_an_error_naming_the_file() {
        let t = Timeline::new("t");
        let err = write_pcapng(
            &t,
            Path::new("/nonexistent/x.pcapng"),
            &ExportHints::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/x.pcapng"), "{text}");
        assert!(text.contains("no captured packets"), "{text}");
    }
}
