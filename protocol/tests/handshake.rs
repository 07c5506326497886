//! In-memory client/server pair harness: every handshake outcome and every
//! tampering case, no sockets.

use std::cell::Cell;
use std::sync::Arc;

use chatroom_protocol::crypto::{Identity, Opener, Psk, Sealer};
use chatroom_protocol::handshake::{
    ClientHandshake, ClientStep, Established, REFUSED_WRONG_KEY, ServerHandshake, ServerStep,
};
use chatroom_protocol::message::{self, ClientMessage};
use chatroom_protocol::{CryptoError, HandshakeError};

const TEST_IDENTITY: &str = include_str!("../../tests/fixtures/test_identity.pem");
const OTHER_IDENTITY: &str = include_str!("../../tests/fixtures/other_identity.pem");

fn identity(pem: &str) -> Identity {
    Identity::from_pem(pem).expect("fixture identity parses")
}

fn psk() -> Psk {
    Psk::parse(&Psk::generate()).expect("fresh key parses")
}

/// A server end: its handshake plus a signer that counts RSA operations.
struct Server {
    hs: ServerHandshake,
    identity: Identity,
    signs: Cell<u32>,
}

impl Server {
    fn new(psk: &Psk, identity: Identity) -> (Self, Vec<u8>) {
        let der: Arc<[u8]> = identity.public_der().into();
        let (hs, hello) = ServerHandshake::new(psk.clone(), der);
        (Self { hs, identity, signs: Cell::new(0) }, hello)
    }

    /// Feeds the client hello; returns the reply and, on success, the keys.
    fn on_client_hello(&mut self, frame: &[u8]) -> (Vec<u8>, Result<Established, HandshakeError>) {
        match self.hs.receive(frame).expect("first client frame") {
            ServerStep::Sign(req) => {
                self.signs.set(self.signs.get() + 1);
                let sig = self.identity.sign(&req.transcript);
                let (reply, est) = self.hs.finish(&sig).expect("finish");
                (reply, Ok(est))
            }
            ServerStep::Reject { reply, reason } => (reply, Err(reason)),
        }
    }
}

fn client_hello(client: &mut ClientHandshake, server_hello: &[u8]) -> Vec<u8> {
    match client.receive(server_hello).expect("server hello accepted") {
        ClientStep::Send(f) => f,
        ClientStep::Established(_) => panic!("established too early"),
    }
}

struct Pair {
    client: (Sealer, Opener),
    server: (Sealer, Opener),
    fingerprint: chatroom_protocol::crypto::Fingerprint,
}

fn connect() -> Pair {
    let psk = psk();
    let (mut server, hello) = Server::new(&psk, identity(TEST_IDENTITY));
    let mut client = ClientHandshake::new(psk.clone());
    let ch = client_hello(&mut client, &hello);
    let (auth, est) = server.on_client_hello(&ch);
    let server_est = est.expect("server accepts");
    let ClientStep::Established(client_est) = client.receive(&auth).expect("client accepts") else {
        panic!("expected established");
    };
    assert_eq!(client_est.fingerprint, server_est.fingerprint);
    Pair {
        client: client_est.keys.client_text(),
        server: server_est.keys.server_text(),
        fingerprint: client_est.fingerprint,
    }
}

#[test]
fn success_yields_matching_keys_in_both_directions() {
    let mut p = connect();
    assert_eq!(p.fingerprint, identity(TEST_IDENTITY).fingerprint());
    let up = p.client.0.seal(b"hello server");
    assert_eq!(p.server.1.open(up.as_bytes()).as_deref(), Ok(&b"hello server"[..]));
    let down = p.server.0.seal(b"hello client");
    assert_eq!(p.client.1.open(down.as_bytes()).as_deref(), Ok(&b"hello client"[..]));
}

