//! SMTP (RFC 5321): commands, replies and the server machine.
//!
//! - [`command`]: parsing of command lines, mail paths and ESMTP parameters;
//! - [`reply`]: reply codes and text, and their wire form;
//! - [`server`]: [`SmtpServer`], the sans-IO session (bytes in; replies, events and
//!   requests out);
//! - [`compose`]: the message a client writes after DATA (RFC 5322 headers, RFC 2047
//!   encoded-words, a MIME text/plain body in 8bit or quoted-printable);
//! - [`received_header`], [`return_path_header`]: the trace lines the driver puts on top of
//!   delivered mail.

pub mod client;
pub mod command;
pub mod compose;
mod header;
pub mod reply;
pub mod server;

pub use command::{Command, Path, Verb};
pub use header::{received_header, return_path_header};
pub use reply::Reply;
pub use server::{
    DeliveryError, Envelope, Recipient, SmtpConfig, SmtpEvent, SmtpOutput, SmtpReplies,
    SmtpRequest, SmtpServer, SmtpState,
};

#[cfg(test)]
mod tests;
