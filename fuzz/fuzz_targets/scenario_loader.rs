//! The scenario loader (`Scenario::parse`) on any text. Invariants: no panic; text that is
//! not TOML at all gets an error that names a line, and any line named lies in the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(e) = Scenario::parse(text, "fuzz.toml") else {
        return;
    };
    let lines = text.split('\n').count();
    if let Some(line) = e.line {
        assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
    }
    if toml::from_str::<toml::Table>(text).is_err() {
        assert!(e.line.is_some(), "a TOML error without a line: {e}");
    }
    assert!(!e.to_string().is_empty());
});
