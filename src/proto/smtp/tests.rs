//! Byte-for-byte tests of the SMTP server machine: the seed session, every chunk size,
//! sequence and syntax errors, SMTP smuggling, hostile and oversized input.

use super::*;
use crate::proto::{Machine, ServerMachine};

/// A fake store answering the machine's requests: known users and the deliveries made.
#[derive(Clone, Debug)]
struct Fake {
    users: Vec<&'static str>,
    /// When set, every delivery fails with this text.
    fail: Option<String>,
    delivered: Vec<(Envelope, Vec<u8>)>,
}

impl Fake {
    fn new() -> Self {
        Self {
            users: vec!["gb", "alice", "postmaster"],
            fail: None,
            delivered: Vec::new(),
        }
    }

    fn answer(&mut self, server: &mut SmtpServer, request: SmtpRequest) {
        match request {
            SmtpRequest::CheckRecipient { user, .. } => {
                server.answer_recipient(self.users.contains(&user.as_str()));
            }
            SmtpRequest::Deliver { envelope, content } => match &self.fail {
                Some(why) => {
                    server.answer_delivery(Err(DeliveryError::Store { brief: why.clone() }))
                }
                None => {
                    self.delivered.push((envelope, content));
                    server.answer_delivery(Ok(()));
                }
            },
            SmtpRequest::Authenticate { user, credential } => {
                let password = (user == "alice").then_some("wonderland");
                server.answer_auth(password.and_then(|p| credential.verify(p)));
            }
            SmtpRequest::StartTls => server.tls_started(),
        }
    }
}

struct Run {
    written: Vec<u8>,
    outputs: Vec<SmtpOutput>,
    fake: Fake,
    closed: bool,
    /// The most bytes the machine held (input + content) after outputs were drained.
    max_held: usize,
}

impl Run {
    fn events(&self) -> Vec<SmtpEvent> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                SmtpOutput::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.written).into_owned()
    }
}

fn config() -> SmtpConfig {
    SmtpConfig {
        local_domains: vec!["iit.edu".into()],
        ..SmtpConfig::default()
    }
}

fn drain(server: &mut SmtpServer, fake: &mut Fake, run: &mut Run) {
    while let Some(out) = server.poll_output() {
        match &out {
            SmtpOutput::Write(bytes) => run.written.extend_from_slice(bytes),
            SmtpOutput::Request(request) => fake.answer(server, request.clone()),
            SmtpOutput::Close => run.closed = true,
            SmtpOutput::Event(_) => {}
        }
        run.outputs.push(out);
    }
    run.max_held = run.max_held.max(server.held_bytes());
}

fn run_with(config: &SmtpConfig, input: &[u8], chunk: usize, fake: &Fake) -> Run {
    let mut fake = fake.clone();
    let mut server = SmtpServer::new(config.clone());
    let mut run = Run {
        written: Vec::new(),
        outputs: Vec::new(),
        fake: Fake::new(),
        closed: false,
        max_held: 0,
    };
    drain(&mut server, &mut fake, &mut run);
    for piece in input.chunks(chunk) {
        server.receive(piece);
        drain(&mut server, &mut fake, &mut run);
    }
    assert_eq!(run.closed, server.is_closed(), "Close output iff closed");
    run.fake = fake;
    run
}

