//! Stop signals (SIGTERM, SIGINT, SIGHUP): a thread that waits for them, and a launcher
//! that passes them on to the child it started (the sandboxed copy of mailwire), so the
//! child can stop cleanly instead of dying with its parent.

use std::fmt;
use std::io;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

/// Why the stop signals cannot be listened for.
#[derive(Debug)]
pub enum SignalError {
    /// The thread that waits for the signals could not be started.
    Thread(io::Error),
    /// That thread ended before its handlers were in place.
    ThreadEnded,
    /// The signal thread's tokio runtime could not be built.
    Runtime(io::Error),
    /// A handler could not be installed.
    Handler(io::Error),
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::Thread(e) => write!(f, "cannot start the signal thread: {e}"),
            SignalError::ThreadEnded => f.write_str("the signal thread ended before it was ready"),
            SignalError::Runtime(e) => write!(f, "cannot start the signal runtime: {e}"),
            SignalError::Handler(e) => write!(f, "cannot handle stop signals: {e}"),
        }
    }
}

impl std::error::Error for SignalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignalError::Thread(e) | SignalError::Runtime(e) | SignalError::Handler(e) => Some(e),
            SignalError::ThreadEnded => None,
        }
    }
}

/// Why [`run_passing_on_stop_signals`] could not run its command to the end.
#[derive(Debug)]
pub enum LaunchError {
    /// The stop signals could not be listened for, so none could be passed on.
    Signals(SignalError),
    /// The command did not start (the caller knows best how to explain it).
    Spawn(io::Error),
    /// It started, but waiting for it failed.
    Wait {
        /// The program that was started.
        program: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::Signals(e) => e.fmt(f),
            LaunchError::Spawn(e) => write!(f, "cannot start the program: {e}"),
            LaunchError::Wait { program, source } => {
                write!(f, "cannot wait for {program}: {source}")
            }
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Signals(e) => Some(e),
            LaunchError::Spawn(e) | LaunchError::Wait { source: e, .. } => Some(e),
        }
    }
}

impl From<SignalError> for LaunchError {
    fn from(e: SignalError) -> Self {
        LaunchError::Signals(e)
    }
}

/// Calls `on_signal` (on a thread of its own) each time the process gets SIGTERM, SIGINT
/// or SIGHUP. The handlers are in place when this returns.
pub fn on_stop_signal(on_signal: impl FnMut() + Send + 'static) -> Result<(), SignalError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("stop-signals".into())
        .spawn(move || wait_for_signals(&ready_tx, on_signal))
        .map_err(SignalError::Thread)?;
    ready_rx.recv().map_err(|_| SignalError::ThreadEnded)?
}

/// SIGTERM, SIGINT (Ctrl-C) and SIGHUP (the terminal closed), listened for from creation
/// on, so none is missed between two waits. Needs a tokio runtime.
pub struct StopSignals {
    #[cfg(unix)]
    streams: [tokio::signal::unix::Signal; 3],
}

impl StopSignals {
    /// Installs the handlers (needs a tokio runtime).
    pub fn new() -> Result<StopSignals, SignalError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind| signal(kind).map_err(SignalError::Handler);
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
    ready: &std::sync::mpsc::SyncSender<Result<(), SignalError>>,
    mut on_signal: impl FnMut(),
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(SignalError::Runtime(e)));
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
/// (a signal before it started ends this process). A failed start is
/// [`LaunchError::Spawn`], for the caller to explain.
pub fn run_passing_on_stop_signals(command: &mut Command) -> Result<ExitStatus, LaunchError> {
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
    let mut child = command.spawn().map_err(LaunchError::Spawn)?;
    child_pid.store(
        libc::pid_t::try_from(child.id()).unwrap_or(0),
        Ordering::SeqCst,
    );
    child
        .wait()
        .map_err(|source| LaunchError::Wait { program, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_failed() {
        let os = || io::Error::other("no more threads");
        assert_eq!(
            SignalError::Thread(os()).to_string(),
            "cannot start the signal thread: no more threads"
        );
        assert_eq!(
            SignalError::ThreadEnded.to_string(),
            "the signal thread ended before it was ready"
        );
        assert_eq!(
            SignalError::Runtime(os()).to_string(),
            "cannot start the signal runtime: no more threads"
        );
        assert_eq!(
            SignalError::Handler(os()).to_string(),
            "cannot handle stop signals: no more threads"
        );
        assert_eq!(
            LaunchError::Wait {
                program: "/bin/true".into(),
                source: os()
            }
            .to_string(),
            "cannot wait for /bin/true: no more threads"
        );
        assert_eq!(
            LaunchError::from(SignalError::ThreadEnded).to_string(),
            "the signal thread ended before it was ready"
        );
    }
}
