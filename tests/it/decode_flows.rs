//! TCP flows and protocol units from hand-built conversations: relative sequence numbers,
//! reassembly (out of order, retransmitted, overlapping, gaps), and the cutting of POP3 and
//! SMTP streams into commands and replies — one command over three segments, three
//! pipelined commands in one segment, every chunk size from 1 to 512 giving the same units.
// Test code: a failed lookup or index is a test failure, which is what a panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::decode_support;

use decode_support::*;
use mailwire::capture::{CapturedPacket, LinkType};
use mailwire::decode::{Analyzer, Detected, ProtocolSource, SegmentNotes, Unit, UnitKind};
use mailwire::proto::{Direction, Protocol};

fn analyze(frames: &[CapturedPacket]) -> Analyzer {
    let mut a = Analyzer::new();
    for f in frames {
        a.push(f);
    }
    a.finish();
    a
}

/// `C: text` / `S: text` lines of connection `conn`, in cut order.
fn transcript(a: &Analyzer, conn: usize) -> Vec<String> {
    a.connections()[conn]
        .units
        .iter()
        .map(|&u| {
            let u = &a.units()[u];
            format!("{}: {}", u.direction.speaker(), u.text)
        })
        .collect()
}

fn unit<'a>(a: &'a Analyzer, text: &str) -> &'a Unit {
    a.units()
        .iter()
        .find(|u| u.text == text)
        .unwrap_or_else(|| panic!("no unit {text:?}"))
}

fn reply_to<'a>(a: &'a Analyzer, u: &Unit) -> Option<&'a str> {
    u.reply_to.map(|i| a.units()[i].text.as_str())
}

/// Stream bytes of a unit, from the frames that carried it.
fn unit_bytes(frames: &[CapturedPacket], u: &Unit) -> Vec<u8> {
    u.carriers
        .iter()
        .flat_map(|c| frames[c.frame].data[c.range.clone()].to_vec())
        .collect()
}

const POP3_CLIENT: &[u8] =
    b"USER mrose\r\nPASS tanstaaf\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n";
const POP3_SERVER: &[&[u8]] = &[
    b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
    b"+OK mrose is a real hoopy frood\r\n",
    b"+OK mrose's maildrop has 2 messages (320 octets)\r\n",
    b"+OK 2 320\r\n",
    b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n",
    b"+OK 120 octets\r\nSubject: hi\r\n\r\n..dot-stuffed line\r\n.\r\n",
    b"+OK message 1 deleted\r\n",
    b"+OK dewey POP3 server signing off (maildrop empty)\r\n",
];

/// The RFC 1939 session, each command and reply in its own segment.
fn rfc1939_session(link: LinkType) -> Conversation {
    let mut c = Conversation::new(link, 40000, 110);
    c.handshake();
    c.server(POP3_SERVER[0]);
    for (cmd, reply) in POP3_CLIENT
        .split_inclusive(|&b| b == b'\n')
        .zip(&POP3_SERVER[1..])
    {
        c.client(cmd);
        c.server(reply);
    }
    c.close();
    c
}

