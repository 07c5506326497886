//! Chat in the roster: messages to rooms and to users, edits and deletes,
//! and what the store answers about them. A message to a room with history
//! is stored before anyone gets it or its sender gets the `ack`.

use actix::prelude::*;
use protocol::message::{NackReason, ServerMessage, name_keys};
use slog::debug;

use super::{Place, RECENT_CAP, Recent, Roster};
use crate::archive::{StoreError, StoredDirect, StoredMessage, Write, WriteOutcome};
use crate::messages::{Amend, Broadcast, SessionId, SharedLedger, ToSession};
use crate::rooms::RoomId;

/// How long a client waits before resending what the store could not take.
const STORE_RETRY_MS: u64 = 1000;

/// What a write to the store was for.
#[derive(Debug)]
enum Pending {
    /// A chat message to a room, delivered once stored.
    Chat { recent: Recent, ledger: SharedLedger, client_id: u64, room: RoomId, id: u64, out: ServerMessage },
    /// A private message between two accounts, delivered once stored.
    Direct { recent: Recent, ledger: SharedLedger, client_id: u64, to: SessionId, id: u64, out: ServerMessage },
    /// An edit (`text`) or delete of message `target`.
    Amend { sender: String, ledger: SharedLedger, client_id: u64, target: u64, text: Option<String> },
}

/// The store → roster: a write is durable, or failed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stored {
    what: Pending,
    result: Result<WriteOutcome, StoreError>,
    /// When the write was queued (the store's latency, for the metrics).
    since: std::time::Instant,
}

/// How a chat id turned out, for [`Roster::answer`].
enum Answer {
    /// Taken, with this server id.
    Taken(u64),
    /// Refused for good.
    Refused(NackReason, String),
    /// Not stored: resend later.
    Unstored,
}

