//! The `Roster` actor: who is connected under which name, who is in which
//! room, and the only path of text and presence fan-out.
//!
//! Its handlers live in submodules named after what they handle: logins
//! and leaving here, [`chat`] (messages, edits, deletes and what the store
//! answers), [`rooms`] (joining, parting, lists, history, presence, expiry),
//! [`voice`], [`accounts`] (registering, passwords, what a login must
//! prove) and [`moderation`] (kicks, bans, mutes, roles, room settings,
//! the audit log, the operator's queries).

mod accounts;
mod chat;
mod keys;
mod moderation;
mod rooms;
mod voice;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use protocol::escape::Escaped;
use protocol::message::{
    self, DisconnectCause, MAX_LISTED_USERS, NackReason, NameKeys, RoomJoin, ServerMessage, name_key, name_keys,
};
use slog::{Logger, debug, info, warn};

use crate::accounts::Accounts;
use crate::accounts::sanctions::Sanctions;
use crate::archive::{Archive, RoomRecord, Standing, StoreError, Write, WriteOutcome};
use crate::config::{RoomConfig, RoomSettings};
use crate::messages::{
    Count, Join, JoinRefusal, Joined, Leave, ListUsers, Outbox, SessionId, SharedLedger, ShutdownAll, ToSession,
    Undelivered,
};
use crate::metrics::{Metrics, Snapshot, TakeSnapshot};
use crate::rooms::{NewRoom, RoomId, Rooms};
use crate::voice_relay::VoiceRelay;

pub use self::chat::Stored;
pub use self::keys::{InviteSummary, KeyQuery, KeySummary};

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
    /// The rooms it is in, in the order it joined them.
    rooms: Vec<RoomId>,
    /// The room whose voice it is in.
    voice_room: Option<RoomId>,
    /// Who wrote this session's messages, for their edits and deletes: a
    /// random number per login, kept by sessions that resume it (a name
    /// can change hands; this does not).
    author: u64,
    /// The account this login proved (its key), if any.
    account: Option<String>,
    /// The full address (for address bans; `ip` is its group).
    addr: Option<std::net::IpAddr>,
    /// The key it connected with.
    key_id: Option<protocol::crypto::KeyId>,
    /// It logged in with its account's one-time reset code (and has not set
    /// a new password yet): the only session that may set one without the
    /// current password.
    reset_login: bool,
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
    /// Its author number ([`Member::author`]).
    author: u64,
}

/// How long an ended session can be resumed (its name is held that long).
const RESUME_TTL: Duration = Duration::from_secs(600);

/// Most rooms one login brings ([`Join::rooms`]).
pub const MAX_LOGIN_ROOMS: usize = 50;

/// How often presence is sent: what happened in a window goes at once.
const PRESENCE_WINDOW: Duration = Duration::from_millis(100);

/// How often empty user rooms and old messages are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Whether two tokens are equal, in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A ledger's identity: the address it lives at (a held ledger is kept alive
/// by its `Arc`, so the address is not reused meanwhile).
fn ledger_key(ledger: &SharedLedger) -> usize {
    Arc::as_ptr(ledger) as usize
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where a recent message went (for its edits and deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// A room.
    Room(RoomId),
    /// A private message to this user.
    Dm(String),
}

/// A message the roster still remembers, for its edits and deletes (stored
/// ones are found in the store too).
#[derive(Debug, Clone)]
struct Recent {
    /// The login that sent it ([`Member::author`]): only it may edit.
    author: u64,
    place: Place,
    /// It is in the store (edits and deletes go there too).
    stored: bool,
}

/// Most messages remembered for edits and deletes (older ones, and those
/// from before a restart, are read-only).
const RECENT_CAP: usize = 100_000;

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
    /// Which session holds each ledger (by its address): where the answer
    /// for a message goes once the store has it, whatever session took it.
    by_ledger: HashMap<usize, SessionId>,
    relay: Option<Addr<VoiceRelay>>,
    shutting_down: bool,
    /// Who is in voice: session → voice id.
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
    metrics: Arc<Metrics>,
    /// Every room.
    rooms: Rooms,
    settings: RoomSettings,
    /// Where messages of rooms with history are kept (`None`: nowhere).
    archive: Option<Arc<dyn Archive>>,
    /// The next server message id.
    next_id: u64,
    /// Messages remembered for edits and deletes, and their order.
    recent: HashMap<u64, Recent>,
    recent_order: VecDeque<u64>,
    /// This actor's address (for the store's answers).
    me: Option<Addr<Roster>>,
    /// Registered names and roles.
    accounts: Accounts,
    /// Bans and mutes.
    sanctions: Sanctions,
    /// Audit entries not written yet (they go with the request's answer).
    unlogged: Vec<protocol::moderation::AuditEntry>,
    /// The keys clients connect with (shared with the sessions).
    keys: Option<crate::keyring::SharedKeyRing>,
}

