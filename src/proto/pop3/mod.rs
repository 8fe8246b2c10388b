//! POP3 (RFC 1939, RFC 2449): commands, replies and the server machine.

pub mod client;
pub mod command;
pub mod server;

pub use command::{Command, ParseError};
pub use server::{
    Credential, LoginOutcome, MaildropError, MessageInfo, Pop3Config, Pop3Event, Pop3Output,
    Pop3Replies, Pop3Request, Pop3Server, Pop3State, apop_digest,
};

#[cfg(test)]
mod tests;