#[test]
fn rfc1939_session_transcript_and_pairs() {
    let c = rfc1939_session(LinkType::ETHERNET);
    let a = analyze(&c.frames);
    assert_eq!(a.connections().len(), 1);
    let conn = &a.connections()[0];
    assert_eq!(conn.protocol(), Detected::Mail(Protocol::Pop3));
    assert_eq!(conn.protocol_source(), ProtocolSource::Port);
    assert_eq!(conn.client.port(), 40000);
    assert!(conn.is_closed());
    assert_eq!(
        transcript(&a, 0),
        [
            "S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>",
            "C: USER mrose",
            "S: +OK mrose is a real hoopy frood",
            "C: PASS tanstaaf",
            "S: +OK mrose's maildrop has 2 messages (320 octets)",
            "C: STAT",
            "S: +OK 2 320",
            "C: LIST",
            "S: +OK 2 messages (320 octets)",
            "C: RETR 1",
            "S: +OK 120 octets",
            "C: DELE 1",
            "S: +OK message 1 deleted",
            "C: QUIT",
            "S: +OK dewey POP3 server signing off (maildrop empty)",
        ]
    );
    let greeting = &a.units()[conn.units[0]];
    assert_eq!(greeting.kind, UnitKind::Greeting);
    assert_eq!(greeting.reply_to, None);
    let list = unit(&a, "+OK 2 messages (320 octets)");
    assert!(list.multi_line);
    assert_eq!(list.lines, 3);
    assert_eq!(reply_to(&a, list), Some("LIST"));
    assert_eq!(unit_bytes(&c.frames, list), POP3_SERVER[4]);
    let retr = unit(&a, "+OK 120 octets");
    assert_eq!(retr.lines, 4);
    assert_eq!(unit_bytes(&c.frames, retr), POP3_SERVER[5]);
    assert_eq!(reply_to(&a, unit(&a, "+OK 2 320")), Some("STAT"));
    for u in a.units() {
        assert!(u.notes.is_empty(), "{u:?}");
        assert_eq!(u.carriers.len(), 1);
    }
    // Frames: greeting in frame index 3 (after the handshake), USER in 4.
    assert_eq!(unit(&a, "USER mrose").frames(), [4]);
}

#[test]
fn relative_sequence_numbers_as_wireshark() {
    let c = rfc1939_session(LinkType::ETHERNET);
    let a = analyze(&c.frames);
    let seg = |i: usize| a.frames()[i].segment.unwrap();
    assert_eq!((seg(0).rel_seq, seg(0).rel_ack), (0, 0)); // SYN
    assert_eq!((seg(1).rel_seq, seg(1).rel_ack), (0, 1)); // SYN-ACK
    assert_eq!((seg(2).rel_seq, seg(2).rel_ack), (1, 1)); // ACK
    assert_eq!((seg(3).rel_seq, seg(3).rel_ack), (1, 1)); // greeting
    assert_eq!(seg(4).rel_seq, 1); // USER
    assert_eq!(seg(4).rel_ack, 1 + POP3_SERVER[0].len() as u32);
    assert_eq!(seg(0).direction, Direction::ClientToServer);
    assert_eq!(seg(1).direction, Direction::ServerToClient);

    // Without the handshake, the first segment of each side is 1 (Wireshark's choice).
    let mid: Vec<CapturedPacket> = c.frames[3..].to_vec();
    let a = analyze(&mid);
    let s0 = a.frames()[0].segment.unwrap();
    assert_eq!((s0.rel_seq, s0.rel_ack), (1, 1));
    let s1 = a.frames()[1].segment.unwrap();
    assert_eq!(
        (s1.rel_seq, s1.rel_ack),
        (1, 1 + POP3_SERVER[0].len() as u32)
    );
    assert_eq!(
        a.connections()[0].client.port(),
        40000,
        "the non-110 port is the client"
    );
    assert_eq!(transcript(&a, 0).len(), 15);
}

#[test]
fn the_field_tree_carries_relative_numbers() {
    let c = rfc1939_session(LinkType::ETHERNET);
    let a = analyze(&c.frames);
    let tree = a.frame_tree(4, &c.frames[4].data).unwrap();
    assert_eq!(
        tree.find("Sequence number").unwrap().note.as_deref(),
        Some("relative sequence number 1")
    );
}

#[test]
fn one_command_over_three_segments() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    let f1 = c.client(b"ST");
    let f2 = c.client(b"A");
    let f3 = c.client(b"T\r\n");
    c.server(b"+OK 2 320\r\n");
    let a = analyze(&c.frames);
    assert_eq!(
        transcript(&a, 0),
        ["S: +OK ready", "C: STAT", "S: +OK 2 320"]
    );
    let stat = unit(&a, "STAT");
    assert_eq!(stat.frames(), [f1, f2, f3]);
    assert_eq!(stat.stream, 0..6);
    assert_eq!(unit_bytes(&c.frames, stat), b"STAT\r\n");
    let payload = 54; // Ethernet + IPv4 + TCP
    assert_eq!(stat.carriers[0].range, payload..payload + 2);
    assert_eq!(stat.carriers[1].range, payload..payload + 1);
    assert_eq!(stat.carriers[2].range, payload..payload + 3);
    assert_eq!(reply_to(&a, unit(&a, "+OK 2 320")), Some("STAT"));
}

