//! The classroom window (egui/eframe): a sequence diagram of every command and reply (and,
//! in the TCP view, every segment), the selected segment's headers over its hex dump, the
//! step's narration with the reply codes explained, the servers' state, step controls,
//! a live console and the seed-001 menu client, and the capture status.
//!
//! Structure (see ARCHITECTURE.md):
//! - [`worker`]: the "demo-worker" thread that owns the scenario [`Recorder`] (servers,
//!   client, capture) and mirrors its timeline to the window;
//! - [`app`]: the `eframe::App`; `logic` drains the worker's channels into the window's
//!   own [`crate::timeline::Timeline`], `ui` draws and emits [`state::UiAction`]s;
//! - [`state`]: the window's state apart from painting (selection, cursor, play timer,
//!   presenter settings, forms), unit-tested without a window;
//! - one file per pane: [`diagram`] (with its row model [`rows`]), [`details`],
//!   [`narration`], [`server_state`], [`controls`] (and the banner), [`live`];
//! - [`theme`] and [`screenshot`] (`mailwire --screenshot FILE`).
//!
//! Invariants: drawing code never blocks and never changes the timeline; nothing is drawn
//! that was not captured or said (without capture the packet panes say "not captured" and
//! why).
//!
//! [`Recorder`]: crate::scenario::recorder::Recorder

pub mod app;
pub mod controls;
pub mod details;
pub mod diagram;
pub mod live;
pub mod narration;
pub mod rows;
pub mod screenshot;
pub mod server_state;
pub mod state;
pub mod stop;
pub mod theme;
pub mod worker;

use eframe::egui;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::capture::sandbox;
use crate::scenario::cli::SANDBOX_ENV;
use crate::scenario::recorder::RecorderOptions;

pub use app::{AppOptions, MailwireApp};

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
}

/// The exit code of a sandboxed window process whose window could not open (the parent
/// then opens the window itself, outside the sandbox).
const WINDOW_FAILED_EXIT: i32 = 3;

/// The window's size at start, in points.
const WINDOW_SIZE: [f32; 2] = [1600.0, 1000.0];

/// Opens the window (in mailwire's private network when that works, like `mailwire run`,
/// so capture needs no root and the servers use ports 110 and 25).
pub fn run_window(args: WindowArgs) -> Result<(), String> {
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
    let in_sandbox = std::env::var_os(SANDBOX_ENV).is_some();
    let mut note = None;
    if !in_sandbox && !args.no_sandbox && sandbox::sandbox_available() {
        match reexec_in_sandbox() {
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
    let recorder = if in_sandbox {
        RecorderOptions {
            pop3: SocketAddr::from(([127, 0, 0, 1], 110)),
            smtp: SocketAddr::from(([127, 0, 0, 1], 25)),
            sandboxed: true,
            ..RecorderOptions::default()
        }
    } else {
        RecorderOptions::default()
    };
    let options = AppOptions {
        recorder,
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

fn reexec_in_sandbox() -> Result<std::process::ExitStatus, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut command = sandbox::sandboxed_command(&exe);
    command
        .args(std::env::args_os().skip(1))
        .env(SANDBOX_ENV, "1");
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: runs in the child between fork and exec; prctl is async-signal-safe and
        // touches no memory of ours. If this process is killed, the window goes too
        // (instead of living on without the process that started it).
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    // A stop signal for this process is passed on to the window, which closes cleanly.
    crate::signals::run_passing_on_stop_signals(&mut command, |e| {
        sandbox::SandboxError::spawn_failed(&exe, e).to_string()
    })
}

/// Why the window run failed.
#[derive(Debug)]
enum WindowError {
    /// The window could not be created (no display, no OpenGL).
    NoWindow(String),
    /// It ran but did not do what was asked (a screenshot that was not taken).
    Failed(String),
}

fn open_window(options: AppOptions, screenshot: Option<PathBuf>) -> Result<(), WindowError> {
    let result: screenshot::ScreenshotResult = Arc::new(Mutex::new(None));
    if screenshot.is_some() {
        // Bounded in time even if the window never draws a frame.
        let limit = screenshot::LIMIT + Duration::from_secs(15);
        let _ = std::thread::Builder::new()
            .name("screenshot-watchdog".into())
            .spawn(move || {
                std::thread::sleep(limit);
                eprintln!(
                    "mailwire: no screenshot after {} s; giving up",
                    limit.as_secs()
                );
                std::process::exit(1);
            });
    }
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size(WINDOW_SIZE)
            .with_min_inner_size([900.0, 600.0])
            .with_title("mailwire — POP3 and SMTP on the wire"),
        ..eframe::NativeOptions::default()
    };
    let wanted = screenshot.is_some();
    let plan_result = result.clone();
    let close_on_signal = stop::CloseOnSignal::install().map_err(WindowError::Failed)?;
    let run = eframe::run_native(
        "mailwire",
        native,
        Box::new(move |cc| {
            close_on_signal.attach(&cc.egui_ctx);
            let mut app = MailwireApp::new(&cc.egui_ctx, options)?;
            if let Some(path) = screenshot {
                app.take_screenshot(screenshot::ScreenshotPlan::new(path, plan_result));
            }
            Ok(Box::new(app))
        }),
    );
    let outcome = result.lock().ok().and_then(|mut r| r.take());
    match (run, outcome) {
        (Err(e), _) => Err(WindowError::NoWindow(e.to_string())),
        (Ok(()), Some(Ok(path))) => {
            println!("wrote {}", path.display());
            Ok(())
        }
        (Ok(()), Some(Err(why))) => Err(WindowError::Failed(why)),
        (Ok(()), None) if wanted => Err(WindowError::Failed(
            "the window closed before the screenshot was taken".to_string(),
        )),
        (Ok(()), None) => Ok(()),
    }
}
