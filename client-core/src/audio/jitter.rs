//! Per-speaker adaptive jitter buffer.
//!
//! Frames are kept by the speaker's sequence number and played out one per
//! 20 ms tick, each a set delay after its packet is due. Due times lie on
//! the speaker's 20 ms grid, anchored on the earliest arrivals and kept
//! across pauses, so every talk spurt gets the same delay. The delay covers
//! twice the measured jitter (lateness against the grid) and, while packets
//! are being lost, the wait for the repeats of a typical loss burst
//! (bounded by the latency budget). A missing frame is recovered, in order
//! of preference, from a redundant copy that arrived in a later packet,
//! from Opus in-band FEC in the next packet, or by Opus loss concealment.
//! When the buffer runs dry before the delay has reached its target, the
//! concealed frame is inserted (the delay grows by one frame) instead of
//! replacing the missing one, so the frame can still be played when its
//! copy arrives. After a few frames with nothing to play the speaker is
//! considered silent and the buffer goes idle.
//!
//! Loss is measured on arrival (gaps in the speaker's sequence numbers; the
//! numbers do not advance while the speaker's gate is closed, and a packet
//! overtaken by up to three others is not lost), so the loss reports sent back to
//! the speaker describe the network, not what recovery left over.

use std::collections::BTreeMap;
use std::time::Instant;

/// Frames of concealment before a speaker is treated as silent.
const MAX_CONCEAL: u32 = 6;
/// Bounds of the target depth, in 20 ms frames.
const MIN_TARGET: usize = 2;
const MAX_TARGET: usize = 8;
/// At most this many frames are waited for the repeats of a loss burst
/// (the 80 ms capture-to-playback budget leaves room for three).
const MAX_LOSS_LOOKAHEAD: usize = 3;
/// Below this loss rate, the buffer does not wait for repeats.
const WAIT_FOR_REPEATS_LOSS: f64 = 0.01;
/// The share of lost frames in runs too long to wait for.
const UNCOVERED: f64 = 0.05;
/// Packets before the first loss report (fewer say little about the link).
const MIN_REPORT_PACKETS: u64 = 20;
/// Packets after which the link's loss is known.
const SETTLED: u64 = 100;
/// A sequence number further than this from the newest, either way, is
/// the speaker starting over (a new stream), not loss or reordering.
const MAX_GAP: u64 = 50;
/// Packets a packet may be overtaken by and still count as arrived.
const REORDER: u32 = 3;
/// A packet this late against the timeline, behind the play position while
/// the buffer ran dry, is the speaker talking again after a pause (their
/// numbers do not advance in pauses); a less late one is just late.
const PAUSE_MS: f64 = 80.0;

/// What to play for a speaker this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Play {
    /// Nothing: the speaker is silent.
    Idle,
    /// Decode this frame.
    Frame(Vec<u8>),
    /// The frame is lost; recover it with in-band FEC from this (next) frame.
    Fec(Vec<u8>),
    /// The frame is lost; conceal it.
    Conceal,
}

/// Counters for one speaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Frames received as primaries.
    pub received: u64,
    /// Frames filled from a redundant copy.
    pub recovered_red: u64,
    /// Frames recovered by FEC.
    pub recovered_fec: u64,
    /// Frames concealed (lost, late, or the speaker paused).
    pub concealed: u64,
    /// Frames that arrived after their play time.
    pub late: u64,
    /// Frames played whose primary copy never arrived (loss before recovery).
    pub missing: u64,
    /// Packets lost on the way (gaps in the sequence numbers on arrival).
    pub lost_packets: u64,
    /// Runs of consecutive lost packets.
    pub loss_runs: u64,
    /// Frames dropped to bring the delay back down.
    pub skipped: u64,
    /// Concealed frames inserted to let the delay grow.
    pub stretched: u64,
}

/// The speaker's timeline: packet `seq0` arrived at `epoch`, and packet `s`
/// is due `base + 20 (s - seq0)` ms after it.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    epoch: Instant,
    seq0: u64,
    base: f64,
}

impl Anchor {
    fn offset_ms(&self, seq: u64, at: Instant) -> f64 {
        at.saturating_duration_since(self.epoch).as_secs_f64() * 1000.0 - 20.0 * (seq as f64 - self.seq0 as f64)
    }
}