/// A store write's outcome, back on the roster's thread with what to do
/// with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed {
    result: Result<WriteOutcome, StoreError>,
    then: AfterWrite,
}

/// What the roster does once a write is stored (or failed).
type AfterWrite = Box<dyn FnOnce(&mut Roster, Result<WriteOutcome, StoreError>) + Send>;

impl std::fmt::Debug for Committed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committed").field("result", &self.result).finish_non_exhaustive()
    }
}

impl Handler<Committed> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Committed, _: &mut Context<Self>) {
        (msg.then)(self, msg.result);
    }
}

/// Reports older than this no longer count towards a speaker's protection.
const REPORT_TTL: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roster").field("members", &self.members.len()).field("rooms", &self.rooms.len()).finish()
    }
}

/// Every send goes through here: a full queue means a hopelessly slow
/// reader, who is kicked, never waited for; a closed one is a session on
/// its way out. Returns whether `payload` was queued.
fn deliver(log: &Logger, id: SessionId, m: &Member, payload: Bytes) -> bool {
    deliver_raw(log, id, &m.outbox, &m.mailbox, payload)
}

/// [`deliver`] with the parts of a member (for the store's threads).
fn deliver_raw(log: &Logger, id: SessionId, outbox: &Outbox, mailbox: &Recipient<ToSession>, payload: Bytes) -> bool {
    match outbox.deliver(payload) {
        Ok(()) => true,
        Err(Undelivered::Closed) => false,
        Err(Undelivered::Full) => {
            warn!(log, "session queue full; disconnecting slow reader"; "session" => id);
            mailbox.do_send(ToSession::Kick(DisconnectCause::SlowReader, "you did not read fast enough"));
            false
        }
    }
}

impl Roster {
    /// An empty roster admitting at most `max_clients` users, with the
    /// default room settings, the default room and no store.
    pub fn new(log: Logger, max_clients: usize, max_per_ip: usize, relay: Option<Addr<VoiceRelay>>) -> Self {
        let settings = RoomSettings::default();
        let mut rooms = Rooms::new(settings.max_rooms as usize);
        for name in &settings.default_rooms {
            rooms.insert(NewRoom {
                settings: RoomConfig {
                    name: name.clone(),
                    topic: String::new(),
                    history: false,
                    voice: true,
                    history_days: 0,
                },
                owner: None,
                from_config: true,
                created_ms: now_ms(),
                empty_since_ms: None,
            });
        }
        Self {
            log,
            max_clients,
            members: HashMap::new(),
            order: BTreeSet::new(),
            by_visual: HashMap::new(),
            by_caseless: HashMap::new(),
            by_ledger: HashMap::new(),
            relay,
            shutting_down: false,
            voice: BTreeMap::new(),
            voice_ids: HashMap::new(),
            reports: HashMap::new(),
            gone: HashMap::new(),
            per_ip: HashMap::new(),
            max_per_ip,
            replaced: HashMap::new(),
            metrics: Arc::default(),
            rooms,
            settings,
            archive: None,
            next_id: 1,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            me: None,
            accounts: Accounts::default(),
            sanctions: Sanctions::load(Vec::new()),
            unlogged: Vec::new(),
            keys: None,
        }
    }

