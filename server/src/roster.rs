//! The `Roster` actor: who is connected under which name, and the only path
//! of text and presence fan-out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use protocol::escape::Escaped;
use protocol::message::{self, DisconnectCause, NameKeys, ServerMessage, VoiceUser, name_key, name_keys};
use slog::{Logger, debug, info, warn};

use crate::messages::{
    Broadcast, Count, Join, JoinRefusal, Joined, Leave, ListUsers, Outbox, RelayAdd, RelayRemove, SessionId,
    SharedLedger, ShutdownAll, ToSession, Undelivered, VoiceJoin, VoiceLeave, VoiceReport,
};
use crate::metrics::{Metrics, Snapshot, TakeSnapshot};
use crate::voice_relay::VoiceRelay;

struct Member {
    name: String,
    /// What makes the name unique ([`name_keys`]).
    key: NameKeys,
    /// Where it sorts in user lists ([`name_key`]).
    sort: String,
    mailbox: Recipient<ToSession>,
    outbox: Outbox,
    /// The secret that lets this user take the name back.
    resume: String,
    ip: Option<std::net::IpAddr>,
    ledger: SharedLedger,
}

/// A session that ended without quitting, kept for a while so its user can
/// resume with the ids the server already took.
struct Gone {
    /// The name exactly as it was (only that spelling takes it back).
    name: String,
    key: NameKeys,
    ledger: SharedLedger,
    at: Instant,
    /// Where it was logged in from (held names are capped per address).
    ip: Option<std::net::IpAddr>,
}

/// How long an ended session can be resumed (its name is held that long).
const RESUME_TTL: Duration = Duration::from_secs(600);

/// Whether two tokens are equal, in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Who is here.
pub struct Roster {
    log: Logger,
    max_clients: usize,
    members: HashMap<SessionId, Member>,
    /// Members in user-list order (case-insensitive sort key, session).
    order: BTreeSet<(String, SessionId)>,
    /// Each member's look-alike keys ([`NameKeys`]): a name whose visual
    /// or caseless key is here is taken.
    by_visual: HashMap<String, SessionId>,
    by_caseless: HashMap<String, SessionId>,
    relay: Option<Addr<VoiceRelay>>,
    shutting_down: bool,
    /// Who is in voice: session → voice id, and back.
    voice: BTreeMap<SessionId, u32>,
    /// Voice ids are random (they travel in clear in every UDP packet: a
    /// stranger cannot guess the next one).
    voice_ids: HashMap<u32, SessionId>,
    /// Latest loss report per speaker (voice id) and listener (session).
    reports: HashMap<u32, HashMap<SessionId, (u16, u16, Instant)>>,
    /// Ended sessions that may still be resumed, by resume token.
    gone: HashMap<String, Gone>,
    /// Sessions replaced by a resume, until they end: old → new.
    replaced: HashMap<SessionId, SessionId>,
    /// Users logged in per address, and the cap.
    per_ip: HashMap<std::net::IpAddr, usize>,
    max_per_ip: usize,
    metrics: std::sync::Arc<Metrics>,
}

/// Reports older than this no longer count towards a speaker's protection.
const REPORT_TTL: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roster").field("members", &self.members.len()).finish()
    }
}

impl Roster {
    /// An empty roster admitting at most `max_clients` users.
    pub fn new(log: Logger, max_clients: usize, max_per_ip: usize, relay: Option<Addr<VoiceRelay>>) -> Self {
        Self {
            log,
            max_clients,
            members: HashMap::new(),
            order: BTreeSet::new(),
            by_visual: HashMap::new(),
            by_caseless: HashMap::new(),
            relay,
            shutting_down: false,
            voice: BTreeMap::new(),
            voice_ids: HashMap::new(),
            reports: HashMap::new(),
            gone: HashMap::new(),
            per_ip: HashMap::new(),
            max_per_ip,
            replaced: HashMap::new(),
            metrics: std::sync::Arc::default(),
        }
    }

