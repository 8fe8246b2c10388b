//! mailwire: real POP3 and SMTP servers, a real client, and the packets between them.
//!
//! The crate is a library with one binary (`src/main.rs`). See ARCHITECTURE.md for the
//! code map; in short:
//! - [`proto`]: sans-IO protocol machines (bytes in, bytes and requests out);
//! - [`store`]: users and Maildir mailboxes on disk;
//! - [`servers`]: the tokio drivers that own the sockets and answer the machines' requests;
//! - [`cli`]: the commands of the binary (`src/main.rs` only parses and dispatches).

pub mod capture;
pub mod check;
pub mod cli;
pub mod client;
pub mod decode;
pub mod exchange;
pub mod export;
pub mod lesson;
pub mod proto;
pub mod quiz;
pub mod scenario;
pub mod servers;
pub mod signals;
pub mod store;
pub mod timeline;
#[cfg(feature = "window")]
pub mod viz;
