//! Which key a connection uses, and what becomes of a key the server
//! issues (issue 17).
//!
//! Precedence, highest first:
//!
//! 1. a key the user named ([`KeySource::Explicit`]: `--key`,
//!    `--key-file`, `CHATROOM_KEY`);
//! 2. the key this server issued to this client, kept by an earlier run
//!    ([`crate::key_store`]);
//! 3. an invite link's key ([`KeySource::Invite`]; a key issued through
//!    another invite does not replace it: a new link is the user's word);
//! 4. the configuration file's `key` or `key_file`, or a form's
//!    ([`KeySource::Config`]).
//!
//! A key issued during a run is kept on disk and used for that run's
//! reconnections, whatever the source. A `key_revoked` disconnect removes
//! the kept key it concerns; a wrong-key refusal of a kept key says which
//! file holds it.

use protocol::crypto::{KeyId, Psk, key_id_hex};

use crate::client::{ConnectOptions, DisconnectReason, Event};
use crate::key_store::{self, KeyStore};

/// Where [`ConnectOptions::key`] came from: decides whether a key the
/// server issued to this client earlier replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySource {
    /// Named by the user (`--key`, `--key-file`, `CHATROOM_KEY`): always
    /// used.
    #[default]
    Explicit,
    /// An invite link's: replaced by a key issued through this same
    /// invite, not by one issued through another.
    Invite,
    /// A configuration file's or a connect form's: replaced by any key
    /// issued for this server.
    Config,
}

/// The key state of one client run.
#[derive(Debug, Default)]
pub(crate) struct KeyChoice {
    /// This server's issued-key file (`None`: no data directory).
    store: Option<KeyStore>,
    /// The id of the key the current connection uses.
    using: Option<KeyId>,
    /// That key is an issued one (kept, or issued in this run).
    using_issued: bool,
    /// A key issued in this run, for its reconnections.
    fresh: Option<Psk>,
}

impl KeyChoice {
    /// Applies the precedence to `opts` (its key may be replaced by the
    /// kept one); returns the state and what to tell the user (a kept file
    /// that cannot be used).
    pub(crate) fn start(opts: &mut ConnectOptions) -> (Self, Option<String>) {
        let store = opts.keys_dir.clone().or_else(key_store::default_dir).map(|dir| KeyStore::new(&dir, &opts.server));
        let mut choice = Self { store, ..Self::default() };
        let mut note = None;
        if opts.key_source != KeySource::Explicit
            && let Some(store) = &choice.store
        {
            match store.load() {
                Ok(Some(kept)) => {
                    let given = opts.key.id();
                    let applies =
                        opts.key_source == KeySource::Config || kept.via == Some(given) || kept.key.id() == given;
                    if applies {
                        opts.key = kept.key;
                        // The kept key, not a key file, from now on.
                        opts.key_file = None;
                        choice.using_issued = true;
                    }
                }
                Ok(None) => {}
                Err(e) => note = Some(format!("ignoring the kept server key: {e}")),
            }
        }
        choice.using = Some(opts.key.id());
        (choice, note)
    }

    /// The key issued in this run, if any (reconnections use it).
    pub(crate) fn fresh(&self) -> Option<&Psk> {
        self.fresh.as_ref()
    }

    /// Notes the key the next connection uses.
    pub(crate) fn set_using(&mut self, key: &Psk) {
        self.using = Some(key.id());
        if self.fresh.as_ref().is_some_and(|f| f.id() == key.id()) {
            self.using_issued = true;
        }
    }

    /// The server issued `key`: keeps it (issued while holding the key in
    /// use) and says so.
    pub(crate) fn issued(&mut self, key: &str) -> Event {
        let Ok(psk) = Psk::parse(key) else {
            return Event::Notice("the server issued a malformed key; ignored".into());
        };
        let id = key_id_hex(&psk.id());
        let stored = match &self.store {
            Some(store) => store.save(&psk, self.using).map(|()| store.path().to_owned()).map_err(|e| e.to_string()),
            None => Err("no data directory to keep it in".into()),
        };
        self.fresh = Some(psk);
        Event::KeyIssued { id, stored }
    }

    /// What a failed connection means given the key used: a wrong-key
    /// refusal of an issued key says so.
    pub(crate) fn refused(&self, reason: DisconnectReason) -> DisconnectReason {
        match reason {
            DisconnectReason::WrongKey if self.using_issued => {
                let file = self.store.as_ref().filter(|s| s.path().exists()).map(|s| s.path().to_owned());
                DisconnectReason::IssuedKeyRefused { file }
            }
            other => other,
        }
    }

    /// The key in use was revoked: removes the kept key if it is that key
    /// or was issued through it. Returns what to tell the user if the file
    /// cannot be removed.
    pub(crate) fn revoked(&mut self) -> Option<String> {
        let store = self.store.as_ref()?;
        let kept = store.load().ok().flatten()?;
        let concerned = self.using.is_some_and(|u| kept.key.id() == u || kept.via == Some(u));
        self.fresh = None;
        if !concerned {
            return None;
        }
        store.remove().err().map(|e| format!("cannot remove the revoked key: {e}"))
    }

