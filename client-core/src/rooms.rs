//! The rooms and private conversations as a front end shows them, kept
//! current from the [`Event`]s: feed every event to [`Rooms::apply`] (it
//! says whether a message is new or one already held), and read the rooms,
//! their logs, unread counts and mentions from it.
//!
//! - A room's [`Log`] is ordered by server id, stored and live messages
//!   merged; a message delivered twice (a catch-up overlapping what
//!   arrived live) is held once. Stored messages (`history`) never count as
//!   new: they are neither unread nor mentions.
//! - Our own lines are not echoed by the server: they enter the log when
//!   acknowledged ([`Event::Acked`] carries the server id), so they can be
//!   edited and deleted like any other.
//! - Private messages are [`Conversation`]s keyed by the other person's name.
//! - The current target ([`Rooms::current`]) is where plain lines go; its
//!   unread count stays at zero.
//!
//! No I/O and no GUI types: the GUI and the CLI share it.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// A name's case-insensitive key: two names (or rooms) are the same when
/// their keys are equal.
pub use protocol::message::name_key;
/// Checks a room name (the username rules, no spaces).
pub use protocol::message::validate_room_name;
use protocol::message::{MAX_LISTED_USERS, ServerId};
use protocol::moderation::{Role, RoleGrant};

use crate::client::{Event, Outgoing, Target};

/// Most lines a log keeps; the oldest go first (a GUI pages them back in
/// from history when scrolled to).
pub const MAX_LOG_LINES: usize = 10_000;

/// One message in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its server id.
    pub id: ServerId,
    /// Its sender.
    pub from: String,
    /// Its text (empty once deleted). Not sanitised: see [`crate::display`].
    pub text: String,
    /// When the server received it (for our own lines: when acknowledged).
    pub time: SystemTime,
    /// It came from history (on joining, catching up or paging).
    pub history: bool,
    /// Its sender edited it.
    pub edited: bool,
    /// Its sender deleted it.
    pub deleted: bool,
    /// It is ours.
    pub own: bool,
    /// It mentions us (`@name`).
    pub mention: bool,
}

/// The messages of a room or a conversation, in server id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    lines: BTreeMap<ServerId, Line>,
}

impl Log {
    /// The lines, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Line> {
        self.lines.values()
    }

    /// The line with this server id.
    pub fn get(&self, id: ServerId) -> Option<&Line> {
        self.lines.get(&id)
    }

    /// How many lines it holds.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The oldest id held: where paging back continues (`before`).
    pub fn oldest(&self) -> Option<ServerId> {
        self.lines.keys().next().copied()
    }

    /// The newest id held.
    pub fn newest(&self) -> Option<ServerId> {
        self.lines.keys().next_back().copied()
    }

    /// Adds a line; `false` if its id is held already.
    fn insert(&mut self, line: Line) -> bool {
        if self.lines.contains_key(&line.id) {
            return false;
        }
        self.lines.insert(line.id, line);
        while self.lines.len() > MAX_LOG_LINES {
            self.lines.pop_first();
        }
        true
    }

    fn edit(&mut self, id: ServerId, text: &str) -> bool {
        self.lines.get_mut(&id).is_some_and(|l| {
            l.text = text.to_owned();
            l.edited = true;
            true
        })
    }

    fn delete(&mut self, id: ServerId) -> bool {
        self.lines.get_mut(&id).is_some_and(|l| {
            l.text.clear();
            l.deleted = true;
            true
        })
    }
}

/// A room we are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Its name (bare, without `#`).
    pub name: String,
    /// Its topic (may be empty).
    pub topic: String,
    /// Its first members (at most [`MAX_LISTED_USERS`]), sorted
    /// case-insensitively; kept current from joins and leaves.
    pub members: Vec<String>,
    /// How many members it has.
    pub members_total: u32,
    /// Whether it has voice.
    pub voice: bool,
    /// Whether its messages are stored (and can be paged back).
    pub history: bool,
    /// Who is in its voice.
    pub voice_users: Vec<String>,
    /// Its messages.
    pub log: Log,
    /// Live messages from others since it was last read.
    pub unread: u32,
    /// Of those, the ones that mention us.
    pub mentions: u32,
    /// The server holds older messages than the oldest delivered so far
    /// (as the last delivery of older messages said).
    pub more_history: bool,
}

