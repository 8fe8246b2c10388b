//! `proto::keylog::KeyLog::parse` (NSS key log text, as a key file or a Decryption Secrets
//! Block holds it) on any text. Invariants: no panic; a log that parses, written out again
//! with `to_nss_text`, parses to the same entries; an error names a line of the text
//! (1-based, at most the number of lines) and has words.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::proto::keylog::KeyLog;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match KeyLog::parse(&text) {
        Ok(log) => {
            let again = KeyLog::parse(&log.to_nss_text())
                .unwrap_or_else(|e| panic!("to_nss_text of a parsed log does not parse: {e}"));
            assert_eq!(
                again.entries(),
                log.entries(),
                "entries changed on a round trip"
            );
            for e in log.entries() {
                assert!(!e.label.is_empty() && !e.client_random.is_empty() && !e.secret.is_empty());
                assert_eq!(log.secret(&e.label, &e.client_random).is_some(), true);
            }
        }
        Err(e) => {
            let lines = text.lines().count();
            assert!(
                e.line >= 1 && e.line <= lines,
                "error on line {} of {lines}",
                e.line
            );
            assert!(!e.problem.is_empty());
            let bad = text.lines().nth(e.line - 1).unwrap_or_default();
            assert!(
                KeyLog::new().push_line(bad).is_err(),
                "line {} ({bad:?}) was named but parses alone",
                e.line
            );
        }
    }
});
