//! The application: routes messages between the screens, owns the
//! connection (through [`crate::subscription`]; client-core reconnects),
//! drives voice, and saves the user's choices to the client config file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use client_core::config::ClientConfig;
use client_core::voice::VoiceControls;
use client_core::{
    Client, ConnectOptions, DisconnectCause, DisconnectReason, Event, Fingerprint, FirstUse, MessageId, Reconnect,
    Target,
};
use iced::keyboard::{self, key::Named};
use iced::widget::operation;
use iced::{Element, Subscription, Task, Theme};
use slog::{Logger, debug, info, o, warn};

use crate::push_to_talk;
use crate::screen::account;
use crate::screen::chat::{self, Chat, Voice};
use crate::screen::connect::{self, Connect};
use crate::screen::settings;
use crate::style;
use crate::subscription::{self, Attempt, Update};

/// How long a polite quit may wait for the server's acknowledgements.
const QUIT_DEADLINE: Duration = Duration::from_secs(5);

/// How the application starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// The client config file: read at start, written by remember-me and
    /// settings (`None`: nothing is saved).
    pub config_path: Option<PathBuf>,
    /// Where the client logs (connection changes, never secrets).
    pub log: Logger,
}

impl Default for Options {
    fn default() -> Self {
        Self { config_path: None, log: Logger::root(slog::Discard, o!()) }
    }
}

/// Everything that happens.
#[derive(Debug, Clone)]
pub enum Message {
    /// On the connect screen.
    Connect(connect::Message),
    /// On the chat screen.
    Chat(chat::Message),
    /// In the settings dialog.
    Settings(settings::Message),
    /// From the connection with this attempt id.
    Core(u64, Update),
    /// Chat message `local` of attempt `attempt` was queued (its id) or refused.
    Sent {
        /// The attempt it was given to.
        attempt: u64,
        /// Its local number.
        local: u64,
        /// Its id, or why it was refused.
        result: Result<MessageId, String>,
    },
    /// A command was handed to the connection (`Err`: it had ended).
    Done(Result<(), String>),
    /// The quit of this attempt took too long.
    QuitTimeout(u64),
    /// Refresh the meters.
    Tick,
    /// A key no widget took (and Escape).
    Key(keyboard::Event),
    /// The window lost the keyboard focus.
    Unfocused,
}

/// Keys no widget took, Escape always (a focused field takes it to unfocus,
/// but it should still close the dialog on top), and focus loss.
fn key_event(event: iced::Event, status: iced::event::Status, _window: iced::window::Id) -> Option<Message> {
    match event {
        iced::Event::Keyboard(k) => {
            let escape = matches!(&k, keyboard::Event::KeyPressed { key: keyboard::Key::Named(Named::Escape), .. });
            (status == iced::event::Status::Ignored || escape).then_some(Message::Key(k))
        }
        iced::Event::Window(iced::window::Event::Unfocused) => Some(Message::Unfocused),
        _ => None,
    }
}

/// The application.
pub struct App {
    log: Logger,
    config_path: Option<PathBuf>,
    config: ClientConfig,
    /// The config file could not be read: never overwrite it.
    config_broken: bool,
    connect: Connect,
    chat: Option<Chat>,
    dialog: Option<settings::Dialog>,
    voice: settings::Voice,
    attempt: Option<Attempt>,
    client: Option<Client>,
    /// What the session was opened with.
    request: Option<(connect::Request, Option<Fingerprint>)>,
    /// The user asked to leave: whatever ends the session is final.
    quitting: bool,
    counter: u64,
    controls: VoiceControls,
    /// The push-to-talk key of the voice join in force, if that mode is on.
    push_to_talk: Option<push_to_talk::Binding>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("connected", &self.chat.is_some()).finish_non_exhaustive()
    }
}

/// The iced application, ready to `run()` (or to drive in tests).
pub fn app(options: Options) -> iced::Application<impl iced::Program<State = App, Message = Message, Theme = Theme>> {
    iced::application(
        move || {
            let app = App::new(&options);
            let focus = app.connect.first_focus();
            (app, operation::focus(focus))
        },
        App::update,
        App::view,
    )
    .title(App::title)
    .subscription(App::subscription)
    .theme(|_: &App| style::theme())
    .window_size((1024.0, 700.0))
}

