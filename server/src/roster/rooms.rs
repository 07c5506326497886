//! Rooms in the roster: joining (and creating), parting, lists, history
//! pages, presence and the background sweep (expiry, retention).

use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use protocol::escape::Escaped;
use protocol::message::{self, MAX_HISTORY_PAGE, MAX_LISTED_USERS, NackReason, ServerMessage, validate_room_name};
use slog::{info, warn};

use super::{Roster, deliver, deliver_raw, now_ms};
use crate::archive::{HistoryQuery, Write};
use crate::config::RoomConfig;
use crate::messages::{Conversation, HistoryPage, JoinRoom, ListRooms, PartRoom, SessionId, Who};
use crate::rooms::{NewRoom, RoomId};

impl Roster {
    /// Puts session `sid` in room `name`, creating it where users may (and
    /// `may_create`). `quiet`: no `joined` for the others (a takeover).
    /// Returns the room, or why not.
    pub(super) fn enter_room(
        &mut self,
        sid: SessionId,
        name: &str,
        may_create: bool,
        quiet: bool,
    ) -> Result<RoomId, (NackReason, String)> {
        let Some(m) = self.members.get(&sid) else {
            return Err((NackReason::NotInRoom, "not logged in".into()));
        };
        let (user, sort) = (m.name.clone(), m.sort.clone());
        let rid = match self.rooms.find(name) {
            Some(rid) => rid,
            None => {
                if let Err(e) = validate_room_name(name) {
                    return Err((NackReason::Invalid, format!("invalid room name: {e}")));
                }
                if !(may_create && self.settings.allow_user_rooms) {
                    return Err((NackReason::NoSuchRoom, format!("there is no room #{}", Escaped(name))));
                }
                let ip = self.members.get(&sid).and_then(|m| m.ip);
                match self.rooms.may_create(&user, ip, Instant::now()) {
                    Ok(()) => {}
                    Err(NackReason::TooManyRooms) => {
                        return Err((NackReason::TooManyRooms, "the server has as many rooms as it may".into()));
                    }
                    Err(reason) => {
                        return Err((reason, "you created too many rooms lately; try again later".into()));
                    }
                }
                let rid = self.rooms.insert(NewRoom {
                    settings: RoomConfig {
                        name: name.to_owned(),
                        topic: String::new(),
                        history: self.archive.is_some(),
                        voice: true,
                        history_days: self.settings.history_days,
                    },
                    owner: Some(user.clone()),
                    from_config: false,
                    created_ms: now_ms(),
                    empty_since_ms: None,
                });
                info!(self.log, "room created"; "room" => %Escaped(name), "owner" => %Escaped(&user));
                if let Some(room) = self.rooms.get(rid) {
                    self.store_quietly(Write::UpsertRoom(room.record()));
                }
                rid
            }
        };
        if let Some(room) = self.rooms.get(rid)
            && room.invite_only
            && !room.members.iter().any(|(_, s)| *s == sid)
        {
            // The invite list holds accounts: the name's owner, proven.
            let account = self.members.get(&sid).and_then(|m| m.account.clone());
            let invited = account.as_ref().is_some_and(|k| room.invited.contains_key(k));
            let moderates = account.is_some_and(|a| self.accounts.moderates(&a, &room.name));
            if !invited && !moderates {
                let detail =
                    format!("#{} is invite-only: ask one of its moderators to /invite you", Escaped(&room.name));
                return Err((NackReason::InviteOnly, detail));
            }
        }
        let Some(room) = self.rooms.get_mut(rid) else {
            return Err((NackReason::NoSuchRoom, "no such room".into()));
        };
        if !room.members.insert((sort, sid)) {
            return Ok(rid);
        }
        let room_name = room.name.clone();
        if room.empty_since_ms.take().is_some() {
            let record = room.record();
            self.store_quietly(Write::UpsertRoom(record));
        }
        if let Some(m) = self.members.get_mut(&sid) {
            m.rooms.push(rid);
        }
        if !quiet {
            let joined = ServerMessage::Joined { user, room: Some(room_name) };
            self.rooms.announce(rid, Bytes::from(message::encode(&joined)));
        }
        Ok(rid)
    }

    /// Takes session `sid` out of room `rid` (and its voice). `quiet`: no
    /// `left` for the others. An empty room starts its expiry.
    pub(super) fn leave_room(&mut self, sid: SessionId, rid: RoomId, quiet: bool) {
        if self.members.get(&sid).and_then(|m| m.voice_room) == Some(rid) {
            self.leave_voice(sid);
        }
        let Some(m) = self.members.get_mut(&sid) else { return };
        m.rooms.retain(|r| *r != rid);
        let (user, sort) = (m.name.clone(), m.sort.clone());
        let Some(room) = self.rooms.get_mut(rid) else { return };
        if !room.members.remove(&(sort, sid)) {
            return;
        }
        let room_name = room.name.clone();
        let now_empty = room.members.is_empty();
        if now_empty {
            room.empty_since_ms = Some(now_ms());
            let record = room.record();
            // A takeover (quiet) leaves for a moment only.
            let goes = !room.from_config && self.settings.empty_room_days == 0 && !quiet;
            if goes {
                self.remove_room(rid);
                return;
            }
            self.store_quietly(Write::UpsertRoom(record));
        }
        if !quiet {
            let left = ServerMessage::Left { user, room: Some(room_name) };
            self.rooms.announce(rid, Bytes::from(message::encode(&left)));
        }
    }

