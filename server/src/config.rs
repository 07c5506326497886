//! Server configuration: the `[server]` table of `config.toml`, validated.
//!
//! Precedence: built-in defaults < the file < command-line flags. Relative
//! paths in the file resolve against the file's own directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// A configuration problem, phrased as one line naming the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown or mistyped key.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong (names the key).
        message: String,
    },
    /// A key has a value out of range.
    #[error("{path}: server.{key}: {problem}")]
    Invalid {
        /// The file (or `--bind` for the flag).
        path: String,
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: RawServer,
    /// `[[rooms]]`: the rooms the operator sets up.
    #[serde(default)]
    rooms: Vec<RawRoom>,
    /// The client's section; the server ignores it.
    #[serde(default)]
    #[allow(dead_code)]
    client: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    bind: Option<String>,
    key_file: Option<PathBuf>,
    identity_file: Option<PathBuf>,
    password: Option<String>,
    verbose: Option<bool>,
    max_clients: Option<u32>,
    max_handshakes: Option<u32>,
    max_handshakes_per_address: Option<u32>,
    max_logins_in_progress: Option<u32>,
    max_logins_in_progress_per_address: Option<u32>,
    handshake_rate_per_address: Option<u32>,
    handshake_burst_per_address: Option<u32>,
    max_clients_per_address: Option<u32>,
    max_frame_bytes: Option<u32>,
    max_message_bytes: Option<u32>,
    handshake_timeout_secs: Option<u32>,
    keepalive_secs: Option<u32>,
    idle_timeout_secs: Option<u32>,
    rate_per_sec: Option<u32>,
    rate_burst: Option<u32>,
    flood_limit: Option<u32>,
    outbound_queue: Option<u32>,
    session_threads: Option<u32>,
    write_timeout_secs: Option<u32>,
    shutdown_grace_secs: Option<u32>,
    voice_port: Option<u16>,
    voice_public_port: Option<u16>,
    metrics_bind: Option<String>,
    log_format: Option<String>,
    data_dir: Option<PathBuf>,
    default_rooms: Option<Vec<String>>,
    allow_user_rooms: Option<bool>,
    empty_room_days: Option<u32>,
    max_rooms: Option<u32>,
    history_on_join: Option<u32>,
    history_days: Option<u32>,
    key_grace_days: Option<u32>,
    public_address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    name: String,
    topic: Option<String>,
    history: Option<bool>,
    voice: Option<bool>,
    history_days: Option<u32>,
}

/// A room the operator set up in `config.toml` (`[[rooms]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// Its name (valid, see [`protocol::message::validate_room_name`]).
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// Whether its messages are stored.
    pub history: bool,
    /// Whether it has voice.
    pub voice: bool,
    /// Days its messages are kept; 0 keeps them all.
    pub history_days: u32,
}

/// The room keys of `[server]`, as the roster takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSettings {
    /// Rooms every user is in after logging in.
    pub default_rooms: Vec<String>,
    /// Users may create rooms by joining a name that does not exist.
    pub allow_user_rooms: bool,
    /// A user room with no members for this many days is removed (0: as
    /// soon as its last member leaves).
    pub empty_room_days: u32,
    /// Most rooms at once.
    pub max_rooms: u32,
    /// Stored messages delivered when joining a room.
    pub history_on_join: u32,
    /// Days a new room keeps its messages (0: for ever).
    pub history_days: u32,
}

