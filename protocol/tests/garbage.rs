//! Every decoder takes arbitrary bytes without panicking: random inputs,
//! and random mutations of valid ones (a small in-tree fuzz loop; a
//! coverage-guided `cargo fuzz` campaign is a separate, longer job).

use std::sync::Arc;

use bytes::BytesMut;
use chatroom_protocol::crypto::{Identity, Psk};
use chatroom_protocol::frame::FrameCodec;
use chatroom_protocol::handshake::{ClientHandshake, ServerHandshake};
use chatroom_protocol::message::{self, ClientMessage, ServerMessage};
use chatroom_protocol::voice::{self, Direction, Kind, VoiceOpener, VoiceSealer};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() % (max as u64 + 1)) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
        let mut v = valid.to_vec();
        match self.next() % 4 {
            0 if !v.is_empty() => {
                let i = (self.next() as usize) % v.len();
                v[i] ^= 1 << (self.next() % 8);
            }
            1 => v.truncate((self.next() as usize) % (v.len() + 1)),
            2 => v.extend(self.bytes(16)),
            _ => {
                if !v.is_empty() {
                    let i = (self.next() as usize) % v.len();
                    v[i] = self.next() as u8;
                }
            }
        }
        v
    }
}

#[test]
fn frame_decoder_never_panics_and_never_over_buffers() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let codec = FrameCodec::new(1024);
    for _ in 0..20_000 {
        let mut buf = BytesMut::from(&rng.bytes(64)[..]);
        while let Ok(Some(f)) = codec.decode(&mut buf) {
            assert!(f.len() <= 1024);
        }
    }
}

#[test]
fn message_decoders_never_panic() {
    let mut rng = Rng(42);
    let valid = [
        message::encode(&ClientMessage::Chat { id: 7, text: "hello".into(), room: Some("general".into()), to: None }),
        message::encode(&ClientMessage::Login {
            version: 1,
            username: "alice".into(),
            password: Some("pw".into()),
            resume: None,
            first_id: Some(1),
            restored: false,
            rooms: Some(vec![message::RoomJoin { room: "dev".into(), after: Some(3) }]),
            history: Some(50),
            account_password: None,
        }),
        message::encode(&ServerMessage::VoiceJoined { voice_id: 9, udp_port: 7878, epoch: 1, room: "general".into() }),
        message::encode(&ClientMessage::History {
            room: Some("dev".into()),
            with: None,
            before: Some(9),
            after: None,
            limit: 50,
        }),
    ];
    for i in 0..20_000 {
        let input = if i % 2 == 0 { rng.bytes(80) } else { rng.mutate(&valid[i % valid.len()]) };
        let _ = message::decode::<ClientMessage>(&input);
        let _ = message::decode::<ServerMessage>(&input);
    }
}

#[test]
fn handshake_machines_never_panic_on_garbage() {
    let mut rng = Rng(7);
    let psk = Psk::parse(&Psk::generate()).expect("key");
    let identity = Identity::from_pem(include_str!("../../tests/fixtures/test_identity.pem")).expect("fixture");
    let der: Arc<[u8]> = identity.public_der().into();
    let (_, hello) = ServerHandshake::new(psk.clone(), der.clone());
    for i in 0..3_000 {
        let (mut server, _) = ServerHandshake::new(psk.clone(), der.clone());
        let input = if i % 2 == 0 {
            rng.bytes(200)
        } else {
            // Named by the right key id, so the mutations reach the token.
            let mut sealed = psk.id().to_vec();
            sealed.extend_from_slice(psk.seal(&rng.bytes(120)).as_bytes());
            rng.mutate(&sealed)
        };
        let _ = server.receive(&input);
        let mut client = ClientHandshake::new(psk.clone());
        let _ = client.receive(&rng.mutate(&hello));
        let _ = client.receive(&rng.bytes(300));
    }
}

#[test]
fn voice_decoders_never_panic() {
    let mut rng = Rng(99);
    let key = [3u8; 32];
    let mut sealer = VoiceSealer::new(&key, Direction::Up);
    let mut opener = VoiceOpener::new(&key, Direction::Up);
    let (mut body, mut pkt, mut out) = (Vec::new(), Vec::new(), Vec::new());
    voice::encode_voice_body(1, false, &[b"frame", b"older"], &mut body);
    for i in 0..20_000 {
        sealer.seal(Kind::Voice, 5, &body, &mut pkt);
        let input = if i % 2 == 0 { rng.bytes(1500) } else { rng.mutate(&pkt) };
        let _ = voice::Header::parse(&input);
        let _ = opener.open(&input, &mut out);
        let _ = voice::decode_voice_body(&input);
        let _ = voice::decode_voice_body(&rng.mutate(&body));
    }
}
