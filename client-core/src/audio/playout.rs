//! One speaker's playout: the jitter buffer, the decoder's output, and the
//! speed it is played at, so that a speaker whose clock runs fast or slow
//! is followed without a frame concealed or dropped ([`super::drift`]).
//!
//! Each frame's delay is measured as it is taken from the jitter buffer:
//! how long after its due time it starts to play (its wait in the buffer,
//! plus the audio still queued ahead of it here). The delay a talk spurt
//! starts with is the one it keeps, whatever the two clocks do; it moves
//! only in the jitter buffer's whole-frame steps (a concealed frame
//! inserted to let it grow under jitter or loss). The frames are resampled
//! at the speed that holds it, and the mixer takes 20 ms a tick. Only
//! drift is corrected this way: correcting anything faster (the tick a
//! spurt starts on, the target settling) warps speech within a phrase,
//! which PESQ-WB marks down by 0.2-0.8 (measured).

use std::time::Instant;

use super::FRAME;
use super::drift::{PLAYOUT_DEAD_BAND_S, RateControl, Stretch};
use super::jitter::{JitterBuffer, Play};

/// A change of the measured delay larger than this between two frames is
/// a step of the jitter buffer's, not drift, ms.
const STEP_MS: f64 = 5.0;

/// Above this measured jitter (ms) the delay's error is mostly the
/// network's, not the clocks': the playout keeps the clocks' ratio learnt
/// so far and corrects nothing (measured, real clients, 10 % loss and up
/// to 20 ms of jitter each way: 2.43 correcting, 2.86 not; the jitter
/// buffer's own frame steps follow a drifting speaker then, as before).
const CALM_JITTER_MS: f64 = 3.0;

/// One speaker's playout.
#[derive(Debug)]
pub struct Playout {
    /// The speaker's jitter buffer.
    pub jb: JitterBuffer,
    stretch: Stretch,
    control: RateControl,
    /// Resampled audio ready to play.
    ready: Vec<f32>,
    decoded: Vec<f32>,
    /// The delay this talk spurt keeps, ms (`None`: silent).
    kept_ms: Option<f64>,
    /// The last frame's measured delay against the one kept, ms.
    error_ms: f64,
}

impl Default for Playout {
    fn default() -> Self {
        Self::new()
    }
}

impl Playout {
    /// A silent speaker.
    pub fn new() -> Self {
        Self {
            jb: JitterBuffer::new(),
            stretch: Stretch::new(),
            control: RateControl::with_dead_band(PLAYOUT_DEAD_BAND_S),
            ready: Vec::with_capacity(3 * FRAME),
            decoded: vec![0.0; FRAME],
            kept_ms: None,
            error_ms: 0.0,
        }
    }

    /// The speed it plays at (input per output sample).
    pub fn speed(&self) -> f64 {
        self.control.speed()
    }

    /// The last frame's delay against the one this talk spurt keeps, ms.
    pub fn error_ms(&self) -> f64 {
        self.error_ms
    }

