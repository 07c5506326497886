//! Echo cancellation on WAV files, faster than real time and deterministic:
//! the near end's send pipeline with the test room between its speakers
//! and its microphone (`socket_chatroom_tests::echo`). For
//! `scripts/voice-quality.sh echo --offline`, which scores the output with
//! PESQ; the real clients are scored by the same script without `--offline`.
//!
//! ```text
//! echo_sim NEAR.wav FAR.wav OUT_DIR [--delay MS] [--single-talk SECS] [--no-aec] [--no-denoise] [--vad-threshold P]
//! ```
//!
//! NEAR.wav is the near end's speech (starting after the far end's single
//! talk), FAR.wav what its speakers play. OUT_DIR gets `mic.wav` (speech
//! plus echo), `cancelled.wav` (after echo cancellation) and
//! `received.wav` (what the far end hears: the whole send pipeline,
//! decoded). Prints the ERLE over the last 2 s of single talk.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use client_core::audio::pipeline::SendConfig;
use client_core::audio::resample::Resampler;
use client_core::audio::room::Room;
use client_core::audio::{RATE, wav};
use socket_chatroom_tests::echo::{erle_db, simulate};

fn read(path: &Path) -> Result<Vec<f32>, String> {
    let (rate, channels, samples) = wav::read_all(path).map_err(|e| e.to_string())?;
    let mut mono = Vec::new();
    Resampler::new(rate, RATE, channels).map_err(|e| e.to_string())?.process(&samples, &mut mono);
    Ok(mono)
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let (mut delay, mut single, mut config) = (100u32, 4.0f64, SendConfig::default());
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--delay" => delay = value("--delay")?.parse().map_err(|e| format!("--delay: {e}"))?,
            "--single-talk" => single = value("--single-talk")?.parse().map_err(|e| format!("--single-talk: {e}"))?,
            "--vad-threshold" => {
                config.vad_threshold = value("--vad-threshold")?.parse().map_err(|e| format!("--vad-threshold: {e}"))?
            }
            "--no-aec" => config.aec = false,
            "--no-denoise" => config.denoise = false,
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ => positional.push(PathBuf::from(a)),
        }
    }
    let [near, far, out] = <[PathBuf; 3]>::try_from(positional)
        .map_err(|_| "usage: echo_sim NEAR.wav FAR.wav OUT_DIR [--delay MS] [..]".to_owned())?;
    if !Room::DELAYS_MS.contains(&delay) || single < 2.0 {
        return Err("--delay must be 1-500 ms and --single-talk at least 2 s".into());
    }
    let run = simulate(&read(&near)?, &read(&far)?, Room::new(delay), config);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, samples) in [("mic.wav", &run.mic), ("cancelled.wav", &run.cancelled), ("received.wav", &run.received)] {
        wav::write_all(&out.join(name), samples).map_err(|e| e.to_string())?;
    }
    let erle = erle_db(&run.echo, &run.cancelled, single - 2.0, single);
    println!("ERLE {erle:.1} dB over {:.0}-{single:.0} s; delay found {:?} ms", single - 2.0, run.delay_ms);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_sim: {e}");
            ExitCode::FAILURE
        }
    }
}