/// Where extended sequence numbers start: room to go back before it.
const SEQ_ORIGIN: u64 = 1 << 32;

/// One speaker's buffer. Sequence numbers are kept extended to 64 bits
/// (the speaker's 32-bit numbers wrap).
#[derive(Debug)]
pub struct JitterBuffer {
    /// seq → (frame, arrived as primary, carries FEC for seq-1).
    frames: BTreeMap<u64, (Vec<u8>, bool, bool)>,
    next: Option<u64>,
    playing: bool,
    conceal_run: u32,
    /// Newest primary sequence number seen, and which of the 64 before it
    /// arrived (bit k: `highest - k`).
    highest: Option<u64>,
    arrived: u64,
    /// Lost packets in the run being counted.
    loss_run: u32,
    /// Packets whose arrival has been decided (lost or not).
    decided: u64,
    /// Packet loss rate and mean run of lost packets, averaged on arrival.
    loss_avg: f64,
    burst_avg: f64,
    /// Lost packets in runs of 1, 2, 3 and more, recent runs weighing most.
    run_weights: [f64; 4],
    /// Earlier frames repeated per packet lately (the most seen in the
    /// last 50 packets: the first packets of a talk spurt carry fewer).
    redundancy: usize,
    redundancy_age: u32,
    /// Smoothed lateness of packets against the speaker's timeline, ms.
    jitter_ms: f64,
    /// The speaker's timeline: their 20 ms grid, kept across pauses
    /// (`base`: the earliest any packet came, following slowly upwards).
    anchor: Option<Anchor>,
    /// Playout delay after a packet's due time, ms.
    delay_ms: f64,
    /// Counters as of the last loss report.
    reported: JitterStats,
    /// Counters.
    pub stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    /// An empty, idle buffer.
    pub fn new() -> Self {
        Self {
            frames: BTreeMap::new(),
            next: None,
            playing: false,
            conceal_run: 0,
            highest: None,
            arrived: 0,
            loss_run: 0,
            decided: 0,
            loss_avg: 0.0,
            burst_avg: 1.0,
            run_weights: [0.0; 4],
            redundancy: 0,
            redundancy_age: 0,
            jitter_ms: 0.0,
            anchor: None,
            delay_ms: 40.0,
            reported: JitterStats::default(),
            stats: JitterStats::default(),
        }
    }

    /// Current target depth in frames: the frame playing and those the
    /// delay waits for.
    pub fn target(&self) -> usize {
        ((self.delay_ms / 20.0 - 1e-6).ceil() as usize + 1).clamp(MIN_TARGET, MAX_TARGET)
    }

    /// Smoothed arrival jitter, ms.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }

    /// Playout delay after a packet's due time that the buffer aims for, ms.
    pub fn delay_ms(&self) -> f64 {
        self.delay_ms
    }

    /// Frames buffered now.
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    /// Packet loss rate (averaged over the last 64 packets) and mean run of
    /// lost packets (over the last 8 runs).
    pub fn loss(&self) -> (f64, f64) {
        (self.loss_avg, self.burst_avg)
    }

    /// The loss report for the speaker: per mille of packets lost on the
    /// way (averaged over the last 64; a packet counts as lost once three
    /// later ones have come without it) and the mean run of lost packets ×
    /// 10. `None` before 20 packets in all, or while fewer than 5 arrived
    /// since the last report.
    pub fn take_report(&mut self) -> Option<(u16, u16)> {
        if self.stats.received < MIN_REPORT_PACKETS || self.stats.received.saturating_sub(self.reported.received) < 5 {
            return None;
        }
        self.reported = self.stats;
        Some(((self.loss_avg * 1000.0).round().min(1000.0) as u16, (self.burst_avg * 10.0).round().min(1000.0) as u16))
    }

    /// `seq` extended to 64 bits, next to the newest number seen.
    fn extend(&self, seq: u32) -> u64 {
        match self.highest {
            None => SEQ_ORIGIN + u64::from(seq),
            Some(h) => h.wrapping_add_signed(i64::from(seq.wrapping_sub(h as u32) as i32)),
        }
    }

