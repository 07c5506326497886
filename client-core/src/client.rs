//! The command handle and the events a front end sees.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use protocol::crypto::{Fingerprint, Psk};
use protocol::message::{DisconnectCause, Limits, MessageId, NackReason, RefusalCode};
use tokio::sync::mpsc;

use crate::error::ClientError;

/// How to reach and join a server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `HOST:PORT` as the user typed it (DNS name, IPv4, or `[IPv6]:PORT`);
    /// also the key under which the server's identity is pinned.
    pub server: String,
    /// Username to log in with.
    pub username: String,
    /// Server password, if it has one.
    pub password: Option<String>,
    /// The server's pre-shared key.
    pub key: Psk,
    /// The file `key` came from, if any: read again before each
    /// reconnection, so a key rotated on the server (`gen-key` + SIGHUP)
    /// and handed out in the same file is picked up.
    pub key_file: Option<PathBuf>,
    /// An explicit identity pin; overrides (and updates) the known-servers file.
    pub fingerprint: Option<Fingerprint>,
    /// The known-servers file; `None` uses the default under the data dir.
    pub known_servers: Option<PathBuf>,
    /// Directory where the resume token for this server and name is kept
    /// between runs (`None`: [`crate::resume_store::default_dir`]).
    pub state_dir: Option<PathBuf>,
    /// How long connecting, the handshake and login may take.
    pub connect_timeout: Duration,
    /// Most chat messages waiting to be sent or acknowledged before
    /// [`Client::send`] waits.
    pub queue_limit: usize,
    /// What to do with a server seen for the first time.
    pub first_use: FirstUse,
    /// Reconnecting after a lost connection or a server shutdown.
    pub reconnect: Reconnect,
}

/// When to reconnect after a lost connection or a server shutdown (never
/// after a refusal, a kick or a changed identity, and never before the
/// first login succeeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// Tries before giving up (0: never reconnect).
    pub attempts: u32,
    /// Longest wait between tries (they start at about 1 s and double).
    pub max_delay: Duration,
}

impl Reconnect {
    /// Never reconnect.
    pub const NEVER: Self = Self { attempts: 0, max_delay: Duration::from_secs(30) };
    /// Keep trying.
    pub const FOREVER: Self = Self { attempts: u32::MAX, max_delay: Duration::from_secs(30) };

    /// The wait before try `n` (1-based): exponential from 1 s up to
    /// `max_delay`, each drawn between half and all of that (jitter, so
    /// clients of a restarted server do not all come back at once).
    pub fn delay(&self, n: u32, random: u16) -> Duration {
        let cap = Duration::from_secs(1u64.checked_shl(n.saturating_sub(1).min(32)).unwrap_or(u64::MAX))
            .min(self.max_delay)
            .max(Duration::from_millis(100));
        let half = cap / 2;
        half + half.mul_f64(f64::from(random) / f64::from(u16::MAX))
    }
}

impl Default for Reconnect {
    /// Ten tries, about three minutes in all.
    fn default() -> Self {
        Self { attempts: 10, max_delay: Duration::from_secs(30) }
    }
}

/// What to do when a server's identity is neither pinned nor given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstUse {
    /// Trust it and record it (trust on first use; what a script wants).
    #[default]
    Trust,
    /// Stop with [`DisconnectReason::UnknownServer`] before logging in, so a
    /// front end can show the fingerprint and ask; connecting again with
    /// [`ConnectOptions::fingerprint`] set records the user's answer.
    Ask,
}

impl ConnectOptions {
    /// Options with the defaults for everything but the essentials.
    pub fn new(server: impl Into<String>, username: impl Into<String>, key: Psk) -> Self {
        Self {
            server: server.into(),
            username: username.into(),
            password: None,
            key,
            key_file: None,
            fingerprint: None,
            known_servers: None,
            state_dir: None,
            connect_timeout: Duration::from_secs(15),
            queue_limit: 256,
            first_use: FirstUse::Trust,
            reconnect: Reconnect::default(),
        }
    }
}

/// How the server's identity was trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// It matched an explicit `--fingerprint`.
    Explicit,
    /// It matched the known-servers file.
    Known,
    /// First contact: accepted and recorded (trust on first use).
    FirstUse,
}

