//! The rooms a connection is in, as the connection task keeps them across
//! reconnections: what to ask for at the next login (each room with the
//! newest id seen in it, so the gap of an outage is delivered), the joins
//! not answered yet, and the deliveries of stored messages under way
//! (catching up pages on until the gap is closed).
//!
//! Sans-IO: the session feeds it what the server says and sends what it
//! returns. The logs themselves are the front end's ([`crate::rooms`]).

use std::collections::{HashMap, VecDeque};

use protocol::message::{ClientMessage, MAX_HISTORY_PAGE, RoomJoin, ServerId, name_key};

/// Most pages a catch-up asks for in a row (10,000 messages): beyond, the
/// rest of the gap is left to paging on request.
pub(crate) const MAX_CATCHUP_PAGES: u32 = 20;

/// What a delivery of stored messages is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The newest messages (joining without `after`, or paging from the top).
    Newest,
    /// A page the user asked for (the newest, or older ones with `before`):
    /// it never moves where a catch-up resumes.
    Page,
    /// What followed the newest id seen (after a reconnection).
    CatchUp,
}

/// One room we are in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Joined {
    /// Its name, as the server spells it.
    name: String,
    /// Every message up to this id has been delivered to us (history and
    /// live merged): where a catch-up resumes.
    newest: Option<ServerId>,
    /// The newest live message seen while a catch-up is under way (it
    /// counts once the gap below it is closed).
    live_max: Option<ServerId>,
    /// Deliveries of stored messages asked for and not ended yet, in order.
    deliveries: VecDeque<Delivery>,
    /// Catch-up pages asked for in a row.
    pages: u32,
}

impl Joined {
    fn new(name: String) -> Self {
        Self { name, newest: None, live_max: None, deliveries: VecDeque::new(), pages: 0 }
    }

    fn catching_up(&self) -> bool {
        self.deliveries.front() == Some(&Delivery::CatchUp)
    }
}

/// What to do after a `history_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing more.
    Done,
    /// Ask for the next catch-up page.
    Ask(ClientMessage),
    /// The gap is longer than [`MAX_CATCHUP_PAGES`]: given up on.
    GaveUp(String),
}

/// The rooms of a connection and of the connections after it.
#[derive(Debug, Default)]
pub(crate) struct RoomBook {
    /// The rooms we are in, in the order we joined them.
    rooms: Vec<Joined>,
    /// Rooms asked for and not answered yet (asked again after a
    /// reconnection).
    joining: Vec<String>,
    /// What each join (or login room) asked for, by room key.
    intents: HashMap<String, Delivery>,
    /// A login has succeeded: the next one names its rooms.
    logged_in: bool,
    /// Stored messages a join asks for (`None`: the server's default).
    history: Option<u32>,
}

/// A room name as typed or shown: one leading `#` dropped.
pub(crate) use protocol::message::bare_room as bare;

impl RoomBook {
    /// A book whose joins ask for `history` stored messages, with `rooms`
    /// to join after the first login.
    pub(crate) fn new(history: Option<u32>, rooms: &[String]) -> Self {
        let mut book = Self { history, ..Self::default() };
        for r in rooms {
            book.want(bare(r));
        }
        book
    }

    fn index(&self, room: &str) -> Option<usize> {
        let key = name_key(room);
        self.rooms.iter().position(|r| r.name == room || name_key(&r.name) == key)
    }

    fn room_mut(&mut self, room: &str) -> Option<&mut Joined> {
        self.index(room).map(|i| &mut self.rooms[i])
    }

    fn want(&mut self, room: &str) -> bool {
        let key = name_key(room);
        if self.index(room).is_some() || self.joining.iter().any(|j| name_key(j) == key) {
            return false;
        }
        self.joining.push(room.to_owned());
        true
    }

    /// The `rooms` and `history` of the next login: `None` the first time
    /// (the server's default rooms); then every room we are in, each with
    /// the newest id seen there.
    pub(crate) fn login(&mut self) -> (Option<Vec<RoomJoin>>, Option<u32>) {
        if !self.logged_in {
            return (None, self.history);
        }
        let rooms = self
            .rooms
            .iter()
            .map(|r| {
                let intent = if r.newest.is_some() { Delivery::CatchUp } else { Delivery::Newest };
                self.intents.insert(name_key(&r.name), intent);
                RoomJoin { room: r.name.clone(), after: r.newest }
            })
            .collect();
        (Some(rooms), self.history)
    }

