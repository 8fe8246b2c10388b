//! `mailwire check`: runs the conformance checks of [`crate::check`] against your POP3 and
//! SMTP servers (or a built-in replay server with `--against`), prints a table and the
//! failures with what was sent, expected and received, and writes JSON, JUnit XML and an
//! annotated pcapng on request. Exit status: 0 every `must` passed, 1 one failed, 2
//! nothing could be checked.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::capture::live::{self, CaptureMessage, LiveConfig};
use crate::check::evidence::check_timeline;
use crate::check::replay::{self, Flaw};
use crate::check::{self, CheckResult, ExitStatus, Report, Settings};
use crate::export::pcapng::{ExportHints, write_pcapng};
use crate::timeline::CaptureStatus;

/// Arguments of `mailwire check`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct CheckArgs {
    /// Your POP3 server, HOST:PORT (e.g. 127.0.0.1:8110).
    #[arg(long, value_name = "HOST:PORT")]
    pub pop3: Option<String>,
    /// Your SMTP server, HOST:PORT (e.g. 127.0.0.1:8025).
    #[arg(long, value_name = "HOST:PORT")]
    pub smtp: Option<String>,
    /// The POP3 user to log in as (not needed with --against).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// That user's password.
    #[arg(long, value_name = "PASSWORD")]
    pub pass: Option<String>,
    /// Where the checker's SMTP mail goes (default USER@localhost): it should arrive in
    /// USER's POP3 maildrop, where the checker reads it back and deletes it at the end.
    #[arg(long, value_name = "ADDR")]
    pub rcpt: Option<String>,
    /// With no mail of the checker's own in the maildrop (only --pop3 given), let the
    /// checks of DELE, RSET and QUIT use the last message; pop3.quit-deletes deletes it.
    #[arg(long)]
    pub allow_delete: bool,
    /// Check a built-in replay of a seed's server instead ("spot the error"):
    /// class-project, assignment or kilroy.
    #[arg(long, value_name = "NAME", value_parser = ["class-project", "assignment", "kilroy"])]
    pub against: Option<String>,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the results as JUnit XML to FILE (for autograders).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Capture the run on loopback and write it as pcapng to FILE, each packet commented
    /// with its check (needs root or CAP_NET_RAW; without, the run goes on uncaptured).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// The interface to capture on with --pcap.
    #[arg(long, default_value = "lo")]
    pub interface: String,
    /// How long each step (connecting, one reply) may take, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub timeout: f64,
}

/// Runs `mailwire check` and returns its exit code (0, 1 or 2).
pub fn run_check(args: CheckArgs) -> u8 {
    match check_with(args) {
        Ok(status) => status.code(),
        Err(message) => {
            eprintln!("mailwire check: {message}");
            ExitStatus::NothingChecked.code()
        }
    }
}

