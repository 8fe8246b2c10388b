//! The reassembled streams of every reference capture agree byte for byte with Wireshark's
//! "Follow TCP stream" (`tshark -q -z follow,tcp,raw,N`), and our connection numbers are
//! tshark's `tcp.stream` numbers, frame by frame. Streams are compared as bytes, not as
//! tshark's per-packet command dissection (which mis-splits pipelined and split commands).
//!
//! Reads the captures from ../shared/reference-captures (never copied into the project);
//! says plainly that it skipped if that folder or tshark is missing.
// Test code: a failed lookup or index is a test failure, which is what a panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mailwire::capture::CapturedPacket;
use mailwire::capture::file::read_all;
use mailwire::decode::{Analyzer, TcpFlags};
use mailwire::proto::Direction;

fn reference_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference-captures");
    dir.is_dir().then_some(dir)
}

fn tshark_works() -> bool {
    Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The reference captures' folder when it and tshark are both here; otherwise says which
/// is missing (the test then skips).
fn captures_and_tshark() -> Option<PathBuf> {
    let Some(dir) = reference_dir() else {
        println!("SKIPPED: ../shared/reference-captures is not here");
        return None;
    };
    if !tshark_works() {
        println!("SKIPPED: tshark is not installed");
        return None;
    }
    Some(dir)
}

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".pcap") || name.ends_with(".pcapng")
        })
        .collect();
    files.sort();
    files
}

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// tshark's `fields` for every TCP segment of `file` (not the TCP headers quoted inside
/// ICMP errors): the frame number and the fields' first values, in order.
fn tcp_fields(file: &Path, fields: &[&str]) -> Vec<(usize, Vec<String>)> {
    let mut args = vec![
        "-r",
        file.to_str().unwrap(),
        "-T",
        "fields",
        "-E",
        "occurrence=f",
    ];
    for f in ["frame.number", "icmp.type"].iter().chain(fields) {
        args.extend(["-e", f]);
    }
    args.extend(["-Y", "tcp"]);
    tshark(&args)
        .lines()
        .map(|line| line.split('\t').map(str::to_string).collect::<Vec<_>>())
        .filter(|cols| cols[1].is_empty())
        .map(|cols| (cols[0].parse().unwrap(), cols[2..].to_vec()))
        .collect()
}

fn hex(text: &str) -> Vec<u8> {
    let bytes = text.trim().as_bytes();
    bytes
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// tshark's streams: stream index -> (node address -> bytes that node sent).
fn tshark_streams(file: &Path, count: usize) -> HashMap<usize, HashMap<String, Vec<u8>>> {
    let path = file.to_str().unwrap();
    let mut args = vec!["-r", path, "-q"];
    let specs: Vec<String> = (0..count).map(|n| format!("follow,tcp,raw,{n}")).collect();
    for s in &specs {
        args.push("-z");
        args.push(s);
    }
    let out = tshark(&args);
    let mut result = HashMap::new();
    let mut stream = None;
    let mut nodes: [String; 2] = Default::default();
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("Filter: tcp.stream eq ") {
            stream = Some(n.trim().parse::<usize>().unwrap());
            result.insert(stream.unwrap(), HashMap::new());
        } else if let Some(a) = line.strip_prefix("Node 0: ") {
            nodes[0] = a.trim().to_string();
        } else if let Some(a) = line.strip_prefix("Node 1: ") {
            nodes[1] = a.trim().to_string();
        } else if line.starts_with("====") || line.starts_with("Follow:") || line.trim().is_empty()
        {
            continue;
        } else if let Some(n) = stream {
            let (node, data) = match line.strip_prefix('\t') {
                Some(rest) => (&nodes[1], rest),
                None => (&nodes[0], line),
            };
            let entry: &mut HashMap<String, Vec<u8>> = result.get_mut(&n).unwrap();
            entry.entry(node.clone()).or_default().extend(hex(data));
        }
    }
    result
}

