//! The client side of the same four mechanisms, sans-IO: what a mail client answers to each
//! challenge of POP3 AUTH (RFC 5034) or SMTP AUTH (RFC 4954). The SCRAM client nonce is a
//! value passed in (this module draws no random numbers), and the client checks the
//! server's SCRAM signature: a server that does not know the password is caught.
//!
//! The protocol framing (`AUTH` lines, base64, `+ ` and `334 `) is the caller's; this module
//! takes and gives raw bytes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Mechanism, ScramKeys, constant_time_eq, cram_md5_digest, hmac_sha256};

/// The highest SCRAM iteration count a client accepts (a hostile server could ask for
/// billions to keep the client busy).
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;

/// One client-side authentication exchange.
#[derive(Debug, Clone)]
pub struct SaslClient {
    mechanism: Mechanism,
    user: String,
    password: String,
    client_nonce: String,
    stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Nothing sent yet.
    Start,
    /// PLAIN's message or SCRAM's client-first went out (initially or after an empty
    /// challenge).
    FirstSent,
    /// LOGIN: the user name went out.
    LoginUserSent,
    /// SCRAM: the client-final went out; the server's signature expected.
    ScramFinalSent { server_signature: Vec<u8> },
    /// Nothing more to say.
    Done,
}

/// Why the client cannot go on with the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslClientError {
    /// A challenge came when the mechanism has nothing more to send.
    UnexpectedChallenge { mechanism: Mechanism },
    /// SCRAM's server-first message is not what RFC 5802 section 7 says; what is wrong.
    BadServerFirst(&'static str),
    /// The server's SCRAM nonce does not begin with the client's (RFC 5802 section 5.1).
    NonceMismatch,
    /// The server's SCRAM signature is wrong: it does not know the password.
    ServerNotProved,
    /// The server ended SCRAM with an error (`e=`), e.g. `invalid-proof`.
    ServerError(String),
}

impl fmt::Display for SaslClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslClientError::UnexpectedChallenge { mechanism } => write!(
                f,
                "the server sent another challenge, but {mechanism} has nothing more to send"
            ),
            SaslClientError::BadServerFirst(what) => write!(
                f,
                "the server's first SCRAM message is malformed: {what} (RFC 5802 section 7)"
            ),
            SaslClientError::NonceMismatch => f.write_str(
                "the server's SCRAM nonce does not begin with ours (RFC 5802 section 5.1)",
            ),
            SaslClientError::ServerNotProved => f.write_str(
                "the server's SCRAM signature is wrong: it does not know the password, so it \
                 may be an impostor",
            ),
            SaslClientError::ServerError(e) => write!(f, "the server ended SCRAM with \"{e}\""),
        }
    }
}

impl std::error::Error for SaslClientError {}

