//! Worksheets and lab reports as one self-contained HTML file each: no script, no outside
//! file, styles inline, so any browser opens it and prints it cleanly (A4 or Letter).
//!
//! - A **worksheet** lists a scenario's quiz questions ([`crate::quiz`]) step by step, with a
//!   box to tick per choice; the **answer key** is the same sheet with the right choice
//!   marked and, under each choice, what it would have meant.
//! - A **lab report** is what a student hands in about a recorded run: the sequence diagram
//!   (the SVG export, inline), each step's commands and replies with the frames that carried
//!   them, and the decoded headers of the packets the student chose.
//!
//! Text from the network is escaped (and its control characters made visible) by
//! [`super::svg::xml_escape`] before it goes in.

use std::fmt::Write as _;
use std::path::Path;

use super::svg::{sequence_svg, xml_escape};
use super::{ExportError, write_file};
use crate::decode::tree::Field;
use crate::quiz::{Question, letter};
use crate::timeline::Timeline;

/// The questions of one step, for a worksheet.
#[derive(Debug, Clone)]
pub struct SheetStep {
    /// 1-based step number.
    pub number: usize,
    pub caption: String,
    /// What the client sent before the reply the questions are about.
    pub sent: Vec<String>,
    pub questions: Vec<Question>,
}

impl SheetStep {
    /// The quiz questions of every step of a recorded run, with what the client sent.
    pub fn of_timeline(timeline: &Timeline) -> Vec<SheetStep> {
        let mut quiz = crate::quiz::Quiz::new();
        (0..timeline.steps.len())
            .filter_map(|index| {
                let questions = quiz.questions(timeline, index);
                let record = timeline.steps.get(index)?;
                let sent = record
                    .outcome
                    .exchanges
                    .iter()
                    .take_while(|e| e.kind != crate::exchange::ExchangeKind::Reply)
                    .map(|e| e.line.clone())
                    .collect();
                Some(SheetStep {
                    number: index + 1,
                    caption: record.caption.clone(),
                    sent,
                    questions,
                })
            })
            .collect()
    }
}

/// Whether a worksheet shows the answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sheet {
    /// For the class: boxes to tick, no answers.
    Questions,
    /// For the teacher: the right choice marked, every choice explained.
    AnswerKey,
}

const STYLE: &str = r#"
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 11pt; line-height: 1.4;
       max-width: 52em; margin: 2em auto; padding: 0 1em; color: #111; }