    /// Logged in, in `rooms` (the welcome's): rooms we thought we were in
    /// and are not are forgotten, deliveries under way ended. Returns the
    /// joins still to ask for.
    pub(crate) fn on_welcome(&mut self, rooms: &[String]) -> Vec<ClientMessage> {
        self.logged_in = true;
        let keys: Vec<String> = rooms.iter().map(|r| name_key(r)).collect();
        self.rooms.retain(|r| keys.contains(&name_key(&r.name)));
        for r in &mut self.rooms {
            r.deliveries.clear();
            r.pages = 0;
            // A catch-up cut short leaves the gap below its live messages
            // open: `newest` stays where it was.
            r.live_max = None;
        }
        // Rooms the login put us in already need no join.
        let joining = std::mem::take(&mut self.joining);
        joining.into_iter().filter(|r| !keys.contains(&name_key(r))).filter_map(|room| self.join(&room)).collect()
    }

    /// The user asks to join `room`: the message to send, unless we are in
    /// it or joining it already.
    pub(crate) fn join(&mut self, room: &str) -> Option<ClientMessage> {
        let room = bare(room);
        if !self.want(room) {
            return None;
        }
        self.intents.insert(name_key(room), Delivery::Newest);
        Some(ClientMessage::Join { join: RoomJoin { room: room.to_owned(), after: None }, history: self.history })
    }

    /// The user leaves `room`: it is not joined again after a reconnection.
    pub(crate) fn part(&mut self, room: &str) {
        let key = name_key(bare(room));
        self.joining.retain(|j| name_key(j) != key);
        self.rooms.retain(|r| name_key(&r.name) != key);
    }

    /// We are in `room`; its delivery of stored messages follows (ended by
    /// a `history_end` even where it stores none). Whether we had asked to
    /// join it (not a room of the login).
    pub(crate) fn on_room_joined(&mut self, room: &str) -> bool {
        let key = name_key(room);
        let asked = self.joining.len();
        self.joining.retain(|j| name_key(j) != key);
        let asked = asked != self.joining.len();
        let intent = self.intents.remove(&key).unwrap_or(Delivery::Newest);
        let i = match self.index(room) {
            Some(i) => i,
            None => {
                self.rooms.push(Joined::new(room.to_owned()));
                self.rooms.len() - 1
            }
        };
        let r = &mut self.rooms[i];
        r.name = room.to_owned();
        r.deliveries.clear();
        r.pages = 0;
        r.deliveries.push_back(intent);
        asked
    }

    /// A join was refused (or we left the room, or it went away): whether
    /// we were joining it.
    pub(crate) fn on_gone(&mut self, room: &str) -> bool {
        let key = name_key(bare(room));
        let joining = self.joining.iter().any(|j| name_key(j) == key);
        self.part(room);
        self.intents.remove(&key);
        joining
    }

    /// A message `id` in `room` (stored, or live; our own acknowledged
    /// ones count as live).
    pub(crate) fn on_message(&mut self, room: &str, id: ServerId, history: bool) {
        let Some(r) = self.room_mut(room) else { return };
        if r.catching_up() && !history {
            r.live_max = r.live_max.max(Some(id));
        } else if !history || r.deliveries.front() != Some(&Delivery::Page) {
            r.newest = r.newest.max(Some(id));
        }
    }

    /// A page of stored messages was asked for.
    pub(crate) fn on_history_asked(&mut self, room: &str) {
        if let Some(r) = self.room_mut(room) {
            r.deliveries.push_back(Delivery::Page);
        }
    }

    /// A delivery of `room` ended; `more`: the server holds more. Returns
    /// what ended (if we knew of it) and what to do next.
    pub(crate) fn on_history_end(&mut self, room: &str, more: bool) -> (Option<Delivery>, Next) {
        let Some(r) = self.room_mut(room) else { return (None, Next::Done) };
        let ended = r.deliveries.pop_front();
        if ended != Some(Delivery::CatchUp) {
            return (ended, Next::Done);
        }
        let live = r.live_max.take();
        if !more {
            r.newest = r.newest.max(live);
            r.pages = 0;
            return (ended, Next::Done);
        }
        if r.pages >= MAX_CATCHUP_PAGES {
            r.newest = r.newest.max(live);
            r.pages = 0;
            let why =
                format!("#{}: more was said while you were away than is fetched at once; /history pages back", r.name);
            return (ended, Next::GaveUp(why));
        }
        r.pages += 1;
        r.live_max = live;
        r.deliveries.push_front(Delivery::CatchUp);
        let ask = ClientMessage::History {
            room: Some(r.name.clone()),
            with: None,
            before: None,
            after: r.newest,
            limit: MAX_HISTORY_PAGE,
        };
        (ended, Next::Ask(ask))
    }

