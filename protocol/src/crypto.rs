//! Keys and sealed frames.
//!
//! - [`Psk`]: the server's pre-shared Fernet key, the gate every client
//!   passes first.
//! - [`Identity`] / [`Fingerprint`]: the server's persistent RSA key and the
//!   `SHA256:` fingerprint clients pin.
//! - [`SessionKeys`]: per-direction, per-purpose keys expanded by HKDF-SHA256
//!   from the ephemeral X25519 secret.
//! - [`Sealer`] / [`Opener`]: one direction of the session's frame stream,
//!   Fernet tokens that carry a sequence number.
//!
//! Fernet timestamps: every token this protocol makes is stamped `0` and
//! opened as if "now" were `0`, with no TTL. Freshness comes from the
//! server's challenge and the sequence numbers, so a client with a wrong
//! clock still connects.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE};
use hkdf::Hkdf;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::pss::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use sha2::{Digest, Sha256};

use crate::error::{CryptoError, KeyError};

/// The timestamp every token carries (see the module docs).
const FERNET_STAMP: u64 = 0;

/// Size of the RSA identity key in bits.
pub const IDENTITY_BITS: usize = 2048;

fn fernet_from_bytes(key: &[u8; 32]) -> fernet::Fernet {
    // 32 bytes always make a valid Fernet key.
    #[allow(clippy::expect_used)]
    fernet::Fernet::new(&URL_SAFE.encode(key)).expect("32-byte key is a valid Fernet key")
}

/// A fresh secret resume token (192 random bits, base64).
pub fn resume_token() -> String {
    STANDARD_NO_PAD.encode(random_bytes::<24>())
}

/// `N` bytes from the operating system's CSPRNG.
///
/// # Panics
///
/// If the operating system has no usable random source, which no supported
/// platform lacks; continuing without one would be worse than stopping.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("operating system random source failed");
    buf
}

/// A key's public name: the first 8 bytes of SHA-256 over a label and the
/// key. A client hello starts with it, so a server holding many keys (the
/// main key, invites, keys it issued) tries one; it tells nothing of the
/// key itself.
pub type KeyId = [u8; 8];

/// A key id as text (16 hex digits).
pub fn key_id_hex(id: &KeyId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 16 hex digits into a key id.
pub fn parse_key_id(text: &str) -> Option<KeyId> {
    let text = text.trim();
    if text.len() != 16 || !text.is_ascii() {
        return None;
    }
    let mut id = [0u8; 8];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// The server's pre-shared Fernet key (the main key, an invite's key, or a
/// key the server issued to one client).
#[derive(Clone)]
pub struct Psk {
    fernet: fernet::Fernet,
    id: KeyId,
    text: String,
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<secret>)")
    }
}

impl Psk {
    /// A fresh random key in its text form (44 characters of URL-safe base64).
    pub fn generate() -> String {
        URL_SAFE.encode(random_bytes::<32>())
    }

    /// Parses the text form; surrounding whitespace (a trailing newline in a
    /// key file) is ignored.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPsk`] unless it is base64 of exactly 32 bytes.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let raw = URL_SAFE.decode(text).map_err(|_| KeyError::InvalidPsk)?;
        let raw: [u8; 32] = raw.try_into().map_err(|_| KeyError::InvalidPsk)?;
        let mut h = Sha256::new();
        h.update(b"socket-chatroom key id v1");
        h.update(raw);
        let digest: [u8; 32] = h.finalize().into();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Ok(Self { fernet: fernet_from_bytes(&raw), id, text: URL_SAFE.encode(raw) })
    }

    /// The key's public id ([`KeyId`]).
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key's text form (a secret: for key files and the sealed session
    /// only).
    pub fn expose_text(&self) -> &str {
        &self.text
    }

    /// Seals `data` into a token under the key.
    pub fn seal(&self, data: &[u8]) -> String {
        self.fernet.encrypt_at_time(data, FERNET_STAMP)
    }

    /// Opens a token sealed under the key.
    ///
    /// # Errors
    ///
    /// [`CryptoError::Unauthentic`] for anything that is not a valid token.
    pub fn open(&self, token: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_token(&self.fernet, token)
    }
}

fn open_token(fernet: &fernet::Fernet, token: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let token = std::str::from_utf8(token).map_err(|_| CryptoError::Unauthentic)?;
    fernet.decrypt_at_time(token, None, FERNET_STAMP).map_err(|_| CryptoError::Unauthentic)
}

