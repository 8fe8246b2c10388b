//! TLS (STLS, STARTTLS, implicit TLS) and SASL (AUTH PLAIN, LOGIN, CRAM-MD5,
//! SCRAM-SHA-256) on real sockets, against programs mailwire did not write: Python's poplib
//! and smtplib (with the `scramp` SCRAM client), swaks, curl and `openssl s_client`; and a
//! raw socket for the STARTTLS command-injection bug (CVE-2011-0411).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a failure should stop the test"
)]

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mailwire::proto::{SecurityEvent, pop3::Pop3Event, smtp::SmtpEvent};
use mailwire::servers::{
    self, ClearPasswords, EventKind, EventSink, Listeners, ServerConfig, ServerEvent, SessionEnd,
    TlsSettings,
};
use mailwire::store;

use common::{TempDir, run_program};

const T: Duration = Duration::from_secs(60);

/// The servers with a self-signed certificate, on plain and implicit-TLS ports.
struct TlsRunning {
    pop3: SocketAddr,
    smtp: SocketAddr,
    pop3s: SocketAddr,
    smtps: SocketAddr,
    dir: TempDir,
    tls: TlsSettings,
    events: crossbeam_channel::Receiver<ServerEvent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsRunning {
    fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join(servers::tls::CERT_FILE)
    }

    fn maildir_file_text(&self, user: &str) -> String {
        let new = self.dir.path().join(user).join("Maildir").join("new");
        let mut out = String::new();
        for entry in std::fs::read_dir(new).unwrap() {
            out.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
        out
    }

    /// Waits (bounded) for an event that `pick` accepts.
    fn wait_for<R>(&self, mut pick: impl FnMut(&ServerEvent) -> Option<R>) -> R {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let event = self.events.recv_timeout(left).expect("event in time");
            if let Some(r) = pick(&event) {
                return r;
            }
        }
    }
}

