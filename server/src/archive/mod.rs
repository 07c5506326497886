//! History and durable state (issue 15): what the server keeps across
//! restarts, behind the [`Archive`] trait so a cluster backend can follow.
//!
//! - [`Archive`]: the interface the roster codes against. Writes and history
//!   reads never block the caller: each takes a [`Completion`] that the
//!   archive calls once, on its own thread, with the outcome.
//! - [`SqliteArchive`]: the single-node store, one SQLite file
//!   (`data_dir/chatroom.db`) in WAL mode with `synchronous = FULL`, one writer
//!   thread committing everything that waits in one transaction (group commit),
//!   two reader threads for history pages.
//! - [`backup`]: an online copy of a running server's database.
//! - [`memory`]: an archive in memory, for tests of everything around the
//!   store.
//!
//! Layout: `mod.rs` holds the types, the trait and the errors; `sqlite.rs`
//! the SQLite store; `schema.rs` the migrations.
//!
//! Deleted messages are removed from the file (no tombstones): history never
//! returns them and nothing of their text is kept (`secure_delete`: the
//! freed space is zeroed, so a later backup holds none of it either). Message ids are never
//! reused all the same: the store keeps the highest id it ever stored
//! ([`Archive::max_id`]) even when that message is deleted or pruned.
//!
//! Back up and restore: `backup(dir, FILE)` writes a consistent copy while
//! the server runs (the copy appears under its name only when complete). To
//! restore, stop the server, remove `chatroom.db-wal` and `chatroom.db-shm`
//! from the data directory, copy the backup over `chatroom.db` and start the
//! server.

pub mod memory;
mod schema;
mod sqlite;

use std::path::PathBuf;

pub use schema::SCHEMA_VERSION;
pub use sqlite::{DB_FILE, SqliteArchive, backup};

/// Called once with the outcome, on the archive's own thread: keep it short
/// (e.g. `addr.do_send(..)`). A write refused at once because the queue is
/// full is the one exception: its completion runs on the caller's thread,
/// before [`Archive::write`] returns.
pub type Completion<T> = Box<dyn FnOnce(T) + Send + 'static>;

/// The most messages one history page returns; a larger
/// [`HistoryQuery::limit`] is lowered to it (memory per query stays bounded).
pub const MAX_PAGE: u32 = 1000;

/// One stored chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The server id: strictly increasing, unique, never reused.
    pub id: u64,
    /// The room's bare name (`general`).
    pub room: String,
    /// The sender's name, as the roster knows it.
    pub sender: String,
    /// The text (the latest edit).
    pub text: String,
    /// The server's time when it took the message, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Whether the text was edited since.
    pub edited: bool,
}

/// A room as stored: from the config or created by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    /// Its bare name (`general`); the key.
    pub name: String,
    /// Its topic (may be empty).
    pub topic: String,
    /// Whether its messages are kept.
    pub history: bool,
    /// Whether it carries voice.
    pub voice: bool,
    /// Who created it (user rooms), `None` for rooms from the config.
    pub owner: Option<String>,
    /// Retention in days; 0 keeps everything.
    pub history_days: u32,
    /// When it was created, ms since the Unix epoch.
    pub created_ms: u64,
    /// When its last member left (None: has members or never had any checked) — for expiry of user rooms.
    pub empty_since_ms: Option<u64>,
    /// Whether it comes from `config.toml` (never expires).
    pub from_config: bool,
    /// Only its invite list (and its moderators) may join.
    pub invite_only: bool,
}

/// A registered account as stored (issue 16).
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Its key: the name's caseless look-alike key (`name_keys(name).caseless`).
    pub key: String,
    /// The name as registered.
    pub name: String,
    /// The password's argon2id PHC string (`None` after a reset).
    pub phc: Option<String>,
    /// A one-time reset code's PHC string.
    pub reset_phc: Option<String>,
    /// When the reset code stops working, Unix ms.
    pub reset_until_ms: Option<u64>,
    /// Granted admin on the server's machine.
    pub admin: bool,
    /// When it was registered, Unix ms.
    pub created_ms: u64,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord").field("name", &self.name).field("admin", &self.admin).finish_non_exhaustive()
    }
}

