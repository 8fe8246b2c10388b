//! The message a client sends after DATA: header fields and body, ready for
//! [`super::client::SmtpClient::send_content`].
//!
//! - From, To, Subject and Date (RFC 5322 section 3.6; the date is passed in, formatted as
//!   RFC 5322 section 3.3 says: this module has no clock);
//! - a Subject that is not ASCII becomes RFC 2047 encoded-words (`=?UTF-8?Q?...?=`, at most
//!   75 characters each, each holding whole characters, folded onto lines of their own);
//! - a body that is ASCII with lines of at most 998 octets goes as it is (RFC 2045 section
//!   5.2: without MIME headers it is text/plain in US-ASCII); any other body gets
//!   `MIME-Version: 1.0`, `Content-Type: text/plain; charset=UTF-8` and either
//!   `Content-Transfer-Encoding: 8bit` (when the server announced 8BITMIME, RFC 6152: then
//!   MAIL FROM must carry `BODY=8BITMIME`) or `quoted-printable` (RFC 2045 section 6.7),
//!   which keeps every line 7-bit and at most 76 characters.

/// How the body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// US-ASCII as written, no MIME headers.
    SevenBit,
    /// UTF-8 octets as written (RFC 6152); MAIL FROM must say `BODY=8BITMIME`.
    EightBit,
    /// Quoted-printable (RFC 2045 section 6.7): 7-bit lines of at most 76 characters.
    QuotedPrintable,
}

impl BodyEncoding {
    /// The MAIL FROM parameter this body needs, if any (RFC 6152 section 2).
    pub fn mail_parameter(self) -> Option<&'static str> {
        match self {
            BodyEncoding::EightBit => Some("BODY=8BITMIME"),
            BodyEncoding::SevenBit | BodyEncoding::QuotedPrintable => None,
        }
    }
}

/// What to write: the fields of a mail as a person types them.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    /// The author's address.
    pub from: &'a str,
    /// The recipients' addresses.
    pub to: &'a [String],
    /// The subject, any Unicode.
    pub subject: &'a str,
    /// The body, any Unicode, lines ended by LF or CRLF.
    pub body: &'a str,
    /// The Date field's value, e.g. `Thu, 1 Jan 2026 09:00:00 +0000` (RFC 5322 section 3.3).
    pub date: &'a str,
}

/// A composed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// Header fields, the empty line and the body, every line ended by CRLF (no final dot:
    /// the client adds it).
    pub content: String,
    /// How the body was written.
    pub encoding: BodyEncoding,
}

/// The longest line SMTP carries, CRLF excluded (RFC 5321 section 4.5.3.1.6; RFC 2045
/// section 2.8 for 8bit data).
const MAX_LINE: usize = 998;
/// The longest encoded-word (RFC 2047 section 2).
const MAX_ENCODED_WORD: usize = 75;
/// The encoded-words made here: short enough that `Subject: ` and one word fit the 78
/// characters RFC 5322 section 2.1.1 recommends for a line.
const WORD_BUDGET: usize = 78 - "Subject: ".len();
/// The longest quoted-printable line, soft line break included (RFC 2045 section 6.7 (5)).
const MAX_QP_LINE: usize = 76;

/// Builds the message; `eight_bit_mime`: the server announced 8BITMIME in its EHLO reply.
pub fn compose(draft: &Draft<'_>, eight_bit_mime: bool) -> Composed {
    let mut content = String::new();
    content.push_str(&format!("From: {}\r\n", draft.from));
    content.push_str(&format!("To: {}\r\n", draft.to.join(", ")));
    content.push_str(&subject_field(draft.subject));
    content.push_str(&format!("Date: {}\r\n", draft.date));
    let lines: Vec<&str> = draft
        .body
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let plain = draft.body.is_ascii() && lines.iter().all(|l| l.len() <= MAX_LINE);
    let encoding = if plain {
        BodyEncoding::SevenBit
    } else if eight_bit_mime && lines.iter().all(|l| l.len() <= MAX_LINE) {
        BodyEncoding::EightBit
    } else {
        BodyEncoding::QuotedPrintable
    };
    if encoding != BodyEncoding::SevenBit {
        content.push_str("MIME-Version: 1.0\r\n");
        content.push_str("Content-Type: text/plain; charset=UTF-8\r\n");
        let cte = match encoding {
            BodyEncoding::EightBit => "8bit",
            _ => "quoted-printable",
        };
        content.push_str(&format!("Content-Transfer-Encoding: {cte}\r\n"));
    }
    content.push_str("\r\n");
    for line in lines {
        match encoding {
            BodyEncoding::QuotedPrintable => quoted_printable_line(line, &mut content),
            BodyEncoding::SevenBit | BodyEncoding::EightBit => content.push_str(line),
        }
        content.push_str("\r\n");
    }
    Composed { content, encoding }
}