    /// Records primary `seq` as arrived; decides for the packet `REORDER`
    /// behind the newest whether it was lost (so a packet overtaken by up
    /// to that many is not counted lost).
    fn note_arrival(&mut self, seq: u64) {
        let Some(h) = self.highest else {
            (self.highest, self.arrived) = (Some(seq), u64::MAX);
            return;
        };
        if seq <= h {
            if h - seq < 64 {
                self.arrived |= 1 << (h - seq);
            }
            return;
        }
        for _ in 0..seq - h {
            self.decide(self.arrived >> REORDER & 1 == 1);
            self.arrived <<= 1;
        }
        self.arrived |= 1;
        self.highest = Some(seq);
    }

    /// Counts one decided packet into the averages: over the last 64
    /// packets and 8 runs, or over all of them while there are fewer (so
    /// the first reports are not biased low).
    fn decide(&mut self, arrived: bool) {
        self.decided += 1;
        let a = (1.0 / self.decided as f64).max(1.0 / 64.0);
        if arrived {
            if self.loss_run > 0 {
                let run = self.loss_run;
                self.loss_run = 0;
                self.stats.loss_runs += 1;
                self.burst_avg += (f64::from(run) - self.burst_avg) / (self.stats.loss_runs as f64).min(8.0);
                for w in &mut self.run_weights {
                    *w *= 1.0 - 1.0 / 32.0;
                }
                self.run_weights[(run as usize).min(4) - 1] += f64::from(run);
            }
            self.loss_avg -= self.loss_avg * a;
        } else {
            self.loss_run += 1;
            self.stats.lost_packets += 1;
            self.loss_avg += (1.0 - self.loss_avg) * a;
        }
    }

    /// Adds a packet: its primary frame `seq` and redundant copies of
    /// `seq-1`, `seq-2`... (`frames` newest first); `fec` says whether the
    /// frames carry in-band FEC for their predecessors.
    pub fn push(&mut self, seq: u32, fec: bool, frames: &[&[u8]], now: Instant) {
        let mut seq = self.extend(seq);
        // Far from the numbers so far, either way: a new stream. Nothing
        // buffered belongs to it, and its timeline is its own.
        if let Some(h) = self.highest
            && (seq > h + MAX_GAP || seq + MAX_GAP < h)
        {
            self.frames.clear();
            (self.playing, self.next, self.highest, self.anchor, self.loss_run) = (false, None, None, None, 0);
            seq = self.extend(seq as u32);
        }
        // The speaker's numbers do not advance while they pause, so a
        // packet behind the play position, long after it was due, while the
        // buffer ran dry is the speaker talking again: start over.
        let late_ms = self.wait_ms(seq, now);
        if self.playing
            && self.frames.is_empty()
            && self.conceal_run > 0
            && late_ms > PAUSE_MS
            && self.next.is_some_and(|n| seq < n && n - seq <= u64::from(self.conceal_run))
        {
            self.playing = false;
            self.next = None;
        }
        self.note_arrival(seq);
        // Jitter is how late packets come against the timeline (the
        // earliest any came). A talk spurt starting (nothing buffered or
        // playing), or a packet far off the timeline, moves the timeline by
        // whole frames: the speaker's frames are cut from one continuous
        // capture, so its 20 ms grid stays where it was, and with it the
        // playout delay (a delay that changed by a frame between talk
        // spurts scores worse, measured). Pauses are not jitter.
        let fresh = !self.playing && self.frames.is_empty();
        match &mut self.anchor {
            Some(a) => {
                let mut off = a.offset_ms(seq, now);
                if fresh || (off - a.base).abs() > 300.0 {
                    a.base += 20.0 * ((off - a.base) / 20.0).round();
                    off = off.max(a.base);
                }
                if off < a.base {
                    a.base = off;
                } else {
                    a.base += (off - a.base) / 64.0;
                }
                self.jitter_ms += ((off - a.base).max(0.0) - self.jitter_ms) / 16.0;
            }
            None => self.anchor = Some(Anchor { epoch: now, seq0: seq, base: 0.0 }),
        }
        let repeats = frames.len().saturating_sub(1);
        self.redundancy_age += 1;
        if repeats >= self.redundancy || self.redundancy_age > 50 {
            (self.redundancy, self.redundancy_age) = (repeats, 0);
        }
        self.retarget();
        for (i, f) in frames.iter().enumerate() {
            let Some(s) = seq.checked_sub(i as u64) else { break };
            if self.next.is_some_and(|n| s < n) {
                if i == 0 {
                    self.stats.late += 1;
                }
                continue;
            }
            if i == 0 {
                self.stats.received += 1;
                self.frames.insert(s, (f.to_vec(), true, fec));
            } else {
                self.frames.entry(s).or_insert_with(|| (f.to_vec(), false, fec));
            }
        }
        // Bounded: never hold more than a few seconds.
        while self.frames.len() > 150 {
            self.frames.pop_first();
        }
    }

