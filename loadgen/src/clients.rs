//! Many simulated users: connecting them with bounded concurrency from
//! several source addresses, and the reader and writer task each one runs.
//! Everything on the wire goes through client-core's [`Link`].

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client_core::link::{self, Link, LinkReader, LinkWriter};
use client_core::{Fingerprint, Psk};
use protocol::PROTOCOL_VERSION;
use protocol::message::{ClientMessage, Limits, RoomJoin, ServerMessage};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::marker;
use crate::stats::{Histogram, Tally};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server (loopback only; checked by the caller).
    pub server: SocketAddr,
    /// The server's pre-shared key.
    pub key: Psk,
    /// The server password, if any.
    pub password: Option<String>,
    /// Source addresses, used round-robin.
    pub sources: Vec<IpAddr>,
    /// The identity every connection must show: given, or the first one
    /// seen in this run (trust on first use, then pinned).
    pub pin: Arc<Mutex<Option<Fingerprint>>>,
    /// Most time one connection (connect, handshake, login) may take.
    pub timeout: Duration,
    /// Clients in rooms of this many (client `i` alone in room `lg{i / K}`,
    /// where its lines go); `None`: everyone in the server's default rooms.
    pub room_size: Option<usize>,
}

/// The first `n` addresses of 127.0.0.0/8 from 127.0.0.1 (127.0.0.1,
/// 127.0.0.2, …, 127.0.1.0, …).
pub fn loopback_sources(n: usize) -> Vec<IpAddr> {
    let base = u32::from(Ipv4Addr::new(127, 0, 0, 1));
    (0..n.clamp(1, 1 << 23) as u32).map(|i| IpAddr::V4(Ipv4Addr::from(base + i))).collect()
}

/// Handshakes in flight per source address at most: the server lets 16 run
/// from one address before its oldest gives way.
pub const IN_FLIGHT_PER_SOURCE: usize = 8;

/// How many source addresses `clients` need with at most `per_source` each
/// and `in_flight` connecting at once.
pub fn sources_needed(clients: usize, per_source: usize, in_flight: usize) -> usize {
    clients.div_ceil(per_source.max(1)).max(in_flight.div_ceil(IN_FLIGHT_PER_SOURCE)).max(1)
}

/// A logged-in connection.
#[derive(Debug)]
pub struct Connected {
    /// The link, before it is split.
    pub link: Link,
    /// What the welcome announced.
    pub limits: Limits,
}

/// Connects, checks the identity and logs in as `name` from `source`.
pub async fn connect_one(target: &Target, source: IpAddr, name: &str, index: usize) -> Result<Connected, String> {
    let work = async {
        let stream =
            link::dial(target.server, Some(source)).await.map_err(|e| format!("connect from {source}: {e}"))?;
        let mut link = Link::handshake(stream, &target.key).await.map_err(|e| e.to_string())?;
        {
            let mut pin = target.pin.lock().map_err(|_| "pin lock poisoned".to_owned())?;
            match *pin {
                None => *pin = Some(link.fingerprint()),
                Some(p) if p == link.fingerprint() => {}
                Some(p) => return Err(format!("server identity changed: pinned {p}, got {}", link.fingerprint())),
            }
        }
        let login = ClientMessage::Login {
            version: PROTOCOL_VERSION,
            username: name.to_owned(),
            password: target.password.clone(),
            resume: None,
            first_id: Some(1),
            restored: false,
            rooms: target.room_size.map(|k| vec![RoomJoin { room: format!("lg{}", index / k.max(1)), after: None }]),
            // Figures of live traffic: no history on joining.
            history: Some(0),
            account_password: None,
        };
        let welcome = link.login(&login).await.map_err(|e| e.to_string())?;
        Ok(Connected { link, limits: welcome.limits })
    };
    tokio::time::timeout(target.timeout, work).await.unwrap_or_else(|_| Err("connect timed out".into()))
}

