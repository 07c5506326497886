//! The keys a client may connect with (issue 17), sans-IO: the main key
//! (the key file), the previous main key during its grace after a rotation,
//! invites' keys, and keys issued to one client each.
//!
//! A client hello names its key by id ([`protocol::crypto::KeyId`]); the
//! session's handshake asks the ring for that one key ([`SharedKeyRing`] is
//! its [`KeyLookup`]): a used-up, expired or revoked key is not found, so it
//! is refused at the key check like a wrong key, before any RSA work.
//!
//! After a login through an invite (or with the previous main key) the
//! roster issues the client a key of its own, recorded with the invite it
//! came through: revoking an invite revokes its keys. Issued keys outlive
//! rotations of the main key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use protocol::crypto::{KeyId, Psk, key_id_hex};
use protocol::handshake::KeyLookup;

use crate::archive::KeyRecord;

/// What a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The key file's key.
    Main,
    /// The main key before the last rotation, during its grace.
    OldMain,
    /// An invite's key.
    Invite(u64),
    /// A key issued to one client (through this invite, if any).
    Issued {
        /// The key's number.
        id: u64,
        /// The invite it came through.
        invite: Option<u64>,
    },
}

/// An invite.
#[derive(Debug, Clone)]
pub struct Invite {
    /// Its number (`--revoke ID`).
    pub id: u64,
    /// Its key.
    pub key: Psk,
    /// The room its link lands in.
    pub room: Option<String>,
    /// Uses left (`None`: unlimited).
    pub uses_left: Option<u32>,
    /// Logins through it so far.
    pub uses: u32,
    /// When it stops working, Unix ms.
    pub expires_ms: Option<u64>,
    /// When it was made, Unix ms.
    pub created_ms: u64,
}

impl Invite {
    /// Whether it still lets someone in at `now_ms`.
    pub fn live(&self, now_ms: u64) -> bool {
        self.uses_left != Some(0) && self.expires_ms.is_none_or(|e| now_ms < e)
    }

    /// Its stored form.
    pub fn record(&self) -> KeyRecord {
        KeyRecord {
            id: self.id,
            kind: "invite".into(),
            secret: self.key.expose_text().to_owned(),
            invite: None,
            name: String::new(),
            room: self.room.clone(),
            uses_left: self.uses_left,
            uses: self.uses,
            expires_ms: self.expires_ms,
            created_ms: self.created_ms,
        }
    }
}

/// A key issued to one client.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Its number (`keys --revoke-key ID`).
    pub id: u64,
    /// The key.
    pub key: Psk,
    /// The invite it came through (`None`: a rotation's previous main key).
    pub invite: Option<u64>,
    /// Who it was issued to (the name at that login).
    pub name: String,
    /// When, Unix ms.
    pub created_ms: u64,
}

impl Issued {
    /// Its stored form.
    pub fn record(&self) -> KeyRecord {
        KeyRecord {
            id: self.id,
            kind: "issued".into(),
            secret: self.key.expose_text().to_owned(),
            invite: self.invite,
            name: self.name.clone(),
            room: None,
            uses_left: None,
            uses: 0,
            expires_ms: None,
            created_ms: self.created_ms,
        }
    }
}

/// Every key a client may connect with.
#[derive(Debug)]
pub struct KeyRing {
    main: Psk,
    old_main: Option<(Psk, u64)>,
    invites: BTreeMap<u64, Invite>,
    issued: BTreeMap<u64, Issued>,
    by_id: HashMap<KeyId, KeyKind>,
    next: u64,
}

/// The id [`KeyRecord::id`] of the stored previous main key.
pub const OLD_MAIN_RECORD: u64 = 0;

impl KeyRing {
    /// A ring holding the main key only.
    pub fn new(main: Psk) -> Self {
        let mut by_id = HashMap::new();
        by_id.insert(main.id(), KeyKind::Main);
        Self { main, old_main: None, invites: BTreeMap::new(), issued: BTreeMap::new(), by_id, next: 1 }
    }

