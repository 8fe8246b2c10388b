//! `mailwire run`: a scenario on real sockets with live capture, printed step by step.
//!
//! Without CAP_NET_RAW the run re-executes itself inside mailwire's private network (a new
//! user + network namespace), where it may capture and use the standard ports 110 and 25.

use std::io::{BufRead, Write};

use super::open::{frame_list, segment_line};
use crate::capture::sandbox::{self, OnParentDeath};
use crate::exchange::StepError;
use crate::quiz::{Question, Quiz, Score, Verdict, letter};
use crate::scenario::format::{self, BUILTIN, Scenario};
use crate::scenario::recorder::{Recorder, RecorderOptions};
use crate::scenario::{run_in_memory, transcript};
use crate::timeline::{CaptureStatus, Timeline};

/// Arguments of `mailwire run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A built-in scenario's name (see --list) or a scenario file (.toml).
    pub scenario: Option<String>,
    /// List the built-in scenarios.
    #[arg(long)]
    pub list: bool,
    /// Wait for Enter before each step.
    #[arg(long)]
    pub step: bool,
    /// Write the capture, annotated with the steps, to this pcapng file (Wireshark opens it).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
    /// TLS secrets (an NSS key log file, e.g. the one SSLKEYLOGFILE names for another
    /// server a step connects to), read after the run: the --pcap file embeds those of the
    /// captured sessions, beside the run's own.
    #[arg(long, value_name = "KEYS", requires = "pcap")]
    pub keylog: Option<std::path::PathBuf>,
    /// Write the transcript (steps, commands, replies, frame numbers) to this text file.
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<std::path::PathBuf>,
    /// Write the sequence diagram to this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
    /// Write a worksheet for the class: this scenario's quiz questions, step by step, with
    /// boxes to tick (HTML; opens and prints in any browser).
    #[arg(long, value_name = "FILE")]
    pub worksheet: Option<std::path::PathBuf>,
    /// Write the worksheet's answer key for the teacher: every choice explained (HTML).
    #[arg(long, value_name = "FILE")]
    pub answer_key: Option<std::path::PathBuf>,
    /// Write a lab report of this run a student can hand in: the diagram, every step's
    /// commands and replies with their frames, and the headers of --report-packets (HTML).
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// The frames whose decoded headers go in the lab report: frame numbers as Wireshark
    /// shows them, comma-separated (4,9,12).
    #[arg(long, value_name = "FRAMES", value_parser = super::open::parse_frame_list, requires = "report")]
    pub report_packets: Option<super::open::FrameList>,
    /// Run the machines in memory: no sockets, no packets (the transcript only).
    #[arg(long)]
    pub memory: bool,
    /// Do not capture packets.
    #[arg(long)]
    pub no_capture: bool,
    /// Do not use the private network namespace, even without capture rights.
    #[arg(long)]
    pub no_sandbox: bool,
    /// Quiz mode: before each reply is shown, ask what it will be (+OK or -ERR, the reply
    /// code, the POP3 state, how many segments, the next ACK). Answers are read from stdin,
    /// one per line (a letter or the choice's text), so a class or a script can answer;
    /// the score is printed last, as "score N/M". The questions pace the run, so not with
    /// --step.
    #[arg(long, conflicts_with = "step")]
    pub quiz: bool,
}

/// Runs `mailwire run`.
pub fn run_scenario(args: RunArgs) -> Result<(), String> {
    if args.list {
        for (name, text) in BUILTIN {
            let title = Scenario::parse(text, name)
                .map(|s| s.title)
                .unwrap_or_default();
            println!("{name:20} {title}");
        }
        return Ok(());
    }
    let name = args
        .scenario
        .as_deref()
        .ok_or("name a scenario (mailwire run --list shows the built-in ones)")?;
    let scenario = format::find(name).map_err(|e| e.to_string())?;
    if args.memory {
        return run_memory(&scenario, &args);
    }
    let in_sandbox = sandbox::is_sandboxed_copy();
    if !in_sandbox && !args.no_sandbox && !args.no_capture && should_use_sandbox() {
        return reexec_in_sandbox();
    }
    let options = RecorderOptions {
        capture: !args.no_capture,
        ..super::recorder_options(in_sandbox)
    };
    run_live(&scenario, &options, &args)
}

