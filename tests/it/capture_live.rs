//! Live capture on the real loopback interface: the SYN and the command bytes of a TCP
//! session started right after `live::start` returns are captured (the "ready" guarantee),
//! stopping is prompt, and failures (no permission, no such interface, bad filter) are
//! explained.
//!
//! Capturing here needs CAP_NET_RAW: without it the capturing tests print that they skipped
//! and why. The permission test runs a copy of this binary as user `nobody` when run as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;
use common::tcp_segment as segment;
use common::{TCP_ACK as ACK, TCP_SYN as SYN, contains_bytes as contains, running_as_root};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use mailwire::capture::LinkType;
use mailwire::capture::live::{self, CaptureError, CaptureMessage, LiveConfig, port_filter};

const CHILD_ENV: &str = "MAILWIRE_CAPTURE_CHILD";
const PERMISSION_MARKER: &str = "MAILWIRE-PERMISSION-ERROR:";

/// Starts a capture, or says plainly why this test is skipped (no CAP_NET_RAW).
fn start_or_skip(
    test: &str,
    config: LiveConfig,
) -> Option<(live::LiveCapture, Receiver<CaptureMessage>)> {
    let (tx, rx) = unbounded();
    match live::start(config, tx) {
        Ok(capture) => Some((capture, rx)),
        Err(error @ CaptureError::PermissionDenied { .. }) => {
            println!("SKIPPED {test}: this process may not capture packets: {error}");
            None
        }
        Err(error) => panic!("{test}: {error}"),
    }
}

fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let comm = task.unwrap().path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            names.push(name.trim().to_string());
        }
    }
    names
}

#[test]
fn syn_and_command_sent_right_after_start_are_captured() {
    // Several rounds: each connects the moment `start` returns, so a capture that was not
    // ready yet would miss the SYN at least once.
    for round in 0..5 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = LiveConfig {
            filter: port_filter(&[port]),
            ..LiveConfig::default()
        };
        let Some((capture, rx)) = start_or_skip("syn_and_command_sent_right_after_start", config)
        else {
            return;
        };
        assert_eq!(capture.interface(), "lo");
        if cfg!(target_os = "linux") {
            assert_eq!(capture.link_type(), LinkType::ETHERNET);
            assert!(
                thread_names().iter().any(|n| n == "capture-lo"),
                "no thread named capture-lo among {:?}",
                thread_names()
            );
        }

        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.write_all(b"USER mrose\r\n").unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut received = [0u8; 12];
        server.read_exact(&mut received).unwrap();
        assert_eq!(&received, b"USER mrose\r\n");

        let mut packets = Vec::new();
        let (mut saw_syn, mut saw_command) = (false, false);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(saw_syn && saw_command) && Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(CaptureMessage::Packet(packet)) => {
                    assert_eq!(packet.link_type, capture.link_type());
                    assert!(
                        packet.ts_micros > 1_600_000_000_000_000,
                        "{}",
                        packet.ts_micros
                    );
                    assert_eq!(packet.orig_len as usize, packet.data.len());
                    if let Some(seg) = segment(&packet) {
                        assert!(seg.src_port == port || seg.dst_port == port);
                        saw_syn |= seg.dst_port == port && seg.flags & (SYN | ACK) == SYN;
                        saw_command |=
                            seg.dst_port == port && contains(seg.payload, b"USER mrose\r\n");
                    }
                    packets.push(packet);
                }
                Ok(other) => panic!("round {round}: unexpected {other:?}"),
                Err(_) => {}
            }
        }
        assert!(
            saw_syn,
            "round {round}: no SYN among {} packets",
            packets.len()
        );
        assert!(
            saw_command,
            "round {round}: no USER command among {} packets",
            packets.len()
        );

        let stopping = Instant::now();
        capture.stop();
        assert!(
            stopping.elapsed() < Duration::from_secs(1),
            "stop took {:?}",
            stopping.elapsed()
        );
        // After stop: any packets still queued, then Stats, then nothing (the thread is gone).
        let rest: Vec<CaptureMessage> = rx.try_iter().collect();
        let Some(CaptureMessage::Stats { received, dropped }) = rest.last() else {
            panic!("round {round}: the last message is not Stats: {rest:?}");
        };
        let captured = packets.len()
            + rest
                .iter()
                .filter(|m| matches!(m, CaptureMessage::Packet(_)))
                .count();
        assert!(
            *received as usize >= captured,
            "received {received} < {captured}"
        );
        assert_eq!(*dropped, 0);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }
}

#[test]
fn stop_without_traffic_is_prompt_and_drop_stops_too() {
    let quiet_port = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = LiveConfig {
        filter: port_filter(&[quiet_port.local_addr().unwrap().port()]),
        ..LiveConfig::default()
    };
    let Some((capture, rx)) = start_or_skip("stop_without_traffic_is_prompt", config.clone())
    else {
        return;
    };
    std::thread::sleep(Duration::from_millis(250));
    assert!(capture.is_running());
    let stopping = Instant::now();
    capture.stop();
    println!("stop without traffic took {:?}", stopping.elapsed());
    assert!(
        stopping.elapsed() < Duration::from_secs(1),
        "{:?}",
        stopping.elapsed()
    );
    // Nothing matched the filter (packets the kernel saw before the filter was set may
    // count as received, but none is delivered).
    let last = rx.try_recv();
    assert!(
        matches!(last, Ok(CaptureMessage::Stats { dropped: 0, .. })),
        "{last:?}"
    );

    let (capture, rx) = start_or_skip("drop_stops_too", config).unwrap();
    let dropping = Instant::now();
    drop(capture);
    assert!(
        dropping.elapsed() < Duration::from_secs(1),
        "{:?}",
        dropping.elapsed()
    );
    assert!(matches!(rx.try_recv(), Ok(CaptureMessage::Stats { .. })));
    // The thread has ended and dropped its sender.
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(100)),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    ));
}