    /// Fills `out` (one 20 ms frame) with what to play at tick `now`,
    /// decoding what the jitter buffer gives with `decode`. Returns whether
    /// the speaker is heard (`false`: `out` is left alone).
    pub fn play(&mut self, now: Instant, out: &mut [f32], mut decode: impl FnMut(&Play, &mut [f32])) -> bool {
        while self.ready.len() < out.len() {
            let play = self.jb.pop(now);
            if play == Play::Idle {
                break;
            }
            if let Some(wait) = self.jb.last_wait_ms() {
                // Starts to play after what is queued here.
                let delay = wait + (self.ready.len() as f64 + self.stretch.pending()) * 1000.0 / f64::from(super::RATE);
                let kept = *self.kept_ms.get_or_insert(delay);
                // A step is the jitter buffer's doing (a frame inserted to
                // let the delay grow, one dropped to cut it, the timeline
                // moved): the delay kept moves with it. Clocks only drift,
                // 0.02 ms a frame at 0.1 %.
                self.kept_ms =
                    Some(if (delay - kept - self.error_ms).abs() > STEP_MS { delay - self.error_ms } else { kept });
                self.error_ms = delay - self.kept_ms.unwrap_or(delay);
                if self.jb.jitter_ms() < CALM_JITTER_MS {
                    self.control.update(self.error_ms / 1000.0, FRAME as f64 / f64::from(super::RATE));
                } else {
                    self.control.hold();
                }
            }
            self.decoded.fill(0.0);
            decode(&play, &mut self.decoded);
            self.stretch.process(&self.decoded, self.control.speed(), &mut self.ready);
        }
        if self.ready.is_empty() {
            if self.kept_ms.take().is_some() {
                self.error_ms = 0.0;
                self.stretch.reset();
                self.control.restart();
            }
            return false;
        }
        let n = out.len().min(self.ready.len());
        out[..n].copy_from_slice(&self.ready[..n]);
        out[n..].fill(0.0);
        self.ready.drain(..n);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A "decoder" whose frame `seq` is a ramp: sample `k` is `seq × 960 +
    /// k` (mod 2²¹, exact in f32), so what plays says what was captured when.
    fn ramp(play: &Play, out: &mut [f32]) {
        if let Play::Frame(f) = play {
            let seq = u64::from_le_bytes(f.as_slice().try_into().unwrap_or([0; 8]));
            for (k, s) in out.iter_mut().enumerate() {
                *s = ((seq * FRAME as u64 + k as u64) % (1 << 21)) as f32;
            }
        }
    }

    /// A talker whose clock runs `talker` times as fast as the listener's
    /// sends frames (small deterministic jitter, 2-6 ms on the way) for ten
    /// minutes, one talk spurt; the listener plays a frame every 20 ms.
    /// Returns the worst distance of the delay (from capture to playback,
    /// read off the ramp) from the delay the spurt started with, ms, the
    /// jitter buffer's counters and the speed played at in the end.
    fn ten_minutes(talker: f64) -> (f64, crate::audio::jitter::JitterStats, f64) {
        let t0 = Instant::now();
        let mut p = Playout::new();
        let mut out = vec![0.0f32; FRAME];
        let (mut sent, mut rng) = (0u64, 0x2545_F491u64);
        let mut next_at = (20_000.0 / talker) as u64 + 2_000;
        let mut offset = None;
        let mut worst: f64 = 0.0;
        let ticks = 10 * 60 * 50;
        for tick in 0..ticks {
            let now_us = tick * 20_000 + 7_000;
            // Frames the talker has finished by now (frame i at 20 (i+1) ms of its clock).
            while next_at <= now_us {
                p.jb.push(sent as u32, false, &[&sent.to_le_bytes()], t0 + Duration::from_micros(next_at));
                sent += 1;
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                next_at = ((sent + 1) as f64 * 20_000.0 / talker) as u64 + 2_000 + (rng >> 33) % 4_000;
            }
            let now = t0 + Duration::from_micros(now_us);
            if !p.play(now, &mut out, ramp) {
                continue;
            }
            // Sample 480 of this tick plays at now + 10 ms; it was captured
            // at (its index) / 48 kHz of the talker's clock.
            let idx = f64::from(out[480]);
            let played_us = now_us as f64 + 10_000.0;
            // Unwrap the ramp against the frames sent so far.
            let sent_samples = (sent * FRAME as u64) as f64;
            let wraps = ((sent_samples - idx) / (1u64 << 21) as f64).floor();
            let captured_us = (idx + wraps * (1u64 << 21) as f64) / 48.0 * 1000.0 / talker;
            let delay_ms = (played_us - captured_us) / 1000.0;
            // The delay the talk spurt started with (on its first tick) is its target.
            let target = *offset.get_or_insert(delay_ms);
            worst = worst.max((delay_ms - target).abs());
        }
        (worst, p.jb.stats, p.speed())
    }

    #[test]
    fn a_talker_whose_clock_runs_fast_or_slow_is_followed_without_a_frame_lost() {
        for talker in [1.001, 0.999, 1.0] {
            let (worst, stats, speed) = ten_minutes(talker);
            eprintln!("talker clock ×{talker}: worst {worst:.1} ms off, speed {speed:.5}, {stats:?}");
            assert!(worst <= 10.0, "talker clock ×{talker}: the delay strayed {worst:.1} ms from its target");
            assert_eq!(
                (stats.concealed, stats.skipped, stats.late, stats.stretched),
                (0, 0, 0, 0),
                "talker clock ×{talker}: {stats:?}"
            );
            assert!(stats.received >= 29_900, "{stats:?}");
        }
    }
}
