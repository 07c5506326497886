//! The command handle and the events a front end sees.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use protocol::crypto::{Fingerprint, Psk};
use protocol::message::{
    ClientMessage, DisconnectCause, Limits, MessageId, NackReason, RefusalCode, RoomInfo, ServerId,
};
use protocol::moderation::{Action, AuditEntry, BanEntry, DenyReason, RoleGrant};
use tokio::sync::mpsc;

use crate::error::ClientError;
use crate::key_choice::KeySource;
use crate::secret::Secret;

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
    /// The account password of a registered name (not the server
    /// password), or a one-time reset code. Sent at every login; never
    /// logged nor stored. A successful `/register` or `/password` in the
    /// session replaces it for the reconnections that follow.
    pub account_password: Option<Secret>,
    /// The server's pre-shared key (or an invite's).
    pub key: Psk,
    /// Where `key` came from: whether a key this server issued to this
    /// client earlier replaces it (see [`KeySource`]).
    pub key_source: KeySource,
    /// Directory of the keys servers issued to this client (`None`:
    /// [`crate::key_store::default_dir`]).
    pub keys_dir: Option<PathBuf>,
    /// Other addresses of the same server (an invite link's), tried in
    /// order when `server` cannot be connected to. The pin and the issued
    /// key are kept under `server` whichever answers.
    pub alternates: Vec<String>,
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
    /// Rooms to join after the first login, besides the server's default
    /// rooms (bare names; a leading `#` is dropped).
    pub rooms: Vec<String>,
    /// Stored messages each room delivers on joining (`None`: the
    /// server's default; `Some(0)`: none). Catching up after a
    /// reconnection is not affected.
    pub history: Option<u32>,
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
            account_password: None,
            key,
            key_source: KeySource::Explicit,
            keys_dir: None,
            alternates: Vec::new(),
            key_file: None,
            fingerprint: None,
            known_servers: None,
            state_dir: None,
            connect_timeout: Duration::from_secs(15),
            queue_limit: 256,
            first_use: FirstUse::Trust,
            reconnect: Reconnect::default(),
            rooms: Vec::new(),
            history: None,
        }
    }
}

impl ConnectOptions {
    /// Takes what an invite link gives besides its key (the key's place
    /// in the precedence is the caller's: see [`KeySource`]): `server`,
    /// which should be one of its addresses, first and its other
    /// addresses after, its server's identity pinned (no trust question),
    /// its room joined after the rooms given.
    pub fn invite(&mut self, link: &protocol::invite::InviteLink) {
        self.alternates = link.addresses.iter().filter(|a| **a != self.server).cloned().collect();
        self.fingerprint = Some(link.fingerprint);
        if let Some(room) = &link.room
            && !self.rooms.iter().any(|r| protocol::message::name_key(r) == protocol::message::name_key(room))
        {
            self.rooms.push(room.clone());
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
    /// The server refused the login (final: never tried again by itself;
    /// [`RefusalCode::AccountPassword`] asks for the account password,
    /// [`RefusalCode::Banned`] says why and until when).
    Refused {
        /// Machine-readable reason.
        code: RefusalCode,
        /// The server's words, to show verbatim.
        reason: String,
        /// For a ban: when it ends, ms since the Unix epoch (`None`: not by
        /// itself, or not a ban).
        until_ms: Option<u64>,
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
    /// The server refused the key it had issued to this client (kept from
    /// an earlier run, or issued in this one): probably revoked. Final.
    IssuedKeyRefused {
        /// The file that holds it (`None`: it was never kept on disk).
        file: Option<PathBuf>,
    },
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
    /// The server ended the session for cause ([`DisconnectCause::Kicked`]
    /// and [`DisconnectCause::Banned`] by a moderator); final: never
    /// reconnected by itself.
    Kicked {
        /// Why.
        cause: DisconnectCause,
        /// The server's words (for a kick or ban: by whom and why).
        detail: String,
        /// For a ban: when it ends, ms since the Unix epoch (`None`: not by
        /// itself, or not a ban).
        until_ms: Option<u64>,
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
            Self::IssuedKeyRefused { file: Some(file) } => write!(
                f,
                "refused by the server: the key it issued to this client, kept in {}, was refused (probably revoked); \
                 delete that file to connect with another key or a new invite link",
                file.display()
            ),
            Self::IssuedKeyRefused { file: None } => {
                write!(f, "refused by the server: the key it issued to this client was refused (probably revoked)")
            }
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
            Self::Kicked { cause: DisconnectCause::Kicked, detail, .. } => write!(f, "kicked: {detail}"),
            Self::Kicked { cause: DisconnectCause::Banned, detail, .. } => write!(f, "banned: {detail}"),
            Self::Kicked { cause: DisconnectCause::KeyRevoked, detail, .. } => {
                write!(f, "your invite was revoked; ask for a new one (server: {detail})")
            }
            Self::Kicked { detail, .. } => write!(f, "disconnected by the server: {detail}"),
        }
    }
}

/// Where a chat line goes: a room, or privately to one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A room we are in (its bare name, without `#`).
    Room(String),
    /// A private message to this user.
    User(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Room(r) => write!(f, "#{r}"),
            Self::User(u) => write!(f, "{u}"),
        }
    }
}

