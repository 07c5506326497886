//! Voice: arbitrary datagrams never panic the header parser, the opener
//! (authentication, replay window) or the body decoder.
#![no_main]

use chatroom_protocol::voice::{self, Direction, VoiceOpener};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut opener = VoiceOpener::new(&[9u8; 32], Direction::Up);
    let mut out = Vec::new();
    let _ = voice::Header::parse(data);
    assert!(opener.open(data, &mut out).is_err(), "nothing forged opens");
    let _ = voice::decode_voice_body(data);
});
