//! Messages: arbitrary bytes never panic either decoder.
#![no_main]

use chatroom_protocol::message::{self, ClientMessage, ServerMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = message::decode::<ClientMessage>(data);
    let _ = message::decode::<ServerMessage>(data);
});
