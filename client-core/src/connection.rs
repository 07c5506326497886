//! One connection: connect, handshake, pin check, login, then the session
//! loop that paces chat messages to the server's rate, tracks acks, answers
//! pings and sends keepalives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use protocol::{HandshakeError, PROTOCOL_VERSION};
use protocol::crypto::{Fingerprint, Psk};
use protocol::message::{ClientMessage, Limits, NackReason, RefusalCode, ServerMessage};
use protocol::rate::TokenBucket;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::client::{Command, ConnectOptions, DisconnectReason, Event, FirstUse, Trust};
use crate::known_servers::{self, KnownServers, Lookup};
use crate::link::{Link, LinkError};
use crate::resume_store::{self, ResumeStore, StoreError};
use crate::voice::{Devices, Engine, EngineEvent, VoiceOptions};

pub use crate::link::MAX_SERVER_FRAME;

type Outcome<T> = Result<T, DisconnectReason>;

/// A logged-in connection and what the welcome said.
struct Established {
    conn: Link,
    me: String,
    users: Vec<String>,
    limits: Limits,
    fingerprint: Fingerprint,
    trust: Trust,
    resume: Option<String>,
}

/// Connects and logs in (presenting `resume`, the previous session's
/// token, and `first_id`, the lowest chat id still to be sent).
async fn establish(
    opts: &ConnectOptions,
    resume: Option<String>,
    restored: bool,
    first_id: u64,
) -> Outcome<Established> {
    let stream = TcpStream::connect(&opts.server)
        .await
        .map_err(|e| DisconnectReason::ConnectFailed(format!("{}: {e}", opts.server)))?;
    let _ = stream.set_nodelay(true);
    let mut conn = Link::handshake(stream, &opts.key).await?;
    let fingerprint = conn.fingerprint();
    let trust = check_pin(opts, fingerprint)?;
    let login = ClientMessage::Login {
        version: PROTOCOL_VERSION,
        username: opts.username.clone(),
        password: opts.password.clone(),
        resume,
        first_id: Some(first_id),
        restored,
    };
    let welcome = conn.login(&login).await?;
    Ok(Established {
        conn,
        me: welcome.me,
        users: welcome.users,
        limits: welcome.limits,
        fingerprint,
        trust,
        resume: welcome.resume,
    })
}

/// What a failed link means to the user: the one place where the
/// transport's errors become a [`DisconnectReason`].
impl From<LinkError> for DisconnectReason {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Handshake(HandshakeError::WrongKey) => Self::WrongKey,
            LinkError::Handshake(HandshakeError::RetryAfter(retry_after)) => Self::Busy {
                retry_after,
                detail: "too many connections from your address or to the server".into(),
            },
            LinkError::Handshake(e @ HandshakeError::VersionMismatch { .. }) => Self::VersionMismatch(e.to_string()),
            LinkError::Handshake(e) => Self::BadServer(e.to_string()),
            e @ LinkError::NotWelcome(_) => Self::BadServer(e.to_string()),
            LinkError::PeerAddress(e) => Self::ConnectFailed(e.to_string()),
            LinkError::Busy { retry_after, detail } => Self::Busy { retry_after, detail },
            LinkError::Refused { code, reason } => Self::Refused { code, reason },
            LinkError::Shutdown(reason) => Self::ServerShutdown(reason),
            e @ (LinkError::Stream(_) | LinkError::Closed | LinkError::Corrupt(_) | LinkError::Malformed(_)) => {
                Self::Lost(e.to_string())
            }
        }
    }
}

