//! The SQLite store against its contract, on files in temporary directories.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{DB_FILE, FailureLog, MAX_BATCH, SqliteArchive, Tuning};
use crate::archive::{
    Archive, HistoryQuery, Page, RoomRecord, SCHEMA_VERSION, StoreError, StoredMessage, Write, WriteOutcome,
};

const WAIT: Duration = Duration::from_secs(20);

fn log() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn open(dir: &std::path::Path) -> SqliteArchive {
    match SqliteArchive::open(dir, log()) {
        Ok(a) => a,
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

fn write(a: &SqliteArchive, w: Write) -> Result<WriteOutcome, StoreError> {
    let (tx, rx) = mpsc::channel();
    a.write(
        w,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv_timeout(WAIT).expect("a write's completion is called")
}

fn ok(a: &SqliteArchive, w: Write) -> WriteOutcome {
    match write(a, w) {
        Ok(o) => o,
        Err(e) => panic!("write failed: {e}"),
    }
}

fn history(a: &SqliteArchive, room: &str, before: Option<u64>, after: Option<u64>, limit: u32) -> Page {
    let (tx, rx) = mpsc::channel();
    let q = HistoryQuery { room: room.into(), before, after, limit };
    a.history(
        q,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    match rx.recv_timeout(WAIT).expect("a query's completion is called") {
        Ok(p) => p,
        Err(e) => panic!("history failed: {e}"),
    }
}

fn ids(p: &Page) -> Vec<u64> {
    p.messages.iter().map(|m| m.id).collect()
}

fn room(name: &str) -> RoomRecord {
    RoomRecord {
        name: name.into(),
        topic: format!("about {name}"),
        history: true,
        voice: false,
        owner: None,
        history_days: 30,
        created_ms: 1_000,
        empty_since_ms: None,
        from_config: true,
        invite_only: false,
    }
}

fn msg(id: u64, room: &str, sender: &str) -> StoredMessage {
    StoredMessage {
        id,
        room: room.into(),
        sender: sender.into(),
        text: format!("message {id}"),
        ts_ms: id.saturating_add(1_000),
        edited: false,
    }
}

fn user_version(path: &std::path::Path) -> i64 {
    let conn = Connection::open(path).expect("open the file directly");
    conn.pragma_query_value(None, "user_version", |r| r.get(0)).expect("user_version")
}

#[test]
fn migrates_an_empty_file_and_creates_a_missing_directory_0700() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    // An empty file: what a fresh install or `touch` leaves.
    std::fs::write(tmp.path().join(DB_FILE), b"").expect("empty file");
    let a = open(tmp.path());
    assert_eq!(user_version(&tmp.path().join(DB_FILE)), i64::from(SCHEMA_VERSION));
    assert_eq!(a.rooms().expect("rooms"), vec![]);
    assert_eq!(a.max_id().expect("max_id"), 0);
    ok(&a, Write::UpsertRoom(room("general")));
    assert_eq!(ok(&a, Write::Append(msg(1, "general", "ann"))), WriteOutcome::Done);
    drop(a);

    // A directory that does not exist yet: created private, file too.
    let dir = tmp.path().join("data").join("nested");
    let a = open(&dir);
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
    assert_eq!(mode(&dir.join("chatroom.db-wal")), 0o600, "SQLite gives the -wal file the db's mode");
    // Opening again runs no migration twice.
    drop(a);
    let a = open(&dir);
    assert_eq!(a.rooms().expect("rooms"), vec![]);
}

#[test]
fn a_newer_schema_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join(DB_FILE);
    {
        let conn = Connection::open(&path).expect("create");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("set version");
    }
    match SqliteArchive::open(tmp.path(), log()) {
        Err(e @ StoreError::NewerSchema { .. }) => {
            let StoreError::NewerSchema { path: p, found, supported } = &e else { unreachable!() };
            assert_eq!((p, *found, *supported), (&path, SCHEMA_VERSION + 1, SCHEMA_VERSION));
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    // Untouched: still the newer version.
    assert_eq!(user_version(&path), i64::from(SCHEMA_VERSION + 1));
}

#[test]
fn a_garbage_file_is_refused_naming_the_file() {
    for garbage in [
        vec![0x5a_u8; 8192],
        b"hello, not a database at all, but long enough to have a header.........................................."
            .to_vec(),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join(DB_FILE);
        std::fs::write(&path, &garbage).expect("garbage");
        match SqliteArchive::open(tmp.path(), log()) {
            Err(e @ StoreError::Corrupt { .. }) => {
                assert!(e.to_string().contains(&path.display().to_string()), "{e}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).expect("read back"), garbage, "the file is left as it was");
    }
}

#[test]
fn history_pages_backwards_and_forwards_with_more() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open(tmp.path());
    ok(&a, Write::UpsertRoom(room("general")));
    ok(&a, Write::UpsertRoom(room("other")));
    // 120 in general (odd ids), 120 in other (even ids), interleaved.
    for id in 1..=240 {
        let r = if id % 2 == 1 { "general" } else { "other" };
        assert_eq!(ok(&a, Write::Append(msg(id, r, "ann"))), WriteOutcome::Done);
    }
    let general: Vec<u64> = (1..=240).filter(|i| i % 2 == 1).collect();

    // Newest 50, oldest first, more before them.
    let p = history(&a, "general", None, None, 50);
    assert_eq!(ids(&p), general[70..]);
    assert!(p.more);
    assert_eq!(p.messages[0], msg(general[70], "general", "ann"));
    // Before the page's first: the 50 before it.
    let p = history(&a, "general", Some(general[70]), None, 50);
    assert_eq!(ids(&p), general[20..70]);
    assert!(p.more);
    // The last page backwards: 20 left, no more.
    let p = history(&a, "general", Some(general[20]), None, 50);
    assert_eq!(ids(&p), general[..20]);
    assert!(!p.more);
    // Exactly the rest: no more either.
    let p = history(&a, "general", Some(general[20]), None, 20);
    assert_eq!(ids(&p), general[..20]);
    assert!(!p.more);

    // Catch-up: the oldest 50 after an id, more after them.
    let p = history(&a, "general", None, Some(general[9]), 50);
    assert_eq!(ids(&p), general[10..60]);
    assert!(p.more);
    let p = history(&a, "general", None, Some(general[99]), 50);
    assert_eq!(ids(&p), general[100..]);
    assert!(!p.more);
    let p = history(&a, "general", None, Some(240), 50);
    assert_eq!(p, Page::default());
    // Both bounds: forward within them.
    let p = history(&a, "general", Some(general[15]), Some(general[4]), 50);
    assert_eq!(ids(&p), general[5..15]);
    assert!(!p.more);

    // Isolation: other has its own ids only.
    let p = history(&a, "other", None, None, 500);
    assert_eq!(ids(&p), (1..=240).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    assert!(!p.more);
    assert!(p.messages.iter().all(|m| m.room == "other"));
    // Unknown room: empty. Limit 0: nothing, but more says there is.
    assert_eq!(history(&a, "nowhere", None, None, 50), Page::default());
    let p = history(&a, "general", None, None, 0);
    assert!(p.messages.is_empty() && p.more);
    // Ids past i64::MAX are "no bound", not an error.
    let p = history(&a, "general", Some(u64::MAX), None, 1);
    assert_eq!(ids(&p), [239]);
}

#[test]
fn a_page_is_at_most_max_page() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open(tmp.path());
    ok(&a, Write::UpsertRoom(room("general")));
    let n = u64::from(crate::archive::MAX_PAGE) + 5;
    // Queued without waiting: group commit takes them in a few batches.
    let (tx, rx) = mpsc::channel();
    for id in 1..=n {
        let tx = tx.clone();
        a.write(
            Write::Append(msg(id, "general", "ann")),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
    }
    for _ in 1..=n {
        assert!(matches!(rx.recv_timeout(WAIT), Ok(Ok(WriteOutcome::Done))));
    }
    let p = history(&a, "general", None, None, u32::MAX);
    assert_eq!(p.messages.len(), crate::archive::MAX_PAGE as usize);
    assert_eq!(p.messages.last().map(|m| m.id), Some(n));
    assert!(p.more);
}

#[test]
fn edit_and_delete_only_your_own() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open(tmp.path());
    ok(&a, Write::UpsertRoom(room("general")));
    ok(&a, Write::Append(msg(1, "general", "ann")));
    ok(&a, Write::Append(msg(2, "general", "bob")));

    let edit = |id: u64, sender: &str| Write::Edit { id, sender: sender.into(), text: format!("{sender} edits {id}") };
    let general = || WriteOutcome::Changed { room: "general".into() };
    assert_eq!(ok(&a, edit(1, "ann")), general(), "done, and where");
    assert_eq!(ok(&a, edit(2, "ann")), WriteOutcome::NotYours);
    // Exact comparison: a differently cased name is someone else.
    assert_eq!(ok(&a, edit(2, "Bob")), WriteOutcome::NotYours);
    assert_eq!(ok(&a, edit(9, "ann")), WriteOutcome::NotFound);
    let p = history(&a, "general", None, None, 50);
    assert_eq!(p.messages[0].text, "ann edits 1");
    assert!(p.messages[0].edited);
    assert_eq!(p.messages[1], msg(2, "general", "bob"), "bob's message is untouched");

    let delete = |id: u64, sender: &str| Write::Delete { id, sender: sender.into() };
    assert_eq!(ok(&a, delete(2, "ann")), WriteOutcome::NotYours);
    assert_eq!(ok(&a, delete(9, "ann")), WriteOutcome::NotFound);
    assert_eq!(ok(&a, delete(2, "bob")), general());
    assert_eq!(ok(&a, delete(2, "bob")), WriteOutcome::NotFound);
    assert_eq!(ok(&a, edit(2, "bob")), WriteOutcome::NotFound, "a deleted message cannot be edited");
    assert_eq!(ids(&history(&a, "general", None, None, 50)), [1]);
    // Nothing of the deleted or the edited-away text is left in the files.
    drop(a);
    for f in std::fs::read_dir(tmp.path()).expect("ls") {
        let bytes = std::fs::read(f.expect("entry").path()).expect("read");
        for gone in [&b"message 2"[..], b"message 1"] {
            assert!(!bytes.windows(gone.len()).any(|w| w == gone), "{:?} still on disk", String::from_utf8_lossy(gone));
        }
    }
    let a = open(tmp.path());
    // The deleted newest id is not given out again.
    assert_eq!(a.max_id().expect("max_id"), 2);
}

#[test]
fn rooms_upsert_list_and_remove_with_their_messages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open(tmp.path());
    assert_eq!(ok(&a, Write::Append(msg(1, "general", "ann"))), WriteOutcome::NotFound, "no such room yet");
    assert_eq!(ok(&a, Write::UpsertRoom(room("general"))), WriteOutcome::Done);
    let mut user_room = room("bobs-room");
    user_room.owner = Some("bob".into());
    user_room.from_config = false;
    user_room.history_days = 0;
    user_room.empty_since_ms = Some(u64::from(u32::MAX) * 1000);
    ok(&a, Write::UpsertRoom(user_room.clone()));
    ok(&a, Write::Append(msg(2, "general", "ann")));
    ok(&a, Write::Append(msg(3, "bobs-room", "bob")));
    assert_eq!(a.rooms().expect("rooms"), vec![user_room.clone(), room("general")]);

    // An update keeps the messages.
    let mut general = room("general");
    general.topic = "new topic".into();
    general.voice = true;
    assert_eq!(ok(&a, Write::UpsertRoom(general.clone())), WriteOutcome::Done);
    assert_eq!(a.rooms().expect("rooms"), vec![user_room.clone(), general.clone()]);
    assert_eq!(ids(&history(&a, "general", None, None, 50)), [2]);

    // Removal takes the messages; a room of the same name starts empty.
    assert_eq!(ok(&a, Write::RemoveRoom { name: "bobs-room".into() }), WriteOutcome::Done);
    assert_eq!(ok(&a, Write::RemoveRoom { name: "bobs-room".into() }), WriteOutcome::NotFound);
    assert_eq!(a.rooms().expect("rooms"), vec![general]);
    ok(&a, Write::UpsertRoom(user_room));
    assert_eq!(history(&a, "bobs-room", None, None, 50), Page::default());
    assert_eq!(ok(&a, Write::Edit { id: 3, sender: "bob".into(), text: "x".into() }), WriteOutcome::NotFound);
    // The purge of the old messages runs behind the removal.
    let deadline = Instant::now() + WAIT;
    while messages_in_file(tmp.path()) != 1 {
        assert!(Instant::now() < deadline, "only general's message is left in the file, eventually");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn prune_removes_what_is_older_in_that_room_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open(tmp.path());
    ok(&a, Write::UpsertRoom(room("general")));
    ok(&a, Write::UpsertRoom(room("other")));
    for id in 1..=10 {
        ok(&a, Write::Append(msg(id, "general", "ann")));
        ok(&a, Write::Append(msg(100 + id, "other", "ann")));
    }
    // ts_ms is 1000 + id: before 1006 removes ids 1..=5.
    assert_eq!(ok(&a, Write::Prune { room: "general".into(), before_ms: 1006 }), WriteOutcome::Pruned(5));
    assert_eq!(ids(&history(&a, "general", None, None, 50)), [6, 7, 8, 9, 10]);
    assert_eq!(history(&a, "other", None, None, 50).messages.len(), 10);
    assert_eq!(ok(&a, Write::Prune { room: "general".into(), before_ms: 1006 }), WriteOutcome::Pruned(0));
    assert_eq!(ok(&a, Write::Prune { room: "nowhere".into(), before_ms: 1006 }), WriteOutcome::NotFound);
    assert_eq!(
        ok(&a, Write::Prune { room: "general".into(), before_ms: u64::MAX }),
        WriteOutcome::Pruned(5),
        "a bound past i64::MAX prunes everything"
    );
    assert_eq!(a.max_id().expect("max_id"), 110);
}

fn open_chunked(dir: &std::path::Path, chunk: usize) -> SqliteArchive {
    SqliteArchive::open_tuned(dir, log(), Tuning { chunk, ..Tuning::default() }).expect("open")
}

fn messages_in_file(dir: &std::path::Path) -> i64 {
    let conn = Connection::open(dir.join(DB_FILE)).expect("open directly");
    conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).expect("count")
}

#[test]
fn prune_and_removal_go_in_chunks_while_other_writes_go_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open_chunked(tmp.path(), 3);
    ok(&a, Write::UpsertRoom(room("general")));
    ok(&a, Write::UpsertRoom(room("old")));
    for id in 1..=20 {
        ok(&a, Write::Append(msg(id, "general", "ann")));
        ok(&a, Write::Append(msg(100 + id, "old", "ann")));
    }
    // 14 rows in chunks of 3: five transactions; the prune completes once.
    assert_eq!(ok(&a, Write::Prune { room: "general".into(), before_ms: 1015 }), WriteOutcome::Pruned(14));
    assert_eq!(ids(&history(&a, "general", None, None, 50)), (15..=20).collect::<Vec<_>>());
    // An exact multiple of the chunk still ends (on an empty chunk).
    assert_eq!(ok(&a, Write::Prune { room: "general".into(), before_ms: 1018 }), WriteOutcome::Pruned(3));

    // Removal: Done at once; the name is free, the old messages invisible.
    assert_eq!(ok(&a, Write::RemoveRoom { name: "old".into() }), WriteOutcome::Done);
    assert_eq!(ok(&a, Write::Edit { id: 105, sender: "ann".into(), text: "x".into() }), WriteOutcome::NotFound);
    assert_eq!(ok(&a, Write::RemoveRoom { name: "old".into() }), WriteOutcome::NotFound);
    ok(&a, Write::UpsertRoom(room("old")));
    ok(&a, Write::Append(msg(200, "old", "bob")));
    assert_eq!(ids(&history(&a, "old", None, None, 50)), [200], "the new room holds only its own");
    assert_eq!(a.rooms().expect("rooms"), vec![room("general"), room("old")]);
    // The purge finishes between writes, without another write to carry it.
    let deadline = Instant::now() + WAIT;
    while messages_in_file(tmp.path()) != 4 {
        assert!(Instant::now() < deadline, "the purge never finished: {}", messages_in_file(tmp.path()));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(ids(&history(&a, "old", None, None, 50)), [200]);
    assert_eq!(a.max_id().expect("max_id"), 200);
}

#[test]
fn a_removal_a_stop_interrupted_finishes_at_the_next_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let a = open(tmp.path());
        ok(&a, Write::UpsertRoom(room("general")));
        ok(&a, Write::UpsertRoom(room("gone")));
        for id in 1..=10 {
            ok(&a, Write::Append(msg(id, "gone", "ann")));
        }
        ok(&a, Write::Append(msg(11, "general", "ann")));
    }
    // What a stop right after the removal's commit leaves: a nameless row
    // with its messages.
    {
        let conn = Connection::open(tmp.path().join(DB_FILE)).expect("open directly");
        conn.execute("UPDATE rooms SET name = NULL WHERE name = 'gone'", []).expect("unname");
    }
    let a = open_chunked(tmp.path(), 4);
    assert_eq!(a.rooms().expect("rooms"), vec![room("general")]);
    let deadline = Instant::now() + WAIT;
    while messages_in_file(tmp.path()) != 1 {
        assert!(Instant::now() < deadline, "the purge never resumed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let conn = Connection::open(tmp.path().join(DB_FILE)).expect("open directly");
    let rows: i64 = conn.query_row("SELECT count(*) FROM rooms", [], |r| r.get(0)).expect("count");
    assert_eq!(rows, 1, "the row goes too");
}

#[test]
fn durable_across_reopen_and_ids_continue() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let a = open(tmp.path());
        ok(&a, Write::UpsertRoom(room("general")));
        for id in 1..=5 {
            ok(&a, Write::Append(msg(id, "general", "ann")));
        }
        let changed = WriteOutcome::Changed { room: "general".into() };
        assert_eq!(ok(&a, Write::Edit { id: 2, sender: "ann".into(), text: "edited".into() }), changed);
        assert_eq!(ok(&a, Write::Delete { id: 5, sender: "ann".into() }), changed);
    }
    // A clean stop checkpoints: one file left.
    assert!(!tmp.path().join("chatroom.db-wal").exists() && !tmp.path().join("chatroom.db-shm").exists());
    let a = open(tmp.path());
    // 5 was deleted, yet its id stays taken.
    assert_eq!(a.max_id().expect("max_id"), 5);
    let p = history(&a, "general", None, None, 50);
    assert_eq!(ids(&p), [1, 2, 3, 4]);
    assert_eq!((p.messages[1].text.as_str(), p.messages[1].edited), ("edited", true));
    assert_eq!(a.rooms().expect("rooms"), vec![room("general")]);
}

#[test]
fn drop_commits_everything_queued_and_calls_every_completion() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let n = 3 * MAX_BATCH as u64 + 7;
    let (tx, rx) = mpsc::channel();
    {
        let a = open(tmp.path());
        ok(&a, Write::UpsertRoom(room("general")));
        for id in 1..=n {
            let tx = tx.clone();
            a.write(
                Write::Append(msg(id, "general", "ann")),
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
        }
        // Dropped at once, with most still queued.
    }
    drop(tx);
    let outcomes: Vec<_> = rx.iter().collect();
    assert_eq!(outcomes.len() as u64, n);
    assert!(outcomes.iter().all(|o| matches!(o, Ok(WriteOutcome::Done))));
    let a = open(tmp.path());
    assert_eq!(a.max_id().expect("max_id"), n);
    let p = history(&a, "general", None, None, 3);
    assert_eq!(ids(&p), [n - 2, n - 1, n]);
}

#[test]
fn a_duplicate_id_fails_only_its_own_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open(tmp.path());
    ok(&a, Write::UpsertRoom(room("general")));
    ok(&a, Write::Append(msg(1, "general", "ann")));
    // Three in one batch (queued behind a blocked completion): the middle one
    // reuses id 1.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (tx, rx) = mpsc::channel();
    a.write(
        Write::UpsertRoom(room("other")),
        Box::new(move |_| {
            let _ = gate_rx.recv_timeout(WAIT);
        }),
    );
    for (i, id) in [2, 1, 3].into_iter().enumerate() {
        let tx = tx.clone();
        a.write(
            Write::Append(msg(id, "general", "bob")),
            Box::new(move |r| {
                let _ = tx.send((i, r));
            }),
        );
    }
    let _ = gate_tx.send(());
    let mut got: Vec<_> = (0..3).map(|_| rx.recv_timeout(WAIT).expect("completion")).collect();
    got.sort_by_key(|(i, _)| *i);
    assert!(matches!(got[0].1, Ok(WriteOutcome::Done)));
    assert!(matches!(got[1].1, Err(StoreError::Rejected(_))), "{:?}", got[1].1);
    assert!(matches!(got[2].1, Ok(WriteOutcome::Done)));
    let p = history(&a, "general", None, None, 50);
    assert_eq!(ids(&p), [1, 2, 3]);
    assert_eq!(p.messages[0].sender, "ann", "the first id 1 stays");
    // Out of SQLite's range: refused, not wrapped.
    assert!(matches!(write(&a, Write::Append(msg(u64::MAX, "general", "ann"))), Err(StoreError::Rejected(_))));
}

#[test]
fn a_full_queue_fails_at_once_without_blocking() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = SqliteArchive::open_tuned(tmp.path(), log(), Tuning { write_queue: 2, ..Tuning::default() }).expect("open");
    // The writer is held inside the first completion; two more fill the queue.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (held_tx, held_rx) = mpsc::channel::<()>();
    a.write(
        Write::UpsertRoom(room("general")),
        Box::new(move |_| {
            let _ = held_tx.send(());
            let _ = gate_rx.recv_timeout(WAIT);
        }),
    );
    held_rx.recv_timeout(WAIT).expect("the writer is held");
    let (tx, rx) = mpsc::channel();
    for id in 1..=3 {
        let tx = tx.clone();
        a.write(
            Write::Append(msg(id, "general", "ann")),
            Box::new(move |r| {
                let _ = tx.send((id, r, std::thread::current().id()));
            }),
        );
    }
    // The third is refused at once, on this thread.
    let (id, r, thread) = rx.try_recv().expect("refused before write returned");
    assert_eq!(id, 3);
    assert!(matches!(r, Err(StoreError::Unavailable(ref s)) if s.contains("queue full")), "{r:?}");
    assert_eq!(thread, std::thread::current().id());
    let _ = gate_tx.send(());
    for _ in 0..2 {
        let (_, r, thread) = rx.recv_timeout(WAIT).expect("completion");
        assert!(matches!(r, Ok(WriteOutcome::Done)));
        assert_ne!(thread, std::thread::current().id(), "completions run on the writer");
    }
    // Everything done: the queue's bytes are all given back.
    assert_eq!(a.queued.load(std::sync::atomic::Ordering::Acquire), 0);
}

#[test]
fn the_queue_is_bounded_in_bytes_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = SqliteArchive::open_tuned(tmp.path(), log(), Tuning { queue_bytes: 100_000, ..Tuning::default() })
        .expect("open");
    let big = |id: u64| StoredMessage { text: "z".repeat(40_000), ..msg(id, "general", "ann") };
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (held_tx, held_rx) = mpsc::channel::<()>();
    a.write(
        Write::UpsertRoom(room("general")),
        Box::new(move |_| {
            let _ = held_tx.send(());
            let _ = gate_rx.recv_timeout(WAIT);
        }),
    );
    held_rx.recv_timeout(WAIT).expect("the writer is held");
    // Two of 40 kB queued: a third does not fit in 100 kB.
    let (tx, rx) = mpsc::channel();
    for id in 1..=3 {
        let tx = tx.clone();
        a.write(
            Write::Append(big(id)),
            Box::new(move |r| {
                let _ = tx.send((id, r));
            }),
        );
    }
    let (id, r) = rx.try_recv().expect("refused at once");
    assert!(id == 3 && matches!(r, Err(StoreError::Unavailable(ref s)) if s.contains("queue full")), "{r:?}");
    // Small writes still fit.
    let (small_tx, small_rx) = mpsc::channel();
    a.write(
        Write::Append(msg(4, "general", "ann")),
        Box::new(move |r| {
            let _ = small_tx.send(r);
        }),
    );
    let _ = gate_tx.send(());
    for _ in 1..=2 {
        assert!(matches!(rx.recv_timeout(WAIT), Ok((1 | 2, Ok(WriteOutcome::Done)))));
    }
    assert!(matches!(small_rx.recv_timeout(WAIT), Ok(Ok(WriteOutcome::Done))));
    assert_eq!(ok(&a, Write::Append(big(5))), WriteOutcome::Done, "room again once written");
    assert_eq!(a.queued.load(std::sync::atomic::Ordering::Acquire), 0);
}

