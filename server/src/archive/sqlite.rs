//! The SQLite [`Archive`]: one file in WAL mode with `synchronous = FULL`.
//!
//! Threads: one writer owns the only read-write connection and drains a
//! bounded channel with group commit (block for one write, take everything
//! else already waiting, up to [`MAX_BATCH`], apply it all in one
//! transaction, commit, then call every completion); two readers, each with
//! its own read-only connection, answer history pages. WAL lets the readers
//! (and an online backup) read while the writer commits.
//!
//! A failed transaction fails every write in it with
//! [`StoreError::Unavailable`] (never an Ok), is logged at most once per
//! [`FAILURE_LOG_WINDOW`] with a count of the failures not logged, and the
//! writer carries on: the next batch tries again (the disk may have room
//! again).

use std::collections::VecDeque;
use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{CachedStatement, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use slog::{Logger, error, info, o, warn};

use super::schema::{self, SCHEMA_VERSION};
use super::{
    AccountField, AccountRecord, Archive, AuditQuery, Completion, DirectPage, DirectQuery, HistoryQuery, InviteRecord,
    KeyRecord, MAX_PAGE, ModeratorRecord, Page, RoomRecord, SanctionRecord, Standing, StoreError, StoredDirect,
    StoredMessage, Write, WriteOutcome,
};
use protocol::moderation::AuditEntry;

/// The writer thread's name.
const WRITER: &str = "archive-writer";

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "chatroom.db";

/// Writes queued or in the writer's hands, at most, in number (three
/// seconds of the 20,000 msg/s)…
const WRITE_QUEUE: usize = 65_536;
/// …and in bytes (their strings, with an allowance for the rest): messages
/// may be up to `max_message_bytes` (1 MiB at most), so a count alone would
/// not bound memory. Past either, a write fails at once ("queue full")
/// rather than growing memory or blocking an actor.
const QUEUE_BYTES: usize = 64 << 20;
/// Writes in one transaction, at most: bounds the time to the first
/// completion of a batch and the memory of the outcomes.
pub(crate) const MAX_BATCH: usize = 4096;
/// History queries waiting for a reader, at most.
const READ_QUEUE: usize = 4096;
/// Reader threads (each with its own connection).
const READERS: usize = 2;
/// Storage failures are logged at most once per window.
const FAILURE_LOG_WINDOW: Duration = Duration::from_secs(10);
/// How long dropping the archive waits for its threads (the writer commits
/// what is queued first).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// How long a connection waits for a lock held by another process (a
/// backup, an administrator's `sqlite3`) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows a chore deletes per transaction (see [`Chore`]). A room's rows lie
/// among other rooms' (ids interleave), so a chunk dirties about one page
/// per row or two, and `secure_delete` writes the freed ones too: 100 keeps
/// what a chunk adds to a commit small; a room of 50,000 is gone in 500
/// commits (a few seconds, in the background).
const CHUNK: usize = 100;
/// How long a chore waits after a failed transaction before it tries again.
const CHORE_RETRY: Duration = Duration::from_secs(1);
/// The WAL file is truncated to this after a checkpoint when larger.
const WAL_KEEP_BYTES: i64 = 64 << 20;
/// Page cache per connection, KiB (SQLite's default is 2,000).
const CACHE_KIB: i64 = 8192;

/// A write waiting for the writer.
struct WriteJob {
    w: Write,
    done: Completion<Result<WriteOutcome, StoreError>>,
    /// Its bytes, counted until the job is dropped (done with).
    _ticket: Ticket,
}

impl WriteJob {
    /// Gives its bytes back, then calls its completion (so whoever sees the
    /// completion sees the bytes given back).
    fn finish(self, outcome: Result<WriteOutcome, StoreError>, log: &Logger) {
        let Self { w, done, _ticket } = self;
        drop((w, _ticket));
        complete(done, outcome, log);
    }
}

/// Bytes a queued write holds against [`QUEUE_BYTES`]; given back on drop.
struct Ticket {
    bytes: usize,
    queued: Arc<AtomicUsize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What a write weighs in the queue: its strings, the job, an allowance
/// for the completion's captures.
fn weight(w: &Write) -> usize {
    let strings = match w {
        Write::Append(m) => m.room.len() + m.sender.len() + m.text.len(),
        Write::Edit { sender, text, .. } => sender.len() + text.len(),
        Write::Delete { sender, .. } => sender.len(),
        Write::UpsertRoom(r) => r.name.len() + r.topic.len() + r.owner.as_ref().map_or(0, String::len),
        Write::RemoveRoom { name } => name.len(),
        Write::Prune { room, .. } => room.len(),
        Write::AppendDirect(d) => d.a.len() + d.b.len() + d.sender.len() + d.recipient.len() + d.text.len(),
        Write::PutAccount(a) => a.name.len() * 2 + 256,
        Write::RemoveAccount { key } | Write::UpdateAccount { key, .. } => key.len() + 256,
        Write::PutModerator(m) => m.account.len() + m.room.len() + m.by.len(),
        Write::RemoveModerator { account, room } => account.len() + room.len(),
        Write::PutSanction(r) => r.target.len() + r.reason.len() + r.by.len(),
        Write::RemoveSanction { .. } => 0,
        Write::PutInvite(i) => i.room.len() + i.key.len() + i.name.len(),
        Write::RemoveInvite { room, key } => room.len() + key.len(),
        Write::Audit(e) => e.actor.len() + e.action.len() + e.target.len() + e.reason.len() + e.detail.len(),
        Write::PutKey(k) => k.secret.len() + k.name.len() + k.kind.len() + 64,
        Write::RemoveKey { kind, .. } => kind.len(),
    };
    std::mem::size_of::<WriteJob>() + 64 + strings
}

/// A read waiting for a reader.
enum ReadJob {
    /// A page of a room's history.
    History { q: HistoryQuery, done: Completion<Result<Page, StoreError>> },
    /// A page of a private conversation.
    Direct { q: DirectQuery, done: Completion<Result<DirectPage, StoreError>> },
    /// A page of the audit log.
    Audit { q: AuditQuery, done: Completion<Result<(Vec<AuditEntry>, bool), StoreError>> },
}

impl ReadJob {
    /// Fails the read without running it.
    fn fail(self, why: &str) {
        let e = || StoreError::Unavailable(why.to_owned());
        match self {
            ReadJob::History { done, .. } => done(Err(e())),
            ReadJob::Direct { done, .. } => done(Err(e())),
            ReadJob::Audit { done, .. } => done(Err(e())),
        }
    }
}

/// Knobs that tests turn; the server uses the defaults.
#[derive(Debug, Clone, Copy)]
struct Tuning {
    write_queue: usize,
    queue_bytes: usize,
    /// `PRAGMA max_page_count` on the writer (tests: a full disk as SQLite
    /// itself reports it, SQLITE_FULL, which root cannot bypass).
    max_pages: Option<u64>,
    /// Rows per chore chunk.
    chunk: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { write_queue: WRITE_QUEUE, queue_bytes: QUEUE_BYTES, max_pages: None, chunk: CHUNK }
    }
}

/// A thread of the archive, and the way to know it has ended without
/// blocking on `join` forever.
struct Worker {
    name: &'static str,
    handle: JoinHandle<()>,
    /// Disconnected once the thread has ended (its sender is dropped then,
    /// even by a panic).
    ended: Receiver<()>,
}

/// The SQLite store of one server: `data_dir/chatroom.db`.
pub struct SqliteArchive {
    path: PathBuf,
    /// `None` only while dropping.
    writes: Option<SyncSender<WriteJob>>,
    /// Bytes of the writes queued or being written.
    queued: Arc<AtomicUsize>,
    queue_bytes: usize,
    reads: Option<SyncSender<ReadJob>>,
    /// Behind a mutex only so the archive is `Sync` (a `Receiver` is not);
    /// used by `drop` alone.
    workers: Mutex<Vec<Worker>>,
    log: Logger,
}

impl std::fmt::Debug for SqliteArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteArchive").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteArchive {
    /// Opens (creating) `dir/chatroom.db`, creating `dir` (mode 0700) if
    /// missing (the file itself is created 0600); runs migrations; refuses a
    /// corrupt file or a newer schema (PRAGMA user_version) with an error
    /// naming the file. Starts the writer and reader threads.
    ///
    /// Only the file's header and schema are checked at open (a full
    /// `PRAGMA quick_check` reads the whole file: seconds for a large one);
    /// damage deeper in the file shows as failed reads and writes.
    ///
    /// # Errors
    ///
    /// [`StoreError::CreateDir`] (the directory or file cannot be created),
    /// [`StoreError::Corrupt`], [`StoreError::NewerSchema`],
    /// [`StoreError::Open`] (anything else SQLite refused).
    pub fn open(dir: &Path, log: Logger) -> Result<Self, StoreError> {
        Self::open_tuned(dir, log, Tuning::default())
    }

    fn open_tuned(dir: &Path, log: Logger, tuning: Tuning) -> Result<Self, StoreError> {
        if !dir.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
        }
        let path = dir.join(DB_FILE);
        // Created here so that it (and the -wal and -shm files, which
        // SQLite gives the main file's mode) is private: history is.
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(source) => return Err(StoreError::CreateDir { path, source }),
        }
        let conn = open_writer(&path)?;
        let conn_read_only = conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false);
        if let Some(pages) = tuning.max_pages {
            let current: i64 =
                conn.pragma_query_value(None, "page_count", |r| r.get(0)).map_err(|e| open_error(&path, e))?;
            let pages = i64::try_from(pages).unwrap_or(i64::MAX).saturating_add(current);
            conn.pragma_update(None, "max_page_count", pages).map_err(|e| open_error(&path, e))?;
        }
        // Removals a stop interrupted go on.
        let chores = unfinished_purges(&conn).map_err(|e| open_error(&path, e))?;
        let readers = (0..READERS).map(|_| open_reader(&path)).collect::<Result<Vec<_>, _>>()?;

        let log = log.new(o!("db" => path.display().to_string()));
        let mut workers = Vec::with_capacity(READERS + 1);
        let (writes, write_rx) = mpsc::sync_channel(tuning.write_queue);
        let writer_log = log.clone();
        workers.push(spawn(WRITER, move || writer_loop(conn, &write_rx, chores, tuning.chunk.max(1), &writer_log))?);
        let (reads, read_rx) = mpsc::sync_channel(READ_QUEUE);
        let read_rx = Arc::new(Mutex::new(read_rx));
        for conn in readers {
            let rx = Arc::clone(&read_rx);
            let reader_log = log.clone();
            workers.push(spawn("archive-reader", move || reader_loop(&conn, &rx, &reader_log))?);
        }
        // SQLite falls back to read-only where the OS refuses writing (a
        // read-only mount, another owner): the server runs, every write is
        // refused (nacks, never acks). Said once here, loudly.
        if conn_read_only {
            warn!(log, "the history database is read-only: every write will fail");
        }
        info!(log, "history store open"; "schema" => SCHEMA_VERSION);
        Ok(Self {
            path,
            writes: Some(writes),
            queued: Arc::new(AtomicUsize::new(0)),
            queue_bytes: tuning.queue_bytes,
            reads: Some(reads),
            workers: Mutex::new(workers),
            log,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a read for the reader threads (a full queue fails it at once).
    fn read(&self, job: ReadJob) {
        let Some(reads) = &self.reads else { return job.fail("the store is shutting down") };
        match reads.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => job.fail("history queue full"),
            Err(TrySendError::Disconnected(job)) => job.fail("the reader threads have stopped"),
        }
    }

    /// A short-lived read-only connection for the blocking start-up reads.
    fn reader(&self) -> Result<Connection, StoreError> {
        open_reader(&self.path).map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

impl Archive for SqliteArchive {
    fn write(&self, w: Write, done: Completion<Result<WriteOutcome, StoreError>>) {
        let Some(writes) = &self.writes else {
            return done(Err(StoreError::Unavailable("the store is shutting down".into())));
        };
        let bytes = weight(&w);
        let before = self.queued.fetch_add(bytes, Ordering::AcqRel);
        let ticket = Ticket { bytes, queued: Arc::clone(&self.queued) };
        if before.saturating_add(bytes) > self.queue_bytes {
            drop(ticket);
            return done(Err(StoreError::Unavailable("write queue full".into())));
        }
        match writes.try_send(WriteJob { w, done, _ticket: ticket }) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => (job.done)(Err(StoreError::Unavailable("write queue full".into()))),
            Err(TrySendError::Disconnected(job)) => {
                (job.done)(Err(StoreError::Unavailable("the writer thread has stopped".into())));
            }
        }
    }

    fn history(&self, q: HistoryQuery, done: Completion<Result<Page, StoreError>>) {
        self.read(ReadJob::History { q, done });
    }

    fn direct_history(&self, q: DirectQuery, done: Completion<Result<DirectPage, StoreError>>) {
        self.read(ReadJob::Direct { q, done });
    }

    fn audit(&self, q: AuditQuery, done: Completion<Result<(Vec<AuditEntry>, bool), StoreError>>) {
        self.read(ReadJob::Audit { q, done });
    }

    fn standing(&self) -> Result<Standing, StoreError> {
        read_standing(&self.reader()?).map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn rooms(&self) -> Result<Vec<RoomRecord>, StoreError> {
        read_rooms(&self.reader()?).map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn max_id(&self) -> Result<u64, StoreError> {
        read_max_id(&self.reader()?).map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

impl Drop for SqliteArchive {
    /// Closes the channels: the readers answer what is queued and end, then
    /// the writer commits what is queued, calls its completions and ends;
    /// waits for them at most 10 s in all (`SHUTDOWN_WAIT`). The writer's
    /// connection closes last: only the last connection checkpoints the WAL
    /// into the database and removes the -wal and -shm files (a read-only
    /// one cannot), so a clean stop leaves one file.
    fn drop(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        let workers = self.workers.get_mut().unwrap_or_else(PoisonError::into_inner);
        drop(self.reads.take());
        let writer = workers.iter().position(|w| w.name == WRITER);
        let writer = writer.map(|i| workers.remove(i));
        for worker in workers.drain(..) {
            stop(worker, deadline, &self.log);
        }
        drop(self.writes.take());
        if let Some(worker) = writer {
            stop(worker, deadline, &self.log);
        }
    }
}

/// Waits for a worker until `deadline`, then joins it (or leaves it, said).
fn stop(worker: Worker, deadline: Instant, log: &Logger) {
    let left = deadline.saturating_duration_since(Instant::now());
    match worker.ended.recv_timeout(left) {
        Err(RecvTimeoutError::Disconnected) => {
            if worker.handle.join().is_err() {
                error!(log, "a history store thread panicked"; "thread" => worker.name);
            }
        }
        Ok(()) | Err(RecvTimeoutError::Timeout) => {
            warn!(log, "a history store thread did not stop in time"; "thread" => worker.name);
        }
    }
}

/// Starts a named thread that signals its end through a dropped sender.
fn spawn(name: &'static str, body: impl FnOnce() + Send + 'static) -> Result<Worker, StoreError> {
    let (ended_tx, ended) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ended = ended_tx;
            body();
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start the {name} thread: {e}")))?;
    Ok(Worker { name, handle, ended })
}

/// Calls a completion; one that panics is logged and does not take the
/// thread down with it (every later write would fail).
fn complete<T>(done: Completion<T>, v: T, log: &Logger) {
    if catch_unwind(AssertUnwindSafe(move || done(v))).is_err() {
        error!(log, "a history store completion panicked");
    }
}

/// An error at open, naming the file; a file SQLite does not recognise is
/// [`StoreError::Corrupt`].
fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt { path: path.to_path_buf() },
        _ => StoreError::Open { path: path.to_path_buf(), source: e },
    }
}

/// The writer's connection: checked, in WAL mode, migrated.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let err = |e| open_error(path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    // The first read of the file: a foreign one fails here (NOTADB).
    let newer = |found| StoreError::NewerSchema { path: path.to_path_buf(), found, supported: SCHEMA_VERSION };
    let found = schema::version(&conn).map_err(err)?;
    if found > SCHEMA_VERSION {
        return Err(newer(found));
    }
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0)).map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{}: the file system does not support WAL (journal mode {mode})",
            path.display()
        )));
    }
    // FULL: a commit syncs the WAL, so an acknowledged message survives a
    // power cut, not only a crash of the server.
    conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(err)?;
    // A deleted message (or an edit's old text) is overwritten with zeros,
    // not left in a free page where a backup would copy it.
    conn.pragma_update(None, "secure_delete", true).map_err(err)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(err)?;
    // A checkpoint restarts the WAL from its start but keeps its size; a
    // burst (or a reader holding a snapshot) can grow it: give the space
    // back past this.
    conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES).map_err(err)?;
    match schema::migrate(&mut conn).map_err(err)? {
        found if found > SCHEMA_VERSION => Err(newer(found)),
        _ => Ok(conn),
    }
}

