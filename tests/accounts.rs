//! Accounts, moderation and the admin socket (issue 16), end to end: the
//! real server, raw protocol clients on loopback, and `server admin` run
//! as the operator would (and as another user, who is refused).

// A refusal is the server's message itself, as the support library returns it.
#![allow(clippy::result_large_err)]

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use protocol::message::{ClientMessage, DisconnectCause, NackReason, RefusalCode, ServerMessage};
use protocol::moderation::{Action, DenyReason, Role, RoomSetting};
use socket_chatroom_tests::{RawClient, TestServer, bin, host};

const PASSWORD: &str = "correct horse battery";

const CONFIG: &str = "[[rooms]]\nname = \"dev\"\n";

/// A login as `name`, with `account_password` if given, from 127.0.0.1 or
/// from `from`.
fn login(
    s: &TestServer,
    name: &str,
    account_password: Option<&str>,
    from: Option<std::net::IpAddr>,
) -> Result<RawClient, ServerMessage> {
    let msg = ClientMessage::Login {
        version: protocol::PROTOCOL_VERSION,
        username: name.to_owned(),
        password: None,
        resume: None,
        first_id: None,
        restored: false,
        rooms: None,
        history: None,
        account_password: account_password.map(str::to_owned),
    };
    let c = match from {
        Some(ip) => RawClient::connect_from(ip, s.addr).map_err(|e| ServerMessage::Error { detail: e.to_string() })?,
        None => RawClient::connect(s.addr),
    };
    c.finish_login_as(&s.key, &msg)
}

/// Logs in and waits for the welcome's rooms to be joined.
fn user(s: &TestServer, name: &str, account_password: Option<&str>) -> RawClient {
    login(s, name, account_password, None).unwrap_or_else(|e| panic!("{name} could not log in: {e:?}"))
}

/// Sends an account or moderation request and waits for its answer.
fn ask(c: &mut RawClient, msg: ClientMessage) -> ServerMessage {
    c.send(&msg);
    c.recv_until("an answer", |m| {
        matches!(
            m,
            ServerMessage::Done { .. }
                | ServerMessage::Denied { .. }
                | ServerMessage::Bans { .. }
                | ServerMessage::Audit { .. }
        )
    })
}