#[test]
fn wrong_psk_is_refused_in_plaintext_with_no_rsa_work() {
    let (mut server, hello) = Server::new(&psk(), identity(TEST_IDENTITY));
    let mut client = ClientHandshake::new(psk());
    let ch = client_hello(&mut client, &hello);
    let (reply, est) = server.on_client_hello(&ch);
    assert_eq!(est.err(), Some(HandshakeError::PskCheckFailed));
    assert_eq!(reply, REFUSED_WRONG_KEY);
    assert_eq!(server.signs.get(), 0, "no RSA signature before the PSK gate");
    assert_eq!(client.receive(&reply).err(), Some(HandshakeError::WrongKey));
}

#[test]
fn garbage_first_frame_is_refused_with_no_rsa_work() {
    for junk in [&b""[..], b"hello", &[0xff; 200], b"gAAAAAB"] {
        let (mut server, _) = Server::new(&psk(), identity(TEST_IDENTITY));
        let (reply, est) = server.on_client_hello(junk);
        assert!(est.is_err());
        assert_eq!(reply, REFUSED_WRONG_KEY);
        assert_eq!(server.signs.get(), 0);
    }
}

#[test]
fn replayed_client_hello_fails_the_challenge() {
    let psk = psk();
    let (_, hello) = Server::new(&psk, identity(TEST_IDENTITY));
    let mut client = ClientHandshake::new(psk.clone());
    let recorded = client_hello(&mut client, &hello);
    // The recorded first frame, replayed to a new connection (new challenge).
    let (mut server2, _) = Server::new(&psk, identity(TEST_IDENTITY));
    let (reply, est) = server2.on_client_hello(&recorded);
    assert_eq!(est.err(), Some(HandshakeError::PskCheckFailed));
    assert_eq!(reply, REFUSED_WRONG_KEY);
    assert_eq!(server2.signs.get(), 0);
}

#[test]
fn altered_client_hello_is_refused() {
    let psk = psk();
    let (mut server, hello) = Server::new(&psk, identity(TEST_IDENTITY));
    let mut client = ClientHandshake::new(psk);
    let mut ch = client_hello(&mut client, &hello);
    let mid = ch.len() / 2;
    ch[mid] = if ch[mid] == b'A' { b'B' } else { b'A' };
    let (reply, est) = server.on_client_hello(&ch);
    assert!(est.is_err());
    assert_eq!(reply, REFUSED_WRONG_KEY);
}

#[test]
fn signature_by_another_key_is_rejected() {
    // Someone holding the PSK but not the identity key poses as the server:
    // they announce the real identity but can only sign with their own key.
    let psk = psk();
    let real = identity(TEST_IDENTITY);
    let (mut hs, hello) = ServerHandshake::new(psk.clone(), real.public_der().into());
    let mut client = ClientHandshake::new(psk);
    let ch = client_hello(&mut client, &hello);
    let ServerStep::Sign(req) = hs.receive(&ch).expect("hello") else { panic!("should sign") };
    let forged = identity(OTHER_IDENTITY).sign(&req.transcript);
    let (auth, _) = hs.finish(&forged).expect("finish");
    assert_eq!(client.receive(&auth).err(), Some(HandshakeError::BadSignature));
}

#[test]
fn changed_identity_shows_a_different_fingerprint() {
    let psk = psk();
    let (mut server, hello) = Server::new(&psk, identity(OTHER_IDENTITY));
    let mut client = ClientHandshake::new(psk);
    let ch = client_hello(&mut client, &hello);
    let (auth, _) = server.on_client_hello(&ch);
    let ClientStep::Established(est) = client.receive(&auth).expect("valid handshake") else {
        panic!("expected established");
    };
    // The pin check (client-core) compares exactly this value.
    assert_ne!(est.fingerprint, identity(TEST_IDENTITY).fingerprint());
    assert_eq!(est.fingerprint, identity(OTHER_IDENTITY).fingerprint());
}

