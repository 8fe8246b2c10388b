//! The capture file reader (`capture::file`, libpcap underneath) and the lesson loader
//! (`lesson::load`: the steps kept in a pcapng comment, every packet decoded into the
//! timeline) on any bytes written to a file. Invariants: no panic; every error has words;
//! after an error the reader hands out nothing more; the packet count is the packets read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::capture::file::CaptureFile;

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::path("capture");
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
