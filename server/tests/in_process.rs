//! The server started in-process through `server::run::run` (as
//! mini-redis's tests do), on an archive the test holds: a client logs in
//! over loopback, the store fails and recovers under it, then the server is
//! told to shut down and returns once its connections closed.

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use protocol::crypto::{Identity, Opener, Psk, Sealer};
use protocol::frame::FrameCodec;
use protocol::handshake::{ClientHandshake, ClientStep};
use protocol::message::{self, ClientMessage, NackReason, ServerMessage};
use server::archive::memory::MemoryArchive;
use server::config::Config;
use server::run::{Control, RunError, Sockets, run};

const IDENTITY: &str = include_str!("../../tests/fixtures/test_identity.pem");

/// A server running in this process on a thread of its own.
struct InProcess {
    addr: SocketAddr,
    key: String,
    control: tokio::sync::mpsc::Sender<Control>,
    thread: std::thread::JoinHandle<Result<(), RunError>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    fn start(archive: Arc<MemoryArchive>) -> Self {
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
        let (control, rx) = tokio::sync::mpsc::channel(1);
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let log = slog::Logger::root(slog::Discard, slog::o!());
                run(log, cfg, psk, identity, Sockets { tcp, udp, metrics: None, admin: None }, archive, rx).await
            })
        });
        Self { addr, key, control, thread, _dir: dir }
    }

    fn stop(self) -> Result<(), RunError> {
        self.control.blocking_send(Control::Shutdown).expect("control");
        self.thread.join().expect("server thread")
    }
}

/// A logged-in client speaking the protocol by hand.
struct Client {
    s: TcpStream,
    buf: BytesMut,
    sealer: Sealer,
    opener: Opener,
    inbox: VecDeque<ServerMessage>,
}

impl Client {
    fn login(server: &InProcess, name: &str) -> Self {
        let mut s = TcpStream::connect(server.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut buf = BytesMut::new();
        let mut hs = ClientHandshake::new(Psk::parse(&server.key).expect("key"));
        let est = loop {
            let frame = read_frame(&mut s, &mut buf);
            match hs.receive(&frame).expect("handshake") {
                ClientStep::Send(reply) => send_frame(&mut s, &reply),
                ClientStep::Established(est) => break est,
            }
        };
        let (sealer, opener) = est.keys.client_text();
        let mut c = Self { s, buf, sealer, opener, inbox: VecDeque::new() };
        c.send(&ClientMessage::Login {
            version: protocol::PROTOCOL_VERSION,
            username: name.into(),
            password: None,
            resume: None,
            first_id: None,
            restored: false,
            rooms: None,
            history: Some(0),
            account_password: None,
        });
        c
    }

    fn send(&mut self, msg: &ClientMessage) {
        send_frame(&mut self.s, self.sealer.seal(&message::encode(msg)).as_bytes());
    }

    fn recv(&mut self) -> ServerMessage {
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return m;
            }
            let plain = self.opener.open(&read_frame(&mut self.s, &mut self.buf)).expect("sealed");
            message::decode_server(&plain, &mut self.inbox).expect("message");
        }
    }

    /// Reads until `pred` holds; panics on a message in `never`.
    fn until(
        &mut self,
        pred: impl Fn(&ServerMessage) -> bool,
        never: impl Fn(&ServerMessage) -> bool,
    ) -> ServerMessage {
        loop {
            let m = self.recv();
            assert!(!never(&m), "must not arrive: {m:?}");
            if pred(&m) {
                return m;
            }
        }
    }
}

