//! A session's rules on what its client sends, sans-IO: every message
//! costs a token of the rate bucket; chat ids are settled once (a resend of
//! a settled id is acknowledged again, not delivered again); after a
//! rate-limit nack for id N later ids wait until N comes again (delivery in
//! order); voice loss reports have a budget of their own; and refusals over
//! the rate count towards a disconnect for flooding (the client is told
//! once per window first). Time comes in as `now`; the session acts on the
//! verdicts.

use std::time::{Duration, Instant};

use protocol::message::{DisconnectCause, NackReason, TextError};
use protocol::rate::TokenBucket;

use crate::messages::SharedLedger;

/// Window over which refusals for the rate are counted.
pub const FLOOD_WINDOW: Duration = Duration::from_secs(10);
/// Voice loss reports per second a client may send (two per speaker a
/// second in normal use), and at once.
const REPORT_RATE: (f64, u32) = (20.0, 40);

/// What the rate says about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Within the rate.
    Go,
    /// Over it: refuse (or drop) this one.
    Over,
    /// Over it once too often: disconnect for flooding.
    Flooding,
}

/// What to do with a chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatVerdict {
    /// Its id was settled before: acknowledge again, deliver nothing.
    Duplicate,
    /// Hand it to the roster, which settles the id (pending until then)
    /// and answers once it is delivered (and stored, where rooms keep
    /// history) or refused.
    Take,
    /// Its id is pending (being stored): the roster's answer will come;
    /// answer nothing now.
    Pending,
    /// Refuse it for good (the id is settled).
    Refuse(NackReason, String),
    /// Refuse it for now: resend after this long.
    RateLimited(Duration),
    /// End the session for cause.
    Kick(DisconnectCause, &'static str),
}

/// A verdict, and whether this is the moment to tell the client it is
/// sending too fast (once per flood window, before the verdict's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<V> {
    /// What to do.
    pub verdict: V,
    /// Send the "you are sending too fast" notice first.
    pub tell: bool,
}

/// The rules' state for one session.
#[derive(Debug)]
pub struct Rules {
    bucket: TokenBucket,
    reports: TokenBucket,
    flood_limit: u32,
    flood_start: Instant,
    flood_count: u32,
    ledger: SharedLedger,
    /// Lowest id nacked for the rate and not yet resent.
    blocked_from: Option<u64>,
}

impl Rules {
    /// Rules for `rate_per_sec` messages a second with bursts of `burst`,
    /// a disconnect after `flood_limit` refusals within [`FLOOD_WINDOW`].
    pub fn new(rate_per_sec: f64, burst: u32, flood_limit: u32, now: Instant) -> Self {
        Self {
            bucket: TokenBucket::new(rate_per_sec, burst, now),
            reports: TokenBucket::new(REPORT_RATE.0, REPORT_RATE.1, now),
            flood_limit,
            flood_start: now,
            flood_count: 0,
            ledger: SharedLedger::default(),
            blocked_from: None,
        }
    }

    /// The ledger of settled ids (handed to the roster, for a session that
    /// resumes this one).
    pub fn ledger(&self) -> &SharedLedger {
        &self.ledger
    }

    /// Uses `ledger` from now on (the one of the session this one resumed).
    pub fn set_ledger(&mut self, ledger: SharedLedger) {
        self.ledger = ledger;
    }

    /// Starts the ledger at `first` (ids below count as settled).
    pub fn start_ledger_at(&mut self, first: u64) {
        if let Ok(mut l) = self.ledger.lock() {
            *l = protocol::delivery::Ledger::starting_at(first);
        }
    }

    /// Counts one refusal for the rate.
    fn over(&mut self, now: Instant) -> Decision<Pace> {
        if now.duration_since(self.flood_start) > FLOOD_WINDOW {
            self.flood_start = now;
            self.flood_count = 0;
        }
        self.flood_count += 1;
        if self.flood_count > self.flood_limit {
            return Decision { verdict: Pace::Flooding, tell: false };
        }
        Decision { verdict: Pace::Over, tell: self.flood_count == 1 }
    }

    /// A message other than chat and loss reports (every one costs a token).
    pub fn request(&mut self, now: Instant) -> Decision<Pace> {
        match self.bucket.take(now) {
            Ok(()) => Decision { verdict: Pace::Go, tell: false },
            Err(_) => self.over(now),
        }
    }

