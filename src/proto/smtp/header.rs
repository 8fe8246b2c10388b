//! The Received trace header (RFC 5321 section 4.4) that the driver puts on top of a
//! delivered message. Pure formatting: the driver supplies the peer, the id and the date.

/// The Return-Path line that final delivery puts first (RFC 5321 section 4.4): the envelope
/// sender, `<>` for the null path. Control characters become spaces.
pub fn return_path_header(reverse_path: &str) -> String {
    format!("Return-Path: <{}>\r\n", clean(reverse_path))
}

/// Lines are folded to stay within this many characters where possible (RFC 5322 2.1.1).
const FOLD_AT: usize = 78;

/// `Received: from {helo} ({peer}) by {hostname} with {protocol} id {id}; {date}` with CRLF
/// (`protocol` is ESMTP after EHLO, SMTP after HELO: RFC 5321 section 4.4),
/// folded before `by`, `with` or the date (continuation lines start with a tab) whenever a
/// line would pass 78 characters. Control characters in the inputs become spaces, so the
/// header cannot be split or extended by what a client sent; an empty `helo` is written as
/// `unknown` and an empty `peer` is left out with its parentheses.
pub fn received_header(
    helo: &str,
    peer: &str,
    hostname: &str,
    protocol: &str,
    id: &str,
    date: &str,
) -> String {
    let helo = clean(helo);
    let helo = if helo.is_empty() {
        "unknown".to_string()
    } else {
        helo
    };
    let peer = clean(peer);
    let from = if peer.is_empty() {
        format!("Received: from {helo}")
    } else {
        format!("Received: from {helo} ({peer})")
    };
    let parts = [
        from,
        format!("by {}", clean(hostname)),
        format!("with {} id {};", clean(protocol), clean(id)),
        clean(date),
    ];
    let mut out = String::new();
    let mut line_len = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            out.push_str(part);
            line_len = part.len();
        } else if line_len + 1 + part.len() <= FOLD_AT {
            out.push(' ');
            out.push_str(part);
            line_len += 1 + part.len();
        } else {
            out.push_str("\r\n\t");
            out.push_str(part);
            line_len = 1 + part.len();
        }
    }
    out.push_str("\r\n");
    out
}

/// The text with control characters replaced by spaces and surrounding spaces removed.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Tue, 1 Jul 2025 10:00:00 +0000";

    #[test]
    fn helo_sessions_say_smtp() {
        assert_eq!(
            received_header("a", "b", "h", "SMTP", "1", "d"),
            "Received: from a (b) by h with SMTP id 1; d\r\n"
        );
    }

    #[test]
    fn short_header_fits_on_one_line_when_it_can() {
        assert_eq!(
            received_header("a", "b", "h", "ESMTP", "1", "d"),
            "Received: from a (b) by h with ESMTP id 1; d\r\n"
        );
    }

    #[test]
    fn typical_header_is_folded() {
        let h = received_header(
            "iit.edu",
            "localhost [127.0.0.1]",
            "localhost",
            "ESMTP",
            "4F2A9C",
            DATE,
        );
        assert_eq!(
            h,
            "Received: from iit.edu (localhost [127.0.0.1]) by localhost\r\n\
             \twith ESMTP id 4F2A9C; Tue, 1 Jul 2025 10:00:00 +0000\r\n"
        );
        for line in h.split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line:?}");
        }
    }

    #[test]
    fn long_parts_each_get_a_line() {
        let helo = "x".repeat(70);
        let h = received_header(&helo, "[127.0.0.1]", &"h".repeat(70), "ESMTP", "ID", DATE);
        let lines: Vec<&str> = h.trim_end().split("\r\n").collect();
        assert_eq!(lines.len(), 3, "{h}");
        assert!(lines.iter().skip(1).all(|l| l.starts_with('\t')));
        assert_eq!(
            lines[2],
            "\twith ESMTP id ID; Tue, 1 Jul 2025 10:00:00 +0000"
        );
    }

    #[test]
    fn no_header_injection_and_defaults() {
        let h = received_header("evil\r\nX-Bad: 1", "", "h", "ESMTP", "1", "d");
        assert_eq!(
            h,
            "Received: from evil  X-Bad: 1 by h with ESMTP id 1; d\r\n"
        );
        assert_eq!(
            received_header("", "p", "h", "ESMTP", "1", "d"),
            "Received: from unknown (p) by h with ESMTP id 1; d\r\n"
        );
    }
}
