//! Every built-in scenario on real sockets (servers on 127.0.0.1, the client over TCP):
//! every expectation holds, and the transcript is the in-memory one (but for the Received
//! header's id, which counts sessions per process).

use mailwire::scenario::{self, format};

fn normalized(text: &str) -> String {
    text.lines()
        .map(|l| {
            for with in [" with ESMTP id ", " with SMTP id "] {
                if let Some(at) = l.find(with) {
                    return format!("{}{with}<n>;", &l[..at]);
                }
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_builtin_scenario_passes_on_sockets_like_in_memory() {
    let mut failures = Vec::new();
    for (name, _) in format::BUILTIN {
        let s = format::find(name).unwrap();
        let on_sockets = scenario::run_on_sockets(&s).unwrap();
        for o in &on_sockets {
            if let Err(why) = &o.check {
                failures.push(format!("{name} step {}: {why}", o.index + 1));
            }
        }
        let in_memory = scenario::run_in_memory(&s).unwrap();
        assert_eq!(
            normalized(&scenario::transcript(&s, &on_sockets)),
            normalized(&scenario::transcript(&s, &in_memory)),
            "{name}: sockets and memory differ"
        );
    }
    assert!(
        failures.is_empty(),
        "expectations failed:\n{}",
        failures.join("\n")
    );
}
