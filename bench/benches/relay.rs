//! The voice relay per packet: one speaker's packet authenticated once,
//! then sealed for each of 100 listeners and sent in one `sendmmsg` to
//! real loopback sockets (nobody reads them; the kernel drops what does
//! not fit, which costs the relay the same).

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::voice::{self, Direction, Kind, VoiceOpener, VoiceSealer};
use server::voice_relay::VoiceRelay;
use tokio::net::UdpSocket;

const LISTENERS: u32 = 100;

fn key(id: u32, dir: u8) -> [u8; 32] {
    let mut k = [dir; 32];
    k[..4].copy_from_slice(&id.to_be_bytes());
    k
}

fn relay(c: &mut Criterion) {
    let system = actix_rt::System::new();
    // Sockets kept open for the whole run: the listeners' addresses. Each
    // member proves its address as clients do (padded keepalive, the
    // relay's challenge, the echo) and keeps its sealer to speak with.
    let (mut relay, mut speakers, _listeners) = system.block_on(async {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let mut relay = VoiceRelay::new(log, socket);
        let mut listeners = Vec::new();
        let mut speakers: Vec<(u32, SocketAddr, VoiceSealer)> = Vec::new();
        let (mut pkt, mut body, mut buf) = (Vec::new(), Vec::new(), [0u8; 2048]);
        for id in 0..=LISTENERS {
            relay.add_member(id, 1, &key(id, 1), &key(id, 2));
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
            let addr: SocketAddr = s.local_addr().expect("addr");
            let mut sealer = VoiceSealer::new(&key(id, 1), Direction::Up);
            sealer.seal(Kind::Keepalive, id, &[0; voice::KEEPALIVE_PAD], &mut pkt);
            relay.on_packet(&pkt, addr);
            let n = s.recv(&mut buf).expect("a challenge");
            let h = VoiceOpener::new(&key(id, 2), Direction::Down).open(&buf[..n], &mut body).expect("sealed for us");
            assert_eq!(h.kind, Kind::Challenge);
            sealer.seal(Kind::Proof, id, &body, &mut pkt);
            relay.on_packet(&pkt, addr);
            listeners.push(s);
            speakers.push((id, addr, sealer));
        }
        assert_eq!(relay.stats().moved, u64::from(LISTENERS) + 1, "every address proven");
        (relay, speakers, listeners)
    });
    // Everyone speaks in turn (each member may send 120 packets/s), from
    // its proven address, continuing its packet counter.
    let mut turn = 0;
    let mut body = Vec::new();
    voice::encode_voice_body(1, false, &[&[0x5A; 80]], &mut body);
    let mut pkt = Vec::new();
    let mut g = c.benchmark_group("voice relay");
    g.throughput(Throughput::Elements(u64::from(LISTENERS)));
    g.bench_function("one 80-byte packet to 100 listeners", |b| {
        b.iter(|| {
            let n = speakers.len();
            let (id, addr, sealer) = &mut speakers[turn];
            turn = (turn + 1) % n;
            sealer.seal(Kind::Voice, *id, &body, &mut pkt);
            relay.on_packet(black_box(&pkt), *addr);
        });
    });
    g.finish();
    let s = relay.stats();
    assert!(
        s.voice_in > 0 && s.forged == 0 && s.replayed == 0 && s.over_rate == 0,
        "relay dropped the benchmark's packets: {s:?}"
    );
}

criterion_group!(benches, relay);
criterion_main!(benches);
