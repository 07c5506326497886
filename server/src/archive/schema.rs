//! The database schema as a list of migrations, applied in order.
//!
//! `PRAGMA user_version` holds how many have been applied (0: an empty or
//! new file). A migration is appended, never edited, once released.

use rusqlite::{Connection, TransactionBehavior};

/// SQL of each schema version: `MIGRATIONS[n]` takes a file from version n
/// to n + 1.
const MIGRATIONS: &[&str] = &[
    // 1: rooms, messages, the highest id ever stored.
    "CREATE TABLE rooms (
        id             INTEGER PRIMARY KEY,
        -- NULL once removed, while its messages are deleted in chunks (the
        -- name is free again at once; UNIQUE allows many NULLs).
        name           TEXT UNIQUE,
        topic          TEXT NOT NULL,
        history        INTEGER NOT NULL,
        voice          INTEGER NOT NULL,
        owner          TEXT,
        history_days   INTEGER NOT NULL,
        created_ms     INTEGER NOT NULL,
        empty_since_ms INTEGER,
        from_config    INTEGER NOT NULL
    );
    -- id is the rowid: the server id the caller assigns.
    CREATE TABLE messages (
        id      INTEGER PRIMARY KEY,
        room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        sender  TEXT NOT NULL,
        text    TEXT NOT NULL,
        ts_ms   INTEGER NOT NULL,
        edited  INTEGER NOT NULL DEFAULT 0
    );
    -- A page of one room by id, in either direction; the cascade of a
    -- room's removal.
    CREATE INDEX messages_room_id ON messages(room_id, id);
    -- The highest message id ever stored, so a deleted or pruned newest
    -- message never gives its id to another after a restart.
    CREATE TABLE high_water (
        only   INTEGER PRIMARY KEY CHECK (only = 1),
        max_id INTEGER NOT NULL
    );
    INSERT INTO high_water (only, max_id) VALUES (1, 0);",
    // 2: accounts, roles, bans and mutes, invite lists, the audit log,
    // private messages between accounts (issue 16).
    "ALTER TABLE rooms ADD COLUMN invite_only INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE accounts (
        key            TEXT PRIMARY KEY,
        name           TEXT NOT NULL,
        phc            TEXT,
        reset_phc      TEXT,
        reset_until_ms INTEGER,
        admin          INTEGER NOT NULL DEFAULT 0,
        created_ms     INTEGER NOT NULL
    );
    CREATE TABLE moderators (
        account    TEXT NOT NULL REFERENCES accounts(key) ON DELETE CASCADE,
        room       TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        at_ms      INTEGER NOT NULL,
        PRIMARY KEY (account, room)
    );
    CREATE TABLE sanctions (
        id       INTEGER PRIMARY KEY,
        kind     TEXT NOT NULL,
        target   TEXT NOT NULL,
        room     TEXT,
        reason   TEXT NOT NULL,
        by       TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        until_ms INTEGER
    );
    CREATE TABLE invites (
        room TEXT NOT NULL,
        key  TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (room, key)
    );
    CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        ts_ms  INTEGER NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        room   TEXT,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_room ON audit(room, id);
    -- a < b: the pair's account keys, so one index serves both directions.
    CREATE TABLE direct_messages (
        id        INTEGER PRIMARY KEY,
        a         TEXT NOT NULL,
        b         TEXT NOT NULL,
        sender    TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text      TEXT NOT NULL,
        ts_ms     INTEGER NOT NULL,
        edited    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX direct_pair ON direct_messages(a, b, id);",
    // 3: the key ring: invites, keys issued to clients, the previous main
    // key during its grace (issue 17).
    "CREATE TABLE keyring (
        kind       TEXT NOT NULL,
        id         INTEGER NOT NULL,
        secret     TEXT NOT NULL,
        invite     INTEGER,
        name       TEXT NOT NULL,
        room       TEXT,
        uses_left  INTEGER,
        uses       INTEGER NOT NULL,
        expires_ms INTEGER,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    );",
];

/// The schema version this server writes (and the newest it opens).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The file's schema version.
pub(super) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    // user_version is a signed 32-bit field: a negative one is "newer".
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

/// Applies the migrations the file lacks, and the new version, in one
/// transaction (a crash or failure leaves the file as it was). Returns the
/// version found, read again under the write lock (another process may have
/// migrated meanwhile); a newer one is left alone for the caller to refuse.
///
/// A file already at this version is not written to (no write lock taken):
/// a read-only one still opens, and its writes fail one by one.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    let current = version(conn)?;
    if current >= SCHEMA_VERSION {
        return Ok(current);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    let from = usize::try_from(found).unwrap_or(usize::MAX);
    if from >= MIGRATIONS.len() {
        return Ok(found);
    }
    for sql in &MIGRATIONS[from..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(found)
}
