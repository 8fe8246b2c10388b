//! `mailwire open FILE`: reads a capture file and prints, per TCP connection, the C:/S:
//! transcript of commands and replies with the frames that carried each (frame numbers
//! 1-based, as Wireshark numbers them); `--packets` adds one line per segment. The TLS
//! secrets of the file's Decryption Secrets Blocks, and those of `--keylog KEYS`, go into
//! the timeline; `--pcap OUT` writes the capture again with them embedded (as `editcap
//! --inject-secrets tls,KEYS` does), so Wireshark decrypts it without a key file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use crate::capture::LinkType;
use crate::capture::file::{CaptureFile, read_secrets};
use crate::decode::tls_decrypt::{RecordOutcome, TlsDecryption};
use crate::decode::{Analyzer, Connection, ProtocolSource, TcpFlags, Unit, UnitKind};
use crate::proto::Direction;
use crate::proto::keylog::KeyLog;

/// Arguments of `mailwire open`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct OpenArgs {
    /// A pcap or pcapng capture file.
    pub file: PathBuf,
    /// Also list every TCP segment: frame, direction, flags, relative seq/ack, length.
    #[arg(long)]
    pub packets: bool,
    /// Decode and reassemble everything but print only the totals and the time taken
    /// (for benchmarks).
    #[arg(long)]
    pub summary_only: bool,
    /// Write a lab report of the capture a student can hand in: the diagram, every step's
    /// commands and replies with their frames (a mailwire export keeps its captions), and the
    /// headers of --report-packets (HTML; opens and prints in any browser).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The frames whose decoded headers go in the lab report: frame numbers as Wireshark
    /// shows them, comma-separated (4,9,12).
    #[arg(long, value_name = "FRAMES", value_parser = parse_frame_list, requires = "report")]
    pub report_packets: Option<FrameList>,
    /// TLS secrets in the NSS key log format (the file SSLKEYLOGFILE names) for the TLS
    /// sessions in the capture, added to those the file itself carries.
    #[arg(long, value_name = "KEYS")]
    pub keylog: Option<PathBuf>,
    /// Write the capture again as pcapng with the TLS secrets embedded (a Decryption Secrets
    /// Block, only of the sessions in the capture): Wireshark and tshark then decrypt it with
    /// no key file.
    #[arg(long, value_name = "OUT")]
    pub pcap: Option<PathBuf>,
}

