//! The `Session` actor: one per TCP connection. It runs the handshake,
//! opens and seals every frame with its own session keys, enforces the
//! limits (frame size, handshake deadline, idle timeout, message rate,
//! outbound queue) and talks to the roster in typed messages.
//!
//! Writes go through a bounded queue to a writer task that seals and batches
//! frames into one `write` per wake-up; a full queue marks a hopelessly slow
//! reader, who is disconnected rather than allowed to slow anyone else down.
//! A disconnect for cause travels on a separate "last word" channel that
//! overtakes the queue, so even a slow reader learns why it was dropped:
//! because the writer seals, skipping queued frames keeps sequence numbers
//! consecutive.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use protocol::PROTOCOL_VERSION;
use protocol::crypto::Opener;
use protocol::escape::{Escaped, EscapedDisplay};
use protocol::frame::{CodecError, FrameCodec};
use protocol::handshake::{CLIENT_HELLO_FRAME_LEN, ServerHandshake, ServerStep, SignRequest};
use protocol::message::{
    self, ClientMessage, DisconnectCause, Limits, NackReason, RefusalCode, RoomJoin, ServerMessage,
};
use protocol::moderation::DenyReason;
use sha2::{Digest, Sha256};
use slog::{Logger, debug, info, o, warn};
use subtle::ConstantTimeEq;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::FramedRead;

use crate::accounts::hasher::{self, Hasher};
use crate::gate::Hold;
use crate::keyring::SharedKeyRing;
use crate::listener::CountGuard;
use crate::messages::{
    AccountAttempt, AccountChange, AccountChecked, AccountLogin, AccountOf, AccountOp, Amend, Asker, Authorize,
    BanNotice, Broadcast, Conversation, GateHandle, HistoryPage, Join, JoinRefusal, JoinRoom, Joined, Leave, ListRooms,
    LoginCheck, ModReplyTo, ModRequest, Moderate, Outbound as Out, Outbox, PartRoom, PasswordAttempt, PasswordChecked,
    SessionId, ToSession, VoiceJoin, VoiceLeave, VoiceReport, Who,
};
use crate::metrics::{Metrics, Outcome};
use crate::roster::Roster;
use crate::rules::{self, ChatVerdict, Decision, Pace, Rules};
use crate::signer::{Sign, Signer};
use crate::writer;

/// Settings every session shares.
#[derive(Debug)]
pub struct SessionConfig {
    /// Every key a client may connect with: the main key (replaced on
    /// SIGHUP: new connections use the new one, connected users are not
    /// affected), invites, issued keys.
    pub keys: SharedKeyRing,
    /// The identity's public key (DER), sent in the handshake.
    pub identity_der: Arc<[u8]>,
    /// SHA-256 of the server password, if there is one.
    pub password_hash: Option<[u8; 32]>,
    /// Limits announced in the welcome and enforced here.
    pub limits: Limits,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Time from connect to login.
    pub handshake_timeout: Duration,
    /// Silence after which a session is closed.
    pub idle_timeout: Duration,
    /// A stalled write this long ends the session.
    pub write_timeout: Duration,
    /// Rate-limited messages within [`rules::FLOOD_WINDOW`] before a disconnect.
    pub flood_limit: u32,
    /// Frames queued before a reader counts as hopelessly slow.
    pub outbound_queue: usize,
    /// Flips to `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// UDP port of the voice relay (`None`: voice is off).
    pub voice_port: Option<u16>,
    /// What the sessions count.
    pub metrics: Arc<Metrics>,
    /// The account password hashing pool.
    pub hasher: Addr<Hasher>,
}

/// [`message::bare_room`], owned.
fn bare(room: String) -> String {
    match message::bare_room(&room) {
        bare if bare.len() == room.len() => room,
        bare => bare.to_owned(),
    }
}

/// What a login asks for, carried through the password check.
struct LoginRequest {
    username: String,
    account_password: Option<String>,
    resume: Option<String>,
    restored: bool,
    first_id: Option<u64>,
    rooms: Option<Vec<RoomJoin>>,
    history: Option<u32>,
}

/// What a message taking a chat id does once taken.
enum Take {
    /// A chat message to a room or a user.
    Chat { text: String, room: Option<String>, to: Option<String> },
    /// An edit (`text`) or delete of message `target`.
    Amend { target: u64, text: Option<String> },
}

enum Phase {
    Handshake(Box<ServerHandshake>),
    Signing,
    Login,
    Chat,
    Closed,
}

