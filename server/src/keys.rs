//! The server's secret files: the pre-shared Fernet key and the RSA
//! identity. Both are created with mode 0600 when missing, and the server
//! refuses to use one that group or others can read.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
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

/// Writes `contents` to `path` with mode 0600, atomically: into a new
/// temporary file in the same directory (random name, created exclusively,
/// so a symlink planted there is never followed), synced, then renamed over
/// `path` (which replaces a symlink at `path` rather than writing through it).
///
/// # Errors
///
/// [`KeyFileError::Io`] if the directory is not writable.
pub fn write_secret(path: &Path, contents: &str) -> Result<(), KeyFileError> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            dir
        }
        None => Path::new("."),
    };
    let name = path.file_name().map_or_else(|| "key".into(), |n| n.to_string_lossy());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.write_all(contents.as_bytes()).and_then(|()| tmp.as_file().sync_all()).map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| KeyFileError::Io { path: path.to_owned(), source: e.error })?;
    Ok(())
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

    /// Issue 13 item 10: someone who can write to the key's directory
    /// plants symlinks at the old predictable temporary name and at the key
    /// itself; `gen-key` follows neither.
    #[test]
    fn planted_symlinks_are_not_followed() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("server.key");
        let (victim_tmp, victim_key) = (dir.path().join("victim-tmp"), dir.path().join("victim-key"));
        std::fs::write(&victim_tmp, "untouched").expect("write");
        std::fs::write(&victim_key, "untouched").expect("write");
        std::fs::set_permissions(&victim_key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let old_tmp = p.with_extension(format!("tmp{}", std::process::id()));
        symlink(&victim_tmp, &old_tmp).expect("plant");
        symlink(&victim_key, &p).expect("plant");
        let key = generate_psk(&p).expect("written");
        let meta = std::fs::symlink_metadata(&p).expect("exists");
        assert!(meta.file_type().is_file(), "the key is a regular file, not the planted link");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&p).expect("read").trim(), key);
        assert_eq!(std::fs::read_to_string(&victim_tmp).expect("read"), "untouched");
        assert_eq!(std::fs::read_to_string(&victim_key).expect("read"), "untouched");
        assert_eq!(std::fs::metadata(&victim_key).expect("meta").permissions().mode() & 0o777, 0o644);
        assert!(std::fs::symlink_metadata(&old_tmp).expect("still there").file_type().is_symlink());
        // Nothing else is left behind: the two victims, the planted link, the key.
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 4);
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
