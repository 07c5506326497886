//! An archive in memory: for tests and benchmarks of everything around the
//! store (nothing survives the process). Completions run on the caller's
//! thread, at once; a switch makes every write fail, as a full disk would.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Archive, Completion, HistoryQuery, Page, RoomRecord, StoreError, StoredMessage, Write, WriteOutcome};

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
        })
    }
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
        Ok(s.messages.keys().next_back().copied().unwrap_or(0))
    }
}
