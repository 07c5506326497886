//! The whole server on already bound sockets: [`run`] starts the actors,
//! serves until told to stop, then shuts down gracefully (stop accepting,
//! tell everyone, wait for every connection to close, with a deadline). The
//! binary feeds it the process's signals; tests may start it in-process.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;
use protocol::crypto::{Identity, Psk};
use protocol::message::Limits;
use sha2::{Digest, Sha256};
use slog::{Logger, info, o, warn};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::archive::Archive;
use crate::config::Config;
use crate::gate::GateConfig;
use crate::keyring::{KeyRing, SharedKeyRing};
use crate::keys;
use crate::listener::{Listener, OpenConnections, StopAccepting};
use crate::messages::ShutdownAll;
use crate::metrics::{self, Metrics};
use crate::roster::Roster;
use crate::session::SessionConfig;
use crate::signer::{self, Signer};
use crate::voice_relay::VoiceRelay;

/// The bound sockets the server runs on.
#[derive(Debug)]
pub struct Sockets {
    /// TCP (text chat), non-blocking.
    pub tcp: std::net::TcpListener,
    /// UDP (voice), non-blocking.
    pub udp: std::net::UdpSocket,
    /// The metrics listener, if `metrics_bind` is set; non-blocking.
    pub metrics: Option<std::net::TcpListener>,
    /// The admin socket ([`crate::admin::bind`]); `None`: no admin interface.
    pub admin: Option<std::os::unix::net::UnixListener>,
}

/// What the server is told while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Read the key file again (SIGHUP): new connections need the new key.
    ReloadKey,
    /// Shut down gracefully (SIGTERM, SIGINT). A closed channel means the same.
    Shutdown,
}

