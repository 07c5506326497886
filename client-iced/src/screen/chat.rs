//! The chat screen: the room list (rooms and private conversations, with
//! unread counts and each room's voice members), the log of the current
//! room, the input, the user and voice lists, the voice bar, and the
//! connection-lost banner.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::SystemTime;

use client_core::command;
use client_core::display::escape_line;
use client_core::rooms::{Applied, Rooms, name_key, validate_room_name};
use client_core::voice::VoiceStats;
use client_core::{
    Action as Moderation, AuditEntry, BanEntry, Event, Fingerprint, MessageId, Secret, ServerId, Target,
    check_account_password,
};
use iced::widget::{
    button, column, container, progress_bar, row, scrollable, slider, space, text, text_input, toggler, tooltip,
};
use iced::{Alignment, Element, Fill};

use super::account;
use crate::style;

/// Id of the message input.
pub const INPUT: &str = "message";
/// Id of the log's scrollable.
pub const LOG: &str = "log";
/// Id of the room-name field of the room list ("+ Join room").
pub const JOIN: &str = "join-room";
/// Messages asked for per page of history.
pub const PAGE: u32 = 50;
/// Scrolled to within this many pixels of the log's top, the next page of
/// history is asked for.
pub const NEAR_TOP: f32 = 24.0;
/// Entries kept in the log; older ones are dropped.
pub const LOG_LIMIT: usize = 2000;
/// Id of the register form's first password field.
pub const REGISTER_PASSWORD: &str = "register-password";
/// Id of the register form's confirmation field.
pub const REGISTER_CONFIRM: &str = "register-confirm";
/// Id of the reason field of a member's moderation actions.
pub const MOD_REASON: &str = "moderation-reason";

/// The "Register this name" form: the account password, twice.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Register {
    /// The password.
    pub password: String,
    /// The same again.
    pub confirm: String,
    /// Why the last try did not work (ours or the server's words).
    pub error: Option<String>,
    /// Sent; waiting for the server's answer.
    pub waiting: bool,
}

impl std::fmt::Debug for Register {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Register").field("error", &self.error).field("waiting", &self.waiting).finish_non_exhaustive()
    }
}

/// A member's moderation actions, open: whom, and the reason typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moderating {
    /// The member.
    pub name: String,
    /// The reason (optional).
    pub reason: String,
}

/// What a moderator does to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sanction {
    /// Disconnect them.
    Kick,
    /// Ban their name until unbanned.
    Ban,
    /// Mute them in the current room (everywhere outside a room).
    Mute,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Local time, `HH:MM`.
    pub time: String,
    /// What it is.
    pub kind: Kind,
    /// The room or conversation it belongs to (`None`: shown everywhere).
    pub place: Option<Target>,
}

/// Kinds of log lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A chat message.
    Chat {
        /// Sender.
        from: String,
        /// Text, made safe to show.
        text: String,
        /// Ours, typed here, with its delivery state.
        own: Option<(Own, Delivery)>,
        /// Its server id, once known (ours: when acknowledged).
        id: Option<ServerId>,
        /// We sent it (typed here or, from history, earlier): it can be
        /// edited and deleted once it has a server id.
        mine: bool,
        /// It came from history (joining, catching up, paging): shown muted,
        /// never counted as new.
        history: bool,
        /// Its sender edited it.
        edited: bool,
        /// Its sender deleted it: shown as "message deleted".
        deleted: bool,
    },
    /// Join, leave, voice changes and server notices.
    Notice(String),
    /// Something went wrong.
    Error(String),
}

/// Which of our messages a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Own {
    /// Being queued; numbered locally.
    Local(u64),
    /// Queued with this id.
    Id(MessageId),
}

/// Where one of our messages stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Sent, not yet acknowledged.
    Pending,
    /// The server handed it to everyone.
    Delivered,
    /// Not delivered, and why.
    Failed(String),
}

/// Where voice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// Not in voice.
    Off,
    /// Asked to join.
    Joining,
    /// In voice.
    On,
}

/// The chat screen's state.
#[derive(Debug, Clone)]
pub struct Chat {
    /// Our name.
    pub me: String,
    /// The address as typed.
    pub server: String,
    /// The server's identity.
    pub fingerprint: Fingerprint,
    /// The log, oldest first.
    pub log: VecDeque<Entry>,
    /// The message being typed.
    pub input: String,
    /// Everyone here.
    pub users: Vec<String>,
    /// Everyone in voice.
    pub voice_users: Vec<String>,
    /// Who is talking now.
    pub talking: HashSet<String>,
    /// Our voice state.
    pub voice: Voice,
    /// Microphone muted.
    pub muted: bool,
    /// Playback silenced.
    pub deafened: bool,
    /// Push-to-talk key name, if that mode is on.
    pub push_to_talk: Option<String>,
    /// Our input level (0..1) and whether we are transmitting.
    pub meter: (f32, bool),
    /// Latest voice counters.
    pub stats: Option<VoiceStats>,
    /// How loud each voice user plays for us, and who we muted locally.
    pub gains: HashMap<String, Gain>,
    /// A voice list has come since we connected (later ones are logged as
    /// joins and leaves).
    voice_known: bool,
    /// Rooms, conversations and their logs (client-core's state); this
    /// screen shows one log, with the room of a message from elsewhere.
    pub rooms: Rooms,
    /// The room whose voice we are in.
    voice_room: Option<String>,
    /// The connection-lost banner.
    pub banner: Option<String>,
    /// Longest message the server takes, bytes.
    pub max_message: usize,
    /// Answers (and server ids) for ids not yet known to the log.
    early: HashMap<MessageId, (Delivery, Option<ServerId>)>,
    /// The message being edited (its server id): Enter saves the input as
    /// its new text, Escape cancels.
    pub editing: Option<ServerId>,
    /// The room name typed in the room list's join field.
    pub join_input: String,
    /// A room joined from the room list: shown once we are in it.
    pending_join: Option<String>,
    /// Rooms (name keys) with a page of history asked for and not yet
    /// delivered: at most one page in flight per room.
    paging: HashSet<String>,
    /// The local number of our last message.
    last_local: u64,
    /// `/who` was asked: the next user list is shown in the log.
    who_asked: bool,
    /// The "Register this name" form, when open.
    pub register: Option<Register>,
    /// "Change password" or "Give this name back", when open.
    pub account: Option<account::Form>,
    /// Private conversations (name keys) whose stored history has been
    /// asked for at least once (before that, whether the server holds any
    /// is unknown).
    private_paged: HashSet<String>,
    /// A member's moderation actions, when open.
    pub moderating: Option<Moderating>,
    /// Kicked or banned: the session is over; the banner says why and
    /// offers only the way back.
    pub over: bool,
}

/// How one voice user plays for us (set locally; nobody else sees it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gain {
    /// 0.0 to [`MAX_VOLUME`]; 1.0 plays them as sent.
    pub volume: f32,
    /// Muted for us only.
    pub muted: bool,
}

impl Default for Gain {
    fn default() -> Self {
        Self { volume: 1.0, muted: false }
    }
}

impl Gain {
    /// The gain the mixer applies.
    pub fn effective(&self) -> f32 {
        if self.muted { 0.0 } else { self.volume }
    }
}

/// Loudest a voice user can be turned up (200 %).
pub const MAX_VOLUME: f32 = 2.0;

/// What the user did on this screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Input edited.
    Input(String),
    /// Enter or Send.
    Send,
    /// Disconnect pressed.
    Disconnect,
    /// Connect Voice / Disconnect Voice.
    Voice(bool),
    /// Mute toggled.
    Mute(bool),
    /// Deafen toggled.
    Deafen(bool),
    /// Settings opened.
    Settings,
    /// Reconnect now (from the banner).
    ReconnectNow,
    /// Stop reconnecting (from the banner).
    GiveUp,
    /// Put a message that was not delivered back into the input.
    Resend(String),
    /// A voice user's volume slider moved.
    Volume(String, f32),
    /// A voice user muted (`true`) or unmuted for us only.
    MuteUser(String, bool),
    /// A room or conversation picked in the room list, or a member
    /// clicked for a private conversation.
    Show(Target),
    /// The log scrolled; this far (pixels) from its top.
    Scrolled(f32),
    /// "Load older messages" pressed.
    LoadOlder,
    /// "Edit" on one of our lines (its server id).
    Edit(ServerId),
    /// Editing cancelled (Escape or Cancel).
    CancelEdit,
    /// "Delete" on one of our lines (its server id).
    Delete(ServerId),
    /// The room list's join field edited.
    JoinInput(String),
    /// "+ Join" pressed (or Enter in the join field).
    JoinRoom,
    /// "Register this name" pressed (or `/register` typed).
    OpenRegister,
    /// The register form's password edited.
    RegisterPassword(String),
    /// The register form's confirmation edited.
    RegisterConfirm(String),
    /// "Register" pressed in the form.
    SubmitRegister,
    /// The register form closed.
    CloseRegister,
    /// "Change password" or "Give this name back" (registered names).
    Account(account::Message),
    /// A member's moderation actions opened (moderators and admins).
    Moderate(String),
    /// The reason for a moderation action edited.
    ModerationReason(String),
    /// Kick, ban or mute the member whose actions are open.
    Sanction(Sanction),
    /// The moderation actions closed.
    CloseModerate,
}

