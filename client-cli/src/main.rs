//! `client-cli`: the line-oriented Socket Chatroom client, a Unix filter.
//!
//! - `main.rs`: flags, configuration, exit codes.
//! - [`line`]: stdin lines to messages and commands.
//! - [`output`]: events to plain or JSON lines.
//! - [`password`]: account passwords from the environment or a prompt
//!   without echo.
//! - [`term`]: the line editor, when stdin and stdout are a terminal.
//! - [`voice`]: the headless voice client (`--voice`).

mod line;
mod output;
mod password;
mod term;
mod voice;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Parser;
use client_core::audio::device::Input;
use client_core::command::room_name;
use client_core::config::ClientConfig;
use client_core::display::escape_line;
use client_core::key_store::KeyStore;
use client_core::rooms::{Applied, Rooms, validate_room_name as protocol_room_check};
use client_core::{
    Client, ConnectOptions, Event, Fingerprint, InviteLink, KeySource, RefusalCode, Secret, Target, Trust,
};
use slog::{Drain, Logger, debug, o};

use crate::output::{Printer, Style, exit_code};

/// Chat from a terminal or a script: each stdin line is a message, each
/// stdout line an event.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Client configuration file (its [client] table; default: the user's config dir).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Server address as HOST:PORT ([IPv6]:PORT for IPv6 literals).
    #[arg(long, short = 's', value_name = "HOST:PORT")]
    server: Option<String>,
    /// Username (default: $USER).
    #[arg(long, short = 'u', value_name = "NAME")]
    user: Option<String>,
    /// Server password.
    #[arg(long, env = "CHATROOM_PASSWORD", hide_env_values = true, value_name = "P", allow_hyphen_values = true)]
    password: Option<String>,
    /// The server's pre-shared key (prefer CHATROOM_KEY or --key-file: flags show in `ps`).
    // Keys are urlsafe base64: one in 64 starts with `-`.
    #[arg(long, value_name = "KEY", conflicts_with = "key_file", allow_hyphen_values = true)]
    key: Option<String>,
    /// Read the server's pre-shared key from this file (read again before each reconnection, so a rotated key is picked up).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Pin the server's identity (SHA256:...), as printed by the server.
    #[arg(long, value_name = "SHA256:...")]
    fingerprint: Option<String>,
    /// Join with an invite link (chatroom://HOST:PORT/?v=1&key=...): its address(es), tried in order, its key, its server fingerprint (pinned: no trust question) and its room (as --room). After the first login the server issues a key of your own, used from then on (see Keys below). The link holds a key: CHATROOM_INVITE keeps it out of `ps`.
    #[arg(long, env = "CHATROOM_INVITE", hide_env_values = true, value_name = "LINK")]
    invite: Option<String>,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
    /// Ignore stdin; print events (reconnecting after a lost connection) until killed or reconnecting gives up.
    #[arg(long)]
    listen: bool,
    /// Debug logging on stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Voice only: join, enter voice, print roster and talking events; stdin is not read.
    #[arg(long)]
    voice: bool,
    /// Voice input: a device name, "default", FILE.wav (played in real time), or "null" (listen only) [config: input; default: default].
    #[arg(long, value_name = "DEVICE|FILE.wav")]
    input: Option<String>,
    /// Voice output: a device name, "default", FILE.wav (records the room), or "null" [config: output; default: default].
    #[arg(long, value_name = "DEVICE|FILE.wav")]
    output: Option<String>,
    /// Leave voice and exit after this many seconds in voice.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// List audio devices and exit.
    #[arg(long)]
    list_devices: bool,
    /// Turn echo cancellation off (it runs only with a microphone and speakers, or --echo-room) [config: aec].
    #[arg(long)]
    no_aec: bool,
    /// Test endpoint: the input also hears the output's echo through a synthetic room (direct path after MS ms at −6 dB, then weaker reflections); --input and --output must be WAV files or null.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..=500))]
    echo_room: Option<u32>,
    /// Turn noise suppression off.
    #[arg(long)]
    no_denoise: bool,
    /// Never add loss protection (FEC, repeated frames), whatever listeners report.
    #[arg(long)]
    no_protection: bool,
    /// Opus bitrate on a clean link, bits per second [config: bitrate; default: 32000].
    #[arg(long, value_parser = clap::value_parser!(i32).range(6_000..=128_000))]
    bitrate: Option<i32>,
    /// Reconnect this many times after a lost connection or a server shutdown before giving up (exit 5); 0 never reconnects.
    #[arg(long, value_name = "TRIES", default_value_t = 10)]
    reconnect: u32,
    /// Voice activation: speech probability (0-1) that opens the microphone; 0 always transmits [config: vad_threshold; default: 0.5].
    #[arg(long)]
    vad_threshold: Option<f32>,
    /// Join this room too (repeatable; besides the server's default rooms). The first is where your lines go, and with --voice the room you talk in.
    #[arg(long, value_name = "ROOM")]
    room: Vec<String>,
    /// Deliver no stored messages when joining a room (what was missed during a lost connection still is).
    #[arg(long)]
    no_history: bool,
    /// After logging in, register the name: from then on it needs its account password, taken from CHATROOM_ACCOUNT_PASSWORD or, on a terminal, asked for twice without echo (never a flag). Refused: exit 3.
    #[arg(long)]
    register: bool,
}