/// Checks the server's identity against the explicit pin or the
/// known-servers file (recording it on first use).
fn check_pin(opts: &ConnectOptions, actual: Fingerprint) -> Outcome<Trust> {
    let file = opts.known_servers.clone().or_else(known_servers::default_path).map(KnownServers::new);
    if let Some(expected) = opts.fingerprint {
        if expected != actual {
            return Err(DisconnectReason::IdentityMismatch {
                server: opts.server.clone(),
                expected,
                actual,
                known_servers: None,
            });
        }
        // An explicit pin is the user's word: record it for next time.
        if let Some(ks) = &file
            && ks.lookup(&opts.server).ok() != Some(Lookup::Pinned(actual))
        {
            let _ = ks.pin(&opts.server, actual);
        }
        return Ok(Trust::Explicit);
    }
    let Some(ks) = file else {
        return Err(DisconnectReason::Local(
            "no data directory for known servers and no --fingerprint given; cannot verify the server".into(),
        ));
    };
    match ks.lookup(&opts.server).map_err(|e| DisconnectReason::Local(e.to_string()))? {
        Lookup::Pinned(expected) if expected == actual => Ok(Trust::Known),
        Lookup::Pinned(expected) => Err(DisconnectReason::IdentityMismatch {
            server: opts.server.clone(),
            expected,
            actual,
            known_servers: Some(ks.path().to_owned()),
        }),
        Lookup::Unknown if opts.first_use == FirstUse::Ask => {
            Err(DisconnectReason::UnknownServer { server: opts.server.clone(), fingerprint: actual })
        }
        Lookup::Unknown => {
            ks.pin(&opts.server, actual).map_err(|e| DisconnectReason::Local(e.to_string()))?;
            Ok(Trust::FirstUse)
        }
    }
}

/// Chat messages not yet acknowledged, in id order.
#[derive(Default)]
struct Outbox {
    /// Not sent yet (or to be resent after a rate-limit nack).
    pending: BTreeMap<u64, String>,
    /// Sent, awaiting an ack.
    inflight: BTreeMap<u64, String>,
    /// Do not send before this (server said "retry after").
    paused_until: Option<Instant>,
    /// Ids the server has answered for good (acked or finally refused):
    /// its floor is the lowest id this client may still send.
    settled: protocol::delivery::Ledger,
}

impl Outbox {
    fn len(&self) -> usize {
        self.pending.len() + self.inflight.len()
    }
}

/// What outlives one connection: the user's intent and settings.
#[derive(Default)]
struct Carry {
    /// Voice options of the join in force, to rejoin after reconnecting.
    voice: Option<VoiceOptions>,
    /// Per-user playback gains.
    gains: std::collections::HashMap<String, f32>,
    /// The user asked to leave (once the outbox is acknowledged).
    quitting: bool,
}

