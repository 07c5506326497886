//! Sans-IO core of Socket Chatroom, shared by the server and every client.
//!
//! Nothing here opens a socket, spawns a thread or reads a clock: callers
//! feed bytes (and, where time matters, `now`) in and act on the values that
//! come out. That keeps every rule of the wire protocol testable in memory.
//!
//! # Layout
//!
//! - [`frame`]: length-delimited frames with a hard size limit.
//! - [`crypto`]: the pre-shared Fernet key, the server's RSA identity and its
//!   fingerprint, session key derivation and the sealed, sequenced frames.
//! - [`handshake`]: the client and server handshake state machines.
//! - [`invite`]: invite links (`chatroom://…`): address, key, fingerprint,
//!   room.
//! - [`message`]: the typed messages exchanged after the handshake, and the
//!   rules for usernames (UTS #39 profile, look-alike keys) and message text.
//! - [`escape`]: making a peer's text safe for a terminal, a log line or a
//!   JSON line (control, bidi, line-separator and invisible characters).
//! - [`moderation`]: accounts, roles, moderation actions, bans and the
//!   audit log.
//! - [`delivery`]: which message ids a sender has had settled (resends).
//! - [`rate`]: the token bucket both ends use for the message rate.
//! - [`voice`]: encrypted UDP voice packets, the replay window, and the
//!   return-routability rule for members' addresses ([`voice::path`]).
//! - [`error`]: the error types.
//!
//! The wire format is described in `docs/protocol.md` at the repository root.
#![warn(missing_docs)]

pub mod crypto;
pub mod delivery;
pub mod error;
pub mod escape;
pub mod frame;
pub mod handshake;
pub mod invite;
pub mod message;
pub mod moderation;
pub mod rate;
pub mod token;
pub mod voice;

pub use error::{CryptoError, FrameError, HandshakeError, KeyError};

/// The protocol version this build speaks. Both handshake hellos carry it.
pub const PROTOCOL_VERSION: u16 = 6;
