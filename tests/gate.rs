//! The gate in front of the login, attacked from loopback: idle floods,
//! oversized first frames, dead connections, key holders guessing passwords
//! or spending signatures, and messages that skipped the rate limit.
//! Attackers come from 127.0.0.2 and up; the user who must still get in
//! from 127.0.0.1 (or through a delaying proxy). Behaviour only, with
//! generous deadlines; the figures come from `faults gate`.

// Logins hand back the server's refusal message as it came.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use protocol::message::{ClientMessage, DisconnectCause, RefusalCode, ServerMessage};
use socket_chatroom_tests::tcp_proxy::TcpProxy;
use socket_chatroom_tests::{DEADLINE, RawClient, RecvError, TestServer, closed_within, host};

/// Opens idle connections (no byte sent) from `addresses` until `stop`,
/// keeping at most `keep` of its own open; returns how many it made.
fn idle_flood(server: SocketAddr, addresses: Vec<IpAddr>, keep: usize, stop: Arc<AtomicBool>) -> u32 {
    let mut held = std::collections::VecDeque::new();
    let mut made = 0u32;
    // Bounded: stops when told, or after 20,000 connections.
    while !stop.load(Ordering::SeqCst) && made < 20_000 {
        let from = addresses[made as usize % addresses.len()];
        made += 1;
        if let Ok(c) = RawClient::connect_from(from, server) {
            held.push_back(c);
        }
        if held.len() > keep {
            held.pop_front();
        }
        // About 200 connections a second from each flooding thread.
        std::thread::sleep(Duration::from_millis(5));
    }
    made
}

