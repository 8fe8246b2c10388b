//! The SMTP client machine against a hostile server: any reply bytes, cut into chunks the
//! input chooses, while the client sends a mail transaction's commands (one whenever it
//! waits for nothing, or a pipelined one when a chunk's size byte has its top bit set; the
//! content after a 354). Invariants: no panic; every reply's lines stay within the reply
//! limit and its stream range within the bytes received; nothing after the one error; and
//! bounded memory, as for `pop3_client`.
//!
//! Input: `[flags][n][n chunk sizes][server bytes]` (see `support.rs`); flag bit 0: the
//! server closes at the end (EOF); bit 1: fall back to HELO after a refused EHLO; bit 2: the
//! session is EHLO, STARTTLS, EHLO, AUTH PLAIN, AUTH LOGIN with an empty initial response,
//! MAIL, RCPT, QUIT instead; a challenge is answered (or, with bit 4, cancelled) at the next
//! chunk, and after a 220 to STARTTLS the handshake is done at the next chunk (never, with
//! bit 3). Invariant for STARTTLS (RFC 3207 section 4): no reply comes out while the
//! handshake is due (bytes sent in clear after the 220 must not pass for protected ones).
#![no_main]

#[path = "support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;
use mailwire::proto::Machine;
use mailwire::proto::smtp::client::{ClientCommand, SmtpClient, SmtpClientOutput};
use support::{Counting, Script, peak, reset_peak};

#[global_allocator]
static ALLOC: Counting = Counting;

const MAX_LINE: usize = 200;
const MAX_REPLY: usize = 1000;

fn commands() -> [ClientCommand; 8] {
    [
        ClientCommand::Ehlo("client.example".into()),
        ClientCommand::MailFrom("a@example.org".into()),
        ClientCommand::RcptTo("b@example.org".into()),
        ClientCommand::Data,
        ClientCommand::Rset,
        ClientCommand::Noop,
        ClientCommand::MailFrom(String::new()),
        ClientCommand::Quit,
    ]
}

fn tls_commands() -> [ClientCommand; 8] {
    [
        ClientCommand::Ehlo("client.example".into()),
        ClientCommand::StartTls,
        ClientCommand::Ehlo("client.example".into()),
        ClientCommand::Auth {
            mechanism: "PLAIN".into(),
            initial: None,
        },
        ClientCommand::Auth {
            mechanism: "LOGIN".into(),
            initial: Some("=".into()),
        },
        ClientCommand::MailFrom("a@example.org".into()),
        ClientCommand::RcptTo("b@example.org".into()),
        ClientCommand::Quit,
    ]
}

struct State {
    fed: u64,
    failed: bool,
    last_end: u64,
    /// STLS/STARTTLS was accepted and the handshake is not done: no reply may come out.
    tls_pending: bool,
}

fn drain(client: &mut SmtpClient, st: &mut State) {
    while let Some(out) = client.poll_output() {
        match out {
            SmtpClientOutput::Write(bytes) => assert!(bytes.ends_with(b"\r\n")),
            SmtpClientOutput::Event(event) => {
                assert!(!st.failed, "an event after the session's error: {event:?}");
                match event {
                    Ok(reply) => {
                        assert!(!st.tls_pending, "a reply read while the TLS handshake was due: {reply:?}");
                        let size: usize = reply.reply.lines.iter().map(|l| l.len() + 6).sum();
                        assert!(size <= 4 * (MAX_REPLY + MAX_LINE), "a {size}-octet reply");
                        assert!((100..1000).contains(&reply.code()), "code {}", reply.code());
                        assert!(reply.stream.start <= reply.stream.end);
                        assert!(reply.stream.end <= st.fed, "reply range {:?} past {}", reply.stream, st.fed);
                        assert!(reply.stream.start >= st.last_end, "replies overlap");
                        st.last_end = reply.stream.end;
                    }
                    Err(_) => st.failed = true,
                }
            }
            SmtpClientOutput::Request(never) => match never {},
            SmtpClientOutput::Close => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(mut script) = Script::parse(data) else {
        return;
    };
    let base = reset_peak();
    let mut biggest_chunk = 0;
    {
        let mut client = SmtpClient::with_limits(MAX_LINE, MAX_REPLY);
        client.set_helo_fallback(script.flags & 0x02 != 0);
        let mut st = State {
            fed: 0,
            failed: false,
            last_end: 0,
            tls_pending: false,
        };
        let list = if script.flags & 0x04 != 0 { tls_commands().to_vec() } else { commands().to_vec() };
        let mut next = list.into_iter().cycle().take(64);
        drain(&mut client, &mut st);
        while let Some((chunk, size)) = script.next_chunk() {
            if client.tls_requested() {
                // The handshake is done now, unless flag bit 3 keeps it under way.
                if script.flags & 0x08 == 0 {
                    client.tls_started();
                }
            } else if client.sasl_challenged() {
                let _ = if script.flags & 0x10 != 0 { client.cancel_sasl() } else { client.send_sasl_response(b"\0u\0p") };
            } else if client.content_expected() {
                let _ = client.send_content(b"Subject: x\r\n\r\n.dot\r\nbody\n");
            } else if !client.is_waiting() || size & 0x80 != 0 {
                if let Some(c) = next.next() {
                    let _ = client.send(c);
                }
            }
            biggest_chunk = biggest_chunk.max(chunk.len());
            st.tls_pending = client.tls_requested();
            client.receive(chunk);
            st.fed += chunk.len() as u64;
            drain(&mut client, &mut st);
        }
        if script.flags & 0x01 != 0 {
            st.tls_pending = client.tls_requested();
            client.receive_eof();
            drain(&mut client, &mut st);
        }
        let _ = client.give_up_reply();
    }
    let used = peak() - base;
    let bound = 16 * (MAX_LINE + MAX_REPLY + biggest_chunk) + 16 * 1024;
    assert!(used <= bound, "{used} bytes alive at most, bound {bound}");
});
