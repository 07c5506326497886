//! Socket Chatroom's desktop client, on `client-core` only (no protocol or
//! socket code here).
//!
//! - [`app`]: the application: routing between screens, the connection and
//!   its reconnection, voice controls, saving the user's choices.
//! - [`screen`]: the connect screen (form, trust prompt), the chat screen
//!   (log, input, users, voice) and the settings dialog.
//! - [`push_to_talk`]: the push-to-talk key and the switch it holds.
//! - [`subscription`]: the one place where client-core's event stream
//!   becomes an iced subscription.
//! - [`style`]: colours, panels and the modal overlay.

pub mod app;
pub mod push_to_talk;
pub mod screen;
pub mod style;
pub mod subscription;

pub use app::{App, Message, Options, app};
