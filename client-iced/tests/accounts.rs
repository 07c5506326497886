//! The account and moderation parts of the GUI, driven through its widgets
//! with `iced_test`'s `Simulator` (no window, no server): the connect
//! form's two password fields, "Register this name", "Change password" and
//! "Give this name back", paging a stored private conversation, a
//! moderator's actions on a member, and the topic kept current.

use client_core::{Action, DenyReason, Event, Fingerprint, Limits, Role, RoleGrant, Secret, Target, Trust};
use client_iced::screen::{account, chat, connect};
use iced_test::Simulator;
use iced_test::core::{Point, Rectangle, Size, widget};
use iced_test::selector::Candidate;

const SMALL: Size = Size::new(800.0, 600.0);
const WINDOW: Size = Size::new(1024.0, 700.0);

fn simulator<'a, M>(
    size: Size,
    view: iced_test::core::Element<'a, M, iced_test::core::Theme, iced_test::renderer::Renderer>,
) -> Simulator<'a, M> {
    Simulator::with_size(iced_test::core::Settings::default(), size, view)
}

/// Layout bounds of the first text equal to `needle`.
fn text_bounds<M>(sim: &mut Simulator<'_, M>, needle: &str) -> Option<Rectangle> {
    sim.find(|c: Candidate<'_>| match c {
        Candidate::Text { content, bounds, .. } if content == needle => Some(bounds),
        _ => None,
    })
    .ok()
}

/// Clicks the field `id` and types `text` into it.
fn type_into<M>(sim: &mut Simulator<'_, M>, id: &'static str, text: &str) {
    let field = sim.find(widget::Id::new(id)).unwrap_or_else(|e| panic!("no field {id}: {e}")).bounds();
    sim.point_at(Point::new(field.x + field.width / 2.0, field.y + field.height / 2.0));
    sim.simulate(iced_test::simulator::click());
    sim.typewrite(text);
}

fn inside(b: Rectangle, size: Size) -> bool {
    b.x >= 0.0 && b.y >= 0.0 && b.x + b.width <= size.width && b.y + b.height <= size.height
}

#[test]
fn the_connect_form_asks_for_the_account_password_apart_from_the_server_password() {
    let form = connect::Connect {
        server: "chat.example.org:7878".into(),
        username: "dana".into(),
        key: "A".repeat(43) + "=",
        ..connect::Connect::default()
    };
    let mut sim = simulator(SMALL, form.view());
    let server = text_bounds(&mut sim, "Server password").expect("the server password's label");
    let account = text_bounds(&mut sim, "Account password (registered names)").expect("the account password's label");
    assert!(inside(server, SMALL) && inside(account, SMALL), "{server:?} {account:?}");
    let connect = text_bounds(&mut sim, "Connect").expect("the Connect button");
    assert!(inside(connect, SMALL), "the form still fits 800×600: {connect:?}");
    type_into(&mut sim, connect::ids::ACCOUNT_PASSWORD, "hunter22");
    let typed: Vec<_> = sim.into_messages().collect();
    assert_eq!(typed.last(), Some(&connect::Message::AccountPassword("hunter22".into())), "{typed:?}");

    let mut form = form;
    for m in typed {
        form.update(m);
    }
    // An error under the form still fits 800×600 with the extra field.
    form.status = connect::Status::Error("Wrong or missing password for this server.".into());
    let mut sim = simulator(SMALL, form.view());
    let error = text_bounds(&mut sim, "Wrong or missing password for this server.").expect("the error");
    assert!(inside(error, SMALL), "{error:?}");
    drop(sim);
    form.status = connect::Status::Idle;
    let connect::Action::Connect(request) = form.update(connect::Message::Submit) else { panic!("connects") };
    assert_eq!((request.password, request.account_password), (None, Some(Secret::new("hunter22"))));
}