fn analyze(packets: &[CapturedPacket]) -> Analyzer {
    let mut a = Analyzer::new();
    for p in packets {
        a.push(p);
    }
    a.finish();
    a
}

#[test]
fn streams_agree_with_tshark_follow_tcp() {
    let Some(dir) = captures_and_tshark() else {
        return;
    };
    let mut compared = 0;
    for file in captures(&dir) {
        let packets = read_all(&file).unwrap();
        let analyzer = analyze(&packets);
        let name = file.file_name().unwrap().to_string_lossy().to_string();

        // Connection numbers = tshark's tcp.stream, frame by frame.
        let fields = tshark(&[
            "-r",
            file.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "tcp.stream",
        ]);
        for (i, line) in fields.lines().enumerate() {
            let frame = &analyzer.frames()[i];
            if frame.summary.ip.is_none_or(|ip| ip.protocol != 6) {
                // tshark also numbers the TCP header quoted inside an ICMP error; that is not
                // a segment of the connection.
                assert!(frame.segment.is_none());
                continue;
            }
            let ours = frame.segment.map(|s| s.conn as usize);
            let theirs = line.trim().parse::<usize>().ok();
            assert_eq!(
                ours,
                theirs,
                "{name}: frame {} is in stream {theirs:?} for tshark",
                i + 1
            );
        }

        let conns = analyzer.connections();
        let theirs = tshark_streams(&file, conns.len());
        for conn in conns {
            let data = |i: usize| packets.get(i).map(|p| p.data.as_slice());
            for (dir, addr) in [
                (Direction::ClientToServer, conn.client),
                (Direction::ServerToClient, conn.server),
            ] {
                let ours = analyzer.stream_bytes(conn.index, dir, data);
                let expected = theirs
                    .get(&conn.index)
                    .and_then(|nodes| nodes.get(&addr.to_string()))
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    ours == expected,
                    "{name}: stream {} from {addr}: we have {} bytes, tshark {} (first difference at {:?})",
                    conn.index,
                    ours.len(),
                    expected.len(),
                    ours.iter().zip(&expected).position(|(a, b)| a != b)
                );
                assert!(
                    conn.stream(dir).gaps.is_empty(),
                    "{name}: stream {} has gaps",
                    conn.index
                );
                compared += 1;
            }
        }
        println!("{name}: {} connections agree with tshark", conns.len());
    }
    assert!(compared > 0);
}

#[test]
fn relative_numbers_and_scaled_windows_agree_with_tshark() {
    let Some(dir) = captures_and_tshark() else {
        return;
    };
    let (mut compared, mut scaled, mut unknown) = (0, 0, 0);
    for file in captures(&dir) {
        let packets = read_all(&file).unwrap();
        let analyzer = analyze(&packets);
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let fields = [
            "tcp.seq",
            "tcp.ack",
            "tcp.window_size",
            "tcp.window_size_scalefactor",
        ];
        for (number, cols) in tcp_fields(&file, &fields) {
            let frame = &analyzer.frames()[number - 1];
            let seg = frame.segment.unwrap();
            let tcp = frame.summary.tcp.unwrap();
            let at = format!("{name}: frame {number}");
            assert_eq!(seg.rel_seq.to_string(), cols[0], "{at}: relative seq");
            if tcp.flags.has(TcpFlags::ACK) {
                assert_eq!(seg.rel_ack.to_string(), cols[1], "{at}: relative ack");
            }
            let window = seg.window.unwrap_or(u32::from(tcp.window));
            assert_eq!(window.to_string(), cols[2], "{at}: calculated window");
            // -1: tshark does not know the scale (a SYN was not captured).
            assert_eq!(seg.window.is_none(), cols[3] == "-1", "{at}: scale known");
            scaled += usize::from(seg.window.is_some_and(|w| w != u32::from(tcp.window)));
            unknown += usize::from(seg.window.is_none());
            compared += 1;
        }
    }
    println!("{compared} segments agree ({scaled} with a scaled window, {unknown} unknown)");
    assert!(compared > 0 && scaled > 0 && unknown > 0);
}

