//! The gate in front of the login: which connections not yet logged in may
//! stay, who may cost an RSA signature now, and who must wait after failed
//! passwords. Sans-IO: time comes in as `now`; the listener owns one
//! [`Gate`] and acts on what it answers.
//!
//! Two pools share `max_waiting` places (so connections not yet logged in
//! never exceed it), each also bounded per address:
//! - **waiting**: connected, key not yet shown. When the places are full a
//!   newcomer pushes out the oldest waiting connection of the address
//!   holding the most (a flood from many addresses churns its own
//!   connections, a lone user is the last to go); an address at its own cap
//!   pushes out its own oldest.
//! - **logging in**: passed the key check (cost or will cost a signature),
//!   at most `max_logging_in` of the places. Nothing waiting can push these
//!   out. When this pool is full, a newcomer whose address holds fewer than
//!   the address holding the most pushes out that address's newest (a few
//!   key holders cannot fill it for everyone); otherwise it is asked to
//!   retry later.
//!
//! Per address, a token bucket paces RSA signatures, and failed passwords
//! back off exponentially (a few free tries for typos). Passwords being
//! checked count as in flight: beyond the free tries only one at a time.
//!
//! Account passwords (issue 16) back off per address (with the server
//! password's failures) and per account and address: guessing one
//! account's password from many addresses is slowed at each, and nobody
//! can lock an owner out from elsewhere (the owner's address keeps its own
//! count). Every wait is capped at [`MAX_BACKOFF`].

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use protocol::rate::TokenBucket;

/// A connection's id (the session id).
pub type ConnId = u64;

/// The gate's limits.
#[derive(Debug, Clone, Copy)]
pub struct GateConfig {
    /// Connections waiting for their key check, overall.
    pub max_waiting: usize,
    /// Of those, from one address.
    pub max_waiting_per_address: usize,
    /// Connections past the key check and not yet logged in, overall.
    pub max_logging_in: usize,
    /// Of those, from one address.
    pub max_logging_in_per_address: usize,
    /// Signatures per second one address may cost, sustained.
    pub sign_rate_per_address: f64,
    /// Signatures one address may cost at once.
    pub sign_burst_per_address: u32,
}

/// Failed passwords an address may make before it has to wait.
pub const FREE_PASSWORD_FAILURES: u32 = 3;
/// The first wait after the free failures; it doubles with every failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Failures are forgotten after this long without one.
pub const FORGET_FAILURES: Duration = Duration::from_secs(600);
/// How long a newcomer is asked to wait when the logging-in pool is full.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);
/// How long a password waits for the one being checked from its address.
pub const ONE_AT_A_TIME: Duration = Duration::from_millis(500);
/// Addresses remembered (buckets and failures) before the quiet ones are
/// forgotten.
const MAX_ADDRESSES: usize = 65_536;

/// Why a connection may not go on to its signature now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// It is no longer in the waiting pool (pushed out, or already past).
    Gone,
    /// Come back after this long.
    RetryAfter(Duration),
}

/// What a password attempt started, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// No waiting yet.
    None,
    /// This failure was the first beyond the free ones: the address now
    /// waits this long before its next try (log it).
    Started(Duration),
    /// The address waits this long (longer than before) before its next try.
    Extended(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Waiting,
    LoggingIn,
}

#[derive(Debug)]
struct Entry {
    group: IpAddr,
    stage: Stage,
}

#[derive(Debug)]
struct AddressState {
    signs: TokenBucket,
    /// Wrong passwords (forgotten after [`FORGET_FAILURES`] without one).
    failures: u32,
    /// Passwords being checked now.
    pending: u32,
    blocked_until: Option<Instant>,
    last_failure: Option<Instant>,
    touched: Instant,
}

