//! The account forms of the chat screen for a registered name: "Change
//! password" (the current password, then the new one twice) and "Give
//! this name back" (its password, then a second press to confirm). Each shows the
//! server's answer; the chat screen opens and closes them.

use client_core::{Secret, check_account_password};
use iced::widget::{button, column, container, row, space, text, text_input};
use iced::{Element, Fill};

use crate::style;

/// Id of the change-password form's current-password field.
pub const CURRENT_PASSWORD: &str = "account-current-password";
/// Id of the change-password form's new-password field.
pub const NEW_PASSWORD: &str = "account-new-password";
/// Id of the change-password form's confirmation field.
pub const NEW_CONFIRM: &str = "account-new-confirm";
/// Id of the give-back form's password field.
pub const GIVE_BACK_PASSWORD: &str = "account-give-back-password";

/// The server's action name for a password change.
pub const PASSWORD_ACTION: &str = "password";
/// The server's action name for giving a name back.
pub const UNREGISTER_ACTION: &str = "unregister";

/// An open account form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// "Change password".
    Password(PasswordChange),
    /// "Give this name back".
    GiveBack(GiveBack),
}

/// The "Change password" form.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PasswordChange {
    /// The current password (empty in a session logged in with a reset
    /// code: none is sent).
    pub current: String,
    /// The new password.
    pub new: String,
    /// The new password again.
    pub confirm: String,
    /// Why the last try did not work (ours or the server's words).
    pub error: Option<String>,
    /// Sent; waiting for the server's answer.
    pub waiting: bool,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChange")
            .field("error", &self.error)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

/// The "Give this name back" form.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GiveBack {
    /// The account password.
    pub password: String,
    /// The first press was taken: the next one sends.
    pub confirming: bool,
    /// Why the last try did not work (ours or the server's words).
    pub error: Option<String>,
    /// Sent; waiting for the server's answer.
    pub waiting: bool,
}

impl std::fmt::Debug for GiveBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GiveBack")
            .field("confirming", &self.confirming)
            .field("error", &self.error)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

/// What the user did in an account form.
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// "Change password" pressed (or `/password` typed).
    OpenPassword,
    /// "Give this name back" pressed (or `/unregister` typed).
    OpenGiveBack,
    /// The current password edited.
    Current(String),
    /// The new password edited.
    New(String),
    /// The new password's confirmation edited.
    Confirm(String),
    /// The give-back form's password edited.
    Password(String),
    /// The form's main button pressed (or Enter in a field).
    Submit,
    /// The form closed.
    Close,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the typed passwords.
        f.write_str(match self {
            Message::OpenPassword => "OpenPassword",
            Message::OpenGiveBack => "OpenGiveBack",
            Message::Current(_) => "Current(..)",
            Message::New(_) => "New(..)",
            Message::Confirm(_) => "Confirm(..)",
            Message::Password(_) => "Password(..)",
            Message::Submit => "Submit",
            Message::Close => "Close",
        })
    }
}

/// An account request a form asks to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Change the password: `old` is `None` when the current-password
    /// field was left empty (a session logged in with a reset code).
    ChangePassword {
        /// The current password.
        old: Option<Secret>,
        /// The new one.
        new: Secret,
    },
    /// Give the name back, confirmed with its password.
    Unregister(Secret),
}

impl Form {
    /// The server's action name whose `done` or `denied` answers this form.
    pub fn action(&self) -> &'static str {
        match self {
            Form::Password(_) => PASSWORD_ACTION,
            Form::GiveBack(_) => UNREGISTER_ACTION,
        }
    }

    /// Takes an edit or a press; the request to send, when one is ready.
    /// Opening and closing are the chat screen's.
    pub fn update(&mut self, message: Message) -> Option<Request> {
        match (self, message) {
            (Form::Password(p), Message::Current(s)) => {
                p.current = s;
                p.error = None;
            }
            (Form::Password(p), Message::New(s)) => {
                p.new = s;
                p.error = None;
            }
            (Form::Password(p), Message::Confirm(s)) => {
                p.confirm = s;
                p.error = None;
            }
            (Form::Password(p), Message::Submit) => return p.submit(),
            (Form::GiveBack(g), Message::Password(s)) => {
                g.password = s;
                g.error = None;
                g.confirming = false;
            }
            (Form::GiveBack(g), Message::Submit) => return g.submit(),
            _ => {}
        }
        None
    }

    /// The server refused: `detail` shows in the form, which may be tried
    /// again.
    pub fn denied(&mut self, detail: String) {
        match self {
            Form::Password(p) => {
                p.waiting = false;
                p.error = Some(detail);
            }
            Form::GiveBack(g) => {
                g.waiting = false;
                g.confirming = false;
                g.error = Some(detail);
            }
        }
    }

    /// The form, for the account named `me`.
    pub fn view<'a>(&'a self, me: &str) -> Element<'a, Message> {
        match self {
            Form::Password(p) => p.view(),
            Form::GiveBack(g) => g.view(me),
        }
    }
}

impl PasswordChange {
    fn submit(&mut self) -> Option<Request> {
        if self.waiting {
            return None;
        }
        let new = Secret::new(self.new.clone());
        if let Err(e) = check_account_password(&new) {
            self.error = Some(format!("The new password: {e}."));
            return None;
        }
        if self.new != self.confirm {
            self.error = Some("The two new passwords differ.".into());
            return None;
        }
        self.waiting = true;
        let old = Some(Secret::new(self.current.clone())).filter(|s| !s.expose().is_empty());
        Some(Request::ChangePassword { old, new })
    }