    /// Counts into `metrics` (by default, metrics nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets the rooms up: the operator's `configured` ones (their settings
    /// win), the users' rooms found in the store (`stored`), and the store
    /// itself, whose ids continue after `max_id`.
    pub fn with_rooms(
        mut self,
        settings: RoomSettings,
        configured: &[RoomConfig],
        stored: Vec<RoomRecord>,
        archive: Option<Arc<dyn Archive>>,
        max_id: u64,
    ) -> Self {
        let now = now_ms();
        let mut rooms = Rooms::new(settings.max_rooms as usize);
        let mut writes = Vec::new();
        for c in configured {
            let kept = stored.iter().find(|r| name_keys(&r.name).collides(&name_keys(&c.name)));
            // A configured room keeps the spelling its history is stored
            // under (`General` renamed `general` is the same room).
            let mut settings = c.clone();
            if let Some(k) = kept {
                settings.name = k.name.clone();
            }
            let new = NewRoom {
                settings,
                owner: None,
                from_config: true,
                created_ms: kept.map_or(now, |r| r.created_ms),
                empty_since_ms: None,
            };
            let id = rooms.insert(new);
            if let Some(room) = rooms.get_mut(id) {
                room.invite_only = kept.is_some_and(|k| k.invite_only);
            }
            if let Some(room) = rooms.get(id) {
                let record = room.record();
                if kept != Some(&record) {
                    writes.push(Write::UpsertRoom(record));
                }
            }
        }
        for r in stored {
            if rooms.find(&r.name).is_some() {
                continue;
            }
            // A room the operator no longer lists becomes a user room (it
            // expires once empty for `empty_room_days`).
            let was_configured = r.from_config;
            let new = NewRoom {
                settings: RoomConfig {
                    name: r.name,
                    topic: r.topic,
                    history: r.history,
                    voice: r.voice,
                    history_days: r.history_days,
                },
                owner: r.owner,
                from_config: false,
                created_ms: r.created_ms,
                empty_since_ms: Some(r.empty_since_ms.unwrap_or(now)),
            };
            let id = rooms.insert(new);
            if let Some(room) = rooms.get_mut(id) {
                room.invite_only = r.invite_only;
            }
            if let Some(room) = rooms.get(id)
                && (was_configured || r.empty_since_ms.is_none())
            {
                writes.push(Write::UpsertRoom(room.record()));
            }
        }
        self.rooms = rooms;
        self.settings = settings;
        self.archive = archive;
        // Ids go to messages that are not stored too (private ones, rooms
        // without history): after a restart they must not come again, or a
        // client that stayed up would take new messages for ones it has.
        // 64 ids per millisecond of the clock is more than a server makes.
        self.next_id = max_id.saturating_add(1).max(now.saturating_mul(64));
        for w in writes {
            self.store_quietly(w);
        }
        self
    }

    /// Sets up accounts, roles, bans, mutes and invite lists from the store.
    pub fn with_standing(mut self, standing: Standing) -> Self {
        self.accounts = Accounts::load(standing.accounts, standing.moderators);
        self.sanctions = Sanctions::load(standing.sanctions);
        for i in standing.invites {
            if let Some(rid) = self.rooms.find(&i.room)
                && let Some(room) = self.rooms.get_mut(rid)
            {
                room.invited.insert(i.key, i.name);
            }
        }
        self
    }

    /// Writes `w`, then runs `then` on the roster's thread with the
    /// outcome (at once, as done, when there is no store).
    fn store_then(
        &mut self,
        w: Write,
        then: impl FnOnce(&mut Roster, Result<WriteOutcome, StoreError>) + Send + 'static,
    ) {
        match (&self.archive, &self.me) {
            (Some(archive), Some(me)) => {
                let me = me.clone();
                let then = Box::new(then);
                archive.write(w, Box::new(move |result| me.do_send(Committed { result, then })));
            }
            _ => then(self, Ok(WriteOutcome::Done)),
        }
    }