#[test]
fn three_pipelined_commands_in_one_segment() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    let f = c.client(b"USER mrose\r\nPASS tanstaaf\r\nSTAT\r\n");
    let r = c.server(b"+OK user\r\n+OK pass\r\n+OK 2 320\r\n");
    let a = analyze(&c.frames);
    assert_eq!(
        transcript(&a, 0),
        [
            "S: +OK ready",
            "C: USER mrose",
            "C: PASS tanstaaf",
            "C: STAT",
            "S: +OK user",
            "S: +OK pass",
            "S: +OK 2 320"
        ]
    );
    let payload = 54;
    for (text, range) in [
        ("USER mrose", payload..payload + 12),
        ("PASS tanstaaf", payload + 12..payload + 27),
        ("STAT", payload + 27..payload + 33),
    ] {
        let u = unit(&a, text);
        assert_eq!(u.carriers.len(), 1);
        assert_eq!(
            (u.carriers[0].frame, u.carriers[0].range.clone()),
            (f, range)
        );
    }
    assert_eq!(reply_to(&a, unit(&a, "+OK user")), Some("USER mrose"));
    assert_eq!(reply_to(&a, unit(&a, "+OK pass")), Some("PASS tanstaaf"));
    assert_eq!(reply_to(&a, unit(&a, "+OK 2 320")), Some("STAT"));
    assert_eq!(unit(&a, "+OK 2 320").frames(), [r]);
}

/// Direction, kind, text, stream range, the text of the unit answered, multi-line, lines.
type Shape = (
    Direction,
    UnitKind,
    String,
    std::ops::Range<u64>,
    Option<String>,
    bool,
    u32,
);

/// What must not depend on how the bytes were cut into segments.
fn shape(a: &Analyzer) -> Vec<Shape> {
    a.units()
        .iter()
        .map(|u| {
            (
                u.direction,
                u.kind,
                u.text.clone(),
                u.stream.clone(),
                u.reply_to.map(|i| a.units()[i].text.clone()),
                u.multi_line,
                u.lines,
            )
        })
        .collect()
}

/// Client and server bytes alternate turn by turn; each turn is sent in `size`-byte chunks.
fn chunked(turns: &[(bool, &[u8])], port: u16, size: usize) -> Analyzer {
    let mut c = Conversation::new(LinkType::NULL, 40000, port);
    c.handshake();
    for (from_client, bytes) in turns {
        c.send_chunked(*from_client, bytes, size);
    }
    c.close();
    analyze(&c.frames)
}

