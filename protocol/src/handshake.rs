//! The handshake, as two state machines that take frames and return frames.
//!
//! ```text
//! client                                            server
//!   |  <-- ServerHello: "SCHT" | version | challenge (plaintext)
//!   |  ClientHello = key_id | Fernet_PSK(version | challenge | nonce | client_x25519) -->
//!   |                        server finds the key by its id (one of many:
//!   |                        main, invites, issued) and opens it; on failure it
//!   |                        answers REFUSED (plaintext, 2 bytes) and closes,
//!   |                        having done no RSA work.
//!   |  <-- ServerAuth = Fernet_PSK(0 | server_x25519 | identity DER | RSA-PSS sig)
//!   |  client verifies the signature over the transcript, checks the pin,
//!   |  both derive SessionKeys; every later frame is a sealed, sequenced token.
//! ```
//!
//! The transcript signed by the server is [`TRANSCRIPT_LABEL`], the version,
//! the challenge, the client nonce, both ephemeral public keys and the
//! server's identity DER, each length-prefixed where variable.
//!
//! Neither machine does I/O or RSA signing itself: the server machine hands
//! out a [`SignRequest`] so the caller can sign on a worker thread.

use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey};

use crate::PROTOCOL_VERSION;
use crate::crypto::{Fingerprint, KeyId, Psk, SessionKeys, random_bytes, verify_signature};
use crate::error::HandshakeError;

/// First bytes of the server hello.
pub const MAGIC: &[u8; 4] = b"SCHT";
/// Domain-separation label at the start of the signed transcript.
pub const TRANSCRIPT_LABEL: &[u8] = b"socket-chatroom handshake";
/// The one plaintext frame the server sends after its hello: "you do not hold
/// the pre-shared key". Tokens never start with a zero byte.
pub const REFUSED_WRONG_KEY: [u8; 2] = [0x00, 0x01];

const SERVER_HELLO_LEN: usize = 4 + 2 + 32;
const CLIENT_HELLO_LEN: usize = 2 + 32 + 32 + 32;
const AUTH_OK: u8 = 0;
const AUTH_VERSION_MISMATCH: u8 = 1;
const AUTH_RETRY_AFTER: u8 = 2;

/// Length of a Fernet token (URL-safe base64 with padding) sealing `n` bytes:
/// version, timestamp, IV, the AES-CBC ciphertext padded to whole blocks, HMAC.
const fn fernet_token_len(n: usize) -> usize {
    let raw = 1 + 8 + 16 + (n / 16 + 1) * 16 + 32;
    raw.div_ceil(3) * 4
}

/// The exact size of the client hello frame: the only frame a server reads
/// before the key check, so it needs to buffer no more than this.
pub const CLIENT_HELLO_FRAME_LEN: usize = 8 + fernet_token_len(CLIENT_HELLO_LEN);

/// Where a server finds the key a client hello names ([`KeyId`]).
pub trait KeyLookup: Send + Sync {
    /// The live key with this id, if any (a used-up, expired or revoked
    /// one is none).
    fn lookup(&self, id: &KeyId) -> Option<Psk>;
}

/// A single key is a key ring of one.
impl KeyLookup for Psk {
    fn lookup(&self, id: &KeyId) -> Option<Psk> {
        (self.id() == *id).then(|| self.clone())
    }
}

/// Longest wait a server may ask for in a retry-after reply.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

fn build_transcript(
    version: u16,
    challenge: &[u8; 32],
    nonce: &[u8; 32],
    client_pub: &[u8; 32],
    server_pub: &[u8; 32],
    identity_der: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(TRANSCRIPT_LABEL.len() + 2 + 128 + 4 + identity_der.len());
    t.extend_from_slice(TRANSCRIPT_LABEL);
    t.extend_from_slice(&version.to_be_bytes());
    t.extend_from_slice(challenge);
    t.extend_from_slice(nonce);
    t.extend_from_slice(client_pub);
    t.extend_from_slice(server_pub);
    t.extend_from_slice(&(identity_der.len() as u32).to_be_bytes());
    t.extend_from_slice(identity_der);
    t
}

fn derive(secret: EphemeralSecret, peer: &PublicKey, transcript: &[u8]) -> Result<SessionKeys, HandshakeError> {
    let shared = secret.diffie_hellman(peer);
    if !shared.was_contributory() {
        return Err(HandshakeError::WeakKey);
    }
    let hash: [u8; 32] = Sha256::digest(transcript).into();
    Ok(SessionKeys::derive(shared.as_bytes(), &hash))
}

