//! Messages that more than one actor speaks. All are plain data except a
//! session's registration, which carries its own mailbox.

use actix::prelude::*;
use bytes::Bytes;
use protocol::message::DisconnectCause;

/// Identifies one TCP session for the life of the server process.
pub type SessionId = u64;

/// What a session's writer task takes, in order.
#[derive(Debug)]
pub enum Outbound {
    /// A plaintext handshake frame, sent as is.
    Raw(Bytes),
    /// From now on, seal messages with this.
    StartSealing(Box<protocol::crypto::Sealer>),
    /// An encoded [`protocol::message::ServerMessage`] to seal and send.
    Message(Bytes),
}

/// A session's outbound queue. The roster delivers through it directly,
/// with no actor hop per recipient: the session's writer seals and sends
/// what it finds there in order, many messages per system call.
#[derive(Debug, Clone)]
pub struct Outbox(pub tokio::sync::mpsc::Sender<Outbound>);

/// Why a delivery did not go into an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undelivered {
    /// The queue is full: a hopelessly slow reader.
    Full,
    /// The session has ended.
    Closed,
}

impl Outbox {
    /// Queues an encoded message without waiting.
    pub fn deliver(&self, payload: Bytes) -> Result<(), Undelivered> {
        self.0.try_send(Outbound::Message(payload)).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => Undelivered::Full,
            tokio::sync::mpsc::error::TrySendError::Closed(_) => Undelivered::Closed,
        })
    }
}

/// Roster → session.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum ToSession {
    /// The server is shutting down: send this encoded message, then close.
    Shutdown(Bytes),
    /// End the session for cause.
    Kick(DisconnectCause, &'static str),
    /// Too many connections are waiting for their key check: close this
    /// one if it has not passed it (the gate chose it to give way).
    Evict,
    /// The same user logged in again with this session's resume token (its
    /// connection is presumably dead): close without a word.
    Replaced,
    /// A moderator or the operator removes the user: tell them why (and
    /// until when, for a ban) and close; final.
    Removed {
        /// Kicked or banned.
        cause: DisconnectCause,
        /// By whom and why.
        detail: String,
        /// A ban's end, Unix ms.
        until_ms: Option<u64>,
    },
}

/// The chat ids a user's sessions have settled, handed from a session to the
/// one resuming it. Only one live session holds it at a time, so the lock is
/// never contended.
pub type SharedLedger = std::sync::Arc<std::sync::Mutex<protocol::delivery::Ledger>>;

/// Why the roster refused a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The name or the address is banned.
    Banned(BanNotice),
    /// The name is a registered account and the session did not prove
    /// its password.
    AccountPassword,
    /// The invite it connected with has no use left (another login took
    /// the last one meanwhile).
    InviteSpent,
    /// The key it connected with was revoked (or ended) after the key check.
    KeyRevoked,
    /// The name is taken (case-insensitively).
    NameTaken,
    /// The name is held this long more for a user whose connection dropped
    /// (their resume token takes it back).
    NameHeld(std::time::Duration),
    /// `max_clients` users are logged in.
    ServerFull,
    /// `max_clients_per_address` users are logged in from this address.
    AddressFull,
    /// The server is shutting down.
    ShuttingDown,
}

/// Session → roster: log this session in under `name`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Joined, JoinRefusal>")]
pub struct Join {
    /// The session.
    pub id: SessionId,
    /// Requested (already validated) name.
    pub name: String,
    /// The resume token the client presented, if any.
    pub resume: Option<String>,
    /// The token came from an earlier process: take the name back only,
    /// keeping the session's own fresh ledger.
    pub restored: bool,
    /// The client's IP address (for the per-address cap).
    pub ip: Option<std::net::IpAddr>,
    /// The session's own (empty) ledger, used unless one is resumed.
    pub ledger: SharedLedger,
    /// Where to send the session orders (kick, shutdown, replaced).
    pub mailbox: Recipient<ToSession>,
    /// Where to deliver messages for this session; the welcome goes first.
    pub outbox: Outbox,
    /// The limits the welcome announces.
    pub limits: protocol::message::Limits,
    /// The rooms to put the user in (`None`: the default rooms).
    pub rooms: Option<Vec<protocol::message::RoomJoin>>,
    /// Stored messages per room joined (`None`: `history_on_join`).
    pub history: Option<u32>,
    /// The client's full address (for address bans; `ip` is its group).
    pub addr: Option<std::net::IpAddr>,
    /// The account whose password the session proved, if the name is one.
    pub account: Option<AccountLogin>,
    /// The key the client connected with (invites and old main keys get
    /// a key of their own issued; revoking a key ends its sessions).
    pub key: Option<protocol::crypto::KeyId>,
}

