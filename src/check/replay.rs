//! Built-in "student" servers for a class to run the checker on ("spot the error"): each
//! answers as one of the seed documents' servers did, with exactly that one flaw.
//!
//! - [`Flaw::ClassProject`] (the POP3 class project): LIST answers "2.txt 8", "1.txt 33"
//!   (newest first, no "+OK" line, no final ".");
//! - [`Flaw::Assignment`] (the assignment guide's SMTP server): DATA is answered "250 OK
//!   Message accepted for delivery" at once, never 354 (and nothing after the message);
//! - [`Flaw::Kilroy`] (kilroy, seed 002): negative replies begin "ERR", without the "-".
//!
//! Everything else is mailwire's own servers (on a demo data directory in a temporary
//! folder), reached through a small proxy that rewrites only the flawed replies, so the
//! checker finds exactly the seed's mistake.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::proto::Protocol;
use crate::servers::{self, EventSink, ServerConfig};
use crate::store;

/// Which seed's server to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// The POP3 class project (seed 000): LIST without "+OK" and without the final ".".
    ClassProject,
    /// The assignment guide (seed 001): DATA answered 250, no 354.
    Assignment,
    /// kilroy (seed 002): "ERR" instead of "-ERR".
    Kilroy,
}

impl Flaw {
    /// Every replay server.
    pub const ALL: [Flaw; 3] = [Flaw::ClassProject, Flaw::Assignment, Flaw::Kilroy];

    /// The name on the command line: `class-project`, `assignment`, `kilroy`.
    pub fn name(self) -> &'static str {
        match self {
            Flaw::ClassProject => "class-project",
            Flaw::Assignment => "assignment",
            Flaw::Kilroy => "kilroy",
        }
    }

    /// The replay server with this name (`assignment-guide` is another name of
    /// `assignment`).
    pub fn from_name(name: &str) -> Option<Flaw> {
        if name == "assignment-guide" {
            return Some(Flaw::Assignment);
        }
        Flaw::ALL.into_iter().find(|f| f.name() == name)
    }

    /// One line: what is wrong in it (for `--help` and the window's picker).
    pub fn summary(self) -> &'static str {
        match self {
            Flaw::ClassProject => {
                "POP3: LIST answers \"2.txt 8\" lines, without +OK and without the final \".\" (seed 000)"
            }
            Flaw::Assignment => {
                "SMTP: DATA is answered 250 at once, never 354 (seed 001, the assignment guide)"
            }
            Flaw::Kilroy => "POP3: negative replies begin \"ERR\", without the \"-\" (seed 002)",
        }
    }

    /// The protocol whose replies carry the flaw.
    pub fn protocol(self) -> Protocol {
        match self {
            Flaw::ClassProject | Flaw::Kilroy => Protocol::Pop3,
            Flaw::Assignment => Protocol::Smtp,
        }
    }

    /// Where the flaw comes from, for the terminal.
    pub fn source(self) -> &'static str {
        match self {
            Flaw::ClassProject => "the POP3 class project's server (seed 000)",
            Flaw::Assignment => "the mail assignment guide's SMTP server (seed 001)",
            Flaw::Kilroy => "kilroy, the POP3 server of the homework session (seed 002)",
        }
    }
}

/// Why a replay server could not start.
#[derive(Debug)]
pub enum ReplayError {
    /// The temporary data directory.
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The demo data directory or the servers.
    Servers(String),
    /// A proxy's listening socket.
    Bind(std::io::Error),
    /// The address asked for could not be listened on.
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Folder { path, source } => write!(
                f,
                "The replay server's temporary folder {} could not be made: {source}. Check that the temporary folder is writable.",
                path.display()
            ),
            ReplayError::Servers(why) => {
                write!(f, "The replay server's mail servers did not start: {why}.")
            }
            ReplayError::Bind(e) => write!(
                f,
                "The replay server could not listen on a loopback port: {e}."
            ),
            ReplayError::Listen { addr, source } => write!(
                f,
                "The replay server could not listen on {addr}: {source}. Is another server \
                 (or another mailwire) listening there? Choose another port."
            ),
        }
    }
}

impl std::error::Error for ReplayError {}

/// A running replay server: POP3 and SMTP on loopback ports; stopped and its folder
/// removed on drop.
pub struct Replay {
    pub pop3: SocketAddr,
    pub smtp: SocketAddr,
    /// A user of its maildrops, with password and address.
    pub user: &'static str,
    pub pass: &'static str,
    pub rcpt: &'static str,
    stop: Arc<AtomicBool>,
    servers_stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loops.
        let _ = TcpStream::connect_timeout(&self.pop3, Duration::from_millis(200));
        let _ = TcpStream::connect_timeout(&self.smtp, Duration::from_millis(200));
        if let Some(stop) = self.servers_stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts mailwire's servers on a fresh demo data directory behind proxies that plant
/// `flaw`, on free loopback ports.
pub fn start(flaw: Flaw) -> Result<Replay, ReplayError> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    start_on(flaw, any, any)
}

