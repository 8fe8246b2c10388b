//! Builds a scenario's fixture into a fresh data directory: users, and mail with fixed
//! dates and fixed Maildir names, so sizes and UIDLs are the same on every run.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::format::{Fixture, FixtureMail, FixtureUser, default_mail_date};
use crate::store::{Store, StoreError};

/// Why a fixture could not be built.
#[derive(Debug)]
pub enum FixtureError {
    /// The data directory could not be created or opened.
    Store(StoreError),
    /// A mail's `size` does not fit in memory on this computer.
    SizeTooLarge { size: u64 },
    /// A mail's headers alone are longer than its `size`.
    SizeTooSmall {
        /// The mail's subject, to find it in the file.
        subject: String,
        /// The user whose mail it is.
        user: String,
        /// Octets of the headers (and body) before filling.
        octets: usize,
        /// The size asked for.
        size: u64,
    },
    /// A generated mail lacks `from` or `subject`.
    MissingField {
        /// The user whose mail it is.
        user: String,
        /// Which mail of the user (1-based).
        mail: usize,
        /// The field missing.
        field: &'static str,
    },
    /// A `raw` mail also sets a field of a generated one.
    RawWithField {
        /// The user whose mail it is.
        user: String,
        /// Which mail of the user (1-based).
        mail: usize,
        /// The field that does not apply.
        field: &'static str,
    },
    /// A `raw` mail's size differs from its `size`.
    RawSize {
        /// The user whose mail it is.
        user: String,
        /// Which mail of the user (1-based).
        mail: usize,
        /// Octets of the raw message with CRLF line ends.
        octets: usize,
        /// The size given.
        size: u64,
    },
    /// A message file could not be written into the Maildir's `tmp/`.
    Write { path: PathBuf, source: io::Error },
    /// A written message could not be moved into `new/` or `cur/`.
    Move { path: PathBuf, source: io::Error },
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FixtureError::Store(e) => e.fmt(f),
            FixtureError::SizeTooLarge { size } => write!(f, "size {size} is too large"),
            FixtureError::SizeTooSmall {
                subject,
                user,
                octets,
                size,
            } => write!(
                f,
                "mail \"{subject}\" of {user} is {octets} octets with its headers, more than \
                 its size {size}"
            ),
            FixtureError::MissingField { user, mail, field } => write!(
                f,
                "mail {mail} of {user} has no {field}: a mail needs from and subject, or \
                 raw (the whole message)"
            ),
            FixtureError::RawWithField { user, mail, field } => write!(
                f,
                "mail {mail} of {user} has raw and {field}: a raw mail is written as it is, \
                 so remove {field} (or write it into the raw text)"
            ),
            FixtureError::RawSize {
                user,
                mail,
                octets,
                size,
            } => write!(
                f,
                "raw mail {mail} of {user} is {octets} octets with CRLF line ends, not its \
                 size {size}: change the text or the size"
            ),
            FixtureError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            FixtureError::Move { path, source } => {
                write!(f, "cannot move {} into place: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for FixtureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FixtureError::Store(e) => Some(e),
            FixtureError::Write { source, .. } | FixtureError::Move { source, .. } => Some(source),
            FixtureError::SizeTooLarge { .. }
            | FixtureError::SizeTooSmall { .. }
            | FixtureError::MissingField { .. }
            | FixtureError::RawWithField { .. }
            | FixtureError::RawSize { .. } => None,
        }
    }
}

impl From<StoreError> for FixtureError {
    fn from(e: StoreError) -> Self {
        FixtureError::Store(e)
    }
}

/// Writes the fixture into `dir` (which should be empty) and opens it as a store.
pub fn build(fixture: &Fixture, dir: &Path) -> Result<Store, FixtureError> {
    let users: Vec<(String, String)> = fixture
        .users
        .iter()
        .map(|u| (u.name.clone(), u.password.clone()))
        .collect();
    Store::create(dir, &users)?;
    let mut serial = 0u64;
    for user in &fixture.users {
        for (index, mail) in user.mail.iter().enumerate() {
            serial += 1;
            let message = message_bytes(fixture, user, index, mail)?;
            write_mail(dir, &user.name, serial, mail.new, &message)?;
        }
    }
    Ok(Store::open(dir)?)
}

