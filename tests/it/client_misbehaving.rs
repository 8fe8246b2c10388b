//! The client drivers against scripted servers on 127.0.0.1: well-behaved sessions, and a
//! table of misbehaving servers, one row (and one test) for each failure the client must
//! report clearly instead of hanging.

// Test helpers: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use mailwire::client::{ClientError, ClientOptions, Pop3Connection, SmtpConnection, Transcript};
use mailwire::proto::pop3::Command;
use mailwire::proto::pop3::client::Pop3ClientError;
use mailwire::proto::smtp::client::{ClientCommand, ReplyTo, SmtpClientError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Every test finishes within this time, whatever the client does.
const TEST_LIMIT: Duration = Duration::from_secs(20);

/// What the scripted server does once its steps are done.
#[derive(Clone, Copy)]
enum Then {
    Close,
    Hang,
}

/// A one-connection server: sends `greeting`, then for each step waits until the client's
/// bytes contain the step's marker (after the previous one) and sends the step's bytes.
/// Returns everything the client sent.
async fn scripted(
    greeting: &'static [u8],
    steps: Vec<(&'static str, Vec<u8>)>,
    then: Then,
) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.write_all(greeting).await.unwrap();
        let mut received = Vec::new();
        let mut seen = 0;
        for (marker, reply) in steps {
            loop {
                let found = received
                    .get(seen..)
                    .and_then(|rest: &[u8]| find(rest, marker.as_bytes()));
                if let Some(at) = found {
                    seen += at + marker.len();
                    break;
                }
                let mut buf = [0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return received;
                }
                received.extend_from_slice(&buf[..n]);
            }
            if sock.write_all(&reply).await.is_err() {
                return received;
            }
        }
        if let Then::Hang = then {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        received
    });
    (addr, task)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn options(read_timeout_ms: u64) -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_millis(read_timeout_ms),
        transcript: Transcript::none(),
    }
}

fn line(reply: &str) -> (&'static str, Vec<u8>) {
    ("\r\n", reply.as_bytes().to_vec())
}

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .expect("test took too long")
}

// ---- POP3 ----

#[tokio::test]
async fn pop3_good_session_and_transcript() {
    bounded(async {
        let (addr, server) = scripted(
            b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
            vec![
                line("+OK mrose's maildrop has 1 message (15 octets)\r\n"),
                line("+OK 15 octets\r\nSubject: x\r\n\r\n..dot\r\n.\r\n"),
                line("-ERR [IN-USE] nope\r\n"),
                line("+OK bye\r\n"),
            ],
            Then::Close,
        )
        .await;
        let (tx, rx) = crossbeam_channel::unbounded();
        let opts = ClientOptions {
            transcript: Transcript::channel(tx),
            ..options(2000)
        };
        let mut c = Pop3Connection::connect(&addr.to_string(), &opts)
            .await
            .unwrap();
        assert_eq!(
            c.apop_timestamp(),
            Some("<1896.697170952@dbc.mtview.ca.us>")
        );
        let r = c.apop("mrose", "tanstaaf").await.unwrap();
        assert!(r.positive);
        let r = c.command(Command::Retr(1)).await.unwrap();
        assert_eq!(r.body.as_deref(), Some(&b"Subject: x\r\n\r\n.dot\r\n"[..]));
        let r = c.command(Command::Stat).await.unwrap();
        assert_eq!(r.resp_code.as_deref(), Some("IN-USE"));
        assert!(c.quit().await.unwrap().positive);
        let sent = server.await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&sent),
            "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nRETR 1\r\nSTAT\r\nQUIT\r\n"
        );
        let lines: Vec<String> = rx.try_iter().map(|e| e.to_string()).collect();
        assert_eq!(lines[0], format!("-- connected to {addr}"));
        assert_eq!(
            lines[1..6],
            [
                "S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>",
                "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb",
                "S: +OK mrose's maildrop has 1 message (15 octets)",
                "C: RETR 1",
                "S: +OK 15 octets",
            ]
        );
        assert!(lines.contains(&"S: ..dot".to_string()), "{lines:?}");
    })
    .await;
}

