//! The resume token kept on disk, one per server and name, so a client that
//! crashed or was restarted takes its held name back; and the lock that
//! keeps two processes of one user apart (the second is told the name is
//! taken rather than silently replacing the first).
//!
//! Files live in the state directory (`~/.local/share/socket-chatroom/
//! sessions` by default): `<id>.token` (mode 0600, replaced atomically) and
//! `<id>.lock` (held with an exclusive advisory lock while the client runs),
//! where `<id>` is a hash of the server address as typed and the name's
//! comparison key.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// Why the store cannot be used.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another process of this user holds the lock for this server and name.
    #[error("the name {name:?} is taken: another client on this machine is using it ({lock})")]
    InUse {
        /// The name.
        name: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// The state directory or its files cannot be used.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The default state directory for resume tokens.
pub fn default_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "socket-chatroom").map(|d| d.data_dir().join("sessions"))
}

/// One server-and-name's token file, locked for this process.
#[derive(Debug)]
pub struct ResumeStore {
    token: PathBuf,
    /// Held open (and locked) for as long as the store lives.
    _lock: File,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

impl ResumeStore {
    /// Opens (creating `dir`, mode 0700, if needed) and locks the store for
    /// `server` (as typed) and `name`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InUse`] when another process holds it;
    /// [`StoreError::Io`] when the directory or lock file cannot be made.
    pub fn open(dir: &Path, server: &str, name: &str) -> Result<Self, StoreError> {
        crate::files::create_private_dir(dir).map_err(io_err(dir))?;
        let digest = Sha256::digest(format!("{server}\n{}", protocol::message::name_key(name)).as_bytes());
        let id: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        let lock_path = dir.join(format!("{id}.lock"));
        let lock = private_options().read(true).write(true).open(&lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::InUse { name: name.to_owned(), lock: lock_path });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        Ok(Self { token: dir.join(format!("{id}.token")), _lock: lock })
    }

    /// The token an earlier process left, if any (and if it looks like one).
    pub fn load(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.token).ok()?;
        let token = text.trim();
        let plausible = !token.is_empty()
            && token.len() <= 256
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/'));
        plausible.then(|| token.to_owned())
    }

    /// Keeps `token` for the next process (written to a fresh temporary file
    /// in the same directory, then renamed over the old one).
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    pub fn save(&self, token: &str) -> Result<(), StoreError> {
        // Exclusively created, mode 0600, random name: the crate's one way.
        crate::files::replace_private(&self.token, token.as_bytes()).map_err(io_err(&self.token))
    }

    /// Forgets the token (after a polite quit or a kick: nothing to resume).
    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.token);
    }
}

/// Opens (creating, 0600) a file of ours, never through a symlink planted
/// at its name.
fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_survives_the_process_and_a_second_holder_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ResumeStore::open(dir.path(), "host:7878", "Alice").expect("open");
        assert_eq!(store.load(), None);
        store.save("tok+EN/1").expect("save");
        assert_eq!(store.load().as_deref(), Some("tok+EN/1"));
        // Same server, same name compared as names are: locked.
        match ResumeStore::open(dir.path(), "host:7878", "alice") {
            Err(StoreError::InUse { .. }) => {}
            other => panic!("expected in use, got {other:?}"),
        }
        // Another name or server is another store.
        assert!(ResumeStore::open(dir.path(), "host:7878", "bob").is_ok());
        assert!(ResumeStore::open(dir.path(), "other:7878", "alice").is_ok());
        drop(store);
        let again = ResumeStore::open(dir.path(), "host:7878", "alice").expect("free again");
        assert_eq!(again.load().as_deref(), Some("tok+EN/1"));
        again.clear();
        assert_eq!(again.load(), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_token_file_is_private_and_junk_is_ignored() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ResumeStore::open(&dir.path().join("sessions"), "h:1", "a").expect("open");
        store.save("abc").expect("save");
        let mode = std::fs::metadata(&store.token).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(dir.path().join("sessions")).expect("meta").permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
        std::fs::write(&store.token, "\u{1b}[2Jnot a token\n").expect("write");
        assert_eq!(store.load(), None);
    }

    #[cfg(unix)]
    #[test]
    fn planted_symlinks_are_not_followed_and_a_loose_directory_is_tightened() {
        use std::os::unix::fs::{PermissionsExt as _, symlink};
        let dir = tempfile::tempdir().expect("tempdir");
        let sessions = dir.path().join("sessions");
        std::fs::create_dir(&sessions).expect("mkdir");
        std::fs::set_permissions(&sessions, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // A lock file planted as a symlink to someone else's file.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").expect("write");
        let probe = ResumeStore::open(&sessions, "h:1", "a").expect("open");
        let lock = probe.token.with_extension("lock");
        drop(probe);
        std::fs::remove_file(&lock).expect("rm");
        symlink(&victim, &lock).expect("plant");
        assert!(ResumeStore::open(&sessions, "h:1", "a").is_err(), "opened through a planted symlink");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "untouched");
        let mode = std::fs::metadata(&sessions).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A symlink in place of the directory is refused.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("mkdir");
        let linked = dir.path().join("linked");
        symlink(&elsewhere, &linked).expect("plant");
        assert!(ResumeStore::open(&linked, "h:1", "b").is_err());
    }
}
