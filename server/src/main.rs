//! `server`: the Socket Chatroom server binary.
//!
//! `main` only parses the command line, loads the configuration and keys,
//! and starts the actors; the library (`server::…`) holds the rest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use clap::{Parser, Subcommand};
use protocol::message::Limits;
use sha2::{Digest, Sha256};
use slog::{Drain, Logger, info, o, warn};

use server::config::{Config, LogFormat};
use server::gate::GateConfig;
use server::keys;
use server::listener::{Listener, StopAccepting};
use server::messages::ShutdownAll;
use server::metrics::Metrics;
use server::roster::Roster;
use server::session::SessionConfig;
use server::signer::Signer;
use server::voice_relay::VoiceRelay;

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
}

/// How `main` ends.
enum Failure {
    /// Usage or configuration: exit 2.
    Config(String),
    /// Anything at run time: exit 1.
    Runtime(String),
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
    let system = actix_rt::System::new();
    system.block_on(async move {
        // Watch the signals before announcing readiness, so a prompt SIGTERM
        // is a clean shutdown and not a kill.
        let signals = Signals::install()?;
        print_banner(local, voice_addr, &cfg, config_path.as_deref(), &identity.fingerprint().to_string());
        if let Some(addr) = metrics_listener.as_ref().and_then(|l| l.local_addr().ok()) {
            println!("Metrics on http://{addr}/metrics");
            info!(log, "serving metrics"; "addr" => %addr);
        }
        info!(log, "listening"; "addr" => %local, "fingerprint" => %identity.fingerprint(), "verbose" => cfg.verbose);
        serve(log, cfg, psk, identity, Sockets { tcp: std_listener, udp, metrics: metrics_listener }, signals).await
    })
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

/// The bound sockets `serve` runs on.
struct Sockets {
    tcp: std::net::TcpListener,
    udp: std::net::UdpSocket,
    metrics: Option<std::net::TcpListener>,
}

async fn serve(
    log: Logger,
    cfg: Config,
    psk: protocol::crypto::Psk,
    identity: protocol::crypto::Identity,
    sockets: Sockets,
    signals: Signals,
) -> Result<(), Failure> {
    let Sockets { tcp: std_listener, udp, metrics: metrics_listener } = sockets;
    let metrics = Arc::new(Metrics::new());
    let udp =
        tokio::net::UdpSocket::from_std(udp).map_err(|e| Failure::Runtime(format!("socket setup failed: {e}")))?;
    let bound_port = udp.local_addr().map_err(|e| Failure::Runtime(e.to_string()))?.port();
    let voice_port = if cfg.voice_public_port == 0 { bound_port } else { cfg.voice_public_port };
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .map_err(|e| Failure::Runtime(format!("socket setup failed: {e}")))?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let psk = Arc::new(std::sync::RwLock::new(psk));
    let session_cfg = Arc::new(SessionConfig {
        psk: psk.clone(),
        identity_der: identity.public_der().into(),
        password_hash: cfg.password.as_ref().map(|p| Sha256::digest(p.as_bytes()).into()),
        limits: Limits {
            max_message_bytes: cfg.max_message_bytes,
            rate_per_sec: cfg.rate_per_sec,
            burst: cfg.rate_burst,
            keepalive_secs: cfg.keepalive.as_secs() as u32,
            idle_timeout_secs: cfg.idle_timeout.as_secs() as u32,
        },
        max_frame: cfg.max_frame_bytes as usize,
        handshake_timeout: cfg.handshake_timeout,
        idle_timeout: cfg.idle_timeout,
        write_timeout: cfg.write_timeout,
        flood_limit: cfg.flood_limit,
        outbound_queue: cfg.outbound_queue as usize,
        shutdown: shutdown_rx,
        voice_port: Some(voice_port),
        metrics: metrics.clone(),
    });
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let signer = SyncArbiter::start(cores, move || Signer::new(identity.clone()));
    let roster_log = log.new(o!("actor" => "roster"));
    let relay_log = log.new(o!("actor" => "voice-relay"));
    let (max_clients, max_per_ip) = (cfg.max_clients as usize, cfg.max_clients_per_address as usize);
    let relay = VoiceRelay::new(relay_log, udp).with_metrics(metrics.clone()).start();
    let relay_addr = Some(relay.clone());
    let roster = Roster::new(roster_log, max_clients, max_per_ip, Some(relay)).with_metrics(metrics.clone()).start();
    // Sessions get the cores the roster (this thread) leaves: a broadcast
    // wakes fewer threads, and the roster is never preempted by its own
    // sessions (measured: 2.9 against 5.6 µs per delivery on 2 cores).
    let session_threads = match cfg.session_threads {
        0 => cores.saturating_sub(1).max(1),
        n => n as usize,
    };
    let workers: Vec<ArbiterHandle> = (0..session_threads).map(|_| Arbiter::new().handle()).collect();
    let open = Arc::new(AtomicUsize::new(0));
    let scrapes = match metrics_listener {
        Some(l) => {
            let l = tokio::net::TcpListener::from_std(l)
                .map_err(|e| Failure::Runtime(format!("socket setup failed: {e}")))?;
            let log = log.new(o!("actor" => "metrics"));
            let sources = server::metrics::Sources {
                roster: roster.clone().recipient(),
                relay: relay_addr.map(Addr::recipient),
                open: open.clone(),
            };
            Some(actix_rt::spawn(server::metrics::serve(log, l, metrics, sources)))
        }
        None => None,
    };
    let listener = Listener::new(
        log.clone(),
        listener,
        session_cfg,
        roster.clone(),
        signer,
        workers.clone(),
        GateConfig {
            max_waiting: cfg.max_handshakes as usize,
            max_waiting_per_address: cfg.max_handshakes_per_address as usize,
            max_logging_in: cfg.max_logins_in_progress as usize,
            max_logging_in_per_address: cfg.max_logins_in_progress_per_address as usize,
            sign_rate_per_address: f64::from(cfg.handshake_rate_per_address),
            sign_burst_per_address: cfg.handshake_burst_per_address,
        },
        open.clone(),
    )
    .start();

    signals.wait(&log, || reload_key(&log, &cfg.key_file, &psk)).await;
    if let Some(task) = scrapes {
        task.abort();
    }

    listener.do_send(StopAccepting);
    let told = roster.send(ShutdownAll { reason: "the server is shutting down".into() }).await.unwrap_or(0);
    let _ = shutdown_tx.send(true);
    info!(log, "shutting down"; "users_told" => told);
    let deadline = Instant::now() + cfg.shutdown_grace;
    while open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = open.load(Ordering::SeqCst);
    if left > 0 {
        warn!(log, "connections still open at the shutdown deadline"; "count" => left);
    }
    for w in workers {
        w.stop();
    }
    info!(log, "stopped"; "rsa_signatures" => server::signer::SIGNATURES.load(Ordering::Relaxed));
    Ok(())
}

/// SIGHUP: reads the key file again (after `server gen-key`); new
/// connections need the new key, connected users stay. A bad file keeps the
/// old key and says why.
fn reload_key(log: &Logger, path: &std::path::Path, psk: &std::sync::RwLock<protocol::crypto::Psk>) {
    match keys::load_psk(path) {
        Ok(new) => match psk.write() {
            Ok(mut p) => {
                *p = new;
                info!(log, "reloaded the pre-shared key; new connections need the new key"; "file" => %path.display());
            }
            Err(_) => warn!(log, "cannot reload the pre-shared key: lock poisoned"),
        },
        Err(e) => warn!(log, "key file not reloaded; keeping the current key"; "error" => %e),
    }
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

    /// Returns on SIGTERM or SIGINT; calls `on_hup` for each SIGHUP.
    async fn wait(mut self, log: &Logger, on_hup: impl Fn()) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return info!(log, "SIGTERM received"),
                _ = self.int.recv() => return info!(log, "SIGINT received"),
                _ = self.hup.recv() => on_hup(),
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
