//! Packet loss models shared by the lossy UDP proxy of the voice tests and
//! the `loss_sim` simulator: independent losses or Gilbert-Elliott bursts,
//! deterministic for a seed.

/// Which packets are lost.
#[derive(Debug, Clone, Copy)]
pub enum Loss {
    /// None.
    None,
    /// Each packet independently with this probability.
    Random(f64),
    /// Gilbert-Elliott: this mean loss rate, in bursts of this mean length.
    Bursty { rate: f64, mean_burst: f64 },
}

/// A small deterministic generator (xorshift64), uniform in [0, 1).
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next number in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The loss state of one direction of a link.
#[derive(Debug)]
pub struct Channel {
    loss: Loss,
    bad: bool,
    rng: Rng,
}

impl Channel {
    /// A direction losing packets as `loss` says.
    pub fn new(loss: Loss, seed: u64) -> Self {
        Self { loss, bad: false, rng: Rng::new(seed) }
    }

    /// Whether the next packet is lost.
    pub fn drop_next(&mut self) -> bool {
        match self.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.uniform() < p,
            Loss::Bursty { rate, mean_burst } => {
                let r = 1.0 / mean_burst;
                let p = rate * r / (1.0 - rate);
                let u = self.rng.uniform();
                self.bad = if self.bad { u >= r } else { u < p };
                self.bad
            }
        }
    }
}
