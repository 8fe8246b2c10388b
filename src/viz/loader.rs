//! Opening a capture file in the window: a thread ("capture-loader") reads and decodes it
//! with [`lesson::load_with_progress`] while the window goes on drawing, with a progress bar
//! from the counters it shares; the finished [`Timeline`] is moved to the window whole (no
//! copy of the packets).
//!
//! A load that is replaced by another (a second file dropped on the window) is told to stop
//! at its next progress report, and its result is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::lesson::{self, LessonError};
use crate::proto::keylog::KeyLog;
use crate::timeline::Timeline;

/// What the loader thread shares with the window while it runs.
#[derive(Debug, Default)]
pub struct Shared {
    packets: AtomicUsize,
    bytes: AtomicU64,
    decoded: AtomicBool,
    cancel: AtomicBool,
}

/// A file being loaded.
#[derive(Debug)]
pub struct Loading {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes (0 if unknown).
    pub size: u64,
    /// When the load started.
    pub started: Instant,
    shared: Arc<Shared>,
    result: Receiver<Result<Timeline, LessonError>>,
}

/// A finished load.
#[derive(Debug)]
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// The timeline, or why the file could not be read.
    pub result: Result<Timeline, LessonError>,
    /// How long reading and decoding took.
    pub elapsed: Duration,
}

impl Loading {
    /// Starts loading `path` on a thread of its own; `wake` is called on each progress
    /// report and when it ends (the window passes a repaint request). `keys` are added to
    /// the TLS secrets the file carries (`mailwire --keylog KEYS FILE`).
    pub fn start(
        path: &Path,
        keys: KeyLog,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Loading, String> {
        let shared = Arc::new(Shared::default());
        let (tx, result) = crossbeam_channel::bounded(1);
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        let thread_shared = Arc::clone(&shared);
        let thread_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("capture-loader".into())
            .spawn(move || {
                let loaded = lesson::load_with_progress(&thread_path, |p| {
                    thread_shared.packets.store(p.packets, Ordering::Relaxed);
                    thread_shared.bytes.store(p.bytes, Ordering::Relaxed);
                    thread_shared.decoded.store(p.decoded, Ordering::Relaxed);
                    wake();
                    !thread_shared.cancel.load(Ordering::Relaxed)
                });
                let loaded = loaded.map(|mut timeline| {
                    timeline.keylog.extend(&keys);
                    timeline
                });
                let _ = tx.send(loaded);
                wake();
            })
            .map_err(|e| format!("cannot start the thread that reads the capture file: {e}"))?;
        Ok(Loading {
            path: path.to_path_buf(),
            size,
            started: Instant::now(),
            shared,
            result,
        })
    }

    /// Packets decoded so far.
    pub fn packets(&self) -> usize {
        self.shared.packets.load(Ordering::Relaxed)
    }

    /// The share of the file read, 0 to 1 (about: record headers vary with the format).
    pub fn fraction(&self) -> f32 {
        if self.shared.decoded.load(Ordering::Relaxed) {
            return 1.0;
        }
        if self.size == 0 {
            return 0.0;
        }
        let bytes = self.shared.bytes.load(Ordering::Relaxed);
        (bytes as f64 / self.size as f64).clamp(0.0, 0.99) as f32
    }

    /// Whether the packets are all decoded (the steps are being made).
    pub fn decoded(&self) -> bool {
        self.shared.decoded.load(Ordering::Relaxed)
    }

    /// The finished load, once there is one. Never blocks.
    pub fn poll(&self) -> Option<Loaded> {
        let result = self.result.try_recv().ok()?;
        Some(Loaded {
            path: self.path.clone(),
            result,
            elapsed: self.started.elapsed(),
        })
    }

    /// Waits (at most `limit`) for the load to end: for tests and benchmarks.
    pub fn wait(&self, limit: Duration) -> Option<Loaded> {
        let result = self.result.recv_timeout(limit).ok()?;
        Some(Loaded {
            path: self.path.clone(),
            result,
            elapsed: self.started.elapsed(),
        })
    }
}

impl Drop for Loading {
    /// A load nobody waits for stops at its next progress report.
    fn drop(&mut self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
    }
}
