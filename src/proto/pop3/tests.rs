//! Byte-for-byte tests of the POP3 server machine: the seed sessions, every chunk size,
//! hostile input.

use super::*;
use crate::proto::{Machine, ServerMachine};

/// An in-memory maildrop answering the machine's requests.
#[derive(Clone)]
struct Fake {
    users: Vec<(&'static str, &'static str)>,
    messages: Vec<Vec<u8>>,
    locked_by_other: bool,
    expunged: Option<Vec<usize>>,
}

impl Fake {
    fn new(messages: Vec<Vec<u8>>) -> Self {
        Self {
            users: vec![("mrose", "tanstaaf"), ("user", "secret")],
            messages,
            locked_by_other: false,
            expunged: None,
        }
    }

    fn answer(&mut self, server: &mut Pop3Server, request: Pop3Request) {
        match request {
            Pop3Request::Login { user, credential } => {
                let verified = self
                    .users
                    .iter()
                    .find(|(u, _)| *u == user)
                    .and_then(|(_, p)| credential.verify(p));
                let known = verified.is_some();
                let outcome = if !known {
                    LoginOutcome::Rejected
                } else if self.locked_by_other {
                    LoginOutcome::InUse
                } else {
                    LoginOutcome::Accepted(
                        self.messages
                            .iter()
                            .enumerate()
                            .map(|(i, m)| MessageInfo {
                                size: m.len() as u64,
                                uid: format!("uid-{}", i + 1),
                            })
                            .collect(),
                    )
                };
                server.answer_login_with(outcome, verified.and_then(|v| v.server_final));
            }
            Pop3Request::StartTls => server.tls_started(),
            Pop3Request::Fetch { index } => {
                let msg = self
                    .messages
                    .get(index)
                    .cloned()
                    .ok_or(MaildropError::Store {
                        brief: "gone".into(),
                    });
                server.answer_fetch(msg);
            }
            Pop3Request::Update { delete } => {
                self.expunged = Some(delete);
                server.answer_update(Ok(()));
            }
        }
    }
}

struct Run {
    written: Vec<u8>,
    events: Vec<Pop3Event>,
    closed: bool,
    fake: Fake,
}

const TIMESTAMP: &str = "<1896.697170952@dbc.mtview.ca.us>";

fn config() -> Pop3Config {
    Pop3Config {
        hostname: "dewey".into(),
        timestamp: TIMESTAMP.into(),
        apop_only: false,
    }
}

fn run(input: &[u8], chunk: usize, fake: &Fake) -> Run {
    let mut fake = fake.clone();
    let mut server = Pop3Server::new(config());
    let mut written = Vec::new();
    let mut events = Vec::new();
    let mut closed = false;
    let mut drain = |server: &mut Pop3Server, fake: &mut Fake, closed: &mut bool| {
        while let Some(out) = server.poll_output() {
            match out {
                Pop3Output::Write(b) => written.extend_from_slice(&b),
                Pop3Output::Event(e) => events.push(e),
                Pop3Output::Request(r) => fake.answer(server, r),
                Pop3Output::Close => *closed = true,
            }
        }
    };
    drain(&mut server, &mut fake, &mut closed);
    for piece in input.chunks(chunk.max(1)) {
        if closed {
            break;
        }
        server.receive(piece);
        drain(&mut server, &mut fake, &mut closed);
    }
    if !closed {
        server.receive_eof();
        drain(&mut server, &mut fake, &mut closed);
    }
    Run {
        written,
        events,
        closed,
        fake,
    }
}

/// Runs at chunk sizes 1, 2, 4 ... 512, asserts every run wrote the same bytes, returns one.
fn run_all_chunks(input: &[u8], fake: &Fake) -> Run {
    let reference = run(input, input.len().max(1), fake);
    let mut chunk = 1;
    while chunk <= 512 {
        let r = run(input, chunk, fake);
        assert_eq!(
            String::from_utf8_lossy(&r.written),
            String::from_utf8_lossy(&reference.written),
            "chunk size {chunk} differs"
        );
        assert_eq!(
            r.events, reference.events,
            "events differ at chunk size {chunk}"
        );
        chunk *= 2;
    }
    reference
}

/// A message of exactly `size` octets with CRLF line ends.
fn message(subject: &str, size: usize) -> Vec<u8> {
    let mut m = format!("From: a@b\r\nSubject: {subject}\r\n\r\n").into_bytes();
    while m.len() + 2 < size {
        m.push(if m.len() % 60 == 59 { b' ' } else { b'x' });
    }
    m.extend_from_slice(b"\r\n");
    assert_eq!(m.len(), size);
    m
}

