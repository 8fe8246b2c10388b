//! The POP3 client machine against a hostile server: any reply bytes, cut into chunks the
//! input chooses, while the client sends a session's commands (one whenever it waits for
//! nothing, or a pipelined one when a chunk's size byte has its top bit set). Invariants: no
//! panic; every reply's body stays within the reply limit and its stream range within the
//! bytes received; nothing after the one error; and bounded memory: the most bytes alive
//! stay within a small multiple of the limits and the chunk size, however long the input.
//!
//! Input: `[flags][n][n chunk sizes][server bytes]` (see `support.rs`); flag bit 0: the
//! server closes at the end (EOF); bit 2: the session is CAPA, STLS, CAPA, AUTH PLAIN (with
//! and without an initial response), USER, STAT, QUIT instead; a challenge is answered (or,
//! with bit 4, cancelled) at the next chunk, and after an accepted STLS the handshake is
//! done at the next chunk (never, with bit 3). Invariant for STLS: no reply comes out while
//! the handshake is due (bytes sent in clear after the `+OK` are thrown away, RFC 2595 §4).
#![no_main]

#[path = "support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;
use mailwire::proto::Machine;
use mailwire::proto::pop3::Command;
use mailwire::proto::pop3::client::{Pop3Client, Pop3ClientOutput};
use support::{Counting, Script, peak, reset_peak};

#[global_allocator]
static ALLOC: Counting = Counting;

const MAX_LINE: usize = 200;
const MAX_REPLY: usize = 1000;

fn commands() -> [Command; 12] {
    [
        Command::Capa,
        Command::User("u".into()),
        Command::Pass("p".into()),
        Command::Stat,
        Command::List(None),
        Command::Uidl(Some(1)),
        Command::Retr(1),
        Command::Top { msg: 1, lines: 0 },
        Command::Dele(1),
        Command::Rset,
        Command::Noop,
        Command::Quit,
    ]
}

fn tls_commands() -> [Command; 8] {
    [
        Command::Capa,
        Command::Stls,
        Command::Capa,
        Command::Auth {
            mechanism: "PLAIN".into(),
            initial: None,
        },
        Command::Auth {
            mechanism: "PLAIN".into(),
            initial: Some("AHUAcA==".into()),
        },
        Command::User("u".into()),
        Command::Stat,
        Command::Quit,
    ]
}

struct State {
    fed: u64,
    failed: bool,
    last_end: u64,
    /// STLS/STARTTLS was accepted and the handshake is not done: no reply may come out.
    tls_pending: bool,
}

fn drain(client: &mut Pop3Client, st: &mut State) {
    while let Some(out) = client.poll_output() {
        match out {
            Pop3ClientOutput::Write(bytes) => assert!(bytes.ends_with(b"\r\n")),
            Pop3ClientOutput::Event(event) => {
                assert!(!st.failed, "an event after the session's error: {event:?}");
                match event {
                    Ok(reply) => {
                        assert!(!st.tls_pending, "a reply read while the TLS handshake was due: {reply:?}");
                        let body = reply.body.as_ref().map_or(0, Vec::len);
                        assert!(body <= 2 * (MAX_REPLY + MAX_LINE), "a {body}-octet body");
                        assert!(reply.stream.start <= reply.stream.end);
                        assert!(reply.stream.end <= st.fed, "reply range {:?} past {}", reply.stream, st.fed);
                        assert!(reply.stream.start >= st.last_end, "replies overlap");
                        st.last_end = reply.stream.end;
                    }
                    Err(_) => st.failed = true,
                }
            }
            Pop3ClientOutput::Request(never) => match never {},
            Pop3ClientOutput::Close => {}
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
        let mut client = Pop3Client::with_limits(MAX_LINE, MAX_REPLY);
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
