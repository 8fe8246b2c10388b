//! A recorded lesson: the steps of a run, kept in the pcapng file mailwire exports, and read
//! back so the lesson can be stepped through without servers.
//!
//! The export writes one section-header comment per step, a line of tab-separated fields
//! that this module alone writes ([`step_line`]) and reads ([`parse_step_line`]):
//!
//! ```text
//! mailwire-step <TAB> 3 <TAB> 5-9 <TAB> main <TAB> RFC 1939 section 7 <TAB> caption
//! ```
//!
//! (step number from 1, the frames captured while it ran, 1-based and inclusive, the
//! session, the RFC reference or "-", the caption). Reading a file back, [`load`] decodes
//! its packets again and makes each step's exchanges from the units the analyzer cut in
//! those frames, linked by stream offset as in a live run. A capture without such lines (one
//! from Wireshark, a student's) gets a step per command and its reply ([`dialog_steps`]), so
//! it can be stepped through the same way.

use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::capture::file::{CaptureFile, FileError};
use crate::capture::packets::Packets;
use crate::decode::UnitKind;
use crate::exchange::{Exchange, ExchangeKind, StepOutcome};
use crate::proto::Protocol;
use crate::timeline::{CaptureStatus, StepRecord, Timeline};

/// The first field of a step line.
const TAG: &str = "mailwire-step";

/// One step as an export records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonStep {
    /// 0-based step index.
    pub index: usize,
    /// Frames (0-based indices) captured while the step ran.
    pub frames: Range<usize>,
    pub session: String,
    pub rfc: Option<String>,
    pub caption: String,
    /// The units (indices into the analyzer's) the step is made of, when known; otherwise
    /// those whose first frame is in `frames`, on the connection of the first of them.
    pub units: Option<Vec<usize>>,
}

/// Tabs and line ends would break the line's fields: shown as spaces.
fn field(text: &str) -> String {
    text.replace(['\t', '\r', '\n'], " ")
}

/// The section-header comment line for step `index` of a timeline.
pub fn step_line(index: usize, record: &StepRecord) -> String {
    let frames = if record.frames.is_empty() {
        "-".to_string()
    } else {
        format!("{}-{}", record.frames.start + 1, record.frames.end)
    };
    let rfc = record.rfc.as_deref().map_or_else(|| "-".to_string(), field);
    format!(
        "{TAG}\t{}\t{frames}\t{}\t{rfc}\t{}",
        index + 1,
        field(&record.outcome.session),
        field(&record.caption)
    )
}

/// A step line read back; `None` for any other comment.
pub fn parse_step_line(line: &str) -> Option<LessonStep> {
    let mut fields = line.splitn(6, '\t');
    if fields.next()? != TAG {
        return None;
    }
    let number: usize = fields.next()?.parse().ok()?;
    let frames = match fields.next()? {
        "-" => 0..0,
        range => {
            let (first, last) = range.split_once('-')?;
            let (first, last): (usize, usize) = (first.parse().ok()?, last.parse().ok()?);
            first.checked_sub(1)?..last
        }
    };
    let session = fields.next()?.to_string();
    let rfc = match fields.next()? {
        "-" => None,
        rfc => Some(rfc.to_string()),
    };
    let caption = fields.next()?.to_string();
    Some(LessonStep {
        index: number.checked_sub(1)?,
        frames,
        session,
        rfc,
        caption,
        units: None,
    })
}

/// Why a lesson could not be loaded.
#[derive(Debug)]
pub enum LessonError {
    /// The packets could not be read.
    Packets(FileError),
    /// The file is pcapng but its header could not be read for the steps.
    Header { path: PathBuf, detail: String },
    /// The caller stopped the load (another file was opened meanwhile).
    Cancelled { path: PathBuf },
}

