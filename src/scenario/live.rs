//! Real servers for a scenario: both protocols on loopback, on a runtime of their own, with
//! their events on a channel, stopped when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::servers::{self, EventSink, ServerConfig, ServerEvent};
use crate::store::Store;

/// Servers running in a background thread.
pub struct LiveServers {
    pop3: SocketAddr,
    smtp: SocketAddr,
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
    ) -> Result<Self, String> {
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
                        let _ = ready_tx.send(Err(format!("cannot start a runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let bound = async {
                        let p = tokio::net::TcpListener::bind(pop3)
                            .await
                            .map_err(|e| format!("cannot listen for POP3 on {pop3}: {e}"))?;
                        let s = tokio::net::TcpListener::bind(smtp)
                            .await
                            .map_err(|e| format!("cannot listen for SMTP on {smtp}: {e}"))?;
                        servers::start(store, config, p, s, EventSink::new(tx))
                            .map_err(|e| format!("cannot start the servers: {e}"))
                    };
                    match bound.await {
                        Ok(running) => {
                            let _ = ready_tx.send(Ok((running.pop3_addr(), running.smtp_addr())));
                            let _ = stopped.await;
                            running.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| format!("cannot start the server thread: {e}"))?;
        let (pop3, smtp) = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the servers did not start within 10 s".to_string())??;
        Ok(Self {
            pop3,
            smtp,
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