    /// Deep enough for the measured jitter and, while packets are being
    /// lost and repeated, for the repeats of a typical loss burst to arrive.
    fn retarget(&mut self) {
        let mut lookahead = 1;
        if self.loss_avg > WAIT_FOR_REPEATS_LOSS {
            // Wait for as many later packets as it takes to cover all but
            // a few of the lost frames, as far as the repeats reach.
            let total: f64 = self.run_weights.iter().sum();
            let mut burst = 1;
            while burst < MAX_LOSS_LOOKAHEAD && self.run_weights[burst..].iter().sum::<f64>() > UNCOVERED * total {
                burst += 1;
            }
            lookahead = lookahead.max(burst.min(self.redundancy));
        }
        if self.stats.received < SETTLED {
            // Until the link is known, expect losses in pairs.
            lookahead = lookahead.max(2);
        }
        // Twice the mean lateness covers nearly all of it.
        self.delay_ms = (20.0 * lookahead as f64 + 2.0 * self.jitter_ms).min(20.0 * (MAX_TARGET - 1) as f64);
    }

    /// How long after its packet was due frame `n` is played `now`, ms.
    fn wait_ms(&self, n: u64, now: Instant) -> f64 {
        let Some(a) = self.anchor else { return 0.0 };
        a.offset_ms(n, now) - a.base
    }

    /// What to play for this 20 ms tick.
    pub fn pop(&mut self, now: Instant) -> Play {
        if !self.playing {
            let Some((&first, _)) = self.frames.first_key_value() else { return Play::Idle };
            // Start once the oldest frame has waited the whole target
            // delay, judged by sequence number and time rather than by
            // count (a pre-roll frame arrives together with the next one).
            // Not roughly: a frame played a few ms early misses the copy
            // it waits for (measured: 10 % loss, 2.8 playing up to 10 ms
            // early, 3.3 not).
            if self.wait_ms(first, now) < self.delay_ms {
                return Play::Idle;
            }
            self.playing = true;
            self.next = Some(first);
            self.conceal_run = 0;
        }
        // Shrink when calm: drop the oldest frame if far above target.
        if self.frames.len() > self.target() + 3
            && let Some((s, _)) = self.frames.pop_first()
        {
            self.stats.skipped += 1;
            self.next = Some(s + 1);
        }
        let Some(n) = self.next else { return Play::Idle };
        if let Some((frame, primary, _)) = self.frames.remove(&n) {
            self.next = Some(n + 1);
            self.conceal_run = 0;
            if !primary {
                self.stats.recovered_red += 1;
                self.stats.missing += 1;
            }
            return Play::Frame(frame);
        }
        if self.frames.is_empty() {
            self.conceal_run += 1;
            if self.conceal_run > MAX_CONCEAL {
                self.playing = false;
                self.next = None;
                return Play::Idle;
            }
            // Underrun: the speaker stopped, this frame is lost, or it is
            // late. While the delay is short of its target (the target grew
            // with jitter or loss bursts), insert the concealed frame and
            // keep waiting for this one: that is how the delay grows. At
            // the target, move on: waiting longer would only shift the rest
            // of the talk spurt later.
            self.stats.concealed += 1;
            if self.wait_ms(n, now) < self.delay_ms {
                self.stats.stretched += 1;
            } else {
                self.next = Some(n + 1);
            }
            return Play::Conceal;
        }
        // A later frame is here but this one is not: it is lost.
        self.next = Some(n + 1);
        self.stats.missing += 1;
        if let Some((next, _, true)) = self.frames.get(&(n + 1)) {
            self.stats.recovered_fec += 1;
            return Play::Fec(next.clone());
        }
        self.stats.concealed += 1;
        Play::Conceal
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tick(t0: Instant, i: u32) -> Instant {
        t0 + Duration::from_millis(u64::from(i) * 20)
    }

    #[test]
    fn plays_in_order_and_recovers_losses() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        // Packets 0..10, packet 4 lost (but its copy rides in 5), 7 lost with no copy.
        let mut played = Vec::new();
        for i in 0..10u32 {
            let now = tick(t0, i);
            let f = [i as u8];
            let prev = [(i as u8).wrapping_sub(1)];
            match i {
                4 | 7 => {}
                5 => jb.push(i, true, &[&f, &prev], now),
                _ => jb.push(i, true, &[&f], now),
            }
            played.push(jb.pop(now));
        }
        for i in 10..14u32 {
            played.push(jb.pop(tick(t0, i)));
        }
        let frames: Vec<Play> = played.into_iter().filter(|p| *p != Play::Idle).collect();
        assert_eq!(frames[4], Play::Frame(vec![4]), "the redundant copy filled frame 4: {frames:?}");
        assert_eq!(frames[7], Play::Fec(vec![8]), "FEC from the next frame: {frames:?}");
        assert_eq!(jb.stats.recovered_red, 1);
        assert_eq!(jb.stats.recovered_fec, 1);
        assert!(frames[..10].iter().enumerate().all(|(i, p)| i == 7 || *p == Play::Frame(vec![i as u8])), "{frames:?}");
    }