/// A login proven by an account password (or a one-time reset code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLogin {
    /// The account's key.
    pub key: String,
    /// The reset code was used (it is spent now; the user is asked to set
    /// a new password).
    pub by_reset: bool,
}

/// A ban that stops a login: its words for the user, and its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanNotice {
    /// Why and until when, for the user.
    pub text: String,
    /// When it ends, Unix ms (`None`: until lifted).
    pub until_ms: Option<u64>,
}

/// What a login to a registered name must prove.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account's key.
    pub key: String,
    /// The password's PHC string (`None`: only a reset code works).
    pub phc: Option<String>,
    /// A reset code's PHC string, still valid.
    pub reset_phc: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("key", &self.key).finish_non_exhaustive()
    }
}

/// Session → roster, before a login: is the name banned or registered?
/// (Answered before any password is hashed.)
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<Credentials>, BanNotice>")]
pub struct LoginCheck {
    /// The name asked for.
    pub name: String,
    /// The client's full address.
    pub addr: Option<std::net::IpAddr>,
}

/// Session → roster: the credentials of this session's account (for
/// checking the current password before a change or an unregistration).
#[derive(Debug, Message)]
#[rtype(result = "Option<Credentials>")]
pub struct AccountOf {
    /// The session.
    pub id: SessionId,
}

/// What a logged-in user does to their account (the password work is
/// done: hashes come hashed, current passwords checked).
#[derive(Debug)]
pub enum AccountOp {
    /// Register the session's name with this PHC string.
    Register(String),
    /// Set the account's password to this PHC string.
    SetPassword(String),
    /// Give the name back.
    Unregister,
}

/// Session → roster: an account change; the roster answers the session
/// with `done` or `denied` once it is stored.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AccountChange {
    /// The session.
    pub id: SessionId,
    /// What.
    pub op: AccountOp,
}

/// Session → listener: may an account password be checked now?
#[derive(Debug, Message)]
#[rtype(result = "Result<(), std::time::Duration>")]
pub struct AccountAttempt {
    /// The address group it comes from.
    pub group: std::net::IpAddr,
    /// The account's key.
    pub account: String,
}

/// Session → listener: how an account password turned out.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AccountChecked {
    /// The address group it came from.
    pub group: std::net::IpAddr,
    /// The account's key.
    pub account: String,
    /// Whether it was right.
    pub right: bool,
}

/// Who asks for a moderation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// The operator, on the server's machine (admin socket): may do
    /// everything.
    Operator,
    /// A logged-in user: their account's roles decide.
    Session(SessionId),
}

/// Requests only the operator makes (`server admin …`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum OperatorQuery {
    /// Everyone connected.
    Who,
    /// Every room.
    Rooms,
    /// Counts.
    Stats,
    /// Replace an account's password with a one-time code (hashed by the
    /// caller): its old password stops working.
    ResetPassword {
        /// The account.
        name: String,
        /// The code's PHC string.
        #[serde(skip)]
        code_phc: String,
        /// When the code stops working, Unix ms.
        #[serde(skip)]
        until_ms: u64,
    },
}

/// A moderation or operator request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModRequest {
    /// An action users with roles may ask for too.
    Act(protocol::moderation::Action),
    /// The operator's own.
    Operator(OperatorQuery),
    /// The operator's, about invites and keys.
    Keys(crate::roster::KeyQuery),
}

/// One connected user, for `server admin who`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserSummary {
    /// The name.
    pub name: String,
    /// Logged in with an account password.
    pub registered: bool,
    /// The roles its account holds.
    pub roles: Vec<protocol::moderation::RoleGrant>,
    /// Where from.
    pub address: Option<String>,
    /// Its rooms.
    pub rooms: Vec<String>,
    /// The room whose voice it is in.
    pub voice: Option<String>,
}

/// Counts for `server admin stats`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerStats {
    /// Users connected.
    pub users: usize,
    /// Of them, in voice.
    pub voice_users: usize,
    /// Rooms.
    pub rooms: usize,
    /// Registered accounts.
    pub accounts: usize,
    /// Bans in force.
    pub bans: usize,
    /// Sessions held for resumption.
    pub held: usize,
}

