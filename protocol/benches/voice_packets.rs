//! Per-packet crypto cost of voice (`cargo bench -p chatroom-protocol`): what
//! the relay spends per received packet (open) and per recipient (seal).
//! A plain timing loop, median of 7 runs.

use std::time::Instant;

use chatroom_protocol::voice::{Direction, Kind, VoiceOpener, VoiceSealer, encode_voice_body};

fn main() {
    for size in [80usize, 160, 320] {
        let frame = vec![0x5Au8; size];
        let mut body = Vec::new();
        encode_voice_body(1, false, &[&frame], &mut body);
        let key = [9u8; 32];
        let mut sealer = VoiceSealer::new(&key, Direction::Up);
        let mut pkt = Vec::new();
        let n = 20_000;
        let mut seal_runs = Vec::new();
        let mut open_runs = Vec::new();
        for _ in 0..7 {
            let mut packets = Vec::with_capacity(n);
            let t = Instant::now();
            for _ in 0..n {
                sealer.seal(Kind::Voice, 7, &body, &mut pkt);
                packets.push(pkt.clone());
            }
            seal_runs.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
            let mut opener = VoiceOpener::new(&key, Direction::Up);
            let mut out = Vec::new();
            let t = Instant::now();
            for p in &packets {
                opener.open(p, &mut out).expect("authentic");
            }
            open_runs.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        seal_runs.sort_by(f64::total_cmp);
        open_runs.sort_by(f64::total_cmp);
        println!(
            "voice packet, {size:>3} B of Opus: seal {:.2} µs (per recipient), open + replay check {:.2} µs (per packet in)",
            seal_runs[3], open_runs[3]
        );
    }
}