    /// Counts into `metrics` (by default, metrics nobody reads).
    pub fn with_metrics(mut self, metrics: std::sync::Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn remove_member(&mut self, id: SessionId) -> Option<Member> {
        let m = self.members.remove(&id)?;
        self.order.remove(&(m.sort.clone(), id));
        self.by_visual.remove(&m.key.visual);
        self.by_caseless.remove(&m.key.caseless);
        if let Some(ip) = m.ip
            && let Some(n) = self.per_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        Some(m)
    }

    /// Forgets resumable sessions past their time, and the oldest beyond
    /// `max_clients` of them.
    /// Beyond `max_clients` held sessions in all, the oldest of the address
    /// holding the most gives way (one key holder dropping many names
    /// cannot push everyone else's held names out); beyond
    /// `max_clients_per_address` from one address, its own oldest.
    fn prune_gone(&mut self, now: Instant) {
        self.gone.retain(|_, g| now.duration_since(g.at) < RESUME_TTL);
        loop {
            let mut per_ip: HashMap<Option<std::net::IpAddr>, usize> = HashMap::new();
            for g in self.gone.values() {
                *per_ip.entry(g.ip).or_default() += 1;
            }
            let over_address = per_ip.iter().find(|(_, n)| **n > self.max_per_ip).map(|(ip, _)| *ip);
            let victim_ip = match over_address {
                Some(ip) => ip,
                None if self.gone.len() > self.max_clients => match per_ip.into_iter().max_by_key(|(_, n)| *n) {
                    Some((ip, _)) => ip,
                    None => break,
                },
                None => break,
            };
            let Some(oldest) =
                self.gone.iter().filter(|(_, g)| g.ip == victim_ip).min_by_key(|(_, g)| g.at).map(|(t, _)| t.clone())
            else {
                break;
            };
            self.gone.remove(&oldest);
        }
    }

    fn voice_users(&self) -> ServerMessage {
        let mut users: Vec<VoiceUser> = self
            .voice
            .iter()
            .filter_map(|(sid, vid)| self.members.get(sid).map(|m| VoiceUser { name: m.name.clone(), voice_id: *vid }))
            .collect();
        users.sort_by_cached_key(|u| name_key(&u.name));
        ServerMessage::VoiceUsers { users }
    }

    fn leave_voice(&mut self, id: SessionId) -> bool {
        let Some(vid) = self.voice.remove(&id) else { return false };
        self.voice_ids.remove(&vid);
        self.reports.remove(&vid);
        for per_speaker in self.reports.values_mut() {
            per_speaker.remove(&id);
        }
        if let Some(relay) = &self.relay {
            relay.do_send(RelayRemove { voice_id: vid });
        }
        true
    }

    fn users(&self) -> Vec<String> {
        self.order.iter().filter_map(|(_, id)| self.members.get(id)).map(|m| m.name.clone()).collect()
    }

    /// The sessions holding a name that `key` makes the same (none, one, or
    /// two different ones).
    fn holders(&self, key: &NameKeys) -> BTreeSet<SessionId> {
        [self.by_visual.get(&key.visual), self.by_caseless.get(&key.caseless)].into_iter().flatten().copied().collect()
    }

    /// Sends one shared encoded message to everyone but `except`; returns
    /// how many sessions it was queued for.
    fn fan_out(&self, msg: &ServerMessage, except: Option<SessionId>) -> u64 {
        let payload = Bytes::from(message::encode(msg));
        let mut delivered = 0;
        for (id, m) in &self.members {
            if Some(*id) != except && self.deliver(*id, m, payload.clone()) {
                delivered += 1;
            }
        }
        delivered
    }

    /// Queues `msg` for session `id` alone.
    fn deliver_to(&self, id: SessionId, msg: &ServerMessage) {
        if let Some(m) = self.members.get(&id) {
            self.deliver(id, m, Bytes::from(message::encode(msg)));
        }
    }

    /// Every send goes through here: a full queue means a hopelessly slow
    /// reader, who is kicked, never waited for; a closed one is a session
    /// on its way out. Returns whether `payload` was queued.
    fn deliver(&self, id: SessionId, m: &Member, payload: Bytes) -> bool {
        match m.outbox.deliver(payload) {
            Ok(()) => true,
            Err(Undelivered::Closed) => false,
            Err(Undelivered::Full) => {
                warn!(self.log, "session queue full; disconnecting slow reader"; "session" => id);
                m.mailbox.do_send(ToSession::Kick(DisconnectCause::SlowReader, "you did not read fast enough"));
                false
            }
        }
    }
}

impl Actor for Roster {
    type Context = Context<Self>;
}

impl Handler<Join> for Roster {
    type Result = Result<Joined, JoinRefusal>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        if self.shutting_down {
            return Err(JoinRefusal::ShuttingDown);
        }
        let now = Instant::now();
        self.prune_gone(now);
        let key = name_keys(&msg.name);
        let holders = self.holders(&key);
        // Decide everything first; change nothing until every check passed.
        let takeover = match holders.first() {
            // Look-alikes of two users' names: taken whatever the token.
            Some(_) if holders.len() > 1 => return Err(JoinRefusal::NameTaken),
            // Taken: only by this user's own earlier session, proven by its token.
            // The same name exactly: a token never renames its holder.
            Some(&old) => {
                let owns = self
                    .members
                    .get(&old)
                    .zip(msg.resume.as_deref())
                    .is_some_and(|(m, t)| m.name == msg.name && same_token(&m.resume, t));
                if !owns {
                    return Err(JoinRefusal::NameTaken);
                }
                Some(old)
            }
            None => None,
        };
        // Held for a user whose connection dropped: only their token takes it.
        // Any look-alike of a held name is refused too.
        if let Some((_, g)) = self.gone.iter().find(|(token, g)| {
            g.key.collides(&key) && !(g.name == msg.name && msg.resume.as_deref().is_some_and(|t| same_token(token, t)))
        }) {
            return Err(JoinRefusal::NameHeld(RESUME_TTL.saturating_sub(now.duration_since(g.at))));
        }
        let freed_ip = takeover.and_then(|old| self.members.get(&old)).and_then(|m| m.ip);
        if self.members.len() - usize::from(takeover.is_some()) >= self.max_clients {
            return Err(JoinRefusal::ServerFull);
        }
        if let Some(ip) = msg.ip {
            let here = self.per_ip.get(&ip).copied().unwrap_or(0) - usize::from(freed_ip == Some(ip));
            if here >= self.max_per_ip {
                return Err(JoinRefusal::AddressFull);
            }
        }
        let mut ledger = msg.ledger;
        let mut resumed = false;
        if let Some(old) = takeover {
            if self.leave_voice(old) {
                self.fan_out(&self.voice_users(), Some(old));
            }
            if let Some(m) = self.remove_member(old) {
                m.mailbox.do_send(ToSession::Replaced);
                // A new process does not continue the old one's ids.
                if !msg.restored {
                    ledger = m.ledger;
                }
            }
            // What the old session still takes counts as the new one's.
            self.replaced.insert(old, msg.id);
            resumed = true;
            info!(self.log, "session resumed"; "user" => %Escaped(&msg.name), "replaces" => old);
        } else if let Some(token) = msg.resume.as_deref()
            && self.gone.get(token).is_some_and(|g| g.name == msg.name)
            && let Some(g) = self.gone.remove(token)
        {
            if !msg.restored {
                ledger = g.ledger;
            }
            resumed = true;
        }
        let took_over = takeover.is_some();
        // A user taking over their own live session never left, as far as
        // the others can tell.
        if !took_over {
            self.fan_out(&ServerMessage::Joined { user: msg.name.clone() }, None);
        }
        let resume = protocol::crypto::resume_token();
        if let Some(ip) = msg.ip {
            *self.per_ip.entry(ip).or_default() += 1;
        }
        let sort = name_key(&msg.name);
        self.order.insert((sort.clone(), msg.id));
        self.by_visual.insert(key.visual.clone(), msg.id);
        self.by_caseless.insert(key.caseless.clone(), msg.id);
        let member = Member {
            name: msg.name.clone(),
            key,
            sort,
            mailbox: msg.mailbox,
            outbox: msg.outbox,
            resume: resume.clone(),
            ledger: ledger.clone(),
            ip: msg.ip,
        };
        self.members.insert(msg.id, member);
        // The welcome goes first into the new session's queue: nothing the
        // roster delivers can overtake it.
        let welcome = ServerMessage::Welcome {
            version: protocol::PROTOCOL_VERSION,
            you: msg.name,
            users: self.users(),
            limits: msg.limits,
            resume: Some(resume),
        };
        self.deliver_to(msg.id, &welcome);
        if !self.voice.is_empty() {
            self.deliver_to(msg.id, &self.voice_users());
        }
        debug!(self.log, "roster join"; "session" => msg.id, "users" => self.members.len(), "resumed" => resumed);
        Ok(Joined { users: self.members.len(), ledger, resumed })
    }
}

