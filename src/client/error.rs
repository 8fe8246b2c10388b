//! Why a client connection failed: the network, the clock, or the server's protocol.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::pop3::client::Pop3ClientError;
use crate::proto::smtp::client::SmtpClientError;

/// Everything that can go wrong on a client connection. Each Display text is a sentence
/// that says what happened and, where it helps, what to do.
#[derive(Debug)]
pub enum ClientError {
    /// The HOST:PORT text could not be resolved.
    Resolve { addr: String, source: io::Error },
    /// The name resolved to no address.
    NoAddress { addr: String },
    /// The TCP connection was refused or failed.
    Connect { addr: String, source: io::Error },
    /// The TCP connection did not complete in time.
    ConnectTimeout { addr: String, after: Duration },
    /// The server sent nothing for too long.
    ReadTimeout {
        peer: SocketAddr,
        waiting_for: String,
        after: Duration,
        /// What had arrived of the reply, and the rule it broke, when part of it had.
        so_far: Option<String>,
    },
    /// Part of a reply came, then nothing more for `after` (a multi-line reply without its
    /// end, a line without its line end). Only on a connection that diagnoses framing (the
    /// console's): the reply is given up and the connection stays usable.
    Stalled {
        peer: SocketAddr,
        waiting_for: String,
        /// What had arrived of the reply, and the rule it broke (the client machine's
        /// `progress()`).
        so_far: String,
        after: Duration,
    },
    /// Reading or writing the socket failed.
    Io {
        peer: SocketAddr,
        action: &'static str,
        source: io::Error,
    },
    /// The connection was already closed or broken by an earlier error.
    Closed { peer: SocketAddr },
    /// The POP3 server broke the protocol, or a command could not be sent.
    Pop3(Pop3ClientError),
    /// The SMTP server broke the protocol, or a command could not be sent.
    Smtp(SmtpClientError),
    /// The TLS handshake failed (rustls's reason: an untrusted certificate, a name that
    /// does not match, a server that does not speak TLS...); the connection is unusable.
    Tls { peer: SocketAddr, error: String },
    /// The client gave an AUTH exchange up (and cancelled it with `*`).
    Sasl {
        peer: SocketAddr,
        problem: SaslProblem,
    },
}

/// Why the client gave an AUTH exchange up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslProblem {
    /// The server's challenge is not base64 (RFC 5034 section 4, RFC 4954 section 4).
    NotBase64(String),
    /// The mechanism cannot answer the challenge (SCRAM: the server did not prove that it
    /// knows the ServerKey, RFC 5802 section 3).
    Mechanism(crate::proto::sasl::client::SaslClientError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve { addr, source } => write!(
                f,
                "Cannot find the server \"{addr}\": {source}. Give it as HOST:PORT, for \
                 example 127.0.0.1:1110."
            ),
            Self::NoAddress { addr } => {
                write!(f, "The server name \"{addr}\" resolves to no address.")
            }
            Self::Connect { addr, source } => {
                write!(f, "Cannot connect to {addr}: {source}.")?;
                if source.kind() == io::ErrorKind::ConnectionRefused {
                    write!(
                        f,
                        " Is a server listening there? `mailwire serve` starts mailwire's own."
                    )?;
                }
                Ok(())
            }
            Self::ConnectTimeout { addr, after } => write!(
                f,
                "No answer from {addr} within {} while connecting.",
                seconds(*after)
            ),
            Self::ReadTimeout {
                peer,
                waiting_for,
                after,
                so_far: None,
            } => write!(
                f,
                "The server at {peer} sent nothing for {} while we waited for {waiting_for}.",
                seconds(*after)
            ),
            Self::ReadTimeout {
                peer,
                waiting_for,
                after,
                so_far: Some(so_far),
            } => write!(
                f,
                "The server at {peer} stopped in the middle of {waiting_for}: it sent {so_far}, \
                 then nothing for {}.",
                seconds(*after)
            ),
            Self::Stalled {
                peer,
                waiting_for,
                so_far,
                after,
            } => write!(
                f,
                "The server at {peer} stopped in the middle of {waiting_for}: it sent {so_far}, \
                 then nothing for {}. The client gave that reply up, so the replies after it \
                 still pair with their own commands.",
                seconds(*after)
            ),
            Self::Io {
                peer,
                action,
                source,
            } => write!(
                f,
                "The connection to {peer} failed while {action}: {source}."
            ),
            Self::Closed { peer } => write!(f, "The connection to {peer} is already closed."),
            Self::Pop3(e) => e.fmt(f),
            Self::Smtp(e) => e.fmt(f),
            Self::Tls { peer, error } => write!(
                f,
                "The TLS handshake with {peer} failed: {error}.{}",
                tls_hint(error)
            ),
            Self::Sasl { peer, problem } => {
                write!(
                    f,
                    "The client gave up the AUTH exchange with {peer} (sent \"*\"): "
                )?;
                match problem {
                    SaslProblem::NotBase64(text) => write!(
                        f,
                        "the challenge \"{}\" is not base64.",
                        crate::proto::pop3::client::excerpt(text.as_bytes())
                    ),
                    SaslProblem::Mechanism(e) => write!(f, "{e}."),
                }
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Resolve { source, .. }
            | Self::Connect { source, .. }
            | Self::Io { source, .. } => Some(source),
            Self::Pop3(e) => Some(e),
            Self::Smtp(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Pop3ClientError> for ClientError {
    fn from(e: Pop3ClientError) -> Self {
        Self::Pop3(e)
    }
}

impl From<SmtpClientError> for ClientError {
    fn from(e: SmtpClientError) -> Self {
        Self::Smtp(e)
    }
}

/// What to do about a failed handshake whose reason is the certificate ("" otherwise).
pub(crate) fn tls_hint(error: &str) -> &'static str {
    if error.contains("certificate") {
        " mailwire's servers use the self-signed certificate in their data directory \
         (mailwire-cert.pem): pass it with --cafile FILE, or --insecure to skip the check."
    } else {
        ""
    }
}

/// A duration in words: "30 s", "0.25 s".
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_sentences() {
        let peer = SocketAddr::from(([127, 0, 0, 1], 1110));
        let e = ClientError::ReadTimeout {
            peer,
            waiting_for: "the reply to STAT".into(),
            after: Duration::from_millis(250),
            so_far: None,
        };
        assert_eq!(
            e.to_string(),
            "The server at 127.0.0.1:1110 sent nothing for 0.25 s while we waited for the \
             reply to STAT."
        );
        let e = ClientError::Connect {
            addr: "127.0.0.1:9".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert!(e.to_string().starts_with("Cannot connect to 127.0.0.1:9: "));
        assert!(
            e.to_string()
                .ends_with("`mailwire serve` starts mailwire's own.")
        );
    }
}
