//! Accounts, roles and sanctions (issue 16), sans-IO: what the roster
//! consults at every login and moderation request, held in memory and
//! written through to the store ([`crate::archive`]).
//!
//! - [`Accounts`]: registered names (argon2id PHC strings, never the
//!   password), one-time reset codes, admins and moderators.
//! - [`sanctions`]: bans (of a name or an address range) and mutes, with
//!   their ends.
//! - [`hasher`]: argon2id on a small pool of threads.
//!
//! An account is found by any name that counts as the same
//! ([`protocol::message::name_keys`]): `Alice` and `ALICE` are one account.

pub mod hasher;
pub mod sanctions;

use std::collections::{BTreeSet, HashMap};

use protocol::message::{NameKeys, name_key, name_keys};
use protocol::moderation::{Role, RoleGrant};

use crate::archive::{AccountField, AccountRecord, ModeratorRecord};

/// One registered name.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// The name as registered.
    pub name: String,
    /// Its look-alike keys.
    pub keys: NameKeys,
    /// The password's PHC string; `None` after a reset until the owner sets
    /// a new one.
    pub phc: Option<String>,
    /// A one-time reset code's PHC string and when it stops working (Unix ms).
    pub reset: Option<(String, u64)>,
    /// Granted on the server's machine (`server admin grant`).
    pub admin: bool,
    /// When it was registered, Unix ms.
    pub created_ms: u64,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("name", &self.name).field("admin", &self.admin).finish_non_exhaustive()
    }
}

impl Account {
    /// A new account for `name`.
    pub fn new(name: &str, phc: String, created_ms: u64) -> Self {
        Self { name: name.to_owned(), keys: name_keys(name), phc: Some(phc), reset: None, admin: false, created_ms }
    }

    /// The account's key in the store and in the maps here.
    pub fn key(&self) -> &str {
        &self.keys.caseless
    }

    /// Its stored form.
    pub fn record(&self) -> AccountRecord {
        AccountRecord {
            key: self.keys.caseless.clone(),
            name: self.name.clone(),
            phc: self.phc.clone(),
            reset_phc: self.reset.as_ref().map(|(p, _)| p.clone()),
            reset_until_ms: self.reset.as_ref().map(|(_, u)| *u),
            admin: self.admin,
            created_ms: self.created_ms,
        }
    }

    /// Back from its stored form.
    pub fn from_record(r: AccountRecord) -> Self {
        let reset = r.reset_phc.zip(r.reset_until_ms);
        Self { keys: name_keys(&r.name), name: r.name, phc: r.phc, reset, admin: r.admin, created_ms: r.created_ms }
    }
}

/// A room's key for roles and invites ([`name_key`] of its name).
pub fn room_key(room: &str) -> String {
    name_key(room)
}

/// Every account and role.
#[derive(Debug, Default)]
pub struct Accounts {
    /// By caseless key.
    by_key: HashMap<String, Account>,
    /// Visual key → caseless key.
    by_visual: HashMap<String, String>,
    /// Account key → rooms it moderates (room keys; `""`: server-wide).
    moderators: HashMap<String, BTreeSet<String>>,
}

impl Accounts {
    /// The accounts and roles found in the store.
    pub fn load(accounts: Vec<AccountRecord>, moderators: Vec<ModeratorRecord>) -> Self {
        let mut me = Self::default();
        for r in accounts {
            me.insert(Account::from_record(r));
        }
        for m in moderators {
            if me.by_key.contains_key(&m.account) {
                me.moderators.entry(m.account).or_default().insert(m.room);
            }
        }
        me
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The account a name counts as (either look-alike key).
    pub fn find(&self, keys: &NameKeys) -> Option<&Account> {
        self.by_key.get(&keys.caseless).or_else(|| self.by_visual.get(&keys.visual).and_then(|k| self.by_key.get(k)))
    }

    /// [`Accounts::find`] by name.
    pub fn find_name(&self, name: &str) -> Option<&Account> {
        self.find(&name_keys(name))
    }

    /// The account under `key`.
    pub fn get(&self, key: &str) -> Option<&Account> {
        self.by_key.get(key)
    }

    /// The account under `key`, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Account> {
        self.by_key.get_mut(key)
    }

    /// Adds (or replaces) an account.
    pub fn insert(&mut self, a: Account) {
        self.by_visual.insert(a.keys.visual.clone(), a.keys.caseless.clone());
        self.by_key.insert(a.keys.caseless.clone(), a);
    }

    /// Applies a stored change to account `key`; whether it is there.
    pub fn apply(&mut self, key: &str, field: &AccountField) -> bool {
        let Some(a) = self.by_key.get_mut(key) else { return false };
        match field {
            AccountField::Password(phc) => {
                a.phc = Some(phc.clone());
                a.reset = None;
            }
            AccountField::Reset { phc, until_ms } => {
                a.phc = None;
                a.reset = Some((phc.clone(), *until_ms));
            }
            AccountField::ResetSpent => a.reset = None,
            AccountField::Admin(v) => a.admin = *v,
        }
        true
    }

