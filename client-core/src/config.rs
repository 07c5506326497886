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
//! keys_dir = "/path/to/keys"     # keys servers issued to this client
//! input = "default"              # voice: device name, FILE.wav or "null"
//! output = "default"
//! aec = true                     # echo cancellation (microphone and speakers only)
//! denoise = true
//! vad_threshold = 0.5            # 0 transmits always
//! bitrate = 32000
//! push_to_talk = "F1"            # client-iced only; unset: voice activation
//! ```
//!
//! [`ClientConfig::save`] writes the table back (the GUI's "remember me"
//! and settings), keeping the file's other tables, readable only by the
//! user.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// The `[client]` table. Relative paths are resolved against the file's
/// directory when loaded.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
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
    /// Where to keep the keys servers issue to this client (default:
    /// [`crate::key_store::default_dir`]).
    pub keys_dir: Option<PathBuf>,
    /// Voice input: a device name, `default`, `FILE.wav` or `null`.
    pub input: Option<String>,
    /// Voice output: a device name, `default`, `FILE.wav` or `null`.
    pub output: Option<String>,
    /// Echo cancellation where the speakers can be heard by the
    /// microphone (default on).
    pub aec: Option<bool>,
    /// Noise suppression on the microphone (default on).
    pub denoise: Option<bool>,
    /// Speech probability at which voice activation opens (0..1).
    pub vad_threshold: Option<f32>,
    /// Opus bitrate on a clean link, bits per second.
    pub bitrate: Option<i32>,
    /// The GUI's push-to-talk key (a key name such as `F1` or `Space`).
    pub push_to_talk: Option<String>,
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
    /// The voice options this table gives (defaults for absent keys; out
    /// of range values clamped), the one mapping every front end uses.
    /// Controls and push-to-talk are the front end's to add.
    pub fn voice_options(&self) -> crate::voice::VoiceOptions {
        use crate::audio::device::{Input, Output};
        use crate::audio::pipeline::SendConfig;
        let d = SendConfig::default();
        crate::voice::VoiceOptions {
            input: Input::parse(self.input.as_deref().unwrap_or("default")),
            output: Output::parse(self.output.as_deref().unwrap_or("default")),
            send: SendConfig {
                aec: self.aec.unwrap_or(d.aec),
                denoise: self.denoise.unwrap_or(d.denoise),
                vad_threshold: self.vad_threshold.filter(|v| v.is_finite()).unwrap_or(d.vad_threshold).clamp(0.0, 1.0),
                bitrate: self.bitrate.unwrap_or(d.bitrate).clamp(6_000, 128_000),
                protect: d.protect,
            },
            ..crate::voice::VoiceOptions::default()
        }
    }

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
        for p in [&mut cfg.key_file, &mut cfg.known_servers, &mut cfg.keys_dir].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    /// Writes this table as the `[client]` of `path`: set keys are updated
    /// in place, unset ones removed; other tables, comments and layout are
    /// kept. The file is replaced atomically by one only the user can read
    /// (0600 on Unix), since it may hold a password or key.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] if the existing file is not TOML (it is then
    /// left alone) or cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let err = |message: String| ClientError::Config { path: path.to_owned(), message };
        let mut doc: toml_edit::DocumentMut = match std::fs::read_to_string(path) {
            Ok(text) => text.parse().map_err(|e: toml_edit::TomlError| err(e.message().trim().to_owned()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml_edit::DocumentMut::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        let values = toml::Table::try_from(self).map_err(|e| err(e.to_string()))?;
        let table = doc
            .entry("client")
            .or_insert_with(toml_edit::table)
            .as_table_mut()
            .ok_or_else(|| err("`client` is not a table".into()))?;
        for key in KEYS {
            match values.get(*key) {
                Some(toml::Value::String(v)) => table[*key] = toml_edit::value(v.as_str()),
                Some(toml::Value::Integer(v)) => table[*key] = toml_edit::value(*v),
                Some(toml::Value::Float(v)) => table[*key] = toml_edit::value(*v),
                Some(toml::Value::Boolean(v)) => table[*key] = toml_edit::value(*v),
                Some(other) => return Err(err(format!("{key}: cannot write a {}", other.type_str()))),
                None => {
                    table.remove(key);
                }
            }
        }
        crate::files::replace_private(path, doc.to_string().as_bytes()).map_err(|e| err(e.to_string()))
    }
}

/// Every key of [`ClientConfig`], as written.
const KEYS: &[&str] = &[
    "server",
    "user",
    "password",
    "key",
    "key_file",
    "fingerprint",
    "known_servers",
    "keys_dir",
    "input",
    "output",
    "aec",
    "denoise",
    "vad_threshold",
    "bitrate",
    "push_to_talk",
];

#[cfg(test)]
mod tests {
    #[test]
    fn voice_options_map_the_table_with_defaults_and_clamps() {
        use crate::audio::device::{Input, Output};
        let d = ClientConfig::default().voice_options();
        assert_eq!(d.input, Input::parse("default"));
        assert!(d.send.aec && d.send.denoise && d.send.protect);
        let c = ClientConfig {
            input: Some("speech.wav".into()),
            output: Some("null".into()),
            aec: Some(false),
            denoise: Some(false),
            vad_threshold: Some(7.0),
            bitrate: Some(1),
            ..ClientConfig::default()
        };
        let o = c.voice_options();
        assert!(matches!(o.input, Input::Wav(_)));
        assert_eq!(o.output, Output::parse("null"));
        assert!(!o.send.denoise && !o.send.aec);
        assert_eq!(o.send.vad_threshold, 1.0);
        assert_eq!(o.send.bitrate, 6_000);
    }

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

    #[test]
    fn save_keeps_other_tables_round_trips_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub").join("config.toml");
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, "# mine\n[server]\nbind = \"x\"\n[client]\n# who I am\nuser = \"old\"\nkey = \"k\"\n")
            .expect("write");
        let cfg = ClientConfig {
            server: Some("127.0.0.1:7878".into()),
            user: Some("alice".into()),
            password: Some("pw".into()),
            denoise: Some(false),
            vad_threshold: Some(0.25),
            push_to_talk: Some("F1".into()),
            ..ClientConfig::default()
        };
        cfg.save(&p).expect("saves");
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(text.contains("bind = \"x\"") && text.contains("# mine") && text.contains("# who I am"), "{text}");
        assert!(!text.contains("\"old\"") && !text.contains("key ="), "{text}");
        assert_eq!(ClientConfig::load(Some(&p)).expect("loads"), cfg);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let all = ClientConfig {
            key: Some("k".into()),
            key_file: Some("/f".into()),
            fingerprint: Some("f".into()),
            known_servers: Some("/k".into()),
            keys_dir: Some("/kd".into()),
            input: Some("i".into()),
            output: Some("o".into()),
            bitrate: Some(1),
            aec: Some(true),
            ..cfg.clone()
        };
        let written = toml::Table::try_from(&all).expect("serializes");
        assert_eq!(written.len(), KEYS.len(), "KEYS lists every field");
        all.save(&p).expect("saves");
        assert_eq!(ClientConfig::load(Some(&p)).expect("loads"), all);
        std::fs::write(&p, "not toml [").expect("write");
        assert!(cfg.save(&p).is_err(), "a broken file is not overwritten");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "not toml [");
    }

    /// Issue 13 item 10: a symlink planted at the old temporary name is not
    /// written through.
    #[cfg(unix)]
    #[test]
    fn save_does_not_follow_a_planted_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("config.toml");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").expect("write");
        std::os::unix::fs::symlink(&victim, p.with_extension("toml.tmp")).expect("plant");
        let cfg = ClientConfig { password: Some("pw".into()), ..ClientConfig::default() };
        cfg.save(&p).expect("saves");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "untouched");
        assert_eq!(ClientConfig::load(Some(&p)).expect("loads"), cfg);
    }
}
