//! `mailwire telnet HOST:PORT`: a raw session on stdin and stdout (the session itself is
//! [`crate::client::telnet`]'s); here the flags and when to wait for the server's answer.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::client::telnet::{ReplyWait, TelnetConfig, run_telnet_session};

/// `mailwire telnet`: type protocol commands by hand, as in a PuTTY or telnet session.
#[derive(clap::Args, Debug, Clone)]
pub struct TelnetArgs {
    /// The server, HOST:PORT (e.g. 127.0.0.1:1110 for mailwire's POP3 server).
    pub address: String,
    /// Save the session transcript to this file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Seconds to wait for the connection.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    /// After the input ends, seconds to wait for the server to close the connection.
    #[arg(long, default_value_t = 5)]
    pub linger_secs: u64,
    /// Milliseconds to wait at least between two lines sent.
    #[arg(long, default_value_t = 0)]
    pub line_delay_ms: u64,
    /// Before sending each line, wait for the server's answer to the one before (at most
    /// --reply-wait-ms). `auto` waits when the input is not a terminal, so a script's transcript
    /// reads command, reply, command, reply.
    #[arg(long, value_enum, default_value_t = WaitForReply::Auto)]
    pub wait_for_reply: WaitForReply,
    /// The longest wait for an answer, in milliseconds, before the next line goes anyway
    /// (a line of an SMTP message body gets no answer).
    #[arg(long, default_value_t = 1000)]
    pub reply_wait_ms: u64,
    /// Speak TLS from the first byte (a POP3S or SMTPS port, RFC 8314), as `openssl
    /// s_client` does: the lines typed and shown are what the TLS records carry.
    #[arg(long)]
    pub tls: bool,
    #[command(flatten)]
    pub trust: super::client::TrustArgs,
}

/// When `mailwire telnet` waits for the server's answer before sending the next line.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitForReply {
    /// Wait when the input is not a terminal.
    Auto,
    /// Always wait.
    Always,
    /// Send each line as soon as it is read.
    Never,
}

/// Runs a raw session on stdin and stdout.
pub fn run_telnet(args: TelnetArgs) -> Result<(), String> {
    let stdin = std::io::stdin();
    let wait = ReplyWait {
        at_most: Duration::from_millis(args.reply_wait_ms),
        ..ReplyWait::DEFAULT
    };
    let config = TelnetConfig {
        addr: args.address,
        save: args.save,
        connect_timeout: Duration::from_secs(args.timeout_secs),
        linger: Duration::from_secs(args.linger_secs),
        line_delay: Duration::from_millis(args.line_delay_ms),
        wait_for_reply: match args.wait_for_reply {
            WaitForReply::Always => Some(wait),
            WaitForReply::Auto if !stdin.is_terminal() => Some(wait),
            WaitForReply::Auto | WaitForReply::Never => None,
        },
        echo_input: !stdin.is_terminal(),
        tls: if args.tls {
            Some(args.trust.client_tls()?)
        } else {
            None
        },
    };
    run_telnet_session(
        config,
        std::io::BufReader::new(stdin),
        std::io::stdout().lock(),
    )
    .map_err(|e| e.to_string())
}
