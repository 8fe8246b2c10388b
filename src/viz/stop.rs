//! Stop signals (SIGTERM, SIGINT, SIGHUP) close the window the normal way, so the
//! scenario's servers stop and its temporary folder is removed. A signal that comes more
//! than [`GRACE`] after the first one ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;

/// After this long, another stop signal no longer waits for the window to close.
pub const GRACE: Duration = Duration::from_secs(3);

/// Closes the window on a stop signal; the window's context is attached once it exists (a
/// signal before that closes it as soon as it is attached).
#[derive(Clone, Default)]
pub struct CloseOnSignal {
    ctx: Arc<Mutex<Option<egui::Context>>>,
    requested: Arc<AtomicBool>,
}

impl CloseOnSignal {
    /// Installs the handlers.
    pub fn install() -> Result<CloseOnSignal, crate::signals::SignalError> {
        let this = CloseOnSignal::default();
        let handler = this.clone();
        let mut first: Option<Instant> = None;
        crate::signals::on_stop_signal(move || {
            let now = Instant::now();
            match first {
                Some(at) if now.duration_since(at) > GRACE => {
                    eprintln!("mailwire: stopped by a second signal");
                    std::process::exit(1);
                }
                Some(_) => {}
                None => first = Some(now),
            }
            handler.requested.store(true, Ordering::SeqCst);
            handler.close();
        })?;
        Ok(this)
    }

    /// The window exists: a signal closes it from now on.
    pub fn attach(&self, ctx: &egui::Context) {
        if let Ok(mut slot) = self.ctx.lock() {
            *slot = Some(ctx.clone());
        }
        if self.requested.load(Ordering::SeqCst) {
            self.close();
        }
    }

    fn close(&self) {
        if let Ok(slot) = self.ctx.lock()
            && let Some(ctx) = slot.as_ref()
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            ctx.request_repaint();
        }
    }
}
