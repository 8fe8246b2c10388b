//! The SMTP server machine on any client bytes, cut into chunks the input chooses, with a
//! fake store answering its requests. Invariants: no panic; every reply is one write whose
//! lines all end CRLF, each starting with the same three-digit code (2xx to 5xx) followed by
//! "-" on every line but the last and " " (or nothing) on the last; delivered content ends
//! with CRLF and is no larger than the configured limit.
//!
//! Input: `[flags][n][n chunk sizes][client bytes]` (see `support.rs`). Flag bits: 0 and 1
//! pick the size limit, 2 deliveries fail, 3 a recipient check says "no such user", 4 the
//! client closes at the end (EOF).
#![no_main]

#[path = "support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;
use mailwire::proto::{Machine, ServerMachine};
use mailwire::proto::smtp::{DeliveryError, SmtpConfig, SmtpOutput, SmtpRequest, SmtpServer};
use support::{Script, assert_crlf_lines, crlf_lines};

fn answer(server: &mut SmtpServer, request: SmtpRequest, flags: u8, limit: usize) {
    match request {
        SmtpRequest::CheckRecipient { user, .. } => {
            server.answer_recipient(flags & 0x08 == 0 || user == "postmaster");
        }
        SmtpRequest::Deliver { envelope, content } => {
            assert!(!envelope.recipients.is_empty(), "a delivery without recipients");
            assert!(content.len() <= limit, "{} octets delivered, limit {limit}", content.len());
            // Bare LFs inside content lines are kept (see the machine's module doc).
            assert!(
                content.is_empty() || content.ends_with(b"\r\n"),
                "delivered content does not end with CRLF"
            );
            if flags & 0x04 != 0 {
                server.answer_delivery(Err(DeliveryError::Store {
                    brief: "could not write the message".into(),
                }));
            } else {
                server.answer_delivery(Ok(()));
            }
        }
        SmtpRequest::Authenticate { user, credential } => {
            let secret = (user == "u").then_some("p");
            server.answer_auth(secret.and_then(|s| credential.verify(s)));
        }
        // Accepted STARTTLS: the handshake is taken as done at once.
        SmtpRequest::StartTls => server.tls_started(),
    }
}

fn check_reply(bytes: &[u8]) {
    assert_crlf_lines(bytes, "an SMTP reply");
    let lines = crlf_lines(bytes);
    let mut code = None;
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        let shown = String::from_utf8_lossy(line);
        let digits = line.get(..3).unwrap_or_default();
        assert!(
            digits.len() == 3 && digits.iter().all(u8::is_ascii_digit),
            "reply line without a code: {shown:?}"
        );
        assert!((b'2'..=b'5').contains(&digits[0]), "reply code out of range: {shown:?}");
        assert!(code.is_none_or(|c| c == digits), "codes differ within a reply: {shown:?}");
        code = Some(digits);
        match line.get(3) {
            None => assert!(last, "a bare code before the last line: {shown:?}"),
            Some(b'-') => assert!(!last, "the last line continues: {shown:?}"),
            Some(b' ') => assert!(last, "a line before the last one ends the reply: {shown:?}"),
            Some(_) => panic!("no separator after the code: {shown:?}"),
        }
    }
}

fn drain(server: &mut SmtpServer, flags: u8, limit: usize) -> bool {
    let mut closed = false;
    while let Some(out) = server.poll_output() {
        match out {
            SmtpOutput::Write(bytes) => {
                assert!(!closed, "wrote after Close");
                check_reply(&bytes);
            }
            SmtpOutput::Event(_) => {}
            SmtpOutput::Request(r) => answer(server, r, flags, limit),
            SmtpOutput::Close => closed = true,
        }
    }
    closed
}

fuzz_target!(|data: &[u8]| {
    let Some(mut script) = Script::parse(data) else {
        return;
    };
    let flags = script.flags;
    let limit = [0, 10, 200, 10 * 1024 * 1024][usize::from(flags & 0x03)];
    let mut server = SmtpServer::new(SmtpConfig {
        hostname: "fuzz".into(),
        local_domains: vec!["example.org".into()],
        max_message_size: limit,
    });
    if drain(&mut server, flags, limit) {
        return;
    }
    while let Some((chunk, _)) = script.next_chunk() {
        server.receive(chunk);
        if drain(&mut server, flags, limit) {
            return;
        }
    }
    if flags & 0x10 != 0 {
        server.receive_eof();
        drain(&mut server, flags, limit);
    }
});
