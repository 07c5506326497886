//! One logged-in connection: a [`Session`] with one handler per source of
//! events (a server message, a command, the voice engine, the timers), and
//! [`run`], the loop that waits on them all.
//!
//! The handlers send through an [`Outbound`] and report through the events
//! channel, so unit tests drive them without a server. What outlives the
//! connection (messages still unacknowledged, voice intent, gains, a quit
//! asked for) is the [`Carry`], whose [`Carry::command`] is the part of
//! every command shared with the offline loop in [`crate::reconnect`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, UNIX_EPOCH};

use protocol::crypto::SessionKeys;
use protocol::message::{ClientMessage, DisconnectCause, Limits, NackReason, ServerMessage, name_key};
use protocol::rate::TokenBucket;
use tokio::sync::mpsc;

use crate::audio::device::{Input, Output};
use crate::client::{AccountRequest, Command, DisconnectReason, Event, Outgoing, Target};
use crate::key_choice::KeyChoice;
use crate::link::{Link, Outbound};
use crate::roombook::{Delivery, Next, RoomBook, bare};
use crate::unacked::Unacked;
use crate::voice::{EngineEvent, Voice, VoiceOptions};

/// What a handler says: go on, or the session ended for this reason.
pub(crate) type Step = Result<(), DisconnectReason>;

/// How often voice counters are reported (and a ping measures the
/// round-trip time) while in voice.
const STATS_EVERY: Duration = Duration::from_secs(2);

/// The voice join in force: its options and the room asked for (`None`:
/// the server's choice).
pub(crate) type VoiceIntent = (VoiceOptions, Option<String>);

/// What outlives one connection: the messages still unacknowledged, the
/// rooms we are in, and the user's intent and settings.
#[derive(Debug, Default)]
pub(crate) struct Carry {
    /// Chat messages, edits and deletions not acknowledged yet.
    pub(crate) unacked: Unacked,
    /// The rooms we are in or joining, and where each one's history resumes.
    pub(crate) rooms: RoomBook,
    /// Voice options and room of the join in force, to rejoin after reconnecting.
    pub(crate) voice: Option<VoiceIntent>,
    /// Per-user playback gains.
    pub(crate) gains: HashMap<String, f32>,
    /// The user asked to leave (once the messages are acknowledged).
    pub(crate) quitting: bool,
    /// Our name as the server knows it (the last welcome's).
    pub(crate) me: String,
    /// The account password the next login sends.
    pub(crate) account_password: Option<crate::secret::Secret>,
    /// An account request sent and not answered yet: once done, it sets
    /// [`Carry::account_password`].
    pub(crate) account_pending: Option<AccountRequest>,
    /// The key in use, and a key the server issues.
    pub(crate) key: KeyChoice,
}

impl Carry {
    /// Does what a command means whatever the connection: queues a
    /// message, notes a quit, a gain, a leave, a part. Returns the command
    /// when a connection (or the lack of one) has a part in it too.
    pub(crate) fn command(&mut self, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Send { id, out } => {
                self.unacked.queue(id, out);
                None
            }
            Command::Quit => {
                self.quitting = true;
                None
            }
            Command::SetGain { user, gain } => {
                self.gains.insert(user.clone(), gain);
                Some(Command::SetGain { user, gain })
            }
            Command::LeaveVoice => {
                self.voice = None;
                Some(Command::LeaveVoice)
            }
            Command::Part { room } => {
                self.rooms.part(&room);
                Some(Command::Part { room })
            }
            other @ (Command::Who { .. }
            | Command::Join { .. }
            | Command::Rooms
            | Command::History { .. }
            | Command::PrivateHistory { .. }
            | Command::Account(_)
            | Command::Moderate(_)
            | Command::JoinVoice { .. }
            | Command::ReconnectNow) => Some(other),
        }
    }
}

/// The state of one logged-in connection, with a handler per event source.
pub(crate) struct Session<'a> {
    carry: &'a mut Carry,
    events: &'a mpsc::Sender<Event>,
    /// The server's message rate, kept to.
    bucket: TokenBucket,
    keepalive: Duration,
    idle: Duration,
    last_tx: Instant,
    last_rx: Instant,
    /// Requests not answered yet (`who`, `rooms`, joins, history pages): a
    /// quit waits for them.
    awaiting: usize,
    /// Requests waiting for a token of the rate, in order: the server
    /// counts them as it counts chat lines, and they go first (a join
    /// before the lines to its room).
    requests: VecDeque<ClientMessage>,
    /// The room whose voice we are in (or asked for).
    voice_room: Option<String>,
    /// Each room's voice members, by room key (voice ids name speakers
    /// only from the list of our voice room).
    voice_lists: HashMap<String, Vec<protocol::message::VoiceUser>>,
    ping_nonce: u64,
    voice: Voice,
    engine_tx: mpsc::UnboundedSender<EngineEvent>,
    /// The server's address (voice goes to its UDP port).
    server: IpAddr,
    /// This connection's keys (voice keys derive from them).
    keys: SessionKeys,
}

impl<'a> Session<'a> {
    /// A session under the welcome's `limits`, towards `server`.
    pub(crate) fn new(
        limits: Limits,
        server: IpAddr,
        keys: SessionKeys,
        carry: &'a mut Carry,
        events: &'a mpsc::Sender<Event>,
        engine_tx: mpsc::UnboundedSender<EngineEvent>,
    ) -> Self {
        let now = Instant::now();
        let voice = Voice { gains: carry.gains.clone(), ..Voice::default() };
        Self {
            bucket: TokenBucket::new(f64::from(limits.rate_per_sec), limits.burst, now),
            keepalive: Duration::from_secs(u64::from(limits.keepalive_secs.max(1))),
            idle: Duration::from_secs(u64::from(limits.idle_timeout_secs.max(2))),
            last_tx: now,
            last_rx: now,
            awaiting: 0,
            requests: VecDeque::new(),
            voice_room: None,
            voice_lists: HashMap::new(),
            ping_nonce: 0,
            voice,
            engine_tx,
            server,
            keys,
            carry,
            events,
        }
    }

    /// Reports an event (through a copy of the sender's reference: a
    /// `&Session` held across the wait would not be `Send`).
    async fn emit(&mut self, event: Event) {
        let events = self.events;
        let _ = events.send(event).await;
    }