impl Drop for TlsRunning {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_tls(clear_passwords: ClearPasswords) -> TlsRunning {
    let dir = TempDir::new("tls");
    let store = Arc::new(store::create_demo(dir.path()).unwrap());
    let tls = TlsSettings::load_or_create(dir.path(), "localhost").unwrap();
    assert!(tls.created());
    let config = ServerConfig {
        failed_login_delay: Duration::from_millis(20),
        idle_limit: Duration::from_secs(30),
        tls: Some(tls.clone()),
        clear_passwords,
        ..ServerConfig::default()
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("tls-servers".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
                let listeners = Listeners {
                    pop3: bind().await.unwrap(),
                    smtp: bind().await.unwrap(),
                    pop3s: Some(bind().await.unwrap()),
                    smtps: Some(bind().await.unwrap()),
                };
                let running =
                    servers::start_listeners(store, config, listeners, EventSink::new(tx)).unwrap();
                addr_tx
                    .send([
                        running.pop3_addr(),
                        running.smtp_addr(),
                        running.pop3s_addr().unwrap(),
                        running.smtps_addr().unwrap(),
                    ])
                    .unwrap();
                let _ = stopped.await;
                running.shutdown().await;
            });
        })
        .unwrap();
    let [pop3, smtp, pop3s, smtps] = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    TlsRunning {
        pop3,
        smtp,
        pop3s,
        smtps,
        dir,
        tls,
        events: rx,
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn python(script: &str, args: &[String]) -> String {
    let mut all = vec!["-c", script];
    all.extend(args.iter().map(String::as_str));
    run_program("python3", &all, T)
}

fn ports(s: &TlsRunning) -> Vec<String> {
    [s.pop3, s.smtp, s.pop3s, s.smtps]
        .iter()
        .map(|a| a.port().to_string())
        .collect()
}

/// Python helpers shared by the scripts: a context that trusts the test's certificate, and
/// a POP3 AUTH driver (poplib has no AUTH; `_shortcmd` and `_putcmd` speak the lines).
const PY_PRELUDE: &str = r#"
import base64, hashlib, hmac, poplib, smtplib, ssl, sys
import scramp
pop3, smtp, pop3s, smtps, cert = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context(cafile=cert)
b64 = lambda b: base64.b64encode(b).decode()

def pop3_auth(p, mech, steps, initial=None):
    """AUTH mech [initial]; steps(challenge bytes) -> response bytes, until +OK or -ERR."""
    line = "AUTH " + mech + ("" if initial is None else " " + b64(initial))
    p._putcmd(line)
    while True:
        resp = p._getline()[0].decode()
        if not resp.startswith("+ "):
            return resp
        challenge = base64.b64decode(resp[2:])
        p._putcmd(b64(steps(challenge)))

def scram_steps(user, password):
    client = scramp.ScramClient(["SCRAM-SHA-256"], user, password)
    state = {"n": 0}
    def step(challenge):
        state["n"] += 1
        if state["n"] == 1:
            client.set_server_first(challenge.decode())
            return client.get_client_final().encode()
        client.set_server_final(challenge.decode())  # raises if the server's proof is wrong
        return b""
    return client, step
"#;

fn py(s: &TlsRunning, body: &str) -> String {
    let mut args = ports(s);
    args.push(s.cert().display().to_string());
    python(&format!("{PY_PRELUDE}\n{body}"), &args)
}

#[test]
fn poplib_stls_and_pop3_ssl() {
    let s = start_tls(ClearPasswords::Loopback);
    let out = py(
        &s,
        r#"
p = poplib.POP3("127.0.0.1", pop3, timeout=20)
print("capa-before", sorted(p.capa().keys()))
print("stls", p.stls(context=ctx).decode())
print("capa-after", sorted(p.capa().keys()))
p.user("alice"); p.pass_("wonderland")
print("stat", p.stat())
print("quit", p.quit().decode())
q = poplib.POP3_SSL("127.0.0.1", pop3s, context=ctx, timeout=20)
print("ssl-welcome", q.getwelcome().decode())
print("ssl-capa", "STLS" in q.capa())
q.user("mrose"); q.pass_("tanstaaf")
print("ssl-stat", q.stat())
print("ssl-version", q.sock.version())
q.quit()
"#,
    );
    assert!(
        out.contains(
            "capa-before ['AUTH-RESP-CODE', 'IMPLEMENTATION', 'PIPELINING', 'RESP-CODES', 'SASL', 'STLS', 'TOP', 'UIDL', 'USER']"
        ),
        "{out}"
    );
    assert!(out.contains("stls +OK Begin TLS negotiation"), "{out}");
    // RFC 2595 section 4: after STLS the capabilities are asked again; STLS is gone.
    assert!(
        out.contains(
            "capa-after ['AUTH-RESP-CODE', 'IMPLEMENTATION', 'PIPELINING', 'RESP-CODES', 'SASL', 'TOP', 'UIDL', 'USER']"
        ),
        "{out}"
    );
    assert!(out.contains("stat (3, "), "{out}");
    assert!(out.contains("ssl-welcome +OK POP3 server ready"), "{out}");
    assert!(out.contains("ssl-capa False"), "{out}");
    assert!(out.contains("ssl-stat (2, 320)"), "{out}");
    assert!(out.contains("ssl-version TLSv1.3"), "{out}");
    // The server saw the handshakes.
    s.wait_for(|e| match &e.kind {
        EventKind::Pop3(Pop3Event::Security(SecurityEvent::TlsRequested { discarded: 0 })) => {
            Some(())
        }
        _ => None,
    });
    // And kept both sessions' TLS 1.3 secrets, as NSS key log lines, for decryption.
    let keys = s.tls.session_keys().lines();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        let with_label: Vec<&String> = keys
            .iter()
            .filter(|l| l.starts_with(&format!("{label} ")))
            .collect();
        assert_eq!(with_label.len(), 2, "{label} in {keys:?}");
        let fields: Vec<&str> = with_label[0].split(' ').collect();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[1].len(), 64, "client random, hex");
    }
}

