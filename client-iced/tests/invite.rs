//! "Paste invite link" on the connect form (issue 17), driven through its
//! widgets with `iced_test`'s `Simulator` (no window, no server): a link
//! fills the server, the key, the identity to pin and the room; the
//! connection made from it pins the identity, so no trust question can
//! follow; the form still fits 800×600.

use client_core::{Fingerprint, InviteLink, KeySource, Psk};
use client_iced::screen::connect;
use iced_test::Simulator;
use iced_test::core::{Point, Rectangle, Size, widget};
use iced_test::selector::Candidate;

const SMALL: Size = Size::new(800.0, 600.0);

fn simulator<'a, M>(
    size: Size,
    view: iced_test::core::Element<'a, M, iced_test::core::Theme, iced_test::renderer::Renderer>,
) -> Simulator<'a, M> {
    Simulator::with_size(iced_test::core::Settings::default(), size, view)
}

/// Layout bounds of the first text containing `needle`.
fn text_bounds<M>(sim: &mut Simulator<'_, M>, needle: &str) -> Option<Rectangle> {
    sim.find(|c: Candidate<'_>| match c {
        Candidate::Text { content, bounds, .. } if content.contains(needle) => Some(bounds),
        _ => None,
    })
    .ok()
}

fn inside(b: Rectangle, size: Size) -> bool {
    b.x >= 0.0 && b.y >= 0.0 && b.x + b.width <= size.width && b.y + b.height <= size.height
}

/// Clicks the field `id`, types `text` into it and applies what it sent.
fn paste(form: &mut connect::Connect, id: &'static str, text: &str) {
    let messages: Vec<_> = {
        let mut sim = simulator(SMALL, form.view());
        let field = sim.find(widget::Id::new(id)).unwrap_or_else(|e| panic!("no field {id}: {e}")).bounds();
        sim.point_at(Point::new(field.x + field.width / 2.0, field.y + field.height / 2.0));
        sim.simulate(iced_test::simulator::click());
        sim.typewrite(text);
        sim.into_messages().collect()
    };
    assert_eq!(messages.last(), Some(&connect::Message::Invite(text.to_owned())), "{messages:?}");
    for m in messages {
        form.update(m);
    }
}

fn link() -> InviteLink {
    InviteLink {
        addresses: vec!["chat.example.org:7878".into(), "10.0.0.2:7878".into()],
        key: Psk::generate(),
        fingerprint: Fingerprint::of_der(b"the server's identity"),
        room: Some("lobby".into()),
    }
}

#[test]
fn pasting_an_invite_fills_the_form_and_pins_the_server() {
    let invite = link();
    let mut form = connect::Connect { username: "dana".into(), ..connect::Connect::default() };
    paste(&mut form, connect::ids::INVITE, &invite.to_string());
    assert_eq!(form.server, "chat.example.org:7878");
    assert_eq!(form.key, invite.key);
    assert_eq!(form.status, connect::Status::Idle);

    // What the invite settled shows, and the form still fits 800×600.
    let mut sim = simulator(SMALL, form.view());
    let label = text_bounds(&mut sim, "from the invite: identity pinned, joining #lobby").expect("the invite's label");
    let button = text_bounds(&mut sim, "Connect").expect("the Connect button");
    assert!(inside(label, SMALL) && inside(button, SMALL), "{label:?} {button:?}");
    drop(sim);

    let connect::Action::Connect(request) = form.update(connect::Message::Submit) else {
        panic!("connects: {:?}", form.status)
    };
    assert_eq!(request.invite.as_ref(), Some(&invite), "pinned, joining its room");
    assert_eq!(request.key.expose_text(), invite.key);
    assert_eq!(request.key_source, KeySource::Invite);

    // Another address typed over it: the invite no longer applies.
    form.update(connect::Message::Cancel);
    form.update(connect::Message::Server("elsewhere:7878".into()));
    let connect::Action::Connect(request) = form.update(connect::Message::Submit) else { panic!("connects") };
    assert_eq!((request.invite, request.key_source), (None, KeySource::Config));
}

#[test]
fn a_connection_from_an_invite_asks_no_trust_question() {
    let invite = link();
    let mut app = client_iced::App::new(&client_iced::Options::default());
    let _ = app.update(client_iced::Message::Connect(connect::Message::Invite(invite.to_string())));
    let _ = app.update(client_iced::Message::Connect(connect::Message::Username("dana".into())));
    let _ = app.update(client_iced::Message::Connect(connect::Message::Submit));
    assert_eq!(app.connect_form().status, connect::Status::Connecting);
    let options = app.connecting_with().expect("connecting");
    // An explicit pin: client-core checks it and never stops to ask.
    assert_eq!(options.fingerprint, Some(invite.fingerprint));
    assert_eq!(
        (options.server.as_str(), options.alternates.as_slice()),
        ("chat.example.org:7878", &["10.0.0.2:7878".to_owned()][..])
    );
    assert_eq!((options.key.expose_text(), options.key_source), (invite.key.as_str(), KeySource::Invite));
    assert_eq!(options.rooms, vec!["lobby".to_owned()]);
}

#[test]
fn a_link_that_is_not_an_invite_is_said_so_in_place() {
    let mut form = connect::Connect { server: "h:1".into(), ..connect::Connect::default() };
    paste(&mut form, connect::ids::INVITE, "https://h:1/");
    assert!(matches!(&form.status, connect::Status::Error(e) if e.contains("chatroom://")), "{:?}", form.status);
    assert_eq!(form.server, "h:1", "nothing filled");
    let mut sim = simulator(SMALL, form.view());
    let error = text_bounds(&mut sim, "That is not an invite link").expect("the error");
    assert!(inside(error, SMALL), "{error:?}");
    drop(sim);
    // Emptying the field takes the error away.
    form.update(connect::Message::Invite(String::new()));
    assert_eq!(form.status, connect::Status::Idle);
}
