//! End-to-end, from the clients' side (issue 15): real server, real
//! `client-cli` processes. Rooms keep their lines apart, joins and parts,
//! rooms users create, private messages, history on joining (marked as
//! such), catching up after a lost connection, paging back, edits and
//! deletes, and voice per room.
//!
//! "Not delivered" is proven by order, never by waiting: after the line
//! that must not arrive, a marker is sent that must; the server hands out
//! each room's messages in order, so when the marker arrives the other line
//! would have come before it.

use serde_json::{Value, json};
use socket_chatroom_tests::audio::{align, read_wav, speech_like, write_wav};
use socket_chatroom_tests::tcp_proxy::TcpProxy;
use socket_chatroom_tests::{Proc, TestServer};

/// Waits for a JSON event `name` for which `pred` holds; returns it.
fn expect_event(p: &mut Proc, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let line = p.expect(&format!("a {name} event"), |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| v["event"] == name && pred(&v))
    });
    serde_json::from_str(&line).expect("JSON")
}

/// Waits for a `message` event with this text.
fn expect_message(p: &mut Proc, text: &str) -> Value {
    expect_event(p, "message", |v| v["text"] == text)
}

/// Waits for the ack of our message `id`; returns its server id.
fn expect_ack(p: &mut Proc, id: u64) -> u64 {
    let acked = expect_event(p, "acked", |v| v["id"] == id);
    acked["server_id"].as_u64().unwrap_or_else(|| panic!("no server_id in {acked}"))
}

/// Every `name` event seen so far.
fn seen(p: &Proc, name: &str) -> Vec<Value> {
    p.seen().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|v| v["event"] == name).collect()
}

/// The texts of the messages seen so far.
fn texts(p: &Proc) -> Vec<String> {
    seen(p, "message").iter().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect()
}

#[test]
fn rooms_keep_their_lines_apart_and_members_join_and_part() {
    let server = TestServer::start();
    // Nobody has made #a yet: alice's --room creates it.
    let mut alice = server.spawn_cli("alice", &["--json", "--room", "#a"]);
    let created = expect_event(&mut alice, "room_joined", |v| v["room"] == "a");
    assert_eq!((&created["users"], &created["users_total"]), (&json!(["alice"]), &json!(1)), "{created}");
    let connected = seen(&alice, "connected").remove(0);
    assert_eq!(connected["rooms"], json!(["general"]), "the default room: {connected}");
    assert!(connected["users_total"].as_u64().is_some(), "{connected}");
    let mut bob = server.spawn_cli("bob", &["--json", "--room", "b"]);
    expect_event(&mut bob, "room_joined", |v| v["room"] == "b");
    // carol's lines go to #b, her first --room.
    let mut carol = server.spawn_cli("carol", &["--json", "--room", "b", "--room", "a"]);
    let in_a = expect_event(&mut carol, "room_joined", |v| v["room"] == "a");
    assert_eq!(in_a["users"], json!(["alice", "carol"]));
    expect_event(&mut alice, "joined", |v| v["user"] == "carol" && v["room"] == "a");

    alice.send("only in a");
    let m = expect_message(&mut carol, "only in a");
    assert_eq!((&m["room"], &m["from"]), (&json!("a"), &json!("alice")), "{m}");
    assert!(m.get("history").is_none() && m.get("dm").is_none(), "a live room message: {m}");
    assert_eq!(Some(expect_ack(&mut alice, 1)), m["id"].as_u64(), "the ack carries the message's server id");
    carol.send("only in b");
    let m = expect_message(&mut bob, "only in b");
    assert_eq!(m["room"], "b");
    assert!(!texts(&bob).contains(&"only in a".to_owned()), "#a leaked into #b: {:?}", bob.seen());

    // bob joins #a, sees who is there; alice sees him come.
    bob.send("/join a");
    let joined = expect_event(&mut bob, "room_joined", |v| v["room"] == "a");
    assert_eq!((&joined["users"], &joined["users_total"]), (&json!(["alice", "bob", "carol"]), &json!(3)));
    expect_event(&mut alice, "joined", |v| v["user"] == "bob" && v["room"] == "a");
    // After a /join, lines go to the room joined.
    bob.send("bob writes in a");
    let m = expect_message(&mut alice, "bob writes in a");
    assert_eq!(m["room"], "a", "{m}");
    alice.send("bob is here");
    expect_message(&mut bob, "bob is here");
    // ...and leaves again: nothing of #a reaches him after that.
    bob.send("/part #a");
    expect_event(&mut bob, "room_left", |v| v["room"] == "a");
    expect_event(&mut alice, "left", |v| v["user"] == "bob" && v["room"] == "a");
    alice.send("after bob left");
    expect_message(&mut carol, "after bob left");
    carol.send("marker in b");
    expect_message(&mut bob, "marker in b");
    assert!(!texts(&bob).contains(&"after bob left".to_owned()), "{:?}", bob.seen());
    // carol's "only in b" went to #b only.
    carol.send("/room #a");
    carol.send("back in a");
    expect_message(&mut alice, "back in a");
    assert!(!texts(&alice).contains(&"only in b".to_owned()), "{:?}", alice.seen());

    // The room list and a room's members.
    alice.send("/rooms");
    let rooms = expect_event(&mut alice, "rooms", |_| true);
    let list = rooms["rooms"].as_array().expect("a list");
    let a = list.iter().find(|r| r["name"] == "a").unwrap_or_else(|| panic!("no #a in {rooms}"));
    assert_eq!((&a["members"], &a["voice"]), (&json!(2), &json!(true)), "{a}");
    assert!(a["topic"].is_string() && a["history"].is_boolean(), "{a}");
    assert!(list.iter().any(|r| r["name"] == "b") && list.iter().any(|r| r["name"] == "general"), "{rooms}");
    alice.send("/who #a");
    let who = expect_event(&mut alice, "users", |v| v["room"] == "a");
    assert_eq!((&who["users"], &who["users_total"]), (&json!(["alice", "carol"]), &json!(2)));

    for p in [&mut alice, &mut bob, &mut carol] {
        p.send("/quit");
        assert_eq!(p.wait(), 0, "{}", p.stderr());
    }
}

