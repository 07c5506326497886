//! `server`: the Socket Chatroom server binary.
//!
//! `main` only parses the command line, loads the configuration and keys,
//! and starts the actors; the library (`server::…`) holds the rest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod admin_cli;

use clap::{Parser, Subcommand};
use slog::{Drain, Logger, info, o};

use server::config::{Config, LogFormat};
use server::keys;
use server::run::{Control, Sockets};

/// Socket Chatroom server: encrypted text chat over TCP.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (default: ./config.toml if it exists, else built-in defaults).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address and port to listen on, overriding `bind` in the file.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<String>,
    /// Detailed logging (same as `verbose = true`).
    #[arg(long, short = 'v')]
    verbose: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new pre-shared key to the configured key file and print it.
    GenKey,
    /// Print the server identity's fingerprint (creating the identity if missing).
    Fingerprint,
    /// Copy the database (rooms, history) into FILE, consistently, while
    /// the server may be running (SQLite online backup).
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
    },
    /// Administer the server running on this machine's data directory,
    /// over its admin socket (root or the server's own user only).
    Admin {
        /// Print the server's answer as one JSON line.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: admin_cli::AdminCommand,
    },
}

/// How `main` ends.
enum Failure {
    /// Usage or configuration: exit 2.
    Config(String),
    /// Anything at run time: exit 1.
    Runtime(String),
    /// `server admin`: refused or failed, already said: exit 1.
    Refused,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprintln!("server: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("server: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Refused) => ExitCode::from(1),
    }
}

