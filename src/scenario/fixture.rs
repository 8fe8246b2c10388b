//! Builds a scenario's fixture into a fresh data directory: users, and mail with fixed
//! dates and fixed Maildir names, so sizes and UIDLs are the same on every run.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::format::{Fixture, FixtureMail, FixtureUser};
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
            FixtureError::SizeTooLarge { .. } | FixtureError::SizeTooSmall { .. } => None,
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
        for mail in &user.mail {
            serial += 1;
            let message = message_bytes(fixture, user, mail)?;
            write_mail(dir, &user.name, serial, mail.new, &message)?;
        }
    }
    Ok(Store::open(dir)?)
}

/// The message of a fixture mail, with CRLF line ends, filled to `size` if given.
pub fn message_bytes(
    fixture: &Fixture,
    user: &FixtureUser,
    mail: &FixtureMail,
) -> Result<Vec<u8>, FixtureError> {
    let to = mail
        .to
        .clone()
        .unwrap_or_else(|| format!("{}@{}", user.name, fixture.hostname));
    let headers = format!(
        "From: {}\r\nTo: {to}\r\nSubject: {}\r\nDate: {}\r\n\r\n",
        mail.from, mail.subject, mail.date,
    );
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
                subject: mail.subject.clone(),
                user: user.name.clone(),
                octets: message.len(),
                size,
            });
        }
        fill(&mut message, target);
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
            .map(|m| message_bytes(&s.fixture, user, m).unwrap().len())
            .collect();
        assert_eq!(sizes, vec![120, 200]);
    }

    #[test]
    fn size_smaller_than_the_headers_is_an_error() {
        let s = crate::scenario::format::find("rfc1939").unwrap();
        let mut mail = s.fixture.users[0].mail[0].clone();
        mail.size = Some(10);
        let e = message_bytes(&s.fixture, &s.fixture.users[0], &mail).unwrap_err();
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