#[tokio::test]
async fn connection_refused_names_the_address() {
    bounded(async {
        let (_refusing, addr) = common::refusing_address();
        let err = Pop3Connection::connect(&addr.to_string(), &options(500))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("Cannot connect to {addr}: ")),
            "{err}"
        );
        let err = SmtpConnection::connect("no-port-here", &options(500))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Resolve { .. }), "{err}");
    })
    .await;
}

// ---- SMTP ----

#[tokio::test]
async fn smtp_seed_session_with_helo_fallback_and_dot_stuffing() {
    bounded(async {
        let (addr, server) = scripted(
            b"220 iitkgp.edu Service ready\r\n",
            vec![
                line("500 5.5.2 Command unrecognized\r\n"),
                line("250 OK Hello iit.edu\r\n"),
                line("250 <ag@iit.edu>... Sender ok\r\n"),
                line("250 root... Recipient ok\r\n"),
                line("250-second\r\n250 Recipient ok\r\n"),
                line("354 End data with <CR><LF>.<CR><LF>\r\n"),
                (
                    "\r\n.\r\n",
                    b"250 OK Message accepted for delivery\r\n".to_vec(),
                ),
                line("221 iitkgp.edu closing connection\r\n"),
            ],
            Then::Close,
        )
        .await;
        let mut c = SmtpConnection::connect(&addr.to_string(), &options(2000))
            .await
            .unwrap();
        assert_eq!(c.greeting().code(), 220);
        let r = c.hello("iit.edu").await.unwrap();
        assert_eq!(
            r.reply_to,
            ReplyTo::Command(ClientCommand::Helo("iit.edu".into()))
        );
        assert_eq!(r.code(), 250);
        for cmd in [
            ClientCommand::MailFrom("ag@iit.edu".into()),
            ClientCommand::RcptTo("gb@iit.edu".into()),
            ClientCommand::RcptTo("c@iit.edu".into()),
        ] {
            assert!(c.command(cmd).await.unwrap().is_positive());
        }
        assert_eq!(c.command(ClientCommand::Data).await.unwrap().code(), 354);
        let r = c
            .send_content(b"Subject: hi\n\n.starts with a dot\n.\nend")
            .await
            .unwrap();
        assert_eq!(r.reply_to, ReplyTo::MessageContent);
        assert_eq!(c.quit().await.unwrap().code(), 221);
        let sent = server.await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&sent),
            "EHLO iit.edu\r\nHELO iit.edu\r\nMAIL FROM:<ag@iit.edu>\r\nRCPT TO:<gb@iit.edu>\r\n\
             RCPT TO:<c@iit.edu>\r\nDATA\r\n\
             Subject: hi\r\n\r\n..starts with a dot\r\n..\r\nend\r\n.\r\nQUIT\r\n"
        );
    })
    .await;
}

/// A server that greets, then sends `filler` bytes without ever a line end, for at most
/// 15 s or until the client goes.
async fn endless_line(greeting: &'static [u8], filler: u8) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let _ = sock.write_all(greeting).await;
        let chunk = vec![filler; 64 * 1024];
        let start = tokio::time::Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if sock.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    addr
}

// ---- Misbehaving servers: one row each ----

mod table;

use table::{Client, Row, Server, misbehaving_servers, script};