    /// The rooms we are in, in join order.
    #[cfg(test)]
    pub(crate) fn names(&self) -> Vec<&str> {
        self.rooms.iter().map(|r| r.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome(book: &mut RoomBook, rooms: &[&str]) -> Vec<ClientMessage> {
        let rooms: Vec<String> = rooms.iter().map(|r| (*r).to_owned()).collect();
        book.on_welcome(&rooms)
    }

    #[test]
    fn the_first_login_takes_the_defaults_and_then_the_rooms_asked_for() {
        let mut book = RoomBook::new(Some(0), &["#dev".into(), "ops".into(), "dev".into(), "General".into()]);
        assert_eq!(book.login(), (None, Some(0)));
        let joins = welcome(&mut book, &["general"]);
        assert_eq!(
            joins,
            vec![
                ClientMessage::Join { join: RoomJoin { room: "dev".into(), after: None }, history: Some(0) },
                ClientMessage::Join { join: RoomJoin { room: "ops".into(), after: None }, history: Some(0) },
            ]
        );
        assert!(!book.on_room_joined("general"), "a login room needs no join");
        assert!(book.on_room_joined("dev"));
        assert_eq!(book.join("DEV"), None, "already in it");
        assert!(book.on_gone("ops"), "refused");
        assert_eq!(book.names(), vec!["general", "dev"]);
    }

    #[test]
    fn a_reconnection_names_each_room_with_the_newest_id_seen() {
        let mut book = RoomBook::new(None, &[]);
        welcome(&mut book, &["general", "quiet"]);
        book.on_room_joined("general");
        book.on_room_joined("quiet");
        book.on_message("general", 7, true);
        book.on_message("general", 5, true);
        assert_eq!(book.on_history_end("general", false), (Some(Delivery::Newest), Next::Done));
        book.on_message("general", 9, false);
        let (rooms, history) = book.login();
        assert_eq!(history, None);
        assert_eq!(
            rooms,
            Some(vec![
                RoomJoin { room: "general".into(), after: Some(9) },
                RoomJoin { room: "quiet".into(), after: None },
            ])
        );
        // A room gone while we were away is forgotten.
        welcome(&mut book, &["general"]);
        assert_eq!(book.names(), vec!["general"]);
    }

    #[test]
    fn catching_up_pages_on_from_the_last_stored_id_not_the_live_ones() {
        let mut book = RoomBook::new(None, &[]);
        welcome(&mut book, &["general"]);
        book.on_room_joined("general");
        book.on_message("general", 10, false);
        let _ = book.login();
        welcome(&mut book, &["general"]);
        book.on_room_joined("general");
        // The gap 11..=30 comes in pages; live messages arrive meanwhile.
        book.on_message("general", 11, true);
        book.on_message("general", 40, false);
        book.on_message("general", 20, true);
        let (ended, next) = book.on_history_end("general", true);
        assert_eq!(ended, Some(Delivery::CatchUp));
        assert_eq!(
            next,
            Next::Ask(ClientMessage::History {
                room: Some("general".into()),
                with: None,
                before: None,
                after: Some(20),
                limit: MAX_HISTORY_PAGE
            })
        );
        // Cut off here, the next login resumes at 20, not 40.
        assert_eq!(book.login().0, Some(vec![RoomJoin { room: "general".into(), after: Some(20) }]));
        // (Not cut off: the last page closes the gap.)
        book.on_message("general", 30, true);
        assert_eq!(book.on_history_end("general", false), (Some(Delivery::CatchUp), Next::Done));
        assert_eq!(book.login().0, Some(vec![RoomJoin { room: "general".into(), after: Some(40) }]));
    }

    #[test]
    fn a_catch_up_gives_up_after_the_page_limit() {
        let mut book = RoomBook::new(None, &[]);
        welcome(&mut book, &["g"]);
        book.on_room_joined("g");
        book.on_message("g", 1, false);
        let _ = book.login();
        welcome(&mut book, &["g"]);
        book.on_room_joined("g");
        for page in 0..MAX_CATCHUP_PAGES {
            book.on_message("g", u64::from(page) + 2, true);
            assert!(matches!(book.on_history_end("g", true).1, Next::Ask(_)), "page {page}");
        }
        assert!(matches!(book.on_history_end("g", true).1, Next::GaveUp(_)));
        assert_eq!(book.on_history_end("g", true), (None, Next::Done), "nothing under way any more");
    }

    #[test]
    fn paging_back_does_not_move_the_newest_id_and_parting_forgets_the_room() {
        let mut book = RoomBook::new(None, &[]);
        welcome(&mut book, &["g", "h"]);
        book.on_room_joined("g");
        book.on_room_joined("h");
        assert_eq!(book.on_history_end("g", false), (Some(Delivery::Newest), Next::Done), "ended even without history");
        book.on_message("h", 50, true);
        book.on_history_end("h", true);
        book.on_history_asked("h");
        book.on_message("h", 3, true);
        assert_eq!(book.on_history_end("h", false), (Some(Delivery::Page), Next::Done));
        book.part("#g");
        assert_eq!(book.login().0, Some(vec![RoomJoin { room: "h".into(), after: Some(50) }]));
    }
}
