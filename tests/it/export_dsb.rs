//! TLS secrets in exported pcapng files (a Decryption Secrets Block, secrets type TLSK).
//!
//! A real TLS session: `mailwire serve` with `SSLKEYLOGFILE` set, Python's poplib (STLS,
//! then USER/PASS) and smtplib (STARTTLS, then AUTH) with their own key log file
//! (`SSLContext.keylog_filename`), captured live on lo by `mailwire watch --keylog`. tshark
//! then shows the commands sent inside TLS from the export alone; `editcap
//! --discard-all-secrets` takes the block out and tshark shows nothing after STLS;
//! `mailwire open --keylog --pcap` puts the client's secrets back in; mailwire reads the
//! secrets back. Hand-made files with damaged blocks are read, with a warning that says
//! where.
//!
//! The live part needs capture rights on the real loopback (root or CAP_NET_RAW); without
//! them it says so and checks only the files it can make by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{self, MAILWIRE, Spawned, TempDir};
use mailwire::proto::keylog::KeyLog;

const T: Duration = Duration::from_secs(60);

/// `mailwire serve` on a demo data directory in `dir`, free ports, with `SSLKEYLOGFILE`
/// set to `keys`: the child and its POP3 and SMTP ports.
fn serve_logging_keys(dir: &Path, keys: &Path) -> (Spawned, u16, u16) {
    let data = dir.join("data");
    mailwire::store::create_demo(&data).unwrap();
    let mut child = Spawned::new(
        Command::new(MAILWIRE)
            .args(["serve", "--pop3", "127.0.0.1:0", "--smtp", "127.0.0.1:0"])
            .arg("--data")
            .arg(&data)
            .env("SSLKEYLOGFILE", keys)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    for _ in 0..6 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        seen.push_str(&line);
        // "POP3 on 127.0.0.1:N, SMTP on 127.0.0.1:M. Ctrl-C stops."
        if let Some(rest) = line.strip_prefix("POP3 on ") {
            let port = |s: &str| -> u16 {
                let addr = s.split([',', ' ']).next().unwrap().trim_end_matches('.');
                addr.parse::<std::net::SocketAddr>().unwrap().port()
            };
            let (pop3, smtp) = rest.split_once(", SMTP on ").unwrap();
            let (pop3, smtp) = (port(pop3), port(smtp));
            // Keep the pipe drained so the server never blocks on its transcript.
            std::thread::spawn(move || for _ in out.lines() {});
            return (child, pop3, smtp);
        }
    }
    panic!("no address line from mailwire serve:\n{seen}");
}

