//! Who is on the sequence diagram: one lifeline per server (its protocol and address:port;
//! POP3 and SMTP apart, two servers of one protocol apart) and one per client connection
//! (its address:port), the same for the window's diagram and the SVG export.
//!
//! Order: servers in the order they first appear, each preceded by its clients in the order
//! they first appear, so a client sits just left of the server it talks to. Steps come
//! first (in order), then connections no step used (their segments still have lanes in the
//! window's TCP view). A step whose connection was not captured (a run in memory) gets a
//! client lifeline named after its session and a server lifeline named after its protocol.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::proto::Protocol;
use crate::timeline::{Ends, Timeline};

/// Which end of a connection a lifeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

/// One lifeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifeline {
    pub side: Side,
    /// The protocol spoken, when known.
    pub protocol: Option<Protocol>,
    /// Its address and port, when captured.
    pub addr: Option<SocketAddr>,
    /// The client session of the scenario that used it first (clients only).
    pub session: Option<String>,
}

impl Lifeline {
    /// The first line of its label: `client "main"`, `SMTP client`, `POP3 server`.
    pub fn title(&self) -> String {
        let protocol = self.protocol.map_or("TCP", Protocol::name);
        match (self.side, &self.session) {
            (Side::Client, Some(session)) => format!("client \"{session}\""),
            (Side::Client, None) => format!("{protocol} client"),
            (Side::Server, _) if self.protocol.is_none() && self.addr.is_none() => {
                "mail server".to_string()
            }
            (Side::Server, _) => format!("{protocol} server"),
        }
    }

    /// The second line: its address:port, or empty when not captured.
    pub fn address(&self) -> String {
        self.addr.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// What identifies a lifeline while they are collected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    ClientAt(Ends),
    ClientSession(String),
    Server(Option<Protocol>, Option<SocketAddr>),
}

/// A server lifeline with its clients, while they are put in order.
type ServerGroup = (Key, Lifeline, Vec<(Key, Lifeline)>);

/// The lifelines of a timeline, and which two each step and each connection use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifelines {
    /// In diagram order (left to right).
    pub lines: Vec<Lifeline>,
    /// Per step: its client and server lifelines (indices into `lines`).
    pub by_step: Vec<(usize, usize)>,
    /// Per analyzer connection: its client and server lifelines.
    pub by_conn: Vec<(usize, usize)>,
    /// Per step: its analyzer connection, when captured (what `Timeline::connection_of`
    /// finds for its client, looked up once for all steps).
    pub conn_of_step: Vec<Option<usize>>,
}

