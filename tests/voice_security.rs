//! The voice relay against forged, replayed, truncated and oversized
//! packets, strangers and spoofed addresses (raw clients, no audio).

use std::time::Duration;

use protocol::message::{ClientMessage, ServerMessage};
use protocol::voice::{Kind, MAX_PACKET};
use socket_chatroom_tests::{RawClient, RawVoice, TestServer};

/// How long "nothing arrives" is watched for. Absence can only be shown by
/// waiting; every positive check waits for its event instead.
const QUIET: Duration = Duration::from_millis(700);

/// A speaker and a listener in voice, the listener's address proven.
fn pair(server: &TestServer) -> (RawClient, RawVoice, RawClient, RawVoice) {
    let mut s_tcp = server.raw("speaker");
    let mut l_tcp = server.raw("listener");
    let speaker = s_tcp.join_voice();
    let mut listener = l_tcp.join_voice();
    listener.keepalive();
    let mut speaker = speaker;
    // Until the listener's keepalive is in, frames may go nowhere: retry.
    for i in 0.. {
        speaker.say(format!("warmup {i}").as_bytes());
        if listener.recv(Duration::from_millis(200)).is_some() {
            break;
        }
        assert!(i < 100, "listener never reached");
    }
    (s_tcp, speaker, l_tcp, listener)
}

#[test]
fn only_authentic_fresh_packets_are_relayed() {
    let server = TestServer::start();
    let (_s, mut speaker, _l, mut listener) = pair(&server);

    let good = speaker.voice_packet(b"good");
    speaker.send_raw(&good);
    listener.expect_frame(b"good");

    // Replayed: dropped.
    speaker.send_raw(&good);
    // Forged: one bit flipped in the ciphertext, and in the header.
    let mut forged = speaker.voice_packet(b"forged");
    let last = forged.len() - 20;
    forged[last] ^= 1;
    speaker.send_raw(&forged);
    let mut forged_header = speaker.voice_packet(b"forged header");
    forged_header[7] ^= 1;
    speaker.send_raw(&forged_header);
    // Truncated and oversized.
    let truncated = speaker.voice_packet(b"truncated");
    speaker.send_raw(&truncated[..truncated.len() - 3]);
    let mut oversized = speaker.voice_packet(b"oversized");
    oversized.resize(MAX_PACKET + 100, 0);
    speaker.send_raw(&oversized);
    // A marker proves everything before it was handled.
    speaker.say(b"marker");
    let before = listener.expect_frame(b"marker");
    assert!(before.is_empty(), "relayed what it should have dropped: {before:?}");
}

#[test]
fn strangers_get_no_reply_and_cannot_redirect_a_stream() {
    let server = TestServer::start();
    let (_s, mut speaker, _l, mut listener) = pair(&server);
    let stranger = RawVoice::fresh_socket();
    stranger.set_read_timeout(Some(QUIET)).expect("timeout");
    let relay = speaker.server;
    // Garbage, an unknown id, a forged packet with a real id, and a replay of
    // the listener's own keepalive, all from an unproven address.
    let keepalive = listener.seal(Kind::Keepalive, &[]);
    listener.send_raw(&keepalive);
    for pkt in [
        vec![0xAB; 60],
        {
            let mut p = speaker.voice_packet(b"x");
            p[1] ^= 0xFF;
            p
        },
        {
            let mut p = speaker.voice_packet(b"y");
            p[20] ^= 1;
            p
        },
        keepalive.clone(),
    ] {
        stranger.send_to(&pkt, relay).expect("send");
    }
    speaker.say(b"after the stranger");
    listener.expect_frame(b"after the stranger");
    let mut buf = [0u8; 2048];
    assert!(stranger.recv(&mut buf).is_err(), "the relay answered an unauthenticated packet");
}

#[test]
fn an_address_moves_only_after_the_challenge_is_echoed() {
    let server = TestServer::start();
    let (_s, mut speaker, mut l_tcp, mut listener) = pair(&server);
    let old = std::mem::replace(&mut listener.socket, RawVoice::fresh_socket());
    // An authentic packet from the new address: the relay asks over TCP ...
    listener.keepalive();
    let m = l_tcp.recv_until("a challenge", |m| matches!(m, ServerMessage::VoiceChallenge { .. }));
    let ServerMessage::VoiceChallenge { challenge } = m else { unreachable!() };
    // ... and until it is answered, the stream stays where it was.
    speaker.say(b"still old");
    old.set_read_timeout(Some(socket_chatroom_tests::DEADLINE)).expect("timeout");
    let mut buf = [0u8; 2048];
    assert!(old.recv(&mut buf).is_ok(), "the old address still gets the stream");
    let proof = listener.seal(Kind::Proof, &challenge);
    listener.send_raw(&proof);
    for i in 0.. {
        speaker.say(format!("new {i}").as_bytes());
        if listener.recv(Duration::from_millis(200)).is_some() {
            break;
        }
        assert!(i < 100, "the stream never moved");
    }
}