/// Why a connection ended (or never started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// We quit, after every message was acknowledged.
    Quit,
    /// The server refused the login.
    Refused {
        /// Machine-readable reason.
        code: RefusalCode,
        /// The server's words, to show verbatim.
        reason: String,
    },
    /// The server holds our key but asks us to come back later: too many
    /// handshakes or wrong passwords from our address, or too many logins
    /// in progress. The client waits and tries again by itself.
    Busy {
        /// How long the server asked us to wait.
        retry_after: Duration,
        /// Why, in the server's (or our) words.
        detail: String,
    },
    /// The server refused our pre-shared key.
    WrongKey,
    /// The server speaks another protocol version.
    VersionMismatch(String),
    /// The server's identity is not the one pinned for this address.
    IdentityMismatch {
        /// The address as typed.
        server: String,
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// What the server presented.
        actual: Fingerprint,
        /// Where the pin came from (`None`: the explicit `--fingerprint`).
        known_servers: Option<PathBuf>,
    },
    /// First contact with this server and [`FirstUse::Ask`]: nothing was
    /// sent past the handshake; ask the user whether to trust `fingerprint`.
    UnknownServer {
        /// The address as typed.
        server: String,
        /// What the server presented.
        fingerprint: Fingerprint,
    },
    /// The server failed the handshake in a way only an impostor or a broken
    /// server would (bad signature, malformed frames).
    BadServer(String),
    /// Could not connect at all.
    ConnectFailed(String),
    /// A local problem (the known-servers file cannot be read or written).
    Local(String),
    /// The connection dropped.
    Lost(String),
    /// The server shut down (not a kick: reconnecting is fine).
    ServerShutdown(String),
    /// The server ended the session for cause; final.
    Kicked {
        /// Why.
        cause: DisconnectCause,
        /// The server's words.
        detail: String,
    },
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Quit => write!(f, "disconnected"),
            Self::Refused { reason, .. } => write!(f, "refused by the server: {reason}"),
            Self::Busy { retry_after, detail } => {
                write!(f, "the server asks us to wait {:.1} s: {detail}", retry_after.as_secs_f64())
            }
            Self::WrongKey => write!(f, "refused by the server: wrong server key"),
            Self::VersionMismatch(m) => write!(f, "refused: {m}"),
            Self::IdentityMismatch { server, expected, actual, known_servers } => {
                write!(f, "SERVER IDENTITY CHANGED for {server}: expected {expected}, got {actual}. ")?;
                write!(f, "Someone may be impersonating the server, or its identity key was replaced. ")?;
                match known_servers {
                    Some(p) => write!(
                        f,
                        "If the admin confirms the new fingerprint, connect once with --fingerprint {actual} (or remove the {server} line from {})",
                        p.display()
                    ),
                    None => write!(f, "If the admin confirms the new fingerprint, pass --fingerprint {actual}"),
                }
            }
            Self::UnknownServer { server, fingerprint } => {
                write!(f, "first contact with {server}: its identity is {fingerprint}; not trusted yet")
            }
            Self::BadServer(m) => write!(f, "the server failed to prove its identity: {m}"),
            Self::ConnectFailed(m) => write!(f, "cannot connect: {m}"),
            Self::Local(m) => write!(f, "{m}"),
            Self::Lost(m) => write!(f, "connection lost: {m}"),
            Self::ServerShutdown(m) => write!(f, "server shut down: {m}"),
            Self::Kicked { detail, .. } => write!(f, "disconnected by the server: {detail}"),
        }
    }
}

/// What happens, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Logged in.
    Connected {
        /// Our name.
        me: String,
        /// Everyone here, us included.
        users: Vec<String>,
        /// The server's identity.
        fingerprint: Fingerprint,
        /// How it was trusted.
        trust: Trust,
        /// The server's limits.
        limits: Limits,
    },
    /// A chat message from someone else.
    Message {
        /// Sender.
        from: String,
        /// Text (not sanitised: see [`crate::display`]).
        text: String,
        /// Server receive time.
        time: SystemTime,
    },
    /// Someone joined.
    Joined(String),
    /// Someone left.
    Left(String),
    /// The user list (answer to [`Client::who`]).
    Users(Vec<String>),
    /// Something to tell the user.
    Notice(String),
    /// The server took our message and handed it to everyone.
    Acked(MessageId),
    /// The server refused our message (not for the rate: those are resent).
    Rejected {
        /// Which message.
        id: MessageId,
        /// Why.
        reason: NackReason,
        /// The server's words.
        detail: String,
    },
    /// We are in voice.
    VoiceJoined,
    /// Who is in voice (names, sorted).
    VoiceUsers(Vec<String>),
    /// A speaker started or stopped talking.
    Talking {
        /// Who.
        user: String,
        /// Started (`true`) or stopped.
        talking: bool,
    },
    /// Voice counters (every 2 s while in voice).
    VoiceStats(crate::voice::VoiceStats),
    /// The WAV file given as input has been played to the end.
    VoiceInputEnded,
    /// We left voice (final counters).
    VoiceLeft(crate::voice::VoiceStats),
    /// Voice could not start or failed (devices, server).
    VoiceError(String),
    /// A default device could not be opened (no sound card), so voice goes
    /// on without it: the text says which and why, in one line.
    VoiceFallback(String),
    /// The connection dropped; trying again after `delay`. Chat messages
    /// not yet acknowledged, and those sent meanwhile, are resent with the
    /// same ids once [`Event::Connected`] comes again (the server delivers
    /// each once); voice is rejoined.
    Reconnecting {
        /// Why the connection ended.
        reason: DisconnectReason,
        /// Which try comes next (1-based).
        attempt: u32,
        /// The wait before it.
        delay: Duration,
    },
    /// The end. `unacked` counts our messages never acknowledged.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// Messages sent or queued but not acknowledged.
        unacked: usize,
    },
}