#[test]
fn private_messages_reach_one_person_and_nobody_is_refused() {
    let server = TestServer::start();
    let mut bob = server.spawn_cli("bob", &["--json"]);
    expect_event(&mut bob, "connected", |_| true);
    let mut carol = server.listener("carol");
    let mut alice = server.spawn_cli("alice", &["--json"]);
    expect_event(&mut alice, "connected", |_| true);
    carol.expect_contains("* alice joined");

    alice.send(r#"/msg bob psst, just you"#);
    let dm = expect_message(&mut bob, "psst, just you");
    assert_eq!((&dm["dm"], &dm["to"], &dm["from"]), (&json!(true), &json!("bob"), &json!("alice")), "{dm}");
    assert!(dm.get("room").is_none(), "a private message has no room: {dm}");
    assert_eq!(Some(expect_ack(&mut alice, 1)), dm["id"].as_u64());
    bob.send("/msg carol hi carol");
    let line = carol.expect_contains("hi carol");
    assert!(line.starts_with('[') && line.ends_with("] *bob* hi carol"), "plain DM: {line}");
    // carol never saw alice's private line.
    alice.send("public");
    carol.expect_contains("#general <alice> public");
    assert!(!carol.seen().iter().any(|l| l.contains("psst")), "{:?}", carol.seen());

    alice.send("/msg nobody hello?");
    let rejected = expect_event(&mut alice, "rejected", |v| v["id"] == 3);
    assert_eq!(rejected["reason"], "no_such_user", "{rejected}");
    // The connection goes on.
    alice.send("still here");
    expect_message(&mut bob, "still here");
}

#[test]
fn history_on_joining_is_marked_and_never_shown_as_new() {
    let server = TestServer::start();
    let mut alice = server.spawn_cli("alice", &["--json"]);
    expect_event(&mut alice, "connected", |_| true);
    for (i, t) in ["one", "two", "three"].iter().enumerate() {
        alice.send(t);
        expect_ack(&mut alice, i as u64 + 1);
    }
    let mut bob = server.spawn_cli("bob", &["--listen"]);
    for t in ["one", "two", "three"] {
        let line = bob.expect_contains(&format!("#general <alice> {t}"));
        assert!(line.starts_with("~ ["), "history is marked: {line}");
    }
    bob.expect_contains("~ #general: end of history");
    let mut carol = server.spawn_cli("carol", &["--json", "--listen"]);
    let end = expect_event(&mut carol, "history_end", |v| v["room"] == "general");
    assert_eq!(end["more"], false, "{end}");
    let stored = seen(&carol, "message");
    assert_eq!(
        stored.iter().map(|m| m["text"].clone()).collect::<Vec<_>>(),
        [json!("one"), json!("two"), json!("three")]
    );
    assert!(stored.iter().all(|m| m["history"] == true && m["room"] == "general"), "{stored:?}");
    let ids: Vec<u64> = stored.iter().filter_map(|m| m["id"].as_u64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    // A live line after it is not history.
    alice.send("four");
    let live = expect_message(&mut carol, "four");
    assert!(live.get("history").is_none(), "{live}");
    bob.expect_contains("] #general <alice> four");
    // --no-history: nothing stored on joining, but the server says more is there.
    let mut dave = server.spawn_cli("dave", &["--json", "--listen", "--no-history"]);
    let end = expect_event(&mut dave, "history_end", |v| v["room"] == "general");
    assert_eq!(end["more"], true, "{end}");
    assert!(seen(&dave, "message").is_empty(), "{:?}", dave.seen());
}

#[test]
fn paging_back_with_history_walks_to_the_first_message() {
    let server = TestServer::start();
    let mut bob = server.spawn_cli("bob", &["--json"]);
    expect_event(&mut bob, "connected", |_| true);
    for i in 1..=8u64 {
        bob.send(&format!("m{i}"));
    }
    expect_ack(&mut bob, 8);
    let mut alice = server.spawn_cli("alice", &["--json", "--no-history"]);
    expect_event(&mut alice, "history_end", |v| v["room"] == "general" && v["more"] == true);
    let mut pages = Vec::new();
    for (n, more) in [(3, true), (3, true), (5, false)] {
        let before = seen(&alice, "message").len();
        alice.send(&format!("/history {n}"));
        let end = expect_event(&mut alice, "history_end", |v| v["room"] == "general" && v["more"] == more);
        let all = seen(&alice, "message");
        let page: Vec<String> = all[before..].iter().map(|m| m["text"].as_str().unwrap_or("?").to_owned()).collect();
        assert!(all[before..].iter().all(|m| m["history"] == true), "{end} after {:?}", &all[before..]);
        pages.push(page);
    }
    assert_eq!(pages, [vec!["m6", "m7", "m8"], vec!["m3", "m4", "m5"], vec!["m1", "m2"]]);
    alice.send("/quit");
    assert_eq!(alice.wait(), 0, "{}", alice.stderr());
}

#[test]
fn a_reconnection_catches_up_on_what_was_missed_and_nothing_twice() {
    let server = TestServer::start();
    let mut bob = server.spawn_cli("bob", &["--json"]);
    expect_event(&mut bob, "connected", |_| true);
    let proxy = TcpProxy::start(server.addr);
    // --no-history: what comes after the reconnection can only be the
    // catch-up from the newest id seen, not stored messages on joining.
    let mut alice = server.spawn_cli_at(&proxy.addr.to_string(), "alice", &["--json", "--listen", "--no-history"]);
    expect_event(&mut alice, "history_end", |v| v["room"] == "general");
    expect_event(&mut bob, "joined", |v| v["user"] == "alice");
    bob.send("before");
    expect_message(&mut alice, "before");

    // alice's link goes dead (the server still writes into it) while bob talks.
    proxy.freeze();
    for i in 1..=3u64 {
        bob.send(&format!("gap {i}"));
        expect_ack(&mut bob, i + 1);
    }
    proxy.cut_clients();
    expect_event(&mut alice, "reconnecting", |_| true);
    expect_event(&mut alice, "connected", |_| true);
    for i in 1..=3 {
        let m = expect_message(&mut alice, &format!("gap {i}"));
        assert_eq!((&m["history"], &m["room"]), (&json!(true), &json!("general")), "the gap comes as history: {m}");
    }
    expect_event(&mut alice, "history_end", |v| v["room"] == "general" && v["more"] == false);
    bob.send("after");
    let m = expect_message(&mut alice, "after");
    assert!(m.get("history").is_none(), "{m}");
    let all = texts(&alice);
    for t in ["before", "gap 1", "gap 2", "gap 3", "after"] {
        assert_eq!(all.iter().filter(|x| *x == t).count(), 1, "{t:?} once: {all:?}");
    }
    assert!(proxy.links() >= 2);
}

#[test]
fn edits_and_deletes_are_seen_by_everyone_and_only_for_your_own() {
    let server = TestServer::start();
    let mut bob = server.spawn_cli("bob", &["--json"]);
    expect_event(&mut bob, "connected", |_| true);
    let mut carol = server.listener("carol");
    let mut alice = server.spawn_cli("alice", &["--json"]);
    expect_event(&mut alice, "connected", |_| true);
    carol.expect_contains("* alice joined");

    alice.send("tpyo");
    let id = expect_ack(&mut alice, 1);
    assert_eq!(expect_message(&mut bob, "tpyo")["id"].as_u64(), Some(id));
    alice.send(&format!("/edit {id} typo, fixed"));
    let edited = expect_event(&mut bob, "edited", |v| v["id"] == id);
    assert_eq!(expect_ack(&mut alice, 2), id, "an edit's ack names its target");
    assert_eq!(
        (&edited["room"], &edited["from"], &edited["text"]),
        (&json!("general"), &json!("alice"), &json!("typo, fixed")),
        "{edited}"
    );
    // The sender gets the edit too (before or after its ack).
    if !seen(&alice, "edited").iter().any(|e| e["id"] == id) {
        expect_event(&mut alice, "edited", |v| v["id"] == id);
    }
    carol.expect_contains(&format!("* alice edited #general {id}: typo, fixed"));
    alice.send(&format!("/delete {id}"));
    expect_ack(&mut alice, 3);
    let deleted = expect_event(&mut bob, "deleted", |v| v["id"] == id);
    assert_eq!(deleted["room"], "general", "{deleted}");
    carol.expect_contains(&format!("* message {id} in #general was deleted"));

    // Someone else's message, or one that is not there: refused, final.
    bob.send("bob's own");
    let theirs = expect_message(&mut alice, "bob's own")["id"].as_u64().expect("an id");
    alice.send(&format!("/edit {theirs} hijacked"));
    assert_eq!(expect_event(&mut alice, "rejected", |v| v["id"] == 4)["reason"], "not_yours");
    alice.send(&format!("/delete {theirs}"));
    assert_eq!(expect_event(&mut alice, "rejected", |v| v["id"] == 5)["reason"], "not_yours");
    alice.send("/delete 987654321");
    assert_eq!(expect_event(&mut alice, "rejected", |v| v["id"] == 6)["reason"], "no_such_message");
    // Without an id, /edit and /delete mean your latest message here.
    alice.send("second try");
    let latest = expect_ack(&mut alice, 7);
    alice.send("/edit second try, edited");
    let edited = expect_event(&mut bob, "edited", |v| v["id"] == latest);
    assert_eq!(edited["text"], "second try, edited", "{edited}");
    alice.send("/delete");
    expect_event(&mut bob, "deleted", |v| v["id"] == latest);
    // Nothing of hers left here: said so, nothing sent.
    alice.send("/edit nine words");
    alice.send("done");
    expect_message(&mut bob, "done");
    alice.expect_stderr("nothing of yours to edit");
    assert!(seen(&bob, "edited").iter().all(|e| e["text"] != "hijacked"), "{:?}", bob.seen());
}

/// Parses counter `name` from a voice client's final counters line.
fn counter(stats: &str, name: &str) -> u64 {
    stats
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("no {name} counter in {stats}"))
}

#[test]
fn voice_is_heard_only_in_the_room_it_is_spoken_in() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str| dir.path().join(name).to_str().expect("utf8 path").to_owned();
    let (src, rec_a, rec_b) = (file("source.wav"), file("a.wav"), file("b.wav"));
    let source = speech_like(3.0);
    write_wav(std::path::Path::new(&src), &source);
    let mut ann = server.spawn_cli("ann", &["--voice", "--room", "a", "--input", "null", "--output", &rec_a]);
    ann.expect_contains("* you joined voice in #a");
    let mut ben = server.spawn_cli("ben", &["--voice", "--room", "b", "--input", "null", "--output", &rec_b]);
    ben.expect_contains("* you joined voice in #b");
    // First ben hears a talker in his own room: his address is proven and
    // the relay sends to him.
    let mut talb = server.spawn_cli("talb", &["--voice", "--room", "b", "--input", &src, "--output", "null"]);
    ben.expect_contains("* talb is talking in #b");
    assert_eq!(talb.wait(), 0, "talb: {}", talb.stderr());
    ben.expect_contains("* talb left #b");
    // Then someone talks in #a: ann hears it, ben gets nothing more.
    let mut tala = server.spawn_cli("tala", &["--voice", "--room", "#a", "--input", &src, "--output", "null"]);
    ann.expect_contains("* tala is talking in #a");
    assert_eq!(tala.wait(), 0, "tala: {}", tala.stderr());
    ann.expect_contains("* tala left #a");
    for p in [&mut ann, &mut ben] {
        p.signal("INT");
        assert_eq!(p.wait(), 0, "{}", p.stderr());
    }
    let (sent_a, sent_b) = (counter(&tala.stderr(), "sent"), counter(&talb.stderr(), "sent"));
    let (got_a, got_b) = (counter(&ann.stderr(), "received"), counter(&ben.stderr(), "received"));
    assert!(got_a > 50 && got_b > 50, "each hears its room: ann {got_a}, ben {got_b}");
    assert!(got_a <= sent_a, "ann got {got_a} packets, more than tala sent ({sent_a}): talb's leaked into #a");
    assert!(got_b <= sent_b, "ben got {got_b} packets, more than talb sent ({sent_b}): tala's leaked into #b");
    for rec in [&rec_a, &rec_b] {
        let m = align(&source, &read_wav(std::path::Path::new(rec)), 6.0);
        assert!(m.correlation > 0.8, "{rec}: {m:?}");
    }
    assert!(!ben.seen().iter().any(|l| l.contains("tala is talking")), "{:?}", ben.seen());
    assert!(!ann.seen().iter().any(|l| l.contains("talb is talking")), "{:?}", ann.seen());
}