fn logger(verbose: bool, format: LogFormat) -> Logger {
    let level = if verbose { slog::Level::Debug } else { slog::Level::Info };
    match format {
        LogFormat::Text => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            let drain = slog_term::FullFormat::new(decorator).build().fuse();
            Logger::root(std::sync::Mutex::new(drain.filter_level(level)).fuse(), o!())
        }
        // One JSON object per line (`ts`, `level`, `msg`, then the keys).
        LogFormat::Json => {
            let drain = slog_json::Json::new(std::io::stderr()).add_default_keys().build().fuse();
            Logger::root(std::sync::Mutex::new(drain.filter_level(level)).fuse(), o!())
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config_path = cli.config.clone().or_else(|| {
        let p = PathBuf::from("config.toml");
        p.exists().then_some(p)
    });
    let cfg = Config::load(config_path.as_deref(), cli.bind.as_deref(), cli.verbose)
        .map_err(|e| Failure::Config(e.to_string()))?;
    let key_err = |e: keys::KeyFileError| Failure::Runtime(e.to_string());
    match cli.command {
        Some(Command::GenKey) => {
            let key = keys::generate_psk(&cfg.key_file).map_err(key_err)?;
            eprintln!(
                "server: wrote a new key to {}; send the running server SIGHUP (kill -HUP <pid>) to use it for new connections",
                cfg.key_file.display()
            );
            println!("{key}");
            return Ok(());
        }
        Some(Command::Fingerprint) => {
            let (id, created) = keys::load_or_create_identity(&cfg.identity_file).map_err(key_err)?;
            if created {
                eprintln!("server: created a new identity in {}", cfg.identity_file.display());
            }
            println!("{}", id.fingerprint());
            return Ok(());
        }
        Some(Command::Admin { json, command }) => {
            return match admin_cli::run(&cfg.data_dir, command, json) {
                0 => Ok(()),
                _ => Err(Failure::Refused),
            };
        }
        Some(Command::Backup { file }) => {
            if file.exists() {
                return Err(Failure::Config(format!("{} exists; choose a new file", file.display())));
            }
            server::archive::backup(&cfg.data_dir, &file).map_err(|e| Failure::Runtime(e.to_string()))?;
            eprintln!("server: backed up {} to {}", cfg.data_dir.display(), file.display());
            return Ok(());
        }
        None => {}
    }

    let log = logger(cfg.verbose, cfg.log_format);
    let (psk, psk_created) = keys::load_or_create_psk(&cfg.key_file).map_err(key_err)?;
    if psk_created {
        info!(log, "created a new pre-shared key file"; "file" => %cfg.key_file.display());
    }
    let (identity, id_created) = keys::load_or_create_identity(&cfg.identity_file).map_err(key_err)?;
    if id_created {
        info!(log, "created a new server identity"; "file" => %cfg.identity_file.display());
    }
    let std_listener = std::net::TcpListener::bind(cfg.bind)
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", cfg.bind)))?;
    std_listener.set_nonblocking(true).map_err(|e| Failure::Runtime(format!("socket setup failed: {e}")))?;
    let local = std_listener.local_addr().map_err(|e| Failure::Runtime(e.to_string()))?;
    let voice_addr = SocketAddr::new(local.ip(), if cfg.voice_port == 0 { local.port() } else { cfg.voice_port });
    let udp = std::net::UdpSocket::bind(voice_addr)
        .map_err(|e| Failure::Runtime(format!("cannot listen for voice on UDP {voice_addr}: {e}")))?;
    udp.set_nonblocking(true).map_err(|e| Failure::Runtime(format!("socket setup failed: {e}")))?;
    let metrics_listener = match cfg.metrics_bind {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| Failure::Runtime(format!("cannot listen for metrics on {addr}: {e}")))?;
            l.set_nonblocking(true).map_err(|e| Failure::Runtime(format!("socket setup failed: {e}")))?;
            Some(l)
        }
        None => None,
    };
    // Then the store: one server per data directory (a lock held while it
    // runs); a corrupt or newer database stops the server here, before it
    // accepts anyone, with one line naming the file.
    let _data_lock = lock_data_dir(&cfg.data_dir)?;
    let admin = server::admin::bind(&cfg.data_dir).map_err(|e| Failure::Runtime(e.to_string()))?;
    let archive: std::sync::Arc<dyn server::archive::Archive> = std::sync::Arc::new(
        server::archive::SqliteArchive::open(&cfg.data_dir, log.new(o!("actor" => "archive")))
            .map_err(|e| Failure::Runtime(e.to_string()))?,
    );
    let system = actix_rt::System::new();
    let admin_socket = cfg.data_dir.join(server::admin::SOCKET_FILE);
    let ran = system.block_on(async move {
        // Watch the signals before announcing readiness, so a prompt SIGTERM
        // is a clean shutdown and not a kill.
        let signals = Signals::install()?;
        print_banner(local, voice_addr, &cfg, config_path.as_deref(), &identity.fingerprint().to_string());
        if let Some(addr) = metrics_listener.as_ref().and_then(|l| l.local_addr().ok()) {
            println!("Metrics on http://{addr}/metrics");
            info!(log, "serving metrics"; "addr" => %addr);
        }
        info!(log, "listening"; "addr" => %local, "fingerprint" => %identity.fingerprint(), "verbose" => cfg.verbose);
        let (tx, control) = tokio::sync::mpsc::channel(4);
        actix_rt::spawn(signals.forward(log.clone(), tx));
        let sockets = Sockets { tcp: std_listener, udp, metrics: metrics_listener, admin: Some(admin) };
        server::run::run(log, cfg, psk, identity, sockets, archive, control)
            .await
            .map_err(|e| Failure::Runtime(e.to_string()))
    });
    // Gone with the server: `server admin` then says no server runs.
    let _ = std::fs::remove_file(admin_socket);
    ran
}

/// Creates `dir` (mode 0700: the history is for this server's user alone,
/// whatever mode the files inside get, and an existing directory is made
/// so too) and locks it for this process: a second server on the same data
/// would hand out the same message ids.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, Failure> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let fail = |e: std::io::Error| Failure::Runtime(format!("data directory {}: {e}", dir.display()));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(fail)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    let path = dir.join("server.lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(fail)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(Failure::Runtime(format!("another server is running on the data directory {}", dir.display())))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(fail(e)),
    }
}

/// Prints where the server listens and ready command lines to join.
fn print_banner(local: SocketAddr, voice: SocketAddr, cfg: &Config, config_path: Option<&Path>, fingerprint: &str) {
    let shown = if local.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
    } else {
        local
    };
    let key_file = std::fs::canonicalize(&cfg.key_file).unwrap_or_else(|_| cfg.key_file.clone());
    // The clients built next to this binary, if there are any; otherwise
    // the README's fresh clone has only built the server, and cargo builds
    // a client on first use. Installed from the Debian packages, the
    // clients are `socket-chatroom-cli` and `socket-chatroom-gui`.
    let sibling = |names: [&str; 2]| {
        let dir = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf))?;
        names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
    };
    let (cli, gui) = (sibling(["client-cli", "socket-chatroom-cli"]), sibling(["client-iced", "socket-chatroom-gui"]));
    println!("Socket Chatroom server listening on {local}");
    println!("Voice relay on UDP {voice}");
    println!("Server identity: {fingerprint}");
    println!("Join with (hand the key file and this fingerprint to your users):");
    for line in join_commands(cli.as_deref(), gui.as_deref(), shown, &key_file, fingerprint) {
        println!("  {line}");
    }
    // One link instead of a key and a fingerprint (and revocable).
    let me = std::env::current_exe().ok().map_or_else(|| "server".to_owned(), |p| p.display().to_string());
    let config_flag =
        config_path.map(|p| format!(" --config {}", shell_quote(&p.display().to_string()))).unwrap_or_default();
    println!("Or hand out an invite link: {}{config_flag} admin invite --uses 1", shell_quote(&me));
    if let Some(p) = config_path {
        println!("Configuration: {}", p.display());
    }
}