/// Rooms removed whose messages were not all deleted yet.
fn unfinished_purges(conn: &Connection) -> rusqlite::Result<VecDeque<Chore>> {
    let mut stmt = conn.prepare("SELECT id FROM rooms WHERE name IS NULL")?;
    let ids = stmt.query_map([], |r| r.get(0))?;
    ids.map(|id| id.map(|room_id| Chore::Purge { room_id })).collect()
}

/// A read-only connection (history pages, the start-up reads, backups).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let err = |e| open_error(path, e);
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(err)?;
    Ok(conn)
}

/// Rate limit for the writer's failure lines: at most one per window, each
/// saying how many failed batches went unlogged since the last one.
#[derive(Debug)]
pub(crate) struct FailureLog {
    window: Duration,
    last_line: Option<Instant>,
    suppressed: u64,
    failing: bool,
}

impl FailureLog {
    pub(crate) fn new(window: Duration) -> Self {
        Self { window, last_line: None, suppressed: 0, failing: false }
    }

    /// A batch failed at `now`: `Some(failures not logged since the last
    /// line)` when this one is to be logged.
    pub(crate) fn failed(&mut self, now: Instant) -> Option<u64> {
        self.failing = true;
        if self.last_line.is_none_or(|t| now.saturating_duration_since(t) >= self.window) {
            self.last_line = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// A batch committed: `Some(failures not logged)` when it ends a run of
    /// failures (worth one line: the store works again).
    pub(crate) fn succeeded(&mut self) -> Option<u64> {
        std::mem::take(&mut self.failing).then(|| std::mem::take(&mut self.suppressed))
    }
}

/// Work the writer does in chunks of [`CHUNK`] rows, one chunk per
/// transaction (together with the next batch of writes), so that a large
/// deletion never holds up other rooms' acknowledgements for long: in one
/// statement, a prune of 15,000 rows took 0.3 s and the removal of a room of
/// 50,000 messages 0.6 s, during which every append waited.
enum Chore {
    /// Deleting a room's messages older than `before`; completes with the
    /// total once a chunk comes back short.
    Prune { room_id: i64, before: i64, pruned: u64, done: Completion<Result<WriteOutcome, StoreError>> },
    /// Deleting the messages of a removed room, then its row. The row lost
    /// its name when the removal committed (the name is free again, history
    /// and edits no longer see the room); unfinished purges resume at the
    /// next open.
    Purge { room_id: i64 },
}

impl Chore {
    fn step(&self) -> ChoreStep {
        match self {
            Self::Prune { room_id, before, .. } => ChoreStep::Prune { room_id: *room_id, before: *before },
            Self::Purge { room_id } => ChoreStep::Purge { room_id: *room_id },
        }
    }
}

/// The next chunk of a [`Chore`].
#[derive(Clone, Copy)]
enum ChoreStep {
    Prune { room_id: i64, before: i64 },
    Purge { room_id: i64 },
}

/// What a write did inside its batch's transaction.
enum Step {
    /// Its outcome, reported once the batch commits.
    Complete(Result<WriteOutcome, StoreError>),
    /// A prune: the deletion follows in chunks, then the completion.
    Prune { room_id: i64, before: i64 },
    /// A room removed (Done once committed); its messages follow in chunks.
    Removed { room_id: i64 },
}

/// The writer: group commit until every sender is gone and the queue is
/// empty, then return (the connection closes, checkpointing the WAL).
/// Between batches, one chunk of the oldest chore rides along.
fn writer_loop(mut conn: Connection, rx: &Receiver<WriteJob>, mut chores: VecDeque<Chore>, chunk: usize, log: &Logger) {
    let mut failures = FailureLog::new(FAILURE_LOG_WINDOW);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_failed = false;
    loop {
        // Block for a write unless a chore waits; after a failure a chore
        // waits a while (a broken disk is not retried in a tight loop).
        let first = match (chores.is_empty(), last_failed) {
            (true, _) => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            (false, true) => rx.recv_timeout(CHORE_RETRY),
            (false, false) => rx.recv_timeout(Duration::ZERO),
        };
        match first {
            Ok(job) => batch.push(job),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        match apply_batch(&mut conn, &batch, chores.front().map(Chore::step), chunk) {
            Ok((steps, chore_rows)) => {
                last_failed = false;
                if let Some(suppressed) = failures.succeeded() {
                    info!(log, "history store writes succeed again"; "failures_not_logged" => suppressed);
                }
                // The chore's chunk first: it is the front one, before any
                // this batch adds.
                if let Some(rows) = chore_rows {
                    if let Some(Chore::Prune { pruned, .. }) = chores.front_mut() {
                        *pruned += rows as u64;
                    }
                    if rows < chunk
                        && let Some(Chore::Prune { pruned, done, .. }) = chores.pop_front()
                    {
                        complete(done, Ok(WriteOutcome::Pruned(pruned)), log);
                    }
                }
                for (job, step) in batch.drain(..).zip(steps) {
                    match step {
                        Step::Complete(outcome) => job.finish(outcome, log),
                        Step::Prune { room_id, before } => {
                            chores.push_back(Chore::Prune { room_id, before, pruned: 0, done: job.done });
                        }
                        Step::Removed { room_id } => {
                            job.finish(Ok(WriteOutcome::Done), log);
                            chores.push_back(Chore::Purge { room_id });
                        }
                    }
                }
            }
            Err(e) => {
                last_failed = true;
                if let Some(suppressed) = failures.failed(Instant::now()) {
                    error!(log, "history store write failed; writes are refused until one succeeds";
                        "error" => %e, "batch" => batch.len(), "failures_not_logged" => suppressed);
                }
                let cause = e.to_string();
                for job in batch.drain(..) {
                    job.finish(Err(StoreError::Unavailable(cause.clone())), log);
                }
                // A prune fails as a whole (what it removed stays removed;
                // the next retention pass goes on); a purge is retried.
                if matches!(chores.front(), Some(Chore::Prune { .. }))
                    && let Some(Chore::Prune { done, .. }) = chores.pop_front()
                {
                    complete(done, Err(StoreError::Unavailable(cause)), log);
                }
            }
        }
    }
    // Every queued write is done. Prunes under way fail; purges resume at
    // the next open.
    for chore in chores {
        if let Chore::Prune { done, .. } = chore {
            complete(done, Err(StoreError::Unavailable("the store is shutting down".into())), log);
        }
    }
}

/// Whether an error concerns only the one write that caused it (SQLite then
/// undoes only that statement; the transaction goes on).
fn refused(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::ToSqlConversionFailure(_))
        || matches!(e.sqlite_error_code(), Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig))
}

/// A u64 as SQLite's i64; ids and times past i64::MAX are refused.
fn to_sql(v: u64) -> rusqlite::Result<i64> {
    i64::try_from(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// An i64 read from the file as a u64 (a negative one is an error, not 0).
fn from_sql(v: i64, column: usize) -> rusqlite::Result<u64> {
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, v))
}

/// The statements a batch uses, each prepared at most once per batch.
#[derive(Clone, Copy)]
enum Sql {
    Append,
    SenderOf,
    Edit,
    Delete,
    Upsert,
    RemoveRoom,
    RoomId,
    PruneChunk,
    PurgeChunk,
    DropRoom,
    HighWater,
}

impl Sql {
    const COUNT: usize = 11;

