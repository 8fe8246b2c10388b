//! Every built-in scenario runs through the sans-IO machines in memory; its transcript must
//! match the committed snapshot in scenarios/snapshots/ (set UPDATE_SNAPSHOTS=1 to rewrite
//! them after a deliberate change, then review the diff).

use mailwire::scenario::{self, format};

#[test]
fn every_builtin_scenario_passes_in_memory_and_matches_its_snapshot() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut failures = Vec::new();
    for (name, _) in format::BUILTIN {
        let s = format::find(name).unwrap();
        let outcomes = scenario::run_in_memory(&s).unwrap();
        assert_eq!(outcomes.len(), s.steps.len(), "{name}: every step ran");
        for o in &outcomes {
            if let Err(why) = &o.check {
                failures.push(format!("{name} step {}: {why}", o.index + 1));
            }
        }
        let text = scenario::transcript(&s, &outcomes);
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else {
            let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display())
            });
            assert_eq!(
                text,
                expected,
                "{name}: transcript differs from {}",
                path.display()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "expectations failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_failed_expectation_names_the_step() {
    let text = format::BUILTIN
        .iter()
        .find(|(n, _)| *n == "rfc1939")
        .map(|(_, t)| t.replace("expect_text = \"2 320\"", "expect_text = \"3 999\""))
        .unwrap();
    let s = format::Scenario::parse(&text, "edited").unwrap();
    let outcomes = scenario::run_in_memory(&s).unwrap();
    let failed: Vec<_> = outcomes.iter().filter(|o| o.check.is_err()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].index, 2);
    let why = failed[0].check.as_ref().unwrap_err();
    assert!(
        matches!(why, mailwire::exchange::StepError::Expectation(_)),
        "{why:?}"
    );
    assert_eq!(
        why.to_string(),
        "expected the reply to contain \"3 999\" but it was \"+OK 2 320\""
    );
}
