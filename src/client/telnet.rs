//! `mailwire telnet HOST:PORT`: a raw console, like the PuTTY session of seed 004.
//!
//! Each line typed is sent with CRLF; every byte the server sends is shown as it arrives,
//! multi-line replies included; on the screen (not in the saved transcript) a line ended by
//! a bare LF is marked, and so is a line whose CRLF had not come when the next line was
//! sent (instead of the command being glued to it). The end of the input (Ctrl-D) half-closes the connection
//! and waits a little for the server's last words; Ctrl-C closes at once. The transcript
//! (the server's bytes and the lines sent, in order, under a PuTTY-style header) can be
//! saved to a file. Input that is not a terminal (a script) is paced like a typist: each
//! line waits for the server's answer to the one before, so the transcript reads in order.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::ClientError;
use super::wire::connect_tcp;
use crate::signals::SignalError;

/// Why a raw session failed.
#[derive(Debug)]
pub enum TelnetError {
    /// The async runtime could not be built.
    Runtime(io::Error),
    /// The transcript file could not be created or written.
    Save {
        /// The file asked for.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The connection could not be made.
    Connect(ClientError),
    /// The stop signals could not be listened for.
    Signals(SignalError),
    /// Reading from the server failed.
    Read {
        /// The server's address.
        peer: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Writing to the server failed.
    Write {
        /// The server's address.
        peer: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Writing to the terminal (the output) failed.
    Terminal(io::Error),
    /// The TLS handshake failed (rustls's reason).
    Tls {
        /// The server's address.
        peer: String,
        error: String,
    },
}

impl fmt::Display for TelnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TelnetError::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
            TelnetError::Save { path, source } => write!(
                f,
                "cannot save the transcript to {}: {source}",
                path.display()
            ),
            TelnetError::Connect(e) => e.fmt(f),
            TelnetError::Signals(e) => e.fmt(f),
            TelnetError::Read { peer, source } => write!(f, "reading from {peer} failed: {source}"),
            TelnetError::Write { peer, source } => write!(f, "writing to {peer} failed: {source}"),
            TelnetError::Terminal(e) => write!(f, "cannot write to the terminal: {e}"),
            TelnetError::Tls { peer, error } => write!(
                f,
                "The TLS handshake with {peer} failed: {error}.{}",
                super::error::tls_hint(error)
            ),
        }
    }
}

impl std::error::Error for TelnetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TelnetError::Runtime(e) | TelnetError::Terminal(e) => Some(e),
            TelnetError::Save { source, .. }
            | TelnetError::Read { source, .. }
            | TelnetError::Write { source, .. } => Some(source),
            TelnetError::Connect(e) => Some(e),
            TelnetError::Signals(e) => Some(e),
            TelnetError::Tls { .. } => None,
        }
    }
}

/// Settings of one raw session.
#[derive(Debug, Clone)]
pub struct TelnetConfig {
    /// The server, HOST:PORT.
    pub addr: String,
    /// Where to save the transcript, if anywhere.
    pub save: Option<PathBuf>,
    /// The longest wait for the connection.
    pub connect_timeout: Duration,
    /// After the input ends, how long to wait for the server to close.
    pub linger: Duration,
    /// The shortest time between two lines sent.
    pub line_delay: Duration,
    /// Wait for the server's answer before sending each line, as a typist reads the reply
    /// before typing the next command. `None` sends each line as soon as it is read.
    pub wait_for_reply: Option<ReplyWait>,
    /// Repeat each line sent on the output (for input that is not a terminal).
    pub echo_input: bool,
    /// Implicit TLS (RFC 8314): the handshake first, then the session inside TLS.
    pub tls: Option<super::ClientTls>,
}

/// How long to wait for the server's answer before sending the next line.
///
/// A raw console does not know where a reply ends, so an answer counts as complete once
/// the server has sent something and then been quiet for `quiet`; a line that gets no
/// answer at all (an SMTP message body line) is followed by the next one after `at_most`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyWait {
    /// Quiet time after the last bytes received that ends an answer.
    pub quiet: Duration,
    /// The longest wait for an answer.
    pub at_most: Duration,
}

impl ReplyWait {
    /// 50 ms of quiet ends an answer; at most one second without one.
    pub const DEFAULT: ReplyWait = ReplyWait {
        quiet: Duration::from_millis(50),
        at_most: Duration::from_secs(1),
    };
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    ServerClosed,
    Lingered,
    Interrupted,
}

/// When the next line may be sent.
#[derive(Debug)]
struct Pace {
    line_delay: Duration,
    wait: Option<ReplyWait>,
    /// When the last line was sent (or the connection was made).
    sent_at: tokio::time::Instant,
    /// When bytes last arrived, if any arrived since `sent_at`.
    heard_at: Option<tokio::time::Instant>,
}

impl Pace {
    fn new(config: &TelnetConfig, connected: tokio::time::Instant) -> Pace {
        Pace {
            line_delay: config.line_delay,
            wait: config.wait_for_reply,
            sent_at: connected,
            heard_at: None,
        }
    }

    fn sent(&mut self, now: tokio::time::Instant) {
        self.sent_at = now;
        self.heard_at = None;
    }