fn text(r: &Run) -> String {
    String::from_utf8_lossy(&r.written).into_owned()
}

#[test]
fn apop_known_answer_from_rfc_1939() {
    assert_eq!(
        apop_digest(TIMESTAMP, "tanstaaf"),
        "c4c9334bac560ecc979e58001b3e22fb"
    );
}

#[test]
fn rfc_1939_example_session() {
    let m1 = message("one", 120);
    let m2 = message("two", 200);
    let fake = Fake::new(vec![m1.clone(), m2.clone()]);
    let input = b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n";
    let r = run_all_chunks(input, &fake);
    let mut expected = format!(
        "+OK POP3 server ready {TIMESTAMP}\r\n\
         +OK mrose's maildrop has 2 messages (320 octets)\r\n\
         +OK 2 320\r\n\
         +OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n\
         +OK 120 octets\r\n"
    )
    .into_bytes();
    expected.extend_from_slice(&m1);
    expected.extend_from_slice(b".\r\n+OK message 1 deleted\r\n+OK 200 octets\r\n");
    expected.extend_from_slice(&m2);
    expected.extend_from_slice(
        b".\r\n+OK message 2 deleted\r\n+OK dewey POP3 server signing off (maildrop empty)\r\n",
    );
    assert_eq!(text(&r), String::from_utf8_lossy(&expected));
    assert!(r.closed);
    assert_eq!(r.fake.expunged, Some(vec![0, 1]));
    assert!(r.events.contains(&Pop3Event::Expunged { msgs: vec![1, 2] }));
}

#[test]
fn seed_002_wrong_password_then_right_then_delete_two_oldest() {
    let msgs: Vec<Vec<u8>> = (1..=6).map(|i| message(&format!("m{i}"), 100)).collect();
    let fake = Fake::new(msgs);
    let input = b"USER user\r\nPASS wrong\r\nUSER user\r\nPASS secret\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n";
    let r = run_all_chunks(input, &fake);
    let t = text(&r);
    let lines: Vec<&str> = t.split("\r\n").collect();
    assert_eq!(lines.get(1), Some(&"+OK send PASS for user"));
    assert_eq!(
        lines.get(2),
        Some(&"-ERR [AUTH] invalid user name or password")
    );
    assert_eq!(lines.get(3), Some(&"+OK send PASS for user"));
    assert_eq!(
        lines.get(4),
        Some(&"+OK user's maildrop has 6 messages (600 octets)")
    );
    assert_eq!(lines.get(5), Some(&"+OK 6 600"));
    assert!(t.contains(
        "+OK 6 messages (600 octets)\r\n1 100\r\n2 100\r\n3 100\r\n4 100\r\n5 100\r\n6 100\r\n.\r\n"
    ));
    assert!(t.ends_with("+OK dewey POP3 server signing off (4 messages left)\r\n"));
    assert_eq!(r.fake.expunged, Some(vec![0, 1]));
}

#[test]
fn seed_004_lower_case_commands() {
    let fake = Fake::new(vec![message("Test 1", 2859), message("Test 2", 2859)]);
    let input = b"user user\r\npass secret\r\nstat\r\nlist\r\nretr 1\r\nretr 2\r\ndele 1\r\ndele 2\r\nquit\r\n";
    let r = run_all_chunks(input, &fake);
    let t = text(&r);
    assert!(t.contains("+OK 2 5718\r\n"));
    assert!(t.contains("+OK 2 messages (5718 octets)\r\n1 2859\r\n2 2859\r\n.\r\n"));
    assert_eq!(t.matches("+OK 2859 octets\r\n").count(), 2);
    assert!(t.ends_with("(maildrop empty)\r\n"));
}

