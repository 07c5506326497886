//! Hostile and broken peers. Attackers come from other loopback addresses
//! (127.0.0.2 and up) than the user who must still get in (127.0.0.1).
//! Behaviour only, with generous deadlines; the figures (how fast a user
//! gets in during a flood) come from `scripts/abuse.sh`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use protocol::message::{ClientMessage, RefusalCode, ServerMessage};
use socket_chatroom_tests::{DEADLINE, RawClient, TestServer, closed_within, host};

#[test]
fn a_user_gets_in_during_a_wrong_key_flood_which_costs_no_rsa_work() {
    let server = TestServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU32::new(0));
    let attackers: Vec<_> = (2..6u8)
        .map(|n| {
            let (stop, made, addr) = (stop.clone(), made.clone(), server.addr);
            std::thread::spawn(move || {
                let mut tries = 0u32;
                // Bounded: stops when told, or after 2,000 connections.
                while !stop.load(Ordering::SeqCst) && tries < 2000 {
                    tries += 1;
                    made.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut c) = RawClient::connect_from(host(n), addr) else { continue };
                    // The server's hello, then a first frame that is not a token under its key.
                    let _ = c.recv_frame(Duration::from_secs(5));
                    let _ = c.send_frame(b"gAAAAABnot-a-fernet-token-under-this-key");
                    let _ = c.recv_frame(Duration::from_secs(5));
                }
                tries
            })
        })
        .collect();
    // Once the flood is going, join from 127.0.0.1.
    let end = Instant::now() + DEADLINE;
    while made.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < end, "the flood never started");
        std::thread::yield_now();
    }
    let start = Instant::now();
    let user = RawClient::login(server.addr, &server.key, "alice", None);
    let took = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    let tries: u32 = attackers.into_iter().map(|a| a.join().unwrap_or(0)).sum();
    assert!(user.is_ok(), "the user was kept out: {:?}", user.err());
    assert!(tries > 0);
    eprintln!("joined in {took:?} during a flood of {tries} wrong-key connections");
    // The flood cost no RSA work: the one signature is the user's.
    let mut server = server;
    server.proc.signal("TERM");
    assert_eq!(server.proc.wait(), 0);
    let log = server.proc.stderr();
    assert!(log.contains("rsa_signatures: 1"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn idle_connections_from_many_addresses_are_reaped_and_keep_nobody_out() {
    let server = TestServer::with_config("handshake_timeout_secs = 2\nmax_handshakes = 64");
    // 600 connections from 60 addresses (10 each, under the per-address
    // cap), never finishing the handshake.
    let mut idle: Vec<RawClient> = Vec::new();
    for n in 0..600u32 {
        let from = host(2 + (n % 60) as u8);
        if let Ok(c) = RawClient::connect_from(from, server.addr) {
            idle.push(c);
        }
    }
    assert!(idle.len() >= 500, "only {} connections opened", idle.len());
    let user = RawClient::login(server.addr, &server.key, "alice", None);
    assert!(user.is_ok(), "the user was kept out: {:?}", user.err());
    // The handshake deadline (or the cap) closes every one of them.
    let end = Instant::now() + DEADLINE;
    for c in &mut idle {
        assert!(closed_within(c, end.saturating_duration_since(Instant::now())), "an idle connection survived");
    }
}

#[test]
fn one_address_cannot_hold_more_than_its_share() {
    let server = TestServer::with_config(
        "max_handshakes_per_address = 4\nmax_clients_per_address = 3\nhandshake_timeout_secs = 60",
    );
    let key = server.key.clone();
    // Logged in: three from 127.0.0.2, the fourth refused; others unaffected.
    let _ok: Vec<RawClient> = (0..3)
        .map(|i| RawClient::login_from(host(2), server.addr, &key, &format!("u{i}")).expect("under the cap"))
        .collect();
    match RawClient::login_from(host(2), server.addr, &key, "u3") {
        Err(ServerMessage::Refused { code: RefusalCode::AddressFull, .. }) => {}
        other => panic!("expected address_full, got {:?}", other.err()),
    }
    RawClient::login_from(host(3), server.addr, &key, "elsewhere").expect("another address is not affected");

    // Handshakes: an address holding its 4 and opening more loses its own oldest.
    let mut first: Vec<RawClient> =
        (0..4).map(|_| RawClient::connect_from(host(4), server.addr).expect("connect")).collect();
    let _more: Vec<RawClient> =
        (0..4).map(|_| RawClient::connect_from(host(4), server.addr).expect("connect")).collect();
    for c in &mut first {
        assert!(closed_within(c, DEADLINE), "the address's oldest handshakes give way");
    }
    // And someone else still gets in, with the deadline a minute away.
    RawClient::login_from(host(5), server.addr, &key, "newcomer").expect("others get in");
}

#[test]
fn peers_dying_mid_frame_handshake_or_voice_leave_nothing_behind() {
    let server = TestServer::start();
    let mut watcher = server.raw("watcher");
    let _wv = watcher.join_voice();

    // Mid-frame: a length prefix promising more than ever comes.
    let mut c = RawClient::connect(server.addr);
    let _ = c.recv_frame(DEADLINE);
    let _ = c.send_bytes(&[0, 0, 0, 200, b'x']);
    drop(c);
    // Mid-handshake: hello read, nothing answered.
    let mut c = RawClient::connect(server.addr);
    let _ = c.recv_frame(DEADLINE);
    drop(c);
    // Logged in, mid-voice, in the middle of a sealed frame.
    let mut v = server.raw("talker");
    let mut voice = v.join_voice();
    for _ in 0..5 {
        voice.keepalive();
    }
    watcher.recv_until(
        "talker in voice",
        |m| matches!(m, ServerMessage::VoiceUsers { users, .. } if users.iter().any(|u| u.name == "talker")),
    );
    let _ = v.send_bytes(&[0, 0, 1, 0, b'g', b'A']);
    drop(v);
    drop(voice);

    // The watcher sees the talker leave voice and the room; nobody else is left.
    watcher.recv_until(
        "talker out of voice",
        |m| matches!(m, ServerMessage::VoiceUsers { users, .. } if users.iter().all(|u| u.name != "talker")),
    );
    watcher.recv_until("talker left", |m| matches!(m, ServerMessage::Left { user, .. } if user == "talker"));
    watcher.send(&ClientMessage::Who { room: None, offset: None });
    let users = watcher.recv_until("user list", |m| matches!(m, ServerMessage::Users { .. }));
    assert_eq!(users, ServerMessage::Users { room: None, users: vec!["watcher".into()], users_total: 1 });
}

#[test]
fn a_new_key_after_sighup_admits_new_connections_and_keeps_users() {
    let server = TestServer::start();
    let old_key = server.key.clone();
    let mut alice = server.raw("alice");
    let mut bob = server.raw("bob");
    let out = std::process::Command::new(socket_chatroom_tests::bin("server"))
        .arg("gen-key")
        .arg("--config")
        .arg(server.dir.path().join("config.toml"))
        .output()
        .expect("gen-key");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new_key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_ne!(new_key, old_key);
    server.proc.signal("HUP");
    // The reload is asynchronous: wait until the new key is taken.
    let end = Instant::now() + DEADLINE;
    while RawClient::login(server.addr, &new_key, "carol", None).is_err() {
        assert!(Instant::now() < end, "the new key was never taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(RawClient::handshake(server.addr, &old_key).is_err(), "the old key no longer admits");
    // Users connected before are still there.
    alice.send(&ClientMessage::Chat { id: 1, text: "still here".into(), room: None, to: None });
    bob.recv_until("alice's message", |m| matches!(m, ServerMessage::Message { text, .. } if text == "still here"));
}
