//! Mail typed in the window, on real sockets: a Date from the clock (RFC 5322 section 3.3),
//! a non-ASCII Subject as RFC 2047 encoded-words, and a UTF-8 body sent as 8bit with
//! `BODY=8BITMIME` when the server announced 8BITMIME in its EHLO reply (RFC 6152), as
//! quoted-printable after HELO. Python's email package reads the message back.

// Helpers fail the test the way an assert does.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mailwire::exchange::{ExchangeKind, StepOutcome};
use mailwire::scenario::{self, format};

const SUBJECT: &str = "Grüße aus München: Prüfung = morgen? 日本語のテキストはとても長い";
const BODY: &str = "Hallo gb,\n\nbis morgen, schöne Grüße!\n.ein Punkt am Anfang\nag\n";

/// A scenario that greets with `greeting` and sends one mail "typed in the window".
fn scenario(greeting: &str) -> format::Scenario {
    let text = format!(
        "title = \"t\"\ndescription = \"d\"\nprotocols = [\"smtp\"]\n\
         [fixture]\nhostname = \"iitkgp.edu\"\ndomains = [\"iit.edu\"]\n\
         [[fixture.user]]\nname = \"gb\"\npassword = \"x\"\n\
         [[step]]\ncaption = \"c\"\nconnect = \"smtp\"\nexpect = \"220\"\n\
         [[step]]\ncaption = \"g\"\nsend = \"{greeting} iit.edu\"\nexpect = \"250\"\n\
         [[step]]\ncaption = \"m\"\nsend_mail = {{ from = \"ag@iit.edu\", to = [\"gb@iit.edu\"], \
         subject = {SUBJECT:?}, body = {BODY:?} }}\nexpect = \"250\"\n"
    );
    let mut s = format::Scenario::parse(&text, "typed.toml").unwrap();
    for step in &mut s.steps {
        if let format::Action::SendMail(mail) = &mut step.action {
            mail.date = format::MailDate::Now;
        }
    }
    s
}

/// The MAIL command line and the message as sent (dot-unstuffed, CRLF line ends).
fn sent(outcomes: &[StepOutcome]) -> (String, String) {
    for o in outcomes {
        assert_eq!(o.check, Ok(()), "step {}", o.index + 1);
    }
    let exchanges: Vec<_> = outcomes.iter().flat_map(|o| &o.exchanges).collect();
    let mail = exchanges
        .iter()
        .find(|e| e.kind == ExchangeKind::Command && e.line.starts_with("MAIL FROM:"))
        .unwrap()
        .line
        .clone();
    let content = exchanges
        .iter()
        .find(|e| e.kind == ExchangeKind::Content)
        .unwrap();
    let lines = content.more.split_last().unwrap().1;
    let message: String = lines
        .iter()
        .map(|l| format!("{}\r\n", l.strip_prefix('.').unwrap_or(l)))
        .collect();
    (mail, message)
}

/// Python's email package reads the message: it must find no defect, decode the subject
/// and the body to what was typed, and read the Date as within two minutes of now. Returns
/// what it says of the body: type, charset and transfer encoding.
fn python_reads(message: &str) -> String {
    let dir = crate::common::TempDir::new("compose");
    let path = dir.path().join("m.eml");
    std::fs::write(&path, message).unwrap();
    let script = "import sys, email, email.policy, email.utils, time\n\
        m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)\n\
        assert not m.defects, m.defects\n\
        assert str(m['Subject']) == sys.argv[2], repr(str(m['Subject']))\n\
        assert m.get_content().replace('\\r\\n', '\\n') == sys.argv[3], repr(m.get_content())\n\
        d = email.utils.parsedate_to_datetime(m['Date'])\n\
        assert abs(d.timestamp() - time.time()) < 120, m['Date']\n\
        print(m.get_content_type(), m.get_content_charset(), m['Content-Transfer-Encoding'])\n";
    crate::common::run_program(
        "python3",
        &["-c", script, path.to_str().unwrap(), SUBJECT, BODY],
        Duration::from_secs(20),
    )
    .trim()
    .to_string()
}

#[test]
fn typed_mail_after_ehlo_is_8bit_with_body_8bitmime_and_a_fresh_date() {
    let outcomes = scenario::run_on_sockets(&scenario("EHLO")).unwrap();
    let (mail, message) = sent(&outcomes);
    assert_eq!(mail, "MAIL FROM:<ag@iit.edu> BODY=8BITMIME");
    assert!(message.contains("\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen"));
    assert!(
        !message.contains("Thu, 1 Jan 2026"),
        "the clock's date, not the fixture's"
    );
    assert_eq!(python_reads(&message), "text/plain utf-8 8bit");
}

#[test]
fn typed_mail_after_helo_is_quoted_printable() {
    let outcomes = scenario::run_on_sockets(&scenario("HELO")).unwrap();
    let (mail, message) = sent(&outcomes);
    assert_eq!(mail, "MAIL FROM:<ag@iit.edu>", "no 8BITMIME without EHLO");
    assert!(message.is_ascii(), "{message}");
    assert_eq!(python_reads(&message), "text/plain utf-8 quoted-printable");
}