    const fn text(self) -> &'static str {
        match self {
            // Through the room's name: no row when the room is not stored.
            Self::Append => {
                "INSERT INTO messages (id, room_id, sender, text, ts_ms, edited)
                 SELECT ?1, id, ?3, ?4, ?5, ?6 FROM rooms WHERE name = ?2"
            }
            // A removed room's messages are gone, even while being purged.
            Self::SenderOf => {
                "SELECT m.sender, r.name FROM messages m JOIN rooms r ON r.id = m.room_id
                 WHERE m.id = ?1 AND r.name IS NOT NULL"
            }
            Self::Edit => "UPDATE messages SET text = ?2, edited = 1 WHERE id = ?1",
            Self::Delete => "DELETE FROM messages WHERE id = ?1",
            Self::Upsert => {
                "INSERT INTO rooms (name, topic, history, voice, owner, history_days, created_ms, empty_since_ms, from_config,
                   invite_only)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (name) DO UPDATE SET topic = excluded.topic, history = excluded.history,
                   voice = excluded.voice, owner = excluded.owner, history_days = excluded.history_days,
                   created_ms = excluded.created_ms, empty_since_ms = excluded.empty_since_ms,
                   from_config = excluded.from_config, invite_only = excluded.invite_only"
            }
            // Nameless: gone for every lookup; its messages follow in chunks.
            Self::RemoveRoom => "UPDATE rooms SET name = NULL WHERE name = ?1 RETURNING id",
            Self::RoomId => "SELECT id FROM rooms WHERE name = ?1",
            // In id order through messages(room_id, id): a chunk stops
            // after `?3` rows instead of scanning the room.
            Self::PruneChunk => {
                "DELETE FROM messages WHERE id IN
                 (SELECT id FROM messages WHERE room_id = ?1 AND ts_ms < ?2 ORDER BY id LIMIT ?3)"
            }
            Self::PurgeChunk => {
                "DELETE FROM messages WHERE id IN
                 (SELECT id FROM messages WHERE room_id = ?1 ORDER BY id LIMIT ?2)"
            }
            Self::DropRoom => "DELETE FROM rooms WHERE id = ?1",
            // Before anything is deleted: ids are never handed out twice.
            Self::HighWater => {
                "UPDATE high_water SET max_id = max(max_id, coalesce((SELECT max(id) FROM messages), 0),
                   coalesce((SELECT max(id) FROM direct_messages), 0)) WHERE only = 1"
            }
        }
    }
}

