//! The probe a check drives: raw TCP connections with a limit on every step, and the
//! evidence of the step being judged (the bytes sent and the bytes that came back).
//!
//! Reading never interprets more than it must: a line is everything up to and including a
//! LF (so a bare LF is seen as such), a multi-line POP3 reply ends at a line holding only
//! "." (with CRLF or a bare LF: the line-end check judges that), an SMTP reply at the first
//! line whose fourth byte is not "-". Everything else is judged by the checks.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::{Level, Verdict};
use crate::proto::Direction;

/// The longest line read (a server that never sends a LF cannot fill the memory).
const MAX_LINE: usize = 64 * 1024;
/// The most bytes of one multi-line reply (or of one check's evidence) kept.
const MAX_REPLY: usize = 16 * 1024 * 1024;
/// The most bytes of one [`Transfer`] kept (its stream range still counts them all).
const MAX_TRANSFER: usize = 64 * 1024;
/// The most transfers one check keeps (a check that loops cannot fill the memory).
const MAX_TRANSFERS: usize = 4096;

/// Why a step did not get what it waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// No TCP connection could be made.
    Connect { addr: String, why: String },
    /// Nothing (more) came within the step's limit.
    Silent { waited: Duration },
    /// The server closed the connection (FIN) before the step's answer was complete.
    Closed,
    /// The connection was reset (RST).
    Reset,
    /// Another socket error.
    Io(String),
    /// A line longer than [`MAX_LINE`] bytes without a LF.
    TooLong,
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Connect { addr, why } => write!(
                f,
                "Could not connect to {addr}: {why}. Is the server running and listening there?"
            ),
            StepError::Silent { waited } => write!(
                f,
                "The server sent nothing (more) for {:.1} s: no complete answer.",
                waited.as_secs_f64()
            ),
            StepError::Closed => {
                write!(
                    f,
                    "The server closed the connection before answering completely."
                )
            }
            StepError::Reset => write!(f, "The server reset the connection (TCP RST)."),
            StepError::Io(why) => write!(f, "The connection failed: {why}."),
            StepError::TooLong => write!(
                f,
                "The server sent more than {MAX_LINE} bytes without a line end (LF)."
            ),
        }
    }
}

/// The lines of a reply, each with its line end.
pub type Lines = Vec<Vec<u8>>;

/// How a check ends early: its verdict.
pub type Stop = Verdict;

/// A connection of one check (an index into the probe's connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId(usize);

/// Bytes one check sent or read on one of its connections, and where they lie in that
/// direction's byte stream (0 is the first byte after the SYN), so a capture's unit at the
/// same offsets is the packet evidence of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The connection: an index into the check's `clients`.
    pub conn: usize,
    pub direction: Direction,
    /// Where the bytes lie in the direction's stream.
    pub stream: std::ops::Range<u64>,
    /// The bytes (the first [`MAX_TRANSFER`] of them).
    pub bytes: Vec<u8>,
    /// The round the transfer belongs to: a round begins with a connection, or with a send
    /// after a read, or when the connection changes (a command and its reply share one).
    pub round: usize,
}

impl Transfer {
    /// Whether all bytes the stream range counts are kept.
    pub fn complete(&self) -> bool {
        self.stream.end - self.stream.start == self.bytes.len() as u64
    }
}

/// How a received chunk joins the transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    /// It begins a reply of its own.
    New,
    /// It continues the last reply read on its connection (a multi-line body, the further
    /// lines of an SMTP reply).
    Continue,
}

struct Conn {
    stream: TcpStream,
    /// Received and not yet handed out.
    buf: Vec<u8>,
    eof: bool,
    /// Bytes written so far (the client's stream offset).
    sent: u64,
    /// Bytes handed out of `buf` so far (the server's stream offset of `buf`'s start).
    handed: u64,
}