fn connected(registered: bool, roles: Vec<RoleGrant>) -> chat::Chat {
    let fingerprint: Fingerprint = format!("SHA256:{}A", "A".repeat(42)).parse().expect("fingerprint");
    let users = vec!["dana".to_owned(), "erin".to_owned()];
    let mut chat = chat::Chat::new("dana".into(), "h:1".into(), fingerprint, users.clone(), 4096);
    chat.apply(Event::Connected {
        me: "dana".into(),
        users: users.clone(),
        users_total: 2,
        rooms: vec!["general".into()],
        fingerprint,
        trust: Trust::Known,
        limits: Limits {
            max_message_bytes: 4096,
            rate_per_sec: 10,
            burst: 5,
            keepalive_secs: 30,
            idle_timeout_secs: 90,
        },
        registered,
        roles,
    });
    chat.apply(Event::RoomJoined {
        room: "general".into(),
        topic: String::new(),
        users,
        users_total: 2,
        voice: false,
        history: false,
    });
    chat
}

/// Clicks the button labelled `label` in `chat` and returns the messages.
fn click_in(chat: &chat::Chat, label: &str) -> Vec<chat::Message> {
    let mut sim = simulator(WINDOW, chat.view());
    sim.click(label).unwrap_or_else(|e| panic!("no {label:?}: {e}"));
    sim.into_messages().collect()
}

#[test]
fn register_this_name_asks_twice_and_shows_the_answer() {
    let mut chat = connected(false, vec![]);
    let messages = click_in(&chat, "Register this name");
    assert_eq!(messages, [chat::Message::OpenRegister]);
    assert_eq!(chat.update(chat::Message::OpenRegister), chat::Action::Focus(chat::REGISTER_PASSWORD));

    // Typed through the form's fields; two different passwords are not sent.
    let mut sim = simulator(WINDOW, chat.view());
    type_into(&mut sim, chat::REGISTER_PASSWORD, "correct horse");
    type_into(&mut sim, chat::REGISTER_CONFIRM, "correct house");
    sim.click("Register").expect("the Register button");
    let typed: Vec<_> = sim.into_messages().collect();
    assert_eq!(typed.last(), Some(&chat::Message::SubmitRegister), "{typed:?}");
    for m in typed {
        assert_eq!(chat.update(m), chat::Action::None, "nothing sent while they differ");
    }
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "The two passwords differ.").is_some());
    drop(sim);

    chat.update(chat::Message::RegisterConfirm("correct horse".into()));
    let sent = chat.update(chat::Message::SubmitRegister);
    assert_eq!(sent, chat::Action::Request(chat::Request::Register(Secret::new("correct horse"))));
    assert!(!format!("{chat:?}").contains("correct horse"), "the form's Debug hides the password");
    chat.apply(Event::Denied {
        action: "register".into(),
        reason: DenyReason::StorageUnavailable,
        detail: "the store is unavailable; try again".into(),
    });
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "the store is unavailable; try again").is_some(), "the denial shows in the form");
    drop(sim);

    assert!(matches!(chat.update(chat::Message::SubmitRegister), chat::Action::Request(_)), "tried again");
    chat.apply(Event::Done { action: "register".into(), detail: "dana is registered".into() });
    assert_eq!(chat.register, None, "the form closes");
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "Register this name").is_none(), "registered: no more offer");
}

