//! The desktop client driven by `iced_test`'s `Emulator` (which runs tasks
//! and subscriptions, so the real connection runs) against a real server on
//! loopback, with `client-cli` users on the other side. Clicks and typing
//! go through the widgets, as a user's would.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use iced_test::core::{Point, Size, mouse, widget};
use iced_test::emulator::{self, Emulator, Mode};
use iced_test::futures::futures::channel::mpsc;
use iced_test::instruction::{Interaction, Key, Keyboard, Mouse, Target};
use iced_test::program::Program;
use iced_test::selector::Candidate;
use iced_test::{Instruction, Simulator};
use socket_chatroom_tests::{Proc, TestServer};

const DEADLINE: Duration = Duration::from_secs(60);
const SIZE: Size = Size::new(1024.0, 768.0);

/// The application under test and its emulator.
struct Gui<P: Program + 'static> {
    program: P,
    emu: Emulator<P>,
    events: mpsc::Receiver<emulator::Event<P>>,
}

fn gui(config: &Path) -> Gui<impl Program<Message = client_iced::Message, State = client_iced::App> + 'static> {
    let program = client_iced::app(client_iced::Options { config_path: Some(config.to_owned()), ..Default::default() });
    let (tx, events) = mpsc::channel(1024);
    let emu = Emulator::new(tx, &program, Mode::Zen, SIZE);
    let mut g = Gui { program, emu, events };
    g.settle();
    g
}

impl<P: Program<Message = client_iced::Message, State = client_iced::App> + 'static> Gui<P> {
    /// Performs every action the emulator has produced so far.
    fn settle(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            match e {
                emulator::Event::Action(a) => self.emu.perform(&self.program, a),
                emulator::Event::Ready => {}
                emulator::Event::Failed(i) => panic!("instruction failed: {i}"),
            }
        }
    }

    fn find<T>(&self, what: impl FnMut(Candidate<'_>) -> Option<T> + Send) -> Option<T>
    where
        T: Clone + Send,
    {
        let view = self.emu.view(&self.program);
        let mut sim = Simulator::with_size(iced_test::core::Settings::default(), SIZE, view);
        sim.find(what).ok()
    }

    /// A text widget whose content contains `needle`.
    fn text_containing(&self, needle: &str) -> Option<String> {
        self.find(|c| match c {
            Candidate::Text { content, .. } if content.contains(needle) => Some(content.to_owned()),
            _ => None,
        })
    }

    /// Waits (running the application) until `needle` shows.
    fn wait_for_text(&mut self, needle: &str) -> String {
        self.wait_until(needle, |g| g.text_containing(needle))
    }

    fn wait_until<T>(&mut self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            self.settle();
            if let Some(t) = check(self) {
                return t;
            }
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}; the screen shows:\n{}", self.texts());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every text on screen, for failure messages.
    fn texts(&self) -> String {
        let view = self.emu.view(&self.program);
        let mut sim = Simulator::with_size(iced_test::core::Settings::default(), SIZE, view);
        let mut all = Vec::new();
        let _ = sim.find(|c: Candidate<'_>| {
            if let Candidate::Text { content, .. } = c {
                all.push(content.to_owned());
            }
            None::<()>
        });
        all.join(" | ")
    }

    fn run(&mut self, i: Instruction) {
        self.emu.run(&self.program, i);
        self.settle();
    }

    /// Clicks the widget showing exactly `label`.
    fn click(&mut self, label: &str) {
        assert!(self.text_containing(label).is_some(), "no {label:?} on screen:\n{}", self.texts());
        self.run(Instruction::Interact(Interaction::Mouse(Mouse::Click {
            button: mouse::Button::Left,
            target: Some(Target::Text(label.to_owned())),
        })));
    }

    /// Clicks into the field with widget id `id` and types `text`.
    fn type_into(&mut self, id: &'static str, text: &str) {
        let view = self.emu.view(&self.program);
        let mut sim = Simulator::with_size(iced_test::core::Settings::default(), SIZE, view);
        let target = sim.find(widget::Id::new(id)).unwrap_or_else(|e| panic!("no field {id}: {e}"));
        let b = target.bounds();
        drop(sim);
        let at = Point::new(b.x + b.width / 2.0, b.y + b.height / 2.0);
        self.run(Instruction::Interact(Interaction::Mouse(Mouse::Click {
            button: mouse::Button::Left,
            target: Some(Target::Point(at)),
        })));
        self.run(Instruction::Interact(Interaction::Keyboard(Keyboard::Typewrite(text.to_owned()))));
    }

    fn press(&mut self, key: Key) {
        self.run(Instruction::Interact(Interaction::Keyboard(Keyboard::Type(key))));
    }
}

