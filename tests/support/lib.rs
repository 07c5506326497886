//! Helpers for the end-to-end tests: start the real `server` binary on
//! `127.0.0.1:0` with a temporary config and HOME, drive real `client-cli`
//! processes through pipes, and speak the protocol from a raw socket.
//!
//! Every wait has a generous deadline and fails with what was seen so far;
//! nothing sleeps blindly.

// The login helpers return the server's refusal as it came: a large
// message, on a path that runs once per test login.
#![allow(missing_debug_implementations, clippy::unwrap_used, clippy::result_large_err)]

pub mod audio;
pub mod echo;
pub mod loss;
pub mod proxy;
pub mod tcp_proxy;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol::crypto::{Opener, Psk, Sealer};
use protocol::frame::FrameCodec;
use protocol::handshake::{ClientHandshake, ClientStep};
use protocol::message::{self, ClientMessage, ServerMessage};

/// How long any single expected event may take on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The checked-in identity the test server uses (no key generation per test).
pub const TEST_IDENTITY: &str = include_str!("../fixtures/test_identity.pem");
/// A second identity, for "the server's key changed".
pub const OTHER_IDENTITY: &str = include_str!("../fixtures/other_identity.pem");

/// Directory holding the workspace's binaries: `CHATROOM_BIN_DIR`, or the
/// profile directory this test binary was built into.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CHATROOM_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> (a test) or target/<profile>/<bin> -> target/<profile>
    let dir = exe.parent().expect("target dir");
    if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().unwrap_or(dir) } else { dir }.to_path_buf()
}

/// Path of a workspace binary; panics with how to build it when missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: run `cargo build --workspace --bins` first (or use scripts/test.sh)",
        p.display()
    );
    p
}

/// Writes a secret file with mode 0600.
pub fn write_secret(path: &Path, contents: &str) {
    std::fs::write(path, contents).expect("write secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// The loopback address 127.0.0.`n` (127.0.0.2 and up play other hosts).
pub fn host(n: u8) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, n))
}

/// Whether the server closes `c` within `within` (reading and dropping
/// whatever it sends first).
pub fn closed_within(c: &mut RawClient, within: Duration) -> bool {
    let end = Instant::now() + within;
    loop {
        match c.recv_frame(end.saturating_duration_since(Instant::now())) {
            Ok(_) => {}
            Err(RecvError::Closed | RecvError::Other(_)) => return true,
            Err(RecvError::Timeout) => return false,
        }
    }
}

