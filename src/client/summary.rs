//! One line per mail for the console client's list: the sender's address, when the mail
//! was received (date : hour : minute) and its subject, taken from the message header.

use chrono::DateTime;

/// What the mail list shows for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSummary {
    /// The sender's address (`test@domain.com` from `"Test" <test@domain.com>`), or `-`.
    pub from: String,
    /// When the mail was received, `2011-10-29 : 22 : 43`, or the header text as written
    /// when it is not an RFC 5322 date (the assignment's own format), or `-`.
    pub received: String,
    /// The subject, or `-`.
    pub subject: String,
}

/// Summarizes a message (or just its header, as TOP n 0 returns it).
pub fn summarize(message: &[u8]) -> MailSummary {
    let headers = parse_headers(message);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let or_dash = |s: Option<String>| s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into());
    MailSummary {
        from: or_dash(get("From").map(address_of)),
        received: or_dash(received_time(get("Received"), get("Date"))),
        subject: or_dash(get("Subject").map(str::to_string)),
    }
}

/// The header fields (name, unfolded value) up to the first empty line.
fn parse_headers(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

/// The address in a From field: inside `<...>` if present, else the first word with '@',
/// else the whole text.
fn address_of(from: &str) -> String {
    if let Some((_, rest)) = from.rsplit_once('<')
        && let Some((inside, _)) = rest.split_once('>')
    {
        return inside.trim().to_string();
    }
    from.split_whitespace()
        .find(|w| w.contains('@'))
        .unwrap_or(from)
        .trim_matches(['"', '(', ')', ','])
        .to_string()
}

/// The time from the first Received field (the date after its last ';'), else from Date.
fn received_time(received: Option<&str>, date: Option<&str>) -> Option<String> {
    if let Some(r) = received {
        let when = r.rsplit_once(';').map_or(r, |(_, d)| d).trim();
        return Some(format_date(when).unwrap_or_else(|| when.to_string()));
    }
    date.map(|d| format_date(d).unwrap_or_else(|| d.to_string()))
}

/// An RFC 5322 date as `2011-10-29 : 22 : 43` (in the sender's time zone).
fn format_date(text: &str) -> Option<String> {
    let text = text.trim();
    let without_comment = match text.rsplit_once('(') {
        Some((date, comment)) if comment.ends_with(')') => date.trim(),
        _ => text,
    };
    let parsed = DateTime::parse_from_rfc2822(without_comment).ok()?;
    Some(parsed.format("%Y-%m-%d : %H : %M").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlook_message_from_seed_004() {
        let m = b"Return-Path: test@domain.com\r\n\
            Received: from Home ([127.0.0.1])\r\n\tby HOME\r\n\t; Sat, 29 Oct 2011 22:43:41 +0530\r\n\
            From: \"Test\" <test@domain.com>\r\nTo: <mail@domain.com>\r\nSubject: Test 1\r\n\
            Date: Sat, 29 Oct 2011 22:43:41 +0530\r\n\r\nbody: not a header\r\n";
        assert_eq!(
            summarize(m),
            MailSummary {
                from: "test@domain.com".into(),
                received: "2011-10-29 : 22 : 43".into(),
                subject: "Test 1".into(),
            }
        );
    }

    #[test]
    fn assignment_mailbox_format() {
        let m = b"From: ag@iit.edu\nTo: gb@iit.edu\nSubject: Hi\nReceived: 12-03-2024 : 10 : 05\n\nhello\n";
        let s = summarize(m);
        assert_eq!(s.from, "ag@iit.edu");
        assert_eq!(s.received, "12-03-2024 : 10 : 05");
        assert_eq!(s.subject, "Hi");
    }

    #[test]
    fn date_when_no_received_and_dashes_when_nothing() {
        let m = b"From: a@b (Alice)\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200 (CEST)\r\n\r\n";
        let s = summarize(m);
        assert_eq!(s.from, "a@b");
        assert_eq!(s.received, "2003-07-01 : 10 : 52");
        assert_eq!(s.subject, "-");
        assert_eq!(
            summarize(b"\xff\xfe garbage"),
            MailSummary {
                from: "-".into(),
                received: "-".into(),
                subject: "-".into()
            }
        );
    }
}
