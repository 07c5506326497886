//! An archive in memory: for tests and benchmarks of everything around the
//! store (nothing survives the process). Completions run on the caller's
//! thread, at once; a switch makes every write fail, as a full disk would.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use protocol::moderation::AuditEntry;

use super::{
    AccountRecord, Archive, AuditQuery, Completion, DirectPage, DirectQuery, HistoryQuery, InviteRecord, KeyRecord,
    ModeratorRecord, Page, RoomRecord, SanctionRecord, Standing, StoreError, StoredDirect, StoredMessage, Write,
    WriteOutcome,
};

/// Messages and rooms in memory.
#[derive(Debug, Default)]
pub struct MemoryArchive {
    state: Mutex<State>,
    failing: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    messages: BTreeMap<u64, StoredMessage>,
    rooms: BTreeMap<String, RoomRecord>,
    direct: BTreeMap<u64, StoredDirect>,
    accounts: BTreeMap<String, AccountRecord>,
    moderators: BTreeMap<(String, String), ModeratorRecord>,
    sanctions: BTreeMap<u64, SanctionRecord>,
    invites: BTreeMap<(String, String), InviteRecord>,
    audit: Vec<AuditEntry>,
    keys: BTreeMap<(String, u64), KeyRecord>,
}

impl MemoryArchive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on every write fails (`true`) or works again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn apply(&self, w: Write) -> Result<WriteOutcome, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("writes are failing (test switch)".into()));
        }
        let mut s = self.state.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
        Ok(match w {
            Write::Append(m) => {
                s.messages.insert(m.id, m);
                WriteOutcome::Done
            }
            Write::Edit { id, sender, text } if !s.messages.contains_key(&id) => match s.direct.get_mut(&id) {
                None => WriteOutcome::NotFound,
                Some(d) if d.sender != sender => WriteOutcome::NotYours,
                Some(d) => {
                    d.text = text;
                    d.edited = true;
                    WriteOutcome::ChangedDirect
                }
            },
            Write::Delete { id, sender } if !s.messages.contains_key(&id) => match s.direct.get(&id) {
                None => WriteOutcome::NotFound,
                Some(d) if d.sender != sender => WriteOutcome::NotYours,
                Some(_) => {
                    s.direct.remove(&id);
                    WriteOutcome::ChangedDirect
                }
            },
            Write::Edit { id, sender, text } => match s.messages.get_mut(&id) {
                None => WriteOutcome::NotFound,
                Some(m) if m.sender != sender => WriteOutcome::NotYours,
                Some(m) => {
                    m.text = text;
                    m.edited = true;
                    WriteOutcome::Changed { room: m.room.clone() }
                }
            },
            Write::Delete { id, sender } => match s.messages.get(&id) {
                None => WriteOutcome::NotFound,
                Some(m) if m.sender != sender => WriteOutcome::NotYours,
                Some(m) => {
                    let room = m.room.clone();
                    s.messages.remove(&id);
                    WriteOutcome::Changed { room }
                }
            },
            Write::UpsertRoom(r) => {
                s.rooms.insert(r.name.clone(), r);
                WriteOutcome::Done
            }
            Write::RemoveRoom { name } => {
                s.rooms.remove(&name);
                s.messages.retain(|_, m| m.room != name);
                WriteOutcome::Done
            }
            Write::Prune { room, before_ms } => {
                let before = s.messages.len();
                s.messages.retain(|_, m| m.room != room || m.ts_ms >= before_ms);
                WriteOutcome::Pruned((before - s.messages.len()) as u64)
            }
            Write::AppendDirect(d) => {
                s.direct.insert(d.id, d);
                WriteOutcome::Done
            }
            Write::PutAccount(a) => {
                s.accounts.insert(a.key.clone(), a);
                WriteOutcome::Done
            }
            Write::UpdateAccount { key, field } => match s.accounts.get_mut(&key) {
                None => WriteOutcome::NotFound,
                Some(a) => {
                    match field {
                        super::AccountField::Password(phc) => {
                            a.phc = Some(phc);
                            (a.reset_phc, a.reset_until_ms) = (None, None);
                        }
                        super::AccountField::Reset { phc, until_ms } => {
                            a.phc = None;
                            (a.reset_phc, a.reset_until_ms) = (Some(phc), Some(until_ms));
                        }
                        super::AccountField::ResetSpent => (a.reset_phc, a.reset_until_ms) = (None, None),
                        super::AccountField::Admin(v) => a.admin = v,
                    }
                    WriteOutcome::Done
                }
            },
            Write::RemoveAccount { key } => {
                s.direct.retain(|_, d| d.a != key && d.b != key);
                s.moderators.retain(|(a, _), _| *a != key);
                found(s.accounts.remove(&key).is_some())
            }
            Write::PutModerator(m) => {
                s.moderators.insert((m.account.clone(), m.room.clone()), m);
                WriteOutcome::Done
            }
            Write::RemoveModerator { account, room } => found(s.moderators.remove(&(account, room)).is_some()),
            Write::PutSanction(r) => {
                s.sanctions.insert(r.id, r);
                WriteOutcome::Done
            }
            Write::RemoveSanction { id } => found(s.sanctions.remove(&id).is_some()),
            Write::PutInvite(i) => {
                s.invites.insert((i.room.clone(), i.key.clone()), i);
                WriteOutcome::Done
            }
            Write::RemoveInvite { room, key } => found(s.invites.remove(&(room, key)).is_some()),
            Write::PutKey(k) => {
                s.keys.insert((k.kind.clone(), k.id), k);
                WriteOutcome::Done
            }
            Write::RemoveKey { kind, id } => {
                if kind == "invite" {
                    s.keys.retain(|_, k| !(k.kind == "issued" && k.invite == Some(id)));
                }
                found(s.keys.remove(&(kind, id)).is_some())
            }
            Write::Audit(mut e) => {
                e.id = s.audit.len() as u64 + 1;
                s.audit.push(e);
                WriteOutcome::Done
            }
        })
    }
}

