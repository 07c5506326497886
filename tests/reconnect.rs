//! Clients reconnect by themselves: after `kill -9` and a restart of the
//! server, every client is back with its name (and voice), and a message
//! typed while the server was down is sent once it is back (acknowledged;
//! who receives it depends on who is back by then: there is no history).

use socket_chatroom_tests::TestServer;

#[test]
fn clients_come_back_after_the_server_is_killed_and_restarted() {
    let server = TestServer::start();
    let mut alice = server.spawn_cli("alice", &["--listen"]);
    alice.expect_contains("* connected to");
    let mut bob = server.spawn_cli("bob", &["--json"]);
    bob.expect_contains(r#""event":"connected""#);
    let mut carol = server.spawn_cli("carol", &["--voice", "--input", "null", "--output", "null"]);
    carol.expect_contains("* you joined voice");
    bob.send("before the crash");
    alice.expect_contains("<bob> before the crash");
    bob.expect(r#"ack of message 1"#, |l| l.contains(r#""event":"acked""#) && l.contains(r#""id":1"#));

    let TestServer { mut proc, addr, dir, .. } = server;
    proc.signal("KILL");
    proc.wait();
    alice.expect_contains("reconnecting in");
    carol.expect_contains("reconnecting in");
    bob.expect_contains(r#""event":"reconnecting""#);
    // Typed while the server is down: queued, sent once it is back.
    bob.send("while it was down");

    let _server = TestServer::relaunch_at(dir, addr);
    alice.expect_contains("* connected to");
    carol.expect_contains("* connected to");
    bob.expect_contains(r#""event":"connected""#);
    carol.expect_contains("* you joined voice");
    bob.expect("ack of the queued message", |l| l.contains(r#""event":"acked""#) && l.contains(r#""id":2"#));
    // Everyone is back by now: a new message reaches them.
    alice.expect_contains("* in voice (1): carol");
    bob.send("after");
    alice.expect_contains("<bob> after");
    assert!(
        !bob.seen().iter().any(|l| l.contains(r#""event":"disconnected""#) || l.contains(r#""event":"rejected""#)),
        "{:?}",
        bob.seen()
    );
}

#[test]
fn giving_up_exits_5_and_says_so() {
    let server = TestServer::start();
    let mut alice = server.spawn_cli("alice", &["--listen", "--reconnect", "2"]);
    alice.expect_contains("* connected to");
    let TestServer { mut proc, .. } = server;
    proc.signal("KILL");
    proc.wait();
    alice.expect_contains("(try 1)");
    alice.expect_contains("(try 2)");
    assert_eq!(alice.wait(), 5, "{}", alice.stderr());
    assert!(alice.stderr().contains("cannot connect"), "{}", alice.stderr());
}