impl Default for RoomSettings {
    fn default() -> Self {
        Self {
            default_rooms: vec!["general".to_owned()],
            allow_user_rooms: true,
            empty_room_days: 7,
            max_rooms: 1000,
            history_on_join: 50,
            history_days: 30,
        }
    }
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address and port for TCP.
    pub bind: SocketAddr,
    /// File holding the pre-shared Fernet key (created 0600 if missing).
    pub key_file: PathBuf,
    /// File holding the RSA identity key (created 0600 if missing).
    pub identity_file: PathBuf,
    /// Optional server password.
    pub password: Option<String>,
    /// Detailed logging.
    pub verbose: bool,
    /// Most users logged in at once.
    pub max_clients: u32,
    /// Most connections waiting for their key check at once (when full, the
    /// address holding the most gives way).
    pub max_handshakes: u32,
    /// Most of those from one IP address (beyond, its own oldest gives way).
    pub max_handshakes_per_address: u32,
    /// Most connections past the key check and not yet logged in (beyond,
    /// a newcomer is told to retry after a second).
    pub max_logins_in_progress: u32,
    /// Most of those from one IP address.
    pub max_logins_in_progress_per_address: u32,
    /// RSA signatures (handshakes past the key check) per second one IP
    /// address may cost, sustained.
    pub handshake_rate_per_address: u32,
    /// Signatures one IP address may cost at once.
    pub handshake_burst_per_address: u32,
    /// Most users logged in from one IP address.
    pub max_clients_per_address: u32,
    /// Largest frame accepted, in bytes.
    pub max_frame_bytes: u32,
    /// Longest chat message, in UTF-8 bytes.
    pub max_message_bytes: u32,
    /// Time allowed from connect to login.
    pub handshake_timeout: Duration,
    /// Interval at which clients must send something.
    pub keepalive: Duration,
    /// Silence after which a session is closed.
    pub idle_timeout: Duration,
    /// Sustained messages per second per client.
    pub rate_per_sec: u32,
    /// Burst allowance per client.
    pub rate_burst: u32,
    /// Rate-limited messages within 10 s after which a client is disconnected.
    pub flood_limit: u32,
    /// Frames queued per client before it counts as a hopelessly slow reader.
    pub outbound_queue: u32,
    /// Threads that run the sessions (0: one fewer than the cores, at
    /// least one; the roster and voice relay have a thread of their own).
    pub session_threads: u32,
    /// A write to a client stalled this long ends the session.
    pub write_timeout: Duration,
    /// How long shutdown waits for clients to be told and closed.
    pub shutdown_grace: Duration,
    /// UDP port for voice; 0 means the TCP port's number.
    pub voice_port: u16,
    /// UDP port clients are told to send voice to, when a port forward maps
    /// another public port to `voice_port`; 0 means `voice_port` itself.
    pub voice_public_port: u16,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None` (the
    /// default): no metrics listener at all.
    pub metrics_bind: Option<SocketAddr>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Where the database lives (history, rooms).
    pub data_dir: PathBuf,
    /// The operator's rooms; every default room is among them.
    pub rooms: Vec<RoomConfig>,
    /// The other room keys.
    pub room_settings: RoomSettings,
    /// Days the previous main key keeps working after `server admin
    /// rotate-key` (its holders are issued keys of their own meanwhile).
    pub key_grace_days: u32,
    /// `HOST:PORT` (comma-separated: several) that invite links name;
    /// `None`: the address the server listens on.
    pub public_address: Option<String>,
}

/// Whether `a` is `HOST:PORT` with a port other than 0.
fn host_port(a: &str) -> bool {
    a.rsplit_once(':').is_some_and(|(host, p)| !host.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
}

/// How the server writes its log (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Default TCP port.
pub const DEFAULT_PORT: u16 = 7878;

/// Whether a parsed TOML value holds a non-empty `password` anywhere (the
/// server's, or a client's in the same file), however the key was spelled:
/// bare or quoted, dotted (`server.password`) or in an inline table.
fn holds_password(table: &toml::Table) -> bool {
    fn in_value(v: &toml::Value) -> bool {
        match v {
            toml::Value::Table(t) => holds_password(t),
            toml::Value::Array(a) => a.iter().any(in_value),
            _ => false,
        }
    }
    table.iter().any(|(k, v)| match (k.as_str(), v) {
        ("password", toml::Value::String(p)) => !p.is_empty(),
        ("password", _) => true,
        (_, v) => in_value(v),
    })
}

/// A config file that holds a password must be private. Checked on the
/// parsed file, not its lines, so no spelling of the key slips past; a file
/// that does not parse is refused by the parse that follows.
fn check_secret_config(path: &Path, text: &str) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(table) = toml::from_str::<toml::Table>(text) else { return Ok(()) };
    if !holds_password(&table) {
        return Ok(());
    }
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    if mode & 0o077 != 0 {
        return Err(ConfigError::Invalid {
            path: path.display().to_string(),
            key: "password",
            problem: format!(
                "the file holds a password but others can read it (mode {mode:04o}); run: chmod 600 {}",
                path.display()
            ),
        });
    }
    Ok(())
}

