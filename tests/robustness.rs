//! End-to-end: bad input, floods, slow readers, scale, shutdown, and the
//! server's own command line.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

use protocol::message::{ClientMessage, DisconnectCause, NackReason, RefusalCode, ServerMessage};
use socket_chatroom_tests::{DEADLINE, Proc, RawClient, RecvError, TestServer, bin};

#[test]
fn garbage_and_oversized_frames_end_only_that_session() {
    let server = TestServer::with_config("max_frame_bytes = 16384");
    let mut alice = server.listener("alice");
    let mut bob = server.raw("bob");

    // Plain garbage before the handshake (an HTTP request, say).
    let mut junk = RawClient::connect(server.addr);
    junk.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    junk.expect_closed();
    // A header announcing a huge frame.
    let mut huge = RawClient::connect(server.addr);
    huge.send_bytes(&u32::MAX.to_be_bytes()).expect("write");
    huge.expect_closed();
    // A well-formed frame that is not a token.
    let mut bad_hello = RawClient::connect(server.addr);
    bad_hello.recv_frame(DEADLINE).expect("server hello");
    bad_hello.send_frame(&[0xAB; 300]).expect("write");
    assert_eq!(bad_hello.recv_frame(DEADLINE).expect("refusal"), protocol::handshake::REFUSED_WRONG_KEY);
    bad_hello.expect_closed();

    // After login: an oversized frame, or one that is not sealed, ends that
    // connection as a broken one (no kick: damage on the way looks the same).
    let mut big = server.raw("big");
    big.send_frame(&vec![b'A'; 20_000]).expect("write");
    let mut unsealed = server.raw("unsealed");
    unsealed.send_frame(b"{\"type\":\"who\"}").expect("write");
    for c in [&mut big, &mut unsealed] {
        // What the login brought (rooms, presence) may come first.
        loop {
            match c.recv(DEADLINE) {
                Err(RecvError::Closed) => break,
                Ok(ServerMessage::Disconnect { .. } | ServerMessage::Error { .. }) | Err(_) => {
                    panic!("expected the connection closed without a word")
                }
                Ok(_) => {}
            }
        }
    }
    // A sealed but undecodable or unknown message gets an error; the session goes on.
    let mut odd = server.raw("odd");
    odd.send_sealed_bytes(br#"{"type":"teleport"}"#);
    odd.send_sealed_bytes(b"\xff\xfe not json");
    for _ in 0..2 {
        odd.recv_until("an error reply", |m| matches!(m, ServerMessage::Error { .. }));
    }
    odd.send(&ClientMessage::Chat { id: 1, text: "still here".into(), room: None, to: None });
    alice.expect_contains("<odd> still here");

    // The others never noticed.
    bob.send(&ClientMessage::Chat { id: 1, text: "all fine".into(), room: None, to: None });
    alice.expect_contains("<bob> all fine");
    assert!(server.proc.stderr().contains("bad frame") || server.proc.stderr().contains("refused"));
}

#[test]
fn flooder_is_told_then_disconnected_and_others_go_on() {
    let server = TestServer::with_config("rate_per_sec = 5\nrate_burst = 5\nflood_limit = 20");
    let mut alice = server.listener("alice");
    let mut flood = server.raw("flood");
    // Over the rate a little: told (a notice, and nacks to resend later)...
    for id in 1..=10 {
        flood.send(&ClientMessage::Chat { id, text: format!("spam {id}"), room: None, to: None });
    }
    let mut notice = false;
    let mut nacks = 0;
    flood.recv_until("a rate-limited nack", |m| {
        matches!(m, ServerMessage::Nack { reason: NackReason::RateLimited, .. })
    });
    nacks += 1;
    // ...then far over it: disconnected for flooding.
    for id in 11..=100 {
        flood.send(&ClientMessage::Chat { id, text: format!("spam {id}"), room: None, to: None });
    }
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        match flood.recv(end.saturating_duration_since(std::time::Instant::now())) {
            Ok(ServerMessage::Notice { text }) => notice |= text.contains("too fast"),
            Ok(ServerMessage::Nack { reason: NackReason::RateLimited, retry_after_ms, .. }) => {
                assert!(retry_after_ms.is_some_and(|ms| ms > 0));
                nacks += 1;
            }
            Ok(ServerMessage::Disconnect { cause, .. }) => {
                assert_eq!(cause, DisconnectCause::Flooding);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("flooder was not disconnected: {e:?}"),
        }
    }
    // The flooder was told before the disconnect (the notice may have gone
    // by while waiting for the nack: recv_until skips it).
    assert!(notice || nacks >= 1, "the flooder was told it is being limited");
    alice.expect_contains("* flood left");
    // Only the burst got through to others.
    let got = alice.seen().iter().filter(|l| l.contains("<flood>")).count();
    assert!(got <= 7, "{got} flood messages delivered");
    let mut bob = server.raw("bob");
    bob.send(&ClientMessage::Chat { id: 1, text: "after the flood".into(), room: None, to: None });
    alice.expect_contains("<bob> after the flood");
}

#[test]
fn reader_that_never_reads_does_not_delay_the_others() {
    let server = TestServer::with_config("rate_per_sec = 100000\nrate_burst = 100000\noutbound_queue = 256");
    let mut watcher = server.raw("watcher");
    let never = server.raw("never"); // logs in, then never reads
    let mut talker = server.raw("talker");
    let text = "w".repeat(3000);
    let mut left = false;
    let mut id = 0;
    // Bounded: at most 20,000 messages (60 MB); the non-reader fills after a few MB.
    while id < 20_000 && !left {
        for _ in 0..16 {
            id += 1;
            talker.send(&ClientMessage::Chat { id, text: text.clone(), room: None, to: None });
        }
        for _ in 0..16 {
            talker.recv_until("an ack", |m| matches!(m, ServerMessage::Ack { .. }));
        }
        let mut got = 0;
        while got < 16 {
            match watcher
                .recv_until("a message", |m| matches!(m, ServerMessage::Message { .. } | ServerMessage::Left { .. }))
            {
                ServerMessage::Left { user, .. } => {
                    assert_eq!(user, "never");
                    left = true;
                }
                _ => got += 1,
            }
        }
    }
    assert!(left, "the non-reader was never disconnected");
    drop(never);
}

#[test]
fn two_hundred_clients_all_receive_one_message() {
    // All from 127.0.0.1 at once: lift the per-address caps this test is not about.
    let server = TestServer::with_config(
        "max_clients_per_address = 1000\nmax_handshakes_per_address = 1000\nmax_logins_in_progress = 1000\nmax_logins_in_progress_per_address = 1000\nhandshake_burst_per_address = 1000",
    );
    let n = 200;
    let ready = Arc::new(Barrier::new(n + 1));
    let (addr, key) = (server.addr, server.key.clone());
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (ready, key) = (ready.clone(), key.clone());
            std::thread::spawn(move || {
                let mut c = RawClient::login(addr, &key, &format!("user{i:03}"), None).expect("login");
                ready.wait();
                let m = c.recv_until("the broadcast", |m| matches!(m, ServerMessage::Message { .. }));
                matches!(m, ServerMessage::Message { from, text, .. } if from == "sender" && text == "hello all 200")
            })
        })
        .collect();
    ready.wait();
    let mut sender = server.raw("sender");
    sender.send(&ClientMessage::Who { room: None, offset: None });
    let users = sender.recv_until("users", |m| matches!(m, ServerMessage::Users { .. }));
    assert!(
        matches!(&users, ServerMessage::Users { users, users_total, .. } if users.len() == n + 1 && *users_total as usize == n + 1)
    );
    sender.send(&ClientMessage::Chat { id: 1, text: "hello all 200".into(), room: None, to: None });
    let ok = handles.into_iter().map(|h| h.join().expect("thread")).filter(|ok| *ok).count();
    assert_eq!(ok, n);
}

