//! SMTP command lines (RFC 5321 section 4.1): the verb, its arguments and the syntax of
//! mail paths and ESMTP parameters.
//!
//! Parsing is split in two so the server can check the command sequence before the
//! arguments (a MAIL before HELO is "503 bad sequence" whatever its arguments):
//! [`split_command`] finds the verb, [`Command::from_parts`] parses the arguments.
//! [`Command::parse`] does both, for users that only want the meaning of a line (decoders).
//! Every error is an SMTP [`Reply`] ready to send; nothing here panics on any input.

use super::reply::Reply;

/// The longest path accepted, angle brackets included (RFC 5321 section 4.5.3.1.3).
pub const MAX_PATH: usize = 256;
/// The longest local part accepted (RFC 5321 section 4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// The longest domain accepted (RFC 5321 section 4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;

/// A command verb mailwire recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `HELO domain`
    Helo,
    /// `EHLO domain`
    Ehlo,
    /// `MAIL FROM:<path> [params]`
    Mail,
    /// `RCPT TO:<path> [params]`
    Rcpt,
    /// `DATA`
    Data,
    /// `RSET`
    Rset,
    /// `NOOP [string]`
    Noop,
    /// `VRFY string`
    Vrfy,
    /// `QUIT`
    Quit,
    /// `AUTH mechanism [initial-response]` (RFC 4954)
    Auth,
    /// `STARTTLS` (RFC 3207)
    StartTls,
    /// A verb of a standard SMTP command or extension that mailwire does not implement
    /// (answered "502 Command not implemented"); the verb in upper case.
    NotImplemented(&'static str),
}

/// Verbs recognised but not implemented (RFC 5321 section 4.2.4: 502, not 500).
const NOT_IMPLEMENTED: &[&str] = &[
    "EXPN", "HELP", "TURN", "ETRN", "ATRN", "BDAT", "SEND", "SOML", "SAML",
];

impl Verb {
    /// The verb for `word` (any case), if known.
    pub fn from_word(word: &[u8]) -> Option<Verb> {
        let upper = std::str::from_utf8(word).ok()?.to_ascii_uppercase();
        Some(match upper.as_str() {
            "HELO" => Verb::Helo,
            "EHLO" => Verb::Ehlo,
            "MAIL" => Verb::Mail,
            "RCPT" => Verb::Rcpt,
            "DATA" => Verb::Data,
            "RSET" => Verb::Rset,
            "NOOP" => Verb::Noop,
            "VRFY" => Verb::Vrfy,
            "QUIT" => Verb::Quit,
            "AUTH" => Verb::Auth,
            "STARTTLS" => Verb::StartTls,
            other => Verb::NotImplemented(NOT_IMPLEMENTED.iter().find(|v| **v == other)?),
        })
    }

    /// The verb in upper case, as the RFC spells it.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Helo => "HELO",
            Verb::Ehlo => "EHLO",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Vrfy => "VRFY",
            Verb::Quit => "QUIT",
            Verb::Auth => "AUTH",
            Verb::StartTls => "STARTTLS",
            Verb::NotImplemented(v) => v,
        }
    }
}

/// A mailbox from a MAIL or RCPT path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path {
    /// The mailbox as written, without angle brackets or source route; `""` for `<>`.
    pub address: String,
    /// The local part with any quoting removed; `""` for `<>`.
    pub user: String,
    /// The domain; `""` for `<>` and for the bare `<postmaster>` of RCPT.
    pub domain: String,
}

/// The BODY parameter of MAIL (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`
    SevenBit,
    /// `BODY=8BITMIME`
    EightBitMime,
}

