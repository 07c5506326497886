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
//! - [`connection`]: connect, handshake, pin check, login, and the session
//!   loop (pacing, acks, keepalive).
//! - [`known_servers`]: trust-on-first-use pinning of server identities.
//! - [`config`]: the `[client]` table of a configuration file.
//! - [`display`]: making other people's text safe to print.
//! - [`error`]: the error type.
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
pub mod known_servers;
pub mod link;
pub mod resume_store;
pub mod voice;

pub use client::{Client, ConnectOptions, DisconnectReason, Event, Events, FirstUse, Reconnect, Trust};
pub use error::ClientError;
pub use protocol::crypto::{Fingerprint, Psk};
pub use protocol::message::{DisconnectCause, Limits, MessageId, NackReason, RefusalCode};