#[test]
fn moderators_get_a_members_actions_and_others_do_not() {
    let chat = connected(true, vec![]);
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "mod").is_none(), "not a moderator");
    drop(sim);

    let mut chat = connected(true, vec![RoleGrant { role: Role::Moderator, room: Some("general".into()) }]);
    let messages = click_in(&chat, "mod");
    assert_eq!(messages, [chat::Message::Moderate("erin".into())], "for the others, not us");
    chat.update(chat::Message::Moderate("erin".into()));
    let mut sim = simulator(WINDOW, chat.view());
    type_into(&mut sim, chat::MOD_REASON, "spam");
    sim.click("Kick").expect("Kick");
    let typed: Vec<_> = sim.into_messages().collect();
    let mut sent = Vec::new();
    for m in typed {
        let action = chat.update(m);
        if action != chat::Action::None {
            sent.push(action);
        }
    }
    assert_eq!(
        sent,
        [chat::Action::Request(chat::Request::Moderate(Action::Kick {
            name: "erin".into(),
            reason: Some("spam".into())
        }))]
    );
    chat.update(chat::Message::Moderate("erin".into()));
    let messages = click_in(&chat, "Mute in #general");
    assert_eq!(messages, [chat::Message::Sanction(chat::Sanction::Mute)]);
    assert_eq!(
        chat.update(chat::Message::Sanction(chat::Sanction::Mute)),
        chat::Action::Request(chat::Request::Moderate(Action::Mute {
            name: "erin".into(),
            room: Some("general".into()),
            duration_secs: None,
            reason: None
        }))
    );
}

#[test]
fn the_topic_changes_live_and_a_ban_ends_the_session_with_why() {
    let mut chat = connected(false, vec![]);
    chat.apply(Event::Topic { room: "general".into(), topic: "Release on Friday".into(), by: "mod".into() });
    let mut sim = simulator(WINDOW, chat.view());
    let topic = text_bounds(&mut sim, "Release on Friday").expect("the topic under the room's name");
    assert!(inside(topic, WINDOW));
    assert!(text_bounds(&mut sim, "mod set the topic of #general: Release on Friday").is_some());
    drop(sim);

    chat.ended("Banned: banned by mod: spam. The ban does not end by itself.".into());
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "Reconnect now").is_none(), "nothing reconnects");
    let back = text_bounds(&mut sim, "Back").expect("a way back");
    assert!(inside(back, WINDOW));
    sim.click("Back").expect("Back");
    assert_eq!(sim.into_messages().collect::<Vec<_>>(), [chat::Message::GiveUp]);
}

/// Feeds what was typed and clicked to `chat`; the actions that are not
/// `None`.
fn feed(chat: &mut chat::Chat, messages: Vec<chat::Message>) -> Vec<chat::Action> {
    messages.into_iter().map(|m| chat.update(m)).filter(|a| *a != chat::Action::None).collect()
}

#[test]
fn change_password_sends_no_current_password_when_left_empty_and_shows_the_answer() {
    let mut chat = connected(true, vec![]);
    let mut sim = simulator(SMALL, chat.view());
    assert!(text_bounds(&mut sim, "Register this name").is_none(), "registered already");
    for label in ["Change password", "Give this name back", "Disconnect"] {
        let b = text_bounds(&mut sim, label).unwrap_or_else(|| panic!("no {label:?}"));
        assert!(inside(b, SMALL), "the header still fits 800×600: {label} {b:?}");
    }
    sim.click("Change password").expect("the Change password button");
    let opened: Vec<_> = sim.into_messages().collect();
    assert_eq!(opened, [chat::Message::Account(account::Message::OpenPassword)]);
    assert_eq!(feed(&mut chat, opened), [chat::Action::Focus(account::CURRENT_PASSWORD)]);

    // A session logged in with a reset code: the current field left empty.
    let mut sim = simulator(SMALL, chat.view());
    type_into(&mut sim, account::NEW_PASSWORD, "correct horse");
    type_into(&mut sim, account::NEW_CONFIRM, "correct horse");
    let save = text_bounds(&mut sim, "Save password").expect("the Save password button");
    assert!(inside(save, SMALL), "the form fits 800×600: {save:?}");
    sim.click("Save password").expect("Save password");
    let typed: Vec<_> = sim.into_messages().collect();
    let sent = feed(&mut chat, typed);
    let change = |old: Option<&str>| {
        chat::Action::Request(chat::Request::Account(account::Request::ChangePassword {
            old: old.map(Secret::new),
            new: Secret::new("correct horse"),
        }))
    };
    assert_eq!(sent, [change(None)]);
    assert!(!format!("{chat:?}").contains("correct horse"), "the form's Debug hides the passwords");

    chat.apply(Event::Denied {
        action: "password".into(),
        reason: DenyReason::WrongPassword,
        detail: "the current password is wrong".into(),
    });
    let mut sim = simulator(SMALL, chat.view());
    assert!(text_bounds(&mut sim, "the current password is wrong").is_some(), "the denial shows in the form");
    type_into(&mut sim, account::CURRENT_PASSWORD, "old horse");
    sim.click("Save password").expect("Save password");
    let typed: Vec<_> = sim.into_messages().collect();
    assert_eq!(feed(&mut chat, typed), [change(Some("old horse"))], "typed: sent");

    chat.apply(Event::Done { action: "password".into(), detail: "your password is changed".into() });
    assert_eq!(chat.account, None, "the form closes");
    let mut sim = simulator(SMALL, chat.view());
    assert!(text_bounds(&mut sim, "your password is changed").is_some(), "the answer is in the log");
}