/// Statements prepared on first use within one transaction.
struct Prepared<'c> {
    conn: &'c Connection,
    slots: [Option<CachedStatement<'c>>; Sql::COUNT],
}

impl<'c> Prepared<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self { conn, slots: std::array::from_fn(|_| None) }
    }

    fn get(&mut self, sql: Sql) -> rusqlite::Result<&mut CachedStatement<'c>> {
        let slot = &mut self.slots[sql as usize];
        if slot.is_none() {
            // Cached across batches: parsing costs more than running them.
            *slot = Some(self.conn.prepare_cached(sql.text())?);
        }
        slot.as_mut().ok_or(rusqlite::Error::InvalidQuery)
    }
}

/// Applies a batch, and one chunk of a chore, in one transaction: what
/// each write did and how many rows the chunk deleted, or the error that
/// failed the whole transaction (nothing of it is kept then).
fn apply_batch(
    conn: &mut Connection,
    batch: &[WriteJob],
    chore: Option<ChoreStep>,
    chunk: usize,
) -> rusqlite::Result<(Vec<Step>, Option<usize>)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut steps = Vec::with_capacity(batch.len());
    let chore_rows;
    {
        let mut st = Prepared::new(&tx);
        for job in batch {
            match apply_one(&mut st, &job.w) {
                Ok(step) => steps.push(step),
                Err(e) if refused(&e) => steps.push(Step::Complete(Err(StoreError::Rejected(e.to_string())))),
                Err(e) => return Err(e),
            }
        }
        chore_rows = chore.map(|c| chore_step(&mut st, c, chunk)).transpose()?;
    }
    tx.commit()?;
    Ok((steps, chore_rows))
}

