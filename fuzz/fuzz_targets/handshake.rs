//! Handshake: arbitrary first frames never panic the server's state machine
//! (and never reach RSA work without the key), nor the client's.
#![no_main]

use std::sync::{Arc, OnceLock};

use chatroom_protocol::crypto::Psk;
use chatroom_protocol::handshake::{ClientHandshake, ServerHandshake};
use libfuzzer_sys::fuzz_target;

fn psk() -> &'static Psk {
    static PSK: OnceLock<Psk> = OnceLock::new();
    PSK.get_or_init(|| Psk::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("valid key"))
}

fuzz_target!(|data: &[u8]| {
    let der: Arc<[u8]> = Arc::from(&b"not a real identity"[..]);
    let (mut server, _hello) = ServerHandshake::new(psk().clone(), der);
    let _ = server.receive(data);
    let mut client = ClientHandshake::new(psk().clone());
    let _ = client.receive(data);
    let _ = client.receive(data);
});