#[test]
fn a_mismatched_new_password_is_not_sent() {
    let mut chat = connected(true, vec![]);
    chat.update(chat::Message::Account(account::Message::OpenPassword));
    let mut sim = simulator(WINDOW, chat.view());
    type_into(&mut sim, account::NEW_PASSWORD, "correct horse");
    type_into(&mut sim, account::NEW_CONFIRM, "correct house");
    sim.click("Save password").expect("Save password");
    let typed: Vec<_> = sim.into_messages().collect();
    assert_eq!(feed(&mut chat, typed), [], "nothing sent");
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "The two new passwords differ.").is_some());
    sim.click("Cancel").expect("Cancel");
    let typed: Vec<_> = sim.into_messages().collect();
    assert_eq!(feed(&mut chat, typed), [chat::Action::FocusInput]);
    assert_eq!(chat.account, None);
}

#[test]
fn giving_the_name_back_asks_for_the_password_and_a_confirmation() {
    let mut chat = connected(true, vec![]);
    let opened = click_in(&chat, "Give this name back");
    assert_eq!(feed(&mut chat, opened), [chat::Action::Focus(account::GIVE_BACK_PASSWORD)]);

    let mut sim = simulator(SMALL, chat.view());
    type_into(&mut sim, account::GIVE_BACK_PASSWORD, "hunter22");
    sim.click("Give it back").expect("Give it back");
    let typed: Vec<_> = sim.into_messages().collect();
    assert_eq!(feed(&mut chat, typed), [], "asks to confirm first");

    let mut sim = simulator(SMALL, chat.view());
    assert!(text_bounds(&mut sim, "Really give dana back? Press again to confirm.").is_some());
    let yes = text_bounds(&mut sim, "Yes, give it back").expect("the confirmation");
    assert!(inside(yes, SMALL), "{yes:?}");
    sim.click("Yes, give it back").expect("Yes, give it back");
    let unregister =
        chat::Action::Request(chat::Request::Account(account::Request::Unregister(Secret::new("hunter22"))));
    let typed: Vec<_> = sim.into_messages().collect();
    assert_eq!(feed(&mut chat, typed), std::slice::from_ref(&unregister));

    chat.apply(Event::Denied {
        action: "unregister".into(),
        reason: DenyReason::RetryLater,
        detail: "too many wrong passwords; try again in 2 s".into(),
    });
    let mut sim = simulator(SMALL, chat.view());
    assert!(text_bounds(&mut sim, "too many wrong passwords; try again in 2 s").is_some());
    assert!(text_bounds(&mut sim, "Give it back").is_some(), "confirmed again before the next try");
    drop(sim);
    assert_eq!(chat.update(chat::Message::Account(account::Message::Submit)), chat::Action::None);
    assert_eq!(chat.update(chat::Message::Account(account::Message::Submit)), unregister);

    chat.apply(Event::Done { action: "unregister".into(), detail: "dana is no longer registered".into() });
    assert_eq!(chat.account, None, "the form closes");
    let mut sim = simulator(SMALL, chat.view());
    assert!(text_bounds(&mut sim, "dana is no longer registered").is_some());
    assert!(text_bounds(&mut sim, "Register this name").is_some(), "free again: it may be registered");
    assert!(text_bounds(&mut sim, "Change password").is_none());
}