impl Room {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            topic: String::new(),
            members: Vec::new(),
            members_total: 0,
            voice: false,
            history: false,
            voice_users: Vec::new(),
            log: Log::default(),
            unread: 0,
            mentions: 0,
            more_history: false,
        }
    }

    /// Where the next page back starts: the oldest id held (`before`).
    pub fn oldest(&self) -> Option<ServerId> {
        self.log.oldest()
    }

    fn add_member(&mut self, user: &str) {
        let key = name_key(user);
        match self.members.binary_search_by(|m| name_key(m).cmp(&key)) {
            Ok(_) => return,
            Err(i) if i < MAX_LISTED_USERS => {
                self.members.insert(i, user.to_owned());
                self.members.truncate(MAX_LISTED_USERS);
            }
            Err(_) => {}
        }
        self.members_total = self.members_total.saturating_add(1);
    }

    fn remove_member(&mut self, user: &str) {
        let key = name_key(user);
        let before = self.members.len();
        self.members.retain(|m| name_key(m) != key);
        if self.members.len() < before || self.members.len() >= MAX_LISTED_USERS {
            self.members_total = self.members_total.saturating_sub(1);
        }
    }
}

/// Private messages with one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The other person.
    pub peer: String,
    /// The messages both ways.
    pub log: Log,
    /// Messages from them since it was last read.
    pub unread: u32,
    /// The server holds older stored messages of this conversation (as
    /// the last page said; only between two registered accounts).
    pub more_history: bool,
}

/// What [`Rooms::apply`] made of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A message new to its log: show it.
    New,
    /// A message already held (delivered again by a catch-up or a page):
    /// not to be shown again.
    Duplicate,
    /// Anything else (applied where it applies).
    Other,
}

/// Every room we are in and every conversation, with the current target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rooms {
    me: String,
    rooms: Vec<Room>,
    conversations: Vec<Conversation>,
    current: Option<Target>,
    registered: bool,
    roles: Vec<RoleGrant>,
}

/// Whether `text` mentions `me`: `@` followed by the name, compared as
/// names are ([`name_key`]), and not followed by more of a word.
pub fn mentions(text: &str, me: &str) -> bool {
    if me.is_empty() {
        return false;
    }
    let key = name_key(me);
    let len = me.chars().count();
    text.match_indices('@').any(|(i, _)| {
        let rest = &text[i + 1..];
        let end = rest.char_indices().nth(len).map_or(rest.len(), |(e, _)| e);
        let (candidate, after) = rest.split_at(end);
        candidate.chars().count() == len
            && name_key(candidate) == key
            && !after.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
    })
}

impl Rooms {
    /// Nothing yet; `current` is where lines go once we are in it (the
    /// first `--room`; `None`: the first room joined).
    pub fn new(current: Option<Target>) -> Self {
        Self { current, ..Self::default() }
    }

    /// Our name is a registered account (as the last welcome said, and
    /// since a `register` or `unregister` was done).
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// The roles our account holds (the last welcome's).
    pub fn roles(&self) -> &[RoleGrant] {
        &self.roles
    }

    /// Whether our roles let us moderate `room` (`None`: server-wide): an
    /// admin, a server-wide moderator, or that room's moderator. The server
    /// decides; this only says which actions to offer.
    pub fn may_moderate(&self, room: Option<&str>) -> bool {
        self.roles.iter().any(|g| match (g.role, &g.room, room) {
            (Role::Admin, ..) | (Role::Moderator, None, _) => true,
            (Role::Moderator, Some(own), Some(room)) => name_key(own) == name_key(room),
            (Role::Moderator, Some(_), None) => false,
        })
    }

    /// Our name (empty before the first [`Event::Connected`]).
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Sets our name (what [`Event::Connected`] does), for mentions and
    /// for telling our own lines apart.
    pub fn set_me(&mut self, me: impl Into<String>) {
        self.me = me.into();
    }