/// A stop right after a burst: every packet the kernel captured before the stop comes out
/// (libpcap's buffer is emptied, not dropped with the handle).
#[test]
fn packets_buffered_when_stop_is_called_are_still_handed_out() {
    const BURST: usize = 400;
    let (receiver, config) = common::udp_receiver_and_its_capture();
    let Some((capture, rx)) = start_or_skip("packets_buffered_when_stop_is_called", config) else {
        return;
    };
    common::send_datagrams_one_by_one(&receiver, BURST);
    capture.stop();
    let mut packets = 0usize;
    let mut dropped = None;
    for message in rx.try_iter() {
        match message {
            CaptureMessage::Packet(p) => {
                assert!(contains(&p.data, b"datagram "), "{:?}", p.data);
                packets += 1;
            }
            CaptureMessage::Stats { dropped: d, .. } => dropped = Some(d),
            CaptureMessage::Failed(e) => panic!("{e}"),
        }
    }
    let dropped = dropped.expect("the last message is libpcap's counts");
    // The ring has room for all of them even if the thread read none before the stop
    // (RUN_BUFFER_BYTES: about 500 loopback packets), so none may be missing.
    assert_eq!(
        (packets, dropped),
        (BURST, 0),
        "(handed out, dropped by libpcap) of {BURST} datagrams"
    );
}

#[test]
fn bad_filter_is_quoted_with_libpcap_message() {
    let (tx, _rx) = unbounded();
    let config = LiveConfig {
        filter: "tcp port".to_string(),
        ..LiveConfig::default()
    };
    match live::start(config, tx) {
        Err(error @ CaptureError::BadFilter { .. }) => {
            let text = error.to_string();
            assert!(text.contains("\"tcp port\""), "{text}");
            assert!(text.contains("syntax error"), "{text}");
            assert!(text.contains("man pcap-filter"), "{text}");
        }
        Err(error @ CaptureError::PermissionDenied { .. }) => {
            println!("SKIPPED bad_filter_is_quoted: the filter is checked after opening: {error}");
        }
        other => panic!("expected a bad-filter error, got {other:?}"),
    }
}

#[test]
fn unknown_interface_is_named_with_the_ones_that_exist() {
    let (tx, _rx) = unbounded();
    let config = LiveConfig {
        interface: "nosuch0".to_string(),
        ..LiveConfig::default()
    };
    let error = live::start(config, tx).unwrap_err();
    let CaptureError::NoSuchDevice { available, .. } = &error else {
        panic!("expected NoSuchDevice, got {error:?}");
    };
    let text = error.to_string();
    assert!(text.contains("\"nosuch0\""), "{text}");
    if cfg!(target_os = "linux") {
        assert!(available.iter().any(|name| name == "lo"), "{available:?}");
        assert!(text.contains("lo"), "{text}");
    }
}

/// Child half of `without_cap_net_raw_the_error_explains_setcap`: does nothing unless the
/// parent set the environment variable.
#[test]
fn child_try_capture_without_permission() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("permission") {
        return;
    }
    let (tx, _rx) = unbounded();
    match live::start(LiveConfig::default(), tx) {
        Err(error) => println!("{PERMISSION_MARKER}{error:?}\n{PERMISSION_MARKER}{error}"),
        Ok(_) => println!("{PERMISSION_MARKER}capture started"),
    }
}

#[test]
fn without_cap_net_raw_the_error_explains_setcap() {
    if !running_as_root() {
        // Run the check here, as this (unprivileged) user.
        let (tx, _rx) = unbounded();
        match live::start(LiveConfig::default(), tx) {
            Err(error @ CaptureError::PermissionDenied { .. }) => {
                let text = error.to_string();
                assert!(text.contains("CAP_NET_RAW"), "{text}");
                assert!(
                    text.contains("sudo setcap cap_net_raw,cap_net_admin+eip "),
                    "{text}"
                );
            }
            Ok(_) => println!(
                "SKIPPED without_cap_net_raw: this process has CAP_NET_RAW, so there is no \
                 permission error to check"
            ),
            Err(other) => panic!("expected a permission error, got {other}"),
        }
        return;
    }

    let copy = common::copy_self_for_nobody("capture-nobody");
    let output = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&copy.exe)
        .args([
            "--exact",
            "capture_live::child_try_capture_without_permission",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "permission")
        .current_dir(copy.dir.path())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            println!("SKIPPED without_cap_net_raw: cannot run setpriv to become nobody: {error}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.contains("running 1 test") {
        // setpriv itself failed (e.g. uid 0 inside a user namespace where nobody is unmapped).
        println!(
            "SKIPPED without_cap_net_raw: could not become nobody: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return;
    }
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once(PERMISSION_MARKER).map(|(_, rest)| rest))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let (debug, text) = (lines[0], lines[1]);
    println!("as nobody: {text}");
    assert!(debug.starts_with("PermissionDenied"), "{debug}");
    assert!(debug.contains("running_as_root: false"), "{debug}");
    assert!(text.contains("Operation not permitted"), "{text}");
    assert!(text.contains("CAP_NET_RAW"), "{text}");
    assert!(
        text.contains(&format!(
            "sudo setcap cap_net_raw,cap_net_admin+eip {}",
            copy.exe.display()
        )),
        "{text}"
    );
    assert!(text.contains("run mailwire as root"), "{text}");
    assert!(text.contains("sandbox"), "{text}");
}
