//! Latency and loss accounting: a fixed-size latency histogram and a tally
//! of what one receiver got from each sender.

use std::collections::HashMap;

/// Sub-buckets per power of two: values are kept within 1/64 (≈ 1.6 %).
const SUB: u64 = 64;
/// Powers of two covered above the linear range (µs up to ≈ 2^40).
const OCTAVES: u64 = 34;

/// Latencies in microseconds, kept as a log-linear histogram: constant
/// memory however many deliveries are recorded, mergeable across tasks.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: vec![0; (SUB * (OCTAVES + 1)) as usize], total: 0, max: 0 }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    // v in [2^k, 2^(k+1)), k >= 6: SUB sub-buckets of width 2^(k-6).
    let k = 63 - u64::from(v.leading_zeros());
    let octave = (k - 5).min(OCTAVES);
    let sub = (v >> (k - 6)) - SUB;
    (octave * SUB + sub.min(SUB - 1)) as usize
}

/// The highest value that falls in bucket `i`.
fn bucket_top(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let octave = i / SUB;
    let sub = i % SUB;
    let k = octave + 5;
    ((SUB + sub + 1) << (k - 6)) - 1
}

impl Histogram {
    /// Records one latency, in microseconds.
    pub fn record(&mut self, us: u64) {
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.max = self.max.max(us);
    }

    /// Adds another histogram's records to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest latency recorded, in microseconds.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The latency (µs) at or below which a fraction `q` (0..=1) of the
    /// records lie, rounded up to its bucket (at most 1.6 % high); `None`
    /// when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // The last bucket also holds everything beyond the range.
                if i == self.counts.len() - 1 {
                    return Some(self.max);
                }
                return Some(bucket_top(i).min(self.max));
            }
        }
        Some(self.max)
    }

    /// [`Histogram::quantile`] in milliseconds (`NaN` when empty).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.quantile(q).map_or(f64::NAN, |us| us as f64 / 1000.0)
    }
}

/// What one receiver got from each sender, by sequence number. Senders
/// number their messages from 0 in send order; a transport that keeps order
/// (TCP) shows a gap as missing, a number again as a duplicate.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Per sender: the next number expected, and the numbers skipped so far.
    senders: HashMap<u32, (u64, std::collections::HashSet<u64>)>,
    /// Distinct messages received.
    pub received: u64,
    /// Numbers seen again (counted once in `received`).
    pub duplicates: u64,
    /// Numbers skipped when a later one arrived and not seen since (over
    /// TCP they are gone; over UDP they may still come).
    pub skipped: u64,
    /// Numbers that arrived after a later one (UDP reordering).
    pub late: u64,
}

impl Tally {
    /// Counts message `seq` from `sender`.
    pub fn record(&mut self, sender: u32, seq: u64) {
        let (next, missing) = self.senders.entry(sender).or_default();
        if seq >= *next {
            // Everything between the last one and this one is missing (for now).
            let gap = seq - *next;
            if gap > 0 {
                // Remembered for late arrivals, within reason.
                if gap <= 1 << 20 {
                    missing.extend(*next..seq);
                }
                self.skipped += gap;
            }
            *next = seq + 1;
            self.received += 1;
        } else if missing.remove(&seq) {
            self.skipped -= 1;
            self.late += 1;
            self.received += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// Adds another receiver's counts.
    pub fn merge(&mut self, other: &Tally) {
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.skipped += other.skipped;
        self.late += other.late;
    }
}

/// Deliveries expected of `sent` messages when each goes to every one of
/// `clients` but its sender.
pub fn expected_deliveries(sent: u64, clients: usize) -> u64 {
    sent * (clients.saturating_sub(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        for us in 1..=10_000u64 {
            h.record(us);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000);
        for (q, exact) in [(0.5, 5_000.0), (0.99, 9_900.0), (0.999, 9_990.0)] {
            let got = h.quantile(q).expect("recorded") as f64;
            assert!(got >= exact && got <= exact * 1.02, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(1.0), Some(10_000));
        assert_eq!(h.quantile(0.0), Some(1));
    }

    #[test]
    fn small_values_are_exact_and_huge_ones_do_not_overflow() {
        let mut h = Histogram::default();
        for us in [0, 1, 2, 63] {
            h.record(us);
        }
        assert_eq!(h.quantile(0.25), Some(0));
        assert_eq!(h.quantile(0.75), Some(2));
        assert_eq!(h.quantile(1.0), Some(63));
        h.record(u64::MAX);
        assert_eq!(h.quantile(1.0), Some(u64::MAX));
        assert!(Histogram::default().quantile(0.5).is_none());
        assert!(Histogram::default().quantile_ms(0.5).is_nan());
    }

    #[test]
    fn every_value_lands_in_a_bucket_whose_top_is_at_most_2_percent_above() {
        for v in (0..200_000u64).chain([1 << 20, (1 << 30) + 12_345, 1 << 39]) {
            let top = bucket_top(bucket(v));
            assert!(top >= v, "{v} → top {top}");
            assert!(top as f64 <= (v as f64 * 1.016).max(v as f64 + 1.0), "{v} → top {top}");
        }
    }

    #[test]
    fn merged_histograms_count_both() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for _ in 0..99 {
            a.record(1_000);
        }
        b.record(50_000);
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.max(), 50_000);
        assert!(a.quantile(0.99).expect("recorded") <= 1_016);
        assert_eq!(a.quantile(1.0), Some(50_000));
    }

    #[test]
    fn tally_counts_gaps_duplicates_and_late_arrivals() {
        let mut t = Tally::default();
        for seq in [0, 1, 2, 2, 5, 3, 9] {
            t.record(7, seq);
        }
        t.record(8, 0);
        // Distinct: 0 1 2 5 3 9 from sender 7, 0 from sender 8.
        assert_eq!(t.received, 7);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.late, 1);
        // 3 and 4 skipped by 5, 3 came late; 6 7 8 skipped by 9.
        assert_eq!(t.skipped, 4);
        t.record(7, 3);
        assert_eq!(t.duplicates, 2, "a late one seen twice is a duplicate");
    }

    #[test]
    fn a_gap_of_one_sender_does_not_hide_a_duplicate_of_another() {
        let mut t = Tally::default();
        t.record(1, 0);
        t.record(1, 5); // 1..=4 missing from sender 1
        t.record(2, 0);
        t.record(2, 0); // a true duplicate from sender 2
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.late, 0);
        assert_eq!(t.skipped, 4);
        assert_eq!(t.received, 3);
    }

    #[test]
    fn expected_excludes_the_sender() {
        assert_eq!(expected_deliveries(100, 101), 10_000);
        assert_eq!(expected_deliveries(5, 1), 0);
        assert_eq!(expected_deliveries(5, 0), 0);
    }
}
