//! What a newcomer meets first, from the README on a fresh clone: the
//! server's "Join with" command, a key starting with `-`, voice on a
//! machine without a sound card, and typing in `client-cli` on a terminal
//! (driven through tmux) while messages arrive.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use socket_chatroom_tests::{DEADLINE, Proc, TestServer, audio, bin};

/// `s` as one shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn the_join_command_the_server_prints_works_as_written() {
    let mut server = TestServer::start();
    let mut bob = server.listener("bob");
    let command = server.proc.expect_contains("--fingerprint");
    let command = command.trim().to_owned();
    // Built binaries sit next to the server: its path, not a bare name
    // that is on nobody's PATH after the README's steps.
    let first = command.split(' ').next().unwrap_or_default();
    assert!(Path::new(first).is_absolute() && first.ends_with("client-cli"), "{command}");
    assert!(command.contains(&server.fingerprint) && command.ends_with("--user YOUR_NAME"), "{command}");

    let mut sh = Command::new("sh");
    sh.arg("-c").arg(&command).env("HOME", server.home()).current_dir(server.dir.path());
    for v in ["CHATROOM_KEY", "CHATROOM_PASSWORD", "XDG_CONFIG_HOME", "XDG_DATA_HOME"] {
        sh.env_remove(v);
    }
    let mut newcomer = Proc::spawn("join command", sh);
    newcomer.expect_contains("* connected to");
    newcomer.send("hello from the banner's command");
    bob.expect_contains("<YOUR_NAME> hello from the banner's command");
    assert_eq!(newcomer.wait(), 0, "{}", newcomer.stderr());
}

#[test]
fn a_key_starting_with_a_hyphen_is_accepted_by_key() {
    // Urlsafe base64: one key in 64 starts with '-'.
    let key = format!("-{}=", "A".repeat(42));
    let server = TestServer::with_key(&key);
    assert_eq!(server.key, key);
    let mut bob = server.listener("bob");
    let mut cmd = server.cli("alice");
    cmd.env_remove("CHATROOM_KEY").args(["--key", &key, "--fingerprint", &server.fingerprint]);
    let mut alice = Proc::spawn("client-cli alice", cmd);
    alice.expect_contains("* connected to");
    alice.send("my key starts with a hyphen");
    bob.expect_contains("<alice> my key starts with a hyphen");
    assert_eq!(alice.wait(), 0, "{}", alice.stderr());
}

#[test]
fn voice_without_a_sound_card_falls_back_to_null_quietly() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("hello.wav");
    audio::write_wav(&wav, &audio::speech_like(1.0));
    // An empty ALSA configuration: no device at all, on any machine, and
    // alsa-lib complains on stderr when asked for one.
    let alsa_conf = dir.path().join("empty-asound.conf");
    std::fs::write(&alsa_conf, "").expect("alsa conf");
    let mut cmd = server.cli("bot");
    cmd.env("ALSA_CONFIG_PATH", &alsa_conf).args(["--voice", "--input", wav.to_str().expect("utf8 path")]);
    let mut bot = Proc::spawn("client-cli --voice", cmd);
    let note = bot.expect_contains("* voice:");
    assert!(note.contains("no speakers") && note.contains("output null"), "{note}");
    bot.expect_contains("* you joined voice");
    assert_eq!(bot.wait(), 0, "plays the file and leaves: {}", bot.stderr());
    let stderr = bot.stderr();
    assert!(!stderr.contains("ALSA lib"), "alsa-lib's own lines never show:\n{stderr}");
    assert!(stderr.contains("client-cli: voice: sent"), "{stderr}");
    let fallbacks = bot.seen().iter().filter(|l| l.starts_with("* voice:")).count();
    assert_eq!(fallbacks, 1, "one line: {:?}", bot.seen());
}

