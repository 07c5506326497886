//! The connect screen: an invite link that fills the form, address, name,
//! password, key, remember-me; errors
//! in place (in a slot that is always there, so nothing moves when one
//! appears); the first-contact trust prompt and the changed-identity
//! refusal.

use client_core::display::escape_line;
use client_core::{DisconnectCause, DisconnectReason, Fingerprint, InviteLink, KeySource, Psk, RefusalCode, Secret};
use iced::widget::{button, center, checkbox, column, container, row, scrollable, space, text, text_input};
use iced::{Alignment, Element, Fill, Length};

use crate::style;

/// Ids of the form's fields (tests and focus use them).
pub mod ids {
    /// Invite link field (pasting one fills the form).
    pub const INVITE: &str = "invite";
    /// Server address field.
    pub const SERVER: &str = "server";
    /// Username field.
    pub const USERNAME: &str = "username";
    /// Server password field.
    pub const PASSWORD: &str = "password";
    /// Account password field (registered names).
    pub const ACCOUNT_PASSWORD: &str = "account-password";
    /// Server key field.
    pub const KEY: &str = "key";
    /// Where the admin's new fingerprint is pasted (identity changed).
    pub const NEW_FINGERPRINT: &str = "new-fingerprint";
}

/// Height of the error slot under the form: three lines of error text.
/// Reserved even when empty, so an error never moves the fields.
pub const ERROR_SLOT: f32 = 64.0;
/// Height of the row of buttons (the same with "Connecting…" in it).
const BUTTON_ROW: f32 = 40.0;

/// The form and what happened to the last attempt.
#[derive(Clone, Default)]
pub struct Connect {
    /// What was pasted in the invite field (a secret: it holds a key).
    pub invite: String,
    /// The invite link last pasted, while the form still matches it.
    pub from_invite: Option<InviteLink>,
    /// `HOST:PORT`.
    pub server: String,
    /// Username.
    pub username: String,
    /// Server password (may be empty).
    pub password: String,
    /// Account password of a registered name (may be empty); never
    /// remembered.
    pub account_password: String,
    /// The server's pre-shared key.
    pub key: String,
    /// Store password and key in the config file.
    pub remember: bool,
    /// Where the last attempt stands.
    pub status: Status,
    /// What an error in [`Connect::status`] was about: editing that clears it.
    pub cause: Cause,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("remember", &self.remember)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A field of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The invite link.
    Invite,
    /// The address.
    Server,
    /// The username.
    Username,
    /// The server password.
    Password,
    /// The account password.
    AccountPassword,
    /// The server key.
    Key,
}

/// What an error was about, so that it goes once that changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cause {
    /// The whole attempt: any edit makes it stale.
    #[default]
    Any,
    /// One field: editing it makes the error stale.
    Field(Field),
    /// The config file: no edit of the form changes that.
    Config,
}

/// Where the last attempt stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Status {
    /// Nothing tried yet (or cancelled).
    #[default]
    Idle,
    /// Connecting.
    Connecting,
    /// It failed; why, in words.
    Error(String),
    /// First contact: trust this fingerprint?
    Trust {
        /// The address as typed.
        server: String,
        /// What the server presented.
        fingerprint: Fingerprint,
    },
    /// The server's identity changed: refused.
    Changed {
        /// The address as typed.
        server: String,
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// What the server presented.
        actual: Fingerprint,
        /// The file holding the pin.
        file: Option<String>,
        /// What the user pasted as the admin's fingerprint.
        pasted: String,
    },
}

/// What the user did on this screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// An invite link pasted (or typed): a valid one fills the form.
    Invite(String),
    /// Address edited.
    Server(String),
    /// Username edited.
    Username(String),
    /// Server password edited.
    Password(String),
    /// Account password edited.
    AccountPassword(String),
    /// Key edited or pasted.
    Key(String),
    /// Remember-me toggled.
    Remember(bool),
    /// Connect pressed (or Enter).
    Submit,
    /// Cancel the attempt or dismiss the prompt.
    Cancel,
    /// Trust the first-contact fingerprint.
    Trust,
    /// The admin's fingerprint pasted (identity changed).
    Pasted(String),
    /// Trust the changed identity: only if the pasted fingerprint is the
    /// one presented.
    Replace,
    /// Open the audio settings.
    Settings,
}