/// [`start`], with the proxies (what clients connect to) listening on `pop3` and `smtp`
/// (port 0: a free one); mailwire's own servers behind them take free loopback ports.
pub fn start_on(flaw: Flaw, pop3: SocketAddr, smtp: SocketAddr) -> Result<Replay, ReplayError> {
    // Both listening addresses first: a port in use is said before anything starts.
    let pop3_listener = TcpListener::bind(pop3).map_err(|e| ReplayError::Listen {
        addr: pop3,
        source: e,
    })?;
    let smtp_listener = TcpListener::bind(smtp).map_err(|e| ReplayError::Listen {
        addr: smtp,
        source: e,
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "mailwire-replay-{}-{}-{nanos}",
        flaw.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|source| ReplayError::Folder {
        path: dir.clone(),
        source,
    })?;
    let store = store::create_demo(&dir).map_err(|e| ReplayError::Servers(e.to_string()))?;
    let config = ServerConfig {
        failed_login_delay: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (servers_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("replay-servers".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = addr_tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
                let (pop3, smtp) = match (bind().await, bind().await) {
                    (Ok(p), Ok(s)) => (p, s),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = addr_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                match servers::start(Arc::new(store), config, pop3, smtp, EventSink::none()) {
                    Ok(running) => {
                        let _ = addr_tx.send(Ok((running.pop3_addr(), running.smtp_addr())));
                        let _ = stopped.await;
                        running.shutdown().await;
                    }
                    Err(e) => {
                        let _ = addr_tx.send(Err(e.to_string()));
                    }
                }
            });
        })
        .map_err(|e| ReplayError::Servers(e.to_string()))?;
    let (pop3_up, smtp_up) = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| ReplayError::Servers("they did not start within 10 s".into()))?
        .map_err(ReplayError::Servers)?;
    let stop = Arc::new(AtomicBool::new(false));
    let pop3_flaw = (flaw.protocol() == Protocol::Pop3).then_some(flaw);
    let smtp_flaw = (flaw.protocol() == Protocol::Smtp).then_some(flaw);
    let pop3 = proxy(pop3_listener, pop3_up, pop3_flaw, Arc::clone(&stop))?;
    let smtp = proxy(smtp_listener, smtp_up, smtp_flaw, Arc::clone(&stop))?;
    Ok(Replay {
        pop3,
        smtp,
        user: "student",
        pass: "student",
        rcpt: "student@localhost",
        stop,
        servers_stop: Some(servers_stop),
        thread: Some(thread),
        dir,
    })
}

/// Relays each connection `listener` accepts to `upstream`, rewriting the server's replies
/// for `flaw`.
fn proxy(
    listener: TcpListener,
    upstream: SocketAddr,
    flaw: Option<Flaw>,
    stop: Arc<AtomicBool>,
) -> Result<SocketAddr, ReplayError> {
    let addr = listener.local_addr().map_err(ReplayError::Bind)?;
    let spawned = std::thread::Builder::new()
        .name("replay-accept".into())
        .spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                relay(client, server, flaw);
            }
        });
    spawned.map_err(ReplayError::Bind)?;
    Ok(addr)
}

/// One connection: bytes from the client go up unchanged (the commands are noted), the
/// server's lines come back through [`Rewriter`].
fn relay(client: TcpStream, server: TcpStream, flaw: Option<Flaw>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let commands: Arc<Mutex<VecDeque<Vec<u8>>>> = Arc::default();
    let (Ok(mut client_w), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let noted = Arc::clone(&commands);
    let up = move || {
        let mut reader = BufReader::new(client);
        let mut pending = Vec::new();
        loop {
            let chunk = match reader.fill_buf() {
                Ok([]) | Err(_) => break,
                Ok(chunk) => chunk.to_vec(),
            };
            reader.consume(chunk.len());
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Ok(mut queue) = noted.lock() {
                    queue.push_back(line);
                }
            }
            if server_w.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = server_w.shutdown(Shutdown::Write);
    };
    let down = move || {
        let mut reader = BufReader::new(server);
        let mut rewriter = Rewriter::new(flaw);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let command = |rewriter: &Rewriter| {
                if rewriter.needs_command() {
                    commands.lock().ok().and_then(|mut q| q.pop_front())
                } else {
                    None
                }
            };
            let cmd = command(&rewriter);
            let out = rewriter.line(&line, cmd.as_deref());
            if !out.is_empty() && client_w.write_all(&out).is_err() {
                break;
            }
        }
        let _ = client_w.shutdown(Shutdown::Both);
    };
    let _ = std::thread::Builder::new()
        .name("replay-up".into())
        .spawn(up);
    let _ = std::thread::Builder::new()
        .name("replay-down".into())
        .spawn(down);
}

/// The server-to-client rewriting of one connection (sans-IO: lines in, bytes out).
#[derive(Debug)]
pub struct Rewriter {
    flaw: Option<Flaw>,
    /// The greeting has not come yet.
    greeting: bool,
    /// Inside a POP3 multi-line body (until "."); `Some(true)` when it is LIST's, which
    /// is collected and sent reversed.
    body: Option<bool>,
    listing: Vec<Vec<u8>>,
    /// The next SMTP reply is the one after the message, which the flawed server never
    /// sends.
    swallow_next: bool,
}

