//! mailwire's POP3 client against an independent server: Debian's Dovecot, started by each
//! test from a throwaway configuration on a loopback port (DESIGN.md, "Independent peers").
//!
//! Dovecot must be installed (`apt-get install dovecot-pop3d`; CI installs it). Without it
//! these tests fail and say so: a silent pass would hide that the client was never checked
//! against a server we did not write.

// Test helpers: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Spawned, TempDir};

use mailwire::client::{ClientOptions, Pop3Connection};
use mailwire::proto::pop3::Command as Pop3;

const DOVECOT: &str = "/usr/sbin/dovecot";
/// Every run of the binary ends within this time or the test fails.
const LIMIT: Duration = Duration::from_secs(60);

const MAIL_1: &str = "Received: from mx.example.org by vm; Tue, 1 Jul 2025 10:52:37 +0200\r\n\
    From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Hello from Dovecot\r\n\
    Date: Tue, 1 Jul 2025 10:52:30 +0200\r\n\r\n.dot line\r\nbody\r\n";
const MAIL_2: &str = "From: carol@example.org\r\nSubject: Second\r\n\
    Date: Wed, 2 Jul 2025 08:00:00 +0000\r\n\r\nshort\r\n";

/// A Dovecot POP3 server in a temp folder, stopped (by its process id) and removed on drop.
pub(crate) struct Dovecot {
    child: Spawned,
    dir: TempDir,
    pub(crate) addr: String,
}

impl Dovecot {
    pub(crate) fn start(tag: &str) -> Dovecot {
        assert!(
            Path::new(DOVECOT).exists(),
            "{DOVECOT} is missing, so the client cannot be tested against Dovecot. Install it \
             with `apt-get install dovecot-pop3d` (CI installs it)."
        );
        let tmp = TempDir::new(&format!("dovecot-{tag}"));
        let dir = tmp.path();
        // Dovecot's login processes run as `nobody` and must reach base_dir inside it.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (uid, gid) = mail_owner(dir);
        let home = dir.join("home").join("alice");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(home.join("Maildir").join(sub)).unwrap();
        }
        let new = home.join("Maildir").join("new");
        std::fs::write(new.join("1751360000.M1P1.mailwire"), MAIL_1).unwrap();
        std::fs::write(new.join("1751440000.M2P1.mailwire"), MAIL_2).unwrap();
        chown_tree(&dir.join("home"), uid, gid);
        let passwd = format!("alice:{{PLAIN}}secret:{uid}:{gid}::{}::\n", home.display());
        std::fs::write(dir.join("passwd"), passwd).unwrap();
        let port = free_port();
        std::fs::write(dir.join("dovecot.conf"), config(dir, port)).unwrap();
        let child = Spawned::new(
            Command::new(DOVECOT)
                .arg("-F")
                .arg("-c")
                .arg(dir.join("dovecot.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let server = Dovecot {
            child,
            dir: tmp,
            addr: format!("127.0.0.1:{port}"),
        };
        server.wait_until_ready();
        server
    }

    fn wait_until_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 3];
                if s.read_exact(&mut buf).is_ok() && &buf == b"+OK" {
                    let _ = s.write_all(b"QUIT\r\n");
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Dovecot did not answer on {} within 15 s; its log:\n{}",
            self.addr,
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn maildir_count(&self) -> usize {
        let maildir = self.dir.path().join("home").join("alice").join("Maildir");
        ["new", "cur"]
            .iter()
            .map(|sub| std::fs::read_dir(maildir.join(sub)).unwrap().count())
            .sum()
    }
}

impl Drop for Dovecot {
    /// Stops Dovecot the way it likes (SIGTERM), before its folder goes.
    fn drop(&mut self) {
        self.child.stop(libc::SIGTERM, Duration::from_secs(5));
    }
}

/// The uid and gid that own the mail: `nobody` when we are root (Dovecot refuses uid 0 in a
/// passwd-file), else ourselves.
fn mail_owner(dir: &Path) -> (u32, u32) {
    let meta = std::fs::metadata(dir).unwrap();
    if meta.uid() == 0 {
        (65534, 65534)
    } else {
        (meta.uid(), meta.gid())
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    let (internal, login) = if std::fs::metadata(dir).unwrap().uid() == 0 {
        ("nobody".to_string(), "nobody".to_string())
    } else {
        let me = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
        (me.clone(), me)
    };
    format!(
        "base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         log_path = {d}/dovecot.log\n\
         ssl = no\n\
         disable_plaintext_auth = no\n\
         auth_mechanisms = plain apop\n\
         auth_failure_delay = 0\n\
         default_internal_user = {internal}\n\
         default_login_user = {login}\n\
         first_valid_uid = 0\n\
         protocols = pop3\n\
         listen = 127.0.0.1\n\
         mail_location = maildir:~/Maildir\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
         inet_listener pop3s {{\n    port = 0\n  }}\n}}\n"
    )
}

fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

#[test]
fn pop3_connection_against_dovecot() {
    let dovecot = Dovecot::start("conn");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let session = async {
        let mut c = Pop3Connection::connect(&dovecot.addr, &options())
            .await
            .unwrap();
        assert!(c.greeting().positive);
        assert!(
            c.apop_timestamp().is_some(),
            "{}",
            c.greeting().status_line()
        );

        let bad = c.login("alice", "wrong").await.unwrap();
        assert!(!bad.positive);
        assert_eq!(
            bad.resp_code.as_deref(),
            Some("AUTH"),
            "{}",
            bad.status_line()
        );

        // APOP with the digest of Dovecot's own timestamp.
        assert!(c.apop("alice", "secret").await.unwrap().positive);

        let stat = c.command(Pop3::Stat).await.unwrap();
        let sizes = [MAIL_1.len(), MAIL_2.len()];
        assert_eq!(stat.text, format!("2 {}", sizes[0] + sizes[1]));
        let list = c.command(Pop3::List(None)).await.unwrap();
        let lines: Vec<String> = list
            .body_lines()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        assert_eq!(
            lines,
            [format!("1 {}", sizes[0]), format!("2 {}", sizes[1])]
        );
        let uidl = c.command(Pop3::Uidl(None)).await.unwrap();
        assert_eq!(uidl.body_lines().count(), 2);
        let capa = c.command(Pop3::Capa).await.unwrap();
        assert!(capa.body_text().contains("TOP\r\n"), "{}", capa.body_text());

        let top = c.command(Pop3::Top { msg: 1, lines: 0 }).await.unwrap();
        assert!(
            top.body_text().ends_with("+0200\r\n\r\n"),
            "{}",
            top.body_text()
        );
        let retr = c.command(Pop3::Retr(1)).await.unwrap();
        assert_eq!(retr.body.as_deref(), Some(MAIL_1.as_bytes()));

        assert!(!c.command(Pop3::Retr(9)).await.unwrap().positive);
        assert!(c.command(Pop3::Dele(1)).await.unwrap().positive);
        assert!(c.command(Pop3::Rset).await.unwrap().positive);
        assert!(c.command(Pop3::Dele(2)).await.unwrap().positive);
        assert!(c.command(Pop3::Noop).await.unwrap().positive);
        assert!(c.quit().await.unwrap().positive);
    };
    rt.block_on(async { tokio::time::timeout(LIMIT, session).await })
        .unwrap_or_else(|_| {
            panic!(
                "the session did not finish in time; Dovecot's log:\n{}",
                dovecot.log()
            )
        });
    assert_eq!(dovecot.maildir_count(), 1, "{}", dovecot.log());
}

#[test]
fn console_client_against_dovecot() {
    let dovecot = Dovecot::start("console");
    let script = "alice\nwrong\n1\nalice\nsecret\n3\n1\n4\n2\n5\n3\n";
    let out = common::run_with_input(
        Command::new(common::MAILWIRE).args([
            "client",
            "--pop3",
            &dovecot.addr,
            "--timeout-secs",
            "10",
        ]),
        script,
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = [
        "Authentication failed: -ERR [AUTH] Authentication failed.",
        "Please enter your username and password again.",
        "Logged in as alice. The server's greeting was:\n+OK Dovecot",
        "1        bob@example.org                2025-07-01 : 10 : 52   Hello from Dovecot",
        "2        carol@example.org              2025-07-02 : 08 : 00   Second",
        "C: RETR 1\nS: +OK ",
        "\n..dot line   [byte-stuffed: the client removed one dot (RFC 1939 section 3)]\n\
         body\n.   [the \".\" line: the end of the multi-line reply]\n",
        "C: DELE 2\nS: +OK",
        "C: QUIT\nS: +OK",
        "Goodbye.",
    ];
    let mut from = 0;
    for part in expected {
        match stdout.get(from..).and_then(|rest| rest.find(part)) {
            Some(at) => from += at + part.len(),
            None => panic!(
                "{part:?} not found (in this order) in:\n{stdout}\nDovecot's log:\n{}",
                dovecot.log()
            ),
        }
    }
    assert_eq!(dovecot.maildir_count(), 1, "{}", dovecot.log());
}