/// Something we sent that takes an id from the chat sequence and gets an
/// `ack` or `nack`: a chat line, an edit or a deletion. Kept until it is
/// acknowledged, resent with its id after a lost connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A chat line.
    Chat {
        /// The text.
        text: String,
        /// Where it goes (`None`: the server's choice, the first room we
        /// are in).
        target: Option<Target>,
    },
    /// A new text for one of our messages.
    Edit {
        /// The message's server id.
        target: ServerId,
        /// The new text.
        text: String,
    },
    /// The deletion of one of our messages.
    Delete {
        /// The message's server id.
        target: ServerId,
    },
}

impl Outgoing {
    /// The protocol message that carries it under `id`.
    pub(crate) fn message(&self, id: MessageId) -> ClientMessage {
        match self {
            Self::Chat { text, target } => {
                let (room, to) = match target {
                    None => (None, None),
                    Some(Target::Room(r)) => (Some(r.clone()), None),
                    Some(Target::User(u)) => (None, Some(u.clone())),
                };
                ClientMessage::Chat { id, text: text.clone(), room, to }
            }
            Self::Edit { target, text } => ClientMessage::Edit { id, target: *target, text: text.clone() },
            Self::Delete { target } => ClientMessage::Delete { id, target: *target },
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
        /// Everyone connected, us included (the first 1,000).
        users: Vec<String>,
        /// How many users are connected.
        users_total: u32,
        /// The rooms we are in; a [`Event::RoomJoined`] follows for each.
        rooms: Vec<String>,
        /// The server's identity.
        fingerprint: Fingerprint,
        /// How it was trusted.
        trust: Trust,
        /// The server's limits.
        limits: Limits,
        /// Our name is a registered account (we logged in with its password).
        registered: bool,
        /// The roles our account holds (moderator, admin).
        roles: Vec<RoleGrant>,
    },
    /// A chat message from someone else, or a stored one (ours too) from
    /// history.
    Message {
        /// Its server id (unique, increasing in time).
        id: ServerId,
        /// Sender.
        from: String,
        /// Text (not sanitised: see [`crate::display`]).
        text: String,
        /// Server receive time.
        time: SystemTime,
        /// The room; `None` for a private message.
        room: Option<String>,
        /// For a private message: its recipient (us, unless it is our own
        /// from history).
        to: Option<String>,
        /// A stored message (on joining, catching up or paging), never a
        /// new one.
        history: bool,
        /// Its text was edited after it was sent.
        edited: bool,
    },
    /// Someone joined a room we are in.
    Joined {
        /// Who.
        user: String,
        /// The room.
        room: Option<String>,
    },
    /// Someone left a room we are in (or disconnected).
    Left {
        /// Who.
        user: String,
        /// The room.
        room: Option<String>,
    },
    /// A user list (answer to [`Client::who`] or [`Client::who_in`]).
    Users {
        /// The room asked about; `None`: everyone connected.
        room: Option<String>,
        /// The names (the first 1,000).
        users: Vec<String>,
        /// How many there are in all.
        total: u32,
    },
    /// We are in a room now (after login, [`Client::join`], or a reconnection).
    RoomJoined {
        /// Its name.
        room: String,
        /// Its topic (may be empty).
        topic: String,
        /// Its first 1,000 members, us included.
        users: Vec<String>,
        /// How many members it has.
        users_total: u32,
        /// Whether it has voice.
        voice: bool,
        /// Whether its messages are stored.
        history: bool,
    },
    /// A room could not be joined.
    JoinRefused {
        /// The room.
        room: String,
        /// Why.
        reason: NackReason,
        /// The server's words.
        detail: String,
    },
    /// We left a room (asked to, or it went away).
    RoomLeft {
        /// The room.
        room: String,
    },
    /// Every room (answer to [`Client::rooms`]).
    Rooms(Vec<RoomInfo>),
    /// The end of a delivery of stored messages for `room`.
    HistoryEnd {
        /// The room.
        room: String,
        /// Older messages remain (or, catching up, newer ones).
        more: bool,
        /// It delivered older messages (on joining, or a page asked for),
        /// not a catch-up after a reconnection: `more` says whether older
        /// ones remain.
        older: bool,
    },
    /// A message was edited by its sender.
    Edited {
        /// Its server id.
        id: ServerId,
        /// Its room; `None` for a private message.
        room: Option<String>,
        /// For a private message: its recipient.
        to: Option<String>,
        /// Its sender.
        from: String,
        /// The new text.
        text: String,
    },
    /// A message was deleted by its sender.
    Deleted {
        /// Its server id.
        id: ServerId,
        /// Its room; `None` for a private message.
        room: Option<String>,
        /// For a private message: its recipient.
        to: Option<String>,
    },
    /// Something to tell the user.
    Notice(String),
    /// The server issued this client a key of its own (after a login
    /// through an invite, or with its previous main key): later
    /// connections to this server use it.
    KeyIssued {
        /// The key's public id (16 hex digits, as `server admin keys`
        /// lists it).
        id: String,
        /// Where it is kept, or why it could not be (then only this run's
        /// reconnections use it).
        stored: Result<PathBuf, String>,
    },
    /// An account or moderation request was carried out.
    Done {
        /// The request: `register`, `password`, `unregister`, or a
        /// moderation action's name ([`Action::name`]: `kick`, `ban_ip`, …).
        action: String,
        /// What was done, in the server's words.
        detail: String,
    },
    /// An account or moderation request was refused; nothing changed.
    Denied {
        /// The request, as in [`Event::Done`].
        action: String,
        /// Why.
        reason: DenyReason,
        /// The server's words.
        detail: String,
    },
    /// The bans in force, newest first (answer to [`Action::Bans`]).
    Bans(Vec<BanEntry>),
    /// Audit log entries, newest first (answer to [`Action::Audit`]).
    Audit {
        /// The entries.
        entries: Vec<AuditEntry>,
        /// Older entries remain (ask with `before`: the last entry's id).
        more: bool,
    },
    /// A room's topic changed.
    Topic {
        /// The room.
        room: String,
        /// The new topic (empty: none).
        topic: String,
        /// Who set it.
        by: String,
    },
    /// The end of a page of our stored private conversation with `with`
    /// (answer to [`Client::private_history`]; its messages came before
    /// as [`Event::Message`]s marked history, with `to`).
    PrivateHistoryEnd {
        /// The other account.
        with: String,
        /// Older messages remain.
        more: bool,
    },
    /// The server took our message (a chat line, edit or deletion).
    Acked {
        /// Our id for it.
        id: MessageId,
        /// The server id it got (for an edit or deletion: its target's).
        server_id: Option<ServerId>,
        /// What it was (`None` when the server acknowledged it again, after
        /// a resend).
        sent: Option<Outgoing>,
    },
    /// The server refused our message for good (not for the rate or a
    /// storage failure: those are resent).
    Rejected {
        /// Which message.
        id: MessageId,
        /// Why.
        reason: NackReason,
        /// The server's words.
        detail: String,
    },
    /// We are in the voice of `room`.
    VoiceJoined {
        /// The room.
        room: String,
    },
    /// Who is in a room's voice (names, sorted).
    VoiceUsers {
        /// The room.
        room: String,
        /// The names.
        users: Vec<String>,
    },
    /// A speaker started or stopped talking.
    Talking {
        /// The room whose voice we are in.
        room: String,
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
    /// each once); voice is rejoined, and each room delivers what was said
    /// in it meanwhile (marked history).
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
    Send { id: MessageId, out: Outgoing },
    Who { room: Option<String> },
    Join { room: String },
    Part { room: String },
    Rooms,
    History { room: String, before: Option<ServerId>, limit: u32 },
    PrivateHistory { with: String, before: Option<ServerId>, limit: u32 },
    Account(AccountRequest),
    Moderate(Action),
    Quit,
    JoinVoice { options: Box<crate::voice::VoiceOptions>, room: Option<String> },
    LeaveVoice,
    SetGain { user: String, gain: f32 },
    ReconnectNow,
}

/// A request about our own account (answered with [`Event::Done`] or
/// [`Event::Denied`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AccountRequest {
    Register { password: Secret },
    ChangePassword { old: Option<Secret>, new: Secret },
    Unregister { password: Secret },
}

impl AccountRequest {
    /// The protocol message that carries it.
    pub(crate) fn message(&self) -> ClientMessage {
        match self {
            Self::Register { password } => ClientMessage::Register { password: password.expose().to_owned() },
            Self::ChangePassword { old, new } => ClientMessage::ChangePassword {
                old: old.as_ref().map(|o| o.expose().to_owned()),
                new: new.expose().to_owned(),
            },
            Self::Unregister { password } => ClientMessage::Unregister { password: password.expose().to_owned() },
        }
    }

