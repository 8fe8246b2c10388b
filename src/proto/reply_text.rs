//! Free reply texts a server may be given instead of its own, so a scenario can replay a
//! published session's wording byte for byte.
//!
//! Only the free text is replaced: the status indicator (`+OK`, `-ERR`), the reply code
//! (`250`), the response code (`[AUTH]`), the enhanced status code (`2.1.0`) and any
//! domain the grammar puts first all still come from the machine, so a replaced text can
//! never make a reply invalid. A text may name a few values of the session with
//! placeholders such as `{user}`; which ones depends on the reply (see each field of
//! [`crate::proto::pop3::Pop3Replies`] and [`crate::proto::smtp::SmtpReplies`]).

use std::fmt;

/// The longest reply text accepted, before placeholders are filled in. Whole reply lines
/// stay well under the 512 octets of RFC 2449 section 4 and RFC 5321 section 4.5.3.1.5.
pub const MAX_REPLY_TEXT: usize = 200;

/// Why a reply text cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTextError {
    /// A character that is not printable US-ASCII (RFC 5321 section 4.2's textstring;
    /// POP3 replies are ASCII too): a line end would split the reply.
    Character {
        /// Which reply, as its key in the scenario file (`pop3.user`).
        reply: &'static str,
        /// The character found.
        found: char,
    },
    /// Longer than [`MAX_REPLY_TEXT`].
    TooLong {
        /// Which reply.
        reply: &'static str,
        /// Its length in octets.
        len: usize,
    },
    /// A `{` that does not start a placeholder this reply knows.
    Placeholder {
        /// Which reply.
        reply: &'static str,
        /// What follows the `{`, up to the next `}` (or to the end).
        name: String,
        /// The placeholders this reply knows.
        allowed: &'static [&'static str],
    },
}

impl fmt::Display for ReplyTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyTextError::Character { reply, found } => write!(
                f,
                "the reply text {reply} holds {found:?}: only printable ASCII and spaces \
                 are allowed (a line end would split the reply)"
            ),
            ReplyTextError::TooLong { reply, len } => write!(
                f,
                "the reply text {reply} is {len} octets long: at most {MAX_REPLY_TEXT} are \
                 allowed"
            ),
            ReplyTextError::Placeholder {
                reply,
                name,
                allowed: [],
            } => write!(
                f,
                "the reply text {reply} has the placeholder {{{name}}}, but this reply takes \
                 none: remove the braces"
            ),
            ReplyTextError::Placeholder {
                reply,
                name,
                allowed,
            } => {
                let names: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
                write!(
                    f,
                    "the reply text {reply} has the placeholder {{{name}}}, which it does not \
                     know: use {}",
                    names.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for ReplyTextError {}

/// Checks a reply text: printable ASCII, not too long, placeholders among `allowed`.
pub fn check(
    reply: &'static str,
    text: &str,
    allowed: &'static [&'static str],
) -> Result<(), ReplyTextError> {
    if let Some(found) = text.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(ReplyTextError::Character { reply, found });
    }
    if text.len() > MAX_REPLY_TEXT {
        return Err(ReplyTextError::TooLong {
            reply,
            len: text.len(),
        });
    }
    let mut rest = text;
    while let Some(at) = rest.find('{') {
        let after = rest.get(at + 1..).unwrap_or_default();
        let (name, next) = match after.find('}') {
            Some(end) => (
                after.get(..end).unwrap_or_default(),
                after.get(end + 1..).unwrap_or_default(),
            ),
            None => (after, ""),
        };
        if !allowed.contains(&name) || !after.contains('}') {
            return Err(ReplyTextError::Placeholder {
                reply,
                name: name.to_string(),
                allowed,
            });
        }
        rest = next;
    }
    Ok(())
}

/// The text with every `{name}` of `values` filled in. Values are inserted as they are and
/// never scanned again, so a user name holding `{msg}` stays as typed. Control characters
/// in a value become `?` (a value from the client can never end the line).
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        let filled = after.find('}').and_then(|end| {
            let name = after.get(..end)?;
            let (_, value) = values.iter().find(|(n, _)| *n == name)?;
            Some((value, after.get(end + 1..).unwrap_or_default()))
        });
        match filled {
            Some((value, next)) => {
                out.extend(value.chars().map(|c| if c.is_control() { '?' } else { c }));
                rest = next;
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once() {
        assert_eq!(
            render("Hello {user}- Send PASS", &[("user", "Dakshit")]),
            "Hello Dakshit- Send PASS"
        );
        // A value is not scanned again; an unknown name is left as written.
        assert_eq!(
            render("{user} {msg} {other}", &[("user", "{msg}"), ("msg", "2")]),
            "{msg} 2 {other}"
        );
        assert_eq!(
            render("a\r\nb {user}", &[("user", "x\r\ny")]),
            "a\r\nb x??y"
        );
    }

    #[test]
    fn bad_texts_say_what_is_wrong() {
        assert_eq!(check("pop3.user", "Hello {user}", &["user"]), Ok(()));
        assert_eq!(check("pop3.user", "", &["user"]), Ok(()));
        let e = check("pop3.user", "a\r\nb", &["user"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the reply text pop3.user holds '\\r': only printable ASCII and spaces are \
             allowed (a line end would split the reply)"
        );
        let e = check("pop3.dele", "{user} deleted", &["msg"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the reply text pop3.dele has the placeholder {user}, which it does not know: \
             use {msg}"
        );
        let e = check("pop3.quit", "bye {", &[]).unwrap_err();
        assert!(e.to_string().contains("takes none"), "{e}");
        let e = check("smtp.mail", "{address", &["address"]).unwrap_err();
        assert!(matches!(e, ReplyTextError::Placeholder { .. }), "{e}");
        let long = "x".repeat(MAX_REPLY_TEXT + 1);
        assert!(matches!(
            check("smtp.quit", &long, &[]),
            Err(ReplyTextError::TooLong { len: 201, .. })
        ));
        assert!(matches!(
            check("smtp.quit", "goodbye\u{2026}", &[]),
            Err(ReplyTextError::Character {
                found: '\u{2026}',
                ..
            })
        ));
    }
}
