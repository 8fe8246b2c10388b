//! The `mailwire` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use mailwire::servers::{self, EventSink, ServerConfig};
use mailwire::store::{self, Store};

/// Real POP3 and SMTP servers and client on your computer, and the packets between them.
#[derive(Parser)]
#[command(name = "mailwire", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Without a command: run the demo scenario in the window, save a PNG of the window to
    /// FILE, and exit.
    #[arg(long, value_name = "FILE")]
    screenshot: Option<PathBuf>,
    /// Without a command: open the window in presenter mode (dark, larger text).
    #[arg(long)]
    presenter: bool,
    /// Without a command: run the window on this computer's real loopback instead of
    /// mailwire's private network, so it can reach other servers here (your own, Dovecot)
    /// and outside programs can reach its servers. Capture then needs root or CAP_NET_RAW.
    #[arg(long)]
    no_sandbox: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the POP3 and SMTP servers on a data directory (no window).
    Serve(ServeArgs),
    /// Import the mail server assignment's layout (User.txt, <user>/MyMailBox.txt) into a
    /// data directory.
    ImportAssignment {
        /// Folder holding User.txt and one folder per user.
        src: PathBuf,
        /// Data directory to create or add to.
        data: PathBuf,
    },
    /// Read a pcap/pcapng capture and print each TCP connection's POP3/SMTP transcript with
    /// the frames that carried every command and reply.
    Open(mailwire::decode::open::OpenArgs),
    /// Watch your own programs live (your client and server, Thunderbird): capture the TCP
    /// ports you name and print every command and reply as it crosses the wire. Needs root
    /// or CAP_NET_RAW.
    Watch(mailwire::decode::watch::WatchArgs),
    /// The assignment's console mail client: Manage Mail (POP3) and Send Mail (SMTP).
    Client(mailwire::client::cli::ClientArgs),
    /// Type POP3 or SMTP commands by hand and see every byte the server sends (like PuTTY).
    Telnet(mailwire::client::cli::TelnetArgs),
    /// Run a scenario step by step on real sockets, with live capture; --list shows them.
    Run(mailwire::scenario::cli::RunArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory (users.txt and a Maildir per user). Default: a demo directory in your
    /// user data folder, created on first run.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address of the POP3 server, IP:PORT or localhost:PORT; port 0 takes a free one
    /// (port 110 needs root or CAP_NET_BIND_SERVICE).
    #[arg(long, default_value = "127.0.0.1:1110", value_parser = listen_address)]
    pop3: SocketAddr,
    /// Address of the SMTP server, IP:PORT or localhost:PORT; port 0 takes a free one
    /// (port 25 needs root or CAP_NET_BIND_SERVICE).
    #[arg(long, default_value = "127.0.0.1:2525", value_parser = listen_address)]
    smtp: SocketAddr,
    /// Allow addresses other than loopback. Passwords and mail then cross the network in
    /// clear text.
    #[arg(long)]
    allow_remote: bool,
    /// Host name used in greetings and Received headers.
    #[arg(long, default_value = "localhost")]
    hostname: String,
    /// A mail domain delivered locally besides `localhost` (repeatable).
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Fixed APOP timestamp for reproducible demos, e.g. '<1896.697170952@dbc.mtview.ca.us>'.
    #[arg(long)]
    apop_timestamp: Option<String>,
    /// Delay before answering a failed POP3 login, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    login_delay_ms: u64,
    /// Close sessions idle for this many seconds (RFC 1939 autologout).
    #[arg(long, default_value_t = 600)]
    idle_secs: u64,
    /// Largest message the SMTP server accepts, in octets.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    max_message_size: usize,
    /// Do not print session transcripts.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_some() && (cli.screenshot.is_some() || cli.presenter || cli.no_sandbox) {
        eprintln!(
            "mailwire: --screenshot, --presenter and --no-sandbox (before a command) are for \
             the window; `mailwire run --no-sandbox` is the scenario runner's"
        );
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        // No command: the classroom window, with the demo scenario loaded.
        None => mailwire::viz::run_window(mailwire::viz::WindowArgs {
            screenshot: cli.screenshot,
            presenter: cli.presenter,
            no_sandbox: cli.no_sandbox,
        }),
        Some(Cmd::Serve(args)) => serve(args),
        Some(Cmd::ImportAssignment { src, data }) => import(&src, &data),
        Some(Cmd::Open(args)) => mailwire::decode::open::run_open(args),
        Some(Cmd::Watch(args)) => mailwire::decode::watch::run_watch(args),
        Some(Cmd::Client(args)) => mailwire::client::cli::run_client(args),
        Some(Cmd::Telnet(args)) => mailwire::client::cli::run_telnet(args),
        Some(Cmd::Run(args)) => mailwire::scenario::cli::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mailwire: {message}");
            ExitCode::FAILURE
        }
    }
}

fn import(src: &std::path::Path, data: &std::path::Path) -> Result<(), String> {
    let report = store::import_assignment(src, data).map_err(|e| e.to_string())?;
    println!(
        "imported {} user(s) and {} message(s) from {} into {}",
        report.users,
        report.messages,
        src.display(),
        data.display()
    );
    for w in &report.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), String> {
    for (name, addr) in [("POP3", args.pop3), ("SMTP", args.smtp)] {
        if !addr.ip().is_loopback() && !args.allow_remote {
            return Err(format!(
                "refusing to listen for {name} on {addr}: it is not a loopback address. \
                 Add --allow-remote if other computers should connect (passwords then travel \
                 in clear text)."
            ));
        }
    }
    let store = open_store(args.data.as_deref())?;
    let config = ServerConfig {
        hostname: args.hostname,
        failed_login_delay: Duration::from_millis(args.login_delay_ms),
        idle_limit: Duration::from_secs(args.idle_secs),
        fixed_timestamp: args.apop_timestamp,
        fixed_date: None,
        max_message_size: args.max_message_size,
        local_domains: args.domains,
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
        let mut stop = mailwire::signals::StopSignals::new()?;
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