/// What the application does after the screen took a [`Message`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing beyond the screen.
    None,
    /// Hand `text` to the connection; the log shows it as `local` until
    /// [`Chat::queued`] (or [`Chat::unsent`] when there is no connection).
    Send {
        /// The log's number for it.
        local: u64,
        /// The line.
        text: String,
        /// Where it goes (`None`: the server's first room for us).
        target: Option<Target>,
    },
    /// A room, history or private-message request typed as a command.
    Request(Request),
    /// Leave politely (Disconnect, `/quit`, `!DISCONNECT`).
    Quit,
    /// Ask for the user list (`/who`).
    Who,
    /// Put the keyboard focus on the input.
    FocusInput,
    /// Put the keyboard focus on this field.
    Focus(&'static str),
    /// Join voice.
    JoinVoice,
    /// Leave voice (or stop joining).
    LeaveVoice,
    /// Apply these switches to the voice pipeline.
    Controls {
        /// Microphone closed.
        muted: bool,
        /// Playback silenced.
        deafened: bool,
    },
    /// Play this voice user at this gain.
    Gain(String, f32),
    /// Open the settings dialog.
    OpenSettings,
    /// Try the connection again now.
    ReconnectNow,
    /// Stop reconnecting and leave the screen.
    GiveUp,
}

/// What a typed command asks of the connection (the same commands as
/// client-cli's, parsed in client-core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `/join ROOM`.
    Join(String),
    /// `/part ROOM`.
    Part(String),
    /// `/rooms`.
    Rooms,
    /// `/who ROOM`.
    Who(String),
    /// `/msg NAME TEXT`.
    Msg {
        /// To whom.
        to: String,
        /// The text.
        text: String,
    },
    /// `/history [N]` in the current room, before the oldest message held.
    History {
        /// The room.
        room: String,
        /// The oldest server id held there.
        before: Option<client_core::ServerId>,
        /// How many.
        limit: u32,
    },
    /// `/edit ID TEXT`.
    Edit(client_core::ServerId, String),
    /// `/delete ID`.
    Delete(client_core::ServerId),
    /// `/history @NAME [N]`, or `/history` in a private conversation: a
    /// page of the stored conversation, before the oldest message held.
    PrivateHistory {
        /// The other account.
        with: String,
        /// The oldest server id held.
        before: Option<client_core::ServerId>,
        /// How many.
        limit: u32,
    },
    /// Register the name we use with this account password.
    Register(Secret),
    /// Change our account's password, or give our name back.
    Account(account::Request),
    /// A moderation request (typed, or a member's actions).
    Moderate(Moderation),
}

/// Local time as `HH:MM`.
pub fn clock(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t).format("%H:%M").to_string()
}

impl Chat {
    /// A fresh screen after logging in.
    pub fn new(me: String, server: String, fingerprint: Fingerprint, users: Vec<String>, max_message: usize) -> Self {
        let mut chat = Self {
            me,
            server,
            fingerprint,
            log: VecDeque::new(),
            input: String::new(),
            users,
            voice_users: Vec::new(),
            talking: HashSet::new(),
            voice: Voice::Off,
            muted: false,
            deafened: false,
            push_to_talk: None,
            meter: (0.0, false),
            stats: None,
            gains: HashMap::new(),
            voice_known: false,
            rooms: Rooms::new(None),
            voice_room: None,
            banner: None,
            max_message,
            early: HashMap::new(),
            editing: None,
            join_input: String::new(),
            pending_join: None,
            paging: HashSet::new(),
            last_local: 0,
            who_asked: false,
            register: None,
            account: None,
            private_paged: HashSet::new(),
            moderating: None,
            over: false,
        };
        chat.users.sort_by_key(|u| u.to_lowercase());
        chat.rooms.set_me(chat.me.clone());
        let n = chat.users.len();
        chat.notice(format!("Connected to {} as {} — {n} here.", chat.server, chat.me));
        chat
    }

    /// Takes what the user did; says what the application must do.
    pub fn update(&mut self, message: Message) -> Action {
        match message {
            Message::Input(s) => {
                self.input = s;
                Action::None
            }
            Message::Send if self.editing.is_some() => {
                let text = self.input.trim();
                if text.is_empty() || text.len() > self.max_message {
                    // Nothing to save (Delete removes a line), or too long: the
                    // counter says so; keep the text.
                    return Action::None;
                }
                let Some(id) = self.editing.take() else { return Action::None };
                let text = text.to_owned();
                self.input.clear();
                Action::Request(Request::Edit(id, text))
            }
            Message::Send => {
                let line = self.input.trim_end().to_owned();
                // The same commands as client-cli's, parsed in client-core.
                let text = match command::parse(&line) {
                    command::Input::Say(text) => text,
                    command::Input::Nothing => return Action::None,
                    other => {
                        self.input.clear();
                        return match other {
                            command::Input::Quit => Action::Quit,
                            command::Input::Who(None) => {
                                self.who_asked = true;
                                Action::Who
                            }
                            command::Input::Who(Some(room)) => Action::Request(Request::Who(room)),
                            command::Input::Join(room) => Action::Request(Request::Join(room)),
                            command::Input::Part(room) => Action::Request(Request::Part(room)),
                            command::Input::Rooms => Action::Request(Request::Rooms),
                            command::Input::Msg { to, text } => {
                                Action::Request(Request::Msg { to, text: text.to_owned() })
                            }
                            command::Input::Edit { id, text } => {
                                match id.or_else(|| self.rooms.current().and_then(|t| self.rooms.last_own(t))) {
                                    Some(id) => Action::Request(Request::Edit(id, text.to_owned())),
                                    None => {
                                        self.error("Nothing of yours to edit here (/edit ID TEXT names one)");
                                        Action::None
                                    }
                                }
                            }
                            command::Input::Delete(id) => {
                                match id.or_else(|| self.rooms.current().and_then(|t| self.rooms.last_own(t))) {
                                    Some(id) => Action::Request(Request::Delete(id)),
                                    None => {
                                        self.error("Nothing of yours to delete here (/delete ID names one)");
                                        Action::None
                                    }
                                }
                            }
                            command::Input::Room(room) => {
                                let name = self.rooms.room(&room).map_or(room, |r| r.name.clone());
                                self.notice(format!("Your lines go to #{}.", escape_line(&name)));
                                self.rooms.set_current(Target::Room(name));
                                Action::None
                            }
                            command::Input::History(n) => match self.rooms.current() {
                                Some(Target::Room(room)) => {
                                    let before = self.rooms.room(room).and_then(|r| r.oldest());
                                    let (room, limit) = (room.clone(), n.unwrap_or(PAGE));
                                    Action::Request(Request::History { room, before, limit })
                                }
                                Some(Target::User(with)) => {
                                    let with = with.clone();
                                    self.private_page(with, n)
                                }
                                None => {
                                    self.error("/history pages the current room: /room ROOM first.");
                                    Action::None
                                }
                            },
                            command::Input::PrivateHistory { with, count } => self.private_page(with, count),
                            command::Input::Register => self.update(Message::OpenRegister),
                            command::Input::Password => self.update(Message::Account(account::Message::OpenPassword)),
                            command::Input::Unregister => self.update(Message::Account(account::Message::OpenGiveBack)),
                            command::Input::Moderate(action) => Action::Request(Request::Moderate(action)),
                            command::Input::ModerateRoom { room, request } => {
                                match room.or_else(|| match self.rooms.current() {
                                    Some(Target::Room(r)) => Some(r.clone()),
                                    _ => None,
                                }) {
                                    Some(room) => Action::Request(Request::Moderate(request.into_action(room))),
                                    None => {
                                        self.error("Which room? Name it (#ROOM) or show the room first.");
                                        Action::None
                                    }
                                }
                            }
                            command::Input::Help => {
                                self.notice(command::HELP);
                                Action::None
                            }
                            command::Input::Unknown(_) => {
                                self.error(format!("Unknown command {:?}. {}", escape_line(&line), command::HELP));
                                Action::None
                            }
                            command::Input::Usage { problem, usage } => {
                                self.error(format!("Usage: {usage} ({})", escape_line(&problem)));
                                Action::None
                            }
                            command::Input::Say(_) | command::Input::Nothing => Action::None,
                        };
                    }
                };
                if text.len() > self.max_message {
                    // Too long: the counter beside the input says so; keep the text.
                    return Action::None;
                }
                let text = text.to_owned();
                self.input.clear();
                self.last_local += 1;
                self.sending(self.last_local, &text);
                Action::Send { local: self.last_local, text, target: self.rooms.current().cloned() }
            }
            Message::Resend(text) => {
                if self.input.is_empty() {
                    self.input = text;
                }
                Action::FocusInput
            }
            Message::Disconnect => Action::Quit,
            Message::OpenRegister => {
                self.register = Some(Register::default());
                Action::Focus(REGISTER_PASSWORD)
            }
            Message::RegisterPassword(p) => {
                if let Some(r) = &mut self.register {
                    r.password = p;
                    r.error = None;
                }
                Action::None
            }
            Message::RegisterConfirm(p) => {
                if let Some(r) = &mut self.register {
                    r.confirm = p;
                    r.error = None;
                }
                Action::None
            }
            Message::SubmitRegister => {
                let Some(r) = &mut self.register else { return Action::None };
                if r.waiting {
                    return Action::None;
                }
                let password = Secret::new(r.password.clone());
                if let Err(e) = check_account_password(&password) {
                    r.error = Some(format!("{}.", capitalised(&e.to_string())));
                    return Action::None;
                }
                if r.password != r.confirm {
                    r.error = Some("The two passwords differ.".into());
                    return Action::None;
                }
                r.waiting = true;
                Action::Request(Request::Register(password))
            }
            Message::CloseRegister => {
                self.register = None;
                Action::FocusInput
            }
            Message::Account(m) => self.account_form(m),
            Message::Moderate(name) => {
                self.moderating = Some(Moderating { name, reason: String::new() });
                Action::Focus(MOD_REASON)
            }
            Message::ModerationReason(reason) => {
                if let Some(m) = &mut self.moderating {
                    m.reason = reason;
                }
                Action::None
            }
            Message::Sanction(sanction) => {
                let Some(Moderating { name, reason }) = self.moderating.take() else { return Action::None };
                let reason = Some(reason.trim().to_owned()).filter(|r| !r.is_empty());
                let room = match self.rooms.current() {
                    Some(Target::Room(r)) => Some(r.clone()),
                    _ => None,
                };
                Action::Request(Request::Moderate(match sanction {
                    Sanction::Kick => Moderation::Kick { name, reason },
                    Sanction::Ban => Moderation::Ban { name, duration_secs: None, reason },
                    Sanction::Mute => Moderation::Mute { name, room, duration_secs: None, reason },
                }))
            }
            Message::CloseModerate => {
                self.moderating = None;
                Action::None
            }
            Message::Show(target) => {
                self.rooms.set_current(target);
                Action::FocusInput
            }
            Message::Voice(true) => Action::JoinVoice,
            Message::Voice(false) => {
                if self.voice == Voice::Joining {
                    self.voice = Voice::Off;
                }
                Action::LeaveVoice
            }
            Message::Mute(b) => {
                self.muted = b;
                Action::Controls { muted: b || self.deafened, deafened: self.deafened }
            }
            Message::Deafen(b) => {
                self.deafened = b;
                Action::Controls { muted: b || self.muted, deafened: b }
            }
            Message::Volume(user, volume) => {
                let gain = self.set_gain(&user, |g| g.volume = volume);
                Action::Gain(user, gain)
            }
            Message::MuteUser(user, muted) => {
                let gain = self.set_gain(&user, |g| g.muted = muted);
                Action::Gain(user, gain)
            }
            Message::Scrolled(top) if top <= NEAR_TOP => self.page_back(false),
            Message::Scrolled(_) => Action::None,
            Message::LoadOlder => self.page_back(true),
            Message::Edit(id) => {
                let Some(shown) = self.entry_text(id) else { return Action::None };
                // The text as sent (the log shows it made safe).
                let raw = self.rooms_line(id).map(|l| l.text.clone());
                self.input = raw.unwrap_or(shown);
                self.editing = Some(id);
                Action::FocusInput
            }
            Message::CancelEdit => {
                if self.editing.take().is_some() {
                    self.input.clear();
                }
                Action::None
            }
            Message::Delete(id) => {
                if self.editing == Some(id) {
                    self.editing = None;
                    self.input.clear();
                }
                Action::Request(Request::Delete(id))
            }
            Message::JoinInput(s) => {
                self.join_input = s;
                Action::None
            }
            Message::JoinRoom => {
                let typed = self.join_input.trim();
                let name = command::room_name(typed);
                if name.is_empty() {
                    return Action::None;
                }
                if let Err(e) = validate_room_name(&name) {
                    self.error(format!("Cannot join #{}: {e}.", escape_line(&name)));
                    return Action::None;
                }
                self.join_input.clear();
                if self.rooms.room(&name).is_some() {
                    self.rooms.set_current(Target::Room(name));
                    return Action::FocusInput;
                }
                self.pending_join = Some(name.clone());
                Action::Request(Request::Join(name))
            }
            Message::Settings => Action::OpenSettings,
            Message::ReconnectNow => Action::ReconnectNow,
            Message::GiveUp => Action::GiveUp,
        }
    }

