//! Echo cancellation, judged with numbers and without a sound card: the
//! near end's send pipeline with the test room between its speakers and
//! its microphone ([`socket_chatroom_tests::echo`]: the engine's reference
//! tap and feed, deterministic, faster than real time).
//!
//! `scripts/voice-quality.sh echo` gives the same figures with PESQ, from
//! the real clients (`client-cli --voice --echo-room MS`) and from this
//! simulation (`--offline`).

use client_core::audio::pipeline::SendConfig;
use client_core::audio::room::Room;
use socket_chatroom_tests::audio::{Voice, speech_like, speech_like_voice};
use socket_chatroom_tests::echo::{decompose, erle_db, lag_of, simulate};

const RATE: usize = 48_000;

#[test]
fn echo_is_cancelled_by_25_db_within_two_seconds_for_delays_of_20_to_200_ms() {
    // Far-end single talk: the near end is silent, its microphone hears
    // only the room's echo of what it plays.
    let far = speech_like(4.0);
    let near = vec![0.0; far.len()];
    for delay_ms in [20, 100, 200] {
        let on = simulate(&near, &far, Room::new(delay_ms), SendConfig::default());
        let off = simulate(&near, &far, Room::new(delay_ms), SendConfig { aec: false, ..SendConfig::default() });
        let erle = erle_db(&on.echo, &on.cancelled, 2.0, 4.0);
        let without = erle_db(&off.echo, &off.cancelled, 2.0, 4.0);
        eprintln!(
            "room delay {delay_ms} ms: ERLE {erle:.1} dB over 2-4 s (off: {without:.1} dB); delay found {:?} ms",
            on.delay_ms
        );
        assert!(erle >= 25.0, "room delay {delay_ms} ms: ERLE {erle:.1} dB");
        assert!(without.abs() < 0.5, "without echo cancellation the echo stays: {without:.1} dB");
        let found = on.delay_ms.expect("echo cancellation on");
        assert!(found.abs_diff(delay_ms as i32) <= 30, "found a delay of {found} ms for a room of {delay_ms} ms");
    }
}

#[test]
fn in_double_talk_the_near_end_goes_through_and_the_echo_does_not() {
    // 4 s of far-end single talk, then both talk for 4 s.
    let far = speech_like(8.0);
    let mut near = vec![0.0; 4 * RATE];
    near.extend(speech_like_voice(4.0, Voice::second()));
    let room = Room::new(100);
    let on = simulate(&near, &far, room, SendConfig::default());
    let off = simulate(&near, &far, room, SendConfig { aec: false, ..SendConfig::default() });
    let lag = lag_of(&near, &on.cancelled, 4.5);
    let (speech, echo, rest) = decompose(&near, &on.echo, &on.cancelled, 4.0, lag);
    let (speech_off, echo_off, _) = decompose(&near, &off.echo, &off.cancelled, 4.0, 0);
    eprintln!(
        "double talk, after echo cancellation (lag {lag}): near end {speech:.1} dB, echo {echo:.1} dB, rest {rest:.1} dB; \
         without: near end {speech_off:.1} dB, echo {echo_off:.1} dB"
    );
    assert!(echo_off > speech_off - 10.0, "the test has an echo worth cancelling");
    assert!(echo < echo_off - 20.0, "the echo is not cancelled in double talk: {echo:.1} dB vs {echo_off:.1} dB");
    assert!(speech > speech_off - 6.0, "the near end is suppressed with the echo: {speech:.1} vs {speech_off:.1} dB");
    // What the far end receives of the near end (the whole pipeline) is
    // still the near end's speech.
    let heard = &on.received[4 * RATE..];
    let power = |x: &[f32]| x.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / x.len() as f64;
    let level = 10.0 * (power(heard) / power(&near[4 * RATE..])).log10();
    assert!(level > -6.0, "the far end hears the near end {level:.1} dB down");
}

/// Real clients through the server, the near end on the test room: the far
/// end plays speech, the near end (silent, gate open, no noise
/// suppression, so nothing but the canceller stands between its
/// microphone and the far end) sends back what its microphone hears.
/// Returns the far end's recording of it and the near end's counters.
fn far_end_hears(server: &socket_chatroom_tests::TestServer, near_args: &[&str]) -> (Vec<f32>, String) {
    use socket_chatroom_tests::audio::{read_wav, write_wav};
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, rec) = (dir.path().join("far.wav"), dir.path().join("far-rec.wav"));
    write_wav(&src, &speech_like(6.0));
    let mut args = vec!["--voice", "--input", "null", "--output", "null", "--echo-room", "100"];
    args.extend_from_slice(&["--vad-threshold", "0", "--no-denoise"]);
    args.extend_from_slice(near_args);
    let mut near = server.spawn_cli("near", &args);
    near.expect_contains("* you joined voice");
    let (src_s, rec_s) = (src.to_str().expect("utf8 path"), rec.to_str().expect("utf8 path"));
    let mut far = server.spawn_cli("far", &["--voice", "--input", src_s, "--output", rec_s]);
    assert_eq!(far.wait(), 0, "far end: {}", far.stderr());
    near.expect_contains("* far left");
    near.signal("INT");
    assert_eq!(near.wait(), 0, "near end: {}", near.stderr());
    (read_wav(&rec), near.stderr())
}

#[test]
fn real_clients_cancel_the_echo_of_the_test_room() {
    let server = socket_chatroom_tests::TestServer::start();
    let (on, counters) = far_end_hears(&server, &[]);
    let (off, _) = far_end_hears(&server, &["--no-aec"]);
    // The far end's speech plays from its join; its echo comes back from
    // about 0.15 s on. Judge 3-6 s: converged, still talking.
    let power = |x: &[f32]| {
        let span = &x[(3 * RATE).min(x.len())..(6 * RATE).min(x.len())];
        span.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / span.len().max(1) as f64
    };
    let erle = 10.0 * (power(&off) / power(&on).max(1e-20)).log10();
    eprintln!("real clients, 100 ms room: ERLE {erle:.1} dB at the far end; near end: {counters}");
    assert!(power(&off) > 1e-4, "without echo cancellation the far end hears its echo");
    assert!(erle >= 25.0, "ERLE {erle:.1} dB at the far end; near end: {counters}");
    // The canceller found the room (100 ms) plus the playback queue.
    let delay: u32 = counters
        .split("delay ")
        .last()
        .and_then(|d| d.split_whitespace().next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no echo delay in {counters}"));
    assert!((60..=200).contains(&delay), "echo delay {delay} ms for a 100 ms room: {counters}");
}