/// One chunk of a chore: the rows deleted (fewer than `chunk`: finished).
fn chore_step(st: &mut Prepared<'_>, c: ChoreStep, chunk: usize) -> rusqlite::Result<usize> {
    let limit = i64::try_from(chunk).unwrap_or(i64::MAX);
    st.get(Sql::HighWater)?.execute([])?;
    match c {
        ChoreStep::Prune { room_id, before } => st.get(Sql::PruneChunk)?.execute(params![room_id, before, limit]),
        ChoreStep::Purge { room_id } => {
            let rows = st.get(Sql::PurgeChunk)?.execute(params![room_id, limit])?;
            if rows < chunk {
                st.get(Sql::DropRoom)?.execute([room_id])?;
            }
            Ok(rows)
        }
    }
}

/// One write inside the batch's transaction. Appends leave the high-water
/// mark alone (the highest message is the mark); a delete raises it first.
fn apply_one(st: &mut Prepared<'_>, w: &Write) -> rusqlite::Result<Step> {
    let done = |o| Step::Complete(Ok(o));
    Ok(match w {
        Write::Append(m) => {
            let id = to_sql(m.id)?;
            let n = st.get(Sql::Append)?.execute(params![id, m.room, m.sender, m.text, to_sql(m.ts_ms)?, m.edited])?;
            if n == 0 { done(WriteOutcome::NotFound) } else { done(WriteOutcome::Done) }
        }
        Write::Edit { id, sender, text } => {
            let id = to_sql(*id)?;
            let outcome = sender_check(st, id, sender)?;
            if matches!(outcome, WriteOutcome::Changed { .. }) {
                st.get(Sql::Edit)?.execute(params![id, text])?;
            } else if outcome == WriteOutcome::ChangedDirect {
                st.conn
                    .prepare_cached("UPDATE direct_messages SET text = ?2, edited = 1 WHERE id = ?1")?
                    .execute(params![id, text])?;
            }
            done(outcome)
        }
        Write::Delete { id, sender } => {
            let id = to_sql(*id)?;
            let outcome = sender_check(st, id, sender)?;
            if matches!(outcome, WriteOutcome::Changed { .. }) {
                st.get(Sql::HighWater)?.execute([])?;
                st.get(Sql::Delete)?.execute([id])?;
            } else if outcome == WriteOutcome::ChangedDirect {
                st.get(Sql::HighWater)?.execute([])?;
                st.conn.prepare_cached("DELETE FROM direct_messages WHERE id = ?1")?.execute([id])?;
            }
            done(outcome)
        }
        Write::UpsertRoom(r) => {
            st.get(Sql::Upsert)?.execute(params![
                r.name,
                r.topic,
                r.history,
                r.voice,
                r.owner,
                r.history_days,
                to_sql(r.created_ms)?,
                r.empty_since_ms.map(to_sql).transpose()?,
                r.from_config,
                r.invite_only,
            ])?;
            done(WriteOutcome::Done)
        }
        Write::RemoveRoom { name } => {
            let room_id: Option<i64> = st.get(Sql::RemoveRoom)?.query_row([name], |r| r.get(0)).optional()?;
            match room_id {
                None => done(WriteOutcome::NotFound),
                Some(room_id) => Step::Removed { room_id },
            }
        }
        Write::Prune { room, before_ms } => {
            let room_id: Option<i64> = st.get(Sql::RoomId)?.query_row([room], |r| r.get(0)).optional()?;
            match room_id {
                None => done(WriteOutcome::NotFound),
                Some(room_id) => Step::Prune { room_id, before: i64::try_from(*before_ms).unwrap_or(i64::MAX) },
            }
        }
        other => done(apply_standing(st.conn, other)?),
    })
}

