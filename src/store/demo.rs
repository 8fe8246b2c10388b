//! The demo data directory that `mailwire serve` creates on first run.
//!
//! Users and passwords:
//! - `mrose` / `tanstaaf`, RFC 1939's example user: 2 messages of exactly 120 and 200
//!   octets, so `STAT` answers `+OK 2 320` as in the RFC's example session;
//! - `alice` / `wonderland`: 3 messages, one with body lines starting with `.` (to show
//!   byte-stuffing in RETR and TOP);
//! - `bob` / `builder`: an empty mailbox;
//! - `student` / `student`: 1 welcome message.
//!
//! The messages carry fixed dates and ids, so every demo run shows the same bytes.

use std::path::{Path, PathBuf};

use super::{Store, StoreError, USERS_FILE};

/// The demo users and their passwords.
pub const DEMO_USERS: [(&str, &str); 4] = [
    ("mrose", "tanstaaf"),
    ("alice", "wonderland"),
    ("bob", "builder"),
    ("student", "student"),
];

/// The default data directory: `<platform data dir>/mailwire/data` (for example
/// `~/.local/share/mailwire/data` on Linux); `None` if no home directory is known.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "mailwire").map(|dirs| dirs.data_dir().join("data"))
}

/// Creates the demo data directory at `data`, or opens it if `data/users.txt` already
/// exists (an existing data directory is never changed).
///
/// If writing a message fails, the error is returned and `users.txt` already exists: the
/// next call opens the partial directory as it is (delete the folder to start over).
pub fn create_demo(data: &Path) -> Result<Store, StoreError> {
    if data.join(USERS_FILE).exists() {
        return Store::open(data);
    }
    let users: Vec<(String, String)> = DEMO_USERS
        .iter()
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .collect();
    let store = Store::create(data, &users)?;
    for (user, content) in demo_messages() {
        store.deliver(&[user.to_string()], &content)?;
    }
    Ok(store)
}

/// The demo messages in delivery order, with their recipient.
fn demo_messages() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        // RFC 1939's example: "+OK 2 messages (320 octets)", sizes 120 and 200.
        (
            "mrose",
            message(
                &[
                    ("From", "bob@mw.test"),
                    ("To", "mrose@mw.test"),
                    ("Subject", "Lunch"),
                    ("Date", "1 Jan 2026 09:00 +0000"),
                    ("Message-ID", "<1@mw.test>"),
                ],
                &["At one?"],
            ),
        ),
        (
            "mrose",
            message(
                &[
                    ("From", "alice@mw.test"),
                    ("To", "mrose@mw.test"),
                    ("Subject", "Sizes"),
                    ("Date", "Thu, 1 Jan 2026 09:05:00 +0000"),
                    ("Message-ID", "<2@mw.test>"),
                ],
                &[
                    "Messages 1 and 2 are 120 and 200 octets long,",
                    "as in the example of RFC 1939.",
                ],
            ),
        ),
        (
            "alice",
            message(
                &[
                    ("From", "Bob <bob@mw.test>"),
                    ("To", "Alice <alice@mw.test>"),
                    ("Subject", "Tea party"),
                    ("Date", "Thu, 1 Jan 2026 10:00:00 +0000"),
                    ("Message-ID", "<tea.1@mw.test>"),
                ],
                &[
                    "Hi Alice,",
                    "",
                    "The Hatter asks if you can come to the tea party at four.",
                    "",
                    "Bob",
                ],
            ),
        ),
        (
            "alice",
            message(
                &[
                    ("From", "Marshall Rose <mrose@mw.test>"),
                    ("To", "Alice <alice@mw.test>"),
                    ("Subject", "Lines that start with a dot"),
                    ("Date", "Thu, 1 Jan 2026 10:30:00 +0000"),
                    ("Message-ID", "<dots.2@mw.test>"),
                ],
                &[
                    "POP3 ends a message with a line holding only a dot, so a line of the",
                    "message that starts with a dot is sent with one more dot in front:",
                    ".profile and .bashrc are hidden files.",
                    ".",
                    "The two lines above go over the wire as \"..profile ...\" and \"..\";",
                    "the client removes the extra dot again. Compare RETR with the file.",
                ],
            ),
        ),
        (
            "alice",
            message(
                &[
                    ("From", "Student <student@mw.test>"),
                    ("To", "Alice <alice@mw.test>"),
                    ("Subject", "Re: Tea party"),
                    ("Date", "Thu, 1 Jan 2026 11:15:00 +0000"),
                    ("Message-ID", "<re.3@mw.test>"),
                    ("In-Reply-To", "<tea.1@mw.test>"),
                ],
                &["Count me in. I will bring the jam tarts."],
            ),
        ),
        (
            "student",
            message(
                &[
                    ("From", "mailwire <postmaster@mw.test>"),
                    ("To", "Student <student@mw.test>"),
                    ("Subject", "Welcome to mailwire"),
                    ("Date", "Thu, 1 Jan 2026 08:00:00 +0000"),
                    ("Message-ID", "<welcome@mw.test>"),
                ],
                &[
                    "Welcome!",
                    "",
                    "Log in to the POP3 server with USER student and PASS student, then",
                    "try STAT, LIST, UIDL, RETR 1, TOP 1 0, DELE 1 and QUIT.",
                    "Send mail to alice, bob or mrose through the SMTP server with",
                    "HELO, MAIL FROM, RCPT TO, DATA and QUIT.",
                ],
            ),
        ),
    ]
}

