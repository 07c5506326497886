//! Messages: arbitrary bytes never panic any decoder, and a batch the
//! server's decoder accepts never holds another batch.
#![no_main]

use std::collections::VecDeque;

use chatroom_protocol::message::{self, ClientMessage, ServerMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = message::decode::<ClientMessage>(data);
    let _ = message::decode::<ServerMessage>(data);
    let mut out = VecDeque::new();
    if message::decode_server(data, &mut out).is_ok() {
        assert!(out.iter().all(|m| !matches!(m, ServerMessage::Batch { .. })));
    }
});
