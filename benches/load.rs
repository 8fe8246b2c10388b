//! A small POP3 load generator, so mailwire and Dovecot are measured by the same client.
//!
//! ```text
//! cargo bench --bench load -- pop3 --addr 127.0.0.1:1110 --users u1:p1,u2:p2 \
//!     --clients 10 --seconds 10 [--threads 1] [--timeout-secs 10]
//! ```
//!
//! Each client loops over full sessions until the time is up: connect, greeting, USER, PASS,
//! STAT, RETR 1 (read to the `CRLF . CRLF` terminator, unstuff, and check the length
//! against STAT's size), QUIT, close. Client `i` always uses user `i` (POP3 locks the
//! maildrop, so one user per client means sessions of one user never overlap). A session
//! already started when the time is up is finished and counted; the rate is over the time
//! from the start to the last client's end.
//!
//! Output: one machine-readable line starting `RESULT ` (space-separated `key=value`s) and
//! one line for people. Exit code 0 if at least one session succeeded, 1 otherwise, 2 for
//! bad arguments. SMTP load is measured with Postfix's smtp-source (see benches/run.sh).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    addr: SocketAddr,
    users: Vec<(String, String)>,
    clients: usize,
    seconds: f64,
    threads: usize,
    timeout: Duration,
}

const USAGE: &str = "usage: load pop3 --addr HOST:PORT --users u1:p1,u2:p2,... \
[--clients N (10)] [--seconds S (10)] [--threads T (1)] [--timeout-secs S (10)]";

