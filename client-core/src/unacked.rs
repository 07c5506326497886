//! Chat messages (and edits and deletions, which share their ids) the
//! server has not acknowledged yet: the client's half of the delivery
//! promise. They are paced out, resent with the same ids after a lost
//! connection or a rate-limit or storage nack, and count as `unacked` if
//! the connection ends for good.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use protocol::delivery::Ledger;
use protocol::message::MessageId;

use crate::client::Outgoing;

/// Chat messages not yet acknowledged, in id order.
#[derive(Debug, Default)]
pub(crate) struct Unacked {
    /// Not sent yet (or to be resent after a rate-limit nack).
    pub(crate) pending: BTreeMap<MessageId, Outgoing>,
    /// Sent, awaiting an ack.
    pub(crate) inflight: BTreeMap<MessageId, Outgoing>,
    /// Do not send before this (server said "retry after").
    pub(crate) paused_until: Option<Instant>,
    /// Ids the server has answered for good (acked or finally refused):
    /// its floor is the lowest id this client may still send.
    pub(crate) settled: Ledger,
}

impl Unacked {
    /// Messages pending or in flight.
    pub(crate) fn len(&self) -> usize {
        self.pending.len() + self.inflight.len()
    }

    /// Queues a message to be sent.
    pub(crate) fn queue(&mut self, id: MessageId, out: Outgoing) {
        self.pending.insert(id, out);
    }

    /// A new connection: whatever was in flight when the last one died
    /// goes again, with the same ids.
    pub(crate) fn resend_inflight(&mut self) {
        let inflight = std::mem::take(&mut self.inflight);
        self.pending.extend(inflight);
    }

    /// The server settled `id` for good (an ack, or a final refusal):
    /// what it was, if it was ours and in flight.
    pub(crate) fn settle(&mut self, id: MessageId) -> Option<Outgoing> {
        let _ = self.settled.settle(id);
        self.inflight.remove(&id)
    }

    /// The server refused `id` for the rate (or could not store it): it goes back to the pending
    /// messages, and nothing is sent for `wait` from `now`.
    pub(crate) fn retry_later(&mut self, id: MessageId, wait: Duration, now: Instant) {
        if let Some(out) = self.inflight.remove(&id) {
            self.pending.insert(id, out);
        }
        self.paused_until = Some(now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(text: &str) -> Outgoing {
        Outgoing::Chat { text: text.into(), target: None }
    }

    #[test]
    fn a_rate_nack_moves_the_message_back_and_pauses() {
        let mut u = Unacked::default();
        u.inflight.insert(3, chat("hi"));
        let now = Instant::now();
        u.retry_later(3, Duration::from_millis(250), now);
        assert_eq!(u.pending.get(&3), Some(&chat("hi")));
        assert!(u.inflight.is_empty());
        assert_eq!(u.paused_until, Some(now + Duration::from_millis(250)));
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn settling_raises_the_floor_and_forgets_the_message() {
        let mut u = Unacked::default();
        u.queue(1, chat("a"));
        u.queue(2, chat("b"));
        u.resend_inflight();
        let first = u.pending.pop_first().expect("queued");
        u.inflight.insert(first.0, first.1);
        assert_eq!(u.settle(1), Some(chat("a")));
        assert_eq!(u.settle(1), None, "a second ack for the same id is not ours any more");
        assert_eq!(u.settled.floor(), 2);
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn a_new_connection_resends_what_was_in_flight() {
        let mut u = Unacked::default();
        u.inflight.insert(5, chat("x"));
        u.queue(6, chat("y"));
        u.resend_inflight();
        assert!(u.inflight.is_empty());
        assert_eq!(u.pending.keys().copied().collect::<Vec<_>>(), vec![5, 6]);
    }
}