#[test]
fn altered_or_truncated_server_frames_are_rejected() {
    let psk = psk();
    let (mut server, hello) = Server::new(&psk, identity(TEST_IDENTITY));
    // Truncated and altered hellos.
    assert!(ClientHandshake::new(psk.clone()).receive(&hello[..hello.len() - 1]).is_err());
    let mut bad_magic = hello.clone();
    bad_magic[0] ^= 1;
    assert!(ClientHandshake::new(psk.clone()).receive(&bad_magic).is_err());
    let mut other = hello.clone();
    other[5] = other[5].wrapping_add(1);
    let theirs = u16::from_be_bytes([other[4], other[5]]);
    assert!(matches!(
        ClientHandshake::new(psk.clone()).receive(&other),
        Err(HandshakeError::VersionMismatch { ours: chatroom_protocol::PROTOCOL_VERSION, theirs: t }) if t == theirs
    ));

    let mut client = ClientHandshake::new(psk.clone());
    let ch = client_hello(&mut client, &hello);
    let (auth, _) = server.on_client_hello(&ch);
    let mut altered = auth.clone();
    let mid = altered.len() / 2;
    altered[mid] = if altered[mid] == b'A' { b'B' } else { b'A' };
    assert!(ClientHandshake::new(psk.clone()).receive(&hello).is_ok());
    assert!(matches!(client.receive(&altered), Err(HandshakeError::Malformed(_))));
    let mut client2 = ClientHandshake::new(psk);
    let _ = client_hello(&mut client2, &hello);
    assert!(client2.receive(&auth[..auth.len() - 5]).is_err());
}

#[test]
fn frames_out_of_order_are_fatal() {
    let mut p = connect();
    let f: Vec<String> = (0..4).map(|i| p.client.0.seal(format!("m{i}").as_bytes())).collect();
    let open = &mut p.server.1;
    assert!(open.open(f[0].as_bytes()).is_ok());
    // replayed
    assert_eq!(open.open(f[0].as_bytes()), Err(CryptoError::OutOfSequence { expected: 1, got: 0 }));
    // reordered / dropped
    assert_eq!(open.open(f[2].as_bytes()), Err(CryptoError::OutOfSequence { expected: 1, got: 2 }));
    // altered
    let mut altered = f[1].clone().into_bytes();
    altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
    assert_eq!(open.open(&altered), Err(CryptoError::Unauthentic));
    // truncated
    assert_eq!(open.open(&f[1].as_bytes()[..f[1].len() - 4]), Err(CryptoError::Unauthentic));
    // the intact one still opens: nothing advanced on failure
    assert!(open.open(f[1].as_bytes()).is_ok());
}