/// Reads an NSS key log file (`SSLKEYLOGFILE`'s format). The error names the file, and the
/// line for a line that is not `LABEL <client_random hex> <secret hex>`.
pub fn load_keylog(path: &std::path::Path) -> Result<KeyLog, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the TLS key log file {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "the TLS key log file {} is not text: byte {} is not UTF-8 (an NSS key log, as \
             SSLKEYLOGFILE writes, is plain ASCII)",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    KeyLog::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The TLS secrets for `file`: those its Decryption Secrets Blocks carry (each block that
/// could not be used is printed as a note on stderr) and those of `keylog`, if given.
pub fn capture_keylog(
    file: &std::path::Path,
    keylog: Option<&std::path::Path>,
) -> Result<KeyLog, String> {
    let secrets = read_secrets(file);
    for note in &secrets.notes {
        eprintln!("mailwire: note: {note}");
    }
    let mut all = secrets.keylog;
    if let Some(path) = keylog {
        all.extend(&load_keylog(path)?);
    }
    Ok(all)
}

/// "5 TLS secrets (TLS key log lines)".
pub fn secrets_count(n: usize) -> String {
    format!(
        "{n} TLS secret{} (key log line{})",
        if n == 1 { "" } else { "s" },
        if n == 1 { "" } else { "s" }
    )
}

/// How an export's secrets are described after "wrote FILE (N packets": nothing when it
/// has none.
pub fn embedded_words(timeline: &crate::timeline::Timeline) -> String {
    let secrets = crate::export::pcapng::embedded_secrets(timeline);
    let mut words = String::new();
    if !secrets.keylog.is_empty() {
        words.push_str(&format!(
            ", {} embedded",
            secrets_count(secrets.keylog.entries().len())
        ));
    }
    if secrets.left_out > 0 {
        words.push_str(&format!(
            "; {} left out: their sessions are not in the capture",
            secrets_count(secrets.left_out)
        ));
    }
    words
}

/// Frame indices (0-based), given as frame numbers as Wireshark shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameList(pub Vec<usize>);

/// Frame numbers as Wireshark shows them ("4,9,12", 1-based) as frame indices (0-based).
pub fn parse_frame_list(text: &str) -> Result<FrameList, String> {
    let frames: Result<Vec<usize>, String> = text
        .split(',')
        .map(str::trim)
        .map(|n| match n.parse::<usize>() {
            Ok(0) => Err("frame numbers start at 1, as in Wireshark".to_string()),
            Ok(n) => Ok(n - 1),
            Err(_) => Err(format!(
                "\"{n}\" is not a frame number: give numbers as Wireshark shows them, \
                 separated by commas (4,9,12)"
            )),
        })
        .collect();
    frames.map(FrameList)
}

/// Runs `mailwire open`. A file that cannot be read at all is an error; a file cut short
/// prints what was read, then the error.
pub fn run_open(args: OpenArgs) -> Result<(), String> {
    let keylog = capture_keylog(&args.file, args.keylog.as_deref())?;
    if args.report.is_some() || args.pcap.is_some() {
        // The lesson loader gives the steps: a mailwire export's captions, else one step per
        // command and its reply.
        let mut timeline = crate::lesson::load(&args.file).map_err(|e| e.to_string())?;
        timeline.keylog.extend(&keylog);
        if let Some(out) = &args.pcap {
            let hints = crate::export::pcapng::ExportHints::from_timeline(&timeline);
            crate::export::pcapng::write_pcapng(&timeline, out, &hints)
                .map_err(|e| e.to_string())?;
            println!(
                "wrote {} ({} packets{})",
                out.display(),
                timeline.packets.len(),
                embedded_words(&timeline)
            );
        }
        if let Some(report) = &args.report {
            let packets = args.report_packets.clone().unwrap_or_default();
            crate::export::html::write_report(&timeline, &packets.0, report)
                .map_err(|e| e.to_string())?;
            println!("wrote {}", report.display());
        }
        return Ok(());
    }
    let started = Instant::now();
    let mut file = CaptureFile::open(&args.file).map_err(|e| e.to_string())?;
    let link = file.link_type();
    let mut analyzer = Analyzer::new();
    let mut read_error = None;
    loop {
        match file.next_frame() {
            Ok(Some(f)) => {
                analyzer.push_frame(f.ts_micros, link, f.data, f.orig_len);
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e.to_string());
                break;
            }
        }
    }
    analyzer.finish();
    let elapsed = started.elapsed();
    let name = args.file.display().to_string();
    if args.summary_only {
        let frames = analyzer.frames().len();
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            frames as f64 / secs
        } else {
            0.0
        };
        println!(
            "{name}: {frames} frames, {} TCP connections, {} units; read, decoded and \
             reassembled in {:.3} s ({rate:.0} frames/s)",
            analyzer.connections().len(),
            analyzer.units().len(),
            secs
        );
    } else if keylog.is_empty() {
        print!("{}", render(&name, link, &analyzer, args.packets));
    } else {
        let tls = decrypt_capture(&args.file, &analyzer, &keylog)?;
        print!(
            "{}",
            render_decrypted(&name, link, &analyzer, args.packets, Some(&tls))
        );
    }
    if !keylog.is_empty() {
        println!(
            "\nTLS: {} read (from the file's Decryption Secrets Blocks{})",
            secrets_count(keylog.entries().len()),
            args.keylog
                .as_ref()
                .map(|k| format!(" and {}", k.display()))
                .unwrap_or_default()
        );
    }
    match read_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The whole report for one analyzed capture, as `mailwire open` prints it.
pub fn render(name: &str, link: LinkType, analyzer: &Analyzer, packets: bool) -> String {
    render_decrypted(name, link, analyzer, packets, None)
}

/// Re-reads capture file `path` for the bytes of the frames that carried TLS records and
/// decrypts them with `keylog` (see [`crate::decode::tls_decrypt`]).
pub fn decrypt_capture(
    path: &std::path::Path,
    analyzer: &Analyzer,
    keylog: &crate::proto::keylog::KeyLog,
) -> Result<TlsDecryption, String> {
    let wanted: std::collections::HashSet<usize> = analyzer
        .units()
        .iter()
        .filter(|u| u.kind == UnitKind::Tls)
        .flat_map(|u| u.carriers.iter().map(|c| c.frame))
        .collect();
    let mut frames: std::collections::HashMap<usize, Vec<u8>> = Default::default();
    let mut file = CaptureFile::open(path).map_err(|e| e.to_string())?;
    let mut index = 0usize;
    while let Some(f) = file.next_frame().map_err(|e| e.to_string())? {
        if wanted.contains(&index) {
            frames.insert(index, f.data.to_vec());
        }
        index += 1;
    }
    Ok(crate::decode::tls_decrypt::decrypt_all(
        analyzer,
        |f| {
            frames
                .get(&f)
                .map(|d| std::borrow::Cow::Borrowed(d.as_slice()))
        },
        keylog,
    ))
}

/// [`render`], with what `tls` decrypted (a key log was given): under each TLS record what
/// became of it, and the commands and replies decrypted from it, each marked "decrypted".
pub fn render_decrypted(
    name: &str,
    link: LinkType,
    analyzer: &Analyzer,
    packets: bool,
    tls: Option<&TlsDecryption>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{name}: {} frames, {} TCP connections, link type {}",
        analyzer.frames().len(),
        analyzer.connections().len(),
        link_name(link)
    );
    for conn in analyzer.connections() {
        out.push('\n');
        render_connection(&mut out, analyzer, conn, packets, tls);
    }
    render_other_frames(&mut out, analyzer);
    out
}