    /// Adds what the store holds (records this server does not understand,
    /// or whose secret does not parse, are skipped).
    pub fn load(&mut self, records: Vec<KeyRecord>) {
        for r in records {
            self.next = self.next.max(r.id.saturating_add(1));
            let Ok(key) = Psk::parse(&r.secret) else { continue };
            match r.kind.as_str() {
                "old_main" => {
                    if let Some(until) = r.expires_ms {
                        self.by_id.insert(key.id(), KeyKind::OldMain);
                        self.old_main = Some((key, until));
                    }
                }
                "invite" => {
                    self.by_id.insert(key.id(), KeyKind::Invite(r.id));
                    let invite = Invite {
                        id: r.id,
                        key,
                        room: r.room,
                        uses_left: r.uses_left,
                        uses: r.uses,
                        expires_ms: r.expires_ms,
                        created_ms: r.created_ms,
                    };
                    self.invites.insert(r.id, invite);
                }
                "issued" => {
                    self.by_id.insert(key.id(), KeyKind::Issued { id: r.id, invite: r.invite });
                    let issued = Issued { id: r.id, key, invite: r.invite, name: r.name, created_ms: r.created_ms };
                    self.issued.insert(r.id, issued);
                }
                _ => {}
            }
        }
        // The main key is the key file's, whatever the store says.
        self.by_id.insert(self.main.id(), KeyKind::Main);
    }

    /// The live key named `id` at `now_ms`, and what it is.
    pub fn find(&self, id: &KeyId, now_ms: u64) -> Option<(Psk, KeyKind)> {
        let kind = *self.by_id.get(id)?;
        let key = match kind {
            KeyKind::Main => self.main.clone(),
            KeyKind::OldMain => match &self.old_main {
                Some((k, until)) if now_ms < *until => k.clone(),
                _ => return None,
            },
            KeyKind::Invite(n) => self.invites.get(&n).filter(|i| i.live(now_ms))?.key.clone(),
            KeyKind::Issued { id, .. } => self.issued.get(&id)?.key.clone(),
        };
        Some((key, kind))
    }

    /// What key `id` is (live or not).
    pub fn kind(&self, id: &KeyId) -> Option<KeyKind> {
        self.by_id.get(id).copied()
    }

    /// A new number for an invite or an issued key.
    fn number(&mut self) -> u64 {
        let n = self.next.max(1);
        self.next = n + 1;
        n
    }

    /// Makes an invite.
    pub fn invite(&mut self, room: Option<String>, uses: Option<u32>, expires_ms: Option<u64>, now_ms: u64) -> Invite {
        let key = fresh_key();
        let invite = Invite { id: self.number(), key, room, uses_left: uses, uses: 0, expires_ms, created_ms: now_ms };
        self.by_id.insert(invite.key.id(), KeyKind::Invite(invite.id));
        self.invites.insert(invite.id, invite.clone());
        invite
    }

    /// Spends one use of invite `n` (a login through it); `None` when it
    /// has none left (or is gone, or expired).
    pub fn spend(&mut self, n: u64, now_ms: u64) -> Option<Invite> {
        let invite = self.invites.get_mut(&n).filter(|i| i.live(now_ms))?;
        invite.uses += 1;
        if let Some(left) = &mut invite.uses_left {
            *left -= 1;
        }
        Some(invite.clone())
    }

    /// Issues a key to `name`, through invite `invite`. One key per name and
    /// source: an earlier one for the same name through the same invite (a
    /// client that lost its key file) is replaced, its number returned to be
    /// removed from the store.
    pub fn issue(&mut self, name: &str, invite: Option<u64>, now_ms: u64) -> (Issued, Option<u64>) {
        let same = protocol::message::name_keys(name);
        let replaced = self
            .issued
            .values()
            .find(|k| k.invite == invite && protocol::message::name_keys(&k.name).collides(&same))
            .map(|k| k.id);
        if let Some(old) = replaced {
            self.revoke_issued(old);
        }
        let issued = Issued { id: self.number(), key: fresh_key(), invite, name: name.to_owned(), created_ms: now_ms };
        self.by_id.insert(issued.key.id(), KeyKind::Issued { id: issued.id, invite });
        self.issued.insert(issued.id, issued.clone());
        (issued, replaced)
    }