/// The writes about people and private messages: few, each its own
/// statement (cached by the connection).
fn apply_standing(conn: &Connection, w: &Write) -> rusqlite::Result<WriteOutcome> {
    let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| conn.prepare_cached(sql)?.execute(p);
    let changed = |n: usize| if n == 0 { WriteOutcome::NotFound } else { WriteOutcome::Done };
    Ok(match w {
        Write::AppendDirect(d) => {
            let (a, b) = if d.a <= d.b { (&d.a, &d.b) } else { (&d.b, &d.a) };
            run(
                "INSERT INTO direct_messages (id, a, b, sender, recipient, text, ts_ms, edited)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![to_sql(d.id)?, a, b, d.sender, d.recipient, d.text, to_sql(d.ts_ms)?, d.edited],
            )?;
            WriteOutcome::Done
        }
        Write::PutAccount(r) => {
            run(
                "INSERT INTO accounts (key, name, phc, reset_phc, reset_until_ms, admin, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, phc = excluded.phc,
                   reset_phc = excluded.reset_phc, reset_until_ms = excluded.reset_until_ms,
                   admin = excluded.admin, created_ms = excluded.created_ms",
                params![
                    r.key,
                    r.name,
                    r.phc,
                    r.reset_phc,
                    r.reset_until_ms.map(to_sql).transpose()?,
                    r.admin,
                    to_sql(r.created_ms)?
                ],
            )?;
            WriteOutcome::Done
        }
        Write::UpdateAccount { key, field } => changed(match field {
            AccountField::Password(phc) => run(
                "UPDATE accounts SET phc = ?2, reset_phc = NULL, reset_until_ms = NULL WHERE key = ?1",
                params![key, phc],
            )?,
            AccountField::Reset { phc, until_ms } => run(
                "UPDATE accounts SET phc = NULL, reset_phc = ?2, reset_until_ms = ?3 WHERE key = ?1",
                params![key, phc, to_sql(*until_ms)?],
            )?,
            AccountField::ResetSpent => {
                run("UPDATE accounts SET reset_phc = NULL, reset_until_ms = NULL WHERE key = ?1", params![key])?
            }
            AccountField::Admin(admin) => run("UPDATE accounts SET admin = ?2 WHERE key = ?1", params![key, admin])?,
        }),
        Write::RemoveAccount { key } => {
            // Ids of removed private messages are never handed out again.
            conn.prepare_cached(Sql::HighWater.text())?.execute([])?;
            run("DELETE FROM direct_messages WHERE a = ?1 OR b = ?1", params![key])?;
            changed(run("DELETE FROM accounts WHERE key = ?1", params![key])?)
        }
        Write::PutModerator(m) => {
            run(
                "INSERT OR REPLACE INTO moderators (account, room, granted_by, at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![m.account, m.room, m.by, to_sql(m.at_ms)?],
            )?;
            WriteOutcome::Done
        }
        Write::RemoveModerator { account, room } => {
            changed(run("DELETE FROM moderators WHERE account = ?1 AND room = ?2", params![account, room])?)
        }
        Write::PutSanction(r) => {
            run(
                "INSERT OR REPLACE INTO sanctions (id, kind, target, room, reason, by, since_ms, until_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    to_sql(r.id)?,
                    r.kind,
                    r.target,
                    r.room,
                    r.reason,
                    r.by,
                    to_sql(r.since_ms)?,
                    r.until_ms.map(to_sql).transpose()?
                ],
            )?;
            WriteOutcome::Done
        }
        Write::RemoveSanction { id } => changed(run("DELETE FROM sanctions WHERE id = ?1", params![to_sql(*id)?])?),
        Write::PutInvite(i) => {
            run(
                "INSERT OR REPLACE INTO invites (room, key, name) VALUES (?1, ?2, ?3)",
                params![i.room, i.key, i.name],
            )?;
            WriteOutcome::Done
        }
        Write::RemoveInvite { room, key } => {
            changed(run("DELETE FROM invites WHERE room = ?1 AND key = ?2", params![room, key])?)
        }
        Write::Audit(e) => {
            run(
                "INSERT INTO audit (ts_ms, actor, action, target, room, reason, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![to_sql(e.ts_ms)?, e.actor, e.action, e.target, e.room, e.reason, e.detail],
            )?;
            WriteOutcome::Done
        }
        Write::PutKey(k) => {
            run(
                "INSERT OR REPLACE INTO keyring (kind, id, secret, invite, name, room, uses_left, uses, expires_ms, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    k.kind,
                    to_sql(k.id)?,
                    k.secret,
                    k.invite.map(to_sql).transpose()?,
                    k.name,
                    k.room,
                    k.uses_left,
                    k.uses,
                    k.expires_ms.map(to_sql).transpose()?,
                    to_sql(k.created_ms)?
                ],
            )?;
            WriteOutcome::Done
        }
        Write::RemoveKey { kind, id } => {
            // An invite goes with the keys issued through it.
            if kind == "invite" {
                run("DELETE FROM keyring WHERE kind = 'issued' AND invite = ?1", params![to_sql(*id)?])?;
            }
            changed(run("DELETE FROM keyring WHERE kind = ?1 AND id = ?2", params![kind, to_sql(*id)?])?)
        }
        // The others have their own statements (`apply_one`).
        _ => WriteOutcome::NotFound,
    })
}

