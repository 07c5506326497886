//! Moderation in the roster: kicks, bans, mutes, room settings, roles, the
//! audit log, and the operator's own queries (`server admin …`).
//!
//! Who may do what:
//! - the operator (admin socket): everything;
//! - an admin (granted by the operator): everything but granting admin;
//! - a server moderator: kick, ban, mute and room settings everywhere,
//!   the whole audit log;
//! - a room moderator: mute, topic, settings and invites in that room, and
//!   that room's audit entries;
//! - nobody acts on an admin but the operator and admins.
//!
//! Every change is stored first; only once the store has it does it take
//! effect (the kick, the new topic) and is the asker told `done`. Every
//! change goes to the audit log.

use actix::prelude::*;
use protocol::escape::Escaped;
use protocol::message::{DisconnectCause, MAX_LISTED_USERS, NameKeys, ServerMessage, name_keys};
use protocol::moderation::{
    Action, DenyReason, MAX_LISTED_RECORDS, MAX_REASON_BYTES, MAX_TOPIC_BYTES, Role, RoomSetting, format_duration,
};
use slog::warn;

use super::accounts::{OPERATOR, ban_text};
use super::{Roster, deliver_raw, now_ms};
use crate::accounts::sanctions::{IpRange, Kind, Sanction};
use crate::accounts::{format_utc, room_key};
use crate::archive::{AccountField, AuditQuery, InviteRecord, ModeratorRecord, Write};
use crate::messages::{
    Asker, Denial, ModReply, ModReplyTo, ModRequest, Moderate, OperatorQuery, ServerStats, SessionId, ToSession,
    UserSummary,
};
use crate::rooms::RoomId;

/// Where an action reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The whole server.
    Server,
    /// One room.
    Room(RoomId),
    /// Only the operator and admins (granting roles).
    Admins,
}

pub(super) type Outcome = Result<ModReply, Denial>;

fn deny(reason: DenyReason, detail: impl Into<String>) -> Denial {
    Denial { reason, detail: detail.into() }
}

fn done(detail: impl Into<String>) -> Outcome {
    Ok(ModReply::Done { detail: detail.into() })
}

/// A reason as given: trimmed, at most [`MAX_REASON_BYTES`], no controls.
fn clean_reason(reason: Option<String>) -> Result<String, Denial> {
    let r = reason.unwrap_or_default().trim().to_owned();
    if r.len() > MAX_REASON_BYTES {
        return Err(deny(DenyReason::Invalid, format!("a reason has at most {MAX_REASON_BYTES} bytes")));
    }
    if r.chars().any(unshowable) {
        return Err(deny(DenyReason::Invalid, "a reason holds no control, bidi or invisible characters"));
    }
    Ok(r)
}

/// Characters no reason or topic may hold: controls, bidi overrides and
/// invisible characters (they would rewrite what a terminal shows).
fn unshowable(c: char) -> bool {
    c.is_control() || protocol::escape::is_bidi_control(c) || protocol::escape::is_invisible(c)
}

/// A name as an action's target: it must be a valid name.
fn check_name(name: &str) -> Result<(), Denial> {
    protocol::message::validate_username(name)
        .map_err(|e| deny(DenyReason::Invalid, format!("{:?} is not a name: {e}", Escaped(name).to_string())))
}

/// "for 2h (until …)" or "until lifted".
fn until_words(until_ms: Option<u64>, secs: Option<u64>) -> String {
    match (until_ms, secs) {
        (Some(u), Some(s)) => format!("for {} (until {})", format_duration(s), format_utc(u)),
        _ => "until lifted".to_owned(),
    }
}

impl Roster {
    /// The asker's name for the audit log, and its account key.
    fn asker(&self, by: Asker) -> (String, Option<String>) {
        match by {
            Asker::Operator => (OPERATOR.to_owned(), None),
            Asker::Session(sid) => match self.members.get(&sid) {
                Some(m) => (m.name.clone(), m.account.clone()),
                None => (String::new(), None),
            },
        }
    }

    /// Whether `by` may act within `scope`.
    fn may(&self, by: Asker, scope: Scope) -> bool {
        let Asker::Session(sid) = by else { return true };
        let Some(key) = self.members.get(&sid).and_then(|m| m.account.as_deref()) else { return false };
        match scope {
            Scope::Admins => self.accounts.is_admin(key),
            Scope::Server => self.accounts.is_server_moderator(key),
            Scope::Room(rid) => self.rooms.get(rid).is_some_and(|r| self.accounts.moderates(key, &r.name)),
        }
    }

