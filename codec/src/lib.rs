//! Opus for Socket Chatroom's voice: 48 kHz mono, 20 ms frames, float
//! samples. A small safe wrapper over libopus (bundled by `opusic-sys`,
//! built with its deep-learning features: neural packet-loss concealment
//! and OSCE speech enhancement of low-bitrate frames at decoder complexity
//! 7 and above).
//!
//! This crate is the workspace's only `unsafe` code: each call hands libopus
//! a pointer it created and slices whose lengths are passed alongside.

use std::ffi::{CStr, c_int};
use std::ptr::NonNull;

use opusic_sys as ffi;

/// Sample rate, Hz.
pub const RATE: u32 = 48_000;
/// Largest packet libopus produces for one frame.
pub const MAX_PACKET: usize = 1275;

/// A libopus error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct Error {
    what: &'static str,
    message: String,
}

fn check(what: &'static str, code: c_int) -> Result<c_int, Error> {
    if code >= 0 {
        return Ok(code);
    }
    // SAFETY: opus_strerror returns a pointer to a static NUL-terminated
    // string for any code.
    let message = unsafe { CStr::from_ptr(ffi::opus_strerror(code)) }.to_string_lossy().into_owned();
    Err(Error { what, message })
}

/// An encoder (VOIP application, mono, 48 kHz).
#[derive(Debug)]
pub struct Encoder {
    ptr: NonNull<ffi::OpusEncoder>,
}

// SAFETY: the encoder state is owned by this value alone and libopus keeps
// no thread-local state; `&mut self` serialises every use.
unsafe impl Send for Encoder {}

impl Encoder {
    /// A new encoder for speech.
    ///
    /// # Errors
    ///
    /// If libopus cannot create it.
    pub fn new() -> Result<Self, Error> {
        let mut err = 0;
        // SAFETY: valid arguments; `err` outlives the call.
        let ptr = unsafe { ffi::opus_encoder_create(RATE as i32, 1, ffi::OPUS_APPLICATION_VOIP, &mut err) };
        check("opus_encoder_create", err)?;
        let ptr = NonNull::new(ptr).ok_or(Error { what: "opus_encoder_create", message: "no memory".into() })?;
        Ok(Self { ptr })
    }

    fn set(&mut self, what: &'static str, request: c_int, value: i32) -> Result<(), Error> {
        // SAFETY: a live encoder; every request used here takes one
        // opus_int32 argument.
        check(what, unsafe { ffi::opus_encoder_ctl(self.ptr.as_ptr(), request, value) }).map(drop)
    }

    /// Target bitrate, bits per second.
    ///
    /// # Errors
    ///
    /// If libopus refuses the value.
    pub fn set_bitrate(&mut self, bps: i32) -> Result<(), Error> {
        self.set("set_bitrate", ffi::OPUS_SET_BITRATE_REQUEST, bps)
    }

    /// In-band forward error correction (LBRR) on or off.
    ///
    /// # Errors
    ///
    /// If libopus refuses the value.
    pub fn set_inband_fec(&mut self, on: bool) -> Result<(), Error> {
        self.set("set_inband_fec", ffi::OPUS_SET_INBAND_FEC_REQUEST, i32::from(on))
    }

    /// The packet loss the encoder should expect, per cent.
    ///
    /// # Errors
    ///
    /// If libopus refuses the value.
    pub fn set_packet_loss_perc(&mut self, percent: i32) -> Result<(), Error> {
        self.set("set_packet_loss_perc", ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST, percent)
    }

    /// Encodes one frame (2.5 to 60 ms of samples) into `out`; returns the
    /// packet's length.
    ///
    /// # Errors
    ///
    /// If the frame length is not one Opus takes, or encoding fails.
    pub fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize, Error> {
        let frame =
            c_int::try_from(pcm.len()).map_err(|_| Error { what: "encode", message: "frame too long".into() })?;
        let cap = i32::try_from(out.len()).unwrap_or(i32::MAX);
        // SAFETY: a live encoder; `pcm` holds `frame` samples (mono) and
        // `out` has room for `cap` bytes.
        let n = unsafe { ffi::opus_encode_float(self.ptr.as_ptr(), pcm.as_ptr(), frame, out.as_mut_ptr(), cap) };
        check("encode", n).map(|n| n as usize)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { ffi::opus_encoder_destroy(self.ptr.as_ptr()) }
    }
}