/// The message of a fixture mail (`index`: its place among the user's mails, from 0), with
/// CRLF line ends: a `raw` one as written, a generated one with From, To, Subject and Date
/// headers and filled to `size` if given.
pub fn message_bytes(
    fixture: &Fixture,
    user: &FixtureUser,
    index: usize,
    mail: &FixtureMail,
) -> Result<Vec<u8>, FixtureError> {
    let number = index + 1;
    if let Some(raw) = &mail.raw {
        return raw_message(user, number, mail, raw);
    }
    let missing = |field| FixtureError::MissingField {
        user: user.name.clone(),
        mail: number,
        field,
    };
    let from = mail.from.as_deref().ok_or_else(|| missing("from"))?;
    let subject = mail.subject.as_deref().ok_or_else(|| missing("subject"))?;
    let to = mail
        .to
        .clone()
        .unwrap_or_else(|| format!("{}@{}", user.name, fixture.hostname));
    let date = mail.date.clone().unwrap_or_else(default_mail_date);
    let headers = format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n");
    let mut message = headers.into_bytes();
    if let Some(body) = &mail.body {
        for line in body.lines() {
            message.extend_from_slice(line.as_bytes());
            message.extend_from_slice(b"\r\n");
        }
    }
    if let Some(size) = mail.size {
        let target = usize::try_from(size).map_err(|_| FixtureError::SizeTooLarge { size })?;
        if message.len() > target {
            return Err(FixtureError::SizeTooSmall {
                subject: subject.to_string(),
                user: user.name.clone(),
                octets: message.len(),
                size,
            });
        }
        fill(&mut message, target);
    }
    Ok(message)
}

/// A raw mail as it is, every line end made CRLF (and one added after a last line without);
/// checked against its `size`, and against fields that do not apply to it.
fn raw_message(
    user: &FixtureUser,
    number: usize,
    mail: &FixtureMail,
    raw: &str,
) -> Result<Vec<u8>, FixtureError> {
    let fields = [
        ("from", mail.from.is_some()),
        ("to", mail.to.is_some()),
        ("subject", mail.subject.is_some()),
        ("date", mail.date.is_some()),
        ("body", mail.body.is_some()),
    ];
    if let Some((field, _)) = fields.iter().find(|(_, set)| *set) {
        return Err(FixtureError::RawWithField {
            user: user.name.clone(),
            mail: number,
            field,
        });
    }
    let mut message = Vec::with_capacity(raw.len() + raw.len() / 32);
    for line in raw.split_inclusive('\n') {
        let text = line.strip_suffix('\n').unwrap_or(line);
        let text = text.strip_suffix('\r').unwrap_or(text);
        message.extend_from_slice(text.as_bytes());
        message.extend_from_slice(b"\r\n");
    }
    if let Some(size) = mail.size
        && u64::try_from(message.len()).ok() != Some(size)
    {
        return Err(FixtureError::RawSize {
            user: user.name.clone(),
            mail: number,
            octets: message.len(),
            size,
        });
    }
    Ok(message)
}

/// Appends filler lines until `message` (which ends with CRLF) is exactly `target` octets.
fn fill(message: &mut Vec<u8>, target: usize) {
    const TEXT: &[u8] =
        b"The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. ";
    while message.len() < target {
        let remaining = target - message.len();
        if remaining == 1 {
            // One octet short: lengthen the last line by a space.
            let at = message.len().saturating_sub(2);
            message.insert(at, b' ');
            break;
        }
        let mut len = (remaining - 2).min(70);
        if remaining - 2 - len == 1 {
            len -= 1;
        }
        message.extend(TEXT.iter().cycle().take(len));
        message.extend_from_slice(b"\r\n");
    }
}

