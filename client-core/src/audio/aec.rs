//! Acoustic echo cancellation: what the speakers play comes back through
//! the microphone, and the room would hear itself. WebRTC's AEC3 (the
//! pure-Rust `aec3` port: an adaptive linear filter, a delay estimator
//! that finds the speaker-to-microphone delay by itself, and a residual
//! echo suppressor) removes it, with the room's playback as the reference.
//!
//! Two halves:
//! - [`EchoCanceller`]: the canceller itself, sans-IO: reference frames in
//!   ([`EchoCanceller::render`]), captured frames cleaned in place
//!   ([`EchoCanceller::process`]), in the order they happened.
//! - [`reference`]: the playback side's tap (the mix thread hands over each
//!   frame with the instant it will reach the device) and the capture side's
//!   feed (the send thread takes the frames played up to the end of the
//!   frame it is about to clean), so the canceller sees the two streams in
//!   the order they met in the room, whatever the threads' timing.
//!
//! Everything runs at 48 kHz mono ([`RATE`](super::RATE)); AEC3 works in
//! 10 ms chunks ([`DENOISE_FRAME`](super::DENOISE_FRAME) samples).

use aec3::api::config::EchoCanceller3Config;
use aec3::api::control::EchoControl;
use aec3::audio_processing::aec3::echo_canceller3::EchoCanceller3;
use aec3::audio_processing::audio_buffer::AudioBuffer;
use aec3::audio_processing::stream_config::StreamConfig;

use super::{DENOISE_FRAME as CHUNK, RATE};

/// What the canceller reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EchoMetrics {
    /// Echo return loss enhancement AEC3 estimates, dB.
    pub erle_db: f64,
    /// Echo return loss (speaker to microphone) AEC3 estimates, dB.
    pub erl_db: f64,
    /// The render-to-capture delay AEC3 found, ms.
    pub delay_ms: i32,
}

/// WebRTC AEC3 on 48 kHz mono, fed in any whole number of 10 ms chunks.
pub struct EchoCanceller {
    aec: EchoCanceller3,
    stream: StreamConfig,
    render: AudioBuffer,
    capture: AudioBuffer,
    /// Reference samples short of a whole chunk, kept for the next call.
    render_rest: Vec<f32>,
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller").field("metrics", &self.metrics()).finish_non_exhaustive()
    }
}

impl Default for EchoCanceller {
    fn default() -> Self {
        Self::new()
    }
}

impl EchoCanceller {
    /// A canceller with AEC3's default tuning (the one WebRTC ships).
    pub fn new() -> Self {
        let rate = RATE as usize;
        let buffer = || AudioBuffer::from_sample_rates(rate, 1, rate, 1, rate);
        Self {
            aec: EchoCanceller3::new(EchoCanceller3Config::default(), RATE as i32, 1, 1),
            stream: StreamConfig::new(rate, 1, false),
            render: buffer(),
            capture: buffer(),
            render_rest: Vec::with_capacity(CHUNK),
        }
    }

    /// Feeds what the speakers played (48 kHz mono, ±1.0), in the order it
    /// was played; any length (a partial chunk waits for the rest).
    pub fn render(&mut self, played: &[f32]) {
        let mut played = played;
        if !self.render_rest.is_empty() {
            let take = (CHUNK - self.render_rest.len()).min(played.len());
            self.render_rest.extend_from_slice(&played[..take]);
            played = &played[take..];
            if self.render_rest.len() < CHUNK {
                return;
            }
            let chunk = std::mem::take(&mut self.render_rest);
            self.render_chunk(&chunk);
            self.render_rest = chunk;
            self.render_rest.clear();
        }
        let mut chunks = played.chunks_exact(CHUNK);
        for chunk in &mut chunks {
            self.render_chunk(chunk);
        }
        self.render_rest.extend_from_slice(chunks.remainder());
    }

    fn render_chunk(&mut self, chunk: &[f32]) {
        self.render.copy_from(&[chunk], &self.stream);
        self.render.split_into_frequency_bands();
        self.aec.analyze_render(&mut self.render);
    }

    /// Removes the echo from captured audio (48 kHz mono, ±1.0) in place.
    /// `captured` holds whole 10 ms chunks (a trailing partial chunk is
    /// left as it is).
    pub fn process(&mut self, captured: &mut [f32]) {
        for chunk in captured.chunks_exact_mut(CHUNK) {
            self.capture.copy_from(&[&*chunk], &self.stream);
            self.aec.analyze_capture(&mut self.capture);
            self.capture.split_into_frequency_bands();
            self.aec.process_capture(&mut self.capture, false);
            self.capture.merge_frequency_bands();
            self.capture.copy_to_stream(&self.stream, &mut [chunk]);
        }
    }

    /// AEC3's own estimates.
    pub fn metrics(&self) -> EchoMetrics {
        let m = self.aec.metrics();
        EchoMetrics { erle_db: m.echo_return_loss_enhancement, erl_db: m.echo_return_loss, delay_ms: m.delay_ms }
    }
}