    /// Removes a room and its stored messages (it is empty).
    fn remove_room(&mut self, rid: RoomId) {
        let Some(room) = self.rooms.remove(rid) else { return };
        info!(self.log, "room removed"; "room" => %Escaped(&room.name));
        self.store_quietly(Write::RemoveRoom { name: room.name });
    }

    /// Tells session `sid` it is in room `rid`: its members, its voice, and
    /// its history (`history` messages, or what came `after` an id).
    pub(super) fn greet_room(&self, sid: SessionId, rid: RoomId, history: Option<u32>, after: Option<u64>) {
        let Some(room) = self.rooms.get(rid) else { return };
        let joined = ServerMessage::RoomJoined {
            room: room.name.clone(),
            topic: room.topic.clone(),
            users: self.names(room.listed(0)),
            users_total: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
            voice: room.voice,
            history: room.history,
        };
        self.deliver_to(sid, &joined);
        if !room.voice_members.is_empty() {
            self.deliver_to(sid, &self.voice_users(rid));
        }
        let stored = room.history && self.archive.is_some();
        if !stored {
            return self
                .deliver_to(sid, &ServerMessage::HistoryEnd { room: room.name.clone(), with: None, more: false });
        }
        let limit = history.unwrap_or(self.settings.history_on_join).min(MAX_HISTORY_PAGE);
        match after {
            Some(after) => self.send_history(sid, rid, None, Some(after), MAX_HISTORY_PAGE),
            None if limit > 0 => self.send_history(sid, rid, None, None, limit),
            // Asked for none: there may be some to page through.
            None => {
                self.deliver_to(sid, &ServerMessage::HistoryEnd { room: room.name.clone(), with: None, more: true })
            }
        }
    }

    /// Reads a page of room `rid`'s history off this thread and delivers
    /// it to session `sid`, then `history_end`.
    fn send_history(&self, sid: SessionId, rid: RoomId, before: Option<u64>, after: Option<u64>, limit: u32) {
        let (Some(archive), Some(room), Some(m)) = (&self.archive, self.rooms.get(rid), self.members.get(&sid)) else {
            return;
        };
        let (outbox, mailbox, log) = (m.outbox.clone(), m.mailbox.clone(), self.log.clone());
        let name = room.name.clone();
        let query = HistoryQuery { room: name.clone(), before, after, limit: limit.clamp(1, MAX_HISTORY_PAGE) };
        archive.history(
            query,
            Box::new(move |page| {
                let send = |msg: &ServerMessage| deliver_raw(&log, sid, &outbox, &mailbox, message::encode(msg).into());
                let more = match page {
                    Ok(page) => {
                        for s in page.messages {
                            let msg = ServerMessage::Message {
                                id: s.id,
                                from: s.sender,
                                text: s.text,
                                ts_ms: s.ts_ms,
                                room: Some(name.clone()),
                                to: None,
                                history: true,
                                edited: s.edited,
                            };
                            if !send(&msg) {
                                return;
                            }
                        }
                        page.more
                    }
                    Err(e) => {
                        warn!(log, "history read failed"; "room" => %Escaped(&name), "error" => %e);
                        send(&ServerMessage::Notice { text: format!("the history of #{name} cannot be read now") });
                        // Not "that was all": a catching-up client asks again.
                        true
                    }
                };
                send(&ServerMessage::HistoryEnd { room: name, with: None, more });
            }),
        );
    }

    /// Sends each room's presence of the last window to its members: one
    /// shared batch per room, however many came and went. A room of more
    /// than [`MAX_LISTED_USERS`] gets none (its member list pages on
    /// demand, through `who`): there, presence would cost every member
    /// every join.
    pub(super) fn send_presence(&mut self) {
        for rid in self.rooms.take_voice_changed() {
            self.fan_out_room(rid, &self.voice_users(rid), None);
        }
        for rid in self.rooms.take_dirty() {
            let Some(room) = self.rooms.get_mut(rid) else { continue };
            let payloads = room.take_presence();
            if room.members.len() > MAX_LISTED_USERS {
                continue;
            }
            for (_, id) in &room.members {
                let Some(m) = self.members.get(id) else { continue };
                for p in &payloads {
                    if !deliver(&self.log, *id, m, p.clone()) {
                        break;
                    }
                }
            }
        }
    }