/// Why the server could not run.
#[derive(Debug, Error)]
pub enum RunError {
    /// A socket could not be handed to the runtime.
    #[error("socket setup failed: {0}")]
    Socket(#[from] std::io::Error),
    /// The store could not be read at start.
    #[error("{0}")]
    Store(#[from] crate::archive::StoreError),
}

/// Runs the server on `sockets` until `control` says [`Control::Shutdown`]
/// (or closes), inside an actix system; returns once every connection has
/// closed or `shutdown_grace` has passed.
///
/// # Errors
///
/// [`RunError::Socket`] when a socket cannot be registered with the runtime.
pub async fn run(
    log: Logger,
    cfg: Config,
    psk: Psk,
    identity: Identity,
    sockets: Sockets,
    archive: Arc<dyn Archive>,
    mut control: mpsc::Receiver<Control>,
) -> Result<(), RunError> {
    let stored_rooms = archive.rooms()?;
    let max_id = archive.max_id()?;
    let mut standing = archive.standing()?;
    let hasher = crate::accounts::hasher::Hasher::start_pool();
    let Sockets { tcp, udp, metrics: metrics_listener, admin } = sockets;
    let metrics = Arc::new(Metrics::new());
    let udp = tokio::net::UdpSocket::from_std(udp)?;
    let bound_port = udp.local_addr()?.port();
    let voice_port = if cfg.voice_public_port == 0 { bound_port } else { cfg.voice_public_port };
    let listener = tokio::net::TcpListener::from_std(tcp)?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut ring = KeyRing::new(psk);
    ring.load(std::mem::take(&mut standing.keys));
    let keys = SharedKeyRing::new(ring);
    let session_cfg = Arc::new(SessionConfig {
        keys: keys.clone(),
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
        shutdown: shutdown_rx.clone(),
        voice_port: Some(voice_port),
        metrics: metrics.clone(),
        hasher: hasher.clone(),
    });
    let admin = admin.map(tokio::net::UnixListener::from_std).transpose()?;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let context = crate::admin::AdminContext {
        addresses: match &cfg.public_address {
            Some(a) => a.split(',').map(str::to_owned).collect(),
            None => {
                let local = listener.local_addr()?;
                let ip = if local.ip().is_unspecified() { std::net::Ipv4Addr::LOCALHOST.into() } else { local.ip() };
                vec![std::net::SocketAddr::new(ip, local.port()).to_string()]
            }
        },
        fingerprint: identity.fingerprint(),
        key_file: cfg.key_file.clone(),
        key_grace: std::time::Duration::from_secs(u64::from(cfg.key_grace_days) * 86_400),
    };
    let signer = SyncArbiter::start(cores, move || Signer::new(identity.clone()));
    let roster_log = log.new(o!("actor" => "roster"));
    let relay_log = log.new(o!("actor" => "voice-relay"));
    let (max_clients, max_per_ip) = (cfg.max_clients as usize, cfg.max_clients_per_address as usize);
    let relay = VoiceRelay::new(relay_log, udp).with_metrics(metrics.clone()).start();
    let relay_addr = Some(relay.clone());
    let settings = cfg.room_settings.clone();
    let roster = Roster::new(roster_log, max_clients, max_per_ip, Some(relay))
        .with_metrics(metrics.clone())
        .with_rooms(settings, &cfg.rooms, stored_rooms, Some(archive), max_id)
        .with_standing(standing)
        .with_keys(keys.clone())
        .start();
    if let Some(admin) = admin {
        let log = log.new(o!("actor" => "admin"));
        actix_rt::spawn(crate::admin::serve(admin, roster.clone(), hasher.clone(), context, log, shutdown_rx.clone()));
    }
    // Sessions get the cores the roster (this thread) leaves: a broadcast
    // wakes fewer threads, and the roster is never preempted by its own
    // sessions (measured: 2.9 against 5.6 µs per delivery on 2 cores).
    let session_threads = match cfg.session_threads {
        0 => cores.saturating_sub(1).max(1),
        n => n as usize,
    };
    let workers: Vec<ArbiterHandle> = (0..session_threads).map(|_| Arbiter::new().handle()).collect();
    let (open, mut all_closed) = OpenConnections::new();
    let scrapes = match metrics_listener {
        Some(l) => {
            let l = tokio::net::TcpListener::from_std(l)?;
            let log = log.new(o!("actor" => "metrics"));
            let sources = metrics::Sources {
                roster: roster.clone().recipient(),
                relay: relay_addr.map(Addr::recipient),
                open: open.count(),
            };
            Some(actix_rt::spawn(metrics::serve(log, l, metrics, sources)))
        }
        None => None,
    };
    let count = open.count();
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
        open,
    )
    .start();

    // Until told to shut down (or the channel closes).
    while let Some(Control::ReloadKey) = control.recv().await {
        reload_key(&log, &cfg.key_file, &keys);
    }
    if let Some(task) = scrapes {
        task.abort();
    }

    listener.do_send(StopAccepting);
    let told = roster.send(ShutdownAll { reason: "the server is shutting down".into() }).await.unwrap_or(0);
    let _ = shutdown_tx.send(true);
    info!(log, "shutting down"; "users_told" => told);
    // The listener drops its handle when it stops; every connection holds
    // one until its socket is closed: the channel closes with the last.
    drop(listener);
    if tokio::time::timeout(cfg.shutdown_grace, all_closed.recv()).await.is_err() {
        warn!(log, "connections still open at the shutdown deadline"; "count" => count.load(Ordering::SeqCst));
    }
    for w in workers {
        w.stop();
    }
    info!(log, "stopped"; "rsa_signatures" => signer::SIGNATURES.load(Ordering::Relaxed));
    Ok(())
}

/// Reads the key file again (after `server gen-key`); new connections need
/// the new key, connected users stay. A bad file keeps the old key and
/// says why.
fn reload_key(log: &Logger, path: &std::path::Path, ring: &SharedKeyRing) {
    match keys::load_psk(path) {
        Ok(new) => {
            ring.write().set_main(new);
            info!(log, "reloaded the pre-shared key; new connections need the new key"; "file" => %path.display());
        }
        Err(e) => warn!(log, "key file not reloaded; keeping the current key"; "error" => %e),
    }
}