    /// The `action` the server's answer names.
    pub(crate) fn action(&self) -> &'static str {
        match self {
            Self::Register { .. } => "register",
            Self::ChangePassword { .. } => "password",
            Self::Unregister { .. } => "unregister",
        }
    }

    /// The account password for later logins once it is done (`None`:
    /// the name is not registered any more).
    pub(crate) fn password_after(&self) -> Option<Secret> {
        match self {
            Self::Register { password } => Some(password.clone()),
            Self::ChangePassword { new, .. } => Some(new.clone()),
            Self::Unregister { .. } => None,
        }
    }
}

/// Checks a new account password against the server's rules, so a front
/// end can say what is wrong before anything is sent.
///
/// # Errors
///
/// [`ClientError::Invalid`] with the rule broken.
pub fn check_account_password(password: &Secret) -> Result<(), ClientError> {
    protocol::moderation::validate_account_password(password.expose()).map_err(|e| ClientError::Invalid(e.to_string()))
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

    /// Queues a chat message to the server's choice of room (the first we
    /// are in); returns its id. Waits while too many messages are
    /// unacknowledged; paces itself to the server's rate (never drops).
    ///
    /// # Errors
    ///
    /// [`ClientError::TooLarge`] over the server's announced size limit
    /// (nothing is sent), [`ClientError::Invalid`] for empty or control
    /// characters, [`ClientError::NotConnected`] after the end.
    pub async fn send(&self, text: impl Into<String>) -> Result<MessageId, ClientError> {
        let text = self.check(text.into())?;
        self.queue(Outgoing::Chat { text, target: None }).await
    }

    /// Queues a chat message to a room or, privately, to one user; returns
    /// its id. As [`Client::send`] otherwise.
    ///
    /// # Errors
    ///
    /// As [`Client::send`].
    pub async fn say(&self, target: Target, text: impl Into<String>) -> Result<MessageId, ClientError> {
        let text = self.check(text.into())?;
        self.queue(Outgoing::Chat { text, target: Some(target) }).await
    }

    /// Replaces the text of our message `target` (a server id); returns
    /// the id of the request, acknowledged like a chat message. Everyone
    /// who got it (we too) sees [`Event::Edited`].
    ///
    /// # Errors
    ///
    /// As [`Client::send`].
    pub async fn edit(&self, target: ServerId, text: impl Into<String>) -> Result<MessageId, ClientError> {
        let text = self.check(text.into())?;
        self.queue(Outgoing::Edit { target, text }).await
    }

    /// Deletes our message `target` (a server id); returns the id of the
    /// request. Everyone who got it sees [`Event::Deleted`].
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn delete(&self, target: ServerId) -> Result<MessageId, ClientError> {
        self.queue(Outgoing::Delete { target }).await
    }

    fn check(&self, text: String) -> Result<String, ClientError> {
        let max = self.max_message.load(Ordering::Relaxed);
        if text.len() as u64 > max {
            return Err(ClientError::TooLarge { len: text.len(), max: max as usize });
        }
        if let Err(e) = protocol::message::validate_text(&text, usize::MAX) {
            return Err(ClientError::Invalid(e.to_string()));
        }
        Ok(text)
    }

    async fn queue(&self, out: Outgoing) -> Result<MessageId, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.command(Command::Send { id, out }).await?;
        Ok(id)
    }

    async fn command(&self, cmd: Command) -> Result<(), ClientError> {
        self.tx.send(cmd).await.map_err(|_| ClientError::NotConnected)
    }

    /// Asks for the list of everyone connected ([`Event::Users`]).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn who(&self) -> Result<(), ClientError> {
        self.command(Command::Who { room: None }).await
    }

    /// Asks for a room's members ([`Event::Users`]; we must be in it), or
    /// with `None` everyone connected.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn who_in(&self, room: Option<String>) -> Result<(), ClientError> {
        self.command(Command::Who { room }).await
    }

    /// Joins a room, creating it where the server lets users create rooms
    /// ([`Event::RoomJoined`] and its history, or [`Event::JoinRefused`]).
    /// Rooms joined are joined again after a reconnection.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn join(&self, room: impl Into<String>) -> Result<(), ClientError> {
        self.command(Command::Join { room: room.into() }).await
    }

    /// Leaves a room (and its voice; [`Event::RoomLeft`]).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn part(&self, room: impl Into<String>) -> Result<(), ClientError> {
        self.command(Command::Part { room: room.into() }).await
    }

    /// Asks for every room ([`Event::Rooms`]).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn rooms(&self) -> Result<(), ClientError> {
        self.command(Command::Rooms).await
    }

    /// Asks for a page of a room's stored messages: the newest `limit`
    /// older than `before` (`None`: the newest). They arrive as
    /// [`Event::Message`]s marked history, then [`Event::HistoryEnd`]; see
    /// [`crate::rooms::Room::oldest`] for where the next page starts.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn history(
        &self,
        room: impl Into<String>,
        before: Option<ServerId>,
        limit: u32,
    ) -> Result<(), ClientError> {
        let limit = limit.clamp(1, protocol::message::MAX_HISTORY_PAGE);
        self.command(Command::History { room: room.into(), before, limit }).await
    }

    /// Asks for a page of our stored private conversation with the
    /// registered account `with` (both names registered): the newest
    /// `limit` older than `before`. They arrive as [`Event::Message`]s
    /// marked history (with `to`), then [`Event::PrivateHistoryEnd`].
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn private_history(
        &self,
        with: impl Into<String>,
        before: Option<ServerId>,
        limit: u32,
    ) -> Result<(), ClientError> {
        let limit = limit.clamp(1, protocol::message::MAX_HISTORY_PAGE);
        self.command(Command::PrivateHistory { with: with.into(), before, limit }).await
    }

    /// Registers the name we are logged in under with this account
    /// password ([`Event::Done`] or [`Event::Denied`], action `register`).
    /// Once done, reconnections log in with it.
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] for a password the server would refuse
    /// (nothing is sent); [`ClientError::NotConnected`] after the end.
    pub async fn register(&self, password: Secret) -> Result<(), ClientError> {
        check_account_password(&password)?;
        self.command(Command::Account(AccountRequest::Register { password })).await
    }

    /// Changes our account's password (action `password`); `old` is `None`
    /// only in a session logged in with a one-time reset code.
    ///
    /// # Errors
    ///
    /// As [`Client::register`], for `new`.
    pub async fn change_password(&self, old: Option<Secret>, new: Secret) -> Result<(), ClientError> {
        check_account_password(&new)?;
        self.command(Command::Account(AccountRequest::ChangePassword { old, new })).await
    }

    /// Gives our registered name back (action `unregister`), confirmed
    /// with its password.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn unregister(&self, password: Secret) -> Result<(), ClientError> {
        self.command(Command::Account(AccountRequest::Unregister { password })).await
    }

    /// Sends a moderation request ([`Event::Done`], [`Event::Denied`],
    /// [`Event::Bans`] or [`Event::Audit`] answers it).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn moderate(&self, action: Action) -> Result<(), ClientError> {
        self.command(Command::Moderate(action)).await
    }

    /// Enters voice with these devices and settings, in the first room we
    /// are in that has voice ([`Event::VoiceJoined`] or
    /// [`Event::VoiceError`] follows).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn join_voice(&self, options: crate::voice::VoiceOptions) -> Result<(), ClientError> {
        self.join_voice_in(options, None).await
    }

    /// Enters the voice of `room` (we must be in it; `None`: the first
    /// room we are in that has voice), leaving voice elsewhere.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotConnected`] after the end.
    pub async fn join_voice_in(
        &self,
        options: crate::voice::VoiceOptions,
        room: Option<String>,
    ) -> Result<(), ClientError> {
        self.command(Command::JoinVoice { options: Box::new(options), room }).await
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