/// One change to a stored account ([`Write::UpdateAccount`]).
#[derive(Clone, PartialEq, Eq)]
pub enum AccountField {
    /// A new password (PHC string); a reset code goes.
    Password(String),
    /// A reset: no password, a one-time code (PHC string) until then.
    Reset {
        /// The code's PHC string.
        phc: String,
        /// When it stops working, Unix ms.
        until_ms: u64,
    },
    /// The reset code was used.
    ResetSpent,
    /// Admin or not.
    Admin(bool),
}

impl std::fmt::Debug for AccountField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccountField::Password(_) => "Password(..)",
            AccountField::Reset { .. } => "Reset(..)",
            AccountField::ResetSpent => "ResetSpent",
            AccountField::Admin(true) => "Admin(true)",
            AccountField::Admin(false) => "Admin(false)",
        })
    }
}

/// A moderator role as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeratorRecord {
    /// The account's key.
    pub account: String,
    /// The room's key (`""`: server-wide).
    pub room: String,
    /// Who granted it.
    pub by: String,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// A ban or mute as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanctionRecord {
    /// Its id (the caller's).
    pub id: u64,
    /// `ban_name`, `ban_address` or `mute`.
    pub kind: String,
    /// The name or the range.
    pub target: String,
    /// A mute's room.
    pub room: Option<String>,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// Since when, Unix ms.
    pub since_ms: u64,
    /// Until when (`None`: until lifted).
    pub until_ms: Option<u64>,
}

/// A name on an invite-only room's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    /// The room's bare name.
    pub room: String,
    /// The name's caseless look-alike key.
    pub key: String,
    /// The name as invited.
    pub name: String,
}

/// A key of the key ring as stored (issue 17): an invite's, one issued to a
/// client, or the previous main key during its grace.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The invite's or issued key's number (0 for the previous main key).
    pub id: u64,
    /// `invite`, `issued` or `old_main`.
    pub kind: String,
    /// The key's text form (a secret, like the key file).
    pub secret: String,
    /// An issued key's invite.
    pub invite: Option<u64>,
    /// Whom an issued key went to.
    pub name: String,
    /// An invite's room.
    pub room: Option<String>,
    /// An invite's uses left (`None`: unlimited).
    pub uses_left: Option<u32>,
    /// An invite's uses so far.
    pub uses: u32,
    /// When it stops working, Unix ms.
    pub expires_ms: Option<u64>,
    /// When it was made, Unix ms.
    pub created_ms: u64,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord").field("id", &self.id).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// Everything about people the roster loads at start.
#[derive(Debug, Default)]
pub struct Standing {
    /// Every account.
    pub accounts: Vec<AccountRecord>,
    /// Every moderator role.
    pub moderators: Vec<ModeratorRecord>,
    /// Every ban and mute (expired ones too, until swept).
    pub sanctions: Vec<SanctionRecord>,
    /// Every invite list entry.
    pub invites: Vec<InviteRecord>,
    /// Invites, issued keys, the previous main key.
    pub keys: Vec<KeyRecord>,
}

/// A private message between two registered accounts, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDirect {
    /// The server id (same sequence as rooms' messages).
    pub id: u64,
    /// The pair's account keys, sorted (`a < b`).
    pub a: String,
    /// The other key.
    pub b: String,
    /// Its sender's name.
    pub sender: String,
    /// Its recipient's name.
    pub recipient: String,
    /// The text.
    pub text: String,
    /// When the server took it, Unix ms.
    pub ts_ms: u64,
    /// Edited since.
    pub edited: bool,
}

/// A page of a private conversation ([`Archive::direct_history`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectQuery {
    /// One account's key.
    pub a: String,
    /// The other's (order does not matter).
    pub b: String,
    /// Page backwards from this id (exclusive).
    pub before: Option<u64>,
    /// Page forwards from this id (exclusive).
    pub after: Option<u64>,
    /// How many at most.
    pub limit: u32,
}