    async fn send(&mut self, out: &mut impl Outbound, msg: &ClientMessage) -> Step {
        out.send(msg).await?;
        Ok(())
    }

    /// Back after a lost connection: into voice again, unless a WAV file is
    /// involved (a recording would start over; so would a file played).
    pub(crate) async fn rejoin_voice(&mut self, out: &mut impl Outbound) -> Step {
        let Some((options, room)) = self.carry.voice.clone() else { return Ok(()) };
        if matches!(options.input, Input::Wav(_)) || matches!(options.output, Output::Wav(_)) {
            self.carry.voice = None;
            self.emit(Event::VoiceError(
                "voice was not rejoined after reconnecting: a WAV file would start over".into(),
            ))
            .await;
            return Ok(());
        }
        self.join_voice(out, options, room).await
    }

    async fn join_voice(&mut self, out: &mut impl Outbound, options: VoiceOptions, room: Option<String>) -> Step {
        let room = room.map(|r| bare(&r).to_owned());
        if !self.voice.join(out, options, room.clone(), self.events).await? {
            self.carry.voice = None;
        }
        Ok(())
    }

    /// Logged in, in `rooms` (the welcome's): asks for the rooms still to
    /// join, then voice again.
    pub(crate) async fn start(&mut self, rooms: &[String], out: &mut impl Outbound) -> Step {
        for join in self.carry.rooms.on_welcome(rooms) {
            self.request(join);
        }
        self.rejoin_voice(out).await
    }

    /// Queues a request the server answers (a quit waits for the answer);
    /// [`Session::send_due`] sends it as the rate allows.
    fn request(&mut self, msg: ClientMessage) {
        self.requests.push_back(msg);
        self.awaiting += 1;
    }

    fn answered(&mut self) {
        self.awaiting = self.awaiting.saturating_sub(1);
    }

    /// Sends the pending messages the rate (and a rate-limit pause) allows;
    /// returns when the next one may go, if any is left.
    pub(crate) async fn send_due(&mut self, out: &mut impl Outbound) -> Result<Option<Instant>, DisconnectReason> {
        let mut now = Instant::now();
        let unacked = &mut self.carry.unacked;
        if unacked.paused_until.is_some_and(|t| t <= now) {
            unacked.paused_until = None;
        }
        // Requests first, under the same rate and pause.
        while let Some(msg) = self.requests.front() {
            if let Some(t) = unacked.paused_until {
                return Ok(Some(t));
            }
            if let Err(wait) = self.bucket.take(now) {
                return Ok(Some(now + wait));
            }
            out.send(msg).await?;
            self.requests.pop_front();
            now = Instant::now();
            self.last_tx = now;
        }
        while let Some(entry) = unacked.pending.first_entry() {
            if let Some(t) = unacked.paused_until {
                return Ok(Some(t));
            }
            if let Err(wait) = self.bucket.take(now) {
                return Ok(Some(now + wait));
            }
            let (id, msg) = entry.remove_entry();
            if let Err(e) = out.send(&msg.message(id)).await {
                unacked.pending.insert(id, msg);
                return Err(e.into());
            }
            unacked.inflight.insert(id, msg);
            now = Instant::now();
            self.last_tx = now;
        }
        Ok(None)
    }

    /// Whether a quit asked for may happen now: every message acknowledged
    /// and every request answered.
    pub(crate) fn quit_due(&self) -> bool {
        self.carry.quitting && self.carry.unacked.len() == 0 && self.awaiting == 0
    }

    /// Whether the session takes another command now (not after a quit,
    /// not with `queue_limit` messages waiting: then senders wait).
    pub(crate) fn takes_commands(&self, queue_limit: usize) -> bool {
        !self.carry.quitting && self.carry.unacked.len() < queue_limit
    }

    /// Whether a voice engine runs.
    pub(crate) fn in_voice(&self) -> bool {
        self.voice.engine.is_some()
    }

    /// When the timers next need a look: a keepalive due, the server silent
    /// too long, or `next_send` (from [`Session::send_due`]).
    pub(crate) fn wake(&self, next_send: Option<Instant>) -> Instant {
        [self.last_tx + self.keepalive, self.last_rx + self.idle]
            .into_iter()
            .chain(next_send)
            .min()
            .unwrap_or(self.last_tx + self.keepalive)
    }