/// A small cursor for parsing handshake bodies.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HandshakeError> {
        if self.0.len() < n {
            return Err(HandshakeError::Malformed(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], HandshakeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, HandshakeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, HandshakeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    fn finish(self, what: &'static str) -> Result<(), HandshakeError> {
        if self.0.is_empty() { Ok(()) } else { Err(HandshakeError::Malformed(what)) }
    }
}

/// What the handshake leaves behind on either side.
#[derive(Debug)]
pub struct Established {
    /// The session's keys.
    pub keys: SessionKeys,
    /// The server identity's fingerprint.
    pub fingerprint: Fingerprint,
}

// ---------------------------------------------------------------- client --

enum ClientState {
    AwaitHello { psk: Psk, secret: EphemeralSecret },
    AwaitAuth { psk: Psk, secret: EphemeralSecret, client_pub: [u8; 32], challenge: [u8; 32], nonce: [u8; 32] },
    Done,
}

/// The client's handshake.
pub struct ClientHandshake {
    state: ClientState,
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.state {
            ClientState::AwaitHello { .. } => "await-hello",
            ClientState::AwaitAuth { .. } => "await-auth",
            ClientState::Done => "done",
        };
        f.debug_struct("ClientHandshake").field("state", &s).finish()
    }
}

/// What the client does next.
#[derive(Debug)]
pub enum ClientStep {
    /// Send this frame and feed the server's next frame in.
    Send(Vec<u8>),
    /// The handshake is complete. Check the fingerprint against the pin
    /// before sending anything secret (a password) over the session.
    Established(Established),
}

impl ClientHandshake {
    /// A client that will prove it holds `psk`.
    pub fn new(psk: Psk) -> Self {
        Self { state: ClientState::AwaitHello { psk, secret: EphemeralSecret::random() } }
    }

    /// Feeds the server's next frame in.
    ///
    /// # Errors
    ///
    /// Any [`HandshakeError`]; the connection must then be closed.
    pub fn receive(&mut self, frame: &[u8]) -> Result<ClientStep, HandshakeError> {
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::AwaitHello { psk, secret } => {
                let mut r = Reader(frame);
                if r.take(4, "server hello magic")? != MAGIC {
                    return Err(HandshakeError::Malformed("server hello magic"));
                }
                let version = r.u16("server hello version")?;
                let challenge: [u8; 32] = r.array("server hello challenge")?;
                r.finish("server hello length")?;
                debug_assert_eq!(frame.len(), SERVER_HELLO_LEN);
                if version != PROTOCOL_VERSION {
                    return Err(HandshakeError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: version });
                }
                let nonce = random_bytes::<32>();
                let client_pub = PublicKey::from(&secret).to_bytes();
                let mut body = Vec::with_capacity(CLIENT_HELLO_LEN);
                body.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
                body.extend_from_slice(&challenge);
                body.extend_from_slice(&nonce);
                body.extend_from_slice(&client_pub);
                let mut hello = psk.id().to_vec();
                hello.extend_from_slice(psk.seal(&body).as_bytes());
                self.state = ClientState::AwaitAuth { psk, secret, client_pub, challenge, nonce };
                Ok(ClientStep::Send(hello))
            }
            ClientState::AwaitAuth { psk, secret, client_pub, challenge, nonce } => {
                if frame == REFUSED_WRONG_KEY {
                    return Err(HandshakeError::WrongKey);
                }
                // A server that cannot seal under our key does not hold it.
                let body = psk
                    .open(frame)
                    .map_err(|_| HandshakeError::Malformed("server auth is not sealed under the key"))?;
                let mut r = Reader(&body);
                match r.u8("server auth status")? {
                    AUTH_OK => {}
                    AUTH_VERSION_MISMATCH => {
                        let theirs = r.u16("server version")?;
                        return Err(HandshakeError::VersionMismatch { ours: PROTOCOL_VERSION, theirs });
                    }
                    AUTH_RETRY_AFTER => {
                        let ms = u32::from_be_bytes(r.array("retry after")?);
                        // Bound to this connection: a recorded one cannot be
                        // replayed into another handshake.
                        let echoed: [u8; 32] = r.array("retry after challenge")?;
                        r.finish("retry after length")?;
                        if !bool::from(subtle::ConstantTimeEq::ct_eq(&echoed[..], &challenge[..])) {
                            return Err(HandshakeError::Malformed("retry after for another connection"));
                        }
                        let wait = std::time::Duration::from_millis(u64::from(ms)).min(MAX_RETRY_AFTER);
                        return Err(HandshakeError::RetryAfter(wait));
                    }
                    _ => return Err(HandshakeError::Malformed("server auth status")),
                }
                let server_pub: [u8; 32] = r.array("server ephemeral key")?;
                let der_len = r.u16("identity length")? as usize;
                let der = r.take(der_len, "identity")?;
                let sig_len = r.u16("signature length")? as usize;
                let sig = r.take(sig_len, "signature")?;
                r.finish("server auth length")?;
                let transcript = build_transcript(PROTOCOL_VERSION, &challenge, &nonce, &client_pub, &server_pub, der);
                if !verify_signature(der, &transcript, sig) {
                    return Err(HandshakeError::BadSignature);
                }
                let keys = derive(secret, &PublicKey::from(server_pub), &transcript)?;
                Ok(ClientStep::Established(Established { keys, fingerprint: Fingerprint::of_der(der) }))
            }
            ClientState::Done => Err(HandshakeError::Unexpected("done")),
        }
    }
}