fn link_name(link: LinkType) -> String {
    let name = match link {
        LinkType::NULL => "NULL/loopback",
        LinkType::ETHERNET => "Ethernet",
        LinkType::RAW => "raw IP",
        LinkType::LOOP => "OpenBSD loopback",
        LinkType::LINUX_SLL => "Linux cooked (SLL)",
        LinkType::IPV4 => "raw IPv4",
        LinkType::IPV6 => "raw IPv6",
        LinkType::LINUX_SLL2 => "Linux cooked (SLL2)",
        _ => "not decoded",
    };
    format!("{name} ({})", link.0)
}

/// 1-based frame numbers, with runs shortened: `4`, `8-9`, `4, 6-9`.
pub fn frame_list(frames: &[usize]) -> String {
    crate::export::frame_numbers(frames).0
}

fn render_connection(
    out: &mut String,
    analyzer: &Analyzer,
    conn: &Connection,
    packets: bool,
    tls: Option<&TlsDecryption>,
) {
    let protocol = match conn.protocol_source() {
        ProtocolSource::Port => format!("{} (port {})", conn.protocol().name(), conn.server.port()),
        ProtocolSource::Greeting => format!("{} (from the greeting)", conn.protocol().name()),
        ProtocolSource::None => conn.protocol().name().to_string(),
    };
    let frames: Vec<usize> = conn.frames.iter().map(|&f| f as usize).collect();
    let first = frames.first().map_or(0, |f| f + 1);
    let last = frames.last().map_or(0, |f| f + 1);
    let mut state = Vec::new();
    if conn.reset {
        state.push("reset");
    } else if conn.is_closed() {
        state.push("closed");
    }
    let state = if state.is_empty() {
        String::new()
    } else {
        format!(", {}", state.join(", "))
    };
    let _ = writeln!(
        out,
        "Connection {} (tcp.stream eq {}): {} -> {}, {protocol}, frames {first}-{last} ({} segments){state}",
        conn.index,
        conn.index,
        conn.client,
        conn.server,
        frames.len(),
    );
    for dir in [Direction::ClientToServer, Direction::ServerToClient] {
        let s = conn.stream(dir);
        for g in &s.gaps {
            let _ = writeln!(
                out,
                "  note: {} bytes of the {} stream at offset {} were not captured",
                g.end - g.start,
                if dir == Direction::ClientToServer {
                    "client's"
                } else {
                    "server's"
                },
                g.start
            );
        }
    }
    let units: Vec<&Unit> = conn
        .units
        .iter()
        .filter_map(|&u| analyzer.units().get(u))
        .collect();
    if units.is_empty() && !packets {
        let _ = writeln!(out, "  (no protocol units)");
        return;
    }
    // Each unit is printed after the frame that completed it.
    let mut after_frame: BTreeMap<usize, Vec<&Unit>> = BTreeMap::new();
    for u in &units {
        let key = u.carriers.iter().map(|c| c.frame).max().unwrap_or(0);
        after_frame.entry(key).or_default().push(u);
    }
    let mut previous: Option<&Unit> = None;
    if packets {
        for &f in &frames {
            packet_line(out, analyzer, f);
            for u in after_frame.remove(&f).unwrap_or_default() {
                unit_line(out, analyzer, u, previous);
                tls_lines(out, analyzer, conn, u, tls);
                previous = Some(u);
            }
        }
    }
    for u in after_frame.into_values().flatten() {
        unit_line(out, analyzer, u, previous);
        tls_lines(out, analyzer, conn, u, tls);
        previous = Some(u);
    }
}