#[test]
fn pop3_auth_every_mechanism_with_python() {
    let s = start_tls(ClearPasswords::Loopback);
    let out = py(
        &s,
        r#"
def session(tls):
    p = poplib.POP3("127.0.0.1", pop3, timeout=20)
    if tls:
        p.stls(context=ctx)
    return p

p = session(False)
print("plain", pop3_auth(p, "PLAIN", None, b"\0bob\0builder"))
print("plain-stat", p.stat()); p.quit()

p = session(True)
answers = iter([b"alice", b"wonderland"])
print("login", pop3_auth(p, "LOGIN", lambda c: next(answers)))
p.quit()

p = session(True)
seen = []
def cram(challenge):
    seen.append(challenge)
    return b"mrose " + hmac.new(b"tanstaaf", challenge, hashlib.md5).hexdigest().encode()
print("cram", pop3_auth(p, "CRAM-MD5", cram))
print("cram-challenge-form", seen[0].startswith(b"<") and seen[0].endswith(b"@localhost>"))
p.quit()

p = session(True)
client, step = scram_steps("student", "student")
print("scram", pop3_auth(p, "SCRAM-SHA-256", step, client.get_client_first().encode()))
p.quit()

p = session(True)
client, step = scram_steps("student", "wrong")
print("scram-wrong", pop3_auth(p, "SCRAM-SHA-256", step, client.get_client_first().encode()))
print("plain-wrong", pop3_auth(p, "PLAIN", None, b"\0bob\0nope"))
p.quit()
"#,
    );
    assert!(
        out.contains("plain +OK bob's maildrop has 0 messages (0 octets)"),
        "{out}"
    );
    assert!(out.contains("plain-stat (0, 0)"), "{out}");
    assert!(out.contains("login +OK alice's maildrop"), "{out}");
    assert!(
        out.contains("cram +OK mrose's maildrop has 2 messages"),
        "{out}"
    );
    assert!(out.contains("cram-challenge-form True"), "{out}");
    // scramp checked the server's signature (set_server_final raises otherwise).
    assert!(out.contains("scram +OK student's maildrop"), "{out}");
    assert!(
        out.contains("scram-wrong -ERR [AUTH] invalid user name or password"),
        "{out}"
    );
    assert!(
        out.contains("plain-wrong -ERR [AUTH] invalid user name or password"),
        "{out}"
    );
}

#[test]
fn smtplib_starttls_then_auth_and_the_received_header_says_esmtpsa() {
    let s = start_tls(ClearPasswords::Loopback);
    let out = py(
        &s,
        r#"
class ScramSmtp(smtplib.SMTP):
    def auth_scram(self, user, password):
        client, step = scram_steps(user, password)
        def obj(challenge=None):
            if challenge is None:
                return client.get_client_first()
            return step(challenge).decode()
        return self.auth("SCRAM-SHA-256", obj)

for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]:
    with ScramSmtp("127.0.0.1", smtp, timeout=20) as c:
        c.ehlo("pluto")
        before = sorted(c.esmtp_features)
        c.starttls(context=ctx)
        c.ehlo("pluto")
        if mech == "PLAIN":
            print("features-before", before)
            print("features-after", sorted(c.esmtp_features), c.esmtp_features["auth"].strip())
        if mech == "SCRAM-SHA-256":
            code, text = c.auth_scram("alice", "wonderland")
        else:
            c.user, c.password = "alice", "wonderland"
            code, text = c.auth(mech, getattr(c, "auth_" + mech.lower().replace("-", "_")), initial_response_ok=mech != "CRAM-MD5")
        print(mech, code, text.decode())
        if mech == "SCRAM-SHA-256":
            c.sendmail("alice@localhost", ["bob@localhost"], "Subject: tls\r\n\r\nsent with " + mech + "\r\n")
with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
    c.ehlo("pluto"); c.starttls(context=ctx); c.ehlo("pluto")
    try:
        c.login("alice", "nope")
    except smtplib.SMTPAuthenticationError as e:
        print("wrong", e.smtp_code, e.smtp_error.decode())
with smtplib.SMTP_SSL("127.0.0.1", smtps, context=ctx, timeout=20) as c:
    c.ehlo("pluto")
    print("smtps-starttls", c.has_extn("starttls"))
    c.login("bob", "builder")
    print("smtps-login ok")
"#,
    );
    assert!(
        out.contains(
            "features-before ['8bitmime', 'auth', 'enhancedstatuscodes', 'pipelining', 'size', 'starttls']"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "features-after ['8bitmime', 'auth', 'enhancedstatuscodes', 'pipelining', 'size'] PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"
        ),
        "{out}"
    );
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"] {
        assert!(
            out.contains(&format!("{mech} 235 2.7.0 Authentication successful")),
            "{out}"
        );
    }
    assert!(
        out.contains("wrong 535 5.7.8 Authentication credentials invalid"),
        "{out}"
    );
    assert!(out.contains("smtps-starttls False"), "{out}");
    assert!(out.contains("smtps-login ok"), "{out}");
    let mail = s.maildir_file_text("bob");
    assert!(mail.contains("with ESMTPSA id"), "{mail}");
    assert!(mail.contains("sent with SCRAM-SHA-256"), "{mail}");
}

