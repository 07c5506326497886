//! The rooms: their settings, who is in which, the name rules, the limits on
//! creating them, and the presence waiting to be sent. Sans-IO: the
//! [`crate::roster::Roster`] owns it and does the sending.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::message::{self, MAX_LISTED_USERS, NackReason, NameKeys, RoomInfo, name_keys};

use crate::archive::RoomRecord;
use crate::config::RoomConfig;
use crate::messages::SessionId;

/// A room's number inside this process (also its voice channel).
pub type RoomId = u32;

/// Rooms one user may create per [`CREATION_WINDOW`].
pub const CREATIONS_PER_WINDOW: usize = 10;

/// Rooms the users of one address may create per [`CREATION_WINDOW`].
pub const CREATIONS_PER_ADDRESS: usize = 30;

/// The window of [`CREATIONS_PER_WINDOW`].
pub const CREATION_WINDOW: Duration = Duration::from_secs(3600);

/// Most presence bytes sent as one batch (a big join wave goes as several).
const PRESENCE_CHUNK: usize = 32 * 1024;

/// One room.
#[derive(Debug)]
pub struct Room {
    /// Its number.
    pub id: RoomId,
    /// Its name as created.
    pub name: String,
    keys: NameKeys,
    /// Its topic.
    pub topic: String,
    /// Whether its messages are stored.
    pub history: bool,
    /// Whether it has voice.
    pub voice: bool,
    /// Days its messages are kept (0: for ever).
    pub history_days: u32,
    /// Who created it (user rooms).
    pub owner: Option<String>,
    /// Set up in `config.toml` (never expires).
    pub from_config: bool,
    /// When it was created, Unix ms.
    pub created_ms: u64,
    /// When its last member left, Unix ms.
    pub empty_since_ms: Option<u64>,
    /// Members in user-list order (sort key, session).
    pub members: BTreeSet<(String, SessionId)>,
    /// Who is in its voice: session → voice id.
    pub voice_members: BTreeMap<SessionId, u32>,
    /// Encoded presence (`joined`/`left`) not sent yet, oldest first.
    presence: Vec<Bytes>,
    /// Only names on its invite list (and its moderators) may join.
    pub invite_only: bool,
    /// Its invite list: name key ([`protocol::message::NameKeys::caseless`]) → name as invited.
    pub invited: BTreeMap<String, String>,
}

impl Room {
    /// Its stored form.
    pub fn record(&self) -> RoomRecord {
        RoomRecord {
            name: self.name.clone(),
            topic: self.topic.clone(),
            history: self.history,
            voice: self.voice,
            owner: self.owner.clone(),
            history_days: self.history_days,
            created_ms: self.created_ms,
            empty_since_ms: self.empty_since_ms,
            from_config: self.from_config,
            invite_only: self.invite_only,
        }
    }

    /// The first [`MAX_LISTED_USERS`] member sessions from `offset`.
    pub fn listed(&self, offset: usize) -> impl Iterator<Item = SessionId> + '_ {
        self.members.iter().skip(offset).take(MAX_LISTED_USERS).map(|(_, id)| *id)
    }

    /// Takes the presence waiting to be sent, as batches of at most
    /// [`PRESENCE_CHUNK`] bytes each (a lone message as itself).
    pub fn take_presence(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut chunk: Vec<Bytes> = Vec::new();
        let mut bytes = 0;
        let flush = |chunk: &mut Vec<Bytes>, out: &mut Vec<Bytes>| match chunk.len() {
            0 => {}
            1 => out.append(chunk),
            _ => {
                let mut buf = Vec::with_capacity(PRESENCE_CHUNK + 64);
                message::encode_batch(chunk.iter().map(|b| &b[..]), &mut buf);
                out.push(Bytes::from(buf));
                chunk.clear();
            }
        };
        for p in std::mem::take(&mut self.presence) {
            if bytes + p.len() > PRESENCE_CHUNK {
                flush(&mut chunk, &mut out);
                bytes = 0;
            }
            bytes += p.len() + 1;
            chunk.push(p);
        }
        flush(&mut chunk, &mut out);
        out
    }
}

/// What a new room is like.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// Its settings.
    pub settings: RoomConfig,
    /// Its creator.
    pub owner: Option<String>,
    /// Set up in `config.toml`.
    pub from_config: bool,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Empty since, Unix ms.
    pub empty_since_ms: Option<u64>,
}

/// Every room.
#[derive(Debug)]
pub struct Rooms {
    rooms: HashMap<RoomId, Room>,
    by_visual: HashMap<String, RoomId>,
    by_caseless: HashMap<String, RoomId>,
    next_id: RoomId,
    /// Rooms with presence to send.
    dirty: BTreeSet<RoomId>,
    /// Rooms whose voice list changed since it was last sent.
    voice_dirty: BTreeSet<RoomId>,
    /// Rooms each user created lately (by caseless name key).
    creations: HashMap<String, VecDeque<Instant>>,
    max_rooms: usize,
}