const CHUNKS: [usize; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// Runs `input` at every chunk size, checks that all give the same outputs and deliveries,
/// and that the bytes written are `expected`.
fn check_with(config: &SmtpConfig, fake: &Fake, input: &[u8], expected: &str) -> Run {
    let first = run_with(config, input, CHUNKS[0], fake);
    for chunk in CHUNKS.into_iter().skip(1) {
        let other = run_with(config, input, chunk, fake);
        assert_eq!(other.text(), first.text(), "chunk size {chunk}");
        assert_eq!(other.outputs, first.outputs, "chunk size {chunk}");
        assert_eq!(
            other.fake.delivered, first.fake.delivered,
            "chunk size {chunk}"
        );
    }
    assert_eq!(first.text(), expected);
    first
}

fn check(input: &[u8], expected: &str) -> Run {
    check_with(&config(), &Fake::new(), input, expected)
}

/// Server lines joined with CRLF.
fn wire(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

const GREETING: &str = "220 localhost ESMTP mailwire ready";
const BYE: &str = "221 2.0.0 localhost closing connection";
const GO_AHEAD: &str = "354 End data with <CR><LF>.<CR><LF>";
const ACCEPTED: &str = "250 2.0.0 Message accepted for delivery";

fn recipient(address: &str, user: &str) -> Recipient {
    Recipient {
        address: address.into(),
        user: user.into(),
    }
}

#[test]
fn seed_001_session() {
    let input = b"HELO iit.edu\r\n\
        MAIL FROM: <ag@iit.edu>\r\n\
        RCPT TO: gb@iit.edu\r\n\
        DATA\r\n\
        From: ag@iit.edu\r\n\
        To: gb@iit.edu\r\n\
        Subject: Hello\r\n\
        \r\n\
        Hi there\r\n\
        .\r\n\
        QUIT\r\n";
    let run = check(
        input,
        &wire(&[
            GREETING,
            "250 localhost Hello iit.edu",
            "250 2.1.0 Sender <ag@iit.edu> OK",
            "250 2.1.5 Recipient <gb@iit.edu> OK",
            GO_AHEAD,
            ACCEPTED,
            BYE,
        ]),
    );
    assert!(run.closed);
    let content = b"From: ag@iit.edu\r\nTo: gb@iit.edu\r\nSubject: Hello\r\n\r\nHi there\r\n";
    assert_eq!(
        run.fake.delivered,
        vec![(
            Envelope {
                helo: Some("iit.edu".into()),
                esmtp: false,
                tls: false,
                authenticated: false,
                reverse_path: "ag@iit.edu".into(),
                recipients: vec![recipient("gb@iit.edu", "gb")],
            },
            content.to_vec()
        )]
    );
    let events = run.events();
    assert!(events.contains(&SmtpEvent::ContentReceived {
        bytes: content.len(),
        lines: 5
    }));
    assert!(events.contains(&SmtpEvent::MessageDelivered {
        recipients: vec!["gb@iit.edu".into()],
        bytes: content.len()
    }));
    let states: Vec<(SmtpState, SmtpState)> = events
        .iter()
        .filter_map(|e| match e {
            SmtpEvent::StateChanged { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    use SmtpState::*;
    assert_eq!(
        states,
        vec![
            (Connected, Ready),
            (Ready, Mail),
            (Mail, Rcpt),
            (Rcpt, Data),
            (Data, Ready),
            (Ready, Closed)
        ]
    );
}

#[test]
fn ehlo_lists_the_extensions() {
    let run = check(
        b"ehlo client.example\r\nQUIT\r\n",
        &wire(&[
            GREETING,
            "250-localhost Hello client.example",
            "250-PIPELINING",
            "250-SIZE 10485760",
            "250-8BITMIME",
            "250-ENHANCEDSTATUSCODES",
            "250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
            BYE,
        ]),
    );
    assert!(run.events().contains(&SmtpEvent::ReplySent {
        code: 250,
        text: "localhost Hello client.example\nPIPELINING\nSIZE 10485760\n8BITMIME\nENHANCEDSTATUSCODES\n\
               AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"
            .into()
    }));
}

#[test]
fn commands_out_of_sequence_get_503() {
    check(
        b"MAIL FROM:<a@localhost>\r\n\
          RCPT TO:<gb@localhost>\r\n\
          DATA\r\n\
          HELO x\r\n\
          RCPT TO:<gb@localhost>\r\n\
          DATA\r\n\
          MAIL FROM:<a@localhost>\r\n\
          MAIL FROM:<b@localhost>\r\n\
          DATA\r\n\
          RCPT TO:<gb@localhost>\r\n\
          MAIL FROM:<c@localhost>\r\n\
          QUIT\r\n",
        &wire(&[
            GREETING,
            "503 5.5.1 Send HELO/EHLO first",
            "503 5.5.1 Need MAIL before RCPT",
            "503 5.5.1 Need MAIL before DATA",
            "250 localhost Hello x",
            "503 5.5.1 Need MAIL before RCPT",
            "503 5.5.1 Need MAIL before DATA",
            "250 2.1.0 Sender <a@localhost> OK",
            "503 5.5.1 Sender already specified",
            "503 5.5.1 No valid recipients",
            "250 2.1.5 Recipient <gb@localhost> OK",
            "503 5.5.1 Sender already specified",
            BYE,
        ]),
    );
}

#[test]
fn bad_arguments_get_501_552_555_and_550() {
    let run = check(
        b"HELO\r\n\
          EHLO x\r\n\
          MAIL FROM:<bad>\r\n\
          MAIL FROM <a@b.org>\r\n\
          MAIL FROM:<a@b.org> SIZE=20000000\r\n\
          MAIL FROM:<a@b.org> FOO=1\r\n\
          MAIL FROM:<a@b.org> BODY=9BIT\r\n\
          MAIL FROM:<a@b.org> SIZE=100 BODY=8BITMIME\r\n\
          RCPT TO:<>\r\n\
          RCPT TO:<a@>\r\n\
          RCPT TO:<gb@localhost> NOTIFY=NEVER\r\n\
          RCPT TO:<gb@elsewhere.org>\r\n\
          RCPT TO:<nobody@localhost>\r\n\
          RCPT TO:<postmaster@elsewhere.org>\r\n\
          DATA\r\n\
          VRFY\r\n\
          RSET now\r\n\
          QUIT\r\n",
        &wire(&[
            GREETING,
            "501 5.5.4 Syntax: HELO domain",
            "250-localhost Hello x",
            "250-PIPELINING",
            "250-SIZE 10485760",
            "250-8BITMIME",
            "250-ENHANCEDSTATUSCODES",
            "250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
            "501 5.1.7 Bad sender address syntax",
            "501 5.5.4 Syntax: MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME]",
            "552 5.3.4 Message size exceeds fixed maximum message size (10485760 octets)",
            "555 5.5.4 Unsupported parameter FOO",
            "501 5.5.4 Bad BODY parameter (BODY=7BIT or BODY=8BITMIME)",
            "250 2.1.0 Sender <a@b.org> OK",
            "501 5.1.3 Bad recipient address syntax",
            "501 5.1.3 Bad recipient address syntax",
            "555 5.5.4 Unsupported parameter NOTIFY",
            "550 5.7.1 Relaying denied: <gb@elsewhere.org> is not a local address",
            "550 5.1.1 <nobody@localhost>: no such user here",
            "550 5.7.1 Relaying denied: <postmaster@elsewhere.org> is not a local address",
            "503 5.5.1 No valid recipients",
            "501 5.5.4 Syntax: VRFY user-or-address",
            "501 5.5.4 Syntax: RSET",
            BYE,
        ]),
    );
    assert!(run.fake.delivered.is_empty());
}

#[test]
fn unknown_and_unimplemented_commands() {
    check(
        b"FOO bar\r\n\
          \r\n\
          HELOx\r\n\
          EXPN staff\r\n\
          help\r\n\
          NOOP whatever\r\n\
          VRFY gb\r\n\
          QUIT\r\n",
        &wire(&[
            GREETING,
            "500 5.5.2 Command unrecognized",
            "500 5.5.2 Empty command line",
            "500 5.5.2 Command unrecognized",
            "502 5.5.1 Command not implemented",
            "502 5.5.1 Command not implemented",
            "250 2.0.0 OK",
            "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
            BYE,
        ]),
    );
}

#[test]
fn rset_resets_the_transaction_but_keeps_helo() {
    let run = check(
        b"HELO iit.edu\r\n\
          MAIL FROM:<ag@iit.edu>\r\n\
          RCPT TO:<gb@iit.edu>\r\n\
          RSET\r\n\
          DATA\r\n\
          MAIL FROM:<x@iit.edu>\r\n\
          RCPT TO:<alice@iit.edu>\r\n\
          DATA\r\n\
          hi\r\n\
          .\r\n\
          RSET\r\n\
          QUIT\r\n",
        &wire(&[
            GREETING,
            "250 localhost Hello iit.edu",
            "250 2.1.0 Sender <ag@iit.edu> OK",
            "250 2.1.5 Recipient <gb@iit.edu> OK",
            "250 2.0.0 OK",
            "503 5.5.1 Need MAIL before DATA",
            "250 2.1.0 Sender <x@iit.edu> OK",
            "250 2.1.5 Recipient <alice@iit.edu> OK",
            GO_AHEAD,
            ACCEPTED,
            "250 2.0.0 OK",
            BYE,
        ]),
    );
    assert_eq!(
        run.fake.delivered,
        vec![(
            Envelope {
                helo: Some("iit.edu".into()),
                esmtp: false,
                tls: false,
                authenticated: false,
                reverse_path: "x@iit.edu".into(),
                recipients: vec![recipient("alice@iit.edu", "alice")],
            },
            b"hi\r\n".to_vec()
        )]
    );
    assert!(run.events().contains(&SmtpEvent::StateChanged {
        from: SmtpState::Rcpt,
        to: SmtpState::Ready
    }));
}

#[test]
fn rset_and_noop_before_helo() {
    let run = check(
        b"RSET\r\nNOOP\r\nQUIT\r\n",
        &wire(&[GREETING, "250 2.0.0 OK", "250 2.0.0 OK", BYE]),
    );
    assert_eq!(
        run.events()
            .iter()
            .filter(|e| matches!(e, SmtpEvent::StateChanged { .. }))
            .count(),
        1,
        "only the change to Closed"
    );
}

#[test]
fn null_sender_is_accepted() {
    let run = check(
        b"EHLO mailer-daemon.example\r\n\
          MAIL FROM:<>\r\n\
          RCPT TO:<gb@localhost>\r\n\
          DATA\r\n\
          bounce\r\n\
          .\r\n\
          QUIT\r\n",
        &wire(&[
            GREETING,
            "250-localhost Hello mailer-daemon.example",
            "250-PIPELINING",
            "250-SIZE 10485760",
            "250-8BITMIME",
            "250-ENHANCEDSTATUSCODES",
            "250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
            "250 2.1.0 Sender <> OK",
            "250 2.1.5 Recipient <gb@localhost> OK",
            GO_AHEAD,
            ACCEPTED,
            BYE,
        ]),
    );
    let (envelope, content) = &run.fake.delivered[0];
    assert_eq!(envelope.reverse_path, "");
    assert_eq!(content, b"bounce\r\n");
}

const PREFIX: &[u8] = b"HELO c\r\nMAIL FROM:<a@localhost>\r\nRCPT TO:<gb@localhost>\r\nDATA\r\n";

fn one_message_transcript() -> String {
    wire(&[
        GREETING,
        "250 localhost Hello c",
        "250 2.1.0 Sender <a@localhost> OK",
        "250 2.1.5 Recipient <gb@localhost> OK",
        GO_AHEAD,
        ACCEPTED,
        BYE,
    ])
}

#[test]
fn leading_dots_are_unstuffed() {
    let mut input = PREFIX.to_vec();
    input.extend_from_slice(b"..\r\n...\r\n..x\r\n. y\r\nx.\r\n.\r\nQUIT\r\n");
    let run = check(&input, &one_message_transcript());
    assert_eq!(run.fake.delivered[0].1, b".\r\n..\r\n.x\r\n y\r\nx.\r\n");
}

#[test]
fn empty_message_is_delivered() {
    let mut input = PREFIX.to_vec();
    input.extend_from_slice(b".\r\nQUIT\r\n");
    let run = check(&input, &one_message_transcript());
    assert_eq!(run.fake.delivered[0].1, b"");
    assert!(
        run.events()
            .contains(&SmtpEvent::ContentReceived { bytes: 0, lines: 0 })
    );
}

/// SMTP smuggling: only CRLF . CRLF ends the content. Each variant must leave the "smuggled"
/// commands inside the one message.
#[test]
fn only_crlf_dot_crlf_ends_the_data() {
    let smuggled = b"MAIL FROM:<evil@localhost>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nevil\r\n";
    for variant in [
        &b"\n.\n"[..],
        b"\r.\n",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\n.\r",
        b"\r\n.\r",
    ] {
        let mut input = PREFIX.to_vec();
        input.extend_from_slice(b"body");
        input.extend_from_slice(variant);
        input.extend_from_slice(smuggled);
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let run = check(&input, &one_message_transcript());
        assert_eq!(run.fake.delivered.len(), 1, "variant {variant:?}");
        let (envelope, content) = &run.fake.delivered[0];
        assert_eq!(envelope.recipients, vec![recipient("gb@localhost", "gb")]);
        // Nothing was unstuffed unless the variant put a dot at the start of a CRLF line.
        let mut expected = b"body".to_vec();
        if variant.starts_with(b"\r\n.") {
            expected.extend_from_slice(b"\r\n");
            expected.extend_from_slice(variant.get(3..).unwrap_or_default());
        } else {
            expected.extend_from_slice(variant);
        }
        expected.extend_from_slice(smuggled);
        assert_eq!(
            String::from_utf8_lossy(content),
            String::from_utf8_lossy(&expected),
            "variant {variant:?}"
        );
    }
}

#[test]
fn a_one_megabyte_command_line_is_refused_and_the_session_goes_on() {
    let mut input = b"HELO c\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 1_000_000));
    input.extend_from_slice(b"\r\nNOOP\r\nQUIT\r\n");
    let expected = wire(&[
        GREETING,
        "250 localhost Hello c",
        "500 5.5.2 Line too long",
        "250 2.0.0 OK",
        BYE,
    ]);
    let run = check(&input, &expected);
    assert!(run.events().contains(&SmtpEvent::CommandReceived {
        line: "<1000000 octets>".into()
    }));
    for chunk in [1, 512, 65_536] {
        let run = run_with(&config(), &input, chunk, &Fake::new());
        assert_eq!(run.text(), expected);
        assert!(
            run.max_held <= MAX_COMMAND_LINE_TEST + 1,
            "chunk {chunk}: held {}",
            run.max_held
        );
    }
}

/// Command line limit, terminator excluded.
const MAX_COMMAND_LINE_TEST: usize = server::MAX_COMMAND_LINE;

#[test]
fn command_line_limit_is_512_octets_with_crlf() {
    let ok = format!("NOOP {}\r\n", "a".repeat(510 - 5));
    let too_long = format!("NOOP {}\r\n", "a".repeat(511 - 5));
    let input = format!("{ok}{too_long}QUIT\r\n");
    check(
        input.as_bytes(),
        &wire(&[GREETING, "250 2.0.0 OK", "500 5.5.2 Line too long", BYE]),
    );
}

#[test]
fn nul_and_non_utf8_bytes_get_500_or_501() {
    let run = check(
        b"HELO c\r\n\
          \0\0\0\r\n\
          NOOP\0\r\n\
          \xff\xfe\r\n\
          MAIL FROM:<\xff@localhost>\r\n\
          MAIL FROM:<a\0@localhost>\r\n\
          HELO \xc3\x28\r\n\
          VRFY \x00\r\n\
          QUIT\r\n",
        &wire(&[
            GREETING,
            "250 localhost Hello c",
            "500 5.5.2 Command unrecognized",
            "500 5.5.2 Command unrecognized",
            "500 5.5.2 Command unrecognized",
            "501 5.5.4 Invalid characters in command arguments",
            "501 5.5.4 Invalid characters in command arguments",
            "501 5.5.4 Invalid characters in command arguments",
            "501 5.5.4 Invalid characters in command arguments",
            BYE,
        ]),
    );
    assert!(run.events().contains(&SmtpEvent::CommandReceived {
        line: "\u{fffd}\u{fffd}".into()
    }));
    assert!(run.events().contains(&SmtpEvent::CommandReceived {
        line: "\0\0\0".into()
    }));
}

#[test]
fn content_may_hold_nul_and_8bit_bytes() {
    let mut input = PREFIX.to_vec();
    input.extend_from_slice(b"\0\xff\xfe caf\xc3\xa9\r\n.\r\nQUIT\r\n");
    let run = check(&input, &one_message_transcript());
    assert_eq!(run.fake.delivered[0].1, b"\0\xff\xfe caf\xc3\xa9\r\n");
}

#[test]
fn pipelined_transaction_in_one_write() {
    let input = b"EHLO c\r\n\
        MAIL FROM:<a@iit.edu> BODY=8BITMIME\r\n\
        RCPT TO:<gb@iit.edu>\r\n\
        RCPT TO:<nobody@iit.edu>\r\n\
        RCPT TO:<postmaster>\r\n\
        RCPT TO:<GB@iit.edu>\r\n\
        DATA\r\n\
        hi\r\n\
        .\r\n\
        QUIT\r\n";
    let run = check(
        input,
        &wire(&[
            GREETING,
            "250-localhost Hello c",
            "250-PIPELINING",
            "250-SIZE 10485760",
            "250-8BITMIME",
            "250-ENHANCEDSTATUSCODES",
            "250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
            "250 2.1.0 Sender <a@iit.edu> OK",
            "250 2.1.5 Recipient <gb@iit.edu> OK",
            "550 5.1.1 <nobody@iit.edu>: no such user here",
            "250 2.1.5 Recipient <postmaster> OK",
            "550 5.1.1 <GB@iit.edu>: no such user here",
            GO_AHEAD,
            ACCEPTED,
            BYE,
        ]),
    );
    assert_eq!(
        run.fake.delivered[0].0.recipients,
        vec![
            recipient("gb@iit.edu", "gb"),
            recipient("postmaster", "postmaster")
        ]
    );
}

#[test]
fn processing_is_lazy_and_stops_at_a_request() {
    let mut server = SmtpServer::new(config());
    server.receive(b"HELO c\r\nMAIL FROM:<a@localhost>\r\nRCPT TO:<gb@localhost>\r\nNOOP\r\n");
    let mut outputs = Vec::new();
    while let Some(out) = server.poll_output() {
        outputs.push(out);
    }
    assert_eq!(
        outputs.last(),
        Some(&SmtpOutput::Request(SmtpRequest::CheckRecipient {
            user: "gb".into(),
            address: "gb@localhost".into()
        }))
    );
    assert_eq!(server.buffered_input(), b"NOOP\r\n".len());
    assert_eq!(server.poll_output(), None, "waits for the answer");
    server.receive(b"QUIT\r\n");
    assert_eq!(server.poll_output(), None, "still waits");
    assert_eq!(server.state(), SmtpState::Mail);
    server.answer_recipient(true);
    let mut written = Vec::new();
    while let Some(out) = server.poll_output() {
        if let SmtpOutput::Write(b) = out {
            written.extend(b);
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&written),
        wire(&["250 2.1.5 Recipient <gb@localhost> OK", "250 2.0.0 OK", BYE])
    );
    assert!(server.is_closed());
    // Answers nobody asked for are ignored.
    server.answer_recipient(true);
    server.answer_delivery(Ok(()));
    assert_eq!(server.poll_output(), None);
}

#[test]
fn events_of_one_command_come_in_order() {
    let mut server = SmtpServer::new(config());
    let greeting: Vec<SmtpOutput> = std::iter::from_fn(|| server.poll_output()).collect();
    assert_eq!(
        greeting,
        vec![
            SmtpOutput::Write(format!("{GREETING}\r\n").into_bytes()),
            SmtpOutput::Event(SmtpEvent::ReplySent {
                code: 220,
                text: "localhost ESMTP mailwire ready".into()
            }),
        ]
    );
    server.receive(b"HELO c\r\nMAIL FROM:<a@localhost>\r\nRCPT TO:<gb@localhost>\r\n");
    let outputs: Vec<SmtpOutput> = std::iter::from_fn(|| server.poll_output()).collect();
    assert_eq!(
        outputs,
        vec![
            SmtpOutput::Event(SmtpEvent::CommandReceived {
                line: "HELO c".into()
            }),
            SmtpOutput::Write(b"250 localhost Hello c\r\n".to_vec()),
            SmtpOutput::Event(SmtpEvent::ReplySent {
                code: 250,
                text: "localhost Hello c".into()
            }),
            SmtpOutput::Event(SmtpEvent::StateChanged {
                from: SmtpState::Connected,
                to: SmtpState::Ready
            }),
            SmtpOutput::Event(SmtpEvent::CommandReceived {
                line: "MAIL FROM:<a@localhost>".into()
            }),
            SmtpOutput::Write(b"250 2.1.0 Sender <a@localhost> OK\r\n".to_vec()),
            SmtpOutput::Event(SmtpEvent::ReplySent {
                code: 250,
                text: "2.1.0 Sender <a@localhost> OK".into()
            }),
            SmtpOutput::Event(SmtpEvent::SenderAccepted {
                address: "a@localhost".into()
            }),
            SmtpOutput::Event(SmtpEvent::StateChanged {
                from: SmtpState::Ready,
                to: SmtpState::Mail
            }),
            SmtpOutput::Event(SmtpEvent::CommandReceived {
                line: "RCPT TO:<gb@localhost>".into()
            }),
            SmtpOutput::Request(SmtpRequest::CheckRecipient {
                user: "gb".into(),
                address: "gb@localhost".into()
            }),
        ]
    );
    server.answer_recipient(true);
    server.receive(b"DATA\r\nhi\r\n.\r\nQUIT\r\n");
    let outputs: Vec<SmtpOutput> = std::iter::from_fn(|| server.poll_output()).collect();
    let envelope = Envelope {
        helo: Some("c".into()),
        esmtp: false,
        tls: false,
        authenticated: false,
        reverse_path: "a@localhost".into(),
        recipients: vec![recipient("gb@localhost", "gb")],
    };
    assert_eq!(server.envelope(), Some(&envelope));
    assert_eq!(server.state(), SmtpState::Data);
    assert_eq!(
        outputs,
        vec![
            SmtpOutput::Write(b"250 2.1.5 Recipient <gb@localhost> OK\r\n".to_vec()),
            SmtpOutput::Event(SmtpEvent::ReplySent {
                code: 250,
                text: "2.1.5 Recipient <gb@localhost> OK".into()
            }),
            SmtpOutput::Event(SmtpEvent::RecipientAccepted {
                address: "gb@localhost".into()
            }),
            SmtpOutput::Event(SmtpEvent::StateChanged {
                from: SmtpState::Mail,
                to: SmtpState::Rcpt
            }),
            SmtpOutput::Event(SmtpEvent::CommandReceived {
                line: "DATA".into()
            }),
            SmtpOutput::Write(format!("{GO_AHEAD}\r\n").into_bytes()),
            SmtpOutput::Event(SmtpEvent::ReplySent {
                code: 354,
                text: "End data with <CR><LF>.<CR><LF>".into()
            }),
            SmtpOutput::Event(SmtpEvent::StateChanged {
                from: SmtpState::Rcpt,
                to: SmtpState::Data
            }),
            SmtpOutput::Event(SmtpEvent::ContentReceived { bytes: 4, lines: 1 }),
            SmtpOutput::Request(SmtpRequest::Deliver {
                envelope,
                content: b"hi\r\n".to_vec()
            }),
        ]
    );
    server.answer_delivery(Ok(()));
    let outputs: Vec<SmtpOutput> = std::iter::from_fn(|| server.poll_output()).collect();
    assert_eq!(
        outputs,
        vec![
            SmtpOutput::Write(format!("{ACCEPTED}\r\n").into_bytes()),
            SmtpOutput::Event(SmtpEvent::ReplySent {
                code: 250,
                text: "2.0.0 Message accepted for delivery".into()
            }),
            SmtpOutput::Event(SmtpEvent::MessageDelivered {
                recipients: vec!["gb@localhost".into()],
                bytes: 4
            }),
            SmtpOutput::Event(SmtpEvent::StateChanged {
                from: SmtpState::Data,
                to: SmtpState::Ready
            }),
            SmtpOutput::Event(SmtpEvent::CommandReceived {
                line: "QUIT".into()
            }),
            SmtpOutput::Write(format!("{BYE}\r\n").into_bytes()),
            SmtpOutput::Event(SmtpEvent::ReplySent {
                code: 221,
                text: "2.0.0 localhost closing connection".into()
            }),
            SmtpOutput::Event(SmtpEvent::StateChanged {
                from: SmtpState::Ready,
                to: SmtpState::Closed
            }),
            SmtpOutput::Close,
        ]
    );
    assert_eq!(server.envelope(), None);
}

#[test]
fn oversize_message_is_refused_after_the_terminator_without_buffering_it() {
    let config = SmtpConfig {
        max_message_size: 10_000,
        ..config()
    };
    let mut input = PREFIX.to_vec();
    let line = format!("{}\r\n", "y".repeat(98));
    for _ in 0..10_000 {
        input.extend_from_slice(line.as_bytes());
    }
    input.extend_from_slice(
        b".\r\nMAIL FROM:<a@localhost>\r\nRCPT TO:<gb@localhost>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n",
    );
    let expected = wire(&[
        GREETING,
        "250 localhost Hello c",
        "250 2.1.0 Sender <a@localhost> OK",
        "250 2.1.5 Recipient <gb@localhost> OK",
        GO_AHEAD,
        "552 5.3.4 Message too big",
        "250 2.1.0 Sender <a@localhost> OK",
        "250 2.1.5 Recipient <gb@localhost> OK",
        GO_AHEAD,
        ACCEPTED,
        BYE,
    ]);
    let run = check_with(&config, &Fake::new(), &input, &expected);
    assert_eq!(run.fake.delivered.len(), 1);
    assert_eq!(run.fake.delivered[0].1, b"small\r\n");
    assert!(run.events().contains(&SmtpEvent::ContentReceived {
        bytes: 1_000_000,
        lines: 10_000
    }));
    assert!(
        run.max_held <= 10_000 + 1_000 + 512,
        "held {}",
        run.max_held
    );
}

#[test]
fn message_of_exactly_the_maximum_size_is_accepted() {
    let config = SmtpConfig {
        max_message_size: 10,
        ..config()
    };
    let mut input = PREFIX.to_vec();
    input.extend_from_slice(b"12345678\r\n.\r\nMAIL FROM:<a@localhost> SIZE=10\r\nQUIT\r\n");
    let run = check_with(
        &config,
        &Fake::new(),
        &input,
        &wire(&[
            GREETING,
            "250 localhost Hello c",
            "250 2.1.0 Sender <a@localhost> OK",
            "250 2.1.5 Recipient <gb@localhost> OK",
            GO_AHEAD,
            ACCEPTED,
            "250 2.1.0 Sender <a@localhost> OK",
            BYE,
        ]),
    );
    assert_eq!(run.fake.delivered[0].1, b"12345678\r\n");
}

#[test]
fn over_long_text_line_is_refused_after_the_terminator() {
    let mut input = PREFIX.to_vec();
    input.extend_from_slice(format!("short\r\n{}\r\n", "a".repeat(998)).as_bytes());
    input.extend_from_slice(format!("{}\r\nafter\r\n.\r\n", "b".repeat(999)).as_bytes());
    input.extend_from_slice(b"NOOP\r\n");
    input.extend_from_slice(b"MAIL FROM:<a@localhost>\r\nRCPT TO:<gb@localhost>\r\nDATA\r\n");
    input.extend_from_slice(format!("{}\r\n.\r\nQUIT\r\n", "c".repeat(998)).as_bytes());
    let run = check(
        &input,
        &wire(&[
            GREETING,
            "250 localhost Hello c",
            "250 2.1.0 Sender <a@localhost> OK",
            "250 2.1.5 Recipient <gb@localhost> OK",
            GO_AHEAD,
            "500 5.5.6 Message line too long",
            "250 2.0.0 OK",
            "250 2.1.0 Sender <a@localhost> OK",
            "250 2.1.5 Recipient <gb@localhost> OK",
            GO_AHEAD,
            ACCEPTED,
            BYE,
        ]),
    );
    assert_eq!(run.fake.delivered.len(), 1, "only the second message");
    assert_eq!(run.fake.delivered[0].1.len(), 1000);
}

#[test]
fn delivery_error_gives_451_and_ends_the_transaction() {
    let mut fake = Fake::new();
    fake.fail = Some("disk full".into());
    let mut input = PREFIX.to_vec();
    input.extend_from_slice(b"hi\r\n.\r\nDATA\r\nRCPT TO:<gb@localhost>\r\nQUIT\r\n");
    let run = check_with(
        &config(),
        &fake,
        &input,
        &wire(&[
            GREETING,
            "250 localhost Hello c",
            "250 2.1.0 Sender <a@localhost> OK",
            "250 2.1.5 Recipient <gb@localhost> OK",
            GO_AHEAD,
            "451 4.3.0 Message not accepted: disk full",
            "503 5.5.1 Need MAIL before DATA",
            "503 5.5.1 Need MAIL before RCPT",
            BYE,
        ]),
    );
    assert!(
        !run.events()
            .iter()
            .any(|e| matches!(e, SmtpEvent::MessageDelivered { .. }))
    );
}

#[test]
fn delivery_error_text_cannot_inject_a_reply() {
    let mut fake = Fake::new();
    fake.fail = Some("x\r\n250 ok".into());
    let mut input = PREFIX.to_vec();
    input.extend_from_slice(b"hi\r\n.\r\n");
    let run = run_with(&config(), &input, 512, &fake);
    assert!(
        run.text()
            .ends_with("451 4.3.0 Message not accepted: x??250 ok\r\n")
    );
}

#[test]
fn commands_may_end_with_bare_lf_but_content_needs_crlf() {
    let run = check(
        b"HELO c\nMAIL FROM:<a@localhost>\nRCPT TO:<gb@localhost>\nDATA\n\
          line one\n.\nstill content\r\n.\r\nquit\n",
        &one_message_transcript(),
    );
    assert_eq!(run.fake.delivered[0].1, b"line one\n.\nstill content\r\n");
}

#[test]
fn helo_again_resets_the_transaction() {
    let mut server = SmtpServer::new(config());
    server.receive(b"HELO a\r\nMAIL FROM:<x@localhost>\r\n");
    while server.poll_output().is_some() {}
    assert_eq!(server.state(), SmtpState::Mail);
    assert_eq!(
        server.envelope().map(|e| e.reverse_path.as_str()),
        Some("x@localhost")
    );
    server.receive(b"EHLO b\r\n");
    let outputs: Vec<SmtpOutput> = std::iter::from_fn(|| server.poll_output()).collect();
    assert!(
        outputs.contains(&SmtpOutput::Event(SmtpEvent::StateChanged {
            from: SmtpState::Mail,
            to: SmtpState::Ready
        }))
    );
    assert_eq!(server.envelope(), None);
    server.receive(b"MAIL FROM:<y@localhost>\r\n");
    while server.poll_output().is_some() {}
    assert_eq!(server.envelope().and_then(|e| e.helo.as_deref()), Some("b"));
}

#[test]
fn local_domains_are_case_insensitive() {
    let run = check(
        b"HELO c\r\nMAIL FROM:<a@x.org>\r\n\
          RCPT TO:<gb@IIT.EDU>\r\n\
          RCPT TO:<alice@LocalHost>\r\n\
          RCPT TO:<postmaster@[127.0.0.1]>\r\n\
          RCPT TO:<gb@iit.edu.evil.org>\r\n\
          QUIT\r\n",
        &wire(&[
            GREETING,
            "250 localhost Hello c",
            "250 2.1.0 Sender <a@x.org> OK",
            "250 2.1.5 Recipient <gb@IIT.EDU> OK",
            "250 2.1.5 Recipient <alice@LocalHost> OK",
            "250 2.1.5 Recipient <postmaster@[127.0.0.1]> OK",
            "550 5.7.1 Relaying denied: <gb@iit.edu.evil.org> is not a local address",
            BYE,
        ]),
    );
    assert!(run.fake.delivered.is_empty());
}

#[test]
fn at_most_100_recipients() {
    // 101 distinct local addresses: the 101st gets 452.
    let domains: Vec<String> = (0..101).map(|i| format!("d{i}.example")).collect();
    let config = SmtpConfig {
        local_domains: domains.clone(),
        ..config()
    };
    let mut input = b"HELO c\r\nMAIL FROM:<a@localhost>\r\n".to_vec();
    let mut expected = vec![
        GREETING.to_string(),
        "250 localhost Hello c".to_string(),
        "250 2.1.0 Sender <a@localhost> OK".to_string(),
    ];
    for d in &domains {
        input.extend_from_slice(format!("RCPT TO:<gb@{d}>\r\n").as_bytes());
        expected.push(format!("250 2.1.5 Recipient <gb@{d}> OK"));
    }
    expected.pop();
    expected.push("452 4.5.3 Too many recipients".to_string());
    input.extend_from_slice(b"QUIT\r\n");
    expected.push(BYE.to_string());
    let refs: Vec<&str> = expected.iter().map(String::as_str).collect();
    check_with(&config, &Fake::new(), &input, &wire(&refs));
}

#[test]
fn a_repeated_recipient_is_kept_once() {
    let mut input = b"HELO c\r\nMAIL FROM:<a@localhost>\r\n".to_vec();
    for _ in 0..101 {
        input.extend_from_slice(b"RCPT TO:<gb@localhost>\r\n");
    }
    input.extend_from_slice(b"DATA\r\nx\r\n.\r\nQUIT\r\n");
    let run = run_with(&config(), &input, 512, &Fake::new());
    assert_eq!(
        run.fake.delivered[0].0.recipients,
        vec![recipient("gb@localhost", "gb")]
    );
    assert!(!run.text().contains("452"));
}

#[test]
fn eof_abandons_the_transaction() {
    let mut server = SmtpServer::new(config());
    server.receive(
        b"HELO c\r\nMAIL FROM:<a@localhost>\r\nRCPT TO:<gb@localhost>\r\nDATA\r\nhalf a mess",
    );
    let mut last = None;
    while let Some(out) = server.poll_output() {
        if let SmtpOutput::Request(_) = out {
            server.answer_recipient(true);
        }
        last = Some(out);
    }
    assert!(last.is_some());
    assert_eq!(server.state(), SmtpState::Data);
    server.receive_eof();
    let outputs: Vec<SmtpOutput> = std::iter::from_fn(|| server.poll_output()).collect();
    assert_eq!(
        outputs,
        vec![SmtpOutput::Event(SmtpEvent::StateChanged {
            from: SmtpState::Data,
            to: SmtpState::Closed
        })]
    );
    assert!(server.is_closed());
    assert_eq!(server.envelope(), None);
    server.receive(b"NOOP\r\n");
    server.receive_eof();
    assert_eq!(server.poll_output(), None);
}

#[test]
fn eof_while_a_request_is_pending_drops_it() {
    let mut server = SmtpServer::new(config());
    server.receive(b"HELO c\r\nMAIL FROM:<a@localhost>\r\nRCPT TO:<gb@localhost>\r\n");
    // Take outputs up to, but not including, the request.
    while let Some(out) = server.poll_output() {
        if let SmtpOutput::Event(SmtpEvent::CommandReceived { line }) = &out
            && line.starts_with("RCPT")
        {
            break;
        }
    }
    server.receive_eof();
    let outputs: Vec<SmtpOutput> = std::iter::from_fn(|| server.poll_output()).collect();
    assert_eq!(
        outputs,
        vec![SmtpOutput::Event(SmtpEvent::StateChanged {
            from: SmtpState::Mail,
            to: SmtpState::Closed
        })]
    );
    server.answer_recipient(true);
    assert_eq!(server.poll_output(), None);
}

#[test]
fn nothing_is_read_after_quit() {
    let run = check(b"QUIT\r\nNOOP\r\nQUIT\r\n", &wire(&[GREETING, BYE]));
    assert_eq!(run.outputs.last(), Some(&SmtpOutput::Close));
}

#[test]
fn partial_command_waits_for_its_line_end() {
    let mut server = SmtpServer::new(config());
    while server.poll_output().is_some() {}
    server.receive(b"NO");
    assert_eq!(server.poll_output(), None);
    server.receive(b"OP\r");
    assert_eq!(server.poll_output(), None);
    server.receive(b"\n");
    assert_eq!(
        server.poll_output(),
        Some(SmtpOutput::Event(SmtpEvent::CommandReceived {
            line: "NOOP".into()
        }))
    );
}

#[test]
fn custom_hostname_and_size() {
    let config = SmtpConfig {
        hostname: "mx.iitkgp.edu".into(),
        local_domains: vec![],
        max_message_size: 1234,
    };
    check_with(
        &config,
        &Fake::new(),
        b"EHLO c\r\nQUIT\r\n",
        &wire(&[
            "220 mx.iitkgp.edu ESMTP mailwire ready",
            "250-mx.iitkgp.edu Hello c",
            "250-PIPELINING",
            "250-SIZE 1234",
            "250-8BITMIME",
            "250-ENHANCEDSTATUSCODES",
            "250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
            "221 2.0.0 mx.iitkgp.edu closing connection",
        ]),
    );
}

#[test]
fn default_config() {
    let c = SmtpConfig::default();
    assert_eq!(c.hostname, "localhost");
    assert!(c.local_domains.is_empty());
    assert_eq!(c.max_message_size, 10 * 1024 * 1024);
}

#[test]
fn reply_texts_replace_only_the_free_text() {
    // The assignment's texts; the code, the enhanced status code (RFC 3463) and the domain
    // the grammar puts first (RFC 5321 sections 4.2 and 4.1.1.1) stay the machine's.
    let replies = SmtpReplies {
        greeting: Some("Service ready".into()),
        helo: Some("OK Hello {domain}".into()),
        mail: Some("<{address}>... Sender ok".into()),
        rcpt: Some("{address}... Recipient ok".into()),
        accepted: Some("OK Message accepted for delivery".into()),
        quit: Some("iitkgp.edu closing connection".into()),
    };
    assert_eq!(replies.check(), Ok(()));
    let config = SmtpConfig {
        hostname: "iitkgp.edu".into(),
        ..config()
    };
    let mut fake = Fake::new();
    let mut server = SmtpServer::with_replies(config, replies);
    let mut run = Run {
        written: Vec::new(),
        outputs: Vec::new(),
        fake: Fake::new(),
        closed: false,
        max_held: 0,
    };
    server.receive(
        b"HELO iit.edu\r\nMAIL FROM:<ag@iit.edu>\r\nRCPT TO:<gb@iit.edu>\r\nDATA\r\nHi\r\n.\r\n\
          EHLO iit.edu\r\nQUIT\r\n",
    );
    drain(&mut server, &mut fake, &mut run);
    assert_eq!(
        run.text(),
        wire(&[
            "220 iitkgp.edu Service ready",
            "250 iitkgp.edu OK Hello iit.edu",
            "250 2.1.0 <ag@iit.edu>... Sender ok",
            "250 2.1.5 gb@iit.edu... Recipient ok",
            GO_AHEAD,
            "250 2.0.0 OK Message accepted for delivery",
            "250-iitkgp.edu OK Hello iit.edu",
            "250-PIPELINING",
            "250-SIZE 10485760",
            "250-8BITMIME",
            "250-ENHANCEDSTATUSCODES",
            "250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
            "221 2.0.0 iitkgp.edu closing connection",
        ])
    );
}

#[test]
fn an_empty_greeting_text_leaves_the_domain_alone() {
    let replies = SmtpReplies {
        greeting: Some(String::new()),
        ..SmtpReplies::default()
    };
    let mut server = SmtpServer::with_replies(config(), replies);
    let Some(SmtpOutput::Write(bytes)) = server.poll_output() else {
        panic!("no greeting");
    };
    assert_eq!(bytes, b"220 localhost\r\n");
    let bad = SmtpReplies {
        mail: Some("{user}".into()),
        ..SmtpReplies::default()
    };
    assert!(bad.check().unwrap_err().to_string().contains("smtp.mail"));
}

// --- STARTTLS (RFC 3207) and AUTH (RFC 4954) ---

use crate::proto::SecurityEvent;
use crate::proto::sasl::{self, Mechanism, Security, TlsState};

/// Runs `pieces` (each pushed as one read) through a server with `security`; the fake
/// answers STARTTLS as a driver would, by "making the handshake" at once.
fn run_secure(pieces: &[&[u8]], security: Security) -> Run {
    let mut fake = Fake::new();
    let mut server = SmtpServer::new(config()).with_security(security);
    let mut run = Run {
        written: Vec::new(),
        outputs: Vec::new(),
        fake: Fake::new(),
        closed: false,
        max_held: 0,
    };
    drain(&mut server, &mut fake, &mut run);
    for piece in pieces {
        server.receive(piece);
        drain(&mut server, &mut fake, &mut run);
    }
    run.fake = fake;
    run
}

fn offered() -> Security {
    Security {
        tls: TlsState::Offered,
        ..Security::default()
    }
}

fn security_events(run: &Run) -> Vec<SecurityEvent> {
    run.events()
        .into_iter()
        .filter_map(|e| match e {
            SmtpEvent::Security(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn starttls_is_advertised_then_everything_is_forgotten() {
    let r = run_secure(
        &[
            b"EHLO a\r\n",
            b"STARTTLS\r\n",
            b"MAIL FROM:<x@iit.edu>\r\nEHLO b\r\nSTARTTLS\r\n",
        ],
        offered(),
    );
    let t = r.text();
    let (before, after) = t.split_once("220 2.0.0 Ready to start TLS\r\n").unwrap();
    assert!(before.contains("250-STARTTLS\r\n"), "{before}");
    // RFC 3207 section 4.2: the EHLO before TLS is forgotten, STARTTLS not offered again.
    assert_eq!(
        after,
        "503 5.5.1 Send HELO/EHLO first\r\n250-localhost Hello b\r\n250-PIPELINING\r\n\
         250-SIZE 10485760\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n\
         250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n503 5.5.1 TLS already active\r\n"
    );
    let r = run_secure(&[b"STARTTLS now\r\n", b"STARTTLS\r\n"], Security::default());
    assert!(r.text().ends_with(
        "501 5.5.4 Syntax: STARTTLS\r\n454 4.7.0 TLS not available: no certificate\r\n"
    ));
}

#[test]
fn plaintext_pipelined_after_starttls_is_discarded() {
    // CVE-2011-0411: commands sent in clear with STARTTLS must not be run inside TLS.
    let r = run_secure(
        &[
            b"EHLO a\r\n",
            b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@iit.edu>\r\n",
            b"EHLO a\r\nRCPT TO:<gb@iit.edu>\r\n",
        ],
        offered(),
    );
    let t = r.text();
    assert!(t.ends_with("503 5.5.1 Need MAIL before RCPT\r\n"), "{t}");
    assert!(!t.contains("evil"), "{t}");
    assert_eq!(
        security_events(&r),
        vec![
            SecurityEvent::TlsRequested { discarded: 32 },
            SecurityEvent::TlsStarted
        ]
    );
}

#[test]
fn auth_login_plain_and_the_rfc_4954_replies() {
    let plain = sasl::encode(b"\0alice\0wonderland");
    let r = run_secure(
        &[format!("EHLO a\r\nAUTH PLAIN {plain}\r\nAUTH PLAIN\r\n").as_bytes()],
        offered(),
    );
    let t = r.text();
    assert!(
        t.ends_with("235 2.7.0 Authentication successful\r\n503 5.5.1 Already authenticated\r\n"),
        "{t}"
    );
    assert!(security_events(&r).contains(&SecurityEvent::Authenticated {
        user: "alice".into(),
        mechanism: Mechanism::Plain
    }));
    let r = run_secure(
        &[
            b"EHLO a\r\nAUTH LOGIN\r\n",
            b"YWxpY2U=\r\n",
            b"d3Jvbmc=\r\n",
        ],
        offered(),
    );
    assert!(r.text().ends_with(
        "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.8 Authentication credentials invalid\r\n"
    ));
    let r = run_secure(
        &[
            b"AUTH PLAIN\r\nEHLO a\r\nAUTH X\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN %%\r\n\
            MAIL FROM:<a@iit.edu>\r\nAUTH PLAIN\r\n",
        ],
        offered(),
    );
    assert!(
        r.text()
            .starts_with("220 localhost ESMTP mailwire ready\r\n503 5.5.1 Send EHLO first\r\n"),
        "{}",
        r.text()
    );
    assert!(
        r.text().ends_with(
            "504 5.5.4 Unrecognized authentication type\r\n334 \r\n501 5.0.0 Authentication cancelled\r\n\
             501 5.5.2 Cannot decode response: not base64\r\n250 2.1.0 Sender <a@iit.edu> OK\r\n\
             503 5.5.1 AUTH not permitted during a mail transaction\r\n"
        ),
        "{}",
        r.text()
    );
}

#[test]
fn auth_refuses_clear_passwords_when_told_and_marks_the_envelope() {
    let security = Security {
        clear_passwords: false,
        ..offered()
    };
    let plain = sasl::encode(b"\0alice\0wonderland");
    let r = run_secure(
        &[format!("EHLO a\r\nAUTH PLAIN {plain}\r\n").as_bytes()],
        security.clone(),
    );
    let t = r.text();
    assert!(
        t.contains("250-STARTTLS\r\n250 AUTH CRAM-MD5 SCRAM-SHA-256\r\n"),
        "{t}"
    );
    assert!(
        t.ends_with("538 5.7.11 Encryption required for requested authentication mechanism\r\n")
    );
    let r = run_secure(
        &[
            b"STARTTLS\r\n",
            format!(
                "EHLO a\r\nAUTH PLAIN {plain}\r\nMAIL FROM:<a@iit.edu>\r\nRCPT TO:<gb@iit.edu>\r\n\
                 DATA\r\nhi\r\n.\r\n"
            )
            .as_bytes(),
        ],
        security,
    );
    assert!(
        r.text()
            .ends_with("250 2.0.0 Message accepted for delivery\r\n"),
        "{}",
        r.text()
    );
    let (envelope, _) = r.fake.delivered.first().unwrap();
    assert!(envelope.tls && envelope.authenticated && envelope.esmtp);
}

#[test]
fn auth_scram_sha_256_sends_the_server_proof_as_a_last_challenge() {
    use crate::proto::sasl::ScramKeys;
    let bare = "n=alice,r=cn0nce";
    let first = sasl::encode(format!("n,,{bare}").as_bytes());
    let start = format!("EHLO a\r\nAUTH SCRAM-SHA-256 {first}\r\n");
    let r = run_secure(&[start.as_bytes()], offered());
    let line = r.text().lines().last().unwrap().to_string();
    let server_first =
        String::from_utf8(sasl::decode(line.strip_prefix("334 ").unwrap()).unwrap()).unwrap();
    let nonce = server_first
        .split(',')
        .next()
        .unwrap()
        .strip_prefix("r=")
        .unwrap();
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let params = Security::default().params;
    let keys = ScramKeys::derive("wonderland", &params.salt, sasl::SCRAM_ITERATIONS);
    let signature = sasl::hmac_sha256(&keys.stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = keys
        .client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let client_final =
        sasl::encode(format!("{without_proof},p={}", sasl::encode(&proof)).as_bytes());
    let expected_v = sasl::encode(
        format!(
            "v={}",
            sasl::encode(&sasl::hmac_sha256(
                &keys.server_key,
                auth_message.as_bytes()
            ))
        )
        .as_bytes(),
    );
    let r = run_secure(
        &[
            start.as_bytes(),
            format!("{client_final}\r\n").as_bytes(),
            b"\r\n",
        ],
        offered(),
    );
    assert!(
        r.text().ends_with(&format!(
            "334 {expected_v}\r\n235 2.7.0 Authentication successful\r\n"
        )),
        "{}",
        r.text()
    );
}