#[derive(Debug)]
pub(crate) enum Command {
    Send { id: MessageId, text: String },
    Who,
    Quit,
    JoinVoice(Box<crate::voice::VoiceOptions>),
    LeaveVoice,
    SetGain { user: String, gain: f32 },
    ReconnectNow,
}

/// Commands in. Cheap to clone; every clone drives the same connection.
#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    next_id: Arc<AtomicU64>,
    max_message: Arc<AtomicU64>,
}

/// Events out, in order. Also a [`futures_util::Stream`].
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` after [`Event::Disconnected`] has been read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl futures_util::Stream for Events {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

impl Client {
    /// Starts connecting; must be called inside a Tokio runtime. Progress
    /// and the outcome arrive as events.
    pub fn connect(opts: ConnectOptions) -> (Client, Events) {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let max_message = Arc::new(AtomicU64::new(u64::MAX));
        let client = Client { tx: cmd_tx, next_id: Arc::new(AtomicU64::new(1)), max_message: max_message.clone() };
        tokio::spawn(crate::reconnect::run(opts, cmd_rx, ev_tx, max_message));
        (client, Events { rx: ev_rx })
    }

    /// Queues a chat message; returns its id. Waits while too many messages
    /// are unacknowledged; paces itself to the server's rate (never drops).
    ///
    /// # Errors
    ///
    /// [`ClientError::TooLarge`] over the server's announced size limit
    /// (nothing is sent), [`ClientError::Invalid`] for empty or control
    /// characters, [`ClientError::NotConnected`] after the end.
    pub async fn send(&self, text: impl Into<String>) -> Result<MessageId, ClientError> {
        let text = text.into();
        let max = self.max_message.load(Ordering::Relaxed);
        if text.len() as u64 > max {
            return Err(ClientError::TooLarge { len: text.len(), max: max as usize });
        }
        if let Err(e) = protocol::message::validate_text(&text, usize::MAX) {
            return Err(ClientError::Invalid(e.to_string()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Command::Send { id, text }).await.map_err(|_| ClientError::NotConnected)?;
        Ok(id)
    }

    /// Asks for the user list ([`Event::Users`]).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn who(&self) -> Result<(), ClientError> {
        self.tx.send(Command::Who).await.map_err(|_| ClientError::NotConnected)
    }

    /// Enters voice with these devices and settings ([`Event::VoiceJoined`]
    /// or [`Event::VoiceError`] follows).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn join_voice(&self, options: crate::voice::VoiceOptions) -> Result<(), ClientError> {
        self.tx.send(Command::JoinVoice(Box::new(options))).await.map_err(|_| ClientError::NotConnected)
    }

    /// Sets how loud `user` plays for us (1.0 as sent, 0.0 mutes them; at
    /// most 4.0). Kept across their voice leaves and joins.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn set_gain(&self, user: impl Into<String>, gain: f32) -> Result<(), ClientError> {
        self.tx.send(Command::SetGain { user: user.into(), gain }).await.map_err(|_| ClientError::NotConnected)
    }

    /// Leaves voice ([`Event::VoiceLeft`] follows).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn leave_voice(&self) -> Result<(), ClientError> {
        self.tx.send(Command::LeaveVoice).await.map_err(|_| ClientError::NotConnected)
    }

    /// While reconnecting ([`Event::Reconnecting`]), tries at once instead
    /// of waiting out the delay; otherwise does nothing.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn reconnect_now(&self) -> Result<(), ClientError> {
        self.tx.send(Command::ReconnectNow).await.map_err(|_| ClientError::NotConnected)
    }

    /// Leaves politely once every queued message has been acknowledged.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn quit(&self) -> Result<(), ClientError> {
        self.tx.send(Command::Quit).await.map_err(|_| ClientError::NotConnected)
    }
}
