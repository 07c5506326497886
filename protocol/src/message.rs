//! Typed messages carried inside sealed frames, and the rules for names and
//! text.
//!
//! Messages are JSON objects tagged by `"type"` (snake_case). Unknown types
//! and unknown fields are decoding errors for the type and ignored for the
//! fields, so a newer peer may add fields without breaking an older one.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest username, in Unicode scalar values.
pub const MAX_USERNAME_CHARS: usize = 32;

/// Identifier a client gives each chat message; strictly increasing within
/// one session.
pub type MessageId = u64;

/// Messages from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message after the handshake: who we are.
    Login {
        /// Protocol version the client speaks.
        version: u16,
        /// Requested username.
        username: String,
        /// The server password, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// The resume token of our previous session under this name (from
        /// its welcome): lets us take the name back at once after a lost
        /// connection, with the ids the server already took from us.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
        /// The lowest chat id this client may still send (its ids keep
        /// counting across reconnections): a server that cannot resume
        /// starts its ledger there, treating lower ids as settled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_id: Option<MessageId>,
        /// `resume` was kept on disk by an earlier process of this client,
        /// whose message ids this one does not continue: it takes the name
        /// back only, with a fresh ledger starting at `first_id`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        restored: bool,
        /// The rooms to be in after login, each with where its history
        /// resumes (a reconnecting client's rooms). Absent: the server's
        /// default rooms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rooms: Option<Vec<RoomJoin>>,
        /// How many stored messages each room joined at login delivers
        /// (absent: the server's `history_on_join`; 0: none). A room with
        /// `after` delivers what followed that id instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        history: Option<u32>,
        /// The account password of a registered name (not the server
        /// password), or a one-time reset code from the operator. Also
        /// takes the name back from a session held for resumption.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account_password: Option<String>,
    },
    /// Register the name we are logged in under: from now on it needs this
    /// account password. Answered with [`ServerMessage::Done`] or
    /// [`ServerMessage::Denied`] (`action` `register`).
    Register {
        /// The account password (see
        /// [`crate::moderation::validate_account_password`]).
        password: String,
    },
    /// Change our account's password (`action` `password`).
    ChangePassword {
        /// The current one (absent only in a session logged in with a
        /// reset code).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old: Option<String>,
        /// The new one.
        new: String,
    },
    /// Give our registered name back (`action` `unregister`): it is first
    /// come, first served again; its stored private messages go.
    Unregister {
        /// The account password, to confirm.
        password: String,
    },
    /// A moderation request; answered with [`ServerMessage::Done`],
    /// [`ServerMessage::Denied`], [`ServerMessage::Bans`] or
    /// [`ServerMessage::Audit`].
    Moderate(crate::moderation::Action),
    /// A chat message to a room, or privately to one user.
    Chat {
        /// Client-chosen id, echoed in the ack or nack.
        id: MessageId,
        /// The text.
        text: String,
        /// The room it is for (the client must be in it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// A private message to this user instead. With neither `room` nor
        /// `to`, the message goes to the first room the client is in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// Replace the text of one of our own messages; acknowledged under `id`.
    Edit {
        /// Client-chosen id, from the same sequence as chat ids.
        id: MessageId,
        /// The server id of the message to edit.
        target: ServerId,
        /// The new text.
        text: String,
    },
    /// Delete one of our own messages; acknowledged under `id`.
    Delete {
        /// Client-chosen id, from the same sequence as chat ids.
        id: MessageId,
        /// The server id of the message to delete.
        target: ServerId,
    },
    /// Join a room, creating it where the server lets users create rooms;
    /// answered with [`ServerMessage::RoomJoined`] and its history, or
    /// [`ServerMessage::JoinRefused`].
    Join {
        /// The room and where its history resumes.
        #[serde(flatten)]
        join: RoomJoin,
        /// Stored messages to deliver (absent: `history_on_join`; 0: none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        history: Option<u32>,
    },
    /// Leave a room (and its voice); answered with [`ServerMessage::RoomLeft`].
    Part {
        /// The room.
        room: String,
    },
    /// List the rooms (answered with [`ServerMessage::Rooms`]).
    Rooms,
    /// A page of a room's stored messages, answered with the messages
    /// (marked `history`) and [`ServerMessage::HistoryEnd`].
    History {
        /// The room (the client must be in it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Instead of a room: our stored private conversation with this
        /// account (both names registered). The messages come with `to`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// The newest messages older than this id (absent with `after`
        /// absent too: the newest).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<ServerId>,
        /// The oldest messages newer than this id (catching up).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<ServerId>,
        /// At most this many (the server caps it at [`MAX_HISTORY_PAGE`]).
        limit: u32,
    },
    /// Ask for a user list (answered with [`ServerMessage::Users`]).
    Who {
        /// A room's members (the client must be in it); absent: everyone
        /// connected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Skip this many names (paging through lists longer than
        /// [`MAX_LISTED_USERS`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u32>,
    },
    /// Keepalive; answered with [`ServerMessage::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answer to a server ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Polite goodbye.
    Quit,
    /// Enter voice in a room (leaving voice elsewhere); answered with
    /// [`ServerMessage::VoiceJoined`].
    VoiceJoin {
        /// The room (the client must be in it, and it must have voice).
        /// Absent: the first room the client is in that has voice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Leave voice; answered with [`ServerMessage::VoiceLeft`].
    VoiceLeave,
    /// Loss this listener sees from one speaker, for the speaker's encoder.
    VoiceReport {
        /// The speaker's voice id.
        speaker: u32,
        /// Packets lost before recovery, per mille, over the last report period.
        loss_permille: u16,
        /// Mean length of loss bursts, in packets, times 10 (10 = single losses).
        burst_x10: u16,
    },
}

/// Messages from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Login accepted.
    Welcome {
        /// Protocol version the server speaks.
        version: u16,
        /// Our name as the server knows it.
        you: String,
        /// Everyone connected, us included, sorted case-insensitively: the
        /// first [`MAX_LISTED_USERS`] of them.
        users: Vec<String>,
        /// How many users are connected.
        #[serde(default)]
        users_total: u32,
        /// The rooms we are in now; each one's [`ServerMessage::RoomJoined`]
        /// and history follow.
        #[serde(default)]
        rooms: Vec<String>,
        /// The limits the client must stay inside.
        limits: Limits,
        /// A secret for taking this name back after a lost connection
        /// ([`ClientMessage::Login::resume`]); a new one every login.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
        /// Our name is a registered account (we logged in with its password).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        registered: bool,
        /// The roles our account holds.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        roles: Vec<crate::moderation::RoleGrant>,
    },
    /// Login refused; the server closes the connection after this.
    Refused {
        /// Machine-readable reason.
        code: RefusalCode,
        /// Human-readable reason, for the client to show verbatim.
        reason: String,
        /// For [`RefusalCode::RetryLater`] (and a name held for its owner,
        /// [`RefusalCode::NameTaken`]): how long until trying again may work.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// For [`RefusalCode::Banned`]: when the ban ends, ms since the
        /// Unix epoch (absent: it does not end by itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    /// A chat message from someone else (or, in history, from us).
    Message {
        /// Its server id (unique, increasing in time).
        #[serde(default)]
        id: ServerId,
        /// Sender's name.
        from: String,
        /// The text.
        text: String,
        /// Server receive time, Unix milliseconds.
        ts_ms: u64,
        /// The room it was said in; absent for a private message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// For a private message: its recipient.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// A stored message delivered on join or request, not a new one.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        history: bool,
        /// Its text was edited after it was sent.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        edited: bool,
    },
    /// The message with this id was taken: handed to its recipients and,
    /// in a room with history, stored durably first.
    Ack {
        /// The message's id.
        id: MessageId,
        /// The server id it got (for a chat message; edits and deletes
        /// carry their target's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_id: Option<ServerId>,
    },
    /// The message with this id was not taken.
    Nack {
        /// The message's id.
        id: MessageId,
        /// Why.
        reason: NackReason,
        /// For [`NackReason::RateLimited`]: when to try again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// Human-readable detail.
        detail: String,
    },
    /// Someone joined a room we are in.
    Joined {
        /// Their name.
        user: String,
        /// The room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Someone left a room we are in (or disconnected).
    Left {
        /// Their name.
        user: String,
        /// The room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Answer to [`ClientMessage::Who`].
    Users {
        /// The room asked about; absent: everyone connected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// At most [`MAX_LISTED_USERS`] names from the offset asked for,
        /// sorted case-insensitively.
        users: Vec<String>,
        /// How many there are in all.
        #[serde(default)]
        users_total: u32,
    },
    /// We are in a room now (after login, or a join).
    RoomJoined {
        /// Its name.
        room: String,
        /// Its topic (may be empty).
        #[serde(default)]
        topic: String,
        /// The first [`MAX_LISTED_USERS`] of its members, us included.
        users: Vec<String>,
        /// How many members it has.
        users_total: u32,
        /// Whether it has voice.
        #[serde(default)]
        voice: bool,
        /// Whether its messages are stored.
        #[serde(default)]
        history: bool,
    },
    /// A room we asked to join could not be joined.
    JoinRefused {
        /// The room.
        room: String,
        /// Why ([`NackReason::NoSuchRoom`], [`NackReason::Invalid`],
        /// [`NackReason::RateLimited`], [`NackReason::TooManyRooms`]).
        reason: NackReason,
        /// Human-readable detail.
        detail: String,
    },
    /// We left a room (we asked to, or it went away).
    RoomLeft {
        /// The room.
        room: String,
    },
    /// Answer to [`ClientMessage::Rooms`].
    Rooms {
        /// Every room, sorted by name.
        rooms: Vec<RoomInfo>,
    },
    /// The end of a history delivery (on join, or a request).
    HistoryEnd {
        /// The room (empty for a private conversation).
        #[serde(default)]
        room: String,
        /// The private conversation's other account, for a history
        /// request with `with`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// Older (or, catching up, newer) stored messages remain.
        more: bool,
    },
    /// A message's text was edited by its sender.
    Edited {
        /// Its server id.
        id: ServerId,
        /// Its room; absent for a private message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// For a private message: its recipient.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Its sender.
        from: String,
        /// The new text.
        text: String,
    },
    /// A message was deleted by its sender.
    Deleted {
        /// Its server id.
        id: ServerId,
        /// Its room; absent for a private message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// For a private message: its recipient.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// Something the user should read (e.g. "you are being rate limited").
    Notice {
        /// The text.
        text: String,
    },
    /// The client sent something the server could not understand; the
    /// session goes on.
    Error {
        /// What was wrong.
        detail: String,
    },
    /// Keepalive from the server.
    Ping {
        /// Echo it in a pong.
        nonce: u64,
    },
    /// Answer to a client ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Several messages in one sealed frame, in order: the server seals what
    /// is queued for a client at once as one frame. Never nested, never
    /// empty; a client handles each message as if it came alone.
    Batch {
        /// The messages, oldest first.
        messages: Vec<ServerMessage>,
    },
    /// The server is shutting down; the connection closes next. Not a kick:
    /// a reconnecting client treats it like a lost connection.
    Shutdown {
        /// Human-readable reason.
        reason: String,
    },
    /// The server ends this session for cause; final (a kicked or banned
    /// client does not reconnect by itself).
    Disconnect {
        /// Why.
        cause: DisconnectCause,
        /// Human-readable detail (for a kick or ban: by whom and why).
        detail: String,
        /// For [`DisconnectCause::Banned`]: when the ban ends, ms since the
        /// Unix epoch (absent: it does not end by itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    /// An account or moderation request was carried out.
    Done {
        /// The request ([`crate::moderation::Action::name`], or `register`,
        /// `password`, `unregister`).
        action: String,
        /// What was done, in words.
        detail: String,
    },
    /// An account or moderation request was refused; nothing changed.
    Denied {
        /// The request, as in [`ServerMessage::Done`].
        action: String,
        /// Why.
        reason: crate::moderation::DenyReason,
        /// Human-readable detail.
        detail: String,
    },
    /// Answer to [`crate::moderation::Action::Bans`]: the bans in force,
    /// newest first.
    Bans {
        /// The bans (at most [`crate::moderation::MAX_LISTED_RECORDS`]).
        bans: Vec<crate::moderation::BanEntry>,
    },
    /// Answer to [`crate::moderation::Action::Audit`]: entries newest first.
    Audit {
        /// The entries.
        entries: Vec<crate::moderation::AuditEntry>,
        /// Older entries remain (page with `before`).
        more: bool,
    },
    /// A key of our own, issued after a login through an invite (or with
    /// a main key past a rotation): use it for every later connection to
    /// this server. Sent over the sealed session only.
    KeyIssued {
        /// The key's text form (a secret).
        key: String,
        /// Its public id (16 hex digits), as `server admin keys` lists it.
        id: String,
    },
    /// A room's topic changed (sent to its members).
    Topic {
        /// The room.
        room: String,
        /// The new topic (empty: none).
        topic: String,
        /// Who set it.
        by: String,
    },
    /// Voice entered: where to send and under which keys.
    VoiceJoined {
        /// Our voice id (the header id of our packets).
        voice_id: u32,
        /// UDP port of the relay, on the server's address.
        udp_port: u16,
        /// Key context: this join's keys are [`crate::voice::voice_keys`]`(keys, epoch)`.
        epoch: u32,
        /// The room whose voice we are in.
        #[serde(default)]
        room: String,
    },
    /// Voice left.
    VoiceLeft,
    /// Who is in a room's voice (pushed to its members on every change,
    /// and on joining it).
    VoiceUsers {
        /// The room.
        #[serde(default)]
        room: String,
        /// Members, sorted by name.
        users: Vec<VoiceUser>,
    },
    /// The loss listeners see from us; the encoder adapts its protection.
    VoiceFeedback {
        /// Worst listener's loss, per mille.
        loss_permille: u16,
        /// Mean burst length times 10.
        burst_x10: u16,
    },
}

/// A server-assigned message id: unique on the server, increasing in time.
pub type ServerId = u64;

/// Most names in one user list (welcome, room joined, who); the totals say
/// how many there are.
pub const MAX_LISTED_USERS: usize = 1000;

/// Most messages in one history page.
pub const MAX_HISTORY_PAGE: u32 = 500;

/// A room to join, and where its history resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomJoin {
    /// The room's name.
    pub room: String,
    /// The newest message id already seen in it: deliver what came after
    /// (instead of the last `history` messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ServerId>,
}

/// One room in a [`ServerMessage::Rooms`] list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Its name.
    pub name: String,
    /// Its topic (may be empty).
    #[serde(default)]
    pub topic: String,
    /// How many members it has.
    pub members: u32,
    /// Whether it has voice.
    pub voice: bool,
    /// Whether its messages are stored.
    pub history: bool,
    /// Who is in its voice (the first [`MAX_LISTED_USERS`]).
    #[serde(default)]
    pub voice_users: Vec<String>,
}

/// A member of voice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceUser {
    /// Username.
    pub name: String,
    /// Voice id (the header id of their relayed packets).
    pub voice_id: u32,
}

/// Limits the server announces in its welcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest chat message, in UTF-8 bytes.
    pub max_message_bytes: u32,
    /// Sustained chat messages per second.
    pub rate_per_sec: u32,
    /// Messages that may be sent at once before the rate applies.
    pub burst: u32,
    /// Send something (a ping) at least this often, in seconds.
    pub keepalive_secs: u32,
    /// The server closes a session silent for this long, in seconds.
    pub idle_timeout_secs: u32,
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// Missing or wrong server password.
    WrongPassword,
    /// Someone has that name already, or one that looks the same or
    /// differs only in case ([`name_keys`]).
    NameTaken,
    /// The name breaks the rules ([`validate_username`]).
    InvalidName,
    /// The server is at its client limit.
    ServerFull,
    /// Too many users are logged in from the client's IP address.
    AddressFull,
    /// The client speaks another protocol version.
    VersionMismatch,
    /// The client sent something other than a login first.
    ProtocolError,
    /// Too many failed passwords from the client's address: wait
    /// `retry_after_ms`, then try again (the password was not checked).
    RetryLater,
    /// The name is a registered account and the account password was
    /// missing or wrong.
    AccountPassword,
    /// The name or the address is banned (the reason says why and until
    /// when; `until_ms` too).
    Banned,
    /// The invite the client connected with was used up by another login
    /// meanwhile.
    InviteSpent,
    /// The key the client connected with was revoked between its key check
    /// and its login.
    KeyRevoked,
}

/// Why a chat message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NackReason {
    /// Longer than the announced limit.
    TooLarge,
    /// Empty or holding control characters.
    Invalid,
    /// Over the rate; wait `retry_after_ms` and resend.
    RateLimited,
    /// The message could not be stored; wait `retry_after_ms` and resend.
    StorageUnavailable,
    /// No room has that name.
    NoSuchRoom,
    /// Nobody of that name is connected.
    NoSuchUser,
    /// We are not in that room.
    NotInRoom,
    /// No message has that id (or it is gone).
    NoSuchMessage,
    /// That message is someone else's.
    NotYours,
    /// The server holds its most rooms already.
    TooManyRooms,
    /// That room has no voice.
    NoVoice,
    /// A moderator muted us (in that room, or everywhere).
    Muted,
    /// That room is invite-only and we are not on its list.
    InviteOnly,
}