/// Whether a connection that ended this way is worth trying again (after a
/// first login). `name_taken` is: the server may hold our old session
/// until it notices it is dead, if it could not be resumed.
fn retryable(reason: &DisconnectReason) -> bool {
    matches!(
        reason,
        DisconnectReason::Lost(_)
            | DisconnectReason::ServerShutdown(_)
            | DisconnectReason::ConnectFailed(_)
            | DisconnectReason::Refused { code: protocol::message::RefusalCode::NameTaken, .. }
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

pub(crate) async fn run(
    mut opts: ConnectOptions,
    mut cmds: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    max_message: Arc<AtomicU64>,
) {
    let mut outbox = Outbox::default();
    let mut carry = Carry::default();
    // The token an earlier run left takes a held name back; the lock keeps
    // a second process of the same user out.
    let store = match opts.state_dir.clone().or_else(resume_store::default_dir) {
        Some(dir) => match ResumeStore::open(&dir, &opts.server, &opts.username) {
            Ok(s) => Some(s),
            Err(e @ StoreError::InUse { .. }) => {
                let reason = DisconnectReason::Refused { code: RefusalCode::NameTaken, reason: e.to_string() };
                let _ = events.send(Event::Disconnected { reason, unacked: 0 }).await;
                return;
            }
            // No place to keep it: the client works, without resuming
            // across runs.
            Err(_) => None,
        },
        None => None,
    };
    let mut resume = store.as_ref().and_then(ResumeStore::load);
    let mut restored = resume.is_some();
    let mut logged_in = false;
    let mut attempt = 0u32;
    let mut busy_waits = 0u32;
    let reason = loop {
        if logged_in
            && let Some(f) = &opts.key_file
            && let Some(k) = std::fs::read_to_string(f).ok().and_then(|t| Psk::parse(&t).ok())
        {
            opts.key = k;
        }
        // The token is kept until a welcome brings the next one: a failed
        // try must not lose it.
        let first_id = outbox.settled.floor();
        let attempt_result =
            tokio::time::timeout(opts.connect_timeout, establish(&opts, resume.clone(), restored, first_id)).await;
        let reason = match attempt_result {
            Err(_) => {
                DisconnectReason::ConnectFailed(format!("{}: timed out after {:?}", opts.server, opts.connect_timeout))
            }
            Ok(Err(reason)) => reason,
            Ok(Ok(est)) => {
                attempt = 0;
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
                // Whatever was in flight when the last connection died goes
                // again, with the same ids.
                let inflight = std::mem::take(&mut outbox.inflight);
                outbox.pending.extend(inflight);
                let connected = Event::Connected {
                    me: est.me,
                    users: est.users,
                    fingerprint: est.fingerprint,
                    trust: est.trust,
                    limits: est.limits,
                };
                let _ = events.send(connected).await;
                session(est.conn, est.limits, opts.queue_limit, &mut cmds, &events, &mut outbox, &mut carry).await
            }
        };
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
        if carry.quitting && outbox.len() == 0 {
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
        match wait_offline(delay, opts.queue_limit, &mut cmds, &events, &mut outbox, &mut carry).await {
            Offline::Retry => {}
            Offline::Quit => break DisconnectReason::Quit,
            Offline::Abandoned => break reason,
        }
    };
    // A quit or a kick leaves nothing to resume.
    if matches!(reason, DisconnectReason::Quit | DisconnectReason::Kicked { .. })
        && let Some(s) = &store
    {
        s.clear();
    }
    // Whatever was queued behind the end counts as not acknowledged too.
    cmds.close();
    let mut unacked = outbox.len();
    while let Ok(cmd) = cmds.try_recv() {
        if matches!(cmd, Command::Send { .. }) {
            unacked += 1;
        }
    }
    let _ = events.send(Event::Disconnected { reason, unacked }).await;
}

/// Waits `delay` while disconnected, still taking commands: messages are
/// queued (up to `queue_limit`, then senders wait), voice intent and gains
/// are kept.
async fn wait_offline(
    delay: Duration,
    queue_limit: usize,
    cmds: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
    outbox: &mut Outbox,
    carry: &mut Carry,
) -> Offline {
    let until = tokio::time::Instant::now() + delay;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return Offline::Retry,
            cmd = cmds.recv(), if outbox.len() < queue_limit => match cmd {
                None => return Offline::Abandoned,
                Some(Command::Quit) => {
                    carry.quitting = true;
                    if outbox.len() == 0 {
                        return Offline::Quit;
                    }
                }
                Some(Command::Send { id, text }) => {
                    outbox.pending.insert(id, text);
                }
                Some(Command::Who) => {
                    let _ = events.send(Event::Notice("not connected; reconnecting".into())).await;
                }
                Some(Command::JoinVoice(options)) => carry.voice = Some(*options),
                Some(Command::LeaveVoice) => carry.voice = None,
                Some(Command::SetGain { user, gain }) => {
                    carry.gains.insert(user, gain);
                }
                Some(Command::ReconnectNow) => return Offline::Retry,
            },
        }
    }
}

async fn session(
    mut conn: Link,
    limits: Limits,
    queue_limit: usize,
    cmds: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
    outbox: &mut Outbox,
    carry: &mut Carry,
) -> DisconnectReason {
    let now = Instant::now();
    let mut bucket = TokenBucket::new(f64::from(limits.rate_per_sec), limits.burst, now);
    let keepalive = Duration::from_secs(u64::from(limits.keepalive_secs.max(1)));
    let idle = Duration::from_secs(u64::from(limits.idle_timeout_secs.max(2)));
    let (mut last_tx, mut last_rx) = (now, now);
    let mut who_pending = 0usize;
    let mut ping_nonce = 0u64;
    let mut voice = Voice { gains: carry.gains.clone(), ..Voice::default() };
    if let Some(options) = carry.voice.clone() {
        // Back after a lost connection: into voice again, unless a WAV file
        // is involved (a recording would start over; so would a file played).
        let wav = matches!(options.input, crate::audio::device::Input::Wav(_))
            || matches!(options.output, crate::audio::device::Output::Wav(_));
        if wav {
            carry.voice = None;
            let _ = events
                .send(Event::VoiceError(
                    "voice was not rejoined after reconnecting: a WAV file would start over".into(),
                ))
                .await;
        } else {
            match voice.join(&mut conn, options, events).await {
                Err(r) => return r.into(),
                Ok(joined) if !joined => carry.voice = None,
                Ok(_) => {}
            }
        }
    }
    let (engine_tx, mut engine_rx) = mpsc::unbounded_channel();
    let mut stats_tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        // Send what the rate allows.
        let mut now = Instant::now();
        let mut next_send = None;
        if outbox.paused_until.is_some_and(|t| t <= now) {
            outbox.paused_until = None;
        }
        while let Some(entry) = outbox.pending.first_entry() {
            if let Some(t) = outbox.paused_until {
                next_send = Some(t);
                break;
            }
            if let Err(wait) = bucket.take(now) {
                next_send = Some(now + wait);
                break;
            }
            let (id, text) = entry.remove_entry();
            if let Err(r) = conn.send(&ClientMessage::Chat { id, text: text.clone() }).await {
                outbox.pending.insert(id, text);
                return r.into();
            }
            outbox.inflight.insert(id, text);
            now = Instant::now();
            last_tx = now;
        }
        if carry.quitting && outbox.len() == 0 && who_pending == 0 {
            let _ = conn.send(&ClientMessage::Quit).await;
            conn.tx.close().await;
            return DisconnectReason::Quit;
        }
        let wake = [Some(last_tx + keepalive), Some(last_rx + idle), next_send]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + keepalive);
        tokio::select! {
            msg = conn.rx.recv() => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(r) => return r.into(),
                };
                last_rx = Instant::now();
                let event = match msg {
                    ServerMessage::Message { from, text, ts_ms } => {
                        Some(Event::Message { from, text, time: UNIX_EPOCH + Duration::from_millis(ts_ms) })
                    }
                    ServerMessage::Joined { user } => Some(Event::Joined(user)),
                    ServerMessage::Left { user } => Some(Event::Left(user)),
                    ServerMessage::Users { users } => {
                        who_pending = who_pending.saturating_sub(1);
                        Some(Event::Users(users))
                    }
                    ServerMessage::Notice { text } => Some(Event::Notice(text)),
                    ServerMessage::Error { detail } => {
                        // A refused request (e.g. `who` over the rate) gets no answer.
                        who_pending = who_pending.saturating_sub(1);
                        Some(Event::Notice(format!("server: {detail}")))
                    }
                    ServerMessage::Ack { id } => {
                        let _ = outbox.settled.settle(id);
                        outbox.inflight.remove(&id).map(|_| Event::Acked(id))
                    }
                    ServerMessage::Nack { id, reason: NackReason::RateLimited, retry_after_ms, .. } => {
                        if let Some(text) = outbox.inflight.remove(&id) {
                            outbox.pending.insert(id, text);
                        }
                        let wait = Duration::from_millis(retry_after_ms.unwrap_or(100).min(60_000));
                        outbox.paused_until = Some(Instant::now() + wait);
                        None
                    }
                    ServerMessage::Nack { id, reason, detail, .. } => {
                        let _ = outbox.settled.settle(id);
                        outbox.inflight.remove(&id).map(|_| Event::Rejected { id, reason, detail })
                    }
                    ServerMessage::Ping { nonce } => {
                        if let Err(r) = conn.send(&ClientMessage::Pong { nonce }).await {
                            return r.into();
                        }
                        None
                    }
                    ServerMessage::Pong { nonce } => {
                        if nonce == ping_nonce && let Some(sent) = voice.ping_sent.take() {
                            voice.rtt_us = sent.elapsed().as_micros() as u64;
                        }
                        None
                    }
                    ServerMessage::Shutdown { reason } => return DisconnectReason::ServerShutdown(reason),
                    ServerMessage::Disconnect { cause, detail } => return DisconnectReason::Kicked { cause, detail },
                    // Batches come apart in the link reader.
                    ServerMessage::Welcome { .. } | ServerMessage::Refused { .. } | ServerMessage::Batch { .. } => None,
                    ServerMessage::VoiceJoined { voice_id, udp_port, epoch } => {
                        let ev = voice.on_joined(&conn, voice_id, udp_port, epoch, &engine_tx);
                        if matches!(ev, Some(Event::VoiceError(_))) {
                            carry.voice = None;
                            if let Err(r) = conn.send(&ClientMessage::VoiceLeave).await {
                                return r.into();
                            }
                        }
                        ev
                    }
                    ServerMessage::VoiceLeft => None,
                    ServerMessage::VoiceUsers { users } => {
                        voice.names = users.iter().map(|u| (u.voice_id, u.name.clone())).collect();
                        voice.apply_gains();
                        Some(Event::VoiceUsers(users.into_iter().map(|u| u.name).collect()))
                    }
                    ServerMessage::VoiceFeedback { loss_permille, burst_x10 } => {
                        if let Some(e) = &voice.engine {
                            e.feedback(loss_permille, burst_x10);
                        }
                        None
                    }
                };
                if let Some(ev) = event {
                    let _ = events.send(ev).await;
                }
            }
            cmd = cmds.recv(), if !carry.quitting && outbox.len() < queue_limit => {
                match cmd {
                    Some(Command::Send { id, text }) => {
                        outbox.pending.insert(id, text);
                    }
                    Some(Command::Who) => {
                        if let Err(r) = conn.send(&ClientMessage::Who).await {
                            return r.into();
                        }
                        who_pending += 1;
                        last_tx = Instant::now();
                    }
                    Some(Command::Quit) | None => carry.quitting = true,
                    Some(Command::JoinVoice(options)) => {
                        if voice.engine.is_some() || voice.pending.is_some() {
                            let _ = events.send(Event::Notice("already in voice".into())).await;
                        } else {
                            carry.voice = Some((*options).clone());
                            match voice.join(&mut conn, *options, events).await {
                                Err(r) => return r.into(),
                                Ok(joined) if !joined => carry.voice = None,
                                Ok(_) => {}
                            }
                        }
                    }
                    Some(Command::SetGain { user, gain }) => {
                        carry.gains.insert(user.clone(), gain);
                        voice.set_gain(user, gain);
                    }
                    Some(Command::ReconnectNow) => {}
                    Some(Command::LeaveVoice) => {
                        carry.voice = None;
                        if let Some(stats) = voice.stop() {
                            let _ = events.send(Event::VoiceLeft(stats)).await;
                        }
                        if let Err(r) = conn.send(&ClientMessage::VoiceLeave).await {
                            return r.into();
                        }
                    }
                }
            }
            Some(ev) = engine_rx.recv() => {
                let event = match ev {
                    EngineEvent::Talking(id, talking) => {
                        voice.names.get(&id).map(|user| Event::Talking { user: user.clone(), talking })
                    }
                    EngineEvent::InputEnded => Some(Event::VoiceInputEnded),
                    EngineEvent::Report { speaker, loss_permille, burst_x10 } => {
                        if let Err(r) = conn.send(&ClientMessage::VoiceReport { speaker, loss_permille, burst_x10 }).await {
                            return r.into();
                        }
                        None
                    }
                };
                if let Some(ev) = event {
                    let _ = events.send(ev).await;
                }
            }
            _ = stats_tick.tick(), if voice.engine.is_some() => {
                if let Some(stats) = voice.stats() {
                    let _ = events.send(Event::VoiceStats(stats)).await;
                }
                // A ping per report keeps the round-trip time current.
                ping_nonce += 1;
                voice.ping_sent = Some(Instant::now());
                if let Err(r) = conn.send(&ClientMessage::Ping { nonce: ping_nonce }).await {
                    return r.into();
                }
                last_tx = Instant::now();
            }
            () = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if now.duration_since(last_rx) >= idle {
                    return DisconnectReason::Lost(format!("no word from the server for {}s", idle.as_secs()));
                }
                if now.duration_since(last_tx) >= keepalive {
                    ping_nonce += 1;
                    voice.ping_sent = Some(Instant::now());
                    if let Err(r) = conn.send(&ClientMessage::Ping { nonce: ping_nonce }).await {
                        return r.into();
                    }
                    last_tx = now;
                }
            }
        }
    }
}