    /// The rooms we are in, in the order we joined them.
    pub fn rooms(&self) -> &[Room] {
        &self.rooms
    }

    /// A room we are in (`#` or not, compared as names are).
    pub fn room(&self, name: &str) -> Option<&Room> {
        self.index(name).map(|i| &self.rooms[i])
    }

    /// The private conversations, in the order they started.
    pub fn conversations(&self) -> &[Conversation] {
        &self.conversations
    }

    /// The conversation with `peer`.
    pub fn conversation(&self, peer: &str) -> Option<&Conversation> {
        let key = name_key(peer);
        self.conversations.iter().find(|c| name_key(&c.peer) == key)
    }

    /// Where plain lines go.
    pub fn current(&self) -> Option<&Target> {
        self.current.as_ref()
    }

    /// Makes `target` where plain lines go, and marks it read.
    pub fn set_current(&mut self, target: Target) {
        self.mark_read(&target);
        self.current = Some(target);
    }

    /// Clears a room's or conversation's unread count and mentions.
    pub fn mark_read(&mut self, target: &Target) {
        match target {
            Target::Room(r) => {
                if let Some(i) = self.index(r) {
                    self.rooms[i].unread = 0;
                    self.rooms[i].mentions = 0;
                }
            }
            Target::User(u) => {
                if let Some(c) = self.conversation_mut(u, false) {
                    c.unread = 0;
                }
            }
        }
    }

    /// Our latest message (not deleted) in `target`'s log, for `/edit
    /// TEXT` and `/delete` without an id.
    pub fn last_own(&self, target: &Target) -> Option<ServerId> {
        let log = match target {
            Target::Room(name) => &self.room(name)?.log,
            Target::User(peer) => &self.conversation(peer)?.log,
        };
        log.iter().rev().find(|l| l.own && !l.deleted).map(|l| l.id)
    }

    /// Whether `text` mentions us.
    pub fn mentions_me(&self, text: &str) -> bool {
        mentions(text, &self.me)
    }

    fn index(&self, name: &str) -> Option<usize> {
        let name = protocol::message::bare_room(name);
        let key = name_key(name);
        self.rooms.iter().position(|r| r.name == name || name_key(&r.name) == key)
    }

    fn is_me(&self, name: &str) -> bool {
        name == self.me || name_key(name) == name_key(&self.me)
    }

    fn is_current(&self, target: &Target) -> bool {
        match (&self.current, target) {
            (Some(Target::Room(a)), Target::Room(b)) => name_key(a) == name_key(b),
            (Some(Target::User(a)), Target::User(b)) => name_key(a) == name_key(b),
            _ => false,
        }
    }

    fn conversation_mut(&mut self, peer: &str, create: bool) -> Option<&mut Conversation> {
        let key = name_key(peer);
        match self.conversations.iter().position(|c| name_key(&c.peer) == key) {
            Some(i) => Some(&mut self.conversations[i]),
            None if create => {
                self.conversations.push(Conversation {
                    peer: peer.to_owned(),
                    log: Log::default(),
                    unread: 0,
                    more_history: false,
                });
                self.conversations.last_mut()
            }
            None => None,
        }
    }

    /// The log of a room or of the conversation with `peer`.
    fn log_mut(&mut self, target: &Target, create: bool) -> Option<&mut Log> {
        match target {
            Target::Room(r) => self.index(r).map(|i| &mut self.rooms[i].log),
            Target::User(u) => self.conversation_mut(u, create).map(|c| &mut c.log),
        }
    }

    /// Where a message (or its edit) belongs: its room, or the
    /// conversation with whoever is not us.
    fn target_of(&self, room: Option<&String>, from: &str, to: Option<&String>) -> Target {
        match (room, to) {
            (Some(r), _) => Target::Room(r.clone()),
            (None, Some(to)) if self.is_me(from) => Target::User(to.clone()),
            _ => Target::User(from.to_owned()),
        }
    }

    /// The first room, as the place lines go once the current one is gone.
    fn fallback(&self) -> Option<Target> {
        self.rooms.first().map(|r| Target::Room(r.name.clone()))
    }

