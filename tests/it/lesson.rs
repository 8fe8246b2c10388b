//! A recorded lesson round-trips: the pcapng mailwire exports loads back with its steps,
//! captions and exchanges, each exchange linked to the same captured unit, so the lesson can
//! be stepped without servers. A capture from elsewhere loads with its packets and no steps.

use std::path::Path;

use mailwire::exchange::ExchangeKind;
use mailwire::export::pcapng::{ExportHints, write_pcapng};
use mailwire::lesson;

use crate::common;

#[test]
fn an_exported_lesson_loads_back_with_its_steps() {
    for name in ["rfc1939", "assignment"] {
        let Some(recorded) = common::record_with_capture(name, "the lesson round trip") else {
            return;
        };
        common::assert_every_step_passed(name, &recorded);
        let dir = common::TempDir::new("lesson");
        let file = dir.path().join(format!("{name}.pcapng"));
        write_pcapng(&recorded, &file, &ExportHints::from_timeline(&recorded)).unwrap();

        let loaded = lesson::load(&file).unwrap();
        assert_eq!(loaded.packets.len(), recorded.packets.len(), "{name}");
        assert_eq!(loaded.steps.len(), recorded.steps.len(), "{name}");
        for (s, (a, b)) in recorded.steps.iter().zip(&loaded.steps).enumerate() {
            assert_eq!(a.caption, b.caption, "{name} step {}", s + 1);
            assert_eq!(a.rfc, b.rfc, "{name} step {}", s + 1);
            assert_eq!(
                a.outcome.session,
                b.outcome.session,
                "{name} step {}",
                s + 1
            );
            assert_eq!(a.frames, b.frames, "{name} step {}", s + 1);
            assert_eq!(a.ends, b.ends, "{name} step {}", s + 1);
            // Commands and replies come back with their first lines, in order.
            let lines = |r: &mailwire::timeline::StepRecord| -> Vec<(ExchangeKind, String)> {
                r.outcome
                    .exchanges
                    .iter()
                    .filter(|e| e.kind != ExchangeKind::Content)
                    .map(|e| (e.kind, e.line.clone()))
                    .collect()
            };
            assert_eq!(lines(a), lines(b), "{name} step {}", s + 1);
            // And each is linked to the unit the recording linked it to.
            for e in 0..b.outcome.exchanges.len() {
                let unit = loaded.unit(s, e).map(|u| u.stream.clone());
                assert!(
                    unit.is_some(),
                    "{name} step {} exchange {e} is linked",
                    s + 1
                );
            }
        }
    }
}

#[test]
fn a_capture_from_elsewhere_gets_a_step_per_command_and_reply() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference-captures/zeek_pop3_pop3.pcap");
    if !file.exists() {
        eprintln!("SKIPPED: {} is not there", file.display());
        return;
    }
    let t = lesson::load(&file).unwrap();
    assert!(!t.packets.is_empty());
    assert!(t.capture_status().is_capturing());
    // zeek's pop3.pcap: per connection a greeting, then commands, most answered by a reply.
    assert!(t.steps.len() > 10, "{} steps", t.steps.len());
    let mut pairs = 0;
    for (s, step) in t.steps.iter().enumerate() {
        let kinds: Vec<ExchangeKind> = step.outcome.exchanges.iter().map(|e| e.kind).collect();
        match kinds.as_slice() {
            [ExchangeKind::Command, ExchangeKind::Reply] => pairs += 1,
            [ExchangeKind::Command] => {}
            [ExchangeKind::Reply] => assert!(
                step.caption.contains("greeting") || step.caption.contains("no captured command"),
                "step {}: {}",
                s + 1,
                step.caption
            ),
            other => panic!("step {}: {other:?} ({})", s + 1, step.caption),
        }
        // Every exchange is linked back to its unit.
        for e in 0..step.outcome.exchanges.len() {
            assert!(t.unit(s, e).is_some(), "step {} exchange {e}", s + 1);
        }
    }
    assert!(pairs >= 5, "{pairs} command/reply steps");
}

#[test]
fn a_missing_file_says_which() {
    let e = lesson::load(Path::new("/nonexistent/lesson.pcapng")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/lesson.pcapng"), "{e}");
}