/// A client config for the GUI in `dir`, pointing at `server`.
fn client_config(dir: &Path, server: &TestServer, user: &str, extra: &str) -> PathBuf {
    let path = dir.join("gui.toml");
    let known = dir.join("known_servers");
    let text = format!(
        "[client]\nserver = \"{}\"\nuser = \"{user}\"\nknown_servers = \"{}\"\ninput = \"null\"\noutput = \"null\"\n{extra}",
        server.addr,
        known.display()
    );
    socket_chatroom_tests::write_secret(&path, &text);
    path
}

fn wait_line(p: &mut Proc, needle: &str) {
    p.expect_contains(needle);
}

#[test]
fn connect_trust_chat_voice_and_quit() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = client_config(dir.path(), &server, "gui", "");
    let mut bob = server.listener("bob");
    let mut g = gui(&config);

    // The form is filled from the config; the key is pasted by the user.
    assert!(
        g.find(|c| matches!(c, Candidate::TextInput { state, .. } if state.text() == "gui").then_some(())).is_some()
    );
    g.type_into(client_iced::screen::connect::ids::KEY, &server.key);
    g.click("Connect");

    // First contact: the fingerprint is shown and nothing is pinned yet.
    g.wait_for_text("First connection to this server");
    assert!(g.text_containing(&server.fingerprint).is_some(), "fingerprint shown:\n{}", g.texts());
    assert!(!dir.path().join("known_servers").exists(), "not pinned before the user agrees");
    g.click("Trust and connect");
    g.wait_for_text("Users (2)");
    wait_line(&mut bob, "* gui joined");
    let pins = std::fs::read_to_string(dir.path().join("known_servers")).expect("pinned after trusting");
    assert!(pins.contains(&server.fingerprint), "{pins}");

    // Send with Enter; bob receives it; the GUI marks it delivered.
    g.type_into(client_iced::screen::chat::INPUT, "hello from the gui");
    g.press(Key::Enter);
    wait_line(&mut bob, "<gui> hello from the gui");
    g.wait_until("delivery", |g| g.text_containing("sending…").is_none().then_some(()));
    assert!(g.text_containing("not delivered").is_none(), "delivered:\n{}", g.texts());

    // Another user's message shows, with its sender.
    let mut carol = server.spawn_cli("carol", &[]);
    carol.expect_contains("connected to");
    carol.send("hi gui, from carol");
    g.wait_for_text("hi gui, from carol");
    assert!(g.text_containing("carol:").is_some(), "{}", g.texts());

    // Voice on and off (null audio backends: no sound card in CI).
    g.click("Connect Voice");
    g.wait_for_text("Disconnect Voice");
    g.wait_for_text("Voice (1)");
    g.click("Disconnect Voice");
    g.wait_for_text("Connect Voice");
    g.wait_for_text("Voice (0)");

    // `!DISCONNECT` leaves, like the original app; the form comes back.
    g.type_into(client_iced::screen::chat::INPUT, "!DISCONNECT");
    g.press(Key::Enter);
    wait_line(&mut bob, "* gui left");
    g.wait_for_text("Remember password and key on this computer");

    // Server and name were remembered; the key was not (not asked).
    let saved = std::fs::read_to_string(&config).expect("config");
    assert!(saved.contains("user = \"gui\"") && !saved.contains(&server.key), "{saved}");
}