/// Account password tries from one address for one account.
#[derive(Debug, Default)]
struct Tries {
    failures: u32,
    pending: u32,
    blocked_until: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Tries {
    fn forget_stale(&mut self, now: Instant) {
        if self.last_failure.is_some_and(|t| now.duration_since(t) > FORGET_FAILURES) {
            *self = Tries { pending: self.pending, ..Tries::default() };
        }
    }

    fn may_try(&self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until
            && until > now
        {
            return Err(until - now);
        }
        if self.pending > 0 && self.failures + self.pending > FREE_PASSWORD_FAILURES {
            return Err(ONE_AT_A_TIME);
        }
        Ok(())
    }

    fn checked(&mut self, right: bool, now: Instant) {
        self.pending = self.pending.saturating_sub(1);
        if right {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(now);
        if self.failures > FREE_PASSWORD_FAILURES {
            let doublings = (self.failures - FREE_PASSWORD_FAILURES - 1).min(16);
            self.blocked_until = Some(now + FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF));
        }
    }
}

/// The gate's state. See the module docs.
#[derive(Debug)]
pub struct Gate {
    cfg: GateConfig,
    entries: HashMap<ConnId, Entry>,
    /// Waiting connections per address, oldest first.
    waiting: HashMap<IpAddr, VecDeque<ConnId>>,
    waiting_total: usize,
    /// Connections logging in per address, oldest first.
    logging_in: HashMap<IpAddr, VecDeque<ConnId>>,
    logging_in_total: usize,
    addresses: HashMap<IpAddr, AddressState>,
    /// Account password tries per (address, account key).
    accounts: HashMap<(IpAddr, String), Tries>,
}

impl Gate {
    /// An empty gate.
    pub fn new(cfg: GateConfig) -> Self {
        Self {
            cfg,
            entries: HashMap::new(),
            accounts: HashMap::new(),
            waiting: HashMap::new(),
            waiting_total: 0,
            logging_in: HashMap::new(),
            logging_in_total: 0,
            addresses: HashMap::new(),
        }
    }

    /// Connections waiting for their key check, and connections logging in.
    pub fn counts(&self) -> (usize, usize) {
        (self.waiting_total, self.logging_in_total)
    }

    /// Waiting connections from `group`.
    pub fn waiting_from(&self, group: IpAddr) -> usize {
        self.waiting.get(&group).map_or(0, VecDeque::len)
    }

    /// A new connection from `group`; returns the connections it pushes out
    /// (already forgotten here: the caller closes them). When every place is
    /// held by a connection logging in, that is the newcomer itself.
    pub fn admit(&mut self, id: ConnId, group: IpAddr) -> Vec<ConnId> {
        let mut out = Vec::new();
        if self.waiting_from(group) >= self.cfg.max_waiting_per_address.max(1) {
            out.extend(self.pop_oldest(group));
        } else if self.waiting_total + self.logging_in_total >= self.cfg.max_waiting.max(1) {
            if self.waiting_total == 0 {
                return vec![id];
            }
            // The address holding the most gives way; among equals, the one
            // whose oldest connection is oldest (ids grow with time).
            let victim_group = self
                .waiting
                .iter()
                .filter_map(|(g, q)| q.front().map(|first| (q.len(), std::cmp::Reverse(*first), *g)))
                .max()
                .map(|(_, _, g)| g);
            if let Some(g) = victim_group {
                out.extend(self.pop_oldest(g));
            }
        }
        self.entries.insert(id, Entry { group, stage: Stage::Waiting });
        self.waiting.entry(group).or_default().push_back(id);
        self.waiting_total += 1;
        out
    }

    fn pop_oldest(&mut self, group: IpAddr) -> Option<ConnId> {
        let q = self.waiting.get_mut(&group)?;
        let id = q.pop_front()?;
        if q.is_empty() {
            self.waiting.remove(&group);
        }
        self.entries.remove(&id);
        self.waiting_total -= 1;
        Some(id)
    }

    fn address(&mut self, group: IpAddr, now: Instant) -> &mut AddressState {
        if self.addresses.len() >= MAX_ADDRESSES && !self.addresses.contains_key(&group) {
            self.forget_quiet(now);
        }
        let (rate, burst) = (self.cfg.sign_rate_per_address, self.cfg.sign_burst_per_address);
        let a = self.addresses.entry(group).or_insert_with(|| AddressState {
            signs: TokenBucket::new(rate, burst, now),
            failures: 0,
            pending: 0,
            blocked_until: None,
            last_failure: None,
            touched: now,
        });
        a.touched = now;
        if a.last_failure.is_some_and(|t| now.duration_since(t) > FORGET_FAILURES) {
            a.failures = 0;
            a.last_failure = None;
            a.blocked_until = None;
        }
        a
    }

