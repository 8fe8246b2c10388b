//! The run: which checks, in which order, and the gates that keep a broken server from
//! holding it up.
//!
//! Order: the SMTP checks first (they deliver the checker's own mail), then the POP3 checks
//! that only read, the round trip (with both servers), and last the POP3 checks that
//! delete (on the checker's own mail; `pop3.quit-deletes` removes it, so a run leaves the
//! maildrop as it found it). For each protocol: a server that cannot be reached skips all
//! its checks at once; a greeting that fails (silence, a reset, a refusal) skips the rest.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::report::Report;
use super::wire::{Probe, Stop};
use super::{CheckInfo, CheckResult, Verdict};
use crate::proto::Protocol;

/// What to check and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The POP3 server, HOST:PORT.
    pub pop3: Option<String>,
    /// The SMTP server, HOST:PORT.
    pub smtp: Option<String>,
    /// The POP3 user (the SMTP mail goes to `rcpt`).
    pub user: String,
    pub pass: String,
    /// Where the checker's mail goes; should be `user`'s maildrop.
    pub rcpt: String,
    /// Whether the POP3 checks that delete may use the last message when the checker has
    /// no mail of its own there.
    pub allow_delete: bool,
    /// The limit of every step (a connection, a reply).
    pub timeout: Duration,
}

/// A mail the checker sent through SMTP and the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    /// The message as the mailbox should hold it (empty when it is not compared).
    pub content: Vec<u8>,
}

/// What the checks share during a run.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    /// Unique to this run: marks the checker's mail.
    pub token: String,
    /// Mails accepted through SMTP in this run (and not yet deleted).
    pub sent: Vec<SentMail>,
    /// The POP3 server's CAPA lines (upper case), when it answered CAPA.
    pub pop3_capa: Vec<String>,
    /// The SMTP server's EHLO keywords.
    pub smtp_extensions: Vec<String>,
}

impl Ctx<'_> {
    /// The POP3 address (empty when none was given: no POP3 check runs then).
    pub fn pop3_addr(&self) -> String {
        self.settings.pop3.clone().unwrap_or_default()
    }

    /// The SMTP address.
    pub fn smtp_addr(&self) -> String {
        self.settings.smtp.clone().unwrap_or_default()
    }

    /// The start of the subject of every mail this run sends.
    pub fn subject_marker(&self) -> String {
        format!("mailwire check {}", self.token)
    }

    /// A password that is certainly wrong.
    pub fn wrong_password(&self) -> String {
        format!("{}-wrong-{}", self.settings.pass, self.token)
    }

    /// Why the checks that delete cannot run.
    pub fn no_deletable_reason(&self) -> String {
        if self.settings.smtp.is_some() {
            format!(
                "the checker deletes only mail it sent itself, and its mail to {} was not found in {}'s maildrop (see roundtrip.smtp-pop3); --allow-delete lets it use the last message",
                self.settings.rcpt, self.settings.user
            )
        } else {
            "this check deletes mail: give --smtp too (the checker then deletes only mail it sent itself) or --allow-delete (it may delete the last message)".to_string()
        }
    }
}

type CheckFn = fn(&mut Ctx, &mut Probe) -> Result<Verdict, Stop>;

/// What a run tells its observer, as it goes.
#[derive(Debug, Clone, Copy)]
pub enum RunEvent<'r> {
    /// A check begins talking to the server (skips do not begin).
    Started(CheckInfo),
    /// A check's result (a skip too).
    Finished(&'r CheckResult),
}

/// The skip reason of the checks after the observer asked the run to stop.
pub const STOPPED: &str = "the run was stopped before this check";

/// Runs every check the settings allow, calling `each` with every result as it comes.
pub fn run(settings: &Settings, each: &mut dyn FnMut(&CheckResult)) -> Report {
    run_observed(settings, &mut |event| {
        if let RunEvent::Finished(result) = event {
            each(result);
        }
        true
    })
}

/// The order and the gates of a run, and its observer.
struct Pass<'o> {
    observer: &'o mut dyn FnMut(RunEvent) -> bool,
    /// The observer asked to stop: every check from then on is skipped.
    stopped: bool,
    report: Report,
}

impl Pass<'_> {
    fn push(&mut self, result: CheckResult) {
        (self.observer)(RunEvent::Finished(&result));
        self.report.checks.push(result);
    }

    /// Runs one check (or skips it when its server is not there, did not greet, or the run
    /// was stopped).
    fn perform(
        &mut self,
        ctx: &mut Ctx,
        info: CheckInfo,
        check: CheckFn,
        gate: &Gate,
        greeted: bool,
    ) -> CheckResult {
        if self.stopped {
            return skipped(info, STOPPED);
        }
        if let Some(skip) = gated(info, gate, greeted) {
            return skip;
        }
        if !(self.observer)(RunEvent::Started(info)) {
            self.stopped = true;
            return skipped(info, STOPPED);
        }
        perform(ctx, info, check)
    }
}