/// The wait a sealed "retry after" handshake answer asked for (as the
/// handshake error says it), if `detail` is one.
pub fn retry_after(detail: &str) -> Option<Duration> {
    let ms = detail.split("retry after ").nth(1)?.split(' ').next()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// A child process whose stdout lines are collected by a thread.
pub struct Proc {
    /// The process.
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    name: String,
}

impl Proc {
    /// Spawns `cmd` with piped stdio.
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("stderr lock").push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        Self { child, stdin, lines: rx, seen: Vec::new(), stderr, name: name.to_owned() }
    }

    /// Writes one line to stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Waits until stderr holds `needle` (its reader thread may lag behind
    /// stdout); returns all of stderr.
    pub fn expect_stderr(&self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let err = self.stderr();
            if err.contains(needle) {
                return err;
            }
            if Instant::now() > end {
                panic!("{}", self.report(&format!("no {needle:?} on stderr")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every stdout line seen so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    fn report(&self, what: &str) -> String {
        format!("{}: {what}\n--- stdout so far:\n{}\n--- stderr:\n{}", self.name, self.seen.join("\n"), self.stderr())
    }

    /// Waits for a stdout line matching `pred` (lines before it are kept in
    /// [`Proc::seen`]); panics after [`DEADLINE`].
    pub fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("{}", self.report(&format!("timed out waiting for {what}"))),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}", self.report(&format!("stdout closed while waiting for {what}")))
                }
            }
        }
    }

    /// Waits for a line containing `needle`.
    pub fn expect_contains(&mut self, needle: &str) -> String {
        self.expect(&format!("a line containing {needle:?}"), |l| l.contains(needle))
    }

    /// Waits for the process to exit; returns its exit code. Reads the rest
    /// of stdout into [`Proc::seen`].
    pub fn wait(&mut self) -> i32 {
        self.close_stdin();
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Drain what is left of stdout.
                let drain_end = Instant::now() + Duration::from_secs(5);
                while let Ok(line) = self.lines.recv_timeout(drain_end.saturating_duration_since(Instant::now())) {
                    self.seen.push(line);
                }
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("{}", self.report("did not exit in time"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, ...).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(ok.success(), "kill -{sig} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running server in a temporary directory, with a temporary HOME for
/// the clients it is used with.
pub struct TestServer {
    /// The server process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its pre-shared key.
    pub key: String,
    /// Its identity fingerprint.
    pub fingerprint: String,
    /// Temporary directory holding config, keys and `home/`.
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// A server with the default config.
    pub fn start() -> Self {
        Self::with_config("")
    }

    /// A server whose pre-shared key file holds `key` before it starts.
    pub fn with_key(key: &str) -> Self {
        Self::with_setup("", |dir| write_secret(&dir.join("server.key"), key))
    }

    /// A server whose `[server]` table has `extra` appended.
    pub fn with_config(extra: &str) -> Self {
        Self::with_setup(extra, |_| {})
    }

    fn with_setup(extra: &str, setup: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write_secret(&dir.path().join("identity.pem"), TEST_IDENTITY);
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        let config = format!(
            "[server]\nbind = \"127.0.0.1:0\"\nkey_file = \"server.key\"\nidentity_file = \"identity.pem\"\nshutdown_grace_secs = 10\n{extra}\n"
        );
        // 0600: it may hold a password.
        write_secret(&dir.path().join("config.toml"), &config);
        setup(dir.path());
        Self::launch(dir)
    }

    /// Starts the server on an existing directory (config.toml inside).
    pub fn launch(dir: tempfile::TempDir) -> Self {
        let mut cmd = Command::new(bin("server"));
        cmd.arg("--config").arg(dir.path().join("config.toml")).current_dir(dir.path());
        Self::launch_cmd(dir, cmd)
    }

    /// Starts the server with `cmd` (which runs it, e.g. under a shell that
    /// sets limits first) on an existing directory.
    pub fn launch_cmd(dir: tempfile::TempDir, mut cmd: Command) -> Self {
        cmd.current_dir(dir.path());
        let mut proc = Proc::spawn("server", cmd);
        let line = proc.expect_contains("listening on ");
        let addr: SocketAddr =
            line.rsplit(' ').next().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("no address in {line:?}"));
        let fp_line = proc.expect_contains("Server identity: ");
        let fingerprint = fp_line.trim_start_matches("Server identity: ").trim().to_owned();
        let key = std::fs::read_to_string(dir.path().join("server.key")).expect("key file").trim().to_owned();
        Self { proc, addr, key, fingerprint, dir }
    }

    /// Starts a new server process on `dir` (keys, identity and config of
    /// an earlier one) listening on `addr` again, as after a restart.
    pub fn relaunch_at(dir: tempfile::TempDir, addr: SocketAddr) -> Self {
        let cfg = dir.path().join("config.toml");
        let text = std::fs::read_to_string(&cfg).expect("server config").replace("127.0.0.1:0", &addr.to_string());
        write_secret(&cfg, &text);
        Self::launch(dir)
    }

    /// `server admin ARGS…` for this server, as its own user (the
    /// operator): exit code, stdout, stderr.
    pub fn admin(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin("server"))
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .arg("admin")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("server admin runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// [`TestServer::admin`] that must succeed; its stdout.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.admin(args);
        assert_eq!(code, 0, "server admin {args:?}: {out} {err}");
        out
    }

    /// The clients' HOME.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A `client-cli` command for `user` against this server, with the key
    /// in the environment and HOME pointing at the temporary home.
    pub fn cli(&self, user: &str) -> Command {
        self.cli_at(&self.addr.to_string(), user)
    }

    /// As [`TestServer::cli`], with the server address spelled as given.
    pub fn cli_at(&self, server: &str, user: &str) -> Command {
        let mut cmd = Command::new(bin("client-cli"));
        cmd.arg("--server").arg(server).arg("--user").arg(user);
        cmd.env("CHATROOM_KEY", &self.key).env("HOME", self.home());
        for v in ["XDG_CONFIG_HOME", "XDG_DATA_HOME", "CHATROOM_PASSWORD"] {
            cmd.env_remove(v);
        }
        cmd
    }

    /// Starts `client-cli` for `user` with extra args.
    pub fn spawn_cli(&self, user: &str, args: &[&str]) -> Proc {
        let mut cmd = self.cli(user);
        cmd.args(args);
        Proc::spawn(&format!("client-cli {user}"), cmd)
    }

    /// Starts `client-cli` for `user` against `server` (another address for
    /// this server, e.g. a proxy) with extra args.
    pub fn spawn_cli_at(&self, server: &str, user: &str, args: &[&str]) -> Proc {
        let mut cmd = self.cli_at(server, user);
        cmd.args(args);
        Proc::spawn(&format!("client-cli {user}"), cmd)
    }

    /// Starts a listening client and waits until it is connected.
    pub fn listener(&self, user: &str) -> Proc {
        let mut p = self.spawn_cli(user, &["--listen"]);
        p.expect_contains("* connected to");
        p
    }

    /// Logs a raw client in; like a real client it waits when the server
    /// says "retry after" (many logins from one address at once).
    pub fn raw(&self, name: &str) -> RawClient {
        self.raw_with(name, None, None)
    }

    /// As [`TestServer::raw`], asking for `rooms` (absent: the defaults)
    /// and `history` messages per room.
    pub fn raw_with(&self, name: &str, rooms: Option<Vec<message::RoomJoin>>, history: Option<u32>) -> RawClient {
        let login = ClientMessage::Login {
            version: protocol::PROTOCOL_VERSION,
            username: name.to_owned(),
            password: None,
            resume: None,
            first_id: None,
            restored: false,
            rooms,
            history,
            account_password: None,
        };
        let end = Instant::now() + DEADLINE;
        loop {
            match RawClient::connect(self.addr).finish_login_as(&self.key, &login) {
                Ok(c) => return c,
                Err(ServerMessage::Error { detail }) if Instant::now() < end => match retry_after(&detail) {
                    Some(wait) => std::thread::sleep(wait),
                    None => panic!("raw login {name}: {detail}"),
                },
                Err(e) => panic!("raw login {name}: {e:?}"),
            }
        }
    }
}

/// Why a raw receive ended without a message.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing within the deadline.
    Timeout,
    /// The server closed the connection.
    Closed,
    /// Anything else.
    Other(String),
}

/// A protocol client on a blocking socket, for tests that need to misbehave.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
    sealer: Option<Sealer>,
    opener: Option<Opener>,
    keys: Option<protocol::crypto::SessionKeys>,
    /// The resume token from the welcome.
    pub resume: Option<String>,
    /// The rest of a batch frame.
    pending: std::collections::VecDeque<ServerMessage>,
}

