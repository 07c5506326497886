//! History store benchmark (issue 15; figures in BENCHMARKS.md, "History
//! storage (SQLite)").
//!
//! ```sh
//! cargo run --release -p server --example archive_bench            # in a temporary directory under $TMPDIR
//! cargo run --release -p server --example archive_bench -- --dir /var/lib/chatroom-bench --seconds 20
//! ```
//!
//! 1. Throughput: 200 producers in 20 rooms, each with one message in
//!    flight (its next goes out when the last is durable), submitted from one
//!    thread as the roster does: stored messages/s with `synchronous = FULL`,
//!    and the time from `write` to its completion.
//! 2. Paced: the issue's load (200 senders × 100 msg/s = 20,000 msg/s);
//!    the time to durable at that rate.
//! 3. Fill to 1,000,000 messages, then pages of 50 through `history`
//!    (the reader threads): newest, before a random id, after a random id;
//!    p50/p99/max from the call to the completion.
//! 4. Retention: a prune of half a room of 50,000, and the removal of a room.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use server::archive::{
    Archive, HistoryQuery, RoomRecord, SqliteArchive, StoreError, StoredMessage, Write, WriteOutcome,
};

struct Opts {
    dir: Option<PathBuf>,
    seconds: u64,
    producers: usize,
    rooms: usize,
    total: u64,
    queries: usize,
    rate: u64,
}

fn opts() -> anyhow::Result<Opts> {
    let mut o =
        Opts { dir: None, seconds: 10, producers: 200, rooms: 20, total: 1_000_000, queries: 5000, rate: 20_000 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => o.dir = Some(value()?.into()),
            "--seconds" => o.seconds = value()?.parse()?,
            "--producers" => o.producers = value()?.parse()?,
            "--rooms" => o.rooms = value()?.parse()?,
            "--messages" => o.total = value()?.parse()?,
            "--queries" => o.queries = value()?.parse()?,
            "--rate" => o.rate = value()?.parse()?,
            _ => bail!(
                "usage: archive_bench [--dir DIR] [--seconds 10] [--producers 200] [--rooms 20] \
                 [--messages 1000000] [--queries 5000] [--rate 20000]"
            ),
        }
    }
    Ok(o)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn room_name(i: usize) -> String {
    format!("room{i:02}")
}

/// A message of typical size (the load generator's are ~40 bytes; chat
/// lines run longer).
fn message(id: u64, room: usize, sender: usize) -> StoredMessage {
    StoredMessage {
        id,
        room: room_name(room),
        sender: format!("user{sender:03}"),
        text: format!("LG|user{sender:03}|{id}|{}| the quick brown fox jumps over the lazy dog", now_ms()),
        ts_ms: now_ms(),
        edited: false,
    }
}

/// p50, p99, max of durations, in ms.
fn percentiles(v: &mut [Duration]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    (at(0.50), at(0.99), v[v.len() - 1].as_secs_f64() * 1e3)
}

type Done = (usize, Instant, Result<WriteOutcome, StoreError>);

fn submit(a: &SqliteArchive, tx: &mpsc::Sender<Done>, producer: usize, m: StoredMessage) {
    let tx = tx.clone();
    let at = Instant::now();
    a.write(
        Write::Append(m),
        Box::new(move |r| {
            let _ = tx.send((producer, at, r));
        }),
    );
}