    /// Ends invite `n` and every key issued through it; returns the ids of
    /// all the keys that stopped working and the issued keys' numbers.
    pub fn revoke_invite(&mut self, n: u64) -> Option<(Vec<KeyId>, Vec<u64>)> {
        let invite = self.invites.remove(&n)?;
        self.by_id.remove(&invite.key.id());
        let mut ids = vec![invite.key.id()];
        let through: Vec<u64> = self.issued.values().filter(|k| k.invite == Some(n)).map(|k| k.id).collect();
        for k in &through {
            if let Some(issued) = self.issued.remove(k) {
                self.by_id.remove(&issued.key.id());
                ids.push(issued.key.id());
            }
        }
        Some((ids, through))
    }

    /// Ends issued key `n`; returns its id.
    pub fn revoke_issued(&mut self, n: u64) -> Option<KeyId> {
        let issued = self.issued.remove(&n)?;
        self.by_id.remove(&issued.key.id());
        Some(issued.key.id())
    }

    /// The stored form of the main key as the previous main key, working
    /// until `until_ms` (what [`KeyRing::rotate`] will keep).
    pub fn old_main_record(&self, until_ms: u64) -> KeyRecord {
        KeyRecord {
            id: OLD_MAIN_RECORD,
            kind: "old_main".into(),
            secret: self.main.expose_text().to_owned(),
            invite: None,
            name: String::new(),
            room: None,
            uses_left: None,
            uses: 0,
            expires_ms: Some(until_ms),
            created_ms: 0,
        }
    }

    /// Makes `new` the main key; the old one keeps working until
    /// `grace_until_ms` (`None`: not at all). Returns the ids of the keys
    /// that stopped working (the previous old key; with no grace, the old
    /// main key too).
    pub fn rotate(&mut self, new: Psk, grace_until_ms: Option<u64>) -> Vec<KeyId> {
        let old = std::mem::replace(&mut self.main, new);
        let mut ended = Vec::new();
        if let Some((previous, _)) = self.old_main.take() {
            self.by_id.remove(&previous.id());
            ended.push(previous.id());
        }
        self.by_id.remove(&old.id());
        self.by_id.insert(self.main.id(), KeyKind::Main);
        match grace_until_ms {
            Some(until) => {
                self.by_id.insert(old.id(), KeyKind::OldMain);
                self.old_main = Some((old, until));
            }
            None => ended.push(old.id()),
        }
        ended
    }

    /// Forgets the previous main key once its grace is over; whether it did
    /// (its stored record is then to be removed).
    pub fn end_grace(&mut self, now_ms: u64) -> bool {
        match &self.old_main {
            Some((old, until)) if now_ms >= *until => {
                self.by_id.remove(&old.id());
                self.old_main = None;
                true
            }
            _ => false,
        }
    }

    /// Replaces the main key without grace (SIGHUP after `gen-key`: the
    /// operator's choice, as before).
    pub fn set_main(&mut self, new: Psk) {
        self.by_id.remove(&self.main.id());
        self.main = new;
        self.by_id.insert(self.main.id(), KeyKind::Main);
    }

    /// The main key.
    pub fn main(&self) -> &Psk {
        &self.main
    }

    /// The previous main key's end, if it still works.
    pub fn old_main_until(&self, now_ms: u64) -> Option<u64> {
        self.old_main.as_ref().map(|(_, u)| *u).filter(|u| now_ms < *u)
    }

    /// Every invite, newest first.
    pub fn invites(&self) -> impl Iterator<Item = &Invite> {
        self.invites.values().rev()
    }

    /// Every issued key, newest first.
    pub fn issued(&self) -> impl Iterator<Item = &Issued> {
        self.issued.values().rev()
    }

    /// How many keys are live: the main key, invites, issued keys.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Never: the main key is always there.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A fresh random key.
fn fresh_key() -> Psk {
    // A generated key always parses; a failure would be a bug in `generate`.
    match Psk::parse(&Psk::generate()) {
        Ok(k) => k,
        Err(_) => unreachable!("generated keys parse"),
    }
}

/// The ring, shared by the sessions (reading, at every key check) and the
/// roster (changing it).
#[derive(Debug, Clone)]
pub struct SharedKeyRing(pub Arc<RwLock<KeyRing>>);

impl SharedKeyRing {
    /// Shares `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self(Arc::new(RwLock::new(ring)))
    }

