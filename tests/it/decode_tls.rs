//! Decrypting captured TLS with a key log: mailwire's servers with TLS, Python's poplib
//! (`stls()`, TLS 1.3, TLS 1.2 with AES-GCM and with ChaCha20; `POP3_SSL` on the implicit-TLS
//! port) and smtplib (`starttls()` + `login()`) with `SSLContext.keylog_filename` set, and
//! `openssl s_client -starttls pop3 -keylogfile` sending a KeyUpdate, captured live on `lo`. The decrypted commands must be
//! exactly what the clients sent (and tshark, given the same key log, must agree); without
//! a key log, or with a wrong one, the records stay records and say why.
//!
//! Capturing needs CAP_NET_RAW: without it the tests print that they skipped and why.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a failure should stop the test"
)]

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mailwire::capture::CapturedPacket;
use mailwire::capture::live::{self, CaptureError, CaptureMessage, LiveConfig, port_filter};
use mailwire::decode::UnitKind;
use mailwire::decode::tls_decrypt::{NotDecrypted, RecordOutcome, TlsConnection};
use mailwire::proto::Direction;
use mailwire::proto::keylog::KeyLog;
use mailwire::servers::TlsSettings;
use mailwire::store;
use mailwire::timeline::Timeline;

use common::{TempDir, run_program};

/// A capture of real TLS sessions with their key log.
pub struct TlsCapture {
    /// Holds the files (removed on drop).
    pub _dir: TempDir,
    pub packets: Vec<CapturedPacket>,
    pub keylog_text: String,
    pub pcap: PathBuf,
    pub keylog_file: PathBuf,
    pub pop3_port: u16,
    pub smtp_port: u16,
    pub pop3s_port: u16,
    /// What the Python script printed.
    pub client_out: String,
}

impl TlsCapture {
    /// The capture as a timeline (every packet, the analyzer finished), with `keylog`.
    pub fn timeline(&self, keylog: KeyLog) -> Timeline {
        let mut t = Timeline::new("tls");
        for p in &self.packets {
            t.push_packet(p.clone());
        }
        t.analyzer.finish();
        t.keylog = keylog;
        t
    }

    pub fn keylog(&self) -> KeyLog {
        KeyLog::parse(&self.keylog_text).unwrap()
    }
}

const CLIENTS: &str = r#"
import poplib, smtplib, ssl, sys
pop3, smtp, pop3s = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cert, keylog = sys.argv[4], sys.argv[5]
def context(max12=False, ciphers=None):
    ctx = ssl.create_default_context(cafile=cert)
    ctx.keylog_filename = keylog
    if max12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx
# POP3, STLS, TLS 1.3 (RFC 2595)
p = poplib.POP3("127.0.0.1", pop3, timeout=20)
print("stls", p.stls(context=context()).decode())
print("version", p.sock.version())
print("user", p.user("alice").decode())
print("pass", p.pass_("wonderland").decode())
print("stat", p.stat())
print("quit", p.quit().decode())
# POP3, STLS, TLS 1.2
p = poplib.POP3("127.0.0.1", pop3, timeout=20)
p.stls(context=context(max12=True))
print("version12", p.sock.version(), p.sock.cipher()[0])
p.user("bob")
p.pass_("builder")
print("list", len(p.list()[1]))
p.quit()
# POP3, STLS, TLS 1.2 with ChaCha20-Poly1305 (RFC 7905)
p = poplib.POP3("127.0.0.1", pop3, timeout=20)
p.stls(context=context(max12=True, ciphers="ECDHE+CHACHA20"))
print("version12chacha", p.sock.version(), p.sock.cipher()[0])
p.user("alice")
p.pass_("wonderland")
p.quit()
# SMTP, STARTTLS (RFC 3207), AUTH after TLS (RFC 4954)
s = smtplib.SMTP("127.0.0.1", smtp, timeout=20)
s.ehlo("client.test")
print("starttls", s.starttls(context=context()))
s.ehlo("client.test")
print("login", s.login("alice", "wonderland"))
print("smtp-quit", s.quit())
# POP3 over implicit TLS (RFC 8314): the greeting comes inside TLS
q = poplib.POP3_SSL("127.0.0.1", pop3s, context=context(), timeout=20)
print("pop3s-welcome", q.getwelcome().decode())
q.user("alice")
q.pass_("wonderland")
q.quit()
"#;

