//! Staying connected: after a lost connection (or a server shutdown, or a
//! busy server) wait, taking commands meanwhile, and try again with the
//! same identity and the messages still unacknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protocol::crypto::Psk;
use protocol::message::{DisconnectCause, RefusalCode};
use tokio::sync::mpsc;

use crate::client::{Command, ConnectOptions, DisconnectReason, Event};
use crate::connection::{LoginParts, establish};
use crate::key_choice::KeyChoice;
use crate::resume_store::{self, ResumeStore, StoreError};
use crate::roombook::RoomBook;
use crate::session::{self, Carry};

/// Whether a connection that ended this way is worth trying again (after a
/// first login). `name_taken` is: the server may hold our old session
/// until it notices it is dead, if it could not be resumed. Every other
/// refusal (a wrong account password, a ban) and every end for cause (a
/// kick, a ban) is final.
fn retryable(reason: &DisconnectReason) -> bool {
    matches!(
        reason,
        DisconnectReason::Lost(_)
            | DisconnectReason::ServerShutdown(_)
            | DisconnectReason::ConnectFailed(_)
            | DisconnectReason::Refused { code: RefusalCode::NameTaken, .. }
    )
}

/// How many times in a row the client waits when the server says "busy,
/// come back later" before it gives up.
const MAX_BUSY_WAITS: u32 = 8;

/// How a wait between tries ended.
enum Offline {
    /// Try again.
    Retry,
    /// The user quit with nothing left to deliver.
    Quit,
    /// Every handle was dropped.
    Abandoned,
}

