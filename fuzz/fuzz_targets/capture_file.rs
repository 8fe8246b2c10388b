//! The capture file reader (`capture::file`, libpcap underneath) and the lesson loader
//! (`lesson::load`: the steps kept in a pcapng comment, every packet decoded into the
//! timeline) on any bytes written to a file. Invariants: no panic; every error has words;
//! after an error the reader hands out nothing more; the packet count is the packets read.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mailwire::capture::file::CaptureFile;

/// One file per fuzzing process, in memory when /dev/shm exists.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("mailwire-fuzz-{}.pcapng", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    if std::fs::write(path, data).is_err() {
        return;
    }
    if let Ok(mut file) = CaptureFile::open(path) {
        let mut n = 0;
        loop {
            match file.next_frame() {
                Ok(Some(_)) => n += 1,
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    assert!(matches!(file.next_frame(), Ok(None)), "read on after an error");
                    break;
                }
            }
            if n > 100_000 {
                break;
            }
        }
        assert_eq!(file.packets_read(), n);
    }
    match mailwire::lesson::load(path) {
        Ok(timeline) => drop(timeline),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
