//! The voice activity gate: when the microphone's frames are sent.
//!
//! The speech probability of the noise suppressor alone opens late: it
//! misses the unvoiced start of a phrase ("sh", "f", "th", "k": 40–100 ms
//! of sound 15–40 dB above the room's noise), so the first syllable came
//! out cut (measured on espeak-ng voices: up to four frames missing at
//! each phrase onset, PESQ-WB 0.3–0.8 below the gate held open). So the
//! gate opens on either of two signs:
//!
//! - speech: the probability reaches the threshold; it stays open for
//!   [`HANGOVER`] frames after the last such frame;
//! - an onset: the frame is [`ONSET_DB`] louder than the room's noise
//!   floor (the quietest frame of the last two seconds) and above
//!   [`ONSET_MIN_DBFS`]; it stays open [`ONSET_HANGOVER`] frames after the
//!   last loud frame, so a click or a knock costs a few frames, not 300 ms.
//!
//! When it opens, the frames just before (the pre-roll, [`PREROLL`]) go
//! too, so the rise of the sound that opened it is heard. Silence and a
//! steady noise never open it: between phrases nothing is sent.
//!
//! A listener cannot tell a pause from late packets (the sequence numbers
//! do not advance while the gate is closed): it takes a packet more than
//! 40 ms behind its place, after its buffer ran dry, as a new talk spurt
//! ([`super::jitter`]), so the pre-roll is played before the frame that
//! opened the gate even after a pause of two frames.

/// Frames of hangover after the last frame the speech probability called
/// speech (300 ms).
pub const HANGOVER: u32 = 15;
/// Frames of hangover after the last loud frame (an onset the speech
/// probability has not confirmed, or the tail of a word), 80 ms.
pub const ONSET_HANGOVER: u32 = 4;
/// How far above the noise floor a frame opens the gate, dB.
pub const ONSET_DB: f32 = 15.0;
/// Below this level (dBFS) no frame opens the gate by its level alone.
pub const ONSET_MIN_DBFS: f32 = -55.0;
/// Frames sent from before the gate opened (40 ms; one missed the
/// unvoiced start of "sh" in one of three espeak-ng voices, measured).
pub const PREROLL: usize = 2;
/// The noise floor is the quietest frame of this many (2 s): the pauses
/// between words keep it low while someone talks, and a fan switched on is
/// followed within the window.
const FLOOR_WINDOW: usize = 100;
/// The floor never goes below this (digital silence), dBFS.
const FLOOR_MIN_DBFS: f32 = -90.0;

/// Level of `samples` (±1.0), dBFS.
pub fn level_dbfs(samples: &[f32]) -> f32 {
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
    10.0 * (power + 1e-12).log10()
}

/// The gate's state, sans-IO: one decision per 20 ms frame.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The last [`FLOOR_WINDOW`] frame levels (a ring).
    levels: [f32; FLOOR_WINDOW],
    heard: usize,
    floor_db: f32,
    hang: u32,
    open: bool,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate that has heard nothing yet.
    pub fn new() -> Self {
        Self { levels: [0.0; FLOOR_WINDOW], heard: 0, floor_db: FLOOR_MIN_DBFS, hang: 0, open: false }
    }

    /// The noise floor it tracks, dBFS.
    pub fn floor_db(&self) -> f32 {
        self.floor_db
    }

    /// Whether the last frame was sent.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Closes the gate at once (mute), keeping the noise floor.
    pub fn close(&mut self) {
        self.hang = 0;
        self.open = false;
    }

    /// Decides for one frame, given its loudest 10 ms level (dBFS, before
    /// noise suppression) and whether the speech probability reached the
    /// threshold. Returns whether the frame is sent.
    pub fn decide(&mut self, level_db: f32, speech: bool) -> bool {
        let level_db = level_db.max(FLOOR_MIN_DBFS);
        // Against the floor before this frame (the first frame sets it).
        let floor = if self.heard == 0 { level_db } else { self.floor_db };
        let onset = level_db >= (floor + ONSET_DB).max(ONSET_MIN_DBFS);
        self.levels[self.heard % FLOOR_WINDOW] = level_db;
        // Counts up to two windows, then keeps its place in the ring.
        self.heard = if self.heard + 1 >= 2 * FLOOR_WINDOW { FLOOR_WINDOW } else { self.heard + 1 };
        self.floor_db = self.levels[..self.heard.min(FLOOR_WINDOW)].iter().copied().fold(f32::MAX, f32::min);
        if speech {
            self.hang = HANGOVER;
        } else if onset {
            self.hang = self.hang.max(ONSET_HANGOVER);
        } else {
            self.hang = self.hang.saturating_sub(1);
        }
        self.open = self.hang > 0;
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_steady_noise_never_open_it() {
        let mut g = Gate::new();
        for _ in 0..500 {
            assert!(!g.decide(-120.0, false));
        }
        // A fan switched on: 40 dB above the silence, steady. It may open
        // the gate for a moment; within seconds the floor has followed.
        let opened: usize = (0..3000).filter(|_| g.decide(-50.0, false)).count();
        assert!(opened <= FLOOR_WINDOW + ONSET_HANGOVER as usize, "open for {opened} frames of steady noise");
        assert!((g.floor_db() + 50.0).abs() < 0.1, "{}", g.floor_db());
        assert!(!g.decide(-49.0, false), "a little louder than the noise is not an onset");
    }

    #[test]
    fn an_unvoiced_onset_opens_it_before_the_speech_probability_does() {
        let mut g = Gate::new();
        for _ in 0..100 {
            g.decide(-60.0, false);
        }
        // "sh" at -38 dBFS: the probability says no, the level says onset.
        assert!(g.decide(-38.0, false));
        assert!(g.decide(-20.0, true));
        // After speech: 300 ms of hangover, then closed.
        let open = (0..40).take_while(|_| g.decide(-60.0, false)).count();
        assert_eq!(open as u32, HANGOVER - 1);
    }

    #[test]
    fn a_click_costs_a_few_frames() {
        let mut g = Gate::new();
        for _ in 0..100 {
            g.decide(-60.0, false);
        }
        assert!(g.decide(-25.0, false));
        let open = (0..40).take_while(|_| g.decide(-60.0, false)).count();
        assert_eq!(open as u32, ONSET_HANGOVER - 1);
    }
}
