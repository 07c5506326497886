//! The audio side of voice: devices and WAV files behind one interface
//! (and a test room that gives them an echo path), resampling, the send
//! pipeline (echo cancellation, noise suppression, voice activity gate,
//! Opus with adaptive protection), the per-speaker decoder and jitter
//! buffer, and the mixer.
//!
//! Everything inside runs at 48 kHz mono in 20 ms frames ([`RATE`],
//! [`FRAME`]); devices and files at other rates or channel counts are
//! converted at the edges.

pub mod aec;
pub mod decoder;
pub mod device;
pub mod jitter;
pub mod mixer;
pub mod pipeline;
pub mod resample;
pub mod room;
pub mod wav;

/// The pipeline's sample rate.
pub const RATE: u32 = 48_000;
/// Samples in one 20 ms frame.
pub const FRAME: usize = 960;
/// Samples nnnoiseless takes at once (10 ms).
pub const DENOISE_FRAME: usize = 480;

/// An audio error a user can act on.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AudioError {
    /// No usable device (for example, no sound card).
    #[error("{0}")]
    Device(String),
    /// A WAV file could not be read or written.
    #[error("{path}: {message}")]
    Wav {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The codec failed.
    #[error("codec: {0}")]
    Codec(String),
}

/// An Opus error as an [`AudioError`].
pub(crate) fn codec_error(e: codec::Error) -> AudioError {
    AudioError::Codec(e.to_string())
}
