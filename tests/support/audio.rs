//! Test signals and the numbers we judge audio by: alignment by
//! cross-correlation, correlation coefficient, level ratio, SNR.

use std::path::Path;

/// Sample rate of every test signal.
pub const RATE: usize = 48_000;

/// A speech-like test signal: voiced "syllables" (a glottal-like harmonic
/// series with a gliding pitch and two formant-ish emphases) separated by
/// short pauses, deterministic. `secs` long, peak about 0.5.
pub fn speech_like(secs: f64) -> Vec<f32> {
    speech_like_voice(secs, Voice::default())
}

/// Who speaks in [`speech_like_voice`]: pitch, formants and the syllable
/// sequence (so two voices talk over each other, not in step).
#[derive(Debug, Clone, Copy)]
pub struct Voice {
    /// Mean pitch, Hz.
    pub pitch_hz: f64,
    /// First and second formants, Hz.
    pub formants_hz: (f64, f64),
    /// Seed of the syllable timing.
    pub seed: u64,
}

impl Default for Voice {
    /// The voice of [`speech_like`].
    fn default() -> Self {
        Self { pitch_hz: 120.0, formants_hz: (700.0, 1800.0), seed: 0x9E37_79B9 }
    }
}

impl Voice {
    /// A second, higher voice with its own timing.
    pub fn second() -> Self {
        Self { pitch_hz: 210.0, formants_hz: (550.0, 2300.0), seed: 0x5851_F42D }
    }
}

/// [`speech_like`] in another voice.
pub fn speech_like_voice(secs: f64, voice: Voice) -> Vec<f32> {
    let n = (secs * RATE as f64) as usize;
    let mut out = vec![0.0f32; n];
    let mut phase = 0.0f64;
    let syllables = Syllables::new(secs, voice.seed);
    let (f1, f2) = voice.formants_hz;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for (i, s) in out.iter_mut().enumerate() {
        let t = i as f64 / RATE as f64;
        // 4 syllables per second: 180 ms voiced, 70 ms pause, smooth edges.
        let env = syllables.envelope(t);
        let f0 =
            voice.pitch_hz + voice.pitch_hz / 3.0 * (t * 1.3).sin() + 25.0 * (t * 4.0 * std::f64::consts::PI).sin();
        phase += f0 / RATE as f64;
        let mut v = 0.0;
        for h in 1..=30 {
            let f = f0 * h as f64;
            if f > 7000.0 {
                break;
            }
            let formant = 1.0 / (1.0 + ((f - f1) / 300.0).powi(2)) + 0.6 / (1.0 + ((f - f2) / 400.0).powi(2)) + 0.05;
            v += formant * (2.0 * std::f64::consts::PI * h as f64 * phase).sin() / (h as f64).sqrt();
        }
        // A little breath noise.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let noise = (rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        *s = (0.22 * env * v + 0.01 * env * noise) as f32;
    }
    out
}

/// Irregular syllable timing (so alignment has one answer): voiced spans of
/// 120-340 ms separated by 40-200 ms pauses, from a fixed sequence.
struct Syllables {
    spans: Vec<(f64, f64)>,
}

impl Syllables {
    fn new(secs: f64, seed: u64) -> Self {
        let mut spans = Vec::new();
        let (mut t, mut x) = (0.05f64, seed);
        while t < secs {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let len = 0.12 + 0.22 * ((x >> 33) as f64 / (1u64 << 31) as f64);
            let gap = 0.04 + 0.16 * ((x & 0xffff) as f64 / 65536.0);
            spans.push((t, len));
            t += len + gap;
        }
        Self { spans }
    }

    fn envelope(&self, t: f64) -> f64 {
        let i = self.spans.partition_point(|(start, _)| *start <= t);
        let Some((start, len)) = i.checked_sub(1).map(|i| self.spans[i]) else { return 0.0 };
        let x = (t - start) / len;
        if x < 1.0 { (std::f64::consts::PI * x).sin().powf(0.6) } else { 0.0 }
    }
}

/// White noise (deterministic), RMS `rms`.
pub fn white_noise(n: usize, rms: f32, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
            u * rms * 12f32.sqrt()
        })
        .collect()
}

/// Writes 48 kHz mono 16-bit.
pub fn write_wav(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16).expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

