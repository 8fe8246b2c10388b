//! Reading and extending `users.txt` (the same format as the assignment's `User.txt`).
//!
//! One `username password` per line, the two fields separated by spaces or tabs; blank lines
//! and lines starting with `#` are ignored; lines may end with LF or CRLF; a UTF-8 byte order
//! mark at the start (Windows editors write one) is skipped.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

use super::{MAX_USERNAME_LEN, StoreError, is_plain_username};

/// What is wrong with one line of a users file (the file and line are in
/// [`StoreError::UsersFile`]); the Display says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsersLineProblem {
    /// The line is not UTF-8.
    NotUtf8,
    /// The first field is not a plain user name.
    NotPlainName { user: String },
    /// A user name alone.
    NoPassword { user: String },
    /// More than `username password`.
    ExtraFields,
    /// The password holds a control character.
    ControlInPassword { user: String },
    /// The user was listed before, on `first_line`.
    Duplicate { user: String, first_line: usize },
}

impl fmt::Display for UsersLineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsersLineProblem::NotUtf8 => f.write_str(
                "the line is not valid UTF-8; save the file as UTF-8 (user names are ASCII)",
            ),
            UsersLineProblem::NotPlainName { user } => write!(
                f,
                "{user:?} is not a plain user name; use 1 to {MAX_USERNAME_LEN} characters \
                 among letters, digits and . _ @ + -, not starting with a dot"
            ),
            UsersLineProblem::NoPassword { user } => write!(
                f,
                "user `{user}` has no password; write the line as `{user} PASSWORD`"
            ),
            UsersLineProblem::ExtraFields => f.write_str(
                "the line has more than two fields; write `username password` (passwords \
                 cannot contain spaces)",
            ),
            UsersLineProblem::ControlInPassword { user } => write!(
                f,
                "the password of `{user}` contains a control character; remove it"
            ),
            UsersLineProblem::Duplicate { user, first_line } => write!(
                f,
                "user `{user}` is already listed on line {first_line}; remove one of the two \
                 lines"
            ),
        }
    }
}

/// Reads and parses a users file.
pub(crate) fn read_users_file(path: &Path) -> Result<BTreeMap<String, String>, StoreError> {
    let bytes = std::fs::read(path).map_err(StoreError::io(path, "read the users file"))?;
    Ok(parse_users(&bytes, path)?
        .into_iter()
        .map(|(u, p, _)| (u, p))
        .collect())
}

/// Parses the text of a users file; `path` is only used in errors. Returns
/// `(user, password, line)` in file order.
pub(crate) fn parse_users(
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<(String, String, usize)>, StoreError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let err = |problem: UsersLineProblem| StoreError::UsersFile {
            path: path.to_path_buf(),
            line: line_no,
            problem,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(err(UsersLineProblem::NotUtf8));
        };
        let line = line.trim_matches(|c: char| c == ' ' || c == '\t');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
        let (Some(user), password, extra) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if !is_plain_username(user) {
            return Err(err(UsersLineProblem::NotPlainName {
                user: user.to_string(),
            }));
        }
        let Some(password) = password else {
            return Err(err(UsersLineProblem::NoPassword {
                user: user.to_string(),
            }));
        };
        if extra.is_some() {
            return Err(err(UsersLineProblem::ExtraFields));
        }
        if password.chars().any(char::is_control) {
            return Err(err(UsersLineProblem::ControlInPassword {
                user: user.to_string(),
            }));
        }
        if let Some(&first_line) = seen.get(user) {
            return Err(err(UsersLineProblem::Duplicate {
                user: user.to_string(),
                first_line,
            }));
        }
        seen.insert(user.to_string(), line_no);
        out.push((user.to_string(), password.to_string(), line_no));
    }
    Ok(out)
}

/// Refuses passwords that cannot be written as the second field of a users file line.
pub(crate) fn check_password(user: &str, password: &str) -> Result<(), StoreError> {
    if password.is_empty() {
        return Err(StoreError::BadPassword {
            user: user.to_string(),
            problem: "it is empty",
        });
    }
    if password
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(StoreError::BadPassword {
            user: user.to_string(),
            problem: "it contains a space or a control character",
        });
    }
    Ok(())
}

/// Creates the users file, or appends to it the users it does not list yet (existing lines,
/// comments included, are kept as they are). The file is replaced atomically (written
/// beside it, synced, renamed over it). Names and passwords must have been checked.
pub(crate) fn merge_users_file(path: &Path, users: &[(String, String)]) -> Result<(), StoreError> {
    let mut text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(StoreError::io(path, "read the users file")(e)),
    };
    let existing_file = !text.is_empty() || path.exists();
    let mut known: Vec<String> = parse_users(&text, path)?
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    let mut added = String::new();
    for (user, password) in users {
        if known.iter().any(|k| k == user) {
            continue;
        }
        known.push(user.clone());
        added.push_str(user);
        added.push(' ');
        added.push_str(password);
        added.push('\n');
    }
    if added.is_empty() && existing_file {
        return Ok(());
    }
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(added.as_bytes());

    let tmp = path.with_extension("txt.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        // Passwords are stored in clear text: only the owner may read them.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .map_err(StoreError::io(&tmp, "create the new users file"))?;
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io(&tmp, "write the new users file"))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(StoreError::io(path, "replace the users file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problem of the first bad line of `text`.
    fn problem(text: &str) -> (usize, UsersLineProblem) {
        match parse_users(text.as_bytes(), Path::new("users.txt")) {
            Err(StoreError::UsersFile { line, problem, .. }) => (line, problem),
            other => panic!("expected a users file error, got {other:?}"),
        }
    }

    #[test]
    fn each_bad_line_says_what_is_wrong_and_how_to_fix_it() {
        assert_eq!(
            problem("a x\n.b y\n"),
            (2, UsersLineProblem::NotPlainName { user: ".b".into() })
        );
        assert_eq!(
            problem("alone\n"),
            (
                1,
                UsersLineProblem::NoPassword {
                    user: "alone".into()
                }
            )
        );
        assert_eq!(problem("a x y\n"), (1, UsersLineProblem::ExtraFields));
        assert_eq!(
            problem("a x\u{7}\n"),
            (1, UsersLineProblem::ControlInPassword { user: "a".into() })
        );
        assert_eq!(
            problem("a x\nb y\na z\n"),
            (
                3,
                UsersLineProblem::Duplicate {
                    user: "a".into(),
                    first_line: 1
                }
            )
        );
        match parse_users(b"a x\n\xff y\n", Path::new("u")) {
            Err(StoreError::UsersFile {
                line: 2, problem, ..
            }) => {
                assert_eq!(problem, UsersLineProblem::NotUtf8);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            UsersLineProblem::NoPassword { user: "gb".into() }.to_string(),
            "user `gb` has no password; write the line as `gb PASSWORD`"
        );
        assert_eq!(
            UsersLineProblem::ExtraFields.to_string(),
            "the line has more than two fields; write `username password` (passwords cannot \
             contain spaces)"
        );
        assert!(
            UsersLineProblem::NotPlainName {
                user: "../x".into()
            }
            .to_string()
            .starts_with("\"../x\" is not a plain user name; use 1 to ")
        );
    }
}
