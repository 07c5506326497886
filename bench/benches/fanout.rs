//! Fan-out of one chat message to 100 sessions through the real roster:
//! the roster's message, one queue push per recipient, and each session
//! writer sealing the message into its write buffer (everything the server
//! does per delivery except the `write` system call, which is the floor).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chatroom_bench::Ignore;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::crypto::SessionKeys;
use protocol::message::Limits;
use server::messages::{Broadcast, Join, Outbound, Outbox, SharedLedger};
use server::roster::Roster;
use tokio::sync::mpsc;

const RECIPIENTS: u64 = 100;

/// A session writer minus the socket: seals what arrives into a buffer.
async fn writer(mut rx: mpsc::Receiver<Outbound>, sealed: Arc<AtomicU64>) {
    let (mut sealer, _) = SessionKeys::derive(&[1u8; 32], &[2u8; 32]).server_text();
    let mut batch = Vec::new();
    let mut buf = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        buf.clear();
        for item in batch.drain(..) {
            if let Outbound::Message(m) = item {
                buf.extend_from_slice(&(protocol::crypto::Sealer::sealed_len(m.len()) as u32).to_be_bytes());
                sealer.seal_into(&m, &mut buf);
                sealed.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::hint::black_box(&buf);
    }
}

/// A roster with a sender and `RECIPIENTS` others, on its own actix system.
fn start() -> (Addr<Roster>, Arc<AtomicU64>, SharedLedger) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_rt::System::new();
        system.block_on(async move {
            let log = slog::Logger::root(slog::Discard, slog::o!());
            let roster = Roster::new(log, 1000, 1000, None).start();
            let sealed = Arc::new(AtomicU64::new(0));
            let sender_ledger = SharedLedger::default();
            for id in 0..=RECIPIENTS {
                let (otx, orx) = mpsc::channel(4096);
                actix_rt::spawn(writer(orx, sealed.clone()));
                let join = Join {
                    id,
                    name: format!("user{id}"),
                    resume: None,
                    restored: false,
                    ip: None,
                    ledger: if id == 0 { sender_ledger.clone() } else { SharedLedger::default() },
                    mailbox: Ignore.start().recipient(),
                    outbox: Outbox(otx),
                    limits: Limits {
                        max_message_bytes: 4096,
                        rate_per_sec: 10,
                        burst: 20,
                        keepalive_secs: 20,
                        idle_timeout_secs: 60,
                    },
                    rooms: None,
                    history: Some(0),
                    addr: None,
                    account: None,
                    key: None,
                };
                roster.send(join).await.expect("roster").expect("joined");
            }
            // Let the join notices drain before anything is measured.
            tokio::time::sleep(Duration::from_millis(200)).await;
            sealed.store(0, Ordering::SeqCst);
            let _ = tx.send((roster, sealed, sender_ledger));
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("roster started")
}

fn fanout(c: &mut Criterion) {
    let (roster, sealed, ledger) = start();
    let mut g = c.benchmark_group("fan-out");
    g.throughput(Throughput::Elements(RECIPIENTS));
    g.bench_function("one 80-byte message to 100 sessions", |b| {
        b.iter_custom(|iters| {
            let base = sealed.load(Ordering::SeqCst);
            let t = Instant::now();
            for k in 1..=iters {
                let text = "x".repeat(80);
                let ledger = ledger.clone();
                roster.do_send(Broadcast { from: 0, ledger, client_id: k, text, ts_ms: 1, room: None, to: None });
                // One message at a time, as in the headline load: its
                // copies and the sender's ack.
                while sealed.load(Ordering::Relaxed) < base + k * (RECIPIENTS + 1) {
                    std::hint::spin_loop();
                }
            }
            t.elapsed()
        });
    });
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