    /// A message from the server.
    pub(crate) async fn on_server(&mut self, msg: ServerMessage, out: &mut impl Outbound) -> Step {
        self.last_rx = Instant::now();
        // Talkers heard before their names came (voice can overtake the list).
        let mut named_late = Vec::new();
        let event = match msg {
            ServerMessage::Message { id, from, text, ts_ms, room, to, history, edited } => {
                if let Some(r) = &room {
                    self.carry.rooms.on_message(r, id, history);
                }
                let time = UNIX_EPOCH + Duration::from_millis(ts_ms);
                Some(Event::Message { id, from, text, time, room, to, history, edited })
            }
            // We know when we join or leave (`room_joined`, `room_left`).
            ServerMessage::Joined { user, .. } | ServerMessage::Left { user, .. } if self.is_me(&user) => None,
            ServerMessage::Joined { user, room } => Some(Event::Joined { user, room }),
            ServerMessage::Left { user, room } => Some(Event::Left { user, room }),
            ServerMessage::Users { room, users, users_total } => {
                self.answered();
                Some(Event::Users { room, users, total: users_total })
            }
            ServerMessage::RoomJoined { room, topic, users, users_total, voice, history } => {
                if self.carry.rooms.on_room_joined(&room) {
                    self.answered();
                }
                Some(Event::RoomJoined { room, topic, users, users_total, voice, history })
            }
            ServerMessage::JoinRefused { room, reason, detail } => {
                if self.carry.rooms.on_gone(&room) {
                    self.answered();
                }
                Some(Event::JoinRefused { room, reason, detail })
            }
            ServerMessage::RoomLeft { room } => {
                self.carry.rooms.on_gone(&room);
                if self.voice_room.as_deref().is_some_and(|v| name_key(v) == name_key(&room)) {
                    // Leaving a room leaves its voice (the server has taken
                    // us out): stop sending, and do not rejoin it later.
                    self.voice_room = None;
                    self.carry.voice = None;
                    if let Some(stats) = self.voice.stop() {
                        self.emit(Event::VoiceLeft(stats)).await;
                    }
                }
                self.voice_lists.remove(&name_key(&room));
                Some(Event::RoomLeft { room })
            }
            ServerMessage::Rooms { rooms } => {
                self.answered();
                Some(Event::Rooms(rooms))
            }
            ServerMessage::HistoryEnd { with: Some(with), more, .. } => {
                self.answered();
                Some(Event::PrivateHistoryEnd { with, more })
            }
            ServerMessage::HistoryEnd { room, more, .. } => {
                let (ended, next) = self.carry.rooms.on_history_end(&room, more);
                if ended == Some(Delivery::Page) {
                    self.answered();
                }
                match next {
                    Next::Done => {}
                    // The next page; the client's own doing, not awaited by a quit.
                    Next::Ask(ask) => self.requests.push_back(ask),
                    Next::GaveUp(why) => self.emit(Event::Notice(why)).await,
                }
                Some(Event::HistoryEnd { room, more, older: ended != Some(Delivery::CatchUp) })
            }
            ServerMessage::Edited { id, room, to, from, text } => Some(Event::Edited { id, room, to, from, text }),
            ServerMessage::Deleted { id, room, to } => Some(Event::Deleted { id, room, to }),
            ServerMessage::Notice { text } => Some(Event::Notice(text)),
            ServerMessage::Done { action, detail } => {
                self.answered();
                if let Some(req) = self.account_answered(&action) {
                    self.carry.account_password = req.password_after();
                }
                Some(Event::Done { action, detail })
            }
            ServerMessage::Denied { action, reason, detail } => {
                self.answered();
                let _ = self.account_answered(&action);
                Some(Event::Denied { action, reason, detail })
            }
            ServerMessage::Bans { bans } => {
                self.answered();
                Some(Event::Bans(bans))
            }
            ServerMessage::Audit { entries, more } => {
                self.answered();
                Some(Event::Audit { entries, more })
            }
            ServerMessage::Topic { room, topic, by } => Some(Event::Topic { room, topic, by }),
            ServerMessage::Error { detail } => {
                // A refused request (e.g. `who` over the rate) gets no answer.
                self.answered();
                Some(Event::Notice(format!("server: {detail}")))
            }
            ServerMessage::Ack { id, server_id } => {
                let sent = self.carry.unacked.settle(id);
                if let (Some(Outgoing::Chat { target: Some(Target::Room(room)), .. }), Some(sid)) = (&sent, server_id) {
                    // Our own line: the server does not echo it.
                    self.carry.rooms.on_message(room, sid, false);
                }
                sent.is_some().then_some(Event::Acked { id, server_id, sent })
            }
            ServerMessage::Nack {
                id,
                reason: NackReason::RateLimited | NackReason::StorageUnavailable,
                retry_after_ms,
                ..
            } => {
                let wait = Duration::from_millis(retry_after_ms.unwrap_or(100).min(60_000));
                self.carry.unacked.retry_later(id, wait, Instant::now());
                None
            }
            ServerMessage::Nack { id, reason, detail, .. } => {
                self.carry.unacked.settle(id).map(|_| Event::Rejected { id, reason, detail })
            }
            ServerMessage::Ping { nonce } => {
                self.send(out, &ClientMessage::Pong { nonce }).await?;
                None
            }
            ServerMessage::Pong { nonce } => {
                if nonce == self.ping_nonce
                    && let Some(sent) = self.voice.ping_sent.take()
                {
                    self.voice.rtt_us = sent.elapsed().as_micros() as u64;
                }
                None
            }
            ServerMessage::Shutdown { reason } => return Err(DisconnectReason::ServerShutdown(reason)),
            // An idle timeout is what a connection that died quietly looks
            // like (a laptop waking up): the server keeps the session
            // resumable, so this is a lost connection, not a kick.
            ServerMessage::Disconnect { cause: DisconnectCause::IdleTimeout, detail, .. } => {
                return Err(DisconnectReason::Lost(format!("the server closed an idle session: {detail}")));
            }
            // Kicked and banned included: final, never reconnected.
            ServerMessage::Disconnect { cause, detail, until_ms } => {
                return Err(DisconnectReason::Kicked { cause, detail, until_ms });
            }
            // Kept on disk, and used from the next connection on.
            ServerMessage::KeyIssued { key, .. } => Some(self.carry.key.issued(&key)),
            // Batches come apart in the link reader.
            ServerMessage::Welcome { .. } | ServerMessage::Refused { .. } | ServerMessage::Batch { .. } => None,
            ServerMessage::VoiceJoined { voice_id, udp_port, epoch, room } => {
                self.set_voice_names(&room);
                self.voice_room = Some(room.clone());
                let server = SocketAddr::new(self.server, udp_port);
                let ev = self.voice.on_joined(server, &self.keys, voice_id, epoch, room, &self.engine_tx);
                if matches!(ev, Some(Event::VoiceError(_))) {
                    self.carry.voice = None;
                    self.voice_room = None;
                    self.send(out, &ClientMessage::VoiceLeave).await?;
                }
                ev
            }
            ServerMessage::VoiceLeft => None,
            ServerMessage::VoiceUsers { room, users } => {
                let names = users.iter().map(|u| u.name.clone()).collect();
                self.voice_lists.insert(name_key(&room), users);
                // Before the join is answered the room may not be known yet.
                if self.voice_room.as_deref().is_none_or(|v| name_key(v) == name_key(&room)) {
                    self.set_voice_names(&room);
                    let unnamed = std::mem::take(&mut self.voice.unnamed_talkers);
                    for id in unnamed {
                        match self.voice.names.get(&id) {
                            Some(user) => named_late.push(Event::Talking {
                                room: room.clone(),
                                user: user.clone(),
                                talking: true,
                            }),
                            None => {
                                self.voice.unnamed_talkers.insert(id);
                            }
                        }
                    }
                }
                Some(Event::VoiceUsers { room, users: names })
            }
            ServerMessage::VoiceFeedback { loss_permille, burst_x10 } => {
                if let Some(e) = &self.voice.engine {
                    e.feedback(loss_permille, burst_x10);
                }
                None
            }
        };
        if let Some(ev) = event {
            self.emit(ev).await;
        }
        for ev in named_late {
            self.emit(ev).await;
        }
        Ok(())
    }