/// Why the server ended a session for cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectCause {
    /// Kept sending over the rate after being told.
    Flooding,
    /// Did not read fast enough; its outbound queue filled.
    SlowReader,
    /// Sent nothing for longer than the idle timeout.
    IdleTimeout,
    /// Broke the protocol.
    ProtocolViolation,
    /// A moderator or the operator kicked us.
    Kicked,
    /// A moderator or the operator banned our name or address.
    Banned,
    /// The key we connected with was revoked (its invite, or the key
    /// itself): reconnecting with it is refused.
    KeyRevoked,
}

/// How every batch frame starts ([`encode_batch`]).
const BATCH_PREFIX: &[u8] = br#"{"type":"batch","messages":["#;

/// Writes the [`ServerMessage::Batch`] of already encoded messages into
/// `out` (cleared first), without decoding or encoding them again. An
/// encoded batch among them is spliced in (its messages, not the batch), so
/// batches never nest.
pub fn encode_batch<'a>(encoded: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(BATCH_PREFIX);
    let mut first = true;
    for m in encoded {
        let inner = m.strip_prefix(BATCH_PREFIX).and_then(|b| b.strip_suffix(b"]}")).unwrap_or(m);
        if inner.is_empty() {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(inner);
    }
    out.extend_from_slice(b"]}");
}

