//! The screens, each with its own state, `Message`, `update` (returning an
//! action for the application where one is needed) and `view`.

pub mod account;
pub mod chat;
pub mod connect;
pub mod settings;
