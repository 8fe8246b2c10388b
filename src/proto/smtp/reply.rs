//! SMTP replies (RFC 5321 section 4.2): a three-digit code and one or more lines of text.
//!
//! The text of a reply includes the enhanced status code of RFC 3463 when there is one
//! (`"2.1.0 Sender <a@b> OK"`); [`Reply::to_bytes`] adds the code and the separators
//! (`250-` on every line but the last, `250 ` on the last) and the CRLFs.

/// One reply, single- or multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The text lines, without code or line end; never empty, never holding control
    /// characters (they are replaced with `?` on construction, so a reply can never be split
    /// or extended by text echoed from the client).
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Self::multiline(code, vec![text.into()])
    }

    /// A reply of several lines (one line if `lines` is empty or has one element).
    pub fn multiline(code: u16, lines: Vec<String>) -> Self {
        let mut lines: Vec<String> = lines.iter().map(|l| clean(l)).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Self { code, lines }
    }

    /// The reply as written on the wire: `"250-first\r\n250 last\r\n"`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            out.extend_from_slice(format!("{:03}", self.code).as_bytes());
            if line.is_empty() && i == last {
                out.extend_from_slice(b"\r\n");
                continue;
            }
            out.push(if i == last { b' ' } else { b'-' });
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// All text lines joined with `"\n"`, without the codes.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Whether the code is 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

/// Replaces control characters (CR, LF, NUL, ...) with `?`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply() {
        let r = Reply::new(250, "2.0.0 OK");
        assert_eq!(r.to_bytes(), b"250 2.0.0 OK\r\n");
        assert_eq!(r.text(), "2.0.0 OK");
        assert!(r.is_positive());
    }

    #[test]
    fn multi_line_reply() {
        let r = Reply::multiline(
            250,
            vec!["a Hello b".into(), "PIPELINING".into(), "SIZE 5".into()],
        );
        assert_eq!(
            r.to_bytes(),
            b"250-a Hello b\r\n250-PIPELINING\r\n250 SIZE 5\r\n"
        );
        assert_eq!(r.text(), "a Hello b\nPIPELINING\nSIZE 5");
    }

    #[test]
    fn control_characters_cannot_inject_lines() {
        let r = Reply::new(550, "5.1.1 <a\r\n250 ok>\0");
        assert_eq!(r.to_bytes(), b"550 5.1.1 <a??250 ok>?\r\n");
        assert!(!r.is_positive());
    }

    #[test]
    fn empty_text() {
        assert_eq!(Reply::multiline(250, vec![]).to_bytes(), b"250\r\n");
    }
}