    fn heard(&mut self, now: tokio::time::Instant) {
        self.heard_at = Some(now);
    }

    fn ready_at(&self) -> tokio::time::Instant {
        let after_delay = self.sent_at + self.line_delay;
        let answered = match (self.wait, self.heard_at) {
            (None, _) => self.sent_at,
            (Some(wait), Some(heard)) => (heard + wait.quiet).min(self.sent_at + wait.at_most),
            (Some(wait), None) => self.sent_at + wait.at_most,
        };
        after_delay.max(answered)
    }
}

/// Runs a raw session: `input` lines go to the server, its bytes go to `output`.
/// `input` is read on its own thread, which may outlive the session while blocked.
///
/// The transcript file, when asked for, is created before connecting (a bad path is
/// reported at once) and written as the session goes, so an interrupted session keeps
/// everything up to the interruption.
pub fn run_telnet_session(
    config: TelnetConfig,
    input: impl BufRead + Send + 'static,
    mut output: impl Write,
) -> Result<(), TelnetError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TelnetError::Runtime)?;
    let mut log = match &config.save {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|source| TelnetError::Save {
                path: path.clone(),
                source,
            })?;
            let mut log = Transcript {
                file: std::io::BufWriter::new(file),
                path: path.clone(),
                failed: None,
            };
            let started = chrono::Local::now().format("%Y.%m.%d %H:%M:%S");
            log.record(
                format!(
                    "=~=~=~=~=~=~=~=~=~=~=~= mailwire telnet log {started} \
                     =~=~=~=~=~=~=~=~=~=~=~=\r\n"
                )
                .as_bytes(),
            );
            Some(log)
        }
        None => None,
    };
    let result = runtime.block_on(session(&config, input, &mut output, &mut log));
    if let Some(log) = log {
        let path = log.path.clone();
        log.finish()?;
        let _ = writeln!(output, "Transcript saved to {}.", path.display());
    }
    result
}

/// The transcript file, written as the session goes.
struct Transcript {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    /// The first write error (the session goes on; it is reported at the end).
    failed: Option<std::io::Error>,
}

impl Transcript {
    fn record(&mut self, bytes: &[u8]) {
        if self.failed.is_none()
            && let Err(e) = self.file.write_all(bytes).and_then(|()| self.file.flush())
        {
            self.failed = Some(e);
        }
    }

    fn finish(mut self) -> Result<(), TelnetError> {
        let flushed = self.file.flush();
        self.failed
            .take()
            .map_or(flushed, Err)
            .map_err(|source| TelnetError::Save {
                path: self.path,
                source,
            })
    }
}

fn record(log: &mut Option<Transcript>, bytes: &[u8]) {
    if let Some(log) = log {
        log.record(bytes);
    }
}

async fn session(
    config: &TelnetConfig,
    input: impl BufRead + Send + 'static,
    output: &mut impl Write,
    log: &mut Option<Transcript>,
) -> Result<(), TelnetError> {
    let stream = connect_tcp(&config.addr, config.connect_timeout)
        .await
        .map_err(TelnetError::Connect)?;
    let peer = stream
        .peer_addr()
        .map_or(config.addr.clone(), |a| a.to_string());
    show(
        output,
        format!("Connected to {peer}. Type commands; Ctrl-D ends.\n").as_bytes(),
    )?;
    type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
    type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;
    let (mut reader, mut writer): (Reader, Writer) = match &config.tls {
        None => {
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        }
        Some(tls) => {
            let host = super::tls::host_of(&config.addr);
            let name = super::tls::server_name(host).ok_or_else(|| TelnetError::Tls {
                peer: peer.clone(),
                error: format!("\"{host}\" is not a host name a certificate can carry"),
            })?;
            let handshake = tls.connector().connect(name, stream);
            let tls_stream = tokio::time::timeout(config.connect_timeout, handshake)
                .await
                .map_err(|_| TelnetError::Tls {
                    peer: peer.clone(),
                    error: "the handshake did not finish in time".into(),
                })?
                .map_err(|e| TelnetError::Tls {
                    peer: peer.clone(),
                    error: e.to_string(),
                })?;
            let (_, session) = tls_stream.get_ref();
            let version = session
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("TLS");
            show(
                output,
                format!(
                    "TLS started ({version}): what you type and see travels inside TLS records.\n"
                )
                .as_bytes(),
            )?;
            let (r, w) = tokio::io::split(tls_stream);
            (Box::new(r), Box::new(w))
        }
    };
    let mut lines = spawn_line_reader(input);
    let mut input_open = true;
    let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
    let mut pace = Pace::new(config, tokio::time::Instant::now());
    let mut buf = vec![0u8; 16 * 1024];
    let mut at_line_start = true;
    // The last byte shown was a CR (a CRLF may be split between two reads).
    let mut after_cr = false;
    let mut linger_until: Option<tokio::time::Instant> = None;
    let mut stop = crate::signals::StopSignals::new().map_err(TelnetError::Signals)?;
    let ending = loop {
        if !input_open && pending.is_empty() && linger_until.is_none() {
            let _ = writer.shutdown().await;
            linger_until = Some(tokio::time::Instant::now() + config.linger);
        }
        let linger = sleep_until(linger_until);
        let send_turn = sleep_until((!pending.is_empty()).then(|| pace.ready_at()));
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = read.map_err(|source| TelnetError::Read { peer: peer.clone(), source })?;
                let Some(bytes) = buf.get(..n).filter(|b| !b.is_empty()) else {
                    break Ending::ServerClosed;
                };
                show(output, &mark_bare_lfs(bytes, after_cr))?;
                record(log, bytes);
                at_line_start = bytes.ends_with(b"\n");
                after_cr = bytes.ends_with(b"\r");
                pace.heard(tokio::time::Instant::now());
            }
            line = lines.recv(), if input_open => match line {
                Some(line) => pending.push_back(line),
                None => input_open = false,
            },
            () = send_turn => {
                let Some(mut sent) = pending.pop_front() else { continue };
                sent.extend_from_slice(b"\r\n");
                writer
                    .write_all(&sent)
                    .await
                    .map_err(|source| TelnetError::Write { peer: peer.clone(), source })?;
                if config.echo_input {
                    if !at_line_start {
                        // The server's last line never ended: say so rather than glue the
                        // command to it.
                        show(output, NO_LINE_END.as_bytes())?;
                    }
                    show(output, &sent)?;
                }
                record(log, &sent);
                at_line_start = true;
                pace.sent(tokio::time::Instant::now());
            }
            () = linger => break Ending::Lingered,
            () = stop.next() => break Ending::Interrupted,
        }
    };
    let newline = if at_line_start { "" } else { "\n" };
    let farewell = match ending {
        Ending::ServerClosed => "Connection closed by the server.",
        Ending::Lingered => "Input ended; the server did not close the connection, closing it.",
        Ending::Interrupted => "Interrupted (a stop signal); closing the connection.",
    };
    show(output, format!("{newline}{farewell}\n").as_bytes())
}