    /// Our message `local` could not be handed to a connection (there is
    /// none): it leaves the log and goes back into the input.
    pub fn unsent(&mut self, local: u64, text: String) {
        self.log.retain(|e| !matches!(&e.kind, Kind::Chat { own: Some((Own::Local(l), _)), .. } if *l == local));
        if self.input.is_empty() {
            self.input = text;
        }
        self.error("Not connected: the message was not sent (it is still in the input).");
    }

    /// Adds a line now.
    pub fn push(&mut self, kind: Kind) {
        self.push_at(SystemTime::now(), kind);
    }

    fn push_at(&mut self, t: SystemTime, kind: Kind) {
        self.push_in(None, t, kind);
    }

    /// Adds a line that belongs to one room or conversation.
    fn push_in(&mut self, place: Option<Target>, t: SystemTime, kind: Kind) {
        if self.log.len() >= LOG_LIMIT {
            self.log.pop_front();
        }
        self.log.push_back(Entry { time: clock(t), kind, place });
    }

    /// Adds a message in server id order within its room or conversation:
    /// a page of older messages goes above what is shown, not below.
    fn insert_message(&mut self, place: Target, t: SystemTime, kind: Kind) {
        let id = match &kind {
            Kind::Chat { id: Some(id), .. } => *id,
            _ => return self.push_in(Some(place), t, kind),
        };
        let newer = self.log.iter().position(|e| {
            matches!(&e.kind, Kind::Chat { id: Some(other), .. } if *other > id)
                && e.place.as_ref().is_some_and(|p| same_place(p, &place))
        });
        let Some(mut at) = newer else { return self.push_in(Some(place), t, kind) };
        if self.log.len() >= LOG_LIMIT {
            if at == 0 {
                // Older than everything kept: nowhere to show it.
                return;
            }
            self.log.pop_front();
            at -= 1;
        }
        self.log.insert(at, Entry { time: clock(t), kind, place: Some(place) });
    }

    /// The next page of history for the room or conversation shown, if it
    /// has more and none is being fetched. Scrolling to the top (`pressed`
    /// false) asks only where older messages are known to be held; the
    /// button also asks a conversation's first page.
    fn page_back(&mut self, pressed: bool) -> Action {
        if let Some(Target::User(peer)) = self.rooms.current() {
            let peer = peer.clone();
            let known = self.private_paged.contains(&name_key(&peer));
            if !self.private_more(&peer) || self.is_paging_private(&peer) || !(pressed || known) {
                return Action::None;
            }
            return self.private_page(peer, None);
        }
        let Some(Target::Room(name)) = self.rooms.current() else { return Action::None };
        let Some(room) = self.rooms.room(name) else { return Action::None };
        if !room.more_history || !self.paging.insert(name_key(&room.name)) {
            return Action::None;
        }
        Action::Request(Request::History { room: room.name.clone(), before: room.oldest(), limit: PAGE })
    }

    /// Whether a page of history is being fetched for `room`.
    pub fn is_paging(&self, room: &str) -> bool {
        self.paging.contains(&name_key(room))
    }

    /// Whether a page of our stored conversation with `peer` is being
    /// fetched.
    pub fn is_paging_private(&self, peer: &str) -> bool {
        self.paging.contains(&format!("@{}", name_key(peer)))
    }

    /// Whether the server may hold older stored messages of our
    /// conversation with `peer`: we are registered, and either it has not
    /// been asked yet or its last page said so. (Only conversations
    /// between two registered accounts are stored; for others the first
    /// page comes back empty.)
    fn private_more(&self, peer: &str) -> bool {
        self.rooms.registered()
            && (!self.private_paged.contains(&name_key(peer))
                || self.rooms.conversation(peer).is_some_and(|c| c.more_history))
    }

    /// An account form's message: opens, closes or edits it, or sends
    /// what it asks.
    fn account_form(&mut self, m: account::Message) -> Action {
        match m {
            account::Message::OpenPassword => {
                self.account = Some(account::Form::Password(account::PasswordChange::default()));
                Action::Focus(account::CURRENT_PASSWORD)
            }
            account::Message::OpenGiveBack => {
                self.account = Some(account::Form::GiveBack(account::GiveBack::default()));
                Action::Focus(account::GIVE_BACK_PASSWORD)
            }
            account::Message::Close => {
                self.account = None;
                Action::FocusInput
            }
            m => match self.account.as_mut().and_then(|f| f.update(m)) {
                Some(request) => Action::Request(Request::Account(request)),
                None => Action::None,
            },
        }
    }

    /// The shown text of the message with server id `id`.
    fn entry_text(&self, id: ServerId) -> Option<String> {
        self.log.iter().find_map(|e| match &e.kind {
            Kind::Chat { id: Some(i), text, deleted: false, .. } if *i == id => Some(text.clone()),
            _ => None,
        })
    }

    /// client-core's copy of the message with server id `id` (its text
    /// as sent).
    fn rooms_line(&self, id: ServerId) -> Option<&client_core::rooms::Line> {
        self.rooms
            .rooms()
            .iter()
            .map(|r| &r.log)
            .chain(self.rooms.conversations().iter().map(|c| &c.log))
            .find_map(|log| log.get(id))
    }

    /// The log line of the message with server id `id`.
    fn message_mut(&mut self, id: ServerId) -> Option<&mut Kind> {
        self.log.iter_mut().rev().map(|e| &mut e.kind).find(|k| matches!(k, Kind::Chat { id: Some(i), .. } if *i == id))
    }