impl SaslClient {
    /// An exchange for `user` with `password`; `client_nonce` (printable, no `,`) is used by
    /// SCRAM only and must be fresh and unpredictable for each exchange.
    pub fn new(mechanism: Mechanism, user: &str, password: &str, client_nonce: &str) -> Self {
        Self {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            client_nonce: client_nonce.to_string(),
            stage: Stage::Start,
        }
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The initial response to send with the AUTH command, for the mechanisms whose client
    /// speaks first (PLAIN, SCRAM-SHA-256); `None` for LOGIN and CRAM-MD5, and once anything
    /// was sent.
    pub fn initial_response(&mut self) -> Option<Vec<u8>> {
        if self.stage != Stage::Start {
            return None;
        }
        let first = match self.mechanism {
            Mechanism::Plain => format!("\0{}\0{}", self.user, self.password),
            Mechanism::ScramSha256 => format!("n,,{}", self.client_first_bare()),
            Mechanism::Login | Mechanism::CramMd5 => return None,
        };
        self.stage = Stage::FirstSent;
        Some(first.into_bytes())
    }

    /// The response to a server challenge (decoded from base64).
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslClientError> {
        let unexpected = SaslClientError::UnexpectedChallenge {
            mechanism: self.mechanism,
        };
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        match (self.mechanism, stage) {
            // No initial response was sent: the server asked with an empty challenge.
            (Mechanism::Plain | Mechanism::ScramSha256, Stage::Start) => {
                self.stage = Stage::Start;
                self.initial_response().ok_or(unexpected)
            }
            (Mechanism::Login, Stage::Start) => {
                self.stage = Stage::LoginUserSent;
                Ok(self.user.clone().into_bytes())
            }
            (Mechanism::Login, Stage::LoginUserSent) => Ok(self.password.clone().into_bytes()),
            (Mechanism::CramMd5, Stage::Start) => {
                let challenge = String::from_utf8_lossy(challenge);
                let digest = cram_md5_digest(&challenge, &self.password);
                Ok(format!("{} {digest}", self.user).into_bytes())
            }
            (Mechanism::ScramSha256, Stage::FirstSent) => {
                let (response, server_signature) = self.scram_final(challenge)?;
                self.stage = Stage::ScramFinalSent { server_signature };
                Ok(response)
            }
            (Mechanism::ScramSha256, Stage::ScramFinalSent { server_signature }) => {
                let text = String::from_utf8_lossy(challenge);
                if let Some(error) = text.strip_prefix("e=") {
                    return Err(SaslClientError::ServerError(error.to_string()));
                }
                let given = text
                    .strip_prefix("v=")
                    .and_then(|v| STANDARD.decode(v.trim_end()).ok())
                    .ok_or(SaslClientError::ServerNotProved)?;
                if constant_time_eq(&given, &server_signature) {
                    // RFC 4422: the empty response that ends the exchange.
                    Ok(Vec::new())
                } else {
                    Err(SaslClientError::ServerNotProved)
                }
            }
            _ => Err(unexpected),
        }
    }

    /// `n=user,r=nonce`, the user name escaped (RFC 5802 section 5.1).
    fn client_first_bare(&self) -> String {
        let user = self.user.replace('=', "=3D").replace(',', "=2C");
        format!("n={user},r={}", self.client_nonce)
    }

    /// The client-final message for `server_first`, and the server signature to expect.
    fn scram_final(&self, server_first: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SaslClientError> {
        let bad = SaslClientError::BadServerFirst;
        let text = std::str::from_utf8(server_first).map_err(|_| bad("not UTF-8"))?;
        let mut attrs = text.split(',');
        let nonce = attrs
            .next()
            .and_then(|r| r.strip_prefix("r="))
            .ok_or(bad("no nonce (r=)"))?;
        let salt = attrs
            .next()
            .and_then(|s| s.strip_prefix("s="))
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or(bad("no base64 salt (s=)"))?;
        let iterations: u32 = attrs
            .next()
            .and_then(|i| i.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .filter(|i| *i > 0)
            .ok_or(bad("no iteration count (i=)"))?;
        if iterations > MAX_SCRAM_ITERATIONS {
            return Err(bad("the iteration count is absurdly high"));
        }
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(SaslClientError::NonceMismatch);
        }
        // "biws" is base64 of the GS2 header "n,,": no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare());
        let keys = ScramKeys::derive(&self.password, &salt, iterations);
        let signature = hmac_sha256(&keys.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = keys
            .client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_signature = hmac_sha256(&keys.server_key, auth_message.as_bytes());
        let response = format!("{without_proof},p={}", STANDARD.encode(proof));
        Ok((response.into_bytes(), server_signature))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SaslExchange, SaslParams, SaslStep};
    use super::*;

    #[test]
    fn scram_client_matches_rfc_7677_example() {
        let mut c = SaslClient::new(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(
            c.initial_response().unwrap(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let final_msg = c
            .respond(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(final_msg).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let mut wrong = c.clone();
        assert_eq!(
            c.respond(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .unwrap(),
            b""
        );
        assert_eq!(
            wrong.respond(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(SaslClientError::ServerNotProved)
        );
    }

    #[test]
    fn scram_client_refuses_a_foreign_nonce_and_absurd_counts() {
        let mut c = SaslClient::new(Mechanism::ScramSha256, "u", "p", "abc");
        c.initial_response();
        assert_eq!(
            c.clone().respond(b"r=xyz123,s=AAAA,i=4096"),
            Err(SaslClientError::NonceMismatch)
        );
        assert!(matches!(
            c.clone().respond(b"r=abc123,s=AAAA,i=4000000000"),
            Err(SaslClientError::BadServerFirst(_))
        ));
        assert_eq!(
            {
                let mut d = c.clone();
                d.respond(b"r=abc123,s=AAAA,i=1").unwrap();
                d.respond(b"e=invalid-proof")
            },
            Err(SaslClientError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn cram_md5_client_matches_rfc_2195_example() {
        let mut c = SaslClient::new(Mechanism::CramMd5, "tim", "tanstaaftanstaaf", "");
        assert_eq!(c.initial_response(), None);
        assert_eq!(
            c.respond(b"<1896.697170952@postoffice.reston.mci.net>")
                .unwrap(),
            b"tim b913a602c7eda7a495b4e6e7334d3890"
        );
        assert!(c.respond(b"more").is_err());
    }

    /// Runs a client against the server side and checks the credential with `password`.
    fn round_trip(mechanism: Mechanism, user: &str, initial: bool, password: &str) -> bool {
        let params = SaslParams::fixed();
        let mut client = SaslClient::new(mechanism, user, "s3cret,=x", "clientnonce");
        let first = if initial {
            client.initial_response()
        } else {
            None
        };
        let (mut server, mut step) = SaslExchange::start(mechanism, first, &params, "host");
        loop {
            match step {
                SaslStep::Challenge(c) => {
                    let response = client.respond(&c).unwrap();
                    step = server.respond(&response, &params);
                }
                SaslStep::Check {
                    user: who,
                    credential,
                } => {
                    assert_eq!(who, user);
                    let Some(verified) = credential.verify(password) else {
                        return false;
                    };
                    if let Some(server_final) = verified.server_final {
                        assert_eq!(client.respond(&server_final).unwrap(), b"");
                    }
                    return true;
                }
                SaslStep::Failed(e) => panic!("{mechanism}: {e}"),
            }
        }
    }

    #[test]
    fn every_mechanism_round_trips_with_the_server_side() {
        for mechanism in Mechanism::ALL {
            for initial in [true, false] {
                assert!(
                    round_trip(mechanism, "a,b=c", initial, "s3cret,=x"),
                    "{mechanism}"
                );
                assert!(
                    !round_trip(mechanism, "a,b=c", initial, "other"),
                    "{mechanism}"
                );
            }
        }
    }
}
