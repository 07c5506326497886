//! The voice relay against forged, replayed, truncated and oversized
//! packets, strangers, spoofed addresses (return routability: challenges
//! over UDP, silent addresses dropped) and keyless floods (raw clients, no
//! audio).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use protocol::message::{ClientMessage, ServerMessage};
use protocol::voice::{CHALLENGE_LEN, Kind, MAX_PACKET};
use socket_chatroom_tests::{RawClient, RawVoice, TestServer};

/// How long "nothing arrives" is watched for. Absence can only be shown by
/// waiting; every positive check waits for its event instead.
const QUIET: Duration = Duration::from_millis(700);

/// A speaker and a listener in voice, the listener's address proven.
fn pair(server: &TestServer) -> (RawClient, RawVoice, RawClient, RawVoice) {
    let mut s_tcp = server.raw("speaker");
    let mut l_tcp = server.raw("listener");
    let mut speaker = s_tcp.join_voice();
    let listener = proven_listener(&mut l_tcp, &mut speaker);
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

/// Everything `socket` receives until it has been quiet for [`QUIET`].
fn drain(socket: &UdpSocket) -> Vec<Vec<u8>> {
    socket.set_read_timeout(Some(QUIET)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

/// A listener who has proven its address and heard `speaker`.
fn proven_listener(tcp: &mut RawClient, speaker: &mut RawVoice) -> RawVoice {
    let mut listener = tcp.join_voice();
    listener.keepalive();
    // The challenge is answered inside `recv`, as clients answer it.
    for i in 0.. {
        speaker.say(format!("warmup {i}").as_bytes());
        if listener.recv(Duration::from_millis(200)).is_some() {
            return listener;
        }
        assert!(i < 100, "listener never reached");
    }
    unreachable!()
}

#[test]
fn a_forged_source_first_packet_draws_one_small_challenge_and_no_voice() {
    let server = TestServer::start();
    let mut s_tcp = server.raw("speaker");
    let mut a_tcp = server.raw("attacker");
    let mut speaker = s_tcp.join_voice();
    // A member sends its first authenticated packet with a forged source:
    // the victim's address (here, a socket the member does not read).
    let mut attacker = a_tcp.join_voice();
    let victim = RawVoice::fresh_socket();
    let forged = attacker.keepalive_packet();
    victim.send_to(&forged, attacker.server).expect("send");
    // Someone really listening, then 20 frames and a marker: once the
    // witness has the marker, the relay has handled everything before it.
    let mut w_tcp = server.raw("witness");
    let mut witness = proven_listener(&mut w_tcp, &mut speaker);
    for i in 0..20 {
        speaker.say(format!("speech {i:02} {}", "x".repeat(200)).as_bytes());
    }
    speaker.say(b"marker");
    witness.expect_frame(b"marker");
    let got = drain(&victim);
    assert!(got.len() <= 1, "the victim got {} packets for one forged packet", got.len());
    for pkt in &got {
        assert!(pkt.len() <= forged.len(), "a {}-byte reply to a {}-byte packet", pkt.len(), forged.len());
        let (h, body) = attacker.open(pkt).expect("sealed for the member");
        assert_eq!((h.kind, h.id, body.len()), (Kind::Challenge, attacker.id, CHALLENGE_LEN));
    }
}

#[test]
fn twelve_forged_listeners_get_a_victim_no_voice_and_no_more_bytes_than_they_sent() {
    // The attack of issue 13: members joining voice whose packets carry a
    // victim's address, while someone talks.
    let server = TestServer::start();
    let mut s_tcp = server.raw("speaker");
    let mut speaker = s_tcp.join_voice();
    let victim = RawVoice::fresh_socket();
    let mut tcps = Vec::new();
    let mut attackers = Vec::new();
    for i in 0..12 {
        let mut c = server.raw(&format!("attacker{i:02}"));
        attackers.push(c.join_voice());
        tcps.push(c);
    }
    let mut w_tcp = server.raw("witness");
    let mut witness = proven_listener(&mut w_tcp, &mut speaker);
    let mut sent_bytes = 0;
    let mut spoken_bytes = 0;
    for round in 0..5 {
        for a in &mut attackers {
            let forged = a.keepalive_packet();
            victim.send_to(&forged, a.server).expect("send");
            sent_bytes += forged.len();
        }
        // 5 × 9 packets: within the speaker's burst of 60.
        for i in 0..8 {
            let pkt = speaker.voice_packet(format!("round {round} {i} {}", "v".repeat(900)).as_bytes());
            speaker.send_raw(&pkt);
            spoken_bytes += pkt.len();
        }
        speaker.say(format!("marker {round}").as_bytes());
        witness.expect_frame(format!("marker {round}").as_bytes());
    }
    let got = drain(&victim);
    let received: usize = got.iter().map(Vec::len).sum();
    eprintln!(
        "12 forged listeners: attackers sent {} packets, {sent_bytes} B; the speaker sent {spoken_bytes} B; \
         the victim received {} packets, {received} B (x{:.2})",
        12 * 5,
        got.len(),
        received as f64 / sent_bytes as f64
    );
    assert!(got.iter().all(|p| p[0] == Kind::Challenge as u8), "the victim was sent something else than challenges");
    assert!(got.len() <= 12 * 5, "more than one challenge per forged packet: {}", got.len());
    assert!(received <= sent_bytes, "amplified: {received} B for {sent_bytes} B");
}

#[test]
fn an_address_moves_only_after_the_challenge_is_echoed_from_it_over_udp() {
    let server = TestServer::start();
    let (_s, mut speaker, _l, mut listener) = pair(&server);
    let old = std::mem::replace(&mut listener.socket, RawVoice::fresh_socket());
    // An authentic packet from the new address: the relay challenges it
    // there, over UDP, sealed for the member ...
    let keepalive = listener.keepalive_packet();
    listener.send_raw(&keepalive);
    let (h, challenge) = listener.recv_packet(socket_chatroom_tests::DEADLINE).expect("a challenge over UDP");
    assert_eq!((h.kind, h.id, challenge.len()), (Kind::Challenge, listener.id, CHALLENGE_LEN));
    // ... and until it is answered, the stream stays where it was.
    speaker.say(b"still old");
    old.set_read_timeout(Some(socket_chatroom_tests::DEADLINE)).expect("timeout");
    let mut buf = [0u8; 2048];
    assert!(old.recv(&mut buf).is_ok(), "the old address still gets the stream");
    assert!(listener.recv_packet(QUIET).is_none(), "the new address got something before its echo");
    // The right echo from a third address (a forged source) moves nothing.
    let elsewhere = RawVoice::fresh_socket();
    let proof = listener.seal(Kind::Proof, &challenge);
    elsewhere.send_to(&proof, listener.server).expect("send");
    speaker.say(b"not elsewhere");
    assert!(old.recv(&mut buf).is_ok(), "the old address still gets the stream");
    assert!(drain(&elsewhere).iter().all(|p| p[0] != Kind::Voice as u8), "voice went to the forged source");
    // The echo from the new address moves it.
    listener.answer(&challenge);
    for i in 0.. {
        speaker.say(format!("new {i}").as_bytes());
        if listener.recv(Duration::from_millis(200)).is_some() {
            break;
        }
        assert!(i < 100, "the stream never moved");
    }
}

#[test]
fn an_address_silent_for_several_keepalive_intervals_stops_receiving() {
    let server = TestServer::start();
    let (_s, mut speaker, _l, mut listener) = pair(&server);
    let mut w_tcp = server.raw("witness");
    let mut witness = proven_listener(&mut w_tcp, &mut speaker);
    // The listener's last packet went out before this; from now on it is
    // silent, while the witness keeps sending keepalives.
    let silent_since = Instant::now();
    let end = silent_since + socket_chatroom_tests::DEADLINE;
    let mut last_heard = silent_since;
    let mut quiet_rounds = 0;
    for round in 0.. {
        // Rounds of at least 40 ms: the speaker stays within its rate.
        let round_end = Instant::now() + Duration::from_millis(40);
        witness.keepalive();
        let marker = format!("round {round}");
        speaker.say(marker.as_bytes());
        // Once the witness has it, the listener's copy (if any) was sent.
        witness.expect_frame(marker.as_bytes());
        let window = round_end.max(Instant::now() + Duration::from_millis(20));
        let mut heard = false;
        while listener.recv(window.saturating_duration_since(Instant::now())).is_some() {
            heard = true;
        }
        if heard {
            last_heard = Instant::now();
            quiet_rounds = 0;
        } else {
            quiet_rounds += 1;
            if quiet_rounds == 5 {
                break;
            }
        }
        assert!(Instant::now() < end, "a silent listener was sent to for {:?}", silent_since.elapsed());
    }
    // Not at once: the relay waits several keepalive intervals (6 of 0.5 s;
    // a third of it here, whatever the machine's load).
    let heard_for = last_heard.duration_since(silent_since);
    assert!(heard_for >= Duration::from_secs(1), "stopped after only {heard_for:?}");
    // Speaking up again takes a new challenge (answered in `recv`), then
    // the stream comes back.
    for i in 0.. {
        if i % 5 == 0 {
            listener.keepalive();
        }
        speaker.say(format!("back {i}").as_bytes());
        if listener.recv(Duration::from_millis(200)).is_some() {
            break;
        }
        assert!(i < 100, "the stream never came back");
    }
}

#[test]
fn a_keyless_flood_of_a_voice_id_does_not_block_an_address_change() {
    let server = TestServer::start();
    let (_s, mut speaker, _l, mut listener) = pair(&server);
    // Packets with the listener's voice id and garbage where the tag must
    // be, from another address, until the end of the test.
    let stop = Arc::new(AtomicBool::new(false));
    let (flooding_tx, flooding) = mpsc::channel();
    let flood = {
        let (stop, relay, id) = (stop.clone(), listener.server, listener.id);
        std::thread::spawn(move || {
            let socket = RawVoice::fresh_socket();
            let mut n: u64 = 0;
            while !stop.load(Ordering::SeqCst) {
                let mut pkt = vec![Kind::Keepalive as u8];
                pkt.extend_from_slice(&id.to_be_bytes());
                pkt.extend_from_slice(&(1_000_000 + n).to_be_bytes());
                pkt.extend_from_slice(&[0x5A; 32]);
                let _ = socket.send_to(&pkt, relay);
                n += 1;
                if n == 500 {
                    let _ = flooding_tx.send(());
                }
                if n.is_multiple_of(5) {
                    // ~5 packets a millisecond: far over any per-member budget.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            n
        })
    };
    flooding.recv_timeout(socket_chatroom_tests::DEADLINE).expect("flooding");
    // The listener moves: challenged at the new address, echoes, hears.
    listener.socket = RawVoice::fresh_socket();
    listener.prove();
    for i in 0.. {
        speaker.say(format!("moved {i}").as_bytes());
        if listener.recv(Duration::from_millis(200)).is_some() {
            break;
        }
        assert!(i < 100, "the flood kept the listener from moving");
    }
    stop.store(true, Ordering::SeqCst);
    let sent = flood.join().expect("flood thread");
    assert!(sent >= 500, "the flood sent {sent} packets");
}

#[test]
fn voice_ids_are_not_sequential() {
    let server = TestServer::start();
    let mut ids = Vec::new();
    let mut tcps = Vec::new();
    for i in 0..10 {
        let mut c = server.raw(&format!("member{i}"));
        ids.push(c.join_voice().id);
        tcps.push(c);
    }
    // Rejoining gets a new id too.
    tcps[0].send(&ClientMessage::VoiceLeave);
    tcps[0].recv_until("left", |m| matches!(m, ServerMessage::VoiceLeft));
    ids.push(tcps[0].join_voice().id);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "ids collide: {ids:?}");
    assert!(!ids.contains(&0));
    // Random 32-bit ids: neighbours differ by 1 with probability 2^-31 each.
    let steps = ids.windows(2).filter(|w| w[1].wrapping_sub(w[0]) <= 16).count();
    assert_eq!(steps, 0, "predictable ids: {ids:?}");
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