#[test]
fn deleted_messages_vanish_and_rset_restores_them() {
    let fake = Fake::new(vec![message("a", 50), message("b", 60), message("c", 70)]);
    let input = b"USER user\r\nPASS secret\r\nDELE 2\r\nSTAT\r\nLIST\r\nLIST 2\r\nRETR 2\r\nTOP 2 0\r\nUIDL\r\nUIDL 2\r\nDELE 2\r\nRSET\r\nSTAT\r\nUIDL 2\r\nQUIT\r\n";
    let r = run_all_chunks(input, &fake);
    let t = text(&r);
    let expected_tail = "+OK message 2 deleted\r\n\
        +OK 2 120\r\n\
        +OK 2 messages (120 octets)\r\n1 50\r\n3 70\r\n.\r\n\
        -ERR message 2 already deleted\r\n\
        -ERR message 2 already deleted\r\n\
        -ERR message 2 already deleted\r\n\
        +OK unique-id listing follows\r\n1 uid-1\r\n3 uid-3\r\n.\r\n\
        -ERR message 2 already deleted\r\n\
        -ERR message 2 already deleted\r\n\
        +OK maildrop has 3 messages (180 octets)\r\n\
        +OK 3 180\r\n\
        +OK 2 uid-2\r\n\
        +OK dewey POP3 server signing off (3 messages left)\r\n";
    assert!(t.ends_with(expected_tail), "got:\n{t}");
    assert_eq!(r.fake.expunged, Some(vec![]));
    assert!(
        r.events
            .contains(&Pop3Event::DeletionsUndone { msgs: vec![2] })
    );
}

#[test]
fn dropped_connection_deletes_nothing() {
    let fake = Fake::new(vec![message("a", 50)]);
    let r = run_all_chunks(b"USER user\r\nPASS secret\r\nDELE 1\r\n", &fake);
    assert!(text(&r).ends_with("+OK message 1 deleted\r\n"));
    assert_eq!(r.fake.expunged, None, "no UPDATE without QUIT");
    assert!(!r.closed);
}

#[test]
fn maildrop_in_use() {
    let mut fake = Fake::new(vec![]);
    fake.locked_by_other = true;
    let r = run_all_chunks(b"USER user\r\nPASS secret\r\nQUIT\r\n", &fake);
    assert!(text(&r).ends_with(
        "-ERR [IN-USE] maildrop already locked by another session\r\n+OK dewey POP3 server signing off\r\n"
    ));
}

#[test]
fn byte_stuffing_and_sizes_before_stuffing() {
    let body = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n".to_vec();
    let size = body.len();
    let fake = Fake::new(vec![body]);
    let r = run_all_chunks(
        b"USER user\r\nPASS secret\r\nLIST 1\r\nRETR 1\r\nQUIT\r\n",
        &fake,
    );
    let t = text(&r);
    assert!(t.contains(&format!("+OK 1 {size}\r\n")));
    assert!(t.contains(&format!(
        "+OK {size} octets\r\nSubject: dots\r\n\r\n..leading dot\r\n...two\r\n..\r\nend\r\n.\r\n"
    )));
}

#[test]
fn bare_lf_and_missing_final_line_end_are_sent_as_crlf() {
    let fake = Fake::new(vec![b"Subject: x\n\nbody".to_vec()]);
    let r = run_all_chunks(b"USER user\r\nPASS secret\r\nRETR 1\r\n", &fake);
    assert!(text(&r).ends_with("Subject: x\r\n\r\nbody\r\n.\r\n"));
}

#[test]
fn top_sends_headers_blank_line_and_n_body_lines() {
    let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n".to_vec();
    let fake = Fake::new(vec![m]);
    let r = run_all_chunks(
        b"USER user\r\nPASS secret\r\nTOP 1 0\r\nTOP 1 2\r\nTOP 1 99\r\n",
        &fake,
    );
    let t = text(&r);
    assert!(t.contains("+OK 14 octets\r\nA: 1\r\nB: 2\r\n\r\n.\r\n"));
    assert!(t.contains("+OK 22 octets\r\nA: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n.\r\n"));
    assert!(t.ends_with("+OK 26 octets\r\nA: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n.\r\n"));
}

#[test]
fn capa_lists_exactly_what_is_implemented() {
    let r = run_all_chunks(b"CAPA\r\n", &Fake::new(vec![]));
    assert!(text(&r).ends_with(
        "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n\
         RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION mailwire\r\n.\r\n"
    ));
}

#[test]
fn commands_in_the_wrong_state_and_unknown_ones() {
    let r = run_all_chunks(
        b"STAT\r\nPASS x\r\nFOO\r\nNOOP\r\nUSER user\r\nPASS secret\r\nUSER x\r\nRETR 9\r\nRETR 0\r\nNOOP\r\n",
        &Fake::new(vec![message("a", 40)]),
    );
    let t = text(&r);
    let replies: Vec<&str> = t.split("\r\n").skip(1).collect();
    assert_eq!(
        replies,
        vec![
            "-ERR STAT is not allowed in the AUTHORIZATION state",
            "-ERR give USER first",
            "-ERR unknown command \"FOO\"",
            "-ERR NOOP is not allowed in the AUTHORIZATION state",
            "+OK send PASS for user",
            "+OK user's maildrop has 1 message (40 octets)",
            "-ERR already logged in",
            "-ERR no such message, only 1 in maildrop",
            "-ERR no such message, only 1 in maildrop",
            "+OK",
            "",
        ]
    );
}