/// Shown after a server line that had no line end when the next command was sent.
const NO_LINE_END: &str = "   [no line end: the server's line above never got its CRLF]\n";

/// The server's bytes as shown: a line ended by a bare LF (not CRLF, which POP3 and SMTP
/// require: RFC 1939 section 3, RFC 5321 section 2.3.8) gets a mark before its LF.
/// `after_cr`: the bytes shown before these ended with a CR.
fn mark_bare_lfs(bytes: &[u8], after_cr: bool) -> Vec<u8> {
    const MARK: &[u8] = b"   [bare LF, not CRLF]";
    let mut shown = Vec::with_capacity(bytes.len());
    let mut previous_cr = after_cr;
    for &b in bytes {
        if b == b'\n' && !previous_cr {
            shown.extend_from_slice(MARK);
        }
        shown.push(b);
        previous_cr = b == b'\r';
    }
    shown
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Reads `input` line by line on its own thread; each line comes without its line end.
/// The channel closes at the end of the input (or on a read error).
fn spawn_line_reader(mut input: impl BufRead + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(64);
    let spawned = std::thread::Builder::new()
        .name("telnet-input".into())
        .spawn(move || {
            loop {
                let mut line = Vec::new();
                match input.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        });
    // Without the thread the channel is closed at once: the session behaves as if the
    // input were empty.
    drop(spawned);
    rx
}

fn show(output: &mut impl Write, bytes: &[u8]) -> Result<(), TelnetError> {
    output
        .write_all(bytes)
        .and_then(|()| output.flush())
        .map_err(TelnetError::Terminal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lfs_are_marked_even_when_a_crlf_is_split() {
        assert_eq!(
            mark_bare_lfs(b"+OK\r\n1 1\n", false),
            b"+OK\r\n1 1   [bare LF, not CRLF]\n"
        );
        assert_eq!(mark_bare_lfs(b"\nx", true), b"\nx");
        assert_eq!(mark_bare_lfs(b"\nx", false), b"   [bare LF, not CRLF]\nx");
    }

    #[test]
    fn errors_say_what_failed_and_where() {
        let os = || io::Error::other("no space left");
        let cases = [
            (
                TelnetError::Runtime(os()),
                "cannot start the async runtime: no space left",
            ),
            (
                TelnetError::Save {
                    path: PathBuf::from("/tmp/x.log"),
                    source: os(),
                },
                "cannot save the transcript to /tmp/x.log: no space left",
            ),
            (
                TelnetError::Read {
                    peer: "127.0.0.1:110".into(),
                    source: os(),
                },
                "reading from 127.0.0.1:110 failed: no space left",
            ),
            (
                TelnetError::Write {
                    peer: "127.0.0.1:110".into(),
                    source: os(),
                },
                "writing to 127.0.0.1:110 failed: no space left",
            ),
            (
                TelnetError::Terminal(os()),
                "cannot write to the terminal: no space left",
            ),
            (
                TelnetError::Signals(SignalError::ThreadEnded),
                "the signal thread ended before it was ready",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        let none = || ClientError::NoAddress { addr: "x".into() };
        assert_eq!(TelnetError::Connect(none()).to_string(), none().to_string());
    }
}
