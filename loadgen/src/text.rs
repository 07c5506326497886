//! The `text` workload: N clients, S of them sending at R messages/s each
//! for D seconds; everyone else receives.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::clients::{self, Pace, Shared, Target};
use crate::procfs::CpuMark;
use crate::report::{self, num};
use crate::stats::expected_deliveries;

/// What to run.
#[derive(Debug, Clone)]
pub struct TextLoad {
    /// Clients connected.
    pub clients: usize,
    /// How many of them send.
    pub senders: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Seconds of sending.
    pub seconds: f64,
    /// Most seconds to wait for deliveries after the last send.
    pub drain: f64,
    /// Connections in flight while connecting.
    pub in_flight: usize,
}

/// Runs the workload; returns the run's figures.
pub async fn run(target: &Target, load: &TextLoad, server_pid: u32) -> anyhow::Result<Map<String, Value>> {
    let shared = Arc::new(Shared::default());
    let (go_tx, go) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let senders = load.senders.min(load.clients);
    let prefix = format!("t{}_", std::process::id() % 100_000);
    let connects = {
        let (go, stop, shared, load) = (go.clone(), stop.clone(), shared.clone(), load.clone());
        clients::connect_many(target, load.clients, load.in_flight, &prefix, move |i, c| {
            let pace = if i < senders {
                // Senders spread evenly over one period, so the load is steady.
                let offset = Duration::from_secs_f64(i as f64 / senders as f64 / load.rate.max(1e-3));
                Pace::Rate { sender: i as u32, rate: load.rate, seconds: load.seconds, offset }
            } else {
                Pace::Idle
            };
            let client = clients::start(c, pace, &go, &stop, &shared);
            async move { Ok(client) }
        })
        .await
    };
    let n = connects.ok.len();
    eprintln!("text: {n}/{} connected in {:.2} s", load.clients, connects.seconds);
    if let Some(e) = connects.errors.first() {
        eprintln!("text: {} failed to connect, e.g. {e}", connects.errors.len());
    }
    // Let the join storm settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = CpuMark::now(server_pid);
    let _ = go_tx.send(true);
    let per_sender = (load.rate * load.seconds).ceil() as u64;
    let senders_ok = shared.senders.load(Ordering::Relaxed);
    let sending = Duration::from_secs_f64(load.seconds + 1.0 + load.seconds * 0.2);
    clients::wait_for_count(&shared.sent, per_sender * senders_ok, sending).await;
    let send_done = before.to(&CpuMark::now(0)).wall;
    let drain = Duration::from_secs_f64(load.drain);
    let sent = shared.sent.load(Ordering::Relaxed);
    clients::wait_for_count(&shared.acked, sent, drain).await;
    let acked = shared.acked.load(Ordering::Relaxed);
    // Each message goes to the others of its sender's room.
    let expected = expected_deliveries(acked, target.room_size.map_or(n, |k| k.min(n)));
    clients::wait_for_count(&shared.received, expected, drain).await;
    let after = CpuMark::now(server_pid);
    let _ = stop_tx.send(true);
    let done = clients::finish(connects.ok).await;

    let span = before.to(&after);
    let delivered = done.tally.received;
    let figures = report::delivery_fields(delivered, &done.latency, &span, send_done);
    eprintln!(
        "text: {sent} sent ({acked} acked, {} refused), {delivered}/{expected} delivered, lost {}, {} deliveries/s; {}",
        shared.nacked.load(Ordering::Relaxed),
        expected.saturating_sub(delivered),
        figures["deliveries_per_s"],
        report::delivery_summary(delivered, &done.latency, &span),
    );
    for e in &done.errors {
        eprintln!("text: a connection ended early: {e}");
    }
    let mut json = json!({
        "workload": "text",
        "clients": n,
        "connect_errors": connects.errors.len(),
        "senders": senders,
        "room_size": target.room_size,
        "rate_per_sender": load.rate,
        "duration_s": load.seconds,
        "sources": target.sources.len(),
        "sent": sent,
        "acked": acked,
        "nacked": shared.nacked.load(Ordering::Relaxed),
        "send_rate": num(sent as f64 / send_done.max(1e-9), 1),
        "expected": expected,
        "delivered": delivered,
        "lost": expected.saturating_sub(delivered),
        "duplicates": done.tally.duplicates,
        "broken": shared.broken.load(Ordering::Relaxed),
        "send_lag_max_ms": num(shared.send_lag_max_us.load(Ordering::Relaxed) as f64 / 1000.0, 3),
    });
    if let Some(o) = json.as_object_mut() {
        o.extend(figures);
    }
    Ok(json.as_object().cloned().unwrap_or_default())
}
