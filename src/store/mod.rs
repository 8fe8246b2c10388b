//! Users and Maildir mailboxes on disk.
//!
//! A data directory (`DATA`) holds:
//! - `DATA/users.txt`: one `username password` per line, like the assignment's `User.txt`;
//!   blank lines and lines starting with `#` are ignored;
//! - per user a Maildir, `DATA/<user>/Maildir/{tmp,new,cur}`, that other mail programs
//!   (Dovecot, mutt, fetchmail's MDA) can read too.
//!
//! [`Store`] is the parsed data directory. The SMTP server writes messages with
//! [`Store::deliver`] (tmp/ then new/, synced, never overwriting); the POP3 server takes a
//! locked snapshot of one user's messages with [`Store::lock_maildrop`] and changes the disk
//! only in the UPDATE state, through [`Maildrop::expunge`].
//!
//! Invariant: a user name becomes a path only after [`is_plain_username`] accepted it, so no
//! name (`../x`, `a/b`, `.`, a NUL) ever reaches a file outside `DATA`.
//!
//! [`import_assignment`] converts the assignment's `User.txt` + `MyMailBox.txt` tree into a
//! data directory, and [`create_demo`] makes the demo users and messages.

mod demo;
mod import;
mod maildir;
#[cfg(test)]
mod testdir;
mod users;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use demo::{create_demo, default_data_dir};
pub use import::{ImportReport, import_assignment};
pub use maildir::{Maildrop, StoredMessage};
pub use users::UsersLineProblem;

/// Name of the users file inside a data directory.
pub const USERS_FILE: &str = "users.txt";

/// Longest accepted user name, in bytes.
pub const MAX_USERNAME_LEN: usize = 64;

