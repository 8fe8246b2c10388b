//! Shared test support: temp folders and files, a demo data directory with both servers
//! running on 127.0.0.1:0 in a background runtime, child processes that never outlive their
//! test ([`Spawned`]), and the TCP part of a captured frame ([`tcp_segment`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mailwire::servers::{self, EventSink, ServerConfig, ServerEvent};
use mailwire::store::{self, Store};

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

/// The `mailwire` binary under test.
pub const MAILWIRE: &str = env!("CARGO_BIN_EXE_mailwire");

/// A child process a test started. Dropping it kills and reaps the child if it still runs,
/// so a test that fails half-way leaves no process behind (a server, Xvfb, Dovecot).
pub struct Spawned {
    child: Option<std::process::Child>,
    program: String,
}

impl Spawned {
    /// Starts `command`; panics naming the program if it cannot be started.
    pub fn new(command: &mut std::process::Command) -> Spawned {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot run {program}: {e}. Is it installed? (.ci/run installs it)")
        });
        Spawned::from(child, &program)
    }

    /// Takes charge of a child started elsewhere; `program` names it in failures.
    pub fn from(child: std::process::Child, program: &str) -> Spawned {
        Spawned {
            child: Some(child),
            program: program.to_string(),
        }
    }

    /// Sends `signal` to the child; panics if it has already ended or the kernel refuses.
    pub fn signal(&mut self, signal: libc::c_int) {
        if let Some(status) = self.try_wait().unwrap() {
            panic!(
                "{} ended ({status}) before it got signal {signal}",
                self.program
            );
        }
        let pid = libc::pid_t::try_from(self.id()).unwrap();
        // SAFETY: kill takes no pointers. `pid` is our own child and `try_wait` just said it
        // has not been reaped (`Child` reaps only through `self`), so the pid still names it
        // (at worst as a zombie) and cannot belong to another process.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            result,
            0,
            "kill({pid}, {signal}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits for the child to end; kills it and panics if that takes longer than `limit`.
    pub fn wait_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                self.kill_and_reap();
                panic!("{} did not end within {limit:?}", self.program);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` and waits up to `grace` for the child to end; kills it after that.
    /// The exit status, if it ended by itself.
    pub fn stop(
        &mut self,
        signal: libc::c_int,
        grace: Duration,
    ) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.try_wait() {
            return Some(status);
        }
        self.signal(signal);
        let start = std::time::Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(status)) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_and_reap();
        None
    }

    /// Waits (at most `limit`, like [`Spawned::wait_within`]) and returns the exit status
    /// with all the child wrote to its piped stdout and stderr. The pipes are read while it
    /// runs, so a child that writes a lot cannot block on a full pipe.
    pub fn output_within(mut self, limit: Duration) -> std::process::Output {
        fn drain(
            pipe: Option<impl std::io::Read + Send + 'static>,
        ) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        }
        let stdout = drain(self.stdout.take());
        let stderr = drain(self.stderr.take());
        let status = self.wait_within(limit);
        std::process::Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }

    fn kill_and_reap(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.child.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.child.as_mut().unwrap()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && !matches!(child.try_wait(), Ok(Some(_)))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `command` with `stdin` as its input and piped output, to its end (bounded by
/// `limit`, else killed and the test fails).
pub fn run_with_input(
    command: &mut std::process::Command,
    stdin: &str,
    limit: Duration,
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Spawned::new(
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut input = child.stdin.take().unwrap();
    // A child that ends before reading all of it closes the pipe: not an error here.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.output_within(limit)
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

/// TCP flag bits, as in the header's flags byte.
pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// The TCP part of a captured IPv4 frame.
pub struct Segment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub flags: u8,
    pub payload: &'a [u8],
}

/// The TCP segment in a captured IPv4 frame of any link type the capture gives, or `None`.
/// Parsed by hand, independently of mailwire's decoder, so the capture tests do not check
/// the capture with the code under test.
pub fn tcp_segment(packet: &mailwire::capture::CapturedPacket) -> Option<Segment<'_>> {
    use mailwire::capture::LinkType;
    let ip_start = match packet.link_type {
        LinkType::ETHERNET => 14,
        LinkType::NULL | LinkType::LOOP => 4,
        LinkType::RAW | LinkType::IPV4 => 0,
        LinkType::LINUX_SLL => 16,
        LinkType::LINUX_SLL2 => 20,
        _ => return None,
    };
    let ip = packet.data.get(ip_start..)?;
    if ip.first()? >> 4 != 4 || *ip.get(9)? != 6 {
        return None;
    }
    let header_len = usize::from(ip.first()? & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let tcp = ip.get(header_len..total_len)?;
    let data_offset = usize::from(tcp.get(12)? >> 4) * 4;
    Some(Segment {
        src_port: u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]),
        dst_port: u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]),
        flags: *tcp.get(13)?,
        payload: tcp.get(data_offset..)?,
    })
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
