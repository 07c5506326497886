//! History on disk (issue 15): what was acknowledged survives `kill -9`
//! and a restart, a backup taken while the server runs holds it, a damaged
//! database stops the server with one line, and a disk that fails under the
//! server turns acks into nacks — never the other way round.

use std::collections::HashSet;
use std::process::Command;

use protocol::message::{ClientMessage, NackReason, ServerMessage};
use socket_chatroom_tests::{Proc, RawClient, TestServer, bin};

/// Sends a chat message to `general`; the ack's server id or the nack's reason.
fn say(c: &mut RawClient, id: u64, text: &str) -> Result<u64, NackReason> {
    c.send(&ClientMessage::Chat { id, text: text.into(), room: Some("general".into()), to: None });
    match c.recv_until(
        "an answer",
        |m| matches!(m, ServerMessage::Ack { id: i, .. } | ServerMessage::Nack { id: i, .. } if *i == id),
    ) {
        ServerMessage::Ack { server_id: Some(s), .. } => Ok(s),
        ServerMessage::Nack { reason, .. } => Err(reason),
        other => panic!("{other:?}"),
    }
}

/// The history a new user gets on joining `general` (up to 500), as texts with ids.
fn history_of(server: &TestServer, name: &str) -> Vec<(u64, String)> {
    let mut c = server.raw_with(name, None, Some(500));
    let mut got = Vec::new();
    loop {
        match c.recv_until("history", |m| {
            matches!(m, ServerMessage::HistoryEnd { .. } | ServerMessage::Message { history: true, .. })
        }) {
            ServerMessage::Message { id, text, .. } => got.push((id, text)),
            _ => return got,
        }
    }
}

#[test]
fn acknowledged_messages_survive_kill_9_and_a_restart() {
    let server = TestServer::with_config("rate_per_sec = 1000\nrate_burst = 1000\n");
    let mut alice = server.raw("alice");
    let mut acked = Vec::new();
    for i in 1..=60 {
        acked.push((say(&mut alice, i, &format!("durable {i}")).expect("taken"), format!("durable {i}")));
    }
    // No goodbye, no flush: the process is killed outright.
    let TestServer { proc, dir, addr, .. } = server;
    proc.signal("KILL");
    drop(proc);
    let server = TestServer::relaunch_at(dir, addr);
    let history = history_of(&server, "bob");
    assert_eq!(history, acked, "every acknowledged message, in order, nothing else");
    // Ids go on after the restart.
    let mut alice = server.raw("alice");
    let next = say(&mut alice, 1, "after the restart").expect("taken");
    assert!(next > acked.last().map_or(0, |a| a.0), "ids continue after a restart");
}

