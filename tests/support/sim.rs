//! A voice link simulated end to end, faster than real time and
//! deterministic: the talker's send pipeline (as a microphone feeds it),
//! the network (loss both ways, jitter), the listener's jitter buffer and
//! decoder, and the loss reports back — client-core's code, with the
//! network and the clocks simulated in microseconds. The `loss_sim` binary
//! and the voice tests run it.
//!
//! Clocks: the talker captures a frame every 20 ms of its own clock, which
//! may run fast or slow ([`SimOptions::talker_clock`]); the listener mixes a
//! frame every 20 ms of true time, 7 ms after the talker's grid (its own
//! clock is the timeline everything is measured on).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use client_core::audio::FRAME;
use client_core::audio::decoder::{DECODER_COMPLEXITY, Decoder};
use client_core::audio::jitter::{JitterStats, Play};
use client_core::audio::pipeline::{Outgoing, Protection, SendConfig, SendPipeline};
use client_core::audio::playout::Playout;

use crate::loss::{Channel, Loss, Rng};

/// One-way delay of the simulated network, µs.
pub const DELAY_US: u64 = 2_000;
/// Listener → server → talker delay of a loss report, µs.
const REPORT_DELAY_US: u64 = 4_000;
/// How often the listener reports (as the engine does), µs.
const REPORT_EVERY_US: u64 = 500_000;
/// Phase of the listener's 20 ms mix tick against the talker's capture, µs.
pub const TICK_PHASE_US: u64 = 7_000;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The talker's send pipeline settings (echo cancellation is off: WAV
    /// to WAV has no echo path).
    pub send: SendConfig,
    /// Protection fixed instead of following the reports.
    pub fixed: Option<Protection>,
    /// The listener's decoder complexity.
    pub complexity: i32,
    /// Loss on each leg.
    pub loss: Loss,
    /// Seed of the loss patterns and the jitter.
    pub seed: u64,
    /// Extra random delay per packet, up to this many ms.
    pub jitter_ms: u64,
    /// Loss on the way down only.
    pub one_way: bool,
    /// When in each 500 ms the listener reports, ms.
    pub report_phase_ms: u64,
    /// How fast the talker's capture clock runs against the listener's
    /// (1.001: 0.1 % fast).
    pub talker_clock: f64,
    /// Print protection changes as they happen.
    pub trace: bool,
    /// The most frames the listener waits for a burst's recovery (`None`:
    /// its default).
    pub burst_wait: Option<usize>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            send: SendConfig { aec: false, ..SendConfig::default() },
            fixed: None,
            complexity: DECODER_COMPLEXITY,
            loss: Loss::None,
            seed: 1,
            jitter_ms: 0,
            one_way: false,
            report_phase_ms: TICK_PHASE_US / 1000,
            talker_clock: 1.0,
            trace: false,
            burst_wait: None,
        }
    }
}

/// What a run gives.
#[derive(Debug, Clone)]
pub struct SimOutput {
    /// The listener's recording from time 0 (48 kHz mono), on the same
    /// timeline as the source.
    pub recording: Vec<f32>,
    /// Audio packets sent after each captured frame (0 while the gate is
    /// closed; a pre-roll adds the frames it sends at once).
    pub sent_after_frame: Vec<usize>,
    /// The speech probability of each captured frame.
    pub speech_prob: Vec<f32>,
    /// Packets sent and lost on the way.
    pub sent: u64,
    /// Packets lost on the way.
    pub dropped: u64,
    /// Per packet: `.` arrived, `x` lost.
    pub packets: String,
    /// Per tick: ` ` idle, `f` a frame, `F` FEC, `c` concealed.
    pub played: String,
    /// The listener's counters.
    pub stats: JitterStats,
    /// Lost frames the listener recovered from deep redundancy.
    pub recovered_dred: u64,
    /// The jitter buffer at the end: measured jitter, delay and target.
    pub jitter_ms: f64,
    /// Its playout delay at the end, ms.
    pub delay_ms: f64,
    /// Its target depth at the end, frames.
    pub target: usize,
    /// The talker's protection at the end.
    pub protection: Protection,
}

