//! `mailwire serve`: the POP3 and SMTP servers on a data directory, without a window,
//! printing each session's transcript until a stop signal. With `--broken NAME`, a replay
//! server of [`crate::check::replay`] instead ("spot the error": one seed's flaw planted),
//! for outside clients and `mailwire check`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::check::replay::{self, Flaw};
use crate::servers::{self, EventSink, ServerConfig};
use crate::store::{self, Store};

/// Arguments of `mailwire serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Data directory (users.txt and a Maildir per user). Default: a demo directory in your
    /// user data folder, created on first run.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Address of the POP3 server, IP:PORT or localhost:PORT; port 0 takes a free one
    /// (port 110 needs root or CAP_NET_BIND_SERVICE).
    #[arg(long, default_value = "127.0.0.1:1110", value_parser = listen_address)]
    pub pop3: SocketAddr,
    /// Address of the SMTP server, IP:PORT or localhost:PORT; port 0 takes a free one
    /// (port 25 needs root or CAP_NET_BIND_SERVICE).
    #[arg(long, default_value = "127.0.0.1:2525", value_parser = listen_address)]
    pub smtp: SocketAddr,
    /// Allow addresses other than loopback. Passwords and mail then cross the network in
    /// clear text.
    #[arg(long)]
    pub allow_remote: bool,
    /// Host name used in greetings and Received headers.
    #[arg(long, default_value = "localhost")]
    pub hostname: String,
    /// A mail domain delivered locally besides `localhost` (repeatable).
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// Fixed APOP timestamp, e.g. '<1896.697170952@dbc.mtview.ca.us>', to replay RFC 1939's
    /// example. Only for demos: RFC 1939 section 7 requires a fresh one per session (the
    /// default), or a captured APOP digest can be replayed.
    #[arg(long)]
    pub apop_timestamp: Option<String>,
    /// Accept only APOP, not USER/PASS, as RFC 1939 section 13 advises for users who have an
    /// APOP secret (here every user's password is one).
    #[arg(long)]
    pub apop_only: bool,
    /// Delay before answering a failed POP3 login, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub login_delay_ms: u64,
    /// Close sessions idle for this many seconds (RFC 1939 autologout).
    #[arg(long, default_value_t = 600)]
    pub idle_secs: u64,
    /// Largest message the SMTP server accepts, in octets.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub max_message_size: usize,
    /// Do not print session transcripts.
    #[arg(long, short)]
    pub quiet: bool,
    /// Run a "student's server" with one seed's flaw planted instead (mailwire's servers
    /// behind a proxy, on a fresh demo data directory; user student, password student), for
    /// your clients and `mailwire check` to find the error:
    #[arg(
        long,
        value_name = "NAME",
        value_parser = broken_names(),
        conflicts_with_all = ["data", "apop_timestamp", "apop_only", "domains", "quiet"]
    )]
    pub broken: Option<String>,
}

/// The replay servers' names, each with its one-line flaw (listed by `--help`).
fn broken_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(Flaw::ALL.map(|f| {
        let value = clap::builder::PossibleValue::new(f.name()).help(f.summary());
        match f {
            Flaw::Assignment => value.alias("assignment-guide"),
            _ => value,
        }
    }))
}

/// Runs `mailwire serve`: the servers until a stop signal (Ctrl-C, SIGTERM, SIGHUP).
pub fn run_serve(args: ServeArgs) -> Result<(), String> {
    for (name, addr) in [("POP3", args.pop3), ("SMTP", args.smtp)] {
        if !addr.ip().is_loopback() && !args.allow_remote {
            return Err(format!(
                "refusing to listen for {name} on {addr}: it is not a loopback address. \
                 Add --allow-remote if other computers should connect (passwords then travel \
                 in clear text)."
            ));
        }
    }
    if let Some(name) = &args.broken {
        return serve_broken(name, args.pop3, args.smtp);
    }
    let store = open_store(args.data.as_deref())?;
    let config = ServerConfig {
        hostname: args.hostname,
        failed_login_delay: Duration::from_millis(args.login_delay_ms),
        idle_limit: Duration::from_secs(args.idle_secs),
        fixed_timestamp: args.apop_timestamp,
        apop_only: args.apop_only,
        fixed_date: None,
        max_message_size: args.max_message_size,
        local_domains: args.domains,
        replies: Default::default(),
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let pop3 = bind(args.pop3, "POP3").await?;
        let smtp = bind(args.smtp, "SMTP").await?;
        let events = if args.quiet {
            EventSink::none()
        } else {
            let (tx, rx) = crossbeam_channel::unbounded();
            std::thread::Builder::new()
                .name("transcript-log".into())
                .spawn(move || {
                    for event in rx {
                        // Stdout closed (`mailwire serve | head`): stop logging, keep serving.
                        if let Some(line) = servers::transcript_line(&event)
                            && !say(line)
                        {
                            break;
                        }
                    }
                })
                .map_err(|e| format!("cannot start the log thread: {e}"))?;
            EventSink::new(tx)
        };
        // Listening before the servers say they are ready.
        let mut stop = crate::signals::StopSignals::new().map_err(|e| e.to_string())?;
        let running = servers::start(Arc::new(store), config, pop3, smtp, events)
            .map_err(|e| format!("cannot start the servers: {e}"))?;
        say(format!(
            "POP3 on {}, SMTP on {}. Ctrl-C stops.",
            running.pop3_addr(),
            running.smtp_addr()
        ));
        if args.allow_remote {
            say("warning: other computers may connect; passwords travel in clear text.");
        }
        stop.next().await;
        say("shutting down...");
        running.shutdown().await;
        Ok(())
    })
}