misbehaving_servers! {
    // The server side of zeek's pop3/bad-list-retr-crafted.pcap. The connection is unusable
    // afterwards, and says so at once.
    pop3_zeek_crafted_garbage_instead_of_list_reply => Row {
        server: script(
            b"+OK example.com POP3-Server\r\n",
            vec![line(
                "GARBAGE (and LIST response missing .)\r\n+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n",
            )],
            Then::Hang,
        ),
        read_timeout_ms: 2000,
        client: Client::Pop3(Command::List(None)),
        report: |err, _| {
            matches!(err, ClientError::Pop3(Pop3ClientError::NotAStatusLine { .. }))
        },
        then: Some((Command::Stat, |err, _| {
            err.to_string() == "Cannot send STAT: the session has already ended."
        })),
    },
    pop3_list_without_dot_then_eof => Row {
        server: script(
            b"+OK hi\r\n",
            vec![line("+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n")],
            Then::Close,
        ),
        read_timeout_ms: 2000,
        client: Client::Pop3(Command::List(None)),
        report: |err, _| {
            err.to_string()
                == "The server closed the connection in the middle of the reply to LIST, after 2 \
                    lines of the multi-line reply and before its final \".\" line."
        },
        then: None,
    },
    pop3_list_without_dot_then_silence_times_out => Row {
        server: script(
            b"+OK hi\r\n",
            vec![line("+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n")],
            Then::Hang,
        ),
        read_timeout_ms: 300,
        client: Client::Pop3(Command::List(None)),
        // Diagnosed, not only timed out: what arrived, and the rule the server broke.
        report: |err, addr| {
            err.to_string()
                == format!(
                    "The server at {addr} stopped in the middle of the reply to LIST: it sent \
                     \"+OK 2 messages (320 octets)\" and 2 lines, but no \".\" line (RFC 1939 \
                     section 3: a multi-line reply ends with a line holding only \".\"), then \
                     nothing for 0.3 s."
                )
        },
        then: Some((Command::Noop, |err, _| matches!(err, ClientError::Closed { .. }))),
    },
    // Refused once it is over the limit, whether or not its end has arrived.
    pop3_over_long_line => Row {
        server: script(
            b"+OK hi\r\n",
            vec![("\r\n", {
                let mut reply = b"+OK follows\r\n".to_vec();
                reply.extend(vec![b'x'; 100 * 1024]);
                reply.extend_from_slice(b"\r\n.\r\n");
                reply
            })],
            Then::Hang,
        ),
        read_timeout_ms: 2000,
        client: Client::Pop3(Command::Retr(1)),
        report: |err, _| {
            let text = err.to_string();
            matches!(
                err,
                ClientError::Pop3(Pop3ClientError::LineTooLong { len, max: 65536, .. })
                    if (65537..=102_400).contains(len)
            ) && text.starts_with("The server sent a line of ")
                && text.ends_with(
                    " octets or more while we waited for the reply to RETR 1; lines longer \
                     than 65536 octets are refused.",
                )
        },
        then: None,
    },
    pop3_garbage_greeting => Row {
        server: script(b"HTTP/1.1 400 Bad Request\r\n", vec![], Then::Hang),
        read_timeout_ms: 2000,
        client: Client::Pop3Greeting,
        report: |err, _| {
            err.to_string().starts_with(
                "The server sent \"HTTP/1.1 400 Bad Request\" while we waited for the greeting",
            )
        },
        then: None,
    },
    pop3_eof_mid_line => Row {
        server: script(b"+OK hi\r\n", vec![line("+OK 2")], Then::Close),
        read_timeout_ms: 2000,
        client: Client::Pop3(Command::Stat),
        report: |err, _| {
            err.to_string()
                == "The server closed the connection while we waited for the reply to STAT; it \
                    had sent \"+OK 2\" without a line end."
        },
        then: None,
    },
    pop3_silent_greeting => Row {
        server: script(b"", vec![], Then::Hang),
        read_timeout_ms: 200,
        client: Client::Pop3Greeting,
        report: |err, _| {
            matches!(err, ClientError::ReadTimeout { .. })
                && err.to_string().ends_with("while we waited for the greeting.")
        },
        then: None,
    },
    // The read timeout is long: the error must come from the line limit.
    pop3_a_line_that_never_ends_is_refused_without_waiting_for_its_end => Row {
        server: Server::Endless { greeting: b"+OK hi\r\n+OK ", filler: b'9' },
        read_timeout_ms: 10_000,
        client: Client::Pop3(Command::Stat),
        report: |err, _| {
            matches!(
                err,
                ClientError::Pop3(Pop3ClientError::LineTooLong { len, max, .. }) if len > max
            )
        },
        then: None,
    },
    pop3_greeting_without_line_end => Row {
        server: script(b"+OK POP3 ready", vec![], Then::Hang),
        read_timeout_ms: 300,
        client: Client::Pop3Greeting,
        report: |err, _| {
            err.to_string().ends_with(
                "it sent \"+OK POP3 ready\" without a line end (RFC 1939 section 3: every line \
                 ends with CRLF), then nothing for 0.3 s.",
            )
        },
        then: None,
    },
    smtp_pop3_greeting => Row {
        server: script(b"+OK POP3 ready\r\n", vec![], Then::Hang),
        read_timeout_ms: 2000,
        client: Client::SmtpGreeting,
        report: |err, _| {
            matches!(err, ClientError::Smtp(SmtpClientError::NotAReplyLine { .. }))
        },
        then: None,
    },
    smtp_code_change_mid_reply => Row {
        server: script(b"220 hi\r\n", vec![line("250-a\r\n220 b\r\n")], Then::Hang),
        read_timeout_ms: 2000,
        client: Client::SmtpHello,
        report: |err, _| err.to_string().contains("began with code 250"),
        then: None,
    },
    smtp_eof_mid_reply => Row {
        server: script(b"220 hi\r\n", vec![line("250-a\r\n250-b\r\n")], Then::Close),
        read_timeout_ms: 2000,
        client: Client::SmtpHello,
        report: |err, _| {
            matches!(
                err,
                ClientError::Smtp(SmtpClientError::ClosedMidReply { lines: 2, .. })
            )
        },
        then: None,
    },
    smtp_silence_mid_reply => Row {
        server: script(b"220 hi\r\n", vec![line("250-a\r\n")], Then::Hang),
        read_timeout_ms: 300,
        client: Client::SmtpHello,
        report: |err, _| {
            err.to_string().ends_with(
                "stopped in the middle of the reply to EHLO me: it sent 1 line of a 250 reply, \
                 all \"250-\", but not its last line (RFC 5321 section 4.2.1: the last line has \
                 a space after the code), then nothing for 0.3 s.",
            )
        },
        then: None,
    },
    smtp_over_long_line => Row {
        server: script(
            b"220 hi\r\n",
            vec![("\r\n", {
                let mut reply = b"250-".to_vec();
                reply.extend(vec![b'y'; 70_000]);
                reply.extend_from_slice(b"\r\n250 ok\r\n");
                reply
            })],
            Then::Hang,
        ),
        read_timeout_ms: 2000,
        client: Client::SmtpHello,
        report: |err, _| {
            matches!(
                err,
                ClientError::Smtp(SmtpClientError::LineTooLong { len, max, .. })
                    if len > max && *len <= 70_004
            )
        },
        then: None,
    },
    smtp_content_after_refused_data => Row {
        server: script(b"220 hi\r\n", vec![line("503 5.5.1 need RCPT\r\n")], Then::Hang),
        read_timeout_ms: 2000,
        client: Client::SmtpContentAfterRefusedData,
        report: |err, _| {
            err.to_string()
                == "Cannot send the message content: the server has not answered DATA with 354."
        },
        then: None,
    },
    smtp_a_greeting_that_never_ends_is_refused_without_waiting_for_its_end => Row {
        server: Server::Endless { greeting: b"220-", filler: b'y' },
        read_timeout_ms: 10_000,
        client: Client::SmtpGreeting,
        report: |err, _| {
            matches!(
                err,
                ClientError::Smtp(SmtpClientError::LineTooLong { len, max, .. }) if len > max
            )
        },
        then: None,
    },
}
