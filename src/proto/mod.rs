//! The protocol core: POP3 and SMTP as values you feed bytes and ask what to do next.
//!
//! Invariant: nothing in here touches a socket, a file, a clock, tokio, pcap or egui.
//! A machine never blocks and never waits: when it needs something from the outside world
//! (check a password, read a message, store a mail) it emits a request and stops reading
//! input until the driver answers it.

pub mod line;
pub mod pop3;
pub mod smtp;
