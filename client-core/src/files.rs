//! Replacing the client's own files (the config, known servers) safely:
//! the one way this crate writes a file.

use std::io::Write as _;
use std::path::Path;

/// Replaces `path` with `bytes`, readable only by the user (0600 on Unix):
/// written into a new temporary file in the same directory (random name,
/// created exclusively, so a symlink planted there is never followed),
/// synced, then renamed over `path`, which replaces a symlink at `path`
/// instead of writing through it. Creates the directory if needed.
///
/// # Errors
///
/// The directory cannot be created or written.
pub(crate) fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir
        }
        None => Path::new("."),
    };
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)?;
    // tempfile creates its files 0600 on Unix; said here rather than assumed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Creates the directory 0700, or makes an existing one 0700; refuses one
/// that is not a directory (a symlink planted there, say).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let meta = std::fs::symlink_metadata(dir)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other("not a directory"));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use super::*;

    /// Issue 13 item 10: symlinks planted at the target and at the old
    /// predictable temporary names are not followed.
    #[test]
    fn planted_symlinks_are_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").expect("write");
        let target = dir.path().join("config.toml");
        for planted in
            [target.with_extension("toml.tmp"), target.with_extension(format!("tmp.{}.0", std::process::id()))]
        {
            symlink(&victim, &planted).expect("plant");
        }
        symlink(&victim, &target).expect("plant");
        replace_private(&target, b"mine").expect("written");
        let meta = std::fs::symlink_metadata(&target).expect("exists");
        assert!(meta.file_type().is_file(), "a regular file, not the planted link");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&target).expect("read"), b"mine");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "untouched");
        // Replacing again over a regular file works and leaves no temporaries.
        replace_private(&target, b"again").expect("written");
        assert_eq!(std::fs::read(&target).expect("read"), b"again");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 4);
    }
}
