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
//!   [`narration`], [`server_state`], [`controls`] (and the banner), [`live`],
//!   [`connections`] (the connection list and its filters), [`check_panel`] ("Check a
//!   server": the conformance checker's form and results; its run becomes the timeline),
//!   [`quiz_panel`] (quiz mode's questions, over [`quiz_state`]: asked before a step shows);
//! - [`loader`]: a capture file read and decoded on its own thread (`mailwire FILE`, Open,
//!   a file dropped on the window);
//! - [`watch`]: ports watched live on a thread of its own (the Open menu, `mailwire
//!   --watch`), mirrored into the window's timeline as the traffic arrives;
//! - [`follow`]: the Follow stream view (a connection's bytes as text, by direction);
//! - [`theme`] and [`screenshot`] (`mailwire --screenshot FILE`);
//! - [`open_window`]: runs the window; the `mailwire` command without a subcommand
//!   (`src/cli/window.rs`) decides first whether it runs in the sandbox.
//!
//! Invariants: drawing code never blocks and never changes the timeline; nothing is drawn
//! that was not captured or said (without capture the packet panes say "not captured" and
//! why).
//!
//! [`Recorder`]: crate::scenario::recorder::Recorder

pub mod app;
pub mod check_panel;
pub mod connections;
pub mod controls;
pub mod details;
pub mod diagram;
pub mod follow;
pub mod live;
pub mod loader;
pub mod narration;
pub mod quiz_panel;
pub mod quiz_state;
pub mod rows;
pub mod screenshot;
pub mod server_state;
pub mod state;
pub mod stop;
pub mod theme;
pub mod watch;
pub mod worker;

use eframe::egui;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use app::{AppOptions, MailwireApp};

/// The window's size at start, in points.
const WINDOW_SIZE: [f32; 2] = [1600.0, 1000.0];

/// Why the window run failed.
#[derive(Debug)]
pub enum WindowError {
    /// The window could not be created (no display, no OpenGL).
    NoWindow(String),
    /// It ran but did not do what was asked (a screenshot that was not taken).
    Failed(String),
}

/// Opens the window with `options` and runs it until it closes (SIGTERM, SIGINT and SIGHUP
/// close it the normal way); with `screenshot`, takes the demo's screenshot (or, with
/// `options.file`, the capture's once decoded) there and closes.
/// Where it runs (in the sandbox or not) is decided before, by the window command
/// (`src/cli/window.rs`).
pub fn open_window(options: AppOptions, screenshot: Option<PathBuf>) -> Result<(), WindowError> {
    let result: screenshot::ScreenshotResult = Arc::new(Mutex::new(None));
    let from_file = options.file.is_some();
    if screenshot.is_some() {
        // Bounded in time even if the window never draws a frame (a capture file gets ten
        // minutes more to be read).
        let extra = if from_file { 600 } else { 0 };
        let limit = screenshot::LIMIT + Duration::from_secs(15 + extra);
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
    let close_on_signal =
        stop::CloseOnSignal::install().map_err(|e| WindowError::Failed(e.to_string()))?;
    let run = eframe::run_native(
        "mailwire",
        native,
        Box::new(move |cc| {
            close_on_signal.attach(&cc.egui_ctx);
            let mut app = MailwireApp::new(&cc.egui_ctx, options)?;
            if let Some(path) = screenshot {
                let mut plan = screenshot::ScreenshotPlan::new(path, plan_result);
                plan.file = from_file;
                app.take_screenshot(plan);
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