    /// Removes an account and its roles.
    pub fn remove(&mut self, key: &str) -> Option<Account> {
        let a = self.by_key.remove(key)?;
        if self.by_visual.get(&a.keys.visual).is_some_and(|k| k == key) {
            self.by_visual.remove(&a.keys.visual);
        }
        self.moderators.remove(key);
        Some(a)
    }

    /// Every account, by key.
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.by_key.values()
    }

    /// Whether account `key` is an admin.
    pub fn is_admin(&self, key: &str) -> bool {
        self.by_key.get(key).is_some_and(|a| a.admin)
    }

    /// Whether account `key` moderates the whole server (admins do).
    pub fn is_server_moderator(&self, key: &str) -> bool {
        self.is_admin(key) || self.moderators.get(key).is_some_and(|rooms| rooms.contains(""))
    }

    /// Whether account `key` moderates room `room` (server moderators and
    /// admins moderate every room).
    pub fn moderates(&self, key: &str, room: &str) -> bool {
        self.is_server_moderator(key) || self.moderators.get(key).is_some_and(|rooms| rooms.contains(&room_key(room)))
    }

    /// Whether account `key` moderates anything at all.
    pub fn is_any_moderator(&self, key: &str) -> bool {
        self.is_admin(key) || self.moderators.get(key).is_some_and(|r| !r.is_empty())
    }

    /// The room keys account `key` moderates (`""`: server-wide).
    pub fn moderated_rooms(&self, key: &str) -> Vec<String> {
        self.moderators.get(key).map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }

    /// Makes account `key` a moderator of `room` (a room key; `""`: the
    /// server). Returns whether it changed anything.
    pub fn grant_moderator(&mut self, key: &str, room: &str) -> bool {
        self.by_key.contains_key(key) && self.moderators.entry(key.to_owned()).or_default().insert(room.to_owned())
    }

    /// Takes that role back. Returns whether it was held.
    pub fn revoke_moderator(&mut self, key: &str, room: &str) -> bool {
        let Some(rooms) = self.moderators.get_mut(key) else { return false };
        let had = rooms.remove(room);
        if rooms.is_empty() {
            self.moderators.remove(key);
        }
        had
    }

    /// The roles of account `key`, as the welcome lists them (moderated
    /// rooms by their key).
    pub fn roles(&self, key: &str) -> Vec<RoleGrant> {
        let mut roles = Vec::new();
        if self.is_admin(key) {
            roles.push(RoleGrant { role: Role::Admin, room: None });
        }
        for room in self.moderators.get(key).into_iter().flatten() {
            let room = (!room.is_empty()).then(|| room.clone());
            roles.push(RoleGrant { role: Role::Moderator, room });
        }
        roles
    }
}

/// A Unix time in ms as people read it in a message: `2026-12-08 14:05 UTC`.
pub fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times_read_right() {
        assert_eq!(super::format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::format_utc(1_796_738_700_000), "2026-12-08 14:05 UTC");
        assert_eq!(super::format_utc(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    use super::*;

    fn account(name: &str) -> Account {
        Account::new(name, "$argon2id$x".into(), 1)
    }

    #[test]
    fn an_account_is_found_by_any_name_that_counts_as_the_same() {
        let mut a = Accounts::default();
        a.insert(account("Alice"));
        for same in ["alice", "ALICE", "AIice", "Alice"] {
            assert_eq!(a.find_name(same).map(|a| a.name.as_str()), Some("Alice"), "{same}");
        }
        assert!(a.find_name("bob").is_none());
        let key = a.find_name("alice").map(|a| a.key().to_owned()).unwrap_or_default();
        assert!(a.remove(&key).is_some());
        assert!(a.find_name("AIice").is_none());
    }

    #[test]
    fn roles_reach_where_they_are_granted() {
        let mut a = Accounts::default();
        for n in ["ann", "mo", "root"] {
            a.insert(account(n));
        }
        let key = |n: &str| name_keys(n).caseless;
        let (ann, mo, root) = (&key("ann"), &key("mo"), &key("root"));
        assert!(a.grant_moderator(mo, &room_key("Dev")));
        assert!(!a.grant_moderator("nobody", ""), "only accounts get roles");
        if let Some(r) = a.get_mut(root) {
            r.admin = true;
        }
        assert!(a.moderates(mo, "dev") && !a.moderates(mo, "general") && !a.is_server_moderator(mo));
        assert!(a.moderates(root, "general") && a.is_server_moderator(root));
        assert!(!a.moderates(ann, "dev") && !a.is_any_moderator(ann));
        assert_eq!(a.roles(mo), vec![RoleGrant { role: Role::Moderator, room: Some(room_key("dev")) }]);
        assert!(a.grant_moderator(ann, ""));
        assert!(a.moderates(ann, "anything"));
        assert!(a.revoke_moderator(ann, "") && !a.revoke_moderator(ann, ""));
        assert!(!a.is_any_moderator(ann));
    }
}
