//! One logged-in connection: a [`Session`] with one handler per source of
//! events (a server message, a command, the voice engine, the timers), and
//! [`run`], the loop that waits on them all.
//!
//! The handlers send through an [`Outbound`] and report through the events
//! channel, so unit tests drive them without a server. What outlives the
//! connection (messages still unacknowledged, voice intent, gains, a quit
//! asked for) is the [`Carry`], whose [`Carry::command`] is the part of
//! every command shared with the offline loop in [`crate::reconnect`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, UNIX_EPOCH};

use protocol::crypto::SessionKeys;
use protocol::message::{ClientMessage, DisconnectCause, Limits, NackReason, ServerMessage};
use protocol::rate::TokenBucket;
use tokio::sync::mpsc;

use crate::audio::device::{Input, Output};
use crate::client::{Command, DisconnectReason, Event};
use crate::link::{Link, Outbound};
use crate::unacked::Unacked;
use crate::voice::{EngineEvent, Voice, VoiceOptions};

/// What a handler says: go on, or the session ended for this reason.
pub(crate) type Step = Result<(), DisconnectReason>;

/// How often voice counters are reported (and a ping measures the
/// round-trip time) while in voice.
const STATS_EVERY: Duration = Duration::from_secs(2);

/// What outlives one connection: the messages still unacknowledged and the
/// user's intent and settings.
#[derive(Debug, Default)]
pub(crate) struct Carry {
    /// Chat messages not acknowledged yet.
    pub(crate) unacked: Unacked,
    /// Voice options of the join in force, to rejoin after reconnecting.
    pub(crate) voice: Option<VoiceOptions>,
    /// Per-user playback gains.
    pub(crate) gains: HashMap<String, f32>,
    /// The user asked to leave (once the messages are acknowledged).
    pub(crate) quitting: bool,
}