impl App {
    /// Starts on the connect screen, filled from the config file.
    pub fn new(options: &Options) -> Self {
        let (config, load_error) = match &options.config_path {
            Some(p) if p.exists() => match ClientConfig::load(Some(p)) {
                Ok(c) => (c, None),
                Err(e) => (ClientConfig::default(), Some(format!("{e}. Fix it to have your settings saved."))),
            },
            _ => (ClientConfig::default(), None),
        };
        let key = config.key.clone().or_else(|| {
            config.key_file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).map(|k| k.trim().to_owned())
        });
        let mut connect = Connect {
            server: config.server.clone().unwrap_or_default(),
            username: config.user.clone().unwrap_or_default(),
            password: config.password.clone().unwrap_or_default(),
            key: key.unwrap_or_default(),
            remember: config.key.is_some() || config.password.is_some(),
            ..Connect::default()
        };
        if let Some(e) = &load_error {
            connect.config_error(e.clone());
        }
        Self {
            log: options.log.clone(),
            config_path: options.config_path.clone(),
            voice: settings::Voice::from_config(&config),
            config,
            config_broken: load_error.is_some(),
            connect,
            chat: None,
            dialog: None,
            attempt: None,
            client: None,
            request: None,
            quitting: false,
            counter: 0,
            controls: VoiceControls::new(),
            push_to_talk: None,
        }
    }

    /// The window title.
    pub fn title(&self) -> String {
        match &self.chat {
            Some(c) => format!("{} @ {} — Socket Chatroom", c.me, c.server),
            None => "Socket Chatroom".to_owned(),
        }
    }

    /// The chat screen's state, once logged in.
    pub fn chat(&self) -> Option<&Chat> {
        self.chat.as_ref()
    }

    /// The connect screen's state.
    pub fn connect_form(&self) -> &Connect {
        &self.connect
    }

    /// The options of the connection being made or in force (tests check
    /// what a form turned into).
    pub fn connecting_with(&self) -> Option<&ConnectOptions> {
        self.attempt.as_ref().map(|a| a.options.as_ref())
    }

    fn attempt_id(&self) -> Option<u64> {
        self.attempt.as_ref().map(|a| a.id)
    }

    /// The events the application listens to.
    pub fn subscription(&self) -> Subscription<Message> {
        let mut subs = vec![iced::event::listen_with(key_event)];
        if let Some(a) = &self.attempt {
            subs.push(subscription::connection(a).map(|(id, u)| Message::Core(id, u)));
        }
        if self.chat.as_ref().is_some_and(|c| c.voice == Voice::On) {
            subs.push(iced::time::every(Duration::from_millis(150)).map(|_| Message::Tick));
        }
        Subscription::batch(subs)
    }

    /// Applies a message.
    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Connect(m) => match self.connect.update(m) {
                connect::Action::None => Task::none(),
                connect::Action::Connect(r) => {
                    // A fingerprint in the config file is the user's explicit
                    // pin for the server in the config file, and only for it.
                    // An invite's pin is the newer word.
                    let pin = r.invite.as_ref().map(|l| l.fingerprint).or_else(|| {
                        (self.config.server.as_deref() == Some(r.server.as_str()))
                            .then(|| self.config.fingerprint.as_deref().and_then(|f| f.parse().ok()))
                            .flatten()
                    });
                    self.start(r, pin)
                }
                connect::Action::Trust(r, fp) => {
                    info!(self.log, "server trusted by the user"; "server" => &r.server, "fingerprint" => fp.to_string());
                    // A fingerprint for this server in the config file is its
                    // pin: a changed identity the user accepted replaces it there.
                    if self.config.server.as_deref() == Some(r.server.as_str()) && self.config.fingerprint.is_some() {
                        let mut config = self.config.clone();
                        config.fingerprint = Some(fp.to_string());
                        match self.save(&config) {
                            Ok(()) => self.config = config,
                            Err(e) => warn!(self.log, "could not save the new fingerprint"; "error" => e),
                        }
                    }
                    self.start(r, Some(fp))
                }
                connect::Action::Cancel => {
                    self.attempt = None;
                    self.client = None;
                    Task::none()
                }
                connect::Action::Settings => self.open_settings(),
            },
            Message::Chat(m) => self.chat_message(m),
            Message::Settings(m) => self.settings_message(m),
            Message::Core(id, u) => self.core(id, u),
            Message::Sent { attempt, local, result } => {
                if self.attempt_id() == Some(attempt)
                    && let Some(chat) = &mut self.chat
                {
                    chat.queued(local, result);
                }
                Task::none()
            }
            Message::Done(Ok(())) => Task::none(),
            Message::Done(Err(e)) => {
                if let Some(chat) = &mut self.chat {
                    chat.error(e);
                }
                Task::none()
            }
            Message::QuitTimeout(id) => {
                if self.quitting && self.attempt_id() == Some(id) {
                    warn!(self.log, "the server did not confirm our quit in time; leaving anyway");
                    return self.disconnected(DisconnectReason::Quit);
                }
                Task::none()
            }
            Message::Tick => {
                let speech = self.controls.speech_probability();
                if let Some(chat) = &mut self.chat {
                    chat.meter = (self.controls.input_level(), self.controls.transmitting());
                }
                if let Some(d) = &mut self.dialog {
                    d.speech = Some(speech);
                }
                Task::none()
            }
            Message::Key(e) => self.key(e),
            Message::Unfocused => {
                // A key released in another window never reaches us.
                self.push_to_talk_release();
                Task::none()
            }
        }
    }

    fn key(&mut self, event: keyboard::Event) -> Task<Message> {
        match event {
            keyboard::Event::KeyPressed { key: keyboard::Key::Named(named), modifiers, .. } => {
                if self.push_to_talk.as_ref().is_some_and(|p| p.press(named)) {
                    return Task::none();
                }
                match named {
                    Named::Tab if modifiers.shift() => operation::focus_previous(),
                    Named::Tab => operation::focus_next(),
                    Named::Escape if self.dialog.is_some() => {
                        self.dialog = None;
                        Task::none()
                    }
                    Named::Escape if self.chat.is_none() => self.update(Message::Connect(connect::Message::Cancel)),
                    Named::Escape if self.chat.as_ref().is_some_and(|c| c.editing.is_some()) => {
                        self.chat_message(chat::Message::CancelEdit)
                    }
                    _ => Task::none(),
                }
            }
            keyboard::Event::KeyReleased { key: keyboard::Key::Named(named), .. } => {
                if let Some(p) = &self.push_to_talk {
                    p.key_up(named);
                }
                Task::none()
            }
            _ => Task::none(),
        }
    }

    fn push_to_talk_release(&self) {
        if let Some(p) = &self.push_to_talk {
            p.release();
        }
    }

    /// Opens a connection for `request`, pinning `fingerprint` if given.
    fn start(&mut self, request: connect::Request, fingerprint: Option<Fingerprint>) -> Task<Message> {
        let mut options = ConnectOptions::new(request.server.clone(), request.username.clone(), request.key.clone());
        options.password = request.password.clone();
        options.account_password = request.account_password.clone();
        options.fingerprint = fingerprint;
        options.known_servers = self.config.known_servers.clone();
        options.keys_dir = self.config.keys_dir.clone();
        options.key_source = request.key_source;
        if let Some(link) = &request.invite {
            options.invite(link);
        }
        options.first_use = FirstUse::Ask;
        options.reconnect = Reconnect::FOREVER;
        // A key that came from the config's key file is read again from it
        // before each reconnection (the server's key may be rotated).
        options.key_file = self
            .config
            .key_file
            .clone()
            .filter(|f| std::fs::read_to_string(f).is_ok_and(|k| k.trim() == self.connect.key.trim()));
        self.counter += 1;
        info!(self.log, "connecting"; "server" => &request.server, "user" => &request.username, "attempt" => self.counter);
        self.attempt = Some(Attempt { id: self.counter, options: Arc::new(options) });
        self.client = None;
        self.quitting = false;
        self.request = Some((request, fingerprint));
        Task::none()
    }

    fn core(&mut self, id: u64, update: Update) -> Task<Message> {
        if self.attempt_id() != Some(id) {
            return Task::none();
        }
        match update {
            Update::Started(client) => {
                self.client = Some(client);
                Task::none()
            }
            Update::Events(events) => {
                let mut tasks = Vec::new();
                for e in events {
                    // An event may end this attempt; the rest are then stale.
                    if self.attempt_id() != Some(id) {
                        break;
                    }
                    tasks.push(self.event(e));
                }
                Task::batch(tasks)
            }
        }
    }

    fn event(&mut self, event: Event) -> Task<Message> {
        match event {
            Event::Connected { ref me, ref users, fingerprint, limits, trust, .. } => {
                let (me, users) = (me.clone(), users.clone());
                info!(self.log, "connected"; "me" => &me, "users" => users.len(), "trust" => format!("{trust:?}"));
                if let Some(chat) = &mut self.chat {
                    // Back after a lost connection (client-core resends what
                    // was not acknowledged and rejoins voice).
                    chat.banner = None;
                    chat.max_message = limits.max_message_bytes as usize;
                    let total = users.len() as u32;
                    chat.apply(event);
                    chat.apply(Event::Users { room: None, users, total });
                    chat.notice("Reconnected.");
                    return Task::none();
                }
                self.connect.status = connect::Status::Idle;
                let server = self.request.as_ref().map(|(r, _)| r.server.clone()).unwrap_or_default();
                let mut chat = Chat::new(me, server, fingerprint, users, limits.max_message_bytes as usize);
                chat.apply(event);
                if let Err(e) = self.remember() {
                    chat.error(format!("Could not save your settings: {e}"));
                }
                self.chat = Some(chat);
                operation::focus(chat::INPUT)
            }
            Event::Disconnected { reason, unacked } => {
                info!(self.log, "disconnected"; "reason" => reason.to_string(), "unacked" => unacked);
                self.disconnected(reason)
            }
            Event::VoiceError(e) => {
                warn!(self.log, "voice failed"; "error" => &e);
                self.apply(Event::VoiceError(e));
                Task::none()
            }
            Event::Reconnecting { reason, attempt, delay } => {
                info!(self.log, "reconnecting"; "reason" => reason.to_string(), "try" => attempt, "in_ms" => delay.as_millis() as u64);
                self.push_to_talk_release();
                if let Some(chat) = &mut self.chat {
                    if attempt == 1 {
                        chat.error(connect::describe(&reason));
                    }
                    chat.offline();
                    chat.banner = Some(format!(
                        "{}. Reconnecting in {:.0} s (try {attempt})…",
                        connect::describe(&reason),
                        delay.as_secs_f64().ceil()
                    ));
                }
                Task::none()
            }
            other => {
                debug!(self.log, "event"; "event" => format!("{other:?}").chars().take(200).collect::<String>());
                self.apply(other);
                Task::none()
            }
        }
    }

    fn apply(&mut self, event: Event) {
        if let Some(chat) = &mut self.chat {
            chat.apply(event);
        }
    }

    fn disconnected(&mut self, reason: DisconnectReason) -> Task<Message> {
        self.attempt = None;
        self.client = None;
        self.push_to_talk_release();
        self.push_to_talk = None;
        let quitting = std::mem::take(&mut self.quitting);
        let ended = self.chat.take();
        if ended.is_none() && reason != DisconnectReason::Quit {
            self.connect.failed(&reason);
            // The trust question is answered with the buttons, not by typing on;
            // a changed identity only by pasting the admin's fingerprint.
            match self.connect.status {
                connect::Status::Trust { .. } => return unfocus(),
                connect::Status::Changed { .. } => return operation::focus(connect::ids::NEW_FINGERPRINT),
                _ => {}
            }
            return Task::none();
        }
        // Kicked or banned: the chat stays, with why (and until when) in
        // its banner and a way back to the form; nothing reconnects.
        if let DisconnectReason::Kicked { cause: DisconnectCause::Kicked | DisconnectCause::Banned, .. } = &reason
            && let Some(mut chat) = ended
        {
            chat.ended(connect::describe(&reason));
            self.connect.failed(&reason);
            self.chat = Some(chat);
            return Task::none();
        }
        // The end of a session: back to the form, saying why unless the
        // user asked for it.
        self.connect.status = connect::Status::Idle;
        if reason != DisconnectReason::Quit && !quitting {
            self.connect.failed(&reason);
        }
        Task::none()
    }

    fn chat_message(&mut self, m: chat::Message) -> Task<Message> {
        // Enter in a field of the dialog on top must not send the message below.
        if m == chat::Message::Send && self.dialog.is_some() {
            return Task::none();
        }
        let attempt_id = self.attempt_id();
        let Some(chat) = &mut self.chat else { return Task::none() };
        match chat.update(m) {
            chat::Action::None => Task::none(),
            chat::Action::Send { local, text, target } => match (self.client.clone(), attempt_id) {
                (Some(client), Some(attempt)) => Task::perform(
                    async move {
                        match target {
                            Some(target) => client.say(target, text).await,
                            None => client.send(text).await,
                        }
                        .map_err(|e| e.to_string())
                    },
                    move |result| Message::Sent { attempt, local, result },
                ),
                _ => {
                    chat.unsent(local, text);
                    Task::none()
                }
            },
            chat::Action::Quit => match (self.client.clone(), attempt_id) {
                (Some(client), Some(id)) => {
                    self.quitting = true;
                    chat.banner = Some("Leaving…".into());
                    Task::batch([
                        Task::perform(async move { client.quit().await.map_err(|e| e.to_string()) }, Message::Done),
                        Task::perform(tokio::time::sleep(QUIT_DEADLINE), move |()| Message::QuitTimeout(id)),
                    ])
                }
                _ => {
                    self.attempt = None;
                    self.client = None;
                    self.chat = None;
                    Task::none()
                }
            },
            chat::Action::Who => match self.client.clone() {
                Some(client) => {
                    Task::perform(async move { client.who().await.map_err(|e| e.to_string()) }, Message::Done)
                }
                None => Task::none(),
            },
            chat::Action::Request(request) => match self.client.clone() {
                Some(client) => Task::perform(
                    async move {
                        match request {
                            chat::Request::Join(room) => client.join(room).await,
                            chat::Request::Part(room) => client.part(room).await,
                            chat::Request::Rooms => client.rooms().await,
                            chat::Request::Who(room) => client.who_in(Some(room)).await,
                            chat::Request::Msg { to, text } => client.say(Target::User(to), text).await.map(|_| ()),
                            chat::Request::History { room, before, limit } => client.history(room, before, limit).await,
                            chat::Request::Edit(id, text) => client.edit(id, text).await.map(|_| ()),
                            chat::Request::Delete(id) => client.delete(id).await.map(|_| ()),
                            chat::Request::PrivateHistory { with, before, limit } => {
                                client.private_history(with, before, limit).await
                            }
                            chat::Request::Register(password) => client.register(password).await,
                            chat::Request::Account(account::Request::ChangePassword { old, new }) => {
                                client.change_password(old, new).await
                            }
                            chat::Request::Account(account::Request::Unregister(password)) => {
                                client.unregister(password).await
                            }
                            chat::Request::Moderate(action) => client.moderate(action).await,
                        }
                        .map_err(|e| e.to_string())
                    },
                    Message::Done,
                ),
                None => Task::none(),
            },
            chat::Action::FocusInput => operation::focus(chat::INPUT),
            chat::Action::Focus(id) => operation::focus(id),
            chat::Action::JoinVoice => self.join_voice(),
            chat::Action::LeaveVoice => match self.client.clone() {
                Some(client) => {
                    Task::perform(async move { client.leave_voice().await.map_err(|e| e.to_string()) }, Message::Done)
                }
                None => Task::none(),
            },
            chat::Action::Controls { muted, deafened } => {
                self.controls.set_deafened(deafened);
                self.controls.set_muted(muted);
                Task::none()
            }
            chat::Action::Gain(user, gain) => gain_task(self.client.clone(), user, gain),
            chat::Action::OpenSettings => self.open_settings(),
            chat::Action::ReconnectNow => match self.client.clone() {
                Some(client) => {
                    Task::perform(async move { client.reconnect_now().await.map_err(|e| e.to_string()) }, Message::Done)
                }
                None => Task::none(),
            },
            chat::Action::GiveUp => {
                // Dropping the handle and the event stream ends the connection task.
                self.attempt = None;
                self.client = None;
                self.chat = None;
                Task::none()
            }
        }
    }

    fn join_voice(&mut self) -> Task<Message> {
        let (Some(client), Some(chat)) = (self.client.clone(), &mut self.chat) else { return Task::none() };
        if chat.voice != Voice::Off {
            return Task::none();
        }
        let mut options = self.voice.options();
        self.controls = VoiceControls::new();
        self.controls.set_deafened(chat.deafened);
        self.controls.set_muted(chat.muted || chat.deafened);
        options.controls = self.controls.clone();
        self.push_to_talk = self.voice.push_to_talk.as_deref().and_then(push_to_talk::Binding::new);
        options.push_to_talk = self.push_to_talk.as_ref().map(push_to_talk::Binding::switch);
        chat.push_to_talk = self.push_to_talk.as_ref().and(self.voice.push_to_talk.clone());
        chat.voice = Voice::Joining;
        // The voice of the room shown (a conversation: the first room with voice).
        let room = match chat.rooms.current() {
            Some(Target::Room(r)) => Some(r.clone()),
            _ => None,
        };
        Task::perform(
            async move { client.join_voice_in(options, room).await.map_err(|e| e.to_string()) },
            Message::Done,
        )
    }

    fn open_settings(&mut self) -> Task<Message> {
        self.dialog = Some(settings::Dialog::new(self.voice.clone()));
        let list = Task::perform(
            async {
                tokio::task::spawn_blocking(settings::list_devices)
                    .await
                    .unwrap_or_else(|e| Err(format!("device listing failed: {e}")))
            },
            |r| Message::Settings(settings::Message::Devices(r)),
        );
        // Nothing under the dialog keeps the keyboard.
        Task::batch([unfocus(), list])
    }

    fn settings_message(&mut self, m: settings::Message) -> Task<Message> {
        let Some(dialog) = &mut self.dialog else { return Task::none() };
        match dialog.update(m) {
            settings::Action::None => {}
            settings::Action::Close => self.dialog = None,
            settings::Action::Save(voice) => {
                let mut config = self.config.clone();
                voice.store(&mut config);
                match self.save(&config) {
                    Ok(()) => {
                        self.config = config;
                        self.voice = voice;
                        self.dialog = None;
                    }
                    Err(e) => {
                        if let Some(d) = &mut self.dialog {
                            d.error = Some(format!("Could not save: {e}"));
                        }
                    }
                }
            }
        }
        Task::none()
    }

    /// Stores server and name, and the secrets only if asked to.
    fn remember(&mut self) -> Result<(), String> {
        let Some((request, _)) = &self.request else { return Ok(()) };
        let mut config = self.config.clone();
        config.server = Some(request.server.clone());
        config.user = Some(request.username.clone());
        if self.connect.remember {
            config.password = request.password.clone();
            config.key = Some(self.connect.key.trim().to_owned());
        } else {
            config.password = None;
            config.key = None;
        }
        if config == self.config {
            return Ok(());
        }
        self.save(&config)?;
        self.config = config;
        Ok(())
    }

    fn save(&self, config: &ClientConfig) -> Result<(), String> {
        if self.config_broken {
            return Err("the config file has an error (shown at start); fix it first".into());
        }
        match &self.config_path {
            Some(p) => config.save(p).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// The window's contents.
    pub fn view(&self) -> Element<'_, Message> {
        let base = match &self.chat {
            Some(c) => c.view().map(Message::Chat),
            None => self.connect.view().map(Message::Connect),
        };
        match &self.dialog {
            Some(d) => style::modal(base, d.view().map(Message::Settings)),
            None => base,
        }
    }
}