/// `Changed` (with the message's room) when message `id` exists and
/// `sender` sent it.
fn sender_check(st: &mut Prepared<'_>, id: i64, sender: &str) -> rusqlite::Result<WriteOutcome> {
    let stored: Option<(String, String)> =
        st.get(Sql::SenderOf)?.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    if let Some((s, room)) = stored {
        return Ok(if s == sender { WriteOutcome::Changed { room } } else { WriteOutcome::NotYours });
    }
    let direct: Option<String> = st
        .conn
        .prepare_cached("SELECT sender FROM direct_messages WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(match direct {
        None => WriteOutcome::NotFound,
        Some(s) if s == sender => WriteOutcome::ChangedDirect,
        Some(_) => WriteOutcome::NotYours,
    })
}

/// A reader: answers queries until the channel closes.
fn reader_loop(conn: &Connection, rx: &Mutex<Receiver<ReadJob>>, log: &Logger) {
    loop {
        // The lock is held only while waiting for a job; nothing panics
        // under it, but a poisoned one is as good as any.
        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let unavailable = |e: rusqlite::Error| StoreError::Unavailable(e.to_string());
        match job {
            ReadJob::History { q, done } => complete(done, read_page(conn, &q).map_err(unavailable), log),
            ReadJob::Direct { q, done } => complete(done, read_direct(conn, &q).map_err(unavailable), log),
            ReadJob::Audit { q, done } => complete(done, read_audit(conn, &q).map_err(unavailable), log),
        }
    }
}

/// One page of history (see [`HistoryQuery`]).
pub(crate) fn read_page(conn: &Connection, q: &HistoryQuery) -> rusqlite::Result<Page> {
    let room_id: Option<i64> =
        conn.prepare("SELECT id FROM rooms WHERE name = ?1")?.query_row([&q.room], |r| r.get(0)).optional()?;
    let Some(room_id) = room_id else { return Ok(Page::default()) };
    let limit = q.limit.min(MAX_PAGE) as usize;
    // Ids past i64::MAX are never stored: such a bound is "no bound".
    let bound = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let before = bound(q.before).unwrap_or(i64::MAX);
    let forward = q.after.is_some();
    let sql = if forward {
        "SELECT id, sender, text, ts_ms, edited FROM messages
         WHERE room_id = ?1 AND id > ?2 AND id < ?3 ORDER BY id ASC LIMIT ?4"
    } else {
        "SELECT id, sender, text, ts_ms, edited FROM messages
         WHERE room_id = ?1 AND id > ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4"
    };
    let after = bound(q.after).unwrap_or(-1);
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params![room_id, after, before, limit as i64 + 1], |r| {
        Ok(StoredMessage {
            id: from_sql(r.get(0)?, 0)?,
            room: q.room.clone(),
            sender: r.get(1)?,
            text: r.get(2)?,
            ts_ms: from_sql(r.get(3)?, 3)?,
            edited: r.get(4)?,
        })
    })?;
    let (messages, more) = page_of(rows.collect::<rusqlite::Result<Vec<_>>>()?, limit, forward);
    Ok(Page { messages, more })
}

/// Rows read `limit + 1` at most, in the paging direction, as a page: the
/// first `limit` oldest first, and whether more lie beyond.
fn page_of<T>(mut rows: Vec<T>, limit: usize, forward: bool) -> (Vec<T>, bool) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    if !forward {
        rows.reverse();
    }
    (rows, more)
}

/// One page of a private conversation (see [`DirectQuery`]).
fn read_direct(conn: &Connection, q: &DirectQuery) -> rusqlite::Result<DirectPage> {
    let (a, b) = if q.a <= q.b { (&q.a, &q.b) } else { (&q.b, &q.a) };
    let limit = q.limit.min(MAX_PAGE) as usize;
    let bound = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let before = bound(q.before).unwrap_or(i64::MAX);
    let after = bound(q.after).unwrap_or(-1);
    let forward = q.after.is_some();
    let sql = if forward {
        "SELECT id, sender, recipient, text, ts_ms, edited FROM direct_messages
         WHERE a = ?1 AND b = ?2 AND id > ?3 AND id < ?4 ORDER BY id ASC LIMIT ?5"
    } else {
        "SELECT id, sender, recipient, text, ts_ms, edited FROM direct_messages
         WHERE a = ?1 AND b = ?2 AND id > ?3 AND id < ?4 ORDER BY id DESC LIMIT ?5"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![a, b, after, before, limit as i64 + 1], |r| {
        Ok(StoredDirect {
            id: from_sql(r.get(0)?, 0)?,
            a: a.clone(),
            b: b.clone(),
            sender: r.get(1)?,
            recipient: r.get(2)?,
            text: r.get(3)?,
            ts_ms: from_sql(r.get(4)?, 4)?,
            edited: r.get(5)?,
        })
    })?;
    let (messages, more) = page_of(rows.collect::<rusqlite::Result<Vec<_>>>()?, limit, forward);
    Ok(DirectPage { messages, more })
}

/// A page of the audit log, newest first (see [`AuditQuery`]).
fn read_audit(conn: &Connection, q: &AuditQuery) -> rusqlite::Result<(Vec<AuditEntry>, bool)> {
    let limit = q.limit.min(MAX_PAGE) as usize;
    let before = q.before.map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX));
    // The room filter as a JSON array, so one statement serves any number.
    let rooms = q.rooms.as_ref().map(|r| serde_json::to_string(r).unwrap_or_else(|_| "[]".into()));
    let mut stmt = conn.prepare_cached(
        "SELECT id, ts_ms, actor, action, target, room, reason, detail FROM audit
         WHERE id < ?1 AND (?2 IS NULL OR room IN (SELECT value FROM json_each(?2)))
         ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![before, rooms, limit as i64 + 1], |r| {
        Ok(AuditEntry {
            id: from_sql(r.get(0)?, 0)?,
            ts_ms: from_sql(r.get(1)?, 1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            room: r.get(5)?,
            reason: r.get(6)?,
            detail: r.get(7)?,
        })
    })?;
    let mut entries = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    Ok((entries, more))
}