impl Handler<Leave> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.replaced.remove(&msg.id);
        let was_in_voice = self.leave_voice(msg.id);
        if let Some(m) = self.remove_member(msg.id) {
            if msg.resumable {
                let now = Instant::now();
                // One resumable session per name: logging in and out cannot
                // push everyone else's out.
                self.gone.retain(|_, g| !g.key.collides(&m.key));
                let gone =
                    Gone { name: m.name.clone(), key: m.key.clone(), ledger: m.ledger.clone(), at: now, ip: m.ip };
                self.gone.insert(m.resume.clone(), gone);
                self.prune_gone(now);
            }
            if was_in_voice {
                self.fan_out(&self.voice_users(), None);
            }
            info!(self.log, "user left"; "user" => %Escaped(&m.name), "users" => self.members.len());
            self.fan_out(&ServerMessage::Left { user: m.name }, None);
        }
    }
}

impl Handler<Broadcast> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) {
        // A session replaced by its user's new one may still have taken a
        // message (and acknowledged it): deliver it as the new one's.
        if self.shutting_down {
            return;
        }
        let id = self.replaced.get(&msg.from).copied().unwrap_or(msg.from);
        let Some(from) = self.members.get(&id) else {
            return;
        };
        let out = ServerMessage::Message { from: from.name.clone(), text: msg.text, ts_ms: msg.ts_ms };
        let delivered = self.fan_out(&out, Some(id));
        self.metrics.messages.inc();
        self.metrics.deliveries.inc_by(delivered);
    }
}