/// A full disk, as SQLite reports it (SQLITE_FULL): `max_page_count` caps
/// the file. Tests run as root, whom a read-only mode does not stop; this
/// limit applies to everyone. (The test below does it with a real write(2)
/// failure.)
#[test]
fn a_full_disk_fails_the_whole_batch_and_the_writer_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = SqliteArchive::open_tuned(tmp.path(), log(), Tuning { max_pages: Some(40), ..Tuning::default() })
        .expect("open");
    ok(&a, Write::UpsertRoom(room("general")));
    ok(&a, Write::UpsertRoom(room("spare")));
    let big = |id: u64, r: &str| StoredMessage { text: "x".repeat(3000), ..msg(id, r, "ann") };
    // Fill "spare" until the disk is full.
    let mut id = 0;
    let err = loop {
        id += 1;
        assert!(id < 1000, "the page limit never hit");
        match write(&a, Write::Append(big(id, "spare"))) {
            Ok(WriteOutcome::Done) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, StoreError::Unavailable(ref s) if s.contains("full")), "{err:?}");
    let failed_id = id;

    // A batch that fails fails every write in it, even the small ones.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    a.write(
        Write::UpsertRoom(room("general")),
        Box::new(move |_| {
            let _ = gate_rx.recv_timeout(WAIT);
        }),
    );
    let (tx, rx) = mpsc::channel();
    for (i, w) in [
        Write::Append(msg(failed_id + 1, "general", "ann")),
        Write::Append(big(failed_id + 2, "spare")),
        Write::Append(big(failed_id + 3, "spare")),
        Write::Append(msg(failed_id + 4, "general", "ann")),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        a.write(
            w,
            Box::new(move |r| {
                let _ = tx.send((i, r));
            }),
        );
    }
    let _ = gate_tx.send(());
    for _ in 0..4 {
        let (i, r) = rx.recv_timeout(WAIT).expect("completion");
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "write {i}: {r:?}");
    }
    assert_eq!(history(&a, "general", None, None, 50), Page::default(), "nothing of the batch is kept");
    assert_eq!(a.max_id().expect("max_id"), failed_id - 1);

    // Room again (the administrator freed space): the same writer goes on.
    assert_eq!(ok(&a, Write::RemoveRoom { name: "spare".into() }), WriteOutcome::Done);
    assert_eq!(ok(&a, Write::Append(msg(failed_id + 5, "general", "ann"))), WriteOutcome::Done);
    assert_eq!(ids(&history(&a, "general", None, None, 50)), [failed_id + 5]);
}