impl Rooms {
    /// No rooms yet; at most `max_rooms`.
    pub fn new(max_rooms: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            by_visual: HashMap::new(),
            by_caseless: HashMap::new(),
            next_id: 1,
            dirty: BTreeSet::new(),
            voice_dirty: BTreeSet::new(),
            creations: HashMap::new(),
            max_rooms,
        }
    }

    /// How many rooms there are.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// The room `name` means (names compare like usernames).
    pub fn find(&self, name: &str) -> Option<RoomId> {
        let keys = name_keys(name);
        self.by_visual.get(&keys.visual).or_else(|| self.by_caseless.get(&keys.caseless)).copied()
    }

    /// A room.
    pub fn get(&self, id: RoomId) -> Option<&Room> {
        self.rooms.get(&id)
    }

    /// A room, to change.
    pub fn get_mut(&mut self, id: RoomId) -> Option<&mut Room> {
        self.rooms.get_mut(&id)
    }

    /// Every room.
    pub fn iter(&self) -> impl Iterator<Item = &Room> {
        self.rooms.values()
    }

    /// Whether `user` (from `ip`) may create a room now (`Err`: why not).
    /// Counts the creation when it may. Names are free, so an address has
    /// a budget too ([`CREATIONS_PER_ADDRESS`]).
    ///
    /// # Errors
    ///
    /// [`NackReason::TooManyRooms`] at `max_rooms`; [`NackReason::RateLimited`]
    /// past [`CREATIONS_PER_WINDOW`] (or the address's) in the window.
    pub fn may_create(&mut self, user: &str, ip: Option<std::net::IpAddr>, now: Instant) -> Result<(), NackReason> {
        if self.rooms.len() >= self.max_rooms {
            return Err(NackReason::TooManyRooms);
        }
        let mut keys = vec![(format!("user {}", name_keys(user).caseless), CREATIONS_PER_WINDOW)];
        if let Some(ip) = ip {
            keys.push((format!("addr {ip}"), CREATIONS_PER_ADDRESS));
        }
        for (key, limit) in &keys {
            let made = self.creations.entry(key.clone()).or_default();
            while made.front().is_some_and(|t| now.duration_since(*t) >= CREATION_WINDOW) {
                made.pop_front();
            }
            if made.len() >= *limit {
                return Err(NackReason::RateLimited);
            }
        }
        for (key, _) in keys {
            self.creations.entry(key).or_default().push_back(now);
        }
        // Forget users with nothing in the window (bounded memory).
        if self.creations.len() > 10_000 {
            self.creations.retain(|_, m| m.back().is_some_and(|t| now.duration_since(*t) < CREATION_WINDOW));
        }
        Ok(())
    }

    /// Adds a room (its name must be valid and free: see [`Self::find`]).
    pub fn insert(&mut self, new: NewRoom) -> RoomId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let keys = name_keys(&new.settings.name);
        self.by_visual.insert(keys.visual.clone(), id);
        self.by_caseless.insert(keys.caseless.clone(), id);
        let s = new.settings;
        self.rooms.insert(
            id,
            Room {
                id,
                name: s.name,
                keys,
                topic: s.topic,
                history: s.history,
                voice: s.voice,
                history_days: s.history_days,
                owner: new.owner,
                from_config: new.from_config,
                created_ms: new.created_ms,
                empty_since_ms: new.empty_since_ms,
                members: BTreeSet::new(),
                voice_members: BTreeMap::new(),
                presence: Vec::new(),
                invite_only: false,
                invited: BTreeMap::new(),
            },
        );
        id
    }

    /// Removes a room.
    pub fn remove(&mut self, id: RoomId) -> Option<Room> {
        let room = self.rooms.remove(&id)?;
        self.by_visual.remove(&room.keys.visual);
        self.by_caseless.remove(&room.keys.caseless);
        self.dirty.remove(&id);
        self.voice_dirty.remove(&id);
        Some(room)
    }

    /// Queues presence for a room's members.
    pub fn announce(&mut self, id: RoomId, encoded: Bytes) {
        if let Some(room) = self.rooms.get_mut(&id) {
            room.presence.push(encoded);
            self.dirty.insert(id);
        }
    }

    /// Notes that room `id`'s voice list changed (sent once per window).
    pub fn voice_changed(&mut self, id: RoomId) {
        if self.rooms.contains_key(&id) {
            self.voice_dirty.insert(id);
        }
    }

    /// The rooms whose voice list changed (and forgets that they had).
    pub fn take_voice_changed(&mut self) -> Vec<RoomId> {
        std::mem::take(&mut self.voice_dirty).into_iter().collect()
    }

    /// The rooms with presence to send (and forgets that they had).
    pub fn take_dirty(&mut self) -> Vec<RoomId> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// User rooms empty for at least `days` at `now_ms` (with `days` 0:
    /// every empty one).
    pub fn expired(&self, now_ms: u64, days: u32) -> Vec<RoomId> {
        let age = u64::from(days) * 86_400_000;
        self.rooms
            .values()
            .filter(|r| !r.from_config && r.members.is_empty())
            .filter(|r| r.empty_since_ms.is_some_and(|t| now_ms.saturating_sub(t) >= age))
            .map(|r| r.id)
            .collect()
    }

    /// Every room as listed to users, sorted by name; `voice_users` names
    /// the voice members of each.
    pub fn list(&self, name_of: impl Fn(SessionId) -> Option<String>) -> Vec<RoomInfo> {
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .values()
            .map(|r| RoomInfo {
                name: r.name.clone(),
                topic: r.topic.clone(),
                members: u32::try_from(r.members.len()).unwrap_or(u32::MAX),
                voice: r.voice,
                history: r.history,
                voice_users: r.voice_members.keys().take(MAX_LISTED_USERS).filter_map(|s| name_of(*s)).collect(),
            })
            .collect();
        rooms.sort_by_cached_key(|r| message::name_key(&r.name));
        rooms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str, from_config: bool, empty_since_ms: Option<u64>) -> NewRoom {
        NewRoom {
            settings: RoomConfig {
                name: name.into(),
                topic: String::new(),
                history: true,
                voice: true,
                history_days: 30,
            },
            owner: None,
            from_config,
            created_ms: 0,
            empty_since_ms,
        }
    }

    #[test]
    fn names_compare_like_usernames() {
        let mut rooms = Rooms::new(10);
        let id = rooms.insert(room("general", true, None));
        assert_eq!(rooms.find("General"), Some(id));
        assert_eq!(rooms.find("GENERAL"), Some(id));
        assert_eq!(rooms.find("genera1"), Some(id), "a look-alike is the same room");
        assert_eq!(rooms.find("random"), None);
        rooms.remove(id);
        assert_eq!(rooms.find("general"), None);
    }

    #[test]
    fn creating_is_limited_per_user_and_in_all() {
        let now = Instant::now();
        let mut rooms = Rooms::new(CREATIONS_PER_WINDOW + 2);
        for _ in 0..CREATIONS_PER_WINDOW {
            assert_eq!(rooms.may_create("alice", None, now), Ok(()));
        }
        assert_eq!(rooms.may_create("ALICE", None, now), Err(NackReason::RateLimited), "names compare caselessly");
        assert_eq!(rooms.may_create("bob", None, now), Ok(()), "others are not held back");
        assert_eq!(rooms.may_create("alice", None, now + CREATION_WINDOW), Ok(()), "the window moves on");
        // New names from one address do not get round it.
        let ip = Some(std::net::IpAddr::from([10, 0, 0, 1]));
        let mut refused = 0;
        for i in 0..CREATIONS_PER_ADDRESS + 5 {
            refused += usize::from(rooms.may_create(&format!("name{i}"), ip, now).is_err());
        }
        assert_eq!(refused, 5, "an address has a budget of its own");
        let mut small = Rooms::new(CREATIONS_PER_WINDOW + 2);
        for i in 0..CREATIONS_PER_WINDOW + 2 {
            small.insert(room(&format!("r{i}"), false, None));
        }
        assert_eq!(small.may_create("carol", None, now), Err(NackReason::TooManyRooms));
    }

    #[test]
    fn only_empty_user_rooms_expire() {
        let day = 86_400_000;
        let mut rooms = Rooms::new(10);
        let old = rooms.insert(room("old", false, Some(0)));
        let _fresh = rooms.insert(room("fresh", false, Some(6 * day)));
        let _configured = rooms.insert(room("general", true, Some(0)));
        let busy = rooms.insert(room("busy", false, None));
        if let Some(r) = rooms.get_mut(busy) {
            r.members.insert(("x".into(), 1));
        }
        assert_eq!(rooms.expired(7 * day, 7), vec![old]);
        let mut all = rooms.expired(7 * day, 0);
        all.sort_unstable();
        assert_eq!(all.len(), 2, "with 0 days every empty user room goes");
    }

    #[test]
    fn presence_goes_in_bounded_batches() {
        let mut rooms = Rooms::new(10);
        let id = rooms.insert(room("general", true, None));
        let one = Bytes::from(message::encode(&message::ServerMessage::Joined {
            user: "a".repeat(30),
            room: Some("general".into()),
        }));
        rooms.announce(id, one.clone());
        assert_eq!(rooms.take_dirty(), vec![id]);
        let Some(r) = rooms.get_mut(id) else { panic!("room") };
        assert_eq!(r.take_presence(), vec![one.clone()], "a lone event goes as itself");
        for _ in 0..2000 {
            rooms.announce(id, one.clone());
        }
        let Some(r) = rooms.get_mut(id) else { panic!("room") };
        let batches = r.take_presence();
        assert!(batches.len() > 1 && batches.iter().all(|b| b.len() <= PRESENCE_CHUNK + 64));
        let mut decoded = std::collections::VecDeque::new();
        for b in &batches {
            message::decode_server(b, &mut decoded).expect("valid batch");
        }
        assert_eq!(decoded.len(), 2000);
        assert!(r.take_presence().is_empty());
    }
}