    /// A voice loss report: its own budget; one over it is dropped and
    /// counted like any message over the rate.
    pub fn report(&mut self, now: Instant) -> Decision<Pace> {
        match self.reports.take(now) {
            Ok(()) => Decision { verdict: Pace::Go, tell: false },
            Err(_) => self.over(now),
        }
    }

    /// A message that could not be decoded: a token, and none left is
    /// flooding at once.
    pub fn undecodable(&mut self, now: Instant) -> Pace {
        if self.bucket.take(now).is_ok() { Pace::Go } else { Pace::Flooding }
    }

    /// Chat message `id` whose text checked out as `valid`.
    pub fn chat(&mut self, id: u64, valid: Result<(), TextError>, now: Instant) -> Decision<ChatVerdict> {
        let decided = |verdict| Decision { verdict, tell: false };
        let (settled, pending) = self.ledger.lock().map_or((false, false), |l| (l.is_settled(id), l.is_pending(id)));
        if pending {
            let paced = self.request(now);
            let verdict = if paced.verdict == Pace::Flooding {
                ChatVerdict::Kick(DisconnectCause::Flooding, FLOODING)
            } else {
                ChatVerdict::Pending
            };
            return Decision { verdict, tell: paced.tell };
        }
        if settled || valid.is_err() {
            // A resend of a settled id is answered again and an invalid
            // message refused, each at the price of any request: neither is
            // a free flood.
            let paced = self.request(now);
            if paced.verdict == Pace::Flooding {
                return decided(ChatVerdict::Kick(DisconnectCause::Flooding, FLOODING));
            }
            let verdict = match valid {
                Err(e) if !settled => {
                    let reason = match e {
                        TextError::TooLarge { .. } => NackReason::TooLarge,
                        TextError::Empty | TextError::ControlCharacter => NackReason::Invalid,
                    };
                    self.settle(id).unwrap_or(ChatVerdict::Refuse(reason, e.to_string()))
                }
                _ => ChatVerdict::Duplicate,
            };
            return Decision { verdict, tell: paced.tell };
        }
        let over_rate = match self.blocked_from {
            Some(b) if id > b => Err(self.bucket.wait_time(now).max(Duration::from_millis(1))),
            _ => self.bucket.take(now),
        };
        if let Err(wait) = over_rate {
            self.blocked_from = Some(self.blocked_from.map_or(id, |b| b.min(id)));
            let d = self.over(now);
            let verdict = match d.verdict {
                Pace::Flooding => ChatVerdict::Kick(DisconnectCause::Flooding, FLOODING),
                _ => ChatVerdict::RateLimited(wait),
            };
            return Decision { verdict, tell: d.tell };
        }
        if self.blocked_from == Some(id) {
            self.blocked_from = None;
        }
        let begun = self.ledger.lock().map(|mut l| l.begin(id).is_ok()).unwrap_or(false);
        decided(if begun { ChatVerdict::Take } else { too_many_skipped() })
    }

    /// Settles `id`; `Some(kick)` when the client skipped too many ids.
    fn settle(&mut self, id: u64) -> Option<ChatVerdict> {
        let settled = self.ledger.lock().map(|mut l| l.settle(id).is_ok()).unwrap_or(false);
        (!settled).then(too_many_skipped)
    }
}

/// The verdict on a client whose ids leave too many gaps in the ledger.
fn too_many_skipped() -> ChatVerdict {
    ChatVerdict::Kick(DisconnectCause::ProtocolViolation, "too many message ids skipped")
}