impl RawClient {
    /// Connects without doing anything else.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self::connect_stream(stream)
    }

    /// Connects from the loopback address `from` (127.0.0.2 and up play
    /// other hosts).
    pub fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<Self> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(from, 0).into())?;
        socket.connect_timeout(&addr.into(), DEADLINE)?;
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true)?;
        Ok(Self::connect_stream(stream))
    }

    fn connect_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            codec: FrameCodec::new(16 << 20),
            sealer: None,
            opener: None,
            keys: None,
            resume: None,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// Handshake and login from the loopback address `from`.
    pub fn login_from(from: std::net::IpAddr, addr: SocketAddr, key: &str, name: &str) -> Result<Self, ServerMessage> {
        let c = Self::connect_from(from, addr).map_err(|e| ServerMessage::Error { detail: e.to_string() })?;
        c.finish_login(key, name, None, None)
    }

    /// Reads one frame.
    pub fn recv_frame(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(f) = self.codec.decode(&mut self.buf).map_err(|e| RecvError::Other(e.to_string()))? {
                return Ok(f.to_vec());
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| RecvError::Other(e.to_string()))?;
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Err(RecvError::Timeout);
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err(RecvError::Closed),
                Err(e) => return Err(RecvError::Other(e.to_string())),
            }
        }
    }

    /// Writes one frame.
    pub fn send_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut b = BytesMut::new();
        FrameCodec::new(usize::MAX).encode(payload, &mut b).map_err(std::io::Error::other)?;
        self.stream.write_all(&b)
    }

    /// Writes raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Runs the handshake with `key`.
    pub fn handshake(addr: SocketAddr, key: &str) -> Result<Self, String> {
        Self::connect(addr).do_handshake(key)
    }

    /// Runs the client handshake on this connection.
    pub fn do_handshake(mut self, key: &str) -> Result<Self, String> {
        let mut hs = ClientHandshake::new(Psk::parse(key).map_err(|e| e.to_string())?);
        loop {
            let frame = self.recv_frame(DEADLINE).map_err(|e| format!("{e:?}"))?;
            match hs.receive(&frame).map_err(|e| e.to_string())? {
                ClientStep::Send(reply) => self.send_frame(&reply).map_err(|e| e.to_string())?,
                ClientStep::Established(est) => {
                    let (s, o) = est.keys.client_text();
                    self.sealer = Some(s);
                    self.opener = Some(o);
                    self.keys = Some(est.keys);
                    return Ok(self);
                }
            }
        }
    }

    /// Handshake and login; returns the welcome's user list, or the refusal.
    pub fn login(addr: SocketAddr, key: &str, name: &str, password: Option<&str>) -> Result<Self, ServerMessage> {
        Self::login_resuming(addr, key, name, password, None)
    }

    /// As [`RawClient::login`], presenting a resume token.
    pub fn login_resuming(
        addr: SocketAddr,
        key: &str,
        name: &str,
        password: Option<&str>,
        resume: Option<String>,
    ) -> Result<Self, ServerMessage> {
        Self::connect(addr).finish_login(key, name, password, resume)
    }

    /// Handshake and login on this connection.
    pub fn finish_login(
        self,
        key: &str,
        name: &str,
        password: Option<&str>,
        resume: Option<String>,
    ) -> Result<Self, ServerMessage> {
        let login = ClientMessage::Login {
            version: protocol::PROTOCOL_VERSION,
            username: name.to_owned(),
            password: password.map(str::to_owned),
            resume,
            first_id: None,
            restored: false,
            rooms: None,
            history: None,
            account_password: None,
        };
        self.finish_login_as(key, &login)
    }

    /// Handshake and login with `login` as given (rooms, history).
    pub fn finish_login_as(self, key: &str, login: &ClientMessage) -> Result<Self, ServerMessage> {
        let mut c = self.do_handshake(key).map_err(|detail| ServerMessage::Error { detail })?;
        c.send(login);
        match c.recv(DEADLINE) {
            Ok(ServerMessage::Welcome { resume, .. }) => {
                c.resume = resume;
                Ok(c)
            }
            Ok(other) => Err(other),
            Err(e) => Err(ServerMessage::Error { detail: format!("{e:?}") }),
        }
    }

    /// Seals and sends a message.
    pub fn send(&mut self, msg: &ClientMessage) {
        let token = self.sealer.as_mut().expect("handshake done").seal(&message::encode(msg));
        let _ = self.send_frame(token.as_bytes());
    }

    /// Seals and sends arbitrary bytes as a message body.
    pub fn send_sealed_bytes(&mut self, body: &[u8]) {
        let token = self.sealer.as_mut().expect("handshake done").seal(body);
        let _ = self.send_frame(token.as_bytes());
    }

    /// Receives one message.
    pub fn recv(&mut self, timeout: Duration) -> Result<ServerMessage, RecvError> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Ok(m);
            }
            let frame = self.recv_frame(end.saturating_duration_since(Instant::now()))?;
            let plain = self
                .opener
                .as_mut()
                .expect("handshake done")
                .open(&frame)
                .map_err(|e| RecvError::Other(e.to_string()))?;
            // A batch comes apart here, as in client-core.
            message::decode_server(&plain, &mut self.pending).map_err(|e| RecvError::Other(e.to_string()))?;
        }
    }

    /// Receives until `pred` holds (skipping other messages).
    pub fn recv_until(&mut self, what: &str, pred: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        let end = Instant::now() + DEADLINE;
        let mut skipped = Vec::new();
        loop {
            match self.recv(end.saturating_duration_since(Instant::now())) {
                Ok(m) if pred(&m) => return m,
                Ok(m) => skipped.push(m),
                Err(e) => panic!("waiting for {what}: {e:?}; skipped {skipped:?}"),
            }
        }
    }

    /// Enters voice (in the first room with voice); returns the UDP side,
    /// bound on loopback.
    pub fn join_voice(&mut self) -> RawVoice {
        self.join_voice_in(None)
    }

    /// Enters the voice of `room`; returns the UDP side, bound on loopback.
    pub fn join_voice_in(&mut self, room: Option<&str>) -> RawVoice {
        self.send(&ClientMessage::VoiceJoin { room: room.map(str::to_owned) });
        let m = self.recv_until("voice joined", |m| matches!(m, ServerMessage::VoiceJoined { .. }));
        let ServerMessage::VoiceJoined { voice_id, udp_port, epoch, .. } = m else { unreachable!() };
        let keys = protocol::voice::voice_keys(self.keys.as_ref().expect("handshake done"), epoch);
        let server = SocketAddr::new(self.stream.peer_addr().expect("peer").ip(), udp_port);
        RawVoice::new(server, voice_id, epoch, keys)
    }

    /// Waits until the server closes the connection (reading and dropping
    /// whatever comes first).
    pub fn expect_closed(&mut self) {
        let end = Instant::now() + DEADLINE;
        loop {
            match self.recv_frame(end.saturating_duration_since(Instant::now())) {
                Ok(_) => {}
                Err(RecvError::Closed) => return,
                Err(RecvError::Other(_)) => return,
                Err(RecvError::Timeout) => panic!("server did not close the connection"),
            }
        }
    }
}