/// The arguments of `MAIL FROM:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The reverse path (empty address for the null path `<>`).
    pub path: Path,
    /// The SIZE parameter (RFC 1870), saturated at `u64::MAX`.
    pub size: Option<u64>,
    /// The BODY parameter (RFC 6152).
    pub body: Option<Body>,
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO domain`
    Helo(String),
    /// `EHLO domain`
    Ehlo(String),
    /// `MAIL FROM:<path> [SIZE=n] [BODY=...]`
    Mail(MailFrom),
    /// `RCPT TO:<path>` (also `RCPT TO: path` without brackets, and `<postmaster>`)
    Rcpt(Path),
    /// `DATA`
    Data,
    /// `RSET`
    Rset,
    /// `NOOP [string]` (the string is ignored)
    Noop,
    /// `VRFY string`
    Vrfy(String),
    /// `QUIT`
    Quit,
    /// `AUTH mechanism [initial-response]`: the initial response as sent (base64, or `=`).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// `STARTTLS`
    StartTls,
    /// A recognised verb that mailwire does not implement.
    NotImplemented(&'static str),
}

impl Command {
    /// Parses a whole command line (terminator removed).
    pub fn parse(line: &[u8]) -> Result<Command, Reply> {
        let (verb, args) = split_command(line)?;
        Command::from_parts(verb, args)
    }

    /// Parses the arguments of `verb` (as returned by [`split_command`]).
    pub fn from_parts(verb: Verb, args: &str) -> Result<Command, Reply> {
        match verb {
            Verb::Helo => parse_helo(verb, args).map(Command::Helo),
            Verb::Ehlo => parse_helo(verb, args).map(Command::Ehlo),
            Verb::Mail => parse_mail(args).map(Command::Mail),
            Verb::Rcpt => parse_rcpt(args).map(Command::Rcpt),
            Verb::Data => no_args(verb, args).map(|()| Command::Data),
            Verb::Rset => no_args(verb, args).map(|()| Command::Rset),
            Verb::Noop => Ok(Command::Noop),
            Verb::Vrfy if args.is_empty() => Err(syntax("VRFY user-or-address")),
            Verb::Vrfy => Ok(Command::Vrfy(args.to_string())),
            // Arguments to QUIT are ignored: people type "quit now" on netcat.
            Verb::Quit => Ok(Command::Quit),
            Verb::StartTls => no_args(verb, args).map(|()| Command::StartTls),
            Verb::Auth => {
                let mut words = args.split_ascii_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(mechanism), initial, None) => Ok(Command::Auth {
                        mechanism: mechanism.to_string(),
                        initial: initial.map(str::to_string),
                    }),
                    _ => Err(syntax("AUTH mechanism [initial-response]")),
                }
            }
            Verb::NotImplemented(v) => Ok(Command::NotImplemented(v)),
        }
    }
}

/// Splits a command line into its verb and its arguments (trimmed).
///
/// Errors: an empty line or an unknown verb is "500 5.5.2"; a known verb whose arguments hold
/// bytes that are not UTF-8 or are control characters (NUL, a stray CR, ...) is "501 5.5.4".
pub fn split_command(line: &[u8]) -> Result<(Verb, &str), Reply> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Err(Reply::new(500, "5.5.2 Empty command line"));
    }
    let verb_end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let (word, rest) = line.split_at_checked(verb_end).unwrap_or((line, &[]));
    let Some(verb) = Verb::from_word(word) else {
        return Err(Reply::new(500, "5.5.2 Command unrecognized"));
    };
    let invalid = || Reply::new(501, "5.5.4 Invalid characters in command arguments");
    let args = std::str::from_utf8(rest).map_err(|_| invalid())?;
    if args.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid());
    }
    Ok((verb, args.trim()))
}

fn syntax(usage: &str) -> Reply {
    Reply::new(501, format!("5.5.4 Syntax: {usage}"))
}

fn no_args(verb: Verb, args: &str) -> Result<(), Reply> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(syntax(verb.name()))
    }
}

/// The domain of HELO/EHLO: the first word, printable ASCII. Lenient on purpose (what
/// follows the first word is ignored, the domain's syntax is not checked), as most servers.
fn parse_helo(verb: Verb, args: &str) -> Result<String, Reply> {
    let usage = || syntax(&format!("{} domain", verb.name()));
    let domain = args.split_ascii_whitespace().next().ok_or_else(usage)?;
    if domain.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(domain.to_string())
    } else {
        Err(usage())
    }
}

const MAIL_USAGE: &str = "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME]";
const RCPT_USAGE: &str = "RCPT TO:<address>";

fn parse_mail(args: &str) -> Result<MailFrom, Reply> {
    let rest = strip_keyword(args, "FROM:").ok_or_else(|| syntax(MAIL_USAGE))?;
    let (inner, params) = split_path(rest).ok_or_else(|| syntax(MAIL_USAGE))?;
    let path = if inner.is_empty() {
        Path::default()
    } else {
        parse_mailbox(inner).ok_or_else(|| Reply::new(501, "5.1.7 Bad sender address syntax"))?
    };
    let mut mail = MailFrom {
        path,
        size: None,
        body: None,
    };
    for (key, value) in parse_params(params)? {
        let duplicate = || Reply::new(501, format!("5.5.4 Duplicate {key} parameter"));
        if key.eq_ignore_ascii_case("SIZE") {
            let n = value
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Reply::new(501, "5.5.4 Bad SIZE parameter (SIZE=number)"))?;
            if mail.size.is_some() {
                return Err(duplicate());
            }
            mail.size = Some(n.parse().unwrap_or(u64::MAX));
        } else if key.eq_ignore_ascii_case("BODY") {
            let body = match value {
                Some(v) if v.eq_ignore_ascii_case("7BIT") => Body::SevenBit,
                Some(v) if v.eq_ignore_ascii_case("8BITMIME") => Body::EightBitMime,
                _ => {
                    return Err(Reply::new(
                        501,
                        "5.5.4 Bad BODY parameter (BODY=7BIT or BODY=8BITMIME)",
                    ));
                }
            };
            if mail.body.is_some() {
                return Err(duplicate());
            }
            mail.body = Some(body);
        } else if key.eq_ignore_ascii_case("AUTH") {
            // RFC 4954 section 5: the identity that submitted the message; mailwire relays
            // nothing, so it is accepted and not passed on.
        } else {
            return Err(unsupported(key));
        }
    }
    Ok(mail)
}

fn parse_rcpt(args: &str) -> Result<Path, Reply> {
    let rest = strip_keyword(args, "TO:").ok_or_else(|| syntax(RCPT_USAGE))?;
    let (inner, params) = split_path(rest).ok_or_else(|| syntax(RCPT_USAGE))?;
    let bad = || Reply::new(501, "5.1.3 Bad recipient address syntax");
    let path = if inner.eq_ignore_ascii_case("postmaster") {
        Path {
            address: inner.to_string(),
            user: "postmaster".to_string(),
            domain: String::new(),
        }
    } else if inner.is_empty() {
        return Err(bad());
    } else {
        parse_mailbox(inner).ok_or_else(bad)?
    };
    if let Some((key, _)) = parse_params(params)?.first() {
        return Err(unsupported(key));
    }
    Ok(path)
}

fn unsupported(key: &str) -> Reply {
    Reply::new(
        555,
        format!("5.5.4 Unsupported parameter {}", key.to_ascii_uppercase()),
    )
}

/// `args` without a leading case-insensitive `keyword` and the spaces after it.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    Some(args.get(keyword.len()..)?.trim_start())
}

/// Splits `<inner> rest` (or `bare rest`) into the path's inside and the text after it,
/// which must be empty or begin with a space.
fn split_path(s: &str) -> Option<(&str, &str)> {
    let (inner, rest) = match s.strip_prefix('<') {
        Some(after) => {
            let close = closing_bracket(after)?;
            (after.get(..close)?, after.get(close + 1..)?)
        }
        None => {
            let end = s.find([' ', '\t']).unwrap_or(s.len());
            let (token, rest) = s.split_at_checked(end)?;
            if token.is_empty() || token.contains(['<', '>']) {
                return None;
            }
            (token, rest)
        }
    };
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((inner, rest))
}

/// The byte offset of the `>` closing a path, skipping quoted strings.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '>' if !in_quote => return Some(i),
            '<' if !in_quote => return None,
            _ => {}
        }
    }
    None
}

/// ESMTP parameters `KEY[=VALUE]` separated by spaces (RFC 5321 section 4.1.2).
fn parse_params(s: &str) -> Result<Vec<(&str, Option<&str>)>, Reply> {
    let mut params = Vec::new();
    for word in s.split_ascii_whitespace() {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let value_ok = value
            .is_none_or(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b'='));
        if !key_ok || !value_ok {
            return Err(Reply::new(
                501,
                "5.5.4 Bad parameter syntax (KEYWORD=value)",
            ));
        }
        params.push((key, value));
    }
    Ok(params)
}

/// Parses `[@route,@route:]local@domain` into a [`Path`].
pub fn parse_mailbox(inner: &str) -> Option<Path> {
    if inner.len() + 2 > MAX_PATH || !inner.is_ascii() {
        return None;
    }
    let mailbox = strip_source_route(inner)?;
    let (local, domain) = mailbox.rsplit_once('@')?;
    let user = parse_local_part(local)?;
    if !valid_domain(domain) {
        return None;
    }
    Some(Path {
        address: mailbox.to_string(),
        user,
        domain: domain.to_string(),
    })
}

/// Removes an obsolete source route (`@a,@b:`), which RFC 5321 says to accept and ignore.
fn strip_source_route(s: &str) -> Option<&str> {
    if !s.starts_with('@') {
        return Some(s);
    }
    let (route, mailbox) = s.split_once(':')?;
    let route_ok = route
        .split(',')
        .all(|hop| hop.strip_prefix('@').is_some_and(valid_domain));
    route_ok.then_some(mailbox)
}

/// The local part with quoting removed, if it is a valid dot-string or quoted-string.
fn parse_local_part(local: &str) -> Option<String> {
    if local.is_empty() || local.len() > MAX_LOCAL_PART {
        return None;
    }
    if let Some(quoted) = local.strip_prefix('"') {
        let inside = quoted.strip_suffix('"')?;
        let mut user = String::new();
        let mut chars = inside.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let next = chars.next().filter(|n| (' '..='~').contains(n))?;
                    user.push(next);
                }
                '"' => return None,
                ' '..='~' => user.push(c),
                _ => return None,
            }
        }
        return Some(user);
    }
    let atoms_ok = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    atoms_ok.then(|| local.to_string())
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// A domain name (letters, digits, hyphens, underscores; dot-separated labels) or an address
/// literal in brackets.
fn valid_domain(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return false;
    }
    if let Some(literal) = domain.strip_prefix('[') {
        return literal.strip_suffix(']').is_some_and(|inside| {
            !inside.is_empty()
                && inside
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"[]\\".contains(&b))
        });
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(address: &str, user: &str, domain: &str) -> Path {
        Path {
            address: address.into(),
            user: user.into(),
            domain: domain.into(),
        }
    }

    fn code(r: Result<Command, Reply>) -> String {
        match r {
            Ok(c) => format!("ok {c:?}"),
            Err(r) => String::from_utf8_lossy(&r.to_bytes())
                .trim_end()
                .to_string(),
        }
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            Command::parse(b"helo iit.edu"),
            Ok(Command::Helo("iit.edu".into()))
        );
        assert_eq!(Command::parse(b"EhLo x"), Ok(Command::Ehlo("x".into())));
        assert_eq!(Command::parse(b"  NOOP  "), Ok(Command::Noop));
        assert_eq!(Command::parse(b"quit"), Ok(Command::Quit));
        assert_eq!(
            Command::parse(b"expn list"),
            Ok(Command::NotImplemented("EXPN"))
        );
    }

    #[test]
    fn mail_forms() {
        let mail = |p: Path| {
            Ok(Command::Mail(MailFrom {
                path: p,
                size: None,
                body: None,
            }))
        };
        let ag = path("ag@iit.edu", "ag", "iit.edu");
        assert_eq!(Command::parse(b"MAIL FROM:<ag@iit.edu>"), mail(ag.clone()));
        assert_eq!(Command::parse(b"MAIL FROM: <ag@iit.edu>"), mail(ag.clone()));
        assert_eq!(Command::parse(b"mail from:ag@iit.edu"), mail(ag.clone()));
        assert_eq!(
            Command::parse(b"MAIL FROM:<@relay.org,@x.org:ag@iit.edu>"),
            mail(ag)
        );
        assert_eq!(Command::parse(b"MAIL FROM:<>"), mail(Path::default()));
        assert_eq!(
            Command::parse(b"MAIL FROM:<\"a b\\\"c\"@[127.0.0.1]>"),
            mail(path("\"a b\\\"c\"@[127.0.0.1]", "a b\"c", "[127.0.0.1]"))
        );
        assert_eq!(
            Command::parse(b"MAIL FROM:<a@b> size=100 BODY=8bitmime"),
            Ok(Command::Mail(MailFrom {
                path: path("a@b", "a", "b"),
                size: Some(100),
                body: Some(Body::EightBitMime)
            }))
        );
        assert_eq!(
            Command::parse(b"MAIL FROM:<a@b> SIZE=99999999999999999999999"),
            Ok(Command::Mail(MailFrom {
                path: path("a@b", "a", "b"),
                size: Some(u64::MAX),
                body: None
            }))
        );
    }

    #[test]
    fn mail_errors() {
        for (line, want) in [
            (
                "MAIL",
                "501 5.5.4 Syntax: MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME]",
            ),
            (
                "MAIL TO:<a@b>",
                "501 5.5.4 Syntax: MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME]",
            ),
            (
                "MAIL FROM:<a@b",
                "501 5.5.4 Syntax: MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME]",
            ),
            (
                "MAIL FROM:<a@b>x",
                "501 5.5.4 Syntax: MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME]",
            ),
            (
                "MAIL FROM:",
                "501 5.5.4 Syntax: MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME]",
            ),
            ("MAIL FROM:<a>", "501 5.1.7 Bad sender address syntax"),
            ("MAIL FROM:<a@>", "501 5.1.7 Bad sender address syntax"),
            ("MAIL FROM:<@b>", "501 5.1.7 Bad sender address syntax"),
            ("MAIL FROM:<a..b@c>", "501 5.1.7 Bad sender address syntax"),
            ("MAIL FROM:<a@-b>", "501 5.1.7 Bad sender address syntax"),
            ("MAIL FROM:<a b@c>", "501 5.1.7 Bad sender address syntax"),
            (
                "MAIL FROM:<j\u{f6}rg@c>",
                "501 5.1.7 Bad sender address syntax",
            ),
            (
                "MAIL FROM:<a@b> SIZE=x",
                "501 5.5.4 Bad SIZE parameter (SIZE=number)",
            ),
            (
                "MAIL FROM:<a@b> SIZE",
                "501 5.5.4 Bad SIZE parameter (SIZE=number)",
            ),
            (
                "MAIL FROM:<a@b> BODY=9BIT",
                "501 5.5.4 Bad BODY parameter (BODY=7BIT or BODY=8BITMIME)",
            ),
            (
                "MAIL FROM:<a@b> SIZE=1 SIZE=2",
                "501 5.5.4 Duplicate SIZE parameter",
            ),
            (
                "MAIL FROM:<a@b> =x",
                "501 5.5.4 Bad parameter syntax (KEYWORD=value)",
            ),
            (
                "MAIL FROM:<a@b> SMTPUTF8",
                "555 5.5.4 Unsupported parameter SMTPUTF8",
            ),
            (
                "MAIL FROM:<a@b> ret=full",
                "555 5.5.4 Unsupported parameter RET",
            ),
        ] {
            assert_eq!(code(Command::parse(line.as_bytes())), want, "{line}");
        }
        let long = format!("MAIL FROM:<{}@b>", "a".repeat(65));
        assert_eq!(
            code(Command::parse(long.as_bytes())),
            "501 5.1.7 Bad sender address syntax"
        );
    }

    #[test]
    fn rcpt_forms_and_errors() {
        assert_eq!(
            Command::parse(b"RCPT TO: gb@iit.edu"),
            Ok(Command::Rcpt(path("gb@iit.edu", "gb", "iit.edu")))
        );
        assert_eq!(
            Command::parse(b"rcpt to:<PostMaster>"),
            Ok(Command::Rcpt(path("PostMaster", "postmaster", "")))
        );
        for (line, want) in [
            ("RCPT", "501 5.5.4 Syntax: RCPT TO:<address>"),
            ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
            ("RCPT TO:<bob>", "501 5.1.3 Bad recipient address syntax"),
            (
                "RCPT TO:<a@b> NOTIFY=NEVER",
                "555 5.5.4 Unsupported parameter NOTIFY",
            ),
        ] {
            assert_eq!(code(Command::parse(line.as_bytes())), want, "{line}");
        }
    }

    #[test]
    fn bad_lines() {
        for (line, want) in [
            (&b""[..], "500 5.5.2 Empty command line"),
            (b"   ", "500 5.5.2 Empty command line"),
            (b"FOO", "500 5.5.2 Command unrecognized"),
            (b"\0\0", "500 5.5.2 Command unrecognized"),
            (b"NO\0OP", "500 5.5.2 Command unrecognized"),
            (b"\xff\xfe", "500 5.5.2 Command unrecognized"),
            (
                b"HELO \xffx",
                "501 5.5.4 Invalid characters in command arguments",
            ),
            (
                b"HELO a\0b",
                "501 5.5.4 Invalid characters in command arguments",
            ),
            (b"HELO", "501 5.5.4 Syntax: HELO domain"),
            (b"EHLO   ", "501 5.5.4 Syntax: EHLO domain"),
            (b"HELO m\xc3\xbcnchen.de", "501 5.5.4 Syntax: HELO domain"),
            (b"DATA x", "501 5.5.4 Syntax: DATA"),
            (b"RSET x", "501 5.5.4 Syntax: RSET"),
            (b"VRFY", "501 5.5.4 Syntax: VRFY user-or-address"),
        ] {
            assert_eq!(code(Command::parse(line)), want, "{line:?}");
        }
    }
}
