//! The POP3 server: answers the machine's login, fetch and update requests with the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::driver::Responder;
use super::{ServerConfig, Shared};
use crate::proto::Machine;
use crate::proto::pop3::{
    Credential, LoginOutcome, MaildropError, MessageInfo, Pop3Config, Pop3Request, Pop3Server,
};
use crate::proto::sasl::Security;
use crate::store::{Maildrop, Store, StoreError};

/// The machine and responder of a new session.
pub(super) fn start_session(
    shared: &Shared,
    _session: u64,
    _peer: Option<SocketAddr>,
    security: Security,
) -> (Pop3Server, Pop3Responder) {
    let config = &shared.config;
    let timestamp = config
        .fixed_timestamp
        .clone()
        .unwrap_or_else(|| unique_timestamp(&config.hostname));
    let machine = Pop3Server::with_replies(
        Pop3Config {
            hostname: config.hostname.clone(),
            timestamp,
            apop_only: config.apop_only,
        },
        config.replies.pop3.clone(),
    )
    .with_security(security);
    let responder = Pop3Responder {
        backend: Some(Pop3Backend::new(shared.store.clone())),
        config: config.clone(),
    };
    (machine, responder)
}

/// An APOP timestamp unique per connection: `<pid.counter.nanos@host>` (RFC 1939 section 7
/// suggests process id and clock).
fn unique_timestamp(host: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("<{}.{n}.{nanos}@{host}>", std::process::id())
}

/// Answers a POP3 machine's requests with the store, synchronously. Holds the session's
/// locked maildrop; dropping it (session end, however it ends) releases the lock and deletes
/// nothing. The tokio responder runs it on blocking threads; the scenario runner calls it
/// directly.
pub struct Pop3Backend {
    store: Arc<Store>,
    maildrop: Option<Maildrop>,
}

impl Pop3Backend {
    /// A backend for one session on `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            maildrop: None,
        }
    }

    /// Answers the request (all but the failed-login delay, which is the caller's).
    /// A backend has no socket: STLS ends the session (a machine offers it only when its
    /// driver can make the handshake).
    pub fn answer(&mut self, machine: &mut Pop3Server, request: Pop3Request) {
        match request {
            Pop3Request::Login { user, credential } => {
                let (outcome, server_final) = self.login_verified(&user, &credential);
                machine.answer_login_with(outcome, server_final);
            }
            Pop3Request::Fetch { index } => machine.answer_fetch(self.fetch(index)),
            Pop3Request::Update { delete } => machine.answer_update(self.update(&delete)),
            Pop3Request::StartTls => machine.receive_eof(),
        }
    }

    /// Checks the credential and locks the maildrop.
    pub fn login(&mut self, user: &str, credential: &Credential) -> LoginOutcome {
        self.login_verified(user, credential).0
    }

    /// Checks the credential and locks the maildrop; with SCRAM's server-final message when
    /// the credential was a SCRAM proof.
    pub fn login_verified(
        &mut self,
        user: &str,
        credential: &Credential,
    ) -> (LoginOutcome, Option<Vec<u8>>) {
        let verified = self
            .store
            .password(user)
            .and_then(|secret| credential.verify(secret));
        let Some(verified) = verified else {
            return (LoginOutcome::Rejected, None);
        };
        (self.lock(user), verified.server_final)
    }

    fn lock(&mut self, user: &str) -> LoginOutcome {
        match self.store.lock_maildrop(user) {
            Ok(maildrop) => {
                let listing = maildrop
                    .messages()
                    .iter()
                    .map(|m| MessageInfo {
                        size: m.size,
                        uid: m.uid.clone(),
                    })
                    .collect();
                self.maildrop = Some(maildrop);
                LoginOutcome::Accepted(listing)
            }
            Err(StoreError::InUse { .. }) => LoginOutcome::InUse,
            Err(e) => LoginOutcome::Failed(Self::report(&e)),
        }
    }

    /// A store error: the whole of it on the server's standard error (paths and hints are
    /// for whoever runs the server), the brief form for the reply to the client.
    fn report(e: &StoreError) -> MaildropError {
        eprintln!("mailwire: POP3 server: {e}");
        MaildropError::Store { brief: e.brief() }
    }

    /// Reads message `index` of the locked maildrop.
    pub fn fetch(&mut self, index: usize) -> Result<Vec<u8>, MaildropError> {
        let maildrop = self.maildrop.as_ref().ok_or(MaildropError::NotLocked)?;
        maildrop.read(index).map_err(|e| Self::report(&e))
    }

    /// Removes the marked messages and releases the maildrop.
    pub fn update(&mut self, delete: &[usize]) -> Result<(), MaildropError> {
        let mut maildrop = self.maildrop.take().ok_or(MaildropError::NotLocked)?;
        maildrop
            .expunge(delete)
            .map(|_| ())
            .map_err(|e| Self::report(&e))
    }
}

/// Runs the backend on blocking threads, and waits before answering a failed login.
pub(super) struct Pop3Responder {
    backend: Option<Pop3Backend>,
    config: Arc<ServerConfig>,
}

impl Responder<Pop3Server> for Pop3Responder {
    async fn answer(&mut self, machine: &mut Pop3Server, request: Pop3Request) {
        let is_login = matches!(request, Pop3Request::Login { .. });
        let Some(mut backend) = self.backend.take() else {
            return;
        };
        // The machine is answered here, after the blocking work, so that the delay of a
        // failed login comes before the reply.
        let joined = tokio::task::spawn_blocking(move || {
            let outcome = match request {
                Pop3Request::Login { user, credential } => {
                    let (outcome, server_final) = backend.login_verified(&user, &credential);
                    Answer::Login(outcome, server_final)
                }
                Pop3Request::Fetch { index } => Answer::Fetch(backend.fetch(index)),
                Pop3Request::Update { delete } => Answer::Update(backend.update(&delete)),
                // The driver makes the handshake and never hands this request over; were it
                // handed over, the session ends (as in the synchronous backend).
                Pop3Request::StartTls => Answer::EndSession,
            };
            (backend, outcome)
        })
        .await;
        let Ok((backend, answer)) = joined else {
            // The blocking task panicked: end the session; the maildrop lock is gone with it.
            machine.receive_eof();
            return;
        };
        self.backend = Some(backend);
        match answer {
            Answer::Login(outcome, server_final) => {
                if is_login && !matches!(outcome, LoginOutcome::Accepted(_)) {
                    tokio::time::sleep(self.config.failed_login_delay).await;
                }
                machine.answer_login_with(outcome, server_final);
            }
            Answer::Fetch(result) => machine.answer_fetch(result),
            Answer::Update(result) => machine.answer_update(result),
            Answer::EndSession => machine.receive_eof(),
        }
    }
}

enum Answer {
    Login(LoginOutcome, Option<Vec<u8>>),
    Fetch(Result<Vec<u8>, MaildropError>),
    Update(Result<(), MaildropError>),
    EndSession,
}
