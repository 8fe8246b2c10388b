//! A throwaway directory for the store's tests, removed when dropped (no tempfile crate).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh, empty directory under the system temp dir: `mailwire-store-<pid>-<n>-<nanos>`.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates the directory.
    pub(crate) fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("mailwire-store-{}-{n}-{nanos}", std::process::id()));
        #[allow(
            clippy::expect_used,
            reason = "test helper: failing to make a temp dir ends the test"
        )]
        std::fs::create_dir_all(&path).expect("create a temp dir for a test");
        TempDir { path }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover folder in the temp dir is harmless.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
