//! Error types of the protocol crate.

use thiserror::Error;

/// A frame could not be decoded or encoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced (or attempted) payload length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
}

/// A key or key file could not be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The pre-shared key is not 32 bytes of URL-safe base64.
    #[error("not a valid Fernet key (expected 44 characters of URL-safe base64 encoding 32 bytes)")]
    InvalidPsk,
    /// The identity key is not a PKCS#8 PEM RSA private key.
    #[error("not a valid RSA private key in PKCS#8 PEM form: {0}")]
    InvalidIdentity(String),
    /// A fingerprint is not `SHA256:` followed by unpadded base64 of 32 bytes.
    #[error("not a valid fingerprint (expected SHA256: followed by 43 base64 characters)")]
    InvalidFingerprint,
    /// Key generation or signing failed inside the RSA library.
    #[error("RSA operation failed: {0}")]
    Rsa(String),
}

/// A sealed frame failed to open.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The token is not valid under the key (altered, truncated, or from
    /// someone without the key).
    #[error("frame failed authentication (altered, truncated or forged)")]
    Unauthentic,
    /// The frame authenticated but carries the wrong sequence number: it was
    /// replayed, reordered, or a frame before it was dropped.
    #[error("frame out of sequence: expected #{expected}, got #{got} (replayed, reordered or dropped)")]
    OutOfSequence {
        /// The sequence number the receiver expected next.
        expected: u64,
        /// The sequence number the frame carried.
        got: u64,
    },
    /// The frame is too short to hold a sequence number.
    #[error("frame too short to carry a sequence number")]
    Truncated,
}

/// The handshake failed. Each variant says which side noticed what.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The server refused our first frame: we do not hold its pre-shared key.
    #[error("the server refused the handshake: wrong server key")]
    WrongKey,
    /// The client's first frame did not open under the pre-shared key, or
    /// did not carry this connection's challenge.
    #[error("client failed the pre-shared key check")]
    PskCheckFailed,
    /// The two ends speak different protocol versions.
    #[error("protocol version mismatch: we speak v{ours}, the peer speaks v{theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// The server's RSA-PSS signature over the transcript does not verify.
    #[error("the server's signature over the handshake does not verify")]
    BadSignature,
    /// The peer's ephemeral key is weak (all-zero shared secret).
    #[error("the peer sent a weak ephemeral key")]
    WeakKey,
    /// A handshake frame is malformed.
    #[error("malformed handshake frame: {0}")]
    Malformed(&'static str),
    /// A frame arrived when the handshake was not expecting one.
    #[error("unexpected handshake frame in state {0}")]
    Unexpected(&'static str),
    /// The server holds our key but asks us to come back later (too many
    /// handshakes or failed passwords from our address, or too many logins
    /// in progress).
    #[error("the server is busy; retry after {} ms", .0.as_millis())]
    RetryAfter(std::time::Duration),
}
