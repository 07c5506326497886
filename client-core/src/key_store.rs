//! Keys servers issued to this client (issue 17): after a login through an
//! invite, or with a server's previous main key during a rotation, the
//! server hands the client a key of its own, kept here and used for every
//! later connection to that server.
//!
//! One file per server address (as typed, or the first address of an
//! invite link) in the keys directory
//! (`~/.local/share/socket-chatroom/keys` by default, mode 0700):
//! `<address>-<hash>.key`, the address with every character other than
//! letters, digits, `.` and `-` replaced by `_`, and `<hash>` 8 hex digits
//! of SHA-256 over the address as typed (so two addresses never share a
//! file). The file is 0600, replaced atomically, and reads:
//!
//! ```text
//! # Socket Chatroom: the key HOST:PORT issued to this client (a secret)
//! server HOST:PORT
//! id 0123456789abcdef
//! via fedcba9876543210
//! key <the key's text form>
//! ```
//!
//! `via` is the id of the key the client held when this one was issued
//! (the invite's, or the previous main key's): the same invite link given
//! again uses the issued key, another one replaces it.

use std::io;
use std::path::{Path, PathBuf};

use protocol::crypto::{KeyId, Psk, key_id_hex, parse_key_id};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// The default keys directory: `$XDG_DATA_HOME/socket-chatroom/keys`
/// (usually `~/.local/share/socket-chatroom/keys`).
pub fn default_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "socket-chatroom").map(|d| d.data_dir().join("keys"))
}

/// The file that holds the key issued by `server` (the address as typed)
/// under `dir`.
pub fn path_for(dir: &Path, server: &str) -> PathBuf {
    let readable: String = server
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    let digest = Sha256::digest(server.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{readable}-{hash}.key"))
}

/// Why an issued key cannot be kept or read.
#[derive(Debug, Error)]
pub enum KeyStoreError {
    /// The directory or file cannot be used.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not one this client wrote (or was damaged).
    #[error("{path} holds no valid key")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
}

/// A key a server issued, as kept on disk.
#[derive(Clone)]
pub struct IssuedKey {
    /// The key (a secret; never shown by `Debug`).
    pub key: Psk,
    /// The id of the key held when it was issued (an invite's, or a
    /// previous main key's), if known.
    pub via: Option<KeyId>,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("id", &key_id_hex(&self.key.id()))
            .field("via", &self.via.as_ref().map(key_id_hex))
            .finish_non_exhaustive()
    }
}

/// One server's issued-key file.
#[derive(Debug, Clone)]
pub struct KeyStore {
    server: String,
    path: PathBuf,
}

impl KeyStore {
    /// The file for `server` (the address as typed) under `dir`; nothing
    /// is created until [`KeyStore::save`].
    pub fn new(dir: &Path, server: &str) -> Self {
        Self { server: server.to_owned(), path: path_for(dir, server) }
    }

    /// Where the key is (or would be) kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key kept for this server, if any.
    ///
    /// # Errors
    ///
    /// [`KeyStoreError::Io`] for a file that exists but cannot be read;
    /// [`KeyStoreError::Corrupt`] for one without a valid key.
    pub fn load(&self) -> Result<Option<IssuedKey>, KeyStoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KeyStoreError::Io { path: self.path.clone(), source }),
        };
        let (mut key, mut via) = (None, None);
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            match line.split_once(char::is_whitespace) {
                Some(("key", k)) => key = Psk::parse(k).ok(),
                Some(("via", v)) => via = parse_key_id(v),
                _ => {}
            }
        }
        let key = key.ok_or_else(|| KeyStoreError::Corrupt { path: self.path.clone() })?;
        Ok(Some(IssuedKey { key, via }))
    }

    /// Keeps `key` (issued while holding the key `via`), replacing any
    /// earlier one: written to a fresh 0600 file in a 0700 directory, then
    /// renamed over the old one.
    ///
    /// # Errors
    ///
    /// [`KeyStoreError::Io`] when the directory or file cannot be written.
    pub fn save(&self, key: &Psk, via: Option<KeyId>) -> Result<(), KeyStoreError> {
        let io_err = |source| KeyStoreError::Io { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::create_private_dir(dir).map_err(io_err)?;
        }
        // The address goes in a comment and a field: keep it one line.
        let server: String = self.server.chars().filter(|c| !c.is_control()).collect();
        let mut text = format!(
            "# Socket Chatroom: the key {server} issued to this client (a secret)\nserver {server}\nid {}\n",
            key_id_hex(&key.id())
        );
        if let Some(via) = via {
            text.push_str(&format!("via {}\n", key_id_hex(&via)));
        }
        text.push_str(&format!("key {}\n", key.expose_text()));
        crate::files::replace_private(&self.path, text.as_bytes()).map_err(io_err)
    }

    /// Forgets the key (it was revoked).
    ///
    /// # Errors
    ///
    /// [`KeyStoreError::Io`] when the file exists and cannot be removed.
    pub fn remove(&self) -> Result<(), KeyStoreError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(KeyStoreError::Io { path: self.path.clone(), source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Psk {
        Psk::parse(&Psk::generate()).expect("a fresh key parses")
    }

    #[test]
    fn a_key_survives_a_reload_and_is_replaced_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::new(&dir.path().join("keys"), "[2001:db8::1]:7878");
        assert!(store.load().expect("absent is fine").is_none());
        let (first, via) = (key(), key().id());
        store.save(&first, Some(via)).expect("save");
        let loaded = store.load().expect("read").expect("kept");
        assert_eq!((loaded.key.id(), loaded.via), (first.id(), Some(via)));
        let second = key();
        store.save(&second, None).expect("save again");
        let loaded = store.load().expect("read").expect("kept");
        assert_eq!((loaded.key.id(), loaded.via), (second.id(), None));
        store.remove().expect("remove");
        assert!(store.load().expect("read").is_none());
        store.remove().expect("removing nothing is fine");
    }

    #[test]
    fn each_address_has_its_own_readable_file() {
        let dir = Path::new("/k");
        let a = path_for(dir, "chat.example.org:7878");
        let name = a.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        assert!(name.starts_with("chat.example.org_7878-") && name.ends_with(".key"), "{name}");
        // Same readable form, different files.
        assert_ne!(path_for(dir, "a:1"), path_for(dir, "a_1"));
        let odd = path_for(dir, "../../etc/passwd:1");
        assert_eq!(odd.parent(), Some(dir), "no path traversal: {}", odd.display());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::new(dir.path(), "h:1");
        std::fs::write(store.path(), "key not-a-key\n").expect("write");
        assert!(matches!(store.load(), Err(KeyStoreError::Corrupt { .. })));
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let k = key();
        let issued = IssuedKey { key: k.clone(), via: None };
        let shown = format!("{issued:?} {:?}", KeyStore::new(Path::new("/k"), "h:1"));
        assert!(!shown.contains(k.expose_text()), "{shown}");
        assert!(shown.contains(&key_id_hex(&k.id())), "{shown}");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let store = KeyStore::new(&keys, "h:1");
        store.save(&key(), None).expect("save");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(&keys), 0o700);
    }
}