/// What the application should do after a [`Message`].
#[derive(Debug, Clone)]
pub enum Action {
    /// Nothing more.
    None,
    /// Connect with the form's values (already checked).
    Connect(Request),
    /// Stop the attempt in flight.
    Cancel,
    /// Connect again, pinning this fingerprint.
    Trust(Request, Fingerprint),
    /// Open the audio settings.
    Settings,
}

/// A checked form.
#[derive(Clone)]
pub struct Request {
    /// `HOST:PORT`, trimmed.
    pub server: String,
    /// Username, trimmed.
    pub username: String,
    /// Password, if any.
    pub password: Option<String>,
    /// Account password, if any.
    pub account_password: Option<Secret>,
    /// The parsed key.
    pub key: Psk,
    /// Where the key came from (a key the server issued earlier replaces
    /// an invite's or the form's).
    pub key_source: KeySource,
    /// The invite link the form came from, while its address is still
    /// one of the link's (its identity is pinned: no trust question).
    pub invite: Option<InviteLink>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Whether `pasted` is exactly the presented fingerprint (spaces around it
/// and a missing `SHA256:` are forgiven; nothing else is).
pub fn pasted_matches(pasted: &str, actual: &Fingerprint) -> bool {
    let pasted = pasted.trim();
    let full = if pasted.starts_with("SHA256:") { pasted.to_owned() } else { format!("SHA256:{pasted}") };
    full.parse::<Fingerprint>().is_ok_and(|f| f == *actual)
}

impl Connect {
    /// Applies a message.
    pub fn update(&mut self, message: Message) -> Action {
        match message {
            Message::Invite(s) => self.paste_invite(s),
            Message::Server(s) => self.edit(Field::Server, |c| c.server = s),
            Message::Username(s) => self.edit(Field::Username, |c| c.username = s),
            Message::Password(s) => self.edit(Field::Password, |c| c.password = s),
            Message::AccountPassword(s) => self.edit(Field::AccountPassword, |c| c.account_password = s),
            Message::Key(s) => self.edit(Field::Key, |c| c.key = s),
            Message::Remember(r) => self.remember = r,
            Message::Settings => return Action::Settings,
            Message::Submit => {
                if self.status == Status::Connecting
                    || matches!(self.status, Status::Trust { .. } | Status::Changed { .. })
                {
                    return Action::None;
                }
                return match self.request() {
                    Ok(r) => {
                        self.status = Status::Connecting;
                        Action::Connect(r)
                    }
                    Err((e, field)) => {
                        self.fail(e, Cause::Field(field));
                        Action::None
                    }
                };
            }
            Message::Cancel => {
                let was = std::mem::take(&mut self.status);
                if was == Status::Connecting {
                    return Action::Cancel;
                }
            }
            Message::Trust => {
                if let Status::Trust { fingerprint, .. } = self.status.clone() {
                    return self.connect_pinned(fingerprint);
                }
            }
            Message::Pasted(p) => {
                if let Status::Changed { pasted, .. } = &mut self.status {
                    *pasted = p;
                }
            }
            Message::Replace => {
                if let Status::Changed { actual, pasted, .. } = &self.status
                    && pasted_matches(pasted, actual)
                {
                    return self.connect_pinned(*actual);
                }
            }
        }
        Action::None
    }

    /// Edits a field; an error about it (or about the whole attempt) is
    /// stale from then on.
    fn edit(&mut self, field: Field, f: impl FnOnce(&mut Self)) {
        f(self);
        let stale = match self.cause {
            Cause::Any => true,
            Cause::Field(f) => f == field,
            Cause::Config => false,
        };
        if stale && matches!(self.status, Status::Error(_)) {
            self.status = Status::Idle;
        }
    }

    /// Takes a pasted invite link: a valid one fills the server, the key,
    /// the identity to pin and the room; anything else is said to be wrong.
    fn paste_invite(&mut self, pasted: String) {
        let parsed = InviteLink::parse(&pasted);
        let empty = pasted.trim().is_empty();
        self.edit(Field::Invite, |c| c.invite = pasted);
        match parsed {
            Ok(link) => {
                self.server = link.addresses.first().cloned().unwrap_or_default();
                self.key.clone_from(&link.key);
                self.from_invite = Some(link);
                if matches!(self.status, Status::Error(_)) {
                    self.status = Status::Idle;
                }
            }
            Err(_) if empty => {}
            Err(e) => self.fail(
                format!("That is not an invite link: {}.", e.to_string().trim_end_matches('.')),
                Cause::Field(Field::Invite),
            ),
        }
    }

    /// The pasted invite, if the address in the form is still one of its.
    pub fn invite_in_force(&self) -> Option<&InviteLink> {
        let server = self.server.trim();
        self.from_invite.as_ref().filter(|l| l.addresses.iter().any(|a| a == server))
    }

    fn fail(&mut self, error: String, cause: Cause) {
        self.status = Status::Error(error);
        self.cause = cause;
    }

    /// Reports a problem with the config file (kept until the next attempt).
    pub fn config_error(&mut self, error: String) {
        self.fail(error, Cause::Config);
    }

    fn connect_pinned(&mut self, fingerprint: Fingerprint) -> Action {
        match self.request() {
            Ok(r) => {
                self.status = Status::Connecting;
                Action::Trust(r, fingerprint)
            }
            Err((e, field)) => {
                self.fail(e, Cause::Field(field));
                Action::None
            }
        }
    }

    /// Checks the form.
    fn request(&self) -> Result<Request, (String, Field)> {
        let server = self.server.trim();
        if server.is_empty() {
            return Err(("Enter the server's address, as host:port.".into(), Field::Server));
        }
        let username = self.username.trim();
        if username.is_empty() {
            return Err(("Enter a username.".into(), Field::Username));
        }
        if self.key.trim().is_empty() {
            return Err(("Paste the server key your server's admin gave you.".into(), Field::Key));
        }
        let key = Psk::parse(self.key.trim()).map_err(|e| {
            (format!("That server key is not valid: {}.", e.to_string().trim_end_matches('.')), Field::Key)
        })?;
        let password = (!self.password.is_empty()).then(|| self.password.clone());
        let account_password = (!self.account_password.is_empty()).then(|| Secret::new(self.account_password.clone()));
        let invite = self.invite_in_force();
        // The invite's key, or one the user put there instead.
        let key_source = match invite {
            Some(l) if l.key.trim() == self.key.trim() => KeySource::Invite,
            _ => KeySource::Config,
        };
        Ok(Request {
            server: server.to_owned(),
            username: username.to_owned(),
            password,
            account_password,
            key,
            key_source,
            invite: invite.cloned(),
        })
    }

    /// The field to start typing in: the first empty one, else the key
    /// (Enter there connects).
    pub fn first_focus(&self) -> &'static str {
        [(ids::SERVER, &self.server), (ids::USERNAME, &self.username), (ids::KEY, &self.key)]
            .into_iter()
            .find(|(_, v)| v.trim().is_empty())
            .map_or(ids::KEY, |(id, _)| id)
    }

    /// Records how an attempt ended before logging in.
    pub fn failed(&mut self, reason: &DisconnectReason) {
        self.cause = cause(reason);
        self.status = match reason {
            DisconnectReason::UnknownServer { server, fingerprint } => {
                Status::Trust { server: server.clone(), fingerprint: *fingerprint }
            }
            DisconnectReason::IdentityMismatch { server, expected, actual, known_servers } => Status::Changed {
                server: server.clone(),
                expected: *expected,
                actual: *actual,
                file: known_servers.as_ref().map(|p| p.display().to_string()),
                pasted: String::new(),
            },
            other => Status::Error(describe(other)),
        };
    }

    /// The screen.
    pub fn view(&self) -> Element<'_, Message> {
        match &self.status {
            Status::Changed { server, expected, actual, file, pasted } => {
                changed(server, expected, actual, file.as_deref(), pasted)
            }
            Status::Trust { server, fingerprint } => style::modal(self.form(), trust_prompt(server, fingerprint)),
            _ => self.form(),
        }
    }