/// SHA-256 fingerprint of a server's public key (DER SubjectPublicKeyInfo),
/// shown like ssh: `SHA256:` + unpadded standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Fingerprint of a DER-encoded public key.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parses `SHA256:...` (surrounding whitespace ignored).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidFingerprint`] for anything else.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let b64 = text.trim().strip_prefix("SHA256:").ok_or(KeyError::InvalidFingerprint)?;
        let raw = STANDARD_NO_PAD.decode(b64).map_err(|_| KeyError::InvalidFingerprint)?;
        Ok(Self(raw.try_into().map_err(|_| KeyError::InvalidFingerprint)?))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

/// The server's persistent RSA identity.
#[derive(Clone)]
pub struct Identity {
    signer: SigningKey<Sha256>,
    public_der: Vec<u8>,
    fingerprint: Fingerprint,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl Identity {
    /// Generates a new RSA-2048 identity (slow: seconds in a debug build).
    ///
    /// # Errors
    ///
    /// [`KeyError::Rsa`] if the RSA library fails.
    pub fn generate() -> Result<Self, KeyError> {
        let key =
            rsa::PrivateKey::new(&mut getrandom::SysRng, IDENTITY_BITS).map_err(|e| KeyError::Rsa(e.to_string()))?;
        Self::from_key(key)
    }

    fn from_key(key: rsa::PrivateKey) -> Result<Self, KeyError> {
        let public_der = key.to_public_key().to_public_key_der().map_err(|e| KeyError::Rsa(e.to_string()))?.into_vec();
        let fingerprint = Fingerprint::of_der(&public_der);
        Ok(Self { signer: SigningKey::new(key), public_der, fingerprint })
    }

    /// Parses a PKCS#8 PEM private key.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidIdentity`] if it is not one.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = rsa::PrivateKey::from_pkcs8_pem(pem).map_err(|e| KeyError::InvalidIdentity(e.to_string()))?;
        Self::from_key(key)
    }

    /// The private key as PKCS#8 PEM, for the identity file.
    ///
    /// # Errors
    ///
    /// [`KeyError::Rsa`] if encoding fails.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let pem = self.signer.as_ref().to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::Rsa(e.to_string()))?;
        Ok(pem.to_string())
    }

    /// The public key, DER SubjectPublicKeyInfo.
    pub fn public_der(&self) -> &[u8] {
        &self.public_der
    }

    /// The public key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// RSA-PSS (SHA-256) signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signer.sign(message).to_vec()
    }
}

/// Verifies an RSA-PSS (SHA-256) signature by the key in `public_der`.
pub(crate) fn verify_signature(public_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = rsa::PublicKey::from_public_key_der(public_der) else {
        return false;
    };
    let Ok(sig) = Signature::try_from(signature) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(key).verify(message, &sig).is_ok()
}

/// Keys of one session, expanded by HKDF-SHA256 from the X25519 shared
/// secret with the transcript hash as salt. One key per direction and
/// purpose; `c2s` is client-to-server.
#[derive(Clone)]
pub struct SessionKeys {
    /// Text frames, client to server.
    pub c2s_text: [u8; 32],
    /// Text frames, server to client.
    pub s2c_text: [u8; 32],
    /// Voice packets, client to server (used by the voice relay).
    pub c2s_voice: [u8; 32],
    /// Voice packets, server to client.
    pub s2c_voice: [u8; 32],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(<secret>)")
    }
}

impl SessionKeys {
    /// Expands the shared secret.
    pub fn derive(shared_secret: &[u8; 32], transcript_hash: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(transcript_hash), shared_secret);
        let expand = |label: &[u8]| {
            let mut out = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
            #[allow(clippy::expect_used)]
            hk.expand(label, &mut out).expect("HKDF output length is valid");
            out
        };
        Self {
            c2s_text: expand(b"socket-chatroom v1 c2s text"),
            s2c_text: expand(b"socket-chatroom v1 s2c text"),
            c2s_voice: expand(b"socket-chatroom v1 c2s voice"),
            s2c_voice: expand(b"socket-chatroom v1 s2c voice"),
        }
    }

    /// The client's side: seals with `c2s_text`, opens with `s2c_text`.
    pub fn client_text(&self) -> (Sealer, Opener) {
        (Sealer::new(&self.c2s_text), Opener::new(&self.s2c_text))
    }

    /// The server's side: seals with `s2c_text`, opens with `c2s_text`.
    pub fn server_text(&self) -> (Sealer, Opener) {
        (Sealer::new(&self.s2c_text), Opener::new(&self.c2s_text))
    }
}

/// Seals the frames of one direction: each is a Fernet token of an 8-byte
/// big-endian sequence number followed by the message.
pub struct Sealer {
    tokens: crate::token::TokenSealer,
    next: u64,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("next", &self.next).finish_non_exhaustive()
    }
}

