//! The integration tests, as one binary: the crate and its dependencies are linked once for
//! all of them instead of once per file. Each module is one area of mailwire; the shared
//! helpers are `common` (temp folders, servers on free ports), `children` (child processes
//! killed and reaped on drop), `frames` (the TCP part of a captured frame) and
//! `decode_support` (hand-built frames and captures).
//!
//! All tests run as threads of this one process, so no test may change what the process
//! shares: environment variables, the current folder, signal handlers, the umask, namespaces.
//! A test that needs any of those, or that depends on what the process counts (the servers'
//! session ids), runs a child (this binary filtered with `--exact module::test`, or
//! `mailwire` itself) and sets them on the child's `Command`.

mod children;
mod common;
mod decode_support;
mod decode_tls;
mod frames;

mod capture_helper;
mod capture_live;
mod capture_sandbox;
mod check;
mod check_evidence;
mod check_serve;
mod cli;
mod client_console;
mod client_dovecot;
mod client_framing;
mod client_misbehaving;
mod client_tls;
mod decode_flows;
mod decode_frames;
mod decode_hostile;
mod decode_open;
mod decode_tshark;
mod export_dsb;
mod export_pcapng;
mod export_svg;
mod lesson;
mod mail_compose;
mod quiz;
mod scenarios_capture;
mod scenarios_memory;
mod scenarios_remote;
mod scenarios_sockets;
mod scenarios_tls;
mod servers_peers;
mod servers_tls;
mod store_crash;
mod timeline_links;
mod timeline_memory;
mod viz_app;
mod viz_check;
mod viz_file;
mod viz_layout;
mod viz_quiz;
mod viz_support;
mod viz_tls;
mod viz_watch;
mod viz_window;
mod watch;
mod worksheets;
