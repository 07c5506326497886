//! End-to-end: real server, real `client-cli` processes through pipes.

use socket_chatroom_tests::{DEADLINE, TestServer};

#[test]
fn two_clients_chat_both_ways_without_echo() {
    let server = TestServer::start();
    let mut alice = server.spawn_cli("alice", &[]);
    alice.expect_contains("* connected to");
    let mut bob = server.spawn_cli("bob", &[]);
    bob.expect_contains("* connected to");
    alice.expect_contains("* bob joined");

    alice.send("hello bob");
    let line = bob.expect_contains("<alice> hello bob");
    assert!(line.starts_with('[') && line.as_bytes()[9] == b']', "timestamped: {line}");
    bob.send("hi alice, ünïcödé ✓");
    alice.expect_contains("<bob> hi alice, ünïcödé ✓");

    bob.send("/quit");
    assert_eq!(bob.wait(), 0, "{}", bob.stderr());
    alice.expect_contains("* bob left");
    alice.close_stdin();
    assert_eq!(alice.wait(), 0, "{}", alice.stderr());
    // Own lines are not echoed.
    assert!(!alice.seen().iter().any(|l| l.contains("<alice>")), "{:?}", alice.seen());
    assert!(!bob.seen().iter().any(|l| l.contains("<bob>")), "{:?}", bob.seen());
}

/// Issue 13 item 8: line separators, bidi controls and invisible
/// characters in someone's message never reach client-cli's stdout raw:
/// plain lines show them escaped, JSON lines carry them as JSON escapes
/// (the reader still gets the text as sent).
#[test]
fn line_separators_and_invisibles_are_escaped_in_plain_and_json() {
    let server = TestServer::start();
    let mut plain = server.listener("plain");
    let mut json = server.spawn_cli("json", &["--json", "--listen"]);
    json.expect_contains("\"connected\"");
    let text = "one\u{2028}two\u{2029}\u{202E}three\u{200B}\u{2060}\u{FEFF}four\nfive";
    let mut bob = server.raw("bob");
    bob.send(&protocol::message::ClientMessage::Chat { id: 1, text: text.into(), room: None, to: None });
    let line = plain.expect_contains("<bob>");
    assert!(line.ends_with("one\\u{2028}two\\u{2029}\\u{202E}three\\u{200B}\\u{2060}\\u{FEFF}four\\nfive"), "{line:?}");
    let line = json.expect_contains("\"message\"");
    assert!(!line.chars().any(protocol::escape::needs_escape), "{line:?}");
    assert!(line.contains(r"one\u2028two\u2029\u202ethree\u200b\u2060\ufefffour\nfive"), "{line}");
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(v["text"], text);
}

#[test]
fn piped_line_is_delivered_before_exit() {
    let server = TestServer::start();
    let mut listener = server.listener("listener");
    // `echo hi | client-cli ...`: stdin is closed at once.
    let mut cmd = server.cli("echoer");
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"hi\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    listener.expect_contains("<echoer> hi");
}

#[test]
fn json_output_parses_and_carries_the_schema() {
    let server = TestServer::start();
    let mut watcher = server.spawn_cli("watcher", &["--json", "--listen"]);
    let connected = watcher.expect_contains("\"connected\"");
    let v: serde_json::Value = serde_json::from_str(&connected).expect("connected line is JSON");
    assert_eq!(v["me"], "watcher");
    assert_eq!(v["fingerprint"], server.fingerprint.as_str());
    assert_eq!(v["trust"], "first_use");

    let mut talker = server.spawn_cli("talker", &["--json"]);
    talker.expect_contains("\"connected\"");
    talker.send("two words");
    let acked = talker.expect_contains("\"acked\"");
    let acked: serde_json::Value = serde_json::from_str(&acked).expect("JSON");
    assert!(acked["id"].is_u64());
    let msg = watcher.expect_contains("\"message\"");
    let v: serde_json::Value = serde_json::from_str(&msg).expect("message line is JSON");
    assert_eq!(v["from"], "talker");
    assert_eq!(v["text"], "two words");
    assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "{v}");
    assert_eq!(talker.wait(), 0);
    let last: serde_json::Value =
        serde_json::from_str(talker.seen().last().expect("lines")).expect("disconnected line is JSON");
    assert_eq!(last["event"], "disconnected");
    assert_eq!(last["reason"], "quit");
    assert_eq!(last["unacked"], 0);
    for line in watcher.seen() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
    }
}