// ---------------------------------------------------------------- server --

enum ServerState {
    AwaitClientHello { challenge: [u8; 32] },
    AwaitSignature { keys: SessionKeys },
    Done,
}

/// The server's handshake for one connection.
pub struct ServerHandshake {
    keys: std::sync::Arc<dyn KeyLookup>,
    /// The key the client hello named, once found.
    psk: Option<Psk>,
    identity_der: std::sync::Arc<[u8]>,
    state: ServerState,
    server_pub: [u8; 32],
    /// This connection's challenge (a retry-after answer carries it).
    challenge: [u8; 32],
}

impl std::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.state {
            ServerState::AwaitClientHello { .. } => "await-client-hello",
            ServerState::AwaitSignature { .. } => "await-signature",
            ServerState::Done => "done",
        };
        f.debug_struct("ServerHandshake").field("state", &s).finish()
    }
}

/// The transcript the server must sign (RSA-PSS, SHA-256) with its identity.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// Bytes to sign.
    pub transcript: Vec<u8>,
}

/// What the server does after the client hello.
#[derive(Debug)]
pub enum ServerStep {
    /// The client passed the PSK gate: sign this, then call
    /// [`ServerHandshake::finish`].
    Sign(SignRequest),
    /// Refuse: send `reply` (if any), then close. `reason` is for the log.
    Reject {
        /// Frame to send before closing.
        reply: Vec<u8>,
        /// Why.
        reason: HandshakeError,
    },
}

impl ServerHandshake {
    /// Starts a handshake with one key; returns the machine and the hello
    /// frame to send.
    pub fn new(psk: Psk, identity_der: std::sync::Arc<[u8]>) -> (Self, Vec<u8>) {
        Self::with_keys(std::sync::Arc::new(psk), identity_der)
    }

    /// The key the client proved it holds (after a passed key check).
    pub fn key_id(&self) -> Option<KeyId> {
        self.psk.as_ref().map(Psk::id)
    }

    /// Starts a handshake that accepts any key `keys` finds by the client
    /// hello's key id; returns the machine and the hello frame to send.
    pub fn with_keys(keys: std::sync::Arc<dyn KeyLookup>, identity_der: std::sync::Arc<[u8]>) -> (Self, Vec<u8>) {
        let challenge = random_bytes::<32>();
        let mut hello = Vec::with_capacity(SERVER_HELLO_LEN);
        hello.extend_from_slice(MAGIC);
        hello.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        hello.extend_from_slice(&challenge);
        let state = ServerState::AwaitClientHello { challenge };
        (Self { keys, psk: None, identity_der, state, server_pub: [0; 32], challenge }, hello)
    }