/// Encodes a message for sealing.
///
/// # Panics
///
/// Never: these types always serialize.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    #[allow(clippy::expect_used)]
    serde_json::to_vec(msg).expect("protocol messages always serialize")
}

/// Decodes the server message(s) of an opened frame into `out`, oldest
/// first: a [`ServerMessage::Batch`] comes apart here (each of its messages
/// decoded on its own, without buffering the whole batch first).
///
/// # Errors
///
/// What was wrong; a batch inside a batch is an error.
pub fn decode_server(bytes: &[u8], out: &mut std::collections::VecDeque<ServerMessage>) -> Result<(), DecodeError> {
    #[derive(Deserialize)]
    struct RawBatch<'a> {
        #[serde(borrow)]
        messages: Vec<&'a serde_json::value::RawValue>,
    }
    let nested = || DecodeError("a batch inside a batch".into());
    if bytes.starts_with(BATCH_PREFIX) {
        let raw: RawBatch<'_> = serde_json::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))?;
        for m in raw.messages {
            match decode::<ServerMessage>(m.get().as_bytes())? {
                ServerMessage::Batch { .. } => return Err(nested()),
                msg => out.push_back(msg),
            }
        }
        return Ok(());
    }
    match decode::<ServerMessage>(bytes)? {
        ServerMessage::Batch { messages } => {
            if messages.iter().any(|m| matches!(m, ServerMessage::Batch { .. })) {
                return Err(nested());
            }
            out.extend(messages);
        }
        msg => out.push_back(msg),
    }
    Ok(())
}

