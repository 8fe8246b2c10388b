//! Durable delivery under a crash: `mailwire serve` is killed with SIGKILL while several SMTP
//! clients deliver to it at once (the folder syncs of their deliveries are then shared, see
//! `store::maildir`). Every message that got its `250` must be in `new/` whole, and no file
//! in `new/` may be a half-written message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{MAILWIRE, Spawned, TempDir};

const CLIENTS: usize = 8;
/// The most messages sent in all (the load is bounded whatever happens).
const MAX_MESSAGES: usize = 2000;
/// The server is killed once this many messages were acknowledged.
const KILL_AFTER: usize = 600;

/// The content of message `id`: headers and 60 numbered lines, then an end line, so a
/// stored copy shows whether it is whole.
fn content(id: &str) -> String {
    let mut m = format!("Subject: crash test {id}\r\nMessage-ID: <{id}@crash.test>\r\n\r\n");
    for i in 0..60 {
        m.push_str(&format!(
            "{id} line {i:03} the quick brown fox jumps over the lazy dog\r\n"
        ));
    }
    m.push_str(&format!("END {id}\r\n"));
    m
}

/// One SMTP client: sends messages on one connection until it is told to stop, the server
/// goes away, or the shared budget is spent; records the ids acknowledged with 250.
fn client(
    addr: SocketAddr,
    n: usize,
    sent: &AtomicUsize,
    acked: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let reply = |r: &mut BufReader<TcpStream>| -> Option<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(line);
            }
        }
    };
    let ok = |line: Option<String>, code: &str| line.is_some_and(|l| l.starts_with(code));
    if !ok(reply(&mut r), "220") {
        return;
    }
    if w.write_all(b"HELO crash.test\r\n").is_err() || !ok(reply(&mut r), "250") {
        return;
    }
    let mut k = 0;
    while !stop.load(Ordering::SeqCst) && sent.fetch_add(1, Ordering::SeqCst) < MAX_MESSAGES {
        let id = format!("c{n}m{k}");
        k += 1;
        let steps = [
            ("MAIL FROM:<a@localhost>\r\n".to_string(), "250"),
            ("RCPT TO:<user@localhost>\r\n".to_string(), "250"),
            ("DATA\r\n".to_string(), "354"),
        ];
        for (line, code) in steps {
            if w.write_all(line.as_bytes()).is_err() || !ok(reply(&mut r), code) {
                return;
            }
        }
        if w.write_all(format!("{}.\r\n", content(&id)).as_bytes())
            .is_err()
        {
            return;
        }
        match reply(&mut r) {
            Some(l) if l.starts_with("250") => acked.lock().unwrap().push(id),
            _ => return,
        }
    }
}

#[test]
fn every_acknowledged_message_survives_sigkill_whole() {
    let data = TempDir::new("crash");
    std::fs::write(data.path().join("users.txt"), "user secret\n").unwrap();
    let mut server = Spawned::new(
        Command::new(MAILWIRE)
            .args(["serve", "--data"])
            .arg(data.path())
            .args(["--pop3", "127.0.0.1:0", "--smtp", "127.0.0.1:0", "--quiet"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let smtp: SocketAddr = first
        .split("SMTP on ")
        .nth(1)
        .and_then(|rest| rest.split(". ").next())
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no SMTP address in {first:?}"));

    let sent = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (sent, acked, stop) = (sent.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || client(smtp, n, &sent, &acked, &stop))
        })
        .collect();
    let start = Instant::now();
    while acked.lock().unwrap().len() < KILL_AFTER && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(1));
    }
    server.signal(libc::SIGKILL);
    let killed_after = acked.lock().unwrap().len();
    stop.store(true, Ordering::SeqCst);
    server.wait_within(Duration::from_secs(10));
    for t in threads {
        t.join().unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        killed_after >= KILL_AFTER,
        "only {killed_after} messages acknowledged in 60 s"
    );

    let maildir = data.path().join("user").join("Maildir");
    let mut stored = HashSet::new();
    let new = std::fs::read_dir(maildir.join("new")).unwrap();
    for entry in new {
        let path = entry.unwrap().path();
        let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
        let at = text
            .find("Subject: crash test ")
            .unwrap_or_else(|| panic!("{} is not a whole message: {text:?}", path.display()));
        let id = text[at + "Subject: crash test ".len()..]
            .split("\r\n")
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            &text[at..],
            content(&id),
            "{} is not the whole message {id}",
            path.display()
        );
        assert!(stored.insert(id.clone()), "message {id} stored twice");
    }
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages are not in new/: {:?}",
        lost.len(),
        acked.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    // Nothing half-done outside new/ either: the unnamed files vanish with the process.
    let tmp = std::fs::read_dir(maildir.join("tmp")).map_or(0, Iterator::count);
    assert_eq!(tmp, 0, "files left in tmp/");
    eprintln!(
        "{} acknowledged before the kill, {} acknowledged in all, {} stored, {} sent",
        killed_after,
        acked.len(),
        stored.len(),
        sent.load(Ordering::SeqCst).min(MAX_MESSAGES)
    );
}
