//! Reading and extending `users.txt` (the same format as the assignment's `User.txt`).
//!
//! One `username password` per line, the two fields separated by spaces or tabs; blank lines
//! and lines starting with `#` are ignored; lines may end with LF or CRLF; a UTF-8 byte order
//! mark at the start (Windows editors write one) is skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::{MAX_USERNAME_LEN, StoreError, is_plain_username};

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
        let err = |problem: String| StoreError::UsersFile {
            path: path.to_path_buf(),
            line: line_no,
            problem,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(err(
                "the line is not valid UTF-8; save the file as UTF-8 (user names are ASCII)"
                    .to_string(),
            ));
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
            return Err(err(format!(
                "{user:?} is not a plain user name; use 1 to {MAX_USERNAME_LEN} characters \
                 among letters, digits and . _ @ + -, not starting with a dot"
            )));
        }
        let Some(password) = password else {
            return Err(err(format!(
                "user `{user}` has no password; write the line as `{user} PASSWORD`"
            )));
        };
        if extra.is_some() {
            return Err(err(
                "the line has more than two fields; write `username password` (passwords \
                 cannot contain spaces)"
                    .to_string(),
            ));
        }
        if password.chars().any(char::is_control) {
            return Err(err(format!(
                "the password of `{user}` contains a control character; remove it"
            )));
        }
        if let Some(first) = seen.get(user) {
            return Err(err(format!(
                "user `{user}` is already listed on line {first}; remove one of the two lines"
            )));
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