#[test]
fn graceful_shutdown_tells_every_client_and_exits_0() {
    let mut server = TestServer::start();
    let mut clients: Vec<RawClient> = (0..5).map(|i| server.raw(&format!("c{i}"))).collect();
    let mut pending = RawClient::connect(server.addr); // mid-handshake
    pending.recv_frame(DEADLINE).expect("hello");
    server.proc.signal("INT");
    for c in &mut clients {
        let m = c.recv_until("shutdown notice", |m| matches!(m, ServerMessage::Shutdown { .. }));
        assert!(matches!(m, ServerMessage::Shutdown { .. }));
        c.expect_closed();
    }
    pending.expect_closed();
    assert_eq!(server.proc.wait(), 0, "{}", server.proc.stderr());
}

#[test]
fn handshake_deadline_closes_silent_connections() {
    let server = TestServer::with_config("handshake_timeout_secs = 1");
    let mut silent = RawClient::connect(server.addr);
    silent.recv_frame(DEADLINE).expect("hello");
    silent.expect_closed();
    // Logged in but never sends anything: the idle timeout applies instead.
    let _ = server.raw("fine");
}

#[test]
fn logs_never_hold_message_bodies_passwords_or_keys() {
    let server = TestServer::with_config("password = \"hunter2-pw\"\nverbose = true");
    let mut alice = RawClient::login(server.addr, &server.key, "alice", Some("hunter2-pw")).expect("login");
    let mut bob = RawClient::login(server.addr, &server.key, "bob", Some("hunter2-pw")).expect("login");
    alice.send(&ClientMessage::Chat { id: 1, text: "TOP-SECRET-BODY".into(), room: None, to: None });
    bob.recv_until("the message", |m| matches!(m, ServerMessage::Message { .. }));
    let _ = RawClient::login(server.addr, &server.key, "carol", Some("wrong-pw-guess"));
    let log = server.proc.stderr();
    assert!(log.contains("DEBG"), "verbose logging is on: {log}");
    for secret in ["TOP-SECRET-BODY", "hunter2-pw", "wrong-pw-guess", &server.key] {
        assert!(!log.contains(secret), "{secret} leaked into the log:\n{log}");
    }
}