/// Under a TLS record (when a key log was given): what became of it, and each command or
/// reply decrypted from data that ended in it, marked "decrypted".
fn tls_lines(
    out: &mut String,
    analyzer: &Analyzer,
    conn: &Connection,
    u: &Unit,
    tls: Option<&TlsDecryption>,
) {
    let Some(c) = tls.and_then(|t| t.connection(conn.index)) else {
        return;
    };
    if u.kind != UnitKind::Tls {
        return;
    }
    // The unit's index: units are kept in one list, so its place in it.
    let Some(index) = analyzer
        .units()
        .as_ptr_range()
        .contains(&std::ptr::from_ref(u))
        .then(|| {
            (std::ptr::from_ref(u) as usize - analyzer.units().as_ptr() as usize)
                / std::mem::size_of::<Unit>().max(1)
        })
    else {
        return;
    };
    let Some(record) = c.record(index) else {
        return;
    };
    let fate = match &record.outcome {
        RecordOutcome::Clear(what) => format!("in clear: {what}"),
        RecordOutcome::Decrypted { content, keys } => {
            format!("decrypted with the {keys}: {content}")
        }
        RecordOutcome::NotDecrypted(why) => format!("not decrypted: {why}"),
    };
    let _ = writeln!(out, "       tls: {fate}");
    for (_, d) in c.units_ending_in(index) {
        let mut attrs = vec![d.kind.name().to_string()];
        if d.multi_line {
            attrs.push(format!(
                "multi-line, {}",
                plural(u64::from(d.lines), "line")
            ));
        }
        attrs.push(format!(
            "decrypted from TLS, frames {}",
            frame_list(&d.frames)
        ));
        let _ = writeln!(
            out,
            "  {}: [decrypted] {:<22} [{}]",
            d.direction.speaker(),
            d.text,
            attrs.join(", ")
        );
        for n in &d.notes {
            let _ = writeln!(out, "       note: {n}");
        }
    }
}

fn packet_line(out: &mut String, analyzer: &Analyzer, f: usize) {
    if let Some(line) = segment_line(analyzer, f) {
        let _ = writeln!(out, "    {line}");
    }
}