/// A decoder (mono, 48 kHz).
#[derive(Debug)]
pub struct Decoder {
    ptr: NonNull<ffi::OpusDecoder>,
}

// SAFETY: as for `Encoder`.
unsafe impl Send for Decoder {}

impl Decoder {
    /// A new decoder at `complexity` (0–10): 5 and above conceal lost
    /// frames with the neural concealment, 7 and above also enhance
    /// low-bitrate speech (OSCE).
    ///
    /// # Errors
    ///
    /// If libopus cannot create it or refuses the complexity.
    pub fn new(complexity: i32) -> Result<Self, Error> {
        let mut err = 0;
        // SAFETY: valid arguments; `err` outlives the call.
        let ptr = unsafe { ffi::opus_decoder_create(RATE as i32, 1, &mut err) };
        check("opus_decoder_create", err)?;
        let ptr = NonNull::new(ptr).ok_or(Error { what: "opus_decoder_create", message: "no memory".into() })?;
        let dec = Self { ptr };
        // SAFETY: a live decoder; OPUS_SET_COMPLEXITY takes one opus_int32.
        check("set_complexity", unsafe {
            ffi::opus_decoder_ctl(dec.ptr.as_ptr(), ffi::OPUS_SET_COMPLEXITY_REQUEST, complexity)
        })?;
        Ok(dec)
    }

    /// Decodes `packet` into `out`; with `fec`, decodes instead the frame
    /// before it from its in-band FEC; an empty `packet` conceals a lost
    /// frame of `out.len()` samples. Returns the samples written.
    ///
    /// # Errors
    ///
    /// If the packet is corrupt or `out` is too short for it.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32], fec: bool) -> Result<usize, Error> {
        let len =
            i32::try_from(packet.len()).map_err(|_| Error { what: "decode", message: "packet too long".into() })?;
        let data = if packet.is_empty() { std::ptr::null() } else { packet.as_ptr() };
        let frame = c_int::try_from(out.len()).unwrap_or(c_int::MAX);
        // SAFETY: a live decoder; `data` points to `len` bytes (or is null
        // for a loss) and `out` has room for `frame` samples (mono).
        let n =
            unsafe { ffi::opus_decode_float(self.ptr.as_ptr(), data, len, out.as_mut_ptr(), frame, c_int::from(fec)) };
        check("decode", n).map(|n| n as usize)
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { ffi::opus_decoder_destroy(self.ptr.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<f32> {
        (0..n).map(|i| 0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / RATE as f32).sin()).collect()
    }

    #[test]
    fn round_trips_a_tone_and_conceals_a_loss() {
        let mut enc = Encoder::new().expect("encoder");
        enc.set_bitrate(32_000).expect("bitrate");
        let mut dec = Decoder::new(7).expect("decoder");
        let (mut packet, mut out) = (vec![0u8; MAX_PACKET], vec![0.0f32; 960]);
        let mut energy = 0.0;
        for _ in 0..10 {
            let n = enc.encode(&tone(960), &mut packet).expect("encode");
            assert_eq!(dec.decode(&packet[..n], &mut out, false).expect("decode"), 960);
            energy = out.iter().map(|s| s * s).sum::<f32>() / 960.0;
        }
        assert!(energy > 0.02, "decoded tone has energy {energy}");
        assert_eq!(dec.decode(&[], &mut out, false).expect("conceal"), 960);
        assert!(dec.decode(b"\xff\xff\xff", &mut out, false).is_err(), "garbage is an error");
        assert!(enc.encode(&tone(100), &mut packet).is_err(), "not a frame length");
    }
}