/// Decodes a message from an opened frame.
///
/// # Errors
///
/// A description of what was wrong (invalid JSON or UTF-8, unknown type,
/// missing field).
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))
}

/// A message could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("undecodable message: {0}")]
pub struct DecodeError(pub String);

/// Why a username is not acceptable.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Empty.
    #[error("the name is empty")]
    Empty,
    /// Over [`MAX_USERNAME_CHARS`].
    #[error("the name is longer than {MAX_USERNAME_CHARS} characters")]
    TooLong,
    /// Holds a character outside the UTS #39 identifier profile: a control,
    /// bidirectional, invisible or look-alike space character, a symbol,
    /// or a letter of a script not in general use.
    #[error(
        "the name contains a character not allowed in names (letters, digits, - _ . ' : and inner spaces are; \
         controls, symbols, invisible and special space characters are not)"
    )]
    ForbiddenCharacter,
    /// Starts or ends with whitespace.
    #[error("the name starts or ends with a space")]
    SurroundingSpace,
    /// Two spaces in a row.
    #[error("the name has two spaces in a row")]
    DoubleSpace,
    /// A word mixes scripts the way look-alike names do (Latin with
    /// Cyrillic or Greek, or more than one script besides Latin).
    #[error("a word of the name mixes scripts (e.g. Latin and Cyrillic letters)")]
    MixedScript,
    /// A room name holds a space.
    #[error("a room name holds no spaces")]
    Space,
}

