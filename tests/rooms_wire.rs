//! Rooms, private messages, history, edits and deletes as the server speaks
//! them (protocol v4), from raw clients on loopback. What a user sees of
//! them through `client-cli` is tested in `rooms.rs`.

use std::time::Duration;

use protocol::message::{ClientMessage, NackReason, RoomJoin, ServerMessage};
use socket_chatroom_tests::{RawClient, TestServer};

/// Two rooms besides `general`; user rooms go as soon as they are empty.
const CONFIG: &str = "empty_room_days = 0\n[[rooms]]\nname = \"dev\"\ntopic = \"all things code\"\n\
                      [[rooms]]\nname = \"quiet\"\nhistory = false\nvoice = false\n";

/// Sends a chat message and waits for its answer; the ack's server id, or
/// the nack's reason.
fn say(c: &mut RawClient, id: u64, room: Option<&str>, to: Option<&str>, text: &str) -> Result<u64, NackReason> {
    c.send(&ClientMessage::Chat { id, text: text.into(), room: room.map(Into::into), to: to.map(Into::into) });
    let answer = c.recv_until(
        "an answer",
        |m| matches!(m, ServerMessage::Ack { id: i, .. } | ServerMessage::Nack { id: i, .. } if *i == id),
    );
    match answer {
        ServerMessage::Ack { server_id: Some(s), .. } => Ok(s),
        ServerMessage::Nack { reason, .. } => Err(reason),
        other => panic!("no server id in {other:?}"),
    }
}

/// Waits for the message with this text; fails if another message comes
/// first whose text is in `never`.
fn expect_text(c: &mut RawClient, text: &str, never: &[&str]) -> ServerMessage {
    c.recv_until(text, |m| {
        if let ServerMessage::Message { text: t, .. } = m {
            assert!(!never.contains(&t.as_str()), "got {t:?}, which must not arrive here");
            t == text
        } else {
            false
        }
    })
}

/// Joins `room` and waits until its history has been delivered; returns
/// the history messages.
fn join(c: &mut RawClient, room: &str, after: Option<u64>, history: Option<u32>) -> Vec<ServerMessage> {
    c.send(&ClientMessage::Join { join: RoomJoin { room: room.into(), after }, history });
    collect_history(c, room).0
}

/// Reads up to a room's `history_end`: its history messages and `more`.
fn collect_history(c: &mut RawClient, room: &str) -> (Vec<ServerMessage>, bool) {
    let mut got = Vec::new();
    loop {
        match c.recv_until("history", |m| {
            // The server names a room as it was created (`DEV` is `dev`).
            matches!(m, ServerMessage::HistoryEnd { room: r, .. } if r.eq_ignore_ascii_case(room))
                || matches!(m, ServerMessage::Message { history: true, room: Some(r), .. } if r.eq_ignore_ascii_case(room))
                || matches!(m, ServerMessage::JoinRefused { .. })
        }) {
            ServerMessage::HistoryEnd { more, .. } => return (got, more),
            ServerMessage::JoinRefused { detail, .. } => panic!("join refused: {detail}"),
            m => got.push(m),
        }
    }
}