pub mod reference {
    //! The reference path from the playback side to the canceller: each
    //! mixed frame with the instant its first sample reaches the device
    //! (when the frame went into the playback ring plus what was queued
    //! ahead of it), over a lock-free ring; the send side takes every frame
    //! that has started playing by the end of the captured frame it is
    //! about to clean, plus [`LEAD`]. A frame fed a little early only adds
    //! to the delay AEC3 estimates (it searches hundreds of ms); one fed
    //! after its echo was captured could not be cancelled at all, so every
    //! error in these estimates is made towards early.

    use std::time::{Duration, Instant};

    use crate::audio::FRAME;

    /// How far ahead of a captured frame's end the reference is fed.
    pub const LEAD: Duration = Duration::from_millis(10);

    /// Frames the ring holds (one second; the send thread takes them every
    /// 20 ms). If it ever falls further behind, the frames played meanwhile
    /// are not referenced (the tap never waits), and the canceller
    /// re-converges on what follows.
    const CAPACITY: usize = 50;

    /// One played frame and when it reaches the device.
    #[derive(Debug, Clone, Copy)]
    struct Played {
        at: Instant,
        samples: [f32; FRAME],
    }

    /// The playback side: hands over what is played.
    #[derive(Debug)]
    pub struct Tap(rtrb::Producer<Played>);

    /// The capture side: takes what has been played by a given instant.
    #[derive(Debug)]
    pub struct Feed(rtrb::Consumer<Played>);

    /// A connected tap and feed.
    pub fn channel() -> (Tap, Feed) {
        let (p, c) = rtrb::RingBuffer::new(CAPACITY);
        (Tap(p), Feed(c))
    }

    impl Tap {
        /// Hands over one 20 ms frame (48 kHz mono) that starts playing at
        /// `at`. Never blocks; a frame that does not fit (the send side has
        /// stopped taking them) is dropped.
        pub fn played(&mut self, frame: &[f32], at: Instant) {
            if frame.len() != FRAME {
                return;
            }
            let mut samples = [0.0; FRAME];
            samples.copy_from_slice(frame);
            let _ = self.0.push(Played { at, samples });
        }
    }

    impl Feed {
        /// Calls `render` with every frame that starts playing before
        /// `captured_end + LEAD`, oldest first.
        pub fn due(&mut self, captured_end: Instant, mut render: impl FnMut(&[f32])) {
            let until = captured_end + LEAD;
            while let Ok(p) = self.0.peek() {
                if p.at >= until {
                    break;
                }
                render(&p.samples);
                let _ = self.0.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::audio::FRAME;

    /// A deterministic noise burst pattern (speech-like on/off), ±0.3.
    fn bursts(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let on = (i / 9_600) % 3 != 2;
                if on { ((x >> 11) as f32 / (1u64 << 53) as f32 - 0.5) * 0.6 } else { 0.0 }
            })
            .collect()
    }

    fn power(x: &[f32]) -> f64 {
        x.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / x.len().max(1) as f64
    }

    #[test]
    fn removes_a_delayed_echo_of_the_reference() {
        let far = bursts(RATE as usize * 5, 7);
        let delay = 4_800; // 100 ms
        let echo: Vec<f32> = (0..far.len()).map(|i| if i >= delay { 0.5 * far[i - delay] } else { 0.0 }).collect();
        let mut aec = EchoCanceller::new();
        let mut out = echo.clone();
        for (f, c) in far.chunks(FRAME).zip(out.chunks_mut(FRAME)) {
            aec.render(f);
            aec.process(c);
        }
        let tail = RATE as usize * 3;
        let erle = 10.0 * (power(&echo[tail..]) / power(&out[tail..]).max(1e-20)).log10();
        assert!(erle > 25.0, "ERLE {erle:.1} dB; {:?}", aec.metrics());
    }

    #[test]
    fn render_takes_any_length() {
        let mut a = EchoCanceller::new();
        a.render(&[0.1; 300]);
        a.render(&[0.1; 300]);
        assert_eq!(a.render_rest.len(), 120);
        a.render(&[0.1; 1000]);
        assert_eq!(a.render_rest.len(), (600 + 1000) % CHUNK);
    }

    #[test]
    fn the_feed_gives_what_has_played_by_the_end_of_the_capture_plus_the_lead() {
        let (mut tap, mut feed) = reference::channel();
        let t0 = Instant::now();
        for i in 0..5u32 {
            tap.played(&[i as f32; FRAME], t0 + Duration::from_millis(20) * i);
        }
        let mut got = Vec::new();
        feed.due(t0 + Duration::from_millis(25), |f| got.push(f[0]));
        assert_eq!(got, [0.0, 1.0], "the frame at 40 ms starts after 25 + 10 ms");
        feed.due(t0 + Duration::from_millis(31), |f| got.push(f[0]));
        assert_eq!(got, [0.0, 1.0, 2.0]);
        feed.due(t0 + Duration::from_secs(1), |f| got.push(f[0]));
        assert_eq!(got, [0.0, 1.0, 2.0, 3.0, 4.0]);
    }
}