    /// Removes user rooms empty for `empty_room_days` and prunes messages
    /// past each room's retention.
    pub(super) fn sweep(&mut self) {
        let now = now_ms();
        for id in self.sanctions.expire(now) {
            self.store_quietly(Write::RemoveSanction { id });
        }
        if self.keys.as_ref().is_some_and(|k| k.write().end_grace(now)) {
            let id = crate::keyring::OLD_MAIN_RECORD;
            self.store_quietly(Write::RemoveKey { kind: "old_main".into(), id });
        }
        for rid in self.rooms.expired(now, self.settings.empty_room_days) {
            self.remove_room(rid);
        }
        let prunes: Vec<Write> = self
            .rooms
            .iter()
            .filter(|r| r.history && r.history_days > 0)
            .map(|r| Write::Prune {
                room: r.name.clone(),
                before_ms: now.saturating_sub(u64::from(r.history_days) * 86_400_000),
            })
            .collect();
        for w in prunes {
            self.store_quietly(w);
        }
    }

    /// The room `name` if session `sid` is in it.
    pub(super) fn joined_room(&self, sid: SessionId, name: &str) -> Option<RoomId> {
        let rid = self.rooms.find(name)?;
        self.members.get(&sid)?.rooms.contains(&rid).then_some(rid)
    }

    /// The room `name` for session `sid`, or an `error` telling it why not.
    fn room_of_or_tell(&self, sid: SessionId, name: &str) -> Option<RoomId> {
        let rid = self.joined_room(sid, name);
        if rid.is_none() {
            let detail = format!("you are not in #{}", Escaped(name));
            self.deliver_to(sid, &ServerMessage::Error { detail });
        }
        rid
    }
}

impl Handler<JoinRoom> for Roster {
    type Result = ();
    fn handle(&mut self, msg: JoinRoom, _: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        match self.enter_room(msg.id, &msg.join.room, true, false) {
            Ok(rid) => self.greet_room(msg.id, rid, msg.history, msg.join.after),
            Err((reason, detail)) => {
                self.deliver_to(msg.id, &ServerMessage::JoinRefused { room: msg.join.room, reason, detail });
            }
        }
    }
}

impl Handler<PartRoom> for Roster {
    type Result = ();
    fn handle(&mut self, msg: PartRoom, _: &mut Context<Self>) {
        // Idempotent: parting a room one is not in still answers.
        let room = match self.joined_room(msg.id, &msg.room) {
            Some(rid) => {
                let name = self.rooms.get(rid).map_or_else(|| msg.room.clone(), |r| r.name.clone());
                self.leave_room(msg.id, rid, false);
                name
            }
            None => msg.room,
        };
        self.deliver_to(msg.id, &ServerMessage::RoomLeft { room });
    }
}

impl Handler<ListRooms> for Roster {
    type Result = ();
    fn handle(&mut self, msg: ListRooms, _: &mut Context<Self>) {
        let rooms = self.rooms.list(|sid| self.members.get(&sid).map(|m| m.name.clone()));
        self.deliver_to(msg.id, &ServerMessage::Rooms { rooms });
    }
}

impl Handler<HistoryPage> for Roster {
    type Result = ();
    fn handle(&mut self, msg: HistoryPage, _: &mut Context<Self>) {
        let name = match msg.place {
            Conversation::Room(name) => name,
            Conversation::Direct(with) => {
                return self.send_direct_history(msg.id, with, msg.before, msg.after, msg.limit);
            }
        };
        let Some(rid) = self.room_of_or_tell(msg.id, &name) else {
            // Every history request ends with its `history_end`.
            return self.deliver_to(msg.id, &ServerMessage::HistoryEnd { room: name, with: None, more: false });
        };
        let Some(room) = self.rooms.get(rid) else { return };
        if !room.history || self.archive.is_none() {
            let end = ServerMessage::HistoryEnd { room: room.name.clone(), with: None, more: false };
            return self.deliver_to(msg.id, &end);
        }
        self.send_history(msg.id, rid, msg.before, msg.after, msg.limit);
    }
}

impl Handler<Who> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Who, _: &mut Context<Self>) {
        let offset = msg.offset as usize;
        let answer = match msg.room {
            None => ServerMessage::Users {
                room: None,
                users: self.users(offset),
                users_total: u32::try_from(self.members.len()).unwrap_or(u32::MAX),
            },
            Some(name) => {
                let Some(rid) = self.room_of_or_tell(msg.id, &name) else { return };
                let Some(room) = self.rooms.get(rid) else { return };
                ServerMessage::Users {
                    room: Some(room.name.clone()),
                    users: self.names(room.listed(offset)),
                    users_total: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
                }
            }
        };
        self.deliver_to(msg.id, &answer);
    }
}
