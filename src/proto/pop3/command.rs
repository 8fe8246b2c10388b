//! POP3 command lines: parsing (server side) and formatting (client side).

use std::fmt;

/// One POP3 command, as RFC 1939 and RFC 2449 define it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(String),
    Apop {
        name: String,
        digest: String,
    },
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Top {
        msg: u32,
        lines: u32,
    },
    Uidl(Option<u32>),
    Quit,
    Capa,
    /// `STLS` (RFC 2595 section 4): start TLS.
    Stls,
    /// `AUTH mechanism [initial-response]` (RFC 5034 section 4); the initial response is
    /// base64 as sent (`=` for an empty one).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// Why a command line could not be parsed. The server answers `-ERR` with the Display text
/// and the session goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Empty,
    Unknown {
        keyword: String,
    },
    MissingArgument {
        keyword: &'static str,
        what: &'static str,
    },
    BadNumber {
        keyword: &'static str,
        text: String,
    },
    /// TOP's second argument is not a line count (0 or more).
    BadLineCount {
        text: String,
    },
    TooManyArguments {
        keyword: &'static str,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty command line"),
            Self::Unknown { keyword } => write!(f, "unknown command \"{keyword}\""),
            Self::MissingArgument { keyword, what } => write!(f, "{keyword} needs {what}"),
            Self::BadNumber { keyword, text } => {
                write!(f, "{keyword}: \"{text}\" is not a message number")
            }
            Self::BadLineCount { text } => {
                write!(f, "TOP: \"{text}\" is not a line count (0 or more)")
            }
            Self::TooManyArguments { keyword } => write!(f, "{keyword}: too many arguments"),
        }
    }
}

impl std::error::Error for ParseError {}

impl Command {
    /// Parses one command line (without its line end). Keywords are case-insensitive.
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches([' ', '\t']);
        let (keyword, rest) = match text.split_once(' ') {
            Some((k, r)) => (k, r),
            None => (text, ""),
        };
        if keyword.is_empty() {
            return Err(ParseError::Empty);
        }
        let args: Vec<&str> = rest.split_whitespace().collect();
        let keyword_upper = keyword.to_ascii_uppercase();
        let cmd = match keyword_upper.as_str() {
            "USER" => Command::User(one_arg("USER", "a mailbox name", &args)?.to_string()),
            // The password is the rest of the line: RFC 1939 lets it contain spaces.
            "PASS" if rest.is_empty() => {
                return Err(ParseError::MissingArgument {
                    keyword: "PASS",
                    what: "a password",
                });
            }
            "PASS" => Command::Pass(rest.to_string()),
            "APOP" => match args.as_slice() {
                [name, digest] => Command::Apop {
                    name: (*name).to_string(),
                    digest: (*digest).to_string(),
                },
                [] | [_] => {
                    return Err(ParseError::MissingArgument {
                        keyword: "APOP",
                        what: "a mailbox name and a digest",
                    });
                }
                _ => return Err(ParseError::TooManyArguments { keyword: "APOP" }),
            },
            "STAT" => no_args("STAT", &args, Command::Stat)?,
            "LIST" => Command::List(optional_number("LIST", &args)?),
            "RETR" => Command::Retr(number("RETR", one_arg("RETR", "a message number", &args)?)?),
            "DELE" => Command::Dele(number("DELE", one_arg("DELE", "a message number", &args)?)?),
            "NOOP" => no_args("NOOP", &args, Command::Noop)?,
            "RSET" => no_args("RSET", &args, Command::Rset)?,
            "TOP" => match args.as_slice() {
                [msg, lines] => Command::Top {
                    msg: number("TOP", msg)?,
                    lines: line_count(lines)?,
                },
                [] | [_] => {
                    return Err(ParseError::MissingArgument {
                        keyword: "TOP",
                        what: "a message number and a line count",
                    });
                }
                _ => return Err(ParseError::TooManyArguments { keyword: "TOP" }),
            },
            "UIDL" => Command::Uidl(optional_number("UIDL", &args)?),
            "QUIT" => no_args("QUIT", &args, Command::Quit)?,
            "CAPA" => no_args("CAPA", &args, Command::Capa)?,
            "STLS" => no_args("STLS", &args, Command::Stls)?,
            "AUTH" => match args.as_slice() {
                [mechanism] => Command::Auth {
                    mechanism: (*mechanism).to_string(),
                    initial: None,
                },
                [mechanism, initial] => Command::Auth {
                    mechanism: (*mechanism).to_string(),
                    initial: Some((*initial).to_string()),
                },
                [] => {
                    return Err(ParseError::MissingArgument {
                        keyword: "AUTH",
                        what: "a SASL mechanism (CAPA lists them on its SASL line)",
                    });
                }
                _ => return Err(ParseError::TooManyArguments { keyword: "AUTH" }),
            },
            _ => {
                return Err(ParseError::Unknown {
                    keyword: keyword.chars().take(40).collect(),
                });
            }
        };
        Ok(cmd)
    }

    /// The RFC keyword of this command.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Apop { .. } => "APOP",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Top { .. } => "TOP",
            Command::Uidl(_) => "UIDL",
            Command::Quit => "QUIT",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Auth { .. } => "AUTH",
        }
    }

    /// Whether the reply to this command is multi-line when positive.
    pub fn has_multiline_reply(&self) -> bool {
        matches!(
            self,
            Command::List(None)
                | Command::Uidl(None)
                | Command::Retr(_)
                | Command::Top { .. }
                | Command::Capa
        )
    }
}