/// What went wrong while reading or changing the data directory.
#[derive(Debug)]
pub enum StoreError {
    /// A file system operation failed.
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// What mailwire was doing, as a verb phrase ("read the users file").
        action: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// A user name that is not a plain name (see [`is_plain_username`]).
    BadUsername {
        /// The refused name, as given.
        name: String,
    },
    /// A plain user name that is not listed in `users.txt`.
    UnknownUser {
        /// The user name.
        user: String,
    },
    /// A malformed line in `users.txt` (or the assignment's `User.txt`).
    UsersFile {
        /// The users file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line and how to fix it.
        problem: UsersLineProblem,
    },
    /// A password that cannot be written as the second field of a `users.txt` line.
    BadPassword {
        /// The user whose password was refused.
        user: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The user's maildrop is locked by another POP3 session (RFC 2449 `[IN-USE]`).
    InUse {
        /// The user whose maildrop is locked.
        user: String,
    },
    /// A message index past the end of the maildrop snapshot.
    NoSuchMessage {
        /// The 0-based index asked for.
        index: usize,
    },
    /// A problem in the assignment's tree being imported.
    Import {
        /// The file or folder involved.
        path: PathBuf,
        /// 1-based line number, or 0 when the problem is not about one line.
        line: usize,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

impl StoreError {
    /// Builds an [`StoreError::Io`] (shorthand for `map_err`).
    pub(crate) fn io(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            path,
            action,
            source,
        }
    }
}

impl StoreError {
    /// The error without file paths or hints, for a reply that goes to a mail client (which
    /// may be on another computer): "could not read the message file: No such file or
    /// directory". The full text is for the server's own log.
    pub fn brief(&self) -> String {
        match self {
            StoreError::Io { action, source, .. } => format!("could not {action}: {source}"),
            StoreError::UsersFile { line, .. } => {
                format!("the users file has an error on line {line}")
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io {
                path,
                action,
                source,
            } => {
                write!(f, "Could not {action} {}: {source}.", path.display())?;
                match source.kind() {
                    io::ErrorKind::NotFound => write!(
                        f,
                        " Check that the path exists; `mailwire serve` creates demo data and \
                         `mailwire import-assignment` converts the assignment's folders."
                    ),
                    io::ErrorKind::PermissionDenied => write!(
                        f,
                        " Check that your user may read and write the data directory and its \
                         folders."
                    ),
                    _ => Ok(()),
                }
            }
            StoreError::BadUsername { name } => write!(
                f,
                "{name:?} is not a valid user name: use 1 to {MAX_USERNAME_LEN} characters among \
                 letters, digits and . _ @ + -, not starting with a dot."
            ),
            StoreError::UnknownUser { user } => write!(
                f,
                "There is no user named `{user}` in {USERS_FILE}; add a line `{user} PASSWORD` \
                 to the data directory's {USERS_FILE}."
            ),
            StoreError::UsersFile {
                path,
                line,
                problem,
            } => write!(f, "Line {line} of {}: {problem}.", path.display()),
            StoreError::BadPassword { user, problem } => write!(
                f,
                "The password of `{user}` cannot be stored in {USERS_FILE}: {problem}; choose \
                 another password."
            ),
            StoreError::InUse { user } => write!(
                f,
                "The maildrop of `{user}` is in use by another POP3 session; end that session \
                 with QUIT (or close it) and try again."
            ),
            StoreError::NoSuchMessage { index } => write!(
                f,
                "There is no message at index {index} (0-based) in the maildrop; the snapshot \
                 taken when the maildrop was locked is shorter."
            ),
            StoreError::Import {
                path,
                line: 0,
                problem,
            } => write!(f, "Cannot import {}: {problem}.", path.display()),
            StoreError::Import {
                path,
                line,
                problem,
            } => write!(f, "Line {line} of {}: {problem}.", path.display()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Whether `name` is a plain user name: 1 to 64 characters of `[A-Za-z0-9._@+-]`, not
/// starting with `.`. Only such names are ever turned into paths (so `../x`, `a/b`, `.`,
/// `..`, the empty name and names with NUL or spaces are refused).
pub fn is_plain_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-'))
}

/// An open data directory: its root and the users listed in `users.txt`.
///
/// The user list is read once, by [`Store::open`]; edits to `users.txt` made later are seen
/// by the next `open`.
pub struct Store {
    root: PathBuf,
    users: BTreeMap<String, String>,
}

impl fmt::Debug for Store {
    /// Shows the root and the user names, never the passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Store {
    /// Opens an existing data directory: reads `users.txt` and creates the missing Maildir
    /// folders (`tmp`, `new`, `cur`) of the users it lists.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let users = users::read_users_file(&root.join(USERS_FILE))?;
        let store = Store {
            root: root.to_path_buf(),
            users,
        };
        for user in store.users.keys() {
            store.ensure_maildir(user)?;
        }
        Ok(store)
    }

    /// Creates the data directory, its `users.txt` and the users' Maildirs where missing.
    ///
    /// If `users.txt` already exists, the users it lists are kept (with their passwords) and
    /// only the new names of `users` are appended; its comments are kept too. A name listed
    /// twice in `users` counts once, with its first password.
    pub fn create(root: &Path, users: &[(String, String)]) -> Result<Store, StoreError> {
        for (user, password) in users {
            if !is_plain_username(user) {
                return Err(StoreError::BadUsername { name: user.clone() });
            }
            users::check_password(user, password)?;
        }
        std::fs::create_dir_all(root).map_err(StoreError::io(root, "create the data directory"))?;
        users::merge_users_file(&root.join(USERS_FILE), users)?;
        Store::open(root)
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `user` is listed in `users.txt`.
    pub fn user_exists(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The password of `user` as written in `users.txt` (for the PASS and APOP checks).
    pub fn password(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    /// The user names, in byte order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// `DATA/<user>/Maildir` of a listed user; the name is validated before it becomes a path.
    fn maildir(&self, user: &str) -> Result<PathBuf, StoreError> {
        if !is_plain_username(user) {
            return Err(StoreError::BadUsername {
                name: user.to_string(),
            });
        }
        if !self.user_exists(user) {
            return Err(StoreError::UnknownUser {
                user: user.to_string(),
            });
        }
        Ok(self.root.join(user).join("Maildir"))
    }

    /// Creates `tmp`, `new` and `cur` of the user's Maildir if missing; returns the Maildir.
    fn ensure_maildir(&self, user: &str) -> Result<PathBuf, StoreError> {
        let maildir = self.maildir(user)?;
        for sub in ["tmp", "new", "cur"] {
            let dir = maildir.join(sub);
            std::fs::create_dir_all(&dir)
                .map_err(StoreError::io(&dir, "create the Maildir folder"))?;
        }
        Ok(maildir)
    }
}

#[cfg(test)]
mod tests {
    use super::testdir::TempDir;
    use super::*;

    #[test]
    fn plain_usernames() {
        for good in [
            "mrose",
            "a",
            "alice.smith",
            "bob@example.org",
            "x+y_z-1",
            "A9",
            &"a".repeat(64),
        ] {
            assert!(is_plain_username(good), "{good:?} should be accepted");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "a\0b",
            "a b",
            "a:b",
            "é",
            "a\n",
            &"a".repeat(65),
        ] {
            assert!(!is_plain_username(bad), "{bad:?} should be refused");
        }
    }

    #[test]
    fn bad_username_never_becomes_a_path() {
        let dir = TempDir::new();
        let store = Store::create(dir.path(), &[("alice".into(), "pw".into())]).unwrap();
        for bad in ["../x", "a/b", "a\0b", "..", "."] {
            assert!(matches!(
                store.lock_maildrop(bad),
                Err(StoreError::BadUsername { .. })
            ));
            assert!(matches!(
                store.deliver(&[bad.to_string()], b"x\r\n"),
                Err(StoreError::BadUsername { .. })
            ));
        }
        let err = store.lock_maildrop("../x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"../x\" is not a valid user name: use 1 to 64 characters among letters, digits \
             and . _ @ + -, not starting with a dot."
        );
        assert!(matches!(
            store.lock_maildrop("carol"),
            Err(StoreError::UnknownUser { .. })
        ));
        assert!(
            Store::create(dir.path(), &[("../evil".into(), "pw".into())]).is_err(),
            "create must refuse bad names"
        );
        assert!(!dir.path().join("../evil").exists());
    }

    #[test]
    fn open_reads_users_and_makes_maildirs() {
        let dir = TempDir::new();
        std::fs::write(
            dir.path().join("users.txt"),
            "# comment\r\n\r\nmrose tanstaaf\r\n  alice   wonderland  \nbob builder",
        )
        .unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.users().collect::<Vec<_>>(), ["alice", "bob", "mrose"]);
        assert_eq!(store.password("mrose"), Some("tanstaaf"));
        assert_eq!(store.password("alice"), Some("wonderland"));
        assert_eq!(store.password("bob"), Some("builder"));
        assert_eq!(store.password("carol"), None);
        assert!(store.user_exists("bob"));
        assert!(!store.user_exists("# comment"));
        for sub in ["tmp", "new", "cur"] {
            assert!(dir.path().join("alice/Maildir").join(sub).is_dir());
        }
        assert_eq!(store.root(), dir.path());
        let debug = format!("{store:?}");
        assert!(
            !debug.contains("tanstaaf"),
            "Debug must not show passwords: {debug}"
        );
    }

    fn users_error(text: &str) -> (String, PathBuf) {
        let dir = TempDir::new();
        let path = dir.path().join("users.txt");
        std::fs::write(&path, text).unwrap();
        match Store::open(dir.path()) {
            Ok(_) => panic!("{text:?} should be refused"),
            Err(e) => (e.to_string(), path),
        }
    }

    #[test]
    fn users_file_errors_name_file_and_line() {
        let (msg, path) = users_error("mrose tanstaaf\n\nbob\n");
        assert_eq!(
            msg,
            format!(
                "Line 3 of {}: user `bob` has no password; write the line as `bob PASSWORD`.",
                path.display()
            )
        );
        let (msg, path) = users_error("# users\n../x secret\n");
        assert_eq!(
            msg,
            format!(
                "Line 2 of {}: \"../x\" is not a plain user name; use 1 to 64 characters among \
                 letters, digits and . _ @ + -, not starting with a dot.",
                path.display()
            )
        );
        let (msg, path) = users_error("a b c\n");
        assert_eq!(
            msg,
            format!(
                "Line 1 of {}: the line has more than two fields; write `username password` \
                 (passwords cannot contain spaces).",
                path.display()
            )
        );
        let (msg, path) = users_error("a x\r\nb y\r\na z\r\n");
        assert_eq!(
            msg,
            format!(
                "Line 3 of {}: user `a` is already listed on line 1; remove one of the two \
                 lines.",
                path.display()
            )
        );
        let (msg, _) = users_error("a x\n\u{0}b y\n");
        assert!(msg.starts_with("Line 2 of "), "{msg}");
    }

    #[test]
    fn missing_users_file_is_an_io_error_with_a_hint() {
        let dir = TempDir::new();
        let err = Store::open(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Io { .. }));
        assert!(msg.starts_with("Could not read the users file "), "{msg}");
        assert!(msg.contains("users.txt"), "{msg}");
        assert!(msg.contains("mailwire import-assignment"), "{msg}");
    }

    #[test]
    fn create_merges_with_existing_users() {
        let dir = TempDir::new();
        std::fs::write(dir.path().join("users.txt"), "# keep me\nalice old").unwrap();
        let store = Store::create(
            dir.path(),
            &[
                ("alice".into(), "new".into()),
                ("bob".into(), "builder".into()),
                ("bob".into(), "other".into()),
            ],
        )
        .unwrap();
        assert_eq!(store.password("alice"), Some("old"));
        assert_eq!(store.password("bob"), Some("builder"));
        let text = std::fs::read_to_string(dir.path().join("users.txt")).unwrap();
        assert!(text.starts_with("# keep me\nalice old\n"), "{text}");
        assert!(dir.path().join("bob/Maildir/new").is_dir());
        let err = Store::create(dir.path(), &[("carol".into(), "two words".into())]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The password of `carol` cannot be stored in users.txt: it contains a space or a \
             control character; choose another password."
        );
    }
}