    /// The account request pending, if `action` answers it.
    fn account_answered(&mut self, action: &str) -> Option<AccountRequest> {
        if self.carry.account_pending.as_ref().is_some_and(|r| r.action() == action) {
            self.carry.account_pending.take()
        } else {
            None
        }
    }

    fn is_me(&self, name: &str) -> bool {
        !self.carry.me.is_empty() && (name == self.carry.me || name_key(name) == name_key(&self.carry.me))
    }

    /// Speakers' names from the voice list of `room`.
    fn set_voice_names(&mut self, room: &str) {
        let list = self.voice_lists.get(&name_key(room));
        self.voice.names = list.into_iter().flatten().map(|u| (u.voice_id, u.name.clone())).collect();
        self.voice.apply_gains();
    }

    /// A command from the front end (the end of the command channel is a
    /// quit).
    pub(crate) async fn on_command(&mut self, cmd: Command, out: &mut impl Outbound) -> Step {
        match self.carry.command(cmd) {
            Some(Command::Who { room }) => {
                let room = room.map(|r| bare(&r).to_owned());
                self.request(ClientMessage::Who { room, offset: None });
            }
            Some(Command::Join { room }) => match self.carry.rooms.join(&room) {
                Some(join) => self.request(join),
                None => self.emit(Event::Notice(format!("already in #{}", bare(&room)))).await,
            },
            // `room_left` answers it, but a quit need not wait for that.
            Some(Command::Part { room }) => {
                self.requests.push_back(ClientMessage::Part { room: bare(&room).to_owned() })
            }
            Some(Command::Rooms) => self.request(ClientMessage::Rooms),
            Some(Command::History { room, before, limit }) => {
                let room = bare(&room).to_owned();
                self.carry.rooms.on_history_asked(&room);
                self.request(ClientMessage::History { room: Some(room), with: None, before, after: None, limit });
            }
            Some(Command::PrivateHistory { with, before, limit }) => {
                self.request(ClientMessage::History { room: None, with: Some(with), before, after: None, limit });
            }
            Some(Command::Account(req)) => {
                self.request(req.message());
                self.carry.account_pending = Some(req);
            }
            Some(Command::Moderate(action)) => self.request(ClientMessage::Moderate(action)),
            Some(Command::JoinVoice { options, room }) => {
                if self.voice.engine.is_some() || self.voice.pending.is_some() {
                    self.emit(Event::Notice("already in voice".into())).await;
                } else {
                    self.carry.voice = Some(((*options).clone(), room.clone()));
                    self.join_voice(out, *options, room).await?;
                }
            }
            Some(Command::SetGain { user, gain }) => self.voice.set_gain(user, gain),
            Some(Command::LeaveVoice) => {
                if let Some(stats) = self.voice.stop() {
                    self.emit(Event::VoiceLeft(stats)).await;
                }
                self.voice_room = None;
                self.send(out, &ClientMessage::VoiceLeave).await?;
            }
            // Connected already; sends and quits are in the carry.
            Some(Command::ReconnectNow | Command::Send { .. } | Command::Quit) | None => {}
        }
        Ok(())
    }

    /// Something the voice engine reports.
    pub(crate) async fn on_engine(&mut self, ev: EngineEvent, out: &mut impl Outbound) -> Step {
        let event = match ev {
            EngineEvent::Talking(id, talking) => {
                let room = self.voice_room.clone().unwrap_or_default();
                let named = self.voice.names.get(&id).map(|user| Event::Talking { room, user: user.clone(), talking });
                // Named once the room's voice list names them.
                if named.is_none() && talking {
                    self.voice.unnamed_talkers.insert(id);
                } else {
                    self.voice.unnamed_talkers.remove(&id);
                }
                named
            }
            EngineEvent::InputEnded => Some(Event::VoiceInputEnded),
            EngineEvent::Report { speaker, loss_permille, burst_x10 } => {
                self.send(out, &ClientMessage::VoiceReport { speaker, loss_permille, burst_x10 }).await?;
                None
            }
        };
        if let Some(ev) = event {
            self.emit(ev).await;
        }
        Ok(())
    }

    async fn ping(&mut self, out: &mut impl Outbound) -> Step {
        self.ping_nonce += 1;
        self.voice.ping_sent = Some(Instant::now());
        self.send(out, &ClientMessage::Ping { nonce: self.ping_nonce }).await
    }

    /// Every [`STATS_EVERY`] in voice: the counters, and a ping to keep the
    /// round-trip time current.
    pub(crate) async fn on_stats_tick(&mut self, out: &mut impl Outbound) -> Step {
        if let Some(stats) = self.voice.stats() {
            self.emit(Event::VoiceStats(stats)).await;
        }
        self.ping(out).await?;
        self.last_tx = Instant::now();
        Ok(())
    }

    /// The timers at `now`: a server silent too long ends the session; a
    /// quiet link gets a keepalive ping.
    pub(crate) async fn on_timer(&mut self, now: Instant, out: &mut impl Outbound) -> Step {
        if now.duration_since(self.last_rx) >= self.idle {
            return Err(DisconnectReason::Lost(format!("no word from the server for {}s", self.idle.as_secs())));
        }
        if now.duration_since(self.last_tx) >= self.keepalive {
            self.ping(out).await?;
            self.last_tx = now;
        }
        Ok(())
    }
}

