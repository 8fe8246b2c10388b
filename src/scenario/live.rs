//! Real servers for a scenario: both protocols on loopback, on a runtime of their own, with
//! their events on a channel, stopped when dropped.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::proto::Protocol;
use crate::servers::{self, EventSink, ServerConfig, ServerEvent};
use crate::store::Store;

/// How long [`LiveServers::start`] waits for the servers to listen.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Why the scenario's servers did not start.
#[derive(Debug)]
pub enum ServersError {
    /// Their thread could not be started.
    Thread(io::Error),
    /// Their tokio runtime could not be built.
    Runtime(io::Error),
    /// A listening socket could not be bound (the port is taken, or needs privileges).
    Listen {
        protocol: Protocol,
        addr: SocketAddr,
        source: io::Error,
    },
    /// The bound listeners could not be started as servers.
    Start(io::Error),
    /// They were not listening after [`START_LIMIT`].
    Timeout,
}

impl fmt::Display for ServersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServersError::Thread(e) => write!(f, "cannot start the server thread: {e}"),
            ServersError::Runtime(e) => write!(f, "cannot start a runtime: {e}"),
            ServersError::Listen {
                protocol,
                addr,
                source,
            } => write!(f, "cannot listen for {protocol} on {addr}: {source}"),
            ServersError::Start(e) => write!(f, "cannot start the servers: {e}"),
            ServersError::Timeout => write!(
                f,
                "the servers did not start within {} s",
                START_LIMIT.as_secs()
            ),
        }
    }
}

impl std::error::Error for ServersError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServersError::Thread(e) | ServersError::Runtime(e) | ServersError::Start(e) => Some(e),
            ServersError::Listen { source, .. } => Some(source),
            ServersError::Timeout => None,
        }
    }
}

/// Servers running in a background thread.
pub struct LiveServers {
    pop3: SocketAddr,
    smtp: SocketAddr,
    /// The implicit-TLS ports (POP3S, SMTPS), when the config has a certificate.
    pop3s: Option<SocketAddr>,
    smtps: Option<SocketAddr>,
    events: Option<crossbeam_channel::Receiver<ServerEvent>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveServers {
    /// Starts both servers on the given addresses (port 0: any free port).
    pub fn start(
        store: Arc<Store>,
        config: ServerConfig,
        pop3: SocketAddr,
        smtp: SocketAddr,
    ) -> Result<Self, ServersError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("scenario-servers".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("scenario-server")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ServersError::Runtime(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let bound = async {
                        let listen = |protocol, addr| async move {
                            tokio::net::TcpListener::bind(addr).await.map_err(|source| {
                                ServersError::Listen {
                                    protocol,
                                    addr,
                                    source,
                                }
                            })
                        };
                        let p = listen(Protocol::Pop3, pop3).await?;
                        let s = listen(Protocol::Smtp, smtp).await?;
                        // With a certificate, implicit TLS too, on free ports beside them.
                        let (ps, ss) = if config.tls.is_some() {
                            let (mut p_any, mut s_any) = (pop3, smtp);
                            p_any.set_port(0);
                            s_any.set_port(0);
                            let ps = listen(Protocol::Pop3, p_any).await?;
                            let ss = listen(Protocol::Smtp, s_any).await?;
                            (Some(ps), Some(ss))
                        } else {
                            (None, None)
                        };
                        let listeners = servers::Listeners {
                            pop3: p,
                            smtp: s,
                            pop3s: ps,
                            smtps: ss,
                        };
                        servers::start_listeners(store, config, listeners, EventSink::new(tx))
                            .map_err(ServersError::Start)
                    };
                    match bound.await {
                        Ok(running) => {
                            let _ = ready_tx.send(Ok((
                                running.pop3_addr(),
                                running.smtp_addr(),
                                running.pop3s_addr(),
                                running.smtps_addr(),
                            )));
                            let _ = stopped.await;
                            running.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(ServersError::Thread)?;
        let (pop3, smtp, pop3s, smtps) = ready_rx
            .recv_timeout(START_LIMIT)
            .map_err(|_| ServersError::Timeout)??;
        Ok(Self {
            pop3,
            smtp,
            pop3s,
            smtps,
            events: Some(rx),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where POP3 listens.
    pub fn pop3_addr(&self) -> SocketAddr {
        self.pop3
    }

    /// Where SMTP listens.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp
    }

    /// The POP3S (implicit TLS) address, when the servers have a certificate.
    pub fn pop3s_addr(&self) -> Option<SocketAddr> {
        self.pop3s
    }

    /// The SMTPS (implicit TLS) address, when the servers have a certificate.
    pub fn smtps_addr(&self) -> Option<SocketAddr> {
        self.smtps
    }

    /// A handle that stops the servers when it is used or dropped (can be taken once; the
    /// servers then stop at the latest when this value is dropped, as before).
    pub fn take_stopper(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.stop.take()
    }

    /// The servers' events (can be taken once).
    pub fn take_events(&mut self) -> Option<crossbeam_channel::Receiver<ServerEvent>> {
        self.events.take()
    }
}

impl Drop for LiveServers {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_which_server_and_where() {
        let os = || io::Error::new(io::ErrorKind::AddrInUse, "address in use");
        let addr = SocketAddr::from(([127, 0, 0, 1], 110));
        let cases = [
            (
                ServersError::Listen {
                    protocol: Protocol::Pop3,
                    addr,
                    source: os(),
                },
                "cannot listen for POP3 on 127.0.0.1:110: address in use",
            ),
            (
                ServersError::Thread(os()),
                "cannot start the server thread: address in use",
            ),
            (
                ServersError::Runtime(os()),
                "cannot start a runtime: address in use",
            ),
            (
                ServersError::Start(os()),
                "cannot start the servers: address in use",
            ),
            (
                ServersError::Timeout,
                "the servers did not start within 10 s",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn a_taken_port_is_a_listen_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let dir = super::super::WorkDir::new().unwrap();
        let store = Arc::new(Store::create(dir.path(), &[]).unwrap());
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let e = LiveServers::start(store, ServerConfig::default(), any, addr)
            .err()
            .unwrap();
        assert!(
            matches!(e, ServersError::Listen { protocol: Protocol::Smtp, addr: a, .. } if a == addr),
            "{e}"
        );
    }
}
