//! The capture helper (`mailwire-capture`, as Wireshark's dumpcap): it refuses any argument
//! it does not expect and writes nothing then; through it a capture sees loopback traffic and
//! stops promptly; and a user without capture rights captures through a copy of it that has
//! the file capabilities and mode the Debian package gives it (root:GROUP 0750,
//! cap_net_raw,cap_net_admin=eip) when in that group, and is told to join the group when not.
//!
//! The capturing tests need root (to capture, or to set file capabilities on a copy); without
//! it they print that they skipped and why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common::{self, contains_bytes, running_as_root};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use mailwire::capture::live::{
    self, CaptureError, CaptureMessage, HelperAccess, HelperError, LiveConfig, port_filter,
};

const HELPER: &str = env!("CARGO_BIN_EXE_mailwire-capture");
const CHILD_ENV: &str = "MAILWIRE_HELPER_CHILD";
const MARKER: &str = "MAILWIRE-HELPER-CHILD:";

fn run_helper(args: &[&str]) -> std::process::Output {
    Command::new(HELPER).args(args).output().unwrap()
}

#[test]
fn the_helper_refuses_unexpected_arguments_and_writes_nothing() {
    for args in [
        &[][..],
        &["--interface", "lo", "--write", "/tmp/x.pcap"][..],
        &["--interface", "lo;id"][..],
        &["--interface", "../../dev/sda"][..],
        &["--interface", "lo", "--filter", "tcp\nport 25"][..],
        &["--interface", "lo", "--snaplen", "-1"][..],
    ] {
        let out = run_helper(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
        assert!(
            stderr.starts_with("mailwire-capture: arguments: "),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // A name that passes the check but names no network interface is refused before any
    // capture: a typo, or one of libpcap's other sources (netfilter, D-Bus).
    for name in ["nosuch0", "nflog", "nfqueue", "dbus-system"] {
        let out = run_helper(&["--interface", name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(out.stdout.is_empty());
        assert!(
            stderr.starts_with("mailwire-capture: no-such-device: ") && stderr.contains("lo"),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("nflog,"), "{name}: {stderr}");
    }
}

/// Packets from `rx` until one holds `needle` (or 5 s pass); panics if none did.
fn packets_until(rx: &Receiver<CaptureMessage>, needle: &[u8]) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(CaptureMessage::Packet(p)) => {
                let done = contains_bytes(&p.data, needle);
                seen.push(p.data);
                if done {
                    return seen;
                }
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {}
        }
    }
    panic!("no packet with {needle:?} in 5 s ({} others)", seen.len());
}

/// One TCP exchange on a fresh port, captured with `start`; returns the packets seen.
fn capture_one_exchange(
    start: impl FnOnce(
        LiveConfig,
        crossbeam_channel::Sender<CaptureMessage>,
    ) -> Result<live::LiveCapture, String>,
) -> Result<(usize, Option<(u32, u32)>), String> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = LiveConfig {
        filter: port_filter(&[port]),
        ..LiveConfig::default()
    };
    let (tx, rx) = unbounded();
    let capture = start(config, tx)?;
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"NOOP helper-probe\r\n").unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let mut buf = [0u8; 19];
    server.read_exact(&mut buf).unwrap();
    let packets = packets_until(&rx, b"NOOP helper-probe");
    let stopping = Instant::now();
    capture.stop();
    let took = stopping.elapsed();
    if took > Duration::from_secs(2) {
        return Err(format!("stopping took {took:?}"));
    }
    let mut stats = None;
    while let Ok(message) = rx.try_recv() {
        match message {
            CaptureMessage::Stats { received, dropped } => stats = Some((received, dropped)),
            CaptureMessage::Failed(e) => return Err(format!("failed after stop: {e}")),
            CaptureMessage::Packet(_) => {}
        }
    }
    Ok((packets.len(), stats))
}

#[test]
fn through_the_helper_a_capture_sees_loopback_traffic_and_stops() {
    if !running_as_root() {
        println!(
            "SKIPPED through_the_helper: the helper built here has no capabilities and this \
             process is not root, so it cannot capture (the Debian test does this)"
        );
        return;
    }
    let (count, stats) = capture_one_exchange(|config, tx| {
        live::start_with_helper(config, Path::new(HELPER), tx).map_err(|e| format!("{e:?}"))
    })
    .unwrap();
    // SYN, SYN-ACK, ACK, then the data segment at least.
    assert!(count >= 4, "only {count} packets");
    let (received, dropped) = stats.expect("the helper's counts after stop");
    assert!(received as usize >= count, "received {received} < {count}");
    assert_eq!(dropped, 0);

    // The helper's own refusals come back as the errors a direct capture gives.
    let (tx, _rx) = unbounded();
    let config = LiveConfig {
        filter: "tcp port".to_string(),
        ..LiveConfig::default()
    };
    match live::start_with_helper(config, Path::new(HELPER), tx) {
        Err(HelperError::Capture(error)) => match *error {
            CaptureError::BadFilter { filter, message } => {
                assert_eq!(filter, "tcp port");
                assert!(message.contains("syntax error"), "{message}");
            }
            other => panic!("expected a bad filter, got {other:?}"),
        },
        other => panic!("expected a bad filter, got {other:?}"),
    }
}

/// A stop right after a burst, through the helper: every packet the kernel captured before
/// the stop comes out (the helper writes what libpcap still holds before it closes the
/// stream, and the capture thread reads the stream to its end).
#[test]
fn through_the_helper_packets_buffered_at_the_stop_still_come_out() {
    if !running_as_root() {
        println!(
            "SKIPPED through_the_helper_packets_buffered: the helper built here has no \
             capabilities and this process is not root, so it cannot capture"
        );
        return;
    }
    const BURST: usize = 400;
    let (receiver, config) = common::udp_receiver_and_its_capture();
    let (tx, rx) = unbounded();
    let capture = live::start_with_helper(config, Path::new(HELPER), tx).unwrap();
    common::send_datagrams_one_by_one(&receiver, BURST);
    let stopping = Instant::now();
    capture.stop();
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
    let mut numbers = Vec::new();
    let mut dropped = None;
    for message in rx.try_iter() {
        match message {
            CaptureMessage::Packet(p) => {
                let at = p
                    .data
                    .windows(9)
                    .position(|w| w == b"datagram ")
                    .unwrap_or_else(|| panic!("not a datagram: {:?}", p.data));
                numbers.push(String::from_utf8_lossy(&p.data[at + 9..]).into_owned());
            }
            CaptureMessage::Stats { dropped: d, .. } => dropped = Some(d),
            CaptureMessage::Failed(e) => panic!("{e}"),
        }
    }
    let expected: Vec<String> = (0..BURST).map(|i| format!("{i:05}")).collect();
    assert!(
        numbers == expected,
        "{} of {BURST} datagrams handed out; the first missing or out of place: {:?}",
        numbers.len(),
        expected
            .iter()
            .zip(&numbers)
            .find(|(e, n)| e != n)
            .map_or_else(
                || expected.get(numbers.len()).cloned(),
                |(e, _)| Some(e.clone())
            )
    );
    assert_eq!(
        dropped,
        Some(0),
        "libpcap's dropped count, the helper's last word"
    );
}

/// Child half of `a_user_in_the_group_captures_through_the_helper`: does nothing unless the
/// parent set the environment variable; runs as `nobody`, with or without the group.
#[test]
fn child_capture_through_helper() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("1") {
        return;
    }
    match capture_one_exchange(|config, tx| {
        live::start(config, tx).map_err(|e| format!("{e:?}\n{MARKER}{e}"))
    }) {
        Ok((count, stats)) => println!("{MARKER}captured {count} packets, stats {stats:?}"),
        Err(e) => println!("{MARKER}{e}"),
    }
}

