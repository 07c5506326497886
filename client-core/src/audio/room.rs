//! A test room: an echo path without a sound card. What the client plays
//! goes through a synthetic room response (a direct path after a chosen
//! delay at −6 dB, then a few weaker, decaying reflections) and comes back
//! on top of the near-end input, as laptop speakers and a microphone would
//! give it — so echo cancellation can be tried and measured on any machine
//! (`client-cli --voice --echo-room MS`, the echo tests).
//!
//! [`EchoPath`] is the room itself, sans-IO, sample by sample; [`open`]
//! makes it an endpoint pair paced in real time like a device: every 10 ms
//! the speaker plays 10 ms of what the client queued (after a 20 ms
//! start-up buffer, like a device's, and silence when the queue runs dry)
//! into the WAV or `null` output, and the microphone delivers 10 ms of the
//! near-end WAV plus the room's echo of what the speaker played.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::device::{Capture, Input, Output, Playback, open_playback};
use super::resample::Resampler;
use super::{AudioError, DENOISE_FRAME as STEP_SAMPLES, FRAME, RATE};

/// A synthetic room: how long the speaker's sound takes to reach the
/// microphone and how loud it arrives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Room {
    /// Delay of the direct path (speaker to microphone, device buffers
    /// included), ms.
    pub delay_ms: u32,
    /// Gain of the direct path, dB.
    pub gain_db: f32,
}

impl Room {
    /// The shortest and longest delays a room may have, ms.
    pub const DELAYS_MS: std::ops::RangeInclusive<u32> = 1..=500;

    /// A room with the direct path after `delay_ms` at −6 dB.
    pub fn new(delay_ms: u32) -> Self {
        Self { delay_ms, gain_db: -6.0 }
    }

    /// The impulse response as (delay in samples, gain) taps: the direct
    /// path, then reflections over the next 30 ms, each weaker (about 20 dB
    /// below the direct path by the end), alternating in sign.
    pub fn taps(&self) -> Vec<(usize, f32)> {
        let direct = self.delay_ms as usize * RATE as usize / 1000;
        let gain = 10f32.powf(self.gain_db / 20.0);
        let mut taps = vec![(direct, gain)];
        // Reflections at irregular spacings (a few ms apart, as walls at
        // different distances give), decaying.
        let mut at = direct;
        for (k, step_ms) in [2.3f32, 3.1, 4.4, 5.2, 6.7, 7.9].iter().enumerate() {
            at += (step_ms * RATE as f32 / 1000.0) as usize;
            let level = gain * 0.45 * (0.62f32).powi(k as i32);
            taps.push((at, if k % 2 == 0 { -level } else { level }));
        }
        taps
    }
}

/// The room's echo, sample by sample: feed what the speaker plays, get what
/// the microphone picks up of it.
#[derive(Debug, Clone)]
pub struct EchoPath {
    taps: Vec<(usize, f32)>,
    history: Vec<f32>,
    pos: usize,
}

impl EchoPath {
    /// The echo path of `room`.
    pub fn new(room: Room) -> Self {
        let taps = room.taps();
        let len = taps.iter().map(|(d, _)| d + 1).max().unwrap_or(1);
        Self { taps, history: vec![0.0; len], pos: 0 }
    }

    /// The speaker plays `played`; returns the echo the microphone hears at
    /// the same instant.
    pub fn next(&mut self, played: f32) -> f32 {
        let len = self.history.len();
        self.history[self.pos] = played;
        let echo = self.taps.iter().map(|(d, g)| g * self.history[(self.pos + len - d) % len]).sum();
        self.pos = (self.pos + 1) % len;
        echo
    }
}

/// Opens the test room: a capture that hears the near-end `input` (a WAV
/// file, or nothing) plus the echo of what is played, and a playback that
/// plays into the room and on to `output` (a WAV file, or nowhere). Both
/// at 48 kHz mono; the capture ends when the WAV does.
///
/// # Errors
///
/// [`AudioError::Device`] for a device input or output (the room stands
/// in for them); [`AudioError::Wav`] for an unreadable input or
/// unwritable output.
pub fn open(room: Room, input: &Input, output: &Output) -> Result<(Capture, Playback), AudioError> {
    let near = match input {
        Input::Wav(path) => {
            let (rate, channels, samples) = super::wav::read_all(path)?;
            let mut mono = Vec::with_capacity(samples.len());
            Resampler::new(rate, RATE, channels)?.process(&samples, &mut mono);
            Some(mono)
        }
        Input::Null => None,
        Input::Device(_) => return Err(AudioError::Device("the echo room takes a WAV file or null as input".into())),
    };
    if matches!(output, Output::Device(_)) {
        return Err(AudioError::Device("the echo room takes a WAV file or null as output".into()));
    }
    let mut speaker = open_playback(output)?;
    let (play_tx, mut play_rx) = rtrb::RingBuffer::<f32>::new(RATE as usize * 2);
    let (mut mic_tx, mic_rx) = rtrb::RingBuffer::<f32>::new(RATE as usize * 2);
    let stop = Arc::new(AtomicBool::new(false));
    let ended = Arc::new(AtomicBool::new(false));
    let (stop2, ended2) = (stop.clone(), ended.clone());
    let mut path = EchoPath::new(room);
    let thread = std::thread::Builder::new()
        .name("echo-room".into())
        .spawn(move || {
            let step = Duration::from_millis(10);
            let start = Instant::now();
            let (mut tick, mut heard) = (0u32, 0usize);
            let mut buffering = true;
            let mut chunk = [0.0f32; STEP_SAMPLES];
            while !stop2.load(Ordering::SeqCst) {
                if let Some(wait) = (start + step * tick).checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                tick += 1;
                // Only what the speaker plays now leaves the ring, so its
                // fill is the playback queue the engine sees.
                if buffering && play_rx.slots() >= FRAME {
                    buffering = false;
                }
                chunk.fill(0.0);
                if !buffering {
                    for s in &mut chunk {
                        match play_rx.pop() {
                            Ok(v) => *s = v,
                            // Ran dry: silence, then buffer again, as a device would.
                            Err(_) => buffering = true,
                        }
                    }
                }
                for played in chunk {
                    let _ = speaker.ring.push(played);
                    let near_end = near.as_ref().and_then(|n| n.get(heard).copied()).unwrap_or(0.0);
                    heard += 1;
                    let _ = mic_tx.push(near_end + path.next(played));
                }
                if near.as_ref().is_some_and(|n| heard >= n.len()) {
                    ended2.store(true, Ordering::SeqCst);
                }
            }
            drop(speaker);
        })
        .map_err(|e| AudioError::Device(format!("cannot start the echo room: {e}")))?;
    let guard_stop = stop.clone();
    let capture = Capture::new(RATE, 1, mic_rx, ended, stop, thread);
    let playback = Playback::detached(RATE, 1, play_tx, guard_stop);
    Ok((capture, playback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_is_the_played_signal_delayed_and_six_db_down() {
        let mut path = EchoPath::new(Room::new(20));
        let delay = 960;
        let echo: Vec<f32> = (0..4000).map(|i| path.next(if i == 0 { 1.0 } else { 0.0 })).collect();
        assert!(echo[..delay].iter().all(|e| *e == 0.0), "nothing before the direct path");
        assert!((echo[delay] - 0.501).abs() < 0.001, "−6 dB: {}", echo[delay]);
        let reflections: Vec<f32> = echo[delay + 1..].iter().copied().filter(|e| *e != 0.0).collect();
        assert_eq!(reflections.len(), 6);
        assert!(reflections.iter().all(|r| r.abs() < 0.25), "{reflections:?}");
    }
}
