//! Worksheets, answer keys and lab reports (HTML) opened in a real browser: headless
//! Chromium parses each file, renders it and prints it to PDF, as a teacher would.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure should stop the test"
)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::TempDir;

const LIMIT: Duration = Duration::from_secs(90);

fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is needed to check the HTML exports (scripts/setup.sh installs it)")
}

/// Runs headless Chromium on `file` with `args`; returns its stdout.
fn browser(file: &Path, args: &[&str]) -> String {
    let url = format!("file://{}", file.display());
    let out = common::run_with_input(
        Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(args)
            .arg(url),
        "",
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number of pages of a PDF Chromium printed: the root page tree's `/Count`, the
/// largest of the page trees' counts.
fn pages(pdf: &Path) -> usize {
    let bytes = std::fs::read(pdf).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    text.split("/Count ")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn worksheet_key_and_report_open_render_and_print_in_chromium() {
    let dir = TempDir::new("worksheets");
    let ws = dir.path().join("worksheet.html");
    let key = dir.path().join("key.html");
    let report = dir.path().join("report.html");
    let out = common::run_with_input(
        Command::new(common::MAILWIRE)
            .args(["run", "kilroy-pluto", "--memory", "--worksheet"])
            .arg(&ws)
            .arg("--answer-key")
            .arg(&key)
            .arg("--report")
            .arg(&report),
        "",
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");

    // The browser's own parse of the worksheet: one question block per question, a box per
    // choice, and no answer given away.
    let dom = browser(&ws, &["--dump-dom"]);
    let questions = dom.matches("<div class=\"q\">").count();
    assert!(questions >= 10, "{questions} questions\n{dom}");
    assert!(dom.matches("<span class=\"box\"></span>").count() >= 2 * questions);
    assert!(
        !dom.contains("class=\"right\""),
        "the class's sheet shows an answer"
    );
    // The key marks exactly one right choice per question.
    let key_dom = browser(&key, &["--dump-dom"]);
    assert_eq!(key_dom.matches("<li class=\"right\">").count(), questions);
    // kilroy-pluto's wrong password: the key says -ERR [AUTH] is right there.
    assert!(key_dom.contains("-ERR"), "{key_dom}");
    // The report has the diagram inline and every step.
    let report_dom = browser(&report, &["--dump-dom"]);
    assert!(report_dom.contains("<svg"), "no diagram");
    assert!(report_dom.contains("Step 1</b>"));

    // Each prints (PDF) and renders (PNG) without error.
    for (file, most) in [(&ws, 6), (&key, 10), (&report, 12)] {
        let pdf = file.with_extension("pdf");
        browser(
            file,
            &[
                &format!("--print-to-pdf={}", pdf.display()),
                "--no-pdf-header-footer",
            ],
        );
        let n = pages(&pdf);
        assert!((1..=most).contains(&n), "{}: {n} pages", pdf.display());
        let png = file.with_extension("png");
        browser(
            file,
            &[
                &format!("--screenshot={}", png.display()),
                "--window-size=1000,1400",
            ],
        );
        assert!(
            std::fs::metadata(&png).unwrap().len() > 10_000,
            "{}",
            png.display()
        );
    }
}

#[test]
fn a_report_of_a_foreign_capture_names_frames_that_are_not_there() {
    let dir = TempDir::new("report-foreign");
    let report = dir.path().join("report.html");
    let capture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference-captures/zeek_pop3_bad-list-retr-crafted.pcap");
    if !capture.exists() {
        eprintln!(
            "SKIPPED: {} is not there (../shared beside the project)",
            capture.display()
        );
        return;
    }
    let out = common::run_with_input(
        Command::new(common::MAILWIRE)
            .arg("open")
            .arg(&capture)
            .arg("--report")
            .arg(&report)
            .args(["--report-packets", "8,99"]),
        "",
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<b>Frame #8</b>"));
    assert!(html.contains("GARBAGE (and LIST response missing .)"));
    assert!(html.contains("Frame #99 is not in this capture (36 frames)."));
    // Frame numbers are Wireshark's: 0 is refused with the reason.
    let out = common::run_with_input(
        Command::new(common::MAILWIRE)
            .arg("open")
            .arg(&capture)
            .arg("--report")
            .arg(&report)
            .args(["--report-packets", "0"]),
        "",
        LIMIT,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("frame numbers start at 1"));
}
