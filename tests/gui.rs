//! The desktop client driven by `iced_test`'s `Emulator` (which runs tasks
//! and subscriptions, so the real connection runs) against a real server on
//! loopback, with `client-cli` users on the other side. Clicks and typing
//! go through the widgets, as a user's would.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use client_core::{DisconnectReason, Event, Fingerprint};
use client_iced::screen::{chat, connect};
use iced_test::core::{Point, Rectangle, Size, mouse, widget};
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
        // The pointer arrives first, then clicks (as a hand does; a
        // scrollable ignores a press that comes with the move in one batch).
        self.run(Instruction::Interact(Interaction::Mouse(Mouse::Move(Target::Point(at)))));
        self.run(Instruction::Interact(Interaction::Mouse(Mouse::Click { button: mouse::Button::Left, target: None })));
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
    g.wait_for_text("#general (2)");
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

    // Someone else enters voice: logged, with a volume and a local mute for them.
    let mut dave = server.spawn_cli("dave", &["--voice", "--input", "null", "--output", "null"]);
    dave.expect_contains("* you joined voice");
    g.wait_for_text("dave joined voice");
    g.wait_for_text("100 %");
    g.click("mute");
    g.wait_for_text("unmute");
    dave.signal("INT");
    assert_eq!(dave.wait(), 0, "{}", dave.stderr());
    g.wait_for_text("dave left voice");

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
fn history_pages_in_and_own_lines_are_edited_and_deleted_through_the_server() {
    // A join delivers the last 3 stored lines; older ones page in.
    let server = TestServer::with_config("history_on_join = 3");
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!("fingerprint = \"{}\"\n", server.fingerprint);
    let config = client_config(dir.path(), &server, "gui", &extra);
    let mut bob = server.listener("bob");
    let mut alice = server.spawn_cli("alice", &[]);
    alice.expect_contains("connected to");
    for i in 1..=5 {
        alice.send(&format!("old line {i}"));
        wait_line(&mut bob, &format!("old line {i}"));
    }

    let mut g = gui(&config);
    g.type_into(client_iced::screen::connect::ids::KEY, &server.key);
    g.click("Connect");
    g.wait_for_text("old line 5");
    assert!(g.text_containing("old line 1").is_none(), "only the last 3 on joining:\n{}", g.texts());
    g.click("Load older messages");
    g.wait_for_text("old line 1");
    g.wait_for_text("Start of #general's history");
    assert!(g.text_containing("Load older messages").is_none(), "{}", g.texts());

    // Our line, once stored, has Edit and Delete.
    g.type_into(client_iced::screen::chat::INPUT, "helo");
    g.press(Key::Enter);
    wait_line(&mut bob, "<gui> helo");
    g.wait_for_text("Delete");
    g.click("Edit");
    g.wait_for_text("Editing message");
    g.type_into(client_iced::screen::chat::INPUT, "!");
    g.press(Key::Enter);
    let edited = bob.expect_contains("* gui edited #general");
    assert!(edited.contains("helo!"), "{edited}");
    g.wait_for_text("(edited)");
    assert!(g.text_containing("Editing message").is_none(), "{}", g.texts());

    g.click("Delete");
    wait_line(&mut bob, "was deleted");
    g.wait_for_text("message deleted");
    assert!(g.text_containing("helo!").is_none(), "{}", g.texts());
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
    assert!(g.text_containing("Trusted before").is_some() && g.text_containing(wrong).is_some(), "{}", g.texts());
    assert!(g.text_containing("Presented now").is_some(), "{}", g.texts());
    assert!(g.text_containing(&server.fingerprint).is_some(), "{}", g.texts());
    // One click does not trust it: the button waits for the pasted fingerprint.
    g.click("Trust the new identity and connect");
    g.settle();
    assert!(g.text_containing("SERVER IDENTITY CHANGED").is_some(), "{}", g.texts());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("known_servers")).expect("pins"),
        format!("{} {wrong}\n", server.addr)
    );
    // The admin's fingerprint, pasted: the pin is replaced and the user is in.
    g.type_into(client_iced::screen::connect::ids::NEW_FINGERPRINT, &server.fingerprint);
    g.wait_for_text("It matches what the server presents");
    g.click("Trust the new identity and connect");
    g.wait_for_text("#general (2)");
    let pins = std::fs::read_to_string(dir.path().join("known_servers")).expect("pins");
    assert!(pins.contains(&server.fingerprint) && !pins.contains(wrong), "{pins}");
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
    g.wait_for_text("#general (1)");
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
    g.wait_for_text("#general (1)");

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

