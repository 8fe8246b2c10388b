//! The commands of the `mailwire` binary, one file each: their flags (clap `Args`) and
//! their entry points, which read the terminal, print, and call into the modules below.
//! `src/main.rs` only parses the command line and calls one `run_*` function here.
//!
//! - [`window`]: `mailwire` with no command, the classroom window;
//! - [`run`]: `mailwire run`, a scenario on real sockets with live capture;
//! - [`open`]: `mailwire open FILE`, a capture file's transcripts (its line formats are
//!   shared by `run` and `watch`);
//! - [`watch`]: `mailwire watch --port N`, the same live for programs mailwire did not start;
//! - [`serve`]: `mailwire serve`, the servers without a window;
//! - [`client`] and [`telnet`]: `mailwire client` and `mailwire telnet` on stdin and stdout;
//! - [`import_assignment`]: `mailwire import-assignment`.
//!
//! `run` and the window re-execute mailwire inside the sandbox through
//! [`crate::capture::sandbox::rerun_in_sandbox`].
//!
//! Invariant: this is the top of the library: nothing outside `cli` (but `main.rs`) uses it.
//! Code that another module needs does not belong here.

pub mod check;
pub mod client;
pub mod import_assignment;
pub mod open;
pub mod run;
pub mod serve;
pub mod telnet;
pub mod watch;
#[cfg(feature = "window")]
pub mod window;

use std::net::SocketAddr;

use crate::scenario::recorder::RecorderOptions;

/// A recorder's options for where this process runs: in the sandbox, mailwire's servers
/// take the standard ports 110 and 25 (which Wireshark recognises); outside, free ports.
fn recorder_options(in_sandbox: bool) -> RecorderOptions {
    if in_sandbox {
        RecorderOptions {
            pop3: SocketAddr::from(([127, 0, 0, 1], 110)),
            smtp: SocketAddr::from(([127, 0, 0, 1], 25)),
            sandboxed: true,
            ..RecorderOptions::default()
        }
    } else {
        RecorderOptions::default()
    }
}