#[test]
fn refusals_are_shown_in_place() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let _bob = server.listener("bob");

    // Wrong key.
    let config = client_config(dir.path(), &server, "gui", "");
    let mut g = gui(&config);
    g.type_into(client_iced::screen::connect::ids::KEY, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    g.click("Connect");
    g.wait_for_text("Wrong server key");

    // Name taken (the identity is trusted explicitly this time).
    let config = client_config(dir.path(), &server, "bob", &format!("fingerprint = \"{}\"\n", server.fingerprint));
    let mut g = gui(&config);
    g.type_into(client_iced::screen::connect::ids::KEY, &server.key);
    g.click("Connect");
    g.wait_for_text("That username is taken");
    assert!(g.text_containing("First connection to this server").is_none(), "a configured fingerprint is a pin");

    // Unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let path = dir.path().join("unreachable.toml");
    socket_chatroom_tests::write_secret(&path, &format!("[client]\nserver = \"{addr}\"\nuser = \"gui\"\n"));
    let mut g = gui(&path);
    g.type_into(client_iced::screen::connect::ids::KEY, &server.key);
    g.click("Connect");
    g.wait_for_text("Cannot reach the server");

    // A changed identity is refused, with both fingerprints, and no way around it.
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    std::fs::write(dir.path().join("known_servers"), format!("{} {wrong}\n", server.addr)).expect("pin");
    let config = client_config(dir.path(), &server, "gui", "");
    let mut g = gui(&config);
    g.type_into(client_iced::screen::connect::ids::KEY, &server.key);
    g.click("Connect");
    g.wait_for_text("SERVER IDENTITY CHANGED");
    assert!(g.text_containing(&format!("Expected: {wrong}")).is_some(), "{}", g.texts());
    assert!(g.text_containing(&format!("Presented: {}", server.fingerprint)).is_some(), "{}", g.texts());
    assert!(g.text_containing("Trust and connect").is_none());
}

#[test]
fn remember_me_stores_secrets_privately_and_refills_the_form() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = client_config(dir.path(), &server, "gui", &format!("fingerprint = \"{}\"\n", server.fingerprint));
    #[cfg(unix)]
    {
        // Start world-readable: saving a secret must tighten it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let mut g = gui(&config);
    g.type_into(client_iced::screen::connect::ids::KEY, &server.key);
    g.click("Remember password and key on this computer");
    g.click("Connect");
    g.wait_for_text("Users (1)");
    let saved = std::fs::read_to_string(&config).expect("config");
    assert!(saved.contains(&server.key), "{saved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&config).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    let again = client_iced::App::new(&client_iced::Options { config_path: Some(config), ..Default::default() });
    let form = again.connect_form();
    assert_eq!((form.key.as_str(), form.username.as_str(), form.remember), (server.key.as_str(), "gui", true));
}

#[test]
fn a_lost_connection_shows_a_banner_and_reconnects() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = client_config(dir.path(), &server, "gui", &format!("fingerprint = \"{}\"\n", server.fingerprint));
    let mut g = gui(&config);
    g.type_into(client_iced::screen::connect::ids::KEY, &server.key);
    g.click("Connect");
    g.wait_for_text("Users (1)");

    // The server goes away: a banner, not a dead window.
    let TestServer { mut proc, addr, dir: server_dir, .. } = server;
    proc.signal("TERM");
    proc.wait();
    g.wait_for_text("Reconnecting in");

    // It comes back on the same address: the GUI reconnects by itself.
    let _server = TestServer::relaunch_at(server_dir, addr);
    // Back-off may be long by now; the banner's button tries at once (or
    // the attempt already under way finds the server up).
    if g.text_containing("Reconnect now").is_some() {
        g.click("Reconnect now");
    }
    g.wait_for_text("Reconnected.");
    assert!(g.text_containing("Reconnecting in").is_none(), "banner gone:\n{}", g.texts());
}
