//! Headless Socket Chatroom client, shared by every front end.
//!
//! Call [`Client::connect`] inside a Tokio runtime: it returns a cloneable
//! [`Client`] handle (commands in) and an [`Events`] stream (events out).
//! The first event is [`Event::Connected`] or [`Event::Disconnected`]; the
//! last is always [`Event::Disconnected`] with its [`DisconnectReason`].
//! In between, a lost connection shows as [`Event::Reconnecting`] and, once
//! back, [`Event::Connected`] again (see [`Reconnect`]).
//!
//! # Layout
//!
//! - [`client`]: the command handle and the event types.
//! - [`command`]: what a user types (`/commands`, chat lines, quoted
//!   arguments), parsed once for every front end.
//! - [`connection`]: connect, handshake, pin check, login; what a failed
//!   [`link`] means to the user ([`DisconnectReason`]).
//! - `session`: one logged-in connection, a handler per event source
//!   (server message, command, voice engine, timers): pacing, acks,
//!   keepalive, voice control.
//! - `unacked`: the chat messages (and edits and deletions) not
//!   acknowledged yet.
//! - `roombook`: the rooms a connection is in, where each one's history
//!   resumes after a reconnection, catching up.
//! - [`rooms`]: the per-room state a front end keeps (logs merged from
//!   history and live messages, unread counts, mentions, conversations).
//! - `reconnect`: the connection task: waiting and trying again after a
//!   lost connection, taking commands meanwhile.
//! - [`link`]: one encrypted connection (handshake, sealed messages both
//!   ways) with its own error type; the load generator uses it directly.
//! - [`voice`]: the voice engine (send, receive and mix threads around one
//!   UDP socket) and a connection's voice state.
//! - [`audio`]: devices and WAV files, resampling, the send pipeline, the
//!   decoder, the jitter buffer, the mixer.
//! - [`known_servers`]: trust-on-first-use pinning of server identities.
//! - [`resume_store`]: the resume token kept between runs.
//! - [`key_store`]: the keys servers issued to this client, kept between
//!   runs.
//! - `key_choice`: which key a connection uses (flag, issued key, invite,
//!   configuration; see [`KeySource`]) and what becomes of an issued or
//!   revoked key.
//! - [`config`]: the `[client]` table of a configuration file.
//! - [`display`]: making other people's text safe to print.
//! - [`error`]: the error type of commands and configuration.
//! - [`secret`]: an account password that never shows in `Debug`.
//!
//! No terminal or GUI types live here.

pub mod audio;
pub mod client;
pub mod command;
pub mod config;
pub mod connection;
pub mod display;
pub mod error;
mod files;
mod key_choice;
pub mod key_store;
pub mod known_servers;
pub mod link;
mod reconnect;
pub mod resume_store;
mod roombook;
pub mod rooms;
pub mod secret;
mod session;
mod unacked;
pub mod voice;

pub use client::{
    Client, ConnectOptions, DisconnectReason, Event, Events, FirstUse, Outgoing, Reconnect, Target, Trust,
    check_account_password,
};
pub use error::ClientError;
pub use key_choice::KeySource;
pub use protocol::crypto::{Fingerprint, Psk};
pub use protocol::invite::{InviteError, InviteLink};
pub use protocol::message::{DisconnectCause, Limits, MessageId, NackReason, RefusalCode, RoomInfo, ServerId};
pub use protocol::moderation::{
    Action, AuditEntry, BanEntry, BanKind, DenyReason, Role, RoleGrant, RoomSetting, format_duration, parse_duration,
};
pub use secret::Secret;
