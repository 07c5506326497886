//! Following clocks that drift, as WebRTC and PulseAudio do: by playing a
//! little faster or slower, never by skipping or inserting audio.
//!
//! A microphone and a speaker each run on their own crystal (±0.1 % is
//! common: 60 ms a minute). Two places feel it: a listener's jitter buffer
//! against a speaker whose frames come a little fast or slow
//! ([`super::playout`]), and a playback device taking samples a little
//! faster or slower than the mixer makes them ([`PlaybackSync`]). Each
//! measures how far its delay is from where it should be, a [`RateControl`]
//! turns that into a playback speed within ±0.5 % (a pitch change of at most
//! 9 cents, inaudible in speech), and a [`Stretch`] resamples by it.

/// The most the speed moves from 1 (0.5 %: ten times a common drift).
pub const MAX_ADJUST: f64 = 0.005;
/// Proportional gain, per second of error: 10 ms off plays 0.2 % faster.
const KP: f64 = 0.2;
/// Integral gain, per second² of error (with [`KP`]: critically damped,
/// settling in about 20 s; a drift of 0.1 % holds the error under 4 ms).
const KI: f64 = 0.01;
/// Time constant of the error's smoothing, s.
const SMOOTH_S: f64 = 0.2;
/// Errors smaller than this are left alone in a speaker's playout
/// ([`RateControl::with_dead_band`]), s: a packet a little early is not
/// drift (0.1 % takes 4 s to make this much), and every correction warps
/// the speech a little.
pub const PLAYOUT_DEAD_BAND_S: f64 = 0.004;

/// A PI controller from a delay error to a playback speed.
#[derive(Debug, Clone, Default)]
pub struct RateControl {
    smoothed: Option<f64>,
    integral: f64,
    speed: f64,
    dead_band_s: f64,
}

impl RateControl {
    /// At speed 1, nothing learnt.
    pub fn new() -> Self {
        Self::with_dead_band(0.0)
    }

    /// At speed 1, leaving errors under `dead_band_s` (s) alone.
    pub fn with_dead_band(dead_band_s: f64) -> Self {
        Self { smoothed: None, integral: 0.0, speed: 1.0, dead_band_s }
    }

    /// The speed in force: input consumed per output sample (above 1:
    /// faster, the delay shrinks).
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Takes the delay's error (measured minus wanted, seconds) `dt_s`
    /// seconds after the last; returns the speed to play at.
    pub fn update(&mut self, error_s: f64, dt_s: f64) -> f64 {
        let a = (dt_s / SMOOTH_S).clamp(0.0, 1.0);
        let e = match self.smoothed {
            Some(s) => s + (error_s - s) * a,
            None => error_s,
        };
        self.smoothed = Some(e);
        let band = self.dead_band_s;
        let e = if e.abs() < band { 0.0 } else { e - band.copysign(e) };
        // The integral learns the clocks' ratio; it stops growing while the
        // speed is at its limit (no wind-up).
        let integral = self.integral + e * dt_s;
        let u = KP * e + KI * integral;
        if u.abs() < MAX_ADJUST || u.signum() != e.signum() || e == 0.0 {
            self.integral = integral.clamp(-MAX_ADJUST / KI, MAX_ADJUST / KI);
        }
        self.speed = 1.0 + (KP * e + KI * self.integral).clamp(-MAX_ADJUST, MAX_ADJUST);
        self.speed
    }

    /// Plays at the clocks' ratio learnt so far, correcting nothing: while
    /// the error cannot be told from noise.
    pub fn hold(&mut self) -> f64 {
        self.smoothed = None;
        self.speed = 1.0 + (KI * self.integral).clamp(-MAX_ADJUST, MAX_ADJUST);
        self.speed
    }

    /// Forgets the error (not the clocks' ratio it learnt): a new start.
    pub fn restart(&mut self) {
        self.smoothed = None;
    }
}

/// A mono resampler at a speed that may change with every call (cubic
/// Catmull-Rom interpolation; at speed 1 the input comes out unchanged,
/// two samples later: it starts with two samples of silence, so a frame in
/// gives a frame out).
#[derive(Debug, Clone)]
pub struct Stretch {
    /// Input not consumed yet, with one sample before the read position.
    buf: Vec<f32>,
    /// Where the next output sample is read, in `buf`.
    pos: f64,
}

impl Default for Stretch {
    fn default() -> Self {
        Self::new()
    }
}

