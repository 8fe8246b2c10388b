//! The window's load of a large capture, beside `mailwire open --summary-only` on the same
//! file:
//!
//!     cargo bench --bench window_load -- [FILE] [RUNS]
//!
//! Without FILE it writes (once) a capture of 350,000 packets with the decode benchmark's
//! generator (`cargo bench --bench decode_gen -- FILE 350000`, under target/). Each run is
//! timed by `/usr/bin/time -v` (wall clock and peak RSS):
//!
//! - `mailwire open FILE --summary-only` (read, decode, reassemble; nothing kept per packet);
//! - `mailwire --screenshot PNG FILE`, the real window on a virtual display (Xvfb, started
//!   here when DISPLAY is not set): its loader thread reads and decodes the file, keeping
//!   every packet's bytes, and makes the steps; the window prints how long that took
//!   ("decoded ...: N packets, M steps in S s"), then draws, settles and takes the picture;
//! - the same window on a small capture, the baseline of the window's own memory (GL, fonts).
//!
//! Aims (issue 11): the window's load at most 3x the time of `open --summary-only` plus 2 s,
//! and at most 2x the file size in extra memory (peak RSS over the small-capture window's).
//! Prints medians and whether each aim is met.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const MAILWIRE: &str = env!("CARGO_BIN_EXE_mailwire");

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: f64,
    rss_kib: f64,
    /// The window's own load time (its "decoded" line), when it printed one.
    load: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs `args` under `/usr/bin/time -v` and reads its wall clock and peak RSS.
fn timed(args: &[&str], display: Option<&str>) -> Run {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v").arg(MAILWIRE).args(args);
    if let Some(d) = display {
        cmd.env("DISPLAY", d);
    }
    let out = cmd
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mailwire {args:?} failed:\n{stdout}\n{stderr}"
    );
    let field = |name: &str| -> &str {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{stderr}"))
            .trim()
    };
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
        .split(':')
        .fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap());
    let rss_kib: f64 = field("Maximum resident set size (kbytes):")
        .parse()
        .unwrap();
    let load = stdout.lines().find_map(|l| {
        let rest = l.strip_prefix("decoded ")?;
        let secs = rest.rsplit_once(" in ")?.1.strip_suffix(" s")?;
        secs.parse().ok()
    });
    Run {
        wall,
        rss_kib,
        load,
    }
}

/// A virtual display for the window, when there is none.
struct Display {
    name: String,
    child: Option<Child>,
}

impl Display {
    fn get() -> Display {
        if let Ok(name) = std::env::var("DISPLAY") {
            return Display { name, child: None };
        }
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x720x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (apt-get install xvfb), or set DISPLAY");
        let mut number = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut number,
        )
        .unwrap();
        Display {
            name: format!(":{}", number.trim()),
            child: Some(child),
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The generated capture (written once).
fn generated() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/window-load-350k.pcap");
    if !path.exists() {
        eprintln!("writing {} (350,000 packets) ...", path.display());
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["bench", "--locked", "--bench", "decode_gen", "--"])
            .arg(&path)
            .arg("350000")
            .status()
            .unwrap();
        assert!(status.success(), "decode_gen failed");
    }
    path
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let file = args.first().map_or_else(generated, PathBuf::from);
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(3);
    let baseline_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference-captures/zeek_smtp.pcap");
    let size = std::fs::metadata(&file).unwrap().len() as f64;
    let display = Display::get();
    let tmp = std::env::temp_dir().join(format!("mailwire-window-load-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let file_arg = file.to_str().unwrap().to_string();
    let mut open = Vec::new();
    let mut window = Vec::new();
    let mut base = Vec::new();
    for r in 0..runs {
        open.push(timed(&["open", &file_arg, "--summary-only"], None));
        let shot = tmp.join(format!("big-{r}.png"));
        window.push(timed(
            &["--screenshot", shot.to_str().unwrap(), &file_arg],
            Some(&display.name),
        ));
        if baseline_file.exists() {
            let shot = tmp.join(format!("small-{r}.png"));
            base.push(timed(
                &[
                    "--screenshot",
                    shot.to_str().unwrap(),
                    baseline_file.to_str().unwrap(),
                ],
                Some(&display.name),
            ));
        }
        eprintln!(
            "run {}: open {:.2} s {:.0} MiB; window load {:.2} s (whole run {:.2} s) {:.0} MiB",
            r + 1,
            open[r].wall,
            open[r].rss_kib / 1024.0,
            window[r].load.unwrap_or(f64::NAN),
            window[r].wall,
            window[r].rss_kib / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let mib = |kib: f64| kib / 1024.0;
    let open_wall = median(open.iter().map(|r| r.wall).collect());
    let open_rss = median(open.iter().map(|r| r.rss_kib).collect());
    let load = median(window.iter().map(|r| r.load.unwrap_or(r.wall)).collect());
    let window_wall = median(window.iter().map(|r| r.wall).collect());
    let window_rss = median(window.iter().map(|r| r.rss_kib).collect());
    let base_rss = if base.is_empty() {
        0.0
    } else {
        median(base.iter().map(|r| r.rss_kib).collect())
    };
    let base_wall = if base.is_empty() {
        0.0
    } else {
        median(base.iter().map(|r| r.wall).collect())
    };
    let extra_kib = window_rss - base_rss;
    let time_aim = 3.0 * open_wall + 2.0;
    let mem_aim = 2.0 * size / 1024.0;
    println!(
        "file: {} ({:.0} MiB); medians of {runs} runs",
        file.display(),
        size / 1048576.0
    );
    println!(
        "mailwire open --summary-only: {open_wall:.2} s wall, {:.0} MiB peak RSS",
        mib(open_rss)
    );
    println!(
        "window (mailwire --screenshot PNG FILE): load {load:.2} s (read, decode, steps; \
         whole run with the window's start, 1.2 s settling and the picture: \
         {window_wall:.2} s), {:.0} MiB peak RSS",
        mib(window_rss)
    );
    println!(
        "window on a small capture (baseline): {base_wall:.2} s, {:.0} MiB peak RSS",
        mib(base_rss)
    );
    println!(
        "time: load {load:.2} s vs aim 3 x {open_wall:.2} + 2 = {time_aim:.2} s: {}; \
         the whole screenshot run minus the small one's: {:.2} s",
        if load <= time_aim { "met" } else { "NOT met" },
        window_wall - base_wall
    );
    println!(
        "memory: extra {:.0} MiB (window on this file minus window on a small one) vs aim \
         2 x file = {:.0} MiB: {} ({:.2}x the file; over open's RSS: {:.0} MiB)",
        mib(extra_kib),
        mib(mem_aim),
        if extra_kib <= mem_aim {
            "met"
        } else {
            "NOT met"
        },
        extra_kib * 1024.0 / size,
        mib(window_rss - open_rss)
    );
}