    /// Whether a line of `place` shows with the current room or
    /// conversation.
    pub fn shows(&self, place: Option<&Target>) -> bool {
        match (place, self.rooms.current()) {
            (None, _) | (_, None) => true,
            (Some(Target::Room(a)), Some(Target::Room(b))) | (Some(Target::User(a)), Some(Target::User(b))) => {
                same(a, b)
            }
            _ => false,
        }
    }

    /// Adds a notice.
    pub fn notice(&mut self, s: impl Into<String>) {
        self.push(Kind::Notice(s.into()));
    }

    /// Adds an error line.
    pub fn error(&mut self, s: impl Into<String>) {
        self.push(Kind::Error(s.into()));
    }

    /// Shows our own message as being sent; `local` numbers it until
    /// [`Chat::queued`] gives its id.
    pub fn sending(&mut self, local: u64, text: &str) {
        let own = Some((Own::Local(local), Delivery::Pending));
        let place = self.rooms.current().cloned();
        let kind = Kind::Chat {
            from: self.me.clone(),
            text: text.to_owned(),
            own,
            id: None,
            mine: true,
            history: false,
            edited: false,
            deleted: false,
        };
        self.push_in(place, SystemTime::now(), kind);
    }

    /// Our message `local` was queued as `id` (or refused before sending).
    pub fn queued(&mut self, local: u64, result: Result<MessageId, String>) {
        for e in self.log.iter_mut().rev() {
            if let Kind::Chat { own: Some((who, state)), id: server_id, .. } = &mut e.kind
                && *who == Own::Local(local)
            {
                match result {
                    Ok(id) => {
                        *who = Own::Id(id);
                        if let Some((d, sid)) = self.early.remove(&id) {
                            *state = d;
                            *server_id = sid;
                        }
                    }
                    Err(why) => *state = Delivery::Failed(why),
                }
                return;
            }
        }
    }

    fn set_delivery(&mut self, id: MessageId, d: Delivery, sid: Option<ServerId>) {
        for e in self.log.iter_mut().rev() {
            if let Kind::Chat { own: Some((who, state)), id: server_id, .. } = &mut e.kind
                && *who == Own::Id(id)
            {
                *state = d;
                if sid.is_some() {
                    *server_id = sid;
                }
                return;
            }
        }
        // The answer came before we learnt the id (bounded: ids we sent).
        if self.early.len() < 4096 {
            self.early.insert(id, (d, sid));
        }
    }

    /// Applies a volume or mute change for `user`; returns the gain for
    /// the mixer.
    pub fn set_gain(&mut self, user: &str, change: impl FnOnce(&mut Gain)) -> f32 {
        let gain = self.gains.entry(user.to_owned()).or_default();
        change(gain);
        gain.volume = gain.volume.clamp(0.0, MAX_VOLUME);
        gain.effective()
    }

    /// The connection dropped (client-core is reconnecting): nobody is
    /// known to be in voice until it is back.
    pub fn offline(&mut self) {
        self.voice = Voice::Off;
        self.voice_known = false;
        self.voice_users.clear();
        self.talking.clear();
        self.meter = (0.0, false);
    }

    /// Whether `room` is where our lines go (the first room we are in).
    fn is_current(&self, room: &str) -> bool {
        matches!(self.rooms.current(), Some(Target::Room(r)) if same(r, room))
    }

    /// Applies a client-core event (all but connect and disconnect).
    pub fn apply(&mut self, event: Event) {
        // A message delivered again (a catch-up after a lost connection) is shown once.
        if self.rooms.apply(&event) == Applied::Duplicate {
            return;
        }
        match event {
            Event::Message { id, from, text, time, room, to, history, edited } => {
                let mine = same(&from, &self.me);
                let place = match room {
                    Some(r) => Target::Room(r),
                    None if mine => Target::User(to.unwrap_or_default()),
                    None => Target::User(from.clone()),
                };
                let text = escape_line(&text).into_owned();
                let from = escape_line(&from).into_owned();
                let kind = Kind::Chat { from, text, own: None, id: Some(id), mine, history, edited, deleted: false };
                self.insert_message(place, time, kind);
            }
            Event::Joined { user: u, room } => {
                let line = Kind::Notice(format!("{} joined{}", escape_line(&u), in_room(room.as_deref())));
                self.push_in(room.map(Target::Room), SystemTime::now(), line);
                if !self.users.contains(&u) {
                    self.users.push(u);
                    self.users.sort_by_key(|u| u.to_lowercase());
                }
            }
            Event::Left { user: u, room } => {
                let line = Kind::Notice(format!("{} left{}", escape_line(&u), in_room(room.as_deref())));
                self.push_in(room.map(Target::Room), SystemTime::now(), line);
                self.users.retain(|x| *x != u);
                self.talking.remove(&u);
            }
            Event::Users { room: None, mut users, .. } => {
                users.sort_by_key(|u| u.to_lowercase());
                if std::mem::take(&mut self.who_asked) {
                    let names: Vec<_> = users.iter().map(|u| escape_line(u).into_owned()).collect();
                    self.notice(format!("{} here: {}", users.len(), names.join(", ")));
                }
                self.users = users;
            }
            Event::Users { room: Some(room), users, total } => {
                let names: Vec<_> = users.iter().map(|u| escape_line(u).into_owned()).collect();
                self.notice(format!("{total} in #{}: {}", escape_line(&room), names.join(", ")));
            }
            Event::Rooms(rooms) => {
                let names: Vec<_> =
                    rooms.iter().map(|r| format!("#{} ({})", escape_line(&r.name), r.members)).collect();
                self.notice(format!("Rooms: {}", names.join(", ")));
            }
            Event::HistoryEnd { room, older: true, .. } => {
                self.paging.remove(&name_key(&room));
            }
            Event::HistoryEnd { .. } => {}
            Event::RoomJoined { room, .. } => {
                // Joined from the room list: show it.
                if self.pending_join.as_deref().is_some_and(|p| same(p, &room)) {
                    self.pending_join = None;
                    self.rooms.set_current(Target::Room(room.clone()));
                }
                self.notice(format!("You are in #{}.", escape_line(&room)));
            }
            Event::JoinRefused { room, detail, .. } => {
                if self.pending_join.as_deref().is_some_and(|p| same(p, &room)) {
                    self.pending_join = None;
                }
                self.error(format!("Cannot join #{}: {}", escape_line(&room), escape_line(&detail)));
            }
            Event::RoomLeft { room } => self.notice(format!("You left #{}.", escape_line(&room))),
            Event::Edited { id, text: new, .. } => {
                if let Some(Kind::Chat { text, edited, .. }) = self.message_mut(id) {
                    *text = escape_line(&new).into_owned();
                    *edited = true;
                }
            }
            Event::Deleted { id, .. } => {
                if let Some(Kind::Chat { text, deleted, .. }) = self.message_mut(id) {
                    text.clear();
                    *deleted = true;
                }
                if self.editing == Some(id) {
                    self.editing = None;
                    self.input.clear();
                }
            }
            Event::Notice(n) => self.notice(escape_line(&n).into_owned()),
            Event::KeyIssued { stored: Ok(file), .. } => self.notice(format!(
                "The server issued you a key of your own, kept in {}: later connections use it.",
                escape_line(&file.display().to_string())
            )),
            Event::KeyIssued { stored: Err(e), .. } => self.error(format!(
                "The server issued you a key of your own, but it cannot be kept ({}); only this session uses it.",
                escape_line(&e)
            )),
            Event::Done { action, detail } => {
                if action == "register" && self.register.take().is_some() {
                    self.notice("This name is registered: from now on it needs its account password.");
                }
                if self.account.as_ref().is_some_and(|f| f.action() == action) {
                    self.account = None;
                }
                self.notice(escape_line(&detail).into_owned());
            }
            Event::Denied { action, detail, .. } => {
                let detail = escape_line(&detail).into_owned();
                match (&mut self.register, &mut self.account) {
                    (Some(r), _) if action == "register" => {
                        r.waiting = false;
                        r.error = Some(detail);
                    }
                    (_, Some(f)) if f.action() == action => f.denied(detail),
                    _ => self.error(format!("{}: {detail}", escape_line(&action))),
                }
            }
            Event::Bans(bans) => {
                self.notice(format!("{} bans in force.", bans.len()));
                for b in &bans {
                    self.notice(ban_line(b));
                }
            }
            Event::Audit { entries, more } => {
                let older = if more { "; older entries remain" } else { "" };
                self.notice(format!("Audit log, newest first ({} entries{older}):", entries.len()));
                for e in &entries {
                    self.notice(audit_line(e));
                }
            }
            Event::Topic { room, topic, by } => {
                let (by, shown) = (escape_line(&by), escape_line(&room));
                let line = if topic.is_empty() {
                    format!("{by} cleared the topic of #{shown}.")
                } else {
                    format!("{by} set the topic of #{shown}: {}", escape_line(&topic))
                };
                self.push_in(Some(Target::Room(room)), SystemTime::now(), Kind::Notice(line));
            }
            Event::PrivateHistoryEnd { with, .. } => {
                self.paging.remove(&format!("@{}", name_key(&with)));
                self.private_paged.insert(name_key(&with));
            }
            Event::Acked { id, server_id, .. } => self.set_delivery(id, Delivery::Delivered, server_id),
            Event::Rejected { id, detail, .. } => {
                self.set_delivery(id, Delivery::Failed(escape_line(&detail).into_owned()), None);
            }
            Event::VoiceJoined { room } => {
                self.voice_room = Some(room);
                self.voice = Voice::On;
                self.notice("You joined voice.");
            }
            // The voice of our voice room (before joining: the room we are in).
            Event::VoiceUsers { room, .. }
                if !self.voice_room.as_deref().map_or_else(|| self.is_current(&room), |v| same(v, &room)) => {}
            Event::VoiceUsers { users, .. } => {
                // The first list after connecting is who was there already.
                if self.voice_known {
                    let others = |list: &[String], not_in: &[String]| -> Vec<String> {
                        list.iter()
                            .filter(|u| **u != self.me && !not_in.contains(u))
                            .map(|u| escape_line(u).into_owned())
                            .collect()
                    };
                    let (joined, left) = (others(&users, &self.voice_users), others(&self.voice_users, &users));
                    for u in joined {
                        self.notice(format!("{u} joined voice"));
                    }
                    for u in left {
                        self.notice(format!("{u} left voice"));
                    }
                }
                self.voice_known = true;
                self.talking.retain(|u| users.contains(u));
                self.voice_users = users;
            }
            Event::Talking { user, talking, .. } => {
                if talking {
                    self.talking.insert(user);
                } else {
                    self.talking.remove(&user);
                }
            }
            Event::VoiceStats(s) => self.stats = Some(s),
            Event::VoiceLeft(_) => {
                self.voice_room = None;
                self.voice = Voice::Off;
                self.talking.clear();
                self.meter = (0.0, false);
                self.notice("You left voice.");
            }
            Event::VoiceError(e) => {
                self.voice = Voice::Off;
                let e = escape_line(&e);
                self.error(format!(
                    "Voice: {}. Choose another microphone or speakers in Settings.",
                    e.trim_end_matches('.')
                ));
            }
            Event::VoiceFallback(note) => self.notice(format!("Voice: {}.", escape_line(&note))),
            Event::VoiceInputEnded
            | Event::Connected { .. }
            | Event::Disconnected { .. }
            | Event::Reconnecting { .. } => {}
        }
    }