/// Child half of the next test: runs only in the child process it starts.
#[test]
fn child_for_the_file_size_limit_test() {
    if std::env::var_os("ARCHIVE_FSIZE_CHILD").is_none() {
        return;
    }
    let Some(dir) = std::env::var_os("ARCHIVE_FSIZE_DIR") else { return };
    let a = open(std::path::Path::new(&dir));
    ok(&a, Write::UpsertRoom(room("general")));
    let big = |id: u64| StoredMessage { text: "y".repeat(4000), ..msg(id, "general", "ann") };
    let mut failed = None;
    for id in 1..=400 {
        match write(&a, Write::Append(big(id))) {
            Ok(WriteOutcome::Done) if failed.is_none() => {}
            Ok(other) => panic!("write {id} after a failure: {other:?}"),
            Err(StoreError::Unavailable(cause)) => {
                failed.get_or_insert((id, cause));
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        if failed.as_ref().is_some_and(|(f, _)| id >= f + 3) {
            break;
        }
    }
    let (id, cause) = failed.expect("the file size limit was never hit");
    let p = history(&a, "general", None, None, 500);
    assert_eq!(p.messages.last().map(|m| m.id), Some(id - 1), "every acknowledged write is readable");
    println!("ARCHIVE_FSIZE_CHILD_OK failed_at={id} cause={cause}");
}

/// Child half of the next test: acknowledges writes, says which, then dies
/// without any shutdown (abort: no drop, no checkpoint, no close).
#[test]
fn child_for_the_crash_test() {
    let Some(dir) = std::env::var_os("ARCHIVE_CRASH_DIR") else { return };
    let a = open(std::path::Path::new(&dir));
    ok(&a, Write::UpsertRoom(room("general")));
    let (tx, rx) = mpsc::channel();
    for id in 1..=3000 {
        let tx = tx.clone();
        a.write(
            Write::Append(msg(id, "general", "ann")),
            Box::new(move |r| {
                if matches!(r, Ok(WriteOutcome::Done)) {
                    let _ = tx.send(id);
                }
            }),
        );
    }
    // Die in the middle of it: after some acknowledgements, with more queued.
    let mut acked = 0;
    while acked < 1500 {
        let id = rx.recv_timeout(WAIT).expect("acks");
        acked = acked.max(id);
    }
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ACKED {acked}");
    let _ = out.flush();
    std::process::abort();
}

/// What was acknowledged survives the process dying at once (the WAL is
/// recovered at the next open).
#[test]
fn acknowledged_writes_survive_an_abort() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // No core file from the abort.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -c 0; exec \"$0\" --exact --nocapture --test-threads 1 archive::sqlite::tests::child_for_the_crash_test")
        .arg(std::env::current_exe().expect("test binary"))
        .env("ARCHIVE_CRASH_DIR", tmp.path())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child aborts");
    let acked: u64 = stdout
        .lines()
        .find_map(|l| l.split("ACKED ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("child said nothing: {stdout}"));
    assert!(tmp.path().join("chatroom.db-wal").exists(), "no clean close: the WAL is still there");
    let a = open(tmp.path());
    let max = a.max_id().expect("max_id");
    assert!(max >= acked, "acked up to {acked}, stored up to {max}");
    // Every one up to the last stored, none missing in between.
    let mut after = 0;
    loop {
        let p = history(&a, "general", None, Some(after), crate::archive::MAX_PAGE);
        for m in &p.messages {
            assert_eq!(m.id, after + 1, "a gap after {after}");
            after = m.id;
        }
        if !p.more {
            break;
        }
    }
    assert_eq!(after, max);
}

/// A write(2) that fails, as root: the server's process under a file size
/// limit (RLIMIT_FSIZE binds root too; SIGXFSZ ignored, so the write returns
/// EFBIG). The limit is per process, so a child test process runs it.
#[test]
fn a_real_write_failure_gives_unavailable_never_ok() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    // 256 blocks of 512 bytes: 128 KiB per file.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 256 && exec \"$0\" --exact --nocapture --test-threads 1 archive::sqlite::tests::child_for_the_file_size_limit_test")
        .arg(&exe)
        .env("ARCHIVE_FSIZE_CHILD", "1")
        .env("ARCHIVE_FSIZE_DIR", tmp.path())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ARCHIVE_FSIZE_CHILD_OK"),
        "child: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_failure_log_says_once_per_window_how_many_it_left_out() {
    let w = Duration::from_secs(10);
    let mut f = FailureLog::new(w);
    let t0 = Instant::now();
    assert_eq!(f.succeeded(), None, "nothing failed");
    assert_eq!(f.failed(t0), Some(0));
    assert_eq!(f.failed(t0 + Duration::from_secs(1)), None);
    assert_eq!(f.failed(t0 + Duration::from_secs(9)), None);
    assert_eq!(f.failed(t0 + w), Some(2));
    assert_eq!(f.failed(t0 + w + Duration::from_secs(1)), None);
    assert_eq!(f.succeeded(), Some(1), "recovery says what went unlogged");
    assert_eq!(f.succeeded(), None, "once");
    // A new failure within the window of the last line waits its turn.
    assert_eq!(f.failed(t0 + w + Duration::from_secs(2)), None);
    assert_eq!(f.failed(t0 + 2 * w), Some(1));
}

#[test]
fn backup_copies_a_running_store_into_one_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open(&tmp.path().join("data"));
    ok(&a, Write::UpsertRoom(room("general")));
    for id in 1..=100 {
        ok(&a, Write::Append(msg(id, "general", "ann")));
    }
    let dest = tmp.path().join("copy").join(DB_FILE);
    std::fs::create_dir(tmp.path().join("copy")).expect("mkdir");
    super::backup(&tmp.path().join("data"), &dest).expect("backup");
    // The server goes on writing; the copy is the snapshot.
    ok(&a, Write::Append(msg(101, "general", "ann")));
    assert_eq!(std::fs::metadata(&dest).expect("copy").permissions().mode() & 0o777, 0o600);
    assert!(!tmp.path().join("copy").join("chatroom.db-wal").exists(), "a single file");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("copy")).expect("ls").collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    let b = open(&tmp.path().join("copy"));
    assert_eq!(b.max_id().expect("max_id"), 100);
    assert_eq!(history(&b, "general", None, None, 200).messages.len(), 100);
    // No database there: an error naming the file.
    // Never over an existing file.
    match super::backup(&tmp.path().join("data"), &dest) {
        Err(e @ StoreError::Backup { .. }) => assert!(e.to_string().contains(&dest.display().to_string()), "{e}"),
        other => panic!("expected Backup, got {other:?}"),
    }
    assert_eq!(b.max_id().expect("max_id"), 100, "the first copy is untouched");
    assert_eq!(std::fs::read_dir(tmp.path().join("copy")).expect("ls").count(), 1 + 2, "the copy, its -wal and -shm");
    match super::backup(&tmp.path().join("nowhere"), &tmp.path().join("x.db")) {
        Err(e @ StoreError::Open { .. }) => assert!(e.to_string().contains("nowhere"), "{e}"),
        other => panic!("expected Open, got {other:?}"),
    }
}

