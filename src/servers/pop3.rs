//! The POP3 server: answers the machine's login, fetch and update requests with the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::driver::{Goodbye, Machine, Responder, Step, drive};
use super::{EventKind, EventSink, Protocol, ServerConfig};
use crate::proto::pop3::{
    LoginOutcome, MessageInfo, Pop3Config, Pop3Event, Pop3Output, Pop3Request, Pop3Server,
};
use crate::store::{Maildrop, Store, StoreError};

impl Machine for Pop3Server {
    type Request = Pop3Request;
    type Event = Pop3Event;
    const PROTOCOL: Protocol = Protocol::Pop3;

    fn receive(&mut self, bytes: &[u8]) {
        Pop3Server::receive(self, bytes);
    }

    fn receive_eof(&mut self) {
        Pop3Server::receive_eof(self);
    }

    fn poll(&mut self) -> Option<Step<Pop3Request, Pop3Event>> {
        Some(match self.poll_output()? {
            Pop3Output::Write(b) => Step::Write(b),
            Pop3Output::Event(e) => Step::Event(e),
            Pop3Output::Request(r) => Step::Request(r),
            Pop3Output::Close => Step::Close,
        })
    }

    fn wrap(event: Pop3Event) -> EventKind {
        EventKind::Pop3(event)
    }

    fn goodbye(&self, why: Goodbye) -> Option<Vec<u8>> {
        // RFC 1939: on autologout the session ends without entering UPDATE.
        let text = match why {
            Goodbye::Idle => "-ERR autologout timer expired, nothing deleted\r\n",
            Goodbye::ShuttingDown => "-ERR [SYS/TEMP] server shutting down, nothing deleted\r\n",
        };
        Some(text.as_bytes().to_vec())
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    store: Arc<Store>,
    config: Arc<ServerConfig>,
    events: EventSink,
    stopped: watch::Receiver<bool>,
) {
    super::accept_loop(listener, stopped.clone(), move |stream, session, stopped| {
        let store = store.clone();
        let config = config.clone();
        let events = events.clone();
        session_task(stream, session, store, config, events, stopped)
    })
    .await;
}

async fn session_task(
    stream: TcpStream,
    session: u64,
    store: Arc<Store>,
    config: Arc<ServerConfig>,
    events: EventSink,
    stopped: watch::Receiver<bool>,
) {
    let timestamp = config
        .fixed_timestamp
        .clone()
        .unwrap_or_else(|| unique_timestamp(&config.hostname));
    let machine = Pop3Server::new(Pop3Config {
        hostname: config.hostname.clone(),
        timestamp,
    });
    let responder = Pop3Responder {
        store,
        config: config.clone(),
        maildrop: None,
    };
    drive(stream, machine, responder, session, config.idle_limit, events, stopped).await;
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

/// Holds the session's locked maildrop; dropping it (session end, however it ends) releases
/// the lock and deletes nothing.
struct Pop3Responder {
    store: Arc<Store>,
    config: Arc<ServerConfig>,
    maildrop: Option<Maildrop>,
}

impl Responder<Pop3Server> for Pop3Responder {
    async fn answer(&mut self, machine: &mut Pop3Server, request: Pop3Request) {
        match request {
            Pop3Request::Login { user, credential } => {
                let store = self.store.clone();
                let result = tokio::task::spawn_blocking(move || {
                    match store.password(&user) {
                        Some(secret) if credential.matches(secret) => {
                            store.lock_maildrop(&user).map(Some)
                        }
                        _ => Ok(None),
                    }
                })
                .await;
                let outcome = match result {
                    Ok(Ok(Some(maildrop))) => {
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
                    Ok(Ok(None)) => LoginOutcome::Rejected,
                    Ok(Err(StoreError::InUse { .. })) => LoginOutcome::InUse,
                    Ok(Err(e)) => LoginOutcome::Failed(e.to_string()),
                    Err(e) => LoginOutcome::Failed(format!("internal error: {e}")),
                };
                if !matches!(outcome, LoginOutcome::Accepted(_)) {
                    tokio::time::sleep(self.config.failed_login_delay).await;
                }
                machine.answer_login(outcome);
            }
            Pop3Request::Fetch { index } => {
                let result = self
                    .with_maildrop(move |m| m.read(index).map_err(|e| e.to_string()))
                    .await;
                machine.answer_fetch(result);
            }
            Pop3Request::Update { delete } => {
                let result = self
                    .with_maildrop(move |m| {
                        m.expunge(&delete).map(|_| ()).map_err(|e| e.to_string())
                    })
                    .await;
                // Release the lock now: the session is over.
                self.maildrop = None;
                machine.answer_update(result);
            }
        }
    }
}

impl Pop3Responder {
    /// Runs blocking store work on the locked maildrop off the async threads.
    async fn with_maildrop<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Maildrop) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let Some(mut maildrop) = self.maildrop.take() else {
            return Err("no maildrop is open".to_string());
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = work(&mut maildrop);
            (maildrop, result)
        })
        .await;
        match joined {
            Ok((maildrop, result)) => {
                self.maildrop = Some(maildrop);
                result
            }
            Err(e) => Err(format!("internal error: {e}")),
        }
    }
}
