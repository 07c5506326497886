//! The `voice` workload: K speakers and N listeners join voice; each
//! speaker sends one 20 ms Opus-sized packet every 20 ms over UDP, sealed
//! as client-core's voice engine seals them ([`protocol::voice`]); every
//! other voice member should receive each one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protocol::message::{ClientMessage, ServerMessage};
use protocol::voice::{self, Direction, Kind, VoiceOpener, VoiceSealer};
use serde_json::{Map, Value, json};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clients::{self, Connected, Pace, Shared, Target};
use crate::marker;
use crate::procfs::CpuMark;
use crate::report::{self, num};
use crate::stats::{Histogram, Tally, expected_deliveries};

/// What to run.
#[derive(Debug, Clone)]
pub struct VoiceLoad {
    /// Members who only listen.
    pub listeners: usize,
    /// Members who speak (and listen to the other speakers).
    pub speakers: usize,
    /// Seconds of speaking.
    pub seconds: f64,
    /// Opus payload bytes per packet (80 ≈ 32 kb/s).
    pub payload: usize,
    /// Connections in flight while connecting.
    pub in_flight: usize,
}

/// Phases of the run, as every member's UDP task sees them.
const REGISTER: u8 = 0;
const WARMUP: u8 = 1;
const MEASURE: u8 = 2;
const QUIET: u8 = 3;

#[derive(Debug, Default)]
struct VoiceShared {
    /// Measured packets sent by speakers.
    sent: AtomicU64,
    /// Measured packets received by anyone.
    received: AtomicU64,
    /// Members that heard every other speaker during the warm-up.
    ready: AtomicU64,
    /// Packets that failed to open.
    bad: AtomicU64,
    /// The furthest a measured packet went out behind its 20 ms slot, in µs.
    send_lag_max_us: AtomicU64,
}

#[derive(Debug, Default)]
struct MemberReport {
    tally: Tally,
    latency: Histogram,
}

/// Joins voice on a logged-in link: the voice id, the relay's address and
/// this join's keys (client → server, server → client).
async fn join_voice(c: &mut Connected) -> Result<(u32, SocketAddr, [u8; 32], [u8; 32]), String> {
    c.link.send(&ClientMessage::VoiceJoin { room: None }).await.map_err(|e| e.to_string())?;
    for _ in 0..100_000 {
        match c.link.recv().await.map_err(|e| e.to_string())? {
            ServerMessage::VoiceJoined { voice_id, udp_port, epoch, .. } => {
                let (up, down) = voice::voice_keys(c.link.keys(), epoch);
                return Ok((voice_id, SocketAddr::new(c.link.peer().ip(), udp_port), up, down));
            }
            ServerMessage::Error { detail } => return Err(format!("voice join refused: {detail}")),
            _ => {}
        }
    }
    Err("no answer to the voice join".into())
}

