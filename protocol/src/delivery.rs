//! Which chat message ids a server has settled for one sender, so a resent
//! message is acknowledged again but delivered only once, whatever order
//! ids arrive in.
//!
//! "Settled" means taken (delivered) or finally refused (too large,
//! invalid); rate-limited messages are not settled, since the client resends
//! them. A message being stored is *pending* until the store answers: a
//! resend meanwhile is neither taken again nor answered (the store's answer
//! is), and a failed store leaves the id unsettled, so the resend after the
//! nack is taken. Memory stays small: everything below `floor` is settled,
//! and only the settled ids above it are kept.

use std::collections::BTreeSet;

/// Most ids kept above the floor before the sender counts as abusive.
pub const MAX_SPARSE: usize = 10_000;

/// Settled ids of one sender.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Every id below this is settled (ids start at 1; 0 is never used).
    floor: u64,
    /// Settled ids at or above `floor`.
    sparse: BTreeSet<u64>,
    /// Ids taken and waiting for the store (never settled ones).
    pending: BTreeSet<u64>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger {
    /// An empty ledger (ids start at 1).
    pub fn new() -> Self {
        Self { floor: 1, sparse: BTreeSet::new(), pending: BTreeSet::new() }
    }

    /// A ledger for a sender whose ids start at `first` (all below count
    /// as settled).
    pub fn starting_at(first: u64) -> Self {
        Self { floor: first.max(1), sparse: BTreeSet::new(), pending: BTreeSet::new() }
    }

    /// The lowest id not settled yet.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Whether `id` has been settled.
    pub fn is_settled(&self, id: u64) -> bool {
        id < self.floor || self.sparse.contains(&id)
    }

    /// Whether `id` was taken and waits for the store.
    pub fn is_pending(&self, id: u64) -> bool {
        self.pending.contains(&id)
    }

    /// Marks `id` (not settled) as taken and waiting for the store.
    ///
    /// # Errors
    ///
    /// When more than [`MAX_SPARSE`] ids are pending at once.
    pub fn begin(&mut self, id: u64) -> Result<(), usize> {
        self.pending.insert(id);
        if self.pending.len() > MAX_SPARSE { Err(self.pending.len()) } else { Ok(()) }
    }

    /// The store failed for pending `id`: it is neither pending nor
    /// settled, so a resend is taken.
    pub fn abandon(&mut self, id: u64) {
        self.pending.remove(&id);
    }

    /// Records `id` as settled (ending its wait for the store, if any).
    ///
    /// # Errors
    ///
    /// When more than [`MAX_SPARSE`] ids sit above a gap: the sender is
    /// skipping ids on purpose.
    pub fn settle(&mut self, id: u64) -> Result<(), usize> {
        self.pending.remove(&id);
        if id < self.floor {
            return Ok(());
        }
        self.sparse.insert(id);
        while self.sparse.first() == Some(&self.floor) {
            self.sparse.pop_first();
            self.floor += 1;
        }
        if self.sparse.len() > MAX_SPARSE { Err(self.sparse.len()) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_starting_at_compact() {
        let mut l = Ledger::default();
        l.settle(1).expect("bounded");
        assert_eq!((l.floor(), l.sparse.len()), (2, 0));
        let mut l = Ledger::starting_at(100);
        assert!(l.is_settled(99) && !l.is_settled(100));
        l.settle(100).expect("bounded");
        assert_eq!((l.floor(), l.sparse.len()), (101, 0));
    }

    #[test]
    fn out_of_order_ids_are_each_taken_once() {
        let mut l = Ledger::new();
        for id in [5, 3, 1, 2, 4] {
            assert!(!l.is_settled(id), "{id}");
            l.settle(id).expect("bounded");
            assert!(l.is_settled(id));
        }
        assert_eq!(l.floor, 6);
        assert!(l.sparse.is_empty());
        assert!(!l.is_settled(7));
        l.settle(7).expect("bounded");
        assert!(l.is_settled(7) && !l.is_settled(6));
    }

    #[test]
    fn a_pending_id_settles_or_is_abandoned() {
        let mut l = Ledger::new();
        l.begin(1).expect("bounded");
        assert!(l.is_pending(1) && !l.is_settled(1));
        l.settle(1).expect("bounded");
        assert!(!l.is_pending(1) && l.is_settled(1));
        l.begin(2).expect("bounded");
        l.abandon(2);
        assert!(!l.is_pending(2) && !l.is_settled(2), "a failed store leaves the id open for the resend");
    }

    #[test]
    fn skipping_ids_forever_is_bounded() {
        let mut l = Ledger::new();
        let mut failed = false;
        for id in (2..).step_by(2).take(MAX_SPARSE + 1) {
            failed |= l.settle(id).is_err();
        }
        assert!(failed);
    }
}