#[test]
fn hostile_input_gets_errors_and_the_session_goes_on() {
    let mut input = vec![b'A'; 1_000_000];
    input.extend_from_slice(b"\r\n\x00\x00\xff\r\nUSER \xff\xfe\r\n\r\nQUIT\r\n");
    let r = run_all_chunks(&input, &Fake::new(vec![]));
    let t = text(&r);
    let replies: Vec<&str> = t.split("\r\n").skip(1).collect();
    assert_eq!(
        replies.first(),
        Some(&"-ERR command line too long (1000000 octets, at most 255)")
    );
    assert!(
        replies
            .get(1)
            .is_some_and(|l| l.starts_with("-ERR unknown command"))
    );
    assert!(
        replies
            .get(2)
            .is_some_and(|l| l.starts_with("+OK send PASS for"))
    );
    assert_eq!(replies.get(3), Some(&"-ERR empty command line"));
    assert_eq!(replies.get(4), Some(&"+OK dewey POP3 server signing off"));
    assert!(r.closed);
}

#[test]
fn pipelined_commands_in_one_write_are_answered_in_order() {
    let fake = Fake::new(vec![message("a", 40), message("b", 41)]);
    let input = b"USER user\r\nPASS secret\r\nSTAT\r\nRETR 2\r\nDELE 1\r\nLIST\r\nQUIT\r\n";
    let r = run(input, input.len(), &fake);
    let one_at_a_time = run(input, 1, &fake);
    assert_eq!(r.written, one_at_a_time.written);
    let t = text(&r);
    let stat = t.find("+OK 2 81").unwrap_or(usize::MAX);
    let retr = t.find("+OK 41 octets").unwrap_or(0);
    assert!(stat < retr, "STAT answered before RETR");
}

#[test]
fn nothing_is_read_after_quit() {
    let fake = Fake::new(vec![]);
    let r = run_all_chunks(b"QUIT\r\nUSER user\r\n", &fake);
    assert_eq!(
        text(&r),
        format!("+OK POP3 server ready {TIMESTAMP}\r\n+OK dewey POP3 server signing off\r\n")
    );
}