    /// Refuses when the target is an admin and the asker is neither the
    /// operator nor an admin.
    fn protects(&self, by: Asker, target: &NameKeys) -> Result<(), Denial> {
        let target_admin = self.accounts.find(target).is_some_and(|a| a.admin);
        if target_admin && !self.may(by, Scope::Admins) {
            return Err(deny(DenyReason::NotAllowed, "only the operator and admins act on an admin"));
        }
        Ok(())
    }

    fn not_allowed(what: &str) -> Denial {
        deny(DenyReason::NotAllowed, format!("you may not {what}"))
    }

    /// The room called `name`, or why not.
    fn room_named(&self, name: &str) -> Result<RoomId, Denial> {
        let bare = protocol::message::bare_room(name);
        self.rooms
            .find(bare)
            .ok_or_else(|| deny(DenyReason::NoSuchRoom, format!("there is no room #{}", Escaped(bare))))
    }

    /// The sessions whose name counts as `keys`.
    fn sessions_named(&self, keys: &NameKeys) -> Vec<SessionId> {
        self.holders(keys).into_iter().collect()
    }

    /// Ends session `sid` for cause, with words; final.
    fn remove_session(&mut self, sid: SessionId, cause: DisconnectCause, detail: String, until_ms: Option<u64>) {
        if let Some(m) = self.members.get(&sid) {
            m.mailbox.do_send(ToSession::Removed { cause, detail, until_ms });
        }
    }

    /// Sends the answer once the audit entries the request made are
    /// stored (whoever reads the log next finds them).
    fn answer_after_audit(&mut self, to: ModReplyTo, action: &'static str, outcome: Outcome) {
        let mut entries = std::mem::take(&mut self.unlogged);
        let Some(last) = entries.pop() else { return self.reply(to, action, outcome) };
        for e in entries {
            self.store_quietly(Write::Audit(e));
        }
        self.store_then(Write::Audit(last), move |roster, result| {
            if let Err(e) = result {
                warn!(roster.log, "audit entry not stored"; "error" => %e);
            }
            roster.reply(to, action, outcome);
        });
    }

    /// Sends the answer where it goes.
    pub(super) fn reply(&self, to: ModReplyTo, action: &str, outcome: Outcome) {
        match to {
            ModReplyTo::Operator(tx) => {
                let _ = tx.send(outcome);
            }
            ModReplyTo::Session(sid) => {
                let msg = match outcome {
                    Ok(ModReply::Done { detail }) => ServerMessage::Done { action: action.to_owned(), detail },
                    Ok(ModReply::Bans { bans }) => ServerMessage::Bans { bans },
                    Ok(ModReply::Audit { entries, more }) => ServerMessage::Audit { entries, more },
                    Ok(_) => ServerMessage::Denied {
                        action: action.to_owned(),
                        reason: DenyReason::NotAllowed,
                        detail: "only the operator asks that".into(),
                    },
                    Err(d) => ServerMessage::Denied { action: action.to_owned(), reason: d.reason, detail: d.detail },
                };
                self.deliver_to(sid, &msg);
            }
        }
    }

    /// Stores `w`; once stored runs `apply` (which makes the change take
    /// effect and says what was done) and answers; a failed write is a
    /// `storage_unavailable` denial and nothing changes.
    pub(super) fn commit(
        &mut self,
        w: Write,
        reply: ModReplyTo,
        action: &'static str,
        apply: impl FnOnce(&mut Roster) -> Outcome + Send + 'static,
    ) {
        self.store_then(w, move |roster, result| {
            let outcome = match result {
                Ok(_) => apply(roster),
                Err(e) => {
                    warn!(roster.log, "moderation change not stored"; "action" => action, "error" => %e);
                    Err(deny(DenyReason::StorageUnavailable, "the server could not store the change; nothing changed"))
                }
            };
            roster.answer_after_audit(reply, action, outcome);
        });
    }

    fn act(&mut self, by: Asker, action: Action, reply: ModReplyTo) {
        let name = action.name();
        if let Err(d) = self.act_checked(by, action, reply) {
            // Refused before anything was written; `act_checked` gave
            // `reply` back inside the error.
            let (to, denial) = *d;
            self.reply(to, name, Err(denial));
        }
    }