#[test]
fn leaving_stops_relaying_and_rejoining_uses_new_keys() {
    let server = TestServer::start();
    let (mut s_tcp, mut speaker, mut l_tcp, mut listener) = pair(&server);
    let (old_id, old_epoch) = (speaker.id, speaker.epoch);
    let old_packet = {
        // A fresh join's first packet (counter 0) under the old keys.
        let mut fresh = RawVoice::clone_keys_for_test(&speaker);
        fresh.voice_packet(b"from the old join")
    };
    speaker.say(b"before leaving");
    listener.expect_frame(b"before leaving");
    // The listener leaves: nothing more reaches it.
    l_tcp.send(&ClientMessage::VoiceLeave);
    l_tcp.recv_until("left", |m| matches!(m, ServerMessage::VoiceLeft));
    speaker.say(b"nobody hears this");
    assert!(listener.recv(QUIET).is_none(), "relayed to someone who left");
    // The speaker rejoins: a new id and key context; the old packets are dead.
    let mut listener = l_tcp.join_voice();
    listener.keepalive();
    s_tcp.send(&ClientMessage::VoiceLeave);
    s_tcp.recv_until("left", |m| matches!(m, ServerMessage::VoiceLeft));
    let mut speaker2 = s_tcp.join_voice();
    assert!(speaker2.epoch > old_epoch && speaker2.id != old_id);
    speaker2.send_raw(&old_packet);
    // The old join's first packet, relabelled with the new id: same counter
    // (0), so under a reused key it would open; under the new key it is forged.
    let mut relabelled = old_packet.clone();
    relabelled[1..5].copy_from_slice(&speaker2.id.to_be_bytes());
    speaker2.send_raw(&relabelled);
    for i in 0.. {
        speaker2.say(format!("rejoined {i}").as_bytes());
        if let Some((id, _, f)) = listener.recv(Duration::from_millis(200)) {
            assert_eq!(id, speaker2.id);
            assert!(f.starts_with(b"rejoined"), "an old-key packet was relayed: {f:?}");
            break;
        }
        assert!(i < 100, "rejoined speaker never heard");
    }
    drop(speaker);
}

#[test]
fn one_speaker_reaches_fifty_listeners() {
    let server = TestServer::start();
    let mut tcps = Vec::new();
    let mut listeners = Vec::new();
    for i in 0..50 {
        let mut c = server.raw(&format!("l{i:02}"));
        let mut v = c.join_voice();
        v.keepalive();
        tcps.push(c);
        listeners.push(v);
    }
    let mut s = server.raw("speaker");
    let mut speaker = s.join_voice();
    // Keepalives travel over UDP too: send until everyone has heard one frame.
    let mut heard = vec![false; listeners.len()];
    for round in 0..50 {
        speaker.say(format!("round {round}").as_bytes());
        for (i, l) in listeners.iter_mut().enumerate() {
            if !heard[i] {
                heard[i] = l.recv(Duration::from_millis(50)).is_some();
            }
        }
        if heard.iter().all(|h| *h) {
            return;
        }
        for (i, l) in listeners.iter_mut().enumerate() {
            if !heard[i] {
                l.keepalive();
            }
        }
    }
    panic!("only {} of 50 listeners heard the speaker", heard.iter().filter(|h| **h).count());
}

#[test]
fn a_member_cannot_relay_faster_than_its_rate() {
    let server = TestServer::start();
    let (_s, mut speaker, _l, mut listener) = pair(&server);
    // 400 authentic packets at once: far over 120 packets/s (burst 60).
    let start = std::time::Instant::now();
    for i in 0..400 {
        speaker.say(format!("burst {i}").as_bytes());
    }
    let sending = start.elapsed().as_secs_f64();
    let mut relayed = 0;
    while listener.recv(QUIET).is_some() {
        relayed += 1;
    }
    let allowed = 60.0 + 120.0 * (sending + 0.1);
    assert!(f64::from(relayed) <= allowed, "{relayed} relayed in {sending:.3} s; at most {allowed:.0} allowed");
    assert!(relayed >= 50, "the burst allowance still gets through: {relayed}");
}
