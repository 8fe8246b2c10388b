//! A run's results: the exit status, and the results written as a terminal table, JSON and
//! JUnit XML (for autograders). Bytes are shown with [`super::visible`] (CR and LF as
//! `\r` and `\n`), so every format carries the same text.

use std::fmt::Write as _;

use super::{CheckResult, Level, Verdict, visible};
use crate::proto::Protocol;

/// How many bytes of `sent` and `got` a report shows.
const SHOWN_BYTES: usize = 2000;

/// All results of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<CheckResult>,
    /// The servers no TCP connection could be made to, and why.
    pub unreachable: Vec<(Protocol, String)>,
}

/// What the run says, as `mailwire check`'s exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every `must` check passed (0).
    Passed,
    /// At least one `must` check failed (1).
    MustFailed,
    /// Nothing could be checked: no server reached, or none given (2).
    NothingChecked,
}

impl ExitStatus {
    /// The process exit code: 0, 1 or 2.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Passed => 0,
            ExitStatus::MustFailed => 1,
            ExitStatus::NothingChecked => 2,
        }
    }
}

/// Counts of each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub skip: usize,
}

impl Report {
    /// The exit status: a failed `must` first; else nothing checked (a server unreachable,
    /// or every check skipped); else passed.
    pub fn exit_status(&self) -> ExitStatus {
        if self.checks.iter().any(CheckResult::fails_run) {
            ExitStatus::MustFailed
        } else if !self.unreachable.is_empty()
            || self
                .checks
                .iter()
                .all(|c| matches!(c.verdict, Verdict::Skip(_)))
        {
            ExitStatus::NothingChecked
        } else {
            ExitStatus::Passed
        }
    }

