//! The `Roster` actor: who is connected under which name, and the only path
//! of text and presence fan-out.

use std::collections::HashMap;

use actix::dev::SendError;
use actix::prelude::*;
use bytes::Bytes;
use protocol::message::{self, DisconnectCause, ServerMessage, name_key};
use slog::{Logger, debug, info, warn};

use crate::messages::{Broadcast, Count, Join, JoinRefusal, Leave, ListUsers, SessionId, ShutdownAll, ToSession};

struct Member {
    name: String,
    key: String,
    mailbox: Recipient<ToSession>,
}

/// Who is here.
pub struct Roster {
    log: Logger,
    max_clients: usize,
    members: HashMap<SessionId, Member>,
    names: HashMap<String, SessionId>,
}

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roster").field("members", &self.members.len()).finish()
    }
}

impl Roster {
    /// An empty roster admitting at most `max_clients` users.
    pub fn new(log: Logger, max_clients: usize) -> Self {
        Self { log, max_clients, members: HashMap::new(), names: HashMap::new() }
    }

    fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.members.values().map(|m| m.name.clone()).collect();
        users.sort_by_cached_key(|n| name_key(n));
        users
    }

    /// Sends one shared encoded message to everyone but `except`. A full
    /// mailbox means a hopelessly slow reader: it is kicked, never waited for.
    fn fan_out(&self, msg: &ServerMessage, except: Option<SessionId>) {
        let payload = Bytes::from(message::encode(msg));
        for (id, m) in &self.members {
            if Some(*id) == except {
                continue;
            }
            match m.mailbox.try_send(ToSession::Deliver(payload.clone())) {
                Ok(()) | Err(SendError::Closed(_)) => {}
                Err(SendError::Full(_)) => {
                    warn!(self.log, "session mailbox full; disconnecting slow reader"; "session" => id);
                    m.mailbox.do_send(ToSession::Kick(DisconnectCause::SlowReader, "you did not read fast enough"));
                }
            }
        }
    }
}

impl Actor for Roster {
    type Context = Context<Self>;
}

impl Handler<Join> for Roster {
    type Result = Result<Vec<String>, JoinRefusal>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        let key = name_key(&msg.name);
        if self.names.contains_key(&key) {
            return Err(JoinRefusal::NameTaken);
        }
        if self.members.len() >= self.max_clients {
            return Err(JoinRefusal::ServerFull);
        }
        self.fan_out(&ServerMessage::Joined { user: msg.name.clone() }, None);
        self.names.insert(key.clone(), msg.id);
        self.members.insert(msg.id, Member { name: msg.name, key, mailbox: msg.mailbox });
        debug!(self.log, "roster join"; "session" => msg.id, "users" => self.members.len());
        Ok(self.users())
    }
}

impl Handler<Leave> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        if let Some(m) = self.members.remove(&msg.id) {
            self.names.remove(&m.key);
            info!(self.log, "user left"; "user" => &m.name, "users" => self.members.len());
            self.fan_out(&ServerMessage::Left { user: m.name }, None);
        }
    }
}

impl Handler<Broadcast> for Roster {
    type Result = ();
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) {
        let Some(from) = self.members.get(&msg.from) else {
            return;
        };
        let out = ServerMessage::Message { from: from.name.clone(), text: msg.text, ts_ms: msg.ts_ms };
        self.fan_out(&out, Some(msg.from));
    }
}

impl Handler<ListUsers> for Roster {
    type Result = Vec<String>;
    fn handle(&mut self, _: ListUsers, _: &mut Context<Self>) -> Vec<String> {
        self.users()
    }
}

impl Handler<Count> for Roster {
    type Result = usize;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> usize {
        self.members.len()
    }
}

impl Handler<ShutdownAll> for Roster {
    type Result = usize;
    fn handle(&mut self, msg: ShutdownAll, _: &mut Context<Self>) -> usize {
        let payload = Bytes::from(message::encode(&ServerMessage::Shutdown { reason: msg.reason }));
        for m in self.members.values() {
            m.mailbox.do_send(ToSession::Shutdown(payload.clone()));
        }
        self.members.len()
    }
}
