//! Getting one connection in: connect, handshake, pin check, login; and
//! what a failed link means to the user (`From<LinkError> for
//! DisconnectReason`, the one place where that is decided).
//!
//! What happens once logged in is `session`; trying again after a
//! lost connection is `reconnect`.

use protocol::crypto::Fingerprint;
use protocol::message::{ClientMessage, Limits, RoomJoin};
use protocol::{HandshakeError, PROTOCOL_VERSION};
use tokio::net::TcpStream;

use crate::client::{ConnectOptions, DisconnectReason, FirstUse, Trust};
use crate::known_servers::{self, KnownServers, Lookup};
use crate::link::{Link, LinkError};

pub use crate::link::MAX_SERVER_FRAME;

type Outcome<T> = Result<T, DisconnectReason>;

/// A logged-in connection and what the welcome said.
pub(crate) struct Established {
    pub(crate) conn: Link,
    pub(crate) me: String,
    pub(crate) users: Vec<String>,
    pub(crate) users_total: u32,
    pub(crate) rooms: Vec<String>,
    pub(crate) limits: Limits,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) trust: Trust,
    pub(crate) resume: Option<String>,
    pub(crate) registered: bool,
    pub(crate) roles: Vec<protocol::moderation::RoleGrant>,
}

/// What a login asks for besides the name.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoginParts {
    /// The previous session's token.
    pub(crate) resume: Option<String>,
    /// The token was kept on disk by an earlier run.
    pub(crate) restored: bool,
    /// The lowest chat id still to be sent.
    pub(crate) first_id: u64,
    /// The rooms to be in (`None`: the server's defaults).
    pub(crate) rooms: Option<Vec<RoomJoin>>,
    /// Stored messages per room joined.
    pub(crate) history: Option<u32>,
    /// The account password (the options', or the one set since).
    pub(crate) account_password: Option<crate::secret::Secret>,
}

/// Connects and logs in with `parts`.
pub(crate) async fn establish(opts: &ConnectOptions, parts: LoginParts) -> Outcome<Established> {
    let stream = connect_any(opts).await?;
    let _ = stream.set_nodelay(true);
    let mut conn = Link::handshake(stream, &opts.key).await?;
    let fingerprint = conn.fingerprint();
    let trust = check_pin(opts, fingerprint)?;
    let login = ClientMessage::Login {
        version: PROTOCOL_VERSION,
        username: opts.username.clone(),
        password: opts.password.clone(),
        resume: parts.resume,
        first_id: Some(parts.first_id),
        restored: parts.restored,
        rooms: parts.rooms,
        history: parts.history,
        account_password: parts.account_password.map(|p| p.expose().to_owned()),
    };
    let welcome = conn.login(&login).await?;
    Ok(Established {
        conn,
        me: welcome.me,
        users: welcome.users,
        users_total: welcome.users_total,
        rooms: welcome.rooms,
        limits: welcome.limits,
        fingerprint,
        trust,
        resume: welcome.resume,
        registered: welcome.registered,
        roles: welcome.roles,
    })
}

/// Connects to `server`, or else to each alternate in turn (each within
/// the connect timeout).
async fn connect_any(opts: &ConnectOptions) -> Outcome<TcpStream> {
    let mut failures = Vec::new();
    for address in std::iter::once(&opts.server).chain(&opts.alternates) {
        match tokio::time::timeout(opts.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => failures.push(format!("{address}: {e}")),
            Err(_) => failures.push(format!("{address}: timed out after {:?}", opts.connect_timeout)),
        }
    }
    Err(DisconnectReason::ConnectFailed(failures.join("; ")))
}

/// What a failed link means to the user: the one place where the
/// transport's errors become a [`DisconnectReason`].
impl From<LinkError> for DisconnectReason {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Handshake(HandshakeError::WrongKey) => Self::WrongKey,
            LinkError::Handshake(HandshakeError::RetryAfter(retry_after)) => {
                Self::Busy { retry_after, detail: "too many connections from your address or to the server".into() }
            }
            LinkError::Handshake(e @ HandshakeError::VersionMismatch { .. }) => Self::VersionMismatch(e.to_string()),
            LinkError::Handshake(e) => Self::BadServer(e.to_string()),
            e @ LinkError::NotWelcome(_) => Self::BadServer(e.to_string()),
            LinkError::PeerAddress(e) => Self::ConnectFailed(e.to_string()),
            LinkError::Busy { retry_after, detail } => Self::Busy { retry_after, detail },
            LinkError::Refused { code, reason, until_ms } => Self::Refused { code, reason, until_ms },
            LinkError::Shutdown(reason) => Self::ServerShutdown(reason),
            e @ (LinkError::Stream(_) | LinkError::Closed | LinkError::Corrupt(_) | LinkError::Malformed(_)) => {
                Self::Lost(e.to_string())
            }
        }
    }
}

