//! `mailwire client`: the assignment's console mail client on stdin and stdout (the menu
//! and the protocol work are [`crate::client::console`]'s).
//!
//! TLS: `--stls` (POP3) and `--starttls` (SMTP) upgrade a plain connection; `--tls` speaks
//! TLS from the first byte to both servers (their POP3S and SMTPS ports, RFC 8314). The
//! client trusts exactly the certificates it is given: `--cafile FILE` (repeatable), or
//! else the self-signed `mailwire-cert.pem` of mailwire's data directory (`--data`, or the
//! default one `mailwire serve` uses). `--insecure` checks no certificate and says so.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::client::ClientOptions;
use crate::client::console::{ConsoleConfig, TlsMode, run_console};
use crate::client::{ClientTls, Trust};
use crate::proto::sasl::Mechanism;

/// `mailwire client`: the assignment's console mail client.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// The POP3 server, HOST:PORT (with --tls: its POP3S port).
    #[arg(long, default_value = "127.0.0.1:1110")]
    pub pop3: String,
    /// The SMTP server, HOST:PORT (with --tls: its SMTPS port).
    #[arg(long, default_value = "127.0.0.1:2525")]
    pub smtp: String,
    /// Seconds to wait for a connection, and for the next bytes of a reply.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Also print every line that crosses the wire.
    #[arg(long, short)]
    pub verbose: bool,
    /// POP3: send STLS after the greeting and log in only inside TLS (RFC 2595 section 4).
    #[arg(long, conflicts_with = "tls")]
    pub stls: bool,
    /// SMTP: send STARTTLS after EHLO, then EHLO again inside TLS (RFC 3207 section 4).
    #[arg(long, conflicts_with = "tls")]
    pub starttls: bool,
    /// TLS from the first byte on both connections (implicit TLS, RFC 8314 section 3): give
    /// --pop3 and --smtp the servers' POP3S and SMTPS ports.
    #[arg(long)]
    pub tls: bool,
    /// Log in with this SASL mechanism: PLAIN, LOGIN, CRAM-MD5 or SCRAM-SHA-256 (POP3 AUTH,
    /// RFC 5034; and SMTP AUTH before sending mail, RFC 4954), instead of USER/PASS.
    #[arg(long, value_parser = mechanism)]
    pub auth: Option<Mechanism>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// Which server certificates a TLS client trusts (`mailwire client`, `mailwire telnet`).
#[derive(clap::Args, Debug, Clone)]
pub struct TrustArgs {
    /// Trust the server certificate (or CA certificate) in this PEM file (repeatable).
    #[arg(long)]
    pub cafile: Vec<PathBuf>,
    /// Without --cafile, trust the self-signed certificate of this mailwire data directory
    /// (default: the one `mailwire serve` uses).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Check no certificate: the connection is encrypted but the server is not
    /// authenticated (anyone in the middle could pose as it). For a test server only.
    #[arg(long, conflicts_with = "cafile")]
    pub insecure: bool,
}

impl TrustArgs {
    /// The client's TLS configuration; with `--insecure`, a warning on stderr.
    pub fn client_tls(&self) -> Result<ClientTls, String> {
        let tls = ClientTls::new(&trust(self)?).map_err(|e| e.to_string())?;
        if tls.is_insecure() {
            eprintln!(
                "warning: --insecure: server certificates are not checked; the connection is \
                 encrypted, but the server may be anyone"
            );
        }
        Ok(tls)
    }
}

fn mechanism(name: &str) -> Result<Mechanism, String> {
    Mechanism::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
        format!(
            "\"{name}\" is not a SASL mechanism mailwire knows: {}",
            known.join(", ")
        )
    })
}

/// The certificates to trust: `--insecure`, the `--cafile` files, or the data directory's
/// self-signed certificate.
fn trust(args: &TrustArgs) -> Result<Trust, String> {
    if args.insecure {
        return Ok(Trust::Insecure);
    }
    if !args.cafile.is_empty() {
        return Ok(Trust::Certificates(args.cafile.clone()));
    }
    let dir = args
        .data
        .clone()
        .or_else(crate::store::default_data_dir)
        .ok_or("no data directory to find mailwire's certificate in: give --cafile FILE")?;
    let cert = dir.join(crate::servers::tls::CERT_FILE);
    if !cert.exists() {
        return Err(format!(
            "{} does not exist: give the server's certificate with --cafile FILE, the data \
             directory of `mailwire serve` with --data DIR, or --insecure to skip the check",
            cert.display()
        ));
    }
    Ok(Trust::Certificates(vec![cert]))
}

/// Runs the console client on stdin and stdout.
pub fn run_client(args: ClientArgs) -> Result<(), String> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let wants_tls = args.stls || args.starttls || args.tls;
    let tls = if wants_tls {
        Some(args.trust.client_tls()?)
    } else {
        None
    };
    let mode = |upgrade: bool| match (args.tls, upgrade) {
        (true, _) => TlsMode::Implicit,
        (false, true) => TlsMode::Upgrade,
        (false, false) => TlsMode::Off,
    };
    let stdin = std::io::stdin();
    let config = ConsoleConfig {
        pop3: args.pop3,
        smtp: args.smtp,
        options: ClientOptions {
            connect_timeout: timeout,
            read_timeout: timeout,
            ..ClientOptions::default()
        },
        echo_input: !stdin.is_terminal(),
        show_wire: args.verbose,
        pop3_tls: mode(args.stls),
        smtp_tls: mode(args.starttls),
        tls,
        auth: args.auth,
    };
    run_console(config, stdin.lock(), std::io::stdout().lock()).map_err(|e| e.to_string())
}