#[test]
fn events_tell_the_story_in_order() {
    let fake = Fake::new(vec![message("a", 40)]);
    let r = run(
        b"USER user\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n",
        512,
        &fake,
    );
    let kinds: Vec<String> = r
        .events
        .iter()
        .map(|e| match e {
            Pop3Event::CommandReceived { line } => format!("C {line}"),
            Pop3Event::ReplySent { first_line, .. } => format!("S {first_line}"),
            Pop3Event::StateChanged { to, .. } => format!("state {}", to.name()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "S +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>",
            "C USER user",
            "S +OK send PASS for user",
            "C PASS secret",
            "LoggedIn { user: \"user\", messages: 1, octets: 40 }",
            "S +OK user's maildrop has 1 message (40 octets)",
            "state TRANSACTION",
            "C DELE 1",
            "MessageMarkedDeleted { msg: 1 }",
            "S +OK message 1 deleted",
            "C QUIT",
            "state UPDATE",
            "Expunged { msgs: [1] }",
            "S +OK dewey POP3 server signing off (maildrop empty)",
            "state CLOSED",
        ]
    );
}

#[test]
fn apop_only_refuses_user_and_leaves_it_out_of_capa() {
    // RFC 1939 section 13: a user with an APOP secret should not also log in with USER/PASS;
    // RFC 2449 section 6.2: USER is announced only where it is accepted.
    let mut server = Pop3Server::new(Pop3Config {
        apop_only: true,
        ..config()
    });
    server.receive(b"CAPA\r\nUSER mrose\r\nPASS tanstaaf\r\n");
    let mut written = Vec::new();
    while let Some(out) = server.poll_output() {
        if let Pop3Output::Write(b) = out {
            written.extend_from_slice(&b);
        }
    }
    let text = String::from_utf8(written).unwrap();
    assert!(!text.contains("\r\nUSER\r\n"), "{text}");
    assert!(text.contains("\r\nTOP\r\n"), "{text}");
    assert!(
        text.contains("-ERR [AUTH] this server accepts only APOP"),
        "{text}"
    );
    assert!(text.ends_with("-ERR give USER first\r\n"), "{text}");
    assert_eq!(server.state(), Pop3State::Authorization);
}

#[test]
fn autologout_closes_without_a_response() {
    // RFC 1939 section 3: the session ends "without sending any response to the client".
    let server = Pop3Server::new(config());
    assert_eq!(server.goodbye(crate::proto::Goodbye::Idle), None);
}

/// Runs `input` in one piece through a server answering with `replies`; the bytes written.
fn run_with_replies(input: &[u8], replies: Pop3Replies, fake: &Fake) -> String {
    let mut fake = fake.clone();
    let mut server = Pop3Server::with_replies(config(), replies);
    let mut written = Vec::new();
    server.receive(input);
    while let Some(out) = server.poll_output() {
        match out {
            Pop3Output::Write(b) => written.extend_from_slice(&b),
            Pop3Output::Request(r) => fake.answer(&mut server, r),
            Pop3Output::Event(_) | Pop3Output::Close => {}
        }
    }
    String::from_utf8_lossy(&written).into_owned()
}

#[test]
fn reply_texts_replace_only_the_free_text() {
    // The class project's texts (RFC 1939 section 3: "+OK" or "-ERR", then free text).
    let replies = Pop3Replies {
        greeting: Some("POP3 Server Ready".into()),
        user: Some("Hello {user}- Send PASS".into()),
        login: Some("{user}- Welcome and Proceed ({count}, {octets})".into()),
        login_failed: Some("login incorrect for {user}".into()),
        dele: Some("file {msg} deleted".into()),
        quit: Some("POP3 server saying goodbye...".into()),
    };
    assert_eq!(replies.check(), Ok(()));
    let fake = Fake::new(vec![b"a\r\n".to_vec(), b"bc\r\n".to_vec()]);
    let t = run_with_replies(
        b"USER mrose\r\nPASS wrong\r\nUSER mrose\r\nPASS tanstaaf\r\nDELE 2\r\nSTAT\r\nQUIT\r\n",
        replies.clone(),
        &fake,
    );
    assert_eq!(
        t,
        format!(
            "+OK POP3 Server Ready {TIMESTAMP}\r\n\
             +OK Hello mrose- Send PASS\r\n\
             -ERR [AUTH] login incorrect for mrose\r\n\
             +OK Hello mrose- Send PASS\r\n\
             +OK mrose- Welcome and Proceed (2, 7)\r\n\
             +OK file 2 deleted\r\n\
             +OK 1 3\r\n\
             +OK POP3 server saying goodbye...\r\n"
        )
    );
    // QUIT in AUTHORIZATION says the same goodbye.
    let t = run_with_replies(b"QUIT\r\n", replies, &fake);
    assert!(t.ends_with("+OK POP3 server saying goodbye...\r\n"), "{t}");
}

#[test]
fn empty_reply_texts_leave_the_bare_status() {
    // RFC 2449 section 4: a response is the status indicator, then optional text.
    let replies = Pop3Replies {
        greeting: Some(String::new()),
        user: Some(String::new()),
        ..Pop3Replies::default()
    };
    let fake = Fake::new(Vec::new());
    let t = run_with_replies(b"USER user\r\n", replies, &fake);
    assert_eq!(t, format!("+OK {TIMESTAMP}\r\n+OK\r\n"));
}

#[test]
fn a_user_name_cannot_smuggle_a_placeholder_or_a_line() {
    let replies = Pop3Replies {
        user: Some("Hello {user}".into()),
        ..Pop3Replies::default()
    };
    let t = run_with_replies(b"USER {msg}\r\n", replies, &Fake::new(Vec::new()));
    assert!(t.ends_with("+OK Hello {msg}\r\n"), "{t}");
}

#[test]
fn bad_reply_texts_are_refused_by_check() {
    let bad = Pop3Replies {
        dele: Some("{user} deleted".into()),
        ..Pop3Replies::default()
    };
    let e = bad.check().unwrap_err();
    assert!(e.to_string().contains("pop3.dele"), "{e}");
    let bad = Pop3Replies {
        quit: Some("bye\r\n+OK more".into()),
        ..Pop3Replies::default()
    };
    assert!(bad.check().is_err());
}

// --- TLS (RFC 2595) and SASL (RFC 5034) ---

use crate::proto::SecurityEvent;
use crate::proto::sasl::{self, Mechanism, SaslParams, ScramKeys, Security, TlsState};

/// Runs `pieces` (each pushed as one read) through a server with `security`; the fake
/// answers STLS as a driver would, by "making the handshake" at once.
fn run_secure(pieces: &[&[u8]], security: Security) -> Run {
    let mut fake = Fake::new(vec![message("a", 40)]);
    let mut server = Pop3Server::new(config()).with_security(security);
    let mut written = Vec::new();
    let mut events = Vec::new();
    let mut closed = false;
    let mut drain = |server: &mut Pop3Server, fake: &mut Fake, closed: &mut bool| {
        while let Some(out) = server.poll_output() {
            match out {
                Pop3Output::Write(b) => written.extend_from_slice(&b),
                Pop3Output::Event(e) => events.push(e),
                Pop3Output::Request(r) => fake.answer(server, r),
                Pop3Output::Close => *closed = true,
            }
        }
    };
    drain(&mut server, &mut fake, &mut closed);
    for piece in pieces {
        server.receive(piece);
        drain(&mut server, &mut fake, &mut closed);
    }
    Run {
        written,
        events,
        closed,
        fake,
    }
}

fn offered() -> Security {
    Security {
        tls: TlsState::Offered,
        ..Security::default()
    }
}

fn security_events(r: &Run) -> Vec<SecurityEvent> {
    r.events
        .iter()
        .filter_map(|e| match e {
            Pop3Event::Security(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn stls_is_advertised_only_while_it_can_start() {
    let r = run_secure(&[b"CAPA\r\n", b"STLS\r\n", b"CAPA\r\nSTLS\r\n"], offered());
    let t = text(&r);
    let (before, after) = t.split_once("+OK Begin TLS negotiation\r\n").unwrap();
    assert!(before.contains("\r\nSTLS\r\n"), "{before}");
    assert!(!after.contains("\r\nSTLS\r\n"), "{after}");
    assert!(
        after.ends_with("-ERR Command not permitted when TLS active\r\n"),
        "{after}"
    );
    assert_eq!(
        security_events(&r),
        vec![
            SecurityEvent::TlsRequested { discarded: 0 },
            SecurityEvent::TlsStarted
        ]
    );
    // Without a certificate: not advertised, refused.
    let r = run_secure(&[b"CAPA\r\nSTLS\r\n"], Security::default());
    assert!(!text(&r).contains("\r\nSTLS\r\n"));
    assert!(text(&r).ends_with("-ERR STLS not available: this server has no certificate\r\n"));
    // Only in AUTHORIZATION (RFC 2595 section 4).
    let r = run_secure(&[b"USER user\r\nPASS secret\r\nSTLS\r\n"], offered());
    assert!(text(&r).ends_with("-ERR STLS is only allowed before logging in\r\n"));
}

#[test]
fn plaintext_pipelined_after_stls_is_discarded_not_run_inside_tls() {
    // CVE-2011-0411: "USER x" came in clear in the same segment as STLS. Were it kept, it
    // would be answered as if sent through TLS, and the PASS after the handshake would log
    // in as the attacker's choice of user.
    let r = run_secure(&[b"STLS\r\nUSER user\r\n", b"PASS secret\r\n"], offered());
    let t = text(&r);
    assert!(
        t.ends_with("+OK Begin TLS negotiation\r\n-ERR give USER first\r\n"),
        "{t}"
    );
    assert_eq!(
        security_events(&r),
        vec![
            SecurityEvent::TlsRequested { discarded: 11 },
            SecurityEvent::TlsStarted
        ]
    );
    // And a USER given before STLS is forgotten.
    let r = run_secure(
        &[b"USER user\r\n", b"STLS\r\n", b"PASS secret\r\n"],
        offered(),
    );
    assert!(text(&r).ends_with("-ERR give USER first\r\n"));
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    let ir = sasl::encode(b"\0user\0secret");
    let r = run_secure(
        &[format!("AUTH PLAIN {ir}\r\nSTAT\r\n").as_bytes()],
        offered(),
    );
    let t = text(&r);
    assert!(
        t.contains("+OK user's maildrop has 1 message (40 octets)\r\n+OK 1 40\r\n"),
        "{t}"
    );
    assert!(security_events(&r).contains(&SecurityEvent::Authenticated {
        user: "user".into(),
        mechanism: Mechanism::Plain
    }));
    let r = run_secure(
        &[b"AUTH PLAIN\r\n", format!("{ir}\r\n").as_bytes()],
        offered(),
    );
    assert!(
        text(&r).contains("+ \r\n+OK user's maildrop"),
        "{}",
        text(&r)
    );
    // Wrong password: -ERR [AUTH], as for PASS (RFC 3206).
    let bad = sasl::encode(b"\0user\0wrong");
    let r = run_secure(&[format!("AUTH PLAIN {bad}\r\n").as_bytes()], offered());
    assert!(text(&r).ends_with("-ERR [AUTH] invalid user name or password\r\n"));
    assert!(security_events(&r).contains(&SecurityEvent::AuthFailed {
        user: Some("user".into()),
        mechanism: Mechanism::Plain
    }));
    // "*" cancels (RFC 5034 section 4); commands work again after it.
    let r = run_secure(&[b"AUTH PLAIN\r\n*\r\nNOOP\r\n"], offered());
    assert!(
        text(&r).ends_with("+ \r\n-ERR [AUTH] authentication cancelled by the client\r\n-ERR NOOP is not allowed in the AUTHORIZATION state\r\n"),
        "{}",
        text(&r)
    );
    // Not base64, unknown mechanism.
    let r = run_secure(&[b"AUTH PLAIN !!!\r\nAUTH GSSAPI\r\n"], offered());
    let t = text(&r);
    assert!(
        t.contains("-ERR [AUTH] the response is not valid base64\r\n"),
        "{t}"
    );
    assert!(t.ends_with(
        "-ERR unsupported SASL mechanism; this server offers: PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n"
    ));
}

#[test]
fn auth_login_asks_for_user_and_password() {
    let r = run_secure(
        &[b"AUTH LOGIN\r\n", b"dXNlcg==\r\n", b"c2VjcmV0\r\n"],
        offered(),
    );
    assert!(
        text(&r).ends_with(
            "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n+OK user's maildrop has 1 message (40 octets)\r\n"
        ),
        "{}",
        text(&r)
    );
}

#[test]
fn auth_cram_md5_uses_the_nonce_passed_in() {
    let security = Security {
        params: SaslParams {
            nonce: "4711.1700000000".into(),
            salt: vec![1; 16],
        },
        ..offered()
    };
    let challenge = "<4711.1700000000@dewey>";
    let digest = sasl::cram_md5_digest(challenge, "tanstaaf");
    let response = sasl::encode(format!("mrose {digest}").as_bytes());
    let r = run_secure(
        &[b"AUTH CRAM-MD5\r\n", format!("{response}\r\n").as_bytes()],
        security,
    );
    let t = text(&r);
    assert!(
        t.contains(&format!("+ {}\r\n", sasl::encode(challenge.as_bytes()))),
        "{t}"
    );
    assert!(
        t.ends_with("+OK mrose's maildrop has 1 message (40 octets)\r\n"),
        "{t}"
    );
}

/// A SCRAM-SHA-256 client's final message for `server_first` (RFC 5802 section 3).
fn scram_client_final(client_first_bare: &str, server_first: &str, password: &str) -> String {
    let mut attrs = server_first.split(',');
    let nonce = attrs.next().unwrap().strip_prefix("r=").unwrap();
    let salt = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        attrs.next().unwrap().strip_prefix("s=").unwrap(),
    )
    .unwrap();
    let iterations: u32 = attrs
        .next()
        .unwrap()
        .strip_prefix("i=")
        .unwrap()
        .parse()
        .unwrap();
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let keys = ScramKeys::derive(password, &salt, iterations);
    let signature = sasl::hmac_sha256(&keys.stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = keys
        .client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    format!("{without_proof},p={}", sasl::encode(&proof))
}

/// The decoded text of the last `+ ` challenge in `t`.
fn last_challenge(t: &str) -> String {
    let line = t.lines().rev().find(|l| l.starts_with("+ ")).unwrap();
    String::from_utf8(sasl::decode(line.strip_prefix("+ ").unwrap()).unwrap()).unwrap()
}

#[test]
fn auth_scram_sha_256_proves_both_sides() {
    let bare = "n=user,r=clientnonce123";
    let first = sasl::encode(format!("n,,{bare}").as_bytes());
    let step1 = run_secure(
        &[format!("AUTH SCRAM-SHA-256 {first}\r\n").as_bytes()],
        offered(),
    );
    let server_first = last_challenge(&text(&step1));
    assert!(
        server_first.starts_with("r=clientnonce123fixed-nonce"),
        "{server_first}"
    );
    let final_msg = sasl::encode(scram_client_final(bare, &server_first, "secret").as_bytes());
    let r = run_secure(
        &[
            format!("AUTH SCRAM-SHA-256 {first}\r\n").as_bytes(),
            format!("{final_msg}\r\n").as_bytes(),
            b"\r\n",
        ],
        offered(),
    );
    let t = text(&r);
    assert!(last_challenge(&t).starts_with("v="), "{t}");
    assert!(
        t.ends_with("+OK user's maildrop has 1 message (40 octets)\r\n"),
        "{t}"
    );
    // The wrong password: the proof does not verify.
    let wrong = sasl::encode(scram_client_final(bare, &server_first, "nope").as_bytes());
    let r = run_secure(
        &[
            format!("AUTH SCRAM-SHA-256 {first}\r\n").as_bytes(),
            format!("{wrong}\r\n").as_bytes(),
        ],
        offered(),
    );
    assert!(text(&r).ends_with("-ERR [AUTH] invalid user name or password\r\n"));
    // A client that rejects the server's proof ends the session; nothing is logged in.
    let r = run_secure(
        &[
            format!("AUTH SCRAM-SHA-256 {first}\r\n").as_bytes(),
            format!("{final_msg}\r\n").as_bytes(),
            b"*\r\n",
        ],
        offered(),
    );
    assert!(r.closed);
    assert!(
        !r.events
            .iter()
            .any(|e| matches!(e, Pop3Event::LoggedIn { .. }))
    );
}

#[test]
fn clear_passwords_refused_until_tls_when_told() {
    let security = Security {
        clear_passwords: false,
        ..offered()
    };
    let plain = sasl::encode(b"\0user\0secret");
    let r = run_secure(
        &[format!("CAPA\r\nUSER user\r\nAUTH PLAIN {plain}\r\n").as_bytes()],
        security.clone(),
    );
    let t = text(&r);
    assert!(
        t.contains("\r\nSASL CRAM-MD5 SCRAM-SHA-256\r\nSTLS\r\n"),
        "{t}"
    );
    assert!(!t.contains("\r\nUSER\r\n"), "{t}");
    assert!(t.contains("-ERR a password in clear is refused here: send STLS first\r\n"));
    assert!(t.ends_with(
        "-ERR PLAIN sends the password itself (base64 is no encryption): send STLS first\r\n"
    ));
    let r = run_secure(
        &[
            b"STLS\r\n",
            format!("CAPA\r\nAUTH PLAIN {plain}\r\n").as_bytes(),
        ],
        security,
    );
    let t = text(&r);
    assert!(
        t.contains("\r\nUSER\r\nSASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n"),
        "{t}"
    );
    assert!(
        t.ends_with("+OK user's maildrop has 1 message (40 octets)\r\n"),
        "{t}"
    );
}

#[test]
fn apop_only_offers_no_mechanism_that_sends_the_password() {
    let mut server = Pop3Server::new(Pop3Config {
        apop_only: true,
        ..config()
    });
    server
        .receive(format!("CAPA\r\nAUTH PLAIN {}\r\n", sasl::encode(b"\0user\0secret")).as_bytes());
    let mut written = Vec::new();
    while let Some(out) = server.poll_output() {
        if let Pop3Output::Write(b) = out {
            written.extend_from_slice(&b);
        }
    }
    let t = String::from_utf8(written).unwrap();
    assert!(t.contains("\r\nSASL CRAM-MD5 SCRAM-SHA-256\r\n"), "{t}");
    assert!(t.ends_with(
        "-ERR [AUTH] this server accepts no password in clear (PLAIN sends it): use APOP, \
         CRAM-MD5 or SCRAM-SHA-256\r\n"
    ));
}

#[test]
fn on_an_implicit_tls_port_tls_comes_before_the_greeting() {
    let mut server = Pop3Server::new(config()).with_security(Security {
        tls: TlsState::Active,
        ..Security::default()
    });
    server.tls_started();
    assert_eq!(
        server.poll_output(),
        Some(Pop3Output::Event(Pop3Event::Security(
            SecurityEvent::TlsStarted
        )))
    );
    assert!(matches!(
        server.poll_output(),
        Some(Pop3Output::Event(Pop3Event::ReplySent { .. }))
    ));
}