impl Carry {
    /// Does what a command means whatever the connection: queues a message,
    /// notes a quit, a gain, a leave. Returns the command when a connection
    /// (or the lack of one) has a part in it too: `Who`, `JoinVoice`,
    /// `ReconnectNow`, and `SetGain` and `LeaveVoice` for a running voice.
    pub(crate) fn command(&mut self, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Send { id, text } => {
                self.unacked.queue(id, text);
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
            other @ (Command::Who | Command::JoinVoice(_) | Command::ReconnectNow) => Some(other),
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
    /// `who` requests not answered yet (a quit waits for them).
    who_pending: usize,
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
            who_pending: 0,
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
        let Some(options) = self.carry.voice.clone() else { return Ok(()) };
        if matches!(options.input, Input::Wav(_)) || matches!(options.output, Output::Wav(_)) {
            self.carry.voice = None;
            self.emit(Event::VoiceError(
                "voice was not rejoined after reconnecting: a WAV file would start over".into(),
            ))
            .await;
            return Ok(());
        }
        self.join_voice(out, options).await
    }

    async fn join_voice(&mut self, out: &mut impl Outbound, options: VoiceOptions) -> Step {
        if !self.voice.join(out, options, self.events).await? {
            self.carry.voice = None;
        }
        Ok(())
    }

    /// Sends the pending messages the rate (and a rate-limit pause) allows;
    /// returns when the next one may go, if any is left.
    pub(crate) async fn send_due(&mut self, out: &mut impl Outbound) -> Result<Option<Instant>, DisconnectReason> {
        let mut now = Instant::now();
        let unacked = &mut self.carry.unacked;
        if unacked.paused_until.is_some_and(|t| t <= now) {
            unacked.paused_until = None;
        }
        while let Some(entry) = unacked.pending.first_entry() {
            if let Some(t) = unacked.paused_until {
                return Ok(Some(t));
            }
            if let Err(wait) = self.bucket.take(now) {
                return Ok(Some(now + wait));
            }
            let (id, text) = entry.remove_entry();
            if let Err(e) = out.send(&ClientMessage::Chat { id, text: text.clone(), room: None, to: None }).await {
                unacked.pending.insert(id, text);
                return Err(e.into());
            }
            unacked.inflight.insert(id, text);
            now = Instant::now();
            self.last_tx = now;
        }
        Ok(None)
    }

    /// Whether a quit asked for may happen now: every message acknowledged
    /// and every `who` answered.
    pub(crate) fn quit_due(&self) -> bool {
        self.carry.quitting && self.carry.unacked.len() == 0 && self.who_pending == 0
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
        let event = match msg {
            ServerMessage::Message { from, text, ts_ms, .. } => {
                Some(Event::Message { from, text, time: UNIX_EPOCH + Duration::from_millis(ts_ms) })
            }
            ServerMessage::Joined { user, .. } => Some(Event::Joined(user)),
            ServerMessage::Left { user, .. } => Some(Event::Left(user)),
            ServerMessage::Users { users, .. } => {
                self.who_pending = self.who_pending.saturating_sub(1);
                Some(Event::Users(users))
            }
            ServerMessage::Notice { text } => Some(Event::Notice(text)),
            ServerMessage::Error { detail } => {
                // A refused request (e.g. `who` over the rate) gets no answer.
                self.who_pending = self.who_pending.saturating_sub(1);
                Some(Event::Notice(format!("server: {detail}")))
            }
            ServerMessage::Ack { id, .. } => self.carry.unacked.settle(id).then_some(Event::Acked(id)),
            ServerMessage::Nack { id, reason: NackReason::RateLimited, retry_after_ms, .. } => {
                let wait = Duration::from_millis(retry_after_ms.unwrap_or(100).min(60_000));
                self.carry.unacked.retry_later(id, wait, Instant::now());
                None
            }
            ServerMessage::Nack { id, reason, detail, .. } => {
                self.carry.unacked.settle(id).then_some(Event::Rejected { id, reason, detail })
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
            ServerMessage::Disconnect { cause: DisconnectCause::IdleTimeout, detail } => {
                return Err(DisconnectReason::Lost(format!("the server closed an idle session: {detail}")));
            }
            ServerMessage::Disconnect { cause, detail } => return Err(DisconnectReason::Kicked { cause, detail }),
            // Batches come apart in the link reader.
            ServerMessage::Welcome { .. } | ServerMessage::Refused { .. } | ServerMessage::Batch { .. } => None,
            ServerMessage::VoiceJoined { voice_id, udp_port, epoch, .. } => {
                let server = SocketAddr::new(self.server, udp_port);
                let ev = self.voice.on_joined(server, &self.keys, voice_id, epoch, &self.engine_tx);
                if matches!(ev, Some(Event::VoiceError(_))) {
                    self.carry.voice = None;
                    self.send(out, &ClientMessage::VoiceLeave).await?;
                }
                ev
            }
            ServerMessage::VoiceLeft => None,
            ServerMessage::VoiceUsers { users, .. } => {
                self.voice.names = users.iter().map(|u| (u.voice_id, u.name.clone())).collect();
                self.voice.apply_gains();
                Some(Event::VoiceUsers(users.into_iter().map(|u| u.name).collect()))
            }
            ServerMessage::VoiceFeedback { loss_permille, burst_x10 } => {
                if let Some(e) = &self.voice.engine {
                    e.feedback(loss_permille, burst_x10);
                }
                None
            }
            // Rooms come to the clients in their own change.
            ServerMessage::RoomJoined { .. }
            | ServerMessage::JoinRefused { .. }
            | ServerMessage::RoomLeft { .. }
            | ServerMessage::Rooms { .. }
            | ServerMessage::HistoryEnd { .. }
            | ServerMessage::Edited { .. }
            | ServerMessage::Deleted { .. } => None,
        };
        if let Some(ev) = event {
            self.emit(ev).await;
        }
        Ok(())
    }

    /// A command from the front end (the end of the command channel is a
    /// quit).
    pub(crate) async fn on_command(&mut self, cmd: Command, out: &mut impl Outbound) -> Step {
        match self.carry.command(cmd) {
            Some(Command::Who) => {
                self.send(out, &ClientMessage::Who { room: None, offset: None }).await?;
                self.who_pending += 1;
                self.last_tx = Instant::now();
            }
            Some(Command::JoinVoice(options)) => {
                if self.voice.engine.is_some() || self.voice.pending.is_some() {
                    self.emit(Event::Notice("already in voice".into())).await;
                } else {
                    self.carry.voice = Some((*options).clone());
                    self.join_voice(out, *options).await?;
                }
            }
            Some(Command::SetGain { user, gain }) => self.voice.set_gain(user, gain),
            Some(Command::LeaveVoice) => {
                if let Some(stats) = self.voice.stop() {
                    self.emit(Event::VoiceLeft(stats)).await;
                }
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
                self.voice.names.get(&id).map(|user| Event::Talking { user: user.clone(), talking })
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

/// Runs one logged-in connection until it ends (a quit once everything is
/// acknowledged, or why not).
pub(crate) async fn run(
    link: Link,
    limits: Limits,
    queue_limit: usize,
    cmds: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
    carry: &mut Carry,
) -> DisconnectReason {
    let (server, keys) = (link.peer().ip(), link.keys().clone());
    let (mut rx, mut tx) = link.split();
    let (engine_tx, mut engine_rx) = mpsc::unbounded_channel();
    let mut session = Session::new(limits, server, keys, carry, events, engine_tx);
    if let Err(reason) = session.rejoin_voice(&mut tx).await {
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
    use protocol::message::DisconnectCause;

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

    fn drain(rx: &mut mpsc::Receiver<Event>) -> Vec<Event> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[tokio::test]
    async fn an_ack_settles_and_emits_acked() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            s.on_command(Command::Send { id: 1, text: "hello".into() }, out).await.expect("on");
            assert_eq!(s.send_due(out).await.expect("sent"), None);
            assert!(s.carry.unacked.inflight.contains_key(&1));
            s.on_server(ServerMessage::Ack { id: 1 }, out).await.expect("on");
            assert_eq!(s.carry.unacked.len(), 0);
            // A second ack for the same id tells nothing new.
            s.on_server(ServerMessage::Ack { id: 1 }, out).await.expect("on");
        }
        assert_eq!(h.out, vec![ClientMessage::Chat { id: 1, text: "hello".into() }]);
        assert_eq!(drain(&mut h.seen), vec![Event::Acked(1)]);
        assert_eq!(h.carry.unacked.settled.floor(), 2);
    }

    #[tokio::test]
    async fn a_rate_limited_nack_moves_the_message_back_to_pending_and_pauses() {
        let mut h = Harness::new();
        {
            let (mut s, out) = h.session();
            s.on_command(Command::Send { id: 1, text: "one".into() }, out).await.expect("on");
            s.send_due(out).await.expect("sent");
            let nack = ServerMessage::Nack {
                id: 1,
                reason: NackReason::RateLimited,
                detail: "slow down".into(),
                retry_after_ms: Some(30_000),
            };
            s.on_server(nack, out).await.expect("on");
            assert_eq!(s.carry.unacked.pending.get(&1).map(String::as_str), Some("one"));
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
            s.on_command(Command::Send { id: 4, text: "x".into() }, out).await.expect("on");
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
                s.on_command(Command::Send { id, text: format!("m{id}") }, out).await.expect("on");
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
        s.on_command(Command::Send { id: 1, text: "last words".into() }, out).await.expect("on");
        s.on_command(Command::Who, out).await.expect("on");
        s.on_command(Command::Quit, out).await.expect("on");
        assert!(!s.takes_commands(256), "no commands after a quit");
        s.send_due(out).await.expect("sent");
        assert!(!s.quit_due(), "a message is unacknowledged");
        s.on_server(ServerMessage::Ack { id: 1 }, out).await.expect("on");
        assert!(!s.quit_due(), "the who is unanswered");
        s.on_server(ServerMessage::Users { users: vec!["me".into()] }, out).await.expect("on");
        assert!(s.quit_due());
    }

    #[tokio::test]
    async fn shutdown_and_kick_end_the_session() {
        let mut h = Harness::new();
        let (mut s, out) = h.session();
        let end = s.on_server(ServerMessage::Shutdown { reason: "bye".into() }, out).await;
        assert_eq!(end, Err(DisconnectReason::ServerShutdown("bye".into())));
        let kick = ServerMessage::Disconnect { cause: DisconnectCause::Flooding, detail: "too fast".into() };
        let end = s.on_server(kick, out).await;
        assert_eq!(end, Err(DisconnectReason::Kicked { cause: DisconnectCause::Flooding, detail: "too fast".into() }));
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
        {
            let (mut s, out) = h.session();
            s.on_server(ServerMessage::Joined { user: "ann".into() }, out).await.expect("on");
            s.on_server(ServerMessage::Message { from: "ann".into(), text: "hi".into(), ts_ms: 1000 }, out)
                .await
                .expect("on");
            s.on_server(ServerMessage::Error { detail: "over the rate".into() }, out).await.expect("on");
        }
        assert_eq!(
            drain(&mut h.seen),
            vec![
                Event::Joined("ann".into()),
                Event::Message { from: "ann".into(), text: "hi".into(), time: UNIX_EPOCH + Duration::from_secs(1) },
                Event::Notice("server: over the rate".into()),
            ]
        );
    }
}
