//! Resume tokens: a user whose connection died takes the name back at once,
//! and ids the server already took are acknowledged again but delivered
//! once; nobody else can use the name, and a quit or kicked session is not
//! resumable.

use protocol::message::{ClientMessage, RefusalCode, ServerMessage};
use socket_chatroom_tests::{RawClient, TestServer};

fn chat(from: &str, text: &str) -> impl Fn(&ServerMessage) -> bool {
    let (from, text) = (from.to_owned(), text.to_owned());
    move |m| matches!(m, ServerMessage::Message { from: f, text: t, .. } if *f == from && *t == text)
}

/// The next message `bob` gets that is about alice or from her.
fn next_about_alice(bob: &mut RawClient) -> ServerMessage {
    bob.recv_until("something about alice", |m| match m {
        ServerMessage::Joined { user, .. } | ServerMessage::Left { user, .. } => user == "alice",
        ServerMessage::Message { from, .. } => from == "alice",
        _ => false,
    })
}

fn send(c: &mut RawClient, id: u64, text: &str) {
    c.send(&ClientMessage::Chat { id, text: text.into(), room: None, to: None });
    c.recv_until("ack", |m| matches!(m, ServerMessage::Ack { id: i, .. } if *i == id));
}

#[test]
fn the_token_takes_the_name_back_and_the_ids_with_it() {
    let server = TestServer::start();
    let mut bob = server.raw("bob");
    let mut alice = server.raw("alice");
    next_about_alice(&mut bob); // joined
    let token = alice.resume.clone().expect("the welcome carries a resume token");
    send(&mut alice, 1, "before");
    assert!(chat("alice", "before")(&next_about_alice(&mut bob)));

    // Without the token, or with a wrong one, the name is taken.
    for wrong in [None, Some("not-the-token".to_owned())] {
        match RawClient::login_resuming(server.addr, &server.key, "alice", None, wrong) {
            Err(ServerMessage::Refused { code: RefusalCode::NameTaken, .. }) => {}
            Err(other) => panic!("expected name taken, got {other:?}"),
            Ok(_) => panic!("logged in without the token"),
        }
    }

    // With it: in at once, the old connection is closed, and the others see
    // no leave and no join.
    let mut again = RawClient::login_resuming(server.addr, &server.key, "alice", None, Some(token.clone()))
        .unwrap_or_else(|e| panic!("resume refused: {e:?}"));
    alice.expect_closed();
    assert_ne!(again.resume.as_deref(), Some(token.as_str()), "a new token each login");
    // id 1 was taken by the old session: acknowledged, not delivered again.
    send(&mut again, 1, "before");
    send(&mut again, 2, "after");
    assert!(chat("alice", "after")(&next_about_alice(&mut bob)), "no leave, no join, no duplicate");

    // The old token is spent.
    match RawClient::login_resuming(server.addr, &server.key, "alice", None, Some(token)) {
        Err(ServerMessage::Refused { code: RefusalCode::NameTaken, .. }) => {}
        other => panic!("a spent token must not work: {:?}", other.err()),
    }

    // A dead connection the server has noticed: the others see the leave,
    // and the token still brings back the ids.
    let token = again.resume.clone().expect("token");
    drop(again);
    assert!(matches!(next_about_alice(&mut bob), ServerMessage::Left { .. }));
    let mut third = RawClient::login_resuming(server.addr, &server.key, "alice", None, Some(token))
        .unwrap_or_else(|e| panic!("resume after leaving refused: {e:?}"));
    assert!(matches!(next_about_alice(&mut bob), ServerMessage::Joined { .. }));
    send(&mut third, 2, "after");
    send(&mut third, 3, "third");
    assert!(chat("alice", "third")(&next_about_alice(&mut bob)), "id 2 was not delivered twice");

    // A polite quit ends it: the token no longer carries the ids.
    let token = third.resume.clone().expect("token");
    third.send(&ClientMessage::Quit);
    third.expect_closed();
    assert!(matches!(next_about_alice(&mut bob), ServerMessage::Left { .. }));
    let mut fresh = RawClient::login_resuming(server.addr, &server.key, "alice", None, Some(token))
        .unwrap_or_else(|e| panic!("a free name is free: {e:?}"));
    assert!(matches!(next_about_alice(&mut bob), ServerMessage::Joined { .. }));
    send(&mut fresh, 3, "new session, new ids");
    assert!(chat("alice", "new session, new ids")(&next_about_alice(&mut bob)));
}

#[test]
fn a_dropped_users_name_is_held_for_them_and_says_for_how_long() {
    let server = TestServer::start();
    let mut bob = server.raw("bob");
    let alice = server.raw("alice");
    next_about_alice(&mut bob); // joined
    let token = alice.resume.clone().expect("token");
    // The connection dies without a quit: resumable, so the name is held.
    drop(alice);
    assert!(matches!(next_about_alice(&mut bob), ServerMessage::Left { .. }));
    // Look-alikes too (issue 13 item 4): the held name's keys, not its spelling.
    for taker in ["alice", "ALICE", "aIice", "a1ice"] {
        match RawClient::login(server.addr, &server.key, taker, None) {
            Err(ServerMessage::Refused { code: RefusalCode::NameTaken, reason, retry_after_ms, .. }) => {
                assert!(reason.contains("held"), "{reason}");
                assert!(retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 600_000), "{retry_after_ms:?}");
            }
            Err(other) => panic!("{taker}: expected the name held, got {other:?}"),
            Ok(_) => panic!("{taker} took a dropped user's name"),
        }
    }
    // The owner's token takes it back.
    assert!(RawClient::login_resuming(server.addr, &server.key, "alice", None, Some(token)).is_ok());
}

#[test]
fn a_restarted_client_cli_takes_its_name_back_and_its_new_messages_are_delivered() {
    let server = TestServer::start();
    let mut bob = server.listener("bob");
    let mut alice = server.spawn_cli("alice", &[]);
    alice.expect_contains("* connected to");
    bob.expect_contains("* alice joined");
    alice.send("first run");
    bob.expect_contains("<alice> first run");
    alice.signal("KILL");
    alice.wait();
    bob.expect_contains("* alice left");
    // Someone else cannot have the name meanwhile.
    match RawClient::login(server.addr, &server.key, "alice", None) {
        Err(ServerMessage::Refused { code: RefusalCode::NameTaken, .. }) => {}
        other => panic!("the name was not held: {:?}", other.err()),
    }
    // The restarted client finds its token on disk and is back; its ids
    // start over and are not mistaken for the old run's (taken already).
    let mut again = server.spawn_cli("alice", &[]);
    again.expect_contains("* connected to");
    again.send("second run");
    bob.expect_contains("<alice> second run");
    // A second process with the same name is told it is taken and leaves
    // the first alone.
    let mut twin = server.cli("alice");
    let out = twin.stdin(std::process::Stdio::null()).output().expect("run client-cli");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("is taken"), "{err}");
    again.send("still here");
    bob.expect_contains("<alice> still here");
    // A polite quit forgets the token: the name is free at once.
    again.close_stdin();
    assert_eq!(again.wait(), 0);
    bob.expect_contains("* alice left");
    assert!(RawClient::login(server.addr, &server.key, "alice", None).is_ok());
}