/// Capture needs CAP_NET_RAW; the sandbox gives it without root. Root (or a process with
/// the capability) captures the real loopback directly, but the sandbox still gives the
/// standard ports, which Wireshark recognises: use it whenever it works.
fn should_use_sandbox() -> bool {
    sandbox::sandbox_available()
}

fn reexec_in_sandbox() -> Result<(), String> {
    // Ctrl-C or SIGTERM reaches the sandboxed run, which cleans up before it ends.
    let status = sandbox::rerun_in_sandbox(OnParentDeath::LiveOn).map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        std::process::exit(status.code().unwrap_or(1));
    }
}

fn run_memory(scenario: &Scenario, args: &RunArgs) -> Result<(), String> {
    println!("{}", scenario.title);
    println!("(in memory: the machines are wired together directly; no sockets, no packets)");
    let outcomes = run_in_memory(scenario).map_err(|e| e.to_string())?;
    let mut timeline = Timeline {
        title: scenario.title.clone(),
        ..Timeline::default()
    };
    for o in &outcomes {
        let step = scenario.steps.get(o.index);
        timeline.steps.push(crate::timeline::StepRecord {
            outcome: o.clone(),
            caption: step.map(|s| s.caption.clone()).unwrap_or_default(),
            rfc: step.and_then(|s| s.rfc.clone()),
            ends: None,
            frames: 0..0,
        });
    }
    if args.quiz {
        // The same questions as on sockets, but none about packets: there are none.
        let mut asker = Asker::new();
        for index in 0..timeline.steps.len() {
            asker.step(&timeline, index);
        }
        write_html_exports(scenario, &timeline, args)?;
        println!("\n{}", asker.score);
        return Ok(());
    }
    print!("{}", transcript(scenario, &outcomes));
    write_html_exports(scenario, &timeline, args)?;
    match outcomes.iter().find(|o| o.check.is_err()) {
        Some(o) => Err(failure(scenario, o.index, o.check.as_ref().err())),
        None => Ok(()),
    }
}

