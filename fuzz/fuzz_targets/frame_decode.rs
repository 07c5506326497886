//! Frames: arbitrary bytes never panic the decoder or yield a frame over the limit.
#![no_main]

use bytes::BytesMut;
use chatroom_protocol::frame::FrameCodec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codec = FrameCodec::new(4096);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(f)) = codec.decode(&mut buf) {
        assert!(f.len() <= 4096);
    }
});