fn check_with(args: CheckArgs) -> Result<ExitStatus, String> {
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 600.0) {
        return Err(format!(
            "--timeout {}: give a number of seconds between 0 and 600",
            args.timeout
        ));
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    // A replay server lives until the end of the run.
    let mut _replay = None;
    let settings = match args.against.as_deref() {
        Some(name) => {
            let flaw = Flaw::from_name(name)
                .ok_or_else(|| format!("--against {name}: no such replay server"))?;
            if args.pop3.is_some() || args.smtp.is_some() {
                return Err("--against runs its own servers: leave out --pop3 and --smtp".into());
            }
            let r = replay::start(flaw).map_err(|e| e.to_string())?;
            println!(
                "Replaying {} on POP3 {} and SMTP {} (user {}, password {}). One thing in it is wrong: which?",
                flaw.source(),
                r.pop3,
                r.smtp,
                r.user,
                r.pass
            );
            let s = Settings {
                pop3: Some(r.pop3.to_string()),
                smtp: Some(r.smtp.to_string()),
                user: args.user.clone().unwrap_or_else(|| r.user.to_string()),
                pass: args.pass.clone().unwrap_or_else(|| r.pass.to_string()),
                rcpt: args.rcpt.clone().unwrap_or_else(|| r.rcpt.to_string()),
                allow_delete: args.allow_delete,
                timeout,
            };
            _replay = Some(r);
            s
        }
        None => {
            if args.pop3.is_none() && args.smtp.is_none() {
                return Err("give --pop3 HOST:PORT, --smtp HOST:PORT or both (or --against NAME for a built-in replay server)".into());
            }
            let (Some(user), Some(pass)) = (args.user.clone(), args.pass.clone()) else {
                return Err("give --user and --pass: a mailbox on the server the checker may log in to and send mail to".into());
            };
            let rcpt = args
                .rcpt
                .clone()
                .unwrap_or_else(|| format!("{user}@localhost"));
            Settings {
                pop3: args.pop3.clone(),
                smtp: args.smtp.clone(),
                user,
                pass,
                rcpt,
                allow_delete: args.allow_delete,
                timeout,
            }
        }
    };

    let capture = match &args.pcap {
        Some(_) => start_capture(&settings, &args.interface),
        None => None,
    };

    println!("{:<5} {:<6} {:<30} what", "", "level", "check");
    // A reason shared by a run of skips is printed once.
    let mut last_reason = String::new();
    let report = check::run(&settings, &mut |r: &CheckResult| {
        println!("{r}");
        let why = r.verdict.reason();
        if !why.is_empty() && why != last_reason {
            println!("{:13}{why}", "");
        }
        last_reason = why.to_string();
    });
    for (protocol, why) in &report.unreachable {
        println!("\n{protocol}: {why}");
    }
    print!("{}", report.details());
    println!("\n{}", report.summary());

    if let Some(path) = &args.json {
        write(path, &report.to_json())?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.junit {
        write(path, &report.to_junit())?;
        println!("wrote {}", path.display());
    }
    if let (Some(path), Some(capture)) = (&args.pcap, capture) {
        match capture.finish(&report, path, &args.interface) {
            Ok(packets) => println!(
                "wrote {} ({packets} packets, each commented with its check)",
                path.display()
            ),
            Err(why) => println!("no capture written to {}: {why}", path.display()),
        }
    }
    Ok(report.exit_status())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("could not write {}: {e}", path.display()))
}

/// A live capture of the run.
struct Capture {
    live: live::LiveCapture,
    rx: crossbeam_channel::Receiver<CaptureMessage>,
    ports: Vec<u16>,
    pop3_ports: Vec<u16>,
    smtp_ports: Vec<u16>,
}

/// Starts capturing the servers' ports; says why not and returns `None` when it cannot.
fn start_capture(settings: &Settings, interface: &str) -> Option<Capture> {
    let port_of = |addr: &Option<String>| -> Option<u16> {
        addr.as_deref()?
            .to_socket_addrs()
            .ok()?
            .next()
            .map(|a| a.port())
    };
    let pop3_ports: Vec<u16> = port_of(&settings.pop3).into_iter().collect();
    let smtp_ports: Vec<u16> = port_of(&settings.smtp).into_iter().collect();
    let ports: Vec<u16> = pop3_ports.iter().chain(&smtp_ports).copied().collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let config = LiveConfig {
        interface: interface.to_string(),
        filter: live::port_filter(&ports),
        ..LiveConfig::default()
    };
    match live::start(config, tx) {
        Ok(live) => Some(Capture {
            live,
            rx,
            ports,
            pop3_ports,
            smtp_ports,
        }),
        Err(e) => {
            println!("[no capture: {e} The checks run without it; no pcapng will be written.]");
            None
        }
    }
}

impl Capture {
    /// Stops the capture and writes the pcapng: one step per exchange of each check
    /// ([`check_timeline`]), so every packet's comment names its check. Returns the number
    /// of packets.
    fn finish(self, report: &Report, path: &Path, interface: &str) -> Result<usize, String> {
        // The last FINs and ACKs.
        std::thread::sleep(Duration::from_millis(300));
        self.live.stop();
        let mut packets = Vec::new();
        let mut status = CaptureStatus::Live {
            interface: interface.to_string(),
            ports: self.ports.clone(),
            sandboxed: false,
        };
        for message in self.rx.try_iter() {
            match message {
                CaptureMessage::Packet(p) => packets.push(p),
                CaptureMessage::Stats { received, dropped } => {
                    status = CaptureStatus::Stopped { received, dropped };
                }
                CaptureMessage::Failed(e) => return Err(format!("the capture failed: {e}")),
            }
        }
        let timeline = check_timeline("mailwire check", report, packets, status).timeline;
        let hints = ExportHints {
            pop3_ports: self.pop3_ports,
            smtp_ports: self.smtp_ports,
            interface: Some(interface.to_string()),
        };
        write_pcapng(&timeline, path, &hints).map_err(|e| e.to_string())?;
        Ok(timeline.packets.len())
    }
}
