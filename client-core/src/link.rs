//! One encrypted connection to a server, below [`crate::Client`]: connect,
//! handshake, login, then sealed messages both ways.
//!
//! [`crate::Client`] builds on this and adds what people need (pinning,
//! pacing, acks, reconnection, voice). Tools that drive many connections at
//! once, such as the load generator, use it directly: it is the same code
//! path, with nothing copied.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use futures_util::{SinkExt, StreamExt as _};
use protocol::HandshakeError;
use protocol::crypto::{Fingerprint, Opener, Psk, Sealer, SessionKeys};
use protocol::frame::FrameCodec;
use protocol::handshake::{ClientHandshake, ClientStep, MAX_RETRY_AFTER};
use protocol::message::{self, ClientMessage, RefusalCode, ServerMessage};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::client::DisconnectReason;

/// Largest frame accepted from the server (user lists can be long).
pub const MAX_SERVER_FRAME: usize = 16 * 1024 * 1024;

type Outcome<T> = Result<T, DisconnectReason>;

fn handshake_failure(e: HandshakeError) -> DisconnectReason {
    match e {
        HandshakeError::WrongKey => DisconnectReason::WrongKey,
        HandshakeError::RetryAfter(retry_after) => DisconnectReason::Busy {
            retry_after,
            detail: "too many connections from your address or to the server".into(),
        },
        HandshakeError::VersionMismatch { .. } => DisconnectReason::VersionMismatch(e.to_string()),
        other => DisconnectReason::BadServer(other.to_string()),
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
            let plain = self
                .opener
                .open(&frame)
                .map_err(|e| DisconnectReason::Lost(format!("stream from the server is corrupt: {e}")))?;
            message::decode_server(&plain, &mut self.pending)
                .map_err(|e| DisconnectReason::Lost(format!("server sent {e}")))?;
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
        self.writer.send(token.as_bytes()).await.map_err(|e| DisconnectReason::Lost(e.to_string()))
    }

    /// Seals and sends several messages in as few writes as the socket takes.
    pub async fn send_all(&mut self, msgs: &[ClientMessage]) -> Outcome<()> {
        for msg in msgs {
            let token = self.sealer.seal(&message::encode(msg));
            self.writer.feed(token.as_bytes()).await.map_err(|e| DisconnectReason::Lost(e.to_string()))?;
        }
        SinkExt::<&[u8]>::flush(&mut self.writer).await.map_err(|e| DisconnectReason::Lost(e.to_string()))
    }

    /// Closes the sending direction (the server sees the end of the stream).
    pub async fn close(&mut self) {
        let _ = SinkExt::<&[u8]>::close(&mut self.writer).await;
    }
}

async fn read_frame(reader: &mut FramedRead<OwnedReadHalf, FrameCodec>) -> Outcome<bytes::Bytes> {
    match reader.next().await {
        Some(Ok(f)) => Ok(f),
        Some(Err(e)) => Err(DisconnectReason::Lost(e.to_string())),
        None => Err(DisconnectReason::Lost("the server closed the connection".into())),
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
        let peer = stream.peer_addr().map_err(|e| DisconnectReason::ConnectFailed(e.to_string()))?;
        let local = stream.local_addr().ok();
        let (r, w) = stream.into_split();
        let mut reader = FramedRead::new(r, FrameCodec::new(MAX_SERVER_FRAME));
        let mut writer = FramedWrite::new(w, FrameCodec::new(MAX_SERVER_FRAME));
        let mut hs = ClientHandshake::new(key.clone());
        let established = loop {
            let frame = read_frame(&mut reader).await?;
            match hs.receive(&frame).map_err(handshake_failure)? {
                ClientStep::Send(reply) => {
                    writer.send(&reply[..]).await.map_err(|e| DisconnectReason::Lost(e.to_string()))?;
                }
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
    /// answer if it is a welcome; a refusal or shutdown is the error.
    pub async fn login(&mut self, login: &ClientMessage) -> Outcome<ServerMessage> {
        self.send(login).await?;
        match self.recv().await? {
            w @ ServerMessage::Welcome { .. } => Ok(w),
            ServerMessage::Refused { code: RefusalCode::RetryLater, reason, retry_after_ms } => {
                let ms = retry_after_ms.unwrap_or(1000).min(MAX_RETRY_AFTER.as_millis() as u64);
                Err(DisconnectReason::Busy { retry_after: std::time::Duration::from_millis(ms), detail: reason })
            }
            ServerMessage::Refused { code, reason, .. } => Err(DisconnectReason::Refused { code, reason }),
            ServerMessage::Shutdown { reason } => Err(DisconnectReason::ServerShutdown(reason)),
            other => Err(DisconnectReason::BadServer(format!("expected a welcome, got {other:?}"))),
        }
    }

    /// Splits the link so reading and writing can go on in separate tasks.
    pub fn split(self) -> (LinkReader, LinkWriter) {
        (self.rx, self.tx)
    }
}