impl Stretch {
    /// Empty, at the start.
    pub fn new() -> Self {
        let mut s = Self { buf: Vec::with_capacity(2 * super::FRAME), pos: 1.0 };
        s.reset();
        s
    }

    /// Forgets what it holds (a new talk spurt).
    pub fn reset(&mut self) {
        self.buf.clear();
        // The sample before the first, and the two it holds back.
        self.buf.extend_from_slice(&[0.0; 3]);
        self.pos = 1.0;
    }

    /// Samples taken in but not yet played out, counted from the read
    /// position (what delays the next output, in input samples).
    pub fn pending(&self) -> f64 {
        (self.buf.len() as f64 - self.pos).max(0.0)
    }

    /// Takes `input` and appends what it gives at `speed` (input samples per
    /// output sample) to `out`.
    pub fn process(&mut self, input: &[f32], speed: f64, out: &mut Vec<f32>) {
        self.buf.extend_from_slice(input);
        while self.pos + 2.0 < self.buf.len() as f64 {
            let i = self.pos as usize;
            let t = (self.pos - i as f64) as f32;
            let (y0, y1, y2, y3) = (self.buf[i - 1], self.buf[i], self.buf[i + 1], self.buf[i + 2]);
            let c1 = 0.5 * (y2 - y0);
            let c2 = y0 - 2.5 * y1 + 2.0 * y2 - 0.5 * y3;
            let c3 = 0.5 * (y3 - y0) + 1.5 * (y1 - y2);
            out.push(((c3 * t + c2) * t + c1) * t + y1);
            self.pos += speed;
        }
        let used = (self.pos as usize).saturating_sub(1);
        self.buf.drain(..used);
        self.pos -= used as f64;
    }
}

/// Keeps a playback device's queue at a steady depth when the device's
/// clock runs faster or slower than the mixer's: the queue's depth after
/// each frame is queued is held at what it was over the first second (the
/// device's own buffering; at least [`MIN_DEPTH_S`]), by playing at a speed
/// [`RateControl`] sets. Each time the device ran dry anyway (a mixer
/// thread scheduled late), the depth held grows by [`UNDERRUN_STEP_S`].
#[derive(Debug, Clone, Default)]
pub struct PlaybackSync {
    control: RateControl,
    /// Depths seen while learning (sum, count), then the target, s.
    learning: (f64, u32),
    target_s: Option<f64>,
    /// Silence to queue at once, s (the queue deepened in one step).
    fill_s: f64,
}

/// Frames over which the device's own depth is learnt (1 s).
const LEARN_FRAMES: u32 = 50;
/// The least depth held after a frame is queued: the frame and 10 ms for
/// the controller's error and the device's own period, s.
pub const MIN_DEPTH_S: f64 = 0.030;
/// How much the depth held grows when the device ran dry, s.
pub const UNDERRUN_STEP_S: f64 = 0.005;
/// The most it grows to, s.
const MAX_DEPTH_S: f64 = 0.150;

impl PlaybackSync {
    /// Nothing learnt yet.
    pub fn new() -> Self {
        // 10 ms of silence ahead of the first frame: room for the device's
        // clock to run ahead while its own depth is learnt.
        Self { control: RateControl::new(), learning: (0.0, 0), target_s: None, fill_s: MIN_DEPTH_S - 0.020 }
    }

    /// The depth it holds the queue at, s (`None` while learning it).
    pub fn target_s(&self) -> Option<f64> {
        self.target_s
    }

    /// Takes the queue's depth (s) right after a frame was queued, `dt_s`
    /// after the last; returns the speed to play the next frame at.
    pub fn update(&mut self, depth_s: f64, dt_s: f64) -> f64 {
        let Some(target) = self.target_s else {
            self.learning.0 += depth_s;
            self.learning.1 += 1;
            if self.learning.1 >= LEARN_FRAMES {
                let learnt = self.learning.0 / f64::from(self.learning.1);
                self.target_s = Some(learnt.max(MIN_DEPTH_S));
                self.fill_s += (MIN_DEPTH_S - learnt).max(0.0);
            }
            return 1.0;
        };
        self.control.update(depth_s - target, dt_s)
    }

    /// The device ran dry: hold a deeper queue from now on.
    pub fn underran(&mut self) {
        if let Some(t) = &mut self.target_s
            && *t < MAX_DEPTH_S
        {
            *t += UNDERRUN_STEP_S;
            self.fill_s += UNDERRUN_STEP_S;
        }
    }