pub use crate::escape::{is_bidi_control, is_invisible};

/// Checks a username (protocol.md, "Usernames"): 1–32 Unicode scalar
/// values; every character has UTS #39 Identifier_Status Allowed, except
/// single ASCII spaces inside the name (and no zero-width joiner or
/// non-joiner, which UTS #39 allows only in some scripts' contexts); each space-separated word is at most
/// UTS #39 "moderately restrictive" (one script, or Latin with one other
/// recommended script that is not Cyrillic or Greek, or Latin with the
/// scripts of Chinese, Japanese or Korean).
///
/// Uniqueness is [`name_keys`]' business, not this function's.
///
/// # Errors
///
/// The first rule broken.
pub fn validate_username(name: &str) -> Result<(), NameError> {
    use unicode_security::{GeneralSecurityProfile as _, RestrictionLevel, RestrictionLevelDetection as _};
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(NameError::TooLong);
    }
    if name.trim() != name {
        return Err(NameError::SurroundingSpace);
    }
    // ZWJ and ZWNJ are Allowed by UTS #39 only where a script needs them
    // (UAX #31 A1/A2/B); names do without.
    if name.chars().any(|c| c != ' ' && (!c.identifier_allowed() || is_invisible(c))) {
        return Err(NameError::ForbiddenCharacter);
    }
    if name.contains("  ") {
        return Err(NameError::DoubleSpace);
    }
    if name.split(' ').any(|w| !w.check_restriction_level(RestrictionLevel::ModeratelyRestrictive)) {
        return Err(NameError::MixedScript);
    }
    Ok(())
}