/// Runs one logged-in connection (in the welcome's `rooms`) until it ends (a quit once everything is
/// acknowledged, or why not).
pub(crate) async fn run(
    link: Link,
    limits: Limits,
    rooms: &[String],
    queue_limit: usize,
    cmds: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
    carry: &mut Carry,
) -> DisconnectReason {
    let (server, keys) = (link.peer().ip(), link.keys().clone());
    let (mut rx, mut tx) = link.split();
    let (engine_tx, mut engine_rx) = mpsc::unbounded_channel();
    let mut session = Session::new(limits, server, keys, carry, events, engine_tx);
    if let Err(reason) = session.start(rooms, &mut tx).await {
        return reason;
    }
    let mut stats_tick = tokio::time::interval(STATS_EVERY);
    loop {
        let next_send = match session.send_due(&mut tx).await {
            Ok(t) => t,
            Err(reason) => return reason,
        };
        if session.quit_due() {
            let _ = tx.send(&ClientMessage::Quit).await;
            tx.close().await;
            return DisconnectReason::Quit;
        }
        let wake = session.wake(next_send);
        let step = tokio::select! {
            msg = rx.recv() => match msg {
                Ok(msg) => session.on_server(msg, &mut tx).await,
                Err(e) => Err(e.into()),
            },
            cmd = cmds.recv(), if session.takes_commands(queue_limit) => {
                session.on_command(cmd.unwrap_or(Command::Quit), &mut tx).await
            }
            Some(ev) = engine_rx.recv() => session.on_engine(ev, &mut tx).await,
            _ = stats_tick.tick(), if session.in_voice() => session.on_stats_tick(&mut tx).await,
            () = tokio::time::sleep_until(wake.into()) => session.on_timer(Instant::now(), &mut tx).await,
        };
        if let Err(reason) = step {
            return reason;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::message::{DisconnectCause, RoomJoin};

    /// Keeps what the session sends.
    impl Outbound for Vec<ClientMessage> {
        async fn send(&mut self, msg: &ClientMessage) -> Result<(), crate::link::LinkError> {
            self.push(msg.clone());
            Ok(())
        }
    }

    fn limits() -> Limits {
        Limits { rate_per_sec: 10, burst: 5, max_message_bytes: 4096, keepalive_secs: 30, idle_timeout_secs: 90 }
    }

    struct Harness {
        carry: Carry,
        events: mpsc::Sender<Event>,
        seen: mpsc::Receiver<Event>,
        engine_tx: mpsc::UnboundedSender<EngineEvent>,
        out: Vec<ClientMessage>,
    }

    impl Harness {
        fn new() -> Self {
            let (events, seen) = mpsc::channel(64);
            let (engine_tx, _) = mpsc::unbounded_channel();
            Self { carry: Carry::default(), events, seen, engine_tx, out: Vec::new() }
        }

        fn session(&mut self) -> (Session<'_>, &mut Vec<ClientMessage>) {
            let keys = SessionKeys::derive(&[1; 32], &[2; 32]);
            let s = Session::new(
                limits(),
                IpAddr::from([127, 0, 0, 1]),
                keys,
                &mut self.carry,
                &self.events,
                self.engine_tx.clone(),
            );
            (s, &mut self.out)
        }
    }

    fn chat(text: &str) -> Outgoing {
        Outgoing::Chat { text: text.into(), target: None }
    }

    fn send(id: u64, text: &str) -> Command {
        Command::Send { id, out: chat(text) }
    }

    fn wire(id: u64, text: &str) -> ClientMessage {
        ClientMessage::Chat { id, text: text.into(), room: None, to: None }
    }

    fn drain(rx: &mut mpsc::Receiver<Event>) -> Vec<Event> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[tokio::test]
    async fn an_ack_settles_and_emits_acked() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            s.on_command(send(1, "hello"), out).await.expect("on");
            assert_eq!(s.send_due(out).await.expect("sent"), None);
            assert!(s.carry.unacked.inflight.contains_key(&1));
            s.on_server(ServerMessage::Ack { id: 1, server_id: None }, out).await.expect("on");
            assert_eq!(s.carry.unacked.len(), 0);
            // A second ack for the same id tells nothing new.
            s.on_server(ServerMessage::Ack { id: 1, server_id: None }, out).await.expect("on");
        }
        assert_eq!(h.out, vec![wire(1, "hello")]);
        assert_eq!(drain(&mut h.seen), vec![Event::Acked { id: 1, server_id: None, sent: Some(chat("hello")) }]);
        assert_eq!(h.carry.unacked.settled.floor(), 2);
    }

    #[tokio::test]
    async fn a_rate_limited_nack_moves_the_message_back_to_pending_and_pauses() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            s.on_command(send(1, "one"), out).await.expect("on");
            s.send_due(out).await.expect("sent");
            let nack = ServerMessage::Nack {
                id: 1,
                reason: NackReason::RateLimited,
                detail: "slow down".into(),
                retry_after_ms: Some(30_000),
            };
            s.on_server(nack, out).await.expect("on");
            assert_eq!(s.carry.unacked.pending.get(&1), Some(&chat("one")));
            assert!(s.carry.unacked.inflight.is_empty());
            // Paused: nothing goes, and the loop is told when it may.
            let next = s.send_due(out).await.expect("no failure").expect("a time to try again");
            assert!(next > Instant::now() + Duration::from_secs(20));
        }
        assert_eq!(h.out.len(), 1, "the message is not resent during the pause");
        assert!(drain(&mut h.seen).is_empty(), "a rate nack is not shown as a rejection");
    }

    #[tokio::test]
    async fn a_final_nack_rejects_the_message() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            s.on_command(send(4, "x"), out).await.expect("on");
            s.send_due(out).await.expect("sent");
            let nack =
                ServerMessage::Nack { id: 4, reason: NackReason::Invalid, detail: "no".into(), retry_after_ms: None };
            s.on_server(nack, out).await.expect("on");
            assert_eq!(s.carry.unacked.len(), 0);
        }
        assert_eq!(
            drain(&mut h.seen),
            vec![Event::Rejected { id: 4, reason: NackReason::Invalid, detail: "no".into() }]
        );
    }

    #[tokio::test]
    async fn the_rate_paces_sends() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            for id in 1..=8 {
                s.on_command(send(id, &format!("m{id}")), out).await.expect("on");
            }
            let next = s.send_due(out).await.expect("sent");
            assert!(next.is_some(), "past the burst, the rest waits");
        }
        assert_eq!(h.out.len(), 5, "the burst goes at once");
        assert_eq!(h.carry.unacked.pending.len(), 3);
    }

    #[tokio::test]
    async fn a_ping_is_answered_with_a_pong() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            s.on_server(ServerMessage::Ping { nonce: 77 }, out).await.expect("on");
        }
        assert_eq!(h.out, vec![ClientMessage::Pong { nonce: 77 }]);
        assert!(drain(&mut h.seen).is_empty());
    }

    #[tokio::test]
    async fn quit_waits_for_the_unacknowledged_messages_and_who() {
        let mut h = Harness::new();
        let (mut s, out) = h.session();
        s.on_command(send(1, "last words"), out).await.expect("on");
        s.on_command(Command::Who { room: None }, out).await.expect("on");
        s.on_command(Command::Quit, out).await.expect("on");
        assert!(!s.takes_commands(256), "no commands after a quit");
        s.send_due(out).await.expect("sent");
        assert!(!s.quit_due(), "a message is unacknowledged");
        s.on_server(ServerMessage::Ack { id: 1, server_id: None }, out).await.expect("on");
        assert!(!s.quit_due(), "the who is unanswered");
        s.on_server(ServerMessage::Users { room: None, users: vec!["me".into()], users_total: 1 }, out)
            .await
            .expect("on");
        assert!(s.quit_due());
    }

    #[tokio::test]
    async fn shutdown_and_kick_end_the_session() {
        let mut h = Harness::new();
        let (mut s, out) = h.session();
        let end = s.on_server(ServerMessage::Shutdown { reason: "bye".into() }, out).await;
        assert_eq!(end, Err(DisconnectReason::ServerShutdown("bye".into())));
        let kick =
            ServerMessage::Disconnect { cause: DisconnectCause::Flooding, detail: "too fast".into(), until_ms: None };
        let end = s.on_server(kick, out).await;
        assert_eq!(
            end,
            Err(DisconnectReason::Kicked {
                cause: DisconnectCause::Flooding,
                detail: "too fast".into(),
                until_ms: None
            })
        );
        let ban = ServerMessage::Disconnect {
            cause: DisconnectCause::Banned,
            detail: "banned by mod: spam".into(),
            until_ms: Some(5_000),
        };
        let end = s.on_server(ban, out).await;
        assert_eq!(
            end,
            Err(DisconnectReason::Kicked {
                cause: DisconnectCause::Banned,
                detail: "banned by mod: spam".into(),
                until_ms: Some(5_000)
            })
        );
    }

    #[tokio::test]
    async fn an_issued_key_is_reported_and_used_next_and_a_revoked_key_ends_it() {
        let mut h = Harness::new();
        let key = protocol::crypto::Psk::generate();
        let id = {
            let (mut s, out) = h.session();
            let issued = ServerMessage::KeyIssued { key: key.clone(), id: "ignored".into() };
            s.on_server(issued, out).await.expect("goes on");
            let revoked = ServerMessage::Disconnect {
                cause: DisconnectCause::KeyRevoked,
                detail: "invite revoked".into(),
                until_ms: None,
            };
            let end = s.on_server(revoked, out).await;
            assert_eq!(
                end,
                Err(DisconnectReason::Kicked {
                    cause: DisconnectCause::KeyRevoked,
                    detail: "invite revoked".into(),
                    until_ms: None
                })
            );
            protocol::crypto::key_id_hex(&protocol::crypto::Psk::parse(&key).expect("a key").id())
        };
        // No keys directory in the harness: reported, used for this run.
        assert_eq!(
            drain(&mut h.seen),
            vec![Event::KeyIssued { id, stored: Err("no data directory to keep it in".into()) }]
        );
        assert_eq!(h.carry.key.fresh().map(protocol::crypto::Psk::expose_text), Some(key.as_str()));
    }

    #[tokio::test]
    async fn a_silent_server_is_lost_and_a_quiet_link_pings() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            let start = s.last_rx;
            s.on_timer(start + Duration::from_secs(31), out).await.expect("still alive");
            assert_eq!(s.wake(None), start + Duration::from_secs(61), "the next keepalive is due after this one");
            let end = s.on_timer(start + Duration::from_secs(90), out).await;
            assert_eq!(end, Err(DisconnectReason::Lost("no word from the server for 90s".into())));
        }
        assert_eq!(h.out, vec![ClientMessage::Ping { nonce: 1 }]);
    }

    #[tokio::test]
    async fn gains_are_kept_for_the_next_connection() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            s.on_command(Command::SetGain { user: "bo".into(), gain: 2.0 }, out).await.expect("on");
            assert_eq!(s.voice.gains.get("bo"), Some(&2.0));
        }
        assert_eq!(h.carry.gains.get("bo"), Some(&2.0));
        assert!(h.out.is_empty());
    }

    #[tokio::test]
    async fn server_traffic_becomes_events() {
        let mut h = Harness::new();
        h.carry.me = "Me".into();
        {
            let (mut s, out) = h.session();
            s.on_server(ServerMessage::Joined { user: "me".into(), room: Some("general".into()) }, out)
                .await
                .expect("on");
            s.on_server(ServerMessage::Joined { user: "ann".into(), room: Some("general".into()) }, out)
                .await
                .expect("on");
            s.on_server(live(3, "ann", "hi", "general"), out).await.expect("on");
            s.on_server(ServerMessage::Error { detail: "over the rate".into() }, out).await.expect("on");
        }
        assert_eq!(
            drain(&mut h.seen),
            vec![
                Event::Joined { user: "ann".into(), room: Some("general".into()) },
                Event::Message {
                    id: 3,
                    from: "ann".into(),
                    text: "hi".into(),
                    time: UNIX_EPOCH + Duration::from_secs(1),
                    room: Some("general".into()),
                    to: None,
                    history: false,
                    edited: false,
                },
                Event::Notice("server: over the rate".into()),
            ]
        );
    }

    fn live(id: u64, from: &str, text: &str, room: &str) -> ServerMessage {
        ServerMessage::Message {
            id,
            from: from.into(),
            text: text.into(),
            ts_ms: 1000,
            room: Some(room.into()),
            to: None,
            history: false,
            edited: false,
        }
    }

    fn stored(id: u64, room: &str) -> ServerMessage {
        ServerMessage::Message {
            id,
            from: "ann".into(),
            text: format!("stored {id}"),
            ts_ms: 1000,
            room: Some(room.into()),
            to: None,
            history: true,
            edited: false,
        }
    }

    fn room_joined(room: &str) -> ServerMessage {
        ServerMessage::RoomJoined {
            room: room.into(),
            topic: String::new(),
            users: vec!["me".into()],
            users_total: 1,
            voice: true,
            history: true,
        }
    }

    #[tokio::test]
    async fn rooms_asked_for_are_joined_after_the_welcome_and_a_quit_waits_for_them() {
        let mut h = Harness::new();
        h.carry.rooms = RoomBook::new(Some(0), &["#dev".into()]);
        let _ = h.carry.rooms.login();
        {
            let (mut s, out) = h.session();
            s.start(&["general".into()], out).await.expect("on");
            s.send_due(out).await.expect("sent");
            s.on_command(Command::Quit, out).await.expect("on");
            assert!(!s.quit_due(), "the join is unanswered");
            s.on_server(room_joined("general"), out).await.expect("on");
            assert!(!s.quit_due(), "a login room is not the join asked for");
            s.on_server(room_joined("dev"), out).await.expect("on");
            assert!(s.quit_due());
        }
        assert_eq!(
            h.out,
            vec![ClientMessage::Join { join: RoomJoin { room: "dev".into(), after: None }, history: Some(0) }]
        );
    }

    #[tokio::test]
    async fn a_reconnection_catches_up_from_the_newest_id_and_pages_on() {
        let mut h = Harness::new();
        let _ = h.carry.rooms.login();
        {
            let (mut s, out) = h.session();
            s.start(&["general".into()], out).await.expect("on");
            s.on_server(room_joined("general"), out).await.expect("on");
            s.on_server(stored(4, "general"), out).await.expect("on");
            s.on_server(ServerMessage::HistoryEnd { room: "general".into(), with: None, more: true }, out)
                .await
                .expect("on");
            s.on_server(live(6, "ann", "live", "general"), out).await.expect("on");
            // Our own line, acknowledged with its server id, counts too.
            let mine = Outgoing::Chat { text: "mine".into(), target: Some(Target::Room("general".into())) };
            s.on_command(Command::Send { id: 1, out: mine }, out).await.expect("on");
            s.send_due(out).await.expect("sent");
            s.on_server(ServerMessage::Ack { id: 1, server_id: Some(7) }, out).await.expect("on");
        }
        // The link drops; the next login names the room with id 7.
        let (rooms, _) = h.carry.rooms.login();
        assert_eq!(rooms, Some(vec![RoomJoin { room: "general".into(), after: Some(7) }]));
        h.out.clear();
        {
            let (mut s, out) = h.session();
            s.start(&["general".into()], out).await.expect("on");
            s.on_server(room_joined("general"), out).await.expect("on");
            s.on_server(stored(8, "general"), out).await.expect("on");
            s.on_server(live(20, "ann", "meanwhile", "general"), out).await.expect("on");
            s.on_server(stored(9, "general"), out).await.expect("on");
            s.on_server(ServerMessage::HistoryEnd { room: "general".into(), with: None, more: true }, out)
                .await
                .expect("on");
            s.send_due(out).await.expect("sent");
        }
        assert_eq!(
            h.out,
            vec![ClientMessage::History {
                room: Some("general".into()),
                with: None,
                before: None,
                after: Some(9),
                limit: protocol::message::MAX_HISTORY_PAGE
            }],
            "the next page starts after the last stored message, not the live one"
        );
        let events = drain(&mut h.seen);
        assert!(events.contains(&Event::HistoryEnd { room: "general".into(), more: true, older: false }), "{events:?}");
        assert!(events.contains(&Event::HistoryEnd { room: "general".into(), more: true, older: true }));
    }

    #[tokio::test]
    async fn edits_and_deletes_share_the_queue_and_a_storage_nack_is_resent() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            s.on_command(Command::Send { id: 1, out: Outgoing::Edit { target: 40, text: "new".into() } }, out)
                .await
                .expect("on");
            s.on_command(Command::Send { id: 2, out: Outgoing::Delete { target: 41 } }, out).await.expect("on");
            s.send_due(out).await.expect("sent");
            let nack = ServerMessage::Nack {
                id: 1,
                reason: NackReason::StorageUnavailable,
                detail: "disk full".into(),
                retry_after_ms: Some(30_000),
            };
            s.on_server(nack, out).await.expect("on");
            assert!(s.carry.unacked.pending.contains_key(&1), "kept to be resent");
            let nack = ServerMessage::Nack {
                id: 2,
                reason: NackReason::NotYours,
                detail: "not yours".into(),
                retry_after_ms: None,
            };
            s.on_server(nack, out).await.expect("on");
        }
        assert_eq!(
            h.out,
            vec![
                ClientMessage::Edit { id: 1, target: 40, text: "new".into() },
                ClientMessage::Delete { id: 2, target: 41 }
            ]
        );
        assert_eq!(
            drain(&mut h.seen),
            vec![Event::Rejected { id: 2, reason: NackReason::NotYours, detail: "not yours".into() }]
        );
    }

    #[tokio::test]
    async fn requests_carry_bare_room_names_and_private_messages_their_recipient() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            s.on_command(Command::Join { room: "#dev".into() }, out).await.expect("on");
            s.on_command(Command::Join { room: "dev".into() }, out).await.expect("on");
            s.on_command(Command::Who { room: Some("#dev".into()) }, out).await.expect("on");
            s.on_command(Command::History { room: "#dev".into(), before: Some(5), limit: 20 }, out).await.expect("on");
            s.on_command(Command::Part { room: "#dev".into() }, out).await.expect("on");
            s.on_command(Command::Rooms, out).await.expect("on");
            let dm = Outgoing::Chat { text: "psst".into(), target: Some(Target::User("Bart F".into())) };
            s.on_command(Command::Send { id: 1, out: dm }, out).await.expect("on");
            let next = s.send_due(out).await.expect("sent");
            // Requests and lines share the rate (a burst of 5 here): the
            // line waits for the next token.
            assert!(next.is_some() && s.carry.unacked.pending.contains_key(&1));
        }
        assert_eq!(
            h.out,
            vec![
                ClientMessage::Join { join: RoomJoin { room: "dev".into(), after: None }, history: None },
                ClientMessage::Who { room: Some("dev".into()), offset: None },
                ClientMessage::History {
                    room: Some("dev".into()),
                    with: None,
                    before: Some(5),
                    after: None,
                    limit: 20
                },
                ClientMessage::Part { room: "dev".into() },
                ClientMessage::Rooms,
            ]
        );
        assert_eq!(drain(&mut h.seen), vec![Event::Notice("already in #dev".into())]);
    }

    #[tokio::test]
    async fn voice_lists_are_per_room_and_talking_names_the_voice_room() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            let list = |room: &str, name: &str, id: u32| ServerMessage::VoiceUsers {
                room: room.into(),
                users: vec![protocol::message::VoiceUser { name: name.into(), voice_id: id }],
            };
            s.voice_room = Some("general".into());
            // Voice can overtake the list naming its speaker: named when it comes.
            s.on_engine(EngineEvent::Talking(1, true), out).await.expect("on");
            s.on_server(list("general", "ann", 1), out).await.expect("on");
            s.on_engine(EngineEvent::Talking(1, false), out).await.expect("on");
            s.on_server(list("dev", "bob", 2), out).await.expect("on");
            assert_eq!(s.voice.names.get(&1).map(String::as_str), Some("ann"));
            assert!(!s.voice.names.contains_key(&2), "another room's voice names nobody here");
            s.on_engine(EngineEvent::Talking(1, true), out).await.expect("on");
            s.carry.voice = Some((VoiceOptions::default(), Some("general".into())));
            s.on_server(ServerMessage::RoomLeft { room: "general".into() }, out).await.expect("on");
            assert_eq!(s.voice_room, None);
            assert!(s.carry.voice.is_none(), "not rejoined after a reconnection");
        }
        let events = drain(&mut h.seen);
        let ann = |talking| Event::Talking { room: "general".into(), user: "ann".into(), talking };
        let (started, stopped) = (
            events.iter().position(|e| *e == ann(true)).expect("named late"),
            events.iter().position(|e| *e == ann(false)).expect("stopped"),
        );
        let listed = events
            .iter()
            .position(|e| *e == Event::VoiceUsers { room: "general".into(), users: vec!["ann".into()] })
            .expect("list");
        assert!(listed < started && started < stopped, "talking named once the list came: {events:?}");
        assert!(events.contains(&Event::VoiceUsers { room: "dev".into(), users: vec!["bob".into()] }));
        assert!(
            events.contains(&Event::Talking { room: "general".into(), user: "ann".into(), talking: true }),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_registration_done_sets_the_password_of_later_logins_and_a_denial_does_not() {
        use crate::secret::Secret;
        use protocol::moderation::DenyReason;
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            let req = AccountRequest::Register { password: Secret::new("correct horse") };
            s.on_command(Command::Account(req), out).await.expect("on");
            s.send_due(out).await.expect("sent");
            s.on_command(Command::Quit, out).await.expect("on");
            assert!(!s.quit_due(), "a quit waits for the answer");
            let done = ServerMessage::Done { action: "register".into(), detail: "registered".into() };
            s.on_server(done, out).await.expect("on");
            assert!(s.quit_due());
        }
        assert_eq!(h.out, vec![ClientMessage::Register { password: "correct horse".into() }]);
        assert_eq!(h.carry.account_password, Some(Secret::new("correct horse")));
        let mut h = Harness {
            carry: Carry { account_password: Some(Secret::new("old one!")), ..Carry::default() },
            ..Harness::new()
        };
        {
            let (mut s, out) = h.session();
            let req =
                AccountRequest::ChangePassword { old: Some(Secret::new("wrong one")), new: Secret::new("new one!") };
            s.on_command(Command::Account(req), out).await.expect("on");
            let denied = ServerMessage::Denied {
                action: "password".into(),
                reason: DenyReason::WrongPassword,
                detail: "wrong password".into(),
            };
            s.on_server(denied, out).await.expect("on");
            let req = AccountRequest::Unregister { password: Secret::new("old one!") };
            s.on_command(Command::Account(req), out).await.expect("on");
            s.on_server(ServerMessage::Done { action: "unregister".into(), detail: "gone".into() }, out)
                .await
                .expect("on");
        }
        assert_eq!(h.carry.account_password, None, "unregistered: no password any more");
        assert_eq!(
            drain(&mut h.seen),
            vec![
                Event::Denied {
                    action: "password".into(),
                    reason: DenyReason::WrongPassword,
                    detail: "wrong password".into()
                },
                Event::Done { action: "unregister".into(), detail: "gone".into() },
            ]
        );
    }

    #[tokio::test]
    async fn moderation_answers_topics_and_private_history_become_typed_events() {
        use protocol::moderation::{Action, AuditEntry, BanEntry, BanKind};
        let mut h = Harness::new();
        let ban = BanEntry {
            id: 3,
            kind: BanKind::Name,
            target: "spammer".into(),
            reason: "spam".into(),
            by: "mod".into(),
            since_ms: 1,
            until_ms: Some(2),
        };
        let entry = AuditEntry {
            id: 9,
            ts_ms: 5,
            actor: "mod".into(),
            action: "ban".into(),
            target: "spammer".into(),
            room: None,
            reason: "spam".into(),
            detail: "1h".into(),
        };
        {
            let (mut s, out) = h.session();
            s.on_command(Command::Moderate(Action::Bans), out).await.expect("on");
            s.on_command(Command::Moderate(Action::Audit { limit: Some(5), before: None }), out).await.expect("on");
            let page = Command::PrivateHistory { with: "bob".into(), before: Some(40), limit: 20 };
            s.on_command(page, out).await.expect("on");
            s.send_due(out).await.expect("sent");
            s.on_command(Command::Quit, out).await.expect("on");
            s.on_server(ServerMessage::Bans { bans: vec![ban.clone()] }, out).await.expect("on");
            s.on_server(ServerMessage::Audit { entries: vec![entry.clone()], more: true }, out).await.expect("on");
            assert!(!s.quit_due(), "the history page is unanswered");
            let end = ServerMessage::HistoryEnd { room: String::new(), with: Some("bob".into()), more: false };
            s.on_server(end, out).await.expect("on");
            assert!(s.quit_due());
            let topic = ServerMessage::Topic { room: "dev".into(), topic: "release".into(), by: "mod".into() };
            s.on_server(topic, out).await.expect("on");
        }
        assert_eq!(
            h.out,
            vec![
                ClientMessage::Moderate(Action::Bans),
                ClientMessage::Moderate(Action::Audit { limit: Some(5), before: None }),
                ClientMessage::History {
                    room: None,
                    with: Some("bob".into()),
                    before: Some(40),
                    after: None,
                    limit: 20
                },
            ]
        );
        assert_eq!(
            drain(&mut h.seen),
            vec![
                Event::Bans(vec![ban]),
                Event::Audit { entries: vec![entry], more: true },
                Event::PrivateHistoryEnd { with: "bob".into(), more: false },
                Event::Topic { room: "dev".into(), topic: "release".into(), by: "mod".into() },
            ]
        );
    }
}