    /// A page of the stored private conversation with `with`.
    fn private_page(&mut self, with: String, count: Option<u32>) -> Action {
        // One page in flight per conversation.
        if !self.paging.insert(format!("@{}", name_key(&with))) {
            return Action::None;
        }
        let before = self.rooms.conversation(&with).and_then(|c| c.log.oldest());
        Action::Request(Request::PrivateHistory { with, before, limit: count.unwrap_or(PAGE) })
    }

    /// Kicked or banned: the session is over; `why` goes in the banner.
    pub fn ended(&mut self, why: String) {
        self.offline();
        self.over = true;
        self.register = None;
        self.account = None;
        self.moderating = None;
        self.error(why.clone());
        self.banner = Some(why);
    }

    /// The screen, with the register form or a member's moderation
    /// actions on top when open.
    pub fn view(&self) -> Element<'_, Message> {
        let page = self.page();
        if let Some(r) = &self.register {
            return style::modal(page, register_form(r));
        }
        if let Some(f) = &self.account {
            return style::modal(page, f.view(&self.me).map(Message::Account));
        }
        if let Some(m) = &self.moderating {
            return style::modal(page, moderation_card(m, self.rooms.current()));
        }
        page
    }

    fn page(&self) -> Element<'_, Message> {
        let mut account = row![].spacing(8);
        if !self.rooms.registered() && !self.over {
            account =
                account.push(button("Register this name").on_press(Message::OpenRegister).style(button::secondary));
        } else if !self.over {
            account = account
                .push(
                    button("Change password")
                        .on_press(Message::Account(account::Message::OpenPassword))
                        .style(button::secondary),
                )
                .push(
                    button("Give this name back")
                        .on_press(Message::Account(account::Message::OpenGiveBack))
                        .style(button::secondary),
                );
        }
        let header = row![
            column![
                text(format!("{} @ {}", self.me, self.server)).size(18),
                text(self.fingerprint.to_string()).size(11).style(style::muted),
            ]
            .width(Fill),
            account,
            button("Settings").on_press(Message::Settings).style(button::secondary),
            button("Disconnect").on_press(Message::Disconnect).style(button::danger),
        ]
        .spacing(8)
        .align_y(Alignment::Center);

        let mut lines = column![].spacing(4).padding([4, 12]);
        if let Some(top) = self.history_top() {
            lines = lines.push(top);
        }
        let shown = self.log.iter().filter(|e| self.shows(e.place.as_ref()));
        let lines = lines.extend(shown.map(|e| self.entry(e)));
        // Anchored at the bottom: new lines keep it there, and a page of
        // older lines added above leaves what is being read in place.
        let log = scrollable(lines)
            .id(LOG)
            .anchor_bottom()
            .on_scroll(|v| Message::Scrolled(v.absolute_offset_reversed().y))
            .height(Fill)
            .width(Fill);
        let too_long = self.input.len() > self.max_message;
        let placeholder = if self.editing.is_some() {
            "Edit the message — Enter saves, Esc cancels"
        } else {
            "Type a message — Enter sends; !DISCONNECT or /quit leaves"
        };
        let input =
            text_input(placeholder, &self.input).id(INPUT).padding(8).on_input(Message::Input).on_submit(Message::Send);
        let send = if self.editing.is_some() { "Save" } else { "Send" };
        let mut compose =
            row![input, button(send).padding([8, 18]).on_press_maybe((!too_long).then_some(Message::Send))]
                .spacing(8)
                .align_y(Alignment::Center);
        if too_long {
            compose =
                compose.push(text(format!("{}/{} bytes", self.input.len(), self.max_message)).style(style::error_text));
        }
        let mut bottom = column![].spacing(4);
        if self.editing.is_some() {
            bottom = bottom.push(
                row![
                    text("Editing message").size(12).style(style::own),
                    button(text("Cancel").size(11))
                        .padding([1, 6])
                        .style(button::secondary)
                        .on_press(Message::CancelEdit),
                ]
                .spacing(8)
                .align_y(Alignment::Center),
            );
        }
        let bottom = bottom.push(compose);

        let main = column![container(log).height(Fill).style(style::panel), bottom].spacing(8).width(Fill);
        let side = column![self.users_panel(), self.voice_panel()].spacing(8).width(240);
        let mut page = column![header].spacing(8).padding(12);
        if let Some(b) = &self.banner {
            let buttons = if self.over {
                row![button("Back").on_press(Message::GiveUp)]
            } else {
                row![
                    button("Reconnect now").on_press(Message::ReconnectNow),
                    button("Cancel").on_press(Message::GiveUp).style(button::secondary),
                ]
                .spacing(8)
            };
            let style = if self.over { style::error_box } else { style::warning_box };
            page = page.push(
                container(row![text(b.clone()).width(Fill), buttons].spacing(8).align_y(Alignment::Center))
                    .padding(8)
                    .width(Fill)
                    .style(style),
            );
        }
        page.push(row![self.rooms_panel(), main, side].spacing(8).height(Fill)).into()
    }

    /// The rooms we are in (with unread counts, mentions, and who is in
    /// each one's voice beneath it) and the private conversations; a click
    /// shows one.
    fn rooms_panel(&self) -> Element<'_, Message> {
        let current = self.rooms.current();
        let place = |target: Target, label: String, unread: u32, mentions: u32| -> Element<'_, Message> {
            let mut line = row![text(label).size(14).wrapping(text::Wrapping::None).width(Fill)].spacing(4);
            if mentions > 0 {
                line = line.push(text(format!("@{mentions}")).size(12).style(style::error_text));
            }
            if unread > 0 {
                line = line.push(text(unread.to_string()).size(12).style(style::own));
            }
            let style = if current == Some(&target) { button::primary } else { button::text };
            button(line).padding([3, 6]).width(Fill).style(style).on_press(Message::Show(target)).into()
        };
        let mut list = column![text("Rooms").size(15)].spacing(2);
        for r in self.rooms.rooms() {
            let label = format!("#{}", escape_line(&r.name));
            list = list.push(place(Target::Room(r.name.clone()), label, r.unread, r.mentions));
            for u in &r.voice_users {
                let who = text(format!("· {}", escape_line(u))).size(12).wrapping(text::Wrapping::None);
                let who = if self.talking.contains(u) { who.style(style::talking) } else { who.style(style::muted) };
                list = list.push(container(who).padding([0, 18]));
            }
        }
        if !self.rooms.conversations().is_empty() {
            list = list.push(text("Private").size(15));
            for c in self.rooms.conversations() {
                list = list.push(place(Target::User(c.peer.clone()), escape_line(&c.peer).into_owned(), c.unread, 0));
            }
        }
        // A private conversation just opened (a member clicked) shows
        // before its first message.
        if let Some(Target::User(peer)) = current
            && self.rooms.conversation(peer).is_none()
        {
            if self.rooms.conversations().is_empty() {
                list = list.push(text("Private").size(15));
            }
            list = list.push(place(Target::User(peer.clone()), escape_line(peer).into_owned(), 0, 0));
        }
        let join = row![
            text_input("room", &self.join_input)
                .id(JOIN)
                .size(13)
                .padding(4)
                .on_input(Message::JoinInput)
                .on_submit(Message::JoinRoom),
            button(text("+ Join").size(12)).padding([4, 6]).on_press(Message::JoinRoom),
        ]
        .spacing(4)
        .align_y(Alignment::Center);
        list = list.push(container(join).padding([6, 0]));
        list =
            list.push(text("Join or create a room; click a member for a private chat.").size(11).style(style::muted));
        container(scrollable(list).height(Fill).width(Fill))
            .padding(8)
            .height(Fill)
            .width(180)
            .style(style::panel)
            .into()
    }

    fn users_panel(&self) -> Element<'_, Message> {
        // The current room's members; everyone connected otherwise.
        let room = match self.rooms.current() {
            Some(Target::Room(r)) => self.rooms.room(r),
            _ => None,
        };
        let (users, title) = match room {
            Some(r) => (&r.members, format!("#{} ({})", escape_line(&r.name), r.members_total)),
            None => (&self.users, format!("Users ({})", self.users.len())),
        };
        // Moderators and admins get a member's actions (the server decides).
        let moderates = !self.over && self.rooms.may_moderate(room.map(|r| r.name.as_str()));
        let names = column(users.iter().map(|u| {
            let shown = escape_line(u).into_owned();
            let label = text(shown.clone()).size(14).wrapping(text::Wrapping::None);
            let label: Element<'_, Message> = if same(u, &self.me) {
                label.style(style::own).into()
            } else {
                // A click opens a private conversation with them.
                button(label).padding(0).style(button::text).on_press(Message::Show(Target::User(u.clone()))).into()
            };
            // Long names are clipped; hovering shows them whole.
            let name = tooltip(
                container(label).clip(true).width(Fill),
                container(text(shown.clone())).padding(4).style(style::card),
                tooltip::Position::Left,
            );
            if moderates && !same(u, &self.me) {
                let actions = button(text("mod").size(11))
                    .padding([0, 6])
                    .style(button::text)
                    .on_press(Message::Moderate(u.clone()));
                let actions = tooltip(
                    actions,
                    container(text(format!("Moderate {shown}"))).padding(4).style(style::card),
                    tooltip::Position::Left,
                );
                row![name, actions].align_y(Alignment::Center).into()
            } else {
                name.into()
            }
        }))
        .spacing(2);
        let mut head = column![text(title).size(15)].spacing(2);
        // The topic, kept current as moderators change it.
        if let Some(r) = room.filter(|r| !r.topic.is_empty()) {
            head = head.push(text(escape_line(&r.topic).into_owned()).size(12).style(style::muted));
        }
        container(column![head, scrollable(names).height(Fill).width(Fill),].spacing(6))
            .padding(8)
            .height(Fill)
            .width(Fill)
            .style(style::panel)
            .into()
    }

    fn voice_panel(&self) -> Element<'_, Message> {
        let names = column(self.voice_users.iter().map(|u| self.voice_user(u))).spacing(4);
        let join = match self.voice {
            Voice::Off => button("Connect Voice").on_press(Message::Voice(true)),
            Voice::Joining => button("Joining… (cancel)").on_press(Message::Voice(false)),
            Voice::On => button("Disconnect Voice").on_press(Message::Voice(false)).style(button::secondary),
        };
        let mut controls = column![join.width(Fill)].spacing(6);
        if self.voice == Voice::On {
            controls = controls.push(
                row![
                    toggler(self.muted).label("Mute").on_toggle(Message::Mute).size(16),
                    toggler(self.deafened).label("Deafen").on_toggle(Message::Deafen).size(16),
                ]
                .spacing(10),
            );
            let mode = match &self.push_to_talk {
                Some(k) => format!("Push to talk: hold {k}"),
                None => "Voice activation".to_owned(),
            };
            let (level, sending) = self.meter;
            let db = dbfs(level);
            controls = controls.push(text(mode).size(12).style(style::muted));
            controls = controls.push(
                row![
                    tooltip(
                        progress_bar(-60.0..=0.0, db).girth(8),
                        text(if sending { "transmitting" } else { "input level" }),
                        tooltip::Position::Top,
                    ),
                    // Fixed width: the figure changing does not move the bar.
                    text(meter_label(db)).size(11).width(62).align_x(iced::alignment::Horizontal::Right),
                ]
                .spacing(6)
                .align_y(Alignment::Center),
            );
            if let Some(s) = &self.stats {
                let lost = if s.lost > 0 {
                    format!(", lost {} (recovered {})", s.lost, s.recovered_redundancy + s.recovered_fec)
                } else {
                    String::new()
                };
                controls = controls.push(
                    text(format!("rtt {} ms, sent {}, received {}{lost}", s.rtt_us / 1000, s.sent, s.received))
                        .size(11)
                        .style(style::muted),
                );
            }
        }
        // As tall as its contents (the user list takes the rest), up to a point.
        container(
            column![
                text(format!("Voice ({})", self.voice_users.len())).size(15),
                container(scrollable(names).width(Fill)).max_height(180),
                controls,
            ]
            .spacing(6),
        )
        .padding(8)
        .width(Fill)
        .style(style::panel)
        .into()
    }
}

