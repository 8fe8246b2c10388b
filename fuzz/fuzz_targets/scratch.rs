//! The scratch file of the targets that read a file (`capture_file`, `secrets_blocks`): one
//! per fuzzing process, written anew for every input.

use std::path::PathBuf;
use std::sync::OnceLock;

/// `mailwire-fuzz-<tag>-<pid>.pcapng` in /dev/shm (in memory) when it exists, else in the
/// temporary folder; chosen once per process (`run-all.sh` removes them afterwards).
pub fn path(tag: &str) -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("mailwire-fuzz-{tag}-{}.pcapng", std::process::id()))
    })
}