    fn left(&mut self, room: &str) {
        if let Some(i) = self.index(room) {
            self.rooms.remove(i);
        }
        if self.is_current(&Target::Room(room.to_owned())) {
            self.current = self.fallback();
        }
    }

    /// Applies an event; says whether a message is new.
    pub fn apply(&mut self, event: &Event) -> Applied {
        match event {
            Event::Connected { me, rooms, registered, roles, .. } => {
                self.me.clone_from(me);
                self.registered = *registered;
                self.roles.clone_from(roles);
                // After a reconnection: rooms gone meanwhile are left.
                let keys: Vec<String> = rooms.iter().map(|r| name_key(r)).collect();
                let gone: Vec<String> =
                    self.rooms.iter().filter(|r| !keys.contains(&name_key(&r.name))).map(|r| r.name.clone()).collect();
                for r in gone {
                    self.left(&r);
                }
            }
            Event::RoomJoined { room, topic, users, users_total, voice, history } => {
                let i = self.index(room).unwrap_or_else(|| {
                    self.rooms.push(Room::new(room));
                    self.rooms.len() - 1
                });
                let r = &mut self.rooms[i];
                r.name.clone_from(room);
                r.topic.clone_from(topic);
                r.members.clone_from(users);
                r.members_total = *users_total;
                r.voice = *voice;
                r.history = *history;
                if self.current.is_none() {
                    self.current = Some(Target::Room(room.clone()));
                }
            }
            Event::JoinRefused { room, .. }
                if self.is_current(&Target::Room(room.clone())) && self.index(room).is_none() =>
            {
                self.current = self.fallback();
            }
            Event::RoomLeft { room } => self.left(room),
            Event::Joined { user, room: Some(room) } => {
                if let Some(i) = self.index(room) {
                    self.rooms[i].add_member(user);
                }
            }
            Event::Left { user, room } => match room {
                Some(room) => {
                    if let Some(i) = self.index(room) {
                        self.rooms[i].remove_member(user);
                    }
                }
                None => self.rooms.iter_mut().for_each(|r| r.remove_member(user)),
            },
            Event::Users { room: Some(room), users, total } => {
                if let Some(i) = self.index(room) {
                    self.rooms[i].members.clone_from(users);
                    self.rooms[i].members_total = *total;
                }
            }
            Event::VoiceUsers { room, users } => {
                if let Some(i) = self.index(room) {
                    self.rooms[i].voice_users.clone_from(users);
                }
            }
            Event::Topic { room, topic, .. } => {
                if let Some(i) = self.index(room) {
                    self.rooms[i].topic.clone_from(topic);
                }
            }
            Event::Done { action, .. } if action == "register" => self.registered = true,
            Event::Done { action, .. } if action == "unregister" => self.registered = false,
            Event::PrivateHistoryEnd { with, more } => {
                if let Some(c) = self.conversation_mut(with, false) {
                    c.more_history = *more;
                }
            }
            Event::HistoryEnd { room, more, older: true } => {
                if let Some(i) = self.index(room) {
                    self.rooms[i].more_history = *more;
                }
            }
            Event::Message { id, from, text, time, room, to, history, edited } => {
                let target = self.target_of(room.as_ref(), from, to.as_ref());
                let own = self.is_me(from);
                let mention = !own && self.mentions_me(text);
                let line = Line {
                    id: *id,
                    from: from.clone(),
                    text: text.clone(),
                    time: *time,
                    history: *history,
                    edited: *edited,
                    deleted: false,
                    own,
                    mention,
                };
                let counts = !history && !own && !self.is_current(&target);
                let Some(log) = self.log_mut(&target, true) else { return Applied::Other };
                if !log.insert(line) {
                    return Applied::Duplicate;
                }
                if counts {
                    self.count_unread(&target, mention);
                }
                return Applied::New;
            }
            Event::Acked { server_id: Some(id), sent: Some(Outgoing::Chat { text, target }), .. } => {
                let Some(target) = target.clone().or_else(|| self.current.clone()) else { return Applied::Other };
                let line = Line {
                    id: *id,
                    from: self.me.clone(),
                    text: text.clone(),
                    time: SystemTime::now(),
                    history: false,
                    edited: false,
                    deleted: false,
                    own: true,
                    mention: false,
                };
                if let Some(log) = self.log_mut(&target, true) {
                    log.insert(line);
                }
            }
            Event::Edited { id, room, to, from, text } => {
                let target = self.target_of(room.as_ref(), from, to.as_ref());
                if let Some(log) = self.log_mut(&target, false)
                    && log.edit(*id, text)
                {
                    return Applied::Other;
                }
                // A private message's edit names only its recipient: look
                // everywhere.
                self.conversations.iter_mut().any(|c| c.log.edit(*id, text));
            }
            Event::Deleted { id, room, .. } => match room {
                Some(r) => {
                    if let Some(i) = self.index(r) {
                        self.rooms[i].log.delete(*id);
                    }
                }
                None => {
                    self.conversations.iter_mut().any(|c| c.log.delete(*id));
                }
            },
            _ => {}
        }
        Applied::Other
    }