/// The UDP side of a raw client in voice.
pub struct RawVoice {
    /// The socket (bound on loopback; swap it to simulate a new address).
    pub socket: std::net::UdpSocket,
    /// Where the relay is.
    pub server: SocketAddr,
    /// Our voice id.
    pub id: u32,
    /// The join's key context.
    pub epoch: u32,
    sealer: protocol::voice::VoiceSealer,
    opener: protocol::voice::VoiceOpener,
    keys: ([u8; 32], [u8; 32]),
    seq: u32,
}

impl RawVoice {
    fn new(server: SocketAddr, id: u32, epoch: u32, keys: ([u8; 32], [u8; 32])) -> Self {
        use protocol::voice::{Direction, VoiceOpener, VoiceSealer};
        Self {
            socket: Self::fresh_socket(),
            server,
            id,
            epoch,
            sealer: VoiceSealer::new(&keys.0, Direction::Up),
            opener: VoiceOpener::new(&keys.1, Direction::Down),
            keys,
            seq: 0,
        }
    }

    /// A copy of `v`'s keys with counters back at 0, as a careless
    /// implementation reusing a join's keys would have.
    pub fn clone_keys_for_test(v: &RawVoice) -> RawVoice {
        RawVoice::new(v.server, v.id, v.epoch, v.keys)
    }

