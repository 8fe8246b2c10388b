//! `mailwire watch --port N`: live capture of programs mailwire did not start (your own
//! client and server, Thunderbird, Dovecot): every command and reply printed as it
//! completes, with the frames that carried it, as `mailwire open` prints a file. Needs
//! capture rights on the real interface (root or CAP_NET_RAW); the sandbox cannot help, as
//! it only sees its own network.
//!
//! `--keylog KEYS` names an NSS key log file (the one `SSLKEYLOGFILE` names for `mailwire
//! serve`, curl or Python): it is read again when the watch stops, so the secrets of the
//! sessions watched are in it, and the `--pcap` file embeds those (a Decryption Secrets
//! Block) for Wireshark.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::open::{segment_line, unit_line};
use crate::capture::live::{self, CaptureMessage, LiveConfig};
use crate::export::pcapng::{ExportHints, write_pcapng};
use crate::timeline::{CaptureStatus, Timeline};

/// Arguments of `mailwire watch`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct WatchArgs {
    /// A TCP port to watch (your server's, e.g. 8110); repeat for several.
    #[arg(long = "port", short = 'p', required = true, value_name = "PORT")]
    pub ports: Vec<u16>,
    /// The interface to capture on (`lo` is this computer's loopback).
    #[arg(long, short = 'i', default_value = "lo")]
    pub interface: String,
    /// Also print every TCP segment: frame, direction, flags, relative seq/ack, length.
    #[arg(long)]
    pub packets: bool,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// When stopped, write what was captured to this pcapng file (for Wireshark).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// TLS secrets in the NSS key log format (the file SSLKEYLOGFILE names for `mailwire
    /// serve` or your client), read when the watch stops: the --pcap file embeds those of
    /// the sessions watched, so Wireshark decrypts them with no key file.
    #[arg(long, value_name = "KEYS")]
    pub keylog: Option<PathBuf>,
}

/// Runs `mailwire watch` until Ctrl-C, SIGTERM or `--seconds`.
pub fn run_watch(args: WatchArgs) -> Result<(), String> {
    if let Some(port) = args.ports.iter().find(|&&p| p == 0) {
        return Err(format!(
            "--port {port}: give the port your server listens on"
        ));
    }
    // A key file that is there already must be one now (better said before than after the
    // watch); one that is not there yet may be made by the programs watched.
    if let Some(keys) = &args.keylog
        && keys.exists()
    {
        super::open::load_keylog(keys)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    crate::signals::on_stop_signal(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| e.to_string())?;
    let (tx, rx) = crossbeam_channel::unbounded();
    let config = LiveConfig {
        interface: args.interface.clone(),
        filter: live::port_filter(&args.ports),
        ..LiveConfig::default()
    };
    let capture = live::start(config, tx).map_err(|e| e.to_string())?;
    let ports: Vec<String> = args.ports.iter().map(u16::to_string).collect();
    println!(
        "Watching TCP port{} {} on {}. Ctrl-C stops.",
        if ports.len() == 1 { "" } else { "s" },
        ports.join(", "),
        args.interface
    );
    let mut timeline = Timeline::new(format!("mailwire watch, port {}", ports.join(", ")));
    timeline.capture = Some(CaptureStatus::Live {
        interface: args.interface.clone(),
        ports: args.ports.clone(),
        sandboxed: false,
    });
    let mut printer = Printer::default();
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut failure = None;
    while !stop.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(CaptureMessage::Packet(p)) => {
                timeline.push_packet(p);
                printer.show(&timeline, args.packets);
            }
            Ok(CaptureMessage::Failed(e)) => {
                failure = Some(e.to_string());
                break;
            }
            Ok(CaptureMessage::Stats { .. }) | Err(_) => {}
        }
    }
    capture.stop();
    for message in rx.try_iter() {
        match message {
            CaptureMessage::Packet(p) => timeline.push_packet(p),
            CaptureMessage::Stats { received, dropped } => {
                timeline.capture = Some(CaptureStatus::Stopped { received, dropped });
            }
            CaptureMessage::Failed(e) => failure = failure.or(Some(e.to_string())),
        }
    }
    // Units still open (a reply without its end) are cut now.
    timeline.analyzer.finish();
    printer.show(&timeline, args.packets);
    println!(
        "\n{} packets, {} TCP connections; {}",
        timeline.packets.len(),
        timeline.analyzer.connections().len(),
        timeline.capture_status().describe()
    );
    // The key file is read now, with the secrets of the sessions just watched. If it cannot
    // be used, the capture is still written (without secrets) and the error said after.
    let keylog_error = match &args.keylog {
        Some(keys) => match super::open::load_keylog(keys) {
            Ok(keylog) => {
                timeline.keylog.extend(&keylog);
                None
            }
            Err(e) => Some(e),
        },
        None => None,
    };
    if let Some(path) = &args.pcap {
        let hints = ExportHints {
            interface: Some(args.interface.clone()),
            ..ExportHints::from_timeline(&timeline)
        };
        write_pcapng(&timeline, path, &hints).map_err(|e| e.to_string())?;
        println!(
            "wrote {} ({} packets{})",
            path.display(),
            timeline.packets.len(),
            super::open::embedded_words(&timeline)
        );
    }
    match (failure, keylog_error) {
        (Some(why), _) => Err(format!("the capture failed: {why}")),
        (None, Some(e)) if args.pcap.is_some() => {
            Err(format!("{e} (the capture was written without TLS secrets)"))
        }
        (None, Some(e)) => Err(e),
        (None, None) => Ok(()),
    }
}

/// Prints what the timeline gained since the last call: new connections, segments (with
/// `--packets`) and units, in the order they completed.
#[derive(Default)]
struct Printer {
    frames: usize,
    units: usize,
    connections: usize,
}

impl Printer {
    fn show(&mut self, t: &Timeline, packets: bool) {
        let a = &t.analyzer;
        let mut out = String::new();
        for conn in a.connections().iter().skip(self.connections) {
            out.push_str(&format!(
                "\nConnection {}: {} -> {}\n",
                conn.index, conn.client, conn.server
            ));
        }
        self.connections = a.connections().len();
        if packets {
            for f in self.frames..a.frames().len() {
                if let Some(line) = segment_line(a, f) {
                    let conn = a
                        .frames()
                        .get(f)
                        .and_then(|fr| fr.segment)
                        .map_or(0, |s| s.conn);
                    out.push_str(&format!("[{conn}]   {line}\n"));
                }
            }
        }
        self.frames = a.frames().len();
        for u in a.units().iter().skip(self.units) {
            let mut line = String::new();
            unit_line(&mut line, a, u, None);
            out.push_str(&format!("[{}] {}", u.conn, line.trim_start()));
        }
        self.units = a.units().len();
        if !out.is_empty() {
            print!("{out}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
    }
}
