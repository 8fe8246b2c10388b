//! The misbehaving-server table's machinery: what a row says (the fake server, what the
//! client does, what it must report) and how a row is run; the rows are in the parent.

use std::net::SocketAddr;

use mailwire::client::{ClientError, Pop3Connection, SmtpConnection};
use mailwire::proto::pop3::Command;
use mailwire::proto::smtp::client::ClientCommand;

use super::{TEST_LIMIT, Then, endless_line, options, scripted};

/// What the fake server sends.
pub enum Server {
    /// Greets, answers each step (see [`scripted`]), then closes or hangs.
    Script {
        greeting: &'static [u8],
        steps: Vec<(&'static str, Vec<u8>)>,
        then: Then,
    },
    /// Greets, then sends `filler` bytes without ever a line end (see [`endless_line`]).
    Endless { greeting: &'static [u8], filler: u8 },
}

pub fn script(greeting: &'static [u8], steps: Vec<(&'static str, Vec<u8>)>, then: Then) -> Server {
    Server::Script {
        greeting,
        steps,
        then,
    }
}

/// What the client does; the error it gets is what it reports.
pub enum Client {
    /// Connects to a POP3 server (reads the greeting).
    Pop3Greeting,
    /// Connects to a POP3 server and sends this command.
    Pop3(Command),
    /// Connects to an SMTP server (reads the greeting).
    SmtpGreeting,
    /// Connects to an SMTP server and sends `EHLO me`.
    SmtpHello,
    /// Connects to an SMTP server, sends DATA (which must be answered 503), then the
    /// message content anyway.
    SmtpContentAfterRefusedData,
}

/// Whether the client's error is the one it must report (variant, fields, sentence), given
/// the fake server's address.
pub type Check = fn(&ClientError, SocketAddr) -> bool;

/// One misbehaving server and what the client must report about it.
pub struct Row {
    pub server: Server,
    /// The client's read timeout.
    pub read_timeout_ms: u64,
    pub client: Client,
    pub report: Check,
    /// A next POP3 command on the same connection and what it must report.
    pub then: Option<(Command, Check)>,
}

/// Runs one row (bounded by [`TEST_LIMIT`]); every failure names the row.
pub async fn check_row(name: &str, row: Row) {
    let run = async {
        let (addr, _server) = match row.server {
            Server::Script {
                greeting,
                steps,
                then,
            } => {
                let (addr, task) = scripted(greeting, steps, then).await;
                (addr, Some(task))
            }
            Server::Endless { greeting, filler } => (endless_line(greeting, filler).await, None),
        };
        let target = addr.to_string();
        let opts = options(row.read_timeout_ms);
        let mut pop3 = None;
        let result = match row.client {
            Client::Pop3Greeting => Pop3Connection::connect(&target, &opts).await.map(drop),
            Client::Pop3(command) => match Pop3Connection::connect(&target, &opts).await {
                Ok(c) => pop3.insert(c).command(command).await.map(drop),
                Err(e) => panic!("row {name}: the greeting was refused: {e}"),
            },
            Client::SmtpGreeting => SmtpConnection::connect(&target, &opts).await.map(drop),
            Client::SmtpHello => match SmtpConnection::connect(&target, &opts).await {
                Ok(mut c) => c.hello("me").await.map(drop),
                Err(e) => panic!("row {name}: the greeting was refused: {e}"),
            },
            Client::SmtpContentAfterRefusedData => {
                match SmtpConnection::connect(&target, &opts).await {
                    Ok(mut c) => {
                        let data = c.command(ClientCommand::Data).await;
                        let code = data.as_ref().map(|r| r.code());
                        assert!(
                            matches!(code, Ok(503)),
                            "row {name}: DATA got {data:?}, not the server's 503"
                        );
                        c.send_content(b"x").await.map(drop)
                    }
                    Err(e) => panic!("row {name}: the greeting was refused: {e}"),
                }
            }
        };
        let Err(err) = result else {
            panic!("row {name}: the client reported no error");
        };
        assert!(
            (row.report)(&err, addr),
            "row {name}: the client reported {err:?}: {err}"
        );
        if let Some((command, report)) = row.then {
            let Some(c) = pop3.as_mut() else {
                panic!("row {name}: `then` needs a POP3 connection");
            };
            match c.command(command).await {
                Ok(reply) => panic!("row {name}: the next command got a reply: {reply:?}"),
                Err(err) => assert!(
                    report(&err, addr),
                    "row {name}: the next command reported {err:?}: {err}"
                ),
            }
        }
    };
    tokio::time::timeout(TEST_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("row {name}: took longer than {TEST_LIMIT:?}"));
}

/// The table: each `name => Row` becomes a test of that name.
macro_rules! misbehaving_servers {
    ($($name:ident => $row:expr,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                $crate::client_misbehaving::table::check_row(stringify!($name), $row).await;
            }
        )*
    };
}
pub(crate) use misbehaving_servers;
