//! Builds a scenario's fixture into a fresh data directory: users, and mail with fixed
//! dates and fixed Maildir names, so sizes and UIDLs are the same on every run.

use std::path::Path;

use super::format::{Fixture, FixtureMail, FixtureUser};
use crate::store::Store;

/// Writes the fixture into `dir` (which should be empty) and opens it as a store.
pub fn build(fixture: &Fixture, dir: &Path) -> Result<Store, String> {
    let users: Vec<(String, String)> = fixture
        .users
        .iter()
        .map(|u| (u.name.clone(), u.password.clone()))
        .collect();
    Store::create(dir, &users).map_err(|e| e.to_string())?;
    let mut serial = 0u64;
    for user in &fixture.users {
        for mail in &user.mail {
            serial += 1;
            let message = message_bytes(fixture, user, mail)?;
            write_mail(dir, &user.name, serial, mail.new, &message)?;
        }
    }
    Store::open(dir).map_err(|e| e.to_string())
}

/// The message of a fixture mail, with CRLF line ends, filled to `size` if given.
pub fn message_bytes(
    fixture: &Fixture,
    user: &FixtureUser,
    mail: &FixtureMail,
) -> Result<Vec<u8>, String> {
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
        let target = usize::try_from(size).map_err(|_| format!("size {size} is too large"))?;
        if message.len() > target {
            return Err(format!(
                "mail \"{}\" of {} is {} octets with its headers, more than its size {size}",
                mail.subject,
                user.name,
                message.len()
            ));
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
) -> Result<(), String> {
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
    std::fs::write(&tmp, message).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &dest)
        .map_err(|e| format!("cannot move {} into place: {e}", dest.display()))
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
        assert!(e.contains("more than its size 10"), "{e}");
    }
}