/// What one check uses: its connections, the step limit, and the evidence.
pub struct Probe {
    timeout: Duration,
    conns: Vec<Option<Conn>>,
    /// The local end of every connection opened.
    pub clients: Vec<SocketAddr>,
    /// The server end of every connection opened (same order).
    pub servers: Vec<SocketAddr>,
    /// What the current step expects (shown with a failure).
    pub expected: String,
    /// Bytes sent in the current step.
    pub sent: Vec<u8>,
    /// Bytes received in the current step.
    pub got: Vec<u8>,
    /// Whether the last thing done was a read (the next send starts a new step).
    read_since_send: bool,
    /// The level applied (a check may raise it).
    pub level: Level,
    /// Everything sent and read in evidence, in order, with stream offsets.
    pub transcript: Vec<Transfer>,
    /// The current round (see [`Transfer::round`]).
    round: usize,
    /// The round where the current evidence (`sent`, `got`) began: the exchange judged.
    pub evidence_round: usize,
    /// The connection of the last transfer.
    last_conn: Option<usize>,
}

impl Probe {
    /// A probe whose every step waits at most `timeout`.
    pub fn new(timeout: Duration, level: Level) -> Self {
        Self {
            timeout,
            conns: Vec::new(),
            clients: Vec::new(),
            servers: Vec::new(),
            expected: String::new(),
            sent: Vec::new(),
            got: Vec::new(),
            read_since_send: false,
            level,
            transcript: Vec::new(),
            round: 0,
            evidence_round: 0,
            last_conn: None,
        }
    }

    /// The step limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets what the next step expects.
    pub fn expect(&mut self, expected: impl Into<String>) {
        self.expected = expected.into();
    }