#[test]
fn a_backup_taken_while_the_server_runs_restores_its_history() {
    let server = TestServer::with_config("rate_per_sec = 1000\nrate_burst = 1000\n");
    let mut alice = server.raw("alice");
    for i in 1..=20 {
        say(&mut alice, i, &format!("keep {i}")).expect("taken");
    }
    let copy = server.dir.path().join("backup.db");
    let out = Command::new(bin("server"))
        .arg("--config")
        .arg(server.dir.path().join("config.toml"))
        .arg("backup")
        .arg(&copy)
        .output()
        .expect("server backup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A second backup to the same file is refused rather than overwriting it.
    let again = Command::new(bin("server"))
        .arg("--config")
        .arg(server.dir.path().join("config.toml"))
        .arg("backup")
        .arg(&copy)
        .output()
        .expect("server backup");
    assert_eq!(again.status.code(), Some(2));
    say(&mut alice, 21, "after the backup").expect("taken");

    // Restore: stop the server, put the copy in place of the database.
    let TestServer { proc, dir, addr, .. } = server;
    drop(proc);
    let data = dir.path().join("data");
    for entry in std::fs::read_dir(&data).expect("data dir") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    std::fs::copy(&copy, data.join("chatroom.db")).expect("restore");
    let server = TestServer::relaunch_at(dir, addr);
    let texts: Vec<String> = history_of(&server, "bob").into_iter().map(|(_, t)| t).collect();
    let want: Vec<String> = (1..=20).map(|i| format!("keep {i}")).collect();
    assert_eq!(texts, want);
}

#[test]
fn a_damaged_database_stops_the_server_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("chatroom.db"), vec![0x5Au8; 64 * 1024]).expect("garbage");
    std::fs::write(dir.path().join("config.toml"), "[server]\nbind = \"127.0.0.1:0\"\n").expect("config");
    let mut cmd = Command::new(bin("server"));
    cmd.arg("--config").arg(dir.path().join("config.toml")).current_dir(dir.path());
    // `wait` gives up (and kills it) if the server runs on regardless.
    let mut server = Proc::spawn("server", cmd);
    assert_ne!(server.wait(), 0);
    let stderr = server.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("server:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("chatroom.db"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A disk that fills under the server (a file-size limit the server's
/// process cannot write past, which holds for root too): messages it cannot
/// store are nacked `storage_unavailable`, reach nobody, and everyone else
/// goes on; what was acked was delivered.
#[test]
fn a_failing_disk_turns_acks_into_nacks_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    socket_chatroom_tests::write_secret(
        &dir.path().join("config.toml"),
        "[server]\nbind = \"127.0.0.1:0\"\nkey_file = \"server.key\"\nmax_message_bytes = 8000\nrate_per_sec = 1000\nrate_burst = 1000\n",
    );
    std::fs::create_dir_all(dir.path().join("home")).expect("home");
    let mut cmd = Command::new("bash");
    // 1 MiB at most per file: SQLite's writes past it fail with EFBIG.
    cmd.arg("-c").arg("trap '' XFSZ; ulimit -f 2048; exec \"$0\" --config config.toml").arg(bin("server"));
    let server = TestServer::launch_cmd(dir, cmd);
    let mut alice = server.raw("alice");
    let mut bob = server.raw("bob");
    let filler = "x".repeat(7000);
    let (mut acked, mut nacked) = (HashSet::new(), HashSet::new());
    for i in 1..=400u64 {
        let text = format!("{i} {filler}");
        match say(&mut alice, i, &text) {
            Ok(_) => {
                acked.insert(i);
            }
            Err(NackReason::StorageUnavailable) => {
                nacked.insert(i);
                if nacked.len() >= 3 {
                    break;
                }
            }
            Err(other) => panic!("message {i}: {other:?}"),
        }
    }
    assert!(!nacked.is_empty(), "2.8 MB of messages fit in a 1 MiB file?");
    alice.send(&ClientMessage::Chat { id: 1000, text: "end".into(), room: None, to: Some("bob".into()) });
    // Bob got every acked message and none of the nacked ones, before "end".
    let mut got = HashSet::new();
    loop {
        match bob.recv_until("messages", |m| matches!(m, ServerMessage::Message { .. })) {
            ServerMessage::Message { text, .. } if text == "end" => break,
            ServerMessage::Message { text, .. } => {
                let n: u64 = text.split(' ').next().and_then(|n| n.parse().ok()).expect("numbered");
                assert!(!nacked.contains(&n), "message {n} was nacked yet delivered");
                got.insert(n);
            }
            _ => {}
        }
    }
    assert_eq!(got, acked, "every acked message was delivered");
    // Others go on: a private message needs no disk.
    bob.send(&ClientMessage::Chat { id: 1, text: "still here".into(), room: None, to: Some("alice".into()) });
    bob.recv_until("ack", |m| matches!(m, ServerMessage::Ack { id: 1, .. }));
    assert!(server.proc.stderr().contains("not stored") || server.proc.stderr().contains("store"));
}

#[test]
fn a_second_server_on_the_same_data_is_refused() {
    let server = TestServer::start();
    let out = Command::new(bin("server"))
        .arg("--config")
        .arg(server.dir.path().join("config.toml"))
        .args(["--bind", "127.0.0.1:0"])
        .current_dir(server.dir.path())
        .output()
        .expect("second server");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another server is running") && err.trim().lines().count() == 1, "{err}");
    // The first one goes on.
    let mut alice = server.raw("alice");
    say(&mut alice, 1, "still serving").expect("taken");
}