    #[test]
    fn goes_idle_after_the_speaker_stops_and_bounds_its_size() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        for i in 0..3u32 {
            jb.push(i, false, &[&[1]], tick(t0, i));
        }
        let outs: Vec<Play> = (0..12).map(|i| jb.pop(tick(t0, 3 + i))).collect();
        assert_eq!(outs.iter().filter(|p| matches!(p, Play::Frame(_))).count(), 3);
        assert!(outs.iter().filter(|p| **p == Play::Conceal).count() <= MAX_CONCEAL as usize);
        assert_eq!(outs.last(), Some(&Play::Idle));
        for i in 0..1000u32 {
            jb.push(i + 100, false, &[&[0]], t0);
        }
        assert!(jb.depth() <= 150);
    }

    #[test]
    fn pauses_between_talk_spurts_are_not_jitter() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        let (mut t, mut seq, mut played) = (t0, 0, 0);
        // Pauses shorter and longer than the buffer's idle timeout; the
        // listener ticks 7 ms after each 20 ms step, pauses included.
        for pause in [100u64, 140, 280, 700, 120, 200, 460, 100, 160] {
            for step in 0..25 + pause / 20 {
                if step < 25 {
                    jb.push(seq, false, &[&[0]], t);
                    seq += 1;
                }
                if matches!(jb.pop(t + Duration::from_millis(7)), Play::Frame(_)) {
                    played += 1;
                }
                t += Duration::from_millis(20);
            }
        }
        assert!(jb.jitter_ms() < 1.0, "jitter {} ms", jb.jitter_ms());
        assert_eq!(jb.target(), MIN_TARGET);
        assert_eq!((jb.stats.late, jb.stats.lost_packets), (0, 0));
        assert!(played >= 9 * 25 - 3, "played {played} of {}", 9 * 25);
    }

    #[test]
    fn target_grows_with_jitter_and_stays_bounded() {
        let t0 = Instant::now();
        let mut calm = JitterBuffer::new();
        assert_eq!(calm.target(), 3, "until the link is known, waits for two later packets");
        for i in 0..150u32 {
            calm.push(i, false, &[&[0]], tick(t0, i));
        }
        let mut jittery = JitterBuffer::new();
        for i in 0..150u32 {
            let wobble = if i % 2 == 0 { 0 } else { 45 };
            jittery.push(i, false, &[&[0]], tick(t0, i) + Duration::from_millis(wobble));
        }
        assert_eq!(calm.target(), MIN_TARGET, "a known clean link waits one frame for FEC or a repeat");
        assert!(jittery.target() > calm.target() && jittery.target() <= MAX_TARGET, "{}", jittery.target());
    }

    /// Packets `0..n` with `repeats` earlier frames each, lost where `lost`
    /// says, arriving every 20 ms; a tick 7 ms after each arrival.
    fn run(n: u32, repeats: u32, lost: impl Fn(u32) -> bool) -> (JitterBuffer, Vec<Play>) {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut played = Vec::new();
        for i in 0..n + 10 {
            if i < n && !lost(i) {
                let frames: Vec<[u8; 4]> = (0..=repeats.min(i)).map(|k| (i - k).to_le_bytes()).collect();
                let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
                jb.push(i, false, &refs, tick(t0, i));
            }
            played.push(jb.pop(tick(t0, i) + Duration::from_millis(7)));
        }
        (jb, played)
    }

    #[test]
    fn loss_is_measured_on_arrival_and_reported() {
        // Every 10th packet lost, in runs of 3 from packet 100 on.
        // (Counted once three later packets have come: 303 packets, the
        // last one not a loss.)
        let (mut jb, _) = run(303, 3, |i| i % 10 == 5 || (i >= 100 && i % 10 == 6) || (i >= 100 && i % 10 == 7));
        assert_eq!(jb.stats.lost_packets, 10 + 20 * 3);
        assert_eq!(jb.stats.loss_runs, 30);
        let (loss, burst) = jb.loss();
        assert!((0.2..0.4).contains(&loss), "recent loss {loss}");
        assert!(burst > 2.5, "recent runs are 3 long: {burst}");
        let (permille, burst_x10) = jb.take_report().expect("a report");
        assert!((200..400).contains(&permille) && burst_x10 > 25, "{permille} {burst_x10}");
        assert_eq!(jb.take_report(), None, "nothing new to report");
    }

    #[test]
    fn bursts_are_waited_for_as_far_as_the_repeats_reach() {
        // Runs of 3 lost packets: with 3 repeats the buffer waits three
        // frames and every lost frame is played from a copy.
        let lost = |i: u32| i >= 10 && i % 10 < 3;
        let (jb, played) = run(400, 3, lost);
        assert_eq!(jb.target(), 4, "three frames of look-ahead");
        let late: Vec<u32> = (0..400).filter(|&i| lost(i)).collect();
        assert!(jb.stats.recovered_red as usize >= late.len() - 6, "{:?} of {}", jb.stats, late.len());
        assert!(played.iter().filter(|p| **p == Play::Conceal).count() <= 6 + MAX_CONCEAL as usize, "{:?}", jb.stats);
        // With one repeat, waiting longer than one frame would not help.
        let (jb, _) = run(400, 1, lost);
        assert_eq!(jb.target(), 2);
    }

    #[test]
    fn a_pre_roll_frame_does_not_shorten_the_delay() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        // The pre-roll frame 0 and frame 1 arrive together, then one per 20 ms.
        jb.push(0, false, &[&[0]], t0);
        jb.push(1, false, &[&[1]], t0);
        let mut first = None;
        for i in 0..10u32 {
            let now = tick(t0, i) + Duration::from_millis(7);
            if i > 0 {
                jb.push(i + 1, false, &[&[(i + 1) as u8]], tick(t0, i));
            }
            if first.is_none() && jb.pop(now) != Play::Idle {
                first = Some(i);
            }
        }
        // Target 3: frame 1 waits two frames after it arrived, so frame 0
        // starts one tick earlier, not as soon as three frames are there.
        assert_eq!(first, Some(1), "started at tick {first:?}");
    }

    #[test]
    fn a_speaker_starting_again_is_not_late() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        let (mut t, mut played) = (0, 0);
        let mut tick_and_count = |jb: &mut JitterBuffer, t: &mut u32| {
            if matches!(jb.pop(tick(t0, *t) + Duration::from_millis(7)), Play::Frame(_)) {
                played += 1;
            }
            *t += 1;
        };
        // Two talk spurts 100 ms apart (a push-to-talk key let go and
        // pressed again; shorter than the buffer's idle timeout); the
        // numbers continue after the pause, as a sender's do. The buffer
        // runs dry at the end of the first.
        for spurt in 0..2u32 {
            for i in 0..20u32 {
                let seq = spurt * 20 + i;
                jb.push(seq, false, &[&[seq as u8]], tick(t0, t));
                tick_and_count(&mut jb, &mut t);
            }
            for _ in 0..5 {
                tick_and_count(&mut jb, &mut t);
            }
        }
        for _ in 0..5 {
            tick_and_count(&mut jb, &mut t);
        }
        assert_eq!(jb.stats.late, 0);
        assert_eq!(played, 40, "{:?}", jb.stats);
    }

    #[test]
    fn every_talk_spurt_gets_the_same_delay_despite_jitter() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut starts = Vec::new();
        let (mut seq, mut frame) = (0u32, 0u64);
        for spurt in 0..9u64 {
            // Packets on the sender's 20 ms grid; the first few of each
            // spurt late by 0 to 9 ms (a different amount each spurt), the
            // rest on time. The listener ticks 45 ms after the grid. The
            // sender's frames go on during pauses, its numbers do not.
            let mut first_play = None;
            for i in 0..40u64 {
                let late = if i < 4 { (spurt * 7) % 10 } else { 0 };
                let due = t0 + Duration::from_millis((frame + i) * 20);
                if i < 30 {
                    jb.push(seq + i as u32, false, &[&[0]], due + Duration::from_millis(late));
                }
                let play = jb.pop(due + Duration::from_millis(45));
                if first_play.is_none() && play != Play::Idle {
                    first_play = Some(i);
                }
            }
            starts.push(first_play);
            seq += 30;
            frame += 40 + spurt * 7; // pauses of different lengths
        }
        // From the second spurt on (the first has only its own packets to
        // go by), the same until 100 packets (link not known: two frames
        // of look-ahead) and the same after (known clean: one).
        let same = |s: &[Option<u64>]| s.windows(2).all(|w| w[0] == w[1]);
        assert!(same(&starts[1..4]) && same(&starts[4..]), "ticks from first packet to playing: {starts:?}");
    }

    #[test]
    fn reordered_packets_are_not_loss() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        // Every fifth packet overtaken by the next one.
        for i in 0..200u32 {
            let seq = match i % 5 {
                3 => i + 1,
                4 => i - 1,
                _ => i,
            };
            jb.push(seq, false, &[&[0]], tick(t0, i));
        }
        assert_eq!((jb.stats.lost_packets, jb.stats.loss_runs), (0, 0));
        assert_eq!(jb.loss(), (0.0, 1.0));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut played = Vec::new();
        for i in 0..40u32 {
            let seq = (u32::MAX - 20).wrapping_add(i);
            jb.push(seq, false, &[&seq.to_le_bytes()], tick(t0, i));
            if let Play::Frame(f) = jb.pop(tick(t0, i) + Duration::from_millis(7)) {
                played.push(u32::from_le_bytes(f.try_into().expect("4 bytes")));
            }
        }
        assert!(played.len() >= 37, "{played:?}");
        assert!(played.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "in order across the wrap: {played:?}");
        assert_eq!(jb.stats.lost_packets, 0);
    }

    #[test]
    fn a_number_far_off_starts_a_new_stream() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new();
        for i in 0..20u32 {
            jb.push(i, false, &[&[1]], tick(t0, i));
            jb.pop(tick(t0, i) + Duration::from_millis(7));
        }
        // One packet far ahead (a hostile or restarted speaker), then
        // silence: the buffer plays it and goes idle, rather than
        // concealing the gap up to it forever.
        jb.push(1 << 30, false, &[&[2]], tick(t0, 20));
        let plays: Vec<Play> = (20..40).map(|i| jb.pop(tick(t0, i) + Duration::from_millis(7))).collect();
        assert!(plays.contains(&Play::Frame(vec![2])), "{plays:?}");
        assert_eq!(plays.last(), Some(&Play::Idle), "{plays:?}");
        assert_eq!(jb.stats.lost_packets, 0, "a new stream is not loss");
        // And one far behind (a speaker starting again at 0).
        jb.push(5, false, &[&[3]], tick(t0, 40));
        let plays: Vec<Play> = (40..60).map(|i| jb.pop(tick(t0, i) + Duration::from_millis(7))).collect();
        assert!(plays.contains(&Play::Frame(vec![3])), "{plays:?}");
        assert_eq!(plays.last(), Some(&Play::Idle));
    }
}
