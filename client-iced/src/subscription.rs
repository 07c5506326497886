//! The one subscription through which client-core's events enter the GUI.
//!
//! A connection attempt is an [`Attempt`]: while the application asks for
//! its subscription, the connection runs; a new attempt (another id) is a
//! new connection. The stream yields the [`Client`] handle first, then
//! every [`Event`] in order, and then stays open without yielding, so the
//! subscription is not restarted after the end.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use client_core::{Client, ConnectOptions, Event};
use futures_util::stream::{self, BoxStream, StreamExt};
use iced::Subscription;

/// One connection attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Unique per attempt: events of older attempts are ignored.
    pub id: u64,
    /// What to connect with.
    pub options: Arc<ConnectOptions>,
}

impl Hash for Attempt {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "chatroom-connection".hash(state);
        self.id.hash(state);
    }
}

/// What a connection reports.
#[derive(Debug, Clone)]
pub enum Update {
    /// The command handle, before any event.
    Started(Client),
    /// Events of client-core, in order: whatever arrived together, so a
    /// burst of chat costs the window one update, not one per line.
    Events(Vec<Event>),
}

/// The subscription running `attempt`; its items carry the attempt's id.
pub fn connection(attempt: &Attempt) -> Subscription<(u64, Update)> {
    Subscription::run_with(attempt.clone(), run)
}

fn run(attempt: &Attempt) -> BoxStream<'static, (u64, Update)> {
    let (id, options) = (attempt.id, attempt.options.clone());
    // Connecting spawns onto Tokio, so it happens on first poll, inside the
    // executor, not when iced builds the stream.
    stream::once(async move { Client::connect((*options).clone()) })
        .flat_map(move |(client, events)| {
            stream::once(async move { (id, Update::Started(client)) })
                .chain(events.ready_chunks(256).map(move |e| (id, Update::Events(e))))
                .chain(stream::pending())
        })
        .boxed()
}