    /// Forgets addresses with nothing to remember (full bucket, no
    /// failures), then, if still too many, the least recently seen half.
    fn forget_quiet(&mut self, now: Instant) {
        let refill = Duration::from_secs_f64(
            f64::from(self.cfg.sign_burst_per_address) / self.cfg.sign_rate_per_address.max(0.001),
        );
        self.addresses.retain(|_, a| {
            let failures_live = a.last_failure.is_some_and(|t| now.duration_since(t) <= FORGET_FAILURES);
            failures_live || now.duration_since(a.touched) < refill
        });
        // Still many: down to three quarters at once, so the next new
        // addresses do not each cost a scan.
        if self.addresses.len() >= MAX_ADDRESSES * 3 / 4 {
            let mut touched: Vec<Instant> = self.addresses.values().map(|a| a.touched).collect();
            touched.sort_unstable();
            let cut = touched[touched.len() - MAX_ADDRESSES / 2];
            self.addresses.retain(|_, a| a.touched >= cut);
        }
    }

    /// The connection passed the key check and asks to cost a signature:
    /// it leaves the waiting pool for the logging-in pool, or is told why
    /// not. `Ok` carries a connection it pushes out of the logging-in pool
    /// (the newest of the address holding the most, when the pool is full
    /// and this address holds fewer): the caller closes it.
    ///
    /// # Errors
    ///
    /// [`Hold::Gone`] when it was pushed out meanwhile; [`Hold::RetryAfter`]
    /// when its address is backing off after failed passwords, has spent its
    /// signatures, or holds its share of the logging-in pool. On an error
    /// it stays where it was; the caller closes it.
    pub fn authorize(&mut self, id: ConnId, now: Instant) -> Result<Option<ConnId>, Hold> {
        let group = match self.entries.get(&id) {
            Some(Entry { group, stage: Stage::Waiting }) => *group,
            _ => return Err(Hold::Gone),
        };
        let here = self.logging_in.get(&group).map_or(0, VecDeque::len);
        let mut victim = None;
        if here >= self.cfg.max_logging_in_per_address.max(1) {
            return Err(Hold::RetryAfter(BUSY_RETRY));
        }
        if self.logging_in_total >= self.cfg.max_logging_in.max(1) {
            // Full: the address holding the most gives up its newest, if it
            // holds more than this one; otherwise this one waits.
            let most = self.logging_in.iter().map(|(g, q)| (q.len(), *g)).max();
            match most {
                Some((n, g)) if n > here + 1 => victim = Some(g),
                _ => return Err(Hold::RetryAfter(BUSY_RETRY)),
            }
        }
        let a = self.address(group, now);
        if let Some(until) = a.blocked_until
            && until > now
        {
            return Err(Hold::RetryAfter(until - now));
        }
        if let Err(wait) = a.signs.take(now) {
            return Err(Hold::RetryAfter(wait.max(Duration::from_millis(1))));
        }
        let pushed = victim.and_then(|g| {
            let q = self.logging_in.get_mut(&g)?;
            let v = q.pop_back()?;
            if q.is_empty() {
                self.logging_in.remove(&g);
            }
            self.logging_in_total -= 1;
            self.entries.remove(&v);
            Some(v)
        });
        self.remove_waiting(id, group);
        if let Some(e) = self.entries.get_mut(&id) {
            e.stage = Stage::LoggingIn;
        }
        self.logging_in.entry(group).or_default().push_back(id);
        self.logging_in_total += 1;
        Ok(pushed)
    }

    fn remove_waiting(&mut self, id: ConnId, group: IpAddr) {
        if let Some(q) = self.waiting.get_mut(&group)
            && let Some(pos) = q.iter().position(|x| *x == id)
        {
            q.remove(pos);
            self.waiting_total -= 1;
            if q.is_empty() {
                self.waiting.remove(&group);
            }
        }
    }

