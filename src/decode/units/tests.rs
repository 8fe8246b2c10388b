//! The cutter on hand-built TCP conversations in which the capture missed segments: a gap
//! inside a multi-line reply must not shift the pairing of later commands and replies.

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;

use crate::capture::LinkType;
use crate::decode::{Analyzer, Unit};
use crate::proto::Direction;

/// A scripted connection on a raw-IP link: sequence numbers tracked, segments the capture
/// missed left out of the frames.
struct Talk {
    server_port: u16,
    client_seq: u32,
    server_seq: u32,
    frames: Vec<Vec<u8>>,
}

impl Talk {
    /// SYN, SYN-ACK.
    fn new(server_port: u16) -> Self {
        let mut t = Talk {
            server_port,
            client_seq: 1000,
            server_seq: 5000,
            frames: Vec::new(),
        };
        t.frame(true, true, b"");
        t.client_seq += 1;
        t.frame(false, true, b"");
        t.server_seq += 1;
        t
    }

    /// One captured segment (a SYN, or data with PSH); every one but the first SYN
    /// acknowledges what the sender has received.
    fn frame(&mut self, from_client: bool, syn: bool, payload: &[u8]) {
        let (sport, dport, seq, ack) = if from_client {
            (40000, self.server_port, self.client_seq, self.server_seq)
        } else {
            (self.server_port, 40000, self.server_seq, self.client_seq)
        };
        let lo = Ipv4Addr::LOCALHOST.octets();
        let b = PacketBuilder::ipv4(lo, lo, 64).tcp(sport, dport, seq, 65535);
        let b = if syn { b.syn() } else { b.psh() };
        let b = if syn && from_client { b } else { b.ack(ack) };
        let mut out = Vec::new();
        if b.write(&mut out, payload).is_ok() {
            self.frames.push(out);
        }
    }

    fn client(&mut self, payload: &[u8]) {
        self.frame(true, false, payload);
        self.client_seq += payload.len() as u32;
    }

    fn server(&mut self, payload: &[u8]) {
        self.frame(false, false, payload);
        self.server_seq += payload.len() as u32;
    }

    /// A server segment that was sent (the client acknowledges it) but not captured.
    fn server_lost(&mut self, payload: &[u8]) {
        self.server_seq += payload.len() as u32;
    }

    fn analyze(&self) -> Analyzer {
        let mut a = Analyzer::new();
        for (i, f) in self.frames.iter().enumerate() {
            a.push_frame(i as i64, LinkType::RAW, f, f.len() as u32);
        }
        a.finish();
        a
    }
}

/// `command -> reply` for every reply (command `-` when none), in cut order.
fn pairs(a: &Analyzer) -> Vec<String> {
    let units = a.units();
    units
        .iter()
        .filter(|u| u.direction == Direction::ServerToClient)
        .map(|u| {
            let cmd = u
                .reply_to
                .and_then(|i| units.get(i))
                .map_or("-", |c| c.text.as_str());
            format!("{cmd} -> {}", u.text)
        })
        .collect()
}

fn unit<'a>(a: &'a Analyzer, text: &str) -> Option<&'a Unit> {
    a.units().iter().find(|u| u.text == text)
}

fn says_incomplete(u: Option<&Unit>) -> bool {
    u.is_some_and(|u| u.notes.iter().any(|n| n.starts_with("incomplete")))
}