/// A page of a private conversation, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectPage {
    /// The messages.
    pub messages: Vec<StoredDirect>,
    /// More beyond the page in the paging direction.
    pub more: bool,
}

/// A page of the audit log ([`Archive::audit`]), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Entries older than this id.
    pub before: Option<u64>,
    /// How many at most.
    pub limit: u32,
    /// Only entries about these rooms (bare names; `None`: all entries).
    pub rooms: Option<Vec<String>>,
}

/// A change to the store, applied by [`Archive::write`].
#[derive(Debug)]
pub enum Write {
    /// Store a message (its id is assigned by the caller, strictly
    /// increasing; ids are unique). [`WriteOutcome::NotFound`] when its room
    /// is not stored; [`StoreError::Rejected`] when the id is already taken.
    Append(StoredMessage),
    /// Replace the text of message `id` if `sender` sent it (compare sender
    /// names exactly); sets `edited`. [`WriteOutcome::Changed`] with its
    /// room when done.
    Edit {
        /// The message's server id.
        id: u64,
        /// Who asks: must be the message's sender.
        sender: String,
        /// The new text.
        text: String,
    },
    /// Delete message `id` if `sender` sent it (removed from the file).
    /// [`WriteOutcome::Changed`] with its room when done.
    Delete {
        /// The message's server id.
        id: u64,
        /// Who asks: must be the message's sender.
        sender: String,
    },
    /// Create or update a room (its messages stay).
    UpsertRoom(RoomRecord),
    /// Remove a room and all its messages. Done once the room is gone from
    /// every lookup (its name is free again; history and edits no longer
    /// see it); its messages are then deleted in chunks between later
    /// batches (resumed after a restart), never stalling other writes.
    RemoveRoom {
        /// The room's name.
        name: String,
    },
    /// Remove a room's messages older than `before_ms` (retention). Runs in
    /// chunks between later batches (other writes are not held up); `done`
    /// gets the total once all are gone, or [`StoreError::Unavailable`] if
    /// a chunk failed or the store shut down first (what was removed stays
    /// removed: the next pass goes on).
    Prune {
        /// The room's name.
        room: String,
        /// Messages with `ts_ms < before_ms` go.
        before_ms: u64,
    },
    /// Store a private message between two accounts.
    AppendDirect(StoredDirect),
    /// Create or replace an account.
    PutAccount(AccountRecord),
    /// Change one thing of an account (the rest stays as stored: two
    /// changes in flight do not undo each other). `NotFound` when the
    /// account is gone.
    UpdateAccount {
        /// Its key.
        key: String,
        /// What changes.
        field: AccountField,
    },
    /// Remove an account, its roles and its private conversations.
    RemoveAccount {
        /// Its key.
        key: String,
    },
    /// Grant a moderator role.
    PutModerator(ModeratorRecord),
    /// Take a moderator role back.
    RemoveModerator {
        /// The account's key.
        account: String,
        /// The room's key (`""`: server-wide).
        room: String,
    },
    /// Add (or replace) a ban or mute.
    PutSanction(SanctionRecord),
    /// Lift a ban or mute.
    RemoveSanction {
        /// Its id.
        id: u64,
    },
    /// Add a name to a room's invite list.
    PutInvite(InviteRecord),
    /// Take a name off a room's invite list.
    RemoveInvite {
        /// The room's bare name.
        room: String,
        /// The name's key.
        key: String,
    },
    /// Append an entry to the audit log (its id is the store's).
    Audit(protocol::moderation::AuditEntry),
    /// Create or replace a key of the key ring.
    PutKey(KeyRecord),
    /// Remove a key of the key ring (an invite with the keys issued
    /// through it).
    RemoveKey {
        /// Its kind (`invite`, `issued`, `old_main`).
        kind: String,
        /// Its number.
        id: u64,
    },
}