/// Checks a room name: the username rules ([`validate_username`]), and no
/// spaces. Room names are compared like usernames ([`name_keys`]).
///
/// # Errors
///
/// The first rule broken.
pub fn validate_room_name(name: &str) -> Result<(), NameError> {
    if name.contains(' ') {
        return Err(NameError::Space);
    }
    validate_username(name)
}

/// A room's name as people may write it (`#general`) made bare
/// (`general`): one leading `#` goes. On the wire a room is its bare name.
pub fn bare_room(name: &str) -> &str {
    name.strip_prefix('#').unwrap_or(name)
}

/// The keys under which two names count as the same: a name is taken when
/// either key equals the same key of a name in use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameKeys {
    /// casefold(skeleton(NFKC(name))): the UTS #39 confusable skeleton
    /// taken before case folding, so `aIice` (capital i, whose prototype is
    /// `l`) meets `alice`, and `аlice` (Cyrillic а) does too.
    pub visual: String,
    /// casefold(skeleton(casefold(NFKC(name)))): folding first as well, so
    /// `ALICE` meets `alice` (the skeleton alone keeps capital I apart from
    /// small i), and `АLICE` (Cyrillic А) too.
    pub caseless: String,
}

impl NameKeys {
    /// Whether the two names count as the same: either key equal.
    pub fn collides(&self, other: &NameKeys) -> bool {
        self.visual == other.visual || self.caseless == other.caseless
    }
}

/// UTS #39 skeleton, then full Unicode case folding.
fn fold_skeleton(s: &str) -> String {
    caseless::default_case_fold_str(&unicode_security::skeleton(s).collect::<String>())
}

/// The keys under which names are compared for uniqueness ([`NameKeys`]).
pub fn name_keys(name: &str) -> NameKeys {
    use unicode_normalization::UnicodeNormalization as _;
    let nfkc: String = name.nfkc().collect();
    NameKeys { visual: fold_skeleton(&nfkc), caseless: fold_skeleton(&caseless::default_case_fold_str(&nfkc)) }
}

/// A name's case-insensitive key: compatibility normalisation (NFKC) and
/// full case folding. User lists are sorted by it, and client-core names a
/// name's resume-token file after it; uniqueness is [`name_keys`].
pub fn name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    caseless::default_case_fold_str(&name.nfkc().collect::<String>())
}