/// A level (RMS, 0..1) in dBFS, from -60 (or silence) to 0.
pub fn dbfs(level: f32) -> f32 {
    if level > 0.0 { (20.0 * level.log10()).clamp(-60.0, 0.0) } else { -60.0 }
}

/// The meter's figure: `-23 dBFS`, or `≤ -60 dBFS` at the floor.
pub fn meter_label(db: f32) -> String {
    if db <= -60.0 { "≤ -60 dBFS".to_owned() } else { format!("{:.0} dBFS", db) }
}

impl Chat {
    /// One voice user: talking dot and name; for others, their volume for
    /// us and a local mute.
    fn voice_user<'a>(&'a self, u: &'a String) -> Element<'a, Message> {
        let talking = self.talking.contains(u) || (*u == self.me && self.meter.1);
        let dot = text(if talking { "●" } else { "○" }).size(14);
        let dot = if talking { dot.style(style::talking) } else { dot.style(style::muted) };
        let mut name = escape_line(u).into_owned();
        if *u == self.me {
            if self.deafened {
                name.push_str("  (deafened)");
            } else if self.muted {
                name.push_str("  (muted)");
            }
        }
        let name = container(text(name).size(14).wrapping(text::Wrapping::None)).clip(true).width(Fill);
        if *u == self.me {
            return row![dot, name].spacing(6).into();
        }
        let gain = self.gains.get(u).copied().unwrap_or_default();
        let mute = button(text(if gain.muted { "unmute" } else { "mute" }).size(11))
            .padding([1, 6])
            .style(if gain.muted { button::danger } else { button::secondary })
            .on_press(Message::MuteUser(u.clone(), !gain.muted));
        let percent = text(format!("{:.0} %", gain.volume * 100.0)).size(11).style(style::muted);
        let user = u.clone();
        let volume =
            slider(0.0..=MAX_VOLUME, gain.volume, move |v| Message::Volume(user.clone(), v)).step(0.05).height(14);
        column![row![dot, name, percent, mute].spacing(6).align_y(Alignment::Center), volume].spacing(2).into()
    }
}

impl Chat {
    /// The top of the room's log: "Load older messages" while the server
    /// holds older ones, or where its history begins.
    fn history_top(&self) -> Option<Element<'_, Message>> {
        if let Some(Target::User(peer)) = self.rooms.current() {
            return self.private_top(peer);
        }
        let Some(Target::Room(name)) = self.rooms.current() else { return None };
        let room = self.rooms.room(name)?;
        if room.more_history {
            let paging = self.is_paging(&room.name);
            let label = if paging { "Loading older messages…" } else { "Load older messages" };
            let b = button(text(label).size(12)).padding([2, 8]).style(button::secondary);
            let b = b.on_press_maybe((!paging).then_some(Message::LoadOlder));
            return Some(container(b).center_x(Fill).into());
        }
        (room.history && !room.log.is_empty()).then(|| {
            let start = format!("Start of #{}'s history", escape_line(&room.name));
            container(text(start).size(11).style(style::muted)).center_x(Fill).into()
        })
    }

    /// The top of a private conversation's log, for a registered name:
    /// "Load older messages" while the server may hold older stored ones,
    /// or where the stored conversation begins.
    fn private_top(&self, peer: &str) -> Option<Element<'_, Message>> {
        if self.private_more(peer) {
            let paging = self.is_paging_private(peer);
            let label = if paging { "Loading older messages…" } else { "Load older messages" };
            let b = button(text(label).size(12)).padding([2, 8]).style(button::secondary);
            let b = b.on_press_maybe((!paging).then_some(Message::LoadOlder));
            return Some(container(b).center_x(Fill).into());
        }
        let held = self.rooms.conversation(peer).is_some_and(|c| !c.log.is_empty());
        (self.rooms.registered() && held).then(|| {
            let start = format!("Start of the stored conversation with {}", escape_line(peer));
            container(text(start).size(11).style(style::muted)).center_x(Fill).into()
        })
    }

    /// One line of the log; our own sent lines carry Edit and Delete.
    fn entry<'a>(&'a self, e: &'a Entry) -> Element<'a, Message> {
        let time = text(e.time.clone()).size(12).style(style::muted);
        let body: Element<'a, Message> = match &e.kind {
            Kind::Chat { from, text: body, own, id, mine, history, edited, deleted } => {
                let name = text(format!("{from}:")).size(14);
                // History is muted: read before, never news.
                let name = if *history {
                    name.style(style::muted)
                } else if *mine {
                    name.style(style::own)
                } else {
                    name.style(style::name)
                };
                let shown = if *deleted {
                    text("message deleted").size(13).style(style::muted)
                } else if *history {
                    text(body.clone()).size(14).style(style::muted)
                } else {
                    text(body.clone()).size(14)
                };
                let mut line = row![name, shown.width(Fill)].spacing(6);
                if *edited && !*deleted {
                    line = line.push(text("(edited)").size(11).style(style::muted));
                }
                match own {
                    Some((_, Delivery::Pending)) => line = line.push(text("sending…").size(11).style(style::muted)),
                    Some((_, Delivery::Failed(why))) => {
                        line = line.push(text(format!("not delivered: {why}")).size(11).style(style::error_text));
                        line = line.push(
                            button(text("edit & resend").size(11))
                                .padding([1, 6])
                                .style(button::secondary)
                                .on_press(Message::Resend(body.clone())),
                        );
                    }
                    _ => {}
                }
                if let (true, false, Some(id)) = (*mine, *deleted, *id) {
                    let small = |label, m| button(text(label).size(11)).padding([0, 4]).style(button::text).on_press(m);
                    if self.editing == Some(id) {
                        line = line.push(text("editing…").size(11).style(style::own));
                    } else {
                        line = line.push(small("Edit", Message::Edit(id)));
                    }
                    line = line.push(small("Delete", Message::Delete(id)));
                }
                line.into()
            }
            Kind::Notice(n) => text(n.clone()).size(13).style(style::muted).width(Fill).into(),
            Kind::Error(m) => text(m.clone()).size(13).style(style::error_text).width(Fill).into(),
        };
        row![time, body].spacing(8).align_y(Alignment::Start).into()
    }
}

