//! Conversion between a device's (or file's) format and 48 kHz mono.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, PolynomialDegree, Resampler as _};

use super::AudioError;

/// Converts interleaved `channels`-channel audio at `from` Hz to mono at
/// `to` Hz, in whatever chunk sizes it is fed.
pub struct Resampler {
    channels: usize,
    inner: Option<Async<f32>>,
    chunk: usize,
    pending: Vec<f32>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler").field("channels", &self.channels).field("active", &self.inner.is_some()).finish()
    }
}

impl Resampler {
    /// A converter; identity (apart from downmixing) when the rates match.
    ///
    /// # Errors
    ///
    /// [`AudioError::Device`] for a rate the resampler cannot handle.
    pub fn new(from: u32, to: u32, channels: u16) -> Result<Self, AudioError> {
        let chunk = (from as usize / 100).max(1);
        let inner = if from == to {
            None
        } else {
            let ratio = f64::from(to) / f64::from(from);
            Some(
                Async::<f32>::new_poly(ratio, 1.1, PolynomialDegree::Cubic, chunk, 1, FixedAsync::Input)
                    .map_err(|e| AudioError::Device(format!("cannot resample {from} Hz to {to} Hz: {e}")))?,
            )
        };
        Ok(Self { channels: usize::from(channels.max(1)), inner, chunk, pending: Vec::new() })
    }

    /// Feeds interleaved samples; appends converted mono samples to `out`.
    pub fn process(&mut self, interleaved: &[f32], out: &mut Vec<f32>) {
        let ch = self.channels;
        let mono = interleaved.chunks_exact(ch).map(|f| f.iter().sum::<f32>() / ch as f32);
        let Some(inner) = &mut self.inner else {
            out.extend(mono);
            return;
        };
        self.pending.extend(mono);
        let mut start = 0;
        while self.pending.len() - start >= self.chunk {
            let input = &self.pending[start..start + self.chunk];
            if let Ok(adapter) = InterleavedSlice::new(input, 1, self.chunk)
                && let Ok(res) = inner.process(&adapter, None)
            {
                out.extend_from_slice(&res.take_data());
            }
            start += self.chunk;
        }
        self.pending.drain(..start);
    }
}

/// Expands 48 kHz mono to a device's rate and channel count.
#[derive(Debug)]
pub struct Upsampler {
    channels: usize,
    inner: Resampler,
    mono: Vec<f32>,
}

impl Upsampler {
    /// A converter from 48 kHz mono to `rate` Hz with `channels` channels.
    ///
    /// # Errors
    ///
    /// As [`Resampler::new`].
    pub fn new(rate: u32, channels: u16) -> Result<Self, AudioError> {
        Ok(Self {
            channels: usize::from(channels.max(1)),
            inner: Resampler::new(super::RATE, rate, 1)?,
            mono: Vec::new(),
        })
    }

    /// Converts `mono` and appends interleaved samples to `out`.
    pub fn process(&mut self, mono: &[f32], out: &mut Vec<f32>) {
        self.mono.clear();
        self.inner.process(mono, &mut self.mono);
        for s in &self.mono {
            out.extend(std::iter::repeat_n(*s, self.channels));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmixes_and_resamples_to_the_right_length() {
        let mut r = Resampler::new(44_100, 48_000, 2).expect("resampler");
        let stereo: Vec<f32> = (0..44_100 * 2).map(|i| ((i / 2) as f32 * 0.01).sin()).collect();
        let mut out = Vec::new();
        for chunk in stereo.chunks(1000) {
            r.process(chunk, &mut out);
        }
        assert!((out.len() as i64 - 48_000).abs() < 600, "{}", out.len());
        let mut same = Resampler::new(48_000, 48_000, 2).expect("identity");
        let mut out2 = Vec::new();
        same.process(&[1.0, 0.0, 0.5, 0.5], &mut out2);
        assert_eq!(out2, vec![0.5, 0.5]);
    }
}