/// Phase 1: closed loop, one message in flight per producer.
fn throughput(a: &SqliteArchive, o: &Opts, next_id: &mut u64) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel::<Done>();
    let start = Instant::now();
    let end = start + Duration::from_secs(o.seconds);
    for p in 0..o.producers {
        *next_id += 1;
        submit(a, &tx, p, message(*next_id, p % o.rooms, p));
    }
    let (mut stored, mut failed, mut in_flight) = (0u64, 0u64, o.producers);
    let mut lat = Vec::new();
    while in_flight > 0 {
        let (p, at, r) = rx.recv_timeout(Duration::from_secs(30)).context("a completion never came")?;
        in_flight -= 1;
        match r {
            Ok(WriteOutcome::Done) => stored += 1,
            _ => failed += 1,
        }
        lat.push(at.elapsed());
        if Instant::now() < end {
            *next_id += 1;
            submit(a, &tx, p, message(*next_id, p % o.rooms, p));
            in_flight += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (p50, p99, max) = percentiles(&mut lat);
    println!(
        "throughput: {} producers, {} rooms, one in flight each: {stored} stored in {secs:.1} s = {:.0} msg/s \
         (failed {failed}); write→durable p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        o.producers,
        o.rooms,
        stored as f64 / secs
    );
    Ok(())
}

/// Phase 2: the issue's workload, paced.
fn paced(a: &SqliteArchive, o: &Opts, seconds: u64, label: &str, next_id: &mut u64) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel::<Done>();
    let start = Instant::now();
    let total = o.rate * seconds;
    let mut sent = 0u64;
    let mut lat = Vec::with_capacity(total as usize);
    let mut lag_max = Duration::ZERO;
    let (mut stored, mut failed, mut not_found) = (0u64, 0u64, 0u64);
    while sent < total {
        // Everything due by now (1 ms ticks).
        let due = ((start.elapsed().as_secs_f64() * o.rate as f64) as u64).min(total);
        if due > sent {
            let scheduled = start + Duration::from_secs_f64(sent as f64 / o.rate as f64);
            lag_max = lag_max.max(scheduled.elapsed());
        }
        while sent < due {
            let p = (sent % o.producers as u64) as usize;
            *next_id += 1;
            submit(a, &tx, p, message(*next_id, p % o.rooms, p));
            sent += 1;
        }
        while let Ok((_, at, r)) = rx.try_recv() {
            lat.push(at.elapsed());
            match r {
                Ok(WriteOutcome::Done) => stored += 1,
                Ok(WriteOutcome::NotFound) => not_found += 1,
                _ => failed += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    while stored + failed + not_found < total {
        let (_, at, r) = rx.recv_timeout(Duration::from_secs(30)).context("a completion never came")?;
        lat.push(at.elapsed());
        match r {
            Ok(WriteOutcome::Done) => stored += 1,
            Ok(WriteOutcome::NotFound) => not_found += 1,
            _ => failed += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (p50, p99, max) = percentiles(&mut lat);
    println!(
        "paced{label}: {} msg/s for {seconds} s: {stored} stored in {secs:.1} s (failed {failed}, room gone {not_found}); write→durable \
         p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; submit lag max {:.1} ms",
        o.rate,
        lag_max.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Phase 3a: fill to `o.total` messages, as fast as the queue takes them.
fn fill(a: &SqliteArchive, o: &Opts, next_id: &mut u64) -> anyhow::Result<()> {
    let outstanding = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let n = o.total.saturating_sub(*next_id);
    let mut i = 0u64;
    while *next_id < o.total {
        if outstanding.load(Ordering::Acquire) >= 30_000 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        *next_id += 1;
        i += 1;
        let (room, sender) = ((i % o.rooms as u64) as usize, (i % o.producers as u64) as usize);
        outstanding.fetch_add(1, Ordering::AcqRel);
        let (out, bad) = (Arc::clone(&outstanding), Arc::clone(&failed));
        a.write(
            Write::Append(message(*next_id, room, sender)),
            Box::new(move |r| {
                if !matches!(r, Ok(WriteOutcome::Done)) {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                out.fetch_sub(1, Ordering::AcqRel);
            }),
        );
    }
    while outstanding.load(Ordering::Acquire) > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fill: {n} more in {secs:.1} s = {:.0} msg/s (failed {}); {} messages stored",
        n as f64 / secs,
        failed.load(Ordering::Relaxed),
        a.max_id()?
    );
    Ok(())
}

/// Phase 3b: pages of 50, one at a time.
fn pages(a: &SqliteArchive, o: &Opts, max_id: u64) -> anyhow::Result<()> {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for kind in ["newest", "before", "after"] {
        let mut lat = Vec::with_capacity(o.queries);
        let mut got = 0usize;
        for _ in 0..o.queries {
            let room = room_name((rand() % o.rooms as u64) as usize);
            let id = 1 + rand() % max_id;
            let q = match kind {
                "newest" => HistoryQuery { room, before: None, after: None, limit: 50 },
                "before" => HistoryQuery { room, before: Some(id), after: None, limit: 50 },
                _ => HistoryQuery { room, before: None, after: Some(id), limit: 50 },
            };
            let (tx, rx) = mpsc::channel();
            let at = Instant::now();
            a.history(
                q,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            let page = rx.recv_timeout(Duration::from_secs(30)).context("no page")??;
            lat.push(at.elapsed());
            got += page.messages.len();
        }
        let (p50, p99, max) = percentiles(&mut lat);
        println!(
            "page of 50 ({kind}), {} queries: p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms \
             ({:.1} messages per page)",
            o.queries,
            got as f64 / o.queries as f64
        );
    }
    Ok(())
}

fn timed_write(a: &SqliteArchive, w: Write) -> anyhow::Result<(WriteOutcome, Duration)> {
    let (tx, rx) = mpsc::channel();
    let at = Instant::now();
    a.write(
        w,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    let r = rx.recv_timeout(Duration::from_secs(120)).context("no completion")??;
    Ok((r, at.elapsed()))
}

fn main() -> anyhow::Result<()> {
    let o = opts()?;
    let tmp;
    let dir = match &o.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("archive-bench-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    if dir.join(server::archive::DB_FILE).exists() {
        bail!("{} already holds a database: give an empty directory", dir.display());
    }
    println!("directory: {}", dir.display());
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let a = SqliteArchive::open(&dir, log)?;
    for r in 0..o.rooms {
        let room = RoomRecord {
            name: room_name(r),
            topic: String::new(),
            history: true,
            voice: false,
            owner: None,
            history_days: 30,
            created_ms: now_ms(),
            empty_since_ms: None,
            from_config: true,
            invite_only: false,
        };
        timed_write(&a, Write::UpsertRoom(room))?;
    }
    let mut next_id = 0;
    throughput(&a, &o, &mut next_id)?;
    paced(&a, &o, o.seconds, "", &mut next_id)?;
    fill(&a, &o, &mut next_id)?;
    let size = std::fs::metadata(dir.join(server::archive::DB_FILE))?.len();
    println!("database: {:.0} MiB (+ WAL)", size as f64 / (1 << 20) as f64);
    pages(&a, &o, a.max_id()?)?;

    // Retention: half of room00 (ids spread evenly, so ts_ms splits it).
    let first = a.max_id()?;
    let page = {
        let (tx, rx) = mpsc::channel();
        let q = HistoryQuery { room: room_name(0), before: None, after: Some(0), limit: 1 };
        a.history(
            q,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv_timeout(Duration::from_secs(30))??
    };
    let oldest = page.messages.first().map_or(0, |m| m.ts_ms);
    let mid = oldest + (now_ms() - oldest) / 2;
    // Both queued at once, then the paced load runs while they go on in
    // chunks: what retention costs the acknowledgements of other rooms.
    let (tx, prune_rx) = mpsc::channel();
    let at = Instant::now();
    a.write(
        Write::Prune { room: room_name(0), before_ms: mid },
        Box::new(move |r| {
            let _ = tx.send((r, at.elapsed()));
        }),
    );
    let (tx, remove_rx) = mpsc::channel();
    a.write(
        Write::RemoveRoom { name: room_name(1) },
        Box::new(move |r| {
            let _ = tx.send((r, at.elapsed()));
        }),
    );
    paced(&a, &o, 3, " during a prune and a room removal", &mut next_id)?;
    let (pruned, t_prune) = prune_rx.recv_timeout(Duration::from_secs(120))?;
    let (removed, t_remove) = remove_rx.recv_timeout(Duration::from_secs(120))?;
    println!(
        "prune of room00 before the middle of its time: {:?} after {:.0} ms; removal of room01: {:?} after {:.0} ms \
         (its {} messages then deleted in chunks; max id before {first})",
        pruned?,
        t_prune.as_secs_f64() * 1e3,
        removed?,
        t_remove.as_secs_f64() * 1e3,
        o.total / o.rooms as u64,
    );
    drop(a);
    Ok(())
}