/// Voice state of a connection.
#[derive(Default)]
struct Voice {
    pending: Option<(VoiceOptions, Devices)>,
    engine: Option<Engine>,
    names: std::collections::HashMap<u32, String>,
    gains: std::collections::HashMap<String, f32>,
    ping_sent: Option<Instant>,
    rtt_us: u64,
}

impl Voice {
    /// Opens the devices and asks the server to join (a device failure is
    /// reported as [`Event::VoiceError`]; only a dead connection is an error).
    async fn join(&mut self, conn: &mut Link, options: VoiceOptions, events: &mpsc::Sender<Event>) -> Outcome<bool> {
        // Opening devices reads files and talks to the sound system: off
        // the async threads.
        let opened = {
            let options = options.clone();
            tokio::task::spawn_blocking(move || Devices::open(&options)).await
        };
        match opened.unwrap_or_else(|e| Err(crate::audio::AudioError::Device(e.to_string()))) {
            Ok((devices, notes)) => {
                for note in notes {
                    let _ = events.send(Event::VoiceFallback(note)).await;
                }
                self.pending = Some((options, devices));
                conn.send(&ClientMessage::VoiceJoin).await.map(|()| true).map_err(Into::into)
            }
            Err(e) => {
                let _ = events.send(Event::VoiceError(e.to_string())).await;
                Ok(false)
            }
        }
    }