/// The connection task behind [`crate::Client`]: connects, runs the
/// session, and after a lost connection waits and tries again (taking
/// commands meanwhile), until a final end, which is the last event.
pub(crate) async fn run(
    mut opts: ConnectOptions,
    mut cmds: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    max_message: Arc<AtomicU64>,
) {
    let mut carry = Carry {
        rooms: RoomBook::new(opts.history, &opts.rooms),
        account_password: opts.account_password.take(),
        ..Carry::default()
    };
    // The token an earlier run left takes a held name back; the lock keeps
    // a second process of the same user out.
    let store = match opts.state_dir.clone().or_else(resume_store::default_dir) {
        Some(dir) => match ResumeStore::open(&dir, &opts.server, &opts.username) {
            Ok(s) => Some(s),
            Err(e @ StoreError::InUse { .. }) => {
                let reason =
                    DisconnectReason::Refused { code: RefusalCode::NameTaken, reason: e.to_string(), until_ms: None };
                let _ = events.send(Event::Disconnected { reason, unacked: 0 }).await;
                return;
            }
            // No place to keep it: the client works, without resuming
            // across runs.
            Err(_) => None,
        },
        None => None,
    };
    // The key: a flag's, or the one this server issued us, or the invite's
    // or configuration's.
    let (keys, note) = KeyChoice::start(&mut opts);
    carry.key = keys;
    if let Some(note) = note {
        let _ = events.send(Event::Notice(note)).await;
    }
    let mut resume = store.as_ref().and_then(ResumeStore::load);
    let mut restored = resume.is_some();
    let mut logged_in = false;
    let mut attempt = 0u32;
    let mut busy_waits = 0u32;
    let reason = loop {
        if let Some(k) = carry.key.fresh() {
            // Issued in this run: the server's word beats the key we came with.
            opts.key = k.clone();
        } else if logged_in
            && let Some(f) = &opts.key_file
            && let Some(k) = std::fs::read_to_string(f).ok().and_then(|t| Psk::parse(&t).ok())
        {
            opts.key = k;
        }
        carry.key.set_using(&opts.key);
        // The token is kept until a welcome brings the next one: a failed
        // try must not lose it.
        let (rooms, history) = carry.rooms.login();
        let parts = LoginParts {
            resume: resume.clone(),
            restored,
            first_id: carry.unacked.settled.floor(),
            rooms,
            history,
            account_password: carry.account_password.clone(),
        };
        // Each address gets the whole timeout.
        let timeout = opts.connect_timeout.saturating_mul(u32::try_from(opts.alternates.len()).unwrap_or(0) + 1);
        let attempt_result = tokio::time::timeout(timeout, establish(&opts, parts)).await;
        let reason = match attempt_result {
            Err(_) => DisconnectReason::ConnectFailed(format!("{}: timed out after {timeout:?}", opts.server)),
            Ok(Err(reason)) => reason,
            Ok(Ok(est)) => {
                attempt = 0;
                busy_waits = 0;
                if !logged_in {
                    // Reconnections accept this identity and no other.
                    opts.fingerprint = Some(est.fingerprint);
                    logged_in = true;
                }
                resume = est.resume;
                restored = false;
                if let (Some(s), Some(token)) = (&store, &resume) {
                    let _ = s.save(token);
                }
                max_message.store(u64::from(est.limits.max_message_bytes), Ordering::Relaxed);
                carry.unacked.resend_inflight();
                carry.me.clone_from(&est.me);
                let connected = Event::Connected {
                    me: est.me,
                    users: est.users,
                    users_total: est.users_total,
                    rooms: est.rooms.clone(),
                    fingerprint: est.fingerprint,
                    trust: est.trust,
                    limits: est.limits,
                    registered: est.registered,
                    roles: est.roles,
                };
                let _ = events.send(connected).await;
                session::run(est.conn, est.limits, &est.rooms, opts.queue_limit, &mut cmds, &events, &mut carry).await
            }
        };
        let reason = carry.key.refused(reason);
        // The server said when to come back: wait that long (and a little
        // more, so a crowd told the same does not return at once), even
        // before the first login; a few times, then give up.
        let busy = match &reason {
            DisconnectReason::Busy { retry_after, .. } if busy_waits < MAX_BUSY_WAITS => Some(*retry_after),
            _ => None,
        };
        if busy.is_none() && !(logged_in && retryable(&reason) && attempt < opts.reconnect.attempts) || cmds.is_closed()
        {
            break reason;
        }
        if carry.quitting && carry.unacked.len() == 0 {
            // Nothing was left to deliver: the quit is what ends it.
            break DisconnectReason::Quit;
        }
        let jitter = u16::from_le_bytes(protocol::crypto::random_bytes::<2>());
        let delay = match busy {
            Some(wait) => {
                busy_waits += 1;
                wait + wait.mul_f64(0.25 * f64::from(jitter) / f64::from(u16::MAX))
            }
            None => {
                attempt += 1;
                opts.reconnect.delay(attempt, jitter)
            }
        };
        let _ = events.send(Event::Reconnecting { reason: reason.clone(), attempt, delay }).await;
        match wait_offline(delay, opts.queue_limit, &mut cmds, &events, &mut carry).await {
            Offline::Retry => {}
            Offline::Quit => break DisconnectReason::Quit,
            Offline::Abandoned => break reason,
        }
    };
    // A revoked key is of no use any more.
    if let DisconnectReason::Kicked { cause: DisconnectCause::KeyRevoked, .. } = &reason
        && let Some(note) = carry.key.revoked()
    {
        let _ = events.send(Event::Notice(note)).await;
    }
    // A quit or a kick leaves nothing to resume.
    if matches!(reason, DisconnectReason::Quit | DisconnectReason::Kicked { .. })
        && let Some(s) = &store
    {
        s.clear();
    }
    // Whatever was queued behind the end counts as not acknowledged too.
    cmds.close();
    let mut unacked = carry.unacked.len();
    while let Ok(cmd) = cmds.try_recv() {
        if matches!(cmd, Command::Send { .. }) {
            unacked += 1;
        }
    }
    let _ = events.send(Event::Disconnected { reason, unacked }).await;
}