    fn view(&self) -> Element<'_, Message> {
        let field = |placeholder, value: &str, id, on_input: fn(String) -> Message| {
            text_input(placeholder, value).id(id).secure(true).padding(8).on_input(on_input).on_submit(Message::Submit)
        };
        let body = column![
            text("Change password").size(20),
            text("The account password of this name (not the server password). At least 8 characters.")
                .size(13)
                .style(style::muted),
            text("Current password (leave empty after a reset code)").size(14),
            field("current password", &self.current, CURRENT_PASSWORD, Message::Current),
            text("New password").size(14),
            field("new password", &self.new, NEW_PASSWORD, Message::New),
            text("New password again").size(14),
            field("the same again", &self.confirm, NEW_CONFIRM, Message::Confirm),
        ]
        .spacing(8);
        let submit = if self.waiting { "Saving…" } else { "Save password" };
        card(body, self.error.as_deref(), submit, (!self.waiting).then_some(Message::Submit), false)
    }
}

impl GiveBack {
    fn submit(&mut self) -> Option<Request> {
        if self.waiting {
            return None;
        }
        if self.password.is_empty() {
            self.error = Some("Type the account password to give this name back.".into());
            return None;
        }
        if !self.confirming {
            self.confirming = true;
            return None;
        }
        self.waiting = true;
        Some(Request::Unregister(Secret::new(self.password.clone())))
    }

    fn view<'a>(&'a self, me: &str) -> Element<'a, Message> {
        let me = client_core::display::escape_line(me).into_owned();
        let mut body = column![
            text("Give this name back").size(20),
            text(format!(
                "{me} stops being registered: anyone may then take it, and its stored private messages \
                 can no longer be read by you."
            ))
            .size(13)
            .style(style::muted),
            text("Account password").size(14),
            text_input("account password", &self.password)
                .id(GIVE_BACK_PASSWORD)
                .secure(true)
                .padding(8)
                .on_input(Message::Password)
                .on_submit(Message::Submit),
        ]
        .spacing(8);
        if self.confirming {
            body = body.push(text(format!("Really give {me} back? Press again to confirm.")).size(14));
        }
        let submit = match (self.waiting, self.confirming) {
            (true, _) => "Giving it back…",
            (false, true) => "Yes, give it back",
            (false, false) => "Give it back",
        };
        card(body, self.error.as_deref(), submit, (!self.waiting).then_some(Message::Submit), true)
    }
}

/// A form's card: its body, the error if any, then Cancel and the main
/// button (`danger` for one that cannot be undone).
fn card<'a>(
    body: iced::widget::Column<'a, Message>,
    error: Option<&str>,
    submit: &'a str,
    on_submit: Option<Message>,
    danger: bool,
) -> Element<'a, Message> {
    let mut body = body;
    if let Some(e) = error {
        body = body.push(container(text(e.to_owned()).size(13)).padding(6).width(Fill).style(style::error_box));
    }
    let main = button(submit).on_press_maybe(on_submit);
    let main = if danger { main.style(button::danger) } else { main };
    body = body.push(
        row![space::horizontal(), button("Cancel").on_press(Message::Close).style(button::secondary), main].spacing(10),
    );
    container(body).padding(20).max_width(440).style(style::card).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_current_password_sends_none_and_a_typed_one_is_sent() {
        let mut form = Form::Password(PasswordChange::default());
        form.update(Message::New("new secret".into()));
        form.update(Message::Confirm("new secret".into()));
        assert_eq!(
            form.update(Message::Submit),
            Some(Request::ChangePassword { old: None, new: Secret::new("new secret") })
        );
        assert_eq!(form.update(Message::Submit), None, "one request at a time");
        form.denied("wrong password".into());
        form.update(Message::Current("old secret".into()));
        assert_eq!(
            form.update(Message::Submit),
            Some(Request::ChangePassword { old: Some(Secret::new("old secret")), new: Secret::new("new secret") })
        );
    }

    #[test]
    fn a_short_or_mismatched_new_password_is_not_sent() {
        let mut form = PasswordChange { new: "short".into(), confirm: "short".into(), ..PasswordChange::default() };
        assert_eq!(form.submit(), None);
        assert!(form.error.as_deref().is_some_and(|e| e.starts_with("The new password")), "{:?}", form.error);
        form.new = "long enough".into();
        assert_eq!(form.submit(), None);
        assert_eq!(form.error.as_deref(), Some("The two new passwords differ."));
        assert!(!form.waiting);
    }

    #[test]
    fn giving_back_asks_for_the_password_then_a_confirmation() {
        let mut form = Form::GiveBack(GiveBack::default());
        assert_eq!(form.update(Message::Submit), None, "no password");
        form.update(Message::Password("hunter22".into()));
        assert_eq!(form.update(Message::Submit), None, "first press asks to confirm");
        // Editing the password asks again.
        form.update(Message::Password("hunter2".into()));
        assert_eq!(form.update(Message::Submit), None);
        assert_eq!(form.update(Message::Submit), Some(Request::Unregister(Secret::new("hunter2"))));
        assert!(!format!("{form:?} {:?}", Message::Password("hunter2".into())).contains("hunter2"));
    }
}
