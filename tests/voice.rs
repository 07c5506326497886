//! End-to-end voice: WAV files through `client-cli --voice`, the server's
//! relay and a second `client-cli --voice`, judged with numbers.

use socket_chatroom_tests::audio::{align, read_wav, speech_like, write_wav};
use socket_chatroom_tests::{Proc, TestServer};

/// Plays `source` from one voice client into the room while another records;
/// returns the recording and the listener's stderr (its counters).
fn play_and_record(server: &TestServer, source: &[f32], talker_args: &[&str]) -> (Vec<f32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("source.wav");
    let rec = dir.path().join("recording.wav");
    write_wav(&src, source);
    let rec_s = rec.to_str().expect("utf8 path");
    let mut listener = server.spawn_cli("listener", &["--voice", "--input", "null", "--output", rec_s]);
    listener.expect_contains("* you joined voice");
    let mut args = vec!["--voice", "--input", src.to_str().expect("utf8 path"), "--output", "null"];
    args.extend_from_slice(talker_args);
    let mut talker = server.spawn_cli("talker", &args);
    assert_eq!(talker.wait(), 0, "talker: {}", talker.stderr());
    listener.expect_contains("* talker left");
    listener.signal("INT");
    assert_eq!(listener.wait(), 0, "listener: {}", listener.stderr());
    (read_wav(&rec), listener.stderr())
}

#[test]
fn a_wav_played_into_the_room_is_recorded_by_another_client() {
    let server = TestServer::start();
    let source = speech_like(4.0);
    let (recording, stats) = play_and_record(&server, &source, &[]);
    let m = align(&source, &recording, 6.0);
    eprintln!("clean link: {m:?}; {stats}");
    assert!(m.correlation > 0.6, "recording does not match the source: {m:?}");
    assert!((0.5..1.6).contains(&m.level_ratio), "level changed: {m:?}");
    assert!(m.delay_ms > 0.0, "{m:?}");
    // The recording is a continuous timeline that holds the whole source.
    assert!(recording.len() >= source.len(), "{} < {}", recording.len(), source.len());
    let _ = Proc::spawn;
}