#[test]
fn every_chunk_size_gives_the_same_units() {
    let mut pop3: Vec<(bool, &[u8])> = vec![(false, POP3_SERVER[0])];
    for (cmd, reply) in POP3_CLIENT
        .split_inclusive(|&b| b == b'\n')
        .zip(&POP3_SERVER[1..])
    {
        pop3.push((true, cmd));
        pop3.push((false, reply));
    }
    let smtp: Vec<(bool, &[u8])> = vec![
        (false, b"220-mail.example ESMTP\r\n220 welcome\r\n"),
        (true, b"EHLO client.example\r\n"),
        (
            false,
            b"250-mail.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
        ),
        (
            true,
            b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n",
        ),
        (false, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"),
        (true, b"Subject: test\r\n\r\nline one\r\n..stuffed\r\n.\r\n"),
        (false, b"250 2.0.0 queued\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 bye\r\n"),
    ];
    for (turns, port, expected_units) in [(&pop3, 110, 15), (&smtp, 25, 13)] {
        let reference = shape(&chunked(turns, port, 4096));
        assert_eq!(reference.len(), expected_units, "{reference:#?}");
        let mut size = 1;
        while size <= 512 {
            assert_eq!(
                shape(&chunked(turns, port, size)),
                reference,
                "chunk size {size}"
            );
            size *= 2;
        }
        for size in [3, 5, 7, 11] {
            assert_eq!(
                shape(&chunked(turns, port, size)),
                reference,
                "chunk size {size}"
            );
        }
    }
}

#[test]
fn out_of_order_retransmitted_and_overlapping_segments() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    let base = c.client_seq;
    let s = c.server_seq;
    // "USER mrose\r\n" = 12 bytes, "STAT\r\n" 6 bytes: stream 0..18.
    let late = c.raw(true, base + 12, s, PSH_ACK, b"STAT\r\n"); // arrives first
    let early = c.raw(true, base, s, PSH_ACK, b"USER mrose\r\n");
    let again = c.raw(true, base, s, PSH_ACK, b"USER mrose\r\n"); // retransmission
    let overlap = c.raw(true, base + 15, s, PSH_ACK, b"XYZW\r\n"); // bytes 15..21: 15..18 seen
    c.client_seq = base + 21;
    c.server(b"+OK user\r\n");
    let a = analyze(&c.frames);
    let notes = |i: usize| a.frames()[i].segment.unwrap().notes;
    assert!(notes(late).has(SegmentNotes::OUT_OF_ORDER));
    assert_eq!(notes(early), SegmentNotes::default());
    assert!(notes(again).has(SegmentNotes::RETRANSMISSION));
    assert!(notes(overlap).has(SegmentNotes::PARTIAL_RETRANSMISSION));
    let stream = a.stream_bytes(0, Direction::ClientToServer, |i| {
        c.frames.get(i).map(|p| p.data.as_slice())
    });
    assert_eq!(stream, b"USER mrose\r\nSTAT\r\nW\r\n");
    assert_eq!(
        transcript(&a, 0),
        [
            "S: +OK ready",
            "C: USER mrose",
            "C: STAT",
            "C: W",
            "S: +OK user"
        ]
    );
    assert_eq!(unit(&a, "STAT").frames(), [late]);
}

#[test]
fn first_arrived_bytes_win_among_held_segments() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    let base = c.client_seq;
    let s = c.server_seq;
    c.raw(true, base + 5, s, PSH_ACK, b"AAAAA\r\n"); // offsets 5..12, first
    let second = c.raw(true, base + 3, s, PSH_ACK, b"BBBBBBBB"); // 3..11, overlaps
    c.raw(true, base, s, PSH_ACK, b"CCC"); // 0..3 fills the gap
    c.client_seq = base + 12;
    let a = analyze(&c.frames);
    assert!(
        a.frames()[second]
            .segment
            .unwrap()
            .notes
            .has(SegmentNotes::OVERLAP)
    );
    let stream = a.stream_bytes(0, Direction::ClientToServer, |i| {
        c.frames.get(i).map(|p| p.data.as_slice())
    });
    assert_eq!(stream, b"CCCBBAAAAA\r\n");
}

#[test]
fn sequence_numbers_wrap_around() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.client_seq = u32::MAX - 3;
    c.server_seq = u32::MAX - 20;
    c.handshake();
    c.server(b"+OK ready, this greeting crosses the wrap\r\n");
    c.client(b"STAT\r\n");
    c.server(b"+OK 0 0\r\n");
    let a = analyze(&c.frames);
    assert_eq!(
        transcript(&a, 0),
        [
            "S: +OK ready, this greeting crosses the wrap",
            "C: STAT",
            "S: +OK 0 0"
        ]
    );
}

#[test]
fn a_gap_acknowledged_by_the_peer_is_skipped_and_noted() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    let base = c.client_seq;
    let s = c.server_seq;
    // "USER mrose\r\n" was sent but not captured; STAT is.
    c.raw(true, base + 12, s, PSH_ACK, b"STAT\r\n");
    c.client_seq = base + 18;
    c.server(b"+OK user\r\n+OK 2 320\r\n"); // acknowledges all 18 bytes
    let a = analyze(&c.frames);
    let conn = &a.connections()[0];
    assert_eq!(conn.stream(Direction::ClientToServer).gaps, vec![0..12]);
    assert_eq!(
        transcript(&a, 0),
        ["S: +OK ready", "C: STAT", "S: +OK user", "S: +OK 2 320"]
    );
    let stat = unit(&a, "STAT");
    assert_eq!(stat.stream, 12..18);
    assert_eq!(stat.notes, ["the bytes just before it were not captured"]);
}

