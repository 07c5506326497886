//! Voice over a simulated lossy link, faster than real time and
//! deterministic: the send pipeline, the jitter buffer, the decoder and the
//! loss reports of the real engine, with the network and the clock
//! simulated (1 ms steps). For trying protection and buffering choices
//! before scoring them through the real clients (`scripts/voice-quality.sh`
//! scores both).
//!
//! ```text
//! cargo run --release -p socket-chatroom-tests --bin loss_sim -- IN.wav OUT.wav \
//!     [--loss 0.1] [--burst 3] [--jitter MS] [--seed N] [--no-protect] [--complexity 0-10]
//!     [--fixed REPEATS[,BPS]]  (protection fixed instead of following reports)
//!     [--trace]  (per packet: arrived or lost; per tick: what was played)
//!     [--one-way]  (loss on the way down only)
//!     [--report-phase MS]  (when in each 500 ms the listener reports; default 7)
//! ```
//!
//! Loss is applied on the way up (talker → relay) and on the way down
//! (relay → listener), each a Gilbert-Elliott chain with the given loss rate
//! and mean burst length (1 = independent losses), seeded as the voice
//! tests' lossy proxy seeds its two directions. OUT.wav is the listener's
//! recording from time 0, on the same timeline as IN.wav.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use client_core::audio::decoder::{DECODER_COMPLEXITY, Decoder};
use client_core::audio::jitter::{JitterBuffer, Play};
use client_core::audio::pipeline::{Outgoing, Protection, SendConfig, SendPipeline};
use client_core::audio::resample::Resampler;
use client_core::audio::{FRAME, RATE, wav};
use socket_chatroom_tests::loss::{Channel, Loss, Rng};

/// One-way delay of the simulated network.
const DELAY_MS: u64 = 2;
/// Listener → server → talker delay of a loss report.
const REPORT_DELAY_MS: u64 = 4;
/// How often the listener reports (as the engine does).
const REPORT_EVERY_MS: u64 = 500;
/// Phase of the listener's 20 ms mix tick against the talker's capture.
const TICK_PHASE_MS: u64 = 7;