impl Sealer {
    fn new(key: &[u8; 32]) -> Self {
        Self { tokens: crate::token::TokenSealer::new(key), next: 0 }
    }

    /// Seals the next frame.
    pub fn seal(&mut self, message: &[u8]) -> String {
        let mut out = Vec::with_capacity(Self::sealed_len(message.len()));
        self.seal_into(message, &mut out);
        // Base64 is ASCII.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the next frame's token to `out` ([`Sealer::sealed_len`] bytes).
    pub fn seal_into(&mut self, message: &[u8], out: &mut Vec<u8>) {
        let seq = self.next.to_be_bytes();
        self.next += 1;
        self.tokens.seal_into(FERNET_STAMP, &[&seq, message], out);
    }

    /// Length of the token sealing a message of `message_len` bytes.
    pub fn sealed_len(message_len: usize) -> usize {
        crate::token::token_len(8 + message_len)
    }
}

/// Opens the frames of one direction, insisting on consecutive sequence
/// numbers from 0.
pub struct Opener {
    fernet: fernet::Fernet,
    expected: u64,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener").field("expected", &self.expected).finish_non_exhaustive()
    }
}

impl Opener {
    fn new(key: &[u8; 32]) -> Self {
        Self { fernet: fernet_from_bytes(key), expected: 0 }
    }

    /// Opens the next frame and returns its message.
    ///
    /// # Errors
    ///
    /// [`CryptoError::Unauthentic`] for an altered, truncated or forged
    /// frame, [`CryptoError::OutOfSequence`] for a replayed, reordered or
    /// dropped one. Either way the session must end.
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut plain = open_token(&self.fernet, frame)?;
        if plain.len() < 8 {
            return Err(CryptoError::Truncated);
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&plain[..8]);
        let got = u64::from_be_bytes(seq);
        if got != self.expected {
            return Err(CryptoError::OutOfSequence { expected: self.expected, got });
        }
        self.expected += 1;
        plain.drain(..8);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_parses_its_own_text_form_and_rejects_others() {
        let text = Psk::generate();
        assert_eq!(text.len(), 44);
        assert!(Psk::parse(&format!("{text}\n")).is_ok());
        assert_eq!(Psk::parse("short").err(), Some(KeyError::InvalidPsk));
        assert_eq!(Psk::parse(&URL_SAFE.encode([0u8; 31])).err(), Some(KeyError::InvalidPsk));
    }

    #[test]
    fn psk_tokens_open_only_under_the_same_key() {
        let a = Psk::parse(&Psk::generate()).expect("valid");
        let b = Psk::parse(&Psk::generate()).expect("valid");
        let token = a.seal(b"hi");
        assert_eq!(a.open(token.as_bytes()).as_deref(), Ok(&b"hi"[..]));
        assert_eq!(b.open(token.as_bytes()), Err(CryptoError::Unauthentic));
        assert_eq!(a.open(b"\xff\xfe"), Err(CryptoError::Unauthentic));
    }

    #[test]
    fn fingerprint_round_trips_through_text() {
        let fp = Fingerprint::of_der(b"key");
        let text = fp.to_string();
        assert!(text.starts_with("SHA256:") && text.len() == 7 + 43, "{text}");
        assert_eq!(Fingerprint::parse(&text), Ok(fp));
        assert!(Fingerprint::parse("MD5:abc").is_err());
        assert!(Fingerprint::parse("SHA256:abc").is_err());
    }

    #[test]
    fn sequence_numbers_reject_replay_reorder_and_drop() {
        let keys = SessionKeys::derive(&[1; 32], &[2; 32]);
        let (mut seal, _) = keys.client_text();
        let (_, mut open) = keys.server_text();
        let f0 = seal.seal(b"zero");
        let f1 = seal.seal(b"one");
        let f2 = seal.seal(b"two");
        assert_eq!(open.open(f0.as_bytes()).as_deref(), Ok(&b"zero"[..]));
        assert_eq!(open.open(f0.as_bytes()), Err(CryptoError::OutOfSequence { expected: 1, got: 0 }));
        assert_eq!(open.open(f2.as_bytes()), Err(CryptoError::OutOfSequence { expected: 1, got: 2 }));
        assert_eq!(open.open(f1.as_bytes()).as_deref(), Ok(&b"one"[..]));
    }

    #[test]
    fn directions_use_different_keys() {
        let keys = SessionKeys::derive(&[1; 32], &[2; 32]);
        let (mut client_seal, mut client_open) = keys.client_text();
        // A client frame reflected back at the client does not open.
        let f = client_seal.seal(b"x");
        assert_eq!(client_open.open(f.as_bytes()), Err(CryptoError::Unauthentic));
    }
}