    fn on_joined(
        &mut self,
        conn: &Link,
        voice_id: u32,
        udp_port: u16,
        epoch: u32,
        engine_tx: &mpsc::UnboundedSender<EngineEvent>,
    ) -> Option<Event> {
        let (options, devices) = self.pending.take()?;
        let keys = &conn.keys;
        self.engine = None;
        let server = std::net::SocketAddr::new(conn.peer.ip(), udp_port);
        let keys = protocol::voice::voice_keys(keys, epoch);
        match Engine::start(server, voice_id, keys, devices, &options, engine_tx.clone()) {
            Ok(engine) => {
                self.engine = Some(engine);
                self.apply_gains();
                Some(Event::VoiceJoined)
            }
            Err(e) => Some(Event::VoiceError(e.to_string())),
        }
    }

    fn set_gain(&mut self, user: String, gain: f32) {
        self.gains.insert(user, gain);
        self.apply_gains();
    }

    fn apply_gains(&self) {
        let Some(engine) = &self.engine else { return };
        for (id, name) in &self.names {
            if let Some(g) = self.gains.get(name) {
                engine.set_gain(*id, *g);
            }
        }
    }

    fn stats(&self) -> Option<crate::voice::VoiceStats> {
        let mut s = self.engine.as_ref()?.stats();
        s.rtt_us = self.rtt_us;
        Some(s)
    }

    fn stop(&mut self) -> Option<crate::voice::VoiceStats> {
        let stats = self.stats();
        // Stopping joins the engine's threads: off the async threads.
        if let Some(engine) = self.engine.take() {
            tokio::task::spawn_blocking(move || drop(engine));
        }
        self.pending = None;
        stats
    }
}
