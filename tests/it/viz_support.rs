//! What the window's egui_kittest tests share: a harness on a window with a worker, and
//! stepping it until the worker's answer shows.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use mailwire::viz::{AppOptions, MailwireApp};

/// How long a test waits for the worker.
pub const WAIT: Duration = Duration::from_secs(20);

/// The window with its worker started on `options`, on a screen of `size` points.
pub fn harness(options: AppOptions, size: egui::Vec2) -> Harness<'static, MailwireApp> {
    let app = MailwireApp::start(options, || {}).expect("the worker starts");
    Harness::builder()
        .with_size(size)
        .with_max_steps(10_000)
        .build_ui_state(|ui, app: &mut MailwireApp| app.frame_ui(ui), app)
}

/// Steps the harness (the worker answers on its own thread) until `done` holds, then two
/// more frames: the UI shows what the state says, and the diagram scrolls to new rows the
/// frame after they appear.
pub fn wait_until(
    harness: &mut Harness<'static, MailwireApp>,
    what: &str,
    done: impl Fn(&Harness<'static, MailwireApp>) -> bool,
) {
    let start = Instant::now();
    loop {
        harness.step();
        if done(harness) {
            harness.step();
            harness.step();
            return;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