// Layout checks: the screens' views in `iced_test`'s Simulator at the
// sizes a newcomer tried (no server needed).

const WINDOW: Size = Size::new(1024.0, 700.0);
const SMALL: Size = Size::new(800.0, 600.0);

fn simulator<'a, M>(
    size: Size,
    view: iced_test::core::Element<'a, M, iced_test::core::Theme, iced_test::renderer::Renderer>,
) -> Simulator<'a, M> {
    Simulator::with_size(iced_test::core::Settings::default(), size, view)
}

/// Layout and visible bounds of the first text containing `needle`.
fn text_at<M>(sim: &mut Simulator<'_, M>, needle: &str) -> Option<(Rectangle, Option<Rectangle>)> {
    sim.find(|c: Candidate<'_>| match c {
        Candidate::Text { content, bounds, visible_bounds, .. } if content.contains(needle) => {
            Some((bounds, visible_bounds))
        }
        _ => None,
    })
    .ok()
}

/// Asserts that a text containing `needle` is shown whole inside a window of `size`.
fn assert_in_window<M>(sim: &mut Simulator<'_, M>, size: Size, needle: &str) {
    let (bounds, visible) = text_at(sim, needle).unwrap_or_else(|| panic!("no text containing {needle:?}"));
    let window = Rectangle::new(Point::ORIGIN, size);
    // Visible as laid out, to a rounding error: not clipped by a container.
    let whole = visible.is_some_and(|v| {
        [(v.x, bounds.x), (v.y, bounds.y), (v.width, bounds.width), (v.height, bounds.height)]
            .iter()
            .all(|(a, b)| (a - b).abs() < 0.5)
    });
    assert!(whole, "{needle:?} is cut off: {bounds:?} visible {visible:?}");
    assert!(
        bounds.x >= 0.0
            && bounds.y >= 0.0
            && bounds.x + bounds.width <= window.width
            && bounds.y + bounds.height <= window.height,
        "{needle:?} at {bounds:?} is outside the {size:?} window"
    );
}

fn fingerprint(c: char, last: char) -> Fingerprint {
    format!("SHA256:{}{last}", c.to_string().repeat(42)).parse().expect("fingerprint")
}

fn filled_form() -> connect::Connect {
    connect::Connect {
        server: "chat.example.org:7878".into(),
        username: "dana".into(),
        key: "A".repeat(43) + "=",
        ..connect::Connect::default()
    }
}

#[test]
fn a_changed_identity_shows_both_fingerprints_and_the_fix_at_800x600() {
    let (expected, actual) = (fingerprint('A', 'A'), fingerprint('B', 'E'));
    let mut form = filled_form();
    form.failed(&DisconnectReason::IdentityMismatch {
        server: form.server.clone(),
        expected,
        actual,
        known_servers: Some(PathBuf::from("/home/dana/.local/share/socket-chatroom/known_servers")),
    });
    for size in [SMALL, WINDOW] {
        let mut sim = simulator(size, form.view());
        for needle in [
            "SERVER IDENTITY CHANGED",
            &expected.to_string(),
            &actual.to_string(),
            "Ask the server's admin for its fingerprint",
            "Trust the new identity and connect",
            "remove the line for chat.example.org:7878",
        ] {
            assert_in_window(&mut sim, size, needle);
        }
        // Never one click: the button does nothing until the fingerprint is pasted.
        let _ = sim.click("Trust the new identity and connect");
        assert_eq!(sim.into_messages().count(), 0);
    }

    // Pasting goes into the field (typed here).
    let mut sim = simulator(SMALL, form.view());
    let field = sim.find(widget::Id::new(connect::ids::NEW_FINGERPRINT)).expect("the paste field").bounds();
    sim.point_at(Point::new(field.x + field.width / 2.0, field.y + field.height / 2.0));
    sim.simulate(iced_test::simulator::click());
    sim.typewrite("SHA");
    let typed: Vec<_> = sim.into_messages().collect();
    assert_eq!(typed.last(), Some(&connect::Message::Pasted("SHA".into())), "{typed:?}");

    // A wrong fingerprint is said to be wrong and changes nothing.
    form.update(connect::Message::Pasted(expected.to_string()));
    let mut sim = simulator(SMALL, form.view());
    assert!(text_at(&mut sim, "not the fingerprint this server presents").is_some());
    drop(sim);
    assert!(matches!(form.update(connect::Message::Replace), connect::Action::None));

    // The admin's fingerprint, pasted: the button connects, pinning it.
    form.update(connect::Message::Pasted(format!("  {actual} ")));
    let mut sim = simulator(SMALL, form.view());
    sim.click("Trust the new identity and connect").expect("button");
    let messages: Vec<_> = sim.into_messages().collect();
    assert_eq!(messages, [connect::Message::Replace]);
    let connect::Action::Trust(request, pinned) = form.update(connect::Message::Replace) else {
        panic!("connects: {:?}", form.status)
    };
    assert_eq!((request.server.as_str(), pinned), ("chat.example.org:7878", actual));
}