/// Writes the worksheet, the answer key and the lab report that were asked for.
fn write_html_exports(
    scenario: &Scenario,
    timeline: &Timeline,
    args: &RunArgs,
) -> Result<(), String> {
    use crate::export::html::{Sheet, SheetStep, write_report, write_worksheet};
    if args.worksheet.is_some() || args.answer_key.is_some() {
        let steps = SheetStep::of_timeline(timeline);
        let sheets = [
            (&args.worksheet, Sheet::Questions),
            (&args.answer_key, Sheet::AnswerKey),
        ];
        for (path, sheet) in sheets {
            if let Some(path) = path {
                write_worksheet(path, &scenario.title, &scenario.description, &steps, sheet)
                    .map_err(|e| e.to_string())?;
                println!("wrote {}", path.display());
            }
        }
    }
    if let Some(path) = &args.report {
        let packets = args.report_packets.clone().unwrap_or_default();
        write_report(timeline, &packets.0, path).map_err(|e| e.to_string())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Asks a step's questions on stdout, reads the answers from stdin, then shows the step.
struct Asker {
    quiz: Quiz,
    score: Score,
    input: std::io::StdinLock<'static>,
    ended: bool,
}

impl Asker {
    fn new() -> Self {
        Asker {
            quiz: Quiz::new(),
            score: Score::default(),
            input: std::io::stdin().lock(),
            ended: false,
        }
    }

    /// Shows what the client sent, asks about what came back, then shows the whole step.
    fn step(&mut self, timeline: &Timeline, index: usize) {
        let questions = self.quiz.questions(timeline, index);
        if let Some(record) = timeline.steps.get(index)
            && !questions.is_empty()
        {
            println!("\n== step {} [{}]", index + 1, record.outcome.session,);
            for e in &record.outcome.exchanges {
                if e.kind == crate::exchange::ExchangeKind::Reply {
                    break;
                }
                println!("  {} {}", e.direction().tag(), e.line);
            }
        }
        for q in &questions {
            let verdict = self.ask(q);
            self.score.add(&verdict);
        }
        if questions.is_empty() {
            print_step(timeline, index);
        } else {
            // The caption comes after the answers: it often says what the reply will be.
            let caption = timeline
                .steps
                .get(index)
                .map(|r| r.caption.as_str())
                .unwrap_or_default();
            println!(
                "\n  -- step {}, as it crossed the wire: {caption}",
                index + 1
            );
            print_step_body(timeline, index);
        }
    }

    fn ask(&mut self, q: &Question) -> Verdict {
        println!("\n  ? {}", q.prompt);
        for (i, c) in q.choices.iter().enumerate() {
            println!("     {}) {}", letter(i), c.text);
        }
        print!("  your answer: ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let verdict = if self.ended || self.input.read_line(&mut line).unwrap_or(0) == 0 {
            self.ended = true;
            println!("(no answer: end of input)");
            Verdict::Unanswered
        } else {
            let typed = line.trim();
            println!("{typed}");
            q.judge(typed)
        };
        let right = q.answer().and_then(|i| q.choices.get(i).map(|c| (i, c)));
        match (&verdict, right) {
            (Verdict::Right(_), Some((_, c))) => println!("  right: {}", c.why),
            (Verdict::Wrong(i), Some((r, c))) => {
                if let Some(chosen) = q.choices.get(*i) {
                    println!("  wrong: {}", chosen.why);
                }
                println!("  the answer is {}) {}: {}", letter(r), c.text, c.why);
            }
            (Verdict::NotAChoice, Some((r, c))) => {
                println!(
                    "  \"{}\" is not one of the choices (type a letter or a choice's text); \
                     the answer is {}) {}: {}",
                    line.trim(),
                    letter(r),
                    c.text,
                    c.why
                );
            }
            (_, Some((r, c))) => println!("  the answer is {}) {}: {}", letter(r), c.text, c.why),
            (_, None) => {}
        }
        println!("  {}", q.explanation);
        verdict
    }
}

fn failure(scenario: &Scenario, index: usize, why: Option<&StepError>) -> String {
    let caption = scenario
        .steps
        .get(index)
        .map(|s| s.caption.as_str())
        .unwrap_or_default();
    format!(
        "step {} failed ({caption}): {}",
        index + 1,
        why.map_or_else(|| "unknown".to_string(), ToString::to_string)
    )
}

fn run_live(scenario: &Scenario, options: &RecorderOptions, args: &RunArgs) -> Result<(), String> {
    let mut recorder = Recorder::start(scenario, options).map_err(|e| e.to_string())?;
    // A stop signal (Ctrl-C) may come while a step waits for Enter: remove the scenario's
    // temporary folder, then end. The fixture in it is a throwaway copy.
    let work_dir = recorder.work_dir().to_path_buf();
    crate::signals::on_stop_signal(move || {
        let _ = std::fs::remove_dir_all(&work_dir);
        eprintln!("\nstopped.");
        std::process::exit(130);
    })
    .map_err(|e| e.to_string())?;
    println!("{}", scenario.title);
    println!("{}", wrap(&scenario.description, 88));
    let status = recorder.timeline().capture_status();
    println!("[{}]", status.describe());
    if matches!(status, CaptureStatus::Unavailable { .. }) {
        println!("(the steps still run on real sockets; only the packets are missing)");
    }
    let stdin = std::io::stdin();
    let mut first_failure = None;
    let mut asker = args.quiz.then(Asker::new);
    while !recorder.is_done() {
        if args.step {
            let next = recorder.timeline().steps.len() + 1;
            print!("\n-- Enter for step {next} (q to stop) ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 || line.trim() == "q" {
                break;
            }
        }
        let Some(index) = recorder.step() else { break };
        let t = recorder.timeline();
        match &mut asker {
            Some(asker) => asker.step(t, index),
            None => print_step(t, index),
        }
        if let Some(record) = t.steps.get(index)
            && let Err(why) = &record.outcome.check
        {
            first_failure.get_or_insert_with(|| failure(scenario, index, Some(why)));
        }
    }
    let mut timeline = recorder.finish();
    println!("\n[{}]", timeline.capture_status().describe());
    if let Some(keys) = &args.keylog {
        timeline.keylog.extend(&super::open::load_keylog(keys)?);
    }
    if let Some(path) = &args.pcap {
        export_pcap(&timeline, path)?;
    }
    if let Some(path) = &args.transcript {
        crate::export::transcript::write_transcript(&timeline, path).map_err(|e| e.to_string())?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        crate::export::svg::write_svg(&timeline, path).map_err(|e| e.to_string())?;
        println!("wrote {}", path.display());
    }
    write_html_exports(scenario, &timeline, args)?;
    if let Some(asker) = &asker {
        println!("\n{}", asker.score);
        return Ok(());
    }
    match first_failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn export_pcap(timeline: &Timeline, path: &std::path::Path) -> Result<(), String> {
    if timeline.packets.is_empty() {
        return Err(format!(
            "no packets were captured, so {} was not written ({})",
            path.display(),
            timeline.capture_status().describe()
        ));
    }
    let mut hints = crate::export::pcapng::ExportHints::from_timeline(timeline);
    if hints.interface.is_none() {
        hints.interface = Some(
            if cfg!(target_os = "linux") {
                "lo"
            } else {
                "lo0"
            }
            .to_string(),
        );
    }
    crate::export::pcapng::write_pcapng(timeline, path, &hints).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} packets{})",
        path.display(),
        timeline.packets.len(),
        super::open::embedded_words(timeline)
    );
    Ok(())
}

