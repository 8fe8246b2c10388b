//! The SMTP server: answers the machine's recipient checks and deliveries with the store.
//! A message is acknowledged (`250`) only after [`Store::deliver`] has it on disk in every
//! recipient's Maildir.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::driver::{Goodbye, Machine, Responder, Step, drive, peer_text};
use super::{EventKind, EventSink, Protocol, ServerConfig};
use crate::proto::smtp::{
    SmtpConfig, SmtpEvent, SmtpOutput, SmtpRequest, SmtpServer, received_header,
};
use crate::store::Store;

impl Machine for SmtpServer {
    type Request = SmtpRequest;
    type Event = SmtpEvent;
    const PROTOCOL: Protocol = Protocol::Smtp;

    fn receive(&mut self, bytes: &[u8]) {
        SmtpServer::receive(self, bytes);
    }

    fn receive_eof(&mut self) {
        SmtpServer::receive_eof(self);
    }

    fn poll(&mut self) -> Option<Step<SmtpRequest, SmtpEvent>> {
        Some(match self.poll_output()? {
            SmtpOutput::Write(b) => Step::Write(b),
            SmtpOutput::Event(e) => Step::Event(e),
            SmtpOutput::Request(r) => Step::Request(r),
            SmtpOutput::Close => Step::Close,
        })
    }

    fn wrap(event: SmtpEvent) -> EventKind {
        EventKind::Smtp(event)
    }

    fn goodbye(&self, why: Goodbye) -> Option<Vec<u8>> {
        let text = match why {
            Goodbye::Idle => "421 4.4.2 idle too long, closing connection\r\n",
            Goodbye::ShuttingDown => "421 4.3.2 server shutting down, closing connection\r\n",
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
    let machine = SmtpServer::new(SmtpConfig {
        hostname: config.hostname.clone(),
        local_domains: config.local_domains.clone(),
        max_message_size: config.max_message_size,
    });
    let responder = SmtpResponder {
        store,
        config: config.clone(),
        peer: peer_text(stream.peer_addr().ok()),
        session,
    };
    drive(stream, machine, responder, session, config.idle_limit, events, stopped).await;
}

struct SmtpResponder {
    store: Arc<Store>,
    config: Arc<ServerConfig>,
    peer: String,
    session: u64,
}

impl Responder<SmtpServer> for SmtpResponder {
    async fn answer(&mut self, machine: &mut SmtpServer, request: SmtpRequest) {
        match request {
            SmtpRequest::CheckRecipient { user, .. } => {
                machine.answer_recipient(self.store.user_exists(&user));
            }
            SmtpRequest::Deliver { envelope, content } => {
                static COUNTER: AtomicU64 = AtomicU64::new(0);
                let id = format!(
                    "{:x}.{:x}",
                    self.session,
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let helo = envelope.helo.clone().unwrap_or_default();
                let date = chrono::Utc::now().to_rfc2822();
                let header =
                    received_header(&helo, &self.peer, &self.config.hostname, &id, &date);
                let users: Vec<String> =
                    envelope.recipients.iter().map(|r| r.user.clone()).collect();
                let store = self.store.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let mut message = Vec::with_capacity(header.len() + content.len());
                    message.extend_from_slice(header.as_bytes());
                    message.extend_from_slice(&content);
                    store.deliver(&users, &message)
                })
                .await;
                machine.answer_delivery(match result {
                    Ok(Ok(_paths)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("internal error: {e}")),
                });
            }
        }
    }
}