/// Writes a classic pcap file (microsecond times).
pub fn write_pcap(path: &Path, packets: &[CapturedPacket]) {
    let link = packets.first().map_or(1, |p| p.link_type.0);
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&(link as u32).to_le_bytes());
    for p in packets {
        out.extend_from_slice(&((p.ts_micros / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((p.ts_micros % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&p.orig_len.to_le_bytes());
        out.extend_from_slice(&p.data);
    }
    std::fs::write(path, out).unwrap();
}

/// The servers on free ports, POP3 also over implicit TLS.
struct Servers {
    pop3: std::net::SocketAddr,
    smtp: std::net::SocketAddr,
    pop3s: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_servers(config: mailwire::servers::ServerConfig, dir: &Path) -> Servers {
    let store = std::sync::Arc::new(store::create_demo(&dir.join("data")).unwrap());
    let (tx, _rx) = crossbeam_channel::unbounded();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
            let listeners = mailwire::servers::Listeners {
                pop3: bind().await.unwrap(),
                smtp: bind().await.unwrap(),
                pop3s: Some(bind().await.unwrap()),
                smtps: None,
            };
            let running = mailwire::servers::start_listeners(
                store,
                config,
                listeners,
                mailwire::servers::EventSink::new(tx),
            )
            .unwrap();
            addr_tx
                .send([
                    running.pop3_addr(),
                    running.smtp_addr(),
                    running.pop3s_addr().unwrap(),
                ])
                .unwrap();
            let _ = stopped.await;
            running.shutdown().await;
        });
    });
    let [pop3, smtp, pop3s] = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Servers {
        pop3,
        smtp,
        pop3s,
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn capture_sessions() -> Option<TlsCapture> {
    let dir = TempDir::new("tlsdec");
    let tls = TlsSettings::load_or_create(dir.path(), "localhost").unwrap();
    let config = mailwire::servers::ServerConfig {
        tls: Some(tls),
        ..common::test_config()
    };
    let running = start_servers(config, dir.path());
    let (tx, rx) = crossbeam_channel::unbounded();
    let live_config = LiveConfig {
        filter: port_filter(&[
            running.pop3.port(),
            running.smtp.port(),
            running.pop3s.port(),
        ]),
        ..LiveConfig::default()
    };
    let capture = match live::start(live_config, tx) {
        Ok(c) => c,
        Err(error @ CaptureError::PermissionDenied { .. }) => {
            println!("SKIPPED decode_tls: this process may not capture packets: {error}");
            return None;
        }
        Err(error) => panic!("decode_tls: {error}"),
    };
    let keylog_file = dir.path().join("keys.log");
    let cert = dir.path().join(mailwire::servers::tls::CERT_FILE);
    let client_out = run_program(
        "python3",
        &[
            "-c",
            CLIENTS,
            &running.pop3.port().to_string(),
            &running.smtp.port().to_string(),
            &running.pop3s.port().to_string(),
            cert.to_str().unwrap(),
            keylog_file.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    // openssl s_client: STLS, then a KeyUpdate asking the server for one too ("K", RFC
    // 8446 section 4.6.3) between USER and PASS.
    let openssl_keys = dir.path().join("openssl-keys.log");
    key_update_session(running.pop3.port(), &cert, &openssl_keys);
    // The last FINs and ACKs.
    std::thread::sleep(Duration::from_millis(300));
    capture.stop();
    let mut packets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(m) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        match m {
            CaptureMessage::Packet(p) => packets.push(p),
            CaptureMessage::Stats { .. } => break,
            CaptureMessage::Failed(e) => panic!("capture failed: {e}"),
        }
    }
    let pcap = dir.path().join("tls.pcap");
    write_pcap(&pcap, &packets);
    // One key log for both clients.
    let keylog_text = std::fs::read_to_string(&keylog_file).unwrap()
        + &std::fs::read_to_string(&openssl_keys).unwrap();
    let keylog_file = dir.path().join("all-keys.log");
    std::fs::write(&keylog_file, &keylog_text).unwrap();
    Some(TlsCapture {
        pop3_port: running.pop3.port(),
        smtp_port: running.smtp.port(),
        pop3s_port: running.pop3s.port(),
        _dir: dir,
        packets,
        keylog_text,
        pcap,
        keylog_file,
        client_out,
    })
}

/// `openssl s_client -starttls pop3` (its first key share refused: a HelloRetryRequest),
/// typing USER, then `K` (a KeyUpdate with update_requested), PASS, STAT and QUIT, a pause
/// after each so each goes alone.
fn key_update_session(port: u16, cert: &Path, keylog: &Path) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        // Its first key share for a group rustls does not offer: a HelloRetryRequest first.
        .args(["-groups", "ffdhe2048:X25519"])
        .args(["-starttls", "pop3", "-crlf", "-CAfile"])
        .arg(cert)
        .arg("-keylogfile")
        .arg(keylog)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    for line in [
        "USER alice\n",
        "K\n",
        "PASS wonderland\n",
        "STAT\n",
        "QUIT\n",
    ] {
        stdin.write_all(line.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openssl s_client did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sessions, captured once for every test of this binary that needs them.
pub fn sessions() -> Option<&'static TlsCapture> {
    static ONCE: OnceLock<Option<TlsCapture>> = OnceLock::new();
    ONCE.get_or_init(capture_sessions).as_ref()
}

/// `C: USER alice` lines of a connection's decrypted units.
fn lines(conn: &TlsConnection) -> Vec<String> {
    conn.units
        .iter()
        .map(|u| format!("{}: {}", u.direction.speaker(), u.text))
        .collect()
}

/// The connections to `port`, in order.
fn conns_to(t: &Timeline, port: u16) -> Vec<usize> {
    t.analyzer
        .connections()
        .iter()
        .filter(|c| c.server.port() == port)
        .map(|c| c.index)
        .collect()
}

#[test]
fn decrypted_commands_are_what_poplib_and_smtplib_sent() {
    let Some(cap) = sessions() else { return };
    let out = &cap.client_out;
    assert!(out.contains("version TLSv1.3"), "{out}");
    assert!(out.contains("version12 TLSv1.2"), "{out}");
    let t = cap.timeline(cap.keylog());
    let all = t.tls_decryption();
    let pop3 = conns_to(&t, cap.pop3_port);
    assert_eq!(
        pop3.len(),
        4,
        "three POP3 connections from poplib, one from openssl"
    );

    // TLS 1.3 (the records after STLS): exactly poplib's commands and the server's replies.
    let c13 = all
        .connection(pop3[0])
        .expect("TLS records on the first POP3 connection");
    let session = c13.session.as_ref().unwrap();
    assert_eq!(session.version, 0x0304);
    assert!(session.suite_name.is_some(), "{session:?}");
    let l = lines(c13);
    let commands: Vec<&String> = l.iter().filter(|x| x.starts_with("C:")).collect();
    assert_eq!(
        commands,
        ["C: USER alice", "C: PASS wonderland", "C: STAT", "C: QUIT"],
        "{l:#?}"
    );
    let replies: Vec<&String> = l.iter().filter(|x| x.starts_with("S:")).collect();
    assert_eq!(replies.len(), 4, "{l:#?}");
    assert!(replies.iter().all(|r| r.starts_with("S: +OK")), "{l:#?}");
    // The STAT reply as poplib printed it: "stat (3, N)".
    let stat = out.lines().find(|x| x.starts_with("stat ")).unwrap();
    let (count, size) = stat
        .trim_start_matches("stat (")
        .trim_end_matches(')')
        .split_once(", ")
        .unwrap();
    assert_eq!(
        replies[2].as_str(),
        format!("S: +OK {count} {size}"),
        "{l:#?}"
    );
    // Each reply answers its command; each unit names the records and frames that carried it.
    for (i, u) in c13.units.iter().enumerate() {
        if u.direction == Direction::ServerToClient {
            let cmd = u.reply_to.expect("a reply answers a command");
            assert_eq!(cmd + 1, i, "reply {i} answers the command before it");
        }
        assert!(!u.records.is_empty() && !u.frames.is_empty(), "{u:?}");
        for r in &u.records {
            let rec = c13.record(*r).unwrap();
            assert!(
                matches!(rec.outcome, RecordOutcome::Decrypted { .. }),
                "{rec:?}"
            );
            assert_eq!(rec.content_type, 23, "application data records");
            let unit = &t.analyzer.units()[*r];
            assert_eq!(unit.kind, UnitKind::Tls);
            assert!(u.frames.contains(&unit.carriers[0].frame));
        }
    }
    // The handshake: clear hellos, then records under the handshake keys ending in Finished.
    let outcomes: Vec<String> = c13
        .records
        .iter()
        .map(|r| format!("{:?}", r.outcome))
        .collect();
    assert!(outcomes[0].contains("ClientHello"), "{outcomes:#?}");
    assert!(
        outcomes.iter().any(|o| o.contains("ServerHello (TLS 1.3")),
        "{outcomes:#?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.contains("Finished") && o.contains("handshake traffic keys")),
        "{outcomes:#?}"
    );
    assert!(
        c13.records
            .iter()
            .all(|r| !matches!(r.outcome, RecordOutcome::NotDecrypted(_))),
        "{outcomes:#?}"
    );

    // TLS 1.2 (CLIENT_RANDOM master secret), AES-GCM: RFC 5288's explicit nonce.
    let c12 = all.connection(pop3[1]).unwrap();
    let session = c12.session.as_ref().unwrap();
    assert_eq!(session.version, 0x0303);
    assert!(session.suite_name.unwrap().contains("_GCM_"), "{session:?}");
    let l = lines(c12);
    let commands: Vec<&String> = l.iter().filter(|x| x.starts_with("C:")).collect();
    assert_eq!(
        commands,
        ["C: USER bob", "C: PASS builder", "C: LIST", "C: QUIT"],
        "{l:#?}"
    );
    let list = c12
        .units
        .iter()
        .find(|u| u.direction == Direction::ServerToClient && u.multi_line)
        .expect("LIST's multi-line reply");
    let listed: usize = out
        .lines()
        .find_map(|x| x.strip_prefix("list "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        list.lines as usize,
        listed + 1,
        "the +OK line and one per message"
    );

    // TLS 1.2 with ChaCha20-Poly1305: the IV XOR the sequence number (RFC 7905).
    assert!(out.contains("version12chacha TLSv1.2 ECDHE-"), "{out}");
    let cc = all.connection(pop3[2]).unwrap();
    let session = cc.session.as_ref().unwrap();
    assert!(
        session.suite_name.unwrap().contains("CHACHA20"),
        "{session:?}"
    );
    let l = lines(cc);
    let commands: Vec<&String> = l.iter().filter(|x| x.starts_with("C:")).collect();
    assert_eq!(
        commands,
        ["C: USER alice", "C: PASS wonderland", "C: QUIT"],
        "{l:#?}"
    );

    // SMTP after STARTTLS: EHLO again, AUTH (smtplib picks CRAM-MD5, the first it knows of
    // those offered), QUIT; smtplib writes its commands in lower case.
    let smtp = conns_to(&t, cap.smtp_port);
    let cs = all.connection(smtp[0]).unwrap();
    let l = lines(cs);
    let commands: Vec<&String> = l.iter().filter(|x| x.starts_with("C:")).collect();
    assert_eq!(
        commands.first().map(|s| s.as_str()),
        Some("C: ehlo client.test"),
        "{l:#?}"
    );
    assert!(commands.iter().any(|c| c.starts_with("C: AUTH ")), "{l:#?}");
    assert_eq!(
        commands.last().map(|s| s.as_str()),
        Some("C: quit"),
        "{l:#?}"
    );
    assert!(
        l.iter().any(|x| x.starts_with("S: 235")),
        "login accepted: {l:#?}"
    );
    // The clear part stayed as it was: the STARTTLS command is a clear unit.
    assert!(
        t.analyzer
            .units()
            .iter()
            .any(|u| u.text.eq_ignore_ascii_case("STARTTLS") && u.kind == UnitKind::Command)
    );
}

/// tshark, given the same key log, finds the same POP3 commands in the same capture.
#[test]
fn tshark_agrees_on_the_decrypted_commands() {
    let Some(cap) = sessions() else { return };
    let t = cap.timeline(cap.keylog());
    let all = t.tls_decryption();
    let mut ours = Vec::new();
    for conn in conns_to(&t, cap.pop3_port) {
        let c = all.connection(conn).unwrap();
        // Only what crossed inside TLS (the clear CAPA/STLS are tshark's too, but not ours).
        ours.extend(
            c.units
                .iter()
                .filter(|u| u.direction == Direction::ClientToServer)
                .map(|u| u.text.clone()),
        );
    }
    let decode_as = format!("tcp.port=={},pop", cap.pop3_port);
    let keylog = format!("tls.keylog_file:{}", cap.keylog_file.display());
    let out = run_program(
        "tshark",
        &[
            "-r",
            cap.pcap.to_str().unwrap(),
            "-d",
            &decode_as,
            "-o",
            &keylog,
            "-Y",
            "pop.request and tls",
            "-T",
            "fields",
            "-e",
            "pop.request.command",
            "-e",
            "pop.request.parameter",
        ],
        Duration::from_secs(60),
    );
    // One line per frame: commands, tab, parameters (several commands: comma-separated).
    let theirs: Vec<String> = out
        .lines()
        .flat_map(|l| {
            let (cmds, params) = l.split_once('\t').unwrap_or((l, ""));
            let params: Vec<&str> = params.split(',').collect();
            cmds.split(',')
                .enumerate()
                .map(|(i, c)| {
                    let p = params.get(i).copied().unwrap_or("");
                    if p.is_empty() {
                        c.to_string()
                    } else {
                        format!("{c} {p}")
                    }
                })
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(ours, theirs, "tshark output:\n{out}");
}

#[test]
fn without_a_key_log_records_stay_records_and_say_why() {
    let Some(cap) = sessions() else { return };
    let t = cap.timeline(KeyLog::new());
    let all = t.tls_decryption();
    assert_eq!(all.decrypted_units(), 0, "no plaintext without keys");
    let conn = all.connection(conns_to(&t, cap.pop3_port)[0]).unwrap();
    assert!(!conn.records.is_empty());
    let app: Vec<_> = conn
        .records
        .iter()
        .filter(|r| r.content_type == 23)
        .collect();
    assert!(!app.is_empty());
    for r in app {
        assert_eq!(
            r.outcome,
            RecordOutcome::NotDecrypted(NotDecrypted::NoKeyLog),
            "{r:?}"
        );
    }
    // The clear hellos are still described.
    assert!(
        matches!(&conn.records[0].outcome, RecordOutcome::Clear(t) if t.contains("ClientHello"))
    );
}

#[test]
fn a_wrong_key_is_a_tag_mismatch_and_shows_nothing() {
    let Some(cap) = sessions() else { return };
    // Every secret with one bit flipped: right sessions, wrong keys.
    let mut wrong = KeyLog::new();
    for e in cap.keylog().entries() {
        let mut e = e.clone();
        e.secret[0] ^= 1;
        wrong.push(e);
    }
    let t = cap.timeline(wrong);
    let all = t.tls_decryption();
    assert_eq!(all.decrypted_units(), 0, "no plaintext with wrong keys");
    let conn = all.connection(conns_to(&t, cap.pop3_port)[0]).unwrap();
    let encrypted: Vec<_> = conn
        .records
        .iter()
        .filter(|r| r.content_type == 23)
        .collect();
    assert!(
        encrypted
            .iter()
            .all(|r| r.outcome == RecordOutcome::NotDecrypted(NotDecrypted::TagMismatch)),
        "{encrypted:#?}"
    );
    // A key log for other sessions: "no key for this session", naming the label.
    let other = KeyLog::parse(
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET 0000000000000000000000000000000000000000000000000000000000000000 00\n",
    )
    .unwrap();
    let t = cap.timeline(other);
    let conn = t.tls_connection(conns_to(&t, cap.pop3_port)[0]);
    let first = conn.records.iter().find(|r| r.content_type == 23).unwrap();
    match &first.outcome {
        RecordOutcome::NotDecrypted(why @ NotDecrypted::NoKey { label, .. }) => {
            assert!(label.contains("HANDSHAKE_TRAFFIC_SECRET"), "{label}");
            assert!(
                why.to_string().starts_with("no key for this session"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A capture with its frames' bytes cut (the snapshot length) or missing: the decryptor
/// says so and never panics; it also survives every frame truncated anywhere.
#[test]
fn cut_frames_never_panic() {
    let Some(cap) = sessions() else { return };
    let keylog = cap.keylog();
    for cut in [0usize, 1, 20, 54, 60, 80] {
        let mut t = Timeline::new("cut");
        for p in &cap.packets {
            let mut p = p.clone();
            if p.data.len() > 54 + cut && p.data.len() > 100 {
                p.data.truncate(54 + cut);
            }
            t.push_packet(p);
        }
        t.analyzer.finish();
        t.keylog = keylog.clone();
        let all = t.tls_decryption();
        // Whatever was decrypted came from whole records only.
        for c in &all.conns {
            for u in &c.units {
                for r in &u.records {
                    assert!(matches!(
                        c.record(*r).unwrap().outcome,
                        RecordOutcome::Decrypted { .. }
                    ));
                }
            }
        }
    }
}

/// `mailwire open`'s transcript with the key log: under each TLS record its fate, and the
/// decrypted lines marked as such; without one, the transcript is as before (no plaintext).
#[test]
fn the_open_transcript_marks_decrypted_lines() {
    let Some(cap) = sessions() else { return };
    let analyzer = mailwire::decode::analyze(&cap.pcap).unwrap();
    let link = mailwire::capture::LinkType(cap.packets[0].link_type.0);
    let tls = mailwire::cli::open::decrypt_capture(&cap.pcap, &analyzer, &cap.keylog()).unwrap();
    let out = mailwire::cli::open::render_decrypted("cap", link, &analyzer, false, Some(&tls));
    common::assert_in_order(
        &out,
        &[
            "C: STLS",
            "S: +OK",
            "tls: in clear: handshake: ClientHello",
            "tls: in clear: handshake: ServerHello (TLS 1.3",
            "C: [decrypted] USER alice",
            "[command, decrypted from TLS, frames ",
            "S: [decrypted] +OK",
            "C: [decrypted] PASS wonderland",
            "C: [decrypted] QUIT",
        ],
    );
    // Every decrypted line says so: no plaintext command appears as a clear line.
    for line in out.lines() {
        if line.contains("USER alice") || line.contains("PASS wonderland") {
            assert!(line.contains("[decrypted]"), "{line}");
        }
    }
    let plain = mailwire::cli::open::render("cap", link, &analyzer, false);
    assert!(
        !plain.contains("USER alice") && !plain.contains("decrypted"),
        "{plain}"
    );
    // A key log for no session of this capture: each record says why.
    let none = mailwire::cli::open::decrypt_capture(&cap.pcap, &analyzer, &KeyLog::new()).unwrap();
    let out = mailwire::cli::open::render_decrypted("cap", link, &analyzer, false, Some(&none));
    assert!(out.contains("tls: not decrypted: no TLS key log"), "{out}");
    assert!(!out.contains("USER alice"), "{out}");
}

/// One changed byte in the record that carried PASS: that record says tag mismatch and
/// shows nothing; the records after it still decrypt (their sequence numbers go on).
#[test]
fn a_changed_record_fails_alone() {
    let Some(cap) = sessions() else { return };
    let t = cap.timeline(cap.keylog());
    let conn = conns_to(&t, cap.pop3_port)[0];
    let good = t.tls_connection(conn);
    let pass = good
        .units
        .iter()
        .find(|u| u.text == "PASS wonderland")
        .unwrap();
    let record = &t.analyzer.units()[pass.records[0]];
    let carrier = record.carriers[0].clone();
    let mut packets = cap.packets.clone();
    // A byte of the ciphertext (after the 5-byte record header).
    packets[carrier.frame].data[carrier.range.start + 8] ^= 0x40;
    let mut changed = Timeline::new("changed");
    for p in packets {
        changed.push_packet(p);
    }
    changed.analyzer.finish();
    changed.keylog = cap.keylog();
    let c = changed.tls_connection(conn);
    assert_eq!(
        c.record(pass.records[0]).unwrap().outcome,
        RecordOutcome::NotDecrypted(NotDecrypted::TagMismatch)
    );
    let l = lines(&c);
    assert!(!l.iter().any(|x| x.contains("wonderland")), "{l:#?}");
    assert!(l.contains(&"C: USER alice".to_string()), "{l:#?}");
    assert!(l.contains(&"C: STAT".to_string()), "{l:#?}");
    assert!(l.contains(&"C: QUIT".to_string()), "{l:#?}");
}

/// POP3 over implicit TLS (RFC 8314): on port 995 the analyzer takes the first bytes as TLS
/// records, and the greeting is the first thing decrypted. (The capture's free port is
/// rewritten to 995 in the frames: nothing here checks TCP checksums.)
#[test]
fn implicit_tls_on_port_995_decrypts_the_greeting_too() {
    let Some(cap) = sessions() else { return };
    let mut t = Timeline::new("pop3s");
    for p in &cap.packets {
        let mut p = p.clone();
        // Ethernet, IPv4 (its header length), then the TCP ports.
        let ihl = usize::from(p.data[14] & 0x0f) * 4;
        for at in [14 + ihl, 14 + ihl + 2] {
            if u16::from_be_bytes([p.data[at], p.data[at + 1]]) == cap.pop3s_port {
                p.data[at..at + 2].copy_from_slice(&995u16.to_be_bytes());
            }
        }
        t.push_packet(p);
    }
    t.analyzer.finish();
    t.keylog = cap.keylog();
    let conn = conns_to(&t, 995)[0];
    let c = t.tls_connection(conn);
    let welcome = cap
        .client_out
        .lines()
        .find_map(|l| l.strip_prefix("pop3s-welcome "))
        .unwrap();
    let greeting = &c.units[0];
    assert_eq!(greeting.kind, UnitKind::Greeting);
    assert_eq!(greeting.text, welcome);
    let l = lines(&c);
    let commands: Vec<&String> = l.iter().filter(|x| x.starts_with("C:")).collect();
    assert_eq!(
        commands,
        ["C: USER alice", "C: PASS wonderland", "C: QUIT"],
        "{l:#?}"
    );
    // Nothing of it is a clear unit: every unit of the connection is a TLS record.
    let units = &t.analyzer.connections()[conn].units;
    assert!(
        units
            .iter()
            .all(|&u| t.analyzer.units()[u].kind == UnitKind::Tls)
    );
}

/// After a HelloRetryRequest (RFC 8446 section 4.1.4) the real ServerHello gives the
/// session; a KeyUpdate (section 4.6.3) in each direction: the records after it are
/// protected with the next traffic secret (section 7.2), and still decrypt.
#[test]
fn a_retried_hello_and_a_key_update_are_followed() {
    let Some(cap) = sessions() else { return };
    let t = cap.timeline(cap.keylog());
    let conn = *conns_to(&t, cap.pop3_port).last().unwrap();
    let c = t.tls_connection(conn);
    let clear: Vec<&str> = c
        .records
        .iter()
        .filter_map(|r| match &r.outcome {
            RecordOutcome::Clear(what) => Some(what.as_str()),
            _ => None,
        })
        .collect();
    let hrr = clear
        .iter()
        .position(|w| *w == "handshake: HelloRetryRequest")
        .expect("a HelloRetryRequest");
    assert!(
        clear[hrr..]
            .iter()
            .any(|w| w.starts_with("handshake: ServerHello (TLS 1.3")),
        "{clear:#?}"
    );
    let l = lines(&c);
    let commands: Vec<&String> = l.iter().filter(|x| x.starts_with("C:")).collect();
    assert_eq!(
        &commands[..3],
        ["C: USER alice", "C: PASS wonderland", "C: STAT"],
        "{l:#?}"
    );
    let updates: Vec<Direction> = c
        .records
        .iter()
        .filter(|r| {
            matches!(&r.outcome, RecordOutcome::Decrypted { content, .. } if content.contains("KeyUpdate"))
        })
        .map(|r| r.direction)
        .collect();
    assert!(updates.contains(&Direction::ClientToServer), "{updates:?}");
    assert!(updates.contains(&Direction::ServerToClient), "{updates:?}");
    assert!(
        c.records
            .iter()
            .all(|r| !matches!(r.outcome, RecordOutcome::NotDecrypted(_))),
        "{:#?}",
        c.records
    );
}

/// A live run adds frames a few at a time: updating the decryption connection by
/// connection gives what decrypting everything at the end gives.
#[test]
fn updating_as_frames_come_gives_the_same_as_at_the_end() {
    let Some(cap) = sessions() else { return };
    let mut t = Timeline::new("live");
    t.keylog = cap.keylog();
    let mut tls = t.tls_decryption();
    for (i, p) in cap.packets.iter().enumerate() {
        t.push_packet(p.clone());
        if i % 7 == 0 {
            tls = t.tls_decryption_update(&tls);
        }
    }
    t.analyzer.finish();
    tls = t.tls_decryption_update(&tls);
    assert_eq!(tls, t.tls_decryption());
    assert!(tls.decrypted_units() > 20);
}
