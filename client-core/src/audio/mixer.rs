//! Mixing speakers into one 48 kHz mono stream without clipping.

/// Adds `frame × gain` into `mix`.
pub fn add(mix: &mut [f32], frame: &[f32], gain: f32) {
    for (m, s) in mix.iter_mut().zip(frame) {
        *m += s * gain;
    }
}

/// A limiter: whenever the mix would exceed full scale, the gain drops at
/// once to fit, then recovers slowly. Output never exceeds ±1.
#[derive(Debug, Clone)]
pub struct Limiter {
    gain: f32,
}

impl Default for Limiter {
    fn default() -> Self {
        Self { gain: 1.0 }
    }
}

impl Limiter {
    /// Applies the limiter to one frame in place.
    pub fn process(&mut self, mix: &mut [f32]) {
        let peak = mix.iter().fold(0.0f32, |p, s| p.max(s.abs()));
        let needed = if peak * self.gain > 0.98 { 0.98 / peak } else { self.gain };
        let start = self.gain;
        let end = if needed < self.gain {
            needed
        } else {
            (self.gain + 0.05).min(1.0).min(if peak > 0.0 { 0.98 / peak } else { 1.0 })
        };
        let n = mix.len().max(1) as f32;
        for (i, s) in mix.iter_mut().enumerate() {
            let g = if needed < start { needed } else { start + (end - start) * (i as f32 / n) };
            *s = (*s * g).clamp(-1.0, 1.0);
        }
        self.gain = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_loud_speakers_never_clip() {
        let loud: Vec<f32> = (0..960).map(|i| if i % 2 == 0 { 0.9 } else { -0.9 }).collect();
        let mut mix = vec![0.0; 960];
        add(&mut mix, &loud, 1.0);
        add(&mut mix, &loud, 1.0);
        let mut lim = Limiter::default();
        lim.process(&mut mix);
        assert!(mix.iter().all(|s| s.abs() <= 0.98 + 1e-6));
        assert!(mix[0] > 0.9, "still loud: {}", mix[0]);
        let mut quiet = vec![0.1; 960];
        Limiter::default().process(&mut quiet);
        assert!((quiet[500] - 0.1).abs() < 1e-6, "quiet audio untouched");
    }
}
