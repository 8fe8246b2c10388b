//! The `mailwire` command line: parses it (clap) and calls the command's entry point in
//! [`mailwire::cli`], which holds each command's flags and code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use mailwire::cli;

/// Real POP3 and SMTP servers and client on your computer, and the packets between them.
///
/// Without a command, `mailwire` opens the window on the demo scenario; `mailwire FILE`
/// opens it on a capture file instead (pcap or pcapng, from Wireshark, tcpdump or
/// mailwire's own export), stepped through with Next and Back and no servers.
#[derive(Parser)]
#[command(
    name = "mailwire",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = "A FILE named like a command (open, run, ...) is read as the command: write \
                  ./open to mean the file."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Without a command: open the window on this capture file (pcap or pcapng) instead of
    /// the demo scenario. Next and Back walk its steps (mailwire's exports keep their
    /// captions; another capture gets a step per command and reply); no server runs.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Without a command: run the demo scenario (or read FILE) in the window, save a PNG of
    /// the window to PNG, and exit.
    #[arg(long, value_name = "PNG")]
    screenshot: Option<PathBuf>,
    /// Without a command: open the window in presenter mode (dark, larger text).
    #[arg(long)]
    presenter: bool,
    /// Without a command: run the window on this computer's real loopback instead of
    /// mailwire's private network, so it can reach other servers here (your own, Dovecot)
    /// and outside programs can reach its servers. Capture then needs root, CAP_NET_RAW or
    /// membership of the `mailwire` group (the Debian package's capture helper).
    #[arg(long)]
    no_sandbox: bool,
    /// Without a command: open the window watching these TCP ports live (your own client
    /// and server, Thunderbird, Dovecot), comma-separated, e.g. `--watch 2110,2525`. The
    /// window stays on this computer's real network (outside mailwire's private one, where
    /// your programs could not be seen), so capture needs root, CAP_NET_RAW or membership of
    /// the `mailwire` group (the Debian package's capture helper).
    #[arg(long, value_name = "PORTS", conflicts_with = "file")]
    watch: Option<String>,
    /// With --watch: the interface to capture on (`lo`, this computer's loopback, unless
    /// given).
    #[arg(long, value_name = "NAME", requires = "watch")]
    interface: Option<String>,
    /// With FILE: TLS secrets to decrypt its TLS sessions with, besides those the file
    /// carries: an NSS key log (the format SSLKEYLOGFILE writes). A line that is not a key
    /// log line stops mailwire before the window opens.
    #[arg(long, value_name = "KEYS", requires = "file")]
    keylog: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the POP3 and SMTP servers on a data directory (no window).
    Serve(cli::serve::ServeArgs),
    /// Import the mail server assignment's layout (User.txt, <user>/MyMailBox.txt) into a
    /// data directory.
    ImportAssignment(cli::import_assignment::ImportArgs),
    /// Read a pcap/pcapng capture and print each TCP connection's POP3/SMTP transcript with
    /// the frames that carried every command and reply.
    Open(cli::open::OpenArgs),
    /// Watch your own programs live (your client and server, Thunderbird): capture the TCP
    /// ports you name and print every command and reply as it crosses the wire. Needs root,
    /// CAP_NET_RAW or membership of the `mailwire` group (the Debian package's capture helper).
    Watch(cli::watch::WatchArgs),
    /// The assignment's console mail client: Manage Mail (POP3) and Send Mail (SMTP).
    Client(cli::client::ClientArgs),
    /// Type POP3 or SMTP commands by hand and see every byte the server sends (like PuTTY).
    Telnet(cli::telnet::TelnetArgs),
    /// Run a scenario step by step on real sockets, with live capture; --list shows them.
    Run(cli::run::RunArgs),
    /// Check your own POP3 and SMTP servers against the RFCs (exit 0: every must passed).
    Check(cli::check::CheckArgs),
}