/// The outcome of connecting many clients.
#[derive(Debug)]
pub struct Connects<T> {
    /// What `then` made of each client that connected, in index order.
    pub ok: Vec<T>,
    /// Why the others failed.
    pub errors: Vec<String>,
    /// Connect-to-welcome times (µs) of the successful ones.
    pub latency: Histogram,
    /// Wall time of the whole phase, in seconds.
    pub seconds: f64,
}

/// Connects `n` clients named `prefix0`, `prefix1`, … with at most
/// `in_flight` at once, then hands each to `then` (which should start its
/// tasks at once: the server fans every join out to everyone, and a client
/// that does not read is disconnected as too slow).
pub async fn connect_many<T, F, Fut>(target: &Target, n: usize, in_flight: usize, prefix: &str, then: F) -> Connects<T>
where
    T: Send + 'static,
    F: Fn(usize, Connected) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, String>> + Send,
{
    let gate = Arc::new(Semaphore::new(in_flight.max(1)));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let gate = gate.clone();
        let target = target.clone();
        let then = then.clone();
        let name = format!("{prefix}{i}");
        handles.push(tokio::spawn(async move {
            let Ok(_permit) = gate.acquire_owned().await else { return Err("closed".to_owned()) };
            let t = Instant::now();
            let source = target.sources[i % target.sources.len()];
            let c = connect_one(&target, source, &name, i).await?;
            let us = t.elapsed().as_micros() as u64;
            drop(_permit);
            then(i, c).await.map(|v| (v, us))
        }));
    }
    let mut out =
        Connects { ok: Vec::with_capacity(n), errors: Vec::new(), latency: Histogram::default(), seconds: 0.0 };
    for h in handles {
        match h.await {
            Ok(Ok((v, us))) => {
                out.ok.push(v);
                out.latency.record(us);
            }
            Ok(Err(e)) => out.errors.push(e),
            Err(e) => out.errors.push(format!("task failed: {e}")),
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    out
}

/// Counters every client task adds to.
#[derive(Debug, Default)]
pub struct Shared {
    /// Marked chat messages the writers sent.
    pub sent: AtomicU64,
    /// Clients started with something to send.
    pub senders: AtomicU64,
    /// The furthest any message went out behind its schedule, in µs (the
    /// latency figures start at the send; this shows when the sender itself
    /// fell behind).
    pub send_lag_max_us: AtomicU64,
    /// Chat messages the server acknowledged.
    pub acked: AtomicU64,
    /// Chat messages the server refused.
    pub nacked: AtomicU64,
    /// Marked chat messages received.
    pub received: AtomicU64,
    /// Clients whose connection ended before the run did.
    pub broken: AtomicU64,
}

/// What one client's reader saw.
#[derive(Debug, Default)]
pub struct ReaderReport {
    /// Marked messages by sender and number.
    pub tally: Tally,
    /// Their latencies.
    pub latency: Histogram,
    /// Other messages (presence, acks, pongs).
    pub other: u64,
    /// Why the connection ended early, if it did.
    pub error: Option<String>,
}

/// Reads until `stop`: counts marked messages, acks and nacks. Latency is
/// from when a message was sent to when it arrived.
pub fn spawn_reader(
    mut rx: LinkReader,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) -> JoinHandle<ReaderReport> {
    tokio::spawn(async move {
        let mut report = ReaderReport::default();
        // One stop future for the whole loop (not one per message).
        let stopped = stop.wait_for(|s| *s);
        tokio::pin!(stopped);
        loop {
            let msg = tokio::select! {
                biased;
                _ = &mut stopped => break,
                m = rx.recv() => m,
            };
            match msg {
                Ok(ServerMessage::Message { text, .. }) => match marker::parse_text(&text) {
                    Some((sender, seq, ns)) => {
                        report.latency.record(marker::now_ns().saturating_sub(ns) / 1000);
                        report.tally.record(sender, seq);
                        shared.received.fetch_add(1, Ordering::Relaxed);
                    }
                    None => report.other += 1,
                },
                Ok(ServerMessage::Ack { .. }) => {
                    shared.acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(ServerMessage::Nack { .. }) => {
                    shared.nacked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => report.other += 1,
                Err(e) => {
                    shared.broken.fetch_add(1, Ordering::Relaxed);
                    report.error = Some(e.to_string());
                    break;
                }
            }
        }
        report
    })
}

/// What a client's writer sends besides keepalives.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Nothing.
    Idle,
    /// From `go`, after `offset`, `rate` marked messages per second for
    /// `seconds`, as sender number `sender`.
    Rate { sender: u32, rate: f64, seconds: f64, offset: Duration },
    /// One marked message at `go`.
    Once { sender: u32 },
}

/// Messages due after `elapsed` seconds at `rate` per second, capped at
/// the run's total: the first at 0 s, then one every 1/rate.
pub fn due(elapsed: f64, rate: f64, seconds: f64) -> u64 {
    let total = (rate * seconds).ceil() as u64;
    if elapsed < 0.0 {
        return 0;
    }
    ((elapsed * rate).floor() as u64 + 1).min(total)
}

/// Sends pings every `keepalive`, and marked messages as `pace` says from
/// the moment `go` turns true; on `stop`, says goodbye. Returns how many
/// marked messages it sent.
pub fn spawn_writer(
    mut tx: LinkWriter,
    keepalive: Duration,
    pace: Pace,
    mut go: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut nonce = 0u64;
        let mut sent = 0u64;
        let mut next_id = 1u64;
        let mut batch = Vec::new();
        // The send schedule, once `go` has fired.
        let mut started: Option<Instant> = None;
        loop {
            let sending = match pace {
                Pace::Idle => false,
                Pace::Once { .. } => sent == 0,
                Pace::Rate { rate, seconds, .. } => sent < (rate * seconds).ceil() as u64,
            };
            let go_pending = sending && started.is_none();
            // When the next message is due (catching up if late).
            let next_at = started.map(|s| {
                let after = match pace {
                    Pace::Rate { rate, .. } => Duration::from_secs_f64(sent as f64 / rate.max(1e-3)),
                    _ => Duration::ZERO,
                };
                tokio::time::Instant::from_std(s + after)
            });
            tokio::select! {
                biased;
                _ = async { stop.wait_for(|s| *s).await.is_ok() } => break,
                _ = async { go.wait_for(|g| *g).await.is_ok() }, if go_pending => {
                    let offset = match pace { Pace::Rate { offset, .. } => offset, _ => Duration::ZERO };
                    tokio::time::sleep(offset).await;
                    started = Some(Instant::now());
                }
                _ = tokio::time::sleep_until(next_at.unwrap_or_else(tokio::time::Instant::now)), if sending && next_at.is_some() => {
                    let elapsed = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
                    let (sender, target) = match pace {
                        Pace::Rate { sender, rate, seconds, .. } => (sender, due(elapsed, rate, seconds)),
                        Pace::Once { sender } => (sender, 1),
                        Pace::Idle => continue,
                    };
                    batch.clear();
                    while sent < target {
                        // Stamped when it goes (as murmurd's load generator
                        // does); how far behind its schedule it went is
                        // reported apart, so a late sender shows.
                        let due_at = match pace {
                            Pace::Rate { rate, .. } => {
                                started.map(|s| s + Duration::from_secs_f64(sent as f64 / rate.max(1e-3)))
                            }
                            _ => started,
                        };
                        let now = marker::now_ns();
                        let lag_us = due_at.map_or(0, |d| now.saturating_sub(marker::ns_at(d)) / 1000);
                        shared.send_lag_max_us.fetch_max(lag_us, Ordering::Relaxed);
                        let text = marker::text(sender, sent, now);
                        batch.push(ClientMessage::Chat { id: next_id, text, room: None, to: None });
                        next_id += 1;
                        sent += 1;
                    }
                    if !batch.is_empty() {
                        if tx.send_all(&batch).await.is_err() {
                            return sent;
                        }
                        shared.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                }
                _ = ping.tick() => {
                    nonce += 1;
                    if tx.send(&ClientMessage::Ping { nonce }).await.is_err() {
                        return sent;
                    }
                }
            }
        }
        let _ = tx.send(&ClientMessage::Quit).await;
        tx.close().await;
        sent
    })
}

/// A running client.
#[derive(Debug)]
pub struct Client {
    /// Its reader task.
    pub reader: JoinHandle<ReaderReport>,
    /// Its writer task.
    pub writer: JoinHandle<u64>,
}

/// Splits a connection and starts its reader and writer.
pub fn start(
    c: Connected,
    pace: Pace,
    go: &watch::Receiver<bool>,
    stop: &watch::Receiver<bool>,
    shared: &Arc<Shared>,
) -> Client {
    let keepalive = Duration::from_secs(u64::from(c.limits.keepalive_secs.max(1)));
    if !matches!(pace, Pace::Idle) {
        shared.senders.fetch_add(1, Ordering::Relaxed);
    }
    let (rx, tx) = c.link.split();
    Client {
        reader: spawn_reader(rx, stop.clone(), shared.clone()),
        writer: spawn_writer(tx, keepalive, pace, go.clone(), stop.clone(), shared.clone()),
    }
}

/// Everything the clients saw, once stopped.
#[derive(Debug, Default)]
pub struct Finished {
    /// Marked messages the writers sent.
    pub sent: u64,
    /// Readers' tallies, merged.
    pub tally: Tally,
    /// Readers' latencies, merged.
    pub latency: Histogram,
    /// Other messages the readers got.
    pub other: u64,
    /// Errors of readers whose connection ended early (first few).
    pub errors: Vec<String>,
}

/// Stops every client (after `stop` was set) and gathers what they saw.
pub async fn finish(clients: Vec<Client>) -> Finished {
    let mut f = Finished::default();
    for c in clients {
        if let Ok(Ok(sent)) = tokio::time::timeout(Duration::from_secs(10), c.writer).await {
            f.sent += sent;
        }
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(10), c.reader).await {
            f.tally.merge(&r.tally);
            f.latency.merge(&r.latency);
            f.other += r.other;
            if let Some(e) = r.error
                && f.errors.len() < 5
            {
                f.errors.push(e);
            }
        }
    }
    f
}