    fn count_unread(&mut self, target: &Target, mention: bool) {
        match target {
            Target::Room(r) => {
                if let Some(i) = self.index(r) {
                    let room = &mut self.rooms[i];
                    room.unread = room.unread.saturating_add(1);
                    room.mentions = room.mentions.saturating_add(u32::from(mention));
                }
            }
            Target::User(u) => {
                if let Some(c) = self.conversation_mut(u, false) {
                    c.unread = c.unread.saturating_add(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn connected(me: &str, rooms: &[&str]) -> Event {
        Event::Connected {
            me: me.into(),
            users: vec![me.into()],
            users_total: 1,
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            fingerprint: protocol::crypto::Fingerprint::of_der(b"test"),
            trust: crate::Trust::Known,
            limits: protocol::message::Limits {
                max_message_bytes: 4096,
                rate_per_sec: 10,
                burst: 5,
                keepalive_secs: 30,
                idle_timeout_secs: 90,
            },
            registered: false,
            roles: Vec::new(),
        }
    }

    fn joined(room: &str, users: &[&str]) -> Event {
        Event::RoomJoined {
            room: room.into(),
            topic: format!("about {room}"),
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            users_total: users.len() as u32,
            voice: true,
            history: true,
        }
    }

    fn msg(id: u64, from: &str, text: &str, room: Option<&str>, history: bool) -> Event {
        Event::Message {
            id,
            from: from.into(),
            text: text.into(),
            time: UNIX_EPOCH + Duration::from_secs(id),
            room: room.map(Into::into),
            to: if room.is_none() { Some("me".into()) } else { None },
            history,
            edited: false,
        }
    }

    fn ids(log: &Log) -> Vec<u64> {
        log.iter().map(|l| l.id).collect()
    }

    fn state() -> Rooms {
        let mut s = Rooms::new(None);
        s.apply(&connected("me", &["general"]));
        s.apply(&joined("general", &["ann", "me"]));
        s.apply(&joined("dev", &["me"]));
        s
    }

    #[test]
    fn history_and_live_merge_by_id_and_duplicates_are_held_once() {
        let mut s = state();
        assert_eq!(s.current(), Some(&Target::Room("general".into())), "the first room joined");
        assert_eq!(s.apply(&msg(5, "ann", "live", Some("general"), false)), Applied::New);
        assert_eq!(s.apply(&msg(3, "ann", "old", Some("general"), true)), Applied::New);
        assert_eq!(s.apply(&msg(4, "ann", "older", Some("general"), true)), Applied::New);
        // A catch-up overlapping what came live.
        assert_eq!(s.apply(&msg(5, "ann", "live", Some("general"), true)), Applied::Duplicate);
        let room = s.room("#general").expect("in it");
        assert_eq!(ids(&room.log), vec![3, 4, 5]);
        assert!(!room.log.get(5).expect("held").history, "the live copy stays");
        assert_eq!(room.oldest(), Some(3));
        assert_eq!(room.topic, "about general");
        assert!(s.room("dev").expect("in it").log.is_empty(), "rooms are apart");
    }

    #[test]
    fn unread_and_mentions_count_live_messages_from_others_elsewhere() {
        let mut s = state();
        s.apply(&msg(1, "ann", "hi @ME, look", Some("dev"), false));
        s.apply(&msg(2, "ann", "plain", Some("dev"), false));
        s.apply(&msg(3, "ann", "stored @me", Some("dev"), true));
        s.apply(&msg(4, "me", "my own @me", Some("dev"), false));
        s.apply(&msg(5, "ann", "here @me", Some("general"), false));
        let dev = s.room("dev").expect("in it");
        assert_eq!((dev.unread, dev.mentions), (2, 1));
        assert!(dev.log.get(1).expect("held").mention && !dev.log.get(2).expect("held").mention);
        let general = s.room("general").expect("in it");
        assert_eq!((general.unread, general.mentions), (0, 0), "the current room is being read");
        assert!(general.log.get(5).expect("held").mention, "still highlighted");
        s.set_current(Target::Room("dev".into()));
        let dev = s.room("dev").expect("in it");
        assert_eq!((dev.unread, dev.mentions), (0, 0));
    }

    #[test]
    fn mentions_match_whole_names_case_insensitively() {
        assert!(mentions("hey @Bob!", "bob"));
        assert!(mentions("@BOB", "bob"));
        assert!(mentions("cc @Bart F, please", "Bart F"));
        assert!(!mentions("hey @bobby", "bob"));
        assert!(!mentions("mail bob@example.org", "bob"));
        assert!(!mentions("hey bob", "bob"));
        assert!(!mentions("@", "bob"));
    }

    #[test]
    fn own_lines_enter_the_log_when_acknowledged_and_edits_and_deletes_apply() {
        let mut s = state();
        let sent = Outgoing::Chat { text: "mine".into(), target: Some(Target::Room("dev".into())) };
        s.apply(&Event::Acked { id: 1, server_id: Some(9), sent: Some(sent) });
        let line = s.room("dev").expect("in it").log.get(9).expect("recorded").clone();
        assert!(line.own && line.from == "me" && line.text == "mine");
        // Our own line coming back in a catch-up is not new.
        assert_eq!(s.apply(&msg(9, "me", "mine", Some("dev"), true)), Applied::Duplicate);
        s.apply(&Event::Edited {
            id: 9,
            room: Some("dev".into()),
            to: None,
            from: "me".into(),
            text: "mine, fixed".into(),
        });
        let line = s.room("dev").expect("in it").log.get(9).expect("held").clone();
        assert!(line.edited && line.text == "mine, fixed");
        s.apply(&Event::Deleted { id: 9, room: Some("dev".into()), to: None });
        let line = s.room("dev").expect("in it").log.get(9).expect("a tombstone").clone();
        assert!(line.deleted && line.text.is_empty());
        assert_eq!(s.room("dev").expect("in it").unread, 0, "our own lines are never unread");
    }

    #[test]
    fn private_messages_are_conversations_keyed_by_the_other_person() {
        let mut s = state();
        assert_eq!(s.apply(&msg(7, "Ann", "psst", None, false)), Applied::New);
        let sent = Outgoing::Chat { text: "yes?".into(), target: Some(Target::User("ann".into())) };
        s.apply(&Event::Acked { id: 2, server_id: Some(8), sent: Some(sent) });
        assert_eq!(s.conversations().len(), 1);
        let c = s.conversation("ANN").expect("one conversation");
        assert_eq!(ids(&c.log), vec![7, 8]);
        assert_eq!(c.unread, 1);
        s.apply(&Event::Edited { id: 7, room: None, to: Some("me".into()), from: "Ann".into(), text: "hm".into() });
        s.apply(&Event::Deleted { id: 8, room: None, to: Some("ann".into()) });
        let c = s.conversation("ann").expect("one conversation");
        assert_eq!(c.log.get(7).map(|l| l.text.as_str()), Some("hm"));
        assert!(c.log.get(8).is_some_and(|l| l.deleted));
        s.set_current(Target::User("ann".into()));
        assert_eq!(s.conversation("ann").expect("held").unread, 0);
        assert!(s.room("general").expect("in it").log.is_empty(), "not in any room");
    }

    #[test]
    fn members_follow_joins_and_leaves_and_parting_moves_the_current_room() {
        let mut s = state();
        s.apply(&Event::Joined { user: "bob".into(), room: Some("general".into()) });
        s.apply(&Event::Joined { user: "bob".into(), room: Some("general".into()) });
        s.apply(&Event::Left { user: "ann".into(), room: Some("general".into()) });
        s.apply(&Event::Joined { user: "cy".into(), room: Some("nowhere".into()) });
        let g = s.room("general").expect("in it");
        assert_eq!((g.members.clone(), g.members_total), (vec!["bob".to_owned(), "me".to_owned()], 2));
        s.apply(&Event::VoiceUsers { room: "general".into(), users: vec!["bob".into()] });
        assert_eq!(s.room("general").expect("in it").voice_users, vec!["bob".to_owned()]);
        s.apply(&Event::RoomLeft { room: "general".into() });
        assert!(s.room("general").is_none());
        assert_eq!(s.current(), Some(&Target::Room("dev".into())));
        // A room asked for as current and refused gives way too.
        let mut s = Rooms::new(Some(Target::Room("secret".into())));
        s.apply(&connected("me", &["general"]));
        s.apply(&joined("general", &["me"]));
        assert_eq!(s.current(), Some(&Target::Room("secret".into())), "kept until it is answered");
        s.apply(&Event::JoinRefused {
            room: "secret".into(),
            reason: protocol::message::NackReason::NoSuchRoom,
            detail: String::new(),
        });
        assert_eq!(s.current(), Some(&Target::Room("general".into())));
    }

    #[test]
    fn a_reconnection_keeps_the_logs_of_rooms_still_joined() {
        let mut s = state();
        s.apply(&msg(1, "ann", "before", Some("general"), false));
        s.apply(&connected("me", &["general"]));
        assert_eq!(s.room("general").expect("in it").log.len(), 1);
        assert!(s.room("dev").is_none(), "gone while we were away");
        s.apply(&Event::HistoryEnd { room: "general".into(), more: true, older: true });
        assert!(s.room("general").expect("in it").more_history);
        s.apply(&Event::HistoryEnd { room: "general".into(), more: false, older: false });
        assert!(s.room("general").expect("in it").more_history, "a catch-up says nothing of older ones");
    }

    #[test]
    fn roles_say_where_we_moderate_and_topics_and_registration_follow_events() {
        let mut s = Rooms::new(None);
        s.apply(&connected("me", &["general", "dev"]));
        s.apply(&joined("dev", &["me"]));
        assert!(!s.registered() && !s.may_moderate(Some("dev")) && !s.may_moderate(None));
        s.apply(&Event::Done { action: "register".into(), detail: "ok".into() });
        assert!(s.registered());
        s.apply(&Event::Topic { room: "DEV".into(), topic: "ship it".into(), by: "ann".into() });
        assert_eq!(s.room("dev").map(|r| r.topic.as_str()), Some("ship it"));
        let Event::Connected { me, users, users_total, rooms, fingerprint, trust, limits, .. } =
            connected("me", &["general", "dev"])
        else {
            unreachable!("built above")
        };
        let with_roles = |roles| Event::Connected {
            me: me.clone(),
            users: users.clone(),
            users_total,
            rooms: rooms.clone(),
            fingerprint,
            trust,
            limits,
            registered: true,
            roles,
        };
        s.apply(&with_roles(vec![RoleGrant { role: Role::Moderator, room: Some("Dev".into()) }]));
        assert!(s.may_moderate(Some("dev")));
        assert!(!s.may_moderate(Some("general")) && !s.may_moderate(None), "a room moderator's reach is the room");
        s.apply(&with_roles(vec![RoleGrant { role: Role::Admin, room: None }]));
        assert!(s.may_moderate(Some("general")) && s.may_moderate(None));
        s.apply(&Event::Done { action: "unregister".into(), detail: "ok".into() });
        assert!(!s.registered());
    }
}