#[test]
fn frames_cut_by_a_snapshot_length_keep_their_lengths_and_leave_gaps() {
    let Some(dir) = captures_and_tshark() else {
        return;
    };
    let tmp = crate::common::TempDir::new("snaplen");
    let mut cut_frames = 0;
    for file in captures(&dir) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        // editcap (Wireshark's) keeps the first 70 bytes of every frame, as `tcpdump -s 70`.
        let cut = tmp.path().join(&name);
        let status = Command::new("editcap")
            .args(["-s", "70"])
            .arg(&file)
            .arg(&cut)
            .status()
            .unwrap();
        assert!(status.success(), "editcap failed on {name}");
        let whole = analyze(&read_all(&file).unwrap());
        let packets = read_all(&cut).unwrap();
        let analyzer = analyze(&packets);
        for (number, cols) in tcp_fields(&cut, &["tcp.len"]) {
            let i = number - 1;
            let frame = &analyzer.frames()[i];
            let Some(tcp) = frame.summary.tcp else {
                // The cut went through the TCP header: an error that says so.
                let e = frame.summary.error.as_ref().unwrap();
                assert!(
                    e.to_string().contains("TCP header"),
                    "{name} #{number}: {e}"
                );
                continue;
            };
            let at = format!("{name}: frame {number}");
            assert_eq!(
                (tcp.payload_len + tcp.payload_missing).to_string(),
                cols[0],
                "{at}: TCP length"
            );
            // Cutting a frame is not an error of the frame.
            if whole.frames()[i].summary.error.is_none() {
                assert!(
                    frame.summary.error.is_none(),
                    "{at}: {:?}",
                    frame.summary.error
                );
            }
            cut_frames += usize::from(tcp.payload_missing > 0);
        }
        // Every byte sent is either captured or in a gap.
        for (conn, whole_conn) in analyzer.connections().iter().zip(whole.connections()) {
            for d in [Direction::ClientToServer, Direction::ServerToClient] {
                let captured: u64 = conn.stream(d).pieces.iter().map(|p| u64::from(p.len)).sum();
                let missing: u64 = conn.stream(d).gaps.iter().map(|g| g.end - g.start).sum();
                let sent: u64 = whole_conn
                    .stream(d)
                    .pieces
                    .iter()
                    .map(|p| u64::from(p.len))
                    .sum();
                let whole_gaps: u64 = whole_conn
                    .stream(d)
                    .gaps
                    .iter()
                    .map(|g| g.end - g.start)
                    .sum();
                assert_eq!(
                    captured + missing,
                    sent + whole_gaps,
                    "{name}: stream {} {d:?}",
                    conn.index
                );
            }
        }
    }
    println!("{cut_frames} frames were cut");
    assert!(cut_frames > 0);
}

#[test]
fn unit_bytes_tile_each_stream() {
    // Every byte of every POP3/SMTP stream belongs to exactly one unit, in order.
    let Some(dir) = reference_dir() else {
        println!("SKIPPED: ../shared/reference-captures is not here");
        return;
    };
    for file in captures(&dir) {
        let packets = read_all(&file).unwrap();
        let analyzer = analyze(&packets);
        for conn in analyzer.connections() {
            if conn.mail_protocol().is_none() {
                continue;
            }
            for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                let mut ranges: Vec<_> = conn
                    .units
                    .iter()
                    .map(|&u| &analyzer.units()[u])
                    .filter(|u| u.direction == dir)
                    .map(|u| u.stream.clone())
                    .collect();
                ranges.sort_by_key(|r| r.start);
                let mut at = 0;
                for r in &ranges {
                    assert_eq!(
                        r.start,
                        at,
                        "{}: conn {} {dir:?}: units leave a hole or overlap",
                        file.display(),
                        conn.index
                    );
                    at = r.end;
                }
                assert_eq!(
                    at,
                    conn.stream(dir).delivered(),
                    "{}: conn {} {dir:?}: units do not reach the end",
                    file.display(),
                    conn.index
                );
            }
        }
    }
}