/// What a moderation request returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum ModReply {
    /// Done, in words.
    Done {
        /// What was done.
        detail: String,
    },
    /// The bans in force.
    Bans {
        /// Newest first.
        bans: Vec<protocol::moderation::BanEntry>,
    },
    /// A page of the audit log.
    Audit {
        /// Newest first.
        entries: Vec<protocol::moderation::AuditEntry>,
        /// Older entries remain.
        more: bool,
    },
    /// Everyone connected.
    Who {
        /// Sorted by name.
        users: Vec<UserSummary>,
    },
    /// Every room.
    Rooms {
        /// Sorted by name.
        rooms: Vec<protocol::message::RoomInfo>,
    },
    /// Counts.
    Stats(ServerStats),
    /// A new invite (the admin socket makes its link).
    Invite {
        /// Its number.
        id: u64,
        /// Its key (a secret: it goes into the link).
        key: crate::keyring::SecretText,
        /// The room its link lands in.
        room: Option<String>,
        /// Uses and expiry, in words.
        detail: String,
    },
    /// Every invite.
    Invites {
        /// Newest first.
        invites: Vec<crate::roster::InviteSummary>,
    },
    /// Every issued key.
    Keys {
        /// Newest first.
        keys: Vec<crate::roster::KeySummary>,
    },
}

/// A refused moderation request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Denial {
    /// Why.
    pub reason: protocol::moderation::DenyReason,
    /// In words.
    pub detail: String,
}

/// Where a moderation request's answer goes.
#[derive(Debug)]
pub enum ModReplyTo {
    /// To the asking session, as a `done`/`denied`/`bans`/`audit` message.
    Session(SessionId),
    /// To the admin socket.
    Operator(tokio::sync::oneshot::Sender<Result<ModReply, Denial>>),
}

/// A moderation or operator request, answered through `reply` (after the
/// store has taken what it changed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Moderate {
    /// Who asks.
    pub by: Asker,
    /// What.
    pub request: ModRequest,
    /// Where the answer goes.
    pub reply: ModReplyTo,
}

/// The roster's answer to a successful [`Join`].
#[derive(Debug)]
pub struct Joined {
    /// How many users are here now.
    pub users: usize,
    /// The ledger to use: the resumed session's, or the one given.
    pub ledger: SharedLedger,
    /// Whether an earlier session of this user was resumed.
    pub resumed: bool,
}

/// Session → roster: this session has ended (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// The session.
    pub id: SessionId,
    /// It may be resumed (it did not quit and was not kicked).
    pub resumable: bool,
}

/// Session → roster: a chat message taken from `from` (its id pending in
/// the ledger): the roster delivers it (storing it first where the room
/// keeps history), settles the id and answers `ack` or `nack`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Broadcast {
    /// The sending session (not delivered back to it).
    pub from: SessionId,
    /// The ledger the session marked the id pending in: the roster settles
    /// it there (or leaves it open), whatever became of the session.
    pub ledger: SharedLedger,
    /// The client's id for it.
    pub client_id: u64,
    /// The text.
    pub text: String,
    /// Server receive time, Unix milliseconds.
    pub ts_ms: u64,
    /// The room it is for.
    pub room: Option<String>,
    /// A private message to this user instead.
    pub to: Option<String>,
}

/// Session → roster: edit (`text`) or delete (`None`) one of the sender's
/// messages; answered like a [`Broadcast`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Amend {
    /// The sending session.
    pub from: SessionId,
    /// The ledger the session marked the id pending in.
    pub ledger: SharedLedger,
    /// The client's id for this edit or delete.
    pub client_id: u64,
    /// The server id of the message.
    pub target: u64,
    /// The new text; `None` deletes.
    pub text: Option<String>,
}

/// Session → roster: join (or create) a room; the roster answers on the
/// session's queue.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct JoinRoom {
    /// The session.
    pub id: SessionId,
    /// The room and where its history resumes.
    pub join: protocol::message::RoomJoin,
    /// Stored messages to deliver (`None`: `history_on_join`).
    pub history: Option<u32>,
}

/// Session → roster: leave a room.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PartRoom {
    /// The session.
    pub id: SessionId,
    /// The room.
    pub room: String,
}

/// Session → roster: list the rooms (answered on the session's queue).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ListRooms {
    /// The session.
    pub id: SessionId,
}