impl Rewriter {
    /// A rewriter for a new connection.
    pub fn new(flaw: Option<Flaw>) -> Self {
        Self {
            flaw,
            greeting: true,
            body: None,
            listing: Vec::new(),
            swallow_next: false,
        }
    }

    /// Whether the next line begins a reply to a POP3 command (which is then needed).
    pub fn needs_command(&self) -> bool {
        !self.greeting && self.body.is_none() && self.flaw == Some(Flaw::ClassProject)
    }

    /// The bytes to send the client for one server line; `command` is the client's
    /// command this line answers (when [`needs_command`](Self::needs_command) said so).
    pub fn line(&mut self, line: &[u8], command: Option<&[u8]>) -> Vec<u8> {
        let first = std::mem::replace(&mut self.greeting, false);
        match self.flaw {
            None => line.to_vec(),
            Some(Flaw::Kilroy) => match line.strip_prefix(b"-ERR") {
                Some(rest) => [&b"ERR"[..], rest].concat(),
                None => line.to_vec(),
            },
            Some(Flaw::Assignment) => {
                if line.starts_with(b"354") {
                    self.swallow_next = true;
                    b"250 OK Message accepted for delivery\r\n".to_vec()
                } else if std::mem::take(&mut self.swallow_next) {
                    Vec::new()
                } else {
                    line.to_vec()
                }
            }
            Some(Flaw::ClassProject) => self.class_project(line, command, first),
        }
    }

    fn class_project(&mut self, line: &[u8], command: Option<&[u8]>, greeting: bool) -> Vec<u8> {
        if greeting {
            return line.to_vec();
        }
        match self.body {
            Some(is_list) => {
                if line == b".\r\n" {
                    self.body = None;
                    if !is_list {
                        return line.to_vec();
                    }
                    // "2.txt 8" newest first, and no "." at the end.
                    let mut out = Vec::new();
                    for entry in std::mem::take(&mut self.listing).iter().rev() {
                        let text = String::from_utf8_lossy(entry);
                        let mut words = text.split_whitespace();
                        if let (Some(n), Some(size)) = (words.next(), words.next()) {
                            out.extend_from_slice(format!("{n}.txt {size}\r\n").as_bytes());
                        }
                    }
                    return out;
                }
                if is_list {
                    self.listing.push(line.to_vec());
                    return Vec::new();
                }
                line.to_vec()
            }
            None => {
                let upper = command.map(|c| c.to_ascii_uppercase()).unwrap_or_default();
                let word = upper
                    .split(|b| b.is_ascii_whitespace())
                    .next()
                    .unwrap_or_default()
                    .to_vec();
                let has_argument = upper
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty())
                    .count()
                    > 1;
                let multi = line.starts_with(b"+OK")
                    && match word.as_slice() {
                        b"LIST" | b"UIDL" => !has_argument,
                        b"RETR" | b"TOP" | b"CAPA" => true,
                        _ => false,
                    };
                if multi {
                    let is_list = word == b"LIST";
                    self.body = Some(is_list);
                    if is_list {
                        return Vec::new();
                    }
                }
                line.to_vec()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_project_lists_without_ok_and_dot() {
        let mut r = Rewriter::new(Some(Flaw::ClassProject));
        assert_eq!(r.line(b"+OK ready\r\n", None), b"+OK ready\r\n");
        assert!(r.needs_command());
        assert!(r.line(b"+OK 2 messages\r\n", Some(b"LIST\r\n")).is_empty());
        assert!(r.line(b"1 33\r\n", None).is_empty());
        assert!(r.line(b"2 8\r\n", None).is_empty());
        assert_eq!(r.line(b".\r\n", None), b"2.txt 8\r\n1.txt 33\r\n");
        assert_eq!(
            r.line(b"+OK 1 33\r\n", Some(b"LIST 1\r\n")),
            b"+OK 1 33\r\n"
        );
        assert_eq!(r.line(b"+OK\r\n", Some(b"RETR 1\r\n")), b"+OK\r\n");
        assert_eq!(r.line(b"..x\r\n", None), b"..x\r\n");
        assert_eq!(r.line(b".\r\n", None), b".\r\n");
    }

    #[test]
    fn assignment_answers_data_with_250_and_nothing_after() {
        let mut r = Rewriter::new(Some(Flaw::Assignment));
        assert_eq!(r.line(b"220 hi\r\n", None), b"220 hi\r\n");
        assert_eq!(
            r.line(b"354 go\r\n", None),
            b"250 OK Message accepted for delivery\r\n"
        );
        assert!(r.line(b"250 stored\r\n", None).is_empty());
        assert_eq!(r.line(b"221 bye\r\n", None), b"221 bye\r\n");
    }

    #[test]
    fn kilroy_drops_the_minus() {
        let mut r = Rewriter::new(Some(Flaw::Kilroy));
        assert_eq!(r.line(b"+OK\r\n", None), b"+OK\r\n");
        assert_eq!(r.line(b"-ERR [AUTH] no\r\n", None), b"ERR [AUTH] no\r\n");
    }
}
