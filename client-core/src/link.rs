//! One encrypted connection to a server, below [`crate::Client`]: connect,
//! handshake, login, then sealed messages both ways.
//!
//! [`crate::Client`] builds on this and adds what people need (pinning,
//! pacing, acks, reconnection, voice). Tools that drive many connections at
//! once, such as the load generator, use it directly: it is the same code
//! path, with nothing copied.
//!
//! Failures are a [`LinkError`]; what they mean to a user
//! ([`crate::DisconnectReason`]) is decided above this layer, in one place.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt as _};
use protocol::crypto::{Fingerprint, Opener, Psk, Sealer, SessionKeys};
use protocol::frame::{CodecError, FrameCodec};
use protocol::handshake::{ClientHandshake, ClientStep, MAX_RETRY_AFTER};
use protocol::message::{self, ClientMessage, DecodeError, Limits, RefusalCode, ServerMessage};
use protocol::{CryptoError, HandshakeError};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Largest frame accepted from the server (user lists can be long).
pub const MAX_SERVER_FRAME: usize = 16 * 1024 * 1024;

/// Why a [`Link`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Reading or writing the stream failed (the I/O error is the source),
    /// or the server sent a frame over [`MAX_SERVER_FRAME`].
    #[error(transparent)]
    Stream(#[from] CodecError),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The connected socket has no peer address (it is already gone).
    #[error("{0}")]
    PeerAddress(#[source] std::io::Error),
    /// The handshake failed (wrong key, version, signature, busy server…).
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// A sealed frame from the server failed to open.
    #[error("stream from the server is corrupt: {0}")]
    Corrupt(#[source] CryptoError),
    /// A frame opened but held no message we know.
    #[error("server sent {0}")]
    Malformed(#[source] DecodeError),
    /// The server asks us to come back later instead of logging in.
    #[error("the server asks us to wait {:.1} s: {detail}", retry_after.as_secs_f64())]
    Busy {
        /// How long (capped at [`MAX_RETRY_AFTER`]).
        retry_after: Duration,
        /// The server's words.
        detail: String,
    },
    /// The server refused the login.
    #[error("refused by the server: {reason}")]
    Refused {
        /// Machine-readable reason.
        code: RefusalCode,
        /// The server's words.
        reason: String,
        /// For a ban: when it ends, ms since the Unix epoch.
        until_ms: Option<u64>,
    },
    /// The server is shutting down.
    #[error("server shut down: {0}")]
    Shutdown(String),
    /// The server answered a login with something else than a welcome.
    #[error("expected a welcome, got {0:?}")]
    NotWelcome(Box<ServerMessage>),
}

type Outcome<T> = Result<T, LinkError>;

/// What the server's welcome said: the login succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    /// Our name as the server knows it.
    pub me: String,
    /// Everyone connected, us included (the first 1,000).
    pub users: Vec<String>,
    /// How many users are connected.
    pub users_total: u32,
    /// The rooms we are in.
    pub rooms: Vec<String>,
    /// The limits to stay inside.
    pub limits: Limits,
    /// The token that takes this name back after a lost connection.
    pub resume: Option<String>,
    /// Our name is a registered account.
    pub registered: bool,
    /// The roles our account holds.
    pub roles: Vec<protocol::moderation::RoleGrant>,
}

/// What a login's answer means: a welcome, or why not.
///
/// # Errors
///
/// [`LinkError::Busy`], [`LinkError::Refused`], [`LinkError::Shutdown`] or
/// [`LinkError::NotWelcome`] for anything but a welcome.
pub fn welcome(answer: ServerMessage) -> Outcome<Welcome> {
    match answer {
        ServerMessage::Welcome { you, users, users_total, rooms, limits, resume, registered, roles, .. } => {
            Ok(Welcome { me: you, users, users_total, rooms, limits, resume, registered, roles })
        }
        ServerMessage::Refused { code: RefusalCode::RetryLater, reason, retry_after_ms, .. } => {
            let ms = retry_after_ms.unwrap_or(1000).min(MAX_RETRY_AFTER.as_millis() as u64);
            Err(LinkError::Busy { retry_after: Duration::from_millis(ms), detail: reason })
        }
        ServerMessage::Refused { code, reason, until_ms, .. } => Err(LinkError::Refused { code, reason, until_ms }),
        ServerMessage::Shutdown { reason } => Err(LinkError::Shutdown(reason)),
        other => Err(LinkError::NotWelcome(Box::new(other))),
    }
}

/// Opens a TCP connection to `server`, from `local` if given (a source
/// address of this machine), with Nagle's algorithm off.
pub async fn dial(server: SocketAddr, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let stream = match local {
        None => TcpStream::connect(server).await?,
        Some(ip) => {
            let socket = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(server).await?
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The receiving half of a [`Link`].
pub struct LinkReader {
    pub(crate) reader: FramedRead<OwnedReadHalf, FrameCodec>,
    pub(crate) opener: Opener,
    /// The rest of a batch frame, handed out one by one.
    pending: VecDeque<ServerMessage>,
}

impl std::fmt::Debug for LinkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkReader").finish_non_exhaustive()
    }
}

impl LinkReader {
    /// The next message from the server (the messages of a batch frame
    /// come one by one). Cancel-safe: nothing is lost if the future is
    /// dropped before it completes.
    pub async fn recv(&mut self) -> Outcome<ServerMessage> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Ok(m);
            }
            let frame = read_frame(&mut self.reader).await?;
            let plain = self.opener.open(&frame).map_err(LinkError::Corrupt)?;
            message::decode_server(&plain, &mut self.pending).map_err(LinkError::Malformed)?;
        }
    }
}

