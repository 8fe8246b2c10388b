//! The real window, as a user starts it, on a virtual display (Xvfb): `mailwire
//! --screenshot FILE` runs the demo and writes a PNG of what is on screen; a stop signal
//! (SIGTERM) closes the window cleanly, leaving no temporary folder behind.
//!
//! Skips, saying so, where Xvfb is not installed (`.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Spawned;

const BIN: &str = common::MAILWIRE;

/// A virtual X display, stopped (killed) when the `Spawned` is dropped.
struct Xvfb {
    _child: Spawned,
    display: String,
}

impl Xvfb {
    /// Starts Xvfb on a free display number (it reports the number it took on stdout).
    fn start(test: &str) -> Option<Xvfb> {
        let spawned = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1600x1000x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => Spawned::from(c, "Xvfb"),
            Err(e) => {
                println!("SKIPPED {test}: cannot run Xvfb ({e}); scripts/setup.sh installs it");
                return None;
            }
        };
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let number = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let number = number.trim();
        assert!(
            !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
            "Xvfb did not report its display number (got {number:?})"
        );
        Some(Xvfb {
            _child: child,
            display: format!(":{number}"),
        })
    }
}

/// The scenario folders mailwire left in `tmp`.
fn scenario_folders(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mailwire-scenario-"))
        .collect()
}

#[test]
fn screenshot_of_the_demo_is_a_real_picture_of_the_window() {
    screenshot_with(&[], "screenshot");
}

#[test]
fn the_window_runs_on_the_real_loopback_with_no_sandbox() {
    screenshot_with(&["--no-sandbox"], "screenshot-no-sandbox");
}

/// Runs `mailwire ARGS --screenshot FILE` on a virtual display and checks the picture.
fn screenshot_with(args: &[&str], test: &str) {
    let Some(x) = Xvfb::start(test) else {
        return;
    };
    let tmp = common::TempDir::new("viz-shot");
    let shot = tmp.path().join("window.png");
    let child = Spawned::new(
        Command::new(BIN)
            .args(args)
            .arg("--screenshot")
            .arg(&shot)
            .env("DISPLAY", &x.display)
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let out = child.output_within(Duration::from_secs(180));
    let status = out.status;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("wrote {}", shot.display())),
        "{stdout}"
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert!(
        info.width >= 900 && info.height >= 600,
        "{}x{}",
        info.width,
        info.height
    );
    // A drawn window (text, arrows, a hex dump) has many colours; a blank or black
    // frame has one or two.
    let step = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> =
        pixels[..info.buffer_size()].chunks(step).collect();
    assert!(colours.len() > 50, "only {} colours", colours.len());
    assert!(scenario_folders(tmp.path()).is_empty());
}

#[test]
fn sigterm_closes_the_window_and_removes_its_temporary_folder() {
    let Some(x) = Xvfb::start("sigterm") else {
        return;
    };
    let tmp = common::TempDir::new("viz-term");
    let mut child = Spawned::new(
        Command::new(BIN)
            .env("DISPLAY", &x.display)
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    // The demo scenario's folder appears once the window runs its worker.
    let start = Instant::now();
    while scenario_folders(tmp.path()).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.output_within(Duration::ZERO);
            panic!(
                "mailwire ended early ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no scenario folder"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.signal(libc::SIGTERM);
    let out = child.output_within(Duration::from_secs(60));
    let status = out.status;
    assert!(
        status.success(),
        "{status}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(scenario_folders(tmp.path()), Vec::<String>::new());
}

/// `mailwire --screenshot PNG FILE`: a good capture gives a picture and exit 0; a bad one a
/// non-zero exit and a message naming the file, and no panic.
#[test]
fn screenshot_of_a_capture_file_and_a_clear_error_for_a_bad_one() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference-captures/zeek_smtp.pcap");
    if !file.exists() {
        println!("SKIPPED: {} is not there", file.display());
        return;
    }
    let Some(x) = Xvfb::start("screenshot-file") else {
        return;
    };
    let tmp = common::TempDir::new("viz-shot-file");
    let run = |shot: &Path, capture: &Path| {
        Spawned::new(
            Command::new(BIN)
                .arg("--screenshot")
                .arg(shot)
                .arg(capture)
                .env("DISPLAY", &x.display)
                .env("TMPDIR", tmp.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .output_within(Duration::from_secs(180))
    };
    let shot = tmp.path().join("capture.png");
    let out = run(&shot, &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(
        stdout.contains("decoded ") && stdout.contains("wrote "),
        "{stdout}"
    );
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));

    for (name, bytes) in [
        ("junk.pcap", b"not a capture at all".to_vec()),
        ("cut.pcap", std::fs::read(&file).unwrap()[..3000].to_vec()),
    ] {
        let bad = tmp.path().join(name);
        std::fs::write(&bad, bytes).unwrap();
        let shot = tmp.path().join(format!("{name}.png"));
        let out = run(&shot, &bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{name} panicked: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(
            stderr.contains("mailwire: ") && stderr.contains(name),
            "{name}: {stderr}"
        );
        assert!(!shot.exists(), "{name}: a picture was written");
    }
    // A missing file (or a mistyped command) is refused before any window opens.
    let out = run(&tmp.path().join("x.png"), Path::new("opne"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("opne") && stderr.contains("mailwire --help"),
        "{stderr}"
    );
}