// `mailwire generate ...`: writes the man pages or a shell's completion script, made from
// `Cli`'s very definitions (the Debian package is built with it, so `man mailwire` always
// says what `--help` says). Not one of `Cli`'s commands, so neither `--help`, the man pages
// nor the completions offer it; `main` looks for it before parsing.
#[derive(Parser)]
#[command(
    name = "mailwire generate",
    bin_name = "mailwire generate",
    about = "Write mailwire's man pages or a shell's completion script (for packaging)"
)]
struct GenerateCli {
    #[command(subcommand)]
    what: Generate,
}

/// What `mailwire generate` writes.
#[derive(Subcommand)]
enum Generate {
    /// One man page per command (mailwire.1, mailwire-serve.1, ...) into DIR.
    Man {
        /// The folder to write the pages in (made if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The completion script for SHELL, on standard output.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

/// Runs `mailwire generate`.
fn generate(what: Generate) -> Result<(), String> {
    match what {
        Generate::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot make the folder {}: {e}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .map_err(|e| format!("cannot write the man pages into {}: {e}", dir.display()))
        }
        Generate::Completions { shell } => {
            // Into memory first: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mailwire", &mut script);
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, &script)
                .and_then(|()| std::io::Write::flush(&mut out))
                .map_err(|e| format!("cannot write the {shell} completions: {e}"))
        }
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "generate") {
        // `generate` becomes the program name, so its own help reads `mailwire generate`.
        let what = GenerateCli::parse_from(std::env::args_os().skip(1)).what;
        return match generate(what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("mailwire: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Cli::parse();
    if args.command.is_some()
        && (args.screenshot.is_some()
            || args.presenter
            || args.no_sandbox
            || args.watch.is_some()
            || args.interface.is_some()
            || args.keylog.is_some())
    {
        eprintln!(
            "mailwire: --screenshot, --presenter, --no-sandbox, --watch, --interface and \
             --keylog (before a command) are for the window; `mailwire run --no-sandbox` is \
             the scenario runner's, `mailwire watch --port N` watches in the terminal, \
             `mailwire open FILE --keylog KEYS` decrypts in the terminal"
        );
        return ExitCode::FAILURE;
    }
    let result = match args.command {
        // No command: the classroom window, with the demo scenario loaded.
        #[cfg(feature = "window")]
        None => cli::window::run_window(cli::window::WindowArgs {
            screenshot: args.screenshot,
            presenter: args.presenter,
            no_sandbox: args.no_sandbox,
            file: args.file,
            watch: args.watch,
            interface: args.interface,
            keylog: args.keylog,
        }),
        #[cfg(not(feature = "window"))]
        None => Err(
            "this mailwire was built without the window (cargo feature `window`); \
                     give a command, e.g. `mailwire serve` (see --help)"
                .to_string(),
        ),
        Some(Cmd::Serve(a)) => cli::serve::run_serve(a),
        Some(Cmd::ImportAssignment(a)) => cli::import_assignment::run_import(a),
        Some(Cmd::Open(a)) => cli::open::run_open(a),
        Some(Cmd::Watch(a)) => cli::watch::run_watch(a),
        Some(Cmd::Client(a)) => cli::client::run_client(a),
        Some(Cmd::Telnet(a)) => cli::telnet::run_telnet(a),
        Some(Cmd::Run(a)) => cli::run::run_scenario(a),
        Some(Cmd::Check(a)) => return ExitCode::from(cli::check::run_check(a)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mailwire: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own checks of the definitions the man pages and completions are made from.
    #[test]
    fn the_command_line_definitions_are_consistent() {
        Cli::command().debug_assert();
        GenerateCli::command().debug_assert();
    }

    /// `generate man` writes a page per visible command, none for itself.
    #[test]
    fn man_pages_cover_every_visible_command() {
        let dir = std::env::temp_dir().join(format!("mailwire-man-{}", std::process::id()));
        generate(Generate::Man { dir: dir.clone() }).unwrap();
        let mut pages: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        pages.sort();
        let _ = std::fs::remove_dir_all(&dir);
        let mut expected = vec!["mailwire.1".to_string()];
        for sub in Cli::command().get_subcommands() {
            expected.push(format!("mailwire-{}.1", sub.get_name()));
        }
        expected.sort();
        assert_eq!(pages, expected);
        assert!(!pages.iter().any(|p| p.contains("generate")));
    }
}