    /// Feeds the client hello in. Only the PSK check and an X25519 key
    /// generation happen here; no RSA work.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Unexpected`] when called twice.
    pub fn receive(&mut self, frame: &[u8]) -> Result<ServerStep, HandshakeError> {
        let ServerState::AwaitClientHello { challenge } = std::mem::replace(&mut self.state, ServerState::Done) else {
            return Err(HandshakeError::Unexpected("client hello already received"));
        };
        let reject = |reason| Ok(ServerStep::Reject { reply: REFUSED_WRONG_KEY.to_vec(), reason });
        // The key id, then the token: one key is tried, however many live.
        let Some((id, token)) = frame.split_first_chunk::<8>() else {
            return reject(HandshakeError::PskCheckFailed);
        };
        let Some(psk) = self.keys.lookup(id) else {
            return reject(HandshakeError::PskCheckFailed);
        };
        let Ok(body) = psk.open(token) else {
            return reject(HandshakeError::PskCheckFailed);
        };
        let parsed = (|| {
            let mut r = Reader(&body);
            let version = r.u16("version")?;
            let echoed: [u8; 32] = r.array("challenge")?;
            let nonce: [u8; 32] = r.array("nonce")?;
            let client_pub: [u8; 32] = r.array("client key")?;
            r.finish("client hello length")?;
            Ok::<_, HandshakeError>((version, echoed, nonce, client_pub))
        })();
        let (version, echoed, nonce, client_pub) = match parsed {
            Ok(p) => p,
            Err(e) => return reject(e),
        };
        // Sealed under the PSK but for another connection: a replay.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&echoed[..], &challenge[..])) {
            return reject(HandshakeError::PskCheckFailed);
        }
        if version != PROTOCOL_VERSION {
            let mut body = vec![AUTH_VERSION_MISMATCH];
            body.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
            return Ok(ServerStep::Reject {
                reply: psk.seal(&body).into_bytes(),
                reason: HandshakeError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: version },
            });
        }
        let secret = EphemeralSecret::random();
        let server_pub = PublicKey::from(&secret).to_bytes();
        let transcript = build_transcript(version, &challenge, &nonce, &client_pub, &server_pub, &self.identity_der);
        // A degenerate client key is refused before any RSA work.
        let keys = match derive(secret, &PublicKey::from(client_pub), &transcript) {
            Ok(k) => k,
            Err(e) => return reject(e),
        };
        self.server_pub = server_pub;
        self.psk = Some(psk);
        self.state = ServerState::AwaitSignature { keys };
        Ok(ServerStep::Sign(SignRequest { transcript }))
    }

    /// Declines, after a passed key check, to go on now: the frame to send
    /// (sealed under the pre-shared key, so only a key holder learns it)
    /// tells the client to come back after `wait`. The caller then closes.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Unexpected`] unless the key check has just passed.
    pub fn retry_after(&mut self, wait: std::time::Duration) -> Result<Vec<u8>, HandshakeError> {
        let ServerState::AwaitSignature { .. } = std::mem::replace(&mut self.state, ServerState::Done) else {
            return Err(HandshakeError::Unexpected("no key check passed"));
        };
        let ms = u32::try_from(wait.min(MAX_RETRY_AFTER).as_millis()).unwrap_or(u32::MAX).max(1);
        let mut body = vec![AUTH_RETRY_AFTER];
        body.extend_from_slice(&ms.to_be_bytes());
        body.extend_from_slice(&self.challenge);
        let psk = self.psk.as_ref().ok_or(HandshakeError::Unexpected("no key check passed"))?;
        Ok(psk.seal(&body).into_bytes())
    }

    /// Completes the handshake with the signature over the transcript;
    /// returns the frame to send and the session's keys.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Unexpected`] out of order.
    pub fn finish(&mut self, signature: &[u8]) -> Result<(Vec<u8>, Established), HandshakeError> {
        let ServerState::AwaitSignature { keys } = std::mem::replace(&mut self.state, ServerState::Done) else {
            return Err(HandshakeError::Unexpected("no signature requested"));
        };
        let server_pub = self.server_pub;
        let der = &self.identity_der;
        let mut body = Vec::with_capacity(1 + 32 + 4 + der.len() + signature.len());
        body.push(AUTH_OK);
        body.extend_from_slice(&server_pub);
        body.extend_from_slice(&(der.len() as u16).to_be_bytes());
        body.extend_from_slice(der);
        body.extend_from_slice(&(signature.len() as u16).to_be_bytes());
        body.extend_from_slice(signature);
        let psk = self.psk.as_ref().ok_or(HandshakeError::Unexpected("no key check passed"))?;
        Ok((psk.seal(&body).into_bytes(), Established { keys, fingerprint: Fingerprint::of_der(der) }))
    }
}
