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
    /// The deep redundancy parser, made when first needed, and the packet
    /// it last parsed.
    dred: Option<(codec::Dred, Vec<u8>)>,
    /// Lost frames recovered from deep redundancy.
    pub recovered_dred: u64,
    /// The speaker's packets carry deep redundancy (one in
    /// [`PROBE_EVERY`] frames decoded is looked at).
    pub dred_seen: bool,
    decoded: u32,
}

/// One frame in this many is probed for deep redundancy (cheaply: its
/// neural decoding is left out).
const PROBE_EVERY: u32 = 25;

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
        Ok(Self {
            inner: codec::Decoder::new(complexity).map_err(codec_error)?,
            dred: None,
            recovered_dred: 0,
            dred_seen: false,
            decoded: 0,
        })
    }

    /// Decodes `frame` into `out` (960 samples). Garbage yields silence; a
    /// shorter frame (a sender using 2.5–10 ms frames) is padded with silence.
    pub fn frame(&mut self, frame: &[u8], out: &mut [f32]) {
        self.decoded = self.decoded.wrapping_add(1);
        if !self.dred_seen && self.decoded.is_multiple_of(PROBE_EVERY) {
            if self.dred.is_none() {
                self.dred = codec::Dred::new().ok().map(|d| (d, Vec::new()));
            }
            if let Some((d, last)) = &mut self.dred {
                last.clear();
                self.dred_seen = d.probe(frame).is_ok_and(|reach| reach > 0);
            }
        }
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
            Play::Dred(later, back) => self.dred(later, *back, out),
        }
    }

    /// Recovers the frame `back` frames before `later` from its deep
    /// redundancy (concealment if it has none that reaches so far).
    pub fn dred(&mut self, later: &[u8], back: u32, out: &mut [f32]) {
        let offset = i32::try_from(back as usize * out.len()).unwrap_or(i32::MAX);
        let parsed = match &mut self.dred {
            Some((d, last)) if last.as_slice() == later => Some(&*d),
            slot => {
                if slot.is_none() {
                    *slot = codec::Dred::new().ok().map(|d| (d, Vec::new()));
                }
                match slot {
                    Some((d, last)) => {
                        last.clear();
                        last.extend_from_slice(later);
                        let ok = d.parse(later, 48_000).is_ok_and(|reach| reach >= offset);
                        ok.then_some(&*d)
                    }
                    None => None,
                }
            }
        };
        match parsed.map(|d| self.inner.decode_dred(d, offset, out)) {
            Some(Ok(n)) => {
                self.recovered_dred += 1;
                let len = out.len();
                out[n.min(len)..].fill(0.0);
            }
            _ => self.conceal(out),
        }
    }

    /// Conceals a lost frame.
    pub fn conceal(&mut self, out: &mut [f32]) {
        if self.inner.decode(&[], out, false).is_err() {
            out.fill(0.0);
        }
    }
}
