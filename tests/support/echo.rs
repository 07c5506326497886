//! Echo cancellation without a sound card or a clock: the near end's send
//! pipeline (echo cancellation, noise suppression, voice activity gate,
//! Opus) and a decoder, with the test room ([`client_core::audio::room`])
//! between what the near end plays and what it captures. The reference
//! reaches the canceller through the engine's own tap and feed
//! ([`client_core::audio::aec::reference`]), stamped with simulated
//! instants as the mix thread and the send thread stamp them. Frame by
//! frame, deterministic, far faster than real time.

use std::time::{Duration, Instant};

use client_core::audio::FRAME;
use client_core::audio::aec::reference;
use client_core::audio::decoder::Decoder;
use client_core::audio::pipeline::{SendConfig, SendPipeline};
use client_core::audio::room::{EchoPath, Room};

/// What one simulated run gives, sample for sample on one timeline
/// (48 kHz mono, frame `i` covering `[20 i, 20 i + 20)` ms).
#[derive(Debug, Clone)]
pub struct Run {
    /// The echo alone, as the microphone picked it up.
    pub echo: Vec<f32>,
    /// The microphone: near-end speech plus the echo.
    pub mic: Vec<f32>,
    /// After echo cancellation, before noise suppression.
    pub cancelled: Vec<f32>,
    /// What the far end hears of the near end: the whole send pipeline
    /// decoded (silence while the gate is closed).
    pub received: Vec<f32>,
    /// The delay the canceller found, ms (`None`: it was off).
    pub delay_ms: Option<i32>,
}

/// Runs `near` (the near end's speech) and `far` (what the near end's
/// speakers play: the far end's voice) through the room and the send
/// pipeline with `config`, for as long as the shorter of the two.
///
/// # Panics
///
/// If the pipeline cannot be built (Opus refuses the settings).
pub fn simulate(near: &[f32], far: &[f32], room: Room, config: SendConfig) -> Run {
    let frames = near.len().min(far.len()) / FRAME;
    let mut pipeline = SendPipeline::new(config).expect("send pipeline");
    let mut decoder = Decoder::new().expect("decoder");
    let (mut tap, mut feed) = reference::channel();
    let mut path = EchoPath::new(room);
    let n = frames * FRAME;
    let mut run = Run {
        echo: Vec::with_capacity(n),
        mic: Vec::with_capacity(n),
        cancelled: Vec::with_capacity(n),
        received: Vec::with_capacity(n),
        delay_ms: None,
    };
    let mut decoded = vec![0.0f32; FRAME];
    let t0 = Instant::now();
    let frame_time = Duration::from_millis(20);
    for i in 0..frames {
        let span = i * FRAME..(i + 1) * FRAME;
        let played = &far[span.clone()];
        // The mix thread: frame i starts playing at 20 i ms.
        tap.played(played, t0 + frame_time * i as u32);
        // The room, during the same 20 ms.
        let mut mic = Vec::with_capacity(FRAME);
        for (p, s) in played.iter().zip(&near[span]) {
            let e = path.next(*p);
            run.echo.push(e);
            mic.push(s + e);
        }
        run.mic.extend_from_slice(&mic);
        // The send thread: what has played by this frame's end, then the frame.
        feed.due(t0 + frame_time * (i as u32 + 1), |f| pipeline.play(f));
        let packets = pipeline.process(&mic).expect("process");
        run.cancelled.extend_from_slice(pipeline.echo_cancelled());
        if packets.is_empty() {
            run.received.extend(std::iter::repeat_n(0.0, FRAME));
        }
        for (k, packet) in packets.iter().enumerate() {
            decoder.frame(&packet.frames[0], &mut decoded);
            if k + 1 < packets.len() {
                // The pre-roll: the frame before this one, sent as the gate opened.
                let from = run.received.len() - FRAME;
                run.received[from..].copy_from_slice(&decoded);
            } else {
                run.received.extend_from_slice(&decoded);
            }
        }
    }
    run.delay_ms = pipeline.echo_metrics().map(|m| m.delay_ms);
    run
}

/// Echo return loss enhancement, dB: the echo's power at the microphone
/// over the power left of it in `out`, between `from` and `to` seconds of
/// far-end single talk.
pub fn erle_db(echo: &[f32], out: &[f32], from: f64, to: f64) -> f64 {
    let span = (from * 48_000.0) as usize..(to * 48_000.0) as usize;
    let power = |x: &[f32]| x.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / x.len().max(1) as f64;
    10.0 * (power(&echo[span.clone()]) / power(&out[span]).max(1e-20)).log10()
}

/// How `out` is made of `near` (the near end's clean speech) and `echo`
/// (the echo at the microphone), in dB of power each, least squares over
/// 200 ms segments from `from` seconds on: (near part, echo part, the rest:
/// distortion and echo that no longer looks like the echo). `out` lags the
/// inputs by `lag` samples (the canceller's filter bank).
pub fn decompose(near: &[f32], echo: &[f32], out: &[f32], from: f64, lag: usize) -> (f64, f64, f64) {
    let seg = 9_600;
    let start = (from * 48_000.0) as usize;
    let n = near.len().min(echo.len()).min(out.len().saturating_sub(lag));
    let (mut pn, mut pe, mut pr, mut count) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    let mut at = start;
    while at + seg <= n {
        let (x, e, y) = (&near[at..at + seg], &echo[at..at + seg], &out[at + lag..at + lag + seg]);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| f64::from(*p) * f64::from(*q)).sum::<f64>();
        let (xx, ee, xe, xy, ey) = (dot(x, x), dot(e, e), dot(x, e), dot(x, y), dot(e, y));
        let det = xx * ee - xe * xe;
        let (a, b) =
            if det.abs() > 1e-12 { ((xy * ee - ey * xe) / det, (ey * xx - xy * xe) / det) } else { (0.0, 0.0) };
        for i in 0..seg {
            let (sx, se) = (a * f64::from(x[i]), b * f64::from(e[i]));
            pn += sx * sx;
            pe += se * se;
            pr += (f64::from(y[i]) - sx - se).powi(2);
        }
        count += seg;
        at += seg;
    }
    let db = |p: f64| 10.0 * (p / count.max(1) as f64).max(1e-20).log10();
    (db(pn), db(pe), db(pr))
}

/// The lag (0–20 ms) at which `out` best matches `source`, in samples,
/// over one second from `from` seconds on.
pub fn lag_of(source: &[f32], out: &[f32], from: f64) -> usize {
    let start = (from * 48_000.0) as usize;
    let x = &source[start..start + 48_000];
    (0..960)
        .max_by(|a, b| {
            let c = |l: usize| x.iter().zip(&out[start + l..]).map(|(p, q)| f64::from(*p) * f64::from(*q)).sum::<f64>();
            c(*a).total_cmp(&c(*b))
        })
        .unwrap_or(0)
}