/// `Done` when something was there, else `NotFound`.
fn found(was: bool) -> WriteOutcome {
    if was { WriteOutcome::Done } else { WriteOutcome::NotFound }
}

impl Archive for MemoryArchive {
    fn write(&self, w: Write, done: Completion<Result<WriteOutcome, StoreError>>) {
        done(self.apply(w));
    }

    fn history(&self, q: HistoryQuery, done: Completion<Result<Page, StoreError>>) {
        let Ok(s) = self.state.lock() else {
            return done(Err(StoreError::Unavailable("poisoned".into())));
        };
        let in_room = s.messages.values().filter(|m| m.room == q.room);
        let limit = q.limit as usize;
        let page = if let Some(after) = q.after {
            let mut newer: Vec<StoredMessage> = in_room.filter(|m| m.id > after).cloned().collect();
            let more = newer.len() > limit;
            newer.truncate(limit);
            Page { messages: newer, more }
        } else {
            let before = q.before.unwrap_or(u64::MAX);
            let older: Vec<StoredMessage> = in_room.filter(|m| m.id < before).cloned().collect();
            let more = older.len() > limit;
            Page { messages: older[older.len().saturating_sub(limit)..].to_vec(), more }
        };
        drop(s);
        done(Ok(page));
    }

    fn rooms(&self) -> Result<Vec<RoomRecord>, StoreError> {
        let s = self.state.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
        Ok(s.rooms.values().cloned().collect())
    }

    fn max_id(&self) -> Result<u64, StoreError> {
        let s = self.state.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
        let rooms = s.messages.keys().next_back().copied().unwrap_or(0);
        Ok(rooms.max(s.direct.keys().next_back().copied().unwrap_or(0)))
    }

    fn standing(&self) -> Result<Standing, StoreError> {
        let s = self.state.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
        Ok(Standing {
            accounts: s.accounts.values().cloned().collect(),
            moderators: s.moderators.values().cloned().collect(),
            sanctions: s.sanctions.values().cloned().collect(),
            invites: s.invites.values().cloned().collect(),
            keys: s.keys.values().cloned().collect(),
        })
    }

    fn direct_history(&self, q: DirectQuery, done: Completion<Result<DirectPage, StoreError>>) {
        let Ok(s) = self.state.lock() else {
            return done(Err(StoreError::Unavailable("poisoned".into())));
        };
        let (a, b) = if q.a <= q.b { (q.a, q.b) } else { (q.b, q.a) };
        let pair: Vec<StoredDirect> = s
            .direct
            .values()
            .filter(|d| {
                let (x, y) = if d.a <= d.b { (&d.a, &d.b) } else { (&d.b, &d.a) };
                *x == a && *y == b
            })
            .filter(|d| q.after.is_none_or(|v| d.id > v) && q.before.is_none_or(|v| d.id < v))
            .cloned()
            .collect();
        drop(s);
        let limit = q.limit as usize;
        let more = pair.len() > limit;
        let messages = if q.after.is_some() {
            pair.into_iter().take(limit).collect()
        } else {
            pair[pair.len().saturating_sub(limit)..].to_vec()
        };
        done(Ok(DirectPage { messages, more }));
    }

    fn audit(&self, q: AuditQuery, done: Completion<Result<(Vec<AuditEntry>, bool), StoreError>>) {
        let Ok(s) = self.state.lock() else {
            return done(Err(StoreError::Unavailable("poisoned".into())));
        };
        let mut entries: Vec<AuditEntry> = s
            .audit
            .iter()
            .rev()
            .filter(|e| q.before.is_none_or(|b| e.id < b))
            .filter(|e| q.rooms.as_ref().is_none_or(|rooms| e.room.as_ref().is_some_and(|r| rooms.contains(r))))
            .take(q.limit as usize + 1)
            .cloned()
            .collect();
        drop(s);
        let more = entries.len() > q.limit as usize;
        entries.truncate(q.limit as usize);
        done(Ok((entries, more)));
    }
}
