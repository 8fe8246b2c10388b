//! `capture::file::read_secrets` (the pcapng Decryption Secrets Blocks, walked by hand in
//! either byte order) on any bytes written to a file. Invariants: no panic; every note's
//! byte offset lies inside the file, at a 4-byte boundary, and has words; every secret
//! returned parses again from its NSS key log text; TLS blocks were counted when secrets
//! were found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::capture::file::read_secrets;
use mailwire::proto::keylog::KeyLog;

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::path("secrets");
    if std::fs::write(path, data).is_err() {
        return;
    }
    let secrets = read_secrets(path);
    for note in &secrets.notes {
        assert!(
            note.offset < data.len() as u64,
            "a note at byte {} of a {}-byte file: {note}",
            note.offset,
            data.len()
        );
        assert_eq!(
            note.offset % 4,
            0,
            "a block offset not on a 4-byte boundary: {note}"
        );
        assert!(!note.to_string().is_empty());
    }
    if !secrets.keylog.is_empty() {
        assert!(secrets.tls_blocks > 0, "secrets without a TLS block");
    }
    let again = KeyLog::parse(&secrets.keylog.to_nss_text())
        .unwrap_or_else(|e| panic!("a secret read from the file does not parse: {e}"));
    assert_eq!(again.entries(), secrets.keylog.entries());
});
