//! Placeholder of the archive API (the SQLite store lands from its branch).

pub mod memory;

use std::path::Path;

/// Called once with the outcome, on the archive's own thread.
pub type Completion<T> = Box<dyn FnOnce(T) + Send + 'static>;

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Server id.
    pub id: u64,
    /// Room name.
    pub room: String,
    /// Sender name.
    pub sender: String,
    /// Text.
    pub text: String,
    /// Server time.
    pub ts_ms: u64,
    /// Edited since.
    pub edited: bool,
}

/// A stored room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    /// Name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// History on.
    pub history: bool,
    /// Voice on.
    pub voice: bool,
    /// Owner.
    pub owner: Option<String>,
    /// Retention.
    pub history_days: u32,
    /// Created.
    pub created_ms: u64,
    /// Empty since.
    pub empty_since_ms: Option<u64>,
    /// From config.
    pub from_config: bool,
}

/// A write.
#[derive(Debug)]
pub enum Write {
    /// Append.
    Append(StoredMessage),
    /// Edit.
    Edit {
        /// Id.
        id: u64,
        /// Sender.
        sender: String,
        /// Text.
        text: String,
    },
    /// Delete.
    Delete {
        /// Id.
        id: u64,
        /// Sender.
        sender: String,
    },
    /// Upsert.
    UpsertRoom(RoomRecord),
    /// Remove.
    RemoveRoom {
        /// Name.
        name: String,
    },
    /// Prune.
    Prune {
        /// Room.
        room: String,
        /// Before.
        before_ms: u64,
    },
}

/// Outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Done.
    Done,
    /// An edit or delete was made, in this room.
    Changed {
        /// The room.
        room: String,
    },
    /// Not found.
    NotFound,
    /// Not yours.
    NotYours,
    /// Pruned.
    Pruned(u64),
}

/// Query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Room.
    pub room: String,
    /// Before.
    pub before: Option<u64>,
    /// After.
    pub after: Option<u64>,
    /// Limit.
    pub limit: u32,
}

/// Page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Messages.
    pub messages: Vec<StoredMessage>,
    /// More.
    pub more: bool,
}

/// Error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unavailable.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Placeholder.
pub fn backup(_dir: &Path, _dest: &Path) -> Result<(), StoreError> {
    Err(StoreError::Unavailable("placeholder".into()))
}

/// The archive.
pub trait Archive: Send + Sync + std::fmt::Debug + 'static {
    /// Write.
    fn write(&self, w: Write, done: Completion<Result<WriteOutcome, StoreError>>);
    /// History.
    fn history(&self, q: HistoryQuery, done: Completion<Result<Page, StoreError>>);
    /// Rooms.
    fn rooms(&self) -> Result<Vec<RoomRecord>, StoreError>;
    /// Max id.
    fn max_id(&self) -> Result<u64, StoreError>;
}

/// Placeholder.
#[derive(Debug, Default)]
pub struct SqliteArchive(memory::MemoryArchive);

impl SqliteArchive {
    /// Placeholder.
    pub fn open(_dir: &Path, _log: slog::Logger) -> Result<Self, StoreError> {
        Ok(Self::default())
    }
}

impl Archive for SqliteArchive {
    fn write(&self, w: Write, done: Completion<Result<WriteOutcome, StoreError>>) {
        self.0.write(w, done);
    }
    fn history(&self, q: HistoryQuery, done: Completion<Result<Page, StoreError>>) {
        self.0.history(q, done);
    }
    fn rooms(&self) -> Result<Vec<RoomRecord>, StoreError> {
        self.0.rooms()
    }
    fn max_id(&self) -> Result<u64, StoreError> {
        self.0.max_id()
    }
}
