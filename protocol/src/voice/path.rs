//! Return routability of a voice member's address, like QUIC's path
//! validation: the relay sends to an address only after that address has
//! echoed an unpredictable challenge in an authenticated packet.
//!
//! [`PathCheck`] is the rule, sans-IO: the relay feeds it every
//! *authenticated* packet with its source address, the time and a source of
//! random challenges, and acts on the [`PathVerdict`]; it asks
//! [`PathCheck::destination`] where (if anywhere) the member may be sent to.
//!
//! - An authenticated packet from an unproven address draws at most one
//!   challenge, sent to that address, and only if the packet is at least
//!   [`CHALLENGE_PACKET`] bytes (so a challenge is never larger than what
//!   drew it; keepalives are padded to that length).
//! - Only a [`Kind::Proof`] carrying the pending challenge, from the address
//!   it was sent to, proves that address. A forged-source or replayed packet
//!   (the replay window stops replays before this) therefore cannot redirect
//!   the stream, and the victim of a forged source gets one challenge per
//!   authenticated packet at most, never relayed voice.
//! - A proven address that stays silent for [`ADDRESS_TIMEOUT`] is no longer
//!   sent to (it may have changed hands, e.g. a NAT mapping expired); the
//!   member's next packet draws a new challenge.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::{CHALLENGE_LEN, CHALLENGE_PACKET, Kind};

/// Listeners send a keepalive after this long without sending anything.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);

/// A proven address not heard from for this long (six keepalive intervals)
/// is no longer sent to.
pub const ADDRESS_TIMEOUT: Duration = Duration::from_secs(3);

/// At most one challenge per member this often (a lost challenge is sent
/// again on the member's next packet after this).
pub const CHALLENGE_INTERVAL: Duration = Duration::from_millis(100);

/// What to do with an authenticated packet, as far as its address goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PathVerdict {
    /// From the proven address, which is refreshed.
    Proven,
    /// From an unproven address: seal this challenge (kind
    /// [`Kind::Challenge`], the member's down key) and send it there.
    Challenge([u8; CHALLENGE_LEN]),
    /// The pending challenge echoed from the address it went to: the member
    /// is sent to there from now on.
    Moved,
    /// From an unproven address, and no challenge now (the packet is too
    /// small to answer, or a challenge went out moments ago).
    Unproven,
}

impl std::fmt::Debug for PathVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The challenge value stays out of logs.
        match self {
            Self::Proven => f.write_str("Proven"),
            Self::Challenge(_) => f.write_str("Challenge(..)"),
            Self::Moved => f.write_str("Moved"),
            Self::Unproven => f.write_str("Unproven"),
        }
    }
}

/// A challenge sent and not yet echoed.
#[derive(Clone)]
struct Pending {
    addr: SocketAddr,
    value: [u8; CHALLENGE_LEN],
    /// When it was last sent.
    sent: Instant,
}

/// The address state of one voice member (see the module docs).
#[derive(Clone, Default)]
pub struct PathCheck {
    /// The proven address and when it was last heard from.
    proven: Option<(SocketAddr, Instant)>,
    pending: Option<Pending>,
    last_challenge: Option<Instant>,
}

impl std::fmt::Debug for PathCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathCheck")
            .field("proven", &self.proven.map(|(a, _)| a))
            .field("pending", &self.pending.as_ref().map(|p| p.addr))
            .finish()
    }
}

impl PathCheck {
    /// No address known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the member may be sent to at `now`: its proven address, unless
    /// that has been silent for [`ADDRESS_TIMEOUT`].
    #[inline]
    pub fn destination(&self, now: Instant) -> Option<SocketAddr> {
        match self.proven {
            Some((addr, heard)) if now.saturating_duration_since(heard) <= ADDRESS_TIMEOUT => Some(addr),
            _ => None,
        }
    }

