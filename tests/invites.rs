//! Invite links, issued keys and key rotation (issue 17), end to end: the
//! real server, `server admin` as the operator runs it, raw protocol
//! clients on loopback.
//!
//! "Refused at the key check" is the protocol's plaintext REFUSED frame,
//! which the server sends only before any RSA work (docs/protocol.md §2).

use std::process::Command;
use std::time::{Duration, Instant};

use protocol::invite::InviteLink;
use protocol::message::{ClientMessage, DisconnectCause, ServerMessage};
use socket_chatroom_tests::{RawClient, TestServer, bin};

const CONFIG: &str = "[[rooms]]\nname = \"dev\"\n";

fn admin_ok(s: &TestServer, args: &[&str]) -> String {
    s.admin_ok(args)
}

/// `server admin invite ARGS`: the link it prints, parsed.
fn invite(s: &TestServer, args: &[&str]) -> InviteLink {
    let mut all = vec!["invite"];
    all.extend_from_slice(args);
    let out = admin_ok(s, &all);
    let line = out.lines().find(|l| l.starts_with("chatroom://")).unwrap_or_else(|| panic!("no link in {out}"));
    InviteLink::parse(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// How many keys the server has issued (`server admin keys`).
fn issued_count(s: &TestServer) -> usize {
    admin_ok(s, &["keys"]).lines().filter(|l| l.starts_with('#')).count()
}

/// Logs in as `name` with `key`; the key issued to it, if one was. The
/// server issues it at the login, before the welcome (`keys` lists it at
/// once), and hands it over once stored: so a new entry in `keys` means a
/// `key_issued` is on its way, and none means none comes.
fn login(s: &TestServer, key: &str, name: &str) -> (RawClient, Option<String>) {
    let before = issued_count(s);
    let mut c =
        RawClient::connect(s.addr).finish_login(key, name, None, None).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    if issued_count(s) == before {
        return (c, None);
    }
    match c.recv_until("the issued key", |m| matches!(m, ServerMessage::KeyIssued { .. })) {
        ServerMessage::KeyIssued { key, id } => {
            assert_eq!(id.len(), 16, "{id}");
            (c, Some(key))
        }
        _ => unreachable!("recv_until returns what matches"),
    }
}

/// Whether a handshake with `key` is refused at the key check.
fn refused(s: &TestServer, key: &str) -> bool {
    match RawClient::handshake(s.addr, key) {
        Ok(_) => false,
        Err(e) => {
            assert!(e.contains("key"), "refused for another reason: {e}");
            true
        }
    }
}

#[test]
fn a_one_use_invite_lets_one_client_in_and_its_issued_key_outlives_it() {
    let s = TestServer::with_config(CONFIG);
    let link = invite(&s, &["--uses", "1", "--room", "dev"]);
    assert_eq!(link.addresses, [s.addr.to_string()]);
    assert_eq!(link.fingerprint.to_string(), s.fingerprint, "the link pins the server");
    assert_eq!(link.room.as_deref(), Some("dev"));
    let (alice, issued) = login(&s, &link.key, "alice");
    let mine = issued.expect("a key of alice's own");
    assert_ne!(mine, link.key);
    drop(alice);
    // Used once: refused at the key check, with no RSA work.
    assert!(refused(&s, &link.key));
    // The issued key goes on working, and issues nothing more.
    let (_again, more) = login(&s, &mine, "alice2");
    assert_eq!(more, None);
    let list = admin_ok(&s, &["invite", "--list"]);
    assert!(list.contains("spent uses 1") && list.contains("1 key(s) issued"), "{list}");
    let keys = admin_ok(&s, &["keys"]);
    assert!(keys.contains("to alice via invite #"), "{keys}");
    // The main key never issues keys.
    let (_main, none) = login(&s, &s.key, "bob");
    assert_eq!(none, None);
}

#[test]
fn an_invite_expires_and_a_revoked_invite_takes_its_keys_and_sessions() {
    let s = TestServer::with_config(CONFIG);
    let brief = invite(&s, &["--expires", "1s"]);
    let end = Instant::now() + Duration::from_secs(60);
    while !refused(&s, &brief.key) {
        assert!(Instant::now() < end, "the invite never expired");
        std::thread::sleep(Duration::from_millis(100));
    }

    let open = invite(&s, &[]);
    let (mut bob, bob_key) = login(&s, &open.key, "bob");
    let (mut carol, carol_key) = login(&s, &open.key, "carol");
    let (bob_key, carol_key) = (bob_key.expect("bob's key"), carol_key.expect("carol's key"));
    let (mut dave, _) = login(&s, &s.key, "dave");
    let list = admin_ok(&s, &["invite", "--list"]);
    let id = list
        .lines()
        .find(|l| l.contains("uses 2"))
        .and_then(|l| l.split_whitespace().next())
        .map(|w| w.trim_start_matches('#').to_owned())
        .unwrap_or_else(|| panic!("{list}"));
    let out = admin_ok(&s, &["invite", "--revoke", &id]);
    assert!(out.contains("2 issued key(s) revoked, 2 session(s) ended"), "{out}");
    for c in [&mut bob, &mut carol] {
        let gone = c.recv_until("the revocation", |m| matches!(m, ServerMessage::Disconnect { .. }));
        assert!(matches!(gone, ServerMessage::Disconnect { cause: DisconnectCause::KeyRevoked, .. }), "{gone:?}");
    }
    for key in [&open.key, &bob_key, &carol_key] {
        assert!(refused(&s, key));
    }
    // Someone on the main key is untouched.
    dave.send(&ClientMessage::Ping { nonce: 1 });
    dave.recv_until("pong", |m| matches!(m, ServerMessage::Pong { nonce: 1 }));

    // One issued key alone.
    let third = invite(&s, &[]);
    let (mut erin, erin_key) = login(&s, &third.key, "erin");
    let erin_key = erin_key.expect("erin's key");
    let keys = admin_ok(&s, &["keys"]);
    let id = keys
        .lines()
        .find(|l| l.contains("to erin"))
        .and_then(|l| l.split_whitespace().next())
        .map(|w| w.trim_start_matches('#').to_owned())
        .unwrap_or_else(|| panic!("{keys}"));
    admin_ok(&s, &["keys", "--revoke-key", &id]);
    let gone = erin.recv_until("the revocation", |m| matches!(m, ServerMessage::Disconnect { .. }));
    assert!(matches!(gone, ServerMessage::Disconnect { cause: DisconnectCause::KeyRevoked, .. }), "{gone:?}");
    assert!(refused(&s, &erin_key));
    assert!(!refused(&s, &third.key), "the invite itself stays");
    let audit = admin_ok(&s, &["audit"]);
    for needle in ["invite #", "revoke_invite #", "revoke_key #"] {
        assert!(audit.contains(needle), "{needle} not in {audit}");
    }
}

#[test]
fn rotate_key_keeps_the_old_key_for_its_grace_issuing_keys_and_now_ends_it() {
    let s = TestServer::with_config(CONFIG);
    let old = s.key.clone();
    let out = admin_ok(&s, &["rotate-key"]);
    let new = std::fs::read_to_string(s.dir.path().join("server.key")).expect("key file").trim().to_owned();
    assert_ne!(new, old);
    let link = InviteLink::parse(out.lines().find(|l| l.starts_with("chatroom://")).unwrap_or_else(|| panic!("{out}")))
        .expect("a fresh invite");
    // The old main key still works, and its user gets a key of its own.
    let (_c, issued) = login(&s, &old, "carol");
    let carol_key = issued.expect("an old-key user is issued a key");
    assert_ne!(carol_key, new, "never the new main key");
    let (_n, none) = login(&s, &new, "nina");
    assert_eq!(none, None);
    let (_l, via) = login(&s, &link.key, "lina");
    assert!(via.is_some());
    // --now: the previous key (the one just made) ends at once; issued
    // keys are not touched.
    admin_ok(&s, &["rotate-key", "--now"]);
    assert!(refused(&s, &new));
    assert!(refused(&s, &old), "the first key is long gone too");
    let newest = std::fs::read_to_string(s.dir.path().join("server.key")).expect("key file").trim().to_owned();
    login(&s, &newest, "nora");
    login(&s, &carol_key, "carol2");
    // And all of it survives a restart.
    let TestServer { mut proc, addr, dir, .. } = s;
    proc.signal("TERM");
    assert_eq!(proc.wait(), 0);
    let s = TestServer::relaunch_at(dir, addr);
    assert!(refused(&s, &new));
    login(&s, &carol_key, "carol3");
    login(&s, &newest, "nora2");
}

/// `client-cli --invite LINK` as a newcomer runs it: the link is all it
/// needs (no key, no fingerprint, no trust question); its issued key is
/// kept and used by the next run after the one-use invite is gone;
/// revoking the invite cuts that key off.
#[test]
fn client_cli_joins_with_an_invite_and_keeps_its_issued_key() {
    let s = TestServer::with_config(CONFIG);
    let link = invite(&s, &["--uses", "1", "--room", "dev"]);
    let run = |args: &[&str], stdin: &str| {
        let mut cmd = Command::new(bin("client-cli"));
        cmd.args(["--user", "newcomer", "--json"]).args(args).env("HOME", s.home());
        for v in ["CHATROOM_KEY", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "CHATROOM_PASSWORD", "CHATROOM_INVITE"] {
            cmd.env_remove(v);
        }
        let mut p = socket_chatroom_tests::Proc::spawn("client-cli newcomer", cmd);
        for line in stdin.lines() {
            p.send(line);
        }
        p.close_stdin();
        let code = p.wait();
        (code, p.seen().join("\n"), p.stderr())
    };
    let (code, out, err) = run(&["--invite", &link.to_string()], "/join dev\nhello from the invite");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("\"event\":\"key_issued\""), "{out}");
    assert!(out.contains("\"room\":\"dev\""), "landed in #dev: {out}");
    // The invite is used up; the next run needs nothing but the server.
    let (code, out, err) = run(&["--server", &s.addr.to_string()], "hello with my own key");
    assert_eq!(code, 0, "the issued key: {out}\n{err}");
    assert!(!out.contains("key_issued"), "{out}");
    // Revoked: the kept key is refused at the key check, and said so.
    let id = admin_ok(&s, &["invite", "--list"])
        .lines()
        .find_map(|l| l.split_whitespace().next().map(|w| w.trim_start_matches('#').to_owned()))
        .unwrap_or_default();
    admin_ok(&s, &["invite", "--revoke", &id]);
    let (code, out, err) = run(&["--server", &s.addr.to_string()], "anyone there?");
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("issued_key_refused") || err.contains("refused"), "{out}\n{err}");
}
