//! Voice packets over UDP: a small clear header, then AES-256-GCM.
//!
//! ```text
//! header (13 bytes, authenticated as associated data):
//!   kind u8 | voice id u32 | counter u64
//! ciphertext of the body, then a 16-byte tag
//! ```
//!
//! - Client → server: `voice id` is the sender's own id (it selects the key),
//!   `counter` counts every packet the client sends in this voice session.
//! - Server → client: `voice id` is the speaker's id, `counter` counts every
//!   packet the server sends to that listener.
//! - Nonce: `direction u8 | 0 0 0 | counter u64`. Keys are fresh for every
//!   voice join ([`voice_keys`], from the TCP session's voice keys and the
//!   join's epoch), so a counter restarting at 0 never repeats a nonce.
//! - Replay: a sliding window of 128 counters ([`ReplayWindow`]).
//!
//! Bodies by kind:
//! - [`Kind::Voice`]: `seq u32 | flags u8 | n u8 | n × (len u16 | opus bytes)`;
//!   the first frame is `seq`, the next ones are `seq-1`, `seq-2`, `seq-3` repeated
//!   for loss recovery (RED-style). Flag bit 0: the frames carry Opus in-band
//!   FEC for the frame before them. The relay forwards this body unchanged.
//! - [`Kind::Keepalive`] (up): padding, [`KEEPALIVE_PAD`] bytes, ignored.
//!   Keeps a listener's address alive; padded so that the challenge it may
//!   draw is never larger than the keepalive.
//! - [`Kind::Challenge`] (down): [`CHALLENGE_LEN`] unpredictable bytes, sent
//!   by the relay to an address it has not seen prove itself ([`path`]).
//! - [`Kind::Proof`] (up): that challenge echoed, from the address that
//!   received it; only then does the relay send there.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::crypto::SessionKeys;

pub mod path;

/// Header length.
pub const HEADER_LEN: usize = 13;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Largest packet either side accepts; anything longer is dropped unread.
pub const MAX_PACKET: usize = 1200;
/// Most frames one voice packet may carry (the primary and three repeats).
pub const MAX_FRAMES: usize = 4;
/// Length of an address challenge (the body of [`Kind::Challenge`] and
/// [`Kind::Proof`]).
pub const CHALLENGE_LEN: usize = 16;
/// Length of a whole challenge packet: the relay challenges only packets at
/// least this long, so a challenge never outweighs what drew it.
pub const CHALLENGE_PACKET: usize = HEADER_LEN + CHALLENGE_LEN + TAG_LEN;
/// Body length of a keepalive: padding that makes it as long as a challenge.
pub const KEEPALIVE_PAD: usize = CHALLENGE_LEN;

/// Packet kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Encoded audio.
    Voice = 1,
    /// "I am still here" from a listener (up).
    Keepalive = 2,
    /// An address challenge echoed back (up).
    Proof = 3,
    /// An address challenge from the relay (down).
    Challenge = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Voice),
            2 => Some(Self::Keepalive),
            3 => Some(Self::Proof),
            4 => Some(Self::Challenge),
            _ => None,
        }
    }
}

/// The clear header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the body is.
    pub kind: Kind,
    /// Sender's id (to the server) or speaker's id (from the server).
    pub id: u32,
    /// Per-direction packet counter (the nonce).
    pub counter: u64,
}

impl Header {
    /// Parses the header of a packet of plausible size; `None` otherwise.
    pub fn parse(packet: &[u8]) -> Option<Self> {
        if packet.len() < HEADER_LEN + TAG_LEN || packet.len() > MAX_PACKET {
            return None;
        }
        let kind = Kind::from_u8(packet[0])?;
        let id = u32::from_be_bytes(packet[1..5].try_into().ok()?);
        let counter = u64::from_be_bytes(packet[5..13].try_into().ok()?);
        Some(Self { kind, id, counter })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
    }
}

/// Which way a key points; part of the nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Up = 1,
    /// Server to client.
    Down = 2,
}

/// The voice keys of one voice join: `(client→server, server→client)`.
pub fn voice_keys(keys: &SessionKeys, epoch: u32) -> ([u8; 32], [u8; 32]) {
    let expand = |ikm: &[u8; 32]| {
        let hk = Hkdf::<Sha256>::new(None, ikm);
        let mut out = [0u8; 32];
        let mut info = b"socket-chatroom v1 voice epoch ".to_vec();
        info.extend_from_slice(&epoch.to_be_bytes());
        // 32 bytes is always a valid HKDF-SHA256 output length.
        #[allow(clippy::expect_used)]
        hk.expand(&info, &mut out).expect("valid length");
        out
    };
    (expand(&keys.c2s_voice), expand(&keys.s2c_voice))
}

fn nonce(dir: Direction, counter: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[0] = dir as u8;
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(n)
}

/// Seals packets in one direction under one key, counting from 0.
pub struct VoiceSealer {
    aead: Aes256Gcm,
    dir: Direction,
    next: u64,
}