    /// Reads it (a poisoned lock is as good: nothing panics under it).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes it.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeyRing> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl KeyLookup for SharedKeyRing {
    fn lookup(&self, id: &KeyId) -> Option<Psk> {
        self.read().find(id, crate::roster::now_ms()).map(|(k, _)| k)
    }
}

/// A key's text form carried between actors: serialised as the plain
/// string, never shown by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "SecretText(empty)" } else { "SecretText(..)" })
    }
}

/// A key id as people see it.
pub fn show(id: &KeyId) -> String {
    key_id_hex(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Psk {
        fresh_key()
    }

    #[test]
    fn invites_are_spent_expire_and_take_their_keys_with_them() {
        let main = key();
        let mut ring = KeyRing::new(main.clone());
        assert_eq!(ring.find(&main.id(), 0).map(|(_, k)| k), Some(KeyKind::Main));
        let once = ring.invite(Some("dev".into()), Some(1), None, 0);
        let timed = ring.invite(None, None, Some(1000), 0);
        assert!(ring.find(&once.key.id(), 0).is_some());
        assert!(ring.spend(once.id, 0).is_some());
        assert!(ring.find(&once.key.id(), 0).is_none(), "used up: not found at the key check");
        assert!(ring.spend(once.id, 0).is_none());
        assert!(ring.find(&timed.key.id(), 999).is_some() && ring.find(&timed.key.id(), 1000).is_none());
        let (mine, _) = ring.issue("alice", Some(once.id), 0);
        let (other, _) = ring.issue("bob", Some(timed.id), 0);
        // The same name through the same invite again: the older key goes.
        let (again, replaced) = ring.issue("BOB", Some(timed.id), 0);
        assert_eq!(replaced, Some(other.id));
        assert!(ring.find(&other.key.id(), 0).is_none());
        let other = again;
        assert!(ring.find(&mine.key.id(), u64::MAX - 1).is_some(), "issued keys do not expire with their invite");
        let (ids, numbers) = ring.revoke_invite(once.id).expect("revoked");
        assert_eq!(numbers, vec![mine.id]);
        assert!(ids.contains(&mine.key.id()) && ids.contains(&once.key.id()));
        assert!(ring.find(&mine.key.id(), 0).is_none());
        assert!(ring.find(&other.key.id(), 0).is_some(), "another invite's keys stay");
        assert_eq!(ring.revoke_issued(other.id), Some(other.key.id()));
        assert!(ring.find(&other.key.id(), 0).is_none());
    }

    #[test]
    fn a_rotation_keeps_the_old_main_key_for_its_grace_and_issued_keys_for_good() {
        let (old, new) = (key(), key());
        let mut ring = KeyRing::new(old.clone());
        let (issued, _) = ring.issue("carol", None, 0);
        assert_eq!(ring.old_main_record(5000).kind, "old_main");
        assert!(ring.rotate(new.clone(), Some(5000)).is_empty());
        assert_eq!(ring.find(&old.id(), 4999).map(|(_, k)| k), Some(KeyKind::OldMain));
        assert!(ring.find(&old.id(), 5000).is_none(), "grace over");
        assert_eq!(ring.find(&new.id(), 0).map(|(_, k)| k), Some(KeyKind::Main));
        assert!(ring.find(&issued.key.id(), 0).is_some(), "issued keys are untouched");
        // --now: no grace.
        let newer = key();
        assert_eq!(ring.rotate(newer.clone(), None), vec![old.id(), new.id()], "both ended");
        assert!(ring.find(&new.id(), 0).is_none() && ring.find(&old.id(), 0).is_none());
        // Loaded back from records, the same.
        let mut records: Vec<KeyRecord> = ring.invites().map(Invite::record).collect();
        records.extend(ring.issued().map(Issued::record));
        let mut back = KeyRing::new(newer.clone());
        back.load(records);
        assert!(back.find(&issued.key.id(), 0).is_some());
        assert!(back.issue("dave", None, 0).0.id > issued.id, "numbers continue");
    }
}
