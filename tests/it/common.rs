//! Shared test support: temp folders and files, and a demo data directory with both servers
//! running on 127.0.0.1:0 in a background runtime. Also the one place tests take child
//! processes ([`Spawned`], from `children`) and captured frames ([`tcp_segment`], from
//! `frames`) from.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mailwire::servers::{self, EventSink, ServerConfig, ServerEvent};
use mailwire::store::{self, Store};

pub use crate::children::{MAILWIRE, Spawned, run_with_input};
pub use crate::frames::{TCP_ACK, TCP_SYN, contains_bytes, tcp_segment};

/// A temporary folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "mailwire-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A path for one temporary file (`.0`), in a [`TempDir`] of its own removed on drop.
pub struct TempFile(pub PathBuf, TempDir);

impl TempFile {
    pub fn new(name: &str) -> Self {
        let dir = TempDir::new("file");
        TempFile(dir.path().join(name), dir)
    }
}

/// Both servers on a fresh demo data directory.
pub struct Running {
    pub pop3: SocketAddr,
    pub smtp: SocketAddr,
    pub dir: TempDir,
    pub events: crossbeam_channel::Receiver<ServerEvent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    /// Files in a user's Maildir new/ and cur/.
    pub fn maildir_files(&self, user: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.data().join(user).join("Maildir").join(sub);
            for entry in std::fs::read_dir(dir).unwrap() {
                files.push(entry.unwrap().path());
            }
        }
        files.sort();
        files
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn test_config() -> ServerConfig {
    ServerConfig {
        failed_login_delay: Duration::from_millis(20),
        idle_limit: Duration::from_secs(30),
        ..ServerConfig::default()
    }
}

/// Starts the servers on a new demo data directory.
pub fn start_demo() -> Running {
    start_with(test_config(), |dir| store::create_demo(dir).unwrap())
}

/// Starts the servers with `config` on the store made by `make_store` in a temp folder.
pub fn start_with(config: ServerConfig, make_store: impl FnOnce(&Path) -> Store) -> Running {
    let dir = TempDir::new("srv");
    let store = Arc::new(make_store(dir.path()));
    let (tx, rx) = crossbeam_channel::unbounded();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("test-servers".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let pop3 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let smtp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let running =
                    servers::start(store, config, pop3, smtp, EventSink::new(tx)).unwrap();
                addr_tx
                    .send((running.pop3_addr(), running.smtp_addr()))
                    .unwrap();
                let _ = stopped.await;
                running.shutdown().await;
            });
        })
        .unwrap();
    let (pop3, smtp) = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Running {
        pop3,
        smtp,
        dir,
        events: rx,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// Runs a program to completion (bounded by `timeout`) and returns its stdout; panics with
/// its stderr if it fails.
pub fn run_program(program: &str, args: &[&str], timeout: Duration) -> String {
    let out = run_with_input(std::process::Command::new(program).args(args), "", timeout);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// A raw line-oriented TCP conversation, for exact protocol checks.
pub struct Raw {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Self {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self {
            reader: std::io::BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    pub fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        l
    }

    pub fn send(&mut self, text: &str) {
        use std::io::Write;
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    /// Sends one command line and returns the first reply line.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.line()
    }

    /// Reads the lines of a multi-line reply up to and excluding ".".
    pub fn body(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            if l == ".\r\n" || l.is_empty() {
                return lines;
            }
            lines.push(l);
        }
    }
}

/// A loopback address where connections are refused: a socket is bound to it but does not
/// listen, so no other test can take the port while the returned socket lives.
pub fn refusing_address() -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

/// A copy of this test binary that user `nobody` can run; removed with its folder.
pub struct NobodyCopy {
    pub dir: TempDir,
    pub exe: PathBuf,
}

/// A copy of this test binary in a folder that user `nobody` can read and run, for tests
/// that drop privileges; removed with the folder. `cp` does the copying, so no handle open
/// for writing on the copy can leak into a process another test forks meanwhile (its exec
/// of the copy would fail with "Text file busy").
pub fn copy_self_for_nobody(tag: &str) -> NobodyCopy {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new(tag);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join(format!("{tag}-test"));
    let status = std::process::Command::new("cp")
        .arg(std::env::current_exe().unwrap())
        .arg(&exe)
        .status()
        .unwrap();
    assert!(status.success(), "cp of the test binary failed: {status}");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    NobodyCopy { dir, exe }
}

/// Panics unless `out` holds every one of `parts`, in this order (each after the last).
pub fn assert_in_order(out: &str, parts: &[&str]) {
    let mut from = 0;
    for part in parts {
        match out.get(from..).and_then(|rest| rest.find(part)) {
            Some(at) => from += at + part.len(),
            None => panic!("{part:?} not found (in this order) in:\n{out}"),
        }
    }
}

/// The effective user and group ids of this process.
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid take no arguments, cannot fail and touch no memory of ours.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Whether this process runs as root.
pub fn running_as_root() -> bool {
    effective_ids().0 == 0
}

/// Whether the built-in scenario `name` loses a segment on purpose, which only mailwire's
/// private network allows (its netfilter rule touches nothing else): a test that records in
/// this process skips it, saying so; `export_pcapng::the_retransmission_scenario_...` runs
/// it through `mailwire run`, which enters that network.
pub fn needs_private_network(name: &str) -> bool {
    use mailwire::scenario::format;
    let needs = format::find(name).is_ok_and(|s| {
        s.steps
            .iter()
            .any(|step| matches!(step.action, format::Action::LoseNextFromServer))
    });
    if needs {
        eprintln!(
            "SKIPPED {name} here: it loses a segment with a netfilter rule, which only \
             mailwire's private network allows (covered through `mailwire run`)"
        );
    }
    needs
}

/// Runs every step of the built-in scenario `name` on real sockets with live capture on
/// loopback. `None`, after saying "SKIPPED {what}" and why, when this process cannot
/// capture (no root or CAP_NET_RAW).
pub fn record_with_capture(name: &str, what: &str) -> Option<mailwire::timeline::Timeline> {
    use mailwire::scenario::format;
    use mailwire::scenario::recorder::{Recorder, RecorderOptions};
    let scenario = format::find(name).unwrap();
    let mut r = Recorder::start(&scenario, &RecorderOptions::default()).unwrap();
    if !r.timeline().capture_status().is_capturing() {
        eprintln!(
            "SKIPPED {what}: the recorder could not capture: {}",
            r.timeline().capture_status().describe()
        );
        return None;
    }
    while r.step().is_some() {}
    Some(r.finish())
}

/// Panics unless every step of `t` (a run of scenario `name`) met its expectation.
pub fn assert_every_step_passed(name: &str, t: &mailwire::timeline::Timeline) {
    for (i, step) in t.steps.iter().enumerate() {
        assert!(
            step.outcome.check.is_ok(),
            "{name} step {}: {:?}",
            i + 1,
            step.outcome.check
        );
    }
}

/// A UDP socket on the loopback, and a capture configuration that sees only its datagrams,
/// with the buffer the runs use (`live::RUN_BUFFER_BYTES`).
pub fn udp_receiver_and_its_capture() -> (std::net::UdpSocket, mailwire::capture::live::LiveConfig)
{
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let config = mailwire::capture::live::LiveConfig {
        filter: format!("udp port {port}"),
        buffer_size_bytes: mailwire::capture::live::RUN_BUFFER_BYTES,
        ..mailwire::capture::live::LiveConfig::default()
    };
    (receiver, config)
}

/// Sends `count` UDP datagrams "datagram 00000", "datagram 00001", ... to `receiver` on the
/// loopback, each read by `receiver` before the next is sent (a burst would overflow its
/// socket buffer): once read, a datagram has crossed the loopback, so a capture on it saw it.
pub fn send_datagrams_one_by_one(receiver: &std::net::UdpSocket, count: usize) {
    let to = receiver.local_addr().unwrap();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    for i in 0..count {
        sender
            .send_to(format!("datagram {i:05}").as_bytes(), to)
            .unwrap();
        receiver.recv(&mut buf).unwrap();
    }
}