impl Roster {
    /// The next server message id.
    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Remembers where message `id` went and who wrote it, for its edits
    /// and deletes.
    fn remember(&mut self, id: u64, recent: Recent) {
        self.recent.insert(id, recent);
        self.recent_order.push_back(id);
        while self.recent_order.len() > RECENT_CAP {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    /// Settles chat id `client_id` in `ledger` (or leaves it open to be
    /// resent) and answers the session now holding that ledger.
    fn answer(&self, ledger: &SharedLedger, client_id: u64, answer: Answer) {
        let settled = match answer {
            Answer::Unstored => {
                if let Ok(mut l) = ledger.lock() {
                    l.abandon(client_id);
                }
                true
            }
            _ => ledger.lock().map(|mut l| l.settle(client_id).is_ok()).unwrap_or(false),
        };
        let Some(sid) = self.holder_of(ledger) else { return };
        if !settled {
            if let Some(m) = self.members.get(&sid) {
                let detail = "too many message ids skipped";
                m.mailbox.do_send(ToSession::Kick(protocol::message::DisconnectCause::ProtocolViolation, detail));
            }
            return;
        }
        let msg = match answer {
            Answer::Taken(server_id) => ServerMessage::Ack { id: client_id, server_id: Some(server_id) },
            Answer::Refused(reason, detail) => {
                ServerMessage::Nack { id: client_id, reason, retry_after_ms: None, detail }
            }
            Answer::Unstored => ServerMessage::Nack {
                id: client_id,
                reason: NackReason::StorageUnavailable,
                retry_after_ms: Some(STORE_RETRY_MS),
                detail: "the server could not store the message; resend it".into(),
            },
        };
        self.deliver_to(sid, &msg);
    }

    /// Sends an edit (`text`) or delete of message `target` to everyone
    /// who got it.
    fn apply_amend(&mut self, target: u64, place: &Place, sender: &str, text: Option<String>) {
        let (room, to) = match place {
            Place::Room(rid) => (self.rooms.get(*rid).map(|r| r.name.clone()), None),
            Place::Dm(to) => (None, Some(to.clone())),
        };
        let deleted = text.is_none();
        let msg = match text {
            Some(text) => ServerMessage::Edited { id: target, room, to: to.clone(), from: sender.to_owned(), text },
            None => ServerMessage::Deleted { id: target, room, to: to.clone() },
        };
        match place {
            Place::Room(rid) => {
                self.fan_out_room(*rid, &msg, None);
            }
            Place::Dm(to) => {
                let mut told = std::collections::BTreeSet::new();
                for name in [to.as_str(), sender] {
                    told.extend(self.holders(&name_keys(name)));
                }
                for sid in told {
                    self.deliver_to(sid, &msg);
                }
            }
        }
        if deleted {
            self.recent.remove(&target);
        }
    }

    /// Whether session `sid` is muted in room `rid` (`None`: everywhere,
    /// which private messages and edits ask). Free while nobody is
    /// sanctioned: nothing is computed per message then.
    pub(super) fn muted(&self, sid: SessionId, rid: Option<RoomId>) -> bool {
        if self.sanctions.is_empty() {
            return false;
        }
        let Some(m) = self.members.get(&sid) else { return false };
        let room = rid.and_then(|r| self.rooms.get(r)).map(|r| crate::accounts::room_key(&r.name));
        self.sanctions.mute(&m.key, room.as_deref(), super::now_ms()).is_some()
    }

    /// The room a chat message without `to` is for, or why it cannot go.
    fn chat_room(&self, sid: SessionId, room: Option<&str>) -> Result<RoomId, (NackReason, String)> {
        let rooms = self.members.get(&sid).map(|m| m.rooms.as_slice()).unwrap_or_default();
        match room {
            Some(name) => match self.rooms.find(name) {
                None => Err((NackReason::NoSuchRoom, format!("there is no room #{name}"))),
                Some(rid) if !rooms.contains(&rid) => Err((NackReason::NotInRoom, format!("you are not in #{name}"))),
                Some(rid) => Ok(rid),
            },
            None => rooms.first().copied().ok_or((NackReason::NotInRoom, "you are in no room".into())),
        }
    }
}

impl Handler<Broadcast> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) {
        let ledger = msg.ledger;
        // A session replaced by its user's new one may still have taken a
        // message: it is the new one's.
        let sid = self.replaced.get(&msg.from).copied().unwrap_or(msg.from);
        let member = self.members.get(&sid).filter(|_| !self.shutting_down);
        let Some(m) = member else {
            // Nobody to send it as (or the server is going down): the id
            // stays open, so the resend is taken.
            return abandon(&ledger, msg.client_id);
        };
        let (sender, author) = (m.name.clone(), m.author);
        if let Some(to) = msg.to {
            if self.muted(sid, None) {
                let detail = "a moderator muted you everywhere".to_owned();
                return self.answer(&ledger, msg.client_id, Answer::Refused(NackReason::Muted, detail));
            }
            let Some(&rsid) = self.holders(&name_keys(&to)).first() else {
                let detail = format!("nobody called {} is here", protocol::escape::Escaped(&to));
                return self.answer(&ledger, msg.client_id, Answer::Refused(NackReason::NoSuchUser, detail));
            };
            let account = self.members.get(&sid).and_then(|m| m.account.clone());
            let (recipient, their_account) =
                self.members.get(&rsid).map(|m| (m.name.clone(), m.account.clone())).unwrap_or_default();
            let id = self.next_id();
            let out = ServerMessage::Message {
                id,
                from: sender.clone(),
                text: msg.text.clone(),
                ts_ms: msg.ts_ms,
                room: None,
                to: Some(recipient.clone()),
                history: false,
                edited: false,
            };
            // Between two accounts: stored first, then delivered.
            if let (Some(a), Some(b), Some(archive), Some(me)) = (account, their_account, &self.archive, &self.me) {
                let record = StoredDirect {
                    id,
                    a,
                    b,
                    sender,
                    recipient: recipient.clone(),
                    text: msg.text,
                    ts_ms: msg.ts_ms,
                    edited: false,
                };
                let recent = Recent { author, place: Place::Dm(recipient), stored: true };
                let what = Pending::Direct { recent, ledger, client_id: msg.client_id, to: rsid, id, out };
                let me = me.clone();
                let since = std::time::Instant::now();
                archive.write(
                    Write::AppendDirect(record),
                    Box::new(move |result| me.do_send(Stored { what, result, since })),
                );
                return;
            }
            if rsid != sid {
                self.deliver_to(rsid, &out);
            }
            self.metrics.messages.inc();
            self.metrics.deliveries.inc();
            self.remember(id, Recent { author, place: Place::Dm(recipient), stored: false });
            return self.answer(&ledger, msg.client_id, Answer::Taken(id));
        }
        let rid = match self.chat_room(sid, msg.room.as_deref()) {
            Ok(rid) => rid,
            Err((reason, detail)) => {
                return self.answer(&ledger, msg.client_id, Answer::Refused(reason, detail));
            }
        };
        if self.muted(sid, Some(rid)) {
            let detail = format!("a moderator muted you in #{}", self.rooms.get(rid).map_or("", |r| r.name.as_str()));
            return self.answer(&ledger, msg.client_id, Answer::Refused(NackReason::Muted, detail));
        }
        let Some(room) = self.rooms.get(rid) else { return abandon(&ledger, msg.client_id) };
        let (room_name, stored) = (room.name.clone(), room.history);
        let id = self.next_id();
        let out = ServerMessage::Message {
            id,
            from: sender.clone(),
            text: msg.text.clone(),
            ts_ms: msg.ts_ms,
            room: Some(room_name.clone()),
            to: None,
            history: false,
            edited: false,
        };
        let recent = Recent { author, place: Place::Room(rid), stored };
        if let (true, Some(archive), Some(me)) = (stored, &self.archive, &self.me) {
            let me = me.clone();
            let record = StoredMessage { id, room: room_name, sender, text: msg.text, ts_ms: msg.ts_ms, edited: false };
            let what = Pending::Chat { recent, ledger, client_id: msg.client_id, room: rid, id, out };
            let since = std::time::Instant::now();
            archive.write(Write::Append(record), Box::new(move |result| me.do_send(Stored { what, result, since })));
            return;
        }
        let delivered = self.fan_out_room(rid, &out, Some(sid));
        self.metrics.messages.inc();
        self.metrics.deliveries.inc_by(delivered);
        self.remember(id, recent);
        self.answer(&ledger, msg.client_id, Answer::Taken(id));
    }
}

