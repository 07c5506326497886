//! Push-to-talk: which key, and the switch it holds down in client-core's
//! send pipeline. Keys are compared by value (`F1`…`F12` as iced's named
//! keys), and every way of letting go (the key released, the window losing
//! focus, the connection dropping) goes through [`Binding::release`].

use client_core::audio::pipeline::PushToTalk;
use iced::keyboard::key::Named;

/// The keys push-to-talk can use, as the config file spells them.
pub const KEYS: [(&str, Named); 12] = [
    ("F1", Named::F1),
    ("F2", Named::F2),
    ("F3", Named::F3),
    ("F4", Named::F4),
    ("F5", Named::F5),
    ("F6", Named::F6),
    ("F7", Named::F7),
    ("F8", Named::F8),
    ("F9", Named::F9),
    ("F10", Named::F10),
    ("F11", Named::F11),
    ("F12", Named::F12),
];

/// The named key a config value stands for (`None`: not a push-to-talk key).
pub fn parse_key(name: &str) -> Option<Named> {
    KEYS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// A push-to-talk key bound to the switch of one voice join.
#[derive(Debug, Clone)]
pub struct Binding {
    key: Named,
    switch: PushToTalk,
}

impl Binding {
    /// Binds the key named `name` (as in the config) to a fresh, released
    /// switch; `None` when `name` is not a push-to-talk key.
    pub fn new(name: &str) -> Option<Self> {
        parse_key(name).map(|key| Self { key, switch: PushToTalk::new() })
    }

    /// The switch to hand to the voice pipeline.
    pub fn switch(&self) -> PushToTalk {
        self.switch.clone()
    }

    /// A key went down: `true` if it was this one (now transmitting).
    pub fn press(&self, key: Named) -> bool {
        let ours = key == self.key;
        if ours {
            self.switch.set(true);
        }
        ours
    }

    /// A key came up: `true` if it was this one (now silent).
    pub fn key_up(&self, key: Named) -> bool {
        let ours = key == self.key;
        if ours {
            self.release();
        }
        ours
    }

    /// Lets go, whatever the key is doing (focus lost, connection dropped):
    /// a release that happens elsewhere never reaches us.
    pub fn release(&self) {
        self.switch.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_by_value_not_by_name_spelling() {
        assert_eq!(parse_key("F7"), Some(Named::F7));
        assert_eq!(parse_key("f7"), None);
        assert_eq!(parse_key("Meta"), None);
        let b = Binding::new("F3").expect("F3 is a push-to-talk key");
        let pipeline = b.switch();
        assert!(!b.press(Named::F4));
        assert!(!pipeline.pressed());
        assert!(b.press(Named::F3));
        assert!(pipeline.pressed());
        assert!(!b.key_up(Named::Escape));
        assert!(pipeline.pressed());
        assert!(b.key_up(Named::F3));
        assert!(!pipeline.pressed());
        b.press(Named::F3);
        b.release();
        assert!(!pipeline.pressed(), "focus loss lets go");
    }

    #[test]
    fn every_offered_key_parses() {
        for (name, key) in KEYS {
            assert_eq!(parse_key(name), Some(key));
        }
    }
}