#[test]
fn unterminated_multiline_reply_ends_at_fin_with_a_note() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    c.client(b"LIST\r\n");
    c.server(b"+OK 2 messages\r\n1 120\r\n2 200\r\n");
    c.close();
    let a = analyze(&c.frames);
    let list = unit(&a, "+OK 2 messages");
    assert!(list.multi_line);
    assert_eq!(list.lines, 3);
    assert!(
        list.notes.iter().any(|n| n.starts_with("unterminated")),
        "{list:?}"
    );
    assert_eq!(reply_to(&a, list), Some("LIST"));
}

#[test]
fn broken_server_reply_does_not_swallow_the_next_reply() {
    // As zeek's bad-list-retr-crafted.pcap: LIST reply without ".", then RETR.
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    c.client(b"LIST\r\n");
    c.server(b"+OK 2 messages\r\n1 120\r\n");
    c.client(b"RETR 1\r\n");
    c.server(b"+OK message follows\r\nSubject: x\r\n.\r\n");
    c.client(b"QUIT\r\n");
    c.server(b"+OK bye\r\n");
    let a = analyze(&c.frames);
    assert_eq!(
        transcript(&a, 0),
        // In the order they were completed: the LIST reply ends when the next reply begins.
        [
            "S: +OK ready",
            "C: LIST",
            "C: RETR 1",
            "S: +OK 2 messages",
            "S: +OK message follows",
            "C: QUIT",
            "S: +OK bye"
        ]
    );
    assert!(unit(&a, "+OK 2 messages").notes[0].starts_with("unterminated"));
    assert_eq!(
        reply_to(&a, unit(&a, "+OK message follows")),
        Some("RETR 1")
    );
    assert_eq!(reply_to(&a, unit(&a, "+OK bye")), Some("QUIT"));
}

#[test]
fn pop3_auth_exchange_and_stls() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    c.client(b"AUTH PLAIN\r\n");
    c.server(b"+ \r\n");
    c.client(b"AG1yb3NlAHRhbnN0YWFm\r\n");
    c.server(b"+OK welcome\r\n");
    c.client(b"CAPA\r\n");
    c.server(b"+OK\r\nSTLS\r\n.\r\n");
    c.client(b"STLS\r\n");
    c.server(b"+OK begin TLS\r\n");
    c.client(&[0x16, 3, 1, 0, 2, 1, 0]);
    c.server(&[0x16, 3, 3, 0, 1, 2, 0x17, 3, 3, 0, 0]);
    let a = analyze(&c.frames);
    let kinds: Vec<(String, UnitKind)> =
        a.units().iter().map(|u| (u.text.clone(), u.kind)).collect();
    assert_eq!(
        kinds[3],
        ("AG1yb3NlAHRhbnN0YWFm".to_string(), UnitKind::AuthData)
    );
    assert_eq!(
        reply_to(&a, unit(&a, "+OK welcome")),
        Some("AG1yb3NlAHRhbnN0YWFm")
    );
    assert!(unit(&a, "+OK").multi_line);
    let tls: Vec<&Unit> = a
        .units()
        .iter()
        .filter(|u| u.kind == UnitKind::Tls)
        .collect();
    assert_eq!(tls.len(), 3);
    assert_eq!(tls[0].text, "TLS handshake record, 7 bytes (version 3.1)");
    assert_eq!(
        tls[2].text,
        "TLS application-data record, 5 bytes (version 3.3)"
    );
}