#[test]
fn swaks_tls_auth_plain_login_cram_md5() {
    let s = start_tls(ClearPasswords::Loopback);
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5"] {
        let out = run_program(
            "swaks",
            &[
                "--server",
                "127.0.0.1",
                "--port",
                &s.smtp.port().to_string(),
                "--tls",
                "--auth",
                mech,
                "--auth-user",
                "alice",
                "--auth-password",
                "wonderland",
                "--from",
                "alice@localhost",
                "--to",
                "bob@localhost",
                "--helo",
                "swaks.example",
                "--timeout",
                "20",
            ],
            T,
        );
        assert!(out.contains("<-  220 2.0.0 Ready to start TLS"), "{out}");
        assert!(
            out.contains("<~  235 2.7.0 Authentication successful"),
            "{out}"
        );
        assert!(
            out.contains("<~  250 2.0.0 Message accepted for delivery"),
            "{out}"
        );
    }
    let mail = s.maildir_file_text("bob");
    assert_eq!(mail.matches("with ESMTPSA id").count(), 3, "{mail}");
}

#[test]
fn curl_pop3s_and_smtp_with_ssl_reqd() {
    let s = start_tls(ClearPasswords::Loopback);
    let msg = s.dir.path().join("msg.txt");
    std::fs::write(&msg, "Subject: curl\r\n\r\nover STARTTLS\r\n").unwrap();
    let smtp_url = format!("smtp://127.0.0.1:{}", s.smtp.port());
    run_program(
        "curl",
        &[
            "-sS",
            "-k",
            "--ssl-reqd",
            "--max-time",
            "20",
            &smtp_url,
            "-u",
            "alice:wonderland",
            "--mail-from",
            "alice@localhost",
            "--mail-rcpt",
            "bob@localhost",
            "-T",
            &msg.display().to_string(),
        ],
        T,
    );
    let pop3s_url = format!("pop3s://127.0.0.1:{}/1", s.pop3s.port());
    let out = run_program(
        "curl",
        &[
            "-sS",
            "-k",
            "--max-time",
            "20",
            "-u",
            "bob:builder",
            &pop3s_url,
        ],
        T,
    );
    assert!(out.contains("over STARTTLS"), "{out}");
    assert!(out.contains("with ESMTPSA id"), "{out}");
    // Without -k curl refuses the self-signed certificate: the session ends in the handshake.
    let refused = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-u", "bob:builder", &pop3s_url])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = s.wait_for(|e| match &e.kind {
        EventKind::SessionClosed {
            reason: SessionEnd::TlsFailed { error },
        } => Some(error.clone()),
        _ => None,
    });
    assert!(!why.is_empty());
}

