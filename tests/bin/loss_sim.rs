//! Voice over a simulated lossy link, faster than real time and
//! deterministic: the send pipeline, the jitter buffer, the decoder and the
//! loss reports of the real engine, with the network and the clocks
//! simulated ([`socket_chatroom_tests::sim`]). For trying protection and buffering choices
//! before scoring them through the real clients (`scripts/voice-quality.sh`
//! scores both).
//!
//! ```text
//! cargo run --release -p socket-chatroom-tests --bin loss_sim -- IN.wav OUT.wav \
//!     [--loss 0.1] [--burst 3] [--jitter MS] [--seed N] [--no-protect] [--complexity 0-10]
//!     [--fixed REPEATS[,BPS[,DRED_10MS]]]  (protection fixed instead of following reports; BPS 0: the
//!         budget's; up to 7 repeats here, where the wire carries 3)
//!     [--burst-wait FRAMES]  (the most frames the listener waits for a burst's recovery)
//!     [--trace]  (per packet: arrived or lost; per tick: what was played)
//!     [--one-way]  (loss on the way down only)
//!     [--report-phase MS]  (when in each 500 ms the listener reports; default 7)
//!     [--no-denoise]
//!     [--vad-threshold P]  (the gate's threshold; 0 = always open)
//!     [--talker-clock F]  (the talker's capture clock against the listener's: 1.001 = 0.1 % fast)
//! ```
//!
//! Loss is applied on the way up (talker → relay) and on the way down
//! (relay → listener), each a Gilbert-Elliott chain with the given loss rate
//! and mean burst length (1 = independent losses), seeded as the voice
//! tests' lossy proxy seeds its two directions. OUT.wav is the listener's
//! recording from time 0, on the same timeline as IN.wav.

use std::path::PathBuf;
use std::process::ExitCode;

use client_core::audio::decoder::DECODER_COMPLEXITY;
use client_core::audio::pipeline::{Protection, SendConfig};
use client_core::audio::resample::Resampler;
use client_core::audio::{RATE, wav};
use socket_chatroom_tests::loss::Loss;
use socket_chatroom_tests::sim::{self, SimOptions};

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
    vad_threshold: f32,
    talker_clock: f64,
    denoise: bool,
    burst_wait: Option<usize>,
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
        vad_threshold: SendConfig::default().vad_threshold,
        talker_clock: 1.0,
        denoise: true,
        burst_wait: None,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--loss" => o.loss = value("--loss")?.parse().map_err(|e| format!("--loss: {e}"))?,
            "--burst" => o.burst = value("--burst")?.parse().map_err(|e| format!("--burst: {e}"))?,
            "--jitter" => o.jitter_ms = value("--jitter")?.parse().map_err(|e| format!("--jitter: {e}"))?,
            "--seed" => o.seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--no-protect" => o.protect = false,
            "--no-denoise" => o.denoise = false,
            "--burst-wait" => {
                o.burst_wait = Some(value("--burst-wait")?.parse().map_err(|e| format!("--burst-wait: {e}"))?);
            }
            "--vad-threshold" => {
                o.vad_threshold = value("--vad-threshold")?.parse().map_err(|e| format!("--vad-threshold: {e}"))?;
            }
            "--talker-clock" => {
                o.talker_clock = value("--talker-clock")?.parse().map_err(|e| format!("--talker-clock: {e}"))?;
            }
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
                let (r, bps, dred) = match v[..] {
                    [r] => (r, None, 0),
                    [r, bps] => (r, Some(bps), 0),
                    [r, bps, dred] => (r, Some(bps).filter(|b| *b > 0), dred),
                    _ => return Err("--fixed REPEATS[,BPS[,DRED_10MS]]".into()),
                };
                o.fixed = Some(Protection { redundancy: r.clamp(0, 7) as usize, primary_bps: bps, dred_10ms: dred });
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
    let loss = match (o.loss, o.burst) {
        (l, _) if l <= 0.0 => Loss::None,
        (l, b) if b <= 1.0 => Loss::Random(l),
        (rate, mean_burst) => Loss::Bursty { rate, mean_burst },
    };
    let options = SimOptions {
        // WAV to WAV: no echo path, so no echo cancellation (as in the engine).
        send: SendConfig {
            aec: false,
            protect: o.protect,
            vad_threshold: o.vad_threshold,
            denoise: o.denoise,
            ..SendConfig::default()
        },
        fixed: o.fixed,
        complexity: o.complexity,
        loss,
        seed: o.seed,
        jitter_ms: o.jitter_ms,
        one_way: o.one_way,
        report_phase_ms: o.report_phase,
        talker_clock: o.talker_clock,
        trace: o.trace,
        burst_wait: o.burst_wait,
    };
    let r = sim::run(&mono, &options)?;
    wav::write_all(&o.output, &r.recording).map_err(|e| e.to_string())?;
    if o.trace {
        let gate: String = r
            .sent_after_frame
            .iter()
            .zip(&r.speech_prob)
            .map(|(n, p)| match (n, (p * 10.0) as u32) {
                (0, _) => '_',
                (_, d) => char::from_digit(d.min(9), 10).unwrap_or('9'),
            })
            .collect();
        let probs: String =
            r.speech_prob.iter().map(|p| char::from_digit(((p * 10.0) as u32).min(9), 10).unwrap_or('9')).collect();
        for (k, (g, p)) in gate.as_bytes().chunks(100).zip(probs.as_bytes().chunks(100)).enumerate() {
            eprintln!(
                "{:5} sent    {}\n{:5} prob    {}",
                k * 100,
                String::from_utf8_lossy(g),
                "",
                String::from_utf8_lossy(p)
            );
        }
        for (k, (t, p)) in r.packets.as_bytes().chunks(100).zip(r.played.as_bytes().chunks(100)).enumerate() {
            eprintln!(
                "{:5} packets {}\n{:5} played  {}",
                k * 100,
                String::from_utf8_lossy(t),
                "",
                String::from_utf8_lossy(p)
            );
        }
    }
    let s = r.stats;
    println!(
        "sent {} dropped {} received {} lost {} recovered {} (repeat {}, FEC {}, DRED {}) concealed {} late {} \
         skipped {} stretched {} jitter {:.1} ms delay {:.0} ms target {} protection {:?}",
        r.sent,
        r.dropped,
        s.received,
        s.missing,
        s.recovered_red + s.recovered_fec + r.recovered_dred,
        s.recovered_red,
        s.recovered_fec,
        r.recovered_dred,
        s.concealed,
        s.late,
        s.skipped,
        s.stretched,
        r.jitter_ms,
        r.delay_ms,
        r.target,
        r.protection
    );
    Ok(())
}
