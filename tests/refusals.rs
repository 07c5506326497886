//! End-to-end: every refusal reaches the user verbatim with its exit code.

use std::process::Stdio;

use protocol::message::{ClientMessage, RefusalCode, ServerMessage};
use socket_chatroom_tests::{OTHER_IDENTITY, RawClient, TestServer, write_secret};

fn exit_of(server: &TestServer, user: &str, args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = server.cli(user);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.stdin(std::process::Stdio::null()).output().expect("run client-cli");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn wrong_key_exits_3() {
    let server = TestServer::start();
    let wrong = protocol::crypto::Psk::generate();
    let (code, err) = exit_of(&server, "alice", &[], &[("CHATROOM_KEY", &wrong)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("wrong server key"), "{err}");
    // A flag beats the environment: the right key file wins over a stale CHATROOM_KEY.
    let file = server.dir.path().join("server.key");
    let (code, err) =
        exit_of(&server, "alice", &["--key-file", file.to_str().expect("utf8")], &[("CHATROOM_KEY", &wrong)]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn password_on_and_off() {
    let server = TestServer::with_config("password = \"s3cret\"");
    let (code, err) = exit_of(&server, "alice", &[], &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("requires a password"), "{err}");
    let (code, err) = exit_of(&server, "alice", &["--password", "guess"], &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("wrong password"), "{err}");
    let (code, err) = exit_of(&server, "alice", &[], &[("CHATROOM_PASSWORD", "s3cret")]);
    assert_eq!(code, 0, "{err}");
    // Without a server password, a given one is simply not needed.
    let open = TestServer::start();
    let (code, err) = exit_of(&open, "alice", &["--password", "whatever"], &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn duplicate_and_invalid_names_exit_3() {
    let server = TestServer::start();
    let _alice = server.listener("alice");
    let (code, err) = exit_of(&server, "ALICE", &[], &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is taken"), "{err}");
    for bad in ["", " alice", &"n".repeat(33), "evil\u{202E}name", "tab\tname"] {
        let (code, err) = exit_of(&server, bad, &[], &[]);
        assert_eq!(code, 3, "name {bad:?}: {err}");
        assert!(err.contains("invalid username"), "{err}");
    }
    let (code, err) = exit_of(&server, &"ü".repeat(32), &[], &[]);
    assert_eq!(code, 0, "32 characters are allowed: {err}");
}

/// Issue 13 item 4: with `alice` logged in, every look-alike of her name is
/// refused, as `name_taken` (it collides with hers) or `invalid_name` (it
/// breaks the character or script rules), and the refusal says which.
#[test]
fn look_alike_names_are_refused() {
    let server = TestServer::start();
    let _alice = server.raw("alice");
    let _ace = server.raw("ace");
    let cases = [
        ("\u{0430}lice", RefusalCode::InvalidName), // Cyrillic а in a Latin word
        ("aIice", RefusalCode::NameTaken),          // capital I: skeleton before case folding
        ("ALICE", RefusalCode::NameTaken),
        ("\u{0410}LICE", RefusalCode::InvalidName), // Cyrillic А in a Latin word
        ("a1ice", RefusalCode::NameTaken),
        ("\u{0430}\u{0441}\u{0435}", RefusalCode::NameTaken), // all-Cyrillic "асе" against "ace"
        ("alice\u{2800}", RefusalCode::InvalidName),
        ("\u{2800}", RefusalCode::InvalidName),
        ("ali\u{00A0}ce", RefusalCode::InvalidName),
        ("alice\u{FFF9}", RefusalCode::InvalidName),
        ("alice\u{1D173}", RefusalCode::InvalidName),
        ("ali\u{200D}ce", RefusalCode::InvalidName),
    ];
    for (name, expected) in cases {
        match RawClient::login(server.addr, &server.key, name, None) {
            Ok(_) => panic!("{name:?} was accepted next to alice"),
            Err(ServerMessage::Refused { code, reason, .. }) => {
                assert_eq!(code, expected, "{name:?}: {reason}");
                assert!(!reason.chars().any(protocol::escape::needs_escape), "{name:?}: reason {reason:?}");
            }
            Err(other) => panic!("{name:?}: {other:?}"),
        }
    }
    // Names that only resemble each other loosely are fine.
    let _alicia = server.raw("alicia");
    let _ivan = server.raw("Иван Smith");
}

#[test]
fn server_full_exits_3() {
    let server = TestServer::with_config("max_clients = 1");
    let _first = server.listener("first");
    let (code, err) = exit_of(&server, "second", &[], &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("server is full"), "{err}");
}

#[test]
fn changed_identity_is_refused_with_both_fingerprints_exit_4() {
    let server = TestServer::start();
    // First contact pins the identity (TOFU) ...
    let (code, err) = exit_of(&server, "alice", &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("first contact"), "{err}");
    let known = std::fs::read_to_string(server.home().join(".local/share/socket-chatroom/known_servers"))
        .expect("known_servers written under the XDG data dir");
    assert!(known.contains(&format!("{} {}", server.addr, server.fingerprint)), "{known}");
    let (code, err) = exit_of(&server, "alice", &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("first contact"), "{err}");

    // ... then the server's key changes under the same address.
    let other = protocol::crypto::Identity::from_pem(OTHER_IDENTITY).expect("fixture").fingerprint().to_string();
    let addr = server.addr;
    let dir = {
        let mut server = server;
        server.proc.signal("TERM");
        assert_eq!(server.proc.wait(), 0);
        write_secret(&server.dir.path().join("identity.pem"), OTHER_IDENTITY);
        let cfg = server.dir.path().join("config.toml");
        let text = std::fs::read_to_string(&cfg).expect("config");
        std::fs::write(&cfg, text.replace("127.0.0.1:0", &addr.to_string())).expect("config");
        server.dir
    };
    let server = TestServer::launch(dir);
    assert_eq!(server.addr, addr);
    let (code, err) = exit_of(&server, "alice", &[], &[]);
    assert_eq!(code, 4, "{err}");
    let pinned = protocol::crypto::Identity::from_pem(socket_chatroom_tests::TEST_IDENTITY)
        .expect("fixture")
        .fingerprint()
        .to_string();
    assert!(err.contains(&pinned) && err.contains(&other), "both fingerprints: {err}");
    assert!(err.contains("--fingerprint"), "how to fix it: {err}");

    // An explicit pin overrides (and re-pins) once the admin confirms it.
    let (code, err) = exit_of(&server, "alice", &["--fingerprint", &other], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = exit_of(&server, "alice", &[], &[]);
    assert_eq!(code, 0, "re-pinned: {err}");
    // A wrong explicit pin is refused even on first contact.
    let (code, err) = exit_of(&server, "alice", &["--fingerprint", &pinned], &[]);
    assert_eq!(code, 4, "{err}");
}

#[test]
fn cannot_connect_exits_5_and_usage_errors_exit_2() {
    let server = TestServer::start();
    // A port nothing listens on: bind, learn it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let out = server.cli_at(&format!("127.0.0.1:{port}"), "alice").stdin(Stdio::null()).output().expect("run");
    let (code, err) = (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned());
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    let (code, err) = exit_of(&server, "alice", &["--fingerprint", "MD5:nope"], &[]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = exit_of(&server, "alice", &[], &[("CHATROOM_KEY", "not-a-key")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Fernet key"), "{err}");
    let (code, _) = exit_of(&server, "alice", &["--no-such-flag"], &[]);
    assert_eq!(code, 2);
}

#[test]
fn server_shutdown_exits_5_and_reports_unacknowledged_messages() {
    let mut server = TestServer::with_config("rate_per_sec = 1\nrate_burst = 1");
    let mut listener = server.spawn_cli("listener", &["--listen", "--reconnect", "0"]);
    listener.expect_contains("* connected to");
    let mut talker = server.spawn_cli("talker", &["--reconnect", "0"]);
    talker.expect_contains("* connected to");
    for i in 0..5 {
        talker.send(&format!("line {i}"));
    }
    // The first goes at once; the rest wait for the rate (1 per second).
    listener.expect_contains("<talker> line 0");
    server.proc.signal("TERM");
    assert_eq!(server.proc.wait(), 0, "graceful shutdown exits 0: {}", server.proc.stderr());
    assert_eq!(listener.wait(), 5);
    listener.expect_stderr("server shut down");
    assert_eq!(talker.wait(), 5);
    let err = talker.stderr();
    assert!(err.contains("of your messages were not acknowledged"), "{err}");
}

#[test]
fn slow_reader_is_disconnected_for_cause_exit_6() {
    // A client whose stdout nobody reads stops reading the socket; the
    // server drops it with a reason, and a reader that keeps up gets every
    // message meanwhile.
    let server = TestServer::with_config(
        "outbound_queue = 64\nrate_per_sec = 100000\nrate_burst = 100000\nwrite_timeout_secs = 120",
    );
    // Nobody reads `stuck`'s stdout, so its pipe, then its socket, fill up.
    let mut stuck_cmd = server.cli("stuck");
    stuck_cmd.arg("--listen").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let stuck = stuck_cmd.spawn().expect("spawn stuck");
    let mut other = server.spawn_cli("other", &["--listen"]);
    let connected = other.expect_contains("* connected to");
    if !connected.contains("stuck") {
        other.expect_contains("* stuck joined");
    }
    let mut blaster = server.raw("blaster");
    let text = "z".repeat(4000);
    let (mut id, mut delivered) = (0u64, 0u64);
    let mut kicked = false;
    // Bounded: 4000 rounds of 8 x 4 KB = 128 MB at most; stuck fills after ~15 MB.
    for _round in 0..4000 {
        for _ in 0..8 {
            id += 1;
            blaster.send(&ClientMessage::Chat { id, text: text.clone(), room: None, to: None });
        }
        for _ in 0..8 {
            blaster.recv_until("an ack", |m| matches!(m, ServerMessage::Ack { .. }));
        }
        while delivered < id {
            let line = other
                .expect("a message or stuck leaving", |l| l.contains("<blaster>") || l.starts_with("* stuck left"));
            if line.starts_with("* stuck left") {
                kicked = true;
            } else {
                delivered += 1;
            }
        }
        if kicked {
            break;
        }
    }
    assert!(kicked, "the stuck reader was never disconnected");
    // Now drain the stuck client: it learns why and exits 6.
    let out = stuck.wait_with_output().expect("stuck exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("did not read fast enough"), "{err}");
}