/// The sending half of a [`Link`].
pub struct LinkWriter {
    pub(crate) writer: FramedWrite<OwnedWriteHalf, FrameCodec>,
    pub(crate) sealer: Sealer,
}

impl std::fmt::Debug for LinkWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWriter").finish_non_exhaustive()
    }
}

impl LinkWriter {
    /// Seals and sends one message.
    pub async fn send(&mut self, msg: &ClientMessage) -> Outcome<()> {
        let token = self.sealer.seal(&message::encode(msg));
        Ok(self.writer.send(token.as_bytes()).await?)
    }

    /// Seals and sends several messages in as few writes as the socket takes.
    pub async fn send_all(&mut self, msgs: &[ClientMessage]) -> Outcome<()> {
        for msg in msgs {
            let token = self.sealer.seal(&message::encode(msg));
            self.writer.feed(token.as_bytes()).await?;
        }
        Ok(SinkExt::<&[u8]>::flush(&mut self.writer).await?)
    }

    /// Closes the sending direction (the server sees the end of the stream).
    pub async fn close(&mut self) {
        let _ = SinkExt::<&[u8]>::close(&mut self.writer).await;
    }
}

/// Where a session's messages to the server go: a [`LinkWriter`], or in
/// unit tests a list that keeps them.
pub(crate) trait Outbound {
    /// Sends one message.
    fn send(&mut self, msg: &ClientMessage) -> impl Future<Output = Outcome<()>> + Send;
}

impl Outbound for LinkWriter {
    async fn send(&mut self, msg: &ClientMessage) -> Outcome<()> {
        LinkWriter::send(self, msg).await
    }
}

async fn read_frame(reader: &mut FramedRead<OwnedReadHalf, FrameCodec>) -> Outcome<bytes::Bytes> {
    match reader.next().await {
        Some(Ok(f)) => Ok(f),
        Some(Err(e)) => Err(e.into()),
        None => Err(LinkError::Closed),
    }
}

/// A connection past the handshake: both halves and the session keys.
#[derive(Debug)]
pub struct Link {
    pub(crate) rx: LinkReader,
    pub(crate) tx: LinkWriter,
    pub(crate) keys: SessionKeys,
    pub(crate) peer: SocketAddr,
    local: Option<SocketAddr>,
    fingerprint: Fingerprint,
}

impl Link {
    /// Runs the handshake on a fresh connection with the pre-shared `key`.
    /// The server's identity is *not* checked here: compare
    /// [`Link::fingerprint`] with what you trust before logging in.
    pub async fn handshake(stream: TcpStream, key: &Psk) -> Outcome<Self> {
        let peer = stream.peer_addr().map_err(LinkError::PeerAddress)?;
        let local = stream.local_addr().ok();
        let (r, w) = stream.into_split();
        let mut reader = FramedRead::new(r, FrameCodec::new(MAX_SERVER_FRAME));
        let mut writer = FramedWrite::new(w, FrameCodec::new(MAX_SERVER_FRAME));
        let mut hs = ClientHandshake::new(key.clone());
        let established = loop {
            let frame = read_frame(&mut reader).await?;
            match hs.receive(&frame)? {
                ClientStep::Send(reply) => writer.send(&reply[..]).await?,
                ClientStep::Established(est) => break est,
            }
        };
        let (sealer, opener) = established.keys.client_text();
        Ok(Self {
            rx: LinkReader { reader, opener, pending: VecDeque::new() },
            tx: LinkWriter { writer, sealer },
            keys: established.keys,
            peer,
            local,
            fingerprint: established.fingerprint,
        })
    }

    /// The identity the server proved in the handshake.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The session keys (voice keys derive from them).
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// This end's address.
    pub fn local(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Seals and sends one message.
    pub async fn send(&mut self, msg: &ClientMessage) -> Outcome<()> {
        self.tx.send(msg).await
    }

    /// The next message from the server.
    pub async fn recv(&mut self) -> Outcome<ServerMessage> {
        self.rx.recv().await
    }

    /// Sends `login` (a [`ClientMessage::Login`]) and returns the server's
    /// welcome.
    ///
    /// # Errors
    ///
    /// A failed link, or an answer that is not a welcome (see [`welcome`]).
    pub async fn login(&mut self, login: &ClientMessage) -> Outcome<Welcome> {
        self.send(login).await?;
        welcome(self.recv().await?)
    }

    /// Splits the link so reading and writing can go on in separate tasks.
    pub fn split(self) -> (LinkReader, LinkWriter) {
        (self.rx, self.tx)
    }
}