/// Issue 13 item 7: a pre-login message whose `type` holds ESC, a newline
/// and a forged log line reaches the log escaped, on the refusal's own line.
#[test]
fn peer_strings_cannot_forge_log_lines() {
    let server = TestServer::with_config("verbose = true");
    let forged = "x\u{1b}[2K\r\nDec 07 00:00:00.000 INFO user joined, user: admin\u{2028}\u{202E}z";
    let mut c = RawClient::handshake(server.addr, &server.key).expect("handshake");
    c.send_sealed_bytes(serde_json::json!({ "type": forged }).to_string().as_bytes());
    match c.recv(DEADLINE) {
        Ok(ServerMessage::Refused { code: RefusalCode::ProtocolError, .. }) => {}
        other => panic!("expected a protocol_error refusal, got {other:?}"),
    }
    // The log line is written before the refusal is sent; poll until the
    // pipe reader has caught up (or the deadline passed).
    let end = std::time::Instant::now() + DEADLINE;
    let log = loop {
        let log = server.proc.stderr();
        if log.contains("login refused") || std::time::Instant::now() > end {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("login refused")).collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert!(refused[0].contains("x\\u{001B}[2K\\r\\nDec 07"), "{}", refused[0]);
    assert!(!log.lines().any(|l| l.starts_with("Dec 07 00:00:00.000")), "a forged line:\n{log}");
    let raw = |c: char| c != '\n' && protocol::escape::needs_escape(c);
    assert!(!log.chars().any(raw), "raw control characters:\n{log:?}");
}

fn server_cmd(dir: &std::path::Path) -> Command {
    let mut c = Command::new(bin("server"));
    c.current_dir(dir).stdin(Stdio::null());
    c
}

#[test]
fn server_command_line_gen_key_fingerprint_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[server]\nbind = \"127.0.0.1:0\"\nkey_file = \"keys/server.key\"\n").expect("config");

    // gen-key: the key alone on stdout, written 0600 where the config says.
    let out = server_cmd(dir.path()).args(["gen-key", "--config"]).arg(&cfg).output().expect("gen-key");
    assert_eq!(out.status.code(), Some(0));
    let printed = String::from_utf8(out.stdout).expect("utf8");
    let key_path = dir.path().join("keys/server.key");
    assert_eq!(printed.trim(), std::fs::read_to_string(&key_path).expect("key file").trim());
    assert_eq!(printed.lines().count(), 1);
    assert!(protocol::crypto::Psk::parse(&printed).is_ok());
    assert_eq!(std::fs::metadata(&key_path).expect("meta").permissions().mode() & 0o777, 0o600);
    let again = server_cmd(dir.path()).args(["gen-key", "--config"]).arg(&cfg).output().expect("gen-key");
    assert_ne!(String::from_utf8_lossy(&again.stdout), printed, "a new key each time");

    // fingerprint: creates the identity (0600) and prints the fingerprint alone.
    let out = server_cmd(dir.path()).args(["fingerprint", "--config"]).arg(&cfg).output().expect("fingerprint");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let fp = String::from_utf8(out.stdout).expect("utf8");
    assert!(fp.starts_with("SHA256:") && fp.lines().count() == 1, "{fp}");
    let id = dir.path().join("server_identity.pem");
    assert_eq!(std::fs::metadata(&id).expect("identity").permissions().mode() & 0o777, 0o600);
    let out2 = server_cmd(dir.path()).args(["fingerprint", "--config"]).arg(&cfg).output().expect("fingerprint");
    assert_eq!(String::from_utf8_lossy(&out2.stdout), fp, "stable across runs");

    // First start prints the fingerprint and a ready command line without the key.
    let mut cmd = server_cmd(dir.path());
    cmd.arg("--config").arg(&cfg);
    let mut srv = Proc::spawn("server", cmd);
    let join = srv.expect_contains("client-cli --server");
    assert!(join.contains(fp.trim()) && join.contains("--key-file"), "{join}");
    assert!(!join.contains(printed.trim()), "the key is not printed");
    let listening = srv.seen()[0].clone();
    let addr = listening.rsplit(' ').next().expect("addr").to_owned();

    // Port in use: one clear line, exit 1.
    let out = server_cmd(dir.path()).args(["--bind", &addr, "--config"]).arg(&cfg).output().expect("second server");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on") && err.trim().lines().count() == 1, "{err}");
    srv.signal("TERM");
    assert_eq!(srv.wait(), 0);

    // Invalid config: one line naming the key, exit 2.
    std::fs::write(&cfg, "[server]\nmax_message_bytes = \"lots\"\n").expect("config");
    let out = server_cmd(dir.path()).arg("--config").arg(&cfg).output().expect("bad config");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_message_bytes") && err.trim().lines().count() == 1, "{err}");

    // A config holding a password that others can read is refused, naming the fix.
    std::fs::write(&cfg, "[server]\nbind = \"127.0.0.1:0\"\npassword = \"pw\"\n").expect("config");
    let out = server_cmd(dir.path()).arg("--config").arg(&cfg).output().expect("open config");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600") && err.contains("password"), "{err}");

    // A key file others can read is refused, naming the fix.
    std::fs::write(&cfg, "[server]\nbind = \"127.0.0.1:0\"\nkey_file = \"keys/server.key\"\n").expect("config");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = server_cmd(dir.path()).arg("--config").arg(&cfg).output().expect("open key");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