/// Writes one message with a fixed Maildir name (its UIDL), into `new/` or `cur/`.
fn write_mail(
    dir: &Path,
    user: &str,
    serial: u64,
    new: bool,
    message: &[u8],
) -> Result<(), FixtureError> {
    let maildir = dir.join(user).join("Maildir");
    let len = message.len();
    let base = format!(
        "{}.M{serial}P0Q0.fixture,S={len},W={len}",
        1_700_000_000 + serial
    );
    let tmp = maildir.join("tmp").join(&base);
    let dest = if new {
        maildir.join("new").join(&base)
    } else {
        maildir.join("cur").join(format!("{base}:2,S"))
    };
    std::fs::write(&tmp, message).map_err(|source| FixtureError::Write {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &dest).map_err(|source| FixtureError::Move { path: dest, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_reaches_every_size_exactly() {
        for target in 40..400 {
            let mut m = b"Subject: x\r\n\r\n".to_vec();
            if m.len() > target {
                continue;
            }
            fill(&mut m, target);
            assert_eq!(m.len(), target);
            assert!(m.ends_with(b"\r\n") || target == 14);
        }
    }

    #[test]
    fn rfc1939_fixture_has_the_rfc_sizes() {
        let s = crate::scenario::format::find("rfc1939").unwrap();
        let user = &s.fixture.users[0];
        let sizes: Vec<usize> = user
            .mail
            .iter()
            .enumerate()
            .map(|(i, m)| message_bytes(&s.fixture, user, i, m).unwrap().len())
            .collect();
        assert_eq!(sizes, vec![120, 200]);
    }

    fn sizes(name: &str) -> Vec<usize> {
        let s = crate::scenario::format::find(name).unwrap();
        let user = &s.fixture.users[0];
        user.mail
            .iter()
            .enumerate()
            .map(|(i, m)| message_bytes(&s.fixture, user, i, m).unwrap().len())
            .collect()
    }

    #[test]
    fn replayed_sessions_have_their_sizes() {
        // The class project's STAT answer "+OK 2 336" (RFC 1939 section 5), and the PuTTY
        // log's LIST "1 2859", "2 2859".
        assert_eq!(sizes("class-project"), vec![314, 22]);
        assert_eq!(sizes("class-project").iter().sum::<usize>(), 336);
        assert_eq!(sizes("putty"), vec![2859, 2859]);
    }

    #[test]
    fn a_raw_mail_is_written_as_it_is_with_crlf() {
        let s = crate::scenario::format::find("rfc1939").unwrap();
        let user = &s.fixture.users[0];
        let mut mail = user.mail[0].clone();
        mail.from = None;
        mail.subject = None;
        mail.to = None;
        mail.date = None;
        mail.body = None;
        mail.size = None;
        mail.raw = Some("Subject: x\n\nline\r\nlast".into());
        let bytes = message_bytes(&s.fixture, user, 0, &mail).unwrap();
        assert_eq!(bytes, b"Subject: x\r\n\r\nline\r\nlast\r\n");
        mail.size = Some(5);
        let e = message_bytes(&s.fixture, user, 0, &mail).unwrap_err();
        assert_eq!(
            e.to_string(),
            "raw mail 1 of mrose is 26 octets with CRLF line ends, not its size 5: change \
             the text or the size"
        );
        mail.size = None;
        mail.subject = Some("x".into());
        let e = message_bytes(&s.fixture, user, 0, &mail).unwrap_err();
        assert!(
            matches!(
                e,
                FixtureError::RawWithField {
                    field: "subject",
                    ..
                }
            ),
            "{e}"
        );
        mail.raw = None;
        mail.subject = None;
        mail.from = Some("a@b".into());
        let e = message_bytes(&s.fixture, user, 0, &mail).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mail 1 of mrose has no subject: a mail needs from and subject, or raw (the \
             whole message)"
        );
    }

    #[test]
    fn putty_mail_is_multipart_mime() {
        // RFC 2045 section 4 and RFC 2046 section 5.1: MIME-Version, a multipart type with a
        // boundary, each part opened by "--boundary", the last closed by "--boundary--".
        let s = crate::scenario::format::find("putty").unwrap();
        let user = &s.fixture.users[0];
        for (i, mail) in user.mail.iter().enumerate() {
            let bytes = message_bytes(&s.fixture, user, i, mail).unwrap();
            let text = String::from_utf8(bytes).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.contains("\r\nMIME-Version: 1.0\r\n"));
            assert!(head.contains("Content-Type: multipart/alternative;\r\n\tboundary=\""));
            let boundary = head
                .split("boundary=\"")
                .nth(1)
                .and_then(|b| b.split('"').next())
                .unwrap();
            let open = format!("\r\n--{boundary}\r\n");
            // The close delimiter, then an empty epilogue line.
            let close = format!("\r\n--{boundary}--");
            assert_eq!(body.matches(&open).count(), 2, "two parts");
            assert!(body.trim_end_matches("\r\n").ends_with(&close), "closed");
            assert!(body.contains("Content-Type: text/plain;"));
            assert!(body.contains("Content-Type: text/html;"));
            assert!(body.contains("Content-Transfer-Encoding: quoted-printable"));
            // Quoted-printable lines stay within 76 characters (RFC 2045 section 6.7 (5)).
            let html = body.split(&open).nth(2).unwrap();
            assert!(html.split("\r\n").all(|l| l.len() <= 76), "{html}");
            assert!(text.is_ascii());
        }
    }

    #[test]
    fn size_smaller_than_the_headers_is_an_error() {
        let s = crate::scenario::format::find("rfc1939").unwrap();
        let mut mail = s.fixture.users[0].mail[0].clone();
        mail.size = Some(10);
        let e = message_bytes(&s.fixture, &s.fixture.users[0], 0, &mail).unwrap_err();
        assert!(
            matches!(e, FixtureError::SizeTooSmall { size: 10, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("more than its size 10"), "{e}");
    }

    #[test]
    fn errors_name_the_mail_or_the_file() {
        let os = || io::Error::other("disk full");
        let cases = [
            (
                FixtureError::SizeTooSmall {
                    subject: "Lunch".into(),
                    user: "mrose".into(),
                    octets: 80,
                    size: 10,
                },
                "mail \"Lunch\" of mrose is 80 octets with its headers, more than its size 10",
            ),
            (
                FixtureError::SizeTooLarge { size: u64::MAX },
                "size 18446744073709551615 is too large",
            ),
            (
                FixtureError::Write {
                    path: PathBuf::from("/d/tmp/1"),
                    source: os(),
                },
                "cannot write /d/tmp/1: disk full",
            ),
            (
                FixtureError::Move {
                    path: PathBuf::from("/d/new/1"),
                    source: os(),
                },
                "cannot move /d/new/1 into place: disk full",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