impl fmt::Display for Command {
    /// The command line as a client sends it, without CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::User(name) => write!(f, "USER {name}"),
            Command::Pass(pass) => write!(f, "PASS {pass}"),
            Command::Apop { name, digest } => write!(f, "APOP {name} {digest}"),
            Command::List(Some(n)) => write!(f, "LIST {n}"),
            Command::Retr(n) => write!(f, "RETR {n}"),
            Command::Dele(n) => write!(f, "DELE {n}"),
            Command::Top { msg, lines } => write!(f, "TOP {msg} {lines}"),
            Command::Uidl(Some(n)) => write!(f, "UIDL {n}"),
            Command::Auth {
                mechanism,
                initial: Some(initial),
            } => write!(f, "AUTH {mechanism} {initial}"),
            Command::Auth {
                mechanism,
                initial: None,
            } => write!(f, "AUTH {mechanism}"),
            other => f.write_str(other.keyword()),
        }
    }
}

fn one_arg<'a>(
    keyword: &'static str,
    what: &'static str,
    args: &[&'a str],
) -> Result<&'a str, ParseError> {
    match args {
        [one] => Ok(one),
        [] => Err(ParseError::MissingArgument { keyword, what }),
        _ => Err(ParseError::TooManyArguments { keyword }),
    }
}

fn no_args(keyword: &'static str, args: &[&str], cmd: Command) -> Result<Command, ParseError> {
    if args.is_empty() {
        Ok(cmd)
    } else {
        Err(ParseError::TooManyArguments { keyword })
    }
}

fn optional_number(keyword: &'static str, args: &[&str]) -> Result<Option<u32>, ParseError> {
    match args {
        [] => Ok(None),
        [n] => number(keyword, n).map(Some),
        _ => Err(ParseError::TooManyArguments { keyword }),
    }
}

fn number(keyword: &'static str, text: &str) -> Result<u32, ParseError> {
    let bad = || ParseError::BadNumber {
        keyword,
        text: text.chars().take(20).collect(),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// TOP's line count: digits only; a count beyond `u32` means "all of them".
fn line_count(text: &str) -> Result<u32, ParseError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadLineCount {
            text: text.chars().take(20).collect(),
        });
    }
    Ok(text.parse().unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_line_counts() {
        assert_eq!(
            Command::parse(b"TOP 1 -1").map_err(|e| e.to_string()),
            Err("TOP: \"-1\" is not a line count (0 or more)".to_string())
        );
        assert_eq!(
            Command::parse(b"TOP 1 99999999999999"),
            Ok(Command::Top {
                msg: 1,
                lines: u32::MAX
            })
        );
        assert_eq!(
            Command::parse(b"TOP x 1").map_err(|e| e.to_string()),
            Err("TOP: \"x\" is not a message number".to_string())
        );
    }

    #[test]
    fn parses_commands_case_insensitively() {
        assert_eq!(
            Command::parse(b"user mrose"),
            Ok(Command::User("mrose".into()))
        );
        assert_eq!(Command::parse(b"StAt"), Ok(Command::Stat));
        assert_eq!(Command::parse(b"retr 1"), Ok(Command::Retr(1)));
        assert_eq!(Command::parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(Command::parse(b"LIST 2"), Ok(Command::List(Some(2))));
        assert_eq!(
            Command::parse(b"top 1 10"),
            Ok(Command::Top { msg: 1, lines: 10 })
        );
        assert_eq!(
            Command::parse(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
            Ok(Command::Apop {
                name: "mrose".into(),
                digest: "c4c9334bac560ecc979e58001b3e22fb".into()
            })
        );
    }

    #[test]
    fn password_keeps_its_spaces() {
        assert_eq!(
            Command::parse(b"PASS my secret  pass"),
            Ok(Command::Pass("my secret  pass".into()))
        );
    }

    #[test]
    fn rejects_bad_arguments_with_reasons() {
        assert_eq!(
            Command::parse(b"RETR x").map_err(|e| e.to_string()),
            Err("RETR: \"x\" is not a message number".into())
        );
        assert_eq!(
            Command::parse(b"RETR -1").map_err(|e| e.to_string()),
            Err("RETR: \"-1\" is not a message number".into())
        );
        assert_eq!(
            Command::parse(b"RETR 99999999999").map_err(|e| e.to_string()),
            Err("RETR: \"99999999999\" is not a message number".into())
        );
        assert_eq!(
            Command::parse(b"DELE").map_err(|e| e.to_string()),
            Err("DELE needs a message number".into())
        );
        assert_eq!(
            Command::parse(b"STAT 1").map_err(|e| e.to_string()),
            Err("STAT: too many arguments".into())
        );
        assert_eq!(
            Command::parse(b"HELO x").map_err(|e| e.to_string()),
            Err("unknown command \"HELO\"".into())
        );
        assert_eq!(Command::parse(b""), Err(ParseError::Empty));
    }

    #[test]
    fn survives_nul_and_non_utf8() {
        assert!(Command::parse(b"\x00\xff\xfe").is_err());
        assert!(Command::parse(b"USER \xff").is_ok());
    }

    #[test]
    fn display_round_trips() {
        for line in ["USER mrose", "RETR 3", "TOP 1 0", "UIDL", "LIST 4", "QUIT"] {
            let cmd = Command::parse(line.as_bytes()).unwrap_or(Command::Noop);
            assert_eq!(cmd.to_string(), line);
        }
    }
}