/// [`ask`] for an account request: after a wrong current password the
/// session makes the next request wait (1 s, doubling), answering
/// `retry_later` meanwhile; asks again until the real answer comes.
fn ask_account(c: &mut RawClient, msg: ClientMessage) -> ServerMessage {
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match ask(c, msg.clone()) {
            ServerMessage::Denied { reason: DenyReason::RetryLater, .. } if std::time::Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

fn act(c: &mut RawClient, action: Action) -> ServerMessage {
    ask(c, ClientMessage::Moderate(action))
}

fn register(c: &mut RawClient, password: &str) {
    let got = ask(c, ClientMessage::Register { password: password.into() });
    assert!(matches!(got, ServerMessage::Done { ref action, .. } if action == "register"), "{got:?}");
}

fn admin(s: &TestServer, args: &[&str]) -> (i32, String, String) {
    s.admin(args)
}

fn admin_ok(s: &TestServer, args: &[&str]) -> String {
    s.admin_ok(args)
}

/// Sends a chat message and waits for its answer.
fn say(c: &mut RawClient, id: u64, room: Option<&str>, to: Option<&str>, text: &str) -> Result<u64, NackReason> {
    c.send(&ClientMessage::Chat { id, text: text.into(), room: room.map(Into::into), to: to.map(Into::into) });
    match c.recv_until(
        "an answer",
        |m| matches!(m, ServerMessage::Ack { id: i, .. } | ServerMessage::Nack { id: i, .. } if *i == id),
    ) {
        ServerMessage::Ack { server_id, .. } => Ok(server_id.unwrap_or(0)),
        ServerMessage::Nack { reason, .. } => Err(reason),
        other => panic!("{other:?}"),
    }
}

fn refusal(r: Result<RawClient, ServerMessage>) -> (RefusalCode, String, Option<u64>) {
    match r {
        Err(ServerMessage::Refused { code, reason, until_ms, .. }) => (code, reason, until_ms),
        Ok(_) => panic!("logged in; a refusal was expected"),
        Err(other) => panic!("{other:?}"),
    }
}

#[test]
fn a_registered_name_needs_its_account_password_until_it_is_given_back() {
    let s = TestServer::with_config(CONFIG);
    let mut alice = user(&s, "alice", None);
    // Too short a password is refused before anything is stored.
    let weak = ask(&mut alice, ClientMessage::Register { password: "short".into() });
    assert!(matches!(weak, ServerMessage::Denied { reason: DenyReason::WeakPassword, .. }), "{weak:?}");
    register(&mut alice, PASSWORD);
    let again = ask(&mut alice, ClientMessage::Register { password: PASSWORD.into() });
    assert!(matches!(again, ServerMessage::Denied { reason: DenyReason::AlreadyRegistered, .. }), "{again:?}");
    alice.send(&ClientMessage::Quit);
    alice.expect_closed();

    let (code, reason, _) = refusal(login(&s, "alice", None, None));
    assert_eq!(code, RefusalCode::AccountPassword, "{reason}");
    let (code, _, _) = refusal(login(&s, "ALICE", Some("wrong password"), None));
    assert_eq!(code, RefusalCode::AccountPassword, "a look-alike is the same account");
    let mut alice = user(&s, "alice", Some(PASSWORD));

    // Changing the password needs the current one.
    let wrong = ask_account(
        &mut alice,
        ClientMessage::ChangePassword { old: Some("nope nope".into()), new: "new password!".into() },
    );
    assert!(matches!(wrong, ServerMessage::Denied { reason: DenyReason::WrongPassword, .. }), "{wrong:?}");
    let changed = ask_account(
        &mut alice,
        ClientMessage::ChangePassword { old: Some(PASSWORD.into()), new: "new password!".into() },
    );
    assert!(matches!(changed, ServerMessage::Done { .. }), "{changed:?}");
    alice.send(&ClientMessage::Quit);
    alice.expect_closed();
    assert_eq!(refusal(login(&s, "alice", Some(PASSWORD), None)).0, RefusalCode::AccountPassword);
    let mut alice = user(&s, "alice", Some("new password!"));

    // Given back: first come, first served again.
    let wrong = ask_account(&mut alice, ClientMessage::Unregister { password: PASSWORD.into() });
    assert!(matches!(wrong, ServerMessage::Denied { reason: DenyReason::WrongPassword, .. }), "{wrong:?}");
    let gone = ask_account(&mut alice, ClientMessage::Unregister { password: "new password!".into() });
    assert!(matches!(gone, ServerMessage::Done { .. }), "{gone:?}");
    alice.send(&ClientMessage::Quit);
    alice.expect_closed();
    user(&s, "alice", None);
}

#[test]
fn the_owner_takes_a_held_name_back_with_the_account_password() {
    let s = TestServer::with_config(CONFIG);
    let mut first = user(&s, "alice", None);
    register(&mut first, PASSWORD);
    // The connection drops (no quit): the name is held for resumption.
    drop(first);
    let (code, _, _) = refusal(login(&s, "alice", None, None));
    assert!(matches!(code, RefusalCode::NameTaken | RefusalCode::AccountPassword), "{code:?}");
    // The account password takes it back at once.
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let mut owner = loop {
        match login(&s, "alice", Some(PASSWORD), None) {
            Ok(c) => break c,
            // The server may not have seen the drop yet: the live session
            // still holds the name.
            Err(ServerMessage::Refused { code: RefusalCode::NameTaken, .. }) if std::time::Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(say(&mut owner, 1, Some("general"), None, "back").map(|_| ()), Ok(()));
}

#[test]
fn bans_by_name_and_address_hold_across_a_restart_and_are_audited() {
    let s = TestServer::with_config(CONFIG);
    let mut mallory = user(&s, "mallory", None);
    let out = admin_ok(&s, &["ban", "mallory", "2h", "spam", "links"]);
    assert!(out.contains("banned mallory for 2h"), "{out}");
    let gone = mallory.recv_until("the ban", |m| matches!(m, ServerMessage::Disconnect { .. }));
    let ServerMessage::Disconnect { cause, detail, until_ms } = gone else { unreachable!() };
    assert_eq!(cause, DisconnectCause::Banned);
    assert!(detail.contains("spam links") && until_ms.is_some(), "{detail} {until_ms:?}");
    mallory.expect_closed();
    let (code, reason, until) = refusal(login(&s, "Mallory", None, None));
    assert_eq!(code, RefusalCode::Banned);
    assert!(reason.contains("spam links") && reason.contains("until") && until.is_some(), "{reason}");

    // An address: everyone from 127.0.0.2 goes, 127.0.0.3 stays.
    let mut from2 = login(&s, "bob", None, Some(host(2))).expect("bob from .2");
    let mut from3 = login(&s, "carol", None, Some(host(3))).expect("carol from .3");
    admin_ok(&s, &["banip", "127.0.0.2", "abuse"]);
    let gone = from2.recv_until("the address ban", |m| matches!(m, ServerMessage::Disconnect { .. }));
    assert!(matches!(gone, ServerMessage::Disconnect { cause: DisconnectCause::Banned, until_ms: None, .. }));
    assert_eq!(refusal(login(&s, "dave", None, Some(host(2)))).0, RefusalCode::Banned);
    assert_eq!(say(&mut from3, 1, Some("general"), None, "still here").map(|_| ()), Ok(()));
    drop(from3);

    // Both survive a restart.
    let TestServer { mut proc, addr, dir, .. } = s;
    proc.signal("TERM");
    assert_eq!(proc.wait(), 0);
    let s = TestServer::relaunch_at(dir, addr);
    assert_eq!(refusal(login(&s, "mallory", None, None)).0, RefusalCode::Banned);
    assert_eq!(refusal(login(&s, "erin", None, Some(host(2)))).0, RefusalCode::Banned);
    let bans = admin_ok(&s, &["bans"]);
    assert!(bans.contains("mallory") && bans.contains("127.0.0.2/32"), "{bans}");

    admin_ok(&s, &["unban", "mallory"]);
    admin_ok(&s, &["unban", "127.0.0.2"]);
    user(&s, "mallory", None);
    login(&s, "erin", None, Some(host(2))).expect("unbanned address");
    let audit = admin_ok(&s, &["audit"]);
    for needle in ["ban mallory", "ban_ip 127.0.0.2/32", "unban mallory", "unban 127.0.0.2/32"] {
        assert!(audit.contains(needle), "no {needle:?} in the audit log:\n{audit}");
    }
    assert!(audit.contains("server admin"), "{audit}");
}

#[test]
fn a_room_moderator_reaches_their_room_only_and_roles_come_and_go() {
    let s = TestServer::with_config(CONFIG);
    let join_dev = |c: &mut RawClient| {
        c.send(&ClientMessage::Join {
            join: protocol::message::RoomJoin { room: "dev".into(), after: None },
            history: Some(0),
        });
        c.recv_until("dev joined", |m| matches!(m, ServerMessage::RoomJoined { room, .. } if room == "dev"));
    };
    let mut mo = user(&s, "mo", None);
    register(&mut mo, PASSWORD);
    let mut eve = user(&s, "eve", None);
    join_dev(&mut mo);
    join_dev(&mut eve);

    // Without a role: nothing.
    let no =
        act(&mut mo, Action::Mute { name: "eve".into(), room: Some("dev".into()), duration_secs: None, reason: None });
    assert!(matches!(no, ServerMessage::Denied { reason: DenyReason::NotAllowed, .. }), "{no:?}");
    // Only registered names get roles.
    let (code, _, err) = admin(&s, &["grant", "eve", "--moderator"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a registered name"), "{err}");
    admin_ok(&s, &["grant", "mo", "--moderator", "--room", "dev"]);
    mo.recv_until("the grant", |m| matches!(m, ServerMessage::Notice { text } if text.contains("moderator of #dev")));

    let muted = act(
        &mut mo,
        Action::Mute {
            name: "eve".into(),
            room: Some("dev".into()),
            duration_secs: Some(600),
            reason: Some("calm down".into()),
        },
    );
    assert!(matches!(muted, ServerMessage::Done { .. }), "{muted:?}");
    assert_eq!(say(&mut eve, 1, Some("dev"), None, "hello?"), Err(NackReason::Muted));
    assert!(say(&mut eve, 2, Some("general"), None, "over here then").is_ok(), "muted in #dev only");
    // Beyond the room: refused.
    for action in [
        Action::Mute { name: "eve".into(), room: Some("general".into()), duration_secs: None, reason: None },
        Action::Mute { name: "eve".into(), room: None, duration_secs: None, reason: None },
        Action::Ban { name: "eve".into(), duration_secs: None, reason: None },
        Action::Kick { name: "eve".into(), reason: None },
        Action::Topic { room: "general".into(), topic: "mine now".into() },
        Action::Bans,
    ] {
        let got = act(&mut mo, action.clone());
        assert!(matches!(got, ServerMessage::Denied { reason: DenyReason::NotAllowed, .. }), "{action:?}: {got:?}");
    }
    // Within it: the topic reaches the room's members.
    let topic = act(&mut mo, Action::Topic { room: "dev".into(), topic: "release week".into() });
    assert!(matches!(topic, ServerMessage::Done { .. }), "{topic:?}");
    eve.recv_until(
        "the topic",
        |m| matches!(m, ServerMessage::Topic { topic, by, .. } if topic == "release week" && by == "mo"),
    );
    let set = act(&mut mo, Action::RoomSet { room: "dev".into(), setting: RoomSetting::InviteOnly(true) });
    assert!(matches!(set, ServerMessage::Done { .. }), "{set:?}");
    let unmuted = act(&mut mo, Action::Unmute { name: "eve".into(), room: Some("dev".into()) });
    assert!(matches!(unmuted, ServerMessage::Done { .. }), "{unmuted:?}");
    assert!(say(&mut eve, 3, Some("dev"), None, "thanks").is_ok());

    // The room moderator reads their room's audit entries only.
    let audit = act(&mut mo, Action::Audit { limit: None, before: None });
    let ServerMessage::Audit { entries, .. } = audit else { panic!("{audit:?}") };
    assert!(entries.iter().all(|e| e.room.as_deref() == Some("dev")), "{entries:?}");
    for action in ["mute", "topic", "room_set", "unmute"] {
        assert!(entries.iter().any(|e| e.action == action && e.actor == "mo"), "no {action} in {entries:?}");
    }

    // Admins: granted on the machine only, then they make moderators.
    let mut root = user(&s, "root", None);
    register(&mut root, PASSWORD);
    let self_made = act(&mut root, Action::Grant { name: "root".into(), role: Role::Admin, room: None });
    assert!(matches!(self_made, ServerMessage::Denied { reason: DenyReason::NotAllowed, .. }), "{self_made:?}");
    admin_ok(&s, &["grant", "root"]);
    root.recv_until("admin", |m| matches!(m, ServerMessage::Notice { text } if text.contains("admin now")));
    let made = act(&mut root, Action::Grant { name: "mo".into(), role: Role::Moderator, room: None });
    assert!(matches!(made, ServerMessage::Done { .. }), "{made:?}");
    let now_global = act(&mut mo, Action::Kick { name: "eve".into(), reason: Some("bye".into()) });
    assert!(matches!(now_global, ServerMessage::Done { .. }), "{now_global:?}");
    let kicked = eve.recv_until("the kick", |m| matches!(m, ServerMessage::Disconnect { .. }));
    assert!(
        matches!(kicked, ServerMessage::Disconnect { cause: DisconnectCause::Kicked, ref detail, .. } if detail.contains("bye")),
        "{kicked:?}"
    );
    // A moderator does not act on an admin.
    let up = act(&mut mo, Action::Kick { name: "root".into(), reason: None });
    assert!(matches!(up, ServerMessage::Denied { reason: DenyReason::NotAllowed, .. }), "{up:?}");
    admin_ok(&s, &["revoke", "root"]);
    root.recv_until("revoked", |m| matches!(m, ServerMessage::Notice { text } if text.contains("no longer an admin")));
    let gone = act(&mut root, Action::Revoke { name: "mo".into(), role: Role::Moderator, room: None });
    assert!(matches!(gone, ServerMessage::Denied { reason: DenyReason::NotAllowed, .. }), "{gone:?}");

    // The operator's log has all of it.
    let audit = admin_ok(&s, &["audit", "--limit", "100"]);
    for needle in ["grant mo", "grant root", "grant mo", "kick eve", "revoke root", "mute eve", "topic dev"] {
        assert!(audit.contains(needle), "no {needle:?} in\n{audit}");
    }
}

#[test]
fn private_messages_between_accounts_are_stored_for_those_two_only() {
    let s = TestServer::with_config(CONFIG);
    let mut alice = user(&s, "alice", None);
    let mut bob = user(&s, "bob", None);
    let mut carol = user(&s, "carol", None);
    for c in [&mut alice, &mut bob, &mut carol] {
        register(c, PASSWORD);
    }
    let mut dave = user(&s, "dave", None);
    say(&mut alice, 1, None, Some("bob"), "the secret handshake").expect("sent");
    bob.recv_until(
        "alice's message",
        |m| matches!(m, ServerMessage::Message { text, .. } if text == "the secret handshake"),
    );

    let page = |c: &mut RawClient, with: &str| -> Vec<String> {
        c.send(&ClientMessage::History { room: None, with: Some(with.into()), before: None, after: None, limit: 50 });
        let mut texts = Vec::new();
        loop {
            let m = c.recv_until("the page", |m| {
                matches!(m, ServerMessage::Message { history: true, to: Some(_), .. })
                    || matches!(m, ServerMessage::HistoryEnd { with: Some(_), .. })
            });
            match m {
                ServerMessage::Message { text, .. } => texts.push(text),
                _ => return texts,
            }
        }
    };
    assert_eq!(page(&mut bob, "alice"), ["the secret handshake"]);
    assert_eq!(page(&mut alice, "bob"), ["the secret handshake"]);
    assert!(page(&mut carol, "alice").is_empty(), "carol reads only her own conversations");
    assert!(page(&mut carol, "bob").is_empty());
    assert!(page(&mut dave, "alice").is_empty(), "an unregistered name has no stored conversations");
    drop((alice, bob, carol, dave));

    // After a restart, still there for the two.
    let TestServer { mut proc, addr, dir, .. } = s;
    proc.signal("TERM");
    assert_eq!(proc.wait(), 0);
    let s = TestServer::relaunch_at(dir, addr);
    let mut bob = user(&s, "bob", Some(PASSWORD));
    assert_eq!(page(&mut bob, "alice"), ["the secret handshake"]);
}

#[test]
fn the_admin_socket_serves_the_owner_only_and_says_when_no_server_runs() {
    let s = TestServer::with_config(CONFIG);
    let out = admin_ok(&s, &["--json", "stats"]);
    assert!(out.contains("\"ok\":true") && out.contains("\"users\":0"), "{out}");
    let socket = s.dir.path().join("data").join("admin.sock");
    let mode = std::fs::metadata(&socket).expect("socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Another user: the file modes stop it, and where they were opened up
    // by mistake, the server checks who is calling (SO_PEERCRED).
    let server_bin = s.dir.path().join("server-bin");
    std::fs::copy(bin("server"), &server_bin).expect("copy");
    std::fs::set_permissions(&server_bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let nobody_cfg = s.dir.path().join("nobody.toml");
    let data = s.dir.path().join("data");
    std::fs::write(&nobody_cfg, format!("[server]\ndata_dir = {:?}\n", data.display().to_string())).expect("cfg");
    std::fs::set_permissions(&nobody_cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&server_bin)
            .arg("--config")
            .arg(&nobody_cfg)
            .args(["admin", "who"])
            .current_dir("/")
            .output()
            .expect("setpriv runs")
    };
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied") || err.contains("may not administer"), "{err}");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("uid 65534 may not administer"), "the server itself refused: {err}");

    let TestServer { mut proc, dir, .. } = s;
    proc.signal("TERM");
    assert_eq!(proc.wait(), 0);
    let out = Command::new(bin("server"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .args(["admin", "who"])
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no server is running on the data directory"), "{err}");
}

#[test]
fn a_reset_code_replaces_the_password_once_and_every_change_is_audited() {
    let s = TestServer::with_config(CONFIG);
    let mut alice = user(&s, "alice", None);
    register(&mut alice, PASSWORD);
    alice.send(&ClientMessage::Quit);
    alice.expect_closed();
    let (code, out, err) = admin(&s, &["reset-password", "nobody-here"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("not a registered name"), "{err}");
    let out = admin_ok(&s, &["reset-password", "alice"]);
    let code = out
        .lines()
        .find(|l| l.starts_with("one-time reset code"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no code in {out}"))
        .to_owned();
    assert_eq!(code.len(), 20, "{out}");
    // The old password stops working at once.
    assert_eq!(refusal(login(&s, "alice", Some(PASSWORD), None)).0, RefusalCode::AccountPassword);
    let mut alice = user(&s, "alice", Some(&code));
    alice.recv_until("the reset notice", |m| matches!(m, ServerMessage::Notice { text } if text.contains("/password")));
    let set = ask_account(&mut alice, ClientMessage::ChangePassword { old: None, new: "a brand new one".into() });
    assert!(matches!(set, ServerMessage::Done { .. }), "{set:?}");
    alice.send(&ClientMessage::Quit);
    alice.expect_closed();
    assert_eq!(refusal(login(&s, "alice", Some(&code), None)).0, RefusalCode::AccountPassword, "the code worked once");
    let mut alice = user(&s, "alice", Some("a brand new one"));
    // Without a reset, the current password is needed again.
    let bare = ask_account(&mut alice, ClientMessage::ChangePassword { old: None, new: "yet another one".into() });
    assert!(matches!(bare, ServerMessage::Denied { reason: DenyReason::WrongPassword, .. }), "{bare:?}");

    let mut mo = user(&s, "mo", None);
    register(&mut mo, PASSWORD);
    admin_ok(&s, &["grant", "mo", "--moderator", "--room", "dev"]);
    // Only accounts go on invite lists.
    let bare = act(&mut mo, Action::Invite { room: "dev".into(), name: "eve".into(), remove: false });
    assert!(matches!(bare, ServerMessage::Denied { reason: DenyReason::NoSuchAccount, .. }), "{bare:?}");
    let invited = act(&mut mo, Action::Invite { room: "dev".into(), name: "alice".into(), remove: false });
    assert!(matches!(invited, ServerMessage::Done { .. }), "{invited:?}");
    let audit = admin_ok(&s, &["audit", "--limit", "100"]);
    for needle in
        ["alice register alice", "reset_password alice", "alice password alice", "grant mo", "invite alice #dev"]
    {
        assert!(audit.contains(needle), "no {needle:?} in\n{audit}");
    }
}

#[test]
fn an_invite_only_room_admits_its_list_and_moderators() {
    let s = TestServer::with_config(CONFIG);
    let mut mo = user(&s, "mo", None);
    register(&mut mo, PASSWORD);
    admin_ok(&s, &["grant", "mo", "--moderator", "--room", "dev"]);
    let set = act(&mut mo, Action::RoomSet { room: "dev".into(), setting: RoomSetting::InviteOnly(true) });
    assert!(matches!(set, ServerMessage::Done { .. }), "{set:?}");
    let join = |c: &mut RawClient| {
        c.send(&ClientMessage::Join {
            join: protocol::message::RoomJoin { room: "dev".into(), after: None },
            history: Some(0),
        });
        c.recv_until("an answer", |m| {
            matches!(m, ServerMessage::RoomJoined { room, .. } | ServerMessage::JoinRefused { room, .. } if room == "dev")
        })
    };
    let mut eve = user(&s, "eve", None);
    register(&mut eve, PASSWORD);
    let refused = join(&mut eve);
    assert!(matches!(refused, ServerMessage::JoinRefused { reason: NackReason::InviteOnly, .. }), "{refused:?}");
    assert!(matches!(join(&mut mo), ServerMessage::RoomJoined { .. }), "its moderator gets in");
    let invited = act(&mut mo, Action::Invite { room: "dev".into(), name: "Eve".into(), remove: false });
    assert!(matches!(invited, ServerMessage::Done { .. }), "{invited:?}");
    assert!(matches!(join(&mut eve), ServerMessage::RoomJoined { .. }), "invited");
}

/// `client-cli` as a script uses it: `--register` with the password from
/// the environment, then logins without it (exit 3), with a wrong one
/// (exit 3), with it (in), and `/unregister` from a pipe.
#[test]
fn client_cli_registers_and_a_registered_name_refuses_logins_without_its_password() {
    let s = TestServer::with_config(CONFIG);
    let run = |args: &[&str], password: Option<&str>, stdin: &str| {
        let mut cmd = s.cli("alice");
        cmd.args(args).env_remove("CHATROOM_ACCOUNT_PASSWORD").env_remove("CHATROOM_NEW_ACCOUNT_PASSWORD");
        if let Some(p) = password {
            cmd.env("CHATROOM_ACCOUNT_PASSWORD", p);
        }
        let mut p = socket_chatroom_tests::Proc::spawn("client-cli alice", cmd);
        for line in stdin.lines() {
            p.send(line);
        }
        p.close_stdin();
        let code = p.wait();
        (code, p.seen().join("\n"), p.stderr())
    };
    let (code, out, err) = run(&["--register"], Some(PASSWORD), "/quit");
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run(&[], None, "hello");
    assert_eq!(code, 3, "no account password: {out}\n{err}");
    assert!(err.contains("registered") || out.contains("registered"), "{out}\n{err}");
    let (code, out, err) = run(&[], Some("not the password"), "hello");
    assert_eq!(code, 3, "a wrong one: {out}\n{err}");
    let (code, out, err) = run(&["--json"], Some(PASSWORD), "in with it\n/unregister");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("\"event\":\"done\"") && out.contains("unregister"), "{out}\n{err}");
    // Given back: anyone may use the name again.
    let (code, out, err) = run(&[], None, "hello");
    assert_eq!(code, 0, "{out}\n{err}");
}
