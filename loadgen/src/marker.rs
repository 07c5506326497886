//! What the load generator puts in the messages it sends, so a receiver can
//! tell who sent it, its number, and when (one monotonic clock per process:
//! senders and receivers live in the same process).

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's first call: the timestamp carried in
/// every message.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The marker clock's reading at `at` (0 for a moment before its start).
pub fn ns_at(at: Instant) -> u64 {
    at.saturating_duration_since(*EPOCH.get_or_init(Instant::now)).as_nanos() as u64
}

/// A text message's marker: `LG|sender|seq|ns`.
pub fn text(sender: u32, seq: u64, ns: u64) -> String {
    format!("LG|{sender}|{seq}|{ns}")
}

/// `(sender, seq, ns)` of a text marker; `None` for any other text.
pub fn parse_text(text: &str) -> Option<(u32, u64, u64)> {
    let mut it = text.strip_prefix("LG|")?.split('|');
    let sender = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let ns = it.next()?.parse().ok()?;
    it.next().is_none().then_some((sender, seq, ns))
}

/// Voice payloads sent while the relay learns everyone's address; not counted.
pub const WARMUP: u8 = 0;
/// Voice payloads of the measured window.
pub const MEASURED: u8 = 1;

const VOICE_MAGIC: &[u8; 4] = b"LGv1";
/// Bytes of a voice marker; the rest of the payload is filler.
pub const VOICE_MARKER_LEN: usize = 4 + 1 + 4 + 8 + 8;

/// A voice payload of `len` bytes (at least [`VOICE_MARKER_LEN`]) carrying
/// a marker, then filler that does not compress.
pub fn voice(phase: u8, speaker: u32, seq: u64, ns: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(VOICE_MAGIC);
    out.push(phase);
    out.extend_from_slice(&speaker.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ns.to_le_bytes());
    let mut x = ns ^ (seq << 17) ^ u64::from(speaker) ^ 0x9E37_79B9_7F4A_7C15;
    while out.len() < len.max(VOICE_MARKER_LEN) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
}

/// `(phase, speaker, seq, ns)` of a voice payload; `None` if it is not ours.
pub fn parse_voice(payload: &[u8]) -> Option<(u8, u32, u64, u64)> {
    let rest = payload.strip_prefix(VOICE_MAGIC)?;
    let phase = *rest.first()?;
    let speaker = u32::from_le_bytes(rest.get(1..5)?.try_into().ok()?);
    let seq = u64::from_le_bytes(rest.get(5..13)?.try_into().ok()?);
    let ns = u64::from_le_bytes(rest.get(13..21)?.try_into().ok()?);
    Some((phase, speaker, seq, ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_markers_round_trip_and_reject_anything_else() {
        let t = text(7, 12_345, 987_654_321);
        assert_eq!(parse_text(&t), Some((7, 12_345, 987_654_321)));
        for other in ["hello", "LG|1|2", "LG|1|2|3|4", "LG|x|2|3", "lg|1|2|3", ""] {
            assert_eq!(parse_text(other), None, "{other:?}");
        }
    }

    #[test]
    fn voice_markers_round_trip_at_opus_sizes() {
        let mut p = Vec::new();
        voice(MEASURED, 3, 99, 123_456_789, 80, &mut p);
        assert_eq!(p.len(), 80);
        assert_eq!(parse_voice(&p), Some((MEASURED, 3, 99, 123_456_789)));
        voice(WARMUP, 1, 0, 1, 4, &mut p);
        assert_eq!(p.len(), VOICE_MARKER_LEN, "never shorter than the marker");
        assert_eq!(parse_voice(&p[..VOICE_MARKER_LEN - 1]), None);
        assert_eq!(parse_voice(b"OggS and more bytes than a marker"), None);
    }

    #[test]
    fn the_clock_moves_forward_and_reads_past_moments() {
        let a = now_ns();
        let then = Instant::now();
        let b = now_ns();
        assert!(b >= a);
        let at = ns_at(then);
        assert!(a <= at && at <= b);
        assert!(ns_at(then + std::time::Duration::from_millis(5)) >= at + 5_000_000);
    }
}