fn read_frame(s: &mut TcpStream, buf: &mut BytesMut) -> Vec<u8> {
    let codec = FrameCodec::new(1 << 24);
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

fn chat(id: u64, text: &str) -> ClientMessage {
    ClientMessage::Chat { id, text: text.into(), room: Some("general".into()), to: None }
}

fn stored(id: u64, ts_ms: u64, text: &str) -> server::archive::StoredMessage {
    server::archive::StoredMessage {
        id,
        room: "general".into(),
        sender: "old".into(),
        text: text.into(),
        ts_ms,
        edited: false,
    }
}

fn is_text(m: &ServerMessage, want: &str) -> bool {
    matches!(m, ServerMessage::Message { text, .. } if text == want)
}

#[test]
fn a_server_in_process_serves_a_login_and_shuts_down_when_told() {
    let server = InProcess::start(Arc::new(MemoryArchive::new()));
    let mut alice = Client::login(&server, "alice");
    let welcome = alice.recv();
    assert!(
        matches!(welcome, ServerMessage::Welcome { ref you, ref rooms, .. } if you == "alice" && rooms == &["general"]),
        "{welcome:?}"
    );
    // Told to stop: the user hears so, and run() returns once the
    // connection is closed.
    server.control.blocking_send(Control::Shutdown).expect("control");
    alice.until(|m| matches!(m, ServerMessage::Shutdown { .. }), |_| false);
    drop(alice);
    let result = server.thread.join().expect("server thread");
    assert!(result.is_ok(), "{result:?}");
}

/// Issue 15, storage failures: a message the store cannot take is nacked
/// `storage_unavailable` with a retry-after, reaches nobody, and the same
/// id resent once the store works is taken (acked once, delivered once).
#[test]
fn a_message_the_store_cannot_take_is_nacked_and_taken_when_resent() {
    let archive = Arc::new(MemoryArchive::new());
    let server = InProcess::start(archive.clone());
    let mut alice = Client::login(&server, "alice");
    let mut bob = Client::login(&server, "bob");
    bob.until(|m| matches!(m, ServerMessage::HistoryEnd { .. }), |_| false);
    alice.until(|m| matches!(m, ServerMessage::HistoryEnd { .. }), |_| false);

    archive.set_failing(true);
    alice.send(&chat(1, "while the disk is full"));
    let nack = alice.until(|m| matches!(m, ServerMessage::Nack { .. } | ServerMessage::Ack { .. }), |_| false);
    assert!(
        matches!(
            nack,
            ServerMessage::Nack { id: 1, reason: NackReason::StorageUnavailable, retry_after_ms: Some(_), .. }
        ),
        "{nack:?}"
    );
    archive.set_failing(false);
    alice.send(&chat(2, "marker"));
    bob.until(|m| is_text(m, "marker"), |m| is_text(m, "while the disk is full"));

    // The resend is taken: stored, delivered once, acknowledged with its id.
    alice.send(&chat(1, "while the disk is full"));
    let ack =
        alice.until(|m| matches!(m, ServerMessage::Ack { id: 1, .. } | ServerMessage::Nack { id: 1, .. }), |_| false);
    assert!(matches!(ack, ServerMessage::Ack { id: 1, server_id: Some(_) }), "{ack:?}");
    bob.until(|m| is_text(m, "while the disk is full"), |_| false);
    alice.send(&chat(1, "while the disk is full"));
    alice.until(|m| matches!(m, ServerMessage::Ack { id: 1, server_id: None }), |_| false);
    alice.send(&chat(3, "end"));
    bob.until(|m| is_text(m, "end"), |m| is_text(m, "while the disk is full"));
    drop((alice, bob));
    assert!(server.stop().is_ok());
}

/// Retention: messages older than the room's `history_days` (30 by
/// default) are pruned in the background from the start; newer ones stay.
#[test]
fn messages_past_their_room_s_retention_are_pruned() {
    use server::archive::{Archive as _, RoomRecord, Write};
    let archive = Arc::new(MemoryArchive::new());
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let day = 86_400_000;
    let general = RoomRecord {
        name: "general".into(),
        topic: String::new(),
        history: true,
        voice: true,
        owner: None,
        history_days: 30,
        created_ms: 0,
        empty_since_ms: None,
        from_config: true,
        invite_only: false,
    };
    for w in [
        Write::UpsertRoom(general),
        Write::Append(stored(1, now_ms - 40 * day, "forty days old")),
        Write::Append(stored(2, now_ms - 29 * day, "twenty-nine days old")),
        Write::Append(stored(3, now_ms, "today")),
    ] {
        archive.write(w, Box::new(|r| assert!(r.is_ok(), "{r:?}")));
    }
    let server = InProcess::start(archive.clone());
    let mut alice = Client::login(&server, "alice");
    alice.send(&ClientMessage::History {
        room: Some("general".into()),
        with: None,
        before: None,
        after: None,
        limit: 50,
    });
    let mut texts = Vec::new();
    loop {
        match alice.recv() {
            ServerMessage::Message { text, history: true, .. } => texts.push(text),
            ServerMessage::HistoryEnd { more: false, .. } if !texts.is_empty() => break,
            _ => {}
        }
    }
    assert_eq!(texts, ["twenty-nine days old", "today"]);
    drop(alice);
    assert!(server.stop().is_ok());
}
