//! `mailwire telnet HOST:PORT`: a raw console, like the PuTTY session of seed 004.
//!
//! Each line typed is sent with CRLF; every byte the server sends is shown as it arrives,
//! multi-line replies included. The end of the input (Ctrl-D) half-closes the connection
//! and waits a little for the server's last words; Ctrl-C closes at once. The transcript
//! (the server's bytes and the lines sent, in order, under a PuTTY-style header) can be
//! saved to a file.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::wire::connect_tcp;

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
    /// Pause before sending each line (gives scripted input a typist's pace).
    pub line_delay: Duration,
    /// Repeat each line sent on the output (for input that is not a terminal).
    pub echo_input: bool,
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    ServerClosed,
    Lingered,
    Interrupted,
}

/// Runs a raw session: `input` lines go to the server, its bytes go to `output`.
/// `input` is read on its own thread, which may outlive the session while blocked.
pub fn run_telnet_session(
    config: TelnetConfig,
    input: impl BufRead + Send + 'static,
    mut output: impl Write,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let mut log = Vec::new();
    let started = chrono::Local::now().format("%Y.%m.%d %H:%M:%S");
    let header = format!(
        "=~=~=~=~=~=~=~=~=~=~=~= mailwire telnet log {started} =~=~=~=~=~=~=~=~=~=~=~=\r\n"
    );
    log.extend_from_slice(header.as_bytes());
    let result = runtime.block_on(session(&config, input, &mut output, &mut log));
    if let Some(path) = &config.save {
        std::fs::write(path, &log)
            .map_err(|e| format!("cannot save the transcript to {}: {e}", path.display()))?;
        let _ = writeln!(output, "Transcript saved to {}.", path.display());
    }
    result
}

async fn session(
    config: &TelnetConfig,
    input: impl BufRead + Send + 'static,
    output: &mut impl Write,
    log: &mut Vec<u8>,
) -> Result<(), String> {
    let stream = connect_tcp(&config.addr, config.connect_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let peer = stream
        .peer_addr()
        .map_or(config.addr.clone(), |a| a.to_string());
    show(
        output,
        format!("Connected to {peer}. Type commands; Ctrl-D ends.\n").as_bytes(),
    )?;
    let (mut reader, mut writer) = stream.into_split();
    let mut lines = spawn_line_reader(input);
    let mut buf = vec![0u8; 16 * 1024];
    let mut at_line_start = true;
    let mut linger_until: Option<tokio::time::Instant> = None;
    let ending = loop {
        let linger = async {
            match linger_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = read.map_err(|e| format!("reading from {peer} failed: {e}"))?;
                let Some(bytes) = buf.get(..n).filter(|b| !b.is_empty()) else {
                    break Ending::ServerClosed;
                };
                show(output, bytes)?;
                log.extend_from_slice(bytes);
                at_line_start = bytes.ends_with(b"\n");
            }
            line = lines.recv(), if linger_until.is_none() => match line {
                Some(line) => {
                    tokio::time::sleep(config.line_delay).await;
                    let mut sent = line;
                    sent.extend_from_slice(b"\r\n");
                    writer.write_all(&sent).await.map_err(|e| format!("writing to {peer} failed: {e}"))?;
                    if config.echo_input {
                        show(output, &sent)?;
                    }
                    log.extend_from_slice(&sent);
                    at_line_start = true;
                }
                None => {
                    let _ = writer.shutdown().await;
                    linger_until = Some(tokio::time::Instant::now() + config.linger);
                }
            },
            () = linger => break Ending::Lingered,
            _ = tokio::signal::ctrl_c() => break Ending::Interrupted,
        }
    };
    let newline = if at_line_start { "" } else { "\n" };
    let farewell = match ending {
        Ending::ServerClosed => "Connection closed by the server.",
        Ending::Lingered => "Input ended; the server did not close the connection, closing it.",
        Ending::Interrupted => "Interrupted; closing the connection.",
    };
    show(output, format!("{newline}{farewell}\n").as_bytes())
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

fn show(output: &mut impl Write, bytes: &[u8]) -> Result<(), String> {
    output
        .write_all(bytes)
        .and_then(|()| output.flush())
        .map_err(|e| format!("cannot write to the terminal: {e}"))
}
