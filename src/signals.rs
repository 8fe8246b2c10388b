//! Stop signals (SIGTERM, SIGINT, SIGHUP): a thread that waits for them, and a launcher
//! that passes them on to the child it started (the sandboxed copy of mailwire), so the
//! child can stop cleanly instead of dying with its parent.

use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

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

/// SIGTERM, SIGINT (Ctrl-C) and SIGHUP (the terminal closed), listened for from creation
/// on, so none is missed between two waits. Needs a tokio runtime.
pub struct StopSignals {
    #[cfg(unix)]
    streams: [tokio::signal::unix::Signal; 3],
}

impl StopSignals {
    pub fn new() -> Result<StopSignals, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen =
                |kind| signal(kind).map_err(|e| format!("cannot handle stop signals: {e}"));
            Ok(StopSignals {
                streams: [
                    listen(SignalKind::terminate())?,
                    listen(SignalKind::interrupt())?,
                    listen(SignalKind::hangup())?,
                ],
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    /// Waits for the next stop signal.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        {
            let [term, int, hup] = &mut self.streams;
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn wait_for_signals(
    ready: &std::sync::mpsc::SyncSender<Result<(), String>>,
    mut on_signal: impl FnMut(),
) {
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
        let mut signals = match StopSignals::new() {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        loop {
            signals.next().await;
            on_signal();
        }
    });
}

/// Starts `command` and waits for it; a stop signal meanwhile is passed on to it as SIGTERM
/// (a signal before it started ends this process). `spawn_error` explains a failed start.
pub fn run_passing_on_stop_signals(
    command: &mut Command,
    spawn_error: impl FnOnce(&std::io::Error) -> String,
) -> Result<ExitStatus, String> {
    let child_pid = Arc::new(AtomicI32::new(0));
    let target = Arc::clone(&child_pid);
    on_stop_signal(move || {
        let pid = target.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill takes no pointers, so it cannot touch this process's memory.
            // `pid` is stored only once `spawn` returned our child, and the `wait` below is
            // the only thing that reaps it: until then the pid names that child (at worst as
            // a zombie) and cannot have been reused by another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        } else {
            std::process::exit(1);
        }
    })?;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command.spawn().map_err(|e| spawn_error(&e))?;
    child_pid.store(
        libc::pid_t::try_from(child.id()).unwrap_or(0),
        Ordering::SeqCst,
    );
    child
        .wait()
        .map_err(|e| format!("cannot wait for {program}: {e}"))
}
