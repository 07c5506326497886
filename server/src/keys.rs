//! The server's secret files: the pre-shared Fernet key and the RSA
//! identity. Both are created with mode 0600 when missing, and the server
//! refuses to use one that group or others can read.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use protocol::crypto::{Identity, Psk};
use thiserror::Error;

/// A key file could not be used.
#[derive(Debug, Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is readable by group or others.
    #[error("{path} is readable by group or others (mode {mode:04o}); run: chmod 600 {path}")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The contents are not a key.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: protocol::KeyError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io { path: path.to_owned(), source }
}

/// Writes `contents` to `path` with mode 0600, atomically (temp file, rename).
///
/// # Errors
///
/// [`KeyFileError::Io`] if the directory is not writable.
pub fn write_secret(path: &Path, contents: &str) -> Result<(), KeyFileError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(contents.as_bytes()).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Reads a secret file after checking that only its owner can read it.
fn read_secret(path: &Path) -> Result<String, KeyFileError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions { path: path.to_owned(), mode });
    }
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// Whether a file exists (a broken path is reported by the read after).
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Loads the PSK, creating the file with a new key when missing. The bool
/// says whether it was created.
///
/// # Errors
///
/// Unreadable, too-open or invalid files.
pub fn load_or_create_psk(path: &Path) -> Result<(Psk, bool), KeyFileError> {
    let created = !exists(path);
    if created {
        write_secret(path, &format!("{}\n", Psk::generate()))?;
    }
    let text = read_secret(path)?;
    let psk = Psk::parse(&text).map_err(|source| KeyFileError::Invalid { path: path.to_owned(), source })?;
    Ok((psk, created))
}

/// Loads the PSK from an existing file (a reload after `gen-key`).
///
/// # Errors
///
/// Missing, unreadable, too-open or invalid files.
pub fn load_psk(path: &Path) -> Result<Psk, KeyFileError> {
    let text = read_secret(path)?;
    Psk::parse(&text).map_err(|source| KeyFileError::Invalid { path: path.to_owned(), source })
}

/// Writes a new PSK to `path` and returns its text form.
///
/// # Errors
///
/// [`KeyFileError::Io`] if it cannot be written.
pub fn generate_psk(path: &Path) -> Result<String, KeyFileError> {
    let key = Psk::generate();
    write_secret(path, &format!("{key}\n"))?;
    Ok(key)
}

/// Loads the identity, generating and saving a new one when missing. The
/// bool says whether it was created.
///
/// # Errors
///
/// Unreadable, too-open or invalid files, or a failed key generation.
pub fn load_or_create_identity(path: &Path) -> Result<(Identity, bool), KeyFileError> {
    let invalid = |source| KeyFileError::Invalid { path: path.to_owned(), source };
    if !exists(path) {
        let id = Identity::generate().map_err(invalid)?;
        write_secret(path, &id.to_pem().map_err(invalid)?)?;
        return Ok((id, true));
    }
    let pem = read_secret(path)?;
    Ok((Identity::from_pem(&pem).map_err(invalid)?, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/server.key");
        let (_, created) = load_or_create_psk(&p).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&p).expect("read");
        let (_, created) = load_or_create_psk(&p).expect("reuse");
        assert!(!created);
        assert_eq!(std::fs::read_to_string(&p).expect("read"), text);
    }

    #[test]
    fn readable_key_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("server.key");
        std::fs::write(&p, Psk::generate()).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load_or_create_psk(&p).expect_err("too open").to_string();
        assert!(e.contains("chmod 600") && e.contains("0644"), "{e}");
    }

    #[test]
    fn garbage_key_file_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("server.key");
        write_secret(&p, "not a key").expect("write");
        let e = load_or_create_psk(&p).expect_err("invalid").to_string();
        assert!(e.contains("Fernet key"), "{e}");
    }
}
