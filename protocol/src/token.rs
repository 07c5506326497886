//! Sealing Fernet tokens on the hot path.
//!
//! Byte for byte the token of the Fernet spec (`0x80 | timestamp u64 | IV |
//! AES-128-CBC(PKCS#7) | HMAC-SHA256`, URL-safe base64 with padding), made
//! without the `fernet` crate's per-token costs: a `getrandom` system call
//! for every IV and three allocations. The IV is AES-128 of a counter under
//! a random key drawn once per [`TokenSealer`] (a block cipher in counter
//! mode: unpredictable without that key, never repeating), and the token is
//! written straight into the caller's buffer. Tokens are opened by the
//! `fernet` crate ([`crate::crypto::Opener`]), so every test that opens a
//! sealed frame checks the two agree.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Fernet's version byte.
const VERSION: u8 = 0x80;
/// Version, timestamp and IV.
const HEAD: usize = 1 + 8 + 16;
/// HMAC-SHA256 tag.
const TAG: usize = 32;

/// Seals Fernet tokens under one key. Not `Clone`: a copy would repeat
/// the IV sequence.
pub struct TokenSealer {
    cipher_key: [u8; 16],
    mac: Hmac<Sha256>,
    iv_cipher: Aes128,
    iv_counter: u128,
    raw: Vec<u8>,
}

impl std::fmt::Debug for TokenSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSealer").finish_non_exhaustive()
    }
}

/// Length of the base64 token sealing `plain_len` bytes.
pub fn token_len(plain_len: usize) -> usize {
    let raw = HEAD + (plain_len / 16 + 1) * 16 + TAG;
    raw.div_ceil(3) * 4
}

impl TokenSealer {
    /// A sealer for the 32-byte Fernet key `key` (signing key first, then
    /// encryption key, as in the spec).
    pub fn new(key: &[u8; 32]) -> Self {
        let mut cipher_key = [0u8; 16];
        cipher_key.copy_from_slice(&key[16..]);
        // HMAC accepts keys of any length.
        #[allow(clippy::expect_used)]
        let mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&key[..16]).expect("HMAC takes any key length");
        let iv_key = crate::crypto::random_bytes::<16>();
        Self { cipher_key, mac, iv_cipher: Aes128::new(&iv_key.into()), iv_counter: 0, raw: Vec::new() }
    }

    fn next_iv(&mut self) -> [u8; 16] {
        let mut block = self.iv_counter.to_be_bytes().into();
        self.iv_counter = self.iv_counter.wrapping_add(1);
        self.iv_cipher.encrypt_block(&mut block);
        block.into()
    }

    /// Appends the token of `parts` (concatenated) stamped `timestamp` to
    /// `out`; it is [`token_len`] of their total length long.
    pub fn seal_into(&mut self, timestamp: u64, parts: &[&[u8]], out: &mut Vec<u8>) {
        let plain_len: usize = parts.iter().map(|p| p.len()).sum();
        let padded = (plain_len / 16 + 1) * 16;
        let iv = self.next_iv();
        self.raw.clear();
        self.raw.reserve(HEAD + padded + TAG);
        self.raw.push(VERSION);
        self.raw.extend_from_slice(&timestamp.to_be_bytes());
        self.raw.extend_from_slice(&iv);
        for p in parts {
            self.raw.extend_from_slice(p);
        }
        self.raw.resize(HEAD + padded, 0);
        let enc = cbc::Encryptor::<Aes128>::new(&self.cipher_key.into(), &iv.into());
        // The buffer has room for the padding by construction.
        #[allow(clippy::expect_used)]
        enc.encrypt_padded_mut::<Pkcs7>(&mut self.raw[HEAD..], plain_len).expect("room for the padding");
        let mut mac = self.mac.clone();
        mac.update(&self.raw);
        self.raw.extend_from_slice(&mac.finalize().into_bytes());
        let start = out.len();
        out.resize(start + token_len(plain_len), 0);
        // The output was sized by `token_len`.
        #[allow(clippy::expect_used)]
        let n = URL_SAFE.encode_slice(&self.raw, &mut out[start..]).expect("sized by token_len");
        out.truncate(start + n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE as B64;

    fn fernet(key: &[u8; 32]) -> fernet::Fernet {
        fernet::Fernet::new(&B64.encode(key)).expect("valid key")
    }

    #[test]
    fn tokens_open_with_the_fernet_crate_at_every_length() {
        let key = [7u8; 32];
        let mut s = TokenSealer::new(&key);
        let f = fernet(&key);
        for len in 0..100 {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = b"prefix".to_vec();
            s.seal_into(0, &[&msg[..len / 2], &msg[len / 2..]], &mut out);
            assert_eq!(out.len(), 6 + token_len(len), "length {len}");
            let token = std::str::from_utf8(&out[6..]).expect("base64");
            assert_eq!(f.decrypt_at_time(token, None, 0).expect("opens"), msg, "length {len}");
        }
    }

    #[test]
    fn ivs_never_repeat_and_a_wrong_key_does_not_open() {
        let key = [1u8; 32];
        let mut s = TokenSealer::new(&key);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        s.seal_into(0, &[b"same"], &mut a);
        s.seal_into(0, &[b"same"], &mut b);
        assert_ne!(a, b, "same message, different IV");
        let token = std::str::from_utf8(&a).expect("base64");
        assert!(fernet(&[2u8; 32]).decrypt_at_time(token, None, 0).is_err());
        // Two sealers under one key draw different IV keys.
        let mut t = TokenSealer::new(&key);
        let mut c = Vec::new();
        t.seal_into(0, &[b"same"], &mut c);
        assert_ne!(a, c);
    }
}