/// One connected peer.
pub struct Session {
    id: SessionId,
    log: Logger,
    cfg: Arc<SessionConfig>,
    roster: Addr<Roster>,
    signer: Addr<Signer>,
    stream: Option<TcpStream>,
    out: Option<mpsc::Sender<Out>>,
    last_word: Option<oneshot::Sender<Bytes>>,
    phase: Phase,
    opener: Option<Opener>,
    /// The handshake's keys, for deriving each voice join's keys.
    keys: Option<protocol::crypto::SessionKeys>,
    voice_epoch: u32,
    last_rx: Instant,
    /// Rate, flood rule and settled ids (see [`crate::rules`]).
    rules: Rules,
    /// The session's place at the gate until it logs in (dropping it
    /// releases the place).
    gate: Option<GateHandle>,
    /// Held by the writer task until the socket is closed.
    open: Option<CountGuard>,
    /// The user may take this session over again (no quit, no kick).
    resumable: bool,
    peer_ip: Option<std::net::IpAddr>,
    /// The peer's full address (address bans).
    peer_full: Option<std::net::IpAddr>,
    /// An account request (its password work) is under way: one at a time.
    account_busy: bool,
    /// Wrong current passwords in a row (each makes the next request wait
    /// longer: 1 s, doubling, at most 60 s).
    account_fails: u32,
    /// The key the client connected with (after the key check).
    key_id: Option<protocol::crypto::KeyId>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Session {
    /// A session for an accepted connection.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: SessionId,
        stream: Option<TcpStream>,
        log: &Logger,
        cfg: Arc<SessionConfig>,
        roster: Addr<Roster>,
        signer: Addr<Signer>,
        gate: GateHandle,
        open: CountGuard,
    ) -> Self {
        let peer_addr = stream.as_ref().and_then(|s| s.peer_addr().ok());
        let peer_ip = peer_addr.map(|a| crate::listener::address_group(a.ip()));
        let peer = peer_addr.map_or_else(|| "?".to_owned(), |a| a.to_string());
        let now = Instant::now();
        let rules = Rules::new(f64::from(cfg.limits.rate_per_sec), cfg.limits.burst, cfg.flood_limit, now);
        Self {
            id,
            log: log.new(o!("session" => id, "peer" => peer)),
            cfg,
            roster,
            signer,
            stream,
            out: None,
            last_word: None,
            phase: Phase::Closed,
            keys: None,
            voice_epoch: 0,
            opener: None,
            last_rx: now,
            rules,
            gate: Some(gate),
            open: Some(open),
            resumable: true,
            peer_ip,
            peer_full: peer_addr.map(|a| a.ip()),
            account_busy: false,
            account_fails: 0,
            key_id: None,
        }
    }