    /// Opens a fresh connection to `addr` (HOST:PORT) within the step limit.
    pub fn connect(&mut self, addr: &str) -> Result<ConnId, StepError> {
        self.new_step();
        let connect_error = |why: String| StepError::Connect {
            addr: addr.to_string(),
            why,
        };
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| connect_error(e.to_string()))?
            .collect();
        let mut last = connect_error("the name has no address".to_string());
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let Ok(local) = stream.local_addr() else {
                        last = connect_error("the socket has no local address".to_string());
                        continue;
                    };
                    self.clients.push(local);
                    self.servers.push(a);
                    self.conns.push(Some(Conn {
                        stream,
                        buf: Vec::new(),
                        eof: false,
                        sent: 0,
                        handed: 0,
                    }));
                    // A new connection begins a round of its own.
                    self.next_round();
                    return Ok(ConnId(self.conns.len() - 1));
                }
                Err(e) => last = connect_error(e.to_string()),
            }
        }
        Err(last)
    }

    fn conn(&mut self, id: ConnId) -> Result<&mut Conn, StepError> {
        self.conns
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .ok_or(StepError::Closed)
    }

    fn new_step(&mut self) {
        if self.read_since_send {
            self.sent.clear();
            self.got.clear();
            self.read_since_send = false;
            self.next_round();
            self.evidence_round = self.round;
        }
    }

    /// Starts a new step of evidence even if nothing was read since the last send.
    pub fn restart_evidence(&mut self) {
        self.sent.clear();
        self.got.clear();
        self.read_since_send = false;
        self.next_round();
        self.evidence_round = self.round;
    }

    /// The round the last transfer belongs to (to point at it later with
    /// [`Self::judge_round`]).
    pub fn last_round(&self) -> usize {
        self.transcript.last().map_or(self.round, |t| t.round)
    }

    /// Says which round holds the exchange judged, for a check that put its evidence
    /// together after the session (its failure is in one of several replies).
    pub fn judge_round(&mut self, round: usize) {
        self.evidence_round = round;
    }

    /// Begins a new round, unless the current one holds nothing yet.
    fn next_round(&mut self) {
        if self
            .transcript
            .last()
            .is_some_and(|t| t.round == self.round)
        {
            self.round += 1;
        }
    }

    /// Notes bytes of connection `conn` at `offset` of `direction`'s stream.
    fn note(&mut self, conn: usize, direction: Direction, offset: u64, bytes: &[u8], join: Join) {
        if bytes.is_empty() {
            return;
        }
        if self.last_conn.is_some_and(|c| c != conn) {
            self.next_round();
        }
        self.last_conn = Some(conn);
        let end = offset + bytes.len() as u64;
        if let Some(last) = self.transcript.last_mut()
            && join == Join::Continue
            && last.conn == conn
            && last.direction == direction
            && last.round == self.round
            && last.stream.end == offset
        {
            let room = MAX_TRANSFER.saturating_sub(last.bytes.len());
            last.bytes
                .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
            last.stream.end = end;
            return;
        }
        if self.transcript.len() >= MAX_TRANSFERS {
            return;
        }
        self.transcript.push(Transfer {
            conn,
            direction,
            stream: offset..end,
            bytes: bytes
                .get(..MAX_TRANSFER.min(bytes.len()))
                .unwrap_or_default()
                .to_vec(),
            round: self.round,
        });
    }

    /// Sends bytes in one write (one segment when small).
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) -> Result<(), StepError> {
        self.new_step();
        if self.sent.len() < MAX_REPLY {
            self.sent.extend_from_slice(bytes);
        }
        let conn = self.conn(id)?;
        let offset = conn.sent;
        // Only what the socket took is counted and noted: a write that fails half-way (the
        // server reset the connection) must not put bytes in the evidence that never went
        // out.
        let mut done = 0;
        let mut result = Ok(());
        while done < bytes.len() {
            match conn.stream.write(bytes.get(done..).unwrap_or_default()) {
                Ok(0) => {
                    result = Err(io_error(std::io::ErrorKind::WriteZero.into()));
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(io_error(e));
                    break;
                }
            }
        }
        conn.sent += done as u64;
        let _ = conn.stream.flush();
        let written = bytes.get(..done).unwrap_or_default();
        if !written.is_empty() {
            self.note(id.0, Direction::ClientToServer, offset, written, Join::New);
        }
        result
    }

    /// Closes a connection at once, without a goodbye (as a crashed client would).
    pub fn drop_conn(&mut self, id: ConnId) {
        if let Some(slot) = self.conns.get_mut(id.0)
            && let Some(conn) = slot.take()
        {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Says goodbye (`QUIT`) outside the evidence, waits briefly for the answer (so the
    /// server can release a lock), and closes.
    pub fn quit_quietly(&mut self, id: ConnId) {
        let limit = self.timeout.min(Duration::from_secs(2));
        if let Ok(conn) = self.conn(id) {
            if conn.stream.write_all(b"QUIT\r\n").is_err() {
                self.drop_conn(id);
                return;
            }
            conn.sent += 6;
            let deadline = Instant::now() + limit;
            while !conn.eof && Instant::now() < deadline {
                if fill(conn, deadline).is_err() {
                    break;
                }
                conn.handed += conn.buf.len() as u64;
                conn.buf.clear();
            }
        }
        self.drop_conn(id);
    }

    /// Records bytes handed out of connection `id`'s buffer (they were just drained from
    /// it: the connection's `handed` counter is advanced here).
    fn record(&mut self, id: ConnId, bytes: &[u8], join: Join) {
        self.read_since_send = true;
        if self.got.len() < MAX_REPLY {
            self.got.extend_from_slice(bytes);
        }
        let Some(conn) = self.conns.get_mut(id.0).and_then(Option::as_mut) else {
            return;
        };
        let offset = conn.handed;
        conn.handed += bytes.len() as u64;
        self.note(id.0, Direction::ServerToClient, offset, bytes, join);
    }

    /// The next line, with its line end (everything up to and including a LF).
    pub fn line(&mut self, id: ConnId) -> Result<Vec<u8>, StepError> {
        let deadline = Instant::now() + self.timeout;
        self.line_until(id, deadline, Join::New)
    }

    /// The next line of a reply whose first line was read already.
    fn more_line(&mut self, id: ConnId) -> Result<Vec<u8>, StepError> {
        let deadline = Instant::now() + self.timeout;
        self.line_until(id, deadline, Join::Continue)
    }

    fn line_until(
        &mut self,
        id: ConnId,
        deadline: Instant,
        join: Join,
    ) -> Result<Vec<u8>, StepError> {
        self.read_since_send = true;
        let timeout = self.timeout;
        let conn = self.conn(id)?;
        loop {
            if let Some(end) = conn.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = conn.buf.drain(..=end).collect();
                self.record(id, &line, join);
                return Ok(line);
            }
            if conn.buf.len() > MAX_LINE {
                let partial = std::mem::take(&mut conn.buf);
                self.record(id, &partial, join);
                return Err(StepError::TooLong);
            }
            if conn.eof {
                let partial = std::mem::take(&mut conn.buf);
                self.record(id, &partial, join);
                return Err(StepError::Closed);
            }
            if let Err(e) = fill(conn, deadline) {
                let partial = std::mem::take(&mut conn.buf);
                self.record(id, &partial, join);
                return Err(match e {
                    StepError::Silent { .. } => StepError::Silent { waited: timeout },
                    other => other,
                });
            }
        }
    }

    /// The lines of a POP3 multi-line body after its first line: up to and including the
    /// line holding only "." (CRLF or bare LF). The whole body shares one step limit,
    /// renewed whenever bytes arrive.
    pub fn dot_body(&mut self, id: ConnId) -> Result<Vec<Vec<u8>>, StepError> {
        let mut lines = Vec::new();
        let mut total = 0usize;
        loop {
            let line = self.more_line(id)?;
            total += line.len();
            let end = line == b".\r\n" || line == b".\n";
            lines.push(line);
            if end {
                return Ok(lines);
            }
            if total > MAX_REPLY {
                return Err(StepError::TooLong);
            }
        }
    }

    /// The lines of one SMTP reply: up to the first line whose fourth byte is not "-".
    pub fn smtp_reply(&mut self, id: ConnId) -> Result<Vec<Vec<u8>>, StepError> {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        loop {
            let line = if lines.is_empty() {
                self.line(id)?
            } else {
                self.more_line(id)?
            };
            let more = line.get(3) == Some(&b'-') && lines.len() < 1000;
            lines.push(line);
            if !more {
                return Ok(lines);
            }
        }
    }

    /// Waits `wait` and returns whatever arrived meanwhile (empty when nothing did);
    /// `Closed` or `Reset` when the connection ended.
    pub fn listen(&mut self, id: ConnId, wait: Duration) -> Result<Vec<u8>, StepError> {
        let deadline = Instant::now() + wait;
        let conn = self.conn(id)?;
        let mut result = Ok(());
        while Instant::now() < deadline && !conn.eof {
            match fill(conn, deadline) {
                Ok(()) => {}
                Err(StepError::Silent { .. }) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let eof = conn.eof;
        let bytes = std::mem::take(&mut conn.buf);
        self.record(id, &bytes, Join::New);
        result?;
        if eof && bytes.is_empty() {
            return Err(StepError::Closed);
        }
        Ok(bytes)
    }

    /// Whether the server closes the connection within the step limit (bytes that arrive
    /// first are recorded and skipped).
    pub fn closes(&mut self, id: ConnId) -> Result<(), StepError> {
        let deadline = Instant::now() + self.timeout;
        let timeout = self.timeout;
        let conn = self.conn(id)?;
        loop {
            if conn.eof {
                let rest = std::mem::take(&mut conn.buf);
                self.record(id, &rest, Join::New);
                return Ok(());
            }
            match fill(conn, deadline) {
                Ok(()) => {}
                Err(StepError::Reset) => return Ok(()),
                Err(StepError::Silent { .. }) => {
                    return Err(StepError::Silent { waited: timeout });
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Reads once (whatever is there, up to the deadline) into the connection's buffer.
fn fill(conn: &mut Conn, deadline: Instant) -> Result<(), StepError> {
    let now = Instant::now();
    let Some(left) = deadline
        .checked_duration_since(now)
        .filter(|d| !d.is_zero())
    else {
        return Err(StepError::Silent {
            waited: Duration::ZERO,
        });
    };
    conn.stream
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .map_err(io_error)?;
    let mut chunk = [0u8; 16 * 1024];
    match conn.stream.read(&mut chunk) {
        Ok(0) => {
            conn.eof = true;
            Ok(())
        }
        Ok(n) => {
            conn.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
            Ok(())
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(StepError::Silent {
                waited: Duration::ZERO,
            })
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(io_error(e)),
    }
}

fn io_error(e: std::io::Error) -> StepError {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => StepError::Reset,
        ErrorKind::BrokenPipe => StepError::Closed,
        _ => StepError::Io(e.to_string()),
    }
}

/// A step that failed in what the check names: a failure (or a warning for a `should`).
/// Like [`failed`], for the first read of a connection: silence there is a server that
/// never greeted.
pub fn no_greeting(level: Level) -> impl Fn(StepError) -> Stop {
    move |e| match e {
        StepError::Silent { waited } => super::pop3::fail_at(
            level,
            format!(
                "no greeting within {:.1} s after the connection opened",
                waited.as_secs_f64()
            ),
        ),
        other => failed(level)(other),
    }
}

pub fn failed(level: Level) -> impl Fn(StepError) -> Stop {
    move |e| match level {
        Level::Must => Verdict::Fail(e.to_string()),
        Level::Should => Verdict::Warn(e.to_string()),
    }
}

/// A step the check only needed on its way (a login, a 354): a skip naming the check that
/// tests it.
pub fn needs(what: &str, see: &str) -> impl Fn(StepError) -> Stop {
    let text = format!("{what} did not work ({{}}); see {see}.");
    move |e| Verdict::Skip(text.replace("{}", e.to_string().trim_end_matches('.')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve(reply: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.write_all(reply);
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        addr
    }

    #[test]
    fn lines_keep_their_ends_and_silence_is_an_error() {
        let addr = serve(b"+OK hi\r\nbare\nrest");
        let mut p = Probe::new(Duration::from_millis(200), Level::Must);
        let c = p.connect(&addr).unwrap();
        assert_eq!(p.line(c).unwrap(), b"+OK hi\r\n");
        assert_eq!(p.line(c).unwrap(), b"bare\n");
        assert!(matches!(p.line(c), Err(StepError::Silent { .. })));
        assert_eq!(p.got, b"+OK hi\r\nbare\nrest");
    }

    #[test]
    fn the_transcript_counts_stream_offsets_and_rounds() {
        let addr = serve(b"+OK hi\r\n+OK 2\r\n1 3\r\n.\r\n");
        let mut p = Probe::new(Duration::from_millis(300), Level::Must);
        let c = p.connect(&addr).unwrap();
        p.line(c).unwrap();
        p.send(c, b"LIST\r\n").unwrap();
        p.line(c).unwrap();
        p.dot_body(c).unwrap();
        let t = &p.transcript;
        assert_eq!(t.len(), 3, "{t:?}");
        assert_eq!((t[0].round, t[0].stream.clone()), (0, 0..8));
        assert_eq!((t[1].round, t[1].direction), (1, Direction::ClientToServer));
        assert_eq!(t[1].stream, 0..6);
        // The status line and its body are one reply.
        assert_eq!((t[2].round, t[2].stream.clone()), (1, 8..23));
        assert_eq!(t[2].bytes, b"+OK 2\r\n1 3\r\n.\r\n");
        assert_eq!(p.evidence_round, 1);
    }

    #[test]
    fn smtp_replies_end_at_the_last_line() {
        let addr = serve(b"250-a\r\n250 b\r\n220 x\r\n");
        let mut p = Probe::new(Duration::from_millis(500), Level::Must);
        let c = p.connect(&addr).unwrap();
        assert_eq!(p.smtp_reply(c).unwrap().len(), 2);
        assert_eq!(p.smtp_reply(c).unwrap(), vec![b"220 x\r\n".to_vec()]);
    }

    #[test]
    fn a_refused_connection_says_where() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let mut p = Probe::new(Duration::from_millis(500), Level::Must);
        let e = p.connect(&addr).unwrap_err();
        assert!(e.to_string().contains(&addr), "{e}");
    }
}