    /// Writes to the store without an answer to anyone (room records,
    /// retention); a failure is logged.
    fn store_quietly(&self, w: Write) {
        let Some(archive) = &self.archive else { return };
        let log = self.log.clone();
        let what = format!("{w:?}").chars().take(60).collect::<String>();
        archive.write(
            w,
            Box::new(move |res| {
                if let Err(e) = res {
                    warn!(log, "store write failed"; "what" => what, "error" => %e);
                }
            }),
        );
    }

    fn remove_member(&mut self, id: SessionId) -> Option<Member> {
        let m = self.members.remove(&id)?;
        self.order.remove(&(m.sort.clone(), id));
        self.by_visual.remove(&m.key.visual);
        self.by_caseless.remove(&m.key.caseless);
        let ledger = ledger_key(&m.ledger);
        if self.by_ledger.get(&ledger) == Some(&id) {
            self.by_ledger.remove(&ledger);
        }
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

    /// The first [`MAX_LISTED_USERS`] names of everyone connected, from `offset`.
    fn users(&self, offset: usize) -> Vec<String> {
        self.order
            .iter()
            .skip(offset)
            .take(MAX_LISTED_USERS)
            .filter_map(|(_, id)| self.members.get(id))
            .map(|m| m.name.clone())
            .collect()
    }

    /// The names of these sessions.
    fn names(&self, ids: impl Iterator<Item = SessionId>) -> Vec<String> {
        ids.filter_map(|id| self.members.get(&id)).map(|m| m.name.clone()).collect()
    }

    /// The sessions holding a name that `key` makes the same (none, one, or
    /// two different ones).
    fn holders(&self, key: &NameKeys) -> BTreeSet<SessionId> {
        [self.by_visual.get(&key.visual), self.by_caseless.get(&key.caseless)].into_iter().flatten().copied().collect()
    }

    /// The session now holding `ledger` (the sender of a message, or the
    /// session that resumed it).
    fn holder_of(&self, ledger: &SharedLedger) -> Option<SessionId> {
        self.by_ledger.get(&ledger_key(ledger)).copied()
    }

    /// Sends one shared encoded message to every member of room `room` but
    /// `except`; returns how many sessions it was queued for.
    fn fan_out_room(&self, room: RoomId, msg: &ServerMessage, except: Option<SessionId>) -> u64 {
        let Some(r) = self.rooms.get(room) else { return 0 };
        let payload = Bytes::from(message::encode(msg));
        let mut delivered = 0;
        for (_, id) in &r.members {
            if Some(*id) != except
                && let Some(m) = self.members.get(id)
                && deliver(&self.log, *id, m, payload.clone())
            {
                delivered += 1;
            }
        }
        delivered
    }

    /// Queues `msg` for session `id` alone.
    fn deliver_to(&self, id: SessionId, msg: &ServerMessage) {
        if let Some(m) = self.members.get(&id) {
            deliver(&self.log, id, m, Bytes::from(message::encode(msg)));
        }
    }
}

impl Actor for Roster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        ctx.run_interval(PRESENCE_WINDOW, |act, _| act.send_presence());
        // Expired rooms and old messages go at start too (in the
        // background: the store's writer prunes in chunks between writes).
        ctx.run_later(Duration::ZERO, |act, _| act.sweep());
        ctx.run_interval(SWEEP_EVERY, |act, _| act.sweep());
    }
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
        if let Err(ban) = self.ban_check(&key, msg.addr) {
            return Err(JoinRefusal::Banned(ban));
        }
        // A registered name needs its password (proven by the session,
        // for this very account: registered or changed meanwhile is a
        // refusal the client can retry).
        let account = self.accounts.find(&key).map(|a| a.key().to_owned());
        if account.as_deref() != msg.account.as_ref().map(|a| a.key.as_str()) {
            return Err(JoinRefusal::AccountPassword);
        }
        // The owner takes the name back from a session held for
        // resumption: its token stops working (once every check passed).
        let revoked_holds: Vec<String> = if account.is_some() {
            self.gone
                .iter()
                .filter(|(token, g)| {
                    g.key.collides(&key) && msg.resume.as_deref().is_none_or(|t| !same_token(token, t))
                })
                .map(|(t, _)| t.clone())
                .collect()
        } else {
            Vec::new()
        };
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
            g.key.collides(&key)
                && !revoked_holds.contains(token)
                && !(g.name == msg.name && msg.resume.as_deref().is_some_and(|t| same_token(token, t)))
        }) {
            return Err(JoinRefusal::NameHeld(RESUME_TTL.saturating_sub(now.duration_since(g.at))));
        }
        let freed_ip = takeover.and_then(|old| self.members.get(&old)).and_then(|m| m.ip);
        // Checked last but one: nothing may refuse the login after an
        // invite's use is spent.
        if self.members.len() - usize::from(takeover.is_some()) >= self.max_clients {
            return Err(JoinRefusal::ServerFull);
        }
        if let Some(ip) = msg.ip {
            let here = self.per_ip.get(&ip).copied().unwrap_or(0) - usize::from(freed_ip == Some(ip));
            if here >= self.max_per_ip {
                return Err(JoinRefusal::AddressFull);
            }
        }
        let issued = match msg.key {
            Some(key) => self.key_login(&key, &msg.name)?,
            None => None,
        };
        for token in revoked_holds {
            self.gone.remove(&token);
            info!(self.log, "held session revoked by its account's owner"; "user" => %Escaped(&msg.name));
        }
        let mut wanted: Vec<RoomJoin> = msg.rooms.clone().unwrap_or_else(|| {
            self.settings.default_rooms.iter().map(|r| RoomJoin { room: r.clone(), after: None }).collect()
        });
        // Each room joined costs a history read: a login brings a bounded
        // number (the rest are refused, to be joined one by one).
        let over: Vec<RoomJoin> = wanted.drain(wanted.len().min(MAX_LOGIN_ROOMS)..).collect();
        let mut ledger = msg.ledger;
        let mut resumed = false;
        let mut author = u64::from_be_bytes(protocol::crypto::random_bytes::<8>());
        // Rooms the user stays in through a takeover: nobody sees it leave
        // and come back.
        let mut stays: HashSet<RoomId> = HashSet::new();
        if let Some(old) = takeover {
            let wanted_ids: HashSet<RoomId> = wanted.iter().filter_map(|w| self.rooms.find(&w.room)).collect();
            let old_rooms = self.members.get(&old).map(|m| m.rooms.clone()).unwrap_or_default();
            self.leave_voice(old);
            for rid in old_rooms {
                let quiet = wanted_ids.contains(&rid);
                if quiet {
                    stays.insert(rid);
                }
                self.leave_room(old, rid, quiet);
            }
            if let Some(m) = self.remove_member(old) {
                m.mailbox.do_send(ToSession::Replaced);
                author = m.author;
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
            author = g.author;
            resumed = true;
        }
        let resume = protocol::crypto::resume_token();
        if let Some(ip) = msg.ip {
            *self.per_ip.entry(ip).or_default() += 1;
        }
        let sort = name_key(&msg.name);
        self.order.insert((sort.clone(), msg.id));
        self.by_visual.insert(key.visual.clone(), msg.id);
        self.by_caseless.insert(key.caseless.clone(), msg.id);
        self.by_ledger.insert(ledger_key(&ledger), msg.id);
        let member = Member {
            name: msg.name.clone(),
            key,
            sort,
            mailbox: msg.mailbox,
            outbox: msg.outbox,
            resume: resume.clone(),
            ledger: ledger.clone(),
            ip: msg.ip,
            rooms: Vec::new(),
            voice_room: None,
            author,
            account: account.clone(),
            addr: msg.addr,
            // A key issued now is this session's from here on.
            key_id: issued.as_ref().map(|i| i.key.id()).or(msg.key),
            reset_login: msg.account.as_ref().is_some_and(|a| a.by_reset),
        };
        self.members.insert(msg.id, member);
        let by_reset = msg.account.as_ref().is_some_and(|a| a.by_reset);
        // Into the rooms (as joins: a user room that went while its member
        // was away comes back where users may create rooms), then the
        // welcome first into the new session's queue: nothing the roster
        // delivers can overtake it.
        let mut entered = Vec::new();
        let mut refused = Vec::new();
        for w in wanted {
            let quiet = self.rooms.find(&w.room).is_some_and(|r| stays.contains(&r));
            match self.enter_room(msg.id, &w.room, true, quiet) {
                Ok(rid) if !entered.iter().any(|(r, _)| *r == rid) => entered.push((rid, w.after)),
                Ok(_) => {}
                Err((reason, detail)) => refused.push(ServerMessage::JoinRefused { room: w.room, reason, detail }),
            }
        }
        let welcome = ServerMessage::Welcome {
            version: protocol::PROTOCOL_VERSION,
            you: msg.name,
            users: self.users(0),
            users_total: u32::try_from(self.members.len()).unwrap_or(u32::MAX),
            rooms: entered.iter().filter_map(|(rid, _)| self.rooms.get(*rid)).map(|r| r.name.clone()).collect(),
            limits: msg.limits,
            resume: Some(resume),
            registered: account.is_some(),
            roles: account.as_deref().map(|k| self.accounts.roles(k)).unwrap_or_default(),
        };
        self.deliver_to(msg.id, &welcome);
        if by_reset && let Some(k) = &account {
            self.spend_reset_code(msg.id, k);
        }
        if let Some(issued) = issued {
            // Handed out once stored: a key the server would forget is no key.
            let sid = msg.id;
            self.store_then(Write::PutKey(issued.record()), move |roster, result| match result {
                Ok(_) => roster.deliver_issued(sid, issued),
                Err(e) => warn!(roster.log, "issued key not stored; not handed out"; "error" => %e),
            });
        }
        for (rid, after) in entered {
            self.greet_room(msg.id, rid, msg.history, after);
        }
        for r in refused {
            self.deliver_to(msg.id, &r);
        }
        for w in over {
            let detail = format!("a login brings at most {MAX_LOGIN_ROOMS} rooms; join this one again");
            self.deliver_to(
                msg.id,
                &ServerMessage::JoinRefused { room: w.room, reason: NackReason::RateLimited, detail },
            );
        }
        debug!(self.log, "roster join"; "session" => msg.id, "users" => self.members.len(), "resumed" => resumed);
        Ok(Joined { users: self.members.len(), ledger, resumed })
    }
}