    /// The connection logged in or closed: it leaves whichever pool holds it.
    pub fn release(&mut self, id: ConnId) {
        let Some(e) = self.entries.remove(&id) else { return };
        match e.stage {
            Stage::Waiting => self.remove_waiting(id, e.group),
            Stage::LoggingIn => {
                if let Some(q) = self.logging_in.get_mut(&e.group)
                    && let Some(pos) = q.iter().position(|x| *x == id)
                {
                    q.remove(pos);
                    self.logging_in_total -= 1;
                    if q.is_empty() {
                        self.logging_in.remove(&e.group);
                    }
                }
            }
        }
    }

    /// A password is about to be checked for a login from `group`; say
    /// [`Gate::password_checked`] with the outcome. Beyond the free
    /// failures only one password at a time is checked per address, so
    /// parallel guesses wait their turn.
    ///
    /// # Errors
    ///
    /// How long the address must still wait; the password is then not
    /// checked at all.
    pub fn password_attempt(&mut self, group: IpAddr, now: Instant) -> Result<(), Duration> {
        let a = self.address(group, now);
        if let Some(until) = a.blocked_until
            && until > now
        {
            return Err(until - now);
        }
        if a.pending > 0 && a.failures + a.pending > FREE_PASSWORD_FAILURES {
            return Err(ONE_AT_A_TIME);
        }
        a.pending += 1;
        Ok(())
    }

    /// The outcome of a password [`Gate::password_attempt`] let through.
    /// Returns the back-off a failure started (for the log).
    pub fn password_checked(&mut self, group: IpAddr, right: bool, now: Instant) -> Backoff {
        let a = self.address(group, now);
        a.pending = a.pending.saturating_sub(1);
        if right {
            return Backoff::None;
        }
        a.failures = a.failures.saturating_add(1);
        a.last_failure = Some(now);
        if a.failures <= FREE_PASSWORD_FAILURES {
            return Backoff::None;
        }
        let doublings = (a.failures - FREE_PASSWORD_FAILURES - 1).min(16);
        let wait = FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF);
        a.blocked_until = Some(now + wait);
        if a.failures == FREE_PASSWORD_FAILURES + 1 { Backoff::Started(wait) } else { Backoff::Extended(wait) }
    }
}

impl Gate {
    /// An account password is about to be checked for a login from
    /// `group` to account `account`; say [`Gate::account_checked`] with the
    /// outcome. Both the address and the (address, account) pair must be
    /// past their waits.
    ///
    /// # Errors
    ///
    /// How long to wait; the password is then not checked at all.
    pub fn account_attempt(&mut self, group: IpAddr, account: &str, now: Instant) -> Result<(), Duration> {
        if self.accounts.len() >= MAX_ADDRESSES {
            self.accounts.retain(|_, t| {
                t.forget_stale(now);
                t.pending > 0 || t.failures > 0
            });
        }
        let key = (group, account.to_owned());
        let tries = self.accounts.entry(key.clone()).or_default();
        tries.forget_stale(now);
        tries.may_try(now)?;
        self.password_attempt(group, now)?;
        self.accounts.entry(key).or_default().pending += 1;
        Ok(())
    }