#[test]
fn smtp_pipelining_waits_for_354_and_only_crlf_dot_crlf_ends_data() {
    let mut c = Conversation::new(LinkType::NULL, 50000, 25);
    c.handshake();
    c.server(b"220 mail ESMTP\r\n");
    c.client(b"EHLO me\r\n");
    c.server(b"250-mail\r\n250 PIPELINING\r\n");
    // Pipelined up to DATA, and (like sv_smtp-pipelining.pcap) the message right after.
    c.client(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nSubject: s\r\n\r\nbody\n.\nstill body\r\n.\r\n");
    c.server(b"250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n");
    c.client(b"QUIT\r\n");
    c.server(b"221 bye\r\n");
    let a = analyze(&c.frames);
    assert_eq!(
        transcript(&a, 0),
        [
            "S: 220 mail ESMTP",
            "C: EHLO me",
            "S: 250-mail",
            "C: MAIL FROM:<a@x>",
            "C: RCPT TO:<b@x>",
            "C: DATA",
            "S: 250 ok",
            "S: 250 ok",
            "S: 354 go",
            "C: Subject: s",
            "S: 250 queued",
            "C: QUIT",
            "S: 221 bye",
        ]
    );
    let content = unit(&a, "Subject: s");
    assert_eq!(content.kind, UnitKind::MailContent);
    assert_eq!(
        unit_bytes(&c.frames, content),
        b"Subject: s\r\n\r\nbody\n.\nstill body\r\n.\r\n"
    );
    assert!(
        content.notes.iter().any(|n| n.contains("smuggling")),
        "{content:?}"
    );
    assert_eq!(reply_to(&a, unit(&a, "354 go")), Some("DATA"));
    assert_eq!(reply_to(&a, unit(&a, "250 queued")), Some("Subject: s"));
    assert!(unit(&a, "250-mail").multi_line);
    assert_eq!(unit(&a, "250-mail").lines, 2);
}

#[test]
fn smtp_data_refused_means_the_bytes_are_commands() {
    let mut c = Conversation::new(LinkType::NULL, 50000, 25);
    c.handshake();
    c.server(b"220 mail\r\n");
    c.client(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nNOOP\r\n");
    c.server(b"250 ok\r\n550 no such user\r\n554 no valid recipients\r\n250 ok\r\n");
    let a = analyze(&c.frames);
    assert_eq!(unit(&a, "NOOP").kind, UnitKind::Command);
    assert_eq!(reply_to(&a, &a.units()[a.units().len() - 1]), Some("NOOP"));
}

#[test]
fn smtp_auth_bdat_and_starttls() {
    let mut c = Conversation::new(LinkType::ETHERNET, 50000, 587);
    c.handshake();
    c.server(b"220 mail\r\n");
    c.client(b"AUTH LOGIN\r\n");
    c.server(b"334 VXNlcm5hbWU6\r\n");
    c.client(b"bXJvc2U=\r\n");
    c.server(b"334 UGFzc3dvcmQ6\r\n");
    c.client(b"dGFuc3RhYWY=\r\n");
    c.server(b"235 ok\r\n");
    c.client(b"BDAT 12 LAST\r\nQUIT\r\nxxxxxx");
    c.server(b"250 got it\r\n");
    c.client(b"STARTTLS\r\n");
    c.server(b"220 go\r\n");
    c.client(&[0x16, 3, 1, 0, 1, 0]);
    let a = analyze(&c.frames);
    assert_eq!(unit(&a, "bXJvc2U=").kind, UnitKind::AuthData);
    assert_eq!(unit(&a, "dGFuc3RhYWY=").kind, UnitKind::AuthData);
    let chunk = unit(&a, "QUIT");
    assert_eq!(
        chunk.kind,
        UnitKind::MailContent,
        "the 12 bytes after BDAT are content"
    );
    assert_eq!(chunk.len(), 12);
    assert_eq!(reply_to(&a, unit(&a, "250 got it")), Some("BDAT 12 LAST"));
    assert_eq!(a.units().last().unwrap().kind, UnitKind::Tls);
}

#[test]
fn protocol_from_the_greeting_on_other_ports() {
    let pop3: Vec<(bool, &[u8])> = vec![
        (false, b"+OK hi\r\n"),
        (true, b"CAPA\r\n"),
        (false, b"+OK\r\nUSER\r\n.\r\n"),
    ];
    let a = chunked(&pop3, 10110, 2);
    assert_eq!(
        a.connections()[0].protocol(),
        Detected::Mail(Protocol::Pop3)
    );
    assert_eq!(
        a.connections()[0].protocol_source(),
        ProtocolSource::Greeting
    );
    assert!(unit(&a, "+OK").multi_line);

    let smtp: Vec<(bool, &[u8])> = vec![
        (false, b"220 hi\r\n"),
        (true, b"HELO x\r\n"),
        (false, b"250 ok\r\n"),
    ];
    let a = chunked(&smtp, 10025, 1);
    assert_eq!(
        a.connections()[0].protocol(),
        Detected::Mail(Protocol::Smtp)
    );
    assert_eq!(transcript(&a, 0), ["S: 220 hi", "C: HELO x", "S: 250 ok"]);

    let http: Vec<(bool, &[u8])> = vec![
        (true, b"GET / HTTP/1.0\r\n\r\n"),
        (false, b"HTTP/1.0 200 OK\r\n\r\n"),
    ];
    let a = chunked(&http, 8080, 5);
    assert_eq!(a.connections()[0].protocol(), Detected::Other);
    assert!(a.units().is_empty());
}

#[test]
fn port_reuse_after_close_is_a_new_connection() {
    let mut c = rfc1939_session(LinkType::ETHERNET);
    c.client_seq = 90_000;
    c.server_seq = 70_000;
    c.handshake();
    c.server(b"+OK again\r\n");
    let a = analyze(&c.frames);
    assert_eq!(a.connections().len(), 2);
    assert_eq!(transcript(&a, 1), ["S: +OK again"]);
}

#[test]
fn rst_ends_the_units() {
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    c.handshake();
    c.server(b"+OK ready\r\n");
    c.client(b"RETR 1\r\n");
    c.server(b"+OK\r\npartial");
    c.raw(false, c.server_seq, c.client_seq, RST, b"");
    let mut a = Analyzer::new();
    let mut last = None;
    for f in &c.frames {
        last = Some(a.push(f));
    }
    let pushed = last.unwrap();
    assert!(a.connections()[0].reset);
    assert_eq!(
        pushed.new_units.len(),
        1,
        "the RST completes the open reply"
    );
    let u = &a.units()[pushed.new_units.start];
    assert_eq!(u.lines, 2);
    assert!(u.notes.iter().any(|n| n.starts_with("unterminated")));
}

#[test]
fn live_pushes_report_new_units() {
    let c = rfc1939_session(LinkType::ETHERNET);
    let mut a = Analyzer::new();
    let mut seen = 0;
    for (i, f) in c.frames.iter().enumerate() {
        let p = a.push(f);
        assert_eq!(p.frame, i);
        assert_eq!(p.new_units.start, seen);
        seen = p.new_units.end;
    }
    assert_eq!(seen, 15, "every unit is complete before the capture ends");
    assert!(a.finish().is_empty());
}

#[test]
fn a_client_that_does_not_wait_for_354_is_not_buffered_forever() {
    let mut c = Conversation::new(LinkType::ETHERNET, 50000, 25);
    c.handshake();
    c.server(b"220 mail\r\n");
    c.client(b"DATA\r\n");
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    body.extend(
        std::iter::repeat_n(
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\r\n"
                .as_slice(),
            20_000,
        )
        .flatten(),
    );
    body.extend_from_slice(b".\r\n");
    c.send_chunked(true, &body, 1448);
    c.server(b"354 go\r\n250 ok\r\n");
    let a = analyze(&c.frames);
    let content = unit(&a, "Subject: big");
    assert_eq!(content.kind, UnitKind::MailContent);
    assert_eq!(content.len(), body.len() as u64);
    assert_eq!(reply_to(&a, unit(&a, "354 go")), Some("DATA"));
    assert_eq!(reply_to(&a, unit(&a, "250 ok")), Some("Subject: big"));
}