impl Handler<Leave> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.replaced.remove(&msg.id);
        self.leave_voice(msg.id);
        let rooms = self.members.get(&msg.id).map(|m| m.rooms.clone()).unwrap_or_default();
        for rid in rooms {
            self.leave_room(msg.id, rid, false);
        }
        if let Some(m) = self.remove_member(msg.id) {
            if msg.resumable {
                let now = Instant::now();
                // One resumable session per name: logging in and out cannot
                // push everyone else's out.
                self.gone.retain(|_, g| !g.key.collides(&m.key));
                let gone = Gone {
                    name: m.name.clone(),
                    key: m.key.clone(),
                    ledger: m.ledger.clone(),
                    at: now,
                    ip: m.ip,
                    author: m.author,
                };
                self.gone.insert(m.resume.clone(), gone);
                self.prune_gone(now);
            }
            info!(self.log, "user left"; "user" => %Escaped(&m.name), "users" => self.members.len());
        }
    }
}

impl Handler<TakeSnapshot> for Roster {
    type Result = MessageResult<TakeSnapshot>;
    fn handle(&mut self, _: TakeSnapshot, _: &mut Context<Self>) -> Self::Result {
        let mut s = Snapshot {
            users: self.members.len(),
            voice_members: self.voice.len(),
            rooms: self.rooms.len(),
            ..Snapshot::default()
        };
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
        self.order.iter().filter_map(|(_, id)| self.members.get(id)).map(|m| m.name.clone()).collect()
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