impl std::fmt::Debug for VoiceSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceSealer").field("next", &self.next).finish_non_exhaustive()
    }
}

impl VoiceSealer {
    /// A sealer for `dir` under `key`.
    pub fn new(key: &[u8; 32], dir: Direction) -> Self {
        Self { aead: Aes256Gcm::new(&(*key).into()), dir, next: 0 }
    }

    /// Packets sealed so far.
    pub fn count(&self) -> u64 {
        self.next
    }

    /// Seals `body` into `out` (cleared first) with the next counter.
    pub fn seal(&mut self, kind: Kind, id: u32, body: &[u8], out: &mut Vec<u8>) {
        let header = Header { kind, id, counter: self.next };
        self.next += 1;
        out.clear();
        header.write(out);
        out.extend_from_slice(body);
        let (aad, msg) = out.split_at_mut(HEADER_LEN);
        // AES-GCM encryption of a slice cannot fail below 64 GiB.
        #[allow(clippy::expect_used)]
        let tag = self.aead.encrypt_in_place_detached(&nonce(self.dir, header.counter), aad, msg).expect("seal");
        out.extend_from_slice(tag.as_slice());
    }
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Too short, too long, or an unknown kind.
    Malformed,
    /// Failed authentication (forged, altered, wrong key).
    Forged,
    /// Counter already seen or too old.
    Replayed,
}

/// Opens packets from one sender under one key, rejecting replays.
pub struct VoiceOpener {
    aead: Aes256Gcm,
    dir: Direction,
    window: ReplayWindow,
}

impl std::fmt::Debug for VoiceOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceOpener").field("window", &self.window).finish_non_exhaustive()
    }
}

impl VoiceOpener {
    /// An opener for `dir` under `key`.
    pub fn new(key: &[u8; 32], dir: Direction) -> Self {
        Self { aead: Aes256Gcm::new(&(*key).into()), dir, window: ReplayWindow::default() }
    }

    /// Authenticates `packet`, checks its counter against the replay window,
    /// and writes the body into `body` (cleared first).
    ///
    /// # Errors
    ///
    /// Why the packet must be dropped. The window only moves for authentic
    /// packets.
    pub fn open(&mut self, packet: &[u8], body: &mut Vec<u8>) -> Result<Header, DropReason> {
        let header = Header::parse(packet).ok_or(DropReason::Malformed)?;
        if !self.window.fresh(header.counter) {
            return Err(DropReason::Replayed);
        }
        let (aad, rest) = packet.split_at(HEADER_LEN);
        let (msg, tag) = rest.split_at(rest.len() - TAG_LEN);
        body.clear();
        body.extend_from_slice(msg);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| DropReason::Malformed)?;
        self.aead
            .decrypt_in_place_detached(&nonce(self.dir, header.counter), aad, body.as_mut_slice(), &tag.into())
            .map_err(|_| DropReason::Forged)?;
        self.window.insert(header.counter);
        Ok(header)
    }
}

/// Sliding replay window over the last 128 counters.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// Highest counter accepted plus one (0: none yet).
    top: u64,
    /// Bit i set: counter `top - 1 - i` was accepted.
    bits: u128,
}

impl ReplayWindow {
    /// Whether `counter` would be accepted (new and not too old).
    pub fn fresh(&self, counter: u64) -> bool {
        if counter >= self.top {
            return true;
        }
        let age = self.top - 1 - counter;
        age < 128 && self.bits & (1u128 << age) == 0
    }

    /// Records `counter` as seen (call only after authentication).
    pub fn insert(&mut self, counter: u64) {
        if counter >= self.top {
            let shift = counter + 1 - self.top;
            self.bits = if shift >= 128 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.top = counter + 1;
        } else {
            let age = self.top - 1 - counter;
            if age < 128 {
                self.bits |= 1u128 << age;
            }
        }
    }
}

/// A decoded voice body: the speaker's sequence number and up to
/// [`MAX_FRAMES`] Opus frames, newest first (`seq`, `seq-1`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceBody<'a> {
    /// Sequence number of the first frame.
    pub seq: u32,
    /// The frames carry in-band FEC for their predecessors.
    pub fec: bool,
    /// Frames, newest first.
    pub frames: Vec<&'a [u8]>,
}

/// Encodes a voice body into `out` (cleared first).
pub fn encode_voice_body(seq: u32, fec: bool, frames: &[&[u8]], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(u8::from(fec));
    let n = frames.len().min(MAX_FRAMES);
    out.push(n as u8);
    for f in &frames[..n] {
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.extend_from_slice(f);
    }
}