#[test]
fn unknown_types_and_invalid_utf8_inside_a_valid_frame_are_decode_errors() {
    let mut p = connect();
    for body in
        [&br#"{"type":"teleport","to":"mars"}"#[..], b"{\"type\":\"chat\",\"id\":1,\"text\":\"\xc3\x28\"}", b"\x00\x01"]
    {
        let f = p.client.0.seal(body);
        let opened = p.server.1.open(f.as_bytes()).expect("authentic frame opens");
        assert!(message::decode::<ClientMessage>(&opened).is_err());
    }
}

#[test]
fn weak_client_key_is_refused_before_any_rsa_work() {
    let psk = psk();
    let (mut server, hello) = Server::new(&psk, identity(TEST_IDENTITY));
    // A client that holds the key but sends the all-zero (small-order) point.
    let mut body = chatroom_protocol::PROTOCOL_VERSION.to_be_bytes().to_vec();
    body.extend_from_slice(&hello[6..38]);
    body.extend_from_slice(&[9; 32]);
    body.extend_from_slice(&[0; 32]);
    let mut client_hello = psk.id().to_vec();
    client_hello.extend_from_slice(psk.seal(&body).as_bytes());
    let (_, est) = server.on_client_hello(&client_hello);
    assert_eq!(est.err(), Some(HandshakeError::WeakKey));
    assert_eq!(server.signs.get(), 0);
}

#[test]
fn the_client_hello_is_exactly_the_size_the_server_buffers_before_the_key_check() {
    use chatroom_protocol::handshake::CLIENT_HELLO_FRAME_LEN;
    let key = psk();
    for _ in 0..8 {
        let (_, hello) = Server::new(&key, identity(TEST_IDENTITY));
        let mut client = ClientHandshake::new(key.clone());
        assert_eq!(client_hello(&mut client, &hello).len(), CLIENT_HELLO_FRAME_LEN);
    }
}

#[test]
fn a_retry_after_is_sealed_under_the_key_and_costs_no_signature() {
    let key = psk();
    let (mut server, hello) = Server::new(&key, identity(TEST_IDENTITY));
    let mut client = ClientHandshake::new(key.clone());
    let first = client_hello(&mut client, &hello);
    let ServerStep::Sign(_) = server.hs.receive(&first).expect("hello") else { panic!("key check failed") };
    let reply = server.hs.retry_after(std::time::Duration::from_millis(1500)).expect("retry after");
    // Only a key holder can read it: it is not the plaintext refusal.
    assert_ne!(reply, REFUSED_WRONG_KEY.to_vec());
    assert!(key.open(&reply).is_ok());
    assert!(Psk::parse(&Psk::generate()).expect("key").open(&reply).is_err());
    match client.receive(&reply) {
        Err(HandshakeError::RetryAfter(wait)) => assert_eq!(wait, std::time::Duration::from_millis(1500)),
        other => panic!("expected retry-after, got {other:?}"),
    }
    assert_eq!(server.signs.get(), 0);
    // The machine is done: it will not sign after all.
    assert!(server.hs.finish(&[0; 256]).is_err());
    // A recorded retry-after does not hold up another connection.
    let (mut other_server, other_hello) = Server::new(&key, identity(TEST_IDENTITY));
    let mut other = ClientHandshake::new(key.clone());
    let first = client_hello(&mut other, &other_hello);
    let ServerStep::Sign(_) = other_server.hs.receive(&first).expect("hello") else { panic!("key check failed") };
    assert!(matches!(other.receive(&reply), Err(HandshakeError::Malformed(_))), "replayed retry-after accepted");
}

#[test]
fn a_server_with_many_keys_tries_the_one_the_hello_names() {
    use chatroom_protocol::handshake::{KeyLookup, ServerHandshake, ServerStep};
    struct Ring(Vec<Psk>);
    impl KeyLookup for Ring {
        fn lookup(&self, id: &chatroom_protocol::crypto::KeyId) -> Option<Psk> {
            self.0.iter().find(|k| k.id() == *id).cloned()
        }
    }
    let keys: Vec<Psk> = (0..50).map(|_| Psk::parse(&Psk::generate()).expect("key")).collect();
    let der: std::sync::Arc<[u8]> = identity(TEST_IDENTITY).public_der().into();
    let ring = std::sync::Arc::new(Ring(keys.clone()));
    // Any of the ring's keys passes the key check, and the server says which.
    for k in [&keys[0], &keys[31], &keys[49]] {
        let (mut server, hello) = ServerHandshake::with_keys(ring.clone(), der.clone());
        let mut client = ClientHandshake::new(k.clone());
        let ClientStep::Send(ch) = client.receive(&hello).expect("hello") else { panic!("no client hello") };
        assert_eq!(&ch[..8], &k.id()[..], "the hello names its key");
        assert!(matches!(server.receive(&ch), Ok(ServerStep::Sign(_))));
        assert_eq!(server.key_id(), Some(k.id()));
    }
    // A key outside the ring, and a hello naming a ring key but sealed under
    // another, are refused at the key check.
    let stranger = Psk::parse(&Psk::generate()).expect("key");
    let (mut server, hello) = ServerHandshake::with_keys(ring.clone(), der.clone());
    let ClientStep::Send(ch) = ClientHandshake::new(stranger.clone()).receive(&hello).expect("hello") else {
        panic!("no client hello")
    };
    assert!(matches!(server.receive(&ch), Ok(ServerStep::Reject { .. })));
    let (mut server, hello) = ServerHandshake::with_keys(ring, der);
    let ClientStep::Send(mut ch) = ClientHandshake::new(stranger).receive(&hello).expect("hello") else {
        panic!("no client hello")
    };
    ch[..8].copy_from_slice(&keys[3].id());
    assert!(matches!(server.receive(&ch), Ok(ServerStep::Reject { .. })));
    assert_eq!(server.key_id(), None);
}
