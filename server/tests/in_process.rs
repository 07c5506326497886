//! The server started in-process through `server::run::run` (as
//! mini-redis's tests do): a client logs in over loopback, then the
//! server is told to shut down and returns once its connections closed.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use protocol::crypto::{Identity, Psk};
use protocol::frame::FrameCodec;
use protocol::handshake::{ClientHandshake, ClientStep};
use protocol::message::{self, ClientMessage, ServerMessage};
use server::config::Config;
use server::run::{Control, Sockets, run};

const IDENTITY: &str = include_str!("../../tests/fixtures/test_identity.pem");

fn read_frame(s: &mut TcpStream, buf: &mut BytesMut) -> Vec<u8> {
    let codec = FrameCodec::new(1 << 20);
    loop {
        if let Some(f) = codec.decode(buf).expect("frame") {
            return f.to_vec();
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn send_frame(s: &mut TcpStream, payload: &[u8]) {
    s.write_all(&FrameCodec::new(1 << 20).to_frame(payload).expect("frame")).expect("write");
}

#[test]
fn a_server_in_process_serves_a_login_and_shuts_down_when_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(&cfg_path, "[server]\nbind = \"127.0.0.1:0\"\nshutdown_grace_secs = 10\n").expect("config");
    let cfg = Config::load(Some(&cfg_path), None, false).expect("config");
    let key = Psk::generate();
    let psk = Psk::parse(&key).expect("key");
    let identity = Identity::from_pem(IDENTITY).expect("identity");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    tcp.set_nonblocking(true).expect("nonblocking");
    let addr = tcp.local_addr().expect("addr");
    let udp = std::net::UdpSocket::bind(addr).expect("udp");
    udp.set_nonblocking(true).expect("nonblocking");
    let (tx, control) = tokio::sync::mpsc::channel(1);
    let server = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let log = slog::Logger::root(slog::Discard, slog::o!());
            let archive = std::sync::Arc::new(server::archive::memory::MemoryArchive::new());
            run(log, cfg, psk, identity, Sockets { tcp, udp, metrics: None }, archive, control).await
        })
    });

    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut buf = BytesMut::new();
    let mut hs = ClientHandshake::new(Psk::parse(&key).expect("key"));
    let est = loop {
        let frame = read_frame(&mut s, &mut buf);
        match hs.receive(&frame).expect("handshake") {
            ClientStep::Send(reply) => send_frame(&mut s, &reply),
            ClientStep::Established(est) => break est,
        }
    };
    let (mut sealer, mut opener) = est.keys.client_text();
    let login = ClientMessage::Login {
        version: protocol::PROTOCOL_VERSION,
        username: "alice".into(),
        password: None,
        resume: None,
        first_id: None,
        restored: false,
        rooms: None,
        history: None,
    };
    send_frame(&mut s, sealer.seal(&message::encode(&login)).as_bytes());
    let mut inbox = std::collections::VecDeque::new();
    let mut recv = |s: &mut TcpStream, buf: &mut BytesMut| loop {
        if let Some(m) = inbox.pop_front() {
            break m;
        }
        let plain = opener.open(&read_frame(s, buf)).expect("sealed");
        message::decode_server(&plain, &mut inbox).expect("message");
    };
    let welcome = recv(&mut s, &mut buf);
    assert!(
        matches!(welcome, ServerMessage::Welcome { ref you, ref rooms, .. } if you == "alice" && rooms == &["general"]),
        "{welcome:?}"
    );

    // Told to stop: the user hears so, and run() returns once the
    // connection is closed.
    tx.blocking_send(Control::Shutdown).expect("control");
    let bye = loop {
        match recv(&mut s, &mut buf) {
            ServerMessage::RoomJoined { .. } | ServerMessage::HistoryEnd { .. } => {}
            other => break other,
        }
    };
    assert!(matches!(bye, ServerMessage::Shutdown { .. }), "{bye:?}");
    drop(s);
    let result = server.join().expect("server thread");
    assert!(result.is_ok(), "{result:?}");
}
