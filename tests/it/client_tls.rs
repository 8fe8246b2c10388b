//! mailwire's client with TLS and SASL: `mailwire client --stls`, `--starttls`, `--tls` and
//! `--auth MECH` against `mailwire serve` (every mechanism), and the client against Debian's
//! Dovecot (STLS, implicit TLS, SASL), which mailwire did not write. The key log the client
//! keeps holds the session secrets; a certificate it was not told to trust is refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a failure should stop the test"
)]

use std::io::BufRead;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailwire::client::{ClientOptions, ClientTls, Pop3Connection, SmtpConnection, Trust};
use mailwire::proto::pop3::Command as Pop3;
use mailwire::proto::sasl::{Mechanism, client::SaslClient};
use mailwire::proto::smtp::client::ClientCommand;

use crate::children::{MAILWIRE, Spawned, run_with_input};
use crate::common::{TempDir, assert_in_order};

const LIMIT: Duration = Duration::from_secs(60);

/// `mailwire serve` on free ports, plain and implicit TLS, with the demo users.
struct Serve {
    _child: Spawned,
    dir: TempDir,
    pop3: String,
    smtp: String,
    pop3s: String,
    smtps: String,
}

impl Serve {
    fn start(tag: &str) -> Serve {
        let dir = TempDir::new(&format!("client-tls-{tag}"));
        mailwire::store::create_demo(dir.path()).unwrap();
        let mut child = Spawned::new(
            Command::new(MAILWIRE)
                .args(["serve", "--data"])
                .arg(dir.path())
                .args(["--pop3", "127.0.0.1:0", "--smtp", "127.0.0.1:0"])
                .args(["--pop3s", "127.0.0.1:0", "--smtps", "127.0.0.1:0"])
                .args(["--login-delay-ms", "10", "--quiet"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        out.read_line(&mut ready).unwrap();
        // "POP3 on A, SMTP on B, POP3S on C, SMTPS on D. Ctrl-C stops."
        let addr = |name: &str| {
            ready
                .split(", ")
                .find_map(|part| part.strip_prefix(&format!("{name} on ")))
                .map(|a| a.trim_end_matches(|c: char| c == '.' || c.is_whitespace()))
                .map(|a| a.split(". ").next().unwrap().to_string())
                .unwrap_or_else(|| panic!("no {name} address in {ready:?}"))
        };
        Serve {
            pop3: addr("POP3"),
            smtp: addr("SMTP"),
            pop3s: addr("POP3S"),
            smtps: addr("SMTPS"),
            _child: child,
            dir,
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("mailwire-cert.pem")
    }

    /// `mailwire client` with `flags`, fed `input`; its stdout and stderr.
    fn client(&self, pop3: &str, smtp: &str, flags: &[&str], input: &str) -> (String, String) {
        let out = run_with_input(
            Command::new(MAILWIRE)
                .args([
                    "client",
                    "--pop3",
                    pop3,
                    "--smtp",
                    smtp,
                    "--timeout-secs",
                    "10",
                ])
                .args(flags),
            input,
            LIMIT,
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{flags:?}: {stdout}\n{stderr}");
        (stdout, stderr)
    }
}

/// Log in, see the list, QUIT, leave.
const READ_MAIL: &str = "bob\nbuilder\n1\n5\n3\n";

#[test]
fn console_stls_with_each_sasl_mechanism_against_mailwire_serve() {
    let s = Serve::start("stls");
    let data = s.dir.path().to_str().unwrap().to_string();
    // USER/PASS inside TLS.
    let (out, _) = s.client(&s.pop3, &s.smtp, &["--stls", "--data", &data], READ_MAIL);
    assert_in_order(
        &out,
        &[
            "C: STLS",
            "S: +OK Begin TLS negotiation",
            "-- TLS is on with",
            "The server's certificate was checked.",
            "Logged in as bob.",
            "C: QUIT",
        ],
    );
    for mechanism in ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"] {
        let flags = ["--stls", "--data", &data, "--auth", mechanism];
        let (out, _) = s.client(&s.pop3, &s.smtp, &flags, READ_MAIL);
        assert_in_order(
            &out,
            &[
                "C: STLS",
                "-- TLS is on with",
                &format!("C: AUTH {mechanism}"),
                "here TLS hides the line on the wire",
                "S: +OK bob's maildrop has",
                "Logged in as bob.",
            ],
        );
        match mechanism {
            "PLAIN" => assert!(out.contains("base64 of \"\\0bob\\0builder\""), "{out}"),
            "LOGIN" => assert_in_order(&out, &["base64 of \"bob\"", "base64 of \"builder\""]),
            "CRAM-MD5" => assert!(out.contains("base64 of \"bob ") && !out.contains("\"builder\"")),
            _ => {
                assert_in_order(
                    &out,
                    &[
                        "base64 of \"n,,n=bob,r=",
                        "p= is the client's proof",
                        "v= is the server's signature",
                        "(an empty line: nothing more to say)",
                    ],
                );
                assert!(
                    !out.contains("builder\""),
                    "SCRAM never sends the password: {out}"
                );
            }
        }
    }
}

#[test]
fn console_auth_in_clear_says_anyone_can_read_the_base64() {
    let s = Serve::start("clear");
    let (out, _) = s.client(&s.pop3, &s.smtp, &["--auth", "PLAIN"], READ_MAIL);
    assert_in_order(
        &out,
        &[
            "C: AUTH PLAIN AGJvYgBidWlsZGVy",
            "base64 of \"\\0bob\\0builder\" (base64 is an encoding, not encryption: anyone who \
             captures this line can read it)",
            "PLAIN is authzid NUL user NUL password (RFC 4616 section 2)",
            "Logged in as bob.",
        ],
    );
    assert!(!out.contains("TLS is on"), "{out}");
}

#[test]
fn console_starttls_then_ehlo_again_then_auth_and_implicit_tls() {
    let s = Serve::start("smtp");
    let data = s.dir.path().to_str().unwrap().to_string();
    let send = "bob\nbuilder\n2\nbob@localhost\nalice@localhost\nTLS\nsecret body\n.\n3\n";
    let flags = ["--starttls", "--data", &data, "--auth", "SCRAM-SHA-256"];
    let (out, _) = s.client(&s.pop3, &s.smtp, &flags, send);
    assert_in_order(
        &out,
        &[
            "C: EHLO localhost",
            "S: 250-STARTTLS",
            "C: STARTTLS",
            "S: 220 ",
            "-- TLS is on with",
            "RFC 3207 section 4.2",
            "C: EHLO localhost",
            "C: AUTH SCRAM-SHA-256 ",
            "S: 235 ",
            "C: MAIL FROM:<bob@localhost>",
            "S: 250 2.0.0 Message accepted",
        ],
    );
    // The EHLO inside TLS offers no STARTTLS any more.
    let after = out.split("RFC 3207 section 4.2").nth(1).unwrap();
    let ehlo_reply = after.split("C: AUTH").next().unwrap();
    assert!(!ehlo_reply.contains("STARTTLS"), "{ehlo_reply}");
    // Implicit TLS on both connections: the mail just sent is read over POP3S.
    let read = "alice\nwonderland\n1\n3 4\n5\n3\n";
    let cert = s.cert();
    let flags = [
        "--tls",
        "--cafile",
        cert.to_str().unwrap(),
        "--auth",
        "CRAM-MD5",
    ];
    let (out, _) = s.client(&s.pop3s, &s.smtps, &flags, read);
    assert_in_order(
        &out,
        &[
            "-- TLS is on with",
            "C: AUTH CRAM-MD5",
            "Logged in as alice.",
            "secret body",
        ],
    );
    assert!(
        !out.contains("C: STLS"),
        "implicit TLS needs no STLS: {out}"
    );
}

#[test]
fn an_untrusted_certificate_is_refused_and_insecure_warns() {
    let s = Serve::start("trust");
    // Another mailwire's certificate: the handshake fails and says what to do.
    let other = TempDir::new("client-tls-other");
    mailwire::servers::TlsSettings::load_or_create(other.path(), "localhost").unwrap();
    let wrong = other.path().join("mailwire-cert.pem");
    let flags = ["--stls", "--cafile", wrong.to_str().unwrap()];
    let (out, _) = s.client(&s.pop3, &s.smtp, &flags, READ_MAIL);
    assert!(out.contains("The TLS handshake with"), "{out}");
    assert!(out.contains("--cafile FILE, or --insecure"), "{out}");
    assert!(!out.contains("Logged in"), "{out}");
    assert!(
        !out.contains("C: USER"),
        "no password after a failed handshake: {out}"
    );
    // --insecure connects, and says twice that nothing was checked.
    let (out, err) = s.client(&s.pop3, &s.smtp, &["--stls", "--insecure"], READ_MAIL);
    assert!(err.contains("warning: --insecure"), "{err}");
    assert!(
        out.contains("WARNING: the server's certificate was not checked"),
        "{out}"
    );
    assert!(out.contains("Logged in as bob."), "{out}");
    // No certificate to trust at all: refused before connecting, naming the fix.
    let missing = TempDir::new("client-tls-none");
    let out = run_with_input(
        Command::new(MAILWIRE)
            .args(["client", "--pop3", &s.pop3, "--stls", "--data"])
            .arg(missing.path()),
        READ_MAIL,
        LIMIT,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mailwire-cert.pem does not exist") && err.contains("--cafile"),
        "{err}"
    );
}

#[test]
fn the_library_client_keeps_its_tls_secrets_and_refuses_commands_before_the_handshake() {
    let s = Serve::start("keys");
    let tls = ClientTls::new(&Trust::Certificates(vec![s.cert()])).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = ClientOptions::default();
        let mut c = Pop3Connection::connect(&s.pop3, &options).await.unwrap();
        assert!(!c.is_tls());
        let ok = c.stls(&tls).await.unwrap();
        assert!(ok.positive && c.is_tls());
        // STLS again inside TLS is refused (RFC 2595 section 4), and the session goes on.
        let again = c.command(Pop3::Stls).await.unwrap();
        assert!(!again.positive, "{again:?}");
        let mut sasl = SaslClient::new(Mechanism::ScramSha256, "bob", "builder", "r4nd0m");
        let reply = c.authenticate(&mut sasl).await.unwrap();
        assert!(reply.positive, "{reply:?}");
        c.quit().await.unwrap();

        let mut c = SmtpConnection::connect_tls(&s.smtps, &options, &tls)
            .await
            .unwrap();
        assert!(c.is_tls());
        c.hello("client.example").await.unwrap();
        let mut sasl = SaslClient::new(Mechanism::Login, "bob", "wrong", "");
        let reply = c.authenticate(&mut sasl).await.unwrap();
        assert_eq!(reply.code(), 535, "{reply:?}");
        let reply = c.command(ClientCommand::StartTls).await.unwrap();
        assert_ne!(reply.code(), 220, "no STARTTLS inside TLS: {reply:?}");
        c.quit().await.unwrap();
    });
    let log = tls.keylog();
    let randoms: std::collections::HashSet<&[u8]> = log
        .entries()
        .iter()
        .map(|e| e.client_random.as_slice())
        .collect();
    assert_eq!(randoms.len(), 2, "two TLS sessions: {log:?}");
    assert!(
        log.entries()
            .iter()
            .any(|e| e.label == "CLIENT_TRAFFIC_SECRET_0")
    );
}

// ---- Dovecot ----

const DOVECOT: &str = "/usr/sbin/dovecot";

/// Dovecot's POP3 with TLS (STLS and implicit) and SASL, in a temp folder; the certificate
/// is one mailwire made, which the client is told to trust.
struct TlsDovecot {
    child: Spawned,
    dir: TempDir,
    pop3: String,
    pop3s: String,
}

impl TlsDovecot {
    fn start(tag: &str) -> TlsDovecot {
        assert!(
            Path::new(DOVECOT).exists(),
            "{DOVECOT} is missing, so the client cannot be tested against Dovecot. Install it \
             with `apt-get install dovecot-pop3d` (CI installs it)."
        );
        let tmp = TempDir::new(&format!("dovecot-tls-{tag}"));
        let dir = tmp.path();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let meta = std::fs::metadata(dir).unwrap();
        let (uid, gid) = if meta.uid() == 0 {
            (65534, 65534)
        } else {
            (meta.uid(), meta.gid())
        };
        let home = dir.join("home").join("alice");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(home.join("Maildir").join(sub)).unwrap();
        }
        std::fs::write(
            home.join("Maildir/new/1751360000.M1P1.mailwire"),
            "From: bob@example.org\r\nSubject: Over TLS\r\n\r\nhello\r\n",
        )
        .unwrap();
        for path in [dir.join("home"), dir.join("home/alice")]
            .into_iter()
            .chain(["", "/new", "/cur", "/tmp"].map(|s| home.join(format!("Maildir{s}"))))
            .chain([home.join("Maildir/new/1751360000.M1P1.mailwire")])
        {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
        let passwd = format!("alice:{{PLAIN}}secret:{uid}:{gid}::{}::\n", home.display());
        std::fs::write(dir.join("passwd"), passwd).unwrap();
        mailwire::servers::TlsSettings::load_or_create(dir, "localhost").unwrap();
        let (port, tls_port) = (free_port(), free_port());
        let d = dir.display();
        let user = if meta.uid() == 0 {
            "nobody".to_string()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "nobody".into())
        };
        let config = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             ssl = yes\n\
             ssl_cert = <{d}/mailwire-cert.pem\n\
             ssl_key = <{d}/mailwire-key.pem\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login cram-md5 scram-sha-256\n\
             auth_failure_delay = 0\n\
             default_internal_user = {user}\n\
             default_login_user = {user}\n\
             first_valid_uid = 0\n\
             protocols = pop3\n\
             listen = 127.0.0.1\n\
             mail_location = maildir:~/Maildir\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    \
             port = {port}\n  }}\n  inet_listener pop3s {{\n    address = 127.0.0.1\n    \
             port = {tls_port}\n    ssl = yes\n  }}\n}}\n"
        );
        std::fs::write(dir.join("dovecot.conf"), config).unwrap();
        let child = Spawned::new(
            Command::new(DOVECOT)
                .arg("-F")
                .arg("-c")
                .arg(dir.join("dovecot.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let server = TlsDovecot {
            child,
            dir: tmp,
            pop3: format!("127.0.0.1:{port}"),
            pop3s: format!("127.0.0.1:{tls_port}"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(&server.pop3s).is_err()
            || std::net::TcpStream::connect(&server.pop3).is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "Dovecot did not listen within 15 s: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("mailwire-cert.pem")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for TlsDovecot {
    fn drop(&mut self) {
        self.child.stop(libc::SIGTERM, Duration::from_secs(5));
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn console_stls_and_implicit_tls_against_dovecot() {
    let d = TlsDovecot::start("console");
    let cert = d.cert();
    let cafile = cert.to_str().unwrap();
    let input = "alice\nsecret\n1\n3 1\n5\n3\n";
    let run = |addr: &str, flags: &[&str]| {
        let out = run_with_input(
            Command::new(MAILWIRE)
                .args([
                    "client",
                    "--pop3",
                    addr,
                    "--timeout-secs",
                    "10",
                    "--cafile",
                    cafile,
                ])
                .args(flags),
            input,
            LIMIT,
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{flags:?}: {stdout}\n{}", d.log());
        stdout
    };
    let out = run(&d.pop3, &["--stls"]);
    assert_in_order(
        &out,
        &[
            "C: STLS",
            "S: +OK",
            "-- TLS is on with",
            "Logged in as alice.",
            "hello",
        ],
    );
    let out = run(&d.pop3s, &["--tls", "--auth", "PLAIN"]);
    assert_in_order(
        &out,
        &[
            "-- TLS is on with",
            "C: AUTH PLAIN ",
            "Logged in as alice.",
            "hello",
        ],
    );
}

#[test]
fn every_sasl_mechanism_against_dovecot_after_stls() {
    let d = TlsDovecot::start("sasl");
    let tls = ClientTls::new(&Trust::Certificates(vec![d.cert()])).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = ClientOptions {
            read_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        };
        for mechanism in Mechanism::ALL {
            let mut c = Pop3Connection::connect(&d.pop3, &options).await.unwrap();
            let ok = c.stls(&tls).await.unwrap();
            assert!(ok.positive && c.is_tls(), "{mechanism}: {ok:?}");
            let nonce = mailwire::client::tls::fresh_nonce();
            let mut sasl = SaslClient::new(mechanism, "alice", "secret", &nonce);
            let reply = c.authenticate(&mut sasl).await;
            let reply = reply.unwrap_or_else(|e| panic!("{mechanism}: {e}\n{}", d.log()));
            assert!(reply.positive, "{mechanism}: {reply:?}\n{}", d.log());
            let stat = c.command(Pop3::Stat).await.unwrap();
            assert!(stat.text.starts_with("1 "), "{mechanism}: {stat:?}");
            c.quit().await.unwrap();
        }
        // Implicit TLS, and a wrong password: Dovecot says -ERR, and SCRAM's client never
        // sees a signature.
        let mut c = Pop3Connection::connect_tls(&d.pop3s, &options, &tls)
            .await
            .unwrap();
        let mut sasl = SaslClient::new(Mechanism::ScramSha256, "alice", "wrong", "n0nce");
        match c.authenticate(&mut sasl).await {
            Ok(reply) => assert!(!reply.positive, "{reply:?}"),
            Err(e) => assert!(e.to_string().contains("AUTH"), "{e}"),
        }
    });
    assert!(tls.keylog().entries().len() >= 5 * 2, "{:?}", tls.keylog());
}

/// A false POP3 server: it plays SCRAM's messages but does not know bob's keys, so its
/// signature (v=) is wrong. Its thread returns what the client answered to that signature.
fn false_scram_server() -> (String, std::thread::JoinHandle<String>) {
    use mailwire::proto::sasl;
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = BufReader::new(tcp.try_clone().unwrap());
        let mut out = tcp;
        let mut line = String::new();
        let mut next = |reader: &mut BufReader<std::net::TcpStream>| {
            line.clear();
            let _ = reader.read_line(&mut line);
            line.trim_end().to_string()
        };
        out.write_all(b"+OK impostor ready\r\n").unwrap();
        let auth = next(&mut reader);
        let first = auth.strip_prefix("AUTH SCRAM-SHA-256 ").unwrap();
        let first = String::from_utf8(sasl::decode(first).unwrap()).unwrap();
        let nonce = first.split("r=").nth(1).unwrap().to_string();
        let server_first = format!("r={nonce}impostor,s=c2FsdA==,i=4096");
        out.write_all(format!("+ {}\r\n", sasl::encode(server_first.as_bytes())).as_bytes())
            .unwrap();
        let _client_final = next(&mut reader);
        out.write_all(format!("+ {}\r\n", sasl::encode(b"v=AAAAAAAA")).as_bytes())
            .unwrap();
        let cancel = next(&mut reader);
        out.write_all(b"-ERR [AUTH] cancelled\r\n").unwrap();
        if next(&mut reader) == "QUIT" {
            let _ = out.write_all(b"+OK bye\r\n");
        }
        cancel
    });
    (addr, server)
}

#[test]
fn a_server_that_cannot_prove_it_knows_the_password_is_caught_by_scram() {
    // RFC 5802 section 3: the client checks the server's signature.
    let (addr, server) = false_scram_server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = rt.block_on(async {
        let mut c = Pop3Connection::connect(&addr, &ClientOptions::default())
            .await
            .unwrap();
        let mut sasl = SaslClient::new(Mechanism::ScramSha256, "bob", "builder", "cl1ent");
        let error = c.authenticate(&mut sasl).await.unwrap_err();
        let _ = c.quit().await;
        error
    });
    assert_eq!(
        server.join().unwrap(),
        "*",
        "the client cancelled the exchange"
    );
    let text = error.to_string();
    assert!(
        text.contains("gave up the AUTH exchange") && text.contains("impostor"),
        "{text}"
    );
    // The console says so, shows the server's answer to "*", and does not log in.
    let (addr, server) = false_scram_server();
    let out = run_with_input(
        Command::new(MAILWIRE).args(["client", "--pop3", &addr, "--auth", "SCRAM-SHA-256"]),
        "bob\nbuilder\n1\n3\n",
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(server.join().unwrap(), "*");
    assert_in_order(
        &stdout,
        &[
            "v= is the server's signature",
            "The client gives the exchange up: the server's SCRAM signature is wrong",
            "C: *",
            "S: -ERR [AUTH] cancelled",
            "1. Manage Mail",
        ],
    );
    assert!(!stdout.contains("Logged in"), "{stdout}");
}

#[test]
fn telnet_tls_types_commands_inside_tls_like_openssl_s_client() {
    let s = Serve::start("telnet");
    let cert = s.cert();
    let out = run_with_input(
        Command::new(MAILWIRE).args([
            "telnet",
            &s.pop3s,
            "--tls",
            "--cafile",
            cert.to_str().unwrap(),
        ]),
        "USER bob\nPASS builder\nSTAT\nQUIT\n",
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_in_order(
        &stdout,
        &[
            "TLS started (TLSv1_3)",
            "+OK POP3 server ready",
            "PASS builder",
            "+OK bob's maildrop has",
            "+OK 0 0",
            "Connection closed by the server.",
        ],
    );
    // A --cafile that holds no certificate is refused before anything is sent.
    let out = run_with_input(
        Command::new(MAILWIRE).args([
            "telnet",
            &s.pop3s,
            "--tls",
            "--cafile",
            s.dir.path().join("users.txt").to_str().unwrap(),
        ]),
        "QUIT\n",
        LIMIT,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no PEM certificate"));
}

#[test]
fn plaintext_a_server_sends_after_its_stls_ok_is_dropped_not_shown() {
    use rustls::pki_types::pem::PemObject;
    use std::io::{BufReader, Read, Write};
    // A server that puts a line after its +OK to STLS, in clear, then starts TLS. The
    // client must not read that line as if TLS had protected it (the client side of
    // CVE-2011-0411).
    let dir = TempDir::new("client-tls-inject");
    let settings = mailwire::servers::TlsSettings::load_or_create(dir.path(), "localhost").unwrap();
    let cert = rustls::pki_types::CertificateDer::from_pem_file(settings.cert_path()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.path().join("mailwire-key.pem"))
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(b"+OK ready\r\n").unwrap();
        let mut line = [0u8; 6];
        tcp.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"STLS\r\n");
        tcp.write_all(b"+OK go ahead\r\n+OK injected\r\n").unwrap();
        let conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut reader = BufReader::new(&mut tls);
        let mut command = String::new();
        reader.read_line(&mut command).unwrap();
        tls.write_all(b"+OK noop inside TLS\r\n").unwrap();
        tls.flush().unwrap();
        command
    });
    let tls = ClientTls::new(&Trust::Certificates(vec![
        settings.cert_path().to_path_buf(),
    ]))
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = ClientOptions::default();
        let mut c = Pop3Connection::connect_diagnosing(&addr, &options, Duration::from_secs(2))
            .await
            .unwrap();
        let greeting_end = c.greeting().stream.end;
        assert_eq!(c.take_heard(Some(greeting_end)), b"+OK ready\r\n");
        let ok = c.stls(&tls).await.unwrap();
        assert!(ok.positive && c.is_tls());
        assert_eq!(c.discarded_before_tls(), "+OK injected\r\n".len());
        assert_eq!(c.take_heard(Some(ok.stream.end)), b"+OK go ahead\r\n");
        let noop = c.command(Pop3::Noop).await.unwrap();
        assert_eq!(
            noop.text, "noop inside TLS",
            "the injected line answered nothing"
        );
        // What the console shows of the server: the reply inside TLS, not the injected line.
        assert_eq!(
            c.take_heard(Some(noop.stream.end)),
            b"+OK noop inside TLS\r\n"
        );
    });
    assert_eq!(server.join().unwrap(), "NOOP\r\n");
}

