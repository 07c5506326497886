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
}

/// Why the roster refused a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The name is taken (case-insensitively).
    NameTaken,
    /// `max_clients` users are logged in.
    ServerFull,
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
