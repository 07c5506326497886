//! The client's configuration: the `[client]` table of a TOML file (the
//! user's own, or the repository's `config.toml`). Every key is optional
//! and supplies a default for the matching command-line flag.
//!
//! ```toml
//! [client]
//! server = "chat.example.org:7878"
//! user = "alice"
//! key_file = "server.key"        # or: key = "..." (then keep the file 0600)
//! fingerprint = "SHA256:..."
//! password = "..."
//! known_servers = "/path/to/known_servers"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ClientError;

/// The `[client]` table. Relative paths are resolved against the file's
/// directory when loaded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `HOST:PORT` of the server.
    pub server: Option<String>,
    /// Username.
    pub user: Option<String>,
    /// Server password.
    pub password: Option<String>,
    /// The server's pre-shared key, inline.
    pub key: Option<String>,
    /// A file holding the server's pre-shared key.
    pub key_file: Option<PathBuf>,
    /// The server identity to pin (`SHA256:...`).
    pub fingerprint: Option<String>,
    /// Where to keep known server identities.
    pub known_servers: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    client: ClientConfig,
}

/// The default file: `$XDG_CONFIG_HOME/socket-chatroom/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "socket-chatroom").map(|d| d.config_dir().join("config.toml"))
}

impl ClientConfig {
    /// Loads `path`; with `None`, the default file if it exists, else an
    /// empty configuration. Tables other than `[client]` are ignored.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for an unreadable file or a bad `[client]`.
    pub fn load(path: Option<&Path>) -> Result<Self, ClientError> {
        let path = match path {
            Some(p) => p.to_owned(),
            None => match default_path() {
                Some(p) if p.exists() => p,
                _ => return Ok(Self::default()),
            },
        };
        let err = |message: String| ClientError::Config { path: path.clone(), message };
        let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| err(e.message().trim().to_owned()))?;
        let client = table.get("client").cloned().unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
        let file = File {
            client: client.try_into().map_err(|e: toml::de::Error| err(format!("[client]: {}", e.message().trim())))?,
        };
        let mut cfg = file.client;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for p in [&mut cfg.key_file, &mut cfg.known_servers].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_the_client_table_and_resolves_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "[server]\nbind = \"x\"\n[client]\nuser = \"al\"\nkey_file = \"k\"\n").expect("write");
        let c = ClientConfig::load(Some(&p)).expect("loads");
        assert_eq!(c.user.as_deref(), Some("al"));
        assert_eq!(c.key_file, Some(dir.path().join("k")));
        std::fs::write(&p, "[client]\nusr = \"al\"\n").expect("write");
        let e = ClientConfig::load(Some(&p)).expect_err("unknown key").to_string();
        assert!(e.contains("usr"), "{e}");
    }
}
