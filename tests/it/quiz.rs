//! `mailwire run --quiz` as a class or a script uses it: answers on stdin, one per line,
//! the score printed last. In memory for the protocol questions; on real sockets, with
//! capture, for the packet questions (whose answers come from the capture).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure should stop the test"
)]

use crate::common;

use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

fn quiz(args: &[&str], answers: &str) -> String {
    let out = common::run_with_input(Command::new(common::MAILWIRE).args(args), answers, LIMIT);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// rfc1939 asks 11 questions in memory: the greeting, APOP and the state after it, STAT,
/// LIST, RETR 1, DELE 1, RETR 2, DELE 2, QUIT and the state after it.
const RIGHT: &str = "a\n+OK\nTRANSACTION\na\na\na\na\na\na\n+ok\nupdate\n";

#[test]
fn every_right_answer_scores_and_the_score_comes_last() {
    let out = quiz(&["run", "rfc1939", "--memory", "--quiz"], RIGHT);
    assert_eq!(out.matches("  ? ").count(), 11, "{out}");
    assert_eq!(out.trim_end().lines().last(), Some("score 11/11"), "{out}");
    // The reply is shown after the question, not before it.
    let asked = out.find("Does the server answer +OK or -ERR?").unwrap();
    let shown = out.find("S: +OK mrose's maildrop").unwrap();
    assert!(asked < shown);
}

#[test]
fn wrong_answers_say_what_they_would_have_meant_and_why_the_answer_is_right() {
    // The state after APOP answered AUTHORIZATION, and a word that is no choice.
    let answers = "a\na\nAUTHORIZATION\nmaybe\na\na\na\na\na\na\nc\n";
    let out = quiz(&["run", "rfc1939", "--memory", "--quiz"], answers);
    assert!(
        out.contains(
            "wrong: a failed login leaves the session in AUTHORIZATION, where the client may \
             try again (RFC 1939 section 7)"
        ),
        "{out}"
    );
    assert!(out.contains("the answer is b) TRANSACTION"), "{out}");
    assert!(out.contains("\"maybe\" is not one of the choices"), "{out}");
    assert_eq!(out.trim_end().lines().last(), Some("score 9/11"), "{out}");
}

#[test]
fn the_end_of_input_leaves_the_rest_unanswered() {
    let out = quiz(&["run", "rfc1939", "--memory", "--quiz"], "a\n");
    assert!(out.contains("(no answer: end of input)"), "{out}");
    assert_eq!(out.trim_end().lines().last(), Some("score 1/11"), "{out}");
}

#[test]
fn quiz_and_step_both_read_stdin_so_they_are_refused_together() {
    let out = common::run_with_input(
        Command::new(common::MAILWIRE).args(["run", "rfc1939", "--quiz", "--step"]),
        "",
        LIMIT,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// On sockets with capture, RETR 1 of the pipelining scenario (MSS 100) asks how many
/// segments carried the reply and which ACK follows; the answers are the capture's.
#[test]
fn packet_questions_take_their_answers_from_the_capture() {
    // Answer every question with "a": only the score's total matters here.
    let out = quiz(&["run", "pipelining", "--quiz"], &"a\n".repeat(60));
    if out.contains("not captured") || !out.contains("capturing on") {
        // No capture: then no packet question may be asked at all.
        assert!(!out.contains("In how many TCP segments"), "{out}");
        eprintln!("packet questions not checked: no capture here\n{out}");
        return;
    }
    let segments = out.find("In how many TCP segments").unwrap();
    let retr = &out[segments..];
    // The answer offered as right is the number of frames listed for the reply.
    let answer = retr
        .lines()
        .find_map(|l| l.trim().strip_prefix("the answer is "))
        .unwrap();
    let n: usize = answer
        .split(") ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let frames_line = retr
        .lines()
        .find(|l| l.trim_start().starts_with("Frames #"))
        .unwrap();
    assert_eq!(frames_line.matches('#').count(), n, "{frames_line}");
    // The ACK question's right answer is the ACK the capture shows. It is asked only when
    // the client's ACK was captured before the step ended (a delayed ACK may come later).
    let Some(ack) = out.find("Which acknowledgment number") else {
        assert!(!out.contains("Which acknowledgment"), "{out}");
        eprintln!("no ACK question in this run: the client's ACK came after the step");
        return;
    };
    let rest = &out[ack..];
    let right = rest
        .lines()
        .find_map(|l| l.trim().strip_prefix("the answer is "))
        .unwrap();
    let number = right.split(") ").nth(1).unwrap().split(':').next().unwrap();
    let shown = rest
        .lines()
        .find(|l| l.trim().starts_with("Frame #"))
        .unwrap();
    assert!(
        shown.trim_end().ends_with(&format!("ACK {number}.")),
        "{shown} / {right}"
    );
    assert!(
        out.trim_end().lines().last().unwrap().starts_with("score "),
        "{out}"
    );
}

/// After DELE, STAT's count is asked (and not its +OK, which would give the count away):
/// the wrong choices are the count with the marked message, and 0 (nothing is removed
/// before UPDATE).
#[test]
fn stat_after_dele_asks_the_count_and_explains_the_marked_message() {
    let out = quiz(
        &["run", "rset-undoes-dele", "--memory", "--quiz"],
        &"2\n".repeat(40),
    );
    let asked = out
        .find("This session has marked 1 message(s) deleted. How many messages does STAT report?")
        .unwrap();
    let rest = &out[asked..];
    assert!(
        rest.contains("a) 0") && rest.contains("b) 1") && rest.contains("c) 2"),
        "{rest}"
    );
    assert!(
        rest.contains(
            "wrong: 2 counts the 1 message(s) marked deleted too; STAT leaves them out (RFC 1939 \
             section 5)"
        ),
        "{rest}"
    );
    // The caption ("STAT no longer counts it...") is shown only after the answer.
    let caption = out.find("STAT no longer counts it").unwrap();
    assert!(caption > asked, "{out}");
}