#[test]
fn idle_client_is_disconnected_after_the_idle_timeout() {
    let server = TestServer::with_config("keepalive_secs = 1\nidle_timeout_secs = 2");
    // A real client keeps itself alive with pings at the announced interval.
    let mut alive = server.listener("alive");
    let mut quiet = server.raw("quiet");
    let m = quiet.recv_until("an idle disconnect", |m| matches!(m, ServerMessage::Disconnect { .. }));
    assert!(matches!(m, ServerMessage::Disconnect { cause: DisconnectCause::IdleTimeout, .. }), "{m:?}");
    alive.expect_contains("* quiet left");
    // Longer than the idle timeout has passed since `alive` last typed.
    let mut bob = server.raw("bob");
    bob.send(&ClientMessage::Chat { id: 1, text: "still there?".into(), room: None, to: None });
    alive.expect_contains("<bob> still there?");
}

#[test]
fn ids_out_of_order_are_each_delivered_once() {
    let server = TestServer::start();
    let mut alice = server.listener("alice");
    let mut raw = server.raw("raw");
    for (id, text) in [(5, "five"), (3, "three"), (5, "five again"), (4, "four")] {
        raw.send(&ClientMessage::Chat { id, text: text.into(), room: None, to: None });
        let m = raw.recv_until("an ack", |m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Nack { .. }));
        assert!(matches!(m, ServerMessage::Ack { id: acked, .. } if acked == id), "{m:?}");
    }
    for text in ["five", "three", "four"] {
        alice.expect_contains(&format!("<raw> {text}"));
    }
    raw.send(&ClientMessage::Chat { id: 6, text: "end".into(), room: None, to: None });
    alice.expect_contains("<raw> end");
    assert!(!alice.seen().iter().any(|l| l.contains("five again")), "a resent id is delivered once");
}

#[test]
fn idle_connections_cannot_lock_newcomers_out() {
    let server = TestServer::with_config("max_handshakes = 16\nhandshake_timeout_secs = 60");
    // Far more idle connections than the handshake cap, never speaking.
    let idle: Vec<RawClient> = (0..64).map(|_| RawClient::connect(server.addr)).collect();
    let mut c = server.spawn_cli("newcomer", &[]);
    c.expect_contains("* connected to");
    c.close_stdin();
    assert_eq!(c.wait(), 0, "{}", c.stderr());
    drop(idle);
}

#[test]
fn piped_who_is_answered_and_bad_utf8_lines_are_skipped() {
    let server = TestServer::start();
    let mut listener = server.listener("listener");
    let mut cmd = server.cli("piper");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, b"first\n\xff\xfe broken\n/who\nlast\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("2 here:"), "the /who answer arrives before exit: {stdout}");
    assert!(stderr.contains("line 2 is not valid UTF-8"), "{stderr}");
    listener.expect_contains("<piper> first");
    listener.expect_contains("<piper> last");
}