/// A message with the given header fields, an empty line and the body lines, CRLF ends.
fn message(headers: &[(&str, &str)], body: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    for line in body {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::testdir::TempDir;
    use super::*;

    #[test]
    fn demo_has_the_rfc_1939_sizes() {
        let dir = TempDir::new();
        let data = dir.path().join("data");
        let store = create_demo(&data).unwrap();
        assert_eq!(
            store.users().collect::<Vec<_>>(),
            ["alice", "bob", "mrose", "student"]
        );
        assert_eq!(store.password("mrose"), Some("tanstaaf"));
        assert_eq!(store.password("student"), Some("student"));

        let mrose = store.lock_maildrop("mrose").unwrap();
        let sizes: Vec<u64> = mrose.messages().iter().map(|m| m.size).collect();
        assert_eq!(sizes, [120, 200]);
        assert_eq!(mrose.read(0).unwrap().len(), 120);
        assert_eq!(mrose.read(1).unwrap().len(), 200);
        assert!(mrose.read(0).unwrap().starts_with(b"From: bob@mw.test\r\n"));

        let alice = store.lock_maildrop("alice").unwrap();
        assert_eq!(alice.messages().len(), 3);
        let second = alice.read(1).unwrap();
        assert!(
            second.windows(3).any(|w| w == b"\n.p"),
            "a body line starting with a dot"
        );
        let third = String::from_utf8(alice.read(2).unwrap()).unwrap();
        assert!(
            third.contains("Subject: Re: Tea party\r\n"),
            "delivery order kept"
        );
        assert!(store.lock_maildrop("bob").unwrap().messages().is_empty());
        assert_eq!(store.lock_maildrop("student").unwrap().messages().len(), 1);
    }

    #[test]
    fn demo_messages_are_well_formed() {
        for (user, content) in demo_messages() {
            let text = String::from_utf8(content).unwrap();
            assert!(text.contains("\r\n\r\n"), "an empty line ends the header");
            assert!(text.contains(&format!("{user}@mw.test")), "{user}: {text}");
            assert!(
                !text.replace("\r\n", "").contains('\n'),
                "only CRLF line ends"
            );
            assert!(text.ends_with("\r\n"));
            for line in text.split("\r\n") {
                assert!(line.len() <= 78, "line too long: {line}");
            }
        }
    }

    #[test]
    fn existing_data_dir_is_opened_not_changed() {
        let dir = TempDir::new();
        std::fs::write(dir.path().join("users.txt"), "only me\n").unwrap();
        let store = create_demo(dir.path()).unwrap();
        assert_eq!(store.users().collect::<Vec<_>>(), ["only"]);
        assert!(!dir.path().join("mrose").exists());
    }

    #[test]
    fn default_data_dir_ends_with_data() {
        if let Some(path) = default_data_dir() {
            assert!(path.ends_with("data"));
            assert!(path.to_string_lossy().to_lowercase().contains("mailwire"));
        }
    }
}
