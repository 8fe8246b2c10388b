//! Writes a large pcap of POP3 and SMTP sessions on loopback Ethernet, for benches/decode.sh:
//!
//!     cargo bench --bench decode_gen -- OUT.pcap [PACKETS]
//!
//! PACKETS (default 1,000,000) is a minimum; whole sessions are written. Each session has a
//! handshake, the commands and replies of a real session (POP3: USER, PASS, STAT, LIST,
//! UIDL, RETR, DELE, QUIT; SMTP: EHLO, pipelined MAIL/RCPT/DATA, a message, QUIT), messages
//! of 1-12 KiB in segments of at most 1448 bytes, pure ACKs, some commands split over two
//! segments, and a FIN exchange. Deterministic: the same arguments give the same file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../tests/it/decode_support.rs"]
mod decode_support;

use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};

use decode_support::{Conversation, write_pcap_header, write_pcap_record};
use mailwire::capture::LinkType;

const MSS: usize = 1448;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A message of about `size` bytes: headers, then 76-character lines, some starting with
/// "." (stuffed on the wire).
fn message(rng: &mut Rng, size: usize, n: u64) -> Vec<u8> {
    let mut m = format!(
        "From: alice@localhost\r\nTo: bob@localhost\r\nSubject: message {n}\r\nMessage-ID: <{n}@localhost>\r\n\r\n"
    )
    .into_bytes();
    let mut line = 0u64;
    while m.len() < size {
        line += 1;
        if rng.below(40) == 0 {
            m.extend_from_slice(b"..a line that began with a dot\r\n");
        } else {
            let c = b'a' + (line % 26) as u8;
            m.extend(std::iter::repeat_n(c, 74));
            m.extend_from_slice(b"\r\n");
        }
    }
    m
}

/// Sends `bytes` from one side in MSS-sized segments, the peer acknowledging every second.
fn send(c: &mut Conversation, from_client: bool, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(MSS).enumerate() {
        if from_client {
            c.client(chunk);
        } else {
            c.server(chunk);
        }
        if i % 2 == 1 {
            ack(c, !from_client);
        }
    }
}

fn ack(c: &mut Conversation, from_client: bool) {
    let (seq, ack) = if from_client {
        (c.client_seq, c.server_seq)
    } else {
        (c.server_seq, c.client_seq)
    };
    c.raw(from_client, seq, ack, decode_support::ACK, b"");
}

fn pop3_session(c: &mut Conversation, rng: &mut Rng, n: u64) {
    let size = 1024 + rng.below(11 * 1024) as usize;
    let msg = message(rng, size, n);
    let octets = msg.len();
    send(
        c,
        false,
        format!("+OK POP3 server ready <{n}.1@localhost>\r\n").as_bytes(),
    );
    // Some clients split a command over two segments.
    if rng.below(4) == 0 {
        send(c, true, b"US");
        send(c, true, b"ER bob\r\n");
    } else {
        send(c, true, b"USER bob\r\n");
    }
    send(c, false, b"+OK\r\n");
    send(c, true, b"PASS builder\r\n");
    send(c, false, b"+OK bob's maildrop has 1 message\r\n");
    send(c, true, b"STAT\r\n");
    send(c, false, format!("+OK 1 {octets}\r\n").as_bytes());
    send(c, true, b"LIST\r\n");
    send(
        c,
        false,
        format!("+OK 1 messages\r\n1 {octets}\r\n.\r\n").as_bytes(),
    );
    send(c, true, b"UIDL\r\n");
    send(c, false, format!("+OK\r\n1 uid{n}\r\n.\r\n").as_bytes());
    send(c, true, b"RETR 1\r\n");
    let mut reply = format!("+OK {octets} octets\r\n").into_bytes();
    reply.extend_from_slice(&msg);
    reply.extend_from_slice(b".\r\n");
    send(c, false, &reply);
    ack(c, true);
    send(c, true, b"DELE 1\r\nQUIT\r\n");
    send(c, false, b"+OK message 1 deleted\r\n+OK bye\r\n");
}

fn smtp_session(c: &mut Conversation, rng: &mut Rng, n: u64) {
    let size = 1024 + rng.below(11 * 1024) as usize;
    let msg = message(rng, size, n);
    send(c, false, b"220 localhost ESMTP mailwire\r\n");
    send(c, true, b"EHLO client.localhost\r\n");
    send(
        c,
        false,
        b"250-localhost\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250 8BITMIME\r\n",
    );
    send(
        c,
        true,
        b"MAIL FROM:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n",
    );
    send(
        c,
        false,
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
    );
    let mut content = msg;
    content.extend_from_slice(b".\r\n");
    send(c, true, &content);
    ack(c, false);
    send(
        c,
        false,
        format!("250 2.0.0 Ok: queued as {n:08X}\r\n").as_bytes(),
    );
    send(c, true, b"QUIT\r\n");
    send(c, false, b"221 2.0.0 Bye\r\n");
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(out) = args.first() else {
        eprintln!("usage: cargo bench --bench decode_gen -- OUT.pcap [PACKETS]");
        std::process::exit(2);
    };
    let want: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let file = std::fs::File::create(out).expect("cannot create the output file");
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write_pcap_header(&mut w, LinkType::ETHERNET).unwrap();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let (mut packets, mut sessions, mut ts) = (0u64, 0u64, 1_700_000_000_000_000i64);
    while packets < want {
        // A new client address every 60,000 sessions, so 4-tuples never repeat.
        let host = Ipv4Addr::new(
            127,
            0,
            (sessions / 60_000 / 250) as u8,
            1 + (sessions / 60_000 % 250) as u8,
        );
        let client_port = 1024 + (sessions % 60_000) as u16;
        let pop3 = sessions % 2 == 0;
        let server = (
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            if pop3 { 110 } else { 25 },
        );
        let mut c =
            Conversation::between(LinkType::ETHERNET, (IpAddr::V4(host), client_port), server);
        c.ts = ts;
        c.client_seq = rng.below(u64::from(u32::MAX)) as u32;
        c.server_seq = rng.below(u64::from(u32::MAX)) as u32;
        c.handshake();
        if pop3 {
            pop3_session(&mut c, &mut rng, sessions);
        } else {
            smtp_session(&mut c, &mut rng, sessions);
        }
        c.close();
        for p in &c.frames {
            write_pcap_record(&mut w, p.ts_micros, &p.data, p.orig_len).unwrap();
        }
        packets += c.frames.len() as u64;
        ts = c.ts + 500;
        sessions += 1;
    }
    w.flush().unwrap();
    eprintln!(
        "wrote {packets} packets in {sessions} sessions (POP3 on port 110, SMTP on 25) to {out}"
    );
}
