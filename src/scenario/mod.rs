//! Scripted, step-through sessions: the file format, fixtures, and the step engine that
//! runs them in memory (the sans-IO machines wired together) or over real sockets.

pub mod engine;
pub mod fixture;
pub mod format;
pub mod live;
pub mod recorder;
pub mod transport;

pub use engine::{Engine, transcript};
pub use format::{Action, Scenario, ScenarioError, Step};

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exchange::{StepOutcome, TransportError};
use crate::servers::ServerConfig;

/// Why a scenario could not start running (its file was fine).
#[derive(Debug)]
pub enum StartError {
    /// Its private work folder could not be made.
    WorkDir(io::Error),
    /// Its fixture could not be written.
    Fixture(fixture::FixtureError),
    /// Its servers did not start.
    Servers(live::ServersError),
    /// The servers' events were taken by someone else (a bug of mailwire's).
    EventsTaken,
    /// The client side could not be set up.
    Transport(TransportError),
    /// The servers' certificate could not be made (a scenario that starts TLS).
    Tls(crate::servers::TlsError),
    /// The client's TLS configuration could not be made.
    ClientTls(crate::client::ClientTlsError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::WorkDir(e) => write!(f, "cannot make a work folder: {e}"),
            StartError::Fixture(e) => e.fmt(f),
            StartError::Servers(e) => e.fmt(f),
            StartError::EventsTaken => f.write_str("the server events were already taken"),
            StartError::Transport(e) => e.fmt(f),
            StartError::Tls(e) => e.fmt(f),
            StartError::ClientTls(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::WorkDir(e) => Some(e),
            StartError::Fixture(e) => Some(e),
            StartError::Servers(e) => Some(e),
            StartError::Transport(e) => Some(e),
            StartError::Tls(e) => Some(e),
            StartError::ClientTls(e) => Some(e),
            StartError::EventsTaken => None,
        }
    }
}

impl From<fixture::FixtureError> for StartError {
    fn from(e: fixture::FixtureError) -> Self {
        StartError::Fixture(e)
    }
}

impl From<live::ServersError> for StartError {
    fn from(e: live::ServersError) -> Self {
        StartError::Servers(e)
    }
}

impl From<TransportError> for StartError {
    fn from(e: TransportError) -> Self {
        StartError::Transport(e)
    }
}

/// A scenario's private working folder (its fresh fixture), removed when dropped.
#[derive(Debug)]
pub struct WorkDir(PathBuf);

impl WorkDir {
    /// A new empty folder under the system's temp folder.
    pub fn new() -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mailwire-scenario-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server settings a scenario's fixture asks for: fixed timestamp and date, so every run
/// is the same.
pub fn server_config(scenario: &Scenario) -> ServerConfig {
    let f = &scenario.fixture;
    ServerConfig {
        hostname: f.hostname.clone(),
        failed_login_delay: std::time::Duration::from_millis(f.login_delay_ms),
        fixed_timestamp: f.apop_timestamp.clone(),
        apop_only: f.apop_only,
        idle_limit: f.autologout_ms.map_or(
            ServerConfig::default().idle_limit,
            std::time::Duration::from_millis,
        ),
        fixed_date: Some(f.date.clone()),
        local_domains: f.domains.clone(),
        replies: f.replies.clone(),
        ..ServerConfig::default()
    }
}

/// A fresh copy of the scenario's fixture in a new work folder.
pub fn fresh_fixture(
    scenario: &Scenario,
) -> Result<(WorkDir, Arc<crate::store::Store>), StartError> {
    let dir = WorkDir::new().map_err(StartError::WorkDir)?;
    let store = fixture::build(&scenario.fixture, dir.path())?;
    Ok((dir, Arc::new(store)))
}

/// For a scenario that starts TLS: the servers' self-signed certificate, made in its work
/// folder `dir`, and a client configuration that trusts exactly that certificate. `None`
/// for a scenario without TLS (its servers offer no STLS/STARTTLS, as before).
pub fn scenario_tls(
    scenario: &Scenario,
    dir: &Path,
) -> Result<Option<(crate::servers::TlsSettings, crate::client::ClientTls)>, StartError> {
    if !scenario.uses_tls() {
        return Ok(None);
    }
    let settings = crate::servers::TlsSettings::load_or_create(dir, &scenario.fixture.hostname)
        .map_err(StartError::Tls)?;
    let trust = crate::client::Trust::Certificates(vec![settings.cert_path().to_path_buf()]);
    let client = crate::client::ClientTls::new(&trust).map_err(StartError::ClientTls)?;
    Ok(Some((settings, client)))
}

/// Starts a scenario's servers on real sockets (with TLS, and implicit-TLS ports, when it
/// starts TLS) and a socket transport to them.
pub(crate) fn socket_servers(
    scenario: &Scenario,
    dir: &Path,
    store: Arc<crate::store::Store>,
    pop3: std::net::SocketAddr,
    smtp: std::net::SocketAddr,
) -> Result<(live::LiveServers, transport::SocketTransport), StartError> {
    let mut config = server_config(scenario);
    let tls = scenario_tls(scenario, dir)?;
    config.tls = tls.as_ref().map(|(settings, _)| settings.clone());
    let mut servers = live::LiveServers::start(store, config, pop3, smtp)?;
    let events = servers.take_events().ok_or(StartError::EventsTaken)?;
    let mut transport =
        transport::SocketTransport::new(servers.pop3_addr(), servers.smtp_addr(), events)?;
    if let Some(stop) = servers.take_stopper() {
        transport.set_stopper(stop);
    }
    if let Some((_, client)) = tls {
        transport.set_tls(client, servers.pop3s_addr(), servers.smtps_addr());
    }
    Ok((servers, transport))
}

/// Runs the whole scenario through the sans-IO machines in memory: no sockets, no threads.
pub fn run_in_memory(scenario: &Scenario) -> Result<Vec<StepOutcome>, StartError> {
    let (_dir, store) = fresh_fixture(scenario)?;
    let mut transport = transport::MemoryTransport::new(store, server_config(scenario));
    if scenario.uses_tls() {
        transport.offer_tls();
    }
    let mut engine = Engine::new(scenario.clone(), transport);
    Ok(engine.run_all())
}

/// Runs the whole scenario on real sockets: its own servers on 127.0.0.1 (free ports), the
/// client over TCP. Returns the outcomes.
pub fn run_on_sockets(scenario: &Scenario) -> Result<Vec<StepOutcome>, StartError> {
    let (dir, store) = fresh_fixture(scenario)?;
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let (_servers, transport) = socket_servers(scenario, dir.path(), store, any, any)?;
    let mut engine = Engine::new(scenario.clone(), transport);
    Ok(engine.run_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_say_what_did_not_start() {
        assert_eq!(
            StartError::WorkDir(io::Error::other("read-only file system")).to_string(),
            "cannot make a work folder: read-only file system"
        );
        assert_eq!(
            StartError::EventsTaken.to_string(),
            "the server events were already taken"
        );
        assert_eq!(
            StartError::from(live::ServersError::Timeout).to_string(),
            "the servers did not start within 10 s"
        );
        let size = fixture::FixtureError::SizeTooLarge { size: 1 };
        assert_eq!(StartError::from(size).to_string(), "size 1 is too large");
        assert_eq!(
            StartError::from(TransportError::Closed).to_string(),
            TransportError::Closed.to_string()
        );
    }
}
