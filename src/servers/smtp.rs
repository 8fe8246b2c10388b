//! The SMTP server: answers the machine's recipient checks and deliveries with the store.
//! A message is acknowledged (`250`) only after [`Store::deliver`] has it on disk in every
//! recipient's Maildir.

use std::net::SocketAddr;
use std::sync::Arc;

use super::driver::{Responder, peer_text};
use super::{ServerConfig, Shared};
use crate::proto::Machine;
use crate::proto::sasl::{Credential, Security, Verified};
use crate::proto::smtp::{
    DeliveryError, Envelope, SmtpConfig, SmtpRequest, SmtpServer, received_header,
    return_path_header,
};
use crate::store::Store;

/// The machine and responder of a new session with the client at `peer`.
pub(super) fn start_session(
    shared: &Shared,
    session: u64,
    peer: Option<SocketAddr>,
    security: Security,
) -> (SmtpServer, SmtpResponder) {
    let config = &shared.config;
    let machine = SmtpServer::with_replies(
        SmtpConfig {
            hostname: config.hostname.clone(),
            local_domains: config.local_domains.clone(),
            max_message_size: config.max_message_size,
        },
        config.replies.smtp.clone(),
    )
    .with_security(security);
    let responder = SmtpResponder {
        backend: SmtpBackend::new(shared.store.clone(), config, peer_text(peer), session),
        failed_login_delay: config.failed_login_delay,
    };
    (machine, responder)
}

/// Answers an SMTP machine's requests with the store, synchronously: recipient checks, and
/// delivery with a Received header. The tokio responder runs deliveries on blocking threads;
/// the scenario runner calls it directly.
#[derive(Clone)]
pub struct SmtpBackend {
    store: Arc<Store>,
    hostname: String,
    peer: String,
    session: u64,
    fixed_date: Option<String>,
    deliveries: u64,
}

impl SmtpBackend {
    /// A backend for one session with the client at `peer`.
    pub fn new(store: Arc<Store>, config: &ServerConfig, peer: String, session: u64) -> Self {
        Self {
            store,
            hostname: config.hostname.clone(),
            peer,
            session,
            fixed_date: config.fixed_date.clone(),
            deliveries: 0,
        }
    }

    /// Answers the request.
    pub fn answer(&mut self, machine: &mut SmtpServer, request: SmtpRequest) {
        match request {
            SmtpRequest::CheckRecipient { user, .. } => {
                machine.answer_recipient_mailbox(self.mailbox_for(&user));
            }
            SmtpRequest::Deliver { envelope, content } => {
                let id = self.next_id();
                machine.answer_delivery(self.deliver(&id, &envelope, &content));
            }
            SmtpRequest::Authenticate { user, credential } => {
                machine.answer_auth(self.verify(&user, &credential));
            }
            // A backend has no socket (a machine offers STARTTLS only when its driver can
            // make the handshake): the session ends.
            SmtpRequest::StartTls => machine.receive_eof(),
        }
    }

    /// Checks an AUTH credential against the user's password.
    pub fn verify(&self, user: &str, credential: &Credential) -> Option<Verified> {
        self.store
            .password(user)
            .and_then(|secret| credential.verify(secret))
    }

    /// The mailbox mail for `user` goes to: the user's own; for `postmaster`, which RFC 5321
    /// (section 4.5.1) says every server must accept, the user whose name sorts first unless
    /// a user of that name exists. `None`: no such recipient.
    pub fn mailbox_for(&self, user: &str) -> Option<String> {
        if self.store.user_exists(user) {
            return Some(user.to_string());
        }
        if user.eq_ignore_ascii_case("postmaster") {
            return self.store.users().next().map(str::to_string);
        }
        None
    }

    /// The id of the next delivery for the Received header: session and count, in hex.
    pub fn next_id(&mut self) -> String {
        self.deliveries += 1;
        format!("{:x}.{:x}", self.session, self.deliveries)
    }

    /// Stores the message in every recipient's Maildir, with a Received header on top;
    /// returns only once it is on disk. A store error goes whole to the server's standard
    /// error (paths and hints are for whoever runs the server), briefly into the reply.
    pub fn deliver(
        &self,
        id: &str,
        envelope: &Envelope,
        content: &[u8],
    ) -> Result<(), DeliveryError> {
        let helo = envelope.helo.clone().unwrap_or_default();
        let date = self
            .fixed_date
            .clone()
            .unwrap_or_else(|| chrono::Utc::now().to_rfc2822());
        // RFC 3848: S for TLS, A for an AUTH login.
        let protocol = match (envelope.esmtp, envelope.tls, envelope.authenticated) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let header = received_header(&helo, &self.peer, &self.hostname, protocol, id, &date);
        let return_path = return_path_header(&envelope.reverse_path);
        let users: Vec<String> = envelope.recipients.iter().map(|r| r.user.clone()).collect();
        let mut message = Vec::with_capacity(return_path.len() + header.len() + content.len());
        message.extend_from_slice(return_path.as_bytes());
        message.extend_from_slice(header.as_bytes());
        message.extend_from_slice(content);
        self.store
            .deliver(&users, &message)
            .map(|_paths| ())
            .map_err(|e| {
                eprintln!("mailwire: SMTP server: {e}");
                DeliveryError::Store { brief: e.brief() }
            })
    }
}

/// Runs deliveries on blocking threads (they sync to disk), and AUTH checks (SCRAM's key
/// derivation takes a while); waits before answering a failed AUTH.
pub(super) struct SmtpResponder {
    backend: SmtpBackend,
    failed_login_delay: std::time::Duration,
}

impl Responder<SmtpServer> for SmtpResponder {
    async fn answer(&mut self, machine: &mut SmtpServer, request: SmtpRequest) {
        match request {
            SmtpRequest::Deliver { envelope, content } => {
                let id = self.backend.next_id();
                let backend = self.backend.clone();
                let result =
                    tokio::task::spawn_blocking(move || backend.deliver(&id, &envelope, &content))
                        .await
                        .unwrap_or(Err(DeliveryError::Internal));
                machine.answer_delivery(result);
            }
            SmtpRequest::Authenticate { user, credential } => {
                let backend = self.backend.clone();
                let verified =
                    tokio::task::spawn_blocking(move || backend.verify(&user, &credential))
                        .await
                        .unwrap_or(None);
                if verified.is_none() {
                    tokio::time::sleep(self.failed_login_delay).await;
                }
                machine.answer_auth(verified);
            }
            other => self.backend.answer(machine, other),
        }
    }
}
