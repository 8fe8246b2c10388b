//! `mailwire client`: the assignment's console mail client on stdin and stdout (the menu
//! and the protocol work are [`crate::client::console`]'s).

use std::io::IsTerminal;
use std::time::Duration;

use crate::client::ClientOptions;
use crate::client::console::{ConsoleConfig, run_console};

/// `mailwire client`: the assignment's console mail client.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// The POP3 server, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1110")]
    pub pop3: String,
    /// The SMTP server, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:2525")]
    pub smtp: String,
    /// Seconds to wait for a connection, and for the next bytes of a reply.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Also print every line that crosses the wire.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Runs the console client on stdin and stdout.
pub fn run_client(args: ClientArgs) -> Result<(), String> {
    let timeout = Duration::from_secs(args.timeout_secs);
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
    };
    run_console(config, stdin.lock(), std::io::stdout().lock()).map_err(|e| e.to_string())
}
