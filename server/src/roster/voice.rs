//! Voice in the roster: each room has its own voice, and a user is in the
//! voice of at most one room; the relay forwards only within a room. A
//! room's voice list goes to its members once per presence window.

use std::time::Instant;

use actix::prelude::*;
use protocol::escape::Escaped;
use protocol::message::{ServerMessage, VoiceUser, name_key};
use slog::info;

use super::{REPORT_TTL, Roster};
use crate::messages::{RelayAdd, RelayRemove, SessionId, VoiceJoin, VoiceLeave, VoiceReport};
use crate::rooms::RoomId;

impl Roster {
    /// Who is in room `rid`'s voice.
    pub(super) fn voice_users(&self, rid: RoomId) -> ServerMessage {
        let Some(room) = self.rooms.get(rid) else {
            return ServerMessage::VoiceUsers { room: String::new(), users: Vec::new() };
        };
        let mut users: Vec<VoiceUser> = room
            .voice_members
            .iter()
            .filter_map(|(sid, vid)| self.members.get(sid).map(|m| VoiceUser { name: m.name.clone(), voice_id: *vid }))
            .collect();
        users.sort_by_cached_key(|u| name_key(&u.name));
        ServerMessage::VoiceUsers { room: room.name.clone(), users }
    }

    /// Takes session `id` out of voice, and tells the room who is left.
    /// Returns whether it was in voice.
    pub(super) fn leave_voice(&mut self, id: SessionId) -> bool {
        let Some(vid) = self.voice.remove(&id) else { return false };
        self.voice_ids.remove(&vid);
        self.reports.remove(&vid);
        for per_speaker in self.reports.values_mut() {
            per_speaker.remove(&id);
        }
        if let Some(relay) = &self.relay {
            relay.do_send(RelayRemove { voice_id: vid });
        }
        let room = self.members.get_mut(&id).and_then(|m| m.voice_room.take());
        if let Some(rid) = room {
            if let Some(r) = self.rooms.get_mut(rid) {
                r.voice_members.remove(&id);
            }
            self.rooms.voice_changed(rid);
        }
        true
    }
}

impl Handler<VoiceJoin> for Roster {
    type Result = Result<u32, String>;
    fn handle(&mut self, msg: VoiceJoin, _: &mut Context<Self>) -> Result<u32, String> {
        let relay = self.relay.clone().ok_or("voice is not enabled on this server")?;
        let m = self.members.get(&msg.id).ok_or("not logged in")?;
        let rid = match &msg.room {
            Some(name) => self.joined_room(msg.id, name).ok_or_else(|| format!("you are not in #{}", Escaped(name)))?,
            None => m
                .rooms
                .iter()
                .copied()
                .find(|r| self.rooms.get(*r).is_some_and(|r| r.voice))
                .ok_or("you are in no room with voice")?,
        };
        let room = self.rooms.get(rid).ok_or("no such room")?;
        if !room.voice {
            return Err(format!("#{} has no voice", Escaped(&room.name)));
        }
        let room_name = room.name.clone();
        if self.muted(msg.id, Some(rid)) {
            return Err(format!("a moderator muted you in #{}", Escaped(&room_name)));
        }
        self.leave_voice(msg.id);
        let vid = loop {
            let vid = u32::from_be_bytes(protocol::crypto::random_bytes::<4>());
            if vid != 0 && !self.voice_ids.contains_key(&vid) {
                break vid;
            }
        };
        relay.do_send(RelayAdd { voice_id: vid, channel: rid, up_key: msg.up_key, down_key: msg.down_key });
        self.voice.insert(msg.id, vid);
        self.voice_ids.insert(vid, msg.id);
        if let Some(m) = self.members.get_mut(&msg.id) {
            m.voice_room = Some(rid);
        }
        if let Some(r) = self.rooms.get_mut(rid) {
            r.voice_members.insert(msg.id, vid);
        }
        info!(self.log, "voice joined"; "session" => msg.id, "voice_id" => vid, "room" => %Escaped(&room_name),
            "in_voice" => self.voice.len());
        // The answer now; the room's new voice list with the next window's
        // presence (joining and leaving voice in a loop costs the room one
        // list per window, not one per toggle).
        self.deliver_to(
            msg.id,
            &ServerMessage::VoiceJoined { voice_id: vid, udp_port: msg.udp_port, epoch: msg.epoch, room: room_name },
        );
        self.rooms.voice_changed(rid);
        Ok(vid)
    }
}

impl Handler<VoiceLeave> for Roster {
    type Result = ();
    fn handle(&mut self, msg: VoiceLeave, _: &mut Context<Self>) {
        let room = self.members.get(&msg.id).and_then(|m| m.voice_room);
        let left = self.leave_voice(msg.id);
        self.deliver_to(msg.id, &ServerMessage::VoiceLeft);
        if left {
            info!(self.log, "voice left"; "session" => msg.id, "in_voice" => self.voice.len());
            // The leaver hears the new list too (after its `voice_left`).
            if let Some(rid) = room {
                self.deliver_to(msg.id, &self.voice_users(rid));
            }
        }
    }
}

impl Handler<VoiceReport> for Roster {
    type Result = ();
    fn handle(&mut self, msg: VoiceReport, _: &mut Context<Self>) {
        // Only voice members report, and only about another member.
        if !self.voice.contains_key(&msg.from) {
            return;
        }
        let Some(&speaker_session) = self.voice_ids.get(&msg.speaker) else { return };
        let room_of = |sid| self.members.get(&sid).and_then(|m| m.voice_room);
        if speaker_session == msg.from || room_of(speaker_session) != room_of(msg.from) {
            return;
        }
        let now = Instant::now();
        let reports = self.reports.entry(msg.speaker).or_default();
        reports.insert(msg.from, (msg.loss_permille, msg.burst_x10, now));
        reports.retain(|_, (_, _, at)| now.duration_since(*at) < REPORT_TTL);
        // The speaker protects for its worst listener.
        let (loss_permille, burst_x10) =
            reports.values().fold((0, 10), |(l, b), (rl, rb, _)| (l.max(*rl), if *rl > 0 { b.max(*rb) } else { b }));
        self.deliver_to(speaker_session, &ServerMessage::VoiceFeedback { loss_permille, burst_x10 });
    }
}