    fn form(&self) -> Element<'_, Message> {
        let connecting = self.status == Status::Connecting;
        let asking = matches!(self.status, Status::Trust { .. });
        let field = |label: &'static str, id: &'static str, placeholder: &'static str, value: &str| {
            let input = text_input(placeholder, value).id(id).padding(8).on_submit(Message::Submit);
            (label, input)
        };
        let invite = text_input("Paste invite link (chatroom://…) to fill the form", &self.invite)
            .id(ids::INVITE)
            .padding(8)
            .secure(true)
            .on_input_maybe((!connecting && !asking).then_some(Message::Invite));
        let (_, server) = field("Server", ids::SERVER, "host:port, e.g. chat.example.org:7878", &self.server);
        // What the invite settled, where the address is.
        let l1 = match self.invite_in_force() {
            Some(InviteLink { room: Some(room), .. }) => {
                format!("Server (from the invite: identity pinned, joining #{})", escape_line(room))
            }
            Some(_) => "Server (from the invite: identity pinned)".to_owned(),
            None => "Server".to_owned(),
        };
        let (l2, user) = field("Username", ids::USERNAME, "your name in the room", &self.username);
        let (l3, pass) = field("Server password", ids::PASSWORD, "only if the server has one", &self.password);
        let (l5, account) = field(
            "Account password (registered names)",
            ids::ACCOUNT_PASSWORD,
            "only if your name is registered",
            &self.account_password,
        );
        let (l4, key) = field("Server key", ids::KEY, "paste the key from the server's admin", &self.key);
        let editable = !connecting && !asking;
        let server = server.on_input_maybe(editable.then_some(Message::Server));
        let user = user.on_input_maybe(editable.then_some(Message::Username));
        let pass = pass.secure(true).on_input_maybe(editable.then_some(Message::Password));
        let account = account.secure(true).on_input_maybe(editable.then_some(Message::AccountPassword));
        let key = key.secure(true).on_input_maybe(editable.then_some(Message::Key));
        let labelled = |label: &'static str, input: text_input::TextInput<'static, Message>| {
            column![text(label).size(14), input].spacing(4)
        };
        let remember = checkbox(self.remember)
            .label("Remember password and key on this computer")
            .on_toggle_maybe(editable.then_some(Message::Remember));
        let buttons = if connecting {
            row![text("Connecting…"), space::horizontal(), button("Cancel").on_press(Message::Cancel)]
        } else {
            row![
                button("Audio settings").on_press(Message::Settings).style(button::text),
                space::horizontal(),
                button("Connect").padding([8, 24]).on_press(Message::Submit)
            ]
        }
        .height(BUTTON_ROW)
        .align_y(Alignment::Center);
        // The slot is there with or without an error: nothing above it moves.
        let error: Element<'_, Message> = match &self.status {
            Status::Error(e) => container(scrollable(text(e.clone()).size(13)).width(Fill))
                .padding(6)
                .width(Fill)
                .style(style::error_box)
                .into(),
            _ => space().into(),
        };
        let form = column![
            text("Socket Chatroom").size(24),
            text("Encrypted text and voice chat").size(14).style(style::muted),
            invite,
            column![text(l1).size(14), server].spacing(4),
            labelled(l2, user),
            // Two passwords side by side: which is which stays plain.
            row![labelled(l3, pass).width(Fill), labelled(l5, account).width(Fill)].spacing(10),
            labelled(l4, key),
            remember,
            buttons,
            container(error).height(ERROR_SLOT).width(Fill),
        ]
        .spacing(10)
        .max_width(460);
        center(container(form).padding(20).max_width(500).style(style::card)).padding(12).into()
    }
}