#[allow(clippy::too_many_arguments)]
fn spawn_member(
    socket: UdpSocket,
    voice_id: u32,
    up: [u8; 32],
    down: [u8; 32],
    speaker: Option<(u32, usize)>,
    payload: usize,
    speakers: usize,
    mut phase: watch::Receiver<u8>,
    shared: Arc<VoiceShared>,
) -> JoinHandle<MemberReport> {
    tokio::spawn(async move {
        let mut report = MemberReport::default();
        let mut sealer = VoiceSealer::new(&up, Direction::Up);
        let mut opener = VoiceOpener::new(&down, Direction::Down);
        let (mut pkt, mut body, mut frame, mut opened) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut buf = vec![0u8; voice::MAX_PACKET + 64];
        let mut keepalive = tokio::time::interval(voice::path::KEEPALIVE_INTERVAL);
        // Speakers spread over the 20 ms frame period.
        let offset = speaker
            .map_or(Duration::ZERO, |(i, _)| Duration::from_micros(20_000 * u64::from(i) / speakers.max(1) as u64));
        let mut frames = tokio::time::interval_at(tokio::time::Instant::now() + offset, Duration::from_millis(20));
        frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut seq = 0u64;
        let mut heard_warmup = std::collections::HashSet::new();
        let mut ready = false;
        let others = if speaker.is_some() { speakers.saturating_sub(1) } else { speakers };
        if others == 0 {
            // A lone speaker has nobody to hear.
            ready = true;
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            let now_phase = *phase.borrow();
            tokio::select! {
                biased;
                changed = phase.changed() => if changed.is_err() { break },
                r = socket.recv(&mut buf) => {
                    let Ok(n) = r else { continue };
                    let Ok(h) = opener.open(&buf[..n], &mut opened) else {
                        shared.bad.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if h.kind == Kind::Challenge {
                        // Return routability: echo from this socket.
                        sealer.seal(Kind::Proof, voice_id, &opened, &mut pkt);
                        let _ = socket.send(&pkt).await;
                        continue;
                    }
                    if h.kind != Kind::Voice { continue }
                    let Some(v) = voice::decode_voice_body(&opened) else { continue };
                    let Some((p, from, s, ns)) = v.frames.first().and_then(|f| marker::parse_voice(f)) else { continue };
                    if p == marker::MEASURED {
                        report.latency.record(marker::now_ns().saturating_sub(ns) / 1000);
                        report.tally.record(from, s);
                        shared.received.fetch_add(1, Ordering::Relaxed);
                    } else if !ready {
                        heard_warmup.insert(from);
                        if heard_warmup.len() >= others {
                            ready = true;
                            shared.ready.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                due = frames.tick(), if speaker.is_some() && matches!(now_phase, WARMUP | MEASURE) => {
                    let Some((me, _)) = speaker else { continue };
                    let mark = if now_phase == MEASURE { marker::MEASURED } else { marker::WARMUP };
                    // Stamped when it goes; the lag behind its 20 ms slot is reported apart.
                    let now = marker::now_ns();
                    if mark == marker::MEASURED {
                        let lag = now.saturating_sub(marker::ns_at(due.into_std())) / 1000;
                        shared.send_lag_max_us.fetch_max(lag, Ordering::Relaxed);
                    }
                    marker::voice(mark, me, seq, now, payload, &mut frame);
                    voice::encode_voice_body(seq as u32, false, &[&frame], &mut body);
                    sealer.seal(Kind::Voice, voice_id, &body, &mut pkt);
                    if socket.send(&pkt).await.is_ok() && mark == marker::MEASURED {
                        shared.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    // Measured packets are numbered from 0 for the tally.
                    seq = if mark == marker::WARMUP { 0 } else { seq + 1 };
                }
                _ = keepalive.tick() => {
                    sealer.seal(Kind::Keepalive, voice_id, &[0; voice::KEEPALIVE_PAD], &mut pkt);
                    let _ = socket.send(&pkt).await;
                }
            }
        }
        report
    })
}

/// Runs the workload; returns the run's figures.
pub async fn run(target: &Target, load: &VoiceLoad, server_pid: u32) -> anyhow::Result<Map<String, Value>> {
    let text_shared = Arc::new(Shared::default());
    let shared = Arc::new(VoiceShared::default());
    let (_go_tx, go) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let (phase_tx, phase) = watch::channel(REGISTER);
    let total = load.listeners + load.speakers;
    let prefix = format!("v{}_", std::process::id() % 100_000);
    let connects = {
        let (go, stop, text_shared, shared, phase) =
            (go.clone(), stop.clone(), text_shared.clone(), shared.clone(), phase);
        let load = load.clone();
        clients::connect_many(target, total, load.in_flight, &prefix, move |i, mut c| {
            let (go, stop, text_shared, shared, phase) =
                (go.clone(), stop.clone(), text_shared.clone(), shared.clone(), phase.clone());
            let load = load.clone();
            async move {
                let (voice_id, relay, up, down) = join_voice(&mut c).await?;
                let server = c.link.peer();
                let source = target_source(&c);
                let socket = UdpSocket::bind(SocketAddr::new(source, 0)).await.map_err(|e| format!("udp bind: {e}"))?;
                socket.connect(relay).await.map_err(|e| format!("udp connect to {relay} (server {server}): {e}"))?;
                let speaker = (i < load.speakers).then_some((i as u32, i));
                let member =
                    spawn_member(socket, voice_id, up, down, speaker, load.payload, load.speakers, phase, shared);
                let client = clients::start(c, Pace::Idle, &go, &stop, &text_shared);
                Ok((client, member))
            }
        })
        .await
    };
    let n = connects.ok.len();
    eprintln!("voice: {n}/{total} in voice after {:.2} s", connects.seconds);
    if let Some(e) = connects.errors.first() {
        eprintln!("voice: {} failed, e.g. {e}", connects.errors.len());
    }
    // Keepalives register every address; then a warm-up until everyone
    // hears every speaker (or 10 s pass).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = phase_tx.send(WARMUP);
    let all_ready = clients::wait_for_count(&shared.ready, n as u64, Duration::from_secs(10)).await;
    if !all_ready {
        eprintln!(
            "voice: only {}/{n} members heard every speaker in the warm-up",
            shared.ready.load(Ordering::Relaxed)
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let before = CpuMark::now(server_pid);
    let _ = phase_tx.send(MEASURE);
    tokio::time::sleep(Duration::from_secs_f64(load.seconds)).await;
    let _ = phase_tx.send(QUIET);
    let send_s = before.to(&CpuMark::now(0)).wall;
    // Let every speaker finish the frame it was sending and count it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = shared.sent.load(Ordering::Relaxed);
    let expected = expected_deliveries(sent, n);
    clients::wait_for_count(&shared.received, expected, Duration::from_secs(1)).await;
    let after = CpuMark::now(server_pid);
    drop(phase_tx);
    let _ = stop_tx.send(true);
    let (mut tcp, mut members) = (Vec::new(), Vec::new());
    for (c, m) in connects.ok {
        tcp.push(c);
        members.push(m);
    }
    let mut tally = Tally::default();
    let mut latency = Histogram::default();
    for m in members {
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(10), m).await {
            tally.merge(&r.tally);
            latency.merge(&r.latency);
        }
    }
    let _ = clients::finish(tcp).await;

    let span = before.to(&after);
    let delivered = tally.received;
    let lost = expected.saturating_sub(delivered);
    let loss_pct = 100.0 * lost as f64 / expected.max(1) as f64;
    eprintln!(
        "voice: {sent} packets sent, {delivered}/{expected} delivered ({loss_pct:.3} % lost); {}",
        report::delivery_summary(delivered, &latency, &span),
    );
    let mut json = json!({
        "workload": "voice",
        "listeners": load.listeners,
        "speakers": load.speakers,
        "clients": n,
        "connect_errors": connects.errors.len(),
        "sources": target.sources.len(),
        "payload": load.payload,
        "duration_s": load.seconds,
        "sent": sent,
        "expected": expected,
        "delivered": delivered,
        "lost": lost,
        "loss_pct": num(loss_pct, 3),
        "duplicates": tally.duplicates,
        "bad_packets": shared.bad.load(Ordering::Relaxed),
        "warmup_complete": all_ready,
        "send_lag_max_ms": num(shared.send_lag_max_us.load(Ordering::Relaxed) as f64 / 1000.0, 3),
    });
    if let Some(o) = json.as_object_mut() {
        o.extend(report::delivery_fields(delivered, &latency, &span, send_s));
    }
    Ok(json.as_object().cloned().unwrap_or_default())
}

/// The local address a client's TCP connection came from (its UDP socket
/// uses the same one).
fn target_source(c: &Connected) -> std::net::IpAddr {
    c.link.local().map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |a| a.ip())
}