impl fmt::Display for LessonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LessonError::Packets(e) => e.fmt(f),
            LessonError::Header { path, detail } => write!(
                f,
                "cannot read the section header of {} for its steps: {detail}; the packets \
                 can still be opened with `mailwire open`",
                path.display()
            ),
            LessonError::Cancelled { path } => write!(
                f,
                "the load of {} was stopped before it finished (another file was opened)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LessonError {}

/// The step lines in a pcapng file's first section header; none for a classic pcap file.
pub fn read_steps(path: &Path) -> Result<Vec<LessonStep>, LessonError> {
    let header_error = |detail: String| LessonError::Header {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = std::fs::File::open(path).map_err(|e| header_error(e.to_string()))?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || magic != [0x0a, 0x0d, 0x0d, 0x0a] {
        return Ok(Vec::new()); // not pcapng: no header comments to read
    }
    let file = std::fs::File::open(path).map_err(|e| header_error(e.to_string()))?;
    let reader = pcap_file::pcapng::PcapNgReader::new(std::io::BufReader::new(file))
        .map_err(|e| header_error(e.to_string()))?;
    let mut steps: Vec<LessonStep> = reader
        .section()
        .options
        .iter()
        .filter_map(|option| match option {
            pcap_file::pcapng::blocks::section_header::SectionHeaderOption::Common(
                pcap_file::pcapng::blocks::opt_common::CommonOption::Comment(text),
            ) => parse_step_line(text),
            _ => None,
        })
        .collect();
    steps.sort_by_key(|s| s.index);
    Ok(steps)
}

/// How far a [`load_with_progress`] has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadProgress {
    /// Packets read and decoded so far.
    pub packets: usize,
    /// About how many bytes of the file they took (captured bytes plus a record header
    /// each): with the file's size, the share done.
    pub bytes: u64,
    /// All packets are read; the steps are being made.
    pub decoded: bool,
}

/// How many packets of a classic pcap file are checked against the file (and kept in
/// memory) before the rest are left in it.
const CHECKED_IN_FILE: usize = 16;

/// How many packets are read between two progress reports.
pub const PROGRESS_EVERY: usize = 4096;

/// A capture file as a timeline: every packet decoded, and, for a lesson mailwire exported,
/// its steps with their captions and exchanges.
pub fn load(path: &Path) -> Result<Timeline, LessonError> {
    load_with_progress(path, |_| true)
}

/// [`load`], telling `progress` how far it is every [`PROGRESS_EVERY`] packets and once the
/// packets are all decoded; when `progress` returns false the load stops with
/// [`LessonError::Cancelled`].
pub fn load_with_progress(
    path: &Path,
    mut progress: impl FnMut(LoadProgress) -> bool,
) -> Result<Timeline, LessonError> {
    let steps = read_steps(path)?;
    let mut file = CaptureFile::open(path).map_err(LessonError::Packets)?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut timeline = Timeline::new(name);
    timeline.capture = Some(CaptureStatus::FromFile {
        path: path.to_path_buf(),
    });
    // The TLS secrets the file carries (pcapng Decryption Secrets Blocks); a block that
    // cannot be used is left out (`mailwire open` prints why).
    timeline.keylog = crate::capture::file::read_secrets(path).keylog;
    let cancelled = || LessonError::Cancelled {
        path: path.to_path_buf(),
    };
    // A classic pcap file keeps the packets' bytes: they are read from it again when
    // shown, not held twice. The first packets stay in memory and show whether the file
    // holds exactly the bytes libpcap handed out; if not, every packet stays in memory.
    let mut leave_in_file = file.next_data_offset().is_some();
    if leave_in_file && let Ok(packets) = Packets::backed_by(path) {
        timeline.packets = packets;
    }
    let link = file.link_type();
    let mut done = LoadProgress::default();
    loop {
        let at = file.next_data_offset();
        let Some(frame) = file.next_frame().map_err(LessonError::Packets)? else {
            break;
        };
        done.packets += 1;
        done.bytes += 16 + frame.data.len() as u64;
        let in_file = match at {
            Some(at) if done.packets <= CHECKED_IN_FILE => {
                leave_in_file &= timeline.packets.file_holds(at, frame.data);
                None
            }
            Some(at) if leave_in_file => Some(at),
            _ => None,
        };
        timeline.push_frame(frame.ts_micros, link, frame.data, frame.orig_len, in_file);
        if done.packets % PROGRESS_EVERY == 0 && !progress(done) {
            return Err(cancelled());
        }
    }
    timeline.analyzer.finish();
    done.decoded = true;
    if !progress(done) {
        return Err(cancelled());
    }
    // Each step is made and kept at once (for a large foreign capture, a list of all the
    // steps first would be held beside them), in a list of the right size.
    let mut records = Vec::with_capacity(steps.len());
    let keep = |step: LessonStep| {
        let (outcome, ends) = step_outcome(&timeline, &step);
        let mut caption = step.caption;
        caption.shrink_to_fit();
        records.push(StepRecord {
            outcome,
            caption,
            rfc: step.rfc,
            ends,
            frames: step.frames,
        });
    };
    if steps.is_empty() {
        each_dialog_step(&timeline, keep);
        // (A large list grows in place, its pages touched only as they fill.)
        records.shrink_to_fit();
    } else {
        steps.into_iter().for_each(keep);
    }
    // As `Timeline::push_step` would, without copying the list.
    for record in &records {
        timeline
            .events
            .extend(record.outcome.events.iter().cloned());
    }
    timeline.steps = records;
    Ok(timeline)
}

/// Steps for a capture that has none: in capture order, a greeting alone, and each command
/// (or message content) with the reply that answers it. The caption says which connection
/// and what was sent; the frames run from the step's first unit to its last.
pub fn dialog_steps(timeline: &Timeline) -> Vec<LessonStep> {
    let mut steps = Vec::new();
    each_dialog_step(timeline, |step| steps.push(step));
    steps
}

/// [`dialog_steps`], handing each step to `keep` as it is made.
fn each_dialog_step(timeline: &Timeline, mut keep: impl FnMut(LessonStep)) {
    let units = timeline.analyzer.units();
    let connections = timeline.analyzer.connections();
    // The reply of each command, by unit index (u32: half the size, for the many units of a
    // large capture).
    let mut answered: Vec<Option<u32>> = vec![None; units.len()];
    for (u, unit) in units.iter().enumerate() {
        if let Some(slot) = unit.reply_to.and_then(|c| answered.get_mut(c)) {
            *slot = u32::try_from(u).ok();
        }
    }
    // A server line that answers no command ("GARBAGE" from a broken server) while a
    // command waits for its reply belongs to that command's step, between the command and
    // its reply, where it crossed the wire.
    // (Rare: kept by the command they sit in, and by themselves, in small maps.)
    let mut held_by: std::collections::HashMap<usize, Vec<usize>> = Default::default();
    let mut held = std::collections::HashSet::new();
    for connection in connections {
        let mut waiting = std::collections::VecDeque::new();
        for &v in &connection.units {
            let Some(unit) = units.get(v) else { continue };
            match unit.kind {
                UnitKind::Command | UnitKind::AuthData | UnitKind::MailContent => {
                    waiting.push_back(v);
                }
                UnitKind::Reply => match unit.reply_to {
                    Some(c) => waiting.retain(|&w| w > c),
                    None => {
                        if let Some(&c) = waiting.front() {
                            held_by.entry(c).or_default().push(v);
                            held.insert(v);
                        }
                    }
                },
                UnitKind::Greeting | UnitKind::Tls | UnitKind::Undecoded => {}
            }
        }
    }
    let mut count = 0;
    for (u, unit) in units.iter().enumerate() {
        let opens = match unit.kind {
            UnitKind::Greeting | UnitKind::Command | UnitKind::AuthData | UnitKind::MailContent => {
                true
            }
            // A reply that answers nothing known (its command was not captured), unless a
            // command's step holds it.
            UnitKind::Reply => unit.reply_to.is_none() && !held.contains(&u),
            UnitKind::Tls | UnitKind::Undecoded => false,
        };
        if !opens {
            continue;
        }
        let reply_index = answered.get(u).copied().flatten().map(|r| r as usize);
        let reply = reply_index.and_then(|r| units.get(r));
        // The lines held inside this command's step, in wire order.
        let inside = held_by.get(&u).map(Vec::as_slice).unwrap_or_default();
        let frames: Vec<usize> = unit
            .frames()
            .into_iter()
            .chain(
                inside
                    .iter()
                    .filter_map(|&v| units.get(v))
                    .flat_map(|h| h.frames()),
            )
            .chain(reply.map(|r| r.frames()).unwrap_or_default())
            .collect();
        let (Some(&first), Some(&last)) = (frames.iter().min(), frames.iter().max()) else {
            continue;
        };
        let connection = connections.get(unit.conn);
        let who = connection.map_or_else(String::new, |c| {
            let protocol = c.mail_protocol().map_or("TCP", |p| p.name());
            format!("{protocol} {} -> {}: ", c.client, c.server)
        });
        let what = match unit.kind {
            UnitKind::Greeting => "the server's greeting".to_string(),
            UnitKind::MailContent => "the message content".to_string(),
            UnitKind::Reply
                if !has_status(connection.and_then(|c| c.mail_protocol()), &unit.text) =>
            {
                format!("the server sent a line that is not a reply: {}", unit.text)
            }
            UnitKind::Reply => format!("a reply to no captured command: {}", unit.text),
            _ => unit.text.clone(),
        };
        keep(LessonStep {
            index: count,
            frames: first..last + 1,
            session: format!("conn {}", unit.conn + 1),
            rfc: None,
            caption: format!("{who}{what}"),
            units: Some(
                std::iter::once(u)
                    .chain(inside.iter().copied())
                    .chain(reply_index)
                    .collect(),
            ),
        });
        count += 1;
    }
}

/// Whether a reply line begins with its protocol's status (any line does when the
/// protocol is not known).
fn has_status(protocol: Option<Protocol>, line: &str) -> bool {
    protocol.is_none_or(|p| p.has_reply_status(line))
}

/// A recorded step's exchanges: the units cut in its frames, each with its stream range so
/// that the timeline links it back to the same unit; and the client end of its connection.
/// (The window's live watch makes its steps with it, from [`dialog_steps`], as a file's.)
pub fn step_outcome(
    timeline: &Timeline,
    step: &LessonStep,
) -> (StepOutcome, Option<crate::timeline::Ends>) {
    let units = timeline.analyzer.units();
    let in_step: Vec<usize> = match &step.units {
        Some(chosen) => chosen.clone(),
        None => (0..units.len())
            .filter(|&u| {
                units.get(u).is_some_and(|unit| {
                    unit.frames()
                        .first()
                        .is_some_and(|f| step.frames.contains(f))
                })
            })
            .collect(),
    };
    let conn = in_step.first().and_then(|&u| units.get(u)).map(|u| u.conn);
    let connection = conn.and_then(|c| timeline.analyzer.connections().get(c));
    let exchanges = in_step
        .iter()
        .filter_map(|&u| units.get(u))
        .filter(|unit| Some(unit.conn) == conn)
        .filter_map(|unit| {
            let kind = match unit.kind {
                UnitKind::Command | UnitKind::AuthData => ExchangeKind::Command,
                UnitKind::Greeting | UnitKind::Reply => ExchangeKind::Reply,
                UnitKind::MailContent => ExchangeKind::Content,
                UnitKind::Tls | UnitKind::Undecoded => return None,
            };
            Some(Exchange {
                kind,
                line: unit.text.clone(),
                more: Vec::new(),
                octets: usize::try_from(unit.len()).unwrap_or(usize::MAX),
                stream: Some(unit.stream.clone()),
            })
        })
        .collect::<Vec<_>>();
    let mut exchanges = exchanges;
    exchanges.shrink_to_fit();
    let outcome = StepOutcome {
        index: step.index,
        session: step.session.clone(),
        protocol: connection.and_then(|c| c.mail_protocol()),
        conn,
        exchanges,
        check: Ok(()),
        events: Vec::new(),
        server_closed: false,
    };
    (outcome, connection.map(|c| c.ends()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_line_reads_back_as_written() {
        let step = LessonStep {
            index: 2,
            frames: 4..9,
            session: "main".into(),
            rfc: Some("RFC 1939 section 7".into()),
            caption: "APOP: the name and a digest".into(),
            units: None,
        };
        let line = format!("{TAG}\t3\t5-9\tmain\tRFC 1939 section 7\tAPOP: the name and a digest");
        assert_eq!(parse_step_line(&line), Some(step));
        assert_eq!(
            parse_step_line(&format!("{TAG}\t1\t-\tmain\t-\tConnect.")),
            Some(LessonStep {
                index: 0,
                frames: 0..0,
                session: "main".into(),
                rfc: None,
                caption: "Connect.".into(),
                units: None,
            })
        );
    }

    #[test]
    fn other_comments_and_broken_lines_are_not_steps() {
        for line in [
            "mailwire capture of the scenario \"x\"",
            "mailwire-step\tx\t1-2\tmain\t-\tc",
            "mailwire-step\t0\t1-2\tmain\t-\tc",
            "mailwire-step\t1\t0-2\tmain\t-\tc",
            "mailwire-step\t1\t1-2\tmain",
            "",
        ] {
            assert_eq!(parse_step_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn a_caption_with_tabs_and_line_ends_stays_one_field() {
        assert_eq!(field("a\tb\r\nc"), "a b  c");
    }
}