/// The changed-identity refusal: both fingerprints, why it matters, what
/// to do; trusting the new identity takes pasting the fingerprint the
/// server's admin gives (as ssh: never one click). Fits 800×600.
fn changed<'a>(
    server: &str,
    expected: &Fingerprint,
    actual: &Fingerprint,
    file: Option<&str>,
    pasted: &str,
) -> Element<'a, Message> {
    let fingerprint = |label: &'static str, fp: &Fingerprint| {
        column![
            text(label).size(13).style(style::muted),
            container(text(fp.to_string()).size(14).wrapping(text::Wrapping::Glyph))
                .padding(6)
                .width(Fill)
                .style(style::code_box),
        ]
        .spacing(2)
    };
    let matches = pasted_matches(pasted, actual);
    let verdict = if pasted.trim().is_empty() {
        text("")
    } else if matches {
        text("It matches what the server presents.").size(13).style(style::talking)
    } else {
        text("That is not the fingerprint this server presents.").size(13).style(style::error_text)
    };
    let remove = match file {
        Some(f) => format!("(Or remove the line for {server} from {f}.)"),
        None => "(The pin is the `fingerprint` in your config file; it is replaced too.)".to_owned(),
    };
    let body = column![
        text("SERVER IDENTITY CHANGED — connection refused").size(20).style(style::error_text),
        text(format!(
            "{server} presented a different identity than the one trusted before. \
             Someone may be impersonating the server, or its key was replaced."
        ))
        .size(14),
        fingerprint("Trusted before", expected),
        fingerprint("Presented now", actual),
        text(
            "Ask the server's admin for its fingerprint (the server prints it at start). \
             Only if it is the one presented now, paste it here to trust the new identity."
        )
        .size(14),
        text_input("paste the fingerprint the admin gave you (SHA256:…)", pasted)
            .id(ids::NEW_FINGERPRINT)
            .padding(6)
            .size(14)
            .on_input(Message::Pasted)
            .on_submit(Message::Replace),
        verdict,
        text(remove).size(12).style(style::muted),
        row![
            button("Back").on_press(Message::Cancel).style(button::secondary),
            space::horizontal(),
            button("Trust the new identity and connect").on_press_maybe(matches.then_some(Message::Replace)),
        ]
        .align_y(Alignment::Center),
    ]
    .spacing(8);
    let card = container(body).padding(16).max_width(560).style(style::error_card);
    center(card).padding(12).into()
}