/// `Subject: ...` with its CRLF: as typed if ASCII (control characters made spaces), else
/// RFC 2047 encoded-words, one per line after the first, folded with a space.
fn subject_field(subject: &str) -> String {
    let clean: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_ascii() {
        return format!("Subject: {clean}\r\n");
    }
    let words = encoded_words(&clean);
    format!("Subject: {}\r\n", words.join("\r\n "))
}

/// The text as `=?UTF-8?Q?...?=` words of at most 69 characters (RFC 2047 section 2 allows
/// 75), each holding whole characters (RFC 2047 section 5 (3)).
pub fn encoded_words(text: &str) -> Vec<String> {
    const OPEN: &str = "=?UTF-8?Q?";
    const CLOSE: &str = "?=";
    let room = WORD_BUDGET.min(MAX_ENCODED_WORD) - OPEN.len() - CLOSE.len();
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        let mut encoded = String::new();
        q_encode_char(c, &mut encoded);
        if !word.is_empty() && word.len() + encoded.len() > room {
            words.push(format!("{OPEN}{word}{CLOSE}"));
            word.clear();
        }
        word.push_str(&encoded);
    }
    if !word.is_empty() || words.is_empty() {
        words.push(format!("{OPEN}{word}{CLOSE}"));
    }
    words
}

/// One character in RFC 2047's Q encoding (section 4.2), keeping only the characters
/// section 5 (3) allows anywhere as they are; a space is `_`.
fn q_encode_char(c: char, out: &mut String) {
    if c == ' ' {
        out.push('_');
    } else if c.is_ascii_alphanumeric() || "!*+-/".contains(c) {
        out.push(c);
    } else {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push_str(&format!("={b:02X}"));
        }
    }
}

