//! Built-in scenarios on real sockets with live capture on loopback: every command and reply
//! is linked to the captured unit that carried it, with the same text. Needs CAP_NET_RAW
//! (root in CI); without it the test says it skipped and why.

use mailwire::scenario::format;

use crate::common;

#[test]
fn every_exchange_is_linked_to_its_captured_unit() {
    for (name, _) in format::BUILTIN {
        if common::needs_private_network(name) {
            continue;
        }
        let Some(t) = common::record_with_capture(name, "capture check") else {
            return;
        };
        assert!(!t.packets.is_empty(), "{name}: packets captured");
        common::assert_every_step_passed(name, &t);
        for (i, step) in t.steps.iter().enumerate() {
            for (k, exchange) in step.outcome.exchanges.iter().enumerate() {
                if exchange.stream.is_none() {
                    // Inside TLS: carried by records, no place in the TCP stream to link
                    // (scenarios_tls checks what those packets hold).
                    continue;
                }
                let unit = t.unit(i, k).unwrap_or_else(|| {
                    panic!(
                        "{name} step {} exchange {k} ({}) has no captured unit",
                        i + 1,
                        exchange.line
                    )
                });
                if !exchange.line.starts_with("<message") {
                    assert_eq!(unit.text, exchange.line, "{name} step {}", i + 1);
                }
                assert!(!unit.carriers.is_empty());
            }
        }
    }
}

#[test]
fn small_mss_makes_a_long_reply_span_many_segments() {
    let Some(t) = common::record_with_capture("pipelining", "the segment count") else {
        return;
    };
    // Step 2: three pipelined commands in one segment.
    let step2 = &t.steps[1];
    let frames: Vec<Vec<usize>> = (0..3).map(|k| t.unit(1, k).unwrap().frames()).collect();
    assert_eq!(frames[0], frames[1], "USER and PASS in one segment");
    assert_eq!(frames[1], frames[2], "PASS and STAT in one segment");
    assert_eq!(step2.outcome.exchanges[0].line, "USER alice");
    // Step 3: one command in two segments.
    assert_eq!(
        t.unit(2, 0).unwrap().frames().len(),
        2,
        "STAT split over two segments"
    );
    // Step 4: RETR of 1500 octets with a small MSS spans several segments. (On the host's
    // `lo`, generic segmentation offload hands libpcap segments larger than the MSS, so only
    // "more than one" is certain here.)
    let retr_reply = t.unit(3, 1).unwrap();
    assert!(
        retr_reply.frames().len() >= 2,
        "{} segments",
        retr_reply.frames().len()
    );
}