    /// Silence to queue now, s: the queue is made deeper at once, not by
    /// playing slower for seconds.
    pub fn take_fill_s(&mut self) -> f64 {
        std::mem::take(&mut self.fill_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME;

    #[test]
    fn at_speed_one_the_input_comes_out_unchanged() {
        let mut s = Stretch::new();
        let input: Vec<f32> = (0..3000).map(|i| (i as f32 * 0.01).sin()).collect();
        let mut out = Vec::new();
        for chunk in input.chunks(FRAME) {
            s.process(chunk, 1.0, &mut out);
        }
        assert_eq!(out.len(), input.len(), "a frame in, a frame out");
        assert_eq!(out[..2], [0.0, 0.0]);
        assert!(out[2..].iter().zip(&input).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn faster_gives_fewer_samples_and_a_ramp_stays_a_ramp() {
        let mut s = Stretch::new();
        let mut out = Vec::new();
        let input: Vec<f32> = (0..96_000).map(|i| i as f32 / 1000.0).collect();
        for chunk in input.chunks(FRAME) {
            s.process(chunk, 1.004, &mut out);
        }
        let expected = 96_000.0 / 1.004;
        assert!((out.len() as f64 - expected).abs() < 3.0, "{} vs {expected}", out.len());
        // Cubic interpolation is exact on a ramp: output j is input 1.004 j - 2
        // (to a hundredth of a sample; f32 keeps that below 5).
        let worst = out[..4700]
            .iter()
            .enumerate()
            .skip(4)
            .map(|(j, v)| (v * 1000.0 - (j as f32 * 1.004 - 2.0)).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 0.01, "{worst} samples off");
    }

    #[test]
    fn the_controller_learns_a_drift_and_holds_the_error_small() {
        // A queue filling 0.1 % faster than it empties at speed 1.
        let mut c = RateControl::new();
        let (mut error, mut worst) = (0.0f64, 0.0f64);
        for _ in 0..30_000 {
            let speed = c.update(error, 0.02);
            error += 0.02 * (0.001 - (speed - 1.0));
            worst = worst.max(error.abs());
        }
        assert!(worst < 0.005, "worst error {:.1} ms", worst * 1000.0);
        assert!((c.speed() - 1.001).abs() < 1e-4, "{}", c.speed());
        assert!(error.abs() < 0.000_5, "{error}");
    }

    /// A device whose clock runs `device` times as fast as the mixer's
    /// takes 10 ms at a time from a queue the mixer fills with a frame
    /// every 20 ms, for ten minutes. Returns the underruns, the worst
    /// distance of the depth from its target after the first half minute
    /// (ms), and the target (ms).
    fn device_for_ten_minutes(device: f64) -> (u32, f64, f64) {
        let mut sync = PlaybackSync::new();
        let mut stretch = Stretch::new();
        let (mut queue, mut out) = (0usize, Vec::new());
        let (mut underruns, mut worst) = (0u32, 0.0f64);
        // The device starts taking audio once the first frame is queued.
        let mut next_pull = 10_000.0f64;
        let frame = vec![0.1f32; FRAME];
        for tick in 0..30_000u64 {
            let now = tick as f64 * 20_000.0;
            while next_pull <= now {
                if queue < 480 {
                    underruns += 1;
                    sync.underran();
                }
                queue = queue.saturating_sub(480);
                next_pull += 10_000.0 / device;
            }
            out.clear();
            stretch.process(&frame, sync.control.speed(), &mut out);
            queue += out.len() + (sync.take_fill_s() * 48_000.0).round() as usize;
            let depth = queue as f64 / 48_000.0;
            sync.update(depth, 0.02);
            if tick >= 1_500
                && let Some(t) = sync.target_s()
            {
                worst = worst.max((depth - t).abs() * 1000.0);
            }
        }
        (underruns, worst, sync.target_s().unwrap_or(0.0) * 1000.0)
    }

    #[test]
    fn a_device_whose_clock_runs_fast_or_slow_neither_runs_dry_nor_lags() {
        for device in [1.001, 0.999, 1.0] {
            let (underruns, worst, target) = device_for_ten_minutes(device);
            eprintln!("device clock ×{device}: {underruns} underruns, depth within {worst:.1} ms of {target:.1} ms");
            assert_eq!(underruns, 0, "device clock ×{device}");
            assert!(worst <= 10.0, "device clock ×{device}: depth {worst:.1} ms from its target");
        }
    }
}