const EXIT_CODES: &str = "Keys, highest precedence first: --key, --key-file or CHATROOM_KEY; the key this server issued to you \
(after a login through an invite, or with the server's previous main key), kept in ~/.local/share/socket-chatroom/keys/ \
(keys_dir in [client]); the --invite link's key; the config file's key or key_file. A revoked invite ends the session \
(exit 6) and forgets its issued key; a refused issued key exits 3 and names its file.

Account password (registered names; not the server password): CHATROOM_ACCOUNT_PASSWORD, or asked for on a terminal \
when the server wants it; /password reads the new one from CHATROOM_NEW_ACCOUNT_PASSWORD when stdin is not a terminal.

Exit codes: 0 ok; 2 usage or config; 3 refused by the server (key, password, account password, banned, name, full, version, still busy; \
--register denied); 4 server identity mismatch; 5 cannot connect or connection lost (server shutdown included); \
6 disconnected by the server for cause (kicked or banned included)";

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if cli.list_devices {
        return list_devices();
    }
    let env_key = std::env::var("CHATROOM_KEY").ok();
    let (mut opts, voice_cfg) = match options(&cli, env_key) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("client-cli: {e:#}");
            return ExitCode::from(2);
        }
    };
    // `--register`: the password to register with, also sent at login (the
    // name may be ours already).
    let register = if cli.register {
        let prompt = format!("New account password for {}: ", escape_line(&opts.username));
        match password::new_password(password::ACCOUNT_PASSWORD_ENV, std::io::stdin().is_terminal(), &prompt) {
            Ok(p) => {
                opts.account_password = Some(p.clone());
                Some(p)
            }
            Err(e) => {
                eprintln!("client-cli: --register: {e:#}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("client-cli: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run(cli, opts, voice_cfg, register));
    // The stdin reader may be blocked in read(2) forever (`tail -f | client-cli`):
    // do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

fn logger(verbose: bool) -> Logger {
    let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let level = if verbose { slog::Level::Debug } else { slog::Level::Warning };
    Logger::root(drain.filter_level(level).fuse(), o!())
}

/// Merges defaults < config file < environment < flags (`env_key`:
/// `CHATROOM_KEY`); also returns the file's table for the voice settings.
fn options(cli: &Cli, env_key: Option<String>) -> anyhow::Result<(ConnectOptions, ClientConfig)> {
    let cfg = ClientConfig::load(cli.config.as_deref())?;
    let voice_cfg = cfg.clone();
    let invite = cli.invite.as_deref().map(InviteLink::parse).transpose().context("--invite")?;
    let flag_fingerprint =
        cli.fingerprint.as_deref().map(str::parse::<Fingerprint>).transpose().context("--fingerprint")?;
    // An invite gives the server, its identity and a room; flags that
    // disagree with it are a mistake, not a choice.
    let (server, fingerprint) = match &invite {
        Some(link) => {
            if let Some(f) = flag_fingerprint
                && f != link.fingerprint
            {
                return Err(anyhow!("--fingerprint {f} disagrees with the --invite link's {}", link.fingerprint));
            }
            let first = match &cli.server {
                Some(s) if !link.addresses.contains(s) => {
                    return Err(anyhow!(
                        "--server {s} is not one of the --invite link's addresses ({})",
                        link.addresses.join(", ")
                    ));
                }
                Some(s) => s.clone(),
                None => link.addresses.first().cloned().ok_or_else(|| anyhow!("--invite: no address"))?,
            };
            (first, Some(link.fingerprint))
        }
        None => {
            let server = cli.server.clone().or(cfg.server).ok_or_else(|| {
                anyhow!(
                    "no server given: pass --server HOST:PORT or --invite LINK, or set `server` in the [client] table of a config file"
                )
            })?;
            let fingerprint = match flag_fingerprint {
                Some(f) => Some(f),
                None => cfg.fingerprint.as_deref().map(str::parse::<Fingerprint>).transpose().context("fingerprint")?,
            };
            (server, fingerprint)
        }
    };
    let user = cli
        .user
        .clone()
        .or(cfg.user)
        .or_else(|| std::env::var("USER").ok())
        .ok_or_else(|| anyhow!("no username given: pass --user NAME"))?;
    // Flags beat the environment, which beats a key issued by this server,
    // which beats the invite's, which beats the file (the issued key is
    // put in place by client-core; see `KeySource`).
    let env_key = env_key.filter(|k| !k.trim().is_empty());
    let read =
        |f: &PathBuf| std::fs::read_to_string(f).with_context(|| format!("cannot read key file {}", f.display()));
    let keys_dir = cfg.keys_dir.clone().or_else(client_core::key_store::default_dir);
    let (key_text, key_file, source) = match (&cli.key, &cli.key_file, env_key, &invite) {
        (Some(k), ..) => (k.clone(), None, KeySource::Explicit),
        (None, Some(f), ..) => (read(f)?, Some(f.clone()), KeySource::Explicit),
        (None, None, Some(k), _) => (k, None, KeySource::Explicit),
        (None, None, None, Some(link)) => (link.key.clone(), None, KeySource::Invite),
        (None, None, None, None) => match (cfg.key, cfg.key_file) {
            (Some(k), _) => (k, None, KeySource::Config),
            (None, Some(f)) => (read(&f)?, Some(f), KeySource::Config),
            // No key given, but this server issued us one.
            (None, None) => match keys_dir.as_deref().map(|d| KeyStore::new(d, &server).load()).transpose()? {
                Some(Some(kept)) => (kept.key.expose_text().to_owned(), None, KeySource::Config),
                _ => {
                    return Err(anyhow!(
                        "no server key given: pass --key-file FILE or --invite LINK, set CHATROOM_KEY, or set key_file in [client]"
                    ));
                }
            },
        },
    };
    let key = client_core::Psk::parse(&key_text).context("the server key")?;
    let mut opts = ConnectOptions::new(server, user, key);
    opts.password = cli.password.clone().or(cfg.password);
    opts.account_password = password::from_env(password::ACCOUNT_PASSWORD_ENV);
    opts.fingerprint = fingerprint;
    opts.known_servers = cfg.known_servers;
    opts.key_file = key_file;
    opts.key_source = source;
    opts.keys_dir = keys_dir;
    opts.reconnect = client_core::Reconnect { attempts: cli.reconnect, ..client_core::Reconnect::default() };
    opts.rooms = cli.room.iter().map(|r| room_name(r)).collect();
    // The other addresses, the pin, the room (as if given with --room,
    // after those that were).
    if let Some(link) = &invite {
        opts.invite(link);
    }
    if let Some(bad) = opts.rooms.iter().find(|r| protocol_room_check(r).is_err()) {
        return Err(anyhow!("--room {bad:?}: not a room name (letters, digits, - _ . ' :, no spaces)"));
    }
    opts.history = cli.no_history.then_some(0);
    Ok((opts, voice_cfg))
}

/// Puts the terminal back on the way out (the editor may hold it raw).
struct RestoreTerminal(Option<term::Terminal>);

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.restore();
        }
    }
}