impl Handler<TakeSnapshot> for Roster {
    type Result = MessageResult<TakeSnapshot>;
    fn handle(&mut self, _: TakeSnapshot, _: &mut Context<Self>) -> Self::Result {
        let mut s = Snapshot { users: self.members.len(), voice_members: self.voice.len(), ..Snapshot::default() };
        for m in self.members.values() {
            let depth = m.outbox.0.max_capacity() - m.outbox.0.capacity();
            s.queued += depth;
            s.queued_max = s.queued_max.max(depth);
        }
        MessageResult(s)
    }
}

impl Handler<ListUsers> for Roster {
    type Result = Vec<String>;
    fn handle(&mut self, _: ListUsers, _: &mut Context<Self>) -> Vec<String> {
        self.users()
    }
}

impl Handler<Count> for Roster {
    type Result = usize;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> usize {
        self.members.len()
    }
}

impl Handler<ShutdownAll> for Roster {
    type Result = usize;
    fn handle(&mut self, msg: ShutdownAll, _: &mut Context<Self>) -> usize {
        self.shutting_down = true;
        let payload = Bytes::from(message::encode(&ServerMessage::Shutdown { reason: msg.reason }));
        for m in self.members.values() {
            m.mailbox.do_send(ToSession::Shutdown(payload.clone()));
        }
        self.members.len()
    }
}

impl Handler<VoiceJoin> for Roster {
    type Result = Option<u32>;
    fn handle(&mut self, msg: VoiceJoin, _: &mut Context<Self>) -> Option<u32> {
        let relay = self.relay.clone()?;
        if !self.members.contains_key(&msg.id) {
            return None;
        }
        self.leave_voice(msg.id);
        let vid = loop {
            let vid = u32::from_be_bytes(protocol::crypto::random_bytes::<4>());
            if vid != 0 && !self.voice_ids.contains_key(&vid) {
                break vid;
            }
        };
        relay.do_send(RelayAdd { voice_id: vid, up_key: msg.up_key, down_key: msg.down_key });
        self.voice.insert(msg.id, vid);
        self.voice_ids.insert(vid, msg.id);
        info!(self.log, "voice joined"; "session" => msg.id, "voice_id" => vid, "in_voice" => self.voice.len());
        // The answer first, then everyone's new voice list.
        self.deliver_to(
            msg.id,
            &ServerMessage::VoiceJoined { voice_id: vid, udp_port: msg.udp_port, epoch: msg.epoch },
        );
        self.fan_out(&self.voice_users(), None);
        Some(vid)
    }
}

impl Handler<VoiceLeave> for Roster {
    type Result = ();
    fn handle(&mut self, msg: VoiceLeave, _: &mut Context<Self>) {
        let left = self.leave_voice(msg.id);
        self.deliver_to(msg.id, &ServerMessage::VoiceLeft);
        if left {
            info!(self.log, "voice left"; "session" => msg.id, "in_voice" => self.voice.len());
            self.fan_out(&self.voice_users(), None);
        }
    }
}

impl Handler<VoiceReport> for Roster {
    type Result = ();
    fn handle(&mut self, msg: VoiceReport, _: &mut Context<Self>) {
        // Only voice members report, and only about another member.
        if !self.voice.contains_key(&msg.from) {
            return;
        }
        let Some(&speaker_session) = self.voice_ids.get(&msg.speaker) else { return };
        if speaker_session == msg.from {
            return;
        }
        let now = Instant::now();
        let reports = self.reports.entry(msg.speaker).or_default();
        reports.insert(msg.from, (msg.loss_permille, msg.burst_x10, now));
        reports.retain(|_, (_, _, at)| now.duration_since(*at) < REPORT_TTL);
        // The speaker protects for its worst listener.
        let (loss_permille, burst_x10) =
            reports.values().fold((0, 10), |(l, b), (rl, rb, _)| (l.max(*rl), if *rl > 0 { b.max(*rb) } else { b }));
        self.deliver_to(speaker_session, &ServerMessage::VoiceFeedback { loss_permille, burst_x10 });
    }
}