    /// The outcome of an [`Gate::account_attempt`] let through.
    pub fn account_checked(&mut self, group: IpAddr, account: &str, right: bool, now: Instant) -> Backoff {
        let key = (group, account.to_owned());
        if let Some(t) = self.accounts.get_mut(&key) {
            t.checked(right, now);
            if right && t.failures == 0 && t.pending == 0 {
                self.accounts.remove(&key);
            }
        }
        self.password_checked(group, right, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GateConfig {
        GateConfig {
            max_waiting: 8,
            max_waiting_per_address: 4,
            max_logging_in: 4,
            max_logging_in_per_address: 2,
            sign_rate_per_address: 1.0,
            sign_burst_per_address: 3,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn a_full_waiting_pool_pushes_out_the_address_holding_the_most() {
        let mut g = Gate::new(cfg());
        // One user from address 1, then a flood from 2 and 3.
        assert!(g.admit(1, ip(1)).is_empty());
        let mut id = 2;
        for n in [2, 3, 2, 3, 2, 3, 2] {
            assert!(g.admit(id, ip(n)).is_empty());
            id += 1;
        }
        assert_eq!(g.counts(), (8, 0));
        // Full: 2 holds 4, 3 holds 3: 2's oldest (id 2) goes.
        assert_eq!(g.admit(id, ip(3)), vec![2]);
        id += 1;
        // Now 2 and 3 both hold 4 (3 got the newcomer)... 3's oldest is
        // id 3, older than 2's oldest (id 4): equal counts, oldest first.
        assert_eq!(g.admit(id, ip(4)), vec![3]);
        id += 1;
        // However long the flood goes on, the lone user stays.
        for k in 0..100 {
            let out = g.admit(id, ip(2 + (k % 2) as u8));
            id += 1;
            assert_eq!(out.len(), 1);
            assert!(!out.contains(&1));
            assert_eq!(g.counts().0, 8, "never above the cap");
        }
        assert!(g.authorize(1, Instant::now()).is_ok());
    }

    #[test]
    fn an_address_at_its_cap_pushes_out_its_own_oldest() {
        let mut g = Gate::new(cfg());
        for id in 1..=4 {
            assert!(g.admit(id, ip(1)).is_empty());
        }
        assert!(g.admit(5, ip(2)).is_empty());
        assert_eq!(g.admit(6, ip(1)), vec![1]);
        assert_eq!(g.waiting_from(ip(1)), 4);
        assert_eq!(g.counts().0, 5);
    }

    #[test]
    fn past_the_key_check_nothing_pushes_a_connection_out() {
        let mut g = Gate::new(cfg());
        let now = Instant::now();
        assert!(g.admit(1, ip(1)).is_empty());
        assert_eq!(g.authorize(1, now), Ok(None));
        assert_eq!(g.counts(), (0, 1));
        for id in 2..200 {
            assert!(!g.admit(id, ip((id % 50) as u8)).contains(&1));
        }
        // The places are shared: seven waiting, one logging in.
        assert_eq!(g.counts(), (7, 1));
        // Released once it logs in (or closes); twice is harmless.
        g.release(1);
        g.release(1);
        assert_eq!(g.counts(), (7, 0));
    }

    #[test]
    fn a_pushed_out_or_released_connection_cannot_go_on() {
        let mut g = Gate::new(cfg());
        let now = Instant::now();
        for id in 1..=5 {
            g.admit(id, ip(1));
        }
        // 1 was pushed out by 5.
        assert_eq!(g.authorize(1, now), Err(Hold::Gone));
        g.release(2);
        assert_eq!(g.authorize(2, now), Err(Hold::Gone));
        assert_eq!(g.counts(), (3, 0));
        // Releasing what was pushed out changes nothing.
        g.release(1);
        assert_eq!(g.counts(), (3, 0));
    }

    #[test]
    fn the_logging_in_pool_is_bounded_per_address_and_shared_fairly() {
        let mut g = Gate::new(GateConfig { sign_burst_per_address: 100, ..cfg() });
        let now = Instant::now();
        for id in 1..=3 {
            g.admit(id, ip(1));
        }
        assert_eq!(g.authorize(1, now), Ok(None));
        assert_eq!(g.authorize(2, now), Ok(None));
        assert_eq!(g.authorize(3, now), Err(Hold::RetryAfter(BUSY_RETRY)), "two per address");
        for (id, n) in [(4, 2), (5, 2), (6, 3), (7, 3)] {
            g.admit(id, ip(n));
        }
        assert_eq!(g.authorize(4, now), Ok(None));
        assert_eq!(g.authorize(5, now), Ok(None));
        assert_eq!(g.counts().1, 4, "full");
        // A newcomer from an address holding none pushes out the newest of
        // an address holding the most; one holding as many waits.
        assert_eq!(g.authorize(6, now), Ok(Some(5)));
        assert_eq!(g.authorize(7, now), Err(Hold::RetryAfter(BUSY_RETRY)));
        assert_eq!(g.counts().1, 4);
        g.release(1);
        assert_eq!(g.authorize(7, now), Ok(None));
        assert_eq!(g.authorize(5, now), Err(Hold::Gone), "pushed out");
    }

    #[test]
    fn waiting_and_logging_in_together_never_exceed_the_places() {
        let mut g = Gate::new(GateConfig {
            max_waiting: 4,
            max_waiting_per_address: 4,
            max_logging_in: 4,
            max_logging_in_per_address: 4,
            sign_rate_per_address: 1.0,
            sign_burst_per_address: 100,
        });
        let now = Instant::now();
        for id in 1..=3 {
            assert!(g.admit(id, ip(1)).is_empty());
            assert_eq!(g.authorize(id, now), Ok(None));
        }
        // One place left: an idle newcomer takes it, the next pushes it out.
        assert!(g.admit(4, ip(2)).is_empty());
        assert_eq!(g.admit(5, ip(3)), vec![4]);
        assert_eq!(g.authorize(5, now), Ok(None));
        // Every place is logging in: a newcomer is turned away itself.
        assert_eq!(g.admit(6, ip(4)), vec![6]);
        assert_eq!(g.counts(), (0, 4));
    }

    #[test]
    fn signatures_are_paced_per_address() {
        let mut g = Gate::new(GateConfig {
            max_waiting_per_address: 8,
            max_logging_in: 100,
            max_logging_in_per_address: 100,
            ..cfg()
        });
        let now = Instant::now();
        for id in 1..=5 {
            g.admit(id, ip(1));
        }
        g.admit(6, ip(2));
        for id in 1..=3 {
            assert_eq!(g.authorize(id, now), Ok(None), "burst of 3");
        }
        let Err(Hold::RetryAfter(wait)) = g.authorize(4, now) else { panic!("over the burst") };
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        // Another address is not affected.
        assert_eq!(g.authorize(6, now), Ok(None));
        // A second later one more token.
        assert_eq!(g.authorize(4, now + Duration::from_secs(1)), Ok(None));
        assert!(g.authorize(5, now + Duration::from_secs(1)).is_err());
    }

    /// One guess through the gate: attempt, then a wrong password.
    fn guess(g: &mut Gate, from: IpAddr, now: Instant) -> Result<Backoff, Duration> {
        g.password_attempt(from, now)?;
        Ok(g.password_checked(from, false, now))
    }

    #[test]
    fn account_guesses_wait_per_account_and_address_and_never_lock_the_owner_out() {
        let mut g = Gate::new(cfg());
        let t0 = Instant::now();
        let (attacker, owner) = (ip(66), ip(7));
        // Guesses against alice from one address: a few free, then waits
        // that grow but stay capped.
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..40 {
            match g.account_attempt(attacker, "alice", now) {
                Ok(()) => {
                    g.account_checked(attacker, "alice", false, now);
                }
                Err(wait) => {
                    assert!(wait <= MAX_BACKOFF, "{wait:?}");
                    waits.push(wait);
                    now += wait;
                }
            }
        }
        assert!(!waits.is_empty(), "guesses were never slowed");
        assert!(waits.windows(2).any(|w| w[1] > w[0]), "waits grow: {waits:?}");
        // The owner, from home, is not held up by any of it.
        assert_eq!(g.account_attempt(owner, "alice", now), Ok(()));
        g.account_checked(owner, "alice", true, now);
        // Nor is another account from the attacker's address held up by
        // more than the address's own wait.
        let other = g.account_attempt(attacker, "bob", now);
        assert!(other.is_ok() || other.is_err_and(|w| w <= MAX_BACKOFF));
    }

    #[test]
    fn failed_passwords_back_off_exponentially_within_bounds() {
        let mut g = Gate::new(cfg());
        let t0 = Instant::now();
        for _ in 0..FREE_PASSWORD_FAILURES {
            assert_eq!(guess(&mut g, ip(1), t0), Ok(Backoff::None));
        }
        assert_eq!(guess(&mut g, ip(1), t0), Ok(Backoff::Started(FIRST_BACKOFF)));
        // Now it waits; another address does not.
        assert_eq!(g.password_attempt(ip(1), t0), Err(FIRST_BACKOFF));
        assert_eq!(guess(&mut g, ip(2), t0), Ok(Backoff::None));
        // The key check answers "retry after" too (no signature spent).
        g.admit(1, ip(1));
        let at = t0 + Duration::from_millis(400);
        assert_eq!(g.authorize(1, at), Err(Hold::RetryAfter(Duration::from_millis(600))));
        let t1 = t0 + FIRST_BACKOFF;
        assert_eq!(guess(&mut g, ip(1), t1), Ok(Backoff::Extended(2 * FIRST_BACKOFF)));
        let t2 = t1 + 2 * FIRST_BACKOFF;
        assert_eq!(guess(&mut g, ip(1), t2), Ok(Backoff::Extended(4 * FIRST_BACKOFF)));
        let mut t = t2 + 4 * FIRST_BACKOFF;
        for _ in 0..30 {
            let Ok(Backoff::Extended(w)) = guess(&mut g, ip(1), t) else { panic!("a try after the wait") };
            assert!(w <= MAX_BACKOFF);
            t += w;
        }
    }

    #[test]
    fn right_passwords_in_parallel_are_not_failures_and_guesses_wait_their_turn() {
        let mut g = Gate::new(cfg());
        let now = Instant::now();
        // An office behind one address logging in at once, all right: a
        // few are checked at once, the rest wait a moment; none counts as
        // a failure, so nobody is held back after.
        let mut let_through = 0;
        for _ in 0..10 {
            match g.password_attempt(ip(1), now) {
                Ok(()) => let_through += 1,
                Err(wait) => assert_eq!(wait, ONE_AT_A_TIME),
            }
        }
        assert_eq!(let_through, FREE_PASSWORD_FAILURES + 1);
        for _ in 0..let_through {
            assert_eq!(g.password_checked(ip(1), true, now), Backoff::None);
        }
        for _ in 0..10 {
            assert_eq!(g.password_attempt(ip(1), now), Ok(()));
            g.password_checked(ip(1), true, now);
        }
        // Once the free failures are spent, one in flight at a time.
        for _ in 0..FREE_PASSWORD_FAILURES {
            let _ = guess(&mut g, ip(2), now);
        }
        let later = now + Duration::from_secs(100);
        assert_eq!(g.password_attempt(ip(2), later), Ok(()));
        assert_eq!(g.password_attempt(ip(2), later), Err(ONE_AT_A_TIME));
        g.password_checked(ip(2), true, later);
        assert_eq!(g.password_attempt(ip(2), later), Ok(()));
    }

    #[test]
    fn guesses_from_one_address_in_six_seconds_stay_few() {
        let mut g = Gate::new(cfg());
        let t0 = Instant::now();
        let mut answered = 0;
        // Twelve guessers, each checked 10 ms after it was let through.
        let mut in_flight: Vec<Instant> = Vec::new();
        for step in 0..600 {
            let now = t0 + Duration::from_millis(10 * step);
            let (done, still): (Vec<_>, Vec<_>) = in_flight.into_iter().partition(|t| *t <= now);
            in_flight = still;
            for _ in done {
                g.password_checked(ip(1), false, now);
                answered += 1;
            }
            for _ in in_flight.len()..12 {
                if g.password_attempt(ip(1), now).is_ok() {
                    in_flight.push(now + Duration::from_millis(10));
                }
            }
        }
        assert!(answered <= 8, "{answered} guesses answered");
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_while() {
        let mut g = Gate::new(cfg());
        let t0 = Instant::now();
        for _ in 0..=FREE_PASSWORD_FAILURES {
            let _ = guess(&mut g, ip(1), t0);
        }
        let later = t0 + FORGET_FAILURES + Duration::from_secs(1);
        assert_eq!(guess(&mut g, ip(1), later), Ok(Backoff::None));
    }
}