async fn run(cli: Cli, opts: ConnectOptions, voice_cfg: ClientConfig, mut register: Option<Secret>) -> u8 {
    let log = logger(cli.verbose);
    let mut printer = Printer::new(if cli.json { Style::Json } else { Style::Plain }, opts.server.clone());
    // A person at a terminal gets the line editor; a pipe never does.
    let names = term::Names::default();
    let mut typed = None;
    let mut terminal = RestoreTerminal(None);
    if !cli.voice && !cli.listen && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        match term::spawn(names.clone()) {
            Ok((t, external, lines)) => {
                printer = printer.with_editor(external);
                terminal.0 = Some(t);
                typed = Some(lines);
            }
            Err(e) => debug!(log, "no line editor; reading stdin plainly"; "error" => %e),
        }
    }
    let printer = std::sync::Arc::new(printer);
    debug!(log, "connecting"; "server" => &opts.server, "user" => &opts.username);
    // The first --room is where lines go (and the voice room).
    let first_room = opts.rooms.first().cloned();
    let state = std::sync::Arc::new(std::sync::Mutex::new(Rooms::new(first_room.clone().map(Target::Room))));
    // A registered name refused for want of its account password: asked
    // for once on a terminal, then one more try.
    let mut retry = (opts.account_password.is_none() && std::io::stdin().is_terminal()).then(|| opts.clone());
    let (mut client, mut events) = Client::connect(opts);
    if cli.voice {
        // Flags beat the file; the file's table maps to options in client-core.
        let mut cfg = voice_cfg;
        cfg.input = cli.input.clone().or(cfg.input);
        cfg.output = cli.output.clone().or(cfg.output);
        cfg.denoise = if cli.no_denoise { Some(false) } else { cfg.denoise };
        cfg.aec = if cli.no_aec { Some(false) } else { cfg.aec };
        cfg.vad_threshold = cli.vad_threshold.or(cfg.vad_threshold);
        cfg.bitrate = cli.bitrate.or(cfg.bitrate);
        let mut options = cfg.voice_options();
        options.send.protect = !cli.no_protection;
        options.room = cli.echo_room.map(client_core::audio::room::Room::new);
        let wav_input = matches!(options.input, Input::Wav(_));
        let duration = cli.duration.filter(|d| d.is_finite() && *d >= 0.0).map(Duration::from_secs_f64);
        let voice = voice::Voice { options, room: first_room, duration, wav_input };
        return voice::run(client, events, printer, voice).await;
    }
    let mut stdin_task = None;
    // Lines are read once we are in the room they go to (or it was refused).
    let mut connected = false;
    let mut room_answered = first_room.is_none();
    // `--register` asked for and not answered yet; or refused.
    let (mut register_asked, mut register_denied) = (false, false);
    let mut signals = Signals::new();
    let quitting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let event = tokio::select! {
            ev = events.recv() => ev,
            () = signals.next() => {
                if quitting.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    eprintln!("client-cli: interrupted again; exiting without waiting for acknowledgements");
                    return 130;
                }
                if std::io::stderr().is_terminal() {
                    printer.note("client-cli: leaving (press Ctrl-C again to exit at once)");
                }
                let c = client.clone();
                tokio::spawn(async move { let _ = c.quit().await; });
                continue;
            }
        };
        let Some(event) = event else { return 5 };
        if let Event::Disconnected { reason: client_core::DisconnectReason::Refused { code, reason, .. }, .. } = &event
            && *code == RefusalCode::AccountPassword
            && !connected
            && let Some(mut again) = retry.take()
        {
            printer.note(&format!("client-cli: {}", escape_line(reason)));
            let prompt = format!("Account password for {}: ", escape_line(&again.username));
            match tokio::task::spawn_blocking(move || password::read_hidden(&prompt)).await {
                Ok(Ok(p)) => {
                    // The first try's task ends (its resume store unlocked)
                    // before the second starts.
                    while events.recv().await.is_some() {}
                    again.account_password = Some(p);
                    (client, events) = Client::connect(again);
                    continue;
                }
                Ok(Err(e)) => printer.note(&format!("client-cli: {e:#}")),
                Err(e) => printer.note(&format!("client-cli: {e}")),
            }
        }
        names.apply(&event);
        let applied = state.lock().map_or(Applied::Other, |mut s| s.apply(&event));
        if let Event::Connected { fingerprint, trust, .. } = &event {
            // How the identity was trusted comes before what follows from it.
            if *trust == Trust::FirstUse {
                printer.note(&format!(
                    "client-cli: first contact with {}; trusting its identity {fingerprint} from now on",
                    escape_line(printer.server())
                ));
            }
            debug!(log, "connected"; "fingerprint" => %fingerprint, "trust" => ?trust);
        }
        if let Event::Disconnected { .. } = &event
            && let Some(t) = terminal.0.take()
        {
            // The last lines go straight to the terminal, below the prompt.
            t.restore();
            printer.detach_editor();
        }
        // A message held already (delivered again by a catch-up) is not shown twice.
        if applied != Applied::Duplicate {
            printer.print(&event);
        }
        match &event {
            Event::Connected { registered, .. } => {
                connected = true;
                if let Some(p) = register.take() {
                    if *registered {
                        printer.note(
                            "client-cli: --register: this name is registered already (logged in with its password)",
                        );
                    } else {
                        let c = client.clone();
                        let notes = printer.clone();
                        register_asked = true;
                        tokio::spawn(async move {
                            if let Err(e) = c.register(p).await {
                                notes.note(&format!("client-cli: --register: {e}"));
                            }
                        });
                    }
                }
            }
            Event::Done { action, .. } if action == "register" => register_asked = false,
            // `--register` refused: leave, and say so in the exit code.
            Event::Denied { action, .. } if action == "register" && register_asked => {
                register_asked = false;
                register_denied = true;
                let c = client.clone();
                tokio::spawn(async move {
                    let _ = c.quit().await;
                });
            }
            Event::RoomJoined { room, .. } | Event::JoinRefused { room, .. }
                if first_room.as_deref().is_some_and(|f| same_room(f, room)) =>
            {
                room_answered = true;
            }
            Event::Acked { id, server_id, .. } => debug!(log, "acknowledged"; "id" => id, "server_id" => server_id),
            _ => {}
        }
        if connected && room_answered && !cli.listen && stdin_task.is_none() {
            let me = state.lock().map(|s| s.me().to_owned()).unwrap_or_default();
            let input = line::Input { client: client.clone(), printer: printer.clone(), state: state.clone() };
            stdin_task = Some(match (typed.take(), &terminal.0) {
                (Some(lines), Some(t)) => {
                    t.start(format!("{}> ", escape_line(&me)));
                    tokio::spawn(line::pump_typed(input, lines, quitting.clone()))
                }
                _ => tokio::spawn(line::pump_stdin(input)),
            });
        }
        if let Event::Disconnected { reason, .. } = &event {
            if let Some(t) = stdin_task {
                t.abort();
            }
            // Give stdout a moment to drain on a slow pipe before exiting.
            tokio::time::sleep(Duration::from_millis(1)).await;
            if register_denied && matches!(reason, client_core::DisconnectReason::Quit) {
                return 3;
            }
            return exit_code(reason);
        }
    }
}