/// Whether two room names are the same room.
fn same(a: &str, b: &str) -> bool {
    name_key(a) == name_key(b)
}

/// Whether two targets are the same room or conversation.
fn same_place(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::Room(a), Target::Room(b)) | (Target::User(a), Target::User(b)) => same(a, b),
        _ => false,
    }
}

/// ` in #room` after a presence notice, if it names one.
fn in_room(room: Option<&str>) -> String {
    room.map(|r| format!(" in #{}", escape_line(r))).unwrap_or_default()
}

/// The "Register this name" form.
fn register_form(r: &Register) -> Element<'_, Message> {
    let field = |placeholder, value: &str, id, on_input: fn(String) -> Message| {
        text_input(placeholder, value)
            .id(id)
            .secure(true)
            .padding(8)
            .on_input(on_input)
            .on_submit(Message::SubmitRegister)
    };
    let mut body = column![
        text("Register this name").size(20),
        text(
            "From now on this name needs its account password to log in (not the server password). \
             At least 8 characters."
        )
        .size(13)
        .style(style::muted),
        text("Account password").size(14),
        field("account password", &r.password, REGISTER_PASSWORD, Message::RegisterPassword),
        text("Again, to confirm").size(14),
        field("the same again", &r.confirm, REGISTER_CONFIRM, Message::RegisterConfirm),
    ]
    .spacing(8);
    if let Some(e) = &r.error {
        body = body.push(container(text(e.clone()).size(13)).padding(6).width(Fill).style(style::error_box));
    }
    let submit = if r.waiting { "Registering…" } else { "Register" };
    body = body.push(
        row![
            space::horizontal(),
            button("Cancel").on_press(Message::CloseRegister).style(button::secondary),
            button(submit).on_press_maybe((!r.waiting).then_some(Message::SubmitRegister)),
        ]
        .spacing(10),
    );
    container(body).padding(20).max_width(440).style(style::card).into()
}

/// A member's moderation actions: an optional reason, then kick, ban or
/// mute (in the room shown, if one).
fn moderation_card<'a>(m: &'a Moderating, current: Option<&Target>) -> Element<'a, Message> {
    let name = escape_line(&m.name).into_owned();
    let mute = match current {
        Some(Target::Room(r)) => format!("Mute in #{}", escape_line(r)),
        _ => "Mute everywhere".to_owned(),
    };
    let body = column![
        text(format!("Moderate {name}")).size(20),
        text("Reason (optional; shown to them and in the audit log)").size(14),
        text_input("reason", &m.reason).id(MOD_REASON).padding(8).on_input(Message::ModerationReason),
        row![
            button("Cancel").on_press(Message::CloseModerate).style(button::secondary),
            space::horizontal(),
            button(text(mute)).on_press(Message::Sanction(Sanction::Mute)).style(button::secondary),
            button("Kick").on_press(Message::Sanction(Sanction::Kick)),
            button("Ban").on_press(Message::Sanction(Sanction::Ban)).style(button::danger),
        ]
        .spacing(8)
        .align_y(Alignment::Center),
    ]
    .spacing(8);
    container(body).padding(20).max_width(480).style(style::card).into()
}

/// `text` with its first letter in upper case.
fn capitalised(text: &str) -> String {
    let mut c = text.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Milliseconds since the Unix epoch as a local date and time.
fn local_time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    chrono::DateTime::<chrono::Local>::from(t).format("%Y-%m-%d %H:%M").to_string()
}

/// One ban, in words.
fn ban_line(b: &BanEntry) -> String {
    client_core::display::ban_line(b, local_time)
}

