//! The `connect` workload: M clients connect (handshake, RSA signature,
//! login) with C in flight and stay connected, idle; the server's CPU per
//! connect and its memory per idle client are measured. With `broadcast`,
//! one of them then sends one message to all the others.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::clients::{self, Pace, Shared, Target};
use crate::procfs::{self, CpuMark};
use crate::report::{num, opt, show};

/// What to run.
#[derive(Debug, Clone)]
pub struct ConnectLoad {
    /// Clients to connect.
    pub clients: usize,
    /// Connections in flight at once.
    pub in_flight: usize,
    /// Seconds to wait after the last connect before measuring memory.
    pub settle: f64,
    /// Then send one message from the first client to all others.
    pub broadcast: bool,
}

/// Runs the workload; returns the run's figures.
pub async fn run(target: &Target, load: &ConnectLoad, server_pid: u32) -> anyhow::Result<Map<String, Value>> {
    let shared = Arc::new(Shared::default());
    let (go_tx, go) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let rss_before = procfs::rss_kib(server_pid);
    let before = CpuMark::now(server_pid);
    let prefix = format!("c{}_", std::process::id() % 100_000);
    let connects = {
        let (go, stop, shared) = (go.clone(), stop.clone(), shared.clone());
        let broadcast = load.broadcast;
        clients::connect_many(target, load.clients, load.in_flight, &prefix, move |i, c| {
            let pace = if broadcast && i == 0 { Pace::Once { sender: 0 } } else { Pace::Idle };
            let client = clients::start(c, pace, &go, &stop, &shared);
            async move { Ok(client) }
        })
        .await
    };
    let connected = CpuMark::now(server_pid);
    let rss_connected = procfs::rss_kib(server_pid);
    let ok = connects.ok.len();
    let conn_span = before.to(&connected);
    let per_s = ok as f64 / connects.seconds.max(1e-9);
    eprintln!(
        "connect: {ok}/{} in {:.2} s ({per_s:.0}/s), p50 {:.1} ms p99 {:.1} ms; server {} ms CPU per connect",
        load.clients,
        connects.seconds,
        connects.latency.quantile_ms(0.5),
        connects.latency.quantile_ms(0.99),
        show(conn_span.server_us_per(ok as u64).map(|us| us / 1000.0), 2),
    );
    if let Some(e) = connects.errors.first() {
        eprintln!("connect: {} failed, e.g. {e}", connects.errors.len());
    }
    tokio::time::sleep(Duration::from_secs_f64(load.settle)).await;
    let rss_settled = procfs::rss_kib(server_pid);
    let kib_per_client = rss_before.zip(rss_settled).map(|(a, b)| (b as f64 - a as f64) / ok.max(1) as f64);
    eprintln!(
        "connect: server RSS {} KiB before, {} KiB with {ok} idle clients: {} KiB per client",
        show(rss_before.map(|v| v as f64), 0),
        show(rss_settled.map(|v| v as f64), 0),
        show(kib_per_client, 1),
    );

    let mut fields = json!({
        "workload": "connect",
        "clients": load.clients,
        "ok": ok,
        "errors": connects.errors.len(),
        "concurrency": load.in_flight,
        "sources": target.sources.len(),
        "elapsed_s": num(connects.seconds, 3),
        "conn_per_s": num(per_s, 1),
        "connect_p50_ms": num(connects.latency.quantile_ms(0.5), 2),
        "connect_p99_ms": num(connects.latency.quantile_ms(0.99), 2),
        "server_cpu_connect_s": opt(conn_span.server, 2),
        "server_ms_per_connect": opt(conn_span.server_us_per(ok as u64).map(|us| us / 1000.0), 3),
        "server_cpu_pct_connecting": opt(conn_span.server_pct(), 1),
        "rss_before_kib": rss_before,
        "rss_connected_kib": rss_connected,
        "rss_settled_kib": rss_settled,
        "kib_per_client": opt(kib_per_client, 1),
        "loadgen_cpu_s": opt(conn_span.me, 2),
    });

    if load.broadcast && ok > 1 {
        let b0 = CpuMark::now(server_pid);
        let _ = go_tx.send(true);
        let expected = (ok - 1) as u64;
        let all = clients::wait_for_count(&shared.received, expected, Duration::from_secs(60)).await;
        let span = b0.to(&CpuMark::now(server_pid));
        let _ = stop_tx.send(true);
        let done = clients::finish(connects.ok).await;
        let lat = &done.latency;
        eprintln!(
            "broadcast: {}/{expected} delivered{}; latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            done.tally.received,
            if all { "" } else { " (gave up after 60 s)" },
            lat.quantile_ms(0.5),
            lat.quantile_ms(0.99),
            lat.max() as f64 / 1000.0
        );
        if let Some(o) = fields.as_object_mut() {
            o.insert("broadcast_expected".into(), json!(expected));
            o.insert("broadcast_delivered".into(), json!(done.tally.received));
            o.insert("broadcast_p50_ms".into(), num(lat.quantile_ms(0.5), 2));
            o.insert("broadcast_p99_ms".into(), num(lat.quantile_ms(0.99), 2));
            o.insert("broadcast_max_ms".into(), num(lat.max() as f64 / 1000.0, 2));
            o.insert("broadcast_server_cpu_s".into(), opt(span.server, 3));
            o.insert("broken".into(), json!(shared.broken.load(Ordering::Relaxed)));
        }
    } else {
        let _ = stop_tx.send(true);
        let done = clients::finish(connects.ok).await;
        if let Some(o) = fields.as_object_mut() {
            o.insert("msgs_received_by_clients".into(), json!(done.other));
            o.insert("broken".into(), json!(shared.broken.load(Ordering::Relaxed)));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(o) = fields.as_object_mut() {
        o.insert("rss_after_disconnect_kib".into(), json!(procfs::rss_kib(server_pid)));
    }
    Ok(fields.as_object().cloned().unwrap_or_default())
}