    /// How many checks passed, failed, warned and were skipped.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for r in &self.checks {
            match r.verdict {
                Verdict::Pass => c.pass += 1,
                Verdict::Fail(_) => c.fail += 1,
                Verdict::Warn(_) => c.warn += 1,
                Verdict::Skip(_) => c.skip += 1,
            }
        }
        c
    }

    /// The result of the check with this id.
    pub fn get(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.info.id == id)
    }

    /// The ids of the checks with this verdict label ("fail", "warn"...).
    pub fn ids_with(&self, label: &str) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.verdict.label() == label)
            .map(|c| c.info.id)
            .collect()
    }

    /// The details of the failures and warnings, for the terminal: for each, what was
    /// sent, what the RFC expects, what came back and why it is wrong.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for r in self
            .checks
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Fail(_) | Verdict::Warn(_)))
        {
            let _ = writeln!(
                out,
                "\n{} {} ({}, {}): {}",
                r.verdict.label().to_uppercase(),
                r.info.id,
                r.info.rfc,
                r.level.label(),
                r.info.title
            );
            let _ = writeln!(out, "  sent:     {}", visible(&r.sent, 400));
            let _ = writeln!(out, "  expected: {}", r.expected);
            let _ = writeln!(out, "  got:      {}", visible(&r.got, 400));
            let _ = writeln!(out, "  why:      {}", r.verdict.reason());
        }
        out
    }

    /// One line of totals.
    pub fn summary(&self) -> String {
        let c = self.counts();
        let status = match self.exit_status() {
            ExitStatus::Passed => "every must check passed",
            ExitStatus::MustFailed => "a must check failed",
            ExitStatus::NothingChecked => "nothing (or not everything) could be checked",
        };
        format!(
            "{} checks: {} pass, {} fail, {} warn, {} skip; {status}.",
            self.checks.len(),
            c.pass,
            c.fail,
            c.warn,
            c.skip
        )
    }

    /// The results as JSON: `{"checks": [{"id", "protocol", "rfc", "level", "verdict",
    /// "title", "reason", "sent", "expected", "got"}], "unreachable": [...], "summary":
    /// {...}, "exit_code": n}`.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\n  \"checks\": [");
        for (i, r) in self.checks.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let fields = [
                ("id", r.info.id.to_string()),
                ("protocol", r.info.protocol_label()),
                ("rfc", r.info.rfc.to_string()),
                ("level", r.level.label().to_string()),
                ("verdict", r.verdict.label().to_string()),
                ("title", r.info.title.to_string()),
                ("reason", r.verdict.reason().to_string()),
                ("sent", visible(&r.sent, SHOWN_BYTES)),
                ("expected", r.expected.clone()),
                ("got", visible(&r.got, SHOWN_BYTES)),
            ];
            out.push_str("\n    {");
            for (j, (key, value)) in fields.iter().enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: {}", json_string(key), json_string(value));
            }
            out.push('}');
        }
        out.push_str("\n  ],\n  \"unreachable\": [");
        for (i, (p, why)) in self.unreachable.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(
                out,
                "{{\"protocol\": {}, \"why\": {}}}",
                json_string(p.name()),
                json_string(why)
            );
        }
        let c = self.counts();
        let _ = write!(
            out,
            "],\n  \"summary\": {{\"pass\": {}, \"fail\": {}, \"warn\": {}, \"skip\": {}}},\n  \"exit_code\": {}\n}}\n",
            c.pass,
            c.fail,
            c.warn,
            c.skip,
            self.exit_status().code()
        );
        out
    }

    /// The results as JUnit XML: one test suite per protocol, one test case per check; a
    /// failed `must` is a `<failure>`, a skip `<skipped>`, a warning passes with the
    /// warning in `<system-out>`.
    pub fn to_junit(&self) -> String {
        let c = self.counts();
        let failures = self.checks.iter().filter(|r| r.fails_run()).count();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"mailwire check\" tests=\"{}\" failures=\"{failures}\" skipped=\"{}\">",
            self.checks.len(),
            c.skip
        );
        let mut suites: Vec<String> = Vec::new();
        for r in &self.checks {
            let label = r.info.protocol_label();
            if !suites.contains(&label) {
                suites.push(label);
            }
        }
        for suite in &suites {
            let members: Vec<&CheckResult> = self
                .checks
                .iter()
                .filter(|r| &r.info.protocol_label() == suite)
                .collect();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
                xml(suite),
                members.len(),
                members.iter().filter(|r| r.fails_run()).count(),
                members
                    .iter()
                    .filter(|r| matches!(r.verdict, Verdict::Skip(_)))
                    .count()
            );
            for r in members {
                let _ = write!(
                    out,
                    "    <testcase classname=\"mailwire.check.{}\" name=\"{}\">",
                    xml(suite),
                    xml(&format!(
                        "{} ({}, {}): {}",
                        r.info.id,
                        r.info.rfc,
                        r.level.label(),
                        r.info.title
                    ))
                );
                let body = format!(
                    "sent: {}\nexpected: {}\ngot: {}\nwhy: {}",
                    visible(&r.sent, SHOWN_BYTES),
                    r.expected,
                    visible(&r.got, SHOWN_BYTES),
                    r.verdict.reason()
                );
                match &r.verdict {
                    Verdict::Pass => {}
                    Verdict::Fail(why) if r.level == Level::Must => {
                        let _ = write!(
                            out,
                            "\n      <failure message=\"{}\" type=\"must\">{}</failure>\n    ",
                            xml(why),
                            xml(&body)
                        );
                    }
                    Verdict::Fail(_) | Verdict::Warn(_) => {
                        let _ = write!(
                            out,
                            "\n      <system-out>warning: {}</system-out>\n    ",
                            xml(&body)
                        );
                    }
                    Verdict::Skip(why) => {
                        let _ = write!(out, "\n      <skipped message=\"{}\"/>\n    ", xml(why));
                    }
                }
                out.push_str("</testcase>\n");
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// A JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for XML attributes and content: the five special characters escaped, characters
/// XML 1.0 does not allow written as `\u{..}`.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(ch),
            c if u32::from(c) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckInfo;

    fn result(verdict: Verdict, level: Level) -> CheckResult {
        CheckResult {
            info: CheckInfo {
                id: "pop3.x",
                protocols: &[Protocol::Pop3],
                rfc: "RFC 1939 section 3",
                level,
                title: "a <title> & \"quotes\"",
            },
            level,
            verdict,
            sent: b"LIST\r\n".to_vec(),
            expected: "a line holding only \".\"".into(),
            got: b"2.txt 8\r\n\x01".to_vec(),
            clients: Vec::new(),
            servers: Vec::new(),
            transcript: Vec::new(),
            judged_round: 0,
        }
    }

    #[test]
    fn exit_status_follows_the_musts() {
        let mut r = Report::default();
        r.checks
            .push(result(Verdict::Skip("x".into()), Level::Must));
        assert_eq!(r.exit_status(), ExitStatus::NothingChecked);
        r.checks
            .push(result(Verdict::Warn("x".into()), Level::Should));
        assert_eq!(r.exit_status(), ExitStatus::Passed);
        r.checks
            .push(result(Verdict::Fail("x".into()), Level::Must));
        assert_eq!(r.exit_status(), ExitStatus::MustFailed);
        assert_eq!(r.exit_status().code(), 1);
    }

    #[test]
    fn escaping() {
        assert_eq!(json_string("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
        assert_eq!(
            xml("<a href='x'>&\u{1}"),
            "&lt;a href=&apos;x&apos;&gt;&amp;\\u{1}"
        );
        let mut r = Report::default();
        r.checks.push(result(
            Verdict::Fail("no \"end\" <dot>".into()),
            Level::Must,
        ));
        let junit = r.to_junit();
        assert!(junit.contains("failures=\"1\""));
        assert!(!junit.contains("<title>"));
        let json = r.to_json();
        assert!(
            json.contains("\"got\": \"2.txt 8\\\\r\\\\n\\\\x01\""),
            "{json}"
        );
    }
}