/// Checks the server's identity against the explicit pin or the
/// known-servers file (recording it on first use).
fn check_pin(opts: &ConnectOptions, actual: Fingerprint) -> Outcome<Trust> {
    let file = opts.known_servers.clone().or_else(known_servers::default_path).map(KnownServers::new);
    if let Some(expected) = opts.fingerprint {
        if expected != actual {
            return Err(DisconnectReason::IdentityMismatch {
                server: opts.server.clone(),
                expected,
                actual,
                known_servers: None,
            });
        }
        // An explicit pin is the user's word: record it for next time.
        if let Some(ks) = &file
            && ks.lookup(&opts.server).ok() != Some(Lookup::Pinned(actual))
        {
            let _ = ks.pin(&opts.server, actual);
        }
        return Ok(Trust::Explicit);
    }
    let Some(ks) = file else {
        return Err(DisconnectReason::Local(
            "no data directory for known servers and no --fingerprint given; cannot verify the server".into(),
        ));
    };
    match ks.lookup(&opts.server).map_err(|e| DisconnectReason::Local(e.to_string()))? {
        Lookup::Pinned(expected) if expected == actual => Ok(Trust::Known),
        Lookup::Pinned(expected) => Err(DisconnectReason::IdentityMismatch {
            server: opts.server.clone(),
            expected,
            actual,
            known_servers: Some(ks.path().to_owned()),
        }),
        Lookup::Unknown if opts.first_use == FirstUse::Ask => {
            Err(DisconnectReason::UnknownServer { server: opts.server.clone(), fingerprint: actual })
        }
        Lookup::Unknown => {
            ks.pin(&opts.server, actual).map_err(|e| DisconnectReason::Local(e.to_string()))?;
            Ok(Trust::FirstUse)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use protocol::message::RefusalCode;

    use super::*;

    #[test]
    fn link_errors_map_to_what_the_user_is_told() {
        assert_eq!(DisconnectReason::from(LinkError::Handshake(HandshakeError::WrongKey)), DisconnectReason::WrongKey);
        let busy = DisconnectReason::from(LinkError::Handshake(HandshakeError::RetryAfter(Duration::from_secs(2))));
        assert!(matches!(busy, DisconnectReason::Busy { retry_after, .. } if retry_after == Duration::from_secs(2)));
        assert_eq!(
            DisconnectReason::from(LinkError::Closed),
            DisconnectReason::Lost("the server closed the connection".into())
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let lost = DisconnectReason::from(LinkError::Stream(io.into()));
        assert!(matches!(lost, DisconnectReason::Lost(m) if m.contains("reset")));
        assert_eq!(
            DisconnectReason::from(LinkError::Refused {
                code: RefusalCode::Banned,
                reason: "banned until tomorrow".into(),
                until_ms: Some(86_400_000)
            }),
            DisconnectReason::Refused {
                code: RefusalCode::Banned,
                reason: "banned until tomorrow".into(),
                until_ms: Some(86_400_000)
            }
        );
        assert_eq!(
            DisconnectReason::from(LinkError::Shutdown("restart".into())),
            DisconnectReason::ServerShutdown("restart".into())
        );
    }

    /// An invite's addresses are tried in order: a refused one is passed
    /// over, and when all fail each is named.
    #[tokio::test]
    async fn the_next_address_is_tried_when_one_refuses() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closed_addr = closed.local_addr().expect("addr").to_string();
        drop(closed);
        let key = protocol::crypto::Psk::parse(&protocol::crypto::Psk::generate()).expect("key");
        let mut opts = ConnectOptions::new(closed_addr.clone(), "a", key);
        opts.alternates = vec![live.local_addr().expect("addr").to_string()];
        let stream = connect_any(&opts).await.expect("the alternate answers");
        assert_eq!(stream.peer_addr().expect("peer"), live.local_addr().expect("addr"));
        opts.alternates = vec![closed_addr.clone()];
        match connect_any(&opts).await {
            Err(DisconnectReason::ConnectFailed(m)) => assert_eq!(m.matches(&closed_addr).count(), 2, "{m}"),
            other => panic!("expected a connect failure, got {other:?}"),
        }
    }

    #[test]
    fn a_stream_error_keeps_the_io_error_as_its_source() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe");
        let e = LinkError::Stream(io.into());
        let source = e.source().expect("a source");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }
}
