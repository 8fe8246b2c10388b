//! The pcapng export, read back by tshark, capinfos and libpcap: built-in scenarios are run
//! on real sockets with live capture on loopback, exported, and the file must open without
//! error, keep every frame's bytes and time, give every frame a comment naming its step,
//! let tshark dissect POP3 and SMTP (with the `-d tcp.port==N,...` the section comment
//! gives), hold no malformed packet, and show the section comment and interface.
//!
//! Needs CAP_NET_RAW (root in CI) and tshark (scripts/setup.sh installs it); without either
//! the test says plainly that it skipped and why. Set MAILWIRE_EXPORT_DIR to keep the files.

// Helpers fail the test the way an assert does.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use mailwire::export::{ExportHints, write_pcapng};
use mailwire::scenario::format;
use mailwire::timeline::Timeline;

/// Runs a built-in scenario with capture; `None` (after saying why) when it cannot capture.
fn record(name: &str) -> Option<Timeline> {
    let t = common::record_with_capture(name, &format!("export of {name}"))?;
    common::assert_every_step_passed(name, &t);
    assert!(!t.packets.is_empty(), "{name}: packets were captured");
    Some(t)
}

fn tools_present() -> bool {
    let ok = |tool: &str, arg: &str| {
        Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok("tshark", "-v") && ok("capinfos", "-v") {
        return true;
    }
    eprintln!("SKIPPED: tshark or capinfos is not installed (scripts/setup.sh installs tshark)");
    false
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Where to write: MAILWIRE_EXPORT_DIR if set (the files are kept), else a temp folder.
fn out_dir() -> (Option<common::TempDir>, PathBuf) {
    match std::env::var_os("MAILWIRE_EXPORT_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            (None, dir)
        }
        None => {
            let tmp = common::TempDir::new("export");
            let dir = tmp.path().to_path_buf();
            (Some(tmp), dir)
        }
    }
}

/// tshark's `-d` options for the export (as the section comment tells the reader).
fn decode_as(t: &Timeline) -> Vec<String> {
    ExportHints::from_timeline(t)
        .tshark_decode_as()
        .into_iter()
        .flat_map(|d| ["-d".to_string(), d])
        .collect()
}

/// One tshark field per frame, in frame order (`-E occurrence=a`, joined with `;`).
fn fields(file: &Path, t: &Timeline, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args: Vec<String> = vec!["-r".into(), file.to_str().unwrap().into()];
    args.extend(decode_as(t));
    args.extend(
        [
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=;",
        ]
        .map(String::from),
    );
    for f in fields {
        args.push("-e".into());
        args.push((*f).into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("tshark", &args)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// The checks every export must pass; returns the frame comments.
fn check_export(name: &str, t: &Timeline, file: &Path) -> Vec<String> {
    write_pcapng(t, file, &ExportHints::default()).unwrap();

    // libpcap reads back the same frames: bytes, lengths, times, link type.
    let back = mailwire::capture::file::read_all(file).unwrap();
    assert_eq!(back.len(), t.packets.len(), "{name}: frame count");
    for (i, (a, b)) in t.packets.iter().zip(&back).enumerate() {
        assert_eq!(a, b, "{name}: frame {} differs after the round trip", i + 1);
    }

    // tshark: every frame has a comment that names its step.
    let rows = fields(file, t, &["frame.number", "frame.comment"]);
    assert_eq!(
        rows.len(),
        t.packets.len(),
        "{name}: tshark sees every frame"
    );
    let comments: Vec<String> = rows
        .iter()
        .map(|r| r.get(1).cloned().unwrap_or_default())
        .collect();
    for (i, c) in comments.iter().enumerate() {
        assert!(
            c.starts_with("step "),
            "{name}: frame {} comment {c:?}",
            i + 1
        );
    }
    for s in 1..=t.steps.len() {
        let prefix = format!("step {s}: ");
        assert!(
            comments
                .iter()
                .any(|c| c.starts_with(&prefix) || c.contains(&format!("|| {prefix}"))),
            "{name}: no frame names step {s}"
        );
    }

    // Nothing malformed, and no expert error.
    let mut args: Vec<String> = vec!["-r".into(), file.to_str().unwrap().into()];
    args.extend(decode_as(t));
    args.extend(
        [
            "-Y",
            "_ws.malformed || _ws.expert.severity >= error",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.expert.message",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let flagged = run("tshark", &args);
    assert!(
        flagged.trim().is_empty(),
        "{name}: tshark flags these frames (number, messages):\n{flagged}"
    );

    // The section comment and the interface, as capinfos shows them.
    let info = run("capinfos", &[file.to_str().unwrap()]);
    assert!(
        info.contains(&t.title),
        "{name}: the title is in the capture comment:\n{info}"
    );
    assert!(
        info.contains("loopback, captured by mailwire"),
        "{name}: interface description:\n{info}"
    );
    assert!(
        info.contains("microseconds"),
        "{name}: microsecond timestamps:\n{info}"
    );
    for d in ExportHints::from_timeline(t).tshark_decode_as() {
        assert!(
            info.contains(&d),
            "{name}: the capture comment tells tshark's -d {d}:\n{info}"
        );
    }
    comments
}

/// Distinct values of one command field, over all frames.
fn commands(rows: &[Vec<String>], column: usize) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get(column))
        .flat_map(|c| c.split(';'))
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn rfc1939_export_opens_in_tshark_with_comments_and_pop3_dissected() {
    if !tools_present() {
        return;
    }
    let Some(t) = record("rfc1939") else { return };
    let (_tmp, dir) = out_dir();
    let file = dir.join("rfc1939.pcapng");
    let comments = check_export("rfc1939", &t, &file);

    let rows = fields(&file, &t, &["frame.number", "pop.request.command"]);
    let pop = commands(&rows, 1);
    for c in ["APOP", "STAT", "LIST", "RETR", "DELE", "QUIT"] {
        assert!(
            pop.contains(&c.to_string()),
            "tshark dissected {pop:?}, not {c}"
        );
    }
    // The handshake frames say so, within the first step.
    assert!(comments[0].starts_with("step 1: "), "{}", comments[0]);
    assert!(comments[0].contains("SYN"), "{}", comments[0]);
    // The frame that carried APOP says so.
    assert!(
        comments
            .iter()
            .any(|c| c.contains("C: APOP mrose c4c9334bac560ecc979e58001b3e22fb")),
        "{comments:#?}"
    );
    assert!(
        comments.iter().any(|c| c.contains("FIN")),
        "teardown commented"
    );
}

#[test]
fn pipelining_export_lists_every_command_a_frame_carried() {
    if !tools_present() {
        return;
    }
    let Some(t) = record("pipelining") else {
        return;
    };
    let (_tmp, dir) = out_dir();
    let file = dir.join("pipelining.pcapng");
    let comments = check_export("pipelining", &t, &file);

    // USER, PASS and STAT went in one segment: its comment lists all three.
    let frame = t.unit(1, 0).unwrap().frames()[0];
    let c = &comments[frame];
    for cmd in ["C: USER alice", "C: PASS wonderland", "C: STAT"] {
        assert!(c.contains(cmd), "frame {}: {c}", frame + 1);
    }
    // The RETR reply spans many segments: each says which part it is.
    let retr = t.unit(3, 1).unwrap().frames();
    assert!(
        comments[retr[1]].contains("[part 2 of"),
        "{}",
        comments[retr[1]]
    );

    let rows = fields(&file, &t, &["frame.number", "smtp.req.command"]);
    let smtp = commands(&rows, 1);
    for c in ["EHLO", "MAIL", "QUIT"] {
        assert!(
            smtp.contains(&c.to_string()),
            "tshark dissected {smtp:?}, not {c}"
        );
    }
}

#[test]
fn assignment_export_names_both_ports_and_both_protocols_are_dissected() {
    if !tools_present() {
        return;
    }
    let Some(t) = record("assignment") else {
        return;
    };
    let (_tmp, dir) = out_dir();
    let file = dir.join("assignment.pcapng");
    check_export("assignment", &t, &file);

    let hints = ExportHints::from_timeline(&t);
    assert_eq!(hints.pop3_ports.len(), 1, "{hints:?}");
    assert_eq!(hints.smtp_ports.len(), 1, "{hints:?}");

    let rows = fields(
        &file,
        &t,
        &["frame.number", "pop.request.command", "smtp.req.command"],
    );
    let pop = commands(&rows, 1);
    let smtp = commands(&rows, 2);
    for c in ["USER", "PASS", "STAT", "LIST", "RETR", "DELE", "QUIT"] {
        assert!(pop.contains(&c.to_string()), "POP3 {pop:?} lacks {c}");
    }
    for c in ["HELO", "MAIL", "RCPT", "DATA", "QUIT"] {
        assert!(smtp.contains(&c.to_string()), "SMTP {smtp:?} lacks {c}");
    }

    // The section comment as the crate reads it back, and the interface's options.
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionOption, InterfaceTsResolution,
    };
    use pcap_file::pcapng::blocks::opt_common::CommonOption;
    use pcap_file::pcapng::blocks::section_header::SectionHeaderOption;
    let mut reader =
        pcap_file::pcapng::PcapNgReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    while let Some(block) = reader.next_block() {
        block.unwrap();
    }
    let comment = reader
        .section()
        .options
        .iter()
        .find_map(|o| match o {
            SectionHeaderOption::Common(CommonOption::Comment(c)) => Some(c.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(comment.contains("The mail assignment"), "{comment}");
    assert!(
        comment.contains(&format!("POP3 on TCP port {}", hints.pop3_ports[0])),
        "{comment}"
    );
    assert!(
        comment.contains(&format!("SMTP on TCP port {}", hints.smtp_ports[0])),
        "{comment}"
    );
    assert!(comment.contains("Decode As"), "{comment}");
    let idb = &reader.interfaces()[0];
    assert!(
        idb.options
            .contains(&InterfaceDescriptionOption::IfName("lo".into()))
            || !cfg!(target_os = "linux")
    );
    assert!(idb.options.contains(&InterfaceDescriptionOption::IfTsResol(
        InterfaceTsResolution::MICRO
    )));
    assert_eq!(u32::from(idb.linktype), t.packets[0].link_type.0 as u32);
}

#[test]
fn an_unwritable_path_is_an_error_naming_the_file() {
    // Needs no capture: an empty timeline is refused, naming the file and why.
    let t = Timeline::new("nothing");
    let path = Path::new("/nonexistent-folder/out.pcapng");
    let err = write_pcapng(&t, path, &ExportHints::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/nonexistent-folder/out.pcapng"), "{text}");
    assert!(text.contains("no captured packets"), "{text}");

    let Some(t) = record("rfc1939") else { return };
    let err = write_pcapng(&t, path, &ExportHints::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot write /nonexistent-folder/out.pcapng"),
        "{text}"
    );
}

#[test]
fn every_builtin_scenario_exports_with_a_comment_on_every_frame() {
    if !tools_present() {
        return;
    }
    let (_tmp, dir) = out_dir();
    for (name, _) in format::BUILTIN {
        let Some(t) = record(name) else { return };
        check_export(name, &t, &dir.join(format!("{name}.pcapng")));
    }
}
