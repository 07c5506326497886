//! WAV files as audio endpoints, paced in real time like a device.
//!
//! Capture reads the file in 10 ms steps on a fixed schedule. Playback
//! writes, as 48 kHz mono 16-bit, exactly what the mixer produces: the mixer
//! emits one 20 ms frame per tick on a fixed schedule, silence included, and
//! never skips a tick, so the recording is a continuous timeline from the
//! moment voice was joined, even if a thread is delayed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::device::{Capture, Playback};
use super::{AudioError, RATE};

const STEP: Duration = Duration::from_millis(10);

fn wav_err(path: &Path, e: impl std::fmt::Display) -> AudioError {
    AudioError::Wav { path: path.display().to_string(), message: e.to_string() }
}

/// Reads a whole WAV file as interleaved f32 samples.
///
/// # Errors
///
/// [`AudioError::Wav`] for unreadable or unsupported files.
pub fn read_all(path: &Path) -> Result<(u32, u16, Vec<f32>), AudioError> {
    let reader = hound::WavReader::open(path).map_err(|e| wav_err(path, e))?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate < 8000 || spec.sample_rate > 192_000 {
        return Err(wav_err(path, format!("unsupported format: {} Hz, {} channels", spec.sample_rate, spec.channels)));
    }
    let samples: Result<Vec<f32>, _> = match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader.into_samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect()
        }
    };
    Ok((spec.sample_rate, spec.channels, samples.map_err(|e| wav_err(path, e))?))
}

/// Writes 48 kHz mono 16-bit samples to a WAV file.
///
/// # Errors
///
/// [`AudioError::Wav`] if the file cannot be written.
pub fn write_all(path: &Path, samples: &[f32]) -> Result<(), AudioError> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| wav_err(path, e))?;
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16).map_err(|e| wav_err(path, e))?;
    }
    w.finalize().map_err(|e| wav_err(path, e))
}

pub(super) fn capture(path: &Path) -> Result<Capture, AudioError> {
    let (rate, channels, samples) = read_all(path)?;
    let step = (rate as usize / 100) * usize::from(channels);
    let (mut prod, cons) = rtrb::RingBuffer::<f32>::new(step * 200);
    let stop = Arc::new(AtomicBool::new(false));
    let ended = Arc::new(AtomicBool::new(false));
    let (stop2, ended2) = (stop.clone(), ended.clone());
    let thread = std::thread::Builder::new()
        .name("wav-capture".into())
        .spawn(move || {
            let start = Instant::now();
            for (i, chunk) in samples.chunks(step).enumerate() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let due = start + STEP * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                for s in chunk {
                    let _ = prod.push(*s);
                }
            }
            ended2.store(true, Ordering::SeqCst);
        })
        .map_err(|e| wav_err(path, e))?;
    Ok(Capture::new(rate, channels, cons, ended, stop, thread))
}

pub(super) fn playback(path: Option<&Path>) -> Result<Playback, AudioError> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = match path {
        Some(p) => Some(hound::WavWriter::create(p, spec).map_err(|e| wav_err(p, e))?),
        None => None,
    };
    let (prod, mut cons) = rtrb::RingBuffer::<f32>::new(RATE as usize * 2);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("wav-playback".into())
        .spawn(move || {
            let mut drain = |writer: &mut Option<hound::WavWriter<_>>| {
                while let Ok(s) = cons.pop() {
                    if let Some(w) = writer {
                        let _ = w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16);
                    }
                }
            };
            while !stop2.load(Ordering::SeqCst) {
                drain(&mut writer);
                std::thread::sleep(STEP);
            }
            drain(&mut writer);
            if let Some(w) = writer {
                let _ = w.finalize();
            }
        })
        .map_err(|e| AudioError::Device(e.to_string()))?;
    Ok(Playback::new(RATE, 1, prod, stop, thread))
}
