//! `mailwire open`: reads every reference capture without error, prints transcripts with
//! frame numbers (checked against a committed golden file for a generated capture), lists
//! segments with `--packets`, and names the file and libpcap's words when a file is bad.
// Test code: a failed lookup or index is a test failure, which is what a panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common::TempFile;
use crate::decode_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use decode_support::*;
use mailwire::capture::LinkType;

fn mailwire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailwire"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn reference(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference-captures")
        .join(name);
    if p.exists() {
        Some(p)
    } else {
        println!("SKIPPED: {} is not here", p.display());
        None
    }
}

/// A POP3 session and an SMTP session with pipelining, on loopback Ethernet.
fn demo_capture() -> Vec<mailwire::capture::CapturedPacket> {
    let mut frames = Vec::new();
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n");
    c.client(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n");
    c.server(b"+OK mrose's maildrop has 2 messages (320 octets)\r\n");
    c.client(b"ST");
    c.client(b"AT\r\n");
    c.server(b"+OK 2 320\r\n");
    c.client(b"LIST\r\n");
    c.server(b"+OK 2 messages (320 octets)\r\n");
    c.server(b"1 120\r\n2 200\r\n.\r\n");
    c.client(b"QUIT\r\n");
    c.server(b"+OK dewey POP3 server signing off (maildrop empty)\r\n");
    c.close();
    frames.extend(c.frames);
    let mut s = Conversation::new(LinkType::ETHERNET, 40001, 2525);
    s.ts = 1_700_000_100_000_000;
    s.handshake();
    s.server(b"220 localhost ESMTP mailwire\r\n");
    s.client(b"EHLO client\r\n");
    s.server(b"250-localhost\r\n250 PIPELINING\r\n");
    s.client(b"MAIL FROM:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n");
    s.server(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    s.client(b"Subject: hello\r\n\r\nHi Bob.\r\n.\r\n");
    s.server(b"250 2.0.0 Ok: delivered\r\n");
    s.client(b"QUIT\r\n");
    s.server(b"221 2.0.0 Bye\r\n");
    s.close();
    frames.extend(s.frames);
    frames
}

fn write_demo(file: &TempFile) {
    let mut out = std::fs::File::create(&file.0).unwrap();
    write_pcap(&mut out, LinkType::ETHERNET, &demo_capture()).unwrap();
}

#[test]
fn transcript_matches_the_golden_file() {
    let file = TempFile::new("demo.pcap");
    write_demo(&file);
    let path = file.0.to_str().unwrap();
    for (args, golden) in [
        (vec!["open", path], "tests/decode_golden/demo.txt"),
        (
            vec!["open", path, "--packets"],
            "tests/decode_golden/demo-packets.txt",
        ),
    ] {
        let o = mailwire(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o).replace(path, "demo.pcap");
        let golden_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(golden);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden_path, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&golden_path).unwrap_or_default();
        assert_eq!(
            text, expected,
            "differs from {golden} (UPDATE_GOLDEN=1 rewrites it)"
        );
    }
}

#[test]
fn summary_only_prints_totals() {
    let file = TempFile::new("demo-summary.pcap");
    write_demo(&file);
    let o = mailwire(&["open", file.0.to_str().unwrap(), "--summary-only"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains(": 32 frames, 2 TCP connections, 22 units;"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1);
}

#[test]
fn every_reference_capture_opens() {
    let Some(dir) = reference("") else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.to_string_lossy().to_string();
        if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
            continue;
        }
        for extra in [None, Some("--packets")] {
            let mut args = vec!["open", name.as_str()];
            args.extend(extra);
            let o = mailwire(&args);
            assert!(o.status.success(), "{name}: {}", stderr(&o));
            assert!(
                stdout(&o).contains("Connection 0 (tcp.stream eq 0)"),
                "{name}"
            );
        }
        n += 1;
    }
    assert!(n > 0, "no capture files found");
}

#[test]
fn reference_transcripts_say_what_happened() {
    if let Some(p) = reference("zeek_pop3_bad-list-retr-crafted.pcap") {
        let out = stdout(&mailwire(&["open", p.to_str().unwrap()]));
        assert!(out.contains("  S: +OK 2 messages (320 octets)      [multi-line, 3 lines, reply to LIST, frames 10, 12, 14]"), "{out}");
        assert!(out.contains("note: unterminated: no \".\" line before the next reply began"));
        assert!(out.contains("  S: +OK bye                          [frames 35]"));
    }
    if let Some(p) = reference("sv_smtp-pipelining.pcap") {
        let out = stdout(&mailwire(&["open", p.to_str().unwrap(), "--packets"]));
        assert!(out.contains("link type NULL/loopback (0)"));
        assert!(
            out.contains("  C: RCPT TO:<john.doe@example.com>   [frames 11]"),
            "{out}"
        );
        assert!(out.contains("  C: This is a test                   [message content, 1 line, 19 bytes, frames 11]"), "{out}");
        assert!(out.contains("  S: 250 2.1.0 Ok                     [reply to MAIL, frames 13]"));
        assert!(
            out.contains("    #1     C->S [SYN] seq=0 win=65535 len=0"),
            "{out}"
        );
        assert!(out.contains("    #2     S->C [SYN, ACK] seq=0 ack=1 win=65535 len=0"));
    }
    if let Some(p) = reference("zeek_smtp_smtp-bdat-cmd-invalid.pcapng") {
        let out = stdout(&mailwire(&["open", p.to_str().unwrap()]));
        assert!(out.contains("  C: BDAT 1234 SCRAMBLE"), "{out}");
        assert!(out.contains("  S: 521 5.5.4 Syntax: BDAT count [LAST]"));
    }
    if let Some(p) = reference("zeek_tls_pop3-starttls.pcap") {
        let out = stdout(&mailwire(&["open", p.to_str().unwrap()]));
        assert!(
            out.contains(
                "  C: TLS handshake record, 517 bytes (version 3.1) [TLS record, frames 11]"
            ),
            "{out}"
        );
    }
}

#[test]
fn a_truncated_file_prints_what_was_read_then_the_error() {
    let file = TempFile::new("cut.pcap");
    let mut bytes = Vec::new();
    write_pcap(&mut bytes, LinkType::ETHERNET, &demo_capture()).unwrap();
    bytes.truncate(bytes.len() - 20);
    std::fs::write(&file.0, &bytes).unwrap();
    let o = mailwire(&["open", file.0.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot read packet 32 of the capture file {}",
            file.0.display()
        )),
        "{err}"
    );
    assert!(err.contains("libpcap says \"truncated dump file"), "{err}");
    // Where the cut record starts: the file header, then 31 records of 16 + length bytes.
    let frames = demo_capture();
    let start: usize = 24
        + frames
            .iter()
            .take(31)
            .map(|p| 16 + p.data.len())
            .sum::<usize>();
    assert!(
        err.contains(&format!(
            "its record starts at byte {start} of the {}-byte file, which ends {} bytes later",
            bytes.len(),
            bytes.len() - start
        )),
        "{err}"
    );
    assert!(
        stdout(&o).contains("C: QUIT"),
        "what was read is still shown"
    );
}

#[test]
fn a_file_that_is_not_a_capture_is_refused_with_libpcaps_words() {
    let file = TempFile::new("notes.txt");
    std::fs::write(
        &file.0,
        b"these are not packets, just some notes for the lab report",
    )
    .unwrap();
    let o = mailwire(&["open", file.0.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot read the capture file {}: libpcap says \"",
            file.0.display()
        )),
        "{err}"
    );
    assert!(err.contains("unknown file format"), "{err}");

    let o = mailwire(&["open", "/nonexistent/capture.pcap"]);
    assert!(
        stderr(&o).contains("cannot read the capture file /nonexistent/capture.pcap: libpcap says"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("No such file or directory"));
}
