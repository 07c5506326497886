//! `faults`: measures how the server holds up under abuse and faults, for
//! the figures in the README. Each scenario starts its own server (debug
//! build of the tests' binaries unless `CHATROOM_BIN_DIR` points elsewhere)
//! on loopback; attackers come from 127.0.0.2 and up, users from 127.0.0.1.
//!
//! ```sh
//! cargo run --release -p socket-chatroom-tests --bin faults [-- wrong-key|idle|flooder|restart|far-flood|guessing|key-holders|reflect|soak[=MINUTES]]
//! ```
//!
//! Every loop is bounded in count and time. One JSON line per scenario on
//! stdout, a human summary on stderr.

// Logins hand back the server's refusal message as it came.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::message::{ClientMessage, ServerMessage};
use socket_chatroom_tests::{RawClient, RecvError, TestServer};

fn host(a: u8, b: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, a, b))
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn rsa_signatures(server: &mut TestServer) -> Option<u64> {
    server.proc.signal("TERM");
    server.proc.wait();
    let log = server.proc.stderr();
    let i = log.rfind("rsa_signatures: ")? + "rsa_signatures: ".len();
    log[i..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Four attacker threads open connections and send a first frame that is
/// not a token under the key, for 5 s; meanwhile 20 users log in, one
/// after the other.
fn wrong_key() {
    let mut server = TestServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let attackers: Vec<_> = (2..6u8)
        .map(|n| {
            let (stop, attempts, addr) = (stop.clone(), attempts.clone(), server.addr);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(30) {
                    let Ok(mut c) = RawClient::connect_from(host(0, n), addr) else { continue };
                    let _ = c.recv_frame(Duration::from_secs(5));
                    let _ = c.send_frame(b"gAAAAABnot-a-token-under-this-key");
                    let _ = c.recv_frame(Duration::from_secs(5));
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut joins = Vec::new();
    let mut failed = 0;
    for i in 0..20 {
        let t = Instant::now();
        match RawClient::login(server.addr, &server.key, &format!("user{i}"), None) {
            Ok(c) => {
                joins.push(t.elapsed().as_secs_f64() * 1000.0);
                drop(c);
            }
            Err(_) => failed += 1,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let window = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    for a in attackers {
        let _ = a.join();
    }
    let n = attempts.load(Ordering::Relaxed);
    let signs = rsa_signatures(&mut server);
    let (p50, max) = (percentile(&mut joins.clone(), 0.5), percentile(&mut joins, 1.0));
    println!(
        r#"{{"scenario":"wrong_key_flood","bad_handshakes":{n},"per_sec":{:.0},"user_join_ms_p50":{p50:.1},"user_join_ms_max":{max:.1},"users_failed":{failed},"rsa_signatures":{},"users":20}}"#,
        n as f64 / window,
        signs.map_or(-1, |s| s as i64)
    );
    eprintln!(
        "wrong-key flood: {n} bad handshakes ({:.0}/s); 20 users joined, p50 {p50:.1} ms, max {max:.1} ms, {failed} failed; RSA signatures {} (the users' own)",
        n as f64 / window,
        signs.map_or("?".into(), |s| s.to_string())
    );
}

/// 5,000 connections that never start the handshake, from 500 addresses;
/// then a user logs in; then the deadline reaps them.
fn idle() {
    let server = TestServer::with_config("handshake_timeout_secs = 10");
    let t = Instant::now();
    let mut idle = Vec::new();
    'open: for a in 1..=20u8 {
        for b in 1..=25u8 {
            for _ in 0..10 {
                match RawClient::connect_from(host(a, b), server.addr) {
                    Ok(c) => idle.push(c),
                    Err(e) => {
                        eprintln!("idle: stopped opening at {}: {e}", idle.len());
                        break 'open;
                    }
                }
            }
        }
    }
    let opened = idle.len();
    let open_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let user = RawClient::login(server.addr, &server.key, "user", None);
    let join_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let mut reaped = 0;
    for c in &mut idle {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            match c.recv_frame(end.saturating_duration_since(Instant::now())) {
                Ok(_) => {}
                Err(RecvError::Closed | RecvError::Other(_)) => {
                    reaped += 1;
                    break;
                }
                Err(RecvError::Timeout) => break,
            }
        }
    }
    let reap_s = t.elapsed().as_secs_f64();
    println!(
        r#"{{"scenario":"idle_connections","opened":{opened},"open_secs":{open_s:.1},"user_ok":{},"user_join_ms":{join_ms:.1},"reaped":{reaped},"reaped_within_secs":{reap_s:.1}}}"#,
        user.is_ok()
    );
    eprintln!(
        "idle connections: {opened} opened in {open_s:.1} s; a user joined in {join_ms:.1} ms ({}); {reaped} reaped within {reap_s:.1} s",
        if user.is_ok() { "ok" } else { "FAILED" }
    );
}

/// 20 listeners, one user chatting at 5 msg/s with timestamps; 10 s
/// baseline, then 10 s with a client flooding as fast as it can.
fn flooder() {
    let server = TestServer::with_config(
        "max_clients_per_address = 1000\nmax_handshakes_per_address = 1000\nmax_logins_in_progress = 1000\nmax_logins_in_progress_per_address = 1000\nhandshake_burst_per_address = 1000",
    );
    let base = Instant::now();
    let lat: Arc<Mutex<Vec<(f64, f64)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let listeners: Vec<_> = (0..20)
        .map(|i| {
            let mut c = RawClient::login(server.addr, &server.key, &format!("l{i}"), None).expect("listener");
            let (lat, stop) = (lat.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(ServerMessage::Message { from, text, .. }) = c.recv(Duration::from_millis(200))
                        && from == "talker"
                        && let Ok(sent_us) = text.parse::<u64>()
                    {
                        let now = base.elapsed().as_micros() as f64;
                        if let Ok(mut l) = lat.lock() {
                            l.push((sent_us as f64 / 1e6, (now - sent_us as f64) / 1000.0));
                        }
                    }
                }
            })
        })
        .collect();
    let mut talker = RawClient::login(server.addr, &server.key, "talker", None).expect("talker");
    let flood_from = 10.0;
    let flooding = Arc::new(AtomicBool::new(false));
    let flood_sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (addr, key, flooding, flood_sent) = (server.addr, server.key.clone(), flooding.clone(), flood_sent.clone());
        std::thread::spawn(move || {
            while !flooding.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            // A persistent abuser: floods, is disconnected, comes back, for 10 s.
            let (t, mut kicks, mut id) = (Instant::now(), 0u64, 0u64);
            while t.elapsed() < Duration::from_secs(10) {
                let Ok(mut f) = RawClient::login(addr, &key, "flooder", None) else { continue };
                'flood: while t.elapsed() < Duration::from_secs(10) {
                    id += 1;
                    f.send(&ClientMessage::Chat { id, text: "spam".into(), room: None, to: None });
                    flood_sent.fetch_add(1, Ordering::Relaxed);
                    // Every 50 messages, read what came back; a disconnect ends this round.
                    if id.is_multiple_of(50) {
                        loop {
                            match f.recv(Duration::from_millis(1)) {
                                Ok(ServerMessage::Disconnect { .. }) | Err(RecvError::Closed) => {
                                    kicks += 1;
                                    break 'flood;
                                }
                                Ok(_) => {}
                                Err(_) => break,
                            }
                        }
                    }
                }
            }
            kicks
        })
    };
    for i in 1..=100u64 {
        if base.elapsed().as_secs_f64() >= flood_from && !flooding.load(Ordering::SeqCst) {
            flooding.store(true, Ordering::SeqCst);
        }
        let now_us = base.elapsed().as_micros() as u64;
        talker.send(&ClientMessage::Chat { id: i, text: now_us.to_string(), room: None, to: None });
        let _ = talker.recv(Duration::from_millis(1));
        let next = Duration::from_millis(200 * i);
        if let Some(wait) = next.checked_sub(base.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for l in listeners {
        let _ = l.join();
    }
    let kicks = flood.join().unwrap_or(0);
    let all = lat.lock().map(|l| l.clone()).unwrap_or_default();
    let mut before: Vec<f64> = all.iter().filter(|(t, _)| *t < flood_from).map(|(_, l)| *l).collect();
    let mut during: Vec<f64> = all.iter().filter(|(t, _)| *t >= flood_from).map(|(_, l)| *l).collect();
    let (b99, d99) = (percentile(&mut before, 0.99), percentile(&mut during, 0.99));
    let sent = flood_sent.load(Ordering::Relaxed);
    println!(
        r#"{{"scenario":"flooder","deliveries":{},"p99_ms_before":{b99:.2},"p99_ms_during":{d99:.2},"flood_messages":{sent},"flooder_disconnects":{kicks}}}"#,
        all.len()
    );
    eprintln!(
        "flooder: others' p99 {b99:.2} ms before, {d99:.2} ms during ({:.1}x); the flooder sent {sent} messages and was disconnected for flooding {kicks} times",
        d99 / b99
    );
}

/// The voice reflection attack of issue 13: 12 members in voice send their
/// authenticated keepalives (padded, every 0.5 s, as clients do) with a
/// forged source, a victim's address, for 10 s, while a speaker talks
/// (50 packets/s of 1,000-byte frames) to a real listener. Counts what
/// reaches the victim against what the attackers sent.
fn reflect() {
    use socket_chatroom_tests::RawVoice;
    let server = TestServer::start();
    // Sending from the victim's own socket is the forged source.
    let victim = RawVoice::fresh_socket();
    let forger = victim.try_clone().expect("clone");
    victim.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let counting = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut packets, mut bytes, mut voice, mut largest) = (0u64, 0u64, 0u64, 0usize);
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::SeqCst) {
                if let Ok(n) = victim.recv(&mut buf) {
                    packets += 1;
                    bytes += n as u64;
                    largest = largest.max(n);
                    if buf[0] != protocol::voice::Kind::Challenge as u8 {
                        voice += 1;
                    }
                }
            }
            (packets, bytes, voice, largest)
        })
    };
    let mut s_tcp = RawClient::login(server.addr, &server.key, "speaker", None).expect("speaker");
    let mut speaker = s_tcp.join_voice();
    let mut l_tcp = RawClient::login(server.addr, &server.key, "listener", None).expect("listener");
    let mut listener = l_tcp.join_voice();
    // Proven the way clients do it (`recv` answers the challenge); this
    // also runs against a server from before return routability, for the
    // "before" figure (`CHATROOM_BIN_DIR`).
    listener.keepalive();
    for i in 0.. {
        speaker.say(b"warmup");
        if listener.recv(Duration::from_millis(200)).is_some() {
            break;
        }
        assert!(i < 100, "the listener never heard the speaker");
    }
    let mut attackers: Vec<_> = (0..12)
        .map(|i| {
            let mut c = RawClient::login(server.addr, &server.key, &format!("attacker{i}"), None).expect("attacker");
            let v = c.join_voice();
            (c, v)
        })
        .collect();
    let (mut forged, mut forged_bytes, mut largest_forged, mut spoken, mut heard) = (0u64, 0u64, 0usize, 0u64, 0u64);
    let t0 = Instant::now();
    let frame = [0x5Au8; 1000];
    for n in 0..500u32 {
        if n % 25 == 0 {
            for (_, a) in &mut attackers {
                let pkt = a.keepalive_packet();
                if forger.send_to(&pkt, a.server).is_ok() {
                    forged += 1;
                    forged_bytes += pkt.len() as u64;
                    largest_forged = largest_forged.max(pkt.len());
                }
            }
            listener.keepalive();
        }
        speaker.say(&frame);
        spoken += 1;
        while listener.recv(Duration::from_millis(1)).is_some() {
            heard += 1;
        }
        if let Some(wait) = (Duration::from_millis(20) * (n + 1)).checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    while listener.recv(Duration::from_millis(300)).is_some() {
        heard += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let (packets, bytes, voice, largest) = counting.join().unwrap_or_default();
    let ratio = bytes as f64 / forged_bytes.max(1) as f64;
    println!(
        r#"{{"scenario":"reflect","attackers":12,"forged_packets":{forged},"forged_bytes":{forged_bytes},"victim_packets":{packets},"victim_bytes":{bytes},"victim_voice_packets":{voice},"largest_reply":{largest},"largest_forged":{largest_forged},"amplification":{ratio:.3},"spoken":{spoken},"listener_heard":{heard}}}"#
    );
    eprintln!(
        "reflect: 12 attackers forged {forged} keepalives ({forged_bytes} B) from the victim's address over 10 s while a speaker sent {spoken} packets; the victim got {packets} packets ({bytes} B, x{ratio:.2}; {voice} relayed voice; largest {largest} B against {largest_forged} B forged); the real listener heard {heard}"
    );
}

/// 20 `client-cli --listen` users and 2 in voice; `kill -9` the server,
/// start it again on the same address; how long until all are back.
fn restart() {
    // Everyone comes from 127.0.0.1 here: lift the per-address caps.
    let server = TestServer::with_config("max_clients_per_address = 1000\nmax_handshakes_per_address = 1000");
    let mut clients: Vec<_> = (0..20).map(|i| server.spawn_cli(&format!("u{i:02}"), &["--listen"])).collect();
    for c in &mut clients {
        c.expect_contains("* connected to");
    }
    let mut voice: Vec<_> = (0..2)
        .map(|i| server.spawn_cli(&format!("v{i}"), &["--voice", "--input", "null", "--output", "null"]))
        .collect();
    for v in &mut voice {
        v.expect_contains("* you joined voice");
    }
    let TestServer { mut proc, addr, dir, .. } = server;
    proc.signal("KILL");
    proc.wait();
    for c in clients.iter_mut().chain(voice.iter_mut()) {
        c.expect_contains("reconnecting in");
    }
    let t = Instant::now();
    let _server = TestServer::relaunch_at(dir, addr);
    let up = t.elapsed().as_secs_f64();
    let mut back = Vec::new();
    for c in &mut clients {
        c.expect_contains("* connected to");
        back.push(t.elapsed().as_secs_f64());
    }
    for v in &mut voice {
        v.expect_contains("* you joined voice");
        back.push(t.elapsed().as_secs_f64());
    }
    let last = back.iter().copied().fold(0.0, f64::max);
    println!(r#"{{"scenario":"kill9_restart","clients":22,"server_up_secs":{up:.2},"all_back_secs":{last:.2}}}"#);
    eprintln!(
        "kill -9 and restart: server up in {up:.2} s; all 20 users and 2 voice users back {last:.2} s after the restart began"
    );
}

/// `minutes` of 200 users chatting (one message every 10 s each, so 20/s
/// and 4,000 deliveries/s) and 10 in voice (two talking at 50 packets/s);
/// the server's RSS sampled every minute; at the end, every acknowledged
/// message must have reached every user (all stay connected throughout).
fn soak(minutes: u64) {
    let mut server = TestServer::with_config(
        "max_clients_per_address = 1000\nmax_handshakes_per_address = 1000\nmax_logins_in_progress = 1000\nmax_logins_in_progress_per_address = 1000\nhandshake_burst_per_address = 1000",
    );
    let pid = server.proc.child.id();
    let rss = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    };
    let users = 200usize;
    let stop = Arc::new(AtomicBool::new(false));
    // received[i][j]: messages user i got from user j; acked[j]: messages of j acknowledged.
    let received: Arc<Vec<Vec<AtomicU64>>> =
        Arc::new((0..users).map(|_| (0..users).map(|_| AtomicU64::new(0)).collect()).collect());
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..users).map(|_| AtomicU64::new(0)).collect());
    let broken = Arc::new(AtomicU64::new(0));
    // Nobody sends before everyone is in: "lost" counts only users connected throughout.
    let go = Arc::new(std::sync::Barrier::new(users + 1));
    let mut threads = Vec::new();
    for i in 0..users {
        let mut c = RawClient::login(server.addr, &server.key, &format!("s{i:03}"), None).expect("login");
        let (stop, received, acked, broken, go) =
            (stop.clone(), received.clone(), acked.clone(), broken.clone(), go.clone());
        threads.push(std::thread::spawn(move || {
            // Counts a message received from user j, or an ack of ours.
            let tally = |m: &ServerMessage| match m {
                ServerMessage::Message { from, .. } => {
                    if let Some(j) = from.strip_prefix('s').and_then(|n| n.parse::<usize>().ok())
                        && j < received[i].len()
                    {
                        received[i][j].fetch_add(1, Ordering::Relaxed);
                    }
                }
                ServerMessage::Ack { .. } => {
                    acked[i].fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            };
            go.wait();
            // Spread the senders over the 10 s period.
            let mut next = Instant::now() + Duration::from_millis(50 * i as u64);
            let mut id = 0u64;
            let mut last_ping = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                if Instant::now() >= next {
                    id += 1;
                    c.send(&ClientMessage::Chat { id, text: format!("m{id}"), room: None, to: None });
                    next += Duration::from_secs(10);
                }
                if last_ping.elapsed() > Duration::from_secs(15) {
                    c.send(&ClientMessage::Ping { nonce: 1 });
                    last_ping = Instant::now();
                }
                match c.recv(Duration::from_millis(50)) {
                    Ok(ServerMessage::Disconnect { .. }) | Err(RecvError::Closed) => {
                        broken.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(m) => tally(&m),
                    Err(_) => {}
                }
            }
            // Drain what is still on its way.
            let drain = Instant::now() + Duration::from_secs(5);
            while Instant::now() < drain {
                if let Ok(m) = c.recv(Duration::from_millis(100)) {
                    tally(&m);
                }
            }
        }));
    }
    // Voice: 10 members (separate names), two talking.
    let mut voice_threads = Vec::new();
    for k in 0..10 {
        let mut c = RawClient::login(server.addr, &server.key, &format!("voice{k}"), None).expect("voice login");
        let mut v = c.join_voice();
        let stop = stop.clone();
        voice_threads.push(std::thread::spawn(move || {
            let frame = [0x55u8; 80];
            let mut n = 0u64;
            let t0 = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                if k < 2 {
                    v.say(&frame);
                } else if n.is_multiple_of(25) {
                    v.keepalive();
                }
                while v.recv(Duration::from_millis(1)).is_some() {}
                let _ = c.recv(Duration::from_millis(1));
                if n.is_multiple_of(750) {
                    c.send(&ClientMessage::Ping { nonce: n });
                }
                if let Some(wait) = (Duration::from_millis(20) * n as u32).checked_sub(t0.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }));
    }
    go.wait();
    let end = Instant::now() + Duration::from_secs(minutes * 60);
    let mut samples = vec![rss()];
    eprintln!("soak: {users} users chatting, 10 in voice; RSS {} KiB at start", samples[0]);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(60).min(end.saturating_duration_since(Instant::now())));
        samples.push(rss());
        eprintln!("soak: minute {}: RSS {} KiB", samples.len() - 1, samples[samples.len() - 1]);
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads.into_iter().chain(voice_threads) {
        let _ = t.join();
    }
    let mut lost = 0u64;
    let mut delivered = 0u64;
    for i in 0..users {
        for j in 0..users {
            if i == j {
                continue;
            }
            let (a, r) = (acked[j].load(Ordering::Relaxed), received[i][j].load(Ordering::Relaxed));
            delivered += r;
            lost += a.saturating_sub(r);
        }
    }
    let acked_total: u64 = acked.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    // Flatness after five minutes of warm-up (allocator arenas, queues).
    let steady = if samples.len() > 6 { &samples[5..] } else { &samples[..] };
    let (lo, hi) = (steady.iter().copied().min().unwrap_or(0), steady.iter().copied().max().unwrap_or(0));
    let mean = steady.iter().sum::<u64>() as f64 / steady.len().max(1) as f64;
    let spread = if mean > 0.0 { (hi - lo) as f64 / mean * 100.0 } else { 0.0 };
    let signs = rsa_signatures(&mut server);
    println!(
        r#"{{"scenario":"soak","minutes":{minutes},"users":{users},"voice":10,"acked":{acked_total},"deliveries":{delivered},"lost":{lost},"broken_sessions":{},"rss_kib":{samples:?},"rss_spread_pct":{spread:.1},"rsa_signatures":{}}}"#,
        broken.load(Ordering::Relaxed),
        signs.map_or(-1, |s| s as i64)
    );
    eprintln!(
        "soak: {minutes} min, {acked_total} messages acknowledged, {delivered} deliveries, {lost} lost, {} sessions broken; RSS after 5 minutes {lo}-{hi} KiB (spread {spread:.1} % of the mean)",
        broken.load(Ordering::Relaxed)
    );
}

