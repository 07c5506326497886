//! Per-frame cost of the client voice pipeline (`cargo bench -p chatroom-client-core`).
//! A plain timing loop (no harness crate, to keep the dependency tree lean):
//! prints the median of 7 runs of 500 frames each.

use std::time::Instant;

use chatroom_client_core::audio::FRAME;
use chatroom_client_core::audio::decoder::{DECODER_COMPLEXITY, Decoder};
use chatroom_client_core::audio::jitter::{JitterBuffer, Play};
use chatroom_client_core::audio::pipeline::{SendConfig, SendPipeline};
use chatroom_client_core::audio::room::{EchoPath, Room};

fn speechy(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| 0.2 * ((i as f32 * 0.013).sin() + 0.5 * (i as f32 * 0.031).sin()) * ((i / 4800) % 2) as f32)
        .collect()
}

fn median_us(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn bench(name: &str, frames: usize, mut f: impl FnMut()) {
    let runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..frames {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / frames as f64
        })
        .collect();
    println!("{name:<72} {:>8.1} µs per 20 ms frame", median_us(runs));
}

fn main() {
    let audio = speechy(FRAME * 500);
    let frames: Vec<&[f32]> = audio.chunks_exact(FRAME).collect();
    for (label, denoise) in
        [("send: denoise + VAD + Opus encode", true), ("send: VAD + Opus encode (no denoise)", false)]
    {
        let mut p = SendPipeline::new(SendConfig { aec: false, denoise, vad_threshold: 0.0, ..SendConfig::default() })
            .expect("pipeline");
        let mut i = 0;
        bench(label, 500, || {
            let _ = p.process(frames[i % frames.len()]).expect("encode");
            i += 1;
        });
    }
    // Echo cancellation: the played frame goes to the canceller, the
    // captured frame (its echo through a 100 ms room) through the pipeline.
    let mut path = EchoPath::new(Room::new(100));
    let echoes: Vec<Vec<f32>> = frames.iter().map(|f| f.iter().map(|s| path.next(*s)).collect()).collect();
    let mut p = SendPipeline::new(SendConfig { vad_threshold: 0.0, ..SendConfig::default() }).expect("pipeline");
    let mut i = 0;
    bench("send: echo cancellation (AEC3) + denoise + VAD + Opus encode", 500, || {
        p.play(frames[i % frames.len()]);
        let _ = p.process(&echoes[i % echoes.len()]).expect("encode");
        i += 1;
    });
    let mut aec = chatroom_client_core::audio::aec::EchoCanceller::new();
    let mut out = vec![0.0; FRAME];
    let mut i = 0;
    bench("send: echo cancellation (AEC3) alone: render + capture", 500, || {
        aec.render(frames[i % frames.len()]);
        out.copy_from_slice(&echoes[i % echoes.len()]);
        aec.process(&mut out);
        i += 1;
    });
    let mut p =
        SendPipeline::new(SendConfig { aec: false, vad_threshold: 0.0, ..SendConfig::default() }).expect("pipeline");
    let packets: Vec<Vec<u8>> =
        frames.iter().flat_map(|f| p.process(f).expect("encode")).map(|o| o.frames[0].clone()).collect();
    let mut out = vec![0.0; FRAME];
    for (label, complexity) in [("", DECODER_COMPLEXITY), (", complexity 0 (no neural models)", 0)] {
        let mut d = Decoder::with_complexity(complexity).expect("decoder");
        let mut i = 0;
        bench(&format!("receive: Opus decode{label}"), 500, || {
            d.frame(&packets[i % packets.len()], &mut out);
            i += 1;
        });
        let mut i = 0;
        bench(&format!("receive: one frame lost in five, concealed{label}"), 500, || {
            if i % 5 == 4 {
                d.conceal(&mut out);
            } else {
                d.frame(&packets[i % packets.len()], &mut out);
            }
            i += 1;
        });
    }
    let mut d = Decoder::new().expect("decoder");
    let mut jb = JitterBuffer::default();
    let t0 = Instant::now();
    let mut seq = 0u32;
    bench("receive: jitter buffer push + pop + decode", 500, || {
        jb.push(seq, false, &[&packets[seq as usize % packets.len()]], t0);
        if let Play::Frame(f) = jb.pop(t0) {
            d.frame(&f, &mut out);
        }
        seq += 1;
    });
}
