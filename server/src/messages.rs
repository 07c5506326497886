//! Messages that more than one actor speaks. All are plain data except a
//! session's registration, which carries its own mailbox.

use actix::prelude::*;
use bytes::Bytes;
use protocol::message::DisconnectCause;

/// Identifies one TCP session for the life of the server process.
pub type SessionId = u64;

/// Roster → session.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum ToSession {
    /// Seal and send this encoded [`protocol::message::ServerMessage`]; one
    /// copy is shared by every recipient.
    Deliver(Bytes),
    /// The server is shutting down: send this encoded message, then close.
    Shutdown(Bytes),
    /// End the session for cause.
    Kick(DisconnectCause, &'static str),
    /// Too many connections are in the handshake: close this one if it has
    /// not logged in yet (the oldest gives way to newcomers).
    Evict,
}

/// Why the roster refused a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The name is taken (case-insensitively).
    NameTaken,
    /// `max_clients` users are logged in.
    ServerFull,
    /// The server is shutting down.
    ShuttingDown,
}

/// Session → roster: log this session in under `name`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<String>, JoinRefusal>")]
pub struct Join {
    /// The session.
    pub id: SessionId,
    /// Requested (already validated) name.
    pub name: String,
    /// Where to deliver messages for this session.
    pub mailbox: Recipient<ToSession>,
}

/// Session → roster: this session has ended (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// The session.
    pub id: SessionId,
}

/// Session → roster: a chat message taken from `from`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Broadcast {
    /// The sending session (not delivered back to it).
    pub from: SessionId,
    /// The text.
    pub text: String,
    /// Server receive time, Unix milliseconds.
    pub ts_ms: u64,
}

/// Anyone → roster: the sorted user list.
#[derive(Debug, Message)]
#[rtype(result = "Vec<String>")]
pub struct ListUsers;

/// Main → roster: tell everyone the server is going down. Returns how many
/// sessions were told.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct ShutdownAll {
    /// Shown to users.
    pub reason: String,
}

/// Main → roster: how many users are logged in.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Count;

/// Session → roster: enter voice with this join's keys. Returns the voice
/// id, or `None` if the session is not logged in.
#[derive(Debug, Message)]
#[rtype(result = "Option<u32>")]
pub struct VoiceJoin {
    /// The session.
    pub id: SessionId,
    /// Client → server key of this join.
    pub up_key: [u8; 32],
    /// Server → client key of this join.
    pub down_key: [u8; 32],
}

/// Session → roster: leave voice (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct VoiceLeave {
    /// The session.
    pub id: SessionId,
}

/// Session → roster: loss a listener sees from a speaker.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct VoiceReport {
    /// The reporting session (must be in voice).
    pub from: SessionId,
    /// The speaker's voice id.
    pub speaker: u32,
    /// Loss per mille.
    pub loss_permille: u16,
    /// Mean burst length × 10.
    pub burst_x10: u16,
}

/// Roster → relay: a voice member and its keys.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RelayAdd {
    /// Voice id.
    pub voice_id: u32,
    /// Client → server key.
    pub up_key: [u8; 32],
    /// Server → client key.
    pub down_key: [u8; 32],
}

/// Roster → relay: forget a voice member.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RelayRemove {
    /// Voice id.
    pub voice_id: u32,
}

/// Relay → roster: packets for this member arrive from a new address; send
/// it this challenge over its TCP session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AddressChallenge {
    /// Voice id.
    pub voice_id: u32,
    /// The challenge to echo from the new address.
    pub challenge: [u8; 16],
}
