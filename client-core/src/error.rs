//! The client library's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Errors from client commands and configuration.
#[derive(Debug, Error, Clone)]
pub enum ClientError {
    /// The connection has ended; commands go nowhere.
    #[error("not connected")]
    NotConnected,
    /// A message is over the server's size limit (it was not sent, or cut).
    #[error("message is {len} bytes, over the server's limit of {max}")]
    TooLarge {
        /// Its length in UTF-8 bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message is empty or holds control characters.
    #[error("{0}")]
    Invalid(String),
    /// The configuration file could not be read or parsed.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key or fingerprint is malformed.
    #[error(transparent)]
    Key(#[from] protocol::KeyError),
    /// The known-servers file could not be read or written.
    #[error("known servers file {path}: {message}")]
    KnownServers {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