    /// A new loopback socket (a "new address").
    pub fn fresh_socket() -> std::net::UdpSocket {
        std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp")
    }

    /// Seals a packet of `kind` with `body` (not sent).
    pub fn seal(&mut self, kind: protocol::voice::Kind, body: &[u8]) -> Vec<u8> {
        let mut pkt = Vec::new();
        self.sealer.seal(kind, self.id, body, &mut pkt);
        pkt
    }

    /// A sealed voice packet carrying `frame` (not sent).
    pub fn voice_packet(&mut self, frame: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        protocol::voice::encode_voice_body(self.seq, false, &[frame], &mut body);
        self.seq += 1;
        self.seal(protocol::voice::Kind::Voice, &body)
    }

    /// Sends raw bytes to the relay from our socket.
    pub fn send_raw(&self, pkt: &[u8]) {
        self.socket.send_to(pkt, self.server).expect("send udp");
    }

    /// A sealed keepalive, padded as clients pad them (not sent).
    pub fn keepalive_packet(&mut self) -> Vec<u8> {
        self.seal(protocol::voice::Kind::Keepalive, &[0; protocol::voice::KEEPALIVE_PAD])
    }

    /// Sends a keepalive (which draws an address challenge while our
    /// address is unproven).
    pub fn keepalive(&mut self) {
        let pkt = self.keepalive_packet();
        self.send_raw(&pkt);
    }

