//! Trust on first use: the fingerprints of servers seen before, keyed by
//! the address as the user typed it, in a plain text file (one
//! `ADDRESS SHA256:...` per line) under the user's data directory.

use std::path::{Path, PathBuf};

use protocol::crypto::Fingerprint;

use crate::error::ClientError;

/// The default file: `$XDG_DATA_HOME/socket-chatroom/known_servers`
/// (usually `~/.local/share/socket-chatroom/known_servers`).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "socket-chatroom").map(|d| d.data_dir().join("known_servers"))
}

/// The known-servers file.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
}

/// What the file says about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Never seen.
    Unknown,
    /// Pinned to this fingerprint.
    Pinned(Fingerprint),
}

impl KnownServers {
    /// The file at `path` (it need not exist yet).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Vec<(String, String)>, ClientError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        Ok(text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.trim().split_once(char::is_whitespace))
            .map(|(a, f)| (a.to_owned(), f.trim().to_owned()))
            .collect())
    }

    fn err(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::KnownServers { path: self.path.clone(), message: e.to_string() }
    }

    /// What is pinned for `address`.
    ///
    /// # Errors
    ///
    /// An unreadable file, or a corrupt entry for this address.
    pub fn lookup(&self, address: &str) -> Result<Lookup, ClientError> {
        match self.read()?.into_iter().find(|(a, _)| a == address) {
            None => Ok(Lookup::Unknown),
            Some((_, f)) => {
                Fingerprint::parse(&f).map(Lookup::Pinned).map_err(|e| self.err(format!("entry for {address}: {e}")))
            }
        }
    }

    /// Pins `address` to `fingerprint`, replacing any earlier entry.
    ///
    /// # Errors
    ///
    /// The file or its directory cannot be written.
    pub fn pin(&self, address: &str, fingerprint: Fingerprint) -> Result<(), ClientError> {
        let mut lines: Vec<String> = match std::fs::read_to_string(&self.path) {
            Ok(t) => t.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                vec!["# Socket Chatroom known servers: ADDRESS FINGERPRINT (trust on first use)".to_owned()]
            }
            Err(e) => return Err(self.err(e)),
        };
        lines.retain(|l| l.split_whitespace().next() != Some(address));
        lines.push(format!("{address} {fingerprint}"));
        crate::files::replace_private(&self.path, (lines.join("\n") + "\n").as_bytes()).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_replace_and_survive_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = KnownServers::new(dir.path().join("a/known_servers"));
        let (f1, f2) = (Fingerprint::of_der(b"one"), Fingerprint::of_der(b"two"));
        assert_eq!(ks.lookup("h:1").expect("empty"), Lookup::Unknown);
        ks.pin("h:1", f1).expect("pin");
        ks.pin("other:2", f2).expect("pin");
        assert_eq!(ks.lookup("h:1").expect("read"), Lookup::Pinned(f1));
        ks.pin("h:1", f2).expect("re-pin");
        assert_eq!(ks.lookup("h:1").expect("read"), Lookup::Pinned(f2));
        assert_eq!(ks.lookup("other:2").expect("read"), Lookup::Pinned(f2));
        assert_eq!(ks.lookup("h").expect("read"), Lookup::Unknown);
    }

    /// Issue 13 item 10: symlinks planted at the old predictable temporary
    /// names are not written through.
    #[cfg(unix)]
    #[test]
    fn pin_does_not_follow_planted_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_servers");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").expect("write");
        for n in 0..16 {
            let planted = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
            std::os::unix::fs::symlink(&victim, planted).expect("plant");
        }
        let ks = KnownServers::new(path.clone());
        ks.pin("h:1", Fingerprint::of_der(b"one")).expect("pin");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "untouched");
        assert!(std::fs::symlink_metadata(&path).expect("exists").file_type().is_file());
        assert_eq!(ks.lookup("h:1").expect("read"), Lookup::Pinned(Fingerprint::of_der(b"one")));
    }
}