impl Lifelines {
    /// The lifelines of `timeline`.
    pub fn of(timeline: &Timeline) -> Lifelines {
        let connections = timeline.analyzer.connections();
        // The connection of each pair of ends (the last one, as `Timeline::connection_of`).
        let conn_of: HashMap<Ends, usize> =
            connections.iter().map(|c| (c.ends(), c.index)).collect();
        // Every pair, in order of appearance: steps first, then connections no step used.
        let mut found: Vec<(Key, Lifeline, Key, Lifeline)> = Vec::new();
        let conn_pair = |c: &crate::decode::analyzer::Connection, session: Option<&str>| {
            let protocol = c.mail_protocol();
            (
                Key::ClientAt(c.ends()),
                Lifeline {
                    side: Side::Client,
                    protocol,
                    addr: Some(c.client),
                    session: session.map(str::to_string),
                },
                Key::Server(protocol, Some(c.server)),
                Lifeline {
                    side: Side::Server,
                    protocol,
                    addr: Some(c.server),
                    session: None,
                },
            )
        };
        let mut step_pairs = Vec::with_capacity(timeline.steps.len());
        let mut conn_of_step = Vec::with_capacity(timeline.steps.len());
        let mut conn_used = vec![false; connections.len()];
        for record in &timeline.steps {
            let session = record.outcome.session.as_str();
            let conn = record
                .ends
                .and_then(|e| conn_of.get(&e))
                .and_then(|&c| connections.get(c));
            conn_of_step.push(conn.map(|c| c.index));
            let pair = match conn {
                Some(c) => {
                    if let Some(used) = conn_used.get_mut(c.index) {
                        *used = true;
                    }
                    conn_pair(c, Some(session))
                }
                None => {
                    let protocol = record.outcome.protocol;
                    let client = match record.ends {
                        Some(e) => Key::ClientAt(e),
                        None => Key::ClientSession(session.to_string()),
                    };
                    (
                        client,
                        Lifeline {
                            side: Side::Client,
                            protocol,
                            addr: record.ends.map(|e| e.client),
                            session: Some(session.to_string()),
                        },
                        Key::Server(protocol, None),
                        Lifeline {
                            side: Side::Server,
                            protocol,
                            addr: None,
                            session: None,
                        },
                    )
                }
            };
            step_pairs.push((pair.0.clone(), pair.2.clone()));
            found.push(pair);
        }
        let mut conn_pairs = Vec::with_capacity(connections.len());
        for c in connections {
            let pair = conn_pair(c, None);
            conn_pairs.push((pair.0.clone(), pair.2.clone()));
            if !conn_used.get(c.index).copied().unwrap_or(false) {
                found.push(pair);
            }
        }
        // Servers in order of appearance, each with its clients (in order) before it.
        let mut servers: Vec<ServerGroup> = Vec::new();
        let mut server_at: HashMap<Key, usize> = HashMap::new();
        let mut client_seen: HashMap<Key, ()> = HashMap::new();
        for (ck, cl, sk, sl) in found {
            let s = *server_at.entry(sk.clone()).or_insert_with(|| {
                servers.push((sk, sl, Vec::new()));
                servers.len() - 1
            });
            if client_seen.insert(ck.clone(), ()).is_none()
                && let Some((_, _, clients)) = servers.get_mut(s)
            {
                clients.push((ck, cl));
            }
        }
        let mut lines = Vec::new();
        let mut index: HashMap<Key, usize> = HashMap::new();
        for (sk, sl, clients) in servers {
            for (ck, cl) in clients {
                index.insert(ck, lines.len());
                lines.push(cl);
            }
            index.insert(sk, lines.len());
            lines.push(sl);
        }
        let lane = |(c, s): (Key, Key)| {
            (
                index.get(&c).copied().unwrap_or(0),
                index.get(&s).copied().unwrap_or(0),
            )
        };
        Lifelines {
            lines,
            by_step: step_pairs.into_iter().map(lane).collect(),
            by_conn: conn_pairs.into_iter().map(lane).collect(),
            conn_of_step,
        }
    }

    /// The lifelines any step uses, in order (the SVG's columns: none empty).
    pub fn used_by_steps(&self) -> Vec<usize> {
        let mut used = vec![false; self.lines.len()];
        for &(c, s) in &self.by_step {
            for l in [c, s] {
                if let Some(u) = used.get_mut(l) {
                    *u = true;
                }
            }
        }
        (0..self.lines.len())
            .filter(|&l| used.get(l).copied().unwrap_or(false))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_say_the_side_and_protocol() {
        let mut l = Lifeline {
            side: Side::Server,
            protocol: Some(Protocol::Pop3),
            addr: Some("127.0.0.1:110".parse().unwrap()),
            session: None,
        };
        assert_eq!(l.title(), "POP3 server");
        assert_eq!(l.address(), "127.0.0.1:110");
        l.side = Side::Client;
        assert_eq!(l.title(), "POP3 client");
        l.session = Some("main".into());
        assert_eq!(l.title(), "client \"main\"");
        let unknown = Lifeline {
            side: Side::Server,
            protocol: None,
            addr: None,
            session: None,
        };
        assert_eq!(unknown.title(), "mail server");
        assert_eq!(unknown.address(), "");
    }

    #[test]
    fn an_empty_timeline_has_no_lifelines() {
        let l = Lifelines::of(&Timeline::new("t"));
        assert!(l.lines.is_empty() && l.by_step.is_empty() && l.by_conn.is_empty());
        assert!(l.conn_of_step.is_empty());
    }
}
