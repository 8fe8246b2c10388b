//! The POP3 server machine on any client bytes, cut into chunks the input chooses, with an
//! in-memory maildrop answering its requests. Invariants: no panic; every reply is one write
//! whose lines all end CRLF and whose first line starts `+OK` or `-ERR`; a multi-line reply
//! ends with a line holding only "." and has no such line before it.
//!
//! Input: `[flags][n][n chunk sizes][client bytes]` (see `support.rs`). Flag bits: 0 APOP
//! only, 1 the maildrop is in use, 2 reading a message fails, 3 the update fails, 4 the
//! client closes at the end (EOF).
#![no_main]

#[path = "support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;
use mailwire::proto::pop3::{
    LoginOutcome, MaildropError, MessageInfo, Pop3Config, Pop3Event, Pop3Output, Pop3Request,
    Pop3Server,
};
use mailwire::proto::{Machine, ServerMachine};
use support::{Script, assert_crlf_lines, crlf_lines};

/// Messages with every awkward shape: lines starting ".", a lone ".", bare LF and CR, no
/// final line end, empty.
const MESSAGES: [&[u8]; 5] = [
    b"Subject: a\r\n\r\nbody\r\n.\r\n..two\r\n",
    b"bare\nlf\nonly",
    b"",
    b".\r\n",
    b"cr\ronly\r\r\n\r\n.",
];

fn answer(server: &mut Pop3Server, request: Pop3Request, flags: u8) {
    match request {
        Pop3Request::Login { user, credential } => {
            let secret = match user.as_str() {
                "mrose" => Some("tanstaaf"),
                "u" => Some("p"),
                _ => None,
            };
            let outcome = match secret {
                Some(s) if credential.matches(s) => {
                    if flags & 0x02 != 0 {
                        LoginOutcome::InUse
                    } else {
                        LoginOutcome::Accepted(
                            MESSAGES
                                .iter()
                                .enumerate()
                                .map(|(i, m)| MessageInfo {
                                    size: m.len() as u64,
                                    uid: format!("uid{i}"),
                                })
                                .collect(),
                        )
                    }
                }
                _ => LoginOutcome::Rejected,
            };
            server.answer_login(outcome);
        }
        Pop3Request::Fetch { index } => {
            let content = match MESSAGES.get(index) {
                Some(m) if flags & 0x04 == 0 => Ok(m.to_vec()),
                _ => Err(MaildropError::Store {
                    brief: "could not read the message".into(),
                }),
            };
            server.answer_fetch(content);
        }
        Pop3Request::Update { delete } => {
            assert!(delete.iter().all(|&i| i < MESSAGES.len()), "update deletes {delete:?}");
            if flags & 0x08 != 0 {
                server.answer_update(Err(MaildropError::Store {
                    brief: "could not remove".into(),
                }));
            } else {
                server.answer_update(Ok(()));
            }
        }
        // Accepted STLS: the handshake is taken as done at once.
        Pop3Request::StartTls => server.tls_started(),
    }
}

/// Drains the machine's outputs, checking every reply; returns whether it closed.
fn drain(server: &mut Pop3Server, flags: u8, multiline: &mut Option<bool>) -> bool {
    let mut closed = false;
    while let Some(out) = server.poll_output() {
        match out {
            Pop3Output::Write(bytes) => {
                assert!(!closed, "wrote after Close");
                assert_crlf_lines(&bytes, "a POP3 reply");
                let lines = crlf_lines(&bytes);
                let first = lines.first().copied().unwrap_or_default();
                assert!(
                    first.starts_with(b"+OK") || first.starts_with(b"-ERR"),
                    "reply starts {:?}",
                    String::from_utf8_lossy(first)
                );
                let multi = multiline.take().expect("a ReplySent event before each write");
                if multi {
                    assert!(first.starts_with(b"+OK"), "a multi-line -ERR");
                    assert_eq!(lines.last().copied(), Some(&b"."[..]), "multi-line reply without its end");
                    let inner = lines.get(1..lines.len() - 1).unwrap_or_default();
                    assert!(!inner.contains(&&b"."[..]), "a lone . inside a multi-line reply");
                } else {
                    assert_eq!(lines.len(), 1, "a single-line reply of several lines");
                }
            }
            Pop3Output::Event(Pop3Event::ReplySent { multiline: m, .. }) => *multiline = Some(m),
            Pop3Output::Event(_) => {}
            Pop3Output::Request(r) => answer(server, r, flags),
            Pop3Output::Close => closed = true,
        }
    }
    closed
}

fuzz_target!(|data: &[u8]| {
    let Some(mut script) = Script::parse(data) else {
        return;
    };
    let flags = script.flags;
    let mut server = Pop3Server::new(Pop3Config {
        hostname: "fuzz".into(),
        timestamp: "<1896.697170952@dbc.mtview.ca.us>".into(),
        apop_only: flags & 0x01 != 0,
    });
    let mut multiline = None;
    if drain(&mut server, flags, &mut multiline) {
        return;
    }
    while let Some((chunk, _)) = script.next_chunk() {
        server.receive(chunk);
        if drain(&mut server, flags, &mut multiline) {
            return;
        }
    }
    if flags & 0x10 != 0 {
        server.receive_eof();
        drain(&mut server, flags, &mut multiline);
    }
});