/// Tells client-core how loud `user` plays for us.
fn gain_task(client: Option<Client>, user: String, gain: f32) -> Task<Message> {
    match client {
        Some(c) => Task::perform(async move { c.set_gain(user, gain).await.map_err(|e| e.to_string()) }, Message::Done),
        None => Task::none(),
    }
}

/// Takes the keyboard focus from every field.
fn unfocus<T: Send + 'static>() -> Task<T> {
    operation::focus(iced::widget::Id::new("no-such-field"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_dismisses_the_trust_prompt_and_a_bad_config_is_reported() {
        let dir = std::env::temp_dir().join(format!("client-iced-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(&path, "[client]\nsever = \"typo\"\n").expect("write");
        let mut app = App::new(&Options { config_path: Some(path), ..Options::default() });
        assert!(
            matches!(&app.connect.status, connect::Status::Error(e) if e.contains("sever")),
            "{:?}",
            app.connect.status
        );
        assert!(app.save(&ClientConfig::default()).is_err(), "a file that did not load is never overwritten");
        assert_eq!(std::fs::read_to_string(dir.join("c.toml")).expect("read"), "[client]\nsever = \"typo\"\n");
        let fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".parse().expect("fp");
        app.connect.status = connect::Status::Trust { server: "h:1".into(), fingerprint };
        let escape = keyboard::Event::KeyPressed {
            key: keyboard::Key::Named(Named::Escape),
            modified_key: keyboard::Key::Named(Named::Escape),
            physical_key: keyboard::key::Physical::Unidentified(keyboard::key::NativeCode::Unidentified),
            location: keyboard::Location::Standard,
            modifiers: keyboard::Modifiers::empty(),
            text: None,
            repeat: false,
        };
        let _ = app.update(Message::Key(escape));
        assert_eq!(app.connect.status, connect::Status::Idle);
        let _ = std::fs::remove_dir_all(dir);
    }
}