fn trust_prompt<'a>(server: &str, fingerprint: &Fingerprint) -> Element<'a, Message> {
    container(
        column![
            text("First connection to this server").size(20),
            text(format!("{server} identifies itself as:")),
            container(text(fingerprint.to_string()).size(15).wrapping(text::Wrapping::Glyph))
                .padding(8)
                .width(Fill)
                .style(style::code_box),
            text(
                "Compare it with the fingerprint your server's admin gave you (the server prints it at start). \
                 If they match, trust it: it is remembered, and a change will be refused."
            )
            .style(style::muted),
            row![
                space::horizontal(),
                button("Cancel").on_press(Message::Cancel).style(button::secondary),
                button("Trust and connect").on_press(Message::Trust),
            ]
            .spacing(10),
        ]
        .spacing(12),
    )
    .padding(20)
    .max_width(520)
    .width(Length::Shrink)
    .style(style::card)
    .into()
}

/// What an attempt's failure was about (see [`Cause`]).
fn cause(reason: &DisconnectReason) -> Cause {
    match reason {
        DisconnectReason::WrongKey => Cause::Field(Field::Key),
        DisconnectReason::Refused { code: RefusalCode::WrongPassword, .. } => Cause::Field(Field::Password),
        DisconnectReason::Refused { code: RefusalCode::AccountPassword, .. } => Cause::Field(Field::AccountPassword),
        DisconnectReason::Refused { code: RefusalCode::NameTaken | RefusalCode::InvalidName, .. } => {
            Cause::Field(Field::Username)
        }
        DisconnectReason::ConnectFailed(_) => Cause::Field(Field::Server),
        _ => Cause::Any,
    }
}