/// Runs `mono` (48 kHz) through the simulated link.
///
/// # Errors
///
/// A codec error, as text.
pub fn run(mono: &[f32], o: &SimOptions) -> Result<SimOutput, String> {
    let frames = mono.len() / FRAME;
    let mut pipeline = SendPipeline::new(o.send).map_err(|e| e.to_string())?;
    if let Some(p) = o.fixed {
        pipeline.set_protection(p).map_err(|e| e.to_string())?;
    }
    let mut playout = Playout::new();
    if let Some(w) = o.burst_wait {
        playout.jb.set_burst_wait(w);
    }
    let mut decoder = Decoder::with_complexity(o.complexity).map_err(|e| e.to_string())?;
    let mut up = Channel::new(if o.one_way { Loss::None } else { o.loss }, o.seed);
    let mut down = Channel::new(o.loss, o.seed.rotate_left(17) ^ 0x9E37_79B9);
    let mut jitter_rng = Rng::new(o.seed ^ 0xDEAD_BEEF);
    // Arrival time (µs) → packets; report arrival time → report.
    let mut in_flight: BTreeMap<u64, Vec<Outgoing>> = BTreeMap::new();
    let mut reports: BTreeMap<u64, (u16, u16)> = BTreeMap::new();
    let mut out = SimOutput {
        recording: Vec::with_capacity(mono.len() + 48_000),
        sent_after_frame: Vec::with_capacity(frames),
        speech_prob: Vec::with_capacity(frames),
        sent: 0,
        dropped: 0,
        packets: String::new(),
        played: String::new(),
        stats: JitterStats::default(),
        recovered_dred: 0,
        jitter_ms: 0.0,
        delay_ms: 0.0,
        target: 0,
        protection: Protection::default(),
    };
    let mut frame = vec![0.0f32; FRAME];
    let t0 = Instant::now();
    let frame_at = |i: usize| ((i as f64 + 1.0) * 20_000.0 / o.talker_clock).round() as u64;
    let end_us = (frames as u64 + 50) * 20_000;
    let (mut next_frame, mut next_tick) = (0usize, TICK_PHASE_US);
    let mut next_report = (o.report_phase_ms * 1000) % REPORT_EVERY_US;
    loop {
        let t = [
            (next_frame < frames).then(|| frame_at(next_frame)),
            Some(next_tick),
            Some(next_report),
            in_flight.keys().next().copied(),
            reports.keys().next().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(end_us);
        if t >= end_us {
            break;
        }
        let now = t0 + Duration::from_micros(t);
        if let Some((loss, burst)) = reports.remove(&t)
            && o.fixed.is_none()
        {
            let before = pipeline.protection();
            pipeline.set_feedback(loss, burst).map_err(|e| e.to_string())?;
            if o.trace && pipeline.protection() != before {
                eprintln!("{:6} ms: report {loss}‰ burst {burst}/10 → {:?}", t / 1000, pipeline.protection());
            }
        }
        if next_frame < frames && frame_at(next_frame) == t {
            let i = next_frame;
            next_frame += 1;
            let packets = pipeline.process(&mono[i * FRAME..(i + 1) * FRAME]).map_err(|e| e.to_string())?;
            out.sent_after_frame.push(packets.len());
            out.speech_prob.push(pipeline.speech_prob);
            for packet in packets {
                out.sent += 1;
                if up.drop_next() || down.drop_next() {
                    out.dropped += 1;
                    out.packets.push('x');
                    continue;
                }
                out.packets.push('.');
                let jitter =
                    if o.jitter_ms > 0 { (jitter_rng.uniform() * o.jitter_ms as f64 * 1000.0) as u64 } else { 0 };
                in_flight.entry(t + DELAY_US + jitter).or_default().push(packet);
            }
        }
        if let Some(arrived) = in_flight.remove(&t) {
            for packet in arrived {
                let frames: Vec<&[u8]> = packet.frames.iter().map(Vec::as_slice).collect();
                playout.jb.push(packet.seq, false, &frames, now);
            }
        }
        if next_tick == t {
            next_tick += 20_000;
            frame.fill(0.0);
            let mut what = String::new();
            let recovered = decoder.recovered_dred;
            playout.play(now, &mut frame, |play, out| {
                what.push(match play {
                    Play::Idle => ' ',
                    Play::Frame(_) => 'f',
                    Play::Fec(_) => 'F',
                    Play::Conceal => 'c',
                    Play::Dred(..) => 'd',
                });
                decoder.play(play, out);
            });
            if decoder.recovered_dred != recovered || decoder.dred_seen {
                playout.jb.note_dred();
            }
            // One mark a tick: the last frame decoded for it.
            out.played.push(what.chars().last().unwrap_or(' '));
            out.recording.extend_from_slice(&frame);
        }
        if next_report == t {
            next_report += REPORT_EVERY_US;
            if let Some(report) = playout.jb.take_report() {
                reports.insert(t + REPORT_DELAY_US, report);
            }
        }
    }
    out.stats = playout.jb.stats;
    out.recovered_dred = decoder.recovered_dred;
    out.jitter_ms = playout.jb.jitter_ms();
    out.delay_ms = playout.jb.delay_ms();
    out.target = playout.jb.target();
    out.protection = pipeline.protection();
    Ok(out)
}
