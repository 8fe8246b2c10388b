//! The sequence diagram export: standalone SVG that an XML parser accepts, with every
//! command and reply as an arrow label, and text from the network escaped (`MAIL
//! FROM:<...>`, a command with `&` and `<` in it). Runs the scenarios through the machines
//! in memory (no capture needed), and once on real sockets with capture for the frame notes
//! (skipped, saying why, without CAP_NET_RAW). The XML check uses python3's minidom
//! (scripts/setup.sh installs python3; without it the test says it skipped that check).
//! Set MAILWIRE_EXPORT_DIR to keep the files.

// Helpers fail the test the way an assert does.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::Write;
use std::process::{Command, Stdio};

use mailwire::export::{sequence_svg, transcript_text};
use mailwire::scenario::format::{self, Scenario};
use mailwire::scenario::run_in_memory;
use mailwire::timeline::Timeline;

/// Keeps a copy in MAILWIRE_EXPORT_DIR, when set (to look at the output).
fn keep(name: &str, contents: &str) {
    if let Some(dir) = std::env::var_os("MAILWIRE_EXPORT_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), contents).unwrap();
    }
}

/// A timeline of a scenario run in memory: exchanges, no packets.
fn in_memory(scenario: &Scenario) -> Timeline {
    let outcomes = run_in_memory(scenario).unwrap();
    let mut t = Timeline::new(scenario.title.clone());
    t.capture = Some(mailwire::timeline::CaptureStatus::InMemory);
    for o in outcomes {
        let step = &scenario.steps[o.index];
        t.push_step(o, step.caption.clone(), step.rfc.clone(), None, 0..0);
    }
    t
}

/// The text content of the SVG as python3's minidom parses it (one text node per line);
/// `None` when python3 is missing. Panics if the document is not well-formed XML.
fn parsed_text(svg: &str) -> Option<String> {
    const SCRIPT: &str = r#"
import sys, xml.dom.minidom
doc = xml.dom.minidom.parseString(sys.stdin.buffer.read())
assert doc.documentElement.tagName == "svg", doc.documentElement.tagName
def walk(n):
    for c in n.childNodes:
        if c.nodeType == c.TEXT_NODE and c.data.strip():
            sys.stdout.write(c.data.strip() + "\n")
        walk(c)
walk(doc)
"#;
    let child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED the XML parse: python3 is not installed (scripts/setup.sh installs it)");
        return None;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(svg.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the SVG is not well-formed XML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Every exchange's first line is an arrow label (long ones are cut with `…`).
fn assert_every_line_labelled(name: &str, t: &Timeline, text: &str) {
    for step in &t.steps {
        for e in &step.outcome.exchanges {
            let shown: String = e.line.chars().take(40).collect();
            assert!(text.contains(&shown), "{name}: no label for {:?}", e.line);
        }
    }
}

#[test]
fn assignment_diagram_is_well_formed_and_labels_every_command_and_reply() {
    let s = format::find("assignment").unwrap();
    let t = in_memory(&s);
    let svg = sequence_svg(&t);
    keep("assignment-in-memory.svg", &svg);
    assert!(svg.starts_with("<?xml"));
    // Two sessions: two pairs of lifelines.
    assert!(
        svg.contains("client &quot;ag&quot;") && svg.contains("client &quot;gb&quot;"),
        "{svg}"
    );
    assert!(svg.contains("SMTP server") && svg.contains("POP3 server"));
    // `<` and `>` from the network are escaped, never raw.
    assert!(svg.contains("MAIL FROM:&lt;ag@iit.edu&gt;"));
    assert!(!svg.contains("FROM:<"), "a raw < from the network");
    for (i, step) in t.steps.iter().enumerate() {
        assert!(
            svg.contains(&format!("Step {}:", i + 1)),
            "band of step {}",
            i + 1
        );
        let _ = step;
    }
    if let Some(text) = parsed_text(&svg) {
        assert_every_line_labelled("assignment", &t, &text);
        assert!(
            text.contains("MAIL FROM:<ag@iit.edu>"),
            "the parser gets the text back"
        );
    }
}

#[test]
fn every_builtin_scenario_gives_well_formed_svg() {
    for (name, _) in format::BUILTIN {
        let s = format::find(name).unwrap();
        let t = in_memory(&s);
        let svg = sequence_svg(&t);
        if let Some(text) = parsed_text(&svg) {
            assert_every_line_labelled(name, &t, &text);
        }
    }
}

#[test]
fn ampersands_and_angle_brackets_from_the_network_are_escaped() {
    let toml = r#"
title = "Escapes: <tags> & ampersands"
description = "Text with markup characters in captions, commands and replies."
protocols = ["pop3"]
[fixture]
[[fixture.user]]
name = "amp"
password = "x"

[[step]]
caption = "Connect & <greet>"
connect = "pop3"
expect = "+OK"

[[step]]
caption = "A command with <, > and & in it"
send = "USER a&b<c>\"d'"

[[step]]
caption = "QUIT"
quit = true
"#;
    let s = Scenario::parse(toml, "escapes.toml").unwrap();
    let t = in_memory(&s);
    let svg = sequence_svg(&t);
    assert!(svg.contains("USER a&amp;b&lt;c&gt;&quot;d&apos;"), "{svg}");
    assert!(svg.contains("Connect &amp; &lt;greet&gt;"));
    assert!(svg.contains("Escapes: &lt;tags&gt; &amp; ampersands"));
    assert!(!svg.contains("a&b"), "a raw & from the network");
    if let Some(text) = parsed_text(&svg) {
        assert!(text.contains("USER a&b<c>\"d'"), "{text}");
    }
}

#[test]
fn recorded_diagram_and_transcript_show_the_frames() {
    let Some(t) = crate::common::record_with_capture("rfc1939", "the frame notes") else {
        return;
    };

    let svg = sequence_svg(&t);
    keep("rfc1939.svg", &svg);
    keep("rfc1939.txt", &transcript_text(&t));
    assert!(svg.contains("TCP handshake"), "handshake drawn");
    assert!(svg.contains("TCP close"), "teardown drawn");
    let apop = t.unit(1, 0).unwrap().frames()[0] + 1;
    assert!(
        svg.contains(&format!("frame {apop} ·")),
        "APOP's frame under its arrow"
    );
    if let Some(text) = parsed_text(&svg) {
        assert_every_line_labelled("rfc1939", &t, &text);
    }

    let transcript = transcript_text(&t);
    assert!(
        transcript.starts_with("# RFC 1939: the example session\n"),
        "{transcript}"
    );
    assert!(
        transcript.contains(&format!(
            "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb  [frame {apop}]"
        )),
        "{transcript}"
    );
    assert!(
        transcript.contains("TCP handshake: SYN, SYN-ACK, ACK  [frames 1-3]"),
        "{transcript}"
    );
    assert!(
        transcript.contains("## step 9 [main]: QUIT"),
        "{transcript}"
    );
    assert!(!transcript.contains("[not captured]"), "{transcript}");
}

#[test]
fn transcript_without_capture_has_the_lines_and_says_why_no_frames() {
    let s = format::find("rfc1939").unwrap();
    let t = in_memory(&s);
    let text = transcript_text(&t);
    assert!(
        text.contains("capture: not captured: this run has no network"),
        "{text}"
    );
    assert!(text.contains("\nC: STAT\nS: +OK 2 320\n"), "{text}");
    assert!(
        text.contains("S:   ."),
        "multi-line bodies are kept: {text}"
    );
}