/// A POP3 session: RETR, whose reply `retr_reply` sends (with segments the capture
/// missed), then LIST, STAT and QUIT, captured whole.
fn pop3_retr(retr_reply: impl FnOnce(&mut Talk)) -> Analyzer {
    let mut t = Talk::new(110);
    t.server(b"+OK ready\r\n");
    t.client(b"RETR 1\r\n");
    retr_reply(&mut t);
    t.client(b"LIST\r\n");
    t.server(b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n");
    t.client(b"STAT\r\n");
    t.server(b"+OK 2 320\r\n");
    t.client(b"QUIT\r\n");
    t.server(b"+OK bye\r\n");
    t.analyze()
}

/// The pairs of [`pop3_retr`], with the RETR reply's pair as given (none: unanswered).
fn pop3_retr_pairs(retr: Option<&str>) -> Vec<String> {
    let later = [
        "LIST -> +OK 2 messages",
        "STAT -> +OK 2 320",
        "QUIT -> +OK bye",
    ];
    std::iter::once("- -> +OK ready")
        .chain(retr)
        .chain(later)
        .map(String::from)
        .collect()
}

#[test]
fn pop3_gap_inside_a_multi_line_reply_keeps_later_pairs() {
    let a = pop3_retr(|t| {
        t.server(b"+OK 120 octets\r\nSubject: one\r\n\r\n.");
        t.server_lost(b"..a line that starts with a dot\r\n+OK in the body\r\nmore");
        t.server(b" of the body\r\n.\r\n");
    });
    assert_eq!(pairs(&a), pop3_retr_pairs(Some("RETR 1 -> +OK 120 octets")));
    let retr = unit(&a, "+OK 120 octets");
    assert!(says_incomplete(retr), "{retr:?}");
    assert!(retr.is_some_and(|u| u.multi_line));
}

#[test]
fn pop3_gap_that_ate_the_first_line_of_a_multi_line_reply() {
    let a = pop3_retr(|t| {
        t.server_lost(b"+OK 120 octets\r\nSubject: one\r\n");
        t.server(b"\r\nthe body\r\n.\r\n");
    });
    assert_eq!(pairs(&a), pop3_retr_pairs(Some("RETR 1 -> ")));
    let retr = a.units().iter().find(|u| u.text.is_empty());
    assert!(says_incomplete(retr), "{retr:?}");
    assert_eq!(retr.map(|u| (u.multi_line, u.lines)), Some((true, 2)));
}

#[test]
fn pop3_gap_that_ate_a_whole_reply_leaves_its_command_unanswered() {
    let a = pop3_retr(|t| {
        t.server_lost(b"+OK 120 octets\r\nSubject: one\r\n\r\nthe body\r\n.\r\n");
    });
    assert_eq!(pairs(&a), pop3_retr_pairs(None));
}

#[test]
fn pop3_gap_inside_a_reply_to_pipelined_commands_keeps_the_order() {
    let mut t = Talk::new(110);
    t.server(b"+OK ready\r\n");
    t.client(b"LIST\r\nSTAT\r\n");
    t.server(b"+OK 2 messages\r\n1 120\r\n");
    t.server_lost(b"2 200\r\n");
    t.server(b".\r\n+OK 2 320\r\n");
    t.client(b"QUIT\r\n");
    t.server(b"+OK bye\r\n");
    let a = t.analyze();
    assert_eq!(
        pairs(&a),
        [
            "- -> +OK ready",
            "LIST -> +OK 2 messages",
            "STAT -> +OK 2 320",
            "QUIT -> +OK bye",
        ]
    );
    assert!(says_incomplete(unit(&a, "+OK 2 messages")));
}

/// An SMTP session in which the capture missed `lost`, the end of the EHLO reply
/// `ehlo_seen` + `lost` (`after` is what the capture has of the reply after the gap).
fn smtp_with_ehlo_gap(ehlo_seen: &[u8], lost: &[u8], after: &[u8]) -> Analyzer {
    let mut t = Talk::new(25);
    t.server(b"220 mail.example ESMTP\r\n");
    t.client(b"EHLO client.example\r\n");
    t.server(ehlo_seen);
    t.server_lost(lost);
    if !after.is_empty() {
        t.server(after);
    }
    t.client(b"MAIL FROM:<a@example.org>\r\n");
    t.server(b"250 2.1.0 Ok\r\n");
    t.client(b"RCPT TO:<b@example.org>\r\n");
    t.server(b"250 2.1.5 Ok\r\n");
    t.client(b"DATA\r\n");
    t.server(b"354 go ahead\r\n");
    t.client(b"Subject: hi\r\n\r\nhello\r\n.\r\n");
    t.server(b"250 2.0.0 queued\r\n");
    t.client(b"QUIT\r\n");
    t.server(b"221 2.0.0 bye\r\n");
    t.analyze()
}

const SMTP_PAIRS: [&str; 7] = [
    "- -> 220 mail.example ESMTP",
    "EHLO client.example -> 250-mail.example",
    "MAIL FROM:<a@example.org> -> 250 2.1.0 Ok",
    "RCPT TO:<b@example.org> -> 250 2.1.5 Ok",
    "DATA -> 354 go ahead",
    "Subject: hi -> 250 2.0.0 queued",
    "QUIT -> 221 2.0.0 bye",
];

#[test]
fn smtp_gap_that_ate_the_end_of_a_multi_line_reply() {
    let a = smtp_with_ehlo_gap(
        b"250-mail.example\r\n250-PIPELINING\r\n",
        b"250-SIZE 10240000\r\n250 HELP\r\n",
        b"",
    );
    assert_eq!(pairs(&a), SMTP_PAIRS);
    let ehlo = unit(&a, "250-mail.example");
    assert!(says_incomplete(ehlo), "{ehlo:?}");
    assert_eq!(ehlo.map(|u| (u.multi_line, u.lines)), Some((true, 2)));
}

#[test]
fn smtp_gap_inside_a_multi_line_reply() {
    let a = smtp_with_ehlo_gap(
        b"250-mail.example\r\n250-PIPE",
        b"LINING\r\n250-SIZE 10240000\r\n250-8BI",
        b"TMIME\r\n250 HELP\r\n",
    );
    assert_eq!(pairs(&a), SMTP_PAIRS);
    let ehlo = unit(&a, "250-mail.example");
    assert!(says_incomplete(ehlo), "{ehlo:?}");
}

/// STARTTLS with commands pipelined behind it in the same segment (the CVE-2011-0411
/// injection): the server discards them, so the cutter shows them as one unit that says
/// so, never as commands, and the client's TLS records after the 220 are records.
#[test]
fn plaintext_pipelined_behind_starttls_is_one_discarded_unit_then_tls() {
    let mut t = Talk::new(25);
    t.server(b"220 mail ESMTP\r\n");
    t.client(b"EHLO c\r\n");
    t.server(b"250-mail\r\n250 STARTTLS\r\n");
    t.client(b"STARTTLS\r\nRSET\r\nMAIL FROM:<mallory@evil.example>\r\n");
    t.server(b"220 go ahead\r\n");
    t.client(&[0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00]);
    t.server(&[0x16, 0x03, 0x03, 0x00, 0x02, 0x02, 0x00]);
    t.client(&[0x17, 0x03, 0x03, 0x00, 0x01, 0xaa]);
    let a = t.analyze();
    let client: Vec<(crate::decode::UnitKind, &str)> = a
        .units()
        .iter()
        .filter(|u| u.direction == Direction::ClientToServer)
        .map(|u| (u.kind, u.text.as_str()))
        .collect();
    use crate::decode::UnitKind::{Command, Tls, Undecoded};
    let kinds: Vec<_> = client.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [Command, Command, Undecoded, Tls, Tls], "{client:?}");
    let injected = a
        .units()
        .iter()
        .find(|u| u.kind == Undecoded)
        .unwrap_or_else(|| panic!("{client:?}"));
    assert!(injected.text.contains("\"RSET\""), "{}", injected.text);
    assert!(injected.text.contains("discards"), "{}", injected.text);
    assert!(
        injected.notes.iter().any(|n| n.contains("CVE-2011-0411")),
        "{:?}",
        injected.notes
    );
    // The injected bytes: RSET (6) and MAIL (34), after EHLO (8) and STARTTLS (10).
    assert_eq!(injected.stream, 18..58);
    assert!(
        pairs(&a).contains(&"STARTTLS -> 220 go ahead".to_string()),
        "{:?}",
        pairs(&a)
    );
    assert!(a.units().iter().all(|u| u.text != "RSET"));
}