/// `mailwire serve --broken NAME`: the replay server on the given addresses until a stop
/// signal.
fn serve_broken(name: &str, pop3: SocketAddr, smtp: SocketAddr) -> Result<(), String> {
    let flaw = Flaw::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Flaw::ALL.iter().map(|f| f.name()).collect();
        format!(
            "--broken {name}: no such replay server; one of {}",
            names.join(", ")
        )
    })?;
    // Signal handlers before the servers say they are ready.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    crate::signals::on_stop_signal(move || {
        let _ = stop_tx.send(());
    })
    .map_err(|e| e.to_string())?;
    let running = replay::start_on(flaw, pop3, smtp).map_err(|e| e.to_string())?;
    say(format!(
        "Replaying {}: POP3 on {}, SMTP on {} (user {}, password {}, mail to {}). One thing \
         in it is wrong: which? Ctrl-C stops.",
        flaw.source(),
        running.pop3,
        running.smtp,
        running.user,
        running.pass,
        running.rcpt
    ));
    say(format!(
        "Check it: mailwire check --pop3 {} --smtp {} --user {} --pass {}",
        running.pop3, running.smtp, running.user, running.pass
    ));
    let _ = stop_rx.recv();
    say("shutting down...");
    drop(running);
    Ok(())
}

/// A listening address as typed: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT` (the IPv4
/// loopback; no name lookup).
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| format!("\"{port}\" is not a port number (0 to 65535)"));
    }
    text.parse().map_err(|_| {
        format!(
            "\"{text}\" is not an address to listen on: write IP:PORT (127.0.0.1:1110, \
             [::1]:1110) or localhost:PORT"
        )
    })
}

/// Prints a line on stdout; `false` if stdout is gone (a closed pipe), which is no reason to
/// stop the servers.
fn say(text: impl std::fmt::Display) -> bool {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{text}").is_ok()
}

fn open_store(data: Option<&std::path::Path>) -> Result<Store, String> {
    match data {
        Some(dir) => Store::open(dir).map_err(|e| e.to_string()),
        None => {
            let dir = store::default_data_dir().ok_or(
                "cannot find your user data folder (is HOME set?); give one with --data DIR",
            )?;
            let fresh = !dir.join("users.txt").exists();
            let store = store::create_demo(&dir).map_err(|e| e.to_string())?;
            if fresh {
                say(format!(
                    "created a demo data directory in {}",
                    dir.display()
                ));
            } else {
                say(format!("using the data directory {}", dir.display()));
            }
            say("users: mrose/tanstaaf, alice/wonderland, bob/builder, student/student");
            Ok(store)
        }
    }
}

async fn bind(addr: SocketAddr, name: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => format!(
                " Ports below 1024 need root or CAP_NET_BIND_SERVICE \
                 (sudo setcap cap_net_bind_service+ep $(command -v mailwire)); \
                 or use a port above 1024, e.g. --{} 127.0.0.1:{}.",
                name.to_lowercase(),
                if name == "POP3" { 1110 } else { 2525 }
            ),
            std::io::ErrorKind::AddrInUse => {
                " Another program (or another mailwire) listens there; stop it or choose \
                 another port."
                    .to_string()
            }
            _ => String::new(),
        };
        format!("cannot listen for {name} on {addr}: {e}.{hint}")
    })
}