/// When a ban ends, in local time.
pub fn ban_end(until_ms: Option<u64>) -> String {
    match until_ms {
        Some(ms) => {
            let end = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
            format!("The ban ends {}.", chrono::DateTime::<chrono::Local>::from(end).format("%Y-%m-%d %H:%M"))
        }
        None => "The ban does not end by itself.".into(),
    }
}

/// Words for why an attempt or a session ended.
pub fn describe(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::WrongKey => {
            "Wrong server key: the server refused it. Check the key with the server's admin.".into()
        }
        DisconnectReason::Refused { code: RefusalCode::WrongPassword, .. } => {
            "Wrong or missing password for this server.".into()
        }
        DisconnectReason::Refused { code: RefusalCode::NameTaken, .. } => {
            "That username is taken on this server; pick another.".into()
        }
        DisconnectReason::Refused { code: RefusalCode::ServerFull, .. } => {
            "The server is full; try again later.".into()
        }
        DisconnectReason::Refused { code: RefusalCode::AccountPassword, reason, .. } => format!(
            "This name is registered: enter its account password (not the server password). {}",
            escape_line(reason)
        ),
        DisconnectReason::Refused { code: RefusalCode::Banned, reason, until_ms } => {
            format!("Banned: {}. {}", escape_line(reason).trim_end_matches('.'), ban_end(*until_ms))
        }
        DisconnectReason::Kicked { cause: DisconnectCause::Banned, detail, until_ms } => {
            format!("Banned: {}. {}", escape_line(detail).trim_end_matches('.'), ban_end(*until_ms))
        }
        DisconnectReason::Kicked { cause: DisconnectCause::Kicked, detail, .. } => {
            format!("Kicked: {}. Connect again when you are ready.", escape_line(detail).trim_end_matches('.'))
        }
        DisconnectReason::Refused { reason, .. } => format!("Refused by the server: {}", escape_line(reason)),
        DisconnectReason::ConnectFailed(m) => format!("Cannot reach the server: {m}"),
        other => {
            // Kick and shutdown texts come from the server.
            let s = escape_line(&other.to_string()).into_owned();
            let mut c = s.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> Connect {
        Connect {
            server: " 127.0.0.1:7878 ".into(),
            username: "alice".into(),
            key: "A".repeat(43) + "=",
            ..Connect::default()
        }
    }

    #[test]
    fn empty_fields_are_explained_not_sent() {
        let mut c = Connect::default();
        assert!(matches!(c.update(Message::Submit), Action::None));
        assert!(matches!(&c.status, Status::Error(e) if e.contains("address")));
        c.server = "h:1".into();
        c.username = "bob".into();
        c.key = "not a key".into();
        assert!(matches!(c.update(Message::Submit), Action::None));
        assert!(matches!(&c.status, Status::Error(e) if e.contains("not valid")), "{:?}", c.status);
    }

    #[test]
    fn an_error_goes_when_what_caused_it_changes() {
        let mut c = filled();
        c.failed(&DisconnectReason::WrongKey);
        c.update(Message::Username("bob".into()));
        assert!(matches!(c.status, Status::Error(_)), "the name did not cause it");
        c.update(Message::Key("B".repeat(43) + "="));
        assert_eq!(c.status, Status::Idle, "a new key makes it stale");

        c.failed(&DisconnectReason::ConnectFailed("connection refused".into()));
        c.update(Message::Password("pw".into()));
        assert!(matches!(c.status, Status::Error(_)));
        c.update(Message::Server("other:7878".into()));
        assert_eq!(c.status, Status::Idle);

        // A check of the form names its field; a refusal of the whole attempt goes with any edit.
        c.server.clear();
        c.update(Message::Submit);
        c.update(Message::Key("x".into()));
        assert!(matches!(&c.status, Status::Error(e) if e.contains("address")));
        c.update(Message::Server("h:1".into()));
        assert_eq!(c.status, Status::Idle);
        c.failed(&DisconnectReason::Refused { code: RefusalCode::ServerFull, reason: "full".into(), until_ms: None });
        c.update(Message::Password(String::new()));
        assert_eq!(c.status, Status::Idle);

        // The config file's problem stays until it is fixed.
        c.config_error("the config file has an error".into());
        c.update(Message::Server("h:2".into()));
        assert!(matches!(c.status, Status::Error(_)));
    }

    #[test]
    fn a_changed_identity_is_trusted_only_with_the_presented_fingerprint() {
        let expected: Fingerprint = format!("SHA256:{}", "A".repeat(43)).parse().expect("fp");
        let actual: Fingerprint = format!("SHA256:{}E", "B".repeat(42)).parse().expect("fp");
        let mut c = filled();
        c.failed(&DisconnectReason::IdentityMismatch { server: "h:1".into(), expected, actual, known_servers: None });
        assert!(matches!(c.update(Message::Submit), Action::None), "Enter on the form does not get around it");
        assert!(matches!(c.update(Message::Replace), Action::None), "nothing pasted");
        c.update(Message::Pasted(expected.to_string()));
        assert!(matches!(c.update(Message::Replace), Action::None), "the old one");
        c.update(Message::Pasted(actual.to_string().trim_start_matches("SHA256:").to_owned()));
        let Action::Trust(_, fp) = c.update(Message::Replace) else { panic!("trusts: {:?}", c.status) };
        assert_eq!(fp, actual);
    }

    #[test]
    fn submit_trims_and_blocks_a_second_submit() {
        let mut c = filled();
        let Action::Connect(r) = c.update(Message::Submit) else { panic!("connects: {:?}", c.status) };
        assert_eq!((r.server.as_str(), r.username.as_str(), r.password), ("127.0.0.1:7878", "alice", None));
        assert_eq!(r.account_password, None);
        assert!(matches!(c.update(Message::Submit), Action::None), "already connecting");
        assert!(matches!(c.update(Message::Cancel), Action::Cancel));
        assert_eq!(c.status, Status::Idle);
    }

    #[test]
    fn the_account_password_is_its_own_field_and_a_refusal_for_it_points_there() {
        let mut c = filled();
        c.update(Message::AccountPassword("correct horse".into()));
        let Action::Connect(r) = c.update(Message::Submit) else { panic!("connects: {:?}", c.status) };
        assert_eq!((&r.password, &r.account_password), (&None, &Some(Secret::new("correct horse"))));
        assert!(!format!("{c:?} {r:?}").contains("correct horse"), "never in Debug");
        c.update(Message::Cancel);
        c.failed(&DisconnectReason::Refused {
            code: RefusalCode::AccountPassword,
            reason: "wrong account password".into(),
            until_ms: None,
        });
        assert!(matches!(&c.status, Status::Error(e) if e.contains("account password")), "{:?}", c.status);
        c.update(Message::Password("server pw".into()));
        assert!(matches!(c.status, Status::Error(_)), "the server password did not cause it");
        c.update(Message::AccountPassword("another one".into()));
        assert_eq!(c.status, Status::Idle);
    }

    #[test]
    fn bans_and_kicks_say_why_and_until_when() {
        let banned = describe(&DisconnectReason::Kicked {
            cause: DisconnectCause::Banned,
            detail: "banned by mod: spam".into(),
            until_ms: None,
        });
        assert_eq!(banned, "Banned: banned by mod: spam. The ban does not end by itself.");
        let refused = describe(&DisconnectReason::Refused {
            code: RefusalCode::Banned,
            reason: "banned by mod".into(),
            until_ms: Some(86_400_000 * 2),
        });
        assert!(refused.starts_with("Banned: banned by mod. The ban ends 1970-01-0"), "{refused}");
        let kicked = describe(&DisconnectReason::Kicked {
            cause: DisconnectCause::Kicked,
            detail: "kicked by mod: calm down".into(),
            until_ms: None,
        });
        assert!(kicked.starts_with("Kicked: kicked by mod: calm down."), "{kicked}");
    }
}