/// tshark's values of `field` for the packets `filter` shows, one per line.
fn tshark_fields(file: &Path, decode_as: &[String], filter: &str, field: &str) -> Vec<String> {
    let mut args = vec!["-r".to_string(), file.to_str().unwrap().to_string()];
    for d in decode_as {
        args.push("-d".to_string());
        args.push(d.clone());
    }
    args.extend(["-Y", filter, "-T", "fields", "-e", field].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::run_program("tshark", &args, T)
        .lines()
        .flat_map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The Decryption Secrets Blocks of a pcapng file (little-endian, as mailwire and editcap
/// write on this machine): each one's secrets type and secrets.
fn secrets_blocks(file: &Path) -> Vec<(u32, Vec<u8>)> {
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(&bytes[..4], &[0x0a, 0x0d, 0x0d, 0x0a], "not pcapng");
    assert_eq!(
        &bytes[8..12],
        &0x1A2B_3C4Du32.to_le_bytes(),
        "not little-endian"
    );
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut at = 0;
    let mut found = Vec::new();
    while at + 12 <= bytes.len() {
        let (kind, len) = (u32_at(at), u32_at(at + 4) as usize);
        assert!(
            len >= 12 && len % 4 == 0 && at + len <= bytes.len(),
            "block at {at}"
        );
        assert_eq!(
            u32_at(at + len - 4) as usize,
            len,
            "trailer of the block at {at}"
        );
        if kind == 0x0A {
            let secrets_len = u32_at(at + 12) as usize;
            found.push((
                u32_at(at + 8),
                bytes[at + 16..at + 16 + secrets_len].to_vec(),
            ));
        }
        at += len;
    }
    assert_eq!(at, bytes.len());
    found
}

/// capinfos's count of Decryption Secrets Blocks (`-D`; capinfos 4.0 prints no line when
/// there are none).
fn capinfos_secrets(file: &Path) -> usize {
    let out = common::run_program("capinfos", &["-D", file.to_str().unwrap()], T);
    assert!(out.starts_with("File name:"), "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("Number of decryption secrets in file:"))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_watched_stls_and_starttls_session_exports_with_its_secrets_and_tshark_decrypts_it() {
    let dir = TempDir::new("dsb");
    let server_keys = dir.path().join("server-keys.log");
    let client_keys = dir.path().join("client-keys.log");
    let out = dir.path().join("watched.pcapng");
    let (_serve, pop3, smtp) = serve_logging_keys(dir.path(), &server_keys);
    let (pop3_s, smtp_s) = (pop3.to_string(), smtp.to_string());

    let mut watch = Spawned::new(
        Command::new(MAILWIRE)
            .args([
                "watch",
                "--port",
                &pop3_s,
                "--port",
                &smtp_s,
                "--seconds",
                "60",
            ])
            .arg("--pcap")
            .arg(&out)
            .arg("--keylog")
            .arg(&server_keys)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut watch_out = BufReader::new(watch.stdout.take().unwrap());
    let mut banner = String::new();
    watch_out.read_line(&mut banner).unwrap();
    if banner.is_empty() {
        let status = watch.wait_within(T);
        let mut err = String::new();
        watch
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!status.success());
        assert!(err.contains("CAP_NET_RAW"), "{err}");
        println!("SKIPPED the live part: this process may not capture packets: {err}");
        return;
    }
    assert!(banner.starts_with("Watching TCP ports "), "{banner}");

    let script = r#"
import poplib, smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.keylog_filename = sys.argv[3]
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.stls(context=ctx)
p.user("mrose"); p.pass_("tanstaaf"); p.stat(); p.quit()
with smtplib.SMTP("127.0.0.1", int(sys.argv[2]), timeout=20) as m:
    m.starttls(context=ctx)
    m.login("mrose", "tanstaaf")
    m.sendmail("mrose@localhost", ["mrose@localhost"], "Subject: under TLS\r\n\r\nhi\r\n")
"#;
    common::run_program(
        "python3",
        &[
            "-c",
            script,
            &pop3_s,
            &smtp_s,
            client_keys.to_str().unwrap(),
        ],
        T,
    );
    // Loopback packets reach the capture at once; give it a moment, then stop the watch.
    std::thread::sleep(Duration::from_millis(1000));
    watch.signal(libc::SIGTERM);
    let mut seen = String::new();
    watch_out.read_to_string(&mut seen).unwrap();
    let status = watch.wait_within(T);
    assert!(status.success(), "{status}\n{seen}");

    // Both sides logged the two sessions' secrets (TLS 1.3: five lines each).
    let server = KeyLog::parse(&std::fs::read_to_string(&server_keys).unwrap()).unwrap();
    let client = KeyLog::parse(&std::fs::read_to_string(&client_keys).unwrap()).unwrap();
    assert_eq!(server.entries().len(), 10, "{server:?}");
    assert_eq!(client.entries().len(), 10, "{client:?}");
    assert!(
        seen.contains("wrote ") && seen.contains("10 TLS secrets (key log lines) embedded"),
        "{seen}"
    );

    // The export holds one Decryption Secrets Block, of type TLSK, holding the server's
    // secrets (all of them: both sessions are in the capture).
    let blocks = secrets_blocks(&out);
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0].0, 0x544c_534b);
    let embedded = KeyLog::parse(std::str::from_utf8(&blocks[0].1).unwrap()).unwrap();
    let mut want = server.entries().to_vec();
    let mut got = embedded.entries().to_vec();
    want.sort_by(|a, b| (&a.label, &a.client_random).cmp(&(&b.label, &b.client_random)));
    got.sort_by(|a, b| (&a.label, &a.client_random).cmp(&(&b.label, &b.client_random)));
    assert_eq!(got, want);
    assert_eq!(capinfos_secrets(&out), 1);

    // tshark decrypts with no key file: the commands sent inside TLS.
    let decode_as = [
        format!("tcp.port=={pop3},pop"),
        format!("tcp.port=={smtp},smtp"),
    ];
    let pop_commands = |file: &Path| {
        tshark_fields(
            file,
            &decode_as,
            "pop.request.command",
            "pop.request.command",
        )
    };
    // tshark shows the first four letters of an SMTP command, as sent (smtplib writes
    // some in lower case).
    let smtp_commands = |file: &Path| -> Vec<String> {
        tshark_fields(file, &decode_as, "smtp.req.command", "smtp.req.command")
            .iter()
            .map(|c| c.to_uppercase())
            .collect()
    };
    let pop = pop_commands(&out);
    assert_eq!(
        pop,
        ["CAPA", "STLS", "USER", "PASS", "STAT", "QUIT"],
        "{pop:?}"
    );
    let smtp_seen = smtp_commands(&out);
    assert!(
        smtp_seen.starts_with(&["EHLO".into(), "STAR".into(), "EHLO".into(), "AUTH".into()]),
        "{smtp_seen:?}"
    );
    assert!(
        smtp_seen.ends_with(&["MAIL".into(), "RCPT".into(), "DATA".into(), "QUIT".into()]),
        "{smtp_seen:?}"
    );

    // Without the block, nothing after STLS / STARTTLS can be read.
    let stripped = dir.path().join("stripped.pcapng");
    common::run_program(
        "editcap",
        &[
            "--discard-all-secrets",
            out.to_str().unwrap(),
            stripped.to_str().unwrap(),
        ],
        T,
    );
    assert!(secrets_blocks(&stripped).is_empty());
    assert_eq!(capinfos_secrets(&stripped), 0);
    assert_eq!(pop_commands(&stripped), ["CAPA", "STLS"]);
    assert_eq!(smtp_commands(&stripped), ["EHLO", "STAR"]);

    // mailwire reads the secrets back.
    let timeline = mailwire::lesson::load(&out).unwrap();
    assert_eq!(timeline.keylog.entries().len(), 10);
    for e in server.entries() {
        assert_eq!(
            timeline.keylog.secret(&e.label, &e.client_random),
            Some(&e.secret[..])
        );
    }
    let opened = common::run_program(MAILWIRE, &["open", out.to_str().unwrap()], T);
    assert!(
        opened.contains(
            "TLS: 10 TLS secrets (key log lines) read (from the file's Decryption Secrets Blocks)"
        ),
        "{opened}"
    );
    // With the secrets it carries, `open` decrypts the sessions: the password sent after STLS
    // is printed, marked as decrypted (never as if it crossed the wire as text).
    assert!(opened.contains("[decrypted] PASS"), "{opened}");
    let stripped_open = common::run_program(MAILWIRE, &["open", stripped.to_str().unwrap()], T);
    assert!(!stripped_open.contains("[decrypted]"), "{stripped_open}");
    assert!(mailwire::lesson::load(&stripped).unwrap().keylog.is_empty());

    // The client's own key log file, put into the stripped capture by mailwire open: only
    // the secrets of the sessions captured go in, and tshark decrypts again.
    let mut shared = std::fs::read_to_string(&client_keys).unwrap();
    // A shared SSLKEYLOGFILE also holds other programs' sessions (a browser's): those stay out.
    shared.push_str(&format!(
        "CLIENT_RANDOM {} {}\n",
        "ab".repeat(32),
        "cd".repeat(48)
    ));
    let shared_keys = dir.path().join("shared-keys.log");
    std::fs::write(&shared_keys, shared).unwrap();
    let injected = dir.path().join("injected.pcapng");
    let opened = common::run_program(
        MAILWIRE,
        &[
            "open",
            stripped.to_str().unwrap(),
            "--keylog",
            shared_keys.to_str().unwrap(),
            "--pcap",
            injected.to_str().unwrap(),
        ],
        T,
    );
    assert!(
        opened.contains(
            "10 TLS secrets (key log lines) embedded; 1 TLS secret (key log line) left out"
        ),
        "{opened}"
    );
    let blocks = secrets_blocks(&injected);
    assert_eq!(blocks.len(), 1);
    let embedded = KeyLog::parse(std::str::from_utf8(&blocks[0].1).unwrap()).unwrap();
    assert_eq!(embedded.entries().len(), 10);
    assert!(
        embedded
            .entries()
            .iter()
            .all(|e| client.entries().contains(e))
    );
    assert_eq!(
        pop_commands(&injected),
        ["CAPA", "STLS", "USER", "PASS", "STAT", "QUIT"]
    );

    // An export with no secrets has no Decryption Secrets Block at all.
    let plain = dir.path().join("plain.pcapng");
    let opened = common::run_program(
        MAILWIRE,
        &[
            "open",
            stripped.to_str().unwrap(),
            "--pcap",
            plain.to_str().unwrap(),
        ],
        T,
    );
    assert!(!opened.contains("TLS secret"), "{opened}");
    assert!(secrets_blocks(&plain).is_empty());
    assert_eq!(capinfos_secrets(&plain), 0);
    // (Nor when every secret is another session's.)
    let others = dir.path().join("others.log");
    std::fs::write(
        &others,
        format!("CLIENT_RANDOM {} {}\n", "ab".repeat(32), "cd".repeat(48)),
    )
    .unwrap();
    let none = dir.path().join("none.pcapng");
    common::run_program(
        MAILWIRE,
        &[
            "open",
            stripped.to_str().unwrap(),
            "--keylog",
            others.to_str().unwrap(),
            "--pcap",
            none.to_str().unwrap(),
        ],
        T,
    );
    assert!(secrets_blocks(&none).is_empty());
}

/// A little-endian pcapng block: type, total length, body (padded), total length.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().next_multiple_of(4), 0);
    let len = (body.len() + 12) as u32;
    let mut b = kind.to_le_bytes().to_vec();
    b.extend(len.to_le_bytes());
    b.extend(body);
    b.extend(len.to_le_bytes());
    b
}

/// A Decryption Secrets Block's body: type, length, secrets.
fn dsb_body(kind: u32, secrets_len: u32, secrets: &[u8]) -> Vec<u8> {
    let mut b = kind.to_le_bytes().to_vec();
    b.extend(secrets_len.to_le_bytes());
    b.extend(secrets);
    b
}

/// A pcapng file: section header, an Ethernet interface, `middle`, then one packet.
fn pcapng_with(middle: &[u8]) -> Vec<u8> {
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend(1u16.to_le_bytes());
    shb.extend(0u16.to_le_bytes());
    shb.extend((-1i64).to_le_bytes());
    let mut idb = 1u16.to_le_bytes().to_vec(); // LINKTYPE_ETHERNET
    idb.extend(0u16.to_le_bytes());
    idb.extend(65535u32.to_le_bytes());
    let frame = [0u8; 14]; // an Ethernet header, nothing after it
    let mut epb = 0u32.to_le_bytes().to_vec();
    epb.extend(0u32.to_le_bytes());
    epb.extend(1u32.to_le_bytes());
    epb.extend((frame.len() as u32).to_le_bytes());
    epb.extend((frame.len() as u32).to_le_bytes());
    epb.extend(frame);
    let mut file = block(0x0A0D_0D0A, &shb);
    file.extend(block(1, &idb));
    file.extend(middle);
    file.extend(block(6, &epb));
    file
}

#[test]
fn damaged_secrets_blocks_are_warned_about_with_their_offset_and_the_packets_still_read() {
    let dir = TempDir::new("dsb-bad");
    let good_line = format!("CLIENT_RANDOM {} {}\n", "01".repeat(32), "02".repeat(48));
    // The section header is 28 bytes and the interface 20: the first block here is at 48.
    let mut middle = block(0x0A, &dsb_body(0x544c_534b, 4000, good_line.as_bytes()));
    let second = 48 + middle.len();
    let bad_lines = format!("{good_line}not a key log line\n");
    middle.extend(block(
        0x0A,
        &dsb_body(0x544c_534b, bad_lines.len() as u32, bad_lines.as_bytes()),
    ));
    let third = 48 + middle.len();
    middle.extend(block(0x0A, &dsb_body(0x5747_4b4c, 4, &[0; 4]))); // WireGuard
    let file = dir.path().join("damaged.pcapng");
    std::fs::write(&file, pcapng_with(&middle)).unwrap();

    let out = common::run_with_input(Command::new(MAILWIRE).arg("open").arg(&file), "", T);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 frames"), "{stdout}");
    let name = file.display();
    assert!(
        stderr.contains(&format!(
            "the Decryption Secrets Block at byte 48 of {name} says its secrets are 4000 bytes \
             but it holds only"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("at byte {second} of {name} holds 1 line that is no TLS key log line (key log line 2: 5 words, not 3")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "at byte {third} of {name} holds secrets of type \"WGKL\""
        )),
        "{stderr}"
    );
    // The good line of the second block was used.
    assert!(
        stdout.contains("TLS: 1 TLS secret (key log line) read"),
        "{stdout}"
    );
    let t = mailwire::lesson::load(&file).unwrap();
    assert_eq!(t.keylog.entries().len(), 1);
    assert_eq!(t.packets.len(), 1);

    // A block cut off by the end of the file: warned about; libpcap says the file is cut.
    let mut cut = pcapng_with(&[]);
    let at = cut.len();
    let whole = block(
        0x0A,
        &dsb_body(0x544c_534b, good_line.len() as u32, good_line.as_bytes()),
    );
    cut.extend(&whole[..whole.len() / 2]);
    let file = dir.path().join("cut.pcapng");
    std::fs::write(&file, &cut).unwrap();
    let out = common::run_with_input(Command::new(MAILWIRE).arg("open").arg(&file), "", T);
    let (stdout, stderr) = text(&out);
    assert!(
        stderr.contains(&format!(
            "the Decryption Secrets Block at byte {at} of {} says it is {} bytes long but the \
             file ends {} bytes after its start",
            file.display(),
            whole.len(),
            whole.len() / 2
        )),
        "{stderr}"
    );
    assert!(stdout.contains("1 frames"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_key_log_file_with_a_bad_line_is_refused_naming_the_file_and_line() {
    let dir = TempDir::new("dsb-keys");
    let keys = dir.path().join("keys.log");
    std::fs::write(
        &keys,
        format!(
            "# keys\nCLIENT_RANDOM {} {}\nCLIENT_RANDOM zz 00\n",
            "01".repeat(32),
            "02".repeat(48)
        ),
    )
    .unwrap();
    let capture = dir.path().join("c.pcapng");
    std::fs::write(&capture, pcapng_with(&[])).unwrap();
    let out = common::run_with_input(
        Command::new(MAILWIRE)
            .arg("open")
            .arg(&capture)
            .arg("--keylog")
            .arg(&keys),
        "",
        T,
    );
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "{}: key log line 3: client random \"zz\" is not hex",
            keys.display()
        )),
        "{stderr}"
    );
    // watch says so before it starts capturing, not after the lesson.
    let out = common::run_with_input(
        Command::new(MAILWIRE)
            .args(["watch", "--port", "9", "--seconds", "5", "--keylog"])
            .arg(&keys),
        "",
        T,
    );
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(!stdout.contains("Watching"), "{stdout}");
    assert!(stderr.contains("key log line 3"), "{stderr}");
    let binary = dir.path().join("binary.log");
    std::fs::write(&binary, b"CLIENT_RANDOM \xff\n").unwrap();
    let out = common::run_with_input(
        Command::new(MAILWIRE)
            .arg("open")
            .arg(&capture)
            .arg("--keylog")
            .arg(&binary),
        "",
        T,
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "the TLS key log file {} is not text: byte 14 is not UTF-8 (an NSS key log, as \
             SSLKEYLOGFILE writes, is plain ASCII)",
            binary.display()
        )),
        "{stderr}"
    );
    let missing = dir.path().join("missing.log");
    let out = common::run_with_input(
        Command::new(MAILWIRE)
            .arg("open")
            .arg(&capture)
            .arg("--keylog")
            .arg(&missing),
        "",
        T,
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "cannot read the TLS key log file {}",
            missing.display()
        )),
        "{stderr}"
    );
}
