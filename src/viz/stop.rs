//! Stop signals (SIGTERM, SIGINT, SIGHUP) close the window the normal way, so the
//! scenario's servers stop and its temporary folder is removed. A signal that comes more
//! than [`GRACE`] after the first one ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;

/// After this long, another stop signal no longer waits for the window to close.
pub const GRACE: Duration = Duration::from_secs(3);

/// Calls `on_signal` (on a thread of its own) each time the process gets SIGTERM, SIGINT
/// or SIGHUP. The handlers are in place when this returns.
pub fn on_stop_signal(on_signal: impl FnMut() + Send + 'static) -> Result<(), String> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("stop-signals".into())
        .spawn(move || wait_for_signals(&ready_tx, on_signal))
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    ready_rx
        .recv()
        .map_err(|_| "the signal thread ended before it was ready".to_string())?
}

#[cfg(unix)]
fn wait_for_signals(
    ready: &std::sync::mpsc::SyncSender<Result<(), String>>,
    mut on_signal: impl FnMut(),
) {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start the signal runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async {
        let kinds = [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
        ];
        let mut streams = Vec::new();
        for kind in kinds {
            match signal(kind) {
                Ok(s) => streams.push(s),
                Err(e) => {
                    let _ = ready.send(Err(format!("cannot handle stop signals: {e}")));
                    return;
                }
            }
        }
        let _ = ready.send(Ok(()));
        let [term, int, hup] = streams.as_mut_slice() else {
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {}
            }
            on_signal();
        }
    });
}

#[cfg(not(unix))]
fn wait_for_signals(
    ready: &std::sync::mpsc::SyncSender<Result<(), String>>,
    _on_signal: impl FnMut(),
) {
    let _ = ready.send(Ok(()));
}

/// Closes the window on a stop signal; the window's context is attached once it exists (a
/// signal before that closes it as soon as it is attached).
#[derive(Clone, Default)]
pub struct CloseOnSignal {
    ctx: Arc<Mutex<Option<egui::Context>>>,
    requested: Arc<AtomicBool>,
}

impl CloseOnSignal {
    /// Installs the handlers.
    pub fn install() -> Result<CloseOnSignal, String> {
        let this = CloseOnSignal::default();
        let handler = this.clone();
        let mut first: Option<Instant> = None;
        on_stop_signal(move || {
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