/// One body line in quoted-printable (RFC 2045 section 6.7), soft line breaks (`=` at the
/// end) keeping each written line at most [`MAX_QP_LINE`] characters; no CRLF at the end.
fn quoted_printable_line(line: &str, out: &mut String) {
    let bytes = line.as_bytes();
    let mut written = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let last = i + 1 == bytes.len();
        let literal = match b {
            b'=' => false,
            // White space at the end of a line would be lost in transport (rule 3).
            b' ' | b'\t' => !last,
            33..=126 => true,
            _ => false,
        };
        let piece = if literal {
            char::from(b).to_string()
        } else {
            format!("={b:02X}")
        };
        // Room for the piece, and for a soft break after it unless the line ends here.
        let needed = piece.len() + usize::from(!last);
        if written + needed > MAX_QP_LINE {
            out.push_str("=\r\n");
            written = 0;
        }
        out.push_str(&piece);
        written += piece.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2047's decoding, just enough for the words made here.
    fn decode_words(value: &str) -> String {
        let mut bytes = Vec::new();
        for word in value.split("\r\n ") {
            let inner = word
                .strip_prefix("=?UTF-8?Q?")
                .and_then(|w| w.strip_suffix("?="))
                .expect("an encoded-word");
            assert!(word.len() <= MAX_ENCODED_WORD, "{word}");
            // Each word decodes on its own to whole characters (RFC 2047 section 5 (3)).
            let mut own = Vec::new();
            unquote(inner.replace('_', " ").as_bytes(), &mut own);
            assert!(String::from_utf8(own.clone()).is_ok(), "{word}");
            bytes.extend(own);
        }
        String::from_utf8(bytes).unwrap()
    }

    /// `=XX` to the octet, everything else as it is.
    fn unquote(text: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i < text.len() {
            if text[i] == b'=' {
                let hex = std::str::from_utf8(&text[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(text[i]);
                i += 1;
            }
        }
    }

    /// Quoted-printable decoding: soft breaks joined, `=XX` unquoted.
    fn decode_qp(body: &str) -> String {
        let mut out = Vec::new();
        for line in body.split_inclusive("\r\n") {
            let text = line.strip_suffix("\r\n").unwrap_or(line);
            assert!(text.len() <= MAX_QP_LINE, "{text:?}");
            assert!(text.is_ascii());
            match text.strip_suffix('=') {
                Some(soft) => unquote(soft.as_bytes(), &mut out),
                None => {
                    unquote(text.as_bytes(), &mut out);
                    if line.ends_with("\r\n") {
                        out.extend_from_slice(b"\n");
                    }
                }
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn draft<'a>(to: &'a [String], subject: &'a str, body: &'a str) -> Draft<'a> {
        Draft {
            from: "ag@iit.edu",
            to,
            subject,
            body,
            date: "Thu, 1 Jan 2026 09:00:00 +0000",
        }
    }

    fn field<'a>(content: &'a str, name: &str) -> &'a str {
        let start = content
            .find(&format!("\r\n{name}: "))
            .map(|i| i + 2)
            .or_else(|| content.starts_with(&format!("{name}: ")).then_some(0));
        let start = start.expect(name) + name.len() + 2;
        let rest = &content[start..];
        // Up to the CRLF not followed by folding white space.
        let mut end = 0;
        while let Some(at) = rest[end..].find("\r\n") {
            end += at;
            if !rest[end + 2..].starts_with(' ') {
                break;
            }
            end += 2;
        }
        &rest[..end]
    }

    #[test]
    fn ascii_mail_is_sent_as_typed_without_mime_headers() {
        let to = ["gb@iit.edu".to_string()];
        let m = compose(&draft(&to, "Assignment 4", "Hi gb,\nag\n"), true);
        assert_eq!(
            m.content,
            "From: ag@iit.edu\r\nTo: gb@iit.edu\r\nSubject: Assignment 4\r\n\
             Date: Thu, 1 Jan 2026 09:00:00 +0000\r\n\r\nHi gb,\r\nag\r\n"
        );
        assert_eq!(m.encoding, BodyEncoding::SevenBit);
        assert_eq!(m.encoding.mail_parameter(), None);
    }

    #[test]
    fn a_non_ascii_subject_round_trips_through_encoded_words() {
        let to = ["gb@iit.edu".to_string()];
        for subject in [
            "Grüße aus München",
            "Prüfung = morgen? _ja_",
            "日本語のテキストはとても長くなることがあります、そして一語に収まりません",
            "é",
            "😀 emoji 😀 and a long tail to force several encoded-words, surely more than one",
        ] {
            let m = compose(&draft(&to, subject, "x\n"), false);
            let value = field(&m.content, "Subject");
            assert!(value.is_ascii(), "{value}");
            assert_eq!(decode_words(value), subject);
            // Every header line stays short (RFC 5322 section 2.1.1: 78 recommended).
            for line in m.content.split("\r\n") {
                assert!(line.len() <= 78, "{line}");
            }
        }
        assert_eq!(
            encoded_words("Grüße aus München"),
            ["=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?="]
        );
    }

    #[test]
    fn a_non_ascii_body_is_8bit_only_when_the_server_said_8bitmime() {
        let to = ["gb@iit.edu".to_string()];
        let body = "Grüße,\nag\n";
        let m = compose(&draft(&to, "Hi", body), true);
        assert_eq!(m.encoding, BodyEncoding::EightBit);
        assert_eq!(m.encoding.mail_parameter(), Some("BODY=8BITMIME"));
        assert_eq!(field(&m.content, "MIME-Version"), "1.0");
        assert_eq!(
            field(&m.content, "Content-Type"),
            "text/plain; charset=UTF-8"
        );
        assert_eq!(field(&m.content, "Content-Transfer-Encoding"), "8bit");
        assert!(m.content.ends_with("\r\n\r\nGrüße,\r\nag\r\n"));

        let m = compose(&draft(&to, "Hi", body), false);
        assert_eq!(m.encoding, BodyEncoding::QuotedPrintable);
        assert_eq!(m.encoding.mail_parameter(), None);
        assert_eq!(
            field(&m.content, "Content-Transfer-Encoding"),
            "quoted-printable"
        );
        assert!(m.content.is_ascii());
        let (_, encoded) = m.content.split_once("\r\n\r\n").unwrap();
        assert_eq!(encoded, "Gr=C3=BC=C3=9Fe,\r\nag\r\n");
        assert_eq!(decode_qp(encoded), body);
    }

    #[test]
    fn quoted_printable_round_trips_long_lines_equals_and_trailing_space() {
        let to = ["gb@iit.edu".to_string()];
        let long = "ü".repeat(700); // 1400 octets: too long for one SMTP line
        let body = format!("a = b \nend\t\n{long}\n.dot\n\n");
        for eight_bit in [false, true] {
            let m = compose(&draft(&to, "x", &body), eight_bit);
            assert_eq!(m.encoding, BodyEncoding::QuotedPrintable, "long line");
            let (_, encoded) = m.content.split_once("\r\n\r\n").unwrap();
            assert!(encoded.starts_with("a =3D b=20\r\nend=09\r\n"), "{encoded}");
            assert_eq!(decode_qp(encoded), body);
        }
    }

    #[test]
    fn recipients_are_listed_and_controls_cannot_add_a_header() {
        let to = ["a@x".to_string(), "b@y".to_string()];
        let m = compose(&draft(&to, "Hi\r\nBcc: evil@z", ""), false);
        assert_eq!(field(&m.content, "To"), "a@x, b@y");
        assert_eq!(field(&m.content, "Subject"), "Hi  Bcc: evil@z");
        assert!(!m.content.contains("\r\nBcc:"));
    }
}