    /// The kept key's file, for messages.
    #[cfg(test)]
    pub(crate) fn path(&self) -> Option<std::path::PathBuf> {
        self.store.as_ref().map(|s| s.path().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Psk {
        Psk::parse(&Psk::generate()).expect("a fresh key parses")
    }

    fn opts(dir: &std::path::Path, key: Psk, source: KeySource) -> ConnectOptions {
        let mut o = ConnectOptions::new("h:7878", "alice", key);
        o.keys_dir = Some(dir.to_owned());
        o.key_source = source;
        o
    }

    /// An invite used once gets a key issued; the next run with the same
    /// link uses the issued key (the invite may be used up by then).
    #[test]
    fn an_issued_key_replaces_the_invite_it_came_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let invite = key();
        let mut first = opts(dir.path(), invite.clone(), KeySource::Invite);
        let (mut choice, note) = KeyChoice::start(&mut first);
        assert_eq!((note, first.key.id()), (None, invite.id()), "nothing kept yet: the invite's key");
        let issued = key();
        let Event::KeyIssued { id, stored } = choice.issued(issued.expose_text()) else {
            panic!("a key issued event");
        };
        assert_eq!(id, key_id_hex(&issued.id()));
        assert_eq!(stored.as_deref().ok(), choice.path().as_deref());
        assert_eq!(choice.fresh().map(Psk::id), Some(issued.id()), "this run's reconnections use it");

        // Next run, same link: the issued key.
        let mut again = opts(dir.path(), invite.clone(), KeySource::Invite);
        let (choice, _) = KeyChoice::start(&mut again);
        assert_eq!(again.key.id(), issued.id());
        // Refused now: the reason names the file.
        match choice.refused(DisconnectReason::WrongKey) {
            DisconnectReason::IssuedKeyRefused { file } => assert_eq!(file, choice.path()),
            other => panic!("expected the issued key refused, got {other:?}"),
        }
        // A config key is replaced too; an explicit one is not.
        let mut cfg = opts(dir.path(), key(), KeySource::Config);
        let _ = KeyChoice::start(&mut cfg);
        assert_eq!(cfg.key.id(), issued.id());
        let named = key();
        let mut explicit = opts(dir.path(), named.clone(), KeySource::Explicit);
        let (choice, _) = KeyChoice::start(&mut explicit);
        assert_eq!(explicit.key.id(), named.id());
        assert_eq!(choice.refused(DisconnectReason::WrongKey), DisconnectReason::WrongKey);
        // Another invite link is the user's word: its key is used.
        let other = key();
        let mut new_link = opts(dir.path(), other.clone(), KeySource::Invite);
        let _ = KeyChoice::start(&mut new_link);
        assert_eq!(new_link.key.id(), other.id());
    }

    #[test]
    fn a_revoked_key_is_forgotten_and_another_servers_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let invite = key();
        let mut first = opts(dir.path(), invite.clone(), KeySource::Invite);
        let (mut choice, _) = KeyChoice::start(&mut first);
        let _ = choice.issued(key().expose_text());
        let path = choice.path().expect("a file");
        assert!(path.exists());
        // Revoked while connected with the invite it came through.
        assert_eq!(choice.revoked(), None);
        assert!(!path.exists(), "the revoked key is removed");

        // Revoked while using the kept key (next run).
        let mut run1 = opts(dir.path(), invite.clone(), KeySource::Invite);
        let (mut c1, _) = KeyChoice::start(&mut run1);
        let _ = c1.issued(key().expose_text());
        let mut run2 = opts(dir.path(), key(), KeySource::Config);
        let (mut c2, _) = KeyChoice::start(&mut run2);
        assert!(path.exists());
        assert_eq!(c2.revoked(), None);
        assert!(!path.exists());

        // An explicit key unrelated to the kept one being revoked leaves it.
        let mut run3 = opts(dir.path(), invite.clone(), KeySource::Invite);
        let (mut c3, _) = KeyChoice::start(&mut run3);
        let _ = c3.issued(key().expose_text());
        let mut unrelated = opts(dir.path(), key(), KeySource::Explicit);
        let (mut c4, _) = KeyChoice::start(&mut unrelated);
        assert_eq!(c4.revoked(), None);
        assert!(path.exists(), "not the revoked key's");
    }

    #[test]
    fn a_malformed_issued_key_is_ignored_and_a_damaged_file_noted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let given = key();
        let mut o = opts(dir.path(), given.clone(), KeySource::Config);
        let (mut choice, _) = KeyChoice::start(&mut o);
        assert!(matches!(choice.issued("nonsense"), Event::Notice(_)));
        assert!(choice.fresh().is_none());
        let path = choice.path().expect("a file");
        std::fs::write(&path, "key garbage\n").expect("write");
        let mut o = opts(dir.path(), given.clone(), KeySource::Config);
        let (_, note) = KeyChoice::start(&mut o);
        assert!(note.is_some_and(|n| n.contains(&path.display().to_string())));
        assert_eq!(o.key.id(), given.id(), "the given key, not a damaged one");
    }
}