#[test]
fn commands_escape_and_who() {
    let server = TestServer::start();
    let mut listener = server.listener("listener");
    let mut c = server.spawn_cli("cmd", &[]);
    c.expect_contains("* connected to");
    c.send("//slash at the start");
    listener.expect_contains("<cmd> /slash at the start");
    c.send("/who");
    c.expect("a user list", |l| l.contains("2 here:") && l.contains("cmd") && l.contains("listener"));
    c.send("/nonsense");
    c.send("!DISCONNECT");
    assert_eq!(c.wait(), 0);
    c.expect_stderr("unknown command");
    listener.expect_contains("* cmd left");
    assert!(!listener.seen().iter().any(|l| l.contains("nonsense") || l.contains("DISCONNECT")));
}

#[test]
fn oversized_line_is_refused_not_cut_and_control_characters_are_refused() {
    let server = TestServer::with_config("max_message_bytes = 100");
    let mut listener = server.listener("listener");
    let mut c = server.spawn_cli("big", &[]);
    c.expect_contains("* connected to");
    c.send(&"x".repeat(101));
    c.send("red \x1b[31m alert");
    c.send(&"y".repeat(100));
    listener.expect("the 100-byte line", |l| l.ends_with(&"y".repeat(100)));
    assert_eq!(c.wait(), 0);
    let err = c.stderr();
    assert!(err.contains("101 bytes, over the server's limit of 100"), "{err}");
    assert!(err.contains("control character"), "{err}");
    assert!(!listener.seen().iter().any(|l| l.contains("xxx") || l.contains("alert")), "{:?}", listener.seen());
}

#[test]
fn input_faster_than_the_rate_waits_and_never_drops() {
    let server = TestServer::with_config("rate_per_sec = 20\nrate_burst = 5");
    let mut listener = server.listener("listener");
    let mut c = server.spawn_cli("fast", &[]);
    c.expect_contains("* connected to");
    for i in 0..60 {
        c.send(&format!("line {i}"));
    }
    c.close_stdin();
    assert_eq!(c.wait(), 0, "{}", c.stderr());
    for i in 0..60 {
        listener.expect_contains(&format!("<fast> line {i}"));
    }
    // In order, each exactly once.
    let got: Vec<&String> = listener.seen().iter().filter(|l| l.contains("<fast>")).collect();
    assert_eq!(got.len(), 60);
    assert!(got.iter().enumerate().all(|(i, l)| l.ends_with(&format!("line {i}"))));
}

#[test]
fn other_peoples_escape_sequences_are_not_printed_raw() {
    // A raw client can send what client-cli refuses to; the server refuses
    // control characters, but bidi overrides are legal text and must be
    // shown escaped.
    let server = TestServer::start();
    let mut listener = server.listener("listener");
    let mut raw = server.raw("mallory");
    raw.send(&protocol::message::ClientMessage::Chat {
        id: 1,
        text: "abc\u{202E}fed\x1b[2J".into(),
        room: None,
        to: None,
    });
    let nack = raw.recv_until("a nack", |m| matches!(m, protocol::message::ServerMessage::Nack { .. }));
    assert!(matches!(
        nack,
        protocol::message::ServerMessage::Nack { reason: protocol::message::NackReason::Invalid, .. }
    ));
    raw.send(&protocol::message::ClientMessage::Chat { id: 2, text: "abc\u{202E}fed".into(), room: None, to: None });
    let line = listener.expect_contains("<mallory>");
    assert!(line.contains("abc\\u{202E}fed"), "{line:?}");
    assert!(!line.contains('\u{202E}') && !line.contains('\x1b'));
    let _ = DEADLINE;
}

#[test]
fn dns_names_work_and_pins_are_keyed_by_the_address_as_typed() {
    let server = TestServer::start();
    let by_name = format!("localhost:{}", server.addr.port());
    let mut listener = server.listener("listener");
    let mut c = socket_chatroom_tests::Proc::spawn("named", server.cli_at(&by_name, "named"));
    c.expect_contains("* connected to localhost:");
    c.send("via DNS");
    listener.expect_contains("<named> via DNS");
    assert_eq!(c.wait(), 0, "{}", c.stderr());
    let known =
        std::fs::read_to_string(server.home().join(".local/share/socket-chatroom/known_servers")).expect("pins");
    assert!(known.contains(&format!("{by_name} {}", server.fingerprint)), "{known}");
    assert!(known.contains(&format!("{} {}", server.addr, server.fingerprint)), "{known}");
}