    /// Queues an item for the writer. A full queue is a hopelessly slow
    /// reader: the session ends at once.
    fn queue(&mut self, ctx: &mut Context<Self>, item: Out) {
        let Some(out) = &self.out else { return };
        match out.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(self.log, "outbound queue full; disconnecting slow reader");
                self.kick(ctx, DisconnectCause::SlowReader, "you did not read fast enough");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.phase = Phase::Closed;
                ctx.stop();
            }
        }
    }

    /// Queues an encoded message to be sealed and sent.
    fn send_encoded(&mut self, ctx: &mut Context<Self>, encoded: Bytes) {
        self.queue(ctx, Out::Message(encoded));
    }

    fn send(&mut self, ctx: &mut Context<Self>, msg: &ServerMessage) {
        self.send_encoded(ctx, Bytes::from(message::encode(msg)));
    }

    /// Stops reading, lets the writer flush what is queued, then closes.
    fn close(&mut self, ctx: &mut Context<Self>) {
        // Out of the gate's pools at once.
        self.gate = None;
        self.out = None;
        self.phase = Phase::Closed;
        ctx.stop();
    }

    fn refuse(&mut self, ctx: &mut Context<Self>, code: RefusalCode, reason: String) {
        self.refuse_for(ctx, code, reason, None);
    }

    /// Refuses the login, saying how long until trying again may work.
    fn refuse_for(&mut self, ctx: &mut Context<Self>, code: RefusalCode, reason: String, retry: Option<Duration>) {
        info!(self.log, "login refused"; "code" => ?code, "reason" => %Escaped(&reason));
        self.cfg.metrics.handshake(match code {
            RefusalCode::WrongPassword => Outcome::BadPassword,
            RefusalCode::RetryLater => Outcome::RateLimited,
            _ => Outcome::Refused,
        });
        let retry_after_ms = retry.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
        self.send(ctx, &ServerMessage::Refused { code, reason, retry_after_ms, until_ms: None });
        self.close(ctx);
    }

    /// Ends the session for cause; the reason overtakes anything queued.
    /// Final (not resumable) except for an idle timeout, which is what a
    /// silently dead connection looks like.
    fn kick(&mut self, ctx: &mut Context<Self>, cause: DisconnectCause, detail: &str) {
        self.remove(ctx, cause, detail.to_owned(), None);
    }

    /// [`Session::kick`] with the words (and a ban's end) made at run time.
    fn remove(&mut self, ctx: &mut Context<Self>, cause: DisconnectCause, detail: String, until_ms: Option<u64>) {
        info!(self.log, "disconnecting for cause"; "cause" => ?cause, "detail" => %Escaped(&detail));
        self.cfg.metrics.kick(cause);
        if cause != DisconnectCause::IdleTimeout {
            self.resumable = false;
            // Out of the roster now, so nobody can take this session over
            // between the kick and the end of the actor.
            self.roster.do_send(Leave { id: self.id, resumable: false });
        }
        if let Some(tx) = self.last_word.take() {
            let msg = ServerMessage::Disconnect { cause, detail, until_ms };
            let _ = tx.send(Bytes::from(message::encode(&msg)));
        }
        self.close(ctx);
    }

    fn on_handshake_frame(&mut self, ctx: &mut Context<Self>, frame: &[u8]) {
        let Phase::Handshake(mut hs) = std::mem::replace(&mut self.phase, Phase::Signing) else {
            return self.close(ctx);
        };
        match hs.receive(frame) {
            Ok(ServerStep::Sign(req)) => {
                self.key_id = hs.key_id();
                // Past the key check: the gate decides whether this may cost
                // a signature now (its address's budget, password back-off,
                // the logging-in pool) and moves it out of reach of idle
                // connections.
                let Some(gate) = &self.gate else { return self.close(ctx) };
                gate.authorize
                    .send(Authorize { id: self.id })
                    .into_actor(self)
                    .map(move |res, act, ctx| match res {
                        Ok(Ok(())) => act.sign(ctx, hs, req),
                        Ok(Err(Hold::RetryAfter(wait))) => match hs.retry_after(wait) {
                            Ok(reply) => {
                                debug!(act.log, "key holder told to retry later"; "retry_after_ms" => wait.as_millis());
                                act.cfg.metrics.handshake(Outcome::RateLimited);
                                act.queue(ctx, Out::Raw(Bytes::from(reply)));
                                act.close(ctx);
                            }
                            Err(_) => act.close(ctx),
                        },
                        Ok(Err(Hold::Gone)) | Err(_) => act.close(ctx),
                    })
                    .wait(ctx);
            }
            Ok(ServerStep::Reject { reply, reason }) => {
                // Debug, not info: a flood of bad handshakes must not flood the log.
                debug!(self.log, "handshake refused"; "reason" => %EscapedDisplay(&reason));
                self.cfg.metrics.handshake(match reason {
                    protocol::error::HandshakeError::VersionMismatch { .. } => Outcome::Refused,
                    _ => Outcome::WrongKey,
                });
                self.queue(ctx, Out::Raw(Bytes::from(reply)));
                self.close(ctx);
            }
            Err(e) => {
                info!(self.log, "handshake failed"; "error" => %EscapedDisplay(&e));
                self.close(ctx);
            }
        }
    }

    /// Signs the handshake transcript off the actor's thread, then finishes
    /// the handshake.
    fn sign(&mut self, ctx: &mut Context<Self>, mut hs: Box<ServerHandshake>, req: SignRequest) {
        debug!(self.log, "client passed the key check; signing");
        self.signer
            .send(Sign(req.transcript))
            .into_actor(self)
            .map(move |res, act, ctx| {
                let Ok(sig) = res else { return act.close(ctx) };
                match hs.finish(&sig) {
                    Ok((reply, est)) => {
                        act.queue(ctx, Out::Raw(Bytes::from(reply)));
                        let (sealer, opener) = est.keys.server_text();
                        act.queue(ctx, Out::StartSealing(Box::new(sealer)));
                        act.opener = Some(opener);
                        act.keys = Some(est.keys);
                        act.phase = Phase::Login;
                        debug!(act.log, "handshake complete");
                    }
                    Err(e) => {
                        info!(act.log, "handshake failed"; "error" => %EscapedDisplay(&e));
                        act.close(ctx);
                    }
                }
            })
            .wait(ctx);
    }

    fn on_login(&mut self, ctx: &mut Context<Self>, msg: ClientMessage) {
        let ClientMessage::Login {
            version,
            username,
            password,
            resume,
            first_id,
            restored,
            rooms,
            history,
            account_password,
        } = msg
        else {
            return self.refuse(ctx, RefusalCode::ProtocolError, "the first message must be a login".into());
        };
        if version != PROTOCOL_VERSION {
            let reason = format!("protocol version mismatch: server speaks v{PROTOCOL_VERSION}, client v{version}");
            return self.refuse(ctx, RefusalCode::VersionMismatch, reason);
        }
        if let Err(e) = message::validate_username(&username) {
            return self.refuse(ctx, RefusalCode::InvalidName, format!("invalid username: {e}"));
        }
        let login = LoginRequest { username, account_password, resume, restored, first_id, rooms, history };
        if self.cfg.password_hash.is_none() {
            return self.check_account(ctx, login);
        }
        // The gate lets a password be checked (beyond the free failures one
        // at a time per address) and hears how it turned out.
        let Some(gate) = &self.gate else { return self.close(ctx) };
        let group = gate.group;
        gate.password
            .send(PasswordAttempt(group))
            .into_actor(self)
            .map(move |res, act, ctx| {
                let Some(expected) = &act.cfg.password_hash else { return act.close(ctx) };
                match res {
                    Ok(Ok(())) => {}
                    Ok(Err(wait)) => {
                        let reason = format!(
                            "too many wrong passwords from your address; try again in {} s",
                            wait.as_secs().max(1)
                        );
                        return act.refuse_for(ctx, RefusalCode::RetryLater, reason, Some(wait));
                    }
                    Err(_) => return act.close(ctx),
                }
                let given: [u8; 32] = Sha256::digest(password.as_deref().unwrap_or("").as_bytes()).into();
                let right = bool::from(given.ct_eq(expected));
                if let Some(gate) = &act.gate {
                    gate.password_checked.do_send(PasswordChecked { group, right });
                }
                if !right {
                    let reason = if password.is_none() { "this server requires a password" } else { "wrong password" };
                    return act.refuse(ctx, RefusalCode::WrongPassword, reason.into());
                }
                act.check_account(ctx, login);
            })
            .wait(ctx);
    }

    /// Refuses a banned login with the ban's words and end.
    fn refuse_banned(&mut self, ctx: &mut Context<Self>, ban: BanNotice) {
        info!(self.log, "login refused: banned"; "reason" => %Escaped(&ban.text));
        self.cfg.metrics.handshake(Outcome::Refused);
        let refusal = ServerMessage::Refused {
            code: RefusalCode::Banned,
            reason: ban.text,
            retry_after_ms: None,
            until_ms: ban.until_ms,
        };
        self.send(ctx, &refusal);
        self.close(ctx);
    }

    /// Before the join: is the name or address banned, and is the name a
    /// registered account whose password must be proven? The password is
    /// checked on the hashing pool, paced by the gate per address and per
    /// account and address.
    fn check_account(&mut self, ctx: &mut Context<Self>, mut login: LoginRequest) {
        let check = LoginCheck { name: login.username.clone(), addr: self.peer_full };
        self.roster
            .send(check)
            .into_actor(self)
            .map(move |res, act, ctx| {
                let creds = match res {
                    Ok(Ok(None)) => return act.join(ctx, login, None),
                    Ok(Ok(Some(creds))) => creds,
                    Ok(Err(ban)) => return act.refuse_banned(ctx, ban),
                    Err(_) => return act.close(ctx),
                };
                let Some(password) = login.account_password.take() else {
                    let reason = format!(
                        "the name {:?} is registered: log in with its account password (not the server password)",
                        login.username
                    );
                    return act.refuse(ctx, RefusalCode::AccountPassword, reason);
                };
                let Some(gate) = &act.gate else { return act.close(ctx) };
                let (group, checked) = (gate.group, gate.account_checked.clone());
                let attempt = gate.account.send(AccountAttempt { group, account: creds.key.clone() });
                let hasher = act.cfg.hasher.clone();
                let key = creds.key.clone();
                let verified = async move {
                    match attempt.await {
                        Ok(Ok(())) => {}
                        Ok(Err(wait)) => return Err(Some(wait)),
                        Err(_) => return Err(None),
                    }
                    let mut by = None;
                    if let Some(phc) = creds.phc
                        && hasher.send(hasher::Verify { password: password.clone(), phc }).await == Ok(true)
                    {
                        by = Some(false);
                    }
                    if by.is_none()
                        && let Some(phc) = creds.reset_phc
                        && hasher.send(hasher::Verify { password, phc }).await == Ok(true)
                    {
                        by = Some(true);
                    }
                    checked.do_send(AccountChecked { group, account: key, right: by.is_some() });
                    Ok(by)
                };
                ctx.wait(verified.into_actor(act).map(move |res, act, ctx| match res {
                    Ok(Some(by_reset)) => act.join(ctx, login, Some(AccountLogin { key: creds.key, by_reset })),
                    Ok(None) => {
                        act.refuse(ctx, RefusalCode::AccountPassword, "wrong account password".into());
                    }
                    Err(Some(wait)) => {
                        let reason = format!(
                            "too many wrong account passwords from your address; try again in {} s",
                            wait.as_secs().max(1)
                        );
                        act.refuse_for(ctx, RefusalCode::RetryLater, reason, Some(wait));
                    }
                    Err(None) => act.close(ctx),
                }));
            })
            .wait(ctx);
    }

    /// Asks the roster to let the (authenticated) user in.
    fn join(&mut self, ctx: &mut Context<Self>, login: LoginRequest, account: Option<AccountLogin>) {
        let LoginRequest { username, resume, restored, first_id, rooms, history, .. } = login;
        if let Some(first) = first_id {
            self.rules.start_ledger_at(first);
        }
        let Some(out) = self.out.clone() else { return self.close(ctx) };
        let join = Join {
            id: self.id,
            name: username.clone(),
            resume,
            restored,
            ip: self.peer_ip,
            ledger: self.rules.ledger().clone(),
            mailbox: ctx.address().recipient(),
            outbox: Outbox(out.clone()),
            limits: self.cfg.limits,
            rooms,
            history,
            addr: self.peer_full,
            account,
            key: self.key_id,
        };
        self.roster
            .send(join)
            .into_actor(self)
            .map(move |res, act, ctx| match res {
                Ok(Ok(Joined { users, ledger, resumed })) => {
                    // The roster has queued the welcome.
                    act.log = act.log.new(o!("user" => Escaped(&username).to_string()));
                    info!(act.log, "user joined"; "users" => users, "resumed" => resumed);
                    act.cfg.metrics.handshake(Outcome::Ok);
                    act.gate = None;
                    act.phase = Phase::Chat;
                    act.rules.set_ledger(ledger);
                }
                Ok(Err(JoinRefusal::NameTaken)) => {
                    act.refuse(ctx, RefusalCode::NameTaken, format!("the name {username:?} is taken"));
                }
                Ok(Err(JoinRefusal::NameHeld(left))) => {
                    let reason = format!(
                        "the name {username:?} is held for {} more s for the user whose connection dropped",
                        left.as_secs().max(1)
                    );
                    act.refuse_for(ctx, RefusalCode::NameTaken, reason, Some(left));
                }
                Ok(Err(JoinRefusal::AddressFull)) => {
                    let reason = "too many users are logged in from your address".into();
                    act.refuse(ctx, RefusalCode::AddressFull, reason);
                }
                Ok(Err(JoinRefusal::ServerFull)) => {
                    act.refuse(ctx, RefusalCode::ServerFull, "the server is full; try again later".into());
                }
                Ok(Err(JoinRefusal::Banned(ban))) => act.refuse_banned(ctx, ban),
                Ok(Err(JoinRefusal::AccountPassword)) => {
                    let reason = format!("the name {username:?} is registered: log in with its account password");
                    act.refuse(ctx, RefusalCode::AccountPassword, reason);
                }
                Ok(Err(JoinRefusal::KeyRevoked)) => {
                    act.refuse(ctx, RefusalCode::KeyRevoked, "the key you connected with was revoked".into());
                }
                Ok(Err(JoinRefusal::InviteSpent)) => {
                    act.refuse(ctx, RefusalCode::InviteSpent, "this invite has been used up; ask for a new one".into());
                }
                Ok(Err(JoinRefusal::ShuttingDown)) => {
                    act.send(ctx, &ServerMessage::Shutdown { reason: "the server is shutting down".into() });
                    act.close(ctx);
                }
                Err(_) => act.close(ctx),
            })
            .wait(ctx);
    }

    fn on_chat_message(&mut self, ctx: &mut Context<Self>, msg: ClientMessage) {
        // Every request costs a token too, so none is a free flood (chat
        // and loss reports have rules of their own; a quit always goes).
        if !matches!(
            msg,
            ClientMessage::Chat { .. }
                | ClientMessage::Edit { .. }
                | ClientMessage::Delete { .. }
                | ClientMessage::VoiceReport { .. }
                | ClientMessage::Quit
        ) {
            match self.pace(ctx, |r, now| r.request(now)) {
                Pace::Go => {}
                Pace::Over => {
                    return self.send(ctx, &ServerMessage::Error { detail: "too many requests; slow down".into() });
                }
                Pace::Flooding => return,
            }
        }
        match msg {
            ClientMessage::Chat { id, text, room, to } => {
                let valid = message::validate_text(&text, self.cfg.limits.max_message_bytes as usize);
                let take = Take::Chat { text, room, to };
                self.on_chat(ctx, id, valid, take);
            }
            ClientMessage::Edit { id, target, text } => {
                let valid = message::validate_text(&text, self.cfg.limits.max_message_bytes as usize);
                self.on_chat(ctx, id, valid, Take::Amend { target, text: Some(text) });
            }
            ClientMessage::Delete { id, target } => self.on_chat(ctx, id, Ok(()), Take::Amend { target, text: None }),
            ClientMessage::Join { join, history } => {
                let join = RoomJoin { room: bare(join.room), after: join.after };
                self.roster.do_send(JoinRoom { id: self.id, join, history });
            }
            ClientMessage::Part { room } => self.roster.do_send(PartRoom { id: self.id, room: bare(room) }),
            ClientMessage::Rooms => self.roster.do_send(ListRooms { id: self.id }),
            ClientMessage::History { room, with, before, after, limit } => {
                let place = match (room, with) {
                    (Some(room), None) => Conversation::Room(bare(room)),
                    (None, Some(with)) => Conversation::Direct(with),
                    _ => {
                        let detail = "a history request names a room or a user (with), not both".to_owned();
                        return self.send(ctx, &ServerMessage::Error { detail });
                    }
                };
                self.roster.do_send(HistoryPage { id: self.id, place, before, after, limit });
            }
            ClientMessage::Who { room, offset } => {
                self.roster.do_send(Who { id: self.id, room: room.map(bare), offset: offset.unwrap_or(0) });
            }
            ClientMessage::Ping { nonce } => self.send(ctx, &ServerMessage::Pong { nonce }),
            ClientMessage::Pong { .. } => {}
            ClientMessage::Quit => {
                debug!(self.log, "client quit");
                self.resumable = false;
                self.close(ctx);
            }
            ClientMessage::Login { .. } => {
                self.send(ctx, &ServerMessage::Error { detail: "already logged in".into() });
            }
            ClientMessage::VoiceJoin { room } => self.on_voice_join(ctx, room.map(bare)),
            ClientMessage::Register { password } => self.on_account(ctx, "register", None, Some(password)),
            ClientMessage::ChangePassword { old, new } => self.on_account(ctx, "password", Some(old), Some(new)),
            ClientMessage::Unregister { password } => self.on_account(ctx, "unregister", Some(Some(password)), None),
            ClientMessage::Moderate(action) => self.roster.do_send(Moderate {
                by: Asker::Session(self.id),
                request: ModRequest::Act(action),
                reply: ModReplyTo::Session(self.id),
            }),
            // The roster tells the relay to stop, then answers `voice_left`.
            ClientMessage::VoiceLeave => self.roster.do_send(VoiceLeave { id: self.id }),
            ClientMessage::VoiceReport { speaker, loss_permille, burst_x10 } => {
                // Reports have their own small budget (a listener sends two
                // per second per speaker); the excess is dropped.
                // Over it: dropped, and counted like any message over the rate.
                if self.pace(ctx, |r, now| r.report(now)) == Pace::Go {
                    let loss_permille = loss_permille.min(1000);
                    self.roster.do_send(VoiceReport { from: self.id, speaker, loss_permille, burst_x10 });
                }
            }
        }
    }

    /// `register` (a new password), `password` (the current one, then a
    /// new one) or `unregister` (the current one): the current password is
    /// checked and the new one hashed on the hashing pool, one request at
    /// a time per session; the roster stores the change and answers.
    fn on_account(
        &mut self,
        ctx: &mut Context<Self>,
        action: &'static str,
        current: Option<Option<String>>,
        new: Option<String>,
    ) {
        let denied =
            move |reason, detail: &str| ServerMessage::Denied { action: action.into(), reason, detail: detail.into() };
        if self.account_busy {
            return self
                .send(ctx, &denied(DenyReason::RetryLater, "an account request is under way; wait for its answer"));
        }
        if let Some(new) = &new
            && let Err(e) = protocol::moderation::validate_account_password(new)
        {
            return self.send(ctx, &denied(DenyReason::WeakPassword, &e.to_string()));
        }
        self.account_busy = true;
        let (roster, hasher, id) = (self.roster.clone(), self.cfg.hasher.clone(), self.id);
        let work = async move {
            // Registering a name that is registered: said before any hashing.
            if current.is_none() && matches!(roster.send(AccountOf { id }).await, Ok(Some(_))) {
                return Err(denied(DenyReason::AlreadyRegistered, "this name is registered already"));
            }
            // The current password, where the request needs one.
            if let Some(given) = current {
                let Ok(Some(creds)) = roster.send(AccountOf { id }).await else {
                    return Err(denied(DenyReason::NotRegistered, "you are not logged in to a registered name"));
                };
                // No password set: this session came in with a reset code.
                if let Some(phc) = creds.phc {
                    let Some(password) = given else {
                        return Err(denied(DenyReason::WrongPassword, "give your current account password"));
                    };
                    if hasher.send(hasher::Verify { password, phc }).await != Ok(true) {
                        return Err(denied(DenyReason::WrongPassword, "wrong account password"));
                    }
                }
            }
            let op = match (action, new) {
                ("unregister", _) => AccountOp::Unregister,
                (_, Some(new)) => match hasher.send(hasher::Hash(new)).await {
                    Ok(Ok(phc)) if action == "register" => AccountOp::Register(phc),
                    Ok(Ok(phc)) => AccountOp::SetPassword(phc),
                    _ => return Err(denied(DenyReason::StorageUnavailable, "the password could not be hashed")),
                },
                _ => return Err(denied(DenyReason::Invalid, "nothing to do")),
            };
            roster.do_send(AccountChange { id, op });
            Ok(())
        };
        ctx.spawn(work.into_actor(self).map(|res, act, ctx| {
            let wrong = matches!(res, Err(ServerMessage::Denied { reason: DenyReason::WrongPassword, .. }));
            if let Err(msg) = res {
                act.send(ctx, &msg);
            }
            if !wrong {
                act.account_fails = 0;
                act.account_busy = false;
                return;
            }
            // Guessing the current password from a logged-in session is
            // slowed like guessing it at login.
            act.account_fails = act.account_fails.saturating_add(1);
            let wait = Duration::from_secs(1 << (act.account_fails - 1).min(6)).min(Duration::from_secs(60));
            ctx.run_later(wait, |act, _| act.account_busy = false);
        }));
    }

    fn on_voice_join(&mut self, ctx: &mut Context<Self>, room: Option<String>) {
        let (Some(port), Some(keys)) = (self.cfg.voice_port, &self.keys) else {
            return self.send(ctx, &ServerMessage::Error { detail: "voice is not enabled on this server".into() });
        };
        // A fresh key pair for every join, so packet counters may restart.
        self.voice_epoch += 1;
        let epoch = self.voice_epoch;
        let (up_key, down_key) = protocol::voice::voice_keys(keys, epoch);
        self.roster
            .send(VoiceJoin { id: self.id, room, up_key, down_key, udp_port: port, epoch })
            .into_actor(self)
            .map(move |res, act, ctx| match res {
                // The roster has queued `voice_joined`.
                Ok(Ok(voice_id)) => debug!(act.log, "voice joined"; "voice_id" => voice_id),
                Ok(Err(why)) => act.send(ctx, &ServerMessage::Error { detail: format!("could not join voice: {why}") }),
                Err(_) => act.send(ctx, &ServerMessage::Error { detail: "could not join voice".into() }),
            })
            .wait(ctx);
    }

    /// A message that takes a chat id (a chat message, an edit, a delete):
    /// paced and checked against the ledger here; what is taken goes to
    /// the roster, which answers once it is delivered (and stored).
    fn on_chat(&mut self, ctx: &mut Context<Self>, id: u64, valid: Result<(), message::TextError>, take: Take) {
        let Decision { verdict, tell } = self.rules.chat(id, valid, Instant::now());
        if tell {
            self.tell_too_fast(ctx);
        }
        match verdict {
            ChatVerdict::Duplicate => {
                // A resend of something already settled: answer again, deliver once.
                debug!(self.log, "duplicate message id"; "id" => id);
                self.send(ctx, &ServerMessage::Ack { id, server_id: None });
            }
            // Being stored: the roster answers when the store does.
            ChatVerdict::Pending => debug!(self.log, "resend of a message being stored"; "id" => id),
            ChatVerdict::Take => match take {
                Take::Chat { text, room, to } => {
                    let ts_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                    let room = room.map(bare);
                    let ledger = self.rules.ledger().clone();
                    self.roster.do_send(Broadcast { from: self.id, ledger, client_id: id, text, ts_ms, room, to });
                }
                Take::Amend { target, text } => {
                    let ledger = self.rules.ledger().clone();
                    self.roster.do_send(Amend { from: self.id, ledger, client_id: id, target, text });
                }
            },
            ChatVerdict::Refuse(reason, detail) => {
                self.send(ctx, &ServerMessage::Nack { id, reason, retry_after_ms: None, detail });
            }
            ChatVerdict::RateLimited(wait) => {
                let retry = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
                let detail = "over the message rate".to_owned();
                let nack =
                    ServerMessage::Nack { id, reason: NackReason::RateLimited, retry_after_ms: Some(retry), detail };
                self.send(ctx, &nack);
            }
            ChatVerdict::Kick(cause, detail) => self.kick(ctx, cause, detail),
        }
    }

    /// Applies a pacing rule; tells the client once per window when it is
    /// over the rate, and disconnects it when it keeps flooding.
    fn pace(&mut self, ctx: &mut Context<Self>, rule: impl FnOnce(&mut Rules, Instant) -> Decision<Pace>) -> Pace {
        let Decision { verdict, tell } = rule(&mut self.rules, Instant::now());
        if tell {
            self.tell_too_fast(ctx);
        }
        if verdict == Pace::Flooding {
            self.kick(ctx, DisconnectCause::Flooding, rules::FLOODING);
        }
        verdict
    }

    fn tell_too_fast(&mut self, ctx: &mut Context<Self>) {
        let l = self.cfg.limits;
        let text =
            format!("you are sending too fast (limit {} messages/s, burst {}); slow down", l.rate_per_sec, l.burst);
        self.send(ctx, &ServerMessage::Notice { text });
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.cfg.outbound_queue);
        let Some(stream) = self.stream.take() else {
            return ctx.stop();
        };
        let (r, w) = stream.into_split();
        let (tx, rx) = mpsc::channel(self.cfg.outbound_queue);
        let (word_tx, word_rx) = oneshot::channel();
        self.out = Some(tx);
        self.last_word = Some(word_tx);
        let failed = ctx.address().recipient();
        let sent = self.cfg.metrics.bytes_sent.clone();
        actix_rt::spawn(writer::write_loop(w, rx, word_rx, self.cfg.write_timeout, failed, self.open.take(), sent));
        // A small read buffer: it grows for a big frame, and an idle session
        // does not hold more.
        // Before the key check only the client hello may come, and it has
        // one size: nobody without the key makes us buffer a large frame.
        let codec = FrameCodec::new(self.cfg.max_frame).with_first_frame_limit(CLIENT_HELLO_FRAME_LEN);
        ctx.add_stream(FramedRead::with_capacity(r, codec, 1024));

        let (hs, hello) = ServerHandshake::with_keys(Arc::new(self.cfg.keys.clone()), self.cfg.identity_der.clone());
        self.phase = Phase::Handshake(Box::new(hs));
        self.queue(ctx, Out::Raw(Bytes::from(hello)));

        ctx.run_later(self.cfg.handshake_timeout, |act, ctx| {
            if matches!(act.phase, Phase::Handshake(_) | Phase::Signing | Phase::Login) {
                debug!(act.log, "handshake deadline passed; closing");
                act.close(ctx);
            }
        });
        let tick = (self.cfg.idle_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
        ctx.run_interval(tick, |act, ctx| {
            if matches!(act.phase, Phase::Chat) && act.last_rx.elapsed() > act.cfg.idle_timeout {
                act.kick(ctx, DisconnectCause::IdleTimeout, "no keepalive from the client");
            }
        });
        let mut shutdown = self.cfg.shutdown.clone();
        ctx.spawn(
            async move {
                let _ = shutdown.wait_for(|down| *down).await;
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                // Logged-in users are told by the roster; the rest just close.
                if !matches!(act.phase, Phase::Chat) {
                    act.close(ctx);
                }
            }),
        );
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        if let Phase::Chat = self.phase {
            self.phase = Phase::Closed;
        }
        self.roster.do_send(Leave { id: self.id, resumable: self.resumable });
        self.out = None;
        Running::Stop
    }
}