#[test]
fn the_connect_form_does_not_move_when_an_error_appears() {
    let positions = |form: &connect::Connect, size: Size| -> Vec<Rectangle> {
        let mut sim = simulator(size, form.view());
        let mut at: Vec<Rectangle> =
            [connect::ids::SERVER, connect::ids::USERNAME, connect::ids::PASSWORD, connect::ids::KEY]
                .into_iter()
                .map(|id| sim.find(widget::Id::new(id)).unwrap_or_else(|e| panic!("{id}: {e}")).bounds())
                .collect();
        let remember = text_at(&mut sim, "Remember password and key").expect("remember-me").0;
        at.push(remember);
        at
    };
    for size in [SMALL, WINDOW] {
        let mut form = filled_form();
        let still = positions(&form, size);
        for status in [
            connect::Status::Error("Wrong server key: the server refused it.".into()),
            connect::Status::Error(
                "Cannot reach the server: connection refused (os error 111), and a long explanation that wraps \
                 onto a second and a third line of the error box under the form"
                    .into(),
            ),
            connect::Status::Connecting,
        ] {
            form.status = status.clone();
            assert_eq!(positions(&form, size), still, "{status:?} at {size:?}");
        }
        // The whole card fits the window, error included.
        form.status = connect::Status::Error("Wrong or missing password for this server.".into());
        let mut sim = simulator(size, form.view());
        assert_in_window(&mut sim, size, "Wrong or missing password");
        assert_in_window(&mut sim, size, "Connect");
    }
}