    /// Echoes an address challenge from our socket.
    pub fn answer(&mut self, challenge: &[u8]) {
        let pkt = self.seal(protocol::voice::Kind::Proof, challenge);
        self.send_raw(&pkt);
    }

    /// Opens a packet from the relay with our down key (and replay window):
    /// its header and body.
    pub fn open(&mut self, pkt: &[u8]) -> Option<(protocol::voice::Header, Vec<u8>)> {
        let mut body = Vec::new();
        let h = self.opener.open(pkt, &mut body).ok()?;
        Some((h, body))
    }

    /// Receives one authentic packet of any kind: (header, body).
    pub fn recv_packet(&mut self, timeout: Duration) -> Option<(protocol::voice::Header, Vec<u8>)> {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            let Ok(n) = self.socket.recv(&mut buf) else { return None };
            if let Some(opened) = self.open(&buf[..n]) {
                return Some(opened);
            }
        }
    }

    /// Proves our address the way clients do: a keepalive, the relay's
    /// challenge, our echo (keepalives repeated until a challenge comes).
    pub fn prove(&mut self) {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            self.keepalive();
            let wait = Instant::now() + Duration::from_millis(300);
            while let Some((h, body)) = self.recv_packet(wait.saturating_duration_since(Instant::now())) {
                if h.kind == protocol::voice::Kind::Challenge {
                    self.answer(&body);
                    return;
                }
            }
        }
        panic!("the relay never challenged our address");
    }

    /// Sends a voice frame.
    pub fn say(&mut self, frame: &[u8]) {
        let pkt = self.voice_packet(frame);
        self.send_raw(&pkt);
    }

    /// Receives one authentic relayed voice packet: (speaker id, speaker
    /// seq, first frame). Address challenges met on the way are answered,
    /// as clients do.
    pub fn recv(&mut self, timeout: Duration) -> Option<(u32, u32, Vec<u8>)> {
        let end = Instant::now() + timeout;
        loop {
            let (h, body) = self.recv_packet(end.saturating_duration_since(Instant::now()))?;
            match h.kind {
                protocol::voice::Kind::Challenge => self.answer(&body),
                protocol::voice::Kind::Voice => {
                    let vb = protocol::voice::decode_voice_body(&body)?;
                    return Some((h.id, vb.seq, vb.frames[0].to_vec()));
                }
                _ => {}
            }
        }
    }

    /// Receives until a packet whose frame is `frame`; panics after [`DEADLINE`].
    /// Returns the frames seen before it.
    pub fn expect_frame(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        let end = Instant::now() + DEADLINE;
        let mut before = Vec::new();
        loop {
            match self.recv(end.saturating_duration_since(Instant::now())) {
                Some((_, _, f)) if f == frame => return before,
                Some((_, _, f)) => before.push(f),
                None => panic!("frame {:?} never arrived; saw {before:?}", String::from_utf8_lossy(frame)),
            }
        }
    }
}