#[test]
fn a_user_in_the_group_captures_through_the_helper() {
    if !running_as_root() {
        println!("SKIPPED a_user_in_the_group: setting file capabilities needs root");
        return;
    }
    // The package's layout, on a copy: root:GROUP, 0750, the two capabilities.
    let copy = common::copy_self_for_nobody("helper-group");
    let helper = copy.dir.path().join("mailwire-capture");
    std::fs::copy(HELPER, &helper).unwrap();
    let group = "100"; // `users`; `nobody` is not in it
    let chown = Command::new("chown")
        .arg(format!("root:{group}"))
        .arg(&helper)
        .status();
    let chmod = Command::new("chmod").arg("0750").arg(&helper).status();
    assert!(chown.unwrap().success() && chmod.unwrap().success());
    match Command::new("setcap")
        .args(["cap_net_raw,cap_net_admin=eip"])
        .arg(&helper)
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!(
                "SKIPPED a_user_in_the_group: setcap failed (a file system without \
                 extended attributes?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!("SKIPPED a_user_in_the_group: no setcap program: {e}");
            return;
        }
    }
    let run_as_nobody = |groups: &[&str]| {
        let output = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup"])
            .args(groups)
            .arg(&copy.exe)
            .args([
                "--exact",
                "capture_helper::child_capture_through_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .env(live::HELPER_ENV, &helper)
            .current_dir(copy.dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success() && stdout.contains("running 1 test"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .filter_map(|l| l.split_once(MARKER).map(|(_, rest)| rest.to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    let in_group = run_as_nobody(&[&format!("--groups={group}")]);
    println!("nobody in group {group}: {in_group}");
    assert!(in_group.starts_with("captured "), "{in_group}");
    assert!(in_group.contains("stats Some(("), "{in_group}");

    let outside = run_as_nobody(&["--clear-groups"]);
    println!("nobody outside the group: {outside}");
    let expected = HelperAccess::NotAllowed {
        path: helper.clone(),
    };
    assert!(outside.contains(&format!("{expected:?}")), "{outside}");
    assert!(outside.contains("sudo adduser $USER mailwire"), "{outside}");
    assert!(outside.contains(&helper.display().to_string()), "{outside}");
}