/// Reads a 16-bit mono WAV.
pub fn read_wav(path: &Path) -> Vec<f32> {
    let r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(r.spec().channels, 1);
    assert_eq!(r.spec().sample_rate as usize, RATE);
    r.into_samples::<i16>().map(|s| f32::from(s.expect("sample")) / 32768.0).collect()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|s| f64::from(*s) * f64::from(*s)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn corr(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ma, mb) = (
        a.iter().map(|v| f64::from(*v)).sum::<f64>() / n as f64,
        b.iter().map(|v| f64::from(*v)).sum::<f64>() / n as f64,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x) - ma, f64::from(*y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa == 0.0 || sbb == 0.0 { 0.0 } else { sab / (saa * sbb).sqrt() }
}

/// How a recording compares with its source.
#[derive(Debug, Clone, Copy)]
pub struct Match {
    /// Mean, over 200 ms segments of the source that hold sound, of the best
    /// correlation with the recording within ±60 ms of the overall delay: a
    /// quality score that tolerates the jitter buffer moving the delay.
    pub segmental: f64,
    /// Where the source starts in the recording, ms.
    pub delay_ms: f64,
    /// Correlation coefficient of the aligned signals.
    pub correlation: f64,
    /// RMS of the aligned recording over RMS of the source.
    pub level_ratio: f64,
}

/// Finds `source` in `recording` (within `max_delay_s`) and measures the match.
pub fn align(source: &[f32], recording: &[f32], max_delay_s: f64) -> Match {
    // Coarse: 5 ms energy envelopes.
    let hop = RATE / 200;
    let env = |x: &[f32]| -> Vec<f32> { x.chunks(hop).map(|c| rms(c) as f32).collect() };
    let (es, er) = (env(source), env(recording));
    let max_lag = ((max_delay_s * 200.0) as usize).min(er.len().saturating_sub(1));
    let best_coarse = (0..=max_lag)
        .map(|lag| (lag, corr(&es, &er[lag.min(er.len())..])))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0, |(l, _)| l);
    // Fine: sample lags within ±10 ms of the coarse estimate, on 1.5 s of signal.
    let start = (best_coarse * hop).saturating_sub(RATE / 100);
    let excerpt_from = RATE / 2;
    let excerpt = &source[excerpt_from.min(source.len())..(excerpt_from + RATE * 3 / 2).min(source.len())];
    let mut best = (start, f64::MIN);
    for lag in start..start + RATE / 50 {
        let from = lag + excerpt_from;
        if from + excerpt.len() > recording.len() {
            break;
        }
        let c = corr(excerpt, &recording[from..from + excerpt.len()]);
        if c > best.1 {
            best = (lag, c);
        }
    }
    let lag = best.0;
    let rec = &recording[lag.min(recording.len())..];
    let n = source.len().min(rec.len());
    Match {
        segmental: segmental(source, recording, lag),
        delay_ms: lag as f64 * 1000.0 / RATE as f64,
        correlation: corr(&source[..n], &rec[..n]),
        level_ratio: rms(&rec[..n]) / rms(&source[..n]),
    }
}

fn segmental(source: &[f32], recording: &[f32], lag: usize) -> f64 {
    let seg = RATE / 5;
    let reach = RATE * 6 / 100;
    let dec = |x: &[f32]| x.iter().step_by(4).copied().collect::<Vec<f32>>();
    let mut scores = Vec::new();
    for start in (0..source.len().saturating_sub(seg)).step_by(seg) {
        let s = &source[start..start + seg];
        if rms(s) < 0.02 {
            continue;
        }
        let centre = start + lag;
        let lo = centre.saturating_sub(reach);
        let hi = (centre + reach).min(recording.len().saturating_sub(seg));
        if lo > hi {
            scores.push(0.0);
            continue;
        }
        // Coarse: every 4th lag on every 4th sample; then refine.
        let sd = dec(s);
        let mut best = (lo, f64::MIN);
        for l in (lo..=hi).step_by(4) {
            let c = corr(&sd, &dec(&recording[l..l + seg]));
            if c > best.1 {
                best = (l, c);
            }
        }
        let mut fine = f64::MIN;
        for l in best.0.saturating_sub(4)..=(best.0 + 4).min(hi) {
            fine = fine.max(corr(s, &recording[l..l + seg]));
        }
        scores.push(fine.max(0.0));
    }
    if scores.is_empty() { 0.0 } else { scores.iter().sum::<f64>() / scores.len() as f64 }
}

/// SNR in dB of `noisy` against `clean` (same alignment), with the best
/// scaling of `clean`.
pub fn snr_db(clean: &[f32], noisy: &[f32]) -> f64 {
    let n = clean.len().min(noisy.len());
    let (c, y) = (&clean[..n], &noisy[..n]);
    let dot: f64 = c.iter().zip(y).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
    let cc: f64 = c.iter().map(|a| f64::from(*a) * f64::from(*a)).sum();
    let g = if cc > 0.0 { dot / cc } else { 0.0 };
    let signal = g * g * cc;
    let noise: f64 = c.iter().zip(y).map(|(a, b)| (f64::from(*b) - g * f64::from(*a)).powi(2)).sum();
    10.0 * (signal / noise.max(1e-12)).log10()
}