/// The detail of a disconnect for flooding.
pub const FLOODING: &str = "kept sending over the rate limit";

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64, base: Instant) -> Instant {
        base + Duration::from_millis(ms)
    }

    /// What the roster does once a taken message is delivered (and stored).
    fn settle(r: &Rules, id: u64) {
        r.ledger().lock().expect("unpoisoned").settle(id).expect("bounded");
    }

    #[test]
    fn a_resent_id_is_acknowledged_not_delivered_again() {
        let now = Instant::now();
        let mut r = Rules::new(10.0, 10, 50, now);
        assert_eq!(r.chat(1, Ok(()), now).verdict, ChatVerdict::Take);
        assert_eq!(r.chat(1, Ok(()), now).verdict, ChatVerdict::Pending, "being stored: the store answers");
        settle(&r, 1);
        assert_eq!(r.chat(1, Ok(()), now).verdict, ChatVerdict::Duplicate);
        // A failed store leaves the id open: the resend is taken.
        assert_eq!(r.chat(3, Ok(()), now).verdict, ChatVerdict::Take);
        r.ledger().lock().expect("unpoisoned").abandon(3);
        assert_eq!(r.chat(3, Ok(()), now).verdict, ChatVerdict::Take);
        // A refused id is settled too.
        let too_large = Err(TextError::TooLarge { len: 9, max: 8 });
        assert!(matches!(r.chat(2, too_large, now).verdict, ChatVerdict::Refuse(NackReason::TooLarge, _)));
        assert_eq!(r.chat(2, Ok(()), now).verdict, ChatVerdict::Duplicate);
    }

    #[test]
    fn resending_a_settled_id_forever_is_a_flood() {
        let now = Instant::now();
        let mut r = Rules::new(1.0, 2, 3, now);
        assert_eq!(r.chat(1, Ok(()), now).verdict, ChatVerdict::Take);
        settle(&r, 1);
        let mut kicked = false;
        for _ in 0..10 {
            if let ChatVerdict::Kick(DisconnectCause::Flooding, _) = r.chat(1, Ok(()), now).verdict {
                kicked = true;
                break;
            }
        }
        assert!(kicked, "a settled id resent in a loop costs tokens too");
    }

    #[test]
    fn over_the_rate_later_ids_wait_for_the_first_refused_one() {
        let now = Instant::now();
        let mut r = Rules::new(1.0, 2, 50, now);
        assert_eq!(r.chat(1, Ok(()), now).verdict, ChatVerdict::Take);
        assert_eq!(r.chat(2, Ok(()), now).verdict, ChatVerdict::Take);
        let d = r.chat(3, Ok(()), now);
        assert!(matches!(d.verdict, ChatVerdict::RateLimited(_)));
        assert!(d.tell, "told once");
        // A second later a token is back, but 4 must not overtake 3.
        let later = t(1000, now);
        let d = r.chat(4, Ok(()), later);
        assert!(matches!(d.verdict, ChatVerdict::RateLimited(_)));
        assert!(!d.tell, "not told again in the window");
        assert_eq!(r.chat(3, Ok(()), later).verdict, ChatVerdict::Take);
        assert_eq!(r.chat(4, Ok(()), t(2000, now)).verdict, ChatVerdict::Take);
    }

    #[test]
    fn every_request_costs_a_token_and_a_flood_is_a_kick() {
        let now = Instant::now();
        let mut r = Rules::new(1.0, 3, 4, now);
        for _ in 0..3 {
            assert_eq!(r.request(now).verdict, Pace::Go);
        }
        assert_eq!(r.request(now), Decision { verdict: Pace::Over, tell: true });
        for _ in 0..3 {
            assert_eq!(r.request(now), Decision { verdict: Pace::Over, tell: false });
        }
        assert_eq!(r.request(now).verdict, Pace::Flooding);
        // Chat over the rate in the same window: a kick too.
        assert!(matches!(r.chat(1, Ok(()), now).verdict, ChatVerdict::Kick(DisconnectCause::Flooding, _)));
    }

    #[test]
    fn the_flood_count_starts_over_each_window() {
        let now = Instant::now();
        let mut r = Rules::new(0.001, 1, 2, now);
        assert_eq!(r.request(now).verdict, Pace::Go);
        assert_eq!(r.request(now).verdict, Pace::Over);
        assert_eq!(r.request(now).verdict, Pace::Over);
        let next = now + FLOOD_WINDOW + Duration::from_millis(1);
        assert_eq!(r.request(next), Decision { verdict: Pace::Over, tell: true });
    }

    #[test]
    fn reports_have_their_own_budget_and_garbage_costs_a_token() {
        let now = Instant::now();
        let mut r = Rules::new(1.0, 1, 1000, now);
        for _ in 0..REPORT_RATE.1 {
            assert_eq!(r.report(now).verdict, Pace::Go);
        }
        assert_eq!(r.report(now).verdict, Pace::Over);
        assert_eq!(r.request(now).verdict, Pace::Go, "reports spent none of the message tokens");
        assert_eq!(r.undecodable(now), Pace::Flooding);
    }

    #[test]
    fn skipping_too_many_ids_is_a_protocol_violation() {
        let now = Instant::now();
        let mut r = Rules::new(1e6, 1_000_000, 50, now);
        r.start_ledger_at(1);
        let mut kicked = false;
        for id in (1..).step_by(2).take(100_000) {
            if let ChatVerdict::Kick(DisconnectCause::ProtocolViolation, _) = r.chat(id, Ok(()), now).verdict {
                kicked = true;
                break;
            }
        }
        assert!(kicked, "ids with gaps forever are refused at some point");
    }
}
