//! The Prometheus listener (`metrics_bind`): a scrape after some chat, some
//! refused logins, a kick and some voice shows exactly what happened.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use protocol::message::{ClientMessage, RefusalCode, ServerMessage};
use socket_chatroom_tests::{DEADLINE, RawClient, TestServer};

/// A server serving metrics on a loopback port of its own; returns it and
/// the scrape address it announced.
fn server_with_metrics(extra: &str) -> (TestServer, SocketAddr) {
    let mut server = TestServer::with_config(&format!("metrics_bind = \"127.0.0.1:0\"\n{extra}"));
    let line = server.proc.expect_contains("Metrics on http://");
    let addr = line
        .trim()
        .trim_start_matches("Metrics on http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"));
    (server, addr)
}

/// One HTTP request; the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {text:?}"));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// Every sample of a scrape: `name{labels}` → value.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// Scrapes until every expected sample has its value (the counters of
/// other actors land a moment after the clients see the effect); fails
/// with the last scrape.
fn wait_for(addr: SocketAddr, expected: &[(&str, f64)]) -> HashMap<String, f64> {
    let end = Instant::now() + DEADLINE;
    loop {
        let s = scrape(addr);
        if expected.iter().all(|(k, v)| s.get(*k) == Some(v)) {
            return s;
        }
        assert!(Instant::now() < end, "expected {expected:?}; last scrape: {s:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_scrape_after_some_chat_shows_the_counts() {
    let (server, metrics) = server_with_metrics("password = \"opensesame\"\n");
    let pw = Some("opensesame");
    let login = |name: &str| RawClient::login(server.addr, &server.key, name, pw).expect("login");
    let mut alice = login("alice");
    let mut bob = login("bob");
    let mut carol = login("carol");

    // A wrong key.
    let wrong_key = "A".repeat(43) + "=";
    assert!(RawClient::handshake(server.addr, &wrong_key).is_err(), "a wrong key is refused");
    // Wrong passwords from another address until it is told to wait.
    let guesser: IpAddr = "127.0.0.2".parse().expect("ip");
    let mut bad_passwords = 0.0;
    loop {
        let c = RawClient::connect_from(guesser, server.addr).expect("connect from 127.0.0.2");
        match c.finish_login(&server.key, "mallory", Some("guess"), None) {
            Err(ServerMessage::Refused { code: RefusalCode::WrongPassword, .. }) => bad_passwords += 1.0,
            Err(ServerMessage::Refused { code: RefusalCode::RetryLater, .. }) => break,
            // The key check may already say "retry after".
            Err(ServerMessage::Error { detail }) if detail.contains("retry") => break,
            other => panic!("expected a refusal, got {:?}", other.map(|_| "a welcome")),
        }
        assert!(bad_passwords < 20.0, "never told to wait");
    }

    for i in 0..3 {
        alice.send(&ClientMessage::Chat { id: i + 1, text: format!("hello {i}"), room: None, to: None });
    }
    for c in [&mut bob, &mut carol] {
        c.recv_until("the last message", |m| matches!(m, ServerMessage::Message { text, .. } if text == "hello 2"));
    }
    let s = wait_for(
        metrics,
        &[
            ("chatroom_users", 3.0),
            ("chatroom_messages_total", 3.0),
            ("chatroom_deliveries_total", 6.0),
            ("chatroom_handshakes_total{outcome=\"ok\"}", 3.0),
            ("chatroom_handshakes_total{outcome=\"wrong_key\"}", 1.0),
            ("chatroom_handshakes_total{outcome=\"bad_password\"}", bad_passwords),
            ("chatroom_handshakes_total{outcome=\"rate_limited\"}", 1.0),
            ("chatroom_handshakes_total{outcome=\"refused\"}", 0.0),
            ("chatroom_kicks_total{cause=\"flooding\"}", 0.0),
            // #general keeps history: each message was stored first, timed.
            ("chatroom_store_write_seconds_count", 3.0),
        ],
    );
    assert!(bad_passwords >= 1.0);
    for k in ["chatroom_received_bytes_total", "chatroom_sent_bytes_total", "chatroom_store_write_seconds_sum"] {
        assert!(s[k] > 0.0, "{k}: {s:#?}");
    }

    // Garbage over the rate is a kick for flooding.
    let mut flooder = login("flooder");
    for _ in 0..100 {
        flooder.send_sealed_bytes(b"not a message");
    }
    flooder.expect_closed();
    wait_for(
        metrics,
        &[
            ("chatroom_kicks_total{cause=\"flooding\"}", 1.0),
            ("chatroom_handshakes_total{outcome=\"ok\"}", 4.0),
            ("chatroom_users", 3.0),
        ],
    );

    // Only GET /metrics is served.
    assert_eq!(get(metrics, "/").0, "HTTP/1.1 404 Not Found");
    drop((alice, bob, carol));
}

#[test]
fn a_scrape_counts_voice_relayed_and_dropped() {
    let (server, metrics) = server_with_metrics("");
    let mut s_tcp = server.raw("speaker");
    let mut l_tcp = server.raw("listener");
    let mut speaker = s_tcp.join_voice();
    let mut listener = l_tcp.join_voice();
    listener.keepalive();
    // Until the listener's keepalive is in, frames may go nowhere: retry.
    for i in 0.. {
        speaker.say(format!("warmup {i}").as_bytes());
        if listener.recv(Duration::from_millis(200)).is_some() {
            break;
        }
        assert!(i < 100, "listener never reached");
    }
    let base = wait_for(metrics, &[("chatroom_voice_members", 2.0)]);
    let at = |k: &str| base.get(k).copied().unwrap_or(0.0);
    let (received, relayed, forged) = (
        at("chatroom_voice_received_packets_total"),
        at("chatroom_voice_relayed_packets_total"),
        at("chatroom_voice_dropped_packets_total{reason=\"forged\"}"),
    );
    assert!(received >= 1.0 && relayed >= 1.0, "{base:#?}");

    let mut bad = speaker.voice_packet(b"forged");
    let last = bad.len() - 20;
    bad[last] ^= 1;
    speaker.send_raw(&bad);
    speaker.say(b"one");
    speaker.say(b"two");
    listener.expect_frame(b"two");
    wait_for(
        metrics,
        &[
            ("chatroom_voice_received_packets_total", received + 2.0),
            ("chatroom_voice_relayed_packets_total", relayed + 2.0),
            ("chatroom_voice_dropped_packets_total{reason=\"forged\"}", forged + 1.0),
        ],
    );
}

#[test]
fn json_logs_are_one_object_per_line_without_secrets() {
    let server = TestServer::with_config("log_format = \"json\"\npassword = \"opensesame\"\n");
    let _alice = RawClient::login(server.addr, &server.key, "alice", Some("opensesame")).expect("login");
    let end = Instant::now() + DEADLINE;
    // Whole lines only: stderr is collected as it comes, so the last line
    // may still be half written.
    let log = loop {
        let all = server.proc.stderr();
        let log = all.rfind('\n').map_or("", |end| &all[..=end]).to_owned();
        if log.contains("user joined") {
            break log;
        }
        assert!(Instant::now() < end, "no join logged: {all}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["msg"].is_string() && v["level"].is_string() && v["ts"].is_string(), "{line}");
    }
    let joined = log.lines().find(|l| l.contains("user joined")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(joined).expect("json");
    assert_eq!(v["user"], "alice", "{joined}");
    assert!(!log.contains("opensesame") && !log.contains(&server.key), "a secret in the log: {log}");
}
