//! Decoding one speaker's Opus frames: a frame, its recovery from the next
//! frame's in-band FEC, or concealment of a lost one, as the jitter buffer
//! says.

use super::jitter::Play;
use super::{AudioError, codec_error};

/// Decoder complexity: neural concealment of lost frames and enhancement
/// of low-bitrate speech (OSCE) on.
pub const DECODER_COMPLEXITY: i32 = 7;

/// Decodes one speaker's frames.
pub struct Decoder {
    inner: codec::Decoder,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoder")
    }
}

impl Decoder {
    /// A decoder at 48 kHz mono.
    ///
    /// # Errors
    ///
    /// [`AudioError::Codec`] if Opus fails to start.
    pub fn new() -> Result<Self, AudioError> {
        Self::with_complexity(DECODER_COMPLEXITY)
    }

    /// A decoder at another libopus complexity (0–10; below 5 without the
    /// neural concealment, below 7 without the speech enhancement).
    ///
    /// # Errors
    ///
    /// [`AudioError::Codec`] if Opus fails to start.
    pub fn with_complexity(complexity: i32) -> Result<Self, AudioError> {
        Ok(Self { inner: codec::Decoder::new(complexity).map_err(codec_error)? })
    }

    /// Decodes `frame` into `out` (960 samples). Garbage yields silence; a
    /// shorter frame (a sender using 2.5–10 ms frames) is padded with silence.
    pub fn frame(&mut self, frame: &[u8], out: &mut [f32]) {
        match self.inner.decode(frame, out, false) {
            Ok(n) if n < out.len() => out[n..].fill(0.0),
            Ok(_) => {}
            Err(_) => out.fill(0.0),
        }
    }

    /// Recovers the frame before `next` from its in-band FEC (concealment
    /// if it has none).
    pub fn fec(&mut self, next: &[u8], out: &mut [f32]) {
        if self.inner.decode(next, out, true).is_err() {
            self.conceal(out);
        }
    }

    /// Decodes what the jitter buffer says to play (nothing for
    /// [`Play::Idle`]).
    pub fn play(&mut self, play: &Play, out: &mut [f32]) {
        match play {
            Play::Idle => {}
            Play::Frame(f) => self.frame(f, out),
            Play::Fec(next) => self.fec(next, out),
            Play::Conceal => self.conceal(out),
        }
    }

    /// Conceals a lost frame.
    pub fn conceal(&mut self, out: &mut [f32]) {
        if self.inner.decode(&[], out, false).is_err() {
            out.fill(0.0);
        }
    }
}
