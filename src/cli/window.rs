//! `mailwire` without a command: the classroom window. Like `mailwire run`, it re-launches
//! itself inside mailwire's private network when that works (capture without root, the
//! standard ports 110 and 25); if the window cannot open in there (the display is not
//! reachable), it opens outside and says why. `mailwire FILE` opens the window on a capture
//! file instead: no servers, no capture, so no private network either. `mailwire --watch
//! PORTS` opens it watching those ports live: outside the private network, where the
//! student's programs are (capture then needs root or CAP_NET_RAW).

use std::path::PathBuf;

use crate::capture::sandbox::{self, OnParentDeath};
use crate::viz::watch::{WatchRequest, parse_ports};
use crate::viz::{AppOptions, WindowError, open_window};

/// How `mailwire` (no subcommand) opens the window.
#[derive(Debug, Clone, Default)]
pub struct WindowArgs {
    /// Run the demo, save a PNG of the window here, and exit.
    pub screenshot: Option<PathBuf>,
    /// Start in presenter mode: dark theme, larger text, no live-use panel.
    pub presenter: bool,
    /// Stay on the real loopback (no private network): other servers on this computer can
    /// be reached, and capture needs root or CAP_NET_RAW.
    pub no_sandbox: bool,
    /// Show this capture file instead of running the demo scenario.
    pub file: Option<PathBuf>,
    /// Watch these TCP ports live (as typed: comma-separated) instead of running the demo.
    pub watch: Option<String>,
    /// The interface to watch on (`lo` when not given).
    pub interface: Option<String>,
    /// With `file`: an NSS key log whose TLS secrets are added to the file's own.
    pub keylog: Option<PathBuf>,
}

/// The commands a FILE argument could be mistaken for (clap reads these as commands).
const COMMANDS: [&str; 8] = [
    "serve",
    "import-assignment",
    "open",
    "watch",
    "client",
    "telnet",
    "run",
    "check",
];

/// A FILE argument that is not a readable file: what to say (a mistyped command reads as a
/// file name, so the message lists the commands).
fn check_file(path: &std::path::Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!(
            "{} is not a file: give a pcap or pcapng capture file",
            path.display()
        )),
        Err(e) => {
            let name = path.display().to_string();
            let hint = if path.components().count() == 1 && !name.contains('.') {
                format!(
                    " If you meant a command: they are {}; see `mailwire --help`.",
                    COMMANDS.join(", ")
                )
            } else {
                String::new()
            };
            Err(format!("cannot open the capture file {name}: {e}.{hint}"))
        }
    }
}

/// The exit code of a sandboxed window process whose window could not open (the parent
/// then opens the window itself, outside the sandbox).
const WINDOW_FAILED_EXIT: i32 = 3;

/// Opens the window (in mailwire's private network when that works, like `mailwire run`,
/// so capture needs no root and the servers use ports 110 and 25).
pub fn run_window(args: WindowArgs) -> Result<(), String> {
    if let Some(file) = &args.file {
        check_file(file)?;
    }
    // A bad key file is reported here, before any window opens (the file and the line).
    let keylog = match &args.keylog {
        Some(path) => super::open::load_keylog(path)?,
        None => crate::proto::keylog::KeyLog::default(),
    };
    let watch = match &args.watch {
        Some(ports) => Some(parse_ports(ports).map_err(|e| format!("--watch {ports}: {e}"))?),
        None => None,
    };
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
        && std::env::var_os("WAYLAND_SOCKET").is_none()
    {
        return Err(
            "there is no display to open the window on (DISPLAY and WAYLAND_DISPLAY \
                    are not set). Start mailwire from a desktop session; in a terminal, \
                    `mailwire run rfc1939` shows the same scenario as text."
                .to_string(),
        );
    }
    if let Some(ports) = watch {
        return run_watch_window(&args, ports);
    }
    if let Some(file) = &args.file {
        let options = AppOptions {
            presenter: args.presenter,
            file: Some(file.clone()),
            keylog,
            ..AppOptions::default()
        };
        return match open_window(options, args.screenshot) {
            Err(WindowError::NoWindow(why)) => Err(format!("cannot open the window: {why}")),
            Err(WindowError::Failed(why)) => Err(why),
            Ok(()) => Ok(()),
        };
    }
    let in_sandbox = sandbox::is_sandboxed_copy();
    let mut note = None;
    if !in_sandbox && !args.no_sandbox && sandbox::sandbox_available() {
        // A stop signal for this process is passed on to the window, which closes cleanly;
        // if this process is killed, the window goes too (instead of living on without the
        // process that started it).
        match sandbox::rerun_in_sandbox(OnParentDeath::Terminate) {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) if status.code() == Some(WINDOW_FAILED_EXIT) => {
                note = Some(
                    "The window could not open inside mailwire's private network (the display \
                     is not reachable from there), so it runs outside it: capture then needs \
                     root or CAP_NET_RAW, and the servers use free ports."
                        .to_string(),
                );
            }
            Ok(status) => std::process::exit(status.code().unwrap_or(1)),
            Err(why) => {
                note = Some(format!(
                    "mailwire's private network could not be made ({why}); running without it."
                ));
            }
        }
    }
    let options = AppOptions {
        recorder: super::recorder_options(in_sandbox),
        note,
        presenter: args.presenter,
        ..AppOptions::default()
    };
    match open_window(options, args.screenshot) {
        Err(WindowError::NoWindow(why)) if in_sandbox => {
            eprintln!("mailwire: the window did not open in the private network: {why}");
            std::process::exit(WINDOW_FAILED_EXIT);
        }
        Err(WindowError::NoWindow(why)) => Err(format!("cannot open the window: {why}")),
        Err(WindowError::Failed(why)) => Err(why),
        Ok(()) => Ok(()),
    }
}

/// `mailwire --watch PORTS`: the window watching those ports. It never enters the private
/// network (the student's programs run on the real loopback, which cannot be seen from
/// in there). Without capture rights the window opens all the same and its banner says why
/// and how to grant them (no packet is invented).
fn run_watch_window(args: &WindowArgs, ports: Vec<u16>) -> Result<(), String> {
    let interface = args.interface.clone().unwrap_or_else(|| "lo".to_string());
    if interface.trim().is_empty() {
        return Err("--interface: name the interface to capture on (lo is the loopback)".into());
    }
    let options = AppOptions {
        presenter: args.presenter,
        watch: Some(WatchRequest { ports, interface }),
        ..AppOptions::default()
    };
    match open_window(options, args.screenshot.clone()) {
        Err(WindowError::NoWindow(why)) => Err(format!("cannot open the window: {why}")),
        Err(WindowError::Failed(why)) => Err(why),
        Ok(()) => Ok(()),
    }
}