/// One line for a TOML error: file, line, and the key when the error sits
/// on a `key = value` line.
fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let start = e.span().map_or(0, |s| s.start.min(text.len()));
    let line = text[..start].matches('\n').count() + 1;
    let mut message = e.message().trim().replace('\n', " ");
    let here = text.lines().nth(line - 1).unwrap_or("");
    if let Some((key, _)) = here.split_once('=') {
        let table = text.lines().take(line).filter(|l| l.trim_start().starts_with('[')).last();
        let table = table.map(|t| t.trim().trim_matches(|c| c == '[' || c == ']').to_owned());
        let key = key.trim();
        message = match table {
            Some(t) if !t.is_empty() => format!("{t}.{key}: {message}"),
            _ => format!("{key}: {message}"),
        };
    }
    ConfigError::Parse { path: path.to_owned(), line, message }
}

impl Config {
    /// Loads `path` (or the defaults when `None`), then applies the flags.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file, key and problem.
    pub fn load(path: Option<&Path>, bind_flag: Option<&str>, verbose_flag: bool) -> Result<Self, ConfigError> {
        let (raw, base, shown) = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.to_owned(), source })?;
                check_secret_config(p, &text)?;
                let raw: RawFile = toml::from_str(&text).map_err(|e| parse_error(p, &text, &e))?;
                let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (raw, base, p.display().to_string())
            }
            None => (RawFile::default(), PathBuf::from("."), "defaults".to_owned()),
        };
        let s = raw.server;
        let invalid = |key, problem: String| ConfigError::Invalid { path: shown.clone(), key, problem };
        let range = |key: &'static str, v: Option<u32>, default: u32, lo: u32, hi: u32| {
            let v = v.unwrap_or(default);
            if (lo..=hi).contains(&v) { Ok(v) } else { Err(invalid(key, format!("{v} is out of range {lo}..={hi}"))) }
        };
        let bind_text = bind_flag.map(str::to_owned).or(s.bind).unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_PORT}"));
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            let key = "bind";
            let where_ = if bind_flag.is_some() { "--bind".to_owned() } else { shown.clone() };
            ConfigError::Invalid {
                path: where_,
                key,
                problem: format!("{bind_text:?} is not IP:PORT (e.g. 0.0.0.0:{DEFAULT_PORT})"),
            }
        })?;
        let resolve = |p: Option<PathBuf>, default: &str| {
            let p = p.unwrap_or_else(|| PathBuf::from(default));
            if p.is_absolute() { p } else { base.join(p) }
        };
        let password = match s.password {
            Some(p) if p.is_empty() => None,
            Some(p) if p.len() > 1024 => {
                return Err(invalid("password", "longer than 1024 bytes".into()));
            }
            other => other,
        };
        let keepalive = range("keepalive_secs", s.keepalive_secs, 20, 1, 3600)?;
        let idle = range("idle_timeout_secs", s.idle_timeout_secs, 60, 2, 86_400)?;
        if idle <= keepalive {
            return Err(invalid(
                "idle_timeout_secs",
                format!("{idle} must be greater than keepalive_secs ({keepalive})"),
            ));
        }
        let max_frame = range("max_frame_bytes", s.max_frame_bytes, 64 * 1024, 1024, 16 * 1024 * 1024)?;
        let max_message = range("max_message_bytes", s.max_message_bytes, 4096, 1, 1024 * 1024)?;
        // Worst case for a legal message: JSON escaping doubles it (quotes,
        // backslashes, newlines), then Fernet adds ~73 bytes and base64 4/3.
        let needed = (u64::from(max_message) * 2 + 300) * 4 / 3 + 64;
        if needed > u64::from(max_frame) {
            return Err(invalid(
                "max_message_bytes",
                format!("{max_message} needs max_frame_bytes of at least {needed}"),
            ));
        }
        let metrics_bind = match s.metrics_bind.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<SocketAddr>()
                    .map_err(|_| invalid("metrics_bind", format!("{text:?} is not IP:PORT (e.g. 127.0.0.1:9187)")))?,
            ),
        };
        let log_format = match s.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("log_format", format!("{other:?} is neither \"text\" nor \"json\""))),
        };
        let history_days = range("history_days", s.history_days, 30, 0, 36_500)?;
        let room_invalid = |problem: String| ConfigError::Invalid { path: shown.clone(), key: "rooms", problem };
        let mut rooms: Vec<RoomConfig> = Vec::new();
        for r in raw.rooms {
            protocol::message::validate_room_name(&r.name)
                .map_err(|e| room_invalid(format!("room name {:?}: {e}", r.name)))?;
            let keys = protocol::message::name_keys(&r.name);
            if rooms.iter().any(|o| protocol::message::name_keys(&o.name).collides(&keys)) {
                return Err(room_invalid(format!("room {:?} is listed twice (names compare like usernames)", r.name)));
            }
            let topic = r.topic.unwrap_or_default();
            if topic.len() > 512 || topic.chars().any(char::is_control) {
                return Err(room_invalid(format!("room {:?}: a topic is one line of at most 512 bytes", r.name)));
            }
            let days = r.history_days.unwrap_or(history_days);
            if days > 36_500 {
                return Err(room_invalid(format!("room {:?}: history_days {days} is out of range 0..=36500", r.name)));
            }
            rooms.push(RoomConfig {
                name: r.name,
                topic,
                history: r.history.unwrap_or(true),
                voice: r.voice.unwrap_or(true),
                history_days: days,
            });
        }
        let default_rooms = s.default_rooms.unwrap_or_else(|| vec!["general".to_owned()]);
        for name in &default_rooms {
            protocol::message::validate_room_name(name)
                .map_err(|e| invalid("default_rooms", format!("room name {name:?}: {e}")))?;
            let keys = protocol::message::name_keys(name);
            if !rooms.iter().any(|r| protocol::message::name_keys(&r.name).collides(&keys)) {
                // A default room need not be listed: it gets the defaults.
                rooms.push(RoomConfig {
                    name: name.clone(),
                    topic: String::new(),
                    history: true,
                    voice: true,
                    history_days,
                });
            }
        }
        let max_rooms = range("max_rooms", s.max_rooms, 1000, 1, 1_000_000)?;
        if rooms.len() > max_rooms as usize {
            return Err(invalid(
                "max_rooms",
                format!("{max_rooms} is fewer than the {} rooms configured", rooms.len()),
            ));
        }
        Ok(Self {
            data_dir: resolve(s.data_dir, "data"),
            rooms,
            room_settings: RoomSettings {
                default_rooms,
                allow_user_rooms: s.allow_user_rooms.unwrap_or(true),
                empty_room_days: range("empty_room_days", s.empty_room_days, 7, 0, 36_500)?,
                max_rooms,
                history_on_join: range(
                    "history_on_join",
                    s.history_on_join,
                    50,
                    0,
                    protocol::message::MAX_HISTORY_PAGE,
                )?,
                history_days,
            },
            key_grace_days: range("key_grace_days", s.key_grace_days, 7, 0, 3650)?,
            public_address: match s.public_address {
                None => None,
                Some(a) if a.split(',').all(host_port) => Some(a),
                Some(a) => {
                    let problem = format!("{a:?} is not HOST:PORT (or several, comma-separated)");
                    return Err(invalid("public_address", problem));
                }
            },
            bind,
            key_file: resolve(s.key_file, "server.key"),
            identity_file: resolve(s.identity_file, "server_identity.pem"),
            password,
            verbose: verbose_flag || s.verbose.unwrap_or(false),
            max_clients: range("max_clients", s.max_clients, 1000, 1, 1_000_000)?,
            max_handshakes: range("max_handshakes", s.max_handshakes, 256, 1, 1_000_000)?,
            max_handshakes_per_address: range(
                "max_handshakes_per_address",
                s.max_handshakes_per_address,
                16,
                1,
                1_000_000,
            )?,
            max_logins_in_progress: range("max_logins_in_progress", s.max_logins_in_progress, 128, 1, 1_000_000)?,
            max_logins_in_progress_per_address: range(
                "max_logins_in_progress_per_address",
                s.max_logins_in_progress_per_address,
                32,
                1,
                1_000_000,
            )?,
            handshake_rate_per_address: range(
                "handshake_rate_per_address",
                s.handshake_rate_per_address,
                10,
                1,
                1_000_000,
            )?,
            handshake_burst_per_address: range(
                "handshake_burst_per_address",
                s.handshake_burst_per_address,
                40,
                1,
                1_000_000,
            )?,
            max_clients_per_address: range("max_clients_per_address", s.max_clients_per_address, 64, 1, 1_000_000)?,
            max_frame_bytes: max_frame,
            max_message_bytes: max_message,
            handshake_timeout: Duration::from_secs(
                range("handshake_timeout_secs", s.handshake_timeout_secs, 10, 1, 600)?.into(),
            ),
            keepalive: Duration::from_secs(keepalive.into()),
            idle_timeout: Duration::from_secs(idle.into()),
            rate_per_sec: range("rate_per_sec", s.rate_per_sec, 10, 1, 100_000)?,
            rate_burst: range("rate_burst", s.rate_burst, 20, 1, 100_000)?,
            flood_limit: range("flood_limit", s.flood_limit, 50, 1, 1_000_000)?,
            outbound_queue: range("outbound_queue", s.outbound_queue, 1024, 16, 1_000_000)?,
            session_threads: range("session_threads", s.session_threads, 0, 0, 1024)?,
            write_timeout: Duration::from_secs(range("write_timeout_secs", s.write_timeout_secs, 15, 1, 600)?.into()),
            shutdown_grace: Duration::from_secs(range("shutdown_grace_secs", s.shutdown_grace_secs, 3, 0, 60)?.into()),
            voice_port: s.voice_port.unwrap_or(0),
            voice_public_port: s.voice_public_port.unwrap_or(0),
            metrics_bind,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("config.toml");
        std::fs::write(&p, text).expect("write");
        Config::load(Some(&p), None, false)
    }

    /// The `config.toml` the project ships (the README's first command
    /// runs the server on it) and the packaged one load, and say what the
    /// defaults say.
    #[test]
    fn the_shipped_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in ["config.toml", "packaging/server/config.toml"] {
            let c = Config::load(Some(&root.join(file)), None, false).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(c.room_settings.default_rooms, ["general"], "{file}");
            assert!(c.rooms.iter().any(|r| r.name == "general" && r.history), "{file}");
        }
    }

    #[test]
    fn defaults_and_relative_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[server]\nkey_file = \"keys/k\"\n[client]\nuser = \"x\"\n").expect("write");
        let c = Config::load(Some(&p), Some("127.0.0.1:0"), true).expect("valid");
        assert_eq!(c.key_file, dir.path().join("keys/k"));
        assert_eq!(c.identity_file, dir.path().join("server_identity.pem"));
        assert_eq!(c.bind.to_string(), "127.0.0.1:0");
        assert!(c.verbose);
        assert_eq!(c.max_message_bytes, 4096);
        assert_eq!(c.metrics_bind, None, "no metrics listener unless asked");
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.room_settings, RoomSettings::default(), "the defaults are the roster's");
        assert_eq!(c.rooms.len(), 1, "the default room exists without being listed");
        assert!(c.rooms[0].history && c.rooms[0].voice && c.rooms[0].history_days == 30);
    }

    #[test]
    fn rooms_are_checked() {
        let c = load(
            "default_rooms = []\n[server]\ndefault_rooms = [\"lobby\"]\n[[rooms]]\nname = \"lobby\"\ntopic = \"hi\"\n\
             history = false\n[[rooms]]\nname = \"dev\"\nhistory_days = 0\n",
        );
        // `default_rooms` belongs to [server]: at the top level it is an unknown key.
        assert!(c.is_err());
        let c = load(
            "[server]\ndefault_rooms = [\"lobby\"]\n[[rooms]]\nname = \"lobby\"\ntopic = \"hi\"\nhistory = false\n\
             [[rooms]]\nname = \"dev\"\nhistory_days = 0\n",
        )
        .expect("valid");
        assert_eq!(c.rooms.len(), 2);
        assert_eq!((c.rooms[0].topic.as_str(), c.rooms[0].history), ("hi", false));
        assert_eq!(c.rooms[1].history_days, 0);
        for bad in [
            "[[rooms]]\nname = \"two words\"\n",
            "[[rooms]]\nname = \"dev\"\n[[rooms]]\nname = \"DEV\"\n",
            "[[rooms]]\nname = \"dev\"\ntopic = \"a\\nb\"\n",
            "[[rooms]]\nname = \"dev\"\ncolour = 1\n",
            "[server]\ndefault_rooms = [\"#general\"]\n",
            "[server]\nmax_rooms = 1\n[[rooms]]\nname = \"dev\"\n",
        ] {
            let e = load(bad).expect_err(bad).to_string();
            assert!(!e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn metrics_and_log_format_are_opt_in() {
        let c = load("[server]\nmetrics_bind = \"127.0.0.1:9187\"\nlog_format = \"json\"\n").expect("valid");
        assert_eq!(c.metrics_bind, Some("127.0.0.1:9187".parse().expect("addr")));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(load("[server]\nmetrics_bind = \"\"\n").expect("valid").metrics_bind, None);
        let e = load("[server]\nmetrics_bind = \"9187\"\n").expect_err("no ip").to_string();
        assert!(e.contains("server.metrics_bind"), "{e}");
        let e = load("[server]\nlog_format = \"xml\"\n").expect_err("unknown").to_string();
        assert!(e.contains("server.log_format"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("[server]\nmax_clients = 0\n").expect_err("invalid").to_string();
        assert!(e.contains("server.max_clients") && e.contains("out of range"), "{e}");
        let e = load("[server]\nmax_cleints = 5\n").expect_err("unknown").to_string();
        assert!(e.contains("max_cleints") && e.contains(":2:"), "{e}");
        let e = load("[server]\nbind = \"nowhere\"\n").expect_err("bad bind").to_string();
        assert!(e.contains("server.bind"), "{e}");
        let e = load("[server]\nkeepalive_secs = 30\nidle_timeout_secs = 30\n").expect_err("idle").to_string();
        assert!(e.contains("idle_timeout_secs"), "{e}");
        assert!(!load("[server\n").expect_err("syntax").to_string().contains('\n'));
    }

    /// Issue 13 item 9: every way TOML can spell a password key is seen,
    /// since the check reads the parsed file.
    #[test]
    fn a_readable_file_holding_a_password_is_refused_however_it_is_spelled() {
        use std::os::unix::fs::PermissionsExt as _;
        let load_with_mode = |text: &str, mode: u32| {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = dir.path().join("config.toml");
            std::fs::write(&p, text).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            Config::load(Some(&p), None, false).map(|_| ())
        };
        for text in [
            "[server]\npassword = \"pw\"\n",
            "[server]\npassword=\"pw\"\n",
            "[server]\n\"password\" = \"pw\"\n",
            "[server]\n'password' = \"pw\"\n",
            "[server]\n\"pass\\u0077ord\" = \"pw\"\n",
            "server = { password = \"pw\" }\n",
            "server.password = \"pw\"\n",
            "\"server\".'password' = 'pw'\n",
            "[server]\npassword = \"\"\"\npw\"\"\"\n",
            "[client]\npassword = \"pw\"\n",
            "client = { user = \"a\", password = \"pw\" }\n",
        ] {
            let e = load_with_mode(text, 0o644).expect_err(text).to_string();
            assert!(e.contains("chmod 600") && e.contains("password"), "{text}: {e}");
            assert!(load_with_mode(text, 0o600).is_ok(), "{text}: a private file is fine");
        }
        for text in [
            "[server]\npassword = \"\"\n",
            "[server]\n# password = \"pw\"\nbind = \"127.0.0.1:0\"\n",
            "[client]\nuser = \"password = pw\"\n",
        ] {
            assert!(load_with_mode(text, 0o644).is_ok(), "{text}: holds no password");
        }
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any value for any key: a config or a one-line error naming the
        /// key, never a panic.
        #[test]
        fn any_value_for_any_key_is_taken_or_named(
            key in proptest::sample::select(vec![
                "bind", "max_clients", "max_handshakes", "max_handshakes_per_address", "max_clients_per_address",
                "max_logins_in_progress", "max_logins_in_progress_per_address", "handshake_rate_per_address",
                "handshake_burst_per_address",
                "max_frame_bytes", "max_message_bytes", "handshake_timeout_secs", "keepalive_secs",
                "idle_timeout_secs", "rate_per_sec", "rate_burst", "flood_limit", "outbound_queue",
                "session_threads", "write_timeout_secs", "shutdown_grace_secs", "voice_port", "verbose",
                "metrics_bind", "log_format", "data_dir", "default_rooms", "allow_user_rooms", "empty_room_days",
                "max_rooms", "history_on_join", "history_days", "key_grace_days", "public_address",
            ]),
            value in proptest::prop_oneof![
                proptest::num::i64::ANY.prop_map(|n| n.to_string()),
                "\\PC{0,20}".prop_map(|s| format!("{s:?}")),
                proptest::bool::ANY.prop_map(|b| b.to_string()),
            ],
        ) {
            let text = format!("[server]\n{key} = {value}\n");
            if let Err(e) = load(&text) {
                let e = e.to_string();
                prop_assert!(!e.contains('\n'), "{}", e);
                prop_assert!(e.contains(key) || e.contains("TOML") || e.contains("expected"), "{}: {}", text, e);
            }
        }
    }
}