fn private(id: u64, from: &str, to: &str) -> Event {
    Event::Message {
        id,
        from: from.into(),
        text: format!("stored {id}"),
        time: std::time::SystemTime::UNIX_EPOCH,
        room: None,
        to: Some(to.into()),
        history: true,
        edited: false,
    }
}

#[test]
fn a_private_conversation_of_a_registered_name_pages_its_stored_history() {
    let mut chat = connected(true, vec![]);
    chat.update(chat::Message::Show(Target::User("erin".into())));
    let clicked = click_in(&chat, "Load older messages");
    assert_eq!(clicked, [chat::Message::LoadOlder]);
    let first =
        chat::Action::Request(chat::Request::PrivateHistory { with: "erin".into(), before: None, limit: chat::PAGE });
    assert_eq!(feed(&mut chat, clicked), [first]);
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "Loading older messages…").is_some(), "one page at a time");
    drop(sim);
    assert_eq!(chat.update(chat::Message::LoadOlder), chat::Action::None);

    chat.apply(private(7, "erin", "dana"));
    chat.apply(private(8, "dana", "erin"));
    chat.apply(Event::PrivateHistoryEnd { with: "erin".into(), more: true });
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "stored 7").is_some() && text_bounds(&mut sim, "stored 8").is_some());
    drop(sim);
    let next = chat::Action::Request(chat::Request::PrivateHistory {
        with: "erin".into(),
        before: Some(7),
        limit: chat::PAGE,
    });
    let clicked = click_in(&chat, "Load older messages");
    assert_eq!(feed(&mut chat, clicked), [next]);

    chat.apply(private(3, "erin", "dana"));
    chat.apply(Event::PrivateHistoryEnd { with: "erin".into(), more: false });
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "Load older messages").is_none(), "nothing older");
    assert!(text_bounds(&mut sim, "Start of the stored conversation with erin").is_some());
    let (old, new) = (
        text_bounds(&mut sim, "stored 3").expect("the older page"),
        text_bounds(&mut sim, "stored 7").expect("the first page"),
    );
    assert!(old.y < new.y, "older messages go above: {old:?} {new:?}");
    drop(sim);
    assert_eq!(chat.update(chat::Message::LoadOlder), chat::Action::None);
}

#[test]
fn a_name_that_is_not_registered_has_no_stored_conversations_to_page() {
    let mut chat = connected(false, vec![]);
    chat.update(chat::Message::Show(Target::User("erin".into())));
    let mut sim = simulator(WINDOW, chat.view());
    assert!(text_bounds(&mut sim, "Load older messages").is_none());
    drop(sim);
    assert_eq!(chat.update(chat::Message::LoadOlder), chat::Action::None);
}

#[test]
fn scrolling_to_the_top_asks_a_conversation_only_once_older_messages_are_known() {
    let mut chat = connected(true, vec![]);
    chat.update(chat::Message::Show(Target::User("erin".into())));
    assert_eq!(chat.update(chat::Message::Scrolled(0.0)), chat::Action::None, "not asked yet: the button asks");
    assert!(matches!(chat.update(chat::Message::LoadOlder), chat::Action::Request(_)));
    chat.apply(private(7, "erin", "dana"));
    chat.apply(Event::PrivateHistoryEnd { with: "erin".into(), more: true });
    let next = chat::Action::Request(chat::Request::PrivateHistory {
        with: "erin".into(),
        before: Some(7),
        limit: chat::PAGE,
    });
    assert_eq!(chat.update(chat::Message::Scrolled(0.0)), next);
}