/// A tmux server of our own (its socket in a temporary directory), killed
/// when dropped.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(command: &str, width: u16, height: u16) -> Self {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()),
            "tmux is needed for this test (scripts/test.sh installs it)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("tmux.sock");
        let tmux = Self { socket, _dir: dir };
        let (w, h) = (width.to_string(), height.to_string());
        let ok = tmux
            .cmd()
            .args(["-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", &w, "-y", &h, command])
            .args([";", "set-option", "-t", "t", "remain-on-exit", "on"])
            .status()
            .expect("run tmux");
        assert!(ok.success(), "tmux new-session failed");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    /// The screen, one string per line, trailing blanks trimmed.
    fn screen(&self) -> Vec<String> {
        let out = self.cmd().args(["capture-pane", "-p", "-t", "t"]).output().expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim_end().to_owned()).collect()
    }

    /// Types `keys` literally (no Enter).
    fn type_text(&self, keys: &str) {
        assert!(self.cmd().args(["send-keys", "-t", "t", "-l", keys]).status().expect("send-keys").success());
    }

    /// Presses named keys (`Enter`, `Tab`, `Up`, `C-u`).
    fn press(&self, key: &str) {
        assert!(self.cmd().args(["send-keys", "-t", "t", key]).status().expect("send-keys").success());
    }

    /// Waits until `check` holds for the screen; panics with the screen
    /// after [`DEADLINE`].
    fn wait_for(&self, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        let end = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}; the screen:\n{}", screen.join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last non-empty line (where the prompt is).
    fn last_line(screen: &[String]) -> &str {
        screen.iter().rev().find(|l| !l.is_empty()).map_or("", String::as_str)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

#[test]
fn typing_on_a_terminal_survives_incoming_messages() {
    let server = TestServer::start();
    let mut bob = server.spawn_cli("bob", &[]);
    bob.expect_contains("* connected to");
    // A home of alice's own: her first contact with the server.
    let home = tempfile::tempdir().expect("home");
    // The exit code is printed after the client ends (the pane stays).
    let command = format!(
        "env -u CHATROOM_PASSWORD -u XDG_CONFIG_HOME -u XDG_DATA_HOME HOME={} CHATROOM_KEY={} {} --server {} --user alice; \
         echo \"client-cli exited $?\"",
        quote(&home.path().display().to_string()),
        quote(&server.key),
        quote(&bin("client-cli").display().to_string()),
        server.addr
    );
    let tmux = Tmux::start(&command, 110, 24);

    // First contact: the trust note comes before the line it leads to.
    let screen = tmux.wait_for("the prompt", |s| Tmux::last_line(s) == "alice>");
    let trust = screen.iter().position(|l| l.contains("first contact with"));
    let connected = screen.iter().position(|l| l.starts_with("* connected to"));
    assert!(matches!((trust, connected), (Some(t), Some(c)) if t < c), "order:\n{}", screen.join("\n"));

    // Half a line typed, then someone else speaks.
    tmux.type_text("half typed line");
    tmux.wait_for("the typed text", |s| Tmux::last_line(s) == "alice> half typed line");
    bob.send("interrupting");
    let screen = tmux.wait_for("bob's message above the prompt", |s| {
        s.iter().any(|l| l.contains("<bob> interrupting")) && Tmux::last_line(s) == "alice> half typed line"
    });
    assert!(
        !screen.iter().any(|l| l.contains("half typed line") && l.contains("<bob>")),
        "the typed line is not broken:\n{}",
        screen.join("\n")
    );

    // Tab completes a name; Enter sends the whole line.
    tmux.type_text(" bo");
    tmux.press("Tab");
    tmux.wait_for("the completed name", |s| Tmux::last_line(s) == "alice> half typed line bob");
    tmux.press("Enter");
    bob.expect_contains("<alice> half typed line bob");

    // History: Up brings the line back; Ctrl-U clears it.
    tmux.press("Up");
    tmux.wait_for("the line from history", |s| Tmux::last_line(s) == "alice> half typed line bob");
    tmux.press("C-u");
    tmux.wait_for("an empty prompt", |s| Tmux::last_line(s) == "alice>");

    // Tab completes commands.
    tmux.type_text("/wh");
    tmux.press("Tab");
    tmux.wait_for("the completed command", |s| Tmux::last_line(s) == "alice> /who");
    tmux.press("Enter");
    tmux.wait_for("the answer to /who", |s| s.iter().any(|l| l.starts_with("* 2 here: ")));

    // /quit leaves politely: exit 0.
    tmux.type_text("/quit");
    tmux.press("Enter");
    bob.expect_contains("* alice left");
    tmux.wait_for("client-cli's exit", |s| s.iter().any(|l| l == "client-cli exited 0"));
}