fn parse_args(raw: Vec<String>) -> Result<Args, String> {
    // `cargo bench` appends `--bench`; it means nothing here.
    let mut it = raw.into_iter().filter(|a| a != "--bench");
    match it.next().as_deref() {
        Some("pop3") => {}
        Some(other) => return Err(format!("unknown mode {other:?} (only pop3)")),
        None => return Err("no mode given".into()),
    }
    let mut addr = None;
    let mut users = Vec::new();
    let mut clients = 10usize;
    let mut seconds = 10.0f64;
    let mut threads = 1usize;
    let mut timeout = 10.0f64;
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("bad value for {flag}: {value:?} ({e})");
        match flag.as_str() {
            "--addr" => addr = Some(value.parse::<SocketAddr>().map_err(|e| bad(&e))?),
            "--users" => {
                for pair in value.split(',').filter(|p| !p.is_empty()) {
                    let (u, p) = pair
                        .split_once(':')
                        .ok_or_else(|| format!("user {pair:?} is not name:password"))?;
                    users.push((u.to_string(), p.to_string()));
                }
            }
            "--clients" => clients = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => seconds = value.parse().map_err(|e| bad(&e))?,
            "--threads" => threads = value.parse().map_err(|e| bad(&e))?,
            "--timeout-secs" => timeout = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let addr = addr.ok_or("--addr is required")?;
    if clients == 0 || threads == 0 {
        return Err("--clients and --threads must be at least 1".into());
    }
    if users.len() < clients {
        return Err(format!(
            "{clients} clients need {clients} users (one maildrop per client), got {}",
            users.len()
        ));
    }
    if !(seconds > 0.0 && seconds <= 3600.0 && timeout > 0.0 && timeout <= 600.0) {
        return Err("--seconds must be in (0, 3600] and --timeout-secs in (0, 600]".into());
    }
    Ok(Args {
        addr,
        users,
        clients,
        seconds,
        threads,
        timeout: Duration::from_secs_f64(timeout),
    })
}

/// What one client did.
#[derive(Default)]
struct ClientReport {
    latencies: Vec<Duration>,
    errors: usize,
    /// The first few error messages, for the log.
    samples: Vec<String>,
    bytes: u64,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let mut tasks = Vec::with_capacity(args.clients);
    for (user, pass) in args.users.iter().take(args.clients).cloned() {
        let addr = args.addr;
        let timeout = args.timeout;
        tasks.push(tokio::spawn(client(addr, user, pass, deadline, timeout)));
    }
    let mut all = ClientReport::default();
    for task in tasks {
        match task.await {
            Ok(r) => {
                all.latencies.extend(r.latencies);
                all.errors += r.errors;
                all.bytes += r.bytes;
                for s in r.samples {
                    if all.samples.len() < 5 {
                        all.samples.push(s);
                    }
                }
            }
            Err(e) => {
                all.errors += 1;
                all.samples.push(format!("client task failed: {e}"));
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat = all.latencies;
    lat.sort_unstable();
    let ok = lat.len();
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    let pct = |p: f64| {
        if lat.is_empty() {
            None
        } else {
            // Nearest-rank percentile.
            let rank = ((p / 100.0) * lat.len() as f64).ceil() as usize;
            lat.get(rank.clamp(1, lat.len()) - 1)
        }
    };
    let (p50, p99, max) = (ms(pct(50.0)), ms(pct(99.0)), ms(lat.last()));
    let rate = ok as f64 / elapsed;
    println!(
        "RESULT mode=pop3 addr={} clients={} threads={} seconds={elapsed:.3} sessions={ok} \
         errors={} rate={rate:.1} p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2} \
         retr_bytes={}",
        args.addr, args.clients, args.threads, all.errors, all.bytes
    );
    println!(
        "pop3 {}: {ok} sessions in {elapsed:.2} s = {rate:.1} sessions/s with {} clients; \
         {} errors; latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        args.addr, args.clients, all.errors
    );
    for s in &all.samples {
        println!("  error: {s}");
    }
    if ok > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn client(
    addr: SocketAddr,
    user: String,
    pass: String,
    deadline: Instant,
    timeout: Duration,
) -> ClientReport {
    let mut report = ClientReport::default();
    while Instant::now() < deadline {
        let began = Instant::now();
        match tokio::time::timeout(timeout, session(addr, &user, &pass)).await {
            Ok(Ok(bytes)) => {
                report.latencies.push(began.elapsed());
                report.bytes += bytes;
            }
            outcome => {
                report.errors += 1;
                if report.samples.len() < 3 {
                    report.samples.push(match outcome {
                        Ok(Err(e)) => format!("{user}: {e}"),
                        _ => format!("{user}: session timed out after {timeout:?}"),
                    });
                }
                // Do not spin on a server that refuses: back off a little.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    report
}

/// One full POP3 session; returns the unstuffed size of the message retrieved.
async fn session(addr: SocketAddr, user: &str, pass: &str) -> Result<u64, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let mut conn = BufReader::with_capacity(16 * 1024, stream);
    let mut line = Vec::with_capacity(512);
    expect_ok(&mut conn, &mut line, "greeting").await?;
    command(
        &mut conn,
        &mut line,
        format!("USER {user}\r\n").as_bytes(),
        "USER",
    )
    .await?;
    command(
        &mut conn,
        &mut line,
        format!("PASS {pass}\r\n").as_bytes(),
        "PASS",
    )
    .await?;
    command(&mut conn, &mut line, b"STAT\r\n", "STAT").await?;
    // "+OK <count> <size>"
    let stat = String::from_utf8_lossy(&line).into_owned();
    let mut words = stat.split_ascii_whitespace().skip(1);
    let count: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    let size: Option<u64> = words.next().and_then(|w| w.parse().ok());
    if count < 1 {
        return Err(format!(
            "STAT: no message in the maildrop: {}",
            stat.trim_end()
        ));
    }
    command(&mut conn, &mut line, b"RETR 1\r\n", "RETR").await?;
    let mut body = 0u64;
    loop {
        read_line(&mut conn, &mut line, "RETR body").await?;
        if line.as_slice() == b".\r\n" {
            break;
        }
        // Byte-stuffed lines lose their first dot.
        let stuffed = u64::from(line.first() == Some(&b'.'));
        body += line.len() as u64 - stuffed;
    }
    if let Some(size) = size
        && count == 1
        && size != body
    {
        return Err(format!("RETR 1 gave {body} octets, STAT said {size}"));
    }
    command(&mut conn, &mut line, b"QUIT\r\n", "QUIT").await?;
    Ok(body)
}

async fn command(
    conn: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
    bytes: &[u8],
    what: &str,
) -> Result<(), String> {
    conn.get_mut()
        .write_all(bytes)
        .await
        .map_err(|e| format!("{what}: write: {e}"))?;
    expect_ok(conn, line, what).await
}

async fn expect_ok(
    conn: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
    what: &str,
) -> Result<(), String> {
    read_line(conn, line, what).await?;
    if line.starts_with(b"+OK") {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(line).trim_end()
        ))
    }
}

async fn read_line(
    conn: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
    what: &str,
) -> Result<(), String> {
    line.clear();
    let n = conn
        .read_until(b'\n', line)
        .await
        .map_err(|e| format!("{what}: read: {e}"))?;
    if n == 0 || !line.ends_with(b"\n") {
        return Err(format!("{what}: connection closed by the server"));
    }
    Ok(())
}
