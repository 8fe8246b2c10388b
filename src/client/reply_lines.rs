//! A reply as it came on the wire, line by line, each with how it ended and what the client
//! made of it: the terminating "." of a POP3 multi-line reply, a byte-stuffed line (the
//! client removed one dot), a line ended by a bare LF, a line whose end never came. The
//! console shows every reply this way, so a framing error is seen, not guessed.
//!
//! Where a reply ends is the client machine's decision (its `stream` range); this only
//! names the lines inside that range for the person reading them.

use crate::proto::Protocol;

/// How a line ended on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// CR LF, as both protocols require.
    CrLf,
    /// A bare LF (the client accepted it).
    BareLf,
    /// No line end came.
    Missing,
}

/// What the client did with a line, beyond reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRole {
    /// A status line, reply line or body line taken as it came.
    Plain,
    /// A body line of a POP3 multi-line reply that began with "." on the wire: byte-stuffed;
    /// the client removed that dot.
    Stuffed,
    /// The line holding only "." that ends a POP3 multi-line reply.
    Terminator,
}

/// One line of a reply as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireLine {
    /// The line as sent, without its line end (invalid UTF-8 replaced).
    pub text: String,
    /// How it ended.
    pub end: LineEnd,
    /// What the client made of it.
    pub role: LineRole,
}

/// The shape of the reply the bytes carry, as the client machine read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyShape {
    /// Lines taken as they came (a POP3 single-line reply, an SMTP reply, or lines that are
    /// no reply).
    Lines,
    /// A POP3 multi-line reply: a status line, then dot-stuffed lines; `complete` when its
    /// "." line came (a reply given up has none).
    Pop3MultiLine { complete: bool },
}

/// Cuts `bytes` (one reply, or whatever came) into lines and names each.
pub fn wire_lines(bytes: &[u8], shape: ReplyShape) -> Vec<WireLine> {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, end, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                let (line, after) = rest.split_at(lf);
                let next = after.get(1..).unwrap_or_default();
                match line.strip_suffix(b"\r") {
                    Some(line) => (line, LineEnd::CrLf, next),
                    None => (line, LineEnd::BareLf, next),
                }
            }
            None => (rest, LineEnd::Missing, &[][..]),
        };
        lines.push(WireLine {
            text: String::from_utf8_lossy(line).into_owned(),
            end,
            role: LineRole::Plain,
        });
        rest = next;
    }
    if let ReplyShape::Pop3MultiLine { complete } = shape {
        let count = lines.len();
        for (i, line) in lines.iter_mut().enumerate().skip(1) {
            let last = i + 1 == count;
            if complete && last && line.text == "." {
                line.role = LineRole::Terminator;
            } else if line.text.starts_with('.') {
                line.role = LineRole::Stuffed;
            }
        }
    }
    lines
}

/// What a console writes after a line to say how it ended and what the client did with it
/// (empty for a plain line that ended with CRLF). The RFC cited is the protocol's rule for
/// line ends (RFC 1939 section 3, RFC 5321 section 2.3.8) and for the dots (RFC 1939
/// section 3).
pub fn marks(line: &WireLine, protocol: Protocol) -> String {
    let line_rule = match protocol {
        Protocol::Pop3 => "RFC 1939 section 3",
        Protocol::Smtp => "RFC 5321 section 2.3.8",
    };
    let mut marks = Vec::new();
    match line.role {
        LineRole::Plain => {}
        LineRole::Stuffed => marks
            .push("[byte-stuffed: the client removed one dot (RFC 1939 section 3)]".to_string()),
        LineRole::Terminator => {
            marks.push("[the \".\" line: the end of the multi-line reply]".to_string());
        }
    }
    match line.end {
        LineEnd::CrLf => {}
        LineEnd::BareLf => marks.push(format!(
            "[ended by a bare LF, not CRLF ({line_rule}); the client accepted it]"
        )),
        LineEnd::Missing => marks.push(format!("[no line end: CRLF never came ({line_rule})]")),
    }
    marks.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(bytes: &[u8], shape: ReplyShape) -> Vec<(String, LineEnd, LineRole)> {
        wire_lines(bytes, shape)
            .into_iter()
            .map(|l| (l.text, l.end, l.role))
            .collect()
    }

    #[test]
    fn a_multi_line_reply_names_its_dots_and_its_end() {
        let got = roles(
            b"+OK\r\n..x\r\n.\r\n",
            ReplyShape::Pop3MultiLine { complete: true },
        );
        assert_eq!(
            got,
            vec![
                ("+OK".into(), LineEnd::CrLf, LineRole::Plain),
                ("..x".into(), LineEnd::CrLf, LineRole::Stuffed),
                (".".into(), LineEnd::CrLf, LineRole::Terminator),
            ]
        );
    }

    #[test]
    fn a_reply_given_up_has_no_end_and_a_line_may_lack_its_end() {
        let got = roles(
            b"+OK 2\n1 1\r\n2 2",
            ReplyShape::Pop3MultiLine { complete: false },
        );
        assert_eq!(
            got,
            vec![
                ("+OK 2".into(), LineEnd::BareLf, LineRole::Plain),
                ("1 1".into(), LineEnd::CrLf, LineRole::Plain),
                ("2 2".into(), LineEnd::Missing, LineRole::Plain),
            ]
        );
        // A status line that begins with a dot is no body line.
        let got = roles(b".x\r\n", ReplyShape::Lines);
        assert_eq!(got, vec![(".x".into(), LineEnd::CrLf, LineRole::Plain)]);
    }

    #[test]
    fn marks_cite_each_protocol_s_rule() {
        let line = |end, role| WireLine {
            text: "x".into(),
            end,
            role,
        };
        assert_eq!(
            marks(&line(LineEnd::CrLf, LineRole::Plain), Protocol::Pop3),
            ""
        );
        assert!(
            marks(&line(LineEnd::BareLf, LineRole::Plain), Protocol::Smtp)
                .contains("RFC 5321 section 2.3.8")
        );
        assert_eq!(
            marks(&line(LineEnd::Missing, LineRole::Stuffed), Protocol::Pop3),
            "[byte-stuffed: the client removed one dot (RFC 1939 section 3)] [no line end: \
             CRLF never came (RFC 1939 section 3)]"
        );
    }
}