/// Decodes a voice body; `None` if malformed.
pub fn decode_voice_body(body: &[u8]) -> Option<VoiceBody<'_>> {
    let seq = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    let fec = *body.get(4)? & 1 == 1;
    let n = *body.get(5)? as usize;
    if n == 0 || n > MAX_FRAMES {
        return None;
    }
    let mut rest = &body[6..];
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        frames.push(rest.get(2..2 + len)?);
        rest = &rest[2 + len..];
    }
    rest.is_empty().then_some(VoiceBody { seq, fec, frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (VoiceSealer, VoiceOpener) {
        let key = [7u8; 32];
        (VoiceSealer::new(&key, Direction::Up), VoiceOpener::new(&key, Direction::Up))
    }

    #[test]
    fn seal_open_round_trip() {
        let (mut s, mut o) = pair();
        let mut pkt = Vec::new();
        let mut body = Vec::new();
        s.seal(Kind::Voice, 42, b"hello", &mut pkt);
        let h = o.open(&pkt, &mut body).expect("opens");
        assert_eq!((h.kind, h.id, h.counter, body.as_slice()), (Kind::Voice, 42, 0, &b"hello"[..]));
    }

    #[test]
    fn forged_replayed_truncated_and_oversized_are_dropped() {
        let (mut s, mut o) = pair();
        let (mut pkt, mut body) = (Vec::new(), Vec::new());
        s.seal(Kind::Voice, 1, b"abc", &mut pkt);
        let mut forged = pkt.clone();
        forged[HEADER_LEN] ^= 1;
        assert_eq!(o.open(&forged, &mut body), Err(DropReason::Forged));
        let mut wrong_id = pkt.clone();
        wrong_id[1] ^= 1; // the header is authenticated too
        assert_eq!(o.open(&wrong_id, &mut body), Err(DropReason::Forged));
        assert!(o.open(&pkt, &mut body).is_ok());
        assert_eq!(o.open(&pkt, &mut body), Err(DropReason::Replayed));
        assert!(o.open(&pkt[..pkt.len() - 1], &mut body).is_err());
        assert_eq!(o.open(&pkt[..10], &mut body), Err(DropReason::Malformed));
        assert_eq!(o.open(&vec![1u8; MAX_PACKET + 1], &mut body), Err(DropReason::Malformed));
        let other_dir = VoiceOpener::new(&[7u8; 32], Direction::Down).open(&pkt, &mut body);
        assert_eq!(other_dir, Err(DropReason::Forged));
    }

    #[test]
    fn a_padded_keepalive_is_exactly_as_long_as_a_challenge() {
        let mut up = VoiceSealer::new(&[1; 32], Direction::Up);
        let mut down = VoiceSealer::new(&[2; 32], Direction::Down);
        let (mut keepalive, mut challenge) = (Vec::new(), Vec::new());
        up.seal(Kind::Keepalive, 9, &[0; KEEPALIVE_PAD], &mut keepalive);
        down.seal(Kind::Challenge, 9, &[0xC4; CHALLENGE_LEN], &mut challenge);
        assert_eq!((keepalive.len(), challenge.len()), (CHALLENGE_PACKET, CHALLENGE_PACKET));
        let h = Header::parse(&challenge).expect("parses");
        assert_eq!((h.kind, h.id, h.counter), (Kind::Challenge, 9, 0));
        // Sealed down: an up opener (or anyone without the key) cannot read it.
        let mut body = Vec::new();
        assert_eq!(VoiceOpener::new(&[2; 32], Direction::Up).open(&challenge, &mut body), Err(DropReason::Forged));
        assert!(VoiceOpener::new(&[2; 32], Direction::Down).open(&challenge, &mut body).is_ok());
        assert_eq!(body, [0xC4; CHALLENGE_LEN]);
    }

    #[test]
    fn replay_window_accepts_reordering_within_128() {
        let mut w = ReplayWindow::default();
        for c in [5, 3, 4, 0, 200, 150, 73] {
            assert!(w.fresh(c), "{c}");
            w.insert(c);
            assert!(!w.fresh(c), "{c} again");
        }
        assert!(!w.fresh(72), "older than the window");
        assert!(w.fresh(199));
        assert!(w.fresh(201));
    }

    #[test]
    fn voice_bodies_round_trip_and_reject_garbage() {
        let mut out = Vec::new();
        encode_voice_body(9, true, &[b"new", b"old", b"older"], &mut out);
        let b = decode_voice_body(&out).expect("decodes");
        assert_eq!(b.seq, 9);
        assert!(b.fec);
        assert_eq!(b.frames, vec![&b"new"[..], b"old", b"older"]);
        assert!(decode_voice_body(&out[..out.len() - 1]).is_none());
        assert!(decode_voice_body(&[0, 0, 0, 1, 0, 0]).is_none());
        assert!(decode_voice_body(&[0, 0, 0, 1, 0, 9]).is_none());
    }

    #[test]
    fn each_voice_join_gets_fresh_keys() {
        let keys = SessionKeys::derive(&[1; 32], &[2; 32]);
        let (a_up, a_down) = voice_keys(&keys, 1);
        let (b_up, _) = voice_keys(&keys, 2);
        assert_ne!(a_up, b_up);
        assert_ne!(a_up, a_down);
    }
}