/// Waits until `counter` reaches `target` or `deadline` passes; returns
/// whether it did. Polls every 20 ms.
pub async fn wait_for_count(counter: &AtomicU64, target: u64, deadline: Duration) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if counter.load(Ordering::Relaxed) >= target {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_spread_over_loopback() {
        assert_eq!(sources_needed(1000, 50, 32), 20);
        assert_eq!(sources_needed(1001, 50, 32), 21);
        assert_eq!(sources_needed(100, 50, 32), 4, "in-flight handshakes spread too");
        assert_eq!(sources_needed(0, 50, 1), 1);
        assert_eq!(sources_needed(10, 0, 0), 10);
        let s = loopback_sources(300);
        assert_eq!(s[0], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(s[254], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 255)));
        assert_eq!(s[255], IpAddr::V4(Ipv4Addr::new(127, 0, 1, 0)));
        assert!(s.iter().all(IpAddr::is_loopback));
    }

    #[test]
    fn the_schedule_sends_the_first_at_once_then_one_per_period() {
        assert_eq!(due(-0.1, 10.0, 1.0), 0);
        assert_eq!(due(0.0, 10.0, 1.0), 1);
        assert_eq!(due(0.099, 10.0, 1.0), 1);
        assert_eq!(due(0.1, 10.0, 1.0), 2);
        assert_eq!(due(0.95, 10.0, 1.0), 10);
        assert_eq!(due(5.0, 10.0, 1.0), 10, "never more than rate × seconds");
        assert_eq!(due(0.5, 1600.0, 15.0), 801);
    }
}
