//! Import of the assignment's layout: `User.txt` plus `<user>/MyMailBox.txt`.
//!
//! The assignment keeps users in `User.txt` (`username password` per line) and each user's
//! mail in `<username>/MyMailBox.txt`, one mail after another, each ending with a line that
//! is exactly `.`:
//!
//! ```text
//! From: <username>@<domain_name>
//! To: <username>@<domain_name>
//! Subject: <subject string, max 100 characters>
//! Received: <time at which received, in date : hour : minute>
//! <Message body – one or more lines>
//! .
//! ```
//!
//! Each mail becomes one Maildir message: the header lines as they are, an empty line
//! (inserted when the body does not start with one), the body, all with CRLF line ends,
//! written through [`Store::deliver`] so names are unique and sort in file order. Importing
//! the same tree twice delivers its mails twice.

use std::path::{Path, PathBuf};

use super::{Store, StoreError, USERS_FILE, users};

/// What [`import_assignment`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Users listed in the imported `User.txt`.
    pub users: usize,
    /// Messages delivered.
    pub messages: usize,
    /// Things imported anyway but worth a look, each starting with `file:line:`.
    pub warnings: Vec<String>,
}

/// The header names of the assignment's mail format, in order.
const ASSIGNMENT_HEADERS: [&str; 4] = ["From", "To", "Subject", "Received"];

/// Imports the assignment's tree at `src` into the data directory `data`.
///
/// Reads `src/User.txt` (any capitalisation, e.g. `user.txt`) and, for each user listed,
/// `src/<user>/MyMailBox.txt` (a missing one is an empty mailbox). Users are added to
/// `data/users.txt`, created if missing; users it already lists keep their password (a
/// different one in `User.txt` is reported as a warning). A mail missing its final `.` line
/// at the end of the file is imported anyway, with a warning.
pub fn import_assignment(src: &Path, data: &Path) -> Result<ImportReport, StoreError> {
    if !src.is_dir() {
        return Err(StoreError::Import {
            path: src.to_path_buf(),
            line: 0,
            problem: "there is no such folder; give the folder that holds User.txt and a \
                      folder per user"
                .to_string(),
        });
    }
    let Some(users_path) = find_file(src, "User.txt")? else {
        return Err(StoreError::Import {
            path: src.join("User.txt"),
            line: 0,
            problem: "there is no User.txt in this folder; give the folder that holds \
                      User.txt and one folder per user"
                .to_string(),
        });
    };
    let bytes =
        std::fs::read(&users_path).map_err(StoreError::io(&users_path, "read the users file"))?;
    let listed = users::parse_users(&bytes, &users_path)?;

    let mut report = ImportReport {
        users: listed.len(),
        ..ImportReport::default()
    };
    let existing_path = data.join(USERS_FILE);
    if existing_path.exists() {
        let existing = users::read_users_file(&existing_path)?;
        for (user, password, line) in &listed {
            if existing.get(user).is_some_and(|old| old != password) {
                report.warnings.push(format!(
                    "{}:{line}: user `{user}` already exists in {} with another password; \
                     the existing password is kept",
                    users_path.display(),
                    existing_path.display()
                ));
            }
        }
    }
    let pairs: Vec<(String, String)> = listed
        .iter()
        .map(|(u, p, _)| (u.clone(), p.clone()))
        .collect();
    let store = Store::create(data, &pairs)?;

    for (user, _, _) in &listed {
        // `user` passed is_plain_username in parse_users, so this stays inside `src`.
        let Some(mailbox) = find_file(&src.join(user), "MyMailBox.txt")? else {
            continue;
        };
        let bytes =
            std::fs::read(&mailbox).map_err(StoreError::io(&mailbox, "read the mailbox"))?;
        for mail in split_mailbox(&bytes, &mailbox, &mut report.warnings) {
            store.deliver(std::slice::from_ref(user), &mail)?;
            report.messages += 1;
        }
    }
    Ok(report)
}