/// The console's QUIT inside TLS ends the textbook way: each side sends its close_notify
/// and its FIN, and nobody resets the connection (a client that closed its socket with the
/// server's close_notify unread or still to come made its kernel answer with an RST).
#[test]
fn the_console_ends_a_tls_session_with_fins_and_no_reset() {
    use crate::frames::tcp_segment;
    use mailwire::capture::live::{self, CaptureMessage, LiveConfig, port_filter};
    const TCP_FIN: u8 = 0x01;
    const TCP_RST: u8 = 0x04;
    let s = Serve::start("close");
    let port: u16 = s.pop3.rsplit(':').next().unwrap().parse().unwrap();
    let data = s.dir.path().to_str().unwrap().to_string();
    // Several sessions: the server's close_notify can come with its +OK or after it.
    for round in 0..4 {
        let (tx, rx) = crossbeam_channel::unbounded();
        let config = LiveConfig {
            filter: port_filter(&[port]),
            ..LiveConfig::default()
        };
        let capture = match live::start(config, tx) {
            Ok(c) => c,
            Err(e) => {
                println!("SKIPPED the_console_ends_a_tls_session_with_fins_and_no_reset: {e}");
                return;
            }
        };
        let (out, _) = s.client(&s.pop3, &s.smtp, &["--stls", "--data", &data], READ_MAIL);
        assert_in_order(&out, &["C: STLS", "C: QUIT", "S: +OK"]);
        // The last ACK may trail the client's exit a little.
        std::thread::sleep(Duration::from_millis(300));
        capture.stop();
        let segments: Vec<(bool, u8)> = rx
            .try_iter()
            .filter_map(|m| match m {
                CaptureMessage::Packet(p) => {
                    let seg = tcp_segment(&p)?;
                    Some((seg.src_port == port, seg.flags))
                }
                _ => None,
            })
            .collect();
        assert!(segments.len() > 10, "round {round}: {segments:?}");
        assert!(
            segments.iter().all(|(_, f)| f & TCP_RST == 0),
            "round {round}, a reset: {segments:?}"
        );
        for server in [true, false] {
            assert!(
                segments
                    .iter()
                    .any(|&(s, f)| s == server && f & TCP_FIN != 0),
                "round {round}, no FIN from the {}: {segments:?}",
                if server { "server" } else { "client" }
            );
        }
    }
}