#[test]
fn joining_more_rooms_than_the_burst_stays_inside_the_rate() {
    // A burst of 2 at 4 messages a second, and six rooms from the config
    // (with topics), joined at once with --room: the client paces its
    // joins, so none is refused for the rate.
    let rooms: String = (1..=6)
        .map(|i: u32| format!("\n[[rooms]]\nname = \"r{i}\"\ntopic = \"room {i}\"\nvoice = {}\n", i.is_multiple_of(2)))
        .collect();
    let server = TestServer::with_config(&format!("rate_per_sec = 4\nrate_burst = 2\n{rooms}"));
    let mut args = vec!["--json".to_owned()];
    for i in (1..=6).rev() {
        args.extend(["--room".to_owned(), format!("#r{i}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut alice = server.spawn_cli("alice", &args);
    // Joined in the order asked for; r1 is the last.
    expect_event(&mut alice, "room_joined", |v| v["room"] == "r1");
    let joined = seen(&alice, "room_joined");
    let names: Vec<&str> = joined.iter().filter_map(|j| j["room"].as_str()).collect();
    assert_eq!(names, ["general", "r6", "r5", "r4", "r3", "r2", "r1"]);
    for j in &joined[1..] {
        let i: u32 = j["room"].as_str().and_then(|r| r[1..].parse().ok()).expect("rN");
        assert_eq!((&j["topic"], &j["voice"]), (&json!(format!("room {i}")), &json!(i.is_multiple_of(2))), "{j}");
    }
    // The first --room is where lines go.
    let mut bob = server.spawn_cli("bob", &["--json", "--listen", "--room", "r6"]);
    expect_event(&mut bob, "room_joined", |v| v["room"] == "r6");
    alice.send("to the first --room");
    assert_eq!(expect_message(&mut bob, "to the first --room")["room"], "r6");
    alice.send("/quit");
    assert_eq!(alice.wait(), 0, "{}", alice.stderr());
    assert!(seen(&alice, "join_refused").is_empty(), "{:?}", alice.seen());
}

#[test]
fn history_survives_a_server_crash_and_a_reconnected_client_sees_nothing_twice() {
    let server = TestServer::start();
    let mut alice = server.spawn_cli("alice", &["--json"]);
    expect_event(&mut alice, "history_end", |v| v["room"] == "general");
    let mut carol = server.spawn_cli("carol", &["--json", "--listen"]);
    expect_event(&mut carol, "history_end", |v| v["room"] == "general");
    for (i, t) in ["stored one", "stored two"].iter().enumerate() {
        alice.send(t);
        expect_ack(&mut alice, i as u64 + 1);
    }
    expect_message(&mut carol, "stored two");

    let TestServer { mut proc, addr, dir, .. } = server;
    proc.signal("KILL");
    proc.wait();
    expect_event(&mut carol, "reconnecting", |_| true);
    let server = TestServer::relaunch_at(dir, addr);
    // carol is back: she rejoins from the newest id she saw, so nothing
    // she has comes again; a line said now reaches her live.
    expect_event(&mut carol, "connected", |_| true);
    expect_event(&mut carol, "history_end", |v| v["room"] == "general");
    expect_event(&mut alice, "connected", |_| true);
    alice.send("after the restart");
    let live = expect_message(&mut carol, "after the restart");
    assert!(live.get("history").is_none(), "{live}");
    let all = texts(&carol);
    assert_eq!(all, ["stored one", "stored two", "after the restart"], "{:?}", carol.seen());
    // A newcomer gets what was acknowledged before the crash, marked history.
    let mut bob = server.spawn_cli("bob", &["--listen"]);
    for t in ["stored one", "stored two", "after the restart"] {
        let line = bob.expect_contains(&format!("#general <alice> {t}"));
        assert!(line.starts_with("~ ["), "{line}");
    }
}