/// Idle connections (no byte sent) at `per_sec` from `addresses`, each
/// kept for two seconds unless the server closes it first, until `stop`.
fn idle_flood(server: std::net::SocketAddr, addresses: Vec<IpAddr>, per_sec: f64, stop: Arc<AtomicBool>) -> u64 {
    let started = Instant::now();
    let mut held = std::collections::VecDeque::new();
    let mut made = 0u64;
    // Bounded: stops when told, after 60 s, or after 100,000 connections.
    while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) && made < 100_000 {
        let due = started + Duration::from_secs_f64(made as f64 / per_sec);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let from = addresses[made as usize % addresses.len()];
        made += 1;
        if let Ok(c) = RawClient::connect_from(from, server) {
            held.push_back((Instant::now(), c));
        }
        while held.front().is_some_and(|(t, _)| t.elapsed() > Duration::from_secs(2)) {
            held.pop_front();
        }
    }
    made
}

/// Issue 13's first attack: 800 idle connections a second from 200
/// addresses, and a user 150 ms away (each way) logging in 12 times.
fn far_flood() {
    use socket_chatroom_tests::tcp_proxy::TcpProxy;
    let server = TestServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let floods: Vec<_> = (0..4u8)
        .map(|t| {
            let (stop, addr) = (stop.clone(), server.addr);
            let addresses = (1..=50u8).map(|b| host(1 + t, b)).collect();
            std::thread::spawn(move || idle_flood(addr, addresses, 200.0, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let proxy = TcpProxy::start_delayed(server.addr, Duration::from_millis(150));
    let started = Instant::now();
    let mut ok = 0;
    let mut times = Vec::new();
    for i in 0..12 {
        let t = Instant::now();
        if RawClient::login(proxy.addr, &server.key, &format!("far{i}"), None).is_ok() {
            ok += 1;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let window = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let made: u64 = floods.into_iter().map(|f| f.join().unwrap_or(0)).sum();
    let rate = made as f64 / (window + 1.0);
    let median = percentile(&mut times, 0.5);
    println!(
        r#"{{"scenario":"far_user_in_idle_flood","logins_ok":{ok},"logins":12,"idle_connections":{made},"idle_per_sec":{rate:.0},"addresses":200,"login_median_ms":{median:.0}}}"#
    );
    eprintln!(
        "idle flood ({made} connections, {rate:.0}/s from 200 addresses): {ok} of 12 logins 150 ms away succeeded (median {median:.0} ms)"
    );
}

/// Issue 13's fifth attack: twelve threads guess the server password from
/// one address for 6 s; the owner logs in from another every 1.5 s.
fn guessing() {
    let server = TestServer::with_config("password = \"correct horse\"");
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let held = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let guessers: Vec<_> = (0..12)
        .map(|t| {
            let (stop, answered, held, addr, key) =
                (stop.clone(), answered.clone(), held.clone(), server.addr, server.key.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(6) {
                    n += 1;
                    let Ok(c) = RawClient::connect_from(host(2, 1), addr) else { continue };
                    match c.finish_login(&key, &format!("g{t}"), Some(&format!("guess {n}")), None) {
                        Err(ServerMessage::Refused { code: protocol::message::RefusalCode::WrongPassword, .. }) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            held.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                    }
                }
            })
        })
        .collect();
    let mut owner = Vec::new();
    let mut owner_failed = 0;
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(1500));
        let t = Instant::now();
        let r = RawClient::connect_from(host(3, 1), server.addr)
            .map_err(|e| ServerMessage::Error { detail: e.to_string() })
            .and_then(|c| c.finish_login(&server.key, &format!("owner{i}"), Some("correct horse"), None));
        match r {
            Ok(_) => owner.push(t.elapsed().as_secs_f64() * 1000.0),
            Err(_) => owner_failed += 1,
        }
    }
    stop.store(true, Ordering::SeqCst);
    for g in guessers {
        let _ = g.join();
    }
    let secs = started.elapsed().as_secs_f64();
    let (answered, held) = (answered.load(Ordering::Relaxed), held.load(Ordering::Relaxed));
    let worst = owner.iter().copied().fold(0.0, f64::max);
    println!(
        r#"{{"scenario":"password_guessing","threads":12,"secs":{secs:.1},"guesses_answered":{answered},"held_back":{held},"owner_logins_ok":{},"owner_failed":{owner_failed},"owner_login_max_ms":{worst:.0}}}"#,
        owner.len()
    );
    eprintln!(
        "password guessing, 12 threads from one address for {secs:.1} s: {answered} guesses answered, {held} held back; the owner from another address logged in {} of 4 times, slowest {worst:.0} ms",
        owner.len()
    );
}

/// Key holders flooding valid handshakes from four addresses while a user
/// logs in every 200 ms from another: login time with and without.
fn key_holders() {
    let mut server = TestServer::start();
    // Names are not reused: a dropped user's name stays held for them.
    let logins = |server: &TestServer, tag: &str, n: usize| -> Vec<f64> {
        let mut v = Vec::new();
        for i in 0..n {
            let t = Instant::now();
            if RawClient::login(server.addr, &server.key, &format!("{tag}{i}"), None).is_ok() {
                v.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        v
    };
    let mut quiet = logins(&server, "quiet", 20);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let flooders: Vec<_> = (0..4u8)
        .map(|n| {
            let (stop, done, addr, key) = (stop.clone(), done.clone(), server.addr, server.key.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(30) {
                    let Ok(c) = RawClient::connect_from(host(4, n + 1), addr) else { continue };
                    if c.do_handshake(&key).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut busy = logins(&server, "busy", 20);
    stop.store(true, Ordering::SeqCst);
    for f in flooders {
        let _ = f.join();
    }
    let secs = started.elapsed().as_secs_f64();
    let signed = done.load(Ordering::Relaxed);
    let (q, b) = (percentile(&mut quiet, 0.5), percentile(&mut busy, 0.5));
    let sigs = rsa_signatures(&mut server).unwrap_or(0);
    println!(
        r#"{{"scenario":"key_holder_flood","flood_handshakes_signed":{signed},"secs":{secs:.1},"login_median_quiet_ms":{q:.1},"login_median_flood_ms":{b:.1},"rsa_signatures":{sigs}}}"#
    );
    eprintln!(
        "valid-key handshake flood from 4 addresses: {signed} signed in {secs:.1} s ({:.0}/s); ordinary login median {q:.1} ms quiet, {b:.1} ms during the flood",
        signed as f64 / secs
    );
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let all = ["wrong-key", "idle", "flooder", "restart", "far-flood", "guessing", "key-holders", "reflect"];
    let run: Vec<&str> = if which.is_empty() { all.to_vec() } else { which.iter().map(String::as_str).collect() };
    for w in run {
        if let Some(m) = w.strip_prefix("soak") {
            // `soak` (60 minutes) or `soak=MINUTES`.
            let minutes = m.strip_prefix('=').and_then(|m| m.parse().ok()).unwrap_or(60);
            soak(minutes);
            continue;
        }
        match w {
            "wrong-key" => wrong_key(),
            "idle" => idle(),
            "flooder" => flooder(),
            "restart" => restart(),
            "far-flood" => far_flood(),
            "guessing" => guessing(),
            "key-holders" => key_holders(),
            "reflect" => reflect(),
            other => {
                eprintln!("faults: unknown scenario {other:?}; one of {all:?}");
                std::process::exit(2);
            }
        }
    }
}