/// One audit entry, in words.
fn audit_line(e: &AuditEntry) -> String {
    client_core::display::audit_line(e, local_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> Chat {
        let fp = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".parse().expect("fingerprint");
        Chat::new("me".into(), "h:1".into(), fp, vec!["zed".into(), "me".into(), "Amy".into()], 100)
    }

    #[test]
    fn sending_numbers_the_line_and_keeps_what_cannot_go() {
        let mut c = chat();
        c.update(Message::Input("  ".into()));
        assert_eq!(c.update(Message::Send), Action::None, "blank");
        c.update(Message::Input("x".repeat(101)));
        assert_eq!(c.update(Message::Send), Action::None, "too long");
        assert_eq!(c.input.len(), 101, "a too long message stays in the input");
        c.update(Message::Input("hello  ".into()));
        assert_eq!(c.update(Message::Send), Action::Send { local: 1, text: "hello".into(), target: None });
        assert!(c.input.is_empty());
        c.update(Message::Input("again".into()));
        assert_eq!(c.update(Message::Send), Action::Send { local: 2, text: "again".into(), target: None });
        // No connection to take it: back into the input, out of the log.
        c.unsent(2, "again".into());
        assert_eq!(c.input, "again");
        assert!(!c.log.iter().any(|e| matches!(&e.kind, Kind::Chat { text, .. } if text == "again")));
        assert!(matches!(&c.log.back().expect("line").kind, Kind::Error(_)));
    }

    #[test]
    fn quit_words_and_the_button_leave() {
        let mut c = chat();
        for word in ["!DISCONNECT", "/quit", "/QUIT "] {
            c.update(Message::Input(word.into()));
            assert_eq!(c.update(Message::Send), Action::Quit, "{word}");
            assert!(c.input.is_empty());
        }
        assert_eq!(c.update(Message::Disconnect), Action::Quit);
        c.update(Message::Input("/who".into()));
        assert_eq!(c.update(Message::Send), Action::Who, "a command, not chat text");
        c.update(Message::Input("/frobnicate".into()));
        assert_eq!(c.update(Message::Send), Action::None);
        assert!(matches!(&c.log.back().expect("line").kind, Kind::Error(e) if e.contains("Unknown command")));
        c.update(Message::Input("//who is there".into()));
        assert_eq!(c.update(Message::Send), Action::Send { local: 1, text: "/who is there".into(), target: None });
    }

    #[test]
    fn room_commands_become_requests_and_lines_go_to_the_current_room() {
        let mut c = chat();
        let typed = |c: &mut Chat, line: &str| {
            c.update(Message::Input(line.into()));
            c.update(Message::Send)
        };
        c.apply(Event::RoomJoined {
            room: "general".into(),
            topic: String::new(),
            users: vec!["me".into()],
            users_total: 1,
            voice: true,
            history: true,
        });
        assert_eq!(
            typed(&mut c, "hi"),
            Action::Send { local: 1, text: "hi".into(), target: Some(Target::Room("general".into())) }
        );
        assert_eq!(typed(&mut c, "/join #dev"), Action::Request(Request::Join("dev".into())));
        assert_eq!(typed(&mut c, "/room dev"), Action::None);
        assert_eq!(
            typed(&mut c, "there"),
            Action::Send { local: 2, text: "there".into(), target: Some(Target::Room("dev".into())) }
        );
        assert_eq!(
            typed(&mut c, "/history 5"),
            Action::Request(Request::History { room: "dev".into(), before: None, limit: 5 })
        );
        assert_eq!(
            typed(&mut c, r#"/msg "Bart F" psst"#),
            Action::Request(Request::Msg { to: "Bart F".into(), text: "psst".into() })
        );
        assert_eq!(typed(&mut c, "/edit 7 better"), Action::Request(Request::Edit(7, "better".into())));
        assert_eq!(typed(&mut c, "/delete 7"), Action::Request(Request::Delete(7)));
        assert_eq!(typed(&mut c, "/part dev"), Action::Request(Request::Part("dev".into())));
        assert_eq!(typed(&mut c, "/edit x"), Action::None);
        assert!(matches!(&c.log.back().expect("line").kind, Kind::Error(e) if e.contains("Nothing of yours to edit")));
    }

    #[test]
    fn voice_switches_and_gains_are_actions() {
        let mut c = chat();
        assert_eq!(c.update(Message::Voice(true)), Action::JoinVoice);
        c.voice = Voice::Joining;
        assert_eq!(c.update(Message::Voice(false)), Action::LeaveVoice);
        assert_eq!(c.voice, Voice::Off, "cancelled while joining");
        assert_eq!(c.update(Message::Mute(true)), Action::Controls { muted: true, deafened: false });
        assert_eq!(c.update(Message::Deafen(true)), Action::Controls { muted: true, deafened: true });
        assert_eq!(c.update(Message::Mute(false)), Action::Controls { muted: true, deafened: true }, "deaf is mute");
        assert_eq!(c.update(Message::Deafen(false)), Action::Controls { muted: false, deafened: false });
        assert_eq!(c.update(Message::Volume("amy".into(), 3.0)), Action::Gain("amy".into(), MAX_VOLUME));
        assert_eq!(c.update(Message::MuteUser("amy".into(), true)), Action::Gain("amy".into(), 0.0));
        assert_eq!(c.update(Message::MuteUser("amy".into(), false)), Action::Gain("amy".into(), MAX_VOLUME));
        c.update(Message::Input("draft".into()));
        assert_eq!(c.update(Message::Resend("old".into())), Action::FocusInput);
        assert_eq!(c.input, "draft", "a resend never overwrites what is being typed");
    }

    #[test]
    fn roster_changes_keep_the_list_sorted_and_logged() {
        let mut c = chat();
        assert_eq!(c.users, ["Amy", "me", "zed"]);
        c.apply(Event::Joined { user: "bob".into(), room: Some("general".into()) });
        c.apply(Event::Left { user: "zed".into(), room: Some("general".into()) });
        assert_eq!(c.users, ["Amy", "bob", "me"]);
        assert!(matches!(&c.log.back().expect("line").kind, Kind::Notice(n) if n == "zed left in #general"));
    }

    #[test]
    fn own_messages_follow_their_delivery() {
        let mut c = chat();
        c.sending(1, "hi");
        c.sending(2, "there");
        c.sending(3, "too long");
        c.apply(Event::Acked { id: 7, server_id: Some(70), sent: None });
        c.queued(1, Ok(7));
        c.queued(2, Ok(8));
        c.queued(3, Err("too long".into()));
        let states: Vec<_> = c
            .log
            .iter()
            .filter_map(|e| match &e.kind {
                Kind::Chat { own: Some((_, d)), .. } => Some(d.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(states, [Delivery::Delivered, Delivery::Pending, Delivery::Failed("too long".into())]);
    }

    #[test]
    fn others_text_is_escaped_and_the_log_is_bounded() {
        let mut c = chat();
        c.apply(Event::Message {
            id: 1,
            from: "e\u{202e}ve".into(),
            text: "a\u{1b}[2Jb".into(),
            time: SystemTime::now(),
            room: None,
            to: Some("me".into()),
            history: false,
            edited: false,
        });
        let Kind::Chat { from, text, .. } = &c.log.back().expect("line").kind else { panic!("chat line") };
        assert!(!from.contains('\u{202e}') && !text.contains('\u{1b}'), "{from:?} {text:?}");
        for i in 0..LOG_LIMIT + 10 {
            c.notice(format!("{i}"));
        }
        assert_eq!(c.log.len(), LOG_LIMIT);
    }

    #[test]
    fn who_answers_in_the_log_once_asked() {
        let mut c = chat();
        c.apply(Event::Users { room: None, users: vec!["b".into(), "a".into()], total: 2 });
        assert!(!c.log.iter().any(|e| matches!(&e.kind, Kind::Notice(n) if n.contains("here:"))));
        c.update(Message::Input("/who".into()));
        assert_eq!(c.update(Message::Send), Action::Who);
        c.apply(Event::Users { room: None, users: vec!["b".into(), "a".into()], total: 2 });
        assert!(matches!(&c.log.back().expect("line").kind, Kind::Notice(n) if n == "2 here: a, b"));
    }

    fn in_room(c: &mut Chat, room: &str) {
        c.apply(Event::RoomJoined {
            room: room.into(),
            topic: String::new(),
            users: vec!["me".into(), "amy".into()],
            users_total: 2,
            voice: false,
            history: true,
        });
    }

    fn said(id: ServerId, from: &str, text: &str, history: bool) -> Event {
        Event::Message {
            id,
            from: from.into(),
            text: text.into(),
            time: SystemTime::now(),
            room: Some("general".into()),
            to: None,
            history,
            edited: false,
        }
    }

    fn chat_ids(c: &Chat) -> Vec<ServerId> {
        c.log
            .iter()
            .filter_map(|e| match &e.kind {
                Kind::Chat { id, .. } => *id,
                _ => None,
            })
            .collect()
    }

    #[test]
    fn older_messages_page_in_above_once_at_a_time_and_are_not_news() {
        let mut c = chat();
        in_room(&mut c, "general");
        c.apply(said(10, "amy", "live one", false));
        c.apply(said(11, "amy", "live two", false));
        assert_eq!(c.update(Message::LoadOlder), Action::None, "nothing older known yet");
        c.apply(Event::HistoryEnd { room: "general".into(), more: true, older: true });
        let page = Action::Request(Request::History { room: "general".into(), before: Some(10), limit: PAGE });
        assert_eq!(c.update(Message::Scrolled(300.0)), Action::None, "not at the top");
        assert_eq!(c.update(Message::Scrolled(0.0)), page);
        assert!(c.is_paging("GENERAL"));
        assert_eq!(c.update(Message::LoadOlder), Action::None, "one page at a time");
        c.apply(said(4, "amy", "old four", true));
        c.apply(said(5, "me", "old mine", true));
        c.apply(Event::HistoryEnd { room: "general".into(), more: false, older: true });
        assert!(!c.is_paging("general"));
        assert_eq!(chat_ids(&c), [4, 5, 10, 11], "older lines go above");
        assert_eq!(c.rooms.room("general").map(|r| r.unread), Some(0));
        let Some(Kind::Chat { history, mine, .. }) =
            c.log.iter().map(|e| &e.kind).find(|k| matches!(k, Kind::Chat { id: Some(5), .. }))
        else {
            panic!("line 5")
        };
        assert!(*history && *mine, "marked history; ours, so editable");
        assert_eq!(c.update(Message::LoadOlder), Action::None, "no more");
    }

    #[test]
    fn own_lines_are_edited_and_deleted_by_server_id() {
        let mut c = chat();
        in_room(&mut c, "general");
        c.update(Message::Input("helo".into()));
        let Action::Send { local, text, target } = c.update(Message::Send) else { panic!("sends") };
        c.queued(local, Ok(3));
        let sent = client_core::Outgoing::Chat { text, target };
        c.apply(Event::Acked { id: 3, server_id: Some(30), sent: Some(sent) });
        assert_eq!(chat_ids(&c), [30]);
        assert_eq!(c.update(Message::Edit(30)), Action::FocusInput);
        assert_eq!((c.editing, c.input.as_str()), (Some(30), "helo"));
        c.update(Message::Input("hello ".into()));
        assert_eq!(c.update(Message::Send), Action::Request(Request::Edit(30, "hello".into())));
        assert_eq!((c.editing, c.input.as_str()), (None, ""));
        c.apply(Event::Edited {
            id: 30,
            room: Some("general".into()),
            to: None,
            from: "me".into(),
            text: "hello".into(),
        });
        assert!(matches!(&c.log.back().expect("line").kind, Kind::Chat { text, edited: true, .. } if text == "hello"));
        // Escape (or Cancel) leaves the line as it was.
        c.update(Message::Edit(30));
        c.update(Message::CancelEdit);
        assert_eq!((c.editing, c.input.as_str()), (None, ""));
        assert_eq!(c.update(Message::Delete(30)), Action::Request(Request::Delete(30)));
        c.apply(Event::Deleted { id: 30, room: Some("general".into()), to: None });
        assert!(matches!(&c.log.back().expect("line").kind, Kind::Chat { text, deleted: true, .. } if text.is_empty()));
        assert_eq!(c.update(Message::Edit(30)), Action::None, "a deleted line is not edited");
    }

    #[test]
    fn rooms_are_joined_from_the_list_and_shown_once_joined() {
        let mut c = chat();
        in_room(&mut c, "general");
        c.update(Message::JoinInput("bad name".into()));
        assert_eq!(c.update(Message::JoinRoom), Action::None);
        assert!(matches!(&c.log.back().expect("line").kind, Kind::Error(e) if e.starts_with("Cannot join")));
        c.update(Message::JoinInput(" #dev ".into()));
        assert_eq!(c.update(Message::JoinRoom), Action::Request(Request::Join("dev".into())));
        assert!(c.join_input.is_empty());
        in_room(&mut c, "Dev");
        assert_eq!(c.rooms.current(), Some(&Target::Room("Dev".into())));
        c.update(Message::JoinInput("general".into()));
        assert_eq!(c.update(Message::JoinRoom), Action::FocusInput, "already in it: shown");
        assert_eq!(c.rooms.current(), Some(&Target::Room("general".into())));
    }
}