#[test]
fn the_voice_panel_logs_joins_shows_dbfs_and_has_per_user_volume() {
    let mut chat = chat::Chat::new("dana".into(), "h:1".into(), fingerprint('A', 'A'), vec!["dana".into()], 4096);
    chat.apply(Event::RoomJoined {
        room: "general".into(),
        topic: String::new(),
        users: vec!["dana".into(), "erin".into()],
        users_total: 2,
        voice: true,
        history: false,
    });
    // The list that comes with joining is who was there: not news.
    let voice = |room: &str, users: &[&str]| Event::VoiceUsers {
        room: room.into(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
    };
    chat.apply(voice("general", &["erin"]));
    // Another room's voice is not this panel's.
    chat.apply(voice("dev", &["zoe"]));
    chat.apply(Event::VoiceJoined { room: "general".into() });
    chat.apply(voice("dev", &["zoe", "yan"]));
    chat.apply(voice("general", &["carol", "dana", "erin"]));
    chat.meter = (0.1, true);
    let notices: Vec<String> = chat
        .log
        .iter()
        .filter_map(|e| match &e.kind {
            chat::Kind::Notice(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert!(notices.contains(&"carol joined voice".to_owned()), "{notices:?}");
    assert!(!notices.iter().any(|n| n.contains("erin") || n.contains("dana joined")), "{notices:?}");
    assert!(!notices.iter().any(|n| n.contains("zoe") || n.contains("yan")), "{notices:?}");
    assert_eq!(chat.voice_users, ["carol", "dana", "erin"]);

    let mut sim = simulator(WINDOW, chat.view());
    assert_in_window(&mut sim, WINDOW, "-20 dBFS");
    assert_in_window(&mut sim, WINDOW, "carol joined voice");
    assert_in_window(&mut sim, WINDOW, "100 %");
    sim.click("mute").expect("a mute button per voice user");
    let messages: Vec<_> = sim.into_messages().collect();
    assert_eq!(messages, [chat::Message::MuteUser("carol".into(), true)], "carol comes first");

    assert_eq!(chat.set_gain("carol", |g| g.muted = true), 0.0);
    assert_eq!(chat.set_gain("erin", |g| g.volume = 9.0), chat::MAX_VOLUME);
    let mut sim = simulator(WINDOW, chat.view());
    assert!(sim.find("unmute").is_ok());
    assert_in_window(&mut sim, WINDOW, "200 %");
    drop(sim);

    chat.apply(voice("general", &["dana", "erin"]));
    assert!(matches!(&chat.log.back().expect("line").kind, chat::Kind::Notice(n) if n == "carol left voice"));
    assert_eq!(chat::meter_label(chat::dbfs(0.0)), "≤ -60 dBFS");
}

#[test]
fn voice_device_errors_and_fallbacks_read_well() {
    let mut chat = chat::Chat::new("dana".into(), "h:1".into(), fingerprint('A', 'A'), vec!["dana".into()], 4096);
    chat.apply(Event::VoiceError("cannot open the audio output: the device disconnected.".into()));
    let chat::Kind::Error(e) = &chat.log.back().expect("line").kind else { panic!("an error line") };
    assert!(e.contains("disconnected. Choose") && !e.contains(".."), "{e}");
    chat.apply(Event::VoiceFallback(
        "no speakers (no default audio output device); the room is not played (output null)".into(),
    ));
    let chat::Kind::Notice(n) = &chat.log.back().expect("line").kind else { panic!("a notice") };
    assert!(n.starts_with("Voice: no speakers") && !n.contains(".."), "{n}");
}

#[test]
fn the_room_list_counts_unread_lines_and_shows_one_room_at_a_time() {
    use client_core::Target;
    let mut chat = chat::Chat::new("dana".into(), "h:1".into(), fingerprint('A', 'A'), vec!["dana".into()], 4096);
    let joined = |room: &str, voice: &[&str]| {
        vec![
            Event::RoomJoined {
                room: room.into(),
                topic: String::new(),
                users: vec!["dana".into(), "erin".into()],
                users_total: 2,
                voice: true,
                history: true,
            },
            Event::VoiceUsers { room: room.into(), users: voice.iter().map(|u| (*u).to_owned()).collect() },
        ]
    };
    let said = |id: u64, room: Option<&str>, text: &str| Event::Message {
        id,
        from: "erin".into(),
        text: text.into(),
        time: std::time::SystemTime::now(),
        room: room.map(Into::into),
        to: room.is_none().then(|| "dana".into()),
        history: false,
        edited: false,
    };
    for e in joined("general", &[]).into_iter().chain(joined("dev", &["frank"])) {
        chat.apply(e);
    }
    chat.apply(said(1, Some("general"), "hello general"));
    chat.apply(said(2, Some("dev"), "hello dev, @dana"));
    chat.apply(said(3, Some("dev"), "more dev"));
    chat.apply(said(4, None, "psst dana"));

    // #general is shown (the first room joined); #dev has 2 unread, 1 mention;
    // frank is in #dev's voice; erin wrote privately.
    let mut sim = simulator(WINDOW, chat.view());
    for needle in ["hello general", "#general", "#dev", "@1", "· frank", "Private", "erin"] {
        assert_in_window(&mut sim, WINDOW, needle);
    }
    assert!(text_at(&mut sim, "hello dev").is_none(), "another room's line is not shown here");
    assert!(text_at(&mut sim, "psst").is_none());
    sim.click("#dev").expect("a button per room");
    let messages: Vec<_> = sim.into_messages().collect();
    assert_eq!(messages, [chat::Message::Show(Target::Room("dev".into()))]);
    for m in messages {
        chat.update(m);
    }
    assert_eq!(chat.rooms.room("dev").map(|r| (r.unread, r.mentions)), Some((0, 0)), "read now");
    let mut sim = simulator(WINDOW, chat.view());
    assert_in_window(&mut sim, WINDOW, "hello dev, @dana");
    assert_in_window(&mut sim, WINDOW, "more dev");
    assert_in_window(&mut sim, WINDOW, "#dev (2)");
    assert!(text_at(&mut sim, "hello general").is_none());
    drop(sim);
    // What we type goes to the room shown.
    chat.update(chat::Message::Input("for dev".into()));
    let action = chat.update(chat::Message::Send);
    assert!(matches!(&action, chat::Action::Send { target: Some(Target::Room(r)), .. } if r == "dev"), "{action:?}");
    chat.update(chat::Message::Show(Target::User("erin".into())));
    let mut sim = simulator(WINDOW, chat.view());
    assert_in_window(&mut sim, WINDOW, "psst dana");
    assert!(text_at(&mut sim, "for dev").is_none());
}

/// A chat in #general with history on, amy's live lines 10 and 11, and more
/// stored on the server.
fn chat_with_history() -> chat::Chat {
    let mut chat = chat::Chat::new("dana".into(), "h:1".into(), fingerprint('A', 'A'), vec!["dana".into()], 4096);
    chat.apply(Event::RoomJoined {
        room: "general".into(),
        topic: String::new(),
        users: vec!["amy".into(), "dana".into()],
        users_total: 2,
        voice: false,
        history: true,
    });
    for (id, text, history) in [(8, "stored eight", true), (10, "live ten", false), (11, "live eleven", false)] {
        chat.apply(Event::Message {
            id,
            from: "amy".into(),
            text: text.into(),
            time: std::time::SystemTime::now(),
            room: Some("general".into()),
            to: None,
            history,
            edited: false,
        });
    }
    chat.apply(Event::HistoryEnd { room: "general".into(), more: true, older: true });
    chat
}

/// Clicks the first widget showing `label` in `chat`'s view; returns the
/// messages it produced.
fn click_in(chat: &chat::Chat, label: &str) -> Vec<chat::Message> {
    let mut sim = simulator(WINDOW, chat.view());
    sim.click(label).unwrap_or_else(|e| panic!("no {label:?}: {e}"));
    sim.into_messages().collect()
}

#[test]
fn load_older_messages_asks_for_the_page_before_the_oldest_line() {
    let mut chat = chat_with_history();
    let mut sim = simulator(WINDOW, chat.view());
    assert_in_window(&mut sim, WINDOW, "Load older messages");
    assert_in_window(&mut sim, WINDOW, "stored eight");
    drop(sim);
    let messages = click_in(&chat, "Load older messages");
    assert_eq!(messages, [chat::Message::LoadOlder]);
    let action = chat.update(chat::Message::LoadOlder);
    assert_eq!(
        action,
        chat::Action::Request(chat::Request::History { room: "general".into(), before: Some(8), limit: chat::PAGE })
    );
    // While it is fetched the button waits; the page goes above, unread stays 0.
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_at(&mut sim, "Loading older messages").is_some());
    let _ = sim.click("Loading older messages");
    assert_eq!(sim.into_messages().count(), 0, "disabled while loading");
    chat.apply(Event::Message {
        id: 3,
        from: "amy".into(),
        text: "stored three".into(),
        time: std::time::SystemTime::now(),
        room: Some("general".into()),
        to: None,
        history: true,
        edited: false,
    });
    chat.apply(Event::HistoryEnd { room: "general".into(), more: false, older: true });
    let mut sim = simulator(WINDOW, chat.view());
    let three = text_at(&mut sim, "stored three").expect("the page").0;
    let ten = text_at(&mut sim, "live ten").expect("live").0;
    assert!(three.y < ten.y, "older above newer");
    assert_in_window(&mut sim, WINDOW, "Start of #general's history");
    assert!(text_at(&mut sim, "Load older messages").is_none());
    assert_eq!(chat.rooms.room("general").map(|r| r.unread), Some(0), "history is never news");
}

/// Our line "helo" in #general, acknowledged as server id 42.
fn chat_with_own_line() -> chat::Chat {
    let mut chat = chat_with_history();
    chat.update(chat::Message::Input("helo".into()));
    let chat::Action::Send { local, text, target } = chat.update(chat::Message::Send) else { panic!("sends") };
    chat.queued(local, Ok(5));
    let sent = client_core::Outgoing::Chat { text, target };
    chat.apply(Event::Acked { id: 5, server_id: Some(42), sent: Some(sent) });
    chat
}

#[test]
fn edit_on_an_own_line_enters_edit_mode_and_sends_the_edit() {
    let mut chat = chat_with_own_line();
    // Only our own line has actions.
    let mut sim = simulator(WINDOW, chat.view());
    let edits = {
        let mut n = 0;
        let _ = sim.find(|c: Candidate<'_>| {
            if matches!(c, Candidate::Text { content: "Edit", .. }) {
                n += 1;
            }
            None::<()>
        });
        n
    };
    assert_eq!(edits, 1, "one Edit, on our line");
    drop(sim);
    let messages = click_in(&chat, "Edit");
    assert_eq!(messages, [chat::Message::Edit(42)]);
    assert_eq!(chat.update(chat::Message::Edit(42)), chat::Action::FocusInput);
    assert_eq!(chat.input, "helo", "the text to fix is in the input");
    let mut sim = simulator(WINDOW, chat.view());
    assert_in_window(&mut sim, WINDOW, "Editing message");
    assert_in_window(&mut sim, WINDOW, "Save");
    // Typing goes into the input; Enter saves.
    let field = sim.find(widget::Id::new(chat::INPUT)).expect("the input").bounds();
    sim.point_at(Point::new(field.x + field.width / 2.0, field.y + field.height / 2.0));
    sim.simulate(iced_test::simulator::click());
    sim.typewrite("!");
    sim.tap_key(iced_test::core::keyboard::key::Named::Enter);
    let typed: Vec<_> = sim.into_messages().collect();
    assert!(typed.contains(&chat::Message::Input("helo!".into())), "{typed:?}");
    assert_eq!(typed.last(), Some(&chat::Message::Send), "{typed:?}");
    for m in typed {
        let action = chat.update(m);
        if action != chat::Action::None {
            assert_eq!(action, chat::Action::Request(chat::Request::Edit(42, "helo!".into())));
        }
    }
    assert_eq!(chat.editing, None);
    chat.apply(Event::Edited {
        id: 42,
        room: Some("general".into()),
        to: None,
        from: "dana".into(),
        text: "helo!".into(),
    });
    let mut sim = simulator(WINDOW, chat.view());
    assert_in_window(&mut sim, WINDOW, "helo!");
    assert_in_window(&mut sim, WINDOW, "(edited)");
    assert!(text_at(&mut sim, "Editing message").is_none());
    drop(sim);

    // Cancel leaves edit mode and the line as it was.
    chat.update(chat::Message::Edit(42));
    assert_eq!(click_in(&chat, "Cancel"), [chat::Message::CancelEdit]);
    chat.update(chat::Message::CancelEdit);
    assert_eq!((chat.editing, chat.input.as_str()), (None, ""));
}

#[test]
fn delete_on_an_own_line_sends_a_delete() {
    let mut chat = chat_with_own_line();
    let messages = click_in(&chat, "Delete");
    assert_eq!(messages, [chat::Message::Delete(42)]);
    assert_eq!(chat.update(chat::Message::Delete(42)), chat::Action::Request(chat::Request::Delete(42)));
    chat.apply(Event::Deleted { id: 42, room: Some("general".into()), to: None });
    let mut sim = simulator(WINDOW, chat.view());
    assert_in_window(&mut sim, WINDOW, "message deleted");
    assert!(text_at(&mut sim, "helo").is_none());
    assert!(sim.find("Delete").is_err(), "a deleted line has no actions");
}

#[test]
fn rooms_are_joined_from_the_list_and_a_member_click_opens_a_conversation() {
    use client_core::Target;
    let mut chat = chat_with_history();
    // Typing a name in the room list's field and pressing + Join.
    let mut sim = simulator(WINDOW, chat.view());
    assert_in_window(&mut sim, WINDOW, "+ Join");
    let field = sim.find(widget::Id::new(chat::JOIN)).expect("the join field").bounds();
    sim.point_at(Point::new(field.x + field.width / 2.0, field.y + field.height / 2.0));
    sim.simulate(iced_test::simulator::click());
    sim.typewrite("#dev");
    sim.tap_key(iced_test::core::keyboard::key::Named::Enter);
    let typed: Vec<_> = sim.into_messages().collect();
    assert_eq!(typed.last(), Some(&chat::Message::JoinRoom), "{typed:?}");
    let actions: Vec<_> = typed.into_iter().map(|m| chat.update(m)).collect();
    assert_eq!(actions.last(), Some(&chat::Action::Request(chat::Request::Join("dev".into()))));
    chat.apply(Event::RoomJoined {
        room: "dev".into(),
        topic: String::new(),
        users: vec!["dana".into()],
        users_total: 1,
        voice: false,
        history: true,
    });
    assert_eq!(chat.rooms.current(), Some(&Target::Room("dev".into())), "shown once joined");

    // amy, in #general's member list: a click opens a conversation.
    chat.update(chat::Message::Show(Target::Room("general".into())));
    let messages = click_in(&chat, "amy");
    assert!(messages.contains(&chat::Message::Show(Target::User("amy".into()))), "{messages:?}");
    chat.update(chat::Message::Show(Target::User("amy".into())));
    let mut sim = simulator(WINDOW, chat.view());
    assert_in_window(&mut sim, WINDOW, "Private");
    assert!(text_at(&mut sim, "live ten").is_none(), "the room's lines are not the conversation's");
    drop(sim);
    chat.update(chat::Message::Input("hi amy".into()));
    let action = chat.update(chat::Message::Send);
    assert!(matches!(&action, chat::Action::Send { target: Some(Target::User(u)), .. } if u == "amy"), "{action:?}");
}