/// Leaves chat id `id` open in `ledger` (neither pending nor settled): the
/// client's resend is taken.
fn abandon(ledger: &SharedLedger, id: u64) {
    if let Ok(mut l) = ledger.lock() {
        l.abandon(id);
    }
}

impl Handler<Amend> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Amend, _: &mut Context<Self>) {
        let ledger = msg.ledger;
        let sid = self.replaced.get(&msg.from).copied().unwrap_or(msg.from);
        let member = self.members.get(&sid).filter(|_| !self.shutting_down);
        let Some(m) = member else { return abandon(&ledger, msg.client_id) };
        let (sender, author) = (m.name.clone(), m.author);
        if self.muted(sid, None) {
            let detail = "a moderator muted you everywhere".to_owned();
            return self.answer(&ledger, msg.client_id, Answer::Refused(NackReason::Muted, detail));
        }
        // Only messages of this login (and the sessions that resumed it)
        // that the roster still remembers: a name can change hands, so the
        // store's sender name alone proves nothing.
        let Some(r) = self.recent.get(&msg.target).cloned() else {
            let detail = "no message of yours with that id can be changed (only this login's recent ones)".into();
            return self.answer(&ledger, msg.client_id, Answer::Refused(NackReason::NoSuchMessage, detail));
        };
        if r.author != author {
            let why = Answer::Refused(NackReason::NotYours, "that message is someone else's".into());
            return self.answer(&ledger, msg.client_id, why);
        }
        let stored = match r.place {
            Place::Room(rid) => self.rooms.get(rid).is_some_and(|room| room.history),
            Place::Dm(_) => r.stored,
        };
        let (true, Some(archive), Some(me)) = (stored, &self.archive, &self.me) else {
            self.apply_amend(msg.target, &r.place, &sender, msg.text);
            return self.answer(&ledger, msg.client_id, Answer::Taken(msg.target));
        };
        let write = match &msg.text {
            Some(text) => Write::Edit { id: msg.target, sender: sender.clone(), text: text.clone() },
            None => Write::Delete { id: msg.target, sender: sender.clone() },
        };
        let me = me.clone();
        let what = Pending::Amend { sender, ledger, client_id: msg.client_id, target: msg.target, text: msg.text };
        let since = std::time::Instant::now();
        archive.write(write, Box::new(move |result| me.do_send(Stored { what, result, since })));
    }
}