    /// Checks and starts an action; an error hands the reply back with
    /// the denial.
    #[allow(clippy::too_many_lines)]
    fn act_checked(&mut self, by: Asker, action: Action, reply: ModReplyTo) -> Result<(), Box<(ModReplyTo, Denial)>> {
        macro_rules! check {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(d) => return Err(Box::new((reply, d))),
                }
            };
        }
        let (actor, _) = self.asker(by);
        let now = now_ms();
        // Every name an action targets is a valid name (it goes into the
        // store, the audit log and the operator's terminal).
        match &action {
            Action::Kick { name, .. }
            | Action::Ban { name, .. }
            | Action::Mute { name, .. }
            | Action::Unmute { name, .. }
            | Action::Invite { name, .. }
            | Action::Grant { name, .. }
            | Action::Revoke { name, .. } => check!(check_name(name)),
            _ => {}
        }
        match action {
            Action::Kick { name, reason } => {
                check!(if self.may(by, Scope::Server) { Ok(()) } else { Err(Self::not_allowed("kick")) });
                let reason = check!(clean_reason(reason));
                let keys = name_keys(&name);
                check!(self.protects(by, &keys));
                let targets = self.sessions_named(&keys);
                if targets.is_empty() {
                    check!(Err(deny(DenyReason::NoSuchUser, format!("nobody called {} is here", Escaped(&name)))));
                }
                let why = if reason.is_empty() { String::new() } else { format!(": {reason}") };
                for sid in targets {
                    self.remove_session(sid, DisconnectCause::Kicked, format!("kicked by {actor}{why}"), None);
                }
                self.audit(&actor, "kick", &name, None, &reason, "");
                self.answer_after_audit(reply, "kick", done(format!("kicked {}", Escaped(&name))));
            }
            Action::Ban { name, duration_secs, reason } => {
                check!(if self.may(by, Scope::Server) { Ok(()) } else { Err(Self::not_allowed("ban")) });
                let reason = check!(clean_reason(reason));
                let keys = name_keys(&name);
                check!(self.protects(by, &keys));
                // The account's own spelling when it is one.
                let target = self.accounts.find(&keys).map_or(name, |a| a.name.clone());
                let until_ms = duration_secs.map(|s| now.saturating_add(s.saturating_mul(1000)));
                let s = Sanction {
                    id: self.sanctions.next_id(),
                    kind: Kind::BanName(keys.clone()),
                    target: target.clone(),
                    room: None,
                    reason: reason.clone(),
                    by: actor.clone(),
                    since_ms: now,
                    until_ms,
                };
                self.commit(Write::PutSanction(s.record()), reply, "ban", move |roster| {
                    roster.put_sanction(s);
                    let text = ban_text(&target, &reason, until_ms);
                    for sid in roster.sessions_named(&keys) {
                        roster.remove_session(sid, DisconnectCause::Banned, format!("{text} (by {actor})"), until_ms);
                    }
                    roster.gone.retain(|_, g| !g.key.collides(&keys));
                    let words = until_words(until_ms, duration_secs);
                    roster.audit(&actor, "ban", &target, None, &reason, &words);
                    done(format!("banned {} {words}", Escaped(&target)))
                });
            }
            Action::BanIp { address, duration_secs, reason } => {
                check!(if self.may(by, Scope::Server) { Ok(()) } else { Err(Self::not_allowed("ban addresses")) });
                let reason = check!(clean_reason(reason));
                let range = check!(IpRange::parse(&address).map_err(|e| deny(DenyReason::Invalid, e.to_string())));
                // A moderator bans a network, not the Internet.
                let widest = if range.addr.is_ipv4() { 16 } else { 32 };
                if range.prefix < widest && !self.may(by, Scope::Admins) {
                    let detail = format!("moderators ban ranges of at most /{widest} (admins and the operator wider)");
                    check!(Err(deny(DenyReason::NotAllowed, detail)));
                }
                let until_ms = duration_secs.map(|s| now.saturating_add(s.saturating_mul(1000)));
                let target = range.to_string();
                let s = Sanction {
                    id: self.sanctions.next_id(),
                    kind: Kind::BanAddress(range),
                    target: target.clone(),
                    room: None,
                    reason: reason.clone(),
                    by: actor.clone(),
                    since_ms: now,
                    until_ms,
                };
                self.commit(Write::PutSanction(s.record()), reply, "ban_ip", move |roster| {
                    roster.put_sanction(s);
                    let text = format!("your address is banned{}", ban_text("", &reason, until_ms));
                    let inside: Vec<SessionId> = roster
                        .members
                        .iter()
                        .filter(|(_, m)| m.addr.is_some_and(|a| range.contains(a)))
                        .map(|(sid, _)| *sid)
                        .collect();
                    let n = inside.len();
                    for sid in inside {
                        let detail = format!("{text} (by {actor})");
                        roster.remove_session(sid, DisconnectCause::Banned, detail, until_ms);
                    }
                    let words = until_words(until_ms, duration_secs);
                    roster.audit(&actor, "ban_ip", &target, None, &reason, &words);
                    done(format!("banned {target} {words}; {n} connected user(s) removed"))
                });
            }
            Action::Unban { target } => {
                check!(if self.may(by, Scope::Server) { Ok(()) } else { Err(Self::not_allowed("unban")) });
                let found = self.sanctions.find_ban(target.trim()).map(|s| (s.id, s.target.clone()));
                let (id, shown) =
                    check!(found.ok_or_else(|| deny(DenyReason::NotFound, format!("no ban on {}", Escaped(&target)))));
                self.commit(Write::RemoveSanction { id }, reply, "unban", move |roster| {
                    roster.sanctions.remove(id);
                    roster.audit(&actor, "unban", &shown, None, "", "");
                    done(format!("lifted the ban on {}", Escaped(&shown)))
                });
            }
            Action::Bans => {
                check!(if self.may(by, Scope::Server) { Ok(()) } else { Err(Self::not_allowed("list bans")) });
                let mut bans = self.sanctions.bans(now);
                bans.truncate(MAX_LISTED_RECORDS as usize);
                self.reply(reply, "bans", Ok(ModReply::Bans { bans }));
            }
            Action::Mute { name, room, duration_secs, reason } => {
                let rid = match &room {
                    Some(r) => Some(check!(self.room_named(r))),
                    None => None,
                };
                let scope = rid.map_or(Scope::Server, Scope::Room);
                check!(if self.may(by, scope) { Ok(()) } else { Err(Self::not_allowed("mute there")) });
                let reason = check!(clean_reason(reason));
                let keys = name_keys(&name);
                check!(self.protects(by, &keys));
                let room_name = rid.and_then(|r| self.rooms.get(r)).map(|r| r.name.clone());
                let until_ms = duration_secs.map(|s| now.saturating_add(s.saturating_mul(1000)));
                let s = Sanction {
                    id: self.sanctions.next_id(),
                    kind: Kind::Mute(keys.clone(), room_name.as_deref().map(room_key)),
                    target: name.clone(),
                    room: room_name.clone(),
                    reason: reason.clone(),
                    by: actor.clone(),
                    since_ms: now,
                    until_ms,
                };
                self.commit(Write::PutSanction(s.record()), reply, "mute", move |roster| {
                    roster.put_sanction(s);
                    let place = room_name.as_deref().map_or_else(|| "everywhere".to_owned(), |r| format!("in #{r}"));
                    let words = until_words(until_ms, duration_secs);
                    for sid in roster.sessions_named(&keys) {
                        // Out of a muted room's voice at once.
                        let in_voice = roster.members.get(&sid).and_then(|m| m.voice_room);
                        if in_voice.is_some() && (rid.is_none() || in_voice == rid) && roster.leave_voice(sid) {
                            roster.deliver_to(sid, &ServerMessage::VoiceLeft);
                        }
                        let why = if reason.is_empty() { String::new() } else { format!(": {reason}") };
                        let text = format!("{actor} muted you {place} {words}{why}");
                        roster.deliver_to(sid, &ServerMessage::Notice { text });
                    }
                    roster.audit(&actor, "mute", &name, room_name.as_deref(), &reason, &words);
                    done(format!("muted {} {place} {words}", Escaped(&name)))
                });
            }
            Action::Unmute { name, room } => {
                let rid = match &room {
                    Some(r) => Some(check!(self.room_named(r))),
                    None => None,
                };
                let scope = rid.map_or(Scope::Server, Scope::Room);
                check!(if self.may(by, scope) { Ok(()) } else { Err(Self::not_allowed("unmute there")) });
                let room_name = rid.and_then(|r| self.rooms.get(r)).map(|r| r.name.clone());
                let keys = name_keys(&name);
                let found =
                    self.sanctions.find_mute(&keys, room_name.as_deref().map(room_key).as_deref()).map(|s| s.id);
                let id = check!(found.ok_or_else(|| deny(DenyReason::NotFound, "no such mute")));
                self.commit(Write::RemoveSanction { id }, reply, "unmute", move |roster| {
                    roster.sanctions.remove(id);
                    for sid in roster.sessions_named(&keys) {
                        roster.deliver_to(sid, &ServerMessage::Notice { text: format!("{actor} unmuted you") });
                    }
                    roster.audit(&actor, "unmute", &name, room_name.as_deref(), "", "");
                    done(format!("unmuted {}", Escaped(&name)))
                });
            }
            Action::Topic { room, topic } => {
                let rid = check!(self.room_named(&room));
                check!(if self.may(by, Scope::Room(rid)) { Ok(()) } else { Err(Self::not_allowed("set that topic")) });
                let topic = topic.trim().to_owned();
                if topic.len() > MAX_TOPIC_BYTES || topic.chars().any(unshowable) {
                    let detail = format!(
                        "a topic has at most {MAX_TOPIC_BYTES} bytes and no control, bidi or invisible characters"
                    );
                    check!(Err(deny(DenyReason::Invalid, detail)));
                }
                self.change_room(by, rid, reply, "topic", topic.clone(), move |room| room.topic = topic);
            }
            Action::RoomSet { room, setting } => {
                let rid = check!(self.room_named(&room));
                check!(if self.may(by, Scope::Room(rid)) {
                    Ok(())
                } else {
                    Err(Self::not_allowed("change that room"))
                });
                if matches!(setting, RoomSetting::History(true)) && self.archive.is_none() {
                    check!(Err(deny(DenyReason::Invalid, "this server keeps no history")));
                }
                if let RoomSetting::HistoryDays(d) = setting
                    && d > 36_500
                {
                    check!(Err(deny(DenyReason::Invalid, "history_days is at most 36500")));
                }
                let words = match &setting {
                    RoomSetting::History(v) => format!("history {}", if *v { "on" } else { "off" }),
                    RoomSetting::HistoryDays(d) => format!("history_days {d}"),
                    RoomSetting::Voice(v) => format!("voice {}", if *v { "on" } else { "off" }),
                    RoomSetting::InviteOnly(v) => format!("invite_only {}", if *v { "on" } else { "off" }),
                };
                self.change_room(by, rid, reply, "room_set", words, move |room| match setting {
                    RoomSetting::History(v) => room.history = v,
                    RoomSetting::HistoryDays(d) => room.history_days = d,
                    RoomSetting::Voice(v) => room.voice = v,
                    RoomSetting::InviteOnly(v) => room.invite_only = v,
                });
            }
            Action::Invite { room, name, remove } => {
                let rid = check!(self.room_named(&room));
                check!(if self.may(by, Scope::Room(rid)) { Ok(()) } else { Err(Self::not_allowed("invite there")) });
                let room_name = self.rooms.get(rid).map(|r| r.name.clone()).unwrap_or_default();
                // Accounts only: a bare name changes hands.
                let found = self.accounts.find_name(&name).map(|a| (a.key().to_owned(), a.name.clone()));
                let (key, name) = match (found, remove) {
                    (Some(k), _) => k,
                    (None, true) => (name_keys(&name).caseless, name),
                    (None, false) => {
                        let detail = format!("{} is not a registered name: only accounts are invited", Escaped(&name));
                        check!(Err(deny(DenyReason::NoSuchAccount, detail)));
                        return Ok(());
                    }
                };
                let w = if remove {
                    Write::RemoveInvite { room: room_name.clone(), key: key.clone() }
                } else {
                    Write::PutInvite(InviteRecord { room: room_name.clone(), key: key.clone(), name: name.clone() })
                };
                self.commit(w, reply, "invite", move |roster| {
                    if let Some(r) = roster.rooms.get_mut(rid) {
                        if remove {
                            r.invited.remove(&key);
                        } else {
                            r.invited.insert(key, name.clone());
                        }
                    }
                    let what = if remove { "uninvite" } else { "invite" };
                    roster.audit(&actor, what, &name, Some(&room_name), "", "");
                    let verb = if remove { "took" } else { "put" };
                    let prep = if remove { "off" } else { "on" };
                    done(format!("{verb} {} {prep} the invite list of #{room_name}", Escaped(&name)))
                });
            }
            Action::Grant { name, role: Role::Admin, .. } => self.set_admin(by, reply, actor, name, true)?,
            Action::Revoke { name, role: Role::Admin, .. } => self.set_admin(by, reply, actor, name, false)?,
            Action::Grant { name, role: Role::Moderator, room } => {
                self.set_moderator(by, reply, actor, name, room, true)?;
            }
            Action::Revoke { name, role: Role::Moderator, room } => {
                self.set_moderator(by, reply, actor, name, room, false)?;
            }
            Action::Audit { limit, before } => {
                let rooms = match by {
                    _ if self.may(by, Scope::Server) => None,
                    Asker::Session(sid) => {
                        let key = self.members.get(&sid).and_then(|m| m.account.clone());
                        let keys = key.map(|k| self.accounts.moderated_rooms(&k)).unwrap_or_default();
                        if keys.is_empty() {
                            check!(Err(Self::not_allowed("read the audit log")));
                        }
                        Some(
                            keys.iter()
                                .filter_map(|k| self.rooms.find(k))
                                .filter_map(|rid| self.rooms.get(rid))
                                .map(|r| r.name.clone())
                                .collect(),
                        )
                    }
                    Asker::Operator => None,
                };
                let limit = limit.unwrap_or(50).clamp(1, MAX_LISTED_RECORDS);
                self.read_audit(AuditQuery { before, limit, rooms }, reply);
            }
        }
        Ok(())
    }

    /// Puts a stored sanction in force (one it replaces leaves the store).
    fn put_sanction(&mut self, s: Sanction) {
        if let Some(old) = self.sanctions.insert(s) {
            self.store_quietly(Write::RemoveSanction { id: old });
        }
    }

    /// Changes room `rid` with `change`, stores it, then tells its members
    /// (a topic) or applies what follows (voice off empties its voice).
    fn change_room(
        &mut self,
        by: Asker,
        rid: RoomId,
        reply: ModReplyTo,
        action: &'static str,
        words: String,
        change: impl FnOnce(&mut crate::rooms::Room),
    ) {
        let Some(room) = self.rooms.get_mut(rid) else { return };
        let before = room.record();
        change(room);
        let after = room.record();
        // The record is written first; the room itself keeps its old
        // settings until the store has the new ones.
        if let Some(room) = self.rooms.get_mut(rid) {
            room.topic = before.topic.clone();
            room.history = before.history;
            room.history_days = before.history_days;
            room.voice = before.voice;
            room.invite_only = before.invite_only;
        }
        let (actor, _) = self.asker(by);
        self.commit(Write::UpsertRoom(after.clone()), reply, action, move |roster| {
            let Some(room) = roster.rooms.get_mut(rid) else {
                return Err(deny(DenyReason::NoSuchRoom, "the room went away"));
            };
            room.topic = after.topic.clone();
            room.history = after.history;
            room.history_days = after.history_days;
            room.voice = after.voice;
            room.invite_only = after.invite_only;
            let name = room.name.clone();
            if before.topic != after.topic {
                let msg = ServerMessage::Topic { room: name.clone(), topic: after.topic.clone(), by: actor.clone() };
                roster.fan_out_room(rid, &msg, None);
            } else {
                let text = format!("{actor} set #{name}: {words}");
                roster.fan_out_room(rid, &ServerMessage::Notice { text }, None);
            }
            if before.voice && !after.voice {
                let talking: Vec<SessionId> =
                    roster.rooms.get(rid).map(|r| r.voice_members.keys().copied().collect()).unwrap_or_default();
                for sid in talking {
                    if roster.leave_voice(sid) {
                        roster.deliver_to(sid, &ServerMessage::VoiceLeft);
                    }
                }
            }
            roster.audit(&actor, action, &name, Some(&name), "", &words);
            done(format!("#{name}: {words}"))
        });
    }

    /// Grants (or takes back) admin: the operator's alone.
    fn set_admin(
        &mut self,
        by: Asker,
        reply: ModReplyTo,
        actor: String,
        name: String,
        grant: bool,
    ) -> Result<(), Box<(ModReplyTo, Denial)>> {
        if by != Asker::Operator {
            let d = deny(DenyReason::NotAllowed, "admins are made on the server's machine (server admin grant NAME)");
            return Err(Box::new((reply, d)));
        }
        let Some((key, shown)) = self.accounts.find_name(&name).map(|a| (a.key().to_owned(), a.name.clone())) else {
            let d = deny(DenyReason::NoSuchAccount, format!("{} is not a registered name", Escaped(&name)));
            return Err(Box::new((reply, d)));
        };
        let action = if grant { "grant" } else { "revoke" };
        let field = AccountField::Admin(grant);
        let w = Write::UpdateAccount { key: key.clone(), field: field.clone() };
        self.commit(w, reply, action, move |roster| {
            if !roster.accounts.apply(&key, &field) {
                return Err(deny(DenyReason::NoSuchAccount, "the account is gone"));
            }
            let text = if grant { "you are an admin now" } else { "you are no longer an admin" };
            roster.tell_account(&key, text);
            roster.audit(&actor, action, &shown, None, "", "admin");
            done(format!("{} {} admin", Escaped(&shown), if grant { "is" } else { "is no longer" }))
        });
        Ok(())
    }

    /// Makes an account a moderator of a room or the server (or takes it
    /// back): the operator's and admins' to do.
    fn set_moderator(
        &mut self,
        by: Asker,
        reply: ModReplyTo,
        actor: String,
        name: String,
        room: Option<String>,
        grant: bool,
    ) -> Result<(), Box<(ModReplyTo, Denial)>> {
        if !self.may(by, Scope::Admins) {
            return Err(Box::new((reply, Self::not_allowed("make moderators (admins do)"))));
        }
        let Some(account) = self.accounts.find_name(&name) else {
            let d = deny(DenyReason::NoSuchAccount, format!("{} is not a registered name", Escaped(&name)));
            return Err(Box::new((reply, d)));
        };
        let (key, shown) = (account.key().to_owned(), account.name.clone());
        let room_name = match &room {
            Some(r) => match self.room_named(r) {
                Ok(rid) => self.rooms.get(rid).map(|r| r.name.clone()),
                // Taking a role back in a room that is gone is fine.
                Err(_) if !grant => Some(r.trim_start_matches('#').to_owned()),
                Err(d) => return Err(Box::new((reply, d))),
            },
            None => None,
        };
        let rkey = room_name.as_deref().map(room_key).unwrap_or_default();
        let action = if grant { "grant" } else { "revoke" };
        let w = if grant {
            Write::PutModerator(ModeratorRecord {
                account: key.clone(),
                room: rkey.clone(),
                by: actor.clone(),
                at_ms: now_ms(),
            })
        } else {
            if !self.accounts.moderated_rooms(&key).contains(&rkey) {
                return Err(Box::new((reply, deny(DenyReason::NotFound, "that account holds no such role"))));
            }
            Write::RemoveModerator { account: key.clone(), room: rkey.clone() }
        };
        self.commit(w, reply, action, move |roster| {
            if grant {
                roster.accounts.grant_moderator(&key, &rkey);
            } else {
                roster.accounts.revoke_moderator(&key, &rkey);
            }
            let place = room_name.as_deref().map_or_else(|| "the server".to_owned(), |r| format!("#{r}"));
            let text = if grant {
                format!("you are a moderator of {place} now")
            } else {
                format!("you are no longer a moderator of {place}")
            };
            roster.tell_account(&key, &text);
            roster.audit(&actor, action, &shown, room_name.as_deref(), "", "moderator");
            let verb = if grant { "is" } else { "is no longer" };
            done(format!("{} {verb} a moderator of {place}", Escaped(&shown)))
        });
        Ok(())
    }

    /// Tells every session logged in to account `key`.
    fn tell_account(&self, key: &str, text: &str) {
        for (sid, m) in &self.members {
            if m.account.as_deref() == Some(key) {
                self.deliver_to(*sid, &ServerMessage::Notice { text: text.to_owned() });
            }
        }
    }

    /// Reads a page of the audit log and answers from the reader thread.
    fn read_audit(&self, q: AuditQuery, reply: ModReplyTo) {
        let Some(archive) = &self.archive else {
            return self.reply(reply, "audit", Ok(ModReply::Audit { entries: Vec::new(), more: false }));
        };
        let session = match &reply {
            ModReplyTo::Session(sid) => self.members.get(sid).map(|m| (*sid, m.outbox.clone(), m.mailbox.clone())),
            ModReplyTo::Operator(_) => None,
        };
        let log = self.log.clone();
        archive.audit(
            q,
            Box::new(move |page| {
                let outcome = page.map(|(entries, more)| ModReply::Audit { entries, more }).map_err(|e| {
                    deny(DenyReason::StorageUnavailable, format!("the audit log cannot be read now: {e}"))
                });
                match (reply, session) {
                    (ModReplyTo::Operator(tx), _) => {
                        let _ = tx.send(outcome);
                    }
                    (ModReplyTo::Session(_), Some((sid, outbox, mailbox))) => {
                        let msg = match outcome {
                            Ok(ModReply::Audit { entries, more }) => ServerMessage::Audit { entries, more },
                            Ok(_) => return,
                            Err(d) => {
                                ServerMessage::Denied { action: "audit".into(), reason: d.reason, detail: d.detail }
                            }
                        };
                        deliver_raw(&log, sid, &outbox, &mailbox, protocol::message::encode(&msg).into());
                    }
                    (ModReplyTo::Session(_), None) => {}
                }
            }),
        );
    }

    /// The operator's own queries.
    fn operator_query(&mut self, q: OperatorQuery, reply: ModReplyTo) {
        match q {
            OperatorQuery::Who => {
                let mut users: Vec<UserSummary> = self
                    .order
                    .iter()
                    .filter_map(|(_, sid)| self.members.get(sid))
                    .map(|m| UserSummary {
                        name: m.name.clone(),
                        registered: m.account.is_some(),
                        roles: m.account.as_deref().map(|k| self.accounts.roles(k)).unwrap_or_default(),
                        address: m.addr.map(|a| a.to_string()),
                        rooms: m.rooms.iter().filter_map(|r| self.rooms.get(*r)).map(|r| r.name.clone()).collect(),
                        voice: m.voice_room.and_then(|r| self.rooms.get(r)).map(|r| r.name.clone()),
                    })
                    .collect();
                users.truncate(100 * MAX_LISTED_USERS);
                self.reply(reply, "who", Ok(ModReply::Who { users }));
            }
            OperatorQuery::Rooms => {
                let rooms = self.rooms.list(|sid| self.members.get(&sid).map(|m| m.name.clone()));
                self.reply(reply, "rooms", Ok(ModReply::Rooms { rooms }));
            }
            OperatorQuery::Stats => {
                let stats = ServerStats {
                    users: self.members.len(),
                    voice_users: self.voice.len(),
                    rooms: self.rooms.len(),
                    accounts: self.accounts.len(),
                    bans: self.sanctions.bans(now_ms()).len(),
                    held: self.gone.len(),
                };
                self.reply(reply, "stats", Ok(ModReply::Stats(stats)));
            }
            OperatorQuery::ResetPassword { name, code_phc, until_ms } => {
                let Some(account) = self.accounts.find_name(&name).cloned() else {
                    let d = deny(DenyReason::NoSuchAccount, format!("{} is not a registered name", Escaped(&name)));
                    return self.reply(reply, "reset_password", Err(d));
                };
                // The old password stops working: whoever knew it is out.
                let key = account.key().to_owned();
                let field = AccountField::Reset { phc: code_phc, until_ms };
                let w = Write::UpdateAccount { key: key.clone(), field: field.clone() };
                self.commit(w, reply, "reset_password", move |roster| {
                    let shown = account.name.clone();
                    if !roster.accounts.apply(&key, &field) {
                        return Err(deny(DenyReason::NoSuchAccount, "the account is gone"));
                    }
                    // Whoever is logged in to it now (perhaps whoever the
                    // reset is for) goes, and held sessions with it.
                    let on_it: Vec<SessionId> = roster
                        .members
                        .iter()
                        .filter(|(_, m)| m.account.as_deref() == Some(key.as_str()))
                        .map(|(sid, _)| *sid)
                        .collect();
                    for sid in on_it {
                        let detail = "the operator reset this account's password".to_owned();
                        roster.remove_session(sid, DisconnectCause::Kicked, detail, None);
                    }
                    roster.gone.retain(|_, g| !g.key.collides(&account.keys));
                    roster.audit(
                        OPERATOR,
                        "reset_password",
                        &shown,
                        None,
                        "",
                        &format!("until {}", format_utc(until_ms)),
                    );
                    done(format!("{} has a one-time reset code until {}", Escaped(&shown), format_utc(until_ms)))
                });
            }
        }
    }
}

impl Handler<Moderate> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Moderate, _: &mut Context<Self>) {
        if let Asker::Session(sid) = msg.by
            && !self.members.contains_key(&sid)
        {
            return;
        }
        match msg.request {
            ModRequest::Act(action) => self.act(msg.by, action, msg.reply),
            ModRequest::Operator(q) if msg.by == Asker::Operator => self.operator_query(q, msg.reply),
            ModRequest::Keys(q) if msg.by == Asker::Operator => self.key_query(q, msg.reply),
            ModRequest::Operator(_) | ModRequest::Keys(_) => {
                self.reply(msg.reply, "operator", Err(deny(DenyReason::NotAllowed, "only the operator asks that")));
            }
        }
    }
}