h1 { font-size: 18pt; margin-bottom: 0.2em; }
h2 { font-size: 13pt; margin: 1.2em 0 0.3em; border-bottom: 1px solid #999; }
.lead { color: #333; }
.who { display: flex; gap: 2em; margin: 1em 0; }
.who span { flex: 1; border-bottom: 1px solid #333; padding-top: 1.2em; }
.step { break-inside: avoid; page-break-inside: avoid; margin-bottom: 1em; }
pre, code { font-family: "DejaVu Sans Mono", monospace; font-size: 9.5pt; }
pre.wire { background: #f4f4f4; border-left: 3px solid #888; padding: 0.4em 0.6em;
           white-space: pre-wrap; word-break: break-all; margin: 0.3em 0; }
.c { color: #1d4ed8; } .s { color: #15803d; } .bad { color: #b91c1c; }
.frames { color: #555; font-size: 9pt; }
.q { margin: 0.6em 0 0.8em; }
.q ol { list-style: none; padding-left: 1em; margin: 0.3em 0; }
.q li { margin: 0.15em 0; }
.box { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #333;
       margin-right: 0.5em; vertical-align: -0.1em; text-align: center; line-height: 0.9em; }
.right { font-weight: bold; }
.why { display: block; margin-left: 1.9em; color: #444; font-size: 9.5pt; }
.explain { color: #333; font-style: italic; margin-left: 1em; }
.diagram svg { width: 100%; height: auto; }
ul.tree { list-style: none; padding-left: 1.2em; margin: 0.1em 0; font-size: 9.5pt; }
ul.tree > li > .note { color: #555; font-style: italic; }
.hex { font-size: 8.5pt; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; }
               .diagram { break-inside: avoid; } a { color: inherit; } }
@page { margin: 1.5cm; }
"#;

fn page_start(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        xml_escape(title)
    );
}

fn page_end(out: &mut String) {
    out.push_str("</body>\n</html>\n");
}

/// A scenario's worksheet (or its answer key).
pub fn worksheet_html(title: &str, description: &str, steps: &[SheetStep], sheet: Sheet) -> String {
    let mut out = String::new();
    let heading = match sheet {
        Sheet::Questions => format!("Worksheet: {title}"),
        Sheet::AnswerKey => format!("Answer key: {title}"),
    };
    page_start(&mut out, &heading);
    let _ = writeln!(out, "<h1>{}</h1>", xml_escape(&heading));
    let _ = writeln!(out, "<p class=\"lead\">{}</p>", xml_escape(description));
    let asked: usize = steps.iter().map(|s| s.questions.len()).sum();
    match sheet {
        Sheet::Questions => {
            out.push_str(
                "<div class=\"who\"><span>Name</span><span>Date</span><span>Score</span></div>\n",
            );
            let _ = writeln!(
                out,
                "<p>{asked} questions. For each step, read what the client sends and predict \
                 what comes back: tick one box per question.</p>"
            );
        }
        Sheet::AnswerKey => {
            let _ = writeln!(
                out,
                "<p>For the teacher: {asked} questions, the right choice in bold, and under \
                 every choice what it would have meant. The answers are what this scenario's \
                 run really produced.</p>"
            );
        }
    }
    let mut number = 0;
    for step in steps.iter().filter(|s| !s.questions.is_empty()) {
        out.push_str("<div class=\"step\">\n");
        let _ = writeln!(
            out,
            "<h2>Step {}: {}</h2>",
            step.number,
            xml_escape(&step.caption)
        );
        if !step.sent.is_empty() {
            out.push_str("<pre class=\"wire\">");
            for line in &step.sent {
                let _ = writeln!(out, "<span class=\"c\">C: {}</span>", xml_escape(line));
            }
            out.push_str("</pre>\n");
        }
        for q in &step.questions {
            number += 1;
            let _ = writeln!(
                out,
                "<div class=\"q\"><b>{number}.</b> {}\n<ol>",
                xml_escape(&q.prompt)
            );
            for (i, c) in q.choices.iter().enumerate() {
                let mark = if sheet == Sheet::AnswerKey && c.correct {
                    "&#x2713;"
                } else {
                    ""
                };
                let class = if sheet == Sheet::AnswerKey && c.correct {
                    " class=\"right\""
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    "<li{class}><span class=\"box\">{mark}</span>{}) {}",
                    letter(i),
                    xml_escape(&c.text)
                );
                if sheet == Sheet::AnswerKey {
                    let _ = write!(out, "<span class=\"why\">{}</span>", xml_escape(&c.why));
                }
                out.push_str("</li>\n");
            }
            out.push_str("</ol>");
            if sheet == Sheet::AnswerKey {
                let _ = write!(
                    out,
                    "<div class=\"explain\">{}</div>",
                    xml_escape(&q.explanation)
                );
            }
            out.push_str("</div>\n");
        }
        out.push_str("</div>\n");
    }
    page_end(&mut out);
    out
}

/// Writes [`worksheet_html`] to `path`.
pub fn write_worksheet(
    path: &Path,
    title: &str,
    description: &str,
    steps: &[SheetStep],
    sheet: Sheet,
) -> Result<(), ExportError> {
    write_file(
        path,
        worksheet_html(title, description, steps, sheet).as_bytes(),
    )
}

/// A lab report of a recorded run: the diagram, every step's exchanges with their frames,
/// and the headers of `packets` (0-based frame indices; unknown ones are listed as such).
pub fn report_html(timeline: &Timeline, packets: &[usize]) -> String {
    let mut out = String::new();
    let title = format!("Lab report: {}", timeline.title);
    page_start(&mut out, &title);
    let _ = writeln!(out, "<h1>{}</h1>", xml_escape(&title));
    out.push_str(
        "<div class=\"who\"><span>Name</span><span>Date</span><span>Course</span></div>\n",
    );
    let _ = writeln!(
        out,
        "<p class=\"lead\">{} steps, {} captured packets. Capture: {}.</p>",
        timeline.steps.len(),
        timeline.packets.len(),
        xml_escape(&timeline.capture_status().describe())
    );
    out.push_str("<h2>Sequence diagram</h2>\n<div class=\"diagram\">\n");
    let svg = sequence_svg(timeline);
    // The standalone document's XML declaration has no place inside HTML.
    let svg = svg
        .find("<svg")
        .and_then(|at| svg.get(at..))
        .unwrap_or(&svg);
    out.push_str(svg);
    out.push_str("</div>\n");
    out.push_str("<h2>Steps</h2>\n");
    for (index, record) in timeline.steps.iter().enumerate() {
        out.push_str("<div class=\"step\">\n");
        let rfc = record
            .rfc
            .as_deref()
            .map(|r| format!(" ({})", xml_escape(r)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<p><b>Step {}</b> [{}] {}{rfc}</p>",
            index + 1,
            xml_escape(&record.outcome.session),
            xml_escape(&record.caption)
        );
        out.push_str("<pre class=\"wire\">");
        for (k, e) in record.outcome.exchanges.iter().enumerate() {
            let class = match e.direction() {
                crate::proto::Direction::ClientToServer => "c",
                crate::proto::Direction::ServerToClient => "s",
            };
            let frames = timeline
                .unit(index, k)
                .map(|u| {
                    let list: Vec<String> =
                        u.frames().iter().map(|f| format!("#{}", f + 1)).collect();
                    format!(
                        "  <span class=\"frames\">[frames {}]</span>",
                        list.join(", ")
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<span class=\"{class}\">{} {}</span>{frames}",
                e.direction().tag(),
                xml_escape(&e.line)
            );
            // A long body is cut: the report is about the dialog, the capture has the rest.
            const BODY_LINES: usize = 12;
            for line in e.more.iter().take(BODY_LINES) {
                let _ = writeln!(
                    out,
                    "<span class=\"{class}\">   {}</span>",
                    xml_escape(line)
                );
            }
            if e.more.len() > BODY_LINES {
                let _ = writeln!(
                    out,
                    "<span class=\"frames\">   ... {} more lines</span>",
                    e.more.len() - BODY_LINES
                );
            }
        }
        out.push_str("</pre>\n");
        if let Err(why) = &record.outcome.check {
            let _ = writeln!(
                out,
                "<p class=\"bad\">Not as expected: {}</p>",
                xml_escape(&why.to_string())
            );
        }
        out.push_str("</div>\n");
    }
    if !packets.is_empty() {
        out.push_str("<h2>Chosen packets</h2>\n");
    }
    for &frame in packets {
        out.push_str("<div class=\"step\">\n");
        let tree = timeline
            .packets
            .get(frame)
            .and_then(|p| timeline.analyzer.frame_tree(frame, &p.data));
        match tree {
            Some(tree) => {
                let _ = writeln!(out, "<p><b>Frame #{}</b></p>", frame + 1);
                out.push_str("<ul class=\"tree\">\n");
                for layer in &tree.layers {
                    field_html(&mut out, layer);
                }
                out.push_str("</ul>\n");
                if let Some(error) = &tree.error {
                    let _ = writeln!(
                        out,
                        "<p class=\"bad\">{}</p>",
                        xml_escape(&error.to_string())
                    );
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "<p class=\"bad\">Frame #{} is not in this capture ({} frames).</p>",
                    frame + 1,
                    timeline.packets.len()
                );
            }
        }
        out.push_str("</div>\n");
    }
    page_end(&mut out);
    out
}

fn field_html(out: &mut String, field: &Field) {
    let _ = write!(out, "<li>{}", xml_escape(&field.name));
    if !field.value.is_empty() {
        let _ = write!(out, ": <code>{}</code>", xml_escape(&field.value));
    }
    if let Some(note) = &field.note {
        let _ = write!(out, " <span class=\"note\">({})</span>", xml_escape(note));
    }
    if !field.children.is_empty() {
        out.push_str("\n<ul class=\"tree\">\n");
        for child in &field.children {
            field_html(out, child);
        }
        out.push_str("</ul>");
    }
    out.push_str("</li>\n");
}

/// Writes [`report_html`] to `path` (a run without capture gives a report without packets,
/// and its first lines say why).
pub fn write_report(
    timeline: &Timeline,
    packets: &[usize],
    path: &Path,
) -> Result<(), ExportError> {
    write_file(path, report_html(timeline, packets).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quiz::{Choice, QuestionKind};

    fn step() -> SheetStep {
        SheetStep {
            number: 2,
            caption: "LIST <all>".to_string(),
            sent: vec!["LIST".to_string()],
            questions: vec![Question {
                step: 1,
                reply: 1,
                kind: QuestionKind::Pop3Status,
                prompt: "Does the server answer +OK or -ERR?".to_string(),
                choices: vec![
                    Choice {
                        text: "+OK".to_string(),
                        correct: true,
                        why: "the list follows".to_string(),
                    },
                    Choice {
                        text: "-ERR".to_string(),
                        correct: false,
                        why: "no such message".to_string(),
                    },
                ],
                explanation: "The server answered \"+OK 2 messages\".".to_string(),
            }],
        }
    }

    #[test]
    fn the_class_sheet_hides_the_answers_and_the_key_shows_them() {
        let sheet = worksheet_html("T", "D", &[step()], Sheet::Questions);
        assert!(sheet.contains("Step 2: LIST &lt;all&gt;"), "{sheet}");
        assert!(sheet.contains("a) +OK") && sheet.contains("b) -ERR"));
        assert!(!sheet.contains("the list follows"));
        assert!(!sheet.contains("&#x2713;"));
        let key = worksheet_html("T", "D", &[step()], Sheet::AnswerKey);
        assert!(key.contains("<li class=\"right\"><span class=\"box\">&#x2713;</span>a) +OK"));
        assert!(key.contains("no such message"));
        assert!(key.contains("The server answered &quot;+OK 2 messages&quot;."));
    }
}