/// The lines of the banner's "Join with": a `client-cli` command that works
/// as written (the built binary's path, or `cargo run` from the repository
/// when the client is not built yet), then the desktop client likewise.
fn join_commands(
    client_cli: Option<&Path>,
    client_iced: Option<&Path>,
    server: SocketAddr,
    key_file: &Path,
    fingerprint: &str,
) -> Vec<String> {
    let flags = format!(
        "--server {server} --key-file {} --fingerprint {fingerprint} --user YOUR_NAME",
        shell_quote(&key_file.display().to_string())
    );
    let cli = match client_cli {
        Some(cli) => format!("{} {flags}", shell_quote(&cli.display().to_string())),
        None => format!("cargo run -p client-cli -- {flags}"),
    };
    let gui = match client_iced {
        Some(gui) => format!("(the desktop client: {})", shell_quote(&gui.display().to_string())),
        None => "(the desktop client, from the repository: cargo run -p client-iced)".to_owned(),
    };
    vec![cli, gui]
}

/// `s` as one shell word: unchanged when it needs no quoting, else in
/// single quotes.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !s.is_empty() && s.chars().all(plain) { s.to_owned() } else { format!("'{}'", s.replace('\'', "'\\''")) }
}

/// SIGTERM and SIGINT (stop), SIGHUP (reload the key).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, Failure> {
        use tokio::signal::unix::{SignalKind, signal};
        let term =
            signal(SignalKind::terminate()).map_err(|e| Failure::Runtime(format!("cannot watch SIGTERM: {e}")))?;
        let int = signal(SignalKind::interrupt()).map_err(|e| Failure::Runtime(format!("cannot watch SIGINT: {e}")))?;
        let hup = signal(SignalKind::hangup()).map_err(|e| Failure::Runtime(format!("cannot watch SIGHUP: {e}")))?;
        Ok(Self { term, int, hup })
    }

    /// Tells the server: SIGHUP reloads the key, SIGTERM or SIGINT shuts
    /// it down (then this ends).
    async fn forward(mut self, log: Logger, to: tokio::sync::mpsc::Sender<Control>) {
        loop {
            let order = tokio::select! {
                _ = self.term.recv() => {
                    info!(log, "SIGTERM received");
                    Control::Shutdown
                }
                _ = self.int.recv() => {
                    info!(log, "SIGINT received");
                    Control::Shutdown
                }
                _ = self.hup.recv() => Control::ReloadKey,
            };
            if to.send(order).await.is_err() || order == Control::Shutdown {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_commands_work_as_written() {
        let addr: SocketAddr = "127.0.0.1:7878".parse().expect("addr");
        let built = join_commands(
            Some(Path::new("/opt/chat/client-cli")),
            Some(Path::new("/opt/chat/client-iced")),
            addr,
            Path::new("/srv/k.key"),
            "SHA256:x",
        );
        assert_eq!(
            built,
            [
                "/opt/chat/client-cli --server 127.0.0.1:7878 --key-file /srv/k.key --fingerprint SHA256:x --user YOUR_NAME",
                "(the desktop client: /opt/chat/client-iced)"
            ]
        );
        let fresh = join_commands(None, None, addr, Path::new("/my keys/it's.key"), "SHA256:x");
        assert!(fresh[0].starts_with("cargo run -p client-cli -- --server 127.0.0.1:7878"), "{fresh:?}");
        assert!(fresh[0].contains(r"--key-file '/my keys/it'\''s.key' "), "{fresh:?}");
        assert!(fresh[1].contains("cargo run -p client-iced"), "{fresh:?}");
    }
}