    /// Takes an authenticated (and fresh: replay-checked) packet of `kind`
    /// with `body`, `packet_len` bytes long, from `from` at `now`.
    /// `fresh_challenge` is called only when a new challenge is needed and
    /// must return unpredictable bytes.
    pub fn on_authentic(
        &mut self,
        from: SocketAddr,
        kind: Kind,
        body: &[u8],
        packet_len: usize,
        now: Instant,
        fresh_challenge: impl FnOnce() -> [u8; CHALLENGE_LEN],
    ) -> PathVerdict {
        if self.destination(now) == Some(from) {
            self.proven = Some((from, now));
            return PathVerdict::Proven;
        }
        if kind == Kind::Proof
            && let Some(p) = &self.pending
            && p.addr == from
            && now.saturating_duration_since(p.sent) <= ADDRESS_TIMEOUT
            && bool::from(body.ct_eq(&p.value))
        {
            self.proven = Some((from, now));
            self.pending = None;
            return PathVerdict::Moved;
        }
        if packet_len < CHALLENGE_PACKET
            || self.last_challenge.is_some_and(|t| now.saturating_duration_since(t) < CHALLENGE_INTERVAL)
        {
            return PathVerdict::Unproven;
        }
        self.last_challenge = Some(now);
        let value = match &mut self.pending {
            // The same address asked again (its echo may have been lost):
            // the same value, so an echo of either copy counts.
            Some(p) if p.addr == from => {
                p.sent = now;
                p.value
            }
            _ => {
                let value = fresh_challenge();
                self.pending = Some(Pending { addr: from, value, sent: now });
                value
            }
        };
        PathVerdict::Challenge(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const PAD: usize = CHALLENGE_PACKET;

    /// A check whose member proved `a` at `t0`.
    fn proven_at(a: SocketAddr, t0: Instant) -> PathCheck {
        let mut p = PathCheck::new();
        let PathVerdict::Challenge(c) = p.on_authentic(a, Kind::Keepalive, &[0; 16], PAD, t0, || [7; 16]) else {
            panic!("first packet not challenged")
        };
        assert_eq!(p.on_authentic(a, Kind::Proof, &c, PAD, t0, || [8; 16]), PathVerdict::Moved);
        p
    }

    #[test]
    fn the_first_address_is_used_only_after_it_echoes_the_challenge() {
        let t0 = Instant::now();
        let mut p = PathCheck::new();
        let v = p.on_authentic(addr(1), Kind::Keepalive, &[0; 16], PAD, t0, || [7; 16]);
        assert_eq!(v, PathVerdict::Challenge([7; 16]));
        assert_eq!(p.destination(t0), None, "nothing is sent before the echo");
        // A wrong value, or the right one from elsewhere, proves nothing.
        let t1 = t0 + CHALLENGE_INTERVAL;
        assert_eq!(p.on_authentic(addr(1), Kind::Proof, &[6; 16], 10, t1, || [9; 16]), PathVerdict::Unproven);
        assert_eq!(p.on_authentic(addr(2), Kind::Proof, &[7; 16], 10, t1, || [9; 16]), PathVerdict::Unproven);
        // Only a proof carries it: the same bytes as voice do not.
        assert_eq!(p.on_authentic(addr(1), Kind::Voice, &[7; 16], 10, t1, || [9; 16]), PathVerdict::Unproven);
        assert_eq!(p.destination(t1), None);
        assert_eq!(p.on_authentic(addr(1), Kind::Proof, &[7; 16], PAD, t1, || [9; 16]), PathVerdict::Moved);
        assert_eq!(p.destination(t1), Some(addr(1)));
        assert_eq!(p.on_authentic(addr(1), Kind::Voice, &[], 30, t1, || [9; 16]), PathVerdict::Proven);
    }

    #[test]
    fn a_forged_source_gets_one_small_challenge_and_never_the_stream() {
        let t0 = Instant::now();
        let (home, victim) = (addr(1), addr(2));
        let mut p = proven_at(home, t0);
        // One authenticated packet from the victim's address: one challenge.
        let t1 = t0 + CHALLENGE_INTERVAL;
        let v = p.on_authentic(victim, Kind::Keepalive, &[0; 16], PAD, t1, || [5; 16]);
        assert!(matches!(v, PathVerdict::Challenge(_)));
        // More within the interval: none (at most one per packet, and fewer).
        for i in 0..10 {
            let v = p.on_authentic(victim, Kind::Voice, &[0; 100], 200, t1 + Duration::from_millis(i), || [5; 16]);
            assert_eq!(v, PathVerdict::Unproven);
        }
        // The stream stays home.
        assert_eq!(p.destination(t1), Some(home));
        assert_eq!(p.on_authentic(home, Kind::Voice, &[], 30, t1, || [5; 16]), PathVerdict::Proven);
    }

    #[test]
    fn a_packet_smaller_than_a_challenge_draws_none() {
        let t0 = Instant::now();
        let mut p = PathCheck::new();
        let v = p.on_authentic(addr(1), Kind::Keepalive, &[], CHALLENGE_PACKET - 1, t0, || [1; 16]);
        assert_eq!(v, PathVerdict::Unproven);
        let v = p.on_authentic(addr(1), Kind::Keepalive, &[0; 16], CHALLENGE_PACKET, t0, || [1; 16]);
        assert_eq!(v, PathVerdict::Challenge([1; 16]));
    }

    #[test]
    fn a_repeated_challenge_to_the_same_address_keeps_its_value() {
        let t0 = Instant::now();
        let mut p = PathCheck::new();
        let mut fresh = 0u8;
        let mut next = || {
            fresh += 1;
            [fresh; 16]
        };
        let first = p.on_authentic(addr(1), Kind::Keepalive, &[0; 16], PAD, t0, &mut next);
        let t1 = t0 + CHALLENGE_INTERVAL;
        let again = p.on_authentic(addr(1), Kind::Keepalive, &[0; 16], PAD, t1, &mut next);
        assert_eq!(first, again);
        // Another address replaces it with a new value; the old echo fails.
        let t2 = t1 + CHALLENGE_INTERVAL;
        let other = p.on_authentic(addr(2), Kind::Keepalive, &[0; 16], PAD, t2, &mut next);
        assert_eq!(other, PathVerdict::Challenge([2; 16]));
        assert_eq!(p.on_authentic(addr(1), Kind::Proof, &[1; 16], 10, t2, &mut next), PathVerdict::Unproven);
        assert_eq!(p.on_authentic(addr(2), Kind::Proof, &[2; 16], 10, t2, &mut next), PathVerdict::Moved);
    }

    #[test]
    fn a_silent_address_stops_receiving_and_must_prove_itself_again() {
        let t0 = Instant::now();
        let mut p = proven_at(addr(1), t0);
        let t1 = t0 + ADDRESS_TIMEOUT;
        assert_eq!(p.destination(t1), Some(addr(1)), "still within the timeout");
        // Heard at t1: good for another timeout.
        assert_eq!(p.on_authentic(addr(1), Kind::Keepalive, &[0; 16], PAD, t1, || [3; 16]), PathVerdict::Proven);
        let t2 = t1 + ADDRESS_TIMEOUT + Duration::from_millis(1);
        assert_eq!(p.destination(t2), None, "silent too long");
        // Coming back from the same address is a new address: challenged.
        let v = p.on_authentic(addr(1), Kind::Keepalive, &[0; 16], PAD, t2, || [3; 16]);
        assert_eq!(v, PathVerdict::Challenge([3; 16]));
        assert_eq!(p.destination(t2), None);
        assert_eq!(p.on_authentic(addr(1), Kind::Proof, &[3; 16], PAD, t2, || [4; 16]), PathVerdict::Moved);
        assert_eq!(p.destination(t2), Some(addr(1)));
    }

    #[test]
    fn a_stale_challenge_cannot_be_echoed() {
        let t0 = Instant::now();
        let mut p = PathCheck::new();
        let _ = p.on_authentic(addr(1), Kind::Keepalive, &[0; 16], PAD, t0, || [3; 16]);
        let late = t0 + ADDRESS_TIMEOUT + Duration::from_millis(1);
        assert_ne!(p.on_authentic(addr(1), Kind::Proof, &[3; 16], PAD, late, || [4; 16]), PathVerdict::Moved);
    }
}