/// What a [`Write`] did, once durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Applied (append, room upsert and removal).
    Done,
    /// An edit or delete was made, in this room (whose members hear of it).
    Changed {
        /// The message's room.
        room: String,
    },
    /// No such message (edit, delete) or room (append, remove, prune).
    NotFound,
    /// The message exists but someone else sent it (edit, delete).
    NotYours,
    /// Prune: how many messages were removed.
    Pruned(u64),
    /// An edit or delete of a stored private message was made.
    ChangedDirect,
}

/// A request for one page of a room's history.
///
/// `before`: the newest `limit` messages with id < before (or the newest
/// overall when both are `None`); `after`: the OLDEST `limit` messages with
/// id > after (catch-up after a reconnection). With both, the oldest `limit`
/// messages strictly between them (paging forward). `limit` is at most
/// [`MAX_PAGE`]; 0 returns no messages (and `more` says whether any exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The room's name; a room not stored has an empty history.
    pub room: String,
    /// Page backwards from this id (exclusive).
    pub before: Option<u64>,
    /// Page forwards from this id (exclusive).
    pub after: Option<u64>,
    /// How many messages at most.
    pub limit: u32,
}

/// A page of history: returned oldest first; `more` says whether further
/// messages exist past the page in the paging direction (older ones for
/// `before`, newer ones for `after`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The messages, oldest first.
    pub messages: Vec<StoredMessage>,
    /// Whether more exist beyond the page in the paging direction.
    pub more: bool,
}

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write or read failed (full disk, read-only directory, queue full,
    /// store shut down, …); the cause as text. Worth retrying later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// This one write was refused by the store's rules (a message id already
    /// stored, a value out of range); the rest of its batch went through.
    #[error("write refused: {0}")]
    Rejected(String),
    /// The file is not an SQLite database, or is damaged.
    #[error("{path}: the database file is corrupt or not a database")]
    Corrupt {
        /// The database file.
        path: PathBuf,
    },
    /// The file was written by a newer server (`PRAGMA user_version`).
    #[error("{path}: schema version {found} is newer than this server's ({supported}); run a newer server")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The newest this server knows.
        supported: u32,
    },
    /// The data directory or the database file could not be created.
    #[error("{path}: {source}")]
    CreateDir {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("{path}: cannot open the database: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// An online backup failed.
    #[error("backup into {dest}: {source}")]
    Backup {
        /// The backup file asked for.
        dest: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The store of history and rooms.
pub trait Archive: Send + Sync + std::fmt::Debug + 'static {
    /// Queues a write; `done` is called once it is durable (committed with
    /// synchronous=FULL) or failed. Never blocks: a full queue fails the write
    /// at once with [`StoreError::Unavailable`].
    fn write(&self, w: Write, done: Completion<Result<WriteOutcome, StoreError>>);
    /// Reads a page of history off the caller's thread; `done` gets it.
    fn history(&self, q: HistoryQuery, done: Completion<Result<Page, StoreError>>);
    /// Every room stored, by name (at start, blocking is fine).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the file cannot be read.
    fn rooms(&self) -> Result<Vec<RoomRecord>, StoreError>;
    /// The highest message id ever stored (0 when none), so ids continue
    /// after a restart; deleted and pruned messages count too.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the file cannot be read.
    fn max_id(&self) -> Result<u64, StoreError>;
    /// Accounts, roles, bans, mutes and invite lists (at start, blocking is
    /// fine).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the file cannot be read.
    fn standing(&self) -> Result<Standing, StoreError>;
    /// Reads a page of a private conversation off the caller's thread.
    fn direct_history(&self, q: DirectQuery, done: Completion<Result<DirectPage, StoreError>>);
    /// Reads a page of the audit log off the caller's thread: the entries
    /// and whether older ones remain.
    fn audit(&self, q: AuditQuery, done: Completion<Result<(Vec<protocol::moderation::AuditEntry>, bool), StoreError>>);
}
