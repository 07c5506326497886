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
    alice.expect_contains("* voice in #general (1): carol");
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
    alice.expect_stderr("cannot connect");
}

#[test]
fn a_dropped_link_resumes_at_once_and_a_message_whose_ack_was_lost_is_delivered_once() {
    use socket_chatroom_tests::tcp_proxy::TcpProxy;
    let server = TestServer::start();
    let mut bob = server.spawn_cli("bob", &["--listen"]);
    bob.expect_contains("* connected to");
    let proxy = TcpProxy::start(server.addr);
    let mut alice = server.spawn_cli_at(&proxy.addr.to_string(), "alice", &["--json"]);
    alice.expect_contains(r#""event":"connected""#);
    bob.expect_contains("* alice joined");
    alice.send("one");
    bob.expect_contains("<alice> one");
    alice.expect("ack 1", |l| l.contains(r#""event":"acked""#) && l.contains(r#""id":1"#));

    // The server takes message 2 and delivers it, but its ack never arrives;
    // then the link drops on alice's side only. The server still holds her
    // old session, name and all.
    proxy.freeze();
    alice.send("the ack of this one is lost");
    bob.expect_contains("<alice> the ack of this one is lost");
    proxy.cut_clients();
    alice.expect_contains(r#""event":"reconnecting""#);

    // Back at once with her resume token (no name_taken), message 2 resent
    // with its id: acknowledged, not delivered again; nobody saw her leave.
    alice.expect_contains(r#""event":"connected""#);
    alice.expect("ack 2", |l| l.contains(r#""event":"acked""#) && l.contains(r#""id":2"#));
    assert!(proxy.links() >= 2);
    alice.send("three");
    bob.expect_contains("<alice> three");
    let seen = bob.seen().join("\n");
    assert_eq!(seen.matches("the ack of this one is lost").count(), 1, "{seen}");
    assert!(!seen.contains("alice left") && seen.matches("alice joined").count() == 1, "{seen}");
}
