//! The server's side of one handshake: the challenge, checking the
//! client's PSK token, the key exchange, and the RSA-2048 signature that
//! dominates it (the ceiling of connections per second per core).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use protocol::crypto::{Identity, Psk};
use protocol::handshake::{ClientHandshake, ClientStep, KeyLookup, ServerHandshake, ServerStep};

/// A fresh server handshake and the first frame of a client holding `key`
/// (the client's part is set-up, not measured).
fn server_with_client_frame(psk: &Psk, der: &Arc<[u8]>, key: &Psk) -> (ServerHandshake, Vec<u8>) {
    let (server, hello) = ServerHandshake::new(psk.clone(), der.clone());
    let mut client = ClientHandshake::new(key.clone());
    let ClientStep::Send(frame) = client.receive(&hello).expect("hello") else {
        unreachable!("the client answers the hello")
    };
    (server, frame)
}

fn handshake(c: &mut Criterion) {
    let identity = Identity::generate().expect("RSA key");
    let der: Arc<[u8]> = identity.public_der().into();
    let psk = Psk::parse(&Psk::generate()).expect("key");
    let mut g = c.benchmark_group("handshake");
    g.sample_size(30);
    g.bench_function("server sign (RSA-2048 PSS)", |b| {
        let transcript = [5u8; 200];
        b.iter(|| black_box(identity.sign(black_box(&transcript))));
    });
    g.bench_function("server side, whole (incl. signature)", |b| {
        b.iter_batched(
            || server_with_client_frame(&psk, &der, &psk),
            |(mut server, frame)| {
                let ServerStep::Sign(req) = server.receive(&frame).expect("valid") else {
                    unreachable!("a valid client is signed for")
                };
                let sig = identity.sign(&req.transcript);
                black_box(server.finish(&sig).expect("finish"))
            },
            criterion::BatchSize::SmallInput,
        );
    });
    g.bench_function("server side, wrong key (no signature)", |b| {
        let wrong = Psk::parse(&Psk::generate()).expect("key");
        b.iter_batched(
            || server_with_client_frame(&psk, &der, &wrong),
            |(mut server, frame)| black_box(server.receive(&frame)),
            criterion::BatchSize::SmallInput,
        );
    });
    // Issue 17: with 100 live invites and 1,000 issued keys the hello names
    // its key, so a wrong key still costs one lookup and at most one token
    // check, never an RSA signature.
    let mut ring = server::keyring::KeyRing::new(psk.clone());
    let invites: Vec<_> = (0..100).map(|_| ring.invite(None, None, None, 0)).collect();
    for i in 0..1000 {
        ring.issue(&format!("user{i}"), Some(invites[i % 100].id), 0);
    }
    let ring: Arc<dyn KeyLookup> = Arc::new(server::keyring::SharedKeyRing::new(ring));
    let with_ring = |key: &Psk, named: Option<&Psk>| {
        let (server, hello) = ServerHandshake::with_keys(ring.clone(), der.clone());
        let mut client = ClientHandshake::new(key.clone());
        let ClientStep::Send(mut frame) = client.receive(&hello).expect("hello") else {
            unreachable!("the client answers the hello")
        };
        if let Some(named) = named {
            frame[..8].copy_from_slice(&named.id());
        }
        (server, frame)
    };
    let stranger = Psk::parse(&Psk::generate()).expect("key");
    g.bench_function("wrong key, 1,100 live keys (unknown key id)", |b| {
        b.iter_batched(
            || with_ring(&stranger, None),
            |(mut server, frame)| black_box(server.receive(&frame)),
            criterion::BatchSize::SmallInput,
        );
    });
    g.bench_function("wrong key naming a live key's id, 1,100 live keys", |b| {
        b.iter_batched(
            || with_ring(&stranger, Some(&invites[42].key)),
            |(mut server, frame)| black_box(server.receive(&frame)),
            criterion::BatchSize::SmallInput,
        );
    });
    g.bench_function("an invite's key, 1,100 live keys (to the signature)", |b| {
        b.iter_batched(
            || with_ring(&invites[7].key, None),
            |(mut server, frame)| black_box(server.receive(&frame)),
            criterion::BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(benches, handshake);
criterion_main!(benches);