#[test]
fn a_client_far_away_logs_in_during_an_idle_flood() {
    // Eight addresses flood a pool of 32 with idle connections, turning it
    // over several times per round trip of a client 150 ms away each way.
    // The pool pushes out the address holding the most, not simply the
    // oldest connection, and a connection past the key check is out of reach.
    let server = TestServer::with_config("max_handshakes = 32\nhandshake_timeout_secs = 30");
    let stop = Arc::new(AtomicBool::new(false));
    let floods: Vec<_> = (0..2u8)
        .map(|t| {
            let (stop, addr) = (stop.clone(), server.addr);
            let addresses = (0..4u8).map(|i| host(10 + 4 * t + i)).collect();
            std::thread::spawn(move || idle_flood(addr, addresses, 200, stop))
        })
        .collect();
    let proxy = TcpProxy::start_delayed(server.addr, Duration::from_millis(150));
    let mut ok = 0;
    let mut failures = Vec::new();
    for i in 0..6 {
        match RawClient::login(proxy.addr, &server.key, &format!("far{i}"), None) {
            Ok(_) => ok += 1,
            Err(e) => failures.push(format!("{e:?}")),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let made: u32 = floods.into_iter().map(|f| f.join().unwrap_or(0)).sum();
    eprintln!("{ok} of 6 logins 150 ms away during a flood of {made} idle connections");
    assert!(made > 500, "the flood was too small to mean anything: {made}");
    assert_eq!(ok, 6, "logins failed: {failures:?}");
}

#[test]
fn a_connection_past_the_key_check_is_not_pushed_out_by_idle_ones() {
    let server = TestServer::with_config("max_handshakes = 8\nhandshake_timeout_secs = 60");
    // Past the key check (signed handshake), not logged in yet.
    let early = RawClient::connect(server.addr).do_handshake(&server.key).expect("handshake");
    // Three times the pool in idle connections from elsewhere.
    let idle: Vec<_> = (0..24u8).filter_map(|i| RawClient::connect_from(host(2 + i % 4), server.addr).ok()).collect();
    assert_eq!(idle.len(), 24);
    // They pushed each other out, not the early one: its login goes through.
    let mut early = early;
    early.send(&ClientMessage::Login {
        version: protocol::PROTOCOL_VERSION,
        username: "early".into(),
        password: None,
        resume: None,
        first_id: None,
        restored: false,
        rooms: None,
        history: None,
        account_password: None,
    });
    let got = early.recv(DEADLINE);
    assert!(matches!(got, Ok(ServerMessage::Welcome { .. })), "{got:?}");
}

#[test]
fn before_the_key_check_only_a_hello_sized_frame_is_read() {
    let server = TestServer::with_config("handshake_timeout_secs = 60");
    let mut c = RawClient::connect(server.addr);
    c.recv_frame(DEADLINE).expect("server hello");
    // A header announcing 60 kB: refused from the header, at once, rather
    // than buffered until the handshake deadline.
    c.send_bytes(&60_000u32.to_be_bytes()).expect("send");
    assert!(closed_within(&mut c, Duration::from_secs(20)), "a 60 kB first frame was waited for");
    // The real hello still fits.
    assert!(RawClient::login(server.addr, &server.key, "alice", None).is_ok());
}

#[test]
fn closed_connections_never_stand_in_for_open_ones_when_the_pool_is_full() {
    let server =
        TestServer::with_config("max_handshakes = 8\nmax_handshakes_per_address = 1000\nhandshake_timeout_secs = 60");
    // Fifty connections come and go (each waits until the server has
    // closed its side too): none of them may count later.
    for _ in 0..50 {
        let mut c = RawClient::connect_from(host(2), server.addr).expect("connect");
        c.recv_frame(DEADLINE).expect("hello");
        c.stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
        assert!(closed_within(&mut c, DEADLINE));
    }
    // Then twenty stay idle, one after the other: the first twelve must give
    // way (the pool holds eight), whatever closed before.
    let mut idle: Vec<_> = (0..20).map(|_| RawClient::connect_from(host(3), server.addr).expect("connect")).collect();
    for (i, c) in idle.iter_mut().take(12).enumerate() {
        assert!(closed_within(c, DEADLINE), "connection {i} was not pushed out: the pool grew past its cap");
    }
    // The last eight are still served: each completes a login.
    for (i, c) in idle.into_iter().skip(12).enumerate() {
        let r = c.finish_login(&server.key, &format!("u{i}"), None, None);
        assert!(r.is_ok(), "connection {} was closed: {:?}", i + 12, r.err());
    }
}

#[test]
fn password_guessing_from_one_address_backs_off_and_others_still_get_in() {
    let server = TestServer::with_config("password = \"the right one\"");
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU32::new(0));
    let held = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let guessers: Vec<_> = (0..12)
        .map(|t| {
            let (stop, answered, held, addr, key) =
                (stop.clone(), answered.clone(), held.clone(), server.addr, server.key.clone());
            std::thread::spawn(move || {
                let mut n = 0u32;
                // Bounded: six seconds, or 2,000 tries per thread.
                while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(6) && n < 2000 {
                    n += 1;
                    let Ok(c) = RawClient::connect_from(host(2), addr) else { continue };
                    match c.finish_login(&key, &format!("g{t}"), Some(&format!("guess {t} {n}")), None) {
                        Err(ServerMessage::Refused { code: RefusalCode::WrongPassword, .. }) => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(ServerMessage::Refused { code: RefusalCode::RetryLater, retry_after_ms, .. }) => {
                            assert!(retry_after_ms.is_some_and(|ms| ms > 0));
                            held.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(ServerMessage::Error { detail }) if detail.contains("retry after") => {
                            held.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => panic!("a guess was right"),
                        Err(_) => {}
                    }
                }
            })
        })
        .collect();
    // Once guessing is going, the owner logs in from elsewhere.
    let end = Instant::now() + DEADLINE;
    while answered.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < end, "the guessing never started");
        std::thread::yield_now();
    }
    let owner = RawClient::connect_from(host(3), server.addr)
        .map_err(|e| ServerMessage::Error { detail: e.to_string() })
        .and_then(|c| c.finish_login(&server.key, "owner", Some("the right one"), None));
    stop.store(true, Ordering::SeqCst);
    for g in guessers {
        g.join().expect("guesser");
    }
    let (answered, held) = (answered.load(Ordering::SeqCst), held.load(Ordering::SeqCst));
    eprintln!("{answered} guesses answered, {held} held back in {:?}", start.elapsed());
    assert!(owner.is_ok(), "the owner was kept out: {:?}", owner.err());
    // Three free, then one at a time after 1, 2, 4 s: about six in 6 s.
    assert!(answered <= 12, "{answered} guesses answered");
    assert!(held > 0, "nothing was held back");
}

#[test]
fn signatures_are_paced_per_address_with_a_sealed_retry_after() {
    let server = TestServer::start();
    let mut signed = 0;
    let mut told_to_wait = 0;
    // Sixty handshakes at once from one address: the burst is forty.
    for _ in 0..60 {
        let c = RawClient::connect_from(host(2), server.addr).expect("connect");
        match c.do_handshake(&server.key) {
            Ok(_) => signed += 1,
            Err(e) if e.contains("retry after") => told_to_wait += 1,
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("{signed} signed, {told_to_wait} told to wait");
    assert!(signed >= 40, "the burst was not honoured: {signed}");
    assert!(told_to_wait > 0, "no handshake was paced");
    // Another address is not affected.
    assert!(RawClient::login(server.addr, &server.key, "alice", None).is_ok());
}

#[test]
fn pongs_and_repeated_logins_count_against_the_rate() {
    let server = TestServer::start();
    for (name, msg) in [
        ("ponger", ClientMessage::Pong { nonce: 7 }),
        (
            "relogger",
            ClientMessage::Login {
                version: protocol::PROTOCOL_VERSION,
                username: "x".into(),
                password: None,
                resume: None,
                first_id: None,
                restored: false,
                rooms: None,
                history: None,
                account_password: None,
            },
        ),
    ] {
        let mut c = RawClient::login(server.addr, &server.key, name, None).expect("login");
        // Bounded: at most 400; the default allows a burst of 20, then 50
        // over the rate within 10 s.
        for _ in 0..400 {
            c.send(&msg);
        }
        let got = c.recv_until("a disconnect for flooding", |m| matches!(m, ServerMessage::Disconnect { .. }));
        assert!(matches!(got, ServerMessage::Disconnect { cause: DisconnectCause::Flooding, .. }), "{got:?}");
    }
}

#[test]
fn a_frame_that_fails_authentication_is_a_broken_connection_not_a_kick() {
    let server = TestServer::start();
    let mut alice = RawClient::login(server.addr, &server.key, "alice", None).expect("login");
    let token = alice.resume.clone().expect("resume token");
    alice.send_frame(b"gAAAAABnot-a-token-under-the-session-key").expect("send");
    // Closed without a word (no disconnect for cause) ...
    loop {
        match alice.recv(DEADLINE) {
            Ok(ServerMessage::Disconnect { cause, detail, .. }) => panic!("kicked: {cause:?} {detail}"),
            Ok(_) => {}
            Err(RecvError::Timeout) => panic!("the connection stayed open"),
            Err(_) => break,
        }
    }
    // ... and resumable: the token takes the session back.
    let back = RawClient::login_resuming(server.addr, &server.key, "alice", None, Some(token));
    assert!(back.is_ok(), "{:?}", back.err());
}

#[test]
fn client_cli_rides_out_a_frame_altered_on_the_way() {
    let server = TestServer::start();
    let mut bob = server.spawn_cli("bob", &["--listen"]);
    bob.expect_contains("* connected to");
    let proxy = TcpProxy::start(server.addr);
    let mut alice = server.spawn_cli_at(&proxy.addr.to_string(), "alice", &["--json"]);
    alice.expect_contains(r#""event":"connected""#);
    bob.expect_contains("* alice joined");
    proxy.corrupt_next_upstream();
    alice.send("sent through a bad cable");
    // The server closes the broken connection; alice reconnects and
    // resends: delivered once, nobody kicked.
    alice.expect("ack 1", |l| l.contains(r#""event":"acked""#) && l.contains(r#""id":1"#));
    bob.expect_contains("<alice> sent through a bad cable");
    assert!(proxy.links() >= 2, "alice never reconnected: the frame was not altered");
    alice.send("and after");
    bob.expect_contains("<alice> and after");
    alice.close_stdin();
    assert_eq!(alice.wait(), 0);
    let seen = bob.seen().join("\n");
    assert_eq!(seen.matches("sent through a bad cable").count(), 1, "{seen}");
}
