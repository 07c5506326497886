//! Property tests (proptest) of every decoder: what is encoded decodes to
//! the same thing however the stream is cut; anything altered is refused;
//! arbitrary input never panics and never yields more than the limits.

use bytes::BytesMut;
use chatroom_protocol::crypto::SessionKeys;
use chatroom_protocol::delivery::Ledger;
use chatroom_protocol::frame::FrameCodec;
use chatroom_protocol::message::{self, ClientMessage, ServerMessage};
use chatroom_protocol::voice::{self, Direction, Kind, VoiceOpener, VoiceSealer};
use proptest::prelude::*;

const LIMIT: usize = 2048;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Frames survive any split of the byte stream, in order.
    #[test]
    fn frames_round_trip_across_any_split(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let codec = FrameCodec::new(LIMIT);
        let mut wire = BytesMut::new();
        for p in &payloads {
            codec.encode(p, &mut wire).expect("under the limit");
        }
        let wire = wire.freeze();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let (mut buf, mut got, mut from) = (BytesMut::new(), Vec::new(), 0);
        for to in points {
            buf.extend_from_slice(&wire[from..to]);
            from = to;
            while let Some(f) = codec.decode(&mut buf).expect("valid stream") {
                got.push(f.to_vec());
            }
        }
        prop_assert_eq!(got, payloads);
    }

    /// Arbitrary bytes: never a panic, never a frame over the limit, and an
    /// announced length over the limit is refused from the header alone.
    #[test]
    fn frame_decoder_takes_anything(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let codec = FrameCodec::new(LIMIT);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(f)) = codec.decode(&mut buf) {
            prop_assert!(f.len() <= LIMIT);
        }
    }

    /// Chat messages round-trip through the JSON encoding.
    #[test]
    fn chat_messages_round_trip(id in any::<u64>(), text in "\\PC{0,200}") {
        let m = ClientMessage::Chat { id, text, room: None, to: None };
        prop_assert_eq!(message::decode::<ClientMessage>(&message::encode(&m)).expect("decodes"), m);
    }

    /// Message decoders take arbitrary bytes without panicking.
    #[test]
    fn message_decoders_take_anything(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = message::decode::<ClientMessage>(&bytes);
        let _ = message::decode::<ServerMessage>(&bytes);
    }

    /// Sealed session frames open in order; any altered byte, a replay or a
    /// skipped frame is refused.
    #[test]
    fn sealed_frames_open_once_in_order_and_never_altered(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..5),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let keys = SessionKeys::derive(&[7; 32], &[9; 32]);
        let (mut sealer, _) = keys.client_text();
        let (_, mut opener) = keys.server_text();
        let tokens: Vec<String> = bodies.iter().map(|b| sealer.seal(b)).collect();
        // An altered first token is refused (and does not advance the opener).
        let mut bad = tokens[0].clone().into_bytes();
        let i = flip.index(bad.len());
        bad[i] ^= 1 << bit;
        prop_assert!(opener.open(&bad).is_err());
        for (t, b) in tokens.iter().zip(&bodies) {
            prop_assert_eq!(&opener.open(t.as_bytes()).expect("in order"), b);
        }
        prop_assert!(opener.open(tokens[0].as_bytes()).is_err(), "a replay is refused");
    }

    /// Voice packets: what is sealed opens to the same header and body; any
    /// altered bit, or the same packet again, is dropped.
    #[test]
    fn voice_packets_authenticate_and_are_fresh_once(
        id in any::<u32>(),
        body in prop::collection::vec(any::<u8>(), 0..400),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let key = [5u8; 32];
        let mut sealer = VoiceSealer::new(&key, Direction::Up);
        let mut opener = VoiceOpener::new(&key, Direction::Up);
        let (mut pkt, mut out) = (Vec::new(), Vec::new());
        sealer.seal(Kind::Voice, id, &body, &mut pkt);
        let mut bad = pkt.clone();
        let i = flip.index(bad.len());
        bad[i] ^= 1 << bit;
        prop_assert!(opener.open(&bad, &mut out).is_err());
        let header = opener.open(&pkt, &mut out).expect("authentic");
        prop_assert_eq!((header.kind, header.id), (Kind::Voice, id));
        prop_assert_eq!(&out, &body);
        prop_assert!(opener.open(&pkt, &mut out).is_err(), "a replay is dropped");
    }

    /// Voice bodies (sequence, FEC flag, frames) round-trip.
    #[test]
    fn voice_bodies_round_trip(
        seq in any::<u32>(),
        fec in any::<bool>(),
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..120), 1..4),
    ) {
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        voice::encode_voice_body(seq, fec, &refs, &mut out);
        let b = voice::decode_voice_body(&out).expect("decodes");
        prop_assert_eq!((b.seq, b.fec), (seq, fec));
        prop_assert_eq!(b.frames, refs);
    }

    /// The delivery ledger settles each id once, whatever the order.
    #[test]
    fn ledger_settles_each_id_once_in_any_order(ids in prop::collection::vec(1u64..200, 0..300)) {
        let mut l = Ledger::new();
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            prop_assert_eq!(l.is_settled(id), seen.contains(&id));
            l.settle(id).expect("bounded");
            seen.insert(id);
            prop_assert!(l.is_settled(id));
        }
    }
}