/// `dir/name` if it is a file, else a file in `dir` whose name matches `name` ignoring ASCII
/// case; `None` if there is none (or `dir` does not exist).
fn find_file(dir: &Path, name: &str) -> Result<Option<PathBuf>, StoreError> {
    let exact = dir.join(name);
    if exact.is_file() {
        return Ok(Some(exact));
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(dir, "list the folder")(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StoreError::io(dir, "list the folder"))?;
        let path = entry.path();
        if entry.file_name().eq_ignore_ascii_case(name) && path.is_file() {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Cuts a `MyMailBox.txt` into messages (CRLF line ends). Problems become warnings naming
/// `path` and the line.
fn split_mailbox(bytes: &[u8], path: &Path, warnings: &mut Vec<String>) -> Vec<Vec<u8>> {
    let mut lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop(); // The file's final line end.
    }
    let mut mails = Vec::new();
    // (line number of the mail's first line, its lines)
    let mut current: Option<(usize, Vec<&[u8]>)> = None;
    for (i, line) in lines.into_iter().enumerate() {
        let line_no = i + 1;
        match current.as_mut() {
            None if line.trim_ascii().is_empty() => {}
            None if line == b"." => warnings.push(format!(
                "{}:{line_no}: a line \".\" with no mail before it; ignored",
                path.display()
            )),
            None => current = Some((line_no, vec![line])),
            Some(_) if line == b"." => {
                if let Some((start, mail)) = current.take() {
                    mails.push(to_message(&mail, start, path, warnings));
                }
            }
            Some((_, mail)) => mail.push(line),
        }
    }
    if let Some((start, mail)) = current {
        warnings.push(format!(
            "{}:{start}: the mail starting on this line does not end with a line \".\"; \
             imported anyway",
            path.display()
        ));
        mails.push(to_message(&mail, start, path, warnings));
    }
    mails
}

/// One mail's lines (without its final `.`) as a message: header lines, an empty line,
/// body; CRLF line ends.
fn to_message(lines: &[&[u8]], start: usize, path: &Path, warnings: &mut Vec<String>) -> Vec<u8> {
    let header_count = lines
        .iter()
        .take(ASSIGNMENT_HEADERS.len())
        .take_while(|l| header_name(l).is_some())
        .count();
    let names_match = header_count == ASSIGNMENT_HEADERS.len()
        && lines.iter().zip(ASSIGNMENT_HEADERS).all(|(l, want)| {
            header_name(l).is_some_and(|n| n.eq_ignore_ascii_case(want.as_bytes()))
        });
    if !names_match {
        warnings.push(format!(
            "{}:{start}: the mail starting on this line does not begin with the lines From:, \
             To:, Subject:, Received:; imported as it is",
            path.display()
        ));
    }
    let (headers, body) = lines.split_at(header_count.min(lines.len()));
    let mut out = Vec::new();
    for line in headers {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    if !body.first().is_some_and(|l| l.is_empty()) {
        out.extend_from_slice(b"\r\n");
    }
    for line in body {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The field name of a header line (`Name: value`), if the line is one.
fn header_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon)?;
    (!name.is_empty() && name.iter().all(|b| (0x21..=0x7E).contains(b))).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::super::testdir::TempDir;
    use super::*;

    fn messages(store: &Store, user: &str) -> Vec<String> {
        let drop = store.lock_maildrop(user).unwrap();
        (0..drop.messages().len())
            .map(|i| String::from_utf8(drop.read(i).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn a_missing_folder_is_named() {
        let dir = TempDir::new();
        let missing = dir.path().join("nosuch");
        let err = import_assignment(&missing, &dir.path().join("data")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Cannot import {}: there is no such folder; give the folder that holds User.txt \
                 and a folder per user.",
                missing.display()
            )
        );
    }

    #[test]
    fn imports_a_sample_assignment_tree() {
        let dir = TempDir::new();
        let src = dir.path().join("assignment");
        let data = dir.path().join("data");
        std::fs::create_dir_all(src.join("alice")).unwrap();
        std::fs::create_dir_all(src.join("carol")).unwrap();
        std::fs::write(
            src.join("user.txt"),
            "alice wonderland\r\nbob builder\r\ncarol c4rol\r\n",
        )
        .unwrap();
        std::fs::write(
            src.join("alice/MyMailBox.txt"),
            "From: bob@iit.edu\r\n\
             To: alice@iit.edu\r\n\
             Subject: first\r\n\
             Received: 12/01/2026 : 10 : 05\r\n\
             Hello Alice,\r\n\
             .signature files start with a dot\r\n\
             ..\r\n\
             .\r\n\
             \r\n\
             From: carol@iit.edu\n\
             To: alice@iit.edu\n\
             Subject: second\n\
             Received: 13/01/2026 : 11 : 30\n\
             \n\
             Body after a blank line\n\
             .\n\
             From: bob@iit.edu\n\
             To: alice@iit.edu\n\
             Subject: unterminated\n\
             Received: 14/01/2026 : 09 : 00\n\
             no final dot",
        )
        .unwrap();
        // Different capitalisation of the mailbox file; a mail without the Received line.
        std::fs::write(
            src.join("carol/mymailbox.txt"),
            "From: alice@iit.edu\nTo: carol@iit.edu\nSubject: hi\nshort\n.\n",
        )
        .unwrap();
        // An existing data dir: its users are kept, with their passwords.
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("users.txt"), "bob oldpassword\ndave d\n").unwrap();

        let report = import_assignment(&src, &data).unwrap();
        assert_eq!(report.users, 3);
        assert_eq!(report.messages, 4);
        let alice_box = src.join("alice/MyMailBox.txt");
        let carol_box = src.join("carol/mymailbox.txt");
        assert_eq!(
            report.warnings,
            [
                format!(
                    "{}:2: user `bob` already exists in {} with another password; the existing \
                     password is kept",
                    src.join("user.txt").display(),
                    data.join("users.txt").display()
                ),
                format!(
                    "{}:17: the mail starting on this line does not end with a line \".\"; \
                     imported anyway",
                    alice_box.display()
                ),
                format!(
                    "{}:1: the mail starting on this line does not begin with the lines From:, \
                     To:, Subject:, Received:; imported as it is",
                    carol_box.display()
                ),
            ]
        );

        let store = Store::open(&data).unwrap();
        assert_eq!(
            store.users().collect::<Vec<_>>(),
            ["alice", "bob", "carol", "dave"]
        );
        assert_eq!(store.password("bob"), Some("oldpassword"));
        assert_eq!(store.password("carol"), Some("c4rol"));
        assert_eq!(
            messages(&store, "alice"),
            [
                "From: bob@iit.edu\r\nTo: alice@iit.edu\r\nSubject: first\r\n\
                 Received: 12/01/2026 : 10 : 05\r\n\r\nHello Alice,\r\n\
                 .signature files start with a dot\r\n..\r\n",
                "From: carol@iit.edu\r\nTo: alice@iit.edu\r\nSubject: second\r\n\
                 Received: 13/01/2026 : 11 : 30\r\n\r\nBody after a blank line\r\n",
                "From: bob@iit.edu\r\nTo: alice@iit.edu\r\nSubject: unterminated\r\n\
                 Received: 14/01/2026 : 09 : 00\r\n\r\nno final dot\r\n",
            ]
        );
        assert!(messages(&store, "bob").is_empty());
        assert_eq!(
            messages(&store, "carol"),
            ["From: alice@iit.edu\r\nTo: carol@iit.edu\r\nSubject: hi\r\n\r\nshort\r\n"]
        );
        let drop = store.lock_maildrop("alice").unwrap();
        assert!(drop.messages().iter().all(|m| m.is_new));
        assert_eq!(drop.messages()[0].size, messages_len(&drop, 0));
    }

    fn messages_len(drop: &super::super::Maildrop, i: usize) -> u64 {
        drop.read(i).unwrap().len() as u64
    }

    #[test]
    fn missing_user_txt_is_an_error_naming_the_folder() {
        let dir = TempDir::new();
        let err = import_assignment(dir.path(), &dir.path().join("data")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Cannot import {}: there is no User.txt in this folder; give the folder that \
                 holds User.txt and one folder per user.",
                dir.path().join("User.txt").display()
            )
        );
        assert!(!dir.path().join("data").exists());
    }

    #[test]
    fn bad_user_txt_line_is_reported_with_its_line() {
        let dir = TempDir::new();
        std::fs::write(dir.path().join("User.txt"), "alice pw\n../etc pw\n").unwrap();
        let err = import_assignment(dir.path(), &dir.path().join("data")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "Line 2 of {}",
                dir.path().join("User.txt").display()
            )),
            "{msg}"
        );
        assert!(
            !dir.path().join("data").exists(),
            "nothing written on a bad User.txt"
        );
    }

    #[test]
    fn stray_dot_and_blank_lines_between_mails() {
        let mut warnings = Vec::new();
        let path = Path::new("box.txt");
        let mails = split_mailbox(
            b".\n\n  \nA: 1\nB: 2\nC: 3\nD: 4\nx\n.\n\n",
            path,
            &mut warnings,
        );
        assert_eq!(
            mails,
            [b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\nx\r\n".to_vec()]
        );
        assert_eq!(
            warnings,
            [
                "box.txt:1: a line \".\" with no mail before it; ignored",
                "box.txt:4: the mail starting on this line does not begin with the lines From:, \
                 To:, Subject:, Received:; imported as it is",
            ]
        );
        assert!(split_mailbox(b"", path, &mut Vec::new()).is_empty());
    }
}