struct Options {
    input: PathBuf,
    output: PathBuf,
    loss: f64,
    burst: f64,
    jitter_ms: u64,
    seed: u64,
    protect: bool,
    complexity: i32,
    fixed: Option<Protection>,
    trace: bool,
    one_way: bool,
    report_phase: u64,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut o = Options {
        input: PathBuf::new(),
        output: PathBuf::new(),
        loss: 0.0,
        burst: 1.0,
        jitter_ms: 0,
        seed: 1,
        protect: true,
        complexity: DECODER_COMPLEXITY,
        fixed: None,
        trace: false,
        one_way: false,
        report_phase: TICK_PHASE_MS,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--loss" => o.loss = value("--loss")?.parse().map_err(|e| format!("--loss: {e}"))?,
            "--burst" => o.burst = value("--burst")?.parse().map_err(|e| format!("--burst: {e}"))?,
            "--jitter" => o.jitter_ms = value("--jitter")?.parse().map_err(|e| format!("--jitter: {e}"))?,
            "--seed" => o.seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--no-protect" => o.protect = false,
            "--trace" => o.trace = true,
            "--one-way" => o.one_way = true,
            "--report-phase" => {
                o.report_phase = value("--report-phase")?.parse().map_err(|e| format!("--report-phase: {e}"))?;
            }
            "--fixed" => {
                let v: Vec<i32> = value("--fixed")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--fixed: {e}"))?;
                let (r, bps) = match v[..] {
                    [r] => (r, None),
                    [r, bps] => (r, Some(bps)),
                    _ => return Err("--fixed REPEATS[,BPS]".into()),
                };
                o.fixed = Some(Protection { redundancy: r.clamp(0, 3) as usize, primary_bps: bps });
            }
            "--complexity" => {
                o.complexity = value("--complexity")?.parse().map_err(|e| format!("--complexity: {e}"))?
            }
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ => positional.push(PathBuf::from(a)),
        }
    }
    let [input, output] = <[PathBuf; 2]>::try_from(positional).map_err(|_| "usage: loss_sim IN.wav OUT.wav [..]")?;
    if !(0.0..1.0).contains(&o.loss) || o.burst < 1.0 {
        return Err("--loss must be in [0, 1) and --burst at least 1".into());
    }
    (o.input, o.output) = (input, output);
    Ok(o)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loss_sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let o = parse()?;
    let (rate, channels, samples) = wav::read_all(&o.input).map_err(|e| e.to_string())?;
    let mut mono = Vec::new();
    Resampler::new(rate, RATE, channels).map_err(|e| e.to_string())?.process(&samples, &mut mono);
    let frames = mono.len() / FRAME;
    let mut pipeline =
        // WAV to WAV: no echo path, so no echo cancellation (as in the engine).
        SendPipeline::new(SendConfig { aec: false, protect: o.protect, ..SendConfig::default() }).map_err(|e| e.to_string())?;
    if let Some(p) = o.fixed {
        pipeline.set_protection(p).map_err(|e| e.to_string())?;
    }
    let mut jb = JitterBuffer::new();
    let mut decoder = Decoder::with_complexity(o.complexity).map_err(|e| e.to_string())?;
    let loss = match (o.loss, o.burst) {
        (l, _) if l <= 0.0 => Loss::None,
        (l, b) if b <= 1.0 => Loss::Random(l),
        (rate, mean_burst) => Loss::Bursty { rate, mean_burst },
    };
    let mut up = Channel::new(if o.one_way { Loss::None } else { loss }, o.seed);
    let mut down = Channel::new(loss, o.seed.rotate_left(17) ^ 0x9E37_79B9);
    let mut jitter_rng = Rng::new(o.seed ^ 0xDEAD_BEEF);
    // Arrival time (ms) → packets (sequence number, frames newest first).
    let mut in_flight: BTreeMap<u64, Vec<Outgoing>> = BTreeMap::new();
    let mut reports: BTreeMap<u64, (u16, u16)> = BTreeMap::new();
    let mut out = Vec::with_capacity(mono.len() + RATE as usize);
    let mut frame = vec![0.0f32; FRAME];
    let (mut sent, mut dropped) = (0u64, 0u64);
    // Per packet: '.' arrived, 'x' lost; per tick: what was played.
    let (mut trace, mut played) = (String::new(), String::new());
    let t0 = Instant::now();
    let end_ms = (frames as u64 + 50) * 20;
    for ms in 0..end_ms {
        let now = t0 + Duration::from_millis(ms);
        if let Some((loss, burst)) = reports.remove(&ms)
            && o.fixed.is_none()
        {
            let before = pipeline.protection();
            pipeline.set_feedback(loss, burst).map_err(|e| e.to_string())?;
            if o.trace && pipeline.protection() != before {
                eprintln!("{ms:6} ms: report {loss}‰ burst {burst}/10 → {:?}", pipeline.protection());
            }
        }
        // The talker's frame i is complete at 20 (i + 1) ms.
        if ms % 20 == 0 && ms > 0 && ((ms / 20 - 1) as usize) < frames {
            let i = (ms / 20 - 1) as usize;
            for packet in pipeline.process(&mono[i * FRAME..(i + 1) * FRAME]).map_err(|e| e.to_string())? {
                sent += 1;
                if up.drop_next() || down.drop_next() {
                    dropped += 1;
                    trace.push('x');
                    continue;
                }
                trace.push('.');
                let jitter = if o.jitter_ms > 0 { (jitter_rng.uniform() * o.jitter_ms as f64) as u64 } else { 0 };
                in_flight.entry(ms + DELAY_MS + jitter).or_default().push(packet);
            }
        }
        if let Some(arrived) = in_flight.remove(&ms) {
            for packet in arrived {
                let frames: Vec<&[u8]> = packet.frames.iter().map(Vec::as_slice).collect();
                jb.push(packet.seq, false, &frames, now);
            }
        }
        if ms % 20 == TICK_PHASE_MS {
            let play = jb.pop(now);
            played.push(match play {
                Play::Idle => ' ',
                Play::Frame(_) => 'f',
                Play::Fec(_) => 'F',
                Play::Conceal => 'c',
            });
            frame.fill(0.0);
            decoder.play(&play, &mut frame);
            out.extend_from_slice(&frame);
        }
        if ms % REPORT_EVERY_MS == o.report_phase % REPORT_EVERY_MS
            && let Some(report) = jb.take_report()
        {
            reports.insert(ms + REPORT_DELAY_MS, report);
        }
    }
    wav::write_all(&o.output, &out).map_err(|e| e.to_string())?;
    if o.trace {
        for (k, (t, p)) in trace.as_bytes().chunks(100).zip(played.as_bytes().chunks(100)).enumerate() {
            eprintln!(
                "{:5} packets {}\n{:5} played  {}",
                k * 100,
                String::from_utf8_lossy(t),
                "",
                String::from_utf8_lossy(p)
            );
        }
    }
    let s = jb.stats;
    println!(
        "sent {sent} dropped {dropped} received {} lost {} recovered {} (repeat {}, FEC {}) concealed {} late {} \
         skipped {} stretched {} jitter {:.1} ms delay {:.0} ms target {} protection {:?}",
        s.received,
        s.missing,
        s.recovered_red + s.recovered_fec,
        s.recovered_red,
        s.recovered_fec,
        s.concealed,
        s.late,
        s.skipped,
        s.stretched,
        jb.jitter_ms(),
        jb.delay_ms(),
        jb.target(),
        pipeline.protection()
    );
    Ok(())
}