/// Accounts, roles, sanctions and invite lists.
fn read_standing(conn: &Connection) -> rusqlite::Result<Standing> {
    let opt_u64 = |v: Option<i64>, c: usize| v.map(|v| from_sql(v, c)).transpose();
    let accounts = conn
        .prepare("SELECT key, name, phc, reset_phc, reset_until_ms, admin, created_ms FROM accounts")?
        .query_map([], |r| {
            Ok(AccountRecord {
                key: r.get(0)?,
                name: r.get(1)?,
                phc: r.get(2)?,
                reset_phc: r.get(3)?,
                reset_until_ms: opt_u64(r.get(4)?, 4)?,
                admin: r.get(5)?,
                created_ms: from_sql(r.get(6)?, 6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let moderators = conn
        .prepare("SELECT account, room, granted_by, at_ms FROM moderators")?
        .query_map([], |r| {
            Ok(ModeratorRecord { account: r.get(0)?, room: r.get(1)?, by: r.get(2)?, at_ms: from_sql(r.get(3)?, 3)? })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let sanctions = conn
        .prepare("SELECT id, kind, target, room, reason, by, since_ms, until_ms FROM sanctions ORDER BY id")?
        .query_map([], |r| {
            Ok(SanctionRecord {
                id: from_sql(r.get(0)?, 0)?,
                kind: r.get(1)?,
                target: r.get(2)?,
                room: r.get(3)?,
                reason: r.get(4)?,
                by: r.get(5)?,
                since_ms: from_sql(r.get(6)?, 6)?,
                until_ms: opt_u64(r.get(7)?, 7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let invites = conn
        .prepare("SELECT room, key, name FROM invites")?
        .query_map([], |r| Ok(InviteRecord { room: r.get(0)?, key: r.get(1)?, name: r.get(2)? }))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let keys = conn
        .prepare("SELECT kind, id, secret, invite, name, room, uses_left, uses, expires_ms, created_ms FROM keyring")?
        .query_map([], |r| {
            Ok(KeyRecord {
                kind: r.get(0)?,
                id: from_sql(r.get(1)?, 1)?,
                secret: r.get(2)?,
                invite: opt_u64(r.get(3)?, 3)?,
                name: r.get(4)?,
                room: r.get(5)?,
                uses_left: r.get(6)?,
                uses: r.get(7)?,
                expires_ms: opt_u64(r.get(8)?, 8)?,
                created_ms: from_sql(r.get(9)?, 9)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Standing { accounts, moderators, sanctions, invites, keys })
}

/// Every stored room, by name.
fn read_rooms(conn: &Connection) -> rusqlite::Result<Vec<RoomRecord>> {
    let mut stmt = conn.prepare(
        "SELECT name, topic, history, voice, owner, history_days, created_ms, empty_since_ms, from_config, invite_only
         FROM rooms WHERE name IS NOT NULL ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(RoomRecord {
            name: r.get(0)?,
            topic: r.get(1)?,
            history: r.get(2)?,
            voice: r.get(3)?,
            owner: r.get(4)?,
            history_days: r.get(5)?,
            created_ms: from_sql(r.get(6)?, 6)?,
            empty_since_ms: r.get::<_, Option<i64>>(7)?.map(|v| from_sql(v, 7)).transpose()?,
            from_config: r.get(8)?,
            invite_only: r.get(9)?,
        })
    })?;
    rows.collect()
}

/// The highest id ever stored: the high-water mark, or a message above it
/// (none should be).
fn read_max_id(conn: &Connection) -> rusqlite::Result<u64> {
    let v: i64 = conn.query_row(
        "SELECT max(max_id, coalesce((SELECT max(id) FROM messages), 0),
                coalesce((SELECT max(id) FROM direct_messages), 0)) FROM high_water",
        [],
        |r| r.get(0),
    )?;
    from_sql(v, 0)
}

/// SQLite online backup of the database in `dir` into `dest` (safe while a
/// server runs on it: WAL lets it read a consistent snapshot without
/// stopping the writer). The copy is written beside `dest` under a temporary
/// name, synced, and linked as `dest` only when complete (mode 0600; an
/// existing `dest` is left alone and the backup fails); it is
/// a single self-contained file (rollback journal mode, no -wal needed).
///
/// # Errors
///
/// [`StoreError::Open`] or [`StoreError::Corrupt`] when the source cannot
/// be read; [`StoreError::Backup`] when the copy cannot be written.
pub fn backup(dir: &Path, dest: &Path) -> Result<(), StoreError> {
    let src_path = dir.join(DB_FILE);
    if !src_path.is_file() {
        return Err(StoreError::Open {
            path: src_path,
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some("no database here".into()),
            ),
        });
    }
    let src = open_reader(&src_path)?;
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Backup { dest: dest.to_path_buf(), source: e };
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new().prefix(".chatroom-backup-").tempfile_in(parent).map_err(|e| fail(e.into()))?;
    {
        let mut dst = Connection::open(tmp.path()).map_err(|e| fail(e.into()))?;
        {
            let copy = Backup::new(&src, &mut dst).map_err(|e| fail(e.into()))?;
            // All pages in one step: one consistent snapshot. Busy only
            // while another process holds an exclusive lock; retry a while.
            let mut tries = 0;
            loop {
                match copy.step(-1).map_err(|e| fail(e.into()))? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    _ if tries < 100 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        return Err(fail("the database stayed locked for 5 s".into()));
                    }
                }
            }
        }
        let mode: String =
            dst.pragma_update_and_check(None, "journal_mode", "delete", |r| r.get(0)).map_err(|e| fail(e.into()))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(fail(format!("the copy stayed in journal mode {mode}").into()));
        }
    }
    tmp.as_file().sync_all().map_err(|e| fail(e.into()))?;
    // Never over an existing file (another backup, the live database).
    tmp.persist_noclobber(dest).map_err(|e| fail(e.error.into()))?;
    // The rename itself is durable only once the directory is synced.
    std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| fail(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