fn texts(history: &[ServerMessage]) -> Vec<String> {
    history
        .iter()
        .map(|m| match m {
            ServerMessage::Message { text, .. } => text.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn rooms_keep_text_apart_and_users_make_join_and_leave_rooms() {
    let server = TestServer::with_config(CONFIG);
    let mut alice = server.raw("alice");
    let mut bob = server.raw("bob");
    join(&mut alice, "dev", None, None);
    // `dev` is alice's alone: bob (in `general` only) never sees its lines.
    say(&mut alice, 1, Some("dev"), None, "in dev").expect("taken");
    say(&mut alice, 2, Some("general"), None, "in general").expect("taken");
    let m = expect_text(&mut bob, "in general", &["in dev"]);
    assert!(matches!(m, ServerMessage::Message { room: Some(ref r), history: false, .. } if r == "general"));
    // Without a room a line goes to the first room one is in.
    say(&mut bob, 1, None, None, "first room").expect("taken");
    expect_text(&mut alice, "first room", &[]);
    // Not in it, or no such room: refused, never delivered.
    assert_eq!(say(&mut bob, 2, Some("dev"), None, "sneaking in"), Err(NackReason::NotInRoom));
    assert_eq!(say(&mut bob, 3, Some("nowhere"), None, "x"), Err(NackReason::NoSuchRoom));
    // Names compare like usernames: `DEV` is `dev`.
    join(&mut bob, "DEV", None, Some(0));
    say(&mut bob, 4, Some("dev"), None, "hello dev").expect("taken");
    expect_text(&mut alice, "hello dev", &["sneaking in", "x"]);
    alice.recv_until(
        "bob joined dev",
        |m| matches!(m, ServerMessage::Joined { user, room: Some(r) } if user == "bob" && r == "dev"),
    );

    // A user room: made by joining it, listed, gone with its last member
    // (this server keeps empty rooms 0 days).
    let made = join(&mut bob, "bobs-place", None, None);
    assert!(made.is_empty());
    bob.send(&ClientMessage::Rooms);
    let ServerMessage::Rooms { rooms } = bob.recv_until("rooms", |m| matches!(m, ServerMessage::Rooms { .. })) else {
        unreachable!()
    };
    let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["bobs-place", "dev", "general", "quiet"]);
    let quiet = rooms.iter().find(|r| r.name == "quiet").expect("quiet");
    assert!(!quiet.history && !quiet.voice);
    assert_eq!(
        rooms.iter().find(|r| r.name == "dev").map(|r| (r.members, r.topic.as_str())),
        Some((2, "all things code"))
    );
    // Invalid names are refused with the rule broken.
    bob.send(&ClientMessage::Join { join: RoomJoin { room: "two words".into(), after: None }, history: None });
    let refused = bob.recv_until("refusal", |m| matches!(m, ServerMessage::JoinRefused { .. }));
    assert!(matches!(refused, ServerMessage::JoinRefused { reason: NackReason::Invalid, .. }), "{refused:?}");
    bob.send(&ClientMessage::Part { room: "bobs-place".into() });
    bob.recv_until("left", |m| matches!(m, ServerMessage::RoomLeft { room } if room == "bobs-place"));
    bob.send(&ClientMessage::Rooms);
    let ServerMessage::Rooms { rooms } = bob.recv_until("rooms", |m| matches!(m, ServerMessage::Rooms { .. })) else {
        unreachable!()
    };
    assert!(rooms.iter().all(|r| r.name != "bobs-place"), "an empty user room went");
    // Parting a room means its lines stop.
    bob.send(&ClientMessage::Part { room: "dev".into() });
    bob.recv_until("left dev", |m| matches!(m, ServerMessage::RoomLeft { room } if room == "dev"));
    alice.recv_until(
        "bob left dev",
        |m| matches!(m, ServerMessage::Left { user, room: Some(r) } if user == "bob" && r == "dev"),
    );
    say(&mut alice, 3, Some("dev"), None, "after bob left").expect("taken");
    say(&mut alice, 4, Some("general"), None, "marker").expect("taken");
    expect_text(&mut bob, "marker", &["after bob left"]);
    // Who is in a room, and everyone.
    alice.send(&ClientMessage::Who { room: Some("dev".into()), offset: None });
    let users = alice.recv_until("users", |m| matches!(m, ServerMessage::Users { .. }));
    assert_eq!(users, ServerMessage::Users { room: Some("dev".into()), users: vec!["alice".into()], users_total: 1 });
}

#[test]
fn private_messages_reach_one_user() {
    let server = TestServer::with_config(CONFIG);
    let mut alice = server.raw("alice");
    let mut bob = server.raw("bob");
    let mut carol = server.raw("carol");
    let id = say(&mut alice, 1, None, Some("BOB"), "just for you").expect("taken");
    let m = expect_text(&mut bob, "just for you", &[]);
    assert_eq!(
        m,
        ServerMessage::Message {
            id,
            from: "alice".into(),
            text: "just for you".into(),
            ts_ms: match &m {
                ServerMessage::Message { ts_ms, .. } => *ts_ms,
                _ => 0,
            },
            room: None,
            to: Some("bob".into()),
            history: false,
            edited: false,
        }
    );
    say(&mut alice, 2, None, None, "for everyone").expect("taken");
    expect_text(&mut carol, "for everyone", &["just for you"]);
    assert_eq!(say(&mut alice, 3, None, Some("nobody"), "hello?"), Err(NackReason::NoSuchUser));
    // A private message can be edited by its sender: both ends hear.
    alice.send(&ClientMessage::Edit { id: 4, target: id, text: "just for you, bob".into() });
    for c in [&mut alice, &mut bob] {
        c.recv_until("edited", |m| matches!(m, ServerMessage::Edited { id: i, to: Some(_), .. } if *i == id));
    }
}

#[test]
fn history_is_delivered_on_join_marked_paged_and_caught_up() {
    let server = TestServer::with_config(CONFIG);
    let mut alice = server.raw("alice");
    let mut ids = Vec::new();
    for i in 1..=6 {
        ids.push(say(&mut alice, i, Some("general"), None, &format!("m{i}")).expect("taken"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "server ids increase: {ids:?}");
    say(&mut alice, 7, Some("quiet"), None, "unstored").expect_err("alice is not in quiet");

    // The last `history` messages, marked, oldest first.
    let mut bob = server.raw_with("bob", None, Some(4));
    let (got, more) = collect_history(&mut bob, "general");
    assert_eq!(texts(&got), ["m3", "m4", "m5", "m6"]);
    assert!(more);
    // Older ones page in.
    bob.send(&ClientMessage::History {
        room: Some("general".into()),
        with: None,
        before: Some(ids[2]),
        after: None,
        limit: 10,
    });
    let (older, more) = collect_history(&mut bob, "general");
    assert_eq!(texts(&older), ["m1", "m2"]);
    assert!(!more);
    // A reconnecting client gets what came after the last id it saw.
    let carol = RawClient::connect(server.addr);
    let login = ClientMessage::Login {
        version: protocol::PROTOCOL_VERSION,
        username: "carol".into(),
        password: None,
        resume: None,
        first_id: None,
        restored: false,
        rooms: Some(vec![RoomJoin { room: "general".into(), after: Some(ids[3]) }]),
        history: None,
        account_password: None,
    };
    let mut carol = carol.finish_login_as(&server.key, &login).expect("login");
    let (missed, more) = collect_history(&mut carol, "general");
    assert_eq!(texts(&missed), ["m5", "m6"]);
    assert!(!more);
    // A room without history keeps nothing.
    let mut dave = server.raw_with("dave", Some(vec![RoomJoin { room: "quiet".into(), after: None }]), None);
    let (got, more) = collect_history(&mut dave, "quiet");
    assert!(got.is_empty() && !more);
    // With no history asked for, none comes (and paging may follow).
    let mut erin = server.raw_with("erin", None, Some(0));
    let (got, more) = collect_history(&mut erin, "general");
    assert!(got.is_empty() && more);
}

#[test]
fn edits_and_deletes_reach_everyone_and_only_the_sender_may() {
    let server = TestServer::with_config(CONFIG);
    let mut alice = server.raw("alice");
    let mut bob = server.raw("bob");
    let id = say(&mut alice, 1, Some("general"), None, "typo hre").expect("taken");
    expect_text(&mut bob, "typo hre", &[]);
    // Not bob's.
    bob.send(&ClientMessage::Edit { id: 1, target: id, text: "mine now".into() });
    let m = bob.recv_until("answer", |m| matches!(m, ServerMessage::Nack { id: 1, .. }));
    assert!(matches!(m, ServerMessage::Nack { reason: NackReason::NotYours, .. }), "{m:?}");
    bob.send(&ClientMessage::Delete { id: 2, target: 999_999 });
    let m = bob.recv_until("answer", |m| matches!(m, ServerMessage::Nack { id: 2, .. }));
    assert!(matches!(m, ServerMessage::Nack { reason: NackReason::NoSuchMessage, .. }), "{m:?}");
    // Alice's: everyone in the room hears, alice too.
    alice.send(&ClientMessage::Edit { id: 2, target: id, text: "typo here".into() });
    for c in [&mut alice, &mut bob] {
        let m = c.recv_until("edited", |m| matches!(m, ServerMessage::Edited { .. }));
        assert_eq!(
            m,
            ServerMessage::Edited {
                id,
                room: Some("general".into()),
                to: None,
                from: "alice".into(),
                text: "typo here".into()
            }
        );
    }
    alice.recv_until("ack", |m| matches!(m, ServerMessage::Ack { id: 2, server_id: Some(s) } if *s == id));
    let gone = say(&mut alice, 3, Some("general"), None, "oops").expect("taken");
    alice.send(&ClientMessage::Delete { id: 4, target: gone });
    bob.recv_until("deleted", |m| matches!(m, ServerMessage::Deleted { id: i, .. } if *i == gone));
    // A name changes hands: the next `alice` cannot touch the first one's
    // messages.
    let kept = say(&mut alice, 5, Some("general"), None, "mine for good").expect("taken");
    alice.send(&ClientMessage::Quit);
    alice.expect_closed();
    let mut mallory = server.raw("alice");
    mallory.send(&ClientMessage::Delete { id: 1, target: kept });
    let m = mallory
        .recv_until("answer", |m| matches!(m, ServerMessage::Nack { id: 1, .. } | ServerMessage::Ack { id: 1, .. }));
    assert!(matches!(m, ServerMessage::Nack { reason: NackReason::NotYours, .. }), "{m:?}");
    // History shows the edit, and not what was deleted.
    let mut carol = server.raw("carol");
    let (got, _) = collect_history(&mut carol, "general");
    assert_eq!(texts(&got), ["typo here", "mine for good"]);
    assert!(matches!(got[0], ServerMessage::Message { edited: true, .. }));
}

#[test]
fn voice_is_relayed_only_within_a_room() {
    let server = TestServer::with_config(CONFIG);
    let mut alice = server.raw("alice");
    let mut bob = server.raw("bob");
    let mut carol = server.raw("carol");
    let mut dave = server.raw("dave");
    join(&mut carol, "dev", None, Some(0));
    join(&mut dave, "dev", None, Some(0));
    // A room without voice has none to join.
    join(&mut dave, "quiet", None, Some(0));
    dave.send(&ClientMessage::VoiceJoin { room: Some("quiet".into()) });
    let m = dave.recv_until("refusal", |m| matches!(m, ServerMessage::Error { .. }));
    assert!(matches!(&m, ServerMessage::Error { detail } if detail.contains("no voice")), "{m:?}");

    let mut a = alice.join_voice_in(Some("general"));
    let mut b = bob.join_voice_in(Some("general"));
    let mut c = carol.join_voice_in(Some("dev"));
    let mut d = dave.join_voice_in(Some("dev"));
    // Each room's voice list names its own members only.
    let list = carol.recv_until(
        "dev voice list",
        |m| matches!(m, ServerMessage::VoiceUsers { room, users } if room == "dev" && users.len() == 2),
    );
    let ServerMessage::VoiceUsers { users, .. } = list else { unreachable!() };
    assert!(users.iter().all(|u| u.name == "carol" || u.name == "dave"), "{users:?}");
    for v in [&mut b, &mut c] {
        v.keepalive();
    }
    // Each listener's address proven: each hears its own room's speaker.
    for (speaker, listener, what) in
        [(&mut a, &mut b, "bob never heard alice"), (&mut d, &mut c, "carol never heard dave")]
    {
        for i in 0.. {
            speaker.say(format!("warmup {i}").as_bytes());
            if listener.recv(Duration::from_millis(200)).is_some_and(|(id, _, _)| id == speaker.id) {
                break;
            }
            assert!(i < 100, "{what}");
        }
    }
    // Alice talks in #general; bob hears all of it...
    for i in 0..20 {
        a.say(format!("general {i}").as_bytes());
    }
    while let Some((id, _, frame)) = b.recv(Duration::from_secs(10)) {
        if id == a.id && frame == b"general 19" {
            break;
        }
    }
    // ...then dave says a marker in #dev: the relay handled alice's packets
    // first, so had any gone to carol, it would come before the marker.
    d.say(b"marker");
    loop {
        let (id, _, frame) = c.recv(Duration::from_secs(10)).expect("carol hears the marker");
        assert_ne!(id, a.id, "carol (in #dev) heard alice (in #general)");
        if frame == b"marker" {
            break;
        }
    }
}

#[test]
fn joining_a_room_is_limited_per_user_and_rooms_stay_bounded() {
    let server = TestServer::with_config("max_rooms = 6\n");
    let mut alice = server.raw("alice");
    let mut refused = None;
    for i in 0..8 {
        let room = format!("r{i}");
        alice.send(&ClientMessage::Join { join: RoomJoin { room: room.clone(), after: None }, history: Some(0) });
        if let ServerMessage::JoinRefused { reason, .. } = alice.recv_until("answer", |m| {
            matches!(m, ServerMessage::HistoryEnd { room: r, .. } | ServerMessage::JoinRefused { room: r, .. } if *r == room)
        }) {
            refused = Some((i, reason));
            break;
        }
    }
    // `general` and five user rooms: the sixth creation is refused.
    assert_eq!(refused, Some((5, NackReason::TooManyRooms)));
}