/// Session → roster: a page of a room's history (answered on the
/// session's queue).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct HistoryPage {
    /// The session.
    pub id: SessionId,
    /// The room, or the private conversation.
    pub place: Conversation,
    /// Older than this id.
    pub before: Option<u64>,
    /// Newer than this id.
    pub after: Option<u64>,
    /// At most this many.
    pub limit: u32,
}

/// Where a history page is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    /// A room, by its bare name.
    Room(String),
    /// The asker's private conversation with this account.
    Direct(String),
}

/// Session → roster: a user list (answered on the session's queue).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Who {
    /// The session.
    pub id: SessionId,
    /// A room's members; `None`: everyone.
    pub room: Option<String>,
    /// Names to skip.
    pub offset: u32,
}

/// Anyone → roster: the sorted user list (all of it; for tests and tools).
#[derive(Debug, Message)]
#[rtype(result = "Vec<String>")]
pub struct ListUsers;

/// Main → roster: tell everyone the server is going down. Returns how many
/// sessions were told.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct ShutdownAll {
    /// Shown to users.
    pub reason: String,
}

/// Main → roster: how many users are logged in.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Count;

/// Session → roster: enter a room's voice with this join's keys. Returns
/// the voice id, or why not.
#[derive(Debug, Message)]
#[rtype(result = "Result<u32, String>")]
pub struct VoiceJoin {
    /// The session.
    pub id: SessionId,
    /// The room (`None`: the session's first room with voice).
    pub room: Option<String>,
    /// Client → server key of this join.
    pub up_key: [u8; 32],
    /// Server → client key of this join.
    pub down_key: [u8; 32],
    /// The relay's UDP port, for the `voice_joined` answer.
    pub udp_port: u16,
    /// This join's key epoch, for the `voice_joined` answer.
    pub epoch: u32,
}

/// Session → roster: leave voice (idempotent); the roster answers
/// `voice_left` on the session's queue before the new voice list.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct VoiceLeave {
    /// The session.
    pub id: SessionId,
}

/// Session → roster: loss a listener sees from a speaker.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct VoiceReport {
    /// The reporting session (must be in voice).
    pub from: SessionId,
    /// The speaker's voice id.
    pub speaker: u32,
    /// Loss per mille.
    pub loss_permille: u16,
    /// Mean burst length × 10.
    pub burst_x10: u16,
}

/// Roster → relay: a voice member and its keys.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RelayAdd {
    /// Voice id.
    pub voice_id: u32,
    /// Its room: voice is relayed among one room's members only.
    pub channel: u32,
    /// Client → server key.
    pub up_key: [u8; 32],
    /// Server → client key.
    pub down_key: [u8; 32],
}

/// Roster → relay: forget a voice member.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RelayRemove {
    /// Voice id.
    pub voice_id: u32,
}

/// Session → listener: the connection passed the key check; may it cost a
/// signature now? (It leaves the pool that idle connections can push out.)
#[derive(Debug, Message)]
#[rtype(result = "Result<(), crate::gate::Hold>")]
pub struct Authorize {
    /// The session.
    pub id: SessionId,
}

/// Session → listener: the connection logged in or closed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Release(pub SessionId);

/// Session → listener: a password is about to be checked for a login from
/// this address group; `Err` is how long it must wait first.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), std::time::Duration>")]
pub struct PasswordAttempt(pub std::net::IpAddr);

/// Session → listener: how the password a [`PasswordAttempt`] let through
/// turned out.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PasswordChecked {
    /// The address group it came from.
    pub group: std::net::IpAddr,
    /// Whether it was right.
    pub right: bool,
}

/// A session's way to the gate (see [`crate::gate`]): its id, its address
/// group, and the listener's mailboxes. Dropping it releases the session's
/// place, whatever ended it.
#[derive(Debug)]
pub struct GateHandle {
    /// The session.
    pub id: SessionId,
    /// Its address group (see [`crate::listener::address_group`]).
    pub group: std::net::IpAddr,
    /// Asks to go on to the signature.
    pub authorize: Recipient<Authorize>,
    /// Asks to check a password.
    pub password: Recipient<PasswordAttempt>,
    /// Says how the password turned out.
    pub password_checked: Recipient<PasswordChecked>,
    /// Asks to check an account password.
    pub account: Recipient<AccountAttempt>,
    /// Says how the account password turned out.
    pub account_checked: Recipient<AccountChecked>,
    /// Says the session logged in or closed.
    pub release: Recipient<Release>,
}

impl Drop for GateHandle {
    fn drop(&mut self) {
        self.release.do_send(Release(self.id));
    }
}