/// Waits `delay` while disconnected, still taking commands: messages are
/// queued (up to `queue_limit`, then senders wait), voice intent and gains
/// are kept (the same [`Carry::command`] as online).
async fn wait_offline(
    delay: Duration,
    queue_limit: usize,
    cmds: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
    carry: &mut Carry,
) -> Offline {
    let until = tokio::time::Instant::now() + delay;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return Offline::Retry,
            cmd = cmds.recv(), if carry.unacked.len() < queue_limit => {
                let Some(cmd) = cmd else { return Offline::Abandoned };
                match carry.command(cmd) {
                    Some(
                        Command::Who { .. }
                        | Command::Rooms
                        | Command::History { .. }
                        | Command::PrivateHistory { .. }
                        | Command::Account(_)
                        | Command::Moderate(_),
                    ) => {
                        let _ = events.send(Event::Notice("not connected; reconnecting".into())).await;
                    }
                    Some(Command::JoinVoice { options, room }) => carry.voice = Some((*options, room)),
                    // Joined once connected.
                    Some(Command::Join { room }) => {
                        let _ = carry.rooms.join(&room);
                    }
                    Some(Command::ReconnectNow) => return Offline::Retry,
                    // Recorded for the next connection.
                    Some(
                        Command::Send { .. }
                        | Command::Quit
                        | Command::LeaveVoice
                        | Command::SetGain { .. }
                        | Command::Part { .. },
                    )
                    | None => {}
                }
                if carry.quitting && carry.unacked.len() == 0 {
                    return Offline::Quit;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Outgoing;

    #[test]
    fn lost_shutdown_connect_and_held_name_are_worth_retrying() {
        assert!(retryable(&DisconnectReason::Lost("x".into())));
        assert!(retryable(&DisconnectReason::ServerShutdown("x".into())));
        assert!(retryable(&DisconnectReason::ConnectFailed("x".into())));
        let refused = |code| DisconnectReason::Refused { code, reason: String::new(), until_ms: None };
        assert!(retryable(&refused(RefusalCode::NameTaken)));
        assert!(!retryable(&refused(RefusalCode::InvalidName)));
        assert!(!retryable(&refused(RefusalCode::AccountPassword)), "the same password would fail again");
        assert!(!retryable(&DisconnectReason::Refused {
            code: RefusalCode::Banned,
            reason: "banned".into(),
            until_ms: Some(1)
        }));
        for cause in [DisconnectCause::Kicked, DisconnectCause::Banned] {
            let end = DisconnectReason::Kicked { cause, detail: "by mod".into(), until_ms: None };
            assert!(!retryable(&end), "a kicked or banned client does not come back by itself");
        }
        assert!(!retryable(&DisconnectReason::WrongKey));
        assert!(!retryable(&DisconnectReason::IssuedKeyRefused { file: None }));
        let revoked =
            DisconnectReason::Kicked { cause: DisconnectCause::KeyRevoked, detail: String::new(), until_ms: None };
        assert!(!retryable(&revoked), "a revoked key would be refused again");
        assert!(!retryable(&DisconnectReason::Quit));
    }

    #[tokio::test]
    async fn who_while_offline_gives_the_notice_and_commands_are_kept() {
        let (cmd_tx, mut cmds) = mpsc::channel(8);
        let (events, mut ev_rx) = mpsc::channel(8);
        let mut carry = Carry::default();
        cmd_tx.send(Command::Who { room: None }).await.expect("open");
        cmd_tx
            .send(Command::Send { id: 1, out: Outgoing::Chat { text: "later".into(), target: None } })
            .await
            .expect("open");
        cmd_tx.send(Command::SetGain { user: "ann".into(), gain: 0.5 }).await.expect("open");
        cmd_tx.send(Command::ReconnectNow).await.expect("open");
        let outcome = wait_offline(Duration::from_secs(3600), 16, &mut cmds, &events, &mut carry).await;
        assert!(matches!(outcome, Offline::Retry));
        assert_eq!(ev_rx.try_recv().ok(), Some(Event::Notice("not connected; reconnecting".into())));
        assert_eq!(carry.unacked.pending.get(&1), Some(&Outgoing::Chat { text: "later".into(), target: None }));
        assert_eq!(carry.gains.get("ann"), Some(&0.5));
    }

    #[tokio::test]
    async fn quit_offline_ends_at_once_with_nothing_queued_and_waits_otherwise() {
        let (cmd_tx, mut cmds) = mpsc::channel(8);
        let (events, _ev_rx) = mpsc::channel(8);
        let mut carry = Carry::default();
        cmd_tx.send(Command::Quit).await.expect("open");
        let outcome = wait_offline(Duration::from_secs(3600), 16, &mut cmds, &events, &mut carry).await;
        assert!(matches!(outcome, Offline::Quit));

        let mut carry = Carry::default();
        carry.unacked.queue(1, Outgoing::Chat { text: "still to deliver".into(), target: None });
        cmd_tx.send(Command::Quit).await.expect("open");
        drop(cmd_tx);
        let outcome = wait_offline(Duration::from_secs(3600), 16, &mut cmds, &events, &mut carry).await;
        assert!(matches!(outcome, Offline::Abandoned), "a quit with messages unacknowledged waits for them");
        assert!(carry.quitting);
    }
}