/// `openssl s_client -starttls PROTO` with the lines on its stdin; its stdout.
fn s_client(proto: &str, addr: SocketAddr, input: &str) -> String {
    let mut child = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-starttls",
            proto,
            "-connect",
            &addr.to_string(),
            "-crlf",
            "-quiet",
            "-verify_quiet",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    // Lines one by one, with time for each answer (s_client sends as it reads).
    let writer = std::thread::spawn(move || {
        for line in input.lines() {
            std::thread::sleep(Duration::from_millis(300));
            let _ = writeln!(stdin, "{line}");
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    let deadline = std::time::Instant::now() + T;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "s_client hangs");
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.join().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn openssl_s_client_starttls_pop3_and_smtp() {
    let s = start_tls(ClearPasswords::Never);
    let out = s_client("pop3", s.pop3, "USER mrose\nPASS tanstaaf\nSTAT\nQUIT\n");
    assert!(
        out.contains("+OK mrose's maildrop has 2 messages (320 octets)"),
        "{out}"
    );
    assert!(out.contains("+OK 2 320"), "{out}");
    let plain = common_b64("\0alice\0wonderland");
    let out = s_client(
        "smtp",
        s.smtp,
        &format!("EHLO openssl.example\nAUTH PLAIN {plain}\nQUIT\n"),
    );
    assert!(
        out.contains("250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"),
        "{out}"
    );
    assert!(out.contains("235 2.7.0 Authentication successful"), "{out}");
}

fn common_b64(text: &str) -> String {
    mailwire::proto::sasl::encode(text.as_bytes())
}

#[test]
fn clear_passwords_never_hides_them_until_tls() {
    let s = start_tls(ClearPasswords::Never);
    let out = py(
        &s,
        r#"
p = poplib.POP3("127.0.0.1", pop3, timeout=20)
caps = p.capa()
print("capa", "USER" in caps, caps.get("SASL"))
try:
    p.user("mrose")
except poplib.error_proto as e:
    print("user", e.args[0].decode())
print("plain", pop3_auth(p, "PLAIN", None, b"\0mrose\0tanstaaf"))
p.stls(context=ctx)
print("after", "USER" in p.capa())
p.user("mrose"); print("pass", p.pass_("tanstaaf").decode())
p.quit()
with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
    c.ehlo("x")
    print("ehlo-auth", c.esmtp_features["auth"].strip())
    code, text = c.docmd("AUTH", "PLAIN " + b64(b"\0alice\0wonderland"))
    print("smtp-plain", code, text.decode())
"#,
    );
    assert!(
        out.contains("capa False ['CRAM-MD5', 'SCRAM-SHA-256']"),
        "{out}"
    );
    assert!(
        out.contains("user -ERR a password in clear is refused here: send STLS first"),
        "{out}"
    );
    assert!(
        out.contains("plain -ERR PLAIN sends the password itself"),
        "{out}"
    );
    assert!(out.contains("after True"), "{out}");
    assert!(out.contains("pass +OK mrose's maildrop"), "{out}");
    assert!(out.contains("ehlo-auth CRAM-MD5 SCRAM-SHA-256"), "{out}");
    assert!(
        out.contains(
            "smtp-plain 538 5.7.11 Encryption required for requested authentication mechanism"
        ),
        "{out}"
    );
}

/// A TLS client (rustls, trusting the test's certificate) over `tcp`.
fn tls_client(
    cert: &Path,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads from `r` until `want` has arrived (bounded by the socket's read timeout).
fn read_until(r: &mut impl Read, want: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains(want) {
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[test]
fn plaintext_sent_with_stls_or_starttls_is_discarded_cve_2011_0411() {
    let s = start_tls(ClearPasswords::Always);
    // POP3: "USER mrose" rides in the same segment as STLS. A vulnerable server keeps it and
    // answers it inside TLS, so the PASS the client sends after the handshake logs in.
    let tcp = TcpStream::connect(s.pop3).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut plain = tcp.try_clone().unwrap();
    read_until(&mut plain, "\r\n");
    plain.write_all(b"STLS\r\nUSER mrose\r\n").unwrap();
    let go = read_until(&mut plain, "\r\n");
    assert_eq!(go, "+OK Begin TLS negotiation\r\n");
    let mut tls = tls_client(&s.cert(), tcp);
    tls.write_all(b"PASS tanstaaf\r\n").unwrap();
    let answer = read_until(&mut tls, "\r\n");
    assert_eq!(answer, "-ERR give USER first\r\n");
    let discarded = s.wait_for(|e| match &e.kind {
        EventKind::Pop3(Pop3Event::Security(SecurityEvent::TlsRequested { discarded })) => {
            Some(*discarded)
        }
        _ => None,
    });
    assert_eq!(discarded, "USER mrose\r\n".len());

    // SMTP: a MAIL FROM pipelined with STARTTLS is not run inside TLS either.
    let tcp = TcpStream::connect(s.smtp).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut plain = tcp.try_clone().unwrap();
    read_until(&mut plain, "\r\n");
    plain.write_all(b"EHLO x\r\n").unwrap();
    read_until(&mut plain, "250 AUTH");
    plain
        .write_all(b"STARTTLS\r\nMAIL FROM:<evil@localhost>\r\n")
        .unwrap();
    assert_eq!(
        read_until(&mut plain, "\r\n"),
        "220 2.0.0 Ready to start TLS\r\n"
    );
    let mut tls = tls_client(&s.cert(), tcp);
    tls.write_all(b"RCPT TO:<bob@localhost>\r\n").unwrap();
    // Were MAIL kept, this would be 250; the EHLO is forgotten too (RFC 3207 section 4.2).
    assert_eq!(
        read_until(&mut tls, "\r\n"),
        "503 5.5.1 Need MAIL before RCPT\r\n"
    );
    tls.write_all(b"MAIL FROM:<a@localhost>\r\n").unwrap();
    assert_eq!(
        read_until(&mut tls, "\r\n"),
        "503 5.5.1 Send HELO/EHLO first\r\n"
    );
    let discarded = s.wait_for(|e| match &e.kind {
        EventKind::Smtp(SmtpEvent::Security(SecurityEvent::TlsRequested { discarded })) => {
            Some(*discarded)
        }
        _ => None,
    });
    assert_eq!(discarded, "MAIL FROM:<evil@localhost>\r\n".len());
}

#[test]
fn serve_says_which_certificate_file_is_wrong() {
    let dir = TempDir::new("tls-cli");
    store::create_demo(dir.path()).unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let out = std::process::Command::new(common::MAILWIRE)
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--pop3", "127.0.0.1:0", "--smtp", "127.0.0.1:0", "--cert"])
        .arg(&bad)
        .arg("--key")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.pem holds no certificate"), "{err}");
}

#[test]
fn serve_appends_the_tls_secrets_to_sslkeylogfile() {
    use std::io::BufRead;
    let dir = TempDir::new("tls-keylog");
    store::create_demo(dir.path()).unwrap();
    let keylog = dir.path().join("keys.txt");
    let mut child = common::Spawned::new(
        std::process::Command::new(common::MAILWIRE)
            .args(["serve", "--data"])
            .arg(dir.path())
            .args(["--pop3", "127.0.0.1:0", "--smtp", "127.0.0.1:0", "--quiet"])
            .env("SSLKEYLOGFILE", &keylog)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    let pop3 = ready
        .strip_prefix("POP3 on ")
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no POP3 address in {ready:?}"))
        .to_string();
    let port = pop3.rsplit(':').next().unwrap().to_string();
    let cert = dir.path().join(servers::tls::CERT_FILE);
    let out = python(
        r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.stls(context=ctx)
p.user("bob"); p.pass_("builder")
print("stat", p.stat())
p.quit()
"#,
        &[port, cert.display().to_string()],
    );
    assert!(out.contains("stat (0, 0)"), "{out}");
    child.signal(libc::SIGTERM);
    // The secrets of the TLS 1.3 session, in the NSS key log format Wireshark reads.
    let keys = std::fs::read_to_string(&keylog).unwrap();
    for label in ["CLIENT_TRAFFIC_SECRET_0 ", "SERVER_TRAFFIC_SECRET_0 "] {
        assert_eq!(keys.matches(label).count(), 1, "{keys}");
    }
}