fn print_step(t: &Timeline, index: usize) {
    let Some(record) = t.steps.get(index) else {
        return;
    };
    let rfc = record
        .rfc
        .as_deref()
        .map(|r| format!("  ({r})"))
        .unwrap_or_default();
    println!(
        "\n== step {} [{}] {}{rfc}",
        record.outcome.index + 1,
        record.outcome.session,
        record.caption
    );
    print_step_body(t, index);
}

/// A step's exchanges with their frames, its segments and its check, without its header.
fn print_step_body(t: &Timeline, index: usize) {
    let Some(record) = t.steps.get(index) else {
        return;
    };
    for (k, e) in record.outcome.exchanges.iter().enumerate() {
        let tag = e.direction().tag();
        let frames = match t.unit(index, k) {
            Some(u) => format!("   [frame {}]", frame_list(&u.frames())),
            // In a run that used TLS, an exchange without a stream range travelled inside
            // TLS records (no unit of the capture carries its text).
            None if e.stream.is_none() && !t.keylog.is_empty() => {
                "   [inside TLS: encrypted on the wire]".to_string()
            }
            None => String::new(),
        };
        let extra = if e.more.is_empty() {
            String::new()
        } else {
            format!(" (+{} lines)", e.more.len())
        };
        println!("  {tag} {}{extra}{frames}", e.line);
    }
    if record.outcome.server_closed {
        println!("  -- the server closed the connection; the client closed its side");
    }
    for f in record.frames.clone() {
        if let Some(line) = segment_line(&t.analyzer, f) {
            println!("     {line}");
        }
    }
    if let Err(why) = &record.outcome.check {
        println!("  !! expectation failed: {why}");
    }
}

fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.len() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}