/// Why a chat text is not acceptable.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    /// Longer than the limit.
    #[error("message is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Its length in UTF-8 bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Empty or whitespace only.
    #[error("message is empty")]
    Empty,
    /// Holds a control character other than newline or tab.
    #[error("message contains a control character")]
    ControlCharacter,
}

/// Checks a chat text against the size limit and content rules.
///
/// # Errors
///
/// The first rule broken.
pub fn validate_text(text: &str, max_bytes: usize) -> Result<(), TextError> {
    if text.len() > max_bytes {
        return Err(TextError::TooLarge { len: text.len(), max: max_bytes });
    }
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(TextError::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        assert_eq!(validate_username("alice"), Ok(()));
        assert_eq!(validate_username("Zoë 李"), Ok(()));
        assert_eq!(validate_username("Иван Smith"), Ok(()), "one script per word");
        assert_eq!(validate_username("山田太郎"), Ok(()));
        assert_eq!(validate_username("o'brien-2.0"), Ok(()));
        assert_eq!(validate_username(&"é".repeat(32)), Ok(()));
        assert_eq!(validate_username(&"é".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate_username(""), Err(NameError::Empty));
        assert_eq!(validate_username(" bob"), Err(NameError::SurroundingSpace));
        assert_eq!(validate_username("bob\u{3000}"), Err(NameError::SurroundingSpace));
        assert_eq!(validate_username("bo  b"), Err(NameError::DoubleSpace));
        assert_eq!(validate_username("bo\x1b[31mb"), Err(NameError::ForbiddenCharacter));
        assert_eq!(validate_username("admin\u{202E}nimda"), Err(NameError::ForbiddenCharacter));
        assert_eq!(validate_username("ali\u{200B}ce"), Err(NameError::ForbiddenCharacter));
        assert_eq!(validate_username("ali\u{200D}ce"), Err(NameError::ForbiddenCharacter));
        assert_eq!(validate_username("a\u{00AD}b"), Err(NameError::ForbiddenCharacter));
        assert_eq!(validate_username("ａｌｉｃｅ"), Err(NameError::ForbiddenCharacter), "not NFKC-stable");
    }

    /// The look-alikes of issue 13 item 4, with `alice` logged in: each is
    /// refused by the character rule, the script rule, or its keys.
    #[test]
    fn look_alike_names_are_refused_or_collide() {
        for bad in ["alice\u{2800}", "\u{2800}", "alice\u{FFF9}", "alice\u{1D173}", "ali\u{00A0}ce", "ali\tce"] {
            assert_eq!(validate_username(bad), Err(NameError::ForbiddenCharacter), "{bad:?}");
        }
        // Cyrillic а is Allowed, but not inside a Latin word...
        assert_eq!(validate_username("\u{0430}lice"), Err(NameError::MixedScript));
        assert_eq!(validate_username("p\u{0430}yp\u{0430}l"), Err(NameError::MixedScript));
        // ...and an all-Cyrillic look-alike collides by its skeleton.
        assert_eq!(validate_username("\u{0430}\u{0441}\u{0435}"), Ok(()));
        let taken = name_keys("ace");
        let twin = name_keys("\u{0430}\u{0441}\u{0435}");
        assert_eq!(twin.visual, taken.visual);
        let alice = name_keys("alice");
        let same = |n: &str| name_keys(n).collides(&alice);
        for n in
            ["\u{0430}lice", "aIice", "ALICE", "Alice", "AlIce", "\u{0410}LICE", "ａｌｉｃｅ", "al\u{0131}ce", "a1ice"]
        {
            assert!(same(n), "{n:?} must collide with alice");
        }
        for n in ["alicia", "bob", "alice2", "Ivan"] {
            assert!(!same(n), "{n:?} must not collide with alice");
        }
        // Keys use a full case fold, not lower case: ß meets SS.
        assert_eq!(name_keys("STRASSE").caseless, name_keys("straße").caseless);
        assert_eq!(name_key("ALICE"), name_key("alice"));
    }

    #[test]
    fn room_names_follow_the_username_rules_without_spaces() {
        assert_eq!(validate_room_name("general"), Ok(()));
        assert_eq!(validate_room_name("rust-dev"), Ok(()));
        assert_eq!(validate_room_name("two words"), Err(NameError::Space));
        assert_eq!(validate_room_name(""), Err(NameError::Empty));
        assert_eq!(validate_room_name("#general"), Err(NameError::ForbiddenCharacter));
        assert_eq!(validate_room_name("gen\u{202E}eral"), Err(NameError::ForbiddenCharacter));
    }

    #[test]
    fn v4_messages_keep_older_shapes_decodable() {
        // Fields added in version 4 are optional on the wire.
        let chat = decode::<ClientMessage>(br#"{"type":"chat","id":1,"text":"hi"}"#).expect("valid");
        assert_eq!(chat, ClientMessage::Chat { id: 1, text: "hi".into(), room: None, to: None });
        let join = decode::<ClientMessage>(br#"{"type":"join","room":"dev","after":7}"#).expect("valid");
        assert_eq!(join, ClientMessage::Join { join: RoomJoin { room: "dev".into(), after: Some(7) }, history: None });
        let m = ServerMessage::Message {
            id: 9,
            from: "bo".into(),
            text: "x".into(),
            ts_ms: 1,
            room: Some("general".into()),
            to: None,
            history: true,
            edited: false,
        };
        let bytes = encode(&m);
        assert_eq!(decode::<ServerMessage>(&bytes), Ok(m));
        assert!(!String::from_utf8_lossy(&bytes).contains("edited"), "false flags are left out");
    }

    #[test]
    fn texts_follow_the_rules() {
        assert_eq!(validate_text("hi", 4), Ok(()));
        assert_eq!(validate_text("héllo", 5), Err(TextError::TooLarge { len: 6, max: 5 }));
        assert_eq!(validate_text("  ", 10), Err(TextError::Empty));
        assert_eq!(validate_text("a\x07", 10), Err(TextError::ControlCharacter));
        assert_eq!(validate_text("two\nlines\t!", 20), Ok(()));
    }

    #[test]
    fn messages_round_trip_and_unknown_types_fail_cleanly() {
        let m = ClientMessage::Chat { id: 7, text: "hi".into(), room: None, to: None };
        let bytes = encode(&m);
        let a = ServerMessage::Joined { user: "ann".into(), room: None };
        let b = ServerMessage::Message {
            id: 1,
            from: "bo".into(),
            text: "x\"]}".into(),
            ts_ms: 3,
            room: None,
            to: None,
            history: false,
            edited: false,
        };
        let mut batch = Vec::new();
        encode_batch([encode(&a).as_slice(), encode(&b).as_slice()], &mut batch);
        assert_eq!(
            decode::<ServerMessage>(&batch).expect("valid"),
            ServerMessage::Batch { messages: vec![a.clone(), b.clone()] }
        );
        let mut out = std::collections::VecDeque::new();
        decode_server(&batch, &mut out).expect("valid");
        decode_server(&encode(&a), &mut out).expect("valid");
        assert_eq!(Vec::from(out.clone()), vec![a.clone(), b.clone(), a.clone()]);
        // A batch among the messages is spliced in, not nested.
        let mut outer = Vec::new();
        encode_batch([encode(&a).as_slice(), batch.as_slice()], &mut outer);
        out.clear();
        decode_server(&outer, &mut out).expect("not nested");
        assert_eq!(Vec::from(out.clone()), vec![a.clone(), a.clone(), b.clone()]);
        // A batch with its keys in another order comes apart too; nesting does not pass.
        let reordered = br#"{"messages":[{"type":"joined","user":"ann"}],"type":"batch"}"#;
        out.clear();
        decode_server(reordered, &mut out).expect("valid");
        assert_eq!(Vec::from(out.clone()), vec![a]);
        let nested = br#"{"type":"batch","messages":[{"type":"batch","messages":[]}]}"#;
        assert!(decode_server(nested, &mut out).is_err());
        assert!(decode_server(b"{\"type\":\"batch\",\"messages\":[", &mut out).is_err());
        assert_eq!(decode::<ClientMessage>(&bytes), Ok(m));
        assert!(decode::<ClientMessage>(br#"{"type":"teleport"}"#).is_err());
        assert!(decode::<ClientMessage>(b"{\"type\":\"chat\",\"id\":1,\"text\":\"\xff\"}").is_err());
        assert!(decode::<ClientMessage>(b"").is_err());
        // Unknown fields are ignored (forward compatibility).
        assert_eq!(
            decode::<ClientMessage>(br#"{"type":"who","extra":1}"#),
            Ok(ClientMessage::Who { room: None, offset: None })
        );
    }
}