impl StreamHandler<Result<Bytes, CodecError>> for Session {
    fn handle(&mut self, item: Result<Bytes, CodecError>, ctx: &mut Context<Self>) {
        let frame = match item {
            Ok(f) => f,
            // A reset or a frame cut short is a lost connection (resumable).
            Err(CodecError::Io(e)) => {
                info!(self.log, "connection lost"; "error" => %EscapedDisplay(&e));
                return self.close(ctx);
            }
            // A length no frame of ours has: corruption on the way, or a
            // peer that could as well cut the connection. Either way the
            // connection is broken (resumable), not a kick for cause.
            Err(e) => {
                if matches!(self.phase, Phase::Handshake(_)) {
                    // A first frame larger than any client hello cannot hold
                    // the key: the same fixed refusal as a wrong key.
                    debug!(self.log, "first frame too large; refusing"; "error" => %EscapedDisplay(&e));
                    self.cfg.metrics.handshake(Outcome::WrongKey);
                    self.queue(ctx, Out::Raw(Bytes::from_static(&protocol::handshake::REFUSED_WRONG_KEY)));
                    return self.close(ctx);
                }
                info!(self.log, "bad frame; closing the connection"; "error" => %EscapedDisplay(&e));
                return self.close(ctx);
            }
        };
        self.last_rx = Instant::now();
        self.cfg.metrics.bytes_received.inc_by(frame.len() as u64 + 4);
        if matches!(self.phase, Phase::Handshake(_)) {
            return self.on_handshake_frame(ctx, &frame);
        }
        let Some(opener) = &mut self.opener else {
            return self.close(ctx);
        };
        let plain = match opener.open(&frame) {
            Ok(p) => p,
            // Fails authentication: altered on the way (or by someone who
            // could cut the connection anyway). A broken connection the
            // client may resume, never a kick: nothing it said is lost.
            Err(e) => {
                info!(self.log, "frame failed authentication; closing the connection"; "error" => %EscapedDisplay(&e));
                return self.close(ctx);
            }
        };
        let msg = match message::decode::<ClientMessage>(&plain) {
            Ok(m) => m,
            Err(e) => {
                debug!(self.log, "undecodable message"; "error" => %EscapedDisplay(&e));
                if matches!(self.phase, Phase::Login) {
                    return self.refuse(ctx, RefusalCode::ProtocolError, e.to_string());
                }
                // Counts against the rate, so garbage cannot be a free flood.
                if self.rules.undecodable(Instant::now()) == Pace::Flooding {
                    return self.kick(ctx, DisconnectCause::Flooding, "undecodable messages over the rate");
                }
                return self.send(ctx, &ServerMessage::Error { detail: e.to_string() });
            }
        };
        match self.phase {
            Phase::Login => self.on_login(ctx, msg),
            Phase::Chat => self.on_chat_message(ctx, msg),
            _ => self.close(ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        debug!(self.log, "peer closed the connection");
        self.close(ctx);
    }
}

impl Handler<ToSession> for Session {
    type Result = ();
    fn handle(&mut self, msg: ToSession, ctx: &mut Context<Self>) {
        match msg {
            ToSession::Shutdown(payload) => {
                self.send_encoded(ctx, payload);
                self.close(ctx);
            }
            ToSession::Kick(cause, detail) => self.kick(ctx, cause, detail),
            ToSession::Removed { cause, detail, until_ms } => self.remove(ctx, cause, detail, until_ms),
            ToSession::Replaced => {
                info!(self.log, "replaced by the same user's new connection");
                self.resumable = false;
                self.phase = Phase::Closed;
                self.close(ctx);
            }
            ToSession::Evict => {
                if !matches!(self.phase, Phase::Chat) {
                    debug!(self.log, "evicted: too many pending handshakes");
                    self.close(ctx);
                }
            }
        }
    }
}

impl Handler<writer::WriterFailed> for Session {
    type Result = ();
    fn handle(&mut self, msg: writer::WriterFailed, ctx: &mut Context<Self>) {
        info!(self.log, "closing"; "reason" => %Escaped(&msg.0));
        self.close(ctx);
    }
}