#[test]
fn the_archive_is_a_shareable_trait_object() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a: std::sync::Arc<dyn Archive> = std::sync::Arc::new(open(tmp.path()));
    let b = std::sync::Arc::clone(&a);
    let t = std::thread::spawn(move || b.max_id().map_err(|e| e.to_string()));
    assert_eq!(t.join().expect("thread"), Ok(0));
    assert!(format!("{a:?}").contains(DB_FILE));
}

/// Child half of the next test: runs only in the child process it starts.
#[test]
fn child_for_the_read_only_test() {
    let Some(dir) = std::env::var_os("ARCHIVE_RO_DIR") else { return };
    match SqliteArchive::open(std::path::Path::new(&dir), log()) {
        Err(e) => println!("RO open failed: {e}"),
        Ok(a) => {
            let p = history(&a, "general", None, None, 5);
            println!(
                "RO opened; history {:?}; write {:?}",
                ids(&p),
                write(&a, Write::Append(msg(2, "general", "ann")))
            );
        }
    }
}

/// Read-only for real, as root: a child test process without root's
/// rights (`setpriv` to nobody; run as it is when not root). A read-only
/// database in a writable directory opens, serves history and refuses
/// every write (nacks, never acks); a read-only directory, where SQLite
/// cannot create the WAL's shared-memory file, stops the server at start
/// with an error naming the file.
#[test]
fn read_only_files_refuse_writes_and_a_read_only_directory_refuses_to_open() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().expect("tempdir");
    let chmod = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    chmod(tmp.path(), 0o755);
    let data = tmp.path().join("data");
    {
        let a = open(&data);
        ok(&a, Write::UpsertRoom(room("general")));
        ok(&a, Write::Append(msg(1, "general", "ann")));
    }
    let db = data.join(DB_FILE);
    let root = std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0;
    // SQLite gives the -shm file the database's mode: 0644 lets nobody
    // (the child) write the -shm it creates but not the database, which
    // root owns. Not root, the file must be 0444 to be read-only to us, and
    // the -shm then is too: SQLite may refuse to open at all.
    chmod(&db, if root { 0o644 } else { 0o444 });
    // A copy of this test binary nobody can run wherever the checkout lies.
    let exe = if root {
        let copy = tmp.path().join("child-test-binary");
        std::fs::copy(std::env::current_exe().expect("test binary"), &copy).expect("copy the test binary");
        chmod(&copy, 0o755);
        copy
    } else {
        std::env::current_exe().expect("test binary")
    };
    let child = |dir_mode: u32| {
        chmod(&data, dir_mode);
        let exe = exe.clone();
        let mut cmd = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        };
        cmd.args(["--exact", "--nocapture", "--test-threads", "1"])
            .arg("archive::sqlite::tests::child_for_the_read_only_test")
            .env("ARCHIVE_RO_DIR", &data);
        // A fork elsewhere in this process can briefly hold the fresh copy
        // open for writing ("Text file busy"): try again.
        let mut tries = 0;
        let out = loop {
            let out = cmd.output().expect("run the child (setpriv is in util-linux)");
            tries += 1;
            if tries < 5 && String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            break out;
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "child: {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        stdout
    };
    // A writable directory (the -shm file can be made), a read-only file.
    let out = child(0o777);
    if root {
        assert!(
            out.contains("RO opened; history [1]; write Err(Unavailable(\"attempt to write a readonly database\"))"),
            "{out}"
        );
    } else {
        assert!(out.contains("Unavailable") || out.contains("RO open failed"), "{out}");
    }
    assert!(!out.contains("write Ok"), "{out}");
    // A read-only directory.
    for f in ["chatroom.db-wal", "chatroom.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let out = child(0o555);
    assert!(out.contains("RO open failed: ") && out.contains(&db.display().to_string()), "{out}");
    chmod(&data, 0o700);
}
