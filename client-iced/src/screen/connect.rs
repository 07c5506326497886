//! The connect screen: address, name, password, key, remember-me; errors
//! in place; the first-contact trust prompt and the changed-identity
//! refusal.

use client_core::display::escape_line;
use client_core::{DisconnectReason, Fingerprint, Psk, RefusalCode};
use iced::widget::{button, center, checkbox, column, container, row, space, text, text_input};
use iced::{Alignment, Element, Fill, Length};

use crate::style;

/// Ids of the form's fields (tests and focus use them).
pub mod ids {
    /// Server address field.
    pub const SERVER: &str = "server";
    /// Username field.
    pub const USERNAME: &str = "username";
    /// Password field.
    pub const PASSWORD: &str = "password";
    /// Server key field.
    pub const KEY: &str = "key";
}

/// The form and what happened to the last attempt.
#[derive(Clone, Default)]
pub struct Connect {
    /// `HOST:PORT`.
    pub server: String,
    /// Username.
    pub username: String,
    /// Server password (may be empty).
    pub password: String,
    /// The server's pre-shared key.
    pub key: String,
    /// Store password and key in the config file.
    pub remember: bool,
    /// Where the last attempt stands.
    pub status: Status,
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
    },
}

/// What the user did on this screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Address edited.
    Server(String),
    /// Username edited.
    Username(String),
    /// Password edited.
    Password(String),
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
    /// The parsed key.
    pub key: Psk,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Connect {
    /// Applies a message.
    pub fn update(&mut self, message: Message) -> Action {
        match message {
            Message::Server(s) => self.server = s,
            Message::Username(s) => self.username = s,
            Message::Password(s) => self.password = s,
            Message::Key(s) => self.key = s,
            Message::Remember(r) => self.remember = r,
            Message::Settings => return Action::Settings,
            Message::Submit => {
                if self.status == Status::Connecting || matches!(self.status, Status::Trust { .. }) {
                    return Action::None;
                }
                return match self.request() {
                    Ok(r) => {
                        self.status = Status::Connecting;
                        Action::Connect(r)
                    }
                    Err(e) => {
                        self.status = Status::Error(e);
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
                    return match self.request() {
                        Ok(r) => {
                            self.status = Status::Connecting;
                            Action::Trust(r, fingerprint)
                        }
                        Err(e) => {
                            self.status = Status::Error(e);
                            Action::None
                        }
                    };
                }
            }
        }
        Action::None
    }

    /// Checks the form.
    fn request(&self) -> Result<Request, String> {
        let server = self.server.trim();
        if server.is_empty() {
            return Err("Enter the server's address, as host:port.".into());
        }
        let username = self.username.trim();
        if username.is_empty() {
            return Err("Enter a username.".into());
        }
        if self.key.trim().is_empty() {
            return Err("Paste the server key your server's admin gave you.".into());
        }
        let key = Psk::parse(self.key.trim()).map_err(|e| format!("That server key is not valid: {e}."))?;
        let password = (!self.password.is_empty()).then(|| self.password.clone());
        Ok(Request { server: server.to_owned(), username: username.to_owned(), password, key })
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
        self.status = match reason {
            DisconnectReason::UnknownServer { server, fingerprint } => {
                Status::Trust { server: server.clone(), fingerprint: *fingerprint }
            }
            DisconnectReason::IdentityMismatch { server, expected, actual, known_servers } => Status::Changed {
                server: server.clone(),
                expected: *expected,
                actual: *actual,
                file: known_servers.as_ref().map(|p| p.display().to_string()),
            },
            other => Status::Error(describe(other)),
        };
    }

    /// The screen.
    pub fn view(&self) -> Element<'_, Message> {
        let connecting = self.status == Status::Connecting;
        let asking = matches!(self.status, Status::Trust { .. });
        let field = |label: &'static str, id: &'static str, placeholder: &'static str, value: &str| {
            let input = text_input(placeholder, value).id(id).padding(8).on_submit(Message::Submit);
            (label, input)
        };
        let (l1, server) = field("Server", ids::SERVER, "host:port, e.g. chat.example.org:7878", &self.server);
        let (l2, user) = field("Username", ids::USERNAME, "your name in the room", &self.username);
        let (l3, pass) = field("Password", ids::PASSWORD, "only if the server has one", &self.password);
        let (l4, key) = field("Server key", ids::KEY, "paste the key from the server's admin", &self.key);
        let editable = !connecting && !asking;
        let server = server.on_input_maybe(editable.then_some(Message::Server));
        let user = user.on_input_maybe(editable.then_some(Message::Username));
        let pass = pass.secure(true).on_input_maybe(editable.then_some(Message::Password));
        let key = key.secure(true).on_input_maybe(editable.then_some(Message::Key));
        let labelled =
            |label, input: text_input::TextInput<'static, Message>| column![text(label).size(14), input].spacing(4);
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
        .align_y(Alignment::Center);
        let mut form = column![
            text("Socket Chatroom").size(28),
            text("Encrypted text and voice chat").size(14).style(style::muted),
            space().height(8),
            labelled(l1, server),
            labelled(l2, user),
            labelled(l3, pass),
            labelled(l4, key),
            remember,
            buttons,
        ]
        .spacing(12)
        .max_width(460);
        match &self.status {
            Status::Error(e) => {
                form = form.push(container(text(e.clone())).padding(10).width(Fill).style(style::error_box))
            }
            Status::Changed { server, expected, actual, file } => {
                let fix = match file {
                    Some(f) => format!(
                        "If the server's admin confirms the new fingerprint, remove the line for {server} from {f} and connect again."
                    ),
                    None => "If the server's admin confirms the new fingerprint, connect again with it.".to_owned(),
                };
                form = form.push(
                    container(
                        column![
                            text("SERVER IDENTITY CHANGED — connection refused").size(18),
                            text(format!(
                                "{server} presented a different identity than the one pinned the first time. \
                                 Someone may be impersonating the server, or its key was replaced."
                            )),
                            text(format!("Expected: {expected}")),
                            text(format!("Presented: {actual}")),
                            text(fix),
                        ]
                        .spacing(6),
                    )
                    .padding(12)
                    .width(Fill)
                    .style(style::error_box),
                );
            }
            _ => {}
        }
        let page = center(container(form).padding(24).max_width(508).style(style::card)).padding(16);
        match &self.status {
            Status::Trust { server, fingerprint } => style::modal(page.into(), trust_prompt(server, fingerprint)),
            _ => page.into(),
        }
    }
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
    fn submit_trims_and_blocks_a_second_submit() {
        let mut c = filled();
        let Action::Connect(r) = c.update(Message::Submit) else { panic!("connects: {:?}", c.status) };
        assert_eq!((r.server.as_str(), r.username.as_str(), r.password), ("127.0.0.1:7878", "alice", None));
        assert!(matches!(c.update(Message::Submit), Action::None), "already connecting");
        assert!(matches!(c.update(Message::Cancel), Action::Cancel));
        assert_eq!(c.status, Status::Idle);
    }
}
