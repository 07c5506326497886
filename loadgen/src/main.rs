//! `loadgen`: load generator for the Socket Chatroom server, on loopback
//! only. It speaks the protocol through client-core's [`client_core::link`]
//! and the `protocol` crate, never a copy of them.
//!
//! ```text
//! loadgen --key-file server.key --server 127.0.0.1:7878 --server-pid PID text --clients 100 --senders 10 --rate 10
//! loadgen ... voice --listeners 100 --speakers 5
//! loadgen ... connect --clients 1000 --concurrency 32 [--broadcast]
//! ```
//!
//! Each run prints one JSON line (also appended to `--out`) and a human
//! summary on stderr. Every loop is bounded in count and time, and the whole
//! run by `--max-wall`.

mod clients;
mod connect;
mod marker;
mod procfs;
mod report;
mod stats;
mod text;
mod voice;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use client_core::{Fingerprint, Psk};
use serde_json::json;

/// Load generator for the Socket Chatroom server (loopback only).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The server's TCP address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:7878")]
    server: SocketAddr,
    /// File holding the server's pre-shared key.
    #[arg(long, default_value = "server.key", conflicts_with = "key")]
    key_file: PathBuf,
    /// The pre-shared key itself.
    #[arg(long, env = "CHATROOM_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The server password, if it has one.
    #[arg(long, env = "CHATROOM_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// The server's identity (`SHA256:…`); without it the first connection's
    /// identity is trusted and every other one must match it.
    #[arg(long)]
    fingerprint: Option<Fingerprint>,
    /// The server's process id: its CPU time (all threads, /proc/PID/stat)
    /// and memory are measured over each run's window.
    #[arg(long, default_value_t = 0)]
    server_pid: u32,
    /// Most clients per source address: clients are spread over 127.0.0.1,
    /// 127.0.0.2, … so the server's per-address limits do not bite.
    #[arg(long, default_value_t = 50)]
    per_source: usize,
    /// Connections in flight while connecting.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Tokio worker threads (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Append the JSON line here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A label copied into the JSON line.
    #[arg(long, default_value = "")]
    tag: String,
    /// Put the clients in rooms of this many (each client's lines go to its
    /// room); without it everyone is in the server's default rooms.
    #[arg(long)]
    room_size: Option<usize>,
    /// Hard limit on the whole run, in seconds.
    #[arg(long, default_value_t = 300)]
    max_wall: u64,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// N clients, S of them sending R messages/s each for D seconds.
    Text {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Messages per second per sender.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Seconds of sending (at most 120).
        #[arg(long, default_value_t = 15.0)]
        duration: f64,
        /// Most seconds to wait for deliveries afterwards (at most 30).
        #[arg(long, default_value_t = 3.0)]
        drain: f64,
    },
    /// K speakers at 50 packets/s and N listeners over UDP.
    Voice {
        #[arg(long, default_value_t = 100)]
        listeners: usize,
        #[arg(long, default_value_t = 5)]
        speakers: usize,
        /// Seconds of speaking (at most 120).
        #[arg(long, default_value_t = 15.0)]
        duration: f64,
        /// Opus bytes per 20 ms packet (80 ≈ 32 kb/s).
        #[arg(long, default_value_t = 80)]
        payload: usize,
    },
    /// M clients connect with C in flight and stay idle.
    Connect {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Seconds after the last connect before memory is measured (at most 60).
        #[arg(long, default_value_t = 5.0)]
        settle: f64,
        /// Then one client sends one message to all the others.
        #[arg(long)]
        broadcast: bool,
    },
}

/// Refuses any target but this machine's loopback.
fn loopback_only(server: SocketAddr) -> anyhow::Result<()> {
    if !server.ip().is_loopback() {
        bail!("refusing to load {server}: loadgen only targets loopback addresses (127.0.0.0/8, ::1)");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    loopback_only(args.server)?;
    let key_text = match &args.key {
        Some(k) => k.clone(),
        None => std::fs::read_to_string(&args.key_file)
            .with_context(|| format!("reading the key file {}", args.key_file.display()))?,
    };
    let key = Psk::parse(key_text.trim()).context("the pre-shared key is not valid")?;
    let clients = match args.workload {
        Workload::Text { clients, .. } | Workload::Connect { clients, .. } => clients,
        Workload::Voice { listeners, speakers, .. } => listeners + speakers,
    };
    let sources = if args.server.is_ipv4() {
        clients::loopback_sources(clients::sources_needed(clients, args.per_source, args.concurrency))
    } else {
        vec![args.server.ip()]
    };
    if sources.len() > 1 {
        eprintln!(
            "loadgen: {clients} clients spread over {} source addresses ({} to {}), at most {} each, so the server's \
             per-address limits do not shape the figures",
            sources.len(),
            sources[0],
            sources[sources.len() - 1],
            args.per_source
        );
    }
    let target = clients::Target {
        server: args.server,
        key,
        password: args.password.clone(),
        sources,
        pin: Arc::new(Mutex::new(args.fingerprint)),
        timeout: Duration::from_secs(60),
        room_size: args.room_size.filter(|k| *k > 0),
    };
    if let (Some(k), Workload::Text { clients, .. }) = (target.room_size, &args.workload)
        && clients % k != 0
    {
        bail!("--room-size {k} must divide --clients {clients} (every room the same size)");
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?
    };
    let pid = args.server_pid;
    let work = async {
        match &args.workload {
            Workload::Text { clients, senders, rate, duration, drain } => {
                let load = text::TextLoad {
                    clients: *clients,
                    senders: *senders,
                    rate: rate.clamp(0.001, 100_000.0),
                    seconds: duration.clamp(0.1, 120.0),
                    drain: drain.clamp(0.0, 30.0),
                    in_flight: args.concurrency,
                };
                text::run(&target, &load, pid).await
            }
            Workload::Voice { listeners, speakers, duration, payload } => {
                let load = voice::VoiceLoad {
                    listeners: *listeners,
                    speakers: *speakers,
                    seconds: duration.clamp(0.1, 120.0),
                    payload: (*payload).clamp(marker::VOICE_MARKER_LEN, 1000),
                    in_flight: args.concurrency,
                };
                voice::run(&target, &load, pid).await
            }
            Workload::Connect { clients, settle, broadcast } => {
                let load = connect::ConnectLoad {
                    clients: *clients,
                    in_flight: args.concurrency,
                    settle: settle.clamp(0.0, 60.0),
                    broadcast: *broadcast,
                };
                connect::run(&target, &load, pid).await
            }
        }
    };
    let fields = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(args.max_wall), work)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the run took longer than --max-wall {} s", args.max_wall)))
    })?;
    let mut line = serde_json::Map::new();
    line.insert("server_impl".into(), json!("socket-chatroom"));
    line.insert("tag".into(), json!(args.tag));
    line.insert("loadgen_threads".into(), json!(args.threads.max(1)));
    line.extend(fields);
    report::emit(line, args.out.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in ["127.0.0.1:7878", "127.5.6.7:1", "[::1]:7878"] {
            assert!(loopback_only(ok.parse().expect("addr")).is_ok(), "{ok}");
        }
        for bad in ["10.0.0.1:7878", "192.168.1.2:7878", "0.0.0.0:7878", "[2001:db8::1]:7878", "8.8.8.8:53"] {
            assert!(loopback_only(bad.parse().expect("addr")).is_err(), "{bad}");
        }
    }
}