/// One line for a TCP segment: `#12    C->S [PSH, ACK] seq=1 ack=40 win=512 len=12`, with
/// relative sequence numbers and the calculated (scaled) window, as Wireshark shows them;
/// `None` for frames that are not TCP segments.
pub fn segment_line(analyzer: &Analyzer, f: usize) -> Option<String> {
    let frame = analyzer.frames().get(f)?;
    let (Some(tcp), Some(seg)) = (frame.summary.tcp, frame.segment) else {
        return None;
    };
    let arrow = match seg.direction {
        Direction::ClientToServer => "C->S",
        Direction::ServerToClient => "S->C",
    };
    let ack = if tcp.flags.has(TcpFlags::ACK) {
        format!(" ack={}", seg.rel_ack)
    } else {
        String::new()
    };
    let notes = seg.notes.describe();
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", notes.join("; "))
    };
    Some(format!(
        "#{:<5} {arrow} [{}] seq={}{ack} win={} len={}{notes}",
        f + 1,
        tcp.flags,
        seg.rel_seq,
        seg.window.unwrap_or(u32::from(tcp.window)),
        tcp.payload_len + tcp.payload_missing
    ))
}

pub(crate) fn unit_line(out: &mut String, analyzer: &Analyzer, u: &Unit, previous: Option<&Unit>) {
    let mut attrs: Vec<String> = Vec::new();
    match u.kind {
        UnitKind::Command | UnitKind::Reply => {}
        UnitKind::MailContent => attrs.push(format!(
            "message content, {}, {} bytes",
            plural(u64::from(u.lines), "line"),
            u.len()
        )),
        other => attrs.push(other.name().to_string()),
    }
    if u.multi_line {
        attrs.push(format!(
            "multi-line, {}",
            plural(u64::from(u.lines), "line")
        ));
    }
    if let Some(cmd) = u.reply_to.and_then(|i| analyzer.units().get(i))
        && previous.is_none_or(|p| !std::ptr::eq(p, cmd))
    {
        let word: String = cmd
            .text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .chars()
            .take(16)
            .collect();
        let what = if cmd.kind == UnitKind::MailContent {
            "message content".to_string()
        } else {
            word
        };
        attrs.push(format!("reply to {what}"));
    }
    let frames = u.frames();
    attrs.push(if frames.is_empty() {
        "no frames".to_string()
    } else {
        format!("frames {}", frame_list(&frames))
    });
    let text = &u.text;
    let _ = writeln!(
        out,
        "  {}: {text:<32} [{}]",
        u.direction.speaker(),
        attrs.join(", ")
    );
    for n in &u.notes {
        let _ = writeln!(out, "       note: {n}");
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn render_other_frames(out: &mut String, analyzer: &Analyzer) {
    let mut by_protocol: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, f) in analyzer.frames().iter().enumerate() {
        if let Some(e) = &f.summary.error {
            errors.push(format!("  frame {}: {e}", i + 1));
        }
        if f.segment.is_some() {
            continue;
        }
        let what = match (&f.summary.ip, &f.summary.tcp) {
            (Some(ip), _) if ip.fragment => "IP fragments (not reassembled)".to_string(),
            (Some(ip), _) => match ip.protocol {
                6 => "TCP with an undecodable header".to_string(),
                17 => "UDP".to_string(),
                1 => "ICMP".to_string(),
                58 => "ICMPv6".to_string(),
                p => format!("IP protocol {p}"),
            },
            (None, _) => "not IP".to_string(),
        };
        *by_protocol.entry(what).or_default() += 1;
    }
    if !by_protocol.is_empty() {
        let list: Vec<String> = by_protocol
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let _ = writeln!(
            out,
            "\nOther frames (no TCP connection): {}",
            list.join(", ")
        );
    }
    if !errors.is_empty() {
        let _ = writeln!(out, "\nFrames with decode problems:");
        let shown = errors.len().min(20);
        for e in errors.iter().take(shown) {
            let _ = writeln!(out, "{e}");
        }
        if errors.len() > shown {
            let _ = writeln!(out, "  ... and {} more", errors.len() - shown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lists_are_one_based_with_runs() {
        assert_eq!(frame_list(&[3]), "4");
        assert_eq!(frame_list(&[7, 8]), "8-9");
        assert_eq!(frame_list(&[3, 5, 6, 7, 8]), "4, 6-9");
        assert_eq!(frame_list(&[]), "");
    }
}