impl Handler<Stored> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Stored, _: &mut Context<Self>) {
        self.metrics.store_writes.observe(msg.since.elapsed().as_secs_f64());
        match (msg.what, msg.result) {
            // Refused for good by the store (a constraint, too big): final.
            (Pending::Chat { ledger, client_id, .. }, Err(StoreError::Rejected(why)))
            | (Pending::Direct { ledger, client_id, .. }, Err(StoreError::Rejected(why)))
            | (Pending::Amend { ledger, client_id, .. }, Err(StoreError::Rejected(why))) => {
                self.answer(&ledger, client_id, Answer::Refused(NackReason::Invalid, why));
            }
            // The writer logs its failures once per window; each message
            // gets its nack.
            (Pending::Chat { ledger, client_id, .. }, Err(e))
            | (Pending::Direct { ledger, client_id, .. }, Err(e))
            | (Pending::Amend { ledger, client_id, .. }, Err(e)) => {
                debug!(self.log, "message not stored"; "error" => %e);
                self.answer(&ledger, client_id, Answer::Unstored);
            }
            (Pending::Chat { ledger, client_id, room, .. }, Ok(outcome)) if outcome != WriteOutcome::Done => {
                // The store does not know the room (never true while rooms
                // are written before their messages): nothing was stored.
                // Write the room again; the resend goes after it.
                debug!(self.log, "message not stored: the store lacks its room"; "outcome" => ?outcome);
                if let Some(r) = self.rooms.get(room) {
                    self.store_quietly(Write::UpsertRoom(r.record()));
                }
                self.answer(&ledger, client_id, Answer::Unstored);
            }
            (Pending::Chat { recent, ledger, client_id, room, id, out }, Ok(_)) => {
                let except = self.holder_of(&ledger);
                let delivered = self.fan_out_room(room, &out, except);
                self.metrics.messages.inc();
                self.metrics.deliveries.inc_by(delivered);
                self.remember(id, recent);
                self.answer(&ledger, client_id, Answer::Taken(id));
            }
            (Pending::Direct { recent, ledger, client_id, to, id, out }, Ok(_)) => {
                if self.holder_of(&ledger) != Some(to) {
                    self.deliver_to(to, &out);
                }
                self.metrics.messages.inc();
                self.metrics.deliveries.inc();
                self.remember(id, recent);
                self.answer(&ledger, client_id, Answer::Taken(id));
            }
            (Pending::Amend { sender, ledger, client_id, target, text }, Ok(outcome)) => {
                let answer = match outcome {
                    WriteOutcome::NotFound => {
                        Answer::Refused(NackReason::NoSuchMessage, "there is no such message".into())
                    }
                    WriteOutcome::NotYours => {
                        Answer::Refused(NackReason::NotYours, "that message is someone else's".into())
                    }
                    WriteOutcome::Changed { room } => {
                        if let Some(rid) = self.rooms.find(&room) {
                            self.apply_amend(target, &Place::Room(rid), &sender, text);
                        }
                        Answer::Taken(target)
                    }
                    WriteOutcome::ChangedDirect => {
                        if let Some(r) = self.recent.get(&target).cloned() {
                            self.apply_amend(target, &r.place, &sender, text);
                        }
                        Answer::Taken(target)
                    }
                    _ => Answer::Taken(target),
                };
                self.answer(&ledger, client_id, answer);
            }
        }
    }
}