/// Whether two room names are the same room.
fn same_room(a: &str, b: &str) -> bool {
    client_core::rooms::name_key(a) == client_core::rooms::name_key(b)
}

fn list_devices() -> ExitCode {
    match client_core::audio::device::list_devices() {
        Ok((inputs, outputs)) => {
            println!("input devices:");
            for d in inputs {
                println!("  {d}");
            }
            println!("output devices:");
            for d in outputs {
                println!("  {d}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("client-cli: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGINT and SIGTERM as one stream.
pub(crate) struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub(crate) fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self { int: signal(SignalKind::interrupt()).ok(), term: signal(SignalKind::terminate()).ok() }
    }

    pub(crate) async fn next(&mut self) {
        let int = async {
            match &mut self.int {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let term = async {
            match &mut self.term {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! { () = int => {}, () = term => {} }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_password_may_start_with_a_hyphen() {
        let key = format!("-{}=", "A".repeat(42));
        let cli = Cli::try_parse_from(["client-cli", "--key", &key, "--password", "-pw", "--server", "h:1"])
            .expect("hyphen values parse");
        assert_eq!((cli.key.as_deref(), cli.password.as_deref()), (Some(key.as_str()), Some("-pw")));
        assert_eq!(cli.server.as_deref(), Some("h:1"));
        let cli =
            Cli::try_parse_from(["client-cli", "--room", "#dev", "--room", "ops", "--no-history"]).expect("parses");
        assert_eq!((cli.room, cli.no_history), (vec!["#dev".to_owned(), "ops".to_owned()], true));
        // Unknown flags are still refused.
        assert!(Cli::try_parse_from(["client-cli", "--frobnicate"]).is_err());
    }

    /// A config file with `body` as its [client] table, the keys
    /// directory inside the same temporary directory.
    fn config(dir: &std::path::Path, body: &str) -> PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(&path, format!("[client]\nkeys_dir = \"keys\"\n{body}")).expect("write");
        path
    }

    fn link(room: Option<&str>) -> InviteLink {
        InviteLink {
            addresses: vec!["a.example:7878".into(), "[2001:db8::1]:7878".into()],
            key: client_core::Psk::generate(),
            fingerprint: Fingerprint::of_der(b"server"),
            room: room.map(str::to_owned),
        }
    }

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["client-cli", "--user", "alice"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parses")
    }

    #[test]
    fn an_invite_fills_server_key_pin_and_room() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path(), "server = \"elsewhere:1\"\nfingerprint = \"SHA256:nope\"\n");
        let invite = link(Some("lobby"));
        let text = invite.to_string();
        let cli = parse(&["-c", cfg.to_str().unwrap_or_default(), "--invite", &text, "--room", "dev"]);
        let (opts, _) = options(&cli, None).expect("options");
        assert_eq!(opts.server, "a.example:7878");
        assert_eq!(opts.alternates, vec!["[2001:db8::1]:7878".to_owned()]);
        assert_eq!(opts.fingerprint, Some(invite.fingerprint), "pinned: no trust question");
        assert_eq!((opts.key.expose_text(), opts.key_source), (invite.key.as_str(), KeySource::Invite));
        assert_eq!(opts.rooms, vec!["dev".to_owned(), "lobby".to_owned()]);
        assert_eq!(opts.keys_dir, Some(dir.path().join("keys")));
        // --server naming the second address: tried first.
        let cli = parse(&["-c", cfg.to_str().unwrap_or_default(), "--invite", &text, "-s", "[2001:db8::1]:7878"]);
        let (opts, _) = options(&cli, None).expect("options");
        assert_eq!((opts.server.as_str(), opts.alternates), ("[2001:db8::1]:7878", vec!["a.example:7878".to_owned()]));
    }

    #[test]
    fn flags_that_disagree_with_an_invite_are_usage_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path(), "");
        let cfg = cfg.to_str().unwrap_or_default();
        let text = link(None).to_string();
        let other = Fingerprint::of_der(b"impostor").to_string();
        let e = options(&parse(&["-c", cfg, "--invite", &text, "--server", "b.example:7878"]), None)
            .expect_err("another server");
        assert!(e.to_string().contains("not one of the --invite link's addresses"), "{e}");
        let e = options(&parse(&["-c", cfg, "--invite", &text, "--fingerprint", &other]), None)
            .expect_err("another fingerprint");
        assert!(e.to_string().contains("disagrees with the --invite link"), "{e}");
        let e = options(&parse(&["-c", cfg, "--invite", "https://a.example:7878/"]), None).expect_err("not a link");
        assert!(format!("{e:#}").contains("chatroom://"), "{e:#}");
    }

    #[test]
    fn a_named_key_beats_the_invite_and_a_kept_key_needs_no_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path(), &format!("key = \"{}\"\n", client_core::Psk::generate()));
        let cfg = cfg.to_str().unwrap_or_default();
        let invite = link(None);
        let text = invite.to_string();
        let named = client_core::Psk::generate();
        let (opts, _) = options(&parse(&["-c", cfg, "--invite", &text, "--key", &named]), None).expect("options");
        assert_eq!((opts.key.expose_text(), opts.key_source), (named.as_str(), KeySource::Explicit));
        let (opts, _) = options(&parse(&["-c", cfg, "--invite", &text]), Some(named.clone())).expect("options");
        assert_eq!((opts.key.expose_text(), opts.key_source), (named.as_str(), KeySource::Explicit), "CHATROOM_KEY");
        // The invite's key beats the file's.
        let (opts, _) = options(&parse(&["-c", cfg, "--invite", &text]), None).expect("options");
        assert_eq!(opts.key_source, KeySource::Invite);
        let (opts, _) = options(&parse(&["-c", cfg, "-s", "a.example:7878"]), None).expect("options");
        assert_eq!(opts.key_source, KeySource::Config);

        // No key anywhere: refused, unless this server issued one.
        let bare = config(dir.path(), "");
        let bare = bare.to_str().unwrap_or_default();
        let e = options(&parse(&["-c", bare, "-s", "a.example:7878"]), None).expect_err("no key");
        assert!(e.to_string().contains("no server key given"), "{e}");
        let issued = client_core::Psk::parse(&client_core::Psk::generate()).expect("key");
        KeyStore::new(&dir.path().join("keys"), "a.example:7878").save(&issued, None).expect("kept");
        let (opts, _) = options(&parse(&["-c", bare, "-s", "a.example:7878"]), None).expect("the kept key");
        assert_eq!((opts.key.id(), opts.key_source), (issued.id(), KeySource::Config));
    }
}