/// [`run`], telling `observer` when each check starts and ends; when it answers `false`
/// to a start, that check and all after it are skipped ([`STOPPED`]). A check that has
/// started runs to its end (every step has the run's limit).
pub fn run_observed(settings: &Settings, observer: &mut dyn FnMut(RunEvent) -> bool) -> Report {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut ctx = Ctx {
        settings,
        token: format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff),
        sent: Vec::new(),
        pop3_capa: Vec::new(),
        smtp_extensions: Vec::new(),
    };
    let mut pass = Pass {
        observer,
        stopped: false,
        report: Report::default(),
    };

    let mut smtp_gate = given(settings.smtp.as_deref(), Protocol::Smtp);
    let mut smtp_greeted = smtp_gate.is_open();
    for (info, check) in super::smtp::checks() {
        let mut result = pass.perform(&mut ctx, info, check, &smtp_gate, smtp_greeted);
        if info.id == "smtp.greeting" {
            smtp_greeted &= result.verdict == Verdict::Pass;
            unreachable(
                &mut pass.report,
                &mut result,
                &mut smtp_gate,
                Protocol::Smtp,
            );
        }
        pass.push(result);
    }
    let (reading, deleting): (Vec<_>, Vec<_>) = super::pop3::checks()
        .into_iter()
        .partition(|(info, _)| !DELETING.contains(&info.id));
    let mut pop3_gate = given(settings.pop3.as_deref(), Protocol::Pop3);
    let mut pop3_greeted = pop3_gate.is_open();
    for (info, check) in reading {
        let mut result = pass.perform(&mut ctx, info, check, &pop3_gate, pop3_greeted);
        if info.id == "pop3.greeting" {
            pop3_greeted &= result.verdict == Verdict::Pass;
            unreachable(
                &mut pass.report,
                &mut result,
                &mut pop3_gate,
                Protocol::Pop3,
            );
        }
        pass.push(result);
    }
    for (info, check) in super::smtp::round_trip_checks() {
        let result = if settings.smtp.is_none() || settings.pop3.is_none() {
            skipped(
                info,
                "needs both --smtp and --pop3: mail sent through one is read back through the other",
            )
        } else if !smtp_greeted || !pop3_greeted {
            skipped(
                info,
                "one of the servers did not greet; see smtp.greeting and pop3.greeting",
            )
        } else {
            pass.perform(&mut ctx, info, check, &pop3_gate, true)
        };
        pass.push(result);
    }
    for (info, check) in deleting {
        let result = pass.perform(&mut ctx, info, check, &pop3_gate, pop3_greeted);
        pass.push(result);
    }
    pass.report
}

/// The POP3 checks that delete (or risk deleting) mail; they run last.
const DELETING: [&str; 6] = [
    "pop3.dele",
    "pop3.rset",
    "pop3.drop-deletes-nothing",
    "pop3.quit-authorization",
    "pop3.quit",
    "pop3.quit-deletes",
];

/// Whether a protocol's checks can run.
enum Gate {
    /// Not asked for.
    NotGiven(Protocol),
    /// No TCP connection: why.
    Unreachable(String),
    Open,
}

impl Gate {
    fn is_open(&self) -> bool {
        matches!(self, Gate::Open)
    }
}

/// The gate of a protocol before its greeting check: open when its server was given.
fn given(addr: Option<&str>, protocol: Protocol) -> Gate {
    match addr {
        Some(_) => Gate::Open,
        None => Gate::NotGiven(protocol),
    }
}

/// A greeting check that could not even connect: the server is unreachable, the
/// greeting is a skip (nothing was checked) and the gate closes for the other checks.
fn unreachable(
    report: &mut Report,
    greeting: &mut CheckResult,
    gate: &mut Gate,
    protocol: Protocol,
) {
    if !greeting.clients.is_empty() || !gate.is_open() {
        return;
    }
    if let Verdict::Fail(why) = &greeting.verdict {
        let why = why.clone();
        report.unreachable.push((protocol, why.clone()));
        greeting.verdict = Verdict::Skip(why.clone());
        *gate = Gate::Unreachable(why);
    }
}

fn skipped(info: CheckInfo, why: &str) -> CheckResult {
    CheckResult {
        info,
        level: info.level,
        verdict: Verdict::Skip(why.to_string()),
        sent: Vec::new(),
        expected: String::new(),
        got: Vec::new(),
        clients: Vec::new(),
        servers: Vec::new(),
        transcript: Vec::new(),
        judged_round: 0,
    }
}

/// The skip of a check whose server is not there or did not greet; `None` when it runs.
fn gated(info: CheckInfo, gate: &Gate, greeted: bool) -> Option<CheckResult> {
    match gate {
        Gate::NotGiven(p) => {
            let flag = match p {
                Protocol::Pop3 => "--pop3",
                Protocol::Smtp => "--smtp",
            };
            Some(skipped(
                info,
                &format!("no {p} server given ({flag} HOST:PORT)"),
            ))
        }
        Gate::Unreachable(why) => Some(skipped(info, why)),
        Gate::Open if !greeted && !info.id.ends_with(".greeting") => {
            let see = if info.protocols.first() == Some(&Protocol::Smtp) {
                "smtp.greeting"
            } else {
                "pop3.greeting"
            };
            Some(skipped(
                info,
                &format!("the server did not greet properly; see {see}"),
            ))
        }
        Gate::Open => None,
    }
}

/// Runs one check.
fn perform(ctx: &mut Ctx, info: CheckInfo, check: CheckFn) -> CheckResult {
    let mut probe = Probe::new(ctx.settings.timeout, info.level);
    let verdict = match check(ctx, &mut probe) {
        Ok(v) | Err(v) => v,
    };
    CheckResult {
        info,
        level: probe.level,
        verdict,
        sent: probe.sent,
        expected: probe.expected,
        got: probe.got,
        clients: probe.clients,
        servers: probe.servers,
        transcript: probe.transcript,
        judged_round: probe.evidence_round,
    }
}
